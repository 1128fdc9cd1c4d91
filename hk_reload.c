/*
 * hk_reload.c - the identity set and its live reload (hk_reload.h).
 *
 * Files are watched through their directories, not themselves: a
 * renewer that writes a new file and renames it over the old one, or a
 * Kubernetes secret volume that swaps its "..data" symlink, never touches
 * the old file's inode. Paths are resolved again at every read. Events
 * only start a wait: the set is read once the directories have been
 * quiet for --reload-quiet, so that files written in several steps (a
 * certificate, then its key) are read together.
 *
 * Locks: set_lock guards r->current (the accept loop swaps it, client
 * threads take it); live_lock guards the --reauthorize list and each
 * listed connection's why. Neither is held while taking the other.
 */
#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/inotify.h>
#include <sys/stat.h>

#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "hk_pool.h"
#include "hk_print.h"
#include "hk_reload.h"
#include "mtls.h"

/* Directories watched at most: each file's, and its link target's. */
#define MAX_WATCHES 32
#define WATCH_EVENTS                                                           \
	(IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE |            \
	    IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ATTRIB)

/* A watched directory, and the name in it that matters ("": any). */
struct watch {
	int wd;
	char name[NAME_MAX + 1];
};

struct hk_reload {
	const struct hk_config *cfg;
	pthread_mutex_t set_lock;
	struct hk_set *current;
	int fd; /* inotify */
	struct watch watches[MAX_WATCHES];
	int nwatches;
	long long due;   /* CLOCK_MONOTONIC ms of the reload, 0: none */
	int requested;   /* SIGHUP */
	char last[1024]; /* the failure said last, "" after a success */
	atomic_ullong generation, ok, failed;
	pthread_mutex_t live_lock;
	struct hk_reload_conn *live;
	unsigned long long next_id; /* under live_lock: each entry's id */
};

static long long
now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static struct hk_set *
set_new(SSL_CTX *ctx, struct mtls_policy *policy)
{
	struct hk_set *s = calloc(1, sizeof(*s));

	if (s == NULL) {
		SSL_CTX_free(ctx);
		mtls_policy_free(policy);
		return NULL;
	}
	s->ctx = ctx;
	s->policy = policy;
	atomic_init(&s->refs, 1);
	return s;
}

void
hk_set_release(struct hk_set *s)
{
	if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1)
		return;
	SSL_CTX_free(s->ctx);
	mtls_policy_free(s->policy);
	free(s);
}

struct hk_set *
hk_reload_acquire(struct hk_reload *r)
{
	struct hk_set *s;

	pthread_mutex_lock(&r->set_lock);
	s = r->current;
	atomic_fetch_add(&s->refs, 1);
	pthread_mutex_unlock(&r->set_lock);
	return s;
}

/* The files of the set, as configured (NULL where not given). */
static void
set_files(const struct hk_config *cfg, const char *files[6])
{
	files[0] = cfg->cert;
	files[1] = cfg->key;
	files[2] = cfg->ca;
	files[3] = cfg->crl;
	files[4] = cfg->policy;
	files[5] = cfg->ocsp_staple;
}

/* One file's contents into md. */
static void
digest_file(EVP_MD_CTX *md, const char *path)
{
	unsigned char buf[4096];
	size_t n;
	FILE *f;

	if ((f = fopen(path, "rb")) == NULL)
		return;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		EVP_DigestUpdate(md, buf, n);
	fclose(f);
	/* The key file passes through here. */
	OPENSSL_cleanse(buf, sizeof(buf));
}

/* A file, or a --crl directory's files in name order, into md. */
static void
digest_path(EVP_MD_CTX *md, const char *path)
{
	char sub[PATH_MAX];
	struct dirent **names;
	struct stat st;
	int i, count;

	if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
		digest_file(md, path);
		return;
	}
	if ((count = scandir(path, &names, NULL, alphasort)) < 0)
		return;
	for (i = 0; i < count; i++) {
		snprintf(sub, sizeof(sub), "%s/%s", path, names[i]->d_name);
		if (names[i]->d_name[0] != '.')
			digest_file(md, sub);
		free(names[i]);
	}
	free(names);
}

/* What the set's files hold now, to tell a reload that changes nothing. */
static void
set_digest(const struct hk_config *cfg, unsigned char out[32])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	const char *files[6];
	unsigned len = 32;
	size_t i;

	memset(out, 0, 32);
	if (md == NULL || !EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
		EVP_MD_CTX_free(md);
		return;
	}
	set_files(cfg, files);
	for (i = 0; i < 6; i++) {
		EVP_DigestUpdate(md, &i, sizeof(i));
		if (files[i] != NULL)
			digest_path(md, files[i]);
	}
	EVP_DigestFinal_ex(md, out, &len);
	EVP_MD_CTX_free(md);
}

/* Watch dir for name ("": anything in it); kept if already watched. */
static void
watch_add(struct hk_reload *r, struct watch *tab, int *n, const char *dir,
    const char *name)
{
	int wd;

	if (*n >= MAX_WATCHES ||
	    (wd = inotify_add_watch(r->fd, dir, WATCH_EVENTS)) < 0)
		return;
	tab[*n].wd = wd;
	snprintf(tab[*n].name, sizeof(tab[*n].name), "%s", name);
	(*n)++;
}

/* path's directory and name, and its link target's (resolved now). */
static void
watch_path(struct hk_reload *r, struct watch *tab, int *n, const char *path)
{
	char a[PATH_MAX], b[PATH_MAX], real[PATH_MAX];
	struct stat st;

	snprintf(a, sizeof(a), "%s", path);
	snprintf(b, sizeof(b), "%s", path);
	watch_add(r, tab, n, dirname(a), basename(b));
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		watch_add(r, tab, n, path, "");
	if (realpath(path, real) == NULL || strcmp(real, path) == 0)
		return;
	snprintf(a, sizeof(a), "%s", real);
	snprintf(b, sizeof(b), "%s", real);
	watch_add(r, tab, n, dirname(a), basename(b));
}

/*
 * (Re)arm the watches: the directories may have been replaced and the
 * links may point elsewhere since the last time. A directory no longer
 * of the set loses its watch.
 */
static void
watch_all(struct hk_reload *r)
{
	struct watch tab[MAX_WATCHES];
	const char *files[6];
	int i, j, n = 0;

	if (r->fd < 0)
		return;
	set_files(r->cfg, files);
	for (i = 0; i < 6; i++)
		if (files[i] != NULL)
			watch_path(r, tab, &n, files[i]);
	for (i = 0; i < r->nwatches; i++) {
		for (j = 0; j < n && tab[j].wd != r->watches[i].wd; j++)
			;
		if (j == n)
			inotify_rm_watch(r->fd, r->watches[i].wd);
	}
	memcpy(r->watches, tab, sizeof(tab));
	r->nwatches = n;
}

struct hk_reload *
hk_reload_new(const struct hk_config *cfg, SSL_CTX *ctx,
    struct mtls_policy *policy, char *err, size_t errlen)
{
	struct hk_reload *r = calloc(1, sizeof(*r));

	if (r == NULL || (r->current = set_new(ctx, policy)) == NULL) {
		if (r == NULL) {
			SSL_CTX_free(ctx);
			mtls_policy_free(policy);
		}
		free(r);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	r->cfg = cfg;
	r->current->generation = 1;
	set_digest(cfg, r->current->digest);
	atomic_init(&r->generation, 1);
	pthread_mutex_init(&r->set_lock, NULL);
	pthread_mutex_init(&r->live_lock, NULL);
	if ((r->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0) {
		snprintf(err, errlen, "cannot watch the certificate files: %s",
		    strerror(errno));
		hk_reload_free(r);
		return NULL;
	}
	watch_all(r);
	return r;
}

void
hk_reload_free(struct hk_reload *r)
{
	if (r == NULL)
		return;
	if (r->fd >= 0)
		close(r->fd);
	hk_set_release(r->current);
	pthread_mutex_destroy(&r->set_lock);
	pthread_mutex_destroy(&r->live_lock);
	free(r);
}

int
hk_reload_fd(const struct hk_reload *r)
{
	return r->fd;
}

int
hk_reload_wait_ms(const struct hk_reload *r, int longest)
{
	long long left;

	if (r->requested)
		return 0;
	if (r->due == 0)
		return longest;
	left = r->due - now_ms();
	return left <= 0 ? 0 : left < longest ? (int)left : longest;
}

void
hk_reload_request(struct hk_reload *r)
{
	r->requested = 1;
}

/*
 * An event about a file of the set: its name in a watched directory,
 * anything in a --crl directory, a Kubernetes "..data" style name, or
 * the directory itself gone or the queue overflowed.
 */
static int
relevant(const struct hk_reload *r, const struct inotify_event *ev)
{
	int i;

	if (ev->mask & (IN_Q_OVERFLOW | IN_DELETE_SELF | IN_MOVE_SELF))
		return 1;
	if (ev->len == 0)
		return 0;
	if (strncmp(ev->name, "..", 2) == 0)
		return 1;
	for (i = 0; i < r->nwatches; i++)
		if (r->watches[i].wd == ev->wd &&
		    (r->watches[i].name[0] == '\0' ||
			strcmp(r->watches[i].name, ev->name) == 0))
			return 1;
	return 0;
}

void
hk_reload_events(struct hk_reload *r)
{
	char buf[8192]
	    __attribute__((aligned(__alignof__(struct inotify_event))));
	const struct inotify_event *ev;
	ssize_t n;
	char *p;

	while ((n = read(r->fd, buf, sizeof(buf))) > 0)
		for (p = buf; p < buf + n; p += sizeof(*ev) + ev->len) {
			ev = (const struct inotify_event *)p;
			/* Each relevant event starts the quiet time again. */
			if (relevant(r, ev))
				r->due = now_ms() + r->cfg->reload_quiet;
		}
}

/* Count the store's CA certificates and CRLs. */
static void
store_counts(SSL_CTX *ctx, int *certs, int *crls)
{
	STACK_OF(X509_OBJECT) *objs =
	    X509_STORE_get0_objects(SSL_CTX_get_cert_store(ctx));
	int i;

	*certs = *crls = 0;
	for (i = 0; i < sk_X509_OBJECT_num(objs); i++) {
		switch (X509_OBJECT_get_type(sk_X509_OBJECT_value(objs, i))) {
		case X509_LU_X509:
			(*certs)++;
			break;
		case X509_LU_CRL:
			(*crls)++;
			break;
		default:
			break;
		}
	}
}

static void
set_describe(const struct hk_config *cfg, const struct hk_set *s, char *buf,
    size_t len)
{
	X509 *x = SSL_CTX_get0_certificate(s->ctx);
	char subject[256] = "?", after[32] = "?", rules[PATH_MAX + 32] = "";
	char *serial = x != NULL ? mtls_serial_hex(x) : NULL;
	int certs, crls;

	if (x != NULL) {
		X509_NAME_oneline(X509_get_subject_name(x), subject,
		    sizeof(subject));
		mtls_asn1_time(X509_get0_notAfter(x), after, sizeof(after));
	}
	store_counts(s->ctx, &certs, &crls);
	if (s->policy != NULL)
		snprintf(rules, sizeof(rules), "; policy %s (%zu rule%s)",
		    cfg->policy, mtls_policy_count(s->policy),
		    mtls_policy_count(s->policy) == 1 ? "" : "s");
	snprintf(buf, len,
	    "certificate %s, serial %s, expires %s; CA %s (%d "
	    "certificate%s); %d CRL%s%s",
	    subject, serial != NULL ? serial : "?", after, cfg->ca, certs,
	    certs == 1 ? "" : "s", crls, crls == 1 ? "" : "s", rules);
	OPENSSL_free(serial);
}

void
hk_reload_describe(struct hk_reload *r, char *buf, size_t len)
{
	struct hk_set *s = hk_reload_acquire(r);

	set_describe(r->cfg, s, buf, len);
	hk_set_release(s);
}

/*
 * Our certificate, valid now and chaining to the CA bundle (the client's
 * check of it, short of the name): no CRL flags, those are for clients.
 */
static int
own_cert_check(const struct hk_config *cfg, SSL_CTX *ctx, char *err,
    size_t errlen)
{
	X509 *leaf = SSL_CTX_get0_certificate(ctx);
	STACK_OF(X509) *chain = NULL;
	X509_STORE_CTX *x = X509_STORE_CTX_new();
	int ok = 0, e = X509_V_ERR_OUT_OF_MEM;

	SSL_CTX_get0_chain_certs(ctx, &chain);
	if (x != NULL && leaf != NULL &&
	    X509_STORE_CTX_init(x, SSL_CTX_get_cert_store(ctx), leaf, chain) &&
	    X509_STORE_CTX_set_default(x, "ssl_server")) {
		X509_VERIFY_PARAM_clear_flags(X509_STORE_CTX_get0_param(x),
		    X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
		ok = X509_verify_cert(x) > 0;
		e = X509_STORE_CTX_get_error(x);
	}
	X509_STORE_CTX_free(x);
	if (ok)
		return 0;
	snprintf(err, errlen, "--cert %s: %s (checked against --ca %s)",
	    cfg->cert, X509_verify_cert_error_string(e), cfg->ca);
	return -1;
}

int
hk_reload_check_current(struct hk_reload *r, char *err, size_t errlen)
{
	struct hk_set *s = hk_reload_acquire(r);
	int ret = own_cert_check(r->cfg, s->ctx, err, errlen);

	hk_set_release(s);
	return ret;
}

/* The whole set from the files as they are now; NULL with err. */
static struct hk_set *
set_build(const struct hk_config *cfg, char *err, size_t errlen)
{
	struct mtls_policy *policy = NULL;
	SSL_CTX *ctx;

	/* The policy first, as at start: its FILE:LINE errors are exact. */
	if (cfg->policy != NULL &&
	    (policy = mtls_policy_load(cfg->policy, err, errlen)) == NULL)
		return NULL;
	if ((ctx = hk_context_build(cfg, err, errlen)) == NULL ||
	    own_cert_check(cfg, ctx, err, errlen) < 0) {
		SSL_CTX_free(ctx);
		mtls_policy_free(policy);
		return NULL;
	}
	return set_new(ctx, policy);
}

/*
 * The old context's ticket keys in the new one: tickets stay readable
 * across the reload, and the authorization generation (mtls.c) still
 * voids those issued before a CRL or policy change.
 */
static void
keep_ticket_keys(SSL_CTX *from, SSL_CTX *to)
{
	unsigned char keys[80];

	if (SSL_CTX_get_tlsext_ticket_keys(from, keys, sizeof(keys)) == 1)
		SSL_CTX_set_tlsext_ticket_keys(to, keys, sizeof(keys));
	OPENSSL_cleanse(keys, sizeof(keys));
}

static void
swap_in(struct hk_reload *r, struct hk_set *s)
{
	struct hk_set *old;

	keep_ticket_keys(r->current->ctx, s->ctx);
	s->generation = r->current->generation + 1;
	pthread_mutex_lock(&r->set_lock);
	old = r->current;
	r->current = s;
	pthread_mutex_unlock(&r->set_lock);
	atomic_store(&r->generation, s->generation);
	hk_set_release(old);
}

enum hk_reload_result
hk_reload_step(struct hk_reload *r, char *msg, size_t len)
{
	unsigned char digest[32];
	struct hk_set *s;
	char err[sizeof(r->last)], what[768];

	if (!r->requested && (r->due == 0 || now_ms() < r->due))
		return HK_RELOAD_NONE;
	r->requested = 0;
	r->due = 0;
	watch_all(r);
	set_digest(r->cfg, digest);
	if (memcmp(digest, r->current->digest, sizeof(digest)) == 0) {
		r->last[0] = '\0';
		snprintf(msg, len,
		    "Reload: the files are unchanged, keeping generation %llu",
		    r->current->generation);
		return HK_RELOAD_SAME;
	}
	if ((s = set_build(r->cfg, err, sizeof(err))) == NULL) {
		atomic_fetch_add(&r->failed, 1);
		snprintf(msg, len, "Reload failed, keeping generation %llu: %s",
		    r->current->generation, err);
		if (strcmp(err, r->last) == 0)
			return HK_RELOAD_FAILED_SAME;
		snprintf(r->last, sizeof(r->last), "%s", err);
		return HK_RELOAD_FAILED;
	}
	memcpy(s->digest, digest, sizeof(digest));
	swap_in(r, s);
	atomic_fetch_add(&r->ok, 1);
	r->last[0] = '\0';
	set_describe(r->cfg, s, what, sizeof(what));
	snprintf(msg, len, "Reloaded configuration (generation %llu): %s",
	    s->generation, what);
	return HK_RELOAD_OK;
}

void
hk_reload_conn_add(struct hk_reload *r, struct hk_reload_conn *c, X509 *peer,
    atomic_int *stop)
{
	memset(c, 0, sizeof(*c));
	if (peer != NULL && X509_up_ref(peer))
		c->peer = peer;
	c->stop = stop;
	c->thread = pthread_self();
	pthread_mutex_lock(&r->live_lock);
	c->id = ++r->next_id;
	c->next = r->live;
	if (r->live != NULL)
		r->live->prev = c;
	r->live = c;
	pthread_mutex_unlock(&r->live_lock);
}

void
hk_reload_conn_thread(struct hk_reload *r, struct hk_reload_conn *c,
    pthread_t thread)
{
	pthread_mutex_lock(&r->live_lock);
	c->thread = thread;
	pthread_mutex_unlock(&r->live_lock);
}

void
hk_reload_conn_remove(struct hk_reload *r, struct hk_reload_conn *c)
{
	pthread_mutex_lock(&r->live_lock);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		r->live = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	pthread_mutex_unlock(&r->live_lock);
	X509_free(c->peer);
	c->peer = NULL;
}

/* Why s refuses peer now ("" if it does not), as event.reason says it. */
static void
refusal(const struct hk_set *s, X509 *peer, char *why, size_t len)
{
	struct mtls_decision d;
	SSL *probe = SSL_new(s->ctx);
	int e;

	why[0] = '\0';
	if (probe == NULL || peer == NULL) {
		SSL_free(probe);
		return;
	}
	/* An SSL of the new context: its store has the new CRLs. */
	if ((e = mtls_verify_leaf_error(probe, peer)) != X509_V_OK)
		snprintf(why, len, "reauthorize: %s",
		    X509_verify_cert_error_string(e));
	else if (s->policy != NULL && !mtls_policy_decide(s->policy, peer, &d))
		snprintf(why, len, "reauthorize: %s", d.reason);
	SSL_free(probe);
}

/* One listed connection's client, checked without the list's lock. */
struct recheck {
	unsigned long long id;
	X509 *peer;
	char why[MTLS_POLICY_REASON_MAX + 32];
};

/*
 * With live_lock held: the listed connections not yet refused, each
 * client's certificate with a reference of its own; NULL when there are
 * none or no memory (*n says which: 0, or how many there are).
 */
static struct recheck *
recheck_list(struct hk_reload *r, size_t *n)
{
	struct hk_reload_conn *c;
	struct recheck *list;
	size_t k = 0;

	*n = 0;
	for (c = r->live; c != NULL; c = c->next)
		if (c->why[0] == '\0')
			(*n)++;
	if (*n == 0 || (list = calloc(*n, sizeof(*list))) == NULL)
		return NULL;
	for (c = r->live; c != NULL; c = c->next) {
		if (c->why[0] != '\0')
			continue;
		list[k].id = c->id;
		if (c->peer != NULL && X509_up_ref(c->peer))
			list[k].peer = c->peer;
		k++;
	}
	return list;
}

/* With live_lock held: the entry with this id, if it is still listed. */
static struct hk_reload_conn *
listed(struct hk_reload *r, unsigned long long id)
{
	struct hk_reload_conn *c;

	for (c = r->live; c != NULL && c->id != id; c = c->next)
		;
	return c;
}

/*
 * The checks (which may wait on --ocsp queries) run without live_lock,
 * on a list taken under it: connections that end meanwhile are not held
 * up, and those gone by the end are passed over by id (an entry's memory
 * may be another connection's by then).
 */
int
hk_reload_reauthorize(struct hk_reload *r, int *open)
{
	struct hk_set *s = hk_reload_acquire(r);
	struct hk_reload_conn *c;
	struct recheck *list;
	size_t i, n;
	int refused = 0;

	pthread_mutex_lock(&r->live_lock);
	list = recheck_list(r, &n);
	pthread_mutex_unlock(&r->live_lock);
	*open = (int)n;
	if (list == NULL) {
		hk_set_release(s);
		return n == 0 ? 0 : -1;
	}
	for (i = 0; i < n; i++)
		refusal(s, list[i].peer, list[i].why, sizeof(list[i].why));
	pthread_mutex_lock(&r->live_lock);
	for (i = 0; i < n; i++) {
		if (list[i].why[0] == '\0' ||
		    (c = listed(r, list[i].id)) == NULL || c->why[0] != '\0')
			continue;
		snprintf(c->why, sizeof(c->why), "%s", list[i].why);
		refused++;
		atomic_store(c->stop, 1);
		pthread_kill(c->thread, HK_POOL_SIGNAL);
	}
	pthread_mutex_unlock(&r->live_lock);
	for (i = 0; i < n; i++)
		X509_free(list[i].peer);
	free(list);
	hk_set_release(s);
	return refused;
}

void
hk_reload_kick(struct hk_reload *r)
{
	struct hk_reload_conn *c;

	pthread_mutex_lock(&r->live_lock);
	/* Listed means the thread has not returned: its id is valid. */
	for (c = r->live; c != NULL; c = c->next)
		if (c->why[0] != '\0')
			pthread_kill(c->thread, HK_POOL_SIGNAL);
	pthread_mutex_unlock(&r->live_lock);
}

void
hk_reload_counts(const struct hk_reload *r, struct hk_reload_counts *out)
{
	out->generation = atomic_load(&r->generation);
	out->ok = atomic_load(&r->ok);
	out->failed = atomic_load(&r->failed);
}
