/*
 * test_resume.c - session resumption at the server (mtls_ctx_new), on real
 * OpenSSL connections in memory, TLS 1.2 (RFC 5077 tickets) and TLS 1.3:
 *
 * - a client resumes with the ticket of its first connection (without a
 *   session id context OpenSSL answered every such attempt with
 *   internal_error);
 * - once the client's certificate has expired, its ticket is ignored: the
 *   client goes through a full handshake, and the server refuses the
 *   expired certificate (a resumed session alone would not look at it).
 *
 * The client certificate is made here, valid for a few seconds, signed by
 * the test CA in HK_CERTS. Prints one line per failed check, then
 * "N passed, N failed".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "mtls.h"
#include "tls_pair.h"
#include "unit.h"

/* How long the client certificate lives. */
#define LIFETIME 3

static X509 *
load_cert(const char *path)
{
	FILE *f = fopen(path, "r");
	X509 *x = f != NULL ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;

	if (f != NULL)
		fclose(f);
	return x;
}

static EVP_PKEY *
load_key(const char *path)
{
	FILE *f = fopen(path, "r");
	EVP_PKEY *k =
	    f != NULL ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;

	if (f != NULL)
		fclose(f);
	return k;
}

/* A clientAuth certificate for key, signed by the CA, until not_after. */
static X509 *
short_lived_cert(EVP_PKEY *key, X509 *ca, EVP_PKEY *ca_key, time_t not_after)
{
	X509 *x = X509_new();
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	X509_NAME *name = X509_NAME_new();
	int ok;

	X509V3_set_ctx(&v3, ca, x, NULL, NULL, 0);
	ok = x != NULL && name != NULL && X509_set_version(x, 2) &&
	    ASN1_INTEGER_set(X509_get_serialNumber(x), (long)not_after) &&
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
		(const unsigned char *)"Short-lived Client", -1, -1, 0) &&
	    X509_set_subject_name(x, name) &&
	    X509_set_issuer_name(x, X509_get_subject_name(ca)) &&
	    X509_time_adj_ex(X509_getm_notBefore(x), 0, -60, NULL) != NULL &&
	    ASN1_TIME_set(X509_getm_notAfter(x), not_after) != NULL &&
	    X509_set_pubkey(x, key);
	if (ok &&
	    (ext = X509V3_EXT_conf_nid(NULL, &v3, NID_ext_key_usage,
		 "clientAuth")) != NULL) {
		ok = X509_add_ext(x, ext, -1);
		X509_EXTENSION_free(ext);
	}
	X509_NAME_free(name);
	if (!ok || !X509_sign(x, ca_key, EVP_sha256())) {
		X509_free(x);
		return NULL;
	}
	return x;
}

/* One connection; its session (for the next) in *sess. -1 if it failed. */
static int
connect_once(SSL_CTX *cctx, SSL_CTX *sctx, SSL_SESSION **sess, int *reused,
    long *verify)
{
	struct pair_side c, s;
	char b[16];
	int ret = -1;

	memset(&c, 0, sizeof(c)), memset(&s, 0, sizeof(s));
	*reused = 0;
	*verify = X509_V_OK;
	if (pair_side_new(&c, cctx) < 0 || pair_side_new(&s, sctx) < 0 ||
	    (*sess != NULL && !SSL_set_session(c.ssl, *sess)))
		goto out;
	ret = pair_handshake(&c, &s);
	*verify = SSL_get_verify_result(s.ssl);
	if (ret < 0)
		goto out;
	*reused = SSL_session_reused(s.ssl) && SSL_session_reused(c.ssl);
	/* TLS 1.3 tickets arrive after the handshake: read them. */
	(void)SSL_write(s.ssl, "x", 1);
	pair_pump(&s, &c);
	(void)SSL_read(c.ssl, b, sizeof(b));
	SSL_SESSION_free(*sess);
	*sess = SSL_get1_session(c.ssl);
out:
	ERR_clear_error();
	pair_side_free(&c);
	pair_side_free(&s);
	return ret;
}

static void
wait_until(time_t t)
{
	struct timespec tenth = { 0, 100000000 };

	while (time(NULL) <= t)
		nanosleep(&tenth, NULL);
}

static void
test_version(int version, const char *dir, EVP_PKEY *ca_key, X509 *ca)
{
	char cert[1024], key[1024], cafile[1024], err[256];
	struct mtls_options o = { .server = 1,
		.cert = cert,
		.key = key,
		.ca = cafile,
		.tls_version = version };
	const char *v = version == TLS1_3_VERSION ? "1.3" : "1.2";
	EVP_PKEY *ck = EVP_EC_gen("P-256");
	time_t not_after = time(NULL) + LIFETIME;
	X509 *cx =
	    ck != NULL ? short_lived_cert(ck, ca, ca_key, not_after) : NULL;
	SSL_CTX *sctx, *cctx;
	SSL_SESSION *sess = NULL;
	long verify;
	int reused, rc;

	snprintf(cert, sizeof(cert), "%s/server-cert.pem", dir);
	snprintf(key, sizeof(key), "%s/server-key.pem", dir);
	snprintf(cafile, sizeof(cafile), "%s/ca-cert.pem", dir);
	sctx = mtls_ctx_new(&o, err, sizeof(err));
	cctx = pair_ctx_new(0, version, "ECDHE-ECDSA-AES128-GCM-SHA256",
	    "TLS_AES_128_GCM_SHA256", dir);
	if (cx == NULL || sctx == NULL || cctx == NULL ||
	    SSL_CTX_use_certificate(cctx, cx) != 1 ||
	    SSL_CTX_use_PrivateKey(cctx, ck) != 1) {
		check(0, "TLS %s: cannot set up (%s)", v,
		    sctx == NULL ? err : "client certificate");
		goto out;
	}
	rc = connect_once(cctx, sctx, &sess, &reused, &verify);
	check(rc == 0 && !reused && sess != NULL,
	    "TLS %s: first connection (full handshake) failed", v);
	rc = connect_once(cctx, sctx, &sess, &reused, &verify);
	check(rc == 0 && reused,
	    "TLS %s: the second connection did not resume (rc %d)", v, rc);
	wait_until(not_after);
	rc = connect_once(cctx, sctx, &sess, &reused, &verify);
	check(rc < 0 && !reused && verify == X509_V_ERR_CERT_HAS_EXPIRED,
	    "TLS %s: a ticket of an expired certificate: rc %d, resumed %d, "
	    "verify result %ld (want a full handshake refused as expired)",
	    v, rc, reused, verify);
out:
	SSL_SESSION_free(sess);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
	X509_free(cx);
	EVP_PKEY_free(ck);
}

int
main(void)
{
	const char *dir = getenv("HK_CERTS");
	char path[1024];
	EVP_PKEY *ca_key = NULL;
	X509 *ca = NULL;

	if (dir != NULL) {
		snprintf(path, sizeof(path), "%s/ca-key.pem", dir);
		ca_key = load_key(path);
		snprintf(path, sizeof(path), "%s/ca-cert.pem", dir);
		ca = load_cert(path);
	}
	check(ca_key != NULL && ca != NULL,
	    "HK_CERTS is not set or has no ca-cert.pem / ca-key.pem");
	if (ca_key != NULL && ca != NULL) {
		test_version(TLS1_3_VERSION, dir, ca_key, ca);
		test_version(TLS1_2_VERSION, dir, ca_key, ca);
	}
	EVP_PKEY_free(ca_key);
	X509_free(ca);
	return check_summary();
}
