#include "join.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "client.pb-c.h"
#include "ldlog.h"
#include "tls.h"

/* One member's answer is awaited this long before the next is asked. */
#define JOIN_ASK_MS 1000

/* Fills *out from a MEMBERS reply; -1 with a sentence when it is not one. */
static int join_from_reply(const Lockd__Reply *rep, const char *url,
			   px_members *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	if (rep->status != LOCKD__STATUS__STATUS_OK) {
		snprintf(err, errlen,
			 "%s did not list the cell's members (status %d): %s",
			 url, (int)rep->status, rep->error);
		return -1;
	}
	if (rep->n_members == 0 || rep->n_members > LD_REPLICAS_MAX) {
		snprintf(err, errlen,
			 "%s listed %zu members; a cell has 1 to %u", url,
			 rep->n_members, LD_REPLICAS_MAX);
		return -1;
	}
	for (size_t i = 0; i < rep->n_removed; i++) {
		if (rep->removed[i] >= LD_REPLICA_IDS) {
			snprintf(err, errlen,
				 "%s listed removed replica id %u, over %u",
				 url, rep->removed[i], LD_REPLICA_IDS - 1);
			return -1;
		}
		out->removed |= UINT64_C(1) << rep->removed[i];
	}
	for (size_t i = 0; i < rep->n_members; i++) {
		const Lockd__CellMember *cm = rep->members[i];
		px_member *m = &out->m[i];
		if (cm->id >= LD_REPLICA_IDS ||
		    (i > 0 && cm->id <= out->m[i - 1].id) ||
		    strlen(cm->peer) >= LD_URL_BYTES_MAX ||
		    strlen(cm->client) >= LD_URL_BYTES_MAX) {
			snprintf(err, errlen,
				 "%s listed a member that is not one (id %u, "
				 "out of order, or a URL over %u bytes)",
				 url, cm->id, LD_URL_BYTES_MAX - 1);
			return -1;
		}
		m->id = cm->id;
		m->voting = cm->voting;
		m->incarnation = cm->incarnation;
		strcpy(m->peer, cm->peer);
		strcpy(m->client, cm->client);
		if (m->peer[0] == '\0') {
			snprintf(err, errlen,
				 "%s does not know member %u's peer URL, so "
				 "this replica could not reach it: ask another "
				 "member (--join)",
				 url, cm->id);
			return -1;
		}
	}
	out->n = (uint32_t)rep->n_members;
	return 0;
}

/* One request to url within JOIN_ASK_MS. */
static int join_ask(const ld_options *o, const char *url, px_members *out,
		    char *err, size_t errlen)
{
	nng_socket sock;
	int rv = nng_req0_open(&sock);
	if (rv != 0) {
		snprintf(err, errlen, "cannot open a socket to ask %s: %s", url,
			 nng_strerror(rv));
		return -1;
	}
	nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, JOIN_ASK_MS);
	nng_socket_set_ms(sock, NNG_OPT_SENDTIMEO, JOIN_ASK_MS);
	nng_socket_set_size(sock, NNG_OPT_RECVMAXSZ, 1u << 20);
	ld_tls tls = {o->tls_cert, o->tls_ca};
	int result = -1;
	if (ld_tls_dial(sock, url, &tls, err, errlen) != 0)
		goto out;
	Lockd__Request req = LOCKD__REQUEST__INIT;
	req.op = LOCKD__OP__OP_MEMBERS;
	req.consistency = LOCKD__CONSISTENCY__STALE;
	size_t len = lockd__request__get_packed_size(&req);
	uint8_t buf[64];
	if (len > sizeof buf) {
		snprintf(err, errlen, "the MEMBERS request does not fit");
		goto out;
	}
	lockd__request__pack(&req, buf);
	if ((rv = nng_send(sock, buf, len, 0)) != 0) {
		snprintf(err, errlen, "%s: %s", url, nng_strerror(rv));
		goto out;
	}
	nng_msg *m;
	if ((rv = nng_recvmsg(sock, &m, 0)) != 0) {
		snprintf(err, errlen, "%s: %s", url, nng_strerror(rv));
		goto out;
	}
	Lockd__Reply *rep =
		lockd__reply__unpack(NULL, nng_msg_len(m), nng_msg_body(m));
	nng_msg_free(m);
	if (rep == NULL) {
		snprintf(err, errlen, "%s sent a reply that does not decode",
			 url);
		goto out;
	}
	result = join_from_reply(rep, url, out, err, errlen);
	lockd__reply__free_unpacked(rep, NULL);
out:
	nng_close(sock);
	return result;
}

int ld_join_fetch(const ld_options *o, uint32_t timeout_ms, px_members *out,
		  const char **from_url, char *err, size_t errlen)
{
	uint64_t end = ld_mono_us() + (uint64_t)timeout_ms * 1000u;
	char last[512] = "";
	for (uint32_t k = 0;; k++) {
		const char *url = o->join[k % o->njoin];
		if (join_ask(o, url, out, last, sizeof last) == 0) {
			*from_url = url;
			return 0;
		}
		ld_log("warn", "join_ask", "url=%s error=\"%s\"", url, last);
		if (ld_mono_us() >= end)
			break;
		struct timespec ts = {0, 200 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	snprintf(err, errlen,
		 "no member of the cell at --join answered with its "
		 "members within %u ms (last: %s)",
		 timeout_ms, last);
	return -1;
}

int ld_join_check(const ld_options *o, const px_members *m, char *err,
		  size_t errlen)
{
	if (m->removed >> o->id & 1u) {
		snprintf(err, errlen,
			 "replica id %u left this cell, and ids are never "
			 "used twice: start the new replica with an id the "
			 "cell never had",
			 o->id);
		return -1;
	}
	const px_member *me = px_members_find(m, o->id);
	if (me != NULL && (strcmp(me->peer, o->listen_peer) != 0 ||
			   strcmp(me->client, o->listen_client) != 0)) {
		snprintf(err, errlen,
			 "replica id %u is already a member of this cell at "
			 "peer URL %s and client URL %s, not this replica's "
			 "%s and %s: pick an id the cell never had",
			 o->id, me->peer, me->client, o->listen_peer,
			 o->listen_client);
		return -1;
	}
	for (uint32_t i = 0; i < m->n; i++) {
		const px_member *x = &m->m[i];
		if (x->id != o->id &&
		    (strcmp(x->peer, o->listen_peer) == 0 ||
		     strcmp(x->client, o->listen_client) == 0)) {
			snprintf(err, errlen,
				 "member %u of this cell already uses %s: "
				 "give this replica URLs of its own",
				 x->id,
				 strcmp(x->peer, o->listen_peer) == 0
					 ? o->listen_peer
					 : o->listen_client);
			return -1;
		}
	}
	return 0;
}
