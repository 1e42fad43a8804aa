/* liblockclient's insides shared between its files; not installed, not API.
 * lci_ is the prefix of what is here.
 *
 *   lockclient.c  errors, clients and their endpoints, one try, a call
 *                 with its retries (the transport every other file uses)
 *   writes.c      acquire, release, revoke, renew
 *   reads.c       get, check, list, status
 *   elect.c       leader, observe, campaign, resign
 *   members.c     membership
 *   session.c     sessions: background renewal and lease states
 *
 * An lci_stop lets one thread cut short the blocking calls another thread
 * makes with it: lc_session_close uses one to abandon the renewal under way
 * (which may be waiting out call_timeout_ms on a dark cell) and to bound the
 * releases it sends. It is per caller, not per client: the client's other
 * calls (the user's own, on other threads) are not disturbed. The calls made
 * with it are the usual ones: same session, same seq rules, same answers.
 * One call at a time may use a stop (it tracks one try in flight).
 */
#ifndef LC_INTERNAL_H
#define LC_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include <nng/nng.h>

#include "client.pb-c.h"
#include "lockclient.h"

/* Kept out of the shared library's exported symbols: not API. */
#define LCI_HIDDEN __attribute__((visibility("hidden")))

typedef struct lci_stop lci_stop;

typedef struct lci_endpoint {
	char *url;
	nng_socket sock;
	bool sock_open;
	atomic_int pipes; /* connections up */
	atomic_bool lost; /* it had one and lost it, and none came back */
} lci_endpoint;

struct lc_client {
	lc_options o;
	uint64_t session, session_key;
	/* The client whose connections this one uses: itself (lc_open), or
	 * the one it shares them with (lc_open_shared). The fields below up
	 * to `leader` are used only as net's. */
	lc_client *net;
	/* lc_open_shared clients using this one's connections. */
	atomic_uint shares;
	/* Adding an endpoint (a hint to an unknown leader). Entries [0, nep)
	 * are complete and never change until lc_close. */
	pthread_mutex_t add_mu;
	_Atomic uint32_t nep;
	lci_endpoint ep[LC_ENDPOINTS_MAX];
	/* Where writes (and reads) go first: the last replica that took a
	 * write or was named leader. */
	_Atomic uint32_t leader;
	/* Highest ledger position seen in any reply. */
	_Atomic uint64_t known;
	/* One write at a time, so that seq order is send order: the cell
	 * treats a retry of a command older than the session's latest as
	 * settled. The turn is `writing`, not write_mu itself, so that a
	 * wait for it can be stopped (lci_stop_now wakes write_cv); seq is
	 * only touched by the write that has the turn. */
	pthread_mutex_t write_mu;
	pthread_cond_t write_cv; /* CLOCK_MONOTONIC */
	bool writing;
	uint64_t seq;
};

/* ---- the transport (lockclient.c) ---------------------------------------- */

/* Records the calling thread's sentence for code (lc_last_error) and
 * returns code. */
LCI_HIDDEN int lci_fail(int code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Endpoints known (entries [0, n) are complete). */
LCI_HIDDEN uint32_t lci_ep_count(const lc_client *c);

/* Raises the client's known position to pos (never lowers it). */
LCI_HIDDEN void lci_see_position(lc_client *c, uint64_t pos);

/* LC_EINVAL with a sentence unless name has 1-LC_NAME_BYTES_MAX bytes. */
LCI_HIDDEN int lci_check_name(const char *name);

/* Takes c's write turn, waiting for the write that has it. Only with a
 * stop (may be NULL): LC_ECANCELED when st is stopped meanwhile,
 * LC_EUNAVAILABLE when st's end comes first. */
LCI_HIDDEN int lci_write_lock(lc_client *c, lci_stop *st);
LCI_HIDDEN void lci_write_unlock(lc_client *c);

/* Sends req to endpoint i alone and waits up to timeout_ms for its answer.
 * *sent_us is when it was handed to nng. On LC_OK *out is the reply, which
 * the caller frees (lockd__reply__free_unpacked). LC_EUNAVAILABLE when no
 * answer came in time, LC_EPROTO when it does not decode, LC_ENOMEM,
 * LC_ECANCELED when st (may be NULL) was stopped. */
LCI_HIDDEN int lci_attempt(lc_client *c, uint32_t i, const Lockd__Request *req,
			   uint64_t timeout_ms, lci_stop *st, uint64_t *sent_us,
			   Lockd__Reply **out);

typedef struct call_result {
	Lockd__Reply *rep; /* owned by the caller on LC_OK */
	uint64_t first_sent_us;
	unsigned sends;    /* tries that reached nng */
	uint32_t endpoint; /* who answered */
} call_result;

/* Sends req until a replica answers it for good (anything but NOT_LEADER,
 * BUSY, BEHIND), within call_timeout_ms + wait_ms, and within st's end.
 * Writes follow leader hints; every try carries the highest position seen.
 * req's session and seq stay as the caller set them: every try is the same
 * command. LC_ECANCELED as soon as st (may be NULL) is stopped. On LC_OK
 * res->rep is the caller's to free. */
LCI_HIDDEN int lci_call(lc_client *c, Lockd__Request *req, bool write,
			uint32_t wait_ms, lci_stop *st, call_result *res);

/* The code for a final answer (lci_call has dealt with NOT_LEADER, BUSY and
 * BEHIND); the cell's sentence becomes lc_last_error(). */
LCI_HIDDEN int lci_reply_code(const Lockd__Reply *r);

/* ---- reads (reads.c) ----------------------------------------------------- */

/* *info from the wire's lease l (copied). */
LCI_HIDDEN void lci_fill_info(lc_lease_info *info, const Lockd__Lease *l);

/* lc_get, and *position (may be NULL) gets the answering replica's ledger
 * position whenever a replica answered (LC_ENOSUCH included). */
LCI_HIDDEN int lci_get_at(lc_client *c, const char *name, lc_lease_info *out,
			  uint64_t *position);

/* ---- sessions (session.c) ------------------------------------------------ */

/* The client s runs on (borrowed). */
LCI_HIDDEN lc_client *lci_sess_client(lc_sess *s);

/* ---- stops --------------------------------------------------------------- */

/* A new stop for calls on c (borrowed: c must outlive it), not stopped and
 * with no end. *out is freed with lci_stop_free. LC_ENOMEM. */
LCI_HIDDEN int lci_stop_new(lc_client *c, lci_stop **out);

/* Frees st (NULL is fine). No call may be using it. */
LCI_HIDDEN void lci_stop_free(lci_stop *st);

/* From now on (until lci_stop_until), calls made with st return
 * LC_ECANCELED at once, and the one under way (its wait for the client's
 * write turn, or its try in flight) is abandoned: it returns LC_ECANCELED
 * within a scheduling delay, or a pause between tries (50 ms at most). Any
 * thread. A write abandoned in flight may still be applied by the cell: its
 * answer is never known, so nothing is believed from it. */
LCI_HIDDEN void lci_stop_now(lci_stop *st);

/* Clears the stop and bounds the calls made with st from now on: each gives
 * up at end_us (lc_now_us clock; UINT64_MAX: only its own timeout), as it
 * does at its own timeout (LC_EUNAVAILABLE and the like). Not for a call
 * already under way. */
LCI_HIDDEN void lci_stop_until(lci_stop *st, uint64_t end_us);

/* lc_renew and lc_release, stopped and bounded by st (may be NULL: then they
 * are exactly lc_renew and lc_release). */
LCI_HIDDEN int lci_renew(lc_client *c, lc_renewal *out, lci_stop *st);
LCI_HIDDEN int lci_release(lc_client *c, const char *name, uint64_t token,
			   lci_stop *st);

#endif
