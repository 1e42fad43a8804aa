#include "client_api.h"
#include "tls.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include "codec.h"
#include "ldlog.h"

typedef enum cctx_state {
	CCTX_IDLE = 0, /* not started or closed */
	CCTX_RECV,     /* waiting for a request */
	CCTX_LOOP,     /* the event loop owns it */
	CCTX_SEND,     /* sending a reply */
} cctx_state;

struct ld_cctx {
	ld_clients *cl;
	uint32_t index;
	nng_ctx ctx;
	nng_aio *aio;
	cctx_state state;
	Lockd__Request *req;
	uint64_t arrived_us;
	uint32_t pipe_id; /* the connection the request came on */
	/* A context of the HTTP API's (ld_clients_take): its reply goes
	 * here, not to the socket. */
	ld_cctx_sink sink;
	void *sink_arg;
};

struct ld_clients {
	nng_socket sock;
	bool sock_open;
	ld_evq *q;
	ld_cctx ctxs[LD_CLIENT_SLOTS];
	uint32_t nctx;
	/* The HTTP API's free contexts (indexes), and the connection ids it
	 * hands out: above nng's (positive 31-bit) pipe ids, one per request.
	 */
	pthread_mutex_t http_mu;
	uint32_t http_free[LD_HTTP_CTX_MAX];
	uint32_t nhttp_free;
	uint32_t http_pipe_next;
	atomic_uint_fast64_t requests, malformed, replies;
	ld_ratelimit bad_rl;
	/* Connections closed since the loop last asked (pipe_gone), oldest
	 * first; past LD_CLIENT_GONE_MAX the oldest are forgotten. */
	pthread_mutex_t gone_mu;
	uint32_t gone[LD_CLIENT_GONE_MAX];
	size_t gone_head, gone_n;
	atomic_uint_fast64_t gone_dropped, pipes_closed;
};

uint32_t ld_cctx_index(const ld_cctx *c)
{
	return c->index;
}

const Lockd__Request *ld_cctx_request(const ld_cctx *c)
{
	return c->req;
}

uint64_t ld_cctx_arrived_us(const ld_cctx *c)
{
	return c->arrived_us;
}

uint32_t ld_cctx_pipe(const ld_cctx *c)
{
	return c->pipe_id;
}

static void gone_push(ld_clients *cl, uint32_t id)
{
	pthread_mutex_lock(&cl->gone_mu);
	if (cl->gone_n == LD_CLIENT_GONE_MAX) {
		cl->gone_head = (cl->gone_head + 1) % LD_CLIENT_GONE_MAX;
		cl->gone_n--;
		atomic_fetch_add(&cl->gone_dropped, 1);
	}
	cl->gone[(cl->gone_head + cl->gone_n++) % LD_CLIENT_GONE_MAX] = id;
	pthread_mutex_unlock(&cl->gone_mu);
	ld_evq_kick(cl->q);
}

/* nng calls this (on one of its threads) after a connection is gone. */
static void pipe_gone(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	ld_clients *cl = arg;
	if (ev != NNG_PIPE_EV_REM_POST)
		return;
	atomic_fetch_add(&cl->pipes_closed, 1);
	gone_push(cl, (uint32_t)nng_pipe_id(p));
}

size_t ld_clients_take_gone(ld_clients *cl, uint32_t *out, size_t max)
{
	pthread_mutex_lock(&cl->gone_mu);
	size_t n = cl->gone_n < max ? cl->gone_n : max;
	for (size_t i = 0; i < n; i++)
		out[i] = cl->gone[(cl->gone_head + i) % LD_CLIENT_GONE_MAX];
	cl->gone_head = (cl->gone_head + n) % LD_CLIENT_GONE_MAX;
	cl->gone_n -= n;
	pthread_mutex_unlock(&cl->gone_mu);
	return n;
}

static void cctx_recv(ld_cctx *c)
{
	c->state = CCTX_RECV;
	nng_ctx_recv(c->ctx, c->aio);
}

/* Sends rep; on any failure the client gets no answer (its REQ socket
 * times out or resends) and the context goes back to receiving. The request
 * is freed only after rep is packed: rep may borrow its strings. */
static void cctx_send(ld_cctx *c, const Lockd__Reply *rep)
{
	size_t len = lockd__reply__get_packed_size(rep);
	nng_msg *m;
	int rv = nng_msg_alloc(&m, len);
	if (rv == 0)
		lockd__reply__pack(rep, nng_msg_body(m));
	if (c->req != NULL) {
		lockd__request__free_unpacked(c->req, NULL);
		c->req = NULL;
	}
	if (rv != 0) {
		cctx_recv(c);
		return;
	}
	c->state = CCTX_SEND;
	nng_aio_set_msg(c->aio, m);
	nng_ctx_send(c->ctx, c->aio);
}

/* Walks the top level of a Request for the wire length of its last name
 * (field 5), reason (field 10), after_name (field 13), member_peer (16) and
 * member_client (17) strings:
 * protobuf-c hands them over NUL-terminated, so one with a NUL inside would
 * silently be cut short. The buffer already unpacked, so it is well-formed.
 */
static void wire_string_lens(const uint8_t *p, size_t len, size_t *name_len,
			     size_t *reason_len, size_t *after_len,
			     size_t *peer_len, size_t *client_len)
{
	size_t pos = 0;
	while (pos < len) {
		uint64_t key = 0;
		unsigned shift = 0;
		uint8_t b;
		do {
			if (pos >= len || shift > 63)
				return;
			b = p[pos++];
			key |= (uint64_t)(b & 0x7f) << shift;
			shift += 7;
		} while (b & 0x80);
		uint64_t v = 0;
		switch (key & 7) {
		case 0: /* varint */
			do {
				if (pos >= len)
					return;
				b = p[pos++];
			} while (b & 0x80);
			break;
		case 1:
			pos += 8;
			break;
		case 5:
			pos += 4;
			break;
		case 2:
			shift = 0;
			do {
				if (pos >= len || shift > 63)
					return;
				b = p[pos++];
				v |= (uint64_t)(b & 0x7f) << shift;
				shift += 7;
			} while (b & 0x80);
			if (v > len - pos)
				return;
			if ((key >> 3) == 5)
				*name_len = (size_t)v;
			else if ((key >> 3) == 10)
				*reason_len = (size_t)v;
			else if ((key >> 3) == 13)
				*after_len = (size_t)v;
			else if ((key >> 3) == 16)
				*peer_len = (size_t)v;
			else if ((key >> 3) == 17)
				*client_len = (size_t)v;
			pos += (size_t)v;
			break;
		default:
			return;
		}
	}
}

/* A sentence for a request that cannot reach the node, or NULL. */
static const char *request_problem(const Lockd__Request *r, const uint8_t *buf,
				   size_t len)
{
	if (r->op <= LOCKD__OP__OP_UNSPECIFIED ||
	    r->op > LOCKD__OP__OP_PROCLAIM)
		return "unknown op: expected ACQUIRE, RENEW, RELEASE, REVOKE, "
		       "GET, CHECK, LIST, STATUS, WATCH, MEMBERS, "
		       "MEMBER_CHANGE or PROCLAIM";
	size_t name_len = 0, reason_len = 0, after_len = 0;
	size_t peer_len = 0, client_len = 0;
	wire_string_lens(buf, len, &name_len, &reason_len, &after_len,
			 &peer_len, &client_len);
	if (strlen(r->member_peer) != peer_len ||
	    strlen(r->member_client) != client_len)
		return "a member's URL contains a NUL byte";
	if (strlen(r->name) != name_len)
		return "the name contains a NUL byte";
	if (strlen(r->reason) != reason_len)
		return "the reason contains a NUL byte";
	if (strlen(r->after_name) != after_len)
		return "after_name contains a NUL byte";
	return NULL;
}

/* Unpacks and checks a request: NULL with *out the caller's (to free with
 * lockd__request__free_unpacked), or the sentence that refuses it (why
 * may hold it) with *out NULL. */
static const char *request_decode(const uint8_t *body, size_t len,
				  Lockd__Request **out, char *why,
				  size_t whylen)
{
	*out = NULL;
	Lockd__Request *r = lockd__request__unpack(NULL, len, body);
	if (r == NULL)
		return "the request is not a well-formed lockd.Request "
		       "protobuf";
	const char *problem = request_problem(r, body, len);
	if (problem == NULL && cd_request_check(body, len, why, whylen) != 0)
		problem = why;
	if (problem != NULL) {
		lockd__request__free_unpacked(r, NULL);
		return problem;
	}
	*out = r;
	return NULL;
}

static void cctx_invalid(ld_cctx *c, const char *sentence)
{
	Lockd__Reply rep = LOCKD__REPLY__INIT;
	rep.status = LOCKD__STATUS__STATUS_INVALID;
	rep.lease_status = LOCKD__LEASE_STATUS__LEASE_E_MALFORMED;
	rep.error = (char *)sentence;
	rep.leader_hint = -1;
	atomic_fetch_add(&c->cl->malformed, 1);
	uint64_t suppressed;
	if (ld_ratelimit_pass(&c->cl->bad_rl, &suppressed))
		ld_log("warn", "client_malformed",
		       "reason=\"%s\" suppressed=%llu", sentence,
		       (unsigned long long)suppressed);
	cctx_send(c, &rep);
}

static void cctx_cb(void *arg)
{
	ld_cctx *c = arg;
	int rv = nng_aio_result(c->aio);
	if (c->state == CCTX_SEND) {
		if (rv != 0)
			nng_msg_free(nng_aio_get_msg(c->aio));
		else
			atomic_fetch_add(&c->cl->replies, 1);
		if (rv == NNG_ECLOSED || rv == NNG_ECANCELED) {
			c->state = CCTX_IDLE;
			return;
		}
		cctx_recv(c);
		return;
	}
	if (c->state != CCTX_RECV)
		return;
	if (rv == NNG_ECLOSED || rv == NNG_ECANCELED) {
		c->state = CCTX_IDLE;
		return;
	}
	if (rv != 0) {
		cctx_recv(c);
		return;
	}
	nng_msg *m = nng_aio_get_msg(c->aio);
	atomic_fetch_add(&c->cl->requests, 1);
	char why[160];
	const char *problem = request_decode(nng_msg_body(m), nng_msg_len(m),
					     &c->req, why, sizeof why);
	c->pipe_id = (uint32_t)nng_pipe_id(nng_msg_get_pipe(m));
	nng_msg_free(m);
	if (problem != NULL) {
		cctx_invalid(c, problem);
		return;
	}
	c->arrived_us = ld_mono_us();
	c->state = CCTX_LOOP;
	ld_evq_push_client(c->cl->q, c);
}

void ld_cctx_reply(ld_cctx *c, const Lockd__Reply *rep)
{
	if (c->sink == NULL) {
		cctx_send(c, rep);
		return;
	}
	c->sink(c->sink_arg, c, rep);
	atomic_fetch_add(&c->cl->replies, 1);
	lockd__request__free_unpacked(c->req, NULL);
	c->req = NULL;
	ld_cctx_put(c);
}

ld_cctx *ld_clients_take(ld_clients *cl, ld_cctx_sink sink, void *arg)
{
	ld_cctx *c = NULL;
	pthread_mutex_lock(&cl->http_mu);
	if (cl->nhttp_free > 0) {
		c = &cl->ctxs[cl->http_free[--cl->nhttp_free]];
		cl->http_pipe_next = (cl->http_pipe_next + 1) & 0x7fffffffu;
		c->pipe_id = 0x80000000u | cl->http_pipe_next;
	}
	pthread_mutex_unlock(&cl->http_mu);
	if (c != NULL) {
		c->sink = sink;
		c->sink_arg = arg;
		c->state = CCTX_IDLE;
	}
	return c;
}

void ld_cctx_put(ld_cctx *c)
{
	ld_clients *cl = c->cl;
	c->state = CCTX_IDLE;
	pthread_mutex_lock(&cl->http_mu);
	cl->http_free[cl->nhttp_free++] = c->index;
	pthread_mutex_unlock(&cl->http_mu);
}

int ld_cctx_submit(ld_cctx *c, const uint8_t *buf, size_t len, char *why,
		   size_t whylen)
{
	atomic_fetch_add(&c->cl->requests, 1);
	char tmp[160];
	const char *problem =
		request_decode(buf, len, &c->req, tmp, sizeof tmp);
	if (problem != NULL) {
		atomic_fetch_add(&c->cl->malformed, 1);
		snprintf(why, whylen, "%s", problem);
		return -1;
	}
	c->arrived_us = ld_mono_us();
	c->state = CCTX_LOOP;
	ld_evq_push_client(c->cl->q, c);
	return 0;
}

void ld_cctx_gone(ld_cctx *c)
{
	gone_push(c->cl, c->pipe_id);
}

int ld_clients_open(const char *url, const ld_tls *tls,
		    bool require_client_cert, ld_evq *q, ld_clients **out,
		    char *err, size_t errlen)
{
	ld_clients *cl = calloc(1, sizeof *cl);
	if (cl == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	*out = cl;
	cl->q = q;
	cl->bad_rl = (ld_ratelimit)LD_RATELIMIT_INIT(1000000);
	pthread_mutex_init(&cl->gone_mu, NULL);
	pthread_mutex_init(&cl->http_mu, NULL);
	for (uint32_t i = 0; i < LD_HTTP_CTX_MAX; i++) {
		ld_cctx *c = &cl->ctxs[LD_CLIENT_CTX_MAX + i];
		c->cl = cl;
		c->index = LD_CLIENT_CTX_MAX + i;
		cl->http_free[cl->nhttp_free++] = LD_CLIENT_SLOTS - 1 - i;
	}
	int rv;
	if ((rv = nng_rep0_open(&cl->sock)) != 0) {
		snprintf(err, errlen, "cannot open a client socket: %s",
			 nng_strerror(rv));
		return -1;
	}
	cl->sock_open = true;
	if ((rv = nng_pipe_notify(cl->sock, NNG_PIPE_EV_REM_POST, pipe_gone,
				  cl)) != 0) {
		snprintf(err, errlen, "cannot watch client connections: %s",
			 nng_strerror(rv));
		return -1;
	}
	nng_socket_set_size(cl->sock, NNG_OPT_RECVMAXSZ,
			    LD_CLIENT_REQUEST_BYTES_MAX);
	for (uint32_t i = 0; i < LD_CLIENT_CTX_MAX; i++) {
		ld_cctx *c = &cl->ctxs[i];
		c->cl = cl;
		c->index = i;
		if ((rv = nng_aio_alloc(&c->aio, cctx_cb, c)) != 0 ||
		    (rv = nng_ctx_open(&c->ctx, cl->sock)) != 0) {
			snprintf(err, errlen,
				 "cannot make client context %u: %s", i,
				 nng_strerror(rv));
			return -1;
		}
		cl->nctx = i + 1;
	}
	if (ld_tls_listen(cl->sock, url, tls, require_client_cert, err,
			  errlen) != 0)
		return -1;
	for (uint32_t i = 0; i < cl->nctx; i++)
		cctx_recv(&cl->ctxs[i]);
	return 0;
}

void ld_clients_stats_get(ld_clients *cl, ld_clients_stats *st)
{
	st->requests = atomic_load(&cl->requests);
	st->malformed = atomic_load(&cl->malformed);
	st->replies = atomic_load(&cl->replies);
	st->pipes_closed = atomic_load(&cl->pipes_closed);
}

void ld_clients_close(ld_clients *cl)
{
	if (cl == NULL)
		return;
	if (cl->sock_open)
		nng_close(cl->sock);
	for (uint32_t i = 0; i < LD_CLIENT_SLOTS; i++) {
		ld_cctx *c = &cl->ctxs[i];
		if (c->aio != NULL)
			nng_aio_free(c->aio); /* waits for its callback */
		if (c->req != NULL)
			lockd__request__free_unpacked(c->req, NULL);
	}
	pthread_mutex_destroy(&cl->http_mu);
	pthread_mutex_destroy(&cl->gone_mu);
	free(cl);
}
