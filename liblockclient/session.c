/* liblockclient sessions: see lockclient.h ("sessions").
 *
 * Two threads per session, one mutex. The renewer sleeps until the earliest
 * lease's renew point (deadline - ttl x renew_permille), calls lc_renew
 * without the mutex, and applies the answer: a lease granted before the
 * renewal was sent and missing from it is lost; one granted after it (the
 * client's writes are serialised, so its grant was sent later) is left
 * alone. The monitor sleeps until the next deadline or jeopardy point,
 * compares each lease's state with the one it last reported, and calls the
 * callback without the mutex. All times are lc_now_us (CLOCK_MONOTONIC).
 *
 * Close must not wait for a renewal talking to a dark cell (up to the
 * client's call_timeout_ms): the renewer's calls go through a stop
 * (lc_internal.h) that close pulls, which abandons the try in flight. The
 * same stop then bounds close's releases. A lease whose release the cell
 * did not acknowledge is reported LOST, never RELEASED: it ends at the cell
 * by expiring, which is safe.
 */
#include "lc_internal.h"
#include "lockclient.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RETRY_MS_DEFAULT 100u
/* Never renew twice within this long, whatever the deadlines say. */
#define RENEW_GAP_US 10000u
/* Close releases leases only while the cell keeps answering: it gives up
 * once the cell has said nothing for this long (from the start of close, or
 * its last answer). */
#define CLOSE_QUIET_US 1000000u

typedef struct s_lease {
	lc_lease l;
	lc_lease_state reported; /* 0: not reported yet */
	bool lost, released, releasing;
} s_lease;

struct lc_session {
	lc_client *c;
	lci_stop *calls; /* the renewer's calls, then close's releases */
	lc_session_options o;
	pthread_mutex_t mu;
	pthread_cond_t renew_cv, mon_cv;
	pthread_t renewer, monitor;
	bool stop_renew, stop;
	bool failing;      /* the last renewal failed */
	bool in_flight;    /* a renewal is under way */
	uint64_t retry_at; /* failing: no renewal before */
	uint64_t renew_gap_at;
	size_t n, cap;
	s_lease *v;
};

const char *lc_lease_state_name(lc_lease_state st)
{
	switch (st) {
	case LC_LEASE_HELD:
		return "held";
	case LC_LEASE_JEOPARDY:
		return "jeopardy";
	case LC_LEASE_LOST:
		return "lost";
	case LC_LEASE_RELEASED:
		return "released";
	}
	return "unknown";
}

void lc_session_options_init(lc_session_options *o)
{
	memset(o, 0, sizeof *o);
}

static bool active(const s_lease *e)
{
	return !e->lost && !e->released;
}

static s_lease *find_active(lc_sess *s, const char *name)
{
	for (size_t i = 0; i < s->n; i++)
		if (active(&s->v[i]) && strcmp(s->v[i].l.name, name) == 0)
			return &s->v[i];
	return NULL;
}

static void wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, uint64_t at)
{
	if (at == UINT64_MAX) {
		pthread_cond_wait(cv, mu);
		return;
	}
	struct timespec ts = {(time_t)(at / 1000000u),
			      (long)(at % 1000000u) * 1000L};
	pthread_cond_timedwait(cv, mu, &ts);
}

static uint64_t before_deadline_us(const s_lease *e, uint32_t permille)
{
	uint64_t before = (uint64_t)e->l.ttl_ms * permille;
	return e->l.deadline_us > before ? e->l.deadline_us - before : 0;
}

static void *renewer_main(void *arg)
{
	lc_sess *s = arg;
	lc_renewal *r = malloc(sizeof *r);
	pthread_mutex_lock(&s->mu);
	while (!s->stop_renew) {
		uint64_t now = lc_now_us(), next = UINT64_MAX;
		for (size_t i = 0; i < s->n; i++) {
			s_lease *e = &s->v[i];
			if (!active(e) || e->releasing)
				continue;
			uint64_t at = before_deadline_us(
				e, s->o.renew_remaining_permille);
			if (at < next)
				next = at;
		}
		if (next != UINT64_MAX) {
			if (s->failing && next < s->retry_at)
				next = s->retry_at;
			if (next < s->renew_gap_at)
				next = s->renew_gap_at;
		}
		if (r == NULL || next == UINT64_MAX || now < next) {
			wait_until(&s->renew_cv, &s->mu,
				   r == NULL ? UINT64_MAX : next);
			continue;
		}
		s->in_flight = true;
		pthread_mutex_unlock(&s->mu);
		int rv = lci_renew(s->c, r, s->calls);
		pthread_mutex_lock(&s->mu);
		s->in_flight = false;
		now = lc_now_us();
		s->renew_gap_at = now + RENEW_GAP_US;
		if (rv == LC_ECANCELED) {
			/* Close stopped it: it says nothing of the cell. */
		} else if (rv == LC_OK) {
			s->failing = false;
			for (size_t i = 0; i < s->n; i++) {
				s_lease *e = &s->v[i];
				if (!active(e) || e->releasing ||
				    e->l.sent_us >= r->sent_us)
					continue;
				if (lc_renewal_apply(s->c, r, &e->l, 1) != 0)
					e->lost = true;
			}
		} else {
			s->failing = true;
			s->retry_at = now + (uint64_t)s->o.retry_ms * 1000u;
		}
		pthread_cond_broadcast(&s->mon_cv);
	}
	pthread_mutex_unlock(&s->mu);
	free(r);
	return NULL;
}

typedef struct event {
	lc_lease_state st;
	uint64_t token;
	char name[LC_NAME_BYTES_MAX + 1];
} event;

static void *monitor_main(void *arg)
{
	lc_sess *s = arg;
	event *ev = NULL;
	size_t ev_cap = 0;
	pthread_mutex_lock(&s->mu);
	for (;;) {
		uint64_t now = lc_now_us(), next = UINT64_MAX;
		size_t nev = 0;
		if (ev_cap < s->n) {
			event *g = realloc(ev, s->n * sizeof *ev);
			if (g != NULL) {
				ev = g;
				ev_cap = s->n;
			}
		}
		for (size_t i = 0; i < s->n; i++) {
			s_lease *e = &s->v[i];
			uint64_t jeop = before_deadline_us(
				e, s->o.jeopardy_remaining_permille);
			lc_lease_state st;
			if (e->released)
				st = LC_LEASE_RELEASED;
			else if (e->lost || now >= e->l.deadline_us)
				st = LC_LEASE_LOST;
			else if ((s->failing || s->in_flight) && now >= jeop)
				st = LC_LEASE_JEOPARDY;
			else
				st = LC_LEASE_HELD;
			if (st == LC_LEASE_LOST)
				e->lost = true;
			if (st != e->reported) {
				if (nev >= ev_cap)
					break; /* out of memory: next round */
				ev[nev].st = st;
				ev[nev].token = e->l.token;
				memcpy(ev[nev].name, e->l.name,
				       sizeof ev[nev].name);
				nev++;
				e->reported = st;
			}
			if (st == LC_LEASE_LOST || st == LC_LEASE_RELEASED) {
				s->v[i] = s->v[--s->n];
				i--;
				continue;
			}
			if (jeop > now && jeop < next)
				next = jeop;
			if (e->l.deadline_us < next)
				next = e->l.deadline_us;
		}
		if (nev > 0) {
			pthread_mutex_unlock(&s->mu);
			for (size_t i = 0; i < nev; i++)
				if (s->o.callback != NULL)
					s->o.callback(ev[i].st, ev[i].name,
						      ev[i].token, s->o.arg);
			pthread_mutex_lock(&s->mu);
			continue;
		}
		if (s->stop)
			break;
		if (ev_cap < s->n)
			next = now + 10000u; /* retry the allocation */
		wait_until(&s->mon_cv, &s->mu, next);
	}
	pthread_mutex_unlock(&s->mu);
	free(ev);
	return NULL;
}

int lc_session_open(lc_client *c, const lc_session_options *opt, lc_sess **out)
{
	if (out == NULL || c == NULL)
		return LC_EINVAL;
	*out = NULL;
	lc_sess *s = calloc(1, sizeof *s);
	if (s == NULL)
		return LC_ENOMEM;
	s->c = c;
	if (opt != NULL)
		s->o = *opt;
	if (s->o.renew_remaining_permille == 0)
		s->o.renew_remaining_permille = LC_RENEW_REMAINING_PERMILLE;
	if (s->o.jeopardy_remaining_permille == 0)
		s->o.jeopardy_remaining_permille =
			s->o.renew_remaining_permille / 2;
	if (s->o.retry_ms == 0)
		s->o.retry_ms = RETRY_MS_DEFAULT;
	if (s->o.renew_remaining_permille > 999 ||
	    s->o.jeopardy_remaining_permille > 999) {
		free(s);
		return LC_EINVAL;
	}
	if (lci_stop_new(c, &s->calls) != LC_OK) {
		free(s);
		return LC_ENOMEM;
	}
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->renew_cv, &ca);
	pthread_cond_init(&s->mon_cv, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&s->renewer, NULL, renewer_main, s) != 0) {
		lci_stop_free(s->calls);
		free(s);
		return LC_ENOMEM;
	}
	if (pthread_create(&s->monitor, NULL, monitor_main, s) != 0) {
		pthread_mutex_lock(&s->mu);
		s->stop_renew = true;
		pthread_cond_broadcast(&s->renew_cv);
		pthread_mutex_unlock(&s->mu);
		pthread_join(s->renewer, NULL);
		lci_stop_free(s->calls);
		free(s);
		return LC_ENOMEM;
	}
	*out = s;
	return LC_OK;
}

int lc_session_acquire(lc_sess *s, const char *name, uint32_t ttl_ms,
		       uint32_t wait_ms, const void *value, size_t value_len,
		       lc_lease *out)
{
	if (s == NULL || out == NULL)
		return LC_EINVAL;
	int rv = lc_acquire(s->c, name, ttl_ms, wait_ms, value, value_len, out);
	if (rv != LC_OK)
		return rv;
	pthread_mutex_lock(&s->mu);
	s_lease *e = find_active(s, name);
	if (e == NULL) {
		if (s->n == s->cap) {
			size_t cap = s->cap ? 2 * s->cap : 8;
			s_lease *g = realloc(s->v, cap * sizeof *g);
			if (g == NULL) {
				pthread_mutex_unlock(&s->mu);
				lc_release(s->c, name, out->token);
				return LC_ENOMEM;
			}
			s->v = g;
			s->cap = cap;
		}
		e = &s->v[s->n++];
		memset(e, 0, sizeof *e);
	}
	e->l = *out;
	pthread_cond_broadcast(&s->renew_cv);
	pthread_cond_broadcast(&s->mon_cv);
	pthread_mutex_unlock(&s->mu);
	return LC_OK;
}

/* Whether the cell gave a release its final answer: released, or the lease
 * was already not the session's (expired, revoked). Anything else (no
 * answer, a stopped call, a reply that does not decode) may have left it
 * held. */
static bool release_answered(int rv)
{
	return rv != LC_EUNAVAILABLE && rv != LC_ENOLEADER && rv != LC_EBUSY &&
	       rv != LC_EBEHIND && rv != LC_ENOMEM && rv != LC_EPROTO &&
	       rv != LC_ECANCELED;
}

/* lc_session_release, its call stopped and bounded by st (may be NULL). */
static int release_with(lc_sess *s, const char *name, lci_stop *st)
{
	pthread_mutex_lock(&s->mu);
	s_lease *e = find_active(s, name);
	if (e == NULL || e->releasing) {
		pthread_mutex_unlock(&s->mu);
		return LC_ENOSUCH;
	}
	e->releasing = true;
	uint64_t token = e->l.token;
	pthread_mutex_unlock(&s->mu);

	int rv = lci_release(s->c, name, token, st);

	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < s->n; i++) {
		e = &s->v[i];
		if (!e->releasing || e->l.token != token)
			continue;
		e->releasing = false;
		if (release_answered(rv))
			e->released = true;
	}
	pthread_cond_broadcast(&s->mon_cv);
	pthread_cond_broadcast(&s->renew_cv);
	pthread_mutex_unlock(&s->mu);
	return rv;
}

int lc_session_release(lc_sess *s, const char *name)
{
	if (s == NULL || name == NULL)
		return LC_EINVAL;
	return release_with(s, name, NULL);
}

bool lc_session_lease(lc_sess *s, const char *name, lc_lease *out)
{
	if (s == NULL || name == NULL)
		return false;
	pthread_mutex_lock(&s->mu);
	s_lease *e = find_active(s, name);
	bool held = e != NULL && lc_lease_held(&e->l, lc_now_us());
	if (held && out != NULL)
		*out = e->l;
	pthread_mutex_unlock(&s->mu);
	return held;
}

lc_client *lci_sess_client(lc_sess *s)
{
	return s->c;
}

bool lc_session_held(lc_sess *s, const char *name)
{
	return lc_session_lease(s, name, NULL);
}

void lc_session_close(lc_sess *s)
{
	if (s == NULL)
		return;
	pthread_mutex_lock(&s->mu);
	s->stop_renew = true;
	pthread_cond_broadcast(&s->renew_cv);
	pthread_mutex_unlock(&s->mu);
	/* The renewal under way may be waiting out a dark cell. */
	lci_stop_now(s->calls);
	pthread_join(s->renewer, NULL);

	uint64_t quiet_end = lc_now_us() + CLOSE_QUIET_US;
	for (;;) {
		char name[LC_NAME_BYTES_MAX + 1] = "";
		pthread_mutex_lock(&s->mu);
		uint64_t now = lc_now_us();
		for (size_t i = 0; i < s->n; i++) {
			s_lease *e = &s->v[i];
			if (!active(e) || e->releasing)
				continue;
			if (now >= e->l.deadline_us || now >= quiet_end) {
				/* Past its deadline the belief is over
				 * anyway; past quiet_end the cell is not
				 * answering. Either way it ends at the cell
				 * by expiring. */
				e->lost = true;
				continue;
			}
			memcpy(name, e->l.name, sizeof name);
			break;
		}
		pthread_mutex_unlock(&s->mu);
		if (name[0] == '\0')
			break;
		lci_stop_until(s->calls, quiet_end);
		if (release_answered(release_with(s, name, s->calls)))
			quiet_end = lc_now_us() + CLOSE_QUIET_US;
		/* Unanswered: the lease may still be held at the cell until
		 * it expires, so it is LOST, not RELEASED; and close never
		 * loops forever on it. */
		pthread_mutex_lock(&s->mu);
		s_lease *e = find_active(s, name);
		if (e != NULL)
			e->lost = true;
		pthread_mutex_unlock(&s->mu);
	}

	pthread_mutex_lock(&s->mu);
	s->stop = true;
	pthread_cond_broadcast(&s->mon_cv);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->monitor, NULL);
	pthread_cond_destroy(&s->renew_cv);
	pthread_cond_destroy(&s->mon_cv);
	pthread_mutex_destroy(&s->mu);
	lci_stop_free(s->calls);
	free(s->v);
	free(s);
}
