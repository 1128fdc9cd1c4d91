/*
 * unit.h - what the unit tests in tests/ share: one counted check per
 * property, and the closing "N passed, N failed" line.
 */
#ifndef HK_UNIT_H
#define HK_UNIT_H

#include <openssl/evp.h>
#include <openssl/x509.h>

/*
 * Count ok; when it is false, print "FAIL: " and the message (and, after
 * check_verbose(), "ok: " and the message when it is true).
 */
void check(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Print every check, not only the failures (the probe tests). */
void check_verbose(void);

/* Print "N passed, N failed"; the exit status: 0 only if nothing failed. */
int check_summary(void);

/* The same, as "name: N passed, N failed". */
int check_summary_named(const char *name);

/*
 * The PEM certificate or private key in dir/name (name alone when dir is
 * NULL: a path), or NULL: the test fixtures of HK_CERTS.
 */
X509 *unit_cert(const char *dir, const char *name);
EVP_PKEY *unit_key(const char *dir, const char *name);

#endif
