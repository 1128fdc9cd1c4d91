/*
 * unit.h - the checks of the C unit tests: check() counts a result and
 * prints a failure with its message; unit_summary() prints the closing
 * "N passed, N failed" and gives the exit status. One test program per
 * translation unit includes it.
 */
#ifndef HK_TESTS_UNIT_H
#define HK_TESTS_UNIT_H

#include <stdarg.h>
#include <stdio.h>

static int passed, failed;

static void check(int ok, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define CHECK(cond, ...) check((cond) ? 1 : 0, __VA_ARGS__)

static void
check(int ok, const char *fmt, ...)
{
	va_list ap;

	if (ok) {
		passed++;
		return;
	}
	failed++;
	fputs("FAIL: ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static int
unit_summary(void)
{
	printf("%d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}

#endif
