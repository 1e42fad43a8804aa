/* The node's internals, shared by node.c and node_leader.c: its state and
 * the functions one calls in the other (prefix lni_). Nothing outside
 * lockd/core/node*.c includes this. */
#ifndef LN_NODE_INT_H
#define LN_NODE_INT_H

#include "node.h"

#include <assert.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "mem.h"

#ifdef LD_MUTANTS
#define MUTANT(n, m) ((n)->cfg.paxos.mutant == (m))
#else
#define MUTANT(n, m) 0
#endif

/* Commands the leader writes on its own behalf use a client id no session
 * can have: the top bit set, plus the replica id. Their sequence numbers
 * start from the ballot round, so a later leadership never reuses one. */
#define INTERNAL_CLIENT (1ULL << 63)

/* A write waiting for its decree (or, for a queued ACQUIRE, its grant). */
typedef struct outstanding {
	uint64_t req_id, session, seq;
	ln_req_type type;
	uint32_t wait_ms;
	bool queued; /* ACQUIRE that got QUEUED: waits for GRANTED */
	bool gone;   /* its client went away (LN_EV_GONE): nobody to answer */
	/* In the step that queued it: the journal index of its QUEUED entry.
	 * Only later entries may answer it (a catch-up can apply an older
	 * grant to the same session in the same step). -1 afterwards. */
	int64_t queued_idx;
	char name[LS_NAME_BYTES_MAX];
	uint32_t name_len;
} outstanding;

/* How many outstanding writes have one (session, seq) (retries can make
 * more than one), and where the one is when there is one: a ledger reply
 * finds its write without a scan of every outstanding write. */
typedef struct outs_ix {
	uint64_t session, seq;
	uint32_t count, pos;
} outs_ix;

/* The RENEWED entries of one (session, slot) in the journal: count of
 * them, none before first or after last. */
typedef struct renew_ix {
	uint64_t session, slot;
	uint64_t first, last;
	uint32_t count;
} renew_ix;

/* The leader's view of one live lease. */
typedef struct deadline {
	uint64_t token; /* 0: free cell (open addressing) */
	uint32_t renewals;
	uint32_t ttl_ms;
	uint64_t deadline_us;
	uint64_t expire_sent_us; /* 0: no EXPIRE in flight */
	uint64_t due_us;         /* the one heap entry that is current for it */
	uint64_t stamp_ms;
} deadline;

typedef struct due {
	uint64_t at_us;
	uint64_t token;
} due;

typedef struct wait_timer {
	uint64_t session;
	uint64_t at_us;
	uint64_t cancel_sent_us;
	char name[LS_NAME_BYTES_MAX];
	uint32_t name_len;
} wait_timer;

/* A linearizable read waiting for its ReadIndex confirmation (paxos.h,
 * PX_EV_READ). */
typedef struct lin_read {
	uint64_t read_id;
	ln_request req; /* name points into name[] when answered */
	char name[LS_NAME_BYTES_MAX];
} lin_read;

struct ln_node {
	ln_config cfg;
	ls_table *table;
	px_replica *rep;
	uint64_t now_us;
	bool leading; /* Invariant (after a step): the replica's role is
			 PX_LEADER; when false, the leader-only state below is
			 empty and no outstanding request is queued */
	uint64_t leading_round;
	uint64_t tick_base_ms; /* the ledger clock when this term began */
	/* A new leader rebuilds the deadlines of the table's leases a slice
	 * at a time (lni_takeover_step), so that a large table does not stop
	 * its first round for longer than an election timeout: the names up
	 * to takeover_after are done. */
	bool takeover_pending;
	uint32_t takeover_after_len;
	char takeover_after[LD_LEASE_NAME_BYTES_MAX];

	outstanding *outs;
	uint32_t nouts; /* Invariant: <= LD_PENDING_CMDS_MAX */
	/* Invariant: one outs_ix per (session, seq) among outs, counting
	 * them; when there is one, pos is where it is. */
	mem_idtab outs_ix;
	/* While the ledger's replies of a step are answered: where each
	 * (session, slot)'s RENEWED entries lie in the table's journal
	 * (renew_ix records), built at the first RENEW answered, so that a
	 * decree of 256 RENEWs of 1,000 leases each is not a walk over the
	 * whole journal per answer. Empty between answering passes. */
	mem_idtab renew_ix;
	bool renew_ix_built;
	size_t outs_cap;
	lin_read *lins;
	uint32_t nlins;
	size_t lins_cap;
	uint64_t read_seq; /* the last PX_EV_READ id */

	/* leader only */
	mem_idtab dls; /* deadline records by token */
	due *heap;     /* Invariant: a min-heap by at_us, holding every
			  deadline's current entry (and stale ones) */
	uint32_t nheap;
	size_t heap_cap;
	wait_timer *waits;
	uint32_t nwaits;
	size_t waits_cap;
	uint64_t last_tick_us;
	uint64_t internal_seq;
	/* the leader's own commands of this step, submitted together */
	uint8_t *batch; /* LD_BATCH_CMDS_MAX x LD_CMD_BYTES_MAX */
	px_cmd batch_cmds[LD_BATCH_CMDS_MAX];
	uint32_t nbatch;

	ln_stats stats;
	uint64_t steps; /* LD_CHECKS: which steps check deeply */
};

struct takeover_ctx {
	ln_node *n;
	uint64_t clock_ms;
	uint32_t seen; /* leases this slice reached */
};

struct renew_walk {
	uint64_t session;
	ln_reply *rp;
};

/* A write's place in one LN_EV_REQUEST: sessions in the order their first
 * write arrived, each session's writes by seq, then arrival. */
typedef struct req_order {
	uint64_t session, seq;
	uint32_t idx, first;
} req_order;

/* ---- node_leader.c ----------------------------------------------------- */

deadline *lni_dl_find(ln_node *n, uint64_t token);
deadline *lni_dl_upsert(ln_node *n, uint64_t token);
void lni_dl_remove(ln_node *n, uint64_t token);
void lni_dl_arm(ln_node *n, deadline *d, uint64_t deadline_us);
void lni_waits_remove(ln_node *n, const char *name, uint32_t len,
		      uint64_t session);
void lni_waits_add(ln_node *n, const char *name, uint32_t len, uint64_t session,
		   uint64_t at_us);
void lni_leader_clear(ln_node *n);

/* node_journal.c: the step's journal, for the answers of its replies. */
void lni_fill_renewed(ln_node *n, ln_reply *rp, uint64_t slot);
void lni_renew_ix_drop(ln_node *n); /* after a pass of answers */
int64_t lni_queued_index(ln_node *n, const outstanding *o, uint64_t slot);
bool lni_granted_at(ln_node *n, const outstanding *o, uint64_t slot,
		    uint64_t token);
void lni_takeover(ln_node *n);
/* Rebuilds the deadlines of up to cfg.takeover_step_leases more leases. */
void lni_takeover_step(ln_node *n);
void lni_flush_internal(ln_node *n, ln_actions *out);
bool lni_queue_cmd(ln_node *n, ln_actions *out, uint64_t client_id,
		   uint64_t seq, ls_cmd *c);
void lni_submit_internal(ln_node *n, ln_actions *out, ls_cmd *c);
void lni_propose_expiries(ln_node *n, ln_actions *out);
void lni_propose_cancels(ln_node *n, ln_actions *out);
void lni_propose_tick(ln_node *n, ln_actions *out);
uint64_t lni_leader_timer(const ln_node *n);

#endif
