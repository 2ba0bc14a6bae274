/* broken_monotonic.c: positive control, linked with -Wl,--wrap=ta_grant: a grant ignores the last value
 * handed out. */
#include "wrap.h"

#include "tso.h"

/*
 * Breaks I1 (tsoracle.h) on purpose, for the tests that must catch it (the
 * Makefile's "positive controls"; never linked into what is installed):
 * a grant starts at the clock's first timestamp of its millisecond, not
 * above the last one handed out, so two grants in one millisecond (or
 * after the clock stepped back) overlap.
 */

int __wrap_ta_grant(ta_alloc *a, ta_clock clk, uint32_t n, uint64_t *first)
{
	uint64_t last = a->last;
	int rc;

	if (last >= TSO_MAX)
		return __real_ta_grant(a, clk, n, first); /* the range's end stays an error */
	a->last = 0;
	rc = __real_ta_grant(a, clk, n, first);
	if (rc != TA_OK)
		a->last = last;
	return rc;
}
