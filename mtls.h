/*
 * mtls.h - the mutual-TLS side shared by both programs: an SSL_CTX that
 * demands and verifies the peer's certificate, and plain-words errors.
 */
#ifndef MTLS_H
#define MTLS_H

#include <stddef.h>

#include <openssl/ssl.h>

/* Room for one OpenSSL error reason (mtls_err_reason). */
#define MTLS_REASON_MAX 256

/* What an mTLS context is made of. */
struct mtls_options {
	int server; /* else a client */
	const char *cert, *key, *ca;
	int tls_version;          /* TLS1_2_VERSION, TLS1_3_VERSION, 0: both */
	const char *ciphers;      /* TLS 1.2 list, NULL: kTLS-capable AEADs */
	const char *ciphersuites; /* TLS 1.3 list, NULL: OpenSSL's */
	SSL_CTX_keylog_cb_func keylog; /* also gets every keylog line, or NULL */
	/* Server: client certificate revocation (mtls_crl.c). */
	const char *crl;     /* CRL file or directory of them, or NULL */
	int crl_check_chain; /* every certificate of the chain, not the leaf */
	long crl_grace;      /* seconds a CRL may be past its nextUpdate */
	int revocation_soft; /* an issuer without a CRL passes, noted */
	/*
	 * Server: files whose contents, with the CRLs', decide who gets in
	 * (--policy): NULL-terminated, or NULL. A ticket issued before any
	 * of them changed is not resumed (mtls_set_generation).
	 */
	const char *const *auth_files;
};

/* Bytes of an authorization generation: a SHA-256 digest. */
#define MTLS_GENERATION_LEN 32

/*
 * An SSL_CTX for o: TLS 1.2-1.3 (or the pinned version), no
 * renegotiation or compression, our certificate and key, the CA, peer
 * verification (a server requires a client certificate), and the kTLS
 * keylog hook. Returns NULL with one line in err naming the file or
 * setting at fault.
 */
SSL_CTX *mtls_ctx_new(const struct mtls_options *o, char *err, size_t errlen);

/*
 * A server context's authorization generation: a digest of what decides
 * admission (the CRLs in its store and o->auth_files, set by
 * mtls_ctx_new). Every session ticket carries the generation it was
 * issued under; one of another generation is declined and its client
 * goes through a full handshake. Whoever changes admission on a live
 * context (adds a CRL, loads a new policy) sets a new one; any thread
 * may call these at any time. 0, or -1 (not a server context).
 */
int mtls_set_generation(SSL_CTX *ctx, const unsigned char *gen);
int mtls_get_generation(SSL_CTX *ctx, unsigned char *gen);

/*
 * Bind ssl to the name or address it connects to: an IP literal is
 * checked against the certificate's IP SANs, a name against its DNS
 * names (and sent as SNI). Returns 0 or -1.
 */
int mtls_set_peer_host(SSL *ssl, const char *host);

/* Why SSL_connect/SSL_accept/SSL_read failed, in one line. */
void mtls_ssl_error(SSL *ssl, int ret, char *buf, size_t len);

/*
 * The oldest OpenSSL error reason in the queue, or fallback, written to
 * buf (MTLS_REASON_MAX bytes hold it); returns buf. No static buffer:
 * the server's client threads call this at once.
 */
const char *mtls_err_reason(char *buf, size_t len, const char *fallback);

/*
 * The words for an alert with which a server refuses a client's
 * certificate ("certificate revoked"), or NULL for any other alert.
 */
const char *mtls_refusal_words(int alert_desc);

/*
 * For a client: the words of the refusal alert that ended its last
 * OpenSSL call (the error queue's oldest error), or NULL.
 */
const char *mtls_refusal_reason(SSL *ssl);

/*
 * A server's client checks (mtls_crl.c, called by mtls_ctx_new): a verify
 * callback that notes the refused certificate, and with o->crl the CRLs,
 * each checked (parse, signature by a --ca certificate, dates) and added
 * to the context's store with the CRL flags. -1 with one line in err,
 * "--crl FILE: reason".
 */
int mtls_crl_setup(SSL_CTX *ctx, const struct mtls_options *o, char *err,
    size_t errlen);

/* Lines to show at start (a CRL used within --crl-grace), or "". */
const char *mtls_crl_notes(SSL_CTX *ctx);

/*
 * Why this connection's client passed a failed revocation check (no CRL
 * under soft, a CRL within its grace), or NULL; *total counts such passes
 * over the context's life.
 */
const char *mtls_verify_passed(SSL *ssl, unsigned long *total);

/* "subject ..., serial ..." of the client certificate refused, or NULL. */
const char *mtls_verify_refused(SSL *ssl);

/*
 * The leaf of the chain the server refused (the client's own
 * certificate, whichever certificate of its chain failed), or NULL;
 * valid as long as ssl.
 */
X509 *mtls_verify_refused_cert(SSL *ssl);

/*
 * For a server resuming a session: 1 if the session's client
 * certificate leaf verifies now as a full handshake would verify it
 * (store, CRLs, purpose, the verify callback's passes), else 0.
 */
int mtls_verify_leaf(SSL *ssl, X509 *leaf);

/* Subject and issuer of the peer's certificate, one-line form. */
int mtls_peer_names(SSL *ssl, char *subject, char *issuer, size_t len);

/*
 * cert's serial number in upper-case hex, as openssl x509 -serial prints
 * it; free it with OPENSSL_free. NULL if it cannot be had.
 */
char *mtls_serial_hex(const X509 *cert);

#endif
