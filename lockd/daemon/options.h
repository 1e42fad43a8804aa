/* lockd's command line and config file.
 *
 * Every option is a flag `--name value` and a config file line
 * `name = value` (blank lines and `#` comments allowed). The file named by
 * --config is read first; flags given on the command line override it. */
#ifndef LD_OPTIONS_H
#define LD_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ld_limits.h"
#include "node.h"
#include "peer_auth.h"

#define LD_PATH_BYTES_MAX 1024u

typedef struct ld_options {
	uint32_t id; /* < LD_REPLICA_IDS */
	/* A cell's first replicas: --peers and --clients, by id 0..n-1 (n is
	 * nreplicas); 0 with --join. */
	uint32_t nreplicas;
	char peers[LD_REPLICAS_MAX][LD_URL_BYTES_MAX];
	char clients[LD_REPLICAS_MAX][LD_URL_BYTES_MAX];
	/* --join: client URLs of running members, asked for the cell's
	 * configuration when the data directory is new; this replica then
	 * listens on --listen-peer and --listen-client. */
	uint32_t njoin;
	char join[LD_REPLICAS_MAX][LD_URL_BYTES_MAX];
	/* This replica's own URLs: peers[id] and clients[id], or the
	 * --listen-peer and --listen-client of a replica that joins. */
	char listen_peer[LD_URL_BYTES_MAX];
	char listen_client[LD_URL_BYTES_MAX];
	char data[LD_PATH_BYTES_MAX];
	uint64_t cell_id;
	char http[LD_URL_BYTES_MAX]; /* /health, /metrics, /v1; "" = none */
	/* --http-urls: every replica's --http URL by id ("" unknown), so that
	 * the HTTP API sends writes to the leader's (307) and the status page
	 * shows every replica. */
	uint32_t nhttp_urls;
	char http_urls[LD_REPLICAS_MAX][LD_URL_BYTES_MAX];
	/* TLS for tls+tcp:// URLs (tls.h): this replica's certificate and
	 * key in one PEM file, the CA that signs the cell's certificates, and
	 * whether clients must present one too. "" = none. */
	char tls_cert[LD_PATH_BYTES_MAX];
	char tls_ca[LD_PATH_BYTES_MAX];
	bool tls_client_auth;
	/* The cell key (peer_auth.h): --peer-key FILE, read by
	 * ld_options_parse; key.len == 0 without one. Plain (non-TLS) peer URLs
	 * need it unless insecure_peers (--insecure-peers) says otherwise. */
	char peer_key_file[LD_PATH_BYTES_MAX];
	pa_key peer_key;
	bool insecure_peers;
	/* The node's configuration, filled from the flags over its defaults
	 * (ln_config_default); validated by ld_options_parse. */
	ln_config node;
} ld_options;

/* Fills o from argv (argv[0] skipped). Returns 0, or -1 with a sentence in
 * err saying what is wrong (the caller prints it and exits 2). */
int ld_options_parse(int argc, char **argv, ld_options *o, char *err,
		     size_t errlen);

/* The usage text for --help. */
void ld_options_usage(FILE *f);

#endif
