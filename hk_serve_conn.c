/*
 * hk_serve_conn.c - one client of hello_ktls_server (hk_serve_conn.h).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "conn.h"
#include "hk_audit.h"
#include "hk_config.h"
#include "hk_metrics.h"
#include "hk_pool.h"
#include "hk_print.h"
#include "hk_proto.h"
#include "hk_reload.h"
#include "hk_serve.h"
#include "hk_serve_conn.h"
#include "hk_session.h"
#include "mtls.h"
#include "mtls_policy.h"

#define BUF_SIZE (64 * 1024)

void
hk_peer_name(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
	const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;

	if (ss->ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
		inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], host,
		    sizeof(host));
		snprintf(buf, len, "%s:%u", host, ntohs(s6->sin6_port));
	} else if (ss->ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
		snprintf(buf, len, "[%s]:%u", host, ntohs(s6->sin6_port));
	} else {
		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
		snprintf(buf, len, "%s:%u", host, ntohs(s4->sin_port));
	}
}

const char *
hk_local_name(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss = {
		0
	}; /* the analyzer: getsockname fills it */
	socklen_t sl = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return NULL;
	hk_peer_name(&ss, buf, len);
	return buf;
}

/* The seed's exchange: one message in (already read), one reply out. */
static int
exchange_hello(struct conn *c, const struct hk_config *cfg, const char *buf,
    size_t n)
{
	hk_print_text("Received from client: ", buf, n);
	hk_say("Sending response to client: %s", cfg->message);
	if (conn_write(c, cfg->message, strlen(cfg->message)) < 0)
		return -1;
	hk_say("Sent %zu bytes", strlen(cfg->message));
	return 0;
}

/* --echo: send back every byte until the client's close_notify. */
static int
exchange_echo(struct conn *c, char *buf, size_t n)
{
	unsigned long long total = 0;
	ssize_t r = (ssize_t)n;

	do {
		if (conn_write(c, buf, (size_t)r) < 0)
			return -1;
		total += (unsigned long long)r;
	} while ((r = conn_read(c, buf, BUF_SIZE)) > 0);
	if (r < 0)
		return -1;
	hk_say("Echoed %llu bytes", total);
	return 0;
}

/* What the client sent first decides the exchange; d: --policy's, or NULL. */
static int
exchange(struct conn *c, const struct hk_config *cfg, int rootfd,
    const struct mtls_decision *d, char *buf)
{
	char summary[512];
	ssize_t n = conn_read(c, buf, BUF_SIZE);

	if (n <= 0) {
		if (n == 0)
			conn_seterr(c,
			    "client closed before sending a "
			    "message");
		return -1;
	}
	if (cfg->echo && d != NULL &&
	    !mtls_decision_permits(d, MTLS_POLICY_ECHO, NULL, summary,
		sizeof(summary)))
		return hk_serve_refuse(c, summary);
	if (cfg->echo)
		return exchange_echo(c, buf, (size_t)n);
	if (!hk_proto_is_line(buf, (size_t)n))
		return exchange_hello(c, cfg, buf, (size_t)n);
	if (hk_serve_request(c, rootfd, d, buf, (size_t)n, summary,
		sizeof(summary)) < 0)
		return -1;
	hk_say("%s", summary);
	return 0;
}

/* An audit line that could not be written is said on stderr. */
static void
audit(const struct hk_audit_conn *ac, enum hk_audit_event ev,
    const struct conn *c, int failed, const char *reason)
{
	if (hk_audit_event(ac, ev, c, failed, reason) < 0)
		hk_warn("audit log: %s", strerror(errno));
}

/*
 * The line of a verified client: the policy's decision, or "default".
 * The metrics count it here too (*slot: its kTLS modes, for audit_end).
 */
static void
audit_verified(const struct hk_audit_conn *ac, const struct conn *c,
    const struct hk_authz *az, int *slot)
{
	const struct mtls_decision *d = &az->decision;

	hk_metrics_verified(c, !az->decided || d->allow,
	    az->decided ? d->rule_name : "default", slot);
	if (!az->decided)
		audit(ac, HK_AUDIT_ALLOWED, c, 0, "verified");
	else if (hk_audit_decision(ac, c, d->allow, d->rule_name, d->reason) <
	    0)
		hk_warn("audit log: %s", strerror(errno));
}

/*
 * The revocation checks of the client (CRL, OCSP), before the line that
 * allows or refuses it; a check is refused when it is what ended the
 * handshake (not soft-passed, not good).
 */
static void
audit_revocation(const struct hk_audit_conn *ac, const struct conn *c)
{
	static const char *const sources[] = { "crl", "ocsp" };
	const struct mtls_revocation *rev;
	size_t i;

	for (i = 0; i < 2; i++) {
		if ((rev = mtls_revocation_checked(c->ssl, sources[i])) == NULL)
			continue;
		if (hk_audit_revocation(ac, c, rev,
			strcmp(rev->status, "good") != 0 && !rev->soft_pass) <
		    0)
			hk_warn("audit log: %s", strerror(errno));
	}
}

/*
 * The audit line that ends a connection: a handshake that did not verify
 * the client is refused; one that did was allowed and is now closed.
 */
static void
audit_end(const struct hk_audit_conn *ac, const struct conn *c, int verified,
    const char *why, int slot)
{
	if (!verified) {
		hk_metrics_handshake_failed(c, why);
		audit(ac, HK_AUDIT_HANDSHAKE_FAILED, c, 1, why);
	} else {
		hk_metrics_closed(c, slot);
		audit(ac, HK_AUDIT_CLOSED, c, strcmp(why, "close_notify") != 0,
		    why);
	}
}

/*
 * Why a connection that failed ended, as its log line says it: a
 * --reauthorize refusal (live: its entry, NULL if not listed; said once
 * closed, with how: reauthorized), the shutdown, or its error.
 */
static void
say_end(const struct conn *c, const struct hk_reload_conn *live,
    const char *peer, char *why, size_t len)
{
	if (live != NULL && live->why[0] != '\0') {
		snprintf(why, len, "%.*s", (int)len - 1, live->why);
	} else if (conn_interrupted(c)) {
		snprintf(why, len, "shutdown");
		hk_warn("client %s: closed, the server is shutting down", peer);
	} else {
		snprintf(why, len, "%s", conn_error(c));
		hk_warn("client %s: %s", peer, conn_error(c));
	}
}

/* A connection --reauthorize ended: why, and whether it ended cleanly. */
static void
reauthorized(const struct conn *c, const char *peer, const char *why,
    int closed)
{
	hk_warn("client %s: closed: %s (%s)", peer, why,
	    closed == 0 ? "close_notify sent" : conn_error(c));
}

/*
 * One client, from accept to close, with the identity set current when
 * it came (its generation in every audit line), held until it leaves: a
 * reload never changes a connection already open; --reauthorize may end
 * it. On the heap, so that an idle one waits parked, without a thread
 * (hk_pool_park): a few kB, the request buffer only once it is served.
 */
struct client {
	const struct hk_server *srv;
	struct hk_set *set;
	atomic_int *stop; /* the connection's own (hk_pool.h) */
	struct conn c;
	struct hk_counters *counters; /* --stats (4 kB): NULL without */
	struct hk_audit_conn ac;
	struct hk_authz az;
	struct hk_reload_conn live, *listed; /* --reauthorize's entry */
	int verified, slot;
	char head[HK_SUMMARY_HEAD_MAX]; /* --quiet */
	char peer[INET6_ADDRSTRLEN + 16];
};

static struct client *
client_new(const struct hk_server *srv, const char *peer, atomic_int *stop)
{
	struct client *cl = calloc(1, sizeof(*cl));

	if (cl == NULL)
		return NULL;
	if (srv->cfg->stats &&
	    (cl->counters = calloc(1, sizeof(*cl->counters))) == NULL) {
		free(cl);
		return NULL;
	}
	cl->srv = srv;
	cl->set = hk_reload_acquire(srv->reload);
	cl->stop = stop;
	cl->c.fd = -1;
	cl->ac.generation = cl->set->generation;
	cl->az.policy = cl->set->policy;
	cl->slot = -1;
	snprintf(cl->peer, sizeof(cl->peer), "%s", peer);
	return cl;
}

/* Accepted to past the handshake and kTLS; 0, or -1 with cl->c's error. */
static int
client_begin(struct client *cl, int fd)
{
	const struct hk_config *cfg = cl->srv->cfg;
	char local[INET6_ADDRSTRLEN + 16];
	int started;

	hk_print_peer(cl->peer);
	hk_say("Client connected");
	if (hk_audit_accepted(cl->srv->audit, &cl->ac, cl->peer,
		hk_local_name(fd, local, sizeof(local))) < 0)
		hk_warn("audit log: %s", strerror(errno));
	if (conn_init(&cl->c, cl->set->ctx, fd, cfg->handshake_timeout,
		"--handshake-timeout") < 0)
		return -1;
	conn_set_interrupt(&cl->c, cl->stop);
	started =
	    hk_session_start(&cl->c, cfg, "Client", &cl->az, cl->counters);
	audit_revocation(&cl->ac, &cl->c);
	/* Verified, then maybe refused by --ktls require: still allowed. */
	if ((cl->verified = SSL_is_init_finished(cl->c.ssl)))
		audit_verified(&cl->ac, &cl->c, &cl->az, &cl->slot);
	if (cfg->quiet)
		hk_print_summary_head(&cl->c, cl->head, sizeof(cl->head));
	if (started < 0)
		return -1;
	if (cfg->reauthorize) {
		hk_reload_conn_add(cl->srv->reload, &cl->live,
		    SSL_get0_peer_certificate(cl->c.ssl), cl->stop);
		cl->listed = &cl->live;
	}
	conn_set_timeout(&cl->c, cfg->idle_timeout);
	/* The handshake's deep frames are done: an idle client keeps less. */
	hk_pool_trim_stack();
	/*
	 * Nothing more is read from the SSL (--reauthorize holds its own
	 * reference to the certificate): an idle client keeps less.
	 */
	hk_session_free_ssl(&cl->c);
	return 0;
}

/*
 * Wait for the request without a thread: only once the kernel holds
 * both directions (no SSL left to read through) and nothing has come
 * yet. 0 if parked: cl is the pool's then (hk_serve_conn_resume).
 */
static int
client_park(struct client *cl)
{
	struct pollfd pf = { .fd = cl->c.fd, .events = POLLIN };
	struct hk_reload *r = cl->srv->reload;

	if (cl->c.ssl != NULL || poll(&pf, 1, 0) != 0)
		return -1;
	/* From now on a --reauthorize refusal signals the lot. */
	if (cl->listed != NULL)
		hk_reload_conn_thread(r, cl->listed, hk_pool_lot_thread());
	hk_print_peer(NULL);
	if (hk_pool_park(cl->c.fd, conn_park(&cl->c), cl) == 0)
		return 0;
	if (cl->listed != NULL)
		hk_reload_conn_thread(r, cl->listed, pthread_self());
	hk_print_peer(cl->peer);
	return -1;
}

/* The request and its answer; 0, or -1 with cl->c's error. */
static int
client_exchange(struct client *cl)
{
	const struct hk_config *cfg = cl->srv->cfg;
	char *buf;
	int ret = -1;

	/* Only now: a parked client holds no 64 KiB buffer. */
	if ((buf = malloc(BUF_SIZE)) == NULL) {
		conn_seterr(&cl->c, "out of memory");
		return -1;
	}
	if (exchange(&cl->c, cfg, cl->srv->rootfd,
		cl->az.decided ? &cl->az.decision : NULL, buf) == 0) {
		hk_session_end(&cl->c, cfg, cl->counters);
		ret = 0;
	}
	free(buf);
	return ret;
}

/* The end of a client served (ret 0) or not: said, audited, freed. */
static int
client_end(struct client *cl, int ret)
{
	const struct hk_config *cfg = cl->srv->cfg;
	struct hk_reload_conn *listed = cl->listed;
	struct conn *c = &cl->c;
	char why[CONN_ERR_MAX];
	int closed;

	if (listed != NULL)
		hk_reload_conn_remove(cl->srv->reload, listed);
	if (ret < 0)
		say_end(c, listed, cl->peer, why, sizeof(why));
	/* Also after a refusal of ours (--ktls require): end TLS cleanly. */
	closed = conn_close(c);
	if (listed != NULL && listed->why[0] != '\0')
		reauthorized(c, cl->peer, listed->why, closed);
	else if (closed == 0 && ret == 0)
		hk_say("Connection closed");
	else if (ret == 0)
		hk_warn("client %s: served, but no clean close: %s", cl->peer,
		    conn_error(c));
	if (ret == 0)
		snprintf(why, sizeof(why), "%s",
		    closed == 0 ? "close_notify" : conn_error(c));
	if (cfg->quiet)
		hk_print_summary(c, cl->head, why);
	/* A denied client's last line was access-denied. */
	if (!cl->az.decided || cl->az.decision.allow)
		audit_end(&cl->ac, c, cl->verified, why, cl->slot);
	conn_free(c);
	hk_set_release(cl->set);
	free(cl->counters);
	free(cl);
	hk_print_peer(NULL);
	return ret;
}

int
hk_serve_conn(const struct hk_server *srv, int fd, const char *peer,
    atomic_int *stop, int may_park)
{
	struct client *cl = client_new(srv, peer, stop);
	int ret;

	if (cl == NULL) {
		hk_warn("client %s: out of memory", peer);
		close(fd);
		return -1;
	}
	if ((ret = client_begin(cl, fd)) == 0) {
		if (may_park && client_park(cl) == 0)
			return 0;
		ret = client_exchange(cl);
	}
	return client_end(cl, ret);
}

void
hk_serve_conn_pool(void *arg, int fd, const char *peer, atomic_int *stop)
{
	hk_serve_conn(arg, fd, peer, stop, 1);
}

void
hk_serve_conn_resume(void *arg, void *state, enum hk_pool_wake why,
    atomic_int *stop)
{
	const struct hk_server *srv = arg;
	struct client *cl = state;

	(void)why;
	hk_print_peer(cl->peer);
	if (cl->listed != NULL)
		hk_reload_conn_thread(srv->reload, cl->listed, pthread_self());
	conn_set_interrupt(&cl->c, stop);
	client_end(cl, client_exchange(cl));
}
