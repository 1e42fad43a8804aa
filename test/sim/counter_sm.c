#include "counter_sm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "value.h"

static void counter_sm_put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

uint64_t counter_sm_decode_u64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* The digest covers the whole state; byte order is fixed so that the value
 * would not change across hosts. */
uint64_t counter_sm_digest(const counter_sm *c)
{
	uint8_t b[COUNTER_SM_SNAPSHOT_BYTES];
	counter_sm_put_u64(b, c->count);
	counter_sm_put_u64(b + 8, c->hash);
	return px_hash(PX_HASH_SEED, b, sizeof b);
}

static size_t counter_sm_apply(px_sm *sm, uint64_t slot, const px_cmd *cmd,
			       uint8_t *out, size_t cap)
{
	counter_sm *c = (counter_sm *)sm;
	uint8_t b[24];
	counter_sm_put_u64(b, slot);
	counter_sm_put_u64(b + 8, cmd->client_id);
	counter_sm_put_u64(b + 16, cmd->seq);
	c->hash = px_hash(c->hash, b, sizeof b);
	c->hash = px_hash(c->hash, cmd->data, cmd->len);
	c->count++;
	if (cap < COUNTER_SM_RESULT_BYTES)
		return 0;
	counter_sm_put_u64(out, c->count);
	return COUNTER_SM_RESULT_BYTES;
}

static int counter_sm_snapshot(px_sm *sm, uint8_t **out, size_t *len)
{
	counter_sm *c = (counter_sm *)sm;
	uint8_t *b = malloc(COUNTER_SM_SNAPSHOT_BYTES);
	if (!b)
		return -1;
	counter_sm_put_u64(b, c->count);
	counter_sm_put_u64(b + 8, c->hash);
	*out = b;
	*len = COUNTER_SM_SNAPSHOT_BYTES;
	return 0;
}

static int counter_sm_restore(px_sm *sm, const uint8_t *buf, size_t len)
{
	counter_sm *c = (counter_sm *)sm;
	if (len != COUNTER_SM_SNAPSHOT_BYTES || !buf)
		return -1;
	c->count = counter_sm_decode_u64(buf);
	c->hash = counter_sm_decode_u64(buf + 8);
	return 0;
}

static uint64_t counter_sm_digest_op(px_sm *sm)
{
	return counter_sm_digest((const counter_sm *)sm);
}

const px_sm_ops counter_sm_ops = {
	.apply = counter_sm_apply,
	.snapshot = counter_sm_snapshot,
	.restore = counter_sm_restore,
	.digest = counter_sm_digest_op,
};

void counter_sm_init(counter_sm *c)
{
	c->base.ops = &counter_sm_ops;
	c->count = 0;
	c->hash = PX_HASH_SEED;
}

px_sm *counter_sm_new(void)
{
	counter_sm *c = malloc(sizeof *c);
	if (!c) {
		fprintf(stderr, "lockd-sim: out of memory\n");
		abort();
	}
	counter_sm_init(c);
	return &c->base;
}

void counter_sm_free(px_sm *sm)
{
	free(sm);
}
