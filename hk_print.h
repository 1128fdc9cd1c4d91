/*
 * hk_print.h - what both programs say on stdout and stderr. The modules
 * below them never print; these helpers are the edge.
 */
#ifndef HK_PRINT_H
#define HK_PRINT_H

#include <stddef.h>

#include "conn.h"
#include "hk_config.h"

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

/*
 * The same context without a word: NULL with one line in err. A server's
 * reload builds each new set with it (hk_reload.c).
 */
SSL_CTX *
hk_context_build(const struct hk_config *cfg, char *err, size_t errlen);

/* The context's warnings (a CRL used within --crl-grace...) on stderr. */
void hk_context_notes(SSL_CTX *ctx);

/*
 * A server's client thread names its peer (NULL: none), which then stands
 * in front of every line it prints with hk_say and hk_print_* ("[peer] ").
 */
void hk_print_peer(const char *peer);

/*
 * --quiet: from now on, the lines about a server's clients (those with a
 * peer set) are left out, but for hk_print_summary's one per client.
 */
void hk_print_quiet(int on);

/*
 * One line on stdout (without its newline), whole, after the peer if set;
 * none for a client under --quiet.
 */
void hk_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Protocol, cipher and the peer's certificate ("Client" or "Server"). */
void hk_print_session(struct conn *c, const char *peer_title);

/* The two kTLS status lines. */
void hk_print_ktls(const struct conn *c);

/*
 * A client's one line under --quiet, as it leaves: its certificate's
 * subject, protocol, cipher, full or resumed (head: made by
 * hk_print_summary_head right after the handshake, while the SSL is
 * there; "" when there was none), where each direction's records were
 * sealed, application bytes each way, and why it ended.
 */
#define HK_SUMMARY_HEAD_MAX 384
void hk_print_summary_head(struct conn *c, char *head, size_t len);
void hk_print_summary(const struct conn *c, const char *head, const char *why);

/* prefix + received bytes, control characters shown as '.'. */
void hk_print_text(const char *prefix, const void *buf, size_t len);

#endif
