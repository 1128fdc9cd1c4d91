/*
 * unit.c - counted checks for the unit tests (see unit.h).
 */
#include <stdarg.h>
#include <stdio.h>

#include "unit.h"

static int passed, failed, verbose;

void
check_verbose(void)
{
	verbose = 1;
}

void
check(int ok, const char *fmt, ...)
{
	va_list ap;

	if (ok)
		passed++;
	else
		failed++;
	if (ok && !verbose)
		return;
	fputs(ok ? "ok: " : "FAIL: ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

int
check_summary_named(const char *name)
{
	if (name != NULL)
		printf("%s: ", name);
	printf("%d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}

int
check_summary(void)
{
	return check_summary_named(NULL);
}
