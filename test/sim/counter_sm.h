/* The simulator's state machine: counts the commands applied and chains a
 * 64-bit hash over (slot, client_id, seq, data) of each. Two replicas with
 * the same digest applied the same commands at the same slots in the same
 * order, which is exactly what the state-agreement check wants to see. */
#ifndef SIM_COUNTER_SM_H
#define SIM_COUNTER_SM_H

#include <stddef.h>
#include <stdint.h>

#include "sm.h"

typedef struct counter_sm {
	px_sm base; /* first: an px_sm * is a counter_sm * */
	uint64_t count;
	uint64_t hash;
} counter_sm;

#define COUNTER_SM_SNAPSHOT_BYTES 16u
#define COUNTER_SM_RESULT_BYTES 8u

extern const px_sm_ops counter_sm_ops;

/* Empty state (count 0). */
void counter_sm_init(counter_sm *c);

/* A malloc'd machine; the caller frees it with counter_sm_free. Aborts when
 * out of memory (this is a test tool). */
px_sm *counter_sm_new(void);
void counter_sm_free(px_sm *sm);

uint64_t counter_sm_digest(const counter_sm *c);

/* The 8-byte little-endian result that apply writes. */
uint64_t counter_sm_decode_u64(const uint8_t *p);

#endif
