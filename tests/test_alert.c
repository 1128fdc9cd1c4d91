/*
 * test_alert.c - ktls_send_alert(): the server refuses a client after the
 * handshake with one fatal alert, sealed in userspace under the current
 * send key and sequence number, and the client's OpenSSL must accept the
 * record as authentic and report the alert (SSL_R_TLSV1_ALERT_ACCESS_
 * DENIED for 49). TLS 1.2 and 1.3, every AEAD suite the module knows,
 * full and resumed handshakes, on real OpenSSL connections in memory
 * (tls_pair.c). The same record one sequence number off must fail the
 * client's authentication instead: the proof that the check can fail.
 * Also: through kTLS TX (a fake kernel), a CBC suite, a wiped secret.
 *
 * Needs HK_CERTS. Prints one line per failed check, then
 * "N passed, N failed".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "fake_kernel.h"
#include "tls_pair.h"
#include "unit.h"

struct suite {
	const char *name;
	int version;
	const char *ciphers; /* TLS 1.2 */
	const char *suites;  /* TLS 1.3 (each must accept the other's list) */
};

static const struct suite suites[] = {
	{ "TLS 1.2 AES-128-GCM", TLS1_2_VERSION,
	    "ECDHE-ECDSA-AES128-GCM-SHA256", "" },
	{ "TLS 1.2 AES-256-GCM", TLS1_2_VERSION,
	    "ECDHE-ECDSA-AES256-GCM-SHA384", "" },
	{ "TLS 1.2 CHACHA20-POLY1305", TLS1_2_VERSION,
	    "ECDHE-ECDSA-CHACHA20-POLY1305", "" },
	{ "TLS 1.2 AES-128-CCM", TLS1_2_VERSION, "ECDHE-ECDSA-AES128-CCM", "" },
	{ "TLS 1.3 AES-128-GCM", TLS1_3_VERSION, "DEFAULT",
	    "TLS_AES_128_GCM_SHA256" },
	{ "TLS 1.3 AES-256-GCM", TLS1_3_VERSION, "DEFAULT",
	    "TLS_AES_256_GCM_SHA384" },
	{ "TLS 1.3 CHACHA20-POLY1305", TLS1_3_VERSION, "DEFAULT",
	    "TLS_CHACHA20_POLY1305_SHA256" },
	{ "TLS 1.3 AES-128-CCM", TLS1_3_VERSION, "DEFAULT",
	    "TLS_AES_128_CCM_SHA256" },
};

struct ctxs {
	SSL_CTX *c, *s;
};

static int
ctxs_new(struct ctxs *x, const struct suite *t, const char *dir)
{
	x->c = pair_ctx_new(0, t->version, t->ciphers, t->suites, dir);
	x->s = pair_ctx_new(1, t->version, t->ciphers, t->suites, dir);
	if (x->c != NULL && x->s != NULL)
		return 0;
	check(0, "%s: cannot make the contexts", t->name);
	ERR_print_errors_fp(stdout);
	return -1;
}

static void
ctxs_free(struct ctxs *x)
{
	SSL_CTX_free(x->c);
	SSL_CTX_free(x->s);
}

static int
connect_pair(const struct ctxs *x, SSL_SESSION *sess, struct pair_side *c,
    struct pair_side *s, const char *name)
{
	memset(c, 0, sizeof(*c));
	memset(s, 0, sizeof(*s));
	if (pair_side_new(c, x->c) == 0 && pair_side_new(s, x->s) == 0 &&
	    (sess == NULL || SSL_set_session(c->ssl, sess)) &&
	    pair_handshake(c, s) == 0)
		return 0;
	check(0, "%s: handshake failed", name);
	ERR_print_errors_fp(stdout);
	pair_side_free(c);
	pair_side_free(s);
	return -1;
}

/* A session to resume: the client reads its tickets first (TLS 1.3). */
static SSL_SESSION *
seed_session(const struct ctxs *x, const char *name)
{
	struct pair_side c, s;
	SSL_SESSION *sess;
	char buf[16];

	if (connect_pair(x, NULL, &c, &s, name) < 0)
		return NULL;
	(void)SSL_read(c.ssl, buf, sizeof(buf));
	ERR_clear_error();
	sess = SSL_get1_session(c.ssl);
	pair_side_free(&c);
	pair_side_free(&s);
	return sess;
}

/* The client's error queue holds reason; the last reason for a message. */
static int
queue_has(unsigned long reason, char *last, size_t len)
{
	unsigned long e;
	int found = 0;

	snprintf(last, len, "(empty error queue)");
	while ((e = ERR_get_error()) != 0) {
		if ((unsigned long)ERR_GET_REASON(e) == reason)
			found = 1;
		ERR_error_string_n(e, last, len);
	}
	return found;
}

/*
 * The server sends alert desc (records[TX] shifted by skew) and the
 * client reads: with skew 0 it must see want, otherwise bad_record_mac.
 */
static void
refuse(const char *name, struct pair_side *c, struct pair_side *s, int desc,
    unsigned long want, int skew)
{
	unsigned long reason =
	    skew == 0 ? want : SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC;
	char buf[64], last[256];
	int n, r;

	s->k->records[KTLS_TX] += (uint64_t)skew;
	ERR_clear_error();
	r = ktls_send_alert(s->k, desc);
	check(r == 0, "%s: ktls_send_alert: %s", name, ktls_error(s->k));
	pair_pump(s, c);
	n = SSL_read(c->ssl, buf, sizeof(buf));
	check(n <= 0 && SSL_get_error(c->ssl, n) == SSL_ERROR_SSL,
	    "%s: the client's SSL_read returned %d, error %d", name, n,
	    SSL_get_error(c->ssl, n));
	check(queue_has(reason, last, sizeof(last)),
	    "%s: the client did not report '%s'; last error: %s", name,
	    ERR_reason_error_string(ERR_PACK(ERR_LIB_SSL, 0, reason)), last);
	/* Nothing more from OpenSSL under the key we just used. */
	n = SSL_write(s->ssl, "x", 1);
	(void)SSL_shutdown(s->ssl);
	check(n <= 0 && BIO_ctrl_pending(s->out) == 0,
	    "%s: the server still wrote after the alert", name);
	ERR_clear_error();
}

/*
 * Records the server sent under its current key when SSL_accept returned:
 * TLS 1.3 sends 2 tickets after a full handshake, 1 after resumption;
 * TLS 1.2's Finished is the first under the new key.
 */
static void
check_seq(const char *name, const struct pair_side *s, int version, int resumed)
{
	uint64_t want = version == TLS1_3_VERSION ? (resumed ? 1 : 2) : 1;

	check(s->k->records[KTLS_TX] == want,
	    "%s: TX sequence %llu after the handshake, want %llu", name,
	    (unsigned long long)s->k->records[KTLS_TX],
	    (unsigned long long)want);
}

static void
run_suite(const struct suite *t, const char *dir)
{
	static const char *const what[] = { "full", "resumed" };
	struct pair_side c, s;
	SSL_SESSION *sess = NULL;
	struct ctxs x;
	char name[128];
	int resumed, skew;

	if (ctxs_new(&x, t, dir) < 0)
		goto out;
	for (resumed = 0; resumed < 2; resumed++) {
		for (skew = 0; skew < 2; skew++) {
			snprintf(name, sizeof(name), "%s %s%s", t->name,
			    what[resumed], skew ? ", sequence + 1" : "");
			/* The alert makes the client drop the session it used. */
			SSL_SESSION_free(sess);
			sess = resumed ? seed_session(&x, name) : NULL;
			if ((resumed && sess == NULL) ||
			    connect_pair(&x, sess, &c, &s, name) < 0)
				continue;
			check(SSL_session_reused(s.ssl) == resumed,
			    "%s: session reused %d, want %d", name,
			    SSL_session_reused(s.ssl), resumed);
			if (skew == 0)
				check_seq(name, &s, t->version, resumed);
			refuse(name, &c, &s, SSL_AD_ACCESS_DENIED,
			    SSL_R_TLSV1_ALERT_ACCESS_DENIED, skew);
			pair_side_free(&c);
			pair_side_free(&s);
		}
	}
out:
	SSL_SESSION_free(sess);
	ctxs_free(&x);
}

/* A resumed session found revoked: certificate_revoked (44). */
static void
test_revoked_resumed(const char *dir)
{
	const struct suite *t = &suites[4];
	struct pair_side c, s;
	SSL_SESSION *sess;
	struct ctxs x;

	if (ctxs_new(&x, t, dir) < 0)
		goto out;
	if ((sess = seed_session(&x, t->name)) != NULL &&
	    connect_pair(&x, sess, &c, &s, "certificate_revoked") == 0) {
		refuse("TLS 1.3 resumed, certificate_revoked", &c, &s,
		    SSL_AD_CERTIFICATE_REVOKED,
		    SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED, 0);
		pair_side_free(&c);
		pair_side_free(&s);
	}
	SSL_SESSION_free(sess);
out:
	ctxs_free(&x);
}

/* run_refused NAME SUITE BREAK WANT: -1 saying WANT, and nothing sent. */
static void
run_refused(const char *name, const struct suite *t, const char *dir,
    int disable, const char *want)
{
	struct pair_side c, s;
	struct ctxs x;

	if (ctxs_new(&x, t, dir) < 0)
		goto out;
	if (connect_pair(&x, NULL, &c, &s, name) == 0) {
		if (disable)
			ktls_disable(s.k, "disabled with --ktls off");
		check(ktls_send_alert(s.k, SSL_AD_ACCESS_DENIED) == -1,
		    "%s: ktls_send_alert did not fail", name);
		check(strstr(ktls_error(s.k), want) != NULL,
		    "%s: error '%s', want '%s'", name, ktls_error(s.k), want);
		check(BIO_ctrl_pending(s.out) == 0, "%s: bytes were sent",
		    name);
		pair_side_free(&c);
		pair_side_free(&s);
	}
out:
	ctxs_free(&x);
}

/* With TX in the kernel, the alert is one record of type 21 through it. */
static void
test_through_kernel(const char *dir)
{
	const struct suite *t = &suites[4];
	struct pair_side c, s;
	struct ctxs x;

	if (ctxs_new(&x, t, dir) < 0)
		goto out;
	if (connect_pair(&x, NULL, &c, &s, "through kTLS TX") == 0) {
		ktls_syscalls_set_for_testing(&fake_kernel_calls);
		fake_reset(-1, 0);
		check(ktls_offload(s.k, FAKE_FD) == 0, "kTLS TX: offload: %s",
		    ktls_error(s.k));
		check(ktls_send_alert(s.k, SSL_AD_ACCESS_DENIED) == 0,
		    "kTLS TX: ktls_send_alert: %s", ktls_error(s.k));
		check(fake.ntx == 1 && fake.tx[0].type == 21 &&
			fake.tx[0].len == 2 && fake.tx[0].b[0] == 2 &&
			fake.tx[0].b[1] == SSL_AD_ACCESS_DENIED,
		    "kTLS TX: want one alert record {2, 49} through sendmsg, "
		    "got %d records",
		    fake.ntx);
		check(BIO_ctrl_pending(s.out) == 0,
		    "kTLS TX: bytes went to the BIO too");
		ktls_syscalls_set_for_testing(NULL);
		pair_side_free(&c);
		pair_side_free(&s);
	}
out:
	ctxs_free(&x);
}

int
main(void)
{
	static const struct suite cbc = { "TLS 1.2 AES-128-CBC", TLS1_2_VERSION,
		"ECDHE-ECDSA-AES128-SHA256", "" };
	const char *dir = getenv("HK_CERTS");
	size_t i;

	if (dir == NULL) {
		check(0, "HK_CERTS is not set: no certificates");
		return check_summary();
	}
	for (i = 0; i < sizeof(suites) / sizeof(suites[0]); i++)
		run_suite(&suites[i], dir);
	test_revoked_resumed(dir);
	run_refused("CBC suite", &cbc, dir, 0,
	    "cannot seal an alert under ECDHE-ECDSA-AES128-SHA256: not an "
	    "AEAD suite");
	run_refused("TLS 1.3 after ktls_disable", &suites[4], dir, 1,
	    "the TLS 1.3 send secret is gone");
	test_through_kernel(dir);
	return check_summary();
}
