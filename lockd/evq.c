#include "evq.h"

#include <stdlib.h>
#include <time.h>

int ld_evq_init(ld_evq *q, size_t cap_clients)
{
	q->cap = LD_EVQ_PEER_MAX + cap_clients;
	q->head = q->n = q->npeer = 0;
	q->stopping = false;
	q->dropped = 0;
	q->items = calloc(q->cap, sizeof *q->items);
	if (q->items == NULL)
		return -1;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	int rc = pthread_cond_init(&q->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (rc != 0) {
		free(q->items);
		return -1;
	}
	pthread_mutex_init(&q->lock, NULL);
	return 0;
}

void ld_evq_destroy(ld_evq *q)
{
	for (size_t i = 0; i < q->n; i++) {
		ld_evq_item *it = &q->items[(q->head + i) % q->cap];
		if (it->type == LD_EVQ_PEER)
			px_msg_free(it->msg);
	}
	free(q->items);
	pthread_cond_destroy(&q->cond);
	pthread_mutex_destroy(&q->lock);
}

static void evq_put(ld_evq *q, ld_evq_item it)
{
	q->items[(q->head + q->n) % q->cap] = it;
	q->n++;
	if (q->n == 1)
		pthread_cond_signal(&q->cond);
}

bool ld_evq_push_peer(ld_evq *q, px_msg *m)
{
	pthread_mutex_lock(&q->lock);
	bool ok = q->npeer < LD_EVQ_PEER_MAX && q->n < q->cap;
	if (ok) {
		q->npeer++;
		evq_put(q, (ld_evq_item){.type = LD_EVQ_PEER, .msg = m});
	} else {
		q->dropped++;
	}
	pthread_mutex_unlock(&q->lock);
	return ok;
}

void ld_evq_push_client(ld_evq *q, void *client)
{
	pthread_mutex_lock(&q->lock);
	/* Room by construction: each context has at most one item queued,
	 * and the ring has a slot per context beyond the peers' share. */
	if (q->n < q->cap)
		evq_put(q,
			(ld_evq_item){.type = LD_EVQ_CLIENT, .client = client});
	else
		abort();
	pthread_mutex_unlock(&q->lock);
}

void ld_evq_stop(ld_evq *q)
{
	pthread_mutex_lock(&q->lock);
	q->stopping = true;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

void ld_evq_kick(ld_evq *q)
{
	pthread_mutex_lock(&q->lock);
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

size_t ld_evq_wait(ld_evq *q, uint64_t deadline_us, ld_evq_item *out,
		   size_t max, bool *stopping)
{
	struct timespec ts = {
		.tv_sec = (time_t)(deadline_us / 1000000u),
		.tv_nsec = (long)(deadline_us % 1000000u) * 1000,
	};
	pthread_mutex_lock(&q->lock);
	while (q->n == 0 && !q->stopping) {
		if (pthread_cond_timedwait(&q->cond, &q->lock, &ts) != 0)
			break; /* ETIMEDOUT: the deadline came */
	}
	size_t k = 0;
	while (k < max && q->n > 0) {
		ld_evq_item it = q->items[q->head];
		q->head = (q->head + 1) % q->cap;
		q->n--;
		if (it.type == LD_EVQ_PEER)
			q->npeer--;
		out[k++] = it;
	}
	*stopping = q->stopping;
	pthread_mutex_unlock(&q->lock);
	return k;
}
