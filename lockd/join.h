/* Joining a running cell (lockd --join): the daemon asks members for the
 * configuration the cell has applied (client.proto OP_MEMBERS), which its
 * new data directory then starts from (storage.h, ds_adopt), and
 * checks that this replica may take its place in it. */
#ifndef LD_JOIN_H
#define LD_JOIN_H

#include <stddef.h>
#include <stdint.h>

#include "options.h"
#include "paxos.h"

/* Asks the --join URLs of o in turn, each for up to a second, until one
 * answers, for up to timeout_ms in all. On 0, *out (the caller's) is the
 * configuration that member has applied, URLs filled in where it knows
 * them, and *from_url the URL that answered (borrowed from o). -1 with a
 * sentence in err when none answered or the answer does not decode. */
int ld_join_fetch(const ld_options *o, uint32_t timeout_ms, px_members *out,
		  const char **from_url, char *err, size_t errlen);

/* Whether replica o->id may join the cell with configuration m: not when
 * its id left the cell (ids are never used twice), nor when the id is a
 * member at other URLs than o's own. 0, or -1 with a sentence. */
int ld_join_check(const ld_options *o, const px_members *m, char *err,
		  size_t errlen);

#endif
