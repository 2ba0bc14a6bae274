/* sim_rng.c: the simulation's one source of randomness, a seeded SplitMix64 stream. */
#include "sim_rng.h"

/* SplitMix64's constants (Steele, Lea and Flood, 2014). */
#define SPLITMIX_GAMMA UINT64_C(0x9E3779B97F4A7C15)
#define SPLITMIX_MUL1  UINT64_C(0xBF58476D1CE4E5B9)
#define SPLITMIX_MUL2  UINT64_C(0x94D049BB133111EB)

#define PERMILLE 1000

void sim_rng_seed(sim_rng *g, uint64_t seed)
{
	g->state = seed;
}

uint64_t sim_rng_next(sim_rng *g)
{
	uint64_t z = (g->state += SPLITMIX_GAMMA);

	z = (z ^ (z >> 30)) * SPLITMIX_MUL1;
	z = (z ^ (z >> 27)) * SPLITMIX_MUL2;
	return z ^ (z >> 31);
}

uint64_t sim_rng_below(sim_rng *g, uint64_t n)
{
	/* Lemire's multiply-shift: unbiased enough for a test, and no division. */
	return n == 0 ? 0 : (uint64_t)(((unsigned __int128)sim_rng_next(g) * n) >> 64);
}

uint64_t sim_rng_range(sim_rng *g, uint64_t lo, uint64_t hi)
{
	return lo + sim_rng_below(g, hi - lo + 1);
}

unsigned sim_rng_range_u(sim_rng *g, unsigned lo, unsigned hi)
{
	return (unsigned)sim_rng_range(g, lo, hi);
}

bool sim_rng_chance(sim_rng *g, unsigned permille)
{
	return sim_rng_below(g, PERMILLE) < permille;
}
