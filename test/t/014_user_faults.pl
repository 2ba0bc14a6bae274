# Operations users do on a running system, with real sidecars and a real
# PostgreSQL: a reload (pg_reload_conf) of tsoracle.sidecar_address from one
# member of a cluster to another while pgbench calls tso_now(); a fast
# shutdown of PostgreSQL with calls in flight, and its restart; a sidecar
# stalled (SIGSTOP) longer than the worker's own limit on an unanswered
# request (WORKER_RESPONSE_TIMEOUT_MS, 30 s, src/worker.c): calls fail
# within their tsoracle.timeout with SQLSTATE 08006, nothing hangs, and
# calls succeed again once the sidecar runs (SIGCONT).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use TsoracleTest;

# Longer than the worker's limit on an unanswered request (src/worker.c).
my $worker_response_timeout_s = 30;

my @sc = cluster_start(cluster_new(3, prefix => 'uf'));
my $node = pg_node_for('uf', $sc[0], $GUARD_OFF);
my $before = take_ts($node);

# ---- a reload of tsoracle.sidecar_address under pgbench ------------------
my $pb = pgbench_start($node, 'SELECT tso_now();', 8, 4);
my $moved = 0;
for my $sc (@sc[ 1, 2, 0 ])
{
	$node->safe_psql('postgres', "ALTER SYSTEM SET tsoracle.sidecar_address = '$sc->{socket}'; SELECT pg_reload_conf()");
	# The worker reports the address it is connected to.
	$moved++
	  if wait_until(10, sub {
		$node->safe_psql('postgres',
			"SELECT connected AND position('$sc->{socket}' in address) > 0 FROM tso_worker_status()") eq 't'
	  });
}
is($moved, 3, 'the worker followed three reloads of tsoracle.sidecar_address to another member');
my ($pb_rc, $pb_out, $pb_err) = pgbench_finish($pb);
is($pb_rc, 0, 'pgbench ran through the reloads without an error') or diag($pb_err);
like($pb_out, qr/number of transactions actually processed: [1-9]/, 'pgbench processed transactions');
unlike($pb_err, qr/ERROR/, 'no call failed');
my $after_reload = take_ts($node);
cmp_ok($after_reload, '>', $before, 'values stay above the earlier ones');
$node->safe_psql('postgres', 'ALTER SYSTEM RESET tsoracle.sidecar_address; SELECT pg_reload_conf()');

# ---- fast shutdown with calls in flight, and restart ---------------------
my $leader = cluster_leader(@sc);
my @sessions;
for my $i (0 .. 2)
{
	my $bg = $node->background_psql('postgres', on_error_stop => 0);
	$bg->query_safe('SET tsoracle.timeout = 60000');
	push @sessions, $bg;
}
sidecar_signal($_, 'STOP') for @sc;
bg_send($_, 'SELECT tso_now()') for @sessions;
ok( wait_until(10, sub {
		$node->safe_psql('postgres',
			q{SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'SELECT tso_now()%'
			  AND pid <> pg_backend_pid()}) == 3
	}),
	'three calls are in flight, the sidecars stopped');
my $t0 = time();
$node->stop('fast');
my $stop_ms = elapsed_ms($t0);
cmp_ok($stop_ms, '<', 10_000, "fast shutdown with calls in flight took $stop_ms ms");
eval { $_->quit } for @sessions;
sidecar_signal($_, 'CONT') for @sc;
$node->start;
my $restarted = wait_until(30, sub {
	my ($rc, $out) = $node->psql('postgres', 'SELECT tso_now()');
	return $rc == 0 ? $out : undef;
});
ok($restarted && $restarted > $after_reload, 'after the restart tso_now() serves, above earlier values');

# ---- a sidecar stalled longer than the worker's own limits ---------------
# The worker's sidecar is a follower or the leader; stop the one it uses.
my $mine = $sc[0];
sidecar_signal($mine, 'STOP');
my $stall_start = time();
my ($calls, $fails, $slowest) = (0, 0, 0);
my %states;
while (time() - $stall_start < $worker_response_timeout_s + 5)
{
	my $t = time();
	my ($rc, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\nSET tsoracle.timeout = 2000; SELECT tso_now();");
	my $ms = elapsed_ms($t);
	$slowest = $ms if $ms > $slowest;
	$calls++;
	if ($rc != 0)
	{
		$fails++;
		$states{$1}++ if $err =~ /ERROR:\s+(\w{5}):/;
	}
}
note "during the stall: $calls calls, $fails failed, SQLSTATEs: " . join(', ', map { "$_ x$states{$_}" } sort keys %states);
is($fails, $calls, 'every call during the stall failed');
is_deeply([ keys %states ], ['08006'], 'with SQLSTATE 08006 (docs/sql.md)');
cmp_ok($slowest, '<', 2000 + 2000, "none waited much past its tsoracle.timeout (slowest $slowest ms for 2000 ms)");
my $log = PostgreSQL::Test::Utils::slurp_file($node->logfile);
like($log, qr/no response from .* within 30000 ms/, "the worker gave up on the stalled connection after its own limit");
sidecar_signal($mine, 'CONT');
my $back = wait_until(30, sub {
	my ($rc, $out) = $node->psql('postgres', 'SET tsoracle.timeout = 2000; SELECT tso_now()');
	return $rc == 0 ? $out : undef;
});
ok($back && $back > $restarted, 'after SIGCONT calls succeed again, above earlier values');

no_backward_grants($node);
$node->stop;
sidecar_stop($_) for @sc;
done_testing();
