/*
 * unit.c - counted checks for the unit tests (see unit.h).
 */
#include <stdarg.h>
#include <stdio.h>

#include "unit.h"

static int passed, failed;

void
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

int
check_summary(void)
{
	printf("%d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
