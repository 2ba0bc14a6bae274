# A single-node sidecar and one PostgreSQL: values unique and increasing
# under many concurrent backends, and never backwards across a restart of
# the sidecar, a kill -9 of the sidecar, and a restart of PostgreSQL.
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use TsoracleTest;

my $sc = sidecar_start(sidecar_new(name => 'single'));
# The guard off: these checks look at the values the sidecar hands out.
my $node = pg_node_for('pg', $sc, $GUARD_OFF);

# The values every later phase must stay above.
my $high = 0;
sub above_high
{
	my ($what, $v) = @_;
	ok($v > $high, "$what: $v is above every earlier value ($high)");
	$high = $v if $v > $high;
}

# ---- many backends at once -----------------------------------------------
$node->safe_psql('postgres', q{
	CREATE TABLE ev (ts bigint PRIMARY KEY DEFAULT tso_now(),
	                 pid int NOT NULL DEFAULT pg_backend_pid(),
	                 seq bigserial NOT NULL)});
# 8 clients x 400 transactions, each inserting one row keyed by tso_now()
# and one tso_range(3) block: a duplicate would violate the primary key and
# fail the run.
$node->pgbench(
	'--no-vacuum --client=8 --jobs=2 --transactions=400',
	0, [qr/processed: 3200\/3200/], [qr/^$/],
	'8 concurrent clients take timestamps without error',
	{
		'001_ev' => q{
			INSERT INTO ev DEFAULT VALUES;
			INSERT INTO ev (ts) SELECT t FROM tso_range(3) AS t;
		}
	});
is($node->safe_psql('postgres', 'SELECT count(*), count(DISTINCT ts) FROM ev'),
	'12800|12800', 'every value is distinct (12800 rows)');
# Per session, values increase in the order the session took them.
is( $node->safe_psql(
		'postgres', q{
		SELECT count(*) FROM (
			SELECT ts < lag(ts) OVER (PARTITION BY pid ORDER BY seq) AS back
			FROM ev) s WHERE back}),
	'0',
	'within each session, every value is above the previous one');
# Decoding sanity: the physical part is close to the wall clock.
is( $node->safe_psql(
		'postgres',
		q{SELECT abs((max(ts) >> 18) - (extract(epoch FROM clock_timestamp()) * 1000)::bigint) < 60000 FROM ev}),
	't',
	'the physical part is within a minute of the wall clock');
$high = $node->safe_psql('postgres', 'SELECT max(ts) FROM ev');

# ---- restart of the sidecar (SIGTERM) -----------------------------------
is(sidecar_stop($sc), 0, 'sidecar exits 0 on SIGTERM');
sidecar_start($sc);
# The worker reconnects by itself; the first call may still be waiting for
# the reconnection, so allow it a few tries.
my $v = wait_until(30, sub {
	my ($rc, $out) = $node->psql('postgres', 'SELECT tso_now()');
	return $rc == 0 ? $out : undef;
});
ok($v, 'tso_now() works again after the sidecar restarted');
above_high('after a sidecar restart', $v);

# ---- a restart of the sidecar under load loses no call --------------------
# Calls in flight when the sidecar stops are answered "shutting down"; the
# worker takes that as the end of the connection and sends them again once
# it has reconnected, and calls made meanwhile wait for it, so a restart
# within tsoracle.timeout (5 s) costs callers time, never an error.
my $script = "$PostgreSQL::Test::Utils::tmp_check/001_restart.sql";
PostgreSQL::Test::Utils::append_to_file($script, "SELECT tso_now();\n");
my ($pgb_out, $pgb_err) = ('', '');
my $pgb = IPC::Run::start(
	[
		'pgbench', '--no-vacuum', '--client=4', '--jobs=2', '--time=8',
		'--file' => $script, $node->connstr('postgres')
	],
	'>' => \$pgb_out,
	'2>' => \$pgb_err);
ok( wait_until(30, sub {
			$node->safe_psql('postgres',
				q{SELECT count(*) >= 4 FROM pg_stat_activity WHERE query LIKE 'SELECT tso_now()%' AND pid <> pg_backend_pid()})
			  eq 't';
		}),
	'pgbench is calling tso_now() in 4 sessions');
is(sidecar_stop($sc), 0, 'sidecar exits 0 on SIGTERM under load');
sidecar_start($sc);
$pgb->finish;
is($pgb->result(0), 0, 'pgbench exits 0: no client saw an error') or diag($pgb_err);
like($pgb_out, qr/number of transactions actually processed: [1-9]/, 'and it took timestamps');
unlike($pgb_err, qr/ERROR|aborted/, 'no call failed across the restart');
$high = $node->safe_psql('postgres', 'SELECT tso_now()');

# ---- kill -9 of the sidecar ---------------------------------------------
my @before = split /\n/, $node->safe_psql('postgres', 'SELECT * FROM tso_range(1000)');
above_high('tso_range before kill -9', $before[-1]);
sidecar_kill($sc);
sidecar_start($sc);
$v = wait_until(30, sub {
	my ($rc, $out) = $node->psql('postgres', 'SELECT tso_now()');
	return $rc == 0 ? $out : undef;
});
above_high('after kill -9 of the sidecar', $v);

# ---- restart of PostgreSQL -----------------------------------------------
$node->restart;
above_high('after a PostgreSQL restart', take_ts($node));

# ---- the sequence across all of it, in one session ----------------------
my @seq = map { take_ts($node) } 1 .. 20;
check_increasing('successive calls', $high, @seq);

# ---- tso_range: contiguous and ascending ---------------------------------
is( $node->safe_psql(
		'postgres', q{
		SELECT count(*) = 100000 AND max(t) - min(t) = 99999
		       AND bool_and(t = first_t + n - 1)
		FROM (SELECT t, row_number() OVER () AS n, min(t) OVER () AS first_t
		      FROM tso_range(100000) AS t) s}),
	't',
	'tso_range(100000) is 100000 contiguous ascending values');

no_backward_grants($node);
$node->stop;
is(sidecar_stop($sc), 0, 'sidecar stops cleanly');
done_testing();
