/* The HTTP/JSON API and the status page (http_api.h). */
#include "http_api.h"

#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/types.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>

#include "client.pb-c.h"
#include "http_params.h"

/* A URI (path and query) longer than this is refused: no request needs
 * more than a name, a prefix and a few numbers. */
#define API_URI_BYTES_MAX 4096u

/* A watch without wait_ms waits this long (the loop caps it at 60 s). */
#define API_WATCH_WAIT_MS_DEFAULT 30000u

/* An HTTP request that waits is at most this long (60 s, a watch's limit
 * in the loop): nng's HTTP server does not see a client leave while its
 * request is in the loop, so a wait outlives its client by up to this. The
 * client asks again (long-polling). */
#define API_WAIT_MS_MAX 60000u

/* LIST's limit, when given, is 1 to this (a page's own cut). */
#define API_LIST_LIMIT_MAX 1000u

typedef enum api_kind {
	K_ACQUIRE,
	K_RENEW,
	K_RELEASE,
	K_REVOKE,
	K_PROCLAIM,
	K_GET,
	K_CHECK,
	K_LIST,
	K_WATCH,
	K_STATUS,
	K_MEMBERS,
} api_kind;

/* One request in the loop's hands, by HTTP context (index minus
 * LD_CLIENT_CTX_MAX). aio is NULL once answered: by the sink, by the
 * cancellation of a closed connection, or at a failed submit, whichever
 * comes first under mu. */
typedef struct hreq {
	ld_http_api *api;
	pthread_mutex_t mu;
	nng_aio *aio;
	ld_cctx *c;
	api_kind kind;
	bool longpoll;
	bool prefix;    /* WATCH of a prefix */
	uint32_t limit; /* LIST: 0 = the page as the loop cut it */
	char uri[API_URI_BYTES_MAX + 1]; /* for a redirect's Location */
} hreq;

struct ld_http_api {
	ld_clients *cl;
	ld_metrics *m;
	uint32_t self;
	uint32_t nurls;
	char urls[LD_REPLICAS_MAX][LD_URL_BYTES_MAX];
	atomic_uint longpolls;
	_Atomic uint64_t seq_last;
	hreq reqs[LD_HTTP_CTX_MAX];
};

/* ---- output -------------------------------------------------------------- */

/* A growing buffer; on an allocation failure it stops growing and says so
 * (oom), and the reply is a 500. */
typedef struct sbuf {
	char *p;
	size_t n, cap;
	bool oom;
} sbuf;

static void sb_grow(sbuf *b, size_t more)
{
	if (b->oom || b->n + more + 1 <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 1024;
	while (cap < b->n + more + 1)
		cap *= 2;
	char *p = realloc(b->p, cap);
	if (p == NULL) {
		b->oom = true;
		return;
	}
	b->p = p;
	b->cap = cap;
}

static void sb_mem(sbuf *b, const char *s, size_t n)
{
	sb_grow(b, n);
	if (b->oom)
		return;
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = '\0';
}

__attribute__((format(printf, 2, 3))) static void
sb_printf(sbuf *b, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n < sizeof tmp) {
		sb_mem(b, tmp, (size_t)n);
		return;
	}
	sb_grow(b, (size_t)n);
	if (b->oom)
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->n, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->n += (size_t)n;
}

/* A JSON string of bytes that are UTF-8: quotes, backslashes and control
 * characters escaped (as lockctl's JSON). */
static void sb_jstr(sbuf *b, const char *s, size_t n)
{
	sb_mem(b, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == '"' || ch == '\\') {
			char e[2] = {'\\', (char)ch};
			sb_mem(b, e, 2);
		} else if (ch < 0x20 || ch == 0x7f) {
			sb_printf(b, "\\u%04x", ch);
		} else {
			sb_mem(b, (const char *)&s[i], 1);
		}
	}
	sb_mem(b, "\"", 1);
}

static void sb_jcstr(sbuf *b, const char *s)
{
	sb_jstr(b, s, strlen(s));
}

/* 64-bit ids, tokens and positions are JSON strings: JavaScript and jq read
 * numbers as doubles (53 bits), as lockctl's JSON says. */
static void sb_ju64(sbuf *b, uint64_t v)
{
	sb_printf(b, "\"%" PRIu64 "\"", v);
}

static bool utf8_valid(const uint8_t *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		uint8_t c = s[i];
		size_t k;
		uint32_t cp;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			k = 1;
			cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			k = 2;
			cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			k = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (n - i <= k)
			return false;
		for (size_t j = 1; j <= k; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + j] & 0x3f);
		}
		if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) ||
		    (k == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += k + 1;
	}
	return true;
}

static void sb_base64(sbuf *b, const uint8_t *v, size_t n)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopq"
				  "rstuvwxyz0123456789+/";
	sb_mem(b, "\"", 1);
	for (size_t i = 0; i < n; i += 3) {
		uint32_t x = (uint32_t)v[i] << 16;
		if (i + 1 < n)
			x |= (uint32_t)v[i + 1] << 8;
		if (i + 2 < n)
			x |= v[i + 2];
		char q[4] = {tab[x >> 18 & 63], tab[x >> 12 & 63],
			     i + 1 < n ? tab[x >> 6 & 63] : '=',
			     i + 2 < n ? tab[x & 63] : '='};
		sb_mem(b, q, 4);
	}
	sb_mem(b, "\"", 1);
}

/* "value": the bytes as a string when they are UTF-8, else null; and
 * "value_base64": always the exact bytes (lockctl's shape). */
static void sb_value(sbuf *b, const char *key, const uint8_t *v, size_t n)
{
	sb_printf(b, "\"%s\":", key);
	if (utf8_valid(v, n))
		sb_jstr(b, (const char *)v, n);
	else
		sb_mem(b, "null", 4);
	sb_printf(b, ",\"%s_base64\":", key);
	sb_base64(b, v, n);
}

/* A lease in lockctl's JSON shape (ttl_ms_left null unless the leader
 * answered). */
static void sb_lease(sbuf *b, const Lockd__Lease *l)
{
	sb_mem(b, "{\"name\":", 8);
	sb_jcstr(b, l->name);
	if (l->freed) {
		sb_printf(b, ",\"held\":false,\"freed\":true}");
		return;
	}
	sb_mem(b, ",\"held\":true,\"holder\":", 22);
	sb_ju64(b, l->holder);
	sb_mem(b, ",\"token\":", 9);
	sb_ju64(b, l->token);
	sb_mem(b, ",", 1);
	sb_value(b, "value", l->value.data, l->value.len);
	sb_printf(b, ",\"ttl_ms\":%" PRIu32, l->ttl_ms);
	if (l->ttl_ms_left >= 0)
		sb_printf(b, ",\"ttl_ms_left\":%" PRId64, l->ttl_ms_left);
	else
		sb_mem(b, ",\"ttl_ms_left\":null", 19);
	sb_printf(b, ",\"in_grace\":%s,\"revoked\":%s,\"revoke_reason\":",
		  l->in_grace ? "true" : "false",
		  l->revoked ? "true" : "false");
	if (l->revoked && l->revoke_reason.len > 0 &&
	    utf8_valid(l->revoke_reason.data, l->revoke_reason.len))
		sb_jstr(b, (const char *)l->revoke_reason.data,
			l->revoke_reason.len);
	else
		sb_mem(b, "null", 4);
	sb_printf(b, ",\"waiters\":%" PRIu32 "}", l->waiters);
}

/* ---- replies ------------------------------------------------------------- */

static const char *enum_name(const ProtobufCEnumDescriptor *d, int v,
			     const char *strip)
{
	const ProtobufCEnumValue *ev =
		protobuf_c_enum_descriptor_get_value(d, v);
	if (ev == NULL)
		return "UNKNOWN";
	size_t k = strlen(strip);
	return strncmp(ev->name, strip, k) == 0 ? ev->name + k : ev->name;
}

static uint64_t api_position(ld_http_api *a)
{
	ld_metrics_snap s;
	ld_metrics_get(a->m, &s);
	return s.applied;
}

/* Completes aio with a JSON body; location, when not NULL, is a
 * redirect's. */
static void api_finish(nng_aio *aio, uint16_t code, const sbuf *b,
		       uint64_t position, const char *location, bool cors)
{
	nng_http_res *res = NULL;
	char pos[24];
	snprintf(pos, sizeof pos, "%" PRIu64, position);
	int rv = b->oom ? NNG_ENOMEM : nng_http_res_alloc(&res);
	if (rv == 0)
		rv = nng_http_res_set_status(res, code);
	if (rv == 0)
		rv = nng_http_res_set_header(res, "Content-Type",
					     "application/json");
	if (rv == 0)
		rv = nng_http_res_set_header(res, "X-Lockd-Position", pos);
	if (rv == 0)
		rv = nng_http_res_set_header(res, "Cache-Control", "no-store");
	if (rv == 0 && code == 503)
		rv = nng_http_res_set_header(res, "Retry-After", "1");
	if (rv == 0 && location != NULL)
		rv = nng_http_res_set_header(res, "Location", location);
	if (rv == 0 && cors)
		rv = nng_http_res_set_header(res, "Access-Control-Allow-Origin",
					     "*");
	if (rv == 0)
		rv = nng_http_res_copy_data(res, b->p, b->n);
	if (rv != 0) {
		if (res != NULL)
			nng_http_res_free(res);
		nng_aio_finish(aio, rv);
		return;
	}
	nng_aio_set_output(aio, 0, res);
	nng_aio_finish(aio, 0);
}

/* An answer made here, without the loop: a status, its code and a
 * sentence, at the position /metrics last saw. */
static void api_error(ld_http_api *a, nng_aio *aio, uint16_t code,
		      const char *status, const char *sentence)
{
	sbuf b = {0};
	uint64_t pos = api_position(a);
	sb_printf(&b, "{\"status\":\"%s\",\"code\":%u,\"position\":", status,
		  code);
	sb_ju64(&b, pos);
	sb_mem(&b, ",\"error\":", 9);
	sb_jcstr(&b, sentence);
	sb_mem(&b, "}\n", 2);
	api_finish(aio, code, &b, pos, NULL, false);
	free(b.p);
}

static const char *leader_http(const ld_http_api *a, int32_t leader)
{
	if (leader < 0 || (uint32_t)leader >= a->nurls ||
	    a->urls[leader][0] == '\0')
		return NULL;
	return a->urls[leader];
}

/* The HTTP status for a reply to a request of kind k. */
static uint16_t http_code(const ld_http_api *a, api_kind k,
			  const Lockd__Reply *rep, bool *redirect)
{
	*redirect = false;
	Lockd__LeaseStatus ls = rep->lease_status;
	switch (rep->status) {
	case LOCKD__STATUS__STATUS_OK:
		break;
	case LOCKD__STATUS__STATUS_NOT_LEADER:
		if (rep->leader_hint != (int32_t)a->self &&
		    leader_http(a, rep->leader_hint) != NULL) {
			*redirect = true;
			return 307;
		}
		return 503;
	case LOCKD__STATUS__STATUS_BUSY:
	case LOCKD__STATUS__STATUS_BEHIND:
		return 503;
	case LOCKD__STATUS__STATUS_TIMEOUT:
		return k == K_WATCH ? 200 : 409;
	case LOCKD__STATUS__STATUS_REFUSED:
		return 409;
	case LOCKD__STATUS__STATUS_INVALID:
		if (ls == LOCKD__LEASE_STATUS__LEASE_E_TABLE_FULL ||
		    ls == LOCKD__LEASE_STATUS__LEASE_E_TOO_MANY_LEASES ||
		    ls == LOCKD__LEASE_STATUS__LEASE_E_TOO_MANY_WAITERS)
			return 503;
		return 400;
	default:
		return 500;
	}
	switch (ls) {
	case LOCKD__LEASE_STATUS__LEASE_OK:
	case LOCKD__LEASE_STATUS__LEASE_GRANTED:
		return 200;
	case LOCKD__LEASE_STATUS__LEASE_QUEUED:
		return 202;
	case LOCKD__LEASE_STATUS__LEASE_NOT_HOLDER:
	case LOCKD__LEASE_STATUS__LEASE_NO_SUCH_LEASE:
		/* CHECK's and WATCH's answers, not errors */
		if (k == K_CHECK || k == K_WATCH || k == K_GET)
			return 200;
		return ls == LOCKD__LEASE_STATUS__LEASE_NO_SUCH_LEASE ? 404
								      : 409;
	case LOCKD__LEASE_STATUS__LEASE_HELD:
	case LOCKD__LEASE_STATUS__LEASE_SUPERSEDED:
		return 409;
	case LOCKD__LEASE_STATUS__LEASE_E_NOT_OWNER:
		return 403;
	case LOCKD__LEASE_STATUS__LEASE_E_TABLE_FULL:
	case LOCKD__LEASE_STATUS__LEASE_E_TOO_MANY_LEASES:
	case LOCKD__LEASE_STATUS__LEASE_E_TOO_MANY_WAITERS:
		return 503;
	default:
		return 400;
	}
}

static void render_replica(sbuf *b, const ld_http_api *a,
			   const Lockd__ReplicaStatus *r)
{
	sb_printf(b, ",\"replica\":{\"id\":%" PRIu32 ",\"role\":", r->id);
	sb_jcstr(b, r->role);
	sb_printf(b, ",\"ballot\":\"%" PRIu64 ".%" PRIu32 "\"", r->ballot_round,
		  r->ballot_id);
	sb_printf(b, ",\"leader\":%" PRId32 ",\"commit\":", r->leader);
	sb_ju64(b, r->commit);
	sb_mem(b, ",\"applied\":", 11);
	sb_ju64(b, r->applied);
	sb_mem(b, ",\"snapshot_base\":", 17);
	sb_ju64(b, r->snapshot_base);
	sb_printf(b,
		  ",\"leases\":%" PRIu64 ",\"voter\":%s,\"member\":%s"
		  ",\"members\":%" PRIu32 ",\"voters\":%" PRIu32
		  ",\"version\":",
		  r->leases, r->voter ? "true" : "false",
		  r->member ? "true" : "false", r->members, r->voters);
	sb_jcstr(b, r->version);
	sb_printf(b,
		  ",\"uptime_s\":%" PRIu64 ",\"snapshot_bytes\":%" PRIu64 "}",
		  r->uptime_s, r->snapshot_bytes);
	sb_mem(b, ",\"http_urls\":[", 14);
	for (uint32_t i = 0; i < a->nurls; i++) {
		if (i > 0)
			sb_mem(b, ",", 1);
		sb_jcstr(b, a->urls[i]);
	}
	sb_mem(b, "]", 1);
}

static void render(const ld_http_api *a, const hreq *q, const Lockd__Reply *rep,
		   sbuf *b, uint16_t code)
{
	sb_printf(b, "{\"status\":\"%s\",\"lease_status\":\"%s\",\"code\":%u",
		  enum_name(&lockd__status__descriptor, (int)rep->status,
			    "STATUS_"),
		  enum_name(&lockd__lease_status__descriptor,
			    (int)rep->lease_status, "LEASE_"),
		  code);
	sb_mem(b, ",\"position\":", 12);
	sb_ju64(b, rep->position);
	sb_printf(b,
		  ",\"leader\":%" PRId32 ",\"leader_addr\":", rep->leader_hint);
	sb_jcstr(b, rep->leader_addr != NULL ? rep->leader_addr : "");
	sb_mem(b, ",\"leader_http\":", 15);
	const char *lh = leader_http(a, rep->leader_hint);
	if (lh != NULL)
		sb_jcstr(b, lh);
	else
		sb_mem(b, "null", 4);
	if (rep->error != NULL && rep->error[0] != '\0') {
		sb_mem(b, ",\"error\":", 9);
		sb_jcstr(b, rep->error);
	}
	bool ok = rep->status == LOCKD__STATUS__STATUS_OK;
	switch (q->kind) {
	case K_ACQUIRE:
	case K_RELEASE:
	case K_REVOKE:
	case K_PROCLAIM:
		if (rep->token != 0) {
			sb_mem(b, ",\"token\":", 9);
			sb_ju64(b, rep->token);
		}
		if (rep->holder != 0) {
			sb_mem(b, ",\"holder\":", 10);
			sb_ju64(b, rep->holder);
		}
		if (rep->queue_position != 0)
			sb_printf(b, ",\"queue_position\":%" PRIu32,
				  rep->queue_position);
		break;
	case K_RENEW:
		sb_mem(b, ",\"renewed\":[", 12);
		for (size_t i = 0; i < rep->n_renewed; i++) {
			if (i > 0)
				sb_mem(b, ",", 1);
			sb_ju64(b, rep->renewed[i]);
		}
		sb_mem(b, "]", 1);
		break;
	case K_GET:
		if (!ok)
			break;
		sb_mem(b, ",\"lease\":", 9);
		if (rep->lease != NULL)
			sb_lease(b, rep->lease);
		else
			sb_mem(b, "null", 4);
		break;
	case K_CHECK:
		if (ok)
			sb_printf(b, ",\"current\":%s",
				  rep->lease_status ==
						  LOCKD__LEASE_STATUS__LEASE_OK
					  ? "true"
					  : "false");
		break;
	case K_LIST: {
		if (!ok)
			break;
		size_t n = rep->n_leases;
		bool more = rep->more;
		if (q->limit > 0 && n > q->limit) {
			n = q->limit;
			more = true;
		}
		sb_mem(b, ",\"leases\":[", 11);
		for (size_t i = 0; i < n; i++) {
			if (i > 0)
				sb_mem(b, ",", 1);
			sb_lease(b, rep->leases[i]);
		}
		sb_printf(b, "],\"more\":%s,\"next_after\":",
			  more ? "true" : "false");
		if (more && n > 0)
			sb_jcstr(b, rep->leases[n - 1]->name);
		else
			sb_mem(b, "null", 4);
		break;
	}
	case K_WATCH:
		if (rep->status == LOCKD__STATUS__STATUS_TIMEOUT) {
			sb_mem(b, ",\"changed\":false", 16);
			break;
		}
		if (!ok)
			break;
		sb_printf(b, ",\"changed\":true,\"history_lost\":%s",
			  rep->history_lost ? "true" : "false");
		if (q->prefix) {
			sb_mem(b, ",\"changes\":[", 12);
			for (size_t i = 0; i < rep->n_leases; i++) {
				if (i > 0)
					sb_mem(b, ",", 1);
				sb_lease(b, rep->leases[i]);
			}
			sb_mem(b, "]", 1);
		} else {
			sb_mem(b, ",\"lease\":", 9);
			if (rep->lease != NULL)
				sb_lease(b, rep->lease);
			else
				sb_mem(b, "null", 4);
		}
		break;
	case K_STATUS:
		if (ok && rep->replica != NULL)
			render_replica(b, a, rep->replica);
		break;
	case K_MEMBERS:
		if (!ok)
			break;
		sb_mem(b, ",\"members\":[", 12);
		for (size_t i = 0; i < rep->n_members; i++) {
			const Lockd__CellMember *m = rep->members[i];
			sb_printf(b, "%s{\"id\":%" PRIu32 ",\"peer\":",
				  i > 0 ? "," : "", m->id);
			sb_jcstr(b, m->peer);
			sb_mem(b, ",\"client\":", 10);
			sb_jcstr(b, m->client);
			sb_printf(b, ",\"voting\":%s,\"http\":",
				  m->voting ? "true" : "false");
			const char *h = leader_http(a, (int32_t)m->id);
			if (h != NULL)
				sb_jcstr(b, h);
			else
				sb_mem(b, "null", 4);
			sb_mem(b, "}", 1);
		}
		sb_mem(b, "],\"removed\":[", 13);
		for (size_t i = 0; i < rep->n_removed; i++)
			sb_printf(b, "%s%" PRIu32, i > 0 ? "," : "",
				  rep->removed[i]);
		sb_mem(b, "]", 1);
		break;
	}
	sb_mem(b, "}\n", 2);
}

static hreq *hreq_of(ld_http_api *a, const ld_cctx *c)
{
	return &a->reqs[ld_cctx_index(c) - LD_CLIENT_CTX_MAX];
}

/* Takes q's aio, if it is still unanswered; then nobody else answers it.
 * Call with q->mu. */
static nng_aio *hreq_claim(ld_http_api *a, hreq *q)
{
	nng_aio *aio = q->aio;
	q->aio = NULL;
	if (aio != NULL && q->longpoll)
		atomic_fetch_sub(&a->longpolls, 1);
	return aio;
}

/* The loop's reply (on the loop thread). */
static void api_sink(void *arg, ld_cctx *c, const Lockd__Reply *rep)
{
	ld_http_api *a = arg;
	hreq *q = hreq_of(a, c);
	pthread_mutex_lock(&q->mu);
	nng_aio *aio = hreq_claim(a, q);
	pthread_mutex_unlock(&q->mu);
	if (aio == NULL)
		return; /* its connection closed */
	bool redirect;
	uint16_t code = http_code(a, q->kind, rep, &redirect);
	sbuf b = {0};
	render(a, q, rep, &b, code);
	char *loc = NULL;
	if (redirect) {
		const char *base = leader_http(a, rep->leader_hint);
		size_t n = strlen(base) + strlen(q->uri) + 1;
		loc = malloc(n);
		if (loc != NULL) {
			size_t bl = strlen(base);
			while (bl > 0 && base[bl - 1] == '/')
				bl--;
			snprintf(loc, n, "%.*s%s", (int)bl, base, q->uri);
		}
	}
	api_finish(aio, code, &b, rep->position, loc,
		   q->kind == K_STATUS || q->kind == K_MEMBERS);
	free(loc);
	free(b.p);
}

/* nng cancels a request whose connection closed (or the server stopping):
 * it ends now, and the loop is told so that a wait it holds ends too. */
static void api_cancel(nng_aio *aio, void *arg, int rv)
{
	hreq *q = arg;
	pthread_mutex_lock(&q->mu);
	bool mine = q->aio == aio;
	if (mine) {
		hreq_claim(q->api, q);
		ld_cctx_gone(q->c);
	}
	pthread_mutex_unlock(&q->mu);
	if (mine)
		nng_aio_finish(aio, rv);
}

#define WRITE_FIELDS (LD_FB(LD_F_SEQ) | LD_FB(LD_F_SESSION))
#define READ_FIELDS (LD_FB(LD_F_POSITION) | LD_FB(LD_F_CONSISTENCY))

/* ---- the handler ----------------------------------------------------------
 */

typedef struct route {
	api_kind kind;
	const char *method;
	uint32_t fields;
	bool name; /* the path names a lease after the verb */
} route;

static bool creds_parse(const char *v, size_t n, uint64_t *s, uint64_t *k)
{
	char buf[48];
	if (n == 0 || n >= sizeof buf)
		return false;
	memcpy(buf, v, n);
	buf[n] = '\0';
	char *colon = strchr(buf, ':');
	if (colon == NULL)
		return false;
	*colon = '\0';
	char *end;
	if (buf[0] < '0' || buf[0] > '9' || colon[1] < '0' || colon[1] > '9')
		return false;
	unsigned long long a = strtoull(buf, &end, 10);
	if (*end != '\0')
		return false;
	unsigned long long b = strtoull(colon + 1, &end, 10);
	if (*end != '\0' || a == 0 || a >= 1ULL << 63 || b == 0 ||
	    b == ULLONG_MAX || a == ULLONG_MAX)
		return false;
	*s = a;
	*k = b;
	return true;
}

static int random_u64(uint64_t *v)
{
	return getrandom(v, sizeof *v, 0) == (ssize_t)sizeof *v ? 0 : -1;
}

/* A new session's id and key: the cell keeps nothing until its first
 * write (as liblockclient's sessions). */
static int new_session(uint64_t *s, uint64_t *k)
{
	do {
		if (random_u64(s) != 0)
			return -1;
		*s &= (1ULL << 63) - 1;
	} while (*s == 0);
	do {
		if (random_u64(k) != 0)
			return -1;
	} while (*k == 0);
	return 0;
}

/* A write's seq when the client sends none: this process's wall clock in
 * µs, strictly increasing (lockctl's seq_base, for the same reason: later
 * commands of the session from elsewhere still count as later, as long as
 * the clocks roughly agree). */
static uint64_t next_seq(ld_http_api *a)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t now =
		(uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
	uint64_t last = atomic_load(&a->seq_last), next;
	do {
		next = now > last ? now : last + 1;
	} while (!atomic_compare_exchange_weak(&a->seq_last, &last, next));
	return next;
}

static void api_session(ld_http_api *a, nng_aio *aio)
{
	uint64_t s, k;
	if (new_session(&s, &k) != 0) {
		api_error(a, aio, 500, "INTERNAL",
			  "no random numbers for a session (getrandom)");
		return;
	}
	sbuf b = {0};
	uint64_t pos = api_position(a);
	sb_printf(&b,
		  "{\"status\":\"OK\",\"code\":200,\"session\":\"%" PRIu64
		  "\",\"key\":\"%" PRIu64 "\",\"credentials\":\"%" PRIu64
		  ":%" PRIu64 "\",\"position\":\"%" PRIu64 "\"}\n",
		  s, k, s, k, pos);
	api_finish(aio, 200, &b, pos, NULL, false);
	free(b.p);
}

/* Splits /v1/VERB[/NAME] and finds the route; NULL with a code and a
 * sentence. */
static const route *find_route(const char *method, const char *verb,
			       size_t vlen, bool has_rest, uint16_t *code,
			       char *why, size_t whylen)
{
	static const struct {
		const char *verb;
		route r;
	} routes[] = {
		{"acquire",
		 {K_ACQUIRE, "POST",
		  WRITE_FIELDS | LD_FB(LD_F_TTL_MS) | LD_FB(LD_F_WAIT_MS) |
			  LD_FB(LD_F_VALUE),
		  true}},
		{"release",
		 {K_RELEASE, "POST", WRITE_FIELDS | LD_FB(LD_F_TOKEN), true}},
		{"revoke",
		 {K_REVOKE, "POST", WRITE_FIELDS | LD_FB(LD_F_REASON), true}},
		{"proclaim",
		 {K_PROCLAIM, "POST",
		  WRITE_FIELDS | LD_FB(LD_F_TOKEN) | LD_FB(LD_F_VALUE), true}},
		{"renew", {K_RENEW, "POST", WRITE_FIELDS, false}},
		{"lease", {K_GET, "GET", READ_FIELDS, true}},
		{"check",
		 {K_CHECK, "GET", READ_FIELDS | LD_FB(LD_F_TOKEN), true}},
		{"leases",
		 {K_LIST, "GET",
		  READ_FIELDS | LD_FB(LD_F_PREFIX) | LD_FB(LD_F_AFTER) |
			  LD_FB(LD_F_LIMIT),
		  false}},
		{"watch",
		 {K_WATCH, "GET",
		  LD_FB(LD_F_POSITION) | LD_FB(LD_F_FROM) |
			  LD_FB(LD_F_WAIT_MS) | LD_FB(LD_F_PREFIX),
		  true}},
		{"status", {K_STATUS, "GET", 0, false}},
		{"members", {K_MEMBERS, "GET", 0, false}},
	};
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
		if (strlen(routes[i].verb) != vlen ||
		    memcmp(routes[i].verb, verb, vlen) != 0)
			continue;
		const route *r = &routes[i].r;
		if (strcmp(method, r->method) != 0 &&
		    !(strcmp(method, "HEAD") == 0 &&
		      strcmp(r->method, "GET") == 0)) {
			*code = 405;
			snprintf(why, whylen, "/v1/%s takes %s, not %s",
				 routes[i].verb, r->method, method);
			return NULL;
		}
		if (has_rest && !r->name) {
			*code = 404;
			snprintf(why, whylen,
				 "/v1/%s takes no name after it (README, HTTP "
				 "API)",
				 routes[i].verb);
			return NULL;
		}
		return r;
	}
	*code = 404;
	snprintf(why, whylen,
		 "no such endpoint: the API has /v1/session, /v1/renew, "
		 "/v1/acquire/NAME, /v1/release/NAME, /v1/revoke/NAME, "
		 "/v1/proclaim/NAME, /v1/lease/NAME, /v1/check/NAME, "
		 "/v1/leases, /v1/watch/NAME, /v1/status and /v1/members "
		 "(README, HTTP API)");
	return NULL;
}

/* Fills r from the route and the fields; 0, or -1 with a sentence. */
static int build(ld_http_api *a, const route *rt, const ld_params *p,
		 const char *name, nng_http_req *hr, Lockd__Request *r, hreq *q,
		 char *why, size_t whylen)
{
	static const Lockd__Op ops[] = {
		[K_ACQUIRE] = LOCKD__OP__OP_ACQUIRE,
		[K_RENEW] = LOCKD__OP__OP_RENEW,
		[K_RELEASE] = LOCKD__OP__OP_RELEASE,
		[K_REVOKE] = LOCKD__OP__OP_REVOKE,
		[K_PROCLAIM] = LOCKD__OP__OP_PROCLAIM,
		[K_GET] = LOCKD__OP__OP_GET,
		[K_CHECK] = LOCKD__OP__OP_CHECK,
		[K_LIST] = LOCKD__OP__OP_LIST,
		[K_WATCH] = LOCKD__OP__OP_WATCH,
		[K_STATUS] = LOCKD__OP__OP_STATUS,
		[K_MEMBERS] = LOCKD__OP__OP_MEMBERS,
	};
	uint64_t x;
	r->op = ops[rt->kind];
	r->name = (char *)name;
	if (rt->name && name[0] == '\0' &&
	    !(rt->kind == K_WATCH && p->has[LD_F_PREFIX])) {
		snprintf(why, whylen,
			 "this endpoint wants a lease name after it, as "
			 "/v1/lease/db/primary");
		return -1;
	}
	bool write = rt->fields & LD_FB(LD_F_SESSION);
	if (write) {
		const char *cv = nng_http_req_get_header(hr, "X-Lockd-Session");
		size_t cn = cv != NULL ? strlen(cv) : 0;
		if (p->has[LD_F_SESSION]) {
			if (cv != NULL) {
				snprintf(why, whylen,
					 "the session is given twice (field "
					 "and X-Lockd-Session header)");
				return -1;
			}
			cv = p->v[LD_F_SESSION];
			cn = p->len[LD_F_SESSION];
		}
		if (cv != NULL &&
		    !creds_parse(cv, cn, &r->session, &r->session_key)) {
			snprintf(why, whylen,
				 "a session is SESSION:KEY, two whole numbers "
				 "as POST /v1/session gives them");
			return -1;
		}
		if (cv == NULL && rt->kind == K_REVOKE) {
			/* An operator's revoke needs no session of its own. */
			if (new_session(&r->session, &r->session_key) != 0) {
				snprintf(why, whylen, "no random numbers");
				return -1;
			}
		} else if (cv == NULL) {
			snprintf(why, whylen,
				 "this write needs a session: an "
				 "X-Lockd-Session: SESSION:KEY header (or a "
				 "\"session\" field); POST /v1/session gives "
				 "one");
			return -1;
		}
		if (p->has[LD_F_SEQ]) {
			if (ld_params_u64(p, LD_F_SEQ, LD_SEQ_MAX, &r->seq, why,
					  whylen) != 0)
				return -1;
		} else {
			r->seq = next_seq(a);
		}
	}
	if (p->has[LD_F_TTL_MS]) {
		if (ld_params_u64(p, LD_F_TTL_MS, UINT32_MAX, &x, why,
				  whylen) != 0)
			return -1;
		r->ttl_ms = (uint32_t)x;
	} else if (rt->kind == K_ACQUIRE) {
		snprintf(why, whylen,
			 "acquire wants ttl_ms: how long the lease lives "
			 "unless renewed");
		return -1;
	}
	if (rt->kind == K_WATCH)
		r->wait_ms = API_WATCH_WAIT_MS_DEFAULT;
	if (p->has[LD_F_WAIT_MS]) {
		if (ld_params_u64(p, LD_F_WAIT_MS, API_WAIT_MS_MAX, &x, why,
				  whylen) != 0)
			return -1;
		r->wait_ms = (uint32_t)x;
	}
	if (p->has[LD_F_VALUE]) {
		r->value.data = (uint8_t *)p->v[LD_F_VALUE];
		r->value.len = p->len[LD_F_VALUE];
	} else if (rt->kind == K_PROCLAIM) {
		snprintf(why, whylen, "proclaim wants the new value");
		return -1;
	}
	if (p->has[LD_F_TOKEN]) {
		if (ld_params_u64(p, LD_F_TOKEN, UINT64_MAX, &r->token, why,
				  whylen) != 0)
			return -1;
	} else if (rt->kind == K_RELEASE || rt->kind == K_CHECK ||
		   rt->kind == K_PROCLAIM) {
		snprintf(why, whylen,
			 "this endpoint wants the lease's token (as acquire "
			 "gave it)");
		return -1;
	}
	if (p->has[LD_F_REASON])
		r->reason = (char *)p->v[LD_F_REASON];
	/* Read-your-writes: the position of the client's last answer, as a
	 * header or a field (the higher counts). */
	const char *ph = nng_http_req_get_header(hr, "X-Lockd-Position");
	if (ph != NULL && (rt->fields & LD_FB(LD_F_POSITION))) {
		ld_params hp = {0};
		hp.v[LD_F_POSITION] = ph;
		hp.len[LD_F_POSITION] = strlen(ph);
		if (ld_params_u64(&hp, LD_F_POSITION, UINT64_MAX,
				  &r->known_position, why, whylen) != 0)
			return -1;
	}
	if (p->has[LD_F_POSITION]) {
		if (ld_params_u64(p, LD_F_POSITION, UINT64_MAX, &x, why,
				  whylen) != 0)
			return -1;
		if (x > r->known_position)
			r->known_position = x;
	}
	if (p->has[LD_F_CONSISTENCY]) {
		const char *c = p->v[LD_F_CONSISTENCY];
		if (strcmp(c, "stale") == 0)
			r->consistency = LOCKD__CONSISTENCY__STALE;
		else if (strcmp(c, "linearizable") == 0)
			r->consistency = LOCKD__CONSISTENCY__LINEARIZABLE;
		else if (strcmp(c, "default") == 0)
			r->consistency = LOCKD__CONSISTENCY__READ_YOUR_WRITES;
		else {
			snprintf(why, whylen,
				 "consistency is stale, default or "
				 "linearizable");
			return -1;
		}
	}
	if (rt->kind == K_LIST) {
		if (p->has[LD_F_PREFIX])
			r->name = (char *)p->v[LD_F_PREFIX];
		if (p->has[LD_F_AFTER])
			r->after_name = (char *)p->v[LD_F_AFTER];
		if (p->has[LD_F_LIMIT]) {
			if (ld_params_u64(p, LD_F_LIMIT, API_LIST_LIMIT_MAX, &x,
					  why, whylen) != 0)
				return -1;
			if (x == 0) {
				snprintf(why, whylen,
					 "limit is 1 to %u leases a page",
					 API_LIST_LIMIT_MAX);
				return -1;
			}
			q->limit = (uint32_t)x;
		}
	}
	if (rt->kind == K_WATCH) {
		if (p->has[LD_F_PREFIX]) {
			if (name[0] != '\0') {
				snprintf(why, whylen,
					 "a watch is of /v1/watch/NAME or of "
					 "/v1/watch?prefix=P, not both");
				return -1;
			}
			r->prefix = true;
			r->name = (char *)p->v[LD_F_PREFIX];
			q->prefix = true;
		}
		if (p->has[LD_F_FROM] &&
		    ld_params_u64(p, LD_F_FROM, UINT64_MAX, &r->after_position,
				  why, whylen) != 0)
			return -1;
	}
	q->longpoll = (rt->kind == K_ACQUIRE || rt->kind == K_WATCH) &&
		      r->wait_ms > 0;
	return 0;
}

static void api_handle(nng_aio *aio)
{
	ld_http_api *a = ld_http_data(aio);
	nng_http_req *hr = nng_aio_get_input(aio, 0);
	const char *method = nng_http_req_get_method(hr);
	const char *uri = nng_http_req_get_uri(hr);
	char why[512];
	size_t ulen = strlen(uri);
	if (ulen > API_URI_BYTES_MAX) {
		snprintf(why, sizeof why,
			 "the URI is longer than %u bytes: names are at most "
			 "%u",
			 API_URI_BYTES_MAX, LD_LEASE_NAME_BYTES_MAX);
		api_error(a, aio, 414, "INVALID", why);
		return;
	}
	void *body;
	size_t blen;
	nng_http_req_get_data(hr, &body, &blen);
	if (blen > LD_HTTP_API_BODY_BYTES_MAX) {
		snprintf(why, sizeof why,
			 "the request body is %zu bytes, over this API's "
			 "limit of %u",
			 blen, LD_HTTP_API_BODY_BYTES_MAX);
		api_error(a, aio, 413, "INVALID", why);
		return;
	}
	const char *qs = strchr(uri, '?');
	size_t plen = qs ? (size_t)(qs - uri) : ulen;
	/* /v1/VERB[/NAME...] */
	const char *verb = uri + 4;
	size_t rest = plen >= 4 ? plen - 4 : 0;
	if (plen < 4 || memcmp(uri, "/v1/", 4) != 0)
		verb = "", rest = 0;
	const char *slash = memchr(verb, '/', rest);
	size_t vlen = slash ? (size_t)(slash - verb) : rest;
	const char *name_raw = slash ? slash + 1 : verb + rest;
	size_t name_rawlen = slash ? rest - vlen - 1 : 0;

	if (vlen == 7 && memcmp(verb, "session", 7) == 0 && name_rawlen == 0) {
		if (strcmp(method, "POST") != 0) {
			api_error(a, aio, 405, "INVALID",
				  "/v1/session takes POST");
			return;
		}
		api_session(a, aio);
		return;
	}
	uint16_t code;
	const route *rt = find_route(method, verb, vlen, slash != NULL, &code,
				     why, sizeof why);
	if (rt == NULL) {
		api_error(a, aio, code, "INVALID", why);
		return;
	}
	ld_params p = {0};
	p.arena = malloc(2 * (ulen + blen) + 64);
	if (p.arena == NULL) {
		api_error(a, aio, 500, "INTERNAL", "out of memory");
		return;
	}
	size_t nlen;
	const char *name =
		ld_params_pct_decode(&p, name_raw, name_rawlen, false, &nlen);
	int rv = 0;
	if (name == NULL) {
		snprintf(why, sizeof why, "the name has a bad %%-escape");
		rv = -1;
	} else if (strlen(name) != nlen) {
		snprintf(why, sizeof why, "the name contains a NUL byte");
		rv = -1;
	}
	if (rv == 0 && qs != NULL)
		rv = ld_params_query(&p, qs + 1, rt->fields, why, sizeof why);
	if (rv == 0 && blen > 0 && strcmp(method, "POST") == 0)
		rv = ld_params_json(&p, body, blen, rt->fields, why,
				    sizeof why);
	else if (rv == 0 && blen > 0) {
		snprintf(why, sizeof why, "a %s request has no body", method);
		rv = -1;
	}
	ld_cctx *c = NULL;
	hreq scratch = {0};
	Lockd__Request r = LOCKD__REQUEST__INIT;
	if (rv == 0)
		rv = build(a, rt, &p, name, hr, &r, &scratch, why, sizeof why);
	if (rv != 0) {
		api_error(a, aio, 400, "INVALID", why);
		free(p.arena);
		return;
	}
	if (scratch.longpoll &&
	    atomic_fetch_add(&a->longpolls, 1) >= LD_HTTP_API_LONGPOLL_MAX) {
		atomic_fetch_sub(&a->longpolls, 1);
		snprintf(why, sizeof why,
			 "this replica already holds %u HTTP requests that "
			 "wait (acquires with wait_ms, watches): retry later "
			 "or ask another replica",
			 LD_HTTP_API_LONGPOLL_MAX);
		api_error(a, aio, 503, "BUSY", why);
		free(p.arena);
		return;
	}
	c = ld_clients_take(a->cl, api_sink, a);
	if (c == NULL) {
		if (scratch.longpoll)
			atomic_fetch_sub(&a->longpolls, 1);
		snprintf(why, sizeof why,
			 "this replica already serves %u HTTP requests at "
			 "once: retry later",
			 LD_HTTP_CTX_MAX);
		api_error(a, aio, 503, "BUSY", why);
		free(p.arena);
		return;
	}
	size_t len = lockd__request__get_packed_size(&r);
	uint8_t *buf = malloc(len ? len : 1);
	if (buf == NULL) {
		ld_cctx_put(c);
		if (scratch.longpoll)
			atomic_fetch_sub(&a->longpolls, 1);
		api_error(a, aio, 500, "INTERNAL", "out of memory");
		free(p.arena);
		return;
	}
	lockd__request__pack(&r, buf);
	free(p.arena);
	hreq *q = hreq_of(a, c);
	pthread_mutex_lock(&q->mu);
	q->aio = aio;
	q->c = c;
	q->kind = rt->kind;
	q->longpoll = scratch.longpoll;
	q->prefix = scratch.prefix;
	q->limit = scratch.limit;
	memcpy(q->uri, uri, ulen + 1);
	pthread_mutex_unlock(&q->mu);
	nng_aio_defer(aio, api_cancel, q);
	if (ld_cctx_submit(c, buf, len, why, sizeof why) != 0) {
		pthread_mutex_lock(&q->mu);
		nng_aio *mine = hreq_claim(a, q);
		pthread_mutex_unlock(&q->mu);
		ld_cctx_put(c);
		if (mine != NULL)
			api_error(a, mine, 400, "INVALID", why);
	}
	free(buf);
}

/* ---- the status page ------------------------------------------------------
 */

static void api_page(nng_aio *aio)
{
	nng_http_res *res = NULL;
	int rv = nng_http_res_alloc(&res);
	if (rv == 0)
		rv = nng_http_res_set_header(res, "Content-Type",
					     "text/html; charset=utf-8");
	if (rv == 0)
		rv = nng_http_res_set_header(res, "Cache-Control", "no-store");
	if (rv == 0)
		rv = nng_http_res_set_data(res, ld_status_page,
					   strlen(ld_status_page));
	if (rv != 0) {
		if (res != NULL)
			nng_http_res_free(res);
		nng_aio_finish(aio, rv);
		return;
	}
	nng_aio_set_output(aio, 0, res);
	nng_aio_finish(aio, 0);
}

int ld_http_api_open(ld_http *h, ld_clients *cl, ld_metrics *m, uint32_t self,
		     const char (*urls)[LD_URL_BYTES_MAX], uint32_t nurls,
		     ld_http_api **out, char *err, size_t errlen)
{
	*out = NULL;
	ld_http_api *a = calloc(1, sizeof *a);
	if (a == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	a->cl = cl;
	a->m = m;
	a->self = self;
	a->nurls = nurls < LD_REPLICAS_MAX ? nurls : LD_REPLICAS_MAX;
	for (uint32_t i = 0; i < a->nurls; i++)
		snprintf(a->urls[i], LD_URL_BYTES_MAX, "%s", urls[i]);
	for (uint32_t i = 0; i < LD_HTTP_CTX_MAX; i++) {
		a->reqs[i].api = a;
		pthread_mutex_init(&a->reqs[i].mu, NULL);
	}
	*out = a;
	int rv = ld_http_route(h, "/v1", true, NULL, api_handle, a,
			       LD_HTTP_API_BODY_NNG_MAX);
	if (rv == 0)
		rv = ld_http_route(h, "/", false, "GET", api_page, a, 0);
	if (rv != 0) {
		snprintf(err, errlen, "cannot route the HTTP API: %s",
			 nng_strerror(rv));
		return -1;
	}
	return 0;
}

void ld_http_api_close(ld_http_api *a)
{
	if (a == NULL)
		return;
	for (uint32_t i = 0; i < LD_HTTP_CTX_MAX; i++)
		pthread_mutex_destroy(&a->reqs[i].mu);
	free(a);
}
