/* Snapshots captured off the event loop (px_config.snapshot_async).
 *
 * When the node asks for a snapshot, the loop forks. The child holds a
 * copy-on-write image of the replica as it stood between two steps; it
 * encodes it (ln_node_capture: the lease table, the client table, the
 * configurations) and writes it down a pipe, while the parent goes on
 * serving. A thread of the parent reads the pipe, reaps the child, and
 * wakes the loop, which hands the bytes to the node (LN_EV_SNAPSHOT). The
 * loop stops only for the fork itself (page tables: milliseconds for a
 * million leases) instead of for the encoding (most of a second).
 *
 * The child touches nothing but the replica's memory and the pipe: no
 * RocksDB, no nng, no logging, no exit handlers (_exit). It dies with its
 * parent (PR_SET_PDEATHSIG). One capture at a time; one that takes longer
 * than LD_CAPTURE_TIMEOUT_S is killed and reported as failed, and the
 * node asks again later. */
#ifndef LD_CAPTURE_H
#define LD_CAPTURE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "evq.h"
#include "node.h"

#define LD_CAPTURE_TIMEOUT_S 300

typedef struct ld_capture {
	ld_evq *q; /* kicked when a capture is back */
	/* The loop thread's alone. */
	bool busy;    /* a child runs (or its result waits to be taken) */
	pthread_t th; /* the reader, while th_live */
	bool th_live;
	uint64_t started_us, fork_us;
	/* Under lock: the reader's result. */
	pthread_mutex_t lock;
	bool done;
	uint8_t *snap; /* NULL: the capture failed (err says why) */
	size_t len;
	uint64_t base, sum;
	char err[160];
	/* Passed to the reader. */
	pid_t pid;
	int fd;
	/* Counts, for the logs and /metrics. */
	uint64_t taken, failed;
} ld_capture;

void ld_capture_init(ld_capture *c, ld_evq *q);
/* Kills a child still running and waits for its reader. */
void ld_capture_destroy(ld_capture *c);

/* The node asked for a snapshot: fork a child that captures it now. Does
 * nothing while one is under way. On a failure to fork, the next
 * ld_capture_take reports it (the node asks again later). */
void ld_capture_start(ld_capture *c, ln_node *n);

/* A capture is back: fills ev (LN_EV_SNAPSHOT, its bytes now the node's
 * once stepped; snap NULL when it failed), and *ms with how long it took
 * and *fork_ms with how long the loop stopped for the fork. False when
 * none is back. Loop thread. */
bool ld_capture_take(ld_capture *c, ln_event *ev, uint64_t *ms,
		     uint64_t *fork_ms, char *err, size_t errlen);

#endif
