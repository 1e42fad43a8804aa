/* The state machine that the ledger drives. The core applies chosen decrees
 * to it strictly in ledger order, exactly once per command (the core dedups
 * retried commands by (client_id, seq) before calling apply).
 * Implementations must be deterministic: the same commands in the same order
 * give the same state and results on every replica. */
#ifndef PX_SM_H
#define PX_SM_H

#include <stddef.h>
#include <stdint.h>

#include "value.h"

typedef struct px_sm px_sm;

typedef struct px_sm_ops {
	/* Applies one command chosen at ledger position `slot`. Writes up to
	 * `cap` (LD_RESULT_BYTES_MAX) bytes of result into out and returns how
	 * many. Must not fail: a command the machine rejects yields a result
	 * that says so. */
	size_t (*apply)(px_sm *sm, uint64_t slot, const px_cmd *cmd,
			uint8_t *out, size_t cap);
	/* Encodes the whole state. *out is malloc'd; the caller frees it.
	 * Returns 0, or -1 when out of memory. */
	int (*snapshot)(px_sm *sm, uint8_t **out, size_t *len);
	/* Replaces the whole state with a decoded snapshot. Returns 0, or -1
	 * when the bytes are malformed (state then unchanged). */
	int (*restore)(px_sm *sm, const uint8_t *buf, size_t len);
	/* A digest of the whole state: replicas compare theirs at the same
	 * position (paxos.h's digest_every_slots) to catch a replica whose
	 * state went wrong, and the simulator checks they agree. */
	uint64_t (*digest)(px_sm *sm);
} px_sm_ops;

struct px_sm {
	const px_sm_ops *ops;
};

#endif
