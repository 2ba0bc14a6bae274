--
-- tsoracle: the SQL surface, against a running sidecar.
--
-- No raw timestamp is printed: every check is a boolean or a count, so the
-- output is the same on every run.
--
CREATE EXTENSION tsoracle;

-- one timestamp: a positive bigint
SELECT tso_now() > 0 AS positive;

-- strictly increasing across 1000 calls in one statement (VOLATILE: one call
-- per row, evaluated in generate_series order)
SELECT count(*) AS calls,
       count(*) FILTER (WHERE ts <= prev) AS not_increasing,
       count(DISTINCT ts) AS distinct_values
FROM (SELECT ts, lag(ts) OVER (ORDER BY i) AS prev
      FROM (SELECT i, tso_now() AS ts FROM generate_series(1, 1000) AS i) s) t;

-- and across statements: a later call gets a larger value
SELECT tso_now() AS t1 \gset
SELECT tso_now() > :t1 AS later;
SELECT tso_now() AS t2 \gset
SELECT :t2 > :t1 AS later_again;

-- the physical part is Unix milliseconds, close to this server's clock
SELECT abs((tso_now() >> 18) -
           (extract(epoch FROM clock_timestamp()) * 1000)::bigint) < 60000
       AS near_clock;

-- tso_range(5): five contiguous ascending values, all fresh
SELECT tso_now() AS before_range \gset
SELECT count(*) AS n,
       max(t) - min(t) AS span,
       count(DISTINCT t) AS distinct_values,
       min(t) > :before_range AS fresh
FROM tso_range(5) AS t;
SELECT bool_and(t = prev + 1) AS contiguous_ascending
FROM (SELECT t, lag(t) OVER (ORDER BY ord) AS prev
      FROM tso_range(5) WITH ORDINALITY AS r(t, ord)) s
WHERE prev IS NOT NULL;

-- tso_range(1)
SELECT tso_now() AS before_one \gset
SELECT count(*) AS n, min(t) > :before_one AS fresh FROM tso_range(1) AS t;

-- a big range: one request of 1,000,000
SELECT count(*) AS n, max(t) - min(t) AS span FROM tso_range(1000000) AS t;

-- the largest range the protocol allows, TP_MAX_COUNT = 2^24, once a
-- superuser has raised tsoracle.max_range to it (tsoracle_max_range.sql)
SET tsoracle.max_range = 16777216;
SELECT count(*) AS n, max(t) - min(t) AS span FROM tso_range(16777216) AS t;

-- ranges never overlap, and come after each other
SELECT max(t) AS r1_max FROM tso_range(1000) AS t \gset
SELECT min(t) > :r1_max AS after_previous_range FROM tso_range(1000) AS t;

-- a range shares no value with the calls right before and after it (tight
-- loop, so that most calls fall in the same millisecond)
DO $$
DECLARE
    before_r bigint;
    r_min bigint;
    r_max bigint;
    bad integer := 0;
BEGIN
    FOR i IN 1 .. 200 LOOP
        before_r := tso_now();
        SELECT min(t), max(t) INTO r_min, r_max FROM tso_range(3) AS t;
        IF r_min <= before_r OR r_max - r_min <> 2 OR tso_now() <= r_max THEN
            bad := bad + 1;
        END IF;
    END LOOP;
    RAISE NOTICE 'ranges overlapping a neighbouring call: %', bad;
END
$$;

-- NULL count: STRICT, no rows
SELECT count(*) AS n FROM tso_range(NULL);

-- the planner's row estimate is the constant count
DO $$
DECLARE
    plan json;
BEGIN
    EXECUTE 'EXPLAIN (FORMAT JSON) SELECT * FROM tso_range(42)' INTO plan;
    RAISE NOTICE 'estimated rows: %', plan->0->'Plan'->>'Plan Rows';
END
$$;

-- counts outside [1, tsoracle.max_range]: SQLSTATE 22023 (still raised
-- to 16777216 here)
SELECT * FROM tso_range(0);
SELECT * FROM tso_range(-1);
SELECT * FROM tso_range(16777217);
DO $$
DECLARE
    n integer;
BEGIN
    FOREACH n IN ARRAY ARRAY[0, -1, 16777217, -2147483648, 2147483647]
    LOOP
        BEGIN
            PERFORM count(*) FROM tso_range(n);
            RAISE NOTICE 'tso_range(%): no error', n;
        EXCEPTION WHEN OTHERS THEN
            RAISE NOTICE 'tso_range(%): SQLSTATE %: %', n, SQLSTATE, SQLERRM;
        END;
    END LOOP;
END
$$;
RESET tsoracle.max_range;

-- tso_now() as a column DEFAULT: distinct and increasing in insertion order
CREATE TABLE ev (id bigint PRIMARY KEY DEFAULT tso_now(), n integer NOT NULL);
INSERT INTO ev (n) SELECT g FROM generate_series(1, 1000) AS g;
INSERT INTO ev (n) VALUES (1001);
INSERT INTO ev (n) VALUES (1002);
SELECT count(*) AS rows_inserted, count(DISTINCT id) AS distinct_ids
FROM ev;
SELECT count(*) FILTER (WHERE id <= prev) AS out_of_order
FROM (SELECT id, lag(id) OVER (ORDER BY n) AS prev FROM ev) s;
DROP TABLE ev;

-- decoding helpers
SELECT abs(extract(epoch FROM tso_to_timestamptz(tso_now()) - clock_timestamp())) < 60
       AS decodes_near_now;
SELECT tso_from_timestamptz('2000-01-01 00:00:00+00') AS y2k,
       tso_from_timestamptz('2000-01-01 00:00:00+00') = (946684800000::bigint << 18) AS y2k_ok;
SELECT tso_to_timestamptz((946684800123::bigint << 18) + 262143) AT TIME ZONE 'UTC'
       AS decoded;
SELECT tso_to_timestamptz(tso_from_timestamptz('2031-05-06 07:08:09.123456+00'))
       = '2031-05-06 07:08:09.123+00'::timestamptz AS round_trip;
SELECT tso_from_timestamptz('1970-01-01 00:00:00+00') AS epoch;
SELECT tso_to_timestamptz(9223372036854775807) AT TIME ZONE 'UTC' AS last_representable;
SELECT tso_to_timestamptz(-1);
SELECT tso_from_timestamptz('1969-12-31 23:59:59.999+00');
SELECT tso_from_timestamptz('infinity');
SELECT tso_from_timestamptz('3084-12-12 12:41:28.831+00') = 9223372036854513664 AS last_ms;
SELECT tso_from_timestamptz('3084-12-12 12:41:28.832+00');

-- settings
SET tsoracle.timeout = '3s';
SHOW tsoracle.timeout;
SET tsoracle.timeout = 0;
SET tsoracle.timeout = 600001;
RESET tsoracle.timeout;
SET tsoracle.sidecar_address = '/tmp/other.sock';
SET tsoracle.max_inflight = 8;
SET tsoracle.no_such_setting = 1;

-- the worker's status: connected, and it has served the calls above
SELECT pid IS NOT NULL AS running,
       connected,
       connected_since IS NOT NULL AS has_connected,
       requests > 0 AS served_requests,
       batches > 0 AS sent_batches,
       timestamps >= 1000000 + 16777216 AS counted_timestamps,
       in_flight
FROM tso_worker_status();
SELECT backend_type, wait_event_type
FROM pg_stat_activity WHERE backend_type = 'tsoracle worker';
