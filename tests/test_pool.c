/*
 * test_pool.c - the server's client threads (hk_pool.c): a thread serves
 * client after client, the limit holds, the stop flag is the client's
 * and not the next one's, shutdown ends blocked clients, and the
 * waiting threads end once the clients are gone for a second.
 *
 * A client here is a pipe's read end: the client function records which
 * thread ran it and blocks reading until the test writes or closes the
 * other end (or hk_pool_stop interrupts it).
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
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

static void
client(void *arg, int fd, const char *peer, atomic_int *stop)
{
	char c;
	ssize_t r;
	int i;

	(void)arg;
	(void)peer;
	pthread_mutex_lock(&seen.lock);
	i = seen.n++;
	seen.tid[i] = gettid();
	seen.stop_at_start[i] = atomic_load(stop);
	seen.stop[i] = stop;
	pthread_mutex_unlock(&seen.lock);
	while (
	    (r = read(fd, &c, 1)) < 0 && errno == EINTR && !atomic_load(stop))
		;
	if (r < 0 && atomic_load(stop)) {
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

/* Wait until n clients have started; 0 if they did not in time. */
static int
wait_served(int n)
{
	struct timespec t0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (served() < n)
		if (ms_since(&t0) > WAIT_MS)
			return 0;
		else
			nap();
	return 1;
}

/* Reap until busy clients are left; 0 if that did not come in time. */
static int
wait_busy(struct hk_pool *p, int busy)
{
	struct timespec t0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (hk_pool_reap(p) != busy)
		if (ms_since(&t0) > WAIT_MS)
			return 0;
		else
			nap();
	return 1;
}

/* Reap until the process has n threads; 0 if it did not in time. */
static int
wait_threads(struct hk_pool *p, int n)
{
	struct timespec t0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (hk_pool_reap(p), threads() != n)
		if (ms_since(&t0) > 3000 + WAIT_MS)
			return 0;
		else
			nap();
	return 1;
}

/* A new client for the pool: its fd; the test keeps *hold, the writer. */
static int
spawn(struct hk_pool *p, int *hold, char *err, size_t len)
{
	int fds[2];

	if (pipe(fds) < 0)
		return -1;
	*hold = fds[1];
	if (hk_pool_spawn(p, fds[0], "test", err, len) < 0) {
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	return 0;
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

	if ((p = hk_pool_new(MAX, client, NULL)) == NULL) {
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
	hk_pool_free(p);

	/* Shutdown: blocked clients end with their stop flag and a signal. */
	p = hk_pool_new(3, client, NULL);
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
	return check_summary_named("test_pool");
}
