#include "check.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Beyond this, a slot number is a bug in itself (a run chooses thousands). */
#define CHK_SLOT_LIMIT (1u << 24)

static void *chk_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n);
	if (!q && n) {
		fprintf(stderr, "lockd-sim: out of memory\n");
		abort();
	}
	return q;
}

void chk_fail(sim_check *c, const char *property, const char *fmt, ...)
{
	if (c->violated)
		return;
	c->violated = true;
	snprintf(c->property, sizeof c->property, "%s", property);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->detail, sizeof c->detail, fmt, ap);
	va_end(ap);
}

/* A short human description of a value: its size, digest and first commands. */
static const char *chk_fmt_value(const ld_value *v, char *buf, size_t cap)
{
	if (!v) {
		snprintf(buf, cap, "(none)");
		return buf;
	}
	int n = snprintf(buf, cap, "{ncmds=%" PRIu32 " digest=%016" PRIx64,
			 v->ncmds, v->digest);
	for (uint32_t i = 0; i < v->ncmds && i < 4 && n > 0 && (size_t)n < cap; i++)
		n += snprintf(buf + n, cap - (size_t)n, " c%" PRIu64 ":%" PRIu64,
			      v->cmds[i].client_id, v->cmds[i].seq);
	if (n > 0 && (size_t)n < cap)
		snprintf(buf + n, cap - (size_t)n, "%s}", v->ncmds > 4 ? " ..." : "");
	return buf;
}

void chk_init(sim_check *c, uint32_t nclients)
{
	memset(c, 0, sizeof *c);
	counter_sm_init(&c->oracle);
	c->cap = 1024;
	c->slots = chk_xrealloc(NULL, c->cap * sizeof *c->slots);
	memset(c->slots, 0, c->cap * sizeof *c->slots);
	c->nslots = 1;
	c->slots[0].digest = counter_sm_digest(&c->oracle);
	c->nclients = nclients;
	c->clients = chk_xrealloc(NULL, nclients * sizeof *c->clients);
	memset(c->clients, 0, nclients * sizeof *c->clients);
}

void chk_free(sim_check *c)
{
	for (uint64_t i = 0; i < c->nslots; i++)
		ld_value_unref(c->slots[i].value);
	free(c->slots);
	for (uint32_t i = 0; i < c->nclients; i++)
		free(c->clients[i].cmds);
	free(c->clients);
	free(c->leaders);
	memset(c, 0, sizeof *c);
}

void chk_submitted(sim_check *c, uint32_t idx, uint64_t seq,
		   const uint8_t *data, uint32_t len)
{
	chk_client *cl = &c->clients[idx];
	if (seq != cl->ncmds + 1 || len > SIM_CMD_BYTES_MAX) {
		fprintf(stderr, "lockd-sim: internal error: client %u seq %" PRIu64 "\n",
			idx + 1, seq);
		abort();
	}
	if (cl->ncmds == cl->cap) {
		cl->cap = cl->cap ? 2 * cl->cap : 64;
		cl->cmds = chk_xrealloc(cl->cmds, cl->cap * sizeof *cl->cmds);
	}
	chk_cmd *cmd = &cl->cmds[cl->ncmds++];
	memset(cmd, 0, sizeof *cmd);
	cmd->len = len;
	memcpy(cmd->data, data, len);
}

const chk_cmd *chk_cmd_get(const sim_check *c, uint32_t idx, uint64_t seq)
{
	if (idx >= c->nclients || seq == 0 || seq > c->clients[idx].ncmds)
		return NULL;
	return &c->clients[idx].cmds[seq - 1];
}

const ld_value *chk_value_at(const sim_check *c, uint64_t slot)
{
	return slot < c->nslots ? c->slots[slot].value : NULL;
}

/* Validity: each command of a chosen value was submitted by a client with
 * exactly that (client_id, seq, data). Chosen values are never invented. */
static void chk_validity(sim_check *c, uint32_t replica, uint64_t slot,
			 const ld_value *v)
{
	for (uint32_t i = 0; i < v->ncmds; i++) {
		const ld_cmd *cmd = &v->cmds[i];
		if (cmd->client_id == 0 || cmd->client_id > c->nclients) {
			chk_fail(c, "validity",
				 "r%u learned slot %" PRIu64 " chosen with a command of unknown client %" PRIu64,
				 replica, slot, cmd->client_id);
			return;
		}
		const chk_cmd *sub = chk_cmd_get(c, (uint32_t)(cmd->client_id - 1), cmd->seq);
		if (!sub) {
			chk_fail(c, "validity",
				 "r%u learned slot %" PRIu64 " chosen with command c%" PRIu64 ":%" PRIu64
				 " that the client never submitted",
				 replica, slot, cmd->client_id, cmd->seq);
			return;
		}
		if (sub->len != cmd->len || (cmd->len && memcmp(sub->data, cmd->data, cmd->len))) {
			chk_fail(c, "validity",
				 "r%u learned slot %" PRIu64 " chosen with command c%" PRIu64 ":%" PRIu64
				 " whose data (%" PRIu32 " bytes) differs from what was submitted (%" PRIu32 " bytes)",
				 replica, slot, cmd->client_id, cmd->seq, cmd->len, sub->len);
			return;
		}
	}
}

/* Replays the global ledger into the oracle's own state machine as far as
 * it is known without gaps, deduplicating retried commands by (client, seq)
 * as the core must, and compares each state with what replicas reported. */
static void chk_advance(sim_check *c)
{
	uint8_t out[LD_RESULT_BYTES_MAX];
	while (!c->violated && c->oracle_pos + 1 < c->nslots &&
	       c->slots[c->oracle_pos + 1].value) {
		uint64_t slot = ++c->oracle_pos;
		const ld_value *v = c->slots[slot].value;
		for (uint32_t i = 0; i < v->ncmds; i++) {
			const ld_cmd *cmd = &v->cmds[i];
			chk_client *cl = &c->clients[cmd->client_id - 1];
			if (cmd->seq <= cl->last_applied_seq)
				continue;
			cl->last_applied_seq = cmd->seq;
			counter_sm_ops.apply(&c->oracle.base, slot, cmd, out, sizeof out);
			chk_cmd *sub = &cl->cmds[cmd->seq - 1];
			sub->applied_slot = slot;
			sub->result = c->oracle.count;
		}
		uint64_t d = counter_sm_digest(&c->oracle);
		if (d != c->slots[slot].digest)
			chk_fail(c, "state",
				 "after slot %" PRIu64 " r%u reported state digest %016" PRIx64
				 " but replaying the chosen ledger (each command once) gives %016" PRIx64,
				 slot, c->slots[slot].first_replica, c->slots[slot].digest, d);
	}
}

void chk_chosen(sim_check *c, uint32_t replica, uint64_t slot,
		ld_value *value, uint64_t digest)
{
	char a[160], b[160];
	if (c->violated)
		return;
	if (slot == 0 || slot >= CHK_SLOT_LIMIT || !value) {
		chk_fail(c, "order", "r%u reported slot %" PRIu64 " chosen with value %p",
			 replica, slot, (void *)value);
		return;
	}
	if (slot >= c->cap) {
		uint64_t cap = c->cap;
		while (cap <= slot)
			cap *= 2;
		c->slots = chk_xrealloc(c->slots, cap * sizeof *c->slots);
		memset(c->slots + c->cap, 0, (cap - c->cap) * sizeof *c->slots);
		c->cap = cap;
	}
	if (slot >= c->nslots)
		c->nslots = slot + 1;
	chk_slot *s = &c->slots[slot];
	if (s->value) {
		/* Agreement: a slot is chosen with one value only (Paxos' safety). */
		if (!ld_value_equal(s->value, value)) {
			chk_fail(c, "agreement",
				 "slot %" PRIu64 ": r%u learned %s but r%u learned %s",
				 slot, s->first_replica, chk_fmt_value(s->value, a, sizeof a),
				 replica, chk_fmt_value(value, b, sizeof b));
			return;
		}
		if (s->digest != digest)
			chk_fail(c, "state",
				 "after slot %" PRIu64 " r%u has state digest %016" PRIx64
				 " but r%u had %016" PRIx64,
				 slot, replica, digest, s->first_replica, s->digest);
		return;
	}
	chk_validity(c, replica, slot, value);
	s->value = ld_value_ref(value);
	s->digest = digest;
	s->first_replica = replica;
	c->decrees++;
	if (slot > c->max_slot)
		c->max_slot = slot;
	chk_advance(c);
}

void chk_state(sim_check *c, uint32_t replica, uint64_t applied,
	       uint64_t digest)
{
	if (c->violated)
		return;
	if (applied >= c->nslots || (applied > 0 && !c->slots[applied].value)) {
		chk_fail(c, "state",
			 "r%u applied up to slot %" PRIu64 ", which nobody has learned chosen",
			 replica, applied);
		return;
	}
	if (c->slots[applied].digest != digest)
		chk_fail(c, "state",
			 "r%u at applied=%" PRIu64 " has state digest %016" PRIx64
			 " but the ledger's state there is %016" PRIx64 " (first from r%u)",
			 replica, applied, digest, c->slots[applied].digest,
			 c->slots[applied].first_replica);
}

void chk_reply(sim_check *c, uint32_t replica, const ld_reply *rep)
{
	if (c->violated)
		return;
	if (rep->client_id == 0 || rep->client_id > c->nclients) {
		chk_fail(c, "ack", "r%u replied to unknown client %" PRIu64, replica,
			 rep->client_id);
		return;
	}
	uint32_t idx = (uint32_t)(rep->client_id - 1);
	const chk_cmd *sub = chk_cmd_get(c, idx, rep->seq);
	if (!sub) {
		chk_fail(c, "ack", "r%u replied to c%" PRIu64 ":%" PRIu64 ", never submitted",
			 replica, rep->client_id, rep->seq);
		return;
	}
	if (rep->status == LD_REPLY_INVALID) {
		chk_fail(c, "ack", "r%u answered INVALID to the well-formed command c%" PRIu64 ":%" PRIu64,
			 replica, rep->client_id, rep->seq);
		return;
	}
	if (rep->status != LD_REPLY_OK)
		return;
	/* The core answers a retry of a command older than the client's last
	 * applied one with OK at slot 0: applied, position and result
	 * forgotten. Only true if the ledger really holds it. */
	if (rep->slot == 0) {
		if (sub->applied_slot == 0 || rep->seq >= c->clients[idx].last_applied_seq)
			chk_fail(c, "ack",
				 "r%u acknowledged c%" PRIu64 ":%" PRIu64 " at slot 0 (\"applied earlier\")"
				 " but the ledger %s",
				 replica, rep->client_id, rep->seq,
				 sub->applied_slot == 0 ? "does not hold it" :
				 "holds it as the client's latest command");
		return;
	}
	/* Durability of acks: the command is in the value chosen at that slot
	 * (and agreement keeps it there). */
	const ld_value *v = chk_value_at(c, rep->slot);
	if (!v) {
		chk_fail(c, "ack",
			 "r%u acknowledged c%" PRIu64 ":%" PRIu64 " at slot %" PRIu64
			 ", which nobody has learned chosen",
			 replica, rep->client_id, rep->seq, rep->slot);
		return;
	}
	bool found = false;
	for (uint32_t i = 0; i < v->ncmds && !found; i++)
		found = v->cmds[i].client_id == rep->client_id && v->cmds[i].seq == rep->seq;
	if (!found) {
		char a[160];
		chk_fail(c, "ack",
			 "r%u acknowledged c%" PRIu64 ":%" PRIu64 " at slot %" PRIu64
			 ", but slot %" PRIu64 " holds %s",
			 replica, rep->client_id, rep->seq, rep->slot, rep->slot,
			 chk_fmt_value(v, a, sizeof a));
		return;
	}
	if (rep->slot > c->max_ack_slot)
		c->max_ack_slot = rep->slot;
	/* Exactly once: the ack names where the command took effect, and the
	 * result is the one applying it there produced. */
	if (sub->applied_slot != rep->slot) {
		chk_fail(c, "exactly-once",
			 "r%u acknowledged c%" PRIu64 ":%" PRIu64 " at slot %" PRIu64
			 " but the ledger first holds it at slot %" PRIu64,
			 replica, rep->client_id, rep->seq, rep->slot, sub->applied_slot);
		return;
	}
	if (rep->result_len != COUNTER_SM_RESULT_BYTES ||
	    counter_sm_decode_u64(rep->result) != sub->result)
		chk_fail(c, "exactly-once",
			 "r%u acknowledged c%" PRIu64 ":%" PRIu64 " at slot %" PRIu64
			 " with a %" PRIu32 "-byte result %" PRIu64 ", expected count %" PRIu64,
			 replica, rep->client_id, rep->seq, rep->slot, rep->result_len,
			 rep->result_len >= 8 ? counter_sm_decode_u64(rep->result) : 0,
			 sub->result);
}

void chk_leader(sim_check *c, uint32_t replica, uint64_t life, ld_ballot b)
{
	if (c->violated)
		return;
	for (uint64_t i = 0; i < c->nleaders; i++) {
		chk_leader_rec *l = &c->leaders[i];
		if (ld_ballot_cmp(l->ballot, b) != 0)
			continue;
		if (l->replica != replica)
			chk_fail(c, "ballot",
				 "P1: r%u and r%u both lead with ballot %" PRIu64 ".%" PRIu32,
				 l->replica, replica, b.round, b.id);
		else if (l->life != life)
			chk_fail(c, "ballot",
				 "P1: r%u leads with ballot %" PRIu64 ".%" PRIu32
				 " again after a restart (lives %" PRIu64 " and %" PRIu64 ")",
				 replica, b.round, b.id, l->life, life);
		return;
	}
	if (c->nleaders == c->leaders_cap) {
		c->leaders_cap = c->leaders_cap ? 2 * c->leaders_cap : 16;
		c->leaders = chk_xrealloc(c->leaders, c->leaders_cap * sizeof *c->leaders);
	}
	c->leaders[c->nleaders++] = (chk_leader_rec){ .ballot = b, .replica = replica, .life = life };
}
