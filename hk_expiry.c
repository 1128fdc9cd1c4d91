/*
 * hk_expiry.c - time left on certificates: in words for the log, a
 * number for the audit trail, and warnings when it runs short.
 */
#include <stdio.h>

#include <openssl/asn1.h>
#include <openssl/x509_vfy.h>

#include "hk_expiry.h"
#include "hk_print.h"

/* An ASN1_TIME (always UTC) as time_t. */
static int
asn1_time(const ASN1_TIME *a, time_t *t)
{
	struct tm tm;

	if (a == NULL || !ASN1_TIME_to_tm(a, &tm))
		return -1;
	*t = timegm(&tm);
	return 0;
}

int
hk_expiry_dates(const X509 *x, time_t *not_before, time_t *not_after)
{
	if (x == NULL || asn1_time(X509_get0_notBefore(x), not_before) < 0 ||
	    asn1_time(X509_get0_notAfter(x), not_after) < 0)
		return -1;
	return 0;
}

int
hk_expiry_left(const X509 *x, time_t now, long long *left)
{
	time_t nb, na;

	if (hk_expiry_dates(x, &nb, &na) < 0)
		return -1;
	*left = (long long)na - (long long)now;
	return 0;
}

/* 0 fine, 1 near, 2 expired; -1 unreadable. */
static int
expiry_level(const X509 *x, time_t now)
{
	time_t nb, na;
	long long life, left, limit;

	if (hk_expiry_dates(x, &nb, &na) < 0)
		return -1;
	left = (long long)na - (long long)now;
	if (left <= 0)
		return 2;
	life = (long long)na - (long long)nb;
	limit = life / 3 < HK_EXPIRY_WARN_MAX ? life / 3 : HK_EXPIRY_WARN_MAX;
	return left < limit ? 1 : 0;
}

int
hk_expiry_near(const X509 *x, time_t now)
{
	return expiry_level(x, now) > 0;
}

void
hk_expiry_words(long long secs, char *buf, size_t len)
{
	/* The two largest units, as people say a time left. */
	static const struct {
		long long secs;
		const char *name;
	} units[] = { { 86400, "d" }, { 3600, "h" }, { 60, "m" }, { 1, "s" } };
	size_t i;

	if (secs < 0)
		secs = -secs;
	for (i = 0; i < 3 && secs < units[i].secs; i++)
		;
	if (i == 3)
		snprintf(buf, len, "%llds", secs);
	else
		snprintf(buf, len, "%lld%s %lld%s", secs / units[i].secs,
		    units[i].name, secs % units[i].secs / units[i + 1].secs,
		    units[i + 1].name);
}

int
hk_expiry_line(const X509 *x, time_t now, char *buf, size_t len)
{
	char words[48];
	long long left;
	int level = expiry_level(x, now);

	if (level < 0 || hk_expiry_left(x, now, &left) < 0)
		return -1;
	hk_expiry_words(left, words, sizeof(words));
	if (left <= 0)
		snprintf(buf, len, "expired %s ago", words);
	else
		snprintf(buf, len, "expires in %s", words);
	return level > 0;
}

/* One warning where x has reached a level it was not warned at. */
static void
watch_one(int *said, const X509 *x, time_t now, const char *what)
{
	char line[96], subject[256];
	int level = expiry_level(x, now);

	if (level < 0)
		return;
	if (level > *said) {
		hk_expiry_line(x, now, line, sizeof(line));
		if (what != NULL)
			hk_warn("warning: %s certificate %s", what, line);
		else {
			X509_NAME_oneline(X509_get_subject_name(x), subject,
			    sizeof(subject));
			hk_warn("warning: CA certificate %s %s", subject, line);
		}
	}
	/* A renewed certificate starts again, and may be warned about. */
	*said = level;
}

void
hk_expiry_watch_ctx(struct hk_expiry_watch *w, SSL_CTX *ctx, const char *what)
{
	STACK_OF(X509_OBJECT) * objs;
	X509_STORE *store = SSL_CTX_get_cert_store(ctx);
	X509 *x, *worst = NULL;
	time_t now = time(NULL);
	int i, level, worst_level = -1;

	if ((x = SSL_CTX_get0_certificate(ctx)) != NULL)
		watch_one(&w->own, x, now, what);
	/* Locked: a CA directory's lookups add to the store as they go. */
	if (!X509_STORE_lock(store))
		return;
	objs = X509_STORE_get0_objects(store);
	for (i = 0; objs != NULL && i < sk_X509_OBJECT_num(objs); i++) {
		x = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objs, i));
		if (x != NULL && (level = expiry_level(x, now)) > worst_level) {
			worst = x;
			worst_level = level;
		}
	}
	if (worst != NULL)
		watch_one(&w->ca, worst, now, NULL);
	X509_STORE_unlock(store);
}
