/*
 * ktls_internal.h - state shared by ktls_keys.c (key extraction and
 * installation) and ktls_io.c (record-aware I/O). Not for applications.
 */
#ifndef KTLS_INTERNAL_H
#define KTLS_INTERNAL_H

#include <stdarg.h>

#include <openssl/evp.h>

#include "ktls_keys.h"

struct ktls_secret {
	unsigned char b[EVP_MAX_MD_SIZE];
	size_t len;
};

struct ktls {
	SSL *ssl;
	int fd;
	uint16_t version; /* TLS1_2_VERSION or TLS1_3_VERSION once offloaded */
	const struct ktls_cipher *cipher;

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
	char reason[2][160];
	char err[256];

	/* Post-handshake handshake messages being parsed on RX. */
	unsigned char hs_hdr[4]; /* hs_hdr[0]: type of the message in parse */
	size_t hs_hdr_len;
	size_t hs_left;
	int peer_closed;
	unsigned char alert[2]; /* an alert record being read */
	size_t alert_len;

	/*
	 * TX record accounting for KeyUpdate: the kernel does not count
	 * records against the AEAD limits, so we do (RFC 8446 5.5).
	 */
	uint64_t tx_bytes;       /* since the last TX key change */
	uint64_t tx_records;     /* likewise, an upper bound */
	uint64_t rekey_bytes;    /* 0 = only at the record limit */
	uint64_t key_updates_sent, key_updates_received;
};

/* A best-effort alert record through kTLS TX. */
void ktls_send_alert(struct ktls *k, int level, int desc);

/* Next TLS 1.3 secret and key for dir, installed in the kernel. */
int ktls_rekey(struct ktls *k, enum ktls_dir dir);

void ktls_seterr(struct ktls *k, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
