/* Client requests: what anyone who reaches the client port sends. The
 * daemon first walks the top level for 32-bit fields sent as wider
 * varints (codec.h cd_request_check), then unpacks with protobuf-c. */
#include <stdlib.h>

#include "client.pb-c.h"
#include "codec.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	if (cd_request_check(data, size, err, sizeof err) != 0)
		return 0;
	Lockd__Request *r = lockd__request__unpack(NULL, size, data);
	if (r == NULL)
		return 0;
	size_t n = lockd__request__get_packed_size(r);
	uint8_t *buf = malloc(n ? n : 1);
	FUZZ_CHECK(buf != NULL);
	FUZZ_CHECK(lockd__request__pack(r, buf) == n);
	Lockd__Request *r2 = lockd__request__unpack(NULL, n, buf);
	FUZZ_CHECK(r2 != NULL && r2->op == r->op);
	lockd__request__free_unpacked(r2, NULL);
	free(buf);
	lockd__request__free_unpacked(r, NULL);
	return 0;
}
