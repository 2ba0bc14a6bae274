/* sim_clock.h: one node's clocks in simulated time: a skewed monotonic clock and a jumping wall clock. */
#ifndef TSORACLE_SIM_CLOCK_H
#define TSORACLE_SIM_CLOCK_H

#include <stdbool.h>
#include <stdint.h>

#include "tsoracle.h"

/*
 * The fixture's time (ms, shared by every raft instance) is the true time.
 * Each node reads it through its own clocks, as the daemon reads
 * CLOCK_MONOTONIC and CLOCK_REALTIME (sidecar/clock.c):
 *
 *   mono = mono_base + t * (1 + skew_ppm / 10^6)   never jumps, never goes back;
 *                                                  its rate may differ from true
 *                                                  time (within the drift margin
 *                                                  the schedule chose)
 *   wall = wall_base + (mono - mono_base) + offset  offset jumps when the
 *                                                  schedule says so (a bad NTP)
 *          (wall_base + t + offset with wall_true_rate)
 *
 * Both survive a process restart, as the machine's clocks do.
 */
typedef struct sim_clock {
	uint64_t mono_base_ms;
	int64_t skew_ppm; /* > -10^6 */
	uint64_t wall_base_ms;
	int64_t offset_ms; /* the wall clock's error, set by jumps */
	/* The wall clock runs at the true rate (NTP disciplines it), not at
	 * the monotonic clock's: the schedules with the clock check on, where
	 * a wall clock must stay within max-clock-offset of the others'. */
	bool wall_true_rate;
} sim_clock;

/* The readings at true time t_ms. */
ta_clock sim_clock_at(const sim_clock *c, uint64_t t_ms);

#endif /* TSORACLE_SIM_CLOCK_H */
