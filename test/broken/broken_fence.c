/* broken_fence.c: positive control, linked with -Wl,--wrap=ta_lead_begin: a new leader's floor ignores H
 * and the start floor. */
#include "wrap.h"

/*
 * Breaks I3 (tsoracle.h) on purpose, for the tests that must catch it (the
 * Makefile's "positive controls"; never linked into what is installed):
 * the floor is the clock alone, as if no mark had been committed, while H
 * itself is kept, so grants below marks earlier leaders served up to are
 * allowed. The start floor (I7) is ignored too: it alone keeps a member
 * that restarts after its clock stepped back above what it handed out (a
 * start is at least max_ahead past everything before it), and the tests
 * of the fence (t/110, the clock-kill nemesis) restart members.
 */

uint64_t __wrap_ta_lead_begin(ta_alloc *a, uint64_t epoch, uint64_t high_water_ms, bool predecessor_released,
			      uint64_t predecessor_wait_ms, ta_clock clk)
{
	uint64_t before = a->high_water_ms;
	uint64_t start_floor = a->start_floor_ms;
	uint64_t mark;

	a->high_water_ms = 0;
	a->start_floor_ms = 0;
	mark = __real_ta_lead_begin(a, epoch, 0, predecessor_released, predecessor_wait_ms, clk);
	a->start_floor_ms = start_floor;
	a->high_water_ms = mark == 0 ? before : (before > high_water_ms ? before : high_water_ms);
	return mark;
}
