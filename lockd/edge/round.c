/* One round of a replica (round.h). */
#include "round.h"

#include <assert.h>
#include <string.h>

void rd_init(rd_round *r, ln_node *node, const rd_io *io)
{
	memset(r, 0, sizeof *r);
	r->node = node;
	r->io = *io;
	ln_actions_init(&r->act);
}

void rd_free(rd_round *r)
{
	ln_actions_free(&r->act);
	memset(r, 0, sizeof *r);
}

void rd_begin(rd_round *r)
{
	assert(!r->writing);
	ln_actions_reset(&r->act);
	r->sent = r->answered = r->changed = r->persisted = 0;
	r->rounds++;
}

int rd_step(rd_round *r, ln_event *ev)
{
	ev->now_us = r->io.now_us(r->io.ctx);
	int rc = ln_node_step(r->node, ev, &r->act);
	if (r->act.ld.snapshot_want) {
		r->act.ld.snapshot_want = false;
		if (r->io.capture != NULL)
			r->io.capture(r->io.ctx);
	}
	return rc;
}

/* Sends and answers what of act has not left yet. */
static void release(rd_round *r)
{
	for (; r->sent < r->act.ld.nmsgs; r->sent++)
		r->io.send(r->io.ctx, r->act.ld.msgs[r->sent]);
	for (; r->answered < r->act.nreplies; r->answered++)
		r->io.reply(r->io.ctx, &r->act.replies[r->answered]);
	for (; r->changed < r->act.ld.nchanges; r->changed++)
		r->io.change(r->io.ctx, &r->act.ld.changes[r->changed]);
}

/* Only PX_REC_CHOSEN hints: nothing waits for them to be durable. */
static bool only_hints(const px_record *recs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (recs[i].type != PX_REC_CHOSEN)
			return false;
	return true;
}

/* Writes every record of the round, one batch per pass, and tells the
 * node after each; a pass of hints alone is written without a sync (the
 * next synced write carries it to the disk). */
static int persist(rd_round *r)
{
	while (r->act.ld.nrecs > r->persisted) {
		px_record *recs = r->act.ld.recs + r->persisted;
		size_t n = r->act.ld.nrecs - r->persisted;
		if (r->io.write(r->io.ctx, recs, n, !only_hints(recs, n),
				r->error, sizeof r->error) != 0) {
			r->writing = true;
			return -1;
		}
		r->writing = false;
		r->persisted = r->act.ld.nrecs;
		ln_event ev = {.type = LN_EV_DURABLE,
			       .write_id = r->act.ld.write_id};
		rd_step(r, &ev);
	}
	r->writing = false;
	return 0;
}

#ifdef LD_MUTANTS
/* The broken round: the node hears DURABLE before the write, so what it
 * releases leaves first. */
static int flush_early(rd_round *r)
{
	size_t persisted = r->persisted;
	while (r->act.ld.nrecs > persisted) {
		persisted = r->act.ld.nrecs;
		ln_event ev = {.type = LN_EV_DURABLE,
			       .write_id = r->act.ld.write_id};
		rd_step(r, &ev);
	}
	release(r);
	return persist(r);
}
#endif

int rd_flush(rd_round *r)
{
#ifdef LD_MUTANTS
	if (r->mutant_send_early && !r->writing)
		return flush_early(r);
#endif
	if (!r->writing)
		release(r);
	if (persist(r) != 0)
		return -1;
	release(r);
	assert(r->persisted == r->act.ld.nrecs && r->sent == r->act.ld.nmsgs);
	return 0;
}
