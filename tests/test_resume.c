/*
 * test_resume.c - session resumption at the server (mtls_ctx_new), on real
 * OpenSSL connections in memory, TLS 1.2 (RFC 5077 tickets) and TLS 1.3:
 *
 * - a client resumes with the ticket of its first connection (without a
 *   session id context OpenSSL answered every such attempt with
 *   internal_error);
 * - once the client's certificate has expired, its ticket is ignored: the
 *   client goes through a full handshake, and the server refuses the
 *   expired certificate (a resumed session alone would not look at it);
 * - once a CRL revoking the client is in the server's store, its ticket is
 *   ignored, and the full handshake ends with certificate_revoked;
 * - once the authorization generation changed (a CRL or policy changed),
 *   a ticket of the old one is ignored (a full handshake lets a good
 *   client in), and the new ticket resumes;
 * - the generation is a digest of the CRLs and the auth_files: the same
 *   files give the same one, a changed file another.
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

/* The words of the refusal alert the client got ("certificate revoked"). */
static const char *refusal;

/* The first refusal alert (mtls_refusal_words) in the error queue. */
static const char *
refusal_in_queue(void)
{
	unsigned long e;
	const char *words;

	while ((e = ERR_get_error()) != 0)
		if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
		    ERR_GET_REASON(e) >= SSL_AD_REASON_OFFSET &&
		    (words = mtls_refusal_words(
			 ERR_GET_REASON(e) - SSL_AD_REASON_OFFSET)) != NULL)
			return words;
	return NULL;
}

/*
 * One connection; its session (for the next) in *sess. -1 if it failed;
 * then the client's refusal alert is in refusal (a TLS 1.3 client reads
 * it after its own handshake has finished).
 */
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
	refusal = NULL;
	if (pair_side_new(&c, cctx) < 0 || pair_side_new(&s, sctx) < 0 ||
	    (*sess != NULL && !SSL_set_session(c.ssl, *sess)))
		goto out;
	ret = pair_handshake(&c, &s);
	*verify = SSL_get_verify_result(s.ssl);
	if (ret < 0) {
		(void)SSL_read(c.ssl, b, sizeof(b));
		refusal = refusal_in_queue();
		goto out;
	}
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

/* A server context from the test certificates, pinned to version. */
static SSL_CTX *
server_ctx(int version, const char *dir, const char *crl,
    const char *const *auth_files, char *err, size_t errlen)
{
	char cert[1024], key[1024], cafile[1024];
	struct mtls_options o = { .server = 1,
		.cert = cert,
		.key = key,
		.ca = cafile,
		.tls_version = version,
		.crl = crl,
		.auth_files = auth_files };

	snprintf(cert, sizeof(cert), "%s/server-cert.pem", dir);
	snprintf(key, sizeof(key), "%s/server-key.pem", dir);
	snprintf(cafile, sizeof(cafile), "%s/ca-cert.pem", dir);
	return mtls_ctx_new(&o, err, errlen);
}

/* A client context with the test client NAME (client, revoked-client). */
static SSL_CTX *
client_ctx(int version, const char *dir, const char *name)
{
	SSL_CTX *cctx = pair_ctx_new(0, version,
	    "ECDHE-ECDSA-AES128-GCM-SHA256", "TLS_AES_128_GCM_SHA256", dir);
	char cert[1024], key[1024];

	snprintf(cert, sizeof(cert), "%s/%s-cert.pem", dir, name);
	snprintf(key, sizeof(key), "%s/%s-key.pem", dir, name);
	if (cctx != NULL &&
	    (SSL_CTX_use_certificate_file(cctx, cert, SSL_FILETYPE_PEM) != 1 ||
		SSL_CTX_use_PrivateKey_file(cctx, key, SSL_FILETYPE_PEM) !=
		    1)) {
		SSL_CTX_free(cctx);
		return NULL;
	}
	return cctx;
}

/* What a CRL installed on a live server does: revoke from now on. */
static int
add_crl(SSL_CTX *sctx, const char *dir)
{
	X509_STORE *store = SSL_CTX_get_cert_store(sctx);
	char path[1024];
	X509_CRL *crl;
	FILE *f;
	int ok;

	snprintf(path, sizeof(path), "%s/crl.pem", dir);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	crl = PEM_read_X509_CRL(f, NULL, NULL, NULL);
	fclose(f);
	ok = crl != NULL && X509_STORE_add_crl(store, crl) &&
	    X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
	X509_CRL_free(crl);
	return ok ? 0 : -1;
}

/*
 * A client resumes; then a CRL revoking it reaches the server's store
 * (the generation unchanged, so only the re-verification can catch it):
 * no resumption, and the full handshake is refused as revoked.
 */
static void
test_revoked(int version, const char *dir)
{
	const char *v = version == TLS1_3_VERSION ? "1.3" : "1.2";
	SSL_CTX *sctx, *cctx = client_ctx(version, dir, "revoked-client");
	SSL_SESSION *sess = NULL;
	char err[256];
	long verify;
	int reused, rc;

	sctx = server_ctx(version, dir, NULL, NULL, err, sizeof(err));
	if (sctx == NULL || cctx == NULL) {
		check(0, "TLS %s revoked: cannot set up (%s)", v,
		    sctx == NULL ? err : "client");
		goto out;
	}
	rc = connect_once(cctx, sctx, &sess, &reused, &verify);
	check(rc == 0 && !reused, "TLS %s revoked: first connection failed", v);
	rc = connect_once(cctx, sctx, &sess, &reused, &verify);
	check(rc == 0 && reused,
	    "TLS %s revoked: did not resume before the CRL (rc %d)", v, rc);
	check(add_crl(sctx, dir) == 0, "TLS %s: cannot add crl.pem", v);
	rc = connect_once(cctx, sctx, &sess, &reused, &verify);
	check(rc < 0 && !reused && verify == X509_V_ERR_CERT_REVOKED &&
		refusal != NULL && strcmp(refusal, "certificate revoked") == 0,
	    "TLS %s: a ticket of a client revoked since: rc %d, resumed %d, "
	    "verify result %ld, client's alert %s (want a full handshake "
	    "refused with certificate_revoked)",
	    v, rc, reused, verify, refusal != NULL ? refusal : "none");
out:
	SSL_SESSION_free(sess);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
}

/*
 * The generation changes (as when a CRL or the policy is reloaded): the
 * ticket issued before is not resumed, the good client gets in by a full
 * handshake, and its new ticket, of the new generation, resumes.
 */
static void
test_generation(int version, const char *dir)
{
	const char *v = version == TLS1_3_VERSION ? "1.3" : "1.2";
	SSL_CTX *sctx, *cctx = client_ctx(version, dir, "client");
	unsigned char gen[MTLS_GENERATION_LEN], back[MTLS_GENERATION_LEN];
	SSL_SESSION *sess = NULL;
	char err[256];
	long verify;
	int reused, rc;

	sctx = server_ctx(version, dir, NULL, NULL, err, sizeof(err));
	if (sctx == NULL || cctx == NULL ||
	    mtls_get_generation(sctx, gen) < 0) {
		check(0, "TLS %s generation: cannot set up (%s)", v,
		    sctx == NULL ? err : "client");
		goto out;
	}
	rc = connect_once(cctx, sctx, &sess, &reused, &verify);
	check(rc == 0 && !reused, "TLS %s generation: first connection failed",
	    v);
	rc = connect_once(cctx, sctx, &sess, &reused, &verify);
	check(rc == 0 && reused,
	    "TLS %s: the generation unchanged, the ticket did not resume", v);
	gen[0] ^= 1;
	check(mtls_set_generation(sctx, gen) == 0 &&
		mtls_get_generation(sctx, back) == 0 &&
		memcmp(gen, back, sizeof(gen)) == 0,
	    "TLS %s: mtls_get_generation does not return what was set", v);
	rc = connect_once(cctx, sctx, &sess, &reused, &verify);
	check(rc == 0 && !reused,
	    "TLS %s: a ticket of the previous generation: rc %d, resumed %d "
	    "(want a full handshake that lets the client in)",
	    v, rc, reused);
	rc = connect_once(cctx, sctx, &sess, &reused, &verify);
	check(rc == 0 && reused,
	    "TLS %s: the ticket of the new generation did not resume (rc %d)",
	    v, rc);
out:
	SSL_SESSION_free(sess);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
}

static int
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	int ok = f != NULL && fputs(text, f) >= 0;

	return f != NULL && fclose(f) == 0 && ok ? 0 : -1;
}

/* The generation of a new server context, or all zero if none. */
static void
generation_of(const char *dir, const char *crl, const char *const *files,
    unsigned char *gen, char *err, size_t errlen)
{
	SSL_CTX *sctx =
	    server_ctx(TLS1_3_VERSION, dir, crl, files, err, errlen);

	memset(gen, 0, MTLS_GENERATION_LEN);
	if (sctx != NULL)
		mtls_get_generation(sctx, gen);
	SSL_CTX_free(sctx);
}

/* What goes into the generation: the CRLs and the auth_files. */
static void
test_generation_digest(const char *dir)
{
	unsigned char a[MTLS_GENERATION_LEN], b[MTLS_GENERATION_LEN];
	unsigned char c[MTLS_GENERATION_LEN], d[MTLS_GENERATION_LEN];
	static const unsigned char zero[MTLS_GENERATION_LEN];
	char policy[1024], crl[1024], missing[1024], err[256] = "";
	const char *files[] = { policy, NULL }, *none[] = { missing, NULL };

	snprintf(policy, sizeof(policy), "%s/test-resume-policy.txt", dir);
	snprintf(crl, sizeof(crl), "%s/crl.pem", dir);
	snprintf(missing, sizeof(missing), "%s/no-such-policy.txt", dir);
	if (write_file(policy, "allow all\n") < 0) {
		check(0, "cannot write %s", policy);
		return;
	}
	generation_of(dir, NULL, files, a, err, sizeof(err));
	generation_of(dir, NULL, files, b, err, sizeof(err));
	check(memcmp(a, zero, sizeof(a)) != 0 && memcmp(a, b, sizeof(a)) == 0,
	    "the same auth file twice: not the same generation (%s)", err);
	write_file(policy, "allow none\n");
	generation_of(dir, NULL, files, c, err, sizeof(err));
	check(memcmp(c, zero, sizeof(c)) != 0 && memcmp(a, c, sizeof(a)) != 0,
	    "a changed auth file: the same generation");
	generation_of(dir, crl, files, d, err, sizeof(err));
	check(memcmp(d, zero, sizeof(d)) != 0 && memcmp(c, d, sizeof(c)) != 0,
	    "a CRL added: the same generation (%s)", err);
	err[0] = '\0';
	generation_of(dir, NULL, none, d, err, sizeof(err));
	check(memcmp(d, zero, sizeof(d)) == 0 && strstr(err, missing) != NULL &&
		strstr(err, "No such file") != NULL,
	    "a missing auth file: want mtls_ctx_new to fail naming it, "
	    "got '%s'",
	    err);
	remove(policy);
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
		ca_key = unit_key(NULL, path);
		snprintf(path, sizeof(path), "%s/ca-cert.pem", dir);
		ca = unit_cert(NULL, path);
	}
	check(ca_key != NULL && ca != NULL,
	    "HK_CERTS is not set or has no ca-cert.pem / ca-key.pem");
	if (ca_key != NULL && ca != NULL) {
		test_version(TLS1_3_VERSION, dir, ca_key, ca);
		test_version(TLS1_2_VERSION, dir, ca_key, ca);
		test_revoked(TLS1_3_VERSION, dir);
		test_revoked(TLS1_2_VERSION, dir);
		test_generation(TLS1_3_VERSION, dir);
		test_generation(TLS1_2_VERSION, dir);
		test_generation_digest(dir);
	}
	EVP_PKEY_free(ca_key);
	X509_free(ca);
	return check_summary();
}
