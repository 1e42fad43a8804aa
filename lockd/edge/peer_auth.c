#include "peer_auth.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/md.h>

/* Header-only (this library links without the core: lockd-forge uses it). */
#include "bytes.h"

static const uint8_t auth_magic[4] = {'L', 'D', 'M', '1'};
/* Keeps this MAC apart from any other use of the same key. */
static const char auth_domain[] = "lockd peer message v1";

int pa_key_load(const char *path, pa_key *k, char *err, size_t errlen)
{
	memset(k, 0, sizeof *k);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		snprintf(err, errlen, "cannot read --peer-key file %s: %s",
			 path, strerror(errno));
		return -1;
	}
	struct stat st;
	int rc = -1;
	if (fstat(fd, &st) != 0) {
		snprintf(err, errlen, "cannot read --peer-key file %s: %s",
			 path, strerror(errno));
	} else if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen,
			 "--peer-key %s is not a regular file: give the file "
			 "that holds the cell's secret",
			 path);
	} else if ((st.st_mode & (S_IROTH | S_IWOTH)) != 0) {
		snprintf(err, errlen,
			 "--peer-key %s is open to every user on this host "
			 "(mode %04o), so anyone here could forge peer "
			 "messages: chmod 600 %s",
			 path, (unsigned)(st.st_mode & 07777), path);
	} else if (st.st_size < (off_t)PA_KEY_BYTES_MIN ||
		   st.st_size > (off_t)PA_KEY_BYTES_MAX) {
		snprintf(err, errlen,
			 "--peer-key %s holds %lld bytes; the cell key must "
			 "be %u to %u bytes of secret (make one with: head -c "
			 "32 /dev/urandom > %s; chmod 600 %s)",
			 path, (long long)st.st_size, PA_KEY_BYTES_MIN,
			 PA_KEY_BYTES_MAX, path, path);
	} else {
		size_t want = (size_t)st.st_size, got = 0;
		while (got < want) {
			ssize_t r = read(fd, k->bytes + got, want - got);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				break;
			got += (size_t)r;
		}
		if (got != want) {
			snprintf(err, errlen,
				 "cannot read --peer-key file %s: it changed "
				 "while being read",
				 path);
			memset(k, 0, sizeof *k);
		} else {
			k->len = want;
			rc = 0;
		}
	}
	close(fd);
	return rc;
}

/* HMAC-SHA256(key, domain | cell_id | from | to | body). */
static int auth_mac(const pa_key *k, uint64_t cell_id, uint32_t from,
		    uint32_t to, const uint8_t *body, size_t len,
		    uint8_t mac[PA_MAC_BYTES])
{
	uint8_t hdr[16];
	bytes_put_be64(hdr, cell_id);
	bytes_put_be32(hdr + 8, from);
	bytes_put_be32(hdr + 12, to);
	mbedtls_md_context_t ctx;
	mbedtls_md_init(&ctx);
	int rv = mbedtls_md_setup(
		&ctx, mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), 1);
	if (rv == 0)
		rv = mbedtls_md_hmac_starts(&ctx, k->bytes, k->len);
	if (rv == 0)
		rv = mbedtls_md_hmac_update(&ctx, (const uint8_t *)auth_domain,
					    sizeof auth_domain);
	if (rv == 0)
		rv = mbedtls_md_hmac_update(&ctx, hdr, sizeof hdr);
	if (rv == 0 && len > 0)
		rv = mbedtls_md_hmac_update(&ctx, body, len);
	if (rv == 0)
		rv = mbedtls_md_hmac_finish(&ctx, mac);
	mbedtls_md_free(&ctx);
	return rv == 0 ? 0 : -1;
}

int pa_mac_seal(const pa_key *k, uint64_t cell_id, uint32_t from, uint32_t to,
		const uint8_t *body, size_t len,
		uint8_t trailer[PA_TRAILER_BYTES])
{
	memcpy(trailer, auth_magic, sizeof auth_magic);
	bytes_put_be32(trailer + 4, from);
	return auth_mac(k, cell_id, from, to, body, len, trailer + 8);
}

const char *pa_mac_open(const pa_key *k, uint64_t cell_id, uint32_t to,
			const uint8_t *buf, size_t len, size_t *body_len,
			uint32_t *from)
{
	if (len < PA_TRAILER_BYTES ||
	    memcmp(buf + len - PA_TRAILER_BYTES, auth_magic,
		   sizeof auth_magic) != 0)
		return "no MAC trailer (does the sender have this cell's "
		       "--peer-key?)";
	const uint8_t *t = buf + len - PA_TRAILER_BYTES;
	size_t n = len - PA_TRAILER_BYTES;
	uint32_t f = bytes_get_be32(t + 4);
	uint8_t mac[PA_MAC_BYTES];
	if (auth_mac(k, cell_id, f, to, buf, n, mac) != 0)
		return "cannot compute the MAC (out of memory)";
	/* Constant time: a forger learns nothing from how long it took. */
	uint8_t diff = 0;
	for (size_t i = 0; i < PA_MAC_BYTES; i++)
		diff |= (uint8_t)(mac[i] ^ t[8 + i]);
	if (diff != 0)
		return "MAC does not match (another key or cell, or a forged, "
		       "altered or misdirected message)";
	*body_len = n;
	*from = f;
	return NULL;
}
