/* Restart and recovery: replaying durable records (px_replica_restore), and
 * a replica on an empty disk learning until it may promise and vote again
 * (paxos.h's "Recovery", after Paxos Made Live 5.1). */
#include "paxos_int.h"

/* ---- restore ------------------------------------------------------------ */

/* Applies what the restored hints say is chosen, in order. Nothing is sent
 * or written: the actions are thrown away (no client waits yet). */
static void restore_apply(px_replica *r)
{
	px_actions scratch;
	px_actions_init(&scratch);
	for (;;) {
		entry *e = entry_at(r, r->commit + 1);
		if (e == NULL || e->chosen == NULL)
			break;
		r->commit++;
		pxi_apply_value(r, &scratch, r->commit, e->chosen);
	}
	if (r->commit > r->known_commit)
		r->known_commit = r->commit;
	pxi_conf_prune(r);
	px_actions_free(&scratch);
}

int px_replica_restore(px_replica *r, const px_record *rec)
{
	switch (rec->type) {
	case PX_REC_PROMISE:
		if (MUTANT(r, PX_MUTANT_FORGET_PROMISE))
			return 0;
		if (px_ballot_cmp(rec->ballot, r->promised) > 0)
			r->promised = rec->ballot;
		break;
	case PX_REC_VOTE: {
		if (rec->value == NULL || rec->slot == 0)
			return -1;
		if (rec->slot <= r->snap_base)
			return 0;
		entry *e = pxi_entry_get(r, rec->slot);
		if (e == NULL)
			return -1;
		if (ballot_zero(e->vballot) ||
		    px_ballot_cmp(rec->ballot, e->vballot) >= 0) {
			px_value_unref(e->vvalue);
			e->vballot = rec->ballot;
			e->vvalue = px_value_ref(rec->value);
		}
		/* A vote in ballot b is also a promise not to go below b. */
		if (!MUTANT(r, PX_MUTANT_FORGET_PROMISE) &&
		    px_ballot_cmp(rec->ballot, r->promised) > 0)
			r->promised = rec->ballot;
		break;
	}
	case PX_REC_SNAPSHOT:
		if (rec->slot <= r->snap_base)
			return 0;
		/* Hints replayed before it (a disk that keeps write order)
		 * may have applied past it: start again from the snapshot,
		 * then apply the chosen slots after it once more. */
		r->commit = r->snap_base;
		if (pxi_install_snapshot(r, rec->snap, rec->snap_len,
					 rec->slot))
			return -1;
		restore_apply(r);
		break;
	case PX_REC_JOINED:
		r->joined = true;
		return 0;
	case PX_REC_CHOSEN: {
		if (rec->slot == 0)
			return -1;
		if (rec->slot <= r->commit)
			return 0;
		if (rec->value != NULL) {
			/* The chosen value itself: a fact, whatever we voted.
			 */
			entry *e = pxi_entry_get(r, rec->slot);
			if (e != NULL && e->chosen == NULL) {
				e->chosen = px_value_ref(rec->value);
				restore_apply(r);
			}
			return 0;
		}
		entry *e = entry_at(r, rec->slot);
		/* Only the very vote the hint names: a later vote in another
		 * ballot (restored before it, from the same key) may hold a
		 * value from a ballot below the one that chose, so a hint
		 * whose ballot differs says nothing. One proposal per
		 * (slot, ballot) makes the ballot name the value. */
		if (e == NULL || e->chosen != NULL || e->vvalue == NULL ||
		    px_ballot_cmp(e->vballot, rec->ballot) != 0)
			return 0;
		e->chosen = px_value_ref(e->vvalue);
		restore_apply(r);
		return 0;
	}
	default:
		return -1;
	}
	if (r->promised.round > r->max_round)
		r->max_round = r->promised.round;
	return 0;
}

/* ---- recovery from an empty disk (paxos.h) ------------------------------ */

static bool holds_votes(const px_replica *r)
{
	for (uint32_t i = 0; i < LD_LOG_SLOTS_MAX; i++)
		if (r->log[i].slot != 0 && !ballot_zero(r->log[i].vballot))
			return true;
	return false;
}

/* Nothing chosen here, as far as this replica's disk knows: no vote, nothing
 * applied. (A promise alone chose nothing.) */
static bool replica_empty(const px_replica *r)
{
	return r->commit == 0 && r->snap_base == 0 && !holds_votes(r);
}

/* From now on this replica promises and votes. b: the ballot it promises
 * at once (zero for a new cell). PROMISE before JOINED: a disk that keeps
 * a prefix of the writes never holds JOINED without the promise. */
void pxi_join(px_replica *r, px_actions *out, px_ballot b)
{
	r->joined = true;
	if (px_ballot_cmp(b, r->promised) > 0) {
		r->promised = b;
		pxi_persist_promise(r, out);
	}
	pxi_note_ballot(r, b);
	pxi_persist(r, out, (px_record){.type = PX_REC_JOINED});
	r->election_at_us = r->now_us + pxi_election_delay(r);
}

void pxi_send_probes(px_replica *r, px_actions *out)
{
	r->probe_round++;
	/* Only answers to probes sent once every candidacy that could still
	 * count a promise this replica gave before it lost its disk has run
	 * out (one election timeout; twice that covers any drift we allow)
	 * bound what it promised (paxos.h). */
	if (r->probe_eligible_round == 0 &&
	    r->now_us >= r->started_us + 2 * r->cfg.election_timeout_us)
		r->probe_eligible_round = r->probe_round;
	for (FOR_IDS(j, pxi_peers_mask(r))) {
		px_msg *m = pxi_msg_new(r, PX_MSG_PROBE, (uint32_t)j);
		m->slot = r->probe_round;
		m->incarnation = r->cfg.incarnation;
		pxi_emit(r, out, m);
	}
	r->probe_at_us = r->now_us + r->cfg.retry_us;
}

void pxi_on_probe(px_replica *r, const px_msg *m, px_actions *out)
{
	px_msg *a = pxi_msg_new(r, PX_MSG_PROBE_ACK, m->from);
	a->ballot = r->promised;
	a->slot = m->slot;
	a->flags = (r->joined ? PX_FLAG_VOTER : 0) |
		   (holds_votes(r) ? PX_FLAG_HAS_VOTES : 0) |
		   (pxi_conf_latest(r)->m.removed & id_bit(m->from)
			    ? PX_FLAG_REMOVED
			    : 0);
	pxi_emit(r, out, a);
	/* A recovering replica asks for a leader above M: run phase 1 again
	 * above it, as the current leader (the others still follow us). */
	if (r->role == PX_LEADER && !ballot_zero(m->ballot) &&
	    px_ballot_cmp(m->ballot, r->ballot) >= 0) {
		pxi_requeue_proposals(r, out);
		pxi_start_candidacy(r, out);
	}
}

void pxi_on_probe_ack(px_replica *r, const px_msg *m, px_actions *out)
{
	if (m->flags & PX_FLAG_REMOVED)
		r->told_removed = true;
	if (r->role != PX_LEADER) {
		pxi_note_commit(r, m);
		pxi_maybe_catchup(r, out);
	}
	if (r->joined || m->slot == 0 || m->slot > r->probe_round ||
	    m->slot <= r->probe_acks[m->from].round)
		return;
	r->probe_acks[m->from].round = m->slot;
	r->probe_acks[m->from].promised = m->ballot;
	r->probe_acks[m->from].voter = (m->flags & PX_FLAG_VOTER) != 0;
	r->probe_acks[m->from].empty = !(m->flags & PX_FLAG_HAS_VOTES) &&
				       m->commit == 0 && m->base == 0;
}

/* A COMMIT from a leader while recovering: a leader above M ran its phase 1
 * without us (we answer none), so once we have learned what it proposed
 * then, we may vote. A leader at or below M is asked to go above it. */
void pxi_recover_heard_leader(px_replica *r, const px_msg *m, px_actions *out)
{
	if (!r->recover_known)
		return;
	if (px_ballot_cmp(m->ballot, r->recover_above) > 0) {
		if (px_ballot_cmp(m->ballot, r->recover_ballot) > 0) {
			r->recover_ballot = m->ballot;
			r->recover_horizon = m->slot;
		}
		return;
	}
	if (r->now_us < r->nudge_at_us)
		return;
	px_msg *p = pxi_msg_new(r, PX_MSG_PROBE, m->from);
	p->ballot = r->recover_above;
	pxi_emit(r, out, p);
	r->nudge_at_us = r->now_us + r->cfg.election_timeout_us;
}

/* Decides, after each step, whether a replica without JOINED may vote. */
void pxi_recovery_step(px_replica *r, px_actions *out)
{
	if (r->joined || r->leaving || r->told_removed)
		return;
	/* Only a voter recovers its vote; a learner waits for its
	 * promotion (apply_change), a newcomer for being added. */
	const conf *cf = pxi_conf_at(r, r->commit + 1);
	if (!(cf->voters & id_bit(r->cfg.id)))
		return;
	/* Promoted while a learner, naming this very disk (we may have
	 * learned it from a snapshot rather than the decree): this disk
	 * never voted, so it votes from now on (apply_change). */
	const px_member *me = px_members_find(&cf->m, r->cfg.id);
	if (me != NULL && me->incarnation != 0 &&
	    me->incarnation == r->cfg.incarnation) {
		pxi_join(r, out, (px_ballot){0, 0});
		return;
	}
	uint32_t n = popcount64(cf->voters);
	if (n == 1 || MUTANT(r, PX_MUTANT_WIPED_VOTES)) {
		pxi_join(r, out, (px_ballot){0, 0});
		return;
	}
	/* A new cell, or one that never chose anything: nobody holds a vote
	 * or has applied anything. A chosen value left votes on a majority,
	 * at least one of which kept its disk and would have said so. We
	 * join at the highest promise anyone reports: every ballot we may
	 * have promised in a life we forgot was promised by its proposer
	 * first, and that proposer answered (all did). */
	if (replica_empty(r)) {
		bool all = true;
		px_ballot mx = r->promised;
		for (FOR_IDS(j, cf->voters)) {
			if (j == r->cfg.id)
				continue;
			if (r->probe_acks[j].round == 0 ||
			    !r->probe_acks[j].empty)
				all = false;
			else if (px_ballot_cmp(r->probe_acks[j].promised, mx) >
				 0)
				mx = r->probe_acks[j].promised;
		}
		if (all) {
			pxi_join(r, out, mx);
			return;
		}
	}
	/* The configuration must be the cell's: one that changed since the
	 * one we know could have other voters. We know the configuration of
	 * every slot up to commit + PX_ALPHA. */
	if (!r->recover_known && r->probe_eligible_round != 0 &&
	    r->commit + PX_ALPHA > r->known_commit) {
		/* In every configuration of a slot after commit: n - q + 1
		 * voters meet the q - 1 others that promised any ballot we
		 * promised and that reached a quorum. */
		bool enough = true;
		px_ballot mx = {0, 0};
		for (uint32_t c = 0; c < r->nconfs; c++) {
			const conf *k = &r->confs[c];
			uint32_t cnt = 0;
			for (FOR_IDS(j, k->voters)) {
				const struct probe_ack *pa = &r->probe_acks[j];
				if (j == r->cfg.id || !pa->voter ||
				    pa->round < r->probe_eligible_round)
					continue;
				cnt++;
				if (px_ballot_cmp(pa->promised, mx) > 0)
					mx = pa->promised;
			}
			uint32_t kn = popcount64(k->voters);
			if (cnt + k->quorum < kn + 1)
				enough = false;
		}
		if (enough) {
			r->recover_known = true;
			r->recover_above = mx;
			pxi_note_ballot(r, mx);
		}
	}
	if (r->recover_known && !ballot_zero(r->recover_ballot) &&
	    r->commit >= r->recover_horizon)
		pxi_join(r, out, r->recover_ballot);
}
