/*
 * ktls_keys.h - hand an OpenSSL TLS 1.2/1.3 connection to Linux kernel TLS.
 *
 * Use:
 *   ktls_ctx_prepare(ctx)           once per SSL_CTX, before any handshake
 *   k = ktls_new(ssl)               per connection, before its handshake
 *   ... SSL_connect / SSL_accept ...
 *   ktls_offload(k, fd)             extract secrets, install TLS_RX, TLS_TX
 *   ktls_detach(k)                  optional: then SSL_free(ssl) (both
 *                                   directions in the kernel only)
 *   ktls_read / ktls_write          record-aware I/O on the kTLS socket
 *   ktls_close_notify(k)            send close_notify through kTLS TX
 *   ktls_free(k)                    wipe every secret
 *
 * The module never prints and never exits: functions return -1 and leave
 * a message readable with ktls_error().
 */
#ifndef KTLS_KEYS_H
#define KTLS_KEYS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/ssl.h>

enum ktls_dir {
	KTLS_TX = 0,
	KTLS_RX = 1
};

/* Outcome of offloading one direction. */
enum ktls_state {
	KTLS_STATE_OFF = 0,     /* not attempted */
	KTLS_STATE_SOFTWARE,    /* kernel does the record crypto */
	KTLS_STATE_HARDWARE,    /* the NIC does it (kernel-reported) */
	KTLS_STATE_UNAVAILABLE, /* attempted and refused; see reason */
};

struct ktls;

/*
 * Hook the keylog callback of ctx so that TLS 1.3 traffic secrets reach
 * this module. A callback the application set before (for SSLKEYLOGFILE,
 * say) is kept and called too. Returns 0, or -1 with a message in err.
 */
int ktls_ctx_prepare(SSL_CTX *ctx, char *err, size_t errlen);

/*
 * This module owns kTLS: ktls_ctx_prepare() and ktls_new() turn OpenSSL's
 * own kTLS (SSL_OP_ENABLE_KTLS) off. Whether ktls_ctx_prepare() found it
 * on in ctx (e.g. "Options = KTLS" in openssl.cnf), for the caller to say.
 */
int ktls_ctx_took_openssl_ktls(const SSL_CTX *ctx);

/*
 * Attach per-connection state to ssl; call before the handshake so the
 * record counters see every record. Returns NULL on allocation failure.
 * The state is freed with ktls_free(), not by SSL_free().
 */
struct ktls *ktls_new(SSL *ssl);

/*
 * After a completed handshake on the connected TCP socket fd: derive
 * both directions' keys and install TLS_RX, then TLS_TX. Returns 0 when
 * both directions are in the kernel, -1 otherwise (see ktls_state() and
 * ktls_reason() for each direction). RX goes first: a socket whose RX
 * is in the kernel can still write through OpenSSL, but one whose TX
 * is in the kernel cannot safely let OpenSSL read (it may answer).
 * If RX fails, TX is not attempted and the connection stays in userspace.
 * On -1, ktls_error() names the direction that stayed in userspace and why.
 */
int ktls_offload(struct ktls *k, int fd);

/*
 * Once both directions are in the kernel: let go of the SSL, which the
 * caller may then free. Everything after the switch -- KeyUpdate both
 * ways, alerts, close_notify -- needs only what this module kept: the
 * version, the suite and its hash, the TLS 1.3 traffic secrets and the
 * record counts. Returns 0, or -1 (and keeps the SSL) while a direction
 * is still in userspace, where OpenSSL does its records.
 */
int ktls_detach(struct ktls *k);

/* Record that kTLS is not used, e.g. "disabled with --ktls off". */
void ktls_disable(struct ktls *k, const char *why);

enum ktls_state ktls_state(const struct ktls *k, enum ktls_dir dir);
int ktls_active(const struct ktls *k, enum ktls_dir dir);
const char *ktls_reason(const struct ktls *k, enum ktls_dir dir);

/*
 * Mark a direction as running on the NIC (the caller learned it from
 * the kernel's per-socket report); only valid for an active direction.
 */
void ktls_set_hardware(struct ktls *k, enum ktls_dir dir);

/* "kTLS TX: active (software)" etc., without a newline. */
void ktls_status_line(const struct ktls *k, enum ktls_dir dir, char *buf,
    size_t len);

/*
 * Read application data from a socket with kTLS RX. Handshake records
 * the peer sends after the handshake (NewSessionTicket) are consumed;
 * a close_notify alert ends the stream (returns 0); any other alert, a
 * TCP close without close_notify, or a kernel error returns -1.
 */
ssize_t ktls_read(struct ktls *k, void *buf, size_t len);

/* Write all of buf through kTLS TX; returns len or -1. */
ssize_t ktls_write(struct ktls *k, const void *buf, size_t len);

/*
 * Send count bytes of in_fd from offset with sendfile() through kTLS TX
 * (zero-copy from the page cache); returns count or -1.
 */
ssize_t ktls_sendfile(struct ktls *k, int in_fd, off_t offset, size_t count);

/*
 * Optional kernel features, 0 or -1 with a message (older kernels):
 * TLS_TX_ZEROCOPY_RO lets sendfile skip the copy into the record (the
 * file must not change while it is being sent); TLS_RX_EXPECT_NO_PAD
 * lets TLS 1.3 RX decrypt in place, assuming the peer pads no records.
 */
int ktls_tx_zerocopy(struct ktls *k);
int ktls_rx_expect_no_pad(struct ktls *k);

/*
 * Send one fatal alert (level 2, desc) to the peer, encrypted under the
 * connection's current TX key and sequence number: through the kernel if
 * TX is already offloaded (record type 21), otherwise sealed here in
 * userspace with the key the module extracted (AES-GCM 128/256,
 * ChaCha20-Poly1305, AES-CCM; TLS 1.2: explicit nonce and AAD seq | type
 * | version | length, TLS 1.3: nonce = IV XOR seq, inner type 21, AAD =
 * the record header) and written to SSL_get_wbio(ssl), a socket or a
 * memory BIO. For the peer to read it, no other record may follow ours
 * from OpenSSL: the SSL is marked as shut down by us (SSL_write and
 * SSL_shutdown then send nothing) and its session is removed from the
 * cache (after ktls_detach() there is no SSL to mark, nor to write
 * through: the alert goes through kTLS TX). In TLS 1.3 without kTLS TX, call it before ktls_disable() or a
 * failed ktls_offload(), which wipe the send secret. Returns 0, or -1
 * with ktls_error() saying why (e.g. the suite is not AEAD). Key
 * material used is wiped.
 */
int ktls_send_alert(struct ktls *k, int desc);

/* Send a close_notify alert through kTLS TX. Returns 0 or -1. */
int ktls_close_notify(struct ktls *k);

/*
 * TLS 1.3: send a KeyUpdate (asking the peer to update too if
 * request_peer) and switch TX to the next key. ktls_read() follows the
 * peer's KeyUpdates by itself. Needs Linux 6.14+; older kernels cannot
 * change a kTLS key, and this returns -1 saying so.
 */
int ktls_key_update(struct ktls *k, int request_peer);

/* True if this kernel can change a kTLS key (Linux 6.14+). */
int ktls_kernel_can_rekey(void);

/*
 * Make ktls_write() update the TX key every `bytes` bytes (0: only
 * before the cipher's record limit, RFC 8446 5.5, which is the default).
 */
void ktls_set_rekey_bytes(struct ktls *k, uint64_t bytes);

/*
 * Let a signal end a blocked read, write or sendfile: once *flag is set,
 * a call interrupted by a signal (or one that starts afterwards) fails
 * with "interrupted" instead of carrying on. Without it, EINTR is retried.
 * close_notify is still sent after it, as far as the socket takes it.
 */
void ktls_set_interrupt(struct ktls *k, const atomic_int *flag);

/* How many KeyUpdates went each way. */
void ktls_key_update_counts(const struct ktls *k, uint64_t *sent,
    uint64_t *received);

/* True once ktls_read() has seen the peer's close_notify. */
int ktls_peer_closed(const struct ktls *k);

/*
 * The description of the fatal alert ktls_read() received (44:
 * certificate_revoked, ...), or -1 if none came.
 */
int ktls_peer_alert(const struct ktls *k);

const char *ktls_error(const struct ktls *k);

/* Detach from the SSL and wipe every secret. NULL is fine. */
void ktls_free(struct ktls *k);

#endif
