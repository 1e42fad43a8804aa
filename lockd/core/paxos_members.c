/* Membership (paxos.h): the configurations that govern slots after commit,
 * the membership decrees and applying them, and the changes a leader
 * proposes (ADD, PROMOTE, REMOVE, handing over when it removes itself). */
#include "paxos_int.h"

/* ---- configurations ----------------------------------------------------- */

void pxi_conf_fill(conf *c, const px_members *m, uint64_t from, bool minority)
{
	memset(c, 0, sizeof *c);
	c->from = from;
	c->m = *m;
	for (uint32_t i = 0; i < m->n; i++) {
		c->all |= id_bit(m->m[i].id);
		if (m->m[i].voting)
			c->voters |= id_bit(m->m[i].id);
	}
	/* P2: any two majorities of one configuration share an acceptor. */
	c->quorum = popcount64(c->voters) / 2 + 1;
	if (minority)
		c->quorum = popcount64(c->voters) / 2;
}

conf *pxi_conf_push(px_replica *r)
{
	r->confs = mem_grow(r->confs, &r->confs_cap, r->nconfs + 1,
			    sizeof *r->confs);
	return &r->confs[r->nconfs++];
}

/* The configuration that governs slot (its quorums, both phases). */
const conf *pxi_conf_at(const px_replica *r, uint64_t slot)
{
	uint32_t i = r->nconfs - 1;
	while (i > 0 && r->confs[i].from > slot)
		i--;
	return &r->confs[i];
}

const conf *pxi_conf_latest(const px_replica *r)
{
	return &r->confs[r->nconfs - 1];
}

/* Forgets configurations that no slot after commit uses. */
void pxi_conf_prune(px_replica *r)
{
	uint32_t k = 0;
	while (k + 1 < r->nconfs && r->confs[k + 1].from <= r->commit + 1)
		k++;
	if (k > 0) {
		memmove(r->confs, r->confs + k,
			(r->nconfs - k) * sizeof *r->confs);
		r->nconfs -= k;
	}
}

/* Everyone a message about slots after commit may concern. */
uint64_t pxi_peers_mask(const px_replica *r)
{
	uint64_t m = 0;
	for (uint32_t i = 0; i < r->nconfs; i++)
		m |= r->confs[i].all;
	if (MUTANT(r, PX_MUTANT_COUNT_REMOVED))
		m |= pxi_conf_latest(r)->m.removed;
	return m & ~id_bit(r->cfg.id);
}

uint64_t pxi_voters_mask(const px_replica *r)
{
	uint64_t m = 0;
	for (uint32_t i = 0; i < r->nconfs; i++)
		m |= r->confs[i].voters;
	return m;
}

bool pxi_quorum_in(const conf *c, uint64_t mask)
{
	return c->voters != 0 && popcount64(mask & c->voters) >= c->quorum;
}

/* mask holds a quorum of every configuration of a slot after commit. */
bool pxi_quorum_all(const px_replica *r, uint64_t mask)
{
	for (uint32_t i = 0; i < r->nconfs; i++)
		if (!pxi_quorum_in(&r->confs[i], mask))
			return false;
	return true;
}

/* Removed from the cell, and no longer needed: no slot after commit is
 * governed by a configuration that has us (until then a removed replica
 * still answers as an acceptor, so that the configuration still in effect
 * keeps its quorum). */
bool pxi_gone(const px_replica *r)
{
	return r->leaving && r->role != PX_LEADER &&
	       !(pxi_conf_at(r, r->commit + 1)->all & id_bit(r->cfg.id));
}

/* This replica votes in the configuration of the next slot to choose. */
bool pxi_votes_now(const px_replica *r)
{
	return r->joined && !r->leaving &&
	       (pxi_conf_at(r, r->commit + 1)->voters & id_bit(r->cfg.id));
}

/* ---- membership decrees --------------------------------------------------
 * A command of PX_MEMBERS_CLIENT: version 1, op, id, incarnation, peer,
 * client (paxos.h). */

#define CHANGE_BYTES_MAX (2 + 4 + 8 + 2 * (2 + LD_URL_BYTES_MAX))

static size_t change_encode(const px_change *c, uint8_t *buf)
{
	uint8_t *p = buf;
	*p++ = 1;
	*p++ = (uint8_t)c->op;
	pxi_put_u32(&p, c->id);
	pxi_put_u64(&p, c->incarnation);
	pxi_put_str(&p, c->peer != NULL ? c->peer : "");
	pxi_put_str(&p, c->client != NULL ? c->client : "");
	return (size_t)(p - buf);
}

static int change_decode(const px_cmd *cmd, change_dec *c)
{
	const uint8_t *p = cmd->data, *end = cmd->data + cmd->len;
	if (cmd->len < 2 || p[0] != 1 || p[1] < PX_CHANGE_ADD ||
	    p[1] > PX_CHANGE_PROMOTE)
		return -1;
	c->op = (px_change_op)p[1];
	p += 2;
	if (pxi_get_u32(&p, end, &c->id) || c->id >= LD_REPLICA_IDS ||
	    pxi_get_u64(&p, end, &c->incarnation) ||
	    pxi_get_str(&p, end, c->peer) || pxi_get_str(&p, end, c->client) ||
	    p != end)
		return -1;
	return 0;
}

void pxi_change_done(px_actions *out, uint64_t change_id, px_change_status st,
		     int32_t hint, uint64_t slot, const char *why)
{
	out->changes = mem_grow(out->changes, &out->changes_cap,
				out->nchanges + 1, sizeof *out->changes);
	px_change_done *d = &out->changes[out->nchanges++];
	memset(d, 0, sizeof *d);
	d->change_id = change_id;
	d->status = st;
	d->leader_hint = hint;
	d->slot = slot;
	if (why != NULL)
		snprintf(d->why, sizeof d->why, "%s", why);
}

/* Applies a membership decree chosen at slot: a new configuration from
 * slot + PX_ALPHA. Deterministic and idempotent; why says what it did not
 * do (NULL: done). */
const char *pxi_apply_change(px_replica *r, px_actions *out, uint64_t slot,
			     const px_cmd *cmd)
{
	change_dec c;
	if (change_decode(cmd, &c) != 0)
		return "malformed membership decree";
	px_members m = pxi_conf_latest(r)->m;
	px_member *x = NULL;
	uint32_t at = 0;
	for (at = 0; at < m.n; at++)
		if (m.m[at].id >= c.id)
			break;
	if (at < m.n && m.m[at].id == c.id)
		x = &m.m[at];
	switch (c.op) {
	case PX_CHANGE_ADD:
		if (m.removed & id_bit(c.id))
			return "that id left the cell; ids are never reused";
		if (x != NULL)
			return strcmp(x->peer, c.peer) == 0 &&
					       strcmp(x->client, c.client) == 0
				       ? NULL
				       : "that id is a member at other URLs";
		if (m.n >= LD_REPLICAS_MAX)
			return "the cell has as many members as it can hold";
		memmove(&m.m[at + 1], &m.m[at], (m.n - at) * sizeof m.m[0]);
		m.n++;
		x = &m.m[at];
		memset(x, 0, sizeof *x);
		x->id = c.id;
		memcpy(x->peer, c.peer, sizeof x->peer);
		memcpy(x->client, c.client, sizeof x->client);
		break;
	case PX_CHANGE_PROMOTE:
		if (x == NULL)
			return "no such member";
		if (x->voting)
			return NULL;
		x->voting = true;
		x->incarnation = c.incarnation;
		break;
	case PX_CHANGE_REMOVE:
		if (x == NULL) {
			if (m.removed & id_bit(c.id))
				return NULL;
			m.removed |= id_bit(c.id);
			break;
		}
		if (x->voting) {
			uint32_t v = 0;
			for (uint32_t i = 0; i < m.n; i++)
				v += m.m[i].voting;
			if (v <= 1)
				return "the cell's last voter cannot leave";
		}
		memmove(&m.m[at], &m.m[at + 1], (m.n - at - 1) * sizeof m.m[0]);
		m.n--;
		m.removed |= id_bit(c.id);
		break;
	}
	uint64_t from = slot + (MUTANT(r, PX_MUTANT_ALPHA_ZERO) ? 1 : PX_ALPHA);
	/* One that a later decree made stale cannot be in effect before it:
	 * configurations take effect in ledger order. */
	if (from <= pxi_conf_latest(r)->from)
		from = pxi_conf_latest(r)->from + 1;
	pxi_conf_fill(pxi_conf_push(r), &m, from,
		      MUTANT(r, PX_MUTANT_MINORITY_QUORUM));
	out->members_changed = true;
	if (c.id == r->cfg.id) {
		if (c.op == PX_CHANGE_REMOVE)
			r->leaving = true;
		/* A learner's own promotion, naming this very disk: it has
		 * never voted with it (a learner does not), so it votes from
		 * now on. A disk that was wiped since has another
		 * incarnation and recovers (paxos.h). */
		if (c.op == PX_CHANGE_PROMOTE && !r->joined &&
		    c.incarnation != 0 && c.incarnation == r->cfg.incarnation)
			pxi_join(r, out, (px_ballot){0, 0});
	}
	return NULL;
}

/* ---- membership changes at the leader ------------------------------------ */

static bool value_has_change(const px_value *v)
{
	for (uint32_t i = 0; v != NULL && i < v->ncmds; i++)
		if (v->cmds[i].client_id == PX_MEMBERS_CLIENT)
			return true;
	return false;
}

/* A change is in flight from its proposal until it is in effect: one at a
 * time, so that every slot's configuration is one step from its
 * neighbours' and a refused change never waits behind another. */
static bool change_in_flight(const px_replica *r, uint64_t *until)
{
	*until = 0;
	if (pxi_conf_latest(r)->from > r->commit + 1) {
		*until = pxi_conf_latest(r)->from;
		return true;
	}
	for (uint32_t i = 0; i < r->pending_n; i++)
		if (r->pending[(r->pending_head + i) % LD_PENDING_CMDS_MAX]
			    .cmd.client_id == PX_MEMBERS_CLIENT)
			return true;
	for (uint64_t s = r->commit + 1; s < r->next_slot || s <= r->p1_max;
	     s++) {
		const entry *e = entry_at_c(r, s);
		if (e == NULL)
			break;
		if (value_has_change(e->pvalue) || value_has_change(e->p1value))
			return true;
	}
	return false;
}

/* The voters that answered us as voters lately (and ourselves): not the
 * benefit of the doubt a new leader gives everyone for its first election
 * timeout. */
static uint64_t live_mask(const px_replica *r)
{
	uint64_t live = id_bit(r->cfg.id);
	for (FOR_IDS(j, pxi_peers_mask(r)))
		if (r->peer_heard_us[j] > r->lead_since_us &&
		    r->now_us <
			    r->peer_heard_us[j] + r->cfg.election_timeout_us)
			live |= id_bit((uint32_t)j);
	return live;
}

/* Queues a membership decree; 0, or -1 with the queue full. */
static int queue_change(px_replica *r, const px_change *c, uint64_t *tag)
{
	if (r->pending_n >= LD_PENDING_CMDS_MAX)
		return -1;
	uint8_t *data = malloc(CHANGE_BYTES_MAX);
	if (data == NULL)
		return -1;
	size_t len = change_encode(c, data);
	/* Matched only by the replica that proposed it (change_req): a tag
	 * that no other proposal shares. */
	*tag = (pxi_rng_next(r) ^ r->now_us ^ ((uint64_t)r->cfg.id << 56)) | 1;
	pending_cmd *p = &r->pending[(r->pending_head + r->pending_n) %
				     LD_PENDING_CMDS_MAX];
	p->cmd = (px_cmd){.client_id = PX_MEMBERS_CLIENT,
			  .seq = *tag,
			  .len = (uint32_t)len,
			  .data = data};
	r->pending_n++;
	return 0;
}

void pxi_on_change(px_replica *r, uint64_t id, const px_change *c,
		   px_actions *out)
{
	char why[160];
	if (r->role != PX_LEADER) {
		pxi_change_done(out, id, PX_CHANGE_NOT_LEADER, r->leader, 0,
				"this replica does not lead");
		return;
	}
	const px_members *m = &pxi_conf_latest(r)->m;
	const px_member *x =
		c->id < LD_REPLICA_IDS ? px_members_find(m, c->id) : NULL;
	uint64_t until;
	/* One change at a time (paxos.h): a change behind one that is not in
	 * effect yet waits for it (BUSY, the client retries), whatever else
	 * would be said of it then, except that it is done already. */
	bool busy = change_in_flight(r, &until);
	if (c->id >= LD_REPLICA_IDS) {
		snprintf(why, sizeof why,
			 "replica id %u is over the largest, %u", c->id,
			 LD_REPLICA_IDS - 1);
		goto refuse;
	}
	if (c->op == PX_CHANGE_ADD) {
		size_t pl = c->peer ? strlen(c->peer) : 0;
		size_t cl = c->client ? strlen(c->client) : 0;
		if (m->removed & id_bit(c->id)) {
			snprintf(why, sizeof why,
				 "replica id %u left the cell, and ids are "
				 "never used twice: add it with a new id",
				 c->id);
			goto refuse;
		}
		if (x != NULL) {
			if (strcmp(x->peer, c->peer ? c->peer : "") == 0 &&
			    strcmp(x->client, c->client ? c->client : "") ==
				    0) {
				pxi_change_done(out, id, PX_CHANGE_DONE, -1, 0,
						NULL);
				return;
			}
			snprintf(why, sizeof why,
				 "replica id %u is already a member, at peer "
				 "URL %.60s",
				 c->id, x->peer);
			goto refuse;
		}
		if (busy)
			goto in_flight;
		if (pl == 0 || pl >= LD_URL_BYTES_MAX || cl == 0 ||
		    cl >= LD_URL_BYTES_MAX) {
			snprintf(why, sizeof why,
				 "a new member needs a peer URL and a client "
				 "URL, each under %u bytes",
				 LD_URL_BYTES_MAX);
			goto refuse;
		}
		if (m->n >= LD_REPLICAS_MAX) {
			snprintf(why, sizeof why,
				 "the cell has %u members, the most it can "
				 "hold",
				 m->n);
			goto refuse;
		}
	} else if (c->op == PX_CHANGE_REMOVE) {
		if (x == NULL) {
			if (m->removed & id_bit(c->id)) {
				pxi_change_done(out, id, PX_CHANGE_DONE, -1, 0,
						NULL);
				return;
			}
			snprintf(why, sizeof why,
				 "replica id %u is not a member", c->id);
			goto refuse;
		}
		if (busy)
			goto in_flight;
		/* Without it, both the configuration in effect now (for the
		 * slots before the change takes effect) and the new one
		 * must still have a quorum that answers us. */
		uint64_t live = live_mask(r) & ~id_bit(c->id);
		const conf *now = pxi_conf_at(r, r->commit + 1);
		uint64_t nv = now->voters & ~id_bit(c->id);
		uint32_t nq = popcount64(nv) / 2 + 1;
		if (x->voting &&
		    (nv == 0 || popcount64(live & nv) < nq ||
		     popcount64(live & now->voters) < now->quorum)) {
			snprintf(why, sizeof why,
				 "without replica %u the cell would have %u "
				 "voters of which %u answer now; a quorum is "
				 "%u",
				 c->id, popcount64(nv), popcount64(live & nv),
				 nq);
			/* A leader that took office within an election
			 * timeout has not heard from everyone yet: ask
			 * again shortly, rather than refuse. */
			if (r->now_us <
			    r->lead_since_us + r->cfg.election_timeout_us) {
				pxi_change_done(out, id, PX_CHANGE_BUSY, -1, 0,
						why);
				return;
			}
			goto refuse;
		}
	} else if (c->op == PX_CHANGE_PROMOTE) {
		if (x == NULL || x->voting) {
			snprintf(why, sizeof why,
				 "replica id %u is not a learner", c->id);
			goto refuse;
		}
	} else {
		snprintf(why, sizeof why, "unknown membership change");
		goto refuse;
	}
	if (busy) {
	in_flight:
		if (until != 0)
			snprintf(why, sizeof why,
				 "a membership change is in flight (in effect "
				 "from ledger position %" PRIu64
				 "): retry then",
				 until);
		else
			snprintf(why, sizeof why,
				 "a membership change is in flight: retry once "
				 "it is in effect");
		pxi_change_done(out, id, PX_CHANGE_BUSY, -1, 0, why);
		return;
	}
	uint64_t tag;
	if (queue_change(r, c, &tag) != 0) {
		snprintf(why, sizeof why, "the leader's queue is full");
		goto refuse;
	}
	r->chreqs = mem_grow(r->chreqs, &r->chreqs_cap, r->nchreqs + 1,
			     sizeof *r->chreqs);
	r->chreqs[r->nchreqs++] = (change_req){id, tag};
	pxi_flush_pending(r, out);
	return;
refuse:
	pxi_change_done(out, id, PX_CHANGE_REFUSED, -1, 0, why);
}

/* A learner that has caught up (it answered our heartbeat with a commit
 * close to ours, and its disk's incarnation) is promoted to voter. */
void pxi_maybe_promote(px_replica *r, px_actions *out)
{
	const px_members *m = &pxi_conf_latest(r)->m;
	uint64_t until;
	for (uint32_t i = 0; i < m->n; i++) {
		const px_member *x = &m->m[i];
		if (x->voting || x->id == r->cfg.id ||
		    r->peer_inc[x->id] == 0 ||
		    r->peer_commit[x->id] + LD_CATCHUP_SLOTS_MAX < r->commit)
			continue;
		if (change_in_flight(r, &until))
			return;
		px_change c = {.op = PX_CHANGE_PROMOTE,
			       .id = x->id,
			       .incarnation = r->peer_inc[x->id]};
		uint64_t tag;
		if (queue_change(r, &c, &tag) == 0)
			pxi_flush_pending(r, out);
		return;
	}
}

/* A leader that applied its own removal hands over to the voter of the new
 * configuration that has come furthest, and steps down. */
static void hand_over(px_replica *r, px_actions *out)
{
	const conf *nc = pxi_conf_latest(r);
	int32_t best = -1;
	for (FOR_IDS(j, nc->voters & live_mask(r) & ~id_bit(r->cfg.id)))
		if (best < 0 || r->peer_commit[j] > r->peer_commit[best])
			best = (int32_t)j;
	for (FOR_IDS(j, pxi_peers_mask(r))) {
		px_msg *m = pxi_msg_new(r, PX_MSG_COMMIT, (uint32_t)j);
		m->ballot = r->ballot;
		m->slot = r->next_slot > 0 ? r->next_slot - 1 : 0;
		m->flags = PX_FLAG_HANDOVER |
			   ((int32_t)j == best ? PX_FLAG_CAMPAIGN : 0);
		pxi_emit(r, out, m);
	}
	pxi_changes_fail_all(r, out);
	r->leader = -1;
	pxi_become_follower(r, out, r->now_us);
}

void pxi_maybe_hand_over(px_replica *r, px_actions *out)
{
	if (r->role == PX_LEADER && r->leaving)
		hand_over(r, out);
}

/* PX_EV_RESIGN: the caller cannot serve (no file descriptors left, a disk
 * that takes no writes). A leader hands over; nobody campaigns until an
 * election timeout after the last such event. */
void pxi_on_resign(px_replica *r, px_actions *out)
{
	r->resign_until_us = r->now_us + 2 * r->cfg.election_timeout_us;
	if (r->role == PX_LEADER)
		hand_over(r, out);
	else if (r->role == PX_CANDIDATE)
		pxi_become_follower(r, out, r->now_us);
}

const px_member *px_members_find(const px_members *m, uint32_t id)
{
	for (uint32_t i = 0; i < m->n; i++)
		if (m->m[i].id == id)
			return &m->m[i];
	return NULL;
}

void px_replica_members(const px_replica *r, px_members *out,
			uint64_t *from_slot)
{
	*out = pxi_conf_latest(r)->m;
	if (from_slot != NULL)
		*from_slot = pxi_conf_latest(r)->from;
}

uint64_t px_replica_peer_ids(const px_replica *r)
{
	return pxi_peers_mask(r);
}

bool px_replica_member(const px_replica *r, uint32_t id, px_member *out)
{
	for (uint32_t i = r->nconfs; i-- > 0;) {
		const px_member *x = px_members_find(&r->confs[i].m, id);
		if (x != NULL) {
			*out = *x;
			return true;
		}
	}
	return false;
}
