/* broken_clock.c: positive control, linked with -Wl,--wrap for the driver's clock check: the check is off. */
#include "wrap.h"

/*
 * Breaks clock sanity (tsoracle.h, "clock sanity") on purpose, for the
 * tests that must catch it (the Makefile's "positive controls"; never
 * linked into what is installed): every reading is taken as supported by
 * the majority and followed, jumps included, and any member may be handed
 * leadership, as before the check existed.
 */

ta_clock __wrap_lead_clock_observe(lead_driver *d, ta_clock raw, lead_clock_verdict *verdict)
{
	__real_lead_clock_observe(d, raw, verdict);
	verdict->supported = true;
	verdict->held = false;
	verdict->clk = raw;
	d->clock.last = *verdict;
	return raw;
}

ta_clock __wrap_lead_clock_view(const lead_driver *d, ta_clock raw)
{
	(void)d;
	return raw;
}

bool __wrap_lead_clock_member_supported(const lead_driver *d, uint64_t id, ta_clock raw)
{
	(void)d;
	(void)id;
	(void)raw;
	return true;
}
