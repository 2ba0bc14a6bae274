/* sim_trace.h: the trace of a schedule: its last lines, kept only while a failing seed is replayed. */
#ifndef TSORACLE_SIM_TRACE_H
#define TSORACLE_SIM_TRACE_H

#include <stdbool.h>
#include <stdio.h>

/*
 * Formatting every event would slow the thousands of schedules down, so
 * tracing is off while they run. A failing schedule is replayed from its seed
 * with tracing on (the replay is exact), and the lines before the failure are
 * printed: the last SIM_TRACE_KEY_LINES key events (the nemesis, leadership,
 * processes), then the last SIM_TRACE_LINES lines of all (grants, proposals
 * and commits too), since grants alone would push the key events out.
 * SIM_TRACE() and SIM_TRACE_KEY() cost one test when off.
 */
#define SIM_TRACE_LINES     48
#define SIM_TRACE_KEY_LINES 24
#define SIM_TRACE_WIDTH     200

extern bool sim_trace_on;

#define SIM_TRACE(...)                                                                                       \
	do {                                                                                                 \
		if (sim_trace_on)                                                                            \
			sim_trace_add(false, __VA_ARGS__);                                                   \
	} while (0)

#define SIM_TRACE_KEY(...)                                                                                   \
	do {                                                                                                 \
		if (sim_trace_on)                                                                            \
			sim_trace_add(true, __VA_ARGS__);                                                    \
	} while (0)

/* Starts a trace: clears the lines; all: also print each line as it comes. */
void sim_trace_start(bool all);
void sim_trace_stop(void);
void sim_trace_add(bool key, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints the kept lines, oldest first. */
void sim_trace_dump(FILE *out);

#endif /* TSORACLE_SIM_TRACE_H */
