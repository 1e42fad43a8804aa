/* lockd's replicated ledger: one Multi-Paxos replica (acceptor, proposer,
 * learner) as a pure step function.
 *
 *   px_replica_step(r, event, &actions)
 *
 * Events: a peer message arrived, a timer fired, a write became durable, a
 * client submitted a command. Actions: records to make durable, messages to
 * send, decrees that were chosen (and applied), replies to clients, the next
 * timer. The core never reads a clock (time comes in the event), never
 * touches a socket or a disk, and draws randomness from a seeded generator.
 *
 * Durability contract with the caller (the daemon or the simulator):
 *  - actions.recs must be made durable, in order, and then the caller reports
 *    PX_EV_DURABLE with actions.write_id (several writes may be reported at
 *    once with the highest id: durability is a prefix).
 *  - Messages whose correctness depends on a record (promises, votes) are held
 *    inside the core and only appear in actions.msgs after their write is
 *    durable. Everything in actions.msgs may be sent at once, in any order.
 *  - On restart, the caller builds a fresh replica with px_replica_new and
 *    feeds it every durable record with px_replica_restore: the newest
 *    SNAPSHOT first (if any), then the rest oldest first.
 *
 * Recovery (Paxos Made Live, 5.1). A replica whose disk holds no JOINED
 * record may have lost promises and votes it once gave, so it must not
 * promise or vote until that is safe. It starts as a learner and PROBEs
 * every other replica:
 *  - if every other replica answers that it holds no vote and has applied
 *    nothing, and so does this one, nothing was ever chosen (that needs
 *    votes on a majority, and at most a minority of disks is ever lost):
 *    it is the first start of a new cell (or one that never chose
 *    anything), and the replica joins at once, promising the highest
 *    promise any of them reported, which is at least every ballot it may
 *    have promised before (that ballot's proposer promised it first);
 *  - otherwise, once n - q + 1 voters answered (q the quorum), every ballot
 *    the replica promised before it lost its disk was promised by q - 1
 *    others, one of whom answered: M, the highest promise reported, is at
 *    least every ballot it ever promised. It waits for a leader with a
 *    ballot B > M (asking the current leader to run phase 1 again above M
 *    if need be). B's phase 1 was answered by a quorum without it, so B's
 *    leader proposes, for every slot, what could have been chosen before.
 *    The leader's COMMIT names the highest slot it has proposed, H; once
 *    this replica has learned every slot up to H it knows every value
 *    that its lost votes could have helped choose, promises B, writes
 *    JOINED and votes from then on. Its promises carry what it knows
 *    chosen (px_vote.chosen), so a later phase 1 that counts it still
 *    learns those values.
 */
#ifndef PX_PAXOS_H
#define PX_PAXOS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ld_limits.h"
#include "ld_mutant.h"
#include "sm.h"
#include "value.h"

/* P1: ballots are (round, replica id), compared by round then id, so no two
 * replicas ever use the same ballot. Round 0 is "none". */
typedef struct px_ballot {
	uint64_t round;
	uint32_t id;
} px_ballot;

int px_ballot_cmp(px_ballot a, px_ballot b);

/* ---- peer messages ---------------------------------------------------- */

typedef enum px_msg_type {
	PX_MSG_PREPARE = 1, /* 1a: ballot, slot = first slot the leader needs */
	PX_MSG_PROMISE,     /* 1b: ballot promised, votes for slots >= slot,
			       base = acceptor's snapshot base */
	PX_MSG_ACCEPT,      /* 2a: ballot, slot, value, commit */
	PX_MSG_ACCEPTED,    /* 2b: ballot, slot */
	PX_MSG_REJECT,      /* nack: ballot = the higher ballot promised;
			       slot = the 1a/2a slot it answers; base */
	PX_MSG_COMMIT,     /* heartbeat + commit announcement: ballot, commit */
	PX_MSG_COMMIT_ACK, /* heartbeat answer: ballot, commit = sender's */
	PX_MSG_CATCHUP_REQ, /* slot = first chosen slot wanted; base,
			       snap_off, snap_sum: the snapshot the sender
			       has received the first snap_off bytes of
			       (base 0: none), to go on from there */
	PX_MSG_CATCHUP,     /* votes[] = chosen decrees (ballot unused),
			       commit = sender's commit */
	PX_MSG_SNAPSHOT,    /* one chunk: bytes [snap_off, snap_off +
			       snap_len) of the snapshot at base, which has
			       snap_total bytes and checksum snap_sum
			       (px_checksum); commit */
	PX_MSG_PROBE,       /* from a replica that is not (yet) a voter:
			       "what do you hold?"; ballot = the ballot a
			       new leader must exceed before the prober can
			       vote (0: none known yet) */
	PX_MSG_PROBE_ACK,   /* ballot = sender's promise, commit, base,
			       flags: PX_FLAG_VOTER when the sender votes,
			       PX_FLAG_HAS_VOTES when it holds a vote,
			       PX_FLAG_REMOVED when the prober's id was
			       removed from the cell */
} px_msg_type;

#define PX_MSG_TYPE_MAX PX_MSG_PROBE_ACK

/* px_msg.flags */
#define PX_FLAG_VOTER 1u
#define PX_FLAG_HAS_VOTES 2u /* PROBE_ACK: the sender holds a vote */
#define PX_FLAG_REMOVED 4u   /* PROBE_ACK: your id left the cell */
#define PX_FLAG_HANDOVER                                                 \
	8u                   /* COMMIT: the leader leaves the cell: stop \
				waiting for it */
#define PX_FLAG_CAMPAIGN 16u /* COMMIT with HANDOVER: campaign at once */

/* Ballot rounds from this one up are refused from the wire: a round can never
 * wrap, however many elections a cell holds (2^62 at a million a second is
 * longer than the sun will shine). */
#define PX_ROUND_MAX LD_ROUND_MAX

typedef struct px_vote {
	uint64_t slot;
	px_ballot ballot;
	px_value *value; /* one reference, owned by the message */
	bool chosen;     /* PROMISE: the sender knows value chosen at slot
			    (ballot unused); CATCHUP: always */
} px_vote;

typedef struct px_msg {
	px_msg_type type;
	uint32_t from, to;
	px_ballot ballot;
	uint64_t slot;
	uint64_t
		commit; /* sender's chosen prefix: slots <= commit are chosen */
	uint64_t base;  /* sender's snapshot base */
	uint32_t flags; /* PX_FLAG_* */
	uint64_t hb;    /* COMMIT: the leader's heartbeat round; COMMIT_ACK:
			   the round it answers (linearizable reads) */
	/* COMMIT: the leader's latest state digest, at dslot (a multiple of
	 * digest_every_slots; 0: none yet), and the latest one a quorum has
	 * confirmed, at vslot; COMMIT_ACK: the sender's digest at the dslot
	 * it answers (0: it has none). */
	uint64_t dslot, digest, vslot, vdigest;
	/* COMMIT_ACK, PROBE: the sender's disk incarnation (px_config) */
	uint64_t incarnation;
	px_value *value; /* ACCEPT only; one reference owned by the message */
	uint32_t nvotes;
	px_vote *votes; /* malloc'd, owned by the message */
	uint32_t snap_len;
	uint8_t *snap; /* malloc'd, owned by the message */
	/* SNAPSHOT, CATCHUP_REQ: where the chunk lies in which snapshot */
	uint64_t snap_off, snap_total, snap_sum;
} px_msg;

/* Frees a message and drops its value references. NULL-safe. */
void px_msg_free(px_msg *m);

/* A deep-enough copy (values shared by reference). NULL when out of memory. */
px_msg *px_msg_dup(const px_msg *m);

/* Checks a decoded message's shape before it reaches the core (ids in range,
 * sizes within limits, required fields present). 0 if well-formed. */
int px_msg_validate(const px_msg *m, uint32_t nreplicas);

/* ---- membership ---------------------------------------------------------
 *
 * The set of replicas is part of the replicated state: a membership decree
 * chosen at slot s changes the configuration used for slots s + PX_ALPHA on
 * (the Part-Time Parliament's alpha; the leader never proposes beyond
 * commit + window_slots <= PX_ALPHA, so it always knows the configuration of
 * every slot it proposes in). Each slot's synod runs with that one fixed
 * configuration: its quorums (both phases) are majorities of the voting
 * members of config(slot). A leader whose phase-1 promises do not hold a
 * majority of config(slot) asks the missing voters (PREPARE, same ballot)
 * before it proposes there.
 *
 * Changes, one at a time (the leader refuses a second while one is not yet
 * in effect): ADD an id as a non-voting learner (it catches up, by snapshot
 * if need be); PROMOTE it to voter, which the leader proposes by itself once
 * the learner has caught up, naming the learner's disk incarnation (a
 * learner that applies its own promotion with its own incarnation has never
 * voted with this disk and joins at once; any other replica without JOINED
 * recovers as paxos.h's Recovery says); REMOVE an id (a leader that removes
 * itself hands over). Applying a change is idempotent (ADD of a member, or of
 * a removed id, changes nothing), so a replica that replays decrees onto a
 * configuration it was given ends where the others do. */

#define PX_ALPHA LD_WINDOW_SLOTS_MAX

/* Membership decrees are commands of this client id (the cell's own: the
 * lease node's sessions never have the top bit). */
#define PX_MEMBERS_CLIENT UINT64_MAX

typedef struct px_member {
	uint32_t id; /* < LD_REPLICA_IDS */
	bool voting;
	uint64_t incarnation; /* PROMOTE named it; 0 for the first members */
	char peer[LD_URL_BYTES_MAX];   /* NUL-terminated; may be empty */
	char client[LD_URL_BYTES_MAX]; /* NUL-terminated; may be empty */
} px_member;

typedef struct px_members {
	uint32_t n;
	px_member m[LD_REPLICAS_MAX]; /* by increasing id */
	uint64_t removed;             /* bit i: id i left the cell for good */
} px_members;

typedef enum px_change_op {
	PX_CHANGE_ADD = 1, /* id, peer, client: a new learner */
	PX_CHANGE_REMOVE,  /* id */
	PX_CHANGE_PROMOTE, /* id, incarnation: the learner votes */
} px_change_op;

typedef struct px_change {
	px_change_op op;
	uint32_t id;
	uint64_t incarnation;
	const char *peer, *client; /* ADD; borrowed; < LD_URL_BYTES_MAX */
} px_change;

typedef enum px_change_status {
	PX_CHANGE_DONE = 0,   /* applied at slot; in effect from slot+PX_ALPHA
			       (the learner of an ADD votes only once the
			       leader promotes it) */
	PX_CHANGE_NOT_LEADER, /* leader_hint */
	PX_CHANGE_REFUSED,    /* why says it */
	PX_CHANGE_BUSY,       /* another change is in flight: retry once it is
			       in effect (why says from which position) */
} px_change_status;

typedef struct px_change_done {
	uint64_t change_id;
	px_change_status status;
	int32_t leader_hint;
	uint64_t slot;
	char why[160];
} px_change_done;

/* The member entry for id in m, or NULL. */
const px_member *px_members_find(const px_members *m, uint32_t id);

/* ---- durable records -------------------------------------------------- */

typedef enum px_rec_type {
	PX_REC_PROMISE = 1, /* ballot: the acceptor promised it (P1b) */
	PX_REC_VOTE,        /* slot, ballot, value: the acceptor voted (P2b) */
	PX_REC_SNAPSHOT,    /* slot = base, snap: applied state at base; votes
			       for slots <= base may be dropped */
	PX_REC_CHOSEN,      /* slot, and either ballot (this replica's vote
			       in ballot at slot holds the chosen value) or
			       value (the chosen value itself, when no vote
			       of this replica holds it: learned by catch-up).
			       A hint for restore (the replica applies it at
			       once instead of waiting for the next leader to
			       choose it again): nothing waits for it to be
			       durable, and losing it loses nothing. */
	PX_REC_JOINED,      /* this replica is a voter: it formed a new cell
			       (every replica answered that it held nothing)
			       or it recovered from an empty disk. Without
			       it a replica only learns: see "Recovery"
			       at the top. */
} px_rec_type;

typedef struct px_record {
	px_rec_type type;
	px_ballot ballot;
	uint64_t slot;
	px_value *value; /* VOTE: one reference, owned by the record */
	uint32_t snap_len;
	uint8_t *snap; /* SNAPSHOT: malloc'd, owned by the record */
} px_record;

void px_record_clear(px_record *rec);

/* ---- client replies --------------------------------------------------- */

typedef enum px_reply_status {
	PX_REPLY_OK = 0,     /* applied at `slot`; result holds the SM's answer.
				A retry of a command older than the client's
				latest applied one gets OK with slot 0 and no
				result: it is settled (applied, or abandoned
				by the client and never to be applied), and
				its answer is gone. */
	PX_REPLY_NOT_LEADER, /* leader_hint names who to ask (or -1: unknown) */
	PX_REPLY_BUSY,       /* the leader's queue is full: retry later */
	PX_REPLY_INVALID,    /* the command is malformed (size, ids) */
} px_reply_status;

typedef struct px_reply {
	uint64_t client_id, seq;
	px_reply_status status;
	int32_t leader_hint;
	uint64_t slot; /* OK: the ledger position where the command applied */
	uint32_t result_len;
	uint8_t result[LD_RESULT_BYTES_MAX];
} px_reply;

/* ---- events and actions ------------------------------------------------- */

typedef enum px_event_type {
	PX_EV_MSG = 1,  /* msg arrived (the core does not take ownership) */
	PX_EV_TICK,     /* a timer fired (or any time the caller likes) */
	PX_EV_DURABLE,  /* every write with id <= write_id is durable */
	PX_EV_SUBMIT,   /* client commands cmd[0..ncmds) (data copied by the
			   core); proposed together, many per decree */
	PX_EV_READ,     /* a linearizable read, read_id (the caller's, never
			   0): answered in actions.reads once this leader
			   has applied every slot it has proposed and a
			   quorum answered a heartbeat sent after the read
			   arrived (ReadIndex: no decree, no disk write) */
	PX_EV_CHANGE,   /* a membership change, change (copied), with the
			   caller's change_id: answered in actions.changes */
	PX_EV_SNAPSHOT, /* a capture that actions.snapshot_want asked for
			   (px_config.snapshot_async): snap[0..snap_len)
			   with snap_sum, the state at snap_base, as
			   px_replica_capture made it; the core takes snap
			   (malloc'd). snap NULL: the capture failed, ask
			   again later. One at a base the replica has
			   passed (a snapshot installed since) is dropped. */
	PX_EV_RESIGN,   /* the caller cannot serve now (no file descriptors,
			   a disk that takes no writes): a leader hands over
			   to the most caught-up voter, and this replica does
			   not campaign until two election timeouts after the
			   last PX_EV_RESIGN */
} px_event_type;

typedef struct px_event {
	px_event_type type;
	uint64_t now_us; /* this replica's monotonic clock */
	const px_msg *msg;
	uint64_t write_id;
	const px_cmd *cmd;
	uint32_t ncmds; /* PX_EV_SUBMIT: 0 is taken as 1 */
	uint64_t read_id;
	const px_change *change;
	uint64_t change_id;
	uint8_t *snap; /* PX_EV_SNAPSHOT: taken by the core */
	size_t snap_len;
	uint64_t snap_base, snap_sum;
} px_event;

/* A linearizable read's outcome: ok, the replica's applied state answers
 * it now; !ok, this replica does not lead (ask the leader). */
typedef struct px_read_done {
	uint64_t read_id;
	bool ok;
} px_read_done;

typedef struct px_chosen {
	uint64_t slot;
	px_value *value;    /* one reference, owned by the actions */
	uint64_t sm_digest; /* state digest right after applying this slot */
} px_chosen;

typedef struct px_actions {
	/* Records to make durable, in order; then report PX_EV_DURABLE with
	 * write_id. write_id is 0 when there are none. */
	px_record *recs;
	size_t nrecs, recs_cap;
	uint64_t write_id;
	/* Messages to send now. The caller takes each pointer (px_msg_free). */
	px_msg **msgs;
	size_t nmsgs, msgs_cap;
	/* Decrees learned chosen and applied in this step, in ledger order. */
	px_chosen *chosen;
	size_t nchosen, chosen_cap;
	/* px_config.snapshot_async: capture a snapshot (px_replica_capture)
	 * before the next step, and hand it back with PX_EV_SNAPSHOT. */
	bool snapshot_want;
	/* A snapshot was installed in this step (chosen restarts after it). */
	bool installed_snapshot;
	uint64_t snapshot_base;
	/* Replies to clients who submitted at this replica. */
	px_reply *replies;
	size_t nreplies, replies_cap;
	/* Linearizable reads (PX_EV_READ) decided in this step. */
	px_read_done *reads;
	size_t nreads, reads_cap;
	/* Membership changes (PX_EV_CHANGE) answered in this step. */
	px_change_done *changes;
	size_t nchanges, changes_cap;
	/* The applied membership changed in this step (px_replica_members). */
	bool members_changed;
	/* Call PX_EV_TICK no later than this (local clock). */
	uint64_t timer_at_us;
} px_actions;

void px_actions_init(px_actions *a);
/* Drops everything still held (messages not taken are freed). Keeps buffers. */
void px_actions_reset(px_actions *a);
void px_actions_free(px_actions *a);

/* ---- the replica ------------------------------------------------------ */

/* The cell's mutant (ld_mutant.h) is px_config.mutant; its names: */
const char *px_mutant_name(ld_mutant m);
ld_mutant px_mutant_parse(const char *name); /* PX_MUTANT_COUNT if unknown */

typedef struct px_config {
	uint32_t id;           /* < LD_REPLICA_IDS */
	uint32_t nreplicas;    /* 1..LD_REPLICAS_MAX: the first members are ids
				  0..nreplicas-1, all voting (their URLs taken
				  from members when it lists exactly those ids);
				  or 0, and members says who they are */
	px_members members;    /* when nreplicas is 0: the configuration to
				  start from (a replica that joins a running
				  cell: what a member reported) */
	uint64_t incarnation;  /* this disk's: random, fixed when the store
				  was made (0: unknown, never promoted) */
	uint64_t seed;         /* randomises election timeouts */
	uint64_t heartbeat_us; /* leader's COMMIT interval */
	uint64_t election_timeout_us; /* base; the actual is in [t, 2t) */
	uint64_t retry_us;            /* resend 1a/2a/catch-up after this */
	uint32_t window_slots;        /* <= LD_WINDOW_SLOTS_MAX */
	uint32_t batch_cmds;          /* <= LD_BATCH_CMDS_MAX */
	uint32_t snapshot_every_slots;
	uint32_t snapshot_chunk_bytes; /* 1..LD_SNAPSHOT_CHUNK_BYTES_MAX */
	/* false: the core encodes its snapshots inside the step that decides
	 * on one. true: it asks (actions.snapshot_want), and the caller
	 * captures the state between steps, encodes it where it likes (the
	 * daemon: in a forked child, so that a large table does not stop the
	 * loop) and returns it with PX_EV_SNAPSHOT; the log is truncated only
	 * then. An answer that never comes is asked for again. */
	bool snapshot_async;
	uint32_t digest_every_slots; /* state digests compared at multiples */
	ld_mutant mutant;
} px_config;

/* Sensible defaults for id/nreplicas (heartbeat 50 ms, election 300 ms). */
void px_config_default(px_config *cfg, uint32_t id, uint32_t nreplicas);

typedef struct px_replica px_replica;

/* Makes a replica that knows nothing (an empty disk). sm is borrowed and must
 * outlive the replica. Returns NULL when out of memory or cfg is invalid. */
px_replica *px_replica_new(const px_config *cfg, px_sm *sm);
void px_replica_free(px_replica *r);

/* Encodes the replica's applied state at its commit (*base): the bytes a
 * PX_EV_SNAPSHOT hands back, with *sum = px_checksum of them. Reads the
 * replica only, so a forked child may run it on its copy of the memory.
 * 0, or -1 when out of memory. */
int px_replica_capture(px_replica *r, uint8_t **out, size_t *len,
		       uint64_t *base, uint64_t *sum);

/* Replays one durable record (oldest first) after px_replica_new, before the
 * first step. Returns 0, or -1 if the record is malformed. */
int px_replica_restore(px_replica *r, const px_record *rec);

/* Handles one event and appends what to do to out (which the caller resets
 * between steps). Returns 0; -1 when the event was malformed and ignored. */
int px_replica_step(px_replica *r, const px_event *ev, px_actions *out);

/* Read-only views, for the daemon's status and the simulator's checks. */

/* What comparing state digests with the others found (sticky until the
 * replica restarts: an operator wipes a diverged replica's data directory,
 * and it recovers the cell's state by snapshot). */
typedef enum px_digest_alarm {
	PX_DIGEST_OK = 0,
	PX_DIGEST_MISMATCH, /* some replica's digest differed, no quorum said
			       which is right */
	PX_DIGEST_DIVERGED, /* this replica's state differs from a quorum's at
			       the same position: it serves no reads and
			       does not lead */
} px_digest_alarm;

typedef enum px_role { PX_FOLLOWER, PX_CANDIDATE, PX_LEADER } px_role;

typedef struct px_status {
	px_role role;
	px_ballot ballot;        /* proposer ballot (leader/candidate) */
	px_ballot promised;      /* acceptor's promise */
	int32_t leader;          /* who this replica believes leads, or -1 */
	uint64_t commit;         /* chosen prefix */
	uint64_t applied;        /* == commit after each step */
	uint64_t base;           /* snapshot base */
	uint64_t snapshot_bytes; /* the snapshot at base (0: none) */
	uint64_t next_slot;      /* leader: next slot to propose */
	uint32_t pending;        /* leader: commands waiting for a slot */
	bool voter;              /* false while recovering (see Recovery) or a
				    learner */
	bool member;             /* in the latest applied configuration */
	bool removed;  /* removed from the cell, and no longer needed by
			  it: the daemon stops (and refuses to start) */
	bool resigned; /* an PX_EV_RESIGN holds it back from leading */
	px_digest_alarm digest_alarm;
	px_ballot recover_above; /* recovering: M, once known */
} px_status;

void px_replica_status(const px_replica *r, px_status *st);

/* The latest configuration this replica has applied (perhaps not yet in
 * effect: *from_slot says from which slot on it is). */
void px_replica_members(const px_replica *r, px_members *out,
			uint64_t *from_slot);

/* The ids this replica may send to now (itself excluded): the members of
 * every configuration that governs a slot after its commit. A removed
 * replica stays among them until no such slot counts it, so a transport
 * keeps dialing it until then. */
uint64_t px_replica_peer_ids(const px_replica *r);

/* Copies the entry for id from the newest of those configurations that has
 * it. Returns false when none has. */
bool px_replica_member(const px_replica *r, uint32_t id, px_member *out);

/* The value this replica knows chosen at slot, or NULL (borrowed). */
const px_value *px_replica_chosen_at(const px_replica *r, uint64_t slot);

/* Asserts the replica's invariants (paxos_int.h's Invariant: comments);
 * deep adds the walks over its log and client table. The core's test build
 * (LD_CHECKS) runs it at the end of every px_replica_step, deep every
 * PX_CHECK_DEEP_EVERY-th; a test may call it in any build. Under a mutant
 * it relaxes what that mutant breaks on purpose. */
void px_replica_check(const px_replica *r, bool deep);
#define PX_CHECK_DEEP_EVERY 1024u

#endif
