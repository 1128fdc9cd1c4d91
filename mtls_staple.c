/*
 * mtls_staple.c - OCSP stapling of the server's own certificate.
 *
 * Server (--ocsp-staple FILE): a DER OCSP response, as `openssl ocsp
 * -respout` writes it, checked once at start as a client would check it
 * (signed by the CA or a delegated responder that --ca verifies, a status
 * for our certificate, good, in its validity period), then sent to every
 * client that asks for it, TLS 1.2 and 1.3 alike.
 *
 * Client: always asks. A staple that comes is checked against the CA
 * store; a revoked or invalid one ends the handshake, and so does none at
 * all under --require-staple. A client certificate cannot be stapled in
 * OpenSSL 3.0 (a TLS 1.3 CertificateRequest carries no status_request and
 * TLS 1.2 has no client status), so the server checks those itself.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/x509v3.h>

#include "mtls.h"

/* Far more than any response for one certificate. */
#define STAPLE_MAX (64 * 1024)
/* A thisUpdate this far ahead of our clock is still taken (clock skew). */
#define CLOCK_SKEW 300

/* The context's stapling; freed with the context. */
struct ocsp_ctx {
	unsigned char *der; /* server: the response to staple */
	long len;
	time_t next_update; /* server: 0 if the response has none */
	int require;        /* client: --require-staple */
	char notes[MTLS_REASON_MAX + 64];
};

/* One connection's staple, as the client saw it. */
struct ocsp_seen {
	int refused;
	char line[MTLS_REASON_MAX];
};

static int ctx_index = -1, ssl_index = -1;

static void
free_ctx(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
    void *argp)
{
	struct ocsp_ctx *o = ptr;

	(void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
	if (o != NULL)
		OPENSSL_free(o->der);
	OPENSSL_free(o);
}

static void
free_seen(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
    void *argp)
{
	(void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
	OPENSSL_free(ptr);
}

/* Called while the program is still one thread (mtls_ctx_new). */
static int
indexes(void)
{
	if (ctx_index < 0)
		ctx_index =
		    SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, free_ctx);
	if (ssl_index < 0)
		ssl_index =
		    SSL_get_ex_new_index(0, NULL, NULL, NULL, free_seen);
	return ctx_index < 0 || ssl_index < 0 ? -1 : 0;
}

/* Seconds from now to t (negative: t has passed). */
static long
seconds_until(const ASN1_GENERALIZEDTIME *t)
{
	int days, secs;

	if (!ASN1_TIME_diff(&days, &secs, NULL, t))
		return 0;
	return (long)days * 86400 + secs;
}

/*
 * The checks a staple must pass, the same at the server's start and at
 * the client: signed by the CA in store or a responder it delegated to
 * (OCSP_basic_verify; untrusted: certificates that may complete the
 * chain), a status for cert issued by issuer, good, and within
 * thisUpdate and nextUpdate. *left and *life: seconds to nextUpdate and
 * from thisUpdate to it (both 0 without a nextUpdate). -1 with why.
 */
static int
staple_check(OCSP_RESPONSE *resp, X509 *cert, X509 *issuer, X509_STORE *store,
    STACK_OF(X509) * untrusted, long *left, long *life, char *why, size_t len)
{
	ASN1_GENERALIZEDTIME *rev, *thisupd, *nextupd;
	OCSP_BASICRESP *bs = NULL;
	OCSP_CERTID *id = NULL;
	int st, status, reason, ret = -1;
	char r[MTLS_REASON_MAX];

	*left = *life = 0;
	if ((st = OCSP_response_status(resp)) !=
	    OCSP_RESPONSE_STATUS_SUCCESSFUL) {
		snprintf(why, len, "the responder answered '%s'",
		    OCSP_response_status_str(st));
		goto out;
	}
	if ((bs = OCSP_response_get1_basic(resp)) == NULL) {
		snprintf(why, len, "not a basic OCSP response");
		goto out;
	}
	ERR_clear_error();
	if (OCSP_basic_verify(bs, untrusted, store, 0) <= 0) {
		snprintf(why, len, "its signature does not verify: %.160s",
		    mtls_err_reason(r, sizeof(r), "no trusted signer"));
		goto out;
	}
	if ((id = OCSP_cert_to_id(NULL, cert, issuer)) == NULL ||
	    !OCSP_resp_find_status(bs, id, &status, &reason, &rev, &thisupd,
		&nextupd)) {
		snprintf(why, len, "it has no status for this certificate");
		goto out;
	}
	if (status != V_OCSP_CERTSTATUS_GOOD) {
		snprintf(why, len, "the certificate is %s%s%s%s",
		    OCSP_cert_status_str(status),
		    status == V_OCSP_CERTSTATUS_REVOKED ? " (" : "",
		    status == V_OCSP_CERTSTATUS_REVOKED ?
			OCSP_crl_reason_str(reason) :
			"",
		    status == V_OCSP_CERTSTATUS_REVOKED ? ")" : "");
		goto out;
	}
	if (seconds_until(thisupd) > CLOCK_SKEW) {
		snprintf(why, len, "its thisUpdate is in the future");
		goto out;
	}
	if (nextupd != NULL) {
		*left = seconds_until(nextupd);
		*life = *left - seconds_until(thisupd);
		/* At nextUpdate newer information is due: it is stale. */
		if (*left <= 0) {
			mtls_duration(-*left, r, 64);
			snprintf(why, len,
			    "it expired: nextUpdate was %.64s ago", r);
			goto out;
		}
	}
	ret = 0;
out:
	OCSP_CERTID_free(id);
	OCSP_BASICRESP_free(bs);
	return ret;
}

/* ---- server ---- */

static int
server_status_cb(SSL *ssl, void *arg)
{
	const struct ocsp_ctx *o = arg;
	unsigned char *copy;

	/* Better no staple than one past its nextUpdate, which clients refuse. */
	if (o->der == NULL ||
	    (o->next_update != 0 && time(NULL) >= o->next_update))
		return SSL_TLSEXT_ERR_NOACK;
	if ((copy = OPENSSL_memdup(o->der, (size_t)o->len)) == NULL)
		return SSL_TLSEXT_ERR_NOACK;
	/* OpenSSL owns copy from here on, also when it fails. */
	if (!SSL_set_tlsext_status_ocsp_resp(ssl, copy, o->len))
		return SSL_TLSEXT_ERR_NOACK;
	return SSL_TLSEXT_ERR_OK;
}

/* The file's bytes, up to STAPLE_MAX. */
static unsigned char *
read_file(const char *path, long *len, char *why, size_t wlen)
{
	unsigned char *buf = OPENSSL_malloc(STAPLE_MAX + 1);
	FILE *f = fopen(path, "rb");
	size_t n = 0;

	if (buf == NULL || f == NULL) {
		snprintf(why, wlen, "%s",
		    f == NULL ? strerror(errno) : "out of memory");
		goto fail;
	}
	n = fread(buf, 1, STAPLE_MAX + 1, f);
	if (ferror(f) || n == 0 || n > STAPLE_MAX) {
		snprintf(why, wlen, "%s",
		    ferror(f)  ? "read error" :
			n == 0 ? "empty file" :
				 "larger than 64 KiB: not an OCSP response");
		goto fail;
	}
	fclose(f);
	*len = (long)n;
	return buf;
fail:
	if (f != NULL)
		fclose(f);
	OPENSSL_free(buf);
	return NULL;
}

/* The issuer of cert among the --ca certificates in store, or NULL. */
static X509 *
find_issuer(X509_STORE *store, X509 *cert)
{
	X509_STORE_CTX *sctx = X509_STORE_CTX_new();
	X509 *issuer = NULL;

	if (sctx != NULL && X509_STORE_CTX_init(sctx, store, cert, NULL) &&
	    X509_STORE_CTX_get1_issuer(&issuer, sctx, cert) != 1)
		issuer = NULL;
	X509_STORE_CTX_free(sctx);
	return issuer;
}

/* Check o->der for ctx's certificate; a note when it is nearly stale. */
static int
server_check(SSL_CTX *ctx, struct ocsp_ctx *o, const struct mtls_options *opt,
    char *why, size_t wlen)
{
	const unsigned char *p = o->der;
	X509 *cert = SSL_CTX_get0_certificate(ctx), *issuer = NULL;
	X509_STORE *store = X509_STORE_new();
	OCSP_RESPONSE *resp = NULL;
	long left, life;
	int ret = -1;
	char d[64];

	if ((resp = d2i_OCSP_RESPONSE(NULL, &p, o->len)) == NULL ||
	    p != o->der + o->len) {
		snprintf(why, wlen, "not a DER OCSP response");
		goto out;
	}
	if (store == NULL || !X509_STORE_load_file(store, opt->ca)) {
		snprintf(why, wlen, "cannot load --ca %s", opt->ca);
		goto out;
	}
	if ((issuer = find_issuer(store, cert)) == NULL) {
		snprintf(why, wlen, "the issuer of %s is not in --ca %s",
		    opt->cert, opt->ca);
		goto out;
	}
	if (staple_check(resp, cert, issuer, store, NULL, &left, &life, why,
		wlen) < 0)
		goto out;
	if (life > 0) {
		o->next_update = time(NULL) + left;
		if (left < life / 4) {
			mtls_duration(left, d, sizeof(d));
			snprintf(o->notes, sizeof(o->notes),
			    "--ocsp-staple %s: next update in %s, less than "
			    "a quarter of its lifetime left\n",
			    opt->ocsp_staple, d);
		}
	}
	ret = 0;
out:
	X509_free(issuer);
	X509_STORE_free(store);
	OCSP_RESPONSE_free(resp);
	return ret;
}

/* ---- client ---- */

/*
 * After the server's chain verified: its staple, or its lack of one.
 * Returning 0 ends the handshake (bad_certificate_status_response).
 */
static int
client_status_cb(SSL *ssl, void *arg)
{
	const struct ocsp_ctx *o = arg;
	STACK_OF(X509) *chain = SSL_get0_verified_chain(ssl);
	struct ocsp_seen *s = OPENSSL_zalloc(sizeof(*s));
	const unsigned char *p;
	OCSP_RESPONSE *resp = NULL;
	long n, left, life;
	char why[MTLS_REASON_MAX], d[64];

	if (s == NULL || !SSL_set_ex_data(ssl, ssl_index, s)) {
		OPENSSL_free(s);
		return -1;
	}
	if ((n = SSL_get_tlsext_status_ocsp_resp(ssl, &p)) <= 0 || p == NULL) {
		if (o->require)
			snprintf(s->line, sizeof(s->line),
			    "server sent no OCSP staple (--require-staple)");
		s->refused = o->require;
		return !o->require;
	}
	if ((resp = d2i_OCSP_RESPONSE(NULL, &p, n)) == NULL)
		snprintf(why, sizeof(why), "not a DER OCSP response");
	else if (chain == NULL || sk_X509_num(chain) < 2)
		snprintf(why, sizeof(why), "the server's issuer is unknown");
	else if (staple_check(resp, sk_X509_value(chain, 0),
		     sk_X509_value(chain, 1),
		     SSL_CTX_get_cert_store(SSL_get_SSL_CTX(ssl)),
		     SSL_get_peer_cert_chain(ssl), &left, &life, why,
		     sizeof(why)) == 0) {
		if (life > 0) {
			mtls_duration(left, d, sizeof(d));
			snprintf(s->line, sizeof(s->line),
			    "OCSP staple: good, next update in %s", d);
		} else
			snprintf(s->line, sizeof(s->line),
			    "OCSP staple: good (no next update)");
		OCSP_RESPONSE_free(resp);
		return 1;
	}
	OCSP_RESPONSE_free(resp);
	snprintf(s->line, sizeof(s->line),
	    "server's OCSP staple refused: %.200s", why);
	s->refused = 1;
	return 0;
}

/* ---- both ---- */

int
mtls_staple_setup(SSL_CTX *ctx, const struct mtls_options *opt, char *err,
    size_t errlen)
{
	struct ocsp_ctx *o;
	char why[MTLS_REASON_MAX];

	if (opt->server && opt->ocsp_staple == NULL)
		return 0;
	if (indexes() < 0 || (o = OPENSSL_zalloc(sizeof(*o))) == NULL ||
	    !SSL_CTX_set_ex_data(ctx, ctx_index, o)) {
		snprintf(err, errlen, "OCSP stapling: out of memory");
		return -1;
	}
	if (!opt->server) {
		o->require = opt->require_staple;
		SSL_CTX_set_tlsext_status_type(ctx, TLSEXT_STATUSTYPE_ocsp);
		SSL_CTX_set_tlsext_status_cb(ctx, client_status_cb);
		SSL_CTX_set_tlsext_status_arg(ctx, o);
		return 0;
	}
	if ((o->der = read_file(opt->ocsp_staple, &o->len, why, sizeof(why))) ==
		NULL ||
	    server_check(ctx, o, opt, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "--ocsp-staple %s: %s", opt->ocsp_staple,
		    why);
		return -1;
	}
	SSL_CTX_set_tlsext_status_cb(ctx, server_status_cb);
	SSL_CTX_set_tlsext_status_arg(ctx, o);
	return 0;
}

const char *
mtls_staple_notes(SSL_CTX *ctx)
{
	const struct ocsp_ctx *o;

	if (ctx_index < 0 || (o = SSL_CTX_get_ex_data(ctx, ctx_index)) == NULL)
		return "";
	return o->notes;
}

const char *
mtls_staple_result(SSL *ssl)
{
	const struct ocsp_seen *s;

	if (ssl_index < 0 || (s = SSL_get_ex_data(ssl, ssl_index)) == NULL ||
	    s->line[0] == '\0')
		return NULL;
	return s->line;
}

const char *
mtls_staple_refused(SSL *ssl)
{
	const struct ocsp_seen *s;

	if (ssl_index < 0 || (s = SSL_get_ex_data(ssl, ssl_index)) == NULL ||
	    !s->refused)
		return NULL;
	return s->line;
}
