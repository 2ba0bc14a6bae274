--
-- tsoracle: the worker follows tsoracle.sidecar_address on reload; with the
-- sidecar unreachable a call fails with SQLSTATE 08006 within
-- tsoracle.timeout (or is cut short by statement_timeout) and never hangs;
-- when the address is good again the worker reconnects by itself and the
-- ring is still consistent. Along the way: what tso_status() shows while
-- disconnected, tso_xact_ts() failing the same way, and the wait event of
-- a backend waiting for its timestamp.
--
-- Changes the server's configuration with ALTER SYSTEM and restores it:
-- meant for a temporary instance.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS tsoracle;
RESET client_min_messages;

-- waits (up to 30 s) until the worker uses addr and is (not) connected,
-- and (unless NULL) does (not) hold an answer from the sidecar's status
CREATE FUNCTION pg_temp.wait_worker(addr text, want_connected boolean,
                                    want_sidecar_status boolean DEFAULT NULL)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. 3000 LOOP
        IF EXISTS (SELECT 1 FROM tso_status()
                   WHERE address = addr AND connected = want_connected
                     AND (want_sidecar_status IS NULL OR
                          (sidecar_status_at IS NOT NULL) = want_sidecar_status)) THEN
            RETURN true;
        END IF;
        PERFORM pg_sleep(0.01);
    END LOOP;
    RETURN false;
END
$$;

-- waits (up to 30 s) until process p waits on the extension's wait event
-- named want, and shows it as pg_stat_activity does (the worker is
-- briefly busy between waits, with no wait event)
CREATE FUNCTION pg_temp.wait_for_wait_event(p integer, want text)
RETURNS TABLE (wait_event_type text, wait_event text) LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. 3000 LOOP
        RETURN QUERY SELECT a.wait_event_type, a.wait_event
            FROM pg_stat_activity a
            WHERE a.pid = p AND a.wait_event_type = 'Extension' AND a.wait_event = want;
        IF FOUND THEN
            RETURN;
        END IF;
        PERFORM pg_sleep(0.01);
        -- pg_stat_activity is a snapshot kept until the transaction ends
        PERFORM pg_stat_clear_snapshot();
    END LOOP;
END
$$;
SELECT pid AS worker_pid FROM pg_stat_activity
WHERE backend_type = 'tsoracle worker' \gset
-- the wait event the extension names name (src/compat.h) as this version
-- shows it: by its name from PostgreSQL 17 on, "Extension" before
CREATE FUNCTION pg_temp.wait_event_shown(name text) RETURNS text
LANGUAGE sql AS $$
    SELECT CASE WHEN current_setting('server_version_num')::int >= 170000
                THEN name ELSE 'Extension' END
$$;

SELECT current_setting('tsoracle.sidecar_address') AS good_address \gset
SELECT pg_temp.wait_worker(:'good_address', true) AS connected_at_start;
SELECT tso_now() AS before \gset

-- point the worker at a socket that does not exist
ALTER SYSTEM SET tsoracle.sidecar_address = '/nonexistent/tsoracled.sock';
SELECT pg_reload_conf();
SELECT pg_temp.wait_worker('/nonexistent/tsoracled.sock', false) AS switched;

-- disconnected, the worker waits to reconnect (backing off): its wait event
-- is TsoracleWorkerReconnect
SELECT * FROM pg_temp.wait_for_wait_event(:worker_pid,
    pg_temp.wait_event_shown('TsoracleWorkerReconnect'));

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

-- tso_status(): the worker's last error (recorded by now: the call above
-- waited for it), and no sidecar status (the one it had described the
-- sidecar at the old address)
SELECT connected,
       last_error LIKE 'connect to "/nonexistent/tsoracled.sock": %' AS last_error_ok,
       last_error_at IS NOT NULL AS has_last_error_at,
       errors > 0 AS counted_errors,
       num_nulls(sidecar_node, sidecar_role, sidecar_serving, sidecar_leader,
                 sidecar_term, sidecar_high_water, sidecar_status_at,
                 sidecar_status_age) AS null_sidecar_columns
FROM tso_status();

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

-- tso_xact_ts() fails the same way, and keeps nothing from the failed call
DO $$
BEGIN
    PERFORM tso_xact_ts();
    RAISE NOTICE 'no error';
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'tso_xact_ts: SQLSTATE %', SQLSTATE;
END
$$;

-- a backend waiting for its timestamp shows a wait event of type
-- "Extension" in pg_stat_activity (named "TsoracleTimestamp" from
-- PostgreSQL 17 on; "Extension" before); cancelling it ends the wait
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS dblink;
RESET client_min_messages;
SELECT dblink_connect('waiter',
                      format('dbname=%s port=%s host=%s', current_database(),
                             current_setting('port'),
                             split_part(current_setting('unix_socket_directories'), ',', 1)))
       AS waiter_connected;
SELECT pid AS waiter_pid FROM dblink('waiter', 'SELECT pg_backend_pid()') AS t(pid integer) \gset
SELECT dblink_exec('waiter', 'SET tsoracle.timeout = 30000') AS set_timeout;
SELECT dblink_send_query('waiter', 'SELECT tso_now()') AS sent;
SELECT * FROM pg_temp.wait_for_wait_event(:waiter_pid,
    pg_temp.wait_event_shown('TsoracleTimestamp'));
SELECT pg_cancel_backend(:waiter_pid) AS cancelled;
SELECT count(*) AS rows FROM dblink_get_result('waiter', false) AS t(ts bigint);
SELECT dblink_disconnect('waiter') AS disconnected;
DROP EXTENSION dblink;

-- statement_timeout ends the wait first (57014), leaving the slot idle
SET tsoracle.timeout = 10000;
SET statement_timeout = 100;
SELECT tso_now();
RESET statement_timeout;

-- back to the good address: the worker reconnects by itself
ALTER SYSTEM RESET tsoracle.sidecar_address;
SELECT pg_reload_conf();
SELECT pg_temp.wait_worker(:'good_address', true, true) AS reconnected;
-- connected, it waits for the sidecar and for requests: TsoracleWorkerMain
SELECT * FROM pg_temp.wait_for_wait_event(:worker_pid,
    pg_temp.wait_event_shown('TsoracleWorkerMain'));
SELECT connected, sidecar_role, sidecar_serving FROM tso_status();

-- calls work again, the abandoned ones left no trace, order still holds
SELECT tso_now() > :before AS works_again;
SELECT tso_xact_ts() > :before AS xact_ts_works_again;
SELECT count(*) AS n, max(t) - min(t) AS span, min(t) > :before AS fresh
FROM tso_range(100) AS t;
SELECT count(*) AS calls, count(*) FILTER (WHERE ts <= prev) AS not_increasing
FROM (SELECT ts, lag(ts) OVER (ORDER BY i) AS prev
      FROM (SELECT i, tso_now() AS ts FROM generate_series(1, 100) AS i) s) t;
RESET tsoracle.timeout;
