/* sim_rng.h: the simulation's one source of randomness, a seeded SplitMix64 stream. */
#ifndef TSORACLE_SIM_RNG_H
#define TSORACLE_SIM_RNG_H

#include <stdbool.h>
#include <stdint.h>

/*
 * Every random choice of a schedule (its parameters, the nemesis, the
 * clients) comes from one stream seeded by the schedule's seed, and libraft's
 * fixture is deterministic, so a seed replays a schedule exactly, on any
 * machine. SplitMix64: small, fast, and good enough for picking schedules.
 */
typedef struct sim_rng {
	uint64_t state;
} sim_rng;

void sim_rng_seed(sim_rng *g, uint64_t seed);
uint64_t sim_rng_next(sim_rng *g);
/* Uniform in [0, n); 0 if n is 0. */
uint64_t sim_rng_below(sim_rng *g, uint64_t n);
/* Uniform in [lo, hi] (lo <= hi). */
uint64_t sim_rng_range(sim_rng *g, uint64_t lo, uint64_t hi);
/* The same, for unsigned ranges. */
unsigned sim_rng_range_u(sim_rng *g, unsigned lo, unsigned hi);
/* True with probability permille / 1000. */
bool sim_rng_chance(sim_rng *g, unsigned permille);

#endif /* TSORACLE_SIM_RNG_H */
