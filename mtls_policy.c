/*
 * mtls_policy.c - the policy file (its format is in mtls_policy.h and
 * the README), read line by line into rules, and the decision on a
 * certificate. Everything that can be wrong with a policy is found at
 * load, with its line, so that a server never starts on a policy that
 * does not say what its author meant: a rule that can never match is an
 * error, not a silent no-op.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mtls_policy.h"
#include "mtls_policy_internal.h"

#define GRANT_ECHO  1
#define GRANT_BENCH 2

/* A line longer than this is refused, not cut. */
#define LINE_MAX_LEN 4096

struct mtls_policy_rule {
	char *name;
	int allow, line;
	struct pm *m;
	size_t nm;
	unsigned grants;
	char **prefixes; /* get:PREFIX */
	size_t nprefixes;
};

struct mtls_policy {
	struct mtls_policy_rule *rules;
	size_t nrules;
};

/* The parser's state: where it is, and the rule it is in. */
struct parse {
	const char *file;
	int line;
	struct mtls_policy *p;
	struct mtls_policy_rule *open; /* inside "allow NAME {" */
	char *err;
	size_t errlen;
};

static int fail(struct parse *ps, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* "FILE:LINE: why" into the caller's err; always -1. */
static int
fail(struct parse *ps, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	snprintf(ps->err, ps->errlen, "%s:%d: %s", ps->file, ps->line, why);
	return -1;
}

static void
rule_clear(struct mtls_policy_rule *r)
{
	size_t i, j;

	for (i = 0; i < r->nm; i++) {
		for (j = 0; j < r->m[i].nv; j++)
			pv_clear(&r->m[i].v[j]);
		free(r->m[i].v);
		free(r->m[i].name);
		ASN1_OBJECT_free(r->m[i].obj);
	}
	for (i = 0; i < r->nprefixes; i++)
		free(r->prefixes[i]);
	free(r->prefixes);
	free(r->m);
	free(r->name);
}

void
mtls_policy_free(struct mtls_policy *p)
{
	size_t i;

	if (p == NULL)
		return;
	for (i = 0; i < p->nrules; i++)
		rule_clear(&p->rules[i]);
	free(p->rules);
	free(p);
}

size_t
mtls_policy_count(const struct mtls_policy *p)
{
	return p->nrules;
}

/* *arr grown by one zeroed element of size; the new one, or NULL. */
static void *
grow(void *arr, size_t *n, size_t size)
{
	char *na = realloc(*(void **)arr, (*n + 1) * size);

	if (na == NULL)
		return NULL;
	*(void **)arr = na;
	memset(na + *n * size, 0, size);
	return na + (*n)++ * size;
}

static char *
trim(char *s)
{
	char *e = s + strlen(s);

	while (isspace((unsigned char)*s))
		s++;
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static int
good_name(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) && strchr("_.-", *s) == NULL)
			return 0;
	return 1;
}

/* "allow NAME {" or "deny NAME {". */
static int
rule_open(struct parse *ps, char *line)
{
	char *save = NULL, *verb = strtok_r(line, " \t", &save),
	     *name = strtok_r(NULL, " \t", &save),
	     *brace = strtok_r(NULL, " \t", &save),
	     *more = strtok_r(NULL, " \t", &save);
	struct mtls_policy_rule *r;
	size_t i;

	if (verb == NULL ||
	    (strcmp(verb, "allow") != 0 && strcmp(verb, "deny") != 0) ||
	    name == NULL || brace == NULL || strcmp(brace, "{") != 0 ||
	    more != NULL)
		return fail(ps, "expected 'allow NAME {' or 'deny NAME {'");
	if (!good_name(name))
		return fail(ps,
		    "bad rule name '%s' (letters, digits, '_', '.', '-')",
		    name);
	for (i = 0; i < ps->p->nrules; i++)
		if (strcmp(ps->p->rules[i].name, name) == 0)
			return fail(ps,
			    "duplicate rule name %s (first at line %d)", name,
			    ps->p->rules[i].line);
	if ((r = grow(&ps->p->rules, &ps->p->nrules, sizeof(*r))) == NULL ||
	    (r->name = strdup(name)) == NULL)
		return fail(ps, "out of memory");
	r->allow = verb[0] == 'a';
	r->line = ps->line;
	ps->open = r;
	return 0;
}

/* "get:/static/": a path below the root, made of real segments. */
static int
good_prefix(const char *s)
{
	const char *seg = s + 1, *end;
	size_t n;

	if (s[0] != '/')
		return 0;
	while (*seg != '\0') {
		end = strchr(seg, '/');
		n = end != NULL ? (size_t)(end - seg) : strlen(seg);
		if (n == 0 || (n == 1 && seg[0] == '.') ||
		    (n == 2 && seg[0] == '.' && seg[1] == '.'))
			return 0;
		if (end == NULL)
			break;
		seg = end + 1;
	}
	return 1;
}

static int
grant_one(struct parse *ps, struct mtls_policy_rule *r, const char *g)
{
	char **slot;

	if (strcmp(g, "echo") == 0)
		r->grants |= GRANT_ECHO;
	else if (strcmp(g, "bench") == 0)
		r->grants |= GRANT_BENCH;
	else if (strncmp(g, "get:", 4) == 0) {
		if (!good_prefix(g + 4))
			return fail(ps,
			    "bad grant %s: get:PREFIX wants a path from '/' "
			    "without empty, '.' or '..' segments",
			    g);
		if ((slot = grow(&r->prefixes, &r->nprefixes, sizeof(*slot))) ==
			NULL ||
		    (*slot = strdup(g + 4)) == NULL)
			return fail(ps, "out of memory");
	} else
		return fail(ps, "unknown grant '%s' (echo, bench, get:PREFIX)",
		    g);
	return 0;
}

/* "grant echo bench get:/static/". */
static int
grant_line(struct parse *ps, char *rest)
{
	struct mtls_policy_rule *r = ps->open;
	char *g, *save = NULL;
	int any = 0;

	if (!r->allow)
		return fail(ps,
		    "deny rule %s cannot grant anything (grants go on allow "
		    "rules)",
		    r->name);
	for (g = strtok_r(rest, " \t", &save); g != NULL;
	     g = strtok_r(NULL, " \t", &save)) {
		if (grant_one(ps, r, g) < 0)
			return -1;
		any = 1;
	}
	return any ? 0 : fail(ps, "grant: nothing granted");
}

/* The next value of a list: up to a comma, trimmed; NULL at the end. */
static char *
next_value(char **s)
{
	char *v = *s, *comma;

	if (v == NULL)
		return NULL;
	if ((comma = strchr(v, ',')) != NULL) {
		*comma = '\0';
		*s = comma + 1;
	} else
		*s = NULL;
	return trim(v);
}

static int
add_values(struct parse *ps, struct pm *m, char *list)
{
	char why[384], *text, *rest = list;
	struct pv *v;

	while ((text = m->kind->whole ? (rest != NULL ? trim(rest) : NULL) :
					next_value(&rest)) != NULL) {
		if (m->kind->whole)
			rest = NULL;
		if (*text == '\0')
			return fail(ps, "%s: empty value", m->name);
		if ((v = grow(&m->v, &m->nv, sizeof(*v))) == NULL ||
		    (v->text = strdup(text)) == NULL)
			return fail(ps, "out of memory");
		if (m->kind->parse != NULL &&
		    m->kind->parse(v, why, sizeof(why)) < 0)
			return fail(ps, "%s", why);
	}
	return 0;
}

/* "subject.OU = Frontend, Backend". */
static int
matcher_line(struct parse *ps, char *line)
{
	char *eq = strchr(line, '='), *name, why[384];
	const char *attr;
	const struct pm_kind *kind;
	struct pm *m;

	if (eq == NULL)
		return fail(ps,
		    "expected 'ATTRIBUTE = VALUE', 'grant ...' or '}'");
	*eq = '\0';
	name = trim(line);
	if ((kind = pm_kind_find(name, &attr)) == NULL)
		return fail(ps,
		    "unknown matcher '%s' (subject.ATTR, issuer, issuer.ATTR, "
		    "san.dns, san.uri, san.email, san.ip, serial, spki.sha256, "
		    "eku, ext.OID)",
		    name);
	if ((m = grow(&ps->open->m, &ps->open->nm, sizeof(*m))) == NULL ||
	    (m->name = strdup(name)) == NULL)
		return fail(ps, "out of memory");
	m->kind = kind;
	m->line = ps->line;
	if (attr != NULL && pm_set_attr(m, attr, why, sizeof(why)) < 0)
		return fail(ps, "%s", why);
	if (add_values(ps, m, eq + 1) < 0)
		return -1;
	return m->nv > 0 ? 0 : fail(ps, "%s: no value", name);
}

/*
 * Two lines of one rule on an attribute a certificate has once (its
 * serial, its key, its issuer) with no value in common: never true.
 */
static int
contradiction(struct parse *ps, const struct mtls_policy_rule *r)
{
	const struct pm *a, *b;
	size_t i, j, x, y;
	int common;

	for (i = 0; i < r->nm; i++)
		for (j = i + 1; j < r->nm; j++) {
			a = &r->m[i], b = &r->m[j];
			if (a->kind != b->kind || !a->kind->single)
				continue;
			common = 0;
			for (x = 0; x < a->nv; x++)
				for (y = 0; y < b->nv; y++)
					common |=
					    a->kind->same(&a->v[x], &b->v[y]);
			if (!common) {
				ps->line = b->line;
				return fail(ps,
				    "rule %s can never match: a certificate has "
				    "one %s, and these lines share no value",
				    r->name, a->name);
			}
		}
	return 0;
}

/* A line of a policy, with its comment and blanks gone. */
static int
parse_line(struct parse *ps, char *line)
{
	if (ps->open == NULL)
		return rule_open(ps, line);
	if (strcmp(line, "}") == 0) {
		if (contradiction(ps, ps->open) < 0)
			return -1;
		ps->open = NULL;
		return 0;
	}
	if (strncmp(line, "grant", 5) == 0 &&
	    (line[5] == '\0' || isspace((unsigned char)line[5])))
		return grant_line(ps, line + 5);
	return matcher_line(ps, line);
}

/* After the last line: unclosed, empty, and shadowed rules. */
static int
parse_end(struct parse *ps)
{
	struct mtls_policy *p = ps->p;
	size_t i;

	if (ps->open != NULL) {
		ps->line = ps->open->line;
		return fail(ps, "rule %s is not closed (no '}')",
		    ps->open->name);
	}
	if (p->nrules == 0)
		return fail(ps, "no rules: every client would be denied");
	for (i = 0; i + 1 < p->nrules; i++)
		if (p->rules[i].nm == 0) {
			ps->line = p->rules[i + 1].line;
			return fail(ps,
			    "rule %s can never match: rule %s (line %d) "
			    "before it has no conditions and matches every "
			    "client",
			    p->rules[i + 1].name, p->rules[i].name,
			    p->rules[i].line);
		}
	return 0;
}

struct mtls_policy *
mtls_policy_parse(const char *name, const char *text, char *err, size_t errlen)
{
	struct parse ps = { .file = name, .err = err, .errlen = errlen };
	char buf[LINE_MAX_LEN + 2], *line;
	const char *nl;
	size_t n;

	if ((ps.p = calloc(1, sizeof(*ps.p))) == NULL) {
		snprintf(err, errlen, "%s: out of memory", name);
		return NULL;
	}
	for (; *text != '\0'; text = nl != NULL ? nl + 1 : text + n) {
		ps.line++;
		nl = strchr(text, '\n');
		n = nl != NULL ? (size_t)(nl - text) : strlen(text);
		if (n > LINE_MAX_LEN || memchr(text, '\0', n) != NULL) {
			fail(&ps, "line longer than %d bytes", LINE_MAX_LEN);
			goto bad;
		}
		memcpy(buf, text, n);
		buf[n] = '\0';
		line = trim(buf);
		if (*line == '\0' || *line == '#')
			continue;
		if (parse_line(&ps, line) < 0)
			goto bad;
	}
	if (parse_end(&ps) < 0)
		goto bad;
	return ps.p;
bad:
	mtls_policy_free(ps.p);
	return NULL;
}

struct mtls_policy *
mtls_policy_load(const char *path, char *err, size_t errlen)
{
	struct mtls_policy *p = NULL;
	FILE *f = fopen(path, "re");
	char *text = NULL;
	size_t n = 0;
	long size;

	if (f == NULL) {
		snprintf(err, errlen, "--policy %s: %s", path, strerror(errno));
		return NULL;
	}
	if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 &&
	    size < 16 * 1024 * 1024 && fseek(f, 0, SEEK_SET) == 0 &&
	    (text = malloc((size_t)size + 1)) != NULL) {
		n = fread(text, 1, (size_t)size, f);
		text[n] = '\0';
	}
	if (text == NULL || ferror(f) || strlen(text) != n)
		snprintf(err, errlen, "--policy %s: cannot read it%s", path,
		    text != NULL && strlen(text) != n ? " (a NUL byte)" : "");
	else
		p = mtls_policy_parse(path, text, err, errlen);
	free(text);
	fclose(f);
	return p;
}

/* All of a rule's lines on x; the last one's name and value in why. */
static int
rule_matches(const struct mtls_policy_rule *r, X509 *x, char *why, size_t len)
{
	char hit[256];
	size_t i;

	if (r->nm == 0) {
		snprintf(why, len, "no conditions");
		return 1;
	}
	for (i = 0; i < r->nm; i++)
		if (!r->m[i].kind->match(&r->m[i], x, hit, sizeof(hit)))
			return 0;
	snprintf(why, len, "%s=%s", r->m[r->nm - 1].name, hit);
	return 1;
}

int
mtls_policy_decide(const struct mtls_policy *p, X509 *leaf,
    struct mtls_decision *d)
{
	char why[320];
	size_t i;

	memset(d, 0, sizeof(*d));
	for (i = 0; leaf != NULL && i < p->nrules; i++) {
		if (!rule_matches(&p->rules[i], leaf, why, sizeof(why)))
			continue;
		d->allow = p->rules[i].allow;
		d->rule = &p->rules[i];
		d->rule_name = p->rules[i].name;
		snprintf(d->reason, sizeof(d->reason), "%s: rule %s (%s)",
		    d->allow ? "allow" : "deny", d->rule_name, why);
		return d->allow;
	}
	snprintf(d->reason, sizeof(d->reason), "deny: %s",
	    leaf != NULL ? "no rule matched" : "no client certificate");
	return 0;
}

void
mtls_decision_grants(const struct mtls_decision *d, char *buf, size_t len)
{
	const struct mtls_policy_rule *r = d->rule;
	size_t i, n;

	if (!d->allow || r == NULL) {
		snprintf(buf, len, "none");
		return;
	}
	snprintf(buf, len, "messages%s%s",
	    r->grants & GRANT_ECHO ? ", echo" : "",
	    r->grants & GRANT_BENCH ? ", bench" : "");
	for (i = 0; i < r->nprefixes; i++) {
		n = strlen(buf);
		snprintf(buf + n, len - n, "%s%s",
		    i == 0 ? ", get below " : ", ", r->prefixes[i]);
	}
}

/*
 * "/" + path under prefix, segment-aware: get:/static/ and get:/static
 * grant static/a, not staticx. A path with '.', '..' or empty segments
 * is granted by get:/ alone (the file module decides what it names).
 */
static int
path_below(const char *prefix, const char *path)
{
	size_t n = strlen(prefix) - 1; /* without its leading '/' */
	char full[LINE_MAX_LEN + 2];

	if (strcmp(prefix, "/") == 0)
		return 1;
	snprintf(full, sizeof(full), "/%s", path);
	if (!good_prefix(full) || strncmp(prefix + 1, path, n) != 0)
		return 0;
	return prefix[n] == '/' || path[n] == '\0' || path[n] == '/';
}

int
mtls_decision_permits(const struct mtls_decision *d, enum mtls_policy_action a,
    const char *path, char *why, size_t len)
{
	const struct mtls_policy_rule *r = d->rule;
	char grants[384];
	size_t i;

	if (d->allow && r != NULL) {
		if (a == MTLS_POLICY_ECHO && (r->grants & GRANT_ECHO))
			return 1;
		if (a == MTLS_POLICY_BENCH && (r->grants & GRANT_BENCH))
			return 1;
		for (i = 0; a == MTLS_POLICY_GET && i < r->nprefixes; i++)
			if (path_below(r->prefixes[i], path))
				return 1;
	}
	mtls_decision_grants(d, grants, sizeof(grants));
	snprintf(why, len, "not allowed: rule %s grants %s only",
	    d->rule_name != NULL ? d->rule_name : "(none)",
	    strncmp(grants, "messages, ", 10) == 0 ? grants + 10 : grants);
	return 0;
}
