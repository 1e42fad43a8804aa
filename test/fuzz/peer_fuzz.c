/* Peer messages (codec.h cd_msg_decode): what any peer, or anyone who can
 * reach the peer port, sends. A message that decodes re-encodes, decodes
 * again and encodes to the same bytes, and px_msg_validate judges it
 * without crashing. */
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	px_msg *m = NULL;
	if (cd_msg_decode(data, size, &m) != 0) {
		FUZZ_CHECK(m == NULL);
		return 0;
	}
	(void)px_msg_validate(m, LD_REPLICAS_MAX);
	uint8_t *a = NULL, *b = NULL;
	size_t alen = 0, blen = 0;
	px_msg *m2 = NULL;
	FUZZ_CHECK(cd_msg_encode(m, &a, &alen) == 0);
	FUZZ_CHECK(cd_msg_decode(a, alen, &m2) == 0);
	FUZZ_CHECK(cd_msg_encode(m2, &b, &blen) == 0);
	FUZZ_CHECK(alen == blen && memcmp(a, b, alen) == 0);
	px_msg *d = px_msg_dup(m);
	px_msg_free(d);
	free(a);
	free(b);
	px_msg_free(m2);
	px_msg_free(m);
	return 0;
}
