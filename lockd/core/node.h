/* A lockd node: one Paxos replica, the lease table it drives, and the
 * leader's lease timers, as one pure step function. The daemon and the
 * simulator drive nodes; nothing here reads a clock, a socket or a disk.
 *
 *   ln_node_step(node, event, &actions)
 *
 * Events are the replica's (peer message, tick, durable) plus client lease
 * requests. Actions are the replica's (records, messages, chosen, timer) plus
 * lease replies.
 *
 * Time (see lease.h for the ledger side). The leader alone keeps deadlines,
 * on its own monotonic clock:
 *  - a grant or renewal applied at local time t gives deadline t + ttl;
 *  - on taking over, a lease the table already holds gets
 *    deadline = now + ttl - (ledger clock - its renewed clock), never trusting
 *    another replica's clock reading;
 *  - a lease whose deadline + grace has passed is expired by an EXPIRE decree
 *    (many per decree); a revoked lease is never renewed and expires the same
 *    way, so its holder's belief has run out before the name moves on;
 *  - a clean RELEASE hands the name on at once;
 *  - while leases exist the leader writes a TICK decree every tick_ms.
 * Renewals are RENEW decrees, batched with everything else the leader is
 * proposing: a deposed leader cannot get one chosen, so it cannot extend a
 * lease, and no renewal costs a durable write of its own.
 *
 * Safety needs grace_ms >= drift bound x the longest TTL (ln_config_check). */
#ifndef LN_NODE_H
#define LN_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lease.h"
#include "paxos.h"

typedef struct ln_config {
	px_config paxos;   /* id, nreplicas, timings, seed, mutant */
	uint32_t grace_ms; /* wait after an unclean end before re-granting */
	uint32_t
		drift_ppm; /* the clock-rate bound the cell is configured for */
	uint32_t tick_ms;  /* TICK decree interval while leases exist */
	uint32_t ttl_ms_max; /* longest TTL accepted (<= LS_TTL_MS_MAX) */
	/* leases whose deadlines a new leader rebuilds per step:
	 * 1..LD_TAKEOVER_STEP_LEASES (the simulator uses small ones) */
	uint32_t takeover_step_leases;
} ln_config;

/* Defaults: grace 1000 ms, drift 1000 ppm, tick 100 ms, TTL max 60 s. */
void ln_config_default(ln_config *cfg, uint32_t id, uint32_t nreplicas);

/* 0 if cfg is safe to run; otherwise -1 and a sentence in err. */
int ln_config_check(const ln_config *cfg, char *err, size_t errlen);

/* ---- requests and replies ------------------------------------------------ */

typedef enum ln_req_type {
	LN_REQ_ACQUIRE = 1, /* name, ttl_ms, wait_ms, value */
	LN_REQ_RENEW,       /* the session's leases */
	LN_REQ_RELEASE,     /* name, token */
	LN_REQ_REVOKE,      /* name, reason */
	LN_REQ_GET,         /* name: a local read */
	LN_REQ_CHECK,       /* name, token: a local read */
	LN_REQ_PROCLAIM,    /* name, token, value: the holder's new value */
} ln_req_type;

typedef struct ln_request {
	uint64_t req_id; /* the caller's handle, echoed in the reply */
	ln_req_type type;
	uint64_t session; /* writes: the client's session (its client id):
			     1 .. 2^63-1 (the top bit is the cell's own) */
	uint64_t seq;     /* writes: per-session command id; retries reuse it;
			     1 .. LN_SEQ_MAX */
	uint64_t session_key; /* writes: the session's secret (ls_cmd) */
	const char *name;     /* borrowed for the call */
	uint32_t name_len;
	uint32_t ttl_ms, wait_ms;
	const uint8_t *value;
	uint32_t value_len;
	uint64_t token;
	const char *reason;
	uint32_t reason_len;
	/* GET/CHECK: answer at the leader only, once its replica confirmed the
	 * read (PX_EV_READ: a quorum answered a heartbeat sent after it);
	 * elsewhere LN_NOT_LEADER. Otherwise reads are served from the applied
	 * table. */
	bool linearizable;
} ln_request;

/* The largest seq a write may carry: a session that reached UINT64_MAX
 * would have no seq left above it, and the cell answers a seq at or below
 * the session's latest as settled (LS_SUPERSEDED), so every later write of
 * that session would do nothing. 2^62 leaves room for a microsecond clock
 * (lockctl's seq_base) for 146,000 years. */
#define LN_SEQ_MAX LD_SEQ_MAX

typedef enum ln_status {
	LN_OK = 0,     /* done; result (and for GET, view) say what */
	LN_NOT_LEADER, /* ask leader_hint (-1: unknown) */
	LN_BUSY,       /* the leader's queue is full; retry */
	LN_INVALID,    /* result.status says which limit */
	LN_TIMEOUT,    /* ACQUIRE waited wait_ms; result.holder holds it */
} ln_status;

typedef struct ln_reply {
	uint64_t req_id;
	ln_req_type type;
	uint64_t session, seq;
	ln_status status;
	ls_result result; /* GRANTED/QUEUED/HELD/NOT_HOLDER/... */
	int32_t leader_hint;
	uint64_t position; /* the ledger position this replica had applied */
	/* RENEW: the tokens renewed (malloc'd, owned by the actions). */
	uint64_t *tokens;
	uint32_t ntokens;
	/* GET: the lease (found = false when the name is free). */
	bool found;
	uint64_t holder, token;
	uint32_t ttl_ms;
	int64_t ttl_ms_left; /* leader only; -1 elsewhere */
	bool in_grace;       /* leader only: past its deadline, in the grace */
	bool revoked;
	uint32_t reason_len; /* revoked: its reason, when the table kept it */
	char reason[LS_REASON_BYTES_MAX];
	uint32_t nwaiters;
	uint32_t value_len;
	uint8_t value[LS_VALUE_BYTES_MAX];
} ln_reply;

/* ---- events and actions ---------------------------------------------------
 */

typedef enum ln_event_type {
	LN_EV_MSG = PX_EV_MSG,
	LN_EV_TICK = PX_EV_TICK,
	LN_EV_DURABLE = PX_EV_DURABLE,
	LN_EV_CHANGE = PX_EV_CHANGE, /* membership: change, change_id (answered
					in actions.ld.changes) */
	LN_EV_RESIGN = PX_EV_RESIGN, /* as PX_EV_RESIGN */
	LN_EV_SNAPSHOT = PX_EV_SNAPSHOT, /* as PX_EV_SNAPSHOT: snap (taken),
					    snap_len, snap_base, snap_sum */
	LN_EV_REQUEST = 100, /* req[0..nreqs) (borrowed for the call): writes
				among them are proposed together, so requests
				that arrive during one durable write share the
				next decree (group commit); a session's writes
				in one event go in seq order */
	LN_EV_GONE,          /* gone[0..ngone): the req_ids of requests whose
				client went away (its connection closed). No
				reply comes for them. A waiting ACQUIRE stops
				waiting (CANCEL_WAIT); one that is granted
				anyway, its answer lost, is revoked at once
				(ABANDON): nobody renews it and it passes on
				at its expiry, so a client that does learn of
				the grant (a retry) cannot overlap the next
				holder. */
} ln_event_type;

typedef struct ln_event {
	ln_event_type type;
	uint64_t now_us;
	const px_msg *msg;
	uint64_t write_id;
	const ln_request *req;
	uint32_t nreqs; /* LN_EV_REQUEST: 0 is taken as 1 */
	const uint64_t *gone;
	uint32_t ngone;
	const px_change *change;
	uint64_t change_id;
	uint8_t *snap;
	size_t snap_len;
	uint64_t snap_base, snap_sum;
} ln_event;

typedef struct ln_actions {
	px_actions ld; /* records, messages, chosen, timer: as paxos.h says */
	ln_reply *replies;
	size_t nreplies, replies_cap;
} ln_actions;

void ln_actions_init(ln_actions *a);
void ln_actions_reset(ln_actions *a);
void ln_actions_free(ln_actions *a);

/* ---- the node ---------------------------------------------------------------
 */

typedef struct ln_node ln_node;

/* NULL when out of memory or cfg is invalid. */
ln_node *ln_node_new(const ln_config *cfg);
void ln_node_free(ln_node *n);

/* As px_replica_restore. */
int ln_node_restore(ln_node *n, const px_record *rec);

/* As px_replica_capture: the snapshot a PX_EV_SNAPSHOT hands back (the
 * lease table is part of the replica's state machine). */
int ln_node_capture(ln_node *n, uint8_t **out, size_t *len, uint64_t *base,
		    uint64_t *sum);

/* Handles one event, appending to out (reset by the caller between steps).
 * Returns 0, or -1 if the event was malformed and ignored. */
int ln_node_step(ln_node *n, const ln_event *ev, ln_actions *out);

/* Sets the lease table's tap (ls_table_set_tap): the daemon's watch feed. */
void ln_node_set_tap(ln_node *n, ls_tap_fn fn, void *arg);

/* The leader's view of the lease holding token, as its GET answers it:
 * the TTL left on its own clock (as of its last step) and whether that
 * has passed. False, and nothing written, where n does not lead or keeps
 * no deadline for token. */
bool ln_node_lease_left(const ln_node *n, uint64_t token, int64_t *ttl_ms_left,
			bool *in_grace);

/* Borrowed views for status and the simulator's checks. */
const px_replica *ln_node_replica(const ln_node *n);
const ls_table *ln_node_table(const ln_node *n);

/* Counters since the node was made. */
typedef struct ln_stats {
	uint64_t grants, expiries, renewals, releases, revokes;
	uint64_t expire_decrees, tick_decrees;
	uint64_t abandoned; /* waits cancelled and grants revoked: LN_EV_GONE */
	/* Not a counter: linearizable reads waiting now for their quorum
	 * (each is answered once confirmed, or LN_NOT_LEADER when this node
	 * stops leading). */
	uint64_t lin_waiting;
} ln_stats;

void ln_node_stats(const ln_node *n, ln_stats *st);

/* Asserts the node's invariants (node.c's Invariant: comments) and the lease
 * table's (ls_table_check); deep adds the O(n) walks. The core's test build
 * (LD_CHECKS) runs it at the end of every ln_node_step, deep every
 * LN_CHECK_DEEP_EVERY-th; a test may call it in any build. */
void ln_node_check(const ln_node *n, bool deep);
#define LN_CHECK_DEEP_EVERY 1024u

#endif
