/* The replica's invariants, checked (px_replica_check in paxos.h): each line
 * here is an `Invariant:` comment in paxos_int.h. The test build of the core
 * (LD_CHECKS: core_mut_lib, which the simulator and the scenario tests link)
 * runs it at the end of every px_replica_step, and its O(log) part every
 * PX_CHECK_DEEP_EVERY-th step, so the simulator's seeds/s barely move. A
 * mutant breaks some of these on purpose; those are relaxed under it, so
 * that the simulator's oracle, not an assertion, is what catches it. */
#include "paxos_int.h"

static bool mutant_is(const px_replica *r, ld_mutant m)
{
	return r->cfg.mutant == m;
}

static void check_log(const px_replica *r)
{
	for (uint32_t i = 0; i < LD_LOG_SLOTS_MAX; i++) {
		const entry *e = &r->log[i];
		if (e->slot == 0)
			continue;
		/* Each cell holds a slot of its residue class: empty, stale
		 * (below log_start) or inside the window. */
		assert(e->slot % LD_LOG_SLOTS_MAX == i);
		assert(e->slot < r->log_start + LD_LOG_SLOTS_MAX);
		if (e->slot < r->log_start)
			continue;
		/* A vote is never in a ballot above the promise (P1b). */
		if (!mutant_is(r, PX_MUTANT_FORGET_PROMISE) &&
		    !mutant_is(r, PX_MUTANT_WIPED_VOTES))
			assert(px_ballot_cmp(e->vballot, r->promised) <= 0);
		assert((e->vvalue == NULL) == ballot_zero(e->vballot));
	}
}

static void check_clients(const px_replica *r)
{
	pxc_check(&r->clients);
	assert(r->waiter_ix.n == r->nwaiters);
	for (uint32_t i = 0; i < r->nwaiters; i++) {
		const waiter *w = &r->waiters[i];
		const waiter_ix *x =
			mem_idtab_find2(&r->waiter_ix, w->client_id, w->seq);
		assert(w->client_id != 0 && x != NULL && x->i == i);
	}
}

void px_replica_check(const px_replica *r, bool deep)
{
	/* Applied in ledger order: the snapshot is of an applied prefix, the
	 * log keeps its tail, and nothing past the window is chosen. */
	assert(r->snap_base <= r->commit);
	assert(r->log_start <= r->commit + 1);
	assert(r->commit < r->log_start + LD_LOG_SLOTS_MAX);
	/* Durability is a prefix of the writes asked for, and a message
	 * waits only for a write not yet durable. */
	assert(r->durable_id <= r->last_write_id);
	for (uint32_t i = 0; i < r->nheld; i++)
		assert(r->held[i].write_id > r->durable_id &&
		       r->held[i].write_id <= r->last_write_id);
	/* Ballots: rounds never reach the wire's limit; a proposer's ballot
	 * is its own (P1) and never above what it has seen. */
	assert(r->promised.round < PX_ROUND_MAX);
	assert(r->promised.round <= r->max_round);
	if (r->role != PX_FOLLOWER) {
		if (!mutant_is(r, PX_MUTANT_SHARED_BALLOTS))
			assert(r->ballot.id == r->cfg.id);
		assert(r->ballot.round <= r->max_round);
		assert(!ballot_zero(r->ballot));
	}
	if (r->role == PX_LEADER) {
		/* The pipeline: proposals lie past commit, inside the window,
		 * and inside the log. */
		assert(r->next_slot >= r->commit + 1);
		assert(r->next_slot <= r->log_start + LD_LOG_SLOTS_MAX);
	}
	assert(r->leader >= -1 && r->leader < (int32_t)LD_REPLICA_IDS);
	/* Queues within their bounds. */
	assert(r->pending_n <= LD_PENDING_CMDS_MAX);
	assert(r->pending_head < LD_PENDING_CMDS_MAX);
	assert(pxc_count(&r->clients) <= LD_CLIENTS_MAX);
	/* Membership: the oldest configuration still governs commit + 1,
	 * and they are in slot order. */
	assert(r->nconfs >= 1);
	assert(r->confs[0].from <= r->commit + 1);
	for (uint32_t i = 1; i < r->nconfs; i++)
		assert(r->confs[i - 1].from < r->confs[i].from);
	if (!mutant_is(r, PX_MUTANT_MINORITY_QUORUM))
		for (uint32_t i = 0; i < r->nconfs; i++)
			assert(r->confs[i].quorum ==
			       popcount64(r->confs[i].voters) / 2 + 1);
	assert(r->ckpt_next < LD_DIGEST_KEEP);
	assert(r->waiter_ix.n == r->nwaiters);
	if (deep) {
		check_log(r);
		check_clients(r);
	}
}
