/* sim_clock.c: one node's clocks in simulated time: a skewed monotonic clock and a jumping wall clock. */
#include "sim_clock.h"

#define PPM INT64_C(1000000)

ta_clock sim_clock_at(const sim_clock *c, uint64_t t_ms)
{
	/* Floor division keeps mono non-decreasing in t for any skew > -10^6. */
	int64_t elapsed =
	    (int64_t)t_ms + ((int64_t)t_ms * c->skew_ppm - (c->skew_ppm < 0 ? PPM - 1 : 0)) / PPM;
	int64_t wall =
	    (int64_t)c->wall_base_ms + (c->wall_true_rate ? (int64_t)t_ms : elapsed) + c->offset_ms;

	return (ta_clock){
	    .mono_ms = c->mono_base_ms + (uint64_t)elapsed,
	    .wall_ms = wall < 0 ? 0 : (uint64_t)wall,
	};
}
