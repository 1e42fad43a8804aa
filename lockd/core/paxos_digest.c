/* State digests (corruption caught): every digest_every_slots-th slot a
 * replica notes its state machine's digest; the leader's heartbeat carries
 * its latest and the followers answer theirs at the same slot, so a replica
 * whose state went wrong finds out (paxos.h's px_digest_alarm). */
#include "paxos_int.h"

/* ---- state digests (corruption caught) ---------------------------------- */

/* Remembers the state digest right after slot, if slot is a checkpoint. */
void pxi_ckpt_note(px_replica *r, uint64_t slot, uint64_t digest)
{
	if (slot == 0 || slot % r->cfg.digest_every_slots != 0)
		return;
	r->ckpts[r->ckpt_next] = (struct ckpt){slot, digest};
	r->ckpt_next = (r->ckpt_next + 1) % LD_DIGEST_KEEP;
}

const struct ckpt *pxi_ckpt_find(const px_replica *r, uint64_t slot)
{
	if (slot == 0)
		return NULL;
	for (uint32_t i = 0; i < LD_DIGEST_KEEP; i++)
		if (r->ckpts[i].slot == slot)
			return &r->ckpts[i];
	return NULL;
}

const struct ckpt *pxi_ckpt_latest(const px_replica *r)
{
	const struct ckpt *best = NULL;
	for (uint32_t i = 0; i < LD_DIGEST_KEEP; i++)
		if (r->ckpts[i].slot != 0 &&
		    (best == NULL || r->ckpts[i].slot > best->slot))
			best = &r->ckpts[i];
	return best;
}

void pxi_digest_alarm_raise(px_replica *r, px_digest_alarm a)
{
	if (a > r->digest_alarm)
		r->digest_alarm = a;
}

/* Leader: the digests reported at slot, ours among them. A digest that a
 * quorum shares is the cell's state there (Paxos Made Live compares the
 * replicas' databases); a replica with another one is outvoted. */
void pxi_digest_compare(px_replica *r, uint64_t slot)
{
	if (MUTANT(r, PX_MUTANT_IGNORE_DIGEST))
		return;
	const struct ckpt *own = pxi_ckpt_find(r, slot);
	if (own == NULL)
		return;
	const conf *cf = pxi_conf_at(r, r->commit + 1);
	uint64_t d[LD_REPLICA_IDS] = {0};
	bool have[LD_REPLICA_IDS] = {false};
	for (FOR_IDS(j, cf->voters | id_bit(r->cfg.id))) {
		if (j == r->cfg.id) {
			d[j] = own->digest;
			have[j] = true;
		} else if (r->peer_ckpt[j].slot == slot) {
			d[j] = r->peer_ckpt[j].digest;
			have[j] = true;
		}
	}
	for (FOR_IDS(i, cf->voters)) {
		if (!have[i])
			continue;
		uint32_t same = 0;
		for (FOR_IDS(j, cf->voters))
			same += have[j] && d[j] == d[i];
		if (same < cf->quorum)
			continue;
		/* d[i] is the quorum's: the cell's state at slot. Followers
		 * compare theirs with it (the verified digest we announce). */
		if (d[r->cfg.id] != d[i])
			pxi_digest_alarm_raise(r, PX_DIGEST_DIVERGED);
		else if (slot > r->verified.slot)
			r->verified = (struct ckpt){slot, d[i]};
		return;
	}
	for (FOR_IDS(j, cf->voters))
		if (have[j] && d[j] != own->digest)
			pxi_digest_alarm_raise(r, PX_DIGEST_MISMATCH);
}
