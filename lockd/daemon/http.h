/* The replica's operator endpoint, on nng's HTTP server (lockd --http URL):
 *
 *   GET /health   200 {"health":true,...} while this replica knows a leader
 *                 (it is part of a cell that can serve) and can write to
 *                 its disk, else 503 with a reason; etcd's /health answers
 *                 the same shape.
 *   GET /metrics  Prometheus text (format 0.0.4): role, ballot, positions,
 *                 leases, waiters, sessions, request and peer counters, and
 *                 latency histograms (README, Metrics, lists every one).
 * and whatever else is routed to it (ld_http_route): the HTTP/JSON API and
 * the status page (http_api.h).
 *
 * The loop publishes a copy of its figures after each round (ld_metrics_set);
 * the HTTP threads only read that copy, under its mutex, so they never touch
 * the node. */
#ifndef LD_HTTP_H
#define LD_HTTP_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

/* A latency histogram as Prometheus has them: buckets by upper bound
 * (LD_HISTO_LE_US; the last, +Inf, takes the rest), the count and the sum.
 * The loop thread observes into its own copy (cheap: a scan of 16 bounds
 * and three adds) and publishes it with the rest of the snapshot; the page
 * prints the buckets cumulative, as Prometheus wants them. */
#define LD_HISTO_BUCKETS 16u
extern const uint64_t LD_HISTO_LE_US[LD_HISTO_BUCKETS];

typedef struct ld_histo {
	uint64_t bucket[LD_HISTO_BUCKETS + 1]; /* not cumulative; [16]: +Inf */
	uint64_t count;
	uint64_t sum_us;
} ld_histo;

/* Counts n observations of us microseconds each. */
void ld_histo_observe(ld_histo *h, uint64_t us, uint64_t n);

/* Client request operations, by the number of client.proto's Op minus 1
 * (OP_ACQUIRE = 1 is [0] ... OP_PROCLAIM = 12 is [11]); requests.c asserts
 * the numbering. */
#define LD_METRIC_OPS 12u
extern const char *const LD_METRIC_OP_NAMES[LD_METRIC_OPS];

typedef struct ld_metrics_snap {
	uint32_t id;
	uint32_t nreplicas; /* members of the applied configuration */
	uint32_t voters;    /* of which voting */
	bool voter;         /* this replica votes */
	bool member;        /* this replica is a member */
	const char *role;   /* a string literal */
	int32_t leader;     /* -1: none known */
	uint64_t ballot_round;
	uint32_t ballot_id;
	uint64_t commit, applied, snapshot_base, leases;
	uint64_t waiters, sessions; /* the lease table's, as applied here */
	uint64_t rounds;
	uint64_t client_requests, client_malformed, client_replies;
	uint64_t peer_sent, peer_dropped, peer_received, peer_refused;
	uint64_t grants, ends, renewals, revokes;
	uint64_t expire_decrees, tick_decrees;
	uint32_t requests_active, requests_waiting;
	uint64_t watch_feed_entries, watch_feed_lo;
	uint64_t started_unix_s;
	uint64_t leader_changes; /* times it learnt of a new leader */
	bool storage_stalled; /* a write failed and has not succeeded since */
	int digest_alarm;   /* px_digest_alarm: 0 ok, 1 mismatch, 2 diverged */
	bool fds_exhausted; /* near its file descriptor limit: serves nothing */
	uint64_t fds_open, fds_limit;
	uint64_t storage_stalls; /* times writes started failing */
	char storage_error[512]; /* why, while stalled */
	/* From a request's arrival to its reply leaving, by operation
	 * (waits included: an acquire's queue, a watch's long-poll). */
	ld_histo request[LD_METRIC_OPS];
	/* Leader: from the round that proposed a decree to the round that
	 * learnt it chosen, one observation per ledger slot. */
	ld_histo commit_latency;
	/* Synced writes to the data directory (RocksDB's WAL write and its
	 * fdatasync): what every promise, vote and decree waits for. */
	ld_histo disk_sync;
} ld_metrics_snap;

typedef struct ld_metrics {
	pthread_mutex_t mu;
	ld_metrics_snap s;
} ld_metrics;

void ld_metrics_init(ld_metrics *m);
void ld_metrics_destroy(ld_metrics *m);
void ld_metrics_set(ld_metrics *m, const ld_metrics_snap *s);
void ld_metrics_get(ld_metrics *m, ld_metrics_snap *out);

/* Renders the two pages into buf (NUL-terminated; cut at cap). Return the
 * length written. /health's status code goes to *status. */
size_t ld_metrics_health(const ld_metrics_snap *s, char *buf, size_t cap,
			 uint16_t *status);
size_t ld_metrics_prometheus(const ld_metrics_snap *s, char *buf, size_t cap);

typedef struct ld_http ld_http;

/* Serves /health and /metrics on url (http://HOST:PORT, or https:// with
 * tls, which the server then holds a reference to) from m (borrowed: it
 * must outlive the server). 0, or -1 with a sentence in err. */
int ld_http_open(const char *url, ld_metrics *m, nng_tls_config *tls,
		 ld_http **out, char *err, size_t errlen);

/* Adds a route to h's server: fn answers path (and, with tree, every path
 * under it) for method (NULL: every method), with a request body of up to
 * body_max bytes (nng refuses a larger one). fn reads data back with
 * ld_http_data. 0, or an nng error. */
int ld_http_route(ld_http *h, const char *path, bool tree, const char *method,
		  void (*fn)(nng_aio *), void *data, size_t body_max);
void *ld_http_data(nng_aio *aio);

/* Stops serving and frees h (NULL is fine). */
void ld_http_close(ld_http *h);

#endif
