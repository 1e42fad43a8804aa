/* Decrees (codec.h cd_value_decode) and the lease commands inside them
 * (lease.h ls_cmd_decode, ls_cmd_check, ls_result_decode): a decree comes
 * from a peer or the disk, and every replica decodes its commands when it
 * applies them. A command that decodes and passes its check encodes to
 * bytes that decode and encode to the same bytes again (the first
 * encoding may differ: version 1 commands, before session keys, are read
 * and written back as version 2). */
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "fuzz.h"
#include "lease.h"

static void one_cmd(const uint8_t *data, size_t size)
{
	ls_cmd c;
	if (ls_cmd_decode(data, size, &c) != LS_OK)
		return;
	if (ls_cmd_check(&c) != LS_OK)
		return;
	static uint8_t a[LD_CMD_BYTES_MAX], b[LD_CMD_BYTES_MAX];
	size_t na = ls_cmd_encode(&c, a, sizeof a);
	FUZZ_CHECK(na > 0);
	ls_cmd c2;
	FUZZ_CHECK(ls_cmd_decode(a, na, &c2) == LS_OK);
	FUZZ_CHECK(c2.op == c.op && c2.session == c.session);
	size_t nb = ls_cmd_encode(&c2, b, sizeof b);
	FUZZ_CHECK(na == nb && memcmp(a, b, na) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The bytes as one lease command, and as one result. */
	one_cmd(data, size);
	ls_result res;
	(void)ls_result_decode(data, size, &res);

	px_value *v = NULL;
	if (cd_value_decode(data, size, &v) != 0) {
		FUZZ_CHECK(v == NULL);
		return 0;
	}
	for (uint32_t i = 0; i < v->ncmds; i++)
		one_cmd(v->cmds[i].data, v->cmds[i].len);
	uint8_t *a = NULL;
	size_t alen = 0;
	px_value *v2 = NULL;
	FUZZ_CHECK(cd_value_encode(v, &a, &alen) == 0);
	FUZZ_CHECK(cd_value_decode(a, alen, &v2) == 0);
	FUZZ_CHECK(px_value_equal(v, v2));
	free(a);
	px_value_unref(v2);
	px_value_unref(v);
	return 0;
}
