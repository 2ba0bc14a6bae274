# Disaster recovery: two of three members are lost for good (kill -9) and
# the survivor, whose log is behind, is restarted with --force-new-cluster
# (docs/cluster.md, "Disaster recovery"). The history checker runs through
# it all on the three PostgreSQL nodes; the survivor must come back alone,
# say loudly what it did, and serve only above every value handed out
# before (its start floor, I7 in docs/allocator.md), although its own log
# never saw the high-water marks those values were granted under.
#
# The survivor is made to lag (SIGSTOP) before the leader's clock runs
# CLOCK_AHEAD_MS ahead (clock-offset-file): the leader then hands out values
# that far in the future, as a flood would push them up to max-ahead past
# its clock (I6). The members allow a max-ahead above that offset, so the
# restart lands below those values on the survivor's true clock: only the
# start floor keeps it above them.
#
# Positive control: with TSORACLED pointing at
# build/control/tsoracled-broken-startfloor (no start floor), this test
# must fail (scripts/test.sh runs it so in make test).
# tsoracle-tap: daemon behaviour
use strict;
use warnings;
use File::Path qw(rmtree);
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use TsoracleTest;

my $checker = $ENV{TSORACLE_CHECKER} or plan skip_all => 'TSORACLE_CHECKER is not set';

my $CLOCK_AHEAD_MS = 20_000;
# The clock check (max-clock-offset, include/tsoracle.h "clock sanity") would
# take leadership from the member whose clock runs ahead: allow it here.
my @MAX_AHEAD = ('--max-ahead', $CLOCK_AHEAD_MS + 1_000, '--max-clock-offset', 2 * $CLOCK_AHEAD_MS);
my $TSO_LOGICAL_BITS = 18;    # a timestamp is physical_ms << 18 | logical

sub now_ms { return int(time() * 1000); }
sub physical_ms { my ($ts) = @_; return $ts >> $TSO_LOGICAL_BITS; }

my @sc = cluster_new(3, prefix => 'r', extra => [@MAX_AHEAD]);
for my $m (@sc)
{
	rmtree($m->{data});    # a run before this one in the same directory (the positive control)
	$m->{offset} = "$m->{dir}/clock-offset";
	unlink($m->{offset});
	$m->{extra} = [ @{ $m->{extra} }, '--clock-offset-file', $m->{offset} ];
}
cluster_start(@sc);
my @pg = map { pg_node_for("pg$_-$$", $sc[ $_ - 1 ], "tsoracle.timeout = 2000\n$GUARD_OFF") } 1 .. 3;

my $leader = cluster_leader(@sc);
my ($survivor, $other) = grep { $_ != $leader } @sc;
note "leader $leader->{name}, survivor $survivor->{name}, other $other->{name}";

my $history = "$PostgreSQL::Test::Utils::tmp_check/history-130.tsv";
my ($out, $err) = ('', '');
my $run = IPC::Run::start(
	[ $checker, (map { ('--conn', "host=" . $_->host . " port=" . $_->port . " dbname=postgres") } @pg),
	  '--clients', '2', '--duration', '16', '--range-max', '20',
	  '--min-ok', '300', '--seed', '130', '--history', $history ],
	'>', \$out, '2>', \$err);

# The survivor falls behind: it hears nothing from here on. The leader's
# mark now bounds the survivor's (a start floor may hold it well ahead of
# the clock already); the values handed out from here on must pass it.
sidecar_signal($survivor, 'STOP');
my $behind = sidecar_status($leader)->{high_water_ms};
write_clock_offset($leader->{offset}, $CLOCK_AHEAD_MS);
ok( wait_until(20, sub {
		my $t = sidecar_get($leader, 1);
		defined $t && physical_ms($t) > $behind;
	}),
	"the leader $leader->{name} grants from its clock's future, above the survivor's mark ($behind)");
ok(wait_until(20, sub { (sidecar_status($leader)->{grants} || 0) > 300 }),
	'the checker\'s load reaches the leader');
my $high = sidecar_get($leader, 1);

# Two of three lost for good.
sidecar_kill($leader);
sidecar_kill($other);
my $lost_ns = mono_ns();
note "killed $leader->{name} and $other->{name}; the last value handed out: $high";

# The survivor, stopped and behind, is restarted with --force-new-cluster.
# Killed while still stopped: let run, it would first read what the leader
# sent it before dying (still in its socket buffers) and catch up.
sidecar_kill($survivor);
push @{ $survivor->{extra} }, '--force-new-cluster';
sidecar_start($survivor, no_wait => 1);
pop @{ $survivor->{extra} };
sidecar_wait_serving($survivor);
my $up_ns = mono_ns();
cmp_ok(now_ms(), '<', physical_ms($high),
	'the survivor\'s clock is below the values handed out before (the restart lands inside them)');
my $st = sidecar_status($survivor);
cmp_ok($st->{high_water_ms} // 0, '>', 0, 'the survivor kept its log (a high-water mark)');
my $first = sidecar_get($survivor, 1);
ok(defined $first && $first > $high,
	"the survivor alone grants above every earlier value (" . ($first // 'none') . " > $high)");

my $log = slurp_file($survivor->{log});
like($log, qr/FORCE-NEW-CLUSTER: rewrote the Raft configuration .* to this member alone/,
	'its log says loudly what it did');
like($log, qr/FORCE-NEW-CLUSTER: this member serves only above its start floor \d+ ms/,
	'and above which floor it serves');

my $clean = $run->finish;
note $out;
ok($clean, 'the checker exited 0: no violation through the loss and the recovery');
like($out, qr/violations: 0 /, 'violations: 0');

# The history: the last value a call finished with before the loss, and the
# first one a call begun after the recovery got.
my ($last_before, $first_after) = checker_history_across($history, $lost_ns, $up_ns);
cmp_ok($last_before, '>', 0, "the checker recorded values before the loss (last $last_before)");
ok(defined $first_after && $first_after > $last_before,
	"the checker's first value after the recovery is above its last before ("
	  . ($first_after // 'none') . " > $last_before)");

no_backward_grants(@pg);

# Run again without the flag: it stays a cluster of one (the flag acted once).
is(sidecar_stop($survivor), 0, 'the survivor stops cleanly');
sidecar_start($survivor);
my $again = sidecar_get($survivor, 1);
ok(defined $again && $again > $first, 'restarted without the flag, it serves alone, above');

# The flag refuses a directory with no log, and a config file.
my $empty = sidecar_new(name => 'empty');
rmtree($empty->{data});
push @{ $empty->{extra} }, '--force-new-cluster';
sidecar_start($empty, no_wait => 1);
ok(wait_until(15, sub { TsoracleTest::_reaped($empty) }),
	'--force-new-cluster on an empty data directory exits');
like(slurp_file($empty->{log}), qr/--force-new-cluster: data directory .* holds no Raft log to recover/,
	'saying there is nothing to recover');

$_->stop for @pg;
sidecar_stop($survivor);
done_testing();
