/* One round of a replica: the order in which its node is stepped, its
 * records are written and its messages and replies leave. The daemon runs
 * rounds over RocksDB and nng (lockd/daemon/server.c); the simulator runs
 * the very same rounds over its in-memory disk and network (test/sim), so
 * the ordering the safety argument rests on is checked on every step.
 *
 * A round:
 *  1. rd_begin; rd_step once per event taken (peer messages, one
 *     LN_EV_REQUEST for all the client requests taken together, a TICK);
 *  2. rd_flush:
 *     a. sends every message the steps produced, and every reply and
 *        membership answer: the core holds back each message that depends
 *        on a record (promises, votes) until that record is durable
 *        (paxos.h), so these may overlap this replica's write; a reply
 *        answers a decree already chosen (a majority made it durable
 *        before voting: this replica's own vote counts only after its
 *        DURABLE), a read, or a refusal; none waits for this round's
 *        records, which are votes for later slots;
 *     b. writes the round's records in one call (synced unless they are
 *        only PX_REC_CHOSEN hints, which nothing waits for), and steps
 *        LN_EV_DURABLE with the write's id, repeating while that step
 *        makes new records;
 *     c. only then sends what the durable writes released.
 * No promise or vote leaves before the record behind it is durable, and no
 * reply depends on a record not yet durable, so a crash at any instant
 * loses nothing acknowledged.
 *
 * A write that fails leaves the round where it stopped: rd_flush returns
 * -1 with the sentence in error, the node is not told, and the next
 * rd_flush writes the same records again (the caller steps nothing
 * meanwhile) and carries on at c. */
#ifndef RD_ROUND_H
#define RD_ROUND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "node.h"

/* What a round needs from the world. Each callback gets ctx. */
typedef struct rd_io {
	void *ctx;
	/* The replica's monotonic clock, in µs: every event's now_us. */
	uint64_t (*now_us)(void *ctx);
	/* Sends one peer message (copied or encoded: the round frees it). */
	void (*send)(void *ctx, const px_msg *m);
	/* Answers one client request. */
	void (*reply)(void *ctx, const ln_reply *rp);
	/* Answers one membership change. */
	void (*change)(void *ctx, const px_change_done *d);
	/* Makes n records durable (sync: synced before it returns), in
	 * order, as one atomic batch. 0, or -1 with a sentence in err. A
	 * PX_REC_SNAPSHOT among them may instead be taken (its snap set to
	 * NULL) and written later, out of order: nothing waits for one
	 * (ds_write_snapshot_later says why that is safe); only on success. */
	int (*write)(void *ctx, px_record *recs, size_t n, bool sync, char *err,
		     size_t errlen);
	/* px_config.snapshot_async: a step asked for a snapshot. Capture the
	 * node's state now, before the next step (ln_node_capture, in a
	 * forked child say), and step LN_EV_SNAPSHOT with it when it is
	 * encoded; or ignore it while a capture is still under way. */
	void (*capture)(void *ctx);
} rd_io;

typedef struct rd_round {
	ln_node *node;
	rd_io io;
	/* What this round's steps asked for; kept across rd_flush calls
	 * while a write fails. */
	ln_actions act;
	/* Invariant: sent <= act.ld.nmsgs, answered <= act.nreplies,
	 * changed <= act.ld.nchanges, persisted <= act.ld.nrecs: what of act
	 * has left or is durable. */
	size_t sent, answered, changed, persisted;
	uint64_t rounds; /* rounds begun */
	bool writing;    /* a write failed: rd_flush must be called again */
	/* PX_MUTANT_ROUND_SEND_EARLY: tells the node its records are durable
	 * before writing them, and sends everything at once. Only the
	 * simulator's build (LD_MUTANTS) looks at it; the field is in every
	 * build so that the struct is the same in both. */
	bool mutant_send_early;
	char error[512]; /* the failed write's sentence */
} rd_round;

void rd_init(rd_round *r, ln_node *node, const rd_io *io);
void rd_free(rd_round *r);

/* Starts a round: forgets the last round's actions. Must not be called
 * while a write is failing (r->writing). */
void rd_begin(rd_round *r);

/* Steps the node once (ev->now_us is filled in from the clock); returns
 * what ln_node_step returned. */
int rd_step(rd_round *r, ln_event *ev);

/* 2 above: 0 when the round is done, -1 when a write failed. */
int rd_flush(rd_round *r);

#endif
