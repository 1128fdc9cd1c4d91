/*
 * ktls_route: the egress interface of a connected socket, asked of the
 * routing table.
 *
 * Kernel side: net/ipv4/route.c inet_rtm_getroute() and net/ipv6/route.c
 * inet6_rtm_getroute() answer RTM_GETROUTE.
 */
#include "ktls_route.h"
#include "ktls_query.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <netinet/in.h>
#include <sys/socket.h>

#include <linux/netlink.h>
#include <linux/rtnetlink.h>

/* The kernel's values, for headers older than the feature. */
#ifndef SO_MARK
#define SO_MARK 36
#endif
#ifndef SO_BINDTOIFINDEX
#define SO_BINDTOIFINDEX 62 /* 5.1 */
#endif

/* Each lookup has its own netlink socket, so one sequence number will do. */
#define ROUTE_SEQ 1

struct route_key {
	int family; /* AF_INET or AF_INET6; v4-mapped counts as AF_INET */
	size_t alen;
	unsigned char dst[16], src[16];
	uint32_t oif;  /* bound device or IPv6 scope, 0 if neither */
	uint32_t mark; /* SO_MARK, 0 if none */
};

struct route_request {
	struct nlmsghdr nlh;
	struct rtmsg rtm;
	/* RTA_DST and RTA_SRC (16 bytes each), RTA_OIF, RTA_MARK. */
	_Alignas(4) unsigned char attrs[2 * RTA_SPACE(16) + 2 * RTA_SPACE(4)];
};
_Static_assert(offsetof(struct route_request, attrs) ==
	NLMSG_LENGTH(sizeof(struct rtmsg)),
    "attributes follow the rtmsg without padding");

/* The kernel's answers that mean something specific here. */
static const struct query_errno route_errnos[] = {
	{ ENETUNREACH, "no route to the peer (network unreachable)" },
	{ EHOSTUNREACH, "no route to the peer (host unreachable)" },
	/* ip_route_output_key_hash(): blackhole, or a source address gone. */
	{ EINVAL,
	    "the routing table refused the lookup (a blackhole route, "
	    "or the socket's local address is gone)" },
};

/* v4-mapped IPv6 (::ffff:a.b.c.d) is IPv4 on the wire, routed as IPv4. */
static const unsigned char v4mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0xff, 0xff };

static int
route_fail_kernel(char *err, size_t errlen, int e)
{
	return query_fail_known(err, errlen, e, route_errnos,
	    sizeof(route_errnos) / sizeof(route_errnos[0]), "RTM_GETROUTE");
}

/* ss's address into addr; its family after unmapping, -1 if not IP. */
static int
route_addr(const struct sockaddr_storage *ss, unsigned char addr[16],
    uint32_t *scope)
{
	const struct sockaddr_in *s4 = (const void *)ss;
	const struct sockaddr_in6 *s6 = (const void *)ss;

	if (ss->ss_family == AF_INET) {
		memcpy(addr, &s4->sin_addr, 4);
		return AF_INET;
	}
	if (ss->ss_family != AF_INET6)
		return -1;
	if (memcmp(s6->sin6_addr.s6_addr, v4mapped_prefix, 12) == 0) {
		memcpy(addr, s6->sin6_addr.s6_addr + 12, 4);
		return AF_INET;
	}
	memcpy(addr, s6->sin6_addr.s6_addr, 16);
	*scope = s6->sin6_scope_id;
	return AF_INET6;
}

/* What the kernel routed this socket by: addresses, device, mark. */
static int
route_key_fill(int fd, struct route_key *k, char *err, size_t errlen)
{
	struct sockaddr_storage local, peer;
	socklen_t llen = sizeof(local), plen = sizeof(peer);
	uint32_t scope = 0, unused = 0;
	int lfam, bound = 0;
	socklen_t olen = sizeof(bound);

	memset(k, 0, sizeof(*k));
	memset(&local, 0, sizeof(local));
	memset(&peer, 0, sizeof(peer));
	if (getsockname(fd, (struct sockaddr *)&local, &llen) == -1)
		return query_fail_errno(err, errlen, "getsockname");
	if (getpeername(fd, (struct sockaddr *)&peer, &plen) == -1)
		return query_fail_errno(err, errlen, "getpeername");
	lfam = route_addr(&local, k->src, &unused);
	k->family = route_addr(&peer, k->dst, &scope);
	if (k->family == -1 || lfam != k->family)
		return query_fail(err, errlen, EAFNOSUPPORT,
		    "socket is neither IPv4 nor IPv6");
	k->alen = k->family == AF_INET ? 4 : 16;
	/* Before 5.1 (ENOPROTOOPT) only the IPv6 scope says it. */
	if (getsockopt(fd, SOL_SOCKET, SO_BINDTOIFINDEX, &bound, &olen) == 0 &&
	    bound > 0)
		k->oif = (uint32_t)bound;
	else
		k->oif = scope;
	olen = sizeof(k->mark);
	if (getsockopt(fd, SOL_SOCKET, SO_MARK, &k->mark, &olen) == -1)
		k->mark = 0;
	return 0;
}

static void
route_attr(struct route_request *r, unsigned short type, const void *data,
    size_t len)
{
	struct rtattr *a = (struct rtattr *)((unsigned char *)r +
	    NLMSG_ALIGN(r->nlh.nlmsg_len));

	a->rta_type = type;
	a->rta_len = (unsigned short)RTA_LENGTH(len);
	memcpy(RTA_DATA(a), data, len);
	r->nlh.nlmsg_len = NLMSG_ALIGN(r->nlh.nlmsg_len) + RTA_SPACE(len);
}

/* Like `ip route get DST from SRC [oif DEV] [mark M]`: an output lookup. */
static void
route_request_build(const struct route_key *k, struct route_request *r)
{
	memset(r, 0, sizeof(*r));
	r->nlh.nlmsg_len = NLMSG_LENGTH(sizeof(r->rtm));
	r->nlh.nlmsg_type = RTM_GETROUTE;
	r->nlh.nlmsg_flags = NLM_F_REQUEST;
	r->nlh.nlmsg_seq = ROUTE_SEQ;
	r->rtm.rtm_family = (unsigned char)k->family;
	r->rtm.rtm_dst_len = (unsigned char)(k->alen * 8);
	r->rtm.rtm_src_len = (unsigned char)(k->alen * 8);
	route_attr(r, RTA_DST, k->dst, k->alen);
	route_attr(r, RTA_SRC, k->src, k->alen);
	if (k->oif != 0)
		route_attr(r, RTA_OIF, &k->oif, sizeof(k->oif));
	if (k->mark != 0)
		route_attr(r, RTA_MARK, &k->mark, sizeof(k->mark));
}

/* One message of the answer: 1 with *oif set, -1 on error. */
static int
route_message(const struct nlmsghdr *h, void *arg, char *err, size_t errlen)
{
	const struct rtmsg *rtm = NLMSG_DATA(h);
	const struct rtattr *a;
	uint32_t *oif = arg;
	struct nlmsgerr e;
	int len;

	if (h->nlmsg_type == NLMSG_ERROR) {
		if (h->nlmsg_len < NLMSG_LENGTH(sizeof(e)))
			return query_fail(err, errlen, EPROTO,
			    "truncated NLMSG_ERROR");
		memcpy(&e, NLMSG_DATA(h), sizeof(e));
		if (e.error == 0) /* an acknowledgement, not asked for */
			return query_fail(err, errlen, EPROTO,
			    "RTM_GETROUTE: "
			    "no route in the answer");
		return route_fail_kernel(err, errlen, -e.error);
	}
	if (h->nlmsg_type != RTM_NEWROUTE ||
	    h->nlmsg_len < NLMSG_LENGTH(sizeof(*rtm)))
		return query_fail(err, errlen, EPROTO,
		    "unexpected answer to RTM_GETROUTE");
	len = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof(*rtm)));
	for (a = RTM_RTA(rtm); RTA_OK(a, len); a = RTA_NEXT(a, len))
		if (a->rta_type == RTA_OIF && RTA_PAYLOAD(a) == sizeof(*oif)) {
			memcpy(oif, RTA_DATA(a), sizeof(*oif));
			return 1;
		}
	return query_fail(err, errlen, ENXIO,
	    "the route to the peer names no interface");
}

int
ktls_route_oif(int fd, unsigned *ifindex, char *err, size_t errlen)
{
	struct route_key key;
	struct route_request req;
	uint32_t oif = 0;
	const struct query_netlink q = {
		.protocol = NETLINK_ROUTE,
		.req = &req.nlh,
		.answer = "route answer",
		.message = route_message,
		.arg = &oif,
	};

	if (route_key_fill(fd, &key, err, errlen) == -1)
		return -1;
	route_request_build(&key, &req);
	if (query_netlink(&q, err, errlen) == -1)
		return -1;
	*ifindex = oif;
	return 0;
}
