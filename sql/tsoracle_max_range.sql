--
-- tsoracle.max_range: the largest count tso_range(n) accepts. Superuser-set
-- (default 1048576, at most the protocol's 16777216); a count above it
-- fails with SQLSTATE 22023, a message naming the limit and a hint naming
-- the setting.
--
-- No raw timestamp is printed: every check is a boolean, a count or a
-- SQLSTATE, so the output is the same on every run.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS tsoracle;
RESET client_min_messages;

-- the default, its bounds and who may change it
SELECT name, setting, min_val, max_val, context, boot_val
FROM pg_settings WHERE name = 'tsoracle.max_range';

-- at the limit: one request of 1048576 contiguous fresh values
SELECT tso_now() AS before_range \gset
SELECT count(*) AS n, max(t) - min(t) AS span, min(t) > :before_range AS fresh
FROM tso_range(1048576) AS t;

-- one above: 22023, naming the limit (message) and the setting (hint)
SELECT * FROM tso_range(1048577);
\set VERBOSITY sqlstate
SELECT count(*) FROM tso_range(1048577);
SELECT count(*) FROM tso_range(16777216);
-- in the select list too (value-per-call: the check runs before any row)
SELECT tso_range(2000000) LIMIT 1;
\set VERBOSITY default

-- a superuser lowers it: the new limit holds at once, in this session
SET tsoracle.max_range = 10;
SELECT count(*) AS n FROM tso_range(10) AS t;
SELECT * FROM tso_range(11);
-- and raises it up to the protocol's maximum, no further
SET tsoracle.max_range = 16777216;
SELECT count(*) AS n FROM tso_range(16777216) AS t;
SET tsoracle.max_range = 16777217;
SET tsoracle.max_range = 0;
RESET tsoracle.max_range;
SHOW tsoracle.max_range;

-- an ordinary role is bound by it and may not change it
CREATE ROLE regress_tso_ranger;
SET ROLE regress_tso_ranger;
SELECT count(*) AS n FROM tso_range(1048576) AS t;
SELECT count(*) FROM tso_range(1048577);
SET tsoracle.max_range = 16777216;
\set VERBOSITY sqlstate
SET tsoracle.max_range = 10;
\set VERBOSITY default
SHOW tsoracle.max_range;
RESET ROLE;

-- a superuser may let a role change it (GRANT SET ON PARAMETER)
GRANT SET ON PARAMETER tsoracle.max_range TO regress_tso_ranger;
SET ROLE regress_tso_ranger;
SET tsoracle.max_range = 2000000;
SELECT count(*) AS n FROM tso_range(2000000) AS t;
RESET tsoracle.max_range;
RESET ROLE;
REVOKE SET ON PARAMETER tsoracle.max_range FROM regress_tso_ranger;
DROP ROLE regress_tso_ranger;
