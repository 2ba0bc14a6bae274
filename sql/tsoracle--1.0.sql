/* sql/tsoracle--1.0.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION tsoracle" to load this file. \quit

-- A timestamp is a bigint: physical_ms << 18 | logical (46 bits of Unix
-- milliseconds, 18 bits of logical counter). Every timestamp handed out is
-- greater than every timestamp whose call had finished before this call
-- began, anywhere in the cluster, and none is handed out twice.

CREATE FUNCTION tso_now()
RETURNS bigint
AS 'MODULE_PATHNAME', 'tso_now'
LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;

COMMENT ON FUNCTION tso_now() IS
'one fresh timestamp from the tsoracle cluster (usable as a column DEFAULT)';

CREATE FUNCTION tso_range_support(internal)
RETURNS internal
AS 'MODULE_PATHNAME', 'tso_range_support'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION tso_range(n integer)
RETURNS SETOF bigint
AS 'MODULE_PATHNAME', 'tso_range'
LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED
ROWS 1000
SUPPORT tso_range_support;

COMMENT ON FUNCTION tso_range(integer) IS
'n fresh timestamps, ascending and contiguous, from one request (1 <= n <= 16777216)';

CREATE FUNCTION tso_to_timestamptz(ts bigint)
RETURNS timestamptz
AS 'MODULE_PATHNAME', 'tso_to_timestamptz'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION tso_to_timestamptz(bigint) IS
'the physical part of a tsoracle timestamp, as a timestamptz (millisecond precision)';

CREATE FUNCTION tso_from_timestamptz(t timestamptz)
RETURNS bigint
AS 'MODULE_PATHNAME', 'tso_from_timestamptz'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION tso_from_timestamptz(timestamptz) IS
'the smallest tsoracle timestamp of the millisecond of t';

CREATE FUNCTION tso_worker_status(
    OUT pid integer,
    OUT connected boolean,
    OUT address text,
    OUT connected_since timestamptz,
    OUT last_error text,
    OUT last_error_at timestamptz,
    OUT requests bigint,
    OUT batches bigint,
    OUT timestamps bigint,
    OUT errors bigint,
    OUT in_flight integer)
RETURNS record
AS 'MODULE_PATHNAME', 'tso_worker_status'
LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;

COMMENT ON FUNCTION tso_worker_status() IS
'the tsoracle worker''s connection to its sidecar, last error and counters';
