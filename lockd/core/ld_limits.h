/* Every bound in lockd lives here, so a reader can see at a glance how big
 * anything can get. Units are last in the name. */
#ifndef LD_LIMITS_H
#define LD_LIMITS_H

#include <stdint.h>

/* Replicas in a cell: 3 or 5 in production; the core
 * accepts 1..LD_REPLICAS_MAX. */
#define LD_REPLICAS_MAX 7

/* Replica ids are 0..LD_REPLICA_IDS-1, and each is used once in a cell's
 * life: a removed replica's id is never a member again (its old votes and
 * ballots must never be counted for a newcomer). 64 ids are 61 replacements
 * of a 3-replica cell. */
#define LD_REPLICA_IDS 64u

/* A replica's peer or client URL, as kept in the ledger's membership. */
#define LD_URL_BYTES_MAX 256u

/* Ledger slots held in memory (and in the log's durable tail). A replica does
 * not vote for a slot it cannot hold; it asks to catch up instead. */
#define LD_LOG_SLOTS_MAX 1024u

/* Applied slots between two snapshots, and slots kept before a snapshot's base
 * so that a lagging replica can catch up without a full snapshot. */
#define LD_SNAPSHOT_EVERY_SLOTS 256u
#define LD_LOG_TAIL_SLOTS 64u

/* Replicas compare state digests at every slot that is a multiple of this
 * (px_config.digest_every_slots; the leader's heartbeat carries its latest,
 * the answer the follower's at the same slot), and keep the last
 * LD_DIGEST_KEEP of their own. */
#define LD_DIGEST_EVERY_SLOTS 64u
#define LD_DIGEST_KEEP 8u

/* Leader pipeline: slots proposed but not yet chosen. */
#define LD_WINDOW_SLOTS_MAX 64u

/* Sessions one RENEW request may renew (client.proto's renew_sessions):
 * each is a command of its own, batched into decrees as any are. */
#define LD_RENEW_SESSIONS_MAX 256u

/* Commands batched into one decree. */
#define LD_BATCH_CMDS_MAX 256u

/* Client commands waiting for a slot at the leader. Past this: PX_REPLY_BUSY.
 */
#define LD_PENDING_CMDS_MAX 4096u
/* Linearizable reads one leader holds while it waits for a heartbeat
 * round (ReadIndex); more are answered BUSY at once, so a leader cut off
 * from its quorum does not grow without bound. */
#define LD_PENDING_READS_MAX 4096u

/* One command's payload and one command's result. */
#define LD_CMD_BYTES_MAX 4096u
#define LD_RESULT_BYTES_MAX 256u

/* Client sessions remembered for exactly-once application (the oldest is
 * forgotten: clients.h). At most about 288 bytes each, twice that in the
 * half-full hash table: 75 MiB when full. */
#define LD_CLIENTS_MAX 131072u

/* Leases whose deadlines a new leader rebuilds in one step (node_leader.c):
 * a million-lease table takes a few hundred short steps, not one long one
 * that outlasts an election timeout. */
#define LD_TAKEOVER_STEP_LEASES 4096u

/* Chosen decrees sent in one catch-up message. */
#define LD_CATCHUP_SLOTS_MAX 64u

/* The lease table as a whole (checked at apply, so that every replica
 * refuses the same command): leases, waiting acquires, sessions (a session
 * exists while it holds or waits; no more of them than the exactly-once
 * table remembers), and the bytes of every name and value, waiters' values
 * included. A full table's snapshot is about 128 MiB + 58 B x leases + 26 B
 * x waiters, plus the client table: about 230 MiB, under half the snapshot
 * limit below (lease_codec.c asserts it at compile time). */
#define LD_LEASES_MAX 1048576u
#define LD_LEASE_WAITERS_MAX 4096u
#define LD_LEASE_SESSIONS_MAX 131072u
#define LD_LEASE_DATA_BYTES_MAX (128u * 1024u * 1024u)

/* One lease and one command (lease.h's LS_ names are these; ls_cmd_check
 * holds a command to them at apply, so every replica refuses the same one):
 * a name's bytes ([A-Za-z0-9._/:-]), a holder's value, a revoke's reason,
 * the TTL range (the cell's --ttl-max-ms lies in it) and the longest wait. */
#define LD_LEASE_NAME_BYTES_MAX 256u
#define LD_LEASE_VALUE_BYTES_MAX 1024u
#define LD_LEASE_REASON_BYTES_MAX 256u
#define LD_LEASE_TTL_MS_MIN 100u
#define LD_LEASE_TTL_MS_MAX 3600000u
#define LD_LEASE_WAIT_MS_MAX 3600000u

/* Per session and per name: leases one session holds, waiters on one name. */
#define LD_LEASES_PER_SESSION_MAX 1024u
#define LD_LEASE_WAITERS_PER_NAME_MAX 1024u

/* (token, renewals) pairs in one EXPIRE command: what fits in one ledger
 * command (12 bytes each, after the command's header). */
#define LD_EXPIRE_TOKENS_MAX ((LD_CMD_BYTES_MAX - 64u) / 12u)

/* The largest per-session seq a write may carry (node.h's LN_SEQ_MAX says
 * why there is one), and the ballot round from which the wire refuses a
 * ballot (paxos.h's PX_ROUND_MAX: rounds never wrap). */
#define LD_SEQ_MAX ((1ULL << 62) - 1)
#define LD_ROUND_MAX (UINT64_C(1) << 62)

/* Snapshot bytes (state machine + client table). A snapshot travels in
 * chunks, so this is not bound by a message's size. */
#define LD_SNAPSHOT_BYTES_MAX (512u * 1024u * 1024u)

/* A snapshot travels in chunks of at most this many bytes, one SNAPSHOT
 * message each, asked for one at a time by the replica that catches up
 * (px_config.snapshot_chunk_bytes; the simulator uses small ones). */
#define LD_SNAPSHOT_CHUNK_BYTES_MAX (1024u * 1024u)

/* One encoded peer message on the wire. (Client messages have their own,
 * much smaller limit in the daemon.) */
#define LD_MESSAGE_BYTES_MAX (65u * 1024u * 1024u)

/* Decree bytes in one CATCHUP message (at least one decree is always sent;
 * one decree is at most LD_BATCH_CMDS_MAX x LD_CMD_BYTES_MAX). */
#define LD_CATCHUP_BYTES_MAX (1024u * 1024u)

/* ---- how the limits relate (checked when anything includes this) ------- */

/* Replica ids index 64-bit masks (one bit per id) everywhere in the core. */
_Static_assert(LD_REPLICA_IDS <= 64u, "a replica id is a bit of a uint64_t");
_Static_assert(LD_REPLICAS_MAX <= LD_REPLICA_IDS,
	       "a cell's members have distinct ids");
/* The leader never proposes past commit + window, and every proposed slot
 * must have room in the in-memory log next to the snapshot's tail. */
_Static_assert(LD_WINDOW_SLOTS_MAX + LD_LOG_TAIL_SLOTS +
			       LD_SNAPSHOT_EVERY_SLOTS <
		       LD_LOG_SLOTS_MAX,
	       "the pipeline and the snapshot's tail fit the log");
_Static_assert(LD_CATCHUP_SLOTS_MAX <= LD_LOG_SLOTS_MAX,
	       "a catch-up answer never asks for more than a log holds");
_Static_assert(LD_DIGEST_KEEP *LD_DIGEST_EVERY_SLOTS <= LD_LOG_SLOTS_MAX,
	       "the digests kept cover slots the log still holds");
/* A decree of the most commands, each the largest, fits one CATCHUP answer
 * (which always carries at least one decree), and that fits a message. */
_Static_assert((unsigned long long)LD_BATCH_CMDS_MAX *LD_CMD_BYTES_MAX <=
		       LD_CATCHUP_BYTES_MAX,
	       "one full decree fits a catch-up message");
_Static_assert((unsigned long long)LD_CATCHUP_BYTES_MAX +
			       (unsigned long long)LD_CATCHUP_SLOTS_MAX *
				       LD_BATCH_CMDS_MAX * LD_CMD_BYTES_MAX <=
		       LD_MESSAGE_BYTES_MAX,
	       "a catch-up answer fits a message, its last decree included");
_Static_assert((unsigned long long)LD_WINDOW_SLOTS_MAX *LD_BATCH_CMDS_MAX
			       *LD_CMD_BYTES_MAX <= LD_MESSAGE_BYTES_MAX,
	       "a whole pipeline of full decrees fits one message");
_Static_assert(LD_SNAPSHOT_CHUNK_BYTES_MAX + 1024u * 1024u <=
		       LD_MESSAGE_BYTES_MAX,
	       "a snapshot's chunk and its header fit one SNAPSHOT message");
_Static_assert(LD_SNAPSHOT_CHUNK_BYTES_MAX <= LD_SNAPSHOT_BYTES_MAX,
	       "a chunk is part of a snapshot");
_Static_assert(LD_MESSAGE_BYTES_MAX <= 0xffffffffull &&
		       LD_SNAPSHOT_BYTES_MAX <= 0xffffffffull,
	       "message and snapshot lengths are uint32_t");
/* The pending queue holds at least one full decree. */
_Static_assert(LD_BATCH_CMDS_MAX <= LD_PENDING_CMDS_MAX,
	       "a full batch can wait at the leader");
/* One command of the largest fields fits a ledger command: an ACQUIRE with
 * the longest name and value (the header, ids, lengths: under 64 bytes),
 * and a REVOKE with the longest name and reason. */
_Static_assert(64u + LD_LEASE_NAME_BYTES_MAX + LD_LEASE_VALUE_BYTES_MAX <=
		       LD_CMD_BYTES_MAX,
	       "the largest ACQUIRE fits a command");
_Static_assert(64u + LD_LEASE_NAME_BYTES_MAX + LD_LEASE_REASON_BYTES_MAX <=
		       LD_CMD_BYTES_MAX,
	       "the largest REVOKE fits a command");
_Static_assert(LD_EXPIRE_TOKENS_MAX <= 0xffffu,
	       "an EXPIRE's count is a u16 on the ledger");
/* Strings in a command are u16-prefixed. */
_Static_assert(LD_LEASE_NAME_BYTES_MAX <= 0xffffu &&
		       LD_LEASE_VALUE_BYTES_MAX <= 0xffffu &&
		       LD_LEASE_REASON_BYTES_MAX <= 0xffffu,
	       "a command's strings have u16 lengths");
_Static_assert(LD_LEASE_TTL_MS_MIN <= LD_LEASE_TTL_MS_MAX,
	       "the TTL range is not empty");
/* Per-session and per-name bounds are within the table's. */
_Static_assert(LD_LEASES_PER_SESSION_MAX <= LD_LEASES_MAX,
	       "a session's leases fit the table");
_Static_assert(LD_LEASE_WAITERS_PER_NAME_MAX <= LD_LEASE_WAITERS_MAX,
	       "one name's waiters fit the table's");
_Static_assert(LD_LEASE_SESSIONS_MAX <= LD_CLIENTS_MAX,
	       "every session that holds or waits fits the client table");
/* (lease.c checks that a full table's snapshot stays under half of
 * LD_SNAPSHOT_BYTES_MAX: that needs its encoding's sizes.) */

#endif
