/*
 * mtls_crl.c - who gets in: client certificate revocation by CRL at the
 * server. The CRLs are checked once, at start (parse, signature by a CA
 * in --ca, dates), then handed to OpenSSL, which decides inside the
 * handshake: a revoked client gets the certificate_revoked alert before
 * any application data, so it never gets to kTLS. A verify callback
 * turns exactly two errors into a pass, and notes it: no CRL for the
 * issuer under --revocation soft, and a CRL past its nextUpdate by no
 * more than --crl-grace.
 */
#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "mtls.h"

/* What the context checks revocation with; freed with the context. */
struct revocation {
	long grace; /* seconds a CRL may be past its nextUpdate */
	int soft;   /* an issuer without a CRL passes */
	atomic_ulong passes;
	char notes[1024]; /* start-up lines, \n-separated */
};

/* One connection's verification, for the lines the program prints. */
struct verify_note {
	char refused[2 * MTLS_REASON_MAX]; /* subject and serial, and why */
	char passed[2 * MTLS_REASON_MAX];  /* why a failure was let through */
	struct mtls_revocation checked[2]; /* by CRL, by OCSP (.source) */
	X509 *leaf; /* of the refused chain, for the audit line; a reference */
};

static int ctx_index = -1, ssl_index = -1;

static void
free_data(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
    void *argp)
{
	(void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
	OPENSSL_free(ptr);
}

static void
free_note(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
    void *argp)
{
	struct verify_note *v = ptr;

	(void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
	if (v != NULL)
		X509_free(v->leaf);
	OPENSSL_free(v);
}

/* Called while the program is still one thread (mtls_ctx_new). */
static int
indexes(void)
{
	if (ctx_index < 0)
		ctx_index =
		    SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, free_data);
	if (ssl_index < 0)
		ssl_index =
		    SSL_get_ex_new_index(0, NULL, NULL, NULL, free_note);
	return ctx_index < 0 || ssl_index < 0 ? -1 : 0;
}

/* "2d 3h", "1h", "5m 2s" or "42s": the two largest units, without a 0. */
static void
duration(long s, char *buf, size_t len)
{
	static const struct {
		long secs;
		char unit;
	} units[] = { { 86400, 'd' }, { 3600, 'h' }, { 60, 'm' }, { 1, 's' } };
	size_t i = 0;
	long rest;

	while (i < 3 && s < units[i].secs)
		i++;
	rest = i < 3 ? s % units[i].secs / units[i + 1].secs : 0;
	if (rest != 0)
		snprintf(buf, len, "%ld%c %ld%c", s / units[i].secs,
		    units[i].unit, rest, units[i + 1].unit);
	else
		snprintf(buf, len, "%ld%c", s / units[i].secs, units[i].unit);
}

void
mtls_duration(long s, char *buf, size_t len)
{
	duration(s, buf, len);
}

/* Seconds from t to now (negative: t is still to come). */
static long
seconds_since(const ASN1_TIME *t)
{
	int days, secs;

	if (!ASN1_TIME_diff(&days, &secs, t, NULL))
		return 0;
	return (long)days * 86400 + secs;
}

/* The CA in store that issued and signed crl, or NULL with why in err. */
static X509 *
crl_issuer(X509_STORE *store, X509_CRL *crl, char *err, size_t errlen)
{
	STACK_OF(X509_OBJECT) *objs = X509_STORE_get0_objects(store);
	char name[256];
	X509 *ca;
	int i, named = 0;

	for (i = 0; i < sk_X509_OBJECT_num(objs); i++) {
		ca = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objs, i));
		if (ca == NULL ||
		    X509_NAME_cmp(X509_get_subject_name(ca),
			X509_CRL_get_issuer(crl)) != 0)
			continue;
		named = 1;
		if (X509_CRL_verify(crl, X509_get0_pubkey(ca)) > 0)
			return ca;
	}
	X509_NAME_oneline(X509_CRL_get_issuer(crl), name, sizeof(name));
	snprintf(err, errlen,
	    named ? "bad signature: not signed by the --ca certificate %s" :
		    "its issuer %s is not a --ca certificate",
	    name);
	return NULL;
}

/*
 * The dates of one CRL: not before its lastUpdate; past its nextUpdate
 * only within the grace, which adds a line to r->notes.
 */
static int
crl_dates(struct revocation *r, const char *file, X509_CRL *crl, char *err,
    size_t errlen)
{
	const ASN1_TIME *next = X509_CRL_get0_nextUpdate(crl);
	char ago[32], grace[32];
	size_t n = strlen(r->notes);
	long late;

	if (seconds_since(X509_CRL_get0_lastUpdate(crl)) < 0) {
		snprintf(err, errlen, "not valid yet (lastUpdate is ahead)");
		return -1;
	}
	if (next == NULL || (late = seconds_since(next)) <= 0)
		return 0;
	duration(late, ago, sizeof(ago));
	if (late > r->grace) {
		snprintf(err, errlen,
		    "expired %s ago (past its nextUpdate; --crl-grace "
		    "can allow that)",
		    ago);
		return -1;
	}
	duration(r->grace, grace, sizeof(grace));
	snprintf(r->notes + n, sizeof(r->notes) - n,
	    "--crl %s: expired %s ago, used within --crl-grace %s\n", file, ago,
	    grace);
	return 0;
}

/* The next CRL in bio, PEM or (first) DER; NULL at the end. */
static X509_CRL *
crl_read(BIO *bio, int count)
{
	X509_CRL *crl;

	if ((crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL)) != NULL)
		return crl;
	if (count > 0)
		return NULL;
	(void)BIO_reset(bio);
	return d2i_X509_CRL_bio(bio, NULL);
}

/* Every CRL in one file, checked and added to the store. */
static int
crl_file(struct revocation *r, X509_STORE *store, const char *file, char *err,
    size_t errlen)
{
	char why[MTLS_REASON_MAX] = "";
	X509_CRL *crl;
	BIO *bio;
	int count = 0, ret = -1;

	if ((bio = BIO_new_file(file, "rb")) == NULL) {
		snprintf(err, errlen, "--crl %s: %s", file, strerror(errno));
		return -1;
	}
	while ((crl = crl_read(bio, count)) != NULL) {
		count++;
		if (crl_issuer(store, crl, why, sizeof(why)) == NULL ||
		    crl_dates(r, file, crl, why, sizeof(why)) < 0 ||
		    !X509_STORE_add_crl(store, crl)) {
			if (why[0] == '\0')
				mtls_err_reason(why, sizeof(why), "cannot add");
			X509_CRL_free(crl);
			goto out;
		}
		X509_CRL_free(crl);
	}
	if (count == 0)
		snprintf(why, sizeof(why), "no CRL in it (not PEM or DER)");
	else
		ret = 0;
out:
	if (ret < 0)
		snprintf(err, errlen, "--crl %s: %s", file, why);
	BIO_free(bio);
	ERR_clear_error();
	return ret;
}

/* A file, or every regular file (not hidden) in a directory. */
static int
crl_path(struct revocation *r, X509_STORE *store, const char *path, char *err,
    size_t errlen)
{
	struct dirent **names;
	struct stat st;
	char file[4096];
	int i, n, ret = 0;

	if (stat(path, &st) < 0) {
		snprintf(err, errlen, "--crl %s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode))
		return crl_file(r, store, path, err, errlen);
	/* In name order, so that the first bad file is always the same. */
	if ((n = scandir(path, &names, NULL, alphasort)) < 0) {
		snprintf(err, errlen, "--crl %s: %s", path, strerror(errno));
		return -1;
	}
	for (i = 0; i < n; i++) {
		snprintf(file, sizeof(file), "%s/%s", path, names[i]->d_name);
		if (ret == 0 && names[i]->d_name[0] != '.' &&
		    stat(file, &st) == 0 && S_ISREG(st.st_mode))
			ret = crl_file(r, store, file, err, errlen);
		free(names[i]);
	}
	free(names);
	return ret;
}

/* "subject /CN=..., serial 0A1B..." of the certificate being verified. */
static void
cert_names(X509 *cert, char *buf, size_t len)
{
	char subject[160] = "?", *serial;

	if (cert == NULL) {
		snprintf(buf, len, "no certificate");
		return;
	}
	X509_NAME_oneline(X509_get_subject_name(cert), subject,
	    sizeof(subject));
	serial = mtls_serial_hex(cert);
	snprintf(buf, len, "subject %s, serial %s", subject,
	    serial != NULL ? serial : "?");
	OPENSSL_free(serial);
}

/*
 * The two failures that may pass, in words, or NULL: no CRL for the
 * issuer (--revocation soft), a CRL past nextUpdate within the grace.
 */
static const char *
passable(const struct revocation *r, X509_STORE_CTX *x, char *buf, size_t len)
{
	X509_CRL *crl = X509_STORE_CTX_get0_current_crl(x);
	char ago[32], name[160];
	long late;

	switch (X509_STORE_CTX_get_error(x)) {
	case X509_V_ERR_UNABLE_TO_GET_CRL:
		if (!r->soft)
			return NULL;
		snprintf(buf, len,
		    "no CRL for its issuer, let in (--revocation soft)");
		return buf;
	case X509_V_ERR_CRL_HAS_EXPIRED:
		if (crl == NULL || X509_CRL_get0_nextUpdate(crl) == NULL ||
		    (late = seconds_since(X509_CRL_get0_nextUpdate(crl))) >
			r->grace)
			return NULL;
		duration(late, ago, sizeof(ago));
		X509_NAME_oneline(X509_CRL_get_issuer(crl), name, sizeof(name));
		snprintf(buf, len,
		    "the CRL of %s expired %s ago, used (--crl-grace)", name,
		    ago);
		return buf;
	}
	return NULL;
}

static struct verify_note *
note_of(SSL *ssl)
{
	struct verify_note *v = SSL_get_ex_data(ssl, ssl_index);

	if (v == NULL && (v = OPENSSL_zalloc(sizeof(*v))) != NULL &&
	    !SSL_set_ex_data(ssl, ssl_index, v)) {
		OPENSSL_free(v);
		v = NULL;
	}
	return v;
}

/* A CRL check's record: the issuer's CRL in the store and its dates. */
static void
crl_checked(struct verify_note *v, X509_STORE_CTX *x, const char *status)
{
	struct mtls_revocation *rev = &v->checked[0];
	X509 *cert = X509_STORE_CTX_get_current_cert(x);
	X509_CRL *crl = X509_STORE_CTX_get0_current_crl(x);
	STACK_OF(X509_CRL) *crls = NULL;

	memset(rev, 0, sizeof(*rev));
	rev->source = "crl";
	rev->status = status;
	/* Between checks OpenSSL keeps no current CRL: look it up. */
	if (crl == NULL && cert != NULL &&
	    (crls = X509_STORE_CTX_get1_crls(x, X509_get_issuer_name(cert))) !=
		NULL &&
	    sk_X509_CRL_num(crls) > 0)
		crl = sk_X509_CRL_value(crls, 0);
	if (crl != NULL) {
		mtls_asn1_time(X509_CRL_get0_lastUpdate(crl), rev->this_update,
		    sizeof(rev->this_update));
		mtls_asn1_time(X509_CRL_get0_nextUpdate(crl), rev->next_update,
		    sizeof(rev->next_update));
	}
	sk_X509_CRL_pop_free(crls, X509_CRL_free);
}

/* The revocation errors, in the words of a CRL check's record. */
static const char *
crl_status(int err)
{
	switch (err) {
	case X509_V_ERR_CERT_REVOKED:
		return "revoked";
	case X509_V_ERR_UNABLE_TO_GET_CRL:
		return "unknown";
	case X509_V_ERR_CRL_HAS_EXPIRED:
		return "error";
	}
	return NULL;
}

/*
 * The leaf, once OpenSSL found its chain good: its CRL check noted, and
 * its OCSP status asked (mtls_ocsp.c) where the server checks that.
 */
static int
leaf_checks(SSL *ssl, X509_STORE_CTX *x)
{
	STACK_OF(X509) *chain = X509_STORE_CTX_get0_chain(x);
	X509 *leaf = X509_STORE_CTX_get_current_cert(x);
	int crl = (X509_VERIFY_PARAM_get_flags(X509_STORE_CTX_get0_param(x)) &
		      X509_V_FLAG_CRL_CHECK) != 0,
	    ocsp = mtls_ocsp_enabled(SSL_get_SSL_CTX(ssl)), err;
	struct mtls_revocation rev;
	struct verify_note *v;

	/* Nothing to note, no note: most servers check no revocation. */
	if (!crl && !ocsp)
		return 1;
	if ((v = note_of(ssl)) == NULL) {
		X509_STORE_CTX_set_error(x, X509_V_ERR_OUT_OF_MEM);
		return 0;
	}
	if (crl && v->checked[0].source == NULL)
		crl_checked(v, x, "good");
	if (!ocsp)
		return 1;
	err = mtls_ocsp_leaf(SSL_get_SSL_CTX(ssl), leaf,
	    sk_X509_num(chain) > 1 ? sk_X509_value(chain, 1) : NULL, chain,
	    &rev);
	mtls_revocation_note(ssl, leaf, &rev, err);
	if (err == X509_V_OK)
		return 1;
	X509_STORE_CTX_set_error(x, err);
	return 0;
}

/*
 * Runs for every certificate of the client's chain, and for every error.
 * A revoked certificate never passes here: only passable() errors do.
 */
static int
verify_cb(int ok, X509_STORE_CTX *x)
{
	SSL *ssl =
	    X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct revocation *r;
	struct verify_note *v;
	const char *status;
	char why[MTLS_REASON_MAX];

	if (ssl == NULL)
		return ok;
	if (ok)
		return X509_STORE_CTX_get_error_depth(x) == 0 ?
		    leaf_checks(ssl, x) :
		    1;
	if ((v = note_of(ssl)) == NULL)
		return 0;
	if ((status = crl_status(X509_STORE_CTX_get_error(x))) != NULL)
		crl_checked(v, x, status);
	r = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ctx_index);
	if (r != NULL && passable(r, x, why, sizeof(why)) != NULL) {
		snprintf(v->passed, sizeof(v->passed), "%s", why);
		v->checked[0].soft_pass = 1;
		atomic_fetch_add(&r->passes, 1);
		X509_STORE_CTX_set_error(x, X509_V_OK);
		return 1;
	}
	cert_names(X509_STORE_CTX_get_current_cert(x), v->refused,
	    sizeof(v->refused));
	/* The client's identity, even where an issuer of it failed. */
	X509_free(v->leaf);
	if ((v->leaf = X509_STORE_CTX_get0_cert(x)) != NULL)
		X509_up_ref(v->leaf);
	return 0;
}

/*
 * What ssl_verify_cert_chain in OpenSSL does for a full handshake: the
 * same store (a verify store if one was set), security level, purpose,
 * parameters and callback. So a client let in by --revocation soft or
 * --crl-grace in a full handshake resumes under the same rule, and one
 * it would refuse does not resume. Only the chain differs: a session
 * keeps the leaf alone, so a client whose issuer is an intermediate it
 * sends fails here, and resumes by a full handshake, which has the chain.
 * A failure leaves no note: the full handshake that follows writes its
 * own.
 */
int
mtls_verify_leaf(SSL *ssl, X509 *leaf)
{
	return mtls_verify_leaf_error(ssl, leaf) == X509_V_OK;
}

int
mtls_verify_leaf_error(SSL *ssl, X509 *leaf)
{
	X509_STORE_CTX *x = X509_STORE_CTX_new();
	X509_STORE *store = NULL;
	X509_VERIFY_PARAM *param;
	struct verify_note *v;
	int ok = 0, err = X509_V_ERR_OUT_OF_MEM;

	ERR_set_mark();
	if (!SSL_get0_verify_cert_store(ssl, &store) || store == NULL)
		store = SSL_CTX_get_cert_store(SSL_get_SSL_CTX(ssl));
	if (x == NULL || !X509_STORE_CTX_init(x, store, leaf, NULL) ||
	    !X509_STORE_CTX_set_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx(),
		ssl))
		goto out;
	param = X509_STORE_CTX_get0_param(x);
	X509_VERIFY_PARAM_set_auth_level(param, SSL_get_security_level(ssl));
	if (!X509_STORE_CTX_set_default(x, "ssl_client") ||
	    !X509_VERIFY_PARAM_set1(param, SSL_get0_param(ssl)))
		goto out;
	if (SSL_get_verify_callback(ssl) != NULL)
		X509_STORE_CTX_set_verify_cb(x, SSL_get_verify_callback(ssl));
	ok = X509_verify_cert(x) > 0;
	err = ok ? X509_V_OK : X509_STORE_CTX_get_error(x);
	if (!ok && err == X509_V_OK)
		err = X509_V_ERR_APPLICATION_VERIFICATION;
out:
	if (!ok && ssl_index >= 0 &&
	    (v = SSL_get_ex_data(ssl, ssl_index)) != NULL) {
		X509_free(v->leaf);
		memset(v, 0, sizeof(*v));
	}
	X509_STORE_CTX_free(x);
	ERR_pop_to_mark();
	return err;
}

int
mtls_revocation_note(SSL *ssl, X509 *leaf, const struct mtls_revocation *rev,
    int err)
{
	struct verify_note *v;
	struct revocation *r;
	size_t n;

	if (ssl_index < 0 || (v = note_of(ssl)) == NULL)
		return -1;
	v->checked[1] = *rev;
	r = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ctx_index);
	if (rev->soft_pass) {
		snprintf(v->passed, sizeof(v->passed),
		    "%s, let in (--revocation soft)", rev->why);
		if (r != NULL)
			atomic_fetch_add(&r->passes, 1);
	}
	if (err == X509_V_OK)
		return 0;
	cert_names(leaf, v->refused, sizeof(v->refused));
	n = strlen(v->refused);
	snprintf(v->refused + n, sizeof(v->refused) - n, "; %s",
	    rev->why[0] != '\0' ? rev->why : "OCSP");
	return 0;
}

const struct mtls_revocation *
mtls_revocation_checked(SSL *ssl, const char *source)
{
	const struct verify_note *v;
	int i = strcmp(source, "crl") != 0;

	if (ssl_index < 0 || (v = SSL_get_ex_data(ssl, ssl_index)) == NULL)
		return NULL;
	return v->checked[i].source != NULL ? &v->checked[i] : NULL;
}

unsigned long
mtls_revocation_passes(SSL_CTX *ctx)
{
	struct revocation *r;

	if (ctx_index < 0 || (r = SSL_CTX_get_ex_data(ctx, ctx_index)) == NULL)
		return 0;
	return atomic_load(&r->passes);
}

int
mtls_crl_setup(SSL_CTX *ctx, const struct mtls_options *o, char *err,
    size_t errlen)
{
	X509_STORE *store = SSL_CTX_get_cert_store(ctx);
	struct revocation *r;

	if (indexes() < 0) {
		snprintf(err, errlen, "cannot set up certificate checks");
		return -1;
	}
	SSL_CTX_set_verify(ctx, SSL_CTX_get_verify_mode(ctx), verify_cb);
	if (o->crl == NULL && !o->ocsp)
		return 0;
	if ((r = OPENSSL_zalloc(sizeof(*r))) == NULL ||
	    !SSL_CTX_set_ex_data(ctx, ctx_index, r)) {
		OPENSSL_free(r);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	r->grace = o->crl_grace;
	r->soft = o->revocation_soft;
	if (o->crl == NULL)
		return 0;
	if (crl_path(r, store, o->crl, err, errlen) < 0)
		return -1;
	X509_STORE_set_flags(store,
	    X509_V_FLAG_CRL_CHECK |
		(o->crl_check_chain ? X509_V_FLAG_CRL_CHECK_ALL : 0));
	return 0;
}

const char *
mtls_crl_notes(SSL_CTX *ctx)
{
	const struct revocation *r;

	if (ctx_index < 0 || (r = SSL_CTX_get_ex_data(ctx, ctx_index)) == NULL)
		return "";
	return r->notes;
}

const char *
mtls_verify_passed(SSL *ssl, unsigned long *total)
{
	const struct verify_note *v;
	struct revocation *r;

	*total = 0;
	if (ctx_index < 0 || ssl_index < 0)
		return NULL;
	if ((r = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ctx_index)) != NULL)
		*total = atomic_load(&r->passes);
	v = SSL_get_ex_data(ssl, ssl_index);
	return v != NULL && v->passed[0] != '\0' ? v->passed : NULL;
}

const char *
mtls_verify_refused(SSL *ssl)
{
	const struct verify_note *v;

	if (ssl_index < 0 || (v = SSL_get_ex_data(ssl, ssl_index)) == NULL)
		return NULL;
	return v->refused[0] != '\0' ? v->refused : NULL;
}

X509 *
mtls_verify_refused_cert(SSL *ssl)
{
	const struct verify_note *v;

	if (ssl_index < 0 || (v = SSL_get_ex_data(ssl, ssl_index)) == NULL)
		return NULL;
	return v->leaf;
}
