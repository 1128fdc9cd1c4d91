/*
 * mtls_ocsp.c - who gets in: client certificate status by OCSP, asked by
 * the server inside the handshake (from the verify callback, once
 * OpenSSL found the chain good; a resumption verifies the client's leaf
 * again through the same callback, mtls.c's ticket_check).
 *
 * Answers are cached by OCSP cert id: good and revoked until their
 * nextUpdate (an hour without one), unknown and failures for FAIL_TTL
 * seconds, so that a dead responder is asked at most that often per
 * certificate. Handshakes for the same certificate share one query: the
 * first asks, the others wait for its answer. No lock is held while a
 * query is on the network, so a slow responder holds up only the
 * handshakes that need its answer.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/http.h>
#include <openssl/ocsp.h>
#include <openssl/x509v3.h>

#include "mtls.h"
#include "mtls_ocsp_cache.h"

#define CACHE_MAX    10000       /* entries; the oldest goes first */
#define FAIL_TTL     30          /* seconds an unknown or failure is kept */
#define NO_NEXT_TTL  3600        /* seconds a response without nextUpdate is */
#define SKEW         300         /* seconds of clock difference allowed */
#define MAX_AGE      (7 * 86400) /* oldest thisUpdate taken */
#define MAX_RESPONSE (100 * 1024)

struct ocsp {
	char *url; /* --ocsp-url, or NULL: the certificate's AIA */
	int timeout, nonce, soft;
	struct ocsp_cache *cache;
	atomic_ulong queries, hits, errors;
};

static int ctx_index = -1;

static void
ocsp_free(struct ocsp *o)
{
	if (o == NULL)
		return;
	ocsp_cache_free(o->cache);
	free(o->url);
	free(o);
}

static void
free_data(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
    void *argp)
{
	(void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
	ocsp_free(ptr);
}

/* --- one query --- */

/*
 * Why OSSL_HTTP_transfer failed, in words: the system's ("Connection
 * refused") where there is one, "timed out", or OpenSSL's reason.
 */
static void
http_failure(char *buf, size_t len)
{
	unsigned long e;
	const char *r;

	while ((e = ERR_get_error()) != 0) {
		if (ERR_GET_LIB(e) == ERR_LIB_SYS) {
			snprintf(buf, len, "%s", strerror(ERR_GET_REASON(e)));
			break;
		}
		r = ERR_reason_error_string(e);
		if (r != NULL && strstr(r, "timeout") != NULL) {
			snprintf(buf, len, "timed out");
			break;
		}
		if (buf[0] == '\0' && r != NULL)
			snprintf(buf, len, "%s", r);
	}
	if (buf[0] == '\0')
		snprintf(buf, len, "no answer");
	ERR_clear_error();
}

/* Milliseconds until deadline (CLOCK_MONOTONIC), at least 0. */
static int
ms_left(const struct timespec *deadline)
{
	struct timespec now;
	long long ms;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (deadline->tv_sec - now.tv_sec) * 1000LL +
	    (deadline->tv_nsec - now.tv_nsec) / 1000000;
	return ms < 0 ? 0 : ms > 3600000 ? 3600000 : (int)ms;
}

/* One address, connected by the deadline; -1 with errno. */
static int
connect_one(const struct addrinfo *ai, const struct timespec *deadline)
{
	struct pollfd p = { .events = POLLOUT };
	socklen_t len = sizeof(int);
	int fd, e = 0, n;

	fd = socket(ai->ai_family,
	    ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
	if (fd < 0)
		return -1;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		return fd;
	if (errno != EINPROGRESS)
		goto fail;
	p.fd = fd;
	while ((n = poll(&p, 1, ms_left(deadline))) < 0 && errno == EINTR)
		;
	if (n == 0)
		errno = ETIMEDOUT;
	else if (n > 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) == 0 &&
	    e == 0)
		return fd;
	else if (n > 0)
		errno = e;
fail:
	e = errno;
	close(fd);
	errno = e;
	return -1;
}

/*
 * A name lookup that may outlive its caller: getaddrinfo() has no
 * timeout of its own (resolv.conf's, times its attempts and servers, can
 * be half a minute), so it runs on a thread of its own and the caller
 * waits only until its deadline. Whichever of the two is last frees it.
 */
struct lookup {
	pthread_mutex_t lock;
	pthread_cond_t done_cv;
	int done, abandoned, rc;
	struct addrinfo *res;
	char host[256], port[16];
};

static void
lookup_free(struct lookup *l)
{
	if (l->res != NULL)
		freeaddrinfo(l->res);
	pthread_cond_destroy(&l->done_cv);
	pthread_mutex_destroy(&l->lock);
	free(l);
}

static void *
lookup_main(void *arg)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
	struct lookup *l = arg;
	int rc = getaddrinfo(l->host, l->port, &hints, &res), last;

	pthread_mutex_lock(&l->lock);
	l->rc = rc;
	l->res = rc == 0 ? res : NULL;
	l->done = 1;
	last = l->abandoned;
	pthread_cond_signal(&l->done_cv);
	pthread_mutex_unlock(&l->lock);
	if (last)
		lookup_free(l);
	return NULL;
}

static struct lookup *
lookup_new(const char *host, const char *port)
{
	struct lookup *l;

	if (strlen(host) >= sizeof(l->host) ||
	    strlen(port) >= sizeof(l->port) ||
	    (l = calloc(1, sizeof(*l))) == NULL)
		return NULL;
	memcpy(l->host, host, strlen(host) + 1);
	memcpy(l->port, port, strlen(port) + 1);
	pthread_mutex_init(&l->lock, NULL);
	ocsp_cond_init(&l->done_cv); /* resolve() waits until a deadline */
	return l;
}

/* Start l's thread, detached and with every signal blocked. */
static int
lookup_start(struct lookup *l)
{
	pthread_attr_t attr;
	sigset_t all, old;
	pthread_t tid;
	int e;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	e = pthread_create(&tid, &attr, lookup_main, l);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	return e;
}

/*
 * host:port's addresses by the deadline, or NULL with why. An address
 * literal needs no lookup; a name is looked up as above.
 */
static struct addrinfo *
resolve(const char *host, const char *port, const struct timespec *deadline,
    char *why, size_t len)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
		.ai_flags = AI_NUMERICHOST },
			*res = NULL;
	struct lookup *l;
	int rc, e = 0;

	if (getaddrinfo(host, port, &hints, &res) == 0)
		return res;
	if ((l = lookup_new(host, port)) == NULL) {
		snprintf(why, len, "cannot look up %s", host);
		return NULL;
	}
	if ((e = lookup_start(l)) != 0) {
		snprintf(why, len, "cannot look up %s: %s", host, strerror(e));
		lookup_free(l);
		return NULL;
	}
	pthread_mutex_lock(&l->lock);
	while (!l->done && e != ETIMEDOUT)
		e = pthread_cond_timedwait(&l->done_cv, &l->lock, deadline);
	if (!l->done) {
		l->abandoned = 1; /* lookup_main frees it */
		pthread_mutex_unlock(&l->lock);
		snprintf(why, len, "timed out looking up %s", host);
		return NULL;
	}
	rc = l->rc;
	res = l->res;
	l->res = NULL;
	pthread_mutex_unlock(&l->lock);
	lookup_free(l);
	if (rc != 0)
		snprintf(why, len, "%s: %s", host, gai_strerror(rc));
	return res;
}

/*
 * A non-blocking socket connected to host:port by the deadline, or -1
 * with why. Connected here, not by OpenSSL's HTTP client, which takes a
 * refused connection for a transient error and retries it until its
 * timeout: a dead responder is said as such, at once.
 */
static int
connect_by(const char *host, const char *port, const struct timespec *deadline,
    char *why, size_t len)
{
	struct addrinfo *res, *ai;
	int fd = -1;

	if ((res = resolve(host, port, deadline, why, len)) == NULL)
		return -1;
	for (ai = res; ai != NULL && fd < 0 && ms_left(deadline) > 0;
	     ai = ai->ai_next)
		fd = connect_one(ai, deadline);
	if (fd < 0)
		snprintf(why, len, "%s",
		    errno == ETIMEDOUT || errno == 0 ? "timed out" :
						       strerror(errno));
	freeaddrinfo(res);
	return fd;
}

/* The DER response to req from url, or NULL with why in a->why. */
static OCSP_RESPONSE *
post(const struct ocsp *o, const char *url, OCSP_REQUEST *req,
    struct ocsp_answer *a)
{
	char *host = NULL, *port = NULL, *path = NULL;
	BIO *out = BIO_new(BIO_s_mem()), *in = NULL, *sock = NULL;
	OCSP_RESPONSE *resp = NULL;
	struct timespec deadline;
	int tls = 0, fd;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += o->timeout;
	if (!OSSL_HTTP_parse_url(url, &tls, NULL, &host, &port, NULL, &path,
		NULL, NULL) ||
	    tls) {
		snprintf(a->why, sizeof(a->why), "not an http:// URL");
		goto out;
	}
	if (out == NULL || i2d_OCSP_REQUEST_bio(out, req) <= 0) {
		snprintf(a->why, sizeof(a->why), "out of memory");
		goto out;
	}
	if ((fd = connect_by(host, port, &deadline, a->why, sizeof(a->why))) <
	    0)
		goto out;
	if ((sock = BIO_new_socket(fd, BIO_CLOSE)) == NULL) {
		close(fd);
		snprintf(a->why, sizeof(a->why), "out of memory");
		goto out;
	}
	/*
	 * sock twice: as rbio too, so that OpenSSL does not try to connect
	 * it again. The rest of the deadline, in whole seconds, at least 1.
	 */
	in = OSSL_HTTP_transfer(NULL, host, port, path, 0, NULL, NULL, sock,
	    sock, NULL, NULL, 0, NULL, "application/ocsp-request", out,
	    "application/ocsp-response", 1, MAX_RESPONSE,
	    (ms_left(&deadline) + 999) / 1000 + (ms_left(&deadline) == 0), 0);
	if (in == NULL)
		http_failure(a->why, sizeof(a->why));
	else if ((resp = d2i_OCSP_RESPONSE_bio(in, NULL)) == NULL)
		snprintf(a->why, sizeof(a->why), "not an OCSP response");
out:
	ERR_clear_error();
	BIO_free(in);
	BIO_free(sock);
	BIO_free(out);
	OPENSSL_free(host);
	OPENSSL_free(port);
	OPENSSL_free(path);
	return resp;
}

/* The basic response, checked: status, nonce, signer. NULL with a->why. */
static OCSP_BASICRESP *
verified(const struct ocsp *o, X509_STORE *store, STACK_OF(X509) * chain,
    OCSP_REQUEST *req, OCSP_RESPONSE *resp, struct ocsp_answer *a)
{
	int rc = OCSP_response_status(resp);
	OCSP_BASICRESP *bs = NULL;
	char why[MTLS_REASON_MAX];

	if (rc != OCSP_RESPONSE_STATUS_SUCCESSFUL)
		snprintf(a->why, sizeof(a->why), "answered %s",
		    OCSP_response_status_str(rc));
	else if ((bs = OCSP_response_get1_basic(resp)) == NULL)
		snprintf(a->why, sizeof(a->why), "not a basic OCSP response");
	else if (o->nonce && OCSP_check_nonce(req, bs) != 1)
		snprintf(a->why, sizeof(a->why),
		    "the response does not carry our nonce (--ocsp-nonce)");
	else if (OCSP_basic_verify(bs, chain, store, 0) <= 0)
		snprintf(a->why, sizeof(a->why),
		    "the response does not verify: %s",
		    mtls_err_reason(why, sizeof(why), "bad signature"));
	else
		return bs;
	OCSP_BASICRESP_free(bs);
	return NULL;
}

/* The status of id in bs, its dates checked; -1 with a->why. */
static int
status_of(OCSP_BASICRESP *bs, OCSP_CERTID *id, struct ocsp_answer *a, long *ttl)
{
	ASN1_GENERALIZEDTIME *revoked, *thisupd, *nextupd;
	int status, reason, days, secs;

	if (!OCSP_resp_find_status(bs, id, &status, &reason, &revoked, &thisupd,
		&nextupd)) {
		snprintf(a->why, sizeof(a->why),
		    "the response has no status for this certificate");
		return -1;
	}
	if (!OCSP_check_validity(thisupd, nextupd, SKEW, MAX_AGE)) {
		snprintf(a->why, sizeof(a->why),
		    "the response is out of date or not valid yet");
		return -1;
	}
	mtls_asn1_time(thisupd, a->this_update, sizeof(a->this_update));
	mtls_asn1_time(nextupd, a->next_update, sizeof(a->next_update));
	*ttl = NO_NEXT_TTL;
	if (nextupd != NULL && ASN1_TIME_diff(&days, &secs, NULL, nextupd))
		*ttl = (long)days * 86400 + secs;
	if (status == V_OCSP_CERTSTATUS_REVOKED)
		snprintf(a->why, sizeof(a->why), "revoked (%s)",
		    reason >= 0 ? OCSP_crl_reason_str(reason) : "no reason");
	else if (status == V_OCSP_CERTSTATUS_UNKNOWN)
		snprintf(a->why, sizeof(a->why), "status unknown");
	return status;
}

/* What to ask about leaf. */
struct question {
	OCSP_CERTID *id;
	X509_STORE *store;
	STACK_OF(X509) * chain;
	const char *url;
};

/* Ask the responder; a->status and the seconds the answer holds. */
static long
ask(struct ocsp *o, const struct question *q, struct ocsp_answer *a)
{
	OCSP_REQUEST *req = OCSP_REQUEST_new();
	OCSP_RESPONSE *resp = NULL;
	OCSP_BASICRESP *bs = NULL;
	OCSP_CERTID *id = OCSP_CERTID_dup(q->id);
	long ttl = FAIL_TTL;

	a->status = -1;
	atomic_fetch_add(&o->queries, 1);
	if (req == NULL || id == NULL || !OCSP_request_add0_id(req, id)) {
		OCSP_CERTID_free(id);
		snprintf(a->why, sizeof(a->why), "out of memory");
		goto out;
	}
	if (o->nonce && !OCSP_request_add1_nonce(req, NULL, -1)) {
		snprintf(a->why, sizeof(a->why), "out of memory");
		goto out;
	}
	if ((resp = post(o, q->url, req, a)) == NULL ||
	    (bs = verified(o, q->store, q->chain, req, resp, a)) == NULL)
		goto out;
	a->status = status_of(bs, q->id, a, &ttl);
	if (a->status == V_OCSP_CERTSTATUS_UNKNOWN && ttl > FAIL_TTL)
		ttl = FAIL_TTL;
out:
	ERR_clear_error();
	OCSP_BASICRESP_free(bs);
	OCSP_RESPONSE_free(resp);
	OCSP_REQUEST_free(req);
	if (a->status < 0)
		atomic_fetch_add(&o->errors, 1);
	return a->status < 0 ? FAIL_TTL : ttl;
}

/* The answer for q: kept, another thread's, or asked now. */
static void
answer(struct ocsp *o, const struct question *q, const unsigned char *key,
    struct ocsp_answer *a, int *hit)
{
	long ttl;

	switch (ocsp_cache_get(o->cache, key, o->timeout + 1, a)) {
	case OCSP_CACHE_HIT:
		*hit = 1;
		return;
	case OCSP_CACHE_WAITED:
		snprintf(a->why, sizeof(a->why),
		    "timed out (waiting for another connection's query)");
		return;
	case OCSP_CACHE_ASK:
		break;
	}
	ttl = ask(o, q, a);
	ocsp_cache_put(o->cache, key, a, ttl);
}

/* --- the decision --- */

/* The responder for leaf: --ocsp-url, else the first of its AIA. */
static int
responder(const struct ocsp *o, X509 *leaf, char *buf, size_t len)
{
	STACK_OF(OPENSSL_STRING) * aia;

	if (o->url != NULL) {
		snprintf(buf, len, "%s", o->url);
		return 0;
	}
	if ((aia = X509_get1_ocsp(leaf)) == NULL ||
	    sk_OPENSSL_STRING_num(aia) == 0) {
		X509_email_free(aia);
		return -1;
	}
	snprintf(buf, len, "%s", sk_OPENSSL_STRING_value(aia, 0));
	X509_email_free(aia);
	return 0;
}

/* An answer's words and X509 error; a failure passes only when soft. */
static int
decide(const struct ocsp *o, const struct ocsp_answer *a,
    struct mtls_revocation *rev)
{
	static const struct {
		int status, err;
		const char *word;
	} outcomes[] = {
		{ V_OCSP_CERTSTATUS_GOOD, X509_V_OK, "good" },
		{ V_OCSP_CERTSTATUS_REVOKED, X509_V_ERR_CERT_REVOKED,
		    "revoked" },
		{ V_OCSP_CERTSTATUS_UNKNOWN, X509_V_ERR_OCSP_CERT_UNKNOWN,
		    "unknown" },
		{ -1, X509_V_ERR_OCSP_VERIFY_FAILED, "error" },
	};
	size_t i;

	for (i = 0; i < 3 && outcomes[i].status != a->status; i++)
		;
	rev->status = outcomes[i].word;
	snprintf(rev->this_update, sizeof(rev->this_update), "%s",
	    a->this_update);
	snprintf(rev->next_update, sizeof(rev->next_update), "%s",
	    a->next_update);
	if (a->why[0] != '\0')
		snprintf(rev->why, sizeof(rev->why),
		    "OCSP responder %.100s: %.130s",
		    rev->responder[0] ? rev->responder : "(none)", a->why);
	if (outcomes[i].err == X509_V_OK ||
	    outcomes[i].err == X509_V_ERR_CERT_REVOKED || !o->soft)
		return outcomes[i].err;
	rev->soft_pass = 1;
	return X509_V_OK;
}

int
mtls_ocsp_leaf(SSL_CTX *ctx, X509 *leaf, X509 *issuer, STACK_OF(X509) * chain,
    struct mtls_revocation *rev)
{
	struct ocsp *o;
	struct ocsp_answer a = { .status = -1 };
	struct question q = { .store = SSL_CTX_get_cert_store(ctx),
		.chain = chain,
		.url = rev->responder };
	unsigned char *der = NULL, key[32];
	unsigned keylen = 0;
	int n;

	memset(rev, 0, sizeof(*rev));
	rev->source = "ocsp";
	if (ctx_index < 0 || (o = SSL_CTX_get_ex_data(ctx, ctx_index)) == NULL)
		return X509_V_OK;
	if (responder(o, leaf, rev->responder, sizeof(rev->responder)) < 0)
		snprintf(a.why, sizeof(a.why),
		    "none: the certificate names no OCSP responder (AIA) and "
		    "there is no --ocsp-url");
	else if (issuer == NULL ||
	    (q.id = OCSP_cert_to_id(EVP_sha1(), leaf, issuer)) == NULL ||
	    (n = i2d_OCSP_CERTID(q.id, &der)) <= 0 ||
	    !EVP_Digest(der, (size_t)n, key, &keylen, EVP_sha256(), NULL))
		snprintf(a.why, sizeof(a.why),
		    "cannot ask: its issuer is not known");
	else
		answer(o, &q, key, &a, &rev->cache_hit);
	if (rev->cache_hit)
		atomic_fetch_add(&o->hits, 1);
	OPENSSL_free(der);
	OCSP_CERTID_free(q.id);
	ERR_clear_error();
	return decide(o, &a, rev);
}

int
mtls_ocsp_setup(SSL_CTX *ctx, const struct mtls_options *o, char *err,
    size_t errlen)
{
	struct ocsp *oc;
	int tls = 0;

	if (!o->ocsp)
		return 0;
	if (o->ocsp_url != NULL &&
	    (strncasecmp(o->ocsp_url, "http://", 7) != 0 ||
		!OSSL_HTTP_parse_url(o->ocsp_url, &tls, NULL, NULL, NULL, NULL,
		    NULL, NULL, NULL))) {
		ERR_clear_error();
		snprintf(err, errlen, "--ocsp-url %s: %s", o->ocsp_url,
		    strncasecmp(o->ocsp_url, "https://", 8) == 0 ?
			"https is not supported (OCSP answers are signed: "
			"use http://)" :
			"not a URL like http://host[:port]/path");
		return -1;
	}
	if (ctx_index < 0)
		ctx_index =
		    SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, free_data);
	if (ctx_index < 0 || (oc = calloc(1, sizeof(*oc))) == NULL)
		goto oom;
	oc->timeout = o->ocsp_timeout > 0 ? o->ocsp_timeout : 5;
	oc->nonce = o->ocsp_nonce;
	oc->soft = o->revocation_soft;
	if ((oc->cache = ocsp_cache_new(CACHE_MAX)) == NULL ||
	    (o->ocsp_url != NULL && (oc->url = strdup(o->ocsp_url)) == NULL) ||
	    !SSL_CTX_set_ex_data(ctx, ctx_index, oc)) {
		ocsp_free(oc);
		goto oom;
	}
	return 0;
oom:
	snprintf(err, errlen, "out of memory");
	return -1;
}

int
mtls_ocsp_enabled(SSL_CTX *ctx)
{
	return ctx_index >= 0 && SSL_CTX_get_ex_data(ctx, ctx_index) != NULL;
}

void
mtls_ocsp_counts(SSL_CTX *ctx, unsigned long *queries, unsigned long *hits)
{
	struct ocsp *o;

	*queries = *hits = 0;
	if (ctx_index < 0 || (o = SSL_CTX_get_ex_data(ctx, ctx_index)) == NULL)
		return;
	*queries = atomic_load(&o->queries);
	*hits = atomic_load(&o->hits);
}

unsigned long
mtls_ocsp_errors(SSL_CTX *ctx)
{
	struct ocsp *o;

	if (ctx_index < 0 || (o = SSL_CTX_get_ex_data(ctx, ctx_index)) == NULL)
		return 0;
	return atomic_load(&o->errors);
}
