/*
 * mtls_store.c - our certificate and private key from OpenSSL stores:
 * providers named on the command line (a TPM's tpm2, ...), store URIs
 * such as handle:0x81000001 beside plain paths, and the passphrase of an
 * encrypted PEM key from a file or the environment. The key found is used
 * where it lives: a TPM key signs the handshake inside the TPM.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/store.h>
#include <openssl/ui.h>

#include "mtls.h"

/* Longest passphrase taken (PEM_BUFSIZE is OpenSSL's own limit). */
#define PASS_MAX 1024

/*
 * The property query a provider needs, when --propquery does not say.
 * tpm2: prefer its implementations (the TPM key's ECDSA and RSA
 * signatures live there; with the default query OpenSSL 3.0 picks the
 * default provider's, which cannot use the key: "missing private key"),
 * but not its digests, which make a TPM round trip per hash.
 */
static const struct {
	const char *provider;
	const char *propq;
} propqs[] = {
	{ "tpm2", "?provider=tpm2,tpm2.digest!=yes" },
};

const char *
mtls_store_propq(const struct mtls_options *o)
{
	const char *const *p;
	size_t i;

	if (o->propq != NULL)
		return o->propq;
	for (p = o->providers; p != NULL && *p != NULL; p++)
		for (i = 0; i < sizeof(propqs) / sizeof(propqs[0]); i++)
			if (strcmp(*p, propqs[i].provider) == 0)
				return propqs[i].propq;
	return NULL;
}

int
mtls_store_is_uri(const char *s)
{
	size_t n = 0;

	/* RFC 3986 scheme; two letters at least, so C:\ is never one. */
	if (s == NULL || !isalpha((unsigned char)s[0]))
		return 0;
	while (isalnum((unsigned char)s[n]) || s[n] == '+' || s[n] == '-' ||
	    s[n] == '.')
		n++;
	return n >= 2 && s[n] == ':';
}

int
mtls_store_providers(const char *const *names, char *err, size_t errlen)
{
	const char *const *p;
	char why[MTLS_REASON_MAX];

	if (names == NULL || *names == NULL)
		return 0;
	/*
	 * Loading one provider by name turns off the implicit default one,
	 * which still does everything the TPM does not (the certificates,
	 * the peer's signatures, the record layer's ciphers). Loaded for the
	 * life of the process: a reload's new context uses them again.
	 */
	if (OSSL_PROVIDER_load(NULL, "default") == NULL) {
		snprintf(err, errlen, "cannot load the default provider: %s",
		    mtls_err_reason(why, sizeof(why), "unknown reason"));
		return -1;
	}
	for (p = names; *p != NULL; p++) {
		if (OSSL_PROVIDER_available(NULL, *p))
			continue;
		if (OSSL_PROVIDER_load(NULL, *p) == NULL) {
			snprintf(err, errlen,
			    "--provider %s: cannot load it: %s", *p,
			    mtls_err_reason(why, sizeof(why),
				"no such provider in OpenSSL's modules "
				"directory"));
			ERR_clear_error();
			return -1;
		}
	}
	return 0;
}

/* The first line of PATH, or the value of VAR, into pass. */
static int
pass_read(const char *spec, char *pass, size_t len, char *err, size_t errlen)
{
	const char *v;
	size_t n;
	FILE *f;

	if (strncmp(spec, "env:", 4) == 0) {
		if ((v = getenv(spec + 4)) == NULL) {
			snprintf(err, errlen, "--key-pass %s: not set", spec);
			return -1;
		}
		if ((n = strlen(v)) >= len) {
			snprintf(err, errlen, "--key-pass %s: longer than %zu",
			    spec, len - 1);
			return -1;
		}
		memcpy(pass, v, n + 1);
		return 0;
	}
	if (strncmp(spec, "file:", 5) != 0) {
		snprintf(err, errlen,
		    "--key-pass %s: want file:PATH or env:VAR", spec);
		return -1;
	}
	if ((f = fopen(spec + 5, "r")) == NULL) {
		snprintf(err, errlen, "--key-pass %s: %s", spec,
		    strerror(errno));
		return -1;
	}
	/* Unbuffered: no copy of the passphrase left in a stdio buffer. */
	setvbuf(f, NULL, _IONBF, 0);
	if (fgets(pass, (int)len, f) == NULL)
		pass[0] = '\0';
	fclose(f);
	pass[strcspn(pass, "\r\n")] = '\0';
	return 0;
}

/*
 * OpenSSL asks for the passphrase through a UI method; ours answers from
 * the buffer read above and never from a terminal, so that a server
 * started without --key-pass fails instead of waiting for a prompt.
 */
static int
pass_cb(char *buf, int size, int rwflag, void *u)
{
	const char *pass = u;
	size_t n;

	(void)rwflag;
	if (pass == NULL || (n = strlen(pass)) == 0 || n >= (size_t)size)
		return -1;
	memcpy(buf, pass, n);
	return (int)n;
}

/*
 * No loaded provider (and no built-in loader) opens uri's scheme. Asked
 * of OpenSSL directly: 3.0 says "unregistered scheme" for such a URI,
 * but 3.5 hands it to the file loader, which says "No such file".
 */
static int
scheme_unknown(const char *uri, const char *propq)
{
	OSSL_STORE_LOADER *loader;
	char scheme[64];
	size_t n = strcspn(uri, ":");

	if (n == 0 || n >= sizeof(scheme) || uri[n] != ':')
		return 0;
	memcpy(scheme, uri, n);
	scheme[n] = '\0';
	if (strcasecmp(scheme, "file") == 0)
		return 0;
	ERR_set_mark();
	loader = OSSL_STORE_LOADER_fetch(NULL, scheme, propq);
	ERR_pop_to_mark();
	OSSL_STORE_LOADER_free(loader);
	return loader == NULL;
}

/* What went wrong, in words. */
static const char *
store_reason(const char *uri, const char *propq, int encrypted, int have_pass,
    char *why, size_t len)
{
	FILE *f;

	if (encrypted && !have_pass)
		return "the key is encrypted: give its passphrase with "
		       "--key-pass file:PATH or env:VAR";
	if (encrypted)
		return "wrong passphrase (or a damaged key)";
	if (!mtls_store_is_uri(uri)) {
		if ((f = fopen(uri, "r")) == NULL)
			return strerror(errno);
		fclose(f);
		return "nothing of that kind in it that OpenSSL can read "
		       "(PEM, DER; a TSS2 key file needs --provider tpm2)";
	}
	if (scheme_unknown(uri, propq))
		return "no loaded provider opens this URI scheme (--provider)";
	return mtls_err_reason(why, len, "nothing of that kind found there");
}

/* An encrypted PEM key says so in its armour. */
static int
pem_encrypted(const char *uri)
{
	char line[128];
	int found = 0;
	FILE *f;

	if (mtls_store_is_uri(uri) || (f = fopen(uri, "r")) == NULL)
		return 0;
	while (!found && fgets(line, sizeof(line), f) != NULL)
		found = strstr(line, "ENCRYPTED PRIVATE KEY") != NULL ||
		    strstr(line, "Proc-Type: 4,ENCRYPTED") != NULL;
	fclose(f);
	return found;
}

/*
 * Everything of type want in uri: the first into *first, the others
 * (a certificate's chain) into more, if given. 0, or -1 with err.
 */
static int
store_load(const char *what, const char *uri, int want, const char *propq,
    char *pass, void **first, STACK_OF(X509) * more, char *err, size_t errlen)
{
	UI_METHOD *ui = UI_UTIL_wrap_read_pem_callback(pass_cb, 0);
	OSSL_STORE_CTX *st = NULL;
	OSSL_STORE_INFO *info;
	char why[MTLS_REASON_MAX];
	int ret = -1;

	*first = NULL;
	ERR_clear_error();
	if (ui == NULL ||
	    (st = OSSL_STORE_open_ex(uri, NULL, propq, ui, pass, NULL, NULL,
		 NULL)) == NULL)
		goto out;
	/* A file holding a key and its certificate: only what we want. */
	OSSL_STORE_expect(st, want);
	while (!OSSL_STORE_eof(st)) {
		if ((info = OSSL_STORE_load(st)) == NULL) {
			/* What could not be decoded after what we want. */
			if (OSSL_STORE_error(st))
				break;
			continue;
		}
		if (OSSL_STORE_INFO_get_type(info) == want) {
			if (*first == NULL)
				*first = want == OSSL_STORE_INFO_PKEY ?
				    (void *)OSSL_STORE_INFO_get1_PKEY(info) :
				    (void *)OSSL_STORE_INFO_get1_CERT(info);
			else if (more != NULL &&
			    !sk_X509_push(more,
				OSSL_STORE_INFO_get1_CERT(info)))
				goto out;
		}
		OSSL_STORE_INFO_free(info);
		if (*first != NULL && more == NULL)
			break;
	}
	ret = *first != NULL ? 0 : -1;
out:
	if (ret < 0)
		snprintf(err, errlen, "--%s %s: %s", what, uri,
		    store_reason(uri, propq, pem_encrypted(uri), pass != NULL,
			why, sizeof(why)));
	OSSL_STORE_close(st);
	UI_destroy_method(ui);
	ERR_clear_error();
	return ret;
}

int
mtls_store_use_cert(SSL_CTX *ctx, const char *uri, const char *propq, char *err,
    size_t errlen)
{
	STACK_OF(X509) *chain = sk_X509_new_null();
	void *leaf = NULL;
	int ret = -1;

	if (chain == NULL) {
		snprintf(err, errlen, "--cert %s: out of memory", uri);
		return -1;
	}
	if (store_load("cert", uri, OSSL_STORE_INFO_CERT, propq, NULL, &leaf,
		chain, err, errlen) < 0)
		goto out;
	if (!SSL_CTX_use_certificate(ctx, leaf) ||
	    !SSL_CTX_set1_chain(ctx, chain)) {
		snprintf(err, errlen, "--cert %s: not usable for TLS", uri);
		goto out;
	}
	ret = 0;
out:
	X509_free(leaf);
	sk_X509_pop_free(chain, X509_free);
	return ret;
}

int
mtls_store_use_key(SSL_CTX *ctx, const char *uri, const char *key_pass,
    const char *propq, char *err, size_t errlen)
{
	char pass[PASS_MAX];
	void *key = NULL;
	int ret = -1;

	if (key_pass != NULL &&
	    pass_read(key_pass, pass, sizeof(pass), err, errlen) < 0)
		goto out;
	if (store_load("key", uri, OSSL_STORE_INFO_PKEY, propq,
		key_pass != NULL ? pass : NULL, &key, NULL, err, errlen) < 0)
		goto out;
	if (!SSL_CTX_use_PrivateKey(ctx, key)) {
		/* The words host_tests.sh has always checked for. */
		snprintf(err, errlen,
		    "private key %s does not match the certificate", uri);
		goto out;
	}
	ret = 0;
out:
	OPENSSL_cleanse(pass, sizeof(pass));
	EVP_PKEY_free(key);
	ERR_clear_error();
	return ret;
}
