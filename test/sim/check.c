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
static const char *chk_fmt_value(const px_value *v, char *buf, size_t cap)
{
	if (!v) {
		snprintf(buf, cap, "(none)");
		return buf;
	}
	int n = snprintf(buf, cap, "{ncmds=%" PRIu32 " digest=%016" PRIx64,
			 v->ncmds, v->digest);
	for (uint32_t i = 0; i < v->ncmds && i < 4 && n > 0 && (size_t)n < cap;
	     i++)
		n += snprintf(buf + n, cap - (size_t)n,
			      " c%" PRIu64 ":%" PRIu64, v->cmds[i].client_id,
			      v->cmds[i].seq);
	if (n > 0 && (size_t)n < cap)
		snprintf(buf + n, cap - (size_t)n, "%s}",
			 v->ncmds > 4 ? " ..." : "");
	return buf;
}

void chk_init(sim_check *c, sim_workload w, uint32_t nclients,
	      uint32_t nreplicas, ld_mutant mutant)
{
	memset(c, 0, sizeof *c);
	c->workload = w;
	c->nreplicas = nreplicas;
	c->closest_us = INT64_MAX;
	if (w == SIM_WORKLOAD_LEASE) {
		c->table = ls_table_new();
		if (!c->table) {
			fprintf(stderr, "lockd-sim: out of memory\n");
			abort();
		}
		if (mutant == PX_MUTANT_UNCHECKED_REGRANT)
			ls_table_set_mutant(c->table,
					    LS_MUTANT_UNCHECKED_REGRANT);
		c->oracle = ls_table_sm(c->table);
		size_t nb = (size_t)nclients * CHK_NAMES_MAX;
		c->beliefs = chk_xrealloc(NULL, nb * sizeof *c->beliefs);
		memset(c->beliefs, 0, nb * sizeof *c->beliefs);
	} else {
		counter_sm_init(&c->counter);
		c->oracle = &c->counter.base;
	}
	c->cap = 1024;
	c->slots = chk_xrealloc(NULL, c->cap * sizeof *c->slots);
	memset(c->slots, 0, c->cap * sizeof *c->slots);
	c->nslots = 1;
	c->slots[0].digest = c->oracle->ops->digest(c->oracle);
	c->nclients = nclients;
	c->clients = chk_xrealloc(NULL, nclients * sizeof *c->clients);
	memset(c->clients, 0, nclients * sizeof *c->clients);
}

void chk_free(sim_check *c)
{
	for (uint64_t i = 0; i < c->nslots; i++)
		px_value_unref(c->slots[i].value);
	free(c->slots);
	for (uint32_t i = 0; i < c->nclients; i++)
		free(c->clients[i].cmds);
	free(c->clients);
	free(c->leaders);
	free(c->internal);
	free(c->grants);
	free(c->beliefs);
	ls_table_free(c->table);
	memset(c, 0, sizeof *c);
}

void chk_submitted(sim_check *c, uint32_t idx, uint64_t seq,
		   const uint8_t *data, uint32_t len)
{
	chk_client *cl = &c->clients[idx];
	if (seq != cl->ncmds + 1 || len > SIM_CMD_BYTES_MAX) {
		fprintf(stderr,
			"lockd-sim: internal error: client %u seq %" PRIu64
			"\n",
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

const px_value *chk_value_at(const sim_check *c, uint64_t slot)
{
	return slot < c->nslots ? c->slots[slot].value : NULL;
}

/* ---- lease helpers ------------------------------------------------------- */

/* node.c: the leader's own commands carry this bit plus the replica id. */
#define CHK_INTERNAL_CLIENT (1ULL << 63)

static bool chk_is_internal(uint64_t client_id)
{
	return (client_id & CHK_INTERNAL_CLIENT) != 0;
}

static int chk_name_find(const sim_check *c, const char *name, uint32_t len)
{
	for (uint32_t i = 0; i < c->nnames; i++)
		if (c->names[i].len == len &&
		    !memcmp(c->names[i].name, name, len))
			return (int)i;
	return -1;
}

static uint32_t chk_name_add_bytes(sim_check *c, const char *name, uint32_t len)
{
	int i = chk_name_find(c, name, len);
	if (i >= 0)
		return (uint32_t)i;
	if (c->nnames == CHK_NAMES_MAX || len >= CHK_NAME_BYTES_MAX) {
		fprintf(stderr, "lockd-sim: internal error: too many names\n");
		abort();
	}
	chk_name *n = &c->names[c->nnames];
	memset(n, 0, sizeof *n);
	memcpy(n->name, name, len);
	n->len = len;
	return c->nnames++;
}

uint32_t chk_name_add(sim_check *c, const char *name)
{
	return chk_name_add_bytes(c, name, (uint32_t)strlen(name));
}

const char *chk_name_str(const sim_check *c, uint32_t name)
{
	return name < c->nnames ? c->names[name].name : "?";
}

static const char *chk_op_name(ls_op op)
{
	switch (op) {
	case LS_OP_ACQUIRE:
		return "ACQUIRE";
	case LS_OP_RENEW:
		return "RENEW";
	case LS_OP_RELEASE:
		return "RELEASE";
	case LS_OP_REVOKE:
		return "REVOKE";
	case LS_OP_EXPIRE:
		return "EXPIRE";
	case LS_OP_TICK:
		return "TICK";
	case LS_OP_CANCEL_WAIT:
		return "CANCEL_WAIT";
	case LS_OP_ABANDON:
		return "ABANDON";
	case LS_OP_PROCLAIM:
		return "PROCLAIM";
	}
	return "?";
}

/* The grant of token, or NULL (binary search: tokens increase). */
static const chk_grant *chk_grant_find(const sim_check *c, uint64_t token)
{
	uint64_t lo = 0, hi = c->ngrants;
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		if (c->grants[mid].token < token)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < c->ngrants && c->grants[lo].token == token ? &c->grants[lo]
							       : NULL;
}

uint64_t chk_lease_grants(const sim_check *c)
{
	return c->ngrants;
}

/* Validity of one lease command: the leader's own commands come from its
 * internal id and are leader operations; a session's command is exactly
 * what that client asked (the node adds only its clock readings). */
static void chk_validity_lease(sim_check *c, uint32_t replica, uint64_t slot,
			       const px_cmd *cmd)
{
	ls_cmd lc, sc;
	if (ls_cmd_decode(cmd->data, cmd->len, &lc) != LS_OK) {
		chk_fail(c, "validity",
			 "r%u learned slot %" PRIu64
			 " chosen with a malformed lease command"
			 " (c%" PRIu64 ":%" PRIu64 ", %" PRIu32 " bytes)",
			 replica, slot, cmd->client_id, cmd->seq, cmd->len);
		return;
	}
	bool leader_op = lc.op == LS_OP_EXPIRE || lc.op == LS_OP_TICK ||
			 lc.op == LS_OP_CANCEL_WAIT || lc.op == LS_OP_ABANDON;
	if (chk_is_internal(cmd->client_id)) {
		if ((cmd->client_id & ~CHK_INTERNAL_CLIENT) >= c->nreplicas ||
		    !leader_op)
			chk_fail(c, "validity",
				 "r%u learned slot %" PRIu64
				 " chosen with %s from internal id %016" PRIx64,
				 replica, slot, chk_op_name(lc.op),
				 cmd->client_id);
		return;
	}
	if (leader_op) {
		chk_fail(c, "validity",
			 "r%u learned slot %" PRIu64
			 " chosen with the leader's %s under session %" PRIu64,
			 replica, slot, chk_op_name(lc.op), cmd->client_id);
		return;
	}
	const chk_cmd *sub =
		chk_cmd_get(c, (uint32_t)(cmd->client_id - 1), cmd->seq);
	if (!sub || ls_cmd_decode(sub->data, sub->len, &sc) != LS_OK) {
		chk_fail(c, "validity",
			 "r%u learned slot %" PRIu64
			 " chosen with command c%" PRIu64 ":%" PRIu64
			 " that the client never submitted",
			 replica, slot, cmd->client_id, cmd->seq);
		return;
	}
	bool same =
		lc.op == sc.op && lc.session == sc.session &&
		lc.name_len == sc.name_len &&
		(!lc.name_len || !memcmp(lc.name, sc.name, lc.name_len)) &&
		lc.ttl_ms == sc.ttl_ms && lc.wait_ms == sc.wait_ms &&
		lc.value_len == sc.value_len &&
		(!lc.value_len || !memcmp(lc.value, sc.value, lc.value_len)) &&
		lc.token == sc.token && lc.reason_len == sc.reason_len &&
		(!lc.reason_len ||
		 !memcmp(lc.reason, sc.reason, lc.reason_len));
	if (!same)
		chk_fail(c, "validity",
			 "r%u learned slot %" PRIu64 " chosen with c%" PRIu64
			 ":%" PRIu64 " as %s, which differs from the %s the "
			 "client submitted",
			 replica, slot, cmd->client_id, cmd->seq,
			 chk_op_name(lc.op), chk_op_name(sc.op));
}

/* Validity: each command of a chosen value was submitted by a client with
 * exactly that (client_id, seq, data). Chosen values are never invented. */
static void chk_validity(sim_check *c, uint32_t replica, uint64_t slot,
			 const px_value *v)
{
	for (uint32_t i = 0; i < v->ncmds && !c->violated; i++) {
		const px_cmd *cmd = &v->cmds[i];
		if (cmd->client_id == PX_MEMBERS_CLIENT)
			continue; /* the core's own: membership */
		if (c->workload == SIM_WORKLOAD_LEASE &&
		    chk_is_internal(cmd->client_id)) {
			chk_validity_lease(c, replica, slot, cmd);
			continue;
		}
		if (cmd->client_id == 0 || cmd->client_id > c->nclients) {
			chk_fail(c, "validity",
				 "r%u learned slot %" PRIu64
				 " chosen with a command of unknown client "
				 "%" PRIu64,
				 replica, slot, cmd->client_id);
			return;
		}
		if (c->workload == SIM_WORKLOAD_LEASE) {
			chk_validity_lease(c, replica, slot, cmd);
			continue;
		}
		const chk_cmd *sub = chk_cmd_get(
			c, (uint32_t)(cmd->client_id - 1), cmd->seq);
		if (!sub) {
			chk_fail(c, "validity",
				 "r%u learned slot %" PRIu64
				 " chosen with command c%" PRIu64 ":%" PRIu64
				 " that the client never submitted",
				 replica, slot, cmd->client_id, cmd->seq);
			return;
		}
		if (sub->len != cmd->len ||
		    (cmd->len && memcmp(sub->data, cmd->data, cmd->len))) {
			chk_fail(c, "validity",
				 "r%u learned slot %" PRIu64
				 " chosen with command c%" PRIu64 ":%" PRIu64
				 " whose data (%" PRIu32
				 " bytes) differs from what was submitted "
				 "(%" PRIu32 " bytes)",
				 replica, slot, cmd->client_id, cmd->seq,
				 cmd->len, sub->len);
			return;
		}
	}
}

/* The oracle's dedup of the leader's own commands, as the core's client
 * table (a handful of ids: never near LD_CLIENTS_MAX, so never evicted). */
static chk_internal *chk_internal_get(sim_check *c, uint64_t client_id)
{
	for (uint32_t i = 0; i < c->ninternal; i++)
		if (c->internal[i].client_id == client_id)
			return &c->internal[i];
	if (c->ninternal == c->internal_cap) {
		c->internal_cap = c->internal_cap ? 2 * c->internal_cap : 8;
		c->internal = chk_xrealloc(
			c->internal, c->internal_cap * sizeof *c->internal);
	}
	c->internal[c->ninternal] = (chk_internal){.client_id = client_id};
	return &c->internal[c->ninternal++];
}

static void chk_queue_remove(chk_name *n, uint32_t i)
{
	memmove(n->queue + i, n->queue + i + 1,
		(n->nqueue - i - 1) * sizeof *n->queue);
	n->nqueue--;
}

static const char *chk_change_name(ls_change_kind k)
{
	switch (k) {
	case LS_CH_GRANTED:
		return "GRANTED";
	case LS_CH_ENDED:
		return "ENDED";
	case LS_CH_RENEWED:
		return "RENEWED";
	case LS_CH_REVOKED:
		return "REVOKED";
	case LS_CH_QUEUED:
		return "QUEUED";
	case LS_CH_UNQUEUED:
		return "UNQUEUED";
	}
	return "?";
}

/* What one applied lease command changed, from the oracle table's journal:
 * the ledger-side lease properties. */
static void chk_lease_journal(sim_check *c, uint64_t slot, uint32_t idx,
			      const px_cmd *cmd, chk_cmd *sub)
{
	size_t nj;
	const ls_change *j = ls_table_journal(c->table, &nj);
	ls_cmd lc;
	ls_op op = ls_cmd_decode(cmd->data, cmd->len, &lc) == LS_OK ? lc.op : 0;
	for (size_t i = 0; i < nj && !c->violated; i++) {
		const ls_change *ch = &j[i];
		chk_name *n = &c->names[chk_name_add_bytes(c, ch->name,
							   ch->name_len)];
		if (c->tr && c->now)
			fprintf(c->tr,
				"%4" PRIu64 ".%06" PRIu64
				" LEDGER slot=%" PRIu64 " %s: %s %s"
				" token=%" PRIu64 " session=%" PRIu64
				" ttl=%" PRIu32 "\n",
				*c->now / 1000000, *c->now % 1000000, slot,
				chk_op_name(op), chk_change_name(ch->kind),
				n->name, ch->token, ch->session, ch->ttl_ms);
		switch (ch->kind) {
		case LS_CH_GRANTED: {
			uint64_t prev =
				c->ngrants ? c->grants[c->ngrants - 1].token
					   : 0;
			if (ch->token <= n->last_token || ch->token <= prev) {
				chk_fail(c, "tokens",
					 "slot %" PRIu64
					 ": %s granted to session %" PRIu64
					 " with token %" PRIu64
					 " after token %" PRIu64
					 " (this name) / %" PRIu64
					 " (any name)",
					 slot, n->name, ch->session, ch->token,
					 n->last_token, prev);
				break;
			}
			if (n->holder_token) {
				chk_fail(c, "ledger",
					 "slot %" PRIu64
					 ": %s granted to session %" PRIu64
					 " (token %" PRIu64
					 ") while session %" PRIu64
					 " holds it (token %" PRIu64 ")",
					 slot, n->name, ch->session, ch->token,
					 n->holder_session, n->holder_token);
				break;
			}
			/* FIFO: a name that has waiters passes to the first. */
			if (n->nqueue && n->queue[0] != ch->session) {
				chk_fail(c, "fifo",
					 "slot %" PRIu64
					 ": %s granted to session %" PRIu64
					 " but session %" PRIu64
					 " queued first (%" PRIu32 " waiting)",
					 slot, n->name, ch->session,
					 n->queue[0], n->nqueue);
				break;
			}
			if (n->nqueue)
				chk_queue_remove(n, 0);
			n->last_token = ch->token;
			n->holder_token = ch->token;
			n->holder_session = ch->session;
			if (c->ngrants == c->grants_cap) {
				c->grants_cap =
					c->grants_cap ? 2 * c->grants_cap : 256;
				c->grants = chk_xrealloc(
					c->grants,
					c->grants_cap * sizeof *c->grants);
			}
			c->grants[c->ngrants++] =
				(chk_grant){.token = ch->token,
					    .session = ch->session,
					    .slot = slot,
					    .idx = idx,
					    .name = (uint32_t)(n - c->names)};
			break;
		}
		case LS_CH_ENDED:
			if (ch->token != n->holder_token) {
				chk_fail(c, "ledger",
					 "slot %" PRIu64
					 ": %s ended lease token %" PRIu64
					 " but the holder's token is %" PRIu64,
					 slot, n->name, ch->token,
					 n->holder_token);
				break;
			}
			n->holder_token = n->holder_session = 0;
			if (op == LS_OP_EXPIRE)
				c->expiries++;
			else if (op == LS_OP_RELEASE)
				c->releases++;
			break;
		case LS_CH_RENEWED:
			if (ch->token != n->holder_token ||
			    ch->session != n->holder_session) {
				chk_fail(c, "ledger",
					 "slot %" PRIu64
					 ": %s renewed token %" PRIu64
					 " of session %" PRIu64
					 " but the holder is session %" PRIu64
					 " with token %" PRIu64,
					 slot, n->name, ch->token, ch->session,
					 n->holder_session, n->holder_token);
				break;
			}
			if (sub && op == LS_OP_RENEW &&
			    sub->nrenewed < CHK_RENEWED_MAX)
				sub->renewed[sub->nrenewed++] = ch->token;
			break;
		case LS_CH_REVOKED:
			c->revokes++;
			break;
		case LS_CH_QUEUED: {
			bool dup = false;
			for (uint32_t k = 0; k < n->nqueue; k++)
				dup |= n->queue[k] == ch->session;
			/* A waiter that asks again keeps its place (the table
			 * re-journals QUEUED to restart its wait): only that
			 * session's own ACQUIRE may do it. */
			if (dup && op == LS_OP_ACQUIRE &&
			    lc.session == ch->session)
				break;
			if (dup) {
				chk_fail(c, "fifo",
					 "slot %" PRIu64 ": session %" PRIu64
					 " queued twice on %s",
					 slot, ch->session, n->name);
				break;
			}
			if (n->nqueue == CHK_QUEUE_MAX) {
				fprintf(stderr, "lockd-sim: internal error: "
						"queue overflow\n");
				abort();
			}
			n->queue[n->nqueue++] = ch->session;
			break;
		}
		case LS_CH_UNQUEUED: {
			uint32_t k = 0;
			while (k < n->nqueue && n->queue[k] != ch->session)
				k++;
			if (k == n->nqueue) {
				chk_fail(c, "fifo",
					 "slot %" PRIu64 ": session %" PRIu64
					 " left the queue of %s, which it was "
					 "not in",
					 slot, ch->session, n->name);
				break;
			}
			chk_queue_remove(n, k);
			break;
		}
		}
	}
	ls_table_journal_clear(c->table);
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
		const px_value *v = c->slots[slot].value;
		for (uint32_t i = 0; i < v->ncmds && !c->violated; i++) {
			const px_cmd *cmd = &v->cmds[i];
			chk_cmd *sub = NULL;
			if (cmd->client_id == PX_MEMBERS_CLIENT)
				continue; /* no state machine command */
			if (chk_is_internal(cmd->client_id)) {
				chk_internal *in =
					chk_internal_get(c, cmd->client_id);
				if (cmd->seq <= in->last_seq)
					continue;
				in->last_seq = cmd->seq;
			} else {
				chk_client *cl =
					&c->clients[cmd->client_id - 1];
				if (cmd->seq <= cl->last_applied_seq)
					continue;
				cl->last_applied_seq = cmd->seq;
				sub = &cl->cmds[cmd->seq - 1];
				sub->applied_slot = slot;
				sub->applied_idx = i;
			}
			size_t n = c->oracle->ops->apply(c->oracle, slot, cmd,
							 out, sizeof out);
			if (c->workload == SIM_WORKLOAD_COUNTER) {
				sub->result = c->counter.count;
				continue;
			}
			if (sub &&
			    ls_result_decode(out, n, &sub->lres) != LS_OK)
				chk_fail(c, "state",
					 "the oracle's lease table gave "
					 "c%" PRIu64 ":%" PRIu64
					 " an undecodable result",
					 cmd->client_id, cmd->seq);
			chk_lease_journal(c, slot, i, cmd, sub);
		}
		uint64_t d = c->oracle->ops->digest(c->oracle);
		if (!c->slots[slot].digest_known) {
			c->slots[slot].digest = d;
			c->slots[slot].digest_known = true;
		}
		if (!c->violated && d != c->slots[slot].digest)
			chk_fail(c, "state",
				 "after slot %" PRIu64
				 " r%u reported state digest %016" PRIx64
				 " but replaying the chosen ledger (each "
				 "command once) gives %016" PRIx64,
				 slot, c->slots[slot].first_replica,
				 c->slots[slot].digest, d);
	}
}

void chk_chosen(sim_check *c, uint32_t replica, uint64_t slot, px_value *value,
		uint64_t digest)
{
	char a[160], b[160];
	if (c->violated)
		return;
	if (slot == 0 || slot >= CHK_SLOT_LIMIT || !value) {
		chk_fail(c, "order",
			 "r%u reported slot %" PRIu64 " chosen with value %p",
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
		/* Agreement: a slot is chosen with one value only (Paxos'
		 * safety). */
		if (!px_value_equal(s->value, value)) {
			chk_fail(c, "agreement",
				 "slot %" PRIu64
				 ": r%u learned %s but r%u learned %s",
				 slot, s->first_replica,
				 chk_fmt_value(s->value, a, sizeof a), replica,
				 chk_fmt_value(value, b, sizeof b));
			return;
		}
		if (c->corrupted_mask & (1u << replica))
			return;
		if (!s->digest_known) {
			s->digest = digest;
			s->digest_known = true;
			s->first_replica = replica;
		} else if (s->digest != digest) {
			chk_fail(c, "state",
				 "after slot %" PRIu64
				 " r%u has state digest %016" PRIx64
				 " but r%u had %016" PRIx64,
				 slot, replica, digest, s->first_replica,
				 s->digest);
		}
		return;
	}
	chk_validity(c, replica, slot, value);
	s->value = px_value_ref(value);
	s->digest = digest;
	s->digest_known = !(c->corrupted_mask & (1u << replica));
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
			 "r%u applied up to slot %" PRIu64
			 ", which nobody has learned chosen",
			 replica, applied);
		return;
	}
	if (c->corrupted_mask & (1u << replica))
		return;
	if (c->slots[applied].digest_known &&
	    c->slots[applied].digest != digest)
		chk_fail(c, "state",
			 "r%u at applied=%" PRIu64
			 " has state digest %016" PRIx64
			 " but the ledger's state there is %016" PRIx64
			 " (first from r%u)",
			 replica, applied, digest, c->slots[applied].digest,
			 c->slots[applied].first_replica);
}

void chk_reply(sim_check *c, uint32_t replica, const px_reply *rep)
{
	if (c->violated)
		return;
	if (rep->client_id == 0 || rep->client_id > c->nclients) {
		chk_fail(c, "ack", "r%u replied to unknown client %" PRIu64,
			 replica, rep->client_id);
		return;
	}
	uint32_t idx = (uint32_t)(rep->client_id - 1);
	const chk_cmd *sub = chk_cmd_get(c, idx, rep->seq);
	if (!sub) {
		chk_fail(c, "ack",
			 "r%u replied to c%" PRIu64 ":%" PRIu64
			 ", never submitted",
			 replica, rep->client_id, rep->seq);
		return;
	}
	if (rep->status == PX_REPLY_INVALID) {
		chk_fail(c, "ack",
			 "r%u answered INVALID to the well-formed command "
			 "c%" PRIu64 ":%" PRIu64,
			 replica, rep->client_id, rep->seq);
		return;
	}
	if (rep->status != PX_REPLY_OK)
		return;
	/* The core answers a retry of a command older than the client's last
	 * applied one with OK at slot 0: applied, position and result
	 * forgotten. Only true if the ledger really holds it. */
	if (rep->slot == 0) {
		if (sub->applied_slot == 0 ||
		    rep->seq >= c->clients[idx].last_applied_seq)
			chk_fail(c, "ack",
				 "r%u acknowledged c%" PRIu64 ":%" PRIu64
				 " at slot 0 (\"applied earlier\")"
				 " but the ledger %s",
				 replica, rep->client_id, rep->seq,
				 sub->applied_slot == 0
					 ? "does not hold it"
					 : "holds it as the client's latest "
					   "command");
		return;
	}
	/* Durability of acks: the command is in the value chosen at that slot
	 * (and agreement keeps it there). */
	const px_value *v = chk_value_at(c, rep->slot);
	if (!v) {
		chk_fail(c, "ack",
			 "r%u acknowledged c%" PRIu64 ":%" PRIu64
			 " at slot %" PRIu64
			 ", which nobody has learned chosen",
			 replica, rep->client_id, rep->seq, rep->slot);
		return;
	}
	bool found = false;
	for (uint32_t i = 0; i < v->ncmds && !found; i++)
		found = v->cmds[i].client_id == rep->client_id &&
			v->cmds[i].seq == rep->seq;
	if (!found) {
		char a[160];
		chk_fail(c, "ack",
			 "r%u acknowledged c%" PRIu64 ":%" PRIu64
			 " at slot %" PRIu64 ", but slot %" PRIu64 " holds %s",
			 replica, rep->client_id, rep->seq, rep->slot,
			 rep->slot, chk_fmt_value(v, a, sizeof a));
		return;
	}
	if (rep->slot > c->max_ack_slot)
		c->max_ack_slot = rep->slot;
	/* Exactly once: the ack names where the command took effect, and the
	 * result is the one applying it there produced. */
	if (sub->applied_slot != rep->slot) {
		chk_fail(c, "exactly-once",
			 "r%u acknowledged c%" PRIu64 ":%" PRIu64
			 " at slot %" PRIu64
			 " but the ledger first holds it at slot %" PRIu64,
			 replica, rep->client_id, rep->seq, rep->slot,
			 sub->applied_slot);
		return;
	}
	if (rep->result_len != COUNTER_SM_RESULT_BYTES ||
	    counter_sm_decode_u64(rep->result) != sub->result)
		chk_fail(c, "exactly-once",
			 "r%u acknowledged c%" PRIu64 ":%" PRIu64
			 " at slot %" PRIu64 " with a %" PRIu32
			 "-byte result %" PRIu64 ", expected count %" PRIu64,
			 replica, rep->client_id, rep->seq, rep->slot,
			 rep->result_len,
			 rep->result_len >= 8
				 ? counter_sm_decode_u64(rep->result)
				 : 0,
			 sub->result);
}

void chk_leader(sim_check *c, uint32_t replica, uint64_t life, px_ballot b)
{
	if (c->violated)
		return;
	for (uint64_t i = 0; i < c->nleaders; i++) {
		chk_leader_rec *l = &c->leaders[i];
		if (px_ballot_cmp(l->ballot, b) != 0)
			continue;
		if (l->replica != replica)
			chk_fail(
				c, "ballot",
				"P1: r%u and r%u both lead with ballot %" PRIu64
				".%" PRIu32,
				l->replica, replica, b.round, b.id);
		else if (l->life != life)
			chk_fail(c, "ballot",
				 "P1: r%u leads with ballot %" PRIu64
				 ".%" PRIu32
				 " again after a restart (lives %" PRIu64
				 " and %" PRIu64 ")",
				 replica, b.round, b.id, l->life, life);
		return;
	}
	if (c->nleaders == c->leaders_cap) {
		c->leaders_cap = c->leaders_cap ? 2 * c->leaders_cap : 16;
		c->leaders = chk_xrealloc(c->leaders,
					  c->leaders_cap * sizeof *c->leaders);
	}
	c->leaders[c->nleaders++] =
		(chk_leader_rec){.ballot = b, .replica = replica, .life = life};
}

/* ---- leases: replies, beliefs and the fenced resources ---------------------
 */

const char *chk_req_name(ln_req_type t)
{
	switch (t) {
	case LN_REQ_ACQUIRE:
		return "ACQUIRE";
	case LN_REQ_RENEW:
		return "RENEW";
	case LN_REQ_RELEASE:
		return "RELEASE";
	case LN_REQ_REVOKE:
		return "REVOKE";
	case LN_REQ_GET:
		return "GET";
	case LN_REQ_CHECK:
		return "CHECK";
	case LN_REQ_PROCLAIM:
		return "PROCLAIM";
	}
	return "?";
}

const char *chk_status_name(ln_status st)
{
	switch (st) {
	case LN_OK:
		return "OK";
	case LN_NOT_LEADER:
		return "NOT_LEADER";
	case LN_BUSY:
		return "BUSY";
	case LN_INVALID:
		return "INVALID";
	case LN_TIMEOUT:
		return "TIMEOUT";
	}
	return "?";
}

/* "12.345678" seconds of simulated real time. */
static const char *chk_fmt_t(uint64_t us, char *buf, size_t cap)
{
	snprintf(buf, cap, "%" PRIu64 ".%06" PRIu64, us / 1000000,
		 us % 1000000);
	return buf;
}

void chk_lease_reply(sim_check *c, uint32_t replica, const ln_reply *rp)
{
	if (c->violated || rp->type == LN_REQ_GET || rp->type == LN_REQ_CHECK)
		return;
	if (rp->session == 0 || rp->session > c->nclients) {
		chk_fail(c, "ack", "r%u replied to unknown session %" PRIu64,
			 replica, rp->session);
		return;
	}
	uint32_t idx = (uint32_t)(rp->session - 1);
	const char *what = chk_req_name(rp->type);
	if (rp->status == LN_INVALID) {
		chk_fail(c, "ack",
			 "r%u answered INVALID (%s) to the well-formed %s "
			 "c%" PRIu64 ":%" PRIu64,
			 replica, ls_strerror(rp->result.status), what,
			 rp->session, rp->seq);
		return;
	}
	if (rp->status == LN_NOT_LEADER || rp->status == LN_BUSY)
		return;
	const chk_cmd *sub = chk_cmd_get(c, idx, rp->seq);
	ls_cmd sc;
	if (!sub || ls_cmd_decode(sub->data, sub->len, &sc) != LS_OK) {
		chk_fail(c, "ack",
			 "r%u answered %s c%" PRIu64 ":%" PRIu64
			 ", never submitted",
			 replica, what, rp->session, rp->seq);
		return;
	}
	const ls_result *want = &sub->lres;
	ls_status got = rp->result.status;
	/* A command older than the session's latest applied one is settled:
	 * the core answers OK with no result (its answer is gone, paxos.h),
	 * which the node turns into LS_SUPERSEDED, so that a client does not
	 * take it for done. It may also never have been applied: a client
	 * that gave up waiting moved on to its next seq, and the core will
	 * never apply the older one now. Either way nothing was done for this
	 * reply. */
	if (rp->status == LN_OK && got == LS_SUPERSEDED &&
	    rp->seq < c->clients[idx].last_applied_seq && rp->ntokens == 0 &&
	    rp->result.count == 0 && rp->result.token == 0)
		return;
	/* Durability of answers: the ledger holds the command, no later than
	 * the position the reply reports. */
	if (sub->applied_slot == 0) {
		chk_fail(c, "ack",
			 "r%u answered %s %s c%" PRIu64 ":%" PRIu64
			 " (result %s) but no replica has applied it",
			 replica, chk_status_name(rp->status), what,
			 rp->session, rp->seq, ls_strerror(rp->result.status));
		return;
	}
	if (rp->position < sub->applied_slot) {
		chk_fail(c, "ack",
			 "r%u answered %s c%" PRIu64 ":%" PRIu64
			 " at position %" PRIu64
			 " but the ledger holds it at slot %" PRIu64,
			 replica, what, rp->session, rp->seq, rp->position,
			 sub->applied_slot);
		return;
	}
	if (sub->applied_slot > c->max_lease_ack_slot)
		c->max_lease_ack_slot = sub->applied_slot;
	if (rp->status == LN_TIMEOUT) {
		if (rp->type != LN_REQ_ACQUIRE || want->status != LS_QUEUED)
			chk_fail(c, "exactly-once",
				 "r%u answered TIMEOUT to %s c%" PRIu64
				 ":%" PRIu64
				 " whose result in the ledger is %s",
				 replica, what, rp->session, rp->seq,
				 ls_strerror(want->status));
		return;
	}
	if (got == LS_GRANTED) {
		const chk_grant *g = chk_grant_find(c, rp->result.token);
		if (rp->type != LN_REQ_ACQUIRE || !g ||
		    g->session != rp->session ||
		    c->names[g->name].len != sc.name_len ||
		    memcmp(c->names[g->name].name, sc.name, sc.name_len)) {
			chk_fail(c, "tokens",
				 "r%u answered GRANTED token %" PRIu64
				 " to %s c%" PRIu64 ":%" PRIu64
				 " (%.*s) but the ledger granted that token "
				 "%s%" PRIu64 " on %s",
				 replica, rp->result.token, what, rp->session,
				 rp->seq, (int)sc.name_len, sc.name,
				 g ? "to session " : "(never) ",
				 g ? g->session : 0,
				 g ? c->names[g->name].name : "-");
			return;
		}
		bool now = want->status == LS_GRANTED &&
			   want->token == rp->result.token;
		/* A queued ACQUIRE is answered by a later grant: a later
		 * decree, or a later command of the same decree (a batched
		 * release). */
		bool later = want->status == LS_QUEUED &&
			     (g->slot > sub->applied_slot ||
			      (g->slot == sub->applied_slot &&
			       g->idx > sub->applied_idx));
		if (!now && !later)
			chk_fail(c, "exactly-once",
				 "r%u answered GRANTED token %" PRIu64
				 " to c%" PRIu64 ":%" PRIu64
				 " but applying it gave %s (token %" PRIu64 ")",
				 replica, rp->result.token, rp->session,
				 rp->seq, ls_strerror(want->status),
				 want->token);
		return;
	}
	if (got != want->status ||
	    (rp->type == LN_REQ_RENEW && rp->result.count != want->count)) {
		chk_fail(c, "exactly-once",
			 "r%u answered %s c%" PRIu64 ":%" PRIu64
			 " with %s (count %" PRIu32
			 ") but applying it at slot %" PRIu64
			 " gave %s (count %" PRIu32 ")",
			 replica, what, rp->session, rp->seq, ls_strerror(got),
			 rp->result.count, sub->applied_slot,
			 ls_strerror(want->status), want->count);
		return;
	}
	for (uint32_t i = 0; i < rp->ntokens; i++) {
		bool found = false;
		for (uint32_t k = 0; k < sub->nrenewed && !found; k++)
			found = sub->renewed[k] == rp->tokens[i];
		if (!found) {
			chk_fail(c, "exactly-once",
				 "r%u answered RENEW c%" PRIu64 ":%" PRIu64
				 " listing token %" PRIu64
				 ", which that RENEW did not renew in the "
				 "ledger (slot %" PRIu64 ")",
				 replica, rp->session, rp->seq, rp->tokens[i],
				 sub->applied_slot);
			return;
		}
	}
}

static chk_belief *chk_belief_at(sim_check *c, uint32_t idx, uint32_t name)
{
	return &c->beliefs[(size_t)idx * CHK_NAMES_MAX + name];
}

/* Client idx believes it holds name with token from now until end_us:
 * nobody else may believe it at the same instant. */
static void chk_belief_extend(sim_check *c, uint32_t idx, uint32_t name,
			      uint64_t token, uint64_t now, uint64_t end_us,
			      const char *how)
{
	char t0[32], t1[32], t2[32];
	for (uint32_t j = 0; j < c->nclients && !c->violated; j++) {
		const chk_belief *b = chk_belief_at(c, j, name);
		if (j == idx || b->end_us <= now)
			continue;
		chk_fail(c, "exclusion",
			 "at %s c%u believes it holds %s (token %" PRIu64
			 ", %s, until %s)"
			 " while c%u believes it holds it too (token %" PRIu64
			 ", until %s)",
			 chk_fmt_t(now, t0, sizeof t0), idx + 1,
			 chk_name_str(c, name), token, how,
			 chk_fmt_t(end_us, t1, sizeof t1), j + 1, b->token,
			 chk_fmt_t(b->end_us, t2, sizeof t2));
	}
	chk_belief *own = chk_belief_at(c, idx, name);
	if (own->end_us <= now || token >= own->token)
		own->token = token;
	if (end_us > own->end_us || own->end_us <= now)
		own->end_us = end_us;
}

void chk_lease_granted(sim_check *c, uint32_t idx, uint32_t name,
		       uint64_t token, uint64_t now, uint64_t end_us)
{
	char t0[32], t1[32];
	if (c->violated)
		return;
	/* The grace delay, seen from the clients: a newer grant never reaches
	 * anyone while an older holder may still rightly believe. */
	for (uint32_t j = 0; j < c->nclients && !c->violated; j++) {
		const chk_belief *b = chk_belief_at(c, j, name);
		if (j == idx || b->token >= token || b->end_us == 0)
			continue;
		int64_t margin = (int64_t)now - (int64_t)b->end_us;
		if (margin < c->closest_us)
			c->closest_us = margin;
		if (c->tr && margin < 1000000)
			fprintf(c->tr,
				"%4" PRIu64 ".%06" PRIu64
				" ORACLE GRANTED %s token=%" PRIu64
				" reached c%u; c%u's belief (token %" PRIu64
				") ended %.3f ms before\n",
				now / 1000000, now % 1000000,
				chk_name_str(c, name), token, idx + 1, j + 1,
				b->token, (double)margin / 1000.0);
		if (b->end_us <= now)
			continue;
		chk_fail(c, "exclusion",
			 "at %s GRANTED %s (token %" PRIu64
			 ") reached c%u while c%u still believes"
			 " it holds it (token %" PRIu64
			 ", for %.3f ms more, until %s)",
			 chk_fmt_t(now, t0, sizeof t0), chk_name_str(c, name),
			 token, idx + 1, j + 1, b->token,
			 (double)(b->end_us - now) / 1000.0,
			 chk_fmt_t(b->end_us, t1, sizeof t1));
	}
	if (!c->violated && end_us > now)
		chk_belief_extend(c, idx, name, token, now, end_us, "granted");
}

void chk_lease_renewed(sim_check *c, uint32_t idx, uint32_t name,
		       uint64_t token, uint64_t now, uint64_t end_us)
{
	if (!c->violated && end_us > now)
		chk_belief_extend(c, idx, name, token, now, end_us, "renewed");
}

void chk_lease_dropped(sim_check *c, uint32_t idx, uint32_t name, uint64_t now)
{
	chk_belief *own = chk_belief_at(c, idx, name);
	if (own->end_us > now)
		own->end_us = now;
}

bool chk_lease_write(sim_check *c, uint32_t idx, uint32_t name, uint64_t token,
		     uint64_t now, bool believing)
{
	char t0[32];
	chk_name *n = &c->names[name];
	c->writes++;
	c->stale_writes += !believing;
	/* The resource: accepts iff the token is >= the highest it accepted.
	 * So it never accepts a token lower than one it has seen, nor a stale
	 * holder's once the newer holder's (higher) token has reached it. */
	bool accepted = token >= n->res_max;
	if (c->violated)
		return accepted;
	const chk_grant *g = chk_grant_find(c, token);
	if (!g || g->session != idx + 1 || g->name != name) {
		chk_fail(c, "fencing",
			 "at %s c%u wrote to %s with token %" PRIu64
			 ", which the ledger granted %s%" PRIu64 " on %s",
			 chk_fmt_t(now, t0, sizeof t0), idx + 1, n->name, token,
			 g ? "to session " : "(never) ", g ? g->session : 0,
			 g ? c->names[g->name].name : "-");
		return accepted;
	}
	if (!accepted && believing) {
		/* A holder that rightly believes was refused: someone with a
		 * newer grant already used the name while this belief was
		 * valid. */
		chk_fail(c, "fencing",
			 "at %s c%u believes it holds %s (token %" PRIu64
			 ") but its write was refused:"
			 " the resource has already accepted token %" PRIu64
			 " from c%u",
			 chk_fmt_t(now, t0, sizeof t0), idx + 1, n->name, token,
			 n->res_max, n->res_max_client + 1);
		return accepted;
	}
	if (accepted) {
		n->res_max = token;
		n->res_max_client = idx;
	} else {
		c->fenced++;
	}
	return accepted;
}
