/* The watch feed: every holder change this replica applied, newest last, so
 * that a watcher resuming from a ledger position sees each change after it,
 * not only the state it finds when it looks (what polling reads would give).
 *
 * The feed lives in memory on each replica and is filled by the lease
 * table's tap (lease.h) as decrees are applied. It is not replicated state:
 * it starts empty at restart and after a snapshot install, and it keeps the
 * last `cap` changes. `lo` says how far back it is complete: every change
 * at a position > lo is in it. A watcher asking from before lo gets the
 * current state instead, marked as such (etcd answers ErrCompacted there).
 *
 * Several changes of one name at one position (a release that hands the
 * name to a waiter: free, then the waiter) are kept as one entry, the state
 * after that position. */
#ifndef LD_WATCH_H
#define LD_WATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "lease.h"

typedef struct ld_watch_entry {
	uint64_t slot; /* the ledger position of the change */
	char *name;    /* owned; not NUL-terminated */
	uint32_t name_len;
	bool held; /* false: the name became free */
	uint64_t holder, token;
	uint32_t ttl_ms;
	uint8_t *value; /* owned (NULL when empty) */
	uint32_t value_len;
} ld_watch_entry;

typedef struct ld_watch_feed {
	ld_watch_entry *v; /* ring of cap entries */
	uint32_t cap, head, n;
	uint64_t lo;    /* complete for positions > lo */
	uint64_t added; /* entries ever added: a parked watcher's mark */
	/* Where a name's entry at the newest position is, so that a decree
	 * of many changes (a mass expiry: 170,000 in one decree) finds a
	 * name again in O(1), not by a walk over that position's entries:
	 * open addressing by the name's hash, each cell 1 + the entry's
	 * number among those ever appended (0: empty). Cells of older
	 * positions or of entries gone from the ring are stale and skipped;
	 * when half the cells are used the index is rebuilt from the newest
	 * position's entries (at most cap, a quarter of ix_cap). */
	uint64_t *ix;
	uint32_t ix_cap, ix_used;
	uint64_t appended; /* entries ever appended */
} ld_watch_feed;

/* An empty feed, complete after position lo. 0, or -1 out of memory. */
int ld_watch_feed_init(ld_watch_feed *f, uint32_t cap, uint64_t lo);
void ld_watch_feed_free(ld_watch_feed *f);

/* Forgets every entry: nothing is known at or before lo (a snapshot was
 * installed, replacing the table without applying its history). */
void ld_watch_feed_reset(ld_watch_feed *f, uint64_t lo);

/* The lease tap (ls_tap_fn) that fills the feed: arg is the feed. */
void ld_watch_feed_tap(void *arg, uint64_t slot, const char *name,
		       uint32_t name_len, const ls_view *v);

typedef enum ld_watch_find_rv {
	LD_WATCH_NONE = 0, /* no change of name after the position (yet) */
	LD_WATCH_FOUND,    /* *out is the first change after it */
	LD_WATCH_LOST,     /* the feed no longer reaches back that far */
} ld_watch_find_rv;

/* The first change of name at a position > after, looking only at the
 * entries added since mark (an earlier ld_watch_feed.added; 0: all).
 * *out is borrowed until the next add or reset. */
ld_watch_find_rv ld_watch_find(const ld_watch_feed *f, const char *name,
			       uint32_t name_len, uint64_t after, uint64_t mark,
			       const ld_watch_entry **out);

/* WATCH with a prefix: every change of a name starting with prefix (plen
 * bytes; 0: every name) at the first position > after that has one, as
 * out[0..*n) (at most cap; borrowed like ld_watch_find's). Its LOST and
 * NONE are ld_watch_find's. */
ld_watch_find_rv ld_watch_find_prefix(const ld_watch_feed *f,
				      const char *prefix, uint32_t plen,
				      uint64_t after, uint64_t mark,
				      const ld_watch_entry **out, uint32_t cap,
				      uint32_t *n);

#endif
