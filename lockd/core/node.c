/* The lease node: routes client requests into the ledger, turns applied
 * decrees into replies, and, while leading, keeps the lease deadlines that
 * only the leader's clock decides (see node.h for the rules and lease.h for
 * the ledger clock). */
#include "node_int.h"

/* This file: configuration, life cycle, requests and their answers (from
 * the ledger's replies and the table's journal), the step function and the
 * invariants; node_leader.c keeps the leader's deadlines and proposes its
 * own decrees (EXPIRE, CANCEL_WAIT, TICK). node_int.h holds what they
 * share. */

static void on_read(ln_node *n, const ln_request *q, ln_actions *out);
static void on_write(ln_node *n, const ln_request *q, ln_actions *out);

/* ---- config ----------------------------------------------------------------
 */

void ln_config_default(ln_config *cfg, uint32_t id, uint32_t nreplicas)
{
	memset(cfg, 0, sizeof *cfg);
	px_config_default(&cfg->paxos, id, nreplicas);
	cfg->grace_ms = 1000;
	cfg->drift_ppm = 1000;
	cfg->tick_ms = 100;
	cfg->ttl_ms_max = 60000;
	cfg->takeover_step_leases = LD_TAKEOVER_STEP_LEASES;
}

int ln_config_check(const ln_config *cfg, char *err, size_t errlen)
{
	if (cfg->takeover_step_leases == 0 ||
	    cfg->takeover_step_leases > LD_TAKEOVER_STEP_LEASES) {
		snprintf(err, errlen,
			 "takeover_step_leases must be between 1 and %u",
			 LD_TAKEOVER_STEP_LEASES);
		return -1;
	}
	if (cfg->ttl_ms_max < LS_TTL_MS_MIN ||
	    cfg->ttl_ms_max > LS_TTL_MS_MAX) {
		snprintf(err, errlen, "ttl_ms_max must be between %u and %u ms",
			 LS_TTL_MS_MIN, LS_TTL_MS_MAX);
		return -1;
	}
	if (cfg->tick_ms == 0 || cfg->tick_ms > LS_TTL_MS_MIN) {
		snprintf(err, errlen, "tick_ms must be between 1 and %u ms",
			 LS_TTL_MS_MIN);
		return -1;
	}
	if (cfg->drift_ppm >= 100000) {
		snprintf(err, errlen, "drift bound %u ppm is not a clock",
			 cfg->drift_ppm);
		return -1;
	}
	/* A lease outlives its holder's belief when the leader's clock runs
	 * fast and the holder's runs slow: by up to drift x TTL. */
	uint64_t need =
		((uint64_t)cfg->ttl_ms_max * cfg->drift_ppm + 999999) / 1000000;
	if (cfg->grace_ms < need) {
		snprintf(err, errlen,
			 "grace %u ms is shorter than the drift bound (%u ppm) "
			 "times the longest TTL (%u ms): at least %llu ms "
			 "needed",
			 cfg->grace_ms, cfg->drift_ppm, cfg->ttl_ms_max,
			 (unsigned long long)need);
		return -1;
	}
	return 0;
}

/* ---- actions ------------------------------------------------------------- */

void ln_actions_init(ln_actions *a)
{
	memset(a, 0, sizeof *a);
	px_actions_init(&a->ld);
}

void ln_actions_reset(ln_actions *a)
{
	px_actions_reset(&a->ld);
	for (size_t i = 0; i < a->nreplies; i++)
		free(a->replies[i].tokens);
	a->nreplies = 0;
}

void ln_actions_free(ln_actions *a)
{
	ln_actions_reset(a);
	px_actions_free(&a->ld);
	free(a->replies);
	memset(a, 0, sizeof *a);
}

static ln_reply *reply_new(ln_node *n, ln_actions *out, uint64_t req_id,
			   ln_req_type type, uint64_t session, uint64_t seq,
			   ln_status st)
{
	if (out->nreplies == out->replies_cap) {
		size_t cap = out->replies_cap ? out->replies_cap * 2 : 16;
		ln_reply *r = realloc(out->replies, cap * sizeof *r);
		if (r == NULL)
			abort();
		out->replies = r;
		out->replies_cap = cap;
	}
	ln_reply *rp = &out->replies[out->nreplies++];
	memset(rp, 0, offsetof(ln_reply, value));
	rp->req_id = req_id;
	rp->type = type;
	rp->session = session;
	rp->seq = seq;
	rp->status = st;
	rp->ttl_ms_left = -1;
	px_status s;
	px_replica_status(n->rep, &s);
	rp->leader_hint = s.leader;
	rp->position = s.applied;
	return rp;
}

/* ---- lifecycle -------------------------------------------------------------
 */

ln_node *ln_node_new(const ln_config *cfg)
{
	char err[256];
	if (ln_config_check(cfg, err, sizeof err) != 0)
		return NULL;
	ln_node *n = calloc(1, sizeof *n);
	if (n == NULL)
		return NULL;
	n->dls = (mem_idtab)LD_IDTAB_INIT(deadline);
	n->outs_ix = (mem_idtab)LD_IDTAB_INIT2(outs_ix);
	n->renew_ix = (mem_idtab)LD_IDTAB_INIT2(renew_ix);
	n->cfg = *cfg;
	n->table = ls_table_new();
	if (n->table == NULL) {
		free(n);
		return NULL;
	}
	n->batch = malloc((size_t)LD_BATCH_CMDS_MAX * LD_CMD_BYTES_MAX);
	if (n->batch == NULL) {
		ls_table_free(n->table);
		free(n);
		return NULL;
	}
	if (MUTANT(n, PX_MUTANT_UNCHECKED_REGRANT))
		ls_table_set_mutant(n->table, LS_MUTANT_UNCHECKED_REGRANT);
	ls_table_set_ttl_ms_max(n->table, cfg->ttl_ms_max);
	n->rep = px_replica_new(&cfg->paxos, ls_table_sm(n->table));
	if (n->rep == NULL) {
		ls_table_free(n->table);
		free(n->batch);
		free(n);
		return NULL;
	}
	return n;
}

void ln_node_free(ln_node *n)
{
	if (n == NULL)
		return;
	px_replica_free(n->rep);
	ls_table_free(n->table);
	free(n->outs);
	free(n->lins);
	mem_idtab_free(&n->dls);
	mem_idtab_free(&n->outs_ix);
	mem_idtab_free(&n->renew_ix);
	free(n->heap);
	free(n->waits);
	free(n->batch);
	free(n);
}

int ln_node_restore(ln_node *n, const px_record *rec)
{
	int rc = px_replica_restore(n->rep, rec);
	ls_table_journal_clear(n->table);
	return rc;
}

int ln_node_capture(ln_node *n, uint8_t **out, size_t *len, uint64_t *base,
		    uint64_t *sum)
{
	return px_replica_capture(n->rep, out, len, base, sum);
}

const px_replica *ln_node_replica(const ln_node *n)
{
	return n->rep;
}

void ln_node_set_tap(ln_node *n, ls_tap_fn fn, void *arg)
{
	ls_table_set_tap(n->table, fn, arg);
}

const ls_table *ln_node_table(const ln_node *n)
{
	return n->table;
}

void ln_node_stats(const ln_node *n, ln_stats *st)
{
	*st = n->stats;
	st->lin_waiting = n->nlins;
}

/* ---- outstanding requests
 * ---------------------------------------------------- */

static void outs_ix_add(ln_node *n, uint32_t i)
{
	const outstanding *o = &n->outs[i];
	outs_ix *x = mem_idtab_find2(&n->outs_ix, o->session, o->seq);
	if (x == NULL) {
		x = mem_idtab_insert2(&n->outs_ix, o->session, o->seq);
		x->pos = i;
	}
	x->count++;
}

static void outs_ix_rebuild(ln_node *n)
{
	mem_idtab_free(&n->outs_ix);
	for (uint32_t i = 0; i < n->nouts; i++)
		outs_ix_add(n, i);
}

static void outs_remove(ln_node *n, uint32_t i)
{
	const outstanding *o = &n->outs[i];
	outs_ix *x = mem_idtab_find2(&n->outs_ix, o->session, o->seq);
	assert(x != NULL && x->count > 0);
	if (--x->count == 0) {
		mem_idtab_remove(&n->outs_ix, x);
	} else if (x->count == 1) {
		/* Duplicates are rare (a retry while the first is here):
		 * find the one left. */
		for (uint32_t j = 0; j < n->nouts; j++)
			if (j != i && n->outs[j].session == o->session &&
			    n->outs[j].seq == o->seq)
				x->pos = j;
	}
	n->outs[i] = n->outs[--n->nouts];
	if (i < n->nouts) {
		x = mem_idtab_find2(&n->outs_ix, n->outs[i].session,
				    n->outs[i].seq);
		if (x->count == 1)
			x->pos = i;
	}
}

/* The core answers OK with no result for a command whose seq is not above
 * the session's latest applied one: a retry whose answer is gone, or a
 * command that reached the ledger after a later one of its session and was
 * skipped. Either way the client must not take it as done. */
static void fill_result(ln_reply *rp, const px_reply *r)
{
	if (r->result_len == 0 ||
	    ls_result_decode(r->result, r->result_len, &rp->result) != LS_OK)
		rp->result.status = LS_SUPERSEDED;
}

/* The replica confirmed a linearizable read (ok), or could not (!ok: it
 * does not lead; id 0: every read): answer it from the table, which has
 * applied far enough, or send it to the new leader. */
static void answer_linearizable(ln_node *n, ln_actions *out, uint64_t id,
				bool ok)
{
	for (uint32_t i = 0; i < n->nlins;) {
		lin_read *l = &n->lins[i];
		if (id != 0 && l->read_id != id) {
			i++;
			continue;
		}
		if (ok) {
			l->req.linearizable = false;
			l->req.name = l->name;
			on_read(n, &l->req, out);
		} else {
			reply_new(n, out, l->req.req_id, l->req.type,
				  l->req.session, l->req.seq, LN_NOT_LEADER);
		}
		n->lins[i] = n->lins[--n->nlins];
	}
}

/* Answers the reads the replica decided, and takes them out of its
 * actions (they are the node's, not the caller's). */
static void take_reads(ln_node *n, ln_actions *out, size_t first)
{
	for (size_t i = first; i < out->ld.nreads; i++)
		answer_linearizable(n, out, out->ld.reads[i].read_id,
				    out->ld.reads[i].ok);
	out->ld.nreads = first;
}

/* The leader's own CANCEL_WAIT for a gone client's wait. */
static void gone_cancel(ln_node *n, ln_actions *out, const outstanding *o)
{
	if (!n->leading || o->name_len == 0)
		return;
	ls_cmd c = {.op = LS_OP_CANCEL_WAIT,
		    .session = o->session,
		    .name = o->name,
		    .name_len = o->name_len};
	lni_submit_internal(n, out, &c);
	n->stats.abandoned++;
}

/* The leader's own ABANDON of a grant whose client is gone. */
static void gone_revoke(ln_node *n, ln_actions *out, const outstanding *o,
			uint64_t token)
{
	if (!n->leading || o->name_len == 0 || token == 0)
		return;
	ls_cmd c = {.op = LS_OP_ABANDON,
		    .name = o->name,
		    .name_len = o->name_len,
		    .token = token};
	lni_submit_internal(n, out, &c);
	n->stats.abandoned++;
}

/* The decree of a gone client's ACQUIRE applied: undo what it started. true
 * when o is settled (remove it), false while it waits in the queue. */
static bool gone_applied(ln_node *n, ln_actions *out, outstanding *o,
			 const px_reply *r)
{
	ls_result res = {0};
	if (r->status != PX_REPLY_OK || r->result_len == 0 ||
	    ls_result_decode(r->result, r->result_len, &res) != LS_OK)
		return true;
	if (res.status == LS_QUEUED && o->wait_ms > 0) {
		ls_view v;
		if (!ls_waiting(n->table, o->name, o->name_len, o->session)) {
			/* Granted since, in this step: revoke that. */
			if (ls_get(n->table, o->name, o->name_len, &v) ==
				    LS_OK &&
			    v.holder == o->session && !v.revoked)
				gone_revoke(n, out, o, v.token);
			return true;
		}
		o->queued = true;
		o->queued_idx = lni_queued_index(n, o, r->slot);
		gone_cancel(n, out, o);
		return false;
	}
	if (res.status == LS_GRANTED &&
	    lni_granted_at(n, o, r->slot, res.token))
		gone_revoke(n, out, o, res.token);
	return true;
}

/* A QUEUED answer to an ACQUIRE whose session no longer waits on the name
 * (a retry answered from the exactly-once table after its wait ended, say
 * by a cancel when its first connection closed, or a grant later in this
 * same step): no grant or cancel will come for it, so answer now from the
 * table. */
static bool answer_unqueued(ln_node *n, ln_actions *out, const outstanding *o)
{
	if (ls_waiting(n->table, o->name, o->name_len, o->session))
		return false;
	ls_view v;
	bool held = ls_get(n->table, o->name, o->name_len, &v) == LS_OK;
	ln_reply *rp;
	if (held && v.holder == o->session) {
		rp = reply_new(n, out, o->req_id, o->type, o->session, o->seq,
			       LN_OK);
		rp->result.status = LS_GRANTED;
		rp->result.token = v.token;
	} else {
		rp = reply_new(n, out, o->req_id, o->type, o->session, o->seq,
			       LN_TIMEOUT);
		rp->result.status = LS_HELD;
		rp->result.holder = held ? v.holder : 0;
	}
	return true;
}

static void on_ld_reply(ln_node *n, ln_actions *out, const px_reply *r)
{
	if (r->client_id & INTERNAL_CLIENT)
		return;
	const outs_ix *x = mem_idtab_find2(&n->outs_ix, r->client_id, r->seq);
	if (x == NULL)
		return;
	/* One write has this (session, seq): the loop below visits just it
	 * (whatever it does, no other matches). Several: all of them, in
	 * order, as always. */
	bool one = x->count == 1;
	uint32_t visits = 0;
	for (uint32_t i = one ? x->pos : 0;
	     i < n->nouts && !(one && visits++ > 0);) {
		outstanding *o = &n->outs[i];
		if (o->queued || o->session != r->client_id ||
		    o->seq != r->seq) {
			i++;
			continue;
		}
		if (o->gone) {
			if (gone_applied(n, out, o, r))
				outs_remove(n, i);
			else
				i++;
			continue;
		}
		ln_status st = LN_OK;
		switch (r->status) {
		case PX_REPLY_OK:
			st = LN_OK;
			break;
		case PX_REPLY_NOT_LEADER:
			st = LN_NOT_LEADER;
			break;
		case PX_REPLY_BUSY:
			st = LN_BUSY;
			break;
		case PX_REPLY_INVALID:
			st = LN_INVALID;
			break;
		}
		if (st == LN_OK && o->type == LN_REQ_ACQUIRE) {
			ls_result res = {0};
			if (r->result_len > 0 &&
			    ls_result_decode(r->result, r->result_len, &res) ==
				    LS_OK &&
			    res.status == LS_QUEUED && o->wait_ms > 0) {
				if (answer_unqueued(n, out, o)) {
					outs_remove(n, i);
					continue;
				}
				/* The answer comes with the grant, or when
				 * the wait runs out. */
				o->queued = true;
				o->queued_idx = lni_queued_index(n, o, r->slot);
				i++;
				continue;
			}
		}
		ln_reply *rp = reply_new(n, out, o->req_id, o->type, o->session,
					 o->seq, st);
		if (st == LN_OK) {
			fill_result(rp, r);
			if (o->type == LN_REQ_RENEW)
				lni_fill_renewed(n, rp, r->slot);
		}
		if (st == LN_INVALID)
			rp->result.status = LS_E_MALFORMED;
		outs_remove(n, i);
	}
}

/* Answers the ledger's replies from first on (and takes them out of out):
 * the journal does not change meanwhile, so renew_ix holds throughout. */
static void answer_ld_replies(ln_node *n, ln_actions *out, size_t first)
{
	for (size_t i = first; i < out->ld.nreplies; i++)
		on_ld_reply(n, out, &out->ld.replies[i]);
	out->ld.nreplies = first;
	lni_renew_ix_drop(n);
}

/* Queued ACQUIREs are answered by the grant or the end of their wait:
 * journal entry idx, c, if it comes after the one that queued them. */
static void answer_queued(ln_node *n, ln_actions *out, const ls_change *c,
			  int64_t idx)
{
	for (uint32_t i = 0; i < n->nouts;) {
		outstanding *o = &n->outs[i];
		if (!o->queued || idx <= o->queued_idx ||
		    o->session != c->session || o->name_len != c->name_len ||
		    memcmp(o->name, c->name, c->name_len) != 0) {
			i++;
			continue;
		}
		ln_reply *rp;
		if (o->gone) {
			/* Its grant has nobody to go to: revoke it. */
			if (c->kind == LS_CH_GRANTED)
				gone_revoke(n, out, o, c->token);
			outs_remove(n, i);
			continue;
		}
		if (c->kind == LS_CH_GRANTED) {
			rp = reply_new(n, out, o->req_id, o->type, o->session,
				       o->seq, LN_OK);
			rp->result.status = LS_GRANTED;
			rp->result.token = c->token;
		} else {
			rp = reply_new(n, out, o->req_id, o->type, o->session,
				       o->seq, LN_TIMEOUT);
			ls_view v;
			rp->result.status = LS_HELD;
			if (ls_get(n->table, c->name, c->name_len, &v) == LS_OK)
				rp->result.holder = v.holder;
		}
		outs_remove(n, i);
	}
}

/* Everything waiting here is told to ask the new leader. */
static void fail_outstanding(ln_node *n, ln_actions *out)
{
	for (uint32_t i = 0; i < n->nouts; i++) {
		outstanding *o = &n->outs[i];
		if (o->queued)
			reply_new(n, out, o->req_id, o->type, o->session,
				  o->seq, LN_NOT_LEADER);
	}
	uint32_t kept = 0;
	for (uint32_t i = 0; i < n->nouts; i++)
		if (!n->outs[i].queued)
			n->outs[kept++] = n->outs[i];
	if (kept != n->nouts) {
		n->nouts = kept;
		outs_ix_rebuild(n);
	}
}

/* ---- the journal
 * ------------------------------------------------------------- */

static void on_journal(ln_node *n, ln_actions *out)
{
	size_t nj;
	const ls_change *j = ls_table_journal(n->table, &nj);
	for (size_t i = 0; i < nj; i++) {
		const ls_change *c = &j[i];
		switch (c->kind) {
		case LS_CH_GRANTED:
			n->stats.grants++;
			break;
		case LS_CH_ENDED:
			n->stats.expiries++; /* ended, by release or expiry */
			break;
		case LS_CH_RENEWED:
			n->stats.renewals++;
			break;
		case LS_CH_REVOKED:
			n->stats.revokes++;
			break;
		default:
			break;
		}
		if (c->kind == LS_CH_GRANTED || c->kind == LS_CH_UNQUEUED)
			answer_queued(n, out, c, (int64_t)i);
		if (!n->leading)
			continue;
		switch (c->kind) {
		case LS_CH_GRANTED: {
			lni_waits_remove(n, c->name, c->name_len, c->session);
			deadline *d = lni_dl_upsert(n, c->token);
			d->renewals = 0;
			d->ttl_ms = c->ttl_ms;
			d->stamp_ms = n->now_us / 1000;
			lni_dl_arm(n, d,
				   n->now_us + (uint64_t)c->ttl_ms * 1000);
			break;
		}
		case LS_CH_RENEWED: {
			deadline *d = lni_dl_find(n, c->token);
			if (d == NULL && !n->takeover_pending)
				break;
			if (d == NULL) /* not reached by the takeover yet */
				d = lni_dl_upsert(n, c->token);
			d->renewals = c->renewals;
			d->ttl_ms = c->ttl_ms;
			lni_dl_arm(n, d,
				   n->now_us + (uint64_t)c->ttl_ms * 1000);
			break;
		}
		case LS_CH_ENDED:
			lni_dl_remove(n, c->token);
			break;
		case LS_CH_QUEUED:
			lni_waits_add(n, c->name, c->name_len, c->session,
				      n->now_us + (uint64_t)c->wait_ms * 1000);
			break;
		case LS_CH_UNQUEUED:
			lni_waits_remove(n, c->name, c->name_len, c->session);
			break;
		case LS_CH_REVOKED:
			break; /* never renewed again; expires on its deadline
				*/
		}
	}
}

/* ---- requests
 * ---------------------------------------------------------------- */

static void on_read(ln_node *n, const ln_request *q, ln_actions *out)
{
	if (q->linearizable && ls_name_valid(q->name, q->name_len)) {
		if (!n->leading) {
			reply_new(n, out, q->req_id, q->type, q->session,
				  q->seq, LN_NOT_LEADER);
			return;
		}
		if (n->nlins >= LD_PENDING_READS_MAX) {
			reply_new(n, out, q->req_id, q->type, q->session,
				  q->seq, LN_BUSY);
			return;
		}
		/* ReadIndex: the replica answers once a quorum confirmed a
		 * heartbeat sent after now and it applied all it proposed
		 * before; no decree, nothing written. */
		n->lins = mem_grow(n->lins, &n->lins_cap, n->nlins + 1,
				   sizeof *n->lins);
		lin_read *l = &n->lins[n->nlins++];
		l->req = *q;
		memcpy(l->name, q->name, q->name_len);
		l->read_id = ++n->read_seq;
		px_event ev = {.type = PX_EV_READ,
			       .now_us = n->now_us,
			       .read_id = l->read_id};
		px_replica_step(n->rep, &ev, &out->ld);
		return;
	}
	ln_reply *rp = reply_new(n, out, q->req_id, q->type, q->session, q->seq,
				 LN_OK);
	if (!ls_name_valid(q->name, q->name_len)) {
		rp->status = LN_INVALID;
		rp->result.status = LS_E_NAME;
		return;
	}
	if (q->type == LN_REQ_CHECK) {
		rp->result.status =
			ls_check(n->table, q->name, q->name_len, q->token)
				? LS_OK
				: LS_NOT_HOLDER;
		return;
	}
	ls_view v;
	if (ls_get(n->table, q->name, q->name_len, &v) != LS_OK) {
		rp->result.status = LS_NO_SUCH_LEASE;
		return;
	}
	rp->result.status = LS_OK;
	rp->found = true;
	rp->holder = v.holder;
	rp->token = v.token;
	rp->result.token = v.token;
	rp->result.holder = v.holder;
	rp->ttl_ms = v.ttl_ms;
	rp->revoked = v.revoked;
	rp->reason_len = v.reason_len;
	if (v.reason_len > 0)
		memcpy(rp->reason, v.reason, v.reason_len);
	rp->nwaiters = v.nwaiters;
	rp->value_len = v.value_len;
	if (v.value_len > 0)
		memcpy(rp->value, v.value, v.value_len);
	ln_node_lease_left(n, v.token, &rp->ttl_ms_left, &rp->in_grace);
}

bool ln_node_lease_left(const ln_node *n, uint64_t token, int64_t *ttl_ms_left,
			bool *in_grace)
{
	const deadline *d =
		n->leading ? lni_dl_find((ln_node *)n, token) : NULL;
	if (d == NULL)
		return false;
	int64_t left = ((int64_t)d->deadline_us - (int64_t)n->now_us) / 1000;
	*ttl_ms_left = left > 0 ? left : 0;
	*in_grace = n->now_us >= d->deadline_us;
	return true;
}

static ls_op op_of(ln_req_type t)
{
	switch (t) {
	case LN_REQ_ACQUIRE:
		return LS_OP_ACQUIRE;
	case LN_REQ_RENEW:
		return LS_OP_RENEW;
	case LN_REQ_RELEASE:
		return LS_OP_RELEASE;
	case LN_REQ_REVOKE:
		return LS_OP_REVOKE;
	case LN_REQ_PROCLAIM:
		return LS_OP_PROCLAIM;
	default:
		return 0;
	}
}

static bool collect_session(const ls_view *v, void *arg)
{
	struct renew_walk *w = arg;
	if (v->holder == w->session && !v->revoked &&
	    w->rp->ntokens < LS_LEASES_PER_SESSION_MAX)
		w->rp->tokens[w->rp->ntokens++] = v->token;
	return true;
}

/* The mutant that answers RENEW from the local table, no decree: what a
 * leader that does not know it was deposed would say. */
static void deposed_renew(ln_node *n, const ln_request *q, ln_actions *out)
{
	ln_reply *rp = reply_new(n, out, q->req_id, q->type, q->session, q->seq,
				 LN_OK);
	rp->result.status = LS_OK;
	rp->tokens = malloc(LS_LEASES_PER_SESSION_MAX * sizeof *rp->tokens);
	if (rp->tokens == NULL)
		abort();
	struct renew_walk w = {q->session, rp};
	ls_for_each(n->table, collect_session, &w);
	rp->result.count = rp->ntokens;
}

static void on_request(ln_node *n, const ln_request *q, ln_actions *out)
{
	switch (q->type) {
	case LN_REQ_GET:
	case LN_REQ_CHECK:
		on_read(n, q, out);
		return;
	case LN_REQ_ACQUIRE:
	case LN_REQ_RENEW:
	case LN_REQ_RELEASE:
	case LN_REQ_REVOKE:
	case LN_REQ_PROCLAIM:
		on_write(n, q, out);
		return;
	}
	ln_reply *rp = reply_new(n, out, q->req_id, q->type, q->session, q->seq,
				 LN_INVALID);
	rp->result.status = LS_E_MALFORMED;
}

static void on_write(ln_node *n, const ln_request *q, ln_actions *out)
{
	ls_cmd c = {
		.op = op_of(q->type),
		.session = q->session,
		.session_key = q->session_key,
		.name = q->name,
		.name_len = q->name_len,
		.ttl_ms = q->ttl_ms,
		.wait_ms = q->wait_ms,
		.value = q->value,
		.value_len = q->value_len,
		.token = q->token,
		.reason = q->reason,
		.reason_len = q->reason_len,
	};
	ls_status bad = ls_cmd_check(&c);
	/* Sessions with the top bit set are the leaders' own (TICK, EXPIRE):
	 * a client using one could make them look like settled duplicates
	 * and stop leases from expiring. */
	if (bad == LS_OK && (q->session == 0 || (q->session & INTERNAL_CLIENT)))
		bad = LS_E_SESSION;
	if (bad == LS_OK && q->type == LN_REQ_ACQUIRE &&
	    q->ttl_ms > n->cfg.ttl_ms_max)
		bad = LS_E_TTL;
	if (bad == LS_OK && q->seq == 0)
		bad = LS_E_MALFORMED;
	if (bad == LS_OK && q->seq > LN_SEQ_MAX)
		bad = LS_E_SEQ;
	if (bad != LS_OK) {
		ln_reply *rp = reply_new(n, out, q->req_id, q->type, q->session,
					 q->seq, LN_INVALID);
		rp->result.status = bad;
		return;
	}
	if (!n->leading) {
		reply_new(n, out, q->req_id, q->type, q->session, q->seq,
			  LN_NOT_LEADER);
		return;
	}
	if (q->type == LN_REQ_RENEW && MUTANT(n, PX_MUTANT_DEPOSED_RENEW)) {
		deposed_renew(n, q, out);
		return;
	}
	if (n->nouts >= LD_PENDING_CMDS_MAX) {
		reply_new(n, out, q->req_id, q->type, q->session, q->seq,
			  LN_BUSY);
		return;
	}
	n->outs =
		mem_grow(n->outs, &n->outs_cap, n->nouts + 1, sizeof *n->outs);
	outstanding *o = &n->outs[n->nouts++];
	memset(o, 0, sizeof *o);
	o->req_id = q->req_id;
	o->session = q->session;
	o->seq = q->seq;
	o->type = q->type;
	o->wait_ms = q->type == LN_REQ_ACQUIRE ? q->wait_ms : 0;
	if (q->name_len > 0 && q->name_len <= LS_NAME_BYTES_MAX) {
		memcpy(o->name, q->name, q->name_len);
		o->name_len = q->name_len;
	}
	outs_ix_add(n, n->nouts - 1);
	if (!lni_queue_cmd(n, out, q->session, q->seq, &c)) {
		outs_remove(n, n->nouts - 1);
		ln_reply *rp = reply_new(n, out, q->req_id, q->type, q->session,
					 q->seq, LN_INVALID);
		rp->result.status = LS_E_MALFORMED;
	}
}

/* Clients went away: their waiting ACQUIREs stop waiting, and a grant that
 * comes anyway is revoked (see LN_EV_GONE). Other writes finish as usual,
 * unanswered. */
static void on_gone(ln_node *n, const uint64_t *ids, uint32_t nids,
		    ln_actions *out)
{
	for (uint32_t k = 0; k < nids; k++) {
		for (uint32_t i = 0; i < n->nouts; i++) {
			outstanding *o = &n->outs[i];
			if (o->req_id != ids[k] || o->gone)
				continue;
			if (o->type != LN_REQ_ACQUIRE || o->wait_ms == 0)
				break;
			o->gone = true;
			if (o->queued)
				gone_cancel(n, out, o);
			break;
		}
	}
}

static int req_by_session(const void *a, const void *b)
{
	const req_order *x = a, *y = b;
	if (x->session != y->session)
		return x->session < y->session ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int req_by_place(const void *a, const void *b)
{
	const req_order *x = a, *y = b;
	if (x->first != y->first)
		return x->first < y->first ? -1 : 1;
	if (x->seq != y->seq)
		return x->seq < y->seq ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static bool is_write(ln_req_type t)
{
	return t == LN_REQ_ACQUIRE || t == LN_REQ_RENEW ||
	       t == LN_REQ_RELEASE || t == LN_REQ_REVOKE ||
	       t == LN_REQ_PROCLAIM;
}

/* Reads at once; then writes, each session's in seq order: pipelined
 * writes of one session that arrive together (say over several client
 * contexts, in whatever order their threads ran) reach the ledger in the
 * order the session numbered them, so none is skipped as stale. */
static void on_requests(ln_node *n, const ln_request *req, uint32_t nreqs,
			ln_actions *out)
{
	req_order *ord = malloc((size_t)nreqs * sizeof *ord);
	if (ord == NULL)
		abort();
	uint32_t nw = 0;
	for (uint32_t i = 0; i < nreqs; i++) {
		if (is_write(req[i].type))
			ord[nw++] =
				(req_order){req[i].session, req[i].seq, i, i};
		else
			on_request(n, &req[i], out);
	}
	if (nw > 1) {
		qsort(ord, nw, sizeof *ord, req_by_session);
		for (uint32_t k = 1; k < nw; k++)
			if (ord[k].session == ord[k - 1].session)
				ord[k].first = ord[k - 1].first;
		qsort(ord, nw, sizeof *ord, req_by_place);
	}
	for (uint32_t k = 0; k < nw; k++)
		on_request(n, &req[ord[k].idx], out);
	free(ord);
}

/* ---- the step function
 * -------------------------------------------------------- */

int ln_node_step(ln_node *n, const ln_event *ev, ln_actions *out)
{
	assert(n != NULL && ev != NULL && out != NULL);
	if (ev->now_us > n->now_us)
		n->now_us = ev->now_us;
	int rc = 0;
	size_t first_reply = out->ld.nreplies;
	size_t first_read = out->ld.nreads;
	if (ev->type == LN_EV_REQUEST) {
		if (ev->req == NULL)
			return -1;
		on_requests(n, ev->req, ev->nreqs ? ev->nreqs : 1, out);
		lni_flush_internal(n, out);
	} else if (ev->type == LN_EV_GONE) {
		if (ev->gone == NULL && ev->ngone > 0)
			return -1;
		on_gone(n, ev->gone, ev->ngone, out);
		lni_flush_internal(n, out);
	} else {
		px_event lev = {.type = (px_event_type)ev->type,
				.now_us = n->now_us,
				.msg = ev->msg,
				.write_id = ev->write_id,
				.change = ev->change,
				.change_id = ev->change_id,
				.snap = ev->snap,
				.snap_len = ev->snap_len,
				.snap_base = ev->snap_base,
				.snap_sum = ev->snap_sum};
		rc = px_replica_step(n->rep, &lev, &out->ld);
	}

	/* Leadership changes: a new leader rebuilds its deadlines from the
	 * ledger; a former one forgets them and sends its waiters on. */
	px_status st;
	px_replica_status(n->rep, &st);
	bool leading = st.role == PX_LEADER;
	if (leading && (!n->leading || st.ballot.round != n->leading_round)) {
		n->leading = true;
		n->leading_round = st.ballot.round;
		n->internal_seq = 0;
		ls_table_journal_clear(n->table);
		lni_takeover(n);
	} else if (!leading && n->leading) {
		n->leading = false;
		lni_leader_clear(n);
		answer_linearizable(n, out, 0, false);
	}
	take_reads(n, out, first_read);

	/* Replies from the ledger first (a QUEUED answer becomes a wait), then
	 * what the applied decrees changed (a grant answers that wait). */
	answer_ld_replies(n, out, first_reply);
	on_journal(n, out);
	ls_table_journal_clear(n->table);
	for (uint32_t i = 0; i < n->nouts; i++)
		n->outs[i].queued_idx = -1; /* a new journal starts after */
	if (!n->leading)
		fail_outstanding(n, out);

	if (n->leading) {
		lni_takeover_step(n);
		lni_propose_expiries(n, out);
		lni_propose_cancels(n, out);
		lni_propose_tick(n, out);
		lni_flush_internal(n, out);
		/* A proposal can fail at once (a full queue): answer it. */
		answer_ld_replies(n, out, first_reply);
		take_reads(n, out, first_read);
		uint64_t t = lni_leader_timer(n);
		if (t <= n->now_us)
			t = n->now_us + 1;
		if (t < out->ld.timer_at_us)
			out->ld.timer_at_us = t;
	}
#ifdef LD_CHECKS
	ln_node_check(n, ++n->steps % LN_CHECK_DEEP_EVERY == 0);
#endif
	return rc;
}
