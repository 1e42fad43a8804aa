/* The daemon's event loop, inside: the state ld_server keeps, shared by
 * the three files it is written in:
 *   server.c    the loop: rounds (lockd/edge/round.h), stalls, the fd
 *               limit, metrics;
 *   startup.c   opening the store and the node, and following the
 *               configuration (whom to dial);
 *   requests.c  client requests: admitting, routing to the node, parking
 *               reads, watches, LIST, STATUS and membership requests, and
 *               every protobuf reply.
 * Nothing outside lockd/daemon/server*.c, startup.c and requests.c
 * includes this. */
#ifndef LD_SERVER_INT_H
#define LD_SERVER_INT_H

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

#include "capture.h"
#include "client.pb-c.h"
#include "client_api.h"
#include "http.h"
#include "http_api.h"
#include "join.h"
#include "ldlog.h"
#include "node.h"
#include "round.h"
#include "storage.h"
#include "transport.h"
#include "watch.h"

#include "server.h"

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

/* Leader: proposal marks kept for lockd_decree_commit_duration_seconds
 * (one per round that proposed; past this many a round's slots join the
 * newest mark). */
#define COMMIT_MARKS_MAX 256u

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

/* req_id = generation << 25 | entry << 16 | context index: a late answer
 * to a context that has since moved on is recognised and dropped. entry is
 * 0, or 1 + the index of a RENEW-for-many-sessions' entry (req_id_of). */
#define REQ_INDEX_BITS 16
#define REQ_SUB_BITS 9
/* One connection's parked reads never hold every context, and leave the
 * reserve (LD_CLIENT_CTX_RESERVE) to requests that do not wait. */
_Static_assert(PARKED_PER_CONN_MAX + LD_CLIENT_CTX_RESERVE < LD_CLIENT_CTX_MAX,
	       "parked reads could hold every context");
/* A LIST page of LIST_LEASES_MAX leases of the largest names and values
 * is cut at LIST_BYTES_MAX, which a client's reply buffer (8 MiB in
 * liblockclient, 1 MiB nng's default) takes. */
_Static_assert(LIST_BYTES_MAX + LS_NAME_BYTES_MAX + LS_VALUE_BYTES_MAX +
			       1024u <=
		       1024u * 1024u,
	       "a LIST page may outgrow a client's default reply buffer");
/* Every request the cell accepts fits in one client message. */
_Static_assert(LS_NAME_BYTES_MAX + LS_VALUE_BYTES_MAX + LS_REASON_BYTES_MAX +
			       1024u <=
		       LD_CLIENT_REQUEST_BYTES_MAX,
	       "a request at the limits outgrows a client message");
_Static_assert(LD_CLIENT_SLOTS <= (1u << REQ_INDEX_BITS),
	       "context index must fit in the req_id");
_Static_assert(LD_RENEW_SESSIONS_MAX < (1u << REQ_SUB_BITS),
	       "a RENEW's entries must fit in the req_id");

static inline uint64_t req_id_of(uint64_t gen, uint32_t entry, uint32_t idx)
{
	return gen << (REQ_INDEX_BITS + REQ_SUB_BITS) |
	       (uint64_t)entry << REQ_INDEX_BITS | idx;
}

static inline uint32_t req_id_idx(uint64_t id)
{
	return (uint32_t)(id & ((1u << REQ_INDEX_BITS) - 1));
}

static inline uint32_t req_id_entry(uint64_t id)
{
	return (uint32_t)((id >> REQ_INDEX_BITS) & ((1u << REQ_SUB_BITS) - 1));
}

static inline uint64_t req_id_gen(uint64_t id)
{
	return id >> (REQ_INDEX_BITS + REQ_SUB_BITS);
}

/* One entry's answer in a RENEW for many sessions. */
typedef struct renew_answer {
	bool answered;
	ln_status status;
	ls_status ls;
	int32_t leader_hint;
	uint64_t position;
	uint64_t *tokens; /* malloc'd, ntokens of them */
	uint32_t ntokens;
} renew_answer;

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
	/* RENEW for many sessions: its entries' answers (calloc'd), nsub of
	 * them, of which left are still to come */
	renew_answer *subs;
	uint32_t nsub, left;
} slot;

/* Leader: ledger slots [lo, hi) proposed in the round that began at at_us
 * (server.c, srv_note_proposals). */
typedef struct srv_mark {
	uint64_t lo, hi, at_us;
} srv_mark;

struct ld_server {
	ld_options o;
	ln_node *node;
	ds_store *store;
	ld_peers *peers;
	ld_clients *clients;
	ld_evq q;
	bool q_init;
	uint64_t timer_at_us;

	slot slots[LD_CLIENT_SLOTS]; /* by context index (client_api.h) */
	uint32_t nwaiting;           /* slots holding a request that waits */
	/* The slots in use, in no order: the loop's passes over requests
	 * cost what is in progress, not LD_CLIENT_SLOTS. */
	uint32_t active[LD_CLIENT_SLOTS];
	uint32_t nactive;
	ln_request *reqs; /* this round's requests to the node (grows) */
	size_t reqs_cap;
	ld_evq_item *items;

	/* LIST's reply buffers */
	Lockd__Lease *list_leases;
	Lockd__Lease **list_ptrs;
	char (*list_names)[LS_NAME_BYTES_MAX + 1];

	ld_watch_feed feed;

	/* closed client connections (see clients_gone) */
	uint32_t gone_buf[LD_CLIENT_GONE_MAX];
	uint64_t gone_reqs[LD_CLIENT_SLOTS];
	uint32_t gone_recent[GONE_RECENT];
	uint32_t gone_recent_next;
	uint64_t gone_freed; /* waiting requests freed by a closed connection */

	ld_metrics metrics; /* what /metrics and /health show */
	bool metrics_init;
	ld_http *http;
	ld_http_api *http_api; /* /v1 and / on http (http_api.h) */
	uint64_t started_unix_s;
	uint64_t leader_changes; /* /metrics lockd_leader_changes_total */
	uint64_t
		metrics_next_us; /* the next publish_metrics, at the earliest */
	/* The loop's histograms (http.h), copied into each snapshot. */
	ld_histo req_histo[LD_METRIC_OPS];
	ld_histo commit_histo, sync_histo;
	/* Leader: slots [lo, hi) proposed in the round that began at at_us
	 * and not yet chosen, oldest first (a ring); next_seen is the
	 * leader's next_slot after the last round (0: not leading). */
	srv_mark marks[COMMIT_MARKS_MAX];
	uint32_t marks_head, marks_n;
	uint64_t next_seen;
	uint64_t round_at_us; /* when the current round began */
	/* This round's time in the store's writes and in peer sends: a
	 * slow_round says where its time went. */
	uint64_t round_write_us, round_send_us;

	/* The round (lockd/edge/round.h): its actions are kept across
	 * rounds while stalled. */
	rd_round rd;
	/* Snapshots encoded in a forked child (capture.h). */
	ld_capture capture;
	bool capture_init;
	uint64_t snapshots_saved, snapshots_failed; /* ds_lazy_stats seen */

	/* A write failed: until the same batch is written, the node is not
	 * stepped at all, so it neither promises, votes nor acknowledges
	 * (what it would send waits for LN_EV_DURABLE, which is not stepped);
	 * peer messages are dropped (Paxos tolerates lost messages) and
	 * clients are sent elsewhere. */
	bool stalled;
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

	/* what was last logged */
	bool voter; /* last logged: px_status.voter */
	px_role role;
	int32_t leader;
	uint64_t round;
	ld_ratelimit core_rl;
};

/* ---- the loop (server.c) */

const char *srv_status_role(const ld_server *s, const px_status *st);
void srv_node_status(const ld_server *s, px_status *st);
void srv_publish_metrics(ld_server *s, bool force);
void srv_step(ld_server *s, ln_event *ev);
void srv_note_proposals(ld_server *s);
void srv_note_chosen(ld_server *s);

/* ---- start-up and membership (startup.c) */

const char *srv_client_url(const ld_server *s, int32_t id);
void srv_log_removed(const ld_server *s, const char *action);
void srv_members_sync(ld_server *s);
void srv_members_view(const ld_server *s, px_members *m, uint64_t *from);
void srv_redial_removed(ld_server *s, uint32_t from);

/* ---- client requests and their replies (requests.c) */

void srv_admit(ld_server *s, ld_cctx *c, uint64_t applied, uint32_t *nreq);
void srv_answer_behind(ld_server *s, uint32_t idx);
void srv_answer_change(ld_server *s, const px_change_done *d);
void srv_answer_elsewhere(ld_server *s, uint32_t idx, const char *sentence);
void srv_answer_list(ld_server *s, uint32_t idx);
bool srv_answer_local(ld_server *s, uint32_t idx);
void srv_answer_node(ld_server *s, const ln_reply *rp);
void srv_answer_unanswered(ld_server *s, uint32_t idx);
void srv_answer_watch_timeout(ld_server *s, uint32_t idx);
void srv_clients_gone(ld_server *s);
void srv_route_ready(ld_server *s, uint32_t idx, uint32_t *nreq);
bool srv_watch_look(ld_server *s, uint32_t idx);

#endif
