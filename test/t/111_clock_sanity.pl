# Clock sanity against real daemons (include/tsoracle.h, "clock sanity";
# docs/reliability.md, "Clocks"). Each member's wall clock is skewed through
# its test-only clock-offset-file (sidecar/clock.c); the monotonic clock is
# never skewed.
#
#   (a) The leader's wall clock jumps a year forward while the history
#       checker runs against all three PostgreSQL nodes: the leader loses
#       leadership, no member's high-water mark ever moves more than
#       max-ahead + max-clock-offset past the true clock, and the checker
#       finds 0 violations.
#   (b) A member started with its clock 10 s ahead never leads: its status
#       says its clock is unsupported, transfer-leader to it is refused, and
#       through kills of the leader it never serves.
#   (c) A sole member whose clock jumps forward while it runs keeps serving
#       by the clock from before the jump (status: clock held); restarted
#       with its clock a year past its stored mark it does not serve (log
#       and status say why) until restarted with --trust-clock 1.
#
# Positive control: run with TSORACLED pointing at
# build/control/tsoracled-broken-clock (the check off: every clock taken as
# supported, jumps followed); this test must fail (scripts/test.sh does so
# in make test).
# tsoracle-tap: daemon behaviour
use strict;
use warnings;
use File::Path;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use TsoracleTest;

my $checker = $ENV{TSORACLE_CHECKER} or plan skip_all => 'TSORACLE_CHECKER is not set';

my $YEAR_MS = 365 * 24 * 3600 * 1000;
my $MAX_AHEAD_MS = 5000;            # tsoracled's default max-ahead
my $MAX_CLOCK_OFFSET_MS = 500;      # tsoracled's default max-clock-offset
my $SKEW_MS = 10_000;               # (b): a member 10 s off
my $TSO_LOGICAL_BITS = 18;

sub now_ms { return int(time() * 1000); }

sub slurp
{
	my ($path) = @_;
	open(my $f, '<', $path) or return '';
	local $/;
	my $s = <$f>;
	close($f);
	return $s;
}

# Every running member's high-water mark, at most what is allowed past the
# true clock: records the worst excess seen.
my $worst_excess = -1e18;
sub check_marks
{
	my (@scs) = @_;
	for my $m (grep { $_->{pid} } @scs)
	{
		my $h = sidecar_status($m)->{high_water_ms};
		next unless defined $h;
		my $excess = $h - now_ms();
		$worst_excess = $excess if $excess > $worst_excess;
	}
}

sub with_offset_files
{
	my (@scs) = @_;
	for my $m (@scs)
	{
		# A fresh start, also when the positive control runs this file
		# again in the same directory.
		File::Path::rmtree($m->{data});
		$m->{offset} = "$m->{dir}/clock-offset";
		unlink($m->{offset});
		$m->{extra} = [ @{ $m->{extra} }, '--clock-offset-file', $m->{offset} ];
	}
	return @scs;
}

# ---- (a) the leader's clock jumps a year forward under the checker --------
my @sc = with_offset_files(cluster_new(3, prefix => 'j'));
cluster_start(@sc);
my @pg = map { pg_node_for("pg$_", $sc[ $_ - 1 ], "tsoracle.timeout = 3000\n$GUARD_OFF") } 1 .. 3;
my $history = "$PostgreSQL::Test::Utils::tmp_check/history_111.tsv";
my ($out, $err) = ('', '');
my $run = IPC::Run::start(
	[ $checker, (map { ('--conn', "host=" . $_->host . " port=" . $_->port . " dbname=postgres") } @pg),
	  '--clients', '3', '--duration', '14', '--range-max', '50', '--min-ok', '1000', '--seed', '111',
	  '--history', $history ],
	'>', \$out, '2>', \$err);

my $leader = cluster_leader(@sc);
ok(wait_until(20, sub { check_marks(@sc); (sidecar_status($leader)->{grants} || 0) > 300 }),
	"the checker's load reaches the leader $leader->{name}");
my $jump_at = now_ms();
note "the wall clock of $leader->{name} jumps a year forward";
write_clock_offset($leader->{offset}, $YEAR_MS);

my $successor;
ok( wait_until(20, sub {
		check_marks(@sc);
		for my $m (grep { $_ ne $leader } @sc)
		{
			if ((sidecar_status($m)->{serving} || '') eq 'true') { $successor = $m; return 1; }
		}
		return 0;
	}),
	'another member leads and serves after the jump');
note 'successor: ' . ($successor ? $successor->{name} : 'none') . ' after ' . (now_ms() - $jump_at) . ' ms';
my $st = sidecar_status($leader);
is($st->{serving} || '', 'false', "$leader->{name}, its clock a year ahead, does not serve");
is($st->{clock_unsupported} || '', 'true', "$leader->{name}'s status says its clock is not supported");
cmp_ok($st->{clock_offset_ms} || 0, '>', $YEAR_MS / 2, "and reports its offset ($st->{clock_offset_ms} ms)");
like(slurp($leader->{log}), qr/not serving as leader in term \d+: this member's wall clock is \d+ ms off/,
	'its log says why');

# While the checker still runs, no mark follows the jump, and the old
# leader does not take leadership back.
my $regained = 0;
wait_until(6, sub {
	check_marks(@sc);
	$regained ||= (sidecar_status($leader)->{serving} || '') eq 'true';
	return 0;
});
ok(!$regained, "$leader->{name} never serves again while its clock is off");
my $clean = $run->finish;
note $out;
ok($clean, 'the checker exited 0');
like($out, qr/violations: 0 /, 'the history checker finds 0 violations');
check_marks(@sc);
cmp_ok($worst_excess, '<=', $MAX_AHEAD_MS + $MAX_CLOCK_OFFSET_MS,
	"no member's high-water mark went more than max-ahead + max-clock-offset past the true clock "
	  . "(worst: $worst_excess ms)");

# The clock put right again: the member follows, the cluster serves on.
unlink($leader->{offset});
ok(wait_until(10, sub { (sidecar_status($leader)->{clock_unsupported} || '') eq 'false' }),
	"$leader->{name}'s clock, put right, is supported again");
no_backward_grants(@pg);
$_->stop for @pg;
is(sidecar_stop($_), 0, "$_->{name} stops cleanly") for @sc;

# ---- (b) a member started 10 s off never leads --------------------------------
@sc = with_offset_files(cluster_new(3, prefix => 's'));
my $bad = $sc[2];
write_clock_offset($bad->{offset}, $SKEW_MS);
cluster_start(@sc);
my $bad_served = 0;
my $watch = sub { $bad_served ||= (sidecar_status($bad)->{serving} || '') eq 'true'; };
$leader = cluster_leader(@sc);
isnt($leader->{name}, $bad->{name}, "the leader is not $bad->{name}, whose clock is 10 s ahead");
ok(wait_until(10, sub { $watch->(); (sidecar_status($bad)->{clock_unsupported} || '') eq 'true' }),
	"$bad->{name}'s status says its clock is not supported");
$st = sidecar_status($bad);
cmp_ok(abs(($st->{clock_offset_ms} || 0) - $SKEW_MS), '<', $MAX_CLOCK_OFFSET_MS,
	"it measures its offset as about 10 s ($st->{clock_offset_ms} ms)");
is(sidecar_status($leader)->{clock_unsupported} || '', 'false', "the leader's clock is supported");

my ($ok, $tout, $terr) = ctl($leader, '--timeout', '5000', 'transfer-leader', $bad->{id});
ok(!$ok, "transfer-leader to $bad->{name} is refused");
like($terr, qr/refused: node $leader->{id}, the leader, hands over only to a member whose wall clock it measured.*node $bad->{id}'s was not .*raise max-clock-offset/,
	'tsoracle-ctl says the refusal is about the clock, and what to do');
like(slurp($leader->{log}), qr/not handing leadership over to node $bad->{id}: its wall clock is not within max-clock-offset/,
	'the leader logs why');

# Kill the leader (kill -9) twice and bring it back: elections among two
# members, one with the bad clock; it must never serve.
for my $round (1 .. 2)
{
	$leader = cluster_leader(@sc);
	note "round $round: kill -9 of the leader $leader->{name}";
	sidecar_kill($leader);
	wait_until(3, sub { $watch->(); 0 });
	sidecar_start($leader, no_wait => 1);
	my $back = cluster_leader(@sc);
	$watch->();
	isnt($back->{name}, $bad->{name}, "round $round: the new leader is $back->{name}, not $bad->{name}");
}
wait_until(2, sub { $watch->(); 0 });
ok(!$bad_served, "$bad->{name} never served");
$st = sidecar_status($bad);
is($st->{grants} || 0, 0, "$bad->{name} granted nothing");
unlike(slurp($bad->{log}), qr/serving timestamps from/, "$bad->{name}'s log shows no serving");
is(sidecar_stop($_), 0, "$_->{name} stops cleanly") for @sc;

# ---- (c) a sole member: a jump while running, then a start far past its mark --
my ($solo) = with_offset_files(sidecar_new(name => 'solo'));
sidecar_start($solo);
my $before = sidecar_get($solo, 1);
ok(defined $before, 'the sole member serves');
write_clock_offset($solo->{offset}, $YEAR_MS);
ok(wait_until(10, sub { (sidecar_status($solo)->{clock_held} || '') eq 'true' }),
	'the jump forward is noticed: status says the clock is held');
my $during = sidecar_get($solo, 1);
ok(defined $during, 'the sole member still serves');
cmp_ok(($during // 0) >> $TSO_LOGICAL_BITS, '<=', now_ms() + $MAX_AHEAD_MS + $MAX_CLOCK_OFFSET_MS,
	'by the clock from before the jump, not the jumped one');
cmp_ok(sidecar_status($solo)->{high_water_ms}, '<=', now_ms() + $MAX_AHEAD_MS + $MAX_CLOCK_OFFSET_MS,
	'and its high-water mark did not follow the jump');
is(sidecar_stop($solo), 0, 'it stops cleanly');

# Restarted with the clock still a year ahead: a year past the stored mark.
sidecar_start($solo, no_wait => 1);
ok(wait_until(15, sub { (sidecar_status($solo)->{clock_start_gap} || '') eq 'true' }),
	'restarted a year past its stored mark: status says so');
$st = sidecar_status($solo);
is($st->{serving} || '', 'false', 'and it does not serve');
cmp_ok($st->{clock_ahead_ms} || 0, '>', $YEAR_MS / 2, "status gives the gap ($st->{clock_ahead_ms} ms)");
ok(!defined sidecar_get($solo, 1), 'a client gets no timestamp');
like(slurp($solo->{log}), qr/past the high-water mark stored in its log .* restart with --trust-clock/,
	'its log says why and what to do');
is(sidecar_stop($solo), 0, 'it stops cleanly');

# The operator's word.
push @{ $solo->{extra} }, '--trust-clock', '1';
sidecar_start($solo);
my $after = sidecar_get($solo, 1);
ok(defined $after && ($after >> $TSO_LOGICAL_BITS) > now_ms() + $YEAR_MS / 2,
	'with --trust-clock 1 it serves by its clock');
like(slurp($solo->{log}), qr/serving anyway, as --trust-clock says/, 'and logs that it was told to');
is(sidecar_stop($solo), 0, 'it stops cleanly');
done_testing();
