/*
 * ktls_query.h - what the modules that ask the kernel about a connection
 * (ktls_diag.c, ktls_nic.c, ktls_route.c, ktls_stat.c) share: their error
 * contract and one netlink request with its answer. Not for applications.
 *
 * The error contract: a function that fails returns -1 with errno set and
 * leaves a one-line message in the caller's buffer (err, errlen), which
 * may be NULL.
 */
#ifndef KTLS_QUERY_H
#define KTLS_QUERY_H

#include <stddef.h>

#include <linux/netlink.h>

/* Leave a message for the caller, set errno to e, return -1. */
int query_fail(char *err, size_t errlen, int e, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* query_fail() with errno: "what: strerror(errno)". */
int query_fail_errno(char *err, size_t errlen, const char *what);

/* A kernel error that means something specific to one request. */
struct query_errno {
	int err;
	const char *why;
};

/*
 * Fail with e: its explanation from the table t (n rows) when it has one,
 * else "what: strerror(e)".
 */
int query_fail_known(char *err, size_t errlen, int e,
    const struct query_errno *t, size_t n, const char *what);

/*
 * One netlink request to the kernel and its answer, on a socket of its
 * own. Every message of the answer that carries the request's sequence
 * number (NLMSG_NOOP aside) goes to message(), whose length the caller
 * need not check again, until message() returns 1 (the answer is
 * complete) or -1 (an error, its message left in err).
 */
struct query_netlink {
	int protocol;               /* NETLINK_ROUTE, NETLINK_SOCK_DIAG */
	const struct nlmsghdr *req; /* nlmsg_len bytes, sent whole */
	const char *answer;         /* names the answer when none comes */
	int (*message)(const struct nlmsghdr *h, void *arg, char *err,
	    size_t errlen);
	void *arg;
};

/*
 * Send q->req and read its answer. The kernel answers at once; the wait
 * for an answer that is lost is bounded (a second). Returns 0, or -1 with
 * errno set and a message in err.
 */
int query_netlink(const struct query_netlink *q, char *err, size_t errlen);

#endif /* KTLS_QUERY_H */
