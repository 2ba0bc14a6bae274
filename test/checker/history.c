/* history.c: a recorded history of timestamp calls, and the checks a correct oracle must pass. */
#include "history.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hist_by_lo(const void *a, const void *b)
{
	const hist_op *x = a, *y = b;

	if (x->ok != y->ok)
		return x->ok ? -1 : 1; /* successful calls first */
	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

static int hist_by_session(const void *a, const void *b)
{
	const hist_op *x = a, *y = b;

	if (x->session != y->session)
		return x->session < y->session ? -1 : 1;
	return x->invoke_ns < y->invoke_ns ? -1 : x->invoke_ns > y->invoke_ns;
}

static int hist_by_invoke(const void *a, const void *b)
{
	const hist_op *x = a, *y = b;

	return x->invoke_ns < y->invoke_ns ? -1 : x->invoke_ns > y->invoke_ns;
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* A value or a contiguous range of one call, for the duplicate check. */
typedef struct hist_piece {
	int64_t lo, hi;
	const hist_op *op;
} hist_piece;

static int hist_piece_by_lo(const void *a, const void *b)
{
	const hist_piece *x = a, *y = b;

	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* A completion, for the real-time sweep. */
typedef struct hist_done {
	uint64_t complete_ns;
	hist_op op;
} hist_done;

static int hist_by_complete(const void *a, const void *b)
{
	const hist_done *x = a, *y = b;

	return x->complete_ns < y->complete_ns ? -1 : x->complete_ns > y->complete_ns;
}

static void hist_note(hist_report *r, const char *fmt, const hist_op *a, const hist_op *b)
{
	if (r->first_violation[0] != '\0')
		return;
	snprintf(r->first_violation, sizeof r->first_violation, fmt, a->session, a->lo, a->hi, b->session,
		 b->lo, b->hi);
}

size_t hist_check(hist_op *ops, size_t n, hist_report *r)
{
	hist_done *done;
	uint64_t *completions;
	size_t n_ok = 0, n_done = 0, n_pieces = 0;
	hist_piece *pieces;
	uint64_t first_invoke = UINT64_MAX, last_complete = 0;

	memset(r, 0, sizeof *r);
	for (size_t i = 0; i < n; i++) {
		if (ops[i].invoke_ns < first_invoke)
			first_invoke = ops[i].invoke_ns;
		if (ops[i].complete_ns > last_complete)
			last_complete = ops[i].complete_ns;
		if (!ops[i].ok) {
			if (ops[i].refused) {
				r->refused++;
				if (r->first_violation[0] == '\0')
					snprintf(r->first_violation, sizeof r->first_violation,
						 "refused: session %u's call was refused by its worker (a "
						 "grant not "
						 "above an earlier one)",
						 ops[i].session);
			} else {
				r->errors++;
			}
			continue;
		}
		if (ops[i].hi < ops[i].lo) {
			r->malformed++;
			ops[i].ok = false; /* not usable below */
			continue;
		}
		if (ops[i].values != NULL) {
			bool increasing = ops[i].n_values > 0;

			for (uint32_t k = 1; k < ops[i].n_values && increasing; k++)
				increasing = ops[i].values[k] > ops[i].values[k - 1];
			if (!increasing || ops[i].lo != ops[i].values[0] ||
			    ops[i].hi != ops[i].values[ops[i].n_values - 1]) {
				r->malformed++;
				ops[i].ok = false; /* not usable below */
				continue;
			}
			n_pieces += ops[i].n_values;
			r->timestamps += ops[i].n_values;
		} else {
			n_pieces++;
			r->timestamps += (size_t)(ops[i].hi - ops[i].lo + 1);
		}
		n_ok++;
	}
	r->ops = n_ok;
	r->span_ns = n ? last_complete - first_invoke : 0;

	/*
	 * 1. No value twice: the range of every call and each value of every
	 * statement, sorted by lo; each starts above the end of the last.
	 */
	qsort(ops, n, sizeof *ops, hist_by_lo);
	pieces = malloc((n_pieces ? n_pieces : 1) * sizeof *pieces);
	if (pieces == NULL)
		return (size_t)-1;
	for (size_t i = 0, k = 0; i < n_ok; i++) {
		if (ops[i].values == NULL) {
			pieces[k++] = (hist_piece){ops[i].lo, ops[i].hi, &ops[i]};
			continue;
		}
		for (uint32_t v = 0; v < ops[i].n_values; v++)
			pieces[k++] = (hist_piece){ops[i].values[v], ops[i].values[v], &ops[i]};
	}
	qsort(pieces, n_pieces, sizeof *pieces, hist_piece_by_lo);
	for (size_t i = 1; i < n_pieces; i++) {
		if (pieces[i].lo <= pieces[i - 1].hi) {
			r->duplicates++;
			hist_note(r,
				  "duplicate: session %u got [%" PRId64 ", %" PRId64 "], session %u [%" PRId64
				  ", %" PRId64 "]",
				  pieces[i - 1].op, pieces[i].op);
		}
	}
	free(pieces);

	/* 2. Per session, in invocation order, values increase. */
	qsort(ops, n_ok, sizeof *ops, hist_by_session);
	for (size_t i = 1; i < n_ok; i++) {
		if (ops[i].session == ops[i - 1].session && ops[i].lo <= ops[i - 1].hi) {
			r->session_backwards++;
			hist_note(r,
				  "session order: session %u got [%" PRId64 ", %" PRId64
				  "] then session %u [%" PRId64 ", %" PRId64 "]",
				  &ops[i - 1], &ops[i]);
		}
	}

	/*
	 * 3. Real time: sweep calls in invocation order, keeping the highest
	 * value of every call completed strictly before the current one began.
	 */
	done = malloc((n_ok ? n_ok : 1) * sizeof *done);
	completions = malloc((n_ok ? n_ok : 1) * sizeof *completions);
	if (done == NULL || completions == NULL) {
		free(done);
		free(completions);
		return (size_t)-1;
	}
	for (size_t i = 0; i < n_ok; i++) {
		done[i].complete_ns = ops[i].complete_ns;
		done[i].op = ops[i];
		completions[i] = ops[i].complete_ns;
	}
	qsort(done, n_ok, sizeof *done, hist_by_complete);
	qsort(ops, n_ok, sizeof *ops, hist_by_invoke);
	{
		const hist_op *latest = NULL; /* highest-valued call completed so far */

		for (size_t i = 0; i < n_ok; i++) {
			while (n_done < n_ok && done[n_done].complete_ns < ops[i].invoke_ns) {
				if (latest == NULL || done[n_done].op.hi > latest->hi)
					latest = &done[n_done].op;
				n_done++;
			}
			if (latest != NULL && ops[i].lo <= latest->hi) {
				r->realtime++;
				hist_note(r,
					  "real-time order: session %u completed with [%" PRId64 ", %" PRId64
					  "] before session %u began, which got [%" PRId64 ", %" PRId64 "]",
					  latest, &ops[i]);
			}
		}
	}

	/* Longest stretch with no successful completion, from the first
	 * invocation to the last success (calls still waiting when the run
	 * ended do not count as an outage). */
	qsort(completions, n_ok, sizeof *completions, u64_cmp);
	if (n_ok > 0) {
		uint64_t prev = first_invoke;

		for (size_t i = 0; i < n_ok; i++) {
			if (completions[i] - prev > r->longest_gap_ns)
				r->longest_gap_ns = completions[i] - prev;
			prev = completions[i];
		}
	} else {
		r->longest_gap_ns = r->span_ns;
	}
	free(done);
	free(completions);
	return r->duplicates + r->session_backwards + r->realtime + r->malformed + r->refused;
}
