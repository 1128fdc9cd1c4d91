/*
 * hk_config.h - command-line settings shared by hello_ktls_server and
 * hello_ktls_client.
 */
#ifndef HK_CONFIG_H
#define HK_CONFIG_H

#include <stddef.h>

#include "conn.h"

#define HK_VERSION "1.0.0"

/* --provider may be given this many times. */
#define HK_MAX_PROVIDERS 8

enum hk_role {
	HK_CLIENT,
	HK_SERVER
};
enum hk_parse {
	HK_PARSE_OK,
	HK_PARSE_HELP,
	HK_PARSE_VERSION,
	HK_PARSE_ERROR
};

struct hk_config {
	enum hk_role role;
	const char *port;
	const char *cert, *key, *ca; /* cert, key: a path or a store URI */
	/* --provider NAME..., NULL-terminated (mtls_store.c) */
	const char *providers[HK_MAX_PROVIDERS + 1];
	const char *propq;        /* --propquery Q */
	const char *key_pass;     /* --key-pass file:PATH|env:VAR */
	int tls_version;          /* 0 = negotiate 1.2 or 1.3 */
	const char *ciphers;      /* TLS 1.2 list, OpenSSL syntax */
	const char *ciphersuites; /* TLS 1.3 list */
	enum conn_ktls_mode ktls;
	const char *message;
	int timeout; /* seconds for any single network wait */
	unsigned long long
	    key_update_bytes; /* TLS 1.3 rekey interval, 0 = default */

	int rx_expect_no_pad; /* TLS 1.3: TLS_RX_EXPECT_NO_PAD */
	int stats;            /* report tls_stat and NIC counter deltas */

	/* client */
	const char *host;
	const char *send_file, *output;
	const char *get;          /* --get PATH */
	unsigned long long bench; /* --bench BYTES */
	const char *direction;    /* up, down or both */
	int bench_sendfile;       /* server sends with sendfile (default) */

	/* server */
	const char *bind;
	const char *root; /* --root DIR */
	int once, echo, zerocopy;
	int handshake_timeout; /* whole-handshake deadline, seconds */
	int idle_timeout;      /* longest silence after it */
	int close_at_expiry;   /* end a connection at its client's notAfter */
	int max_connections;
	int no_tickets;      /* --session-tickets off */
	int quiet;           /* --quiet: one line per client */
	int grace;           /* seconds to let clients finish at shutdown */
	const char *crl;     /* --crl FILE|DIR */
	int crl_check_chain; /* --crl-check chain (else leaf) */
	int crl_grace;       /* seconds a CRL may be past its nextUpdate */
	int revocation_soft; /* --revocation soft: no CRL for an issuer passes */
	const char *audit;   /* --audit FILE, - or syslog */
	const char *status;  /* --status unix:PATH or loopback ADDR:PORT */
	const char *ocsp_staple;  /* --ocsp-staple FILE (DER OCSP response) */
	int require_staple;       /* client: --require-staple */
	const char *policy;       /* --policy FILE */
	const char *check_policy; /* --check-policy CERT */
	int ocsp;                 /* --ocsp (also set by --ocsp-url) */
	const char *ocsp_url;     /* --ocsp-url URL */
	int ocsp_timeout;         /* seconds; 0: not given (5) */
	int ocsp_nonce;           /* --ocsp-nonce */
	int reauthorize;          /* --reauthorize: re-check open clients */
	int reload_quiet;         /* ms of quiet before a reload (500) */
};

/*
 * Fill c from argv for the given role. On HK_PARSE_ERROR, err holds one
 * line naming the bad option.
 */
enum hk_parse hk_config_parse(struct hk_config *c, enum hk_role role, int argc,
    char **argv, char *err, size_t errlen);

/* The --help text for a role. */
const char *hk_config_usage(enum hk_role role);

const char *hk_ktls_mode_name(enum conn_ktls_mode m);

/* "4096", "512K", "1M", "1G" (powers of 1024) -> bytes; -1 if malformed. */
int hk_parse_size(const char *s, unsigned long long *out);

#endif
