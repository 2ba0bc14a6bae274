/* clock.c: the daemon's clock readings, in one place so tests can skew them. */
#include "clock.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

#define NS_PER_MS              1000000
#define MS_PER_S               1000
#define CLOCK_OFFSET_RELOAD_MS 50

static int64_t clock_wall_offset_ms;
static const char *clock_offset_path;
static uint64_t clock_offset_read_at;

static uint64_t clock_read_ms(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * MS_PER_S + (uint64_t)ts.tv_nsec / NS_PER_MS;
}

/* CLOCK_BOOTTIME: monotonic, and it counts the time the machine was
 * suspended, as the wall clock does. So a resumed leader knows its lease
 * ran out while it slept (CLOCK_MONOTONIC would stand still), and the
 * clock check (lead_clock.c) does not take a suspend for a wall clock
 * jumping forward. */
uint64_t clock_mono_ms(void)
{
	return clock_read_ms(CLOCK_BOOTTIME);
}

ta_clock clock_now(void)
{
	ta_clock c;
	int64_t wall = (int64_t)clock_read_ms(CLOCK_REALTIME) + clock_wall_offset_ms;

	c.wall_ms = wall > 0 ? (uint64_t)wall : 0;
	c.mono_ms = clock_mono_ms();
	return c;
}

void clock_set_wall_offset_ms(int64_t offset_ms)
{
	if (offset_ms != clock_wall_offset_ms)
		log_warn("wall clock offset set to %" PRId64 " ms", offset_ms);
	clock_wall_offset_ms = offset_ms;
}

void clock_set_offset_file(const char *path)
{
	clock_offset_path = path;
	clock_offset_read_at = 0;
	clock_poll_offset_file();
}

void clock_poll_offset_file(void)
{
	char buf[32];
	FILE *f;
	uint64_t now;
	char *end;
	long long v;

	if (clock_offset_path == NULL)
		return;
	now = clock_mono_ms();
	if (clock_offset_read_at != 0 && now - clock_offset_read_at < CLOCK_OFFSET_RELOAD_MS)
		return;
	clock_offset_read_at = now;
	f = fopen(clock_offset_path, "r");
	if (f == NULL) {
		/* No file: no offset (the test removed it). */
		clock_set_wall_offset_ms(0);
		return;
	}
	if (fgets(buf, sizeof buf, f) != NULL) {
		errno = 0;
		v = strtoll(buf, &end, 10);
		if (errno == 0 && end != buf)
			clock_set_wall_offset_ms(v);
	}
	fclose(f);
}
