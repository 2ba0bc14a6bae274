/* test_backoff.c: the reconnection backoff the worker and forwarding share (common/backoff.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "backoff.h"

/* Forwarding's numbers (sidecar/forward.c): 20 ms doubling to 1 s. */
static void test_doubles_to_the_cap(void **state)
{
	static const unsigned want[] = {20, 40, 80, 160, 320, 640, 1000, 1000, 1000};
	tp_backoff b;

	(void)state;
	tp_backoff_init(&b, 20, 1000);
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
		assert_int_equal(tp_backoff_next(&b), want[i]);
}

/* A connection that worked retries quickly; the cap holds near UINT_MAX. */
static void test_reset_and_overflow(void **state)
{
	tp_backoff b;

	(void)state;
	tp_backoff_init(&b, 10, 1000);
	for (int i = 0; i < 20; i++)
		tp_backoff_next(&b);
	assert_int_equal(tp_backoff_next(&b), 1000);
	tp_backoff_reset(&b);
	assert_int_equal(tp_backoff_next(&b), 10);
	assert_int_equal(tp_backoff_next(&b), 20);

	tp_backoff_init(&b, 3000000000u, 4000000000u);
	assert_int_equal(tp_backoff_next(&b), 3000000000u);
	assert_int_equal(tp_backoff_next(&b), 4000000000u);
	assert_int_equal(tp_backoff_next(&b), 4000000000u);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_doubles_to_the_cap),
	    cmocka_unit_test(test_reset_and_overflow),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
