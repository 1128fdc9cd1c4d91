/*
 * hk_session.h - one connection's way to kTLS and back, with its output,
 * as both programs drive it (hk_session.c).
 */
#ifndef HK_SESSION_H
#define HK_SESSION_H

#include "conn.h"
#include "hk_config.h"
#include "ktls_nic.h"
#include "mtls_policy.h"

/* Counters before a transfer, for --stats. */
struct hk_counters {
	int have_nic, have_stat;
	struct ktls_nic nic;
	struct ktls_tls_stat stat;
};

/*
 * The server's --policy step, between the handshake and kTLS: no key
 * reaches the kernel for a client the policy denies.
 */
struct hk_authz {
	const struct mtls_policy *policy; /* NULL: every verified client */
	int decided;                      /* the handshake got that far */
	struct mtls_decision decision;
};

/*
 * Both programs' path from a connected socket to kTLS, with its output:
 * the handshake, the session and certificate, the switch and its status
 * lines, the optional kernel features. peer is "Client" or "Server".
 * authz (the server's, or NULL) decides on the client after the
 * handshake; a denied one gets an access_denied alert. 0, or -1 with
 * c->err.
 */
int hk_session_start(struct conn *c, const struct hk_config *cfg,
    const char *peer, struct hk_authz *authz, struct hk_counters *counters);

/*
 * Once nothing more is read from the SSL (the audit's revocation notes,
 * --reauthorize's certificate): free it if the kernel holds both
 * directions (conn_free_ssl), and say so.
 */
void hk_session_free_ssl(struct conn *c);

/* After the exchange: --stats changes and KeyUpdate counts. */
void hk_session_end(struct conn *c, const struct hk_config *cfg,
    struct hk_counters *counters);

#endif
