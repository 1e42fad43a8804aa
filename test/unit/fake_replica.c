#include "fake_replica.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/protocol/reqrep0/rep.h>

#include "lockclient.h"

static void record(fake *f, const Lockd__Request *req)
{
	if (f->nreqs >= FAKE_REQS_MAX)
		return;
	fake_req *r = &f->reqs[f->nreqs++];
	r->op = req->op;
	r->session = req->session;
	r->seq = req->seq;
	r->known_position = req->known_position;
	r->token = req->token;
	r->at_us = lc_now_us();
	r->ttl_ms = req->ttl_ms;
	r->wait_ms = req->wait_ms;
	r->consistency = req->consistency;
	snprintf(r->name, sizeof r->name, "%s", req->name);
}

static void *fake_run(void *arg)
{
	fake *f = arg;
	while (!atomic_load(&f->stop)) {
		void *buf;
		size_t len;
		int rv = nng_recv(f->sock, &buf, &len, NNG_FLAG_ALLOC);
		if (rv == NNG_ETIMEDOUT)
			continue;
		if (rv != 0)
			break;
		Lockd__Request *req = lockd__request__unpack(NULL, len, buf);
		nng_free(buf, len);
		if (req == NULL)
			continue;
		pthread_mutex_lock(&f->mu);
		unsigned k = f->nreqs;
		record(f, req);
		Lockd__Reply rep = LOCKD__REPLY__INIT;
		rep.leader_hint = -1;
		if (!atomic_load(&f->silent) && f->answer(f, req, &rep, k)) {
			size_t n = lockd__reply__get_packed_size(&rep);
			uint8_t *out = malloc(n ? n : 1);
			cr_assert_not_null(out);
			lockd__reply__pack(&rep, out);
			nng_send(f->sock, out, n, 0);
			free(out);
		}
		pthread_mutex_unlock(&f->mu);
		lockd__request__free_unpacked(req, NULL);
	}
	return NULL;
}

void fake_start(fake *f, fake_answer answer)
{
	memset(f, 0, sizeof *f);
	f->answer = answer;
	pthread_mutex_init(&f->mu, NULL);
	cr_assert_eq(nng_rep0_open(&f->sock), 0);
	nng_socket_set_ms(f->sock, NNG_OPT_RECVTIMEO, 20);
	nng_listener l;
	cr_assert_eq(nng_listener_create(&l, f->sock, "tcp://127.0.0.1:0"), 0);
	cr_assert_eq(nng_listener_start(l, 0), 0);
	int port = 0;
	cr_assert_eq(nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port), 0);
	snprintf(f->url, sizeof f->url, "tcp://127.0.0.1:%d", port);
	cr_assert_eq(pthread_create(&f->thread, NULL, fake_run, f), 0);
}

void fake_stop(fake *f)
{
	atomic_store(&f->stop, true);
	pthread_join(f->thread, NULL);
	nng_close(f->sock);
	pthread_mutex_destroy(&f->mu);
}

unsigned fake_count(fake *f)
{
	pthread_mutex_lock(&f->mu);
	unsigned n = f->nreqs;
	pthread_mutex_unlock(&f->mu);
	return n;
}

unsigned fake_ops(fake *f, Lockd__Op op, uint64_t *first_at)
{
	unsigned n = 0;
	if (first_at != NULL)
		*first_at = 0;
	pthread_mutex_lock(&f->mu);
	for (unsigned i = 0; i < f->nreqs; i++) {
		if (f->reqs[i].op != op)
			continue;
		if (n++ == 0 && first_at != NULL)
			*first_at = f->reqs[i].at_us;
	}
	pthread_mutex_unlock(&f->mu);
	return n;
}
