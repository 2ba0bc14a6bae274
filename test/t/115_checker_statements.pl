# The history checker through SQL with multi-row statements: concurrent
# sessions on three PostgreSQL nodes each send INSERTs of 2 to 40 rows keyed
# by DEFAULT tso_now() (tsoracle.batching = statement, the default, so the
# rows of a statement share grants), mixed with single tso_now() calls and
# tso_range(n), while the leader is killed (kill -9) and restarted. Each
# statement is one operation spanning its start and end: no value twice,
# every statement's values increasing in row order, each session's
# operations increasing, and real-time order between operations.
#
# Positive control: a server running the control build whose tso_now()
# leftovers outlive their statement (tsoracle-leaky-cache, built and
# installed by scripts/test.sh from src/funcs.c with
# test/broken/ext_leaky_cache.patch) must make the same checker report
# real-time violations.
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use TsoracleTest;

my $checker = $ENV{TSORACLE_CHECKER} or plan skip_all => 'TSORACLE_CHECKER is not set';

my @sc = cluster_start(cluster_new(3, prefix => 's'));
# The workers' guard off, as in t/105: the checker sees what is handed out.
my @pg = map { pg_node_for("pg$_", $sc[ $_ - 1 ], "tsoracle.timeout = 3000\n$GUARD_OFF") } 1 .. 3;
is($pg[0]->safe_psql('postgres', 'SHOW tsoracle.batching'), 'statement', 'batching is per statement by default');

sub conn_args { map { ('--conn', "host=" . $_->host . " port=" . $_->port . " dbname=postgres") } @_ }

my $duration = 12;
my ($out, $err) = ('', '');
my $run = IPC::Run::start(
	[ $checker, conn_args(@pg), '--clients', '3', '--duration', $duration,
	  '--rows-max', '40', '--rows-percent', '60', '--range-percent', '10', '--range-max', '20',
	  '--min-ok', '1000', '--seed', '115',
	  '--history', "$PostgreSQL::Test::Utils::tmp_check/history.tsv" ],
	'>', \$out, '2>', \$err);

kill_leader_under_load(300, @sc);

my $clean = $run->finish;
note $out;
ok($clean, 'the checker exited 0: no violation');
like($out, qr/violations: 0 /, 'violations: 0');
my ($ok_ops, $stamps) = $out =~ /operations ok (\d+) \((\d+) timestamps\)/;
cmp_ok($ok_ops, '>', 1000, "it recorded a real history ($ok_ops operations)");
# Statements of 2..40 rows: many more timestamps than operations.
cmp_ok($stamps, '>', 3 * $ok_ops, "the statements were multi-row ($stamps timestamps)");
# Each statement asked for fewer grants than it had rows.
my $st = $pg[0]->safe_psql('postgres', 'SELECT requests < timestamps FROM tso_worker_status()');
is($st, 't', 'the worker served fewer requests than timestamps on pg1');
no_backward_grants(@pg);

# The positive control, against the same (healed) cluster.
cluster_leader(@sc);
my $leaky = PostgreSQL::Test::Cluster->new('pgleaky');
$leaky->init;
$leaky->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'tsoracle-leaky-cache'
tsoracle.sidecar_address = '$sc[0]{socket}'
tsoracle.timeout = 3000
$GUARD_OFF});
$leaky->start;
# No CREATE EXTENSION: its functions would load the real module.
$leaky->safe_psql('postgres', q{CREATE FUNCTION tso_now() RETURNS bigint
	AS 'tsoracle-leaky-cache', 'tso_now' LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED});
($out, $err) = ('', '');
my $control = IPC::Run::start(
	[ $checker, conn_args($leaky, $pg[1]), '--clients', '3', '--duration', '5',
	  '--rows-max', '40', '--rows-percent', '80', '--range-percent', '0', '--seed', '1150' ],
	'>', \$out, '2>', \$err);
$control->finish;
note $out;
is($control->result, 1, 'control: the checker exits 1 against a cache that outlives its statement');
my ($rt) = $out =~ /real-time order (\d+)/;
cmp_ok($rt // 0, '>', 0, 'control: it reports real-time order violations (' . ($rt // 0) . ')');

$leaky->stop;
$_->stop for @pg;
sidecar_stop($_) for @sc;
done_testing();
