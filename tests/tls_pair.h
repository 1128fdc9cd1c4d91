/*
 * tls_pair.h - a TLS client and server in one process, joined by memory
 * BIOs, each with ktls_new() attached before its handshake: real OpenSSL
 * connections for the unit tests, without sockets.
 */
#ifndef HK_TLS_PAIR_H
#define HK_TLS_PAIR_H

#include <openssl/ssl.h>

struct pair_side {
	SSL *ssl;
	struct ktls *k;
	BIO *in, *out; /* what it reads, what it writes */
};

/*
 * A context for one role with the test certificates in dir (HK_CERTS),
 * both peers verified, the version pinned, ciphers for TLS 1.2 and
 * below, suites for TLS 1.3, and ktls_ctx_prepare() done. NULL on error.
 */
SSL_CTX *pair_ctx_new(int server, int version, const char *ciphers,
    const char *suites, const char *dir);

/* One end of a connection of ctx's role. Returns 0 or -1. */
int pair_side_new(struct pair_side *x, SSL_CTX *ctx);
void pair_side_free(struct pair_side *x);

/* Move what a wrote into b's input, where it waits until b reads. */
void pair_pump(struct pair_side *a, struct pair_side *b);

/* Both handshakes to their end; 0, or -1 if they do not finish. */
int pair_handshake(struct pair_side *c, struct pair_side *s);

#endif
