/* hist.h: a log-linear (HDR-style) latency histogram: fixed size, no allocation per value. */
#ifndef TSORACLE_BENCH_HIST_H
#define TSORACLE_BENCH_HIST_H

#include <stdint.h>
#include <string.h>

/*
 * Values are nanoseconds. Below HIST_SUB (256) each value has its own
 * bucket; above, every power of two [2^m, 2^(m+1)) is cut into HIST_HALF
 * (128) equal buckets, so a recorded value is known to within 1/128 (0.8%)
 * of itself. Indexing is a count-leading-zeros and a shift; the table is a
 * fixed array (about 60 KiB), merged by adding.
 */

#define HIST_SUB_BITS 8
#define HIST_SUB      (1u << HIST_SUB_BITS) /* linear buckets below this value */
#define HIST_HALF     (HIST_SUB / 2)        /* buckets per power of two above */
#define HIST_BUCKETS  (HIST_HALF * (64 - HIST_SUB_BITS + 1) + HIST_HALF)

typedef struct hist {
	uint64_t n[HIST_BUCKETS];
	uint64_t total;
	uint64_t max;
	uint64_t min;
	long double sum;
} hist;

static inline void hist_init(hist *h)
{
	memset(h, 0, sizeof *h);
	h->min = UINT64_MAX;
}

static inline unsigned hist_index(uint64_t v)
{
	unsigned msb, e;

	if (v < HIST_SUB)
		return (unsigned)v;
	msb = 63u - (unsigned)__builtin_clzll(v);
	e = msb - (HIST_SUB_BITS - 1); /* >= 1: v >> e is in [HIST_HALF, HIST_SUB) */
	return e * HIST_HALF + (unsigned)(v >> e);
}

/* The smallest value of bucket i, and the width of the bucket. */
static inline uint64_t hist_low(unsigned i, uint64_t *width)
{
	unsigned e;

	if (i < HIST_SUB) {
		*width = 1;
		return i;
	}
	e = i / HIST_HALF - 1;
	*width = UINT64_C(1) << e;
	return (uint64_t)(i - e * HIST_HALF) << e;
}

static inline void hist_add(hist *h, uint64_t v)
{
	h->n[hist_index(v)]++;
	h->total++;
	h->sum += (long double)v;
	if (v > h->max)
		h->max = v;
	if (v < h->min)
		h->min = v;
}

static inline void hist_merge(hist *into, const hist *from)
{
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		into->n[i] += from->n[i];
	into->total += from->total;
	into->sum += from->sum;
	if (from->max > into->max)
		into->max = from->max;
	if (from->min < into->min)
		into->min = from->min;
}

/* The value at quantile q (0..1): the middle of the bucket holding it,
 * clamped to the exact min and max; 0 if the histogram is empty. */
static inline uint64_t hist_quantile(const hist *h, double q)
{
	uint64_t rank, seen = 0;

	if (h->total == 0)
		return 0;
	rank = (uint64_t)(q * (double)h->total + 0.5);
	if (rank < 1)
		rank = 1;
	if (rank > h->total)
		rank = h->total;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h->n[i];
		if (seen >= rank) {
			uint64_t width, v = hist_low(i, &width);

			v += width / 2;
			if (v > h->max)
				v = h->max;
			if (v < h->min)
				v = h->min;
			return v;
		}
	}
	return h->max;
}

#endif /* TSORACLE_BENCH_HIST_H */
