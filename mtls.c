/*
 * mtls.c - SSL_CTX setup for mutual TLS and error messages in words.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/err.h>
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
 * A resumed session skips certificate verification: OpenSSL takes the
 * ticket's word for the client. So each ticket is looked at again as it
 * is decrypted, and one whose client certificate is no longer valid (it
 * expired since the ticket was issued) is ignored: the client goes
 * through a full handshake, which verifies its certificate again (a
 * server may always decline a ticket, RFC 8446 4.6.1, RFC 5077 3.1).
 */
static SSL_TICKET_RETURN
ticket_check(SSL *ssl, SSL_SESSION *sess, const unsigned char *keyname,
    size_t keyname_len, SSL_TICKET_STATUS status, void *arg)
{
	X509 *peer;

	(void)ssl, (void)keyname, (void)keyname_len, (void)arg;
	if (status != SSL_TICKET_SUCCESS && status != SSL_TICKET_SUCCESS_RENEW)
		return SSL_TICKET_RETURN_IGNORE_RENEW;
	peer = SSL_SESSION_get0_peer(sess);
	if (peer == NULL ||
	    X509_cmp_current_time(X509_get0_notAfter(peer)) <= 0 ||
	    X509_cmp_current_time(X509_get0_notBefore(peer)) >= 0)
		return SSL_TICKET_RETURN_IGNORE_RENEW;
	return status == SSL_TICKET_SUCCESS_RENEW ?
	    SSL_TICKET_RETURN_USE_RENEW :
	    SSL_TICKET_RETURN_USE;
}

/*
 * Resumption: a server that verifies client certificates must name its
 * sessions (without a session id context OpenSSL refuses every resumption
 * with internal_error), and re-checks each ticket's client.
 */
static int
server_resumption(SSL_CTX *ctx, char *err, size_t errlen)
{
	static const unsigned char sid_ctx[] = "hello_ktls";

	if (!SSL_CTX_set_session_id_context(ctx, sid_ctx,
		sizeof(sid_ctx) - 1) ||
	    !SSL_CTX_set_session_ticket_cb(ctx, NULL, ticket_check, NULL)) {
		snprintf(err, errlen, "cannot set up session resumption");
		return -1;
	}
	return 0;
}

SSL_CTX *
mtls_ctx_new(const struct mtls_options *o, char *err, size_t errlen)
{
	SSL_CTX *ctx;
	char why[MTLS_REASON_MAX];
	int mode = SSL_VERIFY_PEER;

	ctx =
	    SSL_CTX_new(o->server ? TLS_server_method() : TLS_client_method());
	if (ctx == NULL) {
		snprintf(err, errlen, "cannot create TLS context: %s",
		    mtls_err_reason(why, sizeof(why), "out of memory"));
		return NULL;
	}
	if (set_protocol(ctx, o, err, errlen) < 0 ||
	    load(ctx, "certificate", o->cert, err, errlen) < 0 ||
	    load(ctx, "private key", o->key, err, errlen) < 0 ||
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
		if (server_resumption(ctx, err, errlen) < 0)
			goto fail;
	}
	SSL_CTX_set_verify(ctx, mode, NULL);
	if ((o->server &&
		(mtls_crl_setup(ctx, o, err, errlen) < 0 ||
		    mtls_ocsp_setup(ctx, o, err, errlen) < 0)) ||
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
