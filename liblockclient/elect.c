/* liblockclient elections (lockclient.h, "elections"): a group is a lease
 * name; lc_leader reads it, lc_observe follows it with the cell's WATCH,
 * lc_campaign and lc_resign run through a session. */
#include "lc_internal.h"
#include "lockclient.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client.pb-c.h"

/* ---- leaders and their changes ------------------------------------------- */

int lc_leader(lc_client *c, const char *group, lc_leader_info *out)
{
	if (c == NULL || out == NULL)
		return lci_fail(LC_EINVAL, "lc_leader: client or out is NULL");
	out->position = 0;
	out->elected = false;
	out->history_lost = false;
	int rv = lci_get_at(c, group, &out->lease, &out->position);
	if (rv == LC_ENOSUCH)
		memset(&out->lease, 0, sizeof out->lease);
	out->elected = rv == LC_OK;
	return rv;
}

void lc_observe_options_init(lc_observe_options *o)
{
	memset(o, 0, sizeof *o);
}

#define OBSERVE_SLICE_MS_DEFAULT 1000u

/* One WATCH: the first change of group after *after, within slice_ms.
 * LC_OK / LC_ENOSUCH with *r filled; LC_ETIMEOUT when nothing changed (then
 * *after moves up to where the replica looked); else a call's error. */
static int watch_once(lc_client *c, const char *group, uint64_t *after,
		      uint32_t slice_ms, lc_leader_info *r)
{
	Lockd__Request req = LOCKD__REQUEST__INIT;
	req.op = LOCKD__OP__OP_WATCH;
	req.name = (char *)group;
	req.after_position = *after;
	req.wait_ms = slice_ms;
	req.consistency = (Lockd__Consistency)c->o.read_consistency;
	call_result res;
	int rv = lci_call(c, &req, false, slice_ms, NULL, &res);
	if (rv != LC_OK)
		return rv;
	const Lockd__Reply *rep = res.rep;
	if (rep->status == LOCKD__STATUS__STATUS_TIMEOUT) {
		if (rep->position > *after)
			*after = rep->position;
		lockd__reply__free_unpacked(res.rep, NULL);
		return LC_ETIMEOUT;
	}
	rv = lci_reply_code(rep);
	if (rv == LC_OK && rep->lease == NULL)
		rv = lci_fail(LC_ENOSUCH, "%s", lc_strerror(LC_ENOSUCH));
	if (rv == LC_OK || rv == LC_ENOSUCH) {
		memset(r, 0, sizeof *r);
		r->position = rep->position;
		r->elected = rv == LC_OK;
		r->history_lost = rep->history_lost;
		if (rv == LC_OK)
			lci_fill_info(&r->lease, rep->lease);
	}
	lockd__reply__free_unpacked(res.rep, NULL);
	return rv;
}

int lc_observe(lc_client *c, const char *group, uint64_t after_position,
	       uint64_t after_token, const lc_observe_options *opt,
	       lc_leader_info *out)
{
	if (c == NULL || out == NULL)
		return lci_fail(LC_EINVAL, "lc_observe: client or out is NULL");
	int rv = lci_check_name(group);
	if (rv != LC_OK)
		return rv;
	lc_observe_options o;
	lc_observe_options_init(&o);
	if (opt != NULL)
		o = *opt;
	if (o.interval_ms == 0)
		o.interval_ms = OBSERVE_SLICE_MS_DEFAULT;
	uint64_t end = o.timeout_ms ? lc_now_us() + o.timeout_ms * 1000ull
				    : UINT64_MAX;
	lc_leader_info *r = malloc(sizeof *r);
	if (r == NULL)
		return lci_fail(LC_ENOMEM, "out of memory");
	uint64_t after = after_position;
	for (;;) {
		if (o.cancelled != NULL && o.cancelled(o.arg)) {
			rv = lci_fail(LC_ECANCELED, "lc_observe: cancelled");
			break;
		}
		uint64_t now = lc_now_us();
		if (now >= end) {
			rv = lci_fail(
				LC_ETIMEOUT,
				"lc_observe: no change of %s within %u ms",
				group, o.timeout_ms);
			break;
		}
		uint64_t slice_ms = o.interval_ms;
		if (end != UINT64_MAX && (end - now) / 1000u < slice_ms)
			slice_ms =
				(end - now) / 1000u ? (end - now) / 1000u : 1;
		rv = watch_once(c, group, &after, (uint32_t)slice_ms, r);
		if (rv == LC_ETIMEOUT)
			continue;
		if (rv != LC_OK && rv != LC_ENOSUCH)
			break;
		/* The feed gives changes, but a replica that lost its history
		 * gives the current state, which may be what the caller knows:
		 * not a change. A feed entry with the caller's token is the
		 * holder's new value (lc_proclaim): a change. */
		uint64_t token = r->elected ? r->lease.token : 0;
		if (token != after_token || (r->elected && !r->history_lost)) {
			*out = *r;
			break;
		}
		if (r->position > after)
			after = r->position;
	}
	free(r);
	return rv;
}

/* ---- campaigns ----------------------------------------------------------- */

#define CAMPAIGN_WAIT_MS_DEFAULT 1000u
#define CAMPAIGN_RETRY_MS_DEFAULT 500u
/* An acquire that comes back "held" well before its wait ran out was not
 * queued: the holder is this very session (its lease was revoked: it
 * cannot wait behind itself, and the name passes on only at the lease's
 * expiry), or the cell refused to queue it. Asking again at once would
 * spin (issue 16: 2,000 requests in 3 s), so such tries back off, from
 * MIN doubling up to MAX, each pause drawn in [pause/2, pause]. */
#define CAMPAIGN_BACKOFF_MS_MIN 50u
#define CAMPAIGN_BACKOFF_MS_MAX 2000u

void lc_campaign_options_init(lc_campaign_options *o)
{
	memset(o, 0, sizeof *o);
}

static void campaign_sleep_ms(uint32_t ms)
{
	struct timespec ts = {(time_t)(ms / 1000u),
			      (long)(ms % 1000u) * 1000000L};
	nanosleep(&ts, NULL);
}

/* The next back-off pause: doubles up to the maximum, with jitter so that
 * candidates that were refused together do not ask together again. */
static uint32_t campaign_backoff_ms(uint32_t *backoff_ms, uint64_t *rng)
{
	*backoff_ms =
		*backoff_ms == 0 ? CAMPAIGN_BACKOFF_MS_MIN : *backoff_ms * 2;
	if (*backoff_ms > CAMPAIGN_BACKOFF_MS_MAX)
		*backoff_ms = CAMPAIGN_BACKOFF_MS_MAX;
	*rng = *rng * 6364136223846793005ull + 1442695040888963407ull;
	uint32_t half = *backoff_ms / 2;
	return half + (uint32_t)((*rng >> 33) % (half + 1));
}

int lc_campaign(lc_sess *s, const char *group, const void *value,
		size_t value_len, uint32_t ttl_ms,
		const lc_campaign_options *opt, lc_lease *out)
{
	if (s == NULL || out == NULL || group == NULL || group[0] == '\0' ||
	    strlen(group) > LC_NAME_BYTES_MAX ||
	    value_len > LC_VALUE_BYTES_MAX || (value == NULL && value_len))
		return LC_EINVAL;
	lc_campaign_options o;
	lc_campaign_options_init(&o);
	if (opt != NULL)
		o = *opt;
	if (o.wait_ms == 0)
		o.wait_ms = CAMPAIGN_WAIT_MS_DEFAULT;
	if (o.retry_ms == 0)
		o.retry_ms = CAMPAIGN_RETRY_MS_DEFAULT;
	uint64_t end = o.timeout_ms ? lc_now_us() + o.timeout_ms * 1000ull
				    : UINT64_MAX;
	uint64_t holder = 0, rng = lc_now_us() ^ (uintptr_t)s;
	uint32_t backoff_ms = 0;
	for (;;) {
		if (o.cancelled != NULL && o.cancelled(o.arg)) {
			memset(out, 0, sizeof *out);
			out->holder = holder;
			return LC_ECANCELED;
		}
		uint64_t now = lc_now_us();
		if (now >= end) {
			memset(out, 0, sizeof *out);
			out->holder = holder;
			return LC_ETIMEOUT;
		}
		uint32_t wait = o.wait_ms;
		if (end != UINT64_MAX && (end - now) / 1000u < wait)
			wait = (uint32_t)((end - now) / 1000u);
		if (wait == 0)
			wait = 1;
		uint64_t sent = lc_now_us();
		int rv = lc_session_acquire(s, group, ttl_ms, wait, value,
					    value_len, out);
		if (rv == LC_OK)
			return LC_OK;
		if (rv == LC_EINVAL || rv == LC_ELIMIT || rv == LC_ENOMEM)
			return rv;
		bool held = rv == LC_EHELD || rv == LC_ETIMEOUT;
		bool own =
			held && out->holder == lc_session(lci_sess_client(s));
		if (held)
			holder = out->holder;
		if (own)
			lci_fail(rv,
				 "this session's own lease on %s was revoked: "
				 "the name passes on when that lease expires "
				 "(its TTL and the cell's grace), and this "
				 "campaign asks again until then",
				 group);
		if (o.progress != NULL)
			o.progress(rv, held ? out->holder : 0, o.arg);
		uint32_t pause = 0;
		if (!held) {
			pause = o.retry_ms;
			backoff_ms = 0;
		} else if (own || lc_now_us() - sent < (uint64_t)wait * 500u) {
			/* Not queued: see CAMPAIGN_BACKOFF_MS_MIN. */
			pause = campaign_backoff_ms(&backoff_ms, &rng);
		} else {
			backoff_ms = 0; /* it waited its turn in the queue */
		}
		if (pause > 0) {
			now = lc_now_us();
			if (end != UINT64_MAX && now < end &&
			    (end - now) / 1000u < pause)
				pause = (uint32_t)((end - now) / 1000u);
			campaign_sleep_ms(pause);
		}
	}
}

int lc_resign(lc_sess *s, const char *group)
{
	return lc_session_release(s, group);
}
