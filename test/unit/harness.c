/* The hand-driven cell behind the scenario tests (see harness.h). */
#include "harness.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A bound on work in loops that should end: a scenario that runs past it
 * is livelocked, and the test fails instead of hanging. */
#define H_EVENTS_MAX 1000000u

/* Grows a (ptr, n, cap) array so one more element fits; aborts when out of
 * memory (a test harness has nothing better to do). */
#define H_GROW(ptr, n, cap)                                               \
	do {                                                              \
		if ((n) == (cap)) {                                       \
			size_t ncap_ = (cap) ? 2 * (cap) : 16;            \
			void *p_ = realloc((ptr), ncap_ * sizeof *(ptr)); \
			if (p_ == NULL)                                   \
				abort();                                  \
			(ptr) = p_;                                       \
			(cap) = ncap_;                                    \
		}                                                         \
	} while (0)

/* ---- the state machine: a list of applied commands -------------------- */

typedef struct h_sm {
	px_sm base; /* first: the core sees &base */
	h_applied *log;
	size_t n, cap;
} h_sm;

/* The result is 8 bytes: how many commands this machine has applied,
 * counting this one, little-endian. Deterministic across replicas. */
static size_t hsm_apply(px_sm *sm, uint64_t slot, const px_cmd *cmd,
			uint8_t *out, size_t cap)
{
	h_sm *m = (h_sm *)sm;
	H_GROW(m->log, m->n, m->cap);
	h_applied *a = &m->log[m->n++];
	memset(a, 0, sizeof *a);
	a->slot = slot;
	a->client_id = cmd->client_id;
	a->seq = cmd->seq;
	a->len = cmd->len < sizeof a->data ? cmd->len : sizeof a->data;
	if (a->len > 0)
		memcpy(a->data, cmd->data, a->len);
	uint64_t count = m->n;
	size_t k = cap < 8 ? cap : 8;
	for (size_t i = 0; i < k; i++)
		out[i] = (uint8_t)(count >> (8 * i));
	return k;
}

static int hsm_snapshot(px_sm *sm, uint8_t **out, size_t *len)
{
	h_sm *m = (h_sm *)sm;
	size_t bytes = sizeof(uint64_t) + m->n * sizeof(h_applied);
	uint8_t *b = malloc(bytes);
	if (b == NULL)
		return -1;
	uint64_t n = m->n;
	memcpy(b, &n, sizeof n);
	if (m->n > 0)
		memcpy(b + sizeof n, m->log, m->n * sizeof(h_applied));
	*out = b;
	*len = bytes;
	return 0;
}

static int hsm_restore(px_sm *sm, const uint8_t *buf, size_t len)
{
	h_sm *m = (h_sm *)sm;
	uint64_t n;
	if (len < sizeof n)
		return -1;
	memcpy(&n, buf, sizeof n);
	if (len != sizeof n + n * sizeof(h_applied))
		return -1;
	h_applied *log = NULL;
	if (n > 0) {
		log = malloc(n * sizeof *log);
		if (log == NULL)
			return -1;
		memcpy(log, buf + sizeof n, n * sizeof *log);
	}
	free(m->log);
	m->log = log;
	m->n = m->cap = n;
	return 0;
}

static uint64_t hsm_digest(px_sm *sm)
{
	h_sm *m = (h_sm *)sm;
	uint64_t h = PX_HASH_SEED;
	for (size_t i = 0; i < m->n; i++) {
		const h_applied *a = &m->log[i];
		h = px_hash(h, &a->slot, sizeof a->slot);
		h = px_hash(h, &a->client_id, sizeof a->client_id);
		h = px_hash(h, &a->seq, sizeof a->seq);
		h = px_hash(h, a->data, a->len);
	}
	return h;
}

static const px_sm_ops hsm_ops = {
	.apply = hsm_apply,
	.snapshot = hsm_snapshot,
	.restore = hsm_restore,
	.digest = hsm_digest,
};

static void hsm_reset(h_sm *m)
{
	free(m->log);
	memset(m, 0, sizeof *m);
	m->base.ops = &hsm_ops;
}

/* ---- the cell --------------------------------------------------------- */

typedef struct h_pend {
	uint64_t write_id;
	px_record rec;
} h_pend;

typedef struct h_node {
	px_config cfg;
	px_replica *r; /* NULL while down */
	h_sm sm;
	px_record *disk;
	size_t ndisk, disk_cap;
	h_pend *pend;
	size_t npend, pend_cap;
	px_reply *replies;
	size_t nreplies, replies_cap;
	px_change_done *changes;
	size_t nchanges, changes_cap;
	uint64_t timer_at;
	uint64_t applied;   /* the last slot this replica reported chosen */
	uint32_t snapshots; /* snapshots installed since h_new */
} h_node;

typedef struct h_slot {
	px_value *value; /* one reference, or NULL: not learned yet */
	uint64_t digest;
} h_slot;

struct harness {
	uint32_t n;
	h_node nodes[LD_REPLICAS_MAX];
	bool cut[LD_REPLICAS_MAX][LD_REPLICAS_MAX];
	px_msg **pool;
	size_t npool, pool_cap;
	px_actions act;
	uint64_t now;
	uint64_t steps;
	h_slot *learned; /* indexed by slot */
	size_t learned_cap;
	uint64_t learned_max;
	bool ok;
	char err[512];
};

static void h_fail(harness *h, const char *fmt, ...)
{
	if (!h->ok)
		return; /* the first violation is the interesting one */
	h->ok = false;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(h->err, sizeof h->err, fmt, ap);
	va_end(ap);
}

static void rec_copy(px_record *dst, const px_record *src)
{
	*dst = *src;
	dst->value = px_value_ref(src->value);
	dst->snap = NULL;
	if (src->snap_len > 0) {
		dst->snap = malloc(src->snap_len);
		if (dst->snap == NULL)
			abort();
		memcpy(dst->snap, src->snap, src->snap_len);
	}
}

static void h_node_defaults(h_node *nd, uint32_t id, uint32_t n)
{
	px_config_default(&nd->cfg, id, n);
	nd->cfg.seed = id + 1;
	nd->cfg.heartbeat_us = H_HEARTBEAT_US;
	nd->cfg.election_timeout_us = H_ELECTION_US;
	nd->cfg.retry_us = H_RETRY_US;
}

static void h_node_boot(harness *h, uint32_t id)
{
	h_node *nd = &h->nodes[id];
	hsm_reset(&nd->sm);
	nd->r = px_replica_new(&nd->cfg, &nd->sm.base);
	if (nd->r == NULL)
		abort();
	nd->timer_at = h->now;
	nd->applied = 0;
}

harness *h_new(uint32_t n)
{
	assert(n >= 1 && n <= LD_REPLICAS_MAX);
	harness *h = calloc(1, sizeof *h);
	if (h == NULL)
		return NULL;
	h->n = n;
	h->ok = true;
	px_actions_init(&h->act);
	/* Every replica starts as a voter of a cell that has formed (the
	 * JOINED record the probe round writes); h_wipe starts one without. */
	px_record joined = {.type = PX_REC_JOINED};
	for (uint32_t i = 0; i < n; i++) {
		h_node_defaults(&h->nodes[i], i, n);
		h_node_boot(h, i);
		h_disk_append(h, i, &joined);
		px_replica_restore(h->nodes[i].r, &joined);
		h_tick(h, i, h->now);
	}
	return h;
}

static void h_node_down(harness *h, uint32_t id)
{
	h_node *nd = &h->nodes[id];
	px_replica_free(nd->r);
	nd->r = NULL;
	for (size_t i = 0; i < nd->npend; i++)
		px_record_clear(&nd->pend[i].rec);
	nd->npend = 0;
	nd->nreplies = 0;
	nd->nchanges = 0;
	hsm_reset(&nd->sm);
	nd->timer_at = UINT64_MAX;
}

void h_free(harness *h)
{
	if (h == NULL)
		return;
	for (uint32_t i = 0; i < h->n; i++) {
		h_node *nd = &h->nodes[i];
		h_node_down(h, i);
		for (size_t j = 0; j < nd->ndisk; j++)
			px_record_clear(&nd->disk[j]);
		free(nd->disk);
		free(nd->pend);
		free(nd->replies);
		free(nd->changes);
		free(nd->sm.log);
	}
	for (size_t i = 0; i < h->npool; i++)
		px_msg_free(h->pool[i]);
	free(h->pool);
	for (size_t s = 0; s < h->learned_cap; s++)
		px_value_unref(h->learned[s].value);
	free(h->learned);
	px_actions_free(&h->act);
	free(h);
}

px_config *h_config(harness *h, uint32_t id)
{
	assert(id < h->n);
	return &h->nodes[id].cfg;
}

/* ---- learning and safety ---------------------------------------------- */

static void h_learn(harness *h, uint32_t id, const px_chosen *c)
{
	h_node *nd = &h->nodes[id];
	if (c->value == NULL) {
		h_fail(h, "replica %u learned slot %" PRIu64 " with no value",
		       id, c->slot);
		return;
	}
	if (c->slot != nd->applied + 1)
		h_fail(h, "replica %u learned slot %" PRIu64 " after %" PRIu64,
		       id, c->slot, nd->applied);
	nd->applied = c->slot;
	if (c->slot >= h->learned_cap) {
		size_t ncap = h->learned_cap ? h->learned_cap : 64;
		while (ncap <= c->slot)
			ncap *= 2;
		h_slot *p = realloc(h->learned, ncap * sizeof *p);
		if (p == NULL)
			abort();
		memset(p + h->learned_cap, 0,
		       (ncap - h->learned_cap) * sizeof *p);
		h->learned = p;
		h->learned_cap = ncap;
	}
	h_slot *s = &h->learned[c->slot];
	if (s->value == NULL) {
		s->value = px_value_ref(c->value);
		s->digest = c->sm_digest;
		if (c->slot > h->learned_max)
			h->learned_max = c->slot;
		return;
	}
	/* The consistency requirement: only one value is ever chosen. */
	if (!px_value_equal(s->value, c->value))
		h_fail(h,
		       "slot %" PRIu64 ": replica %u learned a value (%u cmds) "
		       "other than the one learned before (%u cmds)",
		       c->slot, id, c->value->ncmds, s->value->ncmds);
	else if (s->digest != c->sm_digest)
		h_fail(h, "slot %" PRIu64 ": replica %u state digest differs",
		       c->slot, id);
}

/* ---- stepping --------------------------------------------------------- */

static void h_absorb(harness *h, uint32_t id, px_actions *a)
{
	h_node *nd = &h->nodes[id];
	if (a->nrecs > 0 && a->write_id == 0)
		h_fail(h, "replica %u wrote %zu records with write id 0", id,
		       a->nrecs);
	for (size_t i = 0; i < a->nrecs; i++) {
		H_GROW(nd->pend, nd->npend, nd->pend_cap);
		h_pend *p = &nd->pend[nd->npend++];
		p->write_id = a->write_id;
		rec_copy(&p->rec, &a->recs[i]);
	}
	for (size_t i = 0; i < a->nmsgs; i++) {
		px_msg *m = a->msgs[i];
		a->msgs[i] = NULL; /* taken */
		if (m == NULL)
			continue;
		if (m->from != id)
			h_fail(h, "replica %u sent a message from %u", id,
			       m->from);
		H_GROW(h->pool, h->npool, h->pool_cap);
		h->pool[h->npool++] = m;
	}
	a->nmsgs = 0;
	if (a->installed_snapshot) {
		nd->applied = a->snapshot_base;
		nd->snapshots++;
	}
	for (size_t i = 0; i < a->nchosen; i++)
		h_learn(h, id, &a->chosen[i]);
	for (size_t i = 0; i < a->nreplies; i++) {
		H_GROW(nd->replies, nd->nreplies, nd->replies_cap);
		nd->replies[nd->nreplies++] = a->replies[i];
	}
	for (size_t i = 0; i < a->nchanges; i++) {
		H_GROW(nd->changes, nd->nchanges, nd->changes_cap);
		nd->changes[nd->nchanges++] = a->changes[i];
	}
	nd->timer_at = a->timer_at_us ? a->timer_at_us : UINT64_MAX;
}

static int h_step(harness *h, uint32_t id, px_event *ev)
{
	h_node *nd = &h->nodes[id];
	assert(nd->r != NULL);
	ev->now_us = h->now;
	px_actions_reset(&h->act);
	int rc = px_replica_step(nd->r, ev, &h->act);
	h->steps++;
	h_absorb(h, id, &h->act);
	px_actions_reset(&h->act);
	px_status st;
	px_replica_status(nd->r, &st);
	if (st.applied != st.commit)
		h_fail(h, "replica %u: applied %" PRIu64 " != commit %" PRIu64,
		       id, st.applied, st.commit);
	return rc;
}

/* ---- the clock -------------------------------------------------------- */

uint64_t h_now(const harness *h)
{
	return h->now;
}

void h_set_time(harness *h, uint64_t now_us)
{
	assert(now_us >= h->now);
	h->now = now_us;
}

int h_tick(harness *h, uint32_t id, uint64_t now_us)
{
	assert(id < h->n);
	h_set_time(h, now_us);
	if (h->nodes[id].r == NULL)
		return -1;
	px_event ev = {.type = PX_EV_TICK};
	return h_step(h, id, &ev);
}

uint64_t h_timer_at(const harness *h, uint32_t id)
{
	return h->nodes[id].timer_at;
}

/* ---- clients ---------------------------------------------------------- */

int h_submit(harness *h, uint32_t id, uint64_t client, uint64_t seq,
	     const char *data)
{
	assert(id < h->n);
	if (h->nodes[id].r == NULL)
		return -1;
	px_cmd cmd = {.client_id = client,
		      .seq = seq,
		      .len = (uint32_t)strlen(data),
		      .data = (const uint8_t *)data};
	px_event ev = {.type = PX_EV_SUBMIT, .cmd = &cmd};
	return h_step(h, id, &ev);
}

int h_change(harness *h, uint32_t id, const px_change *c, uint64_t change_id)
{
	assert(id < h->n);
	if (h->nodes[id].r == NULL)
		return -1;
	px_event ev = {
		.type = PX_EV_CHANGE, .change = c, .change_id = change_id};
	return h_step(h, id, &ev);
}

int h_resign(harness *h, uint32_t id)
{
	assert(id < h->n);
	if (h->nodes[id].r == NULL)
		return -1;
	px_event ev = {.type = PX_EV_RESIGN};
	return h_step(h, id, &ev);
}

const px_change_done *h_change_done(const harness *h, uint32_t id,
				    uint64_t change_id)
{
	const h_node *nd = &h->nodes[id];
	for (size_t i = nd->nchanges; i-- > 0;)
		if (nd->changes[i].change_id == change_id)
			return &nd->changes[i];
	return NULL;
}

const px_reply *h_replies(const harness *h, uint32_t id, size_t *n)
{
	*n = h->nodes[id].nreplies;
	return h->nodes[id].replies;
}

const px_reply *h_reply_for(const harness *h, uint32_t id, uint64_t client,
			    uint64_t seq)
{
	const h_node *nd = &h->nodes[id];
	for (size_t i = nd->nreplies; i-- > 0;)
		if (nd->replies[i].client_id == client &&
		    nd->replies[i].seq == seq)
			return &nd->replies[i];
	return NULL;
}

/* ---- the disk --------------------------------------------------------- */

size_t h_sync(harness *h, uint32_t id)
{
	h_node *nd = &h->nodes[id];
	if (nd->r == NULL || nd->npend == 0)
		return 0;
	size_t n = nd->npend;
	uint64_t write_id = 0;
	for (size_t i = 0; i < n; i++) {
		H_GROW(nd->disk, nd->ndisk, nd->disk_cap);
		nd->disk[nd->ndisk++] = nd->pend[i].rec; /* moved */
		if (nd->pend[i].write_id > write_id)
			write_id = nd->pend[i].write_id;
	}
	nd->npend = 0;
	px_event ev = {.type = PX_EV_DURABLE, .write_id = write_id};
	h_step(h, id, &ev);
	return n;
}

size_t h_sync_all(harness *h)
{
	size_t n = 0;
	for (uint32_t i = 0; i < h->n; i++)
		n += h_sync(h, i);
	return n;
}

size_t h_pending(const harness *h, uint32_t id)
{
	return h->nodes[id].npend;
}

const px_record *h_disk(const harness *h, uint32_t id, size_t *n)
{
	*n = h->nodes[id].ndisk;
	return h->nodes[id].disk;
}

int h_disk_append(harness *h, uint32_t id, const px_record *rec)
{
	h_node *nd = &h->nodes[id];
	H_GROW(nd->disk, nd->ndisk, nd->disk_cap);
	rec_copy(&nd->disk[nd->ndisk++], rec);
	return 0;
}

/* ---- the network ------------------------------------------------------ */

static bool h_match(const px_msg *m, h_filter f)
{
	return (f.from == H_ANY || (uint32_t)f.from == m->from) &&
	       (f.to == H_ANY || (uint32_t)f.to == m->to) &&
	       (f.type == H_ANY || (int)m->type == f.type) &&
	       (f.slot == H_ANY || (uint64_t)f.slot == m->slot);
}

size_t h_count(const harness *h, h_filter f)
{
	size_t n = 0;
	for (size_t i = 0; i < h->npool; i++)
		n += h_match(h->pool[i], f);
	return n;
}

const px_msg *h_peek(const harness *h, h_filter f, size_t idx)
{
	for (size_t i = 0; i < h->npool; i++)
		if (h_match(h->pool[i], f) && idx-- == 0)
			return h->pool[i];
	return NULL;
}

static px_msg *h_take(harness *h, size_t i)
{
	px_msg *m = h->pool[i];
	memmove(&h->pool[i], &h->pool[i + 1],
		(h->npool - i - 1) * sizeof *h->pool);
	h->npool--;
	return m;
}

static void h_deliver_msg(harness *h, px_msg *m)
{
	if (m->to < h->n && m->from < h->n && h->nodes[m->to].r != NULL &&
	    !h->cut[m->from][m->to]) {
		px_event ev = {.type = PX_EV_MSG, .msg = m};
		h_step(h, m->to, &ev);
	}
	px_msg_free(m);
}

bool h_deliver_one(harness *h, h_filter f)
{
	for (size_t i = 0; i < h->npool; i++) {
		if (h_match(h->pool[i], f)) {
			h_deliver_msg(h, h_take(h, i));
			return true;
		}
	}
	return false;
}

size_t h_deliver(harness *h, h_filter f)
{
	/* Take the matching messages out first, so the ones their delivery
	 * sends stay in flight. */
	px_msg **batch = NULL;
	size_t n = 0, cap = 0;
	for (size_t i = 0; i < h->npool;) {
		if (h_match(h->pool[i], f)) {
			H_GROW(batch, n, cap);
			batch[n++] = h_take(h, i);
		} else {
			i++;
		}
	}
	for (size_t i = 0; i < n; i++)
		h_deliver_msg(h, batch[i]);
	free(batch);
	return n;
}

size_t h_deliver_all(harness *h)
{
	size_t n = 0;
	while (h->npool > 0 && n < H_EVENTS_MAX) {
		h_deliver_msg(h, h_take(h, 0));
		n++;
	}
	if (h->npool > 0)
		h_fail(h, "messages kept flowing after %zu deliveries", n);
	return n;
}

void h_inject(harness *h, px_msg *m)
{
	assert(m != NULL);
	H_GROW(h->pool, h->npool, h->pool_cap);
	h->pool[h->npool++] = m;
}

size_t h_drop(harness *h, h_filter f)
{
	size_t n = 0;
	for (size_t i = 0; i < h->npool;) {
		if (h_match(h->pool[i], f)) {
			px_msg_free(h_take(h, i));
			n++;
		} else {
			i++;
		}
	}
	return n;
}

void h_cut(harness *h, uint32_t from, uint32_t to, bool cut)
{
	h->cut[from][to] = cut;
}

void h_isolate(harness *h, uint32_t id, bool isolated)
{
	for (uint32_t i = 0; i < h->n; i++) {
		if (i == id)
			continue;
		h->cut[id][i] = isolated;
		h->cut[i][id] = isolated;
	}
}

/* ---- failures --------------------------------------------------------- */

void h_crash(harness *h, uint32_t id)
{
	assert(id < h->n);
	h_drop(h, h_f(H_ANY, (int)id, H_ANY));
	h_node_down(h, id);
}

int h_restart(harness *h, uint32_t id)
{
	assert(id < h->n);
	h_node *nd = &h->nodes[id];
	if (nd->r != NULL)
		h_crash(h, id);
	h_node_boot(h, id);
	int rc = 0;
	for (size_t i = 0; i < nd->ndisk; i++)
		if (px_replica_restore(nd->r, &nd->disk[i]) != 0)
			rc = -1;
	px_status st;
	px_replica_status(nd->r, &st);
	nd->applied = st.applied;
	/* A process that starts ticks once: its timers start now. */
	h_tick(h, id, h->now);
	return rc;
}

void h_wipe(harness *h, uint32_t id)
{
	assert(id < h->n);
	h_node *nd = &h->nodes[id];
	if (nd->r != NULL)
		h_crash(h, id);
	for (size_t j = 0; j < nd->ndisk; j++)
		px_record_clear(&nd->disk[j]);
	nd->ndisk = 0;
}

bool h_up(const harness *h, uint32_t id)
{
	return h->nodes[id].r != NULL;
}

/* ---- running ---------------------------------------------------------- */

size_t h_run_until_quiet(harness *h)
{
	uint64_t start = h->steps;
	while (h->steps - start < H_EVENTS_MAX) {
		if (h->npool > 0) {
			h_deliver_msg(h, h_take(h, 0));
			continue;
		}
		if (h_sync_all(h) == 0)
			break;
	}
	if (h->steps - start >= H_EVENTS_MAX)
		h_fail(h, "the cell did not go quiet after %u events",
		       H_EVENTS_MAX);
	return (size_t)(h->steps - start);
}

void h_run_for(harness *h, uint64_t dur_us, uint64_t step_us)
{
	assert(step_us > 0);
	uint64_t end = h->now + dur_us;
	while (h->now < end) {
		uint64_t next = h->now + step_us < end ? h->now + step_us : end;
		h_set_time(h, next);
		for (uint32_t i = 0; i < h->n; i++)
			if (h->nodes[i].r != NULL &&
			    h->nodes[i].timer_at <= h->now)
				h_tick(h, i, h->now);
		h_run_until_quiet(h);
	}
}

/* ---- views ------------------------------------------------------------ */

const px_replica *h_replica(const harness *h, uint32_t id)
{
	return h->nodes[id].r;
}

px_status h_status(const harness *h, uint32_t id)
{
	px_status st;
	memset(&st, 0, sizeof st);
	st.leader = -1;
	if (h->nodes[id].r != NULL)
		px_replica_status(h->nodes[id].r, &st);
	return st;
}

const px_value *h_chosen(const harness *h, uint32_t id, uint64_t slot)
{
	if (h->nodes[id].r == NULL)
		return NULL;
	return px_replica_chosen_at(h->nodes[id].r, slot);
}

const px_value *h_learned(const harness *h, uint64_t slot)
{
	return slot < h->learned_cap ? h->learned[slot].value : NULL;
}

uint64_t h_learned_max(const harness *h)
{
	return h->learned_max;
}

int h_leader(const harness *h)
{
	int best = -1;
	px_ballot bb = {0, 0};
	for (uint32_t i = 0; i < h->n; i++) {
		px_status st = h_status(h, i);
		if (h->nodes[i].r == NULL || st.role != PX_LEADER)
			continue;
		if (best < 0 || px_ballot_cmp(st.ballot, bb) > 0) {
			best = (int)i;
			bb = st.ballot;
		}
	}
	return best;
}

const h_applied *h_sm_applied(const harness *h, uint32_t id, size_t *n)
{
	*n = h->nodes[id].sm.n;
	return h->nodes[id].sm.log;
}

size_t h_sm_count(const harness *h, uint32_t id, uint64_t client, uint64_t seq)
{
	size_t k = 0;
	const h_sm *m = &h->nodes[id].sm;
	for (size_t i = 0; i < m->n; i++)
		k += m->log[i].client_id == client && m->log[i].seq == seq;
	return k;
}

bool h_value_is(const px_value *v, const char *data)
{
	size_t len = strlen(data);
	return v != NULL && v->ncmds == 1 && v->cmds[0].len == len &&
	       memcmp(v->cmds[0].data, data, len) == 0;
}

bool h_ok(const harness *h)
{
	return h->ok;
}

const char *h_error(const harness *h)
{
	return h->ok ? "" : h->err;
}

uint64_t h_steps(const harness *h)
{
	return h->steps;
}

uint32_t h_snapshots_installed(const harness *h, uint32_t id)
{
	return h->nodes[id].snapshots;
}

static const char *h_type_name(px_msg_type t)
{
	static const char *names[] = {
		[PX_MSG_PREPARE] = "PREPARE",
		[PX_MSG_PROMISE] = "PROMISE",
		[PX_MSG_ACCEPT] = "ACCEPT",
		[PX_MSG_ACCEPTED] = "ACCEPTED",
		[PX_MSG_REJECT] = "REJECT",
		[PX_MSG_COMMIT] = "COMMIT",
		[PX_MSG_COMMIT_ACK] = "COMMIT_ACK",
		[PX_MSG_CATCHUP_REQ] = "CATCHUP_REQ",
		[PX_MSG_CATCHUP] = "CATCHUP",
		[PX_MSG_SNAPSHOT] = "SNAPSHOT",
		[PX_MSG_PROBE] = "PROBE",
		[PX_MSG_PROBE_ACK] = "PROBE_ACK",
	};
	if ((unsigned)t > PX_MSG_TYPE_MAX || names[t] == NULL)
		return "?";
	return names[t];
}

void h_dump(const harness *h)
{
	fprintf(stderr, "t=%" PRIu64 " in flight: %zu\n", h->now, h->npool);
	for (size_t i = 0; i < h->npool; i++) {
		const px_msg *m = h->pool[i];
		fprintf(stderr,
			"  %u->%u %-11s b=(%" PRIu64 ",%u) slot=%" PRIu64
			" commit=%" PRIu64 " nvotes=%u\n",
			m->from, m->to, h_type_name(m->type), m->ballot.round,
			m->ballot.id, m->slot, m->commit, m->nvotes);
	}
	for (uint32_t i = 0; i < h->n; i++) {
		px_status st = h_status(h, i);
		fprintf(stderr,
			"  r%u %s role=%d b=(%" PRIu64 ",%u) p=(%" PRIu64
			",%u) leader=%d commit=%" PRIu64 " next=%" PRIu64
			" pend=%zu\n",
			i, h->nodes[i].r ? "up" : "down", st.role,
			st.ballot.round, st.ballot.id, st.promised.round,
			st.promised.id, st.leader, st.commit, st.next_slot,
			h->nodes[i].npend);
	}
}
