/*
 * tls_pair.c - in-memory TLS connections for the unit tests (see
 * tls_pair.h).
 */
#include <stdio.h>
#include <string.h>

#include "ktls_keys.h"
#include "tls_pair.h"

SSL_CTX *
pair_ctx_new(int server, int version, const char *ciphers, const char *suites,
    const char *dir)
{
	SSL_CTX *ctx =
	    SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	const char *who = server ? "server" : "client";
	char cert[1024], key[1024], ca[1024];
	char err[256];

	snprintf(cert, sizeof(cert), "%s/%s-cert.pem", dir, who);
	snprintf(key, sizeof(key), "%s/%s-key.pem", dir, who);
	snprintf(ca, sizeof(ca), "%s/ca-cert.pem", dir);
	if (ctx == NULL || !SSL_CTX_set_min_proto_version(ctx, version) ||
	    !SSL_CTX_set_max_proto_version(ctx, version) ||
	    !SSL_CTX_set_cipher_list(ctx, ciphers) ||
	    !SSL_CTX_set_ciphersuites(ctx, suites) ||
	    SSL_CTX_use_certificate_file(ctx, cert, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    !SSL_CTX_load_verify_locations(ctx, ca, NULL) ||
	    ktls_ctx_prepare(ctx, err, sizeof(err)) < 0) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_verify(ctx,
	    SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"t", 1);
	return ctx;
}

int
pair_side_new(struct pair_side *x, SSL_CTX *ctx)
{
	x->ssl = SSL_new(ctx);
	x->in = BIO_new(BIO_s_mem());
	x->out = BIO_new(BIO_s_mem());
	if (x->ssl == NULL || x->in == NULL || x->out == NULL ||
	    (x->k = ktls_new(x->ssl)) == NULL)
		return -1;
	BIO_set_mem_eof_return(x->in, -1);
	SSL_set_bio(x->ssl, x->in, x->out);
	BIO_up_ref(x->in), BIO_up_ref(x->out);
	if (SSL_CTX_get_ssl_method(ctx) == TLS_server_method())
		SSL_set_accept_state(x->ssl);
	else
		SSL_set_connect_state(x->ssl);
	return 0;
}

void
pair_side_free(struct pair_side *x)
{
	/* Without a clean shutdown OpenSSL marks the session not resumable. */
	if (x->ssl != NULL)
		SSL_set_shutdown(x->ssl,
		    SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
	ktls_free(x->k);
	SSL_free(x->ssl);
	BIO_free(x->in);
	BIO_free(x->out);
	memset(x, 0, sizeof(*x));
}

void
pair_pump(struct pair_side *a, struct pair_side *b)
{
	char buf[4096];
	int n;

	while ((n = BIO_read(a->out, buf, sizeof(buf))) > 0)
		BIO_write(b->in, buf, n);
}

int
pair_handshake(struct pair_side *c, struct pair_side *s)
{
	int i, rc, rs;

	for (i = 0; i < 50; i++) {
		rc = SSL_do_handshake(c->ssl);
		pair_pump(c, s);
		rs = SSL_do_handshake(s->ssl);
		pair_pump(s, c);
		if (rc == 1 && rs == 1)
			return 0;
	}
	return -1;
}
