/*
 * test_policy.c - the --policy module (mtls_policy.c) on real
 * certificates:
 *
 * - every kind of error in a policy gives "FILE:LINE: reason", at the
 *   right line, with the right reason;
 * - every matcher allows a certificate that has its value and denies one
 *   that has not, and the decision names the rule and the matcher;
 * - grants: echo, bench, get below a prefix (segment-aware).
 *
 * The certificates: client-cert.pem, other-client-cert.pem and the policy-*
 * identities of the test fixtures in HK_CERTS, and three identities made
 * here with its CA (a web workload with a SPIFFE URI, a contractor with
 * two OUs, a device with a device-ID extension, a binary extension, an
 * e-mail and IP addresses, known serials). Prints one line per failed check, then
 * "N passed, N failed".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "mtls_policy.h"
#include "unit.h"

/* One extension from openssl.cnf syntax ("URI:spiffe://..., DNS:x"). */
static int
add_ext(X509 *x, X509 *ca, const char *name, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx(&v3, ca, x, NULL, NULL, 0);
	if ((ext = X509V3_EXT_nconf(NULL, &v3, name, value)) == NULL)
		return 0;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok;
}

/* An identity: subject "/CN=a/OU=b" entries, serial, extensions. */
struct identity {
	const char *subject[8]; /* "OU", "Frontend", ... NULL */
	long serial;
	const char *ext[4][2]; /* name, openssl.cnf value */
};

static X509 *
make_cert(const struct identity *id, X509 *ca, EVP_PKEY *ca_key, EVP_PKEY *key)
{
	X509 *x = X509_new();
	X509_NAME *name = X509_NAME_new();
	int i, ok;

	ok = x != NULL && name != NULL && X509_set_version(x, 2) &&
	    ASN1_INTEGER_set(X509_get_serialNumber(x), id->serial) &&
	    X509_set_issuer_name(x, X509_get_subject_name(ca)) &&
	    X509_time_adj_ex(X509_getm_notBefore(x), 0, -60, NULL) != NULL &&
	    X509_time_adj_ex(X509_getm_notAfter(x), 1, 0, NULL) != NULL &&
	    X509_set_pubkey(x, key);
	for (i = 0; ok && id->subject[i] != NULL; i += 2)
		ok = X509_NAME_add_entry_by_txt(name, id->subject[i],
		    MBSTRING_UTF8, (const unsigned char *)id->subject[i + 1],
		    -1, -1, 0);
	ok = ok && X509_set_subject_name(x, name) &&
	    add_ext(x, ca, "extendedKeyUsage", "clientAuth");
	for (i = 0; ok && i < 4 && id->ext[i][0] != NULL; i++)
		ok = add_ext(x, ca, id->ext[i][0], id->ext[i][1]);
	X509_NAME_free(name);
	if (!ok || !X509_sign(x, ca_key, EVP_sha256())) {
		X509_free(x);
		return NULL;
	}
	return x;
}

static const struct identity web = {
	{ "OU", "Frontend", "CN", "web", NULL },
	0x1001,
	{ { "subjectAltName",
	    "URI:spiffe://example.org/ns/prod/web, DNS:web.example.org" } },
};
static const struct identity contractor = {
	{ "OU", "Contractors", "OU", "Frontend", "CN", "carol", NULL },
	0x1002,
	{ { "subjectAltName", "URI:spiffe://example.org/ns/prod/carol" } },
};
static const struct identity device = {
	{ "CN", "device", NULL },
	0x0BADC0DE,
	{ { "1.3.6.1.4.1.32473.1.1", "ASN1:UTF8String:DEV-0042" },
	    { "1.3.6.1.4.1.32473.1.2", "DER:01:02:FF" },
	    { "subjectAltName",
		"email:device@example.org, IP:10.1.2.3, IP:2001:db8::7" } },
};

/* The certificates the checks name by index. */
enum {
	CLIENT,
	OTHER,
	WEB,
	CONTRACTOR,
	DEVICE,
	NCERTS
};
static X509 *certs[NCERTS];
static const char *const cert_names[NCERTS] = { "client", "other-client", "web",
	"contractor", "device" };

/* "AB12..." of the SHA-256 of cert's SubjectPublicKeyInfo, via EVP_PKEY. */
static void
spki_hex(X509 *x, char *out)
{
	unsigned char *der = NULL, md[32];
	unsigned n = 0, i;
	int len = i2d_PUBKEY(X509_get0_pubkey(x), &der);

	EVP_Digest(der, (size_t)len, md, &n, EVP_sha256(), NULL);
	for (i = 0; i < 32; i++)
		sprintf(out + 2 * i, "%02x", md[i]);
	OPENSSL_free(der);
}

static int
setup(const char *dir)
{
	X509 *ca = unit_cert(dir, "ca-cert.pem");
	EVP_PKEY *ca_key = unit_key(dir, "ca-key.pem"),
		 *key = unit_key(dir, "client-key.pem");
	int ok;

	certs[CLIENT] = unit_cert(dir, "client-cert.pem");
	certs[OTHER] = unit_cert(dir, "other-client-cert.pem");
	if (ca != NULL && ca_key != NULL && key != NULL) {
		certs[WEB] = make_cert(&web, ca, ca_key, key);
		certs[CONTRACTOR] = make_cert(&contractor, ca, ca_key, key);
		certs[DEVICE] = make_cert(&device, ca, ca_key, key);
	}
	ok = certs[CLIENT] && certs[OTHER] && certs[WEB] && certs[CONTRACTOR] &&
	    certs[DEVICE];
	X509_free(ca);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(key);
	return ok ? 0 : -1;
}

/* A policy that must be refused, and the error it must give. */
static const struct {
	const char *text, *err;
} bad[] = {
	{ "allow a\n", "p:1: expected 'allow NAME {' or 'deny NAME {'" },
	{ "permit a {\n}\n", "p:1: expected 'allow NAME {'" },
	{ "allow a/b {\n}\n", "p:1: bad rule name 'a/b'" },
	{ "# c\nallow a {\n  subject.CN\n}\n",
	    "p:3: expected 'ATTRIBUTE = VALUE', 'grant ...' or '}'" },
	{ "allow a {\n subject.XX = y\n}\n",
	    "p:2: unknown attribute subject.XX" },
	{ "allow a {\n subjekt.CN = y\n}\n",
	    "p:2: unknown matcher 'subjekt.CN'" },
	{ "allow a {\n san.ip = 10.1.2.300\n}\n",
	    "p:2: san.ip: 10.1.2.300 is not an IP address or CIDR" },
	{ "allow a {\n san.ip = 10.0.0.0/33\n}\n",
	    "p:2: san.ip: 10.0.0.0/33: bad prefix length (0-32)" },
	{ "allow a {\n spki.sha256 = abcd\n}\n",
	    "p:2: spki.sha256: abcd is not a SHA-256 pin" },
	{ "allow a {\n ext.1.x.3 = y\n}\n", "p:2: ext.1.x.3: bad OID 1.x.3" },
	{ "allow a {\n eku = clientAuthx\n}\n",
	    "p:2: eku: unknown clientAuthx" },
	{ "allow a {\n san.dns = **.example.org\n}\n",
	    "p:2: bad glob **.example.org" },
	{ "allow a {\n serial = 12G4\n}\n", "p:2: serial: 12G4 is not a hex" },
	{ "allow a {\n subject.CN = x, \n}\n", "p:2: subject.CN: empty value" },
	{ "allow a {\n grant echo fly\n}\n", "p:2: unknown grant 'fly'" },
	{ "allow a {\n grant get:/a/../b\n}\n", "p:2: bad grant get:/a/../b" },
	{ "deny a {\n subject.CN = x\n grant echo\n}\n",
	    "p:3: deny rule a cannot grant anything" },
	{ "allow a {\n subject.CN = x\n}\n\ndeny a {\n subject.CN = y\n}\n",
	    "p:5: duplicate rule name a (first at line 1)" },
	{ "allow all {\n}\ndeny b {\n subject.CN = y\n}\n",
	    "p:3: rule b can never match: rule all (line 1) before it has no "
	    "conditions" },
	{ "allow a {\n serial = 01\n serial = 02\n}\n",
	    "p:3: rule a can never match: a certificate has one serial" },
	{ "allow a {\n spki.sha256 = "
	  "00000000000000000000000000000000"
	  "00000000000000000000000000000000\n spki.sha256 = "
	  "11111111111111111111111111111111"
	  "11111111111111111111111111111111\n}\n",
	    "p:3: rule a can never match: a certificate has one spki.sha256" },
	{ "allow a {\n subject.CN = x\n", "p:1: rule a is not closed" },
	{ "# nothing\n", "p:1: no rules" },
};

static void
test_errors(void)
{
	struct mtls_policy *p;
	char err[512];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		p = mtls_policy_parse("p", bad[i].text, err, sizeof(err));
		check(p == NULL &&
			strncmp(err, bad[i].err, strlen(bad[i].err)) == 0,
		    "policy error %zu: got '%s', want '%s...'", i, err,
		    bad[i].err);
		mtls_policy_free(p);
	}
	/* Accepted: serials that agree, a trailing unconditional rule. */
	p = mtls_policy_parse("p",
	    "allow a {\n serial = 01, 02\n serial = 0x02\n}\nallow b {\n}\n",
	    err, sizeof(err));
	check(p == NULL, "serial 0x02 is not hex for the policy: %s", err);
	mtls_policy_free(p);
	p = mtls_policy_parse("p",
	    "allow a {\n serial = 01, 02\n serial = 2\n}\ndeny rest {\n}\n",
	    err, sizeof(err));
	check(p != NULL && mtls_policy_count(p) == 2,
	    "two serial lines sharing a value, then a catch-all: %s",
	    p ? "ok" : err);
	mtls_policy_free(p);
}

/* One rule over each matcher, its decision on each certificate. */
static const struct {
	const char *matcher;
	const char *allowed; /* cert_names that match, one space-separated */
	const char *hit;     /* in the allowed reason */
} matchers[] = {
	{ "subject.CN = Test Client", "client other-client",
	    "subject.CN=Test Client" },
	{ "subject.O = TestOrg\n subject.L = SantaClara", "client other-client",
	    "subject.L=SantaClara" },
	{ "subject.OU = Frontend", "web contractor", "subject.OU=Frontend" },
	{ "subject.OU = Contractors, Interns", "contractor",
	    "subject.OU=Contractors" },
	{ "subject.2.5.4.3 = device", "device", "subject.2.5.4.3=device" },
	{ "issuer.CN = Test CA", "client web contractor device",
	    "issuer.CN=Test CA" },
	{ "issuer.O = OtherCA", "other-client", "issuer.O=OtherCA" },
	{ "san.dns = *.example.org", "web", "san.dns=web.example.org" },
	{ "san.dns = WEB.example.ORG", "web", "san.dns=web.example.org" },
	{ "san.dns = *.org", "", "" },
	{ "san.uri = spiffe://example.org/ns/prod/*", "web contractor",
	    "san.uri=spiffe://example.org/ns/prod/" },
	{ "san.uri = spiffe://example.org/ns/*/web", "web",
	    "san.uri=spiffe://example.org/ns/prod/web" },
	{ "san.uri = spiffe://example.org/ns/*", "web contractor",
	    "san.uri=spiffe://example.org/ns/prod/" },
	{ "san.uri = spiffe://example.org/ns/prod/we*", "web",
	    "san.uri=spiffe://example.org/ns/prod/web" },
	{ "san.uri = spiffe://example.org/ns/prod, spiffe://example.org/ns/*/",
	    "", "" },
	{ "san.uri = spiffe://example.org/*", "web contractor",
	    "san.uri=spiffe://example.org/ns/prod/" },
	{ "san.email = Device@Example.org", "device",
	    "san.email=device@example.org" },
	{ "san.ip = 10.1.2.3", "device", "san.ip=10.1.2.3" },
	{ "san.ip = 10.0.0.0/8", "device", "san.ip=10.1.2.3" },
	{ "san.ip = 10.1.2.128/25", "", "" },
	{ "san.ip = 2001:db8::/32", "device", "san.ip=2001:db8::7" },
	{ "serial = 0BADC0DE", "device", "serial=0BADC0DE" },
	{ "serial = 0b:ad:c0:de", "device", "serial=0b:ad:c0:de" },
	{ "eku = clientAuth", "client other-client web contractor device",
	    "eku=clientAuth" },
	{ "eku = serverAuth, 1.3.6.1.5.5.7.3.4", "", "" },
	{ "ext.1.3.6.1.4.1.32473.1.1 = DEV-0042", "device",
	    "ext.1.3.6.1.4.1.32473.1.1=DEV-0042" },
	{ "ext.1.3.6.1.4.1.32473.1.1 = DEV-0043", "", "" },
	{ "ext.1.3.6.1.4.1.32473.1.2 = 01:02:ff", "device",
	    "ext.1.3.6.1.4.1.32473.1.2=0102FF" },
};

static int
named(const char *list, const char *name)
{
	size_t n = strlen(name);
	const char *p;

	for (p = list; (p = strstr(p, name)) != NULL; p += n)
		if ((p == list || p[-1] == ' ') &&
		    (p[n] == '\0' || p[n] == ' '))
			return 1;
	return 0;
}

static void
test_one_matcher(size_t i)
{
	char text[1024], err[512], want[512];
	struct mtls_policy *p;
	struct mtls_decision d;
	int c, yes;

	snprintf(text, sizeof(text), "allow m {\n %s\n}\n",
	    matchers[i].matcher);
	if ((p = mtls_policy_parse("p", text, err, sizeof(err))) == NULL) {
		check(0, "matcher '%s': %s", matchers[i].matcher, err);
		return;
	}
	snprintf(want, sizeof(want), "allow: rule m (%s", matchers[i].hit);
	for (c = 0; c < NCERTS; c++) {
		yes = named(matchers[i].allowed, cert_names[c]);
		if (mtls_policy_decide(p, certs[c], &d) != yes ||
		    (yes && strncmp(d.reason, want, strlen(want)) != 0) ||
		    (!yes && strcmp(d.reason, "deny: no rule matched") != 0))
			check(0, "'%s' on %s: %s (want %s)",
			    matchers[i].matcher, cert_names[c], d.reason,
			    yes ? want : "deny");
		else
			check(1, "'%s' on %s", matchers[i].matcher,
			    cert_names[c]);
	}
	mtls_policy_free(p);
}

/* spki.sha256 and issuer: values computed from the certificates. */
static void
test_pins(void)
{
	char text[1024], pin[65], err[512];
	struct mtls_policy *p;
	struct mtls_decision d;
	unsigned char raw[32];
	char b64[64];
	size_t i;

	spki_hex(certs[WEB], pin);
	for (i = 0; i < 32; i++)
		raw[i] = (unsigned char)strtoul((char[3]){ pin[2 * i],
						    pin[2 * i + 1], 0 },
		    NULL, 16);
	EVP_EncodeBlock((unsigned char *)b64, raw, 32);
	snprintf(text, sizeof(text),
	    "deny pinned-hex {\n spki.sha256 = %s\n subject.CN = nobody\n}\n"
	    "allow pinned {\n spki.sha256 = %s\n}\n",
	    pin, b64);
	p = mtls_policy_parse("p", text, err, sizeof(err));
	check(p != NULL, "pins policy: %s", p ? "ok" : err);
	if (p == NULL)
		return;
	/* The test key is in every identity made here and client-cert.pem. */
	check(mtls_policy_decide(p, certs[WEB], &d) == 1 &&
		strcmp(d.rule_name, "pinned") == 0,
	    "spki.sha256 in base64 allows the pinned key: %s", d.reason);
	check(mtls_policy_decide(p, certs[CLIENT], &d) == 1,
	    "client-cert.pem has the same key: %s", d.reason);
	check(mtls_policy_decide(p, certs[OTHER], &d) == 0 &&
		strcmp(d.reason, "deny: no rule matched") == 0,
	    "other-client-cert.pem, another key: denied: %s", d.reason);
	mtls_policy_free(p);
	p = mtls_policy_parse("p",
	    "allow wrong-order {\n"
	    " issuer = C=US,ST=CA,L=SantaClara,O=TestCA,CN=Test CA\n}\n"
	    "allow ca {\n"
	    " issuer = CN=Test CA,O=TestCA,L=SantaClara,ST=CA,C=US\n}\n",
	    err, sizeof(err));
	check(p != NULL && mtls_policy_decide(p, certs[DEVICE], &d) == 1 &&
		strcmp(d.reason,
		    "allow: rule ca (issuer=CN=Test CA,O=TestCA,L=SantaClara,"
		    "ST=CA,C=US)") == 0,
	    "issuer: the whole DN in RFC 2253 order, commas and all: %s",
	    p ? d.reason : err);
	check(p != NULL && mtls_policy_decide(p, certs[OTHER], &d) == 0,
	    "issuer: another CA is denied");
	mtls_policy_free(p);
}

/* The sketch of the brief: first match wins, grants. */
static const char sketch[] =
    "# web workloads\n"
    "deny contractors {\n"
    "    subject.OU = Contractors\n"
    "}\n"
    "allow web {\n"
    "    subject.OU = Frontend\n"
    "    san.uri = spiffe://example.org/ns/prod/*\n"
    "    grant get:/static/ get:/health\n"
    "}\n"
    "allow devices {\n"
    "    ext.1.3.6.1.4.1.32473.1.1 = DEV-0042, DEV-0043\n"
    "    grant echo bench get:/\n"
    "}\n";

static void
test_sketch(X509 *web_x, X509 *contractor_x, X509 *device_x)
{
	struct mtls_policy *p;
	struct mtls_decision d;
	char err[512], why[512];

	p = mtls_policy_parse("p", sketch, err, sizeof(err));
	check(p != NULL, "the sketch parses: %s", p ? "ok" : err);
	if (p == NULL)
		return;
	mtls_policy_decide(p, contractor_x, &d);
	check(!d.allow &&
		strcmp(d.reason,
		    "deny: rule contractors (subject.OU=Contractors)") == 0,
	    "first match wins: %s", d.reason);
	mtls_decision_grants(&d, why, sizeof(why));
	check(strcmp(why, "none") == 0, "a denied client has no grants: %s",
	    why);
	mtls_policy_decide(p, web_x, &d);
	check(d.allow &&
		strcmp(d.reason,
		    "allow: rule web (san.uri=spiffe://example.org/ns/"
		    "prod/web)") == 0,
	    "web: %s", d.reason);
	check(mtls_decision_permits(&d, MTLS_POLICY_GET, "static/a.css", why,
		  sizeof(why)) &&
		mtls_decision_permits(&d, MTLS_POLICY_GET, "health", why,
		    sizeof(why)) &&
		mtls_decision_permits(&d, MTLS_POLICY_GET, "health/x", why,
		    sizeof(why)),
	    "web may get static/a.css, health, health/x");
	check(!mtls_decision_permits(&d, MTLS_POLICY_GET, "staticx/a", why,
		  sizeof(why)) &&
		strcmp(why,
		    "not allowed: rule web grants get below /static/, /health "
		    "only") == 0,
	    "web may not get staticx/a: %s", why);
	check(!mtls_decision_permits(&d, MTLS_POLICY_GET, "healthz", why,
		  sizeof(why)) &&
		!mtls_decision_permits(&d, MTLS_POLICY_GET, "static/../secret",
		    why, sizeof(why)) &&
		!mtls_decision_permits(&d, MTLS_POLICY_GET, "static//x", why,
		    sizeof(why)),
	    "web may not get healthz, static/../secret, static//x");
	check(!mtls_decision_permits(&d, MTLS_POLICY_ECHO, NULL, why,
		  sizeof(why)) &&
		!mtls_decision_permits(&d, MTLS_POLICY_BENCH, NULL, why,
		    sizeof(why)),
	    "web may not echo or bench: %s", why);
	mtls_policy_decide(p, device_x, &d);
	mtls_decision_grants(&d, why, sizeof(why));
	check(d.allow && strcmp(why, "messages, echo, bench, get below /") == 0,
	    "devices: %s; grants %s", d.reason, why);
	check(mtls_decision_permits(&d, MTLS_POLICY_ECHO, NULL, why,
		  sizeof(why)) &&
		mtls_decision_permits(&d, MTLS_POLICY_BENCH, NULL, why,
		    sizeof(why)) &&
		mtls_decision_permits(&d, MTLS_POLICY_GET, "any/thing", why,
		    sizeof(why)),
	    "devices may echo, bench and get anything");
	mtls_policy_decide(p, certs[CLIENT], &d);
	check(!d.allow && d.rule_name == NULL &&
		strcmp(d.reason, "deny: no rule matched") == 0,
	    "client-cert.pem: %s", d.reason);
	mtls_policy_free(p);
}

int
main(void)
{
	const char *dir = getenv("HK_CERTS");
	X509 *fixtures[3];
	size_t i;

	if (dir == NULL || setup(dir) < 0) {
		check(0,
		    "HK_CERTS: the test CA, client-cert.pem, "
		    "other-client-cert.pem and client-key.pem");
		return check_summary();
	}
	test_errors();
	for (i = 0; i < sizeof(matchers) / sizeof(matchers[0]); i++)
		test_one_matcher(i);
	test_pins();
	test_sketch(certs[WEB], certs[CONTRACTOR], certs[DEVICE]);
	/* The same identities as tests/make_test_certs.sh issues them. */
	fixtures[0] = unit_cert(dir, "policy-web-cert.pem");
	fixtures[1] = unit_cert(dir, "policy-contractor-cert.pem");
	fixtures[2] = unit_cert(dir, "policy-device-cert.pem");
	check(fixtures[0] && fixtures[1] && fixtures[2],
	    "HK_CERTS has policy-web, policy-contractor, policy-device");
	if (fixtures[0] && fixtures[1] && fixtures[2])
		test_sketch(fixtures[0], fixtures[1], fixtures[2]);
	for (i = 0; i < NCERTS; i++)
		X509_free(certs[i]);
	for (i = 0; i < 3; i++)
		X509_free(fixtures[i]);
	return check_summary();
}
