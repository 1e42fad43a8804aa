/* The omniscient oracle. The simulator reports to it everything the replicas
 * and clients do; it keeps the global view (which value each slot was
 * learned chosen with, what each client submitted, what was acknowledged)
 * and records the first violation of a safety property:
 *
 *   agreement     no slot is learned chosen with two different values
 *   validity      every command in a chosen value was submitted, verbatim
 *   ack           an OK reply at slot p names a command contained in slot p
 *   exactly-once  ... and p is the slot where the ledger first holds it, and
 *                 the result is what applying it there gave
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
 */
#ifndef SIM_CHECK_H
#define SIM_CHECK_H

#include <stdbool.h>
#include <stdint.h>

#include "counter_sm.h"
#include "paxos.h"

#define SIM_CMD_BYTES_MAX 32u

typedef struct chk_cmd {
	uint32_t len;
	uint8_t data[SIM_CMD_BYTES_MAX];
	uint64_t applied_slot; /* oracle: where the ledger first holds it; 0: not yet */
	uint64_t result;       /* oracle: the count right after applying it */
} chk_cmd;

typedef struct chk_client {
	chk_cmd *cmds; /* [seq - 1] */
	uint64_t ncmds, cap;
	uint64_t last_applied_seq; /* oracle's dedup, as the core's */
} chk_client;

typedef struct chk_slot {
	ld_value *value;  /* one reference; NULL: not known chosen yet */
	uint64_t digest;  /* state digest after it, as first reported */
	uint32_t first_replica;
} chk_slot;

typedef struct chk_leader_rec {
	ld_ballot ballot;
	uint32_t replica;
	uint64_t life;
} chk_leader_rec;

typedef struct sim_check {
	chk_slot *slots; /* [slot]; slot 0 is the empty state */
	uint64_t nslots, cap;
	uint64_t decrees;   /* distinct slots known chosen */
	uint64_t max_slot;
	counter_sm oracle;
	uint64_t oracle_pos; /* the oracle replayed slots 1..oracle_pos */
	chk_client *clients;
	uint32_t nclients;
	uint64_t max_ack_slot;
	chk_leader_rec *leaders;
	uint64_t nleaders, leaders_cap;
	bool violated;
	char property[32];
	char detail[1024];
} sim_check;

void chk_init(sim_check *c, uint32_t nclients);
void chk_free(sim_check *c);

/* Client `idx` (client_id idx+1) submits its command seq (1, 2, ...). */
void chk_submitted(sim_check *c, uint32_t idx, uint64_t seq,
		   const uint8_t *data, uint32_t len);
/* The stored bytes of a submitted command (borrowed until the next
 * chk_submitted). */
const chk_cmd *chk_cmd_get(const sim_check *c, uint32_t idx, uint64_t seq);

/* A replica learned slot chosen with value and reached state digest. */
void chk_chosen(sim_check *c, uint32_t replica, uint64_t slot,
		ld_value *value, uint64_t digest);
/* A replica's state machine is at applied with this digest. */
void chk_state(sim_check *c, uint32_t replica, uint64_t applied,
	       uint64_t digest);
/* A replica's reply to a client (at the moment the replica emits it). */
void chk_reply(sim_check *c, uint32_t replica, const ld_reply *rep);
/* A replica is leader with ballot in its life-th incarnation. */
void chk_leader(sim_check *c, uint32_t replica, uint64_t life, ld_ballot b);

/* Records a violation (only the first is kept). */
void chk_fail(sim_check *c, const char *property, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The value known chosen at slot, or NULL. */
const ld_value *chk_value_at(const sim_check *c, uint64_t slot);

#endif
