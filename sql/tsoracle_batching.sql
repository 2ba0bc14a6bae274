--
-- tsoracle.batching: the tso_now() calls of one statement share grants of
-- growing size (1, 2, 4, ...); leftovers never outlive their statement.
--
-- The number of requests the worker took (tso_worker_status().requests)
-- shows how many grants a statement asked for: this test is the only
-- client of the server while it runs. No raw timestamp is printed.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS tsoracle;
RESET client_min_messages;

CREATE FUNCTION pg_temp.requests() RETURNS bigint
LANGUAGE sql AS $$ SELECT requests FROM tso_worker_status() $$;
CREATE TEMP TABLE mark (name text PRIMARY KEY, requests bigint);
CREATE FUNCTION pg_temp.mark(text) RETURNS void LANGUAGE sql AS $$
    INSERT INTO mark VALUES ($1, pg_temp.requests())
    ON CONFLICT (name) DO UPDATE SET requests = excluded.requests $$;
-- requests taken since mark $1 (the mark's own call to requests() is not one)
CREATE FUNCTION pg_temp.since(text) RETURNS bigint LANGUAGE sql AS $$
    SELECT pg_temp.requests() - requests FROM mark WHERE name = $1 $$;

SHOW tsoracle.batching;

CREATE TABLE ev (id bigint PRIMARY KEY DEFAULT tso_now(), n int NOT NULL);

--
-- 1. INSERT ... SELECT: 1000 rows, 10 requests (1 + 2 + ... + 512 >= 1000),
--    values unique and increasing in row order.
--
SELECT pg_temp.mark('a');
INSERT INTO ev (n) SELECT g FROM generate_series(1, 1000) g;
SELECT pg_temp.since('a') AS requests_for_1000_rows;
SELECT count(*) AS rows, count(DISTINCT id) AS distinct_ids,
       bool_and(id > prev) AS increasing_in_row_order
FROM (SELECT id, lag(id) OVER (ORDER BY n) AS prev FROM ev) s
WHERE prev IS NOT NULL OR id IS NOT NULL;

-- the next statement starts again at 1, above every value of the last one
SELECT pg_temp.mark('b');
INSERT INTO ev (n) VALUES (1001);
SELECT pg_temp.since('b') AS requests_for_1_row;
SELECT (SELECT id FROM ev WHERE n = 1001) > (SELECT max(id) FROM ev WHERE n <= 1000)
       AS later_statement_above;

--
-- 2. COPY: the defaults of one COPY are one statement.
--
SELECT pg_temp.mark('c');
COPY ev (n) FROM STDIN;
2001
2002
2003
2004
2005
2006
2007
\.
SELECT pg_temp.since('c') AS requests_for_7_copied_rows;
SELECT bool_and(id > prev) AS copy_increasing
FROM (SELECT id, lag(id) OVER (ORDER BY n) AS prev FROM ev WHERE n > 1000) s
WHERE prev IS NOT NULL;

--
-- 3. tsoracle.batching = off: one request per call.
--
SET tsoracle.batching = off;
SELECT pg_temp.mark('d');
INSERT INTO ev (n) SELECT g FROM generate_series(3001, 3100) g;
SELECT pg_temp.since('d') AS requests_for_100_rows_off;
RESET tsoracle.batching;
SELECT pg_temp.mark('d');
INSERT INTO ev (n) SELECT g FROM generate_series(3101, 3200) g;
SELECT pg_temp.since('d') AS requests_for_100_rows_statement;
SELECT count(*) = count(DISTINCT id) AS all_unique,
       bool_and(id > prev) AS all_increasing
FROM (SELECT id, lag(id) OVER (ORDER BY n) AS prev FROM ev) s
WHERE prev IS NOT NULL;

--
-- 4. A cursor: each FETCH is a statement of its own, so its values are
--    fresh for it and no leftover of one FETCH serves the next.
--
BEGIN;
DECLARE c CURSOR FOR SELECT tso_now() AS v FROM generate_series(1, 8);
SELECT pg_temp.mark('e');
MOVE 3 IN c;
SELECT pg_temp.since('e') AS requests_for_move_3;
ROLLBACK;
BEGIN;
CREATE TEMP TABLE f1 (v bigint);
CREATE FUNCTION pg_temp.fetch3(c refcursor) RETURNS SETOF bigint
LANGUAGE plpgsql AS $$
DECLARE v bigint;
BEGIN
    FOR i IN 1..3 LOOP
        FETCH c INTO v;
        RETURN NEXT v;
    END LOOP;
END $$;
DECLARE c CURSOR FOR SELECT tso_now() AS v FROM generate_series(1, 8);
SELECT pg_temp.mark('f');
INSERT INTO f1 SELECT pg_temp.fetch3('c');
SELECT pg_temp.since('f') AS requests_fetch_in_statement_1;
SELECT pg_temp.mark('g');
SELECT count(*) AS later_fetch_values_above
FROM pg_temp.fetch3('c') v WHERE v > (SELECT max(v) FROM f1);
SELECT pg_temp.since('g') AS requests_fetch_in_statement_2;
COMMIT;

--
-- 5. An error ends the statement: the next one asks afresh, starting at 1.
--
SELECT pg_temp.mark('h');
INSERT INTO ev (n) SELECT CASE WHEN g < 20 THEN 4000 + g ELSE g / 0 END
FROM generate_series(1, 30) g;
SELECT pg_temp.since('h') AS requests_until_error;
SELECT pg_temp.mark('h');
INSERT INTO ev (n) VALUES (5001);
SELECT pg_temp.since('h') AS requests_after_error;

-- an error while the executor starts (no privilege on ev) ends the
-- statement too: the next one asks afresh, the one after that as well
CREATE ROLE regress_tso_batching;
SET ROLE regress_tso_batching;
INSERT INTO ev (n) VALUES (5002);
RESET ROLE;
DROP ROLE regress_tso_batching;
SELECT pg_temp.mark('h');
INSERT INTO ev (n) VALUES (5003), (5004), (5005);
INSERT INTO ev (n) VALUES (5006);
SELECT pg_temp.since('h') AS requests_after_start_error;

--
-- 6. A transaction that ends inside a statement drops the leftovers: a
--    procedure committing after each row asks once per row.
--
CREATE PROCEDURE pg_temp.load_committing(k int) LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1..k LOOP
        INSERT INTO ev (n) VALUES (6000 + i);
        COMMIT;
    END LOOP;
END $$;
SELECT pg_temp.mark('i');
CALL pg_temp.load_committing(5);
SELECT pg_temp.since('i') AS requests_for_5_committed_rows;
-- without the commits, the procedure's rows are one statement
CREATE PROCEDURE pg_temp.load(k int) LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1..k LOOP
        INSERT INTO ev (n) VALUES (7000 + i);
    END LOOP;
END $$;
SELECT pg_temp.mark('j');
CALL pg_temp.load(7);
SELECT pg_temp.since('j') AS requests_for_7_rows_one_call;
SELECT bool_and(id > prev) AS procedure_rows_increasing
FROM (SELECT id, lag(id) OVER (ORDER BY n) AS prev FROM ev WHERE n > 6000) s
WHERE prev IS NOT NULL;

--
-- 7. tso_range() inside a statement: the tso_now() calls after it stay
--    above its values (it drops the leftovers of earlier calls).
--
SELECT bool_and(v > prev) AS increasing_in_evaluation_order
FROM (SELECT v, lag(v) OVER (ORDER BY k) AS prev
      FROM (SELECT 1 AS p, g AS k, tso_now() AS v FROM generate_series(1, 3) g
            UNION ALL
            SELECT 2, 3 + row_number() OVER (), x FROM tso_range(2) x
            UNION ALL
            SELECT 3, 5 + g, tso_now() FROM generate_series(1, 3) g) u) s
WHERE prev IS NOT NULL;

--
-- 8. No timestamp is asked for before a statement calls tso_now(): a plan
--    that calls it only in a branch never taken makes no request (the
--    statement polls, boundedly, for one the worker would have taken), a
--    statement that calls it makes one.
--
CREATE FUNCTION pg_temp.taken_since(mark_name text, polls int) RETURNS bool
LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1..polls LOOP
        IF pg_temp.since(mark_name) > 0 THEN
            RETURN true;
        END IF;
        PERFORM pg_sleep(0.01);
    END LOOP;
    RETURN false;
END $$;
SELECT pg_temp.mark('k');
SELECT pg_temp.taken_since('k', 50) AS request_before_a_call,
       CASE WHEN random() < 0 THEN tso_now() END IS NULL AS not_called;
SELECT pg_temp.mark('k');
SELECT tso_now() > 0 AS called;
SELECT pg_temp.since('k') AS requests_of_a_call;

--
-- 9. The setting's values.
--
SET tsoracle.batching = statement;
SET tsoracle.batching = per_call;
RESET tsoracle.batching;

DROP TABLE ev;
