#include "transport.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/pipeline0/pull.h>
#include <nng/protocol/pipeline0/push.h>

#include "codec.h"
#include "ldlog.h"
#include "peer_auth.h"
#include "tls.h"

/* The largest peer message: the codec refuses to encode or decode more, so
 * nng may drop anything larger (with its MAC trailer) before it is even
 * buffered. */
#define PEER_RECV_BYTES_MAX \
	((size_t)LD_MESSAGE_BYTES_MAX + PA_TRAILER_BYTES)

/* Messages queued per peer while its connection is busy. */
#define PEER_SENDBUF_MSGS 256

/* The argument of a push socket's pipe callback: whom it dials. */
struct peers_dest {
	ld_peers *p;
	uint32_t id;
};

struct ld_peers {
	uint32_t id;
	uint64_t cell_id;
	pa_key key; /* key.len == 0: no MAC (TLS, or insecure) */
	/* The peer port is TLS: every message's from must be the replica the
	 * connection's certificate names (tls.h). */
	bool tls_ids;
	ld_evq *q;
	nng_socket pull;
	bool pull_open;
	nng_aio *rx;
	/* By replica id: who this replica dials (ld_peers_dial), and where. */
	nng_socket push[LD_REPLICA_IDS];
	bool push_open[LD_REPLICA_IDS];
	char push_url[LD_REPLICA_IDS][LD_URL_BYTES_MAX];
	struct peers_dest dest[LD_REPLICA_IDS];
	ld_tls tls;
	atomic_uint_fast64_t sent, send_dropped, encode_failed;
	atomic_uint_fast64_t received, refused;
	ld_ratelimit refuse_rl, drop_rl, encode_rl;
};

static const char *msg_type_name(px_msg_type t)
{
	static const char *const names[] = {
		"?",        "prepare", "promise",    "accept",      "accepted",
		"reject",   "commit",  "commit_ack", "catchup_req", "catchup",
		"snapshot", "probe",   "probe_ack",
	};
	return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "?";
}

static void peers_refuse(ld_peers *p, const char *why, size_t len)
{
	atomic_fetch_add(&p->refused, 1);
	uint64_t suppressed;
	if (ld_ratelimit_pass(&p->refuse_rl, &suppressed))
		ld_log("warn", "peer_refused",
		       "reason=\"%s\" bytes=%zu suppressed=%llu", why, len,
		       (unsigned long long)suppressed);
}

/* The far end of a pipe, for a log line: "IP:port", or "?". */
static void peers_pipe_addr(nng_pipe pipe, char *buf, size_t cap)
{
	nng_sockaddr sa;
	snprintf(buf, cap, "?");
	if (nng_pipe_get_addr(pipe, NNG_OPT_REMADDR, &sa) != 0 ||
	    sa.s_family != NNG_AF_INET)
		return;
	const uint8_t *a = (const uint8_t *)&sa.s_in.sa_addr;
	const uint8_t *port = (const uint8_t *)&sa.s_in.sa_port;
	snprintf(buf, cap, "%u.%u.%u.%u:%u", a[0], a[1], a[2], a[3],
		 (unsigned)port[0] << 8 | port[1]);
}

/* A TLS connection whose certificate does not name the replica it must be
 * is closed before any message crosses it: on the peer port (pull), any
 * other replica of this cell (a client's certificate names none); on a
 * dialed connection (push), the replica whose URL was dialed. */
static void peers_pipe_check(ld_peers *p, nng_pipe pipe, int32_t want)
{
	int32_t id = ld_tls_pipe_replica(pipe);
	bool ok = want >= 0 ? id == want
			    : id >= 0 && (uint32_t)id < LD_REPLICA_IDS &&
				      (uint32_t)id != p->id;
	if (ok)
		return;
	atomic_fetch_add(&p->refused, 1);
	uint64_t suppressed;
	if (!ld_ratelimit_pass(&p->refuse_rl, &suppressed)) {
		nng_pipe_close(pipe);
		return;
	}
	char addr[64];
	peers_pipe_addr(pipe, addr, sizeof addr);
	nng_pipe_close(pipe);
	const char *why =
		want >= 0 ? "the dialed peer's certificate names another "
			    "replica, or none"
		: id < 0  ? "a connection whose certificate names no replica "
			    "(CN lockd-replica-N): a client's?"
			  : "a connection whose certificate names no other "
			    "replica of this cell";
	ld_log("warn", "peer_refused",
	       "reason=\"%s\" remote=%s cert_replica=%d want=%d "
	       "suppressed=%llu",
	       why, addr, (int)id, (int)want, (unsigned long long)suppressed);
}

static void peers_pull_pipe_cb(nng_pipe pipe, nng_pipe_ev ev, void *arg)
{
	if (ev == NNG_PIPE_EV_ADD_PRE)
		peers_pipe_check(arg, pipe, -1);
}

static void peers_push_pipe_cb(nng_pipe pipe, nng_pipe_ev ev, void *arg)
{
	const struct peers_dest *d = arg;
	if (ev == NNG_PIPE_EV_ADD_PRE)
		peers_pipe_check(d->p, pipe, (int32_t)d->id);
}

static void peers_rx_cb(void *arg)
{
	ld_peers *p = arg;
	int rv = nng_aio_result(p->rx);
	if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
		return;
	if (rv == 0) {
		nng_msg *nm = nng_aio_get_msg(p->rx);
		size_t len = nng_msg_len(nm), body_len = len;
		const uint8_t *body = nng_msg_body(nm);
		int32_t cert_id =
			p->tls_ids ? ld_tls_pipe_replica(nng_msg_get_pipe(nm))
				   : -1;
		uint32_t mac_from = 0;
		const char *why = NULL;
		px_msg *m = NULL;
		int crv = 0;
		/* The cell key first: the codec sees only what a key holder
		 * sent, to this replica. */
		if (p->key.len > 0)
			why = pa_mac_open(&p->key, p->cell_id, p->id, body,
					       len, &body_len, &mac_from);
		if (why == NULL)
			crv = cd_msg_decode(body, body_len, &m);
		nng_msg_free(nm);
		atomic_fetch_add(&p->received, 1);
		if (why != NULL) {
			peers_refuse(p, why, len);
		} else if (crv != 0) {
			peers_refuse(p, cd_strerror(crv), len);
		} else if (p->key.len > 0 && m->from != mac_from) {
			peers_refuse(p,
				     "from differs from the sender the MAC "
				     "names",
				     len);
			px_msg_free(m);
		} else if (p->tls_ids &&
			   (cert_id < 0 || (uint32_t)cert_id != m->from)) {
			peers_refuse(p,
				     "from is not the replica the sender's "
				     "certificate names",
				     len);
			px_msg_free(m);
		} else if (m->to != p->id) {
			peers_refuse(p, "addressed to another replica", len);
			px_msg_free(m);
		} else if (m->from == p->id) {
			peers_refuse(p, "claims to come from this replica",
				     len);
			px_msg_free(m);
		} else if (!ld_evq_push_peer(p->q, m)) {
			uint64_t suppressed;
			if (ld_ratelimit_pass(&p->drop_rl, &suppressed))
				ld_log("warn", "peer_queue_full",
				       "suppressed=%llu",
				       (unsigned long long)suppressed);
			px_msg_free(m);
		}
	}
	nng_recv_aio(p->pull, p->rx);
}

static int peers_fail(char *err, size_t errlen, const char *what,
		      const char *url, int rv)
{
	snprintf(err, errlen, "%s %s: %s", what, url, nng_strerror(rv));
	return -1;
}

int ld_peers_open(const ld_options *o, const char *url, ld_evq *q,
		  ld_peers **out, char *err, size_t errlen)
{
	ld_peers *p = calloc(1, sizeof *p);
	if (p == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	p->id = o->id;
	p->cell_id = o->cell_id;
	p->key = o->peer_key;
	p->q = q;
	p->refuse_rl = (ld_ratelimit)LD_RATELIMIT_INIT(1000000);
	p->drop_rl = (ld_ratelimit)LD_RATELIMIT_INIT(1000000);
	p->encode_rl = (ld_ratelimit)LD_RATELIMIT_INIT(1000000);
	p->tls = (ld_tls){o->tls_cert, o->tls_ca};
	*out = p;

	int rv;
	if ((rv = nng_pull0_open(&p->pull)) != 0)
		return peers_fail(err, errlen, "cannot open a socket for", url,
				  rv);
	p->pull_open = true;
	nng_socket_set_size(p->pull, NNG_OPT_RECVMAXSZ, PEER_RECV_BYTES_MAX);
	if ((rv = nng_aio_alloc(&p->rx, peers_rx_cb, p)) != 0)
		return peers_fail(err, errlen, "cannot receive on", url, rv);
	p->tls_ids = ld_tls_url(url);
	if (p->tls_ids && (rv = nng_pipe_notify(p->pull, NNG_PIPE_EV_ADD_PRE,
						peers_pull_pipe_cb, p)) != 0)
		return peers_fail(err, errlen, "cannot watch connections to",
				  url, rv);
	if (ld_tls_listen(p->pull, url, &p->tls, true, err, errlen) != 0)
		return -1;
	nng_recv_aio(p->pull, p->rx);
	return 0;
}

int ld_peers_dial(ld_peers *p, uint32_t id, const char *url, char *err,
		  size_t errlen)
{
	if (id >= LD_REPLICA_IDS || id == p->id || url == NULL ||
	    url[0] == '\0' || strlen(url) >= LD_URL_BYTES_MAX) {
		snprintf(err, errlen,
			 "cannot dial replica %u at '%s': not another "
			 "replica's id below %u with a URL",
			 id, url != NULL ? url : "", LD_REPLICA_IDS);
		return -1;
	}
	if (p->push_open[id] && strcmp(p->push_url[id], url) == 0)
		return 0;
	ld_peers_undial(p, id);
	int rv;
	if ((rv = nng_push0_open(&p->push[id])) != 0)
		return peers_fail(err, errlen, "cannot open a socket for", url,
				  rv);
	p->push_open[id] = true;
	snprintf(p->push_url[id], sizeof p->push_url[id], "%s", url);
	/* A burst (a leader's pipeline) queues rather than drops. */
	nng_socket_set_int(p->push[id], NNG_OPT_SENDBUF, PEER_SENDBUF_MSGS);
	/* A restarted peer is reachable again within ~100 ms. */
	nng_socket_set_ms(p->push[id], NNG_OPT_RECONNMINT, 50);
	nng_socket_set_ms(p->push[id], NNG_OPT_RECONNMAXT, 500);
	p->dest[id] = (struct peers_dest){p, id};
	if (ld_tls_url(url) &&
	    (rv = nng_pipe_notify(p->push[id], NNG_PIPE_EV_ADD_PRE,
				  peers_push_pipe_cb, &p->dest[id])) != 0) {
		ld_peers_undial(p, id);
		return peers_fail(err, errlen, "cannot watch connections to",
				  url, rv);
	}
	if (ld_tls_dial(p->push[id], url, &p->tls, err, errlen) != 0) {
		ld_peers_undial(p, id);
		return -1;
	}
	return 0;
}

void ld_peers_undial(ld_peers *p, uint32_t id)
{
	if (id >= LD_REPLICA_IDS || !p->push_open[id])
		return;
	nng_close(p->push[id]);
	p->push_open[id] = false;
	p->push_url[id][0] = '\0';
}

const char *ld_peers_dialed(const ld_peers *p, uint32_t id)
{
	return id < LD_REPLICA_IDS && p->push_open[id] ? p->push_url[id] : NULL;
}

void ld_peers_send(ld_peers *p, const px_msg *m)
{
	if (m->to >= LD_REPLICA_IDS || m->to == p->id || !p->push_open[m->to])
		return;
	uint8_t *buf;
	size_t len;
	int crv = cd_msg_encode(m, &buf, &len);
	if (crv != 0) {
		atomic_fetch_add(&p->encode_failed, 1);
		uint64_t suppressed;
		if (ld_ratelimit_pass(&p->encode_rl, &suppressed))
			ld_log("error", "peer_encode_failed",
			       "type=%s to=%u reason=\"%s\" suppressed=%llu",
			       msg_type_name(m->type), m->to,
			       cd_strerror(crv),
			       (unsigned long long)suppressed);
		return;
	}
	if (p->key.len > 0) {
		uint8_t *sealed = realloc(buf, len + PA_TRAILER_BYTES);
		if (sealed == NULL ||
		    pa_mac_seal(&p->key, p->cell_id, p->id, m->to, sealed,
				     len, sealed + len) != 0) {
			free(sealed != NULL ? sealed : buf);
			atomic_fetch_add(&p->encode_failed, 1);
			return;
		}
		buf = sealed;
		len += PA_TRAILER_BYTES;
	}
	int rv = nng_send(p->push[m->to], buf, len, NNG_FLAG_NONBLOCK);
	free(buf);
	if (rv == 0)
		atomic_fetch_add(&p->sent, 1);
	else
		atomic_fetch_add(&p->send_dropped, 1);
}

void ld_peers_stats_get(ld_peers *p, ld_peers_stats *st)
{
	st->sent = atomic_load(&p->sent);
	st->send_dropped = atomic_load(&p->send_dropped);
	st->encode_failed = atomic_load(&p->encode_failed);
	st->received = atomic_load(&p->received);
	st->refused = atomic_load(&p->refused);
}

void ld_peers_close(ld_peers *p)
{
	if (p == NULL)
		return;
	if (p->pull_open)
		nng_close(p->pull);
	for (uint32_t j = 0; j < LD_REPLICA_IDS; j++)
		if (p->push_open[j])
			nng_close(p->push[j]);
	/* Waits for a callback still running. */
	if (p->rx != NULL)
		nng_aio_free(p->rx);
	free(p);
}
