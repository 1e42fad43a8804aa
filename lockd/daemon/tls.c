#include "tls.h"

#include <stdio.h>
#include <string.h>

#include <nng/supplemental/tls/tls.h>

bool ld_tls_url(const char *url)
{
	return strncmp(url, "tls+tcp", 7) == 0;
}

static bool tls_set(const char *s)
{
	return s != NULL && s[0] != '\0';
}

static int tls_fail(int rv, const char *what, const char *url, char *err,
		    size_t errlen)
{
	snprintf(err, errlen, "%s %s: %s", what, url, nng_strerror(rv));
	return rv;
}

int ld_tls_listen(nng_socket s, const char *url, const ld_tls *t,
		  bool require_peer_cert, char *err, size_t errlen)
{
	nng_listener l;
	int rv;
	if (ld_tls_url(url) && (rv = ld_tls_engine_use(err, errlen)) != 0)
		return rv;
	rv = nng_listener_create(&l, s, url);
	if (rv != 0)
		return tls_fail(rv, "cannot listen on", url, err, errlen);
	if (ld_tls_url(url)) {
		if (!tls_set(t->cert_key_file)) {
			nng_listener_close(l);
			snprintf(err, errlen,
				 "%s is a TLS URL: give --tls-cert (this "
				 "replica's certificate and key, one PEM file)",
				 url);
			return NNG_EINVAL;
		}
		if (require_peer_cert && !tls_set(t->ca_file)) {
			nng_listener_close(l);
			snprintf(err, errlen,
				 "%s must verify the other end: give --tls-ca",
				 url);
			return NNG_EINVAL;
		}
		if ((rv = nng_listener_set_string(l, NNG_OPT_TLS_CERT_KEY_FILE,
						  t->cert_key_file)) != 0 ||
		    (tls_set(t->ca_file) &&
		     (rv = nng_listener_set_string(l, NNG_OPT_TLS_CA_FILE,
						   t->ca_file)) != 0) ||
		    (rv = nng_listener_set_int(
			     l, NNG_OPT_TLS_AUTH_MODE,
			     require_peer_cert ? NNG_TLS_AUTH_MODE_REQUIRED
					       : NNG_TLS_AUTH_MODE_NONE)) !=
			    0) {
			nng_listener_close(l);
			return tls_fail(rv,
					"cannot load the TLS certificate, key "
					"or CA for",
					url, err, errlen);
		}
	}
	if ((rv = nng_listener_start(l, 0)) != 0) {
		nng_listener_close(l);
		return tls_fail(rv, "cannot listen on", url, err, errlen);
	}
	return 0;
}

int ld_tls_server_config(const ld_tls *t, bool require_client_cert,
			 nng_tls_config **out, char *err, size_t errlen)
{
	*out = NULL;
	int rv = ld_tls_engine_use(err, errlen);
	if (rv != 0)
		return rv;
	if (!tls_set(t->cert_key_file)) {
		snprintf(err, errlen,
			 "an https:// --http URL needs --tls-cert (this "
			 "replica's certificate and key, one PEM file)");
		return NNG_EINVAL;
	}
	if (require_client_cert && !tls_set(t->ca_file)) {
		snprintf(err, errlen,
			 "--tls-client-auth on https:// needs --tls-ca");
		return NNG_EINVAL;
	}
	nng_tls_config *c;
	if ((rv = nng_tls_config_alloc(&c, NNG_TLS_MODE_SERVER)) != 0)
		return tls_fail(rv, "cannot make a TLS configuration for",
				"--http", err, errlen);
	if ((rv = nng_tls_config_cert_key_file(c, t->cert_key_file, NULL)) !=
		    0 ||
	    (tls_set(t->ca_file) &&
	     (rv = nng_tls_config_ca_file(c, t->ca_file)) != 0) ||
	    (rv = nng_tls_config_auth_mode(
		     c, require_client_cert ? NNG_TLS_AUTH_MODE_REQUIRED
					    : NNG_TLS_AUTH_MODE_NONE)) != 0) {
		nng_tls_config_free(c);
		return tls_fail(rv,
				"cannot load the TLS certificate, key or CA "
				"for",
				"--http", err, errlen);
	}
	*out = c;
	return 0;
}

int ld_tls_dial(nng_socket s, const char *url, const ld_tls *t, char *err,
		size_t errlen)
{
	nng_dialer d;
	int rv;
	if (ld_tls_url(url) && (rv = ld_tls_engine_use(err, errlen)) != 0)
		return rv;
	rv = nng_dialer_create(&d, s, url);
	if (rv != 0)
		return tls_fail(rv, "cannot dial", url, err, errlen);
	if (ld_tls_url(url)) {
		nng_url *u = NULL;
		if (!tls_set(t->ca_file)) {
			nng_dialer_close(d);
			snprintf(err, errlen,
				 "%s is a TLS URL: give --tls-ca to verify it",
				 url);
			return NNG_EINVAL;
		}
		if ((rv = nng_url_parse(&u, url)) != 0 ||
		    (rv = nng_dialer_set_string(d, NNG_OPT_TLS_CA_FILE,
						t->ca_file)) != 0 ||
		    (rv = nng_dialer_set_string(d, NNG_OPT_TLS_SERVER_NAME,
						u->u_hostname)) != 0 ||
		    (tls_set(t->cert_key_file) &&
		     (rv = nng_dialer_set_string(d, NNG_OPT_TLS_CERT_KEY_FILE,
						 t->cert_key_file)) != 0)) {
			if (u != NULL)
				nng_url_free(u);
			nng_dialer_close(d);
			return tls_fail(rv,
					"cannot load the TLS certificate, key "
					"or CA for",
					url, err, errlen);
		}
		nng_url_free(u);
	}
	if ((rv = nng_dialer_start(d, NNG_FLAG_NONBLOCK)) != 0) {
		nng_dialer_close(d);
		return tls_fail(rv, "cannot dial", url, err, errlen);
	}
	return 0;
}
