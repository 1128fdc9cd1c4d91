/*
 * hk_print.h - what both programs say on stdout and stderr. The modules
 * below them never print; these helpers are the edge.
 */
#ifndef HK_PRINT_H
#define HK_PRINT_H

#include <stddef.h>

#include "conn.h"
#include "hk_config.h"
#include "ktls_nic.h"

/* Counters before a transfer, for --stats. */
struct hk_counters {
	int have_nic, have_stat;
	struct ktls_nic nic;
	struct ktls_tls_stat stat;
};

/* "prog: message" on stderr. */
void hk_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Set the name used by hk_warn and make stdout line-buffered. */
void hk_print_init(const char *prog);

/*
 * The start both programs share: hk_print_init, the command line (--help
 * and --version answered, an error printed with the usage) and SIGPIPE
 * ignored. Returns -1 to go on, or the status to exit with.
 */
int hk_start(struct hk_config *cfg, enum hk_role role, int argc, char **argv);

/*
 * The program's TLS context from cfg, with the banner and the files it
 * loads; NULL after printing why.
 */
SSL_CTX *hk_context(const struct hk_config *cfg);

/* Protocol, cipher and the peer's certificate ("Client" or "Server"). */
void hk_print_session(struct conn *c, const char *peer_title);

/* The two kTLS status lines. */
void hk_print_ktls(const struct conn *c);

/*
 * Both programs' path from a connected socket to kTLS, with its output:
 * the handshake, the session and certificate, the switch and its status
 * lines, the optional kernel features. peer is "Client" or "Server".
 * 0, or -1 with c->err.
 */
int hk_session_start(struct conn *c, const struct hk_config *cfg,
    const char *peer, struct hk_counters *counters);

/* After the exchange: --stats changes and KeyUpdate counts. */
void hk_session_end(struct conn *c, const struct hk_config *cfg,
    struct hk_counters *counters);

/*
 * Where the egress NIC advertises TLS offload but the kernel kept a
 * direction in software, say so: the kernel falls back silently.
 */
void hk_print_offload_note(const struct conn *c);

/* --stats: snapshot before the switch to kTLS, the changes after the exchange. */
void hk_counters_begin(const struct conn *c, struct hk_counters *k);
void hk_counters_end(const struct conn *c, struct hk_counters *k);

/* "TLS 1.3 key updates: sent N, received M", if there were any. */
void hk_print_key_updates(const struct conn *c);

/* prefix + received bytes, control characters shown as '.'. */
void hk_print_text(const char *prefix, const void *buf, size_t len);

#endif
