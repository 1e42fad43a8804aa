/* A fixed, deterministic fuzz run for compilers without libFuzzer (fuzz.h):
 *   driver CORPUS_DIR [MUTATIONS]
 * feeds every file in CORPUS_DIR to LLVMFuzzerTestOneInput, then MUTATIONS
 * (default 20000) inputs made from them by a fixed-seed generator: bit
 * flips, byte overwrites with interesting values, truncations, extensions,
 * splices of two seeds, and varint-shaped insertions. The same run every
 * time, so a failure in CI replays; with FUZZ_SAVE=FILE set, each input is
 * written to FILE before it is tried (slow), so the one that failed is
 * left there. */
#include <dirent.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

#define INPUT_MAX (1u << 20)

typedef struct seed {
	uint8_t *b;
	size_t n;
} seed;

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static size_t below(size_t n)
{
	return n ? (size_t)(next() % n) : 0;
}

static seed *load(const char *dir, size_t *nseeds)
{
	DIR *d = opendir(dir);
	if (d == NULL) {
		fprintf(stderr, "fuzz: cannot open corpus %s\n", dir);
		exit(2);
	}
	seed *v = NULL;
	size_t n = 0;
	struct dirent *e;
	char **names = NULL;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		names = realloc(names, (n + 1) * sizeof *names);
		names[n++] = strdup(e->d_name);
	}
	closedir(d);
	/* readdir's order is the file system's: sort for a fixed run. */
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0;
		     j--) {
			char *t = names[j];
			names[j] = names[j - 1];
			names[j - 1] = t;
		}
	v = calloc(n ? n : 1, sizeof *v);
	for (size_t i = 0; i < n; i++) {
		char path[4096];
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		FILE *f = fopen(path, "rb");
		if (f == NULL) {
			fprintf(stderr, "fuzz: cannot read %s\n", path);
			exit(2);
		}
		v[i].b = malloc(INPUT_MAX);
		v[i].n = fread(v[i].b, 1, INPUT_MAX, f);
		fclose(f);
		free(names[i]);
	}
	free(names);
	*nseeds = n;
	return v;
}

static const uint8_t interesting[] = {0x00, 0x01, 0x7f, 0x80, 0xff,
				      0x08, 0x10, 0x12, 0x1a, 0x22};

static size_t mutate(const seed *seeds, size_t nseeds, uint8_t *out)
{
	const seed *a = &seeds[below(nseeds)];
	size_t n = a->n;
	memcpy(out, a->b, n);
	unsigned rounds = 1 + (unsigned)below(4);
	for (unsigned r = 0; r < rounds; r++) {
		switch (below(7)) {
		case 0: /* flip a bit */
			if (n)
				out[below(n)] ^= (uint8_t)(1u << below(8));
			break;
		case 1: /* an interesting byte */
			if (n)
				out[below(n)] =
					interesting[below(sizeof interesting)];
			break;
		case 2: /* truncate */
			n = below(n + 1);
			break;
		case 3: { /* append random bytes */
			size_t k = 1 + below(16);
			for (size_t i = 0; i < k && n < INPUT_MAX; i++)
				out[n++] = (uint8_t)next();
			break;
		}
		case 4: { /* splice in the tail of another seed */
			const seed *b = &seeds[below(nseeds)];
			size_t at = below(n + 1), from = below(b->n + 1);
			size_t k = b->n - from;
			if (at + k > INPUT_MAX)
				k = INPUT_MAX - at;
			memcpy(out + at, b->b + from, k);
			n = at + k;
			break;
		}
		case 5: { /* insert a long varint (10 bytes of 0xff..) */
			size_t at = below(n + 1);
			if (n + 10 > INPUT_MAX)
				break;
			memmove(out + at + 10, out + at, n - at);
			for (size_t i = 0; i < 9; i++)
				out[at + i] = 0xff;
			out[at + 9] = 0x01;
			n += 10;
			break;
		}
		case 6: /* random bytes in place */
			for (size_t i = 0, k = below(8); i < k && n; i++)
				out[below(n)] = (uint8_t)next();
			break;
		}
	}
	return n;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR [MUTATIONS]\n", argv[0]);
		return 2;
	}
	unsigned long mutations = argc > 2 ? strtoul(argv[2], NULL, 10) : 20000;
	size_t nseeds;
	seed *seeds = load(argv[1], &nseeds);
	if (nseeds == 0) {
		fprintf(stderr, "fuzz: no seeds in %s\n", argv[1]);
		return 2;
	}
	for (size_t i = 0; i < nseeds; i++)
		LLVMFuzzerTestOneInput(seeds[i].b, seeds[i].n);
	uint8_t *buf = malloc(INPUT_MAX);
	const char *save = getenv("FUZZ_SAVE");
	for (unsigned long i = 0; i < mutations; i++) {
		size_t n = mutate(seeds, nseeds, buf);
		if (save != NULL) {
			FILE *f = fopen(save, "wb");
			if (f != NULL) {
				fwrite(buf, 1, n, f);
				fclose(f);
			}
		}
		LLVMFuzzerTestOneInput(buf, n);
	}
	printf("fuzz: %zu seeds and %lu mutations from %s: no failure\n",
	       nseeds, mutations, argv[1]);
	free(buf);
	for (size_t i = 0; i < nseeds; i++)
		free(seeds[i].b);
	free(seeds);
	return 0;
}
