--
-- tsoracle: the worker follows tsoracle.sidecar_address on reload; with the
-- sidecar unreachable a call fails with SQLSTATE 08006 within
-- tsoracle.timeout (or is cut short by statement_timeout) and never hangs;
-- when the address is good again the worker reconnects by itself and the
-- ring is still consistent.
--
-- Changes the server's configuration with ALTER SYSTEM and restores it:
-- meant for a temporary instance.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS tsoracle;
RESET client_min_messages;

-- waits (up to 30 s) until the worker uses addr and is (not) connected
CREATE FUNCTION pg_temp.wait_worker(addr text, want_connected boolean)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. 3000 LOOP
        IF EXISTS (SELECT 1 FROM tso_worker_status()
                   WHERE address = addr AND connected = want_connected) THEN
            RETURN true;
        END IF;
        PERFORM pg_sleep(0.01);
    END LOOP;
    RETURN false;
END
$$;

SELECT current_setting('tsoracle.sidecar_address') AS good_address \gset
SELECT pg_temp.wait_worker(:'good_address', true) AS connected_at_start;
SELECT tso_now() AS before \gset

-- point the worker at a socket that does not exist
ALTER SYSTEM SET tsoracle.sidecar_address = '/nonexistent/tsoracled.sock';
SELECT pg_reload_conf();
SELECT pg_temp.wait_worker('/nonexistent/tsoracled.sock', false) AS switched;

-- fails after tsoracle.timeout, class 08, with the worker's last error
SET tsoracle.timeout = 300;
DO $$
DECLARE
    started timestamptz := clock_timestamp();
    elapsed interval;
    state text;
    msg text;
    detail text;
BEGIN
    PERFORM tso_now();
    RAISE NOTICE 'no error';
EXCEPTION WHEN OTHERS THEN
    elapsed := clock_timestamp() - started;
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
        detail = PG_EXCEPTION_DETAIL;
    RAISE NOTICE 'SQLSTATE %: %', state, msg;
    RAISE NOTICE 'detail: %',
        regexp_replace(detail, 'at [^,]+, was', 'at <time>, was');
    RAISE NOTICE 'waited for tsoracle.timeout: %',
        elapsed >= interval '300 ms' AND elapsed < interval '3 s';
END
$$;

-- the same through tso_range, and repeatedly: each call fails, none hangs
SET tsoracle.timeout = 50;
DO $$
DECLARE
    failures integer := 0;
BEGIN
    FOR i IN 1 .. 5 LOOP
        BEGIN
            PERFORM count(*) FROM tso_range(10);
        EXCEPTION WHEN connection_failure THEN
            failures := failures + 1;
        END;
    END LOOP;
    RAISE NOTICE 'failures: %', failures;
END
$$;

-- statement_timeout ends the wait first (57014), leaving the slot idle
SET tsoracle.timeout = 10000;
SET statement_timeout = 100;
SELECT tso_now();
RESET statement_timeout;

-- back to the good address: the worker reconnects by itself
ALTER SYSTEM RESET tsoracle.sidecar_address;
SELECT pg_reload_conf();
SELECT pg_temp.wait_worker(:'good_address', true) AS reconnected;

-- calls work again, the abandoned ones left no trace, order still holds
SELECT tso_now() > :before AS works_again;
SELECT count(*) AS n, max(t) - min(t) AS span, min(t) > :before AS fresh
FROM tso_range(100) AS t;
SELECT count(*) AS calls, count(*) FILTER (WHERE ts <= prev) AS not_increasing
FROM (SELECT ts, lag(ts) OVER (ORDER BY i) AS prev
      FROM (SELECT i, tso_now() AS ts FROM generate_series(1, 100) AS i) s) t;
RESET tsoracle.timeout;
