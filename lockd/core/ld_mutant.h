/* Deliberately broken variants of lockd, for the simulator's self-tests: a
 * check that cannot fail proves nothing, so test/sim/check-mutants.sh runs
 * each one and requires the simulator's oracle to catch it. They are
 * compiled in only with LD_MUTANTS (core_mut_lib, which the simulator and
 * the scenario tests link); the daemon's build ignores px_config.mutant.
 *
 * One enum for the whole cell (px_config.mutant, lockd-sim --mutant NAME;
 * px_mutant_name and px_mutant_parse in paxos.h), grouped by the module
 * whose code breaks (MUTANT(...) there marks the spot); the line beside
 * each says what it breaks. */
#ifndef LD_MUTANT_H
#define LD_MUTANT_H

typedef enum ld_mutant {
	PX_MUTANT_NONE = 0,
	/* ---- the Paxos replica (paxos.c) ---- */
	PX_MUTANT_FORGET_PROMISE,   /* restart loses promises (P1b not
				       durable) */
	PX_MUTANT_IGNORE_VOTES,     /* proposer ignores phase-1 votes (breaks
				       P3) */
	PX_MUTANT_MINORITY_QUORUM,  /* quorum of n/2 instead of n/2+1 (breaks
				       P2) */
	PX_MUTANT_SHARED_BALLOTS,   /* ballots not unique per replica (breaks
				       P1) */
	PX_MUTANT_EARLY_CHOSEN,     /* leader declares chosen on its own vote */
	PX_MUTANT_VOTE_BEFORE_SYNC, /* answers 2a before the vote is durable */
	PX_MUTANT_WIPED_VOTES,   /* a replica started on an empty disk votes at
				    once, as if the cell were new */
	PX_MUTANT_IGNORE_DIGEST, /* replicas never compare state digests */
	PX_MUTANT_READ_LOCAL,    /* a leader answers a linearizable read at
				    once from its own table: no quorum
				    heartbeat, no wait for what it proposed
				    to be applied */
	PX_MUTANT_ALPHA_ZERO,    /* a membership change is in effect from the
				    very next slot (alpha = 0), while decrees
				    proposed under the old one are in flight */
	PX_MUTANT_COUNT_REMOVED, /* a leader counts votes of replicas that
				    were removed from the cell */
	PX_MUTANT_SNAP_NO_CHECKSUM, /* a replica installs a snapshot received
				       in chunks without checking its
				       checksum, damaged chunks and all */
	PX_MUTANT_READ_WINDOW,      /* a new leader's linearizable read waits
				       only for what it has proposed, not for
				       the votes its phase 1 found past its
				       pipeline */
	PX_MUTANT_SNAP_LATE_BASE,   /* a snapshot captured off the loop is
				       labelled with the replica's commit when
				       it comes back, not the commit it was
				       taken at */
	/* ---- the node's lease timers (node.c) ---- */
	PX_MUTANT_TICK_ANY_TERM, /* TICKs carry no leader term, so a deposed
				    leader's TICK chosen late adds time that
				    the next leader measured too */
	PX_MUTANT_TAKEOVER_ONE_SLICE, /* a new leader rebuilds the deadlines
					 of its first slice of leases only:
					 the rest never expire */
	PX_MUTANT_GRACE_ZERO,         /* re-grants right at expiry, no grace */
	PX_MUTANT_DEPOSED_RENEW, /* leader answers RENEW from its own table,
				    without a decree: a deposed one renews */
	PX_MUTANT_TRUST_STAMPS,  /* new leader takes old leaders' clock stamps
				    as deadlines in its own clock */
	/* ---- the lease table (lease.h's LS_MUTANT_UNCHECKED_REGRANT) ---- */
	PX_MUTANT_UNCHECKED_REGRANT, /* release/expiry end whatever lease the
					name has, whatever token they carry */
	/* ---- the daemon's round (lockd/edge/round.c) ---- */
	PX_MUTANT_ROUND_SEND_EARLY, /* the round tells the node its records are
				       durable before it writes them, so
				       promises and votes leave first */
	/* ---- the simulator (test/sim): clients, transport, disk ---- */
	PX_MUTANT_REPLY_CLOCK,     /* lclient.c: a client measures its deadline
				      from the reply's arrival, not from
				      sending */
	PX_MUTANT_OPEN_PEERS,      /* sim.c: the transport delivers a hostile
				      peer's forged messages, as a cell
				      without --peer-key or TLS would */
	PX_MUTANT_ACK_FAILED_SYNC, /* sim.c: the disk reports a write durable
				      although its sync failed (a full disk,
				      EIO), as a storage layer that ignores
				      fsync's error would */
	PX_MUTANT_COUNT
} ld_mutant;

#endif
