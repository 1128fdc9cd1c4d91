/*
 * hk_serve.h - the server's side of the request framing (hk_proto.h):
 * file downloads below --root and benchmark streams.
 */
#ifndef HK_SERVE_H
#define HK_SERVE_H

#include <stddef.h>

#include "conn.h"
#include "mtls_policy.h"

/*
 * Answer the request whose line starts the client's first bytes (buf,
 * len: already read from c). rootfd is the --root directory or -1; d is
 * the --policy decision on the client (NULL: no policy), whose grants the
 * request must be within. On success, summary says what was sent and
 * how; on failure c->err says why, and the client has been told when it
 * could be.
 */
int hk_serve_request(struct conn *c, int rootfd, const struct mtls_decision *d,
    const void *buf, size_t len, char *summary, size_t sumlen);

/*
 * Refuse what the client asked with an "HKTLS/1 ERR why" line; -1 with
 * "refused: why" in c->err.
 */
int hk_serve_refuse(struct conn *c, const char *why);

#endif
