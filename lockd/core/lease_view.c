/* Reads of the lease table: one lease, its waiters, listings by prefix in
 * name order, the sequencer check. They never change the table. */
#include "lease_int.h"

/* ---- reads ------------------------------------------------------------- */

void lease_view(const lease_rec *l, ls_view *v)
{
	*v = (ls_view){
		.name = l->name,
		.name_len = l->name_len,
		.holder = l->holder,
		.token = l->token,
		.ttl_ms = l->ttl_ms,
		.value = l->value,
		.value_len = l->value_len,
		.revoked = l->revoked,
		.reason = l->reason,
		.reason_len = l->reason_len,
		.renewed_clock_ms = l->renewed_clock_ms,
		.renewals = l->renewals,
		.granted_slot = l->granted_slot,
		.stamp_ms = l->stamp_ms,
		.nwaiters = l->nwaiters,
	};
}

ls_status ls_get(const ls_table *t, const char *name, uint32_t len,
		 ls_view *out)
{
	const lease_rec *l = lease_find(&t->st, name, len);
	if (l == NULL)
		return LS_NO_SUCH_LEASE;
	if (out != NULL)
		lease_view(l, out);
	return LS_OK;
}

ls_status ls_get_waiter(const ls_table *t, const char *name, uint32_t len,
			uint32_t i, ls_waiter_view *out)
{
	const lease_rec *l = lease_find(&t->st, name, len);
	if (l == NULL || i >= l->nwaiters)
		return LS_NO_SUCH_LEASE;
	const lease_waiter *w = l->whead;
	for (uint32_t k = 0; k < i; k++)
		w = w->next;
	if (out != NULL)
		*out = (ls_waiter_view){.session = w->session,
					.ttl_ms = w->ttl_ms,
					.wait_ms = w->wait_ms,
					.queued_slot = w->queued_slot};
	return LS_OK;
}

bool ls_waiting(const ls_table *t, const char *name, uint32_t len,
		uint64_t session)
{
	lease_rec *l = lease_find(&t->st, name, len);
	return l != NULL && lease_queue_pos(l, session, NULL) > 0;
}

static bool lease_has_prefix(const lease_rec *l, const char *prefix,
			     uint32_t len)
{
	return l->name_len >= len &&
	       (len == 0 || memcmp(l->name, prefix, len) == 0);
}

/* Is l's name after (a, alen) in name order? a NULL: everything is. */
static bool lease_after(const lease_rec *l, const char *a, uint32_t alen)
{
	if (a == NULL)
		return true;
	uint32_t n = l->name_len < alen ? l->name_len : alen;
	int c = memcmp(l->name, a, n);
	return c > 0 || (c == 0 && l->name_len > alen);
}

void ls_list_after(const ls_table *t, const char *prefix, uint32_t len,
		   const char *after, uint32_t after_len,
		   bool (*fn)(const ls_view *v, void *arg), void *arg)
{
	const lease_state *s = &t->st;
	ls_view view;
	if (prefix == NULL && len > 0)
		return;
	if (after != NULL && after_len == 0)
		after = NULL;
	/* The names with the prefix are one run in name order: start at the
	 * first of them past `after` and stop at the first without it. Each
	 * step is a descent of the index: O(log n), whatever the table. */
	const lease_rec *l =
		lease_index_first(s, prefix != NULL ? prefix : "", len, true);
	if (after != NULL && l != NULL && !lease_after(l, after, after_len))
		l = lease_index_first(s, after, after_len, false);
	while (l != NULL && lease_has_prefix(l, prefix, len)) {
		lease_view(l, &view);
		if (!fn(&view, arg))
			return;
		l = lease_index_first(s, l->name, l->name_len, false);
	}
}

void ls_list(const ls_table *t, const char *prefix, uint32_t len,
	     bool (*fn)(const ls_view *v, void *arg), void *arg)
{
	ls_list_after(t, prefix, len, NULL, 0, fn, arg);
}

void ls_for_each(const ls_table *t, bool (*fn)(const ls_view *v, void *arg),
		 void *arg)
{
	const lease_state *s = &t->st;
	ls_view view;
	for (size_t i = 0; i < s->by_name.nb; i++)
		for (lease_hnode *e = s->by_name.b[i]; e != NULL; e = e->next) {
			lease_view(LEASE_OF(e, lease_rec, by_name), &view);
			if (!fn(&view, arg))
				return;
		}
}

bool ls_check(const ls_table *t, const char *name, uint32_t len, uint64_t token)
{
	const lease_rec *l = lease_find(&t->st, name, len);
	return l != NULL && token != 0 && l->token == token;
}

uint32_t ls_session_leases(const ls_table *t, uint64_t session)
{
	const lease_session *ss = lease_session_find(&t->st, session);
	return ss == NULL ? 0 : ss->nheld;
}
