/* The simulator's only source of randomness: xoshiro256** seeded through
 * splitmix64 from the seed on the command line. Every decision of a run
 * (delays, losses, crashes, partitions, client payloads, the replicas' own
 * seeds) comes from one stream, so a seed replays bit for bit. */
#ifndef SIM_RNG_H
#define SIM_RNG_H

#include <stdbool.h>
#include <stdint.h>

typedef struct sim_rng {
	uint64_t s[4];
} sim_rng;

static inline uint64_t sim_splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static inline void sim_rng_seed(sim_rng *r, uint64_t seed)
{
	uint64_t x = seed;
	for (int i = 0; i < 4; i++)
		r->s[i] = sim_splitmix64(&x);
}

static inline uint64_t sim_rng_rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static inline uint64_t sim_rng_next(sim_rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = sim_rng_rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = sim_rng_rotl(s[3], 45);
	return result;
}

/* Uniform in [0, n); n == 0 gives 0. The modulo bias is irrelevant here. */
static inline uint64_t sim_rng_below(sim_rng *r, uint64_t n)
{
	return n ? sim_rng_next(r) % n : 0;
}

/* Uniform in [lo, hi] (hi >= lo). */
static inline uint64_t sim_rng_range(sim_rng *r, uint64_t lo, uint64_t hi)
{
	return lo + sim_rng_below(r, hi - lo + 1);
}

/* Uniform in [0, 1). */
static inline double sim_rng_unit(sim_rng *r)
{
	return (double)(sim_rng_next(r) >> 11) * 0x1.0p-53;
}

static inline bool sim_rng_chance(sim_rng *r, double p)
{
	return p > 0 && sim_rng_unit(r) < p;
}

#endif
