/* The operator pages (lockd/daemon/http.h): /health says whether this replica
 * is part of a cell that can serve, /metrics is Prometheus text, and a real nng
 * HTTP server answers both and 404s the rest. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>

#include "http.h"

static ld_metrics_snap follower(int32_t leader)
{
	return (ld_metrics_snap){.id = 1,
				 .nreplicas = 3,
				 .role = "follower",
				 .leader = leader,
				 .commit = 42,
				 .applied = 41,
				 .leases = 7,
				 .grants = 9};
}

Test(http, health_is_200_only_with_a_leader)
{
	char buf[1024];
	uint16_t status;
	ld_metrics_snap s = follower(2);
	ld_metrics_health(&s, buf, sizeof buf, &status);
	cr_assert_eq(status, 200);
	cr_assert(strstr(buf, "\"health\":true") != NULL, "%s", buf);
	cr_assert(strstr(buf, "\"leader\":2,") != NULL, "%s", buf);
	s = follower(-1);
	ld_metrics_health(&s, buf, sizeof buf, &status);
	cr_assert_eq(status, 503);
	cr_assert(strstr(buf, "\"health\":false") != NULL, "%s", buf);
	cr_assert(strstr(buf, "\"reason\":") != NULL, "%s", buf);
}

/* A replica that cannot write to its disk is not healthy, whoever leads,
 * and says why; the sentence is JSON-escaped. */
Test(http, health_is_503_while_storage_is_stalled)
{
	char buf[2048];
	uint16_t status;
	ld_metrics_snap s = follower(2);
	s.storage_stalled = true;
	snprintf(s.storage_error, sizeof s.storage_error,
		 "cannot write to /d/\"x\\y\": IO error: No space left on "
		 "device");
	ld_metrics_health(&s, buf, sizeof buf, &status);
	cr_assert_eq(status, 503);
	cr_assert(strstr(buf, "\"health\":false") != NULL, "%s", buf);
	cr_assert(strstr(buf, "\"storage_stalled\":true") != NULL, "%s", buf);
	cr_assert(strstr(buf, "/d/\\\"x\\\\y\\\": IO error: No space left on "
			      "device\"}") != NULL,
		  "%s", buf);
	char page[8192];
	ld_metrics_prometheus(&s, page, sizeof page);
	cr_assert(strstr(page, "\nlockd_storage_stalled 1\n") != NULL);
	s.storage_stalled = false;
	ld_metrics_health(&s, buf, sizeof buf, &status);
	cr_assert_eq(status, 200);
	ld_metrics_prometheus(&s, page, sizeof page);
	cr_assert(strstr(page, "\nlockd_storage_stalled 0\n") != NULL);
}

/* Recovering, diverged and out-of-fds replicas are unhealthy, and say why. */
Test(http, health_names_recovery_divergence_and_fds)
{
	ld_metrics_snap s = follower(2);
	char buf[1024];
	uint16_t status;
	char page[8192];

	s.role = "recovering";
	ld_metrics_health(&s, buf, sizeof buf, &status);
	cr_assert_eq(status, 503);
	cr_assert(strstr(buf, "is recovering") != NULL, "%s", buf);
	ld_metrics_prometheus(&s, page, sizeof page);
	cr_assert(strstr(page, "lockd_role{role=\"recovering\"} 1\n") != NULL);

	s.role = "diverged";
	s.digest_alarm = 2;
	ld_metrics_health(&s, buf, sizeof buf, &status);
	cr_assert_eq(status, 503);
	cr_assert(strstr(buf, "\"digest_alarm\":\"diverged\"") != NULL, "%s",
		  buf);
	ld_metrics_prometheus(&s, page, sizeof page);
	cr_assert(strstr(page, "\nlockd_digest_alarm 2\n") != NULL);

	s.role = "follower";
	s.digest_alarm = 0;
	s.fds_exhausted = true;
	s.fds_open = 150;
	s.fds_limit = 160;
	ld_metrics_health(&s, buf, sizeof buf, &status);
	cr_assert_eq(status, 503);
	cr_assert(strstr(buf, "has 150 of its 160 file descriptors") != NULL,
		  "%s", buf);
	ld_metrics_prometheus(&s, page, sizeof page);
	cr_assert(strstr(page, "\nlockd_fds_exhausted 1\n") != NULL);
	cr_assert(strstr(page, "\nlockd_fds_open 150\n") != NULL);
}

/* Membership: every page says how many members and voters this replica's
 * configuration has and whether it votes; a learner (a member not yet
 * promoted) and a replica that is not a member are not healthy, and say
 * why. */
Test(http, health_and_metrics_show_membership)
{
	ld_metrics_snap s = follower(2);
	s.nreplicas = 4;
	s.voters = 3;
	s.voter = true;
	s.member = true;
	char buf[1024];
	uint16_t status;
	static char page[65536];
	ld_metrics_health(&s, buf, sizeof buf, &status);
	cr_assert_eq(status, 200);
	cr_assert(strstr(buf, "\"members\":4,\"voters\":3,\"voter\":true") !=
			  NULL,
		  "%s", buf);
	ld_metrics_prometheus(&s, page, sizeof page);
	cr_assert(strstr(page, "\nlockd_members 4\n") != NULL, "%s", page);
	cr_assert(strstr(page, "\nlockd_voters 3\n") != NULL, "%s", page);
	cr_assert(strstr(page, "\nlockd_voter 1\n") != NULL, "%s", page);

	s.role = "learner";
	s.voter = false;
	ld_metrics_health(&s, buf, sizeof buf, &status);
	cr_assert_eq(status, 503);
	cr_assert(strstr(buf, "is a learner") != NULL, "%s", buf);
	ld_metrics_prometheus(&s, page, sizeof page);
	cr_assert(strstr(page, "lockd_role{role=\"learner\"} 1\n") != NULL);
	cr_assert(strstr(page, "\nlockd_voter 0\n") != NULL, "%s", page);

	s.role = "joining";
	s.member = false;
	ld_metrics_health(&s, buf, sizeof buf, &status);
	cr_assert_eq(status, 503);
	cr_assert(strstr(buf, "lockctl member add") != NULL, "%s", buf);
}

Test(http, metrics_are_prometheus_text)
{
	/* The server's page size (http.c's HTTP_PAGE_BYTES_MAX). */
	static char buf[65536];
	ld_metrics_snap s = follower(2);
	s.waiters = 3;
	s.sessions = 5;
	size_t n = ld_metrics_prometheus(&s, buf, sizeof buf);
	cr_assert_eq(n, strlen(buf));
	cr_log_info("metrics page: %zu bytes", n);
	cr_assert(strstr(buf, "\nlockd_role{role=\"follower\"} 1\n") != NULL);
	cr_assert(strstr(buf, "\nlockd_leases_held 7\n") != NULL);
	cr_assert(strstr(buf, "\nlockd_lease_waiters 3\n") != NULL);
	cr_assert(strstr(buf, "\nlockd_sessions 5\n") != NULL);
	cr_assert(strstr(buf, "\n# TYPE lockd_grants_total counter\n"
			      "lockd_grants_total 9\n") != NULL);
	cr_assert(strstr(buf, "\n# TYPE lockd_request_duration_seconds "
			      "histogram\n") != NULL);
	/* A page cut at its buffer stays a terminated string. */
	char small[100];
	n = ld_metrics_prometheus(&s, small, sizeof small);
	cr_assert_lt(n, sizeof small);
	cr_assert_eq(n, strlen(small));
}

/* Nothing may be cut off: the page with every counter and every bucket at
 * 20 digits still fits the server's buffer, with room for more. */
Test(http, the_largest_metrics_page_fits)
{
	static char buf[65536];
	ld_metrics_snap s = follower(2);
	uint64_t big = 10000000000000000000u;
	for (uint32_t i = 0; i < LD_METRIC_OPS; i++)
		s.request[i] = (ld_histo){.count = big, .sum_us = big};
	for (uint32_t b = 0; b <= LD_HISTO_BUCKETS; b++) {
		for (uint32_t i = 0; i < LD_METRIC_OPS; i++)
			s.request[i].bucket[b] = big / 32;
		s.commit_latency.bucket[b] = big / 32;
		s.disk_sync.bucket[b] = big / 32;
	}
	s.commit_latency.count = s.disk_sync.count = big;
	s.commit_latency.sum_us = s.disk_sync.sum_us = big;
	s.grants = s.rounds = s.client_requests = s.peer_sent = big;
	size_t n = ld_metrics_prometheus(&s, buf, sizeof buf);
	cr_log_info("largest metrics page: %zu bytes", n);
	cr_assert_lt(n, sizeof buf * 3 / 4,
		     "the page (%zu bytes) is near "
		     "its buffer's size",
		     n);
}

/* Histograms: cumulative buckets by upper bound, +Inf equal to _count,
 * _sum in seconds; an observation on a bound counts in that bucket. */
Test(http, histograms_are_cumulative_and_end_with_inf)
{
	ld_metrics_snap s = follower(2);
	ld_histo_observe(&s.disk_sync, 100, 1);      /* le 0.0001 */
	ld_histo_observe(&s.disk_sync, 150, 2);      /* le 0.00025 */
	ld_histo_observe(&s.disk_sync, 20000000, 1); /* +Inf only */
	ld_histo_observe(&s.request[4], 3000, 1);    /* get: le 0.005 */
	static char buf[65536];
	ld_metrics_prometheus(&s, buf, sizeof buf);
	const char *want[] = {
		"\nlockd_disk_sync_duration_seconds_bucket{le=\"0.0001\"} 1\n",
		"\nlockd_disk_sync_duration_seconds_bucket{le=\"0.00025\"} 3\n",
		"\nlockd_disk_sync_duration_seconds_bucket{le=\"10\"} 3\n",
		"\nlockd_disk_sync_duration_seconds_bucket{le=\"+Inf\"} 4\n",
		"\nlockd_disk_sync_duration_seconds_sum 20.000400\n",
		"\nlockd_disk_sync_duration_seconds_count 4\n",
		"\nlockd_request_duration_seconds_bucket{op=\"get\",le="
		"\"0.0025\"} 0\n",
		"\nlockd_request_duration_seconds_bucket{op=\"get\",le="
		"\"0.005\"} 1\n",
		"\nlockd_request_duration_seconds_count{op=\"get\"} 1\n",
		"\nlockd_request_duration_seconds_count{op=\"proclaim\"} 0\n",
		"\n# TYPE lockd_decree_commit_duration_seconds histogram\n",
	};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
		cr_assert(strstr(buf, want[i]) != NULL, "no %s in %s", want[i],
			  buf);
}

/* GET url+path with nng's HTTP client: the status code and the body. */
static uint16_t get(const char *base, const char *path, char *body, size_t cap)
{
	char u[128];
	snprintf(u, sizeof u, "%s%s", base, path);
	nng_url *url;
	nng_http_client *cli;
	nng_http_req *req;
	nng_http_res *res;
	nng_aio *aio;
	cr_assert_eq(nng_url_parse(&url, u), 0);
	cr_assert_eq(nng_http_client_alloc(&cli, url), 0);
	cr_assert_eq(nng_http_req_alloc(&req, url), 0);
	cr_assert_eq(nng_http_res_alloc(&res), 0);
	cr_assert_eq(nng_aio_alloc(&aio, NULL, NULL), 0);
	nng_aio_set_timeout(aio, 5000);
	nng_http_client_transact(cli, req, res, aio);
	nng_aio_wait(aio);
	cr_assert_eq(nng_aio_result(aio), 0);
	uint16_t status = nng_http_res_get_status(res);
	void *data;
	size_t len;
	nng_http_res_get_data(res, &data, &len);
	len = len < cap - 1 ? len : cap - 1;
	memcpy(body, data, len);
	body[len] = '\0';
	nng_aio_free(aio);
	nng_http_res_free(res);
	nng_http_req_free(req);
	nng_http_client_free(cli);
	nng_url_free(url);
	return status;
}

Test(http, a_server_answers_health_and_metrics)
{
	ld_metrics m;
	ld_metrics_init(&m);
	ld_metrics_snap s = follower(-1);
	ld_metrics_set(&m, &s);
	/* Ports picked at random until one is free. */
	char base[64], err[256];
	ld_http *h = NULL;
	srand((unsigned)getpid());
	for (int port = 0, tries = 0; h == NULL && tries < 20; tries++) {
		port = 20000 + rand() % 30000;
		snprintf(base, sizeof base, "http://127.0.0.1:%d", port);
		if (ld_http_open(base, &m, NULL, &h, err, sizeof err) != 0)
			h = NULL;
	}
	cr_assert_not_null(h, "%s", err);
	static char body[65536];
	cr_assert_eq(get(base, "/health", body, sizeof body), 503, "%s", body);
	s.leader = 0;
	ld_metrics_set(&m, &s);
	cr_assert_eq(get(base, "/health", body, sizeof body), 200, "%s", body);
	cr_assert_eq(get(base, "/metrics", body, sizeof body), 200);
	cr_assert(strstr(body, "lockd_leader 0\n") != NULL, "%s", body);
	cr_assert_eq(get(base, "/elsewhere", body, sizeof body), 404);
	ld_http_close(h);

	cr_assert_neq(ld_http_open("tcp://127.0.0.1:1", &m, NULL, &h, err,
				   sizeof err),
		      0);
	cr_assert(strstr(err, "http://HOST:PORT") != NULL, "%s", err);
	ld_metrics_destroy(&m);
}
