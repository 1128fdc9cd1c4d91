/*
 * unit.h - what the unit tests in tests/ share: one counted check per
 * property, and the closing "N passed, N failed" line.
 */
#ifndef HK_UNIT_H
#define HK_UNIT_H

/* Count ok; when it is false, print "FAIL: " and the message. */
void check(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Print "N passed, N failed"; the exit status: 0 only if nothing failed. */
int check_summary(void);

#endif
