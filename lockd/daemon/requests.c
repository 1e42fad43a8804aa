/* Client requests and their replies (server_int.h). */
#include "server_int.h"

/* ---- replies ------------------------------------------------------------- */

static void set_leader(const ld_server *s, Lockd__Reply *rep, int32_t hint)
{
	rep->leader_hint = hint;
	const char *url = srv_client_url(s, hint);
	rep->leader_addr = (char *)(url != NULL ? url : "");
}

/* lockd_request_duration_seconds is indexed by Op - 1 (http.h). */
_Static_assert(LOCKD__OP__OP_ACQUIRE == 1 && LOCKD__OP__OP_STATUS == 8 &&
		       LOCKD__OP__OP_MEMBER_CHANGE == 11 &&
		       LOCKD__OP__OP_PROCLAIM == LD_METRIC_OPS,
	       "LD_METRIC_OP_NAMES must follow client.proto's Op");

static void slot_done(ld_server *s, uint32_t idx, const Lockd__Reply *rep)
{
	slot *sl = &s->slots[idx];
	int op = (int)ld_cctx_request(sl->c)->op;
	if (op >= 1 && op <= (int)LD_METRIC_OPS)
		ld_histo_observe(&s->req_histo[op - 1],
				 ld_mono_us() - ld_cctx_arrived_us(sl->c), 1);
	ld_cctx_reply(sl->c, rep);
	sl->state = SLOT_FREE;
	sl->c = NULL;
	for (uint32_t k = 0; k < sl->nsub; k++)
		free(sl->subs[k].tokens);
	free(sl->subs);
	sl->subs = NULL;
	sl->nsub = sl->left = 0;
	uint32_t last = s->active[--s->nactive];
	s->active[sl->apos] = last;
	s->slots[last].apos = sl->apos;
	if (sl->waiting) {
		sl->waiting = false;
		s->nwaiting--;
	}
}

static Lockd__Status wire_status(ln_status st)
{
	switch (st) {
	case LN_OK:
		return LOCKD__STATUS__STATUS_OK;
	case LN_NOT_LEADER:
		return LOCKD__STATUS__STATUS_NOT_LEADER;
	case LN_BUSY:
		return LOCKD__STATUS__STATUS_BUSY;
	case LN_INVALID:
		return LOCKD__STATUS__STATUS_INVALID;
	case LN_TIMEOUT:
		return LOCKD__STATUS__STATUS_TIMEOUT;
	}
	return LOCKD__STATUS__STATUS_UNSPECIFIED;
}

_Static_assert((int)LOCKD__LEASE_STATUS__LEASE_E_MALFORMED ==
			       (int)LS_E_MALFORMED &&
		       (int)LOCKD__LEASE_STATUS__LEASE_GRANTED ==
			       (int)LS_GRANTED &&
		       (int)LOCKD__LEASE_STATUS__LEASE_E_TABLE_FULL ==
			       (int)LS_E_TABLE_FULL &&
		       (int)LOCKD__LEASE_STATUS__LEASE_SUPERSEDED ==
			       (int)LS_SUPERSEDED &&
		       (int)LOCKD__LEASE_STATUS__LEASE_E_SEQ == (int)LS_E_SEQ &&
		       (int)LOCKD__LEASE_STATUS__LEASE_E_NOT_OWNER ==
			       (int)LS_E_NOT_OWNER &&
		       LS_STATUS_COUNT == LS_E_NOT_OWNER + 1,
	       "LeaseStatus in client.proto must number like ls_status");

static void renew_entry_answered(ld_server *s, uint32_t idx, uint32_t k,
				 const ln_reply *rp);

void srv_answer_node(ld_server *s, const ln_reply *rp)
{
	uint32_t idx = req_id_idx(rp->req_id);
	if (idx >= LD_CLIENT_SLOTS || s->slots[idx].state != SLOT_NODE ||
	    s->slots[idx].gen != req_id_gen(rp->req_id))
		return; /* that context gave up on it (WRITE_ANSWER_US) */
	if (req_id_entry(rp->req_id) > 0) {
		renew_entry_answered(s, idx, req_id_entry(rp->req_id) - 1, rp);
		return;
	}
	const Lockd__Request *req = ld_cctx_request(s->slots[idx].c);

	Lockd__Reply rep = LOCKD__REPLY__INIT;
	Lockd__Lease lease = LOCKD__LEASE__INIT;
	char sentence[256] = "";
	rep.status = wire_status(rp->status);
	ls_status ls = rp->result.status < LS_STATUS_COUNT ? rp->result.status
							   : LS_E_MALFORMED;
	rep.lease_status = (Lockd__LeaseStatus)ls;
	set_leader(s, &rep, rp->leader_hint);
	rep.position = rp->position;
	rep.token = rp->result.token;
	rep.holder = rp->result.holder;
	rep.queue_position = rp->result.position;
	rep.n_renewed = rp->ntokens;
	rep.renewed = rp->tokens;
	switch (rp->status) {
	case LN_OK:
		if (ls == LS_E_TTL)
			snprintf(sentence, sizeof sentence,
				 "invalid TTL: it must be between %u and %u "
				 "ms (this cell's --ttl-max-ms)",
				 LS_TTL_MS_MIN, s->o.node.ttl_ms_max);
		else if (ls != LS_OK && ls != LS_GRANTED)
			snprintf(sentence, sizeof sentence, "%s",
				 ls_strerror(ls));
		break;
	case LN_NOT_LEADER:
		if (srv_client_url(s, rp->leader_hint) != NULL)
			snprintf(sentence, sizeof sentence,
				 "this replica is not the leader: ask replica "
				 "%d at %s",
				 rp->leader_hint,
				 srv_client_url(s, rp->leader_hint));
		else
			snprintf(sentence, sizeof sentence,
				 "this replica is not the leader and knows no "
				 "leader yet: retry shortly");
		break;
	case LN_BUSY:
		snprintf(sentence, sizeof sentence,
			 "the leader's queue is full: retry later");
		break;
	case LN_INVALID:
		if (ls == LS_E_TTL)
			snprintf(sentence, sizeof sentence,
				 "invalid TTL: it must be between %u and %u "
				 "ms (this cell's --ttl-max-ms)",
				 LS_TTL_MS_MIN, s->o.node.ttl_ms_max);
		else
			snprintf(sentence, sizeof sentence, "%s",
				 ls_strerror(ls));
		break;
	case LN_TIMEOUT:
		snprintf(sentence, sizeof sentence,
			 "waited %u ms; the name is still held by session "
			 "%llu",
			 req->wait_ms, (unsigned long long)rp->result.holder);
		break;
	}
	rep.error = sentence;
	if (rp->type == LN_REQ_REVOKE && rp->status == LN_OK && ls == LS_OK) {
		char why[260]; /* the reason, its quotes and controls as _ */
		size_t k = 0;
		for (const char *p = req->reason; *p && k < sizeof why - 1; p++)
			why[k++] = *p == '"' || *p == '\\' ||
						   (unsigned char)*p < 0x20
					   ? '_'
					   : *p;
		why[k] = '\0';
		ld_log("info", "revoke", "name=%s reason=\"%s\"", req->name,
		       why);
	}
	if (rp->type == LN_REQ_GET && rp->found) {
		lease.name = req->name;
		lease.holder = rp->holder;
		lease.token = rp->token;
		lease.ttl_ms = rp->ttl_ms;
		lease.ttl_ms_left = rp->ttl_ms_left;
		lease.in_grace = rp->in_grace;
		lease.revoked = rp->revoked;
		lease.revoke_reason.data = (uint8_t *)rp->reason;
		lease.revoke_reason.len = rp->reason_len;
		lease.waiters = rp->nwaiters;
		lease.value.data = (uint8_t *)rp->value;
		lease.value.len = rp->value_len;
		rep.lease = &lease;
	}
	slot_done(s, idx, &rep);
}

static void answer_status(ld_server *s, uint32_t idx)
{
	px_status st;
	srv_node_status(s, &st);
	Lockd__Reply rep = LOCKD__REPLY__INIT;
	Lockd__ReplicaStatus rs = LOCKD__REPLICA_STATUS__INIT;
	rep.status = LOCKD__STATUS__STATUS_OK;
	rep.position = st.applied;
	set_leader(s, &rep, st.leader);
	rs.id = s->o.id;
	rs.role = (char *)srv_status_role(s, &st);
	px_ballot b = st.role == PX_FOLLOWER ? st.promised : st.ballot;
	rs.ballot_round = b.round;
	rs.ballot_id = b.id;
	rs.leader = st.leader;
	rs.commit = st.commit;
	rs.applied = st.applied;
	rs.snapshot_base = st.base;
	rs.leases = ls_table_count(ln_node_table(s->node));
	rs.voter = st.voter;
	rs.member = st.member;
	rs.members = s->members.n;
	rs.voters = s->nvoters;
	rs.version = (char *)LOCKD_VERSION;
	rs.uptime_s = (uint64_t)time(NULL) - s->started_unix_s;
	ds_stats ss;
	ds_stats_get(s->store, &ss);
	rs.snapshot_bytes = ss.snapshot_bytes;
	rep.replica = &rs;
	slot_done(s, idx, &rep);
}

/* ---- membership requests ------------------------------------------------- */

static void answer_plain(ld_server *s, uint32_t idx, Lockd__Status status,
			 Lockd__LeaseStatus ls, const char *sentence);

/* Fills rep's members (the applied configuration, URLs as this replica
 * knows them) from m; wire, ptrs and removed are the caller's buffers. */
static void wire_members(const px_members *m, uint64_t from, Lockd__Reply *rep,
			 Lockd__CellMember *wire, Lockd__CellMember **ptrs,
			 uint32_t *removed)
{
	for (uint32_t i = 0; i < m->n; i++) {
		lockd__cell_member__init(&wire[i]);
		wire[i].id = m->m[i].id;
		wire[i].peer = (char *)m->m[i].peer;
		wire[i].client = (char *)m->m[i].client;
		wire[i].voting = m->m[i].voting;
		wire[i].incarnation = m->m[i].incarnation;
		ptrs[i] = &wire[i];
	}
	rep->n_members = m->n;
	rep->members = ptrs;
	rep->members_from = from;
	size_t nr = 0;
	for (uint32_t id = 0; id < LD_REPLICA_IDS; id++)
		if (m->removed >> id & 1u)
			removed[nr++] = id;
	rep->n_removed = nr;
	rep->removed = removed;
}

static void answer_members(ld_server *s, uint32_t idx)
{
	px_status st;
	srv_node_status(s, &st);
	px_members m;
	uint64_t from;
	srv_members_view(s, &m, &from);
	Lockd__Reply rep = LOCKD__REPLY__INIT;
	Lockd__CellMember wire[LD_REPLICAS_MAX];
	Lockd__CellMember *ptrs[LD_REPLICAS_MAX];
	uint32_t removed[LD_REPLICA_IDS];
	rep.status = LOCKD__STATUS__STATUS_OK;
	rep.position = st.applied;
	set_leader(s, &rep, st.leader);
	wire_members(&m, from, &rep, wire, ptrs, removed);
	slot_done(s, idx, &rep);
}

void srv_answer_change(ld_server *s, const px_change_done *d)
{
	uint32_t idx = (uint32_t)(d->change_id & ((1u << REQ_INDEX_BITS) - 1));
	uint64_t gen = d->change_id >> REQ_INDEX_BITS;
	if (idx >= LD_CLIENT_SLOTS || s->slots[idx].state != SLOT_NODE ||
	    s->slots[idx].gen != gen)
		return; /* that context gave up on it (WRITE_ANSWER_US) */
	px_status st;
	srv_node_status(s, &st);
	Lockd__Reply rep = LOCKD__REPLY__INIT;
	Lockd__CellMember wire[LD_REPLICAS_MAX];
	Lockd__CellMember *ptrs[LD_REPLICAS_MAX];
	uint32_t removed[LD_REPLICA_IDS];
	px_members m; /* wire's URLs point into it */
	uint64_t from;
	char sentence[256] = "";
	rep.position = st.applied;
	set_leader(s, &rep, st.leader);
	rep.error = sentence;
	switch (d->status) {
	case PX_CHANGE_DONE:
		srv_members_view(s, &m, &from);
		rep.status = LOCKD__STATUS__STATUS_OK;
		rep.change_slot = d->slot;
		wire_members(&m, from, &rep, wire, ptrs, removed);
		break;
	case PX_CHANGE_NOT_LEADER:
		rep.status = LOCKD__STATUS__STATUS_NOT_LEADER;
		set_leader(s, &rep,
			   d->leader_hint == (int32_t)s->o.id ? -1
							      : d->leader_hint);
		if (srv_client_url(s, rep.leader_hint) != NULL)
			snprintf(sentence, sizeof sentence,
				 "this replica is not the leader: ask replica "
				 "%d at %s",
				 rep.leader_hint,
				 srv_client_url(s, rep.leader_hint));
		else
			snprintf(sentence, sizeof sentence,
				 "this replica is not the leader and knows no "
				 "leader yet: retry shortly");
		break;
	case PX_CHANGE_BUSY:
		/* Another change is still taking effect: the client retries
		 * it as it retries a busy leader. */
		rep.status = LOCKD__STATUS__STATUS_BUSY;
		snprintf(sentence, sizeof sentence, "%s", d->why);
		break;
	case PX_CHANGE_REFUSED:
		rep.status = LOCKD__STATUS__STATUS_REFUSED;
		snprintf(sentence, sizeof sentence, "%s", d->why);
		break;
	}
	slot_done(s, idx, &rep);
}

/* A MEMBER_CHANGE: checked here for what the wire can get wrong, then the
 * node's (LN_EV_CHANGE), answered from actions.ld.changes. */
static void change_start(ld_server *s, uint32_t idx)
{
	slot *sl = &s->slots[idx];
	const Lockd__Request *r = ld_cctx_request(sl->c);
	const char *bad = NULL;
	char sentence[256];
	px_change ch = {.id = r->member_id};
	if (r->member_op == LOCKD__MEMBER_OP__MEMBER_ADD) {
		ch.op = PX_CHANGE_ADD;
		ch.peer = r->member_peer;
		ch.client = r->member_client;
		if (r->member_peer[0] == '\0' || r->member_client[0] == '\0')
			bad = "adding a member needs its peer URL and its "
			      "client URL";
		else if (strlen(r->member_peer) >= LD_URL_BYTES_MAX ||
			 strlen(r->member_client) >= LD_URL_BYTES_MAX)
			bad = "a member's URL is at most 255 bytes";
	} else if (r->member_op == LOCKD__MEMBER_OP__MEMBER_REMOVE) {
		ch.op = PX_CHANGE_REMOVE;
	} else {
		bad = "a membership change is MEMBER_ADD or MEMBER_REMOVE";
	}
	if (bad == NULL && r->member_id >= LD_REPLICA_IDS) {
		snprintf(sentence, sizeof sentence,
			 "replica ids are 0 to %u, not %u", LD_REPLICA_IDS - 1,
			 r->member_id);
		bad = sentence;
	}
	if (bad != NULL) {
		answer_plain(s, idx, LOCKD__STATUS__STATUS_INVALID,
			     LOCKD__LEASE_STATUS__LEASE_E_MALFORMED, bad);
		return;
	}
	sl->state = SLOT_NODE;
	sl->deadline_us = ld_cctx_arrived_us(sl->c) + WRITE_ANSWER_US;
	ld_log("info", "member_change", "op=%s id=%u peer=%s client=%s",
	       ch.op == PX_CHANGE_ADD ? "add" : "remove", ch.id,
	       ch.op == PX_CHANGE_ADD ? ch.peer : "-",
	       ch.op == PX_CHANGE_ADD ? ch.client : "-");
	ln_event ev = {.type = LN_EV_CHANGE,
		       .change = &ch,
		       .change_id = (sl->gen << REQ_INDEX_BITS) | idx};
	srv_step(s, &ev);
}

struct list_ctx {
	ld_server *s;
	size_t n, bytes;
	bool more; /* a lease did not fit */
};

/* A lease as the table shows it (name borrowed, a NUL-terminated copy);
 * ttl_ms_left is the leader's to say: -1 on any other replica. */
static void wire_lease(const ld_server *s, Lockd__Lease *l, char *name,
		       const ls_view *v)
{
	lockd__lease__init(l);
	l->name = name;
	l->holder = v->holder;
	l->token = v->token;
	l->ttl_ms = v->ttl_ms;
	l->ttl_ms_left = -1;
	l->revoked = v->revoked;
	l->revoke_reason.data = (uint8_t *)v->reason;
	l->revoke_reason.len = v->reason_len;
	l->waiters = v->nwaiters;
	l->value.data = (uint8_t *)v->value;
	l->value.len = v->value_len;
	bool in_grace = false;
	if (ln_node_lease_left(s->node, v->token, &l->ttl_ms_left, &in_grace))
		l->in_grace = in_grace;
}

static bool list_one(const ls_view *v, void *arg)
{
	struct list_ctx *lc = arg;
	ld_server *s = lc->s;
	size_t cost = 64 + v->name_len + v->value_len;
	if (lc->n == LIST_LEASES_MAX || lc->bytes + cost > LIST_BYTES_MAX) {
		lc->more = true;
		return false;
	}
	Lockd__Lease *l = &s->list_leases[lc->n];
	char *name = s->list_names[lc->n];
	uint32_t nl = v->name_len <= LS_NAME_BYTES_MAX ? v->name_len
						       : LS_NAME_BYTES_MAX;
	memcpy(name, v->name, nl);
	name[nl] = '\0';
	wire_lease(s, l, name, v);
	s->list_ptrs[lc->n] = l;
	lc->n++;
	lc->bytes += cost;
	return true;
}

void srv_answer_list(ld_server *s, uint32_t idx)
{
	const Lockd__Request *req = ld_cctx_request(s->slots[idx].c);
	px_status st;
	srv_node_status(s, &st);
	Lockd__Reply rep = LOCKD__REPLY__INIT;
	rep.position = st.applied;
	set_leader(s, &rep, st.leader);
	size_t plen = strlen(req->name), alen = strlen(req->after_name);
	if (plen > LS_NAME_BYTES_MAX || alen > LS_NAME_BYTES_MAX) {
		rep.status = LOCKD__STATUS__STATUS_INVALID;
		rep.lease_status = LOCKD__LEASE_STATUS__LEASE_E_NAME;
		rep.error = (char *)ls_strerror(LS_E_NAME);
		slot_done(s, idx, &rep);
		return;
	}
	struct list_ctx lc = {s, 0, 0, false};
	ls_list_after(ln_node_table(s->node), req->name, (uint32_t)plen,
		      req->after_name, (uint32_t)alen, list_one, &lc);
	rep.status = LOCKD__STATUS__STATUS_OK;
	rep.more = lc.more;
	rep.n_leases = lc.n;
	rep.leases = s->list_ptrs;
	slot_done(s, idx, &rep);
}

/* Answers the slot with only a status and a sentence, at this replica's
 * position and with its leader hint. */
static void answer_plain(ld_server *s, uint32_t idx, Lockd__Status status,
			 Lockd__LeaseStatus ls, const char *sentence)
{
	px_status st;
	srv_node_status(s, &st);
	Lockd__Reply rep = LOCKD__REPLY__INIT;
	rep.status = status;
	rep.lease_status = ls;
	rep.error = (char *)sentence;
	rep.position = st.applied;
	set_leader(s, &rep, st.leader);
	slot_done(s, idx, &rep);
}

void srv_answer_behind(ld_server *s, uint32_t idx)
{
	const Lockd__Request *req = ld_cctx_request(s->slots[idx].c);
	px_status st;
	srv_node_status(s, &st);
	char sentence[256];
	snprintf(sentence, sizeof sentence,
		 "this replica has applied the ledger to position %llu, not "
		 "yet %llu: ask another replica or retry",
		 (unsigned long long)st.applied,
		 (unsigned long long)req->known_position);
	answer_plain(s, idx, LOCKD__STATUS__STATUS_BEHIND,
		     LOCKD__LEASE_STATUS__LEASE_OK, sentence);
}

void srv_answer_unanswered(ld_server *s, uint32_t idx)
{
	bool change = ld_cctx_request(s->slots[idx].c)->op ==
		      LOCKD__OP__OP_MEMBER_CHANGE;
	answer_plain(s, idx, LOCKD__STATUS__STATUS_BUSY,
		     LOCKD__LEASE_STATUS__LEASE_OK,
		     change ? "the cell did not decide the membership change "
			      "in time: ask again (a change already made is "
			      "not made twice)"
			    : "the cell did not decide in time: retry with the "
			      "same session and seq");
}

/* ---- watches --------------------------------------------------------------
 */

static void answer_watch_invalid(ld_server *s, uint32_t idx, ls_status ls)
{
	answer_plain(s, idx, LOCKD__STATUS__STATUS_INVALID,
		     (Lockd__LeaseStatus)ls, ls_strerror(ls));
}

/* The change e, or (e NULL) the name's current state because the feed no
 * longer reaches back to the watcher's position. */
static void answer_watch(ld_server *s, uint32_t idx, const ld_watch_entry *e)
{
	const Lockd__Request *req = ld_cctx_request(s->slots[idx].c);
	px_status st;
	srv_node_status(s, &st);
	Lockd__Reply rep = LOCKD__REPLY__INIT;
	Lockd__Lease lease;
	rep.status = LOCKD__STATUS__STATUS_OK;
	set_leader(s, &rep, st.leader);
	ls_view v;
	bool held;
	if (e != NULL) {
		rep.position = e->slot;
		held = e->held;
		v = (ls_view){.holder = e->holder,
			      .token = e->token,
			      .ttl_ms = e->ttl_ms,
			      .value = e->value,
			      .value_len = e->value_len};
	} else {
		rep.position = st.applied;
		rep.history_lost = true;
		held = ls_get(ln_node_table(s->node), req->name,
			      (uint32_t)strlen(req->name), &v) == LS_OK;
	}
	if (held) {
		/* (a feed entry's view: not revoked, waiters unknown, 0) */
		wire_lease(s, &lease, req->name, &v);
		rep.lease = &lease;
		rep.lease_status = LOCKD__LEASE_STATUS__LEASE_OK;
	} else {
		rep.lease_status = LOCKD__LEASE_STATUS__LEASE_NO_SUCH_LEASE;
	}
	slot_done(s, idx, &rep);
}

void srv_answer_watch_timeout(ld_server *s, uint32_t idx)
{
	answer_plain(s, idx, LOCKD__STATUS__STATUS_TIMEOUT,
		     LOCKD__LEASE_STATUS__LEASE_OK,
		     "no change within the wait: watch again from this "
		     "position");
}

/* Answers the watch if the feed has its change (or has lost it); else
 * leaves it waiting. true when answered. */
/* A prefix WATCH's answer: every change under the prefix at one position
 * (es[0..n)), or with history_lost the position alone (the watcher lists
 * the names to learn their state). Uses LIST's reply buffers. */
static void answer_watch_prefix(ld_server *s, uint32_t idx,
				const ld_watch_entry *const *es, uint32_t n)
{
	px_status st;
	srv_node_status(s, &st);
	Lockd__Reply rep = LOCKD__REPLY__INIT;
	rep.status = LOCKD__STATUS__STATUS_OK;
	rep.lease_status = LOCKD__LEASE_STATUS__LEASE_OK;
	set_leader(s, &rep, st.leader);
	rep.position = n > 0 ? es[0]->slot : st.applied;
	rep.history_lost = n == 0;
	for (uint32_t i = 0; i < n; i++) {
		const ld_watch_entry *e = es[i];
		memcpy(s->list_names[i], e->name, e->name_len);
		s->list_names[i][e->name_len] = '\0';
		ls_view v = {.holder = e->holder,
			     .token = e->token,
			     .ttl_ms = e->ttl_ms,
			     .value = e->value,
			     .value_len = e->value_len};
		wire_lease(s, &s->list_leases[i], s->list_names[i], &v);
		s->list_leases[i].freed = !e->held;
		s->list_ptrs[i] = &s->list_leases[i];
	}
	rep.n_leases = n;
	rep.leases = s->list_ptrs;
	slot_done(s, idx, &rep);
}

bool srv_watch_look(ld_server *s, uint32_t idx)
{
	slot *sl = &s->slots[idx];
	const Lockd__Request *r = ld_cctx_request(sl->c);
	if (r->prefix) {
		static const ld_watch_entry *es[LIST_LEASES_MAX];
		uint32_t n;
		ld_watch_find_rv rv = ld_watch_find_prefix(
			&s->feed, r->name, (uint32_t)strlen(r->name),
			r->after_position, sl->mark, es, LIST_LEASES_MAX, &n);
		sl->mark = s->feed.added;
		if (rv == LD_WATCH_NONE)
			return false;
		answer_watch_prefix(s, idx, es, rv == LD_WATCH_FOUND ? n : 0);
		return true;
	}
	const ld_watch_entry *e;
	ld_watch_find_rv rv =
		ld_watch_find(&s->feed, r->name, (uint32_t)strlen(r->name),
			      r->after_position, sl->mark, &e);
	sl->mark = s->feed.added;
	if (rv == LD_WATCH_NONE)
		return false;
	answer_watch(s, idx, rv == LD_WATCH_FOUND ? e : NULL);
	return true;
}

static void watch_start(ld_server *s, uint32_t idx)
{
	slot *sl = &s->slots[idx];
	const Lockd__Request *r = ld_cctx_request(sl->c);
	size_t nl = strlen(r->name);
	/* A prefix may be empty (every name); otherwise it is a name. */
	if (!(r->prefix && nl == 0) &&
	    !ls_name_valid(r->name,
			   nl > UINT16_MAX ? UINT16_MAX : (uint32_t)nl)) {
		answer_watch_invalid(s, idx, LS_E_NAME);
		return;
	}
	if (r->wait_ms > LS_WAIT_MS_MAX) {
		answer_watch_invalid(s, idx, LS_E_WAIT);
		return;
	}
	sl->mark = 0;
	if (srv_watch_look(s, idx))
		return;
	if (r->wait_ms == 0) {
		srv_answer_watch_timeout(s, idx);
		return;
	}
	uint32_t wait_ms =
		r->wait_ms < WATCH_WAIT_MS_MAX ? r->wait_ms : WATCH_WAIT_MS_MAX;
	sl->state = SLOT_WATCH;
	sl->deadline_us = ld_mono_us() + (uint64_t)wait_ms * 1000u;
}

static void answer_too_many_waiting(ld_server *s, uint32_t idx)
{
	char sentence[256];
	snprintf(sentence, sizeof sentence,
		 "this replica already holds %u waiting requests (acquires "
		 "with a wait, watches, reads waiting for the ledger): retry "
		 "later",
		 s->nwaiting);
	answer_plain(s, idx, LOCKD__STATUS__STATUS_BUSY,
		     LOCKD__LEASE_STATUS__LEASE_OK, sentence);
}

/* ---- admitting requests -------------------------------------------------- */

static ln_req_type req_type(Lockd__Op op)
{
	switch (op) {
	case LOCKD__OP__OP_ACQUIRE:
		return LN_REQ_ACQUIRE;
	case LOCKD__OP__OP_RENEW:
		return LN_REQ_RENEW;
	case LOCKD__OP__OP_RELEASE:
		return LN_REQ_RELEASE;
	case LOCKD__OP__OP_REVOKE:
		return LN_REQ_REVOKE;
	case LOCKD__OP__OP_GET:
		return LN_REQ_GET;
	case LOCKD__OP__OP_CHECK:
		return LN_REQ_CHECK;
	case LOCKD__OP__OP_PROCLAIM:
		return LN_REQ_PROCLAIM;
	default:
		return 0;
	}
}

static bool is_read(Lockd__Op op)
{
	return op == LOCKD__OP__OP_GET || op == LOCKD__OP__OP_CHECK ||
	       op == LOCKD__OP__OP_LIST || op == LOCKD__OP__OP_WATCH ||
	       op == LOCKD__OP__OP_MEMBERS;
}

/* Room for one more of this round's requests to the node. */
static ln_request *req_next(ld_server *s, uint32_t *nreq)
{
	if (*nreq == s->reqs_cap) {
		size_t cap = s->reqs_cap ? 2 * s->reqs_cap : LD_CLIENT_SLOTS;
		ln_request *p = realloc(s->reqs, cap * sizeof *p);
		if (p == NULL)
			abort();
		s->reqs = p;
		s->reqs_cap = cap;
	}
	return &s->reqs[(*nreq)++];
}

/* One entry's answer came: kept until the last, which answers them all in
 * one reply. */
static void renew_entry_answered(ld_server *s, uint32_t idx, uint32_t k,
				 const ln_reply *rp)
{
	slot *sl = &s->slots[idx];
	if (k >= sl->nsub || sl->subs[k].answered)
		return;
	renew_answer *a = &sl->subs[k];
	a->answered = true;
	a->status = rp->status;
	a->ls = rp->result.status < LS_STATUS_COUNT ? rp->result.status
						    : LS_E_MALFORMED;
	a->leader_hint = rp->leader_hint;
	a->position = rp->position;
	if (rp->ntokens > 0) {
		a->tokens = malloc(rp->ntokens * sizeof *a->tokens);
		if (a->tokens == NULL)
			abort();
		memcpy(a->tokens, rp->tokens, rp->ntokens * sizeof *a->tokens);
		a->ntokens = (uint32_t)rp->ntokens;
	}
	if (--sl->left > 0)
		return;

	const Lockd__Request *req = ld_cctx_request(sl->c);
	Lockd__Reply rep = LOCKD__REPLY__INIT;
	rep.status = LOCKD__STATUS__STATUS_OK;
	int32_t hint = -1;
	uint64_t pos = 0;
	for (uint32_t i = 0; i < sl->nsub; i++) {
		const renew_answer *x = &sl->subs[i];
		if (x->position > pos)
			pos = x->position;
		if (x->leader_hint >= 0)
			hint = x->leader_hint;
		/* NOT_LEADER or BUSY for one entry: the whole request again
		 * (the entries applied are answered from the table then). */
		if (x->status == LN_NOT_LEADER)
			rep.status = LOCKD__STATUS__STATUS_NOT_LEADER;
		else if (x->status == LN_BUSY &&
			 rep.status == LOCKD__STATUS__STATUS_OK)
			rep.status = LOCKD__STATUS__STATUS_BUSY;
	}
	set_leader(s, &rep, hint);
	rep.position = pos;
	char sentence[256] = "";
	if (rep.status == LOCKD__STATUS__STATUS_NOT_LEADER)
		snprintf(sentence, sizeof sentence,
			 "this replica is not the leader: ask replica %d",
			 hint);
	else if (rep.status == LOCKD__STATUS__STATUS_BUSY)
		snprintf(sentence, sizeof sentence,
			 "the leader's queue is full: retry later with the "
			 "same seqs");
	rep.error = sentence;
	Lockd__SessionRenewed *ents = calloc(sl->nsub, sizeof *ents);
	Lockd__SessionRenewed **ptrs = calloc(sl->nsub, sizeof *ptrs);
	if (ents == NULL || ptrs == NULL)
		abort();
	if (rep.status == LOCKD__STATUS__STATUS_OK) {
		for (uint32_t i = 0; i < sl->nsub; i++) {
			const renew_answer *x = &sl->subs[i];
			lockd__session_renewed__init(&ents[i]);
			ents[i].session = req->renew_sessions[i]->session;
			ents[i].lease_status = (Lockd__LeaseStatus)x->ls;
			ents[i].n_renewed = x->ntokens;
			ents[i].renewed = x->tokens;
			ents[i].error =
				(char *)(x->ls == LS_OK ? ""
							: ls_strerror(x->ls));
			ptrs[i] = &ents[i];
		}
		rep.n_renewed_sessions = sl->nsub;
		rep.renewed_sessions = ptrs;
	}
	slot_done(s, idx, &rep);
	free(ents);
	free(ptrs);
}

/* A RENEW for many sessions: each entry goes to the node as a RENEW of its
 * own, batched into the round's decrees with everything else. */
static void to_node_renewals(ld_server *s, uint32_t idx, uint32_t *nreq)
{
	slot *sl = &s->slots[idx];
	const Lockd__Request *r = ld_cctx_request(sl->c);
	if (r->n_renew_sessions > LD_RENEW_SESSIONS_MAX || r->session != 0 ||
	    r->seq != 0 || r->session_key != 0) {
		char why[160];
		snprintf(why, sizeof why,
			 r->n_renew_sessions > LD_RENEW_SESSIONS_MAX
				 ? "a RENEW renews at most %u sessions"
				 : "a RENEW of renew_sessions has no session, "
				   "seq or session_key of its own (%u at most)",
			 LD_RENEW_SESSIONS_MAX);
		answer_plain(s, idx, LOCKD__STATUS__STATUS_INVALID,
			     LOCKD__LEASE_STATUS__LEASE_E_MALFORMED, why);
		return;
	}
	uint32_t n = (uint32_t)r->n_renew_sessions;
	sl->subs = calloc(n, sizeof *sl->subs);
	if (sl->subs == NULL)
		abort();
	sl->nsub = sl->left = n;
	for (uint32_t k = 0; k < n; k++) {
		const Lockd__SessionRef *e = r->renew_sessions[k];
		ln_request *q = req_next(s, nreq);
		*q = (ln_request){
			.req_id = req_id_of(sl->gen, k + 1, idx),
			.type = LN_REQ_RENEW,
			.session = e->session,
			.seq = e->seq,
			.session_key = e->session_key,
			.name = "",
			.reason = "",
		};
	}
	sl->state = SLOT_NODE;
	sl->deadline_us = ld_cctx_arrived_us(sl->c) + WRITE_ANSWER_US;
}

static void to_node(ld_server *s, uint32_t idx, uint32_t *nreq)
{
	slot *sl = &s->slots[idx];
	const Lockd__Request *r = ld_cctx_request(sl->c);
	if (r->op == LOCKD__OP__OP_RENEW && r->n_renew_sessions > 0) {
		to_node_renewals(s, idx, nreq);
		return;
	}
	/* Strings longer than any limit are cut to a length the node still
	 * refuses, so no length wraps. */
	size_t nl = strlen(r->name), rl = strlen(r->reason);
	size_t vl = r->value.len;
	ln_request *q = req_next(s, nreq);
	*q = (ln_request){
		.req_id = req_id_of(sl->gen, 0, idx),
		.type = req_type(r->op),
		.session = r->session,
		.seq = r->seq,
		.session_key = r->session_key,
		.name = r->name,
		.name_len = (uint32_t)(nl > UINT16_MAX ? UINT16_MAX : nl),
		.ttl_ms = r->ttl_ms,
		.wait_ms = r->wait_ms,
		.value = r->value.data,
		.value_len = (uint32_t)(vl > UINT16_MAX ? UINT16_MAX : vl),
		.token = r->token,
		.reason = r->reason,
		.reason_len = (uint32_t)(rl > UINT16_MAX ? UINT16_MAX : rl),
		.linearizable =
			r->consistency == LOCKD__CONSISTENCY__LINEARIZABLE,
	};
	sl->state = SLOT_NODE;
	uint64_t wait_us =
		q->type == LN_REQ_ACQUIRE ? (uint64_t)r->wait_ms * 1000u : 0;
	sl->deadline_us = ld_cctx_arrived_us(sl->c) + wait_us + WRITE_ANSWER_US;
}

/* Routes a read that may now be served: LIST and STATUS at the end of the
 * round, WATCH from the feed, GET and CHECK through the node. */
/* A replica whose state a quorum outvoted (lockd/core/paxos.h,
 * PX_DIGEST_DIVERGED) serves no reads: NOT_LEADER sends the client on. */
/* NOT_LEADER with a sentence, so that the client asks another replica at
 * once (BUSY would have it retry this one), with the leader as a hint when
 * that is someone else. */
void srv_answer_elsewhere(ld_server *s, uint32_t idx, const char *sentence)
{
	px_status st;
	srv_node_status(s, &st);
	Lockd__Reply rep = LOCKD__REPLY__INIT;
	rep.status = LOCKD__STATUS__STATUS_NOT_LEADER;
	rep.lease_status = LOCKD__LEASE_STATUS__LEASE_OK;
	rep.error = (char *)sentence;
	rep.position = st.applied;
	set_leader(s, &rep, st.leader == (int32_t)s->o.id ? -1 : st.leader);
	slot_done(s, idx, &rep);
}

static void answer_diverged(ld_server *s, uint32_t idx)
{
	char sentence[256];
	snprintf(sentence, sizeof sentence,
		 "replica %u's state differs from the cell's (its state digest "
		 "was outvoted), so it serves no reads: ask another replica",
		 s->o.id);
	srv_answer_elsewhere(s, idx, sentence);
}

void srv_route_ready(ld_server *s, uint32_t idx, uint32_t *nreq)
{
	const Lockd__Request *r = ld_cctx_request(s->slots[idx].c);
	if (is_read(r->op) || r->op == LOCKD__OP__OP_WATCH) {
		px_status st;
		srv_node_status(s, &st);
		if (st.digest_alarm == PX_DIGEST_DIVERGED) {
			answer_diverged(s, idx);
			return;
		}
	}
	if (r->op == LOCKD__OP__OP_LIST || r->op == LOCKD__OP__OP_STATUS ||
	    r->op == LOCKD__OP__OP_MEMBERS)
		s->slots[idx].state = SLOT_LATER;
	else if (r->op == LOCKD__OP__OP_WATCH)
		watch_start(s, idx);
	else if (r->op == LOCKD__OP__OP_MEMBER_CHANGE)
		change_start(s, idx);
	else
		to_node(s, idx, nreq);
}

static bool pipe_recently_gone(const ld_server *s, uint32_t pipe)
{
	for (uint32_t i = 0; i < GONE_RECENT; i++)
		if (s->gone_recent[i] == pipe && pipe != 0)
			return true;
	return false;
}

static void answer_gone(ld_server *s, uint32_t idx)
{
	answer_plain(s, idx, LOCKD__STATUS__STATUS_BUSY,
		     LOCKD__LEASE_STATUS__LEASE_OK,
		     "the connection this request came on closed");
}

/* Client connections closed: what waits for them stops waiting, so that
 * its context is free for others. Watches and parked reads end here; a
 * waiting acquire ends here and the node cancels its wait (and revokes a
 * grant that comes anyway: LN_EV_GONE). Requests that do not wait finish
 * as usual, their answers going nowhere. */
void srv_clients_gone(ld_server *s)
{
	size_t ng = ld_clients_take_gone(s->clients, s->gone_buf,
					 LD_CLIENT_GONE_MAX);
	if (ng == 0)
		return;
	uint32_t nreq = 0;
	for (size_t g = 0; g < ng; g++) {
		uint32_t pipe = s->gone_buf[g];
		s->gone_recent[s->gone_recent_next++ % GONE_RECENT] = pipe;
		for (uint32_t k = s->nactive; k-- > 0;) {
			uint32_t i = s->active[k];
			slot *sl = &s->slots[i];
			if (ld_cctx_pipe(sl->c) != pipe)
				continue;
			const Lockd__Request *r = ld_cctx_request(sl->c);
			if (sl->state == SLOT_NODE &&
			    r->op == LOCKD__OP__OP_ACQUIRE && r->wait_ms > 0)
				s->gone_reqs[nreq++] = req_id_of(sl->gen, 0, i);
			else if (sl->state != SLOT_WATCH &&
				 sl->state != SLOT_PARKED)
				continue;
			s->gone_freed++;
			answer_gone(s, i);
		}
	}
	if (nreq > 0) {
		ld_log("info", "clients_gone",
		       "connections=%zu waiting_acquires=%u", ng, nreq);
		ln_event ev = {.type = LN_EV_GONE,
			       .gone = s->gone_reqs,
			       .ngone = nreq};
		srv_step(s, &ev);
	}
}

/* Whether the read in slot idx may park (see PARKED_PER_CONN_MAX); if
 * not it is answered STATUS_BEHIND. One that may is counted as waiting. */
static bool park_room(ld_server *s, uint32_t idx, uint64_t applied)
{
	slot *sl = &s->slots[idx];
	uint32_t pipe = ld_cctx_pipe(sl->c);
	uint32_t same = 0;
	for (uint32_t k = 0; k < s->nactive; k++) {
		const slot *o = &s->slots[s->active[k]];
		if (o->state == SLOT_PARKED && ld_cctx_pipe(o->c) == pipe)
			same++;
	}
	if (sl->waiting)
		return true; /* a WATCH: already counted */
	const char *why = NULL;
	uint32_t held = same;
	if (same >= PARKED_PER_CONN_MAX) {
		why = "reads on this connection already wait for it";
	} else if (s->nwaiting >= LD_CLIENT_CTX_MAX - LD_CLIENT_CTX_RESERVE) {
		why = "requests already wait on this replica";
		held = s->nwaiting;
	}
	if (why == NULL) {
		sl->waiting = true;
		s->nwaiting++;
		return true;
	}
	char sentence[256];
	snprintf(sentence, sizeof sentence,
		 "this replica has applied the ledger to position %llu, not "
		 "yet %llu, and %u %s: ask another replica or retry",
		 (unsigned long long)applied,
		 (unsigned long long)ld_cctx_request(sl->c)->known_position,
		 held, why);
	answer_plain(s, idx, LOCKD__STATUS__STATUS_BEHIND,
		     LOCKD__LEASE_STATUS__LEASE_OK, sentence);
	return false;
}

void srv_admit(ld_server *s, ld_cctx *c, uint64_t applied, uint32_t *nreq)
{
	uint32_t idx = ld_cctx_index(c);
	slot *sl = &s->slots[idx];
	/* A context brings a new request only after its reply left. */
	assert(sl->state == SLOT_FREE && sl->c == NULL);
	sl->c = c;
	sl->gen++;
	sl->apos = s->nactive;
	s->active[s->nactive++] = idx;
	const Lockd__Request *r = ld_cctx_request(c);
	if (pipe_recently_gone(s, ld_cctx_pipe(c))) {
		answer_gone(s, idx);
		return;
	}
	if ((r->op == LOCKD__OP__OP_ACQUIRE || r->op == LOCKD__OP__OP_WATCH) &&
	    r->wait_ms > 0) {
		/* It may hold its context for long: keep the reserve. */
		if (s->nwaiting >= LD_CLIENT_CTX_MAX - LD_CLIENT_CTX_RESERVE) {
			answer_too_many_waiting(s, idx);
			return;
		}
		sl->waiting = true;
		s->nwaiting++;
	}
	if (is_read(r->op) && r->known_position > applied &&
	    r->consistency != LOCKD__CONSISTENCY__STALE) {
		/* Read-your-writes and monotonic reads: hold it until this
		 * replica has applied as far as the client has seen. */
		if (!park_room(s, idx, applied))
			return;
		sl->state = SLOT_PARKED;
		sl->deadline_us = ld_cctx_arrived_us(c) + READ_WAIT_US;
		return;
	}
	srv_route_ready(s, idx, nreq);
}

/* STATUS and MEMBERS read only this replica's own state: answered even
 * while it is stalled. Returns whether slot idx was one of them. */
bool srv_answer_local(ld_server *s, uint32_t idx)
{
	Lockd__Op op = ld_cctx_request(s->slots[idx].c)->op;
	if (op == LOCKD__OP__OP_STATUS)
		answer_status(s, idx);
	else if (op == LOCKD__OP__OP_MEMBERS)
		answer_members(s, idx);
	else
		return false;
	return true;
}
