/*
 * diag_probe: check ktls_diag_query() against real kTLS sockets.
 *
 * For each address family: a loopback TCP pair gets TCP_ULP "tls" on both
 * ends, TLS_TX (TLS 1.2, AES-GCM-128, all-zero key) on one end and TLS_RX
 * on the other, moves one record, and must then report txconf=software on
 * the TX end, rxconf=software on the RX end, version 0x0303, cipher 51. A
 * plain pair must report no ULP, and sockets that are not connected TCP
 * must be refused. Last, without CAP_NET_ADMIN the kernel must withhold
 * the TLS details.
 *
 * Needs a kernel with kTLS: run it in the guest (bash tests/uml.sh -- ...).
 * Exit status: 0 all passed, 1 a check failed, 77 no kTLS in this kernel.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include <linux/capability.h>
#include <linux/tls.h>

#include "../ktls_diag.h"
#include "tcp_pair.h"
#include "unit.h"

#ifndef SOL_TLS
#define SOL_TLS 282 /* include/linux/socket.h */
#endif

#define EXIT_SKIP 77

struct variant {
	const char *name;
	int family;
	const char *loopback;
};

static const struct variant variants[] = {
	{ "ipv4", AF_INET, "127.0.0.1" },
	{ "ipv6", AF_INET6, "::1" },
};

static void
diag_print(const char *label, int rc, const struct ktls_diag *d,
    const char *err)
{
	printf("%s: rc=%d has_ulp=%d ulp=\"%s\" version=0x%04x cipher=%u "
	       "txconf=%s rxconf=%s zc_ro_tx=%d rx_no_pad=%d%s%s\n",
	    label, rc, d->has_ulp, d->ulp_name, d->version, d->cipher,
	    ktls_diag_conf_name(d->txconf), ktls_diag_conf_name(d->rxconf),
	    d->zc_ro_tx, d->rx_no_pad, err[0] ? " note: " : "", err);
}

static int
query(const char *label, int fd, struct ktls_diag *d)
{
	char err[256];
	int rc = ktls_diag_query(fd, d, err, sizeof(err));

	diag_print(label, rc, d, err);
	return rc;
}

/* A connected loopback pair on an ephemeral port; fds[0] is the client. */
static int
pair_open(const struct variant *v, int fds[2])
{
	return tcp_pair_open(v->family, v->loopback, v->family, v->loopback,
	    fds);
}

static int
ktls_attach(int fd)
{
	return setsockopt(fd, SOL_TCP, TCP_ULP, "tls", sizeof("tls") - 1);
}

/* A dummy TLS 1.2 AES-GCM-128 state: all-zero key, nothing to wipe. */
static int
ktls_set_dummy_key(int fd, int direction)
{
	struct tls12_crypto_info_aes_gcm_128 ci;

	memset(&ci, 0, sizeof(ci));
	ci.info.version = TLS_1_2_VERSION;
	ci.info.cipher_type = TLS_CIPHER_AES_GCM_128;
	return setsockopt(fd, SOL_TLS, direction, &ci, sizeof(ci));
}

/* One record through the pair proves the two ends agree. */
static int
pair_roundtrip(int fds[2])
{
	char buf[16] = "";
	ssize_t n;

	if (write(fds[0], "hello", 5) != 5)
		return -1;
	n = read(fds[1], buf, sizeof(buf) - 1);
	return n == 5 && memcmp(buf, "hello", 5) == 0 ? 0 : -1;
}

static void
expect_tls(const char *what, const struct ktls_diag *d, int txconf, int rxconf)
{
	check(d->has_ulp && strcmp(d->ulp_name, "tls") == 0,
	    "%s: ulp is \"tls\"", what);
	check(d->version == TLS_1_2_VERSION, "%s: version 0x0303", what);
	check(d->cipher == TLS_CIPHER_AES_GCM_128, "%s: cipher 51", what);
	check(d->txconf == txconf && d->rxconf == rxconf,
	    "%s: txconf=%s rxconf=%s", what, ktls_diag_conf_name(txconf),
	    ktls_diag_conf_name(rxconf));
}

static void
probe_plain(const struct variant *v, int fds[2])
{
	struct ktls_diag d;
	char label[64];

	snprintf(label, sizeof(label), "%s plain", v->name);
	check(query(label, fds[0], &d) == 0 && !d.has_ulp,
	    "%s: no ULP reported", label);
}

/* Both ends: ULP, dummy keys, one record; EXIT_SKIP if no kTLS here. */
static int
tls_setup(const struct variant *v, int fds[2])
{
	if (ktls_attach(fds[0]) == -1) {
		if (errno == ENOENT) {
			printf("%s: TCP_ULP \"tls\": ENOENT, no kTLS in this "
			       "kernel\n",
			    v->name);
			return EXIT_SKIP;
		}
		check(0, "%s: TCP_ULP tls: %s", v->name, strerror(errno));
		return -1;
	}
	check(ktls_attach(fds[1]) == 0, "%s: TCP_ULP tls on both ends",
	    v->name);
	check(ktls_set_dummy_key(fds[0], TLS_TX) == 0 &&
		ktls_set_dummy_key(fds[1], TLS_RX) == 0,
	    "%s: TLS_TX on client, TLS_RX on server", v->name);
	check(pair_roundtrip(fds) == 0, "%s: one record moved", v->name);
	return 0;
}

static int
cap_net_admin_set(int on)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3,
		0 };
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
	unsigned bit = 1U << (CAP_NET_ADMIN % 32);

	if (syscall(SYS_capget, &hdr, data) == -1)
		return -1;
	if (on)
		data[CAP_NET_ADMIN / 32].effective |= bit;
	else
		data[CAP_NET_ADMIN / 32].effective &= ~bit;
	return (int)syscall(SYS_capset, &hdr, data);
}

/*
 * Without CAP_NET_ADMIN, 6.1 leaves out the whole INET_DIAG_ULP_INFO and
 * later kernels may leave out tls_get_info(), while 7.x was seen to
 * report it in full: either way nothing may read wrong. Only the
 * effective set is dropped, so the capability can come back.
 */
static void
probe_unprivileged(const struct variant *v, int fd)
{
	struct ktls_diag d;
	char label[64];
	int rc;

	snprintf(label, sizeof(label), "%s tx end, no CAP_NET_ADMIN", v->name);
	if (cap_net_admin_set(0) == -1) {
		check(0, "%s: capset: %s", label, strerror(errno));
		return;
	}
	rc = query(label, fd, &d);
	check(cap_net_admin_set(1) == 0, "%s: capability restored", label);
	check(rc == 0 &&
		((d.version == 0 && d.cipher == 0 && d.txconf == 0) ||
		    (d.version == 0x0303 && d.cipher == 51 &&
			d.txconf == TLS_CONF_SW)),
	    "%s: TLS details withheld or right", label);
}

/* Returns EXIT_SKIP if this kernel has no kTLS, else 0. */
static int
probe_tls(const struct variant *v, int fds[2])
{
	struct ktls_diag d;
	char label[64];
	int rc;

	if ((rc = tls_setup(v, fds)) != 0)
		return rc == EXIT_SKIP ? EXIT_SKIP : 0;
	snprintf(label, sizeof(label), "%s tx end", v->name);
	check(query(label, fds[0], &d) == 0, "%s: query", label);
	expect_tls(label, &d, TLS_CONF_SW, TLS_CONF_BASE);
	snprintf(label, sizeof(label), "%s rx end", v->name);
	check(query(label, fds[1], &d) == 0, "%s: query", label);
	expect_tls(label, &d, TLS_CONF_BASE, TLS_CONF_SW);
	probe_unprivileged(v, fds[0]);
	return 0;
}

/* Returns EXIT_SKIP if this kernel has no kTLS, else 0. */
static int
probe_variant(const struct variant *v)
{
	int fds[2], rc;

	if (pair_open(v, fds) == -1) {
		/* The guest's IPv6 is a module that may not be loaded. */
		if (v->family == AF_INET6 && errno == EAFNOSUPPORT)
			printf("%s: skipped, no IPv6 here\n", v->name);
		else
			check(0, "%s: loopback pair: %s", v->name,
			    strerror(errno));
		return 0;
	}
	probe_plain(v, fds);
	tcp_pair_close(fds);
	if (pair_open(v, fds) == -1) {
		check(0, "%s: loopback pair: %s", v->name, strerror(errno));
		return 0;
	}
	rc = probe_tls(v, fds);
	tcp_pair_close(fds);
	return rc;
}

/* Sockets the kernel cannot look up must fail with a message, not hang. */
static void
probe_refusals(void)
{
	struct ktls_diag d;
	char err[256] = "";
	int fd;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	check(ktls_diag_query(fd, &d, err, sizeof(err)) == -1 &&
		errno == ENOTCONN && err[0] != '\0',
	    "unconnected TCP socket refused (%s)", err);
	close(fd);
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	check(ktls_diag_query(fd, &d, err, sizeof(err)) == -1 &&
		errno == EPROTONOSUPPORT && err[0] != '\0',
	    "UDP socket refused (%s)", err);
	close(fd);
	check(ktls_diag_query(-1, &d, err, sizeof(err)) == -1 && errno == EBADF,
	    "bad fd refused (%s)", err);
}

int
main(void)
{
	size_t i;
	int skip = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	check_verbose();
	for (i = 0; i < sizeof(variants) / sizeof(variants[0]); i++)
		if (probe_variant(&variants[i]) == EXIT_SKIP)
			skip = 1;
	probe_refusals();

	if (check_summary_named("diag_probe") != 0)
		return 1;
	return skip ? EXIT_SKIP : 0;
}
