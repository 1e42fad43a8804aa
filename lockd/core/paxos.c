/* Multi-Paxos, after Lamport's "The Part-Time Parliament" and "Paxos Made
 * Simple": every ledger slot is one synod; a stable leader (the president)
 * runs phase 1 once for all slots past what it knows and then only phase 2.
 *
 * The rules, as numbered in "Paxos Made Simple":
 *   P1  ballots are unique: (round, replica id);
 *   P2  any two quorums intersect: majorities;
 *   P3  in phase 2 a proposer proposes the value of the highest-ballot vote
 *       reported by its phase-1 quorum, or anything if there is none;
 *   and an acceptor never votes in or promises a ballot below its promise,
 *   and makes a promise or a vote durable before it answers.
 *
 * Learning. A follower learns slot s chosen from a COMMIT(b, commit >= s)
 * only when its own vote for s was cast in ballot b: a leader's proposals in
 * ballot b are the values it declared chosen, because it declares a slot
 * chosen only after a b-majority voted for its own proposal. Everything else
 * is learned through catch-up (chosen values) or a snapshot. */
#include "paxos_int.h"

/* This file: the replica's plumbing and its step function: messages, records
 * and actions, the in-memory log, the exactly-once client table, the output
 * helpers (a message held until its record is durable), the pending queue,
 * life cycle, timers and views. The rest of the replica, by topic:
 *   paxos_synod.c     phases 1 and 2, roles, learning and applying, the
 *                     message handlers, client commands
 *   paxos_reads.c     linearizable reads (ReadIndex)
 *   paxos_members.c   configurations and membership changes
 *   paxos_recovery.c  restore from records, recovery from an empty disk
 *   paxos_catchup.c   snapshots (encoding, install) and catch-up
 *   paxos_digest.c    state digests compared between replicas
 * paxos_int.h holds the replica's state and what these files share. */

/* ---- small helpers ------------------------------------------------------ */

int px_ballot_cmp(px_ballot a, px_ballot b)
{
	if (a.round != b.round)
		return a.round < b.round ? -1 : 1;
	if (a.id != b.id)
		return a.id < b.id ? -1 : 1;
	return 0;
}

static const char *const mutant_names[PX_MUTANT_COUNT] = {
	[PX_MUTANT_NONE] = "none",
	[PX_MUTANT_FORGET_PROMISE] = "forget-promise",
	[PX_MUTANT_IGNORE_VOTES] = "ignore-votes",
	[PX_MUTANT_MINORITY_QUORUM] = "minority-quorum",
	[PX_MUTANT_SHARED_BALLOTS] = "shared-ballots",
	[PX_MUTANT_EARLY_CHOSEN] = "early-chosen",
	[PX_MUTANT_VOTE_BEFORE_SYNC] = "vote-before-sync",
	[PX_MUTANT_WIPED_VOTES] = "wiped-votes",
	[PX_MUTANT_IGNORE_DIGEST] = "ignore-digest",
	[PX_MUTANT_READ_LOCAL] = "read-local",
	[PX_MUTANT_ALPHA_ZERO] = "alpha-zero",
	[PX_MUTANT_COUNT_REMOVED] = "count-removed",
	[PX_MUTANT_SNAP_NO_CHECKSUM] = "snap-no-checksum",
	[PX_MUTANT_READ_WINDOW] = "read-window",
	[PX_MUTANT_TICK_ANY_TERM] = "tick-any-term",
	[PX_MUTANT_TAKEOVER_ONE_SLICE] = "takeover-one-slice",
	[PX_MUTANT_SNAP_LATE_BASE] = "snap-late-base",
	[PX_MUTANT_GRACE_ZERO] = "grace-zero",
	[PX_MUTANT_DEPOSED_RENEW] = "deposed-renew",
	[PX_MUTANT_TRUST_STAMPS] = "trust-stamps",
	[PX_MUTANT_UNCHECKED_REGRANT] = "unchecked-regrant",
	[PX_MUTANT_ROUND_SEND_EARLY] = "round-send-early",
	[PX_MUTANT_REPLY_CLOCK] = "reply-clock",
	[PX_MUTANT_OPEN_PEERS] = "open-peers",
	[PX_MUTANT_ACK_FAILED_SYNC] = "ack-failed-sync",
};

const char *px_mutant_name(ld_mutant m)
{
	return (unsigned)m < PX_MUTANT_COUNT ? mutant_names[m] : "?";
}

ld_mutant px_mutant_parse(const char *name)
{
	for (int m = 0; m < PX_MUTANT_COUNT; m++)
		if (strcmp(name, mutant_names[m]) == 0)
			return (ld_mutant)m;
	return PX_MUTANT_COUNT;
}

/* ---- messages, records, actions ----------------------------------------- */

void px_msg_free(px_msg *m)
{
	if (m == NULL)
		return;
	px_value_unref(m->value);
	for (uint32_t i = 0; i < m->nvotes; i++)
		px_value_unref(m->votes[i].value);
	free(m->votes);
	free(m->snap);
	free(m);
}

px_msg *px_msg_dup(const px_msg *m)
{
	px_msg *d = malloc(sizeof *d);
	if (d == NULL)
		return NULL;
	*d = *m;
	d->votes = NULL;
	d->snap = NULL;
	d->nvotes = 0;
	d->snap_len = 0;
	d->value = px_value_ref(m->value);
	if (m->nvotes > 0) {
		d->votes = malloc(m->nvotes * sizeof *d->votes);
		if (d->votes == NULL)
			goto fail;
		for (uint32_t i = 0; i < m->nvotes; i++) {
			d->votes[i] = m->votes[i];
			px_value_ref(d->votes[i].value);
		}
		d->nvotes = m->nvotes;
	}
	if (m->snap_len > 0) {
		d->snap = malloc(m->snap_len);
		if (d->snap == NULL)
			goto fail;
		memcpy(d->snap, m->snap, m->snap_len);
		d->snap_len = m->snap_len;
	}
	return d;
fail:
	px_msg_free(d);
	return NULL;
}

int px_msg_validate(const px_msg *m, uint32_t nreplicas)
{
	if (m == NULL || m->type < PX_MSG_PREPARE || m->type > PX_MSG_TYPE_MAX)
		return -1;
	if (nreplicas > LD_REPLICA_IDS)
		nreplicas = LD_REPLICA_IDS;
	if (m->from >= nreplicas || m->to >= nreplicas || m->from == m->to)
		return -1;
	if (m->ballot.id >= nreplicas || m->ballot.round >= PX_ROUND_MAX)
		return -1;
	if (m->nvotes > LD_LOG_SLOTS_MAX || (m->nvotes > 0 && !m->votes))
		return -1;
	if (m->snap_len > LD_SNAPSHOT_CHUNK_BYTES_MAX ||
	    (m->snap_len && !m->snap))
		return -1;
	for (uint32_t i = 0; i < m->nvotes; i++)
		if (m->votes[i].value == NULL || m->votes[i].slot == 0 ||
		    m->votes[i].ballot.id >= nreplicas ||
		    m->votes[i].ballot.round >= PX_ROUND_MAX)
			return -1;
	switch (m->type) {
	case PX_MSG_PREPARE:
	case PX_MSG_PROMISE:
	case PX_MSG_ACCEPTED:
	case PX_MSG_COMMIT:
		if (ballot_zero(m->ballot))
			return -1;
		break;
	case PX_MSG_ACCEPT:
		if (ballot_zero(m->ballot) || m->value == NULL || m->slot == 0)
			return -1;
		break;
	case PX_MSG_SNAPSHOT:
		if (m->base == 0 || m->snap_len == 0 ||
		    m->snap_total > LD_SNAPSHOT_BYTES_MAX ||
		    m->snap_off > m->snap_total ||
		    m->snap_len > m->snap_total - m->snap_off)
			return -1;
		break;
	case PX_MSG_CATCHUP_REQ:
		if (m->slot == 0 || m->snap_off > LD_SNAPSHOT_BYTES_MAX ||
		    (m->base == 0 && m->snap_off != 0))
			return -1;
		break;
	default:
		break;
	}
	return 0;
}

void px_record_clear(px_record *rec)
{
	px_value_unref(rec->value);
	free(rec->snap);
	memset(rec, 0, sizeof *rec);
}

void px_actions_init(px_actions *a)
{
	memset(a, 0, sizeof *a);
}

void px_actions_reset(px_actions *a)
{
	for (size_t i = 0; i < a->nrecs; i++)
		px_record_clear(&a->recs[i]);
	for (size_t i = 0; i < a->nmsgs; i++)
		px_msg_free(a->msgs[i]);
	for (size_t i = 0; i < a->nchosen; i++)
		px_value_unref(a->chosen[i].value);
	a->nrecs = a->nmsgs = a->nchosen = a->nreplies = a->nreads = 0;
	a->nchanges = 0;
	a->members_changed = false;
	a->write_id = 0;
	a->snapshot_want = false;
	a->installed_snapshot = false;
	a->snapshot_base = 0;
	a->timer_at_us = 0;
}

void px_actions_free(px_actions *a)
{
	px_actions_reset(a);
	free(a->recs);
	free(a->msgs);
	free(a->chosen);
	free(a->replies);
	free(a->reads);
	free(a->changes);
	memset(a, 0, sizeof *a);
}

uint64_t pxi_rng_next(px_replica *r)
{
	/* splitmix64 */
	uint64_t z = (r->rng += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void entry_clear(entry *e)
{
	px_value_unref(e->vvalue);
	px_value_unref(e->chosen);
	px_value_unref(e->pvalue);
	px_value_unref(e->p1value);
	memset(e, 0, sizeof *e);
}

/* The cell for slot, creating it; NULL when slot is outside the window. */
entry *pxi_entry_get(px_replica *r, uint64_t slot)
{
	if (slot < r->log_start || slot >= r->log_start + LD_LOG_SLOTS_MAX)
		return NULL;
	entry *e = &r->log[slot % LD_LOG_SLOTS_MAX];
	if (e->slot != slot) {
		entry_clear(e);
		e->slot = slot;
	}
	return e;
}

/* Moves the start of the in-memory log forward, forgetting older slots. */
void pxi_log_truncate(px_replica *r, uint64_t start)
{
	if (start <= r->log_start)
		return;
	uint64_t end = start;
	if (end - r->log_start > LD_LOG_SLOTS_MAX)
		end = r->log_start + LD_LOG_SLOTS_MAX;
	for (uint64_t s = r->log_start; s < end; s++) {
		entry *e = &r->log[s % LD_LOG_SLOTS_MAX];
		if (e->slot == s)
			entry_clear(e);
	}
	r->log_start = start;
}

/* ---- the client table (exactly-once) ------------------------------------ */

client_ent *pxi_client_find(px_replica *r, uint64_t id)
{
	return pxc_find(&r->clients, id);
}

/* ---- output helpers ----------------------------------------------------- */

px_msg *pxi_msg_new(px_replica *r, px_msg_type type, uint32_t to)
{
	px_msg *m = calloc(1, sizeof *m);
	if (m == NULL)
		abort();
	m->type = type;
	m->from = r->cfg.id;
	m->to = to;
	m->commit = r->commit;
	m->base = r->snap_base;
	return m;
}

void pxi_emit(px_replica *r, px_actions *out, px_msg *m)
{
	if (m->to == r->cfg.id) {
		pxi_handle_msg(r, m, out);
		px_msg_free(m);
		return;
	}
	out->msgs = mem_grow(out->msgs, &out->msgs_cap, out->nmsgs + 1,
			     sizeof *out->msgs);
	out->msgs[out->nmsgs++] = m;
}

/* Sends m once every write made so far is durable. */
void pxi_emit_after_sync(px_replica *r, px_actions *out, px_msg *m)
{
	if (r->last_write_id <= r->durable_id) {
		pxi_emit(r, out, m);
		return;
	}
	if (r->nheld == r->held_cap) {
		uint32_t cap = r->held_cap ? r->held_cap * 2 : 16;
		held_msg *h = realloc(r->held, cap * sizeof *h);
		if (h == NULL)
			abort();
		r->held = h;
		r->held_cap = cap;
	}
	r->held[r->nheld++] = (held_msg){m, r->last_write_id};
}

/* Records made in one step share a write id; one made after its write
 * was reported durable (a round that steps DURABLE and goes on with the
 * same actions, round.h) starts a new write. */
void pxi_persist(px_replica *r, px_actions *out, px_record rec)
{
	if (out->write_id == 0 || out->write_id != r->last_write_id ||
	    out->write_id <= r->durable_id)
		out->write_id = ++r->last_write_id;
	out->recs = mem_grow(out->recs, &out->recs_cap, out->nrecs + 1,
			     sizeof *out->recs);
	out->recs[out->nrecs++] = rec;
}

void pxi_persist_promise(px_replica *r, px_actions *out)
{
	pxi_persist(r, out,
		    (px_record){.type = PX_REC_PROMISE, .ballot = r->promised});
}

void pxi_reply(px_replica *r, px_actions *out, uint64_t client_id, uint64_t seq,
	       px_reply_status st, const client_ent *c)
{
	out->replies = mem_grow(out->replies, &out->replies_cap,
				out->nreplies + 1, sizeof *out->replies);
	px_reply *rp = &out->replies[out->nreplies++];
	memset(rp, 0, offsetof(px_reply, result));
	rp->client_id = client_id;
	rp->seq = seq;
	rp->status = st;
	rp->leader_hint = r->role == PX_LEADER ? (int32_t)r->cfg.id : r->leader;
	if (c != NULL) {
		rp->slot = c->slot;
		rp->result_len = c->result_len;
		memcpy(rp->result, c->result, c->result_len);
	}
}

/* ---- waiters and the pending queue -------------------------------------- */

int pxi_waiter_find(px_replica *r, uint64_t client_id, uint64_t seq)
{
	const waiter_ix *x = mem_idtab_find2(&r->waiter_ix, client_id, seq);
	return x != NULL ? (int)x->i : -1;
}

void pxi_waiter_add(px_replica *r, uint64_t client_id, uint64_t seq)
{
	if (r->nwaiters == r->waiters_cap) {
		uint32_t cap = r->waiters_cap ? r->waiters_cap * 2 : 16;
		waiter *w = realloc(r->waiters, cap * sizeof *w);
		if (w == NULL)
			abort();
		r->waiters = w;
		r->waiters_cap = cap;
	}
	waiter_ix *x = mem_idtab_insert2(&r->waiter_ix, client_id, seq);
	x->i = r->nwaiters;
	r->waiters[r->nwaiters++] = (waiter){client_id, seq};
}

void pxi_waiter_remove(px_replica *r, int i)
{
	waiter *w = &r->waiters[i];
	mem_idtab_remove(&r->waiter_ix,
			 mem_idtab_find2(&r->waiter_ix, w->client_id, w->seq));
	*w = r->waiters[--r->nwaiters];
	if ((uint32_t)i < r->nwaiters) {
		waiter_ix *x =
			mem_idtab_find2(&r->waiter_ix, w->client_id, w->seq);
		x->i = (uint32_t)i;
	}
}

void pxi_pending_drop_all(px_replica *r, px_actions *out)
{
	while (r->pending_n > 0) {
		pending_cmd *p = &r->pending[r->pending_head];
		free((void *)p->cmd.data);
		r->pending_head = (r->pending_head + 1) % LD_PENDING_CMDS_MAX;
		r->pending_n--;
	}
	/* Whoever waits here will retry elsewhere with the same (client, seq);
	 * the client table makes sure a command is applied once. */
	for (uint32_t i = 0; i < r->nwaiters; i++)
		pxi_reply(r, out, r->waiters[i].client_id, r->waiters[i].seq,
			  PX_REPLY_NOT_LEADER, NULL);
	r->nwaiters = 0;
	mem_idtab_free(&r->waiter_ix);
}

/* ---- config and lifecycle ----------------------------------------------- */

void px_config_default(px_config *cfg, uint32_t id, uint32_t nreplicas)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->id = id;
	cfg->nreplicas = nreplicas;
	cfg->seed = 0x5eed0000u + id;
	cfg->heartbeat_us = 50000;
	cfg->election_timeout_us = 300000;
	cfg->retry_us = 100000;
	cfg->window_slots = 16;
	cfg->batch_cmds = LD_BATCH_CMDS_MAX;
	cfg->snapshot_every_slots = LD_SNAPSHOT_EVERY_SLOTS;
	cfg->snapshot_chunk_bytes = LD_SNAPSHOT_CHUNK_BYTES_MAX;
	cfg->digest_every_slots = LD_DIGEST_EVERY_SLOTS;
	cfg->mutant = PX_MUTANT_NONE;
}

uint64_t pxi_election_delay(px_replica *r)
{
	uint64_t t = r->cfg.election_timeout_us;
	return t + pxi_rng_next(r) % t;
}

px_replica *px_replica_new(const px_config *cfg, px_sm *sm)
{
	if (cfg->nreplicas > LD_REPLICAS_MAX || cfg->id >= LD_REPLICA_IDS ||
	    (cfg->nreplicas > 0 && cfg->id >= cfg->nreplicas) ||
	    (cfg->nreplicas == 0 &&
	     (cfg->members.n == 0 || cfg->members.n > LD_REPLICAS_MAX)) ||
	    sm == NULL || sm->ops == NULL || cfg->window_slots == 0 ||
	    cfg->window_slots > LD_WINDOW_SLOTS_MAX || cfg->batch_cmds == 0 ||
	    cfg->batch_cmds > LD_BATCH_CMDS_MAX ||
	    cfg->election_timeout_us == 0 || cfg->heartbeat_us == 0 ||
	    cfg->retry_us == 0 || cfg->snapshot_every_slots == 0 ||
	    cfg->snapshot_chunk_bytes == 0 ||
	    cfg->snapshot_chunk_bytes > LD_SNAPSHOT_CHUNK_BYTES_MAX ||
	    cfg->digest_every_slots == 0 ||
	    cfg->snapshot_every_slots + LD_LOG_TAIL_SLOTS +
			    LD_WINDOW_SLOTS_MAX >=
		    LD_LOG_SLOTS_MAX)
		return NULL;
	px_replica *r = calloc(1, sizeof *r);
	if (r == NULL)
		return NULL;
	pxc_init(&r->clients, LD_CLIENTS_MAX);
	r->waiter_ix = (mem_idtab)LD_IDTAB_INIT2(waiter_ix);
	r->pending = calloc(LD_PENDING_CMDS_MAX, sizeof *r->pending);
	if (r->pending == NULL) {
		free(r);
		return NULL;
	}
	r->cfg = *cfg;
	r->sm = sm;
	px_members first = cfg->members;
	if (cfg->nreplicas > 0) {
		memset(&first, 0, sizeof first);
		first.n = cfg->nreplicas;
		for (uint32_t i = 0; i < first.n; i++) {
			first.m[i] = (px_member){.id = i, .voting = true};
			/* The first members' URLs, when the caller gave
			 * them (every replica must give the same). */
			if (cfg->members.n == cfg->nreplicas &&
			    cfg->members.m[i].id == i) {
				memcpy(first.m[i].peer, cfg->members.m[i].peer,
				       LD_URL_BYTES_MAX);
				memcpy(first.m[i].client,
				       cfg->members.m[i].client,
				       LD_URL_BYTES_MAX);
			}
		}
	}
	for (uint32_t i = 0; i < first.n; i++) {
		first.m[i].peer[LD_URL_BYTES_MAX - 1] = 0;
		first.m[i].client[LD_URL_BYTES_MAX - 1] = 0;
	}
	for (uint32_t i = 0; i < first.n; i++)
		if (first.m[i].id >= LD_REPLICA_IDS ||
		    (i > 0 && first.m[i].id <= first.m[i - 1].id)) {
			free(r->pending);
			free(r);
			return NULL;
		}
	pxi_conf_fill(pxi_conf_push(r), &first, 1,
		      MUTANT(r, PX_MUTANT_MINORITY_QUORUM));
	r->rng = cfg->seed ^ ((uint64_t)cfg->id << 32);
	r->log_start = 1;
	r->role = PX_FOLLOWER;
	r->leader = -1;
	r->known_commit_from = -1;
	r->catchup_to = -1;
	r->election_at_us = UINT64_MAX; /* set at the first step */
	return r;
}

void px_replica_free(px_replica *r)
{
	if (r == NULL)
		return;
	for (uint32_t i = 0; i < LD_LOG_SLOTS_MAX; i++)
		entry_clear(&r->log[i]);
	for (uint32_t i = 0; i < r->nheld; i++)
		px_msg_free(r->held[i].msg);
	while (r->pending_n > 0) {
		free((void *)r->pending[r->pending_head].cmd.data);
		r->pending_head = (r->pending_head + 1) % LD_PENDING_CMDS_MAX;
		r->pending_n--;
	}
	free(r->pending);
	free(r->confs);
	free(r->chreqs);
	free(r->held);
	free(r->preads);
	free(r->waiters);
	mem_idtab_free(&r->waiter_ix);
	pxc_free(&r->clients);
	free(r->snap);
	free(r->rx.buf);
	free(r);
}

/* ---- timers ------------------------------------------------------------- */

static void on_tick(px_replica *r, px_actions *out)
{
	uint64_t now = r->now_us;
	switch (r->role) {
	case PX_FOLLOWER:
		if (r->leaving && !pxi_gone(r) &&
		    r->known_commit <= r->commit &&
		    now >= r->catchup_sent_us + r->cfg.retry_us) {
			/* Removed, and waiting for the ledger to pass the
			 * slots that still count us: ask how far it got
			 * (the leader stops writing to us once it has). */
			uint64_t v = pxi_conf_latest(r)->voters;
			if (r->leader >= 0)
				v = id_bit((uint32_t)r->leader);
			uint32_t to = (uint32_t)__builtin_ctzll(
				v ? v : id_bit(r->cfg.id));
			if (to != r->cfg.id) {
				px_msg *m =
					pxi_msg_new(r, PX_MSG_CATCHUP_REQ, to);
				m->slot = r->commit + 1;
				r->catchup_sent_us = now;
				r->catchup_to = (int32_t)to;
				r->catchup_asked_us = now;
				pxi_emit(r, out, m);
			}
		}
		if (!r->joined) {
			if (now >= r->probe_at_us)
				pxi_send_probes(r, out);
		} else if (now >= r->election_at_us) {
			/* Only a voter of the next slot's configuration
			 * campaigns; not one that is leaving the cell. */
			/* Nor one that catch-up is moving on (a replica
			 * back from a restart, far behind): someone serves
			 * it, so the cell has a leader or a replica better
			 * placed to become one; once it stops moving on, it
			 * may campaign. */
			bool catching_up =
				r->known_commit > r->commit &&
				r->catchup_progress_us != 0 &&
				now < r->catchup_progress_us +
						r->cfg.election_timeout_us;
			if (r->digest_alarm == PX_DIGEST_DIVERGED ||
			    !pxi_votes_now(r) || now < r->resign_until_us ||
			    catching_up) {
				r->election_at_us = now + pxi_election_delay(r);
				/* One that may not vote and hears no leader
				 * asks the members how far the ledger got
				 * (it may have been added, promoted or
				 * removed while it was away). */
				if (!r->leaving && r->role == PX_FOLLOWER &&
				    !catching_up)
					pxi_send_probes(r, out);
			} else {
				pxi_start_candidacy(r, out);
			}
		}
		break;
	case PX_CANDIDATE:
		if (now >= r->cand_started_us + r->cfg.election_timeout_us)
			pxi_become_follower(r, out, now);
		else if (now >= r->p1_sent_us + r->cfg.retry_us)
			pxi_send_prepares(r, out);
		break;
	case PX_LEADER: {
		/* Check quorum: a leader that has not heard a majority for an
		 * election timeout steps down rather than block the cell. */
		uint64_t live = id_bit(r->cfg.id);
		for (FOR_IDS(j, pxi_peers_mask(r)))
			if (now <
			    r->peer_heard_us[j] + r->cfg.election_timeout_us)
				live |= id_bit((uint32_t)j);
		if (!pxi_quorum_all(r, live) &&
		    now >= r->quorum_grace_until_us) {
			r->leader = -1;
			pxi_become_follower(r, out, now);
			break;
		}
		pxi_maybe_promote(r, out);
		if (now >= r->heartbeat_at_us)
			pxi_send_commits(r, out);
		for (uint64_t s = r->commit + 1; s < r->next_slot; s++) {
			entry *e = entry_at(r, s);
			if (e == NULL || e->chosen != NULL ||
			    e->pvalue == NULL ||
			    now < e->sent_us + r->cfg.retry_us)
				continue;
			e->sent_us = now;
			for (FOR_IDS(j, pxi_peers_mask(r) & ~e->acks))
				pxi_send_accept(r, out, e, (uint32_t)j);
		}
		break;
	}
	}
	pxi_maybe_catchup(r, out);
}

static uint64_t next_timer(const px_replica *r)
{
	uint64_t t = UINT64_MAX;
	switch (r->role) {
	case PX_FOLLOWER:
		t = r->joined ? r->election_at_us : r->probe_at_us;
		break;
	case PX_CANDIDATE:
		t = r->cand_started_us + r->cfg.election_timeout_us;
		if (r->p1_sent_us + r->cfg.retry_us < t)
			t = r->p1_sent_us + r->cfg.retry_us;
		break;
	case PX_LEADER:
		t = r->heartbeat_at_us;
		if (r->commit + 1 < r->next_slot &&
		    r->now_us + r->cfg.retry_us < t)
			t = r->now_us + r->cfg.retry_us;
		break;
	}
	if (r->role != PX_LEADER && r->known_commit > r->commit &&
	    r->catchup_sent_us + r->cfg.retry_us < t)
		t = r->catchup_sent_us + r->cfg.retry_us;
	if (t <= r->now_us)
		t = r->now_us + 1;
	return t;
}

/* Sends the held messages whose writes are now durable, oldest first.
 * Handling one addressed to ourselves may hold new messages; those join the
 * list behind the ones still waiting. */
static void release_held(px_replica *r, px_actions *out)
{
	held_msg *h = r->held;
	uint32_t n = r->nheld, cap = r->held_cap, kept = 0;
	r->held = NULL;
	r->nheld = r->held_cap = 0;
	for (uint32_t i = 0; i < n; i++) {
		if (h[i].write_id <= r->durable_id)
			pxi_emit(r, out, h[i].msg);
		else
			h[kept++] = h[i];
	}
	if (kept + r->nheld > cap) {
		cap = kept + r->nheld;
		held_msg *g = realloc(h, cap * sizeof *g);
		if (g == NULL)
			abort();
		h = g;
	}
	if (r->nheld > 0)
		memcpy(&h[kept], r->held, r->nheld * sizeof *h);
	kept += r->nheld;
	free(r->held);
	r->held = h;
	r->nheld = kept;
	r->held_cap = cap;
}

/* ---- the step function -------------------------------------------------- */

int px_replica_step(px_replica *r, const px_event *ev, px_actions *out)
{
	int rc = 0;
	/* The local clock is monotonic; never let it run backwards. */
	if (ev->now_us > r->now_us) {
		if (r->role == PX_LEADER &&
		    ev->now_us - r->now_us > 2 * r->cfg.heartbeat_us)
			r->quorum_grace_until_us =
				ev->now_us + r->cfg.election_timeout_us;
		r->now_us = ev->now_us;
	}
	if (r->election_at_us == UINT64_MAX) {
		r->election_at_us = r->now_us + pxi_election_delay(r);
		r->started_us = r->now_us;
		r->probe_at_us = r->now_us;
	}
	switch (ev->type) {
	case PX_EV_MSG:
		if (ev->msg == NULL ||
		    px_msg_validate(ev->msg, LD_REPLICA_IDS) != 0 ||
		    ev->msg->to != r->cfg.id) {
			rc = -1;
			break;
		}
		pxi_handle_msg(r, ev->msg, out);
		break;
	case PX_EV_TICK:
		on_tick(r, out);
		break;
	case PX_EV_DURABLE:
		if (ev->write_id > r->last_write_id) {
			rc = -1;
			break;
		}
		if (ev->write_id > r->durable_id)
			r->durable_id = ev->write_id;
		release_held(r, out);
		break;
	case PX_EV_READ:
		if (ev->read_id == 0) {
			rc = -1;
			break;
		}
		pxi_on_read(r, ev->read_id, out);
		break;
	case PX_EV_RESIGN:
		pxi_on_resign(r, out);
		break;
	case PX_EV_SNAPSHOT:
		pxi_on_capture(r, ev, out);
		break;
	case PX_EV_CHANGE:
		if (ev->change == NULL) {
			rc = -1;
			break;
		}
		pxi_on_change(r, ev->change_id, ev->change, out);
		break;
	case PX_EV_SUBMIT:
		if (ev->cmd == NULL) {
			rc = -1;
			break;
		}
		/* Everything submitted together is queued first and proposed
		 * after, so it shares decrees. */
		for (uint32_t i = 0; i < (ev->ncmds ? ev->ncmds : 1); i++)
			pxi_on_submit(r, &ev->cmd[i], out);
		pxi_flush_pending(r, out);
		break;
	default:
		rc = -1;
	}
	pxi_recovery_step(r, out);
	pxi_maybe_hand_over(r, out);
	pxi_reads_check(r, out);
	out->timer_at_us = next_timer(r);
#ifdef LD_CHECKS
	px_replica_check(r, ++r->steps % PX_CHECK_DEEP_EVERY == 0);
#endif
	return rc;
}

/* ---- views -------------------------------------------------------------- */

void px_replica_status(const px_replica *r, px_status *st)
{
	memset(st, 0, sizeof *st);
	st->role = r->role;
	st->snapshot_bytes = r->snap != NULL ? r->snap_len : 0;
	st->ballot = r->ballot;
	st->promised = r->promised;
	st->leader = r->role == PX_LEADER ? (int32_t)r->cfg.id : r->leader;
	st->commit = r->commit;
	st->applied = r->commit;
	st->base = r->snap_base;
	st->next_slot = r->next_slot;
	st->pending = r->pending_n;
	st->voter = r->joined && !r->leaving &&
		    (pxi_voters_mask(r) & id_bit(r->cfg.id)) != 0;
	st->member = (pxi_conf_latest(r)->all & id_bit(r->cfg.id)) != 0;
	st->removed = pxi_gone(r) || r->told_removed;
	st->resigned = r->now_us < r->resign_until_us;
	st->digest_alarm = r->digest_alarm;
	st->recover_above = r->recover_above;
}

const px_value *px_replica_chosen_at(const px_replica *r, uint64_t slot)
{
	const entry *e = entry_at_c(r, slot);
	return e != NULL ? e->chosen : NULL;
}
