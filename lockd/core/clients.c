/* The exactly-once table (clients.h). */
#include "clients.h"

#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

void pxc_init(px_clients *t, uint32_t max)
{
	assert(max > 0);
	*t = (px_clients){.tab = LD_IDTAB_INIT(client_ent), .max = max};
}

void pxc_free(px_clients *t)
{
	mem_idtab_free(&t->tab);
	free(t->q);
	t->q = NULL;
	t->head = t->len = t->cap = 0;
}

client_ent *pxc_find(const px_clients *t, uint64_t id)
{
	return mem_idtab_find(&t->tab, id);
}

/* Whether queue entry e still stands for its client's last apply. */
static bool touch_live(const px_clients *t, const pxc_touch *e)
{
	const client_ent *c = pxc_find(t, e->id);
	return c != NULL && c->slot == e->slot;
}

/* Drops the stale entries, keeping the order of the rest. */
static void queue_compact(px_clients *t)
{
	size_t w = 0;
	for (size_t i = t->head; i < t->len; i++)
		if (touch_live(t, &t->q[i]))
			t->q[w++] = t->q[i];
	t->head = 0;
	t->len = w;
}

static void queue_push(px_clients *t, uint64_t slot, uint64_t id)
{
	if (t->len > t->head && t->q[t->len - 1].slot > slot)
		t->unsorted = true;
	if (t->len - t->head > 2u * (size_t)t->tab.n + PXC_QUEUE_SLACK)
		queue_compact(t);
	/* Reuse the room in front only when it is half the queue: moving
	 * the rest costs as much as the pushes that filled it. */
	if (t->len == t->cap && t->head > 0 && t->head >= t->len / 2) {
		memmove(t->q, t->q + t->head,
			(t->len - t->head) * sizeof *t->q);
		t->len -= t->head;
		t->head = 0;
	}
	t->q = mem_grow(t->q, &t->cap, t->len + 1, sizeof *t->q);
	t->q[t->len++] = (pxc_touch){.slot = slot, .id = id};
}

/* The live client with the least (slot, id), dropping the stale entries in
 * front of it; NULL when the table is empty. Its slot's entries are
 * contiguous at the queue's front, and one decree applies at most a batch
 * of commands: the scan over them is short. */
static client_ent *oldest(px_clients *t)
{
	if (t->unsorted)
		pxc_loaded(t);
	while (t->head < t->len && !touch_live(t, &t->q[t->head]))
		t->head++;
	if (t->head == t->len)
		return NULL;
	uint64_t slot = t->q[t->head].slot;
	client_ent *best = NULL;
	for (size_t i = t->head; i < t->len && t->q[i].slot == slot; i++) {
		client_ent *c = pxc_find(t, t->q[i].id);
		if (c != NULL && c->slot == slot &&
		    (best == NULL || c->client_id < best->client_id))
			best = c;
	}
	return best;
}

uint64_t pxc_oldest(px_clients *t)
{
	const client_ent *c = oldest(t);
	return c != NULL ? c->client_id : 0;
}

client_ent *pxc_upsert(px_clients *t, uint64_t id)
{
	client_ent *c = pxc_find(t, id);
	if (c != NULL)
		return c;
	if (t->tab.n >= t->max) {
		client_ent *o = oldest(t);
		assert(o != NULL);
		mem_idtab_remove(&t->tab, o);
	}
	return mem_idtab_insert(&t->tab, id);
}

void pxc_applied(px_clients *t, client_ent *c, uint64_t seq, uint64_t slot,
		 const uint8_t *res, uint32_t n)
{
	assert(n <= LD_RESULT_BYTES_MAX);
	c->seq = seq;
	c->slot = slot;
	c->result_len = n;
	if (n > 0)
		memcpy(c->result, res, n);
	if (c->qslot != slot) {
		c->qslot = slot;
		queue_push(t, slot, c->client_id);
	}
}

void pxc_reset(px_clients *t, uint32_t n)
{
	uint32_t cap = 64;
	while (cap < 2 * (n + 1))
		cap *= 2;
	mem_idtab_free(&t->tab);
	mem_idtab_rehash(&t->tab, cap);
	t->head = t->len = 0;
}

void pxc_put(px_clients *t, uint64_t id, uint64_t seq, uint64_t slot,
	     const uint8_t *res, uint32_t rl)
{
	assert(rl <= LD_RESULT_BYTES_MAX);
	client_ent *c = pxc_find(t, id);
	if (c == NULL) {
		assert(t->tab.n < t->max);
		c = mem_idtab_insert(&t->tab, id);
	}
	c->seq = seq;
	c->slot = slot;
	c->result_len = rl;
	if (rl > 0)
		memcpy(c->result, res, rl);
}

static int touch_cmp(const void *a, const void *b)
{
	const pxc_touch *x = a, *y = b;
	if (x->slot != y->slot)
		return x->slot < y->slot ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

void pxc_loaded(px_clients *t)
{
	t->unsorted = false;
	t->head = t->len = 0;
	t->q = mem_grow(t->q, &t->cap, (size_t)t->tab.n + 1, sizeof *t->q);
	for (uint32_t i = 0; i < t->tab.cap; i++) {
		client_ent *c = mem_idtab_at(&t->tab, i);
		if (c->client_id != 0) {
			c->qslot = c->slot;
			t->q[t->len++] = (pxc_touch){.slot = c->slot,
						     .id = c->client_id};
		}
	}
	qsort(t->q, t->len, sizeof *t->q, touch_cmp);
}

void pxc_check(const px_clients *t)
{
	assert(t->tab.n <= t->max);
	assert(t->tab.cap == 0 || t->tab.n * 2 <= t->tab.cap);
	assert(t->head <= t->len && t->len <= t->cap);
	uint32_t n = 0;
	for (uint32_t i = 0; i < t->tab.cap; i++)
		n += mem_idtab_key(&t->tab, i) != 0;
	assert(n == t->tab.n);
	for (size_t i = t->head + 1; i < t->len && !t->unsorted; i++)
		assert(t->q[i - 1].slot <= t->q[i].slot);
	/* Every live client has an entry at its slot: count the live
	 * entries, one per client (a client applied twice in one slot has
	 * two). */
	uint32_t live = 0;
	for (size_t i = t->head; i < t->len && !t->unsorted; i++) {
		const pxc_touch *e = &t->q[i];
		if (!touch_live(t, e))
			continue;
		bool first = true;
		for (size_t j = i; j-- > t->head && t->q[j].slot == e->slot;)
			if (t->q[j].id == e->id)
				first = false;
		live += first;
	}
	assert(t->unsorted || live == t->tab.n);
	(void)n;
	(void)live;
}
