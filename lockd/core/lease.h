/* The lease table: the replicated state machine that the ledger drives.
 *
 * It never reads a clock. Everything that depends on time arrives as a
 * decree that the leader wrote:
 *  - TICK(elapsed_ms, term, base_ms): the leader's monotonic clock advanced
 *    this much since its previous TICK (or since it took over, when the
 *    ledger clock read base_ms); term is the ballot it leads with. The sum
 *    of the TICKs is the "ledger clock" (ls_table_clock_ms), counted one
 *    leader at a time: a TICK of an older term than the last one applied
 *    is ignored, and the first one applied of a newer term starts from its
 *    base_ms (when that is lower), so that a deposed leader's TICK that is
 *    chosen late (re-proposed by a later leader, which must take the votes
 *    it finds) never adds time that another leader measured too. Every command
 * also carries since_tick_ms, the proposing leader's time since its last TICK,
 * so the ledger clock at a grant or renewal is clock + since_tick_ms: never
 * less than the truth, which is the safe side. A new leader reads clock -
 * renewed_clock_ms as a lower bound on how long a lease went unrenewed,
 * measured by the clocks of leaders that are gone.
 *  - EXPIRE(token, renewals)[]: the leader saw these leases go unrenewed past
 *    their TTL plus the grace delay; each ends (and its name passes to the
 *    next waiter) only if it is still the lease the leader saw: same token,
 *    same number of renewals. A renewal ordered first cancels the expiry.
 *  - CANCEL_WAIT(name, session): a waiter's wait_ms ran out at the leader,
 *    or the connection its acquire came on closed.
 *  - ABANDON(name, token): a grant's answer had nowhere to go (its client's
 *    connection closed first): the lease is revoked, so nobody renews it and
 *    it passes on at its expiry, which a client that did learn of the grant
 *    (a retry on a new connection) believes in no longer.
 * The client commands are ACQUIRE, RENEW, RELEASE and REVOKE.
 *
 * Fencing tokens come from one counter over the whole table, so they increase
 * strictly per name (and are unique across names).
 *
 * A session is a client's identity: the px_cmd.client_id of its commands.
 * ACQUIRE, RENEW and RELEASE act for the session that sent them: one whose
 * session field is not its px_cmd.client_id is refused at apply.
 *
 * The whole table is bounded (LD_LEASES_MAX, LD_LEASE_WAITERS_MAX,
 * LD_LEASE_SESSIONS_MAX, LD_LEASE_DATA_BYTES_MAX in ld_limits.h), at apply,
 * so every replica refuses the same command (LS_E_TABLE_FULL) and a full
 * table's snapshot stays well inside LD_SNAPSHOT_BYTES_MAX.
 */
#ifndef LS_LEASE_H
#define LS_LEASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ld_limits.h"
#include "sm.h"

/* ---- limits (checked on every command; errors below) ---------------------
 * The numbers live in ld_limits.h; these are the lease table's names for
 * them. */

#define LS_NAME_BYTES_MAX LD_LEASE_NAME_BYTES_MAX
#define LS_VALUE_BYTES_MAX LD_LEASE_VALUE_BYTES_MAX
#define LS_REASON_BYTES_MAX LD_LEASE_REASON_BYTES_MAX
#define LS_TTL_MS_MIN LD_LEASE_TTL_MS_MIN
#define LS_TTL_MS_MAX LD_LEASE_TTL_MS_MAX
#define LS_WAIT_MS_MAX LD_LEASE_WAIT_MS_MAX
#define LS_LEASES_PER_SESSION_MAX LD_LEASES_PER_SESSION_MAX
#define LS_WAITERS_PER_NAME_MAX LD_LEASE_WAITERS_PER_NAME_MAX
#define LS_EXPIRE_TOKENS_MAX LD_EXPIRE_TOKENS_MAX

/* ---- commands (the bytes of an px_cmd) ----------------------------------- */

typedef enum ls_op {
	LS_OP_ACQUIRE = 1, /* name, ttl_ms, wait_ms, value */
	LS_OP_RENEW,       /* every lease the session holds */
	LS_OP_RELEASE,     /* name, token: only by the holder */
	LS_OP_REVOKE,      /* name, reason: an operator's forced end */
	LS_OP_EXPIRE,      /* leader: (token, renewals)[] */
	LS_OP_TICK,        /* leader: elapsed_ms */
	LS_OP_CANCEL_WAIT, /* leader: name, session */
	LS_OP_ABANDON,     /* leader: name, token: revoke it if still current */
	LS_OP_PROCLAIM,    /* name, token, value: the holder replaces its
			      value (an elected leader announces a new one,
			      as etcd's Proclaim), keeping token and TTL */
} ls_op;

#define LS_OP_MAX LS_OP_PROCLAIM

typedef struct ls_cmd {
	ls_op op;
	uint64_t session;     /* ACQUIRE/RENEW/RELEASE: the caller's session;
				 CANCEL_WAIT: the waiter's session. Never 0 then. */
	uint64_t session_key; /* ACQUIRE/RENEW/RELEASE: the session's secret
				 (0: none). A session's first ACQUIRE sets
				 it; its later commands must carry the same,
				 so that knowing a session's id (GET shows
				 holders) is not enough to act for it. */
	const char *name;     /* ACQUIRE/RELEASE/REVOKE/CANCEL_WAIT; not
				 NUL-terminated; borrowed */
	uint32_t name_len;
	uint32_t ttl_ms;      /* ACQUIRE */
	uint32_t wait_ms;     /* ACQUIRE: 0 = try once */
	const uint8_t *value; /* ACQUIRE: the holder's value (elections) */
	uint32_t value_len;
	uint64_t token;     /* RELEASE, ABANDON, PROCLAIM */
	const char *reason; /* REVOKE */
	uint32_t reason_len;
	uint64_t elapsed_ms; /* TICK */
	uint64_t term_round; /* TICK: the proposing leader's ballot */
	uint32_t term_id;
	uint64_t base_ms;       /* TICK: the ledger clock at its takeover */
	uint64_t since_tick_ms; /* every op: the proposing leader's ms since its
				   last TICK (see the top) */
	uint32_t ntokens;       /* EXPIRE */
	const uint8_t *tokens;  /* EXPIRE: ntokens x (u64 token, u32 renewals),
				   little-endian, borrowed */
	uint64_t stamp_ms; /* the proposing leader's clock when it wrote this
			      (display only: never a deadline) */
} ls_cmd;

/* Errors and outcomes. X-macro so the strings stay next to the codes. */
#define LS_STATUS_TABLE(X)                                                   \
	X(LS_OK, "ok")                                                       \
	X(LS_GRANTED, "granted")                                             \
	X(LS_QUEUED, "queued behind the current holder")                     \
	X(LS_HELD, "held by another session")                                \
	X(LS_NOT_HOLDER, "the session or token is not the current holder's") \
	X(LS_NO_SUCH_LEASE, "no such lease")                                 \
	X(LS_E_NAME, "invalid name: 1-256 bytes of [A-Za-z0-9._/:-]")        \
	X(LS_E_TTL, "invalid TTL: it must be between 100 ms and the cell's " \
		    "maximum (lockd --ttl-max-ms, at most 1 h)")             \
	X(LS_E_WAIT, "invalid wait: it must be at most 1 h")                 \
	X(LS_E_VALUE, "value too large: at most 1024 bytes")                 \
	X(LS_E_REASON, "reason too large: at most 256 bytes")                \
	X(LS_E_SESSION, "invalid session id (0)")                            \
	X(LS_E_TOO_MANY_LEASES, "the session holds too many leases (1024)")  \
	X(LS_E_TOO_MANY_WAITERS, "too many waiters on this name (1024)")     \
	X(LS_E_MALFORMED, "malformed command")                               \
	X(LS_E_TABLE_FULL,                                                   \
	  "the cell's lease table is full (at most 1048576 leases, 4096 "    \
	  "waiters, 131072 sessions and 128 MiB of names and values): "      \
	  "release "                                                         \
	  "leases or retry later")                                           \
	X(LS_SUPERSEDED,                                                     \
	  "not applied, or its answer is gone: the session's later command " \
	  "(a higher seq) reached the ledger first; send it again with a "   \
	  "new seq")                                                         \
	X(LS_E_SEQ, "invalid seq: it must be between 1 and 2^62 - 1")        \
	X(LS_E_NOT_OWNER,                                                    \
	  "the session belongs to another client: its key differs (a "       \
	  "session's id is not enough to act for it)")

typedef enum ls_status {
#define LS_X(code, text) code,
	LS_STATUS_TABLE(LS_X)
#undef LS_X
		LS_STATUS_COUNT
} ls_status;

/* The sentences above spell the limits out; keep them true. */
_Static_assert(LS_NAME_BYTES_MAX == 256u && LS_VALUE_BYTES_MAX == 1024u &&
		       LS_REASON_BYTES_MAX == 256u &&
		       LS_LEASES_PER_SESSION_MAX == 1024u &&
		       LS_WAITERS_PER_NAME_MAX == 1024u &&
		       LS_WAIT_MS_MAX == 3600000u &&
		       LS_TTL_MS_MAX == 3600000u && LS_TTL_MS_MIN == 100u,
	       "LS_STATUS_TABLE's sentences name these limits");
_Static_assert(LD_LEASES_MAX == 1048576u && LD_LEASE_WAITERS_MAX == 4096u &&
		       LD_LEASE_SESSIONS_MAX == 131072u &&
		       LD_LEASE_DATA_BYTES_MAX == 128u * 1024u * 1024u,
	       "LS_E_TABLE_FULL's sentence names these limits");

const char *ls_strerror(ls_status st);

/* Encodes c into buf (cap bytes). Returns the length, or 0 if it does not
 * fit or c is malformed (ls_cmd_check fails). */
size_t ls_cmd_encode(const ls_cmd *c, uint8_t *buf, size_t cap);

/* Decodes buf into c, whose pointers then borrow from buf. Returns LS_OK,
 * or LS_E_MALFORMED for anything that is not a well-formed command
 * (truncated, trailing bytes, unknown op, fields over their limits). */
ls_status ls_cmd_decode(const uint8_t *buf, size_t len, ls_cmd *c);

/* Checks a command's fields against the limits above: the error a client
 * gets for a bad name, TTL, value, wait, reason or session. */
ls_status ls_cmd_check(const ls_cmd *c);

/* Name rule: 1..LS_NAME_BYTES_MAX bytes of [A-Za-z0-9._/:-]. */
bool ls_name_valid(const char *name, uint32_t len);

/* ---- results (the bytes of an px_reply's result) ------------------------- */

typedef struct ls_result {
	ls_status status;
	uint64_t token;    /* GRANTED: the fencing token; RENEW: unused */
	uint64_t holder;   /* HELD/QUEUED: the current holder's session */
	uint32_t position; /* QUEUED: 1 = next */
	uint32_t count;    /* RENEW: leases renewed; EXPIRE: leases ended */
} ls_result;

/* Fixed-size encoding, <= LD_RESULT_BYTES_MAX. */
#define LS_RESULT_BYTES 32u
size_t ls_result_encode(const ls_result *r, uint8_t *buf, size_t cap);
ls_status ls_result_decode(const uint8_t *buf, size_t len, ls_result *r);

/* ---- the table ------------------------------------------------------------
 */

typedef struct ls_table ls_table;

/* Deliberately broken variants (the simulator's self-tests). */
typedef enum ls_mutant {
	LS_MUTANT_NONE = 0,
	/* RELEASE and EXPIRE end the name's lease whatever token they carry:
	 * a stale holder's late release frees a newer holder's lease. */
	LS_MUTANT_UNCHECKED_REGRANT,
} ls_mutant;
/* (The node maps the cell-wide ld_mutant to this.) */

/* NULL when out of memory. The TTL maximum starts at LS_TTL_MS_MAX. */
ls_table *ls_table_new(void);
/* The longest TTL an ACQUIRE may ask for (LS_TTL_MS_MIN..LS_TTL_MS_MAX;
 * others are ignored): part of the table's configuration, which must be the
 * same on every replica, since apply refuses longer ones (LS_E_TTL). A
 * snapshot may still hold longer leases (granted under an earlier maximum):
 * they restore and run out as they are. */
void ls_table_set_ttl_ms_max(ls_table *t, uint32_t ttl_ms_max);
void ls_table_free(ls_table *t);
/* Honoured in every build (the unit test exercises it); the node sets it
 * only in the LD_MUTANTS build. */
void ls_table_set_mutant(ls_table *t, ls_mutant m);

/* The table as an px_sm for px_replica_new (borrowed; lives as long as t).
 * apply() decodes the command, applies it, and writes an encoded ls_result. */
px_sm *ls_table_sm(ls_table *t);

/* The ledger clock: the sum of all applied TICKs, in ms. */
uint64_t ls_table_clock_ms(const ls_table *t);

/* A read-only view of one lease. Pointers borrow from the table and are valid
 * until the next apply or restore. */
typedef struct ls_view {
	const char *name;
	uint32_t name_len;
	uint64_t holder; /* session */
	uint64_t token;
	uint32_t ttl_ms;
	const uint8_t *value;
	uint32_t value_len;
	bool revoked;       /* revoked: ends at expiry, never renewed again */
	const char *reason; /* revoked: its reason (not NUL-terminated) */
	uint32_t reason_len;
	uint64_t renewed_clock_ms; /* ledger clock at grant or last renewal */
	uint32_t renewals;     /* renewals since the grant (EXPIRE names it) */
	uint64_t granted_slot; /* ledger position of the grant */
	uint64_t stamp_ms;     /* leader clock stamp of the grant/renewal */
	uint32_t nwaiters;
} ls_view;

typedef struct ls_waiter_view {
	uint64_t session;
	uint32_t ttl_ms, wait_ms;
	uint64_t queued_slot;
} ls_waiter_view;

/* The lease on name, if held. LS_OK or LS_NO_SUCH_LEASE. A name with
 * waiters but no holder does not exist (waiters are granted at once). */
ls_status ls_get(const ls_table *t, const char *name, uint32_t len,
		 ls_view *out);

/* The i-th waiter (0 = next) on a held name. LS_OK or LS_NO_SUCH_LEASE. */
ls_status ls_get_waiter(const ls_table *t, const char *name, uint32_t len,
			uint32_t i, ls_waiter_view *out);

/* Does session wait for name (is it in the name's queue)? */
bool ls_waiting(const ls_table *t, const char *name, uint32_t len,
		uint64_t session);

/* As ls_list, for names after `after` (strictly; NULL or empty: from the
 * first): the next page of a listing. */
void ls_list_after(const ls_table *t, const char *prefix, uint32_t len,
		   const char *after, uint32_t after_len,
		   bool (*fn)(const ls_view *v, void *arg), void *arg);

/* Calls fn for every lease whose name starts with prefix, in name order.
 * fn returns false to stop. */
void ls_list(const ls_table *t, const char *prefix, uint32_t len,
	     bool (*fn)(const ls_view *v, void *arg), void *arg);

/* Calls fn for every lease in unspecified order (the leader's takeover). */
void ls_for_each(const ls_table *t, bool (*fn)(const ls_view *v, void *arg),
		 void *arg);

/* Chubby's sequencer check: is token the current holder's token for name? */
bool ls_check(const ls_table *t, const char *name, uint32_t len,
	      uint64_t token);

/* Leases held by a session (for RENEW). */
uint32_t ls_session_leases(const ls_table *t, uint64_t session);

/* What applies changed, for the leader's timers: every grant (also those to
 * waiters on release/expiry), every end, renewal, revoke, queue and unqueue,
 * in order. Accumulates over applies until ls_table_journal_clear (the node
 * clears it after every step; restore clears it too). */
typedef enum ls_change_kind {
	LS_CH_GRANTED = 1, /* token now held by session (name) */
	LS_CH_ENDED,       /* token ended (release, expiry) */
	LS_CH_RENEWED,     /* token renewed */
	LS_CH_REVOKED,     /* token revoked (ends at its expiry) */
	LS_CH_QUEUED,      /* session queued on name (wait_ms) */
	LS_CH_UNQUEUED,    /* session left name's queue (cancel) */
} ls_change_kind;

typedef struct ls_change {
	ls_change_kind kind;
	uint64_t token;
	uint64_t session;
	uint32_t ttl_ms; /* GRANTED, RENEWED */
	uint32_t
		renewals; /* GRANTED (0), RENEWED: the lease's count after it */
	uint64_t slot;    /* the ledger position applied */
	uint32_t wait_ms; /* QUEUED */
	const char *name; /* borrowed until the next apply */
	uint32_t name_len;
} ls_change;

/* A sink for holder changes, for the daemon's watch feed. It is not state:
 * the table never reads anything back from it, so replicas stay identical
 * whoever listens. Called inside apply with the ledger position applied and
 * the lease as it now is (v borrowed for the call), or v NULL when the name
 * became free. A release that hands the name to a waiter calls it twice at
 * the same position: free, then the new holder. */
typedef void (*ls_tap_fn)(void *arg, uint64_t slot, const char *name,
			  uint32_t name_len, const ls_view *v);

/* fn NULL: no tap (the default). */
void ls_table_set_tap(ls_table *t, ls_tap_fn fn, void *arg);

/* The changes made by every apply since the last clear (borrowed). */
const ls_change *ls_table_journal(const ls_table *t, size_t *n);
void ls_table_journal_clear(ls_table *t);

/* Counts, for tests and status. */
uint64_t ls_table_count(const ls_table *t);

typedef struct ls_table_usage {
	uint64_t leases, waiters, sessions;
	uint64_t data_bytes; /* names and values, waiters' values included */
} ls_table_usage;

void ls_table_usage_get(const ls_table *t, ls_table_usage *u);

/* Asserts the table's invariants (lease_int.h's Invariant: comments): its
 * bounds in O(1); deep adds the walk over every lease, waiter and session
 * (counts, tokens, the sessions' lists). The core's test build (LD_CHECKS)
 * runs the O(1) part after every apply, and the node the deep one every
 * LN_CHECK_DEEP_EVERY-th step; a test may call it in any build. */
void ls_table_check(const ls_table *t, bool deep);

#endif
