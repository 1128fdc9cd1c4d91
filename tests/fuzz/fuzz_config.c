/*
 * fuzz_config.c - libFuzzer harness for the command line (hk_config.c):
 * hk_config_parse() for both programs on an argv made of the input split
 * at NUL bytes, and hk_parse_size() on every piece against a plain
 * reimplementation of "digits, then at most one of K, M, G". Each
 * argument is its own exactly sized string, so AddressSanitizer sees any
 * read past one.
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ssl.h>

#include "hk_config.h"
#include "fuzz.h"

#define MAX_ARGS 64

static int
size_reference(const char *s, unsigned long long *out)
{
	unsigned long long v = 0, d;
	int shift = 0;

	if (*s < '0' || *s > '9')
		return -1;
	for (; *s >= '0' && *s <= '9'; s++) {
		d = (unsigned long long)(*s - '0');
		if (v > (ULLONG_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	if (*s != '\0') {
		if (s[1] != '\0')
			return -1;
		if (*s == 'K' || *s == 'k')
			shift = 10;
		else if (*s == 'M' || *s == 'm')
			shift = 20;
		else if (*s == 'G' || *s == 'g')
			shift = 30;
		else
			return -1;
		if (v > ULLONG_MAX >> shift)
			return -1;
		v <<= shift;
	}
	*out = v;
	return 0;
}

static void
check_size(const char *s)
{
	unsigned long long got = 0, want = 0;
	int r = hk_parse_size(s, &got);

	require(r == size_reference(s, &want));
	require(r < 0 || got == want);
}

/* What a successful parse promises, whatever the arguments were. */
static void
settled(const struct hk_config *c, enum hk_role role)
{
	require(c->role == role);
	require(c->timeout >= 1 && c->timeout <= 86400);
	require(c->tls_version == 0 || c->tls_version == TLS1_2_VERSION ||
	    c->tls_version == TLS1_3_VERSION);
	require(c->ktls == CONN_KTLS_AUTO || c->ktls == CONN_KTLS_REQUIRE ||
	    c->ktls == CONN_KTLS_OFF);
	require(c->port != NULL && c->cert != NULL && c->key != NULL &&
	    c->ca != NULL && c->message != NULL && c->host != NULL);
	require(
	    (c->send_file != NULL) + (c->get != NULL) + (c->bench > 0) <= 1);
	require(c->output == NULL || c->send_file != NULL || c->get != NULL);
	if (role == HK_CLIENT)
		require(c->bind == NULL && c->root == NULL && !c->once &&
		    !c->echo && !c->zerocopy);
	else
		require(c->get == NULL && c->bench == 0 &&
		    c->send_file == NULL && c->output == NULL);
}

/* The input split at NUL bytes, after argv[0]; each piece its own copy. */
static int
split(enum hk_role role, const uint8_t *data, size_t size, char **args)
{
	const uint8_t *end;
	size_t len;
	int n = 1;

	args[0] = strdup(
	    role == HK_SERVER ? "hello_ktls_server" : "hello_ktls_client");
	require(args[0] != NULL);
	while (size > 0 && n <= MAX_ARGS) {
		end = memchr(data, '\0', size);
		len = end != NULL ? (size_t)(end - data) : size;
		require((args[n] = malloc(len + 1)) != NULL);
		memcpy(args[n], data, len);
		args[n++][len] = '\0';
		if (end == NULL)
			break;
		data += len + 1, size -= len + 1;
	}
	args[n] = NULL;
	return n;
}

/* One parse; argv is a fresh array because getopt_long permutes it. */
static enum hk_parse
parse(enum hk_role role, int argc, char **args, char *err, size_t errlen)
{
	char *argv[MAX_ARGS + 2];
	struct hk_config c;
	enum hk_parse r;

	memcpy(argv, args, sizeof(argv[0]) * ((size_t)argc + 1));
	err[0] = '\0';
	r = hk_config_parse(&c, role, argc, argv, err, errlen);
	require(r == HK_PARSE_OK || r == HK_PARSE_HELP ||
	    r == HK_PARSE_VERSION || r == HK_PARSE_ERROR);
	if (r == HK_PARSE_ERROR)
		require(err[0] != '\0');
	if (r == HK_PARSE_OK)
		settled(&c, role);
	return r;
}

/*
 * Each role parses the same arguments twice and must agree with itself:
 * otherwise getopt kept state from one parse to the next. The programs
 * parse once, but here that state would leak from one input to the next.
 */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *args[MAX_ARGS + 2], err[2][256];
	enum hk_role role;
	int argc, i;

	for (role = HK_CLIENT; role <= HK_SERVER; role++) {
		argc = split(role, data, size, args);
		require(parse(role, argc, args, err[0], sizeof(err[0])) ==
		    parse(role, argc, args, err[1], sizeof(err[1])));
		require(strcmp(err[0], err[1]) == 0);
		for (i = 0; i < argc; i++) {
			check_size(args[i]);
			free(args[i]);
		}
	}
	return 0;
}
