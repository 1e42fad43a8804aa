/* The exactly-once table (lockd/core/clients.h): it forgets the client with
 * the least (slot, id), exactly as a scan over every entry would, also after
 * a restore from a list in any order; and its queue stays bounded while the
 * same clients apply again and again. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "clients.h"

/* The rule, by a scan: the id with the least (slot, id). */
static uint64_t scan_oldest(const px_clients *t)
{
	const client_ent *best = NULL;
	for (uint32_t i = 0; i < t->tab.cap; i++) {
		const client_ent *c = mem_idtab_at(&t->tab, i);
		if (c->client_id != 0 &&
		    (best == NULL || c->slot < best->slot ||
		     (c->slot == best->slot && c->client_id < best->client_id)))
			best = c;
	}
	return best != NULL ? best->client_id : 0;
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Copies t into u as a snapshot's restore would, in a shuffled order. */
static void restore_shuffled(const px_clients *t, px_clients *u, uint64_t *s)
{
	uint32_t n = pxc_count(t);
	const client_ent **v = calloc(n + 1, sizeof *v);
	uint32_t k = 0;
	for (uint32_t i = 0; i < t->tab.cap; i++) {
		const client_ent *c = mem_idtab_at(&t->tab, i);
		if (c->client_id != 0)
			v[k++] = c;
	}
	for (uint32_t i = k; i > 1; i--) {
		uint32_t j = (uint32_t)(rnd(s) % i);
		const client_ent *x = v[i - 1];
		v[i - 1] = v[j];
		v[j] = x;
	}
	pxc_reset(u, n);
	for (uint32_t i = 0; i < k; i++)
		pxc_put(u, v[i]->client_id, v[i]->seq, v[i]->slot, v[i]->result,
			v[i]->result_len);
	pxc_loaded(u);
	free(v);
}

Test(clients, forgets_the_least_slot_then_the_least_id)
{
	px_clients t, u;
	pxc_init(&t, 50);
	pxc_init(&u, 50);
	uint64_t s = 88172645463325252ull, slot = 1;
	uint8_t res[4] = {1, 2, 3, 4};
	for (int step = 0; step < 20000; step++) {
		/* A decree of 1..8 commands from ids 1..120: some repeat
		 * within the decree, some are new to the table. */
		uint32_t batch = 1 + (uint32_t)(rnd(&s) % 8);
		for (uint32_t b = 0; b < batch; b++) {
			uint64_t id = 1 + rnd(&s) % 120;
			uint64_t want =
				pxc_find(&t, id) != NULL || pxc_count(&t) < 50
					? 0
					: scan_oldest(&t);
			uint64_t got =
				pxc_find(&t, id) != NULL
					? 0
					: (pxc_count(&t) < 50 ? 0
							      : pxc_oldest(&t));
			cr_assert_eq(got, want,
				     "step %d: evicts %llu, not %llu", step,
				     (unsigned long long)got,
				     (unsigned long long)want);
			client_ent *c = pxc_upsert(&t, id);
			pxc_applied(&t, c, c->seq + 1, slot, res, sizeof res);
			if (want != 0)
				cr_assert_null(pxc_find(&t, want));
		}
		slot += 1 + rnd(&s) % 2;
		if (step % 997 == 0) {
			/* A restored replica chooses the same from here on. */
			restore_shuffled(&t, &u, &s);
			pxc_check(&u);
			cr_assert_eq(pxc_oldest(&u), scan_oldest(&t));
			px_clients x = t;
			t = u;
			u = x;
		}
		pxc_check(&t);
		cr_assert_eq(pxc_oldest(&t), scan_oldest(&t));
	}
	pxc_free(&t);
	pxc_free(&u);
}

Test(clients, a_slot_out_of_order_is_sorted_not_fatal)
{
	/* A restored table whose slots are above the next apply's (a
	 * snapshot that lied): still the least (slot, id) is forgotten. */
	px_clients t;
	pxc_init(&t, 3);
	pxc_reset(&t, 2);
	pxc_put(&t, 7, 1, 900, NULL, 0);
	pxc_put(&t, 8, 1, 800, NULL, 0);
	pxc_loaded(&t);
	client_ent *c = pxc_upsert(&t, 9);
	pxc_applied(&t, c, 1, 10, NULL, 0);
	pxc_check(&t);
	cr_assert_eq(pxc_oldest(&t), 9);
	c = pxc_upsert(&t, 10);
	pxc_applied(&t, c, 1, 11, NULL, 0);
	cr_assert_null(pxc_find(&t, 9));
	cr_assert_eq(pxc_oldest(&t), 10);
	pxc_check(&t);
	pxc_free(&t);
}

Test(clients, the_queue_stays_bounded_when_clients_repeat)
{
	/* 1,000 clients applying a million times (renewals, say) and never
	 * evicted: stale entries are compacted away. */
	px_clients t;
	pxc_init(&t, 4096);
	uint8_t res[1] = {0};
	for (uint64_t slot = 1; slot <= 1000000; slot++) {
		client_ent *c = pxc_upsert(&t, 1 + slot % 1000);
		pxc_applied(&t, c, c->seq + 1, slot, res, 0);
		cr_assert_leq(t.len - t.head,
			      2u * pxc_count(&t) + PXC_QUEUE_SLACK + 1u);
	}
	pxc_check(&t);
	pxc_free(&t);
}

Test(clients, one_entry_per_client_and_slot)
{
	/* Decrees of 2,048 commands from 2 clients, over and over (acquires
	 * in bulk): each client has one live entry, so the queue stays short
	 * (it once kept every apply of a client's last slot, and then
	 * compacted at every push). */
	px_clients t;
	pxc_init(&t, 4096);
	uint8_t res[1] = {0};
	for (uint64_t slot = 1; slot <= 200; slot++)
		for (uint32_t k = 0; k < 2048; k++) {
			client_ent *c = pxc_upsert(&t, 1 + (slot + k) % 2);
			pxc_applied(&t, c, c->seq + 1, slot, res, 0);
			cr_assert_leq(t.len - t.head, 2u * pxc_count(&t) +
							      PXC_QUEUE_SLACK +
							      1u);
		}
	pxc_check(&t);
	pxc_free(&t);
}

Test(clients, a_full_table_of_the_largest_size_evicts_in_constant_time)
{
	/* LD_CLIENTS_MAX clients, then as many new ones again: each new one
	 * evicts the oldest. A scan per eviction would be 2^34 steps here. */
	px_clients t;
	pxc_init(&t, LD_CLIENTS_MAX);
	uint8_t res[1] = {0};
	for (uint64_t id = 1; id <= 2ull * LD_CLIENTS_MAX; id++) {
		client_ent *c = pxc_upsert(&t, id);
		pxc_applied(&t, c, 1, 1 + id / 64, res, 0);
		if (id > LD_CLIENTS_MAX)
			cr_assert_null(pxc_find(&t, id - LD_CLIENTS_MAX));
	}
	cr_assert_eq(pxc_count(&t), LD_CLIENTS_MAX);
	pxc_check(&t);
	pxc_free(&t);
}
