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

/*
 * The peer a server's client thread serves: put in front of each line it
 * prints so that concurrent clients can be told apart. Empty in the
 * client, whose output is about one connection.
 */
static _Thread_local char line_peer[96];

/* --quiet: a client's progress lines are not printed (hk_print_summary). */
static int quiet;

void
hk_print_quiet(int on)
{
	quiet = on;
}

/* A line about a server's client that --quiet leaves out. */
static int
muted(void)
{
	return quiet && line_peer[0] != '\0';
}

void
hk_print_peer(const char *peer)
{
	snprintf(line_peer, sizeof(line_peer), "%s", peer != NULL ? peer : "");
}

/* Under stdout's lock, so that threads' lines never mix. */
static void
line_start(void)
{
	flockfile(stdout);
	if (line_peer[0] != '\0')
		printf("[%s] ", line_peer);
}

static void
line_end(void)
{
	putchar('\n');
	funlockfile(stdout);
}

void
hk_say(const char *fmt, ...)
{
	va_list ap;

	if (muted())
		return;
	line_start();
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	line_end();
}

void
hk_print_init(const char *prog)
{
	progname = prog;
	setvbuf(stdout, NULL, _IOLBF, 0);
}

int
hk_start(struct hk_config *cfg, enum hk_role role, int argc, char **argv)
{
	const char *prog =
	    role == HK_SERVER ? "hello_ktls_server" : "hello_ktls_client";
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

	/* Once: a reload's context writes to the same file. */
	if (keylog != NULL)
		return keylog_line;
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
		"written to %s",
	    path);
	return keylog_line;
}

/* "Providers: default, tpm2 (property query ...)", with --provider. */
static void
hk_print_providers(const struct hk_config *cfg)
{
	const struct mtls_options o = { .providers = cfg->providers,
		.propq = cfg->propq };
	const char *propq = mtls_store_propq(&o);
	const char *const *p;

	if (cfg->providers[0] == NULL && propq == NULL)
		return;
	printf("Providers: default");
	for (p = cfg->providers; *p != NULL; p++)
		printf(", %s", *p);
	printf(" (property query: %s)\n", propq != NULL ? propq : "none");
}

SSL_CTX *
hk_context_build(const struct hk_config *cfg, char *err, size_t errlen)
{
	struct mtls_options o = {
		.server = cfg->role == HK_SERVER,
		.cert = cfg->cert,
		.key = cfg->key,
		.ca = cfg->ca,
		.providers = cfg->providers,
		.propq = cfg->propq,
		.key_pass = cfg->key_pass,
		.tls_version = cfg->tls_version,
		.ciphers = cfg->ciphers,
		.ciphersuites = cfg->ciphersuites,
		.crl = cfg->crl,
		.crl_check_chain = cfg->crl_check_chain,
		.crl_grace = cfg->crl_grace,
		.revocation_soft = cfg->revocation_soft,
		.ocsp = cfg->ocsp,
		.ocsp_url = cfg->ocsp_url,
		.ocsp_timeout = cfg->ocsp_timeout > 0 ? cfg->ocsp_timeout : 5,
		.ocsp_nonce = cfg->ocsp_nonce,
		.ocsp_staple = cfg->ocsp_staple,
		.require_staple = cfg->require_staple,
		.no_tickets = cfg->no_tickets,
	};
	/* A ticket issued under another policy file is not resumed. */
	const char *auth_files[] = { cfg->policy, NULL };

	o.keylog = keylog_open();
	if (cfg->policy != NULL)
		o.auth_files = auth_files;
	return mtls_ctx_new(&o, err, errlen);
}

void
hk_context_notes(SSL_CTX *ctx)
{
	const char *notes, *nl;

	for (notes = mtls_crl_notes(ctx); (nl = strchr(notes, '\n')) != NULL;
	     notes = nl + 1)
		hk_warn("warning: %.*s", (int)(nl - notes), notes);
	for (notes = mtls_staple_notes(ctx); (nl = strchr(notes, '\n')) != NULL;
	     notes = nl + 1)
		hk_warn("warning: %.*s", (int)(nl - notes), notes);
}

SSL_CTX *
hk_context(const struct hk_config *cfg)
{
	const char *who = cfg->role == HK_SERVER ? "server" : "client";
	SSL_CTX *ctx;
	char err[512];

	printf("=== kTLS mTLS %s ===\n",
	    cfg->role == HK_SERVER ? "Server" : "Client");
	printf("Loading %s certificate: %s\n", who, cfg->cert);
	printf("Loading %s private key: %s\n", who, cfg->key);
	printf("Loading CA certificate: %s\n", cfg->ca);
	hk_print_providers(cfg);
	if (cfg->crl != NULL)
		printf("Loading CRLs: %s (check: %s, revocation: %s)\n",
		    cfg->crl, cfg->crl_check_chain ? "chain" : "leaf",
		    cfg->revocation_soft ? "soft" : "hard");
	if (cfg->ocsp)
		printf("OCSP: checking client certificates (responder: %s; "
		       "timeout %ds; nonce %s; %s)\n",
		    cfg->ocsp_url != NULL ? cfg->ocsp_url : "from AIA",
		    cfg->ocsp_timeout > 0 ? cfg->ocsp_timeout : 5,
		    cfg->ocsp_nonce ? "on" : "off",
		    cfg->revocation_soft ? "soft" : "hard");
	if (cfg->ocsp_staple != NULL)
		printf("Loading OCSP staple: %s\n", cfg->ocsp_staple);
	if ((ctx = hk_context_build(cfg, err, sizeof(err))) == NULL) {
		hk_warn("%s", err);
		return NULL;
	}
	if (ktls_ctx_took_openssl_ktls(ctx))
		printf(
		    "kTLS: OpenSSL's own kTLS (Options = KTLS in openssl.cnf) "
		    "is turned off: this program installs the keys itself\n");
	hk_context_notes(ctx);
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
	n += (size_t)m < sizeof(line) - (size_t)n - 1 ?
	    m :
	    (int)(sizeof(line) - (size_t)n - 2);
	line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, (size_t)n);
}

void
hk_print_session(struct conn *c, const char *peer_title)
{
	char subject[256], issuer[256];

	if (muted())
		return;
	hk_say("Protocol: %s", SSL_get_version(c->ssl));
	hk_say("Cipher: %s",
	    SSL_CIPHER_get_name(SSL_get_current_cipher(c->ssl)));
	if (SSL_session_reused(c->ssl))
		hk_say("Session: resumed (the certificate below is the one the "
		       "session was made with)");
	hk_say("=== %s Certificate ===", peer_title);
	if (mtls_peer_names(c->ssl, subject, issuer, sizeof(subject)) == 0) {
		hk_say("Subject: %s", subject);
		hk_say("Issuer: %s", issuer);
	}
	hk_say("Certificate verified: %s",
	    SSL_get_verify_result(c->ssl) == X509_V_OK ? "YES" : "NO");
}

void
hk_print_ktls(const struct conn *c)
{
	char line[256];

	if (muted())
		return;
	ktls_status_line(c->k, KTLS_TX, line, sizeof(line));
	hk_say("%s", line);
	ktls_status_line(c->k, KTLS_RX, line, sizeof(line));
	hk_say("%s", line);
	if (c->unconfirmed[0] != '\0')
		hk_say("note: %s", c->unconfirmed);
}

/* "on" or "off": where a direction's records are sealed now. */
static const char *
ktls_word(const struct conn *c, enum ktls_dir dir)
{
	return c->k != NULL && ktls_active(c->k, dir) ? "on" : "off";
}

void
hk_print_summary_head(struct conn *c, char *head, size_t len)
{
	char subject[256], issuer[256];
	SSL *s = c->ssl;

	head[0] = '\0';
	if (s == NULL || !SSL_is_init_finished(s))
		return;
	if (mtls_peer_names(s, subject, issuer, sizeof(subject)) < 0)
		snprintf(subject, sizeof(subject), "-");
	snprintf(head, len, "%s; %s %s %s", subject, SSL_get_version(s),
	    SSL_CIPHER_get_name(SSL_get_current_cipher(s)),
	    SSL_session_reused(s) ? "resumed" : "full");
}

void
hk_print_summary(const struct conn *c, const char *head, const char *why)
{
	line_start();
	if (head[0] == '\0')
		printf("Client done: no TLS session; %s", why);
	else
		printf("Client done: %s; kTLS TX %s RX %s; in %llu B, out %llu "
		       "B; %s",
		    head, ktls_word(c, KTLS_TX), ktls_word(c, KTLS_RX),
		    c->bytes_in, c->bytes_out, why);
	line_end();
}

void
hk_print_text(const char *prefix, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	size_t i;

	if (muted())
		return;
	/* A line the peer typed (s_client) ends in a newline: not shown. */
	while (len > 0 && (p[len - 1] == '\n' || p[len - 1] == '\r'))
		len--;
	line_start();
	fputs(prefix, stdout);
	for (i = 0; i < len; i++)
		putchar(isprint(p[i]) ? p[i] : '.');
	line_end();
}
