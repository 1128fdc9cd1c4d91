/*
 * mtls_policy_value.c - the values of the policy's matchers, read once at
 * load: globs, IP addresses and networks, serials, pins, EKUs, OIDs. A
 * bad value is refused here, with why, so that the server never starts
 * on a line that cannot mean what it says.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>

#include <openssl/evp.h>
#include <openssl/objects.h>

#include "mtls_policy_internal.h"

/* "1.3.6.1.4.1.32473.1.1": digits and dots, two arcs at least. */
static int
is_dotted_oid(const char *s)
{
	int arcs = 0;

	for (;;) {
		if (!isdigit((unsigned char)*s))
			return 0;
		while (isdigit((unsigned char)*s))
			s++;
		arcs++;
		if (*s == '\0')
			return arcs >= 2;
		if (*s++ != '.')
			return 0;
	}
}

/* The distinguished-name attributes a policy may name, besides OIDs. */
static const char *const dn_attrs[] = { "CN", "O", "OU", "C", "ST", "L",
	"street", "emailAddress", "serialNumber", "DC", "UID", "title", "GN",
	"SN", "initials", "pseudonym", "generationQualifier", "dnQualifier",
	"name", "postalCode", "businessCategory", "organizationIdentifier" };

int
pm_set_attr(struct pm *m, const char *attr, char *why, size_t len)
{
	size_t i;

	if (is_dotted_oid(attr))
		m->obj = OBJ_txt2obj(attr, 1);
	else if (m->kind->attr == ATTR_NAME) {
		for (i = 0; i < sizeof(dn_attrs) / sizeof(dn_attrs[0]); i++)
			if (strcmp(attr, dn_attrs[i]) == 0)
				m->obj = OBJ_txt2obj(attr, 0);
		if (m->obj == NULL) {
			snprintf(why, len, "unknown attribute %s", m->name);
			return -1;
		}
	}
	if (m->obj == NULL) {
		snprintf(why, len, "%s: bad OID %s (want digits and dots)",
		    m->name, attr);
		return -1;
	}
	return 0;
}

void
pv_clear(struct pv *v)
{
	free(v->text);
	BN_free(v->bn);
	ASN1_OBJECT_free(v->obj);
	memset(v, 0, sizeof(*v));
}

/*
 * A glob: '*' stands for any run of characters within one label (DNS)
 * or path segment (URI), never across sep. "**" is refused: it would
 * look like "any depth", which it is not.
 */
static int
parse_glob(struct pv *v, char sep, char *why, size_t len)
{
	const char *s = v->text;
	size_t n = strlen(s);

	if (strstr(s, "**") != NULL) {
		snprintf(why, len,
		    "bad glob %s: '**' (a '*' stays within one %s)", s,
		    sep == '.' ? "label" : "segment");
		return -1;
	}
	if (sep == '.' &&
	    (s[0] == '.' || s[n - 1] == '.' || strstr(s, "..") != NULL)) {
		snprintf(why, len, "bad glob %s: an empty DNS label", s);
		return -1;
	}
	return 0;
}

int
pv_parse_dns(struct pv *v, char *why, size_t len)
{
	return parse_glob(v, '.', why, len);
}

int
pv_parse_uri(struct pv *v, char *why, size_t len)
{
	size_t n = strlen(v->text);

	if (strncmp(v->text, "spiffe://", 9) == 0 && n > 11 &&
	    strcmp(v->text + n - 2, "/*") == 0) {
		v->star_below = 1;
		v->text[n - 2] = '\0';
		if (parse_glob(v, '/', why, len) < 0)
			return -1;
		v->text[n - 2] = '/';
		return 0;
	}
	return parse_glob(v, '/', why, len);
}

/* "10.1.2.3", "10.0.0.0/8", "2001:db8::1", "2001:db8::/32". */
int
pv_parse_ip(struct pv *v, char *why, size_t len)
{
	char addr[INET6_ADDRSTRLEN + 1], *slash, *end;
	long bits;

	snprintf(addr, sizeof(addr), "%s", v->text);
	if ((slash = strchr(addr, '/')) != NULL)
		*slash++ = '\0';
	if (inet_pton(AF_INET, addr, v->bin) == 1)
		v->binlen = 4;
	else if (inet_pton(AF_INET6, addr, v->bin) == 1)
		v->binlen = 16;
	else {
		snprintf(why, len, "san.ip: %s is not an IP address or CIDR",
		    v->text);
		return -1;
	}
	bits = (long)v->binlen * 8;
	if (slash != NULL &&
	    (!isdigit((unsigned char)*slash) ||
		(bits = strtol(slash, &end, 10), *end != '\0') ||
		bits > (long)v->binlen * 8)) {
		snprintf(why, len, "san.ip: %s: bad prefix length (0-%zu)",
		    v->text, v->binlen * 8);
		return -1;
	}
	v->bits = (int)bits;
	return 0;
}

/* Hex with optional colons (AB:CD or abcd) into its digits alone. */
int
pv_hex_digits(const char *s, char *out, size_t outlen)
{
	size_t n = 0;

	for (; *s != '\0'; s++) {
		if (*s == ':')
			continue;
		if (!isxdigit((unsigned char)*s) || n + 1 >= outlen)
			return -1;
		out[n++] = *s;
	}
	out[n] = '\0';
	return n > 0 ? 0 : -1;
}

int
pv_parse_serial(struct pv *v, char *why, size_t len)
{
	char hex[256];

	if (pv_hex_digits(v->text, hex, sizeof(hex)) < 0 ||
	    BN_hex2bn(&v->bn, hex) == 0) {
		snprintf(why, len, "serial: %s is not a hex number", v->text);
		return -1;
	}
	return 0;
}

/* A SHA-256 pin: 64 hex digits (colons allowed) or 44 base64 characters. */
int
pv_parse_spki(struct pv *v, char *why, size_t len)
{
	unsigned char raw[48];
	char hex[80];
	size_t i, n = strlen(v->text);

	if (pv_hex_digits(v->text, hex, sizeof(hex)) == 0 &&
	    strlen(hex) == 64) {
		for (i = 0; i < 32; i++)
			v->bin[i] =
			    (unsigned char)strtoul((char[3]){ hex[2 * i],
						       hex[2 * i + 1], 0 },
				NULL, 16);
		v->binlen = 32;
		return 0;
	}
	/* 32 bytes in base64: 43 characters and one '='. */
	if (n == 44 && v->text[43] == '=' && v->text[42] != '=' &&
	    EVP_DecodeBlock(raw, (const unsigned char *)v->text, 44) == 33) {
		memcpy(v->bin, raw, 32);
		v->binlen = 32;
		return 0;
	}
	snprintf(why, len,
	    "spki.sha256: %s is not a SHA-256 pin (64 hex digits or 44 "
	    "base64 characters)",
	    v->text);
	return -1;
}

/* Extended key usages by name, as openssl x509 -text shows them. */
static const char *const ekus[] = { "serverAuth", "clientAuth", "codeSigning",
	"emailProtection", "timeStamping", "OCSPSigning" };

int
pv_parse_eku(struct pv *v, char *why, size_t len)
{
	size_t i;

	if (is_dotted_oid(v->text))
		v->obj = OBJ_txt2obj(v->text, 1);
	for (i = 0; v->obj == NULL && i < sizeof(ekus) / sizeof(ekus[0]); i++)
		if (strcmp(v->text, ekus[i]) == 0)
			v->obj = OBJ_txt2obj(v->text, 0);
	if (v->obj == NULL) {
		snprintf(why, len,
		    "eku: unknown %s (serverAuth, clientAuth, codeSigning, "
		    "emailProtection, timeStamping, OCSPSigning or an OID)",
		    v->text);
		return -1;
	}
	return 0;
}
