/* The node's invariants (ln_node_check, node.h): what every step leaves
 * true of the requests waiting, the leader's deadlines and its heap. The
 * simulator's build (LD_CHECKS) runs them after every step. */
#include <assert.h>

#include "node_int.h"

void ln_node_check(const ln_node *n, bool deep)
{
	ls_table_check(n->table, deep);
	/* Requests waiting here stay within the leader's queue bound. */
	assert(n->nouts <= LD_PENDING_CMDS_MAX);
	assert(n->nbatch == 0);
	px_status st;
	px_replica_status(n->rep, &st);
	/* The node leads exactly when its replica does (checked at the end
	 * of a step); the leader-only state is empty otherwise. */
	assert(n->leading == (st.role == PX_LEADER));
	if (!n->leading) {
		assert(n->dls.n == 0 && n->nheap == 0 && n->nwaits == 0);
		for (uint32_t i = 0; i < n->nouts; i++)
			assert(!n->outs[i].queued);
	} else {
		/* Every live deadline has its current entry in the heap. */
		assert(n->nheap >= n->dls.n);
	}
	if (!deep)
		return;
	uint32_t indexed = 0;
	for (uint32_t i = 0; i < n->outs_ix.cap; i++) {
		const outs_ix *x = mem_idtab_at(&n->outs_ix, i);
		if (x->session == 0)
			continue;
		assert(x->count > 0);
		indexed += x->count;
		if (x->count == 1)
			assert(x->pos < n->nouts &&
			       n->outs[x->pos].session == x->session &&
			       n->outs[x->pos].seq == x->seq);
	}
	assert(indexed == n->nouts);
	for (uint32_t i = 1; i < n->nheap; i++)
		assert(n->heap[(i - 1) / 2].at_us <= n->heap[i].at_us);
	for (uint32_t i = 0; i < n->dls.cap; i++) {
		const deadline *d = mem_idtab_at(&n->dls, i);
		if (d->token != 0)
			assert(d->due_us >= d->deadline_us);
	}
}
