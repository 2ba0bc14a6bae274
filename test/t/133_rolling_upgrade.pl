# A rolling upgrade under load (docs/cluster.md, "Upgrades"): a 3-member
# cluster of an older tsoracled (TSORACLED_OLD: scripts/test.sh builds the
# daemon of commit TSORACLE_OLD_REF, command set 1) is upgraded member by
# member to this build, followers first, then the leader after handing
# leadership to an upgraded member, while the history checker runs on a
# PostgreSQL node per member: 0 errors, 0 violations. Before every member
# runs the new build, a raise of the cluster version is refused and so is
# advance-to (a command of set 2 an old member would halt on); after,
# cluster-version raise commits version 3 (this build's command set: the
# leader stops serving, fences again with a Fence recording its lease's
# wait, and serves on; docs/cluster.md) and advance-to works.
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
my $old = $ENV{TSORACLED_OLD} or plan skip_all => 'TSORACLED_OLD is not set (scripts/test.sh builds it)';
my $new = $ENV{TSORACLED} || die "TSORACLED is not set";

my $TSO_LOGICAL_BITS = 18;    # a timestamp is physical_ms << 18 | logical
my $ADVANCE_MS = 10_000;      # how far ahead the upgraded cluster is moved

sub now_ms { return int(time() * 1000); }

sub ctl_rc
{
	my ($sc, @args) = @_;
	my ($ok, $out, $err) = ctl($sc, '--timeout', '3000', @args);
	return ($ok ? 0 : $? >> 8, $out // '', $err // '');
}

# Stops member $m (SIGTERM: a leader hands over first) and starts it again
# with the binary $bin, then waits until it serves its clients again.
sub restart_with
{
	my ($m, $bin) = @_;
	is(sidecar_stop($m), 0, "$m->{name} stops cleanly");
	$m->{bin} = $bin;
	sidecar_start($m, no_wait => 1);
	sidecar_wait_ready($m);
}

my @sc = cluster_new(3, prefix => 'u');
for my $m (@sc)
{
	rmtree($m->{data});
	$m->{bin} = $old;
}
cluster_start(@sc);
my $peers = $sc[0]{peers};
# Long enough for a call to ride out a member's restart: the worker sends
# its waiters again once it has reconnected.
my @pg = map { pg_node_for("pg$_-$$", $sc[ $_ - 1 ], "tsoracle.timeout = 15000\n$GUARD_OFF") } 1 .. 3;

my $history = "$PostgreSQL::Test::Utils::tmp_check/history-133.tsv";
my ($out, $err) = ('', '');
my $run = IPC::Run::start(
	[ $checker, (map { ('--conn', "host=" . $_->host . " port=" . $_->port . " dbname=postgres") } @pg),
	  '--clients', '2', '--duration', '40', '--range-max', '20',
	  '--min-ok', '1000', '--seed', '133', '--history', $history ],
	'>', \$out, '2>', \$err);

my $leader = cluster_leader(@sc);
ok(wait_until(20, sub { (sidecar_status($leader)->{grants} || 0) > 300 }),
	'the checker\'s load reaches the old cluster\'s leader');

# ---- the followers, one at a time ----------------------------------------------
my @followers = grep { $_ != $leader } @sc;
restart_with($followers[0], $new);

# One member new, two old: the cluster version stays 1.
my ($rc, $o, $e) = ctl_rc($sc[0], '--peers', $peers, 'cluster-version');
like($o, qr/^$followers[0]{id}\s+\S+\s+3\s+1$/m, 'the upgraded member knows command set 3');
my $ones = () = $o =~ /^\d+\s+\S+\s+1\s+1$/mg;
is($ones, 2, 'the two old members count as command set 1') or diag($o);
($rc, $o, $e) = ctl_rc($sc[0], '--peers', $peers, 'cluster-version', 'raise');
is($rc, 1, 'cluster-version raise with old members left: refused');
like($e, qr/nothing to do: the cluster version is 1 and the oldest member knows command set 1/, 'it says why');

restart_with($followers[1], $new);

# ---- the leader: hand over to an upgraded member, then upgrade it ---------------
$leader = cluster_leader(@sc);
if ($leader->{bin} eq $old)
{
	($rc, $o, $e) = ctl_rc($leader, 'transfer-leader');
	is($rc, 0, "the old leader $leader->{name} hands over") or diag($e);
}
my $last_old = $leader->{bin} eq $old ? $leader : (grep { $_->{bin} eq $old } @sc)[0];
restart_with($last_old, $new);
my $new_leader = cluster_leader(@sc);

# The file lists two of three members, the leader among them (tsoracle-ctl
# reaches the leader at its client address in the file, and otherwise says
# only that it cannot): the leader's configuration has more.
my @entries = split /,/, $peers;
my ($listed_leader) = grep { /^$new_leader->{id}=/ } @entries;
my ($listed_other) = grep { !/^$new_leader->{id}=/ } @entries;
($rc, $o, $e) = ctl_rc($sc[0], '--peers', "$listed_leader,$listed_other", 'cluster-version', 'raise');
is($rc, 1, 'a raise that checked two of three members: refused');
like($e, qr/the leader's Raft configuration has 3 members, the config file lists 2/, 'the leader says why');

($rc, $o, $e) = ctl_rc($sc[0], '--peers', $peers, 'cluster-version', 'raise');
is($rc, 0, 'every member upgraded: cluster-version raise') or diag($e);
like($o, qr/cluster version raised to 3/, 'the cluster version is 3');
my $floor = now_ms() + $ADVANCE_MS;
($rc, $o, $e) = ctl_rc($new_leader, 'advance-to', $floor);
is($rc, 0, 'advance-to works on the upgraded cluster') or diag($e);
my $t = sidecar_get($new_leader, 1);
ok(defined $t && ($t >> $TSO_LOGICAL_BITS) >= $floor, 'and takes effect');

my $clean = $run->finish;
note $out;
ok($clean, 'the checker exited 0 through the upgrade');
like($out, qr/violations: 0 /, 'violations: 0');
like($out, qr/errors 0,/, 'errors: 0');

for my $m (@sc)
{
	unlike(slurp_file($m->{log}), qr/does not know: it was written by a newer version/,
		"$m->{name} never met a command it did not know");
}
no_backward_grants(@pg);
$_->stop for @pg;
sidecar_stop($_) for @sc;
done_testing();
