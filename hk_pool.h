/*
 * hk_pool.h - the server's client threads: each serves one connection at
 * a time with blocking calls and then waits for the next, at most a
 * fixed number of connections at once; a parking lot that holds idle
 * connections without a thread until they have something to read; and
 * the way to end them all at shutdown. Never prints.
 *
 * All calls but the client functions' own (hk_pool_park,
 * hk_pool_lot_thread, hk_pool_trim_stack) are the accept loop's: the
 * pool is not shared between threads otherwise.
 */
#ifndef HK_POOL_H
#define HK_POOL_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>

/*
 * The signal hk_pool_stop sends each thread to end its blocked call. The
 * program installs a handler for it without SA_RESTART before the pool
 * starts (a handler that does nothing is enough).
 */
#define HK_POOL_SIGNAL SIGUSR1

/*
 * Serves one client: fd (closed by it, unless it parks it: hk_pool_park),
 * the peer's name, and the flag that, once set, asks it to end every
 * blocked call and close (see conn_set_interrupt). The flag is this
 * connection's for its whole life, parked or not: hk_pool_stop sets it,
 * and so may anyone who must end this one client, then sending the
 * thread that holds the connection HK_POOL_SIGNAL (again until the
 * client is gone: a signal that lands between two calls is lost, though
 * the next call sees the flag). A parked connection is held by the
 * parking lot's thread (hk_pool_lot_thread). Nobody may set the flag or
 * signal a thread for this client once the connection has ended.
 */
typedef void hk_pool_fn(void *arg, int fd, const char *peer, atomic_int *stop);

/* Why a parked connection came back (hk_pool_resume_fn). */
enum hk_pool_wake {
	HK_POOL_READY,   /* readable, or the peer closed or failed */
	HK_POOL_TIMEOUT, /* its deadline passed */
	HK_POOL_STOPPED  /* its stop flag is set */
};

/*
 * A parked connection back on a thread of the pool: state as given to
 * hk_pool_park, why, and the connection's flag (the same as before). It
 * serves on as hk_pool_fn does, and may park again.
 */
typedef void hk_pool_resume_fn(void *arg, void *state, enum hk_pool_wake why,
    atomic_int *stop);

struct hk_pool;

/*
 * A pool for at most max clients at once, parked ones included, with
 * its parking lot's thread; NULL when out of memory or without a
 * thread. resume may be NULL when fn never parks.
 */
struct hk_pool *
hk_pool_new(int max, hk_pool_fn *fn, hk_pool_resume_fn *resume, void *arg);

/*
 * From a client's thread (hk_pool_fn or hk_pool_resume_fn): hand the
 * idle connection on fd to the parking lot, which holds it without a
 * thread until fd is readable (or the peer closed), deadline passes
 * (CLOCK_MONOTONIC milliseconds, 0: none) or its stop flag is set, then
 * gives state to hk_pool_resume_fn on some thread of the pool. Returns
 * 0: the connection is parked and the caller must return at once,
 * touching neither state nor fd again (it may already be resumed
 * elsewhere); or -1 (not a pool's thread, no room in epoll): the caller
 * still holds it.
 */
int hk_pool_park(int fd, long long deadline, void *state);

/*
 * From a client's thread: the parking lot's thread, which holds a
 * connection once parked (for HK_POOL_SIGNAL: it then looks at the stop
 * flags of the connections it holds). The caller's own thread if it is
 * not a pool's.
 */
pthread_t hk_pool_lot_thread(void);

/*
 * Hand fd to a waiting thread, or a new one. Returns 0, or -1 with a message when it
 * cannot (over the limit, or no thread), the caller still owning fd.
 */
int hk_pool_spawn(struct hk_pool *p, int fd, const char *peer, char *err,
    size_t errlen);

/*
 * From a client's thread, after its deepest work (the TLS handshake):
 * give the stack pages below the caller's frame back to the system.
 * Does nothing in a thread that is not a pool's.
 */
void hk_pool_trim_stack(void);

/*
 * Join the threads that have ended; once no thread has served a client
 * for a second, end the waiting threads and give the memory of the last
 * burst back. Returns how many clients are open, served or parked. Call
 * it at least once a second.
 */
int hk_pool_reap(struct hk_pool *p);

/*
 * Shutdown: wait up to grace seconds for the clients to finish, then
 * tell the rest to end (their blocked calls return, the parked ones are
 * resumed; they send close_notify and close) and wait up to 5 s more. Returns how many
 * threads are still running after that: the pool must then not be freed,
 * and the process should _exit.
 */
int hk_pool_stop(struct hk_pool *p, int grace);

/* Once no client is open (hk_pool_stop returned 0). */
void hk_pool_free(struct hk_pool *p);

#endif
