#include "watch.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

int ld_watch_feed_init(ld_watch_feed *f, uint32_t cap, uint64_t lo)
{
	assert(cap > 0 && cap <= UINT32_MAX / 8);
	memset(f, 0, sizeof *f);
	uint32_t ix_cap = 16;
	while (ix_cap < 4 * cap)
		ix_cap *= 2;
	f->v = calloc(cap, sizeof *f->v);
	f->ix = calloc(ix_cap, sizeof *f->ix);
	if (f->v == NULL || f->ix == NULL) {
		free(f->v);
		free(f->ix);
		f->v = NULL;
		f->ix = NULL;
		return -1;
	}
	f->cap = cap;
	f->ix_cap = ix_cap;
	f->lo = lo;
	return 0;
}

static void watch_entry_clear(ld_watch_entry *e)
{
	free(e->name);
	free(e->value);
	memset(e, 0, sizeof *e);
}

static ld_watch_entry *watch_at(const ld_watch_feed *f, uint32_t i)
{
	return &f->v[(f->head + i) % f->cap];
}

void ld_watch_feed_reset(ld_watch_feed *f, uint64_t lo)
{
	for (uint32_t i = 0; i < f->n; i++)
		watch_entry_clear(watch_at(f, i));
	f->head = 0;
	f->n = 0;
	memset(f->ix, 0, (size_t)f->ix_cap * sizeof *f->ix);
	f->ix_used = 0;
	if (lo > f->lo)
		f->lo = lo;
	f->added++; /* parked watchers look again, and find LOST */
}

void ld_watch_feed_free(ld_watch_feed *f)
{
	if (f->v == NULL)
		return;
	ld_watch_feed_reset(f, 0);
	free(f->v);
	free(f->ix);
	memset(f, 0, sizeof *f);
}

static bool watch_same_name(const ld_watch_entry *e, const char *name,
			    uint32_t len)
{
	return e->name_len == len && memcmp(e->name, name, len) == 0;
}

/* Fills e from v (NULL: free). false when out of memory. */
static bool watch_fill(ld_watch_entry *e, const ls_view *v)
{
	free(e->value);
	e->value = NULL;
	e->value_len = 0;
	e->held = v != NULL;
	e->holder = v ? v->holder : 0;
	e->token = v ? v->token : 0;
	e->ttl_ms = v ? v->ttl_ms : 0;
	if (v != NULL && v->value_len > 0) {
		e->value = malloc(v->value_len);
		if (e->value == NULL)
			return false;
		memcpy(e->value, v->value, v->value_len);
		e->value_len = v->value_len;
	}
	return true;
}

static uint32_t watch_hash(const char *name, uint32_t len)
{
	uint64_t h = 14695981039346656037ull; /* FNV-1a */
	for (uint32_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)name[i]) * 1099511628211ull;
	return (uint32_t)(h ^ (h >> 32));
}

/* The entry numbered k (of those ever appended), if still in the ring. */
static ld_watch_entry *watch_numbered(const ld_watch_feed *f, uint64_t k)
{
	uint64_t oldest = f->appended - f->n;
	if (k < oldest || k >= f->appended)
		return NULL;
	return watch_at(f, (uint32_t)(k - oldest));
}

/* name's entry at position slot, the newest, if it has one. */
static ld_watch_entry *watch_ix_find(const ld_watch_feed *f, uint64_t slot,
				     const char *name, uint32_t len)
{
	uint32_t mask = f->ix_cap - 1;
	for (uint32_t i = watch_hash(name, len) & mask; f->ix[i] != 0;
	     i = (i + 1) & mask) {
		ld_watch_entry *e = watch_numbered(f, f->ix[i] - 1);
		if (e != NULL && e->slot == slot &&
		    watch_same_name(e, name, len))
			return e;
	}
	return NULL;
}

static void watch_ix_put(ld_watch_feed *f, uint64_t k)
{
	const ld_watch_entry *e = watch_numbered(f, k);
	uint32_t mask = f->ix_cap - 1;
	uint32_t i = watch_hash(e->name, e->name_len) & mask;
	while (f->ix[i] != 0)
		i = (i + 1) & mask;
	f->ix[i] = k + 1;
	f->ix_used++;
}

/* Indexes the entry just appended; first, when half the cells are used,
 * starts again from the entries at its position (the ring's newest). */
static void watch_ix_add(ld_watch_feed *f)
{
	uint64_t k = f->appended - 1;
	if (f->ix_used + 1 > f->ix_cap / 2) {
		memset(f->ix, 0, (size_t)f->ix_cap * sizeof *f->ix);
		f->ix_used = 0;
		uint64_t slot = watch_numbered(f, k)->slot;
		uint64_t j = k;
		while (j > f->appended - f->n &&
		       watch_numbered(f, j - 1)->slot == slot)
			j--;
		for (; j < k; j++)
			watch_ix_put(f, j);
	}
	watch_ix_put(f, k);
}

void ld_watch_feed_tap(void *arg, uint64_t slot, const char *name,
		       uint32_t name_len, const ls_view *v)
{
	ld_watch_feed *f = arg;
	f->added++;
	/* The same name again at the same position: keep the state after. */
	if (f->n > 0 && watch_at(f, f->n - 1)->slot == slot) {
		ld_watch_entry *e = watch_ix_find(f, slot, name, name_len);
		if (e != NULL) {
			if (!watch_fill(e, v))
				ld_watch_feed_reset(f, slot);
			return;
		}
	}
	if (f->n == f->cap) {
		/* The oldest goes: the feed is complete only after it. */
		ld_watch_entry *old = watch_at(f, 0);
		if (old->slot > f->lo)
			f->lo = old->slot;
		watch_entry_clear(old);
		f->head = (f->head + 1) % f->cap;
		f->n--;
	}
	ld_watch_entry *e = watch_at(f, f->n);
	e->slot = slot;
	e->name = malloc(name_len ? name_len : 1);
	if (e->name == NULL || !watch_fill(e, v)) {
		/* Out of memory: say that history up to here is unknown
		 * rather than hand out a feed with a hole in it. */
		watch_entry_clear(e);
		ld_watch_feed_reset(f, slot);
		return;
	}
	memcpy(e->name, name, name_len);
	e->name_len = name_len;
	f->n++;
	f->appended++;
	watch_ix_add(f);
}

ld_watch_find_rv ld_watch_find(const ld_watch_feed *f, const char *name,
			       uint32_t name_len, uint64_t after, uint64_t mark,
			       const ld_watch_entry **out)
{
	*out = NULL;
	if (after < f->lo)
		return LD_WATCH_LOST;
	/* Only the entries added since mark can be new to the watcher; the
	 * oldest of those that fits wins. */
	uint64_t fresh = f->added - mark;
	uint32_t from = fresh >= f->n ? 0 : f->n - (uint32_t)fresh;
	const ld_watch_entry *first = NULL;
	for (uint32_t i = f->n; i-- > from;) {
		const ld_watch_entry *e = watch_at(f, i);
		if (e->slot <= after)
			break;
		if (watch_same_name(e, name, name_len))
			first = e;
	}
	*out = first;
	return first != NULL ? LD_WATCH_FOUND : LD_WATCH_NONE;
}

ld_watch_find_rv ld_watch_find_prefix(const ld_watch_feed *f,
				      const char *prefix, uint32_t plen,
				      uint64_t after, uint64_t mark,
				      const ld_watch_entry **out, uint32_t cap,
				      uint32_t *n)
{
	*n = 0;
	if (after < f->lo)
		return LD_WATCH_LOST;
	uint64_t fresh = f->added - mark;
	uint32_t from = fresh >= f->n ? 0 : f->n - (uint32_t)fresh;
	/* The oldest fresh position after `after` with a match: entries are
	 * in position order, so it is the first match walking forwards from
	 * the first entry past `after`. */
	uint32_t i = from;
	while (i < f->n && watch_at(f, i)->slot <= after)
		i++;
	uint64_t slot = 0;
	for (; i < f->n; i++) {
		const ld_watch_entry *e = watch_at(f, i);
		if (slot != 0 && e->slot != slot)
			break;
		if (e->name_len < plen || memcmp(e->name, prefix, plen) != 0)
			continue;
		slot = e->slot;
		if (*n < cap)
			out[(*n)++] = e;
	}
	return *n > 0 ? LD_WATCH_FOUND : LD_WATCH_NONE;
}
