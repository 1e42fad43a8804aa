/* A hand-driven cell for named scenario tests.
 *
 * Nothing here is random: the test decides every delivery, every sync, every
 * crash and every clock tick. Each replica has an in-memory state machine, an
 * in-memory durable disk (a list of records) and a list of writes that are
 * not durable yet. Messages the replicas send wait in one pool until the test
 * delivers or drops them.
 *
 * The harness also watches safety as it goes: every decree a replica learns
 * chosen must equal what any replica (alive or since crashed) learned for that
 * slot, with the same state digest. h_ok() says whether that held.
 *
 * Ownership: h_new returns a cell the caller frees with h_free, which frees
 * every replica, record, message and value still held. Pointers returned by
 * the accessors are borrowed and valid until the next call that steps a
 * replica.
 */
#ifndef LD_TEST_HARNESS_H
#define LD_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "paxos.h"

/* Deterministic timings for every replica (microseconds). The election
 * timeout actually drawn is in [H_ELECTION_US, 2 * H_ELECTION_US). */
#define H_HEARTBEAT_US 10000u
#define H_ELECTION_US 100000u
#define H_RETRY_US 20000u

/* Past any election timeout, counted from the last thing a replica heard. */
#define H_TIMEOUT_US (2u * H_ELECTION_US + 1u)

#define H_ANY (-1)

/* Which in-flight messages an operation applies to. H_ANY matches all. */
typedef struct h_filter {
	int from, to;
	int type;     /* px_msg_type or H_ANY */
	int64_t slot; /* msg->slot, or H_ANY */
} h_filter;

static inline h_filter h_f(int from, int to, int type)
{
	return (h_filter){.from = from, .to = to, .type = type, .slot = H_ANY};
}

static inline h_filter h_fs(int from, int to, int type, int64_t slot)
{
	return (h_filter){.from = from, .to = to, .type = type, .slot = slot};
}

#define H_ALL h_f(H_ANY, H_ANY, H_ANY)

typedef struct harness harness;

/* A cell of n replicas (ids 0..n-1), all up, all followers, clock at 0,
 * each ticked once (as a process that starts does). NULL when out of
 * memory. Configs come from px_config_default with the H_ timings above and
 * seed = id + 1. */
harness *h_new(uint32_t n);
void h_free(harness *h);

/* The config a replica is (re)built with. Changes apply at the next
 * h_restart (h_crash + h_restart of a replica with an empty disk gives a
 * fresh replica with the new config). */
px_config *h_config(harness *h, uint32_t id);

/* ---- the clock -------------------------------------------------------- */

/* The cell's clock (one clock, shared by every replica; never goes back). */
uint64_t h_now(const harness *h);

/* Sets the clock to now_us (>= h_now) and ticks replica id alone. */
int h_tick(harness *h, uint32_t id, uint64_t now_us);

/* Sets the clock to now_us (>= h_now) without ticking anyone. */
void h_set_time(harness *h, uint64_t now_us);

/* When replica id asked to be ticked next (UINT64_MAX when down). */
uint64_t h_timer_at(const harness *h, uint32_t id);

/* ---- clients ---------------------------------------------------------- */

/* Submits the command (client, seq, data) at replica id. Returns the step's
 * result (0, or -1 when the core refused the event). */
int h_submit(harness *h, uint32_t id, uint64_t client, uint64_t seq,
	     const char *data);

/* Asks replica id for a membership change (PX_EV_CHANGE); the answer, when
 * one came, is h_change_done's. */
int h_change(harness *h, uint32_t id, const px_change *c, uint64_t change_id);
const px_change_done *h_change_done(const harness *h, uint32_t id,
				    uint64_t change_id);

/* Replica id cannot serve (PX_EV_RESIGN). */
int h_resign(harness *h, uint32_t id);

/* Replies replica id produced since it last (re)started, in order. */
const px_reply *h_replies(const harness *h, uint32_t id, size_t *n);

/* The latest reply replica id gave to (client, seq), or NULL. */
const px_reply *h_reply_for(const harness *h, uint32_t id, uint64_t client,
			    uint64_t seq);

/* ---- the disk --------------------------------------------------------- */

/* Makes every pending write of replica id durable, in order, and steps
 * PX_EV_DURABLE with the highest write id. Returns the number of records
 * made durable (0 means no event was stepped). */
size_t h_sync(harness *h, uint32_t id);
size_t h_sync_all(harness *h);

/* Records written by replica id and not yet durable. */
size_t h_pending(const harness *h, uint32_t id);

/* Durable records of replica id (borrowed). */
const px_record *h_disk(const harness *h, uint32_t id, size_t *n);

/* Appends a copy of rec (value referenced, snapshot copied) to replica id's
 * durable disk: the state an acceptor will restore at its next h_restart. */
int h_disk_append(harness *h, uint32_t id, const px_record *rec);

/* ---- the network ------------------------------------------------------ */

/* Messages in flight. */
size_t h_count(const harness *h, h_filter f);

/* The idx'th matching message in flight (send order), or NULL (borrowed). */
const px_msg *h_peek(const harness *h, h_filter f, size_t idx);

/* Delivers the first matching message. Returns true if there was one. */
bool h_deliver_one(harness *h, h_filter f);

/* Delivers every message matching now (not the ones this sends). Returns
 * how many were delivered. */
size_t h_deliver(harness *h, h_filter f);

/* Delivers messages until none is in flight (syncing nothing: held promises
 * and votes stay held). Returns how many. */
size_t h_deliver_all(harness *h);

/* Puts m in flight, as if m->from had sent it (a delayed or duplicated
 * copy, say). Takes m. */
void h_inject(harness *h, px_msg *m);

/* Drops (frees) every matching message in flight. Returns how many. */
size_t h_drop(harness *h, h_filter f);

/* Cuts or heals the link from -> to (both ways with h_partition). Messages
 * over a cut link are dropped when they would be delivered. */
void h_cut(harness *h, uint32_t from, uint32_t to, bool cut);
/* Isolates replica id from every other replica (or heals it). */
void h_isolate(harness *h, uint32_t id, bool isolated);

/* ---- failures --------------------------------------------------------- */

/* Replica id loses its memory, its pending writes and the messages in
 * flight to it. Its durable disk survives. */
void h_crash(harness *h, uint32_t id);

/* Rebuilds replica id from h_config(id) with an empty state machine,
 * replays its durable disk with px_replica_restore and ticks it once at
 * h_now. Returns 0, or -1 when a record was refused. */
int h_restart(harness *h, uint32_t id);

/* Replica id crashes and its disk is lost: h_restart then starts it on an
 * empty disk, as a replica whose data directory was wiped. */
void h_wipe(harness *h, uint32_t id);

bool h_up(const harness *h, uint32_t id);

/* ---- running ---------------------------------------------------------- */

/* Delivers everything and syncs every replica until no message is in flight
 * and no write is pending. Time does not move. Returns the number of events
 * stepped. Gives up (returning what it did) after max_events. */
size_t h_run_until_quiet(harness *h);

/* Moves the clock forward to h_now + dur_us in steps of step_us; at each
 * step ticks every replica whose timer is due and runs until quiet. */
void h_run_for(harness *h, uint64_t dur_us, uint64_t step_us);

/* ---- views ------------------------------------------------------------ */

px_status h_status(const harness *h, uint32_t id);

/* Replica id itself (borrowed; NULL when down). */
const px_replica *h_replica(const harness *h, uint32_t id);

/* Replica id's own view of slot (borrowed), or NULL. */
const px_value *h_chosen(const harness *h, uint32_t id, uint64_t slot);

/* The value first learned chosen at slot by any replica, or NULL. */
const px_value *h_learned(const harness *h, uint64_t slot);

/* The highest slot any replica has learned chosen. */
uint64_t h_learned_max(const harness *h);

/* The leader: the one replica up with role PX_LEADER and the highest
 * ballot, or -1. */
int h_leader(const harness *h);

/* Commands replica id's state machine applied, in order. */
typedef struct h_applied {
	uint64_t slot, client_id, seq;
	uint32_t len;
	uint8_t data[64];
} h_applied;
const h_applied *h_sm_applied(const harness *h, uint32_t id, size_t *n);

/* How many times replica id's state machine applied (client, seq). */
size_t h_sm_count(const harness *h, uint32_t id, uint64_t client, uint64_t seq);

/* Whether a value holds exactly one command with this data. */
bool h_value_is(const px_value *v, const char *data);

/* Safety so far: false once two replicas learned different decrees (or
 * digests) for one slot, or a replica learned slots out of order. */
bool h_ok(const harness *h);
const char *h_error(const harness *h);

/* Total events stepped (for tests that bound work). */
uint64_t h_steps(const harness *h);

/* Snapshots replica id installed from a peer (PX_MSG_SNAPSHOT) so far. */
uint32_t h_snapshots_installed(const harness *h, uint32_t id);

/* Prints the messages in flight to stderr (for debugging a scenario). */
void h_dump(const harness *h);

#endif
