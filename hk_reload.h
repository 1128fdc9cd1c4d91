/*
 * hk_reload.h - the server's identity set (certificate and key, CA
 * bundle, CRLs, OCSP staple, policy) and its live reload: the directories
 * of those files watched (inotify), a quiet moment waited for, the whole
 * set built again and checked, and swapped in for new connections at
 * once; a broken set keeps the old one (hk_reload.c). Never prints: the
 * server says what each step returns.
 *
 * Threads: the accept loop owns the reloader (every call but those
 * marked "any thread"); client threads take the current set and, for
 * --reauthorize, put their connection on its list.
 */
#ifndef HK_RELOAD_H
#define HK_RELOAD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "hk_config.h"
#include "mtls_policy.h"

/*
 * One generation of the configuration: what new connections are served
 * with. A connection holds a reference for its whole life (its policy
 * decision points into the policy), so an old set is freed when the last
 * connection served with it ends.
 */
struct hk_set {
	unsigned long long generation; /* 1 at start, +1 per reload */
	SSL_CTX *ctx;
	struct mtls_policy *policy; /* NULL: no --policy */
	atomic_int refs;
	unsigned char digest[32]; /* of every file: tells "nothing changed" */
};

struct hk_reload;

/*
 * The reloader for cfg, with generation 1 made of ctx and policy (taken
 * over, also on failure), and inotify watches on the directories of
 * every file cfg names. NULL with one line in err.
 */
struct hk_reload *hk_reload_new(const struct hk_config *cfg, SSL_CTX *ctx,
    struct mtls_policy *policy, char *err, size_t errlen);

void hk_reload_free(struct hk_reload *r);

/* Any thread: the current set, with a reference for the caller. */
struct hk_set *hk_reload_acquire(struct hk_reload *r);

/* Any thread: drop a reference; the last one frees the set. */
void hk_set_release(struct hk_set *s);

/*
 * What the current set is, in one line: "certificate CN=..., serial ...,
 * expires ...; CA FILE (N certificates); N CRLs; policy FILE (N rules)".
 */
void hk_reload_describe(struct hk_reload *r, char *buf, size_t len);

/*
 * The checks a reload adds to the loaders': our certificate is valid now
 * and chains to the CA bundle. 0, or -1 with why in err (the server
 * warns at start: a reload would refuse such a set).
 */
int hk_reload_check_current(struct hk_reload *r, char *err, size_t errlen);

/* The inotify descriptor, for the accept loop's poll (-1: none). */
int hk_reload_fd(const struct hk_reload *r);

/* How long the accept loop may wait: at most longest ms. */
int hk_reload_wait_ms(const struct hk_reload *r, int longest);

/* After poll: read the watch's events; a relevant one starts the wait. */
void hk_reload_events(struct hk_reload *r);

/* SIGHUP: reload at the next hk_reload_step, without waiting. */
void hk_reload_request(struct hk_reload *r);

enum hk_reload_result {
	HK_RELOAD_NONE,        /* nothing due */
	HK_RELOAD_OK,          /* a new generation: msg describes it */
	HK_RELOAD_SAME,        /* the files are what the set was made of */
	HK_RELOAD_FAILED,      /* the old set stays: msg says why */
	HK_RELOAD_FAILED_SAME, /* failed for the reason said last time */
};

/*
 * If a reload is due (the quiet time after the last relevant event has
 * passed, or hk_reload_request): build the whole set as at start, check
 * it, and on success swap it in, keeping the ticket keys (a client
 * resumes across a reload unless the CRLs or policy changed: see
 * mtls_set_generation). msg gets the line to print.
 */
enum hk_reload_result
hk_reload_step(struct hk_reload *r, char *msg, size_t len);

/*
 * --reauthorize: an open connection on the reloader's list. Filled by
 * hk_reload_conn_add; why is set (under the list's lock, before *stop)
 * when a reload refused its client.
 */
struct hk_reload_conn {
	X509 *peer;            /* the client's certificate (a reference) */
	unsigned long long id; /* unique among the entries ever listed */
	atomic_int *stop;
	pthread_t thread;
	char why[MTLS_POLICY_REASON_MAX + 32];
	struct hk_reload_conn *prev, *next;
};

/*
 * Any thread: the calling thread's connection, whose client is peer and
 * which ends when *stop is set and the thread that holds it (this one
 * until hk_reload_conn_thread says another) gets HK_POOL_SIGNAL.
 */
void hk_reload_conn_add(struct hk_reload *r, struct hk_reload_conn *c,
    X509 *peer, atomic_int *stop);

/*
 * Any thread: the thread that now holds c's connection (a parked one's
 * is the pool's lot; hk_pool.h), the one to signal from now on.
 */
void hk_reload_conn_thread(struct hk_reload *r, struct hk_reload_conn *c,
    pthread_t thread);

/*
 * Any thread: off the list, before the thread ends; then c->why (""
 * unless a reload ended it) can be read without a lock.
 */
void hk_reload_conn_remove(struct hk_reload *r, struct hk_reload_conn *c);

/*
 * After HK_RELOAD_OK: every listed connection's client checked against
 * the new set (its certificate verified with the new CRLs, the new
 * policy's decision); those refused get why, *stop and the signal.
 * Returns how many were refused, -1 when out of memory; *open says how
 * many were checked. May block on --ocsp queries, but never holds up
 * the listed connections meanwhile (they may end, and others be listed).
 */
int hk_reload_reauthorize(struct hk_reload *r, int *open);

/*
 * The signal again to refused connections still there (one may have
 * landed between two of the thread's calls); call once a second or so.
 */
void hk_reload_kick(struct hk_reload *r);

/* Any thread: for a metrics endpoint. */
struct hk_reload_counts {
	unsigned long long generation; /* the current set's */
	unsigned long long ok, failed; /* reloads since start */
};
void hk_reload_counts(const struct hk_reload *r, struct hk_reload_counts *out);

#endif
