/*
 * ktls_stat: the kernel's /proc/net/tls_stat counters. The lines that show
 * what changed between two snapshots of them are ktls_nic_deltas()'s
 * (ktls_nic.h), which puts them beside a NIC's.
 *
 * Library-like: never prints, never exits. Functions return 0 or -1; on
 * -1 errno is set and a one-line message is left in the caller's buffer.
 */
#ifndef KTLS_STAT_H
#define KTLS_STAT_H

#include <stddef.h>
#include <stdint.h>

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

#endif /* KTLS_STAT_H */
