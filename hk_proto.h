/*
 * hk_proto.h - the small request framing behind --get and --bench.
 *
 * A client that wants more than the seed's hello sends one line first:
 *   HKTLS/1 GET <path>
 *   HKTLS/1 BENCH DOWN <bytes> <sendfile|readwrite>
 *   HKTLS/1 BENCH UP <bytes>            (then <bytes> of data)
 * and the server answers with one line:
 *   HKTLS/1 OK <bytes>                  (then <bytes> of data)
 *   HKTLS/1 ERR <reason>
 * A benchmark ends with the server's measurements:
 *   HKTLS/1 STATS <bytes> <seconds> <user> <sys> <path>
 * Anything else a client sends is the seed's hello message, so openssl
 * s_client and s_server stay usable peers.
 */
#ifndef HK_PROTO_H
#define HK_PROTO_H

#include <stddef.h>

#define HK_PROTO          "HKTLS/1 "
#define HK_PROTO_LINE_MAX 4096

enum hk_req_type {
	HK_REQ_GET,
	HK_REQ_BENCH_DOWN,
	HK_REQ_BENCH_UP
};

struct hk_request {
	enum hk_req_type type;
	char path[HK_PROTO_LINE_MAX];
	unsigned long long bytes;
	int use_sendfile;
};

/* What one side measured for one transfer. */
struct hk_stats {
	unsigned long long bytes;
	double seconds, user, sys;
	char path[24]; /* ktls-sw-sendfile, ktls-sw-write, ..., userspace */
};

/* True if buf starts like a protocol line rather than a hello. */
int hk_proto_is_line(const void *buf, size_t len);

/* Parse a request line (without '\n'). -1 with a reason in err. */
int hk_proto_parse_request(const char *line, struct hk_request *r, char *err,
    size_t errlen);

/* Parse "HKTLS/1 OK <bytes>" or take the reason of "HKTLS/1 ERR ...". */
int hk_proto_parse_reply(const char *line, unsigned long long *bytes, char *err,
    size_t errlen);

void hk_proto_format_stats(char *buf, size_t len, const struct hk_stats *s);
int hk_proto_parse_stats(const char *line, struct hk_stats *s);

#endif
