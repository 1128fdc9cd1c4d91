/*
 * hk_serve.h - the server's side of the request framing (hk_proto.h):
 * file downloads below --root and benchmark streams.
 */
#ifndef HK_SERVE_H
#define HK_SERVE_H

#include <stddef.h>

#include "conn.h"

/*
 * Answer the request whose line starts the client's first bytes (buf,
 * len: already read from c). rootfd is the --root directory or -1. On
 * success, summary says what was sent and how; on failure c->err says
 * why, and the client has been told when it could be.
 */
int hk_serve_request(struct conn *c, int rootfd, const void *buf, size_t len,
    char *summary, size_t sumlen);

#endif
