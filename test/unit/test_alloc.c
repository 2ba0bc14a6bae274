/* test_alloc.c: unit and property tests of the window allocator (sidecar/alloc.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ctype.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tsoracle.h"
#include "tso.h"

/*
 * Two kinds of tests (docs/allocator.md, "Tests"):
 *
 * - Deterministic unit tests, one or more per function and edge.
 * - A seeded property test: a simulation of several nodes, each with its own
 *   allocator and skewed, jumping clocks, where the test plays Raft (terms,
 *   a durable max of committed marks, commits, failures, late and reordered
 *   notifications, deposed leaders that are not told). After every step it
 *   checks the safety properties (P*, G*, I3), a spec model of every
 *   allocator field (M) and, now and then, liveness (L).
 *
 * The seed comes from argv[1], else $TSO_SEED, else the time; the number of
 * simulated operations from $TSO_OPS (default PROP_DEFAULT_OPS). Both are
 * printed, and a failure prints the command line that reproduces it, and the
 * trace of the steps that led to it.
 *
 * Built with -DTA_EXPECT_BROKEN against a deliberately broken alloc.c (see
 * the Makefile), the binary runs only the positive control: the checker must
 * find a safety violation.
 */

/* ---- clocks and sizes used by the tests ---------------------------------- */

/* 2023-11-14T22:13:20Z in Unix ms: a realistic wall clock. */
#define T0_MS           UINT64_C(1700000000000)
/* An arbitrary monotonic clock reading, in ms. */
#define MONO0_MS        UINT64_C(5000000)
/* The new-leader wait with the default config: 200 ms * 1.1. */
#define DEFAULT_WAIT_MS UINT64_C(220)

/* Property test: operations per run, and per segment (one simulation). */
#define PROP_DEFAULT_OPS      UINT64_C(5000000)
#define PROP_SEGMENT_OPS      UINT64_C(100000)
/* Every PROP_NEAR_END_EVERY-th segment starts near the end of the range. */
#define PROP_NEAR_END_EVERY   5
/* The near-end segments start at most this many ms before the end of the
 * range (TSO_PHYSICAL_MAX): most reach it halfway through. */
#define PROP_NEAR_END_MS      UINT64_C(1000000)
/* The dedicated near-end run starts closer, and always reaches it in its
 * operations: TSO_OPS / 10, at least PROP_NEAR_END_MIN_OPS. */
#define PROP_VERY_NEAR_END_MS UINT64_C(300000)
#define PROP_NEAR_END_MIN_OPS UINT64_C(100000)
/* Positive control: seeds tried, and operations per seed. */
#define CONTROL_SEEDS         20
#define CONTROL_OPS           UINT64_C(200000)

static uint64_t g_seed;
static uint64_t g_ops = PROP_DEFAULT_OPS;
static const char *g_argv0 = "test_alloc";

static ta_clock at(uint64_t wall_ms, uint64_t mono_ms)
{
	return (ta_clock){.wall_ms = wall_ms, .mono_ms = mono_ms};
}

/* The name of the first field in which x and y differ, or NULL. */
static const char *alloc_diff(const ta_alloc *x, const ta_alloc *y, bool ignore_starved)
{
#define ALLOC_DIFF(f)                                                                                        \
	do {                                                                                                 \
		if (x->f != y->f)                                                                            \
			return #f;                                                                           \
	} while (0)
	ALLOC_DIFF(cfg.window_ahead_ms);
	ALLOC_DIFF(cfg.extend_margin_ms);
	ALLOC_DIFF(cfg.max_ahead_ms);
	ALLOC_DIFF(cfg.lease_ms);
	ALLOC_DIFF(cfg.drift_permille);
	ALLOC_DIFF(epoch);
	ALLOC_DIFF(fenced);
	ALLOC_DIFF(fence_mark);
	ALLOC_DIFF(high_water_ms);
	ALLOC_DIFF(last);
	if (!ignore_starved)
		ALLOC_DIFF(starved);
	ALLOC_DIFF(ext_inflight);
	ALLOC_DIFF(ext_mark);
	ALLOC_DIFF(lease_not_before);
	ALLOC_DIFF(lease_renewed_at);
	ALLOC_DIFF(grants);
	ALLOC_DIFF(timestamps);
	ALLOC_DIFF(last_issued);
#undef ALLOC_DIFF
	return NULL;
}

#define assert_unchanged(before, after)                                                                      \
	do {                                                                                                 \
		const char *diff_ = alloc_diff((before), (after), false);                                    \
		if (diff_ != NULL)                                                                           \
			fail_msg("field %s changed", diff_);                                                 \
	} while (0)

#ifndef TA_EXPECT_BROKEN

/* ---- deterministic unit tests -------------------------------------------- */

static ta_clock later(ta_clock c, uint64_t ms)
{
	return at(c.wall_ms + ms, c.mono_ms + ms);
}

static void init_default(ta_alloc *a)
{
	ta_config cfg;

	ta_config_default(&cfg);
	ta_init(a, &cfg);
}

/*
 * Makes a the serving leader of epoch (barrier mark high_water_ms, won at c):
 * the fence commits at once, then a proposal made at the end of the
 * new-leader wait commits. Returns that clock, the first one serving.
 */
static ta_clock serve(ta_alloc *a, uint64_t epoch, uint64_t high_water_ms, ta_clock c)
{
	uint64_t fence = ta_lead_begin(a, epoch, high_water_ms, false, 0, c);
	uint64_t mark;

	assert_int_not_equal(fence, 0);
	ta_extension_commit(a, epoch, fence, c.mono_ms);
	assert_true(a->fenced);
	c = later(c, a->lease_not_before - c.mono_ms);
	assert_true(ta_extension_due(a, c)); /* the fence's lease is too old */
	mark = ta_extension_prepare(a, c);
	assert_int_not_equal(mark, 0);
	ta_extension_commit(a, epoch, mark, c.mono_ms);
	assert_false(a->ext_inflight);
	assert_true(ta_serving(a, c));
	return c;
}

/* Grants until the last timestamp of ms H is handed out. */
static void fill_to_high_water(ta_alloc *a, ta_clock c)
{
	uint64_t first;
	uint64_t left;
	uint32_t n;

	while (a->last < tso_last_of_ms(a->high_water_ms)) {
		left = tso_last_of_ms(a->high_water_ms) - a->last;
		n = left > TA_MAX_GRANT ? TA_MAX_GRANT : (uint32_t)left;
		assert_int_equal(ta_grant(a, c, n, &first), TA_OK);
	}
	assert_int_equal(a->last, tso_last_of_ms(a->high_water_ms));
}

static void test_config_default_is_valid(void **state)
{
	ta_config cfg;
	char err[128] = "";

	(void)state;
	ta_config_default(&cfg);
	assert_int_equal(cfg.window_ahead_ms, TA_DEFAULT_WINDOW_AHEAD_MS);
	assert_int_equal(cfg.extend_margin_ms, TA_DEFAULT_EXTEND_MARGIN_MS);
	assert_int_equal(cfg.max_ahead_ms, TA_DEFAULT_MAX_AHEAD_MS);
	assert_int_equal(cfg.lease_ms, TA_DEFAULT_LEASE_MS);
	assert_int_equal(cfg.drift_permille, TA_DEFAULT_DRIFT_PERMILLE);
	assert_int_equal(ta_config_check(&cfg, err, sizeof(err)), 0);
}

static void test_config_check_names_field(void **state)
{
	static const struct {
		uint64_t window, margin, max_ahead, lease;
		uint32_t drift;
		const char *field, *value;
	} bad[] = {
	    {0, 2000, 60000, 600, 100, "window_ahead_ms", "0"},
	    {3000, 0, 60000, 600, 100, "extend_margin_ms", "0"},
	    {3000, 2000, 0, 600, 100, "max_ahead_ms", "0"},
	    {3000, 2000, 60000, 0, 100, "lease_ms", "0"},
	    {3000, 2000, 60000, 600, 0, "drift_permille", "0"},
	    {3000, 3000, 60000, 600, 100, "extend_margin_ms", "3000"},
	    {3000, 4000, 60000, 600, 100, "extend_margin_ms", "4000"},
	    {70000, 2000, 60000, 600, 100, "window_ahead_ms", "70000"},
	    {3000, 2000, 60000, 2, 100, "lease_ms", "2"},
	    {3000, 2000, 60000, 600, 1001, "drift_permille", "1001"},
	};
	ta_config cfg;
	char err[128];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cfg = (ta_config){bad[i].window, bad[i].margin, bad[i].max_ahead, bad[i].lease, bad[i].drift};
		err[0] = '\0';
		assert_int_equal(ta_config_check(&cfg, err, sizeof(err)), -1);
		if (strstr(err, bad[i].field) == NULL || strstr(err, bad[i].value) == NULL)
			fail_msg("case %zu: \"%s\" should name %s and %s", i, err, bad[i].field,
				 bad[i].value);
	}
	/* The edges that are allowed. */
	cfg = (ta_config){3000, 2999, 3000, 3, 1000};
	assert_int_equal(ta_config_check(&cfg, err, sizeof(err)), 0);
}

static void test_config_check_small_buffer(void **state)
{
	ta_config cfg;
	char err[8];

	(void)state;
	ta_config_default(&cfg);
	cfg.lease_ms = 0;
	memset(err, 'x', sizeof(err));
	assert_int_equal(ta_config_check(&cfg, err, sizeof(err)), -1);
	assert_true(strlen(err) < sizeof(err));
	assert_int_equal(ta_config_check(&cfg, NULL, 0), -1);
}

static void test_init_not_leader(void **state)
{
	ta_alloc a;
	ta_alloc before;
	uint64_t first = 7;
	ta_clock c = at(T0_MS, MONO0_MS);

	(void)state;
	init_default(&a);
	before = a;
	assert_int_equal(a.epoch, 0);
	assert_int_equal(a.high_water_ms, 0);
	assert_int_equal(ta_grant(&a, c, 1, &first), TA_NOT_LEADER);
	assert_int_equal(first, 7);
	assert_false(ta_serving(&a, c));
	assert_false(ta_extension_due(&a, c));
	assert_int_equal(ta_extension_prepare(&a, c), 0);
	assert_unchanged(&before, &a);
}

static void test_lead_begin_clock_ahead(void **state)
{
	ta_alloc a;
	ta_clock c = at(T0_MS, MONO0_MS);

	(void)state;
	init_default(&a);
	assert_int_equal(ta_lead_begin(&a, 1, 1000, false, 0, c), T0_MS + TA_DEFAULT_WINDOW_AHEAD_MS);
	assert_int_equal(a.epoch, 1);
	assert_false(a.fenced);
	assert_int_equal(a.fence_mark, T0_MS + TA_DEFAULT_WINDOW_AHEAD_MS);
	assert_int_equal(a.high_water_ms, 1000);
	assert_int_equal(a.last, tso_first_of_ms(T0_MS) - 1); /* floor = now */
	assert_true(a.ext_inflight);
	assert_int_equal(a.ext_mark, a.fence_mark);
	assert_int_equal(a.lease_not_before, MONO0_MS + DEFAULT_WAIT_MS);
	assert_int_equal(a.lease_renewed_at, 0);
	assert_false(a.starved);
}

/*
 * Mixed leases (tsoracle.h, I4): a new leader waits the longest of its own
 * wait and the one the log says earlier leaders are owed (a member with a
 * longer lease led), and neither after a release. Its own wait is its
 * lease stretched by its drift, rounded up.
 */
static void test_lead_begin_predecessor_wait(void **state)
{
	ta_alloc a;
	ta_config cfg;
	ta_clock c = at(T0_MS, MONO0_MS);
	uint64_t fence;
	const uint64_t long_wait = 3190; /* lease 2900 ms, drift 10 % */

	(void)state;
	ta_config_default(&cfg);
	assert_int_equal(ta_lease_wait_ms(&cfg), DEFAULT_WAIT_MS);
	cfg.lease_ms = 2900;
	assert_int_equal(ta_lease_wait_ms(&cfg), long_wait);
	cfg.lease_ms = 201; /* 221.1: rounded up */
	assert_int_equal(ta_lease_wait_ms(&cfg), 222);

	init_default(&a);
	fence = ta_lead_begin(&a, 2, 1000, false, long_wait, c);
	assert_int_equal(a.lease_not_before, MONO0_MS + long_wait);
	ta_extension_commit(&a, 2, fence, c.mono_ms);
	c = later(c, DEFAULT_WAIT_MS); /* its own wait is over, not the log's */
	assert_false(ta_established(&a, c));
	assert_false(ta_serving(&a, c));
	c = later(c, long_wait - DEFAULT_WAIT_MS);
	assert_true(ta_established(&a, c));

	/* A shorter wait in the log: its own counts. */
	init_default(&a);
	c = at(T0_MS, MONO0_MS);
	ta_lead_begin(&a, 3, 1000, false, DEFAULT_WAIT_MS / 2, c);
	assert_int_equal(a.lease_not_before, MONO0_MS + DEFAULT_WAIT_MS);

	/* After a release every earlier leader has stopped for good. */
	init_default(&a);
	ta_lead_begin(&a, 4, 1000, true, long_wait, c);
	assert_int_equal(a.lease_not_before, MONO0_MS);

	/* A wait past the clock's range saturates: never serving, no wrap. */
	init_default(&a);
	ta_lead_begin(&a, 5, 1000, false, UINT64_MAX, c);
	assert_int_equal(a.lease_not_before, UINT64_MAX);
}

/*
 * A leader whose predecessor released (planned handover) serves as soon as
 * its fence commits: no new-leader wait, and it is established at once.
 * Without the release, it is neither established nor serving before the
 * wait is over, even with the fence committed.
 */
static void test_lead_begin_after_release(void **state)
{
	ta_alloc a, b;
	ta_clock c = at(T0_MS, MONO0_MS);
	uint64_t fence, first;

	(void)state;
	init_default(&a);
	fence = ta_lead_begin(&a, 2, 1000, true, 0, c);
	assert_int_equal(a.lease_not_before, MONO0_MS);
	assert_false(ta_established(&a, c));
	assert_int_equal(ta_grant(&a, c, 1, &first), TA_FENCING);
	ta_extension_commit(&a, 2, fence, c.mono_ms);
	assert_true(ta_established(&a, c));
	assert_true(ta_serving(&a, c));
	assert_int_equal(ta_grant(&a, c, 1, &first), TA_OK);
	assert_int_equal(first, tso_first_of_ms(T0_MS));

	init_default(&b);
	fence = ta_lead_begin(&b, 2, 1000, false, 0, c);
	ta_extension_commit(&b, 2, fence, c.mono_ms);
	assert_false(ta_established(&b, c));
	assert_int_equal(ta_grant(&b, c, 1, &first), TA_LEASE);
	c = later(c, DEFAULT_WAIT_MS - 1);
	assert_false(ta_established(&b, c));
	c = later(c, 1);
	assert_true(ta_established(&b, c));
	/* Established says nothing of the lease: it lapses without renewals,
	 * but no earlier leader comes back. */
	c = later(c, TA_DEFAULT_LEASE_MS);
	assert_false(ta_serving(&b, c));
	assert_true(ta_established(&b, c));
	ta_lead_end(&b);
	assert_false(ta_established(&b, c));
}

static void test_lead_begin_clock_behind(void **state)
{
	ta_alloc a;
	const uint64_t high = T0_MS + 1000;

	(void)state;
	init_default(&a);
	/* floor = H + 1, fence = floor + window (the cap, now + max_ahead, is
	 * beyond it). */
	assert_int_equal(ta_lead_begin(&a, 1, high, false, 0, at(T0_MS, MONO0_MS)),
			 high + 1 + TA_DEFAULT_WINDOW_AHEAD_MS);
	assert_int_equal(a.last, tso_first_of_ms(high + 1) - 1);
	assert_int_equal(tso_physical(a.last + 1), high + 1);
}

/*
 * I7: a start floor S above H + 1 and the clock is the fence's floor: the
 * first grant is at S, and while S is past now + max_ahead grants wait for
 * the clock (I6), then go on without another fence.
 */
static void test_lead_begin_start_floor(void **state)
{
	ta_alloc a;
	const uint64_t offset_ms = 500;
	const uint64_t start_floor = T0_MS + TA_DEFAULT_MAX_AHEAD_MS + offset_ms + 1;
	ta_clock c = at(T0_MS, MONO0_MS);
	uint64_t fence, first;

	(void)state;
	init_default(&a);
	ta_set_start_floor(&a, start_floor, offset_ms + 1);
	fence = ta_lead_begin(&a, 1, T0_MS - 1000, false, 0, c);
	assert_int_equal(fence, start_floor); /* the cap now + max_ahead is below it */
	assert_int_equal(a.last, tso_first_of_ms(start_floor) - 1);
	ta_extension_commit(&a, 1, fence, c.mono_ms);
	c = later(c, DEFAULT_WAIT_MS);
	ta_extension_commit(&a, 1, ta_extension_prepare(&a, c), c.mono_ms);
	assert_true(ta_serving(&a, c));
	/* Above the cap (I6): wait for the clock, up to offset + 1 ms. */
	assert_int_equal(ta_grant(&a, c, 1, &first), TA_WAIT);
	c = at(start_floor - TA_DEFAULT_MAX_AHEAD_MS, c.mono_ms);
	assert_int_equal(ta_grant(&a, c, 1, &first), TA_OK);
	assert_int_equal(first, tso_first_of_ms(start_floor));
	/* A clock that stepped back an hour below its reading at the start:
	 * the floor is capped at offset + 1 ms past now + max_ahead, so
	 * grants wait no longer than that. */
	init_default(&a);
	ta_set_start_floor(&a, start_floor, offset_ms + 1);
	c = at(T0_MS - 3600 * 1000, MONO0_MS);
	fence = ta_lead_begin(&a, 1, 1000, false, 0, c);
	assert_int_equal(fence, c.wall_ms + TA_DEFAULT_MAX_AHEAD_MS + offset_ms + 1);
	/* A floor below H + 1 or the clock changes nothing. */
	init_default(&a);
	ta_set_start_floor(&a, T0_MS - 1, offset_ms + 1);
	assert_int_equal(ta_lead_begin(&a, 1, 1000, false, 0, at(T0_MS, MONO0_MS)),
			 T0_MS + TA_DEFAULT_WINDOW_AHEAD_MS);
	assert_int_equal(a.last, tso_first_of_ms(T0_MS) - 1);
}

/*
 * The operator's floor F (an advance-to): grants start at F, and the cap
 * I6 moves with it (now reads max(clock, F)) rather than stalling grants
 * until the clock reaches F; a lower F changes nothing; a new leader
 * starts at F too.
 */
static void test_floor_lifts_cap(void **state)
{
	ta_alloc a;
	const uint64_t floor = T0_MS + 3600 * 1000; /* an hour ahead */
	ta_clock c;
	uint64_t first, mark;

	(void)state;
	init_default(&a);
	c = serve(&a, 1, 0, at(T0_MS, MONO0_MS));
	assert_int_equal(ta_grant(&a, c, 1, &first), TA_OK);
	assert_true(tso_physical(first) < floor);
	ta_raise_floor(&a, floor);
	ta_raise_floor(&a, floor - 1); /* never lowers */
	assert_int_equal(a.floor_ms, floor);
	/* H is below F: the window is short, an extension is due at once and
	 * reaches F + window, within F + max_ahead. */
	assert_int_equal(ta_grant(&a, c, 1, &first), TA_WAIT);
	assert_true(ta_extension_due(&a, c));
	mark = ta_extension_prepare(&a, c);
	assert_int_equal(mark, floor + TA_DEFAULT_WINDOW_AHEAD_MS);
	ta_extension_commit(&a, 1, mark, c.mono_ms);
	assert_int_equal(ta_grant(&a, c, 1, &first), TA_OK);
	assert_int_equal(first, tso_first_of_ms(floor));
	/* Every grant stays within max(clock, F) + max_ahead (I6). */
	fill_to_high_water(&a, c);
	assert_true(tso_physical(a.last) <= floor + TA_DEFAULT_MAX_AHEAD_MS);
	/* A new leader that read F after its barrier starts at F, with its
	 * fence within F + max_ahead. */
	init_default(&a);
	ta_raise_floor(&a, floor);
	assert_int_equal(ta_lead_begin(&a, 2, 1000, false, 0, c), floor + TA_DEFAULT_WINDOW_AHEAD_MS);
	assert_int_equal(a.last, tso_first_of_ms(floor) - 1);
}

static void test_lead_begin_cap(void **state)
{
	ta_alloc a;
	uint64_t high;

	(void)state;
	/* The cap cuts the window short: fence = now + max_ahead. */
	init_default(&a);
	high = T0_MS + TA_DEFAULT_MAX_AHEAD_MS - 1000;
	assert_int_equal(ta_lead_begin(&a, 1, high, false, 0, at(T0_MS, MONO0_MS)),
			 T0_MS + TA_DEFAULT_MAX_AHEAD_MS);
	/* Clock behind H by more than max_ahead: the fence is the floor itself. */
	init_default(&a);
	high = T0_MS + 100000;
	assert_int_equal(ta_lead_begin(&a, 1, high, false, 0, at(T0_MS, MONO0_MS)), high + 1);
	assert_int_equal(a.last, tso_first_of_ms(high + 1) - 1);
}

static void test_lead_begin_keeps_known_high_water(void **state)
{
	ta_alloc a;

	(void)state;
	init_default(&a);
	a.high_water_ms = T0_MS + 5000; /* learnt in an earlier epoch */
	ta_lead_begin(&a, 3, T0_MS, false, 0, at(T0_MS, MONO0_MS));
	assert_int_equal(a.high_water_ms, T0_MS + 5000);
	assert_int_equal(a.last, tso_first_of_ms(T0_MS + 5001) - 1);
}

static void test_lead_begin_refused(void **state)
{
	ta_alloc a;
	ta_alloc before;

	(void)state;
	init_default(&a);
	before = a;
	/* The floor would pass the end of the range. */
	assert_int_equal(ta_lead_begin(&a, 1, TSO_PHYSICAL_MAX, false, 0, at(T0_MS, MONO0_MS)), 0);
	assert_unchanged(&before, &a);
	assert_int_equal(ta_lead_begin(&a, 1, UINT64_MAX, false, 0, at(T0_MS, MONO0_MS)), 0);
	assert_unchanged(&before, &a);
	/* Epoch 0 means "not leader". */
	assert_int_equal(ta_lead_begin(&a, 0, 0, false, 0, at(T0_MS, MONO0_MS)), 0);
	assert_unchanged(&before, &a);
}

static void test_lead_begin_near_end(void **state)
{
	ta_alloc a;

	(void)state;
	init_default(&a);
	/* The last millisecond is still a floor. */
	assert_int_equal(ta_lead_begin(&a, 1, TSO_PHYSICAL_MAX - 1, false, 0, at(T0_MS, MONO0_MS)),
			 TSO_PHYSICAL_MAX);
	/* The fence is clamped to the end of the range. */
	init_default(&a);
	assert_int_equal(ta_lead_begin(&a, 1, 0, false, 0, at(TSO_PHYSICAL_MAX - 100, MONO0_MS)),
			 TSO_PHYSICAL_MAX);
	assert_int_equal(a.last, tso_first_of_ms(TSO_PHYSICAL_MAX - 100) - 1);
}

static void test_wall_past_end_is_clamped(void **state)
{
	ta_alloc a;
	ta_clock c;
	uint64_t first;
	ta_alloc before;

	(void)state;
	init_default(&a);
	c = serve(&a, 1, 0, at(TSO_PHYSICAL_MAX + 5000, MONO0_MS));
	assert_int_equal(a.high_water_ms, TSO_PHYSICAL_MAX);
	assert_int_equal(ta_grant(&a, c, 1, &first), TA_OK);
	assert_int_equal(first, tso_first_of_ms(TSO_PHYSICAL_MAX));
	assert_int_equal(ta_grant(&a, c, (uint32_t)(TSO_LOGICAL_PER_MS - 1), &first), TA_OK);
	assert_int_equal(a.last, TSO_MAX);
	before = a;
	assert_int_equal(ta_grant(&a, c, 1, &first), TA_EXHAUSTED);
	assert_unchanged(&before, &a);
}

static void test_grant_fencing(void **state)
{
	ta_alloc a;
	uint64_t fence;
	uint64_t first;
	ta_clock c = at(T0_MS, MONO0_MS);

	(void)state;
	init_default(&a);
	fence = ta_lead_begin(&a, 2, 0, false, 0, c);
	assert_int_equal(ta_grant(&a, c, 1, &first), TA_FENCING);
	assert_false(ta_serving(&a, c));
	/* Nor does a commit of another epoch, or below the fence mark, fence. */
	ta_extension_commit(&a, 1, fence, c.mono_ms);
	assert_false(a.fenced);
	ta_extension_commit(&a, 2, fence - 1, c.mono_ms);
	assert_false(a.fenced);
	assert_true(a.ext_inflight); /* that was not the fence */
	ta_extension_commit(&a, 2, fence, c.mono_ms);
	assert_true(a.fenced);
	assert_false(a.ext_inflight);
}

static void test_grant_new_leader_wait(void **state)
{
	ta_alloc a;
	uint64_t fence;
	uint64_t first;
	ta_clock c = at(T0_MS, MONO0_MS);
	ta_clock renew = later(c, TA_DEFAULT_LEASE_MS / 2);

	(void)state;
	init_default(&a);
	fence = ta_lead_begin(&a, 1, 0, false, 0, c);
	ta_extension_commit(&a, 1, fence, c.mono_ms);
	/* The fence's own lease ends before the wait does. */
	assert_int_equal(ta_grant(&a, later(c, 1), 1, &first), TA_LEASE);
	assert_int_equal(ta_grant(&a, later(c, DEFAULT_WAIT_MS), 1, &first), TA_LEASE);
	/* A renewal proposed inside the wait carries the lease past it. */
	assert_int_not_equal(ta_extension_prepare(&a, renew), 0);
	ta_extension_commit(&a, 1, a.ext_mark, renew.mono_ms);
	assert_int_equal(ta_grant(&a, later(c, DEFAULT_WAIT_MS - 1), 1, &first), TA_LEASE);
	assert_false(ta_serving(&a, later(c, DEFAULT_WAIT_MS - 1)));
	assert_true(ta_serving(&a, later(c, DEFAULT_WAIT_MS)));
	assert_int_equal(ta_grant(&a, later(c, DEFAULT_WAIT_MS), 1, &first), TA_OK);
	assert_int_equal(first, tso_first_of_ms(T0_MS + DEFAULT_WAIT_MS));
}

static void test_grant_lease_expiry(void **state)
{
	ta_alloc a;
	ta_alloc before;
	uint64_t first;
	ta_clock c;

	(void)state;
	init_default(&a);
	c = serve(&a, 1, 0, at(T0_MS, MONO0_MS));
	/* The lease is [s, s + lease) with s the latest commit's proposal time. */
	assert_int_equal(a.lease_renewed_at, c.mono_ms);
	assert_int_equal(ta_grant(&a, later(c, TA_DEFAULT_LEASE_MS - 1), 1, &first), TA_OK);
	before = a;
	assert_int_equal(ta_grant(&a, later(c, TA_DEFAULT_LEASE_MS), 1, &first), TA_LEASE);
	assert_unchanged(&before, &a);
	assert_false(ta_serving(&a, later(c, TA_DEFAULT_LEASE_MS)));
	/* A renewal committed later brings it back. */
	c = later(c, 2 * TA_DEFAULT_LEASE_MS);
	assert_true(ta_extension_due(&a, c));
	assert_int_not_equal(ta_extension_prepare(&a, c), 0);
	ta_extension_commit(&a, 1, a.ext_mark, c.mono_ms);
	assert_int_equal(ta_grant(&a, c, 1, &first), TA_OK);
}

static void test_grant_sequence(void **state)
{
	ta_alloc a;
	uint64_t first;
	uint64_t prev_last;
	ta_clock c;

	(void)state;
	init_default(&a);
	c = serve(&a, 1, 0, at(T0_MS, MONO0_MS));
	assert_int_equal(ta_grant(&a, c, 1, &first), TA_OK);
	assert_int_equal(first, tso_first_of_ms(c.wall_ms));
	assert_int_equal(a.last, first);
	/* Same millisecond: contiguous. */
	assert_int_equal(ta_grant(&a, c, 10, &first), TA_OK);
	assert_int_equal(first, tso_first_of_ms(c.wall_ms) + 1);
	assert_int_equal(a.last, first + 9);
	assert_int_equal(a.grants, 2);
	assert_int_equal(a.timestamps, 11);
	assert_int_equal(a.last_issued, a.last);
	/* The clock moves on: the grant jumps to its millisecond. */
	c = later(c, 1);
	assert_int_equal(ta_grant(&a, c, 1, &first), TA_OK);
	assert_int_equal(first, tso_first_of_ms(c.wall_ms));
	/* The clock stands still, then steps back 4 s (less than max_ahead):
	 * issuance goes on. */
	prev_last = a.last;
	assert_int_equal(ta_grant(&a, c, 3, &first), TA_OK);
	assert_int_equal(first, prev_last + 1);
	c.wall_ms -= 4000;
	prev_last = a.last;
	assert_int_equal(ta_grant(&a, c, 1, &first), TA_OK);
	assert_int_equal(first, prev_last + 1);
	/* A full-size grant, across millisecond boundaries. */
	prev_last = a.last;
	assert_int_equal(ta_grant(&a, c, TA_MAX_GRANT, &first), TA_OK);
	assert_int_equal(first, prev_last + 1);
	assert_int_equal(a.last, first + TA_MAX_GRANT - 1);
}

/* ta_room at c is want (< TA_MAX_GRANT): one more waits, exactly that
 * many are granted, and then nothing is left. */
static void assert_room_exact(ta_alloc *a, ta_clock c, uint64_t want)
{
	uint64_t first;

	assert_int_equal(ta_room(a, c), want);
	assert_int_equal(ta_grant(a, c, (uint32_t)want + 1, &first), TA_WAIT);
	assert_int_equal(ta_grant(a, c, (uint32_t)want, &first), TA_OK);
	assert_int_equal(ta_room(a, c), 0);
}

/* I6: no grant reaches past now + max_ahead, even below H; it waits for
 * the clock, and ta_room says so. */
static void test_grant_near_clock(void **state)
{
	ta_alloc a;
	uint64_t first;
	ta_clock c;
	ta_clock back;

	(void)state;
	init_default(&a);
	c = serve(&a, 1, 0, at(T0_MS, MONO0_MS));
	/* Every grant of a full window ends within max_ahead of its clock. */
	fill_to_high_water(&a, c);
	assert_true(tso_physical(a.last) <= c.wall_ms + TA_DEFAULT_MAX_AHEAD_MS);
	/* H is committed up to now + window_ahead, but the clock steps back
	 * 10 s: nothing may be granted until it is back within max_ahead. */
	ta_extension_commit(&a, 1, c.wall_ms + TA_DEFAULT_MAX_AHEAD_MS, c.mono_ms);
	back = c;
	back.wall_ms -= 10000;
	assert_int_equal(ta_room(&a, back), 0);
	assert_int_equal(ta_grant(&a, back, 1, &first), TA_WAIT);
	assert_true(a.starved);
	/* The clock has caught up to last + 1 - max_ahead: one ms of room. */
	back.wall_ms = tso_physical(a.last + 1) - TA_DEFAULT_MAX_AHEAD_MS;
	assert_room_exact(&a, back, tso_last_of_ms(tso_physical(a.last + 1)) - a.last);
}

/* ta_room: the largest grant that succeeds, capped at TA_MAX_GRANT. */
static void test_room(void **state)
{
	ta_alloc a;
	uint64_t first;
	ta_clock c;

	(void)state;
	init_default(&a);
	c = at(T0_MS, MONO0_MS);
	assert_int_equal(ta_room(&a, c), 0); /* not leader */
	c = serve(&a, 1, 0, c);
	assert_int_equal(ta_room(&a, c), TA_MAX_GRANT);
	assert_int_equal(ta_room(&a, at(c.wall_ms, c.mono_ms + TA_DEFAULT_LEASE_MS)), 0); /* lease */
	/* Leave less than one full grant below H. */
	while (tso_last_of_ms(a.high_water_ms) - a.last > TA_MAX_GRANT)
		assert_int_equal(ta_grant(&a, c, TA_MAX_GRANT, &first), TA_OK);
	assert_room_exact(&a, c, tso_last_of_ms(a.high_water_ms) - a.last);
}

static void test_grant_invalid(void **state)
{
	ta_alloc a;
	ta_alloc before;
	uint64_t first = 7;
	ta_clock c;

	(void)state;
	init_default(&a);
	assert_int_equal(ta_grant(&a, at(T0_MS, MONO0_MS), 0, &first), TA_INVALID);
	c = serve(&a, 1, 0, at(T0_MS, MONO0_MS));
	before = a;
	assert_int_equal(ta_grant(&a, c, 0, &first), TA_INVALID);
	assert_int_equal(ta_grant(&a, c, TA_MAX_GRANT + 1, &first), TA_INVALID);
	assert_int_equal(ta_grant(&a, c, UINT32_MAX, &first), TA_INVALID);
	assert_int_equal(first, 7);
	assert_unchanged(&before, &a);
}

static void test_grant_wait_then_extension(void **state)
{
	ta_alloc a;
	ta_alloc before;
	uint64_t first;
	uint64_t high;
	uint64_t mark;
	ta_clock c;

	(void)state;
	init_default(&a);
	c = serve(&a, 1, 0, at(T0_MS, MONO0_MS));
	high = a.high_water_ms;
	fill_to_high_water(&a, c); /* the very last timestamp of ms H is granted */
	before = a;
	assert_int_equal(ta_grant(&a, c, 1, &first), TA_WAIT);
	assert_true(a.starved);
	assert_null(alloc_diff(&before, &a, true)); /* nothing consumed */
	/* Window not short (the clock is far below H) but starved: due. */
	assert_true(a.high_water_ms >= c.wall_ms + TA_DEFAULT_EXTEND_MARGIN_MS);
	assert_true(ta_extension_due(&a, c));
	mark = ta_extension_prepare(&a, c);
	/* H + 1 + window_ahead is past the cap, now + max_ahead. */
	assert_true(high + 1 + TA_DEFAULT_WINDOW_AHEAD_MS > c.wall_ms + TA_DEFAULT_MAX_AHEAD_MS);
	assert_int_equal(mark, c.wall_ms + TA_DEFAULT_MAX_AHEAD_MS);
	assert_int_equal(ta_grant(&a, c, 1, &first), TA_WAIT); /* not committed yet */
	ta_extension_commit(&a, 1, mark, c.mono_ms);
	assert_false(a.starved);
	assert_int_equal(ta_grant(&a, c, 1, &first), TA_OK);
	assert_int_equal(first, tso_first_of_ms(high + 1));
}

static void test_grant_exhausted(void **state)
{
	ta_alloc a;
	ta_alloc before;
	uint64_t first;
	ta_clock c;

	(void)state;
	init_default(&a);
	/* Only the last millisecond of the range is left (and the clock is
	 * there too: I6 would make a clock far behind wait instead). */
	c = serve(&a, 1, TSO_PHYSICAL_MAX - 1, at(TSO_PHYSICAL_MAX - 1, MONO0_MS));
	assert_int_equal(a.high_water_ms, TSO_PHYSICAL_MAX);
	before = a;
	/* A full-size grant (64 ms) does not fit, a smaller one does. */
	assert_int_equal(ta_grant(&a, c, TA_MAX_GRANT, &first), TA_EXHAUSTED);
	assert_unchanged(&before, &a);
	assert_int_equal(ta_grant(&a, c, (uint32_t)(TSO_LOGICAL_PER_MS - 1), &first), TA_OK);
	assert_int_equal(first, tso_first_of_ms(TSO_PHYSICAL_MAX));
	assert_int_equal(ta_grant(&a, c, 2, &first), TA_EXHAUSTED);
	assert_int_equal(ta_grant(&a, c, 1, &first), TA_OK);
	assert_int_equal(first, TSO_MAX);
	before = a;
	assert_int_equal(ta_grant(&a, c, 1, &first), TA_EXHAUSTED);
	assert_unchanged(&before, &a);
	/* No extension can help, so none is due, and no new leader can start. */
	assert_false(ta_extension_due(&a, c));
	ta_lead_end(&a);
	assert_int_equal(ta_lead_begin(&a, 2, TSO_PHYSICAL_MAX, false, 0, c), 0);
}

static void test_extension_due(void **state)
{
	ta_alloc a;
	ta_clock c;
	ta_clock t;
	uint64_t fence;

	(void)state;
	init_default(&a);
	c = at(T0_MS, MONO0_MS);
	fence = ta_lead_begin(&a, 1, 0, false, 0, c);
	assert_false(ta_extension_due(&a, c)); /* the fence is in flight */
	/* A failed fence is due again, and re-proposed even if the clock went
	 * back meanwhile. */
	ta_extension_failed(&a, 1);
	assert_true(ta_extension_due(&a, c));
	t = c;
	t.wall_ms -= 10000;
	assert_int_equal(ta_extension_prepare(&a, t), fence);
	ta_extension_commit(&a, 1, fence, t.mono_ms);
	assert_true(a.fenced);

	c = serve(&a, 2, 0, c);
	/* Fresh lease, long window, not starved: nothing due. */
	assert_false(ta_extension_due(&a, c));
	assert_false(ta_extension_due(&a, at(c.wall_ms, c.mono_ms + TA_DEFAULT_LEASE_MS / 3 - 1)));
	/* The lease is due every lease / 3. */
	assert_true(ta_extension_due(&a, at(c.wall_ms, c.mono_ms + TA_DEFAULT_LEASE_MS / 3)));
	/* The window is short once H < now + extend_margin. */
	t = at(a.high_water_ms - TA_DEFAULT_EXTEND_MARGIN_MS, c.mono_ms);
	assert_false(ta_extension_due(&a, t));
	t.wall_ms++;
	assert_true(ta_extension_due(&a, t));
	/* Not a leader: never due. */
	ta_lead_end(&a);
	assert_false(ta_extension_due(&a, t));
}

static void test_prepare_growth(void **state)
{
	ta_alloc a;
	uint64_t high;
	ta_clock c;

	(void)state;
	init_default(&a);
	c = serve(&a, 1, 0, at(T0_MS, MONO0_MS));
	high = a.high_water_ms;
	/* Short window, clock below H: max(H + 1, now) = H + 1. */
	c.wall_ms = high - TA_DEFAULT_EXTEND_MARGIN_MS + 1;
	assert_int_equal(ta_extension_prepare(&a, c), high + 1 + TA_DEFAULT_WINDOW_AHEAD_MS);
	assert_true(a.ext_inflight);
	assert_int_equal(a.ext_mark, high + 1 + TA_DEFAULT_WINDOW_AHEAD_MS);
	/* One in flight at a time. */
	assert_int_equal(ta_extension_prepare(&a, c), 0);
	assert_false(ta_extension_due(&a, c));
	ta_extension_failed(&a, 1);
	/* Clock jumped past H: max(H + 1, now) = now. */
	c.wall_ms = high + 10000;
	assert_int_equal(ta_extension_prepare(&a, c), c.wall_ms + TA_DEFAULT_WINDOW_AHEAD_MS);
}

static void test_prepare_pure_renewal(void **state)
{
	ta_alloc a;
	ta_alloc before;
	ta_clock c;

	(void)state;
	init_default(&a);
	c = serve(&a, 1, 0, at(T0_MS, MONO0_MS));
	c = at(c.wall_ms, c.mono_ms + TA_DEFAULT_LEASE_MS / 3);
	assert_true(ta_extension_due(&a, c));
	assert_int_equal(ta_extension_prepare(&a, c), a.high_water_ms);
	before = a;
	ta_extension_commit(&a, 1, a.high_water_ms, c.mono_ms);
	assert_int_equal(a.high_water_ms, before.high_water_ms);
	assert_int_equal(a.lease_renewed_at, c.mono_ms);
	assert_false(a.ext_inflight);
}

static void test_prepare_cap(void **state)
{
	ta_alloc a;
	uint64_t first;
	uint64_t high;
	ta_clock c;
	ta_clock back;

	(void)state;
	init_default(&a);
	c = serve(&a, 1, 0, at(T0_MS, MONO0_MS));
	fill_to_high_water(&a, c);
	assert_int_equal(ta_grant(&a, c, 1, &first), TA_WAIT);
	high = a.high_water_ms;
	/* The clock is 100 s back: H >= now + max_ahead, the cap is hit. */
	back = c;
	back.wall_ms -= 100000;
	assert_false(ta_extension_due(&a, back)); /* starved, but growth cannot help */
	assert_int_equal(ta_extension_prepare(&a, back), high);
	ta_extension_commit(&a, 1, high, back.mono_ms);
	assert_true(a.starved); /* H did not rise */
	/* A clock only partly back: the mark is capped at now + max_ahead. */
	back.wall_ms = high - TA_DEFAULT_MAX_AHEAD_MS + 1000;
	assert_true(ta_extension_due(&a, back));
	assert_int_equal(ta_extension_prepare(&a, back), back.wall_ms + TA_DEFAULT_MAX_AHEAD_MS);
	ta_extension_commit(&a, 1, back.wall_ms + TA_DEFAULT_MAX_AHEAD_MS, back.mono_ms);
	assert_false(a.starved);
	assert_int_equal(ta_grant(&a, back, 1, &first), TA_OK);
	assert_int_equal(first, tso_first_of_ms(high + 1));
}

static void test_commit_stale_epoch_ignored(void **state)
{
	ta_alloc a;
	ta_alloc before;
	ta_clock c;

	(void)state;
	init_default(&a);
	c = serve(&a, 5, 0, at(T0_MS, MONO0_MS));
	assert_int_not_equal(ta_extension_prepare(&a, later(c, 300)), 0);
	before = a;
	ta_extension_commit(&a, 4, a.high_water_ms + 100000, c.mono_ms + 100000);
	ta_extension_commit(&a, 0, a.high_water_ms + 100000, c.mono_ms + 100000);
	ta_extension_commit(&a, 6, a.high_water_ms + 100000, c.mono_ms + 100000);
	ta_extension_failed(&a, 4);
	ta_extension_failed(&a, 0);
	assert_unchanged(&before, &a);
	/* After leadership is lost, the old epoch's commits change nothing. */
	ta_lead_end(&a);
	before = a;
	ta_extension_commit(&a, 5, a.high_water_ms + 100000, c.mono_ms + 100000);
	ta_extension_failed(&a, 5);
	assert_unchanged(&before, &a);
}

static void test_commit_out_of_order(void **state)
{
	ta_alloc a;
	uint64_t high;
	ta_clock c;

	(void)state;
	init_default(&a);
	c = serve(&a, 1, 0, at(T0_MS, MONO0_MS));
	high = a.high_water_ms;
	ta_extension_commit(&a, 1, high + 200, c.mono_ms + 100);
	ta_extension_commit(&a, 1, high + 100, c.mono_ms + 50); /* older, later */
	assert_int_equal(a.high_water_ms, high + 200);
	assert_int_equal(a.lease_renewed_at, c.mono_ms + 100);
}

static void test_commit_clears_only_its_inflight(void **state)
{
	ta_alloc a;
	uint64_t mark;
	ta_clock c;

	(void)state;
	init_default(&a);
	c = serve(&a, 1, 0, at(T0_MS, MONO0_MS));
	c.wall_ms += 2000; /* short window */
	mark = ta_extension_prepare(&a, c);
	ta_extension_commit(&a, 1, mark - 1, c.mono_ms); /* an older proposal */
	assert_true(a.ext_inflight);
	ta_extension_commit(&a, 1, mark, c.mono_ms);
	assert_false(a.ext_inflight);
}

static void test_failed(void **state)
{
	ta_alloc a;
	ta_clock c;

	(void)state;
	init_default(&a);
	c = serve(&a, 3, 0, at(T0_MS, MONO0_MS));
	assert_int_not_equal(ta_extension_prepare(&a, later(c, 300)), 0);
	ta_extension_failed(&a, 2);
	assert_true(a.ext_inflight);
	ta_extension_failed(&a, 3);
	assert_false(a.ext_inflight);
	assert_int_not_equal(ta_extension_prepare(&a, later(c, 300)), 0);
}

static void test_lead_end(void **state)
{
	ta_alloc a;
	uint64_t first;
	uint64_t high;
	uint64_t issued;
	ta_clock c;

	(void)state;
	init_default(&a);
	c = serve(&a, 1, 0, at(T0_MS, MONO0_MS));
	assert_int_equal(ta_grant(&a, c, 5, &first), TA_OK);
	high = a.high_water_ms;
	issued = a.last_issued;
	ta_lead_end(&a);
	assert_int_equal(a.epoch, 0);
	assert_false(a.fenced);
	assert_false(a.ext_inflight);
	assert_false(ta_serving(&a, c));
	assert_int_equal(ta_grant(&a, c, 1, &first), TA_NOT_LEADER);
	assert_int_equal(ta_extension_prepare(&a, c), 0);
	assert_int_equal(a.high_water_ms, high);
	assert_int_equal(a.last_issued, issued);
	assert_int_equal(a.grants, 1);
	assert_int_equal(a.timestamps, 5);
	/* Leading again, even told an older mark and with the clock 30 s
	 * back, starts above everything handed out: once the clock is within
	 * max_ahead of it (I6). */
	c.wall_ms -= 30000;
	c = serve(&a, 2, 0, c);
	assert_int_equal(ta_grant(&a, c, 1, &first), TA_WAIT);
	c.wall_ms = high + 1 - TA_DEFAULT_MAX_AHEAD_MS;
	assert_int_equal(ta_grant(&a, c, 1, &first), TA_OK);
	assert_true(first > issued);
	assert_int_equal(first, tso_first_of_ms(high + 1));
}

static void test_lead_begin_while_leading(void **state)
{
	ta_alloc a;
	uint64_t first;
	uint64_t issued;
	ta_clock c;

	(void)state;
	init_default(&a);
	c = serve(&a, 1, 0, at(T0_MS, MONO0_MS));
	assert_int_equal(ta_grant(&a, c, TA_MAX_GRANT, &first), TA_OK);
	issued = a.last;
	/* A new term without ta_lead_end in between. */
	c = serve(&a, 2, 0, c);
	assert_int_equal(ta_grant(&a, c, 1, &first), TA_OK);
	assert_true(first > issued);
}

static void test_result_str(void **state)
{
	static const int results[] = {TA_OK,   TA_NOT_LEADER, TA_FENCING,  TA_LEASE,
				      TA_WAIT, TA_INVALID,    TA_EXHAUSTED};
	const char *seen[sizeof(results) / sizeof(results[0])];
	const char *p;
	size_t i;
	size_t j;

	(void)state;
	for (i = 0; i < sizeof(results) / sizeof(results[0]); i++) {
		seen[i] = ta_result_str(results[i]);
		assert_non_null(seen[i]);
		assert_true(strlen(seen[i]) > 0);
		for (p = seen[i]; *p != '\0'; p++)
			assert_false(isupper((unsigned char)*p));
		for (j = 0; j < i; j++)
			assert_string_not_equal(seen[i], seen[j]);
	}
	assert_string_equal(ta_result_str(TA_OK), "ok");
	assert_string_equal(ta_result_str(-1), "unknown result");
	assert_string_equal(ta_result_str(TA_EXHAUSTED + 1), "unknown result");
}

#endif /* !TA_EXPECT_BROKEN */

/* ---- the simulation ------------------------------------------------------- */

/* xoshiro256**, seeded by splitmix64: fast, and the same on every machine. */
typedef struct rng {
	uint64_t s[4];
} rng;

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static void rng_seed(rng *r, uint64_t seed)
{
	int i;

	for (i = 0; i < 4; i++)
		r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(rng *r)
{
	uint64_t result = rotl(r->s[1] * 5, 7) * 9;
	uint64_t t = r->s[1] << 17;

	r->s[2] ^= r->s[0];
	r->s[3] ^= r->s[1];
	r->s[1] ^= r->s[2];
	r->s[0] ^= r->s[3];
	r->s[2] ^= t;
	r->s[3] = rotl(r->s[3], 45);
	return result;
}

/* Uniform in [0, n) (n > 0; the modulo bias is irrelevant here). */
static uint64_t rng_below(rng *r, uint64_t n)
{
	return rng_next(r) % n;
}

/* Uniform in [lo, hi]. */
static uint64_t rng_range(rng *r, uint64_t lo, uint64_t hi)
{
	return lo + rng_below(r, hi - lo + 1);
}

#define PER_MILLION UINT64_C(1000000)

static bool rng_chance(rng *r, uint64_t per_million)
{
	return rng_below(r, PER_MILLION) < per_million;
}

/* A seed derived from the run's seed, per segment and purpose. */
static uint64_t derive_seed(uint64_t seed, uint64_t purpose, uint64_t index)
{
	uint64_t x = seed ^ (purpose * UINT64_C(0x9e3779b97f4a7c15));

	x ^= splitmix64(&x) + index;
	return splitmix64(&x);
}

#define SIM_MAX_NODES          5
#define SIM_MAX_PROPOSALS      1024
#define SIM_MAX_NOTES          1024
/* Monotonic clock rates, permille of true time: within the drift margin
 * (>= SIM_MIN_DRIFT_PERMILLE) with room for ms rounding. */
#define SIM_RATE_MIN           990
#define SIM_RATE_MAX           1010
#define SIM_MIN_DRIFT_PERMILLE 50
#define SIM_MIN_LEASE_MS       150
/* Wall clock jumps: up to this far, either way. */
#define SIM_JUMP_MS            40000
/* A resynchronised wall clock is off by at most this. */
#define SIM_SYNC_MS            100
/* A long pause (GC, SIGSTOP, VM migration): up to this. */
#define SIM_PAUSE_MS           20000
/* Liveness: rounds of lease / 4 a stable leader gets to serve. */
#define SIM_SETTLE_ROUNDS      16
#define SIM_TRACE_LINES        48
#define SIM_TRACE_LEN          200

/* Per million operations. */
#define W_GRANT     404700
#define W_TIME      150000
#define W_TICK      180000
#define W_COMMIT    130000
#define W_DELIVER   100000
#define W_FAIL      15000
#define W_CLOCK     15000
#define W_ELECT     1000
#define W_STEP_DOWN 300
#define W_TELL      3000
#define W_SETTLE    1000
#define W_TOTAL                                                                                              \
	(W_GRANT + W_TIME + W_TICK + W_COMMIT + W_DELIVER + W_FAIL + W_CLOCK + W_ELECT + W_STEP_DOWN +       \
	 W_TELL + W_SETTLE)
_Static_assert(W_TOTAL == PER_MILLION, "operation weights are per million");

typedef struct sim_node {
	ta_alloc a;            /* the allocator under test */
	ta_alloc m;            /* the test's model of what a must hold */
	int64_t wall_off_ms;   /* wall = true time + wall_off_ms */
	bool wall_frozen;      /* the wall clock stands still */
	uint64_t mono_base_ms; /* mono = base + true elapsed * rate / 1000 */
	uint64_t mono_rate_permille;
} sim_node;

/* A HighWater entry proposed to "Raft". */
typedef struct sim_proposal {
	unsigned node;
	uint64_t epoch;
	uint64_t mark;
	uint64_t proposed_mono_ms;
	bool doomed; /* proposed by a deposed leader: can never commit */
} sim_proposal;

/* A commit or failure callback not yet delivered to its node. */
typedef struct sim_note {
	unsigned node;
	uint64_t epoch;
	uint64_t mark;
	uint64_t proposed_mono_ms;
	bool committed;
} sim_note;

typedef struct sim_stats {
	uint64_t results[TA_EXHAUSTED + 1];
	uint64_t timestamps;
	uint64_t deposed_ok; /* grants by a leader of an older term */
	uint64_t elections;
	uint64_t refused_leads;
	uint64_t proposals;
	uint64_t commits;
	uint64_t stale_notes;
	uint64_t settles;
	uint64_t clock_jumps;
} sim_stats;

typedef struct sim {
	rng r;
	ta_config cfg;
	bool model_checks; /* off for the positive control: only properties */
	unsigned nodes;
	sim_node node[SIM_MAX_NODES];
	uint64_t t0_ms;   /* true time at the start */
	uint64_t true_ms; /* true time now */
	/* Raft, as the test plays it. */
	uint64_t term;
	int leader;       /* node that leads term, or -1 */
	uint64_t durable; /* max of every committed mark */
	sim_proposal prop[SIM_MAX_PROPOSALS];
	unsigned nprop;
	sim_note note[SIM_MAX_NOTES];
	unsigned nnote;
	/* What every grant so far is checked against. */
	bool any_issued;
	uint64_t max_issued;
	uint64_t op;
	sim_stats st;
	/* The first violation. */
	bool failed;
	const char *property;
	uint64_t fail_op;
	char why[512];
	/* The last steps, kept only when tracing. */
	bool trace;
	char trace_line[SIM_TRACE_LINES][SIM_TRACE_LEN];
	uint64_t ntrace;
} sim;

__attribute__((format(printf, 2, 3))) static void sim_trace(sim *s, const char *fmt, ...)
{
	va_list ap;

	if (!s->trace)
		return;
	va_start(ap, fmt);
	vsnprintf(s->trace_line[s->ntrace % SIM_TRACE_LINES], SIM_TRACE_LEN, fmt, ap);
	va_end(ap);
	s->ntrace++;
}

__attribute__((format(printf, 3, 4))) static void sim_violation(sim *s, const char *property, const char *fmt,
								...)
{
	va_list ap;

	if (s->failed)
		return;
	s->failed = true;
	s->property = property;
	s->fail_op = s->op;
	va_start(ap, fmt);
	vsnprintf(s->why, sizeof(s->why), fmt, ap);
	va_end(ap);
}

#define SIM_CHECK(s, property, cond, ...)                                                                    \
	do {                                                                                                 \
		if (!(cond))                                                                                 \
			sim_violation((s), (property), __VA_ARGS__);                                         \
	} while (0)

/* ---- the spec model: tsoracle.h's allocator contract, written independently ------------
 *
 * 128-bit arithmetic instead of saturation, so it shares no helper with
 * alloc.c. Each spec_* mirrors one ta_* call on the model state.
 */

typedef unsigned __int128 u128;

static uint64_t u128_sat(u128 x)
{
	return x > UINT64_MAX ? UINT64_MAX : (uint64_t)x;
}

static u128 u128_min(u128 x, u128 y)
{
	return x < y ? x : y;
}

static u128 u128_max(u128 x, u128 y)
{
	return x > y ? x : y;
}

static uint64_t spec_now(ta_clock c)
{
	return c.wall_ms < TSO_PHYSICAL_MAX ? c.wall_ms : TSO_PHYSICAL_MAX;
}

static uint64_t spec_wait(const ta_config *cfg)
{
	u128 scaled = (u128)cfg->lease_ms * (1000 + (u128)cfg->drift_permille);
	return u128_sat((scaled + 999) / 1000);
}

/* min(from + window_ahead, now + max_ahead, end of range) */
static uint64_t spec_ahead(const ta_config *cfg, u128 from, uint64_t now)
{
	u128 mark = u128_min(from + cfg->window_ahead_ms, (u128)now + cfg->max_ahead_ms);
	return (uint64_t)u128_min(mark, TSO_PHYSICAL_MAX);
}

static uint64_t spec_growth(const ta_alloc *m, uint64_t now)
{
	return spec_ahead(&m->cfg, u128_max((u128)m->high_water_ms + 1, now), now);
}

static bool spec_wants_growth(const ta_alloc *m, uint64_t now)
{
	return m->starved || m->high_water_ms < (u128)now + m->cfg.extend_margin_ms;
}

static bool spec_in_lease(const ta_alloc *m, uint64_t mono)
{
	return mono >= m->lease_not_before && mono < (u128)m->lease_renewed_at + m->cfg.lease_ms;
}

static uint64_t spec_lead_begin(ta_alloc *m, uint64_t epoch, uint64_t high, ta_clock c)
{
	uint64_t now = spec_now(c);
	u128 h = u128_max(m->high_water_ms, high);
	u128 floor_ms = u128_max(h + 1, now);
	uint64_t fence;

	if (epoch == 0 || floor_ms > TSO_PHYSICAL_MAX)
		return 0;
	fence = (uint64_t)u128_max(floor_ms, spec_ahead(&m->cfg, floor_ms, now));
	m->epoch = epoch;
	m->fenced = false;
	m->fence_mark = fence;
	m->high_water_ms = (uint64_t)h;
	m->last = ((uint64_t)floor_ms << TSO_LOGICAL_BITS) - 1;
	m->starved = false;
	m->ext_inflight = true;
	m->ext_mark = fence;
	m->lease_not_before = u128_sat((u128)c.mono_ms + spec_wait(&m->cfg));
	m->lease_renewed_at = 0;
	return fence;
}

static void spec_lead_end(ta_alloc *m)
{
	m->epoch = 0;
	m->fenced = false;
	m->fence_mark = 0;
	m->starved = false;
	m->ext_inflight = false;
	m->ext_mark = 0;
	m->lease_not_before = 0;
	m->lease_renewed_at = 0;
}

static bool spec_due(const ta_alloc *m, ta_clock c)
{
	uint64_t now = spec_now(c);

	if (m->epoch == 0 || m->ext_inflight)
		return false;
	if (!m->fenced)
		return true;
	if (c.mono_ms >= (u128)m->lease_renewed_at + m->cfg.lease_ms / 3)
		return true;
	return spec_wants_growth(m, now) && spec_growth(m, now) > m->high_water_ms;
}

static uint64_t spec_prepare(ta_alloc *m, ta_clock c)
{
	uint64_t now = spec_now(c);
	uint64_t mark = m->high_water_ms;

	if (m->epoch == 0 || m->ext_inflight)
		return 0;
	if (spec_wants_growth(m, now) && spec_growth(m, now) > mark)
		mark = spec_growth(m, now);
	if (!m->fenced && m->fence_mark > mark)
		mark = m->fence_mark;
	m->ext_inflight = true;
	m->ext_mark = mark;
	return mark;
}

static void spec_commit(ta_alloc *m, uint64_t epoch, uint64_t mark, uint64_t proposed_mono)
{
	if (epoch == 0 || epoch != m->epoch)
		return;
	if (mark > m->high_water_ms) {
		m->high_water_ms = mark;
		m->starved = false;
	}
	if (proposed_mono > m->lease_renewed_at)
		m->lease_renewed_at = proposed_mono;
	if (m->ext_inflight && mark == m->ext_mark)
		m->ext_inflight = false;
	if (!m->fenced && mark >= m->fence_mark)
		m->fenced = true;
}

static void spec_failed(ta_alloc *m, uint64_t epoch)
{
	if (epoch != 0 && epoch == m->epoch)
		m->ext_inflight = false;
}

static int spec_grant(ta_alloc *m, ta_clock c, uint32_t n, uint64_t *first)
{
	u128 start;
	u128 end;

	if (n == 0 || n > TA_MAX_GRANT)
		return TA_INVALID;
	if (m->epoch == 0)
		return TA_NOT_LEADER;
	if (!m->fenced)
		return TA_FENCING;
	if (!spec_in_lease(m, c.mono_ms))
		return TA_LEASE;
	start = u128_max((u128)spec_now(c) << TSO_LOGICAL_BITS, (u128)m->last + 1);
	end = start + n - 1;
	if (end > TSO_MAX)
		return TA_EXHAUSTED;
	/* I2: within H; I6: within max_ahead of the clock. */
	if ((end >> TSO_LOGICAL_BITS) > m->high_water_ms ||
	    (end >> TSO_LOGICAL_BITS) > (u128)spec_now(c) + m->cfg.max_ahead_ms) {
		m->starved = true;
		return TA_WAIT;
	}
	m->last = (uint64_t)end;
	m->last_issued = (uint64_t)end;
	m->grants++;
	m->timestamps += n;
	*first = (uint64_t)start;
	return TA_OK;
}

/* ---- the simulated world ---------------------------------------------------- */

static uint64_t sim_wall(const sim *s, unsigned i)
{
	int64_t wall = (int64_t)s->true_ms + s->node[i].wall_off_ms;
	return wall < 0 ? 0 : (uint64_t)wall;
}

static uint64_t sim_mono(const sim *s, unsigned i)
{
	const sim_node *n = &s->node[i];
	return n->mono_base_ms + (s->true_ms - s->t0_ms) * n->mono_rate_permille / 1000;
}

static ta_clock sim_clock(const sim *s, unsigned i)
{
	return at(sim_wall(s, i), sim_mono(s, i));
}

static void sim_advance(sim *s, uint64_t dt)
{
	unsigned i;

	s->true_ms += dt;
	for (i = 0; i < s->nodes; i++)
		if (s->node[i].wall_frozen)
			s->node[i].wall_off_ms -= (int64_t)dt;
}

static void sim_push_note(sim *s, const sim_proposal *p, bool committed)
{
	if (s->nnote == SIM_MAX_NOTES)
		return; /* a lost callback: only ever makes a node wait */
	s->note[s->nnote++] = (sim_note){.node = p->node,
					 .epoch = p->epoch,
					 .mark = p->mark,
					 .proposed_mono_ms = p->proposed_mono_ms,
					 .committed = committed};
}

static void sim_remove_proposal(sim *s, unsigned k)
{
	s->prop[k] = s->prop[--s->nprop];
}

/* Raft commits proposal k: from now on its mark is durable. */
static void sim_commit(sim *s, unsigned k, bool notify)
{
	sim_proposal p = s->prop[k];

	sim_remove_proposal(s, k);
	if (p.mark > s->durable)
		s->durable = p.mark;
	s->st.commits++;
	sim_trace(s, "commit node %u epoch %" PRIu64 " mark %" PRIu64 " durable %" PRIu64, p.node, p.epoch,
		  p.mark, s->durable);
	if (notify)
		sim_push_note(s, &p, true);
}

/* Hands note k to its node. */
static void sim_deliver(sim *s, unsigned k)
{
	sim_note nt = s->note[k];
	sim_node *n = &s->node[nt.node];
	ta_alloc before = n->a;

	s->note[k] = s->note[--s->nnote];
	sim_trace(s,
		  "deliver node %u %s epoch %" PRIu64 " (node epoch %" PRIu64 ") mark %" PRIu64
		  " proposed_mono %" PRIu64,
		  nt.node, nt.committed ? "commit" : "failure", nt.epoch, n->a.epoch, nt.mark,
		  nt.proposed_mono_ms);
	if (nt.committed) {
		ta_extension_commit(&n->a, nt.epoch, nt.mark, nt.proposed_mono_ms);
		spec_commit(&n->m, nt.epoch, nt.mark, nt.proposed_mono_ms);
	} else {
		ta_extension_failed(&n->a, nt.epoch);
		spec_failed(&n->m, nt.epoch);
	}
	if (nt.epoch != before.epoch || nt.epoch == 0) {
		const char *diff = alloc_diff(&before, &n->a, false);
		s->st.stale_notes++;
		SIM_CHECK(s, "P8 stale-epoch", diff == NULL,
			  "node %u: a callback of epoch %" PRIu64 " changed %s in epoch %" PRIu64, nt.node,
			  nt.epoch, diff, before.epoch);
	}
}

static void sim_lead_end(sim *s, unsigned i)
{
	sim_trace(s, "lead_end node %u (epoch %" PRIu64 ")", i, s->node[i].a.epoch);
	ta_lead_end(&s->node[i].a);
	spec_lead_end(&s->node[i].m);
}

/* Records a proposal of node i (prepare already called). */
static void sim_record_proposal(sim *s, unsigned i, uint64_t mark)
{
	sim_node *n = &s->node[i];

	s->prop[s->nprop++] = (sim_proposal){
	    .node = i,
	    .epoch = n->a.epoch,
	    .mark = mark,
	    .proposed_mono_ms = sim_mono(s, i),
	    .doomed = (int)i != s->leader || n->a.epoch != s->term,
	};
	s->st.proposals++;
}

/* Node i calls ta_extension_prepare (due or not) and proposes the mark.
 * Returns the mark, 0 if none. */
static uint64_t sim_prepare(sim *s, unsigned i)
{
	sim_node *n = &s->node[i];
	ta_clock c = sim_clock(s, i);
	ta_alloc before = n->a;
	uint64_t now = spec_now(c);
	uint64_t cap;
	uint64_t mark;
	uint64_t want;

	if (s->nprop == SIM_MAX_PROPOSALS)
		return 0;
	mark = ta_extension_prepare(&n->a, c);
	want = spec_prepare(&n->m, c);
	sim_trace(s, "prepare node %u epoch %" PRIu64 " wall %" PRIu64 " H %" PRIu64 " -> %" PRIu64, i,
		  before.epoch, c.wall_ms, before.high_water_ms, mark);
	if (s->model_checks)
		SIM_CHECK(s, "M prepare", mark == want,
			  "node %u: prepare gave %" PRIu64 ", the spec %" PRIu64, i, mark, want);
	if (before.epoch == 0 || before.ext_inflight) {
		const char *diff = alloc_diff(&before, &n->a, false);
		SIM_CHECK(s, "X prepare", mark == 0 && diff == NULL,
			  "node %u: prepare with nothing to do gave %" PRIu64 " and changed %s", i, mark,
			  diff);
		return 0;
	}
	/* The cap: never above now + max_ahead, except H itself (a renewal) or
	 * the fence mark (a fence proposed again). */
	cap = (uint64_t)u128_min((u128)now + s->cfg.max_ahead_ms, TSO_PHYSICAL_MAX);
	if (cap < before.high_water_ms)
		cap = before.high_water_ms;
	if (!before.fenced && cap < before.fence_mark)
		cap = before.fence_mark;
	SIM_CHECK(s, "X prepare",
		  mark != 0 && mark >= before.high_water_ms && mark <= cap &&
		      (before.fenced || mark >= before.fence_mark) && n->a.ext_inflight &&
		      n->a.ext_mark == mark,
		  "node %u: prepare gave %" PRIu64 " (H %" PRIu64 ", cap %" PRIu64 ", fence %" PRIu64 ")", i,
		  mark, before.high_water_ms, cap, before.fence_mark);
	sim_record_proposal(s, i, mark);
	return mark;
}

/* Node i is asked for n timestamps; every property of a grant is checked. */
static int sim_grant(sim *s, unsigned i, uint32_t n)
{
	sim_node *nd = &s->node[i];
	ta_clock c = sim_clock(s, i);
	ta_alloc before = nd->a;
	bool serving = ta_serving(&nd->a, c);
	uint64_t first = 0;
	uint64_t want_first = 0;
	uint64_t end;
	int res;
	int want;

	res = ta_grant(&nd->a, c, n, &first);
	want = spec_grant(&nd->m, c, n, &want_first);
	if (res >= 0 && res <= TA_EXHAUSTED)
		s->st.results[res]++;
	if (s->trace && res == TA_OK)
		sim_trace(s,
			  "grant node %u epoch %" PRIu64 " wall %" PRIu64 " mono %" PRIu64 " n %" PRIu32
			  " -> ok, first %" PRIu64,
			  i, before.epoch, c.wall_ms, c.mono_ms, n, first);
	else
		sim_trace(s,
			  "grant node %u epoch %" PRIu64 " wall %" PRIu64 " mono %" PRIu64 " n %" PRIu32
			  " -> %s",
			  i, before.epoch, c.wall_ms, c.mono_ms, n, ta_result_str(res));
	if (s->model_checks)
		SIM_CHECK(s, "M grant", res == want && (res != TA_OK || first == want_first),
			  "node %u: grant of %" PRIu32 " gave %s first %" PRIu64
			  ", the spec %s first %" PRIu64,
			  i, n, ta_result_str(res), first, ta_result_str(want), want_first);
	SIM_CHECK(s, "P7 serving", res != TA_OK || serving, "node %u: granted while ta_serving() said no", i);
	SIM_CHECK(s, "P7 serving",
		  !serving || n == 0 || n > TA_MAX_GRANT ||
		      (res == TA_OK || res == TA_WAIT || res == TA_EXHAUSTED),
		  "node %u: serving, but a grant of %" PRIu32 " gave %s", i, n, ta_result_str(res));
	if (res != TA_OK) {
		/* P6: nothing is consumed; only WAIT may set starved. */
		const char *diff = alloc_diff(&before, &nd->a, res == TA_WAIT);
		SIM_CHECK(s, "P6 unconsumed", diff == NULL && (res != TA_WAIT || nd->a.starved),
			  "node %u: %s changed %s", i, ta_result_str(res),
			  diff != NULL ? diff : "nothing, but starved is not set");
		SIM_CHECK(s, "P6 unconsumed", res != TA_INVALID || n == 0 || n > TA_MAX_GRANT,
			  "node %u: TA_INVALID for n = %" PRIu32, i, n);
		return res;
	}
	SIM_CHECK(s, "P3 range", first <= TSO_MAX - (n - 1),
		  "node %u: grant [%" PRIu64 ", +%" PRIu32 ") passes TSO_MAX", i, first, n);
	if (s->failed)
		return res;
	end = first + (n - 1);
	SIM_CHECK(s, "P1 monotonic", !s->any_issued || first > s->max_issued,
		  "node %u epoch %" PRIu64 ": grant [%" PRIu64 ", %" PRIu64 "] is not above %" PRIu64
		  ", handed out before",
		  i, nd->a.epoch, first, end, s->max_issued);
	SIM_CHECK(s, "P2 durable", tso_physical(end) <= s->durable,
		  "node %u: granted up to ms %" PRIu64 " but only %" PRIu64 " is committed", i,
		  tso_physical(end), s->durable);
	SIM_CHECK(s, "P9 near the clock", tso_physical(end) <= (u128)spec_now(c) + s->cfg.max_ahead_ms,
		  "node %u: granted up to ms %" PRIu64 ", more than max_ahead %" PRIu64
		  " ms past its clock %" PRIu64,
		  i, tso_physical(end), s->cfg.max_ahead_ms, spec_now(c));
	SIM_CHECK(s, "P4 contiguity",
		  nd->a.last == end && nd->a.last_issued == end && nd->a.grants == before.grants + 1 &&
		      nd->a.timestamps == before.timestamps + n,
		  "node %u: after granting [%" PRIu64 ", %" PRIu64 "] last is %" PRIu64, i, first, end,
		  nd->a.last);
	SIM_CHECK(s, "P5 lease",
		  c.mono_ms >= before.lease_not_before &&
		      c.mono_ms < (u128)before.lease_renewed_at + s->cfg.lease_ms,
		  "node %u: granted at mono %" PRIu64 " outside [%" PRIu64 ", %" PRIu64 " + lease)", i,
		  c.mono_ms, before.lease_not_before, before.lease_renewed_at);
	s->any_issued = true;
	s->max_issued = end;
	s->st.timestamps += n;
	if (nd->a.epoch != s->term)
		s->st.deposed_ok++;
	return res;
}

/* Raft elects node who in a new term. */
static void sim_elect(sim *s, unsigned who)
{
	sim_node *n = &s->node[who];
	ta_clock c;
	uint64_t fence;
	uint64_t want;
	unsigned k;

	/* Entries of earlier terms: the new leader either has them (its
	 * barrier commits them, before it reads the mark) or they are lost. A
	 * deposed leader that proposed after the election never gets its
	 * entry in (doomed). */
	for (k = s->nprop; k-- > 0;) {
		if (!s->prop[k].doomed && rng_chance(&s->r, 500000)) {
			sim_commit(s, k, rng_chance(&s->r, 500000));
		} else {
			if (rng_chance(&s->r, 700000))
				sim_push_note(s, &s->prop[k], false);
			sim_remove_proposal(s, k);
		}
	}
	if (s->leader >= 0 && rng_chance(&s->r, 500000))
		sim_lead_end(s, (unsigned)s->leader); /* else deposed, not told */
	s->term++;
	s->leader = (int)who;
	s->st.elections++;
	c = sim_clock(s, who);
	fence = ta_lead_begin(&n->a, s->term, s->durable, false, 0, c);
	want = spec_lead_begin(&n->m, s->term, s->durable, c);
	sim_trace(s,
		  "elect node %u term %" PRIu64 " durable %" PRIu64 " wall %" PRIu64 " mono %" PRIu64
		  " -> fence %" PRIu64,
		  who, s->term, s->durable, c.wall_ms, c.mono_ms, fence);
	if (s->model_checks)
		SIM_CHECK(s, "M lead_begin", fence == want,
			  "node %u: lead_begin gave %" PRIu64 ", the spec %" PRIu64, who, fence, want);
	if (fence == 0) {
		/* Refused: only when no millisecond is left above H. */
		SIM_CHECK(s, "I5 range", s->durable >= TSO_PHYSICAL_MAX,
			  "node %u: lead_begin refused with H %" PRIu64, who, s->durable);
		s->st.refused_leads++;
		if (rng_chance(&s->r, 500000))
			sim_lead_end(s, who);
		return;
	}
	/* I3: the new leader's first grant is above everything handed out. */
	SIM_CHECK(s, "I3 floor", !s->any_issued || n->a.last >= s->max_issued,
		  "node %u term %" PRIu64 ": floor %" PRIu64 " (last %" PRIu64 ") is not above %" PRIu64
		  ", handed out before",
		  who, s->term, tso_physical(n->a.last + 1), n->a.last, s->max_issued);
	SIM_CHECK(s, "I3 floor", fence > s->durable && fence <= TSO_PHYSICAL_MAX,
		  "node %u: fence %" PRIu64 " with durable %" PRIu64, who, fence, s->durable);
	sim_record_proposal(s, who, fence);
}

/* The count of a random request: mostly 1 or small, sometimes huge, now
 * and then invalid. */
static uint32_t sim_count(sim *s)
{
	uint64_t r = rng_below(&s->r, 100);

	if (r < 45)
		return 1;
	if (r < 70)
		return (uint32_t)rng_range(&s->r, 2, 1000);
	if (r < 85)
		return (uint32_t)rng_range(&s->r, 1001, TA_MAX_GRANT);
	if (r < 90)
		return TA_MAX_GRANT;
	if (r < 95)
		return (uint32_t)rng_range(&s->r, TA_MAX_GRANT / 2, TA_MAX_GRANT);
	if (r < 97)
		return 0;
	if (r < 99)
		return TA_MAX_GRANT + 1;
	return UINT32_MAX;
}

/* Requests go mostly to the leader Raft knows, else to anyone. */
static unsigned sim_pick_node(sim *s, uint64_t leader_per_million)
{
	if (s->leader >= 0 && rng_chance(&s->r, leader_per_million))
		return (unsigned)s->leader;
	return (unsigned)rng_below(&s->r, s->nodes);
}

static void op_grant(sim *s)
{
	sim_grant(s, sim_pick_node(s, 750000), sim_count(s));
}

static void op_time(sim *s)
{
	uint64_t r = rng_below(&s->r, 1000);
	uint64_t lease = s->cfg.lease_ms;
	uint64_t dt;

	if (r < 600)
		dt = rng_range(&s->r, 0, 3);
	else if (r < 900)
		dt = rng_range(&s->r, 4, lease / 8);
	else if (r < 998)
		dt = rng_range(&s->r, lease / 8, lease);
	else
		dt = rng_range(&s->r, lease, SIM_PAUSE_MS);
	sim_advance(s, dt);
	sim_trace(s, "time +%" PRIu64 " -> %" PRIu64, dt, s->true_ms);
}

/* A node's daemon timer: propose if due (and now and then even if not). */
static void op_tick(sim *s)
{
	unsigned i = sim_pick_node(s, 700000);
	sim_node *n = &s->node[i];
	ta_clock c = sim_clock(s, i);
	bool due = ta_extension_due(&n->a, c);

	if (s->model_checks)
		SIM_CHECK(s, "M due", due == spec_due(&n->m, c), "node %u: ta_extension_due says %d", i, due);
	if (due || rng_chance(&s->r, 50000))
		sim_prepare(s, i);
}

static void op_commit(sim *s)
{
	unsigned cand[SIM_MAX_PROPOSALS];
	unsigned ncand = 0;
	unsigned k;

	if (s->leader < 0)
		return;
	for (k = 0; k < s->nprop; k++)
		if (!s->prop[k].doomed && s->prop[k].epoch == s->term && (int)s->prop[k].node == s->leader)
			cand[ncand++] = k;
	if (ncand == 0)
		return;
	sim_commit(s, cand[rng_below(&s->r, ncand)], true);
	/* Usually the callback comes at once. */
	if (rng_chance(&s->r, 500000))
		sim_deliver(s, s->nnote - 1);
}

static void op_deliver(sim *s)
{
	if (s->nnote > 0)
		sim_deliver(s, (unsigned)rng_below(&s->r, s->nnote));
}

/* A proposal fails: really (dropped), or spuriously (the callback says
 * failed, a timeout say, but the entry may still commit later). */
static void op_fail(sim *s)
{
	unsigned k;

	if (s->nprop == 0)
		return;
	k = (unsigned)rng_below(&s->r, s->nprop);
	sim_trace(s, "fail node %u epoch %" PRIu64 " mark %" PRIu64, s->prop[k].node, s->prop[k].epoch,
		  s->prop[k].mark);
	sim_push_note(s, &s->prop[k], false);
	if (rng_chance(&s->r, 500000))
		sim_remove_proposal(s, k);
}

static void op_clock(sim *s)
{
	unsigned i = (unsigned)rng_below(&s->r, s->nodes);
	sim_node *n = &s->node[i];
	uint64_t r = rng_below(&s->r, 100);

	s->st.clock_jumps++;
	if (r < 30)
		n->wall_off_ms -= (int64_t)rng_range(&s->r, 1, SIM_JUMP_MS);
	else if (r < 60)
		n->wall_off_ms += (int64_t)rng_range(&s->r, 1, SIM_JUMP_MS);
	else if (r < 80)
		n->wall_frozen = !n->wall_frozen;
	else
		n->wall_off_ms = (int64_t)rng_range(&s->r, 0, 2 * SIM_SYNC_MS) - SIM_SYNC_MS;
	sim_trace(s, "clock node %u wall %" PRIu64 "%s", i, sim_wall(s, i),
		  n->wall_frozen ? " (frozen)" : "");
}

static void op_elect(sim *s)
{
	sim_elect(s, (unsigned)rng_below(&s->r, s->nodes));
}

/* The leader steps down (and knows it); no leader until the next election. */
static void op_step_down(sim *s)
{
	if (s->leader < 0)
		return;
	sim_lead_end(s, (unsigned)s->leader);
	s->leader = -1;
}

/* A deposed leader finally learns it. */
static void op_tell(sim *s)
{
	unsigned i = (unsigned)rng_below(&s->r, s->nodes);

	if ((int)i != s->leader && s->node[i].a.epoch != 0)
		sim_lead_end(s, i);
}

/* Liveness: a stable leader with a working Raft and a timely daemon serves
 * within a few leases, unless the range is exhausted or its clock is so
 * far behind H that the cap forbids growing the window. */
static void op_settle(sim *s)
{
	unsigned i;
	unsigned k;
	unsigned round;
	sim_node *n;
	int res = -1;
	uint64_t now = 0; /* at the last grant */

	s->st.settles++;
	if (s->leader < 0)
		op_elect(s);
	i = (unsigned)s->leader;
	n = &s->node[i];
	if (n->a.epoch != s->term)
		return; /* lead_begin refused: the range is exhausted */
	n->wall_frozen = false;
	for (round = 0; round < SIM_SETTLE_ROUNDS && !s->failed; round++) {
		for (k = s->nnote; k-- > 0;)
			if (s->note[k].node == i)
				sim_deliver(s, k);
		for (k = s->nprop; k-- > 0;)
			if (s->prop[k].node == i && !s->prop[k].doomed && s->prop[k].epoch == s->term) {
				sim_commit(s, k, true);
				sim_deliver(s, s->nnote - 1);
			}
		if (ta_extension_due(&n->a, sim_clock(s, i)) && sim_prepare(s, i) != 0) {
			sim_commit(s, s->nprop - 1, true);
			sim_deliver(s, s->nnote - 1);
		}
		now = spec_now(sim_clock(s, i));
		res = sim_grant(s, i, 1);
		if (res == TA_OK)
			return;
		sim_advance(s, s->cfg.lease_ms / 4 + 1);
	}
	if (s->failed || res == TA_EXHAUSTED)
		return;
	/* At the last grant (the round's prepare saw the same clock). */
	if (res == TA_WAIT &&
	    n->a.high_water_ms >= u128_min((u128)now + s->cfg.max_ahead_ms, TSO_PHYSICAL_MAX))
		return; /* the cap */
	sim_violation(s, "L liveness",
		      "node %u term %" PRIu64 ": a stable leader still says %s after %d rounds", i, s->term,
		      ta_result_str(res), SIM_SETTLE_ROUNDS);
}

/* The one simulation (about 100 KB): static, so that a failed assertion,
 * which longjmps out of a test, leaks nothing. */
static sim g_sim;

typedef void (*sim_op_fn)(sim *s);

static const struct {
	uint64_t weight; /* per million */
	sim_op_fn fn;
} sim_ops[] = {
    {W_GRANT, op_grant},         {W_TIME, op_time}, {W_TICK, op_tick},     {W_COMMIT, op_commit},
    {W_DELIVER, op_deliver},     {W_FAIL, op_fail}, {W_CLOCK, op_clock},   {W_ELECT, op_elect},
    {W_STEP_DOWN, op_step_down}, {W_TELL, op_tell}, {W_SETTLE, op_settle},
};

/* After every step: properties of the whole state. */
static void sim_check_state(sim *s)
{
	unsigned i;

	for (i = 0; i < s->nodes && !s->failed; i++) {
		const sim_node *n = &s->node[i];
		SIM_CHECK(s, "G1 committed", n->a.high_water_ms <= s->durable,
			  "node %u: H %" PRIu64 " is above every committed mark (%" PRIu64 ")", i,
			  n->a.high_water_ms, s->durable);
		SIM_CHECK(s, "G2 range", n->a.last <= TSO_MAX, "node %u: last %" PRIu64 " > TSO_MAX", i,
			  n->a.last);
		if (s->model_checks) {
			const char *diff = alloc_diff(&n->m, &n->a, false);
			SIM_CHECK(s, "M state", diff == NULL, "node %u: field %s differs from the spec", i,
				  diff);
		}
	}
}

typedef struct sim_params {
	uint64_t seed;
	uint64_t ops;
	uint64_t near_end_ms; /* start this close to the end of the range; 0: not */
	bool model_checks;
	bool trace;
} sim_params;

/* A random valid config: the default, a tight one, or anything. */
static void sim_pick_config(sim *s)
{
	uint64_t r = rng_below(&s->r, 3);
	char err[128];

	ta_config_default(&s->cfg);
	if (r == 1) {
		s->cfg = (ta_config){.window_ahead_ms = 40,
				     .extend_margin_ms = 20,
				     .max_ahead_ms = 100,
				     .lease_ms = 200,
				     .drift_permille = 100};
	} else if (r == 2) {
		s->cfg.window_ahead_ms = rng_range(&s->r, 2, 5000);
		s->cfg.extend_margin_ms = rng_range(&s->r, 1, s->cfg.window_ahead_ms - 1);
		s->cfg.max_ahead_ms = rng_range(&s->r, s->cfg.window_ahead_ms, 30 * s->cfg.window_ahead_ms);
		s->cfg.lease_ms = rng_range(&s->r, SIM_MIN_LEASE_MS, 2000);
		s->cfg.drift_permille = (uint32_t)rng_range(&s->r, SIM_MIN_DRIFT_PERMILLE, 300);
	}
	if (ta_config_check(&s->cfg, err, sizeof(err)) != 0)
		sim_violation(s, "config", "the test picked a bad config: %s", err);
}

static void sim_init(sim *s, const sim_params *p)
{
	unsigned i;

	memset(s, 0, sizeof(*s));
	rng_seed(&s->r, p->seed);
	s->model_checks = p->model_checks;
	s->trace = p->trace;
	sim_pick_config(s);
	s->nodes = rng_chance(&s->r, 500000) ? 3 : SIM_MAX_NODES;
	s->t0_ms = p->near_end_ms > 0 ? TSO_PHYSICAL_MAX - rng_range(&s->r, 0, p->near_end_ms)
				      : T0_MS + rng_below(&s->r, T0_MS / 10);
	s->true_ms = s->t0_ms;
	s->leader = -1;
	for (i = 0; i < s->nodes; i++) {
		sim_node *n = &s->node[i];
		ta_init(&n->a, &s->cfg);
		ta_init(&n->m, &s->cfg);
		n->wall_off_ms = (int64_t)rng_range(&s->r, 0, 2 * SIM_SYNC_MS) - SIM_SYNC_MS;
		n->mono_base_ms = rng_below(&s->r, UINT64_C(1) << 40);
		n->mono_rate_permille = rng_range(&s->r, SIM_RATE_MIN, SIM_RATE_MAX);
	}
}

/* Runs one simulation; false (and s->why) on the first violation. */
static bool sim_run(sim *s, const sim_params *p)
{
	uint64_t pick;
	size_t k;

	sim_init(s, p);
	for (s->op = 0; s->op < p->ops && !s->failed; s->op++) {
		/* Ends within sim_ops: the weights sum to PER_MILLION. */
		pick = rng_below(&s->r, PER_MILLION);
		for (k = 0; pick >= sim_ops[k].weight; k++)
			pick -= sim_ops[k].weight;
		sim_ops[k].fn(s);
		sim_check_state(s);
	}
	return !s->failed;
}

/* Purposes of derived seeds. */
#define SEED_SEGMENT  1
#define SEED_NEAR_END 2
#define SEED_CONTROL  3

#ifndef TA_EXPECT_BROKEN

static void sim_print_stats(const char *what, const sim_stats *st, uint64_t ops, double secs)
{
	print_message("%s: %" PRIu64 " ops in %.2f s: grants ok %" PRIu64 " wait %" PRIu64 " lease %" PRIu64
		      " fencing %" PRIu64 " not-leader %" PRIu64 " invalid %" PRIu64 " exhausted %" PRIu64
		      " (ok by a deposed leader %" PRIu64 "); %" PRIu64 " timestamps; %" PRIu64
		      " elections (%" PRIu64 " refused), %" PRIu64 " proposals, %" PRIu64 " commits, %" PRIu64
		      " stale callbacks, %" PRIu64 " clock events, %" PRIu64 " liveness checks\n",
		      what, ops, secs, st->results[TA_OK], st->results[TA_WAIT], st->results[TA_LEASE],
		      st->results[TA_FENCING], st->results[TA_NOT_LEADER], st->results[TA_INVALID],
		      st->results[TA_EXHAUSTED], st->deposed_ok, st->timestamps, st->elections,
		      st->refused_leads, st->proposals, st->commits, st->stale_notes, st->clock_jumps,
		      st->settles);
}

static void sim_add_stats(sim_stats *sum, const sim_stats *st)
{
	size_t k;

	for (k = 0; k <= TA_EXHAUSTED; k++)
		sum->results[k] += st->results[k];
	sum->timestamps += st->timestamps;
	sum->deposed_ok += st->deposed_ok;
	sum->elections += st->elections;
	sum->refused_leads += st->refused_leads;
	sum->proposals += st->proposals;
	sum->commits += st->commits;
	sum->stale_notes += st->stale_notes;
	sum->settles += st->settles;
	sum->clock_jumps += st->clock_jumps;
}

/* Prints a violation, and the trace of the steps before it (the failing
 * segment run again, deterministically, with tracing on). */
static void sim_report(sim *s, const sim_params *p, const char *segment)
{
	sim_params again = *p;
	uint64_t k;
	uint64_t from;

	print_error("property %s violated at op %" PRIu64 " of %s (segment seed %" PRIu64 "):\n  %s\n",
		    s->property, s->fail_op, segment, p->seed, s->why);
	print_error("reproduce: TSO_SEED=%" PRIu64 " TSO_OPS=%" PRIu64 " %s\n", g_seed, g_ops, g_argv0);
	again.ops = s->fail_op + 1;
	again.trace = true;
	sim_run(s, &again);
	from = s->ntrace > SIM_TRACE_LINES ? s->ntrace - SIM_TRACE_LINES : 0;
	print_error("last steps:\n");
	for (k = from; k < s->ntrace; k++)
		print_error("  %s\n", s->trace_line[k % SIM_TRACE_LINES]);
}

static double seconds_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* g_ops operations, in segments of PROP_SEGMENT_OPS: each segment a fresh
 * simulation (config, node count, clocks) with a seed derived from g_seed. */
static void test_property_random(void **state)
{
	sim *s = &g_sim;
	sim_stats sum = {0};
	sim_params p;
	struct timespec t0;
	uint64_t done;
	uint64_t k;
	char segment[64];

	(void)state;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (k = 0, done = 0; done < g_ops; k++, done += p.ops) {
		p = (sim_params){
		    .seed = derive_seed(g_seed, SEED_SEGMENT, k),
		    .ops = g_ops - done < PROP_SEGMENT_OPS ? g_ops - done : PROP_SEGMENT_OPS,
		    .near_end_ms = k % PROP_NEAR_END_EVERY == PROP_NEAR_END_EVERY - 1 ? PROP_NEAR_END_MS : 0,
		    .model_checks = true};
		if (!sim_run(s, &p)) {
			snprintf(segment, sizeof(segment), "segment %" PRIu64, k);
			sim_report(s, &p, segment);
			fail();
		}
		sim_add_stats(&sum, &s->st);
	}
	sim_print_stats("property", &sum, g_ops, seconds_since(&t0));
}

/* The simulation here starts PROP_VERY_NEAR_END_MS or less before the end
 * of the range, so exhaustion and the clamps are hit hard. */
static void test_property_near_end(void **state)
{
	sim *s = &g_sim;
	sim_params p = {.seed = derive_seed(g_seed, SEED_NEAR_END, 0),
			.ops = g_ops / 10 > PROP_NEAR_END_MIN_OPS ? g_ops / 10 : PROP_NEAR_END_MIN_OPS,
			.near_end_ms = PROP_VERY_NEAR_END_MS,
			.model_checks = true};
	struct timespec t0;

	(void)state;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (!sim_run(s, &p)) {
		sim_report(s, &p, "the near-end run");
		fail();
	}
	/* The end was reached, and refused. */
	assert_int_equal(s->durable, TSO_PHYSICAL_MAX);
	assert_true(s->st.results[TA_EXHAUSTED] + s->st.refused_leads > 0);
	sim_print_stats("near end", &s->st, p.ops, seconds_since(&t0));
}

#else /* TA_EXPECT_BROKEN */

/* The positive control: alloc.c was built with one deliberate bug, and the
 * safety properties alone (the spec model is off) must catch it. */
static void test_positive_control(void **state)
{
	sim *s = &g_sim;
	sim_params p;
	uint64_t total = 0;
	unsigned k;

	(void)state;
	for (k = 0; k < CONTROL_SEEDS; k++) {
		p = (sim_params){
		    .seed = derive_seed(g_seed, SEED_CONTROL, k), .ops = CONTROL_OPS, .model_checks = false};
		if (!sim_run(s, &p)) {
			total += s->fail_op + 1;
			print_message("positive control: the broken allocator was caught by %s "
				      "after %" PRIu64 " ops (seed %" PRIu64 ", %u clean seeds "
				      "before):\n  %s\n",
				      s->property, total, g_seed, k, s->why);
			assert_true(s->property[0] == 'P' || s->property[0] == 'I' || s->property[0] == 'G');
			return;
		}
		total += p.ops;
	}
	fail_msg("the property checker missed the planted bug in %" PRIu64 " ops (seed %" PRIu64 ")", total,
		 g_seed);
}

#endif /* TA_EXPECT_BROKEN */

static uint64_t parse_u64(const char *text, const char *what)
{
	char *end = NULL;
	unsigned long long v = strtoull(text, &end, 0);

	if (end == text || *end != '\0') {
		fprintf(stderr, "test_alloc: bad %s \"%s\"\n", what, text);
		exit(2);
	}
	return (uint64_t)v;
}

int main(int argc, char **argv)
{
	const char *env;
	struct timespec now;
	const struct CMUnitTest tests[] = {
#ifndef TA_EXPECT_BROKEN
	    cmocka_unit_test(test_config_default_is_valid),
	    cmocka_unit_test(test_config_check_names_field),
	    cmocka_unit_test(test_config_check_small_buffer),
	    cmocka_unit_test(test_init_not_leader),
	    cmocka_unit_test(test_lead_begin_clock_ahead),
	    cmocka_unit_test(test_lead_begin_after_release),
	    cmocka_unit_test(test_lead_begin_predecessor_wait),
	    cmocka_unit_test(test_lead_begin_clock_behind),
	    cmocka_unit_test(test_lead_begin_cap),
	    cmocka_unit_test(test_lead_begin_start_floor),
	    cmocka_unit_test(test_floor_lifts_cap),
	    cmocka_unit_test(test_lead_begin_keeps_known_high_water),
	    cmocka_unit_test(test_lead_begin_refused),
	    cmocka_unit_test(test_lead_begin_near_end),
	    cmocka_unit_test(test_wall_past_end_is_clamped),
	    cmocka_unit_test(test_grant_fencing),
	    cmocka_unit_test(test_grant_new_leader_wait),
	    cmocka_unit_test(test_grant_lease_expiry),
	    cmocka_unit_test(test_grant_sequence),
	    cmocka_unit_test(test_grant_near_clock),
	    cmocka_unit_test(test_room),
	    cmocka_unit_test(test_grant_invalid),
	    cmocka_unit_test(test_grant_wait_then_extension),
	    cmocka_unit_test(test_grant_exhausted),
	    cmocka_unit_test(test_extension_due),
	    cmocka_unit_test(test_prepare_growth),
	    cmocka_unit_test(test_prepare_pure_renewal),
	    cmocka_unit_test(test_prepare_cap),
	    cmocka_unit_test(test_commit_stale_epoch_ignored),
	    cmocka_unit_test(test_commit_out_of_order),
	    cmocka_unit_test(test_commit_clears_only_its_inflight),
	    cmocka_unit_test(test_failed),
	    cmocka_unit_test(test_lead_end),
	    cmocka_unit_test(test_lead_begin_while_leading),
	    cmocka_unit_test(test_result_str),
	    cmocka_unit_test(test_property_random),
	    cmocka_unit_test(test_property_near_end),
#else
	    cmocka_unit_test(test_positive_control),
#endif
	};

	g_argv0 = argv[0];
	if (argc > 1)
		g_seed = parse_u64(argv[1], "seed");
	else if ((env = getenv("TSO_SEED")) != NULL && *env != '\0')
		g_seed = parse_u64(env, "TSO_SEED");
	else {
		clock_gettime(CLOCK_REALTIME, &now);
		g_seed = (uint64_t)now.tv_sec * UINT64_C(1000000000) + (uint64_t)now.tv_nsec;
		g_seed ^= (uint64_t)getpid() << 32;
	}
	if ((env = getenv("TSO_OPS")) != NULL && *env != '\0')
		g_ops = parse_u64(env, "TSO_OPS");
#ifndef TA_EXPECT_BROKEN
	print_message("test_alloc: seed %" PRIu64 ", %" PRIu64 " ops (TSO_SEED=%" PRIu64 " TSO_OPS=%" PRIu64
		      " %s reproduces)\n",
		      g_seed, g_ops, g_seed, g_ops, g_argv0);
#else
	print_message("test_alloc, positive control: seed %" PRIu64 " (TSO_SEED=%" PRIu64 " %s reproduces)\n",
		      g_seed, g_seed, g_argv0);
#endif
	return cmocka_run_group_tests(tests, NULL, NULL);
}
