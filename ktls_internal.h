/*
 * ktls_internal.h - state shared by ktls_keys.c (key extraction and
 * installation) and ktls_io.c (record-aware I/O). Not for applications.
 */
#ifndef KTLS_INTERNAL_H
#define KTLS_INTERNAL_H

#include <stdarg.h>

#include <sys/socket.h>

#include <openssl/evp.h>

#include "ktls_derive.h"
#include "ktls_keys.h"

/* Room for each direction's reason and for ktls_error()'s message. */
#define KTLS_REASON_MAX 160
#define KTLS_ERR_MAX    256

/* The nonce of every AEAD here; TLS 1.3's per-connection IV. */
#define TLS13_IV_LEN 12

struct ktls_secret {
	unsigned char b[EVP_MAX_MD_SIZE];
	size_t len;
};

struct ktls {
	SSL *ssl;
	int fd;
	uint16_t version; /* TLS1_2_VERSION or TLS1_3_VERSION once offloaded */
	unsigned char is_server;
	const struct ktls_cipher *cipher;
	/*
	 * The suite's hash, for every TLS 1.3 derivation after the switch:
	 * OpenSSL's own (static) digest, kept here so that KeyUpdate works
	 * once ktls_detach() let go of ssl (NULL from then on).
	 */
	const EVP_MD *md;

	/*
	 * TLS 1.3 application traffic secrets, by direction (TX = ours),
	 * captured from the keylog callback during the handshake.
	 */
	struct ktls_secret secret[2];

	/*
	 * Records seen in each direction since that direction's last key
	 * change: this is the record sequence number the kernel must
	 * continue from. OpenSSL 3.0 has no public API for it.
	 */
	uint64_t records[2];

	enum ktls_state state[2];
	char reason[2][KTLS_REASON_MAX];
	char err[KTLS_ERR_MAX];

	/* Post-handshake handshake messages being parsed on RX. */
	unsigned char hs_hdr[4]; /* hs_hdr[0]: type of the message in parse */
	size_t hs_hdr_len;
	size_t hs_left;
	int peer_closed;
	unsigned char alert[2]; /* an alert record being read */
	size_t alert_len;
	int peer_alert; /* a fatal alert's description, -1: none */

	/*
	 * TX record accounting for KeyUpdate: the kernel does not count
	 * records against the AEAD limits, so we do (RFC 8446 5.5).
	 */
	uint64_t tx_bytes;    /* since the last TX key change */
	uint64_t tx_records;  /* likewise, an upper bound */
	uint64_t rekey_bytes; /* 0 = only at the record limit */
	uint64_t key_updates_sent, key_updates_received;

	const atomic_int *interrupt; /* see ktls_set_interrupt */
};

/* An alert record through kTLS TX: 0, or -1 (errno from sendmsg). */
int ktls_tx_alert(struct ktls *k, int level, int desc);

/*
 * Our (TX) record key and IV for version and the suite c, as the kernel
 * would get them: TLS 1.3 from the captured traffic secret, TLS 1.2 from
 * the master secret. iv is 12 bytes for TLS 1.3 and ChaCha20, the 4-byte
 * salt for TLS 1.2 GCM and CCM. 0, or -1 with a message in k.
 */
int
ktls_tx_key_iv(struct ktls *k, uint16_t version, const struct ktls_cipher *c,
    unsigned char key[32], unsigned char iv[TLS13_IV_LEN]);

/* Next TLS 1.3 secret and key for dir, installed in the kernel. */
int ktls_rekey(struct ktls *k, enum ktls_dir dir);

/*
 * The kernel stopped reading (EKEYEXPIRED) at a handshake record that
 * only looked like the start of a KeyUpdate: install the current RX key
 * again at the kernel's sequence number so that reading goes on.
 */
int ktls_rx_resume(struct ktls *k);

/*
 * What ktls_read() does with the bytes of a record that is not application
 * data (type: 21 alert, 22 handshake, or any other, which is refused), in
 * whatever pieces recvmsg returned them. Returns 1 when they were consumed
 * (read on), 0 at the peer's close_notify, -1 with a message otherwise.
 * ktls_read() calls nothing else for them, so tests/fuzz/fuzz_records.c
 * can reach the same parsers without a socket.
 */
int ktls_io_control_bytes(struct ktls *k, unsigned char type,
    const unsigned char *p, size_t n);

/*
 * Keep the TLS 1.3 application traffic secret of one keylog line
 * ("LABEL <client_random hex> <secret hex>", as OpenSSL's keylog callback
 * gives it) for our side, is_server telling which one that is. Other
 * lines are ignored; a malformed secret leaves its slot empty.
 */
void ktls_keylog_capture_line(struct ktls *k, int is_server, const char *line);

/*
 * The sequence-number rule (see ktls_keys.c): one message-callback event
 * (content_type SSL3_RT_HEADER with the record header in buf, or a whole
 * message) updates the count of records since the last key change in its
 * direction. Pure, so tests/test_ktls_keys.c feeds it the sequences that
 * arise.
 */
void ktls_record_event(uint64_t records[2], int tls_version, int write_p,
    int content_type, const unsigned char *buf, size_t len);

void ktls_seterr(struct ktls *k, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- Testing ---- */

/*
 * Every system call the kTLS path makes on its socket, and the question
 * it asks the kernel about rekeying, in one table (as s2n-tls does):
 * ktls_keys.c and ktls_io.c call them only through ktls_syscalls(), so
 * that a test can stand in for a kernel that refuses.
 */
struct ktls_syscalls {
	int (*setsockopt)(int fd, int level, int optname, const void *optval,
	    socklen_t optlen);
	int (*getsockopt)(int fd, int level, int optname, void *optval,
	    socklen_t *optlen);
	ssize_t (*sendmsg)(int fd, const struct msghdr *msg, int flags);
	ssize_t (*recvmsg)(int fd, struct msghdr *msg, int flags);
	ssize_t (*write)(int fd, const void *buf, size_t len);
	ssize_t (*sendfile)(int out_fd, int in_fd, off_t *offset, size_t count);
	int (*kernel_can_rekey)(void); /* /proc/net/tls_stat has TlsTxRekeyOk */
};

/* The table in use: the real calls unless a test swapped it. */
const struct ktls_syscalls *ktls_syscalls(void);

/*
 * For tests only (tests/test_offload.c): send every call above to sys,
 * or back to the real ones with NULL. Not thread-safe; the programs
 * never call it.
 */
void ktls_syscalls_set_for_testing(const struct ktls_syscalls *sys);

#endif
