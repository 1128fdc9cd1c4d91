/*
 * mtls_policy.h - who gets in: an ordered list of named allow/deny rules
 * over the verified client certificate, and what an allowed client may
 * do (mtls_policy.c). Pure over an X509: it never prints, never touches
 * a socket; the server asks it after the handshake and before kTLS.
 *
 * The format, one item a line, '#' starts a comment line:
 *
 *   allow web {
 *       subject.OU = Frontend
 *       san.uri = spiffe://example.org/ns/prod/web
 *       grant echo bench get:/static/ get:/health
 *   }
 *   deny contractors {
 *       subject.OU = Contractors
 *   }
 *
 * The lines of a rule are ANDed; the values of one line (a, b, c) are
 * ORed; a certificate attribute with several values (two OUs) matches
 * when one of them does. The first rule that matches decides; none: deny.
 */
#ifndef MTLS_POLICY_H
#define MTLS_POLICY_H

#include <stddef.h>

#include <openssl/x509.h>

struct mtls_policy;
struct mtls_policy_rule;

/* Room for a decision's reason: the rule, the matcher and its value. */
#define MTLS_POLICY_REASON_MAX 512

/* What a client asks to do beyond connecting and exchanging messages. */
enum mtls_policy_action {
	MTLS_POLICY_ECHO,  /* the server's --echo mode */
	MTLS_POLICY_BENCH, /* a --bench request */
	MTLS_POLICY_GET,   /* a --get request, of a path */
};

/* The policy's word on one certificate. */
struct mtls_decision {
	int allow;
	const struct mtls_policy_rule *rule; /* NULL: no rule matched */
	const char *rule_name;               /* NULL: no rule matched */
	/* "deny: rule contractors (subject.OU=Contractors)" */
	char reason[MTLS_POLICY_REASON_MAX];
};

/*
 * The policy in the file at path; NULL with one line in err,
 * "FILE:LINE: reason", for a syntax error, an unknown attribute, matcher
 * or grant, a bad value, a duplicate rule name or a rule that can never
 * match.
 */
struct mtls_policy *
mtls_policy_load(const char *path, char *err, size_t errlen);

/* The same from text in memory; name stands for FILE in errors. */
struct mtls_policy *
mtls_policy_parse(const char *name, const char *text, char *err, size_t errlen);

void mtls_policy_free(struct mtls_policy *p);

/* How many rules p has. */
size_t mtls_policy_count(const struct mtls_policy *p);

/*
 * Decide on leaf (the chain has been verified by the caller: a policy
 * adds conditions, it never replaces verification). Fills d; returns 1
 * to allow, 0 to deny.
 */
int mtls_policy_decide(const struct mtls_policy *p, X509 *leaf,
    struct mtls_decision *d);

/*
 * Whether an allowed client may do a; path is a --get request's path
 * (relative to the served root, as the client sends it). 1 yes; 0 no,
 * with "not allowed: rule web grants get below /static/, /health only"
 * in why.
 */
int mtls_decision_permits(const struct mtls_decision *d,
    enum mtls_policy_action a, const char *path, char *why, size_t len);

/* "messages, echo, bench, get below /static/, /health", or "none". */
void mtls_decision_grants(const struct mtls_decision *d, char *buf, size_t len);

#endif
