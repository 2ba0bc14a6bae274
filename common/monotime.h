/* monotime.h: the monotonic clock of the command-line tools (tsoracle-ctl, tsoracle-bench, the checker). */
#ifndef TSORACLE_MONOTIME_H
#define TSORACLE_MONOTIME_H

#include <errno.h>
#include <stdint.h>
#include <time.h>

#define MS_PER_S  UINT64_C(1000)
#define NS_PER_MS UINT64_C(1000000)
#define NS_PER_S  UINT64_C(1000000000)

/*
 * CLOCK_MONOTONIC: for timeouts, deadlines and latencies of a tool's own
 * operations; it never jumps, and stands still while the machine sleeps,
 * which is what a tool's deadline wants. Not the daemon's lease clock:
 * that is CLOCK_BOOTTIME, read in one place so that tests can skew it
 * (sidecar/clock.h). Static, in the header: each tool links its own short
 * list of objects (sidecar/sidecar.mk, test/test.mk).
 */
static inline uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

static inline uint64_t mono_ms(void)
{
	return mono_ns() / NS_PER_MS;
}

/* Sleeps ns, the rest of it again after a signal. */
static inline void mono_sleep_ns(uint64_t ns)
{
	struct timespec ts = {.tv_sec = (time_t)(ns / NS_PER_S), .tv_nsec = (long)(ns % NS_PER_S)};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

#endif /* TSORACLE_MONOTIME_H */
