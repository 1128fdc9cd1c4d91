/*
 * hk_status.h - the server's --status endpoint (hk_status.c): a thread
 * of its own answering HTTP/1.0 GETs with hk_metrics_render's text, on
 * a unix socket or a loopback TCP port only. One request per connection,
 * read with a deadline, so a slow or hostile scraper delays only other
 * scrapes, never a client. Never prints.
 */
#ifndef HK_STATUS_H
#define HK_STATUS_H

#include <stddef.h>

struct hk_status;

/*
 * Listen on addr ("unix:PATH", "127.0.0.1:PORT", "[::1]:PORT",
 * "localhost:PORT"; port 0 picks a free one) and start answering. NULL
 * with one line in err: a non-loopback address, a path in use, no thread.
 */
struct hk_status *hk_status_start(const char *addr, char *err, size_t errlen);

/* Where it listens, as addr says it, with the port it got. */
const char *hk_status_where(const struct hk_status *s);

/* Stop answering, close, remove the unix socket; s may be NULL. */
void hk_status_stop(struct hk_status *s);

#endif
