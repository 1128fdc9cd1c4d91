/*
 * hk_audit.c - the server's audit trail: one JSON object per line, ECS
 * names as dotted keys ("tls.client.subject": ...), built whole in memory
 * and written with one write() under a lock, so that the client threads'
 * lines never mix and a SIGHUP's reopen never closes a file under a
 * writer. Nothing secret goes in: no keys, no whole certificate.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <openssl/x509v3.h>

#include "hk_audit.h"
#include "hk_expiry.h"
#include "mtls.h"

enum sink {
	SINK_FILE,
	SINK_STDOUT,
	SINK_SYSLOG
};

struct hk_audit {
	enum sink sink;
	char *path;            /* SINK_FILE */
	pthread_mutex_t lock;  /* held for each write() and for the swap */
	int fd;                /* SINK_FILE, under lock */
	atomic_ullong next_id; /* hk.connection.id */
};

/* A line being built; oom: an allocation failed, the line is lost. */
struct line {
	char *buf;
	size_t len, cap;
	int oom;
};

/* What an event's line holds, besides its ECS event fields. */
#define WITH_TLS      1 /* tls.*: the session and the client's certificate */
#define WITH_KTLS     2 /* hk.ktls.tx, hk.ktls.rx */
#define WITH_BYTES    4 /* hk.bytes.in, hk.bytes.out */
#define WITH_DURATION 8 /* hk.duration_ms */

static const struct {
	const char *action, *category, *type;
	int with;
} events[] = {
	[HK_AUDIT_ACCEPTED] = { "connection-accepted", "[\"network\"]",
	    "[\"connection\",\"start\"]", 0 },
	[HK_AUDIT_HANDSHAKE_FAILED] = { "tls-handshake-failed",
	    "[\"network\",\"authentication\"]", "[\"connection\",\"denied\"]",
	    WITH_TLS | WITH_DURATION },
	[HK_AUDIT_ALLOWED] = { "access-allowed",
	    "[\"network\",\"authentication\"]", "[\"allowed\"]",
	    WITH_TLS | WITH_KTLS },
	/* The last line of a denied client: nothing flowed, no keys moved. */
	[HK_AUDIT_DENIED] = { "access-denied",
	    "[\"network\",\"authentication\"]", "[\"denied\"]",
	    WITH_TLS | WITH_KTLS | WITH_DURATION },
	[HK_AUDIT_CLOSED] = { "connection-closed", "[\"network\"]",
	    "[\"connection\",\"end\"]",
	    WITH_KTLS | WITH_BYTES | WITH_DURATION },
	[HK_AUDIT_REVOCATION] = { "revocation-checked", "[\"authentication\"]",
	    "[\"info\"]", WITH_TLS },
	[HK_AUDIT_REFUSED] = { "connection-refused", "[\"network\"]",
	    "[\"connection\",\"denied\"]", 0 },
};

/* The kTLS state of a direction, as hk.ktls.tx and hk.ktls.rx say it. */
static const char *const ktls_words[] = {
	[KTLS_STATE_OFF] = "off",
	[KTLS_STATE_SOFTWARE] = "software",
	[KTLS_STATE_HARDWARE] = "hardware",
	[KTLS_STATE_UNAVAILABLE] = "unavailable",
};

static void
put(struct line *l, const void *s, size_t n)
{
	char *nb;
	size_t cap;

	if (l->oom)
		return;
	if (l->len + n > l->cap) {
		cap = l->cap ? l->cap : 2048;
		while (cap < l->len + n)
			cap *= 2;
		if ((nb = realloc(l->buf, cap)) == NULL) {
			l->oom = 1;
			return;
		}
		l->buf = nb;
		l->cap = cap;
	}
	memcpy(l->buf + l->len, s, n);
	l->len += n;
}

/*
 * The bytes of s as JSON string content. Peers choose subjects and SANs:
 * quotes and backslashes are escaped, and every control or non-ASCII
 * byte becomes \u00XX, so that the line stays one line of valid JSON
 * whatever the certificate holds.
 */
static void
put_escaped(struct line *l, const void *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = s;
	char e[6] = { '\\', 'u', '0', '0' };
	size_t i, run = 0;

	for (i = 0; i < n; i++) {
		if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"' && p[i] != '\\')
			continue;
		put(l, p + run, i - run);
		run = i + 1;
		if (p[i] == '"' || p[i] == '\\') {
			e[1] = (char)p[i];
			put(l, e, 2);
			e[1] = 'u';
		} else {
			e[4] = hex[p[i] >> 4];
			e[5] = hex[p[i] & 15];
			put(l, e, 6);
		}
	}
	put(l, p + run, n - run);
}

/* "key": as the next member of the object. */
static void
put_key(struct line *l, const char *key)
{
	if (l->len > 1)
		put(l, ",", 1);
	put(l, "\"", 1);
	put(l, key, strlen(key));
	put(l, "\":", 2);
}

static void
put_raw(struct line *l, const char *key, const char *json)
{
	put_key(l, key);
	put(l, json, strlen(json));
}

static void
put_str(struct line *l, const char *key, const char *s)
{
	put_key(l, key);
	put(l, "\"", 1);
	put_escaped(l, s, strlen(s));
	put(l, "\"", 1);
}

static void
put_num(struct line *l, const char *key, unsigned long long v)
{
	char num[24];

	snprintf(num, sizeof(num), "%llu", v);
	put_raw(l, key, num);
}

/* RFC 3339 in UTC with milliseconds: 2026-12-02T05:32:30.123Z */
static void
rfc3339(const struct tm *tm, long ms, char *buf, size_t len)
{
	char day[32];

	strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", tm);
	snprintf(buf, len, "%s.%03ldZ", day, ms);
}

static void
put_cert_time(struct line *l, const char *key, const ASN1_TIME *t)
{
	struct tm tm;
	char buf[48];

	if (t == NULL || !ASN1_TIME_to_tm(t, &tm))
		return;
	rfc3339(&tm, 0, buf, sizeof(buf));
	put_str(l, key, buf);
}

/* An X.509 name as RFC 2253 text (its own escaping: \, \" and \XX). */
static void
put_name(struct line *l, const char *key, const X509_NAME *name)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *text;
	long n;

	if (b == NULL)
		return;
	if (X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253) >= 0 &&
	    (n = BIO_get_mem_data(b, &text)) >= 0) {
		put_key(l, key);
		put(l, "\"", 1);
		put_escaped(l, text, (size_t)n);
		put(l, "\"", 1);
	}
	BIO_free(b);
}

/* Hex digits, upper case, as openssl x509 -serial and -fingerprint. */
static void
put_hex(struct line *l, const char *key, const unsigned char *p, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	char two[2];
	size_t i;

	put_key(l, key);
	put(l, "\"", 1);
	for (i = 0; i < n; i++) {
		two[0] = hex[p[i] >> 4];
		two[1] = hex[p[i] & 15];
		put(l, two, 2);
	}
	put(l, "\"", 1);
}

/* The serial number in hex (a negative one, which no CA should issue, with a minus). */
static void
put_serial(struct line *l, const X509 *cert)
{
	char *hex = mtls_serial_hex(cert);

	if (hex != NULL)
		put_str(l, "tls.client.x509.serial_number", hex);
	OPENSSL_free(hex);
}

/* The SAN types a client's identity is read from, and their ECS prefixes. */
static const struct {
	int type;
	const char *prefix;
} san_types[] = {
	{ GEN_DNS, "DNS:" },
	{ GEN_URI, "URI:" },
	{ GEN_EMAIL, "email:" },
	{ GEN_IPADD, "IP:" },
};

static void
put_san(struct line *l, const GENERAL_NAME *g, int *first)
{
	const ASN1_STRING *s = g->d.ia5; /* every type above is a string */
	char ip[INET6_ADDRSTRLEN];
	size_t i;

	for (i = 0; i < sizeof(san_types) / sizeof(san_types[0]); i++)
		if (san_types[i].type == g->type)
			break;
	if (i == sizeof(san_types) / sizeof(san_types[0]))
		return;
	put(l, *first ? "\"" : ",\"", *first ? 1 : 2);
	*first = 0;
	put(l, san_types[i].prefix, strlen(san_types[i].prefix));
	if (g->type == GEN_IPADD && (s->length == 4 || s->length == 16) &&
	    inet_ntop(s->length == 4 ? AF_INET : AF_INET6, s->data, ip,
		sizeof(ip)) != NULL)
		put(l, ip, strlen(ip));
	else
		put_escaped(l, s->data, (size_t)s->length);
	put(l, "\"", 1);
}

static void
put_sans(struct line *l, const X509 *cert)
{
	GENERAL_NAMES *gens =
	    X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	int i, first = 1;

	put_key(l, "tls.client.x509.alternative_names");
	put(l, "[", 1);
	for (i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens); i++)
		put_san(l, sk_GENERAL_NAME_value(gens, i), &first);
	put(l, "]", 1);
	GENERAL_NAMES_free(gens);
}

/* Who the client said it is: its certificate, without the certificate. */
static void
put_client_cert(struct line *l, const X509 *cert)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;

	put_name(l, "tls.client.subject", X509_get_subject_name(cert));
	put_name(l, "tls.client.issuer", X509_get_issuer_name(cert));
	put_serial(l, cert);
	if (X509_digest(cert, EVP_sha256(), md, &mdlen))
		put_hex(l, "tls.client.hash.sha256", md, mdlen);
	put_sans(l, cert);
	put_cert_time(l, "tls.client.not_before", X509_get0_notBefore(cert));
	put_cert_time(l, "tls.client.not_after", X509_get0_notAfter(cert));
}

/*
 * All the tls.* fields, from one SSL. A handshake that failed may have
 * no cipher or certificate yet: what is not there is left out.
 */
static void
put_tls(struct line *l, SSL *ssl)
{
	const SSL_CIPHER *cipher = SSL_get_current_cipher(ssl);
	const X509 *cert = SSL_get0_peer_certificate(ssl);
	int v = SSL_version(ssl);

	/* A refused client has no peer certificate: the one refused. */
	if (cert == NULL)
		cert = mtls_verify_refused_cert(ssl);

	put_str(l, "tls.version_protocol", "tls");
	if (v == TLS1_3_VERSION || v == TLS1_2_VERSION)
		put_str(l, "tls.version", v == TLS1_3_VERSION ? "1.3" : "1.2");
	put_raw(l, "tls.established",
	    SSL_is_init_finished(ssl) ? "true" : "false");
	if (cipher != NULL && SSL_CIPHER_standard_name(cipher) != NULL)
		put_str(l, "tls.cipher", SSL_CIPHER_standard_name(cipher));
	put_raw(l, "tls.resumed", SSL_session_reused(ssl) ? "true" : "false");
	if (cert != NULL)
		put_client_cert(l, cert);
}

static void
put_duration(struct line *l, const struct timespec *start)
{
	struct timespec now;
	long long ms;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (now.tv_sec - start->tv_sec) * 1000LL +
	    (now.tv_nsec - start->tv_nsec) / 1000000;
	put_num(l, "hk.duration_ms", ms > 0 ? (unsigned long long)ms : 0);
}

static void
put_ktls(struct line *l, const struct conn *c)
{
	enum ktls_state tx = KTLS_STATE_OFF, rx = KTLS_STATE_OFF;

	if (c->k != NULL) {
		tx = ktls_state(c->k, KTLS_TX);
		rx = ktls_state(c->k, KTLS_RX);
	}
	put_str(l, "hk.ktls.tx", ktls_words[tx]);
	put_str(l, "hk.ktls.rx", ktls_words[rx]);
}

/* The fields every line starts with. */
static void
put_head(struct line *l, const struct hk_audit_conn *ac, enum hk_audit_event ev,
    int failed, const char *reason)
{
	struct timespec now;
	struct tm tm;
	char ts[48];

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	rfc3339(&tm, now.tv_nsec / 1000000, ts, sizeof(ts));
	put(l, "{", 1);
	put_str(l, "@timestamp", ts);
	put_str(l, "event.kind", "event");
	put_raw(l, "event.category", events[ev].category);
	put_raw(l, "event.type", events[ev].type);
	put_str(l, "event.action", events[ev].action);
	put_str(l, "event.outcome", failed ? "failure" : "success");
	if (reason != NULL)
		put_str(l, "event.reason", reason);
	put_num(l, "hk.connection.id", ac->id);
	put_str(l, "source.ip", ac->ip);
	put_num(l, "source.port", ac->port);
	if (ac->dst_ip[0] != '\0') {
		put_str(l, "destination.ip", ac->dst_ip);
		put_num(l, "destination.port", ac->dst_port);
	}
	if (ac->generation != 0)
		put_num(l, "hk.config.generation", ac->generation);
}

/* The line, whole, to the sink; -1 with errno. */
static int
emit(struct hk_audit *a, struct line *l)
{
	ssize_t n;
	size_t done = 0;
	int ret = 0;

	put(l, "}\n", 2);
	if (l->oom) {
		errno = ENOMEM;
		return -1;
	}
	if (a->sink == SINK_SYSLOG) {
		syslog(LOG_AUTHPRIV | LOG_INFO, "%.*s", (int)l->len - 1,
		    l->buf);
		return 0;
	}
	if (a->sink == SINK_STDOUT) {
		/* Among the server's own lines, under stdout's lock. */
		flockfile(stdout);
		ret = fwrite(l->buf, 1, l->len, stdout) == l->len &&
			fflush(stdout) == 0 ?
		    0 :
		    -1;
		funlockfile(stdout);
		return ret;
	}
	pthread_mutex_lock(&a->lock);
	while (done < l->len) {
		n = write(a->fd, l->buf + done, l->len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ret = -1;
			break;
		}
		done += (size_t)n;
	}
	pthread_mutex_unlock(&a->lock);
	return ret;
}

/*
 * hk.client.expires_in_s: seconds from now to the client's notAfter (the
 * time left on the access this line allows: with --close-at-expiry, the
 * longest the connection can last).
 */
static void
put_expires_in(struct line *l, const X509 *cert)
{
	long long left;

	if (cert != NULL && hk_expiry_left(cert, time(NULL), &left) == 0)
		put_num(l, "hk.client.expires_in_s",
		    left > 0 ? (unsigned long long)left : 0);
}

/* One line; rule is rule.name, or NULL for none. */
static int
event_line(const struct hk_audit_conn *ac, enum hk_audit_event ev,
    const struct conn *c, int failed, const char *reason, const char *rule)
{
	struct line l = { 0 };
	int with = events[ev].with, ret, saved;

	if (ac->audit == NULL)
		return 0;
	put_head(&l, ac, ev, failed, reason);
	if (rule != NULL)
		put_str(&l, "rule.name", rule);
	if ((with & WITH_TLS) && c != NULL && c->ssl != NULL)
		put_tls(&l, c->ssl);
	if ((with & WITH_KTLS) && c != NULL)
		put_ktls(&l, c);
	if ((with & WITH_BYTES) && c != NULL) {
		put_num(&l, "hk.bytes.in", c->bytes_in);
		put_num(&l, "hk.bytes.out", c->bytes_out);
	}
	if (ev == HK_AUDIT_ALLOWED && c != NULL && c->ssl != NULL)
		put_expires_in(&l, SSL_get0_peer_certificate(c->ssl));
	if (with & WITH_DURATION)
		put_duration(&l, &ac->start);
	ret = emit(ac->audit, &l);
	saved = errno;
	free(l.buf);
	errno = saved;
	return ret;
}

int
hk_audit_event(const struct hk_audit_conn *ac, enum hk_audit_event ev,
    const struct conn *c, int failed, const char *reason)
{
	/* Without --policy, every verified client is let in by "default". */
	return event_line(ac, ev, c, failed, reason,
	    ev == HK_AUDIT_ALLOWED ? "default" : NULL);
}

int
hk_audit_decision(const struct hk_audit_conn *ac, const struct conn *c,
    int allow, const char *rule, const char *reason)
{
	return event_line(ac, allow ? HK_AUDIT_ALLOWED : HK_AUDIT_DENIED, c,
	    !allow, reason, rule);
}

/* A string field, left out when empty. */
static void
put_some(struct line *l, const char *key, const char *s)
{
	if (s != NULL && s[0] != '\0')
		put_str(l, key, s);
}

int
hk_audit_revocation(const struct hk_audit_conn *ac, const struct conn *c,
    const struct mtls_revocation *rev, int refused)
{
	struct line l = { 0 };
	int ret, saved;

	if (ac->audit == NULL)
		return 0;
	put_head(&l, ac, HK_AUDIT_REVOCATION, refused,
	    rev->why[0] != '\0' ? rev->why : NULL);
	if (c != NULL && c->ssl != NULL)
		put_tls(&l, c->ssl);
	put_str(&l, "hk.revocation.source", rev->source);
	put_str(&l, "hk.revocation.status", rev->status);
	put_some(&l, "hk.revocation.this_update", rev->this_update);
	put_some(&l, "hk.revocation.next_update", rev->next_update);
	put_some(&l, "hk.revocation.responder", rev->responder);
	if (strcmp(rev->source, "ocsp") == 0)
		put_raw(&l, "hk.revocation.cache_hit",
		    rev->cache_hit ? "true" : "false");
	put_raw(&l, "hk.revocation.soft_pass",
	    rev->soft_pass ? "true" : "false");
	ret = emit(ac->audit, &l);
	saved = errno;
	free(l.buf);
	errno = saved;
	return ret;
}

/* "192.0.2.1:443" or "[2001:db8::1]:443", as the server names its peers. */
static void
address(const char *name, char *ip, size_t iplen, unsigned *port)
{
	const char *colon = strrchr(name, ':');
	size_t n = colon != NULL ? (size_t)(colon - name) : strlen(name);

	if (n >= 2 && name[0] == '[' && name[n - 1] == ']') {
		name++;
		n -= 2;
	}
	snprintf(ip, iplen, "%.*s", (int)n, name);
	*port = colon != NULL ? (unsigned)strtoul(colon + 1, NULL, 10) : 0;
}

/* A new connection's part of the trail: number, addresses, start. */
static void
conn_start(struct hk_audit *a, struct hk_audit_conn *ac, const char *peer,
    const char *local)
{
	unsigned long long generation = ac->generation;

	memset(ac, 0, sizeof(*ac));
	ac->generation = generation;
	ac->audit = a;
	if (a == NULL)
		return;
	clock_gettime(CLOCK_MONOTONIC, &ac->start);
	ac->id = atomic_fetch_add(&a->next_id, 1) + 1;
	address(peer, ac->ip, sizeof(ac->ip), &ac->port);
	if (local != NULL)
		address(local, ac->dst_ip, sizeof(ac->dst_ip), &ac->dst_port);
}

int
hk_audit_accepted(struct hk_audit *a, struct hk_audit_conn *ac,
    const char *peer, const char *local)
{
	conn_start(a, ac, peer, local);
	return hk_audit_event(ac, HK_AUDIT_ACCEPTED, NULL, 0, NULL);
}

int
hk_audit_refused(struct hk_audit *a, const char *peer, const char *local,
    const char *reason)
{
	struct hk_audit_conn ac = { .generation = 0 };

	conn_start(a, &ac, peer, local);
	return hk_audit_event(&ac, HK_AUDIT_REFUSED, NULL, 1, reason);
}

static int
open_file(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);

	if (fd < 0)
		snprintf(err, errlen, "--audit %s: %s", path, strerror(errno));
	return fd;
}

struct hk_audit *
hk_audit_open(const char *where, char *err, size_t errlen)
{
	struct hk_audit *a = calloc(1, sizeof(*a));

	if (a == NULL || (a->path = strdup(where)) == NULL) {
		snprintf(err, errlen, "--audit: out of memory");
		free(a);
		return NULL;
	}
	a->fd = -1;
	pthread_mutex_init(&a->lock, NULL);
	if (strcmp(where, "-") == 0)
		a->sink = SINK_STDOUT;
	else if (strcmp(where, "syslog") == 0) {
		a->sink = SINK_SYSLOG;
		openlog("hello_ktls_server", LOG_PID | LOG_NDELAY,
		    LOG_AUTHPRIV);
	} else if ((a->fd = open_file(where, err, errlen)) < 0) {
		hk_audit_free(a);
		return NULL;
	}
	return a;
}

int
hk_audit_reopen(struct hk_audit *a, char *err, size_t errlen)
{
	int fd, old;

	if (a->sink != SINK_FILE)
		return 0;
	/* Opened before the swap: a failure keeps the old file going. */
	if ((fd = open_file(a->path, err, errlen)) < 0)
		return -1;
	pthread_mutex_lock(&a->lock);
	old = a->fd;
	a->fd = fd;
	pthread_mutex_unlock(&a->lock);
	close(old);
	return 0;
}

void
hk_audit_free(struct hk_audit *a)
{
	if (a == NULL)
		return;
	if (a->fd >= 0)
		close(a->fd);
	if (a->sink == SINK_SYSLOG)
		closelog();
	pthread_mutex_destroy(&a->lock);
	free(a->path);
	free(a);
}
