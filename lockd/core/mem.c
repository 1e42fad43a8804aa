/* See mem.h. */
#include "mem.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "value.h"

void *mem_grow(void *p, size_t *cap, size_t need, size_t elem)
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

static uint32_t idtab_home(const mem_idtab *t, uint64_t key, uint64_t key2)
{
	uint64_t h = t->keys == 2 ? key ^ px_mix64(key2) : key;
	return (uint32_t)px_mix64(h) & (t->cap - 1);
}

static uint64_t *idtab_keyp(const mem_idtab *t, uint32_t i)
{
	return (uint64_t *)mem_idtab_at(t, i);
}

static uint32_t idtab_home_of(const mem_idtab *t, uint32_t i)
{
	const uint64_t *k = idtab_keyp(t, i);
	return idtab_home(t, k[0], t->keys == 2 ? k[1] : 0);
}

void *mem_idtab_find2(const mem_idtab *t, uint64_t key, uint64_t key2)
{
	if (t->cap == 0 || key == 0)
		return NULL;
	uint32_t mask = t->cap - 1;
	for (uint32_t i = idtab_home(t, key, key2);; i = (i + 1) & mask) {
		const uint64_t *k = idtab_keyp(t, i);
		if (k[0] == key && (t->keys == 1 || k[1] == key2))
			return mem_idtab_at(t, i);
		if (k[0] == 0)
			return NULL;
	}
}

void *mem_idtab_find(const mem_idtab *t, uint64_t key)
{
	return mem_idtab_find2(t, key, 0);
}

/* The first empty slot of the keys' probe chain (the table has one). */
static void *idtab_free_slot(const mem_idtab *t, uint64_t key, uint64_t key2)
{
	uint32_t mask = t->cap - 1;
	uint32_t i = idtab_home(t, key, key2);
	while (*idtab_keyp(t, i) != 0)
		i = (i + 1) & mask;
	return mem_idtab_at(t, i);
}

void mem_idtab_rehash(mem_idtab *t, uint32_t cap)
{
	uint8_t *old = t->slots;
	uint32_t old_cap = t->cap;
	t->slots = calloc(cap, t->elem);
	if (t->slots == NULL)
		abort();
	t->cap = cap;
	for (uint32_t j = 0; j < old_cap; j++) {
		const uint8_t *rec = old + (size_t)j * t->elem;
		uint64_t key[2] = {0, 0};
		memcpy(key, rec, t->keys * sizeof key[0]);
		if (key[0] != 0)
			memcpy(idtab_free_slot(t, key[0], key[1]), rec,
			       t->elem);
	}
	free(old);
}

void *mem_idtab_insert2(mem_idtab *t, uint64_t key, uint64_t key2)
{
	assert(key != 0 && mem_idtab_find2(t, key, key2) == NULL);
	if ((t->n + 1) * 2 > t->cap)
		mem_idtab_rehash(t, t->cap ? t->cap * 2 : 64);
	uint64_t *rec = idtab_free_slot(t, key, key2);
	memset(rec, 0, t->elem);
	rec[0] = key;
	if (t->keys == 2)
		rec[1] = key2;
	t->n++;
	return rec;
}

void *mem_idtab_insert(mem_idtab *t, uint64_t key)
{
	return mem_idtab_insert2(t, key, 0);
}

void mem_idtab_remove(mem_idtab *t, void *rec)
{
	uint32_t mask = t->cap - 1;
	uint32_t i = (uint32_t)(((uint8_t *)rec - t->slots) / t->elem);
	for (uint32_t j = (i + 1) & mask; *idtab_keyp(t, j) != 0;
	     j = (j + 1) & mask) {
		uint32_t home = idtab_home_of(t, j);
		/* Move j into the hole at i if its home is not in (i, j]. */
		if (((j - home) & mask) >= ((j - i) & mask)) {
			memcpy(mem_idtab_at(t, i), mem_idtab_at(t, j), t->elem);
			i = j;
		}
	}
	*idtab_keyp(t, i) = 0;
	t->n--;
}

void mem_idtab_free(mem_idtab *t)
{
	free(t->slots);
	t->slots = NULL;
	t->cap = t->n = 0;
}
