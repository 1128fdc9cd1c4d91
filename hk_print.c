/*
 * hk_print.c - the lines both programs print, in the seed's words.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>
#include <string.h>

#include "hk_print.h"
#include "ktls_nic_cache.h"
#include "mtls.h"

/*
 * The offload note asks for the egress interface's TLS features on every
 * kTLS connection. The server's client threads share this one cache, so a
 * burst of clients costs a route lookup each and one feature query per
 * interface every NIC_CACHE_SECS; a feature switched with `ethtool -K`
 * shows in the note within that time.
 */
#define NIC_CACHE_SECS 10
static struct ktls_nic_cache nic_cache = KTLS_NIC_CACHE_INIT(NIC_CACHE_SECS);

static const char *progname = "hello_ktls";

void
hk_print_init(const char *prog)
{
	progname = prog;
	setvbuf(stdout, NULL, _IOLBF, 0);
}

/*
 * One write() per line: the server's children share stderr, and a line
 * written in pieces can be cut into by another process.
 */
void
hk_warn(const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n, m;

	fflush(stdout);
	n = snprintf(line, sizeof(line), "%s: ", progname);
	va_start(ap, fmt);
	m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	n += (size_t)m < sizeof(line) - (size_t)n - 1 ? m :
	    (int)(sizeof(line) - (size_t)n - 2);
	line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, (size_t)n);
}

void
hk_print_session(struct conn *c, const char *peer_title)
{
	char subject[256], issuer[256];

	printf("Protocol: %s\n", SSL_get_version(c->ssl));
	printf("Cipher: %s\n", SSL_CIPHER_get_name(SSL_get_current_cipher(c->ssl)));
	printf("=== %s Certificate ===\n", peer_title);
	if (mtls_peer_names(c->ssl, subject, issuer, sizeof(subject)) == 0) {
		printf("Subject: %s\n", subject);
		printf("Issuer: %s\n", issuer);
	}
	printf("Certificate verified: %s\n",
	    SSL_get_verify_result(c->ssl) == X509_V_OK ? "YES" : "NO");
}

void
hk_print_ktls(const struct conn *c)
{
	char line[256];

	ktls_status_line(c->k, KTLS_TX, line, sizeof(line));
	printf("%s\n", line);
	ktls_status_line(c->k, KTLS_RX, line, sizeof(line));
	printf("%s\n", line);
	if (c->unconfirmed[0] != '\0')
		printf("note: %s\n", c->unconfirmed);
}

/* One direction the NIC could have taken but the socket did not. */
static void
offload_note(const struct conn *c, const struct ktls_nic *n, enum ktls_dir d)
{
	int feature = d == KTLS_TX ? n->tls_tx_feature : n->tls_rx_feature;

	if (feature != 1 || ktls_state(c->k, d) != KTLS_STATE_SOFTWARE)
		return;
	printf("note: %s has tls-hw-%s-offload on, but the kernel kept kTLS %s "
	    "in software for this socket (drivers offload only some versions "
	    "and ciphers, e.g. often not TLS 1.3, and fall back when their "
	    "offload table is full)\n", n->ifname, d == KTLS_TX ? "tx" : "rx",
	    d == KTLS_TX ? "TX" : "RX");
}

void
hk_print_offload_note(const struct conn *c)
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

void
hk_counters_begin(const struct conn *c, struct hk_counters *k)
{
	char err[256], line[512];

	memset(k, 0, sizeof(*k));
	k->have_nic = ktls_nic_query(c->fd, &k->nic, err, sizeof(err)) == 0 &&
	    ktls_nic_stats(&k->nic, err, sizeof(err)) == 0;
	if (k->have_nic) {
		ktls_nic_describe(&k->nic, line, sizeof(line));
		printf("Interface: %s\n", line);
	} else
		printf("Interface: unknown (%s)\n", err);
	k->have_stat = ktls_tls_stat_read(&k->stat, err, sizeof(err)) == 0;
	if (!k->have_stat)
		printf("Kernel TLS counters: unavailable (%s)\n", err);
}

void
hk_counters_end(const struct conn *c, struct hk_counters *k)
{
	struct ktls_nic nic = k->nic;
	struct ktls_tls_stat stat = k->stat;
	char err[256], buf[8192];
	int n;

	(void)c;
	if (k->have_nic && ktls_nic_stats(&nic, err, sizeof(err)) < 0)
		nic = k->nic;
	if (k->have_stat && ktls_tls_stat_read(&stat, err, sizeof(err)) < 0)
		stat = k->stat;
	n = ktls_nic_deltas(k->have_nic ? &k->nic : NULL, k->have_nic ? &nic :
	    NULL, k->have_stat ? &k->stat : NULL, k->have_stat ? &stat : NULL,
	    buf, sizeof(buf));
	printf("Counter changes over the connection:%s\n", n == 0 ? " none" : "");
	if (n > 0)
		fputs(buf, stdout);
}

void
hk_print_key_updates(const struct conn *c)
{
	unsigned long long sent, received;

	conn_key_updates(c, &sent, &received);
	if (sent > 0 || received > 0)
		printf("TLS 1.3 key updates: sent %llu, received %llu\n", sent,
		    received);
}

void
hk_print_text(const char *prefix, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	size_t i;

	/* A line the peer typed (s_client) ends in a newline: not shown. */
	while (len > 0 && (p[len - 1] == '\n' || p[len - 1] == '\r'))
		len--;
	fputs(prefix, stdout);
	for (i = 0; i < len; i++)
		putchar(isprint(p[i]) ? p[i] : '.');
	putchar('\n');
}

/* Optional kernel features: a notice where missing, never fatal. */
static void
tune(struct conn *c, const struct hk_config *cfg)
{
	if (cfg->zerocopy && ktls_tx_zerocopy(c->k) < 0)
		printf("notice: --zerocopy-sendfile not used: %s\n",
		    ktls_error(c->k));
	if (cfg->rx_expect_no_pad && ktls_rx_expect_no_pad(c->k) < 0)
		printf("notice: --rx-expect-no-pad not used: %s\n",
		    ktls_error(c->k));
}

int
hk_session_start(struct conn *c, const struct hk_config *cfg,
    const char *peer, struct hk_counters *counters)
{
	printf("Performing TLS handshake...\n");
	if (conn_handshake(c) < 0)
		return -1;
	printf("TLS handshake completed successfully\n");
	hk_print_session(c, peer);
	c->rekey_bytes = cfg->key_update_bytes;
	/* Before the switch, so that the connection's own counts show. */
	if (cfg->stats)
		hk_counters_begin(c, counters);
	if (conn_offload(c, cfg->ktls) < 0)
		return -1;
	hk_print_ktls(c);
	hk_print_offload_note(c);
	tune(c, cfg);
	return 0;
}

void
hk_session_end(struct conn *c, const struct hk_config *cfg,
    struct hk_counters *counters)
{
	if (cfg->stats)
		hk_counters_end(c, counters);
	hk_print_key_updates(c);
}
