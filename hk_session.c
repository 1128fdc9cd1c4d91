/*
 * hk_session.c - one connection's way from a connected socket to kTLS and
 * back, as both programs drive it: the handshake, the session and the
 * peer's certificate, the switch and what the kernel says of it, optional
 * kernel features, and --stats around the exchange.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "hk_expiry.h"
#include "hk_print.h"
#include "hk_session.h"
#include "ktls_nic_cache.h"
#include "mtls.h"
#include "mtls_policy.h"

/*
 * The offload note asks for the egress interface's TLS features on every
 * kTLS connection. The server's client threads share this one cache, so a
 * burst of clients costs a route lookup each and one feature query per
 * interface every NIC_CACHE_SECS; a feature switched with `ethtool -K`
 * shows in the note within that time.
 */
#define NIC_CACHE_SECS 10
static struct ktls_nic_cache nic_cache = KTLS_NIC_CACHE_INIT(NIC_CACHE_SECS);

/* One direction the NIC could have taken but the socket did not. */
static void
offload_note(const struct conn *c, const struct ktls_nic *n, enum ktls_dir d)
{
	int feature = d == KTLS_TX ? n->tls_tx_feature : n->tls_rx_feature;

	if (feature != 1 || ktls_state(c->k, d) != KTLS_STATE_SOFTWARE)
		return;
	hk_say("note: %s has tls-hw-%s-offload on, but the kernel kept kTLS %s "
	       "in software for this socket (drivers offload only some versions "
	       "and ciphers, e.g. often not TLS 1.3, and fall back when their "
	       "offload table is full)",
	    n->ifname, d == KTLS_TX ? "tx" : "rx", d == KTLS_TX ? "TX" : "RX");
}

/*
 * Where the egress NIC advertises TLS offload but the kernel kept a
 * direction in software, say so: the kernel falls back silently.
 */
static void
offload_notes(const struct conn *c)
{
	struct ktls_nic n;
	char err[256];

	if (!ktls_active(c->k, KTLS_TX) && !ktls_active(c->k, KTLS_RX))
		return;
	if (ktls_nic_cache_query(&nic_cache, c->fd, &n, err, sizeof(err)) < 0)
		return;
	offload_note(c, &n, KTLS_TX);
	offload_note(c, &n, KTLS_RX);
}

/* --stats: a snapshot before the switch to kTLS. */
static void
counters_begin(const struct conn *c, struct hk_counters *k)
{
	char err[256], line[512];

	memset(k, 0, sizeof(*k));
	k->have_nic = ktls_nic_query(c->fd, &k->nic, err, sizeof(err)) == 0 &&
	    ktls_nic_stats(&k->nic, err, sizeof(err)) == 0;
	if (k->have_nic) {
		ktls_nic_describe(&k->nic, line, sizeof(line));
		hk_say("Interface: %s", line);
	} else
		hk_say("Interface: unknown (%s)", err);
	k->have_stat = ktls_tls_stat_read(&k->stat, err, sizeof(err)) == 0;
	if (!k->have_stat)
		hk_say("Kernel TLS counters: unavailable (%s)", err);
}

/* --stats: what changed over the exchange. */
static void
counters_end(const struct conn *c, struct hk_counters *k)
{
	struct ktls_nic nic = k->nic;
	struct ktls_tls_stat stat = k->stat;
	char err[256], buf[8192], *line, *next;
	int n;

	(void)c;
	if (k->have_nic && ktls_nic_stats(&nic, err, sizeof(err)) < 0)
		nic = k->nic;
	if (k->have_stat && ktls_tls_stat_read(&stat, err, sizeof(err)) < 0)
		stat = k->stat;
	n = ktls_nic_deltas(k->have_nic ? &k->nic : NULL,
	    k->have_nic ? &nic : NULL, k->have_stat ? &k->stat : NULL,
	    k->have_stat ? &stat : NULL, buf, sizeof(buf));
	hk_say("Counter changes over the connection:%s", n == 0 ? " none" : "");
	for (line = n > 0 ? buf : NULL; line != NULL && *line != '\0';
	     line = next) {
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		hk_say("%s", line);
	}
}

/* "TLS 1.3 key updates: sent N, received M", if there were any. */
static void
key_updates(const struct conn *c)
{
	unsigned long long sent, received;

	conn_key_updates(c, &sent, &received);
	if (sent > 0 || received > 0)
		hk_say("TLS 1.3 key updates: sent %llu, received %llu", sent,
		    received);
}

/* A client let in although its revocation check failed (mtls_crl.c). */
static void
revocation_note(struct conn *c)
{
	unsigned long total;
	const char *why = mtls_verify_passed(c->ssl, &total);

	if (why != NULL)
		hk_say("Revocation: not checked: %s (%lu so far)", why, total);
}

/*
 * The time left on the peer's certificate: in the server's log for each
 * client, and a warning in the client where the server's is near its
 * end. With --close-at-expiry the connection ends then (conn.c wakes a
 * wait at the deadline).
 */
static void
expiry_note(struct conn *c, const struct hk_config *cfg, const char *peer)
{
	const X509 *x = SSL_get0_peer_certificate(c->ssl);
	time_t now = time(NULL), nb, na;
	char words[48];

	if (x == NULL || hk_expiry_dates(x, &nb, &na) < 0)
		return;
	hk_expiry_words((long long)na - now, words, sizeof(words));
	hk_say("%s certificate expires in %s", peer, words);
	if (cfg->role == HK_CLIENT && hk_expiry_near(x, now))
		hk_warn("warning: server certificate expires in %s", words);
	if (cfg->role == HK_SERVER && cfg->close_at_expiry) {
		conn_set_deadline(c, na, "client certificate expired");
		hk_say("Connection ends at the certificate's expiry "
		       "(--close-at-expiry)");
	}
}

/* Optional kernel features: a notice where missing, never fatal. */
static void
tune(struct conn *c, const struct hk_config *cfg)
{
	if (cfg->zerocopy && ktls_tx_zerocopy(c->k) < 0)
		hk_say("notice: --zerocopy-sendfile not used: %s",
		    ktls_error(c->k));
	if (cfg->rx_expect_no_pad && ktls_rx_expect_no_pad(c->k) < 0)
		hk_say("notice: --rx-expect-no-pad not used: %s",
		    ktls_error(c->k));
}

/*
 * The alert that tells a client the policy refused it. OpenSSL 3.0 has
 * finished its handshake by now and has no call to send an alert, so
 * the kTLS module seals it under the connection's send key (no key has
 * gone to the kernel yet). Where it cannot (a suite with no AEAD kTLS
 * knows), the client gets close_notify instead, and the log says so.
 */
static void
deny_alert(struct conn *c)
{
	if (ktls_send_alert(c->k, SSL_AD_ACCESS_DENIED) == 0) {
		c->failed = 1; /* a fatal alert: nothing may follow it */
		return;
	}
	hk_say("note: no access_denied alert (%s); closing with close_notify",
	    ktls_error(c->k));
}

/*
 * --policy: decide on the client's certificate, every time: a resumed
 * session skipped verification, but its certificate is the one that was
 * verified when the session was made (mtls.c checks its dates again).
 */
static int
authorize(struct conn *c, struct hk_authz *az)
{
	struct mtls_decision *d = &az->decision;
	char grants[384];

	az->decided = 1;
	if (mtls_policy_decide(az->policy, SSL_get0_peer_certificate(c->ssl),
		d)) {
		mtls_decision_grants(d, grants, sizeof(grants));
		hk_say("Allowed: %s; grants %s", d->reason + 7, grants);
		return 0;
	}
	hk_say("Denied: %s", d->reason + 6);
	deny_alert(c);
	conn_seterr(c, "access denied: %s", d->reason + 6);
	return -1;
}

int
hk_session_start(struct conn *c, const struct hk_config *cfg, const char *peer,
    struct hk_authz *authz, struct hk_counters *counters)
{
	hk_say("Performing TLS handshake...");
	if (conn_handshake(c) < 0)
		return -1;
	hk_say("TLS handshake completed successfully");
	hk_print_session(c, peer);
	revocation_note(c);
	if (mtls_staple_result(c->ssl) != NULL)
		hk_say("%s", mtls_staple_result(c->ssl));
	if (authz != NULL && authz->policy != NULL && authorize(c, authz) < 0)
		return -1;
	expiry_note(c, cfg, peer);
	c->rekey_bytes = cfg->key_update_bytes;
	/* Before the switch, so that the connection's own counts show. */
	if (cfg->stats)
		counters_begin(c, counters);
	if (conn_offload(c, cfg->ktls) < 0)
		return -1;
	hk_print_ktls(c);
	offload_notes(c);
	tune(c, cfg);
	return 0;
}

void
hk_session_end(struct conn *c, const struct hk_config *cfg,
    struct hk_counters *counters)
{
	if (cfg->stats)
		counters_end(c, counters);
	key_updates(c);
}

void
hk_session_free_ssl(struct conn *c)
{
	if (conn_free_ssl(c))
		hk_say("OpenSSL connection freed: the kernel holds both "
		       "directions");
}
