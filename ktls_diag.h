/*
 * ktls_diag: ask the kernel (netlink sock_diag, INET_DIAG_ULP_INFO) what
 * TLS upper-layer-protocol state one connected TCP socket has.
 *
 * Library-like: never prints, never exits. Functions return 0 or -1; on
 * -1 errno is set and a one-line message is left in the caller's buffer.
 */
#ifndef KTLS_DIAG_H
#define KTLS_DIAG_H

#include <stddef.h>

struct ktls_diag {
	int has_ulp;        /* 1 if the kernel reported a ULP on the socket */
	char ulp_name[16];  /* "tls", or "" */
	unsigned version;   /* e.g. 0x0304, 0 if unknown */
	unsigned cipher;    /* TLS_CIPHER_* value, 0 if unknown */
	int txconf, rxconf; /* TLS_CONF_BASE/SW/HW/HW_RECORD, 0 if unknown */
	int zc_ro_tx, rx_no_pad; /* 1 if the kernel set the flag */
};

/*
 * Look up connected TCP socket fd (IPv4 or IPv6) by its exact 4-tuple and
 * socket cookie, and fill *out from the kernel's INET_DIAG_ULP_INFO.
 *
 * The kernel reports ULP details only to a requester with CAP_NET_ADMIN;
 * before Linux 6.15 it omits even the ULP name otherwise. So has_ulp == 0
 * is conclusive only for a privileged caller: in that case err receives a
 * note saying so even though the call succeeded (err is "" otherwise).
 * Waits at most about a second for the kernel. Returns 0, or -1 with errno
 * set (ENOENT: the kernel knows no such socket) and a message in err.
 */
int ktls_diag_query(int fd, struct ktls_diag *out, char *err, size_t errlen);

/*
 * Name of a TLS_CONF_* value: "base", "software", "hardware",
 * "hardware-record", or "unknown".
 */
const char *ktls_diag_conf_name(int conf);

#endif /* KTLS_DIAG_H */
