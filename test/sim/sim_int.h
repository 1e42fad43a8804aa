/* The simulator's insides, shared by sim.c (the world: replicas, disks,
 * network, faults, the counter clients) and lclient.c (the lease clients).
 * Nothing outside test/sim includes this. */
#ifndef SIM_SIM_INT_H
#define SIM_SIM_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "check.h"
#include "node.h"
#include "paxos.h"
#include "queue.h"
#include "rng.h"
#include "round.h"
#include "sim.h"
#include "world.h"

#define SIM_CLIENTS_MAX 16u
#define SIM_LEASE_CLIENTS_MIN 8u
/* Lease TTLs the clients ask for: 300 ms .. 3 s. */
#define SIM_TTL_MS_MIN 300u
#define SIM_TTL_MS_MAX 3000u
#define SIM_LIVENESS_US 30000000u
/* Timers further out than this (local) are treated as "no timer". */
#define SIM_TIMER_HORIZON_US (1000000ull * 3600 * 24)

typedef struct sim_profile {
	const char *name;
	double loss_p, dup_p;
	uint64_t delay_min_us, delay_max_us;
	double tail_p; /* a message is slow: up to tail_max_us */
	uint64_t tail_max_us;
	uint64_t part_every_min_us, part_every_max_us; /* 0: no partitions */
	uint64_t part_min_us, part_max_us;
	uint64_t crash_every_min_us, crash_every_max_us; /* 0: no crashes */
	uint64_t restart_min_us, restart_max_us;
	uint32_t max_down;     /* 0: a minority (n/2) */
	double crash_leader_p; /* a crash picks the leader */
	double power_loss_p;   /* a crash takes down every replica at once */
	double wipe_p;         /* a crashed replica also loses its disk (never
				  more than a minority without one at once) */
	double disk_fail_p;    /* a crash fault is instead a disk whose syncs
				  fail (full, EIO) for a while: the writes
				  wait, as lockd's storage retries them */
	uint64_t disk_fail_min_us, disk_fail_max_us;
	uint64_t hostile_every_min_us, hostile_every_max_us; /* 0: none */
	double chunk_damage_p; /* a snapshot's chunk arrives with one bit
				  flipped (a link or a NIC that corrupts
				  what TCP's checksum lets through) */
	double corrupt_p;      /* counter workload: a crash fault corrupts a
				  replica's state in memory instead (one at a
				  time), as a bug or a bad DIMM would */
	int32_t drift_ppm_max;
	uint64_t fault_min_us, fault_max_us; /* length of the fault phase */
	double extra_tick_p; /* per event: an unasked-for tick somewhere */
	uint64_t fsync_min_us, fsync_max_us;
	double fsync_tail_p; /* a slow disk: fsync takes up to fsync_tail_max_us
			      */
	uint64_t fsync_tail_max_us;
	uint64_t think_min_us, think_max_us; /* client pause between commands */
} sim_profile;

typedef struct sim_node {
	uint32_t id;
	bool up;
	uint64_t epoch; /* bumped at each crash: events of a past life are stale
			 */
	uint64_t life;  /* incarnations started */
	px_replica *r;  /* counter workload: a bare replica over sm */
	px_sm *sm;
	ln_node *ln; /* lease workload: a node */
	px_config cfg;
	ln_config lcfg;
	tw_clock clk;
	/* The one live tick: earlier requests supersede later ones. */
	uint64_t tick_gen, tick_at_us;
	bool tick_live;
	uint64_t last_write_id;
	uint64_t sync_last_us; /* fsyncs complete in order */
	uint64_t applied;      /* where its stream of chosen decrees got to */
	px_ballot led;         /* last leader ballot reported to the checker */
	bool wiped;            /* lost its disk, not a voter again yet */
	bool absent;           /* --members: an id not started yet */
	bool gone;             /* removed from the cell, and stopped */
	bool zombie;           /* removed, and left running: it still answers
				  whoever asks (a leader must not count it) */
	bool leaving;          /* its SIM_EV_LEAVE is queued */
	uint64_t disk_fail_until; /* real time: its syncs fail until then */
	bool corrupted;           /* its state was corrupted on purpose */
	uint64_t corrupted_at;    /* its applied position then */
	uint64_t corrupted_us; /* and the time (both restart with a crash or a
				  partition anywhere) */
	tw_disk disk;          /* test/world: what survives a crash */
	/* What of the step's (or round's) chosen decrees the oracle saw. */
	size_t chosen_seen;
	bool snap_seen;
	uint64_t rx_chunks; /* snapshot chunks received since the last
			       snapshot installed */
	/* SIM_DRIVER_ROUND: the daemon's round over this node (sim.c). */
	struct sim *world;
	bool round; /* rd is in use */
	rd_round rd;
	uint64_t rd_now;     /* real time the round's clock reads: it moves
				on with each synced write the round makes */
	uint64_t disk_seq;   /* ids of the writes the round made */
	uint64_t release_id; /* a synced write in flight: what the round sends
				or answers after it waits for its SYNC */
	bool stalled;        /* a write failed: retried every 500 ms */
	bool capturing;      /* snapshot_async: a capture is under way (as
				the daemon's child): the next waits */
	/* snapshot_async: snapshot records go to a writer of their own, as
	 * lockd's store writes them (ds_write_snapshot_later): the newest
	 * waiting becomes durable at SIM_EV_LAZY, after records written
	 * later; a crash loses it. */
	px_record lazy;
	bool lazy_have, lazy_queued;
	px_msg **held_msgs;
	size_t nheld_msgs, held_msgs_cap;
	ln_reply *held_replies;
	size_t nheld_replies, held_replies_cap;
	sim_ev *inbox; /* events that came while a write was in flight */
	size_t ninbox, inbox_cap;
} sim_node;

/* A counter client: one command at a time, retried until acknowledged. */
typedef struct sim_client {
	uint32_t idx; /* client_id = idx + 1 */
	uint64_t seq;
	bool outstanding;
	uint32_t target;
	int32_t guess; /* whom to send the next command to; -1: anyone */
	uint64_t attempt;
	uint32_t redirects;
} sim_client;

/* ---- lease clients (lclient.c) ----------------------------------------------
 */

#define SLC_HOLDS_MAX 3u
#define SLC_VALUE_BYTES_MAX 16u
#define SLC_REASON_BYTES_MAX 16u

/* A request in flight, with its own copies of the borrowed fields. */
typedef struct sim_lreq {
	ln_request req;
	char name[CHK_NAME_BYTES_MAX];
	uint8_t value[SLC_VALUE_BYTES_MAX];
	char reason[SLC_REASON_BYTES_MAX];
} sim_lreq;

/* A snapshot captured off the loop, on its way back (SIM_EV_CAPTURE). */
typedef struct sim_capture {
	uint8_t *snap; /* NULL: the capture failed */
	size_t len;
	uint64_t base, sum;
	bool lost; /* never reaches the node: it only frees the way for the
		      next (a child that died without a word) */
} sim_capture;

/* A lease as its client sees it. */
typedef struct slc_hold {
	bool used;
	uint32_t name;
	uint64_t token;
	uint32_t ttl_ms;
	uint64_t base_local;       /* the send time the deadline counts from */
	uint64_t deadline_local;   /* believes while its clock reads less */
	uint64_t until_local;      /* the script releases it then */
	uint64_t next_write_local; /* next write to the fenced resource */
	bool lost;                 /* a RENEW reply did not list it */
} slc_hold;

/* The one write a client has in flight (the ledger's exactly-once needs
 * one command at a time per session). */
typedef struct slc_op {
	bool busy;
	ln_req_type type;
	uint64_t seq;
	uint32_t name, ttl_ms, wait_ms;
	uint64_t token;
	bool probe;          /* the final acquire of a private name */
	uint64_t read_floor; /* GET: the highest acknowledged write when it
				was first sent */
	uint64_t
		first_sent_local; /* retries keep it: deadlines count from it */
	uint64_t give_up_local;   /* waiting ACQUIRE: stop waiting; 0: never */
	uint64_t attempt;
	uint32_t target, redirects;
	uint32_t value_len;
	uint8_t value[SLC_VALUE_BYTES_MAX];
} slc_op;

typedef struct sim_lclient {
	uint32_t idx; /* session = idx + 1 */
	tw_clock clk;
	bool vanished, done;
	uint64_t paused_until; /* real; 0: running */
	uint64_t seq, reqs;
	uint64_t reads; /* linearizable GETs started: their replies' seq */
	int32_t guess;
	slc_op op;
	slc_hold holds[SLC_HOLDS_MAX];
	uint64_t next_acquire_local;
	uint64_t timer_gen, timer_at;
	bool timer_live;
	uint32_t final_step; /* after heal: 0 probe to send, 1 probe out, 2 done
			      */
	uint32_t probe_name;
	uint32_t hold_cap; /* leases it holds at most at once */
	uint64_t acquires, granted, pauses;
} sim_lclient;

typedef struct sim {
	const sim_opts *o;
	int32_t msg_from; /* the sender of the message being stepped, or -1 */
	bool corrupt_majority; /* corruption reached a majority this run */
	bool gave_up; /* ... and the cell stopped: an operator's case */
	uint64_t seed;
	sim_rng rng;
	/* The snapshot captures' own stream (whether they are off the
	 * loop, how long they take, which fail), so that choosing them
	 * leaves the rest of a seed's draws as they were. */
	sim_rng rng_cap;
	bool capture_async;
	sim_profile p;
	sim_queue q;
	uint64_t now;
	uint32_t n;
	sim_node nodes[LD_REPLICAS_MAX];
	uint32_t nclients;
	sim_client clients[SIM_CLIENTS_MAX];
	sim_lclient lclients[SIM_CLIENTS_MAX];
	uint32_t outstanding;
	bool blocked[LD_REPLICAS_MAX][LD_REPLICAS_MAX]; /* [from][to] */
	uint64_t part_gen;
	uint64_t last_change_from; /* the newest configuration's first slot */
	bool healed;
	ln_actions act;
	sim_check chk;
	sim_result *res;
	FILE *tr;
	/* lease workload: the cell's time configuration and the names */
	uint32_t drift_ppm, grace_ms, tick_ms, ttl_ms_max;
	uint32_t nnames;
	uint32_t names[CHK_NAMES_MAX]; /* the shared pool: checker name ids */
} sim;

void sim_trace(sim *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void *sim_xmalloc(size_t n);
/* Queues ev to happen at real time at_us. */
void sim_at(sim *s, uint64_t at_us, sim_ev ev);
uint64_t sim_net_delay(sim *s);
/* A replica other than not, at random. */
uint32_t sim_other(sim *s, uint32_t not );

/* lclient.c */
void slc_setup(sim *s);                /* clients, names, first events */
void slc_dispatch(sim *s, sim_ev *ev); /* the SIM_EV_L* client events */
void slc_heal(sim *s);                 /* no more faults: finish up */
bool slc_done(const sim *s);           /* every client finished or vanished */
void slc_liveness_detail(const sim *s, char *buf, size_t cap);
void slc_free_event(sim_ev *ev); /* frees a payload left in the queue */

#endif
