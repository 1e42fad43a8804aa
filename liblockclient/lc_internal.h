/* liblockclient's insides shared between its files (lockclient.c, session.c);
 * not installed, not API. lci_ is the prefix of what is here.
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

#include "lockclient.h"

/* Kept out of the shared library's exported symbols: not API. */
#define LCI_HIDDEN __attribute__((visibility("hidden")))

typedef struct lci_stop lci_stop;

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
