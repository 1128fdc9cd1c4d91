/*
 * ktls_io.c - record-aware reads and writes on a socket whose TLS
 * records the kernel encrypts and decrypts.
 *
 * With TLS_RX on, a record that is not application data can only be
 * read through recvmsg() with room for a TLS_GET_RECORD_TYPE control
 * message; a plain read() of one fails with EIO. So every read here goes
 * through recvmsg, and the record type decides what the bytes mean.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <string.h>

#include <sys/socket.h>
#include <sys/time.h>

#include <linux/tls.h>

#include <openssl/ssl.h>

#include "ktls_internal.h"

#ifndef SOL_TLS
#define SOL_TLS 282
#endif

enum {
	REC_ALERT = 21,
	REC_HANDSHAKE = 22,
	REC_DATA = 23,
};

enum {
	ALERT_WARNING = 1,
	ALERT_FATAL = 2,
	ALERT_CLOSE_NOTIFY = 0,
	ALERT_UNEXPECTED_MESSAGE = 10,
	ALERT_BAD_RECORD_MAC = 20,
	ALERT_RECORD_OVERFLOW = 22,
	ALERT_ILLEGAL_PARAMETER = 47,
	ALERT_DECODE_ERROR = 50,
	ALERT_INTERNAL_ERROR = 80,
	ALERT_NO_RENEGOTIATION = 100,
};

#define MAX_RECORD 16384

/*
 * Kernel errors on a kTLS read, in words (Documentation/networking/
 * tls.rst), and the alert that tells the peer (0: none, the peer is gone
 * or it is our own timeout).
 */
static const struct {
	int err;
	const char *why;
	unsigned char alert;
} rx_errors[] = {
	{ EBADMSG, "record failed authentication (bad_record_mac)",
	    ALERT_BAD_RECORD_MAC },
	{ EMSGSIZE, "record too large (record_overflow)",
	    ALERT_RECORD_OVERFLOW },
	{ EINVAL, "record with a wrong TLS version or type",
	    ALERT_DECODE_ERROR },
	{ EKEYEXPIRED,
	    "peer changed keys (KeyUpdate) and no new key is installed",
	    ALERT_INTERNAL_ERROR },
	{ EAGAIN, "timed out waiting for the peer", 0 },
	{ ECONNRESET, "connection reset by peer", 0 },
};

/*
 * A failed decryption leaves the error pending on the socket, where it
 * would also fail the alert we send about it: reading SO_ERROR clears it.
 */
static void
clear_socket_error(struct ktls *k)
{
	socklen_t len = sizeof(int);
	int e;

	(void)ktls_syscalls()->getsockopt(k->fd, SOL_SOCKET, SO_ERROR, &e,
	    &len);
}

static void
rx_error(struct ktls *k, int err)
{
	size_t i;

	for (i = 0; i < sizeof(rx_errors) / sizeof(rx_errors[0]); i++) {
		if (rx_errors[i].err == err) {
			ktls_seterr(k, "kTLS read: %s", rx_errors[i].why);
			if (rx_errors[i].alert != 0) {
				clear_socket_error(k);
				(void)ktls_tx_alert(k, ALERT_FATAL,
				    rx_errors[i].alert);
			}
			return;
		}
	}
	ktls_seterr(k, "kTLS read: %s", strerror(err));
}

/*
 * Whether to go on after EINTR: yes, unless the application has asked
 * for signals to end blocked calls (ktls_set_interrupt) and one did.
 */
static int
retry_eintr(const struct ktls *k)
{
	return errno == EINTR &&
	    (k->interrupt == NULL || !atomic_load(k->interrupt));
}

static int
interrupted(struct ktls *k)
{
	if (k->interrupt == NULL || !atomic_load(k->interrupt))
		return 0;
	ktls_seterr(k, "interrupted");
	return 1;
}

/* One recvmsg: n bytes of a single record type (the kernel never mixes). */
static ssize_t
recv_record(struct ktls *k, void *buf, size_t len, unsigned char *type)
{
	union {
		char buf[CMSG_SPACE(sizeof(unsigned char))];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr msg = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = cbuf.buf,
		.msg_controllen = sizeof(cbuf.buf),
	};
	struct cmsghdr *cmsg;
	ssize_t n;

	for (;;) {
		n = ktls_syscalls()->recvmsg(k->fd, &msg, 0);
		if (n < 0 && retry_eintr(k))
			continue;
		/* Inside a handshake message: see ktls_rx_resume(). */
		if (n < 0 && errno == EKEYEXPIRED && k->hs_hdr_len > 0) {
			if (ktls_rx_resume(k) < 0) {
				(void)ktls_tx_alert(k, ALERT_FATAL,
				    ALERT_INTERNAL_ERROR);
				return -1;
			}
			continue;
		}
		break;
	}
	if (n < 0 && interrupted(k))
		return -1;
	if (n < 0) {
		rx_error(k, errno);
		return -1;
	}
	*type = REC_DATA;
	cmsg = CMSG_FIRSTHDR(&msg);
	if (cmsg != NULL && cmsg->cmsg_level == SOL_TLS &&
	    cmsg->cmsg_type == TLS_GET_RECORD_TYPE)
		*type = *CMSG_DATA(cmsg);
	return n;
}

/* Send one record of the given type through kTLS TX. */
static int
send_record(struct ktls *k, unsigned char type, const void *buf, size_t len)
{
	union {
		char buf[CMSG_SPACE(sizeof(unsigned char))];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = cbuf.buf,
		.msg_controllen = sizeof(cbuf.buf),
	};
	struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
	ssize_t n;

	if (!ktls_active(k, KTLS_TX))
		return -1;
	cmsg->cmsg_level = SOL_TLS;
	cmsg->cmsg_type = TLS_SET_RECORD_TYPE;
	cmsg->cmsg_len = CMSG_LEN(sizeof(unsigned char));
	*CMSG_DATA(cmsg) = type;
	/*
	 * Control records go out even after ktls_set_interrupt's flag: the
	 * close_notify that follows an interrupted write is the point of it.
	 */
	do
		n = ktls_syscalls()->sendmsg(k->fd, &msg, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n == (ssize_t)len ? 0 : -1;
}

int
ktls_tx_alert(struct ktls *k, int level, int desc)
{
	unsigned char body[2] = { (unsigned char)level, (unsigned char)desc };

	return send_record(k, REC_ALERT, body, sizeof(body));
}

int
ktls_key_update(struct ktls *k, int request_peer)
{
	unsigned char msg[5] = { SSL3_MT_KEY_UPDATE, 0, 0, 1,
		(unsigned char)(request_peer ? 1 : 0) };

	if (k->version != TLS1_3_VERSION || !ktls_active(k, KTLS_TX)) {
		ktls_seterr(k, "KeyUpdate needs TLS 1.3 with kTLS TX");
		return -1;
	}
	if (!ktls_kernel_can_rekey()) {
		ktls_seterr(k,
		    "this kernel cannot rekey kTLS (Linux 6.14 or "
		    "later can): the send key cannot be updated");
		(void)ktls_tx_alert(k, ALERT_FATAL, ALERT_INTERNAL_ERROR);
		return -1;
	}
	if (send_record(k, REC_HANDSHAKE, msg, sizeof(msg)) < 0) {
		ktls_seterr(k, "sending KeyUpdate: %s", strerror(errno));
		return -1;
	}
	if (ktls_rekey(k, KTLS_TX) < 0)
		return -1;
	k->tx_bytes = k->tx_records = 0;
	k->key_updates_sent++;
	return 0;
}

/*
 * The peer's KeyUpdate was the last record under its old key: install
 * the next one, and if it asked, answer with our own before any more
 * data (RFC 8446 4.6.3). A request value other than 0 or 1 is an
 * illegal_parameter (4.6.3), as OpenSSL answers in userspace.
 */
static int
peer_key_update(struct ktls *k, unsigned char request)
{
	if (request > 1) {
		ktls_seterr(k,
		    "peer sent a KeyUpdate with an invalid request "
		    "value %u",
		    request);
		(void)ktls_tx_alert(k, ALERT_FATAL, ALERT_ILLEGAL_PARAMETER);
		return -1;
	}
	if (ktls_rekey(k, KTLS_RX) < 0) {
		(void)ktls_tx_alert(k, ALERT_FATAL, ALERT_INTERNAL_ERROR);
		return -1;
	}
	k->key_updates_received++;
	return request ? ktls_key_update(k, 0) : 0;
}

/* What a handshake message after the handshake leads to. */
enum post_hs {
	POST_HS_REFUSE,     /* unexpected_message (RFC 8446 4, RFC 5246 7.4) */
	POST_HS_SKIP,       /* read past it */
	POST_HS_KEY_UPDATE, /* change the receive key once it is whole */
	POST_HS_NO_RENEG,   /* skip it and answer no_renegotiation */
};

/*
 * The messages a peer may send after the handshake, by version and by
 * who receives them; anything else is refused. Renegotiation is refused
 * the way OpenSSL refuses it in userspace (SSL_OP_NO_RENEGOTIATION): the
 * warning no_renegotiation (RFC 5246 7.2.2, 7.4.1.1; RFC 5746 4.2), after
 * which the connection goes on under the same keys; nothing is ever read
 * under keys a renegotiation would have made.
 */
static const struct {
	uint16_t version;
	unsigned char type;
	unsigned char to_server;
	enum post_hs action;
} post_handshake[] = {
	/* RFC 8446 4.6.1: tickets go from server to client. */
	{ TLS1_3_VERSION, SSL3_MT_NEWSESSION_TICKET, 0, POST_HS_SKIP },
	/* 4.6.3: either side may update its key. */
	{ TLS1_3_VERSION, SSL3_MT_KEY_UPDATE, 0, POST_HS_KEY_UPDATE },
	{ TLS1_3_VERSION, SSL3_MT_KEY_UPDATE, 1, POST_HS_KEY_UPDATE },
	/* RFC 5246 7.4.1.1: a server asks for a renegotiation. */
	{ TLS1_2_VERSION, SSL3_MT_HELLO_REQUEST, 0, POST_HS_NO_RENEG },
	/* RFC 5246 7.4.1.2: a client starts one. */
	{ TLS1_2_VERSION, SSL3_MT_CLIENT_HELLO, 1, POST_HS_NO_RENEG },
};

static enum post_hs
post_hs_action(const struct ktls *k, unsigned char type)
{
	size_t i;

	for (i = 0; i < sizeof(post_handshake) / sizeof(post_handshake[0]); i++)
		if (post_handshake[i].version == k->version &&
		    post_handshake[i].type == type &&
		    post_handshake[i].to_server == k->is_server)
			return post_handshake[i].action;
	return POST_HS_REFUSE;
}

/* A message header is complete: is this message allowed here? */
static int
handshake_header(struct ktls *k)
{
	unsigned char type = k->hs_hdr[0];

	k->hs_left = (size_t)k->hs_hdr[1] << 16 | (size_t)k->hs_hdr[2] << 8 |
	    k->hs_hdr[3];
	switch (post_hs_action(k, type)) {
	case POST_HS_SKIP:
		return 0;
	case POST_HS_KEY_UPDATE:
		if (k->hs_left == 1)
			return 0;
		ktls_seterr(k, "peer sent a KeyUpdate of %zu bytes, not 1",
		    k->hs_left);
		(void)ktls_tx_alert(k, ALERT_FATAL, ALERT_DECODE_ERROR);
		return -1;
	case POST_HS_NO_RENEG:
		/*
		 * Best effort: with TX in userspace there is no way to send
		 * a lone alert, and the request is then just ignored.
		 */
		(void)ktls_tx_alert(k, ALERT_WARNING, ALERT_NO_RENEGOTIATION);
		return 0;
	case POST_HS_REFUSE:
		break;
	}
	ktls_seterr(k,
	    "peer sent unexpected handshake message type %u "
	    "after the handshake",
	    type);
	(void)ktls_tx_alert(k, ALERT_FATAL, ALERT_UNEXPECTED_MESSAGE);
	return -1;
}

/*
 * Handshake messages after the handshake (see post_handshake[]). They may
 * be split across records and several may share one, so the 4-byte
 * header and the body are tracked across calls; a message's body is
 * only kept for a KeyUpdate (one byte).
 */
static int
handshake_bytes(struct ktls *k, const unsigned char *p, size_t n)
{
	size_t take;

	while (n > 0) {
		if (k->hs_hdr_len < sizeof(k->hs_hdr)) {
			k->hs_hdr[k->hs_hdr_len++] = *p++, n--;
			if (k->hs_hdr_len < sizeof(k->hs_hdr))
				continue;
			if (handshake_header(k) < 0)
				return -1;
		} else {
			take = n < k->hs_left ? n : k->hs_left;
			p += take, n -= take, k->hs_left -= take;
		}
		if (k->hs_left > 0)
			continue;
		/* A whole message. */
		k->hs_hdr_len = 0;
		if (k->hs_hdr[0] != SSL3_MT_KEY_UPDATE)
			continue;
		/* A key change must end its record (RFC 8446 5.1). */
		if (n != 0) {
			ktls_seterr(k,
			    "peer's KeyUpdate does not end its record");
			(void)ktls_tx_alert(k, ALERT_FATAL,
			    ALERT_UNEXPECTED_MESSAGE);
			return -1;
		}
		return peer_key_update(k, p[-1]); /* its one-byte body */
	}
	return 0;
}

/* Alert bytes may come one at a time into a tiny buffer: collect two. */
static int
alert(struct ktls *k, const unsigned char *p, size_t n)
{
	while (n > 0 && k->alert_len < sizeof(k->alert))
		k->alert[k->alert_len++] = *p++, n--;
	if (n > 0) {
		ktls_seterr(k, "peer sent a malformed alert record");
		return -1;
	}
	if (k->alert_len < sizeof(k->alert))
		return 1; /* the rest is still to come */
	k->alert_len = 0;
	if (k->alert[1] == ALERT_CLOSE_NOTIFY && k->alert[0] == ALERT_WARNING) {
		k->peer_closed = 1;
		return 0;
	}
	if (k->alert[0] == ALERT_FATAL)
		k->peer_alert = k->alert[1];
	ktls_seterr(k, "peer sent %s alert: %s",
	    k->alert[0] == ALERT_FATAL ? "fatal" : "warning",
	    SSL_alert_desc_string_long(k->alert[1]));
	return -1;
}

int
ktls_io_control_bytes(struct ktls *k, unsigned char type,
    const unsigned char *p, size_t n)
{
	/*
	 * recvmsg returns nothing of a control record only when it is empty,
	 * which RFC 8446 5.1 (and RFC 5246 6.2.1) forbid for both types.
	 */
	if (n == 0 && (type == REC_ALERT || type == REC_HANDSHAKE)) {
		ktls_seterr(k, "peer sent an empty %s record",
		    type == REC_ALERT ? "alert" : "handshake");
		(void)ktls_tx_alert(k, ALERT_FATAL, ALERT_UNEXPECTED_MESSAGE);
		return -1;
	}
	switch (type) {
	case REC_ALERT:
		return alert(k, p, n);
	case REC_HANDSHAKE:
		return handshake_bytes(k, p, n) < 0 ? -1 : 1;
	}
	ktls_seterr(k, "peer sent a record of unknown type %u", type);
	return -1;
}

/*
 * TLS 1.3 forbids other records between the pieces of a handshake message
 * (RFC 8446 5.1). TLS 1.2 allows them (RFC 5246 6.2.1), so there the
 * message's parse simply goes on with the next handshake record.
 */
static int
interleaved(struct ktls *k)
{
	if (k->version != TLS1_3_VERSION || k->hs_hdr_len == 0)
		return 0;
	ktls_seterr(k,
	    "peer sent another record inside a fragmented "
	    "handshake message");
	(void)ktls_tx_alert(k, ALERT_FATAL, ALERT_UNEXPECTED_MESSAGE);
	return 1;
}

ssize_t
ktls_read(struct ktls *k, void *buf, size_t len)
{
	unsigned char type;
	ssize_t n;
	int r;

	if (k->peer_closed || len == 0)
		return 0;
	for (;;) {
		if ((n = recv_record(k, buf, len, &type)) < 0)
			return -1;
		if (n == 0 && type == REC_DATA) {
			ktls_seterr(k,
			    "peer closed the connection without "
			    "close_notify (truncated)");
			return -1;
		}
		if (type != REC_HANDSHAKE && interleaved(k))
			return -1;
		if (type == REC_DATA)
			return n;
		if ((r = ktls_io_control_bytes(k, type, buf, (size_t)n)) <= 0)
			return r;
		/*
		 * The kernel returns a control record whole when there is
		 * room: half an alert with room to spare was a one-byte
		 * record, and alerts must not be fragmented (RFC 8446 5.1).
		 */
		if (type == REC_ALERT && k->alert_len != 0 && (size_t)n < len) {
			ktls_seterr(k, "peer sent a fragmented alert");
			(void)ktls_tx_alert(k, ALERT_FATAL, ALERT_DECODE_ERROR);
			return -1;
		}
	}
}

/*
 * The kernel keeps one pending error per socket: a bad record that kTLS
 * RX met in the background (a data record decrypted ahead of our read)
 * fails the next write. Report it as the receive error it is.
 */
static int
tx_is_rx_error(struct ktls *k, int err)
{
	if (err != EBADMSG && err != EMSGSIZE)
		return 0;
	rx_error(k, err);
	return 1;
}

/* Rekey TX before the byte budget or the AEAD record limit runs out. */
static int
tx_budget(struct ktls *k)
{
	if (k->version != TLS1_3_VERSION)
		return 0;
	if ((k->rekey_bytes > 0 && k->tx_bytes >= k->rekey_bytes) ||
	    k->tx_records >= k->cipher->max_records)
		return ktls_key_update(k, 0);
	return 0;
}

/*
 * Sending never blocks in the kernel: a blocking kTLS write() or
 * sendfile() can wait out the socket's SO_SNDTIMEO several times in one
 * call (for memory, then again inside TCP for each record it pushes), so
 * on a dead path a sender held on for 3 to 6 times its timeout. The
 * calls run with O_NONBLOCK (only for them: reads stay blocking, bounded
 * by SO_RCVTIMEO) and the wait for room is here, one poll() of at most
 * SO_SNDTIMEO without progress. Returns the old file flags, or -1 when
 * they could not be read (the calls then stay blocking).
 */
static int
tx_nonblocking(const struct ktls *k)
{
	int flags = fcntl(k->fd, F_GETFL);

	if (flags >= 0 && !(flags & O_NONBLOCK) &&
	    fcntl(k->fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return -1;
	return flags;
}

static void
tx_restore(const struct ktls *k, int flags)
{
	int saved = errno;

	if (flags >= 0 && !(flags & O_NONBLOCK))
		(void)fcntl(k->fd, F_SETFL, flags);
	errno = saved;
}

/*
 * After EAGAIN: wait for room for up to SO_SNDTIMEO (0: for ever).
 * 0 to try again; -1 with errno EAGAIN (timed out) or EINTR.
 */
static int
tx_wait(struct ktls *k)
{
	struct pollfd p = { .fd = k->fd, .events = POLLOUT };
	struct timeval tv = { 0 };
	socklen_t len = sizeof(tv);
	int ms = -1, r;

	if (ktls_syscalls()->getsockopt(k->fd, SOL_SOCKET, SO_SNDTIMEO, &tv,
		&len) == 0 &&
	    (tv.tv_sec > 0 || tv.tv_usec > 0))
		ms = tv.tv_sec >= INT_MAX / 1000 - 1 ?
		    INT_MAX :
		    (int)(tv.tv_sec * 1000 + (tv.tv_usec + 999) / 1000);
	if ((r = poll(&p, 1, ms)) > 0)
		return 0;
	if (r == 0)
		errno = EAGAIN;
	return -1;
}

/* After a failed send: call again (room came, or a signal we go on after). */
static int
tx_again(struct ktls *k)
{
	if (errno == EAGAIN && tx_wait(k) == 0)
		return 1;
	return retry_eintr(k);
}

static ssize_t
write_loop(struct ktls *k, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	size_t done = 0, chunk;
	ssize_t n;

	while (done < len) {
		if (interrupted(k) || tx_budget(k) < 0)
			return -1;
		chunk = len - done;
		if (k->rekey_bytes > 0 && chunk > k->rekey_bytes - k->tx_bytes)
			chunk = (size_t)(k->rekey_bytes - k->tx_bytes);
		n = ktls_syscalls()->write(k->fd, p + done, chunk);
		if (n < 0 && tx_again(k))
			continue;
		if (n < 0 && tx_is_rx_error(k, errno))
			return -1;
		if (n < 0) {
			ktls_seterr(k, "kTLS write: %s",
			    errno == EAGAIN ? "timed out waiting for the peer" :
					      strerror(errno));
			return -1;
		}
		done += (size_t)n;
		k->tx_bytes += (uint64_t)n;
		/* Each write() closes its last record: an upper bound. */
		k->tx_records += ((uint64_t)n + MAX_RECORD - 1) / MAX_RECORD;
	}
	return (ssize_t)len;
}

/*
 * sendfile() straight from the page cache through the kernel's record
 * layer: no copy to userspace and no userspace crypto. Chunked so that
 * the KeyUpdate budget is honoured between calls.
 */
static ssize_t
sendfile_loop(struct ktls *k, int in_fd, off_t offset, size_t count)
{
	size_t done = 0, chunk;
	ssize_t n;

	while (done < count) {
		if (interrupted(k) || tx_budget(k) < 0)
			return -1;
		chunk = count - done;
		if (chunk > (size_t)1 << 30)
			chunk = (size_t)1 << 30;
		if (k->rekey_bytes > 0 && chunk > k->rekey_bytes - k->tx_bytes)
			chunk = (size_t)(k->rekey_bytes - k->tx_bytes);
		n = ktls_syscalls()->sendfile(k->fd, in_fd, &offset, chunk);
		if (n < 0 && tx_again(k))
			continue;
		if (n < 0 && tx_is_rx_error(k, errno))
			return -1;
		if (n <= 0) {
			ktls_seterr(k, "kTLS sendfile: %s",
			    n == 0 ? "the file ended early" :
				errno == EAGAIN ?
				     "timed out waiting for the peer" :
				     strerror(errno));
			return -1;
		}
		done += (size_t)n;
		k->tx_bytes += (uint64_t)n;
		k->tx_records +=
		    ((uint64_t)n + MAX_RECORD - 1) / MAX_RECORD + 1;
	}
	return (ssize_t)count;
}

ssize_t
ktls_write(struct ktls *k, const void *buf, size_t len)
{
	int flags = tx_nonblocking(k);
	ssize_t r = write_loop(k, buf, len);

	tx_restore(k, flags);
	return r;
}

ssize_t
ktls_sendfile(struct ktls *k, int in_fd, off_t offset, size_t count)
{
	int flags = tx_nonblocking(k);
	ssize_t r = sendfile_loop(k, in_fd, offset, count);

	tx_restore(k, flags);
	return r;
}

/* An alert record goes out through sendmsg with TLS_SET_RECORD_TYPE. */
int
ktls_close_notify(struct ktls *k)
{
	unsigned char body[2] = { ALERT_WARNING, ALERT_CLOSE_NOTIFY };

	if (send_record(k, REC_ALERT, body, sizeof(body)) < 0) {
		ktls_seterr(k, "sending close_notify: %s", strerror(errno));
		return -1;
	}
	return 0;
}

void
ktls_set_rekey_bytes(struct ktls *k, uint64_t bytes)
{
	k->rekey_bytes = bytes;
}

void
ktls_set_interrupt(struct ktls *k, const atomic_int *flag)
{
	k->interrupt = flag;
}

void
ktls_key_update_counts(const struct ktls *k, uint64_t *sent, uint64_t *received)
{
	*sent = k->key_updates_sent;
	*received = k->key_updates_received;
}

int
ktls_peer_closed(const struct ktls *k)
{
	return k->peer_closed;
}

int
ktls_peer_alert(const struct ktls *k)
{
	return k->peer_alert;
}
