/*
 * hk_client.h - the client's side of the request framing (hk_proto.h):
 * downloads and benchmark streams.
 */
#ifndef HK_CLIENT_H
#define HK_CLIENT_H

#include "conn.h"
#include "hk_bench.h"
#include "hk_proto.h"

/*
 * Download path into out_fd; *size is what the server announced and
 * was received in full. 0 or -1 with c->err (e.g. the server's refusal).
 */
int hk_client_get(struct conn *c, const char *path, int out_fd,
    unsigned long long *size);

/*
 * One benchmark stream: down (the server sends, with sendfile or
 * read/write) or up (we send). ours and theirs get each side's numbers.
 */
int hk_client_bench(struct conn *c, int down, unsigned long long bytes,
    int use_sendfile, struct hk_stats *ours, struct hk_stats *theirs,
    hk_progress_fn progress);

#endif
