/* The simulator's lease clients. Each has its own drifting clock and runs a
 * random script over a small pool of shared names: acquire (some waiting in
 * the queue), write to the name's fenced resource while it believes it
 * holds the lease, renew early (when a third of the TTL remains), release.
 * Some pause, sometimes for longer than their TTL, and on waking write at
 * once without checking (the stale holder fencing exists for) or release
 * what they held (a late release); some vanish for good.
 *
 * What a client believes is computed by lc_time.h from its own clock; the
 * oracle (check.h) converts it to real time and checks that no two clients
 * believe they hold one name at the same instant. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "lc_time.h"
#include "sim_int.h"

#define SLC_REQ_TIMEOUT_US 500000u
/* A waiting ACQUIRE is given up this long after its wait would end. */
#define SLC_WAIT_SLACK_US 2000000u
#define SLC_WAIT_MS_MIN 100u
#define SLC_WAIT_MS_MAX 2000u
#define SLC_HOLD_MS_MIN 50u
#define SLC_HOLD_MS_MAX 1200u
#define SLC_THINK_US_MAX 300000u
#define SLC_WRITE_EVERY_MIN_US 50000u
#define SLC_WRITE_EVERY_MAX_US 300000u
#define SLC_PAUSE_EVERY_MIN_US 2000000u
#define SLC_PAUSE_EVERY_MAX_US 8000000u
#define SLC_PROBE_TTL_MS 1000u
#define SLC_VANISH_P 0.12
#define SLC_REVOKE_P 0.03
#define SLC_PROCLAIM_P 0.05 /* a held lease's new value instead */
#define SLC_READ_P 0.15     /* a linearizable GET instead of the next acquire */
#define SLC_WAIT_P 0.35

static uint64_t slc_now(const sim *s, const sim_lclient *c)
{
	return tw_clock_local(&c->clk, s->now);
}

static uint64_t slc_think(sim *s)
{
	return sim_rng_range(&s->rng, 0, SLC_THINK_US_MAX);
}

/* The real instant at which the client's clock reaches a local deadline:
 * the end of its belief, for the oracle. */
static uint64_t slc_end_real(const sim_lclient *c, uint64_t deadline_local)
{
	return tw_clock_real(&c->clk, deadline_local);
}

static bool slc_believes(const slc_hold *h, uint64_t now_l)
{
	return h->used && lc_lease_valid(now_l, h->deadline_local);
}

static uint64_t slc_renew_at(const sim *s, const slc_hold *h)
{
	return lc_lease_renew_at_us(h->base_local, h->ttl_ms, s->drift_ppm,
				    LC_RENEW_REMAINING_PERMILLE);
}

static uint32_t slc_nholds(const sim_lclient *c)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < SLC_HOLDS_MAX; i++)
		n += c->holds[i].used;
	return n;
}

static slc_hold *slc_hold_of(sim_lclient *c, uint32_t name)
{
	for (uint32_t i = 0; i < SLC_HOLDS_MAX; i++)
		if (c->holds[i].used && c->holds[i].name == name)
			return &c->holds[i];
	return NULL;
}

/* The client's one timer: an earlier request supersedes a later one. */
static void slc_arm(sim *s, sim_lclient *c, uint64_t at_local)
{
	uint64_t real = tw_clock_real(&c->clk, at_local);
	if (real == UINT64_MAX)
		return;
	if (real <= s->now)
		real = s->now + 1;
	if (c->timer_live && c->timer_at <= real)
		return;
	c->timer_gen++;
	c->timer_at = real;
	c->timer_live = true;
	sim_at(s, real,
	       (sim_ev){.type = SIM_EV_LCLIENT,
			.client = c->idx,
			.gen = c->timer_gen});
}

/* ---- requests ------------------------------------------------------------ */

static void slc_send(sim *s, sim_lclient *c)
{
	slc_op *op = &c->op;
	op->attempt++;
	uint64_t timeout = SLC_REQ_TIMEOUT_US + (uint64_t)op->wait_ms * 1000;
	sim_at(s, s->now + timeout,
	       (sim_ev){.type = SIM_EV_LTIMEOUT,
			.client = c->idx,
			.gen = op->attempt});
	sim_node *nd = &s->nodes[op->target];
	const char *name = op->type == LN_REQ_RENEW
				   ? "-"
				   : chk_name_str(&s->chk, op->name);
	if (!nd->up) {
		sim_trace(s, "DROP(down) %s c%u:%" PRIu64 " ->r%u",
			  chk_req_name(op->type), c->idx + 1, op->seq,
			  op->target);
		return;
	}
	if (sim_rng_chance(&s->rng, s->p.loss_p)) {
		sim_trace(s, "DROP(loss) %s c%u:%" PRIu64 " ->r%u",
			  chk_req_name(op->type), c->idx + 1, op->seq,
			  op->target);
		return;
	}
	uint64_t req_id = ((uint64_t)(c->idx + 1) << 40) | ++c->reqs;
	sim_trace(s,
		  "c%u SEND %s %s seq=%" PRIu64 " ttl=%" PRIu32 " wait=%" PRIu32
		  " token=%" PRIu64 " ->r%u attempt=%" PRIu64 " req=%" PRIx64,
		  c->idx + 1, chk_req_name(op->type), name, op->seq, op->ttl_ms,
		  op->wait_ms, op->token, op->target, op->attempt, req_id);
	int copies = sim_rng_chance(&s->rng, s->p.dup_p) ? 2 : 1;
	for (int i = 0; i < copies; i++) {
		sim_lreq *lr = sim_xmalloc(sizeof *lr);
		memset(lr, 0, sizeof *lr);
		ln_request *q = &lr->req;
		q->req_id = req_id;
		q->type = op->type;
		q->session = c->idx + 1;
		q->seq = op->seq;
		if (op->type != LN_REQ_RENEW) {
			snprintf(lr->name, sizeof lr->name, "%s", name);
			q->name = lr->name;
			q->name_len = (uint32_t)strlen(lr->name);
		}
		q->ttl_ms = op->ttl_ms;
		q->wait_ms = op->wait_ms;
		memcpy(lr->value, op->value, op->value_len);
		q->value = op->value_len ? lr->value : NULL;
		q->value_len = op->value_len;
		q->token = op->token;
		q->linearizable = op->type == LN_REQ_GET;
		if (op->type == LN_REQ_REVOKE) {
			snprintf(lr->reason, sizeof lr->reason, "sim");
			q->reason = lr->reason;
			q->reason_len = (uint32_t)strlen(lr->reason);
		}
		sim_at(s, s->now + sim_net_delay(s),
		       (sim_ev){.type = SIM_EV_LREQ,
				.node = op->target,
				.client = c->idx,
				.epoch = nd->epoch,
				.lreq = lr});
	}
}

/* The client's one request, cleared for a new one of type. */
static slc_op *slc_op_begin(sim_lclient *c, ln_req_type type)
{
	slc_op *op = &c->op;
	uint64_t attempt = op->attempt; /* stale timeouts must never match */
	memset(op, 0, sizeof *op);
	op->attempt = attempt;
	op->busy = true;
	op->type = type;
	return op;
}

/* A new write: the next seq, recorded with the oracle exactly as the node
 * will put it in the ledger (less the leader's clock readings). */
static void slc_start(sim *s, sim_lclient *c, ln_req_type type, uint32_t name,
		      uint32_t ttl_ms, uint32_t wait_ms, uint64_t token,
		      bool probe)
{
	slc_op *op = slc_op_begin(c, type);
	op->seq = ++c->seq;
	op->name = name;
	op->ttl_ms = ttl_ms;
	op->wait_ms = wait_ms;
	op->token = token;
	op->probe = probe;
	op->first_sent_local = slc_now(s, c);
	if (wait_ms)
		op->give_up_local = op->first_sent_local +
				    (uint64_t)wait_ms * 1000 +
				    SLC_WAIT_SLACK_US;
	if (type == LN_REQ_ACQUIRE || type == LN_REQ_PROCLAIM) {
		op->value_len = (uint32_t)sim_rng_below(&s->rng, 9);
		for (uint32_t i = 0; i < op->value_len; i++)
			op->value[i] = (uint8_t)sim_rng_next(&s->rng);
	}
	op->target = c->guess >= 0 ? (uint32_t)c->guess
				   : (uint32_t)sim_rng_below(&s->rng, s->n);
	const char *nm = chk_name_str(&s->chk, name);
	ls_cmd lc = {
		.op = type == LN_REQ_ACQUIRE    ? LS_OP_ACQUIRE
		      : type == LN_REQ_RENEW    ? LS_OP_RENEW
		      : type == LN_REQ_RELEASE  ? LS_OP_RELEASE
		      : type == LN_REQ_PROCLAIM ? LS_OP_PROCLAIM
						: LS_OP_REVOKE,
		.session = c->idx + 1,
		.name = type == LN_REQ_RENEW ? NULL : nm,
		.name_len = type == LN_REQ_RENEW ? 0 : (uint32_t)strlen(nm),
		.ttl_ms = ttl_ms,
		.wait_ms = wait_ms,
		.value = op->value_len ? op->value : NULL,
		.value_len = op->value_len,
		.token = token,
		.reason = type == LN_REQ_REVOKE ? "sim" : NULL,
		.reason_len = type == LN_REQ_REVOKE ? 3 : 0,
	};
	uint8_t buf[SIM_CMD_BYTES_MAX];
	size_t len = ls_cmd_encode(&lc, buf, sizeof buf);
	if (len == 0) {
		fprintf(stderr, "lockd-sim: internal error: cannot encode a "
				"client request\n");
		abort();
	}
	chk_submitted(&s->chk, c->idx, op->seq, buf, (uint32_t)len);
	s->res->commands++;
	slc_send(s, c);
}

/* ---- the fenced resources --------------------------------------------------
 */

static void slc_write(sim *s, sim_lclient *c, const slc_hold *h, bool believing)
{
	bool ok = chk_lease_write(&s->chk, c->idx, h->name, h->token, s->now,
				  believing);
	sim_trace(s, "c%u WRITE %s token=%" PRIu64 "%s: %s", c->idx + 1,
		  chk_name_str(&s->chk, h->name), h->token,
		  believing ? "" : " (stale holder, unchecked)",
		  ok ? "accepted" : "refused");
}

/* ---- replies ----------------------------------------------------------------
 */

static void slc_granted(sim *s, sim_lclient *c, uint64_t token)
{
	slc_op *op = &c->op;
	uint64_t now_l = slc_now(s, c);
	/* The deadline counts from when the acquire was first sent: the leader
	 * granted no earlier. (The mutant counts from the reply's arrival.) */
	uint64_t base = s->o->mutant == PX_MUTANT_REPLY_CLOCK
				? now_l
				: op->first_sent_local;
	uint64_t deadline =
		lc_lease_deadline_us(base, op->ttl_ms, s->drift_ppm);
	uint64_t end = slc_end_real(c, deadline);
	sim_trace(s,
		  "c%u GRANTED %s token=%" PRIu64 " ttl=%" PRIu32
		  " believes for %.3f ms%s",
		  c->idx + 1, chk_name_str(&s->chk, op->name), token,
		  op->ttl_ms,
		  end > s->now ? (double)(end - s->now) / 1000.0 : 0.0,
		  end > s->now ? "" : " (already over: must renew)");
	chk_lease_granted(&s->chk, c->idx, op->name, token, s->now, end);
	c->granted++;
	slc_hold *h = slc_hold_of(c, op->name);
	if (h && h->token == token) {
		if (deadline > h->deadline_local) {
			h->deadline_local = deadline;
			h->base_local = base;
		}
	} else {
		for (uint32_t i = 0; !h && i < SLC_HOLDS_MAX; i++)
			if (!c->holds[i].used)
				h = &c->holds[i];
		if (!h) {
			fprintf(stderr,
				"lockd-sim: internal error: c%u has no room "
				"for a lease\n",
				c->idx + 1);
			abort();
		}
		*h = (slc_hold){
			.used = true,
			.name = op->name,
			.token = token,
			.ttl_ms = op->ttl_ms,
			.base_local = base,
			.deadline_local = deadline,
			.until_local =
				now_l + 1000 * sim_rng_range(&s->rng,
							     SLC_HOLD_MS_MIN,
							     SLC_HOLD_MS_MAX),
			.next_write_local = now_l,
		};
	}
	if (op->probe) {
		h->until_local = now_l;
		c->final_step = 2;
	}
}

static void slc_renewed(sim *s, sim_lclient *c, const ln_reply *rp)
{
	slc_op *op = &c->op;
	uint64_t now_l = slc_now(s, c);
	uint64_t base = s->o->mutant == PX_MUTANT_REPLY_CLOCK
				? now_l
				: op->first_sent_local;
	/* A reply that lists fewer tokens than it counts (a retry's: the list
	 * is gone) says nothing about the missing ones. */
	bool complete = rp->ntokens == rp->result.count;
	for (uint32_t i = 0; i < SLC_HOLDS_MAX; i++) {
		slc_hold *h = &c->holds[i];
		if (!h->used)
			continue;
		bool listed = false;
		for (uint32_t k = 0; k < rp->ntokens && !listed; k++)
			listed = rp->tokens[k] == h->token;
		if (listed) {
			uint64_t deadline = lc_lease_deadline_us(
				base, h->ttl_ms, s->drift_ppm);
			if (deadline > h->deadline_local) {
				h->deadline_local = deadline;
				h->base_local = base;
			}
			h->lost = false;
			uint64_t end = slc_end_real(c, h->deadline_local);
			sim_trace(s,
				  "c%u RENEWED %s token=%" PRIu64
				  " believes for %.3f ms",
				  c->idx + 1, chk_name_str(&s->chk, h->name),
				  h->token,
				  end > s->now ? (double)(end - s->now) / 1000.0
					       : 0.0);
			chk_lease_renewed(&s->chk, c->idx, h->name, h->token,
					  s->now, end);
		} else if (complete && !h->lost) {
			/* Gone at the cell (expired or revoked): stop renewing,
			 * release when the belief has run out. */
			h->lost = true;
			uint64_t at = h->deadline_local > now_l
					      ? h->deadline_local
					      : now_l;
			if (h->until_local > at)
				h->until_local = at;
			sim_trace(s, "c%u LOST %s token=%" PRIu64, c->idx + 1,
				  chk_name_str(&s->chk, h->name), h->token);
		}
	}
}

static void slc_reply(sim *s, sim_lclient *c, uint32_t from, const ln_reply *rp)
{
	slc_op *op = &c->op;
	uint64_t now_l = slc_now(s, c);
	if (!op->busy || rp->seq != op->seq || rp->type != op->type) {
		sim_trace(s,
			  "c%u ignores a stale %s reply seq=%" PRIu64
			  " from r%u",
			  c->idx + 1, chk_req_name(rp->type), rp->seq, from);
		return;
	}
	switch (rp->status) {
	case LN_NOT_LEADER:
		if (from != op->target)
			return;
		op->attempt++;
		op->redirects++;
		if (rp->leader_hint >= 0 && (uint32_t)rp->leader_hint < s->n &&
		    (uint32_t)rp->leader_hint != from && op->redirects % 4 != 0)
			op->target = (uint32_t)rp->leader_hint;
		else
			op->target = sim_other(s, from);
		c->guess = (int32_t)op->target;
		sim_at(s,
		       s->now + sim_rng_range(&s->rng, 100,
					      1000u * (op->redirects < 10
							       ? op->redirects
							       : 10)),
		       (sim_ev){.type = SIM_EV_LRETRY,
				.client = c->idx,
				.gen = op->attempt});
		return;
	case LN_BUSY:
		if (from != op->target)
			return;
		op->attempt++;
		op->target = sim_other(s, from);
		sim_at(s, s->now + sim_rng_range(&s->rng, 10000, 50000),
		       (sim_ev){.type = SIM_EV_LRETRY,
				.client = c->idx,
				.gen = op->attempt});
		return;
	case LN_INVALID: /* the oracle has flagged it */
		op->busy = false;
		c->next_acquire_local = now_l + slc_think(s);
		return;
	case LN_TIMEOUT:
		sim_trace(s, "c%u waited for %s in vain", c->idx + 1,
			  chk_name_str(&s->chk, op->name));
		op->busy = false;
		c->guess = (int32_t)from;
		c->next_acquire_local = now_l + slc_think(s);
		return;
	case LN_OK:
		break;
	}
	c->guess = (int32_t)from;
	op->busy = false;
	s->res->acks++;
	switch (op->type) {
	case LN_REQ_ACQUIRE:
		if (rp->result.status == LS_GRANTED) {
			slc_granted(s, c, rp->result.token);
		} else if (op->probe) {
			chk_fail(&s->chk, "liveness",
				 "c%u's final ACQUIRE of the free name %s got "
				 "%s",
				 c->idx + 1, chk_name_str(&s->chk, op->name),
				 ls_strerror(rp->result.status));
		}
		c->next_acquire_local = now_l + slc_think(s);
		return;
	case LN_REQ_RENEW:
		slc_renewed(s, c, rp);
		return;
	case LN_REQ_GET:
		/* Linearizable: it reflects every write acknowledged before
		 * it was sent (ReadIndex, paxos.h PX_EV_READ). */
		if (rp->position < op->read_floor)
			chk_fail(&s->chk, "linearizable",
				 "r%u answered c%u's linearizable GET at "
				 "position %" PRIu64 ", behind slot %" PRIu64
				 " of a write acknowledged before it was sent",
				 from, c->idx + 1, rp->position,
				 op->read_floor);
		c->next_acquire_local = now_l + slc_think(s);
		return;
	case LN_REQ_PROCLAIM:
		/* Only the holder, with its token, changes the value. */
		if (rp->result.status != LS_OK &&
		    rp->result.status != LS_NOT_HOLDER &&
		    rp->result.status != LS_NO_SUCH_LEASE)
			chk_fail(&s->chk, "validity",
				 "c%u's PROCLAIM of %s got %s", c->idx + 1,
				 chk_name_str(&s->chk, op->name),
				 ls_strerror(rp->result.status));
		return;
	case LN_REQ_RELEASE:
	case LN_REQ_REVOKE:
	case LN_REQ_CHECK:
		return;
	}
}

/* A linearizable GET of a name: not a command (no seq, nothing for the
 * oracle's ledger), answered at the leader. */
static void slc_start_read(sim *s, sim_lclient *c, uint32_t name)
{
	slc_op *op = slc_op_begin(c, LN_REQ_GET);
	/* Not a command's seq: only to tell this read's replies from a late
	 * one to an earlier read. */
	op->seq = (UINT64_C(1) << 40) | ++c->reads;
	op->name = name;
	op->first_sent_local = slc_now(s, c);
	op->read_floor = s->chk.max_lease_ack_slot;
	op->target = c->guess >= 0 ? (uint32_t)c->guess
				   : (uint32_t)sim_rng_below(&s->rng, s->n);
	slc_send(s, c);
}

/* ---- the script -------------------------------------------------------------
 */

static void slc_release(sim *s, sim_lclient *c, slc_hold *h)
{
	/* A client stops using a lease before it asks to release it. */
	chk_lease_dropped(&s->chk, c->idx, h->name, s->now);
	h->used = false;
	slc_start(s, c, LN_REQ_RELEASE, h->name, 0, 0, h->token, false);
}

static void slc_next(sim *s, sim_lclient *c, uint64_t now_l)
{
	for (uint32_t i = 0; i < SLC_HOLDS_MAX; i++) {
		slc_hold *h = &c->holds[i];
		if (h->used && h->until_local <= now_l) {
			slc_release(s, c, h);
			return;
		}
	}
	for (uint32_t i = 0; i < SLC_HOLDS_MAX; i++) {
		slc_hold *h = &c->holds[i];
		if (h->used && !h->lost && now_l >= slc_renew_at(s, h)) {
			slc_start(s, c, LN_REQ_RENEW, 0, 0, 0, 0, false);
			return;
		}
	}
	if (s->healed) {
		/* The end: what it holds was released above (slc_heal); now a
		 * free name must be granted within the liveness bound. */
		if (slc_nholds(c) > 0)
			return;
		if (c->final_step == 0) {
			c->final_step = 1;
			slc_start(s, c, LN_REQ_ACQUIRE, c->probe_name,
				  SLC_PROBE_TTL_MS, 0, 0, true);
		} else if (c->final_step == 2) {
			c->done = true;
			sim_trace(s,
				  "c%u DONE (%" PRIu64 " acquires, %" PRIu64
				  " granted, %" PRIu64 " pauses)",
				  c->idx + 1, c->acquires, c->granted,
				  c->pauses);
		}
		return;
	}
	if (now_l < c->next_acquire_local)
		return;
	if (slc_nholds(c) >= c->hold_cap) {
		c->next_acquire_local = now_l + slc_think(s);
		return;
	}
	uint32_t name = s->names[sim_rng_below(&s->rng, s->nnames)];
	if (sim_rng_chance(&s->rng, SLC_READ_P)) {
		c->next_acquire_local = now_l + slc_think(s);
		slc_start_read(s, c, name);
		return;
	}
	if (sim_rng_chance(&s->rng, SLC_PROCLAIM_P)) {
		/* A holder announces a new value (an elected leader's). */
		for (uint32_t i = 0; i < SLC_HOLDS_MAX; i++) {
			slc_hold *h = &c->holds[i];
			if (h->used && !h->lost) {
				c->next_acquire_local = now_l + slc_think(s);
				slc_start(s, c, LN_REQ_PROCLAIM, h->name, 0, 0,
					  h->token, false);
				return;
			}
		}
	}
	if (sim_rng_chance(&s->rng, SLC_REVOKE_P)) {
		/* An operator's forced end, from any session. */
		c->next_acquire_local = now_l + slc_think(s);
		slc_start(s, c, LN_REQ_REVOKE, name, 0, 0, 0, false);
		return;
	}
	if (slc_hold_of(c, name)) {
		c->next_acquire_local = now_l + slc_think(s);
		return;
	}
	uint32_t ttl =
		(uint32_t)sim_rng_range(&s->rng, SIM_TTL_MS_MIN, s->ttl_ms_max);
	/* Waiting keeps the client's one request busy, so only a client that
	 * holds nothing (nothing to renew meanwhile) waits. */
	uint32_t wait =
		slc_nholds(c) == 0 && sim_rng_chance(&s->rng, SLC_WAIT_P)
			? (uint32_t)sim_rng_range(&s->rng, SLC_WAIT_MS_MIN,
						  SLC_WAIT_MS_MAX)
			: 0;
	c->acquires++;
	slc_start(s, c, LN_REQ_ACQUIRE, name, ttl, wait, 0, false);
}

/* Sets the timer for the next thing the client will do by itself. */
static void slc_rearm(sim *s, sim_lclient *c, uint64_t now_l)
{
	uint64_t at = UINT64_MAX;
	for (uint32_t i = 0; i < SLC_HOLDS_MAX; i++) {
		const slc_hold *h = &c->holds[i];
		if (!h->used)
			continue;
		if (slc_believes(h, now_l) &&
		    h->next_write_local < h->deadline_local &&
		    h->next_write_local < at)
			at = h->next_write_local;
		if (c->op.busy)
			continue; /* the reply will wake it */
		if (h->until_local < at)
			at = h->until_local;
		uint64_t r = slc_renew_at(s, h);
		if (!h->lost && r < at)
			at = r;
	}
	if (c->op.busy && c->op.give_up_local && c->op.give_up_local < at)
		at = c->op.give_up_local;
	if (!c->op.busy && !s->healed && c->next_acquire_local < at)
		at = c->next_acquire_local;
	if (at != UINT64_MAX)
		slc_arm(s, c, at > now_l ? at : now_l);
}

static void slc_act(sim *s, sim_lclient *c)
{
	if (c->vanished || c->done || c->paused_until)
		return;
	uint64_t now_l = slc_now(s, c);
	for (uint32_t i = 0; i < SLC_HOLDS_MAX; i++) {
		slc_hold *h = &c->holds[i];
		if (slc_believes(h, now_l) && h->next_write_local <= now_l) {
			slc_write(s, c, h, true);
			h->next_write_local =
				now_l + sim_rng_range(&s->rng,
						      SLC_WRITE_EVERY_MIN_US,
						      SLC_WRITE_EVERY_MAX_US);
		}
	}
	if (c->op.busy && c->op.give_up_local && now_l >= c->op.give_up_local) {
		sim_trace(s, "c%u gives up waiting for %s (seq %" PRIu64 ")",
			  c->idx + 1, chk_name_str(&s->chk, c->op.name),
			  c->op.seq);
		c->op.busy = false;
		c->next_acquire_local = now_l + slc_think(s);
	}
	if (!c->op.busy)
		slc_next(s, c, now_l);
	slc_rearm(s, c, now_l);
}

/* ---- pauses and vanishing
 * ------------------------------------------------------ */

static void slc_pause(sim *s, sim_lclient *c)
{
	if (c->vanished || c->done || c->paused_until || s->healed)
		return;
	uint64_t dur;
	if (sim_rng_chance(&s->rng, 0.5))
		dur = sim_rng_range(&s->rng, 20000, 500000);
	else /* longer than the TTL, often longer than TTL + grace */
		dur = sim_rng_range(&s->rng, 500ull * s->ttl_ms_max,
				    2000ull * s->ttl_ms_max +
					    1000ull * s->grace_ms);
	c->paused_until = s->now + dur;
	c->pauses++;
	sim_trace(s, "c%u PAUSES for %.3f ms holding %u", c->idx + 1,
		  (double)dur / 1000.0, slc_nholds(c));
	sim_at(s, c->paused_until,
	       (sim_ev){.type = SIM_EV_LWAKE, .client = c->idx});
}

static void slc_wake(sim *s, sim_lclient *c)
{
	c->paused_until = 0;
	c->timer_live = false;
	uint64_t now_l = slc_now(s, c);
	double r = sim_rng_unit(&s->rng);
	const char *how = "checks its deadlines";
	if (r < 0.4) {
		/* The stale holder: it was in the middle of a write. */
		how = "writes at once";
		for (uint32_t i = 0; i < SLC_HOLDS_MAX; i++)
			if (c->holds[i].used)
				slc_write(s, c, &c->holds[i],
					  slc_believes(&c->holds[i], now_l));
	} else if (r < 0.7) {
		how = "releases what it held";
		for (uint32_t i = 0; i < SLC_HOLDS_MAX; i++)
			if (c->holds[i].used)
				c->holds[i].until_local = now_l;
	}
	sim_trace(s, "c%u WAKES and %s", c->idx + 1, how);
	if (!s->healed)
		sim_at(s,
		       s->now + sim_rng_range(&s->rng, SLC_PAUSE_EVERY_MIN_US,
					      SLC_PAUSE_EVERY_MAX_US),
		       (sim_ev){.type = SIM_EV_LPAUSE, .client = c->idx});
	slc_act(s, c);
}

/* ---- the interface to sim.c
 * ------------------------------------------------------ */

void slc_setup(sim *s)
{
	char name[CHK_NAME_BYTES_MAX];
	s->nnames = (uint32_t)sim_rng_range(&s->rng, s->nclients / 2 + 1,
					    s->nclients + 2);
	for (uint32_t i = 0; i < s->nnames; i++) {
		snprintf(name, sizeof name, "n%u", i);
		s->names[i] = chk_name_add(&s->chk, name);
	}
	int64_t dm = s->drift_ppm;
	for (uint32_t i = 0; i < s->nclients; i++) {
		sim_lclient *c = &s->lclients[i];
		memset(c, 0, sizeof *c);
		c->idx = i;
		c->guess = -1;
		c->clk.offset_us = sim_rng_range(&s->rng, 1, 10000000000ull);
		c->clk.drift_ppm = (int64_t)sim_rng_below(
					   &s->rng, (uint64_t)(2 * dm + 1)) -
				   dm;
		c->hold_cap =
			(uint32_t)sim_rng_range(&s->rng, 1, SLC_HOLDS_MAX);
		snprintf(name, sizeof name, "p%u", i + 1);
		c->probe_name = chk_name_add(&s->chk, name);
		c->next_acquire_local = slc_now(s, c) + slc_think(s);
		slc_arm(s, c, c->next_acquire_local);
		sim_at(s,
		       sim_rng_range(&s->rng, SLC_PAUSE_EVERY_MIN_US / 2,
				     SLC_PAUSE_EVERY_MAX_US),
		       (sim_ev){.type = SIM_EV_LPAUSE, .client = i});
		if (sim_rng_chance(&s->rng, SLC_VANISH_P))
			sim_at(s,
			       sim_rng_range(&s->rng, 1000000,
					     s->p.fault_min_us),
			       (sim_ev){.type = SIM_EV_LVANISH, .client = i});
		sim_trace(s,
			  "c%u clock offset=%" PRIu64 " drift=%" PRId64
			  "ppm holds<=%u",
			  i + 1, c->clk.offset_us, c->clk.drift_ppm,
			  c->hold_cap);
	}
}

void slc_free_event(sim_ev *ev)
{
	if (ev->type == SIM_EV_LREQ) {
		free(ev->lreq);
	} else if (ev->type == SIM_EV_LREPLY) {
		ln_reply *rp = ev->lreply;
		free(rp->tokens);
		free(rp);
	}
}

void slc_dispatch(sim *s, sim_ev *ev)
{
	sim_lclient *c = &s->lclients[ev->client];
	if (c->vanished || c->done) {
		if (ev->type == SIM_EV_LREPLY)
			slc_free_event(ev);
		return;
	}
	/* A paused client hears nothing until it wakes; then it handles what
	 * arrived in order. The wake was queued first, so it runs first. */
	if (c->paused_until &&
	    (ev->type == SIM_EV_LREPLY || ev->type == SIM_EV_LRETRY ||
	     ev->type == SIM_EV_LTIMEOUT)) {
		sim_at(s, c->paused_until, *ev);
		return;
	}
	switch (ev->type) {
	case SIM_EV_LREPLY: {
		ln_reply *rp = ev->lreply;
		slc_reply(s, c, ev->node, rp);
		slc_free_event(ev);
		slc_act(s, c);
		return;
	}
	case SIM_EV_LCLIENT:
		if (ev->gen != c->timer_gen)
			return;
		c->timer_live = false;
		slc_act(s, c);
		return;
	case SIM_EV_LRETRY:
		if (c->op.busy && ev->gen == c->op.attempt)
			slc_send(s, c);
		return;
	case SIM_EV_LTIMEOUT:
		if (!c->op.busy || ev->gen != c->op.attempt)
			return;
		if (c->op.give_up_local &&
		    slc_now(s, c) >= c->op.give_up_local) {
			slc_act(s, c);
			return;
		}
		sim_trace(s, "c%u TIMEOUT %s seq=%" PRIu64 " at r%u",
			  c->idx + 1, chk_req_name(c->op.type), c->op.seq,
			  c->op.target);
		c->op.target = sim_other(s, c->op.target);
		c->guess = -1;
		slc_send(s, c);
		return;
	case SIM_EV_LPAUSE:
		slc_pause(s, c);
		return;
	case SIM_EV_LWAKE:
		slc_wake(s, c);
		return;
	case SIM_EV_LVANISH:
		c->vanished = true;
		sim_trace(s, "c%u VANISHES holding %u", c->idx + 1,
			  slc_nholds(c));
		return;
	default:
		return;
	}
}

void slc_heal(sim *s)
{
	for (uint32_t i = 0; i < s->nclients; i++) {
		sim_lclient *c = &s->lclients[i];
		if (c->vanished)
			continue;
		uint64_t now_l = slc_now(s, c);
		for (uint32_t k = 0; k < SLC_HOLDS_MAX; k++)
			if (c->holds[k].used)
				c->holds[k].until_local = now_l;
		slc_act(s, c);
	}
}

bool slc_done(const sim *s)
{
	for (uint32_t i = 0; i < s->nclients; i++)
		if (!s->lclients[i].vanished && !s->lclients[i].done)
			return false;
	return true;
}

void slc_liveness_detail(const sim *s, char *buf, size_t cap)
{
	size_t n = 0;
	buf[0] = '\0';
	for (uint32_t i = 0; i < s->nclients && n < cap; i++) {
		const sim_lclient *c = &s->lclients[i];
		if (c->vanished || c->done)
			continue;
		int k = snprintf(buf + n, cap - n,
				 " c%u%s step=%u holds=%u %s%s seq=%" PRIu64
				 " attempt=%" PRIu64 " at r%u;",
				 i + 1, c->paused_until ? " paused" : "",
				 c->final_step, slc_nholds(c),
				 c->op.busy ? "busy " : "idle",
				 c->op.busy ? chk_req_name(c->op.type) : "",
				 c->op.seq, c->op.attempt, c->op.target);
		if (k < 0)
			break;
		n += (size_t)k;
	}
}
