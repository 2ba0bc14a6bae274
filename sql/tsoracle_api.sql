--
-- tsoracle 1.1: the decoding helpers, tso_xact_ts(), tso_status() and who
-- may call what.
--
-- No raw timestamp is printed: every check is a boolean, a count or a
-- SQLSTATE, so the output is the same on every run.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS tsoracle;
RESET client_min_messages;

-- runs stmt; 'ok', or its SQLSTATE and message
CREATE FUNCTION pg_temp.sqlstate_of(stmt text)
RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE stmt;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

-- the functions of the extension and their attributes
SELECT p.oid::regprocedure AS function, p.provolatile AS volatile,
       p.proparallel AS parallel, p.proisstrict AS strict,
       p.proretset AS set_returning
FROM pg_depend d JOIN pg_proc p ON p.oid = d.objid
WHERE d.classid = 'pg_proc'::regclass AND d.deptype = 'e'
  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'tsoracle')
ORDER BY 1::text COLLATE "C";

--
-- 1. Decoding: tso_to_timestamptz, tso_logical, tso_from_timestamptz
--
SELECT tso_logical(0) AS l0,
       tso_logical(262143) AS last_of_ms,
       tso_logical(262144) AS first_of_next_ms,
       tso_logical((946684800123::bigint << 18) + 4242) AS l4242,
       tso_logical(9223372036854775807) AS of_max;
SELECT tso_to_timestamptz(0) AT TIME ZONE 'UTC' AS t0,
       tso_to_timestamptz(262143) = tso_to_timestamptz(0) AS same_ms,
       tso_to_timestamptz(262144) AT TIME ZONE 'UTC' AS t1ms,
       tso_from_timestamptz('3084-12-12 12:41:28.831999+00') = 9223372036854513664
         AS last_ms_ok,
       tso_from_timestamptz('2000-01-01 00:00:00.0009+00') = (946684800000::bigint << 18)
         AS truncates_to_ms;

-- STRICT: NULL in, NULL out
SELECT tso_logical(NULL) IS NULL AS logical_null,
       tso_to_timestamptz(NULL) IS NULL AS to_null,
       tso_from_timestamptz(NULL) IS NULL AS from_null;

-- every fresh timestamp is its millisecond's first timestamp plus its
-- logical part, and lies in [first of its ms, first of the next ms)
SELECT count(*) AS n,
       count(*) FILTER (WHERE tso_from_timestamptz(tso_to_timestamptz(t))
                              + tso_logical(t) = t) AS recomposed,
       count(*) FILTER (WHERE tso_logical(t) = (t & 262143)::integer
                          AND tso_logical(t) BETWEEN 0 AND 262143) AS logical_ok,
       count(*) FILTER (WHERE t >= tso_from_timestamptz(tso_to_timestamptz(t))
                          AND t < tso_from_timestamptz(tso_to_timestamptz(t)
                                                       + interval '1 millisecond'))
         AS within_its_ms
FROM tso_range(1000) AS t;

-- out of range: an error with SQLSTATE 22003 (a negative bigint cannot be
-- a timestamp) or 22008 (a timestamptz outside 1970 .. 3084, or infinite),
-- never a wrong answer
SELECT stmt, pg_temp.sqlstate_of(stmt) AS result
FROM (VALUES
    ('SELECT tso_to_timestamptz(-1)'),
    ('SELECT tso_to_timestamptz(-9223372036854775808)'),
    ('SELECT tso_logical(-1)'),
    ('SELECT tso_logical(-9223372036854775808)'),
    ('SELECT tso_from_timestamptz(''infinity'')'),
    ('SELECT tso_from_timestamptz(''-infinity'')'),
    ('SELECT tso_from_timestamptz(''1969-12-31 23:59:59.999999+00'')'),
    ('SELECT tso_from_timestamptz(''4713-01-01 00:00:00+00 BC'')'),
    ('SELECT tso_from_timestamptz(''3084-12-12 12:41:28.832+00'')'),
    ('SELECT tso_from_timestamptz(''294276-12-31 23:59:59+00'')'),
    ('SELECT tso_to_timestamptz(9223372036854775807)'),
    ('SELECT tso_from_timestamptz(''1970-01-01 00:00:00+00'')')
) AS v(stmt);
SELECT tso_logical(-1);

-- a table keyed by tso_now(), queried by time
CREATE TABLE api_ev (id bigint PRIMARY KEY DEFAULT tso_now(), n integer);
INSERT INTO api_ev (n) SELECT g FROM generate_series(1, 100) AS g;
SELECT count(*) FILTER (WHERE id >= tso_from_timestamptz(now() - interval '1 hour')
                          AND id < tso_from_timestamptz(clock_timestamp() + interval '1 hour'))
         AS this_hour,
       count(*) FILTER (WHERE id < tso_from_timestamptz('2000-01-01')) AS before_2000
FROM api_ev;
DROP TABLE api_ev;

--
-- 2. tso_xact_ts(): one timestamp per transaction
--

-- autocommit: each statement is a transaction of its own
SELECT tso_xact_ts() AS x1 \gset
SELECT tso_xact_ts() > :x1 AS next_statement_later;

-- one value for the whole statement, not one per row
SELECT count(DISTINCT ts) AS distinct_values, count(*) AS calls
FROM (SELECT tso_xact_ts() AS ts FROM generate_series(1, 1000)) s;

-- fresh at the first call, then the same value, through subtransactions
SELECT tso_now() AS before_xact \gset
BEGIN;
SELECT tso_xact_ts() AS x \gset
SELECT :x > :before_xact AS fresh_at_first_call;
SELECT tso_now() > :x AS tso_now_moves_on, tso_xact_ts() = :x AS same;
SAVEPOINT a;
SELECT tso_xact_ts() = :x AS same_in_subxact;
SAVEPOINT b;
SELECT tso_xact_ts() = :x AS same_nested;
ROLLBACK TO SAVEPOINT b;
SELECT tso_xact_ts() = :x AS same_after_rollback_to;
RELEASE SAVEPOINT a;
SELECT tso_xact_ts() = :x AS same_after_release;
DO $$
BEGIN
    BEGIN
        PERFORM tso_xact_ts();
        PERFORM 1 / 0;
    EXCEPTION WHEN division_by_zero THEN
        NULL;
    END;
END
$$;
SELECT tso_xact_ts() = :x AS same_after_plpgsql_exception;
COMMIT;
SELECT tso_xact_ts() > :x AS next_xact_later;

-- the first call inside a subtransaction that is rolled back: still the
-- transaction's value
BEGIN;
SAVEPOINT s;
SELECT tso_xact_ts() AS y \gset
ROLLBACK TO SAVEPOINT s;
SELECT tso_xact_ts() = :y AS kept_after_rollback_to;
COMMIT;
SELECT tso_xact_ts() > :y AS next_xact_later;

-- read-only transactions (no transaction id) each get their own value
BEGIN READ ONLY;
SELECT tso_xact_ts() AS r1 \gset
SELECT tso_xact_ts() = :r1 AS same, txid_current_if_assigned() IS NULL AS no_xid;
COMMIT;
BEGIN READ ONLY;
SELECT tso_xact_ts() > :r1 AS next_read_only_xact_later,
       txid_current_if_assigned() IS NULL AS no_xid;
COMMIT;

-- a transaction that writes, then one that fails
BEGIN;
CREATE TEMP TABLE api_t (ts bigint DEFAULT tso_xact_ts(), n integer);
INSERT INTO api_t (n) SELECT g FROM generate_series(1, 10) AS g;
SELECT tso_xact_ts() AS w \gset
SELECT count(*) AS rows, count(DISTINCT ts) AS one_ts, min(ts) = :w AS is_xact_ts
FROM api_t;
COMMIT;
BEGIN;
SELECT tso_xact_ts() > :w AS later;
SELECT tso_xact_ts() AS z \gset
SELECT 1 / 0;
ROLLBACK;
SELECT tso_xact_ts() > :z AS after_abort_later;
DROP TABLE api_t;

-- transaction control inside a DO block: COMMIT and ROLLBACK start new
-- transactions
DO $$
DECLARE
    a bigint;
    b bigint;
BEGIN
    a := tso_xact_ts();
    RAISE NOTICE 'same within the transaction: %', tso_xact_ts() = a;
    COMMIT;
    b := tso_xact_ts();
    RAISE NOTICE 'new value after COMMIT: %', b > a;
    ROLLBACK;
    RAISE NOTICE 'new value after ROLLBACK: %', tso_xact_ts() > b;
END
$$;

--
-- 3. tso_status(): the worker's view of the world
--

-- waits (up to 30 s) until the worker holds a sidecar status newer than
-- after
CREATE FUNCTION pg_temp.wait_status(after timestamptz)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. 3000 LOOP
        IF EXISTS (SELECT 1 FROM tso_status() WHERE sidecar_status_at > after) THEN
            RETURN true;
        END IF;
        PERFORM pg_sleep(0.01);
    END LOOP;
    RETURN false;
END
$$;

SELECT pg_temp.wait_status('-infinity') AS has_sidecar_status;
SELECT pid IS NOT NULL AS running,
       address = current_setting('tsoracle.sidecar_address') AS address_ok,
       connected,
       connected_since <= clock_timestamp() AS connected_since_ok,
       sidecar_node >= 1 AS has_node_id,
       sidecar_role,
       sidecar_serving,
       sidecar_leader = sidecar_node AS leads_itself,
       sidecar_term >= 1 AS has_term,
       sidecar_high_water BETWEEN clock_timestamp() - interval '1 minute'
                              AND clock_timestamp() + interval '2 minutes'
         AS high_water_near_now,
       sidecar_status_age BETWEEN interval '0' AND interval '10 s' AS status_recent,
       requests > 0 AS has_requests,
       batches BETWEEN 1 AND requests AS batches_ok,
       mean_batch_size >= 1 AS mean_batch_ok,
       timestamps >= requests AS timestamps_ok,
       errors >= 0 AS errors_ok,
       in_flight
FROM tso_status();

-- the worker asks again about once a second, even with no traffic
SELECT sidecar_status_at AS s1 FROM tso_status() \gset
SELECT pg_temp.wait_status(:'s1') AS refreshed;

-- the view: the same single row, the same columns
SELECT count(*) AS rows FROM tso_status;
SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type
FROM pg_attribute a
WHERE a.attrelid = 'tso_status'::regclass AND a.attnum > 0
ORDER BY a.attnum;

-- the 1.0 function still answers
SELECT connected, requests > 0 AS has_requests FROM tso_worker_status();

--
-- 4. Privileges: everyone may take and decode timestamps; only superusers
-- and members of pg_monitor may read the status
--
CREATE ROLE regress_tso_user;
CREATE ROLE regress_tso_monitor IN ROLE pg_monitor;

SELECT f.fn AS function,
       has_function_privilege('regress_tso_user', f.fn, 'EXECUTE') AS plain_user,
       has_function_privilege('regress_tso_monitor', f.fn, 'EXECUTE') AS pg_monitor_member
FROM (VALUES ('tso_now()'), ('tso_range(integer)'), ('tso_xact_ts()'),
             ('tso_to_timestamptz(bigint)'), ('tso_logical(bigint)'),
             ('tso_from_timestamptz(timestamptz)'), ('tso_status()'),
             ('tso_worker_status()')) AS f(fn)
ORDER BY f.fn COLLATE "C";
SELECT has_table_privilege('regress_tso_user', 'tso_status', 'SELECT') AS plain_user,
       has_table_privilege('regress_tso_monitor', 'tso_status', 'SELECT') AS pg_monitor_member;

SET ROLE regress_tso_user;
SELECT tso_now() > 0 AS tso_now_ok,
       (SELECT count(*) FROM tso_range(3)) AS tso_range_rows,
       tso_xact_ts() > 0 AS tso_xact_ts_ok,
       tso_logical(262145) AS tso_logical_ok,
       tso_to_timestamptz(tso_from_timestamptz('2030-01-01 00:00:00+00'))
         = '2030-01-01 00:00:00+00' AS round_trip_ok;
SELECT * FROM tso_status();
SELECT * FROM tso_status;
SELECT * FROM tso_worker_status();
SELECT stmt, pg_temp.sqlstate_of(stmt) AS result
FROM (VALUES ('SELECT * FROM tso_status()'), ('SELECT * FROM tso_status'),
             ('SELECT * FROM tso_worker_status()')) AS v(stmt);
RESET ROLE;

SET ROLE regress_tso_monitor;
SELECT count(*) AS rows, bool_and(connected) AS connected FROM tso_status();
SELECT count(*) AS rows, bool_and(connected) AS connected FROM tso_status;
SELECT connected FROM tso_worker_status();
SELECT tso_now() > 0 AS tso_now_ok;
RESET ROLE;

DROP ROLE regress_tso_user;
DROP ROLE regress_tso_monitor;
