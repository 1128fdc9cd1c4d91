/*
 * test_ktls_keys.c - unit tests for the pure parts of ktls_keys.c: TLS 1.3
 * and TLS 1.2 record-key derivation against published vectors, the kernel
 * crypto_info layout of every cipher, and the OpenSSL -> kernel cipher map.
 *
 * Prints one line per failed check, then "N passed, N failed"; the exit
 * status is 0 only when nothing failed.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <linux/tls.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/ssl.h>

#include "ktls_derive.h"
#include "unit.h"

#define CHECK(cond, ...) check((cond) ? 1 : 0, __VA_ARGS__)

/* Decode hex that may contain spaces (vectors are kept as published). */
static size_t
unhex(const char *s, unsigned char *out, size_t max)
{
	size_t n = 0;
	int hi, lo;

	for (; *s != '\0'; s += 2) {
		while (*s == ' ')
			s++;
		if (*s == '\0')
			break;
		hi = OPENSSL_hexchar2int((unsigned char)s[0]);
		lo = s[1] == '\0' ? -1 :
				    OPENSSL_hexchar2int((unsigned char)s[1]);
		if (hi < 0 || lo < 0 || n == max) {
			CHECK(0, "malformed test vector near \"%.16s\"", s);
			return 0;
		}
		out[n++] = (unsigned char)(hi << 4 | lo);
	}
	return n;
}

static const char *
tohex(const unsigned char *b, size_t len, char *buf, size_t size)
{
	size_t i;

	buf[0] = '\0';
	for (i = 0; i < len && 2 * i + 2 < size; i++)
		snprintf(buf + 2 * i, 3, "%02x", b[i]);
	return buf;
}

static void
check_mem(const unsigned char *got, const unsigned char *want, size_t len,
    const char *what)
{
	char g[2 * 128 + 1], w[2 * 128 + 1];

	CHECK(memcmp(got, want, len) == 0, "%s: got %s, want %s", what,
	    tohex(got, len, g, sizeof(g)), tohex(want, len, w, sizeof(w)));
}

static void
check_hex(const unsigned char *got, size_t len, const char *want_hex,
    const char *what)
{
	unsigned char want[128];
	size_t n = unhex(want_hex, want, sizeof(want));

	if (n != len)
		CHECK(0, "%s: vector has %zu bytes, output %zu", what, n, len);
	else
		check_mem(got, want, len, what);
}

/* The reference path: OpenSSL's KDFs called directly, not via ktls_keys.c. */
static int
kdf_derive(const char *name, const OSSL_PARAM *params, unsigned char *out,
    size_t len)
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, name, NULL);
	EVP_KDF_CTX *kctx = kdf != NULL ? EVP_KDF_CTX_new(kdf) : NULL;
	int ok = kctx != NULL && EVP_KDF_derive(kctx, out, len, params) > 0;

	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(kdf);
	return ok ? 0 : -1;
}

static int
hkdf_expand_ref(const char *digest, const unsigned char *prk, size_t prk_len,
    const unsigned char *info, size_t info_len, unsigned char *out, size_t len)
{
	int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
		OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
		    (char *)digest, 0),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
		    (void *)prk, prk_len),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
		    (void *)info, info_len),
		OSSL_PARAM_construct_end(),
	};

	return kdf_derive("HKDF", params, out, len);
}

static int
tls12_prf_ref(const char *digest, const unsigned char *secret,
    size_t secret_len, const unsigned char *seed, size_t seed_len,
    unsigned char *out, size_t len)
{
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
		    (char *)digest, 0),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SECRET,
		    (void *)secret, secret_len),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SEED,
		    (void *)seed, seed_len),
		OSSL_PARAM_construct_end(),
	};

	return kdf_derive("TLS1-PRF", params, out, len);
}

/* ---- TLS 1.3: HKDF-Expand-Label ---- */

/*
 * RFC 8448 section 3, "Simple 1-RTT Handshake" (TLS_AES_128_GCM_SHA256):
 * the steps "derive write traffic keys for {handshake,application} data",
 * each a traffic secret (the PRK) and the "key expanded" and "iv expanded"
 * values derived from it.
 */
static const struct {
	const char *name;
	const char *secret, *key, *iv;
} tls13_vectors[] = {
	{ "RFC 8448 server application traffic",
	    "a1 1a f9 f0 55 31 f8 56 ad 47 11 6b 45 a9 50 32"
	    "82 04 b4 f4 4b fb 6b 3a 4b 4f 1f 3f cb 63 16 43",
	    "9f 02 28 3b 6c 9c 07 ef c2 6b b9 f2 ac 92 e3 56",
	    "cf 78 2b 88 dd 83 54 9a ad f1 e9 84" },
	{ "RFC 8448 client application traffic",
	    "9e 40 64 6c e7 9a 7f 9d c0 5a f8 88 9b ce 65 52"
	    "87 5a fa 0b 06 df 00 87 f7 92 eb b7 c1 75 04 a5",
	    "17 42 2d da 59 6e d5 d9 ac d8 90 e3 c6 3f 50 51",
	    "5b 78 92 3d ee 08 57 90 33 e5 23 d9" },
	{ "RFC 8448 server handshake traffic",
	    "b6 7b 7d 69 0c c1 6c 4e 75 e5 42 13 cb 2d 37 b4"
	    "e9 c9 12 bc de d9 10 5d 42 be fd 59 d3 91 ad 38",
	    "3f ce 51 60 09 c2 17 27 d0 f2 e4 e8 6e e4 03 bc",
	    "5d 31 3e b2 67 12 76 ee 13 00 0b 30" },
	{ "RFC 8448 client handshake traffic",
	    "b3 ed db 12 6e 06 7f 35 a7 80 b3 ab f4 5e 2d 8f"
	    "3b 1a 95 07 38 f5 2e 96 00 74 6a 0e 27 a5 5a 21",
	    "db fa a6 93 d1 76 2c 5b 66 6a f5 d9 50 25 8d 01",
	    "5b d3 c7 1b 83 6e 0b 76 bb 73 26 5f" },
};

static void
test_tls13_vectors(void)
{
	unsigned char secret[32], key[16], iv[12];
	char what[96];
	size_t i;

	for (i = 0; i < sizeof(tls13_vectors) / sizeof(tls13_vectors[0]); i++) {
		const char *name = tls13_vectors[i].name;

		if (unhex(tls13_vectors[i].secret, secret, sizeof(secret)) !=
		    sizeof(secret))
			continue;
		snprintf(what, sizeof(what), "%s key", name);
		if (ktls_tls13_expand_label(EVP_sha256(), secret,
			sizeof(secret), "key", key, sizeof(key)) < 0)
			CHECK(0, "%s: derivation failed", what);
		else
			check_hex(key, sizeof(key), tls13_vectors[i].key, what);
		snprintf(what, sizeof(what), "%s iv", name);
		if (ktls_tls13_expand_label(EVP_sha256(), secret,
			sizeof(secret), "iv", iv, sizeof(iv)) < 0)
			CHECK(0, "%s: derivation failed", what);
		else
			check_hex(iv, sizeof(iv), tls13_vectors[i].iv, what);
	}
}

/*
 * HkdfLabel (RFC 8446 7.1) starts with the output length, so a longer
 * output is not an extension of a shorter one; and the digest must be the
 * suite's (SHA-384 for TLS_AES_256_GCM_SHA384), checked against HKDF-Expand
 * over a hand-built HkdfLabel for a 32-byte "key".
 */
static void
test_tls13_label(void)
{
	static const char sha384_key_info[] =
	    "00 20 09 74 6c 73 31 33 20 6b 65 79 00"; /* 32, "tls13 key", "" */
	unsigned char secret[48], info[16], k16[16], k32[32], ref[32];
	char label[251];
	size_t info_len;
	int rc;

	memset(secret, 0x5a, sizeof(secret));
	rc = ktls_tls13_expand_label(EVP_sha256(), secret, 32, "key", k16, 16);
	rc |= ktls_tls13_expand_label(EVP_sha256(), secret, 32, "key", k32, 32);
	CHECK(rc == 0 && memcmp(k16, k32, 16) != 0,
	    "expand_label: 16- and 32-byte outputs share a prefix "
	    "(length missing from HkdfLabel?)");

	info_len = unhex(sha384_key_info, info, sizeof(info));
	rc = ktls_tls13_expand_label(EVP_sha384(), secret, 48, "key", k32, 32);
	rc |= hkdf_expand_ref("SHA384", secret, 48, info, info_len, ref, 32);
	if (rc != 0)
		CHECK(0, "expand_label SHA-384: derivation failed");
	else
		check_mem(k32, ref, 32, "expand_label SHA-384 vs HKDF-Expand");

	CHECK(ktls_tls13_expand_label(NULL, secret, 32, "key", k16, 16) == -1,
	    "expand_label with NULL md did not return -1");
	/* "tls13 " + label must fit opaque label<7..255>. */
	memset(label, 'a', sizeof(label) - 1);
	label[249] = '\0';
	CHECK(ktls_tls13_expand_label(EVP_sha256(), secret, 32, label, k16,
		  16) == 0,
	    "expand_label rejected a 249-byte label");
	label[249] = 'a';
	label[250] = '\0';
	CHECK(ktls_tls13_expand_label(EVP_sha256(), secret, 32, label, k16,
		  16) == -1,
	    "expand_label accepted a 250-byte label");
}

/* ---- TLS 1.2: PRF(master, "key expansion", server + client random) ---- */

/*
 * The P_SHA256 vector posted to the IETF TLS list (mail-archive tls
 * msg03416) and reused by many TLS test suites: secret, label "test label",
 * seed, 100 bytes out. It checks the reference path below.
 */
static const char prf_secret[] =
    "9b be 43 6b a9 40 f0 17 b1 76 52 84 9a 71 db 35";
static const char prf_seed[] =
    "a0 ba 9f 93 6c da 31 18 27 a6 f7 96 ff d5 19 8c";
static const char prf_out[] =
    "e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a"
    "6b301791e90d35c9c9a46b4e14baf9af0fa022f7077def17abfd3797c0564bab"
    "4fbc91666e9def9b97fce34f796789baa48082d122ee42c5a72e5a5110fff701"
    "87347b66";

/*
 * NIST CAVP SP 800-135 TLS KDF vectors (tls.zip), [TLS 1.2, SHA-256],
 * COUNT = 0, key expansion step; also in OpenSSL's
 * test/recipes/30-test_evp_data/evpkdf_tls12_prf.txt ("key expansion").
 */
static const char nist_master[] =
    "202c88c00f84a17a20027079604787461176455539e705be730890602c289a50"
    "01e34eeb3a043e5d52a65e66125188bf";
static const char nist_server_random[] =
    "ae6c806f8ad4d80784549dff28a4b58fd837681a51d928c3e30ee5ff14f39868";
static const char nist_client_random[] =
    "62e1fd91f23f558a605f28478c58cf72637b89784d959df7e946d3f07bd1b616";
static const char nist_key_block[] =
    "d06139889fffac1e3a71865f504aa5d0d2a2e89506c6f2279b670c3e1b74f531"
    "016a2530c51a3a0f7e1d6590d0f0566b2f387f8d11fd4f731cdd572d2eae927f"
    "6f2f81410b25e6960be68985add6c38445ad9f8c64bf8068bf9a6679485d966f"
    "1ad6f68b43495b10a683755ea2b858d70ccac7ec8b053c6bd41ca299d4e51928";

/* The reference TLS1-PRF call reproduces the published P_SHA256 vector. */
static void
test_prf_reference(void)
{
	unsigned char secret[16], seed[10 + 16], out[100];
	size_t secret_len, seed_len;

	secret_len = unhex(prf_secret, secret, sizeof(secret));
	memcpy(seed, "test label", 10);
	seed_len = 10 + unhex(prf_seed, seed + 10, sizeof(seed) - 10);
	if (tls12_prf_ref("SHA256", secret, secret_len, seed, seed_len, out,
		sizeof(out)) < 0)
		CHECK(0, "reference TLS1-PRF failed");
	else
		check_hex(out, sizeof(out), prf_out,
		    "reference TLS1-PRF vs IETF P_SHA256 vector");
}

static void
test_tls12_key_block(void)
{
	static const char *const digests[] = { "SHA256", "SHA384" };
	unsigned char master[48], cr[32], sr[32], seed[13 + 64];
	unsigned char out[128], ref[128];
	char what[64];
	size_t mlen, i;

	mlen = unhex(nist_master, master, sizeof(master));
	unhex(nist_client_random, cr, sizeof(cr));
	unhex(nist_server_random, sr, sizeof(sr));
	if (ktls_tls12_key_block(EVP_sha256(), master, mlen, cr, sr, out,
		sizeof(out)) < 0)
		CHECK(0, "tls12_key_block failed on the NIST vector");
	else
		check_hex(out, sizeof(out), nist_key_block,
		    "tls12_key_block vs NIST CAVP key block");

	/* RFC 5246 6.3: seed = label + server_random + client_random. */
	memcpy(seed, "key expansion", 13);
	memcpy(seed + 13, sr, 32);
	memcpy(seed + 13 + 32, cr, 32);
	for (i = 0; i < sizeof(digests) / sizeof(digests[0]); i++) {
		snprintf(what, sizeof(what), "tls12_key_block %s vs TLS1-PRF",
		    digests[i]);
		if (ktls_tls12_key_block(EVP_get_digestbyname(digests[i]),
			master, mlen, cr, sr, out, sizeof(out)) < 0 ||
		    tls12_prf_ref(digests[i], master, mlen, seed, sizeof(seed),
			ref, sizeof(ref)) < 0)
			CHECK(0, "%s: derivation failed", what);
		else
			check_mem(out, ref, sizeof(out), what);
	}
	CHECK(ktls_tls12_key_block(NULL, master, mlen, cr, sr, out, 16) == -1,
	    "tls12_key_block with NULL md did not return -1");
}

/* ---- crypto_info layout ---- */

/*
 * Each field's offset and size in the kernel's own struct, so the checks
 * share nothing with the module's table. Reading ci.bytes at these
 * offsets is what casting it to the struct would do, for all ciphers in
 * one loop.
 */
struct layout {
	uint16_t kernel;
	const char *type;
	size_t size;
	size_t iv, iv_len, key, key_len, salt, salt_len, seq, seq_len;
};

#define FIELD(type, f) offsetof(struct type, f), sizeof(((struct type *)0)->f)
#define LAYOUT(kernel, type)                                                   \
	{                                                                      \
		kernel, #type, sizeof(struct type), FIELD(type, iv),           \
		    FIELD(type, key), FIELD(type, salt), FIELD(type, rec_seq)  \
	}

static const struct layout layouts[] = {
	LAYOUT(TLS_CIPHER_AES_GCM_128, tls12_crypto_info_aes_gcm_128),
	LAYOUT(TLS_CIPHER_AES_GCM_256, tls12_crypto_info_aes_gcm_256),
	LAYOUT(TLS_CIPHER_CHACHA20_POLY1305,
	    tls12_crypto_info_chacha20_poly1305),
	LAYOUT(TLS_CIPHER_AES_CCM_128, tls12_crypto_info_aes_ccm_128),
};

#define NLAYOUTS (sizeof(layouts) / sizeof(layouts[0]))

static const uint64_t test_seq = 0x0102030405060708ULL;
static const unsigned char test_seq_be[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };

static void
check_field(const union ktls_crypto_info *ci, size_t off,
    const unsigned char *want, size_t len, const struct layout *l,
    uint16_t version, const char *field)
{
	char what[128];

	snprintf(what, sizeof(what), "%s TLS 1.%d %s[]", l->type,
	    version == TLS_1_3_VERSION ? 3 : 2, field);
	check_mem(ci->bytes + off, want, len, what);
}

static void
test_layout_one(const struct layout *l, uint16_t version)
{
	const struct ktls_cipher *c = ktls_cipher_by_kernel_id(l->kernel);
	unsigned char key[32], iv[12];
	union ktls_crypto_info ci;
	struct tls_crypto_info info;
	size_t i, n;
	int minor = version == TLS_1_3_VERSION ? 3 : 2, explicit_nonce;

	for (i = 0; i < sizeof(key); i++)
		key[i] = (unsigned char)(0x10 + i);
	for (i = 0; i < sizeof(iv); i++)
		iv[i] = (unsigned char)(0xa0 + i);
	if (c == NULL) {
		CHECK(0, "%s: no cipher for kernel id %u", l->type, l->kernel);
		return;
	}
	n = ktls_crypto_info_fill(&ci, version, c, key, iv, test_seq);
	CHECK(n == l->size, "%s TLS 1.%d: size %zu, want %zu", l->type, minor,
	    n, l->size);
	memcpy(&info, ci.bytes, sizeof(info));
	CHECK(info.version == version, "%s TLS 1.%d: info.version 0x%04x",
	    l->type, minor, info.version);
	CHECK(info.cipher_type == l->kernel, "%s TLS 1.%d: cipher_type %u",
	    l->type, minor, info.cipher_type);
	check_field(&ci, l->key, key, l->key_len, l, version, "key");
	if (l->salt_len > 0)
		check_field(&ci, l->salt, iv, l->salt_len, l, version, "salt");
	check_field(&ci, l->seq, test_seq_be, l->seq_len, l, version,
	    "rec_seq");
	/*
	 * TLS 1.2 GCM/CCM: iv[] is the explicit nonce, which starts at the
	 * sequence number; otherwise it is the rest of the write IV.
	 */
	explicit_nonce = version == TLS_1_2_VERSION && l->salt_len > 0;
	check_field(&ci, l->iv, explicit_nonce ? test_seq_be : iv + l->salt_len,
	    l->iv_len, l, version, "iv");
}

static void
test_crypto_info(void)
{
	union ktls_crypto_info ci;
	unsigned char key[32] = { 0 }, iv[12] = { 0 };
	const struct ktls_cipher *c;
	size_t i;

	for (i = 0; i < NLAYOUTS; i++) {
		test_layout_one(&layouts[i], TLS_1_2_VERSION);
		test_layout_one(&layouts[i], TLS_1_3_VERSION);
	}
	c = ktls_cipher_by_kernel_id(TLS_CIPHER_AES_GCM_128);
	CHECK(ktls_crypto_info_fill(&ci, 0x0302, c, key, iv, 0) == 0,
	    "crypto_info_fill accepted version 0x0302");
	CHECK(ktls_crypto_info_fill(&ci, TLS_1_3_VERSION, NULL, key, iv, 0) ==
		0,
	    "crypto_info_fill accepted a NULL cipher");
}

/* ---- cipher lookup ---- */

static void
test_cipher_by_kernel_id(void)
{
	const struct ktls_cipher *c;
	size_t i;

	for (i = 0; i < NLAYOUTS; i++) {
		const struct layout *l = &layouts[i];

		c = ktls_cipher_by_kernel_id(l->kernel);
		CHECK(c != NULL && c->kernel == l->kernel,
		    "cipher_by_kernel_id(%u) does not round-trip", l->kernel);
		CHECK(c != NULL && c->key_len == l->key_len &&
			c->salt_len == l->salt_len && c->iv_len == l->iv_len &&
			c->info_len == l->size,
		    "cipher table sizes for %u differ from %s", l->kernel,
		    l->type);
	}
	CHECK(ktls_cipher_by_kernel_id(0) == NULL,
	    "cipher_by_kernel_id(0) is not NULL");
}

/*
 * Cipher suite id and OpenSSL's name for it -> the kernel cipher it must
 * map to (0: none, the connection stays in userspace).
 */
static const struct {
	uint16_t id;
	const char *name;
	uint16_t kernel;
} suites[] = {
	{ 0x1301, "TLS_AES_128_GCM_SHA256", TLS_CIPHER_AES_GCM_128 },
	{ 0x1302, "TLS_AES_256_GCM_SHA384", TLS_CIPHER_AES_GCM_256 },
	{ 0x1303, "TLS_CHACHA20_POLY1305_SHA256",
	    TLS_CIPHER_CHACHA20_POLY1305 },
	{ 0x1304, "TLS_AES_128_CCM_SHA256", TLS_CIPHER_AES_CCM_128 },
	{ 0x1305, "TLS_AES_128_CCM_8_SHA256", 0 },
	{ 0xc02f, "ECDHE-RSA-AES128-GCM-SHA256", TLS_CIPHER_AES_GCM_128 },
	{ 0xc030, "ECDHE-RSA-AES256-GCM-SHA384", TLS_CIPHER_AES_GCM_256 },
	{ 0xcca9, "ECDHE-ECDSA-CHACHA20-POLY1305",
	    TLS_CIPHER_CHACHA20_POLY1305 },
	{ 0xc02b, "ECDHE-ECDSA-AES128-GCM-SHA256", TLS_CIPHER_AES_GCM_128 },
	{ 0xc0ac, "ECDHE-ECDSA-AES128-CCM", TLS_CIPHER_AES_CCM_128 },
	{ 0xc0ae, "ECDHE-ECDSA-AES128-CCM8", 0 },
	{ 0xc0ad, "ECDHE-ECDSA-AES256-CCM", 0 },
	{ 0xc013, "ECDHE-RSA-AES128-SHA", 0 }, /* CBC */
};

static void
test_cipher_find_one(SSL *ssl, uint16_t id, const char *name, uint16_t kernel)
{
	const unsigned char wire[2] = { (unsigned char)(id >> 8),
		(unsigned char)id };
	const SSL_CIPHER *sc = SSL_CIPHER_find(ssl, wire);
	const struct ktls_cipher *c, *want;

	CHECK(sc != NULL && strcmp(SSL_CIPHER_get_name(sc), name) == 0,
	    "suite 0x%04X is %s, want %s", id,
	    sc != NULL ? SSL_CIPHER_get_name(sc) : "unknown to OpenSSL", name);
	if (sc == NULL)
		return;
	c = ktls_cipher_find(sc);
	want = ktls_cipher_by_kernel_id(kernel);
	CHECK(c == want && (c == NULL || c->kernel == kernel),
	    "cipher_find(%s) = %s, want %s", name, c != NULL ? c->name : "none",
	    want != NULL ? want->name : "none");
}

static void
test_cipher_find(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_method());
	SSL *ssl = ctx != NULL ? SSL_new(ctx) : NULL;
	size_t i;

	CHECK(ssl != NULL, "cannot create an SSL to look up cipher suites");
	for (i = 0; ssl != NULL && i < sizeof(suites) / sizeof(suites[0]); i++)
		test_cipher_find_one(ssl, suites[i].id, suites[i].name,
		    suites[i].kernel);
	CHECK(ktls_cipher_find(NULL) == NULL, "cipher_find(NULL) is not NULL");
	SSL_free(ssl);
	SSL_CTX_free(ctx);
}

int
main(void)
{
	test_tls13_vectors();
	test_tls13_label();
	test_prf_reference();
	test_tls12_key_block();
	test_crypto_info();
	test_cipher_by_kernel_id();
	test_cipher_find();
	return check_summary();
}
