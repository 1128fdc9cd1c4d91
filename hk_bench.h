/*
 * hk_bench.h - the bulk transfer behind --bench: a known byte pattern
 * streamed one way, checked on arrival, timed with CPU accounting.
 */
#ifndef HK_BENCH_H
#define HK_BENCH_H

#include "conn.h"
#include "hk_proto.h"

/* Called now and then during a transfer (for a progress line). */
typedef void (*hk_progress_fn)(unsigned long long done,
    unsigned long long total, double seconds);

/*
 * Send bytes of the pattern: with sendfile() from a memory file when
 * use_sendfile and kTLS TX is on, else from memory with write/SSL_write.
 * Fills s (the sender's side). 0 or -1 with c->err.
 */
int hk_bench_send(struct conn *c, unsigned long long bytes, int use_sendfile,
    struct hk_stats *s, hk_progress_fn progress);

/* Receive bytes and check every one against the pattern. */
int hk_bench_recv(struct conn *c, unsigned long long bytes, struct hk_stats *s,
    hk_progress_fn progress);

#endif
