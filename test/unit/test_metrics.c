/* test_metrics.c: the metrics' histograms and text (sidecar/metrics.c); the HTTP side is t/130_metrics.pl's.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

#define TM_TEXT_SIZE (16 * 1024)

/* A value on a bucket's bound falls in that bucket (le: "less or equal"),
 * one above it in the next; past the last bound, only +Inf holds it. */
static void test_hist_bounds(void **state)
{
	metrics_hist h;

	(void)state;
	memset(&h, 0, sizeof h);
	metrics_hist_observe(&h, METRICS_HIST_REQUEST, 0000, 1);
	metrics_hist_observe(&h, METRICS_HIST_REQUEST, 10000, 1);
	metrics_hist_observe(&h, METRICS_HIST_REQUEST, 11000, 1);
	metrics_hist_observe(&h, METRICS_HIST_REQUEST, 1000000000000, 1); /* 1000 s */
	assert_int_equal(h.bucket[0], 2);
	assert_int_equal(h.bucket[1], 1);
	assert_int_equal(h.count, 4);
	assert_int_equal(h.sum_ns, 1000000021000);
	{
		static metrics_sample s;
		char text[TM_TEXT_SIZE];

		memset(&s, 0, sizeof s);
		s.req.duration = h;
		assert_true(metrics_format(&s, "0", text, sizeof text) < sizeof text);
		/* the 1000 s one is above the last bound (5 s): in +Inf only */
		assert_non_null(strstr(text, "\ntsoracle_request_duration_seconds_bucket{le=\"5\"} 3\n"));
		assert_non_null(strstr(text, "\ntsoracle_request_duration_seconds_bucket{le=\"+Inf\"} 4\n"));
	}
}

/* The text: cumulative buckets ending in +Inf = _count, _sum in seconds,
 * a reason label per error status, H and the clock in seconds to the ms,
 * and every family with its HELP and TYPE (promtool's own check runs on a
 * live daemon's text in t/130_metrics.pl). */
static void test_format(void **state)
{
	static metrics_sample s;
	char *text = malloc(TM_TEXT_SIZE);
	size_t len, small;

	(void)state;
	assert_non_null(text);
	memset(&s, 0, sizeof s);
	s.req.requests = 7;
	s.req.timestamps = 1234;
	s.req.errors[TP_ERR_TIMEOUT] = 3;
	metrics_hist_observe(&s.req.duration, METRICS_HIST_REQUEST, 40000, 1);  /* <= 50 us */
	metrics_hist_observe(&s.req.duration, METRICS_HIST_REQUEST, 700000, 1); /* <= 1 ms */
	metrics_hist_observe(&s.lead.fence, METRICS_HIST_FENCE, 210000000, 1);  /* <= 0.25 s */
	s.is_leader = true;
	s.high_water_ms = 1796420000123;
	s.clock_ms = 1796420000005;
	s.peer_connections = 4;
	s.clock_offset_ms = -1250;
	s.clock_held = true;
	len = metrics_format(&s, "9.9.9", text, TM_TEXT_SIZE);
	assert_true(len < TM_TEXT_SIZE);
	assert_int_equal(strlen(text), len);
	assert_non_null(strstr(text, "tsoracle_build_info{version=\"9.9.9\"} 1\n"));
	assert_non_null(strstr(text, "\ntsoracle_requests_total 7\n"));
	assert_non_null(strstr(text, "\ntsoracle_timestamps_total 1234\n"));
	assert_non_null(strstr(text, "\ntsoracle_request_errors_total{reason=\"timeout\"} 3\n"));
	assert_non_null(strstr(text, "\ntsoracle_request_errors_total{reason=\"unavailable\"} 0\n"));
	assert_non_null(strstr(text, "\ntsoracle_request_duration_seconds_bucket{le=\"5e-05\"} 1\n"));
	assert_non_null(strstr(text, "\ntsoracle_request_duration_seconds_bucket{le=\"0.0005\"} 1\n"));
	assert_non_null(strstr(text, "\ntsoracle_request_duration_seconds_bucket{le=\"0.001\"} 2\n"));
	assert_non_null(strstr(text, "\ntsoracle_request_duration_seconds_bucket{le=\"+Inf\"} 2\n"));
	assert_non_null(strstr(text, "\ntsoracle_request_duration_seconds_sum 0.000740000\n"));
	assert_non_null(strstr(text, "\ntsoracle_request_duration_seconds_count 2\n"));
	assert_non_null(strstr(text, "\ntsoracle_fence_duration_seconds_bucket{le=\"0.1\"} 0\n"));
	assert_non_null(strstr(text, "\ntsoracle_fence_duration_seconds_bucket{le=\"0.25\"} 1\n"));
	assert_non_null(strstr(text, "\ntsoracle_is_leader 1\n"));
	assert_non_null(strstr(text, "\ntsoracle_serving 0\n"));
	assert_non_null(strstr(text, "\ntsoracle_high_water_seconds 1796420000.123\n"));
	assert_non_null(strstr(text, "\ntsoracle_clock_seconds 1796420000.005\n"));
	assert_non_null(strstr(text, "\ntsoracle_peer_connections 4\n"));
	assert_non_null(strstr(text, "\ntsoracle_clock_offset_seconds -1.250\n"));
	assert_non_null(strstr(text, "\ntsoracle_clock_held 1\n"));
	assert_non_null(strstr(text, "\ntsoracle_clock_unsupported 0\n"));
	assert_non_null(strstr(text, "# TYPE tsoracle_leader_changes_total counter\n"));

	/* Too small a buffer: the length it needs, and a terminated prefix. */
	small = metrics_format(&s, "9.9.9", text, 100);
	assert_int_equal(small, len);
	assert_int_equal(strlen(text), 99);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hist_bounds),
	    cmocka_unit_test(test_format),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
