/*
 * mtls.c - SSL_CTX setup for mutual TLS and error messages in words.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "ktls_keys.h"
#include "mtls.h"

const char *
mtls_err_reason(char *buf, size_t len, const char *fallback)
{
	unsigned long e = ERR_peek_error();
	const char *r = fallback;

	if (e != 0 && (r = ERR_reason_error_string(e)) == NULL) {
		ERR_error_string_n(e, buf, len);
		return buf;
	}
	snprintf(buf, len, "%s", r);
	return buf;
}

/* Load one credential file; on failure name the file and the reason. */
static int
load(SSL_CTX *ctx, const char *what, const char *path, char *err, size_t errlen)
{
	char why[MTLS_REASON_MAX];
	int ok;

	if (strcmp(what, "certificate") == 0)
		ok = SSL_CTX_use_certificate_chain_file(ctx, path);
	else if (strcmp(what, "private key") == 0)
		ok = SSL_CTX_use_PrivateKey_file(ctx, path, SSL_FILETYPE_PEM);
	else
		ok = SSL_CTX_load_verify_locations(ctx, path, NULL);
	if (ok == 1)
		return 0;
	if (ERR_GET_REASON(ERR_peek_last_error()) ==
	    X509_R_KEY_VALUES_MISMATCH) {
		snprintf(err, errlen,
		    "private key %s does not match the "
		    "certificate",
		    path);
		return -1;
	}
	/* A system error (the file is missing or unreadable) comes first. */
	if (ERR_GET_LIB(ERR_peek_error()) == ERR_LIB_SYS)
		snprintf(err, errlen, "cannot load %s %s: %s", what, path,
		    strerror(ERR_GET_REASON(ERR_peek_error())));
	else
		snprintf(err, errlen, "cannot load %s %s: %s", what, path,
		    mtls_err_reason(why, sizeof(why), "not a PEM file"));
	return -1;
}

/*
 * TLS 1.2 default: forward-secret AEAD suites only, the ones kernel TLS
 * (and NICs) can take. OpenSSL's own default also allows CBC suites,
 * which would silently keep a connection in userspace.
 */
#define MTLS_TLS12_CIPHERS "ECDHE+AESGCM:ECDHE+CHACHA20:ECDHE-ECDSA-AES128-CCM"

static int
set_protocol(SSL_CTX *ctx, const struct mtls_options *o, char *err,
    size_t errlen)
{
	int lo = o->tls_version ? o->tls_version : TLS1_2_VERSION;
	int hi = o->tls_version ? o->tls_version : TLS1_3_VERSION;
	char why[MTLS_REASON_MAX];

	SSL_CTX_set_options(ctx,
	    SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	if (!SSL_CTX_set_min_proto_version(ctx, lo) ||
	    !SSL_CTX_set_max_proto_version(ctx, hi)) {
		snprintf(err, errlen, "cannot set the TLS version: %s",
		    mtls_err_reason(why, sizeof(why), "unsupported"));
		return -1;
	}
	if (!SSL_CTX_set_cipher_list(ctx,
		o->ciphers != NULL ? o->ciphers : MTLS_TLS12_CIPHERS)) {
		snprintf(err, errlen,
		    "--ciphers '%s': no usable TLS 1.2 cipher", o->ciphers);
		return -1;
	}
	if (o->ciphersuites != NULL &&
	    !SSL_CTX_set_ciphersuites(ctx, o->ciphersuites)) {
		snprintf(err, errlen,
		    "--ciphersuites '%s': no usable TLS 1.3 "
		    "cipher suite",
		    o->ciphersuites);
		return -1;
	}
	return 0;
}

/*
 * The authorization generation of a server context (mtls_set_generation),
 * under a lock: a reload may set it while client threads read it.
 */
struct generation {
	pthread_mutex_t lock;
	unsigned char digest[MTLS_GENERATION_LEN];
};

static int gen_index = -1;

static void
generation_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
    void *argp)
{
	struct generation *g = ptr;

	(void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
	if (g == NULL)
		return;
	pthread_mutex_destroy(&g->lock);
	OPENSSL_free(g);
}

int
mtls_set_generation(SSL_CTX *ctx, const unsigned char *gen)
{
	struct generation *g;

	if (gen_index < 0 || (g = SSL_CTX_get_ex_data(ctx, gen_index)) == NULL)
		return -1;
	pthread_mutex_lock(&g->lock);
	memcpy(g->digest, gen, MTLS_GENERATION_LEN);
	pthread_mutex_unlock(&g->lock);
	return 0;
}

int
mtls_get_generation(SSL_CTX *ctx, unsigned char *gen)
{
	struct generation *g;

	if (gen_index < 0 || (g = SSL_CTX_get_ex_data(ctx, gen_index)) == NULL)
		return -1;
	pthread_mutex_lock(&g->lock);
	memcpy(gen, g->digest, MTLS_GENERATION_LEN);
	pthread_mutex_unlock(&g->lock);
	return 0;
}

static int
digest_cmp(const void *a, const void *b)
{
	return memcmp(a, b, MTLS_GENERATION_LEN);
}

/*
 * The SHA-256 of every CRL in the store, sorted: the same CRLs make the
 * same generation in whatever order a directory listed them.
 */
static int
hash_crls(EVP_MD_CTX *md, X509_STORE *store)
{
	STACK_OF(X509_OBJECT) *objs = X509_STORE_get0_objects(store);
	int i, n = 0, total = sk_X509_OBJECT_num(objs);
	unsigned char(*d)[MTLS_GENERATION_LEN];
	unsigned len;
	X509_CRL *crl;

	if (total <= 0)
		return 0;
	if ((d = OPENSSL_malloc((size_t)total * sizeof(*d))) == NULL)
		return -1;
	for (i = 0; i < total; i++) {
		crl = X509_OBJECT_get0_X509_CRL(sk_X509_OBJECT_value(objs, i));
		if (crl != NULL &&
		    X509_CRL_digest(crl, EVP_sha256(), d[n], &len))
			n++;
	}
	qsort(d, (size_t)n, sizeof(*d), digest_cmp);
	i = EVP_DigestUpdate(md, d, (size_t)n * sizeof(*d));
	OPENSSL_free(d);
	return i ? 0 : -1;
}

/* The SHA-256 of one file's contents, so that files are told apart. */
static int
hash_file(EVP_MD_CTX *md, const char *path, char *err, size_t errlen)
{
	unsigned char buf[4096], d[EVP_MAX_MD_SIZE];
	EVP_MD_CTX *f = EVP_MD_CTX_new();
	BIO *bio = BIO_new_file(path, "rb");
	unsigned len;
	int n = 0, ok;

	ok = f != NULL && bio != NULL &&
	    EVP_DigestInit_ex(f, EVP_sha256(), NULL);
	while (ok && (n = BIO_read(bio, buf, sizeof(buf))) > 0)
		ok = EVP_DigestUpdate(f, buf, (size_t)n);
	ok = ok && n == 0 && EVP_DigestFinal_ex(f, d, &len) &&
	    EVP_DigestUpdate(md, d, len);
	if (!ok)
		snprintf(err, errlen, "%s: %s", path,
		    bio == NULL ? strerror(errno) : "cannot read it");
	BIO_free(bio);
	EVP_MD_CTX_free(f);
	return ok ? 0 : -1;
}

/* The first generation of a server context: its CRLs and auth_files. */
static int
generation_setup(SSL_CTX *ctx, const struct mtls_options *o, char *err,
    size_t errlen)
{
	static const char tag[] = "hello_ktls authorization generation 1";
	unsigned char gen[EVP_MAX_MD_SIZE];
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	const char *const *f;
	unsigned len;
	int ret = -1;

	if (md == NULL || !EVP_DigestInit_ex(md, EVP_sha256(), NULL) ||
	    !EVP_DigestUpdate(md, tag, sizeof(tag)) ||
	    hash_crls(md, SSL_CTX_get_cert_store(ctx)) < 0) {
		snprintf(err, errlen, "cannot digest the CRLs: out of memory");
		goto out;
	}
	for (f = o->auth_files; f != NULL && *f != NULL; f++)
		if (hash_file(md, *f, err, errlen) < 0)
			goto out;
	if (!EVP_DigestFinal_ex(md, gen, &len) || len != MTLS_GENERATION_LEN ||
	    mtls_set_generation(ctx, gen) < 0) {
		snprintf(err, errlen,
		    "cannot set the authorization generation");
		goto out;
	}
	ret = 0;
out:
	EVP_MD_CTX_free(md);
	return ret;
}

/*
 * A resumed session skips certificate verification: OpenSSL takes the
 * ticket's word for the client. So each ticket is looked at again as it
 * is decrypted, and used only if it was issued under the authorization
 * generation in force now (no CRL or policy changed since) and its
 * client's certificate verifies now (not expired, not revoked by a CRL
 * added since: mtls_verify_leaf). Any other ticket is ignored: its client
 * goes through a full handshake, which verifies everything again (a
 * server may always decline a ticket, RFC 8446 4.6.1, RFC 5077 3.1).
 */
static SSL_TICKET_RETURN
ticket_check(SSL *ssl, SSL_SESSION *sess, const unsigned char *keyname,
    size_t keyname_len, SSL_TICKET_STATUS status, void *arg)
{
	unsigned char now[MTLS_GENERATION_LEN];
	void *issued;
	size_t len;
	X509 *peer;

	(void)keyname, (void)keyname_len, (void)arg;
	if (status != SSL_TICKET_SUCCESS && status != SSL_TICKET_SUCCESS_RENEW)
		return SSL_TICKET_RETURN_IGNORE_RENEW;
	/* The cheap test first: a stale generation needs no verification. */
	if (!SSL_SESSION_get0_ticket_appdata(sess, &issued, &len) ||
	    len != sizeof(now) ||
	    mtls_get_generation(SSL_get_SSL_CTX(ssl), now) < 0 ||
	    CRYPTO_memcmp(issued, now, sizeof(now)) != 0)
		return SSL_TICKET_RETURN_IGNORE_RENEW;
	if ((peer = SSL_SESSION_get0_peer(sess)) == NULL ||
	    !mtls_verify_leaf(ssl, peer))
		return SSL_TICKET_RETURN_IGNORE_RENEW;
	return status == SSL_TICKET_SUCCESS_RENEW ?
	    SSL_TICKET_RETURN_USE_RENEW :
	    SSL_TICKET_RETURN_USE;
}

/* Each new ticket carries the generation it is issued under. */
static int
ticket_gen(SSL *ssl, void *arg)
{
	unsigned char gen[MTLS_GENERATION_LEN];

	(void)arg;
	return mtls_get_generation(SSL_get_SSL_CTX(ssl), gen) == 0 &&
	    SSL_SESSION_set1_ticket_appdata(SSL_get0_session(ssl), gen,
		sizeof(gen));
}

/*
 * Resumption: a server that verifies client certificates must name its
 * sessions (without a session id context OpenSSL refuses every resumption
 * with internal_error), and re-checks each ticket's client.
 */
static int
server_resumption(SSL_CTX *ctx, int no_tickets, char *err, size_t errlen)
{
	static const unsigned char sid_ctx[] = "hello_ktls";
	struct generation *g;

	/* Called while the program is still one thread (mtls_ctx_new). */
	if (gen_index < 0)
		gen_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL,
		    generation_free);
	if (gen_index < 0 || (g = OPENSSL_zalloc(sizeof(*g))) == NULL) {
		snprintf(err, errlen, "cannot set up session resumption");
		return -1;
	}
	pthread_mutex_init(&g->lock, NULL);
	if (!SSL_CTX_set_ex_data(ctx, gen_index, g)) {
		generation_free(NULL, g, NULL, 0, 0, NULL);
		snprintf(err, errlen, "cannot set up session resumption");
		return -1;
	}
	/*
	 * One TLS 1.3 ticket per handshake, not OpenSSL's two: each costs a
	 * session copy, its encoding and encryption (about 0.15 ms of CPU
	 * in a 1.2 ms full mTLS handshake, measured with make bench), and a
	 * client resumes with one (RFC 8446 4.6.1 lets it reuse it). None
	 * at all when asked: SSL_OP_NO_TICKET for TLS 1.2's.
	 */
	if (no_tickets)
		SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	if (!SSL_CTX_set_session_id_context(ctx, sid_ctx,
		sizeof(sid_ctx) - 1) ||
	    !SSL_CTX_set_num_tickets(ctx, no_tickets ? 0 : 1) ||
	    !SSL_CTX_set_session_ticket_cb(ctx, ticket_gen, ticket_check,
		NULL)) {
		snprintf(err, errlen, "cannot set up session resumption");
		return -1;
	}
	return 0;
}

/* Never a passphrase prompt on a terminal: a key asking for one fails. */
static int
no_prompt(char *buf, int size, int rwflag, void *u)
{
	(void)rwflag, (void)u;
	if (size > 0)
		buf[0] = '\0';
	return -1;
}

/*
 * Our certificate and key. The key always comes through OpenSSL's stores
 * (mtls_store.c): a path or a URI, a PEM key, an encrypted one, or a TSS2
 * key file that the tpm2 provider decodes. The certificate does for a URI.
 */
static int
load_identity(SSL_CTX *ctx, const struct mtls_options *o, const char *propq,
    char *err, size_t errlen)
{
	SSL_CTX_set_default_passwd_cb(ctx, no_prompt);
	if (mtls_store_is_uri(o->cert) ?
		mtls_store_use_cert(ctx, o->cert, propq, err, errlen) < 0 :
		load(ctx, "certificate", o->cert, err, errlen) < 0)
		return -1;
	return mtls_store_use_key(ctx, o->key, o->key_pass, propq, err, errlen);
}

SSL_CTX *
mtls_ctx_new(const struct mtls_options *o, char *err, size_t errlen)
{
	const char *propq = mtls_store_propq(o);
	SSL_CTX *ctx;
	char why[MTLS_REASON_MAX];
	int mode = SSL_VERIFY_PEER;

	if (mtls_store_providers(o->providers, err, errlen) < 0)
		return NULL;
	/* The query decides whose signature code uses our key (a TPM's). */
	ctx = SSL_CTX_new_ex(NULL, propq,
	    o->server ? TLS_server_method() : TLS_client_method());
	if (ctx == NULL) {
		snprintf(err, errlen, "cannot create TLS context: %s",
		    mtls_err_reason(why, sizeof(why),
			propq != NULL ? "bad --propquery" : "out of memory"));
		return NULL;
	}
	if (set_protocol(ctx, o, err, errlen) < 0 ||
	    load_identity(ctx, o, propq, err, errlen) < 0 ||
	    load(ctx, "CA certificate", o->ca, err, errlen) < 0)
		goto fail;
	if (!SSL_CTX_check_private_key(ctx)) {
		snprintf(err, errlen,
		    "private key %s does not match "
		    "certificate %s",
		    o->key, o->cert);
		goto fail;
	}
	if (o->server) {
		mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
		/*
		 * No server-side session cache: every client would leave a
		 * session with its certificate in it for 5 minutes (20480 at
		 * most). Tickets (TLS 1.3, and RFC 5077 in TLS 1.2) are
		 * self-contained: clients resume with those.
		 */
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
		if (server_resumption(ctx, o->no_tickets, err, errlen) < 0)
			goto fail;
	}
	SSL_CTX_set_verify(ctx, mode, NULL);
	if ((o->server &&
		(mtls_crl_setup(ctx, o, err, errlen) < 0 ||
		    mtls_ocsp_setup(ctx, o, err, errlen) < 0 ||
		    generation_setup(ctx, o, err, errlen) < 0)) ||
	    mtls_staple_setup(ctx, o, err, errlen) < 0)
		goto fail;
	/* Before ktls_ctx_prepare, which keeps it and calls it too. */
	SSL_CTX_set_keylog_callback(ctx, o->keylog);
	if (ktls_ctx_prepare(ctx, err, errlen) < 0)
		goto fail;
	ERR_clear_error();
	return ctx;
fail:
	SSL_CTX_free(ctx);
	ERR_clear_error();
	return NULL;
}

int
mtls_set_peer_host(SSL *ssl, const char *host)
{
	unsigned char addr[16];

	if (inet_pton(AF_INET, host, addr) == 1 ||
	    inet_pton(AF_INET6, host, addr) == 1)
		return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl),
			   host) ?
		    0 :
		    -1;
	if (!SSL_set_tlsext_host_name(ssl, host) || !SSL_set1_host(ssl, host))
		return -1;
	return 0;
}

/*
 * Alerts with which a server refuses the client's certificate. A TLS 1.3
 * client sees its handshake succeed, and this alert only at its next read
 * (through OpenSSL or kTLS RX), so it is said plainly.
 */
static const struct {
	int desc;
	const char *words;
} refusals[] = {
	{ SSL_AD_CERTIFICATE_REVOKED, "certificate revoked" },
	{ SSL_AD_ACCESS_DENIED, "access denied" },
	{ SSL_AD_CERTIFICATE_REQUIRED, "certificate required" },
	{ SSL_AD_BAD_CERTIFICATE, "bad certificate" },
	{ SSL_AD_CERTIFICATE_EXPIRED, "certificate expired" },
	/* OpenSSL's alert for an OCSP status unknown or not had. */
	{ SSL_AD_CERTIFICATE_UNKNOWN, "certificate unknown" },
};

const char *
mtls_refusal_words(int alert_desc)
{
	size_t i;

	for (i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++)
		if (refusals[i].desc == alert_desc)
			return refusals[i].words;
	return NULL;
}

const char *
mtls_refusal_reason(SSL *ssl)
{
	unsigned long e = ERR_peek_error();

	if (SSL_is_server(ssl) || ERR_GET_LIB(e) != ERR_LIB_SSL ||
	    ERR_GET_REASON(e) < SSL_AD_REASON_OFFSET)
		return NULL;
	return mtls_refusal_words(ERR_GET_REASON(e) - SSL_AD_REASON_OFFSET);
}

/* "subject ..., serial ..." after a refusal's reason, where noted. */
static void
refused_names(SSL *ssl, char *buf, size_t len)
{
	const char *names = mtls_verify_refused(ssl);
	size_t n = strlen(buf);

	if (names != NULL && n < len)
		snprintf(buf + n, len - n, " (%s)", names);
}

void
mtls_ssl_error(SSL *ssl, int ret, char *buf, size_t len)
{
	long verify = SSL_get_verify_result(ssl);
	int e = SSL_get_error(ssl, ret), saved = errno;
	const char *peer = SSL_is_server(ssl) ? "client" : "server", *words;
	char why[MTLS_REASON_MAX];

	if ((words = mtls_staple_refused(ssl)) != NULL)
		snprintf(buf, len, "%s", words);
	else if (verify != X509_V_OK) {
		snprintf(buf, len, "%s certificate rejected: %s", peer,
		    X509_verify_cert_error_string(verify));
		refused_names(ssl, buf, len);
	} else if ((words = mtls_refusal_reason(ssl)) != NULL)
		snprintf(buf, len, "access denied by the server: %s", words);
	else if (ERR_peek_error() != 0 &&
	    ERR_GET_REASON(ERR_peek_error()) ==
		SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE)
		snprintf(buf, len,
		    "client certificate rejected: the client "
		    "sent no certificate");
	else if (ERR_GET_LIB(ERR_peek_error()) == ERR_LIB_SSL &&
	    ERR_GET_REASON(ERR_peek_error()) >= SSL_AD_REASON_OFFSET)
		/* OpenSSL files an alert from the peer at this offset. */
		snprintf(buf, len, "the %s refused the connection: %s", peer,
		    mtls_err_reason(why, sizeof(why), "alert"));
	else if (ERR_GET_REASON(ERR_peek_error()) ==
	    SSL_R_UNEXPECTED_EOF_WHILE_READING)
		snprintf(buf, len,
		    "the %s closed the connection without "
		    "close_notify (truncated)",
		    peer);
	else if (e == SSL_ERROR_SSL)
		mtls_err_reason(buf, len, "protocol error");
	else if ((e == SSL_ERROR_SYSCALL || e == SSL_ERROR_WANT_READ ||
		     e == SSL_ERROR_WANT_WRITE) &&
	    (saved == EAGAIN || saved == EWOULDBLOCK))
		/* SO_RCVTIMEO/SO_SNDTIMEO ran out on a blocking socket. */
		snprintf(buf, len, "timed out waiting for the %s", peer);
	else if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		snprintf(buf, len, "interrupted while waiting for the %s",
		    peer);
	else if (e == SSL_ERROR_SYSCALL && saved != 0)
		snprintf(buf, len, "%s", strerror(saved));
	else if (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN)
		snprintf(buf, len, "the %s closed the connection", peer);
	else
		snprintf(buf, len, "TLS error %d", e);
	ERR_clear_error();
}

int
mtls_peer_names(SSL *ssl, char *subject, char *issuer, size_t len)
{
	X509 *cert = SSL_get1_peer_certificate(ssl);

	if (cert == NULL)
		return -1;
	X509_NAME_oneline(X509_get_subject_name(cert), subject, (int)len);
	X509_NAME_oneline(X509_get_issuer_name(cert), issuer, (int)len);
	X509_free(cert);
	return 0;
}

char *
mtls_serial_hex(const X509 *cert)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
	char *hex = bn != NULL ? BN_bn2hex(bn) : NULL;

	BN_free(bn);
	return hex;
}

void
mtls_asn1_time(const ASN1_TIME *t, char *buf, size_t len)
{
	struct tm tm;

	buf[0] = '\0';
	if (t != NULL && ASN1_TIME_to_tm(t, &tm))
		strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
