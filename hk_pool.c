/*
 * hk_pool.c - the server's client threads (hk_pool.h).
 *
 * A thread serves one client at a time and, when it is done, waits for
 * the next one instead of ending: creating a thread per connection costs
 * a clone, a fresh stack to fault in, and OpenSSL's per-thread state (its
 * random generators, error queue) built and torn down again, which
 * showed as scheduler and allocator time in profiles of short mTLS
 * connections. At most SPARE_THREADS wait; once no client has been there
 * for a second they end and the memory of the burst goes back.
 *
 * Each thread gets a stack of ours, so that the pool decides how much
 * memory stays mapped; and at shutdown a repeated SIGUSR1 with each
 * thread's stop flag set ends whatever call it is blocked in. The flag
 * is the thread's own, so that one client can be ended alone the same
 * way (hello_ktls_server's --reauthorize); it is cleared before the
 * thread takes its next client.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/mman.h>

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "hk_pool.h"

/* Deep enough for OpenSSL's handshake and our 16 KiB buffers, with room. */
#define THREAD_STACK (512 * 1024)
/*
 * Threads (and stacks) kept for the next clients: unmapping a stack per
 * connection costs a TLB shootdown on every CPU, which a VM makes
 * expensive.
 */
#define SPARE_THREADS 32
/* What `top -H` and /proc/PID/task/ show of a client's thread. */
#define THREAD_NAME "hk-client"
/*
 * hk_pool_trim_stack keeps this much stack below its caller's frame: the
 * frames of its own calls (madvise) must not be in what it discards;
 * they take a few hundred bytes.
 */
#define TRIM_MARGIN 4096
/* After the grace period: how long the threads get to end, in 50 ms ticks. */
#define STOP_TICKS 100

enum worker_state {
	W_BUSY, /* serving fd */
	W_IDLE, /* waiting for the next client */
	W_QUIT, /* told to end */
	W_GONE  /* ended: to be joined */
};

struct worker {
	struct hk_pool *pool;
	pthread_t tid;
	void *stack;
	pthread_cond_t wake; /* state left W_IDLE */
	enum worker_state state;
	int fd;
	atomic_int stop; /* this client must end now (hk_pool_fn) */
	char peer[64];
	struct worker *next;
};

struct hk_pool {
	hk_pool_fn *fn;
	void *arg;
	int max;
	pthread_mutex_t lock; /* the workers' states and the counts */
	struct worker *workers;
	int busy;
	int idle;
	void *spare[SPARE_THREADS]; /* stacks of joined threads, for reuse */
	int nspare;
	int dirty;         /* clients came and went since the last release */
	time_t idle_since; /* when the last client went */
};

static time_t
now_secs(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec;
}

struct hk_pool *
hk_pool_new(int max, hk_pool_fn *fn, void *arg)
{
	struct hk_pool *p;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	if (pthread_mutex_init(&p->lock, NULL) != 0) {
		free(p);
		return NULL;
	}
	p->max = max;
	p->fn = fn;
	p->arg = arg;
	return p;
}

/* This thread's stack when it is one of a pool's (hk_pool_trim_stack). */
static _Thread_local void *my_stack;

/* With the lock held: one client done; wait for the next, or end. */
static void
worker_rest(struct hk_pool *p, struct worker *w)
{
	if (--p->busy == 0)
		p->idle_since = now_secs();
	p->dirty = 1;
	if (p->idle >= SPARE_THREADS) {
		w->state = W_QUIT;
		return;
	}
	w->state = W_IDLE;
	p->idle++;
	while (w->state == W_IDLE)
		pthread_cond_wait(&w->wake, &p->lock);
	p->idle--;
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct hk_pool *p = w->pool;

	my_stack = w->stack;
	pthread_mutex_lock(&p->lock);
	while (w->state == W_BUSY) {
		pthread_mutex_unlock(&p->lock);
		p->fn(p->arg, w->fd, w->peer, &w->stop);
		pthread_mutex_lock(&p->lock);
		worker_rest(p, w);
	}
	w->state = W_GONE;
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

static void
stack_release(struct hk_pool *p, void *stack)
{
	if (p->nspare < SPARE_THREADS)
		p->spare[p->nspare++] = stack;
	else
		munmap(stack, THREAD_STACK);
}

/* A stack, reused or new; the lowest page is the guard. */
static void *
stack_get(struct hk_pool *p)
{
	void *stack;

	if (p->nspare > 0)
		return p->spare[--p->nspare];
	stack = mmap(NULL, THREAD_STACK, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (stack == MAP_FAILED)
		return NULL;
	if (mprotect(stack, (size_t)sysconf(_SC_PAGESIZE), PROT_NONE) < 0) {
		munmap(stack, THREAD_STACK);
		return NULL;
	}
	return stack;
}

static int
start_thread(struct hk_pool *p, struct worker *w)
{
	pthread_attr_t attr;
	sigset_t all, old;
	int err;

	if ((w->stack = stack_get(p)) == NULL)
		return errno;
	pthread_attr_init(&attr);
	pthread_attr_setstack(&attr, w->stack, THREAD_STACK);
	/* Process signals (SIGINT, SIGTERM) stay with the accept loop. */
	sigfillset(&all);
	sigdelset(&all, HK_POOL_SIGNAL);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	err = pthread_create(&w->tid, &attr, worker_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (err != 0) {
		stack_release(p, w->stack);
		return err;
	}
	pthread_setname_np(w->tid, THREAD_NAME);
	return 0;
}

/*
 * The stack a TLS handshake touched (some 20 kB: OpenSSL's frames go
 * deep) stays resident while the client idles in shallow calls: give
 * back what lies below the caller's frame, less a margin. Below the
 * stack pointer nothing is live, so the pages are simply zero-filled
 * again when a deep call comes.
 */
void
hk_pool_trim_stack(void)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	char *lo, *top;

	if (my_stack == NULL)
		return;
	lo = (char *)my_stack + page; /* above the guard page */
	top = (char *)__builtin_frame_address(0) - TRIM_MARGIN;
	top -= (uintptr_t)top & (page - 1);
	if (top > lo)
		madvise(lo, (size_t)(top - lo), MADV_DONTNEED);
}

/* With the lock held: give fd to a waiting thread; 0 if none waits. */
static int
hand_over(struct hk_pool *p, int fd, const char *peer)
{
	struct worker *w;

	for (w = p->workers; w != NULL; w = w->next) {
		if (w->state != W_IDLE)
			continue;
		w->fd = fd;
		snprintf(w->peer, sizeof(w->peer), "%s", peer);
		/* Whoever ended the last client is done with this flag. */
		atomic_store(&w->stop, 0);
		w->state = W_BUSY;
		p->busy++;
		pthread_cond_signal(&w->wake);
		return 1;
	}
	return 0;
}

static int
spawn_new(struct hk_pool *p, int fd, const char *peer, char *err, size_t errlen)
{
	struct worker *w;
	int e;

	if ((w = calloc(1, sizeof(*w))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if ((e = pthread_cond_init(&w->wake, NULL)) != 0) {
		snprintf(err, errlen, "cannot start a thread: %s", strerror(e));
		free(w);
		return -1;
	}
	w->pool = p;
	w->fd = fd;
	w->state = W_BUSY;
	snprintf(w->peer, sizeof(w->peer), "%s", peer);
	pthread_mutex_lock(&p->lock);
	p->busy++;
	w->next = p->workers;
	p->workers = w;
	if ((e = start_thread(p, w)) != 0) {
		p->workers = w->next;
		p->busy--;
		pthread_mutex_unlock(&p->lock);
		snprintf(err, errlen, "cannot start a thread: %s", strerror(e));
		pthread_cond_destroy(&w->wake);
		free(w);
		return -1;
	}
	pthread_mutex_unlock(&p->lock);
	return 0;
}

int
hk_pool_spawn(struct hk_pool *p, int fd, const char *peer, char *err,
    size_t errlen)
{
	int n = hk_pool_reap(p);

	if (n >= p->max) {
		snprintf(err, errlen, "%d connections open (--max-connections)",
		    n);
		return -1;
	}
	pthread_mutex_lock(&p->lock);
	if (hand_over(p, fd, peer)) {
		pthread_mutex_unlock(&p->lock);
		return 0;
	}
	pthread_mutex_unlock(&p->lock);
	return spawn_new(p, fd, peer, err, errlen);
}

/* With the lock held: tell the waiting threads to end. */
static void
quit_idle(struct hk_pool *p)
{
	struct worker *w;

	for (w = p->workers; w != NULL; w = w->next)
		if (w->state == W_IDLE) {
			w->state = W_QUIT;
			pthread_cond_signal(&w->wake);
		}
}

/* With the lock held: unlink the ended threads; returns them, linked. */
static struct worker *
take_gone(struct hk_pool *p)
{
	struct worker **pp = &p->workers, *w, *gone = NULL;

	while ((w = *pp) != NULL) {
		if (w->state == W_GONE) {
			*pp = w->next;
			w->next = gone;
			gone = w;
		} else
			pp = &w->next;
	}
	return gone;
}

/*
 * Once no client has been connected for a second, give the memory of
 * the last burst back to the system: the waiting threads end (with the
 * lock held: the next reap joins them), then, once they are gone, their
 * stacks and what glibc keeps in its arena. Not sooner: clients that
 * come one after another would pay for it each time. Returns 1 when the
 * memory is to go now.
 */
static int
idle_release(struct hk_pool *p)
{
	if (!p->dirty || p->busy > 0 || now_secs() - p->idle_since < 1)
		return 0;
	if (p->workers != NULL) {
		quit_idle(p);
		return 0;
	}
	p->dirty = 0;
	return 1;
}

int
hk_pool_reap(struct hk_pool *p)
{
	struct worker *gone, *w;
	int busy, release;

	pthread_mutex_lock(&p->lock);
	gone = take_gone(p);
	busy = p->busy;
	release = idle_release(p);
	pthread_mutex_unlock(&p->lock);
	while ((w = gone) != NULL) {
		gone = w->next;
		pthread_join(w->tid, NULL);
		stack_release(p, w->stack);
		pthread_cond_destroy(&w->wake);
		free(w);
	}
	if (release) {
		while (p->nspare > 0)
			munmap(p->spare[--p->nspare], THREAD_STACK);
#ifdef __GLIBC__
		malloc_trim(0);
#endif
	}
	return busy;
}

/* Signal every thread still serving a client, with its stop flag set. */
static void
kick_busy(struct hk_pool *p, int stop)
{
	struct worker *w;

	pthread_mutex_lock(&p->lock);
	for (w = p->workers; w != NULL; w = w->next) {
		if (w->state != W_BUSY)
			continue;
		if (stop)
			atomic_store(&w->stop, 1);
		else
			pthread_kill(w->tid, HK_POOL_SIGNAL);
	}
	pthread_mutex_unlock(&p->lock);
}

/*
 * The signal is repeated because one that lands between two calls of a
 * thread is lost; the stop flag makes the next call end at once anyway,
 * but a thread may be blocked in one that started just before.
 */
int
hk_pool_stop(struct hk_pool *p, int grace)
{
	struct timespec nap = { .tv_sec = 0, .tv_nsec = 50 * 1000 * 1000 };
	int ticks;

	for (ticks = 0; hk_pool_reap(p) > 0 && ticks < grace * 20; ticks++)
		nanosleep(&nap, NULL);
	kick_busy(p, 1);
	for (ticks = 0; hk_pool_reap(p) > 0 && ticks < STOP_TICKS; ticks++) {
		kick_busy(p, 0);
		nanosleep(&nap, NULL);
	}
	return hk_pool_reap(p);
}

void
hk_pool_free(struct hk_pool *p)
{
	struct timespec nap = { .tv_sec = 0, .tv_nsec = 10 * 1000 * 1000 };
	int left;

	if (p == NULL)
		return;
	/* Only once no client is served (hk_pool_stop): end the waiting. */
	for (;;) {
		pthread_mutex_lock(&p->lock);
		quit_idle(p);
		left = p->workers != NULL;
		pthread_mutex_unlock(&p->lock);
		hk_pool_reap(p);
		if (!left)
			break;
		nanosleep(&nap, NULL);
	}
	while (p->nspare > 0)
		munmap(p->spare[--p->nspare], THREAD_STACK);
	pthread_mutex_destroy(&p->lock);
	free(p);
}
