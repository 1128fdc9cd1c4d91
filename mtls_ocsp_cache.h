/*
 * mtls_ocsp_cache.h - the OCSP answers the server keeps (mtls_ocsp.c),
 * by OCSP cert id, shared by its client threads: a bounded table, the
 * oldest entry dropped first, in which a query in flight is one entry
 * that other threads wait on.
 */
#ifndef MTLS_OCSP_CACHE_H
#define MTLS_OCSP_CACHE_H

#include <pthread.h>

#include "mtls.h"

/* What a responder said of one certificate, or why it said nothing. */
struct ocsp_answer {
	int status; /* V_OCSP_CERTSTATUS_*, or -1: no usable answer */
	char this_update[32], next_update[32];
	char why[MTLS_REASON_MAX];
};

#define OCSP_KEY_LEN 32 /* SHA-256 of the DER cert id */

struct ocsp_cache;

/*
 * A condition variable whose timed waits count on CLOCK_MONOTONIC, as
 * the OCSP deadlines do: a step of the wall clock changes nothing.
 */
void ocsp_cond_init(pthread_cond_t *cv);

/* An empty cache of at most max entries; NULL out of memory. */
struct ocsp_cache *ocsp_cache_new(size_t max);
void ocsp_cache_free(struct ocsp_cache *c);

enum ocsp_cache_get {
	OCSP_CACHE_HIT,   /* *a is a kept answer, or another thread's */
	OCSP_CACHE_ASK,   /* ask, then ocsp_cache_put; others wait for it */
	OCSP_CACHE_WAITED /* another thread's query took over wait secs */
};

/*
 * The answer kept for key, or the turn to ask. When another thread is
 * asking, wait up to wait seconds for its answer. No lock is held on
 * return.
 */
enum ocsp_cache_get ocsp_cache_get(struct ocsp_cache *c,
    const unsigned char *key, int wait, struct ocsp_answer *a);

/*
 * After OCSP_CACHE_ASK: keep a for ttl seconds (0: not at all) and wake
 * the threads waiting for it.
 */
void ocsp_cache_put(struct ocsp_cache *c, const unsigned char *key,
    const struct ocsp_answer *a, long ttl);

#endif
