/* The synod, slot by slot (paxos.c's rules P1-P3): the roles (follower,
 * candidate running phase 1, leader running phase 2 pipelined and batched),
 * learning and applying chosen decrees in ledger order, the peer message
 * handlers of phases 1 and 2 and of the leader's heartbeat, client commands
 * at the leader. */
#include "paxos_int.h"

/* ---- learning and applying ---------------------------------------------- */

void pxi_apply_value(px_replica *r, px_actions *out, uint64_t slot, px_value *v)
{
	/* The ledger is applied in order, each slot once: the caller has just
	 * moved commit onto it. */
	assert(v != NULL && slot == r->commit && slot > r->snap_base);
	r->bytes_since_snap += 16;
	for (uint32_t i = 0; i < v->ncmds; i++) {
		const px_cmd *cmd = &v->cmds[i];
		r->bytes_since_snap += 24 + cmd->len;
		if (cmd->client_id == PX_MEMBERS_CLIENT) {
			const char *why = pxi_apply_change(r, out, slot, cmd);
			for (uint32_t k = 0; k < r->nchreqs; k++) {
				if (r->chreqs[k].tag != cmd->seq)
					continue;
				pxi_change_done(out, r->chreqs[k].change_id,
						why ? PX_CHANGE_REFUSED
						    : PX_CHANGE_DONE,
						-1, slot, why);
				r->chreqs[k] = r->chreqs[--r->nchreqs];
				break;
			}
			continue;
		}
		client_ent *c = pxc_upsert(&r->clients, cmd->client_id);
		if (cmd->seq > c->seq) {
			/* First time this command reaches the ledger. */
			uint8_t res[LD_RESULT_BYTES_MAX];
			size_t n = r->sm->ops->apply(r->sm, slot, cmd, res,
						     sizeof res);
			assert(n <= LD_RESULT_BYTES_MAX);
			pxc_applied(&r->clients, c, cmd->seq, slot, res,
				    (uint32_t)n);
		}
		int w = pxi_waiter_find(r, cmd->client_id, cmd->seq);
		if (w >= 0) {
			pxi_reply(r, out, cmd->client_id, cmd->seq, PX_REPLY_OK,
				  cmd->seq == c->seq ? c : NULL);
			pxi_waiter_remove(r, w);
		}
	}
	out->chosen = mem_grow(out->chosen, &out->chosen_cap, out->nchosen + 1,
			       sizeof *out->chosen);
	uint64_t d = r->sm->ops->digest(r->sm);
	out->chosen[out->nchosen++] = (px_chosen){
		.slot = slot,
		.value = px_value_ref(v),
		.sm_digest = d,
	};
	pxi_ckpt_note(r, slot, d);
}

/* Applies every chosen slot after commit, in order. */
void pxi_advance(px_replica *r, px_actions *out)
{
	for (;;) {
		entry *e = entry_at(r, r->commit + 1);
		if (e == NULL || e->chosen == NULL)
			break;
		r->commit++;
		pxi_apply_value(r, out, r->commit, e->chosen);
		/* A hint for restore, so that after a restart this slot is
		 * applied from the disk at once: the ballot of our own vote
		 * when it holds the chosen value (the hint goes after the
		 * vote, so no prefix of the writes holds it without the
		 * vote), else the value itself (learned by catch-up). */
		if (e->vvalue != NULL && !ballot_zero(e->vballot) &&
		    (e->vvalue == e->chosen ||
		     px_value_equal(e->vvalue, e->chosen)))
			pxi_persist(r, out,
				    (px_record){.type = PX_REC_CHOSEN,
						.slot = r->commit,
						.ballot = e->vballot});
		else
			pxi_persist(
				r, out,
				(px_record){.type = PX_REC_CHOSEN,
					    .slot = r->commit,
					    .value = px_value_ref(e->chosen)});
		/* The proposer's bookkeeping for this slot is finished. */
		px_value_unref(e->pvalue);
		e->pvalue = NULL;
		px_value_unref(e->p1value);
		e->p1value = NULL;
	}
	if (r->commit > r->known_commit)
		r->known_commit = r->commit;
	/* A leader can learn past its pipeline (a late phase-1 answer
	 * naming slots chosen): it proposes after them, never in them. */
	if (r->role == PX_LEADER && r->next_slot <= r->commit)
		r->next_slot = r->commit + 1;
	/* Everything chosen in order has been applied. */
	assert(entry_at(r, r->commit + 1) == NULL ||
	       entry_at(r, r->commit + 1)->chosen == NULL);
	uint64_t before = pxi_peers_mask(r);
	pxi_conf_prune(r);
	if (r->role == PX_LEADER) {
		/* Replicas no configuration in effect holds any more hear that
		 * their part is over: our commit is past their last slot. */
		for (FOR_IDS(j, before & ~pxi_peers_mask(r))) {
			px_msg *m = pxi_msg_new(r, PX_MSG_COMMIT, (uint32_t)j);
			m->ballot = r->ballot;
			m->slot = r->next_slot > 0 ? r->next_slot - 1 : 0;
			pxi_emit(r, out, m);
		}
	}
	pxi_maybe_snapshot(r, out);
}

void pxi_learn(px_replica *r, uint64_t slot, px_value *v)
{
	entry *e = pxi_entry_get(r, slot);
	if (e == NULL || e->chosen != NULL || slot <= r->commit)
		return;
	e->chosen = px_value_ref(v);
}

/* ---- roles -------------------------------------------------------------- */

static void clear_proposer_state(px_replica *r)
{
	for (uint32_t i = 0; i < LD_LOG_SLOTS_MAX; i++) {
		entry *e = &r->log[i];
		px_value_unref(e->pvalue);
		e->pvalue = NULL;
		e->pballot = (px_ballot){0, 0};
		e->acks = 0;
		px_value_unref(e->p1value);
		e->p1value = NULL;
		e->p1ballot = (px_ballot){0, 0};
	}
}

void pxi_become_follower(px_replica *r, px_actions *out, uint64_t now)
{
	pxi_reads_fail_all(r, out);
	pxi_changes_fail_all(r, out);
	if (r->role != PX_FOLLOWER) {
		clear_proposer_state(r);
		pxi_pending_drop_all(r, out);
	}
	r->role = PX_FOLLOWER;
	r->election_at_us = now + pxi_election_delay(r);
}

/* Phase 1a to every voter of a slot after from that has not promised. */
static void send_prepares_from(px_replica *r, px_actions *out, uint64_t from)
{
	for (FOR_IDS(j, pxi_voters_mask(r) & ~r->promises)) {
		if (j == r->cfg.id)
			continue;
		px_msg *m = pxi_msg_new(r, PX_MSG_PREPARE, (uint32_t)j);
		m->ballot = r->ballot;
		m->slot = from;
		/* P1 across restarts: nobody sees a ballot before our own
		 * promise of it is durable (the Part-Time Parliament's priest
		 * writes lastTried first). Otherwise a crash could make us
		 * campaign with the same ballot again and choose a second
		 * value under it. */
		pxi_emit_after_sync(r, out, m);
	}
	r->p1_sent_us = r->now_us;
}

void pxi_send_prepares(px_replica *r, px_actions *out)
{
	send_prepares_from(r, out, r->p1_from);
}

void pxi_changes_fail_all(px_replica *r, px_actions *out)
{
	for (uint32_t k = 0; k < r->nchreqs; k++)
		pxi_change_done(
			out, r->chreqs[k].change_id, PX_CHANGE_NOT_LEADER,
			r->leader, 0,
			"leadership changed before the change was applied "
			"(it may still be): list the members and retry");
	r->nchreqs = 0;
}

void pxi_start_candidacy(px_replica *r, px_actions *out)
{
	pxi_reads_fail_all(r, out);
	pxi_changes_fail_all(r, out);
	clear_proposer_state(r);
	uint64_t round = r->max_round;
	if (r->promised.round > round)
		round = r->promised.round;
	if (round + 1 >= PX_ROUND_MAX) {
		/* Rounds above PX_ROUND_MAX are refused from the wire; a cell
		 * that got here (2^62 elections, or a forged ballot) cannot
		 * campaign, and must not wrap to round 0. */
		pxi_become_follower(r, out, r->now_us);
		return;
	}
	r->role = PX_CANDIDATE;
	r->max_round = round + 1;
	/* P1: the replica id makes this ballot unique. */
	r->ballot = (px_ballot){round + 1, r->cfg.id};
	if (MUTANT(r, PX_MUTANT_SHARED_BALLOTS))
		r->ballot.id = 0;
	r->p1_from = r->commit + 1;
	r->p1_max = r->commit;
	r->promises = 0;
	r->cand_started_us = r->now_us;
	r->leader = -1;
	/* Our own acceptor answers through the same path as the others. */
	px_msg *self = pxi_msg_new(r, PX_MSG_PREPARE, r->cfg.id);
	self->ballot = r->ballot;
	self->slot = r->p1_from;
	pxi_emit(r, out, self);
	if (r->role == PX_CANDIDATE)
		pxi_send_prepares(r, out);
}

void pxi_send_accept(px_replica *r, px_actions *out, entry *e, uint32_t to)
{
	px_msg *m = pxi_msg_new(r, PX_MSG_ACCEPT, to);
	m->ballot = r->ballot;
	m->slot = e->slot;
	m->value = px_value_ref(e->pvalue);
	pxi_emit(r, out, m);
}

static void check_chosen(px_replica *r, entry *e)
{
	if (e->chosen != NULL)
		return;
	const conf *c = pxi_conf_at(r, e->slot);
	/* A majority of the voters of this slot's configuration. */
	if (pxi_quorum_in(c, e->acks) ||
	    (MUTANT(r, PX_MUTANT_COUNT_REMOVED) &&
	     popcount64(e->acks &
			(c->voters | pxi_conf_latest(r)->m.removed)) >=
		     c->quorum))
		e->chosen = px_value_ref(e->pvalue);
}

/* Phase 2a for one slot: our own acceptor votes first (durably), then the
 * others. */
static void propose(px_replica *r, px_actions *out, uint64_t slot, px_value *v)
{
	entry *e = pxi_entry_get(r, slot);
	assert(e != NULL);
	assert(e->chosen == NULL);
	px_value_unref(e->pvalue);
	e->pvalue = px_value_ref(v);
	e->pballot = r->ballot;
	e->acks = 0;
	e->sent_us = r->now_us;
	if (MUTANT(r, PX_MUTANT_EARLY_CHOSEN))
		e->chosen = px_value_ref(v);
	pxi_send_accept(r, out, e, r->cfg.id);
	for (FOR_IDS(j, pxi_peers_mask(r)))
		pxi_send_accept(r, out, e, (uint32_t)j);
}

void pxi_send_commits(px_replica *r, px_actions *out)
{
	r->hb_seq++;
	r->hb_wanted = false;
	for (FOR_IDS(j, pxi_peers_mask(r))) {
		px_msg *m = pxi_msg_new(r, PX_MSG_COMMIT, (uint32_t)j);
		m->ballot = r->ballot;
		/* The highest slot this leader has proposed or will
		 * re-propose from its phase 1: a recovering replica learns up
		 * to it before it votes (paxos.h). */
		m->slot = r->next_slot > 0 ? r->next_slot - 1 : 0;
		if (r->p1_max > m->slot)
			m->slot = r->p1_max;
		m->hb = r->hb_seq;
		const struct ckpt *c = pxi_ckpt_latest(r);
		if (c != NULL) {
			m->dslot = c->slot;
			m->digest = c->digest;
		}
		m->vslot = r->verified.slot;
		m->vdigest = r->verified.digest;
		pxi_emit(r, out, m);
	}
	r->heartbeat_at_us = r->now_us + r->cfg.heartbeat_us;
}

/* Whether our phase 1 covers slot: its configuration's voters promised our
 * ballot (a majority of them). If not, asks the ones missing (same ballot,
 * from slot on) and answers false: we propose there once they promise. */
static bool p1_covers(px_replica *r, px_actions *out, uint64_t slot)
{
	const conf *c = pxi_conf_at(r, slot);
	if (pxi_quorum_in(c, r->promises))
		return true;
	if (r->now_us >= r->p1_sent_us + r->cfg.retry_us ||
	    r->p1_ext_from != slot) {
		r->p1_ext_from = slot;
		send_prepares_from(r, out, slot);
	}
	return false;
}

/* Fills the pipeline: first what phase 1 found (P3, no-ops in the gaps),
 * then the pending queue, many commands per decree, then no-ops while a
 * membership change waits for its slot to come. */
void pxi_flush_pending(px_replica *r, px_actions *out)
{
	while (r->role == PX_LEADER &&
	       r->next_slot - 1 - r->commit < r->cfg.window_slots &&
	       pxi_entry_get(r, r->next_slot) != NULL) {
		entry *e = pxi_entry_get(r, r->next_slot);
		if (r->next_slot <= r->p1_max && e->chosen != NULL) {
			r->next_slot++;
			continue;
		}
		bool refill = r->next_slot <= r->p1_max;
		bool settle = !refill && r->pending_n == 0 &&
			      pxi_conf_latest(r)->from > r->next_slot;
		if (!refill && !settle && r->pending_n == 0)
			break;
		if (!p1_covers(r, out, r->next_slot))
			break;
		if (refill || settle) {
			px_value *v = px_value_noop();
			/* P3: the value of the highest-ballot vote, if any. */
			if (refill && e->p1value != NULL &&
			    !MUTANT(r, PX_MUTANT_IGNORE_VOTES))
				v = e->p1value;
			px_value_ref(v);
			propose(r, out, r->next_slot++, v);
			px_value_unref(v);
			continue;
		}
		uint32_t n = r->pending_n;
		if (n > r->cfg.batch_cmds)
			n = r->cfg.batch_cmds;
		px_cmd cmds[LD_BATCH_CMDS_MAX];
		for (uint32_t i = 0; i < n; i++)
			cmds[i] = r->pending[(r->pending_head + i) %
					     LD_PENDING_CMDS_MAX]
					  .cmd;
		px_value *v = px_value_new(cmds, n);
		if (v == NULL)
			abort();
		for (uint32_t i = 0; i < n; i++) {
			free((void *)r->pending[r->pending_head].cmd.data);
			r->pending_head =
				(r->pending_head + 1) % LD_PENDING_CMDS_MAX;
		}
		r->pending_n -= n;
		uint64_t slot = r->next_slot++;
		propose(r, out, slot, v);
		px_value_unref(v);
		if (r->role != PX_LEADER)
			break;
	}
}

static void become_leader(px_replica *r, px_actions *out)
{
	r->role = PX_LEADER;
	r->leader = (int32_t)r->cfg.id;
	r->leader_ballot = r->ballot;
	r->lead_since_us = r->now_us;
	for (uint32_t j = 0; j < LD_REPLICA_IDS; j++) {
		r->peer_heard_us[j] = r->now_us;
		r->hb_acked[j] = 0;
	}
	/* Slots phase 1 reported chosen are applied before anything new. */
	pxi_advance(r, out);
	/* Every slot the quorum reported is proposed again (flush_pending),
	 * the gaps between them filled with no-ops, before any new command;
	 * within the window, so that the configuration of every slot we
	 * propose in is known (paxos.h: membership). */
	r->next_slot = r->commit + 1 > r->p1_from ? r->commit + 1 : r->p1_from;
	r->p1_ext_from = 0;
	pxi_flush_pending(r, out);
	if (r->role != PX_LEADER)
		return;
	pxi_send_commits(r, out);
}

/* ---- message handlers --------------------------------------------------- */

void pxi_note_ballot(px_replica *r, px_ballot b)
{
	if (b.round > r->max_round)
		r->max_round = b.round;
}

static bool live_leader_other_than(px_replica *r, uint32_t from)
{
	if (r->role == PX_LEADER)
		return from != r->cfg.id;
	return r->leader >= 0 && (uint32_t)r->leader != from &&
	       (uint32_t)r->leader != r->cfg.id &&
	       r->now_us < r->heard_us + r->cfg.election_timeout_us;
}

static void reject(px_replica *r, px_actions *out, const px_msg *m)
{
	px_msg *x = pxi_msg_new(r, PX_MSG_REJECT, m->from);
	x->ballot = r->promised;
	x->slot = m->slot;
	pxi_emit(r, out, x);
}

/* A message from a leader (or would-be leader) at ballot b >= our promise. */
static void heard_leader(px_replica *r, px_actions *out, const px_msg *m)
{
	if (m->from == r->cfg.id)
		return;
	if (r->role != PX_FOLLOWER && px_ballot_cmp(m->ballot, r->ballot) >= 0)
		pxi_become_follower(r, out, r->now_us);
	if (r->role == PX_FOLLOWER) {
		r->leader = (int32_t)m->from;
		r->leader_ballot = m->ballot;
		r->heard_us = r->now_us;
		r->election_at_us = r->now_us + pxi_election_delay(r);
	}
}

void pxi_note_commit(px_replica *r, const px_msg *m)
{
	/* Prefer the current leader as the source of catch-up; otherwise the
	 * latest replica to claim the most (one that claimed it earlier may
	 * have lost its disk since, and can no longer answer). */
	if (m->commit > r->known_commit ||
	    (m->commit > r->commit && m->commit == r->known_commit) ||
	    (m->commit > r->commit && (int32_t)m->from == r->leader)) {
		if (m->commit > r->known_commit)
			r->known_commit = m->commit;
		r->known_commit_from = (int32_t)m->from;
	}
}

static void on_prepare(px_replica *r, const px_msg *m, px_actions *out)
{
	/* Recovery: a replica that may have lost its promises and votes
	 * answers no phase 1 (paxos.h). Not answering is always safe. */
	if (!r->joined)
		return;
	/* Only a voter of a configuration we know may lead: a removed
	 * replica that does not know it yet cannot disrupt the cell. It is
	 * told how far the ledger got instead (a REJECT carries our commit),
	 * so it catches up and learns that it left. */
	if (!(pxi_voters_mask(r) & id_bit(m->from))) {
		if (r->commit > m->commit) {
			px_msg *x = pxi_msg_new(r, PX_MSG_REJECT, m->from);
			x->slot = m->slot;
			pxi_emit(r, out, x);
		}
		return;
	}
	int c = px_ballot_cmp(m->ballot, r->promised);
	if (c < 0) {
		reject(r, out, m);
		return;
	}
	if (c > 0) {
		/* Leader stability: while we hear a live leader, we do not
		 * help anyone else depose it. Not answering is always safe. */
		if (live_leader_other_than(r, m->from))
			return;
		r->promised = m->ballot;
		pxi_persist_promise(r, out);
		if (r->role != PX_FOLLOWER && m->from != r->cfg.id &&
		    px_ballot_cmp(m->ballot, r->ballot) > 0)
			pxi_become_follower(r, out, r->now_us);
	}
	/* P1b: we answer only a ballot we now promise. */
	assert(px_ballot_cmp(r->promised, m->ballot) == 0);
	/* The promise carries every vote from the asked slot on (P3), and
	 * what this replica knows chosen there: a replica that recovered from
	 * an empty disk holds no vote for the slots its lost votes helped
	 * choose, only the knowledge that they were chosen. It leaves once
	 * the promise and those votes are durable. */
	px_msg *p = pxi_msg_new(r, PX_MSG_PROMISE, m->from);
	p->ballot = m->ballot;
	p->slot = m->slot;
	uint64_t lo = m->slot > r->log_start ? m->slot : r->log_start;
	uint32_t n = 0;
	for (uint64_t s = lo; s < r->log_start + LD_LOG_SLOTS_MAX; s++) {
		const entry *e = entry_at(r, s);
		if (e != NULL &&
		    (e->chosen != NULL || !ballot_zero(e->vballot)))
			n++;
	}
	if (n > 0) {
		p->votes = calloc(n, sizeof *p->votes);
		if (p->votes == NULL)
			abort();
		for (uint64_t s = lo; s < r->log_start + LD_LOG_SLOTS_MAX;
		     s++) {
			const entry *e = entry_at(r, s);
			if (e == NULL)
				continue;
			if (e->chosen != NULL)
				p->votes[p->nvotes++] = (px_vote){
					.slot = s,
					.value = px_value_ref(e->chosen),
					.chosen = true,
				};
			else if (!ballot_zero(e->vballot))
				p->votes[p->nvotes++] = (px_vote){
					.slot = s,
					.ballot = e->vballot,
					.value = px_value_ref(e->vvalue),
				};
		}
	}
	pxi_emit_after_sync(r, out, p);
}

/* Takes a promise's votes for slots from `from` on into phase 1's state:
 * the chosen ones are learned, the others kept when of the highest ballot
 * so far (P3). false when a vote lies beyond what the log can hold: we are
 * far behind, and the caller catches up instead. */
static bool p1_take_votes(px_replica *r, const px_msg *m, uint64_t from)
{
	for (uint32_t i = 0; i < m->nvotes; i++) {
		const px_vote *v = &m->votes[i];
		if (v->slot < from)
			continue;
		entry *e = pxi_entry_get(r, v->slot);
		if (e == NULL)
			return false;
		if (v->chosen) {
			/* A fact, whatever anyone voted: no proposal needed. */
			pxi_learn(r, v->slot, v->value);
		} else if (ballot_zero(e->p1ballot) ||
			   px_ballot_cmp(v->ballot, e->p1ballot) > 0) {
			px_value_unref(e->p1value);
			e->p1ballot = v->ballot;
			e->p1value = px_value_ref(v->value);
		}
		if (v->slot > r->p1_max)
			r->p1_max = v->slot;
	}
	return true;
}

/* A leader's phase 1 reaching voters of a configuration that its first
 * quorum did not cover (p1_covers): their votes constrain the slots we have
 * not proposed in yet, as any promise does. */
static void on_promise_leading(px_replica *r, const px_msg *m, px_actions *out)
{
	if (m->base >= r->next_slot) {
		/* It applied slots we are proposing: we are behind. */
		pxi_note_commit(r, m);
		pxi_become_follower(r, out, r->now_us);
		pxi_maybe_catchup(r, out);
		return;
	}
	if (!p1_take_votes(r, m, r->next_slot)) {
		pxi_note_commit(r, m);
		pxi_become_follower(r, out, r->now_us);
		pxi_maybe_catchup(r, out);
		return;
	}
	r->promises |= id_bit(m->from);
	r->peer_heard_us[m->from] = r->now_us;
	pxi_flush_pending(r, out);
}

static void on_promise(px_replica *r, const px_msg *m, px_actions *out)
{
	if (r->role == PX_LEADER && px_ballot_cmp(m->ballot, r->ballot) == 0 &&
	    !(r->promises & id_bit(m->from))) {
		on_promise_leading(r, m, out);
		return;
	}
	if (r->role != PX_CANDIDATE || px_ballot_cmp(m->ballot, r->ballot) != 0)
		return;
	/* A candidacy ends after an election timeout, even if the tick that
	 * ends it has not run yet (a paused process): recovery (paxos.h)
	 * counts on no promise being counted after that. */
	if (r->now_us >= r->cand_started_us + r->cfg.election_timeout_us)
		return;
	if (m->from != r->cfg.id)
		r->peer_heard_us[m->from] = r->now_us;
	if (m->base >= r->p1_from) {
		/* This acceptor compacted slots we have not learned: its votes
		 * there are gone, so catch up before leading. */
		pxi_note_commit(r, m);
		pxi_maybe_catchup(r, out);
		return;
	}
	if (!p1_take_votes(r, m, r->p1_from)) {
		pxi_note_commit(r, m);
		pxi_maybe_catchup(r, out);
		return;
	}
	r->promises |= id_bit(m->from);
	/* A majority of every configuration of a slot after commit (those
	 * that later decrees add are asked for when we get there). */
	if (pxi_quorum_all(r, r->promises))
		become_leader(r, out);
}

static void on_accept(px_replica *r, const px_msg *m, px_actions *out)
{
	if (!r->joined) {
		/* Recovering: no vote, but a leader worth catching up from. */
		heard_leader(r, out, m);
		pxi_note_commit(r, m);
		pxi_maybe_catchup(r, out);
		return;
	}
	if (px_ballot_cmp(m->ballot, r->promised) < 0) {
		reject(r, out, m);
		return;
	}
	if (px_ballot_cmp(m->ballot, r->promised) > 0) {
		/* Leader stability, as for a 1a: while we hear a live leader,
		 * a 2a from anyone else at a higher ballot goes unanswered
		 * (not answering is always safe), so one stray or forged
		 * ballot cannot raise our promise past the leader's. A leader
		 * does take it: someone above it leads, and it steps down. */
		if (r->role != PX_LEADER && live_leader_other_than(r, m->from))
			return;
		r->promised = m->ballot;
		pxi_persist_promise(r, out);
	}
	heard_leader(r, out, m);
	if (m->slot <= r->snap_base) {
		/* Already applied here: the sender is behind us. */
		reject(r, out, m);
		return;
	}
	entry *e = pxi_entry_get(r, m->slot);
	if (e == NULL) {
		/* Too far ahead to hold: do not vote; catch up instead. */
		pxi_note_commit(r, m);
		pxi_maybe_catchup(r, out);
		return;
	}
	/* P2b: a vote only in the ballot promised, never below it. */
	assert(px_ballot_cmp(m->ballot, r->promised) == 0 && m->value != NULL);
	px_value_unref(e->vvalue);
	e->vballot = m->ballot;
	e->vvalue = px_value_ref(m->value);
	pxi_persist(r, out,
		    (px_record){.type = PX_REC_VOTE,
				.ballot = m->ballot,
				.slot = m->slot,
				.value = px_value_ref(m->value)});
	px_msg *a = pxi_msg_new(r, PX_MSG_ACCEPTED, m->from);
	a->ballot = m->ballot;
	a->slot = m->slot;
	if (MUTANT(r, PX_MUTANT_VOTE_BEFORE_SYNC))
		pxi_emit(r, out, a);
	else
		pxi_emit_after_sync(r, out, a);
	if (m->from != r->cfg.id) {
		pxi_note_commit(r, m);
		/* The leader's commit covers slots we voted for in its ballot.
		 */
		for (uint64_t s = r->commit + 1; s <= m->commit; s++) {
			entry *x = entry_at(r, s);
			if (x == NULL || x->vvalue == NULL ||
			    px_ballot_cmp(x->vballot, m->ballot) != 0)
				break;
			pxi_learn(r, s, x->vvalue);
		}
		pxi_advance(r, out);
		pxi_maybe_catchup(r, out);
	}
}

static void on_accepted(px_replica *r, const px_msg *m, px_actions *out)
{
	if (r->role != PX_LEADER || px_ballot_cmp(m->ballot, r->ballot) != 0)
		return;
	r->peer_heard_us[m->from] = r->now_us;
	entry *e = entry_at(r, m->slot);
	if (e == NULL || e->pvalue == NULL ||
	    px_ballot_cmp(e->pballot, r->ballot) != 0)
		return;
	e->acks |= id_bit(m->from);
	check_chosen(r, e);
	pxi_advance(r, out);
	pxi_flush_pending(r, out);
}

/* Puts the commands of this leader's unchosen proposals back at the front
 * of the pending queue, in ledger order. */
void pxi_requeue_proposals(px_replica *r, px_actions *out)
{
	for (uint64_t s = r->next_slot; s-- > r->commit + 1;) {
		entry *e = entry_at(r, s);
		if (e == NULL || e->chosen != NULL || e->pvalue == NULL ||
		    px_ballot_cmp(e->pballot, r->ballot) != 0)
			continue;
		for (uint32_t i = e->pvalue->ncmds; i-- > 0;) {
			const px_cmd *c = &e->pvalue->cmds[i];
			int w = pxi_waiter_find(r, c->client_id, c->seq);
			if (w < 0)
				continue; /* nobody waits here: not ours */
			uint8_t *data = NULL;
			if (r->pending_n >= LD_PENDING_CMDS_MAX ||
			    (data = malloc(c->len ? c->len : 1)) == NULL) {
				pxi_reply(r, out, c->client_id, c->seq,
					  PX_REPLY_BUSY, NULL);
				pxi_waiter_remove(r, w);
				continue;
			}
			if (c->len > 0)
				memcpy(data, c->data, c->len);
			r->pending_head =
				(r->pending_head + LD_PENDING_CMDS_MAX - 1) %
				LD_PENDING_CMDS_MAX;
			r->pending[r->pending_head].cmd = *c;
			r->pending[r->pending_head].cmd.data = data;
			r->pending_n++;
		}
	}
}

static void on_reject(px_replica *r, const px_msg *m, px_actions *out)
{
	pxi_note_ballot(r, m->ballot);
	if (ballot_zero(m->ballot)) {
		/* From a replica that does not count us as a voter: we may
		 * have been removed while away. Catch up to find out. */
		if (r->role == PX_CANDIDATE)
			pxi_become_follower(r, out, r->now_us);
		pxi_note_commit(r, m);
		pxi_maybe_catchup(r, out);
		return;
	}
	if (r->role == PX_FOLLOWER)
		return;
	if (px_ballot_cmp(m->ballot, r->ballot) > 0) {
		if (r->role == PX_LEADER) {
			/* Someone promised a higher ballot (say a replica that
			 * campaigned while cut off). Run phase 1 again above
			 * it; the others still hear us and will promise. Our
			 * unchosen proposals may not survive phase 1, so their
			 * commands go back in the queue: their clients are
			 * still waiting here, and the client table makes a
			 * second copy in the ledger harmless. */
			pxi_requeue_proposals(r, out);
			pxi_start_candidacy(r, out);
		} else {
			/* Candidates back off: two that retried at once would
			 * duel for ever (the Part-Time Parliament's hazard). */
			pxi_become_follower(r, out, r->now_us);
		}
		return;
	}
	if (r->role == PX_LEADER && m->base >= m->slot && m->slot > r->commit) {
		/* The acceptor already applied a slot we are proposing: we
		 * are behind. Step down and catch up. */
		pxi_note_commit(r, m);
		pxi_become_follower(r, out, r->now_us);
		pxi_maybe_catchup(r, out);
	}
}

static void on_commit(px_replica *r, const px_msg *m, px_actions *out)
{
	if (px_ballot_cmp(m->ballot, r->promised) < 0) {
		/* A leader we can no longer serve: tell it, so it re-runs
		 * phase 1 above our promise instead of stalling. */
		reject(r, out, m);
		return;
	}
	heard_leader(r, out, m);
	if (r->role == PX_LEADER)
		return;
	if (m->flags & PX_FLAG_HANDOVER) {
		/* The leader leaves the cell: do not wait for it to fall
		 * silent; the one it names campaigns now. */
		r->leader = -1;
		r->heard_us = 0;
		if ((m->flags & PX_FLAG_CAMPAIGN) && pxi_votes_now(r) &&
		    r->digest_alarm != PX_DIGEST_DIVERGED &&
		    r->now_us >= r->resign_until_us) {
			pxi_note_commit(r, m);
			pxi_start_candidacy(r, out);
			return;
		}
	}
	pxi_note_commit(r, m);
	for (uint64_t s = r->commit + 1; s <= m->commit; s++) {
		entry *x = entry_at(r, s);
		if (x == NULL || x->vvalue == NULL ||
		    px_ballot_cmp(x->vballot, m->ballot) != 0)
			break;
		pxi_learn(r, s, x->vvalue);
	}
	pxi_advance(r, out);
	pxi_maybe_catchup(r, out);
	if (!MUTANT(r, PX_MUTANT_IGNORE_DIGEST)) {
		/* A digest a quorum shares is the cell's state there: ours
		 * differing from it means our state is not the cell's. One
		 * that differs from the leader's alone may be the leader's
		 * fault: an alarm, not a verdict. */
		const struct ckpt *v = pxi_ckpt_find(r, m->vslot);
		if (v != NULL && v->digest != m->vdigest)
			pxi_digest_alarm_raise(r, PX_DIGEST_DIVERGED);
		const struct ckpt *own = pxi_ckpt_find(r, m->dslot);
		if (own != NULL && own->digest != m->digest)
			pxi_digest_alarm_raise(r, PX_DIGEST_MISMATCH);
	}
	if (!r->joined)
		pxi_recover_heard_leader(r, m, out);
	/* A replica that cannot vote answers without PX_FLAG_VOTER: the
	 * leader learns how far it got (to promote a learner), but does not
	 * count it as live. */
	px_msg *a = pxi_msg_new(r, PX_MSG_COMMIT_ACK, m->from);
	a->ballot = m->ballot;
	a->incarnation = r->cfg.incarnation;
	a->flags = r->joined ? PX_FLAG_VOTER : 0;
	if (!r->joined) {
		pxi_emit(r, out, a);
		return;
	}
	a->hb = m->hb;
	const struct ckpt *c = pxi_ckpt_find(r, m->dslot);
	if (c != NULL) {
		a->dslot = c->slot;
		a->digest = c->digest;
	}
	pxi_emit(r, out, a);
}

static void on_commit_ack(px_replica *r, const px_msg *m, px_actions *out)
{
	(void)out;
	if (r->role == PX_LEADER && px_ballot_cmp(m->ballot, r->ballot) == 0) {
		r->peer_commit[m->from] = m->commit;
		r->peer_inc[m->from] = m->incarnation;
		if (!(m->flags & PX_FLAG_VOTER))
			return;
		r->peer_heard_us[m->from] = r->now_us;
		if (m->hb > r->hb_acked[m->from] && m->hb <= r->hb_seq)
			r->hb_acked[m->from] = m->hb;
		if (m->dslot != 0) {
			r->peer_ckpt[m->from] =
				(struct ckpt){m->dslot, m->digest};
			pxi_digest_compare(r, m->dslot);
			if (r->digest_alarm == PX_DIGEST_DIVERGED) {
				/* Outvoted: our table is not the cell's, so
				 * neither our lease timing nor our reads may
				 * be trusted. Let another lead. */
				r->leader = -1;
				pxi_become_follower(r, out, r->now_us);
			}
		}
	}
}

void pxi_handle_msg(px_replica *r, const px_msg *m, px_actions *out)
{
	pxi_note_ballot(r, m->ballot);
	switch (m->type) {
	case PX_MSG_PREPARE:
		on_prepare(r, m, out);
		break;
	case PX_MSG_PROMISE:
		on_promise(r, m, out);
		break;
	case PX_MSG_ACCEPT:
		on_accept(r, m, out);
		break;
	case PX_MSG_ACCEPTED:
		on_accepted(r, m, out);
		break;
	case PX_MSG_REJECT:
		on_reject(r, m, out);
		break;
	case PX_MSG_COMMIT:
		on_commit(r, m, out);
		break;
	case PX_MSG_COMMIT_ACK:
		on_commit_ack(r, m, out);
		break;
	case PX_MSG_CATCHUP_REQ:
		pxi_on_catchup_req(r, m, out);
		break;
	case PX_MSG_CATCHUP:
		pxi_on_catchup(r, m, out);
		break;
	case PX_MSG_SNAPSHOT:
		pxi_on_snapshot(r, m, out);
		break;
	case PX_MSG_PROBE:
		pxi_on_probe(r, m, out);
		break;
	case PX_MSG_PROBE_ACK:
		pxi_on_probe_ack(r, m, out);
		break;
	}
}

/* ---- client commands ---------------------------------------------------- */

void pxi_on_submit(px_replica *r, const px_cmd *cmd, px_actions *out)
{
	if (cmd->client_id == 0 || cmd->seq == 0 ||
	    cmd->len > LD_CMD_BYTES_MAX ||
	    (cmd->len > 0 && cmd->data == NULL)) {
		pxi_reply(r, out, cmd->client_id, cmd->seq, PX_REPLY_INVALID,
			  NULL);
		return;
	}
	if (r->role == PX_FOLLOWER) {
		pxi_reply(r, out, cmd->client_id, cmd->seq, PX_REPLY_NOT_LEADER,
			  NULL);
		return;
	}
	const client_ent *c = pxi_client_find(r, cmd->client_id);
	if (c != NULL && cmd->seq <= c->seq) {
		/* A retry of a command already applied: answer from the
		 * table, do not apply again. */
		pxi_reply(r, out, cmd->client_id, cmd->seq, PX_REPLY_OK,
			  cmd->seq == c->seq ? c : NULL);
		return;
	}
	if (pxi_waiter_find(r, cmd->client_id, cmd->seq) >= 0)
		return; /* already queued or in flight here */
	if (r->pending_n >= LD_PENDING_CMDS_MAX) {
		pxi_reply(r, out, cmd->client_id, cmd->seq, PX_REPLY_BUSY,
			  NULL);
		return;
	}
	uint8_t *data = malloc(cmd->len ? cmd->len : 1);
	if (data == NULL) {
		pxi_reply(r, out, cmd->client_id, cmd->seq, PX_REPLY_BUSY,
			  NULL);
		return;
	}
	if (cmd->len > 0)
		memcpy(data, cmd->data, cmd->len);
	pending_cmd *p = &r->pending[(r->pending_head + r->pending_n) %
				     LD_PENDING_CMDS_MAX];
	p->cmd = *cmd;
	p->cmd.data = data;
	r->pending_n++;
	pxi_waiter_add(r, cmd->client_id, cmd->seq);
}
