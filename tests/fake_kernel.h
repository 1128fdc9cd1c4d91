/*
 * fake_kernel.h - a kernel for the kTLS module's syscall seam
 * (struct ktls_syscalls in ktls_internal.h), played from a script and
 * keeping what the module asked of it, so that a unit test can make
 * every step of kTLS fail with each errno the kernel documents.
 */
#ifndef HK_FAKE_KERNEL_H
#define HK_FAKE_KERNEL_H

#include <stddef.h>
#include <stdint.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <linux/tls.h>

#include "ktls_internal.h"

/* No socket: a descriptor the fake kernel must be handed back. */
#define FAKE_FD          1000
#define FAKE_MAX_CALLS   8
#define FAKE_MAX_RECORDS 4

/* One setsockopt the module made. */
struct fake_call {
	int fd, level, optname;
	socklen_t optlen;
	char ulp[8];              /* TCP_ULP's value */
	uint16_t version, cipher; /* a key's struct tls_crypto_info */
	unsigned char info[64];   /* its first bytes: the key, salt, seq */
};

/* A record through recvmsg or sendmsg: its type and its first bytes. */
struct fake_record {
	unsigned char type;
	unsigned char b[8];
	size_t len;
};

/*
 * The script and the log. setsockopt number fail_at (0 is the first)
 * fails with err; recvmsg hands out the records in rx one by one, then
 * the peer's FIN, or fails with rx_err; sendmsg keeps what is sent in
 * tx; write and sendfile fail with io_err, or with 0 sendfile finds the
 * end of the file; can_rekey is what /proc/net/tls_stat would say.
 */
struct fake_kernel {
	struct fake_call calls[FAKE_MAX_CALLS];
	int ncalls, fail_at, err;
	int getsockopts;
	struct fake_record rx[FAKE_MAX_RECORDS], tx[FAKE_MAX_RECORDS];
	int nrx, rx_next, ntx;
	int rx_err, io_err, can_rekey;
};

extern struct fake_kernel fake;

/* What to give ktls_syscalls_set_for_testing(). */
extern const struct ktls_syscalls fake_kernel_calls;

/* Forget everything; then setsockopt number fail_at fails with err. */
void fake_reset(int fail_at, int err);

#endif
