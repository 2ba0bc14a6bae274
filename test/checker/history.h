/* history.h: a recorded history of timestamp calls, and the checks a correct oracle must pass. */
#ifndef TSORACLE_HISTORY_H
#define TSORACLE_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * One call: a session asked for timestamps at invoke_ns and had its answer
 * (or its error) at complete_ns, both read from one monotonic clock shared
 * by all the checker's clients. A successful call got the contiguous range
 * [lo, hi] (tso_now(): lo == hi), or, for a statement (values != NULL), the
 * n_values values in the order the statement evaluated them, lo the first
 * and hi the last: one operation spanning the statement, whose values need
 * not be contiguous (other sessions' values may fall between them). A failed call is refused when its error
 * was the worker's refusal of a backward grant: the sidecars granted a
 * value not above one granted before, which the worker caught (a broken
 * order the values alone no longer show, so it counts as a violation).
 */
typedef struct hist_op {
	uint32_t session;
	bool ok;
	uint64_t invoke_ns;
	uint64_t complete_ns;
	int64_t lo;
	int64_t hi;
	bool refused;
	const int64_t *values; /* a statement's values, increasing; NULL: [lo, hi] */
	uint32_t n_values;
} hist_op;

typedef struct hist_report {
	size_t ops;               /* successful calls */
	size_t errors;            /* failed calls, refused ones excepted */
	size_t timestamps;        /* values handed out */
	size_t duplicates;        /* calls whose range overlaps another's */
	size_t session_backwards; /* calls not above their session's previous */
	size_t realtime;          /* calls not above a call completed before they began */
	size_t malformed;         /* ranges with hi < lo; statements not increasing */
	size_t refused;           /* calls failed by the worker's refusal of a backward grant */
	uint64_t longest_gap_ns;  /* longest time without a successful completion */
	uint64_t span_ns;         /* first invoke to last completion */
	char first_violation[256];
} hist_report;

/*
 * Checks ops (reordered in place): no value twice; within each session every
 * call's values above the previous call's; for every pair A, B with A
 * completed before B was invoked, every value of B above every value of A;
 * no call refused. Returns the number of violations (the sum of the
 * counters from duplicates to refused).
 */
size_t hist_check(hist_op *ops, size_t n, hist_report *r);

#endif /* TSORACLE_HISTORY_H */
