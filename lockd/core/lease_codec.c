/* The lease table's bytes: commands (the data of a px_cmd), results (of a
 * px_reply) and the snapshot of the whole table, each with a version, all
 * decoded defensively (a malformed one is refused, never half-applied). */
#include "lease_int.h"

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
	bytes_put_le(b, v, n);
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
	return b == NULL ? 0 : bytes_get_le(b, n);
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
 *   TICK         u64 elapsed_ms, and in version 3 u64 term_round,
 *                u32 term_id, u64 base_ms (an older TICK has term 0)
 *   CANCEL_WAIT  u64 session, str name
 *   ABANDON      u64 token, str name
 * where str is a u16 length and the bytes. Nothing may follow. */
#define LEASE_CMD_VERSION                                        \
	3u /* 2: session_key after session; 3: a TICK's term and \
	      base */

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
	case LS_OP_PROCLAIM:
		if (c->session == 0)
			return LS_E_SESSION;
		if (!ls_name_valid(c->name, c->name_len))
			return LS_E_NAME;
		if (c->value_len > LS_VALUE_BYTES_MAX)
			return LS_E_VALUE;
		if (c->value_len > 0 && c->value == NULL)
			return LS_E_MALFORMED;
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
	case LS_OP_PROCLAIM:
		lease_wr_u64(&w, c->session);
		lease_wr_u64(&w, c->session_key);
		lease_wr_str(&w, c->name, c->name_len);
		lease_wr_u64(&w, c->token);
		lease_wr_str(&w, c->value, c->value_len);
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
		lease_wr_u64(&w, c->term_round);
		lease_wr_u32(&w, c->term_id);
		lease_wr_u64(&w, c->base_ms);
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
	if (version < 1 || version > LEASE_CMD_VERSION)
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
		if (version >= 3) {
			c->term_round = lease_rd_u64(&r);
			c->term_id = lease_rd_u32(&r);
			c->base_ms = lease_rd_u64(&r);
		}
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
	case LS_OP_PROCLAIM:
		/* (New in version 2: no version-1 form.) */
		if (!keyed)
			r.ok = false;
		c->session = lease_rd_u64(&r);
		c->session_key = lease_rd_u64(&r);
		c->name = (const char *)lease_rd_str(&r, LS_NAME_BYTES_MAX, &n);
		c->name_len = n;
		c->token = lease_rd_u64(&r);
		c->value = lease_rd_str(&r, LS_VALUE_BYTES_MAX, &n);
		c->value_len = n;
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

/* A full table's snapshot, in the format below, with the exactly-once
 * client table beside it (about 28 bytes and one result per client), must
 * stay far inside the snapshot limit: a snapshot over it stops the replica,
 * and one that a client could push there would stop every replica. */
#define LEASE_SNAP_FULL_BYTES                                                  \
	(64ull + (uint64_t)LD_LEASES_MAX * 58u +                               \
	 (uint64_t)LD_LEASE_WAITERS_MAX * 26u + LD_LEASE_DATA_BYTES_MAX + 4u + \
	 (uint64_t)LD_LEASE_SESSIONS_MAX * 16u +                               \
	 (uint64_t)LD_CLIENTS_MAX * (32u + LD_RESULT_BYTES_MAX))
_Static_assert(LEASE_SNAP_FULL_BYTES <= LD_SNAPSHOT_BYTES_MAX / 2,
	       "a full lease table's snapshot must stay under half the limit");

/* ---- snapshot and restore ---------------------------------------------- */

/* Snapshot format, version 4 (little-endian; versions 1, without the keys,
 * 2, without the reasons, and 3, without the clock's term, are still read):
 *   u32 magic "LSNP", u32 version (4), u64 counter, u64 clock_ms,
 *   (version 4:) u64 clock_term_round, u32 clock_term_id, u64 digest,
 *   u64 nleases, then nleases leases in increasing token order:
 *     str name, u64 holder, u64 token, u32 ttl_ms, str value, u8 revoked,
 *     str reason (version 3: the revoke's, empty unless revoked),
 *     u64 renewed_clock_ms, u32 renewals, u64 granted_slot, u64 stamp_ms,
 *     u16 nwaiters, then the waiters in queue order:
 *       u64 session, u32 ttl_ms, u32 wait_ms, u64 queued_slot, str value
 *   u32 nkeys, then nkeys x (u64 session, u64 key): the sessions that have
 *     a key, in the session hash table's bucket order
 *   u64 checksum of every byte before it: px_checksum (version 4),
 *   px_hash (before).
 * Token order lets restore rebuild each session's list in the same (token)
 * order. The leases' bytes are a function of the history alone; the keys'
 * order is not (it follows the hash table's size), which nothing compares:
 * restore looks each key up, and replicas compare digest, not bytes. */
#define LEASE_SNAP_MAGIC 0x504e534cu
#define LEASE_SNAP_VERSION                                            \
	4u                       /* 2: session keys after the leases; \
				    3: a revoked lease's reason;      \
				    4: the ledger clock's term */
#define LEASE_SNAP_LEASE_MIN 56u /* bytes of a lease with empty strings */
/* The largest token counter a snapshot may hold: 2^62 grants is 146,000
 * years at a million a second. */
#define LEASE_COUNTER_MAX (1ULL << 62)

/* The checksum that ends a snapshot: px_checksum from version 4 (eight
 * bytes a step: a million leases' snapshot is 75 MB), px_hash before. */
static uint64_t lease_snap_sum(uint32_t version, const uint8_t *p, size_t n)
{
	return version >= 4 ? px_checksum(p, n) : px_hash(PX_HASH_SEED, p, n);
}

static void lease_snap_write(lease_wr *w, const lease_state *s)
{
	size_t n = s->by_name.n;
	lease_wr_u32(w, LEASE_SNAP_MAGIC);
	lease_wr_u32(w, LEASE_SNAP_VERSION);
	lease_wr_u64(w, s->counter);
	lease_wr_u64(w, s->clock_ms);
	lease_wr_u64(w, s->clock_term_round);
	lease_wr_u32(w, s->clock_term_id);
	lease_wr_u64(w, s->digest);
	lease_wr_u64(w, n);
	size_t k = 0;
	for (const lease_rec *l = s->t_head; l != NULL; l = l->t_next, k++) {
		lease_wr_str(w, l->name, l->name_len);
		lease_wr_u64(w, l->holder);
		lease_wr_u64(w, l->token);
		lease_wr_u32(w, l->ttl_ms);
		lease_wr_str(w, l->value, l->value_len);
		lease_wr_u8(w, l->revoked ? 1 : 0);
		lease_wr_str(w, l->reason, l->reason_len);
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
	assert(k == n);
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
		lease_wr_u64(w,
			     lease_snap_sum(LEASE_SNAP_VERSION, w->p, w->len));
	else
		lease_wr_u64(w, 0);
}

int lease_sm_snapshot(px_sm *sm, uint8_t **out, size_t *len)
{
	const ls_table *t = lease_table_of(sm);
	lease_wr cw = {.p = NULL, .cap = SIZE_MAX, .ok = true};
	lease_snap_write(&cw, &t->st);
	uint8_t *buf = cw.ok ? malloc(cw.len) : NULL;
	if (buf == NULL)
		return -1;
	lease_wr w = {.p = buf, .cap = cw.len, .ok = true};
	lease_snap_write(&w, &t->st);
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
static int lease_restore_one(lease_state *s, lease_rd *r, uint64_t *last,
			     uint32_t version)
{
	uint32_t name_len, value_len;
	const char *name =
		(const char *)lease_rd_str(r, LS_NAME_BYTES_MAX, &name_len);
	uint64_t holder = lease_rd_u64(r);
	uint64_t token = lease_rd_u64(r);
	uint32_t ttl_ms = lease_rd_u32(r);
	const uint8_t *value = lease_rd_str(r, LS_VALUE_BYTES_MAX, &value_len);
	uint8_t revoked = lease_rd_u8(r);
	uint32_t reason_len = 0;
	const char *reason =
		version >= 3 ? (const char *)lease_rd_str(
				       r, LS_REASON_BYTES_MAX, &reason_len)
			     : NULL;
	if (!r->ok || !ls_name_valid(name, name_len) || holder == 0 ||
	    token <= *last || token > s->counter || ttl_ms < LS_TTL_MS_MIN ||
	    ttl_ms > LS_TTL_MS_MAX || revoked > 1 ||
	    (reason_len > 0 && !revoked))
		return -1; /* a name twice: lease_index_build refuses it */
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
	if (reason_len > 0) {
		l->reason = malloc(reason_len);
		if (l->reason == NULL)
			return -1;
		memcpy(l->reason, reason, reason_len);
		l->reason_len = reason_len;
		s->data_bytes += reason_len;
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

int lease_sm_restore(px_sm *sm, const uint8_t *buf, size_t len)
{
	ls_table *t = lease_table_of(sm);
	if (buf == NULL || len < 8)
		return -1;
	uint64_t sum = bytes_get_le64(buf + len - 8);
	if (len < 16 ||
	    lease_snap_sum(bytes_get_le32(buf + 4), buf, len - 8) != sum)
		return -1;
	lease_rd r = {.p = buf, .len = len - 8, .ok = true};
	uint32_t magic = lease_rd_u32(&r);
	uint32_t version = lease_rd_u32(&r);
	uint64_t counter = lease_rd_u64(&r);
	uint64_t clock_ms = lease_rd_u64(&r);
	uint64_t term_round = version >= 4 ? lease_rd_u64(&r) : 0;
	uint32_t term_id = version >= 4 ? lease_rd_u32(&r) : 0;
	uint64_t digest = lease_rd_u64(&r);
	uint64_t n = lease_rd_u64(&r);
	/* Bound the count by the bytes before trusting it with memory. A
	 * token counter must leave room for grants: applies add one per
	 * grant, so from here it can never reach the end (lease_grant). */
	if (!r.ok || magic != LEASE_SNAP_MAGIC || version < 1 ||
	    version > LEASE_SNAP_VERSION ||
	    n > (r.len - r.off) / LEASE_SNAP_LEASE_MIN ||
	    counter > LEASE_COUNTER_MAX)
		return -1;
	lease_state s;
	if (lease_state_init(&s, (size_t)n) != 0)
		return -1;
	s.counter = counter;
	s.clock_ms = clock_ms;
	s.clock_term_round = term_round;
	s.clock_term_id = term_id;
	s.digest = digest;
	uint64_t last = 0;
	for (uint64_t i = 0; i < n; i++) {
		if (lease_restore_one(&s, &r, &last, version) != 0) {
			lease_state_free(&s);
			return -1;
		}
	}
	/* The name index, built once from the whole table. */
	if (lease_index_build(&s) != 0) {
		lease_state_free(&s);
		return -1;
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
