/*
 * hk_client.c - asking a hello_ktls_server for a file or a benchmark.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "hk_client.h"

/* Send a request line and read "OK <bytes>" (or the refusal). */
static int
request(struct conn *c, const char *line, unsigned long long *bytes)
{
	char reply[HK_PROTO_LINE_MAX], why[HK_PROTO_LINE_MAX];

	if (conn_write(c, line, strlen(line)) < 0 ||
	    conn_read_line(c, reply, sizeof(reply)) < 0)
		return -1;
	if (hk_proto_parse_reply(reply, bytes, why, sizeof(why)) < 0) {
		conn_seterr(c, "server refused: %.280s", why);
		return -1;
	}
	return 0;
}

static int
write_all(int fd, const char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		if ((w = write(fd, p, n)) < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w, n -= (size_t)w;
	}
	return 0;
}

int
hk_client_get(struct conn *c, const char *path, int out_fd,
    unsigned long long *size)
{
	char line[HK_PROTO_LINE_MAX + 16], buf[64 * 1024];
	unsigned long long done = 0;
	size_t want;
	ssize_t n;

	if (strchr(path, '\n') != NULL ||
	    strlen(path) >= HK_PROTO_LINE_MAX - 16) {
		conn_seterr(c, "--get: unusable path");
		return -1;
	}
	snprintf(line, sizeof(line), HK_PROTO "GET %s\n", path);
	if (request(c, line, size) < 0)
		return -1;
	while (done < *size) {
		want = *size - done < sizeof(buf) ? (size_t)(*size - done) :
						    sizeof(buf);
		if ((n = conn_read(c, buf, want)) <= 0) {
			if (n == 0)
				conn_seterr(c,
				    "download ended after %llu of "
				    "%llu bytes",
				    done, *size);
			return -1;
		}
		if (write_all(out_fd, buf, (size_t)n) < 0) {
			conn_seterr(c, "writing the download: %s",
			    strerror(errno));
			return -1;
		}
		done += (unsigned long long)n;
	}
	return 0;
}

int
hk_client_bench(struct conn *c, int down, unsigned long long bytes,
    int use_sendfile, struct hk_stats *ours, struct hk_stats *theirs,
    hk_progress_fn progress)
{
	char line[128], stats[256];
	unsigned long long n = 0;

	if (down) {
		snprintf(line, sizeof(line), HK_PROTO "BENCH DOWN %llu %s\n",
		    bytes, use_sendfile ? "sendfile" : "readwrite");
		if (request(c, line, &n) < 0 ||
		    hk_bench_recv(c, bytes, ours, progress) < 0)
			return -1;
	} else {
		snprintf(line, sizeof(line), HK_PROTO "BENCH UP %llu\n", bytes);
		if (conn_write(c, line, strlen(line)) < 0 ||
		    hk_bench_send(c, bytes, 0, ours, progress) < 0)
			return -1;
	}
	if (conn_read_line(c, stats, sizeof(stats)) < 0)
		return -1;
	if (hk_proto_parse_stats(stats, theirs) < 0) {
		conn_seterr(c, "server sent no measurements (%.200s)", stats);
		return -1;
	}
	return 0;
}
