/*
 * ktls_nic_internal.h - the error helpers shared by ktls_nic.c,
 * ktls_route.c, ktls_stat.c and ktls_diag.c. Not for applications.
 */
#ifndef KTLS_NIC_INTERNAL_H
#define KTLS_NIC_INTERNAL_H

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sys/socket.h>
#include <sys/time.h>

#include <linux/netlink.h>

/* Leave a message for the caller, set errno to e, return -1. */
static inline int __attribute__((format(printf, 4, 5)))
nic_fail(char *err, size_t errlen, int e, const char *fmt, ...)
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

static inline int
nic_fail_errno(char *err, size_t errlen, const char *what)
{
	int e = errno;

	return nic_fail(err, errlen, e, "%s: %s", what, strerror(e));
}

/* A kernel error that means something specific to one request. */
struct nic_errno {
	int err;
	const char *why;
};

/*
 * Fail with e: its explanation from the table when it has one, else
 * "what: strerror(e)".
 */
static inline int
nic_fail_known(char *err, size_t errlen, int e, const struct nic_errno *t,
    size_t n, const char *what)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (t[i].err == e)
			return nic_fail(err, errlen, e, "%s", t[i].why);
	return nic_fail(err, errlen, e, "%s: %s", what, strerror(e));
}

/*
 * A netlink socket to the kernel for one request and its answer. The
 * kernel answers at once; the timeout only bounds an answer that is lost.
 */
static inline int
nic_netlink_open(int protocol, int timeout_secs, char *err, size_t errlen)
{
	struct timeval tv = {.tv_sec = timeout_secs};
	int nl;

	nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, protocol);
	if (nl == -1)
		return nic_fail_errno(err, errlen, "netlink socket");
	if (setsockopt(nl, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == -1) {
		nic_fail_errno(err, errlen, "netlink SO_RCVTIMEO");
		close(nl);
		return -1;
	}
	return nl;
}

/* Send one request message (len bytes) to the kernel, whole. */
static inline int
nic_netlink_send(int nl, const void *msg, size_t len, char *err,
    size_t errlen)
{
	struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
	ssize_t n;

	do
		n = sendto(nl, msg, len, 0, (const struct sockaddr *)&kernel,
		    sizeof(kernel));
	while (n == -1 && errno == EINTR);
	if (n == -1)
		return nic_fail_errno(err, errlen, "netlink send");
	if ((size_t)n != len)
		return nic_fail(err, errlen, EIO, "netlink send: short write");
	return 0;
}

#endif /* KTLS_NIC_INTERNAL_H */
