/* Multi-Paxos, after Lamport's "The Part-Time Parliament" and "Paxos Made
 * Simple": every ledger slot is one synod; a stable leader (the president)
 * runs phase 1 once for all slots past what it knows and then only phase 2.
 *
 * The rules, as numbered in "Paxos Made Simple":
 *   P1  ballots are unique: (round, replica id);
 *   P2  any two quorums intersect: majorities;
 *   P3  in phase 2 a proposer proposes the value of the highest-ballot vote
 *       reported by its phase-1 quorum, or anything if there is none;
 *   and an acceptor never votes in or promises a ballot below its promise,
 *   and makes a promise or a vote durable before it answers.
 *
 * Learning. A follower learns slot s chosen from a COMMIT(b, commit >= s)
 * only when its own vote for s was cast in ballot b: a leader's proposals in
 * ballot b are the values it declared chosen, because it declares a slot
 * chosen only after a b-majority voted for its own proposal. Everything else
 * is learned through catch-up (chosen values) or a snapshot. */
#include "paxos.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* ---- small helpers ------------------------------------------------------ */

int ld_ballot_cmp(ld_ballot a, ld_ballot b)
{
	if (a.round != b.round)
		return a.round < b.round ? -1 : 1;
	if (a.id != b.id)
		return a.id < b.id ? -1 : 1;
	return 0;
}

static bool ballot_zero(ld_ballot b)
{
	return b.round == 0;
}

static uint32_t popcount32(uint32_t x)
{
	return (uint32_t)__builtin_popcount(x);
}

#ifdef LD_MUTANTS
#define MUTANT(r, m) ((r)->cfg.mutant == (m))
#else
#define MUTANT(r, m) 0
#endif

static const char *const mutant_names[LD_MUTANT_COUNT] = {
	[LD_MUTANT_NONE] = "none",
	[LD_MUTANT_FORGET_PROMISE] = "forget-promise",
	[LD_MUTANT_ALPHA_ZERO] = "alpha-zero",
	[LD_MUTANT_COUNT_REMOVED] = "count-removed",
	[LD_MUTANT_IGNORE_VOTES] = "ignore-votes",
	[LD_MUTANT_MINORITY_QUORUM] = "minority-quorum",
	[LD_MUTANT_SHARED_BALLOTS] = "shared-ballots",
	[LD_MUTANT_EARLY_CHOSEN] = "early-chosen",
	[LD_MUTANT_VOTE_BEFORE_SYNC] = "vote-before-sync",
	[LD_MUTANT_GRACE_ZERO] = "grace-zero",
	[LD_MUTANT_DEPOSED_RENEW] = "deposed-renew",
	[LD_MUTANT_REPLY_CLOCK] = "reply-clock",
	[LD_MUTANT_TRUST_STAMPS] = "trust-stamps",
	[LD_MUTANT_UNCHECKED_REGRANT] = "unchecked-regrant",
	[LD_MUTANT_WIPED_VOTES] = "wiped-votes",
	[LD_MUTANT_IGNORE_DIGEST] = "ignore-digest",
	[LD_MUTANT_READ_LOCAL] = "read-local",
	[LD_MUTANT_OPEN_PEERS] = "open-peers",
};

const char *ld_mutant_name(ld_mutant m)
{
	return (unsigned)m < LD_MUTANT_COUNT ? mutant_names[m] : "?";
}

ld_mutant ld_mutant_parse(const char *name)
{
	for (int m = 0; m < LD_MUTANT_COUNT; m++)
		if (strcmp(name, mutant_names[m]) == 0)
			return (ld_mutant)m;
	return LD_MUTANT_COUNT;
}

/* ---- messages, records, actions ----------------------------------------- */

void ld_msg_free(ld_msg *m)
{
	if (m == NULL)
		return;
	ld_value_unref(m->value);
	for (uint32_t i = 0; i < m->nvotes; i++)
		ld_value_unref(m->votes[i].value);
	free(m->votes);
	free(m->snap);
	free(m);
}

ld_msg *ld_msg_dup(const ld_msg *m)
{
	ld_msg *d = malloc(sizeof *d);
	if (d == NULL)
		return NULL;
	*d = *m;
	d->votes = NULL;
	d->snap = NULL;
	d->nvotes = 0;
	d->snap_len = 0;
	d->value = ld_value_ref(m->value);
	if (m->nvotes > 0) {
		d->votes = malloc(m->nvotes * sizeof *d->votes);
		if (d->votes == NULL)
			goto fail;
		for (uint32_t i = 0; i < m->nvotes; i++) {
			d->votes[i] = m->votes[i];
			ld_value_ref(d->votes[i].value);
		}
		d->nvotes = m->nvotes;
	}
	if (m->snap_len > 0) {
		d->snap = malloc(m->snap_len);
		if (d->snap == NULL)
			goto fail;
		memcpy(d->snap, m->snap, m->snap_len);
		d->snap_len = m->snap_len;
	}
	return d;
fail:
	ld_msg_free(d);
	return NULL;
}

int ld_msg_validate(const ld_msg *m, uint32_t nreplicas)
{
	if (m == NULL || m->type < LD_MSG_PREPARE || m->type > LD_MSG_TYPE_MAX)
		return -1;
	if (m->from >= nreplicas || m->to >= nreplicas || m->from == m->to)
		return -1;
	if (m->ballot.id >= nreplicas || m->ballot.round >= LD_ROUND_MAX)
		return -1;
	if (m->nvotes > LD_LOG_SLOTS_MAX || (m->nvotes > 0 && !m->votes))
		return -1;
	if (m->snap_len > LD_SNAPSHOT_BYTES_MAX || (m->snap_len && !m->snap))
		return -1;
	for (uint32_t i = 0; i < m->nvotes; i++)
		if (m->votes[i].value == NULL || m->votes[i].slot == 0 ||
		    m->votes[i].ballot.id >= nreplicas ||
		    m->votes[i].ballot.round >= LD_ROUND_MAX)
			return -1;
	switch (m->type) {
	case LD_MSG_PREPARE:
	case LD_MSG_PROMISE:
	case LD_MSG_ACCEPTED:
	case LD_MSG_COMMIT:
		if (ballot_zero(m->ballot))
			return -1;
		break;
	case LD_MSG_ACCEPT:
		if (ballot_zero(m->ballot) || m->value == NULL || m->slot == 0)
			return -1;
		break;
	case LD_MSG_SNAPSHOT:
		if (m->base == 0 || m->snap_len == 0)
			return -1;
		break;
	case LD_MSG_CATCHUP_REQ:
		if (m->slot == 0)
			return -1;
		break;
	default:
		break;
	}
	return 0;
}

void ld_record_clear(ld_record *rec)
{
	ld_value_unref(rec->value);
	free(rec->snap);
	memset(rec, 0, sizeof *rec);
}

void ld_actions_init(ld_actions *a)
{
	memset(a, 0, sizeof *a);
}

void ld_actions_reset(ld_actions *a)
{
	for (size_t i = 0; i < a->nrecs; i++)
		ld_record_clear(&a->recs[i]);
	for (size_t i = 0; i < a->nmsgs; i++)
		ld_msg_free(a->msgs[i]);
	for (size_t i = 0; i < a->nchosen; i++)
		ld_value_unref(a->chosen[i].value);
	a->nrecs = a->nmsgs = a->nchosen = a->nreplies = a->nreads = 0;
	a->nchanges = 0;
	a->members_changed = false;
	a->write_id = 0;
	a->installed_snapshot = false;
	a->snapshot_base = 0;
	a->timer_at_us = 0;
}

void ld_actions_free(ld_actions *a)
{
	ld_actions_reset(a);
	free(a->recs);
	free(a->msgs);
	free(a->chosen);
	free(a->replies);
	free(a->reads);
	free(a->changes);
	memset(a, 0, sizeof *a);
}

/* Grows an action array; aborts on out-of-memory, since an action that cannot
 * be recorded would silently break the durability contract. */
static void *grow(void *p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return p;
	size_t n = *cap ? *cap * 2 : 16;
	while (n < need)
		n *= 2;
	void *q = realloc(p, n * elem);
	if (q == NULL)
		abort();
	*cap = n;
	return q;
}

/* ---- replica state ------------------------------------------------------ */

typedef struct entry {
	uint64_t slot;     /* 0: the ring cell is empty */
	ld_ballot vballot; /* acceptor: the vote cast for this slot */
	ld_value *vvalue;
	ld_value *chosen; /* learner: the value known chosen */
	/* proposer, valid while pballot equals the leader's ballot */
	ld_ballot pballot;
	ld_value *pvalue;
	uint32_t acks; /* replicas that voted pvalue in pballot */
	uint64_t sent_us;
	/* candidate: highest-ballot vote reported in phase 1 (P3) */
	ld_ballot p1ballot;
	ld_value *p1value;
} entry;

typedef struct held_msg {
	ld_msg *msg;
	uint64_t write_id;
} held_msg;

typedef struct pending_cmd {
	ld_cmd cmd; /* data malloc'd */
} pending_cmd;

typedef struct waiter {
	uint64_t client_id, seq;
} waiter;

typedef struct client_ent {
	uint64_t client_id; /* 0: empty */
	uint64_t seq, slot;
	uint32_t result_len;
	uint8_t result[LD_RESULT_BYTES_MAX];
} client_ent;

struct ld_replica {
	ld_config cfg;
	ld_sm *sm;
	uint32_t quorum;
	uint64_t rng;

	/* acceptor */
	ld_ballot promised;

	/* recovery (paxos.h): a replica without a JOINED record learns but
	 * neither promises nor votes until it is safe to */
	bool joined;              /* a JOINED record was restored or written */
	bool recover_known;       /* recover_above (M) is known */
	ld_ballot recover_above;  /* M: vote only under a leader above it */
	ld_ballot recover_ballot; /* the leader above M seen, or zero */
	uint64_t recover_horizon; /* its highest proposed slot (H) */
	uint64_t started_us;      /* first step */
	uint64_t probe_round, probe_at_us, probe_eligible_round;
	uint64_t nudge_at_us;
	struct {
		uint64_t round; /* the probe round it answered; 0: none */
		ld_ballot promised;
		bool voter, empty;
	} probe_acks[LD_REPLICAS_MAX];

	/* log: slots [log_start, log_start + LD_LOG_SLOTS_MAX) */
	entry log[LD_LOG_SLOTS_MAX];
	uint64_t log_start;
	uint64_t commit; /* every slot <= commit is chosen and applied */
	uint64_t snap_base;
	uint8_t *snap; /* the snapshot at snap_base (client table + sm) */
	size_t snap_len;

	/* roles */
	ld_role role;
	ld_ballot ballot;   /* proposer's ballot while candidate/leader */
	uint64_t max_round; /* highest round seen anywhere */
	int32_t leader;     /* believed leader, or -1 */
	ld_ballot leader_ballot;
	uint64_t heard_us;       /* last message from that leader */
	uint64_t election_at_us; /* follower: campaign at this time */
	uint64_t now_us;

	/* candidate */
	uint64_t p1_from, p1_max;
	uint32_t promises;
	uint64_t cand_started_us, p1_sent_us;

	/* leader */
	uint64_t next_slot;
	uint64_t heartbeat_at_us;
	/* linearizable reads (ReadIndex): a read waits for a heartbeat round
	 * sent after it arrived to be answered by a quorum at our ballot, and
	 * for commit to reach the highest slot proposed when it arrived. */
	uint64_t hb_seq;                    /* rounds sent */
	uint64_t hb_acked[LD_REPLICAS_MAX]; /* highest round each answered */
	bool hb_wanted;                     /* a read waits for a round */
	struct pending_read {
		uint64_t id, need, index;
	} * preads;
	uint32_t npreads, preads_cap;
	uint64_t peer_heard_us[LD_REPLICAS_MAX];
	pending_cmd *pending; /* ring */
	uint32_t pending_head, pending_n;

	/* commands submitted here, waiting to be applied */
	waiter *waiters;
	uint32_t nwaiters, waiters_cap;

	/* state digests at every LD_DIGEST_EVERY_SLOTS-th slot (a ring), and
	 * what comparing them found */
	struct ckpt {
		uint64_t slot, digest;
	} ckpts[LD_DIGEST_KEEP], peer_ckpt[LD_REPLICAS_MAX];
	uint32_t ckpt_next;
	struct ckpt verified; /* leader: the latest a quorum shares with us */
	ld_digest_alarm digest_alarm;

	/* follower catch-up */
	uint64_t catchup_sent_us;
	/* Catch-up answers are taken only from the replica last asked, for a
	 * while after asking: a stray or forged CATCHUP or SNAPSHOT that
	 * nobody asked for is dropped. */
	int32_t catchup_to;
	uint64_t catchup_asked_us;
	uint64_t known_commit; /* highest commit anyone told us */
	int32_t known_commit_from;

	/* durability */
	uint64_t last_write_id, durable_id;
	held_msg *held;
	uint32_t nheld, held_cap;

	/* exactly-once: open addressing, power-of-two capacity */
	client_ent *clients;
	uint32_t clients_cap, nclients;
};

static uint64_t rng_next(ld_replica *r)
{
	/* splitmix64 */
	uint64_t z = (r->rng += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static entry *entry_at(ld_replica *r, uint64_t slot)
{
	if (slot < r->log_start || slot >= r->log_start + LD_LOG_SLOTS_MAX)
		return NULL;
	entry *e = &r->log[slot % LD_LOG_SLOTS_MAX];
	if (e->slot != slot) {
		/* Only empty cells or stale cells below log_start get reused.
		 */
		assert(e->slot == 0 || e->slot < r->log_start);
		return NULL;
	}
	return e;
}

static const entry *entry_at_c(const ld_replica *r, uint64_t slot)
{
	return entry_at((ld_replica *)r, slot);
}

static void entry_clear(entry *e)
{
	ld_value_unref(e->vvalue);
	ld_value_unref(e->chosen);
	ld_value_unref(e->pvalue);
	ld_value_unref(e->p1value);
	memset(e, 0, sizeof *e);
}

/* The cell for slot, creating it; NULL when slot is outside the window. */
static entry *entry_get(ld_replica *r, uint64_t slot)
{
	if (slot < r->log_start || slot >= r->log_start + LD_LOG_SLOTS_MAX)
		return NULL;
	entry *e = &r->log[slot % LD_LOG_SLOTS_MAX];
	if (e->slot != slot) {
		entry_clear(e);
		e->slot = slot;
	}
	return e;
}

/* Moves the start of the in-memory log forward, forgetting older slots. */
static void log_truncate(ld_replica *r, uint64_t start)
{
	if (start <= r->log_start)
		return;
	uint64_t end = start;
	if (end - r->log_start > LD_LOG_SLOTS_MAX)
		end = r->log_start + LD_LOG_SLOTS_MAX;
	for (uint64_t s = r->log_start; s < end; s++) {
		entry *e = &r->log[s % LD_LOG_SLOTS_MAX];
		if (e->slot == s)
			entry_clear(e);
	}
	r->log_start = start;
}

/* ---- the client table (exactly-once) ------------------------------------ */

static client_ent *client_find(ld_replica *r, uint64_t id)
{
	if (r->clients_cap == 0)
		return NULL;
	uint32_t mask = r->clients_cap - 1;
	for (uint32_t i = (uint32_t)ld_mix64(id) & mask;; i = (i + 1) & mask) {
		if (r->clients[i].client_id == id)
			return &r->clients[i];
		if (r->clients[i].client_id == 0)
			return NULL;
	}
}

static void client_table_rehash(ld_replica *r, uint32_t cap);

static void client_remove(ld_replica *r, client_ent *c)
{
	/* Rebuilding is O(n) but happens only on eviction, once a table of
	 * LD_CLIENTS_MAX is full. */
	c->client_id = 0;
	r->nclients--;
	client_table_rehash(r, r->clients_cap);
}

static client_ent *client_insert_slot(ld_replica *r, uint64_t id)
{
	uint32_t mask = r->clients_cap - 1;
	uint32_t i = (uint32_t)ld_mix64(id) & mask;
	while (r->clients[i].client_id != 0)
		i = (i + 1) & mask;
	r->clients[i].client_id = id;
	r->nclients++;
	return &r->clients[i];
}

static void client_table_rehash(ld_replica *r, uint32_t cap)
{
	client_ent *old = r->clients;
	uint32_t old_cap = r->clients_cap;
	client_ent *t = calloc(cap, sizeof *t);
	if (t == NULL)
		abort();
	r->clients = t;
	r->clients_cap = cap;
	r->nclients = 0;
	for (uint32_t i = 0; i < old_cap; i++)
		if (old[i].client_id != 0)
			*client_insert_slot(r, old[i].client_id) = old[i];
	free(old);
}

/* The entry for a client, made on first use. When the table is full the
 * client whose last command applied earliest is forgotten; every replica
 * applies the same ledger, so every replica forgets the same one. */
static client_ent *client_upsert(ld_replica *r, uint64_t id)
{
	client_ent *c = client_find(r, id);
	if (c != NULL)
		return c;
	if (r->nclients >= LD_CLIENTS_MAX) {
		client_ent *oldest = NULL;
		for (uint32_t i = 0; i < r->clients_cap; i++) {
			client_ent *x = &r->clients[i];
			if (x->client_id != 0 &&
			    (oldest == NULL || x->slot < oldest->slot ||
			     (x->slot == oldest->slot &&
			      x->client_id < oldest->client_id)))
				oldest = x;
		}
		client_remove(r, oldest);
	}
	if ((r->nclients + 1) * 2 > r->clients_cap)
		client_table_rehash(r,
				    r->clients_cap ? r->clients_cap * 2 : 64);
	client_ent *c2 = client_insert_slot(r, id);
	c2->seq = 0;
	c2->slot = 0;
	c2->result_len = 0;
	return c2;
}

/* ---- output helpers ----------------------------------------------------- */

static ld_msg *msg_new(ld_replica *r, ld_msg_type type, uint32_t to)
{
	ld_msg *m = calloc(1, sizeof *m);
	if (m == NULL)
		abort();
	m->type = type;
	m->from = r->cfg.id;
	m->to = to;
	m->commit = r->commit;
	m->base = r->snap_base;
	return m;
}

static void handle_msg(ld_replica *r, const ld_msg *m, ld_actions *out);

static void emit(ld_replica *r, ld_actions *out, ld_msg *m)
{
	if (m->to == r->cfg.id) {
		handle_msg(r, m, out);
		ld_msg_free(m);
		return;
	}
	out->msgs = grow(out->msgs, &out->msgs_cap, out->nmsgs + 1,
			 sizeof *out->msgs);
	out->msgs[out->nmsgs++] = m;
}

/* Sends m once every write made so far is durable. */
static void emit_after_sync(ld_replica *r, ld_actions *out, ld_msg *m)
{
	if (r->last_write_id <= r->durable_id) {
		emit(r, out, m);
		return;
	}
	if (r->nheld == r->held_cap) {
		uint32_t cap = r->held_cap ? r->held_cap * 2 : 16;
		held_msg *h = realloc(r->held, cap * sizeof *h);
		if (h == NULL)
			abort();
		r->held = h;
		r->held_cap = cap;
	}
	r->held[r->nheld++] = (held_msg){m, r->last_write_id};
}

static void persist(ld_replica *r, ld_actions *out, ld_record rec)
{
	if (out->write_id == 0 || out->write_id != r->last_write_id)
		out->write_id = ++r->last_write_id;
	out->recs = grow(out->recs, &out->recs_cap, out->nrecs + 1,
			 sizeof *out->recs);
	out->recs[out->nrecs++] = rec;
}

static void persist_promise(ld_replica *r, ld_actions *out)
{
	persist(r, out,
		(ld_record){.type = LD_REC_PROMISE, .ballot = r->promised});
}

static void reply(ld_replica *r, ld_actions *out, uint64_t client_id,
		  uint64_t seq, ld_reply_status st, const client_ent *c)
{
	out->replies = grow(out->replies, &out->replies_cap, out->nreplies + 1,
			    sizeof *out->replies);
	ld_reply *rp = &out->replies[out->nreplies++];
	memset(rp, 0, offsetof(ld_reply, result));
	rp->client_id = client_id;
	rp->seq = seq;
	rp->status = st;
	rp->leader_hint = r->role == LD_LEADER ? (int32_t)r->cfg.id : r->leader;
	if (c != NULL) {
		rp->slot = c->slot;
		rp->result_len = c->result_len;
		memcpy(rp->result, c->result, c->result_len);
	}
}

/* ---- waiters and the pending queue -------------------------------------- */

static int waiter_find(ld_replica *r, uint64_t client_id, uint64_t seq)
{
	for (uint32_t i = 0; i < r->nwaiters; i++)
		if (r->waiters[i].client_id == client_id &&
		    r->waiters[i].seq == seq)
			return (int)i;
	return -1;
}

static void waiter_add(ld_replica *r, uint64_t client_id, uint64_t seq)
{
	if (r->nwaiters == r->waiters_cap) {
		uint32_t cap = r->waiters_cap ? r->waiters_cap * 2 : 16;
		waiter *w = realloc(r->waiters, cap * sizeof *w);
		if (w == NULL)
			abort();
		r->waiters = w;
		r->waiters_cap = cap;
	}
	r->waiters[r->nwaiters++] = (waiter){client_id, seq};
}

static void waiter_remove(ld_replica *r, int i)
{
	r->waiters[i] = r->waiters[--r->nwaiters];
}

static void pending_drop_all(ld_replica *r, ld_actions *out)
{
	while (r->pending_n > 0) {
		pending_cmd *p = &r->pending[r->pending_head];
		free((void *)p->cmd.data);
		r->pending_head = (r->pending_head + 1) % LD_PENDING_CMDS_MAX;
		r->pending_n--;
	}
	/* Whoever waits here will retry elsewhere with the same (client, seq);
	 * the client table makes sure a command is applied once. */
	for (uint32_t i = 0; i < r->nwaiters; i++)
		reply(r, out, r->waiters[i].client_id, r->waiters[i].seq,
		      LD_REPLY_NOT_LEADER, NULL);
	r->nwaiters = 0;
}

/* ---- config and lifecycle ----------------------------------------------- */

void ld_config_default(ld_config *cfg, uint32_t id, uint32_t nreplicas)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->id = id;
	cfg->nreplicas = nreplicas;
	cfg->seed = 0x5eed0000u + id;
	cfg->heartbeat_us = 50000;
	cfg->election_timeout_us = 300000;
	cfg->retry_us = 100000;
	cfg->window_slots = 16;
	cfg->batch_cmds = LD_BATCH_CMDS_MAX;
	cfg->snapshot_every_slots = LD_SNAPSHOT_EVERY_SLOTS;
	cfg->digest_every_slots = LD_DIGEST_EVERY_SLOTS;
	cfg->mutant = LD_MUTANT_NONE;
}

static uint64_t election_delay(ld_replica *r)
{
	uint64_t t = r->cfg.election_timeout_us;
	return t + rng_next(r) % t;
}

ld_replica *ld_replica_new(const ld_config *cfg, ld_sm *sm)
{
	if (cfg->nreplicas == 0 || cfg->nreplicas > LD_REPLICAS_MAX ||
	    cfg->id >= cfg->nreplicas || sm == NULL || sm->ops == NULL ||
	    cfg->window_slots == 0 || cfg->window_slots > LD_WINDOW_SLOTS_MAX ||
	    cfg->batch_cmds == 0 || cfg->batch_cmds > LD_BATCH_CMDS_MAX ||
	    cfg->election_timeout_us == 0 || cfg->heartbeat_us == 0 ||
	    cfg->retry_us == 0 || cfg->snapshot_every_slots == 0 ||
	    cfg->digest_every_slots == 0 ||
	    cfg->snapshot_every_slots + LD_LOG_TAIL_SLOTS +
			    LD_WINDOW_SLOTS_MAX >=
		    LD_LOG_SLOTS_MAX)
		return NULL;
	ld_replica *r = calloc(1, sizeof *r);
	if (r == NULL)
		return NULL;
	r->pending = calloc(LD_PENDING_CMDS_MAX, sizeof *r->pending);
	if (r->pending == NULL) {
		free(r);
		return NULL;
	}
	r->cfg = *cfg;
	r->sm = sm;
	/* P2: any two majorities share an acceptor. */
	r->quorum = cfg->nreplicas / 2 + 1;
	if (MUTANT(r, LD_MUTANT_MINORITY_QUORUM))
		r->quorum = cfg->nreplicas / 2;
	r->rng = cfg->seed ^ ((uint64_t)cfg->id << 32);
	r->log_start = 1;
	r->role = LD_FOLLOWER;
	r->leader = -1;
	r->known_commit_from = -1;
	r->catchup_to = -1;
	r->election_at_us = UINT64_MAX; /* set at the first step */
	return r;
}

void ld_replica_free(ld_replica *r)
{
	if (r == NULL)
		return;
	for (uint32_t i = 0; i < LD_LOG_SLOTS_MAX; i++)
		entry_clear(&r->log[i]);
	for (uint32_t i = 0; i < r->nheld; i++)
		ld_msg_free(r->held[i].msg);
	while (r->pending_n > 0) {
		free((void *)r->pending[r->pending_head].cmd.data);
		r->pending_head = (r->pending_head + 1) % LD_PENDING_CMDS_MAX;
		r->pending_n--;
	}
	free(r->pending);
	free(r->held);
	free(r->preads);
	free(r->waiters);
	free(r->clients);
	free(r->snap);
	free(r);
}

/* ---- snapshots: client table + state machine ---------------------------- */

#define SNAP_MAGIC 0x4c44534eu /* "LDSN" */

static void put_u32(uint8_t **p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		*(*p)++ = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t **p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		*(*p)++ = (uint8_t)(v >> (8 * i));
}

static int get_u32(const uint8_t **p, const uint8_t *end, uint32_t *v)
{
	if (end - *p < 4)
		return -1;
	*v = 0;
	for (int i = 0; i < 4; i++)
		*v |= (uint32_t)(*(*p)++) << (8 * i);
	return 0;
}

static int get_u64(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	if (end - *p < 8)
		return -1;
	*v = 0;
	for (int i = 0; i < 8; i++)
		*v |= (uint64_t)(*(*p)++) << (8 * i);
	return 0;
}

/* Encodes the applied state at r->commit. 0, or -1 when out of memory. */
static int snapshot_encode(ld_replica *r, uint8_t **out, size_t *len)
{
	uint8_t *smb = NULL;
	size_t smlen = 0;
	if (r->sm->ops->snapshot(r->sm, &smb, &smlen) != 0)
		return -1;
	size_t n = 4 + 4 + 8;
	for (uint32_t i = 0; i < r->clients_cap; i++)
		if (r->clients[i].client_id != 0)
			n += 8 + 8 + 8 + 4 + r->clients[i].result_len;
	n += smlen;
	uint8_t *buf = malloc(n), *p = buf;
	if (buf == NULL) {
		free(smb);
		return -1;
	}
	put_u32(&p, SNAP_MAGIC);
	put_u32(&p, r->nclients);
	put_u64(&p, r->commit);
	for (uint32_t i = 0; i < r->clients_cap; i++) {
		const client_ent *c = &r->clients[i];
		if (c->client_id == 0)
			continue;
		put_u64(&p, c->client_id);
		put_u64(&p, c->seq);
		put_u64(&p, c->slot);
		put_u32(&p, c->result_len);
		memcpy(p, c->result, c->result_len);
		p += c->result_len;
	}
	if (smlen > 0)
		memcpy(p, smb, smlen);
	p += smlen;
	assert((size_t)(p - buf) == n);
	free(smb);
	*out = buf;
	*len = n;
	return 0;
}

/* Replaces the client table and the state machine from a snapshot. Validates
 * everything before changing anything. */
static int snapshot_decode(ld_replica *r, const uint8_t *buf, size_t len,
			   uint64_t base)
{
	const uint8_t *p = buf, *end = buf + len;
	uint32_t magic, n;
	uint64_t at;
	if (get_u32(&p, end, &magic) || magic != SNAP_MAGIC ||
	    get_u32(&p, end, &n) || n > LD_CLIENTS_MAX ||
	    get_u64(&p, end, &at) || at != base)
		return -1;
	const uint8_t *clients = p;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t id = 0, seq = 0, slot = 0;
		uint32_t rl = 0;
		if (get_u64(&p, end, &id) || id == 0 ||
		    get_u64(&p, end, &seq) || get_u64(&p, end, &slot) ||
		    get_u32(&p, end, &rl) || rl > LD_RESULT_BYTES_MAX ||
		    (size_t)(end - p) < rl)
			return -1;
		p += rl;
	}
	if (r->sm->ops->restore(r->sm, p, (size_t)(end - p)) != 0)
		return -1;
	uint32_t cap = 64;
	while (cap < 2 * (n + 1))
		cap *= 2;
	free(r->clients);
	r->clients = NULL;
	r->clients_cap = 0;
	r->nclients = 0;
	client_table_rehash(r, cap);
	p = clients;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t id = 0, seq = 0, slot = 0;
		uint32_t rl = 0;
		get_u64(&p, end, &id);
		get_u64(&p, end, &seq);
		get_u64(&p, end, &slot);
		get_u32(&p, end, &rl);
		client_ent *c = client_find(r, id);
		if (c == NULL)
			c = client_insert_slot(r, id);
		c->seq = seq;
		c->slot = slot;
		c->result_len = rl;
		memcpy(c->result, p, rl);
		p += rl;
	}
	return 0;
}

static void ckpt_note(ld_replica *r, uint64_t slot, uint64_t digest);

/* Installs a snapshot at base (> commit). Returns 0 or -1 (malformed). */
static int install_snapshot(ld_replica *r, const uint8_t *snap, size_t len,
			    uint64_t base)
{
	if (base <= r->commit || len == 0 || len > LD_SNAPSHOT_BYTES_MAX)
		return -1;
	if (snapshot_decode(r, snap, len, base) != 0)
		return -1;
	uint8_t *copy = malloc(len);
	if (copy == NULL)
		abort();
	memcpy(copy, snap, len);
	free(r->snap);
	r->snap = copy;
	r->snap_len = len;
	r->snap_base = base;
	r->commit = base;
	log_truncate(r, base + 1);
	ckpt_note(r, base, r->sm->ops->digest(r->sm));
	return 0;
}

/* ---- state digests (corruption caught) ---------------------------------- */

/* Remembers the state digest right after slot, if slot is a checkpoint. */
static void ckpt_note(ld_replica *r, uint64_t slot, uint64_t digest)
{
	if (slot == 0 || slot % r->cfg.digest_every_slots != 0)
		return;
	r->ckpts[r->ckpt_next] = (struct ckpt){slot, digest};
	r->ckpt_next = (r->ckpt_next + 1) % LD_DIGEST_KEEP;
}

static const struct ckpt *ckpt_find(const ld_replica *r, uint64_t slot)
{
	if (slot == 0)
		return NULL;
	for (uint32_t i = 0; i < LD_DIGEST_KEEP; i++)
		if (r->ckpts[i].slot == slot)
			return &r->ckpts[i];
	return NULL;
}

static const struct ckpt *ckpt_latest(const ld_replica *r)
{
	const struct ckpt *best = NULL;
	for (uint32_t i = 0; i < LD_DIGEST_KEEP; i++)
		if (r->ckpts[i].slot != 0 &&
		    (best == NULL || r->ckpts[i].slot > best->slot))
			best = &r->ckpts[i];
	return best;
}

static void digest_alarm_raise(ld_replica *r, ld_digest_alarm a)
{
	if (a > r->digest_alarm)
		r->digest_alarm = a;
}

/* Leader: the digests reported at slot, ours among them. A digest that a
 * quorum shares is the cell's state there (Paxos Made Live compares the
 * replicas' databases); a replica with another one is outvoted. */
static void digest_compare(ld_replica *r, uint64_t slot)
{
	if (MUTANT(r, LD_MUTANT_IGNORE_DIGEST))
		return;
	const struct ckpt *own = ckpt_find(r, slot);
	if (own == NULL)
		return;
	uint64_t d[LD_REPLICAS_MAX] = {0};
	bool have[LD_REPLICAS_MAX] = {false};
	for (uint32_t j = 0; j < r->cfg.nreplicas; j++) {
		if (j == r->cfg.id) {
			d[j] = own->digest;
			have[j] = true;
		} else if (r->peer_ckpt[j].slot == slot) {
			d[j] = r->peer_ckpt[j].digest;
			have[j] = true;
		}
	}
	for (uint32_t i = 0; i < r->cfg.nreplicas; i++) {
		if (!have[i])
			continue;
		uint32_t same = 0;
		for (uint32_t j = 0; j < r->cfg.nreplicas; j++)
			same += have[j] && d[j] == d[i];
		if (same < r->quorum)
			continue;
		/* d[i] is the quorum's: the cell's state at slot. Followers
		 * compare theirs with it (the verified digest we announce). */
		if (d[r->cfg.id] != d[i])
			digest_alarm_raise(r, LD_DIGEST_DIVERGED);
		else if (slot > r->verified.slot)
			r->verified = (struct ckpt){slot, d[i]};
		return;
	}
	for (uint32_t j = 0; j < r->cfg.nreplicas; j++)
		if (have[j] && d[j] != own->digest)
			digest_alarm_raise(r, LD_DIGEST_MISMATCH);
}

/* ---- restore ------------------------------------------------------------ */

static void apply_value(ld_replica *r, ld_actions *out, uint64_t slot,
			ld_value *v);

/* Applies what the restored hints say is chosen, in order. Nothing is sent
 * or written: the actions are thrown away (no client waits yet). */
static void restore_apply(ld_replica *r)
{
	ld_actions scratch;
	ld_actions_init(&scratch);
	for (;;) {
		entry *e = entry_at(r, r->commit + 1);
		if (e == NULL || e->chosen == NULL)
			break;
		r->commit++;
		apply_value(r, &scratch, r->commit, e->chosen);
	}
	if (r->commit > r->known_commit)
		r->known_commit = r->commit;
	ld_actions_free(&scratch);
}

int ld_replica_restore(ld_replica *r, const ld_record *rec)
{
	switch (rec->type) {
	case LD_REC_PROMISE:
		if (MUTANT(r, LD_MUTANT_FORGET_PROMISE))
			return 0;
		if (ld_ballot_cmp(rec->ballot, r->promised) > 0)
			r->promised = rec->ballot;
		break;
	case LD_REC_VOTE: {
		if (rec->value == NULL || rec->slot == 0)
			return -1;
		if (rec->slot <= r->snap_base)
			return 0;
		entry *e = entry_get(r, rec->slot);
		if (e == NULL)
			return -1;
		if (ballot_zero(e->vballot) ||
		    ld_ballot_cmp(rec->ballot, e->vballot) >= 0) {
			ld_value_unref(e->vvalue);
			e->vballot = rec->ballot;
			e->vvalue = ld_value_ref(rec->value);
		}
		/* A vote in ballot b is also a promise not to go below b. */
		if (!MUTANT(r, LD_MUTANT_FORGET_PROMISE) &&
		    ld_ballot_cmp(rec->ballot, r->promised) > 0)
			r->promised = rec->ballot;
		break;
	}
	case LD_REC_SNAPSHOT:
		if (rec->slot <= r->snap_base)
			return 0;
		/* Hints replayed before it (a disk that keeps write order)
		 * may have applied past it: start again from the snapshot,
		 * then apply the chosen slots after it once more. */
		r->commit = r->snap_base;
		if (install_snapshot(r, rec->snap, rec->snap_len, rec->slot))
			return -1;
		restore_apply(r);
		break;
	case LD_REC_JOINED:
		r->joined = true;
		return 0;
	case LD_REC_CHOSEN: {
		if (rec->slot == 0)
			return -1;
		if (rec->slot <= r->commit)
			return 0;
		if (rec->value != NULL) {
			/* The chosen value itself: a fact, whatever we voted.
			 */
			entry *e = entry_get(r, rec->slot);
			if (e != NULL && e->chosen == NULL) {
				e->chosen = ld_value_ref(rec->value);
				restore_apply(r);
			}
			return 0;
		}
		entry *e = entry_at(r, rec->slot);
		/* Only the very vote the hint names: a later vote in another
		 * ballot (restored before it, from the same key) may hold a
		 * value from a ballot below the one that chose, so a hint
		 * whose ballot differs says nothing. One proposal per
		 * (slot, ballot) makes the ballot name the value. */
		if (e == NULL || e->chosen != NULL || e->vvalue == NULL ||
		    ld_ballot_cmp(e->vballot, rec->ballot) != 0)
			return 0;
		e->chosen = ld_value_ref(e->vvalue);
		restore_apply(r);
		return 0;
	}
	default:
		return -1;
	}
	if (r->promised.round > r->max_round)
		r->max_round = r->promised.round;
	return 0;
}

/* ---- learning and applying ---------------------------------------------- */

static void maybe_snapshot(ld_replica *r, ld_actions *out)
{
	if (r->commit - r->snap_base < r->cfg.snapshot_every_slots)
		return;
	uint8_t *buf;
	size_t len;
	if (snapshot_encode(r, &buf, &len) != 0)
		return; /* out of memory: try again after the next decree */
	uint8_t *copy = malloc(len);
	if (copy == NULL) {
		free(buf);
		return;
	}
	memcpy(copy, buf, len);
	free(r->snap);
	r->snap = buf;
	r->snap_len = len;
	r->snap_base = r->commit;
	persist(r, out,
		(ld_record){.type = LD_REC_SNAPSHOT,
			    .slot = r->snap_base,
			    .snap_len = (uint32_t)len,
			    .snap = copy});
	if (r->snap_base + 1 > LD_LOG_TAIL_SLOTS)
		log_truncate(r, r->snap_base + 1 - LD_LOG_TAIL_SLOTS);
}

static void apply_value(ld_replica *r, ld_actions *out, uint64_t slot,
			ld_value *v)
{
	for (uint32_t i = 0; i < v->ncmds; i++) {
		const ld_cmd *cmd = &v->cmds[i];
		client_ent *c = client_upsert(r, cmd->client_id);
		if (cmd->seq > c->seq) {
			/* First time this command reaches the ledger. */
			uint8_t res[LD_RESULT_BYTES_MAX];
			size_t n = r->sm->ops->apply(r->sm, slot, cmd, res,
						     sizeof res);
			assert(n <= LD_RESULT_BYTES_MAX);
			c->seq = cmd->seq;
			c->slot = slot;
			c->result_len = (uint32_t)n;
			memcpy(c->result, res, n);
		}
		int w = waiter_find(r, cmd->client_id, cmd->seq);
		if (w >= 0) {
			reply(r, out, cmd->client_id, cmd->seq, LD_REPLY_OK,
			      cmd->seq == c->seq ? c : NULL);
			waiter_remove(r, w);
		}
	}
	out->chosen = grow(out->chosen, &out->chosen_cap, out->nchosen + 1,
			   sizeof *out->chosen);
	uint64_t d = r->sm->ops->digest(r->sm);
	out->chosen[out->nchosen++] = (ld_chosen){
		.slot = slot,
		.value = ld_value_ref(v),
		.sm_digest = d,
	};
	ckpt_note(r, slot, d);
}

/* Applies every chosen slot after commit, in order. */
static void advance(ld_replica *r, ld_actions *out)
{
	for (;;) {
		entry *e = entry_at(r, r->commit + 1);
		if (e == NULL || e->chosen == NULL)
			break;
		r->commit++;
		apply_value(r, out, r->commit, e->chosen);
		/* A hint for restore, so that after a restart this slot is
		 * applied from the disk at once: the ballot of our own vote
		 * when it holds the chosen value (the hint goes after the
		 * vote, so no prefix of the writes holds it without the
		 * vote), else the value itself (learned by catch-up). */
		if (e->vvalue != NULL && !ballot_zero(e->vballot) &&
		    (e->vvalue == e->chosen ||
		     ld_value_equal(e->vvalue, e->chosen)))
			persist(r, out,
				(ld_record){.type = LD_REC_CHOSEN,
					    .slot = r->commit,
					    .ballot = e->vballot});
		else
			persist(r, out,
				(ld_record){.type = LD_REC_CHOSEN,
					    .slot = r->commit,
					    .value = ld_value_ref(e->chosen)});
		/* The proposer's bookkeeping for this slot is finished. */
		ld_value_unref(e->pvalue);
		e->pvalue = NULL;
		ld_value_unref(e->p1value);
		e->p1value = NULL;
	}
	if (r->commit > r->known_commit)
		r->known_commit = r->commit;
	maybe_snapshot(r, out);
}

static void learn(ld_replica *r, uint64_t slot, ld_value *v)
{
	entry *e = entry_get(r, slot);
	if (e == NULL || e->chosen != NULL || slot <= r->commit)
		return;
	e->chosen = ld_value_ref(v);
}

/* ---- roles -------------------------------------------------------------- */

static void clear_proposer_state(ld_replica *r)
{
	for (uint32_t i = 0; i < LD_LOG_SLOTS_MAX; i++) {
		entry *e = &r->log[i];
		ld_value_unref(e->pvalue);
		e->pvalue = NULL;
		e->pballot = (ld_ballot){0, 0};
		e->acks = 0;
		ld_value_unref(e->p1value);
		e->p1value = NULL;
		e->p1ballot = (ld_ballot){0, 0};
	}
}

static void reads_fail_all(ld_replica *r, ld_actions *out);

static void become_follower(ld_replica *r, ld_actions *out, uint64_t now)
{
	reads_fail_all(r, out);
	if (r->role != LD_FOLLOWER) {
		clear_proposer_state(r);
		pending_drop_all(r, out);
	}
	r->role = LD_FOLLOWER;
	r->election_at_us = now + election_delay(r);
}

static void send_prepares(ld_replica *r, ld_actions *out)
{
	for (uint32_t j = 0; j < r->cfg.nreplicas; j++) {
		if (j == r->cfg.id || (r->promises & (1u << j)))
			continue;
		ld_msg *m = msg_new(r, LD_MSG_PREPARE, j);
		m->ballot = r->ballot;
		m->slot = r->p1_from;
		/* P1 across restarts: nobody sees a ballot before our own
		 * promise of it is durable (the Part-Time Parliament's priest
		 * writes lastTried first). Otherwise a crash could make us
		 * campaign with the same ballot again and choose a second
		 * value under it. */
		emit_after_sync(r, out, m);
	}
	r->p1_sent_us = r->now_us;
}

static void start_candidacy(ld_replica *r, ld_actions *out)
{
	reads_fail_all(r, out);
	clear_proposer_state(r);
	uint64_t round = r->max_round;
	if (r->promised.round > round)
		round = r->promised.round;
	if (round + 1 >= LD_ROUND_MAX) {
		/* Rounds above LD_ROUND_MAX are refused from the wire; a cell
		 * that got here (2^62 elections, or a forged ballot) cannot
		 * campaign, and must not wrap to round 0. */
		become_follower(r, out, r->now_us);
		return;
	}
	r->role = LD_CANDIDATE;
	r->max_round = round + 1;
	/* P1: the replica id makes this ballot unique. */
	r->ballot = (ld_ballot){round + 1, r->cfg.id};
	if (MUTANT(r, LD_MUTANT_SHARED_BALLOTS))
		r->ballot.id = 0;
	r->p1_from = r->commit + 1;
	r->p1_max = r->commit;
	r->promises = 0;
	r->cand_started_us = r->now_us;
	r->leader = -1;
	/* Our own acceptor answers through the same path as the others. */
	ld_msg *self = msg_new(r, LD_MSG_PREPARE, r->cfg.id);
	self->ballot = r->ballot;
	self->slot = r->p1_from;
	emit(r, out, self);
	if (r->role == LD_CANDIDATE)
		send_prepares(r, out);
}

static void send_accept(ld_replica *r, ld_actions *out, entry *e, uint32_t to)
{
	ld_msg *m = msg_new(r, LD_MSG_ACCEPT, to);
	m->ballot = r->ballot;
	m->slot = e->slot;
	m->value = ld_value_ref(e->pvalue);
	emit(r, out, m);
}

static void check_chosen(ld_replica *r, entry *e)
{
	if (e->chosen != NULL)
		return;
	uint32_t need = r->quorum;
	if (popcount32(e->acks) >= need) {
		e->chosen = ld_value_ref(e->pvalue);
	}
}

/* Phase 2a for one slot: our own acceptor votes first (durably), then the
 * others. */
static void propose(ld_replica *r, ld_actions *out, uint64_t slot, ld_value *v)
{
	entry *e = entry_get(r, slot);
	assert(e != NULL);
	assert(e->chosen == NULL);
	ld_value_unref(e->pvalue);
	e->pvalue = ld_value_ref(v);
	e->pballot = r->ballot;
	e->acks = 0;
	e->sent_us = r->now_us;
	if (MUTANT(r, LD_MUTANT_EARLY_CHOSEN))
		e->chosen = ld_value_ref(v);
	for (uint32_t j = 0; j < r->cfg.nreplicas; j++)
		send_accept(r, out, e, j);
}

static void send_commits(ld_replica *r, ld_actions *out)
{
	r->hb_seq++;
	r->hb_wanted = false;
	for (uint32_t j = 0; j < r->cfg.nreplicas; j++) {
		if (j == r->cfg.id)
			continue;
		ld_msg *m = msg_new(r, LD_MSG_COMMIT, j);
		m->ballot = r->ballot;
		/* The highest slot this leader has proposed: a recovering
		 * replica learns up to it before it votes (paxos.h). */
		m->slot = r->next_slot > 0 ? r->next_slot - 1 : 0;
		m->hb = r->hb_seq;
		const struct ckpt *c = ckpt_latest(r);
		if (c != NULL) {
			m->dslot = c->slot;
			m->digest = c->digest;
		}
		m->vslot = r->verified.slot;
		m->vdigest = r->verified.digest;
		emit(r, out, m);
	}
	r->heartbeat_at_us = r->now_us + r->cfg.heartbeat_us;
}

/* Fills the pipeline from the pending queue, many commands per decree. */
static void flush_pending(ld_replica *r, ld_actions *out)
{
	while (r->role == LD_LEADER && r->pending_n > 0 &&
	       r->next_slot - 1 - r->commit < r->cfg.window_slots &&
	       entry_get(r, r->next_slot) != NULL) {
		uint32_t n = r->pending_n;
		if (n > r->cfg.batch_cmds)
			n = r->cfg.batch_cmds;
		ld_cmd cmds[LD_BATCH_CMDS_MAX];
		for (uint32_t i = 0; i < n; i++)
			cmds[i] = r->pending[(r->pending_head + i) %
					     LD_PENDING_CMDS_MAX]
					  .cmd;
		ld_value *v = ld_value_new(cmds, n);
		if (v == NULL)
			abort();
		for (uint32_t i = 0; i < n; i++) {
			free((void *)r->pending[r->pending_head].cmd.data);
			r->pending_head =
				(r->pending_head + 1) % LD_PENDING_CMDS_MAX;
		}
		r->pending_n -= n;
		uint64_t slot = r->next_slot++;
		propose(r, out, slot, v);
		ld_value_unref(v);
		if (r->role != LD_LEADER)
			break;
	}
}

static void become_leader(ld_replica *r, ld_actions *out)
{
	r->role = LD_LEADER;
	r->leader = (int32_t)r->cfg.id;
	r->leader_ballot = r->ballot;
	for (uint32_t j = 0; j < r->cfg.nreplicas; j++) {
		r->peer_heard_us[j] = r->now_us;
		r->hb_acked[j] = 0;
	}
	/* Slots phase 1 reported chosen are applied before anything new. */
	advance(r, out);
	uint64_t from = r->p1_from, to = r->p1_max;
	if (r->commit + 1 > from)
		from = r->commit + 1;
	r->next_slot = (to > r->commit ? to : r->commit) + 1;
	/* Re-propose every slot the quorum reported, and fill the gaps
	 * between them with no-ops, before any new command. */
	for (uint64_t s = from; s <= to && r->role == LD_LEADER; s++) {
		entry *e = entry_get(r, s);
		assert(e != NULL);
		if (e->chosen != NULL)
			continue;
		ld_value *v = ld_value_noop();
		/* P3: the value of the highest-ballot vote, if any. */
		if (e->p1value != NULL && !MUTANT(r, LD_MUTANT_IGNORE_VOTES))
			v = e->p1value;
		ld_value_ref(v);
		propose(r, out, s, v);
		ld_value_unref(v);
	}
	if (r->role != LD_LEADER)
		return;
	send_commits(r, out);
	flush_pending(r, out);
}

/* ---- message handlers --------------------------------------------------- */

static void note_ballot(ld_replica *r, ld_ballot b)
{
	if (b.round > r->max_round)
		r->max_round = b.round;
}

static bool live_leader_other_than(ld_replica *r, uint32_t from)
{
	if (r->role == LD_LEADER)
		return from != r->cfg.id;
	return r->leader >= 0 && (uint32_t)r->leader != from &&
	       (uint32_t)r->leader != r->cfg.id &&
	       r->now_us < r->heard_us + r->cfg.election_timeout_us;
}

static void reject(ld_replica *r, ld_actions *out, const ld_msg *m)
{
	ld_msg *x = msg_new(r, LD_MSG_REJECT, m->from);
	x->ballot = r->promised;
	x->slot = m->slot;
	emit(r, out, x);
}

/* A message from a leader (or would-be leader) at ballot b >= our promise. */
static void heard_leader(ld_replica *r, ld_actions *out, const ld_msg *m)
{
	if (m->from == r->cfg.id)
		return;
	if (r->role != LD_FOLLOWER && ld_ballot_cmp(m->ballot, r->ballot) >= 0)
		become_follower(r, out, r->now_us);
	if (r->role == LD_FOLLOWER) {
		r->leader = (int32_t)m->from;
		r->leader_ballot = m->ballot;
		r->heard_us = r->now_us;
		r->election_at_us = r->now_us + election_delay(r);
	}
}

static void note_commit(ld_replica *r, const ld_msg *m)
{
	/* Prefer the current leader as the source of catch-up; otherwise the
	 * latest replica to claim the most (one that claimed it earlier may
	 * have lost its disk since, and can no longer answer). */
	if (m->commit > r->known_commit ||
	    (m->commit > r->commit && m->commit == r->known_commit) ||
	    (m->commit > r->commit && (int32_t)m->from == r->leader)) {
		if (m->commit > r->known_commit)
			r->known_commit = m->commit;
		r->known_commit_from = (int32_t)m->from;
	}
}

static void maybe_catchup(ld_replica *r, ld_actions *out)
{
	if (r->role == LD_LEADER || r->known_commit <= r->commit ||
	    r->known_commit_from < 0 ||
	    (uint32_t)r->known_commit_from == r->cfg.id)
		return;
	if (r->catchup_sent_us != 0 &&
	    r->now_us < r->catchup_sent_us + r->cfg.retry_us)
		return;
	ld_msg *m =
		msg_new(r, LD_MSG_CATCHUP_REQ, (uint32_t)r->known_commit_from);
	m->slot = r->commit + 1;
	r->catchup_sent_us = r->now_us;
	r->catchup_to = r->known_commit_from;
	r->catchup_asked_us = r->now_us;
	emit(r, out, m);
}

static void requeue_proposals(ld_replica *r, ld_actions *out);

/* ---- recovery from an empty disk (paxos.h) ------------------------------ */

static bool holds_votes(const ld_replica *r)
{
	for (uint32_t i = 0; i < LD_LOG_SLOTS_MAX; i++)
		if (r->log[i].slot != 0 && !ballot_zero(r->log[i].vballot))
			return true;
	return false;
}

/* Nothing chosen here, as far as this replica's disk knows: no vote, nothing
 * applied. (A promise alone chose nothing.) */
static bool replica_empty(const ld_replica *r)
{
	return r->commit == 0 && r->snap_base == 0 && !holds_votes(r);
}

/* From now on this replica promises and votes. b: the ballot it promises
 * at once (zero for a new cell). PROMISE before JOINED: a disk that keeps
 * a prefix of the writes never holds JOINED without the promise. */
static void join(ld_replica *r, ld_actions *out, ld_ballot b)
{
	r->joined = true;
	if (ld_ballot_cmp(b, r->promised) > 0) {
		r->promised = b;
		persist_promise(r, out);
	}
	note_ballot(r, b);
	persist(r, out, (ld_record){.type = LD_REC_JOINED});
	r->election_at_us = r->now_us + election_delay(r);
}

static void send_probes(ld_replica *r, ld_actions *out)
{
	r->probe_round++;
	/* Only answers to probes sent once every candidacy that could still
	 * count a promise this replica gave before it lost its disk has run
	 * out (one election timeout; twice that covers any drift we allow)
	 * bound what it promised (paxos.h). */
	if (r->probe_eligible_round == 0 &&
	    r->now_us >= r->started_us + 2 * r->cfg.election_timeout_us)
		r->probe_eligible_round = r->probe_round;
	for (uint32_t j = 0; j < r->cfg.nreplicas; j++) {
		if (j == r->cfg.id)
			continue;
		ld_msg *m = msg_new(r, LD_MSG_PROBE, j);
		m->slot = r->probe_round;
		emit(r, out, m);
	}
	r->probe_at_us = r->now_us + r->cfg.retry_us;
}

static void on_probe(ld_replica *r, const ld_msg *m, ld_actions *out)
{
	ld_msg *a = msg_new(r, LD_MSG_PROBE_ACK, m->from);
	a->ballot = r->promised;
	a->slot = m->slot;
	a->flags = (r->joined ? LD_FLAG_VOTER : 0) |
		   (holds_votes(r) ? LD_FLAG_HAS_VOTES : 0);
	emit(r, out, a);
	/* A recovering replica asks for a leader above M: run phase 1 again
	 * above it, as the current leader (the others still follow us). */
	if (r->role == LD_LEADER && !ballot_zero(m->ballot) &&
	    ld_ballot_cmp(m->ballot, r->ballot) >= 0) {
		requeue_proposals(r, out);
		start_candidacy(r, out);
	}
}

static void on_probe_ack(ld_replica *r, const ld_msg *m, ld_actions *out)
{
	(void)out;
	if (r->joined || m->slot == 0 || m->slot > r->probe_round ||
	    m->slot <= r->probe_acks[m->from].round)
		return;
	r->probe_acks[m->from].round = m->slot;
	r->probe_acks[m->from].promised = m->ballot;
	r->probe_acks[m->from].voter = (m->flags & LD_FLAG_VOTER) != 0;
	r->probe_acks[m->from].empty = !(m->flags & LD_FLAG_HAS_VOTES) &&
				       m->commit == 0 && m->base == 0;
}

/* A COMMIT from a leader while recovering: a leader above M ran its phase 1
 * without us (we answer none), so once we have learned what it proposed
 * then, we may vote. A leader at or below M is asked to go above it. */
static void recover_heard_leader(ld_replica *r, const ld_msg *m,
				 ld_actions *out)
{
	if (!r->recover_known)
		return;
	if (ld_ballot_cmp(m->ballot, r->recover_above) > 0) {
		if (ld_ballot_cmp(m->ballot, r->recover_ballot) > 0) {
			r->recover_ballot = m->ballot;
			r->recover_horizon = m->slot;
		}
		return;
	}
	if (r->now_us < r->nudge_at_us)
		return;
	ld_msg *p = msg_new(r, LD_MSG_PROBE, m->from);
	p->ballot = r->recover_above;
	emit(r, out, p);
	r->nudge_at_us = r->now_us + r->cfg.election_timeout_us;
}

/* Decides, after each step, whether a replica without JOINED may vote. */
static void recovery_step(ld_replica *r, ld_actions *out)
{
	if (r->joined)
		return;
	uint32_t n = r->cfg.nreplicas;
	if (n == 1 || MUTANT(r, LD_MUTANT_WIPED_VOTES)) {
		join(r, out, (ld_ballot){0, 0});
		return;
	}
	/* A new cell, or one that never chose anything: nobody holds a vote
	 * or has applied anything. A chosen value left votes on a majority,
	 * at least one of which kept its disk and would have said so. We
	 * join at the highest promise anyone reports: every ballot we may
	 * have promised in a life we forgot was promised by its proposer
	 * first, and that proposer answered (all did). */
	if (replica_empty(r)) {
		bool all = true;
		ld_ballot mx = r->promised;
		for (uint32_t j = 0; j < n; j++) {
			if (j == r->cfg.id)
				continue;
			if (r->probe_acks[j].round == 0 ||
			    !r->probe_acks[j].empty)
				all = false;
			else if (ld_ballot_cmp(r->probe_acks[j].promised, mx) >
				 0)
				mx = r->probe_acks[j].promised;
		}
		if (all) {
			join(r, out, mx);
			return;
		}
	}
	if (!r->recover_known && r->probe_eligible_round != 0) {
		uint32_t cnt = 0;
		ld_ballot mx = {0, 0};
		for (uint32_t j = 0; j < n; j++) {
			if (j == r->cfg.id || !r->probe_acks[j].voter ||
			    r->probe_acks[j].round < r->probe_eligible_round)
				continue;
			cnt++;
			if (ld_ballot_cmp(r->probe_acks[j].promised, mx) > 0)
				mx = r->probe_acks[j].promised;
		}
		/* n - q + 1 voters meet the q - 1 others that promised any
		 * ballot we promised and that reached a quorum. */
		if (cnt >= n - r->quorum + 1) {
			r->recover_known = true;
			r->recover_above = mx;
			note_ballot(r, mx);
		}
	}
	if (r->recover_known && !ballot_zero(r->recover_ballot) &&
	    r->commit >= r->recover_horizon)
		join(r, out, r->recover_ballot);
}

static void on_prepare(ld_replica *r, const ld_msg *m, ld_actions *out)
{
	/* Recovery: a replica that may have lost its promises and votes
	 * answers no phase 1 (paxos.h). Not answering is always safe. */
	if (!r->joined)
		return;
	int c = ld_ballot_cmp(m->ballot, r->promised);
	if (c < 0) {
		reject(r, out, m);
		return;
	}
	if (c > 0) {
		/* Leader stability: while we hear a live leader, we do not
		 * help anyone else depose it. Not answering is always safe. */
		if (live_leader_other_than(r, m->from))
			return;
		r->promised = m->ballot;
		persist_promise(r, out);
		if (r->role != LD_FOLLOWER && m->from != r->cfg.id &&
		    ld_ballot_cmp(m->ballot, r->ballot) > 0)
			become_follower(r, out, r->now_us);
	}
	/* The promise carries every vote from the asked slot on (P3), and
	 * what this replica knows chosen there: a replica that recovered from
	 * an empty disk holds no vote for the slots its lost votes helped
	 * choose, only the knowledge that they were chosen. It leaves once
	 * the promise and those votes are durable. */
	ld_msg *p = msg_new(r, LD_MSG_PROMISE, m->from);
	p->ballot = m->ballot;
	p->slot = m->slot;
	uint64_t lo = m->slot > r->log_start ? m->slot : r->log_start;
	uint32_t n = 0;
	for (uint64_t s = lo; s < r->log_start + LD_LOG_SLOTS_MAX; s++) {
		const entry *e = entry_at(r, s);
		if (e != NULL &&
		    (e->chosen != NULL || !ballot_zero(e->vballot)))
			n++;
	}
	if (n > 0) {
		p->votes = calloc(n, sizeof *p->votes);
		if (p->votes == NULL)
			abort();
		for (uint64_t s = lo; s < r->log_start + LD_LOG_SLOTS_MAX;
		     s++) {
			const entry *e = entry_at(r, s);
			if (e == NULL)
				continue;
			if (e->chosen != NULL)
				p->votes[p->nvotes++] = (ld_vote){
					.slot = s,
					.value = ld_value_ref(e->chosen),
					.chosen = true,
				};
			else if (!ballot_zero(e->vballot))
				p->votes[p->nvotes++] = (ld_vote){
					.slot = s,
					.ballot = e->vballot,
					.value = ld_value_ref(e->vvalue),
				};
		}
	}
	emit_after_sync(r, out, p);
}

static void on_promise(ld_replica *r, const ld_msg *m, ld_actions *out)
{
	if (r->role != LD_CANDIDATE || ld_ballot_cmp(m->ballot, r->ballot) != 0)
		return;
	/* A candidacy ends after an election timeout, even if the tick that
	 * ends it has not run yet (a paused process): recovery (paxos.h)
	 * counts on no promise being counted after that. */
	if (r->now_us >= r->cand_started_us + r->cfg.election_timeout_us)
		return;
	if (m->from != r->cfg.id)
		r->peer_heard_us[m->from] = r->now_us;
	if (m->base >= r->p1_from) {
		/* This acceptor compacted slots we have not learned: its votes
		 * there are gone, so catch up before leading. */
		note_commit(r, m);
		maybe_catchup(r, out);
		return;
	}
	for (uint32_t i = 0; i < m->nvotes; i++) {
		const ld_vote *v = &m->votes[i];
		if (v->slot < r->p1_from)
			continue;
		entry *e = entry_get(r, v->slot);
		if (e == NULL) {
			/* A vote beyond what we can hold: we are far behind. */
			note_commit(r, m);
			maybe_catchup(r, out);
			return;
		}
		if (v->chosen) {
			/* A fact, whatever anyone voted: no proposal needed. */
			learn(r, v->slot, v->value);
			if (v->slot > r->p1_max)
				r->p1_max = v->slot;
			continue;
		}
		if (ballot_zero(e->p1ballot) ||
		    ld_ballot_cmp(v->ballot, e->p1ballot) > 0) {
			ld_value_unref(e->p1value);
			e->p1ballot = v->ballot;
			e->p1value = ld_value_ref(v->value);
		}
		if (v->slot > r->p1_max)
			r->p1_max = v->slot;
	}
	r->promises |= 1u << m->from;
	if (popcount32(r->promises) >= r->quorum)
		become_leader(r, out);
}

static void on_accept(ld_replica *r, const ld_msg *m, ld_actions *out)
{
	if (!r->joined) {
		/* Recovering: no vote, but a leader worth catching up from. */
		heard_leader(r, out, m);
		note_commit(r, m);
		maybe_catchup(r, out);
		return;
	}
	if (ld_ballot_cmp(m->ballot, r->promised) < 0) {
		reject(r, out, m);
		return;
	}
	if (ld_ballot_cmp(m->ballot, r->promised) > 0) {
		/* Leader stability, as for a 1a: while we hear a live leader,
		 * a 2a from anyone else at a higher ballot goes unanswered
		 * (not answering is always safe), so one stray or forged
		 * ballot cannot raise our promise past the leader's. A leader
		 * does take it: someone above it leads, and it steps down. */
		if (r->role != LD_LEADER && live_leader_other_than(r, m->from))
			return;
		r->promised = m->ballot;
		persist_promise(r, out);
	}
	heard_leader(r, out, m);
	if (m->slot <= r->snap_base) {
		/* Already applied here: the sender is behind us. */
		reject(r, out, m);
		return;
	}
	entry *e = entry_get(r, m->slot);
	if (e == NULL) {
		/* Too far ahead to hold: do not vote; catch up instead. */
		note_commit(r, m);
		maybe_catchup(r, out);
		return;
	}
	ld_value_unref(e->vvalue);
	e->vballot = m->ballot;
	e->vvalue = ld_value_ref(m->value);
	persist(r, out,
		(ld_record){.type = LD_REC_VOTE,
			    .ballot = m->ballot,
			    .slot = m->slot,
			    .value = ld_value_ref(m->value)});
	ld_msg *a = msg_new(r, LD_MSG_ACCEPTED, m->from);
	a->ballot = m->ballot;
	a->slot = m->slot;
	if (MUTANT(r, LD_MUTANT_VOTE_BEFORE_SYNC))
		emit(r, out, a);
	else
		emit_after_sync(r, out, a);
	if (m->from != r->cfg.id) {
		note_commit(r, m);
		/* The leader's commit covers slots we voted for in its ballot.
		 */
		for (uint64_t s = r->commit + 1; s <= m->commit; s++) {
			entry *x = entry_at(r, s);
			if (x == NULL || x->vvalue == NULL ||
			    ld_ballot_cmp(x->vballot, m->ballot) != 0)
				break;
			learn(r, s, x->vvalue);
		}
		advance(r, out);
		maybe_catchup(r, out);
	}
}

static void on_accepted(ld_replica *r, const ld_msg *m, ld_actions *out)
{
	if (r->role != LD_LEADER || ld_ballot_cmp(m->ballot, r->ballot) != 0)
		return;
	r->peer_heard_us[m->from] = r->now_us;
	entry *e = entry_at(r, m->slot);
	if (e == NULL || e->pvalue == NULL ||
	    ld_ballot_cmp(e->pballot, r->ballot) != 0)
		return;
	e->acks |= 1u << m->from;
	check_chosen(r, e);
	advance(r, out);
	flush_pending(r, out);
}

/* Puts the commands of this leader's unchosen proposals back at the front
 * of the pending queue, in ledger order. */
static void requeue_proposals(ld_replica *r, ld_actions *out)
{
	for (uint64_t s = r->next_slot; s-- > r->commit + 1;) {
		entry *e = entry_at(r, s);
		if (e == NULL || e->chosen != NULL || e->pvalue == NULL ||
		    ld_ballot_cmp(e->pballot, r->ballot) != 0)
			continue;
		for (uint32_t i = e->pvalue->ncmds; i-- > 0;) {
			const ld_cmd *c = &e->pvalue->cmds[i];
			int w = waiter_find(r, c->client_id, c->seq);
			if (w < 0)
				continue; /* nobody waits here: not ours */
			uint8_t *data = NULL;
			if (r->pending_n >= LD_PENDING_CMDS_MAX ||
			    (data = malloc(c->len ? c->len : 1)) == NULL) {
				reply(r, out, c->client_id, c->seq,
				      LD_REPLY_BUSY, NULL);
				waiter_remove(r, w);
				continue;
			}
			if (c->len > 0)
				memcpy(data, c->data, c->len);
			r->pending_head =
				(r->pending_head + LD_PENDING_CMDS_MAX - 1) %
				LD_PENDING_CMDS_MAX;
			r->pending[r->pending_head].cmd = *c;
			r->pending[r->pending_head].cmd.data = data;
			r->pending_n++;
		}
	}
}

static void on_reject(ld_replica *r, const ld_msg *m, ld_actions *out)
{
	note_ballot(r, m->ballot);
	if (r->role == LD_FOLLOWER)
		return;
	if (ld_ballot_cmp(m->ballot, r->ballot) > 0) {
		if (r->role == LD_LEADER) {
			/* Someone promised a higher ballot (say a replica that
			 * campaigned while cut off). Run phase 1 again above
			 * it; the others still hear us and will promise. Our
			 * unchosen proposals may not survive phase 1, so their
			 * commands go back in the queue: their clients are
			 * still waiting here, and the client table makes a
			 * second copy in the ledger harmless. */
			requeue_proposals(r, out);
			start_candidacy(r, out);
		} else {
			/* Candidates back off: two that retried at once would
			 * duel for ever (the Part-Time Parliament's hazard). */
			become_follower(r, out, r->now_us);
		}
		return;
	}
	if (r->role == LD_LEADER && m->base >= m->slot && m->slot > r->commit) {
		/* The acceptor already applied a slot we are proposing: we
		 * are behind. Step down and catch up. */
		note_commit(r, m);
		become_follower(r, out, r->now_us);
		maybe_catchup(r, out);
	}
}

static void on_commit(ld_replica *r, const ld_msg *m, ld_actions *out)
{
	if (ld_ballot_cmp(m->ballot, r->promised) < 0) {
		/* A leader we can no longer serve: tell it, so it re-runs
		 * phase 1 above our promise instead of stalling. */
		reject(r, out, m);
		return;
	}
	heard_leader(r, out, m);
	if (r->role == LD_LEADER)
		return;
	note_commit(r, m);
	for (uint64_t s = r->commit + 1; s <= m->commit; s++) {
		entry *x = entry_at(r, s);
		if (x == NULL || x->vvalue == NULL ||
		    ld_ballot_cmp(x->vballot, m->ballot) != 0)
			break;
		learn(r, s, x->vvalue);
	}
	advance(r, out);
	maybe_catchup(r, out);
	if (!MUTANT(r, LD_MUTANT_IGNORE_DIGEST)) {
		/* A digest a quorum shares is the cell's state there: ours
		 * differing from it means our state is not the cell's. One
		 * that differs from the leader's alone may be the leader's
		 * fault: an alarm, not a verdict. */
		const struct ckpt *v = ckpt_find(r, m->vslot);
		if (v != NULL && v->digest != m->vdigest)
			digest_alarm_raise(r, LD_DIGEST_DIVERGED);
		const struct ckpt *own = ckpt_find(r, m->dslot);
		if (own != NULL && own->digest != m->digest)
			digest_alarm_raise(r, LD_DIGEST_MISMATCH);
	}
	if (!r->joined) {
		recover_heard_leader(r, m, out);
		/* No answer: a leader must not count a replica that cannot
		 * vote as live. */
		return;
	}
	ld_msg *a = msg_new(r, LD_MSG_COMMIT_ACK, m->from);
	a->ballot = m->ballot;
	a->hb = m->hb;
	const struct ckpt *c = ckpt_find(r, m->dslot);
	if (c != NULL) {
		a->dslot = c->slot;
		a->digest = c->digest;
	}
	emit(r, out, a);
}

static void on_commit_ack(ld_replica *r, const ld_msg *m, ld_actions *out)
{
	(void)out;
	if (r->role == LD_LEADER && ld_ballot_cmp(m->ballot, r->ballot) == 0) {
		r->peer_heard_us[m->from] = r->now_us;
		if (m->hb > r->hb_acked[m->from] && m->hb <= r->hb_seq)
			r->hb_acked[m->from] = m->hb;
		if (m->dslot != 0) {
			r->peer_ckpt[m->from] =
				(struct ckpt){m->dslot, m->digest};
			digest_compare(r, m->dslot);
			if (r->digest_alarm == LD_DIGEST_DIVERGED) {
				/* Outvoted: our table is not the cell's, so
				 * neither our lease timing nor our reads may
				 * be trusted. Let another lead. */
				r->leader = -1;
				become_follower(r, out, r->now_us);
			}
		}
	}
}

static void on_catchup_req(ld_replica *r, const ld_msg *m, ld_actions *out)
{
	if (m->slot > r->commit)
		return;
	if (m->slot < r->log_start || entry_at(r, m->slot) == NULL ||
	    entry_at(r, m->slot)->chosen == NULL) {
		if (r->snap == NULL || r->snap_base < m->slot)
			return;
		ld_msg *s = msg_new(r, LD_MSG_SNAPSHOT, m->from);
		s->snap = malloc(r->snap_len);
		if (s->snap == NULL)
			abort();
		memcpy(s->snap, r->snap, r->snap_len);
		s->snap_len = (uint32_t)r->snap_len;
		s->base = r->snap_base;
		emit(r, out, s);
		return;
	}
	uint64_t hi = r->commit;
	if (hi - m->slot + 1 > LD_CATCHUP_SLOTS_MAX)
		hi = m->slot + LD_CATCHUP_SLOTS_MAX - 1;
	ld_msg *c = msg_new(r, LD_MSG_CATCHUP, m->from);
	c->votes = calloc(hi - m->slot + 1, sizeof *c->votes);
	if (c->votes == NULL)
		abort();
	/* Bounded by bytes too, so the message always encodes; the requester
	 * asks again from where this one ends. */
	size_t bytes = 0;
	for (uint64_t s = m->slot; s <= hi; s++) {
		const entry *e = entry_at(r, s);
		if (e == NULL || e->chosen == NULL)
			break;
		size_t vb = 64;
		for (uint32_t i = 0; i < e->chosen->ncmds; i++)
			vb += 32 + e->chosen->cmds[i].len;
		if (c->nvotes > 0 && bytes + vb > LD_CATCHUP_BYTES_MAX)
			break;
		bytes += vb;
		c->votes[c->nvotes++] =
			(ld_vote){.slot = s, .value = ld_value_ref(e->chosen)};
	}
	c->slot = m->slot;
	emit(r, out, c);
}

/* Whether m answers the catch-up request this replica made last. */
static bool catchup_asked(const ld_replica *r, const ld_msg *m)
{
	return r->catchup_to == (int32_t)m->from &&
	       r->now_us < r->catchup_asked_us + r->cfg.election_timeout_us;
}

static void on_catchup(ld_replica *r, const ld_msg *m, ld_actions *out)
{
	/* A leader learns only from its own quorums (see the top). */
	if (r->role == LD_LEADER || !catchup_asked(r, m))
		return;
	note_commit(r, m);
	for (uint32_t i = 0; i < m->nvotes; i++)
		learn(r, m->votes[i].slot, m->votes[i].value);
	advance(r, out);
	r->catchup_sent_us = 0;
	maybe_catchup(r, out);
}

static void on_snapshot(ld_replica *r, const ld_msg *m, ld_actions *out)
{
	if (r->role == LD_LEADER || m->base <= r->commit ||
	    !catchup_asked(r, m))
		return;
	note_commit(r, m);
	if (install_snapshot(r, m->snap, m->snap_len, m->base) != 0)
		return;
	uint8_t *copy = malloc(m->snap_len);
	if (copy == NULL)
		abort();
	memcpy(copy, m->snap, m->snap_len);
	persist(r, out,
		(ld_record){.type = LD_REC_SNAPSHOT,
			    .slot = m->base,
			    .snap_len = m->snap_len,
			    .snap = copy});
	out->installed_snapshot = true;
	out->snapshot_base = m->base;
	/* The state our digests described is gone: so are they, and what
	 * comparing them found. */
	memset(r->ckpts, 0, sizeof r->ckpts);
	r->digest_alarm = LD_DIGEST_OK;
	ckpt_note(r, m->base, r->sm->ops->digest(r->sm));
	if (r->role == LD_CANDIDATE)
		become_follower(r, out, r->now_us);
	advance(r, out);
	r->catchup_sent_us = 0;
	maybe_catchup(r, out);
}

static void handle_msg(ld_replica *r, const ld_msg *m, ld_actions *out)
{
	note_ballot(r, m->ballot);
	switch (m->type) {
	case LD_MSG_PREPARE:
		on_prepare(r, m, out);
		break;
	case LD_MSG_PROMISE:
		on_promise(r, m, out);
		break;
	case LD_MSG_ACCEPT:
		on_accept(r, m, out);
		break;
	case LD_MSG_ACCEPTED:
		on_accepted(r, m, out);
		break;
	case LD_MSG_REJECT:
		on_reject(r, m, out);
		break;
	case LD_MSG_COMMIT:
		on_commit(r, m, out);
		break;
	case LD_MSG_COMMIT_ACK:
		on_commit_ack(r, m, out);
		break;
	case LD_MSG_CATCHUP_REQ:
		on_catchup_req(r, m, out);
		break;
	case LD_MSG_CATCHUP:
		on_catchup(r, m, out);
		break;
	case LD_MSG_SNAPSHOT:
		on_snapshot(r, m, out);
		break;
	case LD_MSG_PROBE:
		on_probe(r, m, out);
		break;
	case LD_MSG_PROBE_ACK:
		on_probe_ack(r, m, out);
		break;
	}
}

/* ---- client commands ---------------------------------------------------- */

static void on_submit(ld_replica *r, const ld_cmd *cmd, ld_actions *out)
{
	if (cmd->client_id == 0 || cmd->seq == 0 ||
	    cmd->len > LD_CMD_BYTES_MAX ||
	    (cmd->len > 0 && cmd->data == NULL)) {
		reply(r, out, cmd->client_id, cmd->seq, LD_REPLY_INVALID, NULL);
		return;
	}
	if (r->role == LD_FOLLOWER) {
		reply(r, out, cmd->client_id, cmd->seq, LD_REPLY_NOT_LEADER,
		      NULL);
		return;
	}
	const client_ent *c = client_find(r, cmd->client_id);
	if (c != NULL && cmd->seq <= c->seq) {
		/* A retry of a command already applied: answer from the
		 * table, do not apply again. */
		reply(r, out, cmd->client_id, cmd->seq, LD_REPLY_OK,
		      cmd->seq == c->seq ? c : NULL);
		return;
	}
	if (waiter_find(r, cmd->client_id, cmd->seq) >= 0)
		return; /* already queued or in flight here */
	if (r->pending_n >= LD_PENDING_CMDS_MAX) {
		reply(r, out, cmd->client_id, cmd->seq, LD_REPLY_BUSY, NULL);
		return;
	}
	uint8_t *data = malloc(cmd->len ? cmd->len : 1);
	if (data == NULL) {
		reply(r, out, cmd->client_id, cmd->seq, LD_REPLY_BUSY, NULL);
		return;
	}
	if (cmd->len > 0)
		memcpy(data, cmd->data, cmd->len);
	pending_cmd *p = &r->pending[(r->pending_head + r->pending_n) %
				     LD_PENDING_CMDS_MAX];
	p->cmd = *cmd;
	p->cmd.data = data;
	r->pending_n++;
	waiter_add(r, cmd->client_id, cmd->seq);
}

/* ---- linearizable reads (ReadIndex) -------------------------------------- */

static void read_done(ld_actions *out, uint64_t id, bool ok)
{
	out->reads = grow(out->reads, &out->reads_cap, out->nreads + 1,
			  sizeof *out->reads);
	out->reads[out->nreads++] = (ld_read_done){id, ok};
}

static void reads_fail_all(ld_replica *r, ld_actions *out)
{
	for (uint32_t i = 0; i < r->npreads; i++)
		read_done(out, r->preads[i].id, false);
	r->npreads = 0;
	r->hb_wanted = false;
}

/* The newest heartbeat round a quorum has answered at our ballot (we answer
 * our own at once). */
static uint64_t hb_confirmed(const ld_replica *r)
{
	if (r->quorum <= 1 || MUTANT(r, LD_MUTANT_READ_LOCAL))
		return r->hb_seq;
	/* The (q-1)-th highest answer among the others, with ours. */
	uint64_t a[LD_REPLICAS_MAX];
	uint32_t n = 0;
	for (uint32_t j = 0; j < r->cfg.nreplicas; j++)
		if (j != r->cfg.id)
			a[n++] = r->hb_acked[j];
	for (uint32_t i = 1; i < n; i++)
		for (uint32_t k = i; k > 0 && a[k] > a[k - 1]; k--) {
			uint64_t t = a[k];
			a[k] = a[k - 1];
			a[k - 1] = t;
		}
	return a[r->quorum - 2];
}

/* A read that arrives now is answered once a round sent after now is
 * confirmed (no newer ballot had a quorum then) and commit reaches every
 * slot proposed before now: every write acknowledged before the read was
 * chosen in one of those slots (P2 for those a former leader chose: our
 * phase 1 saw them). */
static void on_read(ld_replica *r, uint64_t id, ld_actions *out)
{
	if (r->role != LD_LEADER || !r->joined) {
		read_done(out, id, false);
		return;
	}
	if (r->npreads == r->preads_cap) {
		uint32_t cap = r->preads_cap ? r->preads_cap * 2 : 16;
		struct pending_read *p = realloc(r->preads, cap * sizeof *p);
		if (p == NULL)
			abort();
		r->preads = p;
		r->preads_cap = cap;
	}
	r->preads[r->npreads++] = (struct pending_read){
		.id = id,
		.need = r->hb_seq + 1,
		.index = r->next_slot > 0 ? r->next_slot - 1 : 0,
	};
	r->hb_wanted = true;
}

static void reads_check(ld_replica *r, ld_actions *out)
{
	if (r->npreads == 0 || r->role != LD_LEADER)
		return;
	uint64_t conf = hb_confirmed(r);
	/* One round in flight at a time: reads that arrive meanwhile share
	 * the next one, so a burst of reads costs a few round trips. */
	if (r->hb_wanted && conf >= r->hb_seq)
		send_commits(r, out);
	conf = hb_confirmed(r);
	for (uint32_t i = 0; i < r->npreads;) {
		struct pending_read *p = &r->preads[i];
		if (p->need <= conf && (r->commit >= p->index ||
					MUTANT(r, LD_MUTANT_READ_LOCAL))) {
			read_done(out, p->id, true);
			r->preads[i] = r->preads[--r->npreads];
		} else {
			i++;
		}
	}
}

/* ---- timers ------------------------------------------------------------- */

static void on_tick(ld_replica *r, ld_actions *out)
{
	uint64_t now = r->now_us;
	switch (r->role) {
	case LD_FOLLOWER:
		if (!r->joined) {
			if (now >= r->probe_at_us)
				send_probes(r, out);
		} else if (now >= r->election_at_us) {
			if (r->digest_alarm == LD_DIGEST_DIVERGED)
				r->election_at_us = now + election_delay(r);
			else
				start_candidacy(r, out);
		}
		break;
	case LD_CANDIDATE:
		if (now >= r->cand_started_us + r->cfg.election_timeout_us)
			become_follower(r, out, now);
		else if (now >= r->p1_sent_us + r->cfg.retry_us)
			send_prepares(r, out);
		break;
	case LD_LEADER: {
		/* Check quorum: a leader that has not heard a majority for an
		 * election timeout steps down rather than block the cell. */
		uint32_t live = 1;
		for (uint32_t j = 0; j < r->cfg.nreplicas; j++)
			if (j != r->cfg.id &&
			    now < r->peer_heard_us[j] +
					    r->cfg.election_timeout_us)
				live++;
		if (live < r->quorum) {
			r->leader = -1;
			become_follower(r, out, now);
			break;
		}
		if (now >= r->heartbeat_at_us)
			send_commits(r, out);
		for (uint64_t s = r->commit + 1; s < r->next_slot; s++) {
			entry *e = entry_at(r, s);
			if (e == NULL || e->chosen != NULL ||
			    e->pvalue == NULL ||
			    now < e->sent_us + r->cfg.retry_us)
				continue;
			e->sent_us = now;
			for (uint32_t j = 0; j < r->cfg.nreplicas; j++)
				if (j != r->cfg.id && !(e->acks & (1u << j)))
					send_accept(r, out, e, j);
		}
		break;
	}
	}
	maybe_catchup(r, out);
}

static uint64_t next_timer(const ld_replica *r)
{
	uint64_t t = UINT64_MAX;
	switch (r->role) {
	case LD_FOLLOWER:
		t = r->joined ? r->election_at_us : r->probe_at_us;
		break;
	case LD_CANDIDATE:
		t = r->cand_started_us + r->cfg.election_timeout_us;
		if (r->p1_sent_us + r->cfg.retry_us < t)
			t = r->p1_sent_us + r->cfg.retry_us;
		break;
	case LD_LEADER:
		t = r->heartbeat_at_us;
		if (r->commit + 1 < r->next_slot &&
		    r->now_us + r->cfg.retry_us < t)
			t = r->now_us + r->cfg.retry_us;
		break;
	}
	if (r->role != LD_LEADER && r->known_commit > r->commit &&
	    r->catchup_sent_us + r->cfg.retry_us < t)
		t = r->catchup_sent_us + r->cfg.retry_us;
	if (t <= r->now_us)
		t = r->now_us + 1;
	return t;
}

/* Sends the held messages whose writes are now durable, oldest first.
 * Handling one addressed to ourselves may hold new messages; those join the
 * list behind the ones still waiting. */
static void release_held(ld_replica *r, ld_actions *out)
{
	held_msg *h = r->held;
	uint32_t n = r->nheld, cap = r->held_cap, kept = 0;
	r->held = NULL;
	r->nheld = r->held_cap = 0;
	for (uint32_t i = 0; i < n; i++) {
		if (h[i].write_id <= r->durable_id)
			emit(r, out, h[i].msg);
		else
			h[kept++] = h[i];
	}
	if (kept + r->nheld > cap) {
		cap = kept + r->nheld;
		held_msg *g = realloc(h, cap * sizeof *g);
		if (g == NULL)
			abort();
		h = g;
	}
	if (r->nheld > 0)
		memcpy(&h[kept], r->held, r->nheld * sizeof *h);
	kept += r->nheld;
	free(r->held);
	r->held = h;
	r->nheld = kept;
	r->held_cap = cap;
}

/* ---- the step function -------------------------------------------------- */

int ld_replica_step(ld_replica *r, const ld_event *ev, ld_actions *out)
{
	int rc = 0;
	/* The local clock is monotonic; never let it run backwards. */
	if (ev->now_us > r->now_us)
		r->now_us = ev->now_us;
	if (r->election_at_us == UINT64_MAX) {
		r->election_at_us = r->now_us + election_delay(r);
		r->started_us = r->now_us;
		r->probe_at_us = r->now_us;
	}
	switch (ev->type) {
	case LD_EV_MSG:
		if (ev->msg == NULL ||
		    ld_msg_validate(ev->msg, r->cfg.nreplicas) != 0 ||
		    ev->msg->to != r->cfg.id) {
			rc = -1;
			break;
		}
		handle_msg(r, ev->msg, out);
		break;
	case LD_EV_TICK:
		on_tick(r, out);
		break;
	case LD_EV_DURABLE:
		if (ev->write_id > r->last_write_id) {
			rc = -1;
			break;
		}
		if (ev->write_id > r->durable_id)
			r->durable_id = ev->write_id;
		release_held(r, out);
		break;
	case LD_EV_READ:
		if (ev->read_id == 0) {
			rc = -1;
			break;
		}
		on_read(r, ev->read_id, out);
		break;
	case LD_EV_CHANGE:
		if (ev->change == NULL) {
			rc = -1;
			break;
		}
		out->changes = grow(out->changes, &out->changes_cap,
				    out->nchanges + 1, sizeof *out->changes);
		out->changes[out->nchanges++] = (ld_change_done){
			.change_id = ev->change_id,
			.status = LD_CHANGE_REFUSED,
			.leader_hint = -1,
			.why = "membership changes are not built yet"};
		break;
	case LD_EV_SUBMIT:
		if (ev->cmd == NULL) {
			rc = -1;
			break;
		}
		/* Everything submitted together is queued first and proposed
		 * after, so it shares decrees. */
		for (uint32_t i = 0; i < (ev->ncmds ? ev->ncmds : 1); i++)
			on_submit(r, &ev->cmd[i], out);
		flush_pending(r, out);
		break;
	default:
		rc = -1;
	}
	recovery_step(r, out);
	reads_check(r, out);
	out->timer_at_us = next_timer(r);
	return rc;
}

/* ---- views -------------------------------------------------------------- */

void ld_replica_status(const ld_replica *r, ld_status *st)
{
	memset(st, 0, sizeof *st);
	st->role = r->role;
	st->ballot = r->ballot;
	st->promised = r->promised;
	st->leader = r->role == LD_LEADER ? (int32_t)r->cfg.id : r->leader;
	st->commit = r->commit;
	st->applied = r->commit;
	st->base = r->snap_base;
	st->next_slot = r->next_slot;
	st->pending = r->pending_n;
	st->voter = r->joined;
	st->digest_alarm = r->digest_alarm;
	st->recover_above = r->recover_above;
}

const ld_member *ld_members_find(const ld_members *m, uint32_t id)
{
	for (uint32_t i = 0; i < m->n; i++)
		if (m->m[i].id == id)
			return &m->m[i];
	return NULL;
}

void ld_replica_members(const ld_replica *r, ld_members *out,
			uint64_t *from_slot)
{
	memset(out, 0, sizeof *out);
	out->n = r->cfg.nreplicas;
	for (uint32_t i = 0; i < out->n; i++) {
		out->m[i].id = i;
		out->m[i].voting = true;
	}
	if (from_slot != NULL)
		*from_slot = 1;
}

const ld_value *ld_replica_chosen_at(const ld_replica *r, uint64_t slot)
{
	const entry *e = entry_at_c(r, slot);
	return e != NULL ? e->chosen : NULL;
}
