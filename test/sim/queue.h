/* The discrete event queue: a binary min-heap keyed by simulated real time
 * in µs, ties broken by insertion order so that a seed always replays the
 * same interleaving. */
#ifndef SIM_QUEUE_H
#define SIM_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum sim_ev_type {
	SIM_EV_TICK =
		1,     /* a: replica, x: epoch, y: tick generation (0: extra) */
	SIM_EV_SYNC,   /* a: replica, x: epoch, y: write_id now durable */
	SIM_EV_MSG,    /* a: to, x: destination epoch, p: px_msg * (owned) */
	SIM_EV_SUBMIT, /* a: client, b: replica, x: epoch, y: seq */
	SIM_EV_REPLY,  /* a: client, b: replica, p: px_reply * (owned) */
	SIM_EV_CLIENT_START, /* a: client: think time over, issue the next
				command */
	SIM_EV_CLIENT_RETRY, /* a: client, y: attempt: send the command again */
	SIM_EV_CLIENT_TIMEOUT, /* a: client, y: attempt */
	SIM_EV_CRASH,          /* the next crash fault */
	SIM_EV_RESTART,        /* a: replica, x: epoch at the crash */
	SIM_EV_PART_START,     /* the next partition fault */
	SIM_EV_PART_END,       /* x: partition generation */
	SIM_EV_HEAL,           /* end of the fault phase */
	SIM_EV_DEADLINE,       /* the liveness bound after heal */
	SIM_EV_HOSTILE,        /* a hostile peer forges its next message */
	SIM_EV_MEMBER,         /* the next membership change (--members) */
	SIM_EV_LEAVE,          /* a: replica, x: epoch: it was removed; it
				  stops (or stays on, a zombie) */
	/* lease workload */
	SIM_EV_LREQ,   /* a: replica, b: client, x: epoch, p: sim_lreq * (owned)
			*/
	SIM_EV_LREPLY, /* a: client, b: replica, p: ln_reply * (owned, deep) */
	SIM_EV_LCLIENT,  /* a: client, y: timer generation */
	SIM_EV_LRETRY,   /* a: client, y: attempt: send the request again */
	SIM_EV_LTIMEOUT, /* a: client, y: attempt */
	SIM_EV_LPAUSE,   /* a: client: stop acting for a while */
	SIM_EV_LWAKE,    /* a: client: the pause is over */
	SIM_EV_LVANISH,  /* a: client: stop forever */
} sim_ev_type;

typedef struct sim_ev {
	uint64_t t_us;
	uint64_t seq;
	sim_ev_type type;
	uint32_t a, b;
	uint64_t x, y;
	void *p;
} sim_ev;

typedef struct sim_queue {
	sim_ev *v;
	size_t n, cap;
	uint64_t next_seq;
} sim_queue;

void sim_queue_init(sim_queue *q);
/* Frees the heap only; the caller pops and frees payloads first. */
void sim_queue_free(sim_queue *q);
/* Copies ev in (its seq is assigned here). Aborts when out of memory. */
void sim_queue_push(sim_queue *q, const sim_ev *ev);
bool sim_queue_pop(sim_queue *q, sim_ev *out);

#endif
