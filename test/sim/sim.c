/* The world around the replicas: clocks, disks, network, clients, faults.
 * Everything here is driven by one event queue in simulated real time and
 * one random stream, so a seed replays exactly. The lease workload's
 * clients live in lclient.c; the counter workload's are here. */
#include "sim.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "codec.h"
#include "counter_sm.h"
#include "lease.h"
#include "node.h"
#include "queue.h"
#include "rng.h"
#include "sim_int.h"

#define SIM_COUNTER_CLIENTS_MIN 4u
#define SIM_COUNTER_CLIENTS_MAX 8u
#define SIM_CLIENT_TIMEOUT_US 500000u
#define SIM_EVENTS_MAX 20000000u

static const sim_profile sim_profiles[] = {
	[SIM_FAULTS_NONE] =
		{
			.name = "none",
			.delay_min_us = 100,
			.delay_max_us = 2000,
			.drift_ppm_max = 200,
			.fault_min_us = 10000000,
			.fault_max_us = 20000000,
			.extra_tick_p = 0.001,
			.fsync_min_us = 100,
			.fsync_max_us = 500,
			.think_min_us = 0,
			.think_max_us = 400000,
		},
	[SIM_FAULTS_DEFAULT] =
		{
			.name = "default",
			.loss_p = 0.02,
			.dup_p = 0.01,
			.delay_min_us = 100,
			.delay_max_us = 2000,
			.tail_p = 0.01,
			.tail_max_us = 100000,
			.part_every_min_us = 1000000,
			.part_every_max_us = 5000000,
			.part_min_us = 200000,
			.part_max_us = 3000000,
			.crash_every_min_us = 1000000,
			.crash_every_max_us = 6000000,
			.restart_min_us = 100000,
			.restart_max_us = 2000000,
			.crash_leader_p = 0.3,
			.wipe_p = 0.15,
			.disk_fail_p = 0.15,
			.disk_fail_min_us = 100000,
			.disk_fail_max_us = 3000000,
			.corrupt_p = 0.2,
			.chunk_damage_p = 0.02,
			.hostile_every_min_us = 500000,
			.hostile_every_max_us = 3000000,
			.drift_ppm_max = 200,
			.fault_min_us = 10000000,
			.fault_max_us = 20000000,
			.extra_tick_p = 0.001,
			.fsync_min_us = 100,
			.fsync_max_us = 500,
			.fsync_tail_p = 0.01,
			.fsync_tail_max_us = 5000,
			.think_min_us = 0,
			.think_max_us = 400000,
		},
	[SIM_FAULTS_HEAVY] =
		{
			.name = "heavy",
			.loss_p = 0.08,
			.dup_p = 0.05,
			.delay_min_us = 100,
			.delay_max_us = 3000,
			.tail_p = 0.05,
			.tail_max_us = 500000,
			.part_every_min_us = 300000,
			.part_every_max_us = 2000000,
			.part_min_us = 200000,
			.part_max_us = 3000000,
			.crash_every_min_us = 200000,
			.crash_every_max_us = 1500000,
			.restart_min_us = 50000,
			.restart_max_us = 1000000,
			.max_down = LD_REPLICAS_MAX,
			.crash_leader_p = 0.5,
			.power_loss_p = 0.2,
			.wipe_p = 0.25,
			.disk_fail_p = 0.2,
			.disk_fail_min_us = 100000,
			.disk_fail_max_us = 2000000,
			.corrupt_p = 0.2,
			.chunk_damage_p = 0.05,
			.hostile_every_min_us = 100000,
			.hostile_every_max_us = 1000000,
			.drift_ppm_max = 200,
			.fault_min_us = 10000000,
			.fault_max_us = 20000000,
			.extra_tick_p = 0.005,
			.fsync_min_us = 100,
			.fsync_max_us = 2000,
			.fsync_tail_p = 0.1,
			.fsync_tail_max_us = 20000,
			.think_min_us = 0,
			.think_max_us = 400000,
		},
};

const char *sim_faults_name(sim_faults f)
{
	return sim_profiles[f].name;
}

const char *sim_workload_name(sim_workload w)
{
	return w == SIM_WORKLOAD_COUNTER ? "counter" : "lease";
}

const char *sim_driver_name(sim_driver d)
{
	return d == SIM_DRIVER_ROUND ? "round" : "core";
}

void *sim_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p) {
		fprintf(stderr, "lockd-sim: out of memory\n");
		abort();
	}
	return p;
}

static void *sim_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q) {
		fprintf(stderr, "lockd-sim: out of memory\n");
		abort();
	}
	return q;
}

/* ---- trace ------------------------------------------------------------ */

void sim_trace(sim *s, const char *fmt, ...)
{
	if (!s->tr)
		return;
	fprintf(s->tr, "%4" PRIu64 ".%06" PRIu64 " ", s->now / 1000000,
		s->now % 1000000);
	va_list ap;
	va_start(ap, fmt);
	vfprintf(s->tr, fmt, ap);
	va_end(ap);
	fputc('\n', s->tr);
}

static const char *sim_msg_name(px_msg_type t)
{
	static const char *const names[] = {
		[PX_MSG_PREPARE] = "PREPARE",
		[PX_MSG_PROMISE] = "PROMISE",
		[PX_MSG_ACCEPT] = "ACCEPT",
		[PX_MSG_ACCEPTED] = "ACCEPTED",
		[PX_MSG_REJECT] = "REJECT",
		[PX_MSG_COMMIT] = "COMMIT",
		[PX_MSG_COMMIT_ACK] = "COMMIT_ACK",
		[PX_MSG_CATCHUP_REQ] = "CATCHUP_REQ",
		[PX_MSG_CATCHUP] = "CATCHUP",
		[PX_MSG_SNAPSHOT] = "SNAPSHOT",
		[PX_MSG_PROBE] = "PROBE",
		[PX_MSG_PROBE_ACK] = "PROBE_ACK",
	};
	if ((unsigned)t < sizeof names / sizeof names[0] && names[t])
		return names[t];
	return "?";
}

static const char *sim_status_name(px_reply_status st)
{
	switch (st) {
	case PX_REPLY_OK:
		return "OK";
	case PX_REPLY_NOT_LEADER:
		return "NOT_LEADER";
	case PX_REPLY_BUSY:
		return "BUSY";
	case PX_REPLY_INVALID:
		return "INVALID";
	}
	return "?";
}

static const char *sim_role_name(px_role r)
{
	switch (r) {
	case PX_FOLLOWER:
		return "follower";
	case PX_CANDIDATE:
		return "candidate";
	case PX_LEADER:
		return "leader";
	}
	return "?";
}

/* "PREPARE r0->r2 b=3.0 slot=5 commit=4" and what else the message holds. */
static const char *sim_fmt_msg(const px_msg *m, char *buf, size_t cap)
{
	int n = snprintf(buf, cap,
			 "%s r%" PRIu32 "->r%" PRIu32 " b=%" PRIu64 ".%" PRIu32
			 " slot=%" PRIu64 " commit=%" PRIu64 " base=%" PRIu64,
			 sim_msg_name(m->type), m->from, m->to, m->ballot.round,
			 m->ballot.id, m->slot, m->commit, m->base);
	if (n < 0 || (size_t)n >= cap)
		return buf;
	if (m->value)
		n += snprintf(buf + n, cap - (size_t)n,
			      " value=%" PRIu32 "cmds/%016" PRIx64,
			      m->value->ncmds, m->value->digest);
	if (m->nvotes && (size_t)n < cap)
		n += snprintf(buf + n, cap - (size_t)n,
			      " votes=%" PRIu32 "[%" PRIu64 "..%" PRIu64 "]",
			      m->nvotes, m->votes[0].slot,
			      m->votes[m->nvotes - 1].slot);
	if (m->snap_len && (size_t)n < cap)
		snprintf(buf + n, cap - (size_t)n,
			 " snap=%" PRIu32 "B@%" PRIu64 "/%" PRIu64, m->snap_len,
			 m->snap_off, m->snap_total);
	return buf;
}

/* ---- clocks (test/world) ---------------------------------------------- */

static uint64_t node_local(const sim_node *nd, uint64_t real)
{
	return tw_clock_local(&nd->clk, real);
}

static uint64_t node_real(const sim_node *nd, uint64_t local_at)
{
	return tw_clock_real(&nd->clk, local_at);
}

/* ---- scheduling helpers ----------------------------------------------- */

void sim_at(sim *s, uint64_t at_us, sim_ev ev)
{
	ev.t_us = at_us;
	sim_queue_push(&s->q, &ev);
}

uint64_t sim_net_delay(sim *s)
{
	uint64_t d =
		sim_rng_range(&s->rng, s->p.delay_min_us, s->p.delay_max_us);
	if (sim_rng_chance(&s->rng, s->p.tail_p))
		d += sim_rng_range(&s->rng, 0, s->p.tail_max_us);
	return d;
}

uint32_t sim_other(sim *s, uint32_t not )
{
	if (s->n == 1)
		return 0;
	return (not +1 + (uint32_t)sim_rng_below(&s->rng, s->n - 1)) % s->n;
}

/* The replica inside a node, whichever the workload. */
static const px_replica *node_rep(const sim_node *nd)
{
	return nd->ln ? ln_node_replica(nd->ln) : nd->r;
}

static bool sim_counts_at_end(const sim_node *nd);

/* The state digest of the node's state machine. The lease table's digest
 * only reads (ln_node_table lends it const; px_sm's ops take it mutable). */
static uint64_t node_digest(const sim_node *nd)
{
	if (nd->ln) {
		px_sm *sm = ls_table_sm((ls_table *)ln_node_table(nd->ln));
		return sm->ops->digest(sm);
	}
	return nd->sm->ops->digest(nd->sm);
}

/* The up replica that leads with the highest ballot, or -1. */
static int32_t sim_leader(sim *s)
{
	int32_t best = -1;
	px_ballot bb = {0, 0};
	for (uint32_t i = 0; i < s->n; i++) {
		if (!s->nodes[i].up)
			continue;
		px_status st;
		px_replica_status(node_rep(&s->nodes[i]), &st);
		if (st.role == PX_LEADER &&
		    (best < 0 || px_ballot_cmp(st.ballot, bb) > 0)) {
			best = (int32_t)i;
			bb = st.ballot;
		}
	}
	return best;
}

/* ---- disk ------------------------------------------------------------- */

/* Writes with id <= write_id reach the platter, in order; a durable
 * snapshot compacts the log before it. */
static void node_make_durable(sim *s, sim_node *nd, uint64_t write_id)
{
	bool snap;
	if (tw_disk_sync(&nd->disk, write_id, &snap) == 0 || !snap)
		return;
	size_t before = nd->disk.ndurable;
	uint64_t base = tw_disk_compact(&nd->disk);
	sim_trace(s,
		  "r%u DISK compact at snapshot base=%" PRIu64
		  ": %zu -> %zu records",
		  nd->id, base, before, nd->disk.ndurable);
}

/* ---- stepping a replica ----------------------------------------------- */

static void node_step(sim *s, sim_node *nd, px_event *ev);

static void node_arm_timer(sim *s, sim_node *nd, uint64_t local_at)
{
	if (local_at == 0)
		return;
	uint64_t real = node_real(nd, local_at);
	if (real == UINT64_MAX)
		return;
	if (real <= s->now)
		real = s->now + 1;
	if (nd->tick_live && nd->tick_at_us <= real)
		return;
	nd->tick_gen++;
	nd->tick_at_us = real;
	nd->tick_live = true;
	sim_at(s, real,
	       (sim_ev){.type = SIM_EV_TICK,
			.node = nd->id,
			.epoch = nd->epoch,
			.gen = nd->tick_gen});
}

/* When a sync started at `from` completes: the profile's fsync time (a
 * slow tail now and then), never before the syncs already in flight. */
static uint64_t node_sync_at(sim *s, sim_node *nd, uint64_t from)
{
	uint64_t t = from + sim_rng_range(&s->rng, s->p.fsync_min_us,
					  s->p.fsync_max_us);
	if (sim_rng_chance(&s->rng, s->p.fsync_tail_p))
		t += sim_rng_range(&s->rng, 0, s->p.fsync_tail_max_us);
	if (t < nd->sync_last_us)
		t = nd->sync_last_us;
	nd->sync_last_us = t;
	return t;
}

/* A message the replica may not send (the contract): says so, frees it. */
static bool node_msg_refused(sim *s, sim_node *nd, px_msg *m)
{
	char buf[256];
	if (px_msg_validate(m, s->n) == 0 && m->from == nd->id && m->to < s->n)
		return false;
	chk_fail(&s->chk, "contract", "r%u sent a malformed message: %s",
		 nd->id, sim_fmt_msg(m, buf, sizeof buf));
	px_msg_free(m);
	return true;
}

static void node_take_records(sim *s, sim_node *nd, px_actions *a)
{
	if (a->nrecs == 0)
		return;
	if (a->write_id <= nd->last_write_id) {
		chk_fail(&s->chk, "contract",
			 "r%u asked for write %" PRIu64 " after write %" PRIu64
			 " (ids must increase)",
			 nd->id, a->write_id, nd->last_write_id);
		return;
	}
	nd->last_write_id = a->write_id;
	unsigned np = 0, nv = 0, ns = 0;
	tw_disk_write(&nd->disk, a->recs, a->nrecs, a->write_id);
	for (size_t i = 0; i < a->nrecs; i++) {
		np += a->recs[i].type == PX_REC_PROMISE;
		nv += a->recs[i].type == PX_REC_VOTE;
		ns += a->recs[i].type == PX_REC_SNAPSHOT;
	}
	uint64_t t = node_sync_at(s, nd, s->now);
	sim_at(s, t,
	       (sim_ev){.type = SIM_EV_SYNC,
			.node = nd->id,
			.epoch = nd->epoch,
			.write_id = a->write_id});
	sim_trace(s, "r%u WRITE id=%" PRIu64 " promise=%u vote=%u snapshot=%u",
		  nd->id, a->write_id, np, nv, ns);
}

static void sim_send_msg(sim *s, px_msg *m)
{
	char buf[256];
	sim_node *dst = &s->nodes[m->to];
	s->res->msgs_sent++;
	if (!dst->up) {
		sim_trace(s, "DROP(down) %s", sim_fmt_msg(m, buf, sizeof buf));
		px_msg_free(m);
		return;
	}
	bool chunk = m->type == PX_MSG_SNAPSHOT;
	s->res->snap_chunks += chunk;
	if (sim_rng_chance(&s->rng, s->p.loss_p)) {
		s->res->msgs_lost++;
		s->res->snap_chunks_lost += chunk;
		sim_trace(s, "DROP(loss) %s", sim_fmt_msg(m, buf, sizeof buf));
		px_msg_free(m);
		return;
	}
	if (chunk && sim_rng_chance(&s->rng, s->p.chunk_damage_p)) {
		uint64_t bit =
			sim_rng_below(&s->rng, (uint64_t)m->snap_len * 8);
		m->snap[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		s->res->snap_chunks_damaged++;
		sim_trace(s, "DAMAGE bit %" PRIu64 " of %s", bit,
			  sim_fmt_msg(m, buf, sizeof buf));
	}
	if (sim_rng_chance(&s->rng, s->p.dup_p)) {
		px_msg *d = px_msg_dup(m);
		if (d) {
			sim_trace(s, "DUP %s", sim_fmt_msg(m, buf, sizeof buf));
			sim_at(s, s->now + sim_net_delay(s),
			       (sim_ev){.type = SIM_EV_MSG,
					.node = d->to,
					.epoch = dst->epoch,
					.msg = d});
		}
	}
	sim_at(s, s->now + sim_net_delay(s),
	       (sim_ev){.type = SIM_EV_MSG,
			.node = m->to,
			.epoch = dst->epoch,
			.msg = m});
}

/* The durability contract (paxos.h): a promise or a vote leaves the
 * replica only once the record behind it is on the disk. The simulator's
 * disk knows exactly what is durable, so it checks each one. */
static void node_check_durable(sim *s, sim_node *nd, const px_msg *m)
{
	char buf[256];
	if (m->type == PX_MSG_PROMISE) {
		for (size_t i = nd->disk.ndurable; i-- > 0;) {
			const px_record *r = &nd->disk.durable[i];
			if ((r->type == PX_REC_PROMISE ||
			     r->type == PX_REC_VOTE) &&
			    px_ballot_cmp(r->ballot, m->ballot) >= 0)
				return;
		}
	} else if (m->type == PX_MSG_ACCEPTED) {
		for (size_t i = nd->disk.ndurable; i-- > 0;) {
			const px_record *r = &nd->disk.durable[i];
			if (r->type == PX_REC_VOTE && r->slot == m->slot &&
			    px_ballot_cmp(r->ballot, m->ballot) == 0)
				return;
			if (r->type == PX_REC_SNAPSHOT && r->slot >= m->slot)
				return;
		}
	} else {
		return;
	}
	chk_fail(&s->chk, "durability",
		 "r%u sent %s before the record behind it was durable", nd->id,
		 sim_fmt_msg(m, buf, sizeof buf));
}

static void node_take_msgs(sim *s, sim_node *nd, px_actions *a)
{
	char buf[256];
	for (size_t i = 0; i < a->nmsgs; i++) {
		px_msg *m = a->msgs[i];
		a->msgs[i] = NULL;
		if (!m || node_msg_refused(s, nd, m))
			continue;
		sim_trace(s, "SEND %s", sim_fmt_msg(m, buf, sizeof buf));
		node_check_durable(s, nd, m);
		sim_send_msg(s, m);
	}
	a->nmsgs = 0;
}

/* The decrees the node applied since the oracle last looked (a round's
 * actions pile up over several steps: chosen_seen says how far it saw). */
static void node_take_chosen(sim *s, sim_node *nd, px_actions *a)
{
	uint64_t start = nd->applied;
	bool snap_new = a->installed_snapshot && !nd->snap_seen;
	nd->snap_seen |= a->installed_snapshot;
	if (snap_new) {
		s->res->snap_installs++;
		if (nd->rx_chunks > s->res->snap_chunks_most)
			s->res->snap_chunks_most = nd->rx_chunks;
		nd->rx_chunks = 0;
	}
	/* A snapshot from a corrupted replica carries its corruption if it
	 * was taken after it; one from a sound replica replaces it. Where the
	 * ledger's state at the replica's position is known, its digest
	 * says which (a snapshot is taken now and then, so a corrupted
	 * replica may still send a sound one, taken before). */
	if (snap_new && s->msg_from >= 0) {
		bool bad = s->nodes[s->msg_from].corrupted;
		px_status st;
		px_replica_status(node_rep(nd), &st);
		if (st.applied < s->chk.nslots &&
		    s->chk.slots[st.applied].digest_known)
			bad = s->chk.slots[st.applied].digest !=
			      node_digest(nd);
		if (bad && !nd->corrupted) {
			nd->corrupted = true;
			nd->corrupted_at = a->snapshot_base;
			nd->corrupted_us = s->now;
			s->chk.corrupted_mask |= 1u << nd->id;
			sim_trace(s, "r%u CORRUPT: installed r%d's snapshot",
				  nd->id, s->msg_from);
		} else if (!bad && nd->corrupted) {
			nd->corrupted = false;
			s->chk.corrupted_mask &= ~(1u << nd->id);
			sim_trace(s, "r%u HEALED: installed r%d's snapshot",
				  nd->id, s->msg_from);
		}
	}
	if (snap_new && a->snapshot_base < start)
		chk_fail(&s->chk, "order",
			 "r%u installed a snapshot at base %" PRIu64
			 " after applying up to %" PRIu64,
			 nd->id, a->snapshot_base, start);
	for (size_t i = nd->chosen_seen; i < a->nchosen; i++) {
		const px_chosen *c = &a->chosen[i];
		if (c->slot != nd->applied + 1) {
			if (a->installed_snapshot &&
			    c->slot == a->snapshot_base + 1 &&
			    a->snapshot_base >= nd->applied)
				nd->applied = a->snapshot_base;
			else
				chk_fail(&s->chk, "order",
					 "r%u applied slot %" PRIu64
					 " right after slot %" PRIu64,
					 nd->id, c->slot, nd->applied);
		}
		if (s->tr) {
			sim_trace(
				s,
				"r%u CHOSEN slot=%" PRIu64 " cmds=%" PRIu32
				" value=%016" PRIx64 " state=%016" PRIx64,
				nd->id, c->slot, c->value ? c->value->ncmds : 0,
				c->value ? c->value->digest : 0, c->sm_digest);
		}
		chk_chosen(&s->chk, nd->id, c->slot, c->value, c->sm_digest);
		nd->applied = c->slot;
	}
	nd->chosen_seen = a->nchosen;
	if (snap_new) {
		sim_trace(s, "r%u INSTALLED snapshot base=%" PRIu64, nd->id,
			  a->snapshot_base);
		if (a->snapshot_base > nd->applied)
			nd->applied = a->snapshot_base;
	}
}

static void node_take_replies(sim *s, sim_node *nd, px_actions *a)
{
	for (size_t i = 0; i < a->nreplies; i++) {
		const px_reply *rep = &a->replies[i];
		chk_reply(&s->chk, nd->id, rep);
		if (rep->client_id == 0 || rep->client_id > s->nclients)
			continue;
		sim_trace(s,
			  "REPLY r%u->c%" PRIu64 " seq=%" PRIu64
			  " %s hint=%" PRId32 " slot=%" PRIu64,
			  nd->id, rep->client_id, rep->seq,
			  sim_status_name(rep->status), rep->leader_hint,
			  rep->slot);
		if (sim_rng_chance(&s->rng, s->p.loss_p)) {
			sim_trace(s, "DROP(loss) reply r%u->c%" PRIu64, nd->id,
				  rep->client_id);
			continue;
		}
		px_reply *copy = sim_xmalloc(sizeof *copy);
		*copy = *rep;
		sim_at(s, s->now + sim_net_delay(s),
		       (sim_ev){.type = SIM_EV_REPLY,
				.client = (uint32_t)(rep->client_id - 1),
				.node = nd->id,
				.reply = copy});
	}
}

/* A lease reply: checked when it leaves the replica, then sent to the
 * client (or lost). */
static void node_lreply(sim *s, sim_node *nd, const ln_reply *rp)
{
	chk_lease_reply(&s->chk, nd->id, rp);
	if (rp->session == 0 || rp->session > s->nclients)
		return;
	sim_trace(s,
		  "REPLY r%u->c%" PRIu64 " %s seq=%" PRIu64
		  " %s %s token=%" PRIu64 " holder=%" PRIu64 " count=%" PRIu32
		  " ntokens=%" PRIu32 " hint=%" PRId32 " pos=%" PRIu64,
		  nd->id, rp->session, chk_req_name(rp->type), rp->seq,
		  chk_status_name(rp->status), ls_strerror(rp->result.status),
		  rp->result.token, rp->result.holder, rp->result.count,
		  rp->ntokens, rp->leader_hint, rp->position);
	if (sim_rng_chance(&s->rng, s->p.loss_p)) {
		sim_trace(s, "DROP(loss) reply r%u->c%" PRIu64, nd->id,
			  rp->session);
		return;
	}
	ln_reply *copy = sim_xmalloc(sizeof *copy);
	*copy = *rp;
	copy->tokens = NULL;
	if (rp->ntokens) {
		copy->tokens = sim_xmalloc(rp->ntokens * sizeof *copy->tokens);
		memcpy(copy->tokens, rp->tokens,
		       rp->ntokens * sizeof *copy->tokens);
	}
	sim_at(s, s->now + sim_net_delay(s),
	       (sim_ev){.type = SIM_EV_LREPLY,
			.client = (uint32_t)(rp->session - 1),
			.node = nd->id,
			.lreply = copy});
}

static void node_take_lreplies(sim *s, sim_node *nd, ln_actions *a)
{
	for (size_t i = 0; i < a->nreplies; i++)
		node_lreply(s, nd, &a->replies[i]);
}

static bool sim_corrupt_majority(sim *s);
static uint32_t sim_cell_size(sim *s);
static void sim_corrupt_window_restart(sim *s);
static void sim_check_corruption_found(sim *s);

/* After every step: the replica's own view agrees with what it said and
 * with the oracle. */
static void node_check(sim *s, sim_node *nd)
{
	px_status st;
	px_replica_status(node_rep(nd), &st);
	if (st.applied != st.commit)
		chk_fail(&s->chk, "order",
			 "r%u status: applied=%" PRIu64 " commit=%" PRIu64
			 " (equal after a step)",
			 nd->id, st.applied, st.commit);
	else if (st.applied != nd->applied)
		chk_fail(&s->chk, "order",
			 "r%u status: applied=%" PRIu64
			 " but its chosen decrees reached %" PRIu64,
			 nd->id, st.applied, nd->applied);
	chk_state(&s->chk, nd->id, st.applied, node_digest(nd));
	/* A healthy replica is never outvoted on its digest (a false alarm
	 * would stop it serving), and sees no mismatch unless the simulator
	 * corrupted someone. */
	if (!nd->corrupted && !sim_corrupt_majority(s) &&
	    (st.digest_alarm == PX_DIGEST_DIVERGED ||
	     (st.digest_alarm != PX_DIGEST_OK && s->res->corruptions == 0)))
		chk_fail(&s->chk, "digest",
			 "r%u raised a state digest alarm (%d) on a healthy "
			 "replica",
			 nd->id, (int)st.digest_alarm);
	if (nd->corrupted)
		sim_check_corruption_found(s);
	if (nd->wiped && st.voter) {
		nd->wiped = false;
		sim_trace(s,
			  "r%u REJOINED promised=%" PRIu64 ".%" PRIu32
			  " above=%" PRIu64 ".%" PRIu32 " applied=%" PRIu64,
			  nd->id, st.promised.round, st.promised.id,
			  st.recover_above.round, st.recover_above.id,
			  st.applied);
	}
	if (st.role == PX_LEADER && px_ballot_cmp(st.ballot, nd->led) != 0) {
		nd->led = st.ballot;
		sim_trace(s,
			  "r%u LEADER ballot=%" PRIu64 ".%" PRIu32
			  " commit=%" PRIu64,
			  nd->id, st.ballot.round, st.ballot.id, st.commit);
		chk_leader(&s->chk, nd->id, nd->life, st.ballot);
	}
}

static void node_trace_change(sim *s, sim_node *nd, const px_change_done *d)
{
	sim_trace(s, "r%u CHANGE %" PRIu64 " %s slot=%" PRIu64 " %s", nd->id,
		  d->change_id,
		  d->status == PX_CHANGE_DONE      ? "done"
		  : d->status == PX_CHANGE_REFUSED ? "refused"
		  : d->status == PX_CHANGE_BUSY    ? "busy"
						   : "not-leader",
		  d->slot, d->why);
}

/* What a step (or a round) ends with: the configuration it learned, its
 * next timer, the checks of its own view, and its leaving if removed. */
static void node_settle(sim *s, sim_node *nd, const ln_actions *a)
{
	if (a->ld.members_changed) {
		px_members m;
		uint64_t from;
		px_replica_members(node_rep(nd), &m, &from);
		if (from > s->last_change_from) {
			s->last_change_from = from; /* a new one */
			s->res->changes++;
			/* Whose digests are compared changes with it. */
			sim_corrupt_window_restart(s);
		}
		if (s->tr) {
			char buf[128];
			int k = 0;
			for (uint32_t i = 0; i < m.n && k < 100; i++)
				k += snprintf(buf + k, sizeof buf - (size_t)k,
					      " %u%s", m.m[i].id,
					      m.m[i].voting ? "" : "(learner)");
			sim_trace(s, "r%u MEMBERS from=%" PRIu64 ":%s", nd->id,
				  from, k ? buf : "");
		}
	}
	node_arm_timer(s, nd, a->ld.timer_at_us);
	node_check(s, nd);
	if (!nd->leaving && !nd->zombie) {
		px_status st;
		px_replica_status(node_rep(nd), &st);
		if (st.removed) {
			nd->leaving = true;
			sim_at(s, s->now,
			       (sim_ev){.type = SIM_EV_LEAVE,
					.node = nd->id,
					.epoch = nd->epoch});
		}
	}
}

static void node_after_step(sim *s, sim_node *nd, int rc, int type)
{
	ln_actions *a = &s->act;
	if (rc != 0)
		sim_trace(s, "r%u step(event %d) returned %d", nd->id, type,
			  rc);
	node_take_records(s, nd, &a->ld);
	node_take_msgs(s, nd, &a->ld);
	node_take_chosen(s, nd, &a->ld);
	node_take_replies(s, nd, &a->ld);
	node_take_lreplies(s, nd, a);
	for (size_t i = 0; i < a->ld.nchanges; i++)
		node_trace_change(s, nd, &a->ld.changes[i]);
	node_settle(s, nd, a);
	ln_actions_reset(a);
	nd->chosen_seen = 0;
	nd->snap_seen = false;
}

/* ---- the daemon's round (SIM_DRIVER_ROUND) ------------------------------
 *
 * The lease nodes are stepped by lockd/edge/round.c, the daemon's own
 * round, over this world: its messages go through the real codec (encoded
 * and decoded again) and its records through the real record encoding, as
 * lockd's transport and storage do. Like lockd's loop, a replica takes no
 * event while its round's synced write is in flight: what arrives waits
 * in its inbox and is taken in one round after the SYNC (peer messages,
 * then membership changes, then every client request in one REQUEST
 * step, then a tick). What the round sends or answers after its write is
 * held until that SYNC, so the oracle sees each message leave when it
 * really would, and checks it then against what the disk holds. */

#define SIM_STALL_RETRY_US 500000u

/* --corpus: the first encodings of each kind (sub: a message or record
 * type) become seed files of test/fuzz's targets. */
static void sim_corpus(sim *s, const char *target, unsigned sub,
		       const uint8_t *b, size_t n)
{
	static unsigned counts[8][64];
	static const char *const targets[] = {"peer", "record", "value",
					      "restore", "snapshot"};
	unsigned t = 0;
	while (t < sizeof targets / sizeof targets[0] &&
	       strcmp(targets[t], target))
		t++;
	if (!s->o->corpus || t >= sizeof targets / sizeof targets[0] ||
	    counts[t][sub % 64] >= 3 || n > 65536)
		return;
	unsigned k = counts[t][sub % 64]++;
	char path[4096];
	snprintf(path, sizeof path, "%s/%s/%s-%02u-%u.bin", s->o->corpus,
		 target, target, sub, k);
	FILE *f = fopen(path, "wb");
	if (f == NULL)
		return;
	fwrite(b, 1, n, f);
	fclose(f);
}

static void node_round_run(sim *s, sim_node *nd, sim_ev *evs, size_t n);

static uint64_t rio_now_us(void *ctx)
{
	sim_node *nd = ctx;
	return node_local(nd, nd->rd_now);
}

/* A message the round sends: through the codec, as lockd's transport. */
static void rio_send(void *ctx, const px_msg *m)
{
	sim_node *nd = ctx;
	sim *s = nd->world;
	char buf[256];
	node_take_chosen(s, nd, &nd->rd.act.ld);
	uint8_t *bytes;
	size_t len;
	px_msg *copy = NULL;
	int rv = cd_msg_encode(m, &bytes, &len);
	if (rv == 0) {
		sim_corpus(s, "peer", (unsigned)m->type, bytes, len);
		if (m->value != NULL && m->value->ncmds > 0) {
			uint8_t *vb;
			size_t vn;
			if (cd_value_encode(m->value, &vb, &vn) == 0) {
				sim_corpus(s, "value", m->value->ncmds, vb, vn);
				free(vb);
			}
			const px_cmd *c = &m->value->cmds[0];
			if (c->len > 0)
				sim_corpus(s, "value", 32u + c->data[0] % 32u,
					   c->data, c->len);
		}
		rv = cd_msg_decode(bytes, len, &copy);
		free(bytes);
	}
	if (rv != 0) {
		chk_fail(&s->chk, "contract",
			 "r%u sent a message the codec refuses (%s): %s",
			 nd->id, cd_strerror(rv),
			 sim_fmt_msg(m, buf, sizeof buf));
		return;
	}
	if (node_msg_refused(s, nd, copy))
		return;
	if (nd->release_id != 0) {
		if (nd->nheld_msgs == nd->held_msgs_cap) {
			nd->held_msgs_cap =
				nd->held_msgs_cap ? 2 * nd->held_msgs_cap : 16;
			nd->held_msgs = sim_xrealloc(
				nd->held_msgs,
				nd->held_msgs_cap * sizeof *nd->held_msgs);
		}
		nd->held_msgs[nd->nheld_msgs++] = copy;
		return;
	}
	sim_trace(s, "SEND %s", sim_fmt_msg(copy, buf, sizeof buf));
	node_check_durable(s, nd, copy);
	sim_send_msg(s, copy);
}

static void rio_reply(void *ctx, const ln_reply *rp)
{
	sim_node *nd = ctx;
	sim *s = nd->world;
	node_take_chosen(s, nd, &nd->rd.act.ld);
	if (nd->release_id == 0) {
		node_lreply(s, nd, rp);
		return;
	}
	if (nd->nheld_replies == nd->held_replies_cap) {
		nd->held_replies_cap =
			nd->held_replies_cap ? 2 * nd->held_replies_cap : 16;
		nd->held_replies = sim_xrealloc(
			nd->held_replies,
			nd->held_replies_cap * sizeof *nd->held_replies);
	}
	ln_reply *copy = &nd->held_replies[nd->nheld_replies++];
	*copy = *rp;
	copy->tokens = NULL;
	if (rp->ntokens) {
		copy->tokens = sim_xmalloc(rp->ntokens * sizeof *copy->tokens);
		memcpy(copy->tokens, rp->tokens,
		       rp->ntokens * sizeof *copy->tokens);
	}
}

static void rio_change(void *ctx, const px_change_done *d)
{
	sim_node *nd = ctx;
	node_trace_change(nd->world, nd, d);
}

/* snapshot_async: the state is taken now, between steps, as the daemon's
 * fork takes it; it comes back after a while, or fails, or never comes. */
static void rio_capture(void *ctx)
{
	sim_node *nd = ctx;
	sim *s = nd->world;
	if (nd->capturing)
		return; /* one at a time, as the daemon */
	sim_capture *c = sim_xmalloc(sizeof *c);
	memset(c, 0, sizeof *c);
	uint64_t u = sim_rng_below(&s->rng_cap, 100);
	if (u >= 8 &&
	    ln_node_capture(nd->ln, &c->snap, &c->len, &c->base, &c->sum) != 0)
		c->snap = NULL;
	c->lost = u < 3;
	uint64_t d = sim_rng_range(&s->rng_cap, 100, 500000);
	if (sim_rng_chance(&s->rng_cap, 0.1))
		d += sim_rng_range(&s->rng_cap, 0, 3000000);
	nd->capturing = true;
	sim_trace(s, "r%u CAPTURE base=%" PRIu64 " bytes=%zu%s", nd->id,
		  c->base, c->len,
		  c->lost   ? " (lost)"
		  : c->snap ? ""
			    : " (fails)");
	sim_at(s, nd->rd_now + d,
	       (sim_ev){.type = SIM_EV_CAPTURE,
			.node = nd->id,
			.epoch = nd->epoch,
			.capture = c});
}

/* A snapshot for the writer thread (rec taken): it replaces one waiting. */
static void node_lazy_put(sim *s, sim_node *nd, px_record rec)
{
	if (nd->lazy_have)
		px_record_clear(&nd->lazy);
	nd->lazy = rec;
	nd->lazy_have = true;
	if (nd->lazy_queued)
		return;
	nd->lazy_queued = true;
	uint64_t d = sim_rng_range(&s->rng_cap, 100, 300000);
	if (sim_rng_chance(&s->rng_cap, 0.1))
		d += sim_rng_range(&s->rng_cap, 0, 2000000);
	sim_at(s, nd->rd_now + d,
	       (sim_ev){.type = SIM_EV_LAZY,
			.node = nd->id,
			.epoch = nd->epoch});
}

/* Forgets the snapshot the writer had not written (a crash). */
static void node_lazy_drop(sim_node *nd)
{
	if (nd->lazy_have)
		px_record_clear(&nd->lazy);
	nd->lazy_have = nd->lazy_queued = false;
}

/* The writer wrote it: durable, after what the round wrote since, unless a
 * newer snapshot is on the disk already (the store drops a stale one). */
static void node_lazy_done(sim *s, sim_node *nd)
{
	nd->lazy_queued = false;
	if (!nd->lazy_have)
		return;
	uint64_t on_disk = 0;
	for (size_t i = 0; i < nd->disk.ndurable; i++)
		if (nd->disk.durable[i].type == PX_REC_SNAPSHOT)
			on_disk = nd->disk.durable[i].slot;
	px_record rec = nd->lazy;
	nd->lazy_have = false;
	if (rec.slot <= on_disk) {
		sim_trace(s,
			  "r%u LAZY snapshot base=%" PRIu64
			  " dropped (disk has %" PRIu64 ")",
			  nd->id, rec.slot, on_disk);
		px_record_clear(&rec);
		return;
	}
	tw_disk_append(&nd->disk, &rec);
	px_record_clear(&rec);
	size_t before = nd->disk.ndurable;
	tw_disk_compact(&nd->disk);
	sim_trace(s,
		  "r%u LAZY snapshot base=%" PRIu64 " durable: %zu -> %zu "
		  "records",
		  nd->id, rec.slot, before, nd->disk.ndurable);
}

/* A write of the round: each record through the record encoding, as
 * lockd's storage keeps it; a synced one is durable at its SYNC. */
static int rio_write(void *ctx, px_record *recs, size_t n, bool sync, char *err,
		     size_t errlen)
{
	sim_node *nd = ctx;
	sim *s = nd->world;
	if (s->now < nd->disk_fail_until) {
		if (s->o->mutant == PX_MUTANT_ACK_FAILED_SYNC) {
			/* The broken storage: the write is gone, and it says
			 * durable. */
			sim_trace(s, "r%u WRITE FAILED (acknowledged anyway)",
				  nd->id);
			return 0;
		}
		snprintf(err, errlen, "the simulated disk fails its writes");
		return -1;
	}
	uint64_t wid = nd->rd.act.ld.write_id;
	if (wid <= nd->last_write_id) {
		chk_fail(&s->chk, "contract",
			 "r%u asked for write %" PRIu64 " after write %" PRIu64
			 " (ids must increase)",
			 nd->id, wid, nd->last_write_id);
	}
	nd->last_write_id = wid;
	uint64_t id = ++nd->disk_seq;
	unsigned np = 0, nv = 0, ns = 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t *bytes;
		size_t len;
		px_record rec;
		int rv = cd_record_encode(&recs[i], &bytes, &len);
		if (rv == 0) {
			sim_corpus(s, "record", (unsigned)recs[i].type, bytes,
				   len);
			sim_corpus(s, "restore", (unsigned)recs[i].type, bytes,
				   len);
			rv = cd_record_decode(bytes, len, &rec);
			free(bytes);
		}
		if (rv != 0) {
			chk_fail(&s->chk, "contract",
				 "r%u wrote a record the codec refuses (%s): "
				 "type %d slot %" PRIu64,
				 nd->id, cd_strerror(rv), (int)recs[i].type,
				 recs[i].slot);
			return 0;
		}
		if (rec.type == PX_REC_SNAPSHOT && s->capture_async) {
			node_lazy_put(s, nd, rec);
			ns++;
			continue;
		}
		tw_disk_write_owned(&nd->disk, rec, id);
		np += rec.type == PX_REC_PROMISE;
		nv += rec.type == PX_REC_VOTE;
		ns += rec.type == PX_REC_SNAPSHOT;
	}
	sim_trace(s,
		  "r%u WRITE id=%" PRIu64 " promise=%u vote=%u snapshot=%u "
		  "records=%zu%s",
		  nd->id, id, np, nv, ns, n, sync ? "" : " (no sync)");
	if (!sync)
		return 0; /* durable with the next synced write, or lost */
	uint64_t t = node_sync_at(s, nd, nd->rd_now);
	nd->rd_now = t;
	nd->release_id = id;
	sim_at(s, t,
	       (sim_ev){.type = SIM_EV_SYNC,
			.node = nd->id,
			.epoch = nd->epoch,
			.write_id = id});
	return 0;
}

/* Frees what an event owns. */
static void sim_ev_free(sim_ev *ev)
{
	switch (ev->type) {
	case SIM_EV_MSG:
		px_msg_free(ev->msg);
		break;
	case SIM_EV_REPLY:
	case SIM_EV_CHANGE:
		free(ev->change);
		break;
	case SIM_EV_CAPTURE:
		if (ev->capture != NULL)
			free(ev->capture->snap);
		free(ev->capture);
		break;
	default:
		slc_free_event(ev);
	}
	ev->change = NULL;
}

static void node_round_init(sim *s, sim_node *nd)
{
	nd->world = s;
	rd_init(&nd->rd, nd->ln,
		&(rd_io){.ctx = nd,
			 .now_us = rio_now_us,
			 .send = rio_send,
			 .reply = rio_reply,
			 .change = rio_change,
			 .write = rio_write,
			 .capture = rio_capture});
	nd->rd.mutant_send_early = s->o->mutant == PX_MUTANT_ROUND_SEND_EARLY;
	nd->round = true;
	nd->rd_now = s->now;
	nd->release_id = 0;
	nd->stalled = false;
	nd->capturing = false;
}

/* Forgets the round: a crash loses what it held and what waited. */
static void node_round_free(sim_node *nd)
{
	if (!nd->round)
		return;
	for (size_t i = 0; i < nd->nheld_msgs; i++)
		px_msg_free(nd->held_msgs[i]);
	for (size_t i = 0; i < nd->nheld_replies; i++)
		free(nd->held_replies[i].tokens);
	for (size_t i = 0; i < nd->ninbox; i++)
		sim_ev_free(&nd->inbox[i]);
	free(nd->held_msgs);
	free(nd->held_replies);
	free(nd->inbox);
	nd->held_msgs = NULL;
	nd->held_replies = NULL;
	nd->inbox = NULL;
	nd->nheld_msgs = nd->held_msgs_cap = 0;
	nd->nheld_replies = nd->held_replies_cap = 0;
	nd->ninbox = nd->inbox_cap = 0;
	rd_free(&nd->rd);
	nd->round = false;
	nd->release_id = 0;
	nd->stalled = false;
}

/* The round is over (its writes done): what it applied, its timer, the
 * checks. */
static void node_round_settle(sim *s, sim_node *nd)
{
	node_take_chosen(s, nd, &nd->rd.act.ld);
	node_settle(s, nd, &nd->rd.act);
}

static void node_round_flush(sim *s, sim_node *nd)
{
	if (rd_flush(&nd->rd) != 0) {
		if (!nd->stalled)
			sim_trace(s, "r%u STALL: %s", nd->id, nd->rd.error);
		nd->stalled = true;
		sim_at(s, s->now + SIM_STALL_RETRY_US,
		       (sim_ev){.type = SIM_EV_RETRY,
				.node = nd->id,
				.epoch = nd->epoch});
		return;
	}
	if (nd->stalled)
		sim_trace(s, "r%u RECOVERED: the batch is written", nd->id);
	nd->stalled = false;
	node_round_settle(s, nd);
}

/* Takes what waited in the inbox, as the daemon's next round would. */
static void node_round_next(sim *s, sim_node *nd)
{
	while (nd->up && nd->round && nd->release_id == 0 && !nd->stalled &&
	       nd->ninbox > 0) {
		size_t n = nd->ninbox;
		sim_ev *evs = nd->inbox;
		nd->inbox = NULL;
		nd->ninbox = nd->inbox_cap = 0;
		node_round_run(s, nd, evs, n);
		for (size_t i = 0; i < n; i++)
			sim_ev_free(&evs[i]);
		free(evs);
	}
}

/* The SYNC of the round's last synced write: what it held leaves. */
static void node_round_release(sim *s, sim_node *nd)
{
	char buf[256];
	nd->release_id = 0;
	for (size_t i = 0; i < nd->nheld_msgs; i++) {
		px_msg *m = nd->held_msgs[i];
		sim_trace(s, "SEND %s", sim_fmt_msg(m, buf, sizeof buf));
		node_check_durable(s, nd, m);
		sim_send_msg(s, m);
	}
	nd->nheld_msgs = 0;
	for (size_t i = 0; i < nd->nheld_replies; i++) {
		node_lreply(s, nd, &nd->held_replies[i]);
		free(nd->held_replies[i].tokens);
	}
	nd->nheld_replies = 0;
	node_round_next(s, nd);
}

/* One round over evs (the round takes the payloads' contents; the caller
 * frees the events). */
static void node_round_run(sim *s, sim_node *nd, sim_ev *evs, size_t n)
{
	char buf[256];
	rd_begin(&nd->rd);
	nd->rd_now = s->now;
	nd->chosen_seen = 0;
	nd->snap_seen = false;
	for (size_t i = 0; i < n; i++) {
		if (evs[i].type != SIM_EV_MSG)
			continue;
		px_msg *m = evs[i].msg;
		sim_trace(s, "RECV %s", sim_fmt_msg(m, buf, sizeof buf));
		ln_event e = {.type = LN_EV_MSG, .msg = m};
		int rc = rd_step(&nd->rd, &e);
		if (rc != 0)
			sim_trace(s, "r%u step(message) returned %d", nd->id,
				  rc);
	}
	for (size_t i = 0; i < n; i++) {
		if (evs[i].type != SIM_EV_CAPTURE)
			continue;
		sim_capture *c = evs[i].capture;
		ln_event e = {.type = LN_EV_SNAPSHOT,
			      .snap = c->snap,
			      .snap_len = c->len,
			      .snap_base = c->base,
			      .snap_sum = c->sum};
		c->snap = NULL; /* the node takes it */
		sim_trace(s, "r%u SNAPSHOT back base=%" PRIu64 "%s", nd->id,
			  c->base, e.snap ? "" : " (failed)");
		rd_step(&nd->rd, &e);
	}
	for (size_t i = 0; i < n; i++) {
		if (evs[i].type != SIM_EV_CHANGE)
			continue;
		ln_event e = {.type = LN_EV_CHANGE,
			      .change = evs[i].change,
			      .change_id = evs[i].change_id};
		rd_step(&nd->rd, &e);
	}
	ln_request reqs[64];
	uint32_t nreq = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && evs[i].type == SIM_EV_LREQ) {
			sim_lreq *lr = evs[i].lreq;
			sim_trace(s,
				  "r%u RECV %s c%" PRIu64 ":%" PRIu64
				  " req=%" PRIx64,
				  nd->id, chk_req_name(lr->req.type),
				  lr->req.session, lr->req.seq, lr->req.req_id);
			reqs[nreq++] = lr->req;
		}
		if (nreq == sizeof reqs / sizeof reqs[0] ||
		    (i == n && nreq > 0)) {
			ln_event e = {.type = LN_EV_REQUEST,
				      .req = reqs,
				      .nreqs = nreq};
			rd_step(&nd->rd, &e);
			nreq = 0;
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (evs[i].type == SIM_EV_TICK) {
			ln_event e = {.type = LN_EV_TICK};
			rd_step(&nd->rd, &e);
			break;
		}
	}
	node_round_flush(s, nd);
}

/* An event for a replica run by the round: now, or after the write in
 * flight (a stalled replica drops peer messages and requests, as lockd
 * does, and keeps only its timer). Takes ev's payload. */
static void node_round_event(sim *s, sim_node *nd, sim_ev *ev)
{
	if (nd->stalled && ev->type != SIM_EV_TICK) {
		sim_trace(s, "r%u DROP(stalled) event %d", nd->id,
			  (int)ev->type);
		sim_ev_free(ev);
		return;
	}
	if (nd->release_id != 0 || nd->stalled) {
		if (ev->type == SIM_EV_TICK)
			for (size_t i = 0; i < nd->ninbox; i++)
				if (nd->inbox[i].type == SIM_EV_TICK)
					return; /* one tick is enough */
		if (nd->ninbox == nd->inbox_cap) {
			nd->inbox_cap = nd->inbox_cap ? 2 * nd->inbox_cap : 16;
			nd->inbox = sim_xrealloc(
				nd->inbox, nd->inbox_cap * sizeof *nd->inbox);
		}
		nd->inbox[nd->ninbox++] = *ev;
		return;
	}
	node_round_run(s, nd, ev, 1);
	sim_ev_free(ev);
}

/* A replica event (tick, durable, message, counter submit) for either kind
 * of node; the node's local clock reading is filled in here. */
static void node_step(sim *s, sim_node *nd, px_event *ev)
{
	ev->now_us = node_local(nd, s->now);
	int rc;
	if (nd->ln) {
		ln_event e = {.type = (ln_event_type)ev->type,
			      .now_us = ev->now_us,
			      .msg = ev->msg,
			      .write_id = ev->write_id};
		rc = ln_node_step(nd->ln, &e, &s->act);
	} else {
		rc = px_replica_step(nd->r, ev, &s->act.ld);
	}
	node_after_step(s, nd, rc, (int)ev->type);
}

static void node_change(sim *s, sim_node *nd, const px_change *c,
			uint64_t change_id)
{
	if (nd->round) {
		px_change *copy = sim_xmalloc(sizeof *copy);
		*copy = *c;
		sim_ev ev = {.type = SIM_EV_CHANGE,
			     .node = nd->id,
			     .epoch = nd->epoch,
			     .change_id = change_id,
			     .change = copy};
		node_round_event(s, nd, &ev);
		return;
	}
	px_event ev = {.type = PX_EV_CHANGE,
		       .now_us = node_local(nd, s->now),
		       .change = c,
		       .change_id = change_id};
	int rc;
	if (nd->ln) {
		ln_event e = {.type = LN_EV_CHANGE,
			      .now_us = ev.now_us,
			      .change = c,
			      .change_id = change_id};
		rc = ln_node_step(nd->ln, &e, &s->act);
	} else {
		rc = px_replica_step(nd->r, &ev, &s->act.ld);
	}
	node_after_step(s, nd, rc, (int)ev.type);
}

static void node_request(sim *s, sim_node *nd, const ln_request *req)
{
	ln_event e = {.type = LN_EV_REQUEST,
		      .now_us = node_local(nd, s->now),
		      .req = req};
	int rc = ln_node_step(nd->ln, &e, &s->act);
	node_after_step(s, nd, rc, (int)e.type);
}

static void node_tick(sim *s, sim_node *nd)
{
	if (nd->round) {
		sim_ev e = {.type = SIM_EV_TICK,
			    .node = nd->id,
			    .epoch = nd->epoch};
		node_round_event(s, nd, &e);
		return;
	}
	px_event ev = {.type = PX_EV_TICK};
	node_step(s, nd, &ev);
}

/* ---- crash and restart -------------------------------------------------- */

static void node_uncorrupt_if_healed(sim *s, sim_node *nd);

/* Once corruption spread (by snapshot) to a majority, a quorum shares the
 * corrupt state, and no digest comparison can tell which is right. */
static bool sim_corrupt_majority(sim *s)
{
	/* (Of the smallest configuration anyone knows: with membership
	 * changes the cell is not all the ids.) */
	if ((uint32_t)__builtin_popcount(s->chk.corrupted_mask) >
	    (s->o->members ? sim_cell_size(s) : s->n) / 2)
		s->corrupt_majority = true;
	return s->corrupt_majority;
}

static int node_restore_one(void *arg, const px_record *rec)
{
	sim_node *nd = arg;
	return nd->ln ? ln_node_restore(nd->ln, rec)
		      : px_replica_restore(nd->r, rec);
}

static void node_start(sim *s, sim_node *nd)
{
	nd->life++;
	nd->cfg.seed = sim_rng_next(&s->rng);
	/* A reboot resets the monotonic clock: a fresh offset each life. */
	nd->clk.offset_us = sim_rng_range(&s->rng, 1, 10000000000ull);
	int64_t dm = s->p.drift_ppm_max;
	nd->clk.drift_ppm =
		(int64_t)sim_rng_below(&s->rng, (uint64_t)(2 * dm + 1)) - dm;
	if (s->o->workload == SIM_WORKLOAD_LEASE) {
		nd->lcfg.paxos = nd->cfg;
		nd->ln = ln_node_new(&nd->lcfg);
		if (!nd->ln) {
			fprintf(stderr,
				"lockd-sim: ln_node_new failed for r%u "
				"(nreplicas %u, members %u)\n",
				nd->id, nd->lcfg.paxos.nreplicas,
				nd->lcfg.paxos.members.n);
			abort();
		}
		if (s->o->driver == SIM_DRIVER_ROUND)
			node_round_init(s, nd);
	} else {
		nd->sm = counter_sm_new();
		nd->r = px_replica_new(&nd->cfg, nd->sm);
		if (!nd->r) {
			fprintf(stderr, "lockd-sim: px_replica_new failed\n");
			abort();
		}
	}
	/* In restore order (paxos.h). */
	size_t bad;
	if (tw_disk_replay(&nd->disk, node_restore_one, nd, &bad) != 0)
		chk_fail(&s->chk, "contract",
			 "r%u rejected its own durable record %zu "
			 "(type %d slot %" PRIu64 ")",
			 nd->id, bad, (int)nd->disk.durable[bad].type,
			 nd->disk.durable[bad].slot);
	nd->up = true;
	nd->tick_live = false;
	nd->last_write_id = 0;
	nd->sync_last_us = s->now;
	nd->led = (px_ballot){0, 0};
	px_status st;
	px_replica_status(node_rep(nd), &st);
	nd->applied = st.applied;
	sim_trace(s,
		  "r%u START life=%" PRIu64 " records=%zu applied=%" PRIu64
		  " promised=%" PRIu64 ".%" PRIu32 " clock offset=%" PRIu64
		  " drift=%" PRId64 "ppm",
		  nd->id, nd->life, nd->disk.ndurable, st.applied,
		  st.promised.round, st.promised.id, nd->clk.offset_us,
		  nd->clk.drift_ppm);
	node_uncorrupt_if_healed(s, nd);
	/* A replica that comes back has to catch up before its digests
	 * count: detection windows start again. */
	sim_corrupt_window_restart(s);
	chk_state(&s->chk, nd->id, st.applied, node_digest(nd));
	node_tick(s, nd);
}

/* A comparison needs a quorum of sound replicas that can talk: after any
 * crash or partition, a corrupted replica's detection window starts again.
 */
static void sim_corrupt_window_restart(sim *s)
{
	for (uint32_t i = 0; i < s->n; i++)
		if (s->nodes[i].corrupted)
			s->nodes[i].corrupted_at = s->nodes[i].applied,
			s->nodes[i].corrupted_us = s->now;
}

static void node_crash(sim *s, sim_node *nd)
{
	sim_corrupt_window_restart(s);
	/* Writes the replica issued but never heard back about may or may not
	 * have reached the disk: a random prefix (whole writes) survives. */
	uint64_t keep = 0;
	size_t k = (size_t)sim_rng_below(&s->rng, nd->disk.npending + 1);
	if (k > 0)
		keep = tw_disk_pending_at(&nd->disk, k - 1);
	size_t npend = nd->disk.npending;
	node_make_durable(s, nd, keep);
	size_t lost = tw_disk_crash(&nd->disk, keep);
	sim_trace(s, "r%u CRASH (%zu pending records, %zu lost, %zu durable)",
		  nd->id, npend, lost, nd->disk.ndurable);
	node_round_free(nd);
	px_replica_free(nd->r);
	counter_sm_free(nd->sm);
	ln_node_free(nd->ln);
	nd->r = NULL;
	nd->sm = NULL;
	nd->ln = NULL;
	nd->up = false;
	nd->epoch++;
	nd->tick_live = false;
	node_lazy_drop(nd);
	s->res->crashes++;
}

/* ---- clients ------------------------------------------------------------ */

static void client_send(sim *s, sim_client *c)
{
	sim_at(s, s->now + SIM_CLIENT_TIMEOUT_US,
	       (sim_ev){.type = SIM_EV_CLIENT_TIMEOUT,
			.client = c->idx,
			.gen = c->attempt});
	sim_node *nd = &s->nodes[c->target];
	if (!nd->up) {
		sim_trace(s, "DROP(down) submit c%u:%" PRIu64 " ->r%u",
			  c->idx + 1, c->seq, c->target);
		return;
	}
	if (sim_rng_chance(&s->rng, s->p.loss_p)) {
		sim_trace(s, "DROP(loss) submit c%u:%" PRIu64 " ->r%u",
			  c->idx + 1, c->seq, c->target);
		return;
	}
	sim_trace(s, "SUBMIT c%u:%" PRIu64 " ->r%u attempt=%" PRIu64,
		  c->idx + 1, c->seq, c->target, c->attempt);
	int copies = sim_rng_chance(&s->rng, s->p.dup_p) ? 2 : 1;
	for (int i = 0; i < copies; i++)
		sim_at(s, s->now + sim_net_delay(s),
		       (sim_ev){.type = SIM_EV_SUBMIT,
				.client = c->idx,
				.node = c->target,
				.epoch = nd->epoch,
				.seq_cmd = c->seq});
}

static void client_issue(sim *s, sim_client *c)
{
	if (s->healed || c->outstanding)
		return;
	uint8_t data[SIM_COUNTER_BYTES_MAX];
	uint32_t len = (uint32_t)sim_rng_range(
		&s->rng, 1,
		sim_rng_chance(&s->rng, 0.1) ? SIM_COUNTER_BYTES_MAX : 8);
	for (uint32_t i = 0; i < len; i++)
		data[i] = (uint8_t)sim_rng_next(&s->rng);
	c->seq++;
	chk_submitted(&s->chk, c->idx, c->seq, data, len);
	c->outstanding = true;
	s->outstanding++;
	s->res->commands++;
	c->attempt++;
	c->redirects = 0;
	c->target = c->guess >= 0 ? (uint32_t)c->guess
				  : (uint32_t)sim_rng_below(&s->rng, s->n);
	client_send(s, c);
}

static void client_reply(sim *s, sim_client *c, uint32_t from,
			 const px_reply *rep)
{
	if (!c->outstanding || rep->seq != c->seq) {
		sim_trace(s, "c%u ignores stale reply seq=%" PRIu64 " from r%u",
			  c->idx + 1, rep->seq, from);
		return;
	}
	switch (rep->status) {
	case PX_REPLY_OK:
		sim_trace(s,
			  "c%u ACKED seq=%" PRIu64 " slot=%" PRIu64 " by r%u",
			  c->idx + 1, c->seq, rep->slot, from);
		c->outstanding = false;
		s->outstanding--;
		s->res->acks++;
		c->guess = (int32_t)from;
		sim_at(s,
		       s->now + sim_rng_range(&s->rng, s->p.think_min_us,
					      s->p.think_max_us),
		       (sim_ev){.type = SIM_EV_CLIENT_START, .client = c->idx});
		return;
	case PX_REPLY_NOT_LEADER:
		if (from != c->target)
			return;
		c->attempt++;
		c->redirects++;
		if (rep->leader_hint >= 0 &&
		    (uint32_t)rep->leader_hint < s->n &&
		    (uint32_t)rep->leader_hint != from && c->redirects % 4 != 0)
			c->target = (uint32_t)rep->leader_hint;
		else
			c->target = sim_other(s, from);
		c->guess = (int32_t)c->target;
		sim_at(s,
		       s->now + sim_rng_range(&s->rng, 100,
					      1000u * (c->redirects < 10
							       ? c->redirects
							       : 10)),
		       (sim_ev){.type = SIM_EV_CLIENT_RETRY,
				.client = c->idx,
				.gen = c->attempt});
		return;
	case PX_REPLY_BUSY:
		if (from != c->target)
			return;
		c->attempt++;
		c->target = sim_other(s, from);
		sim_at(s, s->now + sim_rng_range(&s->rng, 10000, 50000),
		       (sim_ev){.type = SIM_EV_CLIENT_RETRY,
				.client = c->idx,
				.gen = c->attempt});
		return;
	case PX_REPLY_INVALID:
		return; /* the checker has flagged it */
	}
}

/* ---- faults ------------------------------------------------------------- */

static px_value *sim_forged_value(sim *s)
{
	static const char junk[] = "forged by a hostile peer";
	px_cmd c = {.client_id = 0x7ff0000000000000ull +
				 sim_rng_below(&s->rng, 1000),
		    .seq = 1 + sim_rng_below(&s->rng, 1000),
		    .len = (uint32_t)(sizeof junk - 1),
		    .data = (const uint8_t *)junk};
	px_value *v = px_value_new(&c, 1);
	if (v == NULL)
		abort();
	return v;
}

/* Someone who can reach the peer ports sends a well-formed message in a
 * replica's name: a higher ballot, a vote, a decree that was never chosen,
 * a commit that never happened, an acknowledgement nobody sent. The cell
 * key drops it in the transport; the open-peers mutant lets it through, and
 * the oracle must then see the damage. */
static void sim_hostile(sim *s)
{
	uint32_t to = (uint32_t)sim_rng_below(&s->rng, s->n);
	sim_node *nd = &s->nodes[to];
	if (!nd->up)
		return;
	px_status st;
	px_replica_status(node_rep(nd), &st);
	px_msg *m = calloc(1, sizeof *m);
	if (m == NULL)
		abort();
	m->to = to;
	m->from = (to + 1 + (uint32_t)sim_rng_below(&s->rng, s->n - 1)) % s->n;
	uint64_t top = st.promised.round > st.ballot.round ? st.promised.round
							   : st.ballot.round;
	switch (sim_rng_below(&s->rng, 5)) {
	case 0: /* a vote for a decree nobody proposed, above every ballot */
		m->type = PX_MSG_ACCEPT;
		m->ballot = (px_ballot){top + 1 + sim_rng_below(&s->rng, 3),
					m->from};
		m->slot = st.commit + 1 + sim_rng_below(&s->rng, 3);
		m->commit = st.commit;
		m->value = sim_forged_value(s);
		break;
	case 1: /* decrees that were never chosen, as catch-up */
		m->type = PX_MSG_CATCHUP;
		m->nvotes = 1 + (uint32_t)sim_rng_below(&s->rng, 4);
		m->votes = calloc(m->nvotes, sizeof *m->votes);
		if (m->votes == NULL)
			abort();
		for (uint32_t i = 0; i < m->nvotes; i++)
			m->votes[i] = (px_vote){.slot = st.commit + 1 + i,
						.value = sim_forged_value(s),
						.chosen = true};
		m->commit = st.commit + m->nvotes;
		m->slot = st.commit + 1;
		break;
	case 2: /* a leader's acknowledgement of a vote never cast */
		m->type = PX_MSG_ACCEPTED;
		m->ballot = st.ballot.round ? st.ballot : (px_ballot){1, to};
		m->slot = st.next_slot > st.commit + 1
				  ? st.commit + 1 +
					    sim_rng_below(&s->rng,
							  st.next_slot -
								  st.commit - 1)
				  : st.commit + 1;
		break;
	case 3: /* a promise nobody gave, with a vote nobody cast */
		m->type = PX_MSG_PROMISE;
		m->ballot = st.ballot.round ? st.ballot : (px_ballot){1, to};
		m->slot = st.commit + 1;
		m->nvotes = 1;
		m->votes = calloc(1, sizeof *m->votes);
		if (m->votes == NULL)
			abort();
		m->votes[0] = (px_vote){.slot = st.commit + 1,
					.ballot = {top, m->from},
					.value = sim_forged_value(s)};
		break;
	default: /* a 1a far above the leader's ballot */
		m->type = PX_MSG_PREPARE;
		m->ballot = (px_ballot){top + 1 + sim_rng_below(&s->rng, 100),
					m->from};
		m->slot = st.commit + 1;
		break;
	}
	s->res->forged++;
	char buf[256];
	sim_trace(s, "FORGE %s", sim_fmt_msg(m, buf, sizeof buf));
	sim_at(s, s->now + sim_net_delay(s),
	       (sim_ev){.type = SIM_EV_MSG,
			.node = m->to,
			.epoch = nd->epoch,
			.forged = true,
			.msg = m});
}

static void sim_partition(sim *s)
{
	memset(s->blocked, 0, sizeof s->blocked);
	uint32_t n = s->n;
	int32_t leader = sim_leader(s);
	uint32_t l = leader >= 0 ? (uint32_t)leader
				 : (uint32_t)sim_rng_below(&s->rng, n);
	char desc[128];
	switch (sim_rng_below(&s->rng, 5)) {
	case 0: { /* symmetric split into two groups */
		uint32_t mask =
			(uint32_t)sim_rng_range(&s->rng, 1, (1u << n) - 2);
		for (uint32_t i = 0; i < n; i++)
			for (uint32_t j = 0; j < n; j++)
				s->blocked[i][j] =
					((mask >> i) & 1) != ((mask >> j) & 1);
		snprintf(desc, sizeof desc, "split group mask=0x%x", mask);
		break;
	}
	case 1: { /* asymmetric: one group cannot hear the other */
		uint32_t mask =
			(uint32_t)sim_rng_range(&s->rng, 1, (1u << n) - 2);
		for (uint32_t i = 0; i < n; i++)
			for (uint32_t j = 0; j < n; j++)
				s->blocked[i][j] =
					((mask >> i) & 1) && !((mask >> j) & 1);
		snprintf(desc, sizeof desc,
			 "one-way: group 0x%x cannot reach the rest", mask);
		break;
	}
	case 2: /* the leader isolated */
		for (uint32_t i = 0; i < n; i++)
			s->blocked[l][i] = s->blocked[i][l] = i != l;
		snprintf(desc, sizeof desc, "r%u (leader %d) isolated", l,
			 leader);
		break;
	case 3: /* the leader talks but does not hear */
		for (uint32_t i = 0; i < n; i++)
			s->blocked[i][l] = i != l;
		snprintf(desc, sizeof desc, "r%u (leader %d) deaf", l, leader);
		break;
	default: /* the leader hears but its messages are lost */
		for (uint32_t i = 0; i < n; i++)
			s->blocked[l][i] = i != l;
		snprintf(desc, sizeof desc, "r%u (leader %d) mute", l, leader);
		break;
	}
	s->part_gen++;
	s->res->partitions++;
	sim_corrupt_window_restart(s);
	uint64_t dur =
		sim_rng_range(&s->rng, s->p.part_min_us, s->p.part_max_us);
	sim_at(s, s->now + dur,
	       (sim_ev){.type = SIM_EV_PART_END, .gen = s->part_gen});
	sim_trace(s, "PARTITION %s for %" PRIu64 " ms", desc, dur / 1000);
}

/* Corrupts one live replica's state machine in memory (counter workload):
 * its digests no longer match the ledger's, and the digest comparison must
 * find it outvoted. */
static bool sim_corrupt_fault(sim *s)
{
	if (s->o->workload != SIM_WORKLOAD_COUNTER || s->chk.corrupted_mask ||
	    !sim_rng_chance(&s->rng, s->p.corrupt_p))
		return false;
	uint32_t v = (uint32_t)sim_rng_below(&s->rng, s->n);
	sim_node *nd = &s->nodes[v];
	if (!nd->up)
		return false;
	((counter_sm *)nd->sm)->hash ^= 0x0badd1e5ull;
	nd->corrupted = true;
	nd->corrupted_at = nd->applied;
	nd->corrupted_us = s->now;
	s->chk.corrupted_mask |= 1u << v;
	s->res->corruptions++;
	sim_trace(s,
		  "r%u CORRUPT: its state changed under it at applied=%" PRIu64,
		  v, nd->applied);
	return true;
}

/* After a restart, a corrupted replica whose disk held the state from
 * before the corruption is healthy again. */
static void node_uncorrupt_if_healed(sim *s, sim_node *nd)
{
	if (!nd->corrupted)
		return;
	const chk_slot *cs =
		nd->applied < s->chk.nslots ? &s->chk.slots[nd->applied] : NULL;
	if (nd->disk.ndurable == 0 ||
	    (cs != NULL && cs->digest_known && cs->digest == node_digest(nd))) {
		nd->corrupted = false;
		s->chk.corrupted_mask &= ~(1u << nd->id);
		sim_trace(s, "r%u HEALED: restarted from a sound disk", nd->id);
	} else {
		nd->corrupted_at = nd->applied;
		nd->corrupted_us = s->now;
	}
}

/* A corrupted replica that applied several checkpoints past the corruption
 * while the cell ran without a crash or partition must have found itself
 * outvoted. */
static void sim_check_corruption_found(sim *s)
{
	if (s->corrupt_majority)
		return; /* the quorum's state is the corrupt one: nothing
			   can tell */
	/* Only a cell whose replicas are all up and can all talk can tell
	 * (with one down, a sound replica and a corrupt one just disagree). */
	for (uint32_t i = 0; i < s->n; i++) {
		if (!sim_counts_at_end(&s->nodes[i]))
			continue;
		if (!s->nodes[i].up)
			return;
		px_status vs;
		px_replica_status(node_rep(&s->nodes[i]), &vs);
		if (!vs.voter) {
			/* a recovering replica answers no heartbeat */
			sim_corrupt_window_restart(s);
			return;
		}
		for (uint32_t j = 0; j < s->n; j++)
			if (s->blocked[i][j])
				return;
	}
	for (uint32_t i = 0; i < s->n && !s->chk.violated; i++) {
		sim_node *nd = &s->nodes[i];
		/* (A replica outside the cell is compared with nobody.) */
		if (!nd->corrupted || !nd->up || !sim_counts_at_end(nd))
			continue;
		px_status st;
		px_replica_status(node_rep(nd), &st);
		/* Four checkpoints, and a second of heartbeats, with no
		 * crash or partition anywhere. */
		if (st.applied <
			    nd->corrupted_at + 4 * nd->cfg.digest_every_slots ||
		    s->now < nd->corrupted_us + 1000000)
			continue;
		if (st.digest_alarm != PX_DIGEST_DIVERGED)
			chk_fail(&s->chk, "digest",
				 "r%u's state was corrupted at applied=%" PRIu64
				 "; at %" PRIu64
				 " (digests every %u slots) it has not found "
				 "itself outvoted (alarm %d)",
				 i, nd->corrupted_at, st.applied,
				 nd->cfg.digest_every_slots,
				 (int)st.digest_alarm);
	}
}

/* A replica that is part of the run: started, not removed. */
static bool node_active(const sim_node *nd)
{
	return !nd->absent && !nd->gone && !nd->zombie && !nd->leaving;
}

/* How many replicas the fault budget is counted against: the active ones,
 * and never more than the voters of any configuration a replica knows (a
 * minority of the smallest is a minority of every one). */
static uint32_t sim_cell_size(sim *s)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < s->n; i++)
		n += node_active(&s->nodes[i]);
	for (uint32_t i = 0; i < s->n; i++) {
		if (!s->nodes[i].up)
			continue;
		px_members m;
		px_replica_members(node_rep(&s->nodes[i]), &m, NULL);
		uint32_t v = 0;
		for (uint32_t k = 0; k < m.n; k++)
			v += m.m[k].voting;
		if (v < n)
			n = v;
	}
	return n;
}

/* --members: the leader is asked to add a newcomer, remove a member (the
 * leader itself at times), which with an add later replaces it. The core
 * refuses what it must (one change at a time, no quorum left): the driver
 * asks blindly. */
static void sim_member(sim *s)
{
	int32_t l = sim_leader(s);
	if (l < 0)
		return;
	sim_node *ld = &s->nodes[l];
	px_members m;
	px_replica_members(node_rep(ld), &m, NULL);
	uint32_t voters = 0, learners = 0;
	for (uint32_t k = 0; k < m.n; k++) {
		voters += m.m[k].voting;
		learners += !m.m[k].voting;
	}
	int32_t fresh = -1;
	for (uint32_t i = 0; i < s->n && fresh < 0; i++)
		if (s->nodes[i].absent)
			fresh = (int32_t)i;
	static uint64_t change_ids;
	px_change c = {0};
	bool add = fresh >= 0 && learners == 0 && m.n < LD_REPLICAS_MAX &&
		   (voters < 3 || (voters < 5 && sim_rng_chance(&s->rng, 0.5)));
	if (add) {
		sim_node *nd = &s->nodes[fresh];
		nd->absent = false;
		/* A newcomer starts from what a member told it. */
		nd->cfg.nreplicas = 0;
		nd->cfg.members = m;
		nd->lcfg.paxos.nreplicas = 0;
		nd->lcfg.paxos.members = m;
		node_start(s, nd);
		c = (px_change){.op = PX_CHANGE_ADD,
				.id = (uint32_t)fresh,
				.peer = "sim",
				.client = "sim"};
	} else if (voters > 3 && learners == 0) {
		/* Never below three voters: a replacement adds first. */
		uint32_t k = (uint32_t)sim_rng_below(&s->rng, m.n);
		if (sim_rng_chance(&s->rng, 0.3))
			for (k = 0; m.m[k].id != (uint32_t)l; k++)
				;
		c = (px_change){.op = PX_CHANGE_REMOVE, .id = m.m[k].id};
	} else {
		return;
	}
	sim_trace(s, "MEMBER ask r%d: %s r%u", l,
		  c.op == PX_CHANGE_ADD ? "add" : "remove", c.id);
	node_change(s, ld, &c, ++change_ids);
}

/* One live replica's disk stops taking writes (full, EIO) for a while. */
static bool sim_disk_fault(sim *s)
{
	if (!sim_rng_chance(&s->rng, s->p.disk_fail_p))
		return false;
	uint32_t v = (uint32_t)sim_rng_below(&s->rng, s->n);
	sim_node *nd = &s->nodes[v];
	if (!nd->up || nd->disk_fail_until > s->now)
		return false;
	nd->disk_fail_until =
		s->now + sim_rng_range(&s->rng, s->p.disk_fail_min_us,
				       s->p.disk_fail_max_us);
	s->res->disk_faults++;
	sim_trace(s, "r%u DISK FAILS for %" PRIu64 " ms", v,
		  (nd->disk_fail_until - s->now) / 1000);
	return true;
}

static void sim_crash_fault(sim *s)
{
	if (sim_corrupt_fault(s) || sim_disk_fault(s))
		return;
	uint32_t down = 0;
	for (uint32_t i = 0; i < s->n; i++)
		down += node_active(&s->nodes[i]) && !s->nodes[i].up;
	uint32_t size = sim_cell_size(s);
	if (down == 0 && sim_rng_chance(&s->rng, s->p.power_loss_p)) {
		/* The whole cell loses power: every unsynced write is at risk
		 * at once, on every replica. */
		sim_trace(s, "POWER LOSS");
		for (uint32_t i = 0; i < s->n; i++) {
			sim_node *nd = &s->nodes[i];
			if (!nd->up)
				continue; /* not started, or gone */
			node_crash(s, nd);
			sim_at(s,
			       s->now + sim_rng_range(&s->rng,
						      s->p.restart_min_us,
						      s->p.restart_max_us),
			       (sim_ev){.type = SIM_EV_RESTART,
					.node = i,
					.epoch = nd->epoch});
		}
		return;
	}
	uint32_t max_down = s->p.max_down ? s->p.max_down : size / 2;
	if (down >= max_down || down >= size)
		return;
	int32_t leader = sim_leader(s);
	uint32_t v;
	if (leader >= 0 && sim_rng_chance(&s->rng, s->p.crash_leader_p)) {
		v = (uint32_t)leader;
	} else {
		uint32_t up = 0;
		for (uint32_t i = 0; i < s->n; i++)
			up += s->nodes[i].up && !s->nodes[i].leaving;
		if (up == 0)
			return;
		uint32_t k = (uint32_t)sim_rng_below(&s->rng, up);
		for (v = 0;; v++)
			if (s->nodes[v].up && !s->nodes[v].leaving && k-- == 0)
				break;
	}
	sim_node *nd = &s->nodes[v];
	node_crash(s, nd);
	/* The disk goes too, while fewer than a minority are without a
	 * voter's disk (wiped, or never made their JOINED record durable):
	 * the recovery rule (paxos.h) assumes a majority kept theirs. */
	uint32_t without = 0;
	for (uint32_t i = 0; i < s->n; i++)
		without += i != v && node_active(&s->nodes[i]) &&
			   !tw_disk_has(&s->nodes[i].disk, PX_REC_JOINED);
	/* A removal may be chosen and not yet applied anywhere: count one
	 * voter fewer than anyone knows of. */
	uint32_t wsize = s->o->members && size > 0 ? size - 1 : size;
	if (node_active(nd) && wsize > 0 && without < (wsize - 1) / 2 &&
	    sim_rng_chance(&s->rng, s->p.wipe_p)) {
		node_lazy_drop(nd);
		tw_disk_free(&nd->disk);
		nd->wiped = true;
		nd->cfg.incarnation = sim_rng_next(&s->rng) | 1;
		/* Its first configuration may be long gone: it starts from
		 * what a member tells it (lockd --join). */
		for (uint32_t i = 0; s->o->members && i < s->n; i++)
			if (s->nodes[i].up && node_active(&s->nodes[i])) {
				px_replica_members(node_rep(&s->nodes[i]),
						   &nd->cfg.members, NULL);
				nd->cfg.nreplicas = 0;
				break;
			}
		s->res->wipes++;
		sim_trace(s, "r%u WIPED: its disk is lost", nd->id);
	}
	sim_at(s,
	       s->now + sim_rng_range(&s->rng, s->p.restart_min_us,
				      s->p.restart_max_us),
	       (sim_ev){.type = SIM_EV_RESTART, .node = v, .epoch = nd->epoch});
}

static void sim_heal(sim *s)
{
	sim_corrupt_window_restart(s);
	s->healed = true;
	s->p.loss_p = s->p.dup_p = s->p.tail_p = 0;
	memset(s->blocked, 0, sizeof s->blocked);
	s->res->heal_us = s->now;
	sim_trace(s, "HEAL: no more faults, no new commands; %u outstanding",
		  s->outstanding);
	for (uint32_t i = 0; i < s->n; i++)
		if (!s->nodes[i].up && !s->nodes[i].absent && !s->nodes[i].gone)
			node_start(s, &s->nodes[i]);
	sim_at(s, s->now + SIM_LIVENESS_US, (sim_ev){.type = SIM_EV_DEADLINE});
	if (s->o->workload == SIM_WORKLOAD_LEASE)
		slc_heal(s);
}

/* Whether the end of a run waits for this replica: a member of the cell
 * (a newcomer whose addition was refused is not, nor a removed one). */
static bool sim_counts_at_end(const sim_node *nd)
{
	if (!node_active(nd))
		return false;
	if (!nd->up)
		return true;
	px_status st;
	px_replica_status(node_rep(nd), &st);
	return st.member && !st.removed;
}

/* Lease workload: every client has finished (or vanished), every lease has
 * ended (the vanished clients' ones by expiry), and every replica has
 * applied the whole ledger. */
static bool sim_done_lease(sim *s)
{
	if (!slc_done(s))
		return false;
	for (uint32_t i = 0; i < s->n; i++) {
		const sim_node *nd = &s->nodes[i];
		if (!sim_counts_at_end(nd))
			continue;
		if (!nd->up || nd->applied < s->chk.max_slot ||
		    ls_table_count(ln_node_table(nd->ln)) != 0)
			return false;
	}
	return true;
}

static bool sim_done(sim *s)
{
	if (s->o->workload == SIM_WORKLOAD_LEASE)
		return sim_done_lease(s);
	if (s->outstanding)
		return false;
	for (uint32_t i = 0; i < s->n; i++)
		if (sim_counts_at_end(&s->nodes[i]) &&
		    (!s->nodes[i].up ||
		     s->nodes[i].applied < s->chk.max_ack_slot))
			return false;
	return true;
}

static void sim_liveness_failure(sim *s)
{
	char buf[768];
	int n = snprintf(buf, sizeof buf,
			 "%u s after heal:", SIM_LIVENESS_US / 1000000);
	if (s->o->workload == SIM_WORKLOAD_LEASE) {
		slc_liveness_detail(s, buf + n, sizeof buf - (size_t)n);
		n = (int)strlen(buf);
	}
	for (uint32_t i = 0;
	     i < s->nclients && n > 0 && (size_t)n < sizeof buf &&
	     s->o->workload == SIM_WORKLOAD_COUNTER;
	     i++)
		if (s->clients[i].outstanding)
			n += snprintf(
				buf + n, sizeof buf - (size_t)n,
				" c%u:%" PRIu64 " unacknowledged (%" PRIu64
				" attempts, at r%u);",
				i + 1, s->clients[i].seq, s->clients[i].attempt,
				s->clients[i].target);
	for (uint32_t i = 0; i < s->n && n > 0 && (size_t)n < sizeof buf; i++) {
		px_status st;
		if (!s->nodes[i].up)
			continue;
		px_replica_status(node_rep(&s->nodes[i]), &st);
		n += snprintf(
			buf + n, sizeof buf - (size_t)n,
			" r%u %s b=%" PRIu64 ".%" PRIu32 " leader=%" PRId32
			" applied=%" PRIu64 " leases=%" PRIu64 ";",
			i, sim_role_name(st.role), st.ballot.round,
			st.ballot.id, st.leader, st.applied,
			s->nodes[i].ln
				? ls_table_count(ln_node_table(s->nodes[i].ln))
				: 0);
	}
	chk_fail(&s->chk, "liveness",
		 "%s highest slot %" PRIu64 " (acked %" PRIu64 ")", buf,
		 s->chk.max_slot, s->chk.max_ack_slot);
}

/* ---- the event loop ----------------------------------------------------- */

static void sim_dispatch(sim *s, sim_ev *ev)
{
	char buf[256];
	switch (ev->type) {
	case SIM_EV_TICK: {
		sim_node *nd = &s->nodes[ev->node];
		if (!nd->up || nd->epoch != ev->epoch)
			return;
		if (ev->gen != 0) {
			if (ev->gen != nd->tick_gen)
				return; /* superseded by an earlier tick */
			nd->tick_live = false;
		}
		node_tick(s, nd);
		return;
	}
	case SIM_EV_SYNC: {
		sim_node *nd = &s->nodes[ev->node];
		if (!nd->up || nd->epoch != ev->epoch)
			return;
		if (nd->round) {
			node_make_durable(s, nd, ev->write_id);
			sim_trace(s, "r%u DURABLE id=%" PRIu64, nd->id,
				  ev->write_id);
			if (ev->write_id == nd->release_id)
				node_round_release(s, nd);
			return;
		}
		if (s->now < nd->disk_fail_until) {
			if (s->o->mutant == PX_MUTANT_ACK_FAILED_SYNC) {
				/* The broken storage: the sync failed, the
				 * writes are gone, and it says durable. */
				tw_disk_lose(&nd->disk, ev->write_id);
				sim_trace(s,
					  "r%u SYNC FAILED id=%" PRIu64
					  " (acknowledged anyway)",
					  nd->id, ev->write_id);
				px_event e = {.type = PX_EV_DURABLE,
					      .write_id = ev->write_id};
				node_step(s, nd, &e);
				return;
			}
			/* lockd's storage: the write waits and is tried
			 * again (every 500 ms) until the disk takes it. */
			sim_trace(s, "r%u SYNC FAILED id=%" PRIu64 ": retried",
				  nd->id, ev->write_id);
			sim_at(s,
			       nd->disk_fail_until +
				       sim_rng_range(&s->rng, 0, 500000),
			       (sim_ev){.type = SIM_EV_SYNC,
					.node = nd->id,
					.epoch = nd->epoch,
					.write_id = ev->write_id});
			return;
		}
		node_make_durable(s, nd, ev->write_id);
		sim_trace(s, "r%u DURABLE id=%" PRIu64, nd->id, ev->write_id);
		px_event e = {.type = PX_EV_DURABLE, .write_id = ev->write_id};
		node_step(s, nd, &e);
		return;
	}
	case SIM_EV_MSG: {
		px_msg *m = ev->msg;
		sim_node *nd = &s->nodes[ev->node];
		if (ev->forged && s->o->mutant != PX_MUTANT_OPEN_PEERS) {
			/* The cell key (or TLS with replica certificates):
			 * a message without a valid MAC never reaches the
			 * core. */
			sim_trace(s, "DROP(forged: bad MAC) %s",
				  sim_fmt_msg(m, buf, sizeof buf));
		} else if (!nd->up || nd->epoch != ev->epoch) {
			sim_trace(s, "DROP(crashed) %s",
				  sim_fmt_msg(m, buf, sizeof buf));
		} else if (s->blocked[m->from][m->to]) {
			s->res->msgs_lost++;
			sim_trace(s, "DROP(partition) %s",
				  sim_fmt_msg(m, buf, sizeof buf));
		} else if (nd->round) {
			nd->rx_chunks += m->type == PX_MSG_SNAPSHOT;
			node_round_event(s, nd, ev); /* takes m */
			return;
		} else {
			sim_trace(s, "RECV %s",
				  sim_fmt_msg(m, buf, sizeof buf));
			px_event e = {.type = PX_EV_MSG, .msg = m};
			nd->rx_chunks += m->type == PX_MSG_SNAPSHOT;
			s->msg_from = (int32_t)m->from;
			node_step(s, nd, &e);
			s->msg_from = -1;
		}
		px_msg_free(m);
		return;
	}
	case SIM_EV_SUBMIT: {
		sim_node *nd = &s->nodes[ev->node];
		const chk_cmd *cc =
			chk_cmd_get(&s->chk, ev->client, ev->seq_cmd);
		if (!nd->up || nd->epoch != ev->epoch || !cc) {
			sim_trace(s,
				  "DROP(crashed) submit c%u:%" PRIu64 " ->r%u",
				  ev->client + 1, ev->seq_cmd, ev->node);
			return;
		}
		px_cmd cmd = {.client_id = ev->client + 1,
			      .seq = ev->seq_cmd,
			      .len = cc->len,
			      .data = cc->data};
		sim_trace(s, "r%u RECV submit c%u:%" PRIu64, ev->node,
			  ev->client + 1, ev->seq_cmd);
		px_event e = {.type = PX_EV_SUBMIT, .cmd = &cmd};
		node_step(s, nd, &e);
		return;
	}
	case SIM_EV_REPLY:
		client_reply(s, &s->clients[ev->client], ev->node, ev->reply);
		free(ev->reply);
		return;
	case SIM_EV_CLIENT_START:
		client_issue(s, &s->clients[ev->client]);
		return;
	case SIM_EV_CLIENT_RETRY: {
		sim_client *c = &s->clients[ev->client];
		if (c->outstanding && ev->gen == c->attempt)
			client_send(s, c);
		return;
	}
	case SIM_EV_CLIENT_TIMEOUT: {
		sim_client *c = &s->clients[ev->client];
		if (!c->outstanding || ev->gen != c->attempt)
			return;
		sim_trace(s, "c%u TIMEOUT seq=%" PRIu64 " at r%u", c->idx + 1,
			  c->seq, c->target);
		c->attempt++;
		c->target = sim_other(s, c->target);
		c->guess = -1;
		client_send(s, c);
		return;
	}
	case SIM_EV_CRASH:
		if (s->healed)
			return;
		sim_at(s,
		       s->now + sim_rng_range(&s->rng, s->p.crash_every_min_us,
					      s->p.crash_every_max_us),
		       (sim_ev){.type = SIM_EV_CRASH});
		sim_crash_fault(s);
		return;
	case SIM_EV_RESTART: {
		sim_node *nd = &s->nodes[ev->node];
		if (nd->up || nd->epoch != ev->epoch)
			return;
		node_start(s, nd);
		return;
	}
	case SIM_EV_MEMBER:
		if (s->healed)
			return;
		sim_at(s, s->now + sim_rng_range(&s->rng, 100000, 1500000),
		       (sim_ev){.type = SIM_EV_MEMBER});
		sim_member(s);
		return;
	case SIM_EV_CHANGE:
		sim_ev_free(ev); /* only ever in an inbox */
		return;
	case SIM_EV_LAZY: {
		sim_node *nd = &s->nodes[ev->node];
		if (nd->up && nd->epoch == ev->epoch)
			node_lazy_done(s, nd);
		return;
	}
	case SIM_EV_CAPTURE: {
		sim_node *nd = &s->nodes[ev->node];
		sim_capture *c = ev->capture;
		if (!nd->up || nd->epoch != ev->epoch || !nd->round) {
			sim_ev_free(ev); /* a past life's */
			return;
		}
		nd->capturing = false;
		if (c->lost) {
			s->res->captures_lost++;
			sim_ev_free(ev);
			return;
		}
		if (c->snap == NULL)
			s->res->captures_failed++;
		else
			s->res->captures++;
		node_round_event(s, nd, ev); /* takes the capture */
		return;
	}
	case SIM_EV_RETRY: {
		sim_node *nd = &s->nodes[ev->node];
		if (!nd->up || nd->epoch != ev->epoch || !nd->round ||
		    !nd->stalled)
			return;
		nd->rd_now = s->now;
		node_round_flush(s, nd);
		node_round_next(s, nd);
		return;
	}
	case SIM_EV_LEAVE: {
		sim_node *nd = &s->nodes[ev->node];
		if (!nd->up || nd->epoch != ev->epoch) {
			nd->leaving = false;
			return;
		}
		sim_corrupt_window_restart(s);
		/* Half of them stop, as lockd does; the others stay on and
		 * answer whoever asks, as a replica that missed the news. */
		if (sim_rng_chance(&s->rng, 0.5)) {
			sim_trace(s, "r%u LEAVES the cell (stops)", nd->id);
			node_crash(s, nd);
			nd->gone = true;
		} else {
			sim_trace(s, "r%u LEAVES the cell (stays on)", nd->id);
			nd->zombie = true;
		}
		nd->leaving = false;
		return;
	}
	case SIM_EV_HOSTILE:
		if (s->healed)
			return;
		sim_at(s,
		       s->now + sim_rng_range(&s->rng,
					      s->p.hostile_every_min_us,
					      s->p.hostile_every_max_us),
		       (sim_ev){.type = SIM_EV_HOSTILE});
		sim_hostile(s);
		return;
	case SIM_EV_PART_START:
		if (s->healed)
			return;
		sim_at(s,
		       s->now + sim_rng_range(&s->rng, s->p.part_every_min_us,
					      s->p.part_every_max_us),
		       (sim_ev){.type = SIM_EV_PART_START});
		sim_partition(s);
		return;
	case SIM_EV_PART_END:
		if (ev->gen != s->part_gen)
			return;
		memset(s->blocked, 0, sizeof s->blocked);
		sim_corrupt_window_restart(s);
		sim_trace(s, "PARTITION ends");
		return;
	case SIM_EV_HEAL:
		sim_heal(s);
		return;
	case SIM_EV_DEADLINE:
		if (sim_corrupt_majority(s)) {
			/* A quorum shares a corrupt state: digests cannot
			 * tell who is right, and replicas that were outvoted
			 * earlier stop serving. An operator acts; the cell
			 * must not fork meanwhile, but need not go on. */
			sim_trace(s, "END: corruption reached a majority; "
				     "the cell waits for an operator");
			s->gave_up = true;
			return;
		}
		sim_liveness_failure(s);
		return;
	case SIM_EV_LREQ: {
		sim_lreq *lr = ev->lreq;
		sim_node *nd = &s->nodes[ev->node];
		if (!nd->up || nd->epoch != ev->epoch) {
			sim_trace(s, "DROP(crashed) %s c%u:%" PRIu64 " ->r%u",
				  chk_req_name(lr->req.type), ev->client + 1,
				  lr->req.seq, ev->node);
		} else if (nd->round) {
			node_round_event(s, nd, ev); /* takes lr */
			return;
		} else {
			sim_trace(s, "r%u RECV %s c%u:%" PRIu64 " req=%" PRIx64,
				  ev->node, chk_req_name(lr->req.type),
				  ev->client + 1, lr->req.seq, lr->req.req_id);
			node_request(s, nd, &lr->req);
		}
		free(lr);
		return;
	}
	case SIM_EV_LREPLY:
	case SIM_EV_LCLIENT:
	case SIM_EV_LRETRY:
	case SIM_EV_LTIMEOUT:
	case SIM_EV_LPAUSE:
	case SIM_EV_LWAKE:
	case SIM_EV_LVANISH:
		slc_dispatch(s, ev);
		return;
	}
}

static void sim_extra_tick(sim *s)
{
	uint32_t i = (uint32_t)sim_rng_below(&s->rng, s->n);
	sim_at(s, s->now + sim_rng_range(&s->rng, 0, 50000),
	       (sim_ev){.type = SIM_EV_TICK,
			.node = i,
			.epoch = s->nodes[i].epoch});
}

static void sim_config(sim *s, px_config *cfg, uint32_t id)
{
	px_config_default(cfg, id, s->n);
	cfg->mutant = s->o->mutant;
	/* Vary what the daemon's operator may tune, to reach more code. */
	static const uint32_t snaps[] = {32, 64, 128, 256};
	static const uint32_t windows[] = {4, 16, LD_WINDOW_SLOTS_MAX};
	static const uint32_t batches[] = {1, 8, LD_BATCH_CMDS_MAX};
	cfg->snapshot_every_slots = snaps[sim_rng_below(&s->rng, 4)];
	/* Small chunks, so that a snapshot takes many (and one of them is
	 * lost, damaged or duplicated now and then). */
	static const uint32_t chunks[] = {64, 512, 4096,
					  LD_SNAPSHOT_CHUNK_BYTES_MAX};
	cfg->snapshot_chunk_bytes = chunks[sim_rng_below(&s->rng, 4)];
	static const uint32_t digests[] = {4, 16, LD_DIGEST_EVERY_SLOTS};
	cfg->digest_every_slots = digests[sim_rng_below(&s->rng, 3)];
	cfg->window_slots = windows[sim_rng_below(&s->rng, 3)];
	cfg->batch_cmds = batches[sim_rng_below(&s->rng, 3)];
}

/* The lease workload's clock-drift bounds: small ones as a cell would be
 * configured, large ones so that a wrong use of time shows within a run. */
static const uint32_t sim_drifts_ppm[] = {100, 200, 1000, 5000, 20000, 50000};

/* The cell's lease configuration: the grace delay covers twice the drift
 * over the longest TTL (the holder's clock and the leaders' clocks), plus a
 * small margin, so that a client measuring its deadline wrongly is caught. */
static void sim_config_lease(sim *s, ln_config *lc, const px_config *cfg)
{
	static const uint32_t ticks[] = {20, 50, 100};
	ln_config_default(lc, 0, s->n);
	lc->paxos = *cfg;
	lc->drift_ppm = s->drift_ppm;
	lc->ttl_ms_max = s->ttl_ms_max;
	lc->tick_ms = ticks[sim_rng_below(&s->rng, 3)];
	/* A new leader's takeover in slices of a few leases, so that
	 * requests and expiries interleave with it. */
	static const uint32_t slices[] = {1, 2, 5, LD_TAKEOVER_STEP_LEASES};
	lc->takeover_step_leases = slices[sim_rng_below(&s->rng, 4)];
	uint64_t need =
		(2ull * s->drift_ppm * s->ttl_ms_max + 999999) / 1000000;
	lc->grace_ms = (uint32_t)need + (uint32_t)sim_rng_range(&s->rng, 2, 20);
	char err[256];
	if (ln_config_check(lc, err, sizeof err) != 0) {
		fprintf(stderr, "lockd-sim: bad lease configuration: %s\n",
			err);
		abort();
	}
	s->grace_ms = lc->grace_ms;
	s->tick_ms = lc->tick_ms;
}

void sim_run(const sim_opts *o, uint64_t seed, sim_result *res)
{
	sim *s = sim_xmalloc(sizeof *s);
	memset(s, 0, sizeof *s);
	memset(res, 0, sizeof *res);
	s->o = o;
	s->msg_from = -1;
	s->seed = seed;
	s->res = res;
	s->tr = o->trace;
	sim_rng_seed(&s->rng, seed);
	sim_rng_seed(&s->rng_cap, seed ^ 0x5a9c0ffee5eedull);
	s->p = sim_profiles[o->faults];
	bool lease = o->workload == SIM_WORKLOAD_LEASE;
	if (o->drift_ppm_max >= 0)
		s->p.drift_ppm_max = o->drift_ppm_max;
	else if (lease)
		s->p.drift_ppm_max = (int32_t)sim_drifts_ppm[sim_rng_below(
			&s->rng,
			sizeof sim_drifts_ppm / sizeof sim_drifts_ppm[0])];
	s->drift_ppm = (uint32_t)s->p.drift_ppm_max;
	res->drift_ppm = s->drift_ppm;
	s->n = o->nreplicas;
	/* --members: spare ids for newcomers (each id is used once). */
	if (o->members)
		s->n = o->nreplicas + 3 < LD_REPLICAS_MAX ? o->nreplicas + 3
							  : LD_REPLICAS_MAX;
	if (lease)
		s->nclients = (uint32_t)sim_rng_range(
			&s->rng, SIM_LEASE_CLIENTS_MIN, SIM_CLIENTS_MAX);
	else
		s->nclients = (uint32_t)sim_rng_range(&s->rng,
						      SIM_COUNTER_CLIENTS_MIN,
						      SIM_COUNTER_CLIENTS_MAX);
	sim_queue_init(&s->q);
	ln_actions_init(&s->act);
	chk_init(&s->chk, o->workload, s->nclients, s->n, o->mutant);
	s->chk.tr = s->tr;
	s->chk.now = &s->now;

	/* One configuration per cell (all replicas agree on it), new seeds per
	 * life. */
	px_config cfg;
	ln_config lcfg;
	sim_config(s, &cfg, 0);
	cfg.nreplicas = o->nreplicas;
	s->capture_async = lease && o->driver == SIM_DRIVER_ROUND &&
			   (o->capture == SIM_CAPTURE_ASYNC ||
			    (o->capture == SIM_CAPTURE_RANDOM &&
			     sim_rng_chance(&s->rng_cap, 0.5)));
	cfg.snapshot_async = s->capture_async;
	if (lease) {
		s->ttl_ms_max = SIM_TTL_MS_MAX;
		sim_config_lease(s, &lcfg, &cfg);
	}
	sim_trace(s,
		  "SEED %" PRIu64
		  ": %u replicas, %u clients, faults=%s mutant=%s workload=%s "
		  "window=%" PRIu32 " batch=%" PRIu32 " snapshot_every=%" PRIu32
		  " drift<=%" PRIu32 "ppm grace=%" PRIu32 "ms tick=%" PRIu32
		  "ms",
		  seed, s->n, s->nclients, s->p.name,
		  o->mutant ? px_mutant_name(o->mutant) : "none",
		  sim_workload_name(o->workload), cfg.window_slots,
		  cfg.batch_cmds, cfg.snapshot_every_slots, s->drift_ppm,
		  s->grace_ms, s->tick_ms);
	for (uint32_t i = 0; i < s->n; i++) {
		sim_node *nd = &s->nodes[i];
		nd->id = i;
		nd->cfg = cfg;
		nd->cfg.id = i;
		nd->cfg.incarnation = sim_rng_next(&s->rng) | 1;
		if (lease) {
			nd->lcfg = lcfg;
			nd->lcfg.paxos.id = i;
		}
		if (i >= o->nreplicas) {
			nd->absent = true;
			continue;
		}
		node_start(s, nd);
	}
	if (lease) {
		slc_setup(s);
	} else {
		for (uint32_t i = 0; i < s->nclients; i++) {
			s->clients[i] = (sim_client){.idx = i, .guess = -1};
			sim_at(s, sim_rng_range(&s->rng, 0, 300000),
			       (sim_ev){.type = SIM_EV_CLIENT_START,
					.client = i});
		}
	}
	sim_at(s, sim_rng_range(&s->rng, s->p.fault_min_us, s->p.fault_max_us),
	       (sim_ev){.type = SIM_EV_HEAL});
	if (s->p.crash_every_max_us)
		sim_at(s,
		       sim_rng_range(&s->rng, s->p.crash_every_min_us,
				     s->p.crash_every_max_us),
		       (sim_ev){.type = SIM_EV_CRASH});
	if (s->p.hostile_every_max_us)
		sim_at(s,
		       sim_rng_range(&s->rng, s->p.hostile_every_min_us,
				     s->p.hostile_every_max_us),
		       (sim_ev){.type = SIM_EV_HOSTILE});
	if (o->members)
		sim_at(s, sim_rng_range(&s->rng, 200000, 1000000),
		       (sim_ev){.type = SIM_EV_MEMBER});
	if (s->p.part_every_max_us)
		sim_at(s,
		       sim_rng_range(&s->rng, s->p.part_every_min_us,
				     s->p.part_every_max_us),
		       (sim_ev){.type = SIM_EV_PART_START});

	sim_ev ev;
	bool done = false;
	while (!s->chk.violated && sim_queue_pop(&s->q, &ev)) {
		s->now = ev.t_us;
		res->events++;
		sim_dispatch(s, &ev);
		if (s->chk.violated)
			break;
		if (s->healed && sim_done(s)) {
			done = true;
			sim_check_corruption_found(s);
			break;
		}
		if (s->gave_up) {
			done = true;
			break;
		}
		if (!s->healed && sim_rng_chance(&s->rng, s->p.extra_tick_p))
			sim_extra_tick(s);
		if (res->events >= SIM_EVENTS_MAX) {
			chk_fail(&s->chk, "liveness",
				 "runaway: %u events without finishing",
				 SIM_EVENTS_MAX);
			break;
		}
	}
	if (!done && !s->chk.violated)
		chk_fail(&s->chk, "liveness",
			 "the event queue ran dry before the end");
	sim_trace(s,
		  "END decrees=%" PRIu64 " commands=%" PRIu64 " acks=%" PRIu64
		  " grants=%" PRIu64 " expiries=%" PRIu64 " releases=%" PRIu64
		  " revokes=%" PRIu64 " writes=%" PRIu64 " stale=%" PRIu64
		  " fenced=%" PRIu64,
		  s->chk.decrees, res->commands, res->acks, s->chk.ngrants,
		  s->chk.expiries, s->chk.releases, s->chk.revokes,
		  s->chk.writes, s->chk.stale_writes, s->chk.fenced);

	res->decrees = s->chk.decrees;
	res->grants = s->chk.ngrants;
	res->expiries = s->chk.expiries;
	res->releases = s->chk.releases;
	res->revokes = s->chk.revokes;
	res->writes = s->chk.writes;
	res->stale_writes = s->chk.stale_writes;
	res->fenced = s->chk.fenced;
	res->closest_us = s->chk.closest_us;
	res->end_us = s->now;
	res->violated = s->chk.violated;
	snprintf(res->property, sizeof res->property, "%s", s->chk.property);
	snprintf(res->detail, sizeof res->detail, "%s", s->chk.detail);

	while (sim_queue_pop(&s->q, &ev))
		sim_ev_free(&ev);
	for (uint32_t i = 0; o->corpus && i < s->n; i++) {
		if (!s->nodes[i].ln)
			continue;
		/* (snapshot() only reads the table) */
		px_sm *sm =
			ls_table_sm((ls_table *)ln_node_table(s->nodes[i].ln));
		uint8_t *snap;
		size_t len;
		if (sm->ops->snapshot(sm, &snap, &len) == 0) {
			sim_corpus(s, "snapshot", (unsigned)(seed % 64), snap,
				   len);
			free(snap);
		}
	}
	sim_queue_free(&s->q);
	for (uint32_t i = 0; i < s->n; i++) {
		sim_node *nd = &s->nodes[i];
		node_round_free(nd);
		px_replica_free(nd->r);
		counter_sm_free(nd->sm);
		ln_node_free(nd->ln);
		node_lazy_drop(nd);
		tw_disk_free(&nd->disk);
	}
	ln_actions_free(&s->act);
	chk_free(&s->chk);
	free(s);
}
