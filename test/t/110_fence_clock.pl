# The fence against a real daemon: a restart that lands inside the window
# already used. A sidecar whose wall clock runs CLOCK_AHEAD_MS ahead (its
# clock-offset-file, sidecar/clock.c) hands out timestamps from that future;
# it is killed (kill -9) and comes back with a true clock, so its own clock
# is now below every value it handed out. Only the fence (a new leader's
# floor is above H, the highest mark committed: sidecar/alloc.h, I3) keeps
# its next values above them. With a true clock throughout, a restart takes
# longer than the window handed out, so 001 and 101 would pass without a
# fence; here they cannot. First one member restarting, then a cluster whose
# leader is killed and succeeded by a member with a true clock.
#
# Positive control: run with TSORACLED pointing at
# build/control/tsoracled-broken-fence (whose new leader's floor ignores H);
# this test must fail (scripts/test.sh does so in make test).
# tsoracle-tap: daemon behaviour
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use TsoracleTest;

# Far more than a restart takes and than the allocator's window (3 s by
# default), so the restart lands well inside the range already handed out,
# whatever the machine's load. No grant may reach more than max-ahead past
# the granting member's own clock (sidecar/alloc.h, I6; 5 s by default), so
# a true-clock successor would wait out most of the offset before serving:
# the members here allow more (the fence does not depend on it;
# scripts/test.sh's clock-kill run covers the default with a 4 s jump).
my $CLOCK_AHEAD_MS = 60_000;
# The clock check (max-clock-offset, include/tsoracle.h "clock sanity")
# would refuse to follow the leader's jump, and the fence would have
# nothing to do: set wider than the jump here (t/111 tests the check).
my @MAX_AHEAD = ('--max-ahead', 90_000, '--max-clock-offset', 2 * $CLOCK_AHEAD_MS);
my $TSO_LOGICAL_BITS = 18;    # a timestamp is physical_ms << 18 | logical

sub now_ms { return int(time() * 1000); }
sub physical_ms { my ($ts) = @_; return $ts >> $TSO_LOGICAL_BITS; }

sub write_offset
{
	my ($path, $ms) = @_;
	open(my $f, '>', $path) or die "$path: $!";
	print $f "$ms\n";
	close($f) or die "$path: $!";
}

# The first value PostgreSQL hands out once it reaches its sidecar again.
sub pg_ts_when_ready
{
	my ($node) = @_;
	return wait_until(30, sub {
		my ($rc, $out) = $node->psql('postgres', 'SELECT tso_now()');
		return $rc == 0 ? $out : undef;
	});
}

# ---- one member: kill -9 while ahead, restart with a true clock -------------
my $sc = sidecar_new(name => 'ahead');
my $offset = "$sc->{dir}/clock-offset";
write_offset($offset, $CLOCK_AHEAD_MS);
push @{ $sc->{extra} }, '--clock-offset-file', $offset, @MAX_AHEAD;
sidecar_start($sc);
# The workers' guard off: it would refuse a backward grant, and the test
# must see what the sidecar hands out.
my $node = pg_node_for('pg', $sc, $GUARD_OFF);

my @ahead = split /\n/, $node->safe_psql('postgres', 'SELECT * FROM tso_range(1000)');
my $high = $ahead[-1];
my $ctl_high = sidecar_get($sc, 10);
ok(defined $ctl_high, 'tsoracle-ctl get works while the clock is ahead');
$high = $ctl_high + 9 if defined $ctl_high && $ctl_high + 9 > $high;
cmp_ok(physical_ms($high) - now_ms(), '>', $CLOCK_AHEAD_MS / 2,
	'the values handed out are from the clock\'s future (the offset took effect)');

sidecar_kill($sc);
unlink($offset) or die "$offset: $!";
# Its start floor (I7: its clock at start + max-ahead + start-floor-margin)
# put the first start's fence max-ahead past the clock that ran ahead; a
# restart with the true clock and the same max-ahead could only serve
# once that clock caught up (I6), a minute from now. It comes back
# allowed further ahead: its floor is then above everything handed out by
# its fence (H read back from its log) and by its own start floor alike,
# and the control, which ignores both, must still hand out values below.
$sc->{extra} = [ grep { $_ ne '--clock-offset-file' && $_ ne $offset } @{ $sc->{extra} } ];
push @{ $sc->{extra} }, '--max-ahead', 4 * $CLOCK_AHEAD_MS;
sidecar_start($sc);
cmp_ok(now_ms(), '<', physical_ms($high),
	'the restart, with a true clock, lands inside the range already handed out');
my $v = sidecar_get($sc, 1);
ok(defined $v && $v > $high, "after the restart the sidecar grants above every earlier value ("
	  . ($v // 'none') . " > $high)");
my $pv = pg_ts_when_ready($node);
ok(defined $pv && $pv > $high, "and so does PostgreSQL (" . ($pv // 'none') . " > $high)");
no_backward_grants($node);
$node->stop;
is(sidecar_stop($sc), 0, 'the sidecar stops cleanly');

# ---- a cluster: the leader ahead is killed, a true-clock member succeeds -------
my @sc = cluster_new(3, prefix => 'f', extra => [@MAX_AHEAD]);
for my $m (@sc)
{
	$m->{offset} = "$m->{dir}/clock-offset";
	$m->{extra} = [ @{ $m->{extra} }, '--clock-offset-file', $m->{offset} ];
}
cluster_start(@sc);
my @pg = map { pg_node_for("pg$_", $sc[ $_ - 1 ], $GUARD_OFF) } 1 .. 3;
my $leader = cluster_leader(@sc);
write_offset($leader->{offset}, $CLOCK_AHEAD_MS);
# The offset file is read every 50 ms; the leader's next extension (a
# commit) then reaches into the future, and so do its grants.
ok( wait_until(10, sub {
		my $t = sidecar_get($leader, 1);
		defined $t && physical_ms($t) - now_ms() > $CLOCK_AHEAD_MS / 2;
	}),
	"the leader $leader->{name} grants from its clock's future");
$high = 0;
for my $n (@pg)
{
	my $t = (split /\n/, $n->safe_psql('postgres', 'SELECT * FROM tso_range(100)'))[-1];
	$high = $t if $t > $high;
}
my $t = sidecar_get($leader, 1);
$high = $t if defined $t && $t > $high;
sidecar_kill($leader);
unlink($leader->{offset}) or die "$leader->{offset}: $!";
my @survivors = grep { $_->{pid} } @sc;
my $successor = cluster_leader(@survivors);
isnt($successor->{name}, $leader->{name}, "a new leader with a true clock: $successor->{name}");
cmp_ok(now_ms(), '<', physical_ms($high), 'its clock is below the values its predecessor handed out');
for my $m (@survivors)
{
	my $g = wait_until(30, sub { sidecar_get($m, 1) });
	ok(defined $g && $g > $high, "$m->{name} grants above every earlier value (" . ($g // 'none') . " > $high)");
}
for my $i (0 .. 2)
{
	next unless $sc[$i]{pid};
	my $g = pg_ts_when_ready($pg[$i]);
	ok(defined $g && $g > $high, $pg[$i]->name . " hands out above every earlier value (" . ($g // 'none') . " > $high)");
}
# The old leader back, its clock true: it follows, and what it serves is
# above too.
sidecar_start($leader, no_wait => 1);
sidecar_wait_ready($leader);
my $g = sidecar_get($leader, 1);
ok(defined $g && $g > $high, "$leader->{name}, restarted with a true clock, serves above too");

no_backward_grants(@pg);
$_->stop for @pg;
is(sidecar_stop($_), 0, "$_->{name} stops cleanly") for @sc;
done_testing();
