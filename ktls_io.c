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
#include <string.h>
#include <unistd.h>

#include <sys/socket.h>

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

enum { ALERT_CLOSE_NOTIFY = 0 };

/* Kernel errors on a kTLS read, in words (Documentation/networking/tls.rst). */
static const struct {
	int err;
	const char *why;
} rx_errors[] = {
	{ EBADMSG, "record failed authentication (bad_record_mac)" },
	{ EMSGSIZE, "record too large (record_overflow)" },
	{ EINVAL, "record with a wrong TLS version or type" },
	{ EKEYEXPIRED, "peer changed keys (KeyUpdate) and no new key is installed" },
	{ EAGAIN, "timed out waiting for the peer" },
	{ ECONNRESET, "connection reset by peer" },
};

static void
rx_error(struct ktls *k, int err)
{
	size_t i;

	for (i = 0; i < sizeof(rx_errors) / sizeof(rx_errors[0]); i++) {
		if (rx_errors[i].err == err) {
			ktls_seterr(k, "kTLS read: %s", rx_errors[i].why);
			return;
		}
	}
	ktls_seterr(k, "kTLS read: %s", strerror(err));
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

	do
		n = recvmsg(k->fd, &msg, 0);
	while (n < 0 && errno == EINTR);
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

/*
 * Handshake messages after the handshake: NewSessionTicket is consumed
 * (we never resume through kTLS) and a TLS 1.2 HelloRequest is ignored
 * (renegotiation is off; RFC 5246 7.4.1.1 allows ignoring it). They may
 * be split across records, so the 4-byte header and body are tracked.
 */
static int
handshake_bytes(struct ktls *k, const unsigned char *p, size_t n)
{
	size_t take;
	unsigned char type;

	while (n > 0) {
		if (k->hs_left > 0) {
			take = n < k->hs_left ? n : k->hs_left;
			k->hs_left -= take, p += take, n -= take;
			continue;
		}
		k->hs_hdr[k->hs_hdr_len++] = *p++, n--;
		if (k->hs_hdr_len < sizeof(k->hs_hdr))
			continue;
		k->hs_hdr_len = 0;
		type = k->hs_hdr[0];
		k->hs_left = (size_t)k->hs_hdr[1] << 16 |
		    (size_t)k->hs_hdr[2] << 8 | k->hs_hdr[3];
		if (type == SSL3_MT_KEY_UPDATE) {
			ktls_seterr(k, "peer sent a TLS 1.3 KeyUpdate; rekeying "
			    "a kTLS socket is not supported by this version");
			return -1;
		}
		if (type != SSL3_MT_NEWSESSION_TICKET &&
		    !(type == SSL3_MT_HELLO_REQUEST && k->version == TLS1_2_VERSION)) {
			ktls_seterr(k, "peer sent unexpected handshake message "
			    "type %u after the handshake", type);
			return -1;
		}
	}
	return 0;
}

static int
alert(struct ktls *k, const unsigned char *p, size_t n)
{
	if (n != 2) {
		ktls_seterr(k, "peer sent a malformed alert record");
		return -1;
	}
	if (p[1] == ALERT_CLOSE_NOTIFY) {
		k->peer_closed = 1;
		return 0;
	}
	ktls_seterr(k, "peer sent %s alert: %s", p[0] == 2 ? "fatal" : "warning",
	    SSL_alert_desc_string_long(p[1]));
	return -1;
}

ssize_t
ktls_read(struct ktls *k, void *buf, size_t len)
{
	unsigned char type;
	ssize_t n;

	if (k->peer_closed)
		return 0;
	if (len < 2) {
		ktls_seterr(k, "kTLS read: buffer too small");
		return -1;
	}
	for (;;) {
		if ((n = recv_record(k, buf, len, &type)) < 0)
			return -1;
		if (n == 0 && type == REC_DATA) {
			ktls_seterr(k, "peer closed the connection without "
			    "close_notify (truncated)");
			return -1;
		}
		switch (type) {
		case REC_DATA:
			return n;
		case REC_ALERT:
			if (alert(k, buf, (size_t)n) < 0)
				return -1;
			return 0;
		case REC_HANDSHAKE:
			if (handshake_bytes(k, buf, (size_t)n) < 0)
				return -1;
			break;
		default:
			ktls_seterr(k, "peer sent a record of unknown type %u",
			    type);
			return -1;
		}
	}
}

ssize_t
ktls_write(struct ktls *k, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	size_t done = 0;
	ssize_t n;

	while (done < len) {
		n = write(k->fd, p + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ktls_seterr(k, "kTLS write: %s", errno == EAGAIN ?
			    "timed out waiting for the peer" : strerror(errno));
			return -1;
		}
		done += (size_t)n;
	}
	return (ssize_t)len;
}

/* An alert record goes out through sendmsg with TLS_SET_RECORD_TYPE. */
int
ktls_close_notify(struct ktls *k)
{
	union {
		char buf[CMSG_SPACE(sizeof(unsigned char))];
		struct cmsghdr align;
	} cbuf;
	unsigned char body[2] = { 1, ALERT_CLOSE_NOTIFY }; /* warning level */
	struct iovec iov = { .iov_base = body, .iov_len = sizeof(body) };
	struct msghdr msg = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = cbuf.buf,
		.msg_controllen = sizeof(cbuf.buf),
	};
	struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
	ssize_t n;

	cmsg->cmsg_level = SOL_TLS;
	cmsg->cmsg_type = TLS_SET_RECORD_TYPE;
	cmsg->cmsg_len = CMSG_LEN(sizeof(unsigned char));
	*CMSG_DATA(cmsg) = REC_ALERT;
	do
		n = sendmsg(k->fd, &msg, 0);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(body)) {
		ktls_seterr(k, "sending close_notify: %s",
		    n < 0 ? strerror(errno) : "short write");
		return -1;
	}
	return 0;
}

int
ktls_peer_closed(const struct ktls *k)
{
	return k->peer_closed;
}
