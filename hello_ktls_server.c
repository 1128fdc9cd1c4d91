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
 * single client in the main thread. What happens to one client is
 * hk_serve_conn.c's; here: the listening socket, the accept loop,
 * signals, reloads, and the program's start and end.
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
#include <unistd.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <openssl/pem.h>

#include "hk_audit.h"
#include "hk_config.h"
#include "hk_expiry.h"
#include "hk_metrics.h"
#include "hk_pool.h"
#include "hk_print.h"
#include "hk_reload.h"
#include "hk_serve_conn.h"
#include "hk_status.h"
#include "mtls.h"
#include "mtls_policy.h"

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

/* A client not served (--max-connections): said, audited, closed. */
static void
refuse(const struct hk_server *srv, int fd, const char *peer, const char *why)
{
	char local[INET6_ADDRSTRLEN + 16];

	hk_warn("refusing client %s: %s", peer, why);
	hk_metrics_refused();
	if (hk_audit_refused(srv->audit, peer,
		hk_local_name(fd, local, sizeof(local)), why) < 0)
		hk_warn("audit log: %s", strerror(errno));
	close(fd);
}

/*
 * A reload, when one is due, said as it went (hk_reload.h); after a new
 * generation, --reauthorize ends the open connections it now refuses.
 */
static void
reload_step(const struct hk_server *srv)
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
	if ((refused = hk_reload_reauthorize(srv->reload, &open)) < 0)
		hk_warn("reauthorize: out of memory: the %d open connection%s "
			"not checked",
		    open, open == 1 ? " was" : "s were");
	else
		hk_say("Reauthorize: %d of %d open connection%s refused",
		    refused, open, open == 1 ? "" : "s");
}

/*
 * Between two accepts: SIGHUP, the watched files, reloads. Waits up to a
 * second for a client (or for the quiet time a reload waits for to end);
 * 1 if one is waiting to be accepted.
 */
static int
wait_client(const struct hk_server *srv, int lfd)
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
expiry_watch(struct hk_server *srv)
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
serve_forever(struct hk_server *srv, int lfd)
{
	const struct hk_config *cfg = srv->cfg;
	struct timeval tick = { .tv_sec = 1 };
	struct sockaddr_storage ss;
	char peer[INET6_ADDRSTRLEN + 16], err[256];
	struct hk_pool *pool = NULL;
	socklen_t len;
	int fd, left;

	if (!cfg->once &&
	    (pool = hk_pool_new(cfg->max_connections, hk_serve_conn_pool,
		 hk_serve_conn_resume, srv)) == NULL) {
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
		hk_peer_name(&ss, peer, sizeof(peer));
		if (cfg->once) {
			close(lfd);
			return hk_serve_conn(srv, fd, peer, &stopping, 0) == 0 ?
			    0 :
			    1;
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
server_open(struct hk_server *srv, const struct hk_config *cfg, int *lfd)
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
identity_open(struct hk_server *srv, const struct hk_config *cfg)
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
	struct hk_server srv = { .rootfd = -1 };
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
