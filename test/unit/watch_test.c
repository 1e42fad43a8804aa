/* The watch feed (lockd/daemon/watch.h) filled by a real lease table's tap:
 * every holder change after a position is found, in order, none skipped; what
 * the feed no longer reaches is reported as lost, never as "no change". */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "lease.h"
#include "watch.h"

static ls_table *T;
static ld_watch_feed F;
static uint64_t SLOT;

static void setup_cap(uint32_t cap)
{
	T = ls_table_new();
	cr_assert_not_null(T);
	cr_assert_eq(ld_watch_feed_init(&F, cap, 0), 0);
	ls_table_set_tap(T, ld_watch_feed_tap, &F);
	SLOT = 0;
}

static void setup(void)
{
	setup_cap(1024);
}

static void teardown(void)
{
	ls_table_free(T);
	ld_watch_feed_free(&F);
}

/* Applies c at the next slot and returns its status. */
static ls_status run(ls_cmd c)
{
	uint8_t b[LD_CMD_BYTES_MAX], out[LD_RESULT_BYTES_MAX];
	size_t n = ls_cmd_encode(&c, b, sizeof b);
	cr_assert_gt(n, 0);
	/* A session's commands come from that session. */
	uint64_t client = c.session != 0 && c.op != LS_OP_CANCEL_WAIT
				  ? c.session
				  : 1ULL << 63;
	px_cmd cmd = {.client_id = client,
		      .seq = SLOT + 1,
		      .len = (uint32_t)n,
		      .data = b};
	px_sm *sm = ls_table_sm(T);
	size_t k = sm->ops->apply(sm, ++SLOT, &cmd, out, sizeof out);
	ls_result r;
	cr_assert_eq(ls_result_decode(out, k, &r), LS_OK);
	return r.status;
}

static ls_status acquire(uint64_t s, const char *name, uint32_t wait,
			 const char *value)
{
	return run((ls_cmd){.op = LS_OP_ACQUIRE,
			    .session = s,
			    .name = name,
			    .name_len = (uint32_t)strlen(name),
			    .ttl_ms = 1000,
			    .wait_ms = wait,
			    .value = (const uint8_t *)value,
			    .value_len = value ? (uint32_t)strlen(value) : 0});
}

static ls_status release(uint64_t s, const char *name)
{
	ls_view v;
	cr_assert_eq(ls_get(T, name, (uint32_t)strlen(name), &v), LS_OK);
	return run((ls_cmd){.op = LS_OP_RELEASE,
			    .session = s,
			    .name = name,
			    .name_len = (uint32_t)strlen(name),
			    .token = v.token});
}

static ld_watch_find_rv find(const char *name, uint64_t after,
			     const ld_watch_entry **e)
{
	return ld_watch_find(&F, name, (uint32_t)strlen(name), after, 0, e);
}

TestSuite(watch, .init = setup, .fini = teardown);

Test(watch, every_change_after_a_position_in_order)
{
	const ld_watch_entry *e;
	cr_assert_eq(find("a", 0, &e), LD_WATCH_NONE);
	cr_assert_eq(acquire(7, "a", 0, "alpha"), LS_GRANTED); /* slot 1 */
	cr_assert_eq(release(7, "a"), LS_OK);                  /* 2: free */
	cr_assert_eq(acquire(8, "a", 0, "beta"), LS_GRANTED);  /* 3 */

	cr_assert_eq(find("a", 0, &e), LD_WATCH_FOUND);
	cr_assert_eq(e->slot, 1);
	cr_assert(e->held);
	cr_assert_eq(e->holder, 7);
	cr_assert_eq(e->value_len, 5);
	cr_assert_eq(memcmp(e->value, "alpha", 5), 0);
	uint64_t t1 = e->token;

	cr_assert_eq(find("a", 1, &e), LD_WATCH_FOUND);
	cr_assert_eq(e->slot, 2);
	cr_assert_not(e->held, "the release left the name free");

	cr_assert_eq(find("a", 2, &e), LD_WATCH_FOUND);
	cr_assert_eq(e->slot, 3);
	cr_assert_eq(e->holder, 8);
	cr_assert_gt(e->token, t1);

	cr_assert_eq(find("a", 3, &e), LD_WATCH_NONE);
	cr_assert_eq(find("b", 0, &e), LD_WATCH_NONE, "other names differ");
}

Test(watch, a_handoff_is_one_change_to_the_waiter)
{
	const ld_watch_entry *e;
	cr_assert_eq(acquire(7, "a", 0, NULL), LS_GRANTED);  /* 1 */
	cr_assert_eq(acquire(8, "a", 5000, "w"), LS_QUEUED); /* 2 */
	cr_assert_eq(release(7, "a"), LS_OK);                /* 3 */
	cr_assert_eq(find("a", 1, &e), LD_WATCH_FOUND);
	cr_assert_eq(e->slot, 3, "queueing is not a holder change");
	cr_assert(e->held);
	cr_assert_eq(e->holder, 8);
	cr_assert_eq(e->value_len, 1);
	cr_assert_eq(F.n, 2, "free-then-granted at one position is one entry");
}

Test(watch, renewals_are_not_changes)
{
	const ld_watch_entry *e;
	cr_assert_eq(acquire(7, "a", 0, NULL), LS_GRANTED);
	cr_assert_eq(acquire(7, "a", 0, NULL), LS_GRANTED, "re-acquire");
	cr_assert_eq(run((ls_cmd){.op = LS_OP_RENEW, .session = 7}), LS_OK);
	cr_assert_eq(find("a", 1, &e), LD_WATCH_NONE);
	cr_assert_eq(F.n, 1);
}

Test(watch, a_full_feed_forgets_the_oldest_and_says_so)
{
	teardown();
	setup_cap(4);
	const ld_watch_entry *e;
	for (int i = 0; i < 5; i++) { /* slots 1..10: grant, free */
		cr_assert_eq(acquire(7, "a", 0, NULL), LS_GRANTED);
		cr_assert_eq(release(7, "a"), LS_OK);
	}
	cr_assert_eq(F.n, 4);
	cr_assert_eq(F.lo, 6, "complete only after the last entry it dropped");
	cr_assert_eq(find("a", 0, &e), LD_WATCH_LOST);
	cr_assert_eq(find("a", 5, &e), LD_WATCH_LOST);
	cr_assert_eq(find("a", 6, &e), LD_WATCH_FOUND);
	cr_assert_eq(e->slot, 7);
	cr_assert_eq(find("a", 9, &e), LD_WATCH_FOUND);
	cr_assert_eq(e->slot, 10);
	cr_assert_not(e->held);
}

Test(watch, a_reset_loses_what_came_before)
{
	const ld_watch_entry *e;
	cr_assert_eq(acquire(7, "a", 0, NULL), LS_GRANTED); /* 1 */
	ld_watch_feed_reset(&F, 40); /* a snapshot installed up to 40 */
	cr_assert_eq(F.n, 0);
	cr_assert_eq(find("a", 0, &e), LD_WATCH_LOST);
	cr_assert_eq(find("a", 40, &e), LD_WATCH_NONE);
	ld_watch_feed_reset(&F, 10);
	cr_assert_eq(F.lo, 40, "lo never goes back");
}

Test(watch, a_mark_looks_only_at_what_is_new)
{
	const ld_watch_entry *e;
	cr_assert_eq(acquire(7, "a", 0, NULL), LS_GRANTED); /* 1 */
	uint64_t mark = F.added;
	cr_assert_eq(ld_watch_find(&F, "a", 1, 0, mark, &e), LD_WATCH_NONE,
		     "a watcher that looked already saw slot 1");
	cr_assert_eq(acquire(8, "b", 0, NULL), LS_GRANTED); /* 2 */
	cr_assert_eq(ld_watch_find(&F, "a", 1, 1, mark, &e), LD_WATCH_NONE);
	cr_assert_eq(release(7, "a"), LS_OK); /* 3 */
	cr_assert_eq(ld_watch_find(&F, "a", 1, 1, mark, &e), LD_WATCH_FOUND);
	cr_assert_eq(e->slot, 3);
}

static ld_watch_find_rv find_prefix(const char *prefix, uint64_t after,
				    const ld_watch_entry **es, uint32_t *n)
{
	return ld_watch_find_prefix(&F, prefix, (uint32_t)strlen(prefix), after,
				    0, es, 8, n);
}

static void tap(uint64_t slot, const char *name, bool held)
{
	ls_view v = {.holder = 7, .token = slot};
	ld_watch_feed_tap(&F, slot, name, (uint32_t)strlen(name),
			  held ? &v : NULL);
}

Test(watch, a_prefix_gets_every_change_under_it_at_one_position)
{
	const ld_watch_entry *es[8];
	uint32_t n;
	/* One decree (an expiry, say) changes three names at position 5, two
	 * of them under db/; another changes db/c at 6. */
	tap(4, "other/x", true);
	tap(5, "db/a", false);
	tap(5, "web/z", false);
	tap(5, "db/b", true);
	tap(6, "db/c", true);
	cr_assert_eq(find_prefix("db/", 0, es, &n), LD_WATCH_FOUND);
	cr_assert_eq(n, 2, "both db/ changes at 5, not only the first");
	cr_assert_eq(es[0]->slot, 5);
	cr_assert_eq(es[1]->slot, 5);
	cr_assert_not(es[0]->held);
	cr_assert(es[1]->held);
	/* Resuming from 5 misses none and repeats none. */
	cr_assert_eq(find_prefix("db/", 5, es, &n), LD_WATCH_FOUND);
	cr_assert_eq(n, 1);
	cr_assert_eq(es[0]->slot, 6);
	cr_assert_eq(find_prefix("db/", 6, es, &n), LD_WATCH_NONE);
	/* "" is every name; a prefix matches only at the start. */
	cr_assert_eq(find_prefix("", 0, es, &n), LD_WATCH_FOUND);
	cr_assert_eq(n, 1);
	cr_assert_eq(es[0]->slot, 4);
	cr_assert_eq(find_prefix("b/", 0, es, &n), LD_WATCH_NONE);
	/* Behind the feed's reach: lost, as for one name. */
	ld_watch_feed_reset(&F, 5);
	cr_assert_eq(find_prefix("db/", 4, es, &n), LD_WATCH_LOST);
	cr_assert_eq(n, 0);
}

/* How many entries of the ring hold name. */
static uint32_t entries_named(const char *name)
{
	uint32_t k = 0;
	for (uint32_t i = 0; i < F.n; i++) {
		const ld_watch_entry *e = &F.v[(F.head + i) % F.cap];
		k += e->name_len == strlen(name) &&
		     memcmp(e->name, name, e->name_len) == 0;
	}
	return k;
}

static void tap_holder(uint64_t slot, const char *name, uint64_t holder)
{
	ls_view v = {.holder = holder, .token = holder, .ttl_ms = 1000};
	ld_watch_feed_tap(&F, slot, name, (uint32_t)strlen(name), &v);
}

/* A mass expiry changes thousands of names in one decree: each name found
 * again at that position is the one entry it already has (the state after),
 * however many other names came in between and however often the ring
 * turned over within the position. */
Test(watch, many_changes_at_one_position_keep_one_entry_per_name)
{
	teardown();
	setup_cap(64);
	char name[32];
	for (int i = 0; i < 50; i++) {
		snprintf(name, sizeof name, "n%d", i);
		tap_holder(5, name, 1);
	}
	for (int i = 0; i < 50; i++) {
		snprintf(name, sizeof name, "n%d", i);
		tap_holder(5, name, 2);
	}
	cr_assert_eq(F.n, 50, "a name changed twice at one position is one");
	const ld_watch_entry *e;
	cr_assert_eq(find("n17", 4, &e), LD_WATCH_FOUND);
	cr_assert_eq(e->holder, 2, "the state after the position");

	for (int i = 50; i < 1000; i++) { /* the ring turns over, at slot 5 */
		snprintf(name, sizeof name, "n%d", i);
		tap_holder(5, name, 1);
	}
	for (int i = 970; i < 1000; i++) {
		snprintf(name, sizeof name, "n%d", i);
		tap_holder(5, name, 3);
		cr_assert_eq(entries_named(name), 1, "%s is in once", name);
	}
	for (int i = 1000; i < 1300; i++) { /* across the index's rebuilds */
		snprintf(name, sizeof name, "n%d", i);
		tap_holder(5, name, 1);
		snprintf(name, sizeof name, "n%d", i - 40);
		tap_holder(5, name, 3);
		cr_assert_eq(entries_named(name), 1, "%s is in once", name);
	}
	cr_assert_eq(F.n, 64);
	cr_assert_eq(F.lo, 5, "position 5 is no longer complete");
	cr_assert_eq(find("n1299", 5, &e), LD_WATCH_NONE);
	tap_holder(6, "n1299", 4); /* the next position is a new entry */
	cr_assert_eq(entries_named("n1299"), 2);
	cr_assert_eq(find("n1299", 5, &e), LD_WATCH_FOUND);
	cr_assert_eq(e->slot, 6);
	cr_assert_eq(e->holder, 4);
	tap_holder(6, "n1299", 5);
	cr_assert_eq(entries_named("n1299"), 2);
	cr_assert_eq(find("n1299", 5, &e), LD_WATCH_FOUND);
	cr_assert_eq(e->holder, 5);
}
