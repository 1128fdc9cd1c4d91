/*
 * hk_proto.c - parsing and formatting the request framing (hk_proto.h).
 * Every line comes from the network: parse strictly, never overflow.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hk_proto.h"

#define MAGIC_LEN (sizeof(HK_PROTO) - 1)

int
hk_proto_is_line(const void *buf, size_t len)
{
	return len >= MAGIC_LEN && memcmp(buf, HK_PROTO, MAGIC_LEN) == 0;
}

static int
parse_u64(const char *s, unsigned long long *out)
{
	char *end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	*out = strtoull(s, &end, 10);
	return errno == 0 && *end == '\0' ? 0 : -1;
}

int
hk_proto_parse_request(const char *line, struct hk_request *r, char *err,
    size_t errlen)
{
	char what[8], size[24], how[16];
	int n;

	memset(r, 0, sizeof(*r));
	if (!hk_proto_is_line(line, strlen(line)))
		goto bad;
	line += MAGIC_LEN;
	if (strncmp(line, "GET ", 4) == 0 && line[4] != '\0') {
		r->type = HK_REQ_GET;
		snprintf(r->path, sizeof(r->path), "%s", line + 4);
		return 0;
	}
	n = sscanf(line, "BENCH %7s %23s %15s", what, size, how);
	if (n < 2 || parse_u64(size, &r->bytes) < 0)
		goto bad;
	if (strcmp(what, "UP") == 0 && n == 2) {
		r->type = HK_REQ_BENCH_UP;
		return 0;
	}
	if (strcmp(what, "DOWN") == 0 && n == 3 &&
	    (strcmp(how, "sendfile") == 0 || strcmp(how, "readwrite") == 0)) {
		r->type = HK_REQ_BENCH_DOWN;
		r->use_sendfile = how[0] == 's';
		return 0;
	}
bad:
	snprintf(err, errlen, "malformed request");
	return -1;
}

int
hk_proto_parse_reply(const char *line, unsigned long long *bytes, char *err,
    size_t errlen)
{
	if (hk_proto_is_line(line, strlen(line))) {
		line += MAGIC_LEN;
		if (strncmp(line, "OK ", 3) == 0 && parse_u64(line + 3, bytes) == 0)
			return 0;
		if (strncmp(line, "ERR ", 4) == 0) {
			snprintf(err, errlen, "%s", line + 4);
			return -1;
		}
	}
	snprintf(err, errlen, "malformed reply from the server");
	return -1;
}

void
hk_proto_format_stats(char *buf, size_t len, const struct hk_stats *s)
{
	snprintf(buf, len, HK_PROTO "STATS %llu %.6f %.6f %.6f %s\n", s->bytes,
	    s->seconds, s->user, s->sys, s->path);
}

/* strtoull/strtod report overflow; sscanf's %llu would be undefined. */
static int
parse_double(const char *s, double *out)
{
	char *end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	*out = strtod(s, &end);
	return errno == 0 && *end == '\0' ? 0 : -1;
}

int
hk_proto_parse_stats(const char *line, struct hk_stats *s)
{
	char copy[256], *f[6], *save = NULL;
	int n = 0;

	memset(s, 0, sizeof(*s));
	if (!hk_proto_is_line(line, strlen(line)) ||
	    strlen(line) >= sizeof(copy))
		return -1;
	memcpy(copy, line + MAGIC_LEN, strlen(line + MAGIC_LEN) + 1);
	for (char *t = strtok_r(copy, " ", &save); t != NULL && n < 6;
	    t = strtok_r(NULL, " ", &save))
		f[n++] = t;
	if (n != 6 || strtok_r(NULL, " ", &save) != NULL ||
	    strcmp(f[0], "STATS") != 0 || parse_u64(f[1], &s->bytes) < 0 ||
	    parse_double(f[2], &s->seconds) < 0 ||
	    parse_double(f[3], &s->user) < 0 || parse_double(f[4], &s->sys) < 0 ||
	    strlen(f[5]) >= sizeof(s->path))
		return -1;
	memcpy(s->path, f[5], strlen(f[5]) + 1);
	return 0;
}
