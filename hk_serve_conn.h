/*
 * hk_serve_conn.h - one client of hello_ktls_server, from accept to
 * close: the TLS handshake and the identity checks (hk_session.c), the
 * switch to kTLS, an idle wait in the pool's parking lot, the exchange
 * (hk_serve.c for requests), the end, its log and audit lines. The
 * accept loop, reloads and the program itself stay in
 * hello_ktls_server.c.
 */
#ifndef HK_SERVE_CONN_H
#define HK_SERVE_CONN_H

#include <stdatomic.h>
#include <stddef.h>

#include <sys/socket.h>

#include "hk_expiry.h"
#include "hk_pool.h"

struct hk_audit;
struct hk_config;
struct hk_reload;
struct hk_status;

/*
 * What every client's thread reads. The identity set (context, policy)
 * is the reloader's: each connection takes the current one.
 */
struct hk_server {
	struct hk_reload *reload;
	const struct hk_config *cfg;
	int rootfd;
	struct hk_audit *audit;        /* --audit, or NULL */
	struct hk_status *status;      /* --status, or NULL */
	struct hk_expiry_watch expiry; /* what was said of our certificates */
};

/*
 * One client on this thread; may_park: an idle one may wait in the
 * pool's lot (not --once, which has no pool). 0 when served (or parked),
 * -1 when it failed (said and audited). Closes fd.
 */
int hk_serve_conn(const struct hk_server *srv, int fd, const char *peer,
    atomic_int *stop, int may_park);

/* hk_pool's client function (arg: the struct hk_server). */
void hk_serve_conn_pool(void *arg, int fd, const char *peer, atomic_int *stop);

/*
 * hk_pool's resume function: a parked client back on a thread, its
 * request come (or its peer gone, its time run out, or told to stop; the
 * exchange's first read says which, as it would have on a thread:
 * conn_park).
 */
void hk_serve_conn_resume(void *arg, void *state, enum hk_pool_wake why,
    atomic_int *stop);

/* "127.0.0.1:PORT" or "[::1]:PORT"; IPv4-mapped addresses as IPv4. */
void hk_peer_name(const struct sockaddr_storage *ss, char *buf, size_t len);

/* The address fd was accepted on, as hk_peer_name says it; NULL if unknown. */
const char *hk_local_name(int fd, char *buf, size_t len);

#endif
