/* test_history.c: the checker's history checks catch each kind of violation, and pass good histories. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../checker/history.h"

#define MS 1000000ULL /* ns */

/* session, ok, invoke, complete, lo, hi; REFUSED: a call its worker refused */
#define OP(s_, ok_, i_, c_, lo_, hi_)                                                                        \
	{                                                                                                    \
		.session = (s_), .ok = (ok_), .invoke_ns = (i_)*MS, .complete_ns = (c_)*MS, .lo = (lo_),     \
		.hi = (hi_)                                                                                  \
	}
#define REFUSED(s, i, c)                                                                                     \
	{                                                                                                    \
		.session = (s), .ok = false, .invoke_ns = (i)*MS, .complete_ns = (c)*MS, .refused = true     \
	}

static void test_good_history(void **state __attribute__((unused)))
{
	/* Two sessions, overlapping calls in any order of values, and one
	 * call that began after another completed and is above it. */
	hist_op ops[] = {
	    OP(1, true, 0, 10, 100, 100),  OP(2, true, 5, 12, 90, 99),    /* concurrent: any order */
	    OP(1, true, 11, 20, 101, 110), OP(2, true, 13, 14, 111, 111), /* after both */
	    OP(2, false, 15, 30, 0, 0),                                   /* an error */
	};
	hist_report r;

	assert_int_equal(hist_check(ops, sizeof ops / sizeof ops[0], &r), 0);
	assert_int_equal(r.ops, 4);
	assert_int_equal(r.errors, 1);
	assert_int_equal(r.timestamps, 1 + 10 + 10 + 1);
}

/* session, invoke, complete, then a statement's values in evaluation order */
#define STMT(s_, i_, c_, v_)                                                                                 \
	{                                                                                                    \
		.session = (s_), .ok = true, .invoke_ns = (i_)*MS, .complete_ns = (c_)*MS, .lo = (v_)[0],    \
		.hi = (v_)[sizeof(v_) / sizeof((v_)[0]) - 1], .values = (v_),                                \
		.n_values = (uint32_t)(sizeof(v_) / sizeof((v_)[0]))                                         \
	}

static void test_statements_interleaved(void **state __attribute__((unused)))
{
	/* Two concurrent statements whose values interleave (their spans
	 * overlap, no value is shared), then one after both, above them. */
	static const int64_t a[] = {100, 102, 105}, b[] = {101, 103, 104}, c[] = {106, 110};
	hist_op ops[] = {STMT(1, 0, 10, a), STMT(2, 1, 9, b), STMT(1, 11, 12, c)};
	hist_report r;

	assert_int_equal(hist_check(ops, 3, &r), 0);
	assert_int_equal(r.timestamps, 8);
}

static void test_statement_violations(void **state __attribute__((unused)))
{
	/* A value of a statement that another call also got; a statement not
	 * increasing; a statement that began after a call completed and
	 * hands out a value below it (a cache outliving its statement). */
	static const int64_t dup[] = {200, 205}, down[] = {310, 309}, stale[] = {399, 420};
	hist_op dups[] = {STMT(1, 0, 5, dup), OP(2, true, 0, 5, 205, 205)};
	hist_op downs[] = {STMT(1, 0, 5, down)};
	hist_op stales[] = {OP(2, true, 0, 5, 400, 400), STMT(1, 6, 8, stale)};
	hist_report r;

	assert_int_equal(hist_check(dups, 2, &r), 1);
	assert_int_equal(r.duplicates, 1);
	assert_int_equal(hist_check(downs, 1, &r), 1);
	assert_int_equal(r.malformed, 1);
	assert_int_equal(hist_check(stales, 2, &r), 1);
	assert_int_equal(r.realtime, 1);
}

static void test_duplicate(void **state __attribute__((unused)))
{
	hist_op ops[] = {OP(1, true, 0, 1, 100, 105), OP(2, true, 0, 1, 105, 108)};
	hist_report r;

	assert_int_equal(hist_check(ops, 2, &r), 1);
	assert_int_equal(r.duplicates, 1);
	assert_non_null(strstr(r.first_violation, "duplicate"));
}

static void test_session_backwards(void **state __attribute__((unused)))
{
	/* Same session, overlapping in time (impossible for one session, but
	 * the check must not rely on times): the second is below the first. */
	hist_op ops[] = {OP(3, true, 0, 5, 200, 200), OP(3, true, 1, 6, 150, 150)};
	hist_report r;

	assert_true(hist_check(ops, 2, &r) >= 1);
	assert_int_equal(r.session_backwards, 1);
}

static void test_realtime_violation(void **state __attribute__((unused)))
{
	/* A completed at 10 ms with 500; B began at 11 ms on another node and
	 * got 400: unique, per-session fine, but a stale leader's value. */
	hist_op ops[] = {OP(1, true, 0, 10, 500, 500), OP(2, true, 11, 12, 400, 400)};
	hist_report r;

	assert_int_equal(hist_check(ops, 2, &r), 1);
	assert_int_equal(r.realtime, 1);
	assert_int_equal(r.duplicates, 0);
	assert_non_null(strstr(r.first_violation, "real-time"));
}

static void test_realtime_needs_strict_precedence(void **state __attribute__((unused)))
{
	/* B began exactly when A completed: concurrent, any order is fine. */
	hist_op ops[] = {OP(1, true, 0, 10, 500, 500), OP(2, true, 10, 12, 400, 400)};
	hist_report r;

	assert_int_equal(hist_check(ops, 2, &r), 0);
}

static void test_malformed_range(void **state __attribute__((unused)))
{
	hist_op ops[] = {OP(1, true, 0, 1, 10, 9)};
	hist_report r;

	assert_int_equal(hist_check(ops, 1, &r), 1);
	assert_int_equal(r.malformed, 1);
}

/* A call refused by its worker (the sidecars granted a value not above an
 * earlier one) is a violation even though no caller saw a bad value: the
 * guard hid what the sidecars did. */
static void test_refused_is_violation(void **state __attribute__((unused)))
{
	hist_op ops[] = {OP(1, true, 0, 10, 100, 100), REFUSED(2, 11, 12), OP(1, true, 13, 14, 101, 101)};
	hist_report r;

	assert_int_equal(hist_check(ops, 3, &r), 1);
	assert_int_equal(r.refused, 1);
	assert_int_equal(r.errors, 0);
	assert_int_equal(r.ops, 2);
	assert_non_null(strstr(r.first_violation, "refused"));
}

/* An ordinary failure (a timeout, no leader) is an error, not a violation. */
static void test_error_is_not_violation(void **state __attribute__((unused)))
{
	hist_op ops[] = {OP(1, true, 0, 10, 100, 100), OP(2, false, 11, 12, 0, 0)};
	hist_report r;

	assert_int_equal(hist_check(ops, 2, &r), 0);
	assert_int_equal(r.refused, 0);
	assert_int_equal(r.errors, 1);
	assert_string_equal(r.first_violation, "");
}

static void test_longest_gap(void **state __attribute__((unused)))
{
	hist_op ops[] = {OP(1, true, 0, 10, 1, 1), OP(1, true, 11, 500, 2, 2), OP(1, true, 501, 520, 3, 3)};
	hist_report r;

	assert_int_equal(hist_check(ops, 3, &r), 0);
	assert_int_equal(r.longest_gap_ns, 490 * MS);
	assert_int_equal(r.span_ns, 520 * MS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_good_history),
	    cmocka_unit_test(test_duplicate),
	    cmocka_unit_test(test_session_backwards),
	    cmocka_unit_test(test_realtime_violation),
	    cmocka_unit_test(test_realtime_needs_strict_precedence),
	    cmocka_unit_test(test_malformed_range),
	    cmocka_unit_test(test_refused_is_violation),
	    cmocka_unit_test(test_error_is_not_violation),
	    cmocka_unit_test(test_longest_gap),
	    cmocka_unit_test(test_statements_interleaved),
	    cmocka_unit_test(test_statement_violations),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
