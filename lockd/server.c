#include "server.h"

#include <assert.h>
#include <stdatomic.h>

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "client.pb-c.h"
#include "client_api.h"
#include "http.h"
#include "join.h"
#include "ldlog.h"
#include "node.h"
#include "storage.h"
#include "transport.h"
#include "watch.h"

/* A read waiting for known_position waits this long, then gets
 * STATUS_BEHIND (the client asks another replica). */
#define READ_WAIT_US 1000000u

/* Reads waiting for known_position that one connection may hold; more are
 * told STATUS_BEHIND at once. They also count as waiting requests (see
 * LD_CLIENT_CTX_RESERVE): nng 1.5.2 can wedge its reap thread when a
 * connection closes while every context is held and its next requests wait
 * in the REP socket (issue 14 item 9), so no connection, and no number of
 * parked reads, may hold them all. */
#define PARKED_PER_CONN_MAX 128u

/* The loop counts its open file descriptors this often. At the soft
 * RLIMIT_NOFILE minus a margin (an eighth, 16 to 256) the replica can no
 * longer serve: it stops stepping the node, as when stalled (so a leader
 * stops leading: its followers elect another), refuses clients with a
 * sentence, and logs why; it serves again below the limit minus twice the
 * margin. */
#define FD_CHECK_US 1000000u

/* A write the node has not answered after its wait plus this gets
 * STATUS_BUSY, so a context is never lost; the node's late answer, if
 * any, is dropped (the client retries with the same seq: exactly once). */
#define WRITE_ANSWER_US 30000000u

/* The watch feed keeps this many holder changes (watch.h). */
#define WATCH_FEED_CAP 65536u

/* A WATCH waits at most this long before its TIMEOUT reply (the client
 * asks again from the position that reply gives). */
#define WATCH_WAIT_MS_MAX 60000u

/* /metrics and /health lag the loop by at most this. */
#define METRICS_EVERY_US 100000u

/* While writes fail, the same batch is written again this often, and the
 * replica says it is still stalled at most this often. */
#define STALL_RETRY_US 500000u
#define STALL_LOG_US 10000000u

/* A round longer than this is logged: the loop is late for its timers. */
#define SLOW_ROUND_US 100000u

/* The loop wakes at least this often. */
#define WAKE_US_MAX 1000000u

/* A replica removed from the cell keeps running this long, so that its last
 * messages (a leaving leader's handover) leave, then stops. */
#define REMOVED_LINGER_US 1000000u

/* A replica the node no longer sends to stays dialed this long: the last
 * messages the core sends it (a leader's final COMMIT: its part is over)
 * are still queued when it leaves the peer set, and closing the socket at
 * once would drop them. A removed replica heard from again (it was down
 * when it was removed, and asks) is dialed back for as long, so that the
 * answer telling it that it left can reach it. */
#define UNDIAL_GRACE_US 30000000u

/* A new data directory with --join waits this long for a member to list
 * the cell's configuration. */
#define JOIN_FETCH_MS 30000u

/* A LIST page holds at most this many leases, and about this many bytes (a
 * REQ client accepts 1 MiB by default); `more` says that another follows. */
#define LIST_LEASES_MAX 1000u
#define LIST_BYTES_MAX (768u * 1024u)

/* Closed connections remembered for requests that come in after the news
 * (nng's callbacks race): a request from one of them is not started. */
#define GONE_RECENT 256u

/* req_id = generation << 16 | context index: a late answer to a context
 * that has since moved on is recognised and dropped. */
#define REQ_INDEX_BITS 16
_Static_assert(LD_CLIENT_CTX_MAX <= (1u << REQ_INDEX_BITS),
	       "context index must fit in the req_id");

typedef enum slot_state {
	SLOT_FREE = 0,
	SLOT_NODE,   /* the node has the request; its reply answers it */
	SLOT_PARKED, /* a read waiting for known_position */
	SLOT_LATER,  /* STATUS or LIST answered at the end of this round */
	SLOT_WATCH,  /* a WATCH waiting for a change of its name */
} slot_state;

typedef struct slot {
	slot_state state;
	uint64_t gen;
	uint64_t deadline_us;
	uint64_t mark; /* WATCH: the feed's `added` when it last looked */
	bool waiting;  /* counted in nwaiting (see LD_CLIENT_CTX_RESERVE) */
	uint32_t apos; /* where it is in ld_server.active, while in use */
	ld_cctx *c;
} slot;

struct ld_server {
	ld_options o;
	ln_node *node;
	ds_store *store;
	ld_peers *peers;
	ld_clients *clients;
	ld_evq q;
	bool q_init;
	ln_actions act;
	uint64_t timer_at_us;

	slot slots[LD_CLIENT_CTX_MAX];
	uint32_t nwaiting; /* slots holding a request that waits */
	/* The slots in use, in no order: the loop's passes over requests
	 * cost what is in progress, not LD_CLIENT_CTX_MAX. */
	uint32_t active[LD_CLIENT_CTX_MAX];
	uint32_t nactive;
	ln_request reqs[LD_CLIENT_CTX_MAX];
	ld_evq_item *items;

	/* LIST's reply buffers */
	Lockd__Lease *list_leases;
	Lockd__Lease **list_ptrs;
	char (*list_names)[LS_NAME_BYTES_MAX + 1];

	ld_watch_feed feed;

	/* closed client connections (see clients_gone) */
	uint32_t gone_buf[LD_CLIENT_GONE_MAX];
	uint64_t gone_reqs[LD_CLIENT_CTX_MAX];
	uint32_t gone_recent[GONE_RECENT];
	uint32_t gone_recent_next;
	uint64_t gone_freed; /* waiting requests freed by a closed connection */

	ld_metrics metrics; /* what /metrics and /health show */
	bool metrics_init;
	ld_http *http;
	uint64_t started_unix_s;
	uint64_t leader_changes; /* /metrics lockd_leader_changes_total */
	uint64_t
		metrics_next_us; /* the next publish_metrics, at the earliest */

	/* Records of act already durable (persist); act is kept across
	 * rounds while stalled. The messages and replies of act before these
	 * indices have left. */
	size_t persisted, pend_sent, pend_answered;

	/* A write failed: until the same batch is written, the node is not
	 * stepped at all, so it neither promises, votes nor acknowledges
	 * (what it would send waits for LN_EV_DURABLE, which is not stepped);
	 * peer messages are dropped (Paxos tolerates lost messages) and
	 * clients are sent elsewhere. */
	bool stalled;
	char stall_error[512];
	uint64_t stall_since_us, stall_retry_at_us, stall_retries;
	uint64_t stall_dropped, stall_refused; /* since the stall began */
	uint64_t stalls;                       /* times it stalled */
	ld_ratelimit stall_rl;

	/* Out of file descriptors (fd_check): stepped like stalled, without
	 * a batch to write again. */
	bool unfit;
	char unfit_reason[96];
	uint64_t fd_check_at_us, unfit_since_us;
	uint64_t fds_open, fds_limit;

	/* Peer and client URLs by replica id, from everything that names
	 * them: --peers and --clients, the configuration a joined store
	 * started from, the members' entries in the ledger (the core keeps
	 * none for a cell's first members, which --peers named). */
	char url_peer[LD_REPLICA_IDS][LD_URL_BYTES_MAX];
	char url_client[LD_REPLICA_IDS][LD_URL_BYTES_MAX];
	/* The applied configuration as last synced (members_sync). */
	px_members members;
	uint64_t members_from;
	uint32_t nvoters;
	uint64_t dialed; /* ids the node may send to, dialed (members_sync) */
	/* Ids dialed outside that set, until this time (UNDIAL_GRACE_US). */
	uint64_t undial_at_us[LD_REPLICA_IDS];
	/* This replica left the cell (px_status.removed): the loop stops at
	 * removed_at_us + REMOVED_LINGER_US. */
	bool removed;
	uint64_t removed_at_us;
	size_t pend_changed; /* act.ld.changes answered (as pend_answered) */

	/* what was last logged */
	bool voter; /* last logged: px_status.voter */
	px_role role;
	int32_t leader;
	uint64_t round;
	ld_ratelimit core_rl;
};

ld_evq *ld_server_queue(ld_server *s)
{
	return &s->q;
}

static const char *role_name(px_role r)
{
	switch (r) {
	case PX_LEADER:
		return "leader";
	case PX_CANDIDATE:
		return "candidate";
	case PX_FOLLOWER:
		return "follower";
	}
	return "?";
}

/* What STATUS, /health and /metrics call the replica: "recovering" while
 * it learns without voting (lockd/core/paxos.h, Recovery); "learner" while
 * it is a member the leader has not promoted to voter yet, "joining" while
 * it is not a member at all (it started with --join and waits to be
 * added, or it was removed). */
static const char *status_role(const ld_server *s, const px_status *st)
{
	if (st->digest_alarm == PX_DIGEST_DIVERGED)
		return "diverged";
	if (st->voter)
		return role_name(st->role);
	if (!st->member)
		return "joining";
	const px_member *me = px_members_find(&s->members, s->o.id);
	return me != NULL && !me->voting ? "learner" : "recovering";
}

static void node_status(const ld_server *s, px_status *st)
{
	px_replica_status(ln_node_replica(s->node), st);
}

/* ---- start-up ---------------------------------------------------------- */

/* Publishes the loop's figures for the HTTP threads (http.h): only when
 * --http serves them, and at most every METRICS_EVERY_US unless forced, so
 * the loop's hot path does not gather them for nobody every round. */
static void publish_metrics(ld_server *s, bool force)
{
	uint64_t now = ld_mono_us();
	if (!force && (s->http == NULL || now < s->metrics_next_us))
		return;
	s->metrics_next_us = now + METRICS_EVERY_US;
	px_status st;
	node_status(s, &st);
	ld_peers_stats ps = {0};
	if (s->peers != NULL)
		ld_peers_stats_get(s->peers, &ps);
	ld_clients_stats cs = {0};
	if (s->clients != NULL)
		ld_clients_stats_get(s->clients, &cs);
	ln_stats ns;
	ln_node_stats(s->node, &ns);
	px_ballot b = st.role == PX_FOLLOWER ? st.promised : st.ballot;
	ld_metrics_snap m = {
		.id = s->o.id,
		.nreplicas = s->members.n,
		.voters = s->nvoters,
		.voter = st.voter,
		.member = st.member,
		.role = status_role(s, &st),
		.leader = st.leader,
		.ballot_round = b.round,
		.ballot_id = b.id,
		.commit = st.commit,
		.applied = st.applied,
		.snapshot_base = st.base,
		.leases = ls_table_count(ln_node_table(s->node)),
		.rounds = s->round,
		.client_requests = cs.requests,
		.client_malformed = cs.malformed,
		.client_replies = cs.replies,
		.peer_sent = ps.sent,
		.peer_dropped = ps.send_dropped,
		.peer_received = ps.received,
		.peer_refused = ps.refused,
		.grants = ns.grants,
		.ends = ns.expiries,
		.renewals = ns.renewals,
		.revokes = ns.revokes,
		.expire_decrees = ns.expire_decrees,
		.tick_decrees = ns.tick_decrees,
		.requests_active = s->nactive,
		.requests_waiting = s->nwaiting,
		.watch_feed_entries = s->feed.n,
		.watch_feed_lo = s->feed.lo,
		.started_unix_s = s->started_unix_s,
		.leader_changes = s->leader_changes,
		.storage_stalled = s->stalled,
		.digest_alarm = (int)st.digest_alarm,
		.fds_exhausted = s->unfit,
		.fds_open = s->fds_open,
		.fds_limit = s->fds_limit,
		.storage_stalls = s->stalls,
	};
	if (s->stalled)
		snprintf(m.storage_error, sizeof m.storage_error, "%s",
			 s->stall_error);
	ld_metrics_set(&s->metrics, &m);
}

struct restore_ctx {
	ln_node *node;
	uint64_t n;
};

static int restore_one(const px_record *rec, void *arg)
{
	struct restore_ctx *rc = arg;
	rc->n++;
	return ln_node_restore(rc->node, rec) == 0 ? 0 : 1;
}

/* ---- membership: URLs, dialing ------------------------------------------ */

/* Notes the URLs m names (non-empty ones only: the core keeps none for a
 * cell's first members). */
static void urls_note(ld_server *s, const px_members *m)
{
	for (uint32_t i = 0; i < m->n; i++) {
		const px_member *x = &m->m[i];
		if (x->peer[0] != '\0')
			snprintf(s->url_peer[x->id], LD_URL_BYTES_MAX, "%s",
				 x->peer);
		if (x->client[0] != '\0')
			snprintf(s->url_client[x->id], LD_URL_BYTES_MAX, "%s",
				 x->client);
	}
}

/* Replica id's client URL, or NULL when unknown. */
static const char *client_url(const ld_server *s, int32_t id)
{
	if (id < 0 || (uint32_t)id >= LD_REPLICA_IDS ||
	    s->url_client[id][0] == '\0')
		return NULL;
	return s->url_client[id];
}

/* The applied configuration with every URL this replica knows filled in. */
static void members_view(const ld_server *s, px_members *m, uint64_t *from)
{
	px_replica_members(ln_node_replica(s->node), m, from);
	for (uint32_t i = 0; i < m->n; i++) {
		px_member *x = &m->m[i];
		if (x->peer[0] == '\0')
			snprintf(x->peer, sizeof x->peer, "%s",
				 s->url_peer[x->id]);
		if (x->client[0] == '\0')
			snprintf(x->client, sizeof x->client, "%s",
				 s->url_client[x->id]);
	}
}

static void members_ids(const px_members *m, bool voting, char *buf, size_t len)
{
	size_t n = 0;
	buf[0] = '\0';
	for (uint32_t i = 0; i < m->n && n < len; i++)
		if (!voting || m->m[i].voting)
			n += (size_t)snprintf(buf + n, len - n, "%s%u",
					      n > 0 ? "," : "", m->m[i].id);
}

/* Dials the replicas the node may send to (px_replica_peer_ids: the
 * members of every configuration that still governs a slot after its
 * commit, so a removed replica is dialed until the cell no longer counts
 * it and it has heard so) and nobody else (paxos.h: the configuration is
 * part of the replicated state). Called at the start and after every
 * round; it logs the applied configuration when that changed. */
static void members_sync(ld_server *s)
{
	const px_replica *r = ln_node_replica(s->node);
	px_members m;
	uint64_t from;
	members_view(s, &m, &from);
	urls_note(s, &m);
	uint64_t want = px_replica_peer_ids(r) & ~(UINT64_C(1) << s->o.id);
	uint64_t now = ld_mono_us();
	for (uint32_t id = 0; id < LD_REPLICA_IDS; id++) {
		bool in = want >> id & 1u;
		if (in) {
			s->undial_at_us[id] = 0;
		} else if (s->dialed >> id & 1u) {
			/* It just left the set: its last messages first. */
			s->undial_at_us[id] = now + UNDIAL_GRACE_US;
		} else if (s->undial_at_us[id] != 0 &&
			   now >= s->undial_at_us[id]) {
			s->undial_at_us[id] = 0;
			ld_peers_undial(s->peers, id);
		}
		if (!in || (s->dialed >> id & 1u &&
			    memcmp(&m, &s->members, sizeof m) == 0))
			continue;
		px_member x;
		if (px_replica_member(r, id, &x) && x.peer[0] != '\0')
			snprintf(s->url_peer[id], LD_URL_BYTES_MAX, "%s",
				 x.peer);
		if (s->url_peer[id][0] == '\0') {
			ld_log("warn", "member_unreachable",
			       "id=%u reason=\"no peer URL is known for it: "
			       "restart with --peers naming it, or --join\"",
			       id);
			continue;
		}
		char err[512];
		if (ld_peers_dial(s->peers, id, s->url_peer[id], err,
				  sizeof err) != 0)
			ld_log("error", "member_dial", "id=%u error=\"%s\"", id,
			       err);
	}
	s->dialed = want;
	uint32_t nv = 0;
	for (uint32_t i = 0; i < m.n; i++)
		nv += m.m[i].voting;
	if (memcmp(&m, &s->members, sizeof m) != 0 || from != s->members_from) {
		char ids[256], voters[256];
		members_ids(&m, false, ids, sizeof ids);
		members_ids(&m, true, voters, sizeof voters);
		ld_log("info", "members",
		       "ids=%s voters=%s removed=0x%llx from_slot=%llu "
		       "dialed=0x%llx",
		       ids, voters, (unsigned long long)m.removed,
		       (unsigned long long)from, (unsigned long long)s->dialed);
	}
	s->members = m;
	s->members_from = from;
	s->nvoters = nv;
}

/* A message came from `from`: if that is a removed replica nobody dials
 * any more (it was away when it was removed), dial it for a while, so that
 * the answer telling it so can reach it (UNDIAL_GRACE_US). */
static void redial_removed(ld_server *s, uint32_t from)
{
	if (from >= LD_REPLICA_IDS || (s->dialed >> from & 1u) ||
	    !(s->members.removed >> from & 1u) || s->url_peer[from][0] == '\0')
		return;
	if (ld_peers_dialed(s->peers, from) == NULL) {
		char err[512];
		if (ld_peers_dial(s->peers, from, s->url_peer[from], err,
				  sizeof err) != 0)
			return;
		ld_log("info", "removed_heard",
		       "id=%u action=\"dialing it back for %u s, so that it "
		       "learns that it left the cell\"",
		       from, UNDIAL_GRACE_US / 1000000u);
	}
	s->undial_at_us[from] = ld_mono_us() + UNDIAL_GRACE_US;
}

/* ---- start-up: the store, the node ------------------------------------- */

/* For a new data directory started with --join: asks a member for the
 * cell's configuration, checks that this replica may join it, and makes
 * it the store's origin. 1 when this id left the cell. */
static int store_join(ld_server *s, char *err, size_t errlen)
{
	if (s->o.njoin == 0) {
		snprintf(err, errlen,
			 "%s is a new data directory and no --peers or --join "
			 "says which cell it belongs to",
			 s->o.data);
		return -1;
	}
	px_members m;
	const char *from;
	if (ld_join_fetch(&s->o, JOIN_FETCH_MS, &m, &from, err, errlen) != 0)
		return -1;
	if (ld_join_check(&s->o, &m, err, errlen) != 0)
		return m.removed >> s->o.id & 1u ? 1 : -1;
	char ids[256];
	members_ids(&m, false, ids, sizeof ids);
	ld_log("info", "join", "from=%s members=%s removed=0x%llx", from, ids,
	       (unsigned long long)m.removed);
	ds_identity id = {
		.cell_id = s->o.cell_id, .replica_id = s->o.id, .members = &m};
	return ds_adopt(s->store, &id, err, errlen);
}

/* Once the store has an origin: the node's configuration from it (a cell's
 * first replicas, or the configuration a joined store started from, and
 * the disk's incarnation), and a new node. 1 when this id left the cell
 * (store_join). */
static int store_ready(ld_server *s, char *err, size_t errlen)
{
	if (ds_unborn(s->store)) {
		int rv = store_join(s, err, errlen);
		if (rv != 0)
			return rv;
	}
	px_config *pc = &s->o.node.paxos;
	ds_origin(s->store, &pc->nreplicas, &pc->members,
			&pc->incarnation);
	if (s->o.nreplicas > 0 && pc->nreplicas > 0 &&
	    s->o.nreplicas != pc->nreplicas) {
		/* --peers names a cell's first replicas: the same list for
		 * the cell's whole life (members come and go by decree). */
		snprintf(err, errlen,
			 "%s belongs to a cell that began with %u replicas, "
			 "but --peers lists %u: --peers always names the "
			 "cell's first replicas (change members with lockctl "
			 "member add and remove); refusing to use it",
			 s->o.data, pc->nreplicas, s->o.nreplicas);
		return -1;
	}
	if (pc->nreplicas == 0) {
		urls_note(s, &pc->members);
	} else {
		/* The core takes the first replicas' URLs from members when
		 * it lists exactly ids 0..n-1: then every replica's member
		 * list, and its snapshots, name them. */
		memset(&pc->members, 0, sizeof pc->members);
		pc->members.n = pc->nreplicas;
		for (uint32_t j = 0; j < pc->nreplicas; j++) {
			px_member *x = &pc->members.m[j];
			x->id = j;
			x->voting = true;
			/* (both NUL-terminated within LD_URL_BYTES_MAX) */
			memcpy(x->peer, s->url_peer[j], sizeof x->peer);
			memcpy(x->client, s->url_client[j], sizeof x->client);
		}
	}
	ln_node_free(s->node);
	s->node = ln_node_new(&s->o.node);
	if (s->node == NULL) {
		snprintf(err, errlen,
			 "cannot make the node: out of memory or a Paxos "
			 "setting out of range");
		return -1;
	}
	return 0;
}

/* Moves the damaged data directory aside (DIR.corrupt-<unix seconds>,
 * for an operator to inspect), logs the one store_corrupt line, and opens
 * a fresh empty store of the same identity in DIR (a new incarnation; with
 * --join it asks the cell again) with a fresh node. The core treats a
 * replica without durable records as one that lost its disk. why is the
 * store's sentence, in err on entry. */
static int store_set_aside(ld_server *s, const ds_identity *id, char *err,
			   size_t errlen)
{
	char why[512], aside[LD_PATH_BYTES_MAX + 64];
	snprintf(why, sizeof why, "%s", err);
	uint64_t now_s = (uint64_t)time(NULL);
	snprintf(aside, sizeof aside, "%s.corrupt-%llu", s->o.data,
		 (unsigned long long)now_s);
	/* Never over an earlier one (two corruptions within a second). */
	for (unsigned i = 1; access(aside, F_OK) == 0 && i < 100; i++)
		snprintf(aside, sizeof aside, "%s.corrupt-%llu.%u", s->o.data,
			 (unsigned long long)now_s, i);
	if (rename(s->o.data, aside) != 0) {
		int e = errno;
		ld_log("error", "store_corrupt",
		       "data=%s moved_to=none error=\"%s\" action=\"cannot "
		       "move it aside (%s): not starting\"",
		       s->o.data, why, strerror(e));
		snprintf(err, errlen,
			 "%s; and it cannot be moved aside to %s (%s): move "
			 "or remove it, and the replica starts empty",
			 why, aside, strerror(e));
		return -1;
	}
	ld_log("error", "store_corrupt",
	       "data=%s moved_to=%s error=\"%s\" action=\"starting with an "
	       "empty store, as a replica that lost its disk\"",
	       s->o.data, aside, why);
	if (ds_open(s->o.data, id, &s->store, err, errlen) != 0) {
		s->store = NULL;
		return -1;
	}
	return store_ready(s, err, errlen);
}

/* This replica left the cell: the one line an operator sees, at start or
 * while running. */
static void log_removed(const ld_server *s, const char *action)
{
	ld_log("warn", "removed",
	       "id=%u reason=\"removed id=%u: this replica left the cell; its "
	       "id is never used again\" action=\"%s\"",
	       s->o.id, s->o.id, action);
}

int ld_server_open(const ld_options *o, ld_server **out, char *err,
		   size_t errlen)
{
	*out = NULL;
	ld_server *s = calloc(1, sizeof *s);
	if (s == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	int result = -1;
	s->o = *o;
	s->role = PX_FOLLOWER;
	s->leader = -1;
	s->core_rl = (ld_ratelimit)LD_RATELIMIT_INIT(1000000);
	s->stall_rl = (ld_ratelimit)LD_RATELIMIT_INIT(STALL_LOG_US);
	ln_actions_init(&s->act);
	ld_metrics_init(&s->metrics);
	s->metrics_init = true;
	s->started_unix_s = (uint64_t)time(NULL);
	for (uint32_t j = 0; j < o->nreplicas; j++) {
		snprintf(s->url_peer[j], LD_URL_BYTES_MAX, "%s", o->peers[j]);
		snprintf(s->url_client[j], LD_URL_BYTES_MAX, "%s",
			 o->clients[j]);
	}

	s->list_leases = calloc(LIST_LEASES_MAX, sizeof *s->list_leases);
	s->list_ptrs = calloc(LIST_LEASES_MAX, sizeof *s->list_ptrs);
	s->list_names = calloc(LIST_LEASES_MAX, sizeof *s->list_names);
	if (s->list_leases == NULL || s->list_ptrs == NULL ||
	    s->list_names == NULL || ld_evq_init(&s->q, LD_CLIENT_CTX_MAX)) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	s->q_init = true;
	s->items = calloc(s->q.cap, sizeof *s->items);
	if (s->items == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}

	/* A new store takes its origin from --peers, or (unborn) from the
	 * cell --join names; an existing one has its own. */
	ds_identity id = {.cell_id = o->cell_id,
				.replica_id = o->id,
				.nreplicas = o->nreplicas};
	int rrv = 0;
	int orv = ds_open(o->data, &id, &s->store, err, errlen);
	if (orv == DS_CORRUPT) {
		s->store = NULL;
		rrv = store_set_aside(s, &id, err, errlen);
	} else if (orv != 0) {
		s->store = NULL;
		goto fail;
	} else {
		rrv = store_ready(s, err, errlen);
	}
	if (rrv != 0) {
		if (rrv > 0) {
			log_removed(s, "not starting");
			result = LD_SERVER_REMOVED;
		}
		goto fail;
	}
	struct restore_ctx rc = {s->node, 0};
	int lrv = ds_load(s->store, restore_one, &rc, err, errlen);
	if (lrv == DS_CORRUPT) {
		/* The records fail their checks: this replica has lost its
		 * durable memory, as if its disk were gone, and starts from
		 * nothing rather than from whatever part of it still reads. */
		ds_close(s->store);
		s->store = NULL;
		rrv = store_set_aside(s, &id, err, errlen);
		if (rrv != 0) {
			if (rrv > 0) {
				log_removed(s, "not starting");
				result = LD_SERVER_REMOVED;
			}
			goto fail;
		}
		rc = (struct restore_ctx){s->node, 0};
		lrv = 0;
	}
	if (lrv < 0)
		goto fail;
	if (lrv > 0) {
		snprintf(err, errlen,
			 "record %llu in %s does not replay: the store is "
			 "damaged",
			 (unsigned long long)rc.n, o->data);
		goto fail;
	}
	px_status st;
	node_status(s, &st);
	px_members now;
	px_replica_members(ln_node_replica(s->node), &now, NULL);
	if (st.removed || (now.removed >> o->id & 1u)) {
		/* Its ledger says it left: nobody needs it any more. */
		log_removed(s, "not starting");
		snprintf(err, errlen,
			 "removed id=%u: this replica left the cell; its id is "
			 "never used again (its data directory %s can go)",
			 o->id, o->data);
		result = LD_SERVER_REMOVED;
		goto fail;
	}
	ld_log("info", "restored",
	       "records=%llu snapshot_base=%llu applied=%llu promised=%llu.%u "
	       "leases=%llu incarnation=%016llx",
	       (unsigned long long)rc.n, (unsigned long long)st.base,
	       (unsigned long long)st.applied,
	       (unsigned long long)st.promised.round, st.promised.id,
	       (unsigned long long)ls_table_count(ln_node_table(s->node)),
	       (unsigned long long)s->o.node.paxos.incarnation);
	s->voter = st.voter;
	if (!st.voter)
		ld_log("warn", "recovering",
		       "reason=\"the data directory holds no record that this "
		       "replica votes (a new cell, a replica that joins one, "
		       "or a lost or wiped disk): it learns from the others "
		       "and votes once that is safe\" records=%llu",
		       (unsigned long long)rc.n);

	/* The feed starts here: what was applied before is not in it. */
	if (ld_watch_feed_init(&s->feed, WATCH_FEED_CAP, st.applied) != 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	ln_node_set_tap(s->node, ld_watch_feed_tap, &s->feed);

	/* A store that joined long ago may know members its ledger gives no
	 * URL for (a cell's first replicas): the cell names them. */
	snprintf(s->url_peer[o->id], LD_URL_BYTES_MAX, "%s", o->listen_peer);
	snprintf(s->url_client[o->id], LD_URL_BYTES_MAX, "%s",
		 o->listen_client);
	members_view(s, &now, NULL);
	bool unknown = false;
	for (uint32_t i = 0; i < now.n; i++)
		unknown |= now.m[i].peer[0] == '\0';
	if (unknown && o->njoin > 0) {
		px_members m;
		const char *from;
		char why[512];
		if (ld_join_fetch(o, 3000, &m, &from, why, sizeof why) == 0)
			urls_note(s, &m);
		else
			ld_log("warn", "member_urls", "error=\"%s\"", why);
	}

	/* Sockets last: nothing arrives before the node knows its past. */
	if (ld_peers_open(&s->o, o->listen_peer, &s->q, &s->peers, err,
			  errlen) != 0)
		goto fail;
	members_sync(s);
	ld_tls tls = {o->tls_cert, o->tls_ca};
	if (ld_clients_open(o->listen_client, &tls, o->tls_client_auth, &s->q,
			    &s->clients, err, errlen) != 0)
		goto fail;
	publish_metrics(s, true);
	if (o->http[0] != '\0' &&
	    ld_http_open(o->http, &s->metrics, &s->http, err, errlen) != 0)
		goto fail;
	*out = s;
	return 0;
fail:
	ld_server_close(s);
	return result;
}

atomic_int ld_server_store_closed;

void ld_server_close(ld_server *s)
{
	if (s == NULL)
		return;
	ld_http_close(s->http);
	s->http = NULL;
	/* The loop has stopped, so every acknowledged write is synced: close
	 * the store first, then say so, in case nng's close hangs below. */
	if (s->store != NULL)
		ds_close(s->store);
	s->store = NULL;
	atomic_store(&ld_server_store_closed, 1);
	/* Stop the inflow: after these, no callback runs. */
	ld_clients_close(s->clients);
	ld_peers_close(s->peers);
	if (s->q_init)
		ld_evq_destroy(&s->q);
	ln_actions_free(&s->act);
	ln_node_free(s->node);
	ld_watch_feed_free(&s->feed);
	if (s->metrics_init)
		ld_metrics_destroy(&s->metrics);
	free(s->items);
	free(s->list_leases);
	free(s->list_ptrs);
	free(s->list_names);
	free(s);
}

/* ---- replies ------------------------------------------------------------- */

static void set_leader(const ld_server *s, Lockd__Reply *rep, int32_t hint)
{
	rep->leader_hint = hint;
	const char *url = client_url(s, hint);
	rep->leader_addr = (char *)(url != NULL ? url : "");
}

static void slot_done(ld_server *s, uint32_t idx, const Lockd__Reply *rep)
{
	slot *sl = &s->slots[idx];
	ld_cctx_reply(sl->c, rep);
	sl->state = SLOT_FREE;
	sl->c = NULL;
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

static void answer_node(ld_server *s, const ln_reply *rp)
{
	uint32_t idx = (uint32_t)(rp->req_id & ((1u << REQ_INDEX_BITS) - 1));
	uint64_t gen = rp->req_id >> REQ_INDEX_BITS;
	if (idx >= LD_CLIENT_CTX_MAX || s->slots[idx].state != SLOT_NODE ||
	    s->slots[idx].gen != gen)
		return; /* that context gave up on it (WRITE_ANSWER_US) */
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
		if (client_url(s, rp->leader_hint) != NULL)
			snprintf(sentence, sizeof sentence,
				 "this replica is not the leader: ask replica "
				 "%d at %s",
				 rp->leader_hint,
				 client_url(s, rp->leader_hint));
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
	node_status(s, &st);
	Lockd__Reply rep = LOCKD__REPLY__INIT;
	Lockd__ReplicaStatus rs = LOCKD__REPLICA_STATUS__INIT;
	rep.status = LOCKD__STATUS__STATUS_OK;
	rep.position = st.applied;
	set_leader(s, &rep, st.leader);
	rs.id = s->o.id;
	rs.role = (char *)status_role(s, &st);
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
static void step(ld_server *s, ln_event *ev);

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
	node_status(s, &st);
	px_members m;
	uint64_t from;
	members_view(s, &m, &from);
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

static void answer_change(ld_server *s, const px_change_done *d)
{
	uint32_t idx = (uint32_t)(d->change_id & ((1u << REQ_INDEX_BITS) - 1));
	uint64_t gen = d->change_id >> REQ_INDEX_BITS;
	if (idx >= LD_CLIENT_CTX_MAX || s->slots[idx].state != SLOT_NODE ||
	    s->slots[idx].gen != gen)
		return; /* that context gave up on it (WRITE_ANSWER_US) */
	px_status st;
	node_status(s, &st);
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
		members_view(s, &m, &from);
		rep.status = LOCKD__STATUS__STATUS_OK;
		rep.change_slot = d->slot;
		wire_members(&m, from, &rep, wire, ptrs, removed);
		break;
	case PX_CHANGE_NOT_LEADER:
		rep.status = LOCKD__STATUS__STATUS_NOT_LEADER;
		set_leader(s, &rep,
			   d->leader_hint == (int32_t)s->o.id ? -1
							      : d->leader_hint);
		if (client_url(s, rep.leader_hint) != NULL)
			snprintf(sentence, sizeof sentence,
				 "this replica is not the leader: ask replica "
				 "%d at %s",
				 rep.leader_hint,
				 client_url(s, rep.leader_hint));
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
	step(s, &ev);
}

struct list_ctx {
	ld_server *s;
	size_t n, bytes;
	bool more; /* a lease did not fit */
};

/* A lease as the table shows it (name borrowed, a NUL-terminated copy);
 * ttl_ms_left is the leader's to say: -1 here. */
static void wire_lease(Lockd__Lease *l, char *name, const ls_view *v)
{
	lockd__lease__init(l);
	l->name = name;
	l->holder = v->holder;
	l->token = v->token;
	l->ttl_ms = v->ttl_ms;
	l->ttl_ms_left = -1;
	l->revoked = v->revoked;
	l->waiters = v->nwaiters;
	l->value.data = (uint8_t *)v->value;
	l->value.len = v->value_len;
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
	wire_lease(l, name, v);
	s->list_ptrs[lc->n] = l;
	lc->n++;
	lc->bytes += cost;
	return true;
}

static void answer_list(ld_server *s, uint32_t idx)
{
	const Lockd__Request *req = ld_cctx_request(s->slots[idx].c);
	px_status st;
	node_status(s, &st);
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
	node_status(s, &st);
	Lockd__Reply rep = LOCKD__REPLY__INIT;
	rep.status = status;
	rep.lease_status = ls;
	rep.error = (char *)sentence;
	rep.position = st.applied;
	set_leader(s, &rep, st.leader);
	slot_done(s, idx, &rep);
}

static void answer_behind(ld_server *s, uint32_t idx)
{
	const Lockd__Request *req = ld_cctx_request(s->slots[idx].c);
	px_status st;
	node_status(s, &st);
	char sentence[256];
	snprintf(sentence, sizeof sentence,
		 "this replica has applied the ledger to position %llu, not "
		 "yet %llu: ask another replica or retry",
		 (unsigned long long)st.applied,
		 (unsigned long long)req->known_position);
	answer_plain(s, idx, LOCKD__STATUS__STATUS_BEHIND,
		     LOCKD__LEASE_STATUS__LEASE_OK, sentence);
}

static void answer_unanswered(ld_server *s, uint32_t idx)
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
	node_status(s, &st);
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
		wire_lease(&lease, req->name, &v);
		rep.lease = &lease;
		rep.lease_status = LOCKD__LEASE_STATUS__LEASE_OK;
	} else {
		rep.lease_status = LOCKD__LEASE_STATUS__LEASE_NO_SUCH_LEASE;
	}
	slot_done(s, idx, &rep);
}

static void answer_watch_timeout(ld_server *s, uint32_t idx)
{
	answer_plain(s, idx, LOCKD__STATUS__STATUS_TIMEOUT,
		     LOCKD__LEASE_STATUS__LEASE_OK,
		     "no change within the wait: watch again from this "
		     "position");
}

/* Answers the watch if the feed has its change (or has lost it); else
 * leaves it waiting. true when answered. */
static bool watch_look(ld_server *s, uint32_t idx)
{
	slot *sl = &s->slots[idx];
	const Lockd__Request *r = ld_cctx_request(sl->c);
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
	if (!ls_name_valid(r->name,
			   nl > UINT16_MAX ? UINT16_MAX : (uint32_t)nl)) {
		answer_watch_invalid(s, idx, LS_E_NAME);
		return;
	}
	if (r->wait_ms > LS_WAIT_MS_MAX) {
		answer_watch_invalid(s, idx, LS_E_WAIT);
		return;
	}
	sl->mark = 0;
	if (watch_look(s, idx))
		return;
	if (r->wait_ms == 0) {
		answer_watch_timeout(s, idx);
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

static void to_node(ld_server *s, uint32_t idx, uint32_t *nreq)
{
	slot *sl = &s->slots[idx];
	const Lockd__Request *r = ld_cctx_request(sl->c);
	/* Strings longer than any limit are cut to a length the node still
	 * refuses, so no length wraps. */
	size_t nl = strlen(r->name), rl = strlen(r->reason);
	size_t vl = r->value.len;
	ln_request *q = &s->reqs[(*nreq)++];
	*q = (ln_request){
		.req_id = (sl->gen << REQ_INDEX_BITS) | idx,
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
static void answer_elsewhere(ld_server *s, uint32_t idx, const char *sentence)
{
	px_status st;
	node_status(s, &st);
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
	answer_elsewhere(s, idx, sentence);
}

static void route_ready(ld_server *s, uint32_t idx, uint32_t *nreq)
{
	const Lockd__Request *r = ld_cctx_request(s->slots[idx].c);
	if (is_read(r->op) || r->op == LOCKD__OP__OP_WATCH) {
		px_status st;
		node_status(s, &st);
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

static void step(ld_server *s, ln_event *ev);

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
static void clients_gone(ld_server *s)
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
				s->gone_reqs[nreq++] =
					(sl->gen << REQ_INDEX_BITS) | i;
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
		step(s, &ev);
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

static void admit(ld_server *s, ld_cctx *c, uint64_t applied, uint32_t *nreq)
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
	route_ready(s, idx, nreq);
}

/* ---- the round ------------------------------------------------------------
 */

static void step(ld_server *s, ln_event *ev)
{
	ev->now_us = ld_mono_us();
	if (ln_node_step(s->node, ev, &s->act) != 0 && ev->type == LN_EV_MSG) {
		uint64_t suppressed;
		if (ld_ratelimit_pass(&s->core_rl, &suppressed))
			ld_log("warn", "peer_refused",
			       "reason=\"the core refused it\" from=%u type=%d "
			       "suppressed=%llu",
			       ev->msg->from, (int)ev->msg->type,
			       (unsigned long long)suppressed);
	}
}

/* Only PX_REC_CHOSEN hints: nothing waits for them to be durable. */
static bool only_hints(const px_record *recs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (recs[i].type != PX_REC_CHOSEN)
			return false;
	return true;
}

/* Makes every record of the round durable, in one synced batch per pass,
 * and tells the node. A pass of hints alone is written without a sync (the
 * next synced write carries it to the disk): a round that only learned
 * what was chosen answers its clients without waiting for the disk. Returns
 * -1 when a write failed (the sentence in s->stall_error): the node was
 * not told, and the next call writes the same batch again. */
static int persist(ld_server *s)
{
	while (s->act.ld.nrecs > s->persisted) {
		const px_record *recs = s->act.ld.recs + s->persisted;
		size_t n = s->act.ld.nrecs - s->persisted;
		bool sync = !only_hints(recs, n);
		if (ds_write(s->store, recs, n, sync, s->stall_error,
				   sizeof s->stall_error) != 0)
			return -1;
		for (size_t i = 0; i < n; i++)
			if (recs[i].type == PX_REC_SNAPSHOT)
				ld_log("info", "snapshot_saved",
				       "base=%llu bytes=%u",
				       (unsigned long long)recs[i].slot,
				       recs[i].snap_len);
		s->persisted = s->act.ld.nrecs;
		ln_event ev = {.type = LN_EV_DURABLE,
			       .write_id = s->act.ld.write_id};
		step(s, &ev);
	}
	return 0;
}

static void log_changes(ld_server *s)
{
	px_status st;
	node_status(s, &st);
	if (s->act.ld.installed_snapshot)
		ld_log("info", "snapshot_installed", "base=%llu applied=%llu",
		       (unsigned long long)s->act.ld.snapshot_base,
		       (unsigned long long)st.applied);
	if (st.role != s->role) {
		if (st.role == PX_CANDIDATE)
			ld_log("info", "election", "ballot=%llu.%u commit=%llu",
			       (unsigned long long)st.ballot.round,
			       st.ballot.id, (unsigned long long)st.commit);
		else if (st.role == PX_LEADER)
			ld_log("info", "became_leader",
			       "ballot=%llu.%u commit=%llu",
			       (unsigned long long)st.ballot.round,
			       st.ballot.id, (unsigned long long)st.commit);
		else
			ld_log("info", "became_follower",
			       "was=%s promised=%llu.%u", role_name(s->role),
			       (unsigned long long)st.promised.round,
			       st.promised.id);
		s->role = st.role;
	}
	if (st.voter != s->voter && !st.voter) {
		ld_log("info", "not_voting",
		       "member=%d removed=%d promised=%llu.%u applied=%llu",
		       st.member, st.removed,
		       (unsigned long long)st.promised.round, st.promised.id,
		       (unsigned long long)st.applied);
		s->voter = st.voter;
	} else if (st.voter != s->voter) {
		ld_log("info", "joined",
		       "promised=%llu.%u applied=%llu recovered_above=%llu.%u",
		       (unsigned long long)st.promised.round, st.promised.id,
		       (unsigned long long)st.applied,
		       (unsigned long long)st.recover_above.round,
		       st.recover_above.id);
		s->voter = st.voter;
	}
	if (st.removed && !s->removed) {
		s->removed = true;
		s->removed_at_us = ld_mono_us();
		log_removed(s, "stopping once its last messages left");
	}
	if (st.leader != s->leader) {
		ld_log("info", "leader_change",
		       "leader=%d was=%d promised=%llu.%u commit=%llu",
		       (int)st.leader, (int)s->leader,
		       (unsigned long long)st.promised.round, st.promised.id,
		       (unsigned long long)st.commit);
		s->leader = st.leader;
		s->leader_changes += st.leader >= 0; /* a new leader */
	}
}

static void round_finish(ld_server *s);
static void answer_due(ld_server *s);

static const char *stall_sentence(const ld_server *s, char *buf, size_t len)
{
	if (s->unfit && !s->stalled) {
		snprintf(buf, len,
			 "replica %u %s, so it serves nothing until it "
			 "has fewer: ask another replica",
			 s->o.id, s->unfit_reason);
		return buf;
	}
	snprintf(buf, len,
		 "replica %u cannot write to its data directory, so it "
		 "serves nothing until it can: ask another replica",
		 s->o.id);
	return buf;
}

/* The answer to any client of a stalled replica (answer_elsewhere). A write
 * the node had taken may still be chosen through another leader: the
 * client's retry there, with the same session and seq, is applied once. */
static void answer_stalled(ld_server *s, uint32_t idx)
{
	s->stall_refused++;
	char sentence[256];
	answer_elsewhere(s, idx, stall_sentence(s, sentence, sizeof sentence));
}

/* A write failed: the replica stops promising, voting and acknowledging
 * until the same batch is written (stalled_round). */
static void stall_begin(ld_server *s)
{
	s->stalled = true;
	s->stalls++;
	s->stall_since_us = ld_mono_us();
	s->stall_retry_at_us = s->stall_since_us + STALL_RETRY_US;
	s->stall_retries = 0;
	s->stall_dropped = 0;
	s->stall_refused = 0;
	s->stall_rl.last_us = s->stall_since_us; /* the next line in 10 s */
	s->stall_rl.suppressed = 0;
	ld_log("error", "storage_stalled",
	       "error=\"%s\" records=%zu action=\"not promising, voting or "
	       "acknowledging; peer messages dropped, clients sent elsewhere; "
	       "writing the same batch again every %u ms\"",
	       s->stall_error, s->act.ld.nrecs - s->persisted,
	       STALL_RETRY_US / 1000);
	/* What waits on the node or on this replica's progress is sent
	 * elsewhere now rather than at its deadline; the node's late answers
	 * to these slots are dropped (answer_node). Watches stay: the feed
	 * still answers them truly. */
	for (uint32_t k = s->nactive; k-- > 0;) {
		uint32_t i = s->active[k];
		slot_state st = s->slots[i].state;
		if (st == SLOT_NODE || st == SLOT_PARKED)
			answer_stalled(s, i);
	}
	publish_metrics(s, true);
}

/* Answers a client while stalled: STATUS as usual (it reads only this
 * replica's state, and tells an operator where it stands), anything else
 * as answer_stalled. */
static void admit_stalled(ld_server *s, ld_cctx *c)
{
	uint32_t idx = ld_cctx_index(c);
	slot *sl = &s->slots[idx];
	assert(sl->state == SLOT_FREE && sl->c == NULL);
	sl->c = c;
	sl->gen++;
	sl->apos = s->nactive;
	s->active[s->nactive++] = idx;
	Lockd__Op op = ld_cctx_request(c)->op;
	if (op == LOCKD__OP__OP_STATUS)
		answer_status(s, idx);
	else if (op == LOCKD__OP__OP_MEMBERS)
		answer_members(s, idx);
	else
		answer_stalled(s, idx);
}

/* One round while stalled: drop, refuse, and every STALL_RETRY_US write
 * the failed batch again; once it is written, tell the node and finish
 * the round that failed. */
static void stalled_round(ld_server *s, size_t nitems)
{
	s->round++;
	for (size_t i = 0; i < nitems; i++) {
		if (s->items[i].type == LD_EVQ_PEER) {
			px_msg_free(s->items[i].msg);
			s->items[i].msg = NULL;
			s->stall_dropped++;
		} else if (s->items[i].type == LD_EVQ_CLIENT) {
			admit_stalled(s, s->items[i].client);
		}
	}
	uint64_t now = ld_mono_us();
	if (s->stalled && now >= s->stall_retry_at_us) {
		s->stall_retries++;
		if (persist(s) == 0) {
			s->stalled = false;
			ld_log("info", "storage_recovered",
			       "stalled_ms=%llu retries=%llu "
			       "peer_messages_dropped=%llu "
			       "client_requests_refused=%llu",
			       (unsigned long long)((ld_mono_us() -
						     s->stall_since_us) /
						    1000),
			       (unsigned long long)s->stall_retries,
			       (unsigned long long)s->stall_dropped,
			       (unsigned long long)s->stall_refused);
			round_finish(s);
			publish_metrics(s, true);
			return;
		}
		s->stall_retry_at_us = ld_mono_us() + STALL_RETRY_US;
		uint64_t suppressed;
		if (ld_ratelimit_pass(&s->stall_rl, &suppressed))
			ld_log("warn", "storage_stalled",
			       "error=\"%s\" stalled_ms=%llu retries=%llu "
			       "peer_messages_dropped=%llu "
			       "client_requests_refused=%llu",
			       s->stall_error,
			       (unsigned long long)((ld_mono_us() -
						     s->stall_since_us) /
						    1000),
			       (unsigned long long)s->stall_retries,
			       (unsigned long long)s->stall_dropped,
			       (unsigned long long)s->stall_refused);
	}
	answer_due(s);
	publish_metrics(s, false);
}

/* Open file descriptors, or -1 (none left to look with: EMFILE). */
static long fds_open(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (d == NULL)
		return -1;
	long n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own */
}

/* A replica that can no longer serve tells its node (PX_EV_RESIGN): a
 * leader hands over at once, to a voter that campaigns without waiting
 * for an election timeout, and says it no longer leads. A resignation
 * writes nothing; its messages go now, over connections already open. */
static void resign(ld_server *s)
{
	ln_actions_reset(&s->act);
	s->persisted = s->pend_sent = s->pend_answered = s->pend_changed = 0;
	ln_event ev = {.type = LN_EV_RESIGN};
	step(s, &ev);
	for (size_t i = 0; i < s->act.ld.nmsgs; i++)
		ld_peers_send(s->peers, s->act.ld.msgs[i]);
	for (size_t i = 0; i < s->act.nreplies; i++)
		answer_node(s, &s->act.replies[i]);
	for (size_t i = 0; i < s->act.ld.nchanges; i++)
		answer_change(s, &s->act.ld.changes[i]);
	ln_actions_reset(&s->act);
	log_changes(s);
}

/* Every FD_CHECK_US: near the fd limit the replica can no longer accept a
 * connection (nng's accept loop then spins on EMFILE) nor open a file, so
 * it stops serving and says why (see FD_CHECK_US). */
static void fd_check(ld_server *s)
{
	uint64_t now = ld_mono_us();
	if (now < s->fd_check_at_us)
		return;
	s->fd_check_at_us = now + FD_CHECK_US;
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
		return;
	uint64_t limit = (uint64_t)rl.rlim_cur;
	uint64_t margin = limit / 8;
	if (margin < 16)
		margin = 16;
	if (margin > 256)
		margin = 256;
	long n = fds_open();
	uint64_t open = n < 0 ? limit : (uint64_t)n;
	s->fds_open = open;
	s->fds_limit = limit;
	if (!s->unfit && open + margin >= limit) {
		s->unfit = true;
		s->unfit_since_us = now;
		snprintf(s->unfit_reason, sizeof s->unfit_reason,
			 "has %llu of its %llu file descriptors open",
			 (unsigned long long)open, (unsigned long long)limit);
		px_status st;
		node_status(s, &st);
		ld_log("error", "fds_exhausted",
		       "open=%llu limit=%llu was_leader=%d action=\"cannot "
		       "accept connections or open files: not promising, "
		       "voting, acknowledging or leading (peers elect another "
		       "leader); clients sent elsewhere\"",
		       (unsigned long long)open, (unsigned long long)limit,
		       st.leader == (int32_t)s->o.id);
		for (uint32_t k = s->nactive; k-- > 0;) {
			uint32_t i = s->active[k];
			slot_state ss = s->slots[i].state;
			if (ss == SLOT_NODE || ss == SLOT_PARKED)
				answer_stalled(s, i);
		}
		if (!s->stalled)
			resign(s);
		publish_metrics(s, true);
	} else if (s->unfit && open + 2 * margin < limit) {
		s->unfit = false;
		ld_log("info", "fds_recovered",
		       "open=%llu limit=%llu unfit_ms=%llu",
		       (unsigned long long)open, (unsigned long long)limit,
		       (unsigned long long)((now - s->unfit_since_us) / 1000));
		publish_metrics(s, true);
	}
}

/* One round over the events taken from the queue. */
static void round_run(ld_server *s, size_t nitems)
{
	fd_check(s);
	if (s->stalled || s->unfit) {
		stalled_round(s, nitems);
		return;
	}
	ln_actions_reset(&s->act);
	s->persisted = 0;
	s->round++;

	for (size_t i = 0; i < nitems; i++) {
		if (s->items[i].type != LD_EVQ_PEER)
			continue;
		redial_removed(s, s->items[i].msg->from);
		ln_event ev = {.type = LN_EV_MSG, .msg = s->items[i].msg};
		step(s, &ev);
		px_msg_free(s->items[i].msg);
		s->items[i].msg = NULL;
	}
	clients_gone(s);

	px_status st;
	node_status(s, &st);
	uint32_t nreq = 0;
	/* Backwards: answering a slot moves the last one (seen) into its
	 * place. */
	for (uint32_t k = s->nactive; k-- > 0;) {
		uint32_t i = s->active[k];
		slot *sl = &s->slots[i];
		if (sl->state == SLOT_PARKED &&
		    ld_cctx_request(sl->c)->known_position <= st.applied)
			route_ready(s, i, &nreq);
	}
	for (size_t i = 0; i < nitems; i++)
		if (s->items[i].type == LD_EVQ_CLIENT)
			admit(s, s->items[i].client, st.applied, &nreq);
	if (nreq > 0) {
		/* Group commit: every write taken in this round shares the
		 * node's next proposals. */
		ln_event ev = {
			.type = LN_EV_REQUEST, .req = s->reqs, .nreqs = nreq};
		step(s, &ev);
	}

	if (ld_mono_us() >= s->timer_at_us) {
		ln_event ev = {.type = LN_EV_TICK};
		step(s, &ev);
	}

	/* paxos.h: the core holds every message that depends on a record
	 * until that record is durable, so what is in msgs may leave now,
	 * while this replica syncs: followers write their votes in parallel
	 * with the leader's own (the simulator checks this contract). */
	size_t sent = s->act.ld.nmsgs;
	for (size_t i = 0; i < sent; i++)
		ld_peers_send(s->peers, s->act.ld.msgs[i]);
	/* So may the replies: each answers a decree already chosen, which a
	 * majority made durable before voting (this replica's own vote counts
	 * only after its DURABLE), or a read, or a refusal. None waits for
	 * this round's records, which are votes for later slots. The
	 * simulator delivers replies before the step's records are durable
	 * and checks that nothing acknowledged is lost. */
	size_t answered = s->act.nreplies;
	for (size_t i = 0; i < answered; i++)
		answer_node(s, &s->act.replies[i]);
	/* Membership changes likewise: DONE answers a decree chosen and
	 * applied, the others a refusal. */
	size_t changed = s->act.ld.nchanges;
	for (size_t i = 0; i < changed; i++)
		answer_change(s, &s->act.ld.changes[i]);
	s->pend_sent = sent;
	s->pend_answered = answered;
	s->pend_changed = changed;

	if (persist(s) != 0) {
		stall_begin(s);
		answer_due(s);
		return;
	}
	round_finish(s);
}

/* The rest of a round once its records are durable: what the durable
 * write released (messages, and the replies of decrees that this
 * replica's own vote completed), then the requests that are due. */
static void round_finish(ld_server *s)
{
	for (size_t i = s->pend_sent; i < s->act.ld.nmsgs; i++)
		ld_peers_send(s->peers, s->act.ld.msgs[i]);
	for (size_t i = s->pend_answered; i < s->act.nreplies; i++)
		answer_node(s, &s->act.replies[i]);
	for (size_t i = s->pend_changed; i < s->act.ld.nchanges; i++)
		answer_change(s, &s->act.ld.changes[i]);
	s->pend_sent = s->act.ld.nmsgs;
	s->pend_answered = s->act.nreplies;
	s->pend_changed = s->act.ld.nchanges;
	/* Whom to dial changes with the configuration, and again once the
	 * ledger passes the last slot an old one governs. */
	members_sync(s);

	/* A snapshot replaced the table without applying its history: the
	 * feed knows nothing up to here. */
	if (s->act.ld.installed_snapshot) {
		px_status st;
		node_status(s, &st);
		ld_watch_feed_reset(&s->feed, st.applied);
	}
	answer_due(s);
	if (s->act.ld.timer_at_us != 0)
		s->timer_at_us = s->act.ld.timer_at_us;
	log_changes(s);
	publish_metrics(s, false);
}

/* Answers what is due: watches that changed or ran out, STATUS and LIST,
 * reads that waited too long, requests the node never answered. */
static void answer_due(ld_server *s)
{
	uint64_t now = ld_mono_us();
	for (uint32_t k = s->nactive; k-- > 0;) {
		uint32_t i = s->active[k];
		slot *sl = &s->slots[i];
		if (sl->state == SLOT_WATCH) {
			if (sl->mark != s->feed.added && watch_look(s, i))
				continue;
			if (now >= sl->deadline_us)
				answer_watch_timeout(s, i);
		} else if (sl->state == SLOT_LATER) {
			Lockd__Op op = ld_cctx_request(sl->c)->op;
			if (op == LOCKD__OP__OP_STATUS)
				answer_status(s, i);
			else if (op == LOCKD__OP__OP_MEMBERS)
				answer_members(s, i);
			else
				answer_list(s, i);
		} else if (sl->state == SLOT_PARKED && now >= sl->deadline_us) {
			answer_behind(s, i);
		} else if (sl->state == SLOT_NODE && now >= sl->deadline_us) {
			answer_unanswered(s, i);
		}
	}
}

/* When the loop must wake without an event: the node's timer, a parked
 * read that is ready or out of time, a context out of time. */
static uint64_t wake_at(ld_server *s)
{
	uint64_t now = ld_mono_us();
	/* While stalled the node is not stepped: its timer and the reads it
	 * could serve wait for the retry. */
	uint64_t t = s->stalled ? s->stall_retry_at_us
		     : s->unfit ? s->fd_check_at_us
				: s->timer_at_us;
	if (t > now + WAKE_US_MAX)
		t = now + WAKE_US_MAX;
	if (s->removed && s->removed_at_us + REMOVED_LINGER_US < t)
		t = s->removed_at_us + REMOVED_LINGER_US;
	px_status st;
	node_status(s, &st);
	for (uint32_t k = 0; k < s->nactive; k++) {
		slot *sl = &s->slots[s->active[k]];
		if (sl->state == SLOT_PARKED && !s->stalled && !s->unfit &&
		    ld_cctx_request(sl->c)->known_position <= st.applied)
			return now;
		if (sl->deadline_us < t)
			t = sl->deadline_us;
	}
	return t;
}

int ld_server_run(ld_server *s)
{
	px_status st;
	node_status(s, &st);
	ld_log("info", "start",
	       "peer_url=%s client_url=%s members=%u data=%s applied=%llu",
	       s->o.listen_peer, s->o.listen_client, s->members.n, s->o.data,
	       (unsigned long long)st.applied);
	s->timer_at_us = 0; /* the first round ticks at once */
	for (;;) {
		bool stopping;
		size_t n = ld_evq_wait(&s->q, wake_at(s), s->items, s->q.cap,
				       &stopping);
		if (stopping) {
			for (size_t i = 0; i < n; i++)
				if (s->items[i].type == LD_EVQ_PEER)
					px_msg_free(s->items[i].msg);
			break;
		}
		uint64_t t0 = ld_mono_us();
		if (s->removed && t0 >= s->removed_at_us + REMOVED_LINGER_US) {
			for (size_t i = 0; i < n; i++)
				if (s->items[i].type == LD_EVQ_PEER)
					px_msg_free(s->items[i].msg);
			break;
		}
		round_run(s, n);
		uint64_t dt = ld_mono_us() - t0;
		if (dt >= SLOW_ROUND_US)
			ld_log("warn", "slow_round",
			       "ms=%llu events=%zu records=%zu messages=%zu",
			       (unsigned long long)(dt / 1000), n,
			       s->act.ld.nrecs, s->act.ld.nmsgs);
	}
	ld_peers_stats ps;
	ld_peers_stats_get(s->peers, &ps);
	ld_clients_stats cs;
	ld_clients_stats_get(s->clients, &cs);
	node_status(s, &st);
	if (s->stalled)
		ld_log("warn", "storage_stalled",
		       "error=\"%s\" action=\"stopping while stalled: the "
		       "batch that failed was never acknowledged\"",
		       s->stall_error);
	ld_log("info", "stop",
	       "reason=%s applied=%llu rounds=%llu peer_sent=%llu "
	       "peer_dropped=%llu peer_received=%llu peer_refused=%llu "
	       "client_requests=%llu client_malformed=%llu",
	       s->removed ? "removed" : "signal",
	       (unsigned long long)st.applied, (unsigned long long)s->round,
	       (unsigned long long)ps.sent, (unsigned long long)ps.send_dropped,
	       (unsigned long long)ps.received, (unsigned long long)ps.refused,
	       (unsigned long long)cs.requests,
	       (unsigned long long)cs.malformed);
	return 0;
}
