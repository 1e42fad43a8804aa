/* liblockclient membership (lockclient.h, "membership"): list, add and
 * remove the cell's replicas. */
#include "lc_internal.h"
#include "lockclient.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.pb-c.h"

/* ---- membership ---------------------------------------------------------- */

const lc_member *lc_members_find(const lc_members *m, uint32_t id)
{
	for (uint32_t i = 0; m != NULL && i < m->n; i++)
		if (m->m[i].id == id)
			return &m->m[i];
	return NULL;
}

/* Fills *out from a MEMBERS or MEMBER_CHANGE reply; LC_EPROTO when it
 * cannot be one. */
static int members_fill(const Lockd__Reply *rep, lc_members *out)
{
	memset(out, 0, sizeof *out);
	if (rep->n_members > LC_MEMBERS_MAX)
		return lci_fail(LC_EPROTO,
				"a replica listed %zu members, over %u",
				rep->n_members, LC_MEMBERS_MAX);
	out->n = (uint32_t)rep->n_members;
	for (uint32_t i = 0; i < out->n; i++) {
		const Lockd__CellMember *cm = rep->members[i];
		lc_member *m = &out->m[i];
		m->id = cm->id;
		m->voting = cm->voting;
		m->incarnation = cm->incarnation;
		snprintf(m->peer, sizeof m->peer, "%s", cm->peer);
		snprintf(m->client, sizeof m->client, "%s", cm->client);
	}
	for (size_t i = 0; i < rep->n_removed; i++)
		if (rep->removed[i] < LC_REPLICA_IDS)
			out->removed |= UINT64_C(1) << rep->removed[i];
	out->from_position = rep->members_from;
	out->leader = rep->leader_hint;
	snprintf(out->leader_addr, sizeof out->leader_addr, "%s",
		 rep->leader_addr);
	out->change_position = rep->change_slot;
	return LC_OK;
}

static int members_code(const Lockd__Reply *r)
{
	switch (r->status) {
	case LOCKD__STATUS__STATUS_OK:
		return LC_OK;
	case LOCKD__STATUS__STATUS_REFUSED:
		return lci_fail(LC_EREFUSED, "%s",
				r->error[0] ? r->error
					    : lc_strerror(LC_EREFUSED));
	case LOCKD__STATUS__STATUS_INVALID:
		return lci_fail(LC_EINVAL, "%s",
				r->error[0] ? r->error
					    : lc_strerror(LC_EINVAL));
	default:
		return lci_fail(LC_EPROTO, "unexpected reply status %d: %s",
				(int)r->status, r->error);
	}
}

int lc_members_list(lc_client *c, lc_members *out)
{
	if (c == NULL || out == NULL)
		return lci_fail(LC_EINVAL,
				"lc_members_list: client or out is NULL");
	memset(out, 0, sizeof *out);
	Lockd__Request req = LOCKD__REQUEST__INIT;
	req.op = LOCKD__OP__OP_MEMBERS;
	call_result res;
	int rv = lci_call(c, &req, false, 0, NULL, &res);
	if (rv != LC_OK)
		return rv;
	rv = members_code(res.rep);
	if (rv == LC_OK)
		rv = members_fill(res.rep, out);
	lockd__reply__free_unpacked(res.rep, NULL);
	return rv;
}

/* One change, at the leader; retried (BUSY: another change is still taking
 * effect) within the call's timeout. */
static int member_change(lc_client *c, Lockd__Request *req, lc_members *out)
{
	lc_members *tmp = NULL;
	if (out == NULL && (out = tmp = malloc(sizeof *tmp)) == NULL)
		return lci_fail(LC_ENOMEM, "out of memory");
	memset(out, 0, sizeof *out);
	req->op = LOCKD__OP__OP_MEMBER_CHANGE;
	call_result res;
	int rv = lci_call(c, req, true, 0, NULL, &res);
	if (rv == LC_OK) {
		rv = members_code(res.rep);
		if (rv == LC_OK)
			rv = members_fill(res.rep, out);
		lockd__reply__free_unpacked(res.rep, NULL);
	}
	free(tmp);
	return rv;
}

int lc_member_add(lc_client *c, uint32_t id, const char *peer_url,
		  const char *client_url, lc_members *out)
{
	if (c == NULL)
		return lci_fail(LC_EINVAL, "lc_member_add: client is NULL");
	if (id >= LC_REPLICA_IDS)
		return lci_fail(LC_EINVAL, "replica ids are 0 to %u, not %u",
				LC_REPLICA_IDS - 1, id);
	if (peer_url == NULL || client_url == NULL || peer_url[0] == '\0' ||
	    client_url[0] == '\0' || strlen(peer_url) > LC_URL_BYTES_MAX - 1 ||
	    strlen(client_url) > LC_URL_BYTES_MAX - 1)
		return lci_fail(
			LC_EINVAL,
			"a new member needs its peer URL and its client "
			"URL, each 1-%u bytes",
			LC_URL_BYTES_MAX - 1);
	Lockd__Request req = LOCKD__REQUEST__INIT;
	req.member_op = LOCKD__MEMBER_OP__MEMBER_ADD;
	req.member_id = id;
	req.member_peer = (char *)peer_url;
	req.member_client = (char *)client_url;
	return member_change(c, &req, out);
}

int lc_member_remove(lc_client *c, uint32_t id, lc_members *out)
{
	if (c == NULL)
		return lci_fail(LC_EINVAL, "lc_member_remove: client is NULL");
	if (id >= LC_REPLICA_IDS)
		return lci_fail(LC_EINVAL, "replica ids are 0 to %u, not %u",
				LC_REPLICA_IDS - 1, id);
	Lockd__Request req = LOCKD__REQUEST__INIT;
	req.member_op = LOCKD__MEMBER_OP__MEMBER_REMOVE;
	req.member_id = id;
	return member_change(c, &req, out);
}
