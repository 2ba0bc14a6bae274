/* tso.h: the 64-bit timestamp format, physical_ms << 18 | logical. */
#ifndef TSORACLE_TSO_H
#define TSORACLE_TSO_H

/*
 * A timestamp is physical_ms << 18 | logical: a 46-bit field of Unix
 * milliseconds over 18 bits of logical counter (262,144 timestamps per
 * millisecond). This is the format of TiDB PD and of the Rust tsoracle, so
 * tools interoperate.
 *
 *     bits 63..18                          bits 17..0
 *     physical: Unix time, ms (46 bits)    logical counter
 *
 * The top bit of the physical field is the sign bit of a PostgreSQL bigint,
 * so the physical part is capped at 2^45 - 1 ms (the year 3084): every
 * timestamp is positive, and TSO_MAX is INT64_MAX. Past that, packing and
 * the allocator report an error.
 *
 * Every function here is total: packing checks its range and reports failure
 * instead of wrapping, because a wrapped timestamp would go backwards.
 *
 * Header-only and free of PostgreSQL and libuv, so the extension and the
 * sidecar compile the very same definitions.
 */

#include <stdbool.h>
#include <stdint.h>

#define TSO_LOGICAL_BITS   18
#define TSO_PHYSICAL_BITS  46
/* Logical values per millisecond. */
#define TSO_LOGICAL_PER_MS (UINT64_C(1) << TSO_LOGICAL_BITS)
#define TSO_LOGICAL_MASK   (TSO_LOGICAL_PER_MS - 1)
/* Largest physical part, in Unix milliseconds: the field's top bit stays 0. */
#define TSO_PHYSICAL_MAX   ((UINT64_C(1) << (TSO_PHYSICAL_BITS - 1)) - 1)
/* Largest timestamp: INT64_MAX. */
#define TSO_MAX            ((TSO_PHYSICAL_MAX << TSO_LOGICAL_BITS) | TSO_LOGICAL_MASK)

static inline uint64_t tso_physical(uint64_t ts)
{
	return ts >> TSO_LOGICAL_BITS;
}

static inline uint32_t tso_logical(uint64_t ts)
{
	return (uint32_t)(ts & TSO_LOGICAL_MASK);
}

/* Packs (physical_ms, logical); false if either part is out of range. */
static inline bool tso_pack(uint64_t physical_ms, uint64_t logical, uint64_t *ts)
{
	if (physical_ms > TSO_PHYSICAL_MAX || logical > TSO_LOGICAL_MASK)
		return false;
	*ts = (physical_ms << TSO_LOGICAL_BITS) | logical;
	return true;
}

/* The smallest timestamp of millisecond physical_ms (must be in range). */
static inline uint64_t tso_first_of_ms(uint64_t physical_ms)
{
	return physical_ms << TSO_LOGICAL_BITS;
}

/* The largest timestamp of millisecond physical_ms (must be in range). */
static inline uint64_t tso_last_of_ms(uint64_t physical_ms)
{
	return (physical_ms << TSO_LOGICAL_BITS) | TSO_LOGICAL_MASK;
}

#endif /* TSORACLE_TSO_H */
