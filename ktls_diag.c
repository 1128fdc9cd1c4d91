/*
 * ktls_diag: read one TCP socket's TLS ULP state from the kernel through
 * netlink sock_diag, the interface `ss -tie` uses.
 *
 * Kernel side: net/ipv4/inet_diag.c inet_diag_dump_one_icsk() finds the
 * socket, net/ipv4/tcp_diag.c tcp_diag_put_ulp() nests INET_DIAG_ULP_INFO,
 * net/tls/tls_main.c tls_get_info() fills INET_ULP_INFO_TLS.
 */
#include "ktls_diag.h"
#include "ktls_query.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <netinet/in.h>
#include <sys/socket.h>

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/tls.h>

/* TLS_CONF_* came together with the TLS diag attributes (5.3), linux/tls.h. */
#ifndef TLS_CONF_BASE
#define TLS_CONF_BASE      1
#define TLS_CONF_SW        2
#define TLS_CONF_HW        3
#define TLS_CONF_HW_RECORD 4
#endif

/*
 * The attribute numbers are enumerators in the uapi headers, which #ifndef
 * cannot see, so they are named here with the kernel's ABI values:
 * INET_DIAG_ULP_INFO and INET_ULP_INFO_* (linux/inet_diag.h, 5.3),
 * TLS_INFO_* (linux/tls.h; ZC_RO_TX 5.19, RX_NO_PAD 6.0).
 */
#define DIAG_ULP_INFO      19
#define DIAG_ULP_NAME      1
#define DIAG_ULP_TLS       2
#define DIAG_TLS_VERSION   1
#define DIAG_TLS_CIPHER    2
#define DIAG_TLS_TXCONF    3
#define DIAG_TLS_RXCONF    4
#define DIAG_TLS_ZC_RO_TX  5
#define DIAG_TLS_RX_NO_PAD 6

/* Headers from 6.0 on (TLS_RX_EXPECT_NO_PAD) have all of them: cross-check. */
#ifdef TLS_RX_EXPECT_NO_PAD
_Static_assert(DIAG_ULP_INFO == INET_DIAG_ULP_INFO, "INET_DIAG_ULP_INFO");
_Static_assert(DIAG_ULP_NAME == INET_ULP_INFO_NAME, "INET_ULP_INFO_NAME");
_Static_assert(DIAG_ULP_TLS == INET_ULP_INFO_TLS, "INET_ULP_INFO_TLS");
_Static_assert(DIAG_TLS_VERSION == TLS_INFO_VERSION, "TLS_INFO_VERSION");
_Static_assert(DIAG_TLS_CIPHER == TLS_INFO_CIPHER, "TLS_INFO_CIPHER");
_Static_assert(DIAG_TLS_TXCONF == TLS_INFO_TXCONF, "TLS_INFO_TXCONF");
_Static_assert(DIAG_TLS_RXCONF == TLS_INFO_RXCONF, "TLS_INFO_RXCONF");
_Static_assert(DIAG_TLS_ZC_RO_TX == TLS_INFO_ZC_RO_TX, "TLS_INFO_ZC_RO_TX");
_Static_assert(DIAG_TLS_RX_NO_PAD == TLS_INFO_RX_NO_PAD, "TLS_INFO_RX_NO_PAD");
#endif

/* Each query has its own netlink socket, so one sequence number will do. */
#define DIAG_SEQ 1

struct diag_request {
	struct nlmsghdr nlh;
	struct inet_diag_req_v2 req;
};
_Static_assert(sizeof(struct diag_request) ==
	NLMSG_LENGTH(sizeof(struct inet_diag_req_v2)),
    "no padding between netlink header and request");

/* What the reply has told so far. */
struct diag_reply {
	const struct inet_diag_req_v2 *req;
	struct ktls_diag *out;
	int found; /* the socket's inet_diag_msg was seen */
};

/* Bounded walk over the netlink attributes in [pos, end). */
struct diag_attrs {
	const unsigned char *pos, *end;
};

/* One attribute: type with the flag bits masked off, and its payload. */
struct diag_attr {
	unsigned type;
	const unsigned char *data;
	size_t len;
};

static const char *const diag_conf_names[] = {
	[TLS_CONF_BASE] = "base",
	[TLS_CONF_SW] = "software",
	[TLS_CONF_HW] = "hardware",
	[TLS_CONF_HW_RECORD] = "hardware-record",
};

/* The kernel's error answers that mean something specific here. */
static const struct query_errno diag_errnos[] = {
	/* inet_diag_find_one_icsk() also turns a cookie mismatch into this. */
	{ ENOENT,
	    "the kernel knows no such TCP socket (closed or replaced, "
	    "in another network namespace, or no tcp_diag support)" },
	/* Older kernels passed sock_diag_check_cookie()'s error through. */
	{ ESTALE,
	    "the socket at that address is not this socket (cookie "
	    "mismatch)" },
};

static int
diag_fail_kernel(char *err, size_t errlen, int e)
{
	return query_fail_known(err, errlen, e, diag_errnos,
	    sizeof(diag_errnos) / sizeof(diag_errnos[0]), "sock_diag");
}

/*
 * The kernel's lookup matches a socket bound to a device (SO_BINDTODEVICE,
 * or an IPv6 link-local connect) only if idiag_if names that device.
 */
static uint32_t
diag_bound_ifindex(int fd, const struct sockaddr_storage *local)
{
#ifdef SO_BINDTOIFINDEX
	int ifindex = 0;
	socklen_t len = sizeof(ifindex);

	if (getsockopt(fd, SOL_SOCKET, SO_BINDTOIFINDEX, &ifindex, &len) == 0 &&
	    len == sizeof(ifindex) && ifindex >= 0)
		return (uint32_t)ifindex;
#else
	(void)fd;
#endif
	/* Before 5.1 only the link-local case can be recovered. */
	if (local->ss_family == AF_INET6)
		return ((const struct sockaddr_in6 *)(const void *)local)
		    ->sin6_scope_id;
	return 0;
}

/*
 * With the cookie the kernel refuses (ENOENT) rather than describe another
 * socket that took over the same 4-tuple. Without SO_COOKIE (before 4.14)
 * the 4-tuple alone decides.
 */
static void
diag_req_cookie(int fd, struct inet_diag_req_v2 *req)
{
	req->id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
	req->id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
#ifdef SO_COOKIE
	uint64_t cookie;
	socklen_t len = sizeof(cookie);

	if (getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len) == 0 &&
	    len == sizeof(cookie)) {
		req->id.idiag_cookie[0] = (uint32_t)cookie;
		req->id.idiag_cookie[1] = (uint32_t)(cookie >> 32);
	}
#else
	(void)fd;
#endif
}

/* Ports and addresses stay in network byte order, as the kernel wants. */
static int
diag_req_addr(struct inet_diag_req_v2 *req,
    const struct sockaddr_storage *local, const struct sockaddr_storage *peer,
    char *err, size_t errlen)
{
	if (local->ss_family == AF_INET) {
		const struct sockaddr_in *l = (const void *)local;
		const struct sockaddr_in *p = (const void *)peer;

		req->id.idiag_sport = l->sin_port;
		req->id.idiag_dport = p->sin_port;
		memcpy(req->id.idiag_src, &l->sin_addr, sizeof(l->sin_addr));
		memcpy(req->id.idiag_dst, &p->sin_addr, sizeof(p->sin_addr));
	} else if (local->ss_family == AF_INET6) {
		const struct sockaddr_in6 *l = (const void *)local;
		const struct sockaddr_in6 *p = (const void *)peer;

		req->id.idiag_sport = l->sin6_port;
		req->id.idiag_dport = p->sin6_port;
		memcpy(req->id.idiag_src, &l->sin6_addr, sizeof(l->sin6_addr));
		memcpy(req->id.idiag_dst, &p->sin6_addr, sizeof(p->sin6_addr));
	} else {
		return query_fail(err, errlen, EAFNOSUPPORT,
		    "socket is neither IPv4 nor IPv6");
	}
	req->sdiag_family = (uint8_t)local->ss_family;
	return 0;
}

static int
diag_req_fill(int fd, struct inet_diag_req_v2 *req, char *err, size_t errlen)
{
	struct sockaddr_storage local, peer;
	socklen_t llen = sizeof(local), plen = sizeof(peer);
	int proto = 0;
	socklen_t protolen = sizeof(proto);

	if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &protolen) == -1)
		return query_fail_errno(err, errlen, "getsockopt SO_PROTOCOL");
	if (proto != IPPROTO_TCP)
		return query_fail(err, errlen, EPROTONOSUPPORT,
		    "not a TCP socket");
	if (getsockname(fd, (struct sockaddr *)&local, &llen) == -1)
		return query_fail_errno(err, errlen, "getsockname");
	if (getpeername(fd, (struct sockaddr *)&peer, &plen) == -1)
		return query_fail_errno(err, errlen, "getpeername");

	memset(req, 0, sizeof(*req));
	if (diag_req_addr(req, &local, &peer, err, errlen) == -1)
		return -1;
	req->sdiag_protocol = IPPROTO_TCP;
	/*
	 * inet_sk_diag_fill() calls tcp_diag_get_aux(), which adds
	 * INET_DIAG_ULP_INFO, only when INET_DIAG_INFO is requested too.
	 */
	req->idiag_ext = 1U << (INET_DIAG_INFO - 1);
	req->idiag_states = ~0U;
	req->id.idiag_if = diag_bound_ifindex(fd, &local);
	diag_req_cookie(fd, req);
	return 0;
}

static void
diag_request_build(const struct inet_diag_req_v2 *req, struct diag_request *msg)
{
	memset(msg, 0, sizeof(*msg));
	msg->nlh.nlmsg_len = sizeof(*msg);
	msg->nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	/* No NLM_F_DUMP: the exact lookup (dump_one) answers for one socket. */
	msg->nlh.nlmsg_flags = NLM_F_REQUEST;
	msg->nlh.nlmsg_seq = DIAG_SEQ;
	msg->req = *req;
}

/* Next attribute: 1, or 0 at the end, -1 if it would run past the end. */
static int
diag_attr_next(struct diag_attrs *it, struct diag_attr *attr)
{
	const size_t hdrlen = NLA_HDRLEN;
	size_t left = (size_t)(it->end - it->pos);
	const struct nlattr *a = (const void *)it->pos;
	size_t alen, step;

	if (left == 0)
		return 0;
	if (left < hdrlen)
		return -1;
	alen = a->nla_len;
	if (alen < hdrlen || alen > left)
		return -1;
	attr->type = a->nla_type & NLA_TYPE_MASK;
	attr->data = it->pos + hdrlen;
	attr->len = alen - hdrlen;
	/* The last attribute may come without its alignment padding. */
	step = NLA_ALIGN(alen);
	it->pos += step < left ? step : left;
	return 1;
}

static int
diag_u16(const unsigned char *data, size_t len, unsigned *v)
{
	uint16_t x;

	if (len != sizeof(x))
		return -1;
	memcpy(&x, data, sizeof(x));
	*v = x;
	return 0;
}

/* One attribute of INET_ULP_INFO_TLS; unknown ones are newer kernels'. */
static int
diag_tls_attr(const struct diag_attr *a, struct ktls_diag *out)
{
	unsigned v;

	switch (a->type) {
	case DIAG_TLS_VERSION:
		return diag_u16(a->data, a->len, &out->version);
	case DIAG_TLS_CIPHER:
		return diag_u16(a->data, a->len, &out->cipher);
	case DIAG_TLS_TXCONF:
	case DIAG_TLS_RXCONF:
		if (diag_u16(a->data, a->len, &v) == -1)
			return -1;
		*(a->type == DIAG_TLS_TXCONF ? &out->txconf : &out->rxconf) =
		    (int)v;
		return 0;
	case DIAG_TLS_ZC_RO_TX: /* flags carry no payload */
		out->zc_ro_tx = 1;
		return a->len == 0 ? 0 : -1;
	case DIAG_TLS_RX_NO_PAD:
		out->rx_no_pad = 1;
		return a->len == 0 ? 0 : -1;
	default:
		return 0;
	}
}

static int
diag_tls(const unsigned char *p, size_t len, struct ktls_diag *out)
{
	struct diag_attrs it = { p, p + len };
	struct diag_attr a;
	int r;

	while ((r = diag_attr_next(&it, &a)) == 1)
		if (diag_tls_attr(&a, out) == -1)
			return -1;
	return r;
}

/* INET_DIAG_ULP_INFO: the ULP's name, then the ULP's own nest. */
static int
diag_ulp(const unsigned char *p, size_t len, struct ktls_diag *out)
{
	struct diag_attrs it = { p, p + len };
	struct diag_attr a;
	int r;

	out->has_ulp = 1;
	while ((r = diag_attr_next(&it, &a)) == 1) {
		if (a.type == DIAG_ULP_NAME) {
			/* A string with its NUL, TCP_ULP_NAME_MAX (16) at most. */
			if (a.len == 0 || a.len > sizeof(out->ulp_name) ||
			    memchr(a.data, '\0', a.len) == NULL)
				return -1;
			memcpy(out->ulp_name, a.data, a.len);
		} else if (a.type == DIAG_ULP_TLS &&
		    diag_tls(a.data, a.len, out) == -1) {
			return -1;
		}
	}
	return r;
}

static int
diag_attrs(const unsigned char *p, size_t len, struct ktls_diag *out, char *err,
    size_t errlen)
{
	struct diag_attrs it = { p, p + len };
	struct diag_attr a;
	int r;

	while ((r = diag_attr_next(&it, &a)) == 1)
		if (a.type == DIAG_ULP_INFO &&
		    diag_ulp(a.data, a.len, out) == -1)
			return query_fail(err, errlen, EPROTO,
			    "malformed INET_DIAG_ULP_INFO");
	if (r == -1)
		return query_fail(err, errlen, EPROTO,
		    "truncated inet_diag attribute");
	return 0;
}

/* The reply must be about the socket asked for: strict, not trusting. */
static int
diag_same_socket(const struct inet_diag_req_v2 *req,
    const struct inet_diag_msg *m)
{
	const struct inet_diag_sockid *a = &req->id, *b = &m->id;

	if (m->idiag_family != req->sdiag_family ||
	    a->idiag_sport != b->idiag_sport ||
	    a->idiag_dport != b->idiag_dport ||
	    memcmp(a->idiag_src, b->idiag_src, sizeof(a->idiag_src)) != 0 ||
	    memcmp(a->idiag_dst, b->idiag_dst, sizeof(a->idiag_dst)) != 0)
		return 0;
	if (a->idiag_cookie[0] == INET_DIAG_NOCOOKIE &&
	    a->idiag_cookie[1] == INET_DIAG_NOCOOKIE)
		return 1;
	return a->idiag_cookie[0] == b->idiag_cookie[0] &&
	    a->idiag_cookie[1] == b->idiag_cookie[1];
}

static int
diag_sock_msg(const struct nlmsghdr *h, const unsigned char *p, size_t len,
    struct diag_reply *rep, char *err, size_t errlen)
{
	const struct inet_diag_msg *m = (const void *)p;
	size_t off = NLMSG_ALIGN(sizeof(*m));

	if (len < sizeof(*m))
		return query_fail(err, errlen, EPROTO,
		    "truncated inet_diag_msg");
	if (rep->found)
		return query_fail(err, errlen, EPROTO,
		    "the kernel reported more than one socket");
	if (!diag_same_socket(rep->req, m))
		return query_fail(err, errlen, EPROTO,
		    "the kernel described a different socket");
	rep->found = 1;
	if (off > len)
		off = len;
	if (diag_attrs(p + off, len - off, rep->out, err, errlen) == -1)
		return -1;
	/* Without NLM_F_MULTI this message is the whole answer. */
	return !(h->nlmsg_flags & NLM_F_MULTI);
}

/* One message of the answer: 1 when it ends the answer, 0, or -1. */
static int
diag_message(const struct nlmsghdr *h, void *arg, char *err, size_t errlen)
{
	const unsigned char *p = (const unsigned char *)h + NLMSG_HDRLEN;
	size_t len = h->nlmsg_len - NLMSG_HDRLEN;
	struct diag_reply *rep = arg;
	struct nlmsgerr e;
	int status;

	switch (h->nlmsg_type) {
	case NLMSG_DONE:
		/* A dump's end may carry its error as an int. */
		if (len >= sizeof(status)) {
			memcpy(&status, p, sizeof(status));
			if (status < 0)
				return diag_fail_kernel(err, errlen, -status);
		}
		return 1;
	case NLMSG_ERROR:
		if (len < sizeof(e))
			return query_fail(err, errlen, EPROTO,
			    "truncated NLMSG_ERROR");
		memcpy(&e, p, sizeof(e));
		/* error 0 is an acknowledgement */
		return e.error == 0 ? 1 :
				      diag_fail_kernel(err, errlen, -e.error);
	case SOCK_DIAG_BY_FAMILY:
		return diag_sock_msg(h, p, len, rep, err, errlen);
	default:
		return query_fail(err, errlen, EPROTO,
		    "unexpected netlink message type %u",
		    (unsigned)h->nlmsg_type);
	}
}

int
ktls_diag_query(int fd, struct ktls_diag *out, char *err, size_t errlen)
{
	struct inet_diag_req_v2 req;
	struct diag_request msg;
	struct diag_reply rep = { .req = &req, .out = out };
	const struct query_netlink q = {
		.protocol = NETLINK_SOCK_DIAG,
		.req = &msg.nlh,
		.answer = "answer",
		.message = diag_message,
		.arg = &rep,
	};
	int rc = -1, saved;

	memset(out, 0, sizeof(*out));
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (diag_req_fill(fd, &req, err, errlen) == -1)
		goto out;
	diag_request_build(&req, &msg);
	if (query_netlink(&q, err, errlen) == -1)
		goto out;
	if (!rep.found) {
		query_fail(err, errlen, ENOENT,
		    "the kernel's answer named no socket");
		goto out;
	}
	if (!out->has_ulp && err != NULL && errlen > 0)
		snprintf(err, errlen,
		    "the kernel reported no ULP: none is "
		    "attached, or the caller lacks "
		    "CAP_NET_ADMIN");
	rc = 0;

out:
	saved = errno;
	if (rc == -1)
		memset(out, 0, sizeof(*out));
	errno = saved;
	return rc;
}

const char *
ktls_diag_conf_name(int conf)
{
	size_t n = sizeof(diag_conf_names) / sizeof(diag_conf_names[0]);

	if (conf < 0 || (size_t)conf >= n || diag_conf_names[conf] == NULL)
		return "unknown";
	return diag_conf_names[conf];
}
