/*
 * ktls_derive.c - the pure part of key extraction: which kernel cipher a
 * TLS suite maps to, the record keys from TLS 1.3 traffic secrets or the
 * TLS 1.2 master secret, and the kernel's crypto_info layout. No sockets
 * and no SSL state here, so the unit tests can check it against
 * published vectors.
 */
#include <stdint.h>
#include <string.h>

#include <linux/tls.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/kdf.h>

#include "ktls_derive.h"

/*
 * How many records one key may protect: RFC 8446 5.5 puts AES-GCM at
 * 2^24.5 full-size records; the AEAD limits analysis (CFRG
 * draft-irtf-cfrg-aead-limits) gives AES-CCM less, so it gets 2^23;
 * ChaCha20-Poly1305's sequence number wraps first.
 */
#define GCM_RECORD_LIMIT (UINT64_C(1) << 24)
#define CCM_RECORD_LIMIT (UINT64_C(1) << 23)

static const struct ktls_cipher ciphers[] = {
	{ "AES-128-GCM", NID_aes_128_gcm, TLS_CIPHER_AES_GCM_128,
	    TLS_CIPHER_AES_GCM_128_KEY_SIZE, TLS_CIPHER_AES_GCM_128_SALT_SIZE,
	    TLS_CIPHER_AES_GCM_128_IV_SIZE,
	    sizeof(struct tls12_crypto_info_aes_gcm_128), GCM_RECORD_LIMIT },
	{ "AES-256-GCM", NID_aes_256_gcm, TLS_CIPHER_AES_GCM_256,
	    TLS_CIPHER_AES_GCM_256_KEY_SIZE, TLS_CIPHER_AES_GCM_256_SALT_SIZE,
	    TLS_CIPHER_AES_GCM_256_IV_SIZE,
	    sizeof(struct tls12_crypto_info_aes_gcm_256), GCM_RECORD_LIMIT },
	{ "CHACHA20-POLY1305", NID_chacha20_poly1305,
	    TLS_CIPHER_CHACHA20_POLY1305, TLS_CIPHER_CHACHA20_POLY1305_KEY_SIZE,
	    TLS_CIPHER_CHACHA20_POLY1305_SALT_SIZE,
	    TLS_CIPHER_CHACHA20_POLY1305_IV_SIZE,
	    sizeof(struct tls12_crypto_info_chacha20_poly1305), UINT64_MAX },
	{ "AES-128-CCM", NID_aes_128_ccm, TLS_CIPHER_AES_CCM_128,
	    TLS_CIPHER_AES_CCM_128_KEY_SIZE, TLS_CIPHER_AES_CCM_128_SALT_SIZE,
	    TLS_CIPHER_AES_CCM_128_IV_SIZE,
	    sizeof(struct tls12_crypto_info_aes_ccm_128), CCM_RECORD_LIMIT },
};

const struct ktls_cipher *
ktls_cipher_find(const SSL_CIPHER *c)
{
	const char *name;
	int nid;
	size_t i;

	if (c == NULL)
		return NULL;
	/* The kernel's CCM takes a 16-byte tag only; CCM_8 suites share the NID. */
	name = SSL_CIPHER_get_name(c);
	if (strstr(name, "CCM8") != NULL || strstr(name, "CCM_8") != NULL)
		return NULL;
	nid = SSL_CIPHER_get_cipher_nid(c);
	for (i = 0; i < sizeof(ciphers) / sizeof(ciphers[0]); i++)
		if (ciphers[i].nid == nid)
			return &ciphers[i];
	return NULL;
}

const struct ktls_cipher *
ktls_cipher_by_kernel_id(uint16_t kernel)
{
	size_t i;

	for (i = 0; i < sizeof(ciphers) / sizeof(ciphers[0]); i++)
		if (ciphers[i].kernel == kernel)
			return &ciphers[i];
	return NULL;
}

/*
 * Every kernel crypto_info struct is { info, iv, key, salt, rec_seq }
 * with no padding, so one layout routine serves all ciphers; the sizes
 * come from the table. The unit tests check this against each struct.
 */
size_t
ktls_crypto_info_fill(union ktls_crypto_info *ci, uint16_t version,
    const struct ktls_cipher *c, const unsigned char *key,
    const unsigned char *iv, uint64_t seq)
{
	struct tls_crypto_info hdr;
	unsigned char *p, *ivp, rec_seq[8];
	int i;

	if (c == NULL ||
	    (version != TLS_1_2_VERSION && version != TLS_1_3_VERSION) ||
	    c->info_len > sizeof(ci->bytes))
		return 0;
	for (i = 7; i >= 0; i--, seq >>= 8)
		rec_seq[i] = (unsigned char)(seq & 0xff);
	memset(ci, 0, sizeof(*ci));
	hdr.version = version;
	hdr.cipher_type = c->kernel;
	memcpy(ci->bytes, &hdr, sizeof(hdr));
	ivp = ci->bytes + sizeof(hdr);
	p = ivp + c->iv_len;
	memcpy(p, key, c->key_len);
	p += c->key_len;
	memcpy(p, iv, c->salt_len); /* implicit nonce part, if any */
	p += c->salt_len;
	memcpy(p, rec_seq, sizeof(rec_seq));
	if (version == TLS_1_2_VERSION && c->salt_len > 0) {
		/*
		 * TLS 1.2 GCM/CCM: iv[] is the first explicit nonce the kernel
		 * sends, then increments per record. Starting at the sequence
		 * number keeps nonces unique under this key (RFC 5288 sec. 3).
		 */
		memcpy(ivp, rec_seq, c->iv_len);
	} else {
		/* TLS 1.3 and ChaCha20: the rest of the per-connection IV. */
		memcpy(ivp, iv + c->salt_len, c->iv_len);
	}
	OPENSSL_cleanse(rec_seq, sizeof(rec_seq));
	return c->info_len;
}

/* Run the OpenSSL KDF called name over params into out. */
static int
kdf_derive(const char *name, const OSSL_PARAM *params, unsigned char *out,
    size_t out_len)
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, name, NULL);
	EVP_KDF_CTX *kctx = kdf != NULL ? EVP_KDF_CTX_new(kdf) : NULL;
	int ok = kctx != NULL && EVP_KDF_derive(kctx, out, out_len, params) > 0;

	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(kdf);
	return ok ? 0 : -1;
}

int
ktls_tls13_expand_label(const EVP_MD *md, const unsigned char *secret,
    size_t secret_len, const char *label, unsigned char *out, size_t out_len)
{
	unsigned char info[2 + 1 + 255 + 1];
	size_t label_len = strlen(label), info_len;
	int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
	OSSL_PARAM params[5], *p = params;

	if (md == NULL || label_len + 6 > 255 || out_len > 0xffff)
		return -1;
	/* HkdfLabel: uint16 length, opaque label<7..255>, opaque context<0..255> */
	info[0] = (unsigned char)(out_len >> 8);
	info[1] = (unsigned char)out_len;
	info[2] = (unsigned char)(6 + label_len);
	memcpy(info + 3, "tls13 ", 6);
	memcpy(info + 9, label, label_len);
	info[9 + label_len] = 0;
	info_len = 10 + label_len;

	*p++ = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
	    (char *)EVP_MD_get0_name(md), 0);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
	    (void *)secret, secret_len);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info,
	    info_len);
	*p = OSSL_PARAM_construct_end();
	return kdf_derive("HKDF", params, out, out_len);
}

int
ktls_tls12_key_block(const EVP_MD *md, const unsigned char *master,
    size_t master_len, const unsigned char client_random[32],
    const unsigned char server_random[32], unsigned char *out, size_t out_len)
{
	static const char label[] = "key expansion";
	unsigned char seed[sizeof(label) - 1 + 64];
	OSSL_PARAM params[4], *p = params;

	if (md == NULL)
		return -1;
	/* RFC 5246 6.3: the server's random comes first here. */
	memcpy(seed, label, sizeof(label) - 1);
	memcpy(seed + sizeof(label) - 1, server_random, 32);
	memcpy(seed + sizeof(label) - 1 + 32, client_random, 32);
	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
	    (char *)EVP_MD_get0_name(md), 0);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SECRET,
	    (void *)master, master_len);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SEED, seed,
	    sizeof(seed));
	*p = OSSL_PARAM_construct_end();
	return kdf_derive("TLS1-PRF", params, out, out_len);
}
