/* broken_release.c: positive control, linked with -Wl,--wrap=ta_established: a leader still in its own wait
 * releases. */
#include "wrap.h"

/*
 * Breaks I4's planned handover (tsoracle.h) on purpose, for the simulation
 * that must catch it (the Makefile's "positive controls"; never linked
 * into what is installed): a leader counts as established as soon as it
 * has begun its term, so it may release while a deposed leader before it
 * still serves, and its successor then skips the wait too.
 */

bool __wrap_ta_established(const ta_alloc *a, ta_clock clk)
{
	(void)clk;
	return a->epoch != 0;
}
