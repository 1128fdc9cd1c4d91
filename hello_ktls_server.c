/*
 * hello_ktls_server - an mTLS server that hands its connections' record
 * encryption to the kernel (kTLS) after the handshake.
 *
 * It listens on all IPv4 and IPv6 addresses, requires and verifies a
 * client certificate, offloads TLS to the kernel, reads the client's
 * message and answers it (or echoes everything with --echo). Each client
 * is served on a thread of its own, which waits on its socket alone (a
 * whole-handshake deadline, then an idle deadline), so a slow client
 * never holds up the others; a client idle after its handshake, once the
 * kernel holds both directions, waits without a thread in the pool's
 * parking lot until its request comes (hk_pool.h); --once serves a
 * single client in the main thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <openssl/pem.h>

#include "conn.h"
#include "hk_audit.h"
#include "hk_config.h"
#include "hk_expiry.h"
#include "hk_metrics.h"
#include "hk_pool.h"
#include "hk_print.h"
#include "hk_session.h"
#include "hk_status.h"
#include "hk_proto.h"
#include "hk_reload.h"
#include "hk_serve.h"
#include "ktls_keys.h"
#include "mtls.h"
#include "mtls_policy.h"

#define BUF_SIZE (64 * 1024)

static atomic_int stopping; /* SIGINT/SIGTERM; lock-free, so fine in a handler */
/* SIGHUP: reload the identity set, reopen --audit FILE (logrotate). */
static atomic_int hangup;

static void
on_stop(int sig)
{
	(void)sig;
	atomic_store(&stopping, 1);
}

static void
on_hup(int sig)
{
	(void)sig;
	atomic_store(&hangup, 1);
}

/* The wildcard listener: dual-stack IPv6, or IPv4 alone where the kernel has no IPv6. */
static int
listen_any(unsigned short port)
{
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6,
		.sin6_addr = IN6ADDR_ANY_INIT };
	struct sockaddr_in a4 = { .sin_family = AF_INET };
	int fd, off = 0, on = 1;

	a6.sin6_port = a4.sin_port = htons(port);
	if ((fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0) {
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
		if (bind(fd, (struct sockaddr *)&a6, sizeof(a6)) == 0)
			return fd;
		close(fd);
		if (errno != EADDRNOTAVAIL && errno != EAFNOSUPPORT)
			return -1;
	} else if (errno != EAFNOSUPPORT)
		return -1;
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (bind(fd, (struct sockaddr *)&a4, sizeof(a4)) == 0)
		return fd;
	close(fd);
	return -1;
}

static int
listen_on(const char *bind_addr, const char *port, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
		.ai_flags = AI_PASSIVE };
	struct addrinfo *res, *ai;
	int fd = -1, on = 1, rc;

	if (bind_addr == NULL) {
		fd = listen_any((unsigned short)atoi(port));
	} else if ((rc = getaddrinfo(bind_addr, port, &hints, &res)) != 0) {
		snprintf(err, errlen, "--bind %s: %s", bind_addr,
		    gai_strerror(rc));
		return -1;
	} else {
		for (ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
			fd = socket(ai->ai_family,
			    ai->ai_socktype | SOCK_CLOEXEC, 0);
			if (fd < 0)
				continue;
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on,
			    sizeof(on));
			if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
				close(fd);
				fd = -1;
			}
		}
		freeaddrinfo(res);
	}
	/* A burst of clients waits in the backlog, not in SYN retries. */
	if (fd < 0 || listen(fd, SOMAXCONN) < 0) {
		snprintf(err, errlen, "cannot listen on %s port %s: %s",
		    bind_addr ? bind_addr : "all addresses", port,
		    strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static unsigned
local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return 0;
	return ntohs(ss.ss_family == AF_INET6 ?
		((struct sockaddr_in6 *)&ss)->sin6_port :
		((struct sockaddr_in *)&ss)->sin_port);
}

/* "127.0.0.1:PORT" or "[::1]:PORT"; IPv4-mapped addresses as IPv4. */
static void
peer_name(const struct sockaddr_storage *ss, char *buf, size_t len)
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

/* The address fd was accepted on, as peer_name says it; NULL if unknown. */
static const char *
local_name(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return NULL;
	peer_name(&ss, buf, len);
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

/*
 * What every client's thread reads. The identity set (context, policy)
 * is the reloader's: each connection takes the current one.
 */
struct server {
	struct hk_reload *reload;
	const struct hk_config *cfg;
	int rootfd;
	struct hk_audit *audit;        /* --audit, or NULL */
	struct hk_status *status;      /* --status, or NULL */
	struct hk_expiry_watch expiry; /* what was said of our certificates */
};

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
	const struct server *srv;
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
client_new(const struct server *srv, const char *peer, atomic_int *stop)
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
		local_name(fd, local, sizeof(local))) < 0)
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
 * yet. 0 if parked: cl is the pool's then (resume_client).
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

/*
 * One client on this thread; may_park: an idle one may wait in the
 * pool's lot (not --once, which has no pool). 0 when served (or parked).
 */
static int
serve(const struct server *srv, int fd, const char *peer, atomic_int *stop,
    int may_park)
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

/* A client's thread (hk_pool.h). */
static void
serve_client(void *arg, int fd, const char *peer, atomic_int *stop)
{
	serve(arg, fd, peer, stop, 1);
}

/*
 * A parked client back on a thread: its request came (or its peer left,
 * or its time ran out, or it must stop; the exchange's first read says
 * which, as it would have on a thread: conn_park).
 */
static void
resume_client(void *arg, void *state, enum hk_pool_wake why, atomic_int *stop)
{
	const struct server *srv = arg;
	struct client *cl = state;

	(void)why;
	hk_print_peer(cl->peer);
	if (cl->listed != NULL)
		hk_reload_conn_thread(srv->reload, cl->listed, pthread_self());
	conn_set_interrupt(&cl->c, stop);
	client_end(cl, client_exchange(cl));
}

/* A client not served (--max-connections): said, audited, closed. */
static void
refuse(const struct server *srv, int fd, const char *peer, const char *why)
{
	char local[INET6_ADDRSTRLEN + 16];

	hk_warn("refusing client %s: %s", peer, why);
	hk_metrics_refused();
	if (hk_audit_refused(srv->audit, peer,
		local_name(fd, local, sizeof(local)), why) < 0)
		hk_warn("audit log: %s", strerror(errno));
	close(fd);
}

/*
 * A reload, when one is due, said as it went (hk_reload.h); after a new
 * generation, --reauthorize ends the open connections it now refuses.
 */
static void
reload_step(const struct server *srv)
{
	struct hk_reload_counts counts;
	struct hk_set *set;
	char msg[2048];
	int refused, open;

	switch (hk_reload_step(srv->reload, msg, sizeof(msg))) {
	case HK_RELOAD_NONE:
		return;
	case HK_RELOAD_SAME:
		hk_say("%s", msg);
		return;
	case HK_RELOAD_FAILED:
		hk_warn("%s", msg);
		/* FALLTHROUGH */
	case HK_RELOAD_FAILED_SAME: /* said once is enough; counted each time */
		hk_reload_counts(srv->reload, &counts);
		hk_metrics_reload(0, (unsigned)counts.generation);
		return;
	case HK_RELOAD_OK:
		break;
	}
	hk_say("%s", msg);
	set = hk_reload_acquire(srv->reload);
	hk_context_notes(set->ctx);
	hk_metrics_set_ctx(set->ctx);
	hk_set_release(set);
	hk_reload_counts(srv->reload, &counts);
	hk_metrics_reload(1, (unsigned)counts.generation);
	if (!srv->cfg->reauthorize)
		return;
	refused = hk_reload_reauthorize(srv->reload, &open);
	hk_say("Reauthorize: %d of %d open connection%s refused", refused, open,
	    open == 1 ? "" : "s");
}

/*
 * Between two accepts: SIGHUP, the watched files, reloads. Waits up to a
 * second for a client (or for the quiet time a reload waits for to end);
 * 1 if one is waiting to be accepted.
 */
static int
wait_client(const struct server *srv, int lfd)
{
	char err[256];
	struct pollfd p[2] = { { .fd = lfd, .events = POLLIN },
		{ .fd = hk_reload_fd(srv->reload), .events = POLLIN } };

	if (atomic_exchange(&hangup, 0)) {
		if (srv->audit != NULL &&
		    hk_audit_reopen(srv->audit, err, sizeof(err)) < 0)
			hk_warn("%s (still writing to the old file)", err);
		hk_reload_request(srv->reload);
	}
	reload_step(srv);
	hk_reload_kick(srv->reload);
	if (poll(p, 2, hk_reload_wait_ms(srv->reload, 1000)) <= 0)
		return 0;
	if (p[1].revents & POLLIN)
		hk_reload_events(srv->reload);
	return (p[0].revents & POLLIN) != 0;
}

/*
 * Warn about our certificate and the CA's as they near their end (once a
 * second, on the current generation: a renewed one starts again).
 */
static void
expiry_watch(struct server *srv)
{
	struct hk_set *set = hk_reload_acquire(srv->reload);

	hk_expiry_watch_ctx(&srv->expiry, set->ctx, "server");
	hk_set_release(set);
}

/*
 * Serve until SIGINT/SIGTERM, each client on one of the pool's threads;
 * then stop accepting, give the clients --grace, and end the rest with
 * close_notify.
 */
static int
serve_forever(struct server *srv, int lfd)
{
	const struct hk_config *cfg = srv->cfg;
	struct timeval tick = { .tv_sec = 1 };
	struct sockaddr_storage ss;
	char peer[INET6_ADDRSTRLEN + 16], err[256];
	struct hk_pool *pool = NULL;
	socklen_t len;
	int fd, left;

	if (!cfg->once &&
	    (pool = hk_pool_new(cfg->max_connections, serve_client,
		 resume_client, srv)) == NULL) {
		hk_warn("out of memory");
		return 1;
	}
	/* A client gone between poll and accept: accept() gives up in 1 s. */
	setsockopt(lfd, SOL_SOCKET, SO_RCVTIMEO, &tick, sizeof(tick));
	while (!atomic_load(&stopping)) {
		if (pool != NULL)
			hk_pool_reap(pool);
		expiry_watch(srv);
		if (!wait_client(srv, lfd))
			continue;
		len = sizeof(ss);
		fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EINTR && errno != ECONNABORTED &&
			    errno != EAGAIN)
				hk_warn("accept: %s", strerror(errno));
			continue;
		}
		peer_name(&ss, peer, sizeof(peer));
		if (cfg->once) {
			close(lfd);
			return serve(srv, fd, peer, &stopping, 0) == 0 ? 0 : 1;
		}
		if (hk_pool_spawn(pool, fd, peer, err, sizeof(err)) < 0)
			refuse(srv, fd, peer, err);
	}
	close(lfd);
	if (pool == NULL)
		return 0;
	printf("Shutting down: %d client(s) still connected\n",
	    hk_pool_reap(pool));
	if ((left = hk_pool_stop(pool, cfg->grace)) > 0) {
		/*
		 * Threads stuck in a call no signal ends: exiting ends their
		 * connections with the process; nothing is freed under them.
		 */
		hk_warn("%d client(s) did not stop within 5 s; exiting anyway",
		    left);
		fflush(stdout);
		_exit(0);
	}
	hk_pool_free(pool);
	return 0;
}

/* At the end: what OCSP cost, and how often a failure was let in. */
static void
ocsp_counts(SSL_CTX *ctx)
{
	unsigned long queries, hits;

	if (!mtls_ocsp_enabled(ctx))
		return;
	mtls_ocsp_counts(ctx, &queries, &hits);
	printf("OCSP: %lu queries, %lu cache hits, %lu soft passes\n", queries,
	    hits, mtls_revocation_passes(ctx));
}

/* Only there so that the pool's SIGUSR1 interrupts a blocked call. */
static void
on_wake(int sig)
{
	(void)sig;
}

/* The process-wide settings the server runs with. */
static void
process_setup(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	/* No SA_RESTART: a signal must interrupt accept() (and --once I/O). */
	sa.sa_handler = on_stop;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = on_wake;
	sigaction(HK_POOL_SIGNAL, &sa, NULL);
	/* A reload, and --audit FILE reopened (hk_reload.h, logrotate). */
	sa.sa_handler = on_hup;
	sigaction(SIGHUP, &sa, NULL);
#ifdef __GLIBC__
	/*
	 * One arena, whose free memory stays while clients come and go (no
	 * madvise, and its TLB shootdown, per connection) and which
	 * malloc_trim empties completely when they have gone; glibc trims
	 * the top of per-thread arenas only as they free. With the
	 * per-thread caches in front, one arena is no bottleneck here.
	 */
	mallopt(M_ARENA_MAX, 1);
	mallopt(M_TRIM_THRESHOLD, 8 * 1024 * 1024);
#endif
}

/*
 * --check-policy CERT: the decision on one certificate, as the server
 * would take it once the certificate has verified; no server is started.
 * 0 allow, 1 deny, 2 the policy or the certificate cannot be read.
 */
static int
check_policy(const struct hk_config *cfg)
{
	struct mtls_policy *p;
	struct mtls_decision d;
	X509 *x = NULL;
	BIO *in;
	char err[512], grants[384], subject[256] = "";
	int ret = 2;

	if ((p = mtls_policy_load(cfg->policy, err, sizeof(err))) == NULL) {
		hk_warn("%s", err);
		return 2;
	}
	if ((in = BIO_new_file(cfg->check_policy, "r")) != NULL)
		x = PEM_read_bio_X509(in, NULL, NULL, NULL);
	BIO_free(in);
	if (x == NULL) {
		hk_warn("--check-policy %s: not a readable PEM certificate",
		    cfg->check_policy);
		goto out;
	}
	X509_NAME_oneline(X509_get_subject_name(x), subject, sizeof(subject));
	ret = mtls_policy_decide(p, x, &d) ? 0 : 1;
	mtls_decision_grants(&d, grants, sizeof(grants));
	printf("Policy: %s (%zu rule%s)\n", cfg->policy, mtls_policy_count(p),
	    mtls_policy_count(p) == 1 ? "" : "s");
	printf("Certificate: %s\n", subject);
	printf("Decision: %s\n", d.reason);
	printf("Rule: %s\n", d.rule_name != NULL ? d.rule_name : "none");
	printf("Grants: %s\n", grants);
out:
	X509_free(x);
	mtls_policy_free(p);
	return ret;
}

/* What the server runs with besides its context; -1 after saying why. */
static int
server_open(struct server *srv, const struct hk_config *cfg, int *lfd)
{
	char err[512];

	if (cfg->audit != NULL &&
	    (srv->audit = hk_audit_open(cfg->audit, err, sizeof(err))) ==
		NULL) {
		hk_warn("%s", err);
		return -1;
	}
	if (cfg->root != NULL &&
	    (srv->rootfd = open(cfg->root, O_PATH | O_DIRECTORY | O_CLOEXEC)) <
		0) {
		hk_warn("--root %s: %s", cfg->root, strerror(errno));
		return -1;
	}
	if (cfg->status != NULL &&
	    (srv->status = hk_status_start(cfg->status, err, sizeof(err))) ==
		NULL) {
		hk_warn("%s", err);
		return -1;
	}
	if ((*lfd = listen_on(cfg->bind, cfg->port, err, sizeof(err))) < 0) {
		hk_warn("%s", err);
		return -1;
	}
	return 0;
}

/*
 * Generation 1 of the identity set, as the reloader's: the policy
 * first (its FILE:LINE errors are the ones to show, and the context's
 * ticket generation digests the file: hk_context), then the context.
 * -1 after saying why.
 */
static int
identity_open(struct server *srv, const struct hk_config *cfg)
{
	struct mtls_policy *policy = NULL;
	SSL_CTX *ctx;
	char err[512], what[1024];

	if (cfg->policy != NULL &&
	    (policy = mtls_policy_load(cfg->policy, err, sizeof(err))) ==
		NULL) {
		hk_warn("%s", err);
		return -1;
	}
	if ((ctx = hk_context(cfg)) == NULL) {
		mtls_policy_free(policy);
		return -1;
	}
	if ((srv->reload = hk_reload_new(cfg, ctx, policy, err, sizeof(err))) ==
	    NULL) {
		hk_warn("%s", err);
		return -1;
	}
	if (policy != NULL)
		printf("Policy: %s (%zu rule%s)\n", cfg->policy,
		    mtls_policy_count(policy),
		    mtls_policy_count(policy) == 1 ? "" : "s");
	hk_reload_describe(srv->reload, what, sizeof(what));
	printf("Configuration generation 1: %s\n", what);
	if (hk_reload_check_current(srv->reload, err, sizeof(err)) < 0)
		hk_warn("warning: %s: a reload to such a set would be refused",
		    err);
	return 0;
}

int
main(int argc, char **argv)
{
	struct hk_config cfg;
	struct server srv = { .rootfd = -1 };
	struct hk_set *set;
	int lfd, ret;

	if ((ret = hk_start(&cfg, HK_SERVER, argc, argv)) >= 0)
		return ret;
	if (cfg.check_policy != NULL)
		return check_policy(&cfg);
	process_setup();
	hk_print_quiet(cfg.quiet);
	srv.cfg = &cfg;
	ret = 1;
	if (identity_open(&srv, &cfg) < 0 || server_open(&srv, &cfg, &lfd) < 0)
		goto out;
	set = hk_reload_acquire(srv.reload);
	hk_metrics_set_ctx(set->ctx);
	hk_set_release(set);
	printf("kTLS mode: %s\n", hk_ktls_mode_name(cfg.ktls));
	printf("Server listening on port %u\n", local_port(lfd));
	printf("Waiting for client connections...\n");
	if (cfg.root != NULL)
		printf("Serving files below %s\n", cfg.root);
	if (cfg.audit != NULL)
		printf("Audit log: %s\n", cfg.audit);
	if (cfg.quiet)
		printf("Quiet: one line per client, when it leaves\n");
	if (cfg.no_tickets)
		printf("Session tickets: off (no resumption)\n");
	if (srv.status != NULL)
		printf("Metrics: %s\n", hk_status_where(srv.status));
	ret = serve_forever(&srv, lfd);
	set = hk_reload_acquire(srv.reload);
	ocsp_counts(set->ctx);
	hk_set_release(set);
out:
	hk_status_stop(srv.status);
	hk_metrics_set_ctx(NULL);
	if (srv.rootfd >= 0)
		close(srv.rootfd);
	hk_audit_free(srv.audit);
	hk_reload_free(srv.reload);
	return ret;
}
