/* Listening and dialing, with TLS when the URL says tls+tcp://.
 *
 * A replica's certificate and key (one PEM file, --tls-cert) serve both
 * ends: its listeners present it, and its dialers present it to the peers
 * they reach. The CA file (--tls-ca) verifies what the other end presents.
 * Between replicas both sides must present a certificate the CA signed
 * (mutual TLS): an unauthenticated peer port would let anyone vote. For the
 * client port, --tls-client-auth decides whether clients must present one.
 * Plain tcp:// URLs ignore all of it. */
#ifndef LD_TLS_H
#define LD_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <nng/nng.h>

typedef struct ld_tls {
	const char *cert_key_file; /* NULL or "": none */
	const char *ca_file;       /* NULL or "": none */
} ld_tls;

/* Is url a TLS URL (tls+tcp://, tls+tcp4://, tls+tcp6://)? */
bool ld_tls_url(const char *url);

/* Listens on url; with TLS, presents t's certificate and, when
 * require_peer_cert, accepts only peers whose certificate t's CA signed.
 * 0, or an nng error with a sentence in err. */
int ld_tls_listen(nng_socket s, const char *url, const ld_tls *t,
		  bool require_peer_cert, char *err, size_t errlen);

/* Dials url without waiting (nng reconnects); with TLS, verifies the
 * listener against t's CA and the URL's host, and presents t's certificate
 * if it has one. 0, or an nng error with a sentence in err. */
int ld_tls_dial(nng_socket s, const char *url, const ld_tls *t, char *err,
		size_t errlen);

#endif
