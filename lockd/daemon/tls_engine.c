/* lockd's TLS engine for nng: mbedTLS, as nng's own engine, plus the one
 * thing nng 1.5.2 does not give a caller: who the verified peer is.
 *
 * nng 1.5.2 has no NNG_OPT_TLS_PEER_CN or NNG_OPT_TLS_PEER_ALT_NAMES (they
 * arrived in 1.6), and its engine keeps the peer's certificate to itself.
 * So lockd registers this engine (nng_tls_engine_register, a public API) for
 * its own TLS endpoints. After each handshake it reads the verified peer
 * certificate's CN and dNSName SANs and remembers the replica id they name
 * (`lockd-replica-N`). The only per-connection query nng 1.5.2 routes to an
 * engine is NNG_OPT_TLS_VERIFIED on a pipe; it runs synchronously on the
 * caller's thread, so this engine's answer also leaves the connection's
 * replica id in a thread-local variable for ld_tls_pipe_replica to read
 * (see tls.h). */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/asn1.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crl.h>
#include <mbedtls/x509_crt.h>
#include <nng/nng.h>
#include <nng/supplemental/tls/engine.h>
#include <nng/supplemental/tls/tls.h>

#include "ld_limits.h"
#include "tls.h"

/* Certificate and key pairs one endpoint may present (nng allows several on
 * a listener, e.g. RSA and EC). */
#define ENGINE_OWN_CERTS_MAX 4

struct nng_tls_engine_config {
	mbedtls_ssl_config conf;
	mbedtls_x509_crt ca;
	mbedtls_x509_crl crl;
	bool have_ca, have_crl;
	mbedtls_x509_crt own_crt[ENGINE_OWN_CERTS_MAX];
	mbedtls_pk_context own_key[ENGINE_OWN_CERTS_MAX];
	int nown;
	nng_tls_mode mode;
	char *server_name;
};

struct nng_tls_engine_conn {
	void *tls; /* nng's connection, for nng_tls_engine_send/recv */
	nng_tls_engine_config *cfg;
	mbedtls_ssl_context ssl;
	bool ssl_ready;
	int32_t replica; /* the verified peer's replica id, or -1 */
};

static mbedtls_entropy_context engine_entropy;
static mbedtls_ctr_drbg_context engine_drbg; /* locks itself (THREADING) */
static int engine_init_rv;
static pthread_once_t engine_once = PTHREAD_ONCE_INIT;

/* What the last NNG_OPT_TLS_VERIFIED query on this thread found. */
static _Thread_local int32_t engine_last_replica = LD_TLS_PIPE_PLAIN;

/* "lockd-replica-N" with N a decimal replica id below LD_REPLICA_IDS. */
static int32_t engine_replica_name(const unsigned char *p, size_t len)
{
	const size_t plen = sizeof LD_TLS_REPLICA_NAME_PREFIX - 1;
	if (len <= plen || len > plen + 3 ||
	    memcmp(p, LD_TLS_REPLICA_NAME_PREFIX, plen) != 0)
		return -1;
	uint32_t id = 0;
	for (size_t i = plen; i < len; i++) {
		if (p[i] < '0' || p[i] > '9' || (i > plen && id == 0))
			return -1; /* digits only, no leading zero */
		id = id * 10 + (uint32_t)(p[i] - '0');
	}
	return id < LD_REPLICA_IDS ? (int32_t)id : -1;
}

/* The replica id a verified certificate names in its CN or a dNSName SAN;
 * -1 if none, or if they name two different ids. */
static int32_t engine_cert_replica(const mbedtls_x509_crt *crt)
{
	int32_t found = -1;
	for (const mbedtls_x509_name *n = &crt->subject; n != NULL;
	     n = n->next) {
		if (n->oid.p == NULL ||
		    MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &n->oid) != 0)
			continue;
		int32_t id = engine_replica_name(n->val.p, n->val.len);
		if (id >= 0 && found >= 0 && id != found)
			return -1;
		if (id >= 0)
			found = id;
	}
	for (const mbedtls_x509_sequence *s = &crt->subject_alt_names;
	     s != NULL; s = s->next) {
		if (s->buf.p == NULL ||
		    s->buf.tag != (MBEDTLS_ASN1_CONTEXT_SPECIFIC |
				   MBEDTLS_X509_SAN_DNS_NAME))
			continue;
		int32_t id = engine_replica_name(s->buf.p, s->buf.len);
		if (id >= 0 && found >= 0 && id != found)
			return -1;
		if (id >= 0)
			found = id;
	}
	return found;
}

static int engine_send_cb(void *arg, const unsigned char *buf, size_t len)
{
	nng_tls_engine_conn *ec = arg;
	size_t sz = len;
	int rv = nng_tls_engine_send(ec->tls, buf, &sz);
	if (rv == 0)
		return (int)sz;
	return rv == NNG_EAGAIN ? MBEDTLS_ERR_SSL_WANT_WRITE
				: MBEDTLS_ERR_NET_SEND_FAILED;
}

static int engine_recv_cb(void *arg, unsigned char *buf, size_t len)
{
	nng_tls_engine_conn *ec = arg;
	size_t sz = len;
	int rv = nng_tls_engine_recv(ec->tls, buf, &sz);
	if (rv == 0)
		return (int)sz;
	return rv == NNG_EAGAIN ? MBEDTLS_ERR_SSL_WANT_READ
				: MBEDTLS_ERR_NET_RECV_FAILED;
}

static int engine_rng(void *arg, unsigned char *buf, size_t len)
{
	(void)arg;
	return mbedtls_ctr_drbg_random(&engine_drbg, buf, len);
}

/* ---- connections ------------------------------------------------------ */

static int engine_conn_init(nng_tls_engine_conn *ec, void *tls,
			    nng_tls_engine_config *cfg)
{
	ec->tls = tls;
	ec->cfg = cfg;
	ec->replica = -1;
	mbedtls_ssl_init(&ec->ssl);
	if (mbedtls_ssl_setup(&ec->ssl, &cfg->conf) != 0 ||
	    (cfg->mode == NNG_TLS_MODE_CLIENT && cfg->server_name != NULL &&
	     mbedtls_ssl_set_hostname(&ec->ssl, cfg->server_name) != 0)) {
		/* nng calls fini only after a successful init. */
		mbedtls_ssl_free(&ec->ssl);
		return NNG_ENOMEM;
	}
	mbedtls_ssl_set_bio(&ec->ssl, ec, engine_send_cb, engine_recv_cb, NULL);
	ec->ssl_ready = true;
	return 0;
}

static void engine_conn_fini(nng_tls_engine_conn *ec)
{
	if (ec->ssl_ready)
		mbedtls_ssl_free(&ec->ssl);
	ec->ssl_ready = false;
}

static void engine_conn_close(nng_tls_engine_conn *ec)
{
	(void)mbedtls_ssl_close_notify(&ec->ssl);
}

static int engine_conn_handshake(nng_tls_engine_conn *ec)
{
	int rv = mbedtls_ssl_handshake(&ec->ssl);
	switch (rv) {
	case 0:
		break;
	case MBEDTLS_ERR_SSL_WANT_READ:
	case MBEDTLS_ERR_SSL_WANT_WRITE:
		return NNG_EAGAIN;
	case MBEDTLS_ERR_X509_CERT_VERIFY_FAILED:
		return NNG_EPEERAUTH;
	default:
		return NNG_ECRYPTO;
	}
	const mbedtls_x509_crt *peer = mbedtls_ssl_get_peer_cert(&ec->ssl);
	if (peer != NULL && mbedtls_ssl_get_verify_result(&ec->ssl) == 0)
		ec->replica = engine_cert_replica(peer);
	return 0;
}

static int engine_conn_recv(nng_tls_engine_conn *ec, uint8_t *buf, size_t *szp)
{
	int rv = mbedtls_ssl_read(&ec->ssl, buf, *szp);
	if (rv > 0) {
		*szp = (size_t)rv;
		return 0;
	}
	if (rv == MBEDTLS_ERR_SSL_WANT_READ || rv == MBEDTLS_ERR_SSL_WANT_WRITE)
		return NNG_EAGAIN;
	if (rv == 0 || rv == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY)
		return NNG_ECLOSED;
	return NNG_ECRYPTO;
}

static int engine_conn_send(nng_tls_engine_conn *ec, const uint8_t *buf,
			    size_t *szp)
{
	int rv = mbedtls_ssl_write(&ec->ssl, buf, *szp);
	if (rv > 0) {
		*szp = (size_t)rv;
		return 0;
	}
	if (rv == MBEDTLS_ERR_SSL_WANT_READ || rv == MBEDTLS_ERR_SSL_WANT_WRITE)
		return NNG_EAGAIN;
	return NNG_ECRYPTO;
}

static bool engine_conn_verified(nng_tls_engine_conn *ec)
{
	bool v = mbedtls_ssl_get_peer_cert(&ec->ssl) != NULL &&
		 mbedtls_ssl_get_verify_result(&ec->ssl) == 0;
	/* Read back by ld_tls_pipe_replica, on this thread, right after. */
	engine_last_replica = v ? ec->replica : -1;
	return v;
}

/* ---- configurations --------------------------------------------------- */

static int engine_config_init(nng_tls_engine_config *cfg, nng_tls_mode mode)
{
	cfg->mode = mode;
	mbedtls_ssl_config_init(&cfg->conf);
	mbedtls_x509_crt_init(&cfg->ca);
	mbedtls_x509_crl_init(&cfg->crl);
	for (int i = 0; i < ENGINE_OWN_CERTS_MAX; i++) {
		mbedtls_x509_crt_init(&cfg->own_crt[i]);
		mbedtls_pk_init(&cfg->own_key[i]);
	}
	int end = mode == NNG_TLS_MODE_SERVER ? MBEDTLS_SSL_IS_SERVER
					      : MBEDTLS_SSL_IS_CLIENT;
	if (mbedtls_ssl_config_defaults(&cfg->conf, end,
					MBEDTLS_SSL_TRANSPORT_STREAM,
					MBEDTLS_SSL_PRESET_DEFAULT) != 0)
		return NNG_ENOMEM;
	mbedtls_ssl_conf_rng(&cfg->conf, engine_rng, NULL);
	/* nng's defaults: servers ask nothing of clients unless told to,
	 * clients always verify servers. At least TLS 1.2. */
	mbedtls_ssl_conf_authmode(&cfg->conf,
				  mode == NNG_TLS_MODE_SERVER
					  ? MBEDTLS_SSL_VERIFY_NONE
					  : MBEDTLS_SSL_VERIFY_REQUIRED);
	mbedtls_ssl_conf_min_version(&cfg->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
				     MBEDTLS_SSL_MINOR_VERSION_3);
	return 0;
}

static void engine_config_fini(nng_tls_engine_config *cfg)
{
	mbedtls_ssl_config_free(&cfg->conf);
	mbedtls_x509_crt_free(&cfg->ca);
	mbedtls_x509_crl_free(&cfg->crl);
	for (int i = 0; i < ENGINE_OWN_CERTS_MAX; i++) {
		mbedtls_x509_crt_free(&cfg->own_crt[i]);
		mbedtls_pk_free(&cfg->own_key[i]);
	}
	free(cfg->server_name);
}

static int engine_config_server(nng_tls_engine_config *cfg, const char *name)
{
	char *dup = strdup(name);
	if (dup == NULL)
		return NNG_ENOMEM;
	free(cfg->server_name);
	cfg->server_name = dup;
	return 0;
}

static int engine_config_auth(nng_tls_engine_config *cfg,
			      nng_tls_auth_mode mode)
{
	switch (mode) {
	case NNG_TLS_AUTH_MODE_NONE:
		mbedtls_ssl_conf_authmode(&cfg->conf, MBEDTLS_SSL_VERIFY_NONE);
		return 0;
	case NNG_TLS_AUTH_MODE_OPTIONAL:
		mbedtls_ssl_conf_authmode(&cfg->conf,
					  MBEDTLS_SSL_VERIFY_OPTIONAL);
		return 0;
	case NNG_TLS_AUTH_MODE_REQUIRED:
		mbedtls_ssl_conf_authmode(&cfg->conf,
					  MBEDTLS_SSL_VERIFY_REQUIRED);
		return 0;
	}
	return NNG_EINVAL;
}

static int engine_config_ca_chain(nng_tls_engine_config *cfg, const char *certs,
				  const char *crl)
{
	if (mbedtls_x509_crt_parse(&cfg->ca, (const unsigned char *)certs,
				   strlen(certs) + 1) != 0)
		return NNG_ECRYPTO;
	cfg->have_ca = true;
	if (crl != NULL) {
		if (mbedtls_x509_crl_parse(&cfg->crl,
					   (const unsigned char *)crl,
					   strlen(crl) + 1) != 0)
			return NNG_ECRYPTO;
		cfg->have_crl = true;
	}
	mbedtls_ssl_conf_ca_chain(&cfg->conf, &cfg->ca,
				  cfg->have_crl ? &cfg->crl : NULL);
	return 0;
}

static int engine_config_own_cert(nng_tls_engine_config *cfg, const char *cert,
				  const char *key, const char *pass)
{
	if (cfg->nown == ENGINE_OWN_CERTS_MAX)
		return NNG_ENOSPC;
	mbedtls_x509_crt *crt = &cfg->own_crt[cfg->nown];
	mbedtls_pk_context *pk = &cfg->own_key[cfg->nown];
	if (mbedtls_x509_crt_parse(crt, (const unsigned char *)cert,
				   strlen(cert) + 1) != 0)
		return NNG_ECRYPTO;
	if (mbedtls_pk_parse_key(pk, (const unsigned char *)key,
				 strlen(key) + 1, (const unsigned char *)pass,
				 pass ? strlen(pass) : 0) != 0)
		return NNG_ECRYPTO;
	if (mbedtls_ssl_conf_own_cert(&cfg->conf, crt, pk) != 0)
		return NNG_ENOMEM;
	cfg->nown++;
	return 0;
}

static int engine_config_version(nng_tls_engine_config *cfg,
				 nng_tls_version min, nng_tls_version max)
{
	/* mbedTLS 2.28 speaks up to TLS 1.2; lockd wants at least 1.2. */
	if (min > max || min > NNG_TLS_1_2 || max < NNG_TLS_1_2)
		return NNG_ENOTSUP;
	mbedtls_ssl_conf_min_version(&cfg->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
				     MBEDTLS_SSL_MINOR_VERSION_3);
	mbedtls_ssl_conf_max_version(&cfg->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
				     MBEDTLS_SSL_MINOR_VERSION_3);
	return 0;
}

static nng_tls_engine_config_ops engine_config_ops = {
	.size = sizeof(nng_tls_engine_config),
	.init = engine_config_init,
	.fini = engine_config_fini,
	.server = engine_config_server,
	.auth = engine_config_auth,
	.ca_chain = engine_config_ca_chain,
	.own_cert = engine_config_own_cert,
	.version = engine_config_version,
};

static nng_tls_engine_conn_ops engine_conn_ops = {
	.size = sizeof(nng_tls_engine_conn),
	.init = engine_conn_init,
	.fini = engine_conn_fini,
	.close = engine_conn_close,
	.handshake = engine_conn_handshake,
	.recv = engine_conn_recv,
	.send = engine_conn_send,
	.verified = engine_conn_verified,
};

static const nng_tls_engine engine = {
	.version = NNG_TLS_ENGINE_VERSION,
	.config_ops = &engine_config_ops,
	.conn_ops = &engine_conn_ops,
	.name = "lockd-mbed",
	.description = "mbed TLS, with the peer's replica id for lockd",
	.fips_mode = false,
};

static void engine_setup(void)
{
	static const char pers[] = "lockd tls";
	mbedtls_entropy_init(&engine_entropy);
	mbedtls_ctr_drbg_init(&engine_drbg);
	if (mbedtls_ctr_drbg_seed(&engine_drbg, mbedtls_entropy_func,
				  &engine_entropy, (const unsigned char *)pers,
				  sizeof pers - 1) != 0) {
		engine_init_rv = NNG_ECRYPTO;
		return;
	}
	engine_init_rv = nng_tls_engine_register(&engine);
}

int ld_tls_engine_use(char *err, size_t errlen)
{
	pthread_once(&engine_once, engine_setup);
	if (engine_init_rv == 0 &&
	    strcmp(nng_tls_engine_name(), engine.name) != 0)
		engine_init_rv = NNG_ENOTSUP;
	if (engine_init_rv != 0)
		snprintf(err, errlen,
			 "cannot set up lockd's TLS engine for nng: %s",
			 nng_strerror(engine_init_rv));
	return engine_init_rv;
}

int32_t ld_tls_pipe_replica(nng_pipe p)
{
	bool verified = false;
	engine_last_replica = LD_TLS_PIPE_PLAIN;
	if (nng_pipe_get_bool(p, NNG_OPT_TLS_VERIFIED, &verified) != 0)
		return LD_TLS_PIPE_PLAIN;
	if (!verified)
		return -1;
	/* engine_conn_verified left it here, unless another engine answered
	 * (then PLAIN is still there, and that counts as no replica). */
	return engine_last_replica >= 0 ? engine_last_replica : -1;
}
