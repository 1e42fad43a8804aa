/* A fake lockd replica for liblockclient's unit tests: an nng REP socket on
 * a loopback port, served by a thread that records every request and answers
 * it as the test's callback says. Criterion forks per test, so each test
 * starts its own (fake_start) and stops it (fake_stop). */
#ifndef TEST_FAKE_REPLICA_H
#define TEST_FAKE_REPLICA_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nng/nng.h>

#include "client.pb-c.h"

#define FAKE_REQS_MAX 512

/* What a request carried, and when it arrived (lc_now_us). */
typedef struct fake_req {
	Lockd__Op op;
	uint64_t session, seq, known_position, token, at_us;
	uint32_t ttl_ms, wait_ms;
	Lockd__Consistency consistency;
	char name[64];
} fake_req;

typedef struct fake fake;

/* Fills rep (zeroed, leader_hint -1, status unset) for the k-th request
 * (0-based), with f->mu held. Strings and arrays it points rep at must
 * outlive the call. Returning false sends nothing. */
typedef bool (*fake_answer)(fake *f, const Lockd__Request *req,
			    Lockd__Reply *rep, unsigned k);

struct fake {
	nng_socket sock;
	pthread_t thread;
	atomic_bool stop;
	atomic_bool silent; /* true: requests are recorded, never answered */
	atomic_int mode;    /* the test's own switch for its answer */
	char url[64];
	fake_answer answer;
	const char *hint_url; /* for answers that name a leader */
	pthread_mutex_t mu;
	unsigned nreqs;
	fake_req reqs[FAKE_REQS_MAX];
	uint64_t granted[16]; /* tokens an answer granted, for its renewals */
	size_t ngranted;
};

/* Starts f on tcp://127.0.0.1:<free port> (f->url). */
void fake_start(fake *f, fake_answer answer);
void fake_stop(fake *f);

/* Requests recorded so far. */
unsigned fake_count(fake *f);

/* How many requests of op arrived, and when the first did (0: none). */
unsigned fake_ops(fake *f, Lockd__Op op, uint64_t *first_at);

#endif
