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
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- small helpers ------------------------------------------------------ */

int px_ballot_cmp(px_ballot a, px_ballot b)
{
	if (a.round != b.round)
		return a.round < b.round ? -1 : 1;
	if (a.id != b.id)
		return a.id < b.id ? -1 : 1;
	return 0;
}

static bool ballot_zero(px_ballot b)
{
	return b.round == 0;
}

static uint32_t popcount64(uint64_t x)
{
	return (uint32_t)__builtin_popcountll(x);
}

static uint64_t id_bit(uint32_t id)
{
	return UINT64_C(1) << id;
}

/* for (FOR_IDS(j, mask)) visits the ids in a mask, lowest first. */
#define FOR_IDS(j, mask)                                               \
	uint64_t ids_##j = (mask), j = 0;                              \
	ids_##j != 0 && ((j = (uint64_t)__builtin_ctzll(ids_##j)), 1); \
	ids_##j &= ids_##j - 1

#ifdef LD_MUTANTS
#define MUTANT(r, m) ((r)->cfg.mutant == (m))
#else
#define MUTANT(r, m) 0
#endif

static const char *const mutant_names[PX_MUTANT_COUNT] = {
	[PX_MUTANT_NONE] = "none",
	[PX_MUTANT_FORGET_PROMISE] = "forget-promise",
	[PX_MUTANT_IGNORE_VOTES] = "ignore-votes",
	[PX_MUTANT_MINORITY_QUORUM] = "minority-quorum",
	[PX_MUTANT_SHARED_BALLOTS] = "shared-ballots",
	[PX_MUTANT_EARLY_CHOSEN] = "early-chosen",
	[PX_MUTANT_VOTE_BEFORE_SYNC] = "vote-before-sync",
	[PX_MUTANT_WIPED_VOTES] = "wiped-votes",
	[PX_MUTANT_IGNORE_DIGEST] = "ignore-digest",
	[PX_MUTANT_READ_LOCAL] = "read-local",
	[PX_MUTANT_ALPHA_ZERO] = "alpha-zero",
	[PX_MUTANT_COUNT_REMOVED] = "count-removed",
	[PX_MUTANT_GRACE_ZERO] = "grace-zero",
	[PX_MUTANT_DEPOSED_RENEW] = "deposed-renew",
	[PX_MUTANT_TRUST_STAMPS] = "trust-stamps",
	[PX_MUTANT_UNCHECKED_REGRANT] = "unchecked-regrant",
	[PX_MUTANT_REPLY_CLOCK] = "reply-clock",
	[PX_MUTANT_OPEN_PEERS] = "open-peers",
	[PX_MUTANT_ACK_FAILED_SYNC] = "ack-failed-sync",
};

const char *px_mutant_name(ld_mutant m)
{
	return (unsigned)m < PX_MUTANT_COUNT ? mutant_names[m] : "?";
}

ld_mutant px_mutant_parse(const char *name)
{
	for (int m = 0; m < PX_MUTANT_COUNT; m++)
		if (strcmp(name, mutant_names[m]) == 0)
			return (ld_mutant)m;
	return PX_MUTANT_COUNT;
}

/* ---- messages, records, actions ----------------------------------------- */

void px_msg_free(px_msg *m)
{
	if (m == NULL)
		return;
	px_value_unref(m->value);
	for (uint32_t i = 0; i < m->nvotes; i++)
		px_value_unref(m->votes[i].value);
	free(m->votes);
	free(m->snap);
	free(m);
}

px_msg *px_msg_dup(const px_msg *m)
{
	px_msg *d = malloc(sizeof *d);
	if (d == NULL)
		return NULL;
	*d = *m;
	d->votes = NULL;
	d->snap = NULL;
	d->nvotes = 0;
	d->snap_len = 0;
	d->value = px_value_ref(m->value);
	if (m->nvotes > 0) {
		d->votes = malloc(m->nvotes * sizeof *d->votes);
		if (d->votes == NULL)
			goto fail;
		for (uint32_t i = 0; i < m->nvotes; i++) {
			d->votes[i] = m->votes[i];
			px_value_ref(d->votes[i].value);
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
	px_msg_free(d);
	return NULL;
}

int px_msg_validate(const px_msg *m, uint32_t nreplicas)
{
	if (m == NULL || m->type < PX_MSG_PREPARE || m->type > PX_MSG_TYPE_MAX)
		return -1;
	if (nreplicas > LD_REPLICA_IDS)
		nreplicas = LD_REPLICA_IDS;
	if (m->from >= nreplicas || m->to >= nreplicas || m->from == m->to)
		return -1;
	if (m->ballot.id >= nreplicas || m->ballot.round >= PX_ROUND_MAX)
		return -1;
	if (m->nvotes > LD_LOG_SLOTS_MAX || (m->nvotes > 0 && !m->votes))
		return -1;
	if (m->snap_len > LD_SNAPSHOT_BYTES_MAX || (m->snap_len && !m->snap))
		return -1;
	for (uint32_t i = 0; i < m->nvotes; i++)
		if (m->votes[i].value == NULL || m->votes[i].slot == 0 ||
		    m->votes[i].ballot.id >= nreplicas ||
		    m->votes[i].ballot.round >= PX_ROUND_MAX)
			return -1;
	switch (m->type) {
	case PX_MSG_PREPARE:
	case PX_MSG_PROMISE:
	case PX_MSG_ACCEPTED:
	case PX_MSG_COMMIT:
		if (ballot_zero(m->ballot))
			return -1;
		break;
	case PX_MSG_ACCEPT:
		if (ballot_zero(m->ballot) || m->value == NULL || m->slot == 0)
			return -1;
		break;
	case PX_MSG_SNAPSHOT:
		if (m->base == 0 || m->snap_len == 0)
			return -1;
		break;
	case PX_MSG_CATCHUP_REQ:
		if (m->slot == 0)
			return -1;
		break;
	default:
		break;
	}
	return 0;
}

void px_record_clear(px_record *rec)
{
	px_value_unref(rec->value);
	free(rec->snap);
	memset(rec, 0, sizeof *rec);
}

void px_actions_init(px_actions *a)
{
	memset(a, 0, sizeof *a);
}

void px_actions_reset(px_actions *a)
{
	for (size_t i = 0; i < a->nrecs; i++)
		px_record_clear(&a->recs[i]);
	for (size_t i = 0; i < a->nmsgs; i++)
		px_msg_free(a->msgs[i]);
	for (size_t i = 0; i < a->nchosen; i++)
		px_value_unref(a->chosen[i].value);
	a->nrecs = a->nmsgs = a->nchosen = a->nreplies = a->nreads = 0;
	a->nchanges = 0;
	a->members_changed = false;
	a->write_id = 0;
	a->installed_snapshot = false;
	a->snapshot_base = 0;
	a->timer_at_us = 0;
}

void px_actions_free(px_actions *a)
{
	px_actions_reset(a);
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
	px_ballot vballot; /* acceptor: the vote cast for this slot */
	px_value *vvalue;
	px_value *chosen; /* learner: the value known chosen */
	/* proposer, valid while pballot equals the leader's ballot */
	px_ballot pballot;
	px_value *pvalue;
	uint64_t acks; /* replicas (bit per id) that voted pvalue in pballot */
	uint64_t sent_us;
	/* candidate: highest-ballot vote reported in phase 1 (P3) */
	px_ballot p1ballot;
	px_value *p1value;
} entry;

typedef struct held_msg {
	px_msg *msg;
	uint64_t write_id;
} held_msg;

typedef struct pending_cmd {
	px_cmd cmd; /* data malloc'd */
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

/* A configuration and the first slot it governs (paxos.h: membership). */
typedef struct conf {
	uint64_t from;
	px_members m;
	uint64_t voters; /* ids that vote */
	uint64_t all;    /* ids that are members, voting or learning */
	uint32_t quorum; /* a majority of voters */
} conf;

/* A membership change submitted here, waiting to be applied. */
typedef struct change_req {
	uint64_t change_id, tag; /* tag: the decree command's seq */
} change_req;

struct px_replica {
	px_config cfg;
	px_sm *sm;
	uint64_t rng;

	/* membership: the configurations that govern slots after commit,
	 * oldest first; confs[0].from <= commit + 1 */
	conf *confs;
	uint32_t nconfs;
	size_t confs_cap;
	bool leaving;             /* applied its own removal */
	uint64_t resign_until_us; /* PX_EV_RESIGN: no candidacy before */
	bool told_removed;        /* a member said our id left the cell */
	change_req *chreqs;
	uint32_t nchreqs;
	size_t chreqs_cap;
	uint64_t change_tag;
	uint64_t peer_commit[LD_REPLICA_IDS], peer_inc[LD_REPLICA_IDS];

	/* acceptor */
	px_ballot promised;

	/* recovery (paxos.h): a replica without a JOINED record learns but
	 * neither promises nor votes until it is safe to */
	bool joined;              /* a JOINED record was restored or written */
	bool recover_known;       /* recover_above (M) is known */
	px_ballot recover_above;  /* M: vote only under a leader above it */
	px_ballot recover_ballot; /* the leader above M seen, or zero */
	uint64_t recover_horizon; /* its highest proposed slot (H) */
	uint64_t started_us;      /* first step */
	uint64_t probe_round, probe_at_us, probe_eligible_round;
	uint64_t nudge_at_us;
	struct probe_ack {
		uint64_t round; /* the probe round it answered; 0: none */
		px_ballot promised;
		bool voter, empty;
	} probe_acks[LD_REPLICA_IDS];

	/* log: slots [log_start, log_start + LD_LOG_SLOTS_MAX) */
	entry log[LD_LOG_SLOTS_MAX];
	uint64_t log_start;
	uint64_t commit; /* every slot <= commit is chosen and applied */
	uint64_t snap_base;
	uint8_t *snap; /* the snapshot at snap_base (client table + sm) */
	size_t snap_len;
	uint64_t bytes_since_snap; /* decree bytes applied after snap_base */

	/* roles */
	px_role role;
	px_ballot ballot;   /* proposer's ballot while candidate/leader */
	uint64_t max_round; /* highest round seen anywhere */
	int32_t leader;     /* believed leader, or -1 */
	px_ballot leader_ballot;
	uint64_t heard_us;       /* last message from that leader */
	uint64_t election_at_us; /* follower: campaign at this time */
	uint64_t now_us;

	/* candidate */
	uint64_t p1_from, p1_max;
	uint64_t promises;    /* ids that promised our ballot */
	uint64_t p1_ext_from; /* leader: phase 1 asked of more voters */
	uint64_t cand_started_us, p1_sent_us;

	/* leader */
	uint64_t lead_since_us;
	uint64_t next_slot;
	uint64_t heartbeat_at_us;
	/* linearizable reads (ReadIndex): a read waits for a heartbeat round
	 * sent after it arrived to be answered by a quorum at our ballot, and
	 * for commit to reach the highest slot proposed when it arrived. */
	uint64_t hb_seq;                   /* rounds sent */
	uint64_t hb_acked[LD_REPLICA_IDS]; /* highest round each answered */
	bool hb_wanted;                    /* a read waits for a round */
	struct pending_read {
		uint64_t id, need, index;
	} * preads;
	uint32_t npreads, preads_cap;
	uint64_t peer_heard_us[LD_REPLICA_IDS];
	pending_cmd *pending; /* ring */
	uint32_t pending_head, pending_n;

	/* commands submitted here, waiting to be applied */
	waiter *waiters;
	uint32_t nwaiters, waiters_cap;

	/* state digests at every LD_DIGEST_EVERY_SLOTS-th slot (a ring), and
	 * what comparing them found */
	struct ckpt {
		uint64_t slot, digest;
	} ckpts[LD_DIGEST_KEEP], peer_ckpt[LD_REPLICA_IDS];
	uint32_t ckpt_next;
	struct ckpt verified; /* leader: the latest a quorum shares with us */
	px_digest_alarm digest_alarm;

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

static uint64_t rng_next(px_replica *r)
{
	/* splitmix64 */
	uint64_t z = (r->rng += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static entry *entry_at(px_replica *r, uint64_t slot)
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

static const entry *entry_at_c(const px_replica *r, uint64_t slot)
{
	return entry_at((px_replica *)r, slot);
}

static void entry_clear(entry *e)
{
	px_value_unref(e->vvalue);
	px_value_unref(e->chosen);
	px_value_unref(e->pvalue);
	px_value_unref(e->p1value);
	memset(e, 0, sizeof *e);
}

/* The cell for slot, creating it; NULL when slot is outside the window. */
static entry *entry_get(px_replica *r, uint64_t slot)
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
static void log_truncate(px_replica *r, uint64_t start)
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

static client_ent *client_find(px_replica *r, uint64_t id)
{
	if (r->clients_cap == 0)
		return NULL;
	uint32_t mask = r->clients_cap - 1;
	for (uint32_t i = (uint32_t)px_mix64(id) & mask;; i = (i + 1) & mask) {
		if (r->clients[i].client_id == id)
			return &r->clients[i];
		if (r->clients[i].client_id == 0)
			return NULL;
	}
}

static void client_table_rehash(px_replica *r, uint32_t cap);

static void client_remove(px_replica *r, client_ent *c)
{
	/* Rebuilding is O(n) but happens only on eviction, once a table of
	 * LD_CLIENTS_MAX is full. */
	c->client_id = 0;
	r->nclients--;
	client_table_rehash(r, r->clients_cap);
}

static client_ent *client_insert_slot(px_replica *r, uint64_t id)
{
	uint32_t mask = r->clients_cap - 1;
	uint32_t i = (uint32_t)px_mix64(id) & mask;
	while (r->clients[i].client_id != 0)
		i = (i + 1) & mask;
	r->clients[i].client_id = id;
	r->nclients++;
	return &r->clients[i];
}

static void client_table_rehash(px_replica *r, uint32_t cap)
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
static client_ent *client_upsert(px_replica *r, uint64_t id)
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

/* ---- configurations ----------------------------------------------------- */

static void conf_fill(conf *c, const px_members *m, uint64_t from,
		      bool minority)
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

static conf *conf_push(px_replica *r)
{
	r->confs =
		grow(r->confs, &r->confs_cap, r->nconfs + 1, sizeof *r->confs);
	return &r->confs[r->nconfs++];
}

/* The configuration that governs slot (its quorums, both phases). */
static const conf *conf_at(const px_replica *r, uint64_t slot)
{
	uint32_t i = r->nconfs - 1;
	while (i > 0 && r->confs[i].from > slot)
		i--;
	return &r->confs[i];
}

static const conf *conf_latest(const px_replica *r)
{
	return &r->confs[r->nconfs - 1];
}

/* Forgets configurations that no slot after commit uses. */
static void conf_prune(px_replica *r)
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
static uint64_t peers_mask(const px_replica *r)
{
	uint64_t m = 0;
	for (uint32_t i = 0; i < r->nconfs; i++)
		m |= r->confs[i].all;
	if (MUTANT(r, PX_MUTANT_COUNT_REMOVED))
		m |= conf_latest(r)->m.removed;
	return m & ~id_bit(r->cfg.id);
}

static uint64_t voters_mask(const px_replica *r)
{
	uint64_t m = 0;
	for (uint32_t i = 0; i < r->nconfs; i++)
		m |= r->confs[i].voters;
	return m;
}

static bool quorum_in(const conf *c, uint64_t mask)
{
	return c->voters != 0 && popcount64(mask & c->voters) >= c->quorum;
}

/* mask holds a quorum of every configuration of a slot after commit. */
static bool quorum_all(const px_replica *r, uint64_t mask)
{
	for (uint32_t i = 0; i < r->nconfs; i++)
		if (!quorum_in(&r->confs[i], mask))
			return false;
	return true;
}

/* Removed from the cell, and no longer needed: no slot after commit is
 * governed by a configuration that has us (until then a removed replica
 * still answers as an acceptor, so that the configuration still in effect
 * keeps its quorum). */
static bool gone(const px_replica *r)
{
	return r->leaving && r->role != PX_LEADER &&
	       !(conf_at(r, r->commit + 1)->all & id_bit(r->cfg.id));
}

/* This replica votes in the configuration of the next slot to choose. */
static bool votes_now(const px_replica *r)
{
	return r->joined && !r->leaving &&
	       (conf_at(r, r->commit + 1)->voters & id_bit(r->cfg.id));
}

/* ---- output helpers ----------------------------------------------------- */

static px_msg *msg_new(px_replica *r, px_msg_type type, uint32_t to)
{
	px_msg *m = calloc(1, sizeof *m);
	if (m == NULL)
		abort();
	m->type = type;
	m->from = r->cfg.id;
	m->to = to;
	m->commit = r->commit;
	m->base = r->snap_base;
	return m;
}

static void handle_msg(px_replica *r, const px_msg *m, px_actions *out);

static void emit(px_replica *r, px_actions *out, px_msg *m)
{
	if (m->to == r->cfg.id) {
		handle_msg(r, m, out);
		px_msg_free(m);
		return;
	}
	out->msgs = grow(out->msgs, &out->msgs_cap, out->nmsgs + 1,
			 sizeof *out->msgs);
	out->msgs[out->nmsgs++] = m;
}

/* Sends m once every write made so far is durable. */
static void emit_after_sync(px_replica *r, px_actions *out, px_msg *m)
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

static void persist(px_replica *r, px_actions *out, px_record rec)
{
	if (out->write_id == 0 || out->write_id != r->last_write_id)
		out->write_id = ++r->last_write_id;
	out->recs = grow(out->recs, &out->recs_cap, out->nrecs + 1,
			 sizeof *out->recs);
	out->recs[out->nrecs++] = rec;
}

static void persist_promise(px_replica *r, px_actions *out)
{
	persist(r, out,
		(px_record){.type = PX_REC_PROMISE, .ballot = r->promised});
}

static void reply(px_replica *r, px_actions *out, uint64_t client_id,
		  uint64_t seq, px_reply_status st, const client_ent *c)
{
	out->replies = grow(out->replies, &out->replies_cap, out->nreplies + 1,
			    sizeof *out->replies);
	px_reply *rp = &out->replies[out->nreplies++];
	memset(rp, 0, offsetof(px_reply, result));
	rp->client_id = client_id;
	rp->seq = seq;
	rp->status = st;
	rp->leader_hint = r->role == PX_LEADER ? (int32_t)r->cfg.id : r->leader;
	if (c != NULL) {
		rp->slot = c->slot;
		rp->result_len = c->result_len;
		memcpy(rp->result, c->result, c->result_len);
	}
}

/* ---- waiters and the pending queue -------------------------------------- */

static int waiter_find(px_replica *r, uint64_t client_id, uint64_t seq)
{
	for (uint32_t i = 0; i < r->nwaiters; i++)
		if (r->waiters[i].client_id == client_id &&
		    r->waiters[i].seq == seq)
			return (int)i;
	return -1;
}

static void waiter_add(px_replica *r, uint64_t client_id, uint64_t seq)
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

static void waiter_remove(px_replica *r, int i)
{
	r->waiters[i] = r->waiters[--r->nwaiters];
}

static void pending_drop_all(px_replica *r, px_actions *out)
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
		      PX_REPLY_NOT_LEADER, NULL);
	r->nwaiters = 0;
}

/* ---- config and lifecycle ----------------------------------------------- */

void px_config_default(px_config *cfg, uint32_t id, uint32_t nreplicas)
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
	cfg->mutant = PX_MUTANT_NONE;
}

static uint64_t election_delay(px_replica *r)
{
	uint64_t t = r->cfg.election_timeout_us;
	return t + rng_next(r) % t;
}

px_replica *px_replica_new(const px_config *cfg, px_sm *sm)
{
	if (cfg->nreplicas > LD_REPLICAS_MAX || cfg->id >= LD_REPLICA_IDS ||
	    (cfg->nreplicas > 0 && cfg->id >= cfg->nreplicas) ||
	    (cfg->nreplicas == 0 &&
	     (cfg->members.n == 0 || cfg->members.n > LD_REPLICAS_MAX)) ||
	    sm == NULL || sm->ops == NULL || cfg->window_slots == 0 ||
	    cfg->window_slots > LD_WINDOW_SLOTS_MAX || cfg->batch_cmds == 0 ||
	    cfg->batch_cmds > LD_BATCH_CMDS_MAX ||
	    cfg->election_timeout_us == 0 || cfg->heartbeat_us == 0 ||
	    cfg->retry_us == 0 || cfg->snapshot_every_slots == 0 ||
	    cfg->digest_every_slots == 0 ||
	    cfg->snapshot_every_slots + LD_LOG_TAIL_SLOTS +
			    LD_WINDOW_SLOTS_MAX >=
		    LD_LOG_SLOTS_MAX)
		return NULL;
	px_replica *r = calloc(1, sizeof *r);
	if (r == NULL)
		return NULL;
	r->pending = calloc(LD_PENDING_CMDS_MAX, sizeof *r->pending);
	if (r->pending == NULL) {
		free(r);
		return NULL;
	}
	r->cfg = *cfg;
	r->sm = sm;
	px_members first = cfg->members;
	if (cfg->nreplicas > 0) {
		memset(&first, 0, sizeof first);
		first.n = cfg->nreplicas;
		for (uint32_t i = 0; i < first.n; i++) {
			first.m[i] = (px_member){.id = i, .voting = true};
			/* The first members' URLs, when the caller gave
			 * them (every replica must give the same). */
			if (cfg->members.n == cfg->nreplicas &&
			    cfg->members.m[i].id == i) {
				memcpy(first.m[i].peer, cfg->members.m[i].peer,
				       LD_URL_BYTES_MAX);
				memcpy(first.m[i].client,
				       cfg->members.m[i].client,
				       LD_URL_BYTES_MAX);
			}
		}
	}
	for (uint32_t i = 0; i < first.n; i++) {
		first.m[i].peer[LD_URL_BYTES_MAX - 1] = 0;
		first.m[i].client[LD_URL_BYTES_MAX - 1] = 0;
	}
	for (uint32_t i = 0; i < first.n; i++)
		if (first.m[i].id >= LD_REPLICA_IDS ||
		    (i > 0 && first.m[i].id <= first.m[i - 1].id)) {
			free(r->pending);
			free(r);
			return NULL;
		}
	conf_fill(conf_push(r), &first, 1,
		  MUTANT(r, PX_MUTANT_MINORITY_QUORUM));
	r->rng = cfg->seed ^ ((uint64_t)cfg->id << 32);
	r->log_start = 1;
	r->role = PX_FOLLOWER;
	r->leader = -1;
	r->known_commit_from = -1;
	r->catchup_to = -1;
	r->election_at_us = UINT64_MAX; /* set at the first step */
	return r;
}

void px_replica_free(px_replica *r)
{
	if (r == NULL)
		return;
	for (uint32_t i = 0; i < LD_LOG_SLOTS_MAX; i++)
		entry_clear(&r->log[i]);
	for (uint32_t i = 0; i < r->nheld; i++)
		px_msg_free(r->held[i].msg);
	while (r->pending_n > 0) {
		free((void *)r->pending[r->pending_head].cmd.data);
		r->pending_head = (r->pending_head + 1) % LD_PENDING_CMDS_MAX;
		r->pending_n--;
	}
	free(r->pending);
	free(r->confs);
	free(r->chreqs);
	free(r->held);
	free(r->preads);
	free(r->waiters);
	free(r->clients);
	free(r->snap);
	free(r);
}

/* ---- snapshots: client table + state machine ---------------------------- */

#define SNAP_MAGIC 0x4c44534eu  /* "LDSN": no configurations */
#define SNAP_MAGIC2 0x4c445332u /* "LDS2": configurations after clients */

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

static void put_str(uint8_t **p, const char *s)
{
	size_t n = strlen(s);
	*(*p)++ = (uint8_t)n;
	*(*p)++ = (uint8_t)(n >> 8);
	memcpy(*p, s, n);
	*p += n;
}

static int get_str(const uint8_t **p, const uint8_t *end, char *s)
{
	if (end - *p < 2)
		return -1;
	size_t n = (size_t)(*p)[0] | (size_t)(*p)[1] << 8;
	*p += 2;
	if (n >= LD_URL_BYTES_MAX || (size_t)(end - *p) < n ||
	    memchr(*p, 0, n) != NULL)
		return -1;
	memcpy(s, *p, n);
	s[n] = 0;
	*p += n;
	return 0;
}

static size_t members_size(const px_members *m)
{
	size_t n = 8 + 4;
	for (uint32_t i = 0; i < m->n; i++)
		n += 4 + 1 + 8 + 2 + strlen(m->m[i].peer) + 2 +
		     strlen(m->m[i].client);
	return n;
}

static void put_members(uint8_t **p, const px_members *m)
{
	put_u64(p, m->removed);
	put_u32(p, m->n);
	for (uint32_t i = 0; i < m->n; i++) {
		put_u32(p, m->m[i].id);
		*(*p)++ = m->m[i].voting ? 1 : 0;
		put_u64(p, m->m[i].incarnation);
		put_str(p, m->m[i].peer);
		put_str(p, m->m[i].client);
	}
}

static int get_members(const uint8_t **p, const uint8_t *end, px_members *m)
{
	memset(m, 0, sizeof *m);
	if (get_u64(p, end, &m->removed) || get_u32(p, end, &m->n) ||
	    m->n == 0 || m->n > LD_REPLICAS_MAX)
		return -1;
	for (uint32_t i = 0; i < m->n; i++) {
		px_member *x = &m->m[i];
		if (get_u32(p, end, &x->id) || x->id >= LD_REPLICA_IDS ||
		    (i > 0 && x->id <= m->m[i - 1].id) || end - *p < 1 ||
		    **p > 1)
			return -1;
		x->voting = *(*p)++ == 1;
		if (get_u64(p, end, &x->incarnation) ||
		    get_str(p, end, x->peer) || get_str(p, end, x->client))
			return -1;
	}
	return 0;
}

/* Encodes the applied state at r->commit. 0, or -1 when out of memory. */
static int snapshot_encode(px_replica *r, uint8_t **out, size_t *len)
{
	uint8_t *smb = NULL;
	size_t smlen = 0;
	if (r->sm->ops->snapshot(r->sm, &smb, &smlen) != 0)
		return -1;
	size_t n = 4 + 4 + 8;
	for (uint32_t i = 0; i < r->clients_cap; i++)
		if (r->clients[i].client_id != 0)
			n += 8 + 8 + 8 + 4 + r->clients[i].result_len;
	n += 4;
	for (uint32_t i = 0; i < r->nconfs; i++)
		n += 8 + members_size(&r->confs[i].m);
	n += smlen;
	uint8_t *buf = malloc(n), *p = buf;
	if (buf == NULL) {
		free(smb);
		return -1;
	}
	put_u32(&p, SNAP_MAGIC2);
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
	put_u32(&p, r->nconfs);
	for (uint32_t i = 0; i < r->nconfs; i++) {
		put_u64(&p, r->confs[i].from);
		put_members(&p, &r->confs[i].m);
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
static int snapshot_decode(px_replica *r, const uint8_t *buf, size_t len,
			   uint64_t base)
{
	const uint8_t *p = buf, *end = buf + len;
	uint32_t magic, n;
	uint64_t at;
	if (get_u32(&p, end, &magic) ||
	    (magic != SNAP_MAGIC && magic != SNAP_MAGIC2) ||
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
	/* Configurations: from slots increasing, the first one governing
	 * base + 1. A snapshot without them (written before membership
	 * changes existed) keeps the one we started with. */
	conf *confs = NULL;
	uint32_t nc = 0;
	if (magic == SNAP_MAGIC2) {
		if (get_u32(&p, end, &nc) || nc == 0 || nc > PX_ALPHA + 1)
			return -1;
		confs = calloc(nc, sizeof *confs);
		if (confs == NULL)
			return -1;
		for (uint32_t i = 0; i < nc; i++) {
			uint64_t from;
			px_members m;
			if (get_u64(&p, end, &from) ||
			    get_members(&p, end, &m) ||
			    (i == 0 && from > base + 1) ||
			    (i > 0 && from <= confs[i - 1].from)) {
				free(confs);
				return -1;
			}
			conf_fill(&confs[i], &m, from,
				  MUTANT(r, PX_MUTANT_MINORITY_QUORUM));
		}
	}
	if (r->sm->ops->restore(r->sm, p, (size_t)(end - p)) != 0) {
		free(confs);
		return -1;
	}
	if (nc > 0) {
		r->nconfs = 0;
		for (uint32_t i = 0; i < nc; i++)
			*conf_push(r) = confs[i];
		free(confs);
	}
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

static void ckpt_note(px_replica *r, uint64_t slot, uint64_t digest);

/* Installs a snapshot at base (> commit). Returns 0 or -1 (malformed). */
static int install_snapshot(px_replica *r, const uint8_t *snap, size_t len,
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
	r->bytes_since_snap = 0;
	log_truncate(r, base + 1);
	conf_prune(r);
	r->leaving = (conf_latest(r)->m.removed & id_bit(r->cfg.id)) != 0;
	ckpt_note(r, base, r->sm->ops->digest(r->sm));
	return 0;
}

/* ---- state digests (corruption caught) ---------------------------------- */

/* Remembers the state digest right after slot, if slot is a checkpoint. */
static void ckpt_note(px_replica *r, uint64_t slot, uint64_t digest)
{
	if (slot == 0 || slot % r->cfg.digest_every_slots != 0)
		return;
	r->ckpts[r->ckpt_next] = (struct ckpt){slot, digest};
	r->ckpt_next = (r->ckpt_next + 1) % LD_DIGEST_KEEP;
}

static const struct ckpt *ckpt_find(const px_replica *r, uint64_t slot)
{
	if (slot == 0)
		return NULL;
	for (uint32_t i = 0; i < LD_DIGEST_KEEP; i++)
		if (r->ckpts[i].slot == slot)
			return &r->ckpts[i];
	return NULL;
}

static const struct ckpt *ckpt_latest(const px_replica *r)
{
	const struct ckpt *best = NULL;
	for (uint32_t i = 0; i < LD_DIGEST_KEEP; i++)
		if (r->ckpts[i].slot != 0 &&
		    (best == NULL || r->ckpts[i].slot > best->slot))
			best = &r->ckpts[i];
	return best;
}

static void digest_alarm_raise(px_replica *r, px_digest_alarm a)
{
	if (a > r->digest_alarm)
		r->digest_alarm = a;
}

/* Leader: the digests reported at slot, ours among them. A digest that a
 * quorum shares is the cell's state there (Paxos Made Live compares the
 * replicas' databases); a replica with another one is outvoted. */
static void digest_compare(px_replica *r, uint64_t slot)
{
	if (MUTANT(r, PX_MUTANT_IGNORE_DIGEST))
		return;
	const struct ckpt *own = ckpt_find(r, slot);
	if (own == NULL)
		return;
	const conf *cf = conf_at(r, r->commit + 1);
	uint64_t d[LD_REPLICA_IDS] = {0};
	bool have[LD_REPLICA_IDS] = {false};
	for (FOR_IDS(j, cf->voters | id_bit(r->cfg.id))) {
		if (j == r->cfg.id) {
			d[j] = own->digest;
			have[j] = true;
		} else if (r->peer_ckpt[j].slot == slot) {
			d[j] = r->peer_ckpt[j].digest;
			have[j] = true;
		}
	}
	for (FOR_IDS(i, cf->voters)) {
		if (!have[i])
			continue;
		uint32_t same = 0;
		for (FOR_IDS(j, cf->voters))
			same += have[j] && d[j] == d[i];
		if (same < cf->quorum)
			continue;
		/* d[i] is the quorum's: the cell's state at slot. Followers
		 * compare theirs with it (the verified digest we announce). */
		if (d[r->cfg.id] != d[i])
			digest_alarm_raise(r, PX_DIGEST_DIVERGED);
		else if (slot > r->verified.slot)
			r->verified = (struct ckpt){slot, d[i]};
		return;
	}
	for (FOR_IDS(j, cf->voters))
		if (have[j] && d[j] != own->digest)
			digest_alarm_raise(r, PX_DIGEST_MISMATCH);
}

/* ---- restore ------------------------------------------------------------ */

static void apply_value(px_replica *r, px_actions *out, uint64_t slot,
			px_value *v);

/* Applies what the restored hints say is chosen, in order. Nothing is sent
 * or written: the actions are thrown away (no client waits yet). */
static void restore_apply(px_replica *r)
{
	px_actions scratch;
	px_actions_init(&scratch);
	for (;;) {
		entry *e = entry_at(r, r->commit + 1);
		if (e == NULL || e->chosen == NULL)
			break;
		r->commit++;
		apply_value(r, &scratch, r->commit, e->chosen);
	}
	if (r->commit > r->known_commit)
		r->known_commit = r->commit;
	conf_prune(r);
	px_actions_free(&scratch);
}

int px_replica_restore(px_replica *r, const px_record *rec)
{
	switch (rec->type) {
	case PX_REC_PROMISE:
		if (MUTANT(r, PX_MUTANT_FORGET_PROMISE))
			return 0;
		if (px_ballot_cmp(rec->ballot, r->promised) > 0)
			r->promised = rec->ballot;
		break;
	case PX_REC_VOTE: {
		if (rec->value == NULL || rec->slot == 0)
			return -1;
		if (rec->slot <= r->snap_base)
			return 0;
		entry *e = entry_get(r, rec->slot);
		if (e == NULL)
			return -1;
		if (ballot_zero(e->vballot) ||
		    px_ballot_cmp(rec->ballot, e->vballot) >= 0) {
			px_value_unref(e->vvalue);
			e->vballot = rec->ballot;
			e->vvalue = px_value_ref(rec->value);
		}
		/* A vote in ballot b is also a promise not to go below b. */
		if (!MUTANT(r, PX_MUTANT_FORGET_PROMISE) &&
		    px_ballot_cmp(rec->ballot, r->promised) > 0)
			r->promised = rec->ballot;
		break;
	}
	case PX_REC_SNAPSHOT:
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
	case PX_REC_JOINED:
		r->joined = true;
		return 0;
	case PX_REC_CHOSEN: {
		if (rec->slot == 0)
			return -1;
		if (rec->slot <= r->commit)
			return 0;
		if (rec->value != NULL) {
			/* The chosen value itself: a fact, whatever we voted.
			 */
			entry *e = entry_get(r, rec->slot);
			if (e != NULL && e->chosen == NULL) {
				e->chosen = px_value_ref(rec->value);
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
		    px_ballot_cmp(e->vballot, rec->ballot) != 0)
			return 0;
		e->chosen = px_value_ref(e->vvalue);
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

/* A snapshot is taken every snapshot_every_slots applied slots at the
 * earliest, and then once the decrees applied since the last one add up to
 * its own size (so that a large table under small decrees, ticks say, is
 * not rewritten whole every few hundred slots: snapshots cost at most about
 * as many bytes as the ledger itself), or at the latest when the in-memory
 * log would run out of room for the next interval. */
#define SNAP_SLOTS_LATEST \
	(LD_LOG_SLOTS_MAX - LD_LOG_TAIL_SLOTS - LD_WINDOW_SLOTS_MAX - 1)

static void maybe_snapshot(px_replica *r, px_actions *out)
{
	uint64_t slots = r->commit - r->snap_base;
	if (slots < r->cfg.snapshot_every_slots)
		return;
	if (slots < SNAP_SLOTS_LATEST && r->snap != NULL &&
	    r->bytes_since_snap < r->snap_len)
		return;
	r->bytes_since_snap = 0;
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
		(px_record){.type = PX_REC_SNAPSHOT,
			    .slot = r->snap_base,
			    .snap_len = (uint32_t)len,
			    .snap = copy});
	if (r->snap_base + 1 > LD_LOG_TAIL_SLOTS)
		log_truncate(r, r->snap_base + 1 - LD_LOG_TAIL_SLOTS);
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
	put_u32(&p, c->id);
	put_u64(&p, c->incarnation);
	put_str(&p, c->peer != NULL ? c->peer : "");
	put_str(&p, c->client != NULL ? c->client : "");
	return (size_t)(p - buf);
}

typedef struct change_dec {
	px_change_op op;
	uint32_t id;
	uint64_t incarnation;
	char peer[LD_URL_BYTES_MAX], client[LD_URL_BYTES_MAX];
} change_dec;

static int change_decode(const px_cmd *cmd, change_dec *c)
{
	const uint8_t *p = cmd->data, *end = cmd->data + cmd->len;
	if (cmd->len < 2 || p[0] != 1 || p[1] < PX_CHANGE_ADD ||
	    p[1] > PX_CHANGE_PROMOTE)
		return -1;
	c->op = (px_change_op)p[1];
	p += 2;
	if (get_u32(&p, end, &c->id) || c->id >= LD_REPLICA_IDS ||
	    get_u64(&p, end, &c->incarnation) || get_str(&p, end, c->peer) ||
	    get_str(&p, end, c->client) || p != end)
		return -1;
	return 0;
}

static void change_done(px_actions *out, uint64_t change_id,
			px_change_status st, int32_t hint, uint64_t slot,
			const char *why)
{
	out->changes = grow(out->changes, &out->changes_cap, out->nchanges + 1,
			    sizeof *out->changes);
	px_change_done *d = &out->changes[out->nchanges++];
	memset(d, 0, sizeof *d);
	d->change_id = change_id;
	d->status = st;
	d->leader_hint = hint;
	d->slot = slot;
	if (why != NULL)
		snprintf(d->why, sizeof d->why, "%s", why);
}

static void join(px_replica *r, px_actions *out, px_ballot b);

/* Applies a membership decree chosen at slot: a new configuration from
 * slot + PX_ALPHA. Deterministic and idempotent; why says what it did not
 * do (NULL: done). */
static const char *apply_change(px_replica *r, px_actions *out, uint64_t slot,
				const px_cmd *cmd)
{
	change_dec c;
	if (change_decode(cmd, &c) != 0)
		return "malformed membership decree";
	px_members m = conf_latest(r)->m;
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
	if (from <= conf_latest(r)->from)
		from = conf_latest(r)->from + 1;
	conf_fill(conf_push(r), &m, from, MUTANT(r, PX_MUTANT_MINORITY_QUORUM));
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
			join(r, out, (px_ballot){0, 0});
	}
	return NULL;
}

static void apply_value(px_replica *r, px_actions *out, uint64_t slot,
			px_value *v)
{
	r->bytes_since_snap += 16;
	for (uint32_t i = 0; i < v->ncmds; i++) {
		const px_cmd *cmd = &v->cmds[i];
		r->bytes_since_snap += 24 + cmd->len;
		if (cmd->client_id == PX_MEMBERS_CLIENT) {
			const char *why = apply_change(r, out, slot, cmd);
			for (uint32_t k = 0; k < r->nchreqs; k++) {
				if (r->chreqs[k].tag != cmd->seq)
					continue;
				change_done(out, r->chreqs[k].change_id,
					    why ? PX_CHANGE_REFUSED
						: PX_CHANGE_DONE,
					    -1, slot, why);
				r->chreqs[k] = r->chreqs[--r->nchreqs];
				break;
			}
			continue;
		}
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
			reply(r, out, cmd->client_id, cmd->seq, PX_REPLY_OK,
			      cmd->seq == c->seq ? c : NULL);
			waiter_remove(r, w);
		}
	}
	out->chosen = grow(out->chosen, &out->chosen_cap, out->nchosen + 1,
			   sizeof *out->chosen);
	uint64_t d = r->sm->ops->digest(r->sm);
	out->chosen[out->nchosen++] = (px_chosen){
		.slot = slot,
		.value = px_value_ref(v),
		.sm_digest = d,
	};
	ckpt_note(r, slot, d);
}

/* Applies every chosen slot after commit, in order. */
static void advance(px_replica *r, px_actions *out)
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
		     px_value_equal(e->vvalue, e->chosen)))
			persist(r, out,
				(px_record){.type = PX_REC_CHOSEN,
					    .slot = r->commit,
					    .ballot = e->vballot});
		else
			persist(r, out,
				(px_record){.type = PX_REC_CHOSEN,
					    .slot = r->commit,
					    .value = px_value_ref(e->chosen)});
		/* The proposer's bookkeeping for this slot is finished. */
		px_value_unref(e->pvalue);
		e->pvalue = NULL;
		px_value_unref(e->p1value);
		e->p1value = NULL;
	}
	if (r->commit > r->known_commit)
		r->known_commit = r->commit;
	uint64_t before = peers_mask(r);
	conf_prune(r);
	if (r->role == PX_LEADER) {
		/* Replicas no configuration in effect holds any more hear that
		 * their part is over: our commit is past their last slot. */
		for (FOR_IDS(j, before & ~peers_mask(r))) {
			px_msg *m = msg_new(r, PX_MSG_COMMIT, (uint32_t)j);
			m->ballot = r->ballot;
			m->slot = r->next_slot > 0 ? r->next_slot - 1 : 0;
			emit(r, out, m);
		}
	}
	maybe_snapshot(r, out);
}

static void learn(px_replica *r, uint64_t slot, px_value *v)
{
	entry *e = entry_get(r, slot);
	if (e == NULL || e->chosen != NULL || slot <= r->commit)
		return;
	e->chosen = px_value_ref(v);
}

/* ---- roles -------------------------------------------------------------- */

static void clear_proposer_state(px_replica *r)
{
	for (uint32_t i = 0; i < LD_LOG_SLOTS_MAX; i++) {
		entry *e = &r->log[i];
		px_value_unref(e->pvalue);
		e->pvalue = NULL;
		e->pballot = (px_ballot){0, 0};
		e->acks = 0;
		px_value_unref(e->p1value);
		e->p1value = NULL;
		e->p1ballot = (px_ballot){0, 0};
	}
}

static void reads_fail_all(px_replica *r, px_actions *out);

static void changes_fail_all(px_replica *r, px_actions *out);

static void become_follower(px_replica *r, px_actions *out, uint64_t now)
{
	reads_fail_all(r, out);
	changes_fail_all(r, out);
	if (r->role != PX_FOLLOWER) {
		clear_proposer_state(r);
		pending_drop_all(r, out);
	}
	r->role = PX_FOLLOWER;
	r->election_at_us = now + election_delay(r);
}

/* Phase 1a to every voter of a slot after from that has not promised. */
static void send_prepares_from(px_replica *r, px_actions *out, uint64_t from)
{
	for (FOR_IDS(j, voters_mask(r) & ~r->promises)) {
		if (j == r->cfg.id)
			continue;
		px_msg *m = msg_new(r, PX_MSG_PREPARE, (uint32_t)j);
		m->ballot = r->ballot;
		m->slot = from;
		/* P1 across restarts: nobody sees a ballot before our own
		 * promise of it is durable (the Part-Time Parliament's priest
		 * writes lastTried first). Otherwise a crash could make us
		 * campaign with the same ballot again and choose a second
		 * value under it. */
		emit_after_sync(r, out, m);
	}
	r->p1_sent_us = r->now_us;
}

static void send_prepares(px_replica *r, px_actions *out)
{
	send_prepares_from(r, out, r->p1_from);
}

static void changes_fail_all(px_replica *r, px_actions *out)
{
	for (uint32_t k = 0; k < r->nchreqs; k++)
		change_done(out, r->chreqs[k].change_id, PX_CHANGE_NOT_LEADER,
			    r->leader, 0,
			    "leadership changed before the change was applied "
			    "(it may still be): list the members and retry");
	r->nchreqs = 0;
}

static void start_candidacy(px_replica *r, px_actions *out)
{
	reads_fail_all(r, out);
	changes_fail_all(r, out);
	clear_proposer_state(r);
	uint64_t round = r->max_round;
	if (r->promised.round > round)
		round = r->promised.round;
	if (round + 1 >= PX_ROUND_MAX) {
		/* Rounds above PX_ROUND_MAX are refused from the wire; a cell
		 * that got here (2^62 elections, or a forged ballot) cannot
		 * campaign, and must not wrap to round 0. */
		become_follower(r, out, r->now_us);
		return;
	}
	r->role = PX_CANDIDATE;
	r->max_round = round + 1;
	/* P1: the replica id makes this ballot unique. */
	r->ballot = (px_ballot){round + 1, r->cfg.id};
	if (MUTANT(r, PX_MUTANT_SHARED_BALLOTS))
		r->ballot.id = 0;
	r->p1_from = r->commit + 1;
	r->p1_max = r->commit;
	r->promises = 0;
	r->cand_started_us = r->now_us;
	r->leader = -1;
	/* Our own acceptor answers through the same path as the others. */
	px_msg *self = msg_new(r, PX_MSG_PREPARE, r->cfg.id);
	self->ballot = r->ballot;
	self->slot = r->p1_from;
	emit(r, out, self);
	if (r->role == PX_CANDIDATE)
		send_prepares(r, out);
}

static void send_accept(px_replica *r, px_actions *out, entry *e, uint32_t to)
{
	px_msg *m = msg_new(r, PX_MSG_ACCEPT, to);
	m->ballot = r->ballot;
	m->slot = e->slot;
	m->value = px_value_ref(e->pvalue);
	emit(r, out, m);
}

static void check_chosen(px_replica *r, entry *e)
{
	if (e->chosen != NULL)
		return;
	const conf *c = conf_at(r, e->slot);
	/* A majority of the voters of this slot's configuration. */
	if (quorum_in(c, e->acks) ||
	    (MUTANT(r, PX_MUTANT_COUNT_REMOVED) &&
	     popcount64(e->acks & (c->voters | conf_latest(r)->m.removed)) >=
		     c->quorum))
		e->chosen = px_value_ref(e->pvalue);
}

/* Phase 2a for one slot: our own acceptor votes first (durably), then the
 * others. */
static void propose(px_replica *r, px_actions *out, uint64_t slot, px_value *v)
{
	entry *e = entry_get(r, slot);
	assert(e != NULL);
	assert(e->chosen == NULL);
	px_value_unref(e->pvalue);
	e->pvalue = px_value_ref(v);
	e->pballot = r->ballot;
	e->acks = 0;
	e->sent_us = r->now_us;
	if (MUTANT(r, PX_MUTANT_EARLY_CHOSEN))
		e->chosen = px_value_ref(v);
	send_accept(r, out, e, r->cfg.id);
	for (FOR_IDS(j, peers_mask(r)))
		send_accept(r, out, e, (uint32_t)j);
}

static void send_commits(px_replica *r, px_actions *out)
{
	r->hb_seq++;
	r->hb_wanted = false;
	for (FOR_IDS(j, peers_mask(r))) {
		px_msg *m = msg_new(r, PX_MSG_COMMIT, (uint32_t)j);
		m->ballot = r->ballot;
		/* The highest slot this leader has proposed or will
		 * re-propose from its phase 1: a recovering replica learns up
		 * to it before it votes (paxos.h). */
		m->slot = r->next_slot > 0 ? r->next_slot - 1 : 0;
		if (r->p1_max > m->slot)
			m->slot = r->p1_max;
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

/* Whether our phase 1 covers slot: its configuration's voters promised our
 * ballot (a majority of them). If not, asks the ones missing (same ballot,
 * from slot on) and answers false: we propose there once they promise. */
static bool p1_covers(px_replica *r, px_actions *out, uint64_t slot)
{
	const conf *c = conf_at(r, slot);
	if (quorum_in(c, r->promises))
		return true;
	if (r->now_us >= r->p1_sent_us + r->cfg.retry_us ||
	    r->p1_ext_from != slot) {
		r->p1_ext_from = slot;
		send_prepares_from(r, out, slot);
	}
	return false;
}

/* Fills the pipeline: first what phase 1 found (P3, no-ops in the gaps),
 * then the pending queue, many commands per decree, then no-ops while a
 * membership change waits for its slot to come. */
static void flush_pending(px_replica *r, px_actions *out)
{
	while (r->role == PX_LEADER &&
	       r->next_slot - 1 - r->commit < r->cfg.window_slots &&
	       entry_get(r, r->next_slot) != NULL) {
		entry *e = entry_get(r, r->next_slot);
		if (r->next_slot <= r->p1_max && e->chosen != NULL) {
			r->next_slot++;
			continue;
		}
		bool refill = r->next_slot <= r->p1_max;
		bool settle = !refill && r->pending_n == 0 &&
			      conf_latest(r)->from > r->next_slot;
		if (!refill && !settle && r->pending_n == 0)
			break;
		if (!p1_covers(r, out, r->next_slot))
			break;
		if (refill || settle) {
			px_value *v = px_value_noop();
			/* P3: the value of the highest-ballot vote, if any. */
			if (refill && e->p1value != NULL &&
			    !MUTANT(r, PX_MUTANT_IGNORE_VOTES))
				v = e->p1value;
			px_value_ref(v);
			propose(r, out, r->next_slot++, v);
			px_value_unref(v);
			continue;
		}
		uint32_t n = r->pending_n;
		if (n > r->cfg.batch_cmds)
			n = r->cfg.batch_cmds;
		px_cmd cmds[LD_BATCH_CMDS_MAX];
		for (uint32_t i = 0; i < n; i++)
			cmds[i] = r->pending[(r->pending_head + i) %
					     LD_PENDING_CMDS_MAX]
					  .cmd;
		px_value *v = px_value_new(cmds, n);
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
		px_value_unref(v);
		if (r->role != PX_LEADER)
			break;
	}
}

static void become_leader(px_replica *r, px_actions *out)
{
	r->role = PX_LEADER;
	r->leader = (int32_t)r->cfg.id;
	r->leader_ballot = r->ballot;
	r->lead_since_us = r->now_us;
	for (uint32_t j = 0; j < LD_REPLICA_IDS; j++) {
		r->peer_heard_us[j] = r->now_us;
		r->hb_acked[j] = 0;
	}
	/* Slots phase 1 reported chosen are applied before anything new. */
	advance(r, out);
	/* Every slot the quorum reported is proposed again (flush_pending),
	 * the gaps between them filled with no-ops, before any new command;
	 * within the window, so that the configuration of every slot we
	 * propose in is known (paxos.h: membership). */
	r->next_slot = r->commit + 1 > r->p1_from ? r->commit + 1 : r->p1_from;
	r->p1_ext_from = 0;
	flush_pending(r, out);
	if (r->role != PX_LEADER)
		return;
	send_commits(r, out);
}

/* ---- message handlers --------------------------------------------------- */

static void note_ballot(px_replica *r, px_ballot b)
{
	if (b.round > r->max_round)
		r->max_round = b.round;
}

static bool live_leader_other_than(px_replica *r, uint32_t from)
{
	if (r->role == PX_LEADER)
		return from != r->cfg.id;
	return r->leader >= 0 && (uint32_t)r->leader != from &&
	       (uint32_t)r->leader != r->cfg.id &&
	       r->now_us < r->heard_us + r->cfg.election_timeout_us;
}

static void reject(px_replica *r, px_actions *out, const px_msg *m)
{
	px_msg *x = msg_new(r, PX_MSG_REJECT, m->from);
	x->ballot = r->promised;
	x->slot = m->slot;
	emit(r, out, x);
}

/* A message from a leader (or would-be leader) at ballot b >= our promise. */
static void heard_leader(px_replica *r, px_actions *out, const px_msg *m)
{
	if (m->from == r->cfg.id)
		return;
	if (r->role != PX_FOLLOWER && px_ballot_cmp(m->ballot, r->ballot) >= 0)
		become_follower(r, out, r->now_us);
	if (r->role == PX_FOLLOWER) {
		r->leader = (int32_t)m->from;
		r->leader_ballot = m->ballot;
		r->heard_us = r->now_us;
		r->election_at_us = r->now_us + election_delay(r);
	}
}

static void note_commit(px_replica *r, const px_msg *m)
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

static void maybe_catchup(px_replica *r, px_actions *out)
{
	if (r->role == PX_LEADER || r->known_commit <= r->commit ||
	    r->known_commit_from < 0 ||
	    (uint32_t)r->known_commit_from == r->cfg.id)
		return;
	if (r->catchup_sent_us != 0 &&
	    r->now_us < r->catchup_sent_us + r->cfg.retry_us)
		return;
	px_msg *m =
		msg_new(r, PX_MSG_CATCHUP_REQ, (uint32_t)r->known_commit_from);
	m->slot = r->commit + 1;
	r->catchup_sent_us = r->now_us;
	r->catchup_to = r->known_commit_from;
	r->catchup_asked_us = r->now_us;
	emit(r, out, m);
}

static void requeue_proposals(px_replica *r, px_actions *out);

/* ---- recovery from an empty disk (paxos.h) ------------------------------ */

static bool holds_votes(const px_replica *r)
{
	for (uint32_t i = 0; i < LD_LOG_SLOTS_MAX; i++)
		if (r->log[i].slot != 0 && !ballot_zero(r->log[i].vballot))
			return true;
	return false;
}

/* Nothing chosen here, as far as this replica's disk knows: no vote, nothing
 * applied. (A promise alone chose nothing.) */
static bool replica_empty(const px_replica *r)
{
	return r->commit == 0 && r->snap_base == 0 && !holds_votes(r);
}

/* From now on this replica promises and votes. b: the ballot it promises
 * at once (zero for a new cell). PROMISE before JOINED: a disk that keeps
 * a prefix of the writes never holds JOINED without the promise. */
static void join(px_replica *r, px_actions *out, px_ballot b)
{
	r->joined = true;
	if (px_ballot_cmp(b, r->promised) > 0) {
		r->promised = b;
		persist_promise(r, out);
	}
	note_ballot(r, b);
	persist(r, out, (px_record){.type = PX_REC_JOINED});
	r->election_at_us = r->now_us + election_delay(r);
}

static void send_probes(px_replica *r, px_actions *out)
{
	r->probe_round++;
	/* Only answers to probes sent once every candidacy that could still
	 * count a promise this replica gave before it lost its disk has run
	 * out (one election timeout; twice that covers any drift we allow)
	 * bound what it promised (paxos.h). */
	if (r->probe_eligible_round == 0 &&
	    r->now_us >= r->started_us + 2 * r->cfg.election_timeout_us)
		r->probe_eligible_round = r->probe_round;
	for (FOR_IDS(j, peers_mask(r))) {
		px_msg *m = msg_new(r, PX_MSG_PROBE, (uint32_t)j);
		m->slot = r->probe_round;
		m->incarnation = r->cfg.incarnation;
		emit(r, out, m);
	}
	r->probe_at_us = r->now_us + r->cfg.retry_us;
}

static void on_probe(px_replica *r, const px_msg *m, px_actions *out)
{
	px_msg *a = msg_new(r, PX_MSG_PROBE_ACK, m->from);
	a->ballot = r->promised;
	a->slot = m->slot;
	a->flags =
		(r->joined ? PX_FLAG_VOTER : 0) |
		(holds_votes(r) ? PX_FLAG_HAS_VOTES : 0) |
		(conf_latest(r)->m.removed & id_bit(m->from) ? PX_FLAG_REMOVED
							     : 0);
	emit(r, out, a);
	/* A recovering replica asks for a leader above M: run phase 1 again
	 * above it, as the current leader (the others still follow us). */
	if (r->role == PX_LEADER && !ballot_zero(m->ballot) &&
	    px_ballot_cmp(m->ballot, r->ballot) >= 0) {
		requeue_proposals(r, out);
		start_candidacy(r, out);
	}
}

static void on_probe_ack(px_replica *r, const px_msg *m, px_actions *out)
{
	if (m->flags & PX_FLAG_REMOVED)
		r->told_removed = true;
	if (r->role != PX_LEADER) {
		note_commit(r, m);
		maybe_catchup(r, out);
	}
	if (r->joined || m->slot == 0 || m->slot > r->probe_round ||
	    m->slot <= r->probe_acks[m->from].round)
		return;
	r->probe_acks[m->from].round = m->slot;
	r->probe_acks[m->from].promised = m->ballot;
	r->probe_acks[m->from].voter = (m->flags & PX_FLAG_VOTER) != 0;
	r->probe_acks[m->from].empty = !(m->flags & PX_FLAG_HAS_VOTES) &&
				       m->commit == 0 && m->base == 0;
}

/* A COMMIT from a leader while recovering: a leader above M ran its phase 1
 * without us (we answer none), so once we have learned what it proposed
 * then, we may vote. A leader at or below M is asked to go above it. */
static void recover_heard_leader(px_replica *r, const px_msg *m,
				 px_actions *out)
{
	if (!r->recover_known)
		return;
	if (px_ballot_cmp(m->ballot, r->recover_above) > 0) {
		if (px_ballot_cmp(m->ballot, r->recover_ballot) > 0) {
			r->recover_ballot = m->ballot;
			r->recover_horizon = m->slot;
		}
		return;
	}
	if (r->now_us < r->nudge_at_us)
		return;
	px_msg *p = msg_new(r, PX_MSG_PROBE, m->from);
	p->ballot = r->recover_above;
	emit(r, out, p);
	r->nudge_at_us = r->now_us + r->cfg.election_timeout_us;
}

/* Decides, after each step, whether a replica without JOINED may vote. */
static void recovery_step(px_replica *r, px_actions *out)
{
	if (r->joined || r->leaving || r->told_removed)
		return;
	/* Only a voter recovers its vote; a learner waits for its
	 * promotion (apply_change), a newcomer for being added. */
	const conf *cf = conf_at(r, r->commit + 1);
	if (!(cf->voters & id_bit(r->cfg.id)))
		return;
	/* Promoted while a learner, naming this very disk (we may have
	 * learned it from a snapshot rather than the decree): this disk
	 * never voted, so it votes from now on (apply_change). */
	const px_member *me = px_members_find(&cf->m, r->cfg.id);
	if (me != NULL && me->incarnation != 0 &&
	    me->incarnation == r->cfg.incarnation) {
		join(r, out, (px_ballot){0, 0});
		return;
	}
	uint32_t n = popcount64(cf->voters);
	if (n == 1 || MUTANT(r, PX_MUTANT_WIPED_VOTES)) {
		join(r, out, (px_ballot){0, 0});
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
		px_ballot mx = r->promised;
		for (FOR_IDS(j, cf->voters)) {
			if (j == r->cfg.id)
				continue;
			if (r->probe_acks[j].round == 0 ||
			    !r->probe_acks[j].empty)
				all = false;
			else if (px_ballot_cmp(r->probe_acks[j].promised, mx) >
				 0)
				mx = r->probe_acks[j].promised;
		}
		if (all) {
			join(r, out, mx);
			return;
		}
	}
	/* The configuration must be the cell's: one that changed since the
	 * one we know could have other voters. We know the configuration of
	 * every slot up to commit + PX_ALPHA. */
	if (!r->recover_known && r->probe_eligible_round != 0 &&
	    r->commit + PX_ALPHA > r->known_commit) {
		/* In every configuration of a slot after commit: n - q + 1
		 * voters meet the q - 1 others that promised any ballot we
		 * promised and that reached a quorum. */
		bool enough = true;
		px_ballot mx = {0, 0};
		for (uint32_t c = 0; c < r->nconfs; c++) {
			const conf *k = &r->confs[c];
			uint32_t cnt = 0;
			for (FOR_IDS(j, k->voters)) {
				const struct probe_ack *pa = &r->probe_acks[j];
				if (j == r->cfg.id || !pa->voter ||
				    pa->round < r->probe_eligible_round)
					continue;
				cnt++;
				if (px_ballot_cmp(pa->promised, mx) > 0)
					mx = pa->promised;
			}
			uint32_t kn = popcount64(k->voters);
			if (cnt + k->quorum < kn + 1)
				enough = false;
		}
		if (enough) {
			r->recover_known = true;
			r->recover_above = mx;
			note_ballot(r, mx);
		}
	}
	if (r->recover_known && !ballot_zero(r->recover_ballot) &&
	    r->commit >= r->recover_horizon)
		join(r, out, r->recover_ballot);
}

static void on_prepare(px_replica *r, const px_msg *m, px_actions *out)
{
	/* Recovery: a replica that may have lost its promises and votes
	 * answers no phase 1 (paxos.h). Not answering is always safe. */
	if (!r->joined)
		return;
	/* Only a voter of a configuration we know may lead: a removed
	 * replica that does not know it yet cannot disrupt the cell. It is
	 * told how far the ledger got instead (a REJECT carries our commit),
	 * so it catches up and learns that it left. */
	if (!(voters_mask(r) & id_bit(m->from))) {
		if (r->commit > m->commit) {
			px_msg *x = msg_new(r, PX_MSG_REJECT, m->from);
			x->slot = m->slot;
			emit(r, out, x);
		}
		return;
	}
	int c = px_ballot_cmp(m->ballot, r->promised);
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
		if (r->role != PX_FOLLOWER && m->from != r->cfg.id &&
		    px_ballot_cmp(m->ballot, r->ballot) > 0)
			become_follower(r, out, r->now_us);
	}
	/* The promise carries every vote from the asked slot on (P3), and
	 * what this replica knows chosen there: a replica that recovered from
	 * an empty disk holds no vote for the slots its lost votes helped
	 * choose, only the knowledge that they were chosen. It leaves once
	 * the promise and those votes are durable. */
	px_msg *p = msg_new(r, PX_MSG_PROMISE, m->from);
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
				p->votes[p->nvotes++] = (px_vote){
					.slot = s,
					.value = px_value_ref(e->chosen),
					.chosen = true,
				};
			else if (!ballot_zero(e->vballot))
				p->votes[p->nvotes++] = (px_vote){
					.slot = s,
					.ballot = e->vballot,
					.value = px_value_ref(e->vvalue),
				};
		}
	}
	emit_after_sync(r, out, p);
}

/* Takes a promise's votes for slots from `from` on into phase 1's state:
 * the chosen ones are learned, the others kept when of the highest ballot
 * so far (P3). false when a vote lies beyond what the log can hold: we are
 * far behind, and the caller catches up instead. */
static bool p1_take_votes(px_replica *r, const px_msg *m, uint64_t from)
{
	for (uint32_t i = 0; i < m->nvotes; i++) {
		const px_vote *v = &m->votes[i];
		if (v->slot < from)
			continue;
		entry *e = entry_get(r, v->slot);
		if (e == NULL)
			return false;
		if (v->chosen) {
			/* A fact, whatever anyone voted: no proposal needed. */
			learn(r, v->slot, v->value);
		} else if (ballot_zero(e->p1ballot) ||
			   px_ballot_cmp(v->ballot, e->p1ballot) > 0) {
			px_value_unref(e->p1value);
			e->p1ballot = v->ballot;
			e->p1value = px_value_ref(v->value);
		}
		if (v->slot > r->p1_max)
			r->p1_max = v->slot;
	}
	return true;
}

/* A leader's phase 1 reaching voters of a configuration that its first
 * quorum did not cover (p1_covers): their votes constrain the slots we have
 * not proposed in yet, as any promise does. */
static void on_promise_leading(px_replica *r, const px_msg *m, px_actions *out)
{
	if (m->base >= r->next_slot) {
		/* It applied slots we are proposing: we are behind. */
		note_commit(r, m);
		become_follower(r, out, r->now_us);
		maybe_catchup(r, out);
		return;
	}
	if (!p1_take_votes(r, m, r->next_slot)) {
		note_commit(r, m);
		become_follower(r, out, r->now_us);
		maybe_catchup(r, out);
		return;
	}
	r->promises |= id_bit(m->from);
	r->peer_heard_us[m->from] = r->now_us;
	flush_pending(r, out);
}

static void on_promise(px_replica *r, const px_msg *m, px_actions *out)
{
	if (r->role == PX_LEADER && px_ballot_cmp(m->ballot, r->ballot) == 0 &&
	    !(r->promises & id_bit(m->from))) {
		on_promise_leading(r, m, out);
		return;
	}
	if (r->role != PX_CANDIDATE || px_ballot_cmp(m->ballot, r->ballot) != 0)
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
	if (!p1_take_votes(r, m, r->p1_from)) {
		note_commit(r, m);
		maybe_catchup(r, out);
		return;
	}
	r->promises |= id_bit(m->from);
	/* A majority of every configuration of a slot after commit (those
	 * that later decrees add are asked for when we get there). */
	if (quorum_all(r, r->promises))
		become_leader(r, out);
}

static void on_accept(px_replica *r, const px_msg *m, px_actions *out)
{
	if (!r->joined) {
		/* Recovering: no vote, but a leader worth catching up from. */
		heard_leader(r, out, m);
		note_commit(r, m);
		maybe_catchup(r, out);
		return;
	}
	if (px_ballot_cmp(m->ballot, r->promised) < 0) {
		reject(r, out, m);
		return;
	}
	if (px_ballot_cmp(m->ballot, r->promised) > 0) {
		/* Leader stability, as for a 1a: while we hear a live leader,
		 * a 2a from anyone else at a higher ballot goes unanswered
		 * (not answering is always safe), so one stray or forged
		 * ballot cannot raise our promise past the leader's. A leader
		 * does take it: someone above it leads, and it steps down. */
		if (r->role != PX_LEADER && live_leader_other_than(r, m->from))
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
	px_value_unref(e->vvalue);
	e->vballot = m->ballot;
	e->vvalue = px_value_ref(m->value);
	persist(r, out,
		(px_record){.type = PX_REC_VOTE,
			    .ballot = m->ballot,
			    .slot = m->slot,
			    .value = px_value_ref(m->value)});
	px_msg *a = msg_new(r, PX_MSG_ACCEPTED, m->from);
	a->ballot = m->ballot;
	a->slot = m->slot;
	if (MUTANT(r, PX_MUTANT_VOTE_BEFORE_SYNC))
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
			    px_ballot_cmp(x->vballot, m->ballot) != 0)
				break;
			learn(r, s, x->vvalue);
		}
		advance(r, out);
		maybe_catchup(r, out);
	}
}

static void on_accepted(px_replica *r, const px_msg *m, px_actions *out)
{
	if (r->role != PX_LEADER || px_ballot_cmp(m->ballot, r->ballot) != 0)
		return;
	r->peer_heard_us[m->from] = r->now_us;
	entry *e = entry_at(r, m->slot);
	if (e == NULL || e->pvalue == NULL ||
	    px_ballot_cmp(e->pballot, r->ballot) != 0)
		return;
	e->acks |= id_bit(m->from);
	check_chosen(r, e);
	advance(r, out);
	flush_pending(r, out);
}

/* Puts the commands of this leader's unchosen proposals back at the front
 * of the pending queue, in ledger order. */
static void requeue_proposals(px_replica *r, px_actions *out)
{
	for (uint64_t s = r->next_slot; s-- > r->commit + 1;) {
		entry *e = entry_at(r, s);
		if (e == NULL || e->chosen != NULL || e->pvalue == NULL ||
		    px_ballot_cmp(e->pballot, r->ballot) != 0)
			continue;
		for (uint32_t i = e->pvalue->ncmds; i-- > 0;) {
			const px_cmd *c = &e->pvalue->cmds[i];
			int w = waiter_find(r, c->client_id, c->seq);
			if (w < 0)
				continue; /* nobody waits here: not ours */
			uint8_t *data = NULL;
			if (r->pending_n >= LD_PENDING_CMDS_MAX ||
			    (data = malloc(c->len ? c->len : 1)) == NULL) {
				reply(r, out, c->client_id, c->seq,
				      PX_REPLY_BUSY, NULL);
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

static void on_reject(px_replica *r, const px_msg *m, px_actions *out)
{
	note_ballot(r, m->ballot);
	if (ballot_zero(m->ballot)) {
		/* From a replica that does not count us as a voter: we may
		 * have been removed while away. Catch up to find out. */
		if (r->role == PX_CANDIDATE)
			become_follower(r, out, r->now_us);
		note_commit(r, m);
		maybe_catchup(r, out);
		return;
	}
	if (r->role == PX_FOLLOWER)
		return;
	if (px_ballot_cmp(m->ballot, r->ballot) > 0) {
		if (r->role == PX_LEADER) {
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
	if (r->role == PX_LEADER && m->base >= m->slot && m->slot > r->commit) {
		/* The acceptor already applied a slot we are proposing: we
		 * are behind. Step down and catch up. */
		note_commit(r, m);
		become_follower(r, out, r->now_us);
		maybe_catchup(r, out);
	}
}

static void on_commit(px_replica *r, const px_msg *m, px_actions *out)
{
	if (px_ballot_cmp(m->ballot, r->promised) < 0) {
		/* A leader we can no longer serve: tell it, so it re-runs
		 * phase 1 above our promise instead of stalling. */
		reject(r, out, m);
		return;
	}
	heard_leader(r, out, m);
	if (r->role == PX_LEADER)
		return;
	if (m->flags & PX_FLAG_HANDOVER) {
		/* The leader leaves the cell: do not wait for it to fall
		 * silent; the one it names campaigns now. */
		r->leader = -1;
		r->heard_us = 0;
		if ((m->flags & PX_FLAG_CAMPAIGN) && votes_now(r) &&
		    r->digest_alarm != PX_DIGEST_DIVERGED &&
		    r->now_us >= r->resign_until_us) {
			note_commit(r, m);
			start_candidacy(r, out);
			return;
		}
	}
	note_commit(r, m);
	for (uint64_t s = r->commit + 1; s <= m->commit; s++) {
		entry *x = entry_at(r, s);
		if (x == NULL || x->vvalue == NULL ||
		    px_ballot_cmp(x->vballot, m->ballot) != 0)
			break;
		learn(r, s, x->vvalue);
	}
	advance(r, out);
	maybe_catchup(r, out);
	if (!MUTANT(r, PX_MUTANT_IGNORE_DIGEST)) {
		/* A digest a quorum shares is the cell's state there: ours
		 * differing from it means our state is not the cell's. One
		 * that differs from the leader's alone may be the leader's
		 * fault: an alarm, not a verdict. */
		const struct ckpt *v = ckpt_find(r, m->vslot);
		if (v != NULL && v->digest != m->vdigest)
			digest_alarm_raise(r, PX_DIGEST_DIVERGED);
		const struct ckpt *own = ckpt_find(r, m->dslot);
		if (own != NULL && own->digest != m->digest)
			digest_alarm_raise(r, PX_DIGEST_MISMATCH);
	}
	if (!r->joined)
		recover_heard_leader(r, m, out);
	/* A replica that cannot vote answers without PX_FLAG_VOTER: the
	 * leader learns how far it got (to promote a learner), but does not
	 * count it as live. */
	px_msg *a = msg_new(r, PX_MSG_COMMIT_ACK, m->from);
	a->ballot = m->ballot;
	a->incarnation = r->cfg.incarnation;
	a->flags = r->joined ? PX_FLAG_VOTER : 0;
	if (!r->joined) {
		emit(r, out, a);
		return;
	}
	a->hb = m->hb;
	const struct ckpt *c = ckpt_find(r, m->dslot);
	if (c != NULL) {
		a->dslot = c->slot;
		a->digest = c->digest;
	}
	emit(r, out, a);
}

static void on_commit_ack(px_replica *r, const px_msg *m, px_actions *out)
{
	(void)out;
	if (r->role == PX_LEADER && px_ballot_cmp(m->ballot, r->ballot) == 0) {
		r->peer_commit[m->from] = m->commit;
		r->peer_inc[m->from] = m->incarnation;
		if (!(m->flags & PX_FLAG_VOTER))
			return;
		r->peer_heard_us[m->from] = r->now_us;
		if (m->hb > r->hb_acked[m->from] && m->hb <= r->hb_seq)
			r->hb_acked[m->from] = m->hb;
		if (m->dslot != 0) {
			r->peer_ckpt[m->from] =
				(struct ckpt){m->dslot, m->digest};
			digest_compare(r, m->dslot);
			if (r->digest_alarm == PX_DIGEST_DIVERGED) {
				/* Outvoted: our table is not the cell's, so
				 * neither our lease timing nor our reads may
				 * be trusted. Let another lead. */
				r->leader = -1;
				become_follower(r, out, r->now_us);
			}
		}
	}
}

static void on_catchup_req(px_replica *r, const px_msg *m, px_actions *out)
{
	if (m->slot > r->commit)
		return;
	if (m->slot < r->log_start || entry_at(r, m->slot) == NULL ||
	    entry_at(r, m->slot)->chosen == NULL) {
		if (r->snap == NULL || r->snap_base < m->slot)
			return;
		px_msg *s = msg_new(r, PX_MSG_SNAPSHOT, m->from);
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
	px_msg *c = msg_new(r, PX_MSG_CATCHUP, m->from);
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
			(px_vote){.slot = s, .value = px_value_ref(e->chosen)};
	}
	c->slot = m->slot;
	emit(r, out, c);
}

/* Whether m answers the catch-up request this replica made last. */
static bool catchup_asked(const px_replica *r, const px_msg *m)
{
	return r->catchup_to == (int32_t)m->from &&
	       r->now_us < r->catchup_asked_us + r->cfg.election_timeout_us;
}

static void on_catchup(px_replica *r, const px_msg *m, px_actions *out)
{
	/* A leader learns only from its own quorums (see the top). */
	if (r->role == PX_LEADER || !catchup_asked(r, m))
		return;
	note_commit(r, m);
	for (uint32_t i = 0; i < m->nvotes; i++)
		learn(r, m->votes[i].slot, m->votes[i].value);
	advance(r, out);
	r->catchup_sent_us = 0;
	maybe_catchup(r, out);
}

static void on_snapshot(px_replica *r, const px_msg *m, px_actions *out)
{
	if (r->role == PX_LEADER || m->base <= r->commit ||
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
		(px_record){.type = PX_REC_SNAPSHOT,
			    .slot = m->base,
			    .snap_len = m->snap_len,
			    .snap = copy});
	out->installed_snapshot = true;
	out->snapshot_base = m->base;
	/* The state our digests described is gone: so are they, and what
	 * comparing them found. */
	memset(r->ckpts, 0, sizeof r->ckpts);
	r->digest_alarm = PX_DIGEST_OK;
	ckpt_note(r, m->base, r->sm->ops->digest(r->sm));
	if (r->role == PX_CANDIDATE)
		become_follower(r, out, r->now_us);
	advance(r, out);
	r->catchup_sent_us = 0;
	maybe_catchup(r, out);
}

static void handle_msg(px_replica *r, const px_msg *m, px_actions *out)
{
	note_ballot(r, m->ballot);
	switch (m->type) {
	case PX_MSG_PREPARE:
		on_prepare(r, m, out);
		break;
	case PX_MSG_PROMISE:
		on_promise(r, m, out);
		break;
	case PX_MSG_ACCEPT:
		on_accept(r, m, out);
		break;
	case PX_MSG_ACCEPTED:
		on_accepted(r, m, out);
		break;
	case PX_MSG_REJECT:
		on_reject(r, m, out);
		break;
	case PX_MSG_COMMIT:
		on_commit(r, m, out);
		break;
	case PX_MSG_COMMIT_ACK:
		on_commit_ack(r, m, out);
		break;
	case PX_MSG_CATCHUP_REQ:
		on_catchup_req(r, m, out);
		break;
	case PX_MSG_CATCHUP:
		on_catchup(r, m, out);
		break;
	case PX_MSG_SNAPSHOT:
		on_snapshot(r, m, out);
		break;
	case PX_MSG_PROBE:
		on_probe(r, m, out);
		break;
	case PX_MSG_PROBE_ACK:
		on_probe_ack(r, m, out);
		break;
	}
}

/* ---- client commands ---------------------------------------------------- */

static void on_submit(px_replica *r, const px_cmd *cmd, px_actions *out)
{
	if (cmd->client_id == 0 || cmd->seq == 0 ||
	    cmd->len > LD_CMD_BYTES_MAX ||
	    (cmd->len > 0 && cmd->data == NULL)) {
		reply(r, out, cmd->client_id, cmd->seq, PX_REPLY_INVALID, NULL);
		return;
	}
	if (r->role == PX_FOLLOWER) {
		reply(r, out, cmd->client_id, cmd->seq, PX_REPLY_NOT_LEADER,
		      NULL);
		return;
	}
	const client_ent *c = client_find(r, cmd->client_id);
	if (c != NULL && cmd->seq <= c->seq) {
		/* A retry of a command already applied: answer from the
		 * table, do not apply again. */
		reply(r, out, cmd->client_id, cmd->seq, PX_REPLY_OK,
		      cmd->seq == c->seq ? c : NULL);
		return;
	}
	if (waiter_find(r, cmd->client_id, cmd->seq) >= 0)
		return; /* already queued or in flight here */
	if (r->pending_n >= LD_PENDING_CMDS_MAX) {
		reply(r, out, cmd->client_id, cmd->seq, PX_REPLY_BUSY, NULL);
		return;
	}
	uint8_t *data = malloc(cmd->len ? cmd->len : 1);
	if (data == NULL) {
		reply(r, out, cmd->client_id, cmd->seq, PX_REPLY_BUSY, NULL);
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
	if (conf_latest(r)->from > r->commit + 1) {
		*until = conf_latest(r)->from;
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
	for (FOR_IDS(j, peers_mask(r)))
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
	*tag = (rng_next(r) ^ r->now_us ^ ((uint64_t)r->cfg.id << 56)) | 1;
	pending_cmd *p = &r->pending[(r->pending_head + r->pending_n) %
				     LD_PENDING_CMDS_MAX];
	p->cmd = (px_cmd){.client_id = PX_MEMBERS_CLIENT,
			  .seq = *tag,
			  .len = (uint32_t)len,
			  .data = data};
	r->pending_n++;
	return 0;
}

static void on_change(px_replica *r, uint64_t id, const px_change *c,
		      px_actions *out)
{
	char why[160];
	if (r->role != PX_LEADER) {
		change_done(out, id, PX_CHANGE_NOT_LEADER, r->leader, 0,
			    "this replica does not lead");
		return;
	}
	const px_members *m = &conf_latest(r)->m;
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
				change_done(out, id, PX_CHANGE_DONE, -1, 0,
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
				change_done(out, id, PX_CHANGE_DONE, -1, 0,
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
		const conf *now = conf_at(r, r->commit + 1);
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
				change_done(out, id, PX_CHANGE_BUSY, -1, 0,
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
		change_done(out, id, PX_CHANGE_BUSY, -1, 0, why);
		return;
	}
	uint64_t tag;
	if (queue_change(r, c, &tag) != 0) {
		snprintf(why, sizeof why, "the leader's queue is full");
		goto refuse;
	}
	r->chreqs = grow(r->chreqs, &r->chreqs_cap, r->nchreqs + 1,
			 sizeof *r->chreqs);
	r->chreqs[r->nchreqs++] = (change_req){id, tag};
	flush_pending(r, out);
	return;
refuse:
	change_done(out, id, PX_CHANGE_REFUSED, -1, 0, why);
}

/* A learner that has caught up (it answered our heartbeat with a commit
 * close to ours, and its disk's incarnation) is promoted to voter. */
static void maybe_promote(px_replica *r, px_actions *out)
{
	const px_members *m = &conf_latest(r)->m;
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
			flush_pending(r, out);
		return;
	}
}

/* A leader that applied its own removal hands over to the voter of the new
 * configuration that has come furthest, and steps down. */
static void hand_over(px_replica *r, px_actions *out)
{
	const conf *nc = conf_latest(r);
	int32_t best = -1;
	for (FOR_IDS(j, nc->voters & live_mask(r) & ~id_bit(r->cfg.id)))
		if (best < 0 || r->peer_commit[j] > r->peer_commit[best])
			best = (int32_t)j;
	for (FOR_IDS(j, peers_mask(r))) {
		px_msg *m = msg_new(r, PX_MSG_COMMIT, (uint32_t)j);
		m->ballot = r->ballot;
		m->slot = r->next_slot > 0 ? r->next_slot - 1 : 0;
		m->flags = PX_FLAG_HANDOVER |
			   ((int32_t)j == best ? PX_FLAG_CAMPAIGN : 0);
		emit(r, out, m);
	}
	changes_fail_all(r, out);
	r->leader = -1;
	become_follower(r, out, r->now_us);
}

static void maybe_hand_over(px_replica *r, px_actions *out)
{
	if (r->role == PX_LEADER && r->leaving)
		hand_over(r, out);
}

/* PX_EV_RESIGN: the caller cannot serve (no file descriptors left, a disk
 * that takes no writes). A leader hands over; nobody campaigns until an
 * election timeout after the last such event. */
static void on_resign(px_replica *r, px_actions *out)
{
	r->resign_until_us = r->now_us + 2 * r->cfg.election_timeout_us;
	if (r->role == PX_LEADER)
		hand_over(r, out);
	else if (r->role == PX_CANDIDATE)
		become_follower(r, out, r->now_us);
}

/* ---- linearizable reads (ReadIndex) -------------------------------------- */

static void read_done(px_actions *out, uint64_t id, bool ok)
{
	out->reads = grow(out->reads, &out->reads_cap, out->nreads + 1,
			  sizeof *out->reads);
	out->reads[out->nreads++] = (px_read_done){id, ok};
}

static void reads_fail_all(px_replica *r, px_actions *out)
{
	for (uint32_t i = 0; i < r->npreads; i++)
		read_done(out, r->preads[i].id, false);
	r->npreads = 0;
	r->hb_wanted = false;
}

/* The newest heartbeat round a quorum has answered at our ballot (we answer
 * our own at once). */
static uint64_t hb_confirmed(const px_replica *r)
{
	if (MUTANT(r, PX_MUTANT_READ_LOCAL))
		return r->hb_seq;
	/* In every configuration of a slot after commit, the q-th highest
	 * answer among its voters (ours is the latest round). */
	uint64_t best = r->hb_seq;
	for (uint32_t c = 0; c < r->nconfs; c++) {
		const conf *cf = &r->confs[c];
		uint64_t a[LD_REPLICAS_MAX];
		uint32_t n = 0;
		for (FOR_IDS(j, cf->voters))
			a[n++] = j == r->cfg.id ? r->hb_seq : r->hb_acked[j];
		for (uint32_t i = 1; i < n; i++)
			for (uint32_t k = i; k > 0 && a[k] > a[k - 1]; k--) {
				uint64_t t = a[k];
				a[k] = a[k - 1];
				a[k - 1] = t;
			}
		uint64_t got = cf->quorum >= 1 && cf->quorum <= n
				       ? a[cf->quorum - 1]
				       : 0;
		if (got < best)
			best = got;
	}
	return best;
}

/* A read that arrives now is answered once a round sent after now is
 * confirmed (no newer ballot had a quorum then) and commit reaches every
 * slot proposed before now: every write acknowledged before the read was
 * chosen in one of those slots (P2 for those a former leader chose: our
 * phase 1 saw them). */
static void on_read(px_replica *r, uint64_t id, px_actions *out)
{
	if (r->role != PX_LEADER || !r->joined) {
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

static void reads_check(px_replica *r, px_actions *out)
{
	if (r->npreads == 0 || r->role != PX_LEADER)
		return;
	uint64_t hb_ok = hb_confirmed(r);
	/* One round in flight at a time: reads that arrive meanwhile share
	 * the next one, so a burst of reads costs a few round trips. */
	if (r->hb_wanted && hb_ok >= r->hb_seq)
		send_commits(r, out);
	hb_ok = hb_confirmed(r);
	for (uint32_t i = 0; i < r->npreads;) {
		struct pending_read *p = &r->preads[i];
		if (p->need <= hb_ok && (r->commit >= p->index ||
					 MUTANT(r, PX_MUTANT_READ_LOCAL))) {
			read_done(out, p->id, true);
			r->preads[i] = r->preads[--r->npreads];
		} else {
			i++;
		}
	}
}

/* ---- timers ------------------------------------------------------------- */

static void on_tick(px_replica *r, px_actions *out)
{
	uint64_t now = r->now_us;
	switch (r->role) {
	case PX_FOLLOWER:
		if (r->leaving && !gone(r) && r->known_commit <= r->commit &&
		    now >= r->catchup_sent_us + r->cfg.retry_us) {
			/* Removed, and waiting for the ledger to pass the
			 * slots that still count us: ask how far it got
			 * (the leader stops writing to us once it has). */
			uint64_t v = conf_latest(r)->voters;
			if (r->leader >= 0)
				v = id_bit((uint32_t)r->leader);
			uint32_t to = (uint32_t)__builtin_ctzll(
				v ? v : id_bit(r->cfg.id));
			if (to != r->cfg.id) {
				px_msg *m = msg_new(r, PX_MSG_CATCHUP_REQ, to);
				m->slot = r->commit + 1;
				r->catchup_sent_us = now;
				r->catchup_to = (int32_t)to;
				r->catchup_asked_us = now;
				emit(r, out, m);
			}
		}
		if (!r->joined) {
			if (now >= r->probe_at_us)
				send_probes(r, out);
		} else if (now >= r->election_at_us) {
			/* Only a voter of the next slot's configuration
			 * campaigns; not one that is leaving the cell. */
			if (r->digest_alarm == PX_DIGEST_DIVERGED ||
			    !votes_now(r) || now < r->resign_until_us) {
				r->election_at_us = now + election_delay(r);
				/* One that may not vote and hears no leader
				 * asks the members how far the ledger got
				 * (it may have been added, promoted or
				 * removed while it was away). */
				if (!r->leaving && r->role == PX_FOLLOWER)
					send_probes(r, out);
			} else {
				start_candidacy(r, out);
			}
		}
		break;
	case PX_CANDIDATE:
		if (now >= r->cand_started_us + r->cfg.election_timeout_us)
			become_follower(r, out, now);
		else if (now >= r->p1_sent_us + r->cfg.retry_us)
			send_prepares(r, out);
		break;
	case PX_LEADER: {
		/* Check quorum: a leader that has not heard a majority for an
		 * election timeout steps down rather than block the cell. */
		uint64_t live = id_bit(r->cfg.id);
		for (FOR_IDS(j, peers_mask(r)))
			if (now <
			    r->peer_heard_us[j] + r->cfg.election_timeout_us)
				live |= id_bit((uint32_t)j);
		if (!quorum_all(r, live)) {
			r->leader = -1;
			become_follower(r, out, now);
			break;
		}
		maybe_promote(r, out);
		if (now >= r->heartbeat_at_us)
			send_commits(r, out);
		for (uint64_t s = r->commit + 1; s < r->next_slot; s++) {
			entry *e = entry_at(r, s);
			if (e == NULL || e->chosen != NULL ||
			    e->pvalue == NULL ||
			    now < e->sent_us + r->cfg.retry_us)
				continue;
			e->sent_us = now;
			for (FOR_IDS(j, peers_mask(r) & ~e->acks))
				send_accept(r, out, e, (uint32_t)j);
		}
		break;
	}
	}
	maybe_catchup(r, out);
}

static uint64_t next_timer(const px_replica *r)
{
	uint64_t t = UINT64_MAX;
	switch (r->role) {
	case PX_FOLLOWER:
		t = r->joined ? r->election_at_us : r->probe_at_us;
		break;
	case PX_CANDIDATE:
		t = r->cand_started_us + r->cfg.election_timeout_us;
		if (r->p1_sent_us + r->cfg.retry_us < t)
			t = r->p1_sent_us + r->cfg.retry_us;
		break;
	case PX_LEADER:
		t = r->heartbeat_at_us;
		if (r->commit + 1 < r->next_slot &&
		    r->now_us + r->cfg.retry_us < t)
			t = r->now_us + r->cfg.retry_us;
		break;
	}
	if (r->role != PX_LEADER && r->known_commit > r->commit &&
	    r->catchup_sent_us + r->cfg.retry_us < t)
		t = r->catchup_sent_us + r->cfg.retry_us;
	if (t <= r->now_us)
		t = r->now_us + 1;
	return t;
}

/* Sends the held messages whose writes are now durable, oldest first.
 * Handling one addressed to ourselves may hold new messages; those join the
 * list behind the ones still waiting. */
static void release_held(px_replica *r, px_actions *out)
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

int px_replica_step(px_replica *r, const px_event *ev, px_actions *out)
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
	case PX_EV_MSG:
		if (ev->msg == NULL ||
		    px_msg_validate(ev->msg, LD_REPLICA_IDS) != 0 ||
		    ev->msg->to != r->cfg.id) {
			rc = -1;
			break;
		}
		handle_msg(r, ev->msg, out);
		break;
	case PX_EV_TICK:
		on_tick(r, out);
		break;
	case PX_EV_DURABLE:
		if (ev->write_id > r->last_write_id) {
			rc = -1;
			break;
		}
		if (ev->write_id > r->durable_id)
			r->durable_id = ev->write_id;
		release_held(r, out);
		break;
	case PX_EV_READ:
		if (ev->read_id == 0) {
			rc = -1;
			break;
		}
		on_read(r, ev->read_id, out);
		break;
	case PX_EV_RESIGN:
		on_resign(r, out);
		break;
	case PX_EV_CHANGE:
		if (ev->change == NULL) {
			rc = -1;
			break;
		}
		on_change(r, ev->change_id, ev->change, out);
		break;
	case PX_EV_SUBMIT:
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
	maybe_hand_over(r, out);
	reads_check(r, out);
	out->timer_at_us = next_timer(r);
	return rc;
}

/* ---- views -------------------------------------------------------------- */

void px_replica_status(const px_replica *r, px_status *st)
{
	memset(st, 0, sizeof *st);
	st->role = r->role;
	st->ballot = r->ballot;
	st->promised = r->promised;
	st->leader = r->role == PX_LEADER ? (int32_t)r->cfg.id : r->leader;
	st->commit = r->commit;
	st->applied = r->commit;
	st->base = r->snap_base;
	st->next_slot = r->next_slot;
	st->pending = r->pending_n;
	st->voter = r->joined && !r->leaving &&
		    (voters_mask(r) & id_bit(r->cfg.id)) != 0;
	st->member = (conf_latest(r)->all & id_bit(r->cfg.id)) != 0;
	st->removed = gone(r) || r->told_removed;
	st->resigned = r->now_us < r->resign_until_us;
	st->digest_alarm = r->digest_alarm;
	st->recover_above = r->recover_above;
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
	*out = conf_latest(r)->m;
	if (from_slot != NULL)
		*from_slot = conf_latest(r)->from;
}

uint64_t px_replica_peer_ids(const px_replica *r)
{
	return peers_mask(r);
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

const px_value *px_replica_chosen_at(const px_replica *r, uint64_t slot)
{
	const entry *e = entry_at_c(r, slot);
	return e != NULL ? e->chosen : NULL;
}
