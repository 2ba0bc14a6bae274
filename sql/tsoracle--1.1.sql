/* sql/tsoracle--1.1.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION tsoracle" to load this file. \quit

-- A timestamp is a bigint: physical_ms << 18 | logical (46 bits of Unix
-- milliseconds, 18 bits of logical counter). Every timestamp handed out is
-- greater than every timestamp whose call had finished before this call
-- began, anywhere in the cluster, and none is handed out twice.
--
-- Privileges: the functions that hand out or decode timestamps are
-- executable by everyone (PUBLIC, the default); the monitoring functions and
-- the tso_status view only by superusers and members of pg_monitor.

-- Timestamps from the cluster

CREATE FUNCTION tso_now()
RETURNS bigint
AS 'MODULE_PATHNAME', 'tso_now'
LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;

COMMENT ON FUNCTION tso_now() IS
'one fresh timestamp from the tsoracle cluster per call (usable as a column DEFAULT); see tso_xact_ts() for one per transaction';

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

-- STABLE, like now(): the same value for the whole transaction, so the
-- planner may compare an index against it. PARALLEL RESTRICTED: the value is
-- kept in the backend that runs the transaction.
CREATE FUNCTION tso_xact_ts()
RETURNS bigint
AS 'MODULE_PATHNAME', 'tso_xact_ts'
LANGUAGE C STABLE PARALLEL RESTRICTED;

COMMENT ON FUNCTION tso_xact_ts() IS
'one timestamp per transaction: fresh at the first call in a transaction, the same value for every later call in it (subtransactions included), like now()';

-- Decoding (no sidecar involved)

CREATE FUNCTION tso_to_timestamptz(ts bigint)
RETURNS timestamptz
AS 'MODULE_PATHNAME', 'tso_to_timestamptz'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION tso_to_timestamptz(bigint) IS
'the physical part of a tsoracle timestamp, as a timestamptz (millisecond precision)';

CREATE FUNCTION tso_logical(ts bigint)
RETURNS integer
AS 'MODULE_PATHNAME', 'tso_logical_part'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION tso_logical(bigint) IS
'the logical part of a tsoracle timestamp (0 .. 262143): its rank within its millisecond';

CREATE FUNCTION tso_from_timestamptz(t timestamptz)
RETURNS bigint
AS 'MODULE_PATHNAME', 'tso_from_timestamptz'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION tso_from_timestamptz(timestamptz) IS
'the smallest tsoracle timestamp of the millisecond of t';

-- Monitoring

CREATE FUNCTION tso_status(
    OUT pid integer,
    OUT address text,
    OUT connected boolean,
    OUT connected_since timestamptz,
    OUT sidecar_node bigint,
    OUT sidecar_role text,
    OUT sidecar_serving boolean,
    OUT sidecar_leader bigint,
    OUT sidecar_term bigint,
    OUT sidecar_high_water timestamptz,
    OUT sidecar_status_at timestamptz,
    OUT sidecar_status_age interval,
    OUT requests bigint,
    OUT batches bigint,
    OUT mean_batch_size double precision,
    OUT timestamps bigint,
    OUT errors bigint,
    OUT last_error text,
    OUT last_error_at timestamptz,
    OUT in_flight integer)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'tso_status'
LANGUAGE C VOLATILE STRICT PARALLEL SAFE
ROWS 1;

COMMENT ON FUNCTION tso_status() IS
'the tsoracle worker''s view of the world: its sidecar link, the sidecar''s last reported role, leader, term and high-water mark, counters and last error';

CREATE VIEW tso_status AS
    SELECT * FROM tso_status();

COMMENT ON VIEW tso_status IS
'the tsoracle worker''s view of the world (see the function tso_status())';

-- Superseded by tso_status(); kept so that queries and views written
-- against 1.0 keep working.
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
'superseded by tso_status(); the tsoracle worker''s connection to its sidecar, last error and counters';

-- The status shows the sidecar's address and the worker's errors (which may
-- name hosts and paths): monitoring roles only, as pg_stat_activity's
-- details of other sessions are.
REVOKE ALL ON FUNCTION tso_status() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tso_status() TO pg_monitor;
REVOKE ALL ON tso_status FROM PUBLIC;
GRANT SELECT ON tso_status TO pg_monitor;
REVOKE ALL ON FUNCTION tso_worker_status() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tso_worker_status() TO pg_monitor;
