/* See mem.h. */
#include "mem.h"

#include <stdlib.h>
#include <string.h>

#include "value.h"

void *ld_grow(void *p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return p;
	size_t n = *cap ? *cap * 2 : 16;
	while (n < need)
		n *= 2;
	void *q = realloc(p, n * elem);
	if (q == NULL)
		abort();
	*cap = n;
	return q;
}

static uint32_t idtab_home(const ld_idtab *t, uint64_t key)
{
	return (uint32_t)px_mix64(key) & (t->cap - 1);
}

static uint64_t *idtab_keyp(const ld_idtab *t, uint32_t i)
{
	return (uint64_t *)ld_idtab_at(t, i);
}

void *ld_idtab_find(const ld_idtab *t, uint64_t key)
{
	if (t->cap == 0 || key == 0)
		return NULL;
	uint32_t mask = t->cap - 1;
	for (uint32_t i = idtab_home(t, key);; i = (i + 1) & mask) {
		uint64_t k = *idtab_keyp(t, i);
		if (k == key)
			return ld_idtab_at(t, i);
		if (k == 0)
			return NULL;
	}
}

/* The first empty slot of key's probe chain (the table has one). */
static void *idtab_free_slot(const ld_idtab *t, uint64_t key)
{
	uint32_t mask = t->cap - 1;
	uint32_t i = idtab_home(t, key);
	while (*idtab_keyp(t, i) != 0)
		i = (i + 1) & mask;
	return ld_idtab_at(t, i);
}

void ld_idtab_rehash(ld_idtab *t, uint32_t cap)
{
	uint8_t *old = t->slots;
	uint32_t old_cap = t->cap;
	t->slots = calloc(cap, t->elem);
	if (t->slots == NULL)
		abort();
	t->cap = cap;
	for (uint32_t j = 0; j < old_cap; j++) {
		const uint8_t *rec = old + (size_t)j * t->elem;
		uint64_t key;
		memcpy(&key, rec, sizeof key);
		if (key != 0)
			memcpy(idtab_free_slot(t, key), rec, t->elem);
	}
	free(old);
}

void *ld_idtab_insert(ld_idtab *t, uint64_t key)
{
	if ((t->n + 1) * 2 > t->cap)
		ld_idtab_rehash(t, t->cap ? t->cap * 2 : 64);
	void *rec = idtab_free_slot(t, key);
	memset(rec, 0, t->elem);
	*(uint64_t *)rec = key;
	t->n++;
	return rec;
}

void ld_idtab_remove(ld_idtab *t, void *rec)
{
	uint32_t mask = t->cap - 1;
	uint32_t i = (uint32_t)(((uint8_t *)rec - t->slots) / t->elem);
	for (uint32_t j = (i + 1) & mask; *idtab_keyp(t, j) != 0;
	     j = (j + 1) & mask) {
		uint32_t home = idtab_home(t, *idtab_keyp(t, j));
		/* Move j into the hole at i if its home is not in (i, j]. */
		if (((j - home) & mask) >= ((j - i) & mask)) {
			memcpy(ld_idtab_at(t, i), ld_idtab_at(t, j), t->elem);
			i = j;
		}
	}
	*idtab_keyp(t, i) = 0;
	t->n--;
}

void ld_idtab_free(ld_idtab *t)
{
	free(t->slots);
	t->slots = NULL;
	t->cap = t->n = 0;
}
