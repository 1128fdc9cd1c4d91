/*
 * hk_audit.h - the server's audit trail (--audit): one JSON object per
 * line and per event, with ECS field names as dotted keys, to a file, to
 * stdout or to syslog (hk_audit.c).
 */
#ifndef HK_AUDIT_H
#define HK_AUDIT_H

#include <stddef.h>
#include <time.h>

#include <netinet/in.h>

#include "conn.h"

struct hk_audit;

/* What happened to a connection; each is one line. */
enum hk_audit_event {
	HK_AUDIT_ACCEPTED,         /* the TCP connection, before any TLS */
	HK_AUDIT_HANDSHAKE_FAILED, /* the last line of a refused client */
	HK_AUDIT_ALLOWED,          /* the client's certificate was verified */
	HK_AUDIT_DENIED,           /* verified, but --policy refused it */
	HK_AUDIT_CLOSED,           /* bytes, duration and how it ended */
	HK_AUDIT_REVOCATION, /* a revocation check (hk_audit_revocation) */
	HK_AUDIT_REFUSED,    /* not served at all (--max-connections) */
};

/* One connection's part of the trail; filled by hk_audit_accepted. */
struct hk_audit_conn {
	struct hk_audit *audit;    /* NULL: no trail; every call does nothing */
	unsigned long long id;     /* unique within the server's run, from 1 */
	char ip[INET6_ADDRSTRLEN]; /* source.ip, the client's */
	unsigned port;
	char dst_ip[INET6_ADDRSTRLEN]; /* destination.ip, ours ("": unknown) */
	unsigned dst_port;
	struct timespec start; /* CLOCK_MONOTONIC */
	/*
	 * hk.config.generation: the server configuration the connection was
	 * served with (hk_reload.h); the caller sets it before
	 * hk_audit_accepted, which keeps it. 0: not written.
	 */
	unsigned long long generation;
};

/*
 * The trail to where: a file (created 0600 if missing, appended to), "-"
 * for stdout or "syslog". NULL with one line in err if the file cannot
 * be opened.
 */
struct hk_audit *hk_audit_open(const char *where, char *err, size_t errlen);

/*
 * Open a file trail's path again (after logrotate moved it), and write
 * the lines that follow there; lines being written meanwhile go whole to
 * the old file or the new one. Nothing to do for stdout and syslog.
 * 0, or -1 with err (the old file is kept then).
 */
int hk_audit_reopen(struct hk_audit *a, char *err, size_t errlen);

void hk_audit_free(struct hk_audit *a);

/*
 * A client's connection from peer to local (each "192.0.2.1:443" or
 * "[2001:db8::1]:443"; local may be NULL): its number, addresses and
 * start time into ac, and its "connection-accepted" line. a may be NULL
 * (no trail). 0, or -1 with errno if the line could not be written.
 */
int hk_audit_accepted(struct hk_audit *a, struct hk_audit_conn *ac,
    const char *peer, const char *local);

/*
 * A connection the server closed without serving it, and why (reason,
 * as the server says it): its number and one "connection-refused" line.
 * 0, or -1 with errno.
 */
int hk_audit_refused(struct hk_audit *a, const char *peer, const char *local,
    const char *reason);

/*
 * One event's line: the TLS session and the client's certificate from
 * c->ssl, where they apply, kTLS and byte counts from c. reason is
 * event.reason (NULL: none); failed makes event.outcome "failure".
 * 0, or -1 with errno.
 */
int hk_audit_event(const struct hk_audit_conn *ac, enum hk_audit_event ev,
    const struct conn *c, int failed, const char *reason);

/*
 * The --policy decision's line: access-allowed or access-denied (a
 * failure), with rule.name (NULL: no rule matched) and the decision's
 * reason as event.reason. 0, or -1 with errno.
 */
int hk_audit_decision(const struct hk_audit_conn *ac, const struct conn *c,
    int allow, const char *rule, const char *reason);
struct mtls_revocation;

/*
 * A "revocation-checked" line: the client's certificate (tls.client.*),
 * and the check: hk.revocation.source (crl, ocsp), .status, .this_update
 * and .next_update (the answer's or the CRL's freshness), .cache_hit,
 * .responder, .soft_pass; event.reason says what went wrong. refused
 * makes event.outcome "failure". 0, or -1 with errno.
 */
int hk_audit_revocation(const struct hk_audit_conn *ac, const struct conn *c,
    const struct mtls_revocation *rev, int refused);

#endif
