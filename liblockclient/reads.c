/* liblockclient reads: get, check, list, status (lockclient.h, "leases"
 * and "replicas"). Any replica may answer, at the client's read
 * consistency. */
#include "lc_internal.h"
#include "lockclient.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.pb-c.h"

/* ---- leases -------------------------------------------------------------- */

void lci_fill_info(lc_lease_info *info, const Lockd__Lease *l)
{
	memset(info, 0, sizeof *info);
	snprintf(info->name, sizeof info->name, "%s", l->name);
	info->holder = l->holder;
	info->token = l->token;
	info->ttl_ms = l->ttl_ms;
	info->ttl_ms_left = l->ttl_ms_left;
	info->in_grace = l->in_grace;
	info->revoked = l->revoked;
	size_t rl = l->revoke_reason.len < LC_REASON_BYTES_MAX
			    ? l->revoke_reason.len
			    : LC_REASON_BYTES_MAX;
	if (rl > 0)
		memcpy(info->revoke_reason, l->revoke_reason.data, rl);
	info->revoke_reason[rl] = '\0';
	info->waiters = l->waiters;
	info->value_len = l->value.len < LC_VALUE_BYTES_MAX
				  ? l->value.len
				  : LC_VALUE_BYTES_MAX;
	if (info->value_len > 0)
		memcpy(info->value, l->value.data, info->value_len);
}

/* lc_get, and *position (may be NULL) gets the answering replica's ledger
 * position whenever a replica answered (LC_ENOSUCH included). */
int lci_get_at(lc_client *c, const char *name, lc_lease_info *out,
	       uint64_t *position)
{
	memset(out, 0, sizeof *out);
	int rv = lci_check_name(name);
	if (rv != LC_OK)
		return rv;
	Lockd__Request req = LOCKD__REQUEST__INIT;
	req.op = LOCKD__OP__OP_GET;
	req.name = (char *)name;
	req.consistency = (Lockd__Consistency)c->o.read_consistency;
	call_result res;
	if ((rv = lci_call(c, &req, false, 0, NULL, &res)) != LC_OK)
		return rv;
	if (position != NULL)
		*position = res.rep->position;
	rv = lci_reply_code(res.rep);
	if (rv == LC_OK && res.rep->lease == NULL)
		rv = lci_fail(LC_ENOSUCH, "%s", lc_strerror(LC_ENOSUCH));
	if (rv == LC_OK)
		lci_fill_info(out, res.rep->lease);
	lockd__reply__free_unpacked(res.rep, NULL);
	return rv;
}

int lc_get(lc_client *c, const char *name, lc_lease_info *out)
{
	if (c == NULL || out == NULL)
		return lci_fail(LC_EINVAL, "lc_get: client or out is NULL");
	return lci_get_at(c, name, out, NULL);
}

int lc_check(lc_client *c, const char *name, uint64_t token, bool *current)
{
	if (c == NULL || current == NULL)
		return lci_fail(LC_EINVAL,
				"lc_check: client or current is NULL");
	*current = false;
	int rv = lci_check_name(name);
	if (rv != LC_OK)
		return rv;
	Lockd__Request req = LOCKD__REQUEST__INIT;
	req.op = LOCKD__OP__OP_CHECK;
	req.consistency = (Lockd__Consistency)c->o.read_consistency;
	req.name = (char *)name;
	req.token = token;
	call_result res;
	if ((rv = lci_call(c, &req, false, 0, NULL, &res)) != LC_OK)
		return rv;
	rv = lci_reply_code(res.rep);
	if (rv == LC_OK)
		*current = true;
	else if (rv == LC_ENOTHOLDER)
		rv = LC_OK;
	lockd__reply__free_unpacked(res.rep, NULL);
	return rv;
}

int lc_list(lc_client *c, const char *prefix, lc_list_fn fn, void *arg,
	    size_t *count)
{
	if (count != NULL)
		*count = 0;
	if (c == NULL || fn == NULL)
		return lci_fail(LC_EINVAL, "lc_list: client or fn is NULL");
	if (prefix == NULL)
		prefix = "";
	if (strlen(prefix) > LC_NAME_BYTES_MAX)
		return lci_fail(LC_EINVAL, "a prefix is at most %u bytes",
				LC_NAME_BYTES_MAX);
	lc_lease_info *info = malloc(sizeof *info);
	char *after = calloc(1, LC_NAME_BYTES_MAX + 1);
	int rv = LC_OK;
	if (info == NULL || after == NULL) {
		rv = lci_fail(LC_ENOMEM, "out of memory");
		goto out;
	}
	if (c->o.read_consistency == LC_LINEARIZABLE) {
		/* A replica lists its own table, so a linearizable listing
		 * starts with a linearizable read: its reply raises the
		 * client's known position past every write that finished
		 * before this call, and each page then waits for a replica
		 * that has applied that far. */
		rv = lci_get_at(c, "lockd/list-barrier", info, NULL);
		if (rv != LC_OK && rv != LC_ENOSUCH)
			goto out;
		rv = LC_OK;
	}
	/* Page by page, each from where the last ended: a page is the
	 * table at one position, so a long listing spans several. */
	for (bool more = true, go = true; more && go;) {
		Lockd__Request req = LOCKD__REQUEST__INIT;
		req.op = LOCKD__OP__OP_LIST;
		req.name = (char *)prefix;
		req.after_name = after;
		req.consistency = (Lockd__Consistency)c->o.read_consistency;
		call_result res;
		if ((rv = lci_call(c, &req, false, 0, NULL, &res)) != LC_OK)
			break;
		rv = lci_reply_code(res.rep);
		more = rv == LC_OK && res.rep->more && res.rep->n_leases > 0;
		for (size_t i = 0; rv == LC_OK && go && i < res.rep->n_leases;
		     i++) {
			lci_fill_info(info, res.rep->leases[i]);
			if (count != NULL)
				(*count)++;
			go = fn(info, arg);
		}
		if (more)
			snprintf(after, LC_NAME_BYTES_MAX + 1, "%s",
				 res.rep->leases[res.rep->n_leases - 1]->name);
		lockd__reply__free_unpacked(res.rep, NULL);
	}
out:
	free(info);
	free(after);
	return rv;
}

/* ---- replicas ------------------------------------------------------------ */

int lc_status(lc_client *c, uint32_t i, lc_replica_status *out)
{
	if (c == NULL || out == NULL)
		return lci_fail(LC_EINVAL, "lc_status: client or out is NULL");
	memset(out, 0, sizeof *out);
	if (i >= lci_ep_count(c))
		return lci_fail(LC_EINVAL,
				"no endpoint %u: the client knows %u", i,
				lci_ep_count(c));
	Lockd__Request req = LOCKD__REQUEST__INIT;
	req.op = LOCKD__OP__OP_STATUS;
	req.known_position = atomic_load(&c->known);
	uint64_t sent;
	Lockd__Reply *rep;
	int rv = lci_attempt(c, i, &req, c->o.attempt_timeout_ms, NULL, &sent,
			     &rep);
	if (rv != LC_OK)
		return rv;
	lci_see_position(c, rep->position);
	if (rep->status != LOCKD__STATUS__STATUS_OK || rep->replica == NULL) {
		rv = lci_fail(
			LC_EPROTO, "%s answered STATUS with status %d: %s",
			lc_endpoint_url(c, i), (int)rep->status, rep->error);
	} else {
		const Lockd__ReplicaStatus *s = rep->replica;
		out->id = s->id;
		snprintf(out->role, sizeof out->role, "%s", s->role);
		out->ballot_round = s->ballot_round;
		out->ballot_id = s->ballot_id;
		out->leader = s->leader;
		out->commit = s->commit;
		out->applied = s->applied;
		out->snapshot_base = s->snapshot_base;
		out->leases = s->leases;
		snprintf(out->leader_addr, sizeof out->leader_addr, "%s",
			 rep->leader_addr);
		out->voter = s->voter;
		out->member = s->member;
		out->members = s->members;
		out->voters = s->voters;
		snprintf(out->version, sizeof out->version, "%s", s->version);
		out->uptime_s = s->uptime_s;
		out->snapshot_bytes = s->snapshot_bytes;
	}
	lockd__reply__free_unpacked(rep, NULL);
	return rv;
}

int lc_watch_prefix(lc_client *c, const char *prefix, uint64_t after_position,
		    uint32_t wait_ms, lc_change *out, size_t cap, size_t *n,
		    uint64_t *position, bool *history_lost)
{
	if (c == NULL || prefix == NULL || n == NULL || position == NULL ||
	    history_lost == NULL || (out == NULL && cap > 0))
		return lci_fail(LC_EINVAL, "lc_watch_prefix: a NULL argument");
	*n = 0;
	*history_lost = false;
	*position = after_position;
	if (prefix[0] != '\0') {
		int rv = lci_check_name(prefix);
		if (rv != LC_OK)
			return rv;
	}
	Lockd__Request req = LOCKD__REQUEST__INIT;
	req.op = LOCKD__OP__OP_WATCH;
	req.name = (char *)prefix;
	req.prefix = true;
	req.after_position = after_position;
	req.wait_ms = wait_ms;
	req.consistency = (Lockd__Consistency)c->o.read_consistency;
	call_result res;
	int rv = lci_call(c, &req, false, wait_ms, NULL, &res);
	if (rv != LC_OK)
		return rv;
	const Lockd__Reply *rep = res.rep;
	if (rep->status == LOCKD__STATUS__STATUS_TIMEOUT) {
		if (rep->position > after_position)
			*position = rep->position;
		lockd__reply__free_unpacked(res.rep, NULL);
		return lci_fail(LC_ETIMEOUT, "no change under %s within %u ms",
				prefix, wait_ms);
	}
	rv = lci_reply_code(rep);
	if (rv == LC_OK) {
		*position = rep->position;
		*history_lost = rep->history_lost;
		for (size_t i = 0; i < rep->n_leases && *n < cap; i++) {
			lc_change *ch = &out[(*n)++];
			memset(ch, 0, sizeof *ch);
			ch->held = !rep->leases[i]->freed;
			lci_fill_info(&ch->lease, rep->leases[i]);
		}
	}
	lockd__reply__free_unpacked(res.rep, NULL);
	return rv;
}
