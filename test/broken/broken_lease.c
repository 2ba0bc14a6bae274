/* broken_lease.c: positive control, linked with -Wl,--wrap=ta_lead_begin: a new leader does not wait out the
 * old lease. */
#include "wrap.h"

/*
 * Breaks I4 (tsoracle.h) on purpose, for the tests that must catch it (the
 * Makefile's "positive controls"; never linked into what is installed):
 * a new leader may serve as soon as its fence commits, while a deposed
 * leader may still be serving within its lease.
 */

uint64_t __wrap_ta_lead_begin(ta_alloc *a, uint64_t epoch, uint64_t high_water_ms, bool predecessor_released,
			      uint64_t predecessor_wait_ms, ta_clock clk)
{
	uint64_t mark =
	    __real_ta_lead_begin(a, epoch, high_water_ms, predecessor_released, predecessor_wait_ms, clk);

	if (mark != 0)
		a->lease_not_before = clk.mono_ms;
	return mark;
}
