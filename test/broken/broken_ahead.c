/* broken_ahead.c: positive control, linked with -Wl,--wrap=ta_grant,--wrap=ta_room: grants run ahead of the
 * clock. */
#include "wrap.h"

/*
 * Breaks I6 (tsoracle.h) on purpose, for the tests that must catch it (the
 * Makefile's "positive controls"; never linked into what is installed):
 * a grant is bounded by H alone, not by now + max_ahead_ms, as if
 * max_ahead_ms had no end.
 */

int __wrap_ta_grant(ta_alloc *a, ta_clock clk, uint32_t n, uint64_t *first)
{
	uint64_t max_ahead_ms = a->cfg.max_ahead_ms;
	int rc;

	a->cfg.max_ahead_ms = UINT64_MAX;
	rc = __real_ta_grant(a, clk, n, first);
	a->cfg.max_ahead_ms = max_ahead_ms;
	return rc;
}

uint64_t __wrap_ta_room(const ta_alloc *a, ta_clock clk)
{
	ta_alloc unbounded = *a;

	unbounded.cfg.max_ahead_ms = UINT64_MAX;
	return __real_ta_room(&unbounded, clk);
}
