/*
 * ktls_pair_bench: the "bare kTLS socket pair" baseline for tests/bench.sh.
 *
 * A loopback TCP pair; TCP_ULP "tls" on both ends, TLS_TX (TLS 1.3, the
 * chosen cipher, a fixed dummy key) on the sending end and TLS_RX with the
 * same key on the receiving end. A child process sends N bytes with write()
 * (or with sendfile() from a memfd, --sendfile), WRITE-SIZE bytes a call;
 * the parent receives them with recvmsg(), READ-SIZE bytes a call, and a
 * TLS_GET_RECORD_TYPE control buffer, as any kTLS reader must, and times
 * the transfer. No handshake, no TLS library: with the same call sizes as
 * our programs, this is the fastest their I/O loops could be on this kernel,
 * and what bench.sh compares them against.
 *
 *   ktls_pair_bench [--cipher aes-128-gcm|aes-256-gcm|chacha20-poly1305]
 *                   [--bytes N] [--write-size N] [--read-size N]
 *                   [--sendfile] [--plain] [--timeout SECS]
 *
 * Sizes take K, M, G (2^10, 2^20, 2^30); defaults 256M, 16K, 16K.
 * --plain skips kTLS (a plain TCP pair, for scale). Prints one line,
 *   PAIR bytes=N seconds=S gbps=G cipher=C path=write|sendfile
 *        write_size=W read_size=Z tx_cpu_per_gb=T rx_cpu_per_gb=R
 * where gbps is 10^9 bits per second and *_cpu_per_gb is user+system CPU
 * seconds per 10^9 bytes of the sender and the receiver process.
 *
 * Exit status: 0 done, 1 failure, 2 usage, 77 no kTLS in this kernel (run it
 * in the guest: bash tests/uml.sh -- tests/ktls_pair_bench).
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <linux/tls.h>

#ifndef SOL_TLS
#define SOL_TLS 282 /* include/linux/socket.h */
#endif
#ifndef TCP_ULP
#define TCP_ULP 31
#endif

#define EXIT_NO_KTLS            77
#define RECORD_APPLICATION_DATA 23
#define MEMFD_SIZE              (4u << 20) /* sendfile source, sent over and over */

union crypto_info {
	struct tls_crypto_info base;
	struct tls12_crypto_info_aes_gcm_128 aes128;
	struct tls12_crypto_info_aes_gcm_256 aes256;
#ifdef TLS_CIPHER_CHACHA20_POLY1305
	struct tls12_crypto_info_chacha20_poly1305 chacha;
#endif
};

static const struct cipher {
	const char *name;
	unsigned short type;
	socklen_t len;
} ciphers[] = {
	{ "aes-128-gcm", TLS_CIPHER_AES_GCM_128,
	    sizeof(struct tls12_crypto_info_aes_gcm_128) },
	{ "aes-256-gcm", TLS_CIPHER_AES_GCM_256,
	    sizeof(struct tls12_crypto_info_aes_gcm_256) },
#ifdef TLS_CIPHER_CHACHA20_POLY1305
	{ "chacha20-poly1305", TLS_CIPHER_CHACHA20_POLY1305,
	    sizeof(struct tls12_crypto_info_chacha20_poly1305) },
#endif
};

struct opts {
	const struct cipher *cipher; /* NULL with --plain */
	unsigned long long bytes;
	size_t wsize, rsize; /* bytes per write()/sendfile(), per recvmsg() */
	int sendfile;
	unsigned timeout;
};

static const char *prog = "ktls_pair_bench";

static void die(int status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));

static void
die(int status, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(status);
}

static void usage(int status) __attribute__((noreturn));

static void
usage(int status)
{
	FILE *f = status == 0 ? stdout : stderr;
	size_t i;

	fprintf(f,
	    "usage: %s [--cipher NAME] [--bytes N] [--write-size N]\n"
	    "       [--read-size N] [--sendfile] [--plain] [--timeout SECS]\n"
	    "ciphers (TLS 1.3):",
	    prog);
	for (i = 0; i < sizeof(ciphers) / sizeof(ciphers[0]); i++)
		fprintf(f, " %s", ciphers[i].name);
	fprintf(f,
	    "\nsizes take K, M, G; defaults: aes-128-gcm, 256M, "
	    "16K writes, 16K reads, timeout 120 s\n");
	exit(status);
}

/* A size with an optional binary suffix: 64K, 256M, 1G. */
static unsigned long long
parse_size(const char *opt, const char *s)
{
	unsigned long long v, mult = 1;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *s == '-')
		die(2, "%s: not a size: %s", opt, s);
	switch (*end) {
	case 'K':
	case 'k':
		mult = 1ull << 10;
		end++;
		break;
	case 'M':
	case 'm':
		mult = 1ull << 20;
		end++;
		break;
	case 'G':
	case 'g':
		mult = 1ull << 30;
		end++;
		break;
	}
	if (*end != '\0' || v == 0 || v > ULLONG_MAX / mult)
		die(2, "%s: not a size: %s", opt, s);
	return v * mult;
}

/* One call's worth: at most the memfd that sendfile() sends from. */
static size_t
parse_io_size(const char *opt, const char *s)
{
	unsigned long long v = parse_size(opt, s);

	if (v > MEMFD_SIZE)
		die(2, "%s: at most %u bytes", opt, MEMFD_SIZE);
	return (size_t)v;
}

static const struct cipher *
cipher_find(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(ciphers) / sizeof(ciphers[0]); i++)
		if (strcmp(ciphers[i].name, name) == 0)
			return &ciphers[i];
	die(2, "unknown cipher %s (see --help)", name);
}

static void
parse_args(int argc, char **argv, struct opts *o)
{
	int i;

	*o = (struct opts){ .cipher = &ciphers[0],
		.bytes = 256ull << 20,
		.wsize = 16384,
		.rsize = 16384,
		.timeout = 120 };
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		int more = i + 1 < argc; /* a value follows */

		if (strcmp(a, "--sendfile") == 0)
			o->sendfile = 1;
		else if (strcmp(a, "--plain") == 0)
			o->cipher = NULL;
		else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
			usage(0);
		else if (more && strcmp(a, "--cipher") == 0)
			o->cipher = cipher_find(argv[++i]);
		else if (more && strcmp(a, "--bytes") == 0)
			o->bytes = parse_size(a, argv[++i]);
		else if (more && strcmp(a, "--write-size") == 0)
			o->wsize = parse_io_size(a, argv[++i]);
		else if (more && strcmp(a, "--read-size") == 0)
			o->rsize = parse_io_size(a, argv[++i]);
		else if (more && strcmp(a, "--timeout") == 0)
			o->timeout = (unsigned)parse_size(a, argv[++i]);
		else
			usage(2);
	}
}

/* A connected loopback pair: fds[0] sends, fds[1] receives. */
static void
tcp_pair(int fds[2])
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int lfd;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(lfd, 1) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&sa, &len) < 0)
		die(1, "loopback listener: %s", strerror(errno));
	fds[0] = socket(AF_INET, SOCK_STREAM, 0);
	if (fds[0] < 0 ||
	    connect(fds[0], (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die(1, "connect to 127.0.0.1:%u: %s", ntohs(sa.sin_port),
		    strerror(errno));
	fds[1] = accept(lfd, NULL, NULL);
	if (fds[1] < 0)
		die(1, "accept: %s", strerror(errno));
	close(lfd);
}

/*
 * Both ends get the same key, IV, salt and sequence number, so what one
 * encrypts the other decrypts. Every key byte is a fixed pattern: the
 * bytes never leave loopback and only the cost of the crypto matters.
 */
static void
ktls_install(int fd, int dir, const struct cipher *c)
{
	union crypto_info ci;
	int err;

	if (setsockopt(fd, SOL_TCP, TCP_ULP, "tls", sizeof("tls") - 1) < 0) {
		err = errno;
		if (err == ENOENT)
			die(EXIT_NO_KTLS,
			    "this kernel has no kTLS "
			    "(setsockopt TCP_ULP \"tls\": %s; CONFIG_TLS / tls "
			    "module); run it in the guest: bash tests/uml.sh "
			    "-- tests/ktls_pair_bench",
			    strerror(err));
		die(1, "setsockopt TCP_ULP \"tls\": %s", strerror(err));
	}
	memset(&ci, 0x5a, sizeof(ci));
	ci.base.version = TLS_1_3_VERSION;
	ci.base.cipher_type = c->type;
	if (setsockopt(fd, SOL_TLS, dir, &ci, c->len) < 0) {
		err = errno;
		die(1, "setsockopt %s (TLS 1.3 %s): %s%s",
		    dir == TLS_TX ? "TLS_TX" : "TLS_RX", c->name, strerror(err),
		    err == ENOENT ? " (the kernel lacks this cipher's module)" :
				    "");
	}
}

static void
send_write(int fd, const struct opts *o)
{
	size_t chunk = o->wsize;
	unsigned long long left = o->bytes;
	char *buf = malloc(chunk);

	if (buf == NULL)
		die(1, "out of memory");
	memset(buf, 'k', chunk);
	while (left > 0) {
		size_t n = left < chunk ? (size_t)left : chunk;
		ssize_t w = write(fd, buf, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			die(1, "sender: write: %s", strerror(errno));
		left -= (size_t)w;
	}
	free(buf);
}

static void
send_sendfile(int fd, const struct opts *o)
{
	unsigned long long left = o->bytes;
	char *buf = malloc(MEMFD_SIZE);
	off_t off = 0;
	int mfd = memfd_create("ktls_pair_bench", 0);

	if (buf == NULL || mfd < 0)
		die(1, "sender: memfd: %s", strerror(errno));
	memset(buf, 'k', MEMFD_SIZE);
	if (write(mfd, buf, MEMFD_SIZE) != (ssize_t)MEMFD_SIZE)
		die(1, "sender: filling the memfd failed");
	free(buf);
	while (left > 0) {
		size_t n = MEMFD_SIZE - (size_t)off;
		ssize_t w;

		if (n > o->wsize)
			n = o->wsize;
		if (n > left)
			n = (size_t)left;
		w = sendfile(fd, mfd, &off, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			die(1, "sender: sendfile: %s", strerror(errno));
		left -= (size_t)w;
		if (off == (off_t)MEMFD_SIZE)
			off = 0;
	}
	close(mfd);
}

/* Child: wait for the go byte, send everything, then FIN. */
static void
sender(int fd, int go, const struct opts *o)
{
	char c;

	alarm(o->timeout); /* a pending alarm does not survive fork() */
	if (read(go, &c, 1) != 1)
		_exit(1);
	if (o->sendfile)
		send_sendfile(fd, o);
	else
		send_write(fd, o);
	if (shutdown(fd, SHUT_WR) < 0)
		die(1, "sender: shutdown: %s", strerror(errno));
	_exit(0);
}

/* Parent: read until EOF; every record must be application data. */
static unsigned long long
receive(int fd, const struct opts *o)
{
	size_t chunk = o->rsize;
	unsigned long long got = 0;
	char *buf = malloc(chunk);
	union {
		char buf[CMSG_SPACE(sizeof(unsigned char))];
		struct cmsghdr align;
	} cbuf;

	if (buf == NULL)
		die(1, "out of memory");
	for (;;) {
		struct iovec iov = { .iov_base = buf, .iov_len = chunk };
		struct msghdr msg = { .msg_iov = &iov,
			.msg_iovlen = 1,
			.msg_control = cbuf.buf,
			.msg_controllen = sizeof(cbuf.buf) };
		struct cmsghdr *cm;
		ssize_t n = recvmsg(fd, &msg, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die(1, "receiver: recvmsg: %s", strerror(errno));
		if (n == 0)
			break;
		cm = CMSG_FIRSTHDR(&msg);
		if (cm != NULL && cm->cmsg_level == SOL_TLS &&
		    cm->cmsg_type == TLS_GET_RECORD_TYPE &&
		    *CMSG_DATA(cm) != RECORD_APPLICATION_DATA)
			die(1, "receiver: unexpected record type %u",
			    *CMSG_DATA(cm));
		got += (unsigned long long)n;
	}
	free(buf);
	return got;
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double
cpu_seconds(const struct rusage *ru)
{
	return (double)ru->ru_utime.tv_sec +
	    (double)ru->ru_utime.tv_usec / 1e6 + (double)ru->ru_stime.tv_sec +
	    (double)ru->ru_stime.tv_usec / 1e6;
}

int
main(int argc, char **argv)
{
	struct opts o;
	struct rusage ru0, ru1, child;
	unsigned long long got;
	double t0, secs, gb;
	int fds[2], go[2], status;
	pid_t pid;

	parse_args(argc, argv, &o);
	signal(SIGPIPE, SIG_IGN);
	tcp_pair(fds);
	if (o.cipher != NULL) {
		ktls_install(fds[0], TLS_TX, o.cipher);
		ktls_install(fds[1], TLS_RX, o.cipher);
	}
	if (pipe(go) < 0 || (pid = fork()) < 0)
		die(1, "fork: %s", strerror(errno));
	if (pid == 0) {
		close(fds[1]);
		close(go[1]);
		sender(fds[0], go[0], &o);
	}
	close(fds[0]);
	close(go[0]);
	alarm(o.timeout);
	getrusage(RUSAGE_SELF, &ru0);
	t0 = now();
	if (write(go[1], "g", 1) != 1)
		die(1, "cannot start the sender");
	got = receive(fds[1], &o);
	secs = now() - t0;
	getrusage(RUSAGE_SELF, &ru1);
	if (wait4(pid, &status, 0, &child) < 0 || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0)
		die(1, "the sender failed");
	if (got != o.bytes)
		die(1, "received %llu of %llu bytes", got, o.bytes);
	gb = (double)got / 1e9;
	printf("PAIR bytes=%llu seconds=%.4f gbps=%.3f cipher=%s path=%s "
	       "write_size=%zu read_size=%zu tx_cpu_per_gb=%.3f "
	       "rx_cpu_per_gb=%.3f\n",
	    got, secs, gb * 8 / secs, o.cipher ? o.cipher->name : "none",
	    o.sendfile ? "sendfile" : "write", o.wsize, o.rsize,
	    cpu_seconds(&child) / gb,
	    (cpu_seconds(&ru1) - cpu_seconds(&ru0)) / gb);
	return 0;
}
