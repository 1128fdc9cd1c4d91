/*
 * ktls_alert.c - one fatal alert under the connection's current send key,
 * whether or not the kernel holds that key.
 *
 * A server that refuses a client after the handshake (an identity policy,
 * a revoked resumed session) must say so with a real alert, and must not
 * put keys into the kernel for a connection it is about to drop. OpenSSL
 * 3.0 has no public call that sends an arbitrary alert, so the record is
 * sealed here with the key and sequence number this module already keeps
 * for the kernel (RFC 5246 6.2.3.3, RFC 7905, RFC 8446 5.2-5.3).
 */
#include <errno.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "ktls_internal.h"

enum {
	REC_ALERT = 21,
	REC_DATA = 23,
	ALERT_FATAL = 2,
	HDR_LEN = 5,
	TAG_LEN = 16,
	EXPLICIT_LEN = 8, /* TLS 1.2 GCM and CCM: the nonce's explicit part */
	AAD12_LEN = 13,   /* seq_num + type + version + length */
	/* The largest record: header, explicit nonce, 3-byte body, tag. */
	REC_MAX = HDR_LEN + EXPLICIT_LEN + 3 + TAG_LEN,
};

static void
put_u64(unsigned char *p, uint64_t v)
{
	int i;

	for (i = 7; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

static void
put_header(unsigned char *p, unsigned char type, size_t len)
{
	p[0] = type;
	p[1] = 3, p[2] = 3; /* TLS 1.2, and TLS 1.3's legacy_record_version */
	p[3] = (unsigned char)(len >> 8);
	p[4] = (unsigned char)len;
}

/*
 * AEAD-encrypt in (n bytes) into out, the tag after it. The suite's
 * cipher name in the table is also OpenSSL's. CCM needs its tag length
 * and the plaintext length before the AAD.
 */
static int
aead_seal(const struct ktls_cipher *c, const unsigned char *key,
    const unsigned char nonce[TLS13_IV_LEN], const unsigned char *aad,
    size_t aad_len, const unsigned char *in, size_t n, unsigned char *out)
{
	EVP_CIPHER *cipher = EVP_CIPHER_fetch(NULL, c->name, NULL);
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int ccm, len, ret = -1;

	if (cipher == NULL || ctx == NULL)
		goto out;
	ccm = EVP_CIPHER_get_mode(cipher) == EVP_CIPH_CCM_MODE;
	if (!EVP_EncryptInit_ex(ctx, cipher, NULL, NULL, NULL) ||
	    !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN, TLS13_IV_LEN,
		NULL) ||
	    (ccm &&
		!EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, TAG_LEN,
		    NULL)) ||
	    !EVP_EncryptInit_ex(ctx, NULL, NULL, key, nonce) ||
	    (ccm && !EVP_EncryptUpdate(ctx, NULL, &len, NULL, (int)n)) ||
	    !EVP_EncryptUpdate(ctx, NULL, &len, aad, (int)aad_len) ||
	    !EVP_EncryptUpdate(ctx, out, &len, in, (int)n) ||
	    !EVP_EncryptFinal_ex(ctx, out + len, &len) ||
	    !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, TAG_LEN, out + n))
		goto out;
	ret = 0;
out:
	/* Freeing the context cleanses the expanded key in it. */
	EVP_CIPHER_CTX_free(ctx);
	EVP_CIPHER_free(cipher);
	return ret;
}

/*
 * The alert record for sequence number seq, into rec. TLS 1.3 (RFC 8446
 * 5.2, 5.3) and TLS 1.2 ChaCha20 (RFC 7905): nonce = IV XOR seq, no
 * explicit part. TLS 1.3 hides the type inside (body: level, desc, 21)
 * under an outer application_data header, which is its AAD. TLS 1.2
 * GCM/CCM (RFC 5288, 6655): nonce = salt + an 8-byte explicit part sent
 * before the ciphertext, for which seq, unique per key, does. TLS 1.2's
 * AAD is seq, type, version and the plaintext length (RFC 5246 6.2.3.3).
 */
static size_t
seal_alert(struct ktls *k, uint16_t version, const struct ktls_cipher *c,
    int desc, uint64_t seq, unsigned char rec[REC_MAX])
{
	unsigned char key[32], iv[TLS13_IV_LEN], nonce[TLS13_IV_LEN];
	unsigned char body[3] = { ALERT_FATAL, (unsigned char)desc, REC_ALERT };
	unsigned char aad[AAD12_LEN], seqb[8], *ct;
	size_t n, explicit_len = 0, i, len = 0, aad_len = HDR_LEN;
	int tls13 = version == TLS1_3_VERSION;

	if (ktls_tx_key_iv(k, version, c, key, iv) < 0)
		return 0;
	put_u64(seqb, seq);
	n = tls13 ? 3 : 2;
	if (tls13 || c->salt_len == 0) {
		memcpy(nonce, iv, sizeof(nonce));
		for (i = 0; i < 8; i++)
			nonce[4 + i] ^= seqb[i];
	} else {
		memcpy(nonce, iv, 4);
		memcpy(nonce + 4, seqb, 8);
		explicit_len = EXPLICIT_LEN;
		memcpy(rec + HDR_LEN, seqb, EXPLICIT_LEN);
	}
	put_header(rec, tls13 ? REC_DATA : REC_ALERT,
	    explicit_len + n + TAG_LEN);
	if (tls13)
		memcpy(aad, rec, HDR_LEN);
	else {
		memcpy(aad, seqb, 8);
		put_header(aad + 8, REC_ALERT, n);
		aad_len = AAD12_LEN;
	}
	ct = rec + HDR_LEN + explicit_len;
	if (aead_seal(c, key, nonce, aad, aad_len, body, n, ct) == 0)
		len = HDR_LEN + explicit_len + n + TAG_LEN;
	else
		ktls_seterr(k, "sealing the alert with %s failed", c->name);
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(iv, sizeof(iv));
	OPENSSL_cleanse(nonce, sizeof(nonce));
	return len;
}

/* All of the record to the SSL's write BIO: a socket, or memory. */
static int
write_record(struct ktls *k, const unsigned char *p, size_t len)
{
	BIO *w = SSL_get_wbio(k->ssl);
	int n;

	if (w == NULL) {
		ktls_seterr(k, "sending the alert: the connection has no BIO");
		return -1;
	}
	while (len > 0) {
		errno = 0;
		n = BIO_write(w, p, (int)len);
		if (n <= 0) {
			ktls_seterr(k, "sending the alert: %s",
			    BIO_should_retry(w) ? "the socket would block" :
				errno != 0      ? strerror(errno) :
						  "write failed");
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	(void)BIO_flush(w);
	return 0;
}

/* In userspace: the version and suite the handshake settled on. */
static int
userspace_alert(struct ktls *k, int desc)
{
	const SSL_CIPHER *sc;
	const struct ktls_cipher *c;
	unsigned char rec[REC_MAX];
	int v, ret = -1;
	size_t len;

	/* ktls_detach() lets go of it only with kTLS TX on: not here. */
	if (k->ssl == NULL) {
		ktls_seterr(k,
		    "cannot send an alert: the connection has no "
		    "SSL and no kTLS TX");
		return -1;
	}
	sc = SSL_get_current_cipher(k->ssl);
	c = ktls_cipher_find(sc);
	v = SSL_version(k->ssl);
	if (!SSL_is_init_finished(k->ssl)) {
		ktls_seterr(k,
		    "cannot send an alert: the handshake is not "
		    "complete");
		return -1;
	}
	if (v != TLS1_2_VERSION && v != TLS1_3_VERSION) {
		ktls_seterr(k,
		    "cannot send an alert under %s: TLS 1.2 or 1.3 "
		    "only",
		    SSL_get_version(k->ssl));
		return -1;
	}
	if (c == NULL) {
		ktls_seterr(k,
		    "cannot seal an alert under %s: not an AEAD "
		    "suite this module knows (AES-GCM, "
		    "ChaCha20-Poly1305, AES-CCM)",
		    sc != NULL ? SSL_CIPHER_get_name(sc) : "no cipher");
		return -1;
	}
	len = seal_alert(k, (uint16_t)v, c, desc, k->records[KTLS_TX], rec);
	if (len > 0 && write_record(k, rec, len) == 0) {
		/* Should the kernel ever take over, it continues after it. */
		k->records[KTLS_TX]++;
		ret = 0;
	}
	OPENSSL_cleanse(rec, sizeof(rec));
	return ret;
}

int
ktls_send_alert(struct ktls *k, int desc)
{
	int ret;

	if (desc < 0 || desc > 255) {
		ktls_seterr(k, "alert description %d is not a byte", desc);
		return -1;
	}
	if (ktls_active(k, KTLS_TX)) {
		ret = ktls_tx_alert(k, ALERT_FATAL, desc);
		if (ret < 0)
			ktls_seterr(k, "sending the alert through kTLS: %s",
			    strerror(errno));
	} else
		ret = userspace_alert(k, desc);
	if (ret < 0)
		return -1;
	/*
	 * OpenSSL's own write sequence number is now behind: anything it
	 * sent would reuse our nonce. Mark the connection as closed by us so
	 * that SSL_write and SSL_shutdown send nothing more, and forget the
	 * session, as OpenSSL does after a fatal alert of its own. After
	 * ktls_detach() there is no SSL left to send anything, and the
	 * server has no session cache to take it out of (tickets only).
	 */
	if (k->ssl == NULL)
		return 0;
	SSL_set_shutdown(k->ssl, SSL_get_shutdown(k->ssl) | SSL_SENT_SHUTDOWN);
	SSL_CTX_remove_session(SSL_get_SSL_CTX(k->ssl),
	    SSL_get0_session(k->ssl));
	return 0;
}
