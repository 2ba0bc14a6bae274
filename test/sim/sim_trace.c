/* sim_trace.c: the trace of a schedule: its last lines, kept only while a failing seed is replayed. */
#include "sim_trace.h"

#include <stdarg.h>
#include <string.h>

bool sim_trace_on;

/* The last lines added, oldest overwritten first. */
typedef struct sim_ring {
	char (*lines)[SIM_TRACE_WIDTH];
	unsigned long size;
	unsigned long count; /* lines added since the start */
} sim_ring;

static char sim_all_lines[SIM_TRACE_LINES][SIM_TRACE_WIDTH];
static char sim_key_lines[SIM_TRACE_KEY_LINES][SIM_TRACE_WIDTH];
static sim_ring sim_all = {sim_all_lines, SIM_TRACE_LINES, 0};
static sim_ring sim_key = {sim_key_lines, SIM_TRACE_KEY_LINES, 0};
static bool sim_trace_all;

void sim_trace_start(bool all)
{
	sim_all.count = 0;
	sim_key.count = 0;
	sim_trace_all = all;
	sim_trace_on = true;
}

void sim_trace_stop(void)
{
	sim_trace_on = false;
}

void sim_trace_add(bool key, const char *fmt, ...)
{
	char *line = sim_all.lines[sim_all.count++ % sim_all.size];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, SIM_TRACE_WIDTH, fmt, ap);
	va_end(ap);
	if (key)
		memcpy(sim_key.lines[sim_key.count++ % sim_key.size], line, SIM_TRACE_WIDTH);
	if (sim_trace_all)
		fprintf(stderr, "  %s\n", line);
}

static void sim_ring_dump(const sim_ring *r, FILE *out)
{
	unsigned long from = r->count > r->size ? r->count - r->size : 0;

	for (unsigned long i = from; i < r->count; i++)
		fprintf(out, "  %s\n", r->lines[i % r->size]);
}

void sim_trace_dump(FILE *out)
{
	fprintf(out, "  the last %d key events (ms since the start, node, event):\n", SIM_TRACE_KEY_LINES);
	sim_ring_dump(&sim_key, out);
	fprintf(out, "  the last %d lines of the trace:\n", SIM_TRACE_LINES);
	sim_ring_dump(&sim_all, out);
}
