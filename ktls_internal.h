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

	/* Post-handshake handshake messages being skipped on RX. */
	unsigned char hs_hdr[4];
	size_t hs_hdr_len;
	size_t hs_left;
	int peer_closed;
};

void ktls_seterr(struct ktls *k, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
