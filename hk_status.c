/*
 * hk_status.c - the --status endpoint: a listening socket and one thread
 * that accepts a scraper, reads its request within REQUEST_MS, answers
 * it and closes, then takes the next. The metrics are for this host
 * only: anything but a unix socket or a loopback address is refused,
 * since they tell who connected how often and which rules let them in.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>

#include "hk_metrics.h"
#include "hk_status.h"

#define REQUEST_MAX 4096 /* a GET's request line and headers */
#define REQUEST_MS  2000 /* to send them, whole */
#define SEND_SECS   2    /* to take each part of the answer */

struct hk_status {
	int fd;
	int wake[2]; /* hk_status_stop writes to wake[1] */
	pthread_t tid;
	int started; /* tid runs */
	char where[sizeof(((struct sockaddr_un *)0)->sun_path) + 8];
	char *unlink_path; /* our unix socket, removed at stop */
};

/* "[::1]:9100" or "127.0.0.1:9100" into host and port; -1 if neither. */
static int
split_host_port(const char *addr, char *host, size_t hostlen, unsigned *port)
{
	const char *colon, *p;
	size_t n;
	unsigned long v;
	char *end;

	if (addr[0] == '[') {
		if ((p = strchr(addr, ']')) == NULL || p[1] != ':')
			return -1;
		addr++;
		n = (size_t)(p - addr);
		colon = p + 1;
	} else {
		if ((colon = strrchr(addr, ':')) == NULL)
			return -1;
		n = (size_t)(colon - addr);
	}
	if (n == 0 || n >= hostlen || colon[1] < '0' || colon[1] > '9')
		return -1;
	v = strtoul(colon + 1, &end, 10);
	if (*end != '\0' || v > 65535)
		return -1;
	memcpy(host, addr, n);
	host[n] = '\0';
	*port = (unsigned)v;
	return 0;
}

/* A loopback address (127.0.0.0/8, ::1, localhost) into ss; -1 with err. */
static int
loopback_addr(const char *addr, struct sockaddr_storage *ss, socklen_t *len,
    char *err, size_t errlen)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	char host[INET6_ADDRSTRLEN];
	unsigned port;

	memset(ss, 0, sizeof(*ss));
	if (split_host_port(addr, host, sizeof(host), &port) < 0) {
		snprintf(err, errlen,
		    "--status %s: not unix:PATH, 127.0.0.1:PORT or [::1]:PORT",
		    addr);
		return -1;
	}
	if (strcmp(host, "localhost") == 0)
		snprintf(host, sizeof(host), "127.0.0.1");
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1 &&
	    (ntohl(s4->sin_addr.s_addr) >> 24) == 127) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((unsigned short)port);
		*len = sizeof(*s4);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1 &&
	    IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr)) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((unsigned short)port);
		*len = sizeof(*s6);
		return 0;
	}
	snprintf(err, errlen,
	    "--status %s: not a loopback address; the metrics are for this "
	    "host only (127.0.0.1:PORT, [::1]:PORT or unix:PATH)",
	    addr);
	return -1;
}

/*
 * A unix socket path: one left by a server that died is replaced, one a
 * live server answers on is not.
 */
static int
unix_addr(const char *path, struct sockaddr_storage *ss, socklen_t *len,
    char *err, size_t errlen)
{
	struct sockaddr_un *su = (struct sockaddr_un *)ss;
	struct stat st;
	int fd, live;

	memset(ss, 0, sizeof(*ss));
	if (path[0] == '\0' || strlen(path) >= sizeof(su->sun_path)) {
		snprintf(err, errlen, "--status unix:%s: %s", path,
		    path[0] == '\0' ? "no path" : "path too long");
		return -1;
	}
	su->sun_family = AF_UNIX;
	memcpy(su->sun_path, path, strlen(path) + 1);
	*len = sizeof(*su);
	if (lstat(path, &st) < 0)
		return 0;
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "--status unix:%s: exists, not a socket",
		    path);
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return 0;
	live = connect(fd, (struct sockaddr *)su, *len) == 0;
	close(fd);
	if (live) {
		snprintf(err, errlen,
		    "--status unix:%s: another server answers there", path);
		return -1;
	}
	unlink(path);
	return 0;
}

/* The socket, bound and listening; where it is in s->where. */
static int
status_listen(struct hk_status *s, const char *addr, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int on = 1, unix_sock = strncmp(addr, "unix:", 5) == 0;

	if ((unix_sock ? unix_addr(addr + 5, &ss, &len, err, errlen) :
			 loopback_addr(addr, &ss, &len, err, errlen)) < 0)
		return -1;
	if ((s->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		goto fail;
	if (!unix_sock)
		setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (bind(s->fd, (struct sockaddr *)&ss, len) < 0 ||
	    listen(s->fd, 16) < 0)
		goto fail;
	if (unix_sock) {
		s->unlink_path = strdup(addr + 5);
		snprintf(s->where, sizeof(s->where), "%s", addr);
		return 0;
	}
	len = sizeof(ss);
	getsockname(s->fd, (struct sockaddr *)&ss, &len);
	if (ss.ss_family == AF_INET6) {
		char ip[INET6_ADDRSTRLEN];

		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr,
		    ip, sizeof(ip));
		snprintf(s->where, sizeof(s->where), "[%s]:%u", ip,
		    ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
	} else {
		char ip[INET_ADDRSTRLEN];

		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip,
		    sizeof(ip));
		snprintf(s->where, sizeof(s->where), "%s:%u", ip,
		    ntohs(((struct sockaddr_in *)&ss)->sin_port));
	}
	return 0;
fail:
	snprintf(err, errlen, "--status %s: %s", addr, strerror(errno));
	return -1;
}

static long
ms_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - t0->tv_sec) * 1000L +
	    (now.tv_nsec - t0->tv_nsec) / 1000000L;
}

/*
 * The request's head, up to its empty line, within REQUEST_MS: its
 * length, or -1 (too slow, too long, gone).
 */
static ssize_t
read_request(int fd, char *buf, size_t size)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	struct timespec t0;
	size_t len = 0;
	ssize_t n;
	long left;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (len < size - 1) {
		if ((left = REQUEST_MS - ms_since(&t0)) <= 0 ||
		    poll(&p, 1, (int)left) <= 0)
			return -1;
		if ((n = recv(fd, buf + len, size - 1 - len, MSG_DONTWAIT)) <
		    0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		buf[len] = '\0';
		if (strstr(buf, "\r\n\r\n") != NULL ||
		    strstr(buf, "\n\n") != NULL)
			return (ssize_t)len;
	}
	buf[len] = '\0';
	return (ssize_t)len;
}

static void
send_all(int fd, const char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		if ((w = send(fd, p, n, MSG_NOSIGNAL)) < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

/* A status line with a one-line text body. */
static void
send_plain(int fd, const char *status)
{
	char head[256];
	int n = snprintf(head, sizeof(head),
	    "HTTP/1.0 %s\r\nContent-Type: text/plain\r\n"
	    "Content-Length: %zu\r\nConnection: close\r\n\r\n%s\n",
	    status, strlen(status) + 1, status);

	send_all(fd, head, (size_t)n);
}

/*
 * "GET /any/path HTTP/1.x": 0 for GET, 1 for HEAD; -1 if it is not a
 * request line, -2 for another method.
 */
static int
request_method(const char *req)
{
	const char *sp, *target, *version;
	int head = strncmp(req, "HEAD ", 5) == 0;

	if (!head && strncmp(req, "GET ", 4) != 0)
		return strchr(req, ' ') != NULL &&
			strstr(req, " HTTP/1.") != NULL ?
		    -2 :
		    -1;
	target = req + (head ? 5 : 4);
	if (target[0] != '/' || (sp = strchr(target, ' ')) == NULL)
		return -1;
	version = sp + 1;
	if (strncmp(version, "HTTP/1.", 7) != 0 ||
	    (version[7] != '0' && version[7] != '1') ||
	    (version[8] != '\r' && version[8] != '\n'))
		return -1;
	if (memchr(target, '\n', (size_t)(sp - target)) != NULL)
		return -1;
	return head;
}

static void
answer(int fd)
{
	struct timeval tv = { .tv_sec = SEND_SECS };
	char req[REQUEST_MAX], head[256];
	char *text = NULL;
	size_t len = 0;
	int method, n;

	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (read_request(fd, req, sizeof(req)) <= 0)
		return;
	if ((method = request_method(req)) == -2) {
		send_plain(fd, "405 Method Not Allowed");
		return;
	}
	if (method < 0) {
		send_plain(fd, "400 Bad Request");
		return;
	}
	if (hk_metrics_render(&text, &len) < 0) {
		send_plain(fd, "500 Internal Server Error");
		return;
	}
	n = snprintf(head, sizeof(head),
	    "HTTP/1.0 200 OK\r\n"
	    "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
	    "Content-Length: %zu\r\nConnection: close\r\n\r\n",
	    len);
	send_all(fd, head, (size_t)n);
	if (method == 0)
		send_all(fd, text, len);
	free(text);
}

/*
 * Close after the answer: what the scraper sent past the part read (an
 * over-long request) is drained for a moment first, or the kernel would
 * answer it with a reset that can overtake our answer.
 */
static void
linger_close(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char sink[4096];
	int i;

	shutdown(fd, SHUT_WR);
	for (i = 0; i < 16 && poll(&p, 1, 100) > 0; i++)
		if (recv(fd, sink, sizeof(sink), MSG_DONTWAIT) <= 0)
			break;
	close(fd);
}

static void *
status_main(void *arg)
{
	struct hk_status *s = arg;
	struct pollfd p[2] = { { .fd = s->fd, .events = POLLIN },
		{ .fd = s->wake[0], .events = POLLIN } };
	int fd;

	for (;;) {
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents != 0)
			break;
		if (!(p[0].revents & POLLIN))
			continue;
		if ((fd = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC)) < 0)
			continue;
		answer(fd);
		linger_close(fd);
	}
	return NULL;
}

struct hk_status *
hk_status_start(const char *addr, char *err, size_t errlen)
{
	struct hk_status *s = calloc(1, sizeof(*s));
	sigset_t all, old;
	int e;

	if (s == NULL) {
		snprintf(err, errlen, "--status: out of memory");
		return NULL;
	}
	s->fd = s->wake[0] = s->wake[1] = -1;
	if (status_listen(s, addr, err, errlen) < 0)
		goto fail;
	if (pipe2(s->wake, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "--status: %s", strerror(errno));
		goto fail;
	}
	/* The process's signals stay with the accept loop. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	e = pthread_create(&s->tid, NULL, status_main, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e != 0) {
		snprintf(err, errlen, "--status: no thread: %s", strerror(e));
		goto fail;
	}
	s->started = 1;
	pthread_setname_np(s->tid, "hk-status");
	return s;
fail:
	hk_status_stop(s);
	return NULL;
}

const char *
hk_status_where(const struct hk_status *s)
{
	return s->where;
}

void
hk_status_stop(struct hk_status *s)
{
	if (s == NULL)
		return;
	if (s->started) {
		(void)!write(s->wake[1], "x", 1);
		pthread_join(s->tid, NULL);
	}
	if (s->fd >= 0)
		close(s->fd);
	if (s->wake[0] >= 0) {
		close(s->wake[0]);
		close(s->wake[1]);
	}
	if (s->unlink_path != NULL)
		unlink(s->unlink_path);
	free(s->unlink_path);
	free(s);
}
