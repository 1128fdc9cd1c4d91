/*
 * ktls_keys.c - pull TLS 1.2/1.3 record keys out of OpenSSL through its
 * public API and install them as kernel TLS (TLS_RX, TLS_TX).
 *
 * Secrets: TLS 1.3 traffic secrets come from the keylog callback; TLS
 * 1.2 keys from the master secret and the randoms (the derivations
 * themselves are in ktls_derive.c). Sequence numbers: OpenSSL has no API
 * for them, so a message callback counts records per direction since
 * each key change (see ktls_record_event).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <linux/tls.h>

#include <openssl/crypto.h>

#include "ktls_internal.h"

#ifndef SOL_TLS
#define SOL_TLS 282
#endif
#ifndef TCP_ULP
#define TCP_ULP 31
#endif

/* What ktls_ctx_prepare() keeps on an SSL_CTX. */
struct ktls_ctx_data {
	SSL_CTX_keylog_cb_func prev; /* the application's keylog callback */
	int took_ktls;               /* SSL_OP_ENABLE_KTLS was cleared */
};

static int ssl_idx = -1, ctx_idx = -1;
static CRYPTO_ONCE idx_once = CRYPTO_ONCE_STATIC_INIT;

static void
ctx_data_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
    void *argp)
{
	(void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
	OPENSSL_free(ptr);
}

static void
idx_init(void)
{
	ssl_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	ctx_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, ctx_data_free);
}

static int
idx_ready(void)
{
	return CRYPTO_THREAD_run_once(&idx_once, idx_init) && ssl_idx >= 0 &&
	    ctx_idx >= 0;
}

void
ktls_seterr(struct ktls *k, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(k->err, sizeof(k->err), fmt, ap);
	va_end(ap);
}

/* ---- capturing secrets and counting records during the handshake ---- */

static int
hex_decode(const char *s, size_t n, unsigned char *out, size_t max)
{
	size_t i;
	int hi, lo;

	if (n % 2 != 0 || n / 2 > max)
		return -1;
	for (i = 0; i < n / 2; i++) {
		hi = OPENSSL_hexchar2int((unsigned char)s[2 * i]);
		lo = OPENSSL_hexchar2int((unsigned char)s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return (int)(n / 2);
}

/*
 * A keylog line is "LABEL <client_random hex> <secret hex>". Keep the
 * application traffic secrets; TX is ours, RX is the peer's. is_server
 * is passed in, not asked of k->ssl, so the fuzz test needs no SSL.
 */
void
ktls_keylog_capture_line(struct ktls *k, int is_server, const char *line)
{
	const char *sp1, *sp2;
	struct ktls_secret *s;
	int n, ours_is_client = !is_server;

	if (strncmp(line, "CLIENT_TRAFFIC_SECRET_0 ", 24) == 0)
		s = &k->secret[ours_is_client ? KTLS_TX : KTLS_RX];
	else if (strncmp(line, "SERVER_TRAFFIC_SECRET_0 ", 24) == 0)
		s = &k->secret[ours_is_client ? KTLS_RX : KTLS_TX];
	else
		return;
	sp1 = strchr(line, ' ');
	sp2 = sp1 != NULL ? strchr(sp1 + 1, ' ') : NULL;
	if (sp2 == NULL)
		return;
	n = hex_decode(sp2 + 1, strlen(sp2 + 1), s->b, sizeof(s->b));
	s->len = n > 0 ? (size_t)n : 0;
}

static void
keylog_cb(const SSL *ssl, const char *line)
{
	SSL_CTX *ctx = SSL_get_SSL_CTX(ssl);
	SSL_CTX_keylog_cb_func prev;
	struct ktls_ctx_data *box;
	struct ktls *k;

	k = SSL_get_ex_data(ssl, ssl_idx);
	if (k != NULL)
		ktls_keylog_capture_line(k, SSL_is_server(ssl), line);
	/* In a struct: C has no portable function-pointer-to-void cast. */
	box = ctx != NULL ? SSL_CTX_get_ex_data(ctx, ctx_idx) : NULL;
	prev = box != NULL ? box->prev : NULL;
	if (prev != NULL)
		prev(ssl, line);
}

/*
 * OpenSSL's own kTLS (SSL_OP_ENABLE_KTLS, set in code or by "Options =
 * KTLS" in the system openssl.cnf, which SSL_CTX_new applies) would put
 * the "tls" ULP on the socket at the end of the handshake, before this
 * module: the two would then drive one socket, each with its own idea of
 * the sequence numbers. This module owns kTLS, so it turns OpenSSL's off
 * on every SSL_CTX it prepares and every SSL it attaches to (SSL_new
 * copies the option from the SSL_CTX, but code may set it on the SSL).
 */
static int
openssl_ktls_on(uint64_t options)
{
	return (options & SSL_OP_ENABLE_KTLS) != 0;
}

int
ktls_ctx_prepare(SSL_CTX *ctx, char *err, size_t errlen)
{
	struct ktls_ctx_data *d;
	int took = openssl_ktls_on(SSL_CTX_get_options(ctx));

	if (!idx_ready()) {
		snprintf(err, errlen, "cannot allocate OpenSSL ex_data index");
		return -1;
	}
	if (took)
		SSL_CTX_clear_options(ctx, SSL_OP_ENABLE_KTLS);
	if (SSL_CTX_get_keylog_callback(ctx) == keylog_cb) {
		if (took && (d = SSL_CTX_get_ex_data(ctx, ctx_idx)) != NULL)
			d->took_ktls = 1;
		return 0;
	}
	if ((d = OPENSSL_zalloc(sizeof(*d))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	d->prev = SSL_CTX_get_keylog_callback(ctx);
	d->took_ktls = took;
	if (!SSL_CTX_set_ex_data(ctx, ctx_idx, d)) {
		OPENSSL_free(d);
		snprintf(err, errlen, "cannot attach kTLS state to SSL_CTX");
		return -1;
	}
	SSL_CTX_set_keylog_callback(ctx, keylog_cb);
	return 0;
}

int
ktls_ctx_took_openssl_ktls(const SSL_CTX *ctx)
{
	const struct ktls_ctx_data *d;

	if (!idx_ready() || (d = SSL_CTX_get_ex_data(ctx, ctx_idx)) == NULL)
		return 0;
	return d->took_ktls;
}

/*
 * Sequence numbers. OpenSSL passes every record it reads or writes to the
 * message callback as an SSL3_RT_HEADER event carrying the 5-byte record
 * header, before the message in it (a message cut into several records is
 * reported once, after its last record). Counting headers per direction,
 * and restarting the count where the RFCs make a new key current, gives
 * the sequence number of the next record however the peer cut its
 * messages:
 *
 * - TLS 1.2: the ChangeCipherSpec makes the pending keys current, and "the
 *   sequence number is set to zero" (RFC 5246 6.1, 7.1). The CCS record
 *   itself goes under the old keys; the Finished after it is the first
 *   record under the new ones, or the first several if it was fragmented
 *   (6.2.1 allows that), and every one of them counts. OpenSSL 3.0 reports
 *   a CCS it reads only by its record header, so the header's type is what
 *   restarts the count, in both directions.
 * - TLS 1.3: the Finished is the last message under the handshake keys and
 *   a KeyUpdate the last under its old key; both must end their record
 *   (RFC 8446 5.1), and the next record starts again at 0 (5.3, 7.2). The
 *   middlebox-compatibility CCS (D.4) is unprotected and always followed
 *   by a Finished, so restarting at it as well is harmless.
 *
 * NewSessionTickets and anything else after the key change count as the
 * records they are.
 */
void
ktls_record_event(uint64_t records[2], int tls_version, int write_p,
    int content_type, const unsigned char *buf, size_t len)
{
	int dir = write_p ? KTLS_TX : KTLS_RX, key_change;

	key_change = len > 0 &&
	    ((content_type == SSL3_RT_HEADER &&
		 buf[0] == SSL3_RT_CHANGE_CIPHER_SPEC) ||
		(content_type == SSL3_RT_HANDSHAKE &&
		    tls_version == TLS1_3_VERSION &&
		    (buf[0] == SSL3_MT_FINISHED ||
			buf[0] == SSL3_MT_KEY_UPDATE)));
	if (key_change)
		records[dir] = 0;
	else if (content_type == SSL3_RT_HEADER)
		records[dir]++;
}

static void
ktls_msg_cb(int write_p, int version, int content_type, const void *buf,
    size_t len, SSL *ssl, void *arg)
{
	struct ktls *k = SSL_get_ex_data(ssl, ssl_idx);

	(void)version, (void)arg; /* the record's version, not the session's */
	if (k != NULL)
		ktls_record_event(k->records, SSL_version(ssl), write_p,
		    content_type, buf, len);
}

struct ktls *
ktls_new(SSL *ssl)
{
	struct ktls *k;

	if (!idx_ready() || (k = OPENSSL_zalloc(sizeof(*k))) == NULL)
		return NULL;
	k->ssl = ssl;
	k->fd = -1;
	k->peer_alert = -1;
	k->is_server = SSL_is_server(ssl) ? 1 : 0;
	if (openssl_ktls_on(SSL_get_options(ssl)))
		SSL_clear_options(ssl, SSL_OP_ENABLE_KTLS);
	if (!SSL_set_ex_data(ssl, ssl_idx, k)) {
		OPENSSL_free(k);
		return NULL;
	}
	SSL_set_msg_callback(ssl, ktls_msg_cb);
	return k;
}

/* Unhook from k->ssl: its callbacks must never reach k again. */
static void
unhook(struct ktls *k)
{
	if (k->ssl != NULL && SSL_get_ex_data(k->ssl, ssl_idx) == k) {
		SSL_set_ex_data(k->ssl, ssl_idx, NULL);
		SSL_set_msg_callback(k->ssl, NULL);
	}
	k->ssl = NULL;
}

int
ktls_detach(struct ktls *k)
{
	if (!ktls_active(k, KTLS_TX) || !ktls_active(k, KTLS_RX)) {
		ktls_seterr(k,
		    "the SSL is still needed: a direction is in userspace");
		return -1;
	}
	unhook(k);
	return 0;
}

void
ktls_free(struct ktls *k)
{
	if (k == NULL)
		return;
	unhook(k);
	OPENSSL_clear_free(k, sizeof(*k));
}

/* ---- installing keys in the kernel ---- */

enum ktls_step {
	STEP_ULP,
	STEP_KEY
};

/* setsockopt's errno, by step, as a plain diagnosis. */
static const struct {
	enum ktls_step step;
	int err;
	const char *why;
} diagnoses[] = {
	{ STEP_ULP, ENOENT, "kernel has no TLS ULP (CONFIG_TLS / tls module)" },
	{ STEP_ULP, ENOPROTOOPT, "kernel has no TCP ULP support (too old)" },
	{ STEP_ULP, EEXIST, "socket already has a different ULP" },
	/* The kernel attaches the ULP only in TCP_ESTABLISHED. */
	{ STEP_ULP, ENOTCONN,
	    "connection no longer established (peer closed its side)" },
	{ STEP_ULP, EPERM, "not permitted to load the tls module" },
	{ STEP_KEY, ENOENT,
	    "kernel lacks the crypto for %s (module not loaded)" },
	{ STEP_KEY, EINVAL,
	    "kernel does not support %s with this TLS version" },
	{ STEP_KEY, ENOPROTOOPT,
	    "kernel does not support %s with this TLS version" },
	{ STEP_KEY, EOPNOTSUPP,
	    "kernel does not support %s with this TLS version" },
	{ STEP_KEY, EBUSY,
	    "a key is already installed and this kernel cannot rekey" },
	{ STEP_KEY, EEXIST,
	    "a key is already installed and this kernel cannot rekey" },
	{ STEP_KEY, ENOMEM, "kernel is out of memory" },
};

static void
diagnose(char *buf, size_t len, enum ktls_step step, int err,
    const char *cipher)
{
	size_t i;

	for (i = 0; i < sizeof(diagnoses) / sizeof(diagnoses[0]); i++) {
		if (diagnoses[i].step == step && diagnoses[i].err == err) {
			/* Only STEP_KEY entries have a %s; extra args are ignored. */
			snprintf(buf, len, diagnoses[i].why, cipher);
			return;
		}
	}
	snprintf(buf, len, "%s failed: %s",
	    step == STEP_ULP ? "TCP_ULP tls" : "installing the key",
	    strerror(err));
}

static void
set_reason(struct ktls *k, enum ktls_dir dir, const char *fmt, const char *arg)
{
	k->state[dir] = KTLS_STATE_UNAVAILABLE;
	snprintf(k->reason[dir], sizeof(k->reason[dir]), fmt, arg);
}

/*
 * The hash of the negotiated suite, which every TLS 1.3 derivation uses:
 * kept at the switch (the SSL may be gone since), asked of the SSL before.
 */
static const EVP_MD *
suite_hash(const struct ktls *k)
{
	if (k->md != NULL || k->ssl == NULL)
		return k->md;
	return SSL_CIPHER_get_handshake_digest(SSL_get_current_cipher(k->ssl));
}

/* The record key and IV of a TLS 1.3 traffic secret (RFC 8446 7.3). */
static int
tls13_key_iv(const struct ktls *k, const struct ktls_cipher *c,
    const unsigned char *secret, size_t secret_len, unsigned char *key,
    unsigned char iv[TLS13_IV_LEN])
{
	const EVP_MD *md = suite_hash(k);

	if (ktls_tls13_expand_label(md, secret, secret_len, "key", key,
		c->key_len) < 0 ||
	    ktls_tls13_expand_label(md, secret, secret_len, "iv", iv,
		TLS13_IV_LEN) < 0)
		return -1;
	return 0;
}

/*
 * TLS 1.2: the key block is client key, server key, client IV, server IV
 * (RFC 5246 6.3; AEAD suites have no MAC keys), mapped onto TX and RX.
 * The IV is the salt (GCM, CCM) or the whole 12 bytes (ChaCha20).
 */
static int
tls12_keys(const struct ktls *k, const struct ktls_cipher *c,
    unsigned char key[2][32], unsigned char iv[2][TLS13_IV_LEN])
{
	const EVP_MD *md = suite_hash(k);
	unsigned char master[SSL_MAX_MASTER_KEY_LENGTH], cr[32], sr[32];
	unsigned char block[2 * 32 + 2 * 12];
	size_t mlen, ivl = c->salt_len > 0 ? c->salt_len : c->iv_len;
	int ret = -1, cl = SSL_is_server(k->ssl) ? KTLS_RX : KTLS_TX;

	mlen = SSL_SESSION_get_master_key(SSL_get_session(k->ssl), master,
	    sizeof(master));
	SSL_get_client_random(k->ssl, cr, sizeof(cr));
	SSL_get_server_random(k->ssl, sr, sizeof(sr));
	if (mlen == 0 ||
	    ktls_tls12_key_block(md, master, mlen, cr, sr, block,
		2 * c->key_len + 2 * ivl) < 0)
		goto out;
	memcpy(key[cl], block, c->key_len);
	memcpy(key[!cl], block + c->key_len, c->key_len);
	memcpy(iv[cl], block + 2 * c->key_len, ivl);
	memcpy(iv[!cl], block + 2 * c->key_len + ivl, ivl);
	ret = 0;
out:
	OPENSSL_cleanse(block, sizeof(block));
	OPENSSL_cleanse(master, sizeof(master));
	return ret;
}

/* Derive the crypto_info for each direction. */
static int
derive(struct ktls *k, union ktls_crypto_info ci[2], size_t *info_len)
{
	const struct ktls_cipher *c = k->cipher;
	unsigned char key[2][32], iv[2][TLS13_IV_LEN];
	int d, ret = -1;

	if (k->version == TLS1_3_VERSION) {
		for (d = 0; d < 2; d++)
			if (tls13_key_iv(k, c, k->secret[d].b, k->secret[d].len,
				key[d], iv[d]) < 0)
				goto out;
	} else if (tls12_keys(k, c, key, iv) < 0)
		goto out;
	for (d = 0; d < 2; d++)
		*info_len = ktls_crypto_info_fill(&ci[d], k->version, c, key[d],
		    iv[d], k->records[d]);
	ret = *info_len > 0 ? 0 : -1;
out:
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(iv, sizeof(iv));
	return ret;
}

int
ktls_tx_key_iv(struct ktls *k, uint16_t version, const struct ktls_cipher *c,
    unsigned char key[32], unsigned char iv[TLS13_IV_LEN])
{
	unsigned char keys[2][32], ivs[2][TLS13_IV_LEN];
	int ret = -1;

	if (version == TLS1_3_VERSION) {
		if (k->secret[KTLS_TX].len == 0) {
			ktls_seterr(k,
			    "the TLS 1.3 send secret is gone (not captured, "
			    "or wiped by ktls_disable() or a failed "
			    "ktls_offload())");
			return -1;
		}
		ret = tls13_key_iv(k, c, k->secret[KTLS_TX].b,
		    k->secret[KTLS_TX].len, key, iv);
	} else if (tls12_keys(k, c, keys, ivs) == 0) {
		memcpy(key, keys[KTLS_TX], sizeof(keys[KTLS_TX]));
		memcpy(iv, ivs[KTLS_TX], sizeof(ivs[KTLS_TX]));
		ret = 0;
	}
	if (ret < 0 && version != TLS1_3_VERSION)
		ktls_seterr(k, "deriving the TLS 1.2 send key failed");
	else if (ret < 0)
		ktls_seterr(k, "deriving the TLS 1.3 send key failed");
	OPENSSL_cleanse(keys, sizeof(keys));
	OPENSSL_cleanse(ivs, sizeof(ivs));
	return ret;
}

/* Whether OpenSSL put kTLS on the socket itself, in either direction. */
static int
openssl_drives_ktls(SSL *ssl)
{
#ifdef BIO_CTRL_GET_KTLS_SEND
	BIO *w = SSL_get_wbio(ssl), *r = SSL_get_rbio(ssl);

	return (w != NULL && BIO_get_ktls_send(w)) ||
	    (r != NULL && BIO_get_ktls_recv(r));
#else
	(void)ssl;
	return 0;
#endif
}

/* Everything that can be checked before the socket is touched. */
static int
preconditions(struct ktls *k)
{
	int v = SSL_version(k->ssl);

	if (!SSL_is_init_finished(k->ssl)) {
		set_reason(k, KTLS_RX, "%s",
		    "the TLS handshake is not complete");
		return -1;
	}
	if (v != TLS1_2_VERSION && v != TLS1_3_VERSION) {
		set_reason(k, KTLS_RX, "%s is not TLS 1.2 or 1.3",
		    SSL_get_version(k->ssl));
		return -1;
	}
	k->version = (uint16_t)v;
	k->is_server = SSL_is_server(k->ssl) ? 1 : 0;
	k->cipher = ktls_cipher_find(SSL_get_current_cipher(k->ssl));
	k->md = SSL_CIPHER_get_handshake_digest(SSL_get_current_cipher(k->ssl));
	if (k->cipher == NULL || k->md == NULL) {
		set_reason(k, KTLS_RX, "kernel TLS has no cipher for %s",
		    SSL_CIPHER_get_name(SSL_get_current_cipher(k->ssl)));
		return -1;
	}
	if (v == TLS1_3_VERSION &&
	    (k->secret[KTLS_TX].len == 0 || k->secret[KTLS_RX].len == 0)) {
		set_reason(k, KTLS_RX, "%s",
		    "TLS 1.3 traffic secrets were not "
		    "captured (ktls_ctx_prepare() not called before the handshake?)");
		return -1;
	}
	if (openssl_drives_ktls(k->ssl)) {
		set_reason(k, KTLS_RX, "%s",
		    "OpenSSL's own kTLS already drives this socket "
		    "(SSL_OP_ENABLE_KTLS set after ktls_new()?)");
		return -1;
	}
	/* Bytes OpenSSL already pulled off the socket would be lost. */
	if (SSL_has_pending(k->ssl)) {
		set_reason(k, KTLS_RX, "%s",
		    "OpenSSL still holds unread record data");
		return -1;
	}
	return 0;
}

static int
install(struct ktls *k, enum ktls_dir dir, const union ktls_crypto_info *ci,
    size_t len)
{
	char why[KTLS_REASON_MAX];

	if (ktls_syscalls()->setsockopt(k->fd, SOL_TLS,
		dir == KTLS_TX ? TLS_TX : TLS_RX, ci, (socklen_t)len) == 0) {
		k->state[dir] = KTLS_STATE_SOFTWARE;
		return 0;
	}
	diagnose(why, sizeof(why), STEP_KEY, errno, k->cipher->name);
	set_reason(k, dir, "%s", why);
	return -1;
}

int
ktls_offload(struct ktls *k, int fd)
{
	union ktls_crypto_info ci[2];
	size_t len = 0;
	char why[KTLS_REASON_MAX];
	int ret = -1;

	k->fd = fd;
	if (preconditions(k) < 0)
		goto rx_failed;
	if (derive(k, ci, &len) < 0) {
		set_reason(k, KTLS_RX, "%s", "deriving the record keys failed");
		goto rx_failed;
	}
	/* Point of no return for the socket starts here. */
	if (ktls_syscalls()->setsockopt(fd, SOL_TCP, TCP_ULP, "tls",
		sizeof("tls")) < 0) {
		diagnose(why, sizeof(why), STEP_ULP, errno, "");
		set_reason(k, KTLS_RX, "%s", why);
		set_reason(k, KTLS_TX, "%s", why);
		goto out;
	}
	if (install(k, KTLS_RX, &ci[KTLS_RX], len) < 0)
		goto rx_failed;
	ret = install(k, KTLS_TX, &ci[KTLS_TX], len);
	goto out;
rx_failed:
	if (k->state[KTLS_TX] == KTLS_STATE_OFF)
		set_reason(k, KTLS_TX, "%s", "kept in userspace with RX");
out:
	OPENSSL_cleanse(ci, sizeof(ci));
	if (ret < 0)
		ktls_seterr(k, "kTLS %s: %s",
		    ktls_active(k, KTLS_RX) ? "TX" : "RX",
		    k->reason[ktls_active(k, KTLS_RX) ? KTLS_TX : KTLS_RX]);
	/* TLS 1.3 keeps the current secrets for KeyUpdate; 1.2 never needs them. */
	if (k->version != TLS1_3_VERSION || ret < 0)
		OPENSSL_cleanse(k->secret, sizeof(k->secret));
	return ret;
}

/*
 * Install the key and IV of a TLS 1.3 traffic secret for dir, records
 * numbered from seq. With the kernel's errno in *err on failure.
 */
static int
install_secret(struct ktls *k, enum ktls_dir dir, const unsigned char *secret,
    size_t secret_len, uint64_t seq, int *err)
{
	unsigned char key[32], iv[TLS13_IV_LEN];
	union ktls_crypto_info ci;
	size_t len;
	int ret = -1;

	*err = 0;
	if (tls13_key_iv(k, k->cipher, secret, secret_len, key, iv) < 0 ||
	    (len = ktls_crypto_info_fill(&ci, k->version, k->cipher, key, iv,
		 seq)) == 0)
		goto out;
	if (ktls_syscalls()->setsockopt(k->fd, SOL_TLS,
		dir == KTLS_TX ? TLS_TX : TLS_RX, &ci, (socklen_t)len) < 0)
		*err = errno;
	else
		ret = 0;
out:
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(iv, sizeof(iv));
	OPENSSL_cleanse(&ci, sizeof(ci));
	return ret;
}

/* First, so that the hash is looked for only with a secret to use. */
static int
can_rekey(struct ktls *k, enum ktls_dir dir)
{
	/* tests/fuzz/fuzz_records.c runs without an SSL, and without a switch. */
	if (k->version != TLS1_3_VERSION || k->secret[dir].len == 0 ||
	    k->cipher == NULL) {
		ktls_seterr(k, "KeyUpdate outside TLS 1.3");
		return 0;
	}
	return 1;
}

/*
 * TLS 1.3 KeyUpdate for one direction (RFC 8446 7.2): the next secret is
 * HKDF-Expand-Label(secret, "traffic upd", "", Hash.length), and records
 * under it start again at sequence number 0. The kernel (6.14+) takes a
 * second TLS_TX/TLS_RX for the same version and cipher; older kernels
 * answer EBUSY, and then the connection cannot go on.
 */
int
ktls_rekey(struct ktls *k, enum ktls_dir dir)
{
	struct ktls_secret *s = &k->secret[dir];
	unsigned char next[EVP_MAX_MD_SIZE];
	int err, ret = -1;

	if (!can_rekey(k, dir))
		return -1;
	if (ktls_tls13_expand_label(suite_hash(k), s->b, s->len, "traffic upd",
		next, s->len) < 0) {
		ktls_seterr(k, "KeyUpdate: deriving the next key failed");
		goto out;
	}
	if (install_secret(k, dir, next, s->len, 0, &err) < 0) {
		if (err == EBUSY)
			ktls_seterr(k,
			    "this kernel cannot rekey kTLS (Linux 6.14 "
			    "or later can): the %s key cannot be updated",
			    dir == KTLS_TX ? "send" : "receive");
		else if (err == 0)
			ktls_seterr(k,
			    "KeyUpdate: deriving the next key failed");
		else
			ktls_seterr(k,
			    "KeyUpdate: installing the new %s key: %s",
			    dir == KTLS_TX ? "TLS_TX" : "TLS_RX",
			    strerror(err));
		goto out;
	}
	memcpy(s->b, next, s->len);
	k->records[dir] = 0;
	ret = 0;
out:
	OPENSSL_cleanse(next, sizeof(next));
	return ret;
}

/*
 * Linux 6.14+ looks at the first byte of every handshake record it
 * decrypts and, if it is 24 (KeyUpdate), stops decrypting (EKEYEXPIRED)
 * until a new TLS_RX key is installed. A KeyUpdate cut across records, a
 * ticket fragment that happens to start with that byte, or in TLS 1.2 a
 * renegotiation ClientHello fragment starting with it (the kernel looks
 * in TLS 1.2 too), trips it while the message is still incomplete and the
 * next record is still under the current key. Installing the kernel's own
 * receive state again -- the crypto_info it reports, key, salt and
 * sequence number as they are -- lets reading go on in TLS 1.3. In TLS
 * 1.2 the kernel (seen on 7.2) refuses a second TLS_RX with EBUSY, so the
 * connection is stuck there: said plainly, and the caller ends it.
 */
int
ktls_rx_resume(struct ktls *k)
{
	union ktls_crypto_info ci;
	socklen_t len;
	int ret = -1;

	if (k->cipher == NULL) {
		ktls_seterr(k, "kTLS read: no cipher to resume with");
		return -1;
	}
	/* The kernel wants exactly the cipher's struct size. */
	len = (socklen_t)k->cipher->info_len;
	if (ktls_syscalls()->getsockopt(k->fd, SOL_TLS, TLS_RX, &ci, &len) <
		0 ||
	    len != k->cipher->info_len) {
		ktls_seterr(k, "kTLS read: cannot read the receive state: %s",
		    strerror(errno));
		goto out;
	}
	if (ktls_syscalls()->setsockopt(k->fd, SOL_TLS, TLS_RX, &ci, len) < 0) {
		if (k->version != TLS1_3_VERSION)
			ktls_seterr(k,
			    "kTLS read: the kernel stopped decrypting after a "
			    "TLS 1.2 handshake record starting with byte 24 "
			    "(it reads that as a TLS 1.3 KeyUpdate) and takes "
			    "no receive key again in TLS 1.2 (%s): the "
			    "connection cannot go on",
			    strerror(errno));
		else
			ktls_seterr(k,
			    "kTLS read: the kernel took a fragment for a "
			    "KeyUpdate and refused the same key again: %s",
			    strerror(errno));
		goto out;
	}
	ret = 0;
out:
	OPENSSL_cleanse(&ci, sizeof(ci));
	return ret;
}

static int
set_flag(struct ktls *k, enum ktls_dir dir, int opt, const char *name)
{
	unsigned int one = 1;

	if (!ktls_active(k, dir)) {
		ktls_seterr(k, "%s needs kTLS %s", name,
		    dir == KTLS_TX ? "TX" : "RX");
		return -1;
	}
	if (ktls_syscalls()->setsockopt(k->fd, SOL_TLS, opt, &one,
		sizeof(one)) == 0)
		return 0;
	ktls_seterr(k, "%s: %s", name,
	    errno == ENOPROTOOPT || errno == EINVAL ?
		"not supported by this kernel" :
		strerror(errno));
	return -1;
}

int
ktls_tx_zerocopy(struct ktls *k)
{
	return set_flag(k, KTLS_TX, TLS_TX_ZEROCOPY_RO, "TLS_TX_ZEROCOPY_RO");
}

int
ktls_rx_expect_no_pad(struct ktls *k)
{
	if (k->version != TLS1_3_VERSION) {
		ktls_seterr(k, "TLS_RX_EXPECT_NO_PAD: TLS 1.3 only");
		return -1;
	}
	return set_flag(k, KTLS_RX, TLS_RX_EXPECT_NO_PAD,
	    "TLS_RX_EXPECT_NO_PAD");
}

void
ktls_disable(struct ktls *k, const char *why)
{
	int d;

	for (d = 0; d < 2; d++) {
		k->state[d] = KTLS_STATE_OFF;
		snprintf(k->reason[d], sizeof(k->reason[d]), "%s", why);
	}
	OPENSSL_cleanse(k->secret, sizeof(k->secret));
}

enum ktls_state
ktls_state(const struct ktls *k, enum ktls_dir dir)
{
	return k->state[dir];
}

int
ktls_active(const struct ktls *k, enum ktls_dir dir)
{
	return k != NULL &&
	    (k->state[dir] == KTLS_STATE_SOFTWARE ||
		k->state[dir] == KTLS_STATE_HARDWARE);
}

const char *
ktls_reason(const struct ktls *k, enum ktls_dir dir)
{
	return k->reason[dir];
}

void
ktls_set_hardware(struct ktls *k, enum ktls_dir dir)
{
	if (ktls_active(k, dir))
		k->state[dir] = KTLS_STATE_HARDWARE;
}

void
ktls_status_line(const struct ktls *k, enum ktls_dir dir, char *buf, size_t len)
{
	static const char *const what[] = {
		[KTLS_STATE_OFF] = "off",
		[KTLS_STATE_SOFTWARE] = "active (software)",
		[KTLS_STATE_HARDWARE] = "active (hardware)",
		[KTLS_STATE_UNAVAILABLE] = "unavailable",
	};
	const char *name = dir == KTLS_TX ? "TX" : "RX";

	if (k->reason[dir][0] != '\0' && !ktls_active(k, dir))
		snprintf(buf, len, "kTLS %s: %s (%s)", name,
		    what[k->state[dir]], k->reason[dir]);
	else
		snprintf(buf, len, "kTLS %s: %s", name, what[k->state[dir]]);
}

const char *
ktls_error(const struct ktls *k)
{
	return k->err[0] != '\0' ? k->err : "unknown kTLS error";
}
