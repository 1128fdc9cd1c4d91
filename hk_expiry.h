/*
 * hk_expiry.h - how long certificates have left, and when to say so
 * (hk_expiry.c): the client's certificate in the server's log and audit,
 * warnings about a program's own certificate, its CA and its peer's.
 */
#ifndef HK_EXPIRY_H
#define HK_EXPIRY_H

#include <stddef.h>
#include <time.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

/* Seven days: the warning threshold for long-lived certificates. */
#define HK_EXPIRY_WARN_MAX (7 * 86400LL)

/* x's notBefore and notAfter as time_t; 0, or -1 if unreadable. */
int hk_expiry_dates(const X509 *x, time_t *not_before, time_t *not_after);

/*
 * Seconds from now until x's notAfter, negative once it has passed;
 * 0, or -1 if its dates cannot be read.
 */
int hk_expiry_left(const X509 *x, time_t now, long long *left);

/*
 * Whether x is close to its expiry (or past it): less than a third of
 * its lifetime is left, or less than seven days for one that lives
 * longer than three weeks. So a 15-minute certificate is close with 5
 * minutes left and an 825-day one with a week left; renewers renew at
 * two thirds, so a warning means a renewal is late.
 */
int hk_expiry_near(const X509 *x, time_t now);

/* secs as "14m 32s", "2h 3m", "3d 4h" or "45s" (its absolute value). */
void hk_expiry_words(long long secs, char *buf, size_t len);

/*
 * A line about x for a warning, "expires in 2h 3m" or "expired 5m 2s
 * ago"; 1 if x is near its expiry (hk_expiry_near), 0 (line still
 * written) if not, -1 if its dates cannot be read.
 */
int hk_expiry_line(const X509 *x, time_t now, char *buf, size_t len);

/*
 * What the server last warned about its certificate and its CA, so that
 * it warns at start and once more each time one gets closer: 0 fine, 1
 * near, 2 expired.
 */
struct hk_expiry_watch {
	int own, ca;
};

/*
 * Warn (hk_warn) about ctx's own certificate (what: "server", "client")
 * and the CA certificates it trusts, where one is near its expiry and
 * the watch has not said so yet at that level. Cheap enough for a loop
 * that runs once a second.
 */
void
hk_expiry_watch_ctx(struct hk_expiry_watch *w, SSL_CTX *ctx, const char *what);

#endif
