/* The core's two containers, written once: arrays that grow by doubling,
 * and a hash table of fixed-size records keyed by a nonzero 64-bit id
 * (open addressing, linear probing, power-of-two capacity, at most half
 * full). Both abort when out of memory: they hold actions or state that the
 * core may not silently drop (a lost action breaks the durability contract,
 * a lost record makes a replica diverge). */
#ifndef LD_MEM_H
#define LD_MEM_H

#include <stddef.h>
#include <stdint.h>

/* Makes room for need elements of elem bytes in p (capacity *cap, updated):
 * doubles from 16 until it fits. Returns the (perhaps moved) array. */
void *mem_grow(void *p, size_t *cap, size_t need, size_t elem);

/* Every record starts with its uint64_t key, or two of them (keys == 2:
 * the pair is the key); a first key of 0 marks an empty slot.
 * Where a record sits depends on the order of inserts and removals, so a
 * walk over the slots (mem_idtab_at) is deterministic given the history. */
typedef struct mem_idtab {
	uint8_t *slots; /* cap records of elem bytes, calloc'd; the owner's */
	uint32_t cap, n;
	size_t elem;
	uint32_t keys; /* 1 or 2 */
} mem_idtab;

#define LD_IDTAB_INIT(type)                     \
	{                                       \
		.elem = sizeof(type), .keys = 1 \
	}
#define LD_IDTAB_INIT2(type)                    \
	{                                       \
		.elem = sizeof(type), .keys = 2 \
	}

/* The record for key (a one-key table), or NULL. */
void *mem_idtab_find(const mem_idtab *t, uint64_t key);
/* The record for (key, key2) (a two-key table), or NULL. */
void *mem_idtab_find2(const mem_idtab *t, uint64_t key, uint64_t key2);

/* A zeroed record for key (which must be absent), its key set; grows the
 * table first when it would be over half full (to twice, or 64). */
void *mem_idtab_insert(mem_idtab *t, uint64_t key);
void *mem_idtab_insert2(mem_idtab *t, uint64_t key, uint64_t key2);

/* Removes the record rec points to (from mem_idtab_find), keeping probe
 * chains whole by backward-shift deletion: O(1) expected. */
void mem_idtab_remove(mem_idtab *t, void *rec);

/* Reinserts every record, in slot order, into a new table of cap slots (a
 * power of two above 2 x n). */
void mem_idtab_rehash(mem_idtab *t, uint32_t cap);

/* Slot i (< cap): a record, or one whose key is 0. */
static inline void *mem_idtab_at(const mem_idtab *t, uint32_t i)
{
	return t->slots + (size_t)i * t->elem;
}

static inline uint64_t mem_idtab_key(const mem_idtab *t, uint32_t i)
{
	return *(const uint64_t *)mem_idtab_at(t, i);
}

/* Frees the slots; the table is then empty (and may be used again). */
void mem_idtab_free(mem_idtab *t);

#endif
