/* Listening and dialing, with TLS when the URL says tls+tcp://.
 *
 * A replica's certificate and key (one PEM file, --tls-cert) serve both
 * ends: its listeners present it, and its dialers present it to the peers
 * they reach. The CA file (--tls-ca) verifies what the other end presents.
 * Between replicas both sides must present a certificate the CA signed
 * (mutual TLS): an unauthenticated peer port would let anyone vote. For the
 * client port, --tls-client-auth decides whether clients must present one.
 * Plain tcp:// URLs ignore all of it.
 *
 * A replica's certificate names its replica id: CN (or a dNSName SAN)
 * lockd-replica-N. A peer port verifies that each message's sender is the
 * replica the connection's certificate names (transport.c), so a client
 * certificate the cell's CA signed gets no message accepted there, and one
 * replica cannot pose as another; a replica dialing a peer drops the
 * connection unless its certificate names that peer. nng 1.5.2 cannot say whom
 * a pipe's certificate names, so lockd's TLS endpoints run on its own mbedTLS
 * engine for nng (tls_engine.c), which can. */
#ifndef LD_TLS_H
#define LD_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

typedef struct ld_tls {
	const char *cert_key_file; /* NULL or "": none */
	const char *ca_file;       /* NULL or "": none */
} ld_tls;

/* The name a replica's certificate carries: this prefix and its id. */
#define LD_TLS_REPLICA_NAME_PREFIX "lockd-replica-"

/* ld_tls_pipe_replica for a pipe without TLS. */
#define LD_TLS_PIPE_PLAIN (-2)

/* Registers lockd's TLS engine with nng (once per process; after nng is
 * initialised, i.e. once a socket exists, and before any TLS endpoint is
 * made). ld_tls_listen and ld_tls_dial call it for TLS URLs. 0, or an nng
 * error with a sentence in err. */
int ld_tls_engine_use(char *err, size_t errlen);

/* The replica id N that the verified certificate of p's peer names
 * (lockd-replica-N in its CN or a dNSName SAN); -1 when the peer presented
 * no verified certificate or one naming no replica (a client's), or names
 * two; LD_TLS_PIPE_PLAIN when p is not TLS. Call it from an nng callback
 * or any thread: it answers on the calling thread. */
int32_t ld_tls_pipe_replica(nng_pipe p);

/* Is url a TLS URL (tls+tcp://, tls+tcp4://, tls+tcp6://)? */
bool ld_tls_url(const char *url);

/* Listens on url; with TLS, presents t's certificate and, when
 * require_peer_cert, accepts only peers whose certificate t's CA signed.
 * 0, or an nng error with a sentence in err. */
int ld_tls_listen(nng_socket s, const char *url, const ld_tls *t,
		  bool require_peer_cert, char *err, size_t errlen);

/* A TLS server configuration for an HTTPS listener (--http https://):
 * t's certificate, and with require_client_cert only clients whose
 * certificate t's CA signed. 0 with *out the caller's to
 * nng_tls_config_free, or an nng error with a sentence in err. */
int ld_tls_server_config(const ld_tls *t, bool require_client_cert,
			 nng_tls_config **out, char *err, size_t errlen);

/* Dials url without waiting (nng reconnects); with TLS, verifies the
 * listener against t's CA and the URL's host, and presents t's certificate
 * if it has one. 0, or an nng error with a sentence in err. */
int ld_tls_dial(nng_socket s, const char *url, const ld_tls *t, char *err,
		size_t errlen);

#endif
