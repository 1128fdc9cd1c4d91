/*
 * hello_ktls_server - an mTLS server that hands its connections' record
 * encryption to the kernel (kTLS) after the handshake.
 *
 * It listens on all IPv4 and IPv6 addresses, requires and verifies a
 * client certificate, offloads TLS to the kernel, reads the client's
 * message and answers it (or echoes everything with --echo). Each client
 * has its own thread, which waits on its socket alone (a whole-handshake
 * deadline, then an idle deadline), so a slow client never holds up the
 * others; --once serves a single client in the main thread.
 */
#include <errno.h>
#include <fcntl.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "conn.h"
#include "hk_config.h"
#include "hk_print.h"
#include "hk_proto.h"
#include "hk_serve.h"
#include "ktls_keys.h"
#include "mtls.h"

#define BUF_SIZE (64 * 1024)
/* Deep enough for OpenSSL's handshake and our 16 KiB buffers, with room. */
#define THREAD_STACK (512 * 1024)
/*
 * Stacks kept for the next clients: unmapping one per connection costs
 * a TLB shootdown on every CPU, which a VM makes expensive.
 */
#define SPARE_STACKS 32
#define CLIENT_THREAD_NAME "hk-client"

static atomic_int stopping; /* SIGINT/SIGTERM; lock-free, so fine in a handler */

static void
on_stop(int sig)
{
	(void)sig;
	atomic_store(&stopping, 1);
}

/* The wildcard listener: dual-stack IPv6, or IPv4 alone where the kernel has no IPv6. */
static int
listen_any(unsigned short port)
{
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT };
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
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE };
	struct addrinfo *res, *ai;
	int fd = -1, on = 1, rc;

	if (bind_addr == NULL) {
		fd = listen_any((unsigned short)atoi(port));
	} else if ((rc = getaddrinfo(bind_addr, port, &hints, &res)) != 0) {
		snprintf(err, errlen, "--bind %s: %s", bind_addr, gai_strerror(rc));
		return -1;
	} else {
		for (ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
			fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
			if (fd < 0)
				continue;
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
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
		    bind_addr ? bind_addr : "all addresses", port, strerror(errno));
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
		inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], host, sizeof(host));
		snprintf(buf, len, "%s:%u", host, ntohs(s6->sin6_port));
	} else if (ss->ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
		snprintf(buf, len, "[%s]:%u", host, ntohs(s6->sin6_port));
	} else {
		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
		snprintf(buf, len, "%s:%u", host, ntohs(s4->sin_port));
	}
}

/* The seed's exchange: one message in (already read), one reply out. */
static int
exchange_hello(struct conn *c, const struct hk_config *cfg, const char *buf,
    size_t n)
{
	hk_print_text("Received from client: ", buf, n);
	printf("Sending response to client: %s\n", cfg->message);
	if (conn_write(c, cfg->message, strlen(cfg->message)) < 0)
		return -1;
	printf("Sent %zu bytes\n", strlen(cfg->message));
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
	printf("Echoed %llu bytes\n", total);
	return 0;
}

/* What the client sent first decides the exchange. */
static int
exchange(struct conn *c, const struct hk_config *cfg, int rootfd, char *buf)
{
	char summary[512];
	ssize_t n = conn_read(c, buf, BUF_SIZE);

	if (n <= 0) {
		if (n == 0)
			snprintf(c->err, sizeof(c->err), "client closed before "
			    "sending a message");
		return -1;
	}
	if (cfg->echo)
		return exchange_echo(c, buf, (size_t)n);
	if (!hk_proto_is_line(buf, (size_t)n))
		return exchange_hello(c, cfg, buf, (size_t)n);
	if (hk_serve_request(c, rootfd, buf, (size_t)n, summary,
	    sizeof(summary)) < 0)
		return -1;
	printf("%s\n", summary);
	return 0;
}

/*
 * What every connection's thread shares: read-only after start-up. The
 * worker list is the accept loop's alone; a worker only sets its done.
 */
struct server {
	SSL_CTX *ctx;
	const struct hk_config *cfg;
	int rootfd;
	struct worker *workers;
	int n;
	void *spare[SPARE_STACKS]; /* stacks of joined threads, for reuse */
	int nspare;
	int dirty;         /* clients came and went since the last release */
	time_t idle_since; /* when the last client went */
};

struct worker {
	const struct server *srv;
	pthread_t tid;
	void *stack;
	int fd;
	atomic_int done;
	char peer[INET6_ADDRSTRLEN + 16];
	struct worker *next;
};

/* Set when the grace period is over: every open connection ends now. */
static atomic_int cutoff;

static int
serve(const struct server *srv, int fd, const char *peer,
    const atomic_int *stop)
{
	const struct hk_config *cfg = srv->cfg;
	struct conn c;
	struct hk_counters counters;
	char *buf = NULL;
	int ret = -1;

	printf("Client connected from %s\n", peer);
	if (conn_init(&c, srv->ctx, fd, cfg->handshake_timeout,
	    "--handshake-timeout") < 0)
		goto out;
	conn_set_interrupt(&c, stop);
	if (hk_session_start(&c, cfg, "Client", &counters) < 0)
		goto out;
	conn_set_timeout(&c, cfg->idle_timeout);
	if ((buf = malloc(BUF_SIZE)) == NULL) {
		snprintf(c.err, sizeof(c.err), "out of memory");
		goto out;
	}
	if (exchange(&c, cfg, srv->rootfd, buf) < 0)
		goto out;
	hk_session_end(&c, cfg, &counters);
	ret = 0;
out:
	if (ret < 0 && conn_interrupted(&c))
		hk_warn("client %s: closed, the server is shutting down", peer);
	else if (ret < 0)
		hk_warn("client %s: %s", peer, c.err);
	/* Also after a refusal of ours (--ktls require): end TLS cleanly. */
	if (conn_close(&c) == 0 && ret == 0)
		printf("Connection with %s closed\n", peer);
	free(buf);
	conn_free(&c);
	return ret;
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;

	serve(w->srv, w->fd, w->peer, &cutoff);
	atomic_store(&w->done, 1);
	return NULL;
}

static void
stack_release(struct server *srv, void *stack)
{
	if (srv->nspare < SPARE_STACKS)
		srv->spare[srv->nspare++] = stack;
	else
		munmap(stack, THREAD_STACK);
}

static time_t
now_secs(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec;
}

/*
 * Once no client has been connected for a second, give the memory of
 * the last burst back to the system: the spare stacks, and what glibc
 * keeps in its arenas. Not sooner: clients that come one after another
 * would pay for it each time.
 */
static void
idle_release(struct server *srv)
{
	if (!srv->dirty || srv->n > 0 || now_secs() - srv->idle_since < 1)
		return;
	srv->dirty = 0;
	while (srv->nspare > 0)
		munmap(srv->spare[--srv->nspare], THREAD_STACK);
#ifdef __GLIBC__
	malloc_trim(0);
#endif
}

/* Join the workers that have finished; returns how many are left. */
static int
reap(struct server *srv)
{
	struct worker **pp = &srv->workers, *w;

	while ((w = *pp) != NULL) {
		if (atomic_load(&w->done)) {
			pthread_join(w->tid, NULL);
			*pp = w->next;
			stack_release(srv, w->stack);
			free(w);
			if (--srv->n == 0)
				srv->idle_since = now_secs();
			srv->dirty = 1;
		} else
			pp = &w->next;
	}
	idle_release(srv);
	return srv->n;
}

/*
 * Stop accepting; let clients finish for --grace; then end the rest:
 * with cutoff set, a signal makes each one's blocked call return, and it
 * sends close_notify (through kTLS where that is on) and closes. The
 * signal is repeated because one that lands between two calls is lost.
 */
static void
shut_down(struct server *srv, int grace)
{
	struct timespec nap = { .tv_sec = 0, .tv_nsec = 50 * 1000 * 1000 };
	struct worker *w;
	int ticks;

	printf("Shutting down: %d client(s) still connected\n", reap(srv));
	for (ticks = 0; reap(srv) > 0 && ticks < grace * 20; ticks++)
		nanosleep(&nap, NULL);
	atomic_store(&cutoff, 1);
	for (ticks = 0; reap(srv) > 0 && ticks < 100; ticks++) {
		for (w = srv->workers; w != NULL; w = w->next)
			pthread_kill(w->tid, SIGUSR1);
		nanosleep(&nap, NULL);
	}
	if (srv->n == 0)
		return;
	/*
	 * Threads stuck in a call no signal ends: exiting ends their
	 * connections with the process; nothing is freed under them.
	 */
	hk_warn("%d client(s) did not stop within 5 s; exiting anyway", srv->n);
	fflush(stdout);
	_exit(0);
}

/*
 * A thread's stack of our own, so that the server decides how much of
 * it stays mapped after a burst (glibc would cache up to 40 MiB of its
 * own). The lowest page is the guard.
 */
static void *
stack_get(struct server *srv)
{
	void *stack;

	if (srv->nspare > 0)
		return srv->spare[--srv->nspare];
	stack = mmap(NULL, THREAD_STACK, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (stack == MAP_FAILED)
		return NULL;
	if (mprotect(stack, (size_t)sysconf(_SC_PAGESIZE), PROT_NONE) < 0) {
		munmap(stack, THREAD_STACK);
		return NULL;
	}
	return stack;
}

static int
start_thread(struct server *srv, struct worker *w)
{
	pthread_attr_t attr;
	sigset_t all, old;
	int err;

	if ((w->stack = stack_get(srv)) == NULL)
		return errno;
	pthread_attr_init(&attr);
	pthread_attr_setstack(&attr, w->stack, THREAD_STACK);
	/* Threads get no process signals: SIGINT/SIGTERM are the accept loop's. */
	sigfillset(&all);
	sigdelset(&all, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	err = pthread_create(&w->tid, &attr, worker_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (err != 0) {
		stack_release(srv, w->stack);
		return err;
	}
	/* What `top -H` and /proc/PID/task/ show of a client's thread. */
	pthread_setname_np(w->tid, CLIENT_THREAD_NAME);
	return 0;
}

/* One accepted client: its own thread, unless over the limit. */
static void
spawn(struct server *srv, int fd, const char *peer)
{
	struct worker *w;
	int err;

	if (reap(srv) >= srv->cfg->max_connections) {
		hk_warn("refusing client %s: %d connections open "
		    "(--max-connections)", peer, srv->n);
		close(fd);
		return;
	}
	if ((w = calloc(1, sizeof(*w))) == NULL) {
		hk_warn("client %s: out of memory", peer);
		close(fd);
		return;
	}
	w->srv = srv;
	w->fd = fd;
	snprintf(w->peer, sizeof(w->peer), "%s", peer);
	if ((err = start_thread(srv, w)) != 0) {
		hk_warn("client %s: cannot start a thread: %s", peer,
		    strerror(err));
		close(fd);
		free(w);
		return;
	}
	w->next = srv->workers;
	srv->workers = w;
	srv->n++;
}

/* Serve until SIGINT/SIGTERM, a thread per client. */
static int
serve_forever(struct server *srv, int lfd)
{
	const struct hk_config *cfg = srv->cfg;
	struct timeval tick = { .tv_sec = 1 };
	struct sockaddr_storage ss;
	char peer[INET6_ADDRSTRLEN + 16];
	socklen_t len;
	int fd;

	/* accept() wakes at least once a second to join finished threads. */
	setsockopt(lfd, SOL_SOCKET, SO_RCVTIMEO, &tick, sizeof(tick));
	while (!atomic_load(&stopping)) {
		reap(srv);
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
			return serve(srv, fd, peer, &stopping) == 0 ? 0 : 1;
		}
		spawn(srv, fd, peer);
	}
	close(lfd);
	shut_down(srv, cfg->grace);
	return 0;
}

/* Only there so that SIGUSR1 interrupts a worker's blocked call. */
static void
on_interrupt(int sig)
{
	(void)sig;
}

static void
signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	/* No SA_RESTART: a signal must interrupt accept() and blocked I/O. */
	sa.sa_handler = on_stop;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = on_interrupt;
	sigaction(SIGUSR1, &sa, NULL);
}

int
main(int argc, char **argv)
{
	struct hk_config cfg;
	struct server srv = { 0 };
	SSL_CTX *ctx;
	char err[512];
	int lfd, ret, rootfd = -1;

	hk_print_init("hello_ktls_server");
	switch (hk_config_parse(&cfg, HK_SERVER, argc, argv, err, sizeof(err))) {
	case HK_PARSE_HELP:
		fputs(hk_config_usage(HK_SERVER), stdout);
		return 0;
	case HK_PARSE_VERSION:
		printf("hello_ktls_server %s (%s)\n", HK_VERSION,
		    OpenSSL_version(OPENSSL_VERSION));
		return 0;
	case HK_PARSE_ERROR:
		hk_warn("%s", err);
		fputs(hk_config_usage(HK_SERVER), stderr);
		return 2;
	case HK_PARSE_OK:
		break;
	}
	signals();
	/* Whole lines as they happen, whichever thread prints them. */
	setvbuf(stdout, NULL, _IOLBF, 0);
#ifdef __GLIBC__
	/*
	 * One arena, whose free memory stays while clients come and go (no
	 * madvise, and its TLB shootdown, per connection) and which
	 * malloc_trim empties completely when they have gone (idle_release);
	 * glibc trims the top of per-thread arenas only as they free. With
	 * the per-thread caches in front, one arena is no bottleneck here.
	 */
	mallopt(M_ARENA_MAX, 1);
	mallopt(M_TRIM_THRESHOLD, 8 * 1024 * 1024);
#endif
	printf("=== kTLS mTLS Server ===\n");
	printf("Loading server certificate: %s\n", cfg.cert);
	printf("Loading server private key: %s\n", cfg.key);
	printf("Loading CA certificate: %s\n", cfg.ca);
	if ((ctx = mtls_ctx_new(&cfg, err, sizeof(err))) == NULL) {
		hk_warn("%s", err);
		return 1;
	}
	if (ktls_keylog_file_active())
		hk_warn("warning: SSLKEYLOGFILE is set: TLS secrets are being "
		    "written to %s", getenv("SSLKEYLOGFILE"));
	if (cfg.root != NULL && (rootfd = open(cfg.root, O_PATH | O_DIRECTORY |
	    O_CLOEXEC)) < 0) {
		hk_warn("--root %s: %s", cfg.root, strerror(errno));
		SSL_CTX_free(ctx);
		return 1;
	}
	if ((lfd = listen_on(cfg.bind, cfg.port, err, sizeof(err))) < 0) {
		hk_warn("%s", err);
		SSL_CTX_free(ctx);
		return 1;
	}
	printf("kTLS mode: %s\n", hk_ktls_mode_name(cfg.ktls));
	printf("Server listening on port %u\n", local_port(lfd));
	printf("Waiting for client connections...\n");
	if (cfg.root != NULL)
		printf("Serving files below %s\n", cfg.root);
	srv.ctx = ctx;
	srv.cfg = &cfg;
	srv.rootfd = rootfd;
	ret = serve_forever(&srv, lfd);
	if (rootfd >= 0)
		close(rootfd);
	SSL_CTX_free(ctx);
	return ret;
}
