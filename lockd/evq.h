/* The event loop's inbox: nng's callback threads push decoded peer messages
 * and client requests; the loop thread takes them all at once. A mutex and a
 * condition variable on the monotonic clock, so the loop can also sleep until
 * the node's next timer. */
#ifndef LD_EVQ_H
#define LD_EVQ_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "paxos.h"

typedef enum ld_evq_type {
	LD_EVQ_PEER = 1, /* msg: a decoded peer message (the queue owns it) */
	LD_EVQ_CLIENT,   /* client: a client context holding a request */
} ld_evq_type;

typedef struct ld_evq_item {
	ld_evq_type type;
	px_msg *msg;
	void *client;
} ld_evq_item;

/* Peer messages beyond this many waiting are dropped (Paxos tolerates loss);
 * client requests are bounded by the number of client contexts. */
#define LD_EVQ_PEER_MAX 8192u

typedef struct ld_evq {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	ld_evq_item *items; /* ring */
	size_t cap, head, n, npeer;
	bool stopping;
	uint64_t dropped; /* peer messages dropped because the queue was full */
} ld_evq;

/* cap_clients: the most client items that can wait at once. 0 or -1. */
int ld_evq_init(ld_evq *q, size_t cap_clients);
/* Frees the queue and every peer message still in it. */
void ld_evq_destroy(ld_evq *q);

/* Takes m on success; returns false (m still the caller's) when full. */
bool ld_evq_push_peer(ld_evq *q, px_msg *m);
void ld_evq_push_client(ld_evq *q, void *client);

/* Wakes the loop for good: ld_evq_wait returns at once from now on. Safe to
 * call from a signal-handling thread. */
void ld_evq_stop(ld_evq *q);
/* Wakes the loop once (without an item). */
void ld_evq_kick(ld_evq *q);

/* Waits until an item arrives, the local monotonic clock reaches
 * deadline_us, or stop; then moves up to max items to out. Returns how
 * many; *stopping says whether stop was called. */
size_t ld_evq_wait(ld_evq *q, uint64_t deadline_us, ld_evq_item *out,
		   size_t max, bool *stopping);

#endif
