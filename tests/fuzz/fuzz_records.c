/*
 * fuzz_records.c - libFuzzer harness for what ktls_read() does with the
 * records that are not application data: handshake messages after the
 * handshake (NewSessionTicket, TLS 1.3 KeyUpdate, TLS 1.2 HelloRequest,
 * split anywhere across records) and alerts. They go through
 * ktls_io_control_bytes(), the one path ktls_read() takes for them, so
 * no socket is needed.
 *
 * Input: one flags byte, then chunks [type][length][length bytes], each
 * what one recvmsg() returned (a short final chunk is cut to what is
 * left). Type byte t: t % 4 picks alert (0), handshake (1), application
 * data (2, which ktls_read() hands to its caller without parsing), or
 * the raw byte t (3: any other type, which must be refused).
 *
 * Flags: bit 0 TLS 1.3 (else 1.2); bit 1 (TLS 1.3) the connection holds
 * its traffic secrets and an SSL with a negotiated suite, as after
 * ktls_offload(), so a KeyUpdate runs the real key derivation; bit 2
 * kTLS TX is on, so alerts go to sendmsg(); bit 3 we are the server (which
 * decides which messages are allowed: tickets go to clients, ClientHellos
 * to servers). The socket is fd -1: every
 * send and every key installation fails, as on a dead connection, and
 * that must end the connection cleanly.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/tls.h>

#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include "ktls_internal.h"
#include "fuzz.h"

enum {
	F_TLS13 = 1,
	F_SECRETS = 2,
	F_TX = 4,
	F_SERVER = 8
};

/*
 * An SSL whose session has TLS_AES_128_GCM_SHA256, made once: ktls_rekey()
 * only asks it for the suite's hash and nothing here changes it.
 */
static SSL *suite_ssl;

int
/* NOLINTNEXTLINE(readability-non-const-parameter): libFuzzer's signature */
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const unsigned char aes128gcm[2] = { 0x13, 0x01 };
	SSL_CTX *ctx;
	SSL_SESSION *sess;

	(void)argc, (void)argv;
	require((ctx = SSL_CTX_new(TLS_client_method())) != NULL);
	require((suite_ssl = SSL_new(ctx)) != NULL);
	require((sess = SSL_SESSION_new()) != NULL);
	require(SSL_SESSION_set_cipher(sess,
		    SSL_CIPHER_find(suite_ssl, aes128gcm)) == 1);
	require(SSL_set_session(suite_ssl, sess) == 1);
	SSL_SESSION_free(sess);
	SSL_CTX_free(ctx); /* suite_ssl holds its own reference */
	return 0;
}

static struct ktls *
connection(unsigned char flags)
{
	struct ktls *k;
	int d;

	require((k = OPENSSL_zalloc(sizeof(*k))) != NULL);
	k->fd = -1;
	k->version = flags & F_TLS13 ? TLS1_3_VERSION : TLS1_2_VERSION;
	k->is_server = flags & F_SERVER ? 1 : 0;
	k->cipher = ktls_cipher_by_kernel_id(TLS_CIPHER_AES_GCM_128);
	k->state[KTLS_RX] = KTLS_STATE_SOFTWARE;
	if (flags & F_TX)
		k->state[KTLS_TX] = KTLS_STATE_SOFTWARE;
	if ((flags & F_TLS13) && (flags & F_SECRETS)) {
		k->ssl = suite_ssl;
		for (d = 0; d < 2; d++) {
			memset(k->secret[d].b, 0x5a + d, 32);
			k->secret[d].len = 32;
		}
	}
	return k;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned char types[3] = { 21, 22, 23 };
	struct ktls *k;
	unsigned char type;
	size_t len;
	int r = 1;

	if (size == 0)
		return 0;
	k = connection(data[0]);
	data++, size--;
	while (r == 1 && size >= 2) {
		type = data[0] % 4 < 3 ? types[data[0] % 4] : data[0];
		len = data[1] < size - 2 ? data[1] : size - 2;
		data += 2, size -= 2;
		if (type != 23) {
			r = ktls_io_control_bytes(k, type, data, len);
			require(r == -1 || r == 0 || r == 1);
			/* An error always says why; nothing else leaves one. */
			require((r == -1) == (k->err[0] != '\0'));
			require(r != 0 || (type == 21 && k->peer_closed));
			/* An empty control record is always refused. */
			require(len > 0 || r == -1);
			/* Partial messages stay within their buffers. */
			require(k->hs_hdr_len <= sizeof(k->hs_hdr));
			require(r == -1 || k->alert_len < sizeof(k->alert));
			/* With fd -1 no key can be installed. */
			require(k->key_updates_received == 0);
			require(k->key_updates_sent == 0);
		}
		data += len, size -= len;
	}
	k->ssl = NULL; /* suite_ssl is not ours to detach from */
	ktls_free(k);
	return 0;
}
