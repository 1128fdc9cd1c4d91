/*
 * ktls_nic: which network interface carries a connection, whether that
 * device can do TLS offload, and what its TLS counters counted, beside the
 * kernel-wide /proc/net/tls_stat (ktls_stat.h, included here). The route
 * lookup is ktls_route.h; ktls_nic_cache.h keeps the answer per interface
 * for a server that asks for every connection.
 *
 * The features are a few ioctls; the counters are not cheap: the driver
 * gathers every one of them (thousands on a ConnectX NIC, most per queue)
 * for the few named *tls* here. So ktls_nic_query() leaves them out and
 * ktls_nic_stats() reads them, when they are wanted (--stats).
 *
 * This describes the interface, not the socket: a socket on a device with
 * tls-hw-tx-offload on may still have fallen back to software. The
 * per-socket truth is ktls_diag_query()'s txconf/rxconf; the counters here
 * show what the device and the kernel did in between two snapshots.
 *
 * Library-like: never prints, never exits. Functions return 0 or -1; on
 * -1 errno is set and a one-line message is left in the caller's buffer.
 */
#ifndef KTLS_NIC_H
#define KTLS_NIC_H

#include <net/if.h>
#include <stddef.h>
#include <stdint.h>

#include "ktls_stat.h"

#define KTLS_NIC_MAX_STATS 64
/* ethtool names are up to 32 bytes and need not be NUL-terminated. */
#define KTLS_NIC_NAME_MAX 33

struct ktls_nic_stat {
	char name[KTLS_NIC_NAME_MAX];
	uint64_t value;
};

struct ktls_nic {
	char ifname[IF_NAMESIZE]; /* egress interface of the connection */
	unsigned ifindex;
	int is_loopback; /* IFF_LOOPBACK */
	/*
	 * 1: no backing device (/sys/class/net/IF/device missing: lo, veth,
	 * bridge, tun, ...); -1 unknown (no sysfs for this network namespace).
	 */
	int is_virtual;
	/* -1 unknown (kernel has no such feature), 0 off, 1 on. */
	int tls_tx_feature, tls_rx_feature;
	/* -1 unknown, 0 the device cannot do it at all, 1 it can. */
	int tls_tx_available, tls_rx_available;
	/*
	 * The device's ethtool -S counters whose name contains "tls", in the
	 * driver's order; at most KTLS_NIC_MAX_STATS (aggregate counters come
	 * before per-queue ones in mlx5, so the cap drops per-queue ones).
	 * Read by ktls_nic_stats() alone.
	 */
	size_t nstats;
	struct ktls_nic_stat stats[KTLS_NIC_MAX_STATS];
};

/*
 * Fill *out but its counters (nstats 0) for connected IPv4 or IPv6 socket
 * fd (v4-mapped peers count as IPv4): the egress interface is the routing
 * table's answer for the socket's addresses, bound device and mark
 * (ktls_route_oif()), the features come from the ethtool ioctl. Waits at
 * most about a second for the kernel. Needs no privilege.
 */
int ktls_nic_query(int fd, struct ktls_nic *out, char *err, size_t errlen);

/* ktls_nic_query() for interface ifindex: no route lookup. */
int ktls_nic_query_ifindex(unsigned ifindex, struct ktls_nic *out, char *err,
    size_t errlen);

/* Set *n to what a failed query leaves: no interface, nothing known. */
void ktls_nic_reset(struct ktls_nic *n);

/*
 * Read n->stats and n->nstats, for the interface a query filled n for;
 * again after a transfer, for before/after deltas. A device without
 * ethtool statistics (lo) has nstats 0.
 */
int ktls_nic_stats(struct ktls_nic *n, char *err, size_t errlen);

/*
 * One line, no newline, for humans, e.g.
 *   "lo: loopback, no TLS offload (kTLS here is the kernel's software path)"
 *   "eth0: tls-hw-tx-offload on, tls-hw-rx-offload off (device can)"
 * Truncated to fit len.
 */
void ktls_nic_describe(const struct ktls_nic *n, char *buf, size_t len);

/*
 * Format the counters that changed between two snapshots into buf, one
 * line each, '\n'-terminated:
 *   "eth0 tx_tls_encrypted_packets: 0 -> 12 (+12)" (NIC, matched by name)
 *   "TlsTxSw: 3 -> 4 (+1)"                        (tls_stat)
 * A counter missing from the earlier snapshot counts as 0 there. Either
 * pair may be NULL to leave it out. Returns the number of lines written,
 * or -1 with errno ENOBUFS (buf holds the whole lines that fit) or EINVAL
 * (the NIC snapshots are of different interfaces).
 */
int ktls_nic_deltas(const struct ktls_nic *nic_before,
    const struct ktls_nic *nic_after, const struct ktls_tls_stat *tls_before,
    const struct ktls_tls_stat *tls_after, char *buf, size_t len);

#endif /* KTLS_NIC_H */
