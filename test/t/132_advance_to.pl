# tsoracle-ctl advance-to (docs/cluster.md, "Moving the oracle forward"):
# the leader commits the operator's floor, after which every timestamp's
# physical part is at least the time given, at once (the max-ahead cap moves
# with the floor: I6 in docs/allocator.md), on every member and after a
# failover. Refused, with exit status 1 and a reason, before the cluster
# version allows it, backwards, and beyond max-reset-gap; exit 2 on a
# malformed time. cluster-version lists and raises the cluster version. The
# history checker runs through it all.
#
# Positive control: with TSORACLED pointing at
# build/control/tsoracled-broken-floor (the allocator ignores the floor), this
# test must fail (scripts/test.sh runs it so in make test).
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

my $TSO_LOGICAL_BITS = 18;        # a timestamp is physical_ms << 18 | logical
my $AHEAD_MS = 60_000;            # how far ahead of the clock the oracle is moved
my $MAX_AHEAD_MS = 5_000;         # tsoracled's default max-ahead
my $MAX_RESET_GAP_MS = 86_400_000;    # tsoracled's default max-reset-gap (24 h)

sub now_ms { return int(time() * 1000); }
sub physical_ms { my ($ts) = @_; return $ts >> $TSO_LOGICAL_BITS; }

# tsoracle-ctl through member $sc: (exit status, stdout, stderr).
sub ctl_rc
{
	my ($sc, @args) = @_;
	my ($ok, $out, $err) = ctl($sc, '--timeout', '3000', @args);
	return ($ok ? 0 : $? >> 8, $out // '', $err // '');
}

my @sc = cluster_new(3, prefix => 'a');
rmtree($_->{data}) for @sc;    # a run before this one in the same directory (the positive control)
cluster_start(@sc);
my $peers = $sc[0]{peers};
my @pg = map { pg_node_for("pg$_-$$", $sc[ $_ - 1 ], "tsoracle.timeout = 3000\n$GUARD_OFF") } 1 .. 2;

my $history = "$PostgreSQL::Test::Utils::tmp_check/history-132.tsv";
my ($out, $err) = ('', '');
my $run = IPC::Run::start(
	[ $checker, (map { ('--conn', "host=" . $_->host . " port=" . $_->port . " dbname=postgres") } @pg),
	  '--clients', '2', '--duration', '14', '--range-max', '20',
	  '--min-ok', '300', '--seed', '132', '--history', $history ],
	'>', \$out, '2>', \$err);

my $leader = cluster_leader(@sc);

# ---- before the cluster version allows it ------------------------------------
my ($rc, $o, $e) = ctl_rc($leader, 'advance-to', now_ms() + $AHEAD_MS);
is($rc, 1, 'advance-to at cluster version 1: exit status 1');
like($e, qr/the cluster version is 1, advance-to needs 2: upgrade every member, then run tsoracle-ctl --config FILE cluster-version raise/,
	'it says why and what to do');

($rc, $o, $e) = ctl_rc($sc[0], '--peers', $peers, 'cluster-version');
is($rc, 0, 'cluster-version lists every member');
my $listed = () = $o =~ /^\d+\s+\S+\s+3\s+1$/mg;
is($listed, 3, 'each knows command set 3 (this build\'s), the cluster version is 1') or diag($o);

($rc, $o, $e) = ctl_rc($sc[0], '--peers', $peers, 'cluster-version', 'raise');
is($rc, 0, 'cluster-version raise: exit status 0') or diag($e);
like($o, qr/cluster version raised to 3/, 'the cluster version is 3');
($rc, $o, $e) = ctl_rc($sc[0], '--peers', $peers, 'cluster-version', 'raise');
is($rc, 1, 'raising again: nothing to do (exit status 1)');
like($e, qr/nothing to do: the cluster version is 3/, 'it says so');

# ---- accepted ------------------------------------------------------------------
ok(wait_until(20, sub { (sidecar_status($leader)->{grants} || 0) > 300 }),
	'the checker\'s load reaches the leader');
my $before = sidecar_get($leader, 1);
my $floor = now_ms() + $AHEAD_MS;
($rc, $o, $e) = ctl_rc($leader, 'advance-to', $floor);
my $advanced_ns = mono_ns();
is($rc, 0, "advance-to $floor (+$AHEAD_MS ms): exit status 0") or diag($e);
like($o, qr/advanced: every later timestamp's physical part is at least $floor ms/, 'it says what it did');
like(slurp_file($leader->{log}), qr/advance-to: proposing Advance\($floor ms\)/, 'the leader logs it');

my $t = sidecar_get($leader, 1);
ok(defined $t && physical_ms($t) >= $floor,
	'a timestamp after advance-to is at least the time advanced to ('
	  . (defined $t ? physical_ms($t) : 'none') . " >= $floor)");
ok(defined $t && physical_ms($t) < $floor + $MAX_AHEAD_MS + 1000,
	'and near it: the max-ahead cap moved with the floor (no wait for the clock)');
for my $i (0 .. $#pg)
{
	my $v = take_ts($pg[$i]);
	ok(physical_ms($v) >= $floor, $pg[$i]->name . "'s next tso_now() is at least the time advanced to");
}
for my $m (grep { $_ != $leader } @sc)
{
	my $g = sidecar_get($m, 1);
	ok(defined $g && physical_ms($g) >= $floor, "$m->{name} (a follower) forwards: at least the time advanced to");
}

# ---- refused: backwards, beyond max-reset-gap, malformed ------------------------
($rc, $o, $e) = ctl_rc($leader, 'advance-to', $floor - 1000);
is($rc, 1, 'advance-to below where the oracle is: exit status 1');
like($e, qr/refused, never backwards: the next timestamp's physical part is already \d+ ms/, 'never backwards');
($rc, $o, $e) = ctl_rc($leader, 'advance-to', now_ms() - 3_600_000);
is($rc, 1, 'advance-to an hour ago: exit status 1');
like($e, qr/never backwards/, 'never backwards');
my $far = now_ms() + $MAX_RESET_GAP_MS + 3_600_000;
($rc, $o, $e) = ctl_rc($leader, 'advance-to', $far);
is($rc, 1, 'advance-to 25 h ahead: exit status 1');
like($e, qr/more than max-reset-gap \($MAX_RESET_GAP_MS ms\); raise max-reset-gap/, 'beyond max-reset-gap, naming the setting');
my $after_refusals = sidecar_get($leader, 1);
ok(defined $after_refusals && physical_ms($after_refusals) < $floor + $MAX_AHEAD_MS + 1000,
	'the refusals changed nothing');
($rc, $o, $e) = ctl_rc($leader, 'advance-to', 'soon');
is($rc, 2, 'advance-to of a malformed time: exit status 2');
like($e, qr/UNIX_MS must be a Unix time in ms/, 'it says so');
my ($follower) = grep { $_ != $leader } @sc;
($rc, $o, $e) = ctl_rc($follower, 'advance-to', $floor + 10_000);
is($rc, 1, 'advance-to asked of a follower: exit status 1');
like($e, qr/is not the leader; node \d+ is: ask it/, 'it names the leader');

# ---- after a failover, the floor holds ----------------------------------------
sidecar_kill($leader);
my @rest = grep { $_->{pid} } @sc;
my $successor = cluster_leader(@rest);
my $s = wait_until(20, sub { sidecar_get($successor, 1) });
ok(defined $s && physical_ms($s) >= $floor, "the new leader $successor->{name} serves at least the time advanced to");
sidecar_start($leader, no_wait => 1);
sidecar_wait_ready($leader);

my $clean = $run->finish;
note $out;
ok($clean, 'the checker exited 0: no violation through the advance and the failover');
like($out, qr/violations: 0 /, 'violations: 0');

# The checker's calls begun after the advance returned: all at or above it,
# and many (the oracle did not stall waiting for the clock).
my ($after, $below) = (0, 0);
open(my $h, '<', $history) or die "$history: $!";
<$h>;
while (<$h>)
{
	chomp;
	my ($session, $ok, $inv, $cmp, $lo, $hi) = split /\t/;
	next unless $ok && $inv > $advanced_ns;
	$after++;
	$below++ if physical_ms($lo) < $floor;
}
close($h);
cmp_ok($after, '>', 100, "the checker's calls went on after the advance ($after)");
is($below, 0, "none of them got a value below the time advanced to");

no_backward_grants(@pg);
$_->stop for @pg;
sidecar_stop($_) for @sc;
done_testing();
