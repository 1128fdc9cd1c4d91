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
	int server;                  /* else a client */
	const char *cert, *key, *ca; /* cert, key: a path or a store URI */
	/*
	 * Keys that never leave their device (mtls_store.c): OpenSSL
	 * providers to load besides default (NULL-terminated, or NULL), the
	 * property query for the context and the stores (NULL: the one the
	 * providers need, mtls_store_propq), and where an encrypted PEM key's
	 * passphrase is (file:PATH or env:VAR, or NULL).
	 */
	const char *const *providers;
	const char *propq;
	const char *key_pass;
	int tls_version;          /* TLS1_2_VERSION, TLS1_3_VERSION, 0: both */
	const char *ciphers;      /* TLS 1.2 list, NULL: kTLS-capable AEADs */
	const char *ciphersuites; /* TLS 1.3 list, NULL: OpenSSL's */
	SSL_CTX_keylog_cb_func keylog; /* also gets every keylog line, or NULL */
	/* Server: client certificate revocation (mtls_crl.c). */
	const char *crl;     /* CRL file or directory of them, or NULL */
	int crl_check_chain; /* every certificate of the chain, not the leaf */
	long crl_grace;      /* seconds a CRL may be past its nextUpdate */
	int revocation_soft; /* a failed check (CRL or OCSP) passes, noted */
	/* Server: client certificate status by OCSP (mtls_ocsp.c). */
	int ocsp;             /* ask a responder about every client */
	const char *ocsp_url; /* that responder, not the certificate's AIA */
	int ocsp_timeout;     /* seconds for one whole query */
	int ocsp_nonce;       /* send a nonce and require it back */
	/* OCSP stapling of the server's certificate (mtls_staple.c). */
	const char *ocsp_staple; /* server: DER response to staple, or NULL */
	int require_staple;      /* client: refuse a server without one */
	/*
	 * Server: files whose contents, with the CRLs', decide who gets in
	 * (--policy): NULL-terminated, or NULL. A ticket issued before any
	 * of them changed is not resumed (mtls_set_generation).
	 */
	const char *const *auth_files;
	/*
	 * Server: issue no session tickets (TLS 1.3 nor RFC 5077), so no
	 * client resumes: every connection is a full handshake.
	 */
	int no_tickets;
};

/*
 * One client's revocation check, as the log and the audit trail tell it
 * (the strings are empty where they do not apply).
 */
struct mtls_revocation {
	const char *source;        /* "crl" or "ocsp" */
	const char *status;        /* "good", "revoked", "unknown", "error" */
	char this_update[32];      /* RFC 3339 UTC: the answer's freshness */
	char next_update[32];      /* (a CRL's lastUpdate and nextUpdate) */
	char responder[256];       /* OCSP: the URL asked */
	char why[MTLS_REASON_MAX]; /* "OCSP responder URL: timed out" */
	int cache_hit;             /* OCSP: answered from the cache */
	int soft_pass;             /* failed, let in by --revocation soft */
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
 * Note a revocation check of this connection's client (mtls_ocsp.c, for
 * the verify callback): kept for
 * mtls_revocation_checked, a soft pass counted, a refusal (err, an
 * X509_V_ERR_*) named with rev->why. 0, or -1 out of memory.
 */
int mtls_revocation_note(SSL *ssl, X509 *leaf,
    const struct mtls_revocation *rev, int err);

/*
 * This connection's client's revocation check by source ("crl" or
 * "ocsp"), or NULL if there was none.
 */
const struct mtls_revocation *
mtls_revocation_checked(SSL *ssl, const char *source);

/* t as RFC 3339 UTC ("2026-12-02T05:32:30Z") in buf, or "". */
void mtls_asn1_time(const ASN1_TIME *t, char *buf, size_t len);

/* Soft passes over the context's life (CRL and OCSP). */
unsigned long mtls_revocation_passes(SSL_CTX *ctx);

/*
 * OCSP for client certificates (mtls_ocsp.c), set up by mtls_ctx_new for
 * a server with o->ocsp: checks the options (--ocsp-url must be an
 * http:// URL). -1 with one line in err.
 */
int mtls_ocsp_setup(SSL_CTX *ctx, const struct mtls_options *o, char *err,
    size_t errlen);

/*
 * The OCSP decision on leaf, issued by issuer (chain: the verified chain,
 * for the responder's signer, or NULL): X509_V_OK to let it in (good, or
 * a failure under --revocation soft, with rev->soft_pass), else the
 * error to refuse with: X509_V_ERR_CERT_REVOKED (alert
 * certificate_revoked), X509_V_ERR_OCSP_CERT_UNKNOWN for an unknown
 * status and X509_V_ERR_OCSP_VERIFY_FAILED for no usable answer (both
 * certificate_unknown in OpenSSL 3.0). rev says how. May block on the
 * network for up to --ocsp-timeout, never holding a lock meanwhile; an
 * answer is cached until its nextUpdate and shared by concurrent
 * handshakes. X509_V_OK without a look if ctx has no OCSP.
 */
int mtls_ocsp_leaf(SSL_CTX *ctx, X509 *leaf, X509 *issuer,
    STACK_OF(X509) * chain, struct mtls_revocation *rev);

/* Whether ctx checks clients by OCSP. */
int mtls_ocsp_enabled(SSL_CTX *ctx);

/* Over the context's life: queries sent, answers taken from the cache. */
void
mtls_ocsp_counts(SSL_CTX *ctx, unsigned long *queries, unsigned long *hits);

/* Over the context's life: queries that got no usable answer. */
unsigned long mtls_ocsp_errors(SSL_CTX *ctx);

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

/*
 * The same check, with its result: X509_V_OK, or the X509_V_ERR_* that
 * refuses leaf (X509_V_ERR_CERT_REVOKED...). A reload's --reauthorize
 * asks it about an open connection's client with an SSL of the new
 * context (SSL_new), which has the new CRLs.
 */
int mtls_verify_leaf_error(SSL *ssl, X509 *leaf);

/* Subject and issuer of the peer's certificate, one-line form. */
int mtls_peer_names(SSL *ssl, char *subject, char *issuer, size_t len);

/*
 * cert's serial number in upper-case hex, as openssl x509 -serial prints
 * it; free it with OPENSSL_free. NULL if it cannot be had.
 */
char *mtls_serial_hex(const X509 *cert);

/*
 * OCSP stapling (mtls_staple.c, called by mtls_ctx_new). Server with
 * o->ocsp_staple: the response checked (parse, signature by --ca or its
 * delegated responder, a good status for our certificate, dates) and sent
 * to clients that ask; -1 with one line in err, "--ocsp-staple FILE:
 * reason". Client: asks for a staple and checks the one it gets; with
 * o->require_staple a server without one is refused.
 */
int mtls_staple_setup(SSL_CTX *ctx, const struct mtls_options *o, char *err,
    size_t errlen);

/* Lines to show at start (a staple close to its nextUpdate), or "". */
const char *mtls_staple_notes(SSL_CTX *ctx);

/* Client: "OCSP staple: good, next update in 6d 23h", a refusal, or NULL. */
const char *mtls_staple_result(SSL *ssl);

/* Client: why the server's staple (or its lack) ended the handshake, or NULL. */
const char *mtls_staple_refused(SSL *ssl);

/*
 * Keys and certificates from OpenSSL stores (mtls_store.c, called by
 * mtls_ctx_new).
 *
 * Whether s is a store URI rather than a path: it starts with a URI
 * scheme of two characters or more and a colon (file:, handle:, ...).
 * A file whose name looks like one is given as ./NAME.
 */
int mtls_store_is_uri(const char *s);

/* The property query for o (o->propq, else what its providers need). */
const char *mtls_store_propq(const struct mtls_options *o);

/*
 * Load default and each of names into the default library context, for
 * the life of the process (a name already loaded is skipped). -1 with
 * "--provider NAME: cannot load it: reason" in err.
 */
int mtls_store_providers(const char *const *names, char *err, size_t errlen);

/*
 * ctx's certificate (the first one found at uri, a path or a store URI)
 * and its chain (the others there). -1 with "--cert URI: reason".
 */
int mtls_store_use_cert(SSL_CTX *ctx, const char *uri, const char *propq,
    char *err, size_t errlen);

/*
 * ctx's private key: the first found at uri, decrypted with the
 * passphrase key_pass names (file:PATH, its first line; env:VAR), if
 * given; never asked for on a terminal. The passphrase is wiped before
 * this returns. -1 with "--key URI: reason" (the key is encrypted and
 * there is no --key-pass, the passphrase is wrong, no provider opens the
 * URI's scheme, ...).
 */
int mtls_store_use_key(SSL_CTX *ctx, const char *uri, const char *key_pass,
    const char *propq, char *err, size_t errlen);

/* "2d 3h", "1h", "5m 2s" or "42s": the two largest units of s seconds. */
void mtls_duration(long s, char *buf, size_t len);

#endif
