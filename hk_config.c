/*
 * hk_config.c - command-line parsing for both programs. One table says
 * which option belongs to which program; getopt_long does the rest.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ssl.h>

#include "hk_config.h"

enum opt_id {
	OPT_PORT = 'p', OPT_HOST = 'H', OPT_BIND = 'b', OPT_HELP = 'h',
	OPT_OUTPUT = 'o', OPT_CERT = 256, OPT_KEY, OPT_CA, OPT_TLS_VERSION,
	OPT_CIPHERS, OPT_CIPHERSUITES, OPT_KTLS, OPT_MESSAGE, OPT_TIMEOUT,
	OPT_SEND_FILE, OPT_ONCE, OPT_ECHO, OPT_VERSION, OPT_KEY_UPDATE_BYTES,
	OPT_GET, OPT_BENCH, OPT_DIRECTION, OPT_BENCH_PATH, OPT_ROOT,
	OPT_ZEROCOPY, OPT_NO_PAD, OPT_STATS, OPT_HS_TIMEOUT, OPT_IDLE_TIMEOUT,
	OPT_MAX_CONN, OPT_GRACE,
};

#define FOR_CLIENT 1
#define FOR_SERVER 2
#define FOR_BOTH (FOR_CLIENT | FOR_SERVER)

static const struct {
	struct option opt;
	int roles;
} table[] = {
	{ { "port", required_argument, NULL, OPT_PORT }, FOR_BOTH },
	{ { "cert", required_argument, NULL, OPT_CERT }, FOR_BOTH },
	{ { "key", required_argument, NULL, OPT_KEY }, FOR_BOTH },
	{ { "ca", required_argument, NULL, OPT_CA }, FOR_BOTH },
	{ { "tls-version", required_argument, NULL, OPT_TLS_VERSION }, FOR_BOTH },
	{ { "ciphers", required_argument, NULL, OPT_CIPHERS }, FOR_BOTH },
	{ { "ciphersuites", required_argument, NULL, OPT_CIPHERSUITES }, FOR_BOTH },
	{ { "ktls", required_argument, NULL, OPT_KTLS }, FOR_BOTH },
	{ { "message", required_argument, NULL, OPT_MESSAGE }, FOR_BOTH },
	{ { "timeout", required_argument, NULL, OPT_TIMEOUT }, FOR_CLIENT },
	{ { "handshake-timeout", required_argument, NULL, OPT_HS_TIMEOUT },
	    FOR_SERVER },
	{ { "idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT },
	    FOR_SERVER },
	{ { "max-connections", required_argument, NULL, OPT_MAX_CONN },
	    FOR_SERVER },
	{ { "grace", required_argument, NULL, OPT_GRACE }, FOR_SERVER },
	{ { "key-update-bytes", required_argument, NULL, OPT_KEY_UPDATE_BYTES },
	    FOR_BOTH },
	{ { "help", no_argument, NULL, OPT_HELP }, FOR_BOTH },
	{ { "version", no_argument, NULL, OPT_VERSION }, FOR_BOTH },
	{ { "rx-expect-no-pad", no_argument, NULL, OPT_NO_PAD }, FOR_BOTH },
	{ { "stats", no_argument, NULL, OPT_STATS }, FOR_BOTH },
	{ { "host", required_argument, NULL, OPT_HOST }, FOR_CLIENT },
	{ { "get", required_argument, NULL, OPT_GET }, FOR_CLIENT },
	{ { "bench", required_argument, NULL, OPT_BENCH }, FOR_CLIENT },
	{ { "direction", required_argument, NULL, OPT_DIRECTION }, FOR_CLIENT },
	{ { "bench-path", required_argument, NULL, OPT_BENCH_PATH }, FOR_CLIENT },
	{ { "root", required_argument, NULL, OPT_ROOT }, FOR_SERVER },
	{ { "zerocopy-sendfile", no_argument, NULL, OPT_ZEROCOPY }, FOR_SERVER },
	{ { "send-file", required_argument, NULL, OPT_SEND_FILE }, FOR_CLIENT },
	{ { "output", required_argument, NULL, OPT_OUTPUT }, FOR_CLIENT },
	{ { "bind", required_argument, NULL, OPT_BIND }, FOR_SERVER },
	{ { "once", no_argument, NULL, OPT_ONCE }, FOR_SERVER },
	{ { "echo", no_argument, NULL, OPT_ECHO }, FOR_SERVER },
};
#define NOPTS (sizeof(table) / sizeof(table[0]))

static const char client_usage[] =
    "usage: hello_ktls_client [options]\n"
    "  -H, --host HOST          server name or address (127.0.0.1)\n"
    "  -p, --port PORT          server port (8443)\n"
    "      --cert FILE          client certificate (client-cert.pem)\n"
    "      --key FILE           client private key (client-key.pem)\n"
    "      --ca FILE            CA that signs the server (ca-cert.pem)\n"
    "      --tls-version V      pin 1.2 or 1.3 (default: negotiate)\n"
    "      --ciphers LIST       TLS 1.2 ciphers, OpenSSL syntax\n"
    "      --ciphersuites LIST  TLS 1.3 cipher suites\n"
    "      --ktls MODE          auto (default), require or off\n"
    "      --message TEXT       message to send\n"
    "      --get PATH           download PATH from a server's --root\n"
    "  -o, --output FILE        where --get saves it (- = stdout; default:\n"
    "                           its name here) or --send-file's echo goes\n"
    "      --bench BYTES        stream BYTES (512M, 1G, ...) and report\n"
    "                           throughput and CPU time per side\n"
    "      --direction D        --bench: down (default), up or both\n"
    "      --bench-path P       --bench down: the server sends with\n"
    "                           sendfile (default) or readwrite\n"
    "      --send-file FILE     send FILE to an --echo server and check\n"
    "                           that every byte comes back\n"
    "      --rx-expect-no-pad   TLS 1.3: let kTLS RX decrypt in place\n"
    "      --stats              show kernel and NIC TLS counter changes\n"
    "      --timeout SECS       give up on a silent server (10)\n"
    "      --key-update-bytes N TLS 1.3: new send key every N bytes (512K,\n"
    "                           1M, ...; default: before the cipher's limit)\n"
    "  -h, --help               this help\n"
    "      --version            print the version\n";

static const char server_usage[] =
    "usage: hello_ktls_server [options]\n"
    "  -p, --port PORT          port to listen on (8443; 0 = any free)\n"
    "  -b, --bind ADDR          address to listen on (all IPv4 and IPv6)\n"
    "      --cert FILE          server certificate (server-cert.pem)\n"
    "      --key FILE           server private key (server-key.pem)\n"
    "      --ca FILE            CA that signs the clients (ca-cert.pem)\n"
    "      --tls-version V      pin 1.2 or 1.3 (default: negotiate)\n"
    "      --ciphers LIST       TLS 1.2 ciphers, OpenSSL syntax\n"
    "      --ciphersuites LIST  TLS 1.3 cipher suites\n"
    "      --ktls MODE          auto (default), require or off\n"
    "      --message TEXT       reply to send\n"
    "      --echo               send back everything a client sends\n"
    "      --root DIR           serve the regular files below DIR (--get)\n"
    "      --zerocopy-sendfile  kTLS sendfile without a copy (files must\n"
    "                           not change while being sent)\n"
    "      --rx-expect-no-pad   TLS 1.3: let kTLS RX decrypt in place\n"
    "      --stats              show kernel and NIC TLS counter changes\n"
    "      --once               serve one client, then exit\n"
    "      --handshake-timeout S  drop a client whose handshake takes\n"
    "                           longer than S seconds (10)\n"
    "      --idle-timeout S     drop a client silent this long after (60)\n"
    "      --max-connections N  refuse clients beyond N at once (1024)\n"
    "      --grace S            at SIGTERM/SIGINT, let clients finish\n"
    "                           for S seconds (10)\n"
    "      --key-update-bytes N TLS 1.3: new send key every N bytes (512K,\n"
    "                           1M, ...; default: before the cipher's limit)\n"
    "  -h, --help               this help\n"
    "      --version            print the version\n";

const char *
hk_config_usage(enum hk_role role)
{
	return role == HK_SERVER ? server_usage : client_usage;
}

const char *
hk_ktls_mode_name(enum hk_ktls_mode m)
{
	return m == HK_KTLS_REQUIRE ? "require" : m == HK_KTLS_OFF ? "off" :
	    "auto";
}

static void
defaults(struct hk_config *c, enum hk_role role)
{
	memset(c, 0, sizeof(*c));
	c->role = role;
	c->port = "8443";
	c->ktls = HK_KTLS_AUTO;
	c->timeout = 10;
	c->handshake_timeout = 10;
	c->idle_timeout = 60;
	c->max_connections = 1024;
	c->grace = 10;
	c->host = "127.0.0.1";
	c->direction = "down";
	c->bench_sendfile = 1;
	c->ca = "ca-cert.pem";
	if (role == HK_SERVER) {
		c->cert = "server-cert.pem";
		c->key = "server-key.pem";
		c->message = "Hello from kTLS server! Your certificate was validated.";
	} else {
		c->cert = "client-cert.pem";
		c->key = "client-key.pem";
		c->message = "Hello from kTLS client! I have a valid certificate.";
	}
}

int
hk_parse_size(const char *s, unsigned long long *out)
{
	static const char units[] = "KMG";
	unsigned long long v;
	const char *u;
	char *end;
	int shift;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return -1;
	if (*end != '\0') {
		/*
		 * memchr, not strchr: strchr also finds the NUL, which is
		 * ' ' & ~0x20, so "1 " parsed as 1T.
		 */
		if (end[1] != '\0' ||
		    (u = memchr(units, end[0] & ~0x20, sizeof(units) - 1)) == NULL)
			return -1;
		shift = 10 * (int)(u - units + 1);
		if (v > (ULLONG_MAX >> shift))
			return -1;
		v <<= shift;
	}
	*out = v;
	return 0;
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

/* Values checked here so that a typo is a usage error, not a late failure. */
static int
set_value(struct hk_config *c, int id, const char *arg, char *err,
    size_t errlen)
{
	long n;

	switch (id) {
	case OPT_PORT:
		if (parse_number(arg, 0, 65535, &n) < 0)
			goto bad;
		c->port = arg;
		return 0;
	case OPT_TIMEOUT:
	case OPT_HS_TIMEOUT:
	case OPT_IDLE_TIMEOUT:
	case OPT_GRACE:
		if (parse_number(arg, id == OPT_GRACE ? 0 : 1, 86400, &n) < 0)
			goto bad;
		*(id == OPT_TIMEOUT ? &c->timeout : id == OPT_HS_TIMEOUT ?
		    &c->handshake_timeout : id == OPT_IDLE_TIMEOUT ?
		    &c->idle_timeout : &c->grace) = (int)n;
		return 0;
	case OPT_MAX_CONN:
		if (parse_number(arg, 1, 1000000, &n) < 0)
			goto bad;
		c->max_connections = (int)n;
		return 0;
	case OPT_BENCH:
		if (hk_parse_size(arg, &c->bench) < 0 || c->bench == 0)
			goto bad;
		return 0;
	case OPT_DIRECTION:
		if (strcmp(arg, "up") != 0 && strcmp(arg, "down") != 0 &&
		    strcmp(arg, "both") != 0)
			goto bad;
		c->direction = arg;
		return 0;
	case OPT_BENCH_PATH:
		if (strcmp(arg, "sendfile") != 0 && strcmp(arg, "readwrite") != 0)
			goto bad;
		c->bench_sendfile = arg[0] == 's';
		return 0;
	case OPT_KEY_UPDATE_BYTES:
		if (hk_parse_size(arg, &c->key_update_bytes) < 0 ||
		    c->key_update_bytes == 0)
			goto bad;
		return 0;
	case OPT_TLS_VERSION:
		if (strcmp(arg, "1.2") == 0)
			c->tls_version = TLS1_2_VERSION;
		else if (strcmp(arg, "1.3") == 0)
			c->tls_version = TLS1_3_VERSION;
		else
			goto bad;
		return 0;
	case OPT_KTLS:
		if (strcmp(arg, "auto") == 0)
			c->ktls = HK_KTLS_AUTO;
		else if (strcmp(arg, "require") == 0)
			c->ktls = HK_KTLS_REQUIRE;
		else if (strcmp(arg, "off") == 0)
			c->ktls = HK_KTLS_OFF;
		else
			goto bad;
		return 0;
	}
	return 1;
bad:
	snprintf(err, errlen, "invalid value for %s: '%s'",
	    id == OPT_PORT ? "--port (0-65535)" :
	    id == OPT_TIMEOUT ? "--timeout (1-86400 seconds)" :
	    id == OPT_HS_TIMEOUT ? "--handshake-timeout (1-86400 seconds)" :
	    id == OPT_IDLE_TIMEOUT ? "--idle-timeout (1-86400 seconds)" :
	    id == OPT_GRACE ? "--grace (0-86400 seconds)" :
	    id == OPT_MAX_CONN ? "--max-connections (1-1000000)" :
	    id == OPT_TLS_VERSION ? "--tls-version (1.2 or 1.3)" :
	    id == OPT_KEY_UPDATE_BYTES ? "--key-update-bytes (a size like 1M)" :
	    id == OPT_BENCH ? "--bench (a size like 512M)" :
	    id == OPT_DIRECTION ? "--direction (up, down or both)" :
	    id == OPT_BENCH_PATH ? "--bench-path (sendfile or readwrite)" :
	    "--ktls (auto, require or off)", arg);
	return -1;
}

static void
set_string(struct hk_config *c, int id, const char *arg)
{
	const char **slot[] = {
		[OPT_CERT - OPT_CERT] = &c->cert,
		[OPT_KEY - OPT_CERT] = &c->key,
		[OPT_CA - OPT_CERT] = &c->ca,
		[OPT_CIPHERS - OPT_CERT] = &c->ciphers,
		[OPT_CIPHERSUITES - OPT_CERT] = &c->ciphersuites,
		[OPT_MESSAGE - OPT_CERT] = &c->message,
		[OPT_SEND_FILE - OPT_CERT] = &c->send_file,
		[OPT_GET - OPT_CERT] = &c->get,
		[OPT_ROOT - OPT_CERT] = &c->root,
	};

	if (id == OPT_HOST)
		c->host = arg;
	else if (id == OPT_BIND)
		c->bind = arg;
	else if (id == OPT_OUTPUT)
		c->output = arg;
	else if (id >= OPT_CERT && id <= OPT_ROOT &&
	    slot[id - OPT_CERT] != NULL)
		*slot[id - OPT_CERT] = arg;
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

enum hk_parse
hk_config_parse(struct hk_config *c, enum hk_role role, int argc,
    char **argv, char *err, size_t errlen)
{
	struct option longopts[NOPTS + 1];
	/* '+': no reordering, so optind tells where getopt is (refused()). */
	const char *shortopts = role == HK_SERVER ? "+:p:b:h" : "+:p:H:o:h";
	int mask = role == HK_SERVER ? FOR_SERVER : FOR_CLIENT, id, prev;
	size_t i, n = 0;

	defaults(c, role);
	for (i = 0; i < NOPTS; i++)
		if (table[i].roles & mask)
			longopts[n++] = table[i].opt;
	memset(&longopts[n], 0, sizeof(longopts[n]));
	opterr = 0;
	/*
	 * 0, not 1: glibc and musl then also forget where they were inside
	 * a cluster like -hH, so a second parse starts afresh.
	 */
	optind = 0;
	for (;;) {
		prev = optind > 0 ? optind : 1;
		if ((id = getopt_long(argc, argv, shortopts, longopts, NULL)) == -1)
			break;
		switch (id) {
		case OPT_HELP:
			return HK_PARSE_HELP;
		case OPT_VERSION:
			return HK_PARSE_VERSION;
		case OPT_ONCE:
			c->once = 1;
			continue;
		case OPT_ECHO:
			c->echo = 1;
			continue;
		case OPT_ZEROCOPY:
			c->zerocopy = 1;
			continue;
		case OPT_NO_PAD:
			c->rx_expect_no_pad = 1;
			continue;
		case OPT_STATS:
			c->stats = 1;
			continue;
		case ':':
			snprintf(err, errlen, "option %s needs a value",
			    argv[optind - 1]);
			return HK_PARSE_ERROR;
		case '?':
			refused(argv, prev, err, errlen);
			return HK_PARSE_ERROR;
		}
		switch (set_value(c, id, optarg, err, errlen)) {
		case -1:
			return HK_PARSE_ERROR;
		case 1:
			set_string(c, id, optarg);
		}
	}
	if (optind < argc) {
		snprintf(err, errlen, "unexpected argument '%s'", argv[optind]);
		return HK_PARSE_ERROR;
	}
	if ((c->send_file != NULL) + (c->get != NULL) + (c->bench > 0) > 1) {
		snprintf(err, errlen, "--send-file, --get and --bench exclude "
		    "each other");
		return HK_PARSE_ERROR;
	}
	if (c->output != NULL && c->send_file == NULL && c->get == NULL) {
		snprintf(err, errlen, "--output goes with --get or --send-file");
		return HK_PARSE_ERROR;
	}
	return HK_PARSE_OK;
}
