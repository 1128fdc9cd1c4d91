/*
 * hk_bench.c - bulk transfers for --bench.
 *
 * The data is a fixed pseudo-random 1 MiB block repeated, so the
 * receiver can check every byte with a memcmp against its own copy: an
 * integrity check that costs far less than the crypto it measures.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/mman.h>
#include <sys/resource.h>

#include "hk_bench.h"

#define PATTERN_SIZE   (1 << 20)
#define PROGRESS_EVERY 0.5

/* Made once, shared read-only by every connection's thread. */
static unsigned char *pattern;
static pthread_once_t pattern_once = PTHREAD_ONCE_INIT;

static void
pattern_make(void)
{
	uint64_t x = 0x9e3779b97f4a7c15ULL; /* any fixed seed: xorshift64 */
	unsigned char *p;
	size_t i;

	if ((p = malloc(PATTERN_SIZE)) == NULL)
		return;
	for (i = 0; i < PATTERN_SIZE; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		p[i] = (unsigned char)(x >> 32);
	}
	pattern = p;
}

static const unsigned char *
pattern_get(void)
{
	pthread_once(&pattern_once, pattern_make);
	return pattern;
}

struct meter {
	struct timespec t0;
	struct rusage r0;
	double last;
};

static double
tv_secs(struct timeval tv)
{
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static double
elapsed(const struct meter *m)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - m->t0.tv_sec) +
	    (double)(t.tv_nsec - m->t0.tv_nsec) / 1e9;
}

static void
meter_start(struct meter *m)
{
	clock_gettime(CLOCK_MONOTONIC, &m->t0);
	getrusage(RUSAGE_THREAD, &m->r0);
	m->last = 0;
}

static void
meter_stop(const struct meter *m, unsigned long long bytes, struct hk_stats *s)
{
	struct rusage r;

	getrusage(RUSAGE_THREAD, &r);
	s->bytes = bytes;
	s->seconds = elapsed(m);
	s->user = tv_secs(r.ru_utime) - tv_secs(m->r0.ru_utime);
	s->sys = tv_secs(r.ru_stime) - tv_secs(m->r0.ru_stime);
}

static void
tick(struct meter *m, unsigned long long done, unsigned long long total,
    hk_progress_fn progress)
{
	double t;

	if (progress == NULL || (t = elapsed(m)) - m->last < PROGRESS_EVERY)
		return;
	m->last = t;
	progress(done, total, t);
}

/* The pattern as a file, so that sendfile() has something to send from. */
static int
pattern_memfd(const unsigned char *p)
{
	int fd = memfd_create("hk_bench", MFD_CLOEXEC);

	if (fd >= 0 && write(fd, p, PATTERN_SIZE) != PATTERN_SIZE) {
		close(fd);
		return -1;
	}
	return fd;
}

int
hk_bench_send(struct conn *c, unsigned long long bytes, int use_sendfile,
    struct hk_stats *s, hk_progress_fn progress)
{
	const unsigned char *p = pattern_get();
	unsigned long long done = 0;
	struct meter m;
	size_t chunk;
	int fd = -1, ret = -1;

	use_sendfile = use_sendfile && ktls_active(c->k, KTLS_TX);
	if (p == NULL || (use_sendfile && (fd = pattern_memfd(p)) < 0)) {
		conn_seterr(c, "benchmark setup: %s",
		    strerror(errno ? errno : ENOMEM));
		return -1;
	}
	snprintf(s->path, sizeof(s->path), "%s%s", conn_path(c, KTLS_TX),
	    !ktls_active(c->k, KTLS_TX) ? "" :
		use_sendfile            ? "-sendfile" :
					  "-write");
	meter_start(&m);
	while (done < bytes) {
		chunk = bytes - done < PATTERN_SIZE ? (size_t)(bytes - done) :
						      PATTERN_SIZE;
		if ((use_sendfile ? conn_sendfile(c, fd, 0, chunk) :
				    conn_write(c, p, chunk)) < 0)
			goto out;
		done += chunk;
		tick(&m, done, bytes, progress);
	}
	meter_stop(&m, bytes, s);
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	return ret;
}

int
hk_bench_recv(struct conn *c, unsigned long long bytes, struct hk_stats *s,
    hk_progress_fn progress)
{
	const unsigned char *p = pattern_get();
	const size_t bufsize = 64 * 1024;
	unsigned char *buf = malloc(bufsize);
	unsigned long long done = 0;
	struct meter m;
	size_t want, off;
	ssize_t n;
	int ret = -1;

	if (p == NULL || buf == NULL) {
		conn_seterr(c, "out of memory");
		goto out;
	}
	snprintf(s->path, sizeof(s->path), "%s", conn_path(c, KTLS_RX));
	meter_start(&m);
	while (done < bytes) {
		off = (size_t)(done % PATTERN_SIZE);
		/* Never cross the end of the pattern within one compare. */
		want =
		    PATTERN_SIZE - off < bufsize ? PATTERN_SIZE - off : bufsize;
		if (bytes - done < want)
			want = (size_t)(bytes - done);
		if ((n = conn_read(c, buf, want)) <= 0) {
			if (n == 0)
				conn_seterr(c,
				    "stream ended after %llu of "
				    "%llu bytes",
				    done, bytes);
			goto out;
		}
		if (memcmp(buf, p + off, (size_t)n) != 0) {
			conn_seterr(c, "data corrupted near byte %llu", done);
			goto out;
		}
		done += (unsigned long long)n;
		tick(&m, done, bytes, progress);
	}
	meter_stop(&m, bytes, s);
	ret = 0;
out:
	free(buf);
	return ret;
}
