/*
 * conn.c - a connection that moves its data through kTLS where the
 * kernel took it and through OpenSSL elsewhere.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

#include <linux/tls.h>

#include <openssl/err.h>

#include "conn.h"
#include "ktls_diag.h"
#include "mtls.h"

/* How long close waits for the peer's close_notify. */
#define CLOSE_LINGER_SECS 2
/* Userspace TLS: bytes per read() and write() on the socket, at most. */
#define IO_BUFFER (64 * 1024)
/* How early a wait may end and still count as conn_set_deadline's. */
#define DEADLINE_SLACK_MS 20
/* sock_diag's reason, short enough to leave room in c->unconfirmed. */
#define DIAG_ERR_MAX 136

/* The socket's send and receive timeouts, in ms (0: none). */
static void
arm(struct conn *c, long long ms)
{
	struct timeval tv = { .tv_sec = (time_t)(ms / 1000),
		.tv_usec = (suseconds_t)(ms % 1000) * 1000 };

	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	c->armed_ms = ms;
}

/* Every wait from now on: secs (a conn_park's rest no longer counts). */
static void
set_timeout(struct conn *c, int secs)
{
	c->set_ms = secs * 1000LL;
	c->idle_from = 0;
	arm(c, c->set_ms);
}

static long long
mono_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

void
conn_set_timeout(struct conn *c, int secs)
{
	c->idle = secs;
	set_timeout(c, secs);
}

void
conn_set_deadline(struct conn *c, time_t when, const char *why)
{
	c->deadline = when;
	c->deadline_why = why;
	if (when == 0)
		set_timeout(c, c->idle);
}

/* Milliseconds until the deadline (0 once past it), -1 without one. */
static long long
deadline_ms(const struct conn *c)
{
	struct timespec t;
	long long ms;

	if (c->deadline == 0)
		return -1;
	clock_gettime(CLOCK_REALTIME, &t);
	ms = ((long long)c->deadline - t.tv_sec) * 1000 - t.tv_nsec / 1000000;
	return ms > 0 ? ms : 0;
}

/*
 * The deadline has come. A socket timeout may end a few milliseconds
 * early (the kernel counts in jiffies): that is the deadline too.
 */
static int
deadline_passed(const struct conn *c)
{
	long long ms = deadline_ms(c);

	return ms >= 0 && ms <= DEADLINE_SLACK_MS;
}

/*
 * After a wait failed: if the deadline ended it, that is the error, and
 * not a TLS failure (the caller leaves c->failed, so close_notify goes). The idle timeout is a
 * socket timeout, so a deadline shorter than it is one too (see
 * deadline_arm), and the wait ends with EAGAIN like an idle one.
 */
static int
deadline_hit(struct conn *c)
{
	if (!deadline_passed(c))
		return 0;
	conn_seterr(c, "%s", c->deadline_why);
	return 1;
}

/*
 * Before a wait: the socket's timeout is the idle timeout (what is left
 * of it after conn_park), or the time left until the deadline where
 * that is shorter. The deadline is wall-clock (a certificate's
 * notAfter), so it is measured anew before every wait. -1 if it has
 * passed already.
 */
static int
deadline_arm(struct conn *c)
{
	long long ms = deadline_ms(c), idle = c->idle * 1000LL, wait;

	if (ms >= 0 && ms <= DEADLINE_SLACK_MS)
		return deadline_hit(c) ? -1 : 0;
	if (c->idle_from != 0 && idle > 0) {
		idle -= mono_ms() - c->idle_from;
		if (idle < 1)
			idle = 1; /* 0 would be no timeout at all */
	}
	c->idle_from = 0;
	if (ms >= 0)
		wait = c->idle > 0 && ms > idle ? idle : ms;
	else if (idle != c->idle * 1000LL)
		wait = idle;
	else
		wait = c->set_ms;
	if (wait != c->armed_ms)
		arm(c, wait);
	return 0;
}

long long
conn_park(struct conn *c)
{
	long long now = mono_ms(), ms = deadline_ms(c), end = 0;

	c->idle_from = now;
	if (c->idle > 0)
		end = now + c->idle * 1000LL;
	if (ms >= 0 && (end == 0 || now + ms < end))
		end = now + ms;
	return end;
}

int
conn_init(struct conn *c, SSL_CTX *ctx, int fd, int timeout,
    const char *timeout_opt)
{
	char why[MTLS_REASON_MAX];

	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->timeout = timeout;
	c->timeout_opt = timeout_opt;
	set_timeout(c, timeout);
	/* A server thread serves client after client: start with no errors. */
	ERR_clear_error();
	if ((c->ssl = SSL_new(ctx)) == NULL ||
	    (c->k = ktls_new(c->ssl)) == NULL || !SSL_set_fd(c->ssl, fd)) {
		conn_seterr(c, "cannot set up TLS: %s",
		    mtls_err_reason(why, sizeof(why), "out of memory"));
		return -1;
	}
	c->is_server = SSL_is_server(c->ssl) ? 1 : 0;
	return 0;
}

void
conn_seterr(struct conn *c, const char *fmt, ...)
{
	char msg[CONN_ERR_MAX];
	va_list ap;

	/* Formatted apart first: an argument may point into c->err. */
	va_start(ap, fmt);
	if (vsnprintf(msg, sizeof(msg), fmt, ap) < 0)
		msg[0] = '\0';
	va_end(ap);
	memcpy(c->err, msg, strlen(msg) + 1);
}

const char *
conn_error(const struct conn *c)
{
	return c->err;
}

void
conn_set_interrupt(struct conn *c, const atomic_int *flag)
{
	c->interrupt = flag;
	ktls_set_interrupt(c->k, flag);
}

int
conn_interrupted(const struct conn *c)
{
	return c->interrupt != NULL && atomic_load(c->interrupt);
}

/* Before each network call: fail at once if we have been told to stop. */
static int
stop_check(struct conn *c)
{
	if (!conn_interrupted(c))
		return 0;
	conn_seterr(c, "interrupted");
	return -1;
}

/* After OpenSSL wanted I/O on a blocking socket: a signal, go on? */
static int
ssl_retry(const struct conn *c, int e, int saved_errno)
{
	return (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) &&
	    saved_errno == EINTR && !conn_interrupted(c);
}

static long
ms_left(const struct timespec *deadline)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long)(deadline->tv_sec - t.tv_sec) * 1000 +
	    (deadline->tv_nsec - t.tv_nsec) / 1000000;
}

/*
 * Wait for the socket as the handshake wants it, until the deadline:
 * the deadline is for the whole handshake, so a peer that trickles a
 * byte at a time cannot stretch it.
 */
static int
handshake_wait(struct conn *c, int e, const struct timespec *deadline)
{
	struct pollfd p = { .fd = c->fd,
		.events = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT };
	long ms;
	int r;

	for (;;) {
		if (stop_check(c) < 0)
			return -1;
		if ((ms = ms_left(deadline)) <= 0) {
			conn_seterr(c,
			    "handshake not finished "
			    "within %d s (%s)",
			    c->timeout, c->timeout_opt);
			return -1;
		}
		if ((r = poll(&p, 1, (int)ms)) > 0)
			return 0;
		if (r < 0 && errno != EINTR) {
			conn_seterr(c, "waiting for the handshake: %s",
			    strerror(errno));
			return -1;
		}
	}
}

int
conn_handshake(struct conn *c)
{
	struct timespec deadline;
	int flags, ret, e;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += c->timeout;
	flags = fcntl(c->fd, F_GETFL);
	if (flags < 0 || fcntl(c->fd, F_SETFL, flags | O_NONBLOCK) < 0) {
		conn_seterr(c, "socket: %s", strerror(errno));
		return -1;
	}
	for (;;) {
		ERR_clear_error();
		ret = SSL_is_server(c->ssl) ? SSL_accept(c->ssl) :
					      SSL_connect(c->ssl);
		if (ret == 1)
			break;
		e = SSL_get_error(c->ssl, ret);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			if (handshake_wait(c, e, &deadline) == 0)
				continue;
		} else
			mtls_ssl_error(c->ssl, ret, c->err, sizeof(c->err));
		c->failed = 1;
		break;
	}
	/* Blocking again, as everything after the handshake expects. */
	fcntl(c->fd, F_SETFL, flags);
	return ret == 1 ? 0 : -1;
}

/* What the kernel's per-socket report says of one active direction. */
static void
confirm_dir(struct conn *c, enum ktls_dir dir, int conf)
{
	if (!ktls_active(c->k, dir))
		return;
	if (conf == TLS_CONF_HW || conf == TLS_CONF_HW_RECORD)
		ktls_set_hardware(c->k, dir);
	else if (conf != TLS_CONF_SW)
		snprintf(c->unconfirmed, sizeof(c->unconfirmed),
		    "the kernel "
		    "reports kTLS %s as %s",
		    dir == KTLS_TX ? "TX" : "RX", ktls_diag_conf_name(conf));
}

/*
 * The status lines come from the kernel's own report for this socket
 * (sock_diag, see ktls_diag.c): software, or the NIC.
 */
static void
confirm_with_kernel(struct conn *c)
{
	struct ktls_diag d;
	char err[DIAG_ERR_MAX];

	if (!ktls_active(c->k, KTLS_TX) && !ktls_active(c->k, KTLS_RX))
		return;
	if (ktls_diag_query(c->fd, &d, err, sizeof(err)) < 0 || !d.has_ulp) {
		snprintf(c->unconfirmed, sizeof(c->unconfirmed),
		    "the kernel's "
		    "per-socket report is unavailable (%s)",
		    err[0] ? err : "no ULP info; needs CAP_NET_ADMIN");
		return;
	}
	confirm_dir(c, KTLS_TX, d.txconf);
	confirm_dir(c, KTLS_RX, d.rxconf);
}

/* A BIO_f_buffer of size bytes on top of sock, which it then owns. */
static BIO *
buffered(BIO *sock, long size, int for_read)
{
	BIO *buf = BIO_new(BIO_f_buffer());

	if (buf == NULL ||
	    (for_read ? BIO_set_read_buffer_size(buf, size) :
			BIO_set_write_buffer_size(buf, size)) <= 0 ||
	    !BIO_up_ref(sock)) {
		BIO_free(buf);
		return NULL;
	}
	return BIO_push(buf, sock);
}

/*
 * Where a direction stays in OpenSSL, put a buffer between it and the
 * socket: one read() then takes in up to IO_BUFFER bytes, many records
 * (OpenSSL alone reads one record, or one header, at a time), and one
 * write() sends many records where OpenSSL writes each on its own. On
 * loopback every read() also sends an ACK and every write() runs the
 * peer's receive path, so this is most of the userspace path's system
 * time. Never before the switch to kTLS, which must find nothing
 * buffered above the socket. Best effort: without it, I/O still works.
 */
static void
userspace_tune(struct conn *c)
{
	BIO *sock = SSL_get_rbio(c->ssl), *b;

	if (sock == NULL)
		return;
	if (!ktls_active(c->k, KTLS_RX) &&
	    (b = buffered(sock, IO_BUFFER, 1)) != NULL)
		SSL_set0_rbio(c->ssl, b);
	if (!ktls_active(c->k, KTLS_TX) &&
	    (b = buffered(sock, IO_BUFFER, 0)) != NULL)
		SSL_set0_wbio(c->ssl, b);
	/* SSL_write returns after each record: see ssl_write_all. */
	if (!ktls_active(c->k, KTLS_TX))
		SSL_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE);
}

/*
 * A TLS 1.3 server refuses our certificate after our handshake has
 * finished, so its alert and FIN may be here before our switch to kTLS,
 * which then fails: the kernel attaches only to an established
 * connection. The peer has closed, so reading through OpenSSL cannot
 * wait for more: if its last word was a refusal, that is the error.
 */
static int
peer_refused(struct conn *c)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	const char *words;
	char buf[256];

	if (SSL_is_server(c->ssl) || ktls_active(c->k, KTLS_RX) ||
	    getsockopt(c->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0 ||
	    ti.tcpi_state == TCP_ESTABLISHED)
		return 0;
	ERR_clear_error();
	while (SSL_read(c->ssl, buf, sizeof(buf)) > 0)
		;
	words = mtls_refusal_reason(c->ssl);
	ERR_clear_error();
	if (words == NULL)
		return 0;
	conn_seterr(c, "access denied by the server: %s", words);
	c->failed = 1;
	return 1;
}

int
conn_offload(struct conn *c, enum conn_ktls_mode mode)
{
	int d, ret;

	if (mode == CONN_KTLS_OFF) {
		ktls_disable(c->k, "disabled with --ktls off");
		userspace_tune(c);
		return 0;
	}
	ret = ktls_offload(c->k, c->fd);
	confirm_with_kernel(c);
	userspace_tune(c);
	ktls_set_rekey_bytes(c->k, c->rekey_bytes);
	/*
	 * The kernel owns both directions: OpenSSL's record buffers (about
	 * 34 kB) would sit unused for the connection's life. It allocates
	 * them again if it is ever called to read or write; a KeyUpdate
	 * needs only the secrets, which ktls_keys keeps.
	 */
	if (ktls_active(c->k, KTLS_TX) && ktls_active(c->k, KTLS_RX))
		SSL_free_buffers(c->ssl);
	if (ret == 0 || mode != CONN_KTLS_REQUIRE)
		return 0;
	if (peer_refused(c))
		return -1;
	d = ktls_active(c->k, KTLS_RX) ? KTLS_TX : KTLS_RX;
	conn_seterr(c, "kTLS required but %s stayed in userspace: %s",
	    d == KTLS_TX ? "TX" : "RX", ktls_reason(c->k, d));
	return -1;
}

int
conn_free_ssl(struct conn *c)
{
	if (c->ssl == NULL || ktls_detach(c->k) < 0)
		return 0;
	SSL_free(c->ssl);
	c->ssl = NULL;
	c->ssl_freed = 1;
	return 1;
}

int
conn_unread(struct conn *c, const void *buf, size_t len)
{
	size_t left = c->rlen - c->roff;
	char *nb;

	if (len == 0)
		return 0;
	if ((nb = malloc(len + left)) == NULL) {
		conn_seterr(c, "out of memory");
		return -1;
	}
	memcpy(nb, buf, len);
	if (left > 0)
		memcpy(nb + len, c->rbuf + c->roff, left);
	free(c->rbuf);
	c->rbuf = nb;
	c->roff = 0;
	c->rlen = len + left;
	return 0;
}

ssize_t
conn_read_line(struct conn *c, char *line, size_t max)
{
	size_t have = 0, used;
	ssize_t n;
	char *nl;

	while (have + 1 < max) {
		if ((n = conn_read(c, line + have, max - 1 - have)) <= 0) {
			if (n == 0)
				conn_seterr(c,
				    "connection closed in the "
				    "middle of a protocol line");
			return -1;
		}
		if ((nl = memchr(line + have, '\n', (size_t)n)) != NULL) {
			used = (size_t)(nl - line) + 1;
			if (conn_unread(c, nl + 1, have + (size_t)n - used) < 0)
				return -1;
			*nl = '\0';
			return (ssize_t)used - 1;
		}
		have += (size_t)n;
	}
	conn_seterr(c, "protocol line longer than %zu bytes", max - 1);
	return -1;
}

/* Why a kTLS read failed; a TLS 1.3 server refuses our certificate here. */
static void
ktls_read_failed(struct conn *c)
{
	const char *words = NULL;

	if (!c->is_server)
		words = mtls_refusal_words(ktls_peer_alert(c->k));
	if (words != NULL)
		conn_seterr(c, "access denied by the server: %s", words);
	else
		conn_seterr(c, "%s", ktls_error(c->k));
	c->failed = 1;
}

ssize_t
conn_read(struct conn *c, void *buf, size_t len)
{
	int n, e, saved;
	ssize_t r;

	if (c->roff < c->rlen) {
		r = (ssize_t)(len < c->rlen - c->roff ? len :
							c->rlen - c->roff);
		memcpy(buf, c->rbuf + c->roff, (size_t)r);
		c->roff += (size_t)r;
		return r;
	}

	if (deadline_arm(c) < 0)
		return -1;
	if (ktls_active(c->k, KTLS_RX)) {
		/* A flag set while no thread held it (hk_pool_park): now. */
		if (stop_check(c) < 0)
			return -1;
		/* Told to stop is not a TLS failure: close_notify still goes. */
		if ((r = ktls_read(c->k, buf, len)) < 0 && stop_check(c) == 0 &&
		    !deadline_hit(c))
			ktls_read_failed(c);
		if (r > 0)
			c->bytes_in += (unsigned long long)r;
		return r;
	}
	for (;;) {
		if (stop_check(c) < 0)
			return -1;
		ERR_clear_error();
		n = SSL_read(c->ssl, buf,
		    len > 0x40000000 ? 0x40000000 : (int)len);
		saved = errno;
		if (n > 0) {
			c->bytes_in += (unsigned long long)n;
			return n;
		}
		if ((e = SSL_get_error(c->ssl, n)) == SSL_ERROR_ZERO_RETURN)
			return 0;
		if (!ssl_retry(c, e, saved))
			break;
	}
	if (stop_check(c) < 0 || deadline_hit(c))
		return -1;
	mtls_ssl_error(c->ssl, n, c->err, sizeof(c->err));
	c->failed = 1;
	return -1;
}

/*
 * Records out of OpenSSL's write buffer (userspace TX) onto the socket.
 * finishing: we have been told to stop, and this is the last of what
 * goes out before close_notify, so a signal does not end it (the
 * server's own deadline does).
 */
static int
flush(struct conn *c, int finishing)
{
	BIO *w = SSL_get_wbio(c->ssl);

	while (BIO_flush(w) <= 0) {
		if (BIO_should_retry(w) && errno == EINTR &&
		    (finishing || !conn_interrupted(c)))
			continue;
		if (stop_check(c) < 0)
			return -1;
		conn_seterr(c, "sending: %s",
		    errno == EAGAIN ? "timed out waiting for the peer" :
				      strerror(errno));
		c->failed = 1;
		return -1;
	}
	return 0;
}

/*
 * SSL_write all of buf; the records may wait in the buffer for flush().
 * Told to stop in the middle of a record, finish that record first (the
 * peer may well be reading): OpenSSL can send close_notify only after
 * it. With SSL_MODE_ENABLE_PARTIAL_WRITE that SSL_write then returns.
 */
static int
ssl_write_all(struct conn *c, const void *buf, size_t len)
{
	size_t done = 0;
	int n, e, saved, finishing = 0;

	while (done < len) {
		if (!finishing && stop_check(c) < 0)
			return -1;
		ERR_clear_error();
		/* OpenSSL rekeys by itself only when asked. */
		if (c->rekey_bytes > 0 && c->since_rekey >= c->rekey_bytes &&
		    SSL_version(c->ssl) == TLS1_3_VERSION) {
			SSL_key_update(c->ssl, SSL_KEY_UPDATE_NOT_REQUESTED);
			c->since_rekey = 0;
		}
		n = SSL_write(c->ssl, (const char *)buf + done,
		    len - done > 0x40000000 ? 0x40000000 : (int)(len - done));
		saved = errno;
		if (n <= 0) {
			e = SSL_get_error(c->ssl, n);
			if (ssl_retry(c, e, saved))
				continue;
			if (e == SSL_ERROR_WANT_WRITE && saved == EINTR &&
			    conn_interrupted(c)) {
				finishing = 1;
				continue;
			}
			if (stop_check(c) < 0)
				return -1;
			mtls_ssl_error(c->ssl, n, c->err, sizeof(c->err));
			c->failed = 1;
			return -1;
		}
		done += (size_t)n;
		c->since_rekey += (unsigned long long)n;
		if (finishing)
			return stop_check(c);
	}
	return 0;
}

int
conn_write(struct conn *c, const void *buf, size_t len)
{
	if (deadline_arm(c) < 0)
		return -1;
	if (ktls_active(c->k, KTLS_TX)) {
		/* The kernel keeps records whole: close_notify can follow. */
		if (ktls_write(c->k, buf, len) < 0) {
			if (stop_check(c) == 0 && !deadline_hit(c)) {
				conn_seterr(c, "%s", ktls_error(c->k));
				c->failed = 1;
			}
			return -1;
		}
		c->bytes_out += len;
		return 0;
	}
	if (ssl_write_all(c, buf, len) < 0 || flush(c, 0) < 0)
		return -1;
	c->bytes_out += len;
	return 0;
}

int
conn_sendfile(struct conn *c, int fd, off_t offset, size_t count)
{
	char buf[16384];
	size_t done = 0, want;
	ssize_t n;

	if (deadline_arm(c) < 0)
		return -1;
	if (ktls_active(c->k, KTLS_TX)) {
		if (ktls_sendfile(c->k, fd, offset, count) == (ssize_t)count) {
			c->bytes_out += count;
			return 0;
		}
		if (stop_check(c) == 0 && !deadline_hit(c)) {
			conn_seterr(c, "%s", ktls_error(c->k));
			c->failed = 1;
		}
		return -1;
	}
	while (done < count) {
		want = count - done < sizeof(buf) ? count - done : sizeof(buf);
		n = pread(fd, buf, want, offset + (off_t)done);
		if (n <= 0) {
			conn_seterr(c, "reading the file: %s",
			    n == 0 ? "it ended early" : strerror(errno));
			return -1;
		}
		if (ssl_write_all(c, buf, (size_t)n) < 0)
			return -1;
		done += (size_t)n;
	}
	if (flush(c, 0) < 0)
		return -1;
	c->bytes_out += count;
	return 0;
}

const char *
conn_path(const struct conn *c, enum ktls_dir dir)
{
	switch (ktls_state(c->k, dir)) {
	case KTLS_STATE_SOFTWARE:
		return "ktls-sw";
	case KTLS_STATE_HARDWARE:
		return "ktls-hw";
	default:
		return "userspace";
	}
}

void
conn_key_updates(const struct conn *c, unsigned long long *sent,
    unsigned long long *received)
{
	uint64_t s = 0, r = 0;

	if (c->k != NULL)
		ktls_key_update_counts(c->k, &s, &r);
	*sent = s;
	*received = r;
}

static int
send_close_notify(struct conn *c)
{
	char why[MTLS_REASON_MAX];
	int r;

	if (ktls_active(c->k, KTLS_TX)) {
		if (ktls_close_notify(c->k) == 0)
			return 0;
		conn_seterr(c, "%s", ktls_error(c->k));
		return -1;
	}
	/*
	 * Signals may still come (the server is shutting down): they do not
	 * stop this last write. OpenSSL flushes its alert; the flush is for
	 * records still in our buffer before it.
	 */
	do {
		ERR_clear_error();
		r = SSL_shutdown(c->ssl);
	} while (r < 0 && SSL_get_error(c->ssl, r) == SSL_ERROR_WANT_WRITE &&
	    errno == EINTR);
	if (r >= 0 && flush(c, 1) == 0)
		return 0;
	conn_seterr(c, "sending close_notify: %s",
	    mtls_err_reason(why, sizeof(why), "connection lost"));
	return -1;
}

/* Up to secs for the peer to end its side (or a signal). */
static void
wait_for_fin(int fd, int secs)
{
	struct pollfd p = { .fd = fd, .events = POLLRDHUP };

	(void)poll(&p, 1, secs * 1000);
}

/*
 * Closing always stops writing first and then waits briefly for the
 * peer to close too: a socket closed with unread data sends a TCP reset,
 * which can destroy our last records (a reply, or the alert that tells
 * the peer why we refused it) before the peer reads them.
 */
int
conn_close(struct conn *c)
{
	char buf[16384]; /* a whole record, so a KeyUpdate is seen whole */
	int clean;

	if ((c->ssl == NULL && !c->ssl_freed) || c->fd < 0)
		return -1;
	c->deadline = 0; /* what follows has its own, short, bound */
	/* Only a finished handshake has its SSL freed. */
	clean = !c->failed && (c->ssl_freed || SSL_is_init_finished(c->ssl)) &&
	    send_close_notify(c) == 0;
	shutdown(c->fd, SHUT_WR);
	set_timeout(c, CLOSE_LINGER_SECS);
	if (clean) {
		/* The peer's close_notify; it is not an error if it is late. */
		while (conn_read(c, buf, sizeof(buf)) > 0)
			;
		c->err[0] = '\0';
	} else if (ktls_active(c->k, KTLS_RX)) {
		/*
		 * Reading would make the kernel decrypt again, and fail again
		 * on a bad record: wait for the peer's FIN instead.
		 */
		wait_for_fin(c->fd, CLOSE_LINGER_SECS);
	} else {
		while (recv(c->fd, buf, sizeof(buf), 0) > 0)
			;
	}
	return clean ? 0 : -1;
}

void
conn_free(struct conn *c)
{
	free(c->rbuf);
	ktls_free(c->k);
	SSL_free(c->ssl);
	if (c->fd >= 0)
		close(c->fd);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}
