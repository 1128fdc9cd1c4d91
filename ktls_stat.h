/*
 * ktls_stat: the kernel's /proc/net/tls_stat counters, and the lines that
 * show what changed between two snapshots of them and of a NIC's
 * counters.
 *
 * Library-like: never prints, never exits. Functions return 0 or -1; on
 * -1 errno is set and a one-line message is left in the caller's buffer.
 */
#ifndef KTLS_STAT_H
#define KTLS_STAT_H

#include <stddef.h>
#include <stdint.h>

struct ktls_nic; /* ktls_nic.h */

#define KTLS_STAT_MAX 32

struct ktls_tls_stat {
	size_t n;
	struct {
		char name[32];
		uint64_t value;
	} v[KTLS_STAT_MAX];
};

/*
 * Read /proc/net/tls_stat (this network namespace's). -1 with errno
 * ENOENT and a message saying so if the kernel's tls module is not loaded.
 */
int ktls_tls_stat_read(struct ktls_tls_stat *s, char *err, size_t errlen);

/* Value of counter name in s, or 0 if s has no such counter. */
uint64_t ktls_tls_stat_get(const struct ktls_tls_stat *s, const char *name);

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
		    const struct ktls_nic *nic_after,
		    const struct ktls_tls_stat *tls_before,
		    const struct ktls_tls_stat *tls_after, char *buf,
		    size_t len);

#endif /* KTLS_STAT_H */
