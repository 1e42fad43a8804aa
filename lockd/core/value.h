/* A decree: the value voted for in one ledger slot. It is an immutable batch
 * of client commands (zero commands = a no-op decree, used to fill gaps).
 * Values are reference counted because the same decree sits in a replica's
 * log, in messages in flight and in the simulator's checker at once. The core
 * is single-threaded; the count is not atomic. */
#ifndef PX_VALUE_H
#define PX_VALUE_H

#include <stddef.h>
#include <stdint.h>

typedef struct px_cmd {
	uint64_t client_id; /* the session or client that sent it; never 0 */
	uint64_t seq; /* per-client command id, increasing; retries reuse it */
	uint32_t len; /* bytes in data, <= LD_CMD_BYTES_MAX */
	const uint8_t *data;
} px_cmd;

typedef struct px_value {
	uint32_t refs;
	uint32_t ncmds;  /* 0: no-op */
	uint64_t digest; /* content hash, computed at creation */
	px_cmd cmds[];   /* each cmds[i].data points into this allocation */
} px_value;

/* Builds a value holding copies of cmds[0..ncmds) (ncmds == 0: the shared
 * no-op, px_value_noop). Returns NULL when out of memory, when ncmds is over
 * LD_BATCH_CMDS_MAX, or when a command is over LD_CMD_BYTES_MAX or has
 * bytes but no data. The caller owns the one reference and drops it with
 * px_value_unref. */
px_value *px_value_new(const px_cmd *cmds, uint32_t ncmds);

/* The shared no-op decree (a static value; ref/unref are no-ops on it). */
px_value *px_value_noop(void);

/* Takes another reference; returns v. NULL-safe. */
px_value *px_value_ref(px_value *v);

/* Drops a reference; frees on the last. NULL-safe. */
void px_value_unref(px_value *v);

/* Same commands in the same order (content equality, not identity). */
int px_value_equal(const px_value *a, const px_value *b);

/* splitmix64's finalizer: spreads sequential ids (tokens, sessions) over a
 * hash table's buckets. */
uint64_t px_mix64(uint64_t x);

/* 64-bit FNV-1a, used for value digests and state digests. */
uint64_t px_hash(uint64_t h, const void *p, size_t n);
#define PX_HASH_SEED 0xcbf29ce484222325ULL

/* A snapshot's checksum, eight bytes a step (little-endian words, so it is
 * the same on every machine): catches a chunk damaged or misplaced on its
 * way, not a forger (peer_auth does that). */
uint64_t px_checksum(const uint8_t *p, size_t n);

#endif
