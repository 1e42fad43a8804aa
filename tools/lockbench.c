/* lockbench: load generator for a lockd cell, through liblockclient. Its
 * modes mirror etcdload's (shared/peers), so lockd and etcd can be compared
 * with the same C, K and D on the same machine:
 *
 *   cycle     C workers loop acquire("bench/res-<random mod K>", TTL, long
 *             wait) then release; whole cycle and per step.  (etcdload lock)
 *   handoff   cycle on one name (K = 1): every worker queues for it, takes
 *             it and hands it on at once.          (etcdload lock -k 1)
 *   renew     hold N leases over C sessions, renew each session's leases
 *             when a third of the TTL remains, for D seconds; lease
 *             renewals/s, RENEW requests/s and latency, leases lost.
 *                                                 (etcdload keepalive)
 *   expiry-storm  hold N leases over C sessions as renew does, for D s,
 *             then every session vanishes at once (no release, no more
 *             renewals): time until the leader's table is empty (TTL +
 *             grace + how long expiring them takes), and the latency of
 *             another client's acquire+release cycles before and during
 *             the storm.
 *             Both take --connections K --threads T for more sessions
 *             than a process has threads (100,000 and more): the sessions
 *             share K connections (lc_open_shared) and T threads run them
 *             in turn.
 *   read      C workers loop GET("bench/read-<random mod K>") for D s at
 *             --consistency linearizable (default), read-your-writes or
 *             stale; the K names are held meanwhile by one more session.
 *                                        (etcd's Get, linearizable or not)
 *   failover  R rounds: kill -9 the leader of the tools/dev-cluster cell in
 *             DIR, then acquire every 10 ms (1 s per try) on the survivors;
 *             time from the kill to the first answered acquire; restart the
 *             cell and wait for it.                (etcdload failover)
 *
 * One lc_client (its own session and connections) per worker thread, like
 * etcdload's one gRPC connection per worker. Human lines first, then ONE
 * line of JSON. A benchmark, not a test: never run it under a timeout. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "lockclient.h"

#define WORKERS_MAX 4096u
#define SESSIONS_MAX 1000000u /* with --connections or --threads */
#define CONNECTIONS_MAX 256u
#define FAILOVER_TRIERS 100u      /* clients trying in turn, 10 ms apart */
#define FAILOVER_PERIOD_US 10000u /* a new try every 10 ms */
#define FAILOVER_TRY_MS 1000u     /* one try's timeout */
#define FAILOVER_GIVE_UP_US 30000000u
#define CELL_READY_US 60000000u

/* ---- options ------------------------------------------------------------- */

static struct {
	const char *endpoints;
	const char *mode;
	unsigned c, k, rounds;
	unsigned d_s;
	unsigned n;
	uint32_t ttl_ms, wait_ms;
	const char *dir;
	const char *cluster_script;
	const char *label;
	unsigned value_bytes; /* renew, expiry-storm: each lease's value */
	/* renew, expiry-storm: sessions share this many connections (0: each
	 * has its own), run by this many threads (0: one per session) */
	unsigned connections, threads;
	/* renew, expiry-storm: renew when this much of the TTL is left */
	unsigned renew_permille;
	/* renew, expiry-storm: a thread's due sessions renewed in one request
	 * (lc_renew_many; needs --connections) */
	bool batch_renewals;
	lc_consistency consistency; /* read */
} opt = {
	.renew_permille = LC_RENEW_REMAINING_PERMILLE,
	.c = 1,
	.k = 1000,
	.rounds = 5,
	.d_s = 10,
	.n = 100000,
	.ttl_ms = 10000,
	.wait_ms = 60000,
	.consistency = LC_LINEARIZABLE,
};

_Noreturn static void usage(int rc)
{
	fputs("usage: lockbench --endpoints URLS --mode MODE [-c C] [-k K] "
	      "[-d SECONDS]\n"
	      "                 [-n LEASES] [--ttl-ms T] [--wait-ms W] "
	      "[--dir DIR]\n"
	      "                 [--rounds R] [--cluster-script PATH] "
	      "[--label TEXT]\n"
	      "                 [--value-bytes B]  (renew, expiry-storm: "
	      "each lease holds a\n"
	      "                 value of B bytes, at most 1024)\n"
	      "                 [--connections K] [--threads T]  (renew, "
	      "expiry-storm: the C\n"
	      "                 sessions share K connections (default: one "
	      "each) and run on\n"
	      "                 T threads (default: one each); C may then "
	      "be up to 1000000)\n"
	      "                 [--renew-left-permille P]  (renew, "
	      "expiry-storm: renew when\n"
	      "                 P/1000 of the TTL is left; default 333, so "
	      "667 renews every\n"
	      "                 third of the TTL)\n"
	      "                 [--batch-renewals]  (renew, expiry-storm "
	      "with --connections:\n"
	      "                 a thread renews its due sessions in one "
	      "request, up to 256)\n"
	      "                 [--consistency linearizable|ryw|stale]  "
	      "(read; default\n"
	      "                 linearizable)\n"
	      "modes:\n"
	      "  cycle     C workers for D s: acquire bench/res-<random mod K> "
	      "(TTL T,\n"
	      "            wait W), release; the cycle and each step\n"
	      "  handoff   cycle on one name (K = 1): handoffs/s\n"
	      "  renew     acquire N leases over C sessions, then for D s "
	      "renew each\n"
	      "            session's leases when a third of T remains; "
	      "then release\n"
	      "  expiry-storm  hold N leases over C sessions for D s, then "
	      "every session\n"
	      "            vanishes: time until the leader's table is empty, "
	      "and another\n"
	      "            client's acquire+release latency before and during\n"
	      "  read      C workers for D s: GET bench/read-<random mod K>, "
	      "which one more\n"
	      "            session holds meanwhile\n"
	      "  failover  R rounds: kill -9 the leader of the "
	      "tools/dev-cluster "
	      "cell in\n"
	      "            DIR, acquire every 10 ms on the survivors, restart "
	      "the cell.\n"
	      "            URLS default to DIR/endpoints; the cell restarts "
	      "with\n"
	      "            --cluster-script (default $LOCKBENCH_DEV_CLUSTER, "
	      "else\n"
	      "            tools/dev-cluster)\n"
	      "defaults: -c 1 -k 1000 -d 10 -n 100000 --ttl-ms 10000 "
	      "--wait-ms 60000\n"
	      "          --rounds 5\n"
	      "Prints one line per step, then one line of JSON.\n",
	      rc == 0 ? stdout : stderr);
	exit(rc);
}

static unsigned parse_uint(const char *s, const char *what)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno != 0 || v > 0xffffffffUL) {
		fprintf(stderr, "lockbench: %s: '%s' is not a number\n", what,
			s);
		exit(2);
	}
	return (unsigned)v;
}

/* ---- time and samples ---------------------------------------------------- */

static void sleep_us(uint64_t us)
{
	struct timespec ts = {(time_t)(us / 1000000u),
			      (long)(us % 1000000u) * 1000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static void sleep_until_us(uint64_t at_us)
{
	uint64_t now = lc_now_us();
	if (at_us > now)
		sleep_us(at_us - now);
}

/* Latencies in µs, every one kept. */
typedef struct samples {
	uint64_t *v;
	size_t n, cap;
} samples;

static void samples_add(samples *s, uint64_t us)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 1024;
		uint64_t *v = realloc(s->v, cap * sizeof *v);
		if (v == NULL) {
			fputs("lockbench: out of memory for samples\n", stderr);
			exit(1);
		}
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = us;
}

static void samples_merge(samples *into, const samples *from)
{
	for (size_t i = 0; i < from->n; i++)
		samples_add(into, from->v[i]);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

typedef struct pcts {
	size_t n;
	double p50, p90, p99, max; /* ms */
} pcts;

static double pct_ms(const samples *s, double p)
{
	if (s->n == 0)
		return 0;
	size_t i = (size_t)((double)s->n * p);
	if (i >= s->n)
		i = s->n - 1;
	return (double)s->v[i] / 1000.0;
}

static pcts summarize(samples *s)
{
	qsort(s->v, s->n, sizeof *s->v, cmp_u64);
	pcts p = {s->n, pct_ms(s, .50), pct_ms(s, .90), pct_ms(s, .99), 0};
	if (s->n > 0)
		p.max = (double)s->v[s->n - 1] / 1000.0;
	return p;
}

static void print_line(const char *step, const pcts *p, double secs,
		       uint64_t errors)
{
	char k[16] = "";
	if (strcmp(opt.mode, "cycle") == 0 || strcmp(opt.mode, "handoff") == 0)
		snprintf(k, sizeof k, "k=%u", opt.k);
	printf("%-9s %-8s c=%-4u %-8s n=%-8zu err=%-5" PRIu64
	       " %9.1f ops/s  p50=%8.2fms p90=%8.2fms p99=%8.2fms "
	       "max=%8.2fms\n",
	       opt.mode, step, opt.c, k, p->n, errors,
	       secs > 0 ? (double)p->n / secs : 0.0, p->p50, p->p90, p->p99,
	       p->max);
}

/* Appends ,"key":{"n":..,"ops_per_s":..,"p50_ms":..} to a JSON buffer. */
static void json_step(char *buf, size_t cap, const char *key, const pcts *p,
		      double secs)
{
	size_t len = strlen(buf);
	snprintf(buf + len, cap - len,
		 ",\"%s\":{\"n\":%zu,\"ops_per_s\":%.1f,\"p50_ms\":%.3f,"
		 "\"p90_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f}",
		 key, p->n, secs > 0 ? (double)p->n / secs : 0.0, p->p50,
		 p->p90, p->p99, p->max);
}

static void json_label(char *buf, size_t cap)
{
	if (opt.label == NULL)
		return;
	size_t len = strlen(buf);
	snprintf(buf + len, cap - len, ",\"label\":\"");
	len = strlen(buf);
	for (const char *p = opt.label; *p && len + 8 < cap; p++) {
		if (*p == '"' || *p == '\\')
			buf[len++] = '\\';
		if ((unsigned char)*p >= 0x20)
			buf[len++] = *p;
	}
	buf[len] = '\0';
	snprintf(buf + len, cap - len, "\"");
}

/* ---- clients ------------------------------------------------------------- */

static lc_options client_options(uint32_t try_ms, uint32_t call_ms)
{
	lc_options o;
	lc_options_init(&o);
	o.attempt_timeout_ms = try_ms;
	o.call_timeout_ms = call_ms;
	return o;
}

/* A session of its own over base's connections. */
static lc_client *open_shared(lc_client *base, uint32_t try_ms,
			      uint32_t call_ms)
{
	lc_options o = client_options(try_ms, call_ms);
	lc_client *c;
	if (lc_open_shared(base, &o, &c) != LC_OK) {
		fprintf(stderr, "lockbench: cannot open a shared client: %s\n",
			lc_last_error());
		exit(1);
	}
	return c;
}

static lc_client *open_with(const char *endpoints, const lc_options *o)
{
	lc_client *c;
	int rv = lc_open(endpoints, o, &c);
	if (rv != LC_OK) {
		fprintf(stderr, "lockbench: cannot open a client of %s: %s\n",
			endpoints, lc_last_error());
		exit(1);
	}
	return c;
}

static lc_client *open_client(const char *endpoints, uint32_t try_ms,
			      uint32_t call_ms)
{
	lc_options o = client_options(try_ms, call_ms);
	return open_with(endpoints, &o);
}

/* First error of a kind, kept for the report (one per worker). */
typedef struct first_error {
	int code;
	char text[LC_ERROR_BYTES_MAX];
} first_error;

static void note_error(first_error *e, int code)
{
	if (e->code != 0)
		return;
	e->code = code;
	snprintf(e->text, sizeof e->text, "%s", lc_last_error());
}

static void print_errors(const char *what, uint64_t n, const first_error *e)
{
	if (n > 0)
		fprintf(stderr, "%s: %" PRIu64 " errors; first: %s (%s)\n",
			what, n, lc_strerror(e->code), e->text);
}

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* ---- cycle and handoff --------------------------------------------------- */

typedef struct cycle_worker {
	pthread_t thread;
	unsigned id;
	lc_client *c;
	uint64_t deadline_us;
	samples total, acq, rel;
	uint64_t errors;
	first_error err;
} cycle_worker;

static void *cycle_run(void *arg)
{
	cycle_worker *w = arg;
	uint64_t rnd = lc_session(w->c) | 1;
	char name[64];
	while (lc_now_us() < w->deadline_us) {
		unsigned r = (unsigned)(xorshift(&rnd) % opt.k);
		snprintf(name, sizeof name, "bench/res-%u", r);
		lc_lease l;
		uint64_t t0 = lc_now_us();
		int rv = lc_acquire(w->c, name, opt.ttl_ms, opt.wait_ms, NULL,
				    0, &l);
		uint64_t t1 = lc_now_us();
		if (rv != LC_OK) {
			w->errors++;
			note_error(&w->err, rv);
			continue;
		}
		rv = lc_release(w->c, name, l.token);
		uint64_t t2 = lc_now_us();
		if (rv != LC_OK) {
			w->errors++;
			note_error(&w->err, rv);
			continue;
		}
		samples_add(&w->total, t2 - t0);
		samples_add(&w->acq, t1 - t0);
		samples_add(&w->rel, t2 - t1);
	}
	return NULL;
}

static int run_cycle(bool handoff)
{
	if (handoff)
		opt.k = 1;
	if (opt.k == 0) {
		fputs("lockbench: -k must be at least 1\n", stderr);
		return 2;
	}
	cycle_worker *ws = calloc(opt.c, sizeof *ws);
	if (ws == NULL)
		return 1;
	for (unsigned i = 0; i < opt.c; i++) {
		ws[i].id = i;
		ws[i].c = open_client(opt.endpoints, 2000, 30000);
	}
	uint64_t start = lc_now_us();
	uint64_t deadline = start + (uint64_t)opt.d_s * 1000000u;
	for (unsigned i = 0; i < opt.c; i++) {
		ws[i].deadline_us = deadline;
		if (pthread_create(&ws[i].thread, NULL, cycle_run, &ws[i]) !=
		    0) {
			fputs("lockbench: cannot start a thread\n", stderr);
			return 1;
		}
	}
	samples total = {0}, acq = {0}, rel = {0};
	uint64_t errors = 0;
	first_error err = {0};
	for (unsigned i = 0; i < opt.c; i++) {
		pthread_join(ws[i].thread, NULL);
		samples_merge(&total, &ws[i].total);
		samples_merge(&acq, &ws[i].acq);
		samples_merge(&rel, &ws[i].rel);
		errors += ws[i].errors;
		if (err.code == 0 && ws[i].err.code != 0)
			err = ws[i].err;
	}
	double secs = (double)(lc_now_us() - start) / 1e6;
	for (unsigned i = 0; i < opt.c; i++) {
		lc_close(ws[i].c);
		free(ws[i].total.v);
		free(ws[i].acq.v);
		free(ws[i].rel.v);
	}
	free(ws);
	pcts pt = summarize(&total), pa = summarize(&acq), pr = summarize(&rel);
	print_line(handoff ? "handoff" : "cycle", &pt, secs, errors);
	print_line("acquire", &pa, secs, 0);
	print_line("release", &pr, secs, 0);
	print_errors(opt.mode, errors, &err);
	char json[2048];
	snprintf(json, sizeof json,
		 "{\"mode\":\"%s\",\"c\":%u,\"k\":%u,\"ttl_ms\":%u,"
		 "\"secs\":%.3f,\"n\":%zu,\"errors\":%" PRIu64
		 ",\"ops_per_s\":%.1f,\"p50_ms\":%.3f,\"p90_ms\":%.3f,"
		 "\"p99_ms\":%.3f,\"max_ms\":%.3f",
		 opt.mode, opt.c, opt.k, opt.ttl_ms, secs, pt.n, errors,
		 secs > 0 ? (double)pt.n / secs : 0.0, pt.p50, pt.p90, pt.p99,
		 pt.max);
	json_label(json, sizeof json);
	json_step(json, sizeof json, "acquire", &pa, secs);
	json_step(json, sizeof json, "release", &pr, secs);
	printf("%s}\n", json);
	free(total.v);
	free(acq.v);
	free(rel.v);
	return errors == 0 ? 0 : 1;
}

/* ---- read ---------------------------------------------------------------- */

typedef struct read_worker {
	pthread_t thread;
	lc_client *c;
	uint64_t deadline_us;
	samples lat;
	uint64_t errors;
	first_error err;
} read_worker;

static void *read_run(void *arg)
{
	read_worker *w = arg;
	uint64_t rnd = lc_session(w->c) | 1;
	char name[64];
	lc_lease_info info;
	while (lc_now_us() < w->deadline_us) {
		unsigned r = (unsigned)(xorshift(&rnd) % opt.k);
		snprintf(name, sizeof name, "bench/read-%u", r);
		uint64_t t0 = lc_now_us();
		int rv = lc_get(w->c, name, &info);
		uint64_t t1 = lc_now_us();
		if (rv != LC_OK) {
			w->errors++;
			note_error(&w->err, rv);
			continue;
		}
		samples_add(&w->lat, t1 - t0);
	}
	return NULL;
}

static const char *consistency_name(lc_consistency c)
{
	return c == LC_LINEARIZABLE       ? "linearizable"
	       : c == LC_READ_YOUR_WRITES ? "ryw"
					  : "stale";
}

/* The K names are held by one session, renewed at a third of the TTL left
 * while C workers read them. */
static int run_read(void)
{
	if (opt.k == 0) {
		fputs("lockbench: -k must be at least 1\n", stderr);
		return 2;
	}
	lc_client *holder = open_client(opt.endpoints, 2000, 30000);
	char name[64];
	uint64_t *tokens = calloc(opt.k, sizeof *tokens);
	if (tokens == NULL)
		return 1;
	for (unsigned i = 0; i < opt.k; i++) {
		snprintf(name, sizeof name, "bench/read-%u", i);
		lc_lease l;
		int rv = lc_acquire(holder, name, opt.ttl_ms, 0, "v", 1, &l);
		if (rv != LC_OK) {
			fprintf(stderr, "lockbench: cannot hold %s: %s\n", name,
				lc_last_error());
			return 1;
		}
		tokens[i] = l.token;
	}
	read_worker *ws = calloc(opt.c, sizeof *ws);
	if (ws == NULL)
		return 1;
	lc_options o = client_options(2000, 30000);
	o.read_consistency = opt.consistency;
	for (unsigned i = 0; i < opt.c; i++)
		ws[i].c = open_with(opt.endpoints, &o);
	uint64_t start = lc_now_us();
	uint64_t deadline = start + (uint64_t)opt.d_s * 1000000u;
	for (unsigned i = 0; i < opt.c; i++) {
		ws[i].deadline_us = deadline;
		if (pthread_create(&ws[i].thread, NULL, read_run, &ws[i]) !=
		    0) {
			fputs("lockbench: cannot start a thread\n", stderr);
			return 1;
		}
	}
	uint64_t renew_errors = 0;
	lc_renewal *rn = malloc(sizeof *rn);
	if (rn == NULL)
		return 1;
	uint64_t period_us = (uint64_t)opt.ttl_ms * 667u; /* 2/3 of the TTL */
	for (uint64_t next = start + period_us; lc_now_us() < deadline;
	     next += period_us) {
		sleep_until_us(next < deadline ? next : deadline);
		if (lc_now_us() < deadline && lc_renew(holder, rn) != LC_OK)
			renew_errors++;
	}
	free(rn);
	samples lat = {0};
	uint64_t errors = 0;
	first_error err = {0};
	for (unsigned i = 0; i < opt.c; i++) {
		pthread_join(ws[i].thread, NULL);
		samples_merge(&lat, &ws[i].lat);
		errors += ws[i].errors;
		if (err.code == 0 && ws[i].err.code != 0)
			err = ws[i].err;
		lc_close(ws[i].c);
		free(ws[i].lat.v);
	}
	double secs = (double)(lc_now_us() - start) / 1e6;
	free(ws);
	for (unsigned i = 0; i < opt.k; i++) {
		snprintf(name, sizeof name, "bench/read-%u", i);
		(void)lc_release(holder, name, tokens[i]);
	}
	free(tokens);
	lc_close(holder);
	pcts p = summarize(&lat);
	print_line("read", &p, secs, errors);
	print_errors(opt.mode, errors, &err);
	if (renew_errors > 0)
		fprintf(stderr,
			"read: %" PRIu64 " renewals of the held names "
			"failed\n",
			renew_errors);
	char json[1024];
	snprintf(json, sizeof json,
		 "{\"mode\":\"read\",\"consistency\":\"%s\",\"c\":%u,"
		 "\"k\":%u,\"secs\":%.3f,\"n\":%zu,\"errors\":%" PRIu64
		 ",\"ops_per_s\":%.1f,\"p50_ms\":%.3f,\"p90_ms\":%.3f,"
		 "\"p99_ms\":%.3f,\"max_ms\":%.3f",
		 consistency_name(opt.consistency), opt.c, opt.k, secs, p.n,
		 errors, secs > 0 ? (double)p.n / secs : 0.0, p.p50, p.p90,
		 p.p99, p.max);
	json_label(json, sizeof json);
	printf("%s}\n", json);
	free(lat.v);
	return errors == 0 && renew_errors == 0 ? 0 : 1;
}

/* ---- renew --------------------------------------------------------------- */

enum { PH_ACQUIRE, PH_MEASURE, PH_CLEANUP, PH_VANISH };
static _Atomic int renew_phase = PH_ACQUIRE;
static atomic_uint renew_acquired_workers;
/* --batch-renewals: requests sent in the measured window */
static atomic_ullong renew_wire_requests;

/* One session: its client, its leases and its counts. */
typedef struct renew_worker {
	unsigned id;
	lc_client *c;
	unsigned target;
	lc_lease *leases;
	unsigned held;
	lc_renewal *r;
	uint64_t renew_at_us;
	samples acq_lat, renew_lat, rel_lat;
	/* measured window only */
	uint64_t renew_reqs, renewed;
	/* whole run */
	uint64_t lost, expired, errors, released;
	uint64_t acquire_done_us;
	first_error err;
} renew_worker;

/* Renews w's leases if they are due. A lease missing from the answer is
 * lost; a lease whose believed deadline passed before the answer came is
 * counted as expired (the client could no longer act on it). */
static void renew_answered(renew_worker *w, const lc_renewal *r, int rv,
			   uint64_t now, uint64_t t1);

static void renew_if_due(renew_worker *w)
{
	uint64_t now = lc_now_us();
	if (w->held == 0 || now < w->renew_at_us)
		return;
	int rv = lc_renew(w->c, w->r);
	renew_answered(w, w->r, rv, now, lc_now_us());
}

/* What a renewal sent at now and answered (rv) at t1 did to w's leases. */
static void renew_answered(renew_worker *w, const lc_renewal *r, int rv,
			   uint64_t now, uint64_t t1)
{
	if (rv != LC_OK) {
		w->errors++;
		note_error(&w->err, rv);
		w->renew_at_us = t1 + 100000u; /* try again soon */
		return;
	}
	for (unsigned i = 0; i < w->held; i++) {
		lc_lease *l = &w->leases[i];
		if (l->token != 0 && !lc_lease_valid(t1, l->deadline_us))
			w->expired++;
	}
	lc_renewal_apply(w->c, r, w->leases, w->held);
	for (unsigned i = 0; i < w->held; i++) {
		lc_lease *l = &w->leases[i];
		if (l->token != 0 && l->sent_us != r->sent_us) {
			w->lost++;
			l->token = 0;
		}
	}
	if (atomic_load(&renew_phase) == PH_MEASURE) {
		w->renew_reqs++;
		w->renewed += r->ntokens;
		samples_add(&w->renew_lat, t1 - now);
	}
	w->renew_at_us = lc_lease_renew_at_us(r->sent_us, opt.ttl_ms, 1000,
					      opt.renew_permille);
}

/* --value-bytes: what every lease holds. */
static uint8_t bench_value[1024];

/* A thread that runs sessions ws[0 .. n) in turn: one thread per session
 * by default, or --threads of them over many sessions each. */
typedef struct renew_thread {
	pthread_t thread;
	renew_worker *ws;
	unsigned n;
	lc_renewal *outs; /* --batch-renewals: LC_RENEW_SESSIONS_MAX */
} renew_thread;

/* --batch-renewals: the due sessions of t renewed with one request per
 * LC_RENEW_SESSIONS_MAX of them (lc_renew_many). As a proxy would, it
 * takes along the sessions due within the next twentieth of the TTL, so
 * that a request carries many. */
static void renew_batch_due(renew_thread *t)
{
	lc_client *cs[LC_RENEW_SESSIONS_MAX];
	renew_worker *due[LC_RENEW_SESSIONS_MAX];
	int codes[LC_RENEW_SESSIONS_MAX];
	uint64_t now = lc_now_us() + (uint64_t)opt.ttl_ms * 1000u / 20u;
	for (unsigned i = 0; i < t->n;) {
		size_t n = 0;
		for (; i < t->n && n < LC_RENEW_SESSIONS_MAX; i++) {
			renew_worker *w = &t->ws[i];
			if (w->held > 0 && now >= w->renew_at_us) {
				due[n] = w;
				cs[n++] = w->c;
			}
		}
		if (n == 0)
			continue;
		uint64_t t0 = lc_now_us();
		lc_renew_many(cs, n, t->outs, codes);
		if (atomic_load(&renew_phase) == PH_MEASURE)
			atomic_fetch_add(&renew_wire_requests, 1);
		uint64_t t1 = lc_now_us();
		for (size_t k = 0; k < n; k++)
			renew_answered(due[k], &t->outs[k], codes[k], t0, t1);
	}
}

static void renew_all_due(renew_thread *t)
{
	if (opt.batch_renewals) {
		renew_batch_due(t);
		return;
	}
	for (unsigned i = 0; i < t->n; i++)
		renew_if_due(&t->ws[i]);
}

static void *renew_run(void *arg)
{
	renew_thread *t = arg;
	char name[96];
	for (unsigned s = 0; s < t->n; s++)
		t->ws[s].renew_at_us = UINT64_MAX;
	for (unsigned s = 0; s < t->n; s++) {
		renew_worker *w = &t->ws[s];
		for (unsigned i = 0; i < w->target; i++) {
			renew_all_due(t);
			snprintf(name, sizeof name, "bench/renew-%ld-%u-%u",
				 (long)getpid(), w->id, i);
			lc_lease *l = &w->leases[w->held];
			uint64_t t0 = lc_now_us();
			int rv = lc_acquire(w->c, name, opt.ttl_ms, 0,
					    bench_value, opt.value_bytes, l);
			if (rv != LC_OK) {
				w->errors++;
				note_error(&w->err, rv);
				continue;
			}
			samples_add(&w->acq_lat, lc_now_us() - t0);
			w->held++;
			uint64_t at =
				lc_lease_renew_at_us(l->sent_us, opt.ttl_ms,
						     1000, opt.renew_permille);
			if (at < w->renew_at_us)
				w->renew_at_us = at;
		}
		w->acquire_done_us = lc_now_us();
		atomic_fetch_add(&renew_acquired_workers, 1);
	}
	while (atomic_load(&renew_phase) < PH_CLEANUP) {
		uint64_t now = lc_now_us(), due = UINT64_MAX;
		for (unsigned s = 0; s < t->n; s++)
			if (t->ws[s].held > 0 && t->ws[s].renew_at_us < due)
				due = t->ws[s].renew_at_us;
		if (now < due) {
			uint64_t gap = due - now;
			sleep_us(gap < 20000 ? gap : 20000);
			continue;
		}
		renew_all_due(t);
	}
	/* Hand every lease back (renewing the rest while it takes), unless
	 * the sessions are to vanish. */
	for (unsigned s = 0; s < t->n; s++) {
		renew_worker *w = &t->ws[s];
		for (unsigned i = 0;
		     i < w->held && atomic_load(&renew_phase) == PH_CLEANUP;
		     i++) {
			renew_all_due(t);
			lc_lease *l = &w->leases[i];
			if (l->token == 0)
				continue;
			uint64_t t0 = lc_now_us();
			int rv = lc_release(w->c, l->name, l->token);
			if (rv != LC_OK) {
				w->errors++;
				note_error(&w->err, rv);
				continue;
			}
			samples_add(&w->rel_lat, lc_now_us() - t0);
			l->token = 0;
			w->released++;
		}
	}
	return NULL;
}

/* The threads and the shared connections (--connections) of a run. */
static renew_thread *renew_threads;
static unsigned renew_nthreads;
static lc_client **renew_bases;

/* Waits for the threads, closes every session's client, then the shared
 * connections. */
static void renew_join(renew_worker *ws)
{
	for (unsigned i = 0; i < renew_nthreads; i++) {
		pthread_join(renew_threads[i].thread, NULL);
		free(renew_threads[i].outs);
	}
	for (unsigned i = 0; i < opt.c; i++)
		lc_close(ws[i].c);
	for (unsigned i = 0; i < opt.connections; i++)
		lc_close(renew_bases[i]);
	free(renew_threads);
	free(renew_bases);
}

/* Starts C sessions that acquire N leases between them and renew them,
 * and waits until every one has acquired its share. NULL on a usage error
 * (said) or when out of memory. */
static renew_worker *renew_start(uint64_t *held, double *acq_secs)
{
	memset(bench_value, 'v', sizeof bench_value);
	if (opt.c == 0 || opt.n == 0) {
		fprintf(stderr, "lockbench: %s wants -c and -n above 0\n",
			opt.mode);
		return NULL;
	}
	if ((opt.n + opt.c - 1) / opt.c > LC_SESSION_LEASES_MAX) {
		fprintf(stderr,
			"lockbench: %u leases over %u sessions is more than "
			"%u per session: raise -c to at least %u\n",
			opt.n, opt.c, LC_SESSION_LEASES_MAX,
			(opt.n + LC_SESSION_LEASES_MAX - 1) /
				LC_SESSION_LEASES_MAX);
		return NULL;
	}
	renew_worker *ws = calloc(opt.c, sizeof *ws);
	renew_nthreads = opt.threads ? opt.threads : opt.c;
	if (renew_nthreads > opt.c)
		renew_nthreads = opt.c;
	renew_threads = calloc(renew_nthreads, sizeof *renew_threads);
	renew_bases = calloc(opt.connections + 1, sizeof *renew_bases);
	if (ws == NULL || renew_threads == NULL || renew_bases == NULL)
		return NULL;
	for (unsigned i = 0; i < opt.connections; i++)
		renew_bases[i] = open_client(opt.endpoints, 2000, 30000);
	for (unsigned i = 0; i < opt.c; i++) {
		renew_worker *w = &ws[i];
		w->id = i;
		w->target = opt.n / opt.c + (i < opt.n % opt.c ? 1 : 0);
		w->leases =
			calloc(w->target ? w->target : 1, sizeof *w->leases);
		w->r = malloc(sizeof *w->r);
		if (w->leases == NULL || w->r == NULL)
			return NULL;
	}
	/* A thread's sessions share one connection (thread i's is i mod
	 * --connections), so that --batch-renewals can send them in one
	 * request. */
	for (unsigned i = 0, first = 0; i < renew_nthreads; i++) {
		renew_thread *t = &renew_threads[i];
		t->n = opt.c / renew_nthreads +
		       (i < opt.c % renew_nthreads ? 1 : 0);
		t->ws = &ws[first];
		first += t->n;
		for (unsigned k = 0; k < t->n; k++)
			t->ws[k].c =
				opt.connections == 0
					? open_client(opt.endpoints, 2000,
						      30000)
					: open_shared(
						  renew_bases[i %
							      opt.connections],
						  2000, 30000);
	}
	uint64_t start = lc_now_us();
	for (unsigned i = 0; i < renew_nthreads; i++) {
		renew_thread *t = &renew_threads[i];
		if (opt.batch_renewals &&
		    (t->outs = calloc(LC_RENEW_SESSIONS_MAX,
				      sizeof *t->outs)) == NULL)
			return NULL;
		if (pthread_create(&t->thread, NULL, renew_run, t) != 0) {
			fputs("lockbench: cannot start a thread\n", stderr);
			exit(1);
		}
	}
	while (atomic_load(&renew_acquired_workers) < opt.c)
		sleep_us(10000);
	*acq_secs = (double)(lc_now_us() - start) / 1e6;
	*held = 0;
	for (unsigned i = 0; i < opt.c; i++)
		*held += ws[i].held;
	printf("%-9s acquired %" PRIu64 "/%u leases over %u sessions in "
	       "%.1f s (%.0f/s); %u threads, %u shared connections (0: one "
	       "per session)\n",
	       opt.mode, *held, opt.n, opt.c, *acq_secs,
	       *acq_secs > 0 ? (double)*held / *acq_secs : 0.0, renew_nthreads,
	       opt.connections);
	fflush(stdout);
	return ws;
}

static int run_renew(void)
{
	uint64_t held;
	double acq_secs;
	renew_worker *ws = renew_start(&held, &acq_secs);
	if (ws == NULL)
		return 2;

	atomic_store(&renew_phase, PH_MEASURE);
	uint64_t m0 = lc_now_us();
	sleep_until_us(m0 + (uint64_t)opt.d_s * 1000000u);
	atomic_store(&renew_phase, PH_CLEANUP);
	double secs = (double)(lc_now_us() - m0) / 1e6;
	uint64_t c0 = lc_now_us();

	samples acq = {0}, ren = {0}, rel = {0};
	uint64_t reqs = 0, renewed = 0, lost = 0, expired = 0, errors = 0,
		 released = 0;
	first_error err = {0};
	renew_join(ws);
	for (unsigned i = 0; i < opt.c; i++) {
		renew_worker *w = &ws[i];
		samples_merge(&acq, &w->acq_lat);
		samples_merge(&ren, &w->renew_lat);
		samples_merge(&rel, &w->rel_lat);
		reqs += w->renew_reqs;
		renewed += w->renewed;
		lost += w->lost;
		expired += w->expired;
		errors += w->errors;
		released += w->released;
		if (err.code == 0 && w->err.code != 0)
			err = w->err;
		free(w->leases);
		free(w->r);
		free(w->acq_lat.v);
		free(w->renew_lat.v);
		free(w->rel_lat.v);
	}
	double rel_secs = (double)(lc_now_us() - c0) / 1e6;
	free(ws);
	pcts pa = summarize(&acq), pr = summarize(&ren), pl = summarize(&rel);
	/* Each lease is renewed once per TTL minus the third left. */
	double period_s =
		(double)opt.ttl_ms * (1000.0 - opt.renew_permille) / 1e6;
	double expected = period_s > 0 ? (double)held / period_s : 0;
	double lease_rate = secs > 0 ? (double)renewed / secs : 0;
	double req_rate = secs > 0 ? (double)reqs / secs : 0;
	print_line("acquire", &pa, acq_secs, 0);
	print_line("renew", &pr, secs, 0);
	print_line("release", &pl, rel_secs, 0);
	printf("renew     n=%" PRIu64 " ttl=%ums c=%u steady=%.0fs  lease "
	       "renewals %.0f/s (expected ~%.0f/s)  RENEW requests %.1f/s  "
	       "p50=%.2fms p99=%.2fms  lost=%" PRIu64 " expired=%" PRIu64
	       " released=%" PRIu64 " errors=%" PRIu64 "\n",
	       held, opt.ttl_ms, opt.c, secs, lease_rate, expected, req_rate,
	       pr.p50, pr.p99, lost, expired, released, errors);
	print_errors("renew", errors, &err);
	char json[2048];
	snprintf(json, sizeof json,
		 "{\"mode\":\"renew\",\"c\":%u,\"n\":%" PRIu64
		 ",\"ttl_ms\":%u,\"secs\":%.3f,\"ops_per_s\":%.1f,"
		 "\"lease_renewals_per_s\":%.1f,\"expected_per_s\":%.1f,"
		 "\"renew_requests_per_s\":%.2f,\"p50_ms\":%.3f,"
		 "\"p90_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,"
		 "\"lost\":%" PRIu64 ",\"expired\":%" PRIu64
		 ",\"errors\":%" PRIu64 ",\"acquire_secs\":%.3f,"
		 "\"connections\":%u,\"threads\":%u,"
		 "\"renew_left_permille\":%u,\"batch_renewals\":%s,"
		 "\"wire_requests_per_s\":%.2f",
		 opt.c, held, opt.ttl_ms, secs, lease_rate, lease_rate,
		 expected, req_rate, pr.p50, pr.p90, pr.p99, pr.max, lost,
		 expired, errors, acq_secs, opt.connections, renew_nthreads,
		 opt.renew_permille, opt.batch_renewals ? "true" : "false",
		 opt.batch_renewals && secs > 0
			 ? (double)atomic_load(&renew_wire_requests) / secs
			 : req_rate);
	json_label(json, sizeof json);
	json_step(json, sizeof json, "acquire", &pa, acq_secs);
	json_step(json, sizeof json, "release", &pl, rel_secs);
	printf("%s}\n", json);
	free(acq.v);
	free(ren.v);
	free(rel.v);
	return lost == 0 && expired == 0 && errors == 0 ? 0 : 1;
}

/* ---- expiry-storm -------------------------------------------------------- */

/* Another client's acquire+release cycles on names of its own, timed while
 * the leases are held and then while they expire (0: hold, 1: storm, 2:
 * stop). A probe, not a load: at most a hundred cycles a second. */
static _Atomic int storm_phase;

typedef struct storm_probe {
	pthread_t thread;
	lc_client *c;
	samples before, during;
	uint64_t errors;
	first_error err;
} storm_probe;

static void *storm_probe_run(void *arg)
{
	storm_probe *p = arg;
	char name[96];
	for (unsigned i = 0; atomic_load(&storm_phase) < 2; i++) {
		snprintf(name, sizeof name, "bench/storm-probe-%ld-%u",
			 (long)getpid(), i % 16);
		lc_lease l;
		int phase = atomic_load(&storm_phase);
		uint64_t t0 = lc_now_us();
		int rv = lc_acquire(p->c, name, 10000, 0, NULL, 0, &l);
		if (rv == LC_OK)
			rv = lc_release(p->c, name, l.token);
		uint64_t dt = lc_now_us() - t0;
		if (rv != LC_OK) {
			p->errors++;
			note_error(&p->err, rv);
		} else {
			samples_add(phase == 0 ? &p->before : &p->during, dt);
		}
		sleep_us(10000);
	}
	return NULL;
}

/* The leader's lease count and commit; false when no replica says it
 * leads. */
static bool storm_leader_view(lc_client *c, uint64_t *leases, uint64_t *commit)
{
	for (uint32_t i = 0; i < lc_endpoint_count(c); i++) {
		lc_replica_status st;
		if (lc_status(c, i, &st) == LC_OK &&
		    strcmp(st.role, "leader") == 0) {
			*leases = st.leases;
			*commit = st.commit;
			return true;
		}
	}
	return false;
}

static int run_storm(void)
{
	uint64_t held;
	double acq_secs;
	renew_worker *ws = renew_start(&held, &acq_secs);
	if (ws == NULL)
		return 2;
	storm_probe probe = {0};
	probe.c = open_client(opt.endpoints, 2000, 30000);
	lc_client *view = open_client(opt.endpoints, 1000, 5000);
	if (pthread_create(&probe.thread, NULL, storm_probe_run, &probe) != 0) {
		fputs("lockbench: cannot start a thread\n", stderr);
		return 1;
	}
	atomic_store(&renew_phase, PH_MEASURE);
	sleep_until_us(lc_now_us() + (uint64_t)opt.d_s * 1000000u);

	/* Every session vanishes at once: no release, no more renewals. */
	atomic_store(&renew_phase, PH_VANISH);
	atomic_store(&storm_phase, 1);
	uint64_t v = lc_now_us();
	uint64_t lost = 0, expired = 0, errors = 0;
	renew_join(ws);
	for (unsigned i = 0; i < opt.c; i++) {
		renew_worker *w = &ws[i];
		lost += w->lost;
		expired += w->expired;
		errors += w->errors;
		free(w->leases);
		free(w->r);
		free(w->acq_lat.v);
		free(w->renew_lat.v);
		free(w->rel_lat.v);
	}
	free(ws);
	printf("%-9s %" PRIu64 " sessions vanished; waiting for their %" PRIu64
	       " leases to be freed (TTL %u ms + grace)\n",
	       opt.mode, (uint64_t)opt.c, held, opt.ttl_ms);
	fflush(stdout);
	uint64_t leases = held, commit0 = 0, commit = 0, first = 0, done = 0;
	bool have0 = false;
	uint64_t give_up = v + 3ull * opt.ttl_ms * 1000u + 120000000u;
	while (lc_now_us() < give_up) {
		uint64_t l, c;
		if (storm_leader_view(view, &l, &c)) {
			if (!have0) {
				commit0 = c;
				have0 = true;
			}
			leases = l;
			commit = c;
			if (first == 0 && l + 1 < held)
				first = lc_now_us();
			if (l <= 1) { /* the probe's own, at most */
				done = lc_now_us();
				break;
			}
		}
		sleep_us(100000);
	}
	atomic_store(&storm_phase, 2);
	pthread_join(probe.thread, NULL);
	lc_close(probe.c);
	lc_close(view);
	pcts pb = summarize(&probe.before), pd = summarize(&probe.during);
	double freed_s = done ? (double)(done - v) / 1e6 : -1.0;
	double first_s = first ? (double)(first - v) / 1e6 : -1.0;
	double storm_s = done && first ? (double)(done - first) / 1e6 : -1.0;
	printf("%-9s n=%" PRIu64 " ttl=%ums: first freed after %.2f s, all "
	       "after %.2f s (%.2f s of expiring, %" PRIu64
	       " decrees); left %" PRIu64 "\n",
	       opt.mode, held, opt.ttl_ms, first_s, freed_s, storm_s,
	       commit - commit0, done ? 0 : leases);
	print_line("probe-hold", &pb, 0, 0);
	print_line("probe-storm", &pd, 0, probe.errors);
	print_errors("probe", probe.errors, &probe.err);
	char json[2048];
	snprintf(json, sizeof json,
		 "{\"mode\":\"expiry-storm\",\"c\":%u,\"n\":%" PRIu64
		 ",\"ttl_ms\":%u,\"acquire_secs\":%.3f,\"first_freed_s\":%.3f,"
		 "\"freed_s\":%.3f,\"expiring_s\":%.3f,\"decrees\":%" PRIu64
		 ",\"left\":%" PRIu64 ",\"lost\":%" PRIu64
		 ",\"expired\":%" PRIu64 ",\"errors\":%" PRIu64
		 ",\"probe_errors\":%" PRIu64,
		 opt.c, held, opt.ttl_ms, acq_secs, first_s, freed_s, storm_s,
		 commit - commit0, done ? 0 : leases, lost, expired, errors,
		 probe.errors);
	json_label(json, sizeof json);
	json_step(json, sizeof json, "probe_hold", &pb, (double)opt.d_s);
	json_step(json, sizeof json, "probe_storm", &pd,
		  freed_s > 0 ? freed_s : 1.0);
	printf("%s}\n", json);
	free(probe.before.v);
	free(probe.during.v);
	return done != 0 && lost == 0 && errors == 0 ? 0 : 1;
}

/* ---- failover ------------------------------------------------------------ */

#define URLS_MAX 8

static char *read_file_line(const char *path)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return NULL;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n = getline(&line, &cap, f);
	fclose(f);
	if (n <= 0) {
		free(line);
		return NULL;
	}
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == ' '))
		line[--n] = '\0';
	return line;
}

/* Waits until every endpoint answers STATUS and one says it leads. Returns
 * the leader's endpoint index (its replica id in *id), or -1. */
static int wait_cell(lc_client *probe, uint32_t n, uint64_t timeout_us,
		     uint32_t *id)
{
	uint64_t end = lc_now_us() + timeout_us;
	while (lc_now_us() < end) {
		uint32_t ok = 0;
		int leader = -1;
		for (uint32_t i = 0; i < n; i++) {
			lc_replica_status st;
			if (lc_status(probe, i, &st) != LC_OK)
				continue;
			ok++;
			if (strcmp(st.role, "leader") == 0) {
				leader = (int)i;
				*id = st.id;
			}
		}
		if (ok == n && leader >= 0)
			return leader;
		sleep_us(50000);
	}
	return -1;
}

typedef struct failover_round {
	uint64_t kill_us;
	const char *name;
	_Atomic uint64_t first_ok_us; /* 0 until an acquire is answered */
	atomic_uint tries;
	atomic_uint answered_by; /* the try (0-based) that was first */
	atomic_int first_rv;
	atomic_bool go, stop;
} failover_round;

typedef struct trier {
	pthread_t thread;
	unsigned index;
	lc_client *c;
	failover_round *round;
} trier;

/* Trier k makes tries k, k + TRIERS, ...; try j starts 10 ms x j after
 * the kill. */
static void *trier_run(void *arg)
{
	trier *t = arg;
	failover_round *r = t->round;
	while (!atomic_load(&r->go))
		sleep_us(1000);
	for (uint64_t j = t->index; !atomic_load(&r->stop);
	     j += FAILOVER_TRIERS) {
		uint64_t at = r->kill_us + j * FAILOVER_PERIOD_US;
		if (at > r->kill_us + FAILOVER_GIVE_UP_US)
			break;
		while (lc_now_us() < at && !atomic_load(&r->stop))
			sleep_us(at - lc_now_us() < 5000 ? at - lc_now_us()
							 : 5000);
		if (atomic_load(&r->stop))
			break;
		atomic_fetch_add(&r->tries, 1);
		lc_lease l;
		int rv = lc_acquire(t->c, r->name, opt.ttl_ms, 0, NULL, 0, &l);
		uint64_t now = lc_now_us();
		if (rv == LC_OK || rv == LC_EHELD) {
			/* HELD is an answer too: the cell granted it to a
			 * try that came first. */
			uint64_t none = 0;
			if (atomic_compare_exchange_strong(&r->first_ok_us,
							   &none, now)) {
				atomic_store(&r->answered_by, (unsigned)j);
				atomic_store(&r->first_rv, rv);
			}
			atomic_store(&r->stop, true);
		}
	}
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static int run_failover(void)
{
	if (opt.dir == NULL) {
		fputs("lockbench: failover needs --dir DIR "
		      "(tools/dev-cluster's)"
		      "\n",
		      stderr);
		return 2;
	}
	char path[4096];
	char *eps = NULL;
	if (opt.endpoints == NULL) {
		snprintf(path, sizeof path, "%s/endpoints", opt.dir);
		eps = read_file_line(path);
		if (eps == NULL) {
			fprintf(stderr, "lockbench: cannot read %s\n", path);
			return 2;
		}
		opt.endpoints = eps;
	}
	const char *script = opt.cluster_script;
	if (script == NULL)
		script = getenv("LOCKBENCH_DEV_CLUSTER");
	if (script == NULL)
		script = "tools/dev-cluster";
	if (access(script, X_OK) != 0) {
		fprintf(stderr,
			"lockbench: cannot run %s to restart the cell: pass "
			"--cluster-script\n",
			script);
		return 2;
	}

	/* The URLs, by index = replica id (dev-cluster's order). */
	char *urls[URLS_MAX];
	uint32_t nurls = 0;
	char *copy = strdup(opt.endpoints);
	for (char *save = NULL, *tok = strtok_r(copy, ",", &save);
	     tok != NULL && nurls < URLS_MAX; tok = strtok_r(NULL, ",", &save))
		urls[nurls++] = tok;
	if (nurls < 3) {
		fprintf(stderr,
			"lockbench: failover wants 3 or more replicas, "
			"not %u\n",
			nurls);
		return 2;
	}
	lc_client *probe = open_client(opt.endpoints, 1000, 1000);
	double *ms = calloc(opt.rounds, sizeof *ms);
	unsigned done = 0;
	int rc = 0;
	for (unsigned round = 0; round < opt.rounds; round++) {
		uint32_t id = 0;
		int li = wait_cell(probe, nurls, CELL_READY_US, &id);
		if (li < 0) {
			fprintf(stderr, "lockbench: the cell has no leader or "
					"a replica does not answer\n");
			rc = 1;
			break;
		}
		snprintf(path, sizeof path, "%s/r%u.pid", opt.dir, id);
		char *pidline = read_file_line(path);
		long pid = pidline ? strtol(pidline, NULL, 10) : 0;
		free(pidline);
		if (pid <= 1) {
			fprintf(stderr, "lockbench: no pid in %s\n", path);
			rc = 1;
			break;
		}
		/* The survivors, and clients that are already connected. */
		char surv[4096] = "";
		for (uint32_t i = 0; i < nurls; i++) {
			if ((int)i == li)
				continue;
			size_t len = strlen(surv);
			snprintf(surv + len, sizeof surv - len, "%s%s",
				 len ? "," : "", urls[i]);
		}
		char name[96];
		snprintf(name, sizeof name, "bench/failover-%ld-%u",
			 (long)getpid(), round);
		failover_round r = {.name = name};
		trier *ts = calloc(FAILOVER_TRIERS, sizeof *ts);
		for (unsigned k = 0; k < FAILOVER_TRIERS; k++) {
			ts[k].index = k;
			ts[k].round = &r;
			ts[k].c = open_client(surv, FAILOVER_TRY_MS,
					      FAILOVER_TRY_MS);
			lc_replica_status st;
			for (uint32_t i = 0; i < nurls - 1; i++)
				lc_status(ts[k].c, i, &st);
			pthread_create(&ts[k].thread, NULL, trier_run, &ts[k]);
		}
		r.kill_us = lc_now_us();
		if (kill((pid_t)pid, SIGKILL) != 0) {
			fprintf(stderr, "lockbench: kill %ld: %s\n", pid,
				strerror(errno));
			atomic_store(&r.stop, true);
		}
		atomic_store(&r.go, true);
		for (unsigned k = 0; k < FAILOVER_TRIERS; k++)
			pthread_join(ts[k].thread, NULL);
		uint64_t first = atomic_load(&r.first_ok_us);
		/* The new leader, as a survivor sees it. */
		lc_replica_status st;
		char newleader[64] = "?";
		for (uint32_t i = 0; i < nurls - 1; i++)
			if (lc_status(ts[0].c, i, &st) == LC_OK &&
			    strcmp(st.role, "leader") == 0)
				snprintf(newleader, sizeof newleader, "r%u",
					 st.id);
		for (unsigned k = 0; k < FAILOVER_TRIERS; k++)
			lc_close(ts[k].c);
		free(ts);
		if (first == 0) {
			printf("failover  round %u: killed r%u (pid %ld); no "
			       "answered acquire within %u s\n",
			       round + 1, id, pid,
			       FAILOVER_GIVE_UP_US / 1000000u);
			rc = 1;
		} else {
			ms[done] = (double)(first - r.kill_us) / 1000.0;
			printf("failover  round %u: killed r%u (pid %ld); "
			       "first answered acquire after %.0f ms (%s, try "
			       "%u of %u); new leader %s\n",
			       round + 1, id, pid, ms[done],
			       atomic_load(&r.first_rv) == LC_OK ? "granted"
								 : "held",
			       atomic_load(&r.answered_by) + 1,
			       atomic_load(&r.tries), newleader);
			done++;
		}
		fflush(stdout);
		/* Restart the cell (dev-cluster start restarts only what is
		 * dead) and wait for all of it. */
		char cmd[8192];
		snprintf(cmd, sizeof cmd, "'%s' start '%s' >/dev/null", script,
			 opt.dir);
		uint64_t t0 = lc_now_us();
		if (system(cmd) != 0) {
			fprintf(stderr, "lockbench: '%s' failed\n", cmd);
			rc = 1;
			break;
		}
		if (wait_cell(probe, nurls, CELL_READY_US, &id) < 0) {
			fprintf(stderr, "lockbench: the cell did not come back "
					"after the restart\n");
			rc = 1;
			break;
		}
		printf("failover  round %u: cell whole again after %.1f s\n",
		       round + 1, (double)(lc_now_us() - t0) / 1e6);
		fflush(stdout);
	}
	lc_close(probe);
	double sorted[64];
	unsigned ns = done < 64 ? done : 64;
	memcpy(sorted, ms, ns * sizeof *sorted);
	qsort(sorted, ns, sizeof *sorted, cmp_double);
	double median = 0;
	if (ns > 0)
		median = ns % 2 ? sorted[ns / 2]
				: (sorted[ns / 2 - 1] + sorted[ns / 2]) / 2;
	printf("failover  rounds=%u median=%.0f ms min=%.0f ms max=%.0f ms\n",
	       done, median, ns ? sorted[0] : 0.0, ns ? sorted[ns - 1] : 0.0);
	char json[4096];
	snprintf(json, sizeof json, "{\"mode\":\"failover\",\"rounds\":[");
	for (unsigned i = 0; i < done; i++) {
		size_t len = strlen(json);
		snprintf(json + len, sizeof json - len, "%s%.1f", i ? "," : "",
			 ms[i]);
	}
	size_t len = strlen(json);
	snprintf(json + len, sizeof json - len,
		 "],\"median_ms\":%.1f,\"min_ms\":%.1f,\"max_ms\":%.1f", median,
		 ns ? sorted[0] : 0.0, ns ? sorted[ns - 1] : 0.0);
	json_label(json, sizeof json);
	printf("%s}\n", json);
	free(ms);
	free(copy);
	free(eps);
	return rc;
}

/* ---- main ---------------------------------------------------------------- */

int main(int argc, char **argv)
{
	enum {
		O_TTL = 256,
		O_WAIT,
		O_DIR,
		O_ROUNDS,
		O_SCRIPT,
		O_LABEL,
		O_VALUE_BYTES,
		O_CONNECTIONS,
		O_THREADS,
		O_RENEW_LEFT,
		O_BATCH,
		O_CONSISTENCY,
	};
	static const struct option longopts[] = {
		{"endpoints", required_argument, NULL, 'e'},
		{"mode", required_argument, NULL, 'm'},
		{"ttl-ms", required_argument, NULL, O_TTL},
		{"wait-ms", required_argument, NULL, O_WAIT},
		{"dir", required_argument, NULL, O_DIR},
		{"rounds", required_argument, NULL, O_ROUNDS},
		{"cluster-script", required_argument, NULL, O_SCRIPT},
		{"label", required_argument, NULL, O_LABEL},
		{"value-bytes", required_argument, NULL, O_VALUE_BYTES},
		{"connections", required_argument, NULL, O_CONNECTIONS},
		{"threads", required_argument, NULL, O_THREADS},
		{"renew-left-permille", required_argument, NULL, O_RENEW_LEFT},
		{"batch-renewals", no_argument, NULL, O_BATCH},
		{"consistency", required_argument, NULL, O_CONSISTENCY},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int ch;
	while ((ch = getopt_long(argc, argv, "e:m:c:k:d:n:h", longopts,
				 NULL)) != -1) {
		switch (ch) {
		case 'e':
			opt.endpoints = optarg;
			break;
		case 'm':
			opt.mode = optarg;
			break;
		case 'c':
			opt.c = parse_uint(optarg, "-c");
			break;
		case 'k':
			opt.k = parse_uint(optarg, "-k");
			break;
		case 'd':
			opt.d_s = parse_uint(optarg, "-d");
			break;
		case 'n':
			opt.n = parse_uint(optarg, "-n");
			break;
		case O_TTL:
			opt.ttl_ms = parse_uint(optarg, "--ttl-ms");
			break;
		case O_WAIT:
			opt.wait_ms = parse_uint(optarg, "--wait-ms");
			break;
		case O_DIR:
			opt.dir = optarg;
			break;
		case O_ROUNDS:
			opt.rounds = parse_uint(optarg, "--rounds");
			break;
		case O_SCRIPT:
			opt.cluster_script = optarg;
			break;
		case O_LABEL:
			opt.label = optarg;
			break;
		case O_VALUE_BYTES:
			opt.value_bytes = parse_uint(optarg, "--value-bytes");
			if (opt.value_bytes > sizeof bench_value) {
				fprintf(stderr,
					"lockbench: --value-bytes is at most "
					"%zu\n",
					sizeof bench_value);
				return 2;
			}
			break;
		case O_CONNECTIONS:
			opt.connections = parse_uint(optarg, "--connections");
			break;
		case O_THREADS:
			opt.threads = parse_uint(optarg, "--threads");
			break;
		case O_BATCH:
			opt.batch_renewals = true;
			break;
		case O_CONSISTENCY:
			if (strcmp(optarg, "linearizable") == 0)
				opt.consistency = LC_LINEARIZABLE;
			else if (strcmp(optarg, "ryw") == 0)
				opt.consistency = LC_READ_YOUR_WRITES;
			else if (strcmp(optarg, "stale") == 0)
				opt.consistency = LC_STALE;
			else {
				fputs("lockbench: --consistency is "
				      "linearizable, ryw or stale\n",
				      stderr);
				return 2;
			}
			break;
		case O_RENEW_LEFT:
			opt.renew_permille =
				parse_uint(optarg, "--renew-left-permille");
			if (opt.renew_permille == 0 ||
			    opt.renew_permille >= 1000) {
				fputs("lockbench: --renew-left-permille must "
				      "be 1-999\n",
				      stderr);
				return 2;
			}
			break;
		case 'h':
			usage(0);
			break;
		default:
			usage(2);
		}
	}
	if (optind != argc || opt.mode == NULL)
		usage(2);
	/* A thread per session, or --connections and --threads for more
	 * sessions than threads. */
	bool shared = opt.connections > 0 || opt.threads > 0;
	if (opt.batch_renewals && opt.connections == 0) {
		fputs("lockbench: --batch-renewals needs --connections (the "
		      "sessions of one request share connections)\n",
		      stderr);
		return 2;
	}
	if (shared && strcmp(opt.mode, "renew") != 0 &&
	    strcmp(opt.mode, "expiry-storm") != 0) {
		fputs("lockbench: --connections and --threads are for renew "
		      "and expiry-storm\n",
		      stderr);
		return 2;
	}
	unsigned c_max = shared ? SESSIONS_MAX : WORKERS_MAX;
	if (opt.c == 0 || opt.c > c_max) {
		fprintf(stderr, "lockbench: -c must be 1-%u%s\n", c_max,
			shared ? "" : " (more with --connections, --threads)");
		return 2;
	}
	if (opt.threads > WORKERS_MAX ||
	    (opt.threads == 0 && opt.c > WORKERS_MAX) ||
	    opt.connections > CONNECTIONS_MAX) {
		fprintf(stderr,
			"lockbench: --threads must be 1-%u (it defaults to -c) "
			"and --connections 0-%u\n",
			WORKERS_MAX, CONNECTIONS_MAX);
		return 2;
	}
	if (strcmp(opt.mode, "failover") == 0)
		return run_failover();
	char *eps = NULL;
	if (opt.endpoints == NULL && opt.dir != NULL) {
		char path[4096];
		snprintf(path, sizeof path, "%s/endpoints", opt.dir);
		opt.endpoints = eps = read_file_line(path);
	}
	if (opt.endpoints == NULL) {
		fputs("lockbench: --endpoints (or --dir) is required\n",
		      stderr);
		return 2;
	}
	int rc;
	if (strcmp(opt.mode, "cycle") == 0)
		rc = run_cycle(false);
	else if (strcmp(opt.mode, "handoff") == 0)
		rc = run_cycle(true);
	else if (strcmp(opt.mode, "renew") == 0)
		rc = run_renew();
	else if (strcmp(opt.mode, "expiry-storm") == 0)
		rc = run_storm();
	else if (strcmp(opt.mode, "read") == 0)
		rc = run_read();
	else
		usage(2);
	free(eps);
	return rc;
}
