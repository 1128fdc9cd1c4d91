/*
 * ktls_derive.h - the pure part of key extraction (ktls_derive.c): the
 * cipher table, the kernel's crypto_info layout, and the TLS 1.3 and 1.2
 * key derivations. Internal to the kTLS library and its unit tests; not
 * for applications.
 */
#ifndef KTLS_DERIVE_H
#define KTLS_DERIVE_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>

/* Per-cipher facts: how the negotiated suite maps onto the kernel. */
struct ktls_cipher {
	const char *name;     /* for messages */
	int nid;              /* OpenSSL cipher NID */
	uint16_t kernel;      /* TLS_CIPHER_* */
	size_t key_len;       /* bytes of key */
	size_t salt_len;      /* implicit part of the nonce */
	size_t iv_len;        /* kernel's iv[]: explicit nonce or full IV */
	size_t info_len;      /* sizeof the kernel's crypto_info struct */
	uint64_t max_records; /* TLS 1.3 rekeys before this many (RFC 8446 5.5) */
};

/* The kernel cipher for an OpenSSL cipher, or NULL if unsupported. */
const struct ktls_cipher *ktls_cipher_find(const SSL_CIPHER *c);
const struct ktls_cipher *ktls_cipher_by_kernel_id(uint16_t kernel);

/* Large enough for any crypto_info this module fills. */
union ktls_crypto_info {
	unsigned char bytes[96];
	uint64_t align;
};

/*
 * Fill ci for one direction. key is key_len bytes; iv is the connection's
 * write IV: TLS 1.3 and ChaCha20 give salt_len + iv_len bytes (12), TLS
 * 1.2 GCM/CCM give the 4-byte implicit salt only. seq is the sequence
 * number of the next record. Returns the struct size, or 0 if version or
 * cipher is unknown.
 */
size_t ktls_crypto_info_fill(union ktls_crypto_info *ci, uint16_t version,
    const struct ktls_cipher *c, const unsigned char *key,
    const unsigned char *iv, uint64_t seq);

/* TLS 1.3: HKDF-Expand-Label(secret, label, "", out_len) (RFC 8446 7.1). */
int ktls_tls13_expand_label(const EVP_MD *md, const unsigned char *secret,
    size_t secret_len, const char *label, unsigned char *out, size_t out_len);

/* TLS 1.2: PRF(master, "key expansion", server_random + client_random). */
int ktls_tls12_key_block(const EVP_MD *md, const unsigned char *master,
    size_t master_len, const unsigned char client_random[32],
    const unsigned char server_random[32], unsigned char *out, size_t out_len);

#endif
