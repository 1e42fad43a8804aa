/* lockd-sim: runs 3 or 5 replicas of the real core in one process, from one
 * seed, over a simulated network, disks and clocks, with the checker in
 * check.h as the oracle. No wall clock, no threads.
 *
 * Two workloads. "lease" (the default) runs lockd nodes (node.h: a replica,
 * the lease table and the leader's timers) and lease clients that acquire,
 * renew, release, pause and vanish, each on its own drifting clock; the
 * oracle knows real time and checks what the clients believe. "counter"
 * runs bare replicas over a counting state machine (the ledger alone). */
#ifndef SIM_SIM_H
#define SIM_SIM_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "paxos.h"

typedef enum sim_faults {
	SIM_FAULTS_NONE,
	SIM_FAULTS_DEFAULT,
	SIM_FAULTS_HEAVY,
} sim_faults;

typedef enum sim_workload {
	SIM_WORKLOAD_LEASE,
	SIM_WORKLOAD_COUNTER,
} sim_workload;

/* What steps a lease node: the daemon's own round (lockd/edge/round.h:
 * events batched while a write is in flight, messages and replies
 * encoded and decoded by the real codec, records by the real storage
 * encoding), or the core alone, one event per step, each write durable
 * after its own fsync while the node goes on (the core's contract in
 * paxos.h, more interleavings than the daemon makes). The counter
 * workload has no round: always the core. */
typedef enum sim_driver {
	SIM_DRIVER_ROUND,
	SIM_DRIVER_CORE,
} sim_driver;

typedef struct sim_opts {
	sim_workload workload;
	sim_driver driver;
	uint32_t nreplicas;
	sim_faults faults;
	ld_mutant mutant;
	int32_t drift_ppm_max; /* -1: counter: 200 ppm; lease: drawn per seed */
	bool members; /* random membership changes: add, remove, replace
			 (the leader too), up to LD_REPLICAS_MAX ids */
	FILE *trace;  /* non-NULL: one line per event */
	/* non-NULL: the round driver writes the first encodings it makes of
	 * each kind into CORPUS/<target>/ (test/fuzz's seed corpora) */
	const char *corpus;
	/* the round driver's snapshots: taken inside the step, or captured
	 * off the loop and handed back later (px_config.snapshot_async), as
	 * the daemon's forked child does; SIM_CAPTURE_RANDOM: per seed */
	enum {
		SIM_CAPTURE_RANDOM = 0,
		SIM_CAPTURE_INLINE,
		SIM_CAPTURE_ASYNC
	} capture;
} sim_opts;

typedef struct sim_result {
	uint64_t decrees; /* distinct slots chosen */
	uint64_t events;
	uint64_t commands; /* commands clients submitted */
	uint64_t acks; /* OK replies clients received for their current command
			*/
	uint64_t crashes, partitions, wipes;
	uint64_t forged; /* messages a hostile peer forged */
	uint64_t corruptions;
	uint64_t disk_faults; /* periods of failing syncs */
	uint64_t changes;     /* membership changes applied (at any replica) */
	uint64_t msgs_sent, msgs_lost;
	/* snapshot chunks sent, lost, damaged on their way; snapshots
	 * installed from chunks, and the most chunks one of them took */
	uint64_t snap_chunks, snap_chunks_lost, snap_chunks_damaged;
	uint64_t snap_installs, snap_chunks_most;
	/* snapshots captured off the loop: handed back, failed, lost */
	uint64_t captures, captures_failed, captures_lost;
	uint64_t heal_us, end_us; /* simulated real time */
	/* lease workload (counted by the oracle from the chosen ledger) */
	uint64_t grants, expiries, releases, revokes;
	uint64_t writes, stale_writes,
		fenced;     /* fenced: stale writes refused */
	uint32_t drift_ppm; /* the cell's configured bound */
	int64_t closest_us; /* least margin between an old belief's end and a
			       newer GRANTED's arrival (INT64_MAX: none) */
	bool violated;
	char property[32];
	char detail[1024];
} sim_result;

/* Runs one seed to the end (all commands acknowledged after heal) or to the
 * first violation. */
void sim_run(const sim_opts *o, uint64_t seed, sim_result *res);

const char *sim_faults_name(sim_faults f);
const char *sim_workload_name(sim_workload w);
const char *sim_driver_name(sim_driver d);

#endif
