/*
 * fuzz_proto.c - libFuzzer harness for the request framing parsers
 * (hk_proto.c): the server parses the client's request line, the client
 * the server's reply and measurements. conn_read_line() hands them a
 * NUL-terminated line, so the input is copied into one, exactly sized so
 * that AddressSanitizer sees any read past its end.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hk_proto.h"
#include "fuzz.h"

#define MAGIC_LEN (sizeof(HK_PROTO) - 1)

/* An accepted BENCH line: `fields` fields, one space apart, all printable. */
static void
bench_shape(const char *line, int fields)
{
	const char *p = line + MAGIC_LEN;
	int spaces = 0;

	require(
	    *p != ' ' && p[strlen(p) - 1] != ' ' && strstr(p, "  ") == NULL);
	for (; *p != '\0'; p++) {
		require((*p >= 0x21 && *p <= 0x7e) || *p == ' ');
		spaces += *p == ' ';
	}
	require(spaces == fields - 1);
}

static void
request(const char *line)
{
	struct hk_request r;
	char err[128], tiny[4];
	size_t len;

	if (hk_proto_parse_request(line, &r, err, sizeof(err)) < 0) {
		require(strcmp(err, "malformed request") == 0);
		return;
	}
	require(strncmp(line, HK_PROTO, MAGIC_LEN) == 0);
	switch (r.type) {
	case HK_REQ_GET:
		/* The path is the rest of the line, whole (or refused). */
		len = strnlen(r.path, sizeof(r.path));
		require(len > 0 && len < sizeof(r.path));
		require(strcmp(r.path, line + MAGIC_LEN + 4) == 0);
		break;
	case HK_REQ_BENCH_DOWN:
		require(r.use_sendfile == 0 || r.use_sendfile == 1);
		bench_shape(line, 4);
		break;
	case HK_REQ_BENCH_UP:
		require(r.use_sendfile == 0);
		bench_shape(line, 3);
		break;
	default:
		require(!"unknown request type");
	}
	/* The same line again with an error buffer too small for any reason. */
	require(hk_proto_parse_request(line, &r, tiny, sizeof(tiny)) == 0);
}

static void
reply(const char *line)
{
	unsigned long long bytes = 0;
	char err[HK_PROTO_LINE_MAX], tiny[4] = "";

	if (hk_proto_parse_reply(line, &bytes, err, sizeof(err)) == 0)
		require(strncmp(line, HK_PROTO "OK ", MAGIC_LEN + 3) == 0);
	else
		require(strnlen(err, sizeof(err)) < sizeof(err));
	(void)hk_proto_parse_reply(line, &bytes, tiny, sizeof(tiny));
	require(strnlen(tiny, sizeof(tiny)) < sizeof(tiny));
}

/*
 * Measurements that parse must survive formatting and parsing again, as
 * long as the line fits the 256 bytes the server sends them in.
 * conn_read_line() hands lines over without their '\n'.
 */
static void
stats(const char *line)
{
	struct hk_stats s, again;
	char buf[1200]; /* three doubles up to DBL_MAX with %.6f */
	size_t len;

	if (hk_proto_parse_stats(line, &s) < 0)
		return;
	len = strnlen(s.path, sizeof(s.path));
	require(len > 0 && len < sizeof(s.path));
	hk_proto_format_stats(buf, sizeof(buf), &s);
	buf[strcspn(buf, "\n")] = '\0';
	if (strchr(line, '\n') != NULL || strlen(buf) >= 256)
		return;
	require(hk_proto_parse_stats(buf, &again) == 0);
	require(again.bytes == s.bytes && strcmp(again.path, s.path) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line;

	if ((line = malloc(size + 1)) == NULL)
		return 0;
	memcpy(line, data, size);
	line[size] = '\0';
	(void)hk_proto_is_line(data, size);
	request(line);
	reply(line);
	stats(line);
	free(line);
	return 0;
}
