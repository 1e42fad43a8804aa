/* The daemon's event loop: one thread owns the lease node (lockd/core is
 * single-threaded) and is the only one to step it.
 *
 * One round of the loop:
 *  1. wait until the queue has events, the node's timer is due, or a parked
 *     read is ready or out of time;
 *  2. take every queued event; step the node once per peer message, then
 *     once for ALL the client requests taken together (LN_EV_REQUEST with
 *     nreqs = that many: writes among them share decrees - group commit),
 *     then a TICK if the timer is due;
 *  3. send the messages the steps produced: the core holds back every
 *     message that depends on a record (promises, votes) until that record
 *     is durable (paxos.h), so these may overlap this replica's sync;
 *  4. write every record of the round in one synced ds_write and step
 *     LN_EV_DURABLE with the highest write id (repeating while that step
 *     makes new records); if the write fails, stall (ld_server_run);
 *  5. only then send the messages that released and the client replies.
 * No promise, vote or client reply leaves before the records behind it are
 * durable, so a SIGKILL at any instant loses nothing acknowledged. */
#ifndef LD_SERVER_H
#define LD_SERVER_H

#include <stdatomic.h>
#include <stddef.h>

#include "evq.h"
#include "options.h"

typedef struct ld_server ld_server;

/* ld_server_open: this replica left the cell (its ledger says it was
 * removed, or --join found its id among the removed): it must not start
 * (lockd exits 3). */
#define LD_SERVER_REMOVED (-3)

/* Opens the store in o->data (refusing one of another replica or cell; a
 * new one started with --join first asks the cell for its configuration),
 * replays it into a new node, and opens the peer and client sockets, then
 * dials the other members of the configuration the node has applied.
 * Returns 0, or -1 with a sentence in err (and *out NULL), or
 * LD_SERVER_REMOVED. */
int ld_server_open(const ld_options *o, ld_server **out, char *err,
		   size_t errlen);

/* The queue a signal-handling thread stops (ld_evq_stop) to end the loop. */
ld_evq *ld_server_queue(ld_server *s);

/* Runs the loop until the queue is stopped, or until a second after this
 * replica learns that it left the cell (its last messages leave first);
 * returns 0. A write that fails
 * (a full disk, EIO, a read-only directory) does not end it: the replica
 * stalls (it neither promises, votes nor acknowledges, drops peer
 * messages, sends clients elsewhere, and says why in its log, /health and
 * /metrics), writes the same batch again every 500 ms, and carries on from
 * where it stopped once that succeeds. Nothing it did not sync is ever
 * acknowledged.
 *
 * At open, a store whose records fail their checks (DS_CORRUPT) is
 * moved aside to DIR.corrupt-<unix seconds> with one store_corrupt log
 * line, and the replica starts with an empty store of the same identity,
 * as one that lost its disk. */
int ld_server_run(ld_server *s);

/* Closes the sockets (no new requests; pending ones are dropped), then the
 * node and the store. NULL-safe. */
void ld_server_close(ld_server *s);

/* Set once ld_server_close has closed the store: from then on nothing
 * acknowledged can be lost, whatever happens to the sockets. */
extern atomic_int ld_server_store_closed;

#endif
