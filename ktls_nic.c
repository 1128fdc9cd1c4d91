/*
 * ktls_nic: the network device under a connection, its TLS offload
 * features and counters, and the kernel's /proc/net/tls_stat.
 *
 * Kernel side: net/ipv4/route.c inet_rtm_getroute() and net/ipv6/route.c
 * inet6_rtm_getroute() answer RTM_GETROUTE; net/ethtool/ioctl.c answers
 * SIOCETHTOOL (feature names: netdev_features_strings[] in
 * net/ethtool/common.c); net/tls/tls_proc.c writes /proc/net/tls_stat.
 */
#include "ktls_nic.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>

#include <linux/ethtool.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sockios.h>

/*
 * The kernel's values, for headers older than the feature. The ethtool
 * commands and ETH_SS_FEATURES came with struct ethtool_gfeatures (2.6.39),
 * which this file needs anyway; the socket options matter at run time.
 */
#ifndef SIOCETHTOOL
#define SIOCETHTOOL 0x8946
#endif
#ifndef ETHTOOL_GSSET_INFO
#define ETHTOOL_GSSET_INFO 0x37
#endif
#ifndef ETHTOOL_GFEATURES
#define ETHTOOL_GFEATURES 0x3a
#endif
#ifndef SO_MARK
#define SO_MARK 36
#endif
#ifndef SO_BINDTOIFINDEX
#define SO_BINDTOIFINDEX 62 /* 5.1 */
#endif

#define NIC_TIMEOUT_SEC 1
/* Each lookup has its own netlink socket, so one sequence number will do. */
#define NIC_SEQ 1
/* More strings or counters than this is a confused driver, not a NIC. */
#define NIC_SSET_MAX 65536
/*
 * The ioctl ignores the caller's count and writes as many entries as the
 * driver has now (net/ethtool/ioctl.c ethtool_get_strings/_stats), which
 * can grow between GSSET_INFO and the read (mlx5: more channels). Spare
 * room absorbs that, and a count that moved fails the read with EAGAIN.
 */
#define NIC_SLACK 256
#define NIC_STATS_TRIES 3

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
static const struct {
	int err;
	const char *why;
} route_errnos[] = {
	{ENETUNREACH, "no route to the peer (network unreachable)"},
	{EHOSTUNREACH, "no route to the peer (host unreachable)"},
	/* ip_route_output_key_hash(): blackhole, or a source address gone. */
	{EINVAL, "the routing table refused the lookup (a blackhole route, "
		 "or the socket's local address is gone)"},
};

struct nic_feature {
	const char *name;
	size_t active, available; /* int fields of struct ktls_nic */
};

static const struct nic_feature nic_features_wanted[] = {
	{"tls-hw-tx-offload", offsetof(struct ktls_nic, tls_tx_feature),
	 offsetof(struct ktls_nic, tls_tx_available)},
	{"tls-hw-rx-offload", offsetof(struct ktls_nic, tls_rx_feature),
	 offsetof(struct ktls_nic, tls_rx_available)},
};

/* v4-mapped IPv6 (::ffff:a.b.c.d) is IPv4 on the wire, routed as IPv4. */
static const unsigned char v4mapped_prefix[12] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* Leave a message for the caller, set errno to e, return -1. */
static int __attribute__((format(printf, 4, 5)))
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

static int
nic_fail_errno(char *err, size_t errlen, const char *what)
{
	int e = errno;

	return nic_fail(err, errlen, e, "%s: %s", what, strerror(e));
}

static int
route_fail_kernel(char *err, size_t errlen, int e)
{
	size_t i;

	for (i = 0; i < sizeof(route_errnos) / sizeof(route_errnos[0]); i++)
		if (route_errnos[i].err == e)
			return nic_fail(err, errlen, e, "%s", route_errnos[i].why);
	return nic_fail(err, errlen, e, "RTM_GETROUTE: %s", strerror(e));
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
		return nic_fail_errno(err, errlen, "getsockname");
	if (getpeername(fd, (struct sockaddr *)&peer, &plen) == -1)
		return nic_fail_errno(err, errlen, "getpeername");
	lfam = route_addr(&local, k->src, &unused);
	k->family = route_addr(&peer, k->dst, &scope);
	if (k->family == -1 || lfam != k->family)
		return nic_fail(err, errlen, EAFNOSUPPORT,
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
	struct rtattr *a =
	    (struct rtattr *)((unsigned char *)r + NLMSG_ALIGN(r->nlh.nlmsg_len));

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
	r->nlh.nlmsg_seq = NIC_SEQ;
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

static int
route_open(char *err, size_t errlen)
{
	/* The kernel answers at once; this only bounds a reply that is lost. */
	struct timeval tv = {.tv_sec = NIC_TIMEOUT_SEC};
	int nl;

	nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (nl == -1)
		return nic_fail_errno(err, errlen, "netlink socket");
	if (setsockopt(nl, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == -1) {
		nic_fail_errno(err, errlen, "netlink SO_RCVTIMEO");
		close(nl);
		return -1;
	}
	return nl;
}

static int
route_send(int nl, const struct route_request *r, char *err, size_t errlen)
{
	struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
	ssize_t n;

	do
		n = sendto(nl, r, r->nlh.nlmsg_len, 0,
			   (const struct sockaddr *)&kernel, sizeof(kernel));
	while (n == -1 && errno == EINTR);
	if (n == -1)
		return nic_fail_errno(err, errlen, "netlink send");
	if ((size_t)n != r->nlh.nlmsg_len)
		return nic_fail(err, errlen, EIO, "netlink send: short write");
	return 0;
}

/* One message: 1 with *oif set, 0 to keep reading, -1 on error. */
static int
route_message(struct nlmsghdr *h, uint32_t *oif, char *err, size_t errlen)
{
	struct rtmsg *rtm = NLMSG_DATA(h);
	struct rtattr *a;
	struct nlmsgerr e;
	int len;

	if (h->nlmsg_seq != NIC_SEQ || h->nlmsg_type == NLMSG_NOOP)
		return 0;
	if (h->nlmsg_type == NLMSG_ERROR) {
		if (h->nlmsg_len < NLMSG_LENGTH(sizeof(e)))
			return nic_fail(err, errlen, EPROTO,
					"truncated NLMSG_ERROR");
		memcpy(&e, NLMSG_DATA(h), sizeof(e));
		if (e.error == 0) /* an acknowledgement, not asked for */
			return nic_fail(err, errlen, EPROTO,
					"RTM_GETROUTE: no route in the answer");
		return route_fail_kernel(err, errlen, -e.error);
	}
	if (h->nlmsg_type != RTM_NEWROUTE ||
	    h->nlmsg_len < NLMSG_LENGTH(sizeof(*rtm)))
		return nic_fail(err, errlen, EPROTO,
				"unexpected answer to RTM_GETROUTE");
	len = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof(*rtm)));
	for (a = RTM_RTA(rtm); RTA_OK(a, len); a = RTA_NEXT(a, len))
		if (a->rta_type == RTA_OIF && RTA_PAYLOAD(a) == sizeof(*oif)) {
			memcpy(oif, RTA_DATA(a), sizeof(*oif));
			return 1;
		}
	return nic_fail(err, errlen, ENXIO,
			"the route to the peer names no interface");
}

/* One datagram may hold several messages; every length is checked. */
static int
route_datagram(unsigned char *buf, size_t len, uint32_t *oif, char *err,
	       size_t errlen)
{
	size_t off = 0;
	int r = 0;

	while (r == 0 && off < len) {
		struct nlmsghdr *h = (struct nlmsghdr *)(void *)(buf + off);

		if (len - off < NLMSG_HDRLEN || h->nlmsg_len < NLMSG_HDRLEN ||
		    h->nlmsg_len > len - off)
			return nic_fail(err, errlen, EPROTO,
					"truncated netlink message");
		r = route_message(h, oif, err, errlen);
		off += NLMSG_ALIGN(h->nlmsg_len);
	}
	return r;
}

static int
route_recv(int nl, uint32_t *oif, char *err, size_t errlen)
{
	/* A route is a few hundred bytes; MSG_TRUNC catches more. */
	_Alignas(struct nlmsghdr) unsigned char buf[8192];
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
			return nic_fail(err, errlen, ETIMEDOUT,
					"no route answer from the kernel "
					"within %d s", NIC_TIMEOUT_SEC);
		if (n == -1)
			return nic_fail_errno(err, errlen, "netlink receive");
		if ((size_t)n > sizeof(buf))
			return nic_fail(err, errlen, EMSGSIZE,
					"netlink reply of %zd bytes truncated", n);
		/* Only port 0 is the kernel. */
		if (fromlen != sizeof(from) || from.nl_pid != 0)
			continue;
		r = route_datagram(buf, (size_t)n, oif, err, errlen);
	}
	return r == 1 ? 0 : -1;
}

/* The interface index the routing table sends fd's traffic out of. */
static int
route_oif(int fd, uint32_t *oif, char *err, size_t errlen)
{
	struct route_key key;
	struct route_request req;
	int nl, rc = -1, saved;

	if (route_key_fill(fd, &key, err, errlen) == -1)
		return -1;
	route_request_build(&key, &req);
	if ((nl = route_open(err, errlen)) == -1)
		return -1;
	if (route_send(nl, &req, err, errlen) == 0 &&
	    route_recv(nl, oif, err, errlen) == 0)
		rc = 0;
	saved = errno;
	close(nl);
	errno = saved;
	return rc;
}

static int
ethtool_ioctl(int sock, const char *ifname, void *cmd)
{
	struct ifreq ifr;

	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, ifname, strnlen(ifname, IFNAMSIZ - 1));
	ifr.ifr_data = cmd;
	return ioctl(sock, SIOCETHTOOL, &ifr);
}

/* How many strings the device has in set; 0 if it has no such set. */
static int
ethtool_sset_count(int sock, const char *ifname, unsigned set,
		   uint32_t *count, char *err, size_t errlen)
{
	union {
		struct ethtool_sset_info info;
		unsigned char room[sizeof(struct ethtool_sset_info) +
				   sizeof(uint32_t)];
	} u;

	*count = 0;
	memset(&u, 0, sizeof(u));
	u.info.cmd = ETHTOOL_GSSET_INFO;
	u.info.sset_mask = 1ULL << set;
	if (ethtool_ioctl(sock, ifname, &u) == -1) {
		/* A device without ethtool_ops has no sets at all. */
		if (errno == EOPNOTSUPP)
			return 0;
		return nic_fail_errno(err, errlen, "ETHTOOL_GSSET_INFO");
	}
	/* The kernel clears the bit of a set the driver lacks (lo: stats). */
	if (!(u.info.sset_mask & (1ULL << set)))
		return 0;
	if (u.info.data[0] > NIC_SSET_MAX)
		return nic_fail(err, errlen, EOVERFLOW,
				"%s reports %" PRIu32 " ethtool strings", ifname,
				u.info.data[0]);
	*count = u.info.data[0];
	return 0;
}

/* Exactly count strings of set; the caller frees *out. */
static int
ethtool_strings(int sock, const char *ifname, unsigned set, uint32_t count,
		struct ethtool_gstrings **out, char *err, size_t errlen)
{
	struct ethtool_gstrings *gs;
	int e;

	gs = calloc(1, sizeof(*gs) + ((size_t)count + NIC_SLACK) *
					 ETH_GSTRING_LEN);
	if (gs == NULL)
		return nic_fail_errno(err, errlen, "ethtool strings");
	gs->cmd = ETHTOOL_GSTRINGS;
	gs->string_set = set;
	gs->len = count;
	if (ethtool_ioctl(sock, ifname, gs) == -1) {
		e = errno;
		free(gs);
		errno = e;
		return nic_fail_errno(err, errlen, "ETHTOOL_GSTRINGS");
	}
	if (gs->len != count) {
		free(gs);
		return nic_fail(err, errlen, EAGAIN,
				"%s changed its ethtool strings while they "
				"were read", ifname);
	}
	*out = gs;
	return 0;
}

/* ethtool string i as a C string (they are NUL-padded, not terminated). */
static void
gstring_copy(char dst[KTLS_NIC_NAME_MAX], const struct ethtool_gstrings *gs,
	     uint32_t i)
{
	const char *s = (const char *)gs->data + (size_t)i * ETH_GSTRING_LEN;
	size_t len = strnlen(s, ETH_GSTRING_LEN);

	_Static_assert(KTLS_NIC_NAME_MAX > ETH_GSTRING_LEN, "room for NUL");
	memcpy(dst, s, len);
	dst[len] = '\0';
}

static int *
nic_field(struct ktls_nic *n, size_t offset)
{
	return (int *)(void *)((unsigned char *)n + offset);
}

/* Feature i of the device, if it is one this module reports. */
static void
nic_feature_set(struct ktls_nic *n, const char *name,
		const struct ethtool_gfeatures *gf, uint32_t i)
{
	const struct ethtool_get_features_block *b = &gf->features[i / 32];
	uint32_t bit = 1U << (i % 32);
	size_t k;

	for (k = 0; k < sizeof(nic_features_wanted) /
			    sizeof(nic_features_wanted[0]); k++) {
		const struct nic_feature *f = &nic_features_wanted[k];

		if (strcmp(name, f->name) != 0)
			continue;
		*nic_field(n, f->active) = (b->active & bit) != 0;
		/*
		 * 'available' is hw_features, what the user may switch: a
		 * feature fixed on is active without being available.
		 */
		*nic_field(n, f->available) =
		    (b->active & bit) != 0 || (b->available & bit) != 0;
	}
}

static int
nic_features(int sock, struct ktls_nic *n, char *err, size_t errlen)
{
	struct ethtool_gstrings *names = NULL;
	struct ethtool_gfeatures *gf = NULL;
	char name[KTLS_NIC_NAME_MAX];
	uint32_t count, blocks, i;
	int rc = -1;

	if (ethtool_sset_count(sock, n->ifname, ETH_SS_FEATURES, &count, err,
			       errlen) == -1)
		return -1;
	if (count == 0) /* before 2.6.39: features stay unknown */
		return 0;
	if (ethtool_strings(sock, n->ifname, ETH_SS_FEATURES, count, &names,
			    err, errlen) == -1)
		goto out;
	blocks = (count + 31) / 32;
	gf = calloc(1, sizeof(*gf) + blocks * sizeof(gf->features[0]));
	if (gf == NULL) {
		nic_fail_errno(err, errlen, "ethtool features");
		goto out;
	}
	gf->cmd = ETHTOOL_GFEATURES;
	gf->size = blocks; /* the kernel copies no more than this */
	if (ethtool_ioctl(sock, n->ifname, gf) == -1) {
		nic_fail_errno(err, errlen, "ETHTOOL_GFEATURES");
		goto out;
	}
	for (i = 0; i < count && i / 32 < gf->size; i++) {
		gstring_copy(name, names, i);
		nic_feature_set(n, name, gf, i);
	}
	rc = 0;
out:
	free(names);
	free(gf);
	return rc;
}

/* The counters named *tls*, matched by index between names and values. */
static void
nic_stats_pick(struct ktls_nic *n, const struct ethtool_gstrings *names,
	       const struct ethtool_stats *st)
{
	uint32_t i;

	n->nstats = 0;
	for (i = 0; i < st->n_stats && n->nstats < KTLS_NIC_MAX_STATS; i++) {
		struct ktls_nic_stat *s = &n->stats[n->nstats];

		gstring_copy(s->name, names, i);
		if (strcasestr(s->name, "tls") == NULL)
			continue;
		s->value = st->data[i];
		n->nstats++;
	}
}

static int
nic_stats_once(int sock, struct ktls_nic *n, char *err, size_t errlen)
{
	struct ethtool_gstrings *names = NULL;
	struct ethtool_stats *st = NULL;
	uint32_t count;
	int rc = -1;

	n->nstats = 0;
	if (ethtool_sset_count(sock, n->ifname, ETH_SS_STATS, &count, err,
			       errlen) == -1)
		return -1;
	if (count == 0)
		return 0;
	if (ethtool_strings(sock, n->ifname, ETH_SS_STATS, count, &names, err,
			    errlen) == -1)
		goto out;
	st = calloc(1, sizeof(*st) +
			   ((size_t)count + NIC_SLACK) * sizeof(st->data[0]));
	if (st == NULL) {
		nic_fail_errno(err, errlen, "ethtool stats");
		goto out;
	}
	st->cmd = ETHTOOL_GSTATS;
	st->n_stats = count;
	if (ethtool_ioctl(sock, n->ifname, st) == -1) {
		nic_fail_errno(err, errlen, "ETHTOOL_GSTATS");
		goto out;
	}
	if (st->n_stats != count) {
		nic_fail(err, errlen, EAGAIN, "%s changed its ethtool counters "
					      "while they were read", n->ifname);
		goto out;
	}
	nic_stats_pick(n, names, st);
	rc = 0;
out:
	free(names);
	free(st);
	return rc;
}

static int
nic_stats_read(int sock, struct ktls_nic *n, char *err, size_t errlen)
{
	int tries = 0, rc;

	do
		rc = nic_stats_once(sock, n, err, errlen);
	while (rc == -1 && errno == EAGAIN && ++tries < NIC_STATS_TRIES);
	return rc;
}

/* Any socket reaches the ethtool ioctl; AF_INET is what ethtool(8) uses. */
static int
nic_socket(char *err, size_t errlen)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (s == -1)
		return nic_fail_errno(err, errlen, "socket for SIOCETHTOOL");
	return s;
}

/*
 * 1 if the device has no parent device in sysfs, -1 if sysfs cannot tell:
 * not mounted, or mounted from another network namespace (the ifindex of
 * the same name differs).
 */
static int
nic_sysfs_virtual(const char *ifname, unsigned ifindex)
{
	char path[64];
	unsigned idx = 0;
	struct stat st;
	FILE *f;
	int ok;

	snprintf(path, sizeof(path), "/sys/class/net/%s/ifindex", ifname);
	if ((f = fopen(path, "re")) == NULL)
		return -1;
	ok = fscanf(f, "%u", &idx) == 1 && idx == ifindex;
	fclose(f);
	if (!ok)
		return -1;
	snprintf(path, sizeof(path), "/sys/class/net/%s/device", ifname);
	if (stat(path, &st) == 0)
		return 0;
	return errno == ENOENT ? 1 : -1;
}

static int
nic_link(int sock, unsigned ifindex, struct ktls_nic *n, char *err,
	 size_t errlen)
{
	struct ifreq ifr;

	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_ifindex = (int)ifindex;
	if (ioctl(sock, SIOCGIFNAME, &ifr) == -1)
		return nic_fail(err, errlen, errno, "interface %u: %s", ifindex,
				strerror(errno));
	_Static_assert(sizeof(n->ifname) >= sizeof(ifr.ifr_name), "ifname");
	memcpy(n->ifname, ifr.ifr_name, sizeof(ifr.ifr_name));
	n->ifname[sizeof(n->ifname) - 1] = '\0';
	n->ifindex = ifindex;
	if (ioctl(sock, SIOCGIFFLAGS, &ifr) == -1)
		return nic_fail(err, errlen, errno, "%s: SIOCGIFFLAGS: %s",
				n->ifname, strerror(errno));
	n->is_loopback = (ifr.ifr_flags & IFF_LOOPBACK) != 0;
	n->is_virtual = nic_sysfs_virtual(n->ifname, ifindex);
	return 0;
}

static void
nic_reset(struct ktls_nic *n)
{
	memset(n, 0, sizeof(*n));
	n->is_virtual = -1;
	n->tls_tx_feature = n->tls_rx_feature = -1;
	n->tls_tx_available = n->tls_rx_available = -1;
}

int
ktls_nic_query(int fd, struct ktls_nic *out, char *err, size_t errlen)
{
	uint32_t ifindex = 0;
	int sock = -1, rc = -1, saved;

	nic_reset(out);
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (route_oif(fd, &ifindex, err, errlen) == -1 ||
	    (sock = nic_socket(err, errlen)) == -1)
		goto out;
	if (nic_link(sock, ifindex, out, err, errlen) == -1 ||
	    nic_features(sock, out, err, errlen) == -1 ||
	    nic_stats_read(sock, out, err, errlen) == -1)
		goto out;
	rc = 0;
out:
	saved = errno;
	if (sock != -1)
		close(sock);
	if (rc == -1)
		nic_reset(out);
	errno = saved;
	return rc;
}

int
ktls_nic_stats(struct ktls_nic *n, char *err, size_t errlen)
{
	int sock, rc, saved;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if ((sock = nic_socket(err, errlen)) == -1)
		return -1;
	rc = nic_stats_read(sock, n, err, errlen);
	saved = errno;
	close(sock);
	errno = saved;
	return rc;
}

static const char *
nic_state(int active, int available)
{
	if (active == -1)
		return "unknown (this kernel does not report it)";
	if (active == 1)
		return "on";
	return available == 1 ? "off (device can)" : "unavailable";
}

void
ktls_nic_describe(const struct ktls_nic *n, char *buf, size_t len)
{
	const char *kind = n->is_loopback ? "loopback, "
			   : n->is_virtual == 1 ? "virtual interface, "
			   : "";

	if (len == 0)
		return;
	if (n->ifname[0] == '\0') {
		snprintf(buf, len, "no interface known (the query failed)");
		return;
	}
	if (n->tls_tx_available == 0 && n->tls_rx_available == 0) {
		snprintf(buf, len, "%s: %sno TLS offload (kTLS here is the "
				   "kernel's software path)", n->ifname, kind);
		return;
	}
	snprintf(buf, len, "%s: %stls-hw-tx-offload %s, tls-hw-rx-offload %s",
		 n->ifname, kind, nic_state(n->tls_tx_feature, n->tls_tx_available),
		 nic_state(n->tls_rx_feature, n->tls_rx_available));
}

/* One /proc/net/tls_stat line, "Name<spaces>value"; 0, or -1 if not one. */
static int
tls_stat_line(const char *line, struct ktls_tls_stat *s)
{
	char name[32];
	const char *p;
	char *end;
	unsigned long long v;
	int used = 0;

	_Static_assert(sizeof(s->v[0].name) == 32, "%31s below");
	if (sscanf(line, "%31s%n", name, &used) != 1)
		return -1;
	p = line + used;
	/* A name that did not fit leaves no blank here. */
	if (*p != ' ' && *p != '\t')
		return -1;
	p += strspn(p, " \t");
	if (*p < '0' || *p > '9')
		return -1;
	errno = 0;
	v = strtoull(p, &end, 10);
	if (errno == ERANGE || end[strspn(end, " \t\n")] != '\0')
		return -1;
	if (s->n < KTLS_STAT_MAX) {
		memcpy(s->v[s->n].name, name, sizeof(name));
		s->v[s->n].value = v;
		s->n++;
	}
	return 0;
}

int
ktls_tls_stat_read(struct ktls_tls_stat *s, char *err, size_t errlen)
{
	char line[256];
	FILE *f;

	memset(s, 0, sizeof(*s));
	if ((f = fopen("/proc/net/tls_stat", "re")) == NULL) {
		if (errno != ENOENT)
			return nic_fail_errno(err, errlen, "/proc/net/tls_stat");
		if (access("/proc/self", F_OK) == -1)
			return nic_fail(err, errlen, ENOENT,
					"/proc is not mounted");
		return nic_fail(err, errlen, ENOENT,
				"no /proc/net/tls_stat: the kernel's tls module "
				"is not loaded (CONFIG_TLS off, or no socket "
				"has asked for kTLS yet)");
	}
	/* Lines this parser does not understand are a newer kernel's. */
	while (fgets(line, sizeof(line), f) != NULL)
		(void)tls_stat_line(line, s);
	fclose(f);
	if (s->n == 0)
		return nic_fail(err, errlen, EPROTO,
				"/proc/net/tls_stat holds no counters");
	return 0;
}

uint64_t
ktls_tls_stat_get(const struct ktls_tls_stat *s, const char *name)
{
	size_t i;

	for (i = 0; i < s->n && i < KTLS_STAT_MAX; i++)
		if (strcmp(s->v[i].name, name) == 0)
			return s->v[i].value;
	return 0;
}

/* Where ktls_nic_deltas() writes; full once a line did not fit. */
struct delta_out {
	char *buf;
	size_t len, pos;
	int lines, full;
};

static void
delta_line(struct delta_out *o, const char *prefix, const char *name,
	   uint64_t before, uint64_t after)
{
	size_t room = o->len - o->pos;
	int up = after > before, w;

	if (before == after || o->full)
		return;
	o->full = 1;
	if (room == 0)
		return;
	w = snprintf(o->buf + o->pos, room,
		     "%s%s: %" PRIu64 " -> %" PRIu64 " (%c%" PRIu64 ")\n", prefix,
		     name, before, after, up ? '+' : '-',
		     up ? after - before : before - after);
	if (w < 0 || (size_t)w >= room) {
		o->buf[o->pos] = '\0'; /* whole lines only */
		return;
	}
	o->full = 0;
	o->pos += (size_t)w;
	o->lines++;
}

static uint64_t
nic_stat_get(const struct ktls_nic *n, const char *name)
{
	size_t i;

	for (i = 0; i < n->nstats && i < KTLS_NIC_MAX_STATS; i++)
		if (strcmp(n->stats[i].name, name) == 0)
			return n->stats[i].value;
	return 0;
}

int
ktls_nic_deltas(const struct ktls_nic *nic_before,
		const struct ktls_nic *nic_after,
		const struct ktls_tls_stat *tls_before,
		const struct ktls_tls_stat *tls_after, char *buf, size_t len)
{
	struct delta_out o = {.buf = buf, .len = buf != NULL ? len : 0};
	char prefix[IF_NAMESIZE + 1];
	size_t i;

	if (o.len > 0)
		buf[0] = '\0';
	if (nic_before != NULL && nic_after != NULL) {
		if (strcmp(nic_before->ifname, nic_after->ifname) != 0) {
			errno = EINVAL;
			return -1;
		}
		snprintf(prefix, sizeof(prefix), "%s ", nic_after->ifname);
		for (i = 0; i < nic_after->nstats && i < KTLS_NIC_MAX_STATS; i++)
			delta_line(&o, prefix, nic_after->stats[i].name,
				   nic_stat_get(nic_before,
						nic_after->stats[i].name),
				   nic_after->stats[i].value);
	}
	if (tls_before != NULL && tls_after != NULL)
		for (i = 0; i < tls_after->n && i < KTLS_STAT_MAX; i++)
			delta_line(&o, "", tls_after->v[i].name,
				   ktls_tls_stat_get(tls_before,
						     tls_after->v[i].name),
				   tls_after->v[i].value);
	if (o.full) {
		errno = ENOBUFS;
		return -1;
	}
	return o.lines;
}
