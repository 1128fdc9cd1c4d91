/*
 * mtls_policy_internal.h - what the policy parser (mtls_policy.c), its
 * values (mtls_policy_value.c) and matchers (mtls_policy_match.c) share.
 * Not for other modules.
 */
#ifndef MTLS_POLICY_INTERNAL_H
#define MTLS_POLICY_INTERNAL_H

#include <stddef.h>

#include <openssl/bn.h>
#include <openssl/x509.h>

/* One value of a matcher line, parsed once at load. */
struct pv {
	char *text;            /* as written */
	unsigned char bin[32]; /* spki.sha256: the digest; san.ip: the net */
	size_t binlen;         /* 32; 4 or 16 */
	int bits;              /* san.ip: the prefix length */
	BIGNUM *bn;            /* serial */
	ASN1_OBJECT *obj;      /* eku */
	int star_below;        /* san.uri "spiffe://.../" "*": below */
};

struct pm_kind;

/* One matcher line of a rule: "san.uri = a, b". */
struct pm {
	const struct pm_kind *kind;
	char *name;       /* "subject.OU", as written */
	ASN1_OBJECT *obj; /* subject.X / issuer.X attribute, ext.OID */
	struct pv *v;
	size_t nv;
	int line;
};

/* What a matcher is: how its values are read and how it matches. */
struct pm_kind {
	const char *name; /* "san.uri", or "subject" for subject.<attr> */
	int attr;         /* ATTR_NONE, ATTR_NAME or ATTR_OID */
	int single;       /* a certificate has one: two lines must agree */
	int whole;        /* the value is the rest of the line, commas too */
	/* NULL: the values are text, taken as written */
	int (*parse)(struct pv *v, char *why, size_t len);
	/* 1 and the certificate's value in hit if a value matches, else 0 */
	int (*match)(const struct pm *m, X509 *x, char *hit, size_t len);
	/* single: whether two values name the same thing */
	int (*same)(const struct pv *a, const struct pv *b);
	int gen; /* san.*: the GENERAL_NAME type (GEN_DNS, ...) it reads */
};

#define ATTR_NONE 0 /* san.dns */
#define ATTR_NAME 1 /* subject.OU, issuer.CN, or subject.2.5.4.11 */
#define ATTR_OID  2 /* ext.1.3.6.1.4.1.32473.1.1 */

/*
 * The kind a matcher name such as "subject.OU" or "san.uri" starts with;
 * *attr points to what follows its dot ("OU"), or is NULL. NULL if none.
 */
const struct pm_kind *pm_kind_find(const char *name, const char **attr);

/* Set m->obj from attr as its kind reads it; -1 with why. */
int pm_set_attr(struct pm *m, const char *attr, char *why, size_t len);

void pv_clear(struct pv *v);

/* Each matcher's values (mtls_policy_value.c): 0, or -1 with why. */
int pv_parse_dns(struct pv *v, char *why, size_t len);
int pv_parse_uri(struct pv *v, char *why, size_t len);
int pv_parse_ip(struct pv *v, char *why, size_t len);
int pv_parse_serial(struct pv *v, char *why, size_t len);
int pv_parse_spki(struct pv *v, char *why, size_t len);
int pv_parse_eku(struct pv *v, char *why, size_t len);

/* Hex with optional colons (AB:CD) into its digits alone; -1 if not hex. */
int pv_hex_digits(const char *s, char *out, size_t outlen);

#endif
