/* broken_mixlease.c: positive control, linked with -Wl,--wrap=ta_lead_begin: a new leader waits only its own
 * lease, not the wait the log says earlier leaders are owed. */
#include "wrap.h"

/*
 * Breaks I4 (tsoracle.h) for members with different leases, on purpose,
 * for the tests that must catch it (the Makefile's "positive controls";
 * never linked into what is installed): the driver's predecessor_wait_ms
 * (the state's lease_wait_ms, from the Fences and Leases in the log) is
 * dropped, which is what every build did before command set 3. A leader
 * with a shorter lease than a deposed one then serves while the deposed
 * one may still be serving. With equal leases it changes nothing.
 */

uint64_t __wrap_ta_lead_begin(ta_alloc *a, uint64_t epoch, uint64_t high_water_ms, bool predecessor_released,
			      uint64_t predecessor_wait_ms, ta_clock clk)
{
	(void)predecessor_wait_ms;
	return __real_ta_lead_begin(a, epoch, high_water_ms, predecessor_released, 0, clk);
}
