/* liblockclient writes: acquire, release, revoke, renew (lockclient.h,
 * "leases"). Each takes the client's write turn, so that a session's
 * commands reach the cell in seq order. */
#include "lc_internal.h"
#include "lockclient.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client.pb-c.h"

/* An acquire whose answer the cell no longer has (a retry of a command the
 * cell settled) is asked again with a new seq, at most this many times. */
#define SETTLED_RETRIES_MAX 3

/* A RENEW answered after a retry may be one the cell had applied at an
 * earlier try and now answers from its exactly-once table, without the
 * tokens: it is sent again afresh, at most this many times (each of them
 * may be retried too while leaders change). */
#define RENEW_AFRESH_MAX 3

/* The wall clock in microseconds: seq_base's convention (lockclient.h). */
static uint64_t wall_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* One write command with a new seq. Call with the write turn. */
static int write_call(lc_client *c, Lockd__Request *req, uint32_t wait_ms,
		      lci_stop *st, call_result *res)
{
	req->session = c->session;
	req->session_key = c->session_key;
	for (int i = 0;; i++) {
		/* A client that shares its session (seq_base set) and was
		 * superseded numbers on from the wall clock, as the other
		 * process did: a seq one above its own would stay below that
		 * one's, and every later command (renewals, the release)
		 * would be superseded too. */
		if (i > 0 && c->o.seq_base != 0 && c->seq < wall_us())
			c->seq = wall_us();
		req->seq = ++c->seq;
		int rv = lci_call(c, req, true, wait_ms, st, res);
		/* SUPERSEDED: a later command of this session (another
		 * process using it) reached the ledger first and this one
		 * was skipped, or its answer is gone: ask again as a new
		 * command. */
		if (rv != LC_OK || i >= SETTLED_RETRIES_MAX ||
		    res->rep->status != LOCKD__STATUS__STATUS_OK ||
		    res->rep->lease_status !=
			    LOCKD__LEASE_STATUS__LEASE_SUPERSEDED)
			return rv;
		lockd__reply__free_unpacked(res->rep, NULL);
		res->rep = NULL;
	}
}

int lc_acquire(lc_client *c, const char *name, uint32_t ttl_ms,
	       uint32_t wait_ms, const void *value, size_t value_len,
	       lc_lease *out)
{
	if (c == NULL || out == NULL)
		return lci_fail(LC_EINVAL, "lc_acquire: client or out is NULL");
	memset(out, 0, sizeof *out);
	int rv = lci_check_name(name);
	if (rv != LC_OK)
		return rv;
	if (value_len > LC_VALUE_BYTES_MAX || (value == NULL && value_len))
		return lci_fail(LC_EINVAL, "a value is at most %u bytes",
				LC_VALUE_BYTES_MAX);
	snprintf(out->name, sizeof out->name, "%s", name);
	out->ttl_ms = ttl_ms;

	Lockd__Request req = LOCKD__REQUEST__INIT;
	req.op = LOCKD__OP__OP_ACQUIRE;
	req.name = (char *)name;
	req.ttl_ms = ttl_ms;
	req.value.data = (uint8_t *)value;
	req.value.len = value_len;

	lci_write_lock(c, NULL);
	uint64_t wait_end_us = lc_now_us() + (uint64_t)wait_ms * 1000u;
	call_result res;
	for (int settled = 0;; settled++) {
		uint64_t now = lc_now_us();
		req.wait_ms = wait_end_us > now
				      ? (uint32_t)((wait_end_us - now) / 1000u)
				      : 0;
		if (wait_ms > 0 && req.wait_ms == 0)
			req.wait_ms = 1;
		rv = write_call(c, &req, req.wait_ms, NULL, &res);
		if (rv != LC_OK)
			goto out;
		if (res.rep->status == LOCKD__STATUS__STATUS_OK &&
		    res.rep->lease_status == LOCKD__LEASE_STATUS__LEASE_OK &&
		    settled < SETTLED_RETRIES_MAX) {
			/* A retry of a command the cell had settled: its
			 * answer is gone. Ask again as a new command: the
			 * session's own re-acquire returns its lease, and a
			 * waiter keeps its place. */
			lockd__reply__free_unpacked(res.rep, NULL);
			continue;
		}
		break;
	}
	rv = lci_reply_code(res.rep);
	if (rv == LC_OK &&
	    res.rep->lease_status == LOCKD__LEASE_STATUS__LEASE_GRANTED) {
		out->token = res.rep->token;
		out->sent_us = res.first_sent_us;
		out->deadline_us = lc_lease_deadline_us(out->sent_us, ttl_ms,
							c->o.drift_ppm);
	} else if (rv == LC_OK) {
		rv = lci_fail(LC_EPROTO, "the cell answered an acquire without "
					 "granting or refusing it");
	} else {
		out->holder = res.rep->holder;
		out->queue_position = res.rep->queue_position;
	}
	lockd__reply__free_unpacked(res.rep, NULL);

	/* A grant after a long wait may leave little of the believed TTL
	 * (it counts from the first send): the session's own re-acquire
	 * renews it, counted from the re-acquire's send. */
	if (rv == LC_OK && c->o.refresh_remaining_permille < 1000 &&
	    lc_now_us() >=
		    lc_lease_renew_at_us(out->sent_us, ttl_ms, c->o.drift_ppm,
					 c->o.refresh_remaining_permille)) {
		req.wait_ms = 0;
		if (write_call(c, &req, 0, NULL, &res) == LC_OK) {
			if (res.rep->status == LOCKD__STATUS__STATUS_OK &&
			    res.rep->lease_status ==
				    LOCKD__LEASE_STATUS__LEASE_GRANTED &&
			    res.rep->token == out->token) {
				out->sent_us = res.first_sent_us;
				out->deadline_us = lc_lease_deadline_us(
					out->sent_us, ttl_ms, c->o.drift_ppm);
			}
			lockd__reply__free_unpacked(res.rep, NULL);
		}
	}
out:
	lci_write_unlock(c);
	return rv;
}

/* One write of the session (release, proclaim) under the write lock:
 * the reply's code. */
static int named_write(lc_client *c, Lockd__Request *req, lci_stop *st)
{
	call_result res;
	int rv = lci_write_lock(c, st);
	if (rv != LC_OK)
		return rv;
	rv = write_call(c, req, 0, st, &res);
	lci_write_unlock(c);
	if (rv != LC_OK)
		return rv;
	rv = lci_reply_code(res.rep);
	lockd__reply__free_unpacked(res.rep, NULL);
	return rv;
}

int lc_release(lc_client *c, const char *name, uint64_t token)
{
	return lci_release(c, name, token, NULL);
}

int lci_release(lc_client *c, const char *name, uint64_t token, lci_stop *st)
{
	if (c == NULL)
		return lci_fail(LC_EINVAL, "lc_release: client is NULL");
	int rv = lci_check_name(name);
	if (rv != LC_OK)
		return rv;
	Lockd__Request req = LOCKD__REQUEST__INIT;
	req.op = LOCKD__OP__OP_RELEASE;
	req.name = (char *)name;
	req.token = token;
	return named_write(c, &req, st);
}

int lc_proclaim(lc_client *c, const char *name, uint64_t token,
		const void *value, size_t value_len)
{
	if (c == NULL)
		return lci_fail(LC_EINVAL, "lc_proclaim: client is NULL");
	int rv = lci_check_name(name);
	if (rv != LC_OK)
		return rv;
	if (value_len > LC_VALUE_BYTES_MAX || (value_len > 0 && value == NULL))
		return lci_fail(LC_EINVAL, "a value is at most %u bytes",
				LC_VALUE_BYTES_MAX);
	Lockd__Request req = LOCKD__REQUEST__INIT;
	req.op = LOCKD__OP__OP_PROCLAIM;
	req.name = (char *)name;
	req.token = token;
	req.value.data = (uint8_t *)value;
	req.value.len = value_len;
	return named_write(c, &req, NULL);
}

int lc_revoke(lc_client *c, const char *name, const char *reason)
{
	if (c == NULL)
		return lci_fail(LC_EINVAL, "lc_revoke: client is NULL");
	int rv = lci_check_name(name);
	if (rv != LC_OK)
		return rv;
	if (reason != NULL && strlen(reason) > LC_REASON_BYTES_MAX)
		return lci_fail(LC_EINVAL, "a reason is at most %u bytes",
				LC_REASON_BYTES_MAX);
	Lockd__Request req = LOCKD__REQUEST__INIT;
	req.op = LOCKD__OP__OP_REVOKE;
	req.name = (char *)name;
	req.reason = (char *)(reason != NULL ? reason : "");
	call_result res;
	lci_write_lock(c, NULL);
	rv = write_call(c, &req, 0, NULL, &res);
	lci_write_unlock(c);
	if (rv != LC_OK)
		return rv;
	rv = lci_reply_code(res.rep);
	lockd__reply__free_unpacked(res.rep, NULL);
	return rv;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* out from the tokens of a renewal sent at sent_us. */
static void renewal_fill(lc_renewal *out, const uint64_t *tokens, size_t n,
			 uint64_t sent_us)
{
	if (n > LC_SESSION_LEASES_MAX)
		n = LC_SESSION_LEASES_MAX;
	if (n > 0) /* tokens is NULL when the reply names none */
		memcpy(out->tokens, tokens, n * sizeof *out->tokens);
	qsort(out->tokens, n, sizeof *out->tokens, cmp_u64);
	out->ntokens = n;
	out->sent_us = sent_us;
}

int lc_renew(lc_client *c, lc_renewal *out)
{
	return lci_renew(c, out, NULL);
}

int lci_renew(lc_client *c, lc_renewal *out, lci_stop *st)
{
	if (c == NULL || out == NULL)
		return lci_fail(LC_EINVAL, "lc_renew: client or out is NULL");
	out->sent_us = 0;
	out->ntokens = 0;
	Lockd__Request req = LOCKD__REQUEST__INIT;
	req.op = LOCKD__OP__OP_RENEW;
	call_result res;
	int rv;
	if ((rv = lci_write_lock(c, st)) != LC_OK)
		return rv;
	for (int again = 0;; again++) {
		rv = write_call(c, &req, 0, st, &res);
		if (rv != LC_OK)
			break;
		/* A retried RENEW whose answer names no token may be one the
		 * cell settled without its answer: renew again, afresh. */
		if (res.sends > 1 && res.rep->n_renewed == 0 &&
		    res.rep->status == LOCKD__STATUS__STATUS_OK &&
		    again < RENEW_AFRESH_MAX) {
			lockd__reply__free_unpacked(res.rep, NULL);
			continue;
		}
		break;
	}
	lci_write_unlock(c);
	if (rv != LC_OK)
		return rv;
	rv = lci_reply_code(res.rep);
	if (rv == LC_OK)
		renewal_fill(out, res.rep->renewed, res.rep->n_renewed,
			     res.first_sent_us);
	lockd__reply__free_unpacked(res.rep, NULL);
	return rv;
}

/* One RENEW for sessions cs[ix[0..m)], each with its next seq (the caller
 * holds their write turns): outs[ix[k]] and codes[ix[k]] from the cell's
 * answer. Returns LC_OK when the cell answered for every entry, else the
 * failure (codes untouched); *sends is how many tries reached nng. */
static int renew_many_send(lc_client *const *cs, const size_t *ix, size_t m,
			   lc_renewal *outs, int *codes, unsigned *sends)
{
	Lockd__SessionRef refs[LC_RENEW_SESSIONS_MAX];
	Lockd__SessionRef *ptrs[LC_RENEW_SESSIONS_MAX];
	for (size_t k = 0; k < m; k++) {
		lc_client *c = cs[ix[k]];
		lockd__session_ref__init(&refs[k]);
		refs[k].session = c->session;
		refs[k].session_key = c->session_key;
		refs[k].seq = ++c->seq;
		ptrs[k] = &refs[k];
	}
	Lockd__Request req = LOCKD__REQUEST__INIT;
	req.op = LOCKD__OP__OP_RENEW;
	req.n_renew_sessions = m;
	req.renew_sessions = ptrs;
	call_result res;
	int rv = lci_call(cs[ix[0]], &req, true, 0, NULL, &res);
	if (rv != LC_OK)
		return rv;
	*sends = res.sends;
	const Lockd__Reply *rep = res.rep;
	if (rep->status != LOCKD__STATUS__STATUS_OK)
		rv = lci_reply_code(rep);
	else if (rep->n_renewed_sessions != m)
		rv = lci_fail(LC_EPROTO,
			      "the cell answered %zu sessions of a RENEW for "
			      "%zu",
			      rep->n_renewed_sessions, m);
	for (size_t k = 0; rv == LC_OK && k < m; k++)
		if (rep->renewed_sessions[k]->session != refs[k].session)
			rv = lci_fail(
				LC_EPROTO,
				"the cell answered session %llu for "
				"session %llu",
				(unsigned long long)rep->renewed_sessions[k]
					->session,
				(unsigned long long)refs[k].session);
	for (size_t k = 0; rv == LC_OK && k < m; k++) {
		const Lockd__SessionRenewed *e = rep->renewed_sessions[k];
		Lockd__Reply one = LOCKD__REPLY__INIT;
		one.status = LOCKD__STATUS__STATUS_OK;
		one.lease_status = e->lease_status;
		one.error = e->error;
		codes[ix[k]] = lci_reply_code(&one);
		if (codes[ix[k]] == LC_OK)
			renewal_fill(&outs[ix[k]], e->renewed, e->n_renewed,
				     res.first_sent_us);
		lci_see_position(cs[ix[k]], rep->position);
	}
	lockd__reply__free_unpacked(res.rep, NULL);
	return rv;
}

int lc_renew_many(lc_client *const *cs, size_t n, lc_renewal *outs, int *codes)
{
	if (cs == NULL || outs == NULL || codes == NULL || n == 0 ||
	    n > LC_RENEW_SESSIONS_MAX)
		return lci_fail(LC_EINVAL,
				"lc_renew_many: 1-%u sessions, with outs and "
				"codes",
				LC_RENEW_SESSIONS_MAX);
	for (size_t i = 0; i < n; i++)
		if (cs[i] == NULL || cs[i]->net != cs[0]->net)
			return lci_fail(LC_EINVAL,
					"lc_renew_many: the sessions must "
					"share their connections "
					"(lc_open_shared)");
	size_t ix[LC_RENEW_SESSIONS_MAX];
	for (size_t i = 0; i < n; i++) {
		lci_write_lock(cs[i], NULL);
		outs[i].sent_us = 0;
		outs[i].ntokens = 0;
		ix[i] = i;
	}
	unsigned sends = 0;
	int rv = renew_many_send(cs, ix, n, outs, codes, &sends);
	/* As lc_renew: after a retry, an entry that renewed nothing may be
	 * one the cell had settled without its answer (applied at the first
	 * try, answered from the exactly-once table, which keeps no tokens):
	 * renew those again, afresh. */
	for (int again = 0;
	     rv == LC_OK && sends > 1 && again < RENEW_AFRESH_MAX; again++) {
		size_t m = 0;
		for (size_t i = 0; i < n; i++)
			if (codes[i] == LC_OK && outs[i].ntokens == 0)
				ix[m++] = i;
		if (m == 0)
			break;
		rv = renew_many_send(cs, ix, m, outs, codes, &sends);
	}
	for (size_t i = 0; i < n; i++) {
		if (rv != LC_OK)
			codes[i] = rv;
		lci_write_unlock(cs[i]);
	}
	return rv;
}

size_t lc_renewal_apply(const lc_client *c, const lc_renewal *r,
			lc_lease *leases, size_t n)
{
	size_t lost = 0;
	for (size_t i = 0; i < n; i++) {
		lc_lease *l = &leases[i];
		if (l->token == 0)
			continue;
		if (bsearch(&l->token, r->tokens, r->ntokens, sizeof *r->tokens,
			    cmp_u64) == NULL) {
			lost++;
			continue;
		}
		uint64_t d = lc_lease_deadline_us(r->sent_us, l->ttl_ms,
						  c->o.drift_ppm);
		if (d > l->deadline_us) {
			l->deadline_us = d;
			l->sent_us = r->sent_us;
		}
	}
	return lost;
}
