/* lockd-forge: sends one well-formed, forged peer (Paxos) message to a
 * replica's peer port, as anyone who can reach that port could. The
 * integration test forge.sh uses it to show that such messages change
 * nothing once peers authenticate (--peer-key, or TLS with replica
 * certificates), and what they did before.
 *
 *   lockd-forge URL KIND --to ID --from ID [options]
 *
 * KIND (the attacks of issue 14):
 *   snapshot  base and commit --slot (default 2^40), framed as a replica's
 *             snapshot, of a lease table holding forged/lease for session
 *             666 with a TTL of 1 h
 *   accept    ballot (--round, default 2^64-1; --ballot-id, default the
 *             receiver's id) at --slot (default 1), a decree acquiring
 *             forged/accept
 *   catchup   --count (default 29) decrees marked chosen from --slot
 *             (default 1), each acquiring forged/catchup-N, commit at the
 *             last of them
 *   prepare   ballot --round (default 2^62 - 1, the highest a replica
 *             takes) for slots from --slot
 *   probe     a recovering replica's probe, asking for a leader above
 *             --round (default 2^62 - 1)
 * Options:
 *   --n N          cell size (default 3): ballot ids must be below it
 *   --key FILE     sign with this key (peer_auth.h): the cell's, or a wrong
 *                  one; without it the message has no MAC trailer
 *   --cell-id N    the cell id in the MAC (default 0)
 *   --tls-ca FILE, --tls-cert FILE   for tls+tcp:// URLs (the certificate
 *                  and key in one PEM file, presented to the peer port)
 *   --copies N     send it N times (default 3), 50 ms apart
 *
 * Prints one line (`sent kind=... bytes=... mac=yes|no`) and exits 0 once
 * the message was handed to a connection; 1 when the port could not be
 * reached, 2 for bad usage. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/pipeline0/push.h>
#include <nng/supplemental/tls/tls.h>

#include "codec.h"
#include "lease.h"
#include "paxos.h"
#include "peer_auth.h"
#include "value.h"

#define FORGE_SESSION 666u

static void usage(void)
{
	fprintf(stderr,
		"usage: lockd-forge URL snapshot|accept|catchup|prepare|probe "
		"--to ID --from ID [--n N] [--slot S] [--round R] "
		"[--ballot-id ID] [--count C] [--key FILE] [--cell-id N] "
		"[--tls-ca FILE] [--tls-cert FILE] [--copies N]\n");
	exit(2);
}

static uint64_t num(const char *s)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 0);
	if (*s == '\0' || *end != '\0')
		usage();
	return v;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* An ACQUIRE of name for FORGE_SESSION, as one ledger command. */
static px_value *acquire_value(const char *name, uint64_t seq)
{
	ls_cmd c = {.op = LS_OP_ACQUIRE,
		    .session = FORGE_SESSION,
		    .name = name,
		    .name_len = (uint32_t)strlen(name),
		    .ttl_ms = LS_TTL_MS_MAX};
	uint8_t buf[1024];
	size_t len = ls_cmd_encode(&c, buf, sizeof buf);
	if (len == 0) {
		fprintf(stderr, "lockd-forge: cannot encode a command\n");
		exit(1);
	}
	px_cmd cmd = {.client_id = FORGE_SESSION,
		      .seq = seq,
		      .len = (uint32_t)len,
		      .data = buf};
	px_value *v = px_value_new(&cmd, 1);
	if (v == NULL) {
		fprintf(stderr, "lockd-forge: out of memory\n");
		exit(1);
	}
	return v;
}

/* The replica's snapshot framing (paxos.c's snapshot_encode, little-endian):
 * "LDSN", the client table's count, the base, then the state machine's
 * bytes. A forged snapshot must carry it, or the core drops it unread. */
#define FORGE_SNAP_MAGIC 0x4c44534eu

static void put_le(uint8_t *p, uint64_t v, int bytes)
{
	for (int i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* A lease table holding forged/lease, applied at slot, framed as a replica
 * snapshot at base slot (no client entries). */
static void table_snapshot(uint64_t slot, uint8_t **out, size_t *len)
{
	ls_table *t = ls_table_new();
	px_value *v = acquire_value("forged/lease", 1);
	px_sm *sm = ls_table_sm(t);
	uint8_t res[LD_RESULT_BYTES_MAX];
	if (t == NULL)
		exit(1);
	sm->ops->apply(sm, slot, &v->cmds[0], res, sizeof res);
	uint8_t *table;
	size_t tlen;
	if (sm->ops->snapshot(sm, &table, &tlen) != 0) {
		fprintf(stderr, "lockd-forge: cannot snapshot the table\n");
		exit(1);
	}
	*len = 16 + tlen;
	*out = malloc(*len);
	if (*out == NULL)
		exit(1);
	put_le(*out, FORGE_SNAP_MAGIC, 4);
	put_le(*out + 4, 0, 4);
	put_le(*out + 8, slot, 8);
	memcpy(*out + 16, table, tlen);
	free(table);
	px_value_unref(v);
	ls_table_free(t);
}

int main(int argc, char **argv)
{
	/* A peer port that refuses the forger's TLS handshake can leave
	 * nng 1.5.2's dialer or close waiting for good (seen once in CI):
	 * a test tool must end on its own. */
	alarm(15);
	if (argc < 3)
		usage();
	const char *url = argv[1], *kind = argv[2];
	const char *key_file = NULL, *tls_ca = NULL, *tls_cert = NULL;
	uint64_t to = UINT64_MAX, from = UINT64_MAX, n = 3, slot = 0, round = 0,
		 ballot_id = UINT64_MAX, count = 29, cell_id = 0, copies = 3;
	bool have_slot = false, have_round = false;
	for (int i = 3; i < argc; i += 2) {
		if (i + 1 >= argc)
			usage();
		const char *f = argv[i], *v = argv[i + 1];
		if (strcmp(f, "--to") == 0)
			to = num(v);
		else if (strcmp(f, "--from") == 0)
			from = num(v);
		else if (strcmp(f, "--n") == 0)
			n = num(v);
		else if (strcmp(f, "--slot") == 0)
			slot = num(v), have_slot = true;
		else if (strcmp(f, "--round") == 0)
			round = num(v), have_round = true;
		else if (strcmp(f, "--ballot-id") == 0)
			ballot_id = num(v);
		else if (strcmp(f, "--count") == 0)
			count = num(v);
		else if (strcmp(f, "--key") == 0)
			key_file = v;
		else if (strcmp(f, "--cell-id") == 0)
			cell_id = num(v);
		else if (strcmp(f, "--tls-ca") == 0)
			tls_ca = v;
		else if (strcmp(f, "--tls-cert") == 0)
			tls_cert = v;
		else if (strcmp(f, "--copies") == 0)
			copies = num(v);
		else
			usage();
	}
	if (to >= n || from >= n || n > LD_REPLICAS_MAX || count == 0 ||
	    count > 1000 || copies == 0)
		usage();

	px_msg *m = calloc(1, sizeof *m);
	if (m == NULL)
		return 1;
	m->from = (uint32_t)from;
	m->to = (uint32_t)to;
	/* The victim's own id in the ballot, as the audit's ACCEPT had: the
	 * ballot then outranks every other round-equal ballot. */
	m->ballot.id = (uint32_t)(ballot_id != UINT64_MAX ? ballot_id : to);
	if (strcmp(kind, "snapshot") == 0) {
		m->type = PX_MSG_SNAPSHOT;
		m->base = have_slot ? slot : UINT64_C(1) << 40;
		m->commit = m->base;
		m->ballot.round = have_round ? round : 1;
		uint8_t *snap;
		size_t len;
		table_snapshot(m->base, &snap, &len);
		m->snap = snap;
		m->snap_len = (uint32_t)len;
	} else if (strcmp(kind, "accept") == 0) {
		m->type = PX_MSG_ACCEPT;
		m->ballot.round = have_round ? round : UINT64_MAX;
		m->slot = have_slot ? slot : 1;
		m->value = acquire_value("forged/accept", 1);
	} else if (strcmp(kind, "catchup") == 0) {
		m->type = PX_MSG_CATCHUP;
		m->ballot.round = have_round ? round : 1;
		uint64_t first = have_slot ? slot : 1;
		m->votes = calloc(count, sizeof *m->votes);
		if (m->votes == NULL)
			return 1;
		m->nvotes = (uint32_t)count;
		for (uint64_t i = 0; i < count; i++) {
			char name[64];
			snprintf(name, sizeof name, "forged/catchup-%" PRIu64,
				 i);
			m->votes[i].slot = first + i;
			m->votes[i].ballot = m->ballot;
			m->votes[i].value = acquire_value(name, i + 1);
			m->votes[i].chosen = true;
		}
		m->commit = first + count - 1;
	} else if (strcmp(kind, "prepare") == 0) {
		m->type = PX_MSG_PREPARE;
		m->ballot.round = have_round ? round : PX_ROUND_MAX - 1;
		m->slot = have_slot ? slot : 1;
	} else if (strcmp(kind, "probe") == 0) {
		m->type = PX_MSG_PROBE;
		m->ballot.round = have_round ? round : PX_ROUND_MAX - 1;
		m->slot = have_slot ? slot : 1;
	} else {
		usage();
	}

	uint8_t *buf;
	size_t len;
	int crv = cd_msg_encode(m, &buf, &len);
	px_msg_free(m);
	if (crv != 0) {
		fprintf(stderr, "lockd-forge: cannot encode: %s\n",
			cd_strerror(crv));
		return 1;
	}
	if (key_file != NULL) {
		static pa_key key;
		char err[512];
		if (pa_key_load(key_file, &key, err, sizeof err) != 0) {
			fprintf(stderr, "lockd-forge: %s\n", err);
			return 2;
		}
		uint8_t *sealed = realloc(buf, len + PA_TRAILER_BYTES);
		if (sealed == NULL ||
		    pa_mac_seal(&key, cell_id, (uint32_t)from, (uint32_t)to,
				sealed, len, sealed + len) != 0)
			return 1;
		buf = sealed;
		len += PA_TRAILER_BYTES;
	}

	nng_socket s;
	nng_dialer d;
	int rv;
	if ((rv = nng_push0_open(&s)) != 0 ||
	    (rv = nng_dialer_create(&d, s, url)) != 0) {
		fprintf(stderr, "lockd-forge: %s: %s\n", url, nng_strerror(rv));
		return 1;
	}
	if (strncmp(url, "tls+", 4) == 0) {
		nng_url *u = NULL;
		if ((rv = nng_url_parse(&u, url)) != 0 ||
		    (tls_ca != NULL &&
		     (rv = nng_dialer_set_string(d, NNG_OPT_TLS_CA_FILE,
						 tls_ca)) != 0) ||
		    (rv = nng_dialer_set_int(
			     d, NNG_OPT_TLS_AUTH_MODE,
			     tls_ca != NULL ? NNG_TLS_AUTH_MODE_REQUIRED
					    : NNG_TLS_AUTH_MODE_NONE)) != 0 ||
		    (rv = nng_dialer_set_string(d, NNG_OPT_TLS_SERVER_NAME,
						u->u_hostname)) != 0 ||
		    (tls_cert != NULL &&
		     (rv = nng_dialer_set_string(d, NNG_OPT_TLS_CERT_KEY_FILE,
						 tls_cert)) != 0)) {
			fprintf(stderr, "lockd-forge: TLS for %s: %s\n", url,
				nng_strerror(rv));
			return 1;
		}
		nng_url_free(u);
	}
	nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, 3000);
	if ((rv = nng_dialer_start(d, 0)) != 0) {
		fprintf(stderr, "lockd-forge: cannot reach %s: %s\n", url,
			nng_strerror(rv));
		return 1;
	}
	for (uint64_t i = 0; i < copies; i++) {
		if ((rv = nng_send(s, buf, len, 0)) != 0) {
			fprintf(stderr, "lockd-forge: send to %s: %s\n", url,
				nng_strerror(rv));
			return 1;
		}
		sleep_ms(50);
	}
	/* nng 1.5.2 has no linger: give the last copy time to leave. */
	sleep_ms(200);
	printf("sent kind=%s to=%" PRIu64 " from=%" PRIu64
	       " bytes=%zu copies=%" PRIu64 " mac=%s\n",
	       kind, to, from, len, copies, key_file != NULL ? "yes" : "no");
	free(buf);
	fflush(stdout);
	/* Not nng_close: it may wait on a refused TLS pipe (see alarm). */
	_exit(0);
}
