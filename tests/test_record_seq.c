/*
 * test_record_seq.c - the record sequence numbers ktls_offload() hands the
 * kernel, checked two ways:
 *
 * 1. ktls_record_event() fed the message-callback events OpenSSL 3.0
 *    reports (recorded from real handshakes), including the ones a peer
 *    that fragments its handshake messages causes, which OpenSSL itself
 *    never sends: a TLS 1.2 Finished in 16 one-byte records, a TLS 1.3
 *    Finished or KeyUpdate across several records.
 * 2. Real OpenSSL handshakes in memory, both roles, TLS 1.2 and 1.3, full
 *    and resumed: at the moment each side would switch to kTLS, every
 *    record its peer has sent and it has not read (NewSessionTickets, then
 *    application data) must decrypt with the key and the sequence number
 *    the module would install, as the kernel would decrypt them.
 *
 * Needs HK_CERTS (tests/make_test_certs.sh output). Prints one line per
 * failed check, then "N passed, N failed".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "ktls_internal.h"
#include "tls_pair.h"
#include "unit.h"

/* ---- 1. the rule, fed event sequences ---- */

/*
 * Events as text: "t" or "r" (our write or read), then "H<type>" for a
 * record header of that record type, "M<type>" for a whole handshake
 * message of that type, "C" for a CCS message (reported on write only);
 * "*N" repeats the event. 20 = CCS / Finished, 22 = handshake record,
 * 23 = application data (every TLS 1.3 protected record), 4 = ticket,
 * 24 = KeyUpdate.
 */
static const struct {
	const char *name;
	int version;
	const char *events;
	uint64_t tx, rx;
} rules[] = {
	{ "1.2 server, full handshake as OpenSSL sends it", TLS1_2_VERSION,
	    "rH22 rM1 tH22 tM2 tH22 tM11 tH22 tM12 tH22 tM13 tH22 tM14 "
	    "rH22 rM11 rH22 rM16 rH22 rM15 rH20 rH22 rM20 "
	    "tH22 tM4 tH20 tC tH22 tM20",
	    1, 1 },
	{ "1.2 server, client Finished in 16 one-byte records", TLS1_2_VERSION,
	    "rH22 rM16 rH20 rH22*16 rM20 tH20 tC tH22 tM20", 1, 16 },
	{ "1.2 client, server Finished in 3 records after a ticket",
	    TLS1_2_VERSION,
	    "tH22 tM16 tH20 tC tH22 tM20 "
	    "rH22 rM4 rH20 rH22*3 rM20",
	    1, 3 },
	{ "1.2 client, ClientKeyExchange in 5 records before the CCS",
	    TLS1_2_VERSION, "tH22*5 tM16 tH20 tC tH22 tM20", 1, 0 },
	{ "1.2 client, resumed: server CCS + Finished in 2 records first",
	    TLS1_2_VERSION,
	    "tH22 tM1 rH22 rM2 rH20 rH22*2 rM20 "
	    "tH20 tC tH22 tM20",
	    1, 2 },
	{ "1.2 server, resumed: client Finished in 12 records", TLS1_2_VERSION,
	    "rH22 rM1 tH22 tM2 tH20 tC tH22 tM20 "
	    "rH20 rH22*12 rM20",
	    1, 12 },
	{ "1.3 server, full handshake and 2 tickets", TLS1_3_VERSION,
	    "rH22 rM1 tH22 tM2 tH20 tC tH23 tM8 tH23 tM11 tH23 tM15 tH23 tM20 "
	    "rH20 rH23 rM11 rH23 rM15 rH23 rM20 tH23 tM4 tH23 tM4",
	    2, 0 },
	{ "1.3 server, client flight in 52 one-byte records", TLS1_3_VERSION,
	    "tH22 tM2 tH23*4 tM20 rH20 rH23*52 rM11 rM15 rM20", 0, 0 },
	{ "1.3 client, server Finished in 7 records, tickets unread",
	    TLS1_3_VERSION,
	    "tH22 tM1 rH22 rM2 rH20 rH23*3 rM8 rM11 rM15 "
	    "rH23*7 rM20 tH20 tC tH23 tM11 tH23 tM15 tH23 tM20",
	    0, 0 },
	{ "1.3 client, tickets read, then a KeyUpdate in 5 records",
	    TLS1_3_VERSION, "rH23 rM20 rH23 rM4 rH23 rM4 rH23*5 rM24 rH23*3", 0,
	    3 },
	{ "1.3 server, our KeyUpdate after 9 data records", TLS1_3_VERSION,
	    "tH23 tM20 tH23*9 tH23 tM24 tH23*2", 2, 0 },
};

/* Run one event string; -1 if it is malformed. */
static int
feed(const char *s, int version, uint64_t records[2])
{
	unsigned char first;
	long ct, n, type;
	int write_p;
	char *end;

	while (*s != '\0') {
		if (*s == ' ') {
			s++;
			continue;
		}
		if (*s != 't' && *s != 'r')
			return -1;
		write_p = *s++ == 't';
		if (*s == 'C') {
			ct = SSL3_RT_CHANGE_CIPHER_SPEC, type = 1, s++;
		} else if (*s == 'H' || *s == 'M') {
			ct = *s++ == 'H' ? SSL3_RT_HEADER : SSL3_RT_HANDSHAKE;
			type = strtol(s, &end, 10);
			s = end;
		} else {
			return -1;
		}
		n = 1;
		if (*s == '*') {
			n = strtol(s + 1, &end, 10);
			s = end;
		}
		first = (unsigned char)type;
		while (n-- > 0)
			ktls_record_event(records, version, write_p, (int)ct,
			    &first, 1);
	}
	return 0;
}

static void
test_rules(void)
{
	uint64_t records[2];
	size_t i;

	for (i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
		records[KTLS_TX] = records[KTLS_RX] = 0;
		if (feed(rules[i].events, rules[i].version, records) < 0) {
			check(0, "%s: malformed event string", rules[i].name);
			continue;
		}
		check(records[KTLS_TX] == rules[i].tx &&
			records[KTLS_RX] == rules[i].rx,
		    "%s: next TX/RX sequence numbers %llu/%llu, want %llu/%llu",
		    rules[i].name, (unsigned long long)records[KTLS_TX],
		    (unsigned long long)records[KTLS_RX],
		    (unsigned long long)rules[i].tx,
		    (unsigned long long)rules[i].rx);
	}
}

/* ---- 2. real handshakes in memory ---- */

/* The AES-128-GCM record key of one side's writes. */
struct wkey {
	unsigned char key[16], iv[12];
	int tls13;
};

static int
write_key(const struct pair_side *w, struct wkey *wk)
{
	const EVP_MD *md = EVP_sha256();
	unsigned char master[SSL_MAX_MASTER_KEY_LENGTH], cr[32], sr[32];
	unsigned char block[2 * 16 + 2 * 4];
	const struct ktls_secret *s = &w->k->secret[KTLS_TX];
	size_t mlen;
	int client = !SSL_is_server(w->ssl);

	wk->tls13 = SSL_version(w->ssl) == TLS1_3_VERSION;
	if (wk->tls13)
		return ktls_tls13_expand_label(md, s->b, s->len, "key", wk->key,
			   16) < 0 ||
			ktls_tls13_expand_label(md, s->b, s->len, "iv", wk->iv,
			    12) < 0 ?
		    -1 :
		    0;
	mlen = SSL_SESSION_get_master_key(SSL_get_session(w->ssl), master,
	    sizeof(master));
	SSL_get_client_random(w->ssl, cr, sizeof(cr));
	SSL_get_server_random(w->ssl, sr, sizeof(sr));
	if (ktls_tls12_key_block(md, master, mlen, cr, sr, block,
		sizeof(block)) < 0)
		return -1;
	memcpy(wk->key, block + (client ? 0 : 16), 16);
	memcpy(wk->iv, block + 32 + (client ? 0 : 4), 4);
	return 0;
}

/*
 * Decrypt one record as kTLS RX would with sequence number seq; returns
 * the inner content type (TLS 1.3) or the record type, or -1.
 */
static int
open_record(const struct wkey *wk, uint64_t seq, const unsigned char *rec,
    size_t len)
{
	unsigned char nonce[12], aad[13], out[16384 + 256];
	const unsigned char *ct = rec + 5;
	size_t ctlen = len - 5, aadlen = 5;
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int n = 0, m = 0, ok, i;

	memcpy(nonce, wk->iv, 12);
	if (wk->tls13) {
		for (i = 0; i < 8; i++)
			nonce[4 + i] ^= (unsigned char)(seq >> (56 - 8 * i));
		memcpy(aad, rec, 5);
	} else {
		memcpy(nonce + 4, ct, 8);
		ct += 8, ctlen -= 8;
		for (i = 0; i < 8; i++)
			aad[i] = (unsigned char)(seq >> (56 - 8 * i));
		aad[8] = rec[0], aad[9] = rec[1], aad[10] = rec[2];
		aad[11] = (unsigned char)((ctlen - 16) >> 8);
		aad[12] = (unsigned char)(ctlen - 16);
		aadlen = 13;
	}
	ok = c != NULL && ctlen >= 16 && ctlen - 16 <= sizeof(out) &&
	    EVP_DecryptInit_ex(c, EVP_aes_128_gcm(), NULL, wk->key, nonce) &&
	    EVP_DecryptUpdate(c, NULL, &n, aad, (int)aadlen) &&
	    EVP_DecryptUpdate(c, out, &n, ct, (int)(ctlen - 16)) &&
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16,
		(void *)(ct + ctlen - 16)) &&
	    EVP_DecryptFinal_ex(c, out + n, &m);
	EVP_CIPHER_CTX_free(c);
	if (!ok)
		return -1;
	if (!wk->tls13)
		return rec[0];
	for (n += m; n > 0 && out[n - 1] == 0; n--)
		;
	return n > 0 ? out[n - 1] : -1;
}

/*
 * w writes one application record; r has not read anything since its
 * handshake. Every record waiting in r's input must open with w's key at
 * r's RX count onwards, and the last one, w's data, at w's TX count.
 */
static void
check_direction(const char *name, struct pair_side *w, struct pair_side *r)
{
	uint64_t seq = r->k->records[KTLS_RX], tx = w->k->records[KTLS_TX];
	const unsigned char *p;
	struct wkey wk;
	long avail;
	size_t len;
	int type = -1, records = 0;

	if (write_key(w, &wk) < 0 || SSL_write(w->ssl, "ping", 4) != 4) {
		check(0, "%s: cannot write a test record", name);
		return;
	}
	pair_pump(w, r);
	avail = BIO_get_mem_data(r->in, (char **)&p);
	while (avail >= 5 &&
	    (len = 5 + ((size_t)p[3] << 8 | p[4])) <= (size_t)avail) {
		type = open_record(&wk, seq, p, len);
		check(type > 0,
		    "%s: record %d in flight does not decrypt "
		    "at sequence number %llu",
		    name, records, (unsigned long long)seq);
		if (type < 0)
			return;
		p += len, avail -= (long)len, seq++, records++;
	}
	check(type == SSL3_RT_APPLICATION_DATA && seq == tx + 1,
	    "%s: last record type %d at %llu, want data at the writer's "
	    "count %llu",
	    name, type, (unsigned long long)(seq - 1), (unsigned long long)tx);
}

/* A session the client can resume: TLS 1.3 sends it in a ticket. */
static SSL_SESSION *
take_session(struct pair_side *c)
{
	char b[16];

	(void)SSL_read(c->ssl, b, sizeof(b)); /* reads the tickets */
	return SSL_get1_session(c->ssl);
}

/* The suites write_key() and open_record() know. */
#define AES128GCM    "ECDHE-ECDSA-AES128-GCM-SHA256"
#define AES128GCM_13 "TLS_AES_128_GCM_SHA256"

static void
test_handshakes(const char *dir)
{
	static const int versions[] = { TLS1_2_VERSION, TLS1_3_VERSION };
	SSL_CTX *sctx, *cctx;
	SSL_SESSION *sess;
	struct pair_side c, s;
	char name[96];
	size_t v;
	int round;

	for (v = 0; v < 2; v++) {
		sctx =
		    pair_ctx_new(1, versions[v], AES128GCM, AES128GCM_13, dir);
		cctx =
		    pair_ctx_new(0, versions[v], AES128GCM, AES128GCM_13, dir);
		sess = NULL;
		check(sctx != NULL && cctx != NULL,
		    "TLS 1.%d: cannot set up "
		    "contexts from %s",
		    2 + (int)v, dir);
		for (round = 0; sctx != NULL && cctx != NULL && round < 2;
		     round++) {
			snprintf(name, sizeof(name), "TLS 1.%d %s", 2 + (int)v,
			    round == 0 ? "full" : "resumed");
			memset(&c, 0, sizeof(c)), memset(&s, 0, sizeof(s));
			if (pair_side_new(&c, cctx) < 0 ||
			    pair_side_new(&s, sctx) < 0 ||
			    (sess != NULL && !SSL_set_session(c.ssl, sess)) ||
			    pair_handshake(&c, &s) < 0) {
				check(0, "%s: handshake failed", name);
				ERR_print_errors_fp(stdout);
				ERR_clear_error();
			} else {
				check(round == 0 || SSL_session_reused(c.ssl),
				    "%s: session not resumed", name);
				check_direction(name, &s, &c); /* server TX */
				check_direction(name, &c, &s); /* client TX */
				SSL_SESSION_free(sess);
				sess = take_session(&c);
			}
			pair_side_free(&c), pair_side_free(&s);
		}
		SSL_SESSION_free(sess);
		SSL_CTX_free(sctx);
		SSL_CTX_free(cctx);
	}
}

int
main(void)
{
	const char *dir = getenv("HK_CERTS");

	test_rules();
	if (dir == NULL)
		check(0,
		    "HK_CERTS is not set: no certificates for the "
		    "handshake tests");
	else
		test_handshakes(dir);
	return check_summary();
}
