/* Durable storage for one lockd replica, on RocksDB.
 *
 * Column families:
 *   meta      identity of the data directory: format version, cell id,
 *             replica id, its origin (the cell size it was made for, or
 *             the configuration it joined a running cell with) and its
 *             incarnation. A directory that belongs to another replica or
 *             cell, or to another format, is refused.
 *   acceptor  the acceptor's promise (PX_REC_PROMISE) and, once the
 *             replica votes, PX_REC_JOINED: one key each.
 *   ledger    votes (PX_REC_VOTE), keyed by slot (big-endian u64), so they
 *             iterate in ledger order, and PX_REC_CHOSEN hints, each keyed
 *             right after its slot's vote.
 *   state     the newest snapshot of the lease table and client table
 *             (PX_REC_SNAPSHOT) with its base position.
 *
 * Every ds_write is one WriteBatch across the column families: a
 * snapshot record replaces the state and drops the votes at or below its
 * base in the same atomic write, so the applied position and the state it
 * describes never disagree on disk. With sync, the write-ahead log is synced
 * before the call returns: the core's promises and votes are answered only
 * after that (PX_EV_DURABLE).
 *
 * Records are encoded with codec.h (cd_record_encode/decode), and
 * every stored value carries a CRC32C over its column family, its key and
 * its bytes (storage.c), checked when it is read.
 * Functions return 0 or -1 with a sentence in err (errlen bytes); open and
 * load return DS_CORRUPT instead when what is stored fails its
 * checks. */
#ifndef DS_STORAGE_H
#define DS_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "paxos.h"

typedef struct ds_store ds_store;

/* The records in the directory fail their checks: a lockd checksum, a
 * record that does not decode or sits under the wrong key, or RocksDB's
 * own Corruption status (a file's checksum, a cut-short file). The
 * directory can no longer be trusted as this replica's durable memory; the
 * sentence names the directory and, for a record, its key. */
#define DS_CORRUPT (-2)

typedef struct ds_identity {
	uint64_t cell_id;    /* chosen by whoever starts the cell; 0 = any */
	uint32_t replica_id; /* < LD_REPLICA_IDS */
	/* For a new store, its origin: a cell of nreplicas (ids
	 * 0..nreplicas-1, replica_id among them), or 0 and the configuration
	 * it joins a running cell with (borrowed for the call). Both 0/NULL:
	 * a new store is left without an identity (ds_unborn) until
	 * ds_adopt. An existing store's origin is its own: these are
	 * not compared with it (membership changes by decree). */
	uint32_t nreplicas;
	const px_members *members;
} ds_identity;

/* Opens (creating if the directory is missing or empty) the store in dir.
 * Refuses, with a sentence naming what is wrong, a directory that is not a
 * lockd store, is damaged, has another format version, or whose cell or
 * replica id differs from id's; DS_CORRUPT when it is damaged (see
 * above). A new store gets a random nonzero incarnation. *out is the
 * caller's to ds_close. */
int ds_open(const char *dir, const ds_identity *id, ds_store **out, char *err,
	    size_t errlen);

/* True for a new store opened without an origin (see ds_identity):
 * nothing may be written to it before ds_adopt. */
bool ds_unborn(const ds_store *s);

/* Gives an unborn store its identity (id->nreplicas or id->members must
 * say its origin), in one synced write. 0, or -1 with a sentence. */
int ds_adopt(ds_store *s, const ds_identity *id, char *err, size_t errlen);

/* The store's origin: *nreplicas (0 when it joined a running cell: then
 * *members, if not NULL, is the configuration it joined; else zeroed) and
 * its incarnation (0 while unborn). */
void ds_origin(const ds_store *s, uint32_t *nreplicas, px_members *members,
	       uint64_t *incarnation);

void ds_close(ds_store *s);

/* Writes recs[0..n) in one atomic batch; with sync, durable on return.
 * On -1 nothing of the batch may be counted as durable (part of it may
 * have reached the disk); the caller may call again with the same batch:
 * the first write after a failed one reopens the database, which is how
 * RocksDB recovers once the cause (a full disk, say) has gone. */
int ds_write(ds_store *s, const px_record *recs, size_t n, bool sync, char *err,
	     size_t errlen);

/* From now on the daemon may write snapshots with ds_write_snapshot_later,
 * on a thread of the store's own (started here; ds_close stops it once
 * what waits is written). 0, or -1 with a sentence. */
int ds_lazy_snapshots(ds_store *s, char *err, size_t errlen);

/* Takes rec's bytes (rec->snap is NULL after) and writes the snapshot and
 * the end of the ledger records it covers, in one synced batch, on the
 * writer thread: the loop does not wait for a large one. Nothing may wait
 * for it to be durable: until it is, the older snapshot and the ledger
 * after it restore the same state. Only the newest waiting is written;
 * one not newer than the snapshot on disk is dropped. If the write fails,
 * the next ds_write fails with its sentence and reopens. */
void ds_write_snapshot_later(ds_store *s, px_record *rec);

typedef struct ds_lazy_stats {
	uint64_t written, skipped, failed;
	uint64_t last_base, last_bytes, last_ms; /* the latest written */
} ds_lazy_stats;

void ds_lazy_stats_get(ds_store *s, ds_lazy_stats *st);

/* Calls fn with every stored record in the order px_replica_restore needs:
 * the snapshot (if any), the promise (if any), JOINED (if written), then
 * the ledger in slot order (a slot's vote before its CHOSEN hint).
 * The record is borrowed for the call. fn returns 0 to go on, or non-zero
 * to stop (ds_load then returns that value). -1 or DS_CORRUPT
 * when reading fails; records already passed to fn are then not the
 * whole store. */
int ds_load(ds_store *s, int (*fn)(const px_record *rec, void *arg), void *arg,
	    char *err, size_t errlen);

/* Sizes for status and tests. */
typedef struct ds_stats {
	uint64_t votes;         /* vote records stored */
	uint64_t snapshot_base; /* 0 when none */
	uint64_t snapshot_bytes;
	uint64_t writes, synced_writes;
} ds_stats;

void ds_stats_get(ds_store *s, ds_stats *st);

#endif
