/*
 * conn.h - one mTLS connection, owned in one place: its socket, its SSL
 * and its kTLS state. Reads and writes go through the kernel for each
 * direction kTLS took, through OpenSSL for the others.
 */
#ifndef CONN_H
#define CONN_H

#include <stdatomic.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include <openssl/ssl.h>

#include "ktls_keys.h"

/* What conn_offload does: try, insist, or stay in userspace. */
enum conn_ktls_mode {
	CONN_KTLS_AUTO,
	CONN_KTLS_REQUIRE,
	CONN_KTLS_OFF
};

/* Room for c->err, with its terminating NUL. */
#define CONN_ERR_MAX 320
/* Room for c->unconfirmed, with its terminating NUL. */
#define CONN_UNCONFIRMED_MAX 200

struct conn {
	int fd;
	SSL *ssl; /* NULL after conn_free_ssl */
	struct ktls *k;
	unsigned char is_server;
	unsigned char ssl_freed; /* by conn_free_ssl, after the handshake */
	int failed;              /* a fatal error: no close_notify on close */
	int timeout;             /* seconds: the handshake, then each wait */
	const char *timeout_opt; /* the option that set it, for messages */
	const atomic_int *interrupt; /* see conn_set_interrupt */
	/* conn_set_timeout's seconds, conn_set_deadline's time (0: none). */
	int idle;
	long long idle_from; /* conn_park's time (CLOCK_MONOTONIC ms), 0 */
	long long set_ms, armed_ms; /* the last timeout set; the socket's */
	time_t deadline;
	const char *deadline_why;
	unsigned long long
	    rekey_bytes; /* TLS 1.3 KeyUpdate interval, 0 = default */
	unsigned long long since_rekey; /* userspace TLS 1.3 bytes since then */
	/* Application bytes off and onto the wire (conn_unread: no change). */
	unsigned long long bytes_in, bytes_out;
	/* Why the kernel did not confirm kTLS. */
	char unconfirmed[CONN_UNCONFIRMED_MAX];
	char *rbuf; /* bytes read past a protocol line */
	size_t roff, rlen;
	char err[CONN_ERR_MAX]; /* see conn_seterr */
};

/*
 * Take ownership of the connected socket fd (it is closed by
 * conn_free even on failure). timeout bounds the whole handshake and
 * then every network wait; timeout_opt ("--timeout") names it in errors.
 */
int conn_init(struct conn *c, SSL_CTX *ctx, int fd, int timeout,
    const char *timeout_opt);

/*
 * Once *flag is set, a signal ends whatever network wait the connection
 * is in: the call fails with "interrupted", and conn_close still sends
 * close_notify where the connection allows it.
 */
void conn_set_interrupt(struct conn *c, const atomic_int *flag);

/*
 * Set c->err, the message of a call that failed (0 or -1 with c->err):
 * the modules above conn write it only through here. An argument may be
 * c->err itself, e.g. to prefix it.
 */
void conn_seterr(struct conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The message of the call that failed last, for the program to print. */
const char *conn_error(const struct conn *c);

/* The call that failed was ended by conn_set_interrupt's flag. */
int conn_interrupted(const struct conn *c);

/* Bound every later network wait (send and receive) by secs. */
void conn_set_timeout(struct conn *c, int secs);

/*
 * End the connection at when (wall-clock time, e.g. a certificate's
 * notAfter): a read or write waiting then wakes, fails with why as its
 * error, and conn_close still sends close_notify. 0 removes it.
 */
void conn_set_deadline(struct conn *c, time_t when, const char *why);

/*
 * Before the connection waits without a thread (hk_pool_park): when its
 * next wait would end, the idle timeout or the deadline
 * (CLOCK_MONOTONIC milliseconds, 0: never). The next wait then waits
 * only what is left of the idle timeout, so that a connection parked for
 * part of it ends as one that waited all of it on a thread, with the
 * same error.
 */
long long conn_park(struct conn *c);

/*
 * The TLS handshake, in the role of the SSL_CTX, finished within the
 * timeout however the peer trickles its bytes.
 */
int conn_handshake(struct conn *c);

/*
 * Offload to kTLS as mode says. Returns -1 only when mode is require
 * and a direction stayed in userspace.
 */
int conn_offload(struct conn *c, enum conn_ktls_mode mode);

/*
 * Once the kernel holds both directions, free the SSL: its session,
 * handshake state, the peer's certificates and OpenSSL's copies of the
 * keys. From then on the kernel and the kTLS module carry the connection
 * (reads, writes, KeyUpdate both ways, alerts, close_notify), and c->ssl
 * is NULL: call it once nothing more is read from the SSL (the peer's
 * certificate, revocation notes, staples; take a reference to what must
 * outlive it). Returns 1 if freed, 0 if a direction is in userspace,
 * where OpenSSL still does the records, and the SSL stays.
 */
int conn_free_ssl(struct conn *c);

/* KeyUpdates sent and received after the switch to kTLS. */
void conn_key_updates(const struct conn *c, unsigned long long *sent,
    unsigned long long *received);

/* >0 bytes read, 0 at the peer's close_notify, -1 on error. */
ssize_t conn_read(struct conn *c, void *buf, size_t len);

/* Put bytes back to be returned by the next conn_read. */
int conn_unread(struct conn *c, const void *buf, size_t len);

/*
 * Read one line ending in '\n' (not stored) into line, at most max-1
 * bytes; bytes after it stay for conn_read. Returns its length or -1.
 */
ssize_t conn_read_line(struct conn *c, char *line, size_t max);

/*
 * Send count bytes of fd from offset: sendfile() through kTLS TX where
 * the kernel has it, read + SSL_write otherwise. 0 or -1.
 */
int conn_sendfile(struct conn *c, int fd, off_t offset, size_t count);

/* "ktls-sw", "ktls-hw" or "userspace": who does this direction's crypto. */
const char *conn_path(const struct conn *c, enum ktls_dir dir);

/* Write all of buf; 0 or -1. */
int conn_write(struct conn *c, const void *buf, size_t len);

/*
 * Send close_notify, stop writing, and wait briefly for the peer's
 * close so that nothing in flight is lost to a TCP reset.
 */
int conn_close(struct conn *c);

void conn_free(struct conn *c);

#endif
