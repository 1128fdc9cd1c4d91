/*
 * unit.c - counted checks for the unit tests (see unit.h).
 */
#include <stdarg.h>
#include <stdio.h>

#include <openssl/pem.h>

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

/* fopen dir/name (or name), or NULL. */
static FILE *
open_fixture(const char *dir, const char *name)
{
	char path[4096];

	if (dir == NULL)
		return fopen(name, "r");
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return fopen(path, "r");
}

X509 *
unit_cert(const char *dir, const char *name)
{
	FILE *f = open_fixture(dir, name);
	X509 *x = f != NULL ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;

	if (f != NULL)
		fclose(f);
	return x;
}

EVP_PKEY *
unit_key(const char *dir, const char *name)
{
	FILE *f = open_fixture(dir, name);
	EVP_PKEY *k =
	    f != NULL ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;

	if (f != NULL)
		fclose(f);
	return k;
}
