/* The lease table: Chubby-style leases as a deterministic state machine.
 *
 * State: leases by name and by token (two intrusive hash tables over the same
 * lease records), sessions by id (held-lease list and counts), a FIFO of
 * waiters hanging off each held lease, one fencing-token counter and the
 * ledger clock. A name exists only while it is held: a lease that ends hands
 * the same record to its first waiter at once.
 *
 * Determinism: apply depends only on the state and the command bytes. Hash
 * tables only serve lookups; everything a replica can observe in order (a
 * session's leases for RENEW, the snapshot, ls_list) is in an order fixed by
 * the history: a session's held list is in token order (a grant always takes
 * the largest token so far, so appending keeps it sorted) and the snapshot
 * lists leases by token, so a restored table rebuilds identical lists.
 *
 * Memory: a lease, waiter or session record is allocated in apply, which must
 * not fail; running out of memory there aborts (a replica that skipped the
 * command would diverge). Everything else reports failure. Growth is bounded
 * per session (LS_LEASES_PER_SESSION_MAX holds + waits), per name
 * (LS_WAITERS_PER_NAME_MAX), and for the whole table (LD_LEASES_MAX,
 * LD_LEASE_WAITERS_MAX, LD_LEASE_SESSIONS_MAX, LD_LEASE_DATA_BYTES_MAX): no
 * sequence of client commands can grow the table, or its snapshot, past what
 * a replica can hold and write. */
#include "lease.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* ---- status strings --------------------------------------------------- */

static const char *const lease_status_text[LS_STATUS_COUNT] = {
#define LS_X(code, text) [code] = text,
	LS_STATUS_TABLE(LS_X)
#undef LS_X
};

const char *ls_strerror(ls_status st)
{
	if ((unsigned)st >= LS_STATUS_COUNT)
		return "unknown lease status";
	return lease_status_text[st];
}

/* ---- little-endian writer and reader ---------------------------------- */

/* A writer with p == NULL only counts, so that one function both sizes and
 * writes a snapshot. ok turns false on the first write past cap. */
typedef struct lease_wr {
	uint8_t *p;
	size_t cap, len;
	bool ok;
} lease_wr;

static void lease_wr_bytes(lease_wr *w, const void *b, size_t n)
{
	if (!w->ok || n > w->cap - w->len) {
		w->ok = false;
		return;
	}
	if (w->p != NULL && n > 0)
		memcpy(w->p + w->len, b, n);
	w->len += n;
}

static void lease_wr_uint(lease_wr *w, uint64_t v, size_t n)
{
	uint8_t b[8];
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	lease_wr_bytes(w, b, n);
}

static void lease_wr_u8(lease_wr *w, uint8_t v)
{
	lease_wr_uint(w, v, 1);
}

static void lease_wr_u16(lease_wr *w, uint16_t v)
{
	lease_wr_uint(w, v, 2);
}

static void lease_wr_u32(lease_wr *w, uint32_t v)
{
	lease_wr_uint(w, v, 4);
}

static void lease_wr_u64(lease_wr *w, uint64_t v)
{
	lease_wr_uint(w, v, 8);
}

/* u16 length, then the bytes (every string and value is far below 64 KiB). */
static void lease_wr_str(lease_wr *w, const void *b, uint32_t n)
{
	if (n > UINT16_MAX) {
		w->ok = false;
		return;
	}
	lease_wr_u16(w, (uint16_t)n);
	lease_wr_bytes(w, b, n);
}

typedef struct lease_rd {
	const uint8_t *p;
	size_t len, off;
	bool ok;
} lease_rd;

/* The next n bytes, or NULL (and ok = false) if fewer remain. */
static const uint8_t *lease_rd_take(lease_rd *r, size_t n)
{
	if (!r->ok || n > r->len - r->off) {
		r->ok = false;
		return NULL;
	}
	const uint8_t *q = r->p + r->off;
	r->off += n;
	return q;
}

static uint64_t lease_rd_uint(lease_rd *r, size_t n)
{
	const uint8_t *b = lease_rd_take(r, n);
	uint64_t v = 0;
	if (b == NULL)
		return 0;
	for (size_t i = 0; i < n; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

static uint8_t lease_rd_u8(lease_rd *r)
{
	return (uint8_t)lease_rd_uint(r, 1);
}

static uint16_t lease_rd_u16(lease_rd *r)
{
	return (uint16_t)lease_rd_uint(r, 2);
}

static uint32_t lease_rd_u32(lease_rd *r)
{
	return (uint32_t)lease_rd_uint(r, 4);
}

static uint64_t lease_rd_u64(lease_rd *r)
{
	return lease_rd_uint(r, 8);
}

/* A u16-prefixed string of at most max bytes; NULL for an empty one. */
static const uint8_t *lease_rd_str(lease_rd *r, uint32_t max, uint32_t *n)
{
	*n = lease_rd_u16(r);
	if (*n > max)
		r->ok = false;
	if (!r->ok)
		return NULL;
	return *n == 0 ? NULL : lease_rd_take(r, *n);
}

static uint64_t lease_le64(const uint8_t *b)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

static uint32_t lease_le32(const uint8_t *b)
{
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
	       (uint32_t)b[3] << 24;
}

/* ---- commands ------------------------------------------------------------ */

/* Command format, version 2 (all integers little-endian; version 1, the
 * same without session_key, is still decoded: old ledgers):
 *   u8 version (2), u8 op, u64 since_tick_ms, u64 stamp_ms, then by op
 *   ACQUIRE      u64 session, u64 session_key, str name, u32 ttl_ms,
 *                u32 wait_ms, str value
 *   RENEW        u64 session, u64 session_key
 *   RELEASE      u64 session, u64 session_key, str name, u64 token
 *   REVOKE       str name, str reason
 *   EXPIRE       u16 ntokens, ntokens x (u64 token, u32 renewals)
 *   TICK         u64 elapsed_ms
 *   CANCEL_WAIT  u64 session, str name
 *   ABANDON      u64 token, str name
 * where str is a u16 length and the bytes. Nothing may follow. */
#define LEASE_CMD_VERSION 2u /* 2: session_key after session */
#define LEASE_PAIR_BYTES 12u
/* An EXPIRE of the most pairs: version, op, two u64 stamps, the u16 count. */
_Static_assert(1u + 1u + 8u + 8u + 2u +
			       LS_EXPIRE_TOKENS_MAX * LEASE_PAIR_BYTES <=
		       LD_CMD_BYTES_MAX,
	       "the largest EXPIRE fits a ledger command");
/* An ACQUIRE of the longest name and value (two sessions' u64s, two str
 * lengths, ttl and wait). */
_Static_assert(1u + 1u + 8u + 8u + 8u + 8u + 2u + LS_NAME_BYTES_MAX + 4u + 4u +
			       2u + LS_VALUE_BYTES_MAX <=
		       LD_CMD_BYTES_MAX,
	       "the largest ACQUIRE fits a ledger command");

bool ls_name_valid(const char *name, uint32_t len)
{
	if (name == NULL || len == 0 || len > LS_NAME_BYTES_MAX)
		return false;
	for (uint32_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)name[i];
		bool ok = (ch >= 'a' && ch <= 'z') ||
			  (ch >= 'A' && ch <= 'Z') ||
			  (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' ||
			  ch == '/' || ch == ':' || ch == '-';
		if (!ok)
			return false;
	}
	return true;
}

ls_status ls_cmd_check(const ls_cmd *c)
{
	if (c == NULL)
		return LS_E_MALFORMED;
	switch (c->op) {
	case LS_OP_ACQUIRE:
		if (c->session == 0)
			return LS_E_SESSION;
		if (!ls_name_valid(c->name, c->name_len))
			return LS_E_NAME;
		if (c->ttl_ms < LS_TTL_MS_MIN || c->ttl_ms > LS_TTL_MS_MAX)
			return LS_E_TTL;
		if (c->wait_ms > LS_WAIT_MS_MAX)
			return LS_E_WAIT;
		if (c->value_len > LS_VALUE_BYTES_MAX)
			return LS_E_VALUE;
		if (c->value_len > 0 && c->value == NULL)
			return LS_E_MALFORMED;
		return LS_OK;
	case LS_OP_RENEW:
		return c->session == 0 ? LS_E_SESSION : LS_OK;
	case LS_OP_RELEASE:
	case LS_OP_CANCEL_WAIT:
		if (c->session == 0)
			return LS_E_SESSION;
		if (!ls_name_valid(c->name, c->name_len))
			return LS_E_NAME;
		return LS_OK;
	case LS_OP_REVOKE:
		if (!ls_name_valid(c->name, c->name_len))
			return LS_E_NAME;
		if (c->reason_len > LS_REASON_BYTES_MAX)
			return LS_E_REASON;
		if (c->reason_len > 0 && c->reason == NULL)
			return LS_E_MALFORMED;
		return LS_OK;
	case LS_OP_EXPIRE:
		if (c->ntokens > LS_EXPIRE_TOKENS_MAX ||
		    (c->ntokens > 0 && c->tokens == NULL))
			return LS_E_MALFORMED;
		return LS_OK;
	case LS_OP_TICK:
		return LS_OK;
	case LS_OP_ABANDON:
		if (!ls_name_valid(c->name, c->name_len))
			return LS_E_NAME;
		return c->token == 0 ? LS_E_MALFORMED : LS_OK;
	}
	return LS_E_MALFORMED;
}

size_t ls_cmd_encode(const ls_cmd *c, uint8_t *buf, size_t cap)
{
	if (ls_cmd_check(c) != LS_OK || buf == NULL)
		return 0;
	lease_wr w = {.p = buf, .cap = cap, .ok = true};
	lease_wr_u8(&w, LEASE_CMD_VERSION);
	lease_wr_u8(&w, (uint8_t)c->op);
	lease_wr_u64(&w, c->since_tick_ms);
	lease_wr_u64(&w, c->stamp_ms);
	switch (c->op) {
	case LS_OP_ACQUIRE:
		lease_wr_u64(&w, c->session);
		lease_wr_u64(&w, c->session_key);
		lease_wr_str(&w, c->name, c->name_len);
		lease_wr_u32(&w, c->ttl_ms);
		lease_wr_u32(&w, c->wait_ms);
		lease_wr_str(&w, c->value, c->value_len);
		break;
	case LS_OP_RENEW:
		lease_wr_u64(&w, c->session);
		lease_wr_u64(&w, c->session_key);
		break;
	case LS_OP_RELEASE:
		lease_wr_u64(&w, c->session);
		lease_wr_u64(&w, c->session_key);
		lease_wr_str(&w, c->name, c->name_len);
		lease_wr_u64(&w, c->token);
		break;
	case LS_OP_REVOKE:
		lease_wr_str(&w, c->name, c->name_len);
		lease_wr_str(&w, c->reason, c->reason_len);
		break;
	case LS_OP_EXPIRE:
		lease_wr_u16(&w, (uint16_t)c->ntokens);
		lease_wr_bytes(&w, c->tokens,
			       (size_t)c->ntokens * LEASE_PAIR_BYTES);
		break;
	case LS_OP_TICK:
		lease_wr_u64(&w, c->elapsed_ms);
		break;
	case LS_OP_CANCEL_WAIT:
		lease_wr_u64(&w, c->session);
		lease_wr_str(&w, c->name, c->name_len);
		break;
	case LS_OP_ABANDON:
		lease_wr_u64(&w, c->token);
		lease_wr_str(&w, c->name, c->name_len);
		break;
	}
	return w.ok ? w.len : 0;
}

/* Strict: lengths over their limits and invalid names are malformed here;
 * TTL, wait and session ranges are left to ls_cmd_check, so that a command
 * that reached the ledger gets the precise error as its result. */
ls_status ls_cmd_decode(const uint8_t *buf, size_t len, ls_cmd *c)
{
	if (c == NULL)
		return LS_E_MALFORMED;
	memset(c, 0, sizeof *c);
	if (buf == NULL)
		return LS_E_MALFORMED;
	lease_rd r = {.p = buf, .len = len, .ok = true};
	uint32_t n;
	/* Version 1 (before session keys) is still read: old ledgers. */
	uint8_t version = lease_rd_u8(&r);
	if (version != 1 && version != LEASE_CMD_VERSION)
		return LS_E_MALFORMED;
	bool keyed = version >= 2;
	uint8_t op = lease_rd_u8(&r);
	c->since_tick_ms = lease_rd_u64(&r);
	c->stamp_ms = lease_rd_u64(&r);
	bool named = false;
	switch (op) {
	case LS_OP_ACQUIRE:
		c->session = lease_rd_u64(&r);
		c->session_key = keyed ? lease_rd_u64(&r) : 0;
		c->name = (const char *)lease_rd_str(&r, LS_NAME_BYTES_MAX, &n);
		c->name_len = n;
		c->ttl_ms = lease_rd_u32(&r);
		c->wait_ms = lease_rd_u32(&r);
		c->value = lease_rd_str(&r, LS_VALUE_BYTES_MAX, &n);
		c->value_len = n;
		named = true;
		break;
	case LS_OP_RENEW:
		c->session = lease_rd_u64(&r);
		c->session_key = keyed ? lease_rd_u64(&r) : 0;
		break;
	case LS_OP_RELEASE:
		c->session = lease_rd_u64(&r);
		c->session_key = keyed ? lease_rd_u64(&r) : 0;
		c->name = (const char *)lease_rd_str(&r, LS_NAME_BYTES_MAX, &n);
		c->name_len = n;
		c->token = lease_rd_u64(&r);
		named = true;
		break;
	case LS_OP_REVOKE:
		c->name = (const char *)lease_rd_str(&r, LS_NAME_BYTES_MAX, &n);
		c->name_len = n;
		c->reason =
			(const char *)lease_rd_str(&r, LS_REASON_BYTES_MAX, &n);
		c->reason_len = n;
		named = true;
		break;
	case LS_OP_EXPIRE:
		c->ntokens = lease_rd_u16(&r);
		if (c->ntokens > LS_EXPIRE_TOKENS_MAX)
			r.ok = false;
		c->tokens = lease_rd_take(&r, (size_t)c->ntokens *
						      LEASE_PAIR_BYTES);
		break;
	case LS_OP_TICK:
		c->elapsed_ms = lease_rd_u64(&r);
		break;
	case LS_OP_CANCEL_WAIT:
		c->session = lease_rd_u64(&r);
		c->name = (const char *)lease_rd_str(&r, LS_NAME_BYTES_MAX, &n);
		c->name_len = n;
		named = true;
		break;
	case LS_OP_ABANDON:
		c->token = lease_rd_u64(&r);
		c->name = (const char *)lease_rd_str(&r, LS_NAME_BYTES_MAX, &n);
		c->name_len = n;
		named = true;
		break;
	default:
		r.ok = false;
	}
	if (!r.ok || r.off != len ||
	    (named && !ls_name_valid(c->name, c->name_len))) {
		memset(c, 0, sizeof *c);
		return LS_E_MALFORMED;
	}
	c->op = (ls_op)op;
	return LS_OK;
}

/* ---- results ---------------------------------------------------------- */

/* Result format, version 1: u8 version, u8 status, u16 0, u32 position,
 * u64 token, u64 holder, u32 count, u32 0 = 32 bytes. */
#define LEASE_RESULT_VERSION 1u

size_t ls_result_encode(const ls_result *r, uint8_t *buf, size_t cap)
{
	if (r == NULL || buf == NULL || cap < LS_RESULT_BYTES ||
	    (unsigned)r->status >= LS_STATUS_COUNT)
		return 0;
	lease_wr w = {.p = buf, .cap = cap, .ok = true};
	lease_wr_u8(&w, LEASE_RESULT_VERSION);
	lease_wr_u8(&w, (uint8_t)r->status);
	lease_wr_u16(&w, 0);
	lease_wr_u32(&w, r->position);
	lease_wr_u64(&w, r->token);
	lease_wr_u64(&w, r->holder);
	lease_wr_u32(&w, r->count);
	lease_wr_u32(&w, 0);
	assert(w.ok && w.len == LS_RESULT_BYTES);
	return w.len;
}

ls_status ls_result_decode(const uint8_t *buf, size_t len, ls_result *r)
{
	if (r == NULL)
		return LS_E_MALFORMED;
	memset(r, 0, sizeof *r);
	if (buf == NULL || len != LS_RESULT_BYTES)
		return LS_E_MALFORMED;
	lease_rd rd = {.p = buf, .len = len, .ok = true};
	uint8_t version = lease_rd_u8(&rd);
	uint8_t status = lease_rd_u8(&rd);
	uint16_t pad16 = lease_rd_u16(&rd);
	r->position = lease_rd_u32(&rd);
	r->token = lease_rd_u64(&rd);
	r->holder = lease_rd_u64(&rd);
	r->count = lease_rd_u32(&rd);
	uint32_t pad32 = lease_rd_u32(&rd);
	if (!rd.ok || version != LEASE_RESULT_VERSION ||
	    status >= LS_STATUS_COUNT || pad16 != 0 || pad32 != 0) {
		memset(r, 0, sizeof *r);
		return LS_E_MALFORMED;
	}
	r->status = (ls_status)status;
	return LS_OK;
}

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

#define LEASE_HTAB_MIN 16u

static int lease_htab_init(lease_htab *h, size_t expect)
{
	size_t nb = LEASE_HTAB_MIN;
	while (nb < expect && nb < ((size_t)1 << 40))
		nb <<= 1;
	h->b = calloc(nb, sizeof *h->b);
	h->nb = h->b != NULL ? nb : 0;
	h->n = 0;
	return h->b != NULL ? 0 : -1;
}

static lease_hnode *lease_htab_bucket(const lease_htab *h, uint64_t hash)
{
	return h->b[hash & (h->nb - 1)];
}

/* Doubles the buckets; on failure keeps the old ones (longer chains, still
 * correct), so an insert never fails. */
static void lease_htab_grow(lease_htab *h)
{
	size_t nb = h->nb * 2;
	lease_hnode **b = calloc(nb, sizeof *b);
	if (b == NULL)
		return;
	for (size_t i = 0; i < h->nb; i++) {
		lease_hnode *e = h->b[i];
		while (e != NULL) {
			lease_hnode *next = e->next;
			e->next = b[e->hash & (nb - 1)];
			b[e->hash & (nb - 1)] = e;
			e = next;
		}
	}
	free(h->b);
	h->b = b;
	h->nb = nb;
}

static void lease_htab_insert(lease_htab *h, lease_hnode *e)
{
	if (h->n >= h->nb)
		lease_htab_grow(h);
	lease_hnode **head = &h->b[e->hash & (h->nb - 1)];
	e->next = *head;
	*head = e;
	h->n++;
}

static void lease_htab_remove(lease_htab *h, lease_hnode *e)
{
	lease_hnode **p = &h->b[e->hash & (h->nb - 1)];
	while (*p != e) {
		assert(*p != NULL);
		p = &(*p)->next;
	}
	*p = e->next;
	e->next = NULL;
	assert(h->n > 0);
	h->n--;
}

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
	struct lease_session *sess;
	struct lease_rec *s_prev, *s_next; /* the session's held list */
	uint64_t holder, token;
	uint32_t ttl_ms;
	uint8_t *value; /* malloc'd or NULL */
	uint32_t value_len;
	bool revoked;
	uint64_t renewed_clock_ms;
	uint32_t renewals;
	uint64_t granted_slot;
	uint64_t stamp_ms;
	lease_waiter *whead, *wtail;
	uint32_t nwaiters;
	uint32_t name_len;
	char name[];
} lease_rec;

/* A session exists while it holds or waits for something. */
typedef struct lease_session {
	lease_hnode node;
	uint64_t id;
	uint64_t key;           /* set by the ACQUIRE that made it (ls_cmd) */
	uint32_t nheld, nwait;  /* together <= LS_LEASES_PER_SESSION_MAX */
	lease_rec *head, *tail; /* held leases, in token order */
} lease_session;

/* Everything a snapshot holds; restore builds a new one and swaps it in. */
typedef struct lease_state {
	lease_htab by_name, by_token, sessions;
	uint64_t counter;  /* the last token granted */
	uint64_t clock_ms; /* the ledger clock */
	uint64_t digest;   /* hash chain over every apply */
	/* For the table's limits (derived: restore recounts them). */
	uint64_t nwaiters;   /* waiters on every name */
	uint64_t data_bytes; /* names, values and waiters' values */
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

/* A full table's snapshot, in the format below, with the exactly-once
 * client table beside it (about 28 bytes and one result per client), must
 * stay far inside the snapshot limit: a snapshot over it stops the replica,
 * and one that a client could push there would stop every replica. */
#define LEASE_SNAP_FULL_BYTES                                                  \
	(64ull + (uint64_t)LD_LEASES_MAX * 56u +                               \
	 (uint64_t)LD_LEASE_WAITERS_MAX * 26u + LD_LEASE_DATA_BYTES_MAX + 4u + \
	 (uint64_t)LD_LEASE_SESSIONS_MAX * 16u +                               \
	 (uint64_t)LD_CLIENTS_MAX * (32u + LD_RESULT_BYTES_MAX))
_Static_assert(LEASE_SNAP_FULL_BYTES <= LD_SNAPSHOT_BYTES_MAX / 2,
	       "a full lease table's snapshot must stay under half the limit");

/* Out of memory inside apply: the one place that may not fail, and where
 * skipping the command would make this replica diverge from the others. */
static void *lease_must(void *p)
{
	if (p == NULL)
		abort();
	return p;
}

static uint64_t lease_sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint64_t lease_name_hash(const char *name, uint32_t len)
{
	return px_hash(PX_HASH_SEED, name, len);
}

static lease_rec *lease_find(const lease_state *s, const char *name,
			     uint32_t len)
{
	if (name == NULL && len > 0)
		return NULL;
	uint64_t h = lease_name_hash(name, len);
	for (lease_hnode *e = lease_htab_bucket(&s->by_name, h); e != NULL;
	     e = e->next) {
		lease_rec *l = LEASE_OF(e, lease_rec, by_name);
		if (e->hash == h && l->name_len == len &&
		    memcmp(l->name, name, len) == 0)
			return l;
	}
	return NULL;
}

static lease_rec *lease_find_token(const lease_state *s, uint64_t token)
{
	uint64_t h = px_mix64(token);
	for (lease_hnode *e = lease_htab_bucket(&s->by_token, h); e != NULL;
	     e = e->next) {
		lease_rec *l = LEASE_OF(e, lease_rec, by_token);
		if (l->token == token)
			return l;
	}
	return NULL;
}

static lease_session *lease_session_find(const lease_state *s, uint64_t id)
{
	uint64_t h = px_mix64(id);
	for (lease_hnode *e = lease_htab_bucket(&s->sessions, h); e != NULL;
	     e = e->next) {
		lease_session *ss = LEASE_OF(e, lease_session, node);
		if (ss->id == id)
			return ss;
	}
	return NULL;
}

/* The session's record, made if needed. NULL only when out of memory. */
static lease_session *lease_session_get(lease_state *s, uint64_t id)
{
	lease_session *ss = lease_session_find(s, id);
	if (ss != NULL)
		return ss;
	ss = calloc(1, sizeof *ss);
	if (ss == NULL)
		return NULL;
	ss->id = id;
	ss->node.hash = px_mix64(id);
	lease_htab_insert(&s->sessions, &ss->node);
	return ss;
}

static void lease_session_put(lease_state *s, lease_session *ss)
{
	if (ss->nheld == 0 && ss->nwait == 0) {
		assert(ss->head == NULL && ss->tail == NULL);
		lease_htab_remove(&s->sessions, &ss->node);
		free(ss);
	}
}

static uint32_t lease_session_total(const lease_state *s, uint64_t id)
{
	const lease_session *ss = lease_session_find(s, id);
	return ss == NULL ? 0 : ss->nheld + ss->nwait;
}

/* Makes l held by ss with token: token index and the tail of ss's list
 * (tokens only grow, so the list stays in token order). */
static void lease_attach(lease_state *s, lease_rec *l, lease_session *ss)
{
	assert(ss->tail == NULL || ss->tail->token < l->token);
	l->sess = ss;
	l->holder = ss->id;
	l->s_next = NULL;
	l->s_prev = ss->tail;
	if (ss->tail != NULL)
		ss->tail->s_next = l;
	else
		ss->head = l;
	ss->tail = l;
	ss->nheld++;
	l->by_token.hash = px_mix64(l->token);
	lease_htab_insert(&s->by_token, &l->by_token);
}

static void lease_detach(lease_state *s, lease_rec *l)
{
	lease_session *ss = l->sess;
	assert(ss != NULL && ss->nheld > 0);
	if (l->s_prev != NULL)
		l->s_prev->s_next = l->s_next;
	else
		ss->head = l->s_next;
	if (l->s_next != NULL)
		l->s_next->s_prev = l->s_prev;
	else
		ss->tail = l->s_prev;
	l->s_prev = l->s_next = NULL;
	ss->nheld--;
	l->sess = NULL;
	lease_htab_remove(&s->by_token, &l->by_token);
	lease_session_put(s, ss);
}

static void lease_waiter_free(lease_waiter *w)
{
	free(w->value);
	free(w);
}

static void lease_rec_free(lease_rec *l)
{
	lease_waiter *w = l->whead;
	while (w != NULL) {
		lease_waiter *next = w->next;
		lease_waiter_free(w);
		w = next;
	}
	free(l->value);
	free(l);
}

static void lease_state_free(lease_state *s)
{
	for (size_t i = 0; i < s->by_name.nb; i++) {
		lease_hnode *e = s->by_name.b[i];
		while (e != NULL) {
			lease_hnode *next = e->next;
			lease_rec_free(LEASE_OF(e, lease_rec, by_name));
			e = next;
		}
	}
	for (size_t i = 0; i < s->sessions.nb; i++) {
		lease_hnode *e = s->sessions.b[i];
		while (e != NULL) {
			lease_hnode *next = e->next;
			free(LEASE_OF(e, lease_session, node));
			e = next;
		}
	}
	free(s->by_name.b);
	free(s->by_token.b);
	free(s->sessions.b);
	memset(s, 0, sizeof *s);
}

static int lease_state_init(lease_state *s, size_t nleases)
{
	memset(s, 0, sizeof *s);
	s->digest = PX_HASH_SEED;
	if (lease_htab_init(&s->by_name, nleases) != 0 ||
	    lease_htab_init(&s->by_token, nleases) != 0 ||
	    lease_htab_init(&s->sessions, LEASE_HTAB_MIN) != 0) {
		lease_state_free(s);
		return -1;
	}
	return 0;
}

/* ---- the journal -------------------------------------------------------- */

#define LEASE_CHUNK_BYTES 65536u

/* A copy of name that lives until the journal is cleared. */
static const char *lease_arena_copy(ls_table *t, const char *name, uint32_t len)
{
	lease_chunk *c = t->arena;
	if (c == NULL || c->cap - c->used < len) {
		size_t cap = len > LEASE_CHUNK_BYTES ? len : LEASE_CHUNK_BYTES;
		c = lease_must(malloc(sizeof *c + cap));
		c->next = t->arena;
		c->cap = cap;
		c->used = 0;
		t->arena = c;
	}
	char *p = c->data + c->used;
	memcpy(p, name, len);
	c->used += len;
	return p;
}

static void lease_journal(ls_table *t, ls_change_kind kind, uint64_t slot,
			  const lease_rec *l, uint64_t token, uint64_t session)
{
	if (t->njournal == t->journal_cap) {
		size_t cap = t->journal_cap ? 2 * t->journal_cap : 64;
		t->journal = lease_must(
			realloc(t->journal, cap * sizeof *t->journal));
		t->journal_cap = cap;
	}
	ls_change *ch = &t->journal[t->njournal++];
	memset(ch, 0, sizeof *ch);
	ch->kind = kind;
	ch->token = token;
	ch->session = session;
	ch->slot = slot;
	ch->name = lease_arena_copy(t, l->name, l->name_len);
	ch->name_len = l->name_len;
	if (kind == LS_CH_GRANTED || kind == LS_CH_RENEWED) {
		ch->ttl_ms = l->ttl_ms;
		ch->renewals = l->renewals;
	}
}

const ls_change *ls_table_journal(const ls_table *t, size_t *n)
{
	if (n != NULL)
		*n = t->njournal;
	return t->journal;
}

void ls_table_set_tap(ls_table *t, ls_tap_fn fn, void *arg)
{
	t->tap = fn;
	t->tap_arg = arg;
}

void ls_table_journal_clear(ls_table *t)
{
	t->njournal = 0;
	while (t->arena != NULL) {
		lease_chunk *next = t->arena->next;
		free(t->arena);
		t->arena = next;
	}
}

/* ---- applying commands ------------------------------------------------- */

/* The mutant is honoured in every build (so that the unit test can show it
 * is caught): the node maps the cell's ld_mutant to it only in the
 * LD_MUTANTS build, so the daemon never sets it. UNCHECKED_REGRANT: RELEASE
 * skips the holder and token check; EXPIRE ends the token's lease whatever
 * its renewals count (a renewal no longer cancels an expiry). A stale token
 * (its lease already gone) still ends nothing: the table keeps no map from
 * old tokens to names. */
#define LEASE_MUTANT(t, m) ((t)->mutant == (m))

/* The context of the command being applied. */
typedef struct lease_ctx {
	uint64_t slot;
	uint64_t since_tick_ms;
	uint64_t stamp_ms;
} lease_ctx;

static uint64_t lease_now(const ls_table *t, const lease_ctx *x)
{
	return lease_sat_add(t->st.clock_ms, x->since_tick_ms);
}

static void lease_view(const lease_rec *l, ls_view *v);

/* A new grant takes the next token; its clock reading is clock +
 * since_tick_ms, never earlier than the truth (see lease.h). */
static void lease_grant(ls_table *t, const lease_ctx *x, lease_rec *l,
			lease_session *ss, uint32_t ttl_ms)
{
	assert(t->st.counter < UINT64_MAX);
	l->token = ++t->st.counter;
	l->ttl_ms = ttl_ms;
	l->revoked = false;
	l->renewals = 0;
	l->renewed_clock_ms = lease_now(t, x);
	l->granted_slot = x->slot;
	l->stamp_ms = x->stamp_ms;
	lease_attach(&t->st, l, ss);
	lease_journal(t, LS_CH_GRANTED, x->slot, l, l->token, l->holder);
	if (t->tap != NULL) {
		ls_view v;
		lease_view(l, &v);
		t->tap(t->tap_arg, x->slot, l->name, l->name_len, &v);
	}
}

/* Ends l's current holding and hands the name to the first waiter at once;
 * frees the record when nobody waits. */
static void lease_end(ls_table *t, const lease_ctx *x, lease_rec *l)
{
	lease_journal(t, LS_CH_ENDED, x->slot, l, l->token, l->holder);
	if (t->tap != NULL)
		t->tap(t->tap_arg, x->slot, l->name, l->name_len, NULL);
	lease_detach(&t->st, l);
	assert(t->st.data_bytes >= l->value_len);
	t->st.data_bytes -= l->value_len;
	free(l->value);
	l->value = NULL;
	l->value_len = 0;
	lease_waiter *w = l->whead;
	if (w == NULL) {
		assert(t->st.data_bytes >= l->name_len);
		t->st.data_bytes -= l->name_len;
		lease_htab_remove(&t->st.by_name, &l->by_name);
		lease_rec_free(l);
		return;
	}
	l->whead = w->next;
	if (l->whead == NULL)
		l->wtail = NULL;
	l->nwaiters--;
	assert(t->st.nwaiters > 0);
	t->st.nwaiters--; /* its value's bytes pass to the lease */
	lease_session *ss = lease_session_find(&t->st, w->session);
	assert(ss != NULL && ss->nwait > 0);
	ss->nwait--; /* the wait becomes a hold: the session's total stays */
	l->value = w->value;
	l->value_len = w->value_len;
	w->value = NULL;
	lease_grant(t, x, l, ss, w->ttl_ms);
	lease_waiter_free(w);
}

/* 1-based position of session in l's queue, 0 if absent. */
static uint32_t lease_queue_pos(lease_rec *l, uint64_t session,
				lease_waiter ***link)
{
	uint32_t pos = 1;
	lease_waiter **p = &l->whead;
	for (; *p != NULL; p = &(*p)->next, pos++) {
		if ((*p)->session == session) {
			if (link != NULL)
				*link = p;
			return pos;
		}
	}
	return 0;
}

static uint8_t *lease_dup(const uint8_t *b, uint32_t n)
{
	if (n == 0)
		return NULL;
	uint8_t *p = lease_must(malloc(n));
	memcpy(p, b, n);
	return p;
}

/* Would the table stay within its limits with `leases` and `waiters` more
 * records, `bytes` more data, and (if new) the command's session? */
static bool lease_fits(const lease_state *s, const ls_cmd *c, uint32_t leases,
		       uint32_t waiters, uint64_t bytes)
{
	if (s->by_name.n + leases > LD_LEASES_MAX ||
	    s->nwaiters + waiters > LD_LEASE_WAITERS_MAX ||
	    s->data_bytes + bytes > LD_LEASE_DATA_BYTES_MAX)
		return false;
	return lease_session_find(s, c->session) != NULL ||
	       s->sessions.n < LD_LEASE_SESSIONS_MAX;
}

static void lease_acquire(ls_table *t, const lease_ctx *x, const ls_cmd *c,
			  ls_result *r)
{
	lease_state *s = &t->st;
	/* The cell's maximum, enforced where every replica decides alike (the
	 * leader's admission checks it too, to answer early). */
	if (c->ttl_ms > t->ttl_ms_max) {
		r->status = LS_E_TTL;
		return;
	}
	lease_rec *l = lease_find(s, c->name, c->name_len);
	if (l == NULL) {
		if (lease_session_total(s, c->session) >=
		    LS_LEASES_PER_SESSION_MAX) {
			r->status = LS_E_TOO_MANY_LEASES;
			return;
		}
		if (!lease_fits(s, c, 1, 0,
				(uint64_t)c->name_len + c->value_len)) {
			r->status = LS_E_TABLE_FULL;
			return;
		}
		s->data_bytes += (uint64_t)c->name_len + c->value_len;
		l = lease_must(calloc(1, sizeof *l + c->name_len));
		memcpy(l->name, c->name, c->name_len);
		l->name_len = c->name_len;
		l->value = lease_dup(c->value, c->value_len);
		l->value_len = c->value_len;
		l->by_name.hash = lease_name_hash(l->name, l->name_len);
		lease_htab_insert(&s->by_name, &l->by_name);
		lease_session *ss =
			lease_must(lease_session_get(s, c->session));
		ss->key = c->session_key; /* (checked equal if it existed) */
		lease_grant(t, x, l, ss, c->ttl_ms);
		r->status = LS_GRANTED;
		r->token = l->token;
		r->holder = l->holder;
		return;
	}
	r->holder = l->holder;
	if (l->holder == c->session) {
		/* The holder's own re-acquire returns its lease, and renews
		 * it with this request's TTL: the client counts its deadline
		 * from this request, so the leader must too. A revoked lease
		 * is never extended, not even this way. */
		if (l->revoked) {
			r->status = LS_HELD;
			return;
		}
		l->ttl_ms = c->ttl_ms;
		if (l->renewals < UINT32_MAX)
			l->renewals++;
		l->renewed_clock_ms = lease_now(t, x);
		l->stamp_ms = x->stamp_ms;
		lease_journal(t, LS_CH_RENEWED, x->slot, l, l->token,
			      l->holder);
		r->status = LS_GRANTED;
		r->token = l->token;
		return;
	}
	lease_waiter **link = NULL;
	uint32_t pos = lease_queue_pos(l, c->session, &link);
	if (pos > 0) {
		/* A repeated acquire from a waiter (say after its client gave
		 * up waiting and asked again) keeps its place. Its latest TTL
		 * and value are what its client will count with when granted;
		 * a new wait (not a try-once) restarts the wait. */
		lease_waiter *w = *link;
		if (c->value_len > w->value_len &&
		    !lease_fits(s, c, 0, 0, c->value_len - w->value_len)) {
			r->status = LS_E_TABLE_FULL;
			return;
		}
		s->data_bytes = s->data_bytes - w->value_len + c->value_len;
		w->ttl_ms = c->ttl_ms;
		free(w->value);
		w->value = lease_dup(c->value, c->value_len);
		w->value_len = c->value_len;
		if (c->wait_ms > 0) {
			w->wait_ms = c->wait_ms;
			lease_journal(t, LS_CH_QUEUED, x->slot, l, 0,
				      c->session);
			t->journal[t->njournal - 1].wait_ms = c->wait_ms;
		}
		r->status = LS_QUEUED;
		r->position = pos;
		return;
	}
	if (c->wait_ms == 0) {
		r->status = LS_HELD;
		return;
	}
	if (l->nwaiters >= LS_WAITERS_PER_NAME_MAX) {
		r->status = LS_E_TOO_MANY_WAITERS;
		return;
	}
	if (lease_session_total(s, c->session) >= LS_LEASES_PER_SESSION_MAX) {
		r->status = LS_E_TOO_MANY_LEASES;
		return;
	}
	if (!lease_fits(s, c, 0, 1, c->value_len)) {
		r->status = LS_E_TABLE_FULL;
		return;
	}
	s->nwaiters++;
	s->data_bytes += c->value_len;
	lease_waiter *w = lease_must(calloc(1, sizeof *w));
	w->session = c->session;
	w->ttl_ms = c->ttl_ms;
	w->wait_ms = c->wait_ms;
	w->queued_slot = x->slot;
	w->value = lease_dup(c->value, c->value_len);
	w->value_len = c->value_len;
	if (l->wtail != NULL)
		l->wtail->next = w;
	else
		l->whead = w;
	l->wtail = w;
	l->nwaiters++;
	lease_session *ss = lease_must(lease_session_get(s, c->session));
	ss->key = c->session_key; /* (checked equal if it existed) */
	ss->nwait++;
	lease_journal(t, LS_CH_QUEUED, x->slot, l, 0, c->session);
	t->journal[t->njournal - 1].wait_ms = c->wait_ms;
	r->status = LS_QUEUED;
	r->position = l->nwaiters;
}

static void lease_renew(ls_table *t, const lease_ctx *x, const ls_cmd *c,
			ls_result *r)
{
	lease_session *ss = lease_session_find(&t->st, c->session);
	uint32_t n = 0;
	r->status = LS_OK;
	if (ss == NULL)
		return;
	for (lease_rec *l = ss->head; l != NULL; l = l->s_next) {
		/* A revoked lease runs out: its holder must not extend it. */
		if (l->revoked)
			continue;
		if (l->renewals < UINT32_MAX)
			l->renewals++;
		l->renewed_clock_ms = lease_now(t, x);
		l->stamp_ms = x->stamp_ms;
		lease_journal(t, LS_CH_RENEWED, x->slot, l, l->token,
			      l->holder);
		n++;
	}
	r->count = n;
}

static void lease_release(ls_table *t, const lease_ctx *x, const ls_cmd *c,
			  ls_result *r)
{
	lease_rec *l = lease_find(&t->st, c->name, c->name_len);
	if (l == NULL) {
		r->status = LS_NO_SUCH_LEASE;
		return;
	}
	/* Only the holder, with its own token, ends the lease: a late release
	 * from an earlier holder must not free a newer holder's lease. */
	if (!LEASE_MUTANT(t, LS_MUTANT_UNCHECKED_REGRANT) &&
	    (l->holder != c->session || l->token != c->token)) {
		r->status = LS_NOT_HOLDER;
		r->holder = l->holder;
		return;
	}
	r->status = LS_OK;
	r->token = l->token;
	r->count = 1;
	lease_end(t, x, l);
}

static void lease_revoke(ls_table *t, const lease_ctx *x, const ls_cmd *c,
			 ls_result *r)
{
	lease_rec *l = lease_find(&t->st, c->name, c->name_len);
	if (l == NULL) {
		r->status = LS_NO_SUCH_LEASE;
		return;
	}
	r->status = LS_OK;
	r->token = l->token;
	r->holder = l->holder;
	if (l->revoked)
		return;
	l->revoked = true;
	lease_journal(t, LS_CH_REVOKED, x->slot, l, l->token, l->holder);
}

/* The leader's revoke of one grant whose client is gone: only while that
 * grant is still the name's lease (a later holder's is not touched). */
static void lease_abandon(ls_table *t, const lease_ctx *x, const ls_cmd *c,
			  ls_result *r)
{
	lease_rec *l = lease_find(&t->st, c->name, c->name_len);
	if (l == NULL || l->token != c->token) {
		r->status = LS_NO_SUCH_LEASE;
		return;
	}
	lease_revoke(t, x, c, r);
}

static void lease_expire(ls_table *t, const lease_ctx *x, const ls_cmd *c,
			 ls_result *r)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < c->ntokens; i++) {
		const uint8_t *p = c->tokens + (size_t)i * LEASE_PAIR_BYTES;
		uint64_t token = lease_le64(p);
		uint32_t renewals = lease_le32(p + 8);
		lease_rec *l = lease_find_token(&t->st, token);
		if (l == NULL)
			continue;
		/* A renewal ordered before the expiry cancels it: the leader
		 * saw a different lease from the one there now. */
		if (l->renewals != renewals &&
		    !LEASE_MUTANT(t, LS_MUTANT_UNCHECKED_REGRANT))
			continue;
		lease_end(t, x, l);
		n++;
	}
	r->status = LS_OK;
	r->count = n;
}

static void lease_cancel_wait(ls_table *t, const lease_ctx *x, const ls_cmd *c,
			      ls_result *r)
{
	lease_rec *l = lease_find(&t->st, c->name, c->name_len);
	lease_waiter **link = NULL;
	if (l == NULL || lease_queue_pos(l, c->session, &link) == 0) {
		r->status = LS_NO_SUCH_LEASE;
		return;
	}
	lease_waiter *w = *link;
	*link = w->next;
	if (l->wtail == w) /* the new tail is the waiter link belongs to */
		l->wtail = link == &l->whead
				   ? NULL
				   : LEASE_OF(link, lease_waiter, next);
	l->nwaiters--;
	assert(t->st.nwaiters > 0 && t->st.data_bytes >= w->value_len);
	t->st.nwaiters--;
	t->st.data_bytes -= w->value_len;
	lease_session *ss = lease_session_find(&t->st, w->session);
	assert(ss != NULL && ss->nwait > 0);
	ss->nwait--;
	lease_session_put(&t->st, ss);
	lease_journal(t, LS_CH_UNQUEUED, x->slot, l, 0, w->session);
	lease_waiter_free(w);
	r->status = LS_OK;
	r->holder = l->holder;
}

static void lease_apply_cmd(ls_table *t, uint64_t slot, const ls_cmd *c,
			    ls_result *r)
{
	lease_ctx x = {.slot = slot,
		       .since_tick_ms = c->since_tick_ms,
		       .stamp_ms = c->stamp_ms};
	switch (c->op) {
	case LS_OP_ACQUIRE:
		lease_acquire(t, &x, c, r);
		return;
	case LS_OP_RENEW:
		lease_renew(t, &x, c, r);
		return;
	case LS_OP_RELEASE:
		lease_release(t, &x, c, r);
		return;
	case LS_OP_REVOKE:
		lease_revoke(t, &x, c, r);
		return;
	case LS_OP_EXPIRE:
		lease_expire(t, &x, c, r);
		return;
	case LS_OP_TICK:
		t->st.clock_ms = lease_sat_add(t->st.clock_ms, c->elapsed_ms);
		r->status = LS_OK;
		return;
	case LS_OP_CANCEL_WAIT:
		lease_cancel_wait(t, &x, c, r);
		return;
	case LS_OP_ABANDON:
		lease_abandon(t, &x, c, r);
		return;
	}
	r->status = LS_E_MALFORMED;
}

static ls_table *lease_table_of(px_sm *sm)
{
	return LEASE_OF(sm, ls_table, sm);
}

static size_t lease_sm_apply(px_sm *sm, uint64_t slot, const px_cmd *cmd,
			     uint8_t *out, size_t cap)
{
	ls_table *t = lease_table_of(sm);
	ls_result r = {.status = LS_E_MALFORMED};
	ls_cmd c;
	const uint8_t *data = cmd != NULL ? cmd->data : NULL;
	uint32_t len = cmd != NULL ? cmd->len : 0;
	if (data != NULL && ls_cmd_decode(data, len, &c) == LS_OK) {
		/* A command that reached the ledger unchecked gets the error a
		 * client would have got, and changes nothing. */
		r.status = ls_cmd_check(&c);
		/* A session's commands are its own: one that names another
		 * session than the client that sent it acts for nobody. */
		bool by_session = c.op == LS_OP_ACQUIRE ||
				  c.op == LS_OP_RENEW || c.op == LS_OP_RELEASE;
		if (r.status == LS_OK && by_session &&
		    c.session != cmd->client_id)
			r.status = c.op == LS_OP_RELEASE ? LS_NOT_HOLDER
							 : LS_E_SESSION;
		/* ... and a session's id alone is not the session: its key
		 * must be the one its first ACQUIRE set. */
		if (r.status == LS_OK && by_session) {
			const lease_session *ss =
				lease_session_find(&t->st, c.session);
			if (ss != NULL && ss->key != c.session_key)
				r.status = LS_E_NOT_OWNER;
		}
		if (r.status == LS_OK)
			lease_apply_cmd(t, slot, &c, &r);
	}
	uint8_t res[LS_RESULT_BYTES];
	size_t n = ls_result_encode(&r, res, sizeof res);
	assert(n == LS_RESULT_BYTES);

	/* The digest is a hash chain over (slot, command, result): O(1) per
	 * decree, and equal on replicas that applied the same history. */
	uint8_t hdr[12];
	for (int i = 0; i < 8; i++)
		hdr[i] = (uint8_t)(slot >> (8 * i));
	for (int i = 0; i < 4; i++)
		hdr[8 + i] = (uint8_t)(len >> (8 * i));
	t->st.digest = px_hash(t->st.digest, hdr, sizeof hdr);
	if (data != NULL)
		t->st.digest = px_hash(t->st.digest, data, len);
	t->st.digest = px_hash(t->st.digest, res, n);

	if (out == NULL || cap < n)
		return 0;
	memcpy(out, res, n);
	return n;
}

/* ---- snapshot and restore ---------------------------------------------- */

/* Snapshot format, version 2 (little-endian; version 1, without the keys,
 * is still read):
 *   u32 magic "LSNP", u32 version (2), u64 counter, u64 clock_ms, u64 digest,
 *   u64 nleases, then nleases leases in increasing token order:
 *     str name, u64 holder, u64 token, u32 ttl_ms, str value, u8 revoked,
 *     u64 renewed_clock_ms, u32 renewals, u64 granted_slot, u64 stamp_ms,
 *     u16 nwaiters, then the waiters in queue order:
 *       u64 session, u32 ttl_ms, u32 wait_ms, u64 queued_slot, str value
 *   u32 nkeys, then nkeys x (u64 session, u64 key): the sessions that have
 *     a key, in the session hash table's bucket order
 *   u64 checksum: px_hash of every byte before it.
 * Token order lets restore rebuild each session's list in the same (token)
 * order. The leases' bytes are a function of the history alone; the keys'
 * order is not (it follows the hash table's size), which nothing compares:
 * restore looks each key up, and replicas compare digest, not bytes. */
#define LEASE_SNAP_MAGIC 0x504e534cu
#define LEASE_SNAP_VERSION 2u    /* 2: session keys after the leases */
#define LEASE_SNAP_LEASE_MIN 56u /* bytes of a lease with empty strings */
/* The largest token counter a snapshot may hold: 2^62 grants is 146,000
 * years at a million a second. */
#define LEASE_COUNTER_MAX (1ULL << 62)

static int lease_cmp_token(const void *a, const void *b)
{
	const lease_rec *x = *(const lease_rec *const *)a;
	const lease_rec *y = *(const lease_rec *const *)b;
	return x->token < y->token ? -1 : x->token > y->token;
}

/* Every lease, in the given order; NULL when out of memory (or none). */
static lease_rec **lease_collect(const lease_state *s, size_t *n)
{
	*n = s->by_name.n;
	if (*n == 0)
		return NULL;
	lease_rec **v = malloc(*n * sizeof *v);
	if (v == NULL)
		return NULL;
	size_t k = 0;
	for (size_t i = 0; i < s->by_name.nb; i++)
		for (lease_hnode *e = s->by_name.b[i]; e != NULL; e = e->next)
			v[k++] = LEASE_OF(e, lease_rec, by_name);
	assert(k == *n);
	return v;
}

static void lease_snap_write(lease_wr *w, const lease_state *s,
			     lease_rec *const *v, size_t n)
{
	lease_wr_u32(w, LEASE_SNAP_MAGIC);
	lease_wr_u32(w, LEASE_SNAP_VERSION);
	lease_wr_u64(w, s->counter);
	lease_wr_u64(w, s->clock_ms);
	lease_wr_u64(w, s->digest);
	lease_wr_u64(w, n);
	for (size_t i = 0; i < n; i++) {
		const lease_rec *l = v[i];
		lease_wr_str(w, l->name, l->name_len);
		lease_wr_u64(w, l->holder);
		lease_wr_u64(w, l->token);
		lease_wr_u32(w, l->ttl_ms);
		lease_wr_str(w, l->value, l->value_len);
		lease_wr_u8(w, l->revoked ? 1 : 0);
		lease_wr_u64(w, l->renewed_clock_ms);
		lease_wr_u32(w, l->renewals);
		lease_wr_u64(w, l->granted_slot);
		lease_wr_u64(w, l->stamp_ms);
		lease_wr_u16(w, (uint16_t)l->nwaiters);
		for (const lease_waiter *q = l->whead; q != NULL; q = q->next) {
			lease_wr_u64(w, q->session);
			lease_wr_u32(w, q->ttl_ms);
			lease_wr_u32(w, q->wait_ms);
			lease_wr_u64(w, q->queued_slot);
			lease_wr_str(w, q->value, q->value_len);
		}
	}
	/* Session keys, for the sessions that have one, in id order is not
	 * needed: restore looks each up. */
	uint32_t nk = 0;
	for (size_t i = 0; i < s->sessions.nb; i++)
		for (lease_hnode *e = s->sessions.b[i]; e != NULL; e = e->next)
			nk += LEASE_OF(e, lease_session, node)->key != 0;
	lease_wr_u32(w, nk);
	for (size_t i = 0; i < s->sessions.nb; i++)
		for (lease_hnode *e = s->sessions.b[i]; e != NULL;
		     e = e->next) {
			const lease_session *ss =
				LEASE_OF(e, lease_session, node);
			if (ss->key == 0)
				continue;
			lease_wr_u64(w, ss->id);
			lease_wr_u64(w, ss->key);
		}
	if (w->p != NULL && w->ok)
		lease_wr_u64(w, px_hash(PX_HASH_SEED, w->p, w->len));
	else
		lease_wr_u64(w, 0);
}

static int lease_sm_snapshot(px_sm *sm, uint8_t **out, size_t *len)
{
	const ls_table *t = lease_table_of(sm);
	size_t n;
	lease_rec **v = lease_collect(&t->st, &n);
	if (v == NULL && n > 0)
		return -1;
	if (n > 1)
		qsort(v, n, sizeof *v, lease_cmp_token);
	lease_wr cw = {.p = NULL, .cap = SIZE_MAX, .ok = true};
	lease_snap_write(&cw, &t->st, v, n);
	uint8_t *buf = cw.ok ? malloc(cw.len) : NULL;
	if (buf == NULL) {
		free(v);
		return -1;
	}
	lease_wr w = {.p = buf, .cap = cw.len, .ok = true};
	lease_snap_write(&w, &t->st, v, n);
	free(v);
	assert(w.ok && w.len == cw.len);
	*out = buf;
	*len = w.len;
	return 0;
}

static int lease_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Reads one waiter onto l's queue. -1 if malformed or out of memory. */
static int lease_restore_waiter(lease_state *s, lease_rd *r, lease_rec *l,
				uint64_t *sessions)
{
	uint32_t n;
	uint64_t session = lease_rd_u64(r);
	uint32_t ttl_ms = lease_rd_u32(r);
	uint32_t wait_ms = lease_rd_u32(r);
	uint64_t queued_slot = lease_rd_u64(r);
	const uint8_t *value = lease_rd_str(r, LS_VALUE_BYTES_MAX, &n);
	if (!r->ok || session == 0 || session == l->holder ||
	    ttl_ms < LS_TTL_MS_MIN || ttl_ms > LS_TTL_MS_MAX || wait_ms == 0 ||
	    wait_ms > LS_WAIT_MS_MAX)
		return -1;
	lease_waiter *w = calloc(1, sizeof *w);
	if (w == NULL)
		return -1;
	w->session = session;
	w->ttl_ms = ttl_ms;
	w->wait_ms = wait_ms;
	w->queued_slot = queued_slot;
	w->value_len = n;
	if (n > 0 && (w->value = malloc(n)) == NULL) {
		free(w);
		return -1;
	}
	s->nwaiters++;
	s->data_bytes += n;
	if (n > 0)
		memcpy(w->value, value, n);
	if (l->wtail != NULL)
		l->wtail->next = w;
	else
		l->whead = w;
	l->wtail = w;
	sessions[l->nwaiters++] = session;
	lease_session *ss = lease_session_get(s, session);
	if (ss == NULL)
		return -1;
	ss->nwait++;
	return 0;
}

/* Reads one lease into s. *last is the previous lease's token (they must
 * increase). -1 if malformed or out of memory. */
static int lease_restore_one(lease_state *s, lease_rd *r, uint64_t *last)
{
	uint32_t name_len, value_len;
	const char *name =
		(const char *)lease_rd_str(r, LS_NAME_BYTES_MAX, &name_len);
	uint64_t holder = lease_rd_u64(r);
	uint64_t token = lease_rd_u64(r);
	uint32_t ttl_ms = lease_rd_u32(r);
	const uint8_t *value = lease_rd_str(r, LS_VALUE_BYTES_MAX, &value_len);
	uint8_t revoked = lease_rd_u8(r);
	if (!r->ok || !ls_name_valid(name, name_len) || holder == 0 ||
	    token <= *last || token > s->counter || ttl_ms < LS_TTL_MS_MIN ||
	    ttl_ms > LS_TTL_MS_MAX || revoked > 1 ||
	    lease_find(s, name, name_len) != NULL)
		return -1;
	*last = token;
	lease_rec *l = calloc(1, sizeof *l + name_len);
	if (l == NULL)
		return -1;
	memcpy(l->name, name, name_len);
	l->name_len = name_len;
	l->by_name.hash = lease_name_hash(name, name_len);
	lease_htab_insert(&s->by_name, &l->by_name);
	s->data_bytes += (uint64_t)name_len + value_len;
	l->value_len = value_len;
	if (value_len > 0) {
		l->value = malloc(value_len);
		if (l->value == NULL)
			return -1;
		memcpy(l->value, value, value_len);
	}
	l->token = token;
	l->ttl_ms = ttl_ms;
	l->revoked = revoked != 0;
	l->renewed_clock_ms = lease_rd_u64(r);
	l->renewals = lease_rd_u32(r);
	l->granted_slot = lease_rd_u64(r);
	l->stamp_ms = lease_rd_u64(r);
	lease_session *ss = lease_session_get(s, holder);
	if (ss == NULL)
		return -1;
	lease_attach(s, l, ss);
	uint16_t nwaiters = lease_rd_u16(r);
	if (!r->ok || nwaiters > LS_WAITERS_PER_NAME_MAX)
		return -1;
	uint64_t sessions[LS_WAITERS_PER_NAME_MAX];
	for (uint32_t i = 0; i < nwaiters; i++)
		if (lease_restore_waiter(s, r, l, sessions) != 0)
			return -1;
	/* A session waits at most once per name. */
	qsort(sessions, nwaiters, sizeof sessions[0], lease_cmp_u64);
	for (uint32_t i = 1; i < nwaiters; i++)
		if (sessions[i] == sessions[i - 1])
			return -1;
	return 0;
}

static bool lease_sessions_within_limits(const lease_state *s)
{
	for (size_t i = 0; i < s->sessions.nb; i++)
		for (lease_hnode *e = s->sessions.b[i]; e != NULL;
		     e = e->next) {
			const lease_session *ss =
				LEASE_OF(e, lease_session, node);
			if (ss->nheld + ss->nwait > LS_LEASES_PER_SESSION_MAX)
				return false;
		}
	return true;
}

static int lease_sm_restore(px_sm *sm, const uint8_t *buf, size_t len)
{
	ls_table *t = lease_table_of(sm);
	if (buf == NULL || len < 8)
		return -1;
	uint64_t sum = lease_le64(buf + len - 8);
	if (px_hash(PX_HASH_SEED, buf, len - 8) != sum)
		return -1;
	lease_rd r = {.p = buf, .len = len - 8, .ok = true};
	uint32_t magic = lease_rd_u32(&r);
	uint32_t version = lease_rd_u32(&r);
	uint64_t counter = lease_rd_u64(&r);
	uint64_t clock_ms = lease_rd_u64(&r);
	uint64_t digest = lease_rd_u64(&r);
	uint64_t n = lease_rd_u64(&r);
	/* Bound the count by the bytes before trusting it with memory. A
	 * token counter must leave room for grants: applies add one per
	 * grant, so from here it can never reach the end (lease_grant). */
	if (!r.ok || magic != LEASE_SNAP_MAGIC ||
	    (version != 1 && version != LEASE_SNAP_VERSION) ||
	    n > (r.len - r.off) / LEASE_SNAP_LEASE_MIN ||
	    counter > LEASE_COUNTER_MAX)
		return -1;
	lease_state s;
	if (lease_state_init(&s, (size_t)n) != 0)
		return -1;
	s.counter = counter;
	s.clock_ms = clock_ms;
	s.digest = digest;
	uint64_t last = 0;
	for (uint64_t i = 0; i < n; i++) {
		if (lease_restore_one(&s, &r, &last) != 0) {
			lease_state_free(&s);
			return -1;
		}
	}
	uint32_t nk = version >= 2 ? lease_rd_u32(&r) : 0;
	if (nk > s.sessions.n)
		r.ok = false;
	for (uint32_t i = 0; i < nk && r.ok; i++) {
		uint64_t id = lease_rd_u64(&r), key = lease_rd_u64(&r);
		lease_session *ss = lease_session_find(&s, id);
		if (ss == NULL || key == 0 || ss->key != 0)
			r.ok = false; /* unknown, empty or twice */
		else
			ss->key = key;
	}
	if (!r.ok || r.off != r.len || !lease_sessions_within_limits(&s)) {
		lease_state_free(&s);
		return -1;
	}
	lease_state_free(&t->st);
	t->st = s;
	ls_table_journal_clear(t);
	return 0;
}

static uint64_t lease_sm_digest(px_sm *sm)
{
	return lease_table_of(sm)->st.digest;
}

static const px_sm_ops lease_sm_ops = {
	.apply = lease_sm_apply,
	.snapshot = lease_sm_snapshot,
	.restore = lease_sm_restore,
	.digest = lease_sm_digest,
};

/* ---- the table ---------------------------------------------------------- */

ls_table *ls_table_new(void)
{
	ls_table *t = calloc(1, sizeof *t);
	if (t == NULL)
		return NULL;
	if (lease_state_init(&t->st, 0) != 0) {
		free(t);
		return NULL;
	}
	t->sm.ops = &lease_sm_ops;
	t->mutant = LS_MUTANT_NONE;
	t->ttl_ms_max = LS_TTL_MS_MAX;
	return t;
}

void ls_table_set_ttl_ms_max(ls_table *t, uint32_t ttl_ms_max)
{
	if (ttl_ms_max >= LS_TTL_MS_MIN && ttl_ms_max <= LS_TTL_MS_MAX)
		t->ttl_ms_max = ttl_ms_max;
}

void ls_table_free(ls_table *t)
{
	if (t == NULL)
		return;
	lease_state_free(&t->st);
	ls_table_journal_clear(t);
	free(t->journal);
	free(t);
}

void ls_table_set_mutant(ls_table *t, ls_mutant m)
{
	t->mutant = m;
}

px_sm *ls_table_sm(ls_table *t)
{
	return &t->sm;
}

uint64_t ls_table_clock_ms(const ls_table *t)
{
	return t->st.clock_ms;
}

uint64_t ls_table_count(const ls_table *t)
{
	return t->st.by_name.n;
}

void ls_table_usage_get(const ls_table *t, ls_table_usage *u)
{
	*u = (ls_table_usage){.leases = t->st.by_name.n,
			      .waiters = t->st.nwaiters,
			      .sessions = t->st.sessions.n,
			      .data_bytes = t->st.data_bytes};
}

/* ---- reads ------------------------------------------------------------- */

static void lease_view(const lease_rec *l, ls_view *v)
{
	*v = (ls_view){
		.name = l->name,
		.name_len = l->name_len,
		.holder = l->holder,
		.token = l->token,
		.ttl_ms = l->ttl_ms,
		.value = l->value,
		.value_len = l->value_len,
		.revoked = l->revoked,
		.renewed_clock_ms = l->renewed_clock_ms,
		.renewals = l->renewals,
		.granted_slot = l->granted_slot,
		.stamp_ms = l->stamp_ms,
		.nwaiters = l->nwaiters,
	};
}

ls_status ls_get(const ls_table *t, const char *name, uint32_t len,
		 ls_view *out)
{
	const lease_rec *l = lease_find(&t->st, name, len);
	if (l == NULL)
		return LS_NO_SUCH_LEASE;
	if (out != NULL)
		lease_view(l, out);
	return LS_OK;
}

ls_status ls_get_waiter(const ls_table *t, const char *name, uint32_t len,
			uint32_t i, ls_waiter_view *out)
{
	const lease_rec *l = lease_find(&t->st, name, len);
	if (l == NULL || i >= l->nwaiters)
		return LS_NO_SUCH_LEASE;
	const lease_waiter *w = l->whead;
	for (uint32_t k = 0; k < i; k++)
		w = w->next;
	if (out != NULL)
		*out = (ls_waiter_view){.session = w->session,
					.ttl_ms = w->ttl_ms,
					.wait_ms = w->wait_ms,
					.queued_slot = w->queued_slot};
	return LS_OK;
}

bool ls_waiting(const ls_table *t, const char *name, uint32_t len,
		uint64_t session)
{
	lease_rec *l = lease_find(&t->st, name, len);
	return l != NULL && lease_queue_pos(l, session, NULL) > 0;
}

/* Byte order, a prefix before its extensions. */
static int lease_name_cmp(const lease_rec *a, const lease_rec *b)
{
	uint32_t n = a->name_len < b->name_len ? a->name_len : b->name_len;
	int d = memcmp(a->name, b->name, n);
	if (d != 0)
		return d;
	return a->name_len < b->name_len ? -1 : a->name_len > b->name_len;
}

static int lease_cmp_name(const void *a, const void *b)
{
	return lease_name_cmp(*(const lease_rec *const *)a,
			      *(const lease_rec *const *)b);
}

static bool lease_has_prefix(const lease_rec *l, const char *prefix,
			     uint32_t len)
{
	return l->name_len >= len &&
	       (len == 0 || memcmp(l->name, prefix, len) == 0);
}

/* The smallest name with the prefix above last (any, if last is NULL). */
/* Is l's name after (a, alen) in name order? a NULL: everything is. */
static bool lease_after(const lease_rec *l, const char *a, uint32_t alen)
{
	if (a == NULL)
		return true;
	uint32_t n = l->name_len < alen ? l->name_len : alen;
	int c = memcmp(l->name, a, n);
	return c > 0 || (c == 0 && l->name_len > alen);
}

static const lease_rec *lease_next_name(const lease_state *s,
					const char *prefix, uint32_t len,
					const lease_rec *last, const char *a,
					uint32_t alen)
{
	const lease_rec *best = NULL;
	for (size_t i = 0; i < s->by_name.nb; i++)
		for (lease_hnode *e = s->by_name.b[i]; e != NULL; e = e->next) {
			const lease_rec *l = LEASE_OF(e, lease_rec, by_name);
			if (lease_has_prefix(l, prefix, len) &&
			    lease_after(l, a, alen) &&
			    (last == NULL || lease_name_cmp(l, last) > 0) &&
			    (best == NULL || lease_name_cmp(l, best) < 0))
				best = l;
		}
	return best;
}

void ls_list_after(const ls_table *t, const char *prefix, uint32_t len,
		   const char *after, uint32_t after_len,
		   bool (*fn)(const ls_view *v, void *arg), void *arg)
{
	const lease_state *s = &t->st;
	ls_view view;
	if (prefix == NULL && len > 0)
		return;
	if (after != NULL && after_len == 0)
		after = NULL;
	size_t cap = s->by_name.n, n = 0;
	lease_rec **v = cap > 0 ? malloc(cap * sizeof *v) : NULL;
	if (v == NULL && cap > 0) {
		/* No memory to sort: take the next name each time (quadratic,
		 * but a read must not fail). */
		const lease_rec *l = NULL;
		while ((l = lease_next_name(s, prefix, len, l, after,
					    after_len)) != NULL) {
			lease_view(l, &view);
			if (!fn(&view, arg))
				return;
		}
		return;
	}
	for (size_t i = 0; i < s->by_name.nb; i++)
		for (lease_hnode *e = s->by_name.b[i]; e != NULL; e = e->next) {
			lease_rec *l = LEASE_OF(e, lease_rec, by_name);
			if (lease_has_prefix(l, prefix, len) &&
			    lease_after(l, after, after_len))
				v[n++] = l;
		}
	if (n > 1)
		qsort(v, n, sizeof *v, lease_cmp_name);
	for (size_t i = 0; i < n; i++) {
		lease_view(v[i], &view);
		if (!fn(&view, arg))
			break;
	}
	free(v);
}

void ls_list(const ls_table *t, const char *prefix, uint32_t len,
	     bool (*fn)(const ls_view *v, void *arg), void *arg)
{
	ls_list_after(t, prefix, len, NULL, 0, fn, arg);
}

void ls_for_each(const ls_table *t, bool (*fn)(const ls_view *v, void *arg),
		 void *arg)
{
	const lease_state *s = &t->st;
	ls_view view;
	for (size_t i = 0; i < s->by_name.nb; i++)
		for (lease_hnode *e = s->by_name.b[i]; e != NULL; e = e->next) {
			lease_view(LEASE_OF(e, lease_rec, by_name), &view);
			if (!fn(&view, arg))
				return;
		}
}

bool ls_check(const ls_table *t, const char *name, uint32_t len, uint64_t token)
{
	const lease_rec *l = lease_find(&t->st, name, len);
	return l != NULL && token != 0 && l->token == token;
}

uint32_t ls_session_leases(const ls_table *t, uint64_t session)
{
	const lease_session *ss = lease_session_find(&t->st, session);
	return ss == NULL ? 0 : ss->nheld;
}
