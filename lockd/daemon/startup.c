/* Opening the store and the node, and following the configuration
 * (server_int.h). */
#include "server_int.h"

struct restore_ctx {
	ln_node *node;
	uint64_t n;
};

/* ---- start-up ----------------------------------------------------------- */

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
const char *srv_client_url(const ld_server *s, int32_t id)
{
	if (id < 0 || (uint32_t)id >= LD_REPLICA_IDS ||
	    s->url_client[id][0] == '\0')
		return NULL;
	return s->url_client[id];
}

/* The applied configuration with every URL this replica knows filled in. */
void srv_members_view(const ld_server *s, px_members *m, uint64_t *from)
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
void srv_members_sync(ld_server *s)
{
	const px_replica *r = ln_node_replica(s->node);
	px_members m;
	uint64_t from;
	srv_members_view(s, &m, &from);
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
void srv_redial_removed(ld_server *s, uint32_t from)
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
	ds_origin(s->store, &pc->nreplicas, &pc->members, &pc->incarnation);
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
	s->rd.node = s->node;
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
void srv_log_removed(const ld_server *s, const char *action)
{
	ld_log("warn", "removed",
	       "id=%u reason=\"removed id=%u: this replica left the cell; its "
	       "id is never used again\" action=\"%s\"",
	       s->o.id, s->o.id, action);
}

/* ---- the round's world (round.h): the monotonic clock, RocksDB, nng ---- */

static uint64_t io_now_us(void *ctx)
{
	(void)ctx;
	return ld_mono_us();
}

static void io_send(void *ctx, const px_msg *m)
{
	ld_server *s = ctx;
	uint64_t t0 = ld_mono_us();
	ld_peers_send(s->peers, m);
	s->round_send_us += ld_mono_us() - t0;
}

static void io_reply(void *ctx, const ln_reply *rp)
{
	srv_answer_node(ctx, rp);
}

static void io_change(void *ctx, const px_change_done *d)
{
	srv_answer_change(ctx, d);
}

/* The round's records in one batch, except snapshots: those go to the
 * store's writer thread (ds_write_snapshot_later), so that a large one does
 * not stop the loop for its write and sync. */
static int io_write(void *ctx, px_record *recs, size_t n, bool sync, char *err,
		    size_t errlen)
{
	ld_server *s = ctx;
	size_t nsnap = 0;
	for (size_t i = 0; i < n; i++)
		nsnap += recs[i].type == PX_REC_SNAPSHOT;
	const px_record *batch = recs;
	size_t nbatch = n;
	px_record *rest = NULL;
	if (nsnap > 0) {
		/* Shallow copies: ds_write only reads them. */
		rest = malloc((n - nsnap + 1) * sizeof *rest);
		if (rest == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		nbatch = 0;
		for (size_t i = 0; i < n; i++)
			if (recs[i].type != PX_REC_SNAPSHOT)
				rest[nbatch++] = recs[i];
		batch = rest;
	}
	uint64_t t0 = ld_mono_us();
	int rv = nbatch == 0
			 ? 0
			 : ds_write(s->store, batch, nbatch, sync, err, errlen);
	free(rest);
	s->round_write_us += ld_mono_us() - t0;
	if (rv != 0)
		return -1;
	if (sync && nbatch > 0)
		ld_histo_observe(&s->sync_histo, ld_mono_us() - t0, 1);
	for (size_t i = 0; i < n; i++)
		if (recs[i].type == PX_REC_SNAPSHOT)
			ds_write_snapshot_later(s->store, &recs[i]);
	return 0;
}

static void io_capture(void *ctx)
{
	ld_server *s = ctx;
	ld_capture_start(&s->capture, s->node);
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
	rd_init(&s->rd, NULL,
		&(rd_io){.ctx = s,
			 .now_us = io_now_us,
			 .send = io_send,
			 .reply = io_reply,
			 .change = io_change,
			 .write = io_write,
			 .capture = io_capture});
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
	    s->list_names == NULL || ld_evq_init(&s->q, LD_CLIENT_SLOTS)) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	s->q_init = true;
	ld_capture_init(&s->capture, &s->q);
	s->capture_init = true;
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
			srv_log_removed(s, "not starting");
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
				srv_log_removed(s, "not starting");
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
	if (ds_lazy_snapshots(s->store, err, errlen) != 0)
		goto fail;
	px_status st;
	srv_node_status(s, &st);
	px_members now;
	px_replica_members(ln_node_replica(s->node), &now, NULL);
	if (st.removed || (now.removed >> o->id & 1u)) {
		/* Its ledger says it left: nobody needs it any more. */
		srv_log_removed(s, "not starting");
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
	srv_members_view(s, &now, NULL);
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
	srv_members_sync(s);
	ld_tls tls = {o->tls_cert, o->tls_ca};
	if (ld_clients_open(o->listen_client, &tls, o->tls_client_auth, &s->q,
			    &s->clients, err, errlen) != 0)
		goto fail;
	srv_publish_metrics(s, true);
	/* https:// as the client port's TLS: the same certificate, and client
	 * certificates when --tls-client-auth asks for them. */
	nng_tls_config *htls = NULL;
	if (strncmp(o->http, "https://", 8) == 0 &&
	    ld_tls_server_config(&tls, o->tls_client_auth, &htls, err,
				 errlen) != 0)
		goto fail;
	int hrv = o->http[0] == '\0' ? 0
				     : ld_http_open(o->http, &s->metrics, htls,
						    &s->http, err, errlen);
	if (htls != NULL)
		nng_tls_config_free(htls);
	if (hrv != 0 ||
	    (s->http != NULL &&
	     ld_http_api_open(s->http, s->clients, &s->metrics, o->id,
			      (const char(*)[LD_URL_BYTES_MAX])o->http_urls,
			      o->nhttp_urls, &s->http_api, err, errlen) != 0))
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
	/* The server first: its requests in the loop's hands are cancelled
	 * (and their contexts freed with the clients below). */
	ld_http_close(s->http);
	s->http = NULL;
	ld_http_api_close(s->http_api);
	s->http_api = NULL;
	/* The loop has stopped, so every acknowledged write is synced: close
	 * the store first, then say so, in case nng's close hangs below. */
	if (s->store != NULL)
		ds_close(s->store);
	s->store = NULL;
	atomic_store(&ld_server_store_closed, 1);
	/* Stop the inflow: after these, no callback runs. */
	ld_clients_close(s->clients);
	ld_peers_close(s->peers);
	if (s->capture_init)
		ld_capture_destroy(&s->capture);
	if (s->q_init)
		ld_evq_destroy(&s->q);
	rd_free(&s->rd);
	ln_node_free(s->node);
	ld_watch_feed_free(&s->feed);
	if (s->metrics_init)
		ld_metrics_destroy(&s->metrics);
	free(s->items);
	free(s->reqs);
	free(s->list_leases);
	free(s->list_ptrs);
	free(s->list_names);
	free(s);
}
