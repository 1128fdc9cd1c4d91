/*
 * hk_pool.h - the server's client threads: each serves one connection at
 * a time with blocking calls and then waits for the next, at most a
 * fixed number of connections at once; and the way to end them all at
 * shutdown. Never prints.
 *
 * All calls but the client function itself are the accept loop's: the
 * pool is not shared between threads otherwise.
 */
#ifndef HK_POOL_H
#define HK_POOL_H

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
 * Serves one client: fd (closed by it), the peer's name, and the flag
 * that, once set, asks it to end every blocked call and close (see
 * conn_set_interrupt). The flag is this thread's alone: hk_pool_stop sets
 * it, and so may anyone who must end this one client, then sending the
 * thread HK_POOL_SIGNAL (again until the client is gone: a signal that
 * lands between two calls is lost, though the next call sees the flag).
 * The thread then serves other clients: nobody may set the flag or
 * signal the thread for this client once the function has returned, and
 * the flag is cleared before its next client.
 */
typedef void hk_pool_fn(void *arg, int fd, const char *peer, atomic_int *stop);

struct hk_pool;

/* A pool for at most max clients at once; NULL when out of memory. */
struct hk_pool *hk_pool_new(int max, hk_pool_fn *fn, void *arg);

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
 * Join the threads that have ended; once no client has been there for
 * a second, end the waiting threads and give the memory of the last
 * burst back. Returns how
 * many clients are still being served. Call it at least once a second.
 */
int hk_pool_reap(struct hk_pool *p);

/*
 * Shutdown: wait up to grace seconds for the clients to finish, then
 * tell the rest to end (their blocked calls return; they send
 * close_notify and close) and wait up to 5 s more. Returns how many
 * threads are still running after that: the pool must then not be freed,
 * and the process should _exit.
 */
int hk_pool_stop(struct hk_pool *p, int grace);

void hk_pool_free(struct hk_pool *p);

#endif
