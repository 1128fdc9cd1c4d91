/*
 * hk_metrics.h - the server's counters for --status, in the Prometheus
 * text format 0.0.4 (hk_metrics.c). Process-wide atomics, counted where
 * the audit trail's events are written, so that metrics and audit lines
 * never disagree. Never prints; any thread may call any of these.
 */
#ifndef HK_METRICS_H
#define HK_METRICS_H

#include <stddef.h>

#include <openssl/ssl.h>

#include "conn.h"

/*
 * A client whose handshake did not verify it (the audit trail's
 * tls-handshake-failed): counted under a reason from a fixed set,
 * read from c's verify result, else from why (the line the server logs).
 */
void hk_metrics_handshake_failed(const struct conn *c, const char *why);

/*
 * A verified client and the decision on it (access-allowed or
 * access-denied): rule is the --policy rule that decided, "default"
 * without --policy, NULL when no rule matched. An allowed client is
 * counted open under its kTLS TX/RX modes until hk_metrics_closed;
 * *slot remembers those modes for that call.
 */
void hk_metrics_verified(const struct conn *c, int allow, const char *rule,
    int *slot);

/* The allowed client of hk_metrics_verified has gone, with its bytes. */
void hk_metrics_closed(const struct conn *c, int slot);

/* A client not served at all (--max-connections). */
void hk_metrics_refused(void);

/*
 * A reload of the server's configuration: ok or failed, and the
 * generation now in use (1 for the one the server started with).
 */
void hk_metrics_reload(int ok, unsigned generation);

/*
 * The context whose certificates, CRLs and OCSP cache the scrape reads
 * (a reference is taken; the previous one is released). NULL releases.
 */
void hk_metrics_set_ctx(SSL_CTX *ctx);

/*
 * Everything, as Prometheus text: a malloc'ed NUL-terminated buffer in
 * *text (its length in *len), or -1 when out of memory.
 */
int hk_metrics_render(char **text, size_t *len);

#endif
