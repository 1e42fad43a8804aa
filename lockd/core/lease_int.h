/* The lease table's internals, shared by lease*.c: its records and state,
 * the little-endian writer and reader of its encodings, and the functions
 * one file of the table calls in another. Nothing outside lockd/core/lease*.c
 * includes this. */
#ifndef LS_LEASE_INT_H
#define LS_LEASE_INT_H

#include "bytes.h"
#include "lease.h"

#include <assert.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- little-endian writer and reader ---------------------------------- */

/* A writer with p == NULL only counts, so that one function both sizes and
 * writes a snapshot. ok turns false on the first write past cap. */
typedef struct lease_wr {
	uint8_t *p;
	size_t cap, len;
	bool ok;
} lease_wr;

typedef struct lease_rd {
	const uint8_t *p;
	size_t len, off;
	bool ok;
} lease_rd;

#define LEASE_PAIR_BYTES 12u

/* ---- intrusive hash tables -------------------------------------------- */

typedef struct lease_hnode {
	struct lease_hnode *next;
	uint64_t hash;
} lease_hnode;

typedef struct lease_htab {
	lease_hnode **b;
	size_t nb; /* a power of two */
	size_t n;
} lease_htab;

#define LEASE_OF(ptr, type, member) \
	((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* ---- records --------------------------------------------------------------
 */

typedef struct lease_waiter {
	struct lease_waiter *next;
	uint64_t session;
	uint32_t ttl_ms, wait_ms;
	uint64_t queued_slot;
	uint8_t *value; /* malloc'd or NULL; passes to the lease on grant */
	uint32_t value_len;
} lease_waiter;

struct lease_session;

typedef struct lease_rec {
	lease_hnode by_name, by_token;
	/* The names in order (lease_index.c): AVL children and height. */
	struct lease_rec *ix_l, *ix_r;
	int8_t ix_h;
	struct lease_session *sess;        /* Invariant: sess->id == holder */
	struct lease_rec *s_prev, *s_next; /* the session's held list */
	struct lease_rec *t_prev, *t_next; /* every lease, in token order */
	uint64_t holder, token;            /* Invariant: 0 < token <= counter */
	uint32_t ttl_ms;
	uint8_t *value; /* malloc'd or NULL */
	uint32_t value_len;
	bool revoked;
	/* The revoke's reason (malloc'd or NULL), kept while the table has
	 * room for it (counted in data_bytes). Invariant: reason_len == 0
	 * unless revoked. */
	char *reason;
	uint32_t reason_len;
	uint64_t renewed_clock_ms;
	uint32_t renewals;
	uint64_t granted_slot;
	uint64_t stamp_ms;
	lease_waiter *whead, *wtail;
	uint32_t nwaiters; /* Invariant: the queue's length, at most
			      LS_WAITERS_PER_NAME_MAX */
	uint32_t name_len;
	char name[];
} lease_rec;

/* A session exists while it holds or waits for something. */
typedef struct lease_session {
	lease_hnode node;
	uint64_t id;
	uint64_t key;           /* set by the ACQUIRE that made it (ls_cmd) */
	uint32_t nheld, nwait;  /* Invariant: together in 1 ..
				   LS_LEASES_PER_SESSION_MAX */
	lease_rec *head, *tail; /* held leases. Invariant: nheld of them, in
				   increasing token order */
} lease_session;

/* Everything a snapshot holds; restore builds a new one and swaps it in. */
typedef struct lease_state {
	/* Invariant: every lease is in by_name and by_token (at most
	 * LD_LEASES_MAX), every session in sessions (at most
	 * LD_LEASE_SESSIONS_MAX) */
	lease_htab by_name, by_token, sessions;
	/* The same leases in name order (lease_index.c). Invariant: holds
	 * exactly by_name's leases, an AVL tree. */
	struct lease_rec *by_order;
	/* Every lease in token order (grants append: tokens only grow), so a
	 * snapshot walks them without a sort. Invariant: the leases of
	 * by_token, tokens increasing from t_head. */
	struct lease_rec *t_head, *t_tail;
	uint64_t counter;  /* the last token granted. Invariant: never falls */
	uint64_t clock_ms; /* the ledger clock */
	/* The term (leader's ballot) of the last TICK applied (lease.h) */
	uint64_t clock_term_round;
	uint32_t clock_term_id;
	uint64_t digest; /* hash chain over every apply */
	/* For the table's limits (derived: restore recounts them). */
	uint64_t nwaiters;   /* waiters on every name. Invariant: their count,
				at most LD_LEASE_WAITERS_MAX */
	uint64_t data_bytes; /* names, values and waiters' values. Invariant:
				their sum, at most LD_LEASE_DATA_BYTES_MAX */
} lease_state;

typedef struct lease_chunk {
	struct lease_chunk *next;
	size_t cap, used;
	char data[];
} lease_chunk;

struct ls_table {
	px_sm sm;
	lease_state st;
	ls_mutant mutant;
	ls_change *journal;
	size_t njournal, journal_cap;
	lease_chunk *arena; /* the journal's names, freed on clear */
	ls_tap_fn tap;      /* see ls_table_set_tap */
	void *tap_arg;
	uint32_t ttl_ms_max; /* configuration: see ls_table_set_ttl_ms_max */
};

/* lease_journal.c: records a change of l (token, session) at slot. */
void lease_journal(ls_table *t, ls_change_kind kind, uint64_t slot,
		   const lease_rec *l, uint64_t token, uint64_t session);

/* The context of the command being applied. */
typedef struct lease_ctx {
	uint64_t slot;
	uint64_t since_tick_ms;
	uint64_t stamp_ms;
} lease_ctx;

/* ---- lease.c ----------------------------------------------------------- */

void lease_htab_insert(lease_htab *h, lease_hnode *e);
uint64_t lease_name_hash(const char *name, uint32_t len);
lease_rec *lease_find(const lease_state *s, const char *name, uint32_t len);
lease_session *lease_session_find(const lease_state *s, uint64_t id);
lease_session *lease_session_get(lease_state *s, uint64_t id);
void lease_attach(lease_state *s, lease_rec *l, lease_session *ss);
void lease_state_free(lease_state *s);
int lease_state_init(lease_state *s, size_t nleases);
uint32_t lease_queue_pos(lease_rec *l, uint64_t session, lease_waiter ***link);
ls_table *lease_table_of(px_sm *sm);

/* ---- lease_codec.c ----------------------------------------------------- */

int lease_sm_snapshot(px_sm *sm, uint8_t **out, size_t *len);
int lease_sm_restore(px_sm *sm, const uint8_t *buf, size_t len);

/* ---- lease_view.c ------------------------------------------------------ */

void lease_view(const lease_rec *l, ls_view *v);

/* lease_index.c: the names in order. */
void lease_index_insert(lease_state *s, lease_rec *l);
/* Restore: the index of every lease in by_name at once (sorted, then a
 * balanced tree: a million leases' snapshot no longer pays an AVL insert
 * each). 0, or -1 when a name is there twice or out of memory. */
int lease_index_build(lease_state *s);
void lease_index_remove(lease_state *s, const lease_rec *l);
/* The first lease whose name is above (key, len), or at it with or_equal;
 * NULL when none. O(log n). */
lease_rec *lease_index_first(const lease_state *s, const char *key,
			     uint32_t len, bool or_equal);
/* Asserts the tree's order and balance; returns how many it holds. */
uint64_t lease_index_check(const lease_state *s);
/* The leases in token order (t_head .. t_tail): l, whose token is above
 * every other's, goes last; or leaves. */
void lease_tokens_append(lease_state *s, lease_rec *l);
void lease_tokens_remove(lease_state *s, lease_rec *l);

#endif
