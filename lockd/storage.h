/* Durable storage for one lockd replica, on RocksDB.
 *
 * Column families:
 *   meta      identity of the data directory: format version, cell id,
 *             replica id, its origin (the cell size it was made for, or
 *             the configuration it joined a running cell with) and its
 *             incarnation. A directory that belongs to another replica or
 *             cell, or to another format, is refused.
 *   acceptor  the acceptor's promise (LD_REC_PROMISE): one key.
 *   ledger    votes (LD_REC_VOTE), keyed by slot (big-endian u64), so they
 *             iterate in ledger order.
 *   state     the newest snapshot of the lease table and client table
 *             (LD_REC_SNAPSHOT) with its base position.
 *
 * Every ld_store_write is one WriteBatch across the column families: a
 * snapshot record replaces the state and drops the votes at or below its
 * base in the same atomic write, so the applied position and the state it
 * describes never disagree on disk. With sync, the write-ahead log is synced
 * before the call returns: the core's promises and votes are answered only
 * after that (LD_EV_DURABLE).
 *
 * Records are encoded with lockd/codec.h (ld_record_encode/decode), and
 * every stored value carries a CRC32C over its column family, its key and
 * its bytes (storage.c), checked when it is read.
 * Functions return 0 or -1 with a sentence in err (errlen bytes); open and
 * load return LD_STORE_CORRUPT instead when what is stored fails its
 * checks. */
#ifndef LD_STORAGE_H
#define LD_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "paxos.h"

typedef struct ld_store ld_store;

/* The records in the directory fail their checks: a lockd checksum, a
 * record that does not decode or sits under the wrong key, or RocksDB's
 * own Corruption status (a file's checksum, a cut-short file). The
 * directory can no longer be trusted as this replica's durable memory; the
 * sentence names the directory and, for a record, its key. */
#define LD_STORE_CORRUPT (-2)

typedef struct ld_store_identity {
	uint64_t cell_id;    /* chosen by whoever starts the cell; 0 = any */
	uint32_t replica_id; /* < LD_REPLICA_IDS */
	/* For a new store, its origin: a cell of nreplicas (ids
	 * 0..nreplicas-1, replica_id among them), or 0 and the configuration
	 * it joins a running cell with (borrowed for the call). Both 0/NULL:
	 * a new store is left without an identity (ld_store_unborn) until
	 * ld_store_adopt. An existing store's origin is its own: these are
	 * not compared with it (membership changes by decree). */
	uint32_t nreplicas;
	const ld_members *members;
} ld_store_identity;

/* Opens (creating if the directory is missing or empty) the store in dir.
 * Refuses, with a sentence naming what is wrong, a directory that is not a
 * lockd store, is damaged, has another format version, or whose cell or
 * replica id differs from id's; LD_STORE_CORRUPT when it is damaged (see
 * above). A new store gets a random nonzero incarnation. *out is the
 * caller's to ld_store_close. */
int ld_store_open(const char *dir, const ld_store_identity *id, ld_store **out,
		  char *err, size_t errlen);

/* True for a new store opened without an origin (see ld_store_identity):
 * nothing may be written to it before ld_store_adopt. */
bool ld_store_unborn(const ld_store *s);

/* Gives an unborn store its identity (id->nreplicas or id->members must
 * say its origin), in one synced write. 0, or -1 with a sentence. */
int ld_store_adopt(ld_store *s, const ld_store_identity *id, char *err,
		   size_t errlen);

/* The store's origin: *nreplicas (0 when it joined a running cell: then
 * *members, if not NULL, is the configuration it joined; else zeroed) and
 * its incarnation (0 while unborn). */
void ld_store_origin(const ld_store *s, uint32_t *nreplicas,
		     ld_members *members, uint64_t *incarnation);

void ld_store_close(ld_store *s);

/* Writes recs[0..n) in one atomic batch; with sync, durable on return.
 * On -1 nothing of the batch may be counted as durable (part of it may
 * have reached the disk); the caller may call again with the same batch:
 * the first write after a failed one reopens the database, which is how
 * RocksDB recovers once the cause (a full disk, say) has gone. */
int ld_store_write(ld_store *s, const ld_record *recs, size_t n, bool sync,
		   char *err, size_t errlen);

/* Calls fn with every stored record in the order ld_replica_restore needs:
 * the snapshot (if any), the promise (if any), then votes in slot order.
 * The record is borrowed for the call. fn returns 0 to go on, or non-zero
 * to stop (ld_store_load then returns that value). -1 or LD_STORE_CORRUPT
 * when reading fails; records already passed to fn are then not the
 * whole store. */
int ld_store_load(ld_store *s, int (*fn)(const ld_record *rec, void *arg),
		  void *arg, char *err, size_t errlen);

/* Sizes for status and tests. */
typedef struct ld_store_stats {
	uint64_t votes;         /* vote records stored */
	uint64_t snapshot_base; /* 0 when none */
	uint64_t snapshot_bytes;
	uint64_t writes, synced_writes;
} ld_store_stats;

void ld_store_stats_get(ld_store *s, ld_store_stats *st);

#endif
