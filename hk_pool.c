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
 * client's stop flag set ends whatever call it is blocked in. The flag
 * is the connection's own, so that one client can be ended alone the
 * same way (hello_ktls_server's --reauthorize).
 *
 * An idle connection need not hold a thread (its stack, glibc's
 * per-thread cache, OpenSSL's per-thread state: some 30 kB): the client
 * function parks it (hk_pool_park) and the thread takes the next client.
 * The parking lot's one thread waits in epoll for all of them and hands
 * each, once readable, past its deadline or told to stop, back to a
 * thread. The open count (--max-connections, the shutdown's drain) is
 * of connections, parked ones included.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/epoll.h>
#include <sys/eventfd.h>
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
/* ... and of the parking lot's (not a client's: tests count those). */
#define LOT_NAME "hk-parked"
/*
 * hk_pool_trim_stack keeps this much stack below its caller's frame: the
 * frames of its own calls (madvise) must not be in what it discards;
 * they take a few hundred bytes.
 */
#define TRIM_MARGIN 4096
/* After the grace period: how long the threads get to end, in 50 ms ticks. */
#define STOP_TICKS 100

enum worker_state {
	W_BUSY, /* serving job */
	W_IDLE, /* waiting for the next client */
	W_QUIT, /* told to end */
	W_GONE  /* ended: to be joined */
};

/* One connection, from hk_pool_spawn until its function returns unparked. */
struct job {
	int fd;
	char peer[64];
	atomic_int stop;    /* this client must end now (hk_pool_fn) */
	void *state;        /* hk_pool_park's */
	long long deadline; /* hk_pool_park's, 0: none */
	enum hk_pool_wake why;
	int resumed;             /* hk_pool_resume_fn next, not hk_pool_fn */
	struct job *prev, *next; /* the lot's, or the ready queue (next) */
};

struct worker {
	struct hk_pool *pool;
	pthread_t tid;
	void *stack;
	pthread_cond_t wake; /* state left W_IDLE */
	enum worker_state state;
	struct job *job; /* W_BUSY: what it serves; NULL once parked */
	int parked;      /* its function parked the job */
	struct worker *next;
};

struct hk_pool {
	hk_pool_fn *fn;
	hk_pool_resume_fn *resume;
	void *arg;
	int max;
	pthread_mutex_t lock; /* all below but the spare stacks' release */
	struct worker *workers;
	int busy;
	int idle;
	int open; /* connections: served, parked, or waiting for a thread */
	void *spare[SPARE_THREADS]; /* stacks of joined threads, for reuse */
	int nspare;
	int dirty;            /* clients came and went since the last release */
	long long idle_since; /* when the last thread went idle (ms) */
	/* The parking lot: its thread waits in epoll for the parked. */
	int epfd, evfd; /* evfd: wakes it (a park, a stop, the end) */
	pthread_t lot;
	int lot_quit;
	int scan_stop;           /* look at the parked jobs' stop flags */
	long long next_deadline; /* the earliest parked one's, 0: none */
	struct job *parked;
	struct job *ready, *ready_tail; /* resumed, no thread yet */
};

static long long
now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void *lot_main(void *arg);

/* Its thread starts with every signal blocked; epoll_pwait lets ours in. */
static int
lot_start(struct hk_pool *p)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	sigset_t all, old;
	int err;

	if ((p->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
		return -1;
	if ((p->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0 ||
	    epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->evfd, &ev) < 0) {
		if (p->evfd >= 0)
			close(p->evfd);
		close(p->epfd);
		return -1;
	}
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	err = pthread_create(&p->lot, NULL, lot_main, p);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err != 0) {
		close(p->evfd);
		close(p->epfd);
		return -1;
	}
	pthread_setname_np(p->lot, LOT_NAME);
	return 0;
}

struct hk_pool *
hk_pool_new(int max, hk_pool_fn *fn, hk_pool_resume_fn *resume, void *arg)
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
	p->resume = resume;
	p->arg = arg;
	if (lot_start(p) < 0) {
		pthread_mutex_destroy(&p->lock);
		free(p);
		return NULL;
	}
	return p;
}

/* This thread's stack when it is one of a pool's (hk_pool_trim_stack). */
static _Thread_local void *my_stack;

/* This thread's worker when it is one of a pool's (hk_pool_park). */
static _Thread_local struct worker *my_worker;

/* With the lock held: the oldest resumed job still without a thread. */
static struct job *
ready_pop(struct hk_pool *p)
{
	struct job *j = p->ready;

	if (j != NULL && (p->ready = j->next) == NULL)
		p->ready_tail = NULL;
	return j;
}

/*
 * With the lock held: one client done (or parked); a resumed one that
 * waits for a thread is next, else wait for the next client, or end.
 */
static void
worker_rest(struct hk_pool *p, struct worker *w)
{
	p->dirty = 1;
	if ((w->job = ready_pop(p)) != NULL)
		return;
	if (--p->busy == 0)
		p->idle_since = now_ms();
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
	struct job *j;

	my_stack = w->stack;
	my_worker = w;
	pthread_mutex_lock(&p->lock);
	while (w->state == W_BUSY) {
		j = w->job;
		pthread_mutex_unlock(&p->lock);
		if (j->resumed)
			p->resume(p->arg, j->state, j->why, &j->stop);
		else
			p->fn(p->arg, j->fd, j->peer, &j->stop);
		pthread_mutex_lock(&p->lock);
		/* Parked, j is the lot's (and maybe resumed already). */
		if (w->parked)
			w->parked = 0;
		else {
			free(j);
			p->open--;
		}
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
	/*
	 * Process signals (SIGINT, SIGTERM) stay with the accept loop; ours
	 * gets through, also to a thread the lot (which blocks it) starts.
	 */
	sigfillset(&all);
	sigdelset(&all, HK_POOL_SIGNAL);
	pthread_sigmask(SIG_SETMASK, &all, &old);
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

/* With the lock held: a new thread for j; 0 or an errno. */
static int
spawn_new(struct hk_pool *p, struct job *j)
{
	struct worker *w;
	int e;

	if ((w = calloc(1, sizeof(*w))) == NULL)
		return ENOMEM;
	if ((e = pthread_cond_init(&w->wake, NULL)) != 0) {
		free(w);
		return e;
	}
	w->pool = p;
	w->job = j;
	w->state = W_BUSY;
	if ((e = start_thread(p, w)) != 0) {
		pthread_cond_destroy(&w->wake);
		free(w);
		return e;
	}
	p->busy++;
	w->next = p->workers;
	p->workers = w;
	return 0;
}

/* With the lock held: j to a waiting thread, or a new one; 0 or an errno. */
static int
give(struct hk_pool *p, struct job *j)
{
	struct worker *w;

	for (w = p->workers; w != NULL; w = w->next) {
		if (w->state != W_IDLE)
			continue;
		w->job = j;
		w->state = W_BUSY;
		p->busy++;
		pthread_cond_signal(&w->wake);
		return 0;
	}
	return spawn_new(p, j);
}

int
hk_pool_spawn(struct hk_pool *p, int fd, const char *peer, char *err,
    size_t errlen)
{
	int n = hk_pool_reap(p), e;
	struct job *j;

	if (n >= p->max) {
		snprintf(err, errlen, "%d connections open (--max-connections)",
		    n);
		return -1;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	j->fd = fd;
	snprintf(j->peer, sizeof(j->peer), "%s", peer);
	pthread_mutex_lock(&p->lock);
	if ((e = give(p, j)) == 0)
		p->open++;
	pthread_mutex_unlock(&p->lock);
	if (e != 0) {
		snprintf(err, errlen, "cannot start a thread: %s", strerror(e));
		free(j);
		return -1;
	}
	return 0;
}

static void
lot_wake(struct hk_pool *p)
{
	uint64_t one = 1;

	if (write(p->evfd, &one, sizeof(one)) < 0) {
		/* Full (it never is: the lot reads it): it wakes anyway. */
	}
}

int
hk_pool_park(int fd, long long deadline, void *state)
{
	struct worker *w = my_worker;
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP };
	struct hk_pool *p;
	struct job *j;
	int wake = 0;

	if (w == NULL || (j = w->job) == NULL || w->pool->resume == NULL)
		return -1;
	p = w->pool;
	ev.data.ptr = j;
	pthread_mutex_lock(&p->lock);
	if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		pthread_mutex_unlock(&p->lock);
		return -1;
	}
	j->fd = fd;
	j->state = state;
	j->deadline = deadline;
	j->prev = NULL;
	if ((j->next = p->parked) != NULL)
		p->parked->prev = j;
	p->parked = j;
	/* An earlier deadline than the lot waits for; a stop it missed. */
	if (deadline != 0 &&
	    (p->next_deadline == 0 || deadline < p->next_deadline)) {
		p->next_deadline = deadline;
		wake = 1;
	}
	if (atomic_load(&j->stop)) {
		p->scan_stop = 1;
		wake = 1;
	}
	w->job = NULL;
	w->parked = 1;
	pthread_mutex_unlock(&p->lock);
	if (wake)
		lot_wake(p);
	return 0;
}

pthread_t
hk_pool_lot_thread(void)
{
	return my_worker != NULL ? my_worker->pool->lot : pthread_self();
}

/*
 * With the lock held: j leaves the lot for a thread; when none can be
 * started, it waits for the next thread that finishes a client (or
 * hk_pool_reap).
 */
static void
unpark(struct hk_pool *p, struct job *j, enum hk_pool_wake why)
{
	epoll_ctl(p->epfd, EPOLL_CTL_DEL, j->fd, NULL);
	if (j->prev != NULL)
		j->prev->next = j->next;
	else
		p->parked = j->next;
	if (j->next != NULL)
		j->next->prev = j->prev;
	j->why = why;
	j->resumed = 1;
	j->next = NULL;
	if (give(p, j) == 0)
		return;
	if (p->ready_tail != NULL)
		p->ready_tail->next = j;
	else
		p->ready = j;
	p->ready_tail = j;
}

/*
 * With the lock held: resume the parked jobs whose stop flag is set
 * (when one may be: scan_stop) or whose deadline has passed (when the
 * earliest has). Returns the epoll timeout until the next deadline.
 */
static int
lot_sweep(struct hk_pool *p)
{
	long long now = now_ms(), next = 0;
	struct job *j, *nx;

	if (p->scan_stop ||
	    (p->next_deadline != 0 && now >= p->next_deadline)) {
		p->scan_stop = 0;
		for (j = p->parked; j != NULL; j = nx) {
			nx = j->next;
			if (atomic_load(&j->stop))
				unpark(p, j, HK_POOL_STOPPED);
			else if (j->deadline != 0 && now >= j->deadline)
				unpark(p, j, HK_POOL_TIMEOUT);
			else if (j->deadline != 0 &&
			    (next == 0 || j->deadline < next))
				next = j->deadline;
		}
		p->next_deadline = next;
	}
	if (p->next_deadline == 0)
		return -1;
	return p->next_deadline - now > INT_MAX ? INT_MAX :
						  (int)(p->next_deadline - now);
}

/*
 * The parking lot: one epoll for every parked connection. HK_POOL_SIGNAL
 * is let in only while it waits, so one sent for a stop flag (by
 * hk_pool_stop, or --reauthorize) is never lost between the look at the
 * flags and the wait.
 */
static void *
lot_main(void *arg)
{
	struct hk_pool *p = arg;
	struct epoll_event ev[64];
	sigset_t mask;
	uint64_t n;
	int i, k, timeout;

	sigfillset(&mask);
	sigdelset(&mask, HK_POOL_SIGNAL);
	pthread_mutex_lock(&p->lock);
	while (!p->lot_quit) {
		timeout = lot_sweep(p);
		pthread_mutex_unlock(&p->lock);
		k = epoll_pwait(p->epfd, ev, 64, timeout, &mask);
		pthread_mutex_lock(&p->lock);
		if (k < 0) /* the signal: a stop flag was set */
			p->scan_stop = 1;
		for (i = 0; i < k; i++) {
			if (ev[i].data.ptr == NULL) {
				if (read(p->evfd, &n, sizeof(n)) < 0)
					continue; /* another wake read it */
			} else
				unpark(p, ev[i].data.ptr, HK_POOL_READY);
		}
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
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
	if (!p->dirty || p->busy > 0 || now_ms() - p->idle_since < 1000)
		return 0;
	if (p->workers != NULL) {
		quit_idle(p);
		return 0;
	}
	p->dirty = 0;
	return 1;
}

/* With the lock held: resumed jobs no thread could be started for. */
static void
retry_ready(struct hk_pool *p)
{
	struct job *j;

	while ((j = ready_pop(p)) != NULL)
		if (give(p, j) != 0) {
			j->next = p->ready;
			p->ready = j;
			if (p->ready_tail == NULL)
				p->ready_tail = j;
			return;
		}
}

int
hk_pool_reap(struct hk_pool *p)
{
	struct worker *gone, *w;
	int open, release;

	pthread_mutex_lock(&p->lock);
	retry_ready(p);
	gone = take_gone(p);
	open = p->open;
	release = idle_release(p);
	pthread_mutex_unlock(&p->lock);
	while ((w = gone) != NULL) {
		gone = w->next;
		pthread_join(w->tid, NULL);
		pthread_cond_destroy(&w->wake);
		pthread_mutex_lock(&p->lock);
		stack_release(p, w->stack);
		pthread_mutex_unlock(&p->lock);
		free(w);
	}
	if (release) {
		pthread_mutex_lock(&p->lock);
		while (p->nspare > 0)
			munmap(p->spare[--p->nspare], THREAD_STACK);
		pthread_mutex_unlock(&p->lock);
#ifdef __GLIBC__
		malloc_trim(0);
#endif
	}
	return open;
}

static void
set_stop(struct job *list)
{
	for (; list != NULL; list = list->next)
		atomic_store(&list->stop, 1);
}

/*
 * Signal every thread still serving a client, with its stop flag set;
 * the parked and those waiting for a thread get theirs, and the lot
 * resumes the parked.
 */
static void
kick_busy(struct hk_pool *p, int stop)
{
	struct worker *w;

	pthread_mutex_lock(&p->lock);
	for (w = p->workers; w != NULL; w = w->next) {
		if (w->state != W_BUSY || w->job == NULL)
			continue;
		if (stop)
			atomic_store(&w->job->stop, 1);
		else
			pthread_kill(w->tid, HK_POOL_SIGNAL);
	}
	if (stop) {
		set_stop(p->parked);
		set_stop(p->ready);
	}
	p->scan_stop = 1;
	pthread_mutex_unlock(&p->lock);
	lot_wake(p);
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
	pthread_mutex_lock(&p->lock);
	p->lot_quit = 1;
	pthread_mutex_unlock(&p->lock);
	lot_wake(p);
	pthread_join(p->lot, NULL);
	/* Only once no client is open (hk_pool_stop): end the waiting. */
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
	close(p->evfd);
	close(p->epfd);
	pthread_mutex_destroy(&p->lock);
	free(p);
}
