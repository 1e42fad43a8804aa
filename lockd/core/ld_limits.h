/* Every bound in lockd lives here, so a reader can see at a glance how big
 * anything can get. Units are last in the name. */
#ifndef LD_LIMITS_H
#define LD_LIMITS_H

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

/* Commands batched into one decree. */
#define LD_BATCH_CMDS_MAX 64u

/* Client commands waiting for a slot at the leader. Past this: PX_REPLY_BUSY.
 */
#define LD_PENDING_CMDS_MAX 4096u

/* One command's payload and one command's result. */
#define LD_CMD_BYTES_MAX 4096u
#define LD_RESULT_BYTES_MAX 256u

/* Client sessions remembered for exactly-once application (oldest evicted). */
#define LD_CLIENTS_MAX 4096u

/* Chosen decrees sent in one catch-up message. */
#define LD_CATCHUP_SLOTS_MAX 64u

/* The lease table as a whole (checked at apply, so that every replica
 * refuses the same command): leases, waiting acquires, sessions (a session
 * exists while it holds or waits; no more of them than the exactly-once
 * table remembers), and the bytes of every name and value, waiters' values
 * included. A full table's snapshot is about 16 MiB + 56 B x leases + 26 B
 * x waiters, plus the client table: about 25 MiB, under half the snapshot
 * limit below (lease.c asserts it at compile time). */
#define LD_LEASES_MAX 131072u
#define LD_LEASE_WAITERS_MAX 4096u
#define LD_LEASE_SESSIONS_MAX 4096u
#define LD_LEASE_DATA_BYTES_MAX (16u * 1024u * 1024u)

/* Snapshot bytes (state machine + client table). */
#define LD_SNAPSHOT_BYTES_MAX (64u * 1024u * 1024u)

/* One encoded peer message on the wire: room for a whole snapshot, which
 * travels in one SNAPSHOT message. (Client messages have their own, much
 * smaller limit in the daemon.) */
#define LD_MESSAGE_BYTES_MAX (LD_SNAPSHOT_BYTES_MAX + 1024u * 1024u)

/* Decree bytes in one CATCHUP message (at least one decree is always sent;
 * one decree is at most LD_BATCH_CMDS_MAX x LD_CMD_BYTES_MAX). */
#define LD_CATCHUP_BYTES_MAX (1024u * 1024u)

#endif
