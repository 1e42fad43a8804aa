/* A lease table's snapshot (the px_sm restore of lease.h's table): what a
 * replica installs from a peer or reads back from its disk. A snapshot
 * that restores takes a snapshot of its own that restores to the same
 * digest; a refused one leaves the table as it was. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "lease.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ls_table *t = ls_table_new();
	FUZZ_CHECK(t != NULL);
	px_sm *sm = ls_table_sm(t);
	uint64_t empty = sm->ops->digest(sm);
	if (sm->ops->restore(sm, data, size) != 0) {
		FUZZ_CHECK(sm->ops->digest(sm) == empty);
		ls_table_free(t);
		return 0;
	}
	uint64_t d = sm->ops->digest(sm);
	uint8_t *snap = NULL;
	size_t len = 0;
	FUZZ_CHECK(sm->ops->snapshot(sm, &snap, &len) == 0);
	ls_table *t2 = ls_table_new();
	FUZZ_CHECK(t2 != NULL);
	px_sm *sm2 = ls_table_sm(t2);
	FUZZ_CHECK(sm2->ops->restore(sm2, snap, len) == 0);
	FUZZ_CHECK(sm2->ops->digest(sm2) == d);
	free(snap);
	ls_table_free(t2);
	ls_table_free(t);
	return 0;
}
