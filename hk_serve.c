/*
 * hk_serve.c - answering --get and --bench requests.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "hk_bench.h"
#include "hk_files.h"
#include "hk_proto.h"
#include "hk_serve.h"

static int
reply(struct conn *c, const char *fmt, const char *arg, unsigned long long n)
{
	char line[HK_PROTO_LINE_MAX + 64];

	if (arg != NULL)
		snprintf(line, sizeof(line), fmt, arg);
	else
		snprintf(line, sizeof(line), fmt, n);
	return conn_write(c, line, strlen(line));
}

/* What a refusal tells the client, at most: c->err keeps it whole. */
#define REFUSE_WHY_MAX 304

/* Tell the client why not, then fail with the same words. */
int
hk_serve_refuse(struct conn *c, const char *why)
{
	char copy[REFUSE_WHY_MAX];

	/* why may be c->err itself, which a failed reply overwrites. */
	snprintf(copy, sizeof(copy), "%.*s", (int)sizeof(copy) - 1, why);
	reply(c, HK_PROTO "ERR %s\n", copy, 0);
	conn_seterr(c, "refused: %s", copy);
	return -1;
}

static int
serve_get(struct conn *c, int rootfd, const char *path, char *summary,
    size_t sumlen)
{
	char why[HK_PROTO_LINE_MAX + 64];
	off_t size;
	int fd, ret;

	if (rootfd < 0)
		return hk_serve_refuse(c,
		    "this server serves no files (no --root)");
	if ((fd = hk_file_open_below(rootfd, path, &size, why, sizeof(why))) <
	    0)
		return hk_serve_refuse(c, why);
	ret = reply(c, HK_PROTO "OK %llu\n", NULL, (unsigned long long)size);
	if (ret == 0)
		ret = conn_sendfile(c, fd, 0, (size_t)size);
	close(fd);
	if (ret == 0)
		snprintf(summary, sumlen, "Sent %s (%lld bytes) with %s", path,
		    (long long)size,
		    ktls_active(c->k, KTLS_TX) ?
			"sendfile (kTLS TX)" :
			"read + SSL_write (userspace TLS)");
	return ret;
}

static int
send_stats(struct conn *c, const struct hk_stats *s, const char *dir,
    char *summary, size_t sumlen)
{
	char line[256];

	hk_proto_format_stats(line, sizeof(line), s);
	snprintf(summary, sumlen,
	    "Benchmark %s: %llu bytes in %.3f s, %.2f "
	    "Gbit/s, CPU user %.3f s sys %.3f s, path %s",
	    dir, s->bytes, s->seconds,
	    s->seconds > 0 ? (double)s->bytes * 8 / s->seconds / 1e9 : 0,
	    s->user, s->sys, s->path);
	return conn_write(c, line, strlen(line));
}

/* Whether --policy granted the client this request; -1 if not, told. */
static int
granted(struct conn *c, const struct mtls_decision *d,
    const struct hk_request *r)
{
	char why[REFUSE_WHY_MAX];
	enum mtls_policy_action a =
	    r->type == HK_REQ_GET ? MTLS_POLICY_GET : MTLS_POLICY_BENCH;

	if (d == NULL || mtls_decision_permits(d, a, r->path, why, sizeof(why)))
		return 0;
	return hk_serve_refuse(c, why);
}

int
hk_serve_request(struct conn *c, int rootfd, const struct mtls_decision *d,
    const void *buf, size_t len, char *summary, size_t sumlen)
{
	char line[HK_PROTO_LINE_MAX], why[128];
	struct hk_request r;
	struct hk_stats s = { 0 };

	if (conn_unread(c, buf, len) < 0 ||
	    conn_read_line(c, line, sizeof(line)) < 0)
		return -1;
	if (hk_proto_parse_request(line, &r, why, sizeof(why)) < 0)
		return hk_serve_refuse(c, why);
	if (granted(c, d, &r) < 0)
		return -1;
	switch (r.type) {
	case HK_REQ_GET:
		return serve_get(c, rootfd, r.path, summary, sumlen);
	case HK_REQ_BENCH_DOWN:
		if (reply(c, HK_PROTO "OK %llu\n", NULL, r.bytes) < 0 ||
		    hk_bench_send(c, r.bytes, r.use_sendfile, &s, NULL) < 0)
			return -1;
		return send_stats(c, &s, "down", summary, sumlen);
	case HK_REQ_BENCH_UP:
		if (hk_bench_recv(c, r.bytes, &s, NULL) < 0)
			return -1;
		return send_stats(c, &s, "up", summary, sumlen);
	}
	return hk_serve_refuse(c, "unknown request");
}
