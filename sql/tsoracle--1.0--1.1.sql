/* sql/tsoracle--1.0--1.1.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION tsoracle UPDATE TO '1.1'" to load this file. \quit

-- 1.1 adds tso_xact_ts(), tso_logical(), tso_status() and the tso_status
-- view, and restricts tso_worker_status() to monitoring roles. The result
-- must be the same set of objects, attributes, comments and privileges as
-- tsoracle--1.1.sql (the regression test tsoracle_upgrade compares them).

COMMENT ON FUNCTION tso_now() IS
'one fresh timestamp from the tsoracle cluster per call (usable as a column DEFAULT); see tso_xact_ts() for one per transaction';

CREATE FUNCTION tso_xact_ts()
RETURNS bigint
AS 'MODULE_PATHNAME', 'tso_xact_ts'
LANGUAGE C STABLE PARALLEL RESTRICTED;

COMMENT ON FUNCTION tso_xact_ts() IS
'one timestamp per transaction: fresh at the first call in a transaction, the same value for every later call in it (subtransactions included), like now()';

CREATE FUNCTION tso_logical(ts bigint)
RETURNS integer
AS 'MODULE_PATHNAME', 'tso_logical_part'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION tso_logical(bigint) IS
'the logical part of a tsoracle timestamp (0 .. 262143): its rank within its millisecond';

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

-- Kept rather than dropped: a user's view over it would make DROP FUNCTION,
-- and so the whole update, fail.
COMMENT ON FUNCTION tso_worker_status() IS
'superseded by tso_status(); the tsoracle worker''s connection to its sidecar, last error and counters';

REVOKE ALL ON FUNCTION tso_status() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tso_status() TO pg_monitor;
REVOKE ALL ON tso_status FROM PUBLIC;
GRANT SELECT ON tso_status TO pg_monitor;
-- 1.0 let everyone call it; it shows what tso_status() shows.
REVOKE ALL ON FUNCTION tso_worker_status() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tso_worker_status() TO pg_monitor;
