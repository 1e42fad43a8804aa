/* liblockclient without a daemon: error sentences, endpoint parsing, a
 * replica that is not there, and fake replicas (nng REP in a thread) that
 * answer what a test scripts: NOT_LEADER with a hint, BUSY, BEHIND, a
 * settled command, slow waits. Criterion forks per test, so every nng
 * socket is made inside a test. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include "client.pb-c.h"
#include "fake_replica.h"
#include "lockclient.h"

static uint64_t ms_since(uint64_t t0_us)
{
	return (lc_now_us() - t0_us) / 1000u;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* Options for tests: short timeouts, so failures fail fast. */
static lc_options quick(void)
{
	lc_options o;
	lc_options_init(&o);
	o.attempt_timeout_ms = 1000;
	o.call_timeout_ms = 3000;
	return o;
}

/* ---- answers ------------------------------------------------------------- */

/* A follower: "not the leader, ask hint_url". */
static bool ans_not_leader(fake *f, const Lockd__Request *req,
			   Lockd__Reply *rep, unsigned k)
{
	rep->status = LOCKD__STATUS__STATUS_NOT_LEADER;
	rep->leader_hint = 1;
	rep->leader_addr = (char *)f->hint_url;
	rep->error = (char *)"this replica is not the leader";
	rep->position = 5;
	return true;
}

/* A leader: grants with token 42 + k, reads find a lease; positions go up
 * and down (replies from a lagging replica must not lower what the client
 * has seen): 10, 7, 12, 3, 3, ... */
static bool ans_leader(fake *f, const Lockd__Request *req, Lockd__Reply *rep,
		       unsigned k)
{
	static const uint64_t pos[] = {10, 7, 12, 3};
	static Lockd__Lease lease = LOCKD__LEASE__INIT;
	rep->status = LOCKD__STATUS__STATUS_OK;
	rep->position = pos[k < 4 ? k : 3];
	switch (req->op) {
	case LOCKD__OP__OP_ACQUIRE:
		rep->lease_status = LOCKD__LEASE_STATUS__LEASE_GRANTED;
		rep->token = 42 + k;
		break;
	case LOCKD__OP__OP_GET:
		lease.name = (char *)"a/b";
		lease.holder = 9;
		lease.token = 77;
		lease.ttl_ms = 5000;
		lease.ttl_ms_left = -1;
		lease.value.data = (uint8_t *)"v1";
		lease.value.len = 2;
		rep->lease = &lease;
		break;
	default:
		break;
	}
	return true;
}

/* ---- errors and parsing -------------------------------------------------- */

Test(client, strerror_has_a_sentence_for_every_code)
{
	const char *fallback = lc_strerror(-1);
	cr_assert(fallback != NULL && strlen(fallback) > 0);
	cr_assert_str_eq(lc_strerror(LC_ERROR_COUNT), fallback);
	cr_assert_str_eq(lc_strerror(9999), fallback);
	for (int code = 0; code < LC_ERROR_COUNT; code++) {
		const char *s = lc_strerror(code);
		cr_assert(s != NULL && strlen(s) > 5, "code %d", code);
		cr_assert_str_neq(s, fallback, "code %d", code);
		for (int other = 0; other < code; other++)
			cr_assert_str_neq(s, lc_strerror(other),
					  "codes %d and %d", code, other);
	}
	cr_assert_eq(LC_OK, 0);
	cr_assert_str_eq(lc_strerror(LC_EUNAVAILABLE),
			 "no replica answered within the timeout");
}

Test(client, open_rejects_bad_endpoints)
{
	static const char *bad[] = {
		"",
		",",
		" ",
		"garbage",
		"tcp://",
		"tcp://127.0.0.1",
		"nosuch://127.0.0.1:1",
		"tcp://127.0.0.1:1,",
		",tcp://127.0.0.1:1",
		"tcp://127.0.0.1:1,,tcp://127.0.0.1:2",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		lc_client *c = (lc_client *)1;
		cr_assert_eq(lc_open(bad[i], NULL, &c), LC_EINVAL, "'%s'",
			     bad[i]);
		cr_assert_null(c);
		cr_assert(strlen(lc_last_error()) > 0);
	}
	lc_client *c = NULL;
	cr_assert_eq(lc_open(NULL, NULL, &c), LC_EINVAL);
	cr_assert_eq(lc_open("tcp://127.0.0.1:1", NULL, NULL), LC_EINVAL);

	char many[2048] = "";
	for (unsigned i = 0; i <= LC_ENDPOINTS_MAX; i++) {
		char one[64];
		snprintf(one, sizeof one, "%stcp://127.0.0.1:%u", i ? "," : "",
			 1000 + i);
		strcat(many, one);
	}
	cr_assert_eq(lc_open(many, NULL, &c), LC_EINVAL);
	cr_assert_null(c);
}

Test(client, open_accepts_urls_and_picks_random_sessions)
{
	lc_client *a, *b;
	/* Nothing listens there: connecting is the background's business. */
	cr_assert_eq(
		lc_open(" tcp://127.0.0.1:1 , tcp://127.0.0.1:2", NULL, &a),
		LC_OK);
	cr_assert_eq(lc_open("tcp://127.0.0.1:1", NULL, &b), LC_OK);
	cr_assert_eq(lc_endpoint_count(a), 2);
	cr_assert_str_eq(lc_endpoint_url(a, 0), "tcp://127.0.0.1:1");
	cr_assert_str_eq(lc_endpoint_url(a, 1), "tcp://127.0.0.1:2");
	cr_assert_null(lc_endpoint_url(a, 2));
	cr_assert_neq(lc_session(a), 0);
	cr_assert_neq(lc_session(b), 0);
	cr_assert_neq(lc_session(a), lc_session(b));
	cr_assert_eq(lc_known_position(a), 0);
	lc_close(a);
	lc_close(b);

	/* Random sessions stay clear of the top bit, which the cell keeps
	 * for its own commands (with it set, 1 in 2 would be lost). */
	for (int i = 0; i < 64; i++) {
		cr_assert_eq(lc_open("tcp://127.0.0.1:1", NULL, &a), LC_OK);
		cr_assert(lc_session(a) >= 1 &&
			  lc_session(a) <= LC_SESSION_MAX);
		lc_close(a);
	}

	lc_options o;
	lc_options_init(&o);
	o.session = 12345;
	cr_assert_eq(lc_open("tcp://127.0.0.1:1", &o, &a), LC_OK);
	cr_assert_eq(lc_session(a), 12345);
	lc_close(a);
	o.session = LC_SESSION_MAX + 1;
	cr_assert_eq(lc_open("tcp://127.0.0.1:1", &o, &a), LC_EINVAL);
	cr_assert_null(a);
	lc_close(NULL);
}

Test(client, arguments_are_checked_before_sending)
{
	lc_client *c;
	cr_assert_eq(lc_open("tcp://127.0.0.1:1", NULL, &c), LC_OK);
	lc_lease l;
	char name[LC_NAME_BYTES_MAX + 2];
	memset(name, 'a', sizeof name - 1);
	name[sizeof name - 1] = '\0';
	cr_assert_eq(lc_acquire(c, name, 1000, 0, NULL, 0, &l), LC_EINVAL);
	cr_assert_eq(lc_acquire(c, "", 1000, 0, NULL, 0, &l), LC_EINVAL);
	cr_assert_eq(lc_acquire(c, NULL, 1000, 0, NULL, 0, &l), LC_EINVAL);
	cr_assert_eq(lc_acquire(c, "x", 1000, 0, NULL, 5, &l), LC_EINVAL);
	static uint8_t big[LC_VALUE_BYTES_MAX + 1];
	cr_assert_eq(lc_acquire(c, "x", 1000, 0, big, sizeof big, &l),
		     LC_EINVAL);
	cr_assert_eq(lc_release(c, NULL, 1), LC_EINVAL);
	lc_replica_status st;
	cr_assert_eq(lc_status(c, 1, &st), LC_EINVAL);
	lc_close(c);
}

/* ---- nobody there -------------------------------------------------------- */

Test(client, nothing_listening_is_unavailable_within_the_timeout, .timeout = 20)
{
	/* A port that was just bound and closed: nothing listens on it. */
	nng_socket s;
	cr_assert_eq(nng_rep0_open(&s), 0);
	nng_listener l;
	cr_assert_eq(nng_listener_create(&l, s, "tcp://127.0.0.1:0"), 0);
	cr_assert_eq(nng_listener_start(l, 0), 0);
	int port;
	cr_assert_eq(nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port), 0);
	nng_close(s);
	char url[64];
	snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port);

	lc_options o;
	lc_options_init(&o);
	o.attempt_timeout_ms = 200;
	o.call_timeout_ms = 600;
	lc_client *c;
	cr_assert_eq(lc_open(url, &o, &c), LC_OK);

	uint64_t t0 = lc_now_us();
	lc_lease_info info;
	cr_assert_eq(lc_get(c, "a", &info), LC_EUNAVAILABLE);
	uint64_t dt = ms_since(t0);
	cr_assert(dt >= 500 && dt < 2000, "took %llu ms",
		  (unsigned long long)dt);
	cr_assert(strstr(lc_last_error(), url) != NULL, "'%s'",
		  lc_last_error());

	t0 = lc_now_us();
	lc_lease lease;
	cr_assert_eq(lc_acquire(c, "a", 1000, 0, NULL, 0, &lease),
		     LC_EUNAVAILABLE);
	cr_assert_eq(lease.token, 0);
	cr_assert_lt(ms_since(t0), 2000);

	t0 = lc_now_us();
	lc_replica_status st;
	cr_assert_eq(lc_status(c, 0, &st), LC_EUNAVAILABLE);
	cr_assert_lt(ms_since(t0), 1000);
	lc_close(c);
}

/* ---- leaders and positions ----------------------------------------------- */

Test(client, follows_the_leader_hint_with_the_same_session_and_seq,
     .timeout = 20)
{
	fake a, b;
	fake_start(&b, ans_leader);
	fake_start(&a, ans_not_leader);
	a.hint_url = b.url;

	lc_options o = quick();
	lc_client *c;
	/* Only the follower is known: the hint adds the leader. */
	cr_assert_eq(lc_open(a.url, &o, &c), LC_OK);
	lc_lease l;
	uint64_t before = lc_now_us();
	cr_assert_eq(lc_acquire(c, "locks/x", 10000, 0, "v", 1, &l), LC_OK,
		     "%s", lc_last_error());
	cr_assert_eq(l.token, 42);
	cr_assert_str_eq(l.name, "locks/x");
	cr_assert_eq(l.ttl_ms, 10000);
	/* The deadline counts from the first send, to the follower. */
	cr_assert(l.sent_us >= before && l.sent_us <= lc_now_us());
	cr_assert_eq(l.deadline_us,
		     lc_lease_deadline_us(l.sent_us, 10000, 1000));
	cr_assert(lc_lease_held(&l, lc_now_us()));

	cr_assert_eq(fake_count(&a), 1);
	cr_assert_eq(fake_count(&b), 1);
	cr_assert_eq(a.reqs[0].op, LOCKD__OP__OP_ACQUIRE);
	cr_assert_eq(a.reqs[0].session, lc_session(c));
	cr_assert_eq(b.reqs[0].session, a.reqs[0].session);
	cr_assert_eq(b.reqs[0].seq, a.reqs[0].seq);
	cr_assert_neq(a.reqs[0].seq, 0);
	cr_assert_str_eq(b.reqs[0].name, "locks/x");
	cr_assert_eq(b.reqs[0].ttl_ms, 10000);
	cr_assert_eq(lc_endpoint_count(c), 2);
	cr_assert_str_eq(lc_endpoint_url(c, 1), b.url);

	/* The next write goes straight to the leader, with the next seq. */
	cr_assert_eq(lc_release(c, "locks/x", 42), LC_OK, "%s",
		     lc_last_error());
	cr_assert_eq(fake_count(&a), 1);
	cr_assert_eq(fake_count(&b), 2);
	cr_assert_eq(b.reqs[1].op, LOCKD__OP__OP_RELEASE);
	cr_assert_eq(b.reqs[1].seq, b.reqs[0].seq + 1);
	cr_assert_eq(b.reqs[1].token, 42);
	lc_close(c);
	fake_stop(&a);
	fake_stop(&b);
}

/* Many sessions over one client's connections: each shared client is its
 * own session with its own seq, and the leader one learns is where the
 * others go first. */
Test(client, shared_clients_are_sessions_over_one_connection, .timeout = 20)
{
	fake a, b;
	fake_start(&b, ans_leader);
	fake_start(&a, ans_not_leader);
	a.hint_url = b.url;
	lc_options o = quick();
	lc_client *base, *s1, *s2;
	cr_assert_eq(lc_open(a.url, &o, &base), LC_OK);
	cr_assert_eq(lc_open_shared(NULL, &o, &s1), LC_EINVAL);
	cr_assert_eq(lc_open_shared(base, &o, &s1), LC_OK);
	cr_assert_eq(lc_open_shared(s1, &o, &s2), LC_OK);
	cr_assert_neq(lc_session(s1), lc_session(base));
	cr_assert_neq(lc_session(s2), lc_session(s1));
	lc_lease l;
	cr_assert_eq(lc_acquire(s1, "a/1", 10000, 0, NULL, 0, &l), LC_OK, "%s",
		     lc_last_error());
	/* s1 learnt the leader (b) for everyone: s2 goes there at once. */
	cr_assert_eq(lc_endpoint_count(s2), 2);
	cr_assert_eq(lc_acquire(s2, "a/2", 10000, 0, NULL, 0, &l), LC_OK, "%s",
		     lc_last_error());
	cr_assert_eq(fake_count(&a), 1);
	cr_assert_eq(fake_count(&b), 2);
	cr_assert_eq(b.reqs[0].session, lc_session(s1));
	cr_assert_eq(b.reqs[1].session, lc_session(s2));
	/* Closing a shared client leaves the connections to the others. */
	lc_close(s1);
	cr_assert_eq(lc_release(s2, "a/2", l.token), LC_OK, "%s",
		     lc_last_error());
	cr_assert_eq(b.reqs[2].session, lc_session(s2));
	cr_assert_eq(b.reqs[2].seq, b.reqs[1].seq + 1);
	lc_close(s2);
	lc_close(base);
	fake_stop(&a);
	fake_stop(&b);
}

/* A RENEW for many sessions: one request, each session with its own next
 * seq; sessions over other connections are refused before anything is
 * sent. */
static bool ans_renew_many(fake *f, const Lockd__Request *req,
			   Lockd__Reply *rep, unsigned k)
{
	static Lockd__SessionRenewed ents[4], *ptrs[4];
	static uint64_t toks[4];
	rep->status = LOCKD__STATUS__STATUS_OK;
	rep->position = 30 + k;
	size_t n = req->n_renew_sessions < 4 ? req->n_renew_sessions : 4;
	for (size_t i = 0; i < n; i++) {
		lockd__session_renewed__init(&ents[i]);
		ents[i].session = req->renew_sessions[i]->session;
		/* the second session holds token 100 + its seq; the first
		 * is told it is not the owner */
		if (i == 0) {
			ents[i].lease_status =
				LOCKD__LEASE_STATUS__LEASE_E_NOT_OWNER;
			ents[i].error = (char *)"not your session";
		} else {
			toks[i] = 100 + req->renew_sessions[i]->seq;
			ents[i].renewed = &toks[i];
			ents[i].n_renewed = 1;
			ents[i].error = (char *)"";
		}
		ptrs[i] = &ents[i];
	}
	rep->n_renewed_sessions = n;
	rep->renewed_sessions = ptrs;
	return true;
}

Test(client, renew_many_is_one_request_for_many_sessions, .timeout = 20)
{
	fake a, b;
	fake_start(&a, ans_renew_many);
	fake_start(&b, ans_renew_many);
	lc_options o = quick();
	lc_client *base, *other, *s[2];
	cr_assert_eq(lc_open(a.url, &o, &base), LC_OK);
	cr_assert_eq(lc_open(b.url, &o, &other), LC_OK);
	cr_assert_eq(lc_open_shared(base, &o, &s[0]), LC_OK);
	cr_assert_eq(lc_open_shared(base, &o, &s[1]), LC_OK);
	lc_renewal *outs = calloc(2, sizeof *outs);
	int codes[2];
	cr_assert_eq(lc_renew_many(s, 0, outs, codes), LC_EINVAL);
	lc_client *mixed[2] = {s[0], other};
	cr_assert_eq(lc_renew_many(mixed, 2, outs, codes), LC_EINVAL);
	cr_assert_eq(fake_count(&a) + fake_count(&b), 0);

	cr_assert_eq(lc_renew_many(s, 2, outs, codes), LC_OK, "%s",
		     lc_last_error());
	cr_assert_eq(fake_count(&a), 1);
	cr_assert_eq(a.reqs[0].op, LOCKD__OP__OP_RENEW);
	cr_assert_eq(a.reqs[0].session, 0);
	cr_assert_eq(codes[0], LC_ENOTHOLDER);
	cr_assert_eq(codes[1], LC_OK);
	cr_assert_eq(outs[1].ntokens, 1);
	cr_assert_eq(outs[1].tokens[0], 101);
	cr_assert_neq(outs[1].sent_us, 0);
	cr_assert_eq(lc_known_position(s[1]), 30);
	/* The next one carries each session's next seq. */
	cr_assert_eq(lc_renew_many(s, 2, outs, codes), LC_OK);
	cr_assert_eq(outs[1].tokens[0], 102);
	free(outs);
	lc_close(s[0]);
	lc_close(s[1]);
	lc_close(other);
	lc_close(base);
	fake_stop(&a);
	fake_stop(&b);
}

Test(client, known_position_is_the_highest_seen, .timeout = 20)
{
	fake b;
	fake_start(&b, ans_leader);
	lc_options o = quick();
	lc_client *c;
	cr_assert_eq(lc_open(b.url, &o, &c), LC_OK);
	lc_lease_info info;
	/* Replies carry positions 10, 7, 12, 3. */
	for (int i = 0; i < 4; i++)
		cr_assert_eq(lc_get(c, "a/b", &info), LC_OK, "%s",
			     lc_last_error());
	cr_assert_eq(lc_known_position(c), 12);
	cr_assert_eq(fake_count(&b), 4);
	cr_assert_eq(b.reqs[0].known_position, 0);
	cr_assert_eq(b.reqs[1].known_position, 10);
	cr_assert_eq(b.reqs[2].known_position, 10);
	cr_assert_eq(b.reqs[3].known_position, 12);
	/* And the lease the replica described. */
	cr_assert_str_eq(info.name, "a/b");
	cr_assert_eq(info.holder, 9);
	cr_assert_eq(info.token, 77);
	cr_assert_eq(info.ttl_ms_left, -1);
	cr_assert_eq(info.value_len, 2);
	cr_assert_eq(memcmp(info.value, "v1", 2), 0);
	lc_close(c);
	fake_stop(&b);
}

/* A position 5 from a follower does not lower 12 either, and writes carry
 * it too. */
Test(client, every_request_carries_the_position, .timeout = 20)
{
	fake a, b;
	fake_start(&b, ans_leader);
	fake_start(&a, ans_not_leader);
	a.hint_url = b.url;
	lc_options o = quick();
	lc_client *c;
	char eps[160];
	snprintf(eps, sizeof eps, "%s,%s", b.url, a.url);
	cr_assert_eq(lc_open(eps, &o, &c), LC_OK);
	lc_lease_info info;
	for (int i = 0; i < 3; i++) /* positions 10, 7, 12 */
		cr_assert_eq(lc_get(c, "a/b", &info), LC_OK);
	lc_lease l;
	cr_assert_eq(lc_acquire(c, "n", 1000, 0, NULL, 0, &l), LC_OK);
	cr_assert_eq(b.reqs[3].known_position, 12);
	cr_assert_eq(lc_known_position(c), 12);
	lc_close(c);
	fake_stop(&a);
	fake_stop(&b);
}

/* ---- retries ------------------------------------------------------------- */

static bool ans_busy_then_grant(fake *f, const Lockd__Request *req,
				Lockd__Reply *rep, unsigned k)
{
	if (k < 2) {
		rep->status = LOCKD__STATUS__STATUS_BUSY;
		rep->error = (char *)"the leader's queue is full";
		return true;
	}
	rep->status = LOCKD__STATUS__STATUS_OK;
	rep->lease_status = LOCKD__LEASE_STATUS__LEASE_GRANTED;
	rep->token = 7;
	return true;
}

Test(client, busy_is_retried_with_the_same_seq, .timeout = 20)
{
	fake b;
	fake_start(&b, ans_busy_then_grant);
	lc_options o = quick();
	lc_client *c;
	cr_assert_eq(lc_open(b.url, &o, &c), LC_OK);
	lc_lease l;
	cr_assert_eq(lc_acquire(c, "n", 1000, 0, NULL, 0, &l), LC_OK);
	cr_assert_eq(l.token, 7);
	cr_assert_eq(fake_count(&b), 3);
	cr_assert_eq(b.reqs[0].seq, b.reqs[1].seq);
	cr_assert_eq(b.reqs[1].seq, b.reqs[2].seq);
	/* The deadline counts from the FIRST send. */
	cr_assert_eq(l.deadline_us,
		     lc_lease_deadline_us(l.sent_us, 1000, 1000));
	lc_close(c);
	fake_stop(&b);
}

static bool ans_behind(fake *f, const Lockd__Request *req, Lockd__Reply *rep,
		       unsigned k)
{
	rep->status = LOCKD__STATUS__STATUS_BEHIND;
	rep->error = (char *)"behind";
	rep->position = 1;
	return true;
}

Test(client, a_replica_behind_sends_reads_elsewhere, .timeout = 20)
{
	fake a, b;
	fake_start(&a, ans_behind);
	fake_start(&b, ans_leader);
	lc_options o = quick();
	lc_client *c;
	char eps[160];
	snprintf(eps, sizeof eps, "%s,%s", a.url, b.url);
	cr_assert_eq(lc_open(eps, &o, &c), LC_OK);
	lc_lease_info info;
	cr_assert_eq(lc_get(c, "a/b", &info), LC_OK, "%s", lc_last_error());
	cr_assert_eq(info.token, 77);
	cr_assert_eq(fake_count(&a), 1);
	cr_assert_eq(fake_count(&b), 1);
	lc_close(c);
	fake_stop(&a);
	fake_stop(&b);
}

Test(client, behind_everywhere_is_ebehind, .timeout = 20)
{
	fake a;
	fake_start(&a, ans_behind);
	lc_options o = quick();
	/* Long enough for the first connection on a loaded machine: with
	 * no answer at all the call would end LC_EUNAVAILABLE instead. */
	o.call_timeout_ms = 1500;
	lc_client *c;
	cr_assert_eq(lc_open(a.url, &o, &c), LC_OK);
	lc_lease_info info;
	int rv = lc_get(c, "a/b", &info);
	cr_assert_eq(rv, LC_EBEHIND, "%s: %s", lc_strerror(rv),
		     lc_last_error());
	lc_close(c);
	fake_stop(&a);
}

static bool ans_no_leader(fake *f, const Lockd__Request *req, Lockd__Reply *rep,
			  unsigned k)
{
	rep->status = LOCKD__STATUS__STATUS_NOT_LEADER;
	rep->error = (char *)"no leader yet";
	return true;
}

Test(client, no_leader_anywhere_is_enoleader, .timeout = 20)
{
	fake a;
	fake_start(&a, ans_no_leader);
	lc_options o = quick();
	/* A loaded machine's first connect fits (seen to take over 1 s while
	 * two ASan builds ran beside it). */
	o.call_timeout_ms = 2000;
	lc_client *c;
	cr_assert_eq(lc_open(a.url, &o, &c), LC_OK);
	lc_lease l;
	uint64_t t0 = lc_now_us();
	int rc = lc_acquire(c, "n", 1000, 0, NULL, 0, &l);
	cr_assert_eq(rc, LC_ENOLEADER, "%s: %s", lc_strerror(rc),
		     lc_last_error());
	cr_assert_lt(ms_since(t0), 5000);
	/* Paused between tries, but tried more than once. */
	cr_assert_gt(fake_count(&a), 2);
	cr_assert_lt(fake_count(&a), 100);
	cr_assert(strstr(lc_last_error(), "no leader yet") != NULL, "'%s'",
		  lc_last_error());
	lc_close(c);
	fake_stop(&a);
}

/* Issue 16: a replica answers that it is not the leader and names one that
 * does not answer (stopped): the call fails with what the replica that
 * answered said, not "no replica answered". */
Test(client, a_hint_to_a_silent_leader_is_enoleader, .timeout = 20)
{
	fake a, b;
	fake_start(&b, ans_leader);
	atomic_store(&b.silent, true);
	fake_start(&a, ans_not_leader);
	a.hint_url = b.url;
	lc_options o = quick();
	lc_client *c;
	cr_assert_eq(lc_open(a.url, &o, &c), LC_OK);
	lc_lease_info info;
	int rc = lc_get(c, "n", &info);
	cr_assert_eq(rc, LC_ENOLEADER, "%s: %s", lc_strerror(rc),
		     lc_last_error());
	cr_assert(strstr(lc_last_error(), "not the leader") != NULL, "'%s'",
		  lc_last_error());
	cr_assert_gt(fake_count(&b), 0);
	lc_close(c);
	fake_stop(&a);
	fake_stop(&b);
}

/* The first answer is "settled" (OK with no lease status): the cell no longer
 * has the answer, so the client asks again as a new command. */
static bool ans_settled_then_grant(fake *f, const Lockd__Request *req,
				   Lockd__Reply *rep, unsigned k)
{
	rep->status = LOCKD__STATUS__STATUS_OK;
	if (k == 0) {
		rep->lease_status = LOCKD__LEASE_STATUS__LEASE_OK;
		return true;
	}
	rep->lease_status = LOCKD__LEASE_STATUS__LEASE_GRANTED;
	rep->token = 99;
	return true;
}

Test(client, a_settled_acquire_is_asked_again, .timeout = 20)
{
	fake b;
	fake_start(&b, ans_settled_then_grant);
	lc_options o = quick();
	lc_client *c;
	cr_assert_eq(lc_open(b.url, &o, &c), LC_OK);
	lc_lease l;
	cr_assert_eq(lc_acquire(c, "n", 1000, 0, NULL, 0, &l), LC_OK);
	cr_assert_eq(l.token, 99);
	cr_assert_eq(fake_count(&b), 2);
	cr_assert_eq(b.reqs[1].seq, b.reqs[0].seq + 1);
	lc_close(c);
	fake_stop(&b);
}

/* "Superseded" twice (another process's command of the session, numbered
 * from the wall clock, reached the ledger first), then a release. */
static bool ans_superseded_then_ok(fake *f, const Lockd__Request *req,
				   Lockd__Reply *rep, unsigned k)
{
	rep->status = LOCKD__STATUS__STATUS_OK;
	rep->lease_status = k < 2 ? LOCKD__LEASE_STATUS__LEASE_SUPERSEDED
				  : LOCKD__LEASE_STATUS__LEASE_OK;
	return true;
}

/* A client that shares its session (seq_base, as lockctl sets it) gets
 * ahead of the other process: its retry is numbered from the wall clock,
 * not one above its own seq (issue 12: an elect's renewals and release
 * after a `lockctl proclaim` with its session). */
Test(client, a_superseded_write_numbers_on_from_the_wall_clock, .timeout = 20)
{
	fake b;
	fake_start(&b, ans_superseded_then_ok);
	lc_options o = quick();
	o.session = 7;
	o.seq_base = 1000;
	lc_client *c;
	cr_assert_eq(lc_open(b.url, &o, &c), LC_OK);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t wall = (uint64_t)ts.tv_sec * 1000000u;
	cr_assert_eq(lc_release(c, "n", 5), LC_OK, "%s", lc_last_error());
	cr_assert_eq(fake_count(&b), 3);
	cr_assert_eq(b.reqs[0].seq, 1001);
	cr_assert_gt(b.reqs[1].seq, wall);
	cr_assert_gt(b.reqs[2].seq, b.reqs[1].seq);
	lc_close(c);
	fake_stop(&b);
}

/* ---- answers mapped to codes --------------------------------------------- */

static bool ans_refusals(fake *f, const Lockd__Request *req, Lockd__Reply *rep,
			 unsigned k)
{
	rep->status = LOCKD__STATUS__STATUS_OK;
	switch (k) {
	case 0:
		rep->lease_status = LOCKD__LEASE_STATUS__LEASE_HELD;
		rep->holder = 555;
		rep->error = (char *)"held by another session";
		break;
	case 1:
		rep->status = LOCKD__STATUS__STATUS_TIMEOUT;
		rep->lease_status = LOCKD__LEASE_STATUS__LEASE_HELD;
		rep->holder = 556;
		rep->error = (char *)"waited 5 ms; the name is still held";
		break;
	case 2:
		rep->lease_status =
			LOCKD__LEASE_STATUS__LEASE_E_TOO_MANY_LEASES;
		rep->error = (char *)"the session holds too many leases (1024)";
		break;
	case 3:
		rep->status = LOCKD__STATUS__STATUS_INVALID;
		rep->lease_status = LOCKD__LEASE_STATUS__LEASE_E_TTL;
		rep->error = (char *)"invalid TTL: it must be between 100 ms "
				     "and 1 h";
		break;
	case 4:
		rep->lease_status = LOCKD__LEASE_STATUS__LEASE_NOT_HOLDER;
		break;
	case 5:
		rep->lease_status = LOCKD__LEASE_STATUS__LEASE_NO_SUCH_LEASE;
		break;
	default:
		rep->status = (Lockd__Status)0;
		break;
	}
	return true;
}

Test(client, refusals_map_to_codes_with_the_cells_sentence, .timeout = 20)
{
	fake b;
	fake_start(&b, ans_refusals);
	lc_options o = quick();
	lc_client *c;
	cr_assert_eq(lc_open(b.url, &o, &c), LC_OK);
	lc_lease l;
	cr_assert_eq(lc_acquire(c, "n", 1000, 0, NULL, 0, &l), LC_EHELD);
	cr_assert_eq(l.holder, 555);
	cr_assert_eq(l.token, 0);
	cr_assert_eq(lc_acquire(c, "n", 1000, 5, NULL, 0, &l), LC_ETIMEOUT);
	cr_assert_eq(l.holder, 556);
	/* The client sends what is left of the wait when it sends. */
	cr_assert(b.reqs[1].wait_ms >= 1 && b.reqs[1].wait_ms <= 5,
		  "wait_ms %u", b.reqs[1].wait_ms);
	cr_assert_eq(lc_acquire(c, "n", 1000, 0, NULL, 0, &l), LC_ELIMIT);
	cr_assert_str_eq(lc_last_error(),
			 "the session holds too many leases (1024)");
	cr_assert_eq(lc_acquire(c, "n", 1, 0, NULL, 0, &l), LC_EINVAL);
	cr_assert(strstr(lc_last_error(), "invalid TTL") != NULL);
	cr_assert_eq(lc_release(c, "n", 3), LC_ENOTHOLDER);
	cr_assert_eq(lc_release(c, "n", 3), LC_ENOSUCH);
	cr_assert_eq(lc_release(c, "n", 3), LC_EPROTO);
	lc_close(c);
	fake_stop(&b);
}

static bool ans_check(fake *f, const Lockd__Request *req, Lockd__Reply *rep,
		      unsigned k)
{
	rep->status = LOCKD__STATUS__STATUS_OK;
	rep->lease_status = req->token == 5
				    ? LOCKD__LEASE_STATUS__LEASE_OK
				    : LOCKD__LEASE_STATUS__LEASE_NOT_HOLDER;
	return true;
}

Test(client, check_says_whether_the_token_is_current, .timeout = 20)
{
	fake b;
	fake_start(&b, ans_check);
	lc_options o = quick();
	lc_client *c;
	cr_assert_eq(lc_open(b.url, &o, &c), LC_OK);
	bool cur = false;
	cr_assert_eq(lc_check(c, "n", 5, &cur), LC_OK);
	cr_assert(cur);
	cr_assert_eq(lc_check(c, "n", 4, &cur), LC_OK);
	cr_assert_not(cur);
	cr_assert_eq(b.reqs[0].op, LOCKD__OP__OP_CHECK);
	/* Reads carry no seq: they are not commands. */
	cr_assert_eq(b.reqs[0].seq, 0);
	lc_close(c);
	fake_stop(&b);
}

/* ---- renew --------------------------------------------------------------- */

static bool ans_renew(fake *f, const Lockd__Request *req, Lockd__Reply *rep,
		      unsigned k)
{
	static uint64_t renewed[] = {30, 10};
	rep->status = LOCKD__STATUS__STATUS_OK;
	rep->n_renewed = 2;
	rep->renewed = renewed;
	return true;
}

Test(client, renew_moves_the_deadlines_it_renewed, .timeout = 20)
{
	fake b;
	fake_start(&b, ans_renew);
	lc_options o = quick();
	lc_client *c;
	cr_assert_eq(lc_open(b.url, &o, &c), LC_OK);
	lc_renewal *r = malloc(sizeof *r);
	cr_assert_eq(lc_renew(c, r), LC_OK);
	cr_assert_eq(b.reqs[0].op, LOCKD__OP__OP_RENEW);
	cr_assert_eq(r->ntokens, 2);
	cr_assert_eq(r->tokens[0], 10);
	cr_assert_eq(r->tokens[1], 30);
	lc_lease leases[4] = {{.token = 10, .ttl_ms = 3000, .deadline_us = 1},
			      {.token = 20, .ttl_ms = 3000, .deadline_us = 1},
			      {.token = 30, .ttl_ms = 6000, .deadline_us = 1},
			      {.token = 0}};
	cr_assert_eq(lc_renewal_apply(c, r, leases, 4), 1);
	cr_assert_eq(leases[0].deadline_us,
		     lc_lease_deadline_us(r->sent_us, 3000, 1000));
	cr_assert_eq(leases[1].deadline_us, 1);
	cr_assert_eq(leases[2].deadline_us,
		     lc_lease_deadline_us(r->sent_us, 6000, 1000));
	cr_assert_eq(leases[0].sent_us, r->sent_us);
	free(r);
	lc_close(c);
	fake_stop(&b);
}

/* ---- a blocking acquire waits for the answer ----------------------------- */

static bool ans_slow_grant(fake *f, const Lockd__Request *req,
			   Lockd__Reply *rep, unsigned k)
{
	sleep_ms(req->wait_ms / 2);
	rep->status = LOCKD__STATUS__STATUS_OK;
	rep->lease_status = LOCKD__LEASE_STATUS__LEASE_GRANTED;
	rep->token = 1000; /* the same lease: a re-acquire renews it */
	return true;
}

Test(client, a_waiting_acquire_waits_longer_than_one_attempt, .timeout = 20)
{
	fake b;
	fake_start(&b, ans_slow_grant);
	lc_options o;
	lc_options_init(&o);
	o.attempt_timeout_ms = 200;
	o.call_timeout_ms = 400;
	o.refresh_remaining_permille = 1000; /* no refresh: one request */
	lc_client *c;
	cr_assert_eq(lc_open(b.url, &o, &c), LC_OK);
	lc_lease l;
	uint64_t t0 = lc_now_us();
	cr_assert_eq(lc_acquire(c, "n", 10000, 1200, NULL, 0, &l), LC_OK, "%s",
		     lc_last_error());
	cr_assert_geq(ms_since(t0), 550);
	cr_assert_eq(fake_count(&b), 1);
	cr_assert_eq(l.token, 1000);
	lc_close(c);
	fake_stop(&b);
}

/* A grant that arrives with under a third of its TTL believed left is
 * refreshed by a re-acquire, and counts from the re-acquire. */
Test(client, a_late_grant_is_refreshed, .timeout = 20)
{
	fake b;
	fake_start(&b, ans_slow_grant);
	lc_options o = quick();
	lc_client *c;
	cr_assert_eq(lc_open(b.url, &o, &c), LC_OK);
	lc_lease l;
	uint64_t t0 = lc_now_us();
	/* Granted 400 ms after the send: 100 ms of a 500 ms TTL left. */
	cr_assert_eq(lc_acquire(c, "n", 500, 800, NULL, 0, &l), LC_OK, "%s",
		     lc_last_error());
	cr_assert_eq(l.token, 1000);
	cr_assert_eq(fake_count(&b), 2);
	cr_assert_eq(b.reqs[1].wait_ms, 0);
	cr_assert_eq(b.reqs[1].seq, b.reqs[0].seq + 1);
	cr_assert_geq(l.sent_us, t0 + 400000);
	cr_assert_eq(l.deadline_us, lc_lease_deadline_us(l.sent_us, 500, 1000));
	cr_assert(lc_lease_held(&l, lc_now_us()));
	lc_close(c);
	fake_stop(&b);
}

/* ---- status -------------------------------------------------------------- */

static bool ans_status(fake *f, const Lockd__Request *req, Lockd__Reply *rep,
		       unsigned k)
{
	static Lockd__ReplicaStatus rs = LOCKD__REPLICA_STATUS__INIT;
	rs.id = 2;
	rs.role = (char *)"leader";
	rs.ballot_round = 4;
	rs.ballot_id = 2;
	rs.leader = 2;
	rs.commit = 17;
	rs.applied = 16;
	rs.leases = 3;
	rep->status = LOCKD__STATUS__STATUS_OK;
	rep->position = 16;
	rep->leader_hint = 2;
	rep->leader_addr = f->url;
	rep->replica = &rs;
	return true;
}

Test(client, status_asks_one_replica, .timeout = 20)
{
	fake a, b;
	fake_start(&a, ans_status);
	fake_start(&b, ans_status);
	lc_options o = quick();
	lc_client *c;
	char eps[160];
	snprintf(eps, sizeof eps, "%s,%s", a.url, b.url);
	cr_assert_eq(lc_open(eps, &o, &c), LC_OK);
	lc_replica_status st;
	cr_assert_eq(lc_status(c, 1, &st), LC_OK);
	cr_assert_eq(fake_count(&a), 0);
	cr_assert_eq(fake_count(&b), 1);
	cr_assert_eq(st.id, 2);
	cr_assert_str_eq(st.role, "leader");
	cr_assert_eq(st.commit, 17);
	cr_assert_eq(st.applied, 16);
	cr_assert_eq(st.leases, 3);
	cr_assert_str_eq(st.leader_addr, b.url);
	cr_assert_eq(lc_known_position(c), 16);
	lc_close(c);
	fake_stop(&a);
	fake_stop(&b);
}

/* Reads carry the consistency the client was opened with; the default is
 * read-your-writes. */
Test(client, reads_carry_their_consistency, .timeout = 20)
{
	fake b;
	fake_start(&b, ans_leader);
	lc_options o = quick();
	lc_client *c;
	cr_assert_eq(lc_open(b.url, &o, &c), LC_OK);
	lc_lease_info info;
	cr_assert_eq(lc_get(c, "a/b", &info), LC_OK, "%s", lc_last_error());
	lc_close(c);
	o.read_consistency = LC_LINEARIZABLE;
	cr_assert_eq(lc_open(b.url, &o, &c), LC_OK);
	cr_assert_eq(lc_get(c, "a/b", &info), LC_OK, "%s", lc_last_error());
	lc_close(c);
	o.read_consistency = LC_STALE;
	cr_assert_eq(lc_open(b.url, &o, &c), LC_OK);
	cr_assert_eq(lc_get(c, "a/b", &info), LC_OK, "%s", lc_last_error());
	lc_close(c);
	cr_assert_eq(fake_count(&b), 3);
	cr_assert_eq(b.reqs[0].consistency,
		     LOCKD__CONSISTENCY__READ_YOUR_WRITES);
	cr_assert_eq(b.reqs[1].consistency, LOCKD__CONSISTENCY__LINEARIZABLE);
	cr_assert_eq(b.reqs[2].consistency, LOCKD__CONSISTENCY__STALE);
	fake_stop(&b);
}

/* LIST pages of two from p/0 .. p/4: each page starts after the name the
 * request carries, and `more` says another follows. */
static bool ans_pages(fake *f, const Lockd__Request *req, Lockd__Reply *rep,
		      unsigned k)
{
	static char names[5][8];
	static Lockd__Lease leases[5];
	static Lockd__Lease *ptrs[5];
	(void)f;
	(void)k;
	if (req->op == LOCKD__OP__OP_GET) { /* a linearizable list's barrier */
		rep->status = LOCKD__STATUS__STATUS_OK;
		rep->lease_status = LOCKD__LEASE_STATUS__LEASE_NO_SUCH_LEASE;
		rep->position = 50;
		return true;
	}
	cr_assert_eq(req->op, LOCKD__OP__OP_LIST);
	cr_assert_str_eq(req->name, "p/");
	size_t from = req->after_name[0] == '\0'
			      ? 0
			      : (size_t)atoi(req->after_name + 2) + 1;
	size_t n = 0;
	for (size_t i = from; i < 5 && n < 2; i++, n++) {
		snprintf(names[i], sizeof names[i], "p/%zu", i);
		lockd__lease__init(&leases[i]);
		leases[i].name = names[i];
		leases[i].holder = 100 + i;
		leases[i].token = 1 + i;
		ptrs[n] = &leases[i];
	}
	rep->status = LOCKD__STATUS__STATUS_OK;
	rep->position = 9;
	rep->n_leases = n;
	rep->leases = ptrs;
	rep->more = from + n < 5;
	return true;
}

static bool list_keep(const lc_lease_info *info, void *arg)
{
	int *n = arg;
	char want[8];
	snprintf(want, sizeof want, "p/%d", *n);
	cr_assert_str_eq(info->name, want);
	cr_assert_eq(info->token, (uint64_t)*n + 1);
	return ++*n != 3;
}

static bool list_all(const lc_lease_info *info, void *arg)
{
	int *n = arg;
	char want[8];
	snprintf(want, sizeof want, "p/%d", *n);
	cr_assert_str_eq(info->name, want);
	++*n;
	return true;
}

Test(client, list_reads_every_page, .timeout = 20)
{
	fake b;
	fake_start(&b, ans_pages);
	lc_options o = quick();
	lc_client *c;
	cr_assert_eq(lc_open(b.url, &o, &c), LC_OK);
	/* p/0..p/4 in three pages. */
	int n = 0;
	size_t count = 0;
	cr_assert_eq(lc_list(c, "p/", list_all, &n, &count), LC_OK, "%s",
		     lc_last_error());
	cr_assert_eq(n, 5);
	cr_assert_eq(count, 5);
	cr_assert_eq(fake_count(&b), 3);

	/* fn returning false stops at once: no further page is asked for. */
	n = 0;
	cr_assert_eq(lc_list(c, "p/", list_keep, &n, &count), LC_OK);
	cr_assert_eq(n, 3);
	cr_assert_eq(count, 3);
	cr_assert_eq(fake_count(&b), 5);
	lc_close(c);

	/* Linearizable: a linearizable read first, and every page carries
	 * the position it returned. */
	o.read_consistency = LC_LINEARIZABLE;
	cr_assert_eq(lc_open(b.url, &o, &c), LC_OK);
	n = 0;
	cr_assert_eq(lc_list(c, "p/", list_all, &n, &count), LC_OK, "%s",
		     lc_last_error());
	cr_assert_eq(n, 5);
	cr_assert_eq(fake_count(&b), 9);
	cr_assert_eq(b.reqs[5].op, LOCKD__OP__OP_GET);
	cr_assert_eq(b.reqs[5].consistency, LOCKD__CONSISTENCY__LINEARIZABLE);
	for (unsigned i = 6; i < 9; i++) {
		cr_assert_eq(b.reqs[i].op, LOCKD__OP__OP_LIST);
		cr_assert_geq(b.reqs[i].known_position, 50);
	}
	lc_close(c);
	fake_stop(&b);
}

/* ---- membership ------------------------------------------------------------
 */

/* A leader for membership: the first change is refused as "in flight"
 * (BUSY: retry), the next add is done, a remove is refused with a
 * sentence; MEMBERS lists 0-2 voting, 3 learning, 4 removed. */
static bool ans_members(fake *f, const Lockd__Request *req, Lockd__Reply *rep,
			unsigned k)
{
	static Lockd__CellMember m[4];
	static Lockd__CellMember *ptrs[4];
	static uint32_t removed[] = {4};
	static const char *const urls[4][2] = {{"tcp://p0", "tcp://c0"},
					       {"tcp://p1", "tcp://c1"},
					       {"tcp://p2", "tcp://c2"},
					       {"tcp://p3", "tcp://c3"}};
	rep->position = 20 + k;
	if (req->op == LOCKD__OP__OP_MEMBER_CHANGE &&
	    req->member_op == LOCKD__MEMBER_OP__MEMBER_REMOVE) {
		rep->status = LOCKD__STATUS__STATUS_REFUSED;
		rep->error =
			(char *)"without replica 1 the cell would have 2 "
				"voters of which 1 answer now; a quorum is "
				"2";
		return true;
	}
	if (req->op == LOCKD__OP__OP_MEMBER_CHANGE && k == 0) {
		rep->status = LOCKD__STATUS__STATUS_BUSY;
		rep->error = (char *)"a membership change is in flight: retry "
				     "once it is in effect";
		return true;
	}
	if (req->op == LOCKD__OP__OP_MEMBER_CHANGE &&
	    (req->member_id != 3 || strcmp(req->member_peer, "tcp://p3") != 0 ||
	     strcmp(req->member_client, "tcp://c3") != 0)) {
		rep->status = LOCKD__STATUS__STATUS_INVALID;
		rep->error = (char *)"not what the test sent";
		return true;
	}
	rep->status = LOCKD__STATUS__STATUS_OK;
	for (int i = 0; i < 4; i++) {
		lockd__cell_member__init(&m[i]);
		m[i].id = (uint32_t)i;
		m[i].peer = (char *)urls[i][0];
		m[i].client = (char *)urls[i][1];
		m[i].voting = i < 3;
		ptrs[i] = &m[i];
	}
	rep->n_members = 4;
	rep->members = ptrs;
	rep->members_from = 99;
	rep->n_removed = 1;
	rep->removed = removed;
	rep->leader_hint = 1;
	rep->leader_addr = (char *)urls[1][1];
	rep->change_slot = req->op == LOCKD__OP__OP_MEMBER_CHANGE ? 35 : 0;
	return true;
}

Test(client, member_changes_go_to_the_leader_retry_busy_and_say_refused,
     .timeout = 20)
{
	fake a, b;
	fake_start(&b, ans_members);
	fake_start(&a, ans_not_leader);
	a.hint_url = b.url;
	lc_options o = quick();
	lc_client *c;
	cr_assert_eq(lc_open(a.url, &o, &c), LC_OK);

	cr_assert_eq(lc_member_add(c, 64, "tcp://p", "tcp://c", NULL),
		     LC_EINVAL);
	cr_assert_eq(lc_member_add(c, 3, "", "tcp://c", NULL), LC_EINVAL);
	cr_assert_eq(fake_count(&a), 0);

	lc_members m;
	cr_assert_eq(lc_member_add(c, 3, "tcp://p3", "tcp://c3", &m), LC_OK,
		     "%s", lc_last_error());
	/* The follower sent it on; BUSY was asked again at the leader. */
	cr_assert_eq(fake_count(&a), 1);
	cr_assert_eq(fake_ops(&b, LOCKD__OP__OP_MEMBER_CHANGE, NULL), 2);
	cr_assert_eq(m.n, 4);
	cr_assert_eq(m.change_position, 35);
	cr_assert_eq(m.from_position, 99);
	cr_assert_eq(m.removed, UINT64_C(1) << 4);
	cr_assert_eq(m.leader, 1);
	const lc_member *x = lc_members_find(&m, 3);
	cr_assert_not_null(x);
	cr_assert(!x->voting);
	cr_assert_str_eq(x->peer, "tcp://p3");
	cr_assert_str_eq(x->client, "tcp://c3");
	cr_assert(lc_members_find(&m, 2)->voting);
	cr_assert_null(lc_members_find(&m, 4));

	cr_assert_eq(lc_member_remove(c, 1, NULL), LC_EREFUSED);
	cr_assert(strstr(lc_last_error(), "a quorum is 2") != NULL, "%s",
		  lc_last_error());

	cr_assert_eq(lc_members_list(c, &m), LC_OK, "%s", lc_last_error());
	cr_assert_eq(m.n, 4);
	cr_assert_eq(m.change_position, 0);
	cr_assert(lc_known_position(c) >= 20);
	lc_close(c);
	fake_stop(&a);
	fake_stop(&b);
}
