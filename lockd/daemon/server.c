/* The daemon's event loop (server.h; its parts: server_int.h). */
#include "server_int.h"

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
const char *srv_status_role(const ld_server *s, const px_status *st)
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

void srv_node_status(const ld_server *s, px_status *st)
{
	px_replica_status(ln_node_replica(s->node), st);
}

/* Publishes the loop's figures for the HTTP threads (http.h): only when
 * --http serves them, and at most every METRICS_EVERY_US unless forced, so
 * the loop's hot path does not gather them for nobody every round. */
void srv_publish_metrics(ld_server *s, bool force)
{
	uint64_t now = ld_mono_us();
	if (!force && (s->http == NULL || now < s->metrics_next_us))
		return;
	s->metrics_next_us = now + METRICS_EVERY_US;
	px_status st;
	srv_node_status(s, &st);
	ld_peers_stats ps = {0};
	if (s->peers != NULL)
		ld_peers_stats_get(s->peers, &ps);
	ld_clients_stats cs = {0};
	if (s->clients != NULL)
		ld_clients_stats_get(s->clients, &cs);
	ln_stats ns;
	ln_node_stats(s->node, &ns);
	px_ballot b = st.role == PX_FOLLOWER ? st.promised : st.ballot;
	ls_table_usage usage;
	ls_table_usage_get(ln_node_table(s->node), &usage);
	ld_metrics_snap m = {
		.id = s->o.id,
		.nreplicas = s->members.n,
		.voters = s->nvoters,
		.voter = st.voter,
		.member = st.member,
		.role = srv_status_role(s, &st),
		.leader = st.leader,
		.ballot_round = b.round,
		.ballot_id = b.id,
		.commit = st.commit,
		.applied = st.applied,
		.snapshot_base = st.base,
		.leases = usage.leases,
		.waiters = usage.waiters,
		.sessions = usage.sessions,
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
		.commit_latency = s->commit_histo,
		.disk_sync = s->sync_histo,
	};
	memcpy(m.request, s->req_histo, sizeof m.request);
	if (s->stalled)
		snprintf(m.storage_error, sizeof m.storage_error, "%s",
			 s->rd.error);
	ld_metrics_set(&s->metrics, &m);
}

/* lockd_decree_commit_duration_seconds. After its steps, a leader marks
 * the slots the round proposed (its next_slot moved) with the time the
 * round began; once commit covers them, each counts from then to now. The
 * leader's own synced vote is part of it, as it is part of every write's
 * wait. A replica that stops leading forgets its marks: another leader
 * may fill those slots. */
void srv_note_proposals(ld_server *s)
{
	px_status st;
	srv_node_status(s, &st);
	if (st.role != PX_LEADER) {
		s->next_seen = 0;
		s->marks_n = 0;
		return;
	}
	uint64_t lo = s->next_seen;
	if (lo < st.commit + 1)
		lo = st.commit + 1; /* just elected: all after commit is ours */
	s->next_seen = st.next_slot;
	if (st.next_slot <= lo)
		return;
	if (s->marks_n == COMMIT_MARKS_MAX) {
		uint32_t last =
			(s->marks_head + s->marks_n - 1) % COMMIT_MARKS_MAX;
		s->marks[last].hi = st.next_slot;
		return;
	}
	uint32_t i = (s->marks_head + s->marks_n++) % COMMIT_MARKS_MAX;
	s->marks[i].lo = lo;
	s->marks[i].hi = st.next_slot;
	s->marks[i].at_us = s->round_at_us;
}

void srv_note_chosen(ld_server *s)
{
	if (s->marks_n == 0)
		return;
	px_status st;
	srv_node_status(s, &st);
	uint64_t now = ld_mono_us();
	while (s->marks_n > 0) {
		srv_mark *m = &s->marks[s->marks_head];
		if (st.commit < m->lo)
			break;
		/* Slots <= commit are chosen (paxos_int.h). */
		uint64_t upto = st.commit + 1 < m->hi ? st.commit + 1 : m->hi;
		ld_histo_observe(&s->commit_histo, now - m->at_us,
				 upto - m->lo);
		m->lo = upto;
		if (m->lo < m->hi)
			break;
		s->marks_head = (s->marks_head + 1) % COMMIT_MARKS_MAX;
		s->marks_n--;
	}
}

/* ---- the round ------------------------------------------------------------
 */

void srv_step(ld_server *s, ln_event *ev)
{
	if (rd_step(&s->rd, ev) != 0 && ev->type == LN_EV_MSG) {
		uint64_t suppressed;
		if (ld_ratelimit_pass(&s->core_rl, &suppressed))
			ld_log("warn", "peer_refused",
			       "reason=\"the core refused it\" from=%u type=%d "
			       "suppressed=%llu",
			       ev->msg->from, (int)ev->msg->type,
			       (unsigned long long)suppressed);
	}
}

static void log_changes(ld_server *s)
{
	px_status st;
	srv_node_status(s, &st);
	if (s->rd.act.ld.installed_snapshot)
		ld_log("info", "snapshot_installed",
		       "base=%llu applied=%llu bytes=%llu",
		       (unsigned long long)s->rd.act.ld.snapshot_base,
		       (unsigned long long)st.applied,
		       (unsigned long long)st.snapshot_bytes);
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
		srv_log_removed(s, "stopping once its last messages left");
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
	srv_answer_elsewhere(s, idx,
			     stall_sentence(s, sentence, sizeof sentence));
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
	       s->rd.error, s->rd.act.ld.nrecs - s->rd.persisted,
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
	srv_publish_metrics(s, true);
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
	if (!srv_answer_local(s, idx))
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
		if (rd_flush(&s->rd) == 0) {
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
			srv_publish_metrics(s, true);
			return;
		}
		s->stall_retry_at_us = ld_mono_us() + STALL_RETRY_US;
		uint64_t suppressed;
		if (ld_ratelimit_pass(&s->stall_rl, &suppressed))
			ld_log("warn", "storage_stalled",
			       "error=\"%s\" stalled_ms=%llu retries=%llu "
			       "peer_messages_dropped=%llu "
			       "client_requests_refused=%llu",
			       s->rd.error,
			       (unsigned long long)((ld_mono_us() -
						     s->stall_since_us) /
						    1000),
			       (unsigned long long)s->stall_retries,
			       (unsigned long long)s->stall_dropped,
			       (unsigned long long)s->stall_refused);
	}
	answer_due(s);
	srv_publish_metrics(s, false);
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
	if (s->rd.writing)
		return; /* stalled: the node is not stepped */
	rd_begin(&s->rd);
	ln_event ev = {.type = LN_EV_RESIGN};
	srv_step(s, &ev);
	if (rd_flush(&s->rd) != 0) {
		stall_begin(s);
		return;
	}
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
		srv_node_status(s, &st);
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
		srv_publish_metrics(s, true);
	} else if (s->unfit && open + 2 * margin < limit) {
		s->unfit = false;
		ld_log("info", "fds_recovered",
		       "open=%llu limit=%llu unfit_ms=%llu",
		       (unsigned long long)open, (unsigned long long)limit,
		       (unsigned long long)((now - s->unfit_since_us) / 1000));
		srv_publish_metrics(s, true);
	}
}

/* A snapshot the forked child encoded is back: the node keeps it and
 * writes it in this round. */
static void take_capture(ld_server *s)
{
	ln_event ev;
	uint64_t ms, fork_ms;
	char err[160];
	if (!ld_capture_take(&s->capture, &ev, &ms, &fork_ms, err, sizeof err))
		return;
	if (ev.snap == NULL)
		ld_log("warn", "snapshot_capture_failed",
		       "error=\"%s\" ms=%llu action=\"asked for again "
		       "later\"",
		       err, (unsigned long long)ms);
	else
		ld_log("info", "snapshot_captured",
		       "base=%llu bytes=%zu ms=%llu fork_ms=%llu",
		       (unsigned long long)ev.snap_base, ev.snap_len,
		       (unsigned long long)ms, (unsigned long long)fork_ms);
	srv_step(s, &ev);
}

/* One round over the events taken from the queue. */
static void round_run(ld_server *s, size_t nitems)
{
	fd_check(s);
	if (s->stalled || s->unfit) {
		stalled_round(s, nitems);
		return;
	}
	rd_begin(&s->rd);
	s->round++;
	s->round_at_us = ld_mono_us();
	s->round_write_us = s->round_send_us = 0;
	take_capture(s);

	for (size_t i = 0; i < nitems; i++) {
		if (s->items[i].type != LD_EVQ_PEER)
			continue;
		srv_redial_removed(s, s->items[i].msg->from);
		ln_event ev = {.type = LN_EV_MSG, .msg = s->items[i].msg};
		srv_step(s, &ev);
		px_msg_free(s->items[i].msg);
		s->items[i].msg = NULL;
	}
	srv_clients_gone(s);

	px_status st;
	srv_node_status(s, &st);
	uint32_t nreq = 0;
	/* Backwards: answering a slot moves the last one (seen) into its
	 * place. */
	for (uint32_t k = s->nactive; k-- > 0;) {
		uint32_t i = s->active[k];
		slot *sl = &s->slots[i];
		if (sl->state == SLOT_PARKED &&
		    ld_cctx_request(sl->c)->known_position <= st.applied)
			srv_route_ready(s, i, &nreq);
	}
	for (size_t i = 0; i < nitems; i++)
		if (s->items[i].type == LD_EVQ_CLIENT)
			srv_admit(s, s->items[i].client, st.applied, &nreq);
	if (nreq > 0) {
		/* Group commit: every write taken in this round shares the
		 * node's next proposals. */
		ln_event ev = {
			.type = LN_EV_REQUEST, .req = s->reqs, .nreqs = nreq};
		srv_step(s, &ev);
	}

	if (ld_mono_us() >= s->timer_at_us) {
		ln_event ev = {.type = LN_EV_TICK};
		srv_step(s, &ev);
	}

	srv_note_proposals(s);

	/* round.h: what left before the write may overlap this replica's
	 * sync (followers write their votes in parallel with the leader's
	 * own); what the write released leaves after it. */
	if (rd_flush(&s->rd) != 0) {
		stall_begin(s);
		answer_due(s);
		return;
	}
	round_finish(s);
}

/* The store's writer thread wrote a snapshot since the last look. */
static void log_snapshots_saved(ld_server *s)
{
	ds_lazy_stats ls;
	ds_lazy_stats_get(s->store, &ls);
	if (ls.written != s->snapshots_saved) {
		s->snapshots_saved = ls.written;
		ld_log("info", "snapshot_saved",
		       "base=%llu bytes=%llu write_ms=%llu",
		       (unsigned long long)ls.last_base,
		       (unsigned long long)ls.last_bytes,
		       (unsigned long long)ls.last_ms);
	}
	if (ls.failed != s->snapshots_failed) {
		s->snapshots_failed = ls.failed;
		ld_log("warn", "snapshot_save_failed",
		       "failed=%llu action=\"the next write reopens the "
		       "store; the older snapshot and the ledger still "
		       "restore the same state\"",
		       (unsigned long long)ls.failed);
	}
}

/* The rest of a round once its records are durable and what they
 * released has left: the requests that are due. */
static void round_finish(ld_server *s)
{
	log_snapshots_saved(s);
	/* Whom to dial changes with the configuration, and again once the
	 * ledger passes the last slot an old one governs. */
	srv_members_sync(s);

	/* A snapshot replaced the table without applying its history: the
	 * feed knows nothing up to here. */
	if (s->rd.act.ld.installed_snapshot) {
		px_status st;
		srv_node_status(s, &st);
		ld_watch_feed_reset(&s->feed, st.applied);
	}
	answer_due(s);
	if (s->rd.act.ld.timer_at_us != 0)
		s->timer_at_us = s->rd.act.ld.timer_at_us;
	srv_note_chosen(s);
	log_changes(s);
	srv_publish_metrics(s, false);
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
			if (sl->mark != s->feed.added && srv_watch_look(s, i))
				continue;
			if (now >= sl->deadline_us)
				srv_answer_watch_timeout(s, i);
		} else if (sl->state == SLOT_LATER) {
			if (!srv_answer_local(s, i))
				srv_answer_list(s, i);
		} else if (sl->state == SLOT_PARKED && now >= sl->deadline_us) {
			srv_answer_behind(s, i);
		} else if (sl->state == SLOT_NODE && now >= sl->deadline_us) {
			srv_answer_unanswered(s, i);
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
	srv_node_status(s, &st);
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
	srv_node_status(s, &st);
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
			       "ms=%llu write_ms=%llu send_ms=%llu events=%zu "
			       "records=%zu messages=%zu",
			       (unsigned long long)(dt / 1000),
			       (unsigned long long)(s->round_write_us / 1000),
			       (unsigned long long)(s->round_send_us / 1000), n,
			       s->rd.act.ld.nrecs, s->rd.act.ld.nmsgs);
	}
	ld_peers_stats ps;
	ld_peers_stats_get(s->peers, &ps);
	ld_clients_stats cs;
	ld_clients_stats_get(s->clients, &cs);
	srv_node_status(s, &st);
	if (s->stalled)
		ld_log("warn", "storage_stalled",
		       "error=\"%s\" action=\"stopping while stalled: the "
		       "batch that failed was never acknowledged\"",
		       s->rd.error);
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
