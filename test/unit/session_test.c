/* liblockclient sessions and elections without a daemon: a fake replica
 * (test/unit/fake_replica.c) grants leases and answers
 * renewals as the test says (listing the tokens, leaving one out, or not
 * answering at all), and the tests check what the session reports and
 * when, against the conservative deadline (lc_time.h), and that closing a
 * session does not wait for a silent cell. Also lc_campaign, lc_leader and
 * lc_observe. Criterion forks per test, so every socket and global is per
 * test. TTLs are a few hundred ms. Every test has .timeout = 20: with
 * tests of different timeouts in one binary, criterion 2.4.1's runner was
 * seen to leak 48 bytes, which fails the run under LeakSanitizer. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include "client.pb-c.h"
#include "fake_replica.h"
#include "lockclient.h"

/* How renewals are answered: the test's f->mode. */
typedef enum renew_mode {
	RENEW_LIST, /* renewals list every token granted */
	RENEW_OMIT, /* renewals list none */
} renew_mode;

/* A leader: grants tokens 100, 101, ...; renewals as f->mode says;
 * releases are accepted. Called with f->mu held. */
static bool ans_leader(fake *f, const Lockd__Request *req, Lockd__Reply *rep,
		       unsigned k)
{
	(void)k;
	rep->status = LOCKD__STATUS__STATUS_OK;
	rep->position = 10 + k;
	switch (req->op) {
	case LOCKD__OP__OP_ACQUIRE:
		rep->lease_status = LOCKD__LEASE_STATUS__LEASE_GRANTED;
		rep->token = 100 + f->ngranted;
		if (f->ngranted < 16)
			f->granted[f->ngranted++] = rep->token;
		break;
	case LOCKD__OP__OP_RENEW:
		rep->lease_status = LOCKD__LEASE_STATUS__LEASE_OK;
		if (atomic_load(&f->mode) == RENEW_LIST) {
			rep->n_renewed = f->ngranted;
			rep->renewed = f->granted;
		}
		break;
	default:
		rep->lease_status = LOCKD__LEASE_STATUS__LEASE_OK;
		break;
	}
	return true;
}

/* ---- what the session reported ------------------------------------------ */

#define EVENTS_MAX 64

typedef struct event {
	lc_lease_state st;
	uint64_t token, at_us;
	char name[64];
} event;

static pthread_mutex_t ev_mu = PTHREAD_MUTEX_INITIALIZER;
static event events[EVENTS_MAX];
static unsigned nevents;

static void on_event(lc_lease_state st, const char *name, uint64_t token,
		     void *arg)
{
	(void)arg;
	pthread_mutex_lock(&ev_mu);
	if (nevents < EVENTS_MAX) {
		event *e = &events[nevents++];
		e->st = st;
		e->token = token;
		e->at_us = lc_now_us();
		snprintf(e->name, sizeof e->name, "%s", name);
	}
	pthread_mutex_unlock(&ev_mu);
}

/* The first event st for token (its copy in *out), waiting up to ms. */
static bool wait_event(lc_lease_state st, uint64_t token, unsigned ms,
		       event *out)
{
	uint64_t end = lc_now_us() + ms * 1000ull;
	for (;;) {
		pthread_mutex_lock(&ev_mu);
		for (unsigned i = 0; i < nevents; i++) {
			if (events[i].st == st && events[i].token == token) {
				*out = events[i];
				pthread_mutex_unlock(&ev_mu);
				return true;
			}
		}
		pthread_mutex_unlock(&ev_mu);
		if (lc_now_us() >= end)
			return false;
		struct timespec ts = {0, 2000000L};
		nanosleep(&ts, NULL);
	}
}

static unsigned count_events(lc_lease_state st)
{
	unsigned n = 0;
	pthread_mutex_lock(&ev_mu);
	for (unsigned i = 0; i < nevents; i++)
		n += events[i].st == st;
	pthread_mutex_unlock(&ev_mu);
	return n;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* A client of f with short timeouts (a silent replica fails a renewal
 * within 600 ms), but long enough for a loaded machine to connect. */
static lc_client *client_of(fake *f)
{
	lc_options o;
	lc_options_init(&o);
	o.attempt_timeout_ms = 300;
	o.call_timeout_ms = 600;
	lc_client *c;
	cr_assert_eq(lc_open(f->url, &o, &c), LC_OK);
	return c;
}

static lc_sess *session_of(lc_client *c)
{
	lc_session_options so;
	lc_session_options_init(&so);
	so.callback = on_event;
	so.retry_ms = 20;
	lc_sess *s;
	cr_assert_eq(lc_session_open(c, &so, &s), LC_OK);
	return s;
}

/* ---- sessions ------------------------------------------------------------ */

Test(session, renews_before_the_deadline, .timeout = 20)
{
	fake f;
	fake_start(&f, ans_leader);
	lc_client *c = client_of(&f);
	lc_sess *s = session_of(c);
	lc_lease l;
	cr_assert_eq(lc_session_acquire(s, "a", 300, 0, "v", 1, &l), LC_OK,
		     "%s", lc_last_error());
	cr_assert_eq(l.token, 100);
	cr_assert(lc_session_held(s, "a"));
	event e;
	cr_assert(wait_event(LC_LEASE_HELD, 100, 500, &e));

	/* Three TTLs: held throughout, renewed several times, the first
	 * renewal sent before the grant's deadline. */
	uint64_t end = lc_now_us() + 900000u;
	while (lc_now_us() < end) {
		cr_assert(lc_session_held(s, "a"));
		sleep_ms(10);
	}
	uint64_t first;
	unsigned renews = fake_ops(&f, LOCKD__OP__OP_RENEW, &first);
	cr_assert_geq(renews, 3, "%u renewals", renews);
	cr_assert_lt(first, l.deadline_us);
	lc_lease now;
	cr_assert(lc_session_lease(s, "a", &now));
	cr_assert_gt(now.deadline_us, l.deadline_us);
	cr_assert_eq(now.token, 100);
	cr_assert_eq(count_events(LC_LEASE_JEOPARDY), 0);
	cr_assert_eq(count_events(LC_LEASE_LOST), 0);
	lc_session_close(s);
	lc_close(c);
	fake_stop(&f);
}

Test(session, a_renewal_without_the_token_loses_the_lease, .timeout = 20)
{
	fake f;
	fake_start(&f, ans_leader);
	atomic_store(&f.mode, RENEW_OMIT);
	lc_client *c = client_of(&f);
	lc_sess *s = session_of(c);
	lc_lease l;
	cr_assert_eq(lc_session_acquire(s, "a", 400, 0, NULL, 0, &l), LC_OK,
		     "%s", lc_last_error());
	event e;
	cr_assert(wait_event(LC_LEASE_LOST, l.token, 1000, &e));
	/* Lost by the renewal's answer, before the deadline. */
	cr_assert_lt(e.at_us, l.deadline_us);
	cr_assert_geq(fake_ops(&f, LOCKD__OP__OP_RENEW, NULL), 1);
	cr_assert_not(lc_session_held(s, "a"));
	cr_assert_eq(lc_session_release(s, "a"), LC_ENOSUCH);
	lc_session_close(s);
	cr_assert_eq(count_events(LC_LEASE_RELEASED), 0);
	lc_close(c);
	fake_stop(&f);
}

Test(session, a_silent_cell_means_jeopardy_then_lost_at_the_deadline,
     .timeout = 20)
{
	fake f;
	fake_start(&f, ans_leader);
	lc_client *c = client_of(&f);
	lc_sess *s = session_of(c);
	lc_lease l;
	const uint32_t ttl = 600;
	cr_assert_eq(lc_session_acquire(s, "a", ttl, 0, NULL, 0, &l), LC_OK,
		     "%s", lc_last_error());
	atomic_store(&f.silent, true); /* nothing is answered any more */

	/* Held (locally) right up to the deadline, never after. */
	uint64_t last_held = 0, first_not = 0;
	while (first_not == 0) {
		uint64_t before = lc_now_us();
		bool held = lc_session_held(s, "a");
		uint64_t after = lc_now_us();
		if (held) {
			cr_assert_lt(before, l.deadline_us);
			last_held = after;
		} else {
			first_not = after;
		}
		cr_assert_lt(after, l.deadline_us + 1000000u);
		sleep_ms(1);
	}
	cr_assert_geq(first_not, l.deadline_us);
	cr_assert_gt(last_held + 50000u, l.deadline_us, "held ended early");

	event jeop, lost;
	cr_assert(wait_event(LC_LEASE_LOST, l.token, 1000, &lost));
	cr_assert(wait_event(LC_LEASE_JEOPARDY, l.token, 0, &jeop));
	/* JEOPARDY once less than a sixth of the TTL is left (the default:
	 * half of the renew third), LOST at the deadline, not before. */
	uint64_t jeop_at = l.deadline_us - (uint64_t)ttl * (333u / 2);
	cr_assert_geq(jeop.at_us, jeop_at);
	cr_assert_lt(jeop.at_us, l.deadline_us);
	cr_assert_geq(lost.at_us, l.deadline_us);
	cr_assert_lt(lost.at_us, l.deadline_us + 200000u);
	cr_assert_geq(fake_ops(&f, LOCKD__OP__OP_RENEW, NULL), 1);
	cr_assert_eq(count_events(LC_LEASE_HELD), 1);
	lc_session_close(s);
	cr_assert_eq(count_events(LC_LEASE_RELEASED), 0);
	lc_close(c);
	fake_stop(&f);
}

Test(session, close_releases_and_reports_released, .timeout = 20)
{
	fake f;
	fake_start(&f, ans_leader);
	lc_client *c = client_of(&f);
	lc_sess *s = session_of(c);
	lc_lease a, b;
	cr_assert_eq(lc_session_acquire(s, "a", 5000, 0, NULL, 0, &a), LC_OK);
	cr_assert_eq(lc_session_acquire(s, "b", 5000, 0, NULL, 0, &b), LC_OK);
	lc_session_close(s);
	event e;
	cr_assert(wait_event(LC_LEASE_RELEASED, a.token, 0, &e));
	cr_assert_str_eq(e.name, "a");
	cr_assert(wait_event(LC_LEASE_RELEASED, b.token, 0, &e));
	cr_assert_str_eq(e.name, "b");
	cr_assert_eq(fake_ops(&f, LOCKD__OP__OP_RELEASE, NULL), 2);
	cr_assert_eq(count_events(LC_LEASE_LOST), 0);
	lc_close(c);
	fake_stop(&f);
}

/* lockctl's timeouts: a renewal to a silent cell is under way for up to 5 s,
 * much longer than the TTLs below. */
static lc_client *slow_client_of(fake *f)
{
	lc_options o;
	lc_options_init(&o);
	o.attempt_timeout_ms = 1000;
	o.call_timeout_ms = 5000;
	lc_client *c;
	cr_assert_eq(lc_open(f->url, &o, &c), LC_OK);
	return c;
}

/* Bounds below are generous (a loaded 2-core machine): what they catch is
 * close waiting out the client's 5 s call timeout. */
#define CLOSE_US_MAX 1500000u

Test(session, close_after_lost_does_not_wait_for_the_renewal_in_flight,
     .timeout = 20)
{
	fake f;
	fake_start(&f, ans_leader);
	lc_client *c = slow_client_of(&f);
	lc_sess *s = session_of(c);
	lc_lease l;
	cr_assert_eq(lc_session_acquire(s, "a", 600, 0, NULL, 0, &l), LC_OK,
		     "%s", lc_last_error());
	atomic_store(&f.silent, true);
	event lost;
	cr_assert(wait_event(LC_LEASE_LOST, l.token, 2000, &lost));
	/* The renewal sent before the deadline is still waiting for its
	 * answer, for seconds yet. */
	cr_assert_geq(fake_ops(&f, LOCKD__OP__OP_RENEW, NULL), 1);

	uint64_t t0 = lc_now_us();
	lc_session_close(s);
	uint64_t took = lc_now_us() - t0;
	cr_assert_lt(took, CLOSE_US_MAX, "close took %llu ms",
		     (unsigned long long)took / 1000);
	cr_log_info("close after lost took %llu ms",
		    (unsigned long long)took / 1000);
	/* Nothing to release: the lease was already lost. */
	cr_assert_eq(fake_ops(&f, LOCKD__OP__OP_RELEASE, NULL), 0);
	cr_assert_eq(count_events(LC_LEASE_RELEASED), 0);
	cr_assert_eq(count_events(LC_LEASE_LOST), 1);
	lc_close(c);
	fake_stop(&f);
}

Test(session, close_on_a_silent_cell_gives_up_the_release_and_reports_lost,
     .timeout = 20)
{
	fake f;
	fake_start(&f, ans_leader);
	lc_client *c = slow_client_of(&f);
	lc_sess *s = session_of(c);
	lc_lease l;
	cr_assert_eq(lc_session_acquire(s, "a", 10000, 0, NULL, 0, &l), LC_OK,
		     "%s", lc_last_error());
	event e;
	cr_assert(wait_event(LC_LEASE_HELD, l.token, 1000, &e));
	atomic_store(&f.silent, true);

	uint64_t t0 = lc_now_us();
	lc_session_close(s);
	uint64_t took = lc_now_us() - t0;
	/* About a second of trying to release (CLOSE_QUIET_US), not the
	 * client's 5 s call timeout. */
	cr_assert_lt(took, 1000000u + CLOSE_US_MAX, "close took %llu ms",
		     (unsigned long long)took / 1000);
	cr_log_info("close with a held lease took %llu ms",
		    (unsigned long long)took / 1000);
	cr_assert_geq(fake_ops(&f, LOCKD__OP__OP_RELEASE, NULL), 1);
	/* The cell never acknowledged the release: the lease ends there by
	 * expiring, and the session says LOST, not RELEASED. */
	cr_assert(wait_event(LC_LEASE_LOST, l.token, 0, &e));
	cr_assert_lt(e.at_us, l.deadline_us);
	cr_assert_eq(count_events(LC_LEASE_RELEASED), 0);
	lc_close(c);
	fake_stop(&f);
}

static void *acquire_b(void *arg)
{
	lc_lease l;
	int rv = lc_acquire(arg, "b", 1000, 0, NULL, 0, &l);
	return (void *)(intptr_t)rv;
}

Test(session, close_does_not_wait_for_another_write_of_the_client,
     .timeout = 20)
{
	fake f;
	fake_start(&f, ans_leader);
	lc_client *c = slow_client_of(&f);
	lc_sess *s = session_of(c);
	lc_lease l;
	cr_assert_eq(lc_session_acquire(s, "a", 600, 0, NULL, 0, &l), LC_OK,
		     "%s", lc_last_error());
	/* The user's own acquire on the client holds its write turn for the
	 * 5 s call timeout: the renewal queues behind it. */
	atomic_store(&f.silent, true);
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, acquire_b, c), 0);
	event lost;
	cr_assert(wait_event(LC_LEASE_LOST, l.token, 2000, &lost));

	uint64_t t0 = lc_now_us();
	lc_session_close(s);
	uint64_t took = lc_now_us() - t0;
	cr_assert_lt(took, CLOSE_US_MAX, "close took %llu ms",
		     (unsigned long long)took / 1000);
	cr_log_info("close behind another write took %llu ms",
		    (unsigned long long)took / 1000);
	void *rv;
	pthread_join(t, &rv);
	cr_assert_eq((intptr_t)rv, LC_EUNAVAILABLE);
	cr_assert_eq(count_events(LC_LEASE_RELEASED), 0);
	lc_close(c);
	fake_stop(&f);
}

/* ---- elections ----------------------------------------------------------- */

/* The group is held by session 77 for the first `busy_tries` acquires
 * (each a wait that runs out), then granted. GET: positions 10, 11, ...;
 * held by 77 (token 5, value "old") for the first 3 reads, then free. */
static atomic_uint busy_tries;

static bool ans_group(fake *f, const Lockd__Request *req, Lockd__Reply *rep,
		      unsigned k)
{
	static Lockd__Lease lease = LOCKD__LEASE__INIT;
	static unsigned acquires, gets;
	(void)f;
	(void)k;
	rep->status = LOCKD__STATUS__STATUS_OK;
	switch (req->op) {
	case LOCKD__OP__OP_ACQUIRE:
		if (acquires++ < atomic_load(&busy_tries)) {
			rep->status = LOCKD__STATUS__STATUS_TIMEOUT;
			rep->holder = 77;
			rep->error = (char *)"the wait ran out";
		} else {
			rep->lease_status = LOCKD__LEASE_STATUS__LEASE_GRANTED;
			rep->token = 9;
		}
		break;
	case LOCKD__OP__OP_GET:
		rep->position = 10 + gets;
		if (gets++ < 3) {
			lease.name = (char *)"grp";
			lease.holder = 77;
			lease.token = 5;
			lease.ttl_ms = 1000;
			lease.value.data = (uint8_t *)"old";
			lease.value.len = 3;
			rep->lease = &lease;
			rep->lease_status = LOCKD__LEASE_STATUS__LEASE_OK;
		} else {
			rep->lease_status =
				LOCKD__LEASE_STATUS__LEASE_NO_SUCH_LEASE;
		}
		break;
	case LOCKD__OP__OP_WATCH:
		/* The feed: free at 12, holder 88 (token 6) at 14, nothing
		 * more up to 20. From 3 it has lost the history. */
		lease.name = (char *)"grp";
		lease.holder = 88;
		lease.token = 6;
		lease.ttl_ms = 1000;
		lease.value.data = (uint8_t *)"new";
		lease.value.len = 3;
		if (req->after_position == 3) {
			rep->position = 20;
			rep->history_lost = true;
			rep->lease = &lease;
		} else if (req->after_position < 12) {
			rep->position = 12;
			rep->lease_status =
				LOCKD__LEASE_STATUS__LEASE_NO_SUCH_LEASE;
		} else if (req->after_position < 14) {
			rep->position = 14;
			rep->lease = &lease;
		} else {
			struct timespec ts = {0, 2000000};
			nanosleep(&ts, NULL);
			rep->status = LOCKD__STATUS__STATUS_TIMEOUT;
			rep->position = 20;
		}
		break;
	default:
		rep->lease_status = LOCKD__LEASE_STATUS__LEASE_OK;
		break;
	}
	return true;
}

static unsigned progress_calls;
static uint64_t progress_holder;

static void on_progress(int rv, uint64_t holder, void *arg)
{
	(void)arg;
	cr_assert_eq(rv, LC_ETIMEOUT);
	progress_calls++;
	progress_holder = holder;
}

static unsigned cancel_polls;

static bool cancel_third(void *arg)
{
	(void)arg;
	return ++cancel_polls >= 3;
}

Test(election, campaign_waits_until_elected_then_resigns, .timeout = 20)
{
	atomic_store(&busy_tries, 2);
	fake f;
	fake_start(&f, ans_group);
	lc_client *c = client_of(&f);
	lc_sess *s = session_of(c);
	lc_campaign_options co;
	lc_campaign_options_init(&co);
	co.wait_ms = 20;
	co.progress = on_progress;
	lc_lease l;
	cr_assert_eq(lc_campaign(s, "grp", "me", 2, 5000, &co, &l), LC_OK, "%s",
		     lc_last_error());
	cr_assert_eq(l.token, 9);
	cr_assert_eq(progress_calls, 2);
	cr_assert_eq(progress_holder, 77);
	cr_assert(lc_session_held(s, "grp"));
	event e;
	cr_assert(wait_event(LC_LEASE_HELD, 9, 500, &e));
	cr_assert_eq(lc_resign(s, "grp"), LC_OK);
	cr_assert_not(lc_session_held(s, "grp"));
	cr_assert(wait_event(LC_LEASE_RELEASED, 9, 500, &e));
	lc_session_close(s);
	lc_close(c);
	fake_stop(&f);
}

Test(election, campaign_stops_on_timeout_and_on_cancel, .timeout = 20)
{
	atomic_store(&busy_tries, 1000000);
	fake f;
	fake_start(&f, ans_group);
	lc_client *c = client_of(&f);
	lc_sess *s = session_of(c);
	lc_campaign_options co;
	lc_campaign_options_init(&co);
	co.wait_ms = 20;
	co.timeout_ms = 400;
	lc_lease l;
	uint64_t t0 = lc_now_us();
	cr_assert_eq(lc_campaign(s, "grp", NULL, 0, 5000, &co, &l),
		     LC_ETIMEOUT);
	/* The timeout is checked between tries: a try in progress may run
	 * past it by up to the client's call timeout. */
	uint64_t took = lc_now_us() - t0;
	cr_assert(took >= 400000u && took < 3000000u, "%llu us",
		  (unsigned long long)took);
	cr_assert_eq(l.holder, 77);
	cr_assert_eq(l.token, 0);

	co.timeout_ms = 0;
	co.cancelled = cancel_third;
	cr_assert_eq(lc_campaign(s, "grp", NULL, 0, 5000, &co, &l),
		     LC_ECANCELED);
	cr_assert_eq(cancel_polls, 3);
	cr_assert_not(lc_session_held(s, "grp"));
	cr_assert_eq(lc_campaign(s, "", NULL, 0, 5000, &co, &l), LC_EINVAL);
	lc_session_close(s);
	lc_close(c);
	fake_stop(&f);
}

/* The group is held by the asking session itself, as after an operator's
 * revoke of its lease: the cell answers HELD at once (a session cannot
 * queue behind itself) until the revoked lease expires. */
static bool ans_held_by_self(fake *f, const Lockd__Request *req,
			     Lockd__Reply *rep, unsigned k)
{
	(void)f;
	(void)k;
	rep->status = LOCKD__STATUS__STATUS_OK;
	rep->lease_status = req->op == LOCKD__OP__OP_ACQUIRE
				    ? LOCKD__LEASE_STATUS__LEASE_HELD
				    : LOCKD__LEASE_STATUS__LEASE_OK;
	rep->holder = req->session;
	rep->error = (char *)"held by another session";
	return true;
}

static unsigned own_calls;

static void on_own(int rv, uint64_t holder, void *arg)
{
	lc_client *c = arg;
	cr_assert_eq(rv, LC_EHELD);
	cr_assert_eq(holder, lc_session(c));
	cr_assert(strstr(lc_last_error(), "own lease") != NULL, "%s",
		  lc_last_error());
	own_calls++;
}

/* Issue 16: the same session re-campaigned ~2,000 times in 3 s after a
 * revoke. A HELD that comes back at once backs off instead. */
Test(election, a_campaign_after_a_revoke_backs_off, .timeout = 20)
{
	fake f;
	fake_start(&f, ans_held_by_self);
	lc_client *c = client_of(&f);
	lc_sess *s = session_of(c);
	lc_campaign_options co;
	lc_campaign_options_init(&co);
	co.wait_ms = 1000;
	co.timeout_ms = 3000;
	co.progress = on_own;
	co.arg = c;
	lc_lease l;
	cr_assert_eq(lc_campaign(s, "grp", NULL, 0, 5000, &co, &l),
		     LC_ETIMEOUT);
	unsigned n = fake_ops(&f, LOCKD__OP__OP_ACQUIRE, NULL);
	cr_assert(n >= 2 && n <= 15, "%u acquires in 3 s", n);
	cr_assert_eq(own_calls, n);
	cr_assert_eq(l.holder, lc_session(c));
	lc_session_close(s);
	lc_close(c);
	fake_stop(&f);
}

Test(election, leader_and_observe_follow_positions, .timeout = 20)
{
	fake f;
	fake_start(&f, ans_group);
	lc_client *c = client_of(&f);
	lc_leader_info li;
	cr_assert_eq(lc_leader(c, "grp", &li), LC_OK, "%s", lc_last_error());
	cr_assert(li.elected);
	cr_assert_eq(li.position, 10);
	cr_assert_eq(li.lease.holder, 77);
	cr_assert_eq(li.lease.token, 5);
	cr_assert_eq(li.lease.value_len, 3);
	cr_assert_eq(memcmp(li.lease.value, "old", 3), 0);
	cr_assert_not(li.history_lost);

	/* Each change after the caller's position, in order: free at 12,
	 * then 88 at 14. */
	lc_observe_options oo;
	lc_observe_options_init(&oo);
	oo.interval_ms = 50;
	oo.timeout_ms = 2000;
	lc_leader_info ch;
	unsigned before = fake_count(&f);
	cr_assert_eq(
		lc_observe(c, "grp", li.position, li.lease.token, &oo, &ch),
		LC_ENOSUCH, "%s", lc_last_error());
	cr_assert_not(ch.elected);
	cr_assert_not(ch.history_lost);
	cr_assert_eq(ch.position, 12);
	cr_assert_eq(ch.lease.token, 0);
	cr_assert_eq(f.reqs[before].op, LOCKD__OP__OP_WATCH);
	cr_assert_str_eq(f.reqs[before].name, "grp");
	cr_assert_eq(f.reqs[before].wait_ms, 50);

	cr_assert_eq(lc_observe(c, "grp", ch.position, 0, &oo, &ch), LC_OK,
		     "%s", lc_last_error());
	cr_assert(ch.elected);
	cr_assert_eq(ch.position, 14);
	cr_assert_eq(ch.lease.holder, 88);
	cr_assert_eq(ch.lease.token, 6);
	cr_assert_eq(memcmp(ch.lease.value, "new", 3), 0);

	/* Nothing after 14: the WATCHes time out and it gives up at
	 * timeout_ms; *out untouched. */
	oo.timeout_ms = 150;
	cr_assert_eq(lc_observe(c, "grp", 14, 6, &oo, &ch), LC_ETIMEOUT);
	cr_assert_eq(ch.position, 14);

	/* A replica that lost the history answers the current state: not a
	 * change when the caller knows it, reported (and flagged) when not. */
	cr_assert_eq(lc_observe(c, "grp", 3, 6, &oo, &ch), LC_ETIMEOUT);
	cr_assert_eq(lc_observe(c, "grp", 3, 5, &oo, &ch), LC_OK);
	cr_assert(ch.history_lost);
	cr_assert_eq(ch.position, 20);
	cr_assert_eq(ch.lease.token, 6);

	oo.cancelled = cancel_third;
	oo.timeout_ms = 0;
	cr_assert_eq(lc_observe(c, "grp", ch.position, 6, &oo, &ch),
		     LC_ECANCELED);
	lc_close(c);
	fake_stop(&f);
}
