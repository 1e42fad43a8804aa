/* liblockclient: see lockclient.h.
 *
 * One nng REQ socket per endpoint, dialled in the background at open (and
 * when a hint names a leader the client did not know); every try is its own
 * REQ context on that socket, so reads and status calls of several threads
 * run at once. The REQ protocol's own resend is pushed out of the way
 * (RESEND_MS): this file retries, with the same (session, seq), and decides
 * where to.
 *
 * Pipe notifications tell which endpoints have lost their connection; a
 * replica that was killed is skipped while another one is connected, instead
 * of costing a whole attempt timeout per call.
 */
#include "lockclient.h"
#include "lc_internal.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "client.pb-c.h"

#define ATTEMPT_TIMEOUT_MS_DEFAULT 2000u
#define CALL_TIMEOUT_MS_DEFAULT 10000u
#define DRIFT_PPM_DEFAULT 1000u

/* Longer than any call: nng's REQ never resends on its own timer. */
#define RESEND_MS (24 * 3600 * 1000)

/* Background reconnection to a replica that went away. */
#define RECONNECT_MS_MIN 50
#define RECONNECT_MS_MAX 500

/* Replies bigger than this are dropped by nng: a LIST answers at most about
 * 768 KiB, a RENEW 1024 tokens. */
#define REPLY_BYTES_MAX (8u << 20)

/* Pause between tries when the cell answered but could not take the request
 * (no leader yet, busy, behind): doubles from MIN up to MAX. */
#define PAUSE_MS_MIN 10u
#define PAUSE_MS_MAX 50u

struct lci_stop {
	lc_client *c;
	atomic_bool stopped;
	_Atomic uint64_t end_us;
	/* The try in flight. It is set (with its operation started) and
	 * cleared under mu, which lci_stop_now holds to abort it: so that it
	 * never aborts a freed aio, and a try about to start sees stopped. */
	pthread_mutex_t mu;
	nng_aio *aio;
};

/* ---- errors -------------------------------------------------------------- */

static const char *const error_text[] = {
#define LC_X(code, text) [code] = text,
	LC_ERROR_TABLE(LC_X)
#undef LC_X
};

const char *lc_strerror(int code)
{
	if (code < 0 || code >= LC_ERROR_COUNT)
		return "unknown liblockclient error code";
	return error_text[code];
}

static _Thread_local char last_error[LC_ERROR_BYTES_MAX];

const char *lc_last_error(void)
{
	return last_error;
}

/* Records the calling thread's sentence for code and returns code. */
int lci_fail(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(last_error, sizeof last_error, fmt, ap);
	va_end(ap);
	return code;
}

/* ---- time ---------------------------------------------------------------- */

uint64_t lc_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void sleep_us(uint64_t us)
{
	struct timespec ts = {(time_t)(us / 1000000u),
			      (long)(us % 1000000u) * 1000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* ---- endpoints ----------------------------------------------------------- */

static void pipe_event(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	lci_endpoint *e = arg;
	(void)p;
	if (ev == NNG_PIPE_EV_ADD_POST) {
		atomic_fetch_add(&e->pipes, 1);
		atomic_store(&e->lost, false);
	} else if (ev == NNG_PIPE_EV_REM_POST) {
		int n = atomic_load(&e->pipes);
		while (n > 0 &&
		       !atomic_compare_exchange_weak(&e->pipes, &n, n - 1))
			;
		if (n <= 1)
			atomic_store(&e->lost, true);
	}
}

/* Starts dialling e->url in the background, with TLS when it is a
 * tls+tcp:// URL: the replica is verified against the CA and the URL's host,
 * and the client's certificate is presented when it has one. */
static int ep_dial(const lc_client *c, lci_endpoint *e)
{
	nng_dialer d;
	int rv = nng_dialer_create(&d, e->sock, e->url);
	if (rv != 0)
		return rv;
	if (strncmp(e->url, "tls+tcp", 7) == 0) {
		nng_url *u = NULL;
		if (c->o.tls_ca_file[0] == '\0')
			rv = NNG_EINVAL;
		if (rv == 0)
			rv = nng_url_parse(&u, e->url);
		if (rv == 0)
			rv = nng_dialer_set_string(d, NNG_OPT_TLS_CA_FILE,
						   c->o.tls_ca_file);
		if (rv == 0)
			rv = nng_dialer_set_string(d, NNG_OPT_TLS_SERVER_NAME,
						   u->u_hostname);
		if (rv == 0 && c->o.tls_cert_key_file[0] != '\0')
			rv = nng_dialer_set_string(d, NNG_OPT_TLS_CERT_KEY_FILE,
						   c->o.tls_cert_key_file);
		if (u != NULL)
			nng_url_free(u);
	}
	if (rv == 0)
		rv = nng_dialer_start(d, NNG_FLAG_NONBLOCK);
	if (rv != 0)
		nng_dialer_close(d);
	return rv;
}

/* Opens e's socket and starts dialling url in the background. LC_EINVAL
 * when nng refuses the URL (bad syntax, unknown transport, no port) or its
 * TLS files. */
static int ep_open(const lc_client *c, lci_endpoint *e, const char *url,
		   size_t len)
{
	if (len == 0 || len > LC_URL_BYTES_MAX)
		return lci_fail(LC_EINVAL,
				"endpoint URL of %zu bytes: want 1-%u", len,
				LC_URL_BYTES_MAX);
	e->url = malloc(len + 1);
	if (e->url == NULL)
		return lci_fail(LC_ENOMEM, "out of memory");
	memcpy(e->url, url, len);
	e->url[len] = '\0';
	atomic_init(&e->pipes, 0);
	atomic_init(&e->lost, false);
	int rv = nng_req0_open(&e->sock);
	if (rv != 0)
		return lci_fail(rv == NNG_ENOMEM ? LC_ENOMEM : LC_EUNAVAILABLE,
				"cannot open a socket for %s: %s", e->url,
				nng_strerror(rv));
	e->sock_open = true;
	nng_socket_set_ms(e->sock, NNG_OPT_REQ_RESENDTIME, RESEND_MS);
	nng_socket_set_ms(e->sock, NNG_OPT_RECONNMINT, RECONNECT_MS_MIN);
	nng_socket_set_ms(e->sock, NNG_OPT_RECONNMAXT, RECONNECT_MS_MAX);
	nng_socket_set_size(e->sock, NNG_OPT_RECVMAXSZ, REPLY_BYTES_MAX);
	nng_pipe_notify(e->sock, NNG_PIPE_EV_ADD_POST, pipe_event, e);
	nng_pipe_notify(e->sock, NNG_PIPE_EV_REM_POST, pipe_event, e);
	rv = ep_dial(c, e);
	if (rv != 0 && strncmp(e->url, "tls+tcp", 7) == 0)
		return lci_fail(
			rv == NNG_ENOMEM ? LC_ENOMEM : LC_EINVAL,
			"cannot dial %s with TLS (%s): it needs a CA file "
			"that can be read (lc_options.tls_ca_file, "
			"lockctl --tls-ca), and a readable certificate "
			"and key if one is given",
			e->url, nng_strerror(rv));
	if (rv != 0)
		return lci_fail(rv == NNG_ENOMEM ? LC_ENOMEM : LC_EINVAL,
				"endpoint '%s' is not a URL nng can dial: %s",
				e->url, nng_strerror(rv));
	return LC_OK;
}

static void ep_close(lci_endpoint *e)
{
	if (e->sock_open)
		nng_close(e->sock); /* waits for the pipe callbacks */
	e->sock_open = false;
	free(e->url);
	e->url = NULL;
}

uint32_t lci_ep_count(const lc_client *c)
{
	return atomic_load_explicit(&((lc_client *)c)->net->nep,
				    memory_order_acquire);
}

static bool ep_down(lc_client *c, uint32_t i)
{
	lci_endpoint *e = &c->net->ep[i];
	return atomic_load(&e->pipes) == 0 && atomic_load(&e->lost);
}

/* From i on (cyclically), the first endpoint not known to be down; i when
 * every one is. */
static uint32_t ep_usable(lc_client *c, uint32_t i)
{
	uint32_t n = lci_ep_count(c);
	for (uint32_t k = 0; k < n; k++) {
		uint32_t j = (i + k) % n;
		if (!ep_down(c, j))
			return j;
	}
	return i % n;
}

/* The index of url, added (and dialled) if it is new; -1 when it cannot
 * be added (full, malformed). */
static int ep_find_or_add(lc_client *c, const char *url)
{
	uint32_t n = lci_ep_count(c);
	for (uint32_t i = 0; i < n; i++)
		if (strcmp(c->net->ep[i].url, url) == 0)
			return (int)i;
	pthread_mutex_lock(&c->net->add_mu);
	n = lci_ep_count(c);
	int found = -1;
	for (uint32_t i = 0; i < n && found < 0; i++)
		if (strcmp(c->net->ep[i].url, url) == 0)
			found = (int)i;
	if (found < 0 && n < LC_ENDPOINTS_MAX) {
		/* A failure here must not replace the sentence of the call
		 * that follows the hint. */
		char saved[LC_ERROR_BYTES_MAX];
		memcpy(saved, last_error, sizeof saved);
		if (ep_open(c->net, &c->net->ep[n], url, strlen(url)) ==
		    LC_OK) {
			atomic_store_explicit(&c->net->nep, n + 1,
					      memory_order_release);
			found = (int)n;
		} else {
			ep_close(&c->net->ep[n]);
		}
		memcpy(last_error, saved, sizeof saved);
	}
	pthread_mutex_unlock(&c->net->add_mu);
	return found;
}

/* ---- clients ------------------------------------------------------------- */

void lc_options_init(lc_options *o)
{
	memset(o, 0, sizeof *o);
}

static int random_session(uint64_t *out)
{
	uint64_t v = 0;
	for (int tries = 0; v == 0 && tries < 8; tries++) {
		if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v) {
			v = 0;
			int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
			if (fd < 0)
				continue;
			if (read(fd, &v, sizeof v) != (ssize_t)sizeof v)
				v = 0;
			close(fd);
		}
		v &= LC_SESSION_MAX;
	}
	*out = v;
	return v != 0 ? LC_OK
		      : lci_fail(LC_EUNAVAILABLE, "no random session id: "
						  "getrandom and /dev/urandom "
						  "failed");
}

/* A client with opt (may be NULL) and its session, using net's
 * connections (NULL: its own, which the caller opens). */
static int client_new(const lc_options *opt, lc_client *net, lc_client **out)
{
	lc_client *c = calloc(1, sizeof *c);
	if (c == NULL)
		return lci_fail(LC_ENOMEM, "out of memory");
	if (opt != NULL)
		c->o = *opt;
	c->net = net != NULL ? net : c;
	atomic_init(&c->shares, 0);
	if (c->o.attempt_timeout_ms == 0)
		c->o.attempt_timeout_ms = ATTEMPT_TIMEOUT_MS_DEFAULT;
	if (c->o.call_timeout_ms == 0)
		c->o.call_timeout_ms = CALL_TIMEOUT_MS_DEFAULT;
	if (c->o.drift_ppm == 0)
		c->o.drift_ppm = DRIFT_PPM_DEFAULT;
	if (c->o.refresh_remaining_permille == 0)
		c->o.refresh_remaining_permille = LC_RENEW_REMAINING_PERMILLE;
	pthread_mutex_init(&c->add_mu, NULL);
	pthread_mutex_init(&c->write_mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->write_cv, &ca);
	pthread_condattr_destroy(&ca);
	atomic_init(&c->nep, 0);
	atomic_init(&c->leader, 0);
	atomic_init(&c->known, 0);
	c->seq = c->o.seq_base;

	int rv = LC_OK;
	c->session = c->o.session;
	if (c->session > LC_SESSION_MAX)
		rv = lci_fail(
			LC_EINVAL,
			"session %llu is over %llu: the cell keeps the top "
			"bit for its own commands",
			(unsigned long long)c->session,
			(unsigned long long)LC_SESSION_MAX);
	else if (c->session == 0) {
		rv = random_session(&c->session);
		c->session_key = c->o.session_key;
		while (rv == LC_OK && c->session_key == 0)
			rv = random_session(&c->session_key);
	} else {
		c->session_key = c->o.session_key;
	}
	if (rv != LC_OK) {
		pthread_mutex_destroy(&c->add_mu);
		pthread_mutex_destroy(&c->write_mu);
		pthread_cond_destroy(&c->write_cv);
		free(c);
		return rv;
	}
	*out = c;
	return LC_OK;
}

int lc_open(const char *endpoints, const lc_options *opt, lc_client **out)
{
	if (out == NULL)
		return lci_fail(LC_EINVAL, "lc_open: out is NULL");
	*out = NULL;
	if (endpoints == NULL)
		return lci_fail(LC_EINVAL, "lc_open: no endpoints");
	lc_client *c;
	int rv = client_new(opt, NULL, &c);
	if (rv != LC_OK)
		return rv;

	/* Split on commas; spaces around a URL are ignored. */
	const char *p = endpoints;
	uint32_t n = 0;
	while (rv == LC_OK) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		const char *s = p;
		while (len > 0 && (*s == ' ' || *s == '\t')) {
			s++;
			len--;
		}
		while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
			len--;
		if (len == 0) {
			rv = lci_fail(LC_EINVAL,
				      "empty endpoint in '%.200s': want "
				      "comma-separated nng URLs",
				      endpoints);
			break;
		}
		if (n == LC_ENDPOINTS_MAX) {
			rv = lci_fail(LC_EINVAL, "more than %u endpoints",
				      LC_ENDPOINTS_MAX);
			break;
		}
		rv = ep_open(c, &c->net->ep[n], s, len);
		n++;
		if (end == NULL)
			break;
		p = end + 1;
	}
	atomic_store(&c->net->nep, n);
	if (rv != LC_OK) {
		lc_close(c);
		return rv;
	}
	*out = c;
	return LC_OK;
}

int lc_open_shared(lc_client *base, const lc_options *opt, lc_client **out)
{
	if (out == NULL)
		return lci_fail(LC_EINVAL, "lc_open_shared: out is NULL");
	*out = NULL;
	if (base == NULL)
		return lci_fail(LC_EINVAL, "lc_open_shared: base is NULL");
	lc_client *c;
	int rv = client_new(opt, base->net, &c);
	if (rv != LC_OK)
		return rv;
	atomic_fetch_add(&base->net->shares, 1);
	*out = c;
	return LC_OK;
}

void lc_close(lc_client *c)
{
	if (c == NULL)
		return;
	if (c->net != c) {
		atomic_fetch_sub(&c->net->shares, 1);
	} else {
		/* Its sharers must be closed first: they use these sockets. */
		assert(atomic_load(&c->shares) == 0);
		uint32_t n = lci_ep_count(c);
		for (uint32_t i = 0; i < n; i++)
			ep_close(&c->ep[i]);
	}
	pthread_mutex_destroy(&c->net->add_mu);
	pthread_mutex_destroy(&c->write_mu);
	pthread_cond_destroy(&c->write_cv);
	free(c);
}

uint64_t lc_session(const lc_client *c)
{
	return c->session;
}

uint64_t lc_session_key(const lc_client *c)
{
	return c->session_key;
}

uint64_t lc_known_position(const lc_client *c)
{
	return atomic_load(&((lc_client *)c)->known);
}

uint32_t lc_endpoint_count(const lc_client *c)
{
	return lci_ep_count(c);
}

const char *lc_endpoint_url(const lc_client *c, uint32_t i)
{
	return i < lci_ep_count(c) ? c->net->ep[i].url : NULL;
}

void lci_see_position(lc_client *c, uint64_t pos)
{
	uint64_t k = atomic_load(&c->known);
	while (pos > k && !atomic_compare_exchange_weak(&c->known, &k, pos))
		;
}

/* ---- stops and the write turn -------------------------------------------- */

int lci_stop_new(lc_client *c, lci_stop **out)
{
	*out = NULL;
	lci_stop *st = calloc(1, sizeof *st);
	if (st == NULL)
		return LC_ENOMEM;
	st->c = c;
	atomic_init(&st->stopped, false);
	atomic_init(&st->end_us, UINT64_MAX);
	pthread_mutex_init(&st->mu, NULL);
	*out = st;
	return LC_OK;
}

void lci_stop_free(lci_stop *st)
{
	if (st == NULL)
		return;
	assert(st->aio == NULL);
	pthread_mutex_destroy(&st->mu);
	free(st);
}

void lci_stop_now(lci_stop *st)
{
	atomic_store(&st->stopped, true);
	pthread_mutex_lock(&st->mu);
	if (st->aio != NULL)
		nng_aio_abort(st->aio, NNG_ECANCELED);
	pthread_mutex_unlock(&st->mu);
	/* A wait for the write turn looks at stopped (under write_mu) before
	 * it sleeps: this wakes it if it was already asleep. */
	pthread_mutex_lock(&st->c->write_mu);
	pthread_cond_broadcast(&st->c->write_cv);
	pthread_mutex_unlock(&st->c->write_mu);
}

void lci_stop_until(lci_stop *st, uint64_t end_us)
{
	atomic_store(&st->end_us, end_us);
	atomic_store(&st->stopped, false);
}

static bool is_stopped(lci_stop *st)
{
	return st != NULL && atomic_load(&st->stopped);
}

static uint64_t stop_end_us(lci_stop *st)
{
	return st != NULL ? atomic_load(&st->end_us) : UINT64_MAX;
}

/* Takes c's write turn, waiting for the write that has it. Only with a stop:
 * LC_ECANCELED when st is stopped meanwhile, LC_EUNAVAILABLE when st's end
 * comes first (a write of the client's other threads may be waiting out a
 * dark cell). */
int lci_write_lock(lc_client *c, lci_stop *st)
{
	uint64_t end = stop_end_us(st);
	int rv = LC_OK;
	pthread_mutex_lock(&c->write_mu);
	while (c->writing) {
		if (is_stopped(st)) {
			rv = lci_fail(LC_ECANCELED,
				      "stopped while waiting for the client's "
				      "write turn");
			break;
		}
		if (end == UINT64_MAX) {
			pthread_cond_wait(&c->write_cv, &c->write_mu);
			continue;
		}
		if (lc_now_us() >= end) {
			rv = lci_fail(
				LC_EUNAVAILABLE,
				"out of time waiting for the client's other "
				"write");
			break;
		}
		struct timespec ts = {(time_t)(end / 1000000u),
				      (long)(end % 1000000u) * 1000L};
		pthread_cond_timedwait(&c->write_cv, &c->write_mu, &ts);
	}
	if (rv == LC_OK)
		c->writing = true;
	pthread_mutex_unlock(&c->write_mu);
	return rv;
}

void lci_write_unlock(lc_client *c)
{
	pthread_mutex_lock(&c->write_mu);
	c->writing = false;
	/* All of them: a waiter that was stopped leaves without passing a
	 * signal on. */
	pthread_cond_broadcast(&c->write_cv);
	pthread_mutex_unlock(&c->write_mu);
}

/* ---- one try ------------------------------------------------------------- */

static nng_duration to_duration(uint64_t ms)
{
	if (ms < 1)
		return 1;
	return ms > INT32_MAX ? INT32_MAX : (nng_duration)ms;
}

/* Starts a send (or a receive) of ctx on aio and waits for it; NNG_ECANCELED
 * without starting it when st is stopped. Meanwhile aio is st's try in
 * flight, for lci_stop_now to abort. */
static int run_aio(nng_ctx ctx, nng_aio *aio, bool send, lci_stop *st)
{
	if (st != NULL) {
		pthread_mutex_lock(&st->mu);
		if (atomic_load(&st->stopped)) {
			pthread_mutex_unlock(&st->mu);
			return NNG_ECANCELED;
		}
		st->aio = aio;
	}
	if (send)
		nng_ctx_send(ctx, aio);
	else
		nng_ctx_recv(ctx, aio);
	if (st != NULL)
		pthread_mutex_unlock(&st->mu);
	nng_aio_wait(aio);
	if (st != NULL) {
		pthread_mutex_lock(&st->mu);
		st->aio = NULL;
		pthread_mutex_unlock(&st->mu);
	}
	return nng_aio_result(aio);
}

/* Sends req to endpoint i and waits up to timeout_ms for its answer.
 * *sent_us is when it was handed to nng. On LC_OK *out is the reply, which
 * the caller frees (lockd__reply__free_unpacked). LC_EUNAVAILABLE when no
 * answer came in time (or the transport failed), LC_EPROTO when the answer
 * does not decode, LC_ENOMEM, LC_ECANCELED when st (may be NULL) was
 * stopped. */
int lci_attempt(lc_client *c, uint32_t i, const Lockd__Request *req,
		uint64_t timeout_ms, lci_stop *st, uint64_t *sent_us,
		Lockd__Reply **out)
{
	*out = NULL;
	*sent_us = lc_now_us();
	size_t len = lockd__request__get_packed_size(req);
	nng_msg *m;
	if (nng_msg_alloc(&m, len) != 0)
		return lci_fail(LC_ENOMEM, "out of memory");
	lockd__request__pack(req, nng_msg_body(m));
	nng_ctx ctx;
	nng_aio *aio = NULL;
	int rv = nng_ctx_open(&ctx, c->net->ep[i].sock);
	if (rv != 0) {
		nng_msg_free(m);
		return lci_fail(rv == NNG_ENOMEM ? LC_ENOMEM : LC_EUNAVAILABLE,
				"%s: %s", c->net->ep[i].url, nng_strerror(rv));
	}
	nng_ctx_set_ms(ctx, NNG_OPT_REQ_RESENDTIME, RESEND_MS);
	if ((rv = nng_aio_alloc(&aio, NULL, NULL)) != 0) {
		nng_msg_free(m);
		nng_ctx_close(ctx);
		return lci_fail(LC_ENOMEM, "out of memory");
	}
	uint64_t deadline = lc_now_us() + timeout_ms * 1000u;
	int code = LC_OK;
	nng_aio_set_timeout(aio, to_duration(timeout_ms));
	nng_aio_set_msg(aio, m);
	*sent_us = lc_now_us();
	if ((rv = run_aio(ctx, aio, true, st)) != 0) {
		/* A failed (or unstarted) send leaves the message ours. */
		nng_msg *back = nng_aio_get_msg(aio);
		if (back != NULL)
			nng_msg_free(back);
		goto done;
	}
	uint64_t now = lc_now_us();
	if (now >= deadline) {
		rv = NNG_ETIMEDOUT;
		goto done;
	}
	nng_aio_set_timeout(aio, to_duration((deadline - now + 999) / 1000));
	if ((rv = run_aio(ctx, aio, false, st)) != 0)
		goto done;
	nng_msg *r = nng_aio_get_msg(aio);
	Lockd__Reply *rep =
		lockd__reply__unpack(NULL, nng_msg_len(r), nng_msg_body(r));
	nng_msg_free(r);
	if (rep == NULL)
		code = lci_fail(LC_EPROTO,
				"%s sent a reply that does not decode",
				c->net->ep[i].url);
	*out = rep;
done:
	nng_aio_free(aio);
	nng_ctx_close(ctx);
	if (rv == NNG_ECANCELED) /* only lci_stop_now aborts */
		code = lci_fail(LC_ECANCELED, "%s: the try was stopped",
				c->net->ep[i].url);
	else if (rv != 0)
		code = lci_fail(rv == NNG_ENOMEM ? LC_ENOMEM : LC_EUNAVAILABLE,
				"%s: %s", c->net->ep[i].url, nng_strerror(rv));
	return code;
}

/* ---- a call, with its retries -------------------------------------------- */

/* Sleeps the next pause (doubling), never past deadline_us. */
static void pause_before_retry(uint32_t *pause_ms, uint64_t deadline_us)
{
	*pause_ms = *pause_ms == 0 ? PAUSE_MS_MIN : *pause_ms * 2;
	if (*pause_ms > PAUSE_MS_MAX)
		*pause_ms = PAUSE_MS_MAX;
	uint64_t now = lc_now_us();
	uint64_t us = (uint64_t)*pause_ms * 1000u;
	if (now + us > deadline_us)
		us = deadline_us > now ? deadline_us - now : 0;
	sleep_us(us);
}

/* Sends req until a replica answers it for good (anything but NOT_LEADER,
 * BUSY, BEHIND), within call_timeout_ms + wait_ms, and within st's end.
 * Writes follow leader hints; every try carries the highest position seen.
 * req's session and seq stay as the caller set them: every try is the same
 * command. LC_ECANCELED as soon as st (may be NULL) is stopped. */
int lci_call(lc_client *c, Lockd__Request *req, bool write, uint32_t wait_ms,
	     lci_stop *st, call_result *res)
{
	memset(res, 0, sizeof *res);
	uint64_t start = lc_now_us();
	uint64_t deadline =
		start + ((uint64_t)c->o.call_timeout_ms + wait_ms) * 1000u;
	if (deadline > stop_end_us(st))
		deadline = stop_end_us(st);
	uint64_t per_try_ms = (uint64_t)c->o.attempt_timeout_ms + wait_ms;
	uint32_t i = atomic_load(&c->net->leader);
	uint32_t pause_ms = 0, hops = 0;
	int last = LC_EUNAVAILABLE;
	char last_sentence[LC_ERROR_BYTES_MAX] = "";
	/* The last answer that put the request off (NOT_LEADER, BUSY,
	 * BEHIND): when the tries after it get no answer at all, it says
	 * more than "no replica answered" (the replica that did answer knew
	 * no leader, for example). */
	int put_off = 0;
	char put_off_sentence[LC_ERROR_BYTES_MAX] = "";
	for (;;) {
		if (is_stopped(st))
			return lci_fail(
				LC_ECANCELED,
				"stopped after %u tries in %llu ms", res->sends,
				(unsigned long long)((lc_now_us() - start) /
						     1000));
		uint64_t now = lc_now_us();
		if (now >= deadline)
			break;
		uint32_t n = lci_ep_count(c);
		i = ep_usable(c, i % n);
		uint64_t left_ms = (deadline - now + 999) / 1000;
		req->known_position = atomic_load(&c->known);
		uint64_t sent;
		Lockd__Reply *rep;
		int rv = lci_attempt(
			c, i, req, per_try_ms < left_ms ? per_try_ms : left_ms,
			st, &sent, &rep);
		if (rv == LC_ENOMEM || rv == LC_ECANCELED)
			return rv;
		if (res->sends++ == 0)
			res->first_sent_us = sent;
		if (rv != LC_OK) {
			last = rv;
			snprintf(last_sentence, sizeof last_sentence, "%s",
				 last_error);
			if (rv == LC_EPROTO)
				pause_before_retry(&pause_ms, deadline);
			i++;
			continue;
		}
		lci_see_position(c, rep->position);
		switch (rep->status) {
		case LOCKD__STATUS__STATUS_NOT_LEADER: {
			last = LC_ENOLEADER;
			snprintf(last_sentence, sizeof last_sentence, "%s: %s",
				 c->net->ep[i].url, rep->error);
			put_off = last;
			memcpy(put_off_sentence, last_sentence,
			       sizeof put_off_sentence);
			int h = rep->leader_addr[0] != '\0'
					? ep_find_or_add(c, rep->leader_addr)
					: -1;
			lockd__reply__free_unpacked(rep, NULL);
			if (h >= 0 && (uint32_t)h != i &&
			    !ep_down(c, (uint32_t)h) && hops < n) {
				/* Follow the hint at once, but a cell whose
				 * hints go round in circles gets pauses. */
				hops++;
				i = (uint32_t)h;
				atomic_store(&c->net->leader, i);
			} else {
				hops = 0;
				i++;
				pause_before_retry(&pause_ms, deadline);
			}
			continue;
		}
		case LOCKD__STATUS__STATUS_BUSY:
			last = LC_EBUSY;
			snprintf(last_sentence, sizeof last_sentence, "%s: %s",
				 c->net->ep[i].url, rep->error);
			put_off = last;
			memcpy(put_off_sentence, last_sentence,
			       sizeof put_off_sentence);
			lockd__reply__free_unpacked(rep, NULL);
			pause_before_retry(&pause_ms, deadline);
			continue;
		case LOCKD__STATUS__STATUS_BEHIND:
			/* Another replica may have applied further. */
			last = LC_EBEHIND;
			snprintf(last_sentence, sizeof last_sentence, "%s: %s",
				 c->net->ep[i].url, rep->error);
			put_off = last;
			memcpy(put_off_sentence, last_sentence,
			       sizeof put_off_sentence);
			lockd__reply__free_unpacked(rep, NULL);
			i++;
			if (i % n == 0)
				pause_before_retry(&pause_ms, deadline);
			continue;
		default:
			if (write)
				atomic_store(&c->net->leader, i);
			res->rep = rep;
			res->endpoint = i;
			return LC_OK;
		}
	}
	if (last == LC_EUNAVAILABLE && put_off != 0)
		return lci_fail(
			put_off,
			"%s (%u tries in %llu ms; %s; then no answer: "
			"%s)",
			lc_strerror(put_off), res->sends,
			(unsigned long long)((lc_now_us() - start) / 1000),
			put_off_sentence, last_sentence);
	return lci_fail(last, "%s (%u tries in %llu ms; last: %s)",
			lc_strerror(last), res->sends,
			(unsigned long long)((lc_now_us() - start) / 1000),
			last_sentence[0] ? last_sentence : "none");
}

/* The code for a final answer (lci_call() has dealt with NOT_LEADER, BUSY and
 * BEHIND); the cell's sentence becomes lc_last_error(). */
int lci_reply_code(const Lockd__Reply *r)
{
	int code;
	switch (r->status) {
	case LOCKD__STATUS__STATUS_OK:
	case LOCKD__STATUS__STATUS_INVALID:
		break;
	case LOCKD__STATUS__STATUS_TIMEOUT:
		return lci_fail(LC_ETIMEOUT, "%s",
				r->error[0] ? r->error
					    : lc_strerror(LC_ETIMEOUT));
	default:
		return lci_fail(LC_EPROTO, "unexpected reply status %d",
				(int)r->status);
	}
	switch (r->lease_status) {
	case LOCKD__LEASE_STATUS__LEASE_OK:
	case LOCKD__LEASE_STATUS__LEASE_GRANTED:
		code = r->status == LOCKD__STATUS__STATUS_OK ? LC_OK
							     : LC_EINVAL;
		break;
	case LOCKD__LEASE_STATUS__LEASE_QUEUED:
	case LOCKD__LEASE_STATUS__LEASE_HELD:
		code = LC_EHELD;
		break;
	case LOCKD__LEASE_STATUS__LEASE_NOT_HOLDER:
	case LOCKD__LEASE_STATUS__LEASE_E_NOT_OWNER: /* the sentence says so */
		code = LC_ENOTHOLDER;
		break;
	case LOCKD__LEASE_STATUS__LEASE_NO_SUCH_LEASE:
		code = LC_ENOSUCH;
		break;
	case LOCKD__LEASE_STATUS__LEASE_E_TOO_MANY_LEASES:
	case LOCKD__LEASE_STATUS__LEASE_E_TOO_MANY_WAITERS:
	case LOCKD__LEASE_STATUS__LEASE_E_TABLE_FULL:
		code = LC_ELIMIT;
		break;
	case LOCKD__LEASE_STATUS__LEASE_SUPERSEDED:
		code = LC_EBUSY; /* write_call's new tries all came too late */
		break;
	default:
		code = LC_EINVAL;
		break;
	}
	if (code != LC_OK)
		lci_fail(code, "%s",
			 r->error[0] ? r->error : lc_strerror(code));
	return code;
}

/* ---- names --------------------------------------------------------------- */

int lci_check_name(const char *name)
{
	if (name == NULL)
		return lci_fail(LC_EINVAL, "the name is NULL");
	size_t len = strlen(name);
	if (len == 0 || len > LC_NAME_BYTES_MAX)
		return lci_fail(
			LC_EINVAL,
			"a name is 1-%u bytes of [A-Za-z0-9._/:-], not %zu",
			LC_NAME_BYTES_MAX, len);
	return LC_OK;
}
