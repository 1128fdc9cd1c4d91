/*
 * hk_print.c - the lines both programs print, in the seed's words.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>

#include "hk_print.h"
#include "mtls.h"

static const char *progname = "hello_ktls";

void
hk_print_init(const char *prog)
{
	progname = prog;
	setvbuf(stdout, NULL, _IOLBF, 0);
}

int
hk_start(struct hk_config *cfg, enum hk_role role, int argc, char **argv)
{
	const char *prog = role == HK_SERVER ? "hello_ktls_server" :
	    "hello_ktls_client";
	char err[512];

	hk_print_init(prog);
	switch (hk_config_parse(cfg, role, argc, argv, err, sizeof(err))) {
	case HK_PARSE_HELP:
		fputs(hk_config_usage(role), stdout);
		return 0;
	case HK_PARSE_VERSION:
		printf("%s %s (%s)\n", prog, HK_VERSION,
		    OpenSSL_version(OPENSSL_VERSION));
		return 0;
	case HK_PARSE_ERROR:
		hk_warn("%s", err);
		fputs(hk_config_usage(role), stderr);
		return 2;
	case HK_PARSE_OK:
		break;
	}
	/* A peer that goes away is an error return, not a signal. */
	signal(SIGPIPE, SIG_IGN);
	return -1;
}

/*
 * SSLKEYLOGFILE (NSS key log format, for Wireshark): the secrets of every
 * connection appended to that file. For debugging only; said at start.
 */
static FILE *keylog;

static void
keylog_line(const SSL *ssl, const char *line)
{
	(void)ssl;
	/* One locked stdio call a line: client threads log at once. */
	fprintf(keylog, "%s\n", line);
	fflush(keylog);
}

static SSL_CTX_keylog_cb_func
keylog_open(void)
{
	const char *path = getenv("SSLKEYLOGFILE");
	int fd;

	if (path == NULL || *path == '\0')
		return NULL;
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || (keylog = fdopen(fd, "a")) == NULL) {
		hk_warn("warning: SSLKEYLOGFILE %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	hk_warn("warning: SSLKEYLOGFILE is set: TLS secrets are being "
	    "written to %s", path);
	return keylog_line;
}

SSL_CTX *
hk_context(const struct hk_config *cfg)
{
	const char *who = cfg->role == HK_SERVER ? "server" : "client";
	struct mtls_options o = {
		.server = cfg->role == HK_SERVER,
		.cert = cfg->cert, .key = cfg->key, .ca = cfg->ca,
		.tls_version = cfg->tls_version,
		.ciphers = cfg->ciphers, .ciphersuites = cfg->ciphersuites,
	};
	SSL_CTX *ctx;
	char err[512];

	printf("=== kTLS mTLS %s ===\n", cfg->role == HK_SERVER ? "Server" :
	    "Client");
	printf("Loading %s certificate: %s\n", who, cfg->cert);
	printf("Loading %s private key: %s\n", who, cfg->key);
	printf("Loading CA certificate: %s\n", cfg->ca);
	o.keylog = keylog_open();
	if ((ctx = mtls_ctx_new(&o, err, sizeof(err))) == NULL) {
		hk_warn("%s", err);
		return NULL;
	}
	return ctx;
}

/*
 * One write() per line: the server's client threads share stderr, and a
 * line written in pieces can be cut into by another thread.
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
	if (ktls_nic_query(c->fd, &n, err, sizeof(err)) < 0)
		return;
	offload_note(c, &n, KTLS_TX);
	offload_note(c, &n, KTLS_RX);
}

void
hk_counters_begin(const struct conn *c, struct hk_counters *k)
{
	char err[256], line[512];

	memset(k, 0, sizeof(*k));
	k->have_nic = ktls_nic_query(c->fd, &k->nic, err, sizeof(err)) == 0;
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
