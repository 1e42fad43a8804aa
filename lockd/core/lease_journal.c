/* The lease table's journal (lease.h's ls_change): what applies changed,
 * for the node's timers and answers, kept until the node clears it after
 * its step; and the tap, for the daemon's watch feed. */
#include <stdlib.h>
#include <string.h>

#include "lease_int.h"

static void *journal_must(void *p)
{
	if (p == NULL)
		abort();
	return p;
}

#define LEASE_CHUNK_BYTES 65536u
#define LEASE_JOURNAL_KEEP 65536u /* entries kept allocated across clears */

/* A copy of name that lives until the journal is cleared. */
static const char *lease_arena_copy(ls_table *t, const char *name, uint32_t len)
{
	lease_chunk *c = t->arena;
	if (c == NULL || c->cap - c->used < len) {
		size_t cap = len > LEASE_CHUNK_BYTES ? len : LEASE_CHUNK_BYTES;
		c = journal_must(malloc(sizeof *c + cap));
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

void lease_journal(ls_table *t, ls_change_kind kind, uint64_t slot,
		   const lease_rec *l, uint64_t token, uint64_t session)
{
	if (t->njournal == t->journal_cap) {
		size_t cap = t->journal_cap ? 2 * t->journal_cap : 64;
		t->journal = journal_must(
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
	/* A renewal round of a million leases grew it to 64 MB: give that
	 * back rather than carry it (and fork it for every capture). */
	if (t->journal_cap > LEASE_JOURNAL_KEEP) {
		free(t->journal);
		t->journal = NULL;
		t->journal_cap = 0;
	}
	while (t->arena != NULL) {
		lease_chunk *next = t->arena->next;
		free(t->arena);
		t->arena = next;
	}
}
