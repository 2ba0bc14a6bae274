--
-- tsoracle.sidecar_address and tsoracle.sidecar_user: every bad value is
-- refused when it is set (ALTER SYSTEM runs the same check as a reload),
-- with a DETAIL saying what is wrong and a HINT with a good value; nothing
-- is written, and the worker keeps its address.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS tsoracle;
RESET client_min_messages;

SELECT current_setting('tsoracle.sidecar_address') AS address_before \gset

-- a relative path, with and without the unix: prefix
ALTER SYSTEM SET tsoracle.sidecar_address = 'tsoracled.sock';
ALTER SYSTEM SET tsoracle.sidecar_address = 'unix:run/tsoracled.sock';
-- empty
ALTER SYSTEM SET tsoracle.sidecar_address = '';
-- a path longer than a unix socket address holds (108 bytes)
SELECT '/run/tsoracle/' || repeat('x', 100) || '.sock' AS long_path \gset
ALTER SYSTEM SET tsoracle.sidecar_address = :'long_path';
-- TCP: no port, an empty host, ports out of range or not numbers
ALTER SYSTEM SET tsoracle.sidecar_address = 'localhost';
ALTER SYSTEM SET tsoracle.sidecar_address = ':5433';
ALTER SYSTEM SET tsoracle.sidecar_address = 'localhost:0';
ALTER SYSTEM SET tsoracle.sidecar_address = 'localhost:65536';
ALTER SYSTEM SET tsoracle.sidecar_address = 'tcp:localhost:54x';
-- IPv6 without brackets, and a bracket without its port
ALTER SYSTEM SET tsoracle.sidecar_address = '::1:5433';
ALTER SYSTEM SET tsoracle.sidecar_address = '[::1]5433';
-- a host name with a space
ALTER SYSTEM SET tsoracle.sidecar_address = 'side car:5433';
-- not changeable in a session
SET tsoracle.sidecar_address = '/run/tsoracle/tsoracled.sock';

-- the user the sidecar may run as: a name that exists, a uid, or empty
ALTER SYSTEM SET tsoracle.sidecar_user = 'no_such_user_for_tsoracle';
SET tsoracle.sidecar_user = 'root';
SELECT boot_val, context FROM pg_settings WHERE name = 'tsoracle.sidecar_user';

-- the default address, and nothing changed
SELECT boot_val FROM pg_settings WHERE name = 'tsoracle.sidecar_address';
SELECT current_setting('tsoracle.sidecar_address') = :'address_before' AS unchanged;
SELECT count(*) AS written FROM pg_file_settings WHERE name LIKE 'tsoracle.%'
  AND sourcefile LIKE '%postgresql.auto.conf';
