/*
 * ktls_query: the error contract of the modules that ask the kernel about
 * a connection, and their one netlink request/answer loop.
 */
#include "ktls_query.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sys/socket.h>
#include <sys/time.h>

#define QUERY_TIMEOUT_SEC 1

int
query_fail(char *err, size_t errlen, int e, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	errno = e;
	return -1;
}

int
query_fail_errno(char *err, size_t errlen, const char *what)
{
	int e = errno;

	return query_fail(err, errlen, e, "%s: %s", what, strerror(e));
}

int
query_fail_known(char *err, size_t errlen, int e, const struct query_errno *t,
    size_t n, const char *what)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (t[i].err == e)
			return query_fail(err, errlen, e, "%s", t[i].why);
	return query_fail(err, errlen, e, "%s: %s", what, strerror(e));
}

static int
query_open(int protocol, char *err, size_t errlen)
{
	struct timeval tv = { .tv_sec = QUERY_TIMEOUT_SEC };
	int nl;

	nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, protocol);
	if (nl == -1)
		return query_fail_errno(err, errlen, "netlink socket");
	if (setsockopt(nl, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == -1) {
		query_fail_errno(err, errlen, "netlink SO_RCVTIMEO");
		close(nl);
		return -1;
	}
	return nl;
}

static int
query_send(int nl, const struct nlmsghdr *req, char *err, size_t errlen)
{
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	ssize_t n;

	do
		n = sendto(nl, req, req->nlmsg_len, 0,
		    (const struct sockaddr *)&kernel, sizeof(kernel));
	while (n == -1 && errno == EINTR);
	if (n == -1)
		return query_fail_errno(err, errlen, "netlink send");
	if ((size_t)n != req->nlmsg_len)
		return query_fail(err, errlen, EIO,
		    "netlink send: short write");
	return 0;
}

/*
 * One datagram may hold several messages; every length is checked. 1 when
 * the answer is complete, 0 to read on, -1 on error.
 */
static int
query_datagram(const struct query_netlink *q, const unsigned char *buf,
    size_t len, char *err, size_t errlen)
{
	size_t off = 0;
	int r = 0;

	while (r == 0 && off < len) {
		const struct nlmsghdr *h = (const void *)(buf + off);

		if (len - off < NLMSG_HDRLEN || h->nlmsg_len < NLMSG_HDRLEN ||
		    h->nlmsg_len > len - off)
			return query_fail(err, errlen, EPROTO,
			    "truncated netlink message");
		if (h->nlmsg_seq == q->req->nlmsg_seq &&
		    h->nlmsg_type != NLMSG_NOOP)
			r = q->message(h, q->arg, err, errlen);
		off += NLMSG_ALIGN(h->nlmsg_len);
	}
	return r;
}

static int
query_recv(int nl, const struct query_netlink *q, char *err, size_t errlen)
{
	/* An answer is well under a page; MSG_TRUNC catches more. */
	_Alignas(struct nlmsghdr) unsigned char buf[16384];
	struct sockaddr_nl from;
	int r = 0;

	memset(&from, 0, sizeof(from));
	while (r == 0) {
		socklen_t fromlen = sizeof(from);
		ssize_t n = recvfrom(nl, buf, sizeof(buf), MSG_TRUNC,
		    (struct sockaddr *)&from, &fromlen);

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return query_fail(err, errlen, ETIMEDOUT,
			    "no %s from the kernel within %d s", q->answer,
			    QUERY_TIMEOUT_SEC);
		if (n == -1)
			return query_fail_errno(err, errlen, "netlink receive");
		if ((size_t)n > sizeof(buf))
			return query_fail(err, errlen, EMSGSIZE,
			    "netlink reply of %zd bytes truncated", n);
		/* Only port 0 is the kernel. */
		if (fromlen != sizeof(from) || from.nl_pid != 0)
			continue;
		r = query_datagram(q, buf, (size_t)n, err, errlen);
	}
	return r == 1 ? 0 : -1;
}

int
query_netlink(const struct query_netlink *q, char *err, size_t errlen)
{
	int nl, rc, saved;

	if ((nl = query_open(q->protocol, err, errlen)) == -1)
		return -1;
	rc = query_send(nl, q->req, err, errlen) == 0 &&
		query_recv(nl, q, err, errlen) == 0 ?
	    0 :
	    -1;
	saved = errno;
	close(nl);
	errno = saved;
	return rc;
}
