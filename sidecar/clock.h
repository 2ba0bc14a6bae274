/* clock.h: the daemon's clock readings, in one place so tests can skew them. */
#ifndef TSORACLE_CLOCK_H
#define TSORACLE_CLOCK_H

#include <stdint.h>

#include "tsoracle.h"

/*
 * Reads the wall clock (CLOCK_REALTIME, Unix ms) and the monotonic clock
 * (CLOCK_BOOTTIME, ms: it never jumps, and counts suspended time). The allocator and the lease take these
 * readings as inputs; nothing else in the daemon reads a clock directly.
 *
 * The wall reading adds an offset, set with clock_set_wall_offset_ms (the
 * --clock-offset-file flag: a file holding a signed number of ms, re-read
 * every CLOCK_OFFSET_RELOAD_MS), which is how the tests jump one node's wall
 * clock by tens of seconds without touching the machine's clock. The
 * monotonic clock is never skewed: the lease's safety rests on it.
 */
ta_clock clock_now(void);

uint64_t clock_mono_ms(void);

void clock_set_wall_offset_ms(int64_t offset_ms);

/* Re-reads the offset file if one is set and due; logs changes. */
void clock_set_offset_file(const char *path);
void clock_poll_offset_file(void);

#endif /* TSORACLE_CLOCK_H */
