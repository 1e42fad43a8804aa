/* Fuzz targets for every decoder that sees outside bytes: peer messages,
 * stored records, decrees, membership, lease commands and results, lease
 * snapshots, client requests. Each target is one file defining
 * LLVMFuzzerTestOneInput, built two ways:
 *   - with driver.c (any compiler, the test build's ASan and UBSan): it
 *     replays the seed corpus in corpus/<target>/ and a fixed number of
 *     deterministic mutations of it (the `fuzz-*` tests in CI);
 *   - with clang's libFuzzer (meson -Dfuzz=libfuzzer, CC=clang): a real
 *     coverage-guided campaign, started from the same corpus.
 * A target aborts (FUZZ_CHECK) when a decoder accepts bytes it cannot
 * encode back to the same meaning; ASan and UBSan catch the rest. */
#ifndef FUZZ_FUZZ_H
#define FUZZ_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                    \
	do {                                                                \
		if (!(cond)) {                                              \
			fprintf(stderr, "fuzz: check failed: %s (%s:%d)\n", \
				#cond, __FILE__, __LINE__);                 \
			abort();                                            \
		}                                                           \
	} while (0)

#endif
