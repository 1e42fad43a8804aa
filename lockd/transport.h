/* Peer transport on nng: each replica listens with a PULL socket on its peer
 * URL and dials a PUSH socket to each replica its node may send to (the
 * server keeps that set with the cell's membership: ld_peers_dial and
 * ld_peers_undial). Sends never block: a
 * message that cannot be queued is dropped, which Paxos tolerates (the core
 * resends what matters on its timers). Received bytes are decoded on nng's
 * callback thread and pushed onto the event queue; anything unauthenticated
 * (a MAC that fails under the cell key), malformed, not
 * addressed to this replica, or from an id out of range is logged
 * (rate-limited) and dropped. */
#ifndef LD_TRANSPORT_H
#define LD_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include "evq.h"
#include "options.h"
#include "paxos.h"

typedef struct ld_peers ld_peers;

typedef struct ld_peers_stats {
	uint64_t sent, send_dropped, encode_failed;
	uint64_t received, refused;
} ld_peers_stats;

/* Listens on url (this replica's peer URL); decoded messages go to q. It
 * dials nobody until told (ld_peers_dial): whom to dial follows the cell's
 * membership. With a cell key (o->peer_key, copied), every
 * message sent carries its MAC and every message received must (see
 * peer_auth.h); a message that fails is refused before it is decoded.
 * Returns 0, or -1 with a sentence in err. *out is the caller's to
 * ld_peers_close (also after -1). */
int ld_peers_open(const ld_options *o, const char *url, ld_evq *q,
		  ld_peers **out, char *err, size_t errlen);

/* Dials replica id (< LD_REPLICA_IDS, not this one) at url, in the
 * background (a replica that is down delays nothing), replacing an earlier
 * dial of that id to another URL; nothing when it already dials url there.
 * 0, or -1 with a sentence. Loop thread only, as ld_peers_send. */
int ld_peers_dial(ld_peers *p, uint32_t id, const char *url, char *err,
		  size_t errlen);

/* Stops dialing id (messages to it are dropped from now on). */
void ld_peers_undial(ld_peers *p, uint32_t id);

/* The URL id is dialed at, or NULL (borrowed until the next dial/undial). */
const char *ld_peers_dialed(const ld_peers *p, uint32_t id);

/* Encodes m and queues it for m->to without blocking. m is only read. */
void ld_peers_send(ld_peers *p, const px_msg *m);

void ld_peers_stats_get(ld_peers *p, ld_peers_stats *st);

/* Closes every socket and waits for the receive callback to finish. */
void ld_peers_close(ld_peers *p);

#endif
