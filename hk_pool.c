/*
 * hk_pool.c - a thread per client (hk_pool.h).
 *
 * Each thread gets a stack of ours, so that the pool decides how much
 * memory stays mapped after a burst of clients; and at shutdown a
 * repeated SIGUSR1 with each thread's stop flag set ends whatever call
 * it is blocked in. The flag is the thread's own, so that one client can
 * be ended alone the same way (hello_ktls_server's --reauthorize).
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
 * Stacks kept for the next clients: unmapping one per connection costs
 * a TLB shootdown on every CPU, which a VM makes expensive.
 */
#define SPARE_STACKS 32
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

struct worker {
	struct hk_pool *pool;
	pthread_t tid;
	void *stack;
	int fd;
	atomic_int done;
	atomic_int stop; /* this client must end now (hk_pool_fn) */
	char peer[64];
	struct worker *next;
};

struct hk_pool {
	hk_pool_fn *fn;
	void *arg;
	int max;
	struct worker *workers;
	int n;
	void *spare[SPARE_STACKS]; /* stacks of joined threads, for reuse */
	int nspare;
	int dirty;         /* clients came and went since the last release */
	time_t idle_since; /* when the last client went */
};

struct hk_pool *
hk_pool_new(int max, hk_pool_fn *fn, void *arg)
{
	struct hk_pool *p;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	p->max = max;
	p->fn = fn;
	p->arg = arg;
	return p;
}

/* This thread's stack when it is one of a pool's (hk_pool_trim_stack). */
static _Thread_local void *my_stack;

static void *
worker_main(void *arg)
{
	struct worker *w = arg;

	my_stack = w->stack;
	w->pool->fn(w->pool->arg, w->fd, w->peer, &w->stop);
	atomic_store(&w->done, 1);
	return NULL;
}

static void
stack_release(struct hk_pool *p, void *stack)
{
	if (p->nspare < SPARE_STACKS)
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

int
hk_pool_spawn(struct hk_pool *p, int fd, const char *peer, char *err,
    size_t errlen)
{
	struct worker *w;
	int e;

	if (hk_pool_reap(p) >= p->max) {
		snprintf(err, errlen, "%d connections open (--max-connections)",
		    p->n);
		return -1;
	}
	if ((w = calloc(1, sizeof(*w))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	w->pool = p;
	w->fd = fd;
	snprintf(w->peer, sizeof(w->peer), "%s", peer);
	if ((e = start_thread(p, w)) != 0) {
		snprintf(err, errlen, "cannot start a thread: %s", strerror(e));
		free(w);
		return -1;
	}
	w->next = p->workers;
	p->workers = w;
	p->n++;
	return 0;
}

static time_t
now_secs(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec;
}

/*
 * Once no client has been connected for a second, give the memory of
 * the last burst back to the system: the spare stacks, and what glibc
 * keeps in its arena. Not sooner: clients that come one after another
 * would pay for it each time.
 */
static void
idle_release(struct hk_pool *p)
{
	if (!p->dirty || p->n > 0 || now_secs() - p->idle_since < 1)
		return;
	p->dirty = 0;
	while (p->nspare > 0)
		munmap(p->spare[--p->nspare], THREAD_STACK);
#ifdef __GLIBC__
	malloc_trim(0);
#endif
}

int
hk_pool_reap(struct hk_pool *p)
{
	struct worker **pp = &p->workers, *w;

	while ((w = *pp) != NULL) {
		if (atomic_load(&w->done)) {
			pthread_join(w->tid, NULL);
			*pp = w->next;
			stack_release(p, w->stack);
			free(w);
			if (--p->n == 0)
				p->idle_since = now_secs();
			p->dirty = 1;
		} else
			pp = &w->next;
	}
	idle_release(p);
	return p->n;
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
	struct worker *w;
	int ticks;

	for (ticks = 0; hk_pool_reap(p) > 0 && ticks < grace * 20; ticks++)
		nanosleep(&nap, NULL);
	for (w = p->workers; w != NULL; w = w->next)
		atomic_store(&w->stop, 1);
	for (ticks = 0; hk_pool_reap(p) > 0 && ticks < STOP_TICKS; ticks++) {
		for (w = p->workers; w != NULL; w = w->next)
			pthread_kill(w->tid, HK_POOL_SIGNAL);
		nanosleep(&nap, NULL);
	}
	return p->n;
}

void
hk_pool_free(struct hk_pool *p)
{
	if (p == NULL)
		return;
	hk_pool_reap(p);
	while (p->nspare > 0)
		munmap(p->spare[--p->nspare], THREAD_STACK);
	free(p);
}
