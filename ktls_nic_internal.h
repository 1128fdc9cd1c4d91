/*
 * ktls_nic_internal.h - the error helpers shared by ktls_nic.c,
 * ktls_route.c and ktls_stat.c. Not for applications.
 */
#ifndef KTLS_NIC_INTERNAL_H
#define KTLS_NIC_INTERNAL_H

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* Leave a message for the caller, set errno to e, return -1. */
static inline int __attribute__((format(printf, 4, 5)))
nic_fail(char *err, size_t errlen, int e, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	errno = e;
	return -1;
}

static inline int
nic_fail_errno(char *err, size_t errlen, const char *what)
{
	int e = errno;

	return nic_fail(err, errlen, e, "%s: %s", what, strerror(e));
}

#endif /* KTLS_NIC_INTERNAL_H */
