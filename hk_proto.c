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

/*
 * Split s in place at single spaces into at most max fields; returns the
 * count, or -1 if there are more fields or an empty one (two spaces, a
 * leading or trailing space, a tab counts as part of a field).
 */
static int
fields(char *s, char **f, int max)
{
	int n = 0;
	char *t;

	while ((t = strsep(&s, " ")) != NULL) {
		if (*t == '\0' || n == max)
			return -1;
		f[n++] = t;
	}
	return n;
}

int
hk_proto_parse_request(const char *line, struct hk_request *r, char *err,
    size_t errlen)
{
	char copy[64], *f[4];
	size_t len = strlen(line);
	int n;

	memset(r, 0, sizeof(*r));
	if (!hk_proto_is_line(line, len))
		goto bad;
	line += MAGIC_LEN;
	len -= MAGIC_LEN;
	/* The path is the rest of the line, spaces and all. */
	if (strncmp(line, "GET ", 4) == 0 && line[4] != '\0' &&
	    len - 4 < sizeof(r->path)) {
		r->type = HK_REQ_GET;
		memcpy(r->path, line + 4, len - 4 + 1);
		return 0;
	}
	if (len >= sizeof(copy))
		goto bad;
	memcpy(copy, line, len + 1);
	n = fields(copy, f, 4);
	if (n < 3 || strcmp(f[0], "BENCH") != 0 ||
	    parse_u64(f[2], &r->bytes) < 0)
		goto bad;
	if (n == 3 && strcmp(f[1], "UP") == 0) {
		r->type = HK_REQ_BENCH_UP;
		return 0;
	}
	if (n == 4 && strcmp(f[1], "DOWN") == 0 &&
	    (strcmp(f[3], "sendfile") == 0 || strcmp(f[3], "readwrite") == 0)) {
		r->type = HK_REQ_BENCH_DOWN;
		r->use_sendfile = f[3][0] == 's';
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
		if (strncmp(line, "OK ", 3) == 0 &&
		    parse_u64(line + 3, bytes) == 0)
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
	    parse_double(f[3], &s->user) < 0 ||
	    parse_double(f[4], &s->sys) < 0 || strlen(f[5]) >= sizeof(s->path))
		return -1;
	memcpy(s->path, f[5], strlen(f[5]) + 1);
	return 0;
}
