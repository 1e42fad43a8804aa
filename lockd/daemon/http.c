#include "http.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>

/* Either page fits in this: /metrics is about 20 KiB with its 14
 * histograms (test/unit/http_test.c checks a page of large figures fits
 * with room to spare). The handler allocates it, not its stack. */
#define HTTP_PAGE_BYTES_MAX 65536u

/* /health: one JSON object, its reason at most a storage error. */
#define HEALTH_PAGE_BYTES_MAX 4096u

/* 100 us to 10 s: a synced write here takes ~150 us, a linearizable read a
 * round trip, a blocking acquire or a watch up to seconds. */
const uint64_t LD_HISTO_LE_US[LD_HISTO_BUCKETS] = {
	100,   250,    500,    1000,   2500,    5000,    10000,   25000,
	50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000};

const char *const LD_METRIC_OP_NAMES[LD_METRIC_OPS] = {
	"acquire", "renew",  "release", "revoke",  "get",           "check",
	"list",    "status", "watch",   "members", "member_change", "proclaim"};

void ld_histo_observe(ld_histo *h, uint64_t us, uint64_t n)
{
	uint32_t i = 0;
	while (i < LD_HISTO_BUCKETS && us > LD_HISTO_LE_US[i])
		i++;
	h->bucket[i] += n;
	h->count += n;
	h->sum_us += us * n;
}

void ld_metrics_init(ld_metrics *m)
{
	memset(m, 0, sizeof *m);
	pthread_mutex_init(&m->mu, NULL);
	m->s.role = "follower";
	m->s.leader = -1;
}

void ld_metrics_destroy(ld_metrics *m)
{
	pthread_mutex_destroy(&m->mu);
}

void ld_metrics_set(ld_metrics *m, const ld_metrics_snap *s)
{
	pthread_mutex_lock(&m->mu);
	m->s = *s;
	pthread_mutex_unlock(&m->mu);
}

void ld_metrics_get(ld_metrics *m, ld_metrics_snap *out)
{
	pthread_mutex_lock(&m->mu);
	*out = m->s;
	pthread_mutex_unlock(&m->mu);
}

/* Appends to buf at *len, never past cap (the page is then cut short). */
__attribute__((format(printf, 4, 5))) static void
http_put(char *buf, size_t cap, size_t *len, const char *fmt, ...)
{
	if (*len + 1 >= cap)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf + *len, cap - *len, fmt, ap);
	va_end(ap);
	if (n > 0)
		*len += (size_t)n < cap - *len ? (size_t)n : cap - *len - 1;
}

size_t ld_metrics_health(const ld_metrics_snap *s, char *buf, size_t cap,
			 uint16_t *status)
{
	size_t len = 0;
	bool recovering = strcmp(s->role, "recovering") == 0;
	bool learner = strcmp(s->role, "learner") == 0;
	bool joining = strcmp(s->role, "joining") == 0;
	bool diverged = s->digest_alarm == 2;
	bool ok = s->leader >= 0 && !s->storage_stalled && !recovering &&
		  !learner && !joining && !diverged && !s->fds_exhausted;
	*status = ok ? 200 : 503;
	http_put(buf, cap, &len,
		 "{\"health\":%s,\"id\":%" PRIu32 ",\"role\":\"%s\","
		 "\"leader\":%" PRId32 ",\"commit\":%" PRIu64
		 ",\"applied\":%" PRIu64 ",\"members\":%" PRIu32
		 ",\"voters\":%" PRIu32 ",\"voter\":%s",
		 ok ? "true" : "false", s->id, s->role, s->leader, s->commit,
		 s->applied, s->nreplicas, s->voters,
		 s->voter ? "true" : "false");
	if (s->storage_stalled) {
		/* The sentence names paths and RocksDB's words: escaped. */
		char esc[2 * sizeof s->storage_error];
		size_t n = 0;
		for (const char *p = s->storage_error;
		     *p != '\0' && n + 2 < sizeof esc; p++) {
			unsigned char c = (unsigned char)*p;
			if (c == '"' || c == '\\')
				esc[n++] = '\\';
			esc[n++] = c < 0x20 ? ' ' : (char)c;
		}
		esc[n] = '\0';
		http_put(buf, cap, &len,
			 ",\"storage_stalled\":true,\"reason\":\"this "
			 "replica cannot write to its disk, so it neither "
			 "votes nor serves: %s\"",
			 esc);
	} else if (s->fds_exhausted) {
		http_put(buf, cap, &len,
			 ",\"fds_exhausted\":true,\"reason\":\"this replica "
			 "has %" PRIu64 " of its %" PRIu64
			 " file descriptors open, so it serves nothing until "
			 "it has fewer\"",
			 s->fds_open, s->fds_limit);
	} else if (learner) {
		http_put(buf, cap, &len,
			 ",\"reason\":\"this replica is a learner: a member "
			 "that catches up without voting until the leader "
			 "promotes it\"");
	} else if (joining) {
		http_put(buf, cap, &len,
			 ",\"reason\":\"this replica is not a member of the "
			 "configuration it has applied: it waits to be added "
			 "(lockctl member add), or it was removed\"");
	} else if (recovering) {
		http_put(
			buf, cap, &len,
			",\"reason\":\"this replica is recovering: it started "
			"without a voter's records (a new cell, or a lost "
			"disk) and learns from the others until it may vote\"");
	} else if (diverged) {
		http_put(buf, cap, &len,
			 ",\"digest_alarm\":\"diverged\",\"reason\":\"this "
			 "replica's state digest differs from a quorum's at "
			 "the same ledger position: it serves no reads and "
			 "does not lead; wipe its data directory so that it "
			 "recovers the cell's state\"");
	} else if (!ok) {
		http_put(buf, cap, &len,
			 ",\"reason\":\"this replica knows no leader: fewer "
			 "than a majority can talk, or an election is under "
			 "way\"");
	}
	http_put(buf, cap, &len, "}\n");
	return len;
}

/* One histogram's samples: cumulative buckets ending with +Inf (equal to
 * _count), then _sum in seconds and _count. label: `op="get"` or NULL. */
static void http_histo(char *buf, size_t cap, size_t *len, const char *name,
		       const char *label, const ld_histo *h)
{
	const char *sep = label != NULL ? "," : "";
	const char *lb = label != NULL ? label : "";
	uint64_t cum = 0;
	for (uint32_t i = 0; i < LD_HISTO_BUCKETS; i++) {
		cum += h->bucket[i];
		http_put(buf, cap, len,
			 "%s_bucket{%s%sle=\"%g\"} %" PRIu64 "\n", name, lb,
			 sep, (double)LD_HISTO_LE_US[i] / 1e6, cum);
	}
	cum += h->bucket[LD_HISTO_BUCKETS];
	http_put(buf, cap, len, "%s_bucket{%s%sle=\"+Inf\"} %" PRIu64 "\n",
		 name, lb, sep, cum);
	http_put(buf, cap, len, "%s_sum%s%s%s %.6f\n", name,
		 label != NULL ? "{" : "", lb, label != NULL ? "}" : "",
		 (double)h->sum_us / 1e6);
	http_put(buf, cap, len, "%s_count%s%s%s %" PRIu64 "\n", name,
		 label != NULL ? "{" : "", lb, label != NULL ? "}" : "",
		 h->count);
}

size_t ld_metrics_prometheus(const ld_metrics_snap *s, char *buf, size_t cap)
{
	size_t len = 0;
#define GAUGE(name, help, fmt, v)                                     \
	http_put(buf, cap, &len,                                      \
		 "# HELP lockd_" name " " help "\n# TYPE lockd_" name \
		 " gauge\nlockd_" name " %" fmt "\n",                 \
		 v)
#define COUNTER(name, help, v)                                              \
	http_put(buf, cap, &len,                                            \
		 "# HELP lockd_" name "_total " help "\n# TYPE lockd_" name \
		 "_total counter\nlockd_" name "_total %" PRIu64 "\n",      \
		 v)
	http_put(buf, cap, &len,
		 "# HELP lockd_info This replica: its id and the cell's size "
		 "(members).\n"
		 "# TYPE lockd_info gauge\n"
		 "lockd_info{id=\"%" PRIu32 "\",replicas=\"%" PRIu32 "\"} 1\n",
		 s->id, s->nreplicas);
	http_put(buf, cap, &len,
		 "# HELP lockd_role 1 for the role this replica is in.\n"
		 "# TYPE lockd_role gauge\n"
		 "lockd_role{role=\"leader\"} %d\n"
		 "lockd_role{role=\"candidate\"} %d\n"
		 "lockd_role{role=\"follower\"} %d\n"
		 "lockd_role{role=\"recovering\"} %d\n"
		 "lockd_role{role=\"learner\"} %d\n"
		 "lockd_role{role=\"joining\"} %d\n",
		 strcmp(s->role, "leader") == 0,
		 strcmp(s->role, "candidate") == 0,
		 strcmp(s->role, "follower") == 0,
		 strcmp(s->role, "recovering") == 0,
		 strcmp(s->role, "learner") == 0,
		 strcmp(s->role, "joining") == 0);
	GAUGE("members",
	      "Members of the configuration this replica has applied.", PRIu32,
	      s->nreplicas);
	GAUGE("voters", "Of those, the ones that vote.", PRIu32, s->voters);
	GAUGE("voter", "1 while this replica votes.", "d", s->voter ? 1 : 0);
	GAUGE("leader",
	      "The leader's replica id as this replica knows it "
	      "(-1: none).",
	      PRId32, s->leader);
	GAUGE("has_leader", "1 while this replica knows a leader (etcd's).",
	      "d", s->leader >= 0 ? 1 : 0);
	COUNTER("leader_changes",
		"Times this replica learnt of a new leader (etcd's "
		"leader_changes_seen_total).",
		s->leader_changes);
	GAUGE("ballot_round", "The round of the ballot it leads or follows.",
	      PRIu64, s->ballot_round);
	GAUGE("commit_position", "Every ledger slot up to it is chosen here.",
	      PRIu64, s->commit);
	GAUGE("applied_position", "The ledger position reads are served at.",
	      PRIu64, s->applied);
	GAUGE("snapshot_position", "The ledger position of the last snapshot.",
	      PRIu64, s->snapshot_base);
	GAUGE("leases_held", "Leases held in the table, as applied here.",
	      PRIu64, s->leases);
	GAUGE("lease_waiters",
	      "Sessions queued for a held name (acquires with a wait), as "
	      "applied here.",
	      PRIu64, s->waiters);
	GAUGE("sessions",
	      "Client sessions the lease table knows (holding or waiting), "
	      "as applied here.",
	      PRIu64, s->sessions);
	GAUGE("requests_active", "Client requests in progress.", PRIu32,
	      s->requests_active);
	GAUGE("requests_waiting",
	      "Client requests that wait (acquires with a wait, watches).",
	      PRIu32, s->requests_waiting);
	GAUGE("watch_feed_entries", "Holder changes kept for watches.", PRIu64,
	      s->watch_feed_entries);
	GAUGE("watch_feed_from_position",
	      "Watches from before this position get the current state.",
	      PRIu64, s->watch_feed_lo);
	GAUGE("fds_open", "File descriptors this replica has open.", PRIu64,
	      s->fds_open);
	GAUGE("fds_exhausted",
	      "1 while it is so near its file descriptor limit that it "
	      "serves nothing.",
	      "d", s->fds_exhausted ? 1 : 0);
	GAUGE("digest_alarm",
	      "1: a replica's state digest differed from the leader's; 2: "
	      "this replica's differs from a quorum's (it serves no reads).",
	      "d", s->digest_alarm);
	GAUGE("storage_stalled",
	      "1 while a write to the data directory fails (the replica "
	      "then neither votes nor serves).",
	      "d", s->storage_stalled ? 1 : 0);
	COUNTER("storage_stalls",
		"Times writes to the data directory began "
		"failing.",
		s->storage_stalls);
	GAUGE("start_time_seconds", "When this process started (Unix time).",
	      PRIu64, s->started_unix_s);
	COUNTER("rounds", "Rounds of the event loop.", s->rounds);
	COUNTER("client_requests", "Client requests received.",
		s->client_requests);
	COUNTER("client_malformed", "Client requests refused as malformed.",
		s->client_malformed);
	COUNTER("client_replies", "Replies sent to clients.",
		s->client_replies);
	COUNTER("peer_sent", "Messages sent to peers.", s->peer_sent);
	COUNTER("peer_dropped", "Messages to peers dropped (queue full).",
		s->peer_dropped);
	COUNTER("peer_received", "Messages received from peers.",
		s->peer_received);
	COUNTER("peer_refused",
		"Peer messages (or TLS connections) refused: unauthenticated "
		"(cell key or certificate), malformed, or misaddressed.",
		s->peer_refused);
	COUNTER("grants", "Leases granted, as applied here.", s->grants);
	COUNTER("lease_ends",
		"Leases ended (release, expiry), as applied here.", s->ends);
	COUNTER("renewals", "Lease renewals applied here.", s->renewals);
	COUNTER("revokes", "Leases revoked by an operator.", s->revokes);
	COUNTER("expire_decrees", "EXPIRE commands this replica proposed.",
		s->expire_decrees);
	COUNTER("tick_decrees", "TICK commands this replica proposed.",
		s->tick_decrees);
	http_put(buf, cap, &len,
		 "# HELP lockd_request_duration_seconds Client requests, from "
		 "arrival to reply, by operation (an acquire's wait in the "
		 "queue and a watch's long-poll included).\n"
		 "# TYPE lockd_request_duration_seconds histogram\n");
	for (uint32_t i = 0; i < LD_METRIC_OPS; i++) {
		char label[48];
		snprintf(label, sizeof label, "op=\"%s\"",
			 LD_METRIC_OP_NAMES[i]);
		http_histo(buf, cap, &len, "lockd_request_duration_seconds",
			   label, &s->request[i]);
	}
	http_put(buf, cap, &len,
		 "# HELP lockd_decree_commit_duration_seconds Leader: from "
		 "proposing a ledger slot to learning it chosen, per slot.\n"
		 "# TYPE lockd_decree_commit_duration_seconds histogram\n");
	http_histo(buf, cap, &len, "lockd_decree_commit_duration_seconds", NULL,
		   &s->commit_latency);
	http_put(buf, cap, &len,
		 "# HELP lockd_disk_sync_duration_seconds Synced writes to the "
		 "data directory (RocksDB WAL write and fdatasync), as etcd's "
		 "disk_wal_fsync_duration_seconds.\n"
		 "# TYPE lockd_disk_sync_duration_seconds histogram\n");
	http_histo(buf, cap, &len, "lockd_disk_sync_duration_seconds", NULL,
		   &s->disk_sync);
#undef GAUGE
#undef COUNTER
	return len;
}

/* ---- the server ---------------------------------------------------------- */

struct ld_http {
	nng_http_server *srv;
	nng_url *url;
	nng_http_handler *health, *metrics;
	ld_metrics *m;
};

static void http_reply(nng_aio *aio, uint16_t status, const char *type,
		       const char *body, size_t len)
{
	nng_http_res *res = NULL;
	int rv = nng_http_res_alloc(&res);
	if (rv == 0)
		rv = nng_http_res_set_status(res, status);
	if (rv == 0)
		rv = nng_http_res_set_header(res, "Content-Type", type);
	if (rv == 0)
		rv = nng_http_res_copy_data(res, body, len);
	if (rv != 0) {
		if (res != NULL)
			nng_http_res_free(res);
		nng_aio_finish(aio, rv);
		return;
	}
	nng_aio_set_output(aio, 0, res);
	nng_aio_finish(aio, 0);
}

static ld_metrics *http_metrics_of(nng_aio *aio)
{
	nng_http_handler *h = nng_aio_get_input(aio, 1);
	return nng_http_handler_get_data(h);
}

static void http_health(nng_aio *aio)
{
	ld_metrics_snap s;
	ld_metrics_get(http_metrics_of(aio), &s);
	char buf[HEALTH_PAGE_BYTES_MAX];
	uint16_t status;
	size_t len = ld_metrics_health(&s, buf, sizeof buf, &status);
	http_reply(aio, status, "application/json", buf, len);
}

static void http_prometheus(nng_aio *aio)
{
	ld_metrics_snap *s = malloc(sizeof *s);
	char *buf = malloc(HTTP_PAGE_BYTES_MAX);
	if (s == NULL || buf == NULL) {
		free(s);
		free(buf);
		nng_aio_finish(aio, NNG_ENOMEM);
		return;
	}
	ld_metrics_get(http_metrics_of(aio), s);
	size_t len = ld_metrics_prometheus(s, buf, HTTP_PAGE_BYTES_MAX);
	http_reply(aio, 200, "text/plain; version=0.0.4", buf, len);
	free(buf);
	free(s);
}

static int http_handler(ld_http *h, const char *path, void (*fn)(nng_aio *),
			nng_http_handler **out)
{
	int rv = nng_http_handler_alloc(out, path, fn);
	if (rv != 0)
		return rv;
	if ((rv = nng_http_handler_set_data(*out, h->m, NULL)) != 0 ||
	    (rv = nng_http_server_add_handler(h->srv, *out)) != 0) {
		nng_http_handler_free(*out);
		*out = NULL;
	}
	return rv;
}

int ld_http_open(const char *url, ld_metrics *m, nng_tls_config *tls,
		 ld_http **out, char *err, size_t errlen)
{
	*out = NULL;
	if (strncmp(url, tls != NULL ? "https://" : "http://",
		    tls != NULL ? 8 : 7) != 0) {
		snprintf(err, errlen, "--http wants %s://HOST:PORT, not '%s'",
			 tls != NULL ? "https" : "http", url);
		return -1;
	}
	ld_http *h = calloc(1, sizeof *h);
	if (h == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	h->m = m;
	int rv = nng_url_parse(&h->url, url);
	const char *what = "parse";
	if (rv == 0 && (rv = nng_http_server_hold(&h->srv, h->url)) != 0)
		what = "make a server for";
	if (rv == 0 &&
	    ((rv = http_handler(h, "/health", http_health, &h->health)) != 0 ||
	     (rv = http_handler(h, "/metrics", http_prometheus, &h->metrics)) !=
		     0))
		what = "add handlers to";
	if (rv == 0 && tls != NULL &&
	    (rv = nng_http_server_set_tls(h->srv, tls)) != 0)
		what = "set TLS on";
	if (rv == 0 && (rv = nng_http_server_start(h->srv)) != 0)
		what = "listen on";
	if (rv != 0) {
		snprintf(err, errlen, "cannot %s %s: %s", what, url,
			 nng_strerror(rv));
		ld_http_close(h);
		return -1;
	}
	*out = h;
	return 0;
}

int ld_http_route(ld_http *h, const char *path, bool tree, const char *method,
		  void (*fn)(nng_aio *), void *data, size_t body_max)
{
	nng_http_handler *hd;
	int rv = nng_http_handler_alloc(&hd, path, fn);
	if (rv != 0)
		return rv;
	if ((rv = nng_http_handler_set_method(hd, method)) != 0 ||
	    (tree && (rv = nng_http_handler_set_tree(hd)) != 0) ||
	    (rv = nng_http_handler_collect_body(hd, true, body_max)) != 0 ||
	    (rv = nng_http_handler_set_data(hd, data, NULL)) != 0 ||
	    (rv = nng_http_server_add_handler(h->srv, hd)) != 0)
		nng_http_handler_free(hd);
	return rv;
}

void *ld_http_data(nng_aio *aio)
{
	return nng_http_handler_get_data(nng_aio_get_input(aio, 1));
}

void ld_http_close(ld_http *h)
{
	if (h == NULL)
		return;
	if (h->srv != NULL) {
		nng_http_server_stop(h->srv);
		/* The server frees the handlers it holds. */
		nng_http_server_release(h->srv);
	} else {
		nng_http_handler_free(h->health);
		nng_http_handler_free(h->metrics);
	}
	if (h->url != NULL)
		nng_url_free(h->url);
	free(h);
}
