/*
 * test_pool.c - the server's client threads (hk_pool.c): a thread serves
 * client after client, the limit holds, the stop flag is the client's
 * and not the next one's, shutdown ends blocked clients, and the
 * waiting threads end once the clients are gone for a second.
 *
 * A client here is a pipe's read end: the client function records which
 * thread ran it and blocks reading until the test writes or closes the
 * other end (or hk_pool_stop interrupts it). A client whose peer name
 * starts with "park" parks instead ("park:MS": with a deadline MS from
 * now), and its resume function records why and on which thread it came
 * back, then reads (when it came back readable) and closes.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hk_pool.h"
#include "tests/unit.h"

#define MAX 40
/* A bound for every wait below: the pool reaps once a second at least. */
#define WAIT_MS 5000

struct seen {
	pthread_mutex_t lock;
	int n;              /* clients served so far */
	pid_t tid[MAX * 4]; /* the kernel thread that served each */
	int stop_at_start[MAX * 4];
	atomic_int *stop[MAX * 4];
	int interrupted; /* clients whose read ended with the stop flag */
};

static struct seen seen = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* The parked clients, in the order they parked. */
struct parked {
	pthread_mutex_t lock;
	int n, resumed;
	pid_t tid[MAX];         /* the thread that parked it */
	pid_t resumed_tid[MAX]; /* the one that resumed it */
	int why[MAX];
	int stop_at_resume[MAX];
	atomic_int *stop[MAX];
	pthread_t lot;
	struct timespec at[MAX]; /* when it was resumed */
	int slot[MAX];           /* the state given to hk_pool_park */
	int fd[MAX];
};

static struct parked parked = { .lock = PTHREAD_MUTEX_INITIALIZER };

static long long
mono_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* A "park" client: park fd; 0 if it did. */
static int
park(int fd, const char *peer, atomic_int *stop)
{
	long long deadline = 0;
	int i;

	if (strncmp(peer, "park", 4) != 0)
		return -1;
	if (peer[4] == ':')
		deadline = mono_ms() + atoi(peer + 5);
	pthread_mutex_lock(&parked.lock);
	i = parked.n++;
	parked.tid[i] = gettid();
	parked.stop[i] = stop;
	parked.lot = hk_pool_lot_thread();
	parked.slot[i] = i;
	parked.fd[i] = fd;
	pthread_mutex_unlock(&parked.lock);
	if (hk_pool_park(fd, deadline, &parked.slot[i]) == 0)
		return 0;
	close(fd);
	return 0;
}

static void
resume(void *arg, void *state, enum hk_pool_wake why, atomic_int *stop)
{
	int i = *(int *)state, fd;
	char c;

	(void)arg;
	pthread_mutex_lock(&parked.lock);
	parked.resumed_tid[i] = gettid();
	parked.why[i] = (int)why;
	parked.stop_at_resume[i] = atomic_load(stop);
	clock_gettime(CLOCK_MONOTONIC, &parked.at[i]);
	parked.resumed++;
	fd = parked.fd[i];
	pthread_mutex_unlock(&parked.lock);
	if (why == HK_POOL_READY && read(fd, &c, 1) < 0)
		c = 0;
	close(fd);
}

static void
client(void *arg, int fd, const char *peer, atomic_int *stop)
{
	char c;
	ssize_t r;
	int i;

	(void)arg;
	if (park(fd, peer, stop) == 0)
		return;
	pthread_mutex_lock(&seen.lock);
	i = seen.n++;
	seen.tid[i] = gettid();
	seen.stop_at_start[i] = atomic_load(stop);
	seen.stop[i] = stop;
	pthread_mutex_unlock(&seen.lock);
	while (
	    (r = read(fd, &c, 1)) < 0 && errno == EINTR && !atomic_load(stop))
		;
	/* Read always: a flag set before the end is seen before the free. */
	if (atomic_load(stop) && r < 0) {
		pthread_mutex_lock(&seen.lock);
		seen.interrupted++;
		pthread_mutex_unlock(&seen.lock);
	}
	close(fd);
}

static void
on_signal(int sig)
{
	(void)sig;
}

static long
ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000 +
	    (t.tv_nsec - t0->tv_nsec) / 1000000;
}

static void
nap(void)
{
	struct timespec t = { .tv_sec = 0, .tv_nsec = 5 * 1000 * 1000 };

	nanosleep(&t, NULL);
}

/* The pool's threads: this process's tasks named as hk_pool names them. */
static int
threads(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	char path[300], name[32];
	FILE *f;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm",
		    e->d_name);
		if ((f = fopen(path, "r")) == NULL)
			continue; /* ended meanwhile */
		if (fgets(name, sizeof(name), f) != NULL &&
		    strcmp(name, "hk-client\n") == 0)
			n++;
		fclose(f);
	}
	closedir(d);
	return n;
}

static int
served(void)
{
	int n;

	pthread_mutex_lock(&seen.lock);
	n = seen.n;
	pthread_mutex_unlock(&seen.lock);
	return n;
}

/* What a wait below waits for: the pool (may be NULL) and a number. */
struct until {
	struct hk_pool *p;
	int n;
};

static int
served_reached(const struct until *u)
{
	return served() >= u->n;
}

static int
busy_is(const struct until *u)
{
	return hk_pool_reap(u->p) == u->n;
}

static int
threads_are(const struct until *u)
{
	hk_pool_reap(u->p); /* joins the ended, ends the idle in time */
	return threads() == u->n;
}

/* Poll done(u) until it holds; 0 if it did not within ms. */
static int
wait_until(int (*done)(const struct until *), struct until u, long ms)
{
	struct timespec t0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (!done(&u))
		if (ms_since(&t0) > ms)
			return 0;
		else
			nap();
	return 1;
}

/* Until n clients have started; 0 if they did not in time. */
static int
wait_served(int n)
{
	return wait_until(served_reached, (struct until){ NULL, n }, WAIT_MS);
}

/* Reap until busy clients are left; 0 if that did not come in time. */
static int
wait_busy(struct hk_pool *p, int busy)
{
	return wait_until(busy_is, (struct until){ p, busy }, WAIT_MS);
}

/* Reap until the process has n threads (idle ones end after 1 s). */
static int
wait_threads(struct hk_pool *p, int n)
{
	return wait_until(threads_are, (struct until){ p, n }, 3000 + WAIT_MS);
}

/* A new client for the pool: its fd; the test keeps *hold, the writer. */
static int
spawn_as(struct hk_pool *p, const char *peer, int *hold, char *err, size_t len)
{
	int fds[2];

	if (pipe(fds) < 0)
		return -1;
	*hold = fds[1];
	if (hk_pool_spawn(p, fds[0], peer, err, len) < 0) {
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	return 0;
}

static int
spawn(struct hk_pool *p, int *hold, char *err, size_t len)
{
	return spawn_as(p, "test", hold, err, len);
}

static int
count(pthread_mutex_t *lock, const int *n)
{
	int k;

	pthread_mutex_lock(lock);
	k = *n;
	pthread_mutex_unlock(lock);
	return k;
}

/* Wait until *n (under lock) reaches want; 0 if it did not in time. */
static int
wait_count(pthread_mutex_t *lock, const int *n, int want)
{
	struct timespec t0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (count(lock, n) < want)
		if (ms_since(&t0) > WAIT_MS)
			return 0;
		else
			nap();
	return 1;
}

/*
 * A parked client holds no thread: the one thread serves another client
 * meanwhile; data on the fd resumes it on a thread of the pool.
 */
static void
test_park_ready(struct hk_pool *p)
{
	char err[128] = "", c = 'x';
	int a, b, i = parked.n, r = parked.resumed, first = served();

	if (spawn_as(p, "park", &a, err, sizeof(err)) < 0 ||
	    !wait_count(&parked.lock, &parked.n, i + 1)) {
		check(0, "a client to park: not served (%s)", err);
		return;
	}
	check(wait_busy(p, 1), "parked: still open (hk_pool_reap %d)",
	    hk_pool_reap(p));
	check(spawn(p, &b, err, sizeof(err)) == 0 && wait_served(first + 1) &&
		seen.tid[first] == parked.tid[i] && threads() == 1,
	    "the thread that parked it serves the next client meanwhile");
	check(count(&parked.lock, &parked.resumed) == r,
	    "nothing to read: still parked");
	check(write(a, &c, 1) == 1 &&
		wait_count(&parked.lock, &parked.resumed, r + 1),
	    "a byte to read: resumed");
	check(parked.why[i] == HK_POOL_READY && parked.stop_at_resume[i] == 0,
	    "as ready (why %d), its stop flag clear", parked.why[i]);
	check(parked.resumed_tid[i] != 0 &&
		parked.resumed_tid[i] != seen.tid[first],
	    "on another thread than the one still busy with the next client");
	close(b);
	close(a);
	check(wait_busy(p, 0), "both finished");
}

/* A deadline passed: resumed as timed out, not before. */
static void
test_park_deadline(struct hk_pool *p)
{
	char err[128] = "";
	struct timespec t0;
	int a, i = parked.n, r = parked.resumed;
	long ms; /* the pool counts whole ms: up to 1 early */

	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (spawn_as(p, "park:300", &a, err, sizeof(err)) < 0 ||
	    !wait_count(&parked.lock, &parked.resumed, r + 1)) {
		check(0, "a client parked with a deadline: not resumed (%s)",
		    err);
		return;
	}
	ms = (parked.at[i].tv_sec - t0.tv_sec) * 1000 +
	    (parked.at[i].tv_nsec - t0.tv_nsec) / 1000000;
	check(parked.why[i] == HK_POOL_TIMEOUT && ms >= 299 && ms < 3000,
	    "deadline 300 ms: resumed as timed out (why %d) after %ld ms",
	    parked.why[i], ms);
	close(a);
	check(wait_busy(p, 0), "and finished");
}

/* HK_POOL_SIGNAL to the lot with one job's flag set resumes that one. */
static void
test_park_signal(struct hk_pool *p)
{
	char err[128] = "";
	int a, b, i = parked.n, r = parked.resumed, ok;

	ok = spawn_as(p, "park", &a, err, sizeof(err)) == 0 &&
	    wait_count(&parked.lock, &parked.n, i + 1) &&
	    spawn_as(p, "park", &b, err, sizeof(err)) == 0 &&
	    wait_count(&parked.lock, &parked.n, i + 2) && wait_busy(p, 2);
	if (!ok) {
		check(0, "two clients to park: not parked (%s)", err);
		return;
	}
	atomic_store(parked.stop[i + 1], 1);
	pthread_kill(parked.lot, HK_POOL_SIGNAL);
	check(wait_count(&parked.lock, &parked.resumed, r + 1) &&
		wait_busy(p, 1),
	    "the flag set and the lot signalled: one resumed");
	check(parked.why[i + 1] == HK_POOL_STOPPED &&
		parked.stop_at_resume[i + 1] == 1 && parked.resumed_tid[i] == 0,
	    "the one whose flag is set, as stopped (why %d)",
	    parked.why[i + 1]);
	close(a);
	check(wait_count(&parked.lock, &parked.resumed, r + 2) &&
		wait_busy(p, 0) && parked.why[i] == HK_POOL_READY,
	    "the other stays parked until its peer closes");
	close(b);
}

/* The limit counts the parked; hk_pool_stop resumes them stopped. */
static void
test_park_stop(void)
{
	struct hk_pool *p = hk_pool_new(2, client, resume, NULL);
	char err[128] = "";
	int hold[3], i = parked.n, r = parked.resumed, ok;

	if (p == NULL) {
		check(0, "hk_pool_new");
		return;
	}
	ok = spawn_as(p, "park", &hold[0], err, sizeof(err)) == 0 &&
	    spawn_as(p, "park", &hold[1], err, sizeof(err)) == 0 &&
	    wait_count(&parked.lock, &parked.n, i + 2);
	check(ok && wait_busy(p, 2), "two parked with --max-connections 2");
	check(spawn(p, &hold[2], err, sizeof(err)) < 0 &&
		strstr(err, "2 connections open") != NULL,
	    "a third is refused: \"%s\"", err);
	check(hk_pool_stop(p, 0) == 0 &&
		count(&parked.lock, &parked.resumed) == r + 2,
	    "hk_pool_stop resumes both and they end");
	check(parked.why[i] == HK_POOL_STOPPED &&
		parked.why[i + 1] == HK_POOL_STOPPED &&
		parked.stop_at_resume[i] && parked.stop_at_resume[i + 1],
	    "as stopped, with their stop flags set");
	hk_pool_free(p);
	close(hold[0]);
	close(hold[1]);
}

static void
test_reuse(struct hk_pool *p)
{
	char err[128];
	int hold, i, first = served(), same = 1;

	for (i = 0; i < 5; i++) {
		if (spawn(p, &hold, err, sizeof(err)) < 0 ||
		    !wait_served(first + i + 1)) {
			check(0, "client %d: not served (%s)", i, err);
			return;
		}
		close(hold); /* the client's read ends: it is done */
		check(wait_busy(p, 0), "client %d finished", i);
		same &= seen.tid[first + i] == seen.tid[first];
	}
	check(same, "five clients one after another: one thread served all");
	check(threads() == 1, "one thread waits for the next client (%d)",
	    threads());
}

static void
test_limit(struct hk_pool *p, int max)
{
	char err[128] = "";
	int hold[MAX], extra, i, first = served(), ok = 1;

	for (i = 0; i < max; i++)
		ok &= spawn(p, &hold[i], err, sizeof(err)) == 0;
	check(ok && wait_served(first + max), "%d clients at once", max);
	check(hk_pool_reap(p) == max, "all %d being served", max);
	check(spawn(p, &extra, err, sizeof(err)) < 0 &&
		strstr(err, "connections open") != NULL,
	    "one more is refused: \"%s\"", err);
	for (i = 0; i < max; i++)
		close(hold[i]);
	check(wait_busy(p, 0), "all %d finished", max);
}

/* The flag set for one client is not set for the thread's next one. */
static void
test_stop_flag(struct hk_pool *p)
{
	char err[128];
	int hold, first = served();

	if (spawn(p, &hold, err, sizeof(err)) < 0 || !wait_served(first + 1)) {
		check(0, "client not served (%s)", err);
		return;
	}
	atomic_store(seen.stop[first], 1);
	close(hold);
	check(wait_busy(p, 0), "the stopped client finished");
	if (spawn(p, &hold, err, sizeof(err)) < 0 || !wait_served(first + 2)) {
		check(0, "next client not served (%s)", err);
		return;
	}
	check(seen.tid[first + 1] == seen.tid[first],
	    "the next client is on the same thread");
	check(seen.stop_at_start[first + 1] == 0, "and its stop flag is clear");
	close(hold);
	check(wait_busy(p, 0), "it finished");
}

int
main(void)
{
	struct sigaction sa;
	struct hk_pool *p;
	char err[128];
	int hold[3], i, n, ok = 1;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal; /* no SA_RESTART: it must end read() */
	sigaction(HK_POOL_SIGNAL, &sa, NULL);

	if ((p = hk_pool_new(MAX, client, resume, NULL)) == NULL) {
		check(0, "hk_pool_new");
		return check_summary();
	}
	test_reuse(p);
	test_stop_flag(p);
	test_limit(p, MAX);
	check(threads() <= 32, "after %d at once, at most 32 threads wait (%d)",
	    MAX, threads());
	check(wait_threads(p, 0),
	    "a second after the last client, no thread waits (%d threads)",
	    threads());
	n = served();
	check(spawn(p, &hold[0], err, sizeof(err)) == 0 && wait_served(n + 1) &&
		seen.tid[n] != seen.tid[n - 1] && threads() == 1,
	    "a client after that gets a new thread");
	close(hold[0]);
	check(wait_busy(p, 0), "and finishes");
	test_park_ready(p); /* with one thread */
	test_park_deadline(p);
	test_park_signal(p);
	hk_pool_free(p);

	/* Shutdown: blocked clients end with their stop flag and a signal. */
	p = hk_pool_new(3, client, resume, NULL);
	i = seen.interrupted;
	n = served();
	for (int k = 0; k < 3; k++)
		ok &= spawn(p, &hold[k], err, sizeof(err)) == 0;
	check(ok && wait_served(n + 3) && wait_busy(p, 3),
	    "three clients blocked");
	check(hk_pool_stop(p, 0) == 0, "hk_pool_stop ends all three");
	check(seen.interrupted - i == 3,
	    "each read ended by the stop flag (%d)", seen.interrupted - i);
	hk_pool_free(p);
	for (int k = 0; k < 3; k++)
		close(hold[k]);
	check(threads() == 0, "after hk_pool_free no thread is left (%d)",
	    threads());
	test_park_stop();
	return check_summary_named("test_pool");
}
