# Log compaction and catch-up: with a small snapshot threshold, a member
# that was down while the log moved far ahead comes back, receives a
# snapshot from the leader (its own log no longer reaches the leader's),
# applies everything and serves again.
# tsoracle-tap: daemon only
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use TsoracleTest;

# A short lease makes the leader commit an entry every 50 ms (it renews the
# lease every lease/3), so the log grows quickly without client load.
my @flags = ('--snapshot-threshold', '16', '--snapshot-trailing', '4', '--lease', '150',
	'--election-timeout', '600', '--heartbeat', '60');
my @sc = cluster_start(cluster_new(3, prefix => 'k', extra => \@flags));
my $leader = cluster_leader(@sc);
my ($lagger) = grep { $_ != $leader } @sc;

my $before = sidecar_get($lagger, 1);
ok($before, "$lagger->{name} serves before it goes down");
my $lag_index = sidecar_status($lagger)->{applied_index};
sidecar_kill($lagger);

# Move the leader's log ten snapshot thresholds past the lagger.
my $target = $lag_index + 160;
ok( wait_until(60, sub { (sidecar_status($leader)->{applied_index} || 0) >= $target }),
	"the leader's log moved from $lag_index to $target while $lagger->{name} was down");
my @snaps = glob("$leader->{data}/snapshot-*");
ok(@snaps > 0, 'the leader compacted its log into snapshots (' . scalar(@snaps) . ' files)');

my $st = sidecar_status($leader);
my ($commit, $leader_high) = ($st->{commit_index}, $st->{high_water_ms});
sidecar_start($lagger, no_wait => 1);
ok( wait_until(30, sub { (sidecar_status($lagger)->{applied_index} || 0) >= $commit }),
	"$lagger->{name} caught up to commit index $commit");
# It could only have caught up by installing a snapshot: the leader no
# longer holds the entries right after the lagger's log.
my ($newest) = sort { $b <=> $a } map { /snapshot-\d+-(\d+)-/ ? $1 : () } glob("$lagger->{data}/snapshot-*");
ok(defined $newest && $newest > $lag_index, "$lagger->{name} holds a snapshot past its old log end ($newest > $lag_index)");
cmp_ok(sidecar_status($lagger)->{high_water_ms}, '>=', $leader_high,
	"its high-water mark reached the leader's ($leader_high)");
my $after = wait_until(30, sub { sidecar_get($lagger, 1) });
ok($after && $after > $before, "$lagger->{name} serves again, above its earlier values");

sidecar_stop($_) for @sc;
done_testing();
