/* broken_startfloor.c: positive control, linked with -Wl,--wrap=ta_set_start_floor: no start floor. */
#include "wrap.h"

/*
 * Breaks I7 (tsoracle.h) on purpose, for the tests that must catch it (the
 * Makefile's "positive controls"; never linked into what is installed): the
 * start floor is never set, so a member whose log is behind what its lost
 * peers handed out (--force-new-cluster on a survivor that was behind, a
 * data directory restored from an old copy) fences at max(H + 1, now)
 * alone, below timestamps already handed out.
 */

void __wrap_ta_set_start_floor(ta_alloc *a, uint64_t floor_ms, uint64_t slack_ms)
{
	(void)a;
	(void)floor_ms;
	(void)slack_ms;
}
