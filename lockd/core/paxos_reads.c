/* Linearizable reads at the leader (ReadIndex): a read waits for a
 * heartbeat round sent after it arrived to be confirmed by a quorum at our
 * ballot, and for commit to reach every slot that may hold a write
 * acknowledged before it arrived. */
#include "paxos_int.h"

static void read_done(px_actions *out, uint64_t id, bool ok)
{
	out->reads = mem_grow(out->reads, &out->reads_cap, out->nreads + 1,
			      sizeof *out->reads);
	out->reads[out->nreads++] = (px_read_done){id, ok};
}

void pxi_reads_fail_all(px_replica *r, px_actions *out)
{
	for (uint32_t i = 0; i < r->npreads; i++)
		read_done(out, r->preads[i].id, false);
	r->npreads = 0;
	r->hb_wanted = false;
}

/* The newest heartbeat round a quorum has answered at our ballot (we answer
 * our own at once). */
static uint64_t hb_confirmed(const px_replica *r)
{
	if (MUTANT(r, PX_MUTANT_READ_LOCAL))
		return r->hb_seq;
	/* In every configuration of a slot after commit, the q-th highest
	 * answer among its voters (ours is the latest round). */
	uint64_t best = r->hb_seq;
	for (uint32_t c = 0; c < r->nconfs; c++) {
		const conf *cf = &r->confs[c];
		uint64_t a[LD_REPLICAS_MAX];
		uint32_t n = 0;
		for (FOR_IDS(j, cf->voters))
			a[n++] = j == r->cfg.id ? r->hb_seq : r->hb_acked[j];
		for (uint32_t i = 1; i < n; i++)
			for (uint32_t k = i; k > 0 && a[k] > a[k - 1]; k--) {
				uint64_t t = a[k];
				a[k] = a[k - 1];
				a[k - 1] = t;
			}
		uint64_t got = cf->quorum >= 1 && cf->quorum <= n
				       ? a[cf->quorum - 1]
				       : 0;
		if (got < best)
			best = got;
	}
	return best;
}

/* A read that arrives now is answered once a round sent after now is
 * confirmed (no newer ballot had a quorum then) and commit reaches every
 * slot proposed before now: every write acknowledged before the read was
 * chosen in one of those slots (P2 for those a former leader chose: our
 * phase 1 saw them). */
void pxi_on_read(px_replica *r, uint64_t id, px_actions *out)
{
	if (r->role != PX_LEADER || !r->joined) {
		read_done(out, id, false);
		return;
	}
	if (r->npreads == r->preads_cap) {
		uint32_t cap = r->preads_cap ? r->preads_cap * 2 : 16;
		struct pending_read *p = realloc(r->preads, cap * sizeof *p);
		if (p == NULL)
			abort();
		r->preads = p;
		r->preads_cap = cap;
	}
	/* Not only what we proposed: phase 1 may have found votes past
	 * the pipeline (p1_max), a former leader's writes that it may have
	 * acknowledged, which we re-propose only as the window moves. */
	uint64_t index = r->next_slot > 0 ? r->next_slot - 1 : 0;
	if (r->p1_max > index && !MUTANT(r, PX_MUTANT_READ_WINDOW))
		index = r->p1_max;
	r->preads[r->npreads++] = (struct pending_read){
		.id = id,
		.need = r->hb_seq + 1,
		.index = index,
	};
	r->hb_wanted = true;
}

void pxi_reads_check(px_replica *r, px_actions *out)
{
	if (r->npreads == 0 || r->role != PX_LEADER)
		return;
	uint64_t hb_ok = hb_confirmed(r);
	/* One round in flight at a time: reads that arrive meanwhile share
	 * the next one, so a burst of reads costs a few round trips. */
	if (r->hb_wanted && hb_ok >= r->hb_seq)
		pxi_send_commits(r, out);
	hb_ok = hb_confirmed(r);
	for (uint32_t i = 0; i < r->npreads;) {
		struct pending_read *p = &r->preads[i];
		if (p->need <= hb_ok && (r->commit >= p->index ||
					 MUTANT(r, PX_MUTANT_READ_LOCAL))) {
			read_done(out, p->id, true);
			r->preads[i] = r->preads[--r->npreads];
		} else {
			i++;
		}
	}
}
