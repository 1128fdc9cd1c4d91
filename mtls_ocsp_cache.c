/*
 * mtls_ocsp_cache.c - the OCSP answers the server keeps: a hash table by
 * cert id, entries in a list from the oldest, all under one mutex that
 * is never held during a query (the caller asks between
 * ocsp_cache_get and ocsp_cache_put). An entry being asked for is
 * marked pending; the threads that want it meanwhile wait on a condition
 * variable instead of asking again.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mtls_ocsp_cache.h"

#define BUCKETS 4096 /* a power of 2 */

struct entry {
	unsigned char key[OCSP_KEY_LEN];
	struct entry *chain; /* the next in its bucket */
	struct entry *older, *newer;
	int pending; /* a query is on the network for it */
	int waiters; /* threads waiting for that query: not evicted */
	time_t expires;
	struct ocsp_answer a;
};

struct ocsp_cache {
	pthread_mutex_t lock;
	pthread_cond_t done; /* a pending entry got its answer */
	struct entry *buckets[BUCKETS];
	struct entry *oldest, *newest;
	size_t count, max;
};

static time_t
now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

void
ocsp_cond_init(pthread_cond_t *cv)
{
	pthread_condattr_t ca;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(cv, &ca);
	pthread_condattr_destroy(&ca);
}

struct ocsp_cache *
ocsp_cache_new(size_t max)
{
	struct ocsp_cache *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->max = max;
	pthread_mutex_init(&c->lock, NULL);
	ocsp_cond_init(&c->done);
	return c;
}

void
ocsp_cache_free(struct ocsp_cache *c)
{
	struct entry *e, *next;

	if (c == NULL)
		return;
	for (e = c->oldest; e != NULL; e = next) {
		next = e->newer;
		free(e);
	}
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->done);
	free(c);
}

/* --- called with c->lock held --- */

static struct entry **
bucket(struct ocsp_cache *c, const unsigned char *key)
{
	return &c->buckets[(key[0] | key[1] << 8) & (BUCKETS - 1)];
}

static struct entry *
find(struct ocsp_cache *c, const unsigned char *key)
{
	struct entry *e;

	for (e = *bucket(c, key); e != NULL; e = e->chain)
		if (memcmp(e->key, key, sizeof(e->key)) == 0)
			return e;
	return NULL;
}

static void
fifo_unlink(struct ocsp_cache *c, struct entry *e)
{
	if (e->older != NULL)
		e->older->newer = e->newer;
	else
		c->oldest = e->newer;
	if (e->newer != NULL)
		e->newer->older = e->older;
	else
		c->newest = e->older;
	e->older = e->newer = NULL;
}

static void
fifo_push(struct ocsp_cache *c, struct entry *e)
{
	e->older = c->newest;
	if (c->newest != NULL)
		c->newest->newer = e;
	else
		c->oldest = e;
	c->newest = e;
}

/* The oldest entry no thread uses goes; in use, all of them stay. */
static void
evict(struct ocsp_cache *c)
{
	struct entry *e, **p;

	for (e = c->oldest; e != NULL && (e->pending || e->waiters);
	     e = e->newer)
		;
	if (e == NULL)
		return;
	for (p = bucket(c, e->key); *p != e; p = &(*p)->chain)
		;
	*p = e->chain;
	fifo_unlink(c, e);
	free(e);
	c->count--;
}

static struct entry *
add(struct ocsp_cache *c, const unsigned char *key)
{
	struct entry *e, **b;

	if (c->count >= c->max)
		evict(c);
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return NULL;
	memcpy(e->key, key, sizeof(e->key));
	b = bucket(c, key);
	e->chain = *b;
	*b = e;
	fifo_push(c, e);
	c->count++;
	return e;
}

/* Wait for another thread's query of e; 0 with its answer, or -1. */
static int
wait_for(struct ocsp_cache *c, struct entry *e, int secs, struct ocsp_answer *a)
{
	struct timespec deadline;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += secs;
	e->waiters++;
	while (e->pending &&
	    pthread_cond_timedwait(&c->done, &c->lock, &deadline) == 0)
		;
	e->waiters--;
	if (e->pending)
		return -1;
	*a = e->a;
	return 0;
}

/* --- the interface --- */

enum ocsp_cache_get
ocsp_cache_get(struct ocsp_cache *c, const unsigned char *key, int wait,
    struct ocsp_answer *a)
{
	enum ocsp_cache_get ret = OCSP_CACHE_HIT;
	struct entry *e;

	pthread_mutex_lock(&c->lock);
	e = find(c, key);
	if (e != NULL && e->pending) {
		if (wait_for(c, e, wait, a) < 0)
			ret = OCSP_CACHE_WAITED;
	} else if (e != NULL && e->expires > now_mono())
		*a = e->a;
	else {
		/* Out of memory, it is asked all the same, not kept. */
		if (e == NULL)
			e = add(c, key);
		if (e != NULL) {
			e->pending = 1;
			fifo_unlink(c, e);
			fifo_push(c, e);
		}
		ret = OCSP_CACHE_ASK;
	}
	pthread_mutex_unlock(&c->lock);
	return ret;
}

void
ocsp_cache_put(struct ocsp_cache *c, const unsigned char *key,
    const struct ocsp_answer *a, long ttl)
{
	struct entry *e;

	pthread_mutex_lock(&c->lock);
	/* Pending, so still there (never evicted), unless it never was. */
	if ((e = find(c, key)) != NULL && e->pending) {
		e->a = *a;
		e->expires = now_mono() + ttl;
		e->pending = 0;
		pthread_cond_broadcast(&c->done);
	}
	pthread_mutex_unlock(&c->lock);
}
