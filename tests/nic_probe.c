/*
 * nic_probe: check ktls_nic against the loopback interface.
 *
 * For IPv4, IPv6 and a v4-mapped IPv6 socket, a loopback TCP connection
 * must be routed out of "lo", which is a loopback, virtual device that
 * reports tls-hw-tx/rx-offload as known and off, cannot do TLS offload,
 * has no ethtool counters, and is described as "no TLS offload". The
 * kernel's /proc/net/tls_stat must be read where it exists and refused
 * with a clear message where it does not; where kTLS works, one kTLS pair
 * must show up as exactly four tls_stat deltas of +1. A connected UDP
 * socket to a documentation address, where some route takes it, must
 * leave through a device that is not lo. The delta formatter is checked
 * on made-up snapshots. The per-interface cache must answer as
 * ktls_nic_query() does, from the kernel once per interface and fresh
 * period, also when threads share it (run under TSan by sanitize.sh).
 *
 * Runs on any kernel (the host, or the guest: bash tests/uml.sh -- ...).
 * Exit status: 0 all passed, 1 a check failed.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <linux/tls.h>

#include "../ktls_nic.h"
#include "../ktls_nic_cache.h"
#include "tcp_pair.h"
#include "unit.h"

#ifndef SOL_TLS
#define SOL_TLS 282 /* include/linux/socket.h */
#endif

struct variant {
	const char *name;
	int listen_family;
	const char *listen_addr;
	int client_family;
	const char *connect_addr;
};

static const struct variant variants[] = {
	{ "ipv4", AF_INET, "127.0.0.1", AF_INET, "127.0.0.1" },
	{ "ipv6", AF_INET6, "::1", AF_INET6, "::1" },
	{ "v4-mapped", AF_INET, "127.0.0.1", AF_INET6, "::ffff:127.0.0.1" },
};

/* Documentation addresses (RFC 5737, RFC 3849): routed, never reached. */
static const struct variant remote[] = {
	{ "ipv4 remote", AF_INET, NULL, AF_INET, "198.51.100.1" },
	{ "ipv6 remote", AF_INET6, NULL, AF_INET6, "2001:db8::1" },
};

/* A connected loopback pair on an ephemeral port; fds[0] is the client. */
static int
pair_open(const struct variant *v, int fds[2])
{
	return tcp_pair_open(v->listen_family, v->listen_addr, v->client_family,
	    v->connect_addr, fds);
}

static void
nic_print(const char *label, const struct ktls_nic *n)
{
	char line[160];

	ktls_nic_describe(n, line, sizeof(line));
	printf("%s: ifname=%s ifindex=%u loopback=%d virtual=%d "
	       "tls-hw-tx-offload=%d/%d tls-hw-rx-offload=%d/%d (active/"
	       "available) nstats=%zu\n%s: \"%s\"\n",
	    label, n->ifname, n->ifindex, n->is_loopback, n->is_virtual,
	    n->tls_tx_feature, n->tls_tx_available, n->tls_rx_feature,
	    n->tls_rx_available, n->nstats, label, line);
}

static void
expect_lo(const char *label, const struct ktls_nic *n)
{
	char line[160];

	check(strcmp(n->ifname, "lo") == 0, "%s: routed out of lo", label);
	check(n->is_loopback == 1, "%s: IFF_LOOPBACK", label);
	check(n->is_virtual == 1, "%s: no backing device", label);
	check(n->tls_tx_feature == 0 && n->tls_rx_feature == 0,
	    "%s: tls-hw-tx/rx-offload known and off", label);
	check(n->tls_tx_available == 0 && n->tls_rx_available == 0,
	    "%s: lo cannot do TLS offload", label);
	check(n->nstats == 0, "%s: no ethtool tls counters", label);
	ktls_nic_describe(n, line, sizeof(line));
	check(strncmp(line, "lo: loopback, ", 14) == 0 &&
		strstr(line, "no TLS offload") != NULL,
	    "%s: described as loopback, no TLS offload", label);
}

static void
probe_loopback(const struct variant *v)
{
	struct ktls_nic n;
	char err[256] = "";
	int fds[2];

	if (pair_open(v, fds) == -1) {
		/* The guest's IPv6 is a module that may not be loaded. */
		if (v->client_family == AF_INET6 && errno == EAFNOSUPPORT)
			printf("%s: skipped, no IPv6 here\n", v->name);
		else
			check(0, "%s: loopback pair: %s", v->name,
			    strerror(errno));
		return;
	}
	check(ktls_nic_query(fds[0], &n, err, sizeof(err)) == 0,
	    "%s: ktls_nic_query on the client end%s%s", v->name,
	    err[0] ? ": " : "", err);
	nic_print(v->name, &n);
	expect_lo(v->name, &n);
	check(ktls_nic_stats(&n, err, sizeof(err)) == 0 && n.nstats == 0,
	    "%s: ktls_nic_stats re-reads lo: no counters%s%s", v->name,
	    err[0] ? ": " : "", err);
	tcp_pair_close(fds);
}

/* A UDP socket connected to v's remote address, or -1 if no route. */
static int
remote_open(const struct variant *v)
{
	struct sockaddr_storage ss;
	socklen_t len =
	    tcp_addr(v->client_family, v->connect_addr, htons(9), &ss);
	int fd, e;

	fd = socket(v->client_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd == -1 || connect(fd, (struct sockaddr *)&ss, len) == -1) {
		e = errno;
		if (fd != -1)
			close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* Where a route exists, a connected UDP socket shows the real egress. */
static void
probe_remote(const struct variant *v)
{
	struct ktls_nic n;
	char err[256] = "";
	int fd;

	if ((fd = remote_open(v)) == -1) {
		printf("%s: skipped, no route to %s (%s)\n", v->name,
		    v->connect_addr, strerror(errno));
		return;
	}
	check(ktls_nic_query(fd, &n, err, sizeof(err)) == 0,
	    "%s: ktls_nic_query%s%s", v->name, err[0] ? ": " : "", err);
	nic_print(v->name, &n);
	check(n.ifname[0] != '\0' && strcmp(n.ifname, "lo") != 0 &&
		n.is_loopback == 0,
	    "%s: leaves through a device that is not lo", v->name);
	check(n.tls_tx_feature != -1 && n.tls_rx_feature != -1,
	    "%s: the kernel reports the TLS offload features", v->name);
	close(fd);
}

static void
probe_refusals(void)
{
	struct ktls_nic n;
	char err[256] = "", line[160];
	int fd, sv[2];

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	check(ktls_nic_query(fd, &n, err, sizeof(err)) == -1 &&
		errno == ENOTCONN && err[0] != '\0',
	    "unconnected socket refused (%s)", err);
	close(fd);
	check(ktls_nic_query(-1, &n, err, sizeof(err)) == -1 &&
		errno == EBADF && n.ifname[0] == '\0',
	    "bad fd refused (%s)", err);
	ktls_nic_describe(&n, line, sizeof(line));
	check(strstr(line, "no interface known") != NULL,
	    "a failed query is described as such (\"%s\")", line);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0) {
		check(ktls_nic_query(sv[0], &n, err, sizeof(err)) == -1 &&
			errno == EAFNOSUPPORT,
		    "unix socket refused (%s)", err);
		close(sv[0]);
		close(sv[1]);
	}
}

/* TLS 1.2 AES-GCM-128 with an all-zero key: nothing to wipe. */
static int
ktls_dummy(int fd, int direction)
{
	struct tls12_crypto_info_aes_gcm_128 ci;

	if (setsockopt(fd, SOL_TCP, TCP_ULP, "tls", sizeof("tls") - 1) == -1)
		return -1;
	memset(&ci, 0, sizeof(ci));
	ci.info.version = TLS_1_2_VERSION;
	ci.info.cipher_type = TLS_CIPHER_AES_GCM_128;
	return setsockopt(fd, SOL_TLS, direction, &ci, sizeof(ci));
}

/* One kTLS record on a loopback pair, with snapshots either side. */
static int
tls_pair_snapshots(int fds[2], struct ktls_nic *nb, struct ktls_nic *na,
    struct ktls_tls_stat *before, struct ktls_tls_stat *after, char *err,
    size_t errlen)
{
	char buf[8];

	if (ktls_tls_stat_read(before, err, errlen) == -1 ||
	    ktls_nic_query(fds[0], nb, err, errlen) == -1 ||
	    ktls_nic_stats(nb, err, errlen) == -1)
		return -1;
	if (ktls_dummy(fds[0], TLS_TX) == -1 ||
	    ktls_dummy(fds[1], TLS_RX) == -1 ||
	    write(fds[0], "hello", 5) != 5 || read(fds[1], buf, 5) != 5) {
		snprintf(err, errlen, "kTLS on a loopback pair: %s",
		    strerror(errno));
		return -1;
	}
	*na = *nb;
	if (ktls_tls_stat_read(after, err, errlen) == -1 ||
	    ktls_nic_stats(na, err, errlen) == -1)
		return -1;
	return 0;
}

/* Exactly the four software counters move by one for one kTLS pair. */
static void
probe_tls_deltas(void)
{
	static const char *const moved[] = { "TlsCurrTxSw", "TlsCurrRxSw",
		"TlsTxSw", "TlsRxSw" };
	struct ktls_tls_stat before, after;
	struct ktls_nic nb, na;
	char err[256] = "", out[1024];
	int fds[2], lines, ok = 1;
	size_t i;

	if (pair_open(&variants[0], fds) == -1) {
		check(0, "kTLS pair: %s", strerror(errno));
		return;
	}
	if (tls_pair_snapshots(fds, &nb, &na, &before, &after, err,
		sizeof(err)) == -1) {
		check(0, "%s", err);
		tcp_pair_close(fds);
		return;
	}
	lines = ktls_nic_deltas(&nb, &na, &before, &after, out, sizeof(out));
	printf("deltas for one kTLS pair on lo:\n%s", out);
	for (i = 0; i < sizeof(moved) / sizeof(moved[0]); i++)
		ok &= ktls_tls_stat_get(&after, moved[i]) ==
		    ktls_tls_stat_get(&before, moved[i]) + 1;
	check(ok && lines == 4,
	    "one kTLS pair: TlsCurr{Tx,Rx}Sw and "
	    "Tls{Tx,Rx}Sw +1, nothing else moved");
	tcp_pair_close(fds);
}

static void
probe_tls_stat(void)
{
	struct ktls_tls_stat s;
	char err[256] = "";
	int rc;

	rc = ktls_tls_stat_read(&s, err, sizeof(err));
	if (access("/proc/net/tls_stat", F_OK) == -1) {
		check(rc == -1 && errno == ENOENT &&
			strstr(err, "tls module is not loaded") != NULL,
		    "no /proc/net/tls_stat: refused with \"%s\"", err);
		return;
	}
	check(rc == 0 && s.n >= 12, "/proc/net/tls_stat: %zu counters%s%s", s.n,
	    err[0] ? ": " : "", err);
	printf("tls_stat: TlsTxSw=%llu TlsRxSw=%llu TlsTxDevice=%llu "
	       "TlsDecryptError=%llu\n",
	    (unsigned long long)ktls_tls_stat_get(&s, "TlsTxSw"),
	    (unsigned long long)ktls_tls_stat_get(&s, "TlsRxSw"),
	    (unsigned long long)ktls_tls_stat_get(&s, "TlsTxDevice"),
	    (unsigned long long)ktls_tls_stat_get(&s, "TlsDecryptError"));
	probe_tls_deltas();
}

/* The formatter, on made-up snapshots. */
static void
probe_deltas_format(void)
{
	struct ktls_nic a = { .ifname = "eth9", .nstats = 2 }, b;
	struct ktls_tls_stat sa = { .n = 1 }, sb;
	char out[256];
	int lines;

	strcpy(a.stats[0].name, "tx_tls_encrypted_packets");
	strcpy(a.stats[1].name, "rx_tls_err");
	a.stats[1].value = 7;
	strcpy(sa.v[0].name, "TlsTxDevice");
	b = a;
	sb = sa;
	b.stats[0].value = 12;
	b.stats[1].value = 5; /* a counter that went down: a reset */
	sb.v[0].value = 1;
	lines = ktls_nic_deltas(&a, &b, &sa, &sb, out, sizeof(out));
	check(lines == 3 &&
		strcmp(out,
		    "eth9 tx_tls_encrypted_packets: 0 -> 12 (+12)\n"
		    "eth9 rx_tls_err: 7 -> 5 (-2)\n"
		    "TlsTxDevice: 0 -> 1 (+1)\n") == 0,
	    "deltas formatted, one line per changed counter");
	lines = ktls_nic_deltas(&a, &b, NULL, NULL, out, 50);
	check(lines == -1 && errno == ENOBUFS &&
		strcmp(out, "eth9 tx_tls_encrypted_packets: 0 -> 12 (+12)\n") ==
		    0,
	    "deltas: a short buffer keeps whole lines, ENOBUFS");
	strcpy(b.ifname, "eth8");
	check(ktls_nic_deltas(&a, &b, NULL, NULL, out, sizeof(out)) == -1 &&
		errno == EINVAL,
	    "deltas: snapshots of different interfaces refused");
	check(ktls_nic_deltas(&a, &a, &sa, &sa, out, sizeof(out)) == 0 &&
		out[0] == '\0',
	    "deltas: nothing changed, nothing written");
}

/* Equal but for the counters, which neither query reads. */
static int
nic_same(const struct ktls_nic *a, const struct ktls_nic *b)
{
	return strcmp(a->ifname, b->ifname) == 0 && a->ifindex == b->ifindex &&
	    a->is_loopback == b->is_loopback &&
	    a->is_virtual == b->is_virtual &&
	    a->tls_tx_feature == b->tls_tx_feature &&
	    a->tls_rx_feature == b->tls_rx_feature &&
	    a->tls_tx_available == b->tls_tx_available &&
	    a->tls_rx_available == b->tls_rx_available && a->nstats == 0 &&
	    b->nstats == 0;
}

/* Two interfaces in one cache: each asked of the kernel once. */
static void
probe_cache_remote(struct ktls_nic_cache *c, int lo_fd)
{
	struct ktls_nic direct, n;
	char err[256] = "";
	unsigned long misses = c->misses;
	int fd, ok;

	if ((fd = remote_open(&remote[0])) == -1) {
		printf("cache: second interface skipped, no route to %s\n",
		    remote[0].connect_addr);
		return;
	}
	ok = ktls_nic_query(fd, &direct, err, sizeof(err)) == 0 &&
	    ktls_nic_cache_query(c, fd, &n, err, sizeof(err)) == 0 &&
	    nic_same(&direct, &n) &&
	    ktls_nic_cache_query(c, lo_fd, &n, err, sizeof(err)) == 0 &&
	    strcmp(n.ifname, "lo") == 0 &&
	    ktls_nic_cache_query(c, fd, &n, err, sizeof(err)) == 0 &&
	    nic_same(&direct, &n);
	check(ok && c->misses == misses + 1,
	    "cache: %s kept beside lo, each asked of the kernel once%s%s",
	    direct.ifname, err[0] ? ": " : "", err);
	close(fd);
}

static void
probe_cache(void)
{
	struct ktls_nic_cache kept = KTLS_NIC_CACHE_INIT(60);
	struct ktls_nic_cache never = KTLS_NIC_CACHE_INIT(0);
	struct ktls_nic direct, a, b;
	char err[256] = "";
	int fds[2], fd, ok;

	if (pair_open(&variants[0], fds) == -1) {
		check(0, "cache: loopback pair: %s", strerror(errno));
		return;
	}
	ok = ktls_nic_query(fds[1], &direct, err, sizeof(err)) == 0 &&
	    ktls_nic_cache_query(&kept, fds[1], &a, err, sizeof(err)) == 0 &&
	    ktls_nic_cache_query(&kept, fds[0], &b, err, sizeof(err)) == 0;
	check(ok && nic_same(&direct, &a) && nic_same(&direct, &b),
	    "cache: both ends of a lo pair, answered as by ktls_nic_query%s%s",
	    err[0] ? ": " : "", err);
	check(kept.misses == 1 && kept.hits == 1,
	    "cache: lo asked of the kernel once, then kept (%lu hits, %lu "
	    "misses)",
	    kept.hits, kept.misses);
	(void)ktls_nic_cache_query(&never, fds[1], &a, err, sizeof(err));
	(void)ktls_nic_cache_query(&never, fds[1], &a, err, sizeof(err));
	check(never.misses == 2 && never.hits == 0,
	    "cache: with a ttl of 0 every query asks the kernel");
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	check(ktls_nic_cache_query(&kept, fd, &a, err, sizeof(err)) == -1 &&
		errno == ENOTCONN && a.ifname[0] == '\0' &&
		kept.hits + kept.misses == 2,
	    "cache: a socket without a route fails, uncounted (%s)", err);
	close(fd);
	probe_cache_remote(&kept, fds[0]);
	tcp_pair_close(fds);
}

#define CACHE_THREADS 8
#define CACHE_ROUNDS  50

struct cache_worker {
	pthread_t tid;
	struct ktls_nic_cache *cache;
	int fd;
	int wrong; /* answers that failed or were not lo */
};

static void *
cache_worker_main(void *arg)
{
	struct cache_worker *w = arg;
	struct ktls_nic n;
	char err[256];
	int i;

	for (i = 0; i < CACHE_ROUNDS; i++)
		if (ktls_nic_cache_query(w->cache, w->fd, &n, err,
			sizeof(err)) == -1 ||
		    strcmp(n.ifname, "lo") != 0)
			w->wrong++;
	return NULL;
}

/* Threads that share a cache, as the server's client threads do. */
static void
probe_cache_threads(void)
{
	static struct ktls_nic_cache shared = KTLS_NIC_CACHE_INIT(60);
	struct cache_worker w[CACHE_THREADS];
	size_t i, started = 0;
	int fds[2], wrong = 0;

	if (pair_open(&variants[0], fds) == -1) {
		check(0, "cache threads: loopback pair: %s", strerror(errno));
		return;
	}
	for (i = 0; i < CACHE_THREADS; i++) {
		w[i] =
		    (struct cache_worker){ .cache = &shared, .fd = fds[i % 2] };
		if (pthread_create(&w[i].tid, NULL, cache_worker_main, &w[i]))
			break;
		started++;
	}
	for (i = 0; i < started; i++) {
		pthread_join(w[i].tid, NULL);
		wrong += w[i].wrong;
	}
	check(started == CACHE_THREADS && wrong == 0 &&
		shared.hits + shared.misses == CACHE_THREADS * CACHE_ROUNDS &&
		shared.misses <= CACHE_THREADS,
	    "cache: %d threads x %d queries, all lo, %lu asked of the "
	    "kernel (at most one a thread)",
	    CACHE_THREADS, CACHE_ROUNDS, shared.misses);
	tcp_pair_close(fds);
}

int
main(void)
{
	size_t i;

	setvbuf(stdout, NULL, _IOLBF, 0);
	check_verbose();
	for (i = 0; i < sizeof(variants) / sizeof(variants[0]); i++)
		probe_loopback(&variants[i]);
	for (i = 0; i < sizeof(remote) / sizeof(remote[0]); i++)
		probe_remote(&remote[i]);
	probe_refusals();
	probe_tls_stat();
	probe_deltas_format();
	probe_cache();
	probe_cache_threads();

	return check_summary_named("nic_probe");
}
