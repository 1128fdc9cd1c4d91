/*
 * ktls_stat: /proc/net/tls_stat and before/after deltas.
 *
 * Kernel side: net/tls/tls_proc.c writes /proc/net/tls_stat.
 */
#include "ktls_stat.h"
#include "ktls_nic.h"
#include "ktls_nic_internal.h"

#include <errno.h>
#include <inttypes.h>
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
			return nic_fail_errno(err, errlen, "/proc/net/tls_stat");
		if (access("/proc/self", F_OK) == -1)
			return nic_fail(err, errlen, ENOENT,
					"/proc is not mounted");
		return nic_fail(err, errlen, ENOENT,
				"no /proc/net/tls_stat: the kernel's tls module "
				"is not loaded (CONFIG_TLS off, or no socket "
				"has asked for kTLS yet)");
	}
	/* Lines this parser does not understand are a newer kernel's. */
	while (fgets(line, sizeof(line), f) != NULL)
		(void)tls_stat_line(line, s);
	fclose(f);
	if (s->n == 0)
		return nic_fail(err, errlen, EPROTO,
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

/* Where ktls_nic_deltas() writes; full once a line did not fit. */
struct delta_out {
	char *buf;
	size_t len, pos;
	int lines, full;
};

static void
delta_line(struct delta_out *o, const char *prefix, const char *name,
	   uint64_t before, uint64_t after)
{
	size_t room = o->len - o->pos;
	int up = after > before, w;

	if (before == after || o->full)
		return;
	o->full = 1;
	if (room == 0)
		return;
	w = snprintf(o->buf + o->pos, room,
		     "%s%s: %" PRIu64 " -> %" PRIu64 " (%c%" PRIu64 ")\n", prefix,
		     name, before, after, up ? '+' : '-',
		     up ? after - before : before - after);
	if (w < 0 || (size_t)w >= room) {
		o->buf[o->pos] = '\0'; /* whole lines only */
		return;
	}
	o->full = 0;
	o->pos += (size_t)w;
	o->lines++;
}

static uint64_t
nic_stat_get(const struct ktls_nic *n, const char *name)
{
	size_t i;

	for (i = 0; i < n->nstats && i < KTLS_NIC_MAX_STATS; i++)
		if (strcmp(n->stats[i].name, name) == 0)
			return n->stats[i].value;
	return 0;
}

int
ktls_nic_deltas(const struct ktls_nic *nic_before,
		const struct ktls_nic *nic_after,
		const struct ktls_tls_stat *tls_before,
		const struct ktls_tls_stat *tls_after, char *buf, size_t len)
{
	struct delta_out o = {.buf = buf, .len = buf != NULL ? len : 0};
	char prefix[IF_NAMESIZE + 1];
	size_t i;

	if (o.len > 0)
		buf[0] = '\0';
	if (nic_before != NULL && nic_after != NULL) {
		if (strcmp(nic_before->ifname, nic_after->ifname) != 0) {
			errno = EINVAL;
			return -1;
		}
		snprintf(prefix, sizeof(prefix), "%s ", nic_after->ifname);
		for (i = 0; i < nic_after->nstats && i < KTLS_NIC_MAX_STATS; i++)
			delta_line(&o, prefix, nic_after->stats[i].name,
				   nic_stat_get(nic_before,
						nic_after->stats[i].name),
				   nic_after->stats[i].value);
	}
	if (tls_before != NULL && tls_after != NULL)
		for (i = 0; i < tls_after->n && i < KTLS_STAT_MAX; i++)
			delta_line(&o, "", tls_after->v[i].name,
				   ktls_tls_stat_get(tls_before,
						     tls_after->v[i].name),
				   tls_after->v[i].value);
	if (o.full) {
		errno = ENOBUFS;
		return -1;
	}
	return o.lines;
}
