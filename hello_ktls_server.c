/*
 * hello_ktls_server - an mTLS server that hands its connections' record
 * encryption to the kernel (kTLS) after the handshake.
 *
 * It listens on all IPv4 and IPv6 addresses, requires and verifies a
 * client certificate, offloads TLS to the kernel, reads the client's
 * message and answers it (or echoes everything with --echo). Each client
 * is served by its own process, so a slow or broken client never holds
 * up or takes down the others; --once serves a single client in-process.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>

#include "conn.h"
#include "hk_config.h"
#include "hk_print.h"
#include "hk_proto.h"
#include "hk_serve.h"
#include "ktls_keys.h"
#include "mtls.h"

#define BUF_SIZE (64 * 1024)

static volatile sig_atomic_t stopping;

static void
on_stop(int sig)
{
	(void)sig;
	stopping = 1;
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
 * Per-client deadlines and shutdown. Each client has its own process,
 * so a whole-handshake deadline is an alarm: SO_RCVTIMEO alone would let
 * a client that sends a byte every few seconds hold on forever. The
 * handlers only use async-signal-safe calls on prepared messages.
 */
static struct conn *current;
static char deadline_msg[256], stop_msg[256];

static void
on_deadline(int sig)
{
	(void)sig;
	(void)!write(STDERR_FILENO, deadline_msg, strlen(deadline_msg));
	_exit(1);
}

/* The server is shutting down: close_notify through kTLS where it is on. */
static void
on_child_stop(int sig)
{
	(void)sig;
	if (current != NULL && current->k != NULL &&
	    ktls_active(current->k, KTLS_TX))
		ktls_close_notify(current->k);
	(void)!write(STDERR_FILENO, stop_msg, strlen(stop_msg));
	_exit(1);
}

static void
deadline_arm(const char *peer, int secs)
{
	struct sigaction sa;

	snprintf(deadline_msg, sizeof(deadline_msg), "hello_ktls_server: client "
	    "%s: handshake not finished within %d s (--handshake-timeout)\n",
	    peer, secs);
	snprintf(stop_msg, sizeof(stop_msg), "hello_ktls_server: client %s: "
	    "closed, the server is shutting down\n", peer);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_deadline;
	sigaction(SIGALRM, &sa, NULL);
	sa.sa_handler = on_child_stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	alarm((unsigned)secs);
}

static int
serve(SSL_CTX *ctx, const struct hk_config *cfg, int rootfd, int fd,
    const char *peer)
{
	struct conn c;
	struct hk_counters counters;
	char *buf = NULL;
	int ret = -1;

	printf("Client connected from %s\n", peer);
	if (conn_init(&c, ctx, fd, cfg->handshake_timeout) < 0)
		goto out;
	current = &c;
	deadline_arm(peer, cfg->handshake_timeout);
	if (hk_session_start(&c, cfg, "Client", &counters) < 0)
		goto out;
	alarm(0);
	conn_set_timeout(&c, cfg->idle_timeout);
	if ((buf = malloc(BUF_SIZE)) == NULL) {
		snprintf(c.err, sizeof(c.err), "out of memory");
		goto out;
	}
	if (exchange(&c, cfg, rootfd, buf) < 0)
		goto out;
	hk_session_end(&c, cfg, &counters);
	ret = 0;
out:
	if (ret < 0)
		hk_warn("client %s: %s", peer, c.err);
	/* Also after a refusal of ours (--ktls require): end TLS cleanly. */
	if (conn_close(&c) == 0 && ret == 0)
		printf("Connection with %s closed\n", peer);
	alarm(0);
	current = NULL;
	free(buf);
	conn_free(&c);
	return ret;
}

/* Only interrupts accept() so that finished children are reaped. */
static void
on_child(int sig)
{
	(void)sig;
}

struct children {
	pid_t *pid;
	int n, max;
};

static void
reap(struct children *ch)
{
	pid_t pid;
	int i;

	while ((pid = waitpid(-1, NULL, WNOHANG)) > 0)
		for (i = 0; i < ch->n; i++)
			if (ch->pid[i] == pid) {
				ch->pid[i] = ch->pid[--ch->n];
				break;
			}
}

/* Stop accepting; let clients finish for --grace, then end the rest. */
static void
shut_down(struct children *ch, int grace)
{
	struct timespec nap = { .tv_sec = 0, .tv_nsec = 100 * 1000 * 1000 };
	int i, ticks;

	printf("Shutting down: %d client(s) still connected\n", ch->n);
	for (ticks = 0; ch->n > 0 && ticks < grace * 10; ticks++) {
		nanosleep(&nap, NULL);
		reap(ch);
	}
	for (i = 0; i < ch->n; i++)
		kill(ch->pid[i], SIGTERM);
	while (ch->n > 0 && waitpid(-1, NULL, 0) > 0)
		reap(ch);
	reap(ch);
}

/* One accepted client: its own process, unless over the limit. */
static void
spawn(SSL_CTX *ctx, const struct hk_config *cfg, int rootfd, int lfd,
    struct children *ch, int fd, const char *peer)
{
	pid_t pid;

	if (ch->n >= ch->max) {
		hk_warn("refusing client %s: %d connections open "
		    "(--max-connections)", peer, ch->n);
		close(fd);
		return;
	}
	fflush(stdout);
	if ((pid = fork()) == 0) {
		close(lfd);
		_exit(serve(ctx, cfg, rootfd, fd, peer) == 0 ? 0 : 1);
	}
	if (pid < 0)
		hk_warn("client %s: cannot fork: %s", peer, strerror(errno));
	else
		ch->pid[ch->n++] = pid;
	close(fd);
}

/* Serve until SIGINT/SIGTERM, a process per client. */
static int
serve_forever(SSL_CTX *ctx, const struct hk_config *cfg, int rootfd, int lfd)
{
	struct children ch = { .max = cfg->max_connections };
	struct sockaddr_storage ss;
	socklen_t len;
	char peer[INET6_ADDRSTRLEN + 16];
	int fd;

	struct timeval tick = { .tv_sec = 1 };

	if (!cfg->once && (ch.pid = calloc((size_t)ch.max, sizeof(pid_t))) == NULL) {
		hk_warn("out of memory");
		return 1;
	}
	/*
	 * accept() wakes at least once a second: a SIGCHLD that lands just
	 * before it blocks must not leave a child unreaped (and counted
	 * against --max-connections) until the next client.
	 */
	setsockopt(lfd, SOL_SOCKET, SO_RCVTIMEO, &tick, sizeof(tick));
	while (!stopping) {
		reap(&ch);
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
			return serve(ctx, cfg, rootfd, fd, peer) == 0 ? 0 : 1;
		}
		spawn(ctx, cfg, rootfd, lfd, &ch, fd, peer);
	}
	close(lfd);
	shut_down(&ch, cfg->grace);
	free(ch.pid);
	return 0;
}

static void
signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	/* No SA_RESTART: a signal must interrupt accept(). */
	sa.sa_handler = on_stop;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = on_child;
	sa.sa_flags = SA_NOCLDSTOP;
	sigaction(SIGCHLD, &sa, NULL);
}

int
main(int argc, char **argv)
{
	struct hk_config cfg;
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
	ret = serve_forever(ctx, &cfg, rootfd, lfd);
	if (rootfd >= 0)
		close(rootfd);
	SSL_CTX_free(ctx);
	return ret;
}
