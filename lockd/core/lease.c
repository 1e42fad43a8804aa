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
#include "lease_int.h"

/* This file: the table's records and their hash tables, the journal, and
 * applying commands; lease_codec.c encodes and decodes commands, results
 * and snapshots, lease_view.c answers reads. lease_int.h holds the state
 * they share. */

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

void lease_htab_insert(lease_htab *h, lease_hnode *e)
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

uint64_t lease_name_hash(const char *name, uint32_t len)
{
	return px_hash(PX_HASH_SEED, name, len);
}

lease_rec *lease_find(const lease_state *s, const char *name, uint32_t len)
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

lease_session *lease_session_find(const lease_state *s, uint64_t id)
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
lease_session *lease_session_get(lease_state *s, uint64_t id)
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
void lease_attach(lease_state *s, lease_rec *l, lease_session *ss)
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
	lease_tokens_append(s, l);
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
	lease_tokens_remove(s, l);
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
	free(l->reason);
	free(l);
}

void lease_state_free(lease_state *s)
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

int lease_state_init(lease_state *s, size_t nleases)
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

/* ---- applying commands ------------------------------------------------- */

/* The mutant is honoured in every build (so that the unit test can show it
 * is caught): the node maps the cell's ld_mutant to it only in the
 * LD_MUTANTS build, so the daemon never sets it. UNCHECKED_REGRANT: RELEASE
 * skips the holder and token check; EXPIRE ends the token's lease whatever
 * its renewals count (a renewal no longer cancels an expiry). A stale token
 * (its lease already gone) still ends nothing: the table keeps no map from
 * old tokens to names. */
#define LEASE_MUTANT(t, m) ((t)->mutant == (m))

static uint64_t lease_now(const ls_table *t, const lease_ctx *x)
{
	return lease_sat_add(t->st.clock_ms, x->since_tick_ms);
}

/* The ledger clock, one leader at a time (lease.h). */
static void lease_tick(lease_state *s, const ls_cmd *c)
{
	if (c->term_round < s->clock_term_round ||
	    (c->term_round == s->clock_term_round &&
	     c->term_id < s->clock_term_id))
		return; /* a deposed leader's, chosen late */
	if (c->term_round != s->clock_term_round ||
	    c->term_id != s->clock_term_id) {
		if (c->base_ms < s->clock_ms && c->term_round != 0)
			s->clock_ms = c->base_ms;
		s->clock_term_round = c->term_round;
		s->clock_term_id = c->term_id;
	}
	s->clock_ms = lease_sat_add(s->clock_ms, c->elapsed_ms);
}

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
	assert(t->st.data_bytes >= l->value_len + l->reason_len);
	t->st.data_bytes -= l->value_len + l->reason_len;
	free(l->value);
	l->value = NULL;
	l->value_len = 0;
	free(l->reason);
	l->reason = NULL;
	l->reason_len = 0;
	lease_waiter *w = l->whead;
	if (w == NULL) {
		assert(t->st.data_bytes >= l->name_len);
		t->st.data_bytes -= l->name_len;
		lease_htab_remove(&t->st.by_name, &l->by_name);
		lease_index_remove(&t->st, l);
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
uint32_t lease_queue_pos(lease_rec *l, uint64_t session, lease_waiter ***link)
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
		lease_index_insert(s, l);
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

/* The holder, with its token, replaces its lease's value; token, TTL and
 * deadline stay. Watchers see it as a change (the tap). */
static void lease_proclaim(ls_table *t, const lease_ctx *x, const ls_cmd *c,
			   ls_result *r)
{
	lease_rec *l = lease_find(&t->st, c->name, c->name_len);
	if (l == NULL) {
		r->status = LS_NO_SUCH_LEASE;
		return;
	}
	if (l->holder != c->session || l->token != c->token) {
		r->status = LS_NOT_HOLDER;
		r->holder = l->holder;
		return;
	}
	if (c->value_len > l->value_len &&
	    !lease_fits(&t->st, c, 0, 0, c->value_len - l->value_len)) {
		r->status = LS_E_TABLE_FULL;
		return;
	}
	assert(t->st.data_bytes >= l->value_len);
	t->st.data_bytes = t->st.data_bytes - l->value_len + c->value_len;
	free(l->value);
	l->value = lease_dup(c->value, c->value_len);
	l->value_len = c->value_len;
	r->status = LS_OK;
	r->token = l->token;
	r->holder = l->holder;
	r->count = 1;
	if (t->tap != NULL) {
		ls_view v;
		lease_view(l, &v);
		t->tap(t->tap_arg, x->slot, l->name, l->name_len, &v);
	}
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
	/* The reason stays with the lease (GET shows it) while the table has
	 * room; a revoke never fails for want of it. */
	if (c->reason_len > 0 &&
	    t->st.data_bytes + c->reason_len <= LD_LEASE_DATA_BYTES_MAX) {
		l->reason = lease_must(malloc(c->reason_len));
		memcpy(l->reason, c->reason, c->reason_len);
		l->reason_len = c->reason_len;
		t->st.data_bytes += c->reason_len;
	}
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
	/* ls_cmd_check let it through: within the pair limit. */
	assert(c->op == LS_OP_EXPIRE && c->ntokens <= LS_EXPIRE_TOKENS_MAX &&
	       (c->ntokens == 0 || c->tokens != NULL));
	uint64_t before = t->st.by_name.n;
	uint32_t n = 0;
	for (uint32_t i = 0; i < c->ntokens; i++) {
		const uint8_t *p = c->tokens + (size_t)i * LEASE_PAIR_BYTES;
		uint64_t token = bytes_get_le64(p);
		uint32_t renewals = bytes_get_le32(p + 8);
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
	/* An end hands a name with waiters to its next waiter: the table
	 * shrinks by at most the leases ended. */
	assert(t->st.by_name.n <= before && before - t->st.by_name.n <= n);
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
	/* Only a command that passed ls_cmd_check reaches here. */
	assert(ls_cmd_check(c) == LS_OK);
	uint64_t counter = t->st.counter;
	lease_ctx x = {.slot = slot,
		       .since_tick_ms = c->since_tick_ms,
		       .stamp_ms = c->stamp_ms};
	switch (c->op) {
	case LS_OP_ACQUIRE:
		lease_acquire(t, &x, c, r);
		break;
	case LS_OP_RENEW:
		lease_renew(t, &x, c, r);
		break;
	case LS_OP_RELEASE:
		lease_release(t, &x, c, r);
		break;
	case LS_OP_REVOKE:
		lease_revoke(t, &x, c, r);
		break;
	case LS_OP_EXPIRE:
		lease_expire(t, &x, c, r);
		break;
	case LS_OP_TICK:
		lease_tick(&t->st, c);
		r->status = LS_OK;
		break;
	case LS_OP_CANCEL_WAIT:
		lease_cancel_wait(t, &x, c, r);
		break;
	case LS_OP_ABANDON:
		lease_abandon(t, &x, c, r);
		break;
	case LS_OP_PROCLAIM:
		lease_proclaim(t, &x, c, r);
		break;
	default:
		r->status = LS_E_MALFORMED;
	}
	/* Fencing tokens only ever grow. */
	assert(t->st.counter >= counter);
}

ls_table *lease_table_of(px_sm *sm)
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
		bool by_session =
			c.op == LS_OP_ACQUIRE || c.op == LS_OP_RENEW ||
			c.op == LS_OP_RELEASE || c.op == LS_OP_PROCLAIM;
		if (r.status == LS_OK && by_session &&
		    c.session != cmd->client_id)
			r.status =
				c.op == LS_OP_RELEASE || c.op == LS_OP_PROCLAIM
					? LS_NOT_HOLDER
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
	bytes_put_le64(hdr, slot);
	bytes_put_le32(hdr + 8, (uint32_t)len);
	t->st.digest = px_hash(t->st.digest, hdr, sizeof hdr);
	if (data != NULL)
		t->st.digest = px_hash(t->st.digest, data, len);
	t->st.digest = px_hash(t->st.digest, res, n);
#ifdef LD_CHECKS
	ls_table_check(t, false);
#endif

	if (out == NULL || cap < n)
		return 0;
	memcpy(out, res, n);
	return n;
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

/* ---- invariants -----------------------------------------------------------
 */

void ls_table_check(const ls_table *t, bool deep)
{
	const lease_state *s = &t->st;
	/* Every lease is found by name and by token; the table's bounds hold
	 * (apply refuses what would pass them; restore refuses a snapshot
	 * past them). */
	assert(s->by_name.n == s->by_token.n);
	assert(s->by_name.n <= LD_LEASES_MAX);
	assert(s->nwaiters <= LD_LEASE_WAITERS_MAX);
	assert(s->sessions.n <= LD_LEASE_SESSIONS_MAX);
	assert(s->data_bytes <= LD_LEASE_DATA_BYTES_MAX);
	if (!deep)
		return;
	uint64_t nwaiters = 0, data_bytes = 0, nheld = 0;
	for (size_t i = 0; i < s->by_name.nb; i++)
		for (const lease_hnode *e = s->by_name.b[i]; e != NULL;
		     e = e->next) {
			const lease_rec *l = LEASE_OF(e, lease_rec, by_name);
			/* Tokens come from the one counter; a lease belongs
			 * to its holder's session. */
			assert(l->token != 0 && l->token <= s->counter);
			assert(l->holder != 0 && l->sess != NULL &&
			       l->sess->id == l->holder);
			assert(l->ttl_ms > 0);
			uint32_t nw = 0;
			for (const lease_waiter *w = l->whead; w != NULL;
			     w = w->next) {
				assert(w->session != 0);
				nw++;
				data_bytes += w->value_len;
			}
			assert(nw == l->nwaiters &&
			       nw <= LS_WAITERS_PER_NAME_MAX);
			nwaiters += nw;
			data_bytes += (uint64_t)l->name_len + l->value_len +
				      l->reason_len;
			assert(l->revoked || l->reason_len == 0);
		}
	assert(nwaiters == s->nwaiters);
	assert(data_bytes == s->data_bytes);
	/* The name order holds the same leases, sorted and balanced. */
	assert(lease_index_check(s) == s->by_name.n);
	for (size_t i = 0; i < s->sessions.nb; i++)
		for (const lease_hnode *e = s->sessions.b[i]; e != NULL;
		     e = e->next) {
			const lease_session *ss =
				LEASE_OF(e, lease_session, node);
			/* A session exists while it holds or waits, within
			 * its limit; its held list is in token order. */
			assert(ss->nheld + ss->nwait > 0);
			assert(ss->nheld + ss->nwait <=
			       LS_LEASES_PER_SESSION_MAX);
			uint32_t n = 0;
			uint64_t last = 0;
			for (const lease_rec *l = ss->head; l != NULL;
			     l = l->s_next) {
				assert(l->sess == ss && l->token > last);
				last = l->token;
				n++;
			}
			assert(n == ss->nheld);
			nheld += n;
		}
	assert(nheld == s->by_name.n);
}
