#include "watch.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

int ld_watch_feed_init(ld_watch_feed *f, uint32_t cap, uint64_t lo)
{
	assert(cap > 0);
	memset(f, 0, sizeof *f);
	f->v = calloc(cap, sizeof *f->v);
	if (f->v == NULL)
		return -1;
	f->cap = cap;
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

void ld_watch_feed_tap(void *arg, uint64_t slot, const char *name,
		       uint32_t name_len, const ls_view *v)
{
	ld_watch_feed *f = arg;
	f->added++;
	/* The same name again at the same position: keep the state after. */
	for (uint32_t i = f->n; i-- > 0;) {
		ld_watch_entry *e = watch_at(f, i);
		if (e->slot != slot)
			break;
		if (watch_same_name(e, name, name_len)) {
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
