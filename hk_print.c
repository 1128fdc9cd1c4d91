/*
 * hk_print.c - the lines both programs print, in the seed's words.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>

#include "hk_print.h"
#include "mtls.h"

static const char *progname = "hello_ktls";

void
hk_print_init(const char *prog)
{
	progname = prog;
	setvbuf(stdout, NULL, _IOLBF, 0);
}

void
hk_warn(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "%s: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
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
