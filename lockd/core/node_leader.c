/* The leader's lease timers: a deadline per live lease on its own clock
 * (node.h's "Time"), rebuilt from the ledger on taking over, and the
 * decrees it proposes on its own behalf: EXPIRE once deadline + grace has
 * passed, CANCEL_WAIT when a wait runs out, TICK while leases exist. */
#include "node_int.h"

/* An EXPIRE not applied after this many election timeouts is proposed
 * again (lni_propose_expiries). */
#define EXPIRE_RETRY_TIMEOUTS 10u

/* ---- the leader's deadlines ------------------------------------------------
 */

deadline *lni_dl_find(ln_node *n, uint64_t token)
{
	return mem_idtab_find(&n->dls, token);
}

deadline *lni_dl_upsert(ln_node *n, uint64_t token)
{
	deadline *d = lni_dl_find(n, token);
	return d != NULL ? d : mem_idtab_insert(&n->dls, token);
}

void lni_dl_remove(ln_node *n, uint64_t token)
{
	deadline *d = lni_dl_find(n, token);
	if (d != NULL)
		mem_idtab_remove(&n->dls, d);
}

static void heap_push(ln_node *n, uint64_t at_us, uint64_t token)
{
	n->heap =
		mem_grow(n->heap, &n->heap_cap, n->nheap + 1, sizeof *n->heap);
	uint32_t i = n->nheap++;
	while (i > 0) {
		uint32_t p = (i - 1) / 2;
		if (n->heap[p].at_us <= at_us)
			break;
		n->heap[i] = n->heap[p];
		i = p;
	}
	n->heap[i] = (due){at_us, token};
}

static void heap_pop(ln_node *n)
{
	assert(n->nheap > 0);
	due last = n->heap[--n->nheap];
	uint32_t i = 0;
	for (;;) {
		uint32_t c = 2 * i + 1;
		if (c >= n->nheap)
			break;
		if (c + 1 < n->nheap && n->heap[c + 1].at_us < n->heap[c].at_us)
			c++;
		if (last.at_us <= n->heap[c].at_us)
			break;
		n->heap[i] = n->heap[c];
		i = c;
	}
	if (n->nheap > 0)
		n->heap[i] = last;
}

static uint64_t grace_us(const ln_node *n)
{
	if (MUTANT(n, PX_MUTANT_GRACE_ZERO))
		return 0;
	return (uint64_t)n->cfg.grace_ms * 1000;
}

/* (Re)arms a lease's deadline; the heap entry of an older deadline goes
 * stale and is skipped when it comes up. */
void lni_dl_arm(ln_node *n, deadline *d, uint64_t deadline_us)
{
	d->deadline_us = deadline_us;
	d->expire_sent_us = 0;
	d->due_us = deadline_us + grace_us(n);
	heap_push(n, d->due_us, d->token);
}

void lni_waits_remove(ln_node *n, const char *name, uint32_t len,
		      uint64_t session)
{
	for (uint32_t i = 0; i < n->nwaits; i++) {
		wait_timer *w = &n->waits[i];
		if (w->session == session && w->name_len == len &&
		    memcmp(w->name, name, len) == 0) {
			n->waits[i] = n->waits[--n->nwaits];
			return;
		}
	}
}

void lni_waits_add(ln_node *n, const char *name, uint32_t len, uint64_t session,
		   uint64_t at_us)
{
	lni_waits_remove(n, name, len, session);
	n->waits = mem_grow(n->waits, &n->waits_cap, n->nwaits + 1,
			    sizeof *n->waits);
	wait_timer *w = &n->waits[n->nwaits++];
	memset(w, 0, sizeof *w);
	w->session = session;
	w->at_us = at_us;
	memcpy(w->name, name, len);
	w->name_len = len;
}

void lni_leader_clear(ln_node *n)
{
	mem_idtab_free(&n->dls);
	n->nheap = 0;
	n->nwaits = 0;
	n->takeover_pending = false;
}

static bool takeover_lease(const ls_view *v, void *arg)
{
	struct takeover_ctx *c = arg;
	ln_node *n = c->n;
	memcpy(n->takeover_after, v->name, v->name_len);
	n->takeover_after_len = v->name_len;
	c->seen++;
	/* Granted or renewed since this leader took over: armed by then. */
	if (lni_dl_find(n, v->token) != NULL)
		return c->seen < n->cfg.takeover_step_leases;
	deadline *d = lni_dl_upsert(n, v->token);
	d->renewals = v->renewals;
	d->ttl_ms = v->ttl_ms;
	d->stamp_ms = v->stamp_ms;
	/* What the ledger proves went unrenewed, on the clocks of leaders
	 * that measured it; the rest of the TTL runs from now on ours. */
	uint64_t unrenewed_ms = c->clock_ms > v->renewed_clock_ms
					? c->clock_ms - v->renewed_clock_ms
					: 0;
	uint64_t left_ms =
		v->ttl_ms > unrenewed_ms ? v->ttl_ms - unrenewed_ms : 0;
	uint64_t at = n->now_us + left_ms * 1000;
	if (MUTANT(n, PX_MUTANT_TRUST_STAMPS))
		at = (v->stamp_ms + v->ttl_ms) * 1000;
	lni_dl_arm(n, d, at);
	for (uint32_t i = 0; i < v->nwaiters; i++) {
		ls_waiter_view w;
		if (ls_get_waiter(n->table, v->name, v->name_len, i, &w) ==
		    LS_OK)
			lni_waits_add(n, v->name, v->name_len, w.session,
				      n->now_us + (uint64_t)w.wait_ms * 1000);
	}
	return c->seen < n->cfg.takeover_step_leases;
}

/* A new leader rebuilds every deadline from the table and the ledger clock,
 * never from another replica's clock reading, in name order, a slice per
 * step. A lease not reached yet has no deadline, so it is not expired
 * before it is reached (later is the safe side); one granted or renewed
 * meanwhile is armed as it applies, and the walk leaves it so. A lease
 * reached later starts its remaining TTL later (now, not at the takeover):
 * later still. */
void lni_takeover(ln_node *n)
{
	lni_leader_clear(n);
	n->last_tick_us = n->now_us;
	n->tick_base_ms = ls_table_clock_ms(n->table);
	n->takeover_pending = true;
	n->takeover_after_len = 0;
	lni_takeover_step(n);
}

void lni_takeover_step(ln_node *n)
{
	if (!n->takeover_pending)
		return;
	struct takeover_ctx c = {n, ls_table_clock_ms(n->table), 0};
	ls_list_after(n->table, NULL, 0,
		      n->takeover_after_len ? n->takeover_after : NULL,
		      n->takeover_after_len, takeover_lease, &c);
	if (c.seen < n->cfg.takeover_step_leases ||
	    MUTANT(n, PX_MUTANT_TAKEOVER_ONE_SLICE))
		n->takeover_pending = false;
}

/* ---- proposing
 * --------------------------------------------------------------- */

static uint64_t since_tick_ms(const ln_node *n)
{
	/* Rounded up: the ledger clock stamped on a grant or renewal must not
	 * fall short of the truth (see lease.h). */
	return (n->now_us - n->last_tick_us + 999) / 1000;
}

void lni_flush_internal(ln_node *n, ln_actions *out)
{
	if (n->nbatch == 0)
		return;
	px_event ev = {.type = PX_EV_SUBMIT,
		       .now_us = n->now_us,
		       .cmd = n->batch_cmds,
		       .ncmds = n->nbatch};
	px_replica_step(n->rep, &ev, &out->ld);
	n->nbatch = 0;
}

/* Queues a command for the ledger; flush_internal submits everything queued
 * in this step at once, so a burst of requests or expiries shares a few
 * decrees. Stamps the leader's time since its last TICK (see lease.h).
 * Returns false if c does not encode (a malformed command). */
bool lni_queue_cmd(ln_node *n, ln_actions *out, uint64_t client_id,
		   uint64_t seq, ls_cmd *c)
{
	if (n->nbatch == LD_BATCH_CMDS_MAX)
		lni_flush_internal(n, out);
	uint8_t *buf = n->batch + (size_t)n->nbatch * LD_CMD_BYTES_MAX;
	c->since_tick_ms = since_tick_ms(n);
	c->stamp_ms = n->now_us / 1000;
	size_t len = ls_cmd_encode(c, buf, LD_CMD_BYTES_MAX);
	if (len == 0)
		return false;
	n->batch_cmds[n->nbatch++] = (px_cmd){
		.client_id = client_id,
		.seq = seq,
		.len = (uint32_t)len,
		.data = buf,
	};
	return true;
}

/* One of the leader's own commands (EXPIRE, TICK, CANCEL_WAIT). */
void lni_submit_internal(ln_node *n, ln_actions *out, ls_cmd *c)
{
	uint64_t seq = (n->leading_round << 32) | ++n->internal_seq;
	bool ok = lni_queue_cmd(n, out, INTERNAL_CLIENT | n->cfg.paxos.id, seq,
				c);
	assert(ok);
	(void)ok;
}

void lni_propose_expiries(ln_node *n, ln_actions *out)
{
	uint8_t pairs[LS_EXPIRE_TOKENS_MAX * 12];
	uint32_t np = 0;
	/* Within one leadership an EXPIRE proposed is chosen unless the
	 * leader is deposed, and a new leadership rebuilds every deadline
	 * (lni_takeover): the retry is a backstop, long enough that a mass
	 * expiry, whose EXPIREs wait in the queue for seconds, is not
	 * proposed again while it drains (1,000,000 expiries took 1,504
	 * decrees and 125 s with a retry of one election timeout). */
	uint64_t retry_us =
		EXPIRE_RETRY_TIMEOUTS * n->cfg.paxos.election_timeout_us;
	while (n->nheap > 0 && n->heap[0].at_us <= n->now_us) {
		due top = n->heap[0];
		heap_pop(n);
		deadline *d = lni_dl_find(n, top.token);
		if (d == NULL || d->due_us != top.at_us)
			continue; /* stale: renewed, re-armed or ended since */
		/* Due again after a retry interval, in case this EXPIRE is
		 * lost with a leadership change we did not notice. */
		d->due_us = n->now_us + retry_us;
		heap_push(n, d->due_us, d->token);
		d->expire_sent_us = n->now_us;
		uint8_t *p = &pairs[np * 12];
		bytes_put_le64(p, d->token);
		bytes_put_le32(p + 8, d->renewals);
		np++;
		if (np == LS_EXPIRE_TOKENS_MAX) {
			ls_cmd c = {.op = LS_OP_EXPIRE,
				    .ntokens = np,
				    .tokens = pairs};
			lni_submit_internal(n, out, &c);
			n->stats.expire_decrees++;
			np = 0;
		}
	}
	if (np > 0) {
		ls_cmd c = {.op = LS_OP_EXPIRE, .ntokens = np, .tokens = pairs};
		lni_submit_internal(n, out, &c);
		n->stats.expire_decrees++;
	}
}

void lni_propose_cancels(ln_node *n, ln_actions *out)
{
	uint64_t retry_us = n->cfg.paxos.election_timeout_us;
	for (uint32_t i = 0; i < n->nwaits; i++) {
		wait_timer *w = &n->waits[i];
		if (n->now_us < w->at_us ||
		    (w->cancel_sent_us != 0 &&
		     n->now_us < w->cancel_sent_us + retry_us))
			continue;
		w->cancel_sent_us = n->now_us;
		ls_cmd c = {.op = LS_OP_CANCEL_WAIT,
			    .session = w->session,
			    .name = w->name,
			    .name_len = w->name_len};
		lni_submit_internal(n, out, &c);
	}
}

void lni_propose_tick(ln_node *n, ln_actions *out)
{
	if (ls_table_count(n->table) == 0 && n->dls.n == 0)
		return;
	if (n->now_us < n->last_tick_us + (uint64_t)n->cfg.tick_ms * 1000)
		return;
	/* Whole milliseconds, the remainder carried: the ledger clock never
	 * runs ahead of the leader's. */
	uint64_t ms = (n->now_us - n->last_tick_us) / 1000;
	ls_cmd c = {.op = LS_OP_TICK,
		    .elapsed_ms = ms,
		    .term_round = n->leading_round,
		    .term_id = n->cfg.paxos.id,
		    .base_ms = n->tick_base_ms};
	if (MUTANT(n, PX_MUTANT_TICK_ANY_TERM))
		c.term_round = c.term_id = 0, c.base_ms = 0;
	lni_submit_internal(n, out, &c);
	n->last_tick_us += ms * 1000;
	n->stats.tick_decrees++;
}

uint64_t lni_leader_timer(const ln_node *n)
{
	if (n->takeover_pending)
		return n->now_us; /* the next slice at once */
	uint64_t t = UINT64_MAX;
	if (n->nheap > 0)
		t = n->heap[0].at_us;
	for (uint32_t i = 0; i < n->nwaits; i++) {
		uint64_t w = n->waits[i].cancel_sent_us
				     ? n->waits[i].cancel_sent_us +
					       n->cfg.paxos.election_timeout_us
				     : n->waits[i].at_us;
		if (w < t)
			t = w;
	}
	if (ls_table_count(n->table) > 0 || n->dls.n > 0) {
		uint64_t k = n->last_tick_us + (uint64_t)n->cfg.tick_ms * 1000;
		if (k < t)
			t = k;
	}
	return t;
}
