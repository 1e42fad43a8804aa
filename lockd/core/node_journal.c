/* What the journal of a step (lease.h's ls_change, cleared after every
 * step) says about one answer of the ledger: what a RENEW renewed, where an
 * ACQUIRE queued, whether it was a new grant. */
#include "node_int.h"

#include <stdlib.h>
#include <string.h>

/* RENEW's reply lists what that decree renewed: the journal entries of the
 * session at the reply's slot, found through renew_ix (node_int.h). */
void lni_fill_renewed(ln_node *n, ln_reply *rp, uint64_t slot)
{
	size_t nj;
	const ls_change *j = ls_table_journal(n->table, &nj);
	if (!n->renew_ix_built) {
		n->renew_ix_built = true;
		for (size_t i = 0; i < nj; i++) {
			if (j[i].kind != LS_CH_RENEWED)
				continue;
			renew_ix *x = mem_idtab_find2(&n->renew_ix,
						      j[i].session, j[i].slot);
			if (x == NULL) {
				x = mem_idtab_insert2(&n->renew_ix,
						      j[i].session, j[i].slot);
				x->first = i;
			}
			x->last = i;
			x->count++;
		}
	}
	const renew_ix *x = mem_idtab_find2(&n->renew_ix, rp->session, slot);
	if (x == NULL)
		return;
	assert(x->last < nj);
	rp->tokens = malloc(x->count * sizeof *rp->tokens);
	if (rp->tokens == NULL)
		abort();
	for (size_t i = x->first; i <= x->last; i++)
		if (j[i].kind == LS_CH_RENEWED && j[i].slot == slot &&
		    j[i].session == rp->session)
			rp->tokens[rp->ntokens++] = j[i].token;
	assert(rp->ntokens == x->count);
}

void lni_renew_ix_drop(ln_node *n)
{
	if (n->renew_ix_built) {
		mem_idtab_free(&n->renew_ix);
		n->renew_ix_built = false;
	}
}

/* The journal index of the QUEUED entry that o's ACQUIRE made at slot, or
 * the last entry of that slot, or -1. */
int64_t lni_queued_index(ln_node *n, const outstanding *o, uint64_t slot)
{
	size_t nj;
	const ls_change *j = ls_table_journal(n->table, &nj);
	int64_t last = -1;
	for (size_t i = 0; i < nj; i++) {
		if (j[i].slot != slot)
			continue;
		if (j[i].kind == LS_CH_QUEUED && j[i].session == o->session &&
		    j[i].name_len == o->name_len &&
		    memcmp(j[i].name, o->name, o->name_len) == 0)
			return (int64_t)i;
		last = (int64_t)i;
	}
	return last;
}

/* Did the journal grant token to o's session at slot (a new grant, not the
 * holder's own re-acquire, which renews a lease it already had)? */
bool lni_granted_at(ln_node *n, const outstanding *o, uint64_t slot,
		    uint64_t token)
{
	size_t nj;
	const ls_change *j = ls_table_journal(n->table, &nj);
	for (size_t i = 0; i < nj; i++)
		if (j[i].kind == LS_CH_GRANTED && j[i].slot == slot &&
		    j[i].token == token && j[i].session == o->session)
			return true;
	return false;
}
