/*
 * ktls_stat: the kernel's /proc/net/tls_stat counters.
 *
 * Kernel side: net/tls/tls_proc.c writes /proc/net/tls_stat.
 */
#include "ktls_stat.h"
#include "ktls_query.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One /proc/net/tls_stat line, "Name<spaces>value"; 0, or -1 if not one. */
static int
tls_stat_line(const char *line, struct ktls_tls_stat *s)
{
	char name[32];
	const char *p;
	char *end;
	unsigned long long v;
	int used = 0;

	_Static_assert(sizeof(s->v[0].name) == 32, "%31s below");
	if (sscanf(line, "%31s%n", name, &used) != 1)
		return -1;
	p = line + used;
	/* A name that did not fit leaves no blank here. */
	if (*p != ' ' && *p != '\t')
		return -1;
	p += strspn(p, " \t");
	if (*p < '0' || *p > '9')
		return -1;
	errno = 0;
	v = strtoull(p, &end, 10);
	if (errno == ERANGE || end[strspn(end, " \t\n")] != '\0')
		return -1;
	if (s->n < KTLS_STAT_MAX) {
		memcpy(s->v[s->n].name, name, sizeof(name));
		s->v[s->n].value = v;
		s->n++;
	}
	return 0;
}

int
ktls_tls_stat_read(struct ktls_tls_stat *s, char *err, size_t errlen)
{
	char line[256];
	FILE *f;

	memset(s, 0, sizeof(*s));
	if ((f = fopen("/proc/net/tls_stat", "re")) == NULL) {
		if (errno != ENOENT)
			return query_fail_errno(err, errlen,
			    "/proc/net/tls_stat");
		if (access("/proc/self", F_OK) == -1)
			return query_fail(err, errlen, ENOENT,
			    "/proc is not mounted");
		return query_fail(err, errlen, ENOENT,
		    "no /proc/net/tls_stat: the kernel's tls "
		    "module is not loaded (CONFIG_TLS off, or no "
		    "socket has asked for kTLS yet)");
	}
	/* Lines this parser does not understand are a newer kernel's. */
	while (fgets(line, sizeof(line), f) != NULL)
		(void)tls_stat_line(line, s);
	fclose(f);
	if (s->n == 0)
		return query_fail(err, errlen, EPROTO,
		    "/proc/net/tls_stat holds no counters");
	return 0;
}

uint64_t
ktls_tls_stat_get(const struct ktls_tls_stat *s, const char *name)
{
	size_t i;

	for (i = 0; i < s->n && i < KTLS_STAT_MAX; i++)
		if (strcmp(s->v[i].name, name) == 0)
			return s->v[i].value;
	return 0;
}
