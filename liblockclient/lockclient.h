/* liblockclient: the C client of a lockd cell.
 *
 * A client (lc_client) is one session of the cell: a random nonzero 64-bit
 * id unless the caller picks one, and a per-session command counter. Writes
 * (acquire, release, renew, revoke) go to the last known leader and follow
 * the cell's NOT_LEADER hints; when a replica does not answer in time the
 * client tries the next one. A retry of a write reuses its (session, seq),
 * and the cell applies a command once, so retries are safe.
 *
 * Reads (get, check, list) may be answered by any replica. Every reply says
 * how far that replica had applied the ledger; the client sends the highest
 * position it has seen with every request, so a read never goes back in
 * time and always sees this client's own writes.
 *
 * Lease time is the client's own monotonic clock (lc_time.h): a granted or
 * renewed lease is believed held until lc_lease_deadline_us(sent, ttl,
 * drift) where `sent` is when the request that granted or renewed it was
 * FIRST sent. Compare lc_now_us() with lc_lease.deadline_us before acting
 * on a lease, and pass the fencing token to whatever the lease protects.
 *
 * Threads: every function may be called from any thread, on the same client
 * too, except lc_close, which must be the last call on a client. Writes of
 * one client are serialised (a session's commands are numbered in order): a
 * blocking acquire that waits holds up the other writes of its client for
 * as long. Reads and lc_status run concurrently.
 *
 * Errors: 0 (LC_OK) or a positive LC_E... code; lc_strerror() gives a
 * sentence for it, and lc_last_error() the calling thread's last detailed
 * sentence (the cell's own, when the cell refused the request).
 *
 * Ownership: the library never keeps a pointer the caller passed in after
 * the call returns (strings and values are copied), and every structure it
 * fills belongs to the caller. Pointers it returns (lc_strerror,
 * lc_last_error, lc_endpoint_url) are borrowed; how long each lives is said
 * below.
 */
#ifndef LOCKCLIENT_H
#define LOCKCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lc_time.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- limits (the cell's, where the cell has one) ------------------------- */

#define LC_ENDPOINTS_MAX 16u     /* replicas a client knows, hints included */
#define LC_URL_BYTES_MAX 256u    /* one endpoint URL, NUL excluded */
#define LC_NAME_BYTES_MAX 256u   /* a lease name: [A-Za-z0-9._/:-]{1,256} */
#define LC_VALUE_BYTES_MAX 1024u /* a lease's value */
#define LC_REASON_BYTES_MAX 256u /* a revoke's reason */
#define LC_SESSION_LEASES_MAX 1024u /* leases one session may hold */
#define LC_RENEW_SESSIONS_MAX 256u  /* sessions one lc_renew_many renews */
#define LC_ERROR_BYTES_MAX 256u     /* lc_last_error(), NUL included */
/* Sessions are 1 .. LC_SESSION_MAX: the cell numbers its own commands (TICK,
 * EXPIRE) with the top bit set. */
#define LC_SESSION_MAX ((UINT64_C(1) << 63) - 1)

/* ---- errors -------------------------------------------------------------- */

#define LC_ERROR_TABLE(X)                                                      \
	X(LC_OK, "success")                                                    \
	X(LC_EINVAL, "invalid argument: the client or the cell refused a "     \
		     "name, TTL, wait, value, reason, token or endpoint")      \
	X(LC_ENOMEM, "out of memory")                                          \
	X(LC_EUNAVAILABLE, "no replica answered within the timeout")           \
	X(LC_ENOLEADER, "the replicas answered but none knew a leader "        \
			"within the timeout (an election may be under way)")   \
	X(LC_EBUSY, "the leader stayed too busy to take the request within "   \
		    "the timeout")                                             \
	X(LC_EBEHIND, "no replica had applied the ledger as far as this "      \
		      "client has already seen, within the timeout")           \
	X(LC_EHELD, "the name is held by another session")                     \
	X(LC_ETIMEOUT, "the wait ran out and the name is still held by "       \
		       "another session")                                      \
	X(LC_ENOTHOLDER, "this session and token do not hold the lease "       \
			 "(it was released, expired, revoked or passed on)")   \
	X(LC_ENOSUCH, "no such lease: the name is free")                       \
	X(LC_ELIMIT, "over a limit of the cell: too many leases held by this " \
		     "session, or too many waiters on this name")              \
	X(LC_EPROTO, "a replica sent a reply that is not a valid lockd reply") \
	X(LC_ECANCELED, "the caller cancelled the call (its cancelled "        \
			"callback said so)")                                   \
	X(LC_EREFUSED, "the cell refused the membership change "               \
		       "(lc_last_error() says why)")

/* clang-format off */
enum {
#define LC_X(code, text) code,
	LC_ERROR_TABLE(LC_X)
#undef LC_X
	LC_ERROR_COUNT
};
/* clang-format on */

/* A sentence for code; a fixed sentence for a code that is not in the table.
 * The string is static: never free it. */
const char *lc_strerror(int code);

/* The calling thread's sentence for its last failed call: the cell's own
 * words when the cell refused the request (for example which limit), else
 * what the library saw (which replicas it tried). "" before any failure.
 * Thread-local storage: valid until this thread's next call into the
 * library; never free it. */
const char *lc_last_error(void);

/* ---- clients ------------------------------------------------------------- */

typedef struct lc_client lc_client;

/* How fresh a read (lc_get, lc_check, and what builds on them) must be. */
typedef enum lc_consistency {
	/* The default: a replica answers once it has applied the highest
	 * ledger position this client has seen, so a read never goes back in
	 * time, on any replica and across failover. */
	LC_READ_YOUR_WRITES = 0,
	/* The leader answers once a quorum confirmed it still leads (one
	 * heartbeat round, no decree, no disk write): the read reflects every
	 * write acknowledged before it was sent. The client follows leader
	 * hints to get there. */
	LC_LINEARIZABLE = 1,
	/* Whatever the replica asked has applied, at once. */
	LC_STALE = 2,
} lc_consistency;

/* The longest file path lc_options holds, NUL included. */
#define LC_PATH_BYTES_MAX 1024u

typedef struct lc_options {
	/* The session id, 1 .. LC_SESSION_MAX; 0 picks a random one
	 * (getrandom). Two clients must never share a session. */
	uint64_t session;
	/* The session's key, its secret: the session's first acquire sets it
	 * in the cell, and the cell refuses (LC_ENOTHOLDER, "belongs to
	 * another client") writes of the session with another key, so that
	 * a session's id, which GET shows to everyone, is not enough to
	 * release or renew its leases. 0 with session 0: a random key; 0
	 * with a given session: no key (one that another process made
	 * without one). lc_session_key() tells it, to pass on with the id. */
	uint64_t session_key;
	/* One try at one replica, ms (0: 2000). A waiting acquire adds its
	 * wait_ms. */
	uint32_t attempt_timeout_ms;
	/* A whole call with all its retries, ms (0: 10000). A waiting acquire
	 * adds its wait_ms. */
	uint32_t call_timeout_ms;
	/* The clock-rate bound the cell is configured for, in ppm (0: 1000).
	 * Lease deadlines are shortened by it (lc_time.h). */
	uint32_t drift_ppm;
	/* A grant that arrives with less than this many thousandths of its
	 * TTL believed left (a long wait) is refreshed at once by a re-acquire
	 * (0: LC_RENEW_REMAINING_PERMILLE; 1000 and above: never). */
	uint32_t refresh_remaining_permille;
	/* Commands of this client are numbered from seq_base + 1 (0: from
	 * 1). The cell treats a command whose seq is not above the session's
	 * latest as an already-settled retry, so a process that reopens a
	 * session another process used (lockctl release --session) must start
	 * above every seq that one used: at the wall clock in microseconds.
	 * With a seq_base, a command the cell answers as superseded (the
	 * other process's later command reached the ledger first) is sent
	 * again numbered from the wall clock, so that this client gets ahead
	 * of a process that followed the same convention. */
	uint64_t seq_base;
	/* Reads' consistency (0: LC_READ_YOUR_WRITES). */
	lc_consistency read_consistency;
	/* For tls+tcp:// endpoints: the CA file (PEM) that verifies the
	 * replicas (required for them), and this client's certificate and key
	 * in one PEM file, for a cell that asks for client certificates
	 * (lockd --tls-client-auth 1). "" = none. */
	char tls_ca_file[LC_PATH_BYTES_MAX];
	char tls_cert_key_file[LC_PATH_BYTES_MAX];
} lc_options;

/* Fills o with the defaults (all zero: see above). */
void lc_options_init(lc_options *o);

/* Opens a client of the cell at endpoints, a comma-separated list of nng
 * URLs (e.g. "tcp://127.0.0.1:7001,tcp://127.0.0.1:7002"), at most
 * LC_ENDPOINTS_MAX, none empty. Connections are made in the background, so
 * an endpoint that is down is not an error here; a malformed one is
 * (LC_EINVAL). opt may be NULL (defaults); it is copied. On success *out is
 * a new client, which the caller frees with lc_close; on failure *out is
 * NULL. */
int lc_open(const char *endpoints, const lc_options *opt, lc_client **out);

/* Opens another client (its own session, seq and known position, from opt
 * as lc_open takes it) over base's connections: a process that acts for
 * many sessions (a proxy, a server of many tenants, a load generator)
 * needs no sockets, connections or threads per session. The leader one of
 * them learns is the one the others try first. opt's TLS files are not
 * used (base's connections are). base must stay open until every client
 * opened over it is closed; a client opened over a shared one shares
 * base's connections. Calls on the clients may run at once on different
 * threads, as on one client. LC_EINVAL, LC_ENOMEM. */
int lc_open_shared(lc_client *base, const lc_options *opt, lc_client **out);

/* Closes the connections and frees c (NULL is fine). No other call on c
 * may be running or come after, and the clients opened over it with
 * lc_open_shared must be closed first. Leases are not released: they
 * expire. */
void lc_close(lc_client *c);

/* This client's session id. */
uint64_t lc_session(const lc_client *c);

/* This client's session key (lc_options.session_key). */
uint64_t lc_session_key(const lc_client *c);

/* The highest ledger position seen in any reply so far. */
uint64_t lc_known_position(const lc_client *c);

/* Endpoints known (the ones given to lc_open, then leaders learnt from
 * hints), and the URL of endpoint i (NULL when i is out of range; borrowed,
 * valid until lc_close). */
uint32_t lc_endpoint_count(const lc_client *c);
const char *lc_endpoint_url(const lc_client *c, uint32_t i);

/* The client's monotonic clock, in microseconds: the clock of every
 * deadline_us and sent_us below. */
uint64_t lc_now_us(void);

/* ---- leases -------------------------------------------------------------- */

/* A lease this session asked for. Plain data, owned by the caller. */
typedef struct lc_lease {
	char name[LC_NAME_BYTES_MAX + 1];
	uint64_t token; /* the fencing token; 0 unless granted */
	uint32_t ttl_ms;
	uint64_t sent_us;     /* first send of the request that granted or last
				 renewed it (lc_now_us clock) */
	uint64_t deadline_us; /* believed held while lc_now_us() < this */
	uint64_t holder;      /* LC_EHELD / LC_ETIMEOUT: the holder's session */
	uint32_t queue_position; /* LC_EHELD after an earlier wait: 1 = next */
} lc_lease;

/* True while the client may still believe it holds l. */
static inline bool lc_lease_held(const lc_lease *l, uint64_t now_us)
{
	return l->token != 0 && lc_lease_valid(now_us, l->deadline_us);
}

/* Asks for the lease on name for ttl_ms (100 ms .. the cell's TTL limit),
 * carrying value[0..value_len) (may be NULL when value_len is 0; copied).
 * wait_ms 0 tries once: LC_EHELD when another session holds it. Otherwise
 * it waits up to wait_ms, first come first served, for the holder to let go
 * (LC_ETIMEOUT when it does not). The session's own re-acquire returns its
 * lease renewed. On LC_OK, *out (caller's) holds the token and deadline; on
 * LC_EHELD and LC_ETIMEOUT, out->holder names the holder. */
int lc_acquire(lc_client *c, const char *name, uint32_t ttl_ms,
	       uint32_t wait_ms, const void *value, size_t value_len,
	       lc_lease *out);

/* Ends this session's lease on name with its token; the next waiter gets
 * it at once. LC_ENOTHOLDER when token is not the current holder's (or the
 * holder is another session), LC_ENOSUCH when the name is free. */
int lc_release(lc_client *c, const char *name, uint64_t token);

/* The holder (this session, with its token) replaces its lease's value,
 * keeping token, TTL and deadline: an elected leader announces a new value
 * without resigning (etcd's Proclaim); watchers and lc_observe see it as a
 * change. LC_ENOTHOLDER and LC_ENOSUCH as lc_release. */
int lc_proclaim(lc_client *c, const char *name, uint64_t token,
		const void *value, size_t value_len);

/* The answer to one RENEW: the tokens renewed and when the request was first
 * sent. Caller's memory (about 8 KiB: allocate it, do not put it on a small
 * stack). */
typedef struct lc_renewal {
	uint64_t sent_us;
	size_t ntokens; /* sorted ascending in tokens[] */
	uint64_t tokens[LC_SESSION_LEASES_MAX];
} lc_renewal;

/* Renews every lease this session holds (one decree for all) and fills
 * *out. A lease missing from out->tokens was not renewed: it has ended
 * (expired, released, or revoked: a revoked lease is never renewed). */
int lc_renew(lc_client *c, lc_renewal *out);

/* Renews the leases of n sessions (1 to LC_RENEW_SESSIONS_MAX) in one
 * request: cs[0..n), all over the same connections (lc_open_shared, or the
 * client they share), so that a process acting for many sessions sends one
 * keepalive for them all. Each session's part is a RENEW of its own (its
 * next seq, applied once), batched into the cell's decrees with the rest.
 * Takes each session's write turn, in order: no two threads may pass
 * overlapping sets in different orders. When the cell answered, returns
 * LC_OK and codes[i] and outs[i] are what lc_renew(cs[i], &outs[i]) would
 * have given; otherwise returns the failure (LC_EUNAVAILABLE, ...), and
 * every codes[i] is that too. */
int lc_renew_many(lc_client *const *cs, size_t n, lc_renewal *outs, int *codes);

/* Applies r to the caller's leases[0..n): each lease r renewed gets its
 * deadline moved to the one r's send time gives (never backwards). Returns
 * how many of leases[] with a nonzero token r did NOT renew: leases lost. */
size_t lc_renewal_apply(const lc_client *c, const lc_renewal *r,
			lc_lease *leases, size_t n);

/* Revokes the lease on name (an operator's forced end), with reason (may be
 * NULL; copied). The holder is never renewed again and the name passes on
 * when the lease expires. LC_ENOSUCH when the name is free. */
int lc_revoke(lc_client *c, const char *name, const char *reason);

/* What a replica knows of one lease. Plain data, owned by the caller. */
typedef struct lc_lease_info {
	char name[LC_NAME_BYTES_MAX + 1];
	uint64_t holder; /* session */
	uint64_t token;
	uint32_t ttl_ms;
	int64_t ttl_ms_left; /* the leader's view; -1 when a follower answered
			      */
	bool in_grace;       /* past its deadline, inside the grace delay */
	bool revoked;
	/* revoked: the revoke's reason, NUL-terminated ("" when none was
	 * given, or the cell had no room to keep it) */
	char revoke_reason[LC_REASON_BYTES_MAX + 1];
	uint32_t waiters;
	size_t value_len;
	uint8_t value[LC_VALUE_BYTES_MAX];
} lc_lease_info;

/* The lease on name, into *out (caller's). LC_ENOSUCH when it is free. */
int lc_get(lc_client *c, const char *name, lc_lease_info *out);

/* One change of a name, as a prefix watch reports it. */
typedef struct lc_change {
	bool held;           /* false: the name became free */
	lc_lease_info lease; /* name always; the rest when held */
} lc_change;

/* The changes of every name under prefix ("" for every name) after ledger
 * position after_position: one WATCH, waiting up to wait_ms (at most 60 s
 * at the replica). LC_OK: out[0..*n) (at most cap) are every change at
 * *position, the first position after after_position that has any, so
 * that calling again from *position misses none; or, with *history_lost,
 * none (*n is 0): the replica could not replay the changes after
 * after_position (it restarted or they fell out of its feed), so list the
 * prefix (lc_list) to learn the state at *position and go on from there.
 * LC_ETIMEOUT: no change within wait_ms; *position is how far the replica
 * looked, to call again from. */
int lc_watch_prefix(lc_client *c, const char *prefix, uint64_t after_position,
		    uint32_t wait_ms, lc_change *out, size_t cap, size_t *n,
		    uint64_t *position, bool *history_lost);

/* Chubby's sequencer check: *current is whether token is the current
 * holder's token for name. LC_OK whatever the answer. */
int lc_check(lc_client *c, const char *name, uint64_t token, bool *current);

/* Called once per lease by lc_list; info is borrowed for the call. Return
 * true to go on, false to stop. */
typedef bool (*lc_list_fn)(const lc_lease_info *info, void *arg);

/* Calls fn for every lease whose name starts with prefix (NULL or "": all),
 * in name order; *count (may be NULL) gets how many fn was called for.
 * Linearizable (lc_options.read_consistency) costs one more read first: a
 * linearizable GET whose position every page then waits for. The
 * cell answers in pages of at most 1000 leases (and about 768 KiB), each
 * the table at one ledger position; lc_list asks for the next page from the
 * last name seen until none is left, so a long listing is not one snapshot:
 * a name may come and go between pages. On an error after some pages, fn
 * has seen those pages. */
int lc_list(lc_client *c, const char *prefix, lc_list_fn fn, void *arg,
	    size_t *count);

/* ---- replicas ------------------------------------------------------------ */

typedef struct lc_replica_status {
	uint32_t id;
	/* "leader", "candidate", "follower"; "recovering" (it learns before it
	 * may vote again), "learner" (a member not yet promoted), "joining"
	 * (not a member: it waits to be added, or it was removed),
	 * "diverged" */
	char role[16];
	uint64_t ballot_round;
	uint32_t ballot_id;
	int32_t leader; /* the leader's id as this replica knows it, or -1 */
	uint64_t commit, applied, snapshot_base;
	uint64_t leases;                        /* leases in its table */
	char leader_addr[LC_URL_BYTES_MAX + 1]; /* the leader's URL, or "" */
	bool voter;                             /* it votes */
	bool member; /* it is in the configuration it has applied */
	uint32_t members, voters; /* that configuration's size, and voters */
	char version[32];         /* its lockd version ("" from an older one) */
	uint64_t uptime_s;        /* seconds since its process started */
	uint64_t snapshot_bytes;  /* its latest snapshot's size (0: none) */
} lc_replica_status;

/* Asks endpoint i (0 .. lc_endpoint_count - 1) alone for its view of the
 * cell, one try within attempt_timeout_ms. *out is the caller's. */
int lc_status(lc_client *c, uint32_t i, lc_replica_status *out);

/* ---- membership -----------------------------------------------------------
 *
 * The cell's replicas are part of its replicated state: they change by
 * decree, one change at a time (README, Membership). lc_member_add makes a
 * new replica a learner: it catches up without voting, and the leader
 * promotes it to voter by itself once it has (lc_members_list shows when:
 * voting). lc_member_remove takes one out for good; its id is never used
 * again. Both go to the leader (following hints, as writes do) and return
 * once the change is chosen and applied there; one that is already made
 * returns LC_OK again, so a retry is safe. While another change is still
 * taking effect the cell answers "retry", and the call retries within its
 * call_timeout_ms. */

#define LC_MEMBERS_MAX 16u /* members listed (the cell holds at most 7) */
#define LC_REPLICA_IDS 64u /* replica ids are 0 .. 63 */

typedef struct lc_member {
	uint32_t id;
	bool voting;          /* false: a learner, not promoted yet */
	uint64_t incarnation; /* its disk's, as its promotion named it (0:
				 one of the cell's first replicas) */
	char peer[LC_URL_BYTES_MAX + 1];   /* "" when the replica knows none */
	char client[LC_URL_BYTES_MAX + 1]; /* "" when the replica knows none */
} lc_member;

/* A configuration as one replica has applied it. Plain data (about 8 KiB),
 * owned by the caller. */
typedef struct lc_members {
	uint32_t n;
	lc_member m[LC_MEMBERS_MAX]; /* by increasing id */
	uint64_t removed;       /* bit i: replica id i left the cell for good */
	uint64_t from_position; /* in effect from this ledger position on */
	int32_t leader; /* the leader as the answering replica knows it, -1 */
	char leader_addr[LC_URL_BYTES_MAX + 1];
	uint64_t change_position; /* add/remove: where the change was chosen
				     (0: it was already made) */
} lc_members;

/* The member with this id in m, or NULL. */
const lc_member *lc_members_find(const lc_members *m, uint32_t id);

/* The cell's members as one replica (any; read-your-writes, as lc_get)
 * has applied them, into *out (the caller's). */
int lc_members_list(lc_client *c, lc_members *out);

/* Adds replica id (0 .. 63, never a member before) with its peer and
 * client URLs (copied) as a learner. *out (may be NULL) gets the
 * configuration right after. LC_EREFUSED with the cell's sentence in
 * lc_last_error() when the cell will not (an id used before, a cell at its
 * size limit, another id at those URLs). */
int lc_member_add(lc_client *c, uint32_t id, const char *peer_url,
		  const char *client_url, lc_members *out);

/* Removes replica id from the cell (a leader that removes itself hands
 * over first). LC_EREFUSED when the cell would be left without a quorum
 * that answers, or id is not a member. *out may be NULL. */
int lc_member_remove(lc_client *c, uint32_t id, lc_members *out);

/* ---- sessions: leases kept alive in the background ----------------------
 *
 * An lc_session renews the leases it was given (lc_session_acquire) from a
 * background thread, early: when renew_remaining_permille of a lease's TTL
 * is left before its conservative deadline (lc_time.h; each deadline is
 * counted from the SEND time of the request that granted or last renewed
 * it, on CLOCK_MONOTONIC). One lc_renew renews every lease of the client's
 * session at once. A second thread watches the deadlines and reports each
 * lease's state through the callback:
 *
 *   LC_LEASE_HELD      granted (reported once at acquire), or renewals
 *                      work again after JEOPARDY;
 *   LC_LEASE_JEOPARDY  the last renewal failed (or one has been under way
 *                      too long) and less than jeopardy_remaining_permille
 *                      of the TTL is left before the deadline (by default
 *                      half the renew fraction: a sixth): stop starting
 *                      side effects;
 *   LC_LEASE_LOST      the deadline passed, or a renewal sent after the
 *                      grant did not list the lease (expired, revoked,
 *                      released elsewhere), or lc_session_close could not
 *                      get the cell to answer its release (the lease
 *                      expires there): final, the lease leaves the
 *                      session;
 *   LC_LEASE_RELEASED  released by lc_session_release or lc_session_close,
 *                      and the cell answered the release: final.
 *
 * Callbacks run on the session's monitor thread, one at a time and in order;
 * name is borrowed for the call. A callback may call lc_session_held (and
 * other read calls) but must not call lc_session_close. They are reports,
 * late by scheduling at worst: before acting on a lease, ask
 * lc_session_held, which is computed locally from the deadline at the time
 * of the call.
 *
 * Ownership and threads: the session borrows the client, which must outlive
 * it (close the session first, then the client). Every lc_session_ call is
 * thread-safe except lc_session_close, which must be the last. A waiting
 * lc_session_acquire holds up the client's other writes, renewals included
 * (lockclient.h, Threads): keep waits short next to held leases' TTLs, or
 * use another client. Only leases taken through the session are renewed
 * and reported; lc_renew on the same client also renews them, harmlessly. */

typedef enum lc_lease_state {
	LC_LEASE_HELD = 1,
	LC_LEASE_JEOPARDY,
	LC_LEASE_LOST,
	LC_LEASE_RELEASED,
} lc_lease_state;

/* "held", "jeopardy", "lost", "released" (static). */
const char *lc_lease_state_name(lc_lease_state s);

typedef void (*lc_session_fn)(lc_lease_state state, const char *name,
			      uint64_t token, void *arg);

typedef struct lc_session_options {
	/* Renew when this many thousandths of the TTL are left before the
	 * deadline (0: LC_RENEW_REMAINING_PERMILLE, a third). 1..999. */
	uint32_t renew_remaining_permille;
	/* JEOPARDY once a renewal failed (or is still under way) and less
	 * than this many thousandths of the TTL are left (0: half of
	 * renew_remaining_permille, a sixth). */
	uint32_t jeopardy_remaining_permille;
	/* Pause between renew tries after a failure, ms (0: 100). */
	uint32_t retry_ms;
	lc_session_fn callback; /* may be NULL */
	void *arg;              /* passed to callback */
} lc_session_options;

typedef struct lc_session lc_sess; /* lc_session() is the session id */

/* Fills o with the defaults (all zero). */
void lc_session_options_init(lc_session_options *o);

/* Starts a session on c (borrowed, must outlive it); opt may be NULL
 * (copied). *out is freed by lc_session_close. LC_ENOMEM, or LC_EINVAL for
 * a permille over 999. */
int lc_session_open(lc_client *c, const lc_session_options *opt, lc_sess **out);

/* lc_acquire, then registers the lease for renewal and reports HELD. A
 * re-acquire of a name the session holds updates its entry. */
int lc_session_acquire(lc_sess *s, const char *name, uint32_t ttl_ms,
		       uint32_t wait_ms, const void *value, size_t value_len,
		       lc_lease *out);

/* Releases the session's lease on name (its token is the session's) and
 * reports RELEASED. LC_ENOSUCH when the session has no such lease (never
 * had it, or it was LOST); else what lc_release says (the lease leaves the
 * session and is reported RELEASED whatever the cell answered, unless no
 * valid answer came: LC_EUNAVAILABLE, LC_ENOLEADER, LC_EBUSY, LC_EBEHIND,
 * LC_EPROTO, LC_ENOMEM; then it is kept and renewed). Blocks up to the
 * client's call_timeout_ms. */
int lc_session_release(lc_sess *s, const char *name);

/* True while the session may believe it holds name: registered, not lost,
 * and lc_now_us() before its conservative deadline. */
bool lc_session_held(lc_sess *s, const char *name);

/* The lease's current copy (token, deadline) into *out; false when the
 * session does not hold name (as lc_session_held). */
bool lc_session_lease(lc_sess *s, const char *name, lc_lease *out);

/* Stops renewing, releases every lease still held, stops the threads and
 * frees s (NULL is fine). Does not close the client. A renewal under way is
 * abandoned, not waited for (its answer, if the cell sends one, is never
 * believed). Each release the cell answers is reported RELEASED; once the
 * cell has given no answer for about a second (from the start of close, or
 * its last answer), and for a lease already past its deadline, close stops
 * trying and reports the rest LOST: they expire at the cell. So close
 * returns at once when the session holds nothing (its leases were LOST, for
 * example), and within about a second when the cell is unreachable, even
 * while another thread's write on the client is waiting for the cell; the
 * client's other calls are not disturbed. */
void lc_session_close(lc_sess *s);

/* ---- elections: a group is a lease name ----------------------------------
 *
 * A group's leader is the session holding the lease named after the group;
 * the lease's value says who the leader is (an address, for example), and
 * its token fences the leader's writes downstream. A candidate campaigns
 * with lc_campaign (blocks until elected, through an lc_sess so that the
 * lease is renewed and reported), serves while lc_session_held(s, group),
 * and steps down with lc_resign. Anyone reads the leader with lc_leader and
 * follows every change with lc_observe (the cell's WATCH). */

/* Called (when not NULL) between tries by the blocking calls below: true
 * stops the call with LC_ECANCELED. Runs on the caller's thread; setting a
 * volatile sig_atomic_t from a signal handler and returning it here is the
 * usual use. */
typedef bool (*lc_cancel_fn)(void *arg);

/* Called (when not NULL) by lc_campaign after each try that did not elect:
 * rv is LC_EHELD / LC_ETIMEOUT (holder is the leader's session) or a
 * transient error (LC_EUNAVAILABLE, LC_ENOLEADER, LC_EBUSY, LC_EBEHIND,
 * LC_EPROTO: lc_last_error() says more) that lc_campaign retries. */
typedef void (*lc_campaign_fn)(int rv, uint64_t holder, void *arg);

typedef struct lc_campaign_options {
	/* Give up with LC_ETIMEOUT after this long, ms (0: never). Checked
	 * between tries, and each try's wait is cut to what is left, so the
	 * call may run past it by up to one try's network time (the client's
	 * call_timeout_ms at worst). */
	uint32_t timeout_ms;
	/* Each try waits in the cell's queue up to this long, ms (0: 1000).
	 * A waiting acquire holds up the client's other writes, renewals of
	 * the session's other leases included (see sessions): keep it well
	 * under their TTLs. Cancellation is noticed between tries, so within
	 * about this long. */
	uint32_t wait_ms;
	/* Pause after a transient error, ms (0: 500). */
	uint32_t retry_ms;
	lc_cancel_fn cancelled;  /* may be NULL */
	lc_campaign_fn progress; /* may be NULL */
	void *arg;               /* passed to both */
} lc_campaign_options;

/* Fills o with the defaults (all zero). */
void lc_campaign_options_init(lc_campaign_options *o);

/* What a read saw of a group (or of any lease name). Plain data, owned by
 * the caller. */
typedef struct lc_leader_info {
	/* The ledger position of the replica that answered: the state below
	 * is the group's state at that position. Pass it to lc_observe. */
	uint64_t position;
	bool elected;        /* false: the group is free (lease zeroed) */
	lc_lease_info lease; /* holder (session), token, value, ... */
	/* lc_observe: the replica could not replay the changes after the
	 * caller's position; this is the current state (see lc_observe). */
	bool history_lost;
} lc_leader_info;

/* Campaigns for group: lc_session_acquire(s, group, ttl_ms, wait, value)
 * again and again (first come first served in the cell's queue) until it is
 * granted, then returns LC_OK with the lease in *out (caller's), registered
 * with s: renewed in the background and reported through s's callback (HELD
 * first). The caller is the leader while lc_session_held(s, group); it
 * steps down with lc_resign (or lc_session_close). Blocks the calling
 * thread; opt may be NULL (defaults: no timeout, no cancellation). Retries
 * transient errors; returns LC_ETIMEOUT (out->holder: the leader) when
 * opt->timeout_ms ran out, LC_ECANCELED when opt->cancelled said so, and
 * LC_EINVAL / LC_ELIMIT / LC_ENOMEM at once. value is copied. */
int lc_campaign(lc_sess *s, const char *group, const void *value,
		size_t value_len, uint32_t ttl_ms,
		const lc_campaign_options *opt, lc_lease *out);

/* Steps down: lc_session_release(s, group) (reported RELEASED; the next
 * candidate in the queue is elected at once). */
int lc_resign(lc_sess *s, const char *group);

/* Reads group's leader into *out (caller's): LC_OK when it has one,
 * LC_ENOSUCH when it is free (out->elected false, out->position still set,
 * so that lc_observe can start from it); other errors as lc_get. */
int lc_leader(lc_client *c, const char *group, lc_leader_info *out);

typedef struct lc_observe_options {
	/* Each WATCH waits on the cell at most this long before it is asked
	 * again, ms (0: 1000): cancellation and timeout_ms are noticed within
	 * about this long. */
	uint32_t interval_ms;
	uint32_t timeout_ms;    /* LC_ETIMEOUT after this long (0: never) */
	lc_cancel_fn cancelled; /* may be NULL: checked between WATCHes */
	void *arg;
} lc_observe_options;

/* Fills o with the defaults (all zero). */
void lc_observe_options_init(lc_observe_options *o);

/* Waits for the next change of group's holder after a ledger position and
 * returns it: LC_OK (a holder; out->elected) or LC_ENOSUCH (the group
 * became free), with out->position the ledger position of that change.
 * Pass the position and token of the last state the caller knows (from
 * lc_leader, or the previous lc_observe, with token 0 when free), and call
 * again with what it returns: every change is reported once, in ledger
 * order, none skipped, across replicas and failover. A release that hands
 * the group to a waiter is one change (to the waiter); a holder's new
 * value (lc_proclaim) is one, with the same token; renewals are none.
 *
 * The cell keeps each replica's recent changes in memory (WATCH in
 * client.proto). A replica that cannot replay from after_position (it
 * restarted, installed a snapshot, or more than 65,536 changes happened
 * since) answers with the current state instead and sets
 * out->history_lost: changes between may have been missed; a state with
 * after_token is then not reported as a change.
 *
 * Returns a call's error (LC_EUNAVAILABLE, ...) at once, *out untouched,
 * so the caller may report it and call again with the same position;
 * LC_ETIMEOUT and LC_ECANCELED as opt says (opt may be NULL: defaults).
 * Blocks the calling thread; runs concurrently with the client's writes. */
int lc_observe(lc_client *c, const char *group, uint64_t after_position,
	       uint64_t after_token, const lc_observe_options *opt,
	       lc_leader_info *out);

#ifdef __cplusplus
}
#endif

#endif
