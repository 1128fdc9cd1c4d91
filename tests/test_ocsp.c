/*
 * test_ocsp.c - OCSP for client certificates at the server (mtls_ocsp.c),
 * run by tests/ocsp_tests.sh against a real `openssl ocsp` responder:
 *
 *   test_ocsp URL UNKNOWN-CERT
 *
 * - the decision for a leaf, as the verify callback takes it (ocsp_check
 *   below): good, revoked, unknown (a certificate the responder does not
 *   know), an issuer not in --ca, a responder not running, soft; and the
 *   cache;
 * - which alert each refusal gives in OpenSSL 3.0 (on real connections
 *   in memory, TLS 1.2 and 1.3): certificate_revoked for a revocation,
 *   certificate_unknown for an unknown status or no usable answer.
 *
 * Certificates from HK_CERTS. Prints one line per failed check, then
 * "N passed, N failed".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "mtls.h"
#include "tls_pair.h"
#include "unit.h"

static const char *dir;

static SSL_CTX *
server_ctx(const char *url, int soft)
{
	char cert[1024], key[1024], ca[1024], err[512];
	struct mtls_options o = { .server = 1,
		.cert = cert,
		.key = key,
		.ca = ca,
		.ocsp = 1,
		.ocsp_url = url,
		.ocsp_timeout = 5,
		.revocation_soft = soft };
	SSL_CTX *ctx;

	snprintf(cert, sizeof(cert), "%s/server-cert.pem", dir);
	snprintf(key, sizeof(key), "%s/server-key.pem", dir);
	snprintf(ca, sizeof(ca), "%s/ca-cert.pem", dir);
	if ((ctx = mtls_ctx_new(&o, err, sizeof(err))) == NULL)
		printf("mtls_ctx_new: %s\n", err);
	return ctx;
}

/*
 * The OCSP decision for leaf outside a handshake, as the verify callback
 * takes it (mtls_ocsp_leaf with leaf's issuer from the context's store),
 * noted on ssl as the callback notes it.
 */
static int
ocsp_check(SSL *ssl, X509 *leaf)
{
	SSL_CTX *ctx = SSL_get_SSL_CTX(ssl);
	struct mtls_revocation rev;
	X509_STORE_CTX *sx;
	X509 *issuer = NULL;
	int err;

	if (!mtls_ocsp_enabled(ctx))
		return X509_V_OK;
	if ((sx = X509_STORE_CTX_new()) != NULL &&
	    X509_STORE_CTX_init(sx, SSL_CTX_get_cert_store(ctx), leaf, NULL) &&
	    X509_STORE_CTX_get1_issuer(&issuer, sx, leaf) <= 0)
		issuer = NULL;
	X509_STORE_CTX_free(sx);
	err = mtls_ocsp_leaf(ctx, leaf, issuer, NULL, &rev);
	X509_free(issuer);
	ERR_clear_error();
	if (mtls_revocation_note(ssl, leaf, &rev, err) < 0 && err == X509_V_OK)
		return X509_V_ERR_OUT_OF_MEM;
	return err;
}

/* ocsp_check on a fresh SSL of ctx; the check's record in *rev. */
static int
check_on(SSL_CTX *ctx, X509 *leaf, struct mtls_revocation *rev, char *refused,
    size_t len)
{
	SSL *ssl = SSL_new(ctx);
	const struct mtls_revocation *r;
	const char *names;
	int err;

	memset(rev, 0, sizeof(*rev));
	refused[0] = '\0';
	if (ssl == NULL || leaf == NULL)
		return -1;
	err = ocsp_check(ssl, leaf);
	if ((r = mtls_revocation_checked(ssl, "ocsp")) != NULL)
		*rev = *r;
	if ((names = mtls_verify_refused(ssl)) != NULL)
		snprintf(refused, len, "%s", names);
	SSL_free(ssl);
	return err;
}

static void
test_hard(const char *url, const char *unknown_path)
{
	SSL_CTX *ctx = server_ctx(url, 0);
	X509 *good = unit_cert(dir, "client-cert.pem");
	X509 *revoked = unit_cert(dir, "revoked-client-cert.pem");
	X509 *other = unit_cert(dir, "other-client-cert.pem");
	X509 *unknown = unit_cert(NULL, unknown_path);
	struct mtls_revocation rev;
	char refused[1024];
	int err;

	check(ctx != NULL && good && revoked && other && unknown,
	    "the context and the certificates load");
	if (ctx == NULL)
		return;
	err = check_on(ctx, good, &rev, refused, sizeof(refused));
	check(err == X509_V_OK && rev.status != NULL &&
		strcmp(rev.status, "good") == 0 && !rev.cache_hit &&
		rev.next_update[0] != '\0',
	    "good: X509_V_OK, status good, asked (err %d)", err);
	err = check_on(ctx, good, &rev, refused, sizeof(refused));
	check(err == X509_V_OK && rev.cache_hit,
	    "good again: from the cache (err %d, hit %d)", err, rev.cache_hit);
	err = check_on(ctx, revoked, &rev, refused, sizeof(refused));
	check(err == X509_V_ERR_CERT_REVOKED &&
		strstr(refused, "CN=Revoked Client") != NULL &&
		strstr(refused, "revoked (keyCompromise)") != NULL,
	    "revoked: X509_V_ERR_CERT_REVOKED, named (err %d, '%s')", err,
	    refused);
	err = check_on(ctx, unknown, &rev, refused, sizeof(refused));
	check(err == X509_V_ERR_OCSP_CERT_UNKNOWN &&
		strcmp(rev.status, "unknown") == 0,
	    "unknown: X509_V_ERR_OCSP_CERT_UNKNOWN (err %d)", err);
	err = check_on(ctx, other, &rev, refused, sizeof(refused));
	check(err == X509_V_ERR_OCSP_VERIFY_FAILED &&
		strstr(rev.why, "its issuer is not known") != NULL,
	    "an issuer not in --ca: refused, saying so (err %d, '%s')", err,
	    rev.why);
	X509_free(good);
	X509_free(revoked);
	X509_free(other);
	X509_free(unknown);
	SSL_CTX_free(ctx);
}

static void
test_soft_and_down(const char *unknown_path)
{
	SSL_CTX *soft = server_ctx("http://127.0.0.1:1/", 1);
	SSL_CTX *hard = server_ctx("http://127.0.0.1:1/", 0);
	X509 *unknown = unit_cert(NULL, unknown_path);
	struct mtls_revocation rev;
	char refused[1024];
	int err;

	if (soft == NULL || hard == NULL || unknown == NULL) {
		check(0, "the contexts load");
		goto out;
	}
	err = check_on(hard, unknown, &rev, refused, sizeof(refused));
	check(err == X509_V_ERR_OCSP_VERIFY_FAILED &&
		strstr(rev.why, "Connection refused") != NULL,
	    "hard, no responder: refused, connection refused (err %d, '%s')",
	    err, rev.why);
	err = check_on(soft, unknown, &rev, refused, sizeof(refused));
	check(err == X509_V_OK && rev.soft_pass && refused[0] == '\0' &&
		mtls_revocation_passes(soft) == 1,
	    "soft, no responder: let in, the pass noted and counted (err %d)",
	    err);
out:
	X509_free(unknown);
	SSL_CTX_free(soft);
	SSL_CTX_free(hard);
}

static int refuse_with;

/* Refuses the leaf, once its chain is good, with refuse_with. */
static int
refuse_cb(int ok, X509_STORE_CTX *x)
{
	if (ok && X509_STORE_CTX_get_error_depth(x) == 0) {
		X509_STORE_CTX_set_error(x, refuse_with);
		return 0;
	}
	return ok;
}

/* The alert the client gets when the server refuses with err. */
static int
alert_for(int version, int err)
{
	SSL_CTX *s = pair_ctx_new(1, version, "ECDHE-ECDSA-AES128-GCM-SHA256",
		    "TLS_AES_128_GCM_SHA256", dir),
		*c = pair_ctx_new(0, version, "ECDHE-ECDSA-AES128-GCM-SHA256",
		    "TLS_AES_128_GCM_SHA256", dir);
	struct pair_side cs = { 0 }, ss = { 0 };
	unsigned long e;
	char buf[16];
	int alert = -1;

	refuse_with = err;
	if (s == NULL || c == NULL || pair_side_new(&cs, c) < 0 ||
	    pair_side_new(&ss, s) < 0)
		goto out;
	SSL_set_verify(ss.ssl,
	    SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, refuse_cb);
	/*
	 * One process, one error queue: the server's own errors are in it
	 * too. The client's is an alert (TLS 1.2: in the handshake; 1.3: at
	 * its first read).
	 */
	(void)pair_handshake(&cs, &ss);
	pair_pump(&ss, &cs);
	(void)SSL_read(cs.ssl, buf, sizeof(buf));
	while ((e = ERR_get_error()) != 0)
		if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
		    ERR_GET_REASON(e) >= SSL_AD_REASON_OFFSET)
			alert = ERR_GET_REASON(e) - SSL_AD_REASON_OFFSET;
out:
	ERR_clear_error();
	pair_side_free(&cs);
	pair_side_free(&ss);
	SSL_CTX_free(s);
	SSL_CTX_free(c);
	return alert;
}

static void
test_alerts(void)
{
	static const struct {
		int err, alert;
		const char *words;
	} table[] = {
		{ X509_V_ERR_CERT_REVOKED, SSL_AD_CERTIFICATE_REVOKED,
		    "certificate revoked" },
		{ X509_V_ERR_OCSP_CERT_UNKNOWN, SSL_AD_CERTIFICATE_UNKNOWN,
		    "certificate unknown" },
		{ X509_V_ERR_OCSP_VERIFY_FAILED, SSL_AD_CERTIFICATE_UNKNOWN,
		    "certificate unknown" },
	};
	const char *words;
	size_t i;
	int v, alert;

	for (v = 0; v < 2; v++)
		for (i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
			alert = alert_for(v ? TLS1_3_VERSION : TLS1_2_VERSION,
			    table[i].err);
			words = mtls_refusal_words(alert);
			check(alert == table[i].alert && words != NULL &&
				strcmp(words, table[i].words) == 0,
			    "TLS 1.%d, %s: alert %d (%s), want %d", v ? 3 : 2,
			    X509_verify_cert_error_string(table[i].err), alert,
			    words ? words : "?", table[i].alert);
		}
}

int
main(int argc, char **argv)
{
	if (argc != 3 || (dir = getenv("HK_CERTS")) == NULL) {
		fprintf(stderr,
		    "usage: HK_CERTS=DIR test_ocsp URL UNKNOWN-CERT\n");
		return 2;
	}
	test_hard(argv[1], argv[2]);
	test_soft_and_down(argv[2]);
	test_alerts();
	return check_summary();
}
