/*
 * hello_ktls_client - an mTLS client that hands its connection's record
 * encryption to the kernel (kTLS) after the handshake.
 *
 * It connects, verifies the server's certificate and name, presents its
 * own certificate, offloads TLS to the kernel, sends its message and
 * prints the reply. With --send-file it streams a file to an --echo
 * server and checks that every byte comes back unchanged.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/socket.h>
#include <sys/time.h>

#include "conn.h"
#include "hk_client.h"
#include "hk_config.h"
#include "hk_expiry.h"
#include "hk_print.h"
#include "hk_proto.h"
#include "hk_session.h"
#include "ktls_keys.h"
#include "mtls.h"

/* Echo chunks stay well inside socket buffers, so lock-step can't deadlock. */
#define CHUNK (64 * 1024)

static int
connect_to(const char *host, const char *port, int timeout, char *err,
    size_t errlen)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM };
	struct addrinfo *res, *ai;
	struct timeval tv = { .tv_sec = timeout };
	int fd = -1, rc, saved = 0;

	if ((rc = getaddrinfo(host, port, &hints, &res)) != 0) {
		snprintf(err, errlen, "cannot resolve %s: %s", host,
		    gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue;
		/* Linux bounds connect() by the send timeout. */
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		saved = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		snprintf(err, errlen, "cannot connect to %s port %s: %s", host,
		    port,
		    saved == EINPROGRESS || saved == EAGAIN ? "timed out" :
							      strerror(saved));
	return fd;
}

/*
 * Whether buf (n bytes from the server, where our message's echo or the
 * reply should be) is the server's refusal, "HKTLS/1 ERR reason": an
 * --echo server whose policy does not grant us echo says so. c->err then
 * has the reason.
 */
static int
server_refused(struct conn *c, const char *buf, size_t n)
{
	static const char err[] = HK_PROTO "ERR ";
	const char *nl = memchr(buf, '\n', n);
	size_t len;

	if (nl == NULL || n < sizeof(err) - 1 ||
	    memcmp(buf, err, sizeof(err) - 1) != 0)
		return 0;
	len = (size_t)(nl - buf) - (sizeof(err) - 1);
	conn_seterr(c, "server refused: %.*s", (int)(len < 280 ? len : 280),
	    buf + sizeof(err) - 1);
	return 1;
}

static int
exchange_hello(struct conn *c, const struct hk_config *cfg)
{
	char buf[16384];
	ssize_t n;

	printf("Sending message to server: %s\n", cfg->message);
	if (conn_write(c, cfg->message, strlen(cfg->message)) < 0)
		return -1;
	printf("Sent %zu bytes\n", strlen(cfg->message));
	if ((n = conn_read(c, buf, sizeof(buf))) <= 0) {
		if (n == 0)
			conn_seterr(c,
			    "server closed the connection without "
			    "replying");
		return -1;
	}
	if (server_refused(c, buf, (size_t)n))
		return -1;
	hk_print_text("Received from server: ", buf, (size_t)n);
	return 0;
}

/* Read exactly len bytes of echo and compare them with what was sent. */
static int
echo_back(struct conn *c, const char *sent, char *got, size_t len)
{
	size_t have = 0;
	ssize_t n;

	while (have < len) {
		if ((n = conn_read(c, got + have, len - have)) <= 0) {
			if (n == 0)
				conn_seterr(c,
				    "server closed the connection "
				    "in the middle of the echo");
			return -1;
		}
		if (have == 0 && memcmp(sent, got, (size_t)n) != 0 &&
		    server_refused(c, got, (size_t)n))
			return -1;
		have += (size_t)n;
	}
	if (memcmp(sent, got, len) != 0) {
		conn_seterr(c, "echoed data differs from what was sent");
		return -1;
	}
	return 0;
}

static int
exchange_file(struct conn *c, const struct hk_config *cfg)
{
	FILE *in, *out = NULL;
	char *sent = malloc(CHUNK), *got = malloc(CHUNK);
	unsigned long long total = 0;
	size_t n;
	int ret = -1;

	if ((in = fopen(cfg->send_file, "rb")) == NULL ||
	    (cfg->output != NULL && (out = fopen(cfg->output, "wb")) == NULL)) {
		conn_seterr(c, "cannot open %s: %s",
		    in == NULL ? cfg->send_file : cfg->output, strerror(errno));
		goto out;
	}
	if (sent == NULL || got == NULL) {
		conn_seterr(c, "out of memory");
		goto out;
	}
	printf("Sending %s to server\n", cfg->send_file);
	while ((n = fread(sent, 1, CHUNK, in)) > 0) {
		if (conn_write(c, sent, n) < 0 ||
		    echo_back(c, sent, got, n) < 0)
			goto out;
		if (out != NULL && fwrite(got, 1, n, out) != n) {
			conn_seterr(c, "cannot write %s: %s", cfg->output,
			    strerror(errno));
			goto out;
		}
		total += n;
	}
	if (ferror(in)) {
		conn_seterr(c, "cannot read %s", cfg->send_file);
		goto out;
	}
	printf("Echo verified: %llu bytes sent and received intact\n", total);
	ret = 0;
out:
	if (in != NULL)
		fclose(in);
	if (out != NULL && fclose(out) != 0 && ret == 0) {
		conn_seterr(c, "cannot write %s", cfg->output);
		ret = -1;
	}
	free(sent);
	free(got);
	return ret;
}

/* Where --get -o - writes: the real stdout, while messages go to stderr. */
static int data_fd = -1;

static int
exchange_get(struct conn *c, const struct hk_config *cfg)
{
	const char *out = cfg->output, *slash = strrchr(cfg->get, '/');
	char part[4096];
	unsigned long long size = 0;
	int fd, ret;

	if (out == NULL)
		out = slash != NULL ? slash + 1 : cfg->get;
	printf("Requesting %s\n", cfg->get);
	if (strcmp(out, "-") == 0)
		return hk_client_get(c, cfg->get, data_fd, &size);
	/* A failed download never leaves a partial file under its name. */
	snprintf(part, sizeof(part), "%s.part", out);
	if (*out == '\0' ||
	    (fd = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) <
		0) {
		conn_seterr(c, "cannot write %.200s: %s", part,
		    *out ? strerror(errno) : "no file name");
		return -1;
	}
	ret = hk_client_get(c, cfg->get, fd, &size);
	if (close(fd) < 0 && ret == 0) {
		conn_seterr(c, "writing %.200s: %s", part, strerror(errno));
		ret = -1;
	}
	if (ret == 0 && rename(part, out) < 0) {
		conn_seterr(c, "cannot rename %.200s: %s", part,
		    strerror(errno));
		ret = -1;
	}
	if (ret < 0) {
		unlink(part);
		return -1;
	}
	printf("Received %llu bytes into %s (%s)\n", size, out,
	    conn_path(c, KTLS_RX));
	return 0;
}

static int progress_shown;

static void
progress(unsigned long long done, unsigned long long total, double secs)
{
	if (secs < 2)
		return;
	progress_shown = 1;
	printf("\r  %llu / %llu MiB  %.2f Gbit/s ", done >> 20, total >> 20,
	    (double)done * 8 / secs / 1e9);
	fflush(stdout);
}

static void
bench_line(const char *side, const char *dir, const struct hk_stats *s)
{
	double gb = (double)s->bytes / 1e9;

	printf("BENCH side=%s dir=%s bytes=%llu seconds=%.3f gbps=%.3f "
	       "user=%.3f sys=%.3f cpu_per_gb=%.3f path=%s\n",
	    side, dir, s->bytes, s->seconds,
	    s->seconds > 0 ? gb * 8 / s->seconds : 0, s->user, s->sys,
	    gb > 0 ? (s->user + s->sys) / gb : 0, s->path);
}

static int
exchange_bench(struct conn *c, const struct hk_config *cfg, int down)
{
	struct hk_stats ours = { 0 }, theirs = { 0 };
	const char *dir = down ? "down" : "up";

	printf("Benchmark %s: %llu bytes\n", dir, cfg->bench);
	progress_shown = 0;
	if (hk_client_bench(c, down, cfg->bench, cfg->bench_sendfile, &ours,
		&theirs, isatty(STDOUT_FILENO) ? progress : NULL) < 0)
		return -1;
	if (progress_shown)
		printf("\n");
	bench_line("client", dir, &ours);
	bench_line("server", dir, &theirs);
	return 0;
}

enum op {
	OP_HELLO,
	OP_SEND_FILE,
	OP_GET,
	OP_BENCH_DOWN,
	OP_BENCH_UP
};

static int
exchange(struct conn *c, const struct hk_config *cfg, enum op op)
{
	switch (op) {
	case OP_SEND_FILE:
		return exchange_file(c, cfg);
	case OP_GET:
		return exchange_get(c, cfg);
	case OP_BENCH_DOWN:
	case OP_BENCH_UP:
		return exchange_bench(c, cfg, op == OP_BENCH_DOWN);
	default:
		return exchange_hello(c, cfg);
	}
}

/*
 * A connection that ended after our certificate expired: a server with
 * --close-at-expiry ends it then, with close_notify and no reason, so
 * the likely one is said here.
 */
static void
expired_note(const SSL_CTX *ctx)
{
	const X509 *x = SSL_CTX_get0_certificate(ctx);
	char line[96];
	long long left;

	if (x == NULL || hk_expiry_left(x, time(NULL), &left) < 0 || left > 0)
		return;
	hk_expiry_line(x, time(NULL), line, sizeof(line));
	hk_warn("our certificate %s: the server ends connections at their "
		"certificate's expiry (--close-at-expiry)",
	    line);
}

static int
run(SSL_CTX *ctx, const struct hk_config *cfg, enum op op)
{
	struct conn c = { .fd = -1 };
	struct hk_counters counters;
	char err[512];
	int fd, ret = 1;

	printf("Connecting to %s%s%s:%s...\n",
	    strchr(cfg->host, ':') ? "[" : "", cfg->host,
	    strchr(cfg->host, ':') ? "]" : "", cfg->port);
	if ((fd = connect_to(cfg->host, cfg->port, cfg->timeout, err,
		 sizeof(err))) < 0) {
		hk_warn("%s", err);
		return 1;
	}
	printf("TCP connection established\n");
	if (conn_init(&c, ctx, fd, cfg->timeout, "--timeout") < 0)
		goto out;
	if (mtls_set_peer_host(c.ssl, cfg->host) < 0) {
		conn_seterr(&c,
		    "cannot check the server's certificate against "
		    "'%s'",
		    cfg->host);
		goto out;
	}
	if (hk_session_start(&c, cfg, "Server", NULL, &counters) < 0)
		goto out;
	hk_session_free_ssl(&c);
	if (exchange(&c, cfg, op) < 0)
		goto out;
	hk_session_end(&c, cfg, &counters);
	ret = 0;
out:
	if (ret != 0) {
		hk_warn("%s:%s: %s", cfg->host, cfg->port, conn_error(&c));
		expired_note(ctx);
	}
	/* Also after a refusal of ours (--ktls require): end TLS cleanly. */
	conn_close(&c);
	conn_free(&c);
	return ret;
}

/* What to do, from the options; --direction both is two connections. */
static int
run_all(SSL_CTX *ctx, const struct hk_config *cfg)
{
	if (cfg->bench > 0) {
		if (strcmp(cfg->direction, "up") != 0 &&
		    run(ctx, cfg, OP_BENCH_DOWN) != 0)
			return 1;
		if (strcmp(cfg->direction, "down") != 0)
			return run(ctx, cfg, OP_BENCH_UP);
		return 0;
	}
	if (cfg->get != NULL)
		return run(ctx, cfg, OP_GET);
	return run(ctx, cfg, cfg->send_file ? OP_SEND_FILE : OP_HELLO);
}

int
main(int argc, char **argv)
{
	struct hk_config cfg;
	struct hk_expiry_watch expiry = { 0, 0 };
	SSL_CTX *ctx;
	int ret;

	if ((ret = hk_start(&cfg, HK_CLIENT, argc, argv)) >= 0)
		return ret;
	/* --get -o -: the data owns stdout, every message goes to stderr. */
	if (cfg.get != NULL && cfg.output != NULL &&
	    strcmp(cfg.output, "-") == 0 &&
	    ((data_fd = dup(STDOUT_FILENO)) < 0 ||
		dup2(STDERR_FILENO, STDOUT_FILENO) < 0)) {
		hk_warn("cannot set up stdout: %s", strerror(errno));
		return 1;
	}
	if ((ctx = hk_context(&cfg)) == NULL)
		return 1;
	hk_expiry_watch_ctx(&expiry, ctx, "client");
	ret = run_all(ctx, &cfg);
	SSL_CTX_free(ctx);
	return ret;
}
