/* The client side of the daemon: one nng REP socket on the replica's client
 * URL with many contexts, so a request that waits (a blocking acquire, a read
 * waiting for the ledger to catch up) holds only its own context.
 *
 * Each context cycles: receive -> (callback) decode the client.proto Request
 * -> malformed: answer STATUS_INVALID at once; else hand the context to the
 * event loop through the queue -> the loop answers with ld_cctx_reply ->
 * (callback) receive again. Between the hand-off and the reply the loop owns
 * the context and its request. */
#ifndef LD_CLIENT_API_H
#define LD_CLIENT_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client.pb-c.h"
#include "evq.h"
#include "tls.h"

/* Client contexts per replica: requests in progress at once. A context is
 * held while its request waits (an acquire with a wait, a WATCH), and nng
 * reads no new request while none is free, so the server keeps
 * LD_CLIENT_CTX_RESERVE of them for requests that do not wait: past
 * LD_CLIENT_CTX_MAX - LD_CLIENT_CTX_RESERVE waiters (reads waiting for
 * known_position included), a new one is told BUSY (such a read BEHIND),
 * and renewals, releases and reads still get through. nng 1.5.2 can wedge
 * its reap thread when a connection closes while every context is held
 * (server_int.h, PARKED_PER_CONN_MAX). */
#define LD_CLIENT_CTX_MAX 1024u
#define LD_CLIENT_CTX_RESERVE 64u

/* The HTTP API (http_api.h) hands the loop the same requests through
 * contexts of its own beside the socket's: indexes LD_CLIENT_CTX_MAX to
 * LD_CLIENT_SLOTS - 1. The loop answers them as it answers the socket's;
 * their replies go to a sink instead of the socket. They count among the
 * loop's waiting requests, so the socket's reserve stays whole. */
#define LD_HTTP_CTX_MAX 64u
#define LD_CLIENT_SLOTS (LD_CLIENT_CTX_MAX + LD_HTTP_CTX_MAX)

/* Closed connections remembered between two rounds of the loop. */
#define LD_CLIENT_GONE_MAX 4096u

/* The largest request accepted (client.proto Request; the biggest valid one
 * is well under 2 KiB). Larger ones are dropped by nng. */
#define LD_CLIENT_REQUEST_BYTES_MAX (64u * 1024u)

typedef struct ld_clients ld_clients;
typedef struct ld_cctx ld_cctx;

/* Listens on url; requests go to q. Returns 0, or -1 with a sentence. *out
 * is the caller's to ld_clients_close. */
int ld_clients_open(const char *url, const ld_tls *tls,
		    bool require_client_cert, ld_evq *q, ld_clients **out,
		    char *err, size_t errlen);

/* The context's index (0..LD_CLIENT_SLOTS) and its decoded request
 * (borrowed; valid until ld_cctx_reply). */
uint32_t ld_cctx_index(const ld_cctx *c);
const Lockd__Request *ld_cctx_request(const ld_cctx *c);
/* When the request arrived (local monotonic µs). */
uint64_t ld_cctx_arrived_us(const ld_cctx *c);
/* The connection (nng pipe id) the request came on. */
uint32_t ld_cctx_pipe(const ld_cctx *c);

/* Moves up to max ids of connections closed since the last call to out
 * (oldest first) and returns how many. nng reports each closed connection
 * once, after it is gone (NNG_PIPE_EV_REM_POST), and kicks the loop; a
 * request that came on it may still be in the queue behind the report. */
size_t ld_clients_take_gone(ld_clients *cl, uint32_t *out, size_t max);

/* Sends rep (only read) and frees the request; the context then receives
 * the next one. Called by the loop on a context it owns. */
void ld_cctx_reply(ld_cctx *c, const Lockd__Reply *rep);

/* ---- contexts fed from elsewhere (the HTTP API) */

/* Called on the loop thread with the reply to a context's request (rep is
 * only read, and only during the call); the context is free again once it
 * returns. */
typedef void (*ld_cctx_sink)(void *arg, ld_cctx *c, const Lockd__Reply *rep);

/* A free context of the LD_HTTP_CTX_MAX, or NULL when every one is in use.
 * Its replies go to sink(arg, ...). Each take gives it a connection id of
 * its own (above any nng pipe id), so ld_cctx_gone ends this request only.
 * The caller submits it or puts it back. */
ld_cctx *ld_clients_take(ld_clients *cl, ld_cctx_sink sink, void *arg);
void ld_cctx_put(ld_cctx *c);

/* Decodes buf (a packed client.proto Request) and checks it as a request
 * from the socket is checked; then the loop owns c until the sink's call.
 * 0, or -1 with the sentence the socket would answer in why (c is still the
 * caller's). */
int ld_cctx_submit(ld_cctx *c, const uint8_t *buf, size_t len, char *why,
		   size_t whylen);

/* The connection a submitted request came on closed: the loop ends its
 * wait, as for a closed nng connection (its reply still reaches the sink). */
void ld_cctx_gone(ld_cctx *c);

typedef struct ld_clients_stats {
	uint64_t requests, malformed, replies;
	uint64_t pipes_closed; /* client connections closed */
} ld_clients_stats;

void ld_clients_stats_get(ld_clients *cl, ld_clients_stats *st);

/* Closes the socket (pending receives end with NNG_ECLOSED), waits for
 * every callback and frees the contexts, requests included. */
void ld_clients_close(ld_clients *cl);

#endif
