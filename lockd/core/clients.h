/* The exactly-once table: each client's last command applied (its seq, the
 * slot it was applied at, and its result), so that a retry is answered from
 * here instead of applied twice. Every replica applies the same ledger, so
 * every replica holds the same entries.
 *
 * At most max clients. When a new one comes to a full table, the client
 * whose last command applied earliest is forgotten: the least slot, and of
 * those the least id. (A client that is silent while max others write loses
 * its exactly-once answer: a retry it sends after that is applied as new.)
 * The choice depends only on the entries, never on how they were laid out,
 * so a replica that restored a snapshot forgets the same client as one that
 * applied every slot.
 *
 * Finding the one to forget costs O(1) amortized, not a scan: a client's
 * first apply in a slot appends (slot, id) to a queue whose slots never
 * fall, and an entry whose client has since moved on (or gone) is stale
 * and skipped. The queue is compacted whenever its stale entries outnumber
 * the live ones (one per client), so it holds at most about 2 x n +
 * PXC_QUEUE_SLACK entries.
 *
 * Ownership: the table owns its slots and queue; pxc_free frees them.
 * Pointers from pxc_find and pxc_upsert are valid until the next call that
 * changes the table. */
#ifndef LD_CLIENTS_H
#define LD_CLIENTS_H

#include <stdbool.h>
#include <stdint.h>

#include "ld_limits.h"
#include "mem.h"

typedef struct client_ent {
	uint64_t client_id; /* 0: empty */
	uint64_t seq, slot;
	/* The slot of its entry in the queue (not in a snapshot): a client
	 * applied many times in one decree has one entry for it. */
	uint64_t qslot;
	uint32_t result_len;
	uint8_t result[LD_RESULT_BYTES_MAX];
} client_ent;

typedef struct pxc_touch {
	uint64_t slot, id;
} pxc_touch;

typedef struct px_clients {
	mem_idtab tab; /* client_ent by id. Invariant: n <= max */
	/* (slot, id) of the first apply of a client in each slot since the
	 * last compaction, slots nondecreasing from q[head]; every live
	 * client has an entry at its slot, and only one. */
	pxc_touch *q;
	size_t head, len, cap;
	/* A slot below one applied before came (a snapshot's entries that
	 * cannot be right): the queue is sorted again before it is used. */
	bool unsorted;
	uint32_t max;
} px_clients;

#define PXC_QUEUE_SLACK 1024u

/* An empty table of at most max (> 0) clients. */
void pxc_init(px_clients *t, uint32_t max);
void pxc_free(px_clients *t);

static inline uint32_t pxc_count(const px_clients *t)
{
	return t->tab.n;
}

client_ent *pxc_find(const px_clients *t, uint64_t id);

/* id's entry, made (zeroed: seq 0) if it has none, forgetting the oldest
 * client first when the table is full. */
client_ent *pxc_upsert(px_clients *t, uint64_t id);

/* c's command seq was applied at slot with result res (n <=
 * LD_RESULT_BYTES_MAX bytes). Slots come in order; one below an earlier
 * one (only a snapshot that lied could cause it) costs a sort. */
void pxc_applied(px_clients *t, client_ent *c, uint64_t seq, uint64_t slot,
		 const uint8_t *res, uint32_t n);

/* Restore: pxc_reset empties the table and makes room for n clients;
 * pxc_put adds (or replaces) one (rl <= LD_RESULT_BYTES_MAX, at most max
 * of them); pxc_loaded builds the queue from what was put. */
void pxc_reset(px_clients *t, uint32_t n);
void pxc_put(px_clients *t, uint64_t id, uint64_t seq, uint64_t slot,
	     const uint8_t *res, uint32_t rl);
void pxc_loaded(px_clients *t);

/* The id the next eviction would forget (0: the table is empty): for tests
 * and checks. O(1) amortized, like the eviction. */
uint64_t pxc_oldest(px_clients *t);

/* Asserts the invariants (the queue's order, and that every live client has
 * an entry at its slot): O(n). */
void pxc_check(const px_clients *t);

#endif
