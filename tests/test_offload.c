/*
 * test_offload.c - every way ktls_offload() can fail, and a refused
 * rekey, with the kernel played by fake system calls put in through the
 * seam in ktls_internal.h (ktls_syscalls_set_for_testing), as s2n-tls
 * tests its kTLS switch. The connections are real: OpenSSL handshakes in
 * memory (tls_pair.c), so every precondition is met or broken the way an
 * application would meet or break it.
 *
 * Each case checks the return value; each direction's ktls_state(),
 * ktls_reason() and ktls_status_line(); ktls_error(); the setsockopt
 * calls the module made (level, option, length, and the version and
 * cipher of each crypto_info, in the order TCP_ULP, TLS_RX, TLS_TX); and
 * that the traffic secrets are wiped wherever they must be.
 *
 * Needs HK_CERTS (tests/make_test_certs.sh output). Prints one line per
 * failed check, then "N passed, N failed".
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "fake_kernel.h"
#include "tls_pair.h"
#include "unit.h"

/* ---- the connections ---- */

/* How a connection is spoiled before ktls_offload() sees it. */
enum quirk {
	Q_NONE,
	Q_NO_HANDSHAKE, /* offloaded before its handshake */
	Q_NO_KEYLOG,    /* our keylog callback taken off after preparing */
	Q_UNREAD,       /* OpenSSL has read part of a data record */
	Q_NO_MASTER,    /* the TLS 1.2 session lost its master secret */
};

enum conn_id {
	C13,
	C13_AES256,
	C12,
	C12_CHACHA,
	C12_CCM,
	C13_EARLY,
	C11,
	C12_CBC,
	C13_NO_KEYLOG,
	C13_UNREAD,
	C12_NO_MASTER,
};

#define GCM128    "ECDHE-ECDSA-AES128-GCM-SHA256"
#define GCM128_13 "TLS_AES_128_GCM_SHA256"
#define CBC       "ECDHE-ECDSA-AES128-SHA256"
#define INFO_128  sizeof(struct tls12_crypto_info_aes_gcm_128)
#define INFO_256  sizeof(struct tls12_crypto_info_aes_gcm_256)

static const struct conn {
	int version;
	const char *ciphers, *suites;
	int server; /* the end offloaded */
	enum quirk quirk;
	/* What each key's crypto_info must say. */
	uint16_t kversion, kcipher;
	size_t info_len;
} conns[] = {
	[C13] = { TLS1_3_VERSION, GCM128, GCM128_13, 0, Q_NONE, TLS_1_3_VERSION,
	    TLS_CIPHER_AES_GCM_128, INFO_128 },
	[C13_AES256] = { TLS1_3_VERSION, GCM128, "TLS_AES_256_GCM_SHA384", 1,
	    Q_NONE, TLS_1_3_VERSION, TLS_CIPHER_AES_GCM_256, INFO_256 },
	[C12] = { TLS1_2_VERSION, GCM128, GCM128_13, 1, Q_NONE, TLS_1_2_VERSION,
	    TLS_CIPHER_AES_GCM_128, INFO_128 },
	[C12_CHACHA] = { TLS1_2_VERSION, "ECDHE-ECDSA-CHACHA20-POLY1305",
	    GCM128_13, 0, Q_NONE, TLS_1_2_VERSION, TLS_CIPHER_CHACHA20_POLY1305,
	    sizeof(struct tls12_crypto_info_chacha20_poly1305) },
	[C12_CCM] = { TLS1_2_VERSION, "ECDHE-ECDSA-AES128-CCM", GCM128_13, 1,
	    Q_NONE, TLS_1_2_VERSION, TLS_CIPHER_AES_CCM_128,
	    sizeof(struct tls12_crypto_info_aes_ccm_128) },
	[C13_EARLY] = { TLS1_3_VERSION, GCM128, GCM128_13, 0, Q_NO_HANDSHAKE, 0,
	    0, 0 },
	/* OpenSSL 3.0 negotiates TLS 1.1 only at security level 0. */
	[C11] = { TLS1_1_VERSION, "ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0",
	    GCM128_13, 0, Q_NONE, 0, 0, 0 },
	[C12_CBC] = { TLS1_2_VERSION, CBC, GCM128_13, 0, Q_NONE, 0, 0, 0 },
	[C13_NO_KEYLOG] = { TLS1_3_VERSION, GCM128, GCM128_13, 0, Q_NO_KEYLOG,
	    0, 0, 0 },
	[C13_UNREAD] = { TLS1_3_VERSION, GCM128, GCM128_13, 0, Q_UNREAD, 0, 0,
	    0 },
	[C12_NO_MASTER] = { TLS1_2_VERSION, GCM128, GCM128_13, 1, Q_NO_MASTER,
	    0, 0, 0 },
};

/* A connection in memory, and which end of it is under test. */
struct fixture {
	SSL_CTX *cctx, *sctx;
	struct pair_side c, s;
	struct pair_side *x, *peer; /* the end under test, the other one */
};

static int
spoil(struct fixture *p, enum quirk quirk)
{
	unsigned char b[1] = { 0 };

	switch (quirk) {
	case Q_UNREAD:
		if (SSL_write(p->peer->ssl, "ping", 4) != 4)
			return -1;
		pair_pump(p->peer, p->x);
		return SSL_read(p->x->ssl, b, 1) == 1 ? 0 : -1;
	case Q_NO_MASTER:
		return SSL_SESSION_set1_master_key(SSL_get_session(p->x->ssl),
			   b, 0) == 1 ?
		    0 :
		    -1;
	default:
		return 0;
	}
}

static int
fixture_connect(struct fixture *p, const struct conn *cn, const char *dir)
{
	memset(p, 0, sizeof(*p));
	p->cctx = pair_ctx_new(0, cn->version, cn->ciphers, cn->suites, dir);
	p->sctx = pair_ctx_new(1, cn->version, cn->ciphers, cn->suites, dir);
	if (p->cctx == NULL || p->sctx == NULL)
		return -1;
	if (cn->quirk == Q_NO_KEYLOG) {
		SSL_CTX_set_keylog_callback(p->cctx, NULL);
		SSL_CTX_set_keylog_callback(p->sctx, NULL);
	}
	if (pair_side_new(&p->c, p->cctx) < 0 ||
	    pair_side_new(&p->s, p->sctx) < 0)
		return -1;
	p->x = cn->server ? &p->s : &p->c;
	p->peer = cn->server ? &p->c : &p->s;
	if (cn->quirk == Q_NO_HANDSHAKE)
		return 0;
	if (pair_handshake(&p->c, &p->s) < 0)
		return -1;
	return spoil(p, cn->quirk);
}

static void
fixture_close(struct fixture *p)
{
	pair_side_free(&p->c);
	pair_side_free(&p->s);
	SSL_CTX_free(p->cctx);
	SSL_CTX_free(p->sctx);
}

/*
 * The connection for the case called name; offloaded: switched to kTLS
 * already (through the fake kernel), for the cases that start there. A
 * failure is reported, and leaves nothing open.
 */
static int
fixture_open(struct fixture *p, const struct conn *cn, const char *dir,
    const char *name, int offloaded)
{
	if (fixture_connect(p, cn, dir) == 0 &&
	    (!offloaded || ktls_offload(p->x->k, FAKE_FD) == 0))
		return 0;
	check(0, "%s: cannot set up the connection", name);
	ERR_print_errors_fp(stdout);
	fixture_close(p);
	return -1;
}

/* ---- checks every case shares ---- */

static void
check_direction(const char *name, const struct ktls *k, enum ktls_dir dir,
    enum ktls_state state, const char *why)
{
	const char *d = dir == KTLS_TX ? "TX" : "RX";
	char line[256], want[256];

	check(ktls_state(k, dir) == state, "%s: %s state %d, want %d", name, d,
	    (int)ktls_state(k, dir), (int)state);
	check(strcmp(ktls_reason(k, dir), why) == 0,
	    "%s: %s reason '%s', want '%s'", name, d, ktls_reason(k, dir), why);
	if (state == KTLS_STATE_SOFTWARE)
		snprintf(want, sizeof(want), "kTLS %s: active (software)", d);
	else
		snprintf(want, sizeof(want), "kTLS %s: unavailable (%s)", d,
		    why);
	ktls_status_line(k, dir, line, sizeof(line));
	check(strcmp(line, want) == 0, "%s: status line '%s', want '%s'", name,
	    line, want);
}

static void
check_error(const char *name, const struct ktls *k, const char *want)
{
	/* With no message left, ktls_error() says so. */
	if (want == NULL)
		want = "unknown kTLS error";
	check(strcmp(ktls_error(k), want) == 0,
	    "%s: ktls_error '%s', want '%s'", name, ktls_error(k), want);
}

/*
 * The setsockopt calls: TCP_ULP "tls", then keys in the order of want[]
 * (the offload's TLS_RX and TLS_TX, then those of a rekey), each with
 * the cipher's crypto_info.
 */
static void
check_calls(const char *name, const struct conn *cn, const int *want, int n)
{
	const struct fake_call *c;
	int i, level, opt;
	size_t len;

	check(fake.ncalls == n, "%s: %d setsockopt calls, want %d", name,
	    fake.ncalls, n);
	for (i = 0; i < fake.ncalls && i < n; i++) {
		c = &fake.calls[i];
		level = i == 0 ? SOL_TCP : SOL_TLS;
		opt = i == 0 ? TCP_ULP : want[i - 1];
		len = i == 0 ? sizeof("tls") : cn->info_len;
		check(c->fd == FAKE_FD && c->level == level &&
			c->optname == opt && c->optlen == len,
		    "%s: setsockopt %d: fd %d, level %d, option %d, %u bytes; "
		    "want %d, %d, %d, %zu",
		    name, i, c->fd, c->level, c->optname, (unsigned)c->optlen,
		    FAKE_FD, level, opt, len);
		if (i == 0)
			check(strcmp(c->ulp, "tls") == 0,
			    "%s: TCP_ULP '%s', want 'tls'", name, c->ulp);
		else
			check(c->version == cn->kversion &&
				c->cipher == cn->kcipher,
			    "%s: setsockopt %d: "
			    "crypto_info version %#x cipher %u, want %#x %u",
			    name, i, c->version, c->cipher, cn->kversion,
			    cn->kcipher);
	}
}

static int
all_zero(const void *p, size_t len)
{
	const unsigned char *b = p;
	size_t i;

	for (i = 0; i < len; i++)
		if (b[i] != 0)
			return 0;
	return 1;
}

/* ---- ktls_offload(): preconditions, each step refused, success ---- */

static const char KEPT[] = "kept in userspace with RX";

struct offload_case {
	const char *name;
	enum conn_id conn;
	int fail_at, err; /* the setsockopt refused (0: TCP_ULP), -1: none */
	enum ktls_state rx, tx;
	const char *rx_why, *tx_why; /* "" for an active direction */
	int calls;                   /* setsockopt calls made */
};

#define UNAVAILABLE KTLS_STATE_UNAVAILABLE
#define SOFTWARE    KTLS_STATE_SOFTWARE

static const struct offload_case offloads[] = {
	{ "before the handshake", C13_EARLY, -1, 0, UNAVAILABLE, UNAVAILABLE,
	    "the TLS handshake is not complete", KEPT, 0 },
	{ "TLS 1.1", C11, -1, 0, UNAVAILABLE, UNAVAILABLE,
	    "TLSv1.1 is not TLS 1.2 or 1.3", KEPT, 0 },
	{ "TLS 1.2 CBC suite", C12_CBC, -1, 0, UNAVAILABLE, UNAVAILABLE,
	    "kernel TLS has no cipher for " CBC, KEPT, 0 },
	{ "TLS 1.3 secrets not captured", C13_NO_KEYLOG, -1, 0, UNAVAILABLE,
	    UNAVAILABLE,
	    "TLS 1.3 traffic secrets were not captured "
	    "(ktls_ctx_prepare() not called before the handshake?)",
	    KEPT, 0 },
	{ "OpenSSL holds unread data", C13_UNREAD, -1, 0, UNAVAILABLE,
	    UNAVAILABLE, "OpenSSL still holds unread record data", KEPT, 0 },
	{ "TLS 1.2 master secret missing", C12_NO_MASTER, -1, 0, UNAVAILABLE,
	    UNAVAILABLE, "deriving the record keys failed", KEPT, 0 },
	{ "TLS 1.3 AES-128-GCM client", C13, -1, 0, SOFTWARE, SOFTWARE, "", "",
	    3 },
	{ "TLS 1.3 AES-256-GCM server", C13_AES256, -1, 0, SOFTWARE, SOFTWARE,
	    "", "", 3 },
	{ "TLS 1.2 AES-128-GCM server", C12, -1, 0, SOFTWARE, SOFTWARE, "", "",
	    3 },
	{ "TLS 1.2 ChaCha20-Poly1305 client", C12_CHACHA, -1, 0, SOFTWARE,
	    SOFTWARE, "", "", 3 },
	{ "TLS 1.2 AES-128-CCM server", C12_CCM, -1, 0, SOFTWARE, SOFTWARE, "",
	    "", 3 },
};

/*
 * diagnoses[] in ktls_keys.c, and one errno it does not know; the key
 * refusals name the cipher of the connection they are tried on (C13).
 */
static const struct refusal {
	int err;
	const char *name, *why;
} ulp_refusals[] = {
	{ ENOENT, "ENOENT", "kernel has no TLS ULP (CONFIG_TLS / tls module)" },
	{ ENOPROTOOPT, "ENOPROTOOPT",
	    "kernel has no TCP ULP support (too old)" },
	{ EEXIST, "EEXIST", "socket already has a different ULP" },
	{ ENOTCONN, "ENOTCONN",
	    "connection no longer established (peer closed its side)" },
	{ EPERM, "EPERM", "not permitted to load the tls module" },
	{ EIO, "EIO", "TCP_ULP tls failed: Input/output error" },
}, key_refusals[] = {
	{ ENOENT, "ENOENT",
	    "kernel lacks the crypto for AES-128-GCM (module not loaded)" },
	{ EINVAL, "EINVAL",
	    "kernel does not support AES-128-GCM with this TLS version" },
	{ ENOPROTOOPT, "ENOPROTOOPT",
	    "kernel does not support AES-128-GCM with this TLS version" },
	{ EOPNOTSUPP, "EOPNOTSUPP",
	    "kernel does not support AES-128-GCM with this TLS version" },
	{ EBUSY, "EBUSY",
	    "a key is already installed and this kernel cannot rekey" },
	{ EEXIST, "EEXIST",
	    "a key is already installed and this kernel cannot rekey" },
	{ ENOMEM, "ENOMEM", "kernel is out of memory" },
	{ EIO, "EIO", "installing the key failed: Input/output error" },
};

/* After a success TLS 1.3 keeps its secrets for KeyUpdate; else none stay. */
static void
check_secrets(const char *name, const struct ktls *k, int version, int ret,
    const struct ktls_secret before[2])
{
	if (ret == 0 && version == TLS1_3_VERSION)
		check(before[0].len > 0 && before[1].len > 0 &&
			memcmp(k->secret, before, sizeof(k->secret)) == 0,
		    "%s: TLS 1.3 secrets not kept for KeyUpdate", name);
	else
		check(all_zero(k->secret, sizeof(k->secret)),
		    "%s: secrets not wiped", name);
}

static void
run_offload(const struct offload_case *t, const char *dir)
{
	static const int keys[] = { TLS_RX, TLS_TX };
	const struct conn *cn = &conns[t->conn];
	struct ktls_secret before[2];
	char err[256];
	struct fixture p;
	struct ktls *k;
	int ret, want = t->rx == SOFTWARE && t->tx == SOFTWARE ? 0 : -1, d;

	if (fixture_open(&p, cn, dir, t->name, 0) < 0)
		return;
	k = p.x->k;
	/* TLS 1.2 never keeps traffic secrets: planted ones must go too. */
	for (d = 0; cn->version != TLS1_3_VERSION && d < 2; d++) {
		memset(k->secret[d].b, 0xa5, 32);
		k->secret[d].len = 32;
	}
	memcpy(before, k->secret, sizeof(before));
	fake_reset(t->fail_at, t->err);
	ret = ktls_offload(k, FAKE_FD);
	check(ret == want, "%s: ktls_offload() returned %d, want %d", t->name,
	    ret, want);
	check_direction(t->name, k, KTLS_RX, t->rx, t->rx_why);
	check_direction(t->name, k, KTLS_TX, t->tx, t->tx_why);
	/* The direction that stayed in userspace, and why. */
	snprintf(err, sizeof(err), "kTLS %s: %s",
	    t->rx == SOFTWARE ? "TX" : "RX",
	    t->rx == SOFTWARE ? t->tx_why : t->rx_why);
	check_error(t->name, k, want == 0 ? NULL : err);
	check_calls(t->name, cn, keys, t->calls);
	check_secrets(t->name, k, cn->version, ret, before);
	fixture_close(&p);
}

/* TCP_ULP refused: both directions stay in userspace, for the same reason. */
static void
test_ulp_refused(const char *dir)
{
	struct offload_case t = { NULL, C13, 0, 0, UNAVAILABLE, UNAVAILABLE,
		NULL, NULL, 1 };
	char name[96];
	size_t i;

	for (i = 0; i < sizeof(ulp_refusals) / sizeof(ulp_refusals[0]); i++) {
		snprintf(name, sizeof(name), "TCP_ULP refused with %s",
		    ulp_refusals[i].name);
		t.name = name;
		t.err = ulp_refusals[i].err;
		t.rx_why = t.tx_why = ulp_refusals[i].why;
		run_offload(&t, dir);
	}
}

/*
 * A key refused: for RX, TX is not tried and the connection stays in
 * userspace; for TX, RX is on in the kernel and TX stays in userspace.
 */
static void
test_key_refused(const char *dir)
{
	struct offload_case t = { NULL, C13, 0, 0, UNAVAILABLE, UNAVAILABLE,
		NULL, NULL, 0 };
	const struct refusal *r;
	char name[96];
	size_t i;
	int rx;

	for (i = 0; i < sizeof(key_refusals) / sizeof(key_refusals[0]); i++) {
		r = &key_refusals[i];
		for (rx = 1; rx >= 0; rx--) {
			snprintf(name, sizeof(name), "TLS_%s refused with %s",
			    rx ? "RX" : "TX", r->name);
			t.name = name;
			t.fail_at = rx ? 1 : 2;
			t.err = r->err;
			t.rx = rx ? UNAVAILABLE : SOFTWARE;
			t.rx_why = rx ? r->why : "";
			t.tx_why = rx ? KEPT : r->why;
			t.calls = t.fail_at + 1;
			run_offload(&t, dir);
		}
	}
}

/* ---- rekeying after a successful offload ---- */

#define NO_REKEY "this kernel cannot rekey kTLS (Linux 6.14 or later can): "
#define KEY_UPDATE(req)                                                        \
	{                                                                      \
		22, { 24, 0, 0, 1, req }, 5                                    \
	}
#define ALERT_INTERNAL                                                         \
	{                                                                      \
		21, { 2, 80 }, 2                                               \
	}

static const struct rekey_case {
	const char *name;
	int peer;         /* the peer's KeyUpdate (ktls_read), not ours */
	int can_rekey;    /* what /proc/net/tls_stat says */
	int fail_at, err; /* the setsockopt refused (3: the first rekey) */
	int ret;
	const char *error;        /* NULL: none */
	int calls, keys[2];       /* setsockopts in all; the keys after 3 */
	struct fake_record rx[2]; /* what the peer sends */
	struct fake_record tx[2]; /* what goes out */
	uint64_t sent, received;  /* KeyUpdates counted */
} rekeys[] = {
	{ "our KeyUpdate, kernel without rekey in tls_stat", 0, 0, -1, 0, -1,
	    NO_REKEY "the send key cannot be updated", 3, { 0 }, { { 0 } },
	    { ALERT_INTERNAL }, 0, 0 },
	{ "our KeyUpdate, new TLS_TX refused with EBUSY", 0, 1, 3, EBUSY, -1,
	    NO_REKEY "the send key cannot be updated", 4, { TLS_TX }, { { 0 } },
	    { KEY_UPDATE(0) }, 0, 0 },
	{ "our KeyUpdate, new TLS_TX refused with EINVAL", 0, 1, 3, EINVAL, -1,
	    "KeyUpdate: installing the new TLS_TX key: Invalid argument", 4,
	    { TLS_TX }, { { 0 } }, { KEY_UPDATE(0) }, 0, 0 },
	{ "our KeyUpdate, taken", 0, 1, -1, 0, 0, NULL, 4, { TLS_TX },
	    { { 0 } }, { KEY_UPDATE(0) }, 1, 0 },
	{ "peer's KeyUpdate, new TLS_RX refused with EBUSY", 1, 0, 3, EBUSY, -1,
	    NO_REKEY "the receive key cannot be updated", 4, { TLS_RX },
	    { KEY_UPDATE(0) }, { ALERT_INTERNAL }, 0, 0 },
	{ "peer's KeyUpdate, taken, then data", 1, 0, -1, 0, 2, NULL, 4,
	    { TLS_RX }, { KEY_UPDATE(0), { 23, "ok", 2 } }, { { 0 } }, 0, 1 },
	{ "peer's KeyUpdate asking ours, new TLS_TX refused with EBUSY", 1, 1,
	    4, EBUSY, -1, NO_REKEY "the send key cannot be updated", 5,
	    { TLS_RX, TLS_TX }, { KEY_UPDATE(1) }, { KEY_UPDATE(0) }, 0, 1 },
};

static void
check_sent(const char *name, const struct fake_record *want)
{
	int i, n = 0;

	while (n < 2 && want[n].len > 0)
		n++;
	check(fake.ntx == n, "%s: %d records sent, want %d", name, fake.ntx, n);
	for (i = 0; i < fake.ntx && i < n; i++)
		check(fake.tx[i].type == want[i].type &&
			fake.tx[i].len == want[i].len &&
			memcmp(fake.tx[i].b, want[i].b, want[i].len) == 0,
		    "%s: record %d sent: type %u, %zu bytes, first %02x %02x; "
		    "want type %u, %zu bytes, first %02x %02x",
		    name, i, fake.tx[i].type, fake.tx[i].len, fake.tx[i].b[0],
		    fake.tx[i].b[1], want[i].type, want[i].len, want[i].b[0],
		    want[i].b[1]);
}

static void
run_rekey(const struct rekey_case *t, const char *dir)
{
	const struct conn *cn = &conns[C13];
	uint64_t sent, received;
	char buf[64];
	struct fixture p;
	struct ktls *k;
	int ret, n;

	fake_reset(-1, 0);
	if (fixture_open(&p, cn, dir, t->name, 1) < 0)
		return;
	k = p.x->k;
	fake.fail_at = t->fail_at;
	fake.err = t->err;
	fake.can_rekey = t->can_rekey;
	for (n = 0; n < 2 && t->rx[n].len > 0; n++)
		fake.rx[fake.nrx++] = t->rx[n];
	ret = t->peer ? (int)ktls_read(k, buf, sizeof(buf)) :
			ktls_key_update(k, 0);
	check(ret == t->ret, "%s: returned %d, want %d", t->name, ret, t->ret);
	check_error(t->name, k, t->error);
	check_calls(t->name, cn,
	    (const int[]){ TLS_RX, TLS_TX, t->keys[0], t->keys[1] }, t->calls);
	check_sent(t->name, t->tx);
	ktls_key_update_counts(k, &sent, &received);
	check(sent == t->sent && received == t->received,
	    "%s: KeyUpdates "
	    "sent %llu, received %llu; want %llu, %llu",
	    t->name, (unsigned long long)sent, (unsigned long long)received,
	    (unsigned long long)t->sent, (unsigned long long)t->received);
	fixture_close(&p);
}

/* ---- the other calls through the seam: write, sendfile, recvmsg ---- */

enum io_call {
	IO_READ,
	IO_WRITE,
	IO_SENDFILE
};

static const struct io_case {
	const char *name;
	enum io_call call;
	int err; /* the call's errno; 0: sendfile finds the file's end */
	const char *error;
	struct fake_record tx[2]; /* the alert that goes out */
	int getsockopts;          /* SO_ERROR read so that the alert can go */
} ios[] = {
	{ "write meets a bad record kTLS RX decrypted ahead", IO_WRITE, EBADMSG,
	    "kTLS read: record failed authentication (bad_record_mac)",
	    { { 21, { 2, 20 }, 2 } }, 1 },
	{ "write to a reset connection", IO_WRITE, ECONNRESET,
	    "kTLS write: Connection reset by peer", { { 0 } }, 0 },
	{ "sendfile of a file that ends early", IO_SENDFILE, 0,
	    "kTLS sendfile: the file ended early", { { 0 } }, 0 },
	{ "read of an oversized record", IO_READ, EMSGSIZE,
	    "kTLS read: record too large (record_overflow)",
	    { { 21, { 2, 22 }, 2 } }, 1 },
};

static void
run_io(const struct io_case *t, const char *dir)
{
	char buf[64] = "data";
	struct fixture p;
	struct ktls *k;
	ssize_t ret = 0;

	fake_reset(-1, 0);
	if (fixture_open(&p, &conns[C13], dir, t->name, 1) < 0)
		return;
	k = p.x->k;
	fake.io_err = fake.rx_err = t->err;
	if (t->call == IO_READ)
		ret = ktls_read(k, buf, sizeof(buf));
	else if (t->call == IO_WRITE)
		ret = ktls_write(k, buf, sizeof(buf));
	else
		ret = ktls_sendfile(k, -1, 0, sizeof(buf));
	check(ret == -1, "%s: returned %zd, want -1", t->name, ret);
	check_error(t->name, k, t->error);
	check_sent(t->name, t->tx);
	check(fake.getsockopts == t->getsockopts,
	    "%s: %d getsockopt calls, "
	    "want %d",
	    t->name, fake.getsockopts, t->getsockopts);
	fixture_close(&p);
}

/* ---- after ktls_detach(): the SSL freed, the connection goes on ---- */

static const struct detach_case {
	const char *name;
	enum conn_id conn;
	const char *md; /* the suite's hash, named here, not asked of it */
	size_t key_off, key_len; /* the key in the suite's crypto_info */
} detaches[] = {
	{ "TLS 1.3 AES-128-GCM client, SSL freed", C13, "SHA256",
	    offsetof(struct tls12_crypto_info_aes_gcm_128, key), 16 },
	{ "TLS 1.3 AES-256-GCM server, SSL freed", C13_AES256, "SHA384",
	    offsetof(struct tls12_crypto_info_aes_gcm_256, key), 32 },
	/* No KeyUpdate in TLS 1.2: the alerts only. */
	{ "TLS 1.2 AES-128-GCM server, SSL freed", C12, NULL, 0, 0 },
};

/* What goes out: our KeyUpdate, the one the peer asked for, two alerts. */
static const struct fake_record detached_sent[] = {
	KEY_UPDATE(0),
	KEY_UPDATE(0),
	{ 21, { 2, SSL_AD_ACCESS_DENIED }, 2 },
	{ 21, { 1, 0 }, 2 },
};

/*
 * The key after a KeyUpdate of secret (RFC 8446 7.2): the next secret is
 * HKDF-Expand-Label(secret, "traffic upd"), its key Expand-Label "key".
 */
static int
next_key(const char *md_name, const struct ktls_secret *s, unsigned char *key,
    size_t key_len)
{
	const EVP_MD *md = EVP_get_digestbyname(md_name);
	unsigned char next[EVP_MAX_MD_SIZE];
	int ret = -1;

	if (ktls_tls13_expand_label(md, s->b, s->len, "traffic upd", next,
		s->len) == 0 &&
	    ktls_tls13_expand_label(md, next, s->len, "key", key, key_len) == 0)
		ret = 0;
	OPENSSL_cleanse(next, sizeof(next));
	return ret;
}

/* Our KeyUpdate, then the peer's asking for ours, then its data. */
static void
detached_rekeys(const struct detach_case *t, struct ktls *k,
    const struct ktls_secret sec[2])
{
	const struct conn *cn = &conns[t->conn];
	unsigned char want[2][32];
	char buf[64];
	ssize_t n;

	fake.can_rekey = 1;
	check(ktls_key_update(k, 0) == 0, "%s: our KeyUpdate: %s", t->name,
	    ktls_error(k));
	fake.rx[fake.nrx++] = (struct fake_record)KEY_UPDATE(1);
	fake.rx[fake.nrx++] = (struct fake_record){ 23, "ok", 2 };
	n = ktls_read(k, buf, sizeof(buf));
	check(n == 2, "%s: read after the peer's KeyUpdate returned %zd: %s",
	    t->name, n, ktls_error(k));
	check_calls(t->name, cn,
	    (const int[]){ TLS_RX, TLS_TX, TLS_TX, TLS_RX, TLS_TX }, 6);
	if (next_key(t->md, &sec[KTLS_TX], want[KTLS_TX], t->key_len) < 0 ||
	    next_key(t->md, &sec[KTLS_RX], want[KTLS_RX], t->key_len) < 0) {
		check(0, "%s: cannot derive the expected keys", t->name);
		return;
	}
	check(fake.ncalls >= 5 &&
		memcmp(fake.calls[3].info + t->key_off, want[KTLS_TX],
		    t->key_len) == 0 &&
		memcmp(fake.calls[4].info + t->key_off, want[KTLS_RX],
		    t->key_len) == 0,
	    "%s: the new keys are not the %s KeyUpdate of the secrets", t->name,
	    t->md);
	OPENSSL_cleanse(want, sizeof(want));
}

/*
 * The SSL freed once both directions are in the kernel (conn_free_ssl
 * does this): KeyUpdates both ways with the right keys, an alert and
 * close_notify all go on from what the module kept. With a direction
 * in userspace, ktls_detach() refuses and the SSL stays.
 */
static void
run_detached(const struct detach_case *t, const char *dir)
{
	const struct conn *cn = &conns[t->conn];
	struct ktls_secret sec[2];
	struct fixture p;
	struct ktls *k;
	int i, first;

	fake_reset(-1, 0);
	if (fixture_open(&p, cn, dir, t->name, 1) < 0)
		return;
	k = p.x->k;
	memcpy(sec, k->secret, sizeof(sec));
	check(ktls_detach(k) == 0 && k->ssl == NULL,
	    "%s: ktls_detach refused: %s", t->name, ktls_error(k));
	SSL_free(p.x->ssl);
	p.x->ssl = NULL;
	if (t->md != NULL)
		detached_rekeys(t, k, sec);
	check(ktls_send_alert(k, SSL_AD_ACCESS_DENIED) == 0, "%s: alert: %s",
	    t->name, ktls_error(k));
	check(ktls_close_notify(k) == 0, "%s: close_notify: %s", t->name,
	    ktls_error(k));
	first = t->md != NULL ? 0 : 2;
	check(fake.ntx == 4 - first, "%s: %d records sent, want %d", t->name,
	    fake.ntx, 4 - first);
	for (i = 0; i < fake.ntx && first + i < 4; i++)
		check(fake.tx[i].type == detached_sent[first + i].type &&
			fake.tx[i].len == detached_sent[first + i].len &&
			memcmp(fake.tx[i].b, detached_sent[first + i].b,
			    fake.tx[i].len) == 0,
		    "%s: record %d sent: type %u, %zu bytes, first %02x %02x",
		    t->name, i, fake.tx[i].type, fake.tx[i].len,
		    fake.tx[i].b[0], fake.tx[i].b[1]);
	OPENSSL_cleanse(sec, sizeof(sec));
	fixture_close(&p);
}

/* TX refused: RX alone in the kernel, so the SSL must stay. */
static void
test_detach_refused(const char *dir)
{
	const char *name = "ktls_detach with TX in userspace";
	struct fixture p;

	fake_reset(2, EINVAL);
	if (fixture_open(&p, &conns[C13], dir, name, 0) < 0)
		return;
	check(ktls_offload(p.x->k, FAKE_FD) == -1 &&
		ktls_active(p.x->k, KTLS_RX) && !ktls_active(p.x->k, KTLS_TX),
	    "%s: the offload did not leave RX alone in the kernel", name);
	check(ktls_detach(p.x->k) == -1 && p.x->k->ssl == p.x->ssl,
	    "%s: ktls_detach let go of the SSL", name);
	fixture_close(&p);
}

/* ---- the real calls, when no test has swapped them ---- */

static void
test_real_calls(const char *dir, const char *when)
{
	char name[96];
	struct fixture p;

	snprintf(name, sizeof(name), "real system calls %s", when);
	if (fixture_open(&p, &conns[C13], dir, name, 0) < 0)
		return;
	check(ktls_offload(p.x->k, -1) == -1 &&
		strcmp(ktls_error(p.x->k),
		    "kTLS RX: TCP_ULP tls failed: Bad file "
		    "descriptor") == 0,
	    "%s: ktls_offload on fd -1 says '%s'", name, ktls_error(p.x->k));
	fixture_close(&p);
}

/*
 * This module owns kTLS: SSL_OP_ENABLE_KTLS (which "Options = KTLS" in
 * openssl.cnf sets through SSL_CTX_new) is off after ktls_ctx_prepare(),
 * on the SSL_CTX and on the SSLs made from it, and ktls_new() turns it
 * off on an SSL that code set it on; the caller learns it was asked for.
 */
static void
test_openssl_ktls_off(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_method()),
		*plain = SSL_CTX_new(TLS_method());
	SSL *a = NULL, *b = NULL;
	struct ktls *k = NULL;
	char err[256] = "";

	if (ctx == NULL || plain == NULL) {
		check(0, "cannot create an SSL_CTX");
		goto out;
	}
	SSL_CTX_set_options(ctx, SSL_OP_ENABLE_KTLS);
	check(ktls_ctx_prepare(ctx, err, sizeof(err)) == 0,
	    "ktls_ctx_prepare failed: %s", err);
	check((SSL_CTX_get_options(ctx) & SSL_OP_ENABLE_KTLS) == 0,
	    "SSL_OP_ENABLE_KTLS still set on the SSL_CTX");
	check(ktls_ctx_took_openssl_ktls(ctx) == 1,
	    "ktls_ctx_took_openssl_ktls() does not say it was asked for");
	check(ktls_ctx_prepare(ctx, err, sizeof(err)) == 0 &&
		ktls_ctx_took_openssl_ktls(ctx) == 1,
	    "a second ktls_ctx_prepare() forgot it");
	check(ktls_ctx_prepare(plain, err, sizeof(err)) == 0 &&
		ktls_ctx_took_openssl_ktls(plain) == 0,
	    "ktls_ctx_took_openssl_ktls() says so of an SSL_CTX without it");
	if ((a = SSL_new(ctx)) == NULL || (b = SSL_new(ctx)) == NULL) {
		check(0, "cannot create an SSL");
		goto out;
	}
	check((SSL_get_options(a) & SSL_OP_ENABLE_KTLS) == 0,
	    "an SSL made from the prepared SSL_CTX has SSL_OP_ENABLE_KTLS");
	SSL_set_options(b, SSL_OP_ENABLE_KTLS);
	k = ktls_new(b);
	check(k != NULL && (SSL_get_options(b) & SSL_OP_ENABLE_KTLS) == 0,
	    "ktls_new() left SSL_OP_ENABLE_KTLS set on its SSL");
out:
	ktls_free(k);
	SSL_free(a);
	SSL_free(b);
	SSL_CTX_free(ctx);
	SSL_CTX_free(plain);
}

int
main(void)
{
	const char *dir = getenv("HK_CERTS");
	size_t i;

	if (dir == NULL) {
		check(0,
		    "HK_CERTS is not set: no certificates for the "
		    "handshakes");
		return check_summary();
	}
	test_openssl_ktls_off();
	test_real_calls(dir, "before any test swapped them");
	ktls_syscalls_set_for_testing(&fake_kernel_calls);
	for (i = 0; i < sizeof(offloads) / sizeof(offloads[0]); i++)
		run_offload(&offloads[i], dir);
	test_ulp_refused(dir);
	test_key_refused(dir);
	for (i = 0; i < sizeof(rekeys) / sizeof(rekeys[0]); i++)
		run_rekey(&rekeys[i], dir);
	for (i = 0; i < sizeof(ios) / sizeof(ios[0]); i++)
		run_io(&ios[i], dir);
	for (i = 0; i < sizeof(detaches) / sizeof(detaches[0]); i++)
		run_detached(&detaches[i], dir);
	test_detach_refused(dir);
	ktls_syscalls_set_for_testing(NULL);
	test_real_calls(dir, "after the test put them back");
	return check_summary();
}
