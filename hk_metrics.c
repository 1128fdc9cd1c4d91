/*
 * hk_metrics.c - the server's counters and their Prometheus text. The
 * counters are atomics bumped next to the audit trail's calls; what the
 * certificates, CRLs and OCSP cache say is read from the context at
 * scrape time, so it is never stale. Label values come from fixed sets
 * (reasons, kTLS modes) or from the policy's rule names, at most
 * MAX_RULES of them: a scraper never sees a series per client.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "hk_metrics.h"
#include "ktls_keys.h"
#include "mtls.h"

/* Why a handshake failed, as the reason label says it. */
enum reason {
	R_REVOKED,
	R_UNKNOWN_CA,
	R_EXPIRED,
	R_NOT_YET_VALID,
	R_REVOCATION_UNKNOWN,
	R_BAD_CERTIFICATE,
	R_NO_CERTIFICATE,
	R_TIMEOUT,
	R_SHUTDOWN,
	R_PROTOCOL,
	R_OTHER,
	R_COUNT
};

static const char *const reason_names[R_COUNT] = {
	[R_REVOKED] = "certificate_revoked",
	[R_UNKNOWN_CA] = "unknown_ca",
	[R_EXPIRED] = "expired",
	[R_NOT_YET_VALID] = "not_yet_valid",
	[R_REVOCATION_UNKNOWN] = "revocation_unknown",
	[R_BAD_CERTIFICATE] = "bad_certificate",
	[R_NO_CERTIFICATE] = "no_certificate",
	[R_TIMEOUT] = "timeout",
	[R_SHUTDOWN] = "shutdown",
	[R_PROTOCOL] = "protocol",
	[R_OTHER] = "other",
};

/* The verify results that have a reason of their own. */
static const struct {
	long verify;
	enum reason reason;
} verify_reasons[] = {
	{ X509_V_ERR_CERT_REVOKED, R_REVOKED },
	{ X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT, R_UNKNOWN_CA },
	{ X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, R_UNKNOWN_CA },
	{ X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE, R_UNKNOWN_CA },
	{ X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT, R_UNKNOWN_CA },
	{ X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN, R_UNKNOWN_CA },
	{ X509_V_ERR_CERT_HAS_EXPIRED, R_EXPIRED },
	{ X509_V_ERR_CERT_NOT_YET_VALID, R_NOT_YET_VALID },
	{ X509_V_ERR_UNABLE_TO_GET_CRL, R_REVOCATION_UNKNOWN },
	{ X509_V_ERR_UNABLE_TO_GET_CRL_ISSUER, R_REVOCATION_UNKNOWN },
	{ X509_V_ERR_CRL_HAS_EXPIRED, R_REVOCATION_UNKNOWN },
	{ X509_V_ERR_CRL_NOT_YET_VALID, R_REVOCATION_UNKNOWN },
	{ X509_V_ERR_OCSP_VERIFY_FAILED, R_REVOCATION_UNKNOWN },
	{ X509_V_ERR_OCSP_CERT_UNKNOWN, R_REVOCATION_UNKNOWN },
};

/* Without a verify error, the words of the server's line decide. */
static const struct {
	const char *words;
	enum reason reason;
} text_reasons[] = {
	{ "handshake not finished within", R_TIMEOUT },
	{ "interrupted", R_SHUTDOWN },
	{ "shutdown", R_SHUTDOWN },
	{ "did not return a certificate", R_NO_CERTIFICATE },
};

/* The rules an authorization is counted under, first come. */
#define MAX_RULES 64

struct rule_count {
	char *name;
	atomic_ullong allow, deny;
};

/* kTLS modes per direction, as ktls_keys.h numbers them. */
#define MODES 4
static const char *const mode_names[MODES] = {
	[KTLS_STATE_OFF] = "off",
	[KTLS_STATE_SOFTWARE] = "software",
	[KTLS_STATE_HARDWARE] = "hardware",
	[KTLS_STATE_UNAVAILABLE] = "unavailable",
};

static struct {
	atomic_ullong handshakes_ok, handshakes_failed[R_COUNT];
	atomic_llong open[MODES * MODES];
	atomic_ullong bytes_in, bytes_out, refused;
	atomic_ullong reloads_ok, reloads_failed;
	atomic_uint generation;
	pthread_mutex_t lock; /* rules (appending), other_* and ctx */
	struct rule_count rules[MAX_RULES];
	atomic_size_t nrules;
	atomic_ullong other_allow, other_deny; /* past MAX_RULES */
	SSL_CTX *ctx;
} m = { .generation = 1, .lock = PTHREAD_MUTEX_INITIALIZER };

static enum reason
failure_reason(const struct conn *c, const char *why)
{
	long v = c->ssl != NULL ? SSL_get_verify_result(c->ssl) : X509_V_OK;
	size_t i;

	if (c->ssl == NULL)
		return R_OTHER;
	for (i = 0; i < sizeof(verify_reasons) / sizeof(verify_reasons[0]); i++)
		if (verify_reasons[i].verify == v)
			return verify_reasons[i].reason;
	if (v != X509_V_OK)
		return R_BAD_CERTIFICATE;
	for (i = 0; i < sizeof(text_reasons) / sizeof(text_reasons[0]); i++)
		if (why != NULL && strstr(why, text_reasons[i].words) != NULL)
			return text_reasons[i].reason;
	return R_PROTOCOL;
}

void
hk_metrics_handshake_failed(const struct conn *c, const char *why)
{
	atomic_fetch_add(&m.handshakes_failed[failure_reason(c, why)], 1);
}

/* The counter pair of rule (NULL: "(none)"), added if new and room. */
static struct rule_count *
rule_find(const char *rule)
{
	const char *name = rule != NULL ? rule : "(none)";
	struct rule_count *r = NULL;
	size_t i, n;

	pthread_mutex_lock(&m.lock);
	n = atomic_load(&m.nrules);
	for (i = 0; i < n && r == NULL; i++)
		if (strcmp(m.rules[i].name, name) == 0)
			r = &m.rules[i];
	if (r == NULL && n < MAX_RULES &&
	    (m.rules[n].name = strdup(name)) != NULL) {
		r = &m.rules[n];
		atomic_store(&m.nrules, n + 1);
	}
	pthread_mutex_unlock(&m.lock);
	return r;
}

static int
mode_slot(const struct conn *c)
{
	enum ktls_state tx = KTLS_STATE_OFF, rx = KTLS_STATE_OFF;

	if (c->k != NULL) {
		tx = ktls_state(c->k, KTLS_TX);
		rx = ktls_state(c->k, KTLS_RX);
	}
	return (int)tx * MODES + (int)rx;
}

void
hk_metrics_verified(const struct conn *c, int allow, const char *rule,
    int *slot)
{
	struct rule_count *r = rule_find(rule);

	atomic_fetch_add(&m.handshakes_ok, 1);
	if (r != NULL)
		atomic_fetch_add(allow ? &r->allow : &r->deny, 1);
	else
		atomic_fetch_add(allow ? &m.other_allow : &m.other_deny, 1);
	*slot = -1;
	if (allow) {
		*slot = mode_slot(c);
		atomic_fetch_add(&m.open[*slot], 1);
	}
}

void
hk_metrics_closed(const struct conn *c, int slot)
{
	if (slot >= 0 && slot < MODES * MODES)
		atomic_fetch_sub(&m.open[slot], 1);
	atomic_fetch_add(&m.bytes_in, c->bytes_in);
	atomic_fetch_add(&m.bytes_out, c->bytes_out);
}

void
hk_metrics_refused(void)
{
	atomic_fetch_add(&m.refused, 1);
}

void
hk_metrics_reload(int ok, unsigned generation)
{
	atomic_fetch_add(ok ? &m.reloads_ok : &m.reloads_failed, 1);
	atomic_store(&m.generation, generation);
}

void
hk_metrics_set_ctx(SSL_CTX *ctx)
{
	SSL_CTX *old;

	if (ctx != NULL)
		SSL_CTX_up_ref(ctx);
	pthread_mutex_lock(&m.lock);
	old = m.ctx;
	m.ctx = ctx;
	pthread_mutex_unlock(&m.lock);
	SSL_CTX_free(old);
}

/* One HELP and TYPE header. */
static void
header(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* s as a label value: backslash, quote and newline escaped. */
static void
label_value(FILE *f, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\' || *s == '"')
			fputc('\\', f);
		if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
	}
}

static void
render_handshakes(FILE *f)
{
	int i;

	header(f, "hk_handshakes_total", "counter",
	    "TLS handshakes: ok (the client verified) or failed, and why");
	fprintf(f, "hk_handshakes_total{result=\"ok\",reason=\"none\"} %llu\n",
	    atomic_load(&m.handshakes_ok));
	for (i = 0; i < R_COUNT; i++)
		fprintf(f,
		    "hk_handshakes_total{result=\"failed\",reason=\"%s\"} "
		    "%llu\n",
		    reason_names[i], atomic_load(&m.handshakes_failed[i]));
}

static void
render_authorizations(FILE *f)
{
	size_t i, n = atomic_load(&m.nrules);

	header(f, "hk_authorizations_total", "counter",
	    "verified clients let in or refused, by the rule that decided "
	    "(default: no --policy; (none): no rule matched)");
	for (i = 0; i < n; i++) {
		fputs("hk_authorizations_total{decision=\"allow\",rule=\"", f);
		label_value(f, m.rules[i].name);
		fprintf(f, "\"} %llu\n", atomic_load(&m.rules[i].allow));
		fputs("hk_authorizations_total{decision=\"deny\",rule=\"", f);
		label_value(f, m.rules[i].name);
		fprintf(f, "\"} %llu\n", atomic_load(&m.rules[i].deny));
	}
	if (atomic_load(&m.other_allow) + atomic_load(&m.other_deny) > 0)
		fprintf(f,
		    "hk_authorizations_total{decision=\"allow\",rule=\"(other)\"} "
		    "%llu\n"
		    "hk_authorizations_total{decision=\"deny\",rule=\"(other)\"} "
		    "%llu\n",
		    atomic_load(&m.other_allow), atomic_load(&m.other_deny));
}

static void
render_connections(FILE *f)
{
	int tx, rx;

	header(f, "hk_connections_open", "gauge",
	    "clients let in and still connected, by kTLS mode per direction");
	for (tx = 0; tx < MODES; tx++)
		for (rx = 0; rx < MODES; rx++)
			fprintf(f,
			    "hk_connections_open{tx=\"%s\",rx=\"%s\"} %lld\n",
			    mode_names[tx], mode_names[rx],
			    atomic_load(&m.open[tx * MODES + rx]));
	header(f, "hk_connections_refused_total", "counter",
	    "clients not served at all (--max-connections)");
	fprintf(f, "hk_connections_refused_total %llu\n",
	    atomic_load(&m.refused));
	header(f, "hk_bytes_total", "counter",
	    "application bytes of closed connections");
	fprintf(f,
	    "hk_bytes_total{direction=\"in\"} %llu\n"
	    "hk_bytes_total{direction=\"out\"} %llu\n",
	    atomic_load(&m.bytes_in), atomic_load(&m.bytes_out));
	header(f, "hk_reloads_total", "counter",
	    "configuration reloads, by result");
	fprintf(f,
	    "hk_reloads_total{result=\"ok\"} %llu\n"
	    "hk_reloads_total{result=\"failed\"} %llu\n",
	    atomic_load(&m.reloads_ok), atomic_load(&m.reloads_failed));
	header(f, "hk_config_generation", "gauge",
	    "the configuration in use (1: the one started with)");
	fprintf(f, "hk_config_generation %u\n", atomic_load(&m.generation));
}

/* Seconds from now until t (negative once past); 0 if t is unusable. */
static long long
seconds_until(const ASN1_TIME *t)
{
	int days = 0, secs = 0;

	if (t == NULL || !ASN1_TIME_diff(&days, &secs, NULL, t))
		return 0;
	return (long long)days * 86400 + secs;
}

/* The CA certificates' earliest expiry, and each CRL issuer's. */
static void
render_store(FILE *f, X509_STORE *store)
{
	STACK_OF(X509_OBJECT) * objs;
	X509_OBJECT *o;
	char issuer[256];
	long long ca = 0, s;
	int i, have_ca = 0;

	if (!X509_STORE_lock(store))
		return;
	objs = X509_STORE_get0_objects(store);
	for (i = 0; i < sk_X509_OBJECT_num(objs); i++) {
		o = sk_X509_OBJECT_value(objs, i);
		if (X509_OBJECT_get_type(o) != X509_LU_X509)
			continue;
		s = seconds_until(X509_get0_notAfter(X509_OBJECT_get0_X509(o)));
		if (!have_ca || s < ca)
			ca = s;
		have_ca = 1;
	}
	if (have_ca)
		fprintf(f, "hk_certificate_expiry_seconds{which=\"ca\"} %lld\n",
		    ca);
	header(f, "hk_crl_next_update_seconds", "gauge",
	    "seconds until each --crl CRL's nextUpdate, by issuer");
	for (i = 0; i < sk_X509_OBJECT_num(objs); i++) {
		X509_CRL *crl;

		o = sk_X509_OBJECT_value(objs, i);
		if ((crl = X509_OBJECT_get0_X509_CRL(o)) == NULL)
			continue;
		X509_NAME_oneline(X509_CRL_get_issuer(crl), issuer,
		    sizeof(issuer));
		fputs("hk_crl_next_update_seconds{issuer=\"", f);
		label_value(f, issuer);
		fprintf(f, "\"} %lld\n",
		    seconds_until(X509_CRL_get0_nextUpdate(crl)));
	}
	X509_STORE_unlock(store);
}

static void
render_ctx(FILE *f, SSL_CTX *ctx)
{
	unsigned long queries = 0, hits = 0;
	X509 *cert = SSL_CTX_get0_certificate(ctx);

	header(f, "hk_certificate_expiry_seconds", "gauge",
	    "seconds until the server's certificate and the earliest "
	    "--ca certificate expire");
	if (cert != NULL)
		fprintf(f,
		    "hk_certificate_expiry_seconds{which=\"server\"} %lld\n",
		    seconds_until(X509_get0_notAfter(cert)));
	render_store(f, SSL_CTX_get_cert_store(ctx));
	mtls_ocsp_counts(ctx, &queries, &hits);
	header(f, "hk_ocsp_cache_total", "counter",
	    "--ocsp lookups: answered from the cache (hit), asked (miss), "
	    "asked without a usable answer (error)");
	fprintf(f,
	    "hk_ocsp_cache_total{result=\"hit\"} %lu\n"
	    "hk_ocsp_cache_total{result=\"miss\"} %lu\n"
	    "hk_ocsp_cache_total{result=\"error\"} %lu\n",
	    hits, queries, mtls_ocsp_errors(ctx));
}

int
hk_metrics_render(char **text, size_t *len)
{
	SSL_CTX *ctx;
	FILE *f;
	int bad;

	*text = NULL;
	if ((f = open_memstream(text, len)) == NULL)
		return -1;
	render_handshakes(f);
	render_authorizations(f);
	render_connections(f);
	pthread_mutex_lock(&m.lock);
	if ((ctx = m.ctx) != NULL)
		SSL_CTX_up_ref(ctx);
	pthread_mutex_unlock(&m.lock);
	if (ctx != NULL)
		render_ctx(f, ctx);
	SSL_CTX_free(ctx);
	bad = ferror(f);
	if (fclose(f) != 0 || bad) {
		free(*text);
		*text = NULL;
		return -1;
	}
	return 0;
}
