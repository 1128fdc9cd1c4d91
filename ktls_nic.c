/*
 * ktls_nic: the network device under a connection, its TLS offload
 * features and counters, and what changed in those and in
 * /proc/net/tls_stat over a connection.
 *
 * Kernel side: net/ethtool/ioctl.c answers SIOCETHTOOL (feature names:
 * netdev_features_strings[] in net/ethtool/common.c). The device is the
 * routing table's answer (ktls_route.c).
 */
#include "ktls_nic.h"
#include "ktls_query.h"
#include "ktls_route.h"
#include "ktls_stat.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <linux/ethtool.h>
#include <linux/sockios.h>

/*
 * The kernel's values, for headers older than the feature. The ethtool
 * commands and ETH_SS_FEATURES came with struct ethtool_gfeatures (2.6.39),
 * which this file needs anyway.
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

/* More strings or counters than this is a confused driver, not a NIC. */
#define NIC_SSET_MAX 65536
/*
 * The ioctl ignores the caller's count and writes as many entries as the
 * driver has now (net/ethtool/ioctl.c ethtool_get_strings/_stats), which
 * can grow between GSSET_INFO and the read (mlx5: more channels). Spare
 * room absorbs that, and a count that moved fails the read with EAGAIN.
 */
#define NIC_SLACK       256
#define NIC_STATS_TRIES 3

struct nic_feature {
	const char *name;
	size_t active, available; /* int fields of struct ktls_nic */
};

static const struct nic_feature nic_features_wanted[] = {
	{ "tls-hw-tx-offload", offsetof(struct ktls_nic, tls_tx_feature),
	    offsetof(struct ktls_nic, tls_tx_available) },
	{ "tls-hw-rx-offload", offsetof(struct ktls_nic, tls_rx_feature),
	    offsetof(struct ktls_nic, tls_rx_available) },
};

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
ethtool_sset_count(int sock, const char *ifname, unsigned set, uint32_t *count,
    char *err, size_t errlen)
{
	union {
		struct ethtool_sset_info info;
		unsigned char
		    room[sizeof(struct ethtool_sset_info) + sizeof(uint32_t)];
	} u;

	*count = 0;
	memset(&u, 0, sizeof(u));
	u.info.cmd = ETHTOOL_GSSET_INFO;
	u.info.sset_mask = 1ULL << set;
	if (ethtool_ioctl(sock, ifname, &u) == -1) {
		/* A device without ethtool_ops has no sets at all. */
		if (errno == EOPNOTSUPP)
			return 0;
		return query_fail_errno(err, errlen, "ETHTOOL_GSSET_INFO");
	}
	/* The kernel clears the bit of a set the driver lacks (lo: stats). */
	if (!(u.info.sset_mask & (1ULL << set)))
		return 0;
	if (u.info.data[0] > NIC_SSET_MAX)
		return query_fail(err, errlen, EOVERFLOW,
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

	gs = calloc(1,
	    sizeof(*gs) + ((size_t)count + NIC_SLACK) * ETH_GSTRING_LEN);
	if (gs == NULL)
		return query_fail_errno(err, errlen, "ethtool strings");
	gs->cmd = ETHTOOL_GSTRINGS;
	gs->string_set = set;
	gs->len = count;
	if (ethtool_ioctl(sock, ifname, gs) == -1) {
		e = errno;
		free(gs);
		errno = e;
		return query_fail_errno(err, errlen, "ETHTOOL_GSTRINGS");
	}
	if (gs->len != count) {
		free(gs);
		return query_fail(err, errlen, EAGAIN,
		    "%s changed its ethtool strings while they "
		    "were read",
		    ifname);
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

	for (k = 0;
	     k < sizeof(nic_features_wanted) / sizeof(nic_features_wanted[0]);
	     k++) {
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
		query_fail_errno(err, errlen, "ethtool features");
		goto out;
	}
	gf->cmd = ETHTOOL_GFEATURES;
	gf->size = blocks; /* the kernel copies no more than this */
	if (ethtool_ioctl(sock, n->ifname, gf) == -1) {
		query_fail_errno(err, errlen, "ETHTOOL_GFEATURES");
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
	st = calloc(1,
	    sizeof(*st) + ((size_t)count + NIC_SLACK) * sizeof(st->data[0]));
	if (st == NULL) {
		query_fail_errno(err, errlen, "ethtool stats");
		goto out;
	}
	st->cmd = ETHTOOL_GSTATS;
	st->n_stats = count;
	if (ethtool_ioctl(sock, n->ifname, st) == -1) {
		query_fail_errno(err, errlen, "ETHTOOL_GSTATS");
		goto out;
	}
	if (st->n_stats != count) {
		query_fail(err, errlen, EAGAIN,
		    "%s changed its ethtool counters while they were "
		    "read",
		    n->ifname);
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
		return query_fail_errno(err, errlen, "socket for SIOCETHTOOL");
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
		return query_fail(err, errlen, errno, "interface %u: %s",
		    ifindex, strerror(errno));
	_Static_assert(sizeof(n->ifname) >= sizeof(ifr.ifr_name), "ifname");
	memcpy(n->ifname, ifr.ifr_name, sizeof(ifr.ifr_name));
	n->ifname[sizeof(n->ifname) - 1] = '\0';
	n->ifindex = ifindex;
	if (ioctl(sock, SIOCGIFFLAGS, &ifr) == -1)
		return query_fail(err, errlen, errno, "%s: SIOCGIFFLAGS: %s",
		    n->ifname, strerror(errno));
	n->is_loopback = (ifr.ifr_flags & IFF_LOOPBACK) != 0;
	n->is_virtual = nic_sysfs_virtual(n->ifname, ifindex);
	return 0;
}

void
ktls_nic_reset(struct ktls_nic *n)
{
	memset(n, 0, sizeof(*n));
	n->is_virtual = -1;
	n->tls_tx_feature = n->tls_rx_feature = -1;
	n->tls_tx_available = n->tls_rx_available = -1;
}

int
ktls_nic_query(int fd, struct ktls_nic *out, char *err, size_t errlen)
{
	unsigned ifindex = 0;

	if (ktls_route_oif(fd, &ifindex, err, errlen) == -1) {
		ktls_nic_reset(out);
		return -1;
	}
	return ktls_nic_query_ifindex(ifindex, out, err, errlen);
}

int
ktls_nic_query_ifindex(unsigned ifindex, struct ktls_nic *out, char *err,
    size_t errlen)
{
	int sock, rc = -1, saved;

	ktls_nic_reset(out);
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if ((sock = nic_socket(err, errlen)) == -1)
		return -1;
	if (nic_link(sock, ifindex, out, err, errlen) == 0 &&
	    nic_features(sock, out, err, errlen) == 0)
		rc = 0;
	saved = errno;
	close(sock);
	if (rc == -1)
		ktls_nic_reset(out);
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
	const char *kind = n->is_loopback ? "loopback, " :
	    n->is_virtual == 1            ? "virtual interface, " :
					    "";

	if (len == 0)
		return;
	if (n->ifname[0] == '\0') {
		snprintf(buf, len, "no interface known (the query failed)");
		return;
	}
	if (n->tls_tx_available == 0 && n->tls_rx_available == 0) {
		snprintf(buf, len,
		    "%s: %sno TLS offload (kTLS here is the "
		    "kernel's software path)",
		    n->ifname, kind);
		return;
	}
	snprintf(buf, len, "%s: %stls-hw-tx-offload %s, tls-hw-rx-offload %s",
	    n->ifname, kind, nic_state(n->tls_tx_feature, n->tls_tx_available),
	    nic_state(n->tls_rx_feature, n->tls_rx_available));
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
	    "%s%s: %" PRIu64 " -> %" PRIu64 " (%c%" PRIu64 ")\n", prefix, name,
	    before, after, up ? '+' : '-',
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
    const struct ktls_nic *nic_after, const struct ktls_tls_stat *tls_before,
    const struct ktls_tls_stat *tls_after, char *buf, size_t len)
{
	struct delta_out o = { .buf = buf, .len = buf != NULL ? len : 0 };
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
		for (i = 0; i < nic_after->nstats && i < KTLS_NIC_MAX_STATS;
		     i++)
			delta_line(&o, prefix, nic_after->stats[i].name,
			    nic_stat_get(nic_before, nic_after->stats[i].name),
			    nic_after->stats[i].value);
	}
	if (tls_before != NULL && tls_after != NULL)
		for (i = 0; i < tls_after->n && i < KTLS_STAT_MAX; i++)
			delta_line(&o, "", tls_after->v[i].name,
			    ktls_tls_stat_get(tls_before, tls_after->v[i].name),
			    tls_after->v[i].value);
	if (o.full) {
		errno = ENOBUFS;
		return -1;
	}
	return o.lines;
}
