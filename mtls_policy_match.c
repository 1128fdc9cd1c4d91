/*
 * mtls_policy_match.c - the policy's matchers: how each reads its values
 * at load (and refuses a bad one) and how it matches a certificate.
 * Everything read from the certificate is the peer's text: it is
 * compared, never interpreted, and what a reason quotes of it is made
 * printable.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>

#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "mtls_policy_internal.h"

/* The certificate's value a reason quotes: control bytes become '?'. */
static void
hit_set(char *hit, size_t len, const void *s, size_t n)
{
	const unsigned char *p = s;
	size_t i;

	if (len == 0)
		return;
	if (n >= len)
		n = len - 1;
	for (i = 0; i < n; i++)
		hit[i] = (char)(p[i] < 0x20 || p[i] == 0x7f ? '?' : p[i]);
	hit[n] = '\0';
}

/* One DN value against the values: exact text, UTF-8. */
static int
match_entry(const struct pm *m, const X509_NAME_ENTRY *e, char *hit, size_t len)
{
	unsigned char *u = NULL;
	int n = ASN1_STRING_to_UTF8(&u, X509_NAME_ENTRY_get_data(e));
	size_t i;
	int found = 0;

	for (i = 0; n >= 0 && i < m->nv && !found; i++)
		found = strlen(m->v[i].text) == (size_t)n &&
		    memcmp(m->v[i].text, u, (size_t)n) == 0;
	if (found)
		hit_set(hit, len, u, (size_t)n);
	OPENSSL_free(u);
	return found;
}

/* Any value of the attribute (an OU may come twice) against the values. */
static int
match_name(const struct pm *m, const X509_NAME *name, char *hit, size_t len)
{
	int i = -1;

	while ((i = X509_NAME_get_index_by_OBJ(name, m->obj, i)) >= 0)
		if (match_entry(m, X509_NAME_get_entry(name, i), hit, len))
			return 1;
	return 0;
}

static int
match_subject(const struct pm *m, X509 *x, char *hit, size_t len)
{
	return match_name(m, X509_get_subject_name(x), hit, len);
}

static int
match_issuer_attr(const struct pm *m, X509 *x, char *hit, size_t len)
{
	return match_name(m, X509_get_issuer_name(x), hit, len);
}

/* The issuer's whole DN, in RFC 2253 form as openssl -nameopt RFC2253. */
static int
match_issuer(const struct pm *m, X509 *x, char *hit, size_t len)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *text;
	long n;
	size_t i;
	int found = 0;

	if (b == NULL)
		return 0;
	if (X509_NAME_print_ex(b, X509_get_issuer_name(x), 0,
		XN_FLAG_RFC2253) >= 0 &&
	    (n = BIO_get_mem_data(b, &text)) >= 0)
		for (i = 0; i < m->nv && !found; i++)
			if (strlen(m->v[i].text) == (size_t)n &&
			    memcmp(m->v[i].text, text, (size_t)n) == 0) {
				hit_set(hit, len, text, (size_t)n);
				found = 1;
			}
	BIO_free(b);
	return found;
}

/* One label or segment against a pattern of it with '*' in it. */
static int
glob_part(const char *p, size_t pn, const char *s, size_t sn, int icase)
{
	size_t pi = 0, si = 0, star = (size_t)-1, mark = 0;

	while (si < sn) {
		if (pi < pn && p[pi] == '*') {
			star = pi++;
			mark = si;
		} else if (pi < pn &&
		    (icase ? tolower((unsigned char)p[pi]) ==
				tolower((unsigned char)s[si]) :
			     p[pi] == s[si])) {
			pi++;
			si++;
		} else if (star != (size_t)-1) {
			pi = star + 1;
			si = ++mark;
		} else
			return 0;
	}
	while (pi < pn && p[pi] == '*')
		pi++;
	return pi == pn;
}

/*
 * pattern against s, part by part between seps: as many parts in each,
 * each part matching its own (so a '*' never crosses a sep).
 */
static int
glob(const char *p, size_t pn, const char *s, size_t sn, char sep, int icase)
{
	const char *pe, *se;
	size_t pl, sl;

	for (;;) {
		pe = memchr(p, sep, pn);
		se = memchr(s, sep, sn);
		pl = pe != NULL ? (size_t)(pe - p) : pn;
		sl = se != NULL ? (size_t)(se - s) : sn;
		if (!glob_part(p, pl, s, sl, icase) ||
		    (pe == NULL) != (se == NULL))
			return 0;
		if (pe == NULL)
			return 1;
		p += pl + 1, pn -= pl + 1;
		s += sl + 1, sn -= sl + 1;
	}
}

/* spiffe://td/a/ + "*": s is below td/a (one more segment at least). */
static int
glob_below(const struct pv *v, const char *s, size_t sn)
{
	size_t pn = strlen(v->text) - 2, i, seps = 0, want = 0;

	for (i = 0; i < pn; i++)
		want += v->text[i] == '/';
	for (i = 0; i < sn; i++)
		if (s[i] == '/' && seps++ == want)
			break;
	return i + 1 < sn && glob(v->text, pn, s, i, '/', 0);
}

/* The SANs of the matcher's type (kind->gen), each against the values. */
static int
match_san(const struct pm *m, X509 *x, char *hit, size_t len)
{
	GENERAL_NAMES *gens =
	    X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	const ASN1_STRING *s;
	size_t i;
	int j, found = 0, type = m->kind->gen;

	for (j = 0; gens != NULL && j < sk_GENERAL_NAME_num(gens) && !found;
	     j++) {
		if (sk_GENERAL_NAME_value(gens, j)->type != type)
			continue;
		s = sk_GENERAL_NAME_value(gens, j)->d.ia5;
		for (i = 0; i < m->nv && !found; i++)
			found = m->kind->same(&m->v[i],
			    &(struct pv){ .text = (char *)s->data,
				.binlen = (size_t)s->length });
		if (found && type == GEN_IPADD &&
		    (s->length == 4 || s->length == 16))
			inet_ntop(s->length == 4 ? AF_INET : AF_INET6, s->data,
			    hit, (socklen_t)len);
		else if (found)
			hit_set(hit, len, s->data, (size_t)s->length);
	}
	GENERAL_NAMES_free(gens);
	return found;
}

/*
 * For san.*, same(pattern, name) compares a value with a SAN: the SAN
 * comes as text (not NUL-terminated) and binlen (its length).
 */
static int
same_dns(const struct pv *p, const struct pv *s)
{
	return glob(p->text, strlen(p->text), s->text, s->binlen, '.', 1);
}

static int
same_uri(const struct pv *p, const struct pv *s)
{
	if (p->star_below)
		return glob_below(p, s->text, s->binlen);
	return glob(p->text, strlen(p->text), s->text, s->binlen, '/', 0);
}

static int
same_email(const struct pv *p, const struct pv *s)
{
	return strlen(p->text) == s->binlen &&
	    strncasecmp(p->text, s->text, s->binlen) == 0;
}

static int
same_ip(const struct pv *p, const struct pv *s)
{
	const unsigned char *a = p->bin, *b = (const unsigned char *)s->text;
	int full = p->bits / 8, rest = p->bits % 8;

	if (s->binlen != p->binlen || memcmp(a, b, (size_t)full) != 0)
		return 0;
	return rest == 0 ||
	    ((a[full] ^ b[full]) & (unsigned char)(0xff << (8 - rest))) == 0;
}

static int
match_serial(const struct pm *m, X509 *x, char *hit, size_t len)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	size_t i;
	int found = 0;

	for (i = 0; bn != NULL && i < m->nv && !found; i++)
		if ((found = BN_cmp(bn, m->v[i].bn) == 0))
			snprintf(hit, len, "%s", m->v[i].text);
	BN_free(bn);
	return found;
}

static int
match_spki(const struct pm *m, X509 *x, char *hit, size_t len)
{
	unsigned char *der = NULL, md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der), found = 0;
	size_t i;

	if (n > 0 && EVP_Digest(der, (size_t)n, md, &mdlen, EVP_sha256(), NULL))
		for (i = 0; i < m->nv && !found; i++)
			if ((found = memcmp(md, m->v[i].bin, 32) == 0))
				snprintf(hit, len, "%s", m->v[i].text);
	OPENSSL_free(der);
	return found;
}

static int
match_eku(const struct pm *m, X509 *x, char *hit, size_t len)
{
	EXTENDED_KEY_USAGE *eku =
	    X509_get_ext_d2i(x, NID_ext_key_usage, NULL, NULL);
	size_t i;
	int j, found = 0;

	for (j = 0; eku != NULL && j < sk_ASN1_OBJECT_num(eku) && !found; j++)
		for (i = 0; i < m->nv && !found; i++)
			if ((found = OBJ_cmp(sk_ASN1_OBJECT_value(eku, j),
					 m->v[i].obj) == 0))
				snprintf(hit, len, "%s", m->v[i].text);
	EXTENDED_KEY_USAGE_free(eku);
	return found;
}

/* The string types an extension's value is read as text from. */
#define EXT_TEXT_TYPES                                                         \
	(B_ASN1_DIRECTORYSTRING | B_ASN1_IA5STRING | B_ASN1_VISIBLESTRING |    \
	    B_ASN1_NUMERICSTRING)

/*
 * An extension's value as the policy compares it: the text of a string
 * type (a device ID as UTF8String), else the octets in upper-case hex.
 * A malloc'd string, or NULL.
 */
static char *
ext_value(const ASN1_OCTET_STRING *os)
{
	static const char digits[] = "0123456789ABCDEF";
	const unsigned char *p = os->data;
	ASN1_TYPE *t = d2i_ASN1_TYPE(NULL, &p, os->length);
	unsigned char *u = NULL;
	char *out = NULL;
	int i, n = -1;

	if (t != NULL && p == os->data + os->length &&
	    (ASN1_tag2bit(t->type) & EXT_TEXT_TYPES) != 0)
		n = ASN1_STRING_to_UTF8(&u, t->value.asn1_string);
	if (n >= 0 && (out = malloc((size_t)n + 1)) != NULL) {
		memcpy(out, u, (size_t)n);
		out[n] = '\0';
	} else if (n < 0 &&
	    (out = malloc(2 * (size_t)os->length + 1)) != NULL) {
		for (i = 0; i < os->length; i++) {
			out[2 * i] = digits[os->data[i] >> 4];
			out[2 * i + 1] = digits[os->data[i] & 15];
		}
		out[2 * os->length] = '\0';
	}
	OPENSSL_free(u);
	ASN1_TYPE_free(t);
	return out;
}

/* A value written as hex (colons allowed) against hex digits. */
static int
same_hex(const char *written, const char *hex)
{
	char digits[1024];

	return pv_hex_digits(written, digits, sizeof(digits)) == 0 &&
	    strcasecmp(digits, hex) == 0;
}

static int
match_ext(const struct pm *m, X509 *x, char *hit, size_t len)
{
	int at = X509_get_ext_by_OBJ(x, m->obj, -1), found = 0;
	char *value;
	size_t i;

	if (at < 0 ||
	    (value = ext_value(X509_EXTENSION_get_data(X509_get_ext(x, at)))) ==
		NULL)
		return 0;
	for (i = 0; i < m->nv && !found; i++)
		found = strcmp(m->v[i].text, value) == 0 ||
		    same_hex(m->v[i].text, value);
	if (found)
		hit_set(hit, len, value, strlen(value));
	free(value);
	return found;
}

static int
same_text(const struct pv *a, const struct pv *b)
{
	return strcmp(a->text, b->text) == 0;
}

static int
same_serial(const struct pv *a, const struct pv *b)
{
	return BN_cmp(a->bn, b->bn) == 0;
}

static int
same_spki(const struct pv *a, const struct pv *b)
{
	return memcmp(a->bin, b->bin, 32) == 0;
}

/* kind->gen of the matchers that read no SAN. */
#define NO_SAN (-1)

static const struct pm_kind kinds[] = {
	{ "subject", ATTR_NAME, 0, 0, NULL, match_subject, same_text, NO_SAN },
	{ "issuer", ATTR_NAME, 0, 0, NULL, match_issuer_attr, same_text,
	    NO_SAN },
	{ "issuer", ATTR_NONE, 1, 1, NULL, match_issuer, same_text, NO_SAN },
	{ "san.dns", ATTR_NONE, 0, 0, pv_parse_dns, match_san, same_dns,
	    GEN_DNS },
	{ "san.uri", ATTR_NONE, 0, 0, pv_parse_uri, match_san, same_uri,
	    GEN_URI },
	{ "san.email", ATTR_NONE, 0, 0, NULL, match_san, same_email,
	    GEN_EMAIL },
	{ "san.ip", ATTR_NONE, 0, 0, pv_parse_ip, match_san, same_ip,
	    GEN_IPADD },
	{ "serial", ATTR_NONE, 1, 0, pv_parse_serial, match_serial, same_serial,
	    NO_SAN },
	{ "spki.sha256", ATTR_NONE, 1, 0, pv_parse_spki, match_spki, same_spki,
	    NO_SAN },
	{ "eku", ATTR_NONE, 0, 0, pv_parse_eku, match_eku, same_text, NO_SAN },
	{ "ext", ATTR_OID, 0, 0, NULL, match_ext, same_text, NO_SAN },
};

const struct pm_kind *
pm_kind_find(const char *name, const char **attr)
{
	size_t i, n;

	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		n = strlen(kinds[i].name);
		if (strncmp(name, kinds[i].name, n) != 0)
			continue;
		if (kinds[i].attr == ATTR_NONE && name[n] == '\0') {
			*attr = NULL;
			return &kinds[i];
		}
		if (kinds[i].attr != ATTR_NONE && name[n] == '.' &&
		    name[n + 1] != '\0') {
			*attr = name + n + 1;
			return &kinds[i];
		}
	}
	return NULL;
}
