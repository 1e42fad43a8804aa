/* The discrete event queue: a binary min-heap keyed by simulated real time
 * in µs, ties broken by insertion order so that a seed always replays the
 * same interleaving. */
#ifndef SIM_QUEUE_H
#define SIM_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "node.h"
#include "paxos.h"

typedef enum sim_ev_type {
	SIM_EV_TICK = 1,       /* node's timer (gen: its generation; 0: an
				  extra tick nobody asked for) */
	SIM_EV_SYNC,           /* node's write write_id is durable */
	SIM_EV_MSG,            /* msg reaches node (msg->to); forged: a hostile
				  peer's, without the cell key's MAC */
	SIM_EV_SUBMIT,         /* counter: client's command seq reaches node */
	SIM_EV_REPLY,          /* counter: node's reply reaches client */
	SIM_EV_CLIENT_START,   /* counter: client's think time is over */
	SIM_EV_CLIENT_RETRY,   /* counter: client sends attempt gen again */
	SIM_EV_CLIENT_TIMEOUT, /* counter: client's attempt gen ran out */
	SIM_EV_CRASH,          /* the next crash fault */
	SIM_EV_RESTART,        /* node comes back (epoch: its life at the
				  crash) */
	SIM_EV_PART_START,     /* the next partition fault */
	SIM_EV_PART_END,       /* partition gen ends */
	SIM_EV_HEAL,           /* end of the fault phase */
	SIM_EV_DEADLINE,       /* the liveness bound after heal */
	SIM_EV_HOSTILE,        /* a hostile peer forges its next message */
	SIM_EV_MEMBER,         /* the next membership change (--members) */
	SIM_EV_LEAVE,          /* node was removed; it stops (or stays on, a
				  zombie) */
	SIM_EV_CHANGE,         /* a membership change for node (change,
				  change_id), waiting in its inbox */
	SIM_EV_RETRY,          /* node's stalled round writes its batch again */
	SIM_EV_CAPTURE,        /* node's snapshot capture comes back (capture:
				  its bytes, or NULL bytes: it failed) */
	SIM_EV_LAZY,           /* node's snapshot writer thread has written the
				  newest snapshot handed to it */
	/* lease workload */
	SIM_EV_LREQ,     /* client's request lreq reaches node */
	SIM_EV_LREPLY,   /* node's reply lreply reaches client */
	SIM_EV_LCLIENT,  /* client's timer (gen: its generation) */
	SIM_EV_LRETRY,   /* client sends attempt gen again */
	SIM_EV_LTIMEOUT, /* client's attempt gen ran out */
	SIM_EV_LPAUSE,   /* client stops acting for a while */
	SIM_EV_LWAKE,    /* client's pause is over */
	SIM_EV_LVANISH,  /* client stops forever */
} sim_ev_type;

struct sim_lreq;

/* One event. Which fields an event uses is in its type's comment above;
 * the others are zero. Payloads are owned by the event. */
typedef struct sim_ev {
	uint64_t t_us;
	uint64_t seq; /* insertion order: ties replay the same way */
	sim_ev_type type;
	uint32_t node;      /* the replica it happens at, or comes from */
	uint32_t client;    /* the client's index */
	uint64_t epoch;     /* the node's life it was meant for: an event of a
			       past life (before a crash) is stale */
	uint64_t gen;       /* which timer, attempt or partition it belongs to:
			       a superseded one is ignored */
	uint64_t write_id;  /* SYNC */
	uint64_t seq_cmd;   /* SUBMIT: the command's seq */
	uint64_t change_id; /* CHANGE */
	bool forged;        /* MSG */
	union {
		void *p;
		px_msg *msg;                 /* MSG */
		px_reply *reply;             /* REPLY */
		ln_reply *lreply;            /* LREPLY (deep: its tokens too) */
		struct sim_lreq *lreq;       /* LREQ */
		px_change *change;           /* CHANGE */
		struct sim_capture *capture; /* CAPTURE */
	};
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
