/*
 * ktls_nic_cache: ktls_nic_query() for a server that asks it for every
 * connection, with the interface's answer kept for a while.
 *
 * The route is looked up for every socket (one netlink round trip; the
 * answer depends on the peer). What follows from the interface alone, its
 * name, kind and TLS offload features, is kept per ifindex for ttl_secs
 * seconds: a burst of clients costs one feature query per interface, and
 * a feature switched since (`ethtool -K`) shows within ttl_secs. Failed
 * queries are not kept. The counters are neither read nor kept
 * (ktls_nic_stats()).
 *
 * One cache may be shared by any number of threads.
 *
 * Library-like: never prints, never exits.
 */
#ifndef KTLS_NIC_CACHE_H
#define KTLS_NIC_CACHE_H

#include <pthread.h>
#include <stddef.h>

#include "ktls_nic.h"

/* Interfaces kept at once; the one kept longest makes room. */
#define KTLS_NIC_CACHE_SLOTS 8

struct ktls_nic_cache {
	pthread_mutex_t lock;
	unsigned ttl_secs;
	/* Under lock: answers given from the cache, and asked of the kernel. */
	unsigned long hits, misses;
	struct {
		long long fetched_ms; /* CLOCK_MONOTONIC; 0: empty */
		struct ktls_nic nic;  /* nstats 0 */
	} slot[KTLS_NIC_CACHE_SLOTS];
};

/* A static cache: static struct ktls_nic_cache c = KTLS_NIC_CACHE_INIT(10); */
#define KTLS_NIC_CACHE_INIT(ttl)                                               \
	{                                                                      \
		.lock = PTHREAD_MUTEX_INITIALIZER, .ttl_secs = (ttl)           \
	}

/*
 * ktls_nic_query(fd, out, err, errlen), the interface's part from cache c
 * when it holds a fresh one.
 */
int ktls_nic_cache_query(struct ktls_nic_cache *c, int fd, struct ktls_nic *out,
    char *err, size_t errlen);

#endif /* KTLS_NIC_CACHE_H */
