# Restore from an old copy (docs/cluster.md, "Backup and restore"): a copy
# of one member's data directory is taken (the member stopped, copied,
# started again), the cluster goes on handing out timestamps far above the
# copy's high-water mark, then every member is lost (kill -9) and all three
# are restored from that copy. The history checker runs through it all; the
# restored cluster must serve only above every value handed out before,
# although its log has never seen the marks they were granted under: the
# start floor (I7, docs/allocator.md) is what keeps it above them.
#
# The leader's clock runs CLOCK_AHEAD_MS ahead (clock-offset-file) after the
# copy, so its values lie that far in the future, as a flood would push them
# up to max-ahead past its clock (I6); the members allow a max-ahead above
# that offset. The restored members' clocks are true, so without the start
# floor they would serve below those values.
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

sub copy_dir
{
	my ($from, $to) = @_;
	rmtree($to);
	system('cp', '-a', $from, $to) == 0 or die "cp -a $from $to failed";
}

my @sc = cluster_new(3, prefix => 'b', extra => [@MAX_AHEAD]);
for my $m (@sc)
{
	rmtree($m->{data});    # a run before this one in the same directory (the positive control)
	$m->{offset} = "$m->{dir}/clock-offset";
	unlink($m->{offset});
	$m->{extra} = [ @{ $m->{extra} }, '--clock-offset-file', $m->{offset} ];
}
cluster_start(@sc);
my @pg = map { pg_node_for("pg$_-$$", $sc[ $_ - 1 ], "tsoracle.timeout = 2000\n$GUARD_OFF") } 1 .. 2;

# The backup: a follower stopped, its directory copied, started again.
my $leader = cluster_leader(@sc);
my ($backed_up) = grep { $_ != $leader } @sc;
my $backup = "$backed_up->{dir}/backup";
ok(defined sidecar_get($backed_up, 1), "$backed_up->{name} serves before the backup");
is(sidecar_stop($backed_up), 0, "$backed_up->{name} stopped for the copy");
copy_dir($backed_up->{data}, $backup);
sidecar_start($backed_up, no_wait => 1);
sidecar_wait_ready($backed_up);
note "copied $backed_up->{name}'s data directory to $backup";

my $history = "$PostgreSQL::Test::Utils::tmp_check/history-131.tsv";
my ($out, $err) = ('', '');
my $run = IPC::Run::start(
	[ $checker, (map { ('--conn', "host=" . $_->host . " port=" . $_->port . " dbname=postgres") } @pg),
	  '--clients', '2', '--duration', '16', '--range-max', '20',
	  '--min-ok', '300', '--seed', '131', '--history', $history ],
	'>', \$out, '2>', \$err);

# After the copy, the values run far ahead of it: above the leader's mark
# now, which bounds the copy's (a start floor may hold it well ahead of
# the clock already).
$leader = cluster_leader(@sc);
my $copy_bound = sidecar_status($leader)->{high_water_ms};
write_clock_offset($leader->{offset}, $CLOCK_AHEAD_MS);
ok( wait_until(20, sub {
		my $t = sidecar_get($leader, 1);
		defined $t && physical_ms($t) > $copy_bound;
	}),
	"the leader $leader->{name} grants from its clock's future, above the copy's mark ($copy_bound)");
ok(wait_until(20, sub { (sidecar_status($leader)->{grants} || 0) > 300 }),
	'the checker\'s load reaches the leader');
my $high = sidecar_get($leader, 1);

# Every member lost; all restored from the old copy, clocks true.
sidecar_kill($_) for @sc;
my $lost_ns = mono_ns();
for my $m (@sc)
{
	unlink($m->{offset});
	copy_dir($backup, $m->{data});
}
note "restored every member from the copy; the last value handed out: $high";
sidecar_start($_, no_wait => 1) for @sc;
my $new_leader = cluster_leader(@sc);
my $up_ns = mono_ns();
cmp_ok(now_ms(), '<', physical_ms($high),
	'the restored cluster\'s clocks are below the values handed out before');
my $first = wait_until(10, sub { sidecar_get($new_leader, 1) });
ok(defined $first && $first > $high,
	"the restored cluster grants above every earlier value (" . ($first // 'none') . " > $high)");
# The high-water mark the restored log holds (read after the new leader's
# barrier) is below the values handed out after the copy: it alone would
# not keep the restored cluster above them.
my ($restored_high) = slurp_file($new_leader->{log}) =~ /.*fencing at \d+ ms \(high-water was (\d+) ms\)/s;
ok(defined $restored_high && $restored_high > 0 && $restored_high < physical_ms($high),
	"the restored log's high-water mark (" . ($restored_high // 'none')
	  . " ms) is below the values handed out before (" . physical_ms($high) . " ms)");

my $clean = $run->finish;
note $out;
ok($clean, 'the checker exited 0: no violation through the loss and the restore');
like($out, qr/violations: 0 /, 'violations: 0');

my ($last_before, $first_after) = checker_history_across($history, $lost_ns, $up_ns);
cmp_ok($last_before, '>', 0, "the checker recorded values before the loss (last $last_before)");
ok(defined $first_after && $first_after > $last_before,
	"the checker's first value after the restore is above its last before ("
	  . ($first_after // 'none') . " > $last_before)");

no_backward_grants(@pg);
$_->stop for @pg;
is(sidecar_stop($_), 0, "$_->{name} stops cleanly") for @sc;
done_testing();
