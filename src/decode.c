/*-------------------------------------------------------------------------
 *
 * decode.c
 *		SQL functions that take tsoracle timestamps apart and build them from
 *		a timestamptz; no sidecar involved.
 *
 * A timestamp is physical_ms << 18 | logical (common/tso.h). Every
 * non-negative bigint decodes (the physical part of INT64_MAX is
 * 3084-12-12 12:41:28.831 UTC, well inside timestamptz's range), and every
 * finite timestamptz from the Unix epoch to that millisecond encodes.
 * Anything else is an error, never a wrapped or clamped value:
 *	22003 numeric_value_out_of_range	a negative timestamp: no timestamp has
 *								the sign bit set (tso.h), so it cannot
 *								have come from tsoracle.
 *	22008 datetime_field_overflow	a timestamptz that is infinite or outside
 *								1970-01-01 .. 3084-12-12 12:41:28.831 UTC
 *								(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE, as
 *								PostgreSQL's own timestamp errors).
 *
 * src/decode.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/int.h"
#include "datatype/timestamp.h"
#include "fmgr.h"
#include "utils/timestamp.h"

#include "decode.h"
#include "tso.h"

/* Microseconds from the Unix epoch to PostgreSQL's (2000-01-01). */
#define DECODE_UNIX_TO_PG_EPOCH_USECS \
	((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY)

/* Microseconds per millisecond. */
#define DECODE_USECS_PER_MS		INT64CONST(1000)

PG_FUNCTION_INFO_V1(tso_to_timestamptz);
PG_FUNCTION_INFO_V1(tso_logical_part);
PG_FUNCTION_INFO_V1(tso_from_timestamptz);

static uint64 decode_check_ts(int64 ts);

bool
decode_unix_ms(uint64 unix_ms, TimestampTz *result)
{
	TimestampTz t;

	/* beyond TSO_PHYSICAL_MAX the multiplication below could overflow */
	if (unix_ms > TSO_PHYSICAL_MAX)
		return false;
	t = (TimestampTz) unix_ms * DECODE_USECS_PER_MS -
		DECODE_UNIX_TO_PG_EPOCH_USECS;
	if (!IS_VALID_TIMESTAMP(t))
		return false;
	*result = t;
	return true;
}

/* A bigint argument as a timestamp; errors out if it cannot be one. */
static uint64
decode_check_ts(int64 ts)
{
	if (ts < 0)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("tsoracle timestamp must not be negative"),
				 errdetail("The value given was " INT64_FORMAT "; tsoracle timestamps are between 0 and " INT64_FORMAT ".",
						   ts, PG_INT64_MAX)));
	return (uint64) ts;
}

/*
 * tso_to_timestamptz(ts bigint) RETURNS timestamptz: the physical part of a
 * timestamp, as a timestamptz with millisecond precision.
 */
Datum
tso_to_timestamptz(PG_FUNCTION_ARGS)
{
	uint64		ts = decode_check_ts(PG_GETARG_INT64(0));
	TimestampTz result;

	/* cannot fail: the physical part of a bigint is at most TSO_PHYSICAL_MAX */
	if (!decode_unix_ms(tso_physical(ts), &result))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	PG_RETURN_TIMESTAMPTZ(result);
}

/*
 * tso_logical(ts bigint) RETURNS integer: the logical part of a timestamp,
 * 0 .. 262143: its rank among the timestamps of its millisecond. (The C
 * name differs because tso.h's tso_logical() is the unpacking it uses.)
 */
Datum
tso_logical_part(PG_FUNCTION_ARGS)
{
	uint64		ts = decode_check_ts(PG_GETARG_INT64(0));

	PG_RETURN_INT32((int32) tso_logical(ts));
}

/*
 * tso_from_timestamptz(t timestamptz) RETURNS bigint: the smallest timestamp
 * of t's millisecond, for range conditions on timestamp columns.
 */
Datum
tso_from_timestamptz(PG_FUNCTION_ARGS)
{
	TimestampTz t = PG_GETARG_TIMESTAMPTZ(0);
	int64		unix_usecs;
	uint64		ms;

	if (TIMESTAMP_NOT_FINITE(t))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("infinite timestamp cannot be converted to a tsoracle timestamp")));
	if (pg_add_s64_overflow(t, DECODE_UNIX_TO_PG_EPOCH_USECS, &unix_usecs) ||
		unix_usecs < 0 ||
		(uint64) (unix_usecs / DECODE_USECS_PER_MS) > TSO_PHYSICAL_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range for a tsoracle timestamp"),
				 errdetail("tsoracle timestamps cover 1970-01-01 00:00:00.000+00 to 3084-12-12 12:41:28.831+00.")));
	ms = (uint64) (unix_usecs / DECODE_USECS_PER_MS);
	PG_RETURN_INT64((int64) tso_first_of_ms(ms));
}
