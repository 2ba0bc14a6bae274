/* broken_floor.c: positive control, linked with -Wl,--wrap=ta_raise_floor: the operator's floor is ignored.
 */
#include "wrap.h"

/*
 * Breaks the operator's floor (tsoracle.h, I6) on purpose, for the tests
 * that must catch it (the Makefile's "positive controls"; never linked into
 * what is installed): an Advance commits and applies, but the allocator
 * never hears of it, so timestamps after tsoracle-ctl advance-to stay at the
 * clock, below the time advanced to.
 */

void __wrap_ta_raise_floor(ta_alloc *a, uint64_t floor_ms)
{
	(void)a;
	(void)floor_ms;
}
