/*
 * fuzz_keylog.c - libFuzzer harness for the keylog line capture
 * (ktls_keylog_capture_line() in ktls_keys.c), against a plain
 * reimplementation of what it must keep.
 *
 * Input: one flags byte (bit 0: we are the server), then lines separated
 * by '\n', each handed over as its own exactly sized NUL-terminated
 * string, as OpenSSL's keylog callback gives them, one connection for
 * all of them.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "ktls_internal.h"
#include "fuzz.h"

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * The reference: "CLIENT_TRAFFIC_SECRET_0 " or "SERVER_TRAFFIC_SECRET_0 ",
 * a field, one space, then the secret: an even number of hex digits, at
 * most EVP_MAX_MD_SIZE bytes, up to the end of the line. Returns the slot
 * the line sets (-1: none) and the secret it must hold.
 */
static int
expect(const char *line, int is_server, struct ktls_secret *want)
{
	int client = strncmp(line, "CLIENT_TRAFFIC_SECRET_0 ", 24) == 0;
	int ours = client != is_server;
	const char *hex;
	size_t i, n;

	if (!client && strncmp(line, "SERVER_TRAFFIC_SECRET_0 ", 24) != 0)
		return -1;
	if ((hex = strchr(line + 24, ' ')) == NULL)
		return -1;
	hex++;
	n = strlen(hex);
	memset(want, 0, sizeof(*want));
	if (n % 2 != 0 || n / 2 > sizeof(want->b))
		return ours ? KTLS_TX : KTLS_RX;
	for (i = 0; i < n / 2; i++) {
		if (hexval(hex[2 * i]) < 0 || hexval(hex[2 * i + 1]) < 0) {
			want->len = 0;
			return ours ? KTLS_TX : KTLS_RX;
		}
		want->b[i] = (unsigned char)(hexval(hex[2 * i]) << 4 |
		    hexval(hex[2 * i + 1]));
	}
	want->len = n / 2;
	return ours ? KTLS_TX : KTLS_RX;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ktls *k;
	struct ktls_secret before[2], want;
	const uint8_t *nl;
	size_t len;
	char *line;
	int is_server, slot, d;

	if (size == 0)
		return 0;
	is_server = data[0] & 1;
	data++, size--;
	require((k = OPENSSL_zalloc(sizeof(*k))) != NULL);
	k->fd = -1;
	for (;;) {
		nl = memchr(data, '\n', size);
		len = nl != NULL ? (size_t)(nl - data) : size;
		require((line = malloc(len + 1)) != NULL);
		memcpy(line, data, len);
		line[len] = '\0';
		memcpy(before, k->secret, sizeof(before));
		ktls_keylog_capture_line(k, is_server, line);
		slot = expect(line, is_server, &want);
		for (d = 0; d < 2; d++) {
			require(k->secret[d].len <= sizeof(k->secret[d].b));
			if (d != slot) {
				require(memcmp(&k->secret[d], &before[d],
					    sizeof(before[d])) == 0);
				continue;
			}
			require(k->secret[d].len == want.len);
			require(memcmp(k->secret[d].b, want.b, want.len) == 0);
		}
		free(line);
		if (nl == NULL)
			break;
		data += len + 1, size -= len + 1;
	}
	ktls_free(k);
	return 0;
}
