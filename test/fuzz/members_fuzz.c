/* A configuration (codec.h cd_members_decode): what a joining replica
 * reads from a member, and keeps in its store's meta. */
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	px_members m;
	if (cd_members_decode(data, size, &m) != 0)
		return 0;
	FUZZ_CHECK(m.n <= LD_REPLICAS_MAX);
	uint8_t *a = NULL;
	size_t alen = 0;
	px_members m2;
	if (cd_members_encode(&m, &a, &alen) == 0) {
		FUZZ_CHECK(cd_members_decode(a, alen, &m2) == 0);
		FUZZ_CHECK(m2.n == m.n);
		free(a);
	}
	return 0;
}
