#include "queue.h"

#include <stdio.h>
#include <stdlib.h>

static bool sim_queue_before(const sim_ev *a, const sim_ev *b)
{
	return a->t_us < b->t_us || (a->t_us == b->t_us && a->seq < b->seq);
}

void sim_queue_init(sim_queue *q)
{
	q->v = NULL;
	q->n = q->cap = 0;
	q->next_seq = 0;
}

void sim_queue_free(sim_queue *q)
{
	free(q->v);
	sim_queue_init(q);
}

void sim_queue_push(sim_queue *q, const sim_ev *ev)
{
	if (q->n == q->cap) {
		size_t cap = q->cap ? 2 * q->cap : 1024;
		sim_ev *v = realloc(q->v, cap * sizeof *v);
		if (!v) {
			fprintf(stderr, "lockd-sim: out of memory\n");
			abort();
		}
		q->v = v;
		q->cap = cap;
	}
	size_t i = q->n++;
	sim_ev e = *ev;
	e.seq = q->next_seq++;
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (!sim_queue_before(&e, &q->v[parent]))
			break;
		q->v[i] = q->v[parent];
		i = parent;
	}
	q->v[i] = e;
}

bool sim_queue_pop(sim_queue *q, sim_ev *out)
{
	if (q->n == 0)
		return false;
	*out = q->v[0];
	sim_ev last = q->v[--q->n];
	size_t i = 0;
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		const sim_ev *best = &last;
		if (l < q->n && sim_queue_before(&q->v[l], best)) {
			m = l;
			best = &q->v[l];
		}
		if (r < q->n && sim_queue_before(&q->v[r], best))
			m = r;
		if (m == i)
			break;
		q->v[i] = q->v[m];
		i = m;
	}
	if (q->n > 0)
		q->v[i] = last;
	return true;
}
