/* The HTTP/JSON API on --http (README, "HTTP API"), beside /health and
 * /metrics, and the status page at /.
 *
 * Every request is translated into the client.proto Request the nng API
 * takes, checked as the nng API checks it, and handed to the event loop
 * through a context of ld_clients (client_api.h, LD_HTTP_CTX_MAX of them):
 * the loop answers it by the same code as an nng request (waits, BEHIND,
 * NOT_LEADER and its hint, the cell's sentences). Its Reply comes back to
 * a sink here that writes it as JSON and completes the HTTP request.
 *
 * nng's HTTP server reads nothing from a connection while its request is
 * with a handler, so a client that leaves is not seen until the answer is
 * written: a wait (an acquire's wait_ms, a watch) over HTTP is therefore
 * at most 60 s, and the client long-polls. Requests the server cancels
 * (it stops) end their wait in the loop as a closed nng connection does.
 *
 * Nothing here touches the node: the HTTP threads only parse, pack and
 * write JSON; the loop thread only renders its reply. */
#ifndef LD_HTTP_API_H
#define LD_HTTP_API_H

#include <stddef.h>
#include <stdint.h>

#include "client_api.h"
#include "http.h"
#include "ld_limits.h"

/* A request body larger than this is refused (413); nng itself drops one
 * over LD_HTTP_API_BODY_NNG_MAX before it reaches us. */
#define LD_HTTP_API_BODY_BYTES_MAX (64u * 1024u)
#define LD_HTTP_API_BODY_NNG_MAX (1024u * 1024u)

/* Requests that may wait (an acquire with wait_ms, a watch) at once over
 * HTTP; more are told 503. The rest of the LD_HTTP_CTX_MAX contexts stay
 * for requests that do not wait. */
#define LD_HTTP_API_LONGPOLL_MAX 48u
_Static_assert(LD_HTTP_API_LONGPOLL_MAX < LD_HTTP_CTX_MAX,
	       "long-polls could hold every HTTP context");

typedef struct ld_http_api ld_http_api;

/* Routes /v1 and / on h to the loop through cl. self is this replica's id;
 * urls[0..nurls) the --http URLs of the replicas by id (for redirects and
 * the status page; may be 0). m (borrowed, like cl and h) gives the
 * position of answers that never reach the loop. 0, or -1 with a sentence;
 * *out is the caller's to ld_http_api_close after ld_http_close. */
int ld_http_api_open(ld_http *h, ld_clients *cl, ld_metrics *m, uint32_t self,
		     const char (*urls)[LD_URL_BYTES_MAX], uint32_t nurls,
		     ld_http_api **out, char *err, size_t errlen);
void ld_http_api_close(ld_http_api *a);

/* The status page (status_page.c): HTML with its JavaScript. */
extern const char ld_status_page[];

#endif
