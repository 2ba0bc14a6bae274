# Paths users take with the extension, through a real sidecar and a real
# PostgreSQL (docs/sql.md): a parallel query calling tso_now() (a
# PARALLEL RESTRICTED function: evaluated in the leader only, above the
# Gather), PREPARE TRANSACTION with tso_xact_ts(), two databases of one
# server, the extension in a schema of its own, CREATE EXTENSION by a
# role that is not a superuser and on a server without
# shared_preload_libraries, a reload of tsoracle.max_inflight while
# pgbench calls tso_now(), and a hot standby calling tso_now().
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use TsoracleTest;

my $sc = sidecar_start(sidecar_new(name => 'paths'));
my $node = pg_node_for('paths', $sc, "max_prepared_transactions = 4\n" . $GUARD_OFF);

# ---- a parallel query ----------------------------------------------------
$node->safe_psql('postgres', 'CREATE TABLE big AS SELECT g FROM generate_series(1, 200000) g; ANALYZE big');
my $par = q{SET max_parallel_workers_per_gather = 2; SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0; };
my $plan = $node->safe_psql('postgres',
	$par . 'EXPLAIN (VERBOSE, COSTS OFF) SELECT tso_now(), g FROM big WHERE g % 1000 = 0');
like($plan, qr/Gather/, 'the query has a parallel plan');
# The Gather (the leader) evaluates tso_now(); the nodes below it, which
# the workers run, must not.
my ($gather, $below) = $plan =~ /^(.*?Gather.*?)(->.*)\z/s;
like($gather // '', qr/Output: tso_now\(\)/, 'the leader evaluates tso_now(), above the Gather') or diag($plan);
unlike($below // 'no plan below a Gather', qr/tso_now/, 'no parallel worker evaluates tso_now() (restricted)')
  or diag($plan);
my $out = $node->safe_psql('postgres',
	$par . 'SELECT count(*), count(DISTINCT t) FROM (SELECT tso_now() t, g FROM big WHERE g % 1000 = 0) s');
is($out, '200|200', 'the parallel query returns one distinct timestamp per row');
my $ran = $node->safe_psql('postgres',
	$par . q{EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT tso_now(), g FROM big WHERE g % 1000 = 0});
like($ran, qr/Workers Launched: [1-9]/, 'parallel workers did run the scan');

# ---- PREPARE TRANSACTION with tso_xact_ts() ------------------------------
my $bg = $node->background_psql('postgres', on_error_stop => 0);
my $a = $bg->query_safe('BEGIN; SELECT tso_xact_ts()');
chomp $a;
my $a2 = $bg->query_safe('SELECT tso_xact_ts()');
chomp $a2;
is($a2, $a, 'tso_xact_ts() is one value inside the transaction');
$bg->query_safe(q{PREPARE TRANSACTION 'tso1'});
my $b = $bg->query_safe('BEGIN; SELECT tso_xact_ts()');
chomp $b;
$bg->query_safe('COMMIT');
cmp_ok($b, '>', $a, 'the transaction after PREPARE TRANSACTION gets a new, larger value');
$bg->query_safe(q{COMMIT PREPARED 'tso1'});
is($node->safe_psql('postgres', 'SELECT count(*) FROM pg_prepared_xacts'), '0', 'the prepared transaction committed');
$bg->quit;

# ---- two databases, one worker ------------------------------------------
$node->safe_psql('postgres', 'CREATE DATABASE second');
$node->safe_psql('second', 'CREATE EXTENSION tsoracle');
my @v;
for my $i (1 .. 10)
{
	push @v, $node->safe_psql($i % 2 ? 'postgres' : 'second', 'SELECT tso_now()');
}
check_increasing('calls alternating between two databases', @v);

# ---- the extension in a schema of its own --------------------------------
$node->safe_psql('postgres', 'CREATE DATABASE third');
$node->safe_psql('third', 'CREATE SCHEMA tso; CREATE EXTENSION tsoracle SCHEMA tso');
is($node->safe_psql('third', q{SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'tsoracle'}),
	'tso', 'the extension lives in schema tso');
my $in_schema = $node->safe_psql('third', 'SELECT tso.tso_now()');
cmp_ok($in_schema, '>', $v[-1], 'tso.tso_now() serves, above the earlier values');
my ($rc, $o, $err) = $node->psql('third', 'SELECT tso_now()');
like($err, qr/function tso_now\(\) does not exist/, 'and is not on the default search_path');
is($node->safe_psql('third', 'SET search_path = tso; SELECT tso_to_timestamptz(tso_xact_ts()) IS NOT NULL'),
	't', 'with search_path set, every function is found');

# ---- CREATE EXTENSION by a role that is not a superuser ------------------
$node->safe_psql('postgres', 'CREATE DATABASE fourth; CREATE ROLE app LOGIN; GRANT CREATE ON DATABASE fourth TO app');
($rc, $o, $err) = $node->psql('fourth', 'CREATE EXTENSION tsoracle', extra_params => [ '-U', 'app', '-v', 'VERBOSITY=verbose' ]);
isnt($rc, 0, 'CREATE EXTENSION by a role that is not a superuser fails');
like($err, qr/42501.*permission denied to create extension "tsoracle"/s, 'with 42501, permission denied (untrusted extension)');
$node->safe_psql('postgres', 'GRANT EXECUTE ON FUNCTION tso_now() TO app');
cmp_ok($node->safe_psql('postgres', 'SELECT tso_now()', extra_params => [ '-U', 'app' ]), '>', $in_schema,
	'once a superuser created it, that role calls tso_now()');

# ---- a reload of tsoracle.max_inflight under pgbench ---------------------
my $pb = pgbench_start($node, 'SELECT tso_now();', 6, 4);
my $reloads = 0;
for my $inflight (8, 2, 64, 16)
{
	$node->safe_psql('postgres', "ALTER SYSTEM SET tsoracle.max_inflight = $inflight; SELECT pg_reload_conf()");
	wait_until(5, sub { $node->safe_psql('postgres', 'SHOW tsoracle.max_inflight') eq "$inflight" })
	  and $reloads++;
}
is($reloads, 4, 'four reloads of tsoracle.max_inflight took effect while pgbench ran');
my ($pb_rc, $pb_out, $pb_err) = pgbench_finish($pb);
is($pb_rc, 0, 'pgbench finished without an error') or diag($pb_err);
like($pb_out, qr/number of failed transactions: 0 |number of transactions actually processed: \d+/,
	'pgbench processed transactions') or diag($pb_out);
unlike($pb_err, qr/ERROR/, 'no call failed during the reloads');
$node->safe_psql('postgres', 'ALTER SYSTEM RESET tsoracle.max_inflight; SELECT pg_reload_conf()');
no_backward_grants($node);

# ---- a hot standby (docs/sql.md) -----------------------------------------
# The worker starts once a standby accepts connections
# (BgWorkerStart_ConsistentState, src/worker.c) and tso_now() only reads:
# a standby made by pg_basebackup of a primary serves it from the same
# sidecar, in the one order.
my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'tsoracle'
tsoracle.sidecar_address = '$sc->{socket}'
} . $GUARD_OFF);
$primary->start;
$primary->safe_psql('postgres', 'CREATE EXTENSION tsoracle');
my $on_primary = $primary->safe_psql('postgres', 'SELECT tso_now()');
$primary->backup('base');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
$standby->start;
is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', 'the standby is in recovery');
my $on_standby = wait_until(30, sub {
	my ($r, $o) = $standby->psql('postgres', 'SELECT tso_now()');
	return $r == 0 ? $o : undef;
});
ok($on_standby && $on_standby > $on_primary, 'tso_now() on the hot standby serves, above the primary\'s earlier value');
my ($x1, $x2) = split /\|/, $standby->safe_psql('postgres',
	'BEGIN TRANSACTION READ ONLY; SELECT tso_xact_ts(), tso_xact_ts(); COMMIT');
ok($x1 && $x1 == $x2 && $x1 > $on_standby, 'tso_xact_ts() in a read-only transaction of the standby');
cmp_ok($primary->safe_psql('postgres', 'SELECT tso_now()'), '>', $x1, 'and the primary\'s next value is above it');
no_backward_grants($primary, $standby);
$standby->stop;
$primary->stop;

# ---- a server without shared_preload_libraries ---------------------------
my $plain = PostgreSQL::Test::Cluster->new('plain');
$plain->init;
$plain->start;
($rc, $o, $err) = $plain->psql('postgres', 'CREATE EXTENSION tsoracle', extra_params => [ '-v', 'VERBOSITY=verbose' ]);
isnt($rc, 0, 'CREATE EXTENSION without shared_preload_libraries fails');
like($err, qr/55000/, 'with SQLSTATE 55000');
like($err, qr/shared_preload_libraries/, 'naming shared_preload_libraries');
$plain->stop;

$node->stop;
is(sidecar_stop($sc), 0, 'the sidecar stops cleanly');
done_testing();
