/* The cell key (lockd/peer_auth.h): a sealed message opens only for the
 * replica, cell and key it was sealed for, unchanged; the key file must be
 * long enough and private. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "peer_auth.h"

static pa_key key_of(uint8_t fill)
{
	pa_key k = {.len = 32};
	memset(k.bytes, fill, k.len);
	return k;
}

/* body | trailer, sealed from -> to in cell; *len is the total. */
static uint8_t *sealed(const pa_key *k, uint64_t cell, uint32_t from,
		       uint32_t to, const char *body, size_t *len)
{
	size_t n = strlen(body);
	uint8_t *buf = malloc(n + PA_TRAILER_BYTES);
	cr_assert_not_null(buf);
	memcpy(buf, body, n);
	cr_assert_eq(pa_mac_seal(k, cell, from, to, buf, n, buf + n), 0);
	*len = n + PA_TRAILER_BYTES;
	return buf;
}

Test(peer_auth, opens_for_its_receiver_and_names_the_sender)
{
	pa_key k = key_of(7);
	size_t len, body_len = 0;
	uint32_t from = 99;
	uint8_t *m = sealed(&k, 42, 1, 2, "an accept", &len);
	cr_assert_null(pa_mac_open(&k, 42, 2, m, len, &body_len, &from));
	cr_assert_eq(body_len, strlen("an accept"));
	cr_assert_eq(from, 1);
	free(m);
}

Test(peer_auth, refuses_another_key_cell_receiver_or_a_reflection)
{
	pa_key k = key_of(7), other = key_of(8);
	size_t len, body_len;
	uint32_t from;
	uint8_t *m = sealed(&k, 42, 1, 2, "a prepare", &len);
	cr_assert_not_null(
		pa_mac_open(&other, 42, 2, m, len, &body_len, &from));
	cr_assert_not_null(
		pa_mac_open(&k, 43, 2, m, len, &body_len, &from));
	/* Relayed to a third replica, or reflected back to its sender. */
	cr_assert_not_null(
		pa_mac_open(&k, 42, 0, m, len, &body_len, &from));
	cr_assert_not_null(
		pa_mac_open(&k, 42, 1, m, len, &body_len, &from));
	free(m);
}

Test(peer_auth, refuses_any_flipped_bit_and_a_missing_trailer)
{
	pa_key k = key_of(7);
	size_t len, body_len;
	uint32_t from;
	uint8_t *m = sealed(&k, 0, 1, 0, "a snapshot", &len);
	for (size_t i = 0; i < len; i++) {
		m[i] ^= 0x10;
		cr_assert_not_null(
			pa_mac_open(&k, 0, 0, m, len, &body_len, &from),
			"byte %zu flipped and still accepted", i);
		m[i] ^= 0x10;
	}
	cr_assert_null(pa_mac_open(&k, 0, 0, m, len, &body_len, &from));
	const char *why =
		pa_mac_open(&k, 0, 0, m, len - 40, &body_len, &from);
	cr_assert_not_null(why);
	cr_assert(strstr(why, "no MAC trailer") != NULL, "%s", why);
	cr_assert_not_null(pa_mac_open(&k, 0, 0, m, 3, &body_len, &from));
	free(m);
}

static char *key_file(size_t bytes, mode_t mode)
{
	char *path = strdup("/tmp/peer-auth-test.XXXXXX");
	int fd = mkstemp(path);
	cr_assert(fd >= 0);
	uint8_t buf[2048] = {1};
	cr_assert_eq(write(fd, buf, bytes), (ssize_t)bytes);
	cr_assert_eq(fchmod(fd, mode), 0);
	close(fd);
	return path;
}

Test(peer_auth, key_files_must_be_long_and_private)
{
	pa_key k;
	char err[512];
	char *good = key_file(32, 0600), *group = key_file(64, 0640);
	char *shorter = key_file(31, 0600), *open = key_file(32, 0644);
	char *huge = key_file(PA_KEY_BYTES_MAX + 1, 0600);
	cr_assert_eq(pa_key_load(good, &k, err, sizeof err), 0, "%s", err);
	cr_assert_eq(k.len, 32);
	cr_assert_eq(pa_key_load(group, &k, err, sizeof err), 0, "%s",
		     err);
	cr_assert_eq(pa_key_load(shorter, &k, err, sizeof err), -1);
	cr_assert(strstr(err, "32 to 1024 bytes") != NULL, "%s", err);
	cr_assert_eq(k.len, 0);
	cr_assert_eq(pa_key_load(open, &k, err, sizeof err), -1);
	cr_assert(strstr(err, "chmod 600") != NULL, "%s", err);
	cr_assert_eq(pa_key_load(huge, &k, err, sizeof err), -1);
	cr_assert_eq(pa_key_load("/nonexistent/key", &k, err, sizeof err),
		     -1);
	cr_assert_eq(pa_key_load("/tmp", &k, err, sizeof err), -1);
	char *all[] = {good, group, shorter, open, huge};
	for (size_t i = 0; i < 5; i++) {
		unlink(all[i]);
		free(all[i]);
	}
}
