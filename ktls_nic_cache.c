/*
 * ktls_nic_cache: an interface's name, kind and TLS offload features, kept
 * per ifindex for a while, shared by a server's client threads.
 *
 * The kernel is asked outside the lock, so a slow answer holds up no other
 * thread; two threads that miss at once both ask, and the later answer is
 * kept.
 */
#include "ktls_nic_cache.h"
#include "ktls_route.h"

#include <pthread.h>
#include <string.h>
#include <time.h>

/* Milliseconds on CLOCK_MONOTONIC, or -1 (then nothing is kept). */
static long long
cache_now_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
		return -1;
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Copy interface ifindex into *out if c keeps it fresh at now. Under lock. */
static int
cache_find(const struct ktls_nic_cache *c, unsigned ifindex, long long now,
    struct ktls_nic *out)
{
	long long ttl_ms = (long long)c->ttl_secs * 1000;
	size_t i;

	for (i = 0; i < KTLS_NIC_CACHE_SLOTS; i++) {
		if (c->slot[i].fetched_ms > 0 &&
		    c->slot[i].nic.ifindex == ifindex &&
		    now - c->slot[i].fetched_ms < ttl_ms) {
			*out = c->slot[i].nic;
			return 1;
		}
	}
	return 0;
}

/* Keep n in its interface's slot, else in the emptiest or oldest. */
static void
cache_store(struct ktls_nic_cache *c, const struct ktls_nic *n, long long now)
{
	size_t i, pick = 0;

	for (i = 0; i < KTLS_NIC_CACHE_SLOTS; i++) {
		if (c->slot[i].fetched_ms > 0 &&
		    c->slot[i].nic.ifindex == n->ifindex) {
			pick = i;
			break;
		}
		if (c->slot[i].fetched_ms < c->slot[pick].fetched_ms)
			pick = i;
	}
	c->slot[pick].nic = *n;
	c->slot[pick].nic.nstats = 0;
	c->slot[pick].fetched_ms = now;
}

int
ktls_nic_cache_query(struct ktls_nic_cache *c, int fd, struct ktls_nic *out,
    char *err, size_t errlen)
{
	unsigned ifindex = 0;
	long long now;
	int hit = 0;

	if (ktls_route_oif(fd, &ifindex, err, errlen) == -1) {
		ktls_nic_reset(out);
		return -1;
	}
	now = cache_now_ms();
	pthread_mutex_lock(&c->lock);
	if (now > 0)
		hit = cache_find(c, ifindex, now, out);
	if (hit)
		c->hits++;
	else
		c->misses++;
	pthread_mutex_unlock(&c->lock);
	if (hit) {
		if (err != NULL && errlen > 0)
			err[0] = '\0';
		return 0;
	}
	if (ktls_nic_query_ifindex(ifindex, out, err, errlen) == -1)
		return -1;
	if (now > 0) {
		pthread_mutex_lock(&c->lock);
		cache_store(c, out, now);
		pthread_mutex_unlock(&c->lock);
	}
	return 0;
}
