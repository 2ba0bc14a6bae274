# The background worker dies: the postmaster starts a new one and
# timestamps keep coming, above every earlier value.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use TsoracleTest;

my $sc = sidecar_start(sidecar_new(name => 'crash'));
# The test framework turns crash restarts off; a kill -9 needs them.
# The worker's guard is off: the checks look at what the sidecar hands out.
my $node = pg_node_for('pg', $sc, "restart_after_crash = on\n$GUARD_OFF");

sub worker_pid
{
	return $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'tsoracle worker'");
}

sub ts_when_ready
{
	return wait_until(60, sub {
		# While the postmaster reinitializes after the crash, psql may
		# exit before it reads its input (seen on PostgreSQL 18), and
		# IPC::Run dies writing to it (EPIPE): a try that failed.
		my ($rc, $out) = eval { $node->psql('postgres', 'SELECT tso_now()') };
		return defined $rc && $rc == 0 ? $out : undef;
	});
}

my $pid = worker_pid();
like($pid, qr/^\d+$/, "the worker runs and shows in pg_stat_activity (pid $pid)");
my $high = take_ts($node);

# SIGTERM: the worker exits; the postmaster restarts it after its restart
# interval.
kill 'TERM', $pid;
ok(wait_until(30, sub { my $p = worker_pid(); $p ne '' && $p != $pid }), 'a new worker started after SIGTERM');
my $v = ts_when_ready();
ok($v && $v > $high, "timestamps continue after the worker was terminated ($v > $high)");
$high = $v;

# SIGKILL: the postmaster treats it as a crash and reinitializes shared
# memory, ring included; everything comes back.
$pid = worker_pid();
kill 'KILL', $pid;
$v = ts_when_ready();
ok($v && $v > $high, "timestamps continue after kill -9 of the worker ($v > $high)");
isnt(worker_pid(), $pid, 'and it is a new worker');

no_backward_grants($node);
$node->stop;
sidecar_stop($sc);
done_testing();
