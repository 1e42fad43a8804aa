#include "options.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Durations the daemon accepts for the Paxos timers (ms). */
#define OPT_TIMER_MS_MAX 60000u

typedef struct opt_state {
	ld_options *o;
	bool have_id, have_peers, have_clients, have_data;
	bool have_join, have_listen_peer, have_listen_client;
	uint32_t nclients;
	uint64_t heartbeat_ms, election_ms;
} opt_state;

static const char *const opt_names[] = {
	"config",
	"id",
	"peers",
	"clients",
	"data",
	"grace-ms",
	"ttl-max-ms",
	"drift-ppm",
	"heartbeat-ms",
	"election-ms",
	"tick-ms",
	"cell-id",
	"snapshot-every",
	"retry-ms",
	"http",
	"tls-cert",
	"tls-ca",
	"tls-client-auth",
	"peer-key",
	"insecure-peers",
	"join",
	"listen-peer",
	"listen-client",
	"http-urls",
	"snapshot-in-loop",
};

/* Flags that may stand alone on the command line (`--insecure-peers`):
 * they mean 1 then. */
static bool opt_boolean(const char *name)
{
	return strcmp(name, "insecure-peers") == 0 ||
	       strcmp(name, "snapshot-in-loop") == 0;
}

void ld_options_usage(FILE *f)
{
	fputs("usage: lockd --id N --peers URL,URL,URL --clients URL,URL,URL "
	      "--data DIR [options]\n"
	      "       lockd --id N --join URLS --listen-peer URL "
	      "--listen-client URL\n"
	      "             --data DIR [options]\n"
	      "       lockd --free-ports N\n"
	      "       lockd --version\n"
	      "\n"
	      "  --config FILE        `name = value` lines with the names "
	      "below\n"
	      "  --id N               this replica's id: its index in --peers, "
	      "or with --join\n"
	      "                       an id (0-63) the cell never used\n"
	      "  --peers URLS         a new cell: peer (Paxos) URLs by replica "
	      "id\n"
	      "  --clients URLS       a new cell: client URLs by replica id\n"
	      "  --join URLS          a running cell: client URLs of some "
	      "members, asked\n"
	      "                       for its members when DIR is new; add "
	      "the replica with\n"
	      "                       `lockctl member add` (README, "
	      "Membership)\n"
	      "  --listen-peer URL    with --join: this replica's peer URL\n"
	      "  --listen-client URL  with --join: this replica's client URL\n"
	      "  --data DIR           the replica's RocksDB directory\n"
	      "  --cell-id N          the cell's identity (0 = any)\n"
	      "  --grace-ms N         wait after an unclean end (default "
	      "1000)\n"
	      "  --ttl-max-ms N       longest TTL accepted (default 60000)\n"
	      "  --drift-ppm N        clock drift bound (default 1000)\n"
	      "  --tick-ms N          ledger clock interval (default 100)\n"
	      "  --heartbeat-ms N     leader heartbeat (default 50)\n"
	      "  --election-ms N      election timeout base (default 300)\n"
	      "  --retry-ms N         Paxos resend interval (default 100)\n"
	      "  --snapshot-every N   applied slots between snapshots "
	      "(default 256)\n"
	      "  --snapshot-in-loop   encode snapshots inside the event loop "
	      "(the default\n"
	      "                       encodes them in a forked child, so "
	      "that a large table\n"
	      "                       does not stop the loop)\n"
	      "  --http URL           serve /health, /metrics, the HTTP API "
	      "(/v1) and the\n"
	      "                       status page (/) on http://HOST:PORT, or "
	      "on\n"
	      "                       https://HOST:PORT with --tls-cert (and "
	      "--tls-ca with\n"
	      "                       --tls-client-auth 1: client "
	      "certificates)\n"
	      "  --http-urls URLS     every replica's --http URL by replica "
	      "id: followers\n"
	      "                       send HTTP writes to the leader's (307)\n"
	      "  --tls-cert FILE      this replica's certificate and key "
	      "(one PEM file),\n"
	      "                       for tls+tcp:// peer and client URLs\n"
	      "  --tls-ca FILE        the CA that signs the cell's "
	      "certificates; replicas\n"
	      "                       accept only peers it signed (mutual "
	      "TLS)\n"
	      "  --tls-client-auth 1  clients must present a certificate the "
	      "CA signed\n"
	      "  --peer-key FILE      the cell key: 32+ secret bytes, the same "
	      "file on every\n"
	      "                       replica (mode 600); every peer message "
	      "carries its\n"
	      "                       HMAC-SHA256, and others are dropped\n"
	      "  --insecure-peers     allow plain tcp:// peer URLs without "
	      "--peer-key\n"
	      "                       (anyone who reaches a peer port can "
	      "then forge\n"
	      "                       Paxos messages: for a laptop only)\n"
	      "  --free-ports N       print N free loopback TCP ports and "
	      "exit\n",
	      f);
}

static int parse_u64(const char *name, const char *v, uint64_t max,
		     uint64_t *out, char *err, size_t errlen)
{
	char *end;
	errno = 0;
	if (*v == '\0' || *v == '-' || isspace((unsigned char)*v))
		goto bad;
	unsigned long long x = strtoull(v, &end, 10);
	if (errno != 0 || *end != '\0' || x > max)
		goto bad;
	*out = x;
	return 0;
bad:
	snprintf(err, errlen, "--%s wants a whole number up to %llu, not '%s'",
		 name, (unsigned long long)max, v);
	return -1;
}

/* Splits a comma-separated URL list into urls[]. Returns the count, or -1
 * with a sentence in err. */
static int parse_urls(const char *name, const char *v,
		      char urls[][LD_URL_BYTES_MAX], char *err, size_t errlen)
{
	uint32_t n = 0;
	const char *p = v;
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		while (len > 0 && isspace((unsigned char)*p)) {
			p++;
			len--;
		}
		while (len > 0 && isspace((unsigned char)p[len - 1]))
			len--;
		if (len == 0) {
			snprintf(err, errlen, "--%s has an empty URL in '%s'",
				 name, v);
			return -1;
		}
		if (n == LD_REPLICAS_MAX) {
			snprintf(err, errlen,
				 "--%s lists more than %u replicas", name,
				 LD_REPLICAS_MAX);
			return -1;
		}
		if (len >= LD_URL_BYTES_MAX) {
			snprintf(err, errlen,
				 "--%s has a URL longer than %u bytes", name,
				 LD_URL_BYTES_MAX - 1);
			return -1;
		}
		memcpy(urls[n], p, len);
		urls[n][len] = '\0';
		n++;
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	return (int)n;
}

static int opt_set(opt_state *st, const char *name, const char *v, char *err,
		   size_t errlen)
{
	ld_options *o = st->o;
	uint64_t x;
	if (strcmp(name, "config") == 0)
		return 0; /* read before everything else */
	if (strcmp(name, "id") == 0) {
		if (parse_u64(name, v, LD_REPLICA_IDS - 1, &x, err, errlen))
			return -1;
		o->id = (uint32_t)x;
		st->have_id = true;
	} else if (strcmp(name, "peers") == 0) {
		int n = parse_urls(name, v, o->peers, err, errlen);
		if (n < 0)
			return -1;
		o->nreplicas = (uint32_t)n;
		st->have_peers = true;
	} else if (strcmp(name, "clients") == 0) {
		int n = parse_urls(name, v, o->clients, err, errlen);
		if (n < 0)
			return -1;
		st->nclients = (uint32_t)n;
		st->have_clients = true;
	} else if (strcmp(name, "join") == 0) {
		int n = parse_urls(name, v, o->join, err, errlen);
		if (n < 0)
			return -1;
		o->njoin = (uint32_t)n;
		st->have_join = true;
	} else if (strcmp(name, "listen-peer") == 0 ||
		   strcmp(name, "listen-client") == 0) {
		bool peer = name[7] == 'p';
		char *dst = peer ? o->listen_peer : o->listen_client;
		if (*v == '\0' || strlen(v) >= LD_URL_BYTES_MAX ||
		    strchr(v, ',') != NULL) {
			snprintf(err, errlen,
				 "--%s wants one URL of 1-%u bytes, not '%s'",
				 name, LD_URL_BYTES_MAX - 1, v);
			return -1;
		}
		strcpy(dst, v);
		if (peer)
			st->have_listen_peer = true;
		else
			st->have_listen_client = true;
	} else if (strcmp(name, "data") == 0) {
		if (*v == '\0' || strlen(v) >= sizeof o->data) {
			snprintf(err, errlen,
				 "--data wants a directory path of 1-%zu bytes",
				 sizeof o->data - 1);
			return -1;
		}
		strcpy(o->data, v);
		st->have_data = true;
	} else if (strcmp(name, "http") == 0) {
		if ((strncmp(v, "http://", 7) != 0 &&
		     strncmp(v, "https://", 8) != 0) ||
		    strlen(v) >= sizeof o->http) {
			snprintf(err, errlen,
				 "--http wants http://HOST:PORT or "
				 "https://HOST:PORT (under %zu bytes), not "
				 "'%s'",
				 sizeof o->http, v);
			return -1;
		}
		strcpy(o->http, v);
	} else if (strcmp(name, "http-urls") == 0) {
		int n = parse_urls(name, v, o->http_urls, err, errlen);
		if (n < 0)
			return -1;
		for (int j = 0; j < n; j++)
			if (strncmp(o->http_urls[j], "http://", 7) != 0 &&
			    strncmp(o->http_urls[j], "https://", 8) != 0) {
				snprintf(
					err, errlen,
					"--http-urls wants http(s)://HOST:PORT "
					"URLs by replica id, not '%s'",
					o->http_urls[j]);
				return -1;
			}
		o->nhttp_urls = (uint32_t)n;
	} else if (strcmp(name, "tls-cert") == 0 ||
		   strcmp(name, "tls-ca") == 0) {
		char *dst = name[4] == 'c' && name[5] == 'e' ? o->tls_cert
							     : o->tls_ca;
		if (*v == '\0' || strlen(v) >= LD_PATH_BYTES_MAX) {
			snprintf(err, errlen,
				 "--%s wants a file path of 1-%u bytes", name,
				 LD_PATH_BYTES_MAX - 1);
			return -1;
		}
		strcpy(dst, v);
	} else if (strcmp(name, "peer-key") == 0) {
		if (*v == '\0' || strlen(v) >= sizeof o->peer_key_file) {
			snprintf(err, errlen,
				 "--peer-key wants a file path of 1-%zu bytes",
				 sizeof o->peer_key_file - 1);
			return -1;
		}
		strcpy(o->peer_key_file, v);
	} else if (strcmp(name, "insecure-peers") == 0) {
		if (parse_u64(name, v, 1, &x, err, errlen))
			return -1;
		o->insecure_peers = x == 1;
	} else if (strcmp(name, "snapshot-in-loop") == 0) {
		if (parse_u64(name, v, 1, &x, err, errlen))
			return -1;
		o->node.paxos.snapshot_async = x == 0;
	} else if (strcmp(name, "tls-client-auth") == 0) {
		if (parse_u64(name, v, 1, &x, err, errlen))
			return -1;
		o->tls_client_auth = x == 1;
	} else if (strcmp(name, "cell-id") == 0) {
		if (parse_u64(name, v, UINT64_MAX, &o->cell_id, err, errlen))
			return -1;
	} else if (strcmp(name, "grace-ms") == 0) {
		if (parse_u64(name, v, UINT32_MAX, &x, err, errlen))
			return -1;
		o->node.grace_ms = (uint32_t)x;
	} else if (strcmp(name, "ttl-max-ms") == 0) {
		if (parse_u64(name, v, UINT32_MAX, &x, err, errlen))
			return -1;
		o->node.ttl_ms_max = (uint32_t)x;
	} else if (strcmp(name, "drift-ppm") == 0) {
		if (parse_u64(name, v, UINT32_MAX, &x, err, errlen))
			return -1;
		o->node.drift_ppm = (uint32_t)x;
	} else if (strcmp(name, "tick-ms") == 0) {
		if (parse_u64(name, v, UINT32_MAX, &x, err, errlen))
			return -1;
		o->node.tick_ms = (uint32_t)x;
	} else if (strcmp(name, "heartbeat-ms") == 0) {
		if (parse_u64(name, v, OPT_TIMER_MS_MAX, &x, err, errlen))
			return -1;
		st->heartbeat_ms = x;
	} else if (strcmp(name, "election-ms") == 0) {
		if (parse_u64(name, v, OPT_TIMER_MS_MAX, &x, err, errlen))
			return -1;
		st->election_ms = x;
	} else if (strcmp(name, "retry-ms") == 0) {
		if (parse_u64(name, v, OPT_TIMER_MS_MAX, &x, err, errlen))
			return -1;
		if (x == 0) {
			snprintf(err, errlen, "--retry-ms must be at least 1");
			return -1;
		}
		o->node.paxos.retry_us = x * 1000;
	} else if (strcmp(name, "snapshot-every") == 0) {
		/* The log must hold a snapshot interval, the tail kept before
		 * the snapshot and a full pipeline window (px_replica_new). */
		uint64_t max = LD_LOG_SLOTS_MAX - LD_LOG_TAIL_SLOTS -
			       LD_WINDOW_SLOTS_MAX - 1;
		if (parse_u64(name, v, max, &x, err, errlen))
			return -1;
		if (x == 0) {
			snprintf(err, errlen,
				 "--snapshot-every must be at least 1");
			return -1;
		}
		o->node.paxos.snapshot_every_slots = (uint32_t)x;
	} else {
		snprintf(err, errlen, "unknown option --%s (see --help)", name);
		return -1;
	}
	return 0;
}

static bool opt_known(const char *name)
{
	for (size_t i = 0; i < sizeof opt_names / sizeof opt_names[0]; i++)
		if (strcmp(name, opt_names[i]) == 0)
			return true;
	return false;
}

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return s;
}

static int read_config(opt_state *st, const char *path, char *err,
		       size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		snprintf(err, errlen, "cannot read config file %s: %s", path,
			 strerror(errno));
		return -1;
	}
	char line[4096];
	unsigned lineno = 0;
	int rc = 0;
	while (fgets(line, sizeof line, f) != NULL) {
		lineno++;
		if (strchr(line, '\n') == NULL && !feof(f)) {
			snprintf(err, errlen, "%s:%u: line too long", path,
				 lineno);
			rc = -1;
			break;
		}
		char *hash = strchr(line, '#');
		if (hash != NULL)
			*hash = '\0';
		char *s = trim(line);
		if (*s == '\0')
			continue;
		char *eq = strchr(s, '=');
		if (eq == NULL) {
			snprintf(err, errlen, "%s:%u: expected `name = value`",
				 path, lineno);
			rc = -1;
			break;
		}
		*eq = '\0';
		char *name = trim(s);
		char *value = trim(eq + 1);
		for (char *c = name; *c; c++)
			if (*c == '_')
				*c = '-';
		if (!opt_known(name) || strcmp(name, "config") == 0) {
			snprintf(err, errlen, "%s:%u: unknown option '%s'",
				 path, lineno, name);
			rc = -1;
			break;
		}
		char sub[512];
		if (opt_set(st, name, value, sub, sizeof sub) != 0) {
			snprintf(err, errlen, "%s:%u: %s", path, lineno, sub);
			rc = -1;
			break;
		}
	}
	fclose(f);
	return rc;
}

/* Iterates argv as (name, value) pairs: `--name value` or `--name=value`.
 * Returns 1 with a pair, 0 at the end, -1 with a sentence. */
static int next_flag(int argc, char **argv, int *i, char *name, size_t namelen,
		     const char **value, char *err, size_t errlen)
{
	if (*i >= argc)
		return 0;
	const char *a = argv[*i];
	if (strncmp(a, "--", 2) != 0) {
		snprintf(err, errlen, "unexpected argument '%s' (see --help)",
			 a);
		return -1;
	}
	a += 2;
	const char *eq = strchr(a, '=');
	size_t len = eq ? (size_t)(eq - a) : strlen(a);
	if (len == 0 || len >= namelen) {
		snprintf(err, errlen, "unknown option '%s' (see --help)",
			 argv[*i]);
		return -1;
	}
	memcpy(name, a, len);
	name[len] = '\0';
	if (eq != NULL) {
		*value = eq + 1;
		(*i)++;
		return 1;
	}
	if (opt_boolean(name) &&
	    (*i + 1 >= argc || (strcmp(argv[*i + 1], "0") != 0 &&
				strcmp(argv[*i + 1], "1") != 0))) {
		*value = "1";
		(*i)++;
		return 1;
	}
	if (*i + 1 >= argc) {
		snprintf(err, errlen, "--%s needs a value", name);
		return -1;
	}
	*value = argv[*i + 1];
	*i += 2;
	return 1;
}

/* Peers must authenticate: by TLS certificates (tls+tcp:// URLs), or by the
 * cell key. A plain URL without a key is refused unless --insecure-peers. */
static int opt_peer_auth(ld_options *o, char *err, size_t errlen)
{
	if (o->peer_key_file[0] != '\0')
		return pa_key_load(o->peer_key_file, &o->peer_key, err, errlen);
	if (o->insecure_peers)
		return 0;
	for (uint32_t j = 0; j <= o->nreplicas; j++) {
		/* --peers, or a joiner's own --listen-peer */
		const char *url =
			j < o->nreplicas ? o->peers[j] : o->listen_peer;
		if (url[0] == '\0' || strncmp(url, "tls+", 4) == 0)
			continue;
		snprintf(err, errlen,
			 "peer URL %s is not TLS, and without a cell key "
			 "anyone who can reach a peer port can forge Paxos "
			 "messages and change or stop the cell: give every "
			 "replica the same --peer-key FILE (head -c 32 "
			 "/dev/urandom > FILE; chmod 600 FILE), or use "
			 "tls+tcp:// peer URLs with --tls-cert and --tls-ca; "
			 "--insecure-peers starts anyway (a laptop only)",
			 url);
		return -1;
	}
	return 0;
}

int ld_options_parse(int argc, char **argv, ld_options *o, char *err,
		     size_t errlen)
{
	memset(o, 0, sizeof *o);
	ln_config_default(&o->node, 0, 1);
	/* Snapshots are encoded in a forked child (capture.h). */
	o->node.paxos.snapshot_async = true;
	opt_state st = {.o = o,
			.heartbeat_ms = o->node.paxos.heartbeat_us / 1000,
			.election_ms =
				o->node.paxos.election_timeout_us / 1000};
	char name[64];
	const char *value;
	int i, rc;

	/* The config file first, so that flags override it. */
	for (i = 1; (rc = next_flag(argc, argv, &i, name, sizeof name, &value,
				    err, errlen)) == 1;) {
		if (strcmp(name, "config") == 0 &&
		    read_config(&st, value, err, errlen) != 0)
			return -1;
	}
	if (rc < 0)
		return -1;
	for (i = 1; (rc = next_flag(argc, argv, &i, name, sizeof name, &value,
				    err, errlen)) == 1;)
		if (opt_set(&st, name, value, err, errlen) != 0)
			return -1;
	if (rc < 0)
		return -1;

	if (st.have_join && (st.have_peers || st.have_clients)) {
		snprintf(err, errlen,
			 "--join is for a replica that joins a running cell, "
			 "--peers and --clients for the first replicas of a "
			 "new one: give one or the other");
		return -1;
	}
	if (!st.have_join && (st.have_listen_peer || st.have_listen_client)) {
		snprintf(err, errlen,
			 "--listen-peer and --listen-client go with --join; "
			 "with --peers and --clients a replica listens on its "
			 "own entries there");
		return -1;
	}
	if (!st.have_peers && !st.have_join) {
		snprintf(err, errlen,
			 "--peers is required: the peer URLs of "
			 "every replica, by id (or --join to join a running "
			 "cell)");
		return -1;
	}
	if (st.have_join && (!st.have_listen_peer || !st.have_listen_client)) {
		snprintf(err, errlen,
			 "--join needs this replica's own --listen-peer URL "
			 "and --listen-client URL");
		return -1;
	}
	if (st.have_peers && !st.have_clients) {
		snprintf(err, errlen,
			 "--clients is required: the client URLs "
			 "of every replica, by id");
		return -1;
	}
	if (st.have_peers && st.nclients != o->nreplicas) {
		snprintf(err, errlen,
			 "--clients lists %u URLs but --peers lists %u: one of "
			 "each per replica",
			 st.nclients, o->nreplicas);
		return -1;
	}
	if (!st.have_id) {
		snprintf(err, errlen, "--id is required");
		return -1;
	}
	if (st.have_peers && o->id >= o->nreplicas) {
		snprintf(err, errlen,
			 "--id %u is out of range: --peers names replicas 0-%u",
			 o->id, o->nreplicas - 1);
		return -1;
	}
	if (st.have_peers) {
		strcpy(o->listen_peer, o->peers[o->id]);
		strcpy(o->listen_client, o->clients[o->id]);
	}
	if (strcmp(o->listen_peer, o->listen_client) == 0) {
		snprintf(err, errlen,
			 "the peer URL and the client URL are both %s: "
			 "give each its own port",
			 o->listen_peer);
		return -1;
	}
	for (uint32_t j = 0; j < o->njoin; j++)
		if (strcmp(o->join[j], o->listen_client) == 0 ||
		    strcmp(o->join[j], o->listen_peer) == 0) {
			snprintf(err, errlen,
				 "--join names %s, this replica's own URL: "
				 "give the client URLs of running members",
				 o->join[j]);
			return -1;
		}
	if (!st.have_data) {
		snprintf(err, errlen, "--data is required");
		return -1;
	}
	for (uint32_t a = 0; a < o->nreplicas; a++)
		for (uint32_t b = 0; b < o->nreplicas; b++)
			if (a != b &&
			    (strcmp(o->peers[a], o->peers[b]) == 0 ||
			     strcmp(o->clients[a], o->clients[b]) == 0 ||
			     strcmp(o->peers[a], o->clients[b]) == 0)) {
				snprintf(err, errlen,
					 "replicas %u and %u share a URL", a,
					 b);
				return -1;
			}
	if (st.heartbeat_ms == 0 || st.election_ms == 0) {
		snprintf(err, errlen,
			 "--heartbeat-ms and --election-ms must be at least 1");
		return -1;
	}
	if (st.heartbeat_ms * 2 > st.election_ms) {
		snprintf(err, errlen,
			 "--election-ms (%llu) must be at least twice "
			 "--heartbeat-ms (%llu), or followers depose a live "
			 "leader",
			 (unsigned long long)st.election_ms,
			 (unsigned long long)st.heartbeat_ms);
		return -1;
	}
	o->node.paxos.id = o->id;
	o->node.paxos.nreplicas = o->nreplicas;
	o->node.paxos.heartbeat_us = st.heartbeat_ms * 1000;
	o->node.paxos.election_timeout_us = st.election_ms * 1000;
	if (ln_config_check(&o->node, err, errlen) != 0)
		return -1;
	return opt_peer_auth(o, err, errlen);
}
