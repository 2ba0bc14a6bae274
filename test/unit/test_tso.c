/* test_tso.c: unit tests of the timestamp format (common/tso.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>

#include "tso.h"

/* 2023-11-14T22:13:20Z in Unix ms: a realistic physical part. */
#define REAL_MS     UINT64_C(1700000000000)
/* Pseudo-random round trips to try. */
#define ROUND_TRIPS 100000

static void test_constants(void **state)
{
	(void)state;
	assert_int_equal(TSO_LOGICAL_BITS, 18);
	assert_int_equal(TSO_LOGICAL_PER_MS, 262144);
	assert_int_equal(TSO_LOGICAL_MASK, 262143);
	/* The PD layout: a 46-bit physical field, whose top bit stays 0. */
	assert_int_equal(TSO_PHYSICAL_BITS, 46);
	assert_int_equal(TSO_PHYSICAL_MAX, (UINT64_C(1) << (TSO_PHYSICAL_BITS - 1)) - 1);
	assert_int_equal(TSO_MAX, tso_last_of_ms(TSO_PHYSICAL_MAX));
}

/* docs/sql.md: a timestamp is always a positive PostgreSQL bigint. */
static void test_max_is_int64_max(void **state)
{
	(void)state;
	/* Bit 63 stays clear: the largest physical part fills the other 63. */
	assert_int_equal(TSO_PHYSICAL_BITS + TSO_LOGICAL_BITS, 64);
	assert_int_equal(TSO_PHYSICAL_MAX >> (TSO_PHYSICAL_BITS - 1), 0);
	assert_int_equal(TSO_MAX, (uint64_t)INT64_MAX);
	assert_int_equal(TSO_MAX >> 63, 0);
	assert_true((int64_t)TSO_MAX > 0);
}

static void test_zero(void **state)
{
	uint64_t ts = 1;

	(void)state;
	assert_true(tso_pack(0, 0, &ts));
	assert_int_equal(ts, 0);
	assert_int_equal(tso_physical(0), 0);
	assert_int_equal(tso_logical(0), 0);
	assert_int_equal(tso_first_of_ms(0), 0);
	assert_int_equal(tso_last_of_ms(0), TSO_LOGICAL_MASK);
}

static void test_max_physical(void **state)
{
	uint64_t ts = 0;

	(void)state;
	assert_true(tso_pack(TSO_PHYSICAL_MAX, 0, &ts));
	assert_int_equal(ts, tso_first_of_ms(TSO_PHYSICAL_MAX));
	assert_int_equal(tso_physical(ts), TSO_PHYSICAL_MAX);
	assert_int_equal(tso_logical(ts), 0);
}

static void test_max_logical(void **state)
{
	uint64_t ts = 0;

	(void)state;
	assert_true(tso_pack(REAL_MS, TSO_LOGICAL_MASK, &ts));
	assert_int_equal(ts, tso_last_of_ms(REAL_MS));
	assert_int_equal(tso_physical(ts), REAL_MS);
	assert_int_equal(tso_logical(ts), TSO_LOGICAL_MASK);
	/* The next timestamp is the first of the next millisecond. */
	assert_int_equal(ts + 1, tso_first_of_ms(REAL_MS + 1));
}

static void test_max_timestamp(void **state)
{
	uint64_t ts = 0;

	(void)state;
	assert_true(tso_pack(TSO_PHYSICAL_MAX, TSO_LOGICAL_MASK, &ts));
	assert_int_equal(ts, TSO_MAX);
	assert_int_equal(tso_physical(TSO_MAX), TSO_PHYSICAL_MAX);
	assert_int_equal(tso_logical(TSO_MAX), TSO_LOGICAL_MASK);
}

static void test_overflow_refused(void **state)
{
	const uint64_t untouched = UINT64_C(0x5a5a5a5a);
	uint64_t ts = untouched;

	(void)state;
	assert_false(tso_pack(TSO_PHYSICAL_MAX + 1, 0, &ts));
	assert_false(tso_pack(0, TSO_LOGICAL_MASK + 1, &ts));
	assert_false(tso_pack(TSO_PHYSICAL_MAX + 1, TSO_LOGICAL_MASK + 1, &ts));
	assert_false(tso_pack(UINT64_MAX, 0, &ts));
	assert_false(tso_pack(0, UINT64_MAX, &ts));
	assert_int_equal(ts, untouched);
}

static void test_order_preserved(void **state)
{
	uint64_t a = 0;
	uint64_t b = 0;

	(void)state;
	/* Lexicographic order of (physical, logical) is integer order. */
	assert_true(tso_pack(REAL_MS, TSO_LOGICAL_MASK, &a));
	assert_true(tso_pack(REAL_MS + 1, 0, &b));
	assert_true(a < b);
	assert_true(tso_pack(REAL_MS, 7, &a));
	assert_true(tso_pack(REAL_MS, 8, &b));
	assert_true(a < b);
}

/* splitmix64: a fixed pseudo-random sequence, so the test is reproducible. */
static uint64_t next_random(uint64_t *x)
{
	uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static void test_round_trips(void **state)
{
	static const uint64_t physicals[] = {0, 1, REAL_MS, TSO_PHYSICAL_MAX - 1, TSO_PHYSICAL_MAX};
	static const uint64_t logicals[] = {0, 1, TSO_LOGICAL_MASK - 1, TSO_LOGICAL_MASK};
	uint64_t x = 1;
	uint64_t ts = 0;
	uint64_t back = 0;
	size_t i;
	size_t j;

	(void)state;
	for (i = 0; i < sizeof(physicals) / sizeof(physicals[0]); i++)
		for (j = 0; j < sizeof(logicals) / sizeof(logicals[0]); j++) {
			assert_true(tso_pack(physicals[i], logicals[j], &ts));
			assert_int_equal(tso_physical(ts), physicals[i]);
			assert_int_equal(tso_logical(ts), logicals[j]);
		}
	for (i = 0; i < ROUND_TRIPS; i++) {
		ts = next_random(&x) % TSO_MAX; /* a timestamp in [0, TSO_MAX) */
		assert_true(tso_pack(tso_physical(ts), tso_logical(ts), &back));
		assert_int_equal(back, ts);
		assert_true(tso_first_of_ms(tso_physical(ts)) <= ts);
		assert_true(ts <= tso_last_of_ms(tso_physical(ts)));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_constants),
	    cmocka_unit_test(test_max_is_int64_max),
	    cmocka_unit_test(test_zero),
	    cmocka_unit_test(test_max_physical),
	    cmocka_unit_test(test_max_logical),
	    cmocka_unit_test(test_max_timestamp),
	    cmocka_unit_test(test_overflow_refused),
	    cmocka_unit_test(test_order_preserved),
	    cmocka_unit_test(test_round_trips),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
