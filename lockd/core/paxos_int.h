/* The Paxos replica's internals, shared by paxos*.c: its state (struct
 * px_replica and what it holds), small inline helpers, and the functions one
 * file of the replica calls in another (prefix pxi_). Nothing outside
 * lockd/core/paxos*.c includes this. */
#ifndef PX_PAXOS_INT_H
#define PX_PAXOS_INT_H

#include "bytes.h"
#include "clients.h"
#include "mem.h"
#include "paxos.h"

#include <assert.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline bool ballot_zero(px_ballot b)
{
	return b.round == 0;
}

static inline uint32_t popcount64(uint64_t x)
{
	return (uint32_t)__builtin_popcountll(x);
}

static inline uint64_t id_bit(uint32_t id)
{
	return UINT64_C(1) << id;
}

/* for (FOR_IDS(j, mask)) visits the ids in a mask, lowest first. */
#define FOR_IDS(j, mask)                                               \
	uint64_t ids_##j = (mask), j = 0;                              \
	ids_##j != 0 && ((j = (uint64_t)__builtin_ctzll(ids_##j)), 1); \
	ids_##j &= ids_##j - 1

#ifdef LD_MUTANTS
#define MUTANT(r, m) ((r)->cfg.mutant == (m))
#else
#define MUTANT(r, m) 0
#endif

/* ---- replica state ------------------------------------------------------ */

typedef struct entry {
	uint64_t slot;     /* 0: the ring cell is empty */
	px_ballot vballot; /* acceptor: the vote cast for this slot */
	px_value *vvalue;  /* Invariant: non-NULL exactly when vballot is not
			      zero, and vballot <= promised (P1b) */
	px_value *chosen;  /* learner: the value known chosen */
	/* proposer, valid while pballot equals the leader's ballot */
	px_ballot pballot;
	px_value *pvalue;
	uint64_t acks; /* replicas (bit per id) that voted pvalue in pballot */
	uint64_t sent_us;
	/* candidate: highest-ballot vote reported in phase 1 (P3) */
	px_ballot p1ballot;
	px_value *p1value;
} entry;

typedef struct held_msg {
	px_msg *msg;
	uint64_t write_id;
} held_msg;

typedef struct pending_cmd {
	px_cmd cmd; /* data malloc'd */
} pending_cmd;

typedef struct waiter {
	uint64_t client_id, seq;
} waiter;

/* Where the waiter for (client_id, seq) sits in px_replica.waiters. */
typedef struct waiter_ix {
	uint64_t client_id, seq;
	uint32_t i;
} waiter_ix;

/* A configuration and the first slot it governs (paxos.h: membership). */
typedef struct conf {
	uint64_t from;
	px_members m;
	uint64_t voters; /* ids that vote */
	uint64_t all;    /* ids that are members, voting or learning */
	uint32_t quorum; /* a majority of voters */
} conf;

/* A membership change submitted here, waiting to be applied. */
typedef struct change_req {
	uint64_t change_id, tag; /* tag: the decree command's seq */
} change_req;

struct px_replica {
	px_config cfg;
	px_sm *sm;
	uint64_t rng;

	/* membership: the configurations that govern slots after commit,
	 * oldest first. Invariant: nconfs >= 1, confs[0].from <= commit + 1,
	 * from strictly increasing, each quorum a majority of its voters. */
	conf *confs;
	uint32_t nconfs;
	size_t confs_cap;
	bool leaving;             /* applied its own removal */
	uint64_t resign_until_us; /* PX_EV_RESIGN: no candidacy before */
	bool told_removed;        /* a member said our id left the cell */
	change_req *chreqs;
	uint32_t nchreqs;
	size_t chreqs_cap;
	uint64_t change_tag;
	uint64_t peer_commit[LD_REPLICA_IDS], peer_inc[LD_REPLICA_IDS];

	/* acceptor. Invariant: promised.round < PX_ROUND_MAX and <= max_round;
	 * it only grows, within a life of the process */
	px_ballot promised;

	/* recovery (paxos.h): a replica without a JOINED record learns but
	 * neither promises nor votes until it is safe to */
	bool joined;              /* a JOINED record was restored or written */
	bool recover_known;       /* recover_above (M) is known */
	px_ballot recover_above;  /* M: vote only under a leader above it */
	px_ballot recover_ballot; /* the leader above M seen, or zero */
	uint64_t recover_horizon; /* its highest proposed slot (H) */
	uint64_t started_us;      /* first step */
	uint64_t probe_round, probe_at_us, probe_eligible_round;
	uint64_t nudge_at_us;
	struct probe_ack {
		uint64_t round; /* the probe round it answered; 0: none */
		px_ballot promised;
		bool voter, empty;
	} probe_acks[LD_REPLICA_IDS];

	/* log: slots [log_start, log_start + LD_LOG_SLOTS_MAX) */
	entry log[LD_LOG_SLOTS_MAX];
	uint64_t log_start; /* Invariant: log_start <= commit + 1; a cell holds
			       a slot of its residue class, or 0 */
	uint64_t commit;    /* every slot <= commit is chosen and applied.
			       Invariant: snap_base <= commit < log_start +
			       LD_LOG_SLOTS_MAX, and after a step slot
			       commit + 1 is not known chosen (all applied) */
	uint64_t snap_base; /* Invariant: <= commit */
	uint8_t *snap;      /* the snapshot at snap_base (client table + sm) */
	size_t snap_len;
	uint64_t snap_sum;          /* px_checksum(snap, snap_len) */
	uint64_t bytes_since_snap;  /* decree bytes applied after snap_base */
	uint64_t snap_ask_after_us; /* snapshot_async: a capture is asked
				       for no sooner than this (one is
				       outstanding, or the last failed) */

	/* roles */
	px_role role;
	px_ballot ballot;   /* proposer's ballot while candidate/leader.
			       Invariant then: nonzero, ballot.id == cfg.id
			       (P1), ballot.round <= max_round */
	uint64_t max_round; /* highest round seen anywhere */
	int32_t leader;     /* believed leader, or -1. Invariant: -1 <= leader <
			       LD_REPLICA_IDS */
	px_ballot leader_ballot;
	uint64_t heard_us;       /* last message from that leader */
	uint64_t election_at_us; /* follower: campaign at this time */
	uint64_t now_us;

	/* candidate */
	uint64_t p1_from, p1_max;
	uint64_t promises;    /* ids that promised our ballot */
	uint64_t p1_ext_from; /* leader: phase 1 asked of more voters */
	uint64_t cand_started_us, p1_sent_us;

	/* leader */
	uint64_t lead_since_us;
	/* The leader itself did not step for longer than two heartbeats (a
	 * slow sync held its loop): it sent no heartbeats meanwhile, so its
	 * peers' silence says nothing of them until this time (one election
	 * timeout after it resumed); check-quorum waits for it. */
	uint64_t quorum_grace_until_us;
	uint64_t next_slot; /* Invariant (leader): commit + 1 <= next_slot <=
			       log_start + LD_LOG_SLOTS_MAX */
	uint64_t heartbeat_at_us;
	/* linearizable reads (ReadIndex): a read waits for a heartbeat round
	 * sent after it arrived to be answered by a quorum at our ballot, and
	 * for commit to reach the highest slot proposed when it arrived. */
	uint64_t hb_seq;                   /* rounds sent */
	uint64_t hb_acked[LD_REPLICA_IDS]; /* highest round each answered */
	bool hb_wanted;                    /* a read waits for a round */
	struct pending_read {
		uint64_t id, need, index;
	} * preads;
	uint32_t npreads, preads_cap;
	uint64_t peer_heard_us[LD_REPLICA_IDS];
	pending_cmd *pending;             /* ring */
	uint32_t pending_head, pending_n; /* Invariant: both within
					     LD_PENDING_CMDS_MAX */

	/* commands submitted here, waiting to be applied */
	waiter *waiters;
	uint32_t nwaiters, waiters_cap;
	/* Invariant: one waiter_ix for each waiter, naming its index: a
	 * command's waiter is found in O(1) as each one applies. */
	mem_idtab waiter_ix;

	/* state digests at every LD_DIGEST_EVERY_SLOTS-th slot (a ring), and
	 * what comparing them found */
	struct ckpt {
		uint64_t slot, digest;
	} ckpts[LD_DIGEST_KEEP], peer_ckpt[LD_REPLICA_IDS];
	uint32_t ckpt_next;   /* Invariant: < LD_DIGEST_KEEP */
	struct ckpt verified; /* leader: the latest a quorum shares with us */
	px_digest_alarm digest_alarm;

	/* follower catch-up */
	uint64_t catchup_sent_us;
	/* Catch-up answers are taken only from the replica last asked, for a
	 * while after asking: a stray or forged CATCHUP or SNAPSHOT that
	 * nobody asked for is dropped. */
	int32_t catchup_to;
	uint64_t catchup_asked_us;
	/* A snapshot coming in chunks (base 0: none): the first have bytes
	 * of the one at base, whose length and checksum are total and sum.
	 * Invariant: have <= total <= LD_SNAPSHOT_BYTES_MAX, have <= cap. */
	struct snap_rx {
		uint64_t base, total, sum, have;
		uint8_t *buf;
		size_t cap;
	} rx;
	uint64_t known_commit; /* highest commit anyone told us */
	int32_t known_commit_from;
	/* When catch-up last moved this replica on (decrees learned, a
	 * snapshot chunk taken): while it does, the replica does not
	 * campaign (on_tick), so a replica restarting far behind, slow with
	 * a large table, does not depose a leader it cannot replace. */
	uint64_t catchup_progress_us;

	/* durability. Invariant: durable_id <= last_write_id, and every held
	 * message waits for a write in (durable_id, last_write_id] */
	uint64_t last_write_id, durable_id;
	held_msg *held;
	uint32_t nheld, held_cap;

	/* steps taken (LD_CHECKS: which of them check deeply) */
	uint64_t steps;

	/* exactly-once (clients.h): at most LD_CLIENTS_MAX */
	px_clients clients;
};

static inline entry *entry_at(px_replica *r, uint64_t slot)
{
	if (slot < r->log_start || slot >= r->log_start + LD_LOG_SLOTS_MAX)
		return NULL;
	entry *e = &r->log[slot % LD_LOG_SLOTS_MAX];
	if (e->slot != slot) {
		/* Only empty cells or stale cells below log_start get reused.
		 */
		assert(e->slot == 0 || e->slot < r->log_start);
		return NULL;
	}
	return e;
}

static inline const entry *entry_at_c(const px_replica *r, uint64_t slot)
{
	return entry_at((px_replica *)r, slot);
}

typedef struct change_dec {
	px_change_op op;
	uint32_t id;
	uint64_t incarnation;
	char peer[LD_URL_BYTES_MAX], client[LD_URL_BYTES_MAX];
} change_dec;

/* ---- paxos.c ----------------------------------------------------------- */

uint64_t pxi_rng_next(px_replica *r);
entry *pxi_entry_get(px_replica *r, uint64_t slot);
void pxi_log_truncate(px_replica *r, uint64_t start);
client_ent *pxi_client_find(px_replica *r, uint64_t id);
px_msg *pxi_msg_new(px_replica *r, px_msg_type type, uint32_t to);
void pxi_emit(px_replica *r, px_actions *out, px_msg *m);
void pxi_emit_after_sync(px_replica *r, px_actions *out, px_msg *m);
void pxi_persist(px_replica *r, px_actions *out, px_record rec);
void pxi_persist_promise(px_replica *r, px_actions *out);
void pxi_reply(px_replica *r, px_actions *out, uint64_t client_id, uint64_t seq,
	       px_reply_status st, const client_ent *c);
int pxi_waiter_find(px_replica *r, uint64_t client_id, uint64_t seq);
void pxi_waiter_add(px_replica *r, uint64_t client_id, uint64_t seq);
void pxi_waiter_remove(px_replica *r, int i);
void pxi_pending_drop_all(px_replica *r, px_actions *out);
uint64_t pxi_election_delay(px_replica *r);

/* ---- paxos_synod.c ----------------------------------------------------- */

void pxi_apply_value(px_replica *r, px_actions *out, uint64_t slot,
		     px_value *v);
void pxi_advance(px_replica *r, px_actions *out);
void pxi_learn(px_replica *r, uint64_t slot, px_value *v);
void pxi_become_follower(px_replica *r, px_actions *out, uint64_t now);
void pxi_send_prepares(px_replica *r, px_actions *out);
void pxi_changes_fail_all(px_replica *r, px_actions *out);
void pxi_start_candidacy(px_replica *r, px_actions *out);
void pxi_send_accept(px_replica *r, px_actions *out, entry *e, uint32_t to);
void pxi_send_commits(px_replica *r, px_actions *out);
void pxi_flush_pending(px_replica *r, px_actions *out);
void pxi_note_ballot(px_replica *r, px_ballot b);
void pxi_note_commit(px_replica *r, const px_msg *m);
void pxi_requeue_proposals(px_replica *r, px_actions *out);
void pxi_handle_msg(px_replica *r, const px_msg *m, px_actions *out);
void pxi_on_submit(px_replica *r, const px_cmd *cmd, px_actions *out);
/* ---- paxos_reads.c ------------------------------------------------------ */
void pxi_on_read(px_replica *r, uint64_t id, px_actions *out);
/* Answers every waiting read "not leader" (this replica stepped down). */
void pxi_reads_fail_all(px_replica *r, px_actions *out);
void pxi_reads_check(px_replica *r, px_actions *out);

/* ---- paxos_members.c --------------------------------------------------- */

void pxi_conf_fill(conf *c, const px_members *m, uint64_t from, bool minority);
conf *pxi_conf_push(px_replica *r);
const conf *pxi_conf_at(const px_replica *r, uint64_t slot);
const conf *pxi_conf_latest(const px_replica *r);
void pxi_conf_prune(px_replica *r);
uint64_t pxi_peers_mask(const px_replica *r);
uint64_t pxi_voters_mask(const px_replica *r);
bool pxi_quorum_in(const conf *c, uint64_t mask);
bool pxi_quorum_all(const px_replica *r, uint64_t mask);
bool pxi_gone(const px_replica *r);
bool pxi_votes_now(const px_replica *r);
void pxi_change_done(px_actions *out, uint64_t change_id, px_change_status st,
		     int32_t hint, uint64_t slot, const char *why);
const char *pxi_apply_change(px_replica *r, px_actions *out, uint64_t slot,
			     const px_cmd *cmd);
void pxi_on_change(px_replica *r, uint64_t id, const px_change *c,
		   px_actions *out);
void pxi_maybe_promote(px_replica *r, px_actions *out);
void pxi_maybe_hand_over(px_replica *r, px_actions *out);
void pxi_on_resign(px_replica *r, px_actions *out);

/* ---- paxos_recovery.c -------------------------------------------------- */

void pxi_join(px_replica *r, px_actions *out, px_ballot b);
void pxi_send_probes(px_replica *r, px_actions *out);
void pxi_on_probe(px_replica *r, const px_msg *m, px_actions *out);
void pxi_on_probe_ack(px_replica *r, const px_msg *m, px_actions *out);
void pxi_recover_heard_leader(px_replica *r, const px_msg *m, px_actions *out);
void pxi_recovery_step(px_replica *r, px_actions *out);

/* ---- paxos_catchup.c --------------------------------------------------- */

void pxi_put_u32(uint8_t **p, uint32_t v);
void pxi_put_u64(uint8_t **p, uint64_t v);
int pxi_get_u32(const uint8_t **p, const uint8_t *end, uint32_t *v);
int pxi_get_u64(const uint8_t **p, const uint8_t *end, uint64_t *v);
void pxi_put_str(uint8_t **p, const char *s);
int pxi_get_str(const uint8_t **p, const uint8_t *end, char *s);
int pxi_install_snapshot(px_replica *r, const uint8_t *snap, size_t len,
			 uint64_t base);
void pxi_maybe_snapshot(px_replica *r, px_actions *out);
/* PX_EV_SNAPSHOT: a capture comes back (ev->snap taken). */
void pxi_on_capture(px_replica *r, const px_event *ev, px_actions *out);
void pxi_maybe_catchup(px_replica *r, px_actions *out);
void pxi_on_catchup_req(px_replica *r, const px_msg *m, px_actions *out);
void pxi_on_catchup(px_replica *r, const px_msg *m, px_actions *out);
void pxi_on_snapshot(px_replica *r, const px_msg *m, px_actions *out);
/* Forgets a snapshot half received. */
void pxi_snap_rx_drop(px_replica *r);

/* ---- paxos_digest.c ---------------------------------------------------- */

void pxi_ckpt_note(px_replica *r, uint64_t slot, uint64_t digest);
const struct ckpt *pxi_ckpt_find(const px_replica *r, uint64_t slot);
const struct ckpt *pxi_ckpt_latest(const px_replica *r);
void pxi_digest_alarm_raise(px_replica *r, px_digest_alarm a);
void pxi_digest_compare(px_replica *r, uint64_t slot);

#endif
