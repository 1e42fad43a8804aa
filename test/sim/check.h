/* The omniscient oracle. The simulator reports to it everything the replicas
 * and clients do; it keeps the global view (which value each slot was
 * learned chosen with, what each client submitted, what was acknowledged)
 * and records the first violation of a safety property.
 *
 * The ledger (both workloads):
 *   agreement     no slot is learned chosen with two different values
 *   validity      every command in a chosen value was submitted, verbatim
 *                 (lease: as the client asked it; the leader's own TICK,
 *                 EXPIRE and CANCEL_WAIT come from no session)
 *   ack           an OK reply names a command the ledger holds (counter: at
 *                 the slot it names; lease: no later than its position)
 *   exactly-once  counter: the slot is where the ledger first holds it and
 *                 the result is what applying it there gave; lease: the
 *                 reply's result is what the oracle's replay of the ledger
 *                 (each command once) gave that command
 *   state         replicas at the same applied position have the same state
 *                 digest, and it equals the oracle's replay of the ledger
 *   order         each replica applies slots one by one (or jumps forward
 *                 with a snapshot), and its status agrees with what it said
 *   ballot        no two replicas (or two lives of one) lead with one ballot
 *   durability    a PROMISE or ACCEPTED leaves only once its record is
 *                 durable (checked by the simulator, which owns the disks)
 *   contract      well-formed messages, increasing write ids, restorable
 *                 records
 *   liveness      (checked by the simulator after heal)
 *
 * Leases (the oracle replays the ledger into its own lease table and reads
 * its journal; it also knows real time and every client's belief):
 *   tokens        fencing tokens strictly increase per name, a GRANTED
 *                 reply carries the token the ledger granted that session
 *                 for that name
 *   ledger        one holder per name at a time in the ledger
 *   fifo          a name passes to its waiters in the order they queued
 *                 (a waiter whose wait ended leaves the queue)
 *   exclusion     at no real instant do two clients both believe (by the
 *                 client-side function, lc_time.h) that they hold one name;
 *                 no GRANTED reply arrives while another client validly
 *                 believes it holds that name with an older token
 *   fencing       a resource per name that accepts a write iff its token is
 *                 >= the highest it has accepted: it never accepts a lower
 *                 token, never refuses a client that believes it holds the
 *                 name, and sees only tokens the ledger granted the writer
 */
#ifndef SIM_CHECK_H
#define SIM_CHECK_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "counter_sm.h"
#include "lease.h"
#include "node.h"
#include "paxos.h"
#include "sim.h"

/* Counter payloads are up to 32 bytes; lease requests are stored as their
 * ls_cmd encoding (names and values are short in the simulator). */
#define SIM_COUNTER_BYTES_MAX 32u
#define SIM_CMD_BYTES_MAX 128u
/* Leases one RENEW can renew, as recorded by the oracle. */
#define CHK_RENEWED_MAX 8u
#define CHK_NAMES_MAX 64u
#define CHK_NAME_BYTES_MAX 24u
#define CHK_QUEUE_MAX 32u

typedef struct chk_cmd {
	uint32_t len;
	uint8_t data[SIM_CMD_BYTES_MAX];
	uint64_t applied_slot; /* oracle: where the ledger first holds it; 0:
				  not yet */
	uint32_t applied_idx;  /* ... and its place among that decree's commands
				*/
	uint64_t result;       /* counter: the count right after applying it */
	ls_result lres;        /* lease: the result applying it gave */
	uint32_t nrenewed;     /* lease RENEW: the tokens it renewed */
	uint64_t renewed[CHK_RENEWED_MAX];
} chk_cmd;

typedef struct chk_client {
	chk_cmd *cmds; /* [seq - 1] */
	uint64_t ncmds, cap;
	uint64_t last_applied_seq; /* oracle's dedup, as the core's */
} chk_client;

typedef struct chk_slot {
	px_value *value; /* one reference; NULL: not known chosen yet */
	uint64_t digest; /* state digest after it, as first reported */
	uint32_t first_replica;
	bool digest_known; /* false: only a corrupted replica reported it */
} chk_slot;

typedef struct chk_leader_rec {
	px_ballot ballot;
	uint32_t replica;
	uint64_t life;
} chk_leader_rec;

/* The leader's own commands, deduplicated like clients' (by id). */
typedef struct chk_internal {
	uint64_t client_id, last_seq;
} chk_internal;

/* One grant, as the ledger made it. Tokens increase, so the array is sorted. */
typedef struct chk_grant {
	uint64_t token, session, slot;
	uint32_t idx; /* the granting command's place in its decree */
	uint32_t name;
} chk_grant;

/* What one client believes about one name (real time). */
typedef struct chk_belief {
	uint64_t token;
	uint64_t end_us; /* believes while now < end_us */
} chk_belief;

typedef struct chk_name {
	char name[CHK_NAME_BYTES_MAX];
	uint32_t len;
	/* ledger */
	uint64_t last_token;                   /* highest token granted */
	uint64_t holder_token, holder_session; /* 0: free */
	uint64_t queue[CHK_QUEUE_MAX];         /* waiting sessions, in order */
	uint32_t nqueue;
	/* the fenced resource */
	uint64_t res_max;
	uint32_t res_max_client;
} chk_name;

typedef struct sim_check {
	sim_workload workload;
	chk_slot *slots; /* [slot]; slot 0 is the empty state */
	uint64_t nslots, cap;
	uint64_t decrees; /* distinct slots known chosen */
	uint64_t max_slot;
	/* the oracle's own state machine, fed the ledger in order */
	counter_sm counter;
	ls_table *table;
	px_sm *oracle;
	uint64_t oracle_pos; /* the oracle replayed slots 1..oracle_pos */
	chk_client *clients;
	uint32_t nclients;
	chk_internal *internal;
	uint32_t ninternal, internal_cap;
	uint32_t nreplicas;
	/* Replicas whose state the simulator corrupted on purpose: their
	 * digests are not the ledger's, and the core must notice (see
	 * sim.c, the corrupt fault). */
	uint32_t corrupted_mask;
	uint64_t max_ack_slot;
	/* Lease workload: the highest slot of a write a replica acknowledged
	 * (a linearizable read sent after it must reflect it). */
	uint64_t max_lease_ack_slot;
	chk_leader_rec *leaders;
	uint64_t nleaders, leaders_cap;
	/* leases */
	chk_name names[CHK_NAMES_MAX];
	uint32_t nnames;
	chk_grant *grants;
	uint64_t ngrants, grants_cap;
	chk_belief *beliefs; /* [client * CHK_NAMES_MAX + name] */
	uint64_t expiries, releases, revokes;
	uint64_t writes, stale_writes, fenced;
	/* The closest call: the least time by which an older holder's belief
	 * had run out when a newer GRANTED reached someone (INT64_MAX: none).
	 */
	int64_t closest_us;
	/* the simulator's trace (NULL: none) and clock, for ledger events */
	FILE *tr;
	const uint64_t *now;
	bool violated;
	char property[32];
	char detail[1024];
} sim_check;

/* The lease oracle's table runs the cell's mutant, if it is one of the
 * table's own (so that "state" compares like with like and the lease
 * properties are what must catch it). */
void chk_init(sim_check *c, sim_workload w, uint32_t nclients,
	      uint32_t nreplicas, ld_mutant mutant);
void chk_free(sim_check *c);

/* Client `idx` (client_id idx+1) submits its command seq (1, 2, ...).
 * Counter: data is the payload. Lease: data is the request encoded with
 * ls_cmd_encode (since_tick_ms and stamp_ms 0). */
void chk_submitted(sim_check *c, uint32_t idx, uint64_t seq,
		   const uint8_t *data, uint32_t len);
/* The stored bytes of a submitted command (borrowed until the next
 * chk_submitted). */
const chk_cmd *chk_cmd_get(const sim_check *c, uint32_t idx, uint64_t seq);

/* A replica learned slot chosen with value and reached state digest. */
void chk_chosen(sim_check *c, uint32_t replica, uint64_t slot, px_value *value,
		uint64_t digest);
/* A replica's state machine is at applied with this digest. */
void chk_state(sim_check *c, uint32_t replica, uint64_t applied,
	       uint64_t digest);
/* A replica's reply to a client (at the moment the replica emits it). */
void chk_reply(sim_check *c, uint32_t replica, const px_reply *rep);
/* A replica is leader with ballot in its life-th incarnation. */
void chk_leader(sim_check *c, uint32_t replica, uint64_t life, px_ballot b);

/* Records a violation (only the first is kept). */
void chk_fail(sim_check *c, const char *property, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The value known chosen at slot, or NULL. */
const px_value *chk_value_at(const sim_check *c, uint64_t slot);

/* ---- leases ----------------------------------------------------------------
 */

/* Registers a name the clients use; returns its index (the same for the same
 * bytes). Aborts past CHK_NAMES_MAX. */
uint32_t chk_name_add(sim_check *c, const char *name);
const char *chk_name_str(const sim_check *c, uint32_t name);

/* A node's lease reply, when the node emits it. */
void chk_lease_reply(sim_check *c, uint32_t replica, const ln_reply *rep);

/* A GRANTED reply for name with token reached client idx at real time now;
 * the client believes until end_us (real; <= now: not at all). */
void chk_lease_granted(sim_check *c, uint32_t idx, uint32_t name,
		       uint64_t token, uint64_t now, uint64_t end_us);
/* A RENEW reply listing token reached the client: it now believes until
 * end_us (real). */
void chk_lease_renewed(sim_check *c, uint32_t idx, uint32_t name,
		       uint64_t token, uint64_t now, uint64_t end_us);
/* The client stops believing (it is about to release). */
void chk_lease_dropped(sim_check *c, uint32_t idx, uint32_t name, uint64_t now);
/* The client writes to name's fenced resource with token; believing says
 * whether its belief was valid (a stale holder writes without checking).
 * Returns whether the resource accepted the write. */
bool chk_lease_write(sim_check *c, uint32_t idx, uint32_t name, uint64_t token,
		     uint64_t now, bool believing);
/* Leases granted by the ledger so far (as the oracle replayed it). */
uint64_t chk_lease_grants(const sim_check *c);

/* Names of lease request types and reply statuses, for traces and reports. */
const char *chk_req_name(ln_req_type t);
const char *chk_status_name(ln_status st);

#endif
