/* The one in-memory world the core is tested in: a replica's disk, a pool
 * of messages in flight, and a drifting monotonic clock. The scenario
 * harness (test/unit/harness.c), the node tests (test/unit/node_test.c)
 * and the simulator (test/sim) all build on these, so that a disk that
 * loses unsynced writes, or a clock that drifts, means the same in each.
 *
 * Ownership: a disk and a pool own what they hold (deep copies of records,
 * messages handed over) and free it in their _free. */
#ifndef TW_WORLD_H
#define TW_WORLD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "paxos.h"

/* ---- the disk --------------------------------------------------------------
 * Records written as part of write write_id wait, pending, until a sync
 * makes them durable, in order. A crash keeps a prefix of whole pending
 * writes (the ones that reached the platter) and loses the rest. */

typedef struct tw_write {
	px_record rec; /* deep-owned copy */
	uint64_t write_id;
} tw_write;

typedef struct tw_disk {
	px_record *durable; /* in the order they became durable */
	size_t ndurable, durable_cap;
	tw_write *pending; /* by increasing write_id */
	size_t npending, pending_cap;
} tw_disk;

void tw_disk_init(tw_disk *d);
void tw_disk_free(tw_disk *d);

/* A deep copy of rec (its decree referenced, its snapshot copied). */
void tw_record_copy(px_record *dst, const px_record *src);

/* Appends a copy of each of recs[0..n) to write write_id (pending). */
void tw_disk_write(tw_disk *d, const px_record *recs, size_t n,
		   uint64_t write_id);
/* As tw_disk_write for one record the disk takes (no copy). */
void tw_disk_write_owned(tw_disk *d, px_record rec, uint64_t write_id);

/* Pending writes with id <= write_id become durable, in order. Returns how
 * many records did; *snapshot (may be NULL) says whether one was a
 * snapshot. */
size_t tw_disk_sync(tw_disk *d, uint64_t write_id, bool *snapshot);

/* The highest pending write id (0: none pending). */
uint64_t tw_disk_pending_id(const tw_disk *d);

/* A crash: pending writes with id <= keep_id reached the disk, the others
 * are lost. Returns how many records were lost. */
size_t tw_disk_crash(tw_disk *d, uint64_t keep_id);

/* Pending writes with id <= write_id vanish (a sync that failed). */
void tw_disk_lose(tw_disk *d, uint64_t write_id);

/* The write id of the k'th pending record (k < npending). */
static inline uint64_t tw_disk_pending_at(const tw_disk *d, size_t k)
{
	return d->pending[k].write_id;
}

/* Appends a copy of rec to the durable records. */
void tw_disk_append(tw_disk *d, const px_record *rec);

/* Everything is lost, durable too (a wiped data directory). */
void tw_disk_wipe(tw_disk *d);

/* Once a snapshot is durable the log before it is dead weight: keeps the
 * newest snapshot, the highest promise (promises must never be lost) and
 * the votes and chosen hints past the snapshot's base, in their order.
 * Returns the base (0: no snapshot, nothing done). */
uint64_t tw_disk_compact(tw_disk *d);

bool tw_disk_has(const tw_disk *d, px_rec_type type);

/* Replays the durable records in restore order (paxos.h: the newest
 * snapshot first, then the rest oldest first) into restore. Returns 0, or
 * the first nonzero restore result with the record's index in *failed. */
int tw_disk_replay(const tw_disk *d,
		   int (*restore)(void *arg, const px_record *rec), void *arg,
		   size_t *failed);

/* ---- messages in flight ---------------------------------------------------
 * A pool in send order; who delivers what, and when, is the user's. */

typedef struct tw_pool {
	px_msg **m;
	size_t n, cap;
} tw_pool;

void tw_pool_init(tw_pool *p);
void tw_pool_free(tw_pool *p);           /* frees what is still in flight */
void tw_pool_put(tw_pool *p, px_msg *m); /* takes m */
/* Takes the i'th message out (the caller owns it); later ones move up. */
px_msg *tw_pool_take(tw_pool *p, size_t i);

/* ---- the clock ------------------------------------------------------------
 * A monotonic clock: local = offset + real + real * drift / 1e6. */

typedef struct tw_clock {
	uint64_t offset_us;
	int64_t drift_ppm;
} tw_clock;

uint64_t tw_clock_local(const tw_clock *k, uint64_t real);
/* The earliest real time at which the clock reads >= local_at; UINT64_MAX
 * when that is beyond any horizon we care about. */
uint64_t tw_clock_real(const tw_clock *k, uint64_t local_at);

#endif
