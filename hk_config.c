/*
 * hk_config.c - command-line parsing for both programs. One table says
 * everything about an option: its names, which program takes it, what
 * its value may be, where it goes and its line in --help. getopt_long's
 * arrays, the checks, their errors and the help text all come from it.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ssl.h>

#include "hk_config.h"

/* A value an option may take, and what it sets. */
struct choice {
	const char *name;
	int value;
};

static const struct choice tls_versions[] = {
	{ "1.2", TLS1_2_VERSION },
	{ "1.3", TLS1_3_VERSION },
	{ NULL, 0 },
};
static const struct choice ktls_modes[] = {
	{ "auto", CONN_KTLS_AUTO },
	{ "require", CONN_KTLS_REQUIRE },
	{ "off", CONN_KTLS_OFF },
	{ NULL, 0 },
};
static const struct choice directions[] = {
	{ "up", 0 },
	{ "down", 0 },
	{ "both", 0 },
	{ NULL, 0 },
};
static const struct choice crl_checks[] = {
	{ "leaf", 0 },
	{ "chain", 1 },
	{ NULL, 0 },
};
static const struct choice revocations[] = {
	{ "hard", 0 },
	{ "soft", 1 },
	{ NULL, 0 },
};
static const struct choice on_off_inverted[] = {
	{ "on", 0 },
	{ "off", 1 },
	{ NULL, 0 },
};
static const struct choice bench_paths[] = {
	{ "sendfile", 1 },
	{ "readwrite", 0 },
	{ NULL, 0 },
};

/* What an option's value is, and the type of the field it sets. */
enum opt_kind {
	OPT_FLAG,     /* no value; int field set to 1 */
	OPT_HELP,     /* no value; the parse ends with HK_PARSE_HELP */
	OPT_VERSION,  /* no value; the parse ends with HK_PARSE_VERSION */
	OPT_STRING,   /* const char *, any text */
	OPT_PORT,     /* const char *, digits from lo to hi */
	OPT_COUNT,    /* int, digits from lo to hi */
	OPT_SECONDS,  /* int, digits from lo to hi */
	OPT_DURATION, /* int seconds, digits and one of s, m, h, d; lo to hi */
	OPT_SIZE,     /* unsigned long long, hk_parse_size() and not 0 */
	OPT_CHOICE,   /* int, the value of one of choices */
	OPT_WORD,     /* const char *, the name of one of choices */
	OPT_LIST,     /* const char *[hi + 1]: each use adds one; NULL-ended */
};

/* OPT_CHOICE writes an int; the ktls field is an enum. */
_Static_assert(sizeof(enum conn_ktls_mode) == sizeof(int),
    "--ktls is set through an int");

#define FOR_CLIENT 1
#define FOR_SERVER 2
#define FOR_BOTH   (FOR_CLIENT | FOR_SERVER)

#define F(field) offsetof(struct hk_config, field)

/*
 * One row per option, in --help order. Rows name what follows arg, so
 * that each gives only what applies to its kind.
 */
struct opt {
	const char *name;    /* --name */
	char flag;           /* -f, or 0 */
	unsigned char roles; /* FOR_CLIENT and/or FOR_SERVER */
	enum opt_kind kind;
	size_t field;                 /* F(field) of struct hk_config */
	const char *arg;              /* its value in --help; NULL: none */
	long lo, hi;                  /* numbers: the range */
	const struct choice *choices; /* OPT_CHOICE, OPT_WORD */
	const char *example;          /* OPT_SIZE: a value, for errors */
	const char *help;             /* a \n starts an indented line */
	const char *server_help;      /* the server's, if not the same */
};

static const struct opt opts[] = {
	{ "host", 'H', FOR_CLIENT, OPT_STRING, F(host), "HOST",
	    .help = "server name or address (127.0.0.1)" },
	{ "port", 'p', FOR_BOTH, OPT_PORT, F(port), "PORT", .lo = 0,
	    .hi = 65535, .help = "server port (8443)",
	    .server_help = "port to listen on (8443; 0 = any free)" },
	{ "bind", 'b', FOR_SERVER, OPT_STRING, F(bind), "ADDR",
	    .help = "address to listen on (all IPv4 and IPv6)" },
	{ "cert", 0, FOR_BOTH, OPT_STRING, F(cert), "FILE|URI",
	    .help = "client certificate (client-cert.pem)",
	    .server_help = "server certificate (server-cert.pem)" },
	{ "key", 0, FOR_BOTH, OPT_STRING, F(key), "FILE|URI",
	    .help = "client private key (client-key.pem), or\n"
		    "a store URI: handle:0x81000001 (TPM)",
	    .server_help = "server private key (server-key.pem), or\n"
			   "a store URI: handle:0x81000001 (TPM)" },
	{ "key-pass", 0, FOR_BOTH, OPT_STRING, F(key_pass), "SRC",
	    .help = "--key's passphrase: file:PATH (its first\n"
		    "line) or env:VAR; never on the command line" },
	{ "provider", 0, FOR_BOTH, OPT_LIST, F(providers), "NAME",
	    .hi = HK_MAX_PROVIDERS,
	    .help = "load this OpenSSL provider too (tpm2, ...);\n"
		    "repeatable; default stays loaded" },
	{ "propquery", 0, FOR_BOTH, OPT_STRING, F(propq), "Q",
	    .help = "OpenSSL property query for the TLS context\n"
		    "(default: what --provider needs; tpm2:\n"
		    "?provider=tpm2,tpm2.digest!=yes)" },
	{ "ca", 0, FOR_BOTH, OPT_STRING, F(ca), "FILE",
	    .help = "CA that signs the server (ca-cert.pem)",
	    .server_help = "CA that signs the clients (ca-cert.pem)" },
	{ "crl", 0, FOR_SERVER, OPT_STRING, F(crl), "PATH",
	    .help = "refuse clients revoked by the CRLs in PATH\n"
		    "(a PEM or DER file, or a directory of them)" },
	{ "crl-check", 0, FOR_SERVER, OPT_CHOICE, F(crl_check_chain), "WHAT",
	    .choices = crl_checks,
	    .help = "--crl: check the leaf (default) or the chain" },
	{ "crl-grace", 0, FOR_SERVER, OPT_DURATION, F(crl_grace), "TIME",
	    .lo = 0, .hi = 365 * 86400,
	    .help = "--crl: still use a CRL this long past its\n"
		    "nextUpdate (30s, 15m, 1h, 2d; default 0)" },
	{ "ocsp", 0, FOR_SERVER, OPT_FLAG, F(ocsp), NULL,
	    .help = "ask the OCSP responder named in each client\n"
		    "certificate (AIA) whether it is revoked" },
	{ "ocsp-url", 0, FOR_SERVER, OPT_STRING, F(ocsp_url), "URL",
	    .help = "--ocsp with this http:// responder instead" },
	{ "ocsp-timeout", 0, FOR_SERVER, OPT_DURATION, F(ocsp_timeout), "TIME",
	    .lo = 1, .hi = 300,
	    .help = "--ocsp: give up on a query after TIME (5s)" },
	{ "ocsp-nonce", 0, FOR_SERVER, OPT_FLAG, F(ocsp_nonce), NULL,
	    .help = "--ocsp: send a nonce and require it back" },
	{ "revocation", 0, FOR_SERVER, OPT_CHOICE, F(revocation_soft), "MODE",
	    .choices = revocations,
	    .help = "--crl, --ocsp: hard (default) refuses a client\n"
		    "whose issuer has no CRL, or whose OCSP status\n"
		    "is unknown or not had; soft lets it in, logged" },
	{ "ocsp-staple", 0, FOR_SERVER, OPT_STRING, F(ocsp_staple), "FILE",
	    .help = "staple this DER OCSP response for our\n"
		    "certificate (openssl ocsp -respout)" },
	{ "require-staple", 0, FOR_CLIENT, OPT_FLAG, F(require_staple), NULL,
	    .help = "refuse a server that sends no OCSP staple" },
	{ "policy", 0, FOR_SERVER, OPT_STRING, F(policy), "FILE",
	    .help = "let in only the clients FILE's rules allow,\n"
		    "for what they grant (README: Who gets in)" },
	{ "check-policy", 0, FOR_SERVER, OPT_STRING, F(check_policy), "CERT",
	    .help = "print --policy's decision on the PEM\n"
		    "certificate CERT, and exit (0 allow, 1 deny)" },
	{ "reauthorize", 0, FOR_SERVER, OPT_FLAG, F(reauthorize), NULL,
	    .help = "after a reload, check every open connection\n"
		    "against the new CRLs and policy, and end\n"
		    "those now refused (README: Rotating identities)" },
	{ "reload-quiet", 0, FOR_SERVER, OPT_COUNT, F(reload_quiet), "MS",
	    .lo = 10, .hi = 60000,
	    .help = "reload once the watched files have been\n"
		    "quiet for MS milliseconds (500)" },
	{ "tls-version", 0, FOR_BOTH, OPT_CHOICE, F(tls_version), "V",
	    .choices = tls_versions,
	    .help = "pin 1.2 or 1.3 (default: negotiate)" },
	{ "ciphers", 0, FOR_BOTH, OPT_STRING, F(ciphers), "LIST",
	    .help = "TLS 1.2 ciphers, OpenSSL syntax" },
	{ "ciphersuites", 0, FOR_BOTH, OPT_STRING, F(ciphersuites), "LIST",
	    .help = "TLS 1.3 cipher suites" },
	{ "ktls", 0, FOR_BOTH, OPT_CHOICE, F(ktls), "MODE",
	    .choices = ktls_modes, .help = "auto (default), require or off" },
	{ "message", 0, FOR_BOTH, OPT_STRING, F(message), "TEXT",
	    .help = "message to send", .server_help = "reply to send" },
	{ "get", 0, FOR_CLIENT, OPT_STRING, F(get), "PATH",
	    .help = "download PATH from a server's --root" },
	{ "output", 'o', FOR_CLIENT, OPT_STRING, F(output), "FILE",
	    .help = "where --get saves it (- = stdout; default:\n"
		    "its name here) or --send-file's echo goes" },
	{ "bench", 0, FOR_CLIENT, OPT_SIZE, F(bench), "BYTES",
	    .example = "512M",
	    .help = "stream BYTES (512M, 1G, ...) and report\n"
		    "throughput and CPU time per side" },
	{ "direction", 0, FOR_CLIENT, OPT_WORD, F(direction), "D",
	    .choices = directions,
	    .help = "--bench: down (default), up or both" },
	{ "bench-path", 0, FOR_CLIENT, OPT_CHOICE, F(bench_sendfile), "P",
	    .choices = bench_paths,
	    .help = "--bench down: the server sends with\n"
		    "sendfile (default) or readwrite" },
	{ "send-file", 0, FOR_CLIENT, OPT_STRING, F(send_file), "FILE",
	    .help = "send FILE to an --echo server and check\n"
		    "that every byte comes back" },
	{ "close-at-expiry", 0, FOR_SERVER, OPT_FLAG, F(close_at_expiry), NULL,
	    .help = "end a connection (close_notify) when its client's\n"
		    "certificate expires" },
	{ "echo", 0, FOR_SERVER, OPT_FLAG, F(echo), NULL,
	    .help = "send back everything a client sends" },
	{ "root", 0, FOR_SERVER, OPT_STRING, F(root), "DIR",
	    .help = "serve the regular files below DIR (--get)" },
	{ "audit", 0, FOR_SERVER, OPT_STRING, F(audit), "WHERE",
	    .help = "audit trail, a JSON line per event, to\n"
		    "FILE (reopened at SIGHUP), - or syslog" },
	{ "status", 0, FOR_SERVER, OPT_STRING, F(status), "ADDR",
	    .help = "Prometheus metrics over HTTP on unix:PATH\n"
		    "or a loopback 127.0.0.1:PORT, [::1]:PORT" },
	{ "zerocopy-sendfile", 0, FOR_SERVER, OPT_FLAG, F(zerocopy), NULL,
	    .help = "kTLS sendfile without a copy (files must\n"
		    "not change while being sent)" },
	{ "rx-expect-no-pad", 0, FOR_BOTH, OPT_FLAG, F(rx_expect_no_pad), NULL,
	    .help = "TLS 1.3: let kTLS RX decrypt in place" },
	{ "stats", 0, FOR_BOTH, OPT_FLAG, F(stats), NULL,
	    .help = "show kernel and NIC TLS counter changes" },
	{ "timeout", 0, FOR_CLIENT, OPT_SECONDS, F(timeout), "SECS", .lo = 1,
	    .hi = 86400, .help = "give up on a silent server (10)" },
	{ "once", 0, FOR_SERVER, OPT_FLAG, F(once), NULL,
	    .help = "serve one client, then exit" },
	{ "session-tickets", 0, FOR_SERVER, OPT_CHOICE, F(no_tickets), "on|off",
	    .choices = on_off_inverted,
	    .help = "on (default): one ticket per full handshake,\n"
		    "clients resume with it; off: no tickets, no\n"
		    "resumption, every connection a full handshake" },
	{ "quiet", 'q', FOR_SERVER, OPT_FLAG, F(quiet), NULL,
	    .help = "one line per client, when it leaves (who,\n"
		    "protocol, kTLS, bytes, how it ended), not its\n"
		    "progress; warnings and errors as always" },
	{ "handshake-timeout", 0, FOR_SERVER, OPT_SECONDS, F(handshake_timeout),
	    "S", .lo = 1, .hi = 86400,
	    .help = "drop a client whose handshake takes\n"
		    "longer than S seconds (10)" },
	{ "idle-timeout", 0, FOR_SERVER, OPT_SECONDS, F(idle_timeout), "S",
	    .lo = 1, .hi = 86400,
	    .help = "drop a client silent this long after (60)" },
	{ "max-connections", 0, FOR_SERVER, OPT_COUNT, F(max_connections), "N",
	    .lo = 1, .hi = 1000000,
	    .help = "refuse clients beyond N at once (1024)" },
	{ "grace", 0, FOR_SERVER, OPT_SECONDS, F(grace), "S", .lo = 0,
	    .hi = 86400,
	    .help = "at SIGTERM/SIGINT, let clients finish\n"
		    "for S seconds (10)" },
	{ "key-update-bytes", 0, FOR_BOTH, OPT_SIZE, F(key_update_bytes), "N",
	    .example = "1M",
	    .help = "TLS 1.3: new send key every N bytes (512K,\n"
		    "1M, ...; default: before the cipher's limit)" },
	{ "help", 'h', FOR_BOTH, OPT_HELP, 0, NULL, .help = "this help" },
	{ "version", 0, FOR_BOTH, OPT_VERSION, 0, NULL,
	    .help = "print the version" },
};
#define NOPTS (sizeof(opts) / sizeof(opts[0]))

/* getopt_long returns OPT_ID + i for --opts[i], the letter for a short one. */
#define OPT_ID 256

/* Where the help text of every option starts. */
#define HELP_COLUMN 27

static int
role_mask(enum hk_role role)
{
	return role == HK_SERVER ? FOR_SERVER : FOR_CLIENT;
}

const char *
hk_ktls_mode_name(enum conn_ktls_mode m)
{
	const struct choice *ch;

	for (ch = ktls_modes; ch->name != NULL; ch++)
		if (ch->value == (int)m)
			return ch->name;
	return "auto";
}

/* len after appending what snprintf said it wrote (n) to buf[size]. */
static size_t
appended(size_t len, int n, size_t size)
{
	if (n < 0 || (size_t)n >= size - len)
		return size - 1;
	return len + (size_t)n;
}

/*
 * The --help lines of one option. An option too wide for its column is
 * set off from its text by two spaces, not one.
 */
static size_t
usage_option(const struct opt *o, enum hk_role role, char *buf, size_t len,
    size_t size)
{
	char flag[4] = "   ", left[64];
	const char *h, *nl, *lead = left;
	int n, pad;

	if (o->flag != 0)
		snprintf(flag, sizeof(flag), "-%c,", o->flag);
	n = snprintf(left, sizeof(left), "  %s --%s%s%s", flag, o->name,
	    o->arg != NULL ? " " : "", o->arg != NULL ? o->arg : "");
	pad = n < HELP_COLUMN ? HELP_COLUMN - n : 2;
	h = role == HK_SERVER && o->server_help != NULL ? o->server_help :
							  o->help;
	for (;; h = nl + 1) {
		nl = strchr(h, '\n');
		n = nl != NULL ? (int)(nl - h) : (int)strlen(h);
		len = appended(len,
		    snprintf(buf + len, size - len, "%s%*s%.*s\n", lead, pad,
			"", n, h),
		    size);
		if (nl == NULL)
			return len;
		lead = "";
		pad = HELP_COLUMN;
	}
}

const char *
hk_config_usage(enum hk_role role)
{
	static char text[2][8192];
	char *buf = text[role == HK_SERVER];
	size_t i, len;

	if (buf[0] != '\0')
		return buf;
	len = appended(0,
	    snprintf(buf, sizeof(text[0]), "usage: hello_ktls_%s [options]\n",
		role == HK_SERVER ? "server" : "client"),
	    sizeof(text[0]));
	for (i = 0; i < NOPTS; i++)
		if (opts[i].roles & role_mask(role))
			len = usage_option(&opts[i], role, buf, len,
			    sizeof(text[0]));
	return buf;
}

static void
defaults(struct hk_config *c, enum hk_role role)
{
	memset(c, 0, sizeof(*c));
	c->role = role;
	c->port = "8443";
	c->ktls = CONN_KTLS_AUTO;
	c->timeout = 10;
	c->handshake_timeout = 10;
	c->idle_timeout = 60;
	c->max_connections = 1024;
	c->grace = 10;
	c->reload_quiet = 500;
	c->host = "127.0.0.1";
	c->direction = "down";
	c->bench_sendfile = 1;
	c->ca = "ca-cert.pem";
	if (role == HK_SERVER) {
		c->cert = "server-cert.pem";
		c->key = "server-key.pem";
		c->message =
		    "Hello from kTLS server! Your certificate was validated.";
	} else {
		c->cert = "client-cert.pem";
		c->key = "client-key.pem";
		c->message =
		    "Hello from kTLS client! I have a valid certificate.";
	}
}

/* A unit after a number, and what it multiplies by. */
struct unit {
	char name;
	unsigned long long times;
};

/*
 * Digits, then at most one of units (n of them): the value, or -1 if
 * malformed or past ULLONG_MAX.
 */
static int
parse_with_unit(const char *s, const struct unit *units, size_t n,
    unsigned long long *out)
{
	unsigned long long v;
	char *end;
	size_t i;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return -1;
	if (*end != '\0') {
		if (end[1] != '\0')
			return -1;
		for (i = 0; i < n && units[i].name != *end; i++)
			;
		if (i == n || v > ULLONG_MAX / units[i].times)
			return -1;
		v *= units[i].times;
	}
	*out = v;
	return 0;
}

int
hk_parse_size(const char *s, unsigned long long *out)
{
	static const struct unit units[] = {
		{ 'K', 1ULL << 10 },
		{ 'k', 1ULL << 10 },
		{ 'M', 1ULL << 20 },
		{ 'm', 1ULL << 20 },
		{ 'G', 1ULL << 30 },
		{ 'g', 1ULL << 30 },
	};

	return parse_with_unit(s, units, sizeof(units) / sizeof(units[0]), out);
}

static int
parse_number(const char *s, long lo, long hi, long *out)
{
	char *end;
	long v;

	/* Digits only: strtol would also take " 80", "+80" and "-0". */
	if (*s < '0' || *s > '9')
		return -1;
	v = strtol(s, &end, 10);
	if (*end != '\0' || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

/* "90", "90s", "15m", "1h", "2d" -> seconds in [lo, hi]; -1 if not. */
static int
parse_duration(const char *s, long lo, long hi, long *out)
{
	static const struct unit units[] = {
		{ 's', 1 },
		{ 'm', 60 },
		{ 'h', 3600 },
		{ 'd', 86400 },
	};
	unsigned long long v;

	if (parse_with_unit(s, units, sizeof(units) / sizeof(units[0]), &v) <
		0 ||
	    v < (unsigned long long)lo || v > (unsigned long long)hi)
		return -1;
	*out = (long)v;
	return 0;
}

/* OPT_LIST: arg after the others in list (room for max and a NULL). */
static int
list_add(const char **list, long max, const char *arg)
{
	long n;

	for (n = 0; n < max && list[n] != NULL; n++)
		;
	if (n == max || *arg == '\0')
		return -1;
	list[n] = arg;
	return 0;
}

/* Values checked here so that a typo is a usage error, not a late failure. */
static int
opt_set(struct hk_config *c, const struct opt *o, const char *arg)
{
	char *field = (char *)c + o->field;
	const struct choice *ch;
	unsigned long long size;
	long n;

	switch (o->kind) {
	case OPT_FLAG:
		*(int *)field = 1;
		return 0;
	case OPT_STRING:
		*(const char **)field = arg;
		return 0;
	case OPT_PORT:
	case OPT_COUNT:
	case OPT_SECONDS:
		if (parse_number(arg, o->lo, o->hi, &n) < 0)
			return -1;
		if (o->kind == OPT_PORT)
			*(const char **)field = arg;
		else
			*(int *)field = (int)n;
		return 0;
	case OPT_DURATION:
		if (parse_duration(arg, o->lo, o->hi, &n) < 0)
			return -1;
		*(int *)field = (int)n;
		return 0;
	case OPT_SIZE:
		if (hk_parse_size(arg, &size) < 0 || size == 0)
			return -1;
		*(unsigned long long *)field = size;
		return 0;
	case OPT_CHOICE:
	case OPT_WORD:
		for (ch = o->choices; ch->name != NULL; ch++) {
			if (strcmp(arg, ch->name) != 0)
				continue;
			if (o->kind == OPT_WORD)
				*(const char **)field = ch->name;
			else
				*(int *)field = ch->value;
			return 0;
		}
		return -1;
	case OPT_LIST:
		return list_add((const char **)field, o->hi, arg);
	case OPT_HELP:
	case OPT_VERSION:
		break;
	}
	return 0;
}

/* "invalid value for --port (0-65535): '80x'", from the option's row. */
static void
bad_value(const struct opt *o, const char *arg, char *err, size_t errlen)
{
	const struct choice *ch;
	const char *sep;
	char what[96];
	size_t len = 0;

	switch (o->kind) {
	case OPT_SIZE:
		snprintf(what, sizeof(what), "a size like %s", o->example);
		break;
	case OPT_DURATION:
		snprintf(what, sizeof(what),
		    "seconds, or a number and s, m, h or d; at most %ldd",
		    o->hi / 86400);
		break;
	case OPT_LIST:
		snprintf(what, sizeof(what), "a name, at most %ld times",
		    o->hi);
		break;
	case OPT_CHOICE:
	case OPT_WORD:
		for (ch = o->choices; ch->name != NULL; ch++) {
			sep = ch == o->choices ? "" :
			    ch[1].name != NULL ? ", " :
						 " or ";
			len = appended(len,
			    snprintf(what + len, sizeof(what) - len, "%s%s",
				sep, ch->name),
			    sizeof(what));
		}
		break;
	default:
		snprintf(what, sizeof(what), "%ld-%ld%s", o->lo, o->hi,
		    o->kind == OPT_SECONDS ? " seconds" : "");
	}
	snprintf(err, errlen, "invalid value for --%s (%s): '%s'", o->name,
	    what, arg);
}

/*
 * Name what getopt refused. Inside a cluster like -zq optind has not
 * moved past it (prev is where it was), and optopt is the letter; a long
 * option has no letter (optopt 0), unless it was given a value it does
 * not take (--once=1), when optopt is its id.
 */
static void
refused(char **argv, int prev, char *err, size_t errlen)
{
	const char *a = argv[optind - 1];

	if (optind == prev || (a[0] == '-' && a[1] != '-'))
		snprintf(err, errlen, "unknown option '-%c'", optopt);
	else if (optopt != 0)
		snprintf(err, errlen, "option '%.*s' takes no value",
		    (int)strcspn(a, "="), a);
	else
		snprintf(err, errlen, "unknown option '%s'", a);
}

/* getopt_long's arrays for the options of one program. */
static void
getopt_arrays(int mask, struct option *longopts, char *shortopts)
{
	size_t i, n = 0;

	/* '+': no reordering, so optind tells where getopt is (refused()). */
	*shortopts++ = '+';
	*shortopts++ = ':';
	for (i = 0; i < NOPTS; i++) {
		if (!(opts[i].roles & mask))
			continue;
		longopts[n].name = opts[i].name;
		longopts[n].has_arg =
		    opts[i].arg != NULL ? required_argument : no_argument;
		longopts[n].flag = NULL;
		longopts[n++].val = OPT_ID + (int)i;
		if (opts[i].flag == 0)
			continue;
		*shortopts++ = opts[i].flag;
		if (opts[i].arg != NULL)
			*shortopts++ = ':';
	}
	*shortopts = '\0';
	memset(&longopts[n], 0, sizeof(longopts[n]));
}

/* The row of what getopt_long returned: OPT_ID + index, or a letter. */
static const struct opt *
opt_find(int id, int mask)
{
	size_t i;

	if (id >= OPT_ID && id < OPT_ID + (int)NOPTS)
		return &opts[id - OPT_ID];
	for (i = 0; i < NOPTS; i++)
		if (opts[i].flag == id && (opts[i].roles & mask))
			return &opts[i];
	return NULL;
}

/*
 * --key-pass names where the passphrase is, never the passphrase: one
 * given on the command line is readable by every user of the machine
 * (ps, /proc/PID/cmdline) and stays in shell histories.
 */
static int
key_pass_check(const char *spec, char *err, size_t errlen)
{
	if (spec == NULL ||
	    (strncmp(spec, "file:", 5) == 0 && spec[5] != '\0') ||
	    (strncmp(spec, "env:", 4) == 0 && spec[4] != '\0'))
		return 0;
	if (strncmp(spec, "pass:", 5) == 0)
		snprintf(err, errlen,
		    "--key-pass pass:...: refused, a passphrase on the command "
		    "line is visible to every user (ps, /proc); use "
		    "file:PATH or env:VAR");
	else
		/* Not repeated: it may be the passphrase itself. */
		snprintf(err, errlen,
		    "invalid value for --key-pass: want file:PATH or env:VAR");
	return -1;
}

/* Options that need or exclude each other; -1 with err. */
static int
combinations(struct hk_config *c, char *err, size_t errlen)
{
	if ((c->send_file != NULL) + (c->get != NULL) + (c->bench > 0) > 1) {
		snprintf(err, errlen,
		    "--send-file, --get and --bench exclude "
		    "each other");
		return -1;
	}
	if (c->ocsp_url != NULL)
		c->ocsp = 1;
	if (c->crl == NULL &&
	    (c->crl_grace != 0 || c->crl_check_chain ||
		(c->revocation_soft && !c->ocsp))) {
		snprintf(err, errlen,
		    "--crl-check, --crl-grace and --revocation go with --crl "
		    "(--revocation also with --ocsp)");
		return -1;
	}
	if (!c->ocsp && (c->ocsp_nonce || c->ocsp_timeout != 0)) {
		snprintf(err, errlen,
		    "--ocsp-nonce and --ocsp-timeout go with --ocsp or "
		    "--ocsp-url");
		return -1;
	}
	if (key_pass_check(c->key_pass, err, errlen) < 0)
		return -1;
	if (c->check_policy != NULL && c->policy == NULL) {
		snprintf(err, errlen, "--check-policy goes with --policy");
		return -1;
	}
	if (c->output != NULL && c->send_file == NULL && c->get == NULL) {
		snprintf(err, errlen,
		    "--output goes with --get or --send-file");
		return -1;
	}
	return 0;
}

enum hk_parse
hk_config_parse(struct hk_config *c, enum hk_role role, int argc, char **argv,
    char *err, size_t errlen)
{
	struct option longopts[NOPTS + 1];
	char shortopts[2 + 2 * NOPTS + 1];
	const struct opt *o;
	int mask = role_mask(role), id, prev;

	defaults(c, role);
	getopt_arrays(mask, longopts, shortopts);
	opterr = 0;
	/*
	 * 0, not 1: glibc and musl then also forget where they were inside
	 * a cluster like -hH, so a second parse starts afresh.
	 */
	optind = 0;
	for (;;) {
		prev = optind > 0 ? optind : 1;
		if ((id = getopt_long(argc, argv, shortopts, longopts, NULL)) ==
		    -1)
			break;
		if (id == ':') {
			snprintf(err, errlen, "option %s needs a value",
			    argv[optind - 1]);
			return HK_PARSE_ERROR;
		}
		if (id == '?' || (o = opt_find(id, mask)) == NULL) {
			refused(argv, prev, err, errlen);
			return HK_PARSE_ERROR;
		}
		if (o->kind == OPT_HELP)
			return HK_PARSE_HELP;
		if (o->kind == OPT_VERSION)
			return HK_PARSE_VERSION;
		if (opt_set(c, o, optarg) < 0) {
			bad_value(o, optarg, err, errlen);
			return HK_PARSE_ERROR;
		}
	}
	if (optind < argc) {
		snprintf(err, errlen, "unexpected argument '%s'", argv[optind]);
		return HK_PARSE_ERROR;
	}
	if (combinations(c, err, errlen) < 0)
		return HK_PARSE_ERROR;
	return HK_PARSE_OK;
}
