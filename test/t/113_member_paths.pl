# Membership paths t/112 does not take, through real processes under TLS
# (docs/cluster.md, "Membership" and "Disaster recovery"):
#
#   - a `client` certificate may list the members but not add or remove one,
#     nor advance the oracle: each refused with a clear message, nothing
#     changed;
#   - a follower removed while it keeps running keeps a valid member
#     certificate: the leader's client port refuses it (it may no longer
#     forward nor read), with a rate-limited warning, where it was served
#     before its removal; a new member (new id, empty data) takes its place;
#   - `member remove --force` of a running member while another voter is
#     down: refused without --force; with it, the removal is proposed, the
#     member removed is stopped, nothing is served until the voter that was
#     down is back, and then the removal commits;
#   - the --force-new-cluster runbook followed literally (the other member
#     lost, the survivor stopped and started once with the flag, then
#     without; the lost member's data directory emptied, started with join,
#     added back with member add), with the history checker running through
#     it all: 0 violations, and the cluster of two serves.
#
# Positive control: with TSORACLED pointing at
# build/control/tsoracled-broken-membercert (the client port admits any
# member certificate), the removed member's checks must fail (scripts/test.sh
# runs it so in make test).
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
my $ctl_bin = $ENV{TSORACLE_CTL};

my @sc = cluster_new(3, prefix => 'q');
my $tls = $sc[0]{tls};
for my $sc (@sc)
{
	rmtree($sc->{data});    # a run before this one in the same directory (the positive control)
	($sc->{client}) = $sc->{peers} =~ /(?:^|,)$sc->{id}=[^\/]+\/([^,]+)/;
	$sc->{member} = "$sc->{id}=$sc->{raft_address}/$sc->{client}";
}
my %all = map { $_->{id} => $_ } @sc;
cluster_start(@sc);

sub slurp { return slurp_file($_[0]{log}) }

# tsoracle-ctl with exactly these arguments: (ok, stdout, stderr).
sub ctl_raw
{
	my (@args) = @_;
	my ($out, $err) = ('', '');
	my $ok = IPC::Run::run([ $ctl_bin, @args ], '>', \$out, '2>', \$err, IPC::Run::timeout(60));
	note "tsoracle-ctl @args: " . ($ok ? 'ok' : 'failed') . "\n$out$err";
	return ($ok, $out, $err);
}

# The TLS flags of certificate NAME (admin, client, nodeN).
sub as { my ($name) = @_; return ('--ca', "$tls/ca.crt", '--cert', "$tls/$name.crt", '--key', "$tls/$name.key") }

# Every member that runs, as tsoracle-ctl's seeds.
sub seeds
{
	return join(',', map { $_->{member} } grep { $_->{pid} } sort { $a->{id} <=> $b->{id} } values %all);
}

# tsoracle-ctl --peers SEEDS [TLS of NAME] member ...
sub member_as
{
	my ($name, @args) = @_;
	return ctl_raw('--timeout', '3000', '--peers', seeds(), as($name), 'member', @args);
}

sub voters
{
	my ($ok, $out) = member_as('admin', 'list', '--json');
	return '' unless $ok;
	my %role;
	$role{$1} = $2 while $out =~ /\{"id": (\d+), "role": "(\w+)"/g;
	return join(',', sort { $a <=> $b } grep { $role{$_} eq 'voter' } keys %role);
}

sub now_ms { return int(time() * 1000); }

my $leader = cluster_leader(@sc);
my @followers = grep { $_ != $leader } @sc;
is(voters(), '1,2,3', 'three voters');

# ---- a client certificate may not change the membership nor the oracle ----

my ($ok, $out, $err) = member_as('client', 'list');
ok($ok, 'a client certificate lists the members') or diag($err);
my $pos = length(slurp($leader));
($ok, $out, $err) = member_as('client', 'add', "9=127.0.0.1:1/127.0.0.1:2");
ok(!$ok, 'member add with a client certificate: refused');
like($err, qr/certificate CN=client \(role client\) may not add or remove members: that needs an admin certificate \(OU=admin\)/,
	'... saying that it needs an admin certificate');
($ok, $out, $err) = member_as('client', 'remove', $followers[0]{id});
ok(!$ok, 'member remove with a client certificate: refused');
like($err, qr/may not add or remove members: that needs an admin certificate/, '... likewise');
my $ahead = now_ms() + 60_000;
($ok, $out, $err) = ctl_raw('--timeout', '3000', '--peers', seeds(), as('client'), 'advance-to', $ahead);
ok(!$ok, 'advance-to with a client certificate: refused');
like($err, qr/may not advance the oracle or raise the cluster version: that needs an admin certificate \(OU=admin\)/,
	'... saying that it needs an admin certificate');
ok(wait_until(10, sub { substr(slurp($leader), $pos) =~ /warn.*refused a client request from 127\.0\.0\.1: certificate CN=client/ }),
	'the leader logs the refusal as a warning');
is(voters(), '1,2,3', 'nothing changed: voters 1, 2, 3');
my $ts = sidecar_get($leader, 1);
ok(defined $ts && ($ts >> 18) < $ahead, 'nothing changed: timestamps are still below the refused advance-to');

# ---- the removed member's certificate: refused on the client port ---------

my ($removed, $kept) = @followers;
my $laddr = $leader->{client};
($ok, $out, $err) = ctl_raw('--timeout', '3000', '--address', $laddr, as("node$removed->{id}"), 'get', '1');
ok($ok && $out =~ /^\d+ 1$/, "node $removed->{id}'s member certificate takes timestamps from the leader")
  or diag($err);
my $removed_at = time();
my %pos_removal = map { $_->{id} => length(slurp($_)) } ($leader, $kept);
($ok, $out, $err) = member_as('admin', 'remove', $removed->{id});
ok($ok, "member remove $removed->{id} (a follower, left running): exit 0") or diag($err);
is(voters(), join(',', sort { $a <=> $b } ($leader->{id}, $kept->{id})), "voters without node $removed->{id}");
$leader = cluster_leader($leader, $kept);
$laddr = $leader->{client};
($ok, $out, $err) = ctl_raw('--timeout', '3000', '--address', $laddr, as("node$removed->{id}"), 'get', '1');
ok(!$ok, "the removed node $removed->{id}'s certificate may no longer take timestamps from the leader");
like($err, qr/certificate CN=member-$removed->{id} speaks for node $removed->{id}, which is not a member of the Raft configuration/,
	'... and the refusal says why');
($ok, $out, $err) = ctl_raw('--timeout', '3000', '--address', $laddr, as("node$removed->{id}"), 'status');
ok(!$ok, '... nor read the status');
# The removed member itself, still running, tries too (its forwards, its
# clock measurements): the first refusal after the removal is a warning,
# the others within 10 s go to the debug level.
my $refusal = qr/refused a client request from 127\.0\.0\.1: certificate CN=member-$removed->{id} speaks for node $removed->{id}/;
my $since = sub { substr(slurp($leader), $pos_removal{ $leader->{id} }) };
ok(wait_until(10, sub { $since->() =~ /warn.*$refusal/ }), 'the leader logs the refusal as a warning');
ctl_raw('--timeout', '3000', '--address', $laddr, as("node$removed->{id}"), 'get', '1') for 1 .. 3;
ok(wait_until(10, sub { $since->() =~ /debug.*$refusal/ }), 'repeated refusals go to the debug level');
my @warns = $since->() =~ /warn.*$refusal/g;
cmp_ok(scalar(@warns), '<=', 1 + int((time() - $removed_at) / 10),
	'... at most one warning per 10 s (' . scalar(@warns) . ' in ' . int(time() - $removed_at) . ' s)');
($ok, $out, $err) = ctl_raw('--timeout', '3000', '--address', $laddr, as("node$kept->{id}"), 'get', '1');
ok($ok && $out =~ /^\d+ 1$/, "a current member's certificate (node $kept->{id}) still takes timestamps") or diag($err);
ok(!defined sidecar_get($removed, 1), "the removed node $removed->{id}, still running, serves nothing (its forwards are refused)");
is(sidecar_stop($removed), 0, 'the removed member stops cleanly');
delete $all{ $removed->{id} };

# A new member in its place (an empty data directory, a new id), so that
# there are three voters again.
certs($tls, 'issue', 'node4', 'member', 4);
my $client4 = '127.0.0.1:' . PostgreSQL::Test::Cluster::get_free_port();
my $new = sidecar_new(name => 'q4', id => 4, tls => $tls, extra => [ '--join', '--client-tcp', $client4 ]);
rmtree($new->{data});
$new->{client} = $client4;
$new->{member} = "4=$new->{raft_address}/$client4";
sidecar_start($new, no_wait => 1);
$all{4} = $new;
($ok, $out, $err) = member_as('admin', 'add', $new->{member});
ok($ok, 'member add 4 in its place: exit 0') or diag($err);
is(voters(), join(',', sort { $a <=> $b } ($leader->{id}, $kept->{id}, 4)), 'three voters again');

# ---- member remove --force while another voter is down -------------------

# One follower is down for a while; node 4 is to be removed (it runs, being
# decommissioned). The leader must not be node 4.
my @three = ($leader, $kept, $new);
$leader = cluster_leader(@three);
if ($leader == $new)
{
	($ok, $out, $err) = ctl_raw('--timeout', '5000', '--peers', seeds(), as('admin'), 'transfer-leader', $kept->{id});
	ok($ok, 'leadership handed away from node 4') or diag($err);
	$leader = cluster_leader(@three);
}
my ($down) = grep { $_ != $leader && $_ != $new } @three;
sidecar_kill($down);
ok(wait_until(15, sub {
	my ($k, $o) = member_as('admin', 'list', '--json');
	$k && $o =~ /\{"id": $down->{id}, [^}]*"leader_hears": false/;
}), "the leader no longer hears node $down->{id} (killed with -9)");
($ok, $out, $err) = member_as('admin', 'remove', 4);
ok(!$ok, "member remove 4 while node $down->{id} is down: refused");
like($err, qr/would leave 2 voters of which only 1 are up.*--force/, '... no quorum would be left, says --force');
is(voters(), join(',', sort { $a <=> $b } ($leader->{id}, $down->{id}, 4)), 'no change without --force');

$pos = length(slurp($leader));
($ok, $out, $err) = member_as('admin', 'remove', 4, '--force');
ok(wait_until(10, sub { substr(slurp($leader), $pos) =~ /warn.*removing node 4 with --force: 2 voters remain, 1 of them up/ }),
	'with --force the leader removes it anyway, and says so in its log');
ok(!$ok, '... but the command cannot report a removal that does not commit');
# The member removed is stopped, as docs/cluster.md says to (running, it
# could win an election with the configuration from before).
is(sidecar_stop($new), 0, 'node 4 stops cleanly');
delete $all{4};
ok(wait_until(15, sub { !defined sidecar_get($leader, 1) }),
	'nothing is served while the voters left have no quorum');

# The member that was down comes back: the removal commits, the two serve.
sidecar_start($down, no_wait => 1);
ok(wait_until(30, sub { voters() eq join(',', sort { $a <=> $b } ($leader->{id}, $down->{id})) }),
	"once node $down->{id} is back, the removal commits: voters $leader->{id}, $down->{id}");
ok(wait_until(30, sub { defined sidecar_get($leader, 1) && defined sidecar_get($down, 1) }),
	'and the cluster serves again');
$leader = cluster_leader($leader, $down);
my $dead = $down;

# ---- --force-new-cluster, then member add: docs/cluster.md's runbook -------

my @pg = map { pg_node_for("pgq$_->{id}", $_, "tsoracle.timeout = 3000\n$GUARD_OFF") } ($leader, $dead);
my $history = "$PostgreSQL::Test::Utils::tmp_check/history-113.tsv";
my ($cout, $cerr) = ('', '');
my $run = IPC::Run::start(
	[ $checker, (map { ('--conn', "host=" . $_->host . " port=" . $_->port . " dbname=postgres") } @pg),
	  '--clients', '2', '--duration', '25', '--range-max', '20', '--min-ok', '200', '--seed', '113',
	  '--history', $history ],
	'>', \$cout, '2>', \$cerr);
ok(wait_until(20, sub { (sidecar_status($leader)->{grants} || 0) > 100 }), "the checker's load reaches the leader");

# The other member is lost for good (1): the quorum of two is gone.
my ($survivor, $lost) = ($leader, $dead);
sidecar_kill($lost);
ok(wait_until(15, sub { !defined sidecar_get($survivor, 1) }), "with node $lost->{id} lost, nothing is served");
# (1) The survivor stopped too; (3) started once with the flag.
is(sidecar_stop($survivor), 0, 'the survivor stops cleanly');
push @{ $survivor->{extra} }, '--force-new-cluster';
sidecar_start($survivor, no_wait => 1);
pop @{ $survivor->{extra} };
sidecar_wait_serving($survivor);
like(slurp($survivor), qr/FORCE-NEW-CLUSTER: rewrote the Raft configuration .* to this member alone/,
	'the survivor says loudly what it did');
# (4) Check.
my $st = sidecar_status($survivor);
is($st->{role}, 'leader', '(4) status: the survivor leads');
ok(defined sidecar_get($survivor, 1), '(4) ... and a timestamp comes back');
# (5) The flag removed: a restart without it stays a cluster of one.
is(sidecar_stop($survivor), 0, '(5) the survivor stops cleanly');
sidecar_start($survivor);
is(voters(), "$survivor->{id}", '(5) restarted without the flag: the survivor alone is a voter');
# (6) The lost member back: its data directory emptied, join, member add.
rmtree($lost->{data});
$lost->{extra} = [ @{ $lost->{extra} }, '--join', '--client-tcp', $lost->{client} ];
$lost->{peers} = undef;
sidecar_start($lost, no_wait => 1);
ok(wait_until(15, sub { slurp($lost) =~ /waits to be added/ }), "(6) node $lost->{id}, emptied, waits to be added");
($ok, $out, $err) = member_as('admin', 'add', $lost->{member});
ok($ok, "(6) member add $lost->{member}: exit 0") or diag($err);
like($out, qr/node $lost->{id} .* is a voter/, '(6) ... once it votes');
is(voters(), join(',', sort { $a <=> $b } ($survivor->{id}, $lost->{id})), '(6) the two are voters again');
ok(defined sidecar_get($_, 1), "(6) $_->{name} serves") or diag($@) for ($survivor, $lost);

my $clean = $run->finish;
note $cout;
ok($clean, 'the checker exited 0 through the loss, the recovery and the add');
like($cout, qr/violations: 0 /, 'violations: 0');
no_backward_grants(@pg);

$_->stop for @pg;
is(sidecar_stop($_), 0, "$_->{name} stops cleanly") for ($survivor, $lost);
done_testing();
