/* Stored records (codec.h cd_record_decode): what a replica reads back
 * from its own disk, which may be damaged. A record that decodes encodes
 * back to bytes that decode to the same record. */
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	px_record r;
	if (cd_record_decode(data, size, &r) != 0)
		return 0;
	uint8_t *a = NULL, *b = NULL;
	size_t alen = 0, blen = 0;
	px_record r2;
	FUZZ_CHECK(cd_record_encode(&r, &a, &alen) == 0);
	FUZZ_CHECK(cd_record_decode(a, alen, &r2) == 0);
	FUZZ_CHECK(cd_record_encode(&r2, &b, &blen) == 0);
	FUZZ_CHECK(alen == blen && memcmp(a, b, alen) == 0);
	FUZZ_CHECK(r.type == r2.type && r.slot == r2.slot);
	free(a);
	free(b);
	px_record_clear(&r2);
	px_record_clear(&r);
	return 0;
}
