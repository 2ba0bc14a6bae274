--
-- tsoracle: versions and the update from 1.0 to 1.1.
--
-- Installs 1.1 afresh and records its objects, then installs 1.0, checks
-- it, updates it with ALTER EXTENSION ... UPDATE and checks that the result
-- has the very same objects, attributes, comments and privileges as the
-- fresh 1.1. Leaves 1.1 installed.
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS tsoracle;
RESET client_min_messages;

SELECT version FROM pg_available_extension_versions
WHERE name = 'tsoracle' ORDER BY version;
SELECT source, target, path FROM pg_extension_update_paths('tsoracle')
WHERE path IS NOT NULL ORDER BY source, target;
SELECT default_version FROM pg_available_extensions WHERE name = 'tsoracle';

-- Every member of the extension, with what defines it: for a function its
-- signature, result and attributes; for a view its query; the comment, the
-- privileges and the initial privileges that pg_dump relies on.
CREATE TEMP VIEW tso_members AS
SELECT pg_describe_object(d.classid, d.objid, d.objsubid) AS object,
       concat_ws(' | ',
           (SELECT format('args(%s) returns %s%s volatile=%s parallel=%s strict=%s secdef=%s rows=%s support=%s src=%s',
                          pg_get_function_arguments(p.oid),
                          CASE WHEN p.proretset THEN 'setof ' ELSE '' END,
                          pg_get_function_result(p.oid),
                          p.provolatile, p.proparallel, p.proisstrict,
                          p.prosecdef, p.prorows, p.prosupport, p.prosrc)
            FROM pg_proc p
            WHERE d.classid = 'pg_proc'::regclass AND p.oid = d.objid),
           (SELECT format('%s %s', c.relkind, pg_get_viewdef(c.oid))
            FROM pg_class c
            WHERE d.classid = 'pg_class'::regclass AND c.oid = d.objid)) AS definition,
       obj_description(d.objid,
                       (SELECT relname FROM pg_class WHERE oid = d.classid)) AS comment,
       COALESCE((SELECT p.proacl::text FROM pg_proc p
                 WHERE d.classid = 'pg_proc'::regclass AND p.oid = d.objid),
                (SELECT c.relacl::text FROM pg_class c
                 WHERE d.classid = 'pg_class'::regclass AND c.oid = d.objid)) AS acl,
       (SELECT i.initprivs::text FROM pg_init_privs i
        WHERE i.classoid = d.classid AND i.objoid = d.objid
          AND i.objsubid = d.objsubid) AS initprivs
FROM pg_depend d
WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'tsoracle');

-- a fresh install of the default version, 1.1
CREATE EXTENSION tsoracle;
SELECT extversion FROM pg_extension WHERE extname = 'tsoracle';
SELECT object FROM tso_members ORDER BY object COLLATE "C";
CREATE TEMP TABLE fresh_1_1 AS SELECT * FROM tso_members;
DROP EXTENSION tsoracle;

-- 1.0: its functions, and no 1.1 function
CREATE EXTENSION tsoracle VERSION '1.0';
SELECT extversion FROM pg_extension WHERE extname = 'tsoracle';
SELECT object FROM tso_members ORDER BY object COLLATE "C";
SELECT tso_now() > 0 AS tso_now_ok,
       (SELECT count(*) FROM tso_range(10)) AS tso_range_rows,
       tso_to_timestamptz(tso_from_timestamptz('2030-01-01 00:00:00+00'))
         = '2030-01-01 00:00:00+00' AS round_trip_ok,
       (SELECT connected FROM tso_worker_status()) AS worker_connected;
SELECT tso_xact_ts();
SELECT * FROM tso_status;

-- 1.0 let everyone read the worker's status
CREATE ROLE regress_tso_upgrade_user;
SELECT has_function_privilege('regress_tso_upgrade_user', 'tso_worker_status()', 'EXECUTE')
       AS plain_user_may_read_status_in_1_0;

-- a user's view over the 1.0 status function does not block the update
CREATE VIEW tso_link AS SELECT connected FROM tso_worker_status();

ALTER EXTENSION tsoracle UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'tsoracle';
SELECT connected FROM tso_link;
DROP VIEW tso_link;

-- the new functions work
BEGIN;
SELECT tso_xact_ts() AS x \gset
SELECT tso_xact_ts() = :x AS xact_ts_stable, tso_now() > :x AS tso_now_later;
COMMIT;
SELECT tso_logical((1::bigint << 18) + 7) AS tso_logical_ok,
       (SELECT count(*) FROM tso_status()) AS status_rows,
       (SELECT count(*) FROM tso_status) AS view_rows;

-- privileges after the update: the new timestamp functions for everyone,
-- the status for pg_monitor only (and no longer for everyone)
SELECT has_function_privilege('regress_tso_upgrade_user', 'tso_xact_ts()', 'EXECUTE')
         AS user_xact_ts,
       has_function_privilege('regress_tso_upgrade_user', 'tso_logical(bigint)', 'EXECUTE')
         AS user_logical,
       has_function_privilege('regress_tso_upgrade_user', 'tso_status()', 'EXECUTE')
         OR has_table_privilege('regress_tso_upgrade_user', 'tso_status', 'SELECT')
         OR has_function_privilege('regress_tso_upgrade_user', 'tso_worker_status()', 'EXECUTE')
         AS user_status,
       has_function_privilege('pg_monitor', 'tso_status()', 'EXECUTE')
         AND has_table_privilege('pg_monitor', 'tso_status', 'SELECT')
         AND has_function_privilege('pg_monitor', 'tso_worker_status()', 'EXECUTE')
         AS pg_monitor_status;
SET ROLE regress_tso_upgrade_user;
SELECT * FROM tso_worker_status();
SELECT tso_xact_ts() > 0 AS tso_xact_ts_ok;
RESET ROLE;
DROP ROLE regress_tso_upgrade_user;

-- the updated install equals a fresh 1.1 install, object by object
-- (no rows: no difference)
SELECT * FROM
    ((SELECT 'only after update' AS where_, * FROM tso_members
      EXCEPT SELECT 'only after update', * FROM fresh_1_1)
     UNION ALL
     (SELECT 'only in fresh 1.1', * FROM fresh_1_1
      EXCEPT SELECT 'only in fresh 1.1', * FROM tso_members)) AS diff
ORDER BY object COLLATE "C", where_;
SELECT count(*) AS members_compared FROM tso_members;

-- every older version, updated by ALTER EXTENSION ... UPDATE through
-- whichever update scripts lead from it to the default version, has the
-- very objects of a fresh install of the default version
DO $$
DECLARE
    v text;
    got text;
    differences bigint;
BEGIN
    FOR v IN SELECT version FROM pg_available_extension_versions
             WHERE name = 'tsoracle' AND version <>
                   (SELECT default_version FROM pg_available_extensions
                    WHERE name = 'tsoracle')
             ORDER BY string_to_array(version, '.')::int[]
    LOOP
        DROP EXTENSION tsoracle;
        EXECUTE format('CREATE EXTENSION tsoracle VERSION %L', v);
        ALTER EXTENSION tsoracle UPDATE;
        SELECT extversion INTO got FROM pg_extension WHERE extname = 'tsoracle';
        SELECT count(*) INTO differences FROM
            ((SELECT * FROM tso_members EXCEPT SELECT * FROM fresh_1_1)
             UNION ALL
             (SELECT * FROM fresh_1_1 EXCEPT SELECT * FROM tso_members)) AS diff;
        RAISE NOTICE 'from %: updated to %, % differences from a fresh install', v, got, differences;
    END LOOP;
END
$$;

-- already at the newest version
ALTER EXTENSION tsoracle UPDATE;
ALTER EXTENSION tsoracle UPDATE TO '1.0';
