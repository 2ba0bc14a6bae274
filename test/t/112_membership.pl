# Membership changes through real processes, under TLS, with the history
# checker running through them: a member that joins (join = true) is added
# by log catch-up and another by snapshot catch-up; an add that cannot
# catch up in time is undone; a second change while one is under way is
# refused; a follower and then the leader are removed (the leader hands
# over first); a dead member is replaced by a new id; a removal that would
# leave no quorum of members that are up is refused; a join node that is
# never added says so and serves nothing. docs/cluster.md, "Membership".
# tsoracle-tap: daemon behaviour
use strict;
use warnings;
use File::Path ();
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use TsoracleTest;

my $checker = $ENV{TSORACLE_CHECKER} or plan skip_all => 'TSORACLE_CHECKER is not set';

# A handover's answer may take longer than TsoracleTest::ctl's 1 s: 605 ms
# of handover plus the connect under ASan on a loaded machine missed it
# (make test SANITIZE=1), as t/104 allows for too.
my $TRANSFER_TIMEOUT_MS = 5000;

# A short lease makes lease renewals (log entries) frequent, so the first
# snapshot (snapshot-threshold entries) comes within seconds; a short
# catch-up-timeout lets the undone add end quickly.
my $catch_up_ms = 4000;
my @common = ('--lease', '60', '--snapshot-threshold', '1024', '--snapshot-trailing', '512',
	'--catch-up-timeout', $catch_up_ms);
my @sc = cluster_new(3, prefix => 'm', extra => \@common);
my $tls = $sc[0]{tls};
# Member certificates for the members added later (scripts/certs.sh).
certs($tls, 'issue', "node$_", 'member', $_) for 4 .. 7;

# A member that starts with --join: it needs its own ports and client-tcp.
sub joiner
{
	my ($id) = @_;
	my $client = '127.0.0.1:' . PostgreSQL::Test::Cluster::get_free_port();
	my $sc = sidecar_new(
		name => "m$id",
		id => $id,
		tls => $tls,
		extra => [ @common, '--join', '--client-tcp', $client ]);
	$sc->{client} = $client;
	$sc->{member} = "$id=$sc->{raft_address}/$client";
	return $sc;
}
for my $sc (@sc)
{
	($sc->{client}) = $sc->{peers} =~ /(?:^|,)$sc->{id}=[^\/]+\/([^,]+)/;
	$sc->{member} = "$sc->{id}=$sc->{raft_address}/$sc->{client}";
}

my %all = map { $_->{id} => $_ } @sc;
# tsoracle-ctl's seeds: every member that runs (it reads the members from
# the replicated configuration of the first that answers).
sub seeds
{
	return join(',', map { $_->{member} } grep { $_->{pid} } sort { $a->{id} <=> $b->{id} } values %all);
}

# tsoracle-ctl member ... with the admin certificate; (exit ok, out, err).
sub member
{
	my @args = @_;
	my ($ok, $out, $err) = ctl($sc[0], '--timeout', '3000', '--peers', seeds(), 'member', @args);
	note "member @args: " . ($ok ? 'ok' : 'failed') . "\n$out$err";
	return ($ok, $out, $err);
}

# The configuration, as member list --json gives it: id => role, and the leader.
sub members
{
	my ($ok, $out) = member('list', '--json');
	return ({}, 0) unless $ok;
	my %role;
	$role{$1} = $2 while $out =~ /\{"id": (\d+), "role": "(\w+)"/g;
	my ($leader) = $out =~ /"leader_id": (\d+)/;
	return (\%role, $leader);
}

sub voters
{
	my ($role) = members();
	return join(',', sort { $a <=> $b } grep { $role->{$_} eq 'voter' } keys %$role);
}

sub snapshots
{
	my ($sc) = @_;
	opendir(my $d, $sc->{data}) or return 0;
	my $n = grep { /^snapshot-/ } readdir($d);
	closedir($d);
	return $n;
}

# Runs the checker for $secs over the given PostgreSQL nodes in the
# background; checker_end waits for it and checks its verdict.
sub checker_start
{
	my ($tag, $secs, @pg) = @_;
	my $c = { tag => $tag, out => '', err => '' };
	$c->{run} = IPC::Run::start(
		[ $checker, (map { ('--conn', "host=" . $_->host . " port=" . $_->port . " dbname=postgres") } @pg),
		  '--clients', '2', '--duration', $secs, '--range-max', '20', '--min-ok', '200', '--seed', '111',
		  '--history', "$PostgreSQL::Test::Utils::tmp_check/history-$tag.tsv" ],
		'>', \$c->{out}, '2>', \$c->{err});
	return $c;
}

sub checker_end
{
	my ($c) = @_;
	my $clean = $c->{run}->finish;
	note $c->{out};
	ok($clean, "$c->{tag}: the checker exited 0 (no violation, enough calls)");
	like($c->{out}, qr/violations: 0 /, "$c->{tag}: violations: 0");
}

# ---- a join node that is never added, started first ----------------------
my $never = joiner(7);
sidecar_start($never, no_wait => 1);

cluster_start(@sc);
is(voters(), '1,2,3', 'the bootstrapped configuration: voters 1, 2, 3');

# ---- phase 1: adds, with the checker on members 1 and 2 -------------------
my @pg1 = map { pg_node_for("pga$_", $sc[ $_ - 1 ], "tsoracle.timeout = 3000\n$GUARD_OFF") } 1 .. 2;
my $c1 = checker_start('adds', 20, @pg1);

my $m4 = joiner(4);
$all{4} = $m4;
sidecar_start($m4, no_wait => 1);
ok(wait_until(15, sub { (sidecar_status($m4)->{joining} || '') eq 'true' }),
	'a member started with --join says in status that it waits to be added');
ok(wait_until(5, sub { slurp_file($m4->{log}) =~ /waits to be added/ }), '... and in its log');

my ($ok, $out, $err) = member('add', $m4->{member});
ok($ok, 'member add 4: exit 0 once it votes');
like($out, qr/node 4 .* is a voter/, '... and says so');
is(snapshots($m4), 0, 'node 4 caught up from the log (no snapshot installed)');
is(voters(), '1,2,3,4', 'voters 1, 2, 3, 4');
my ($role) = members();
is(scalar(keys %$role), 4, 'member list --json lists 4 members');
is((sidecar_status($m4)->{joining} || ''), 'false', 'node 4 no longer says it is joining');
sidecar_wait_ready($m4);

# An add that cannot catch up (node 5 is not running yet) is undone, and a
# second change while it is under way is refused.
my $m5 = joiner(5);
my ($bg_out, $bg_err) = ('', '');
my $bg = IPC::Run::start([ $ENV{TSORACLE_CTL}, '--ca', "$tls/ca.crt", '--cert', "$tls/admin.crt",
	'--key', "$tls/admin.key", '--timeout', '3000', '--peers', seeds(), 'member', 'add', $m5->{member} ],
	'>', \$bg_out, '2>', \$bg_err);
ok(wait_until(10, sub { my ($r) = members(); ($r->{5} || '') =~ /learner|spare/ }),
	'the add of node 5 is under way (node 5 is a learner)');
($ok, $out, $err) = member('remove', 4);
ok(!$ok, 'member remove 4 while node 5 is being added: refused');
like($err, qr/another membership change is under way.*one change at a time/, '... naming the change under way');
my $bg_ok = $bg->finish;
note "bg add 5: $bg_out$bg_err";
ok(!$bg_ok, 'member add 5 with nothing running there: exit 1');
like($bg_err, qr/did not catch up within catch-up-timeout.*removed it again/, '... after catch-up-timeout, removed again');
is(voters(), '1,2,3,4', 'no change: voters 1, 2, 3, 4, and no node 5');
($role) = members();
ok(!exists $role->{5}, 'node 5 is not in the configuration');

# Snapshot catch-up: once the leader has compacted its log, a new member
# needs the snapshot.
my (undef, $lid) = members();
ok(wait_until(60, sub { snapshots($all{$lid}) > 0 }), "the leader (node $lid) took a snapshot");
sidecar_start($m5, no_wait => 1);
$all{5} = $m5;
($ok, $out) = member('add', $m5->{member});
ok($ok, 'member add 5 after the log was compacted: exit 0');
ok(snapshots($m5) > 0, 'node 5 caught up by installing a snapshot');
is(voters(), '1,2,3,4,5', 'voters 1 to 5');
sidecar_wait_ready($m5);
checker_end($c1);
no_backward_grants(@pg1);
$_->stop for @pg1;

# ---- phase 2: removals and a replacement, the checker on 4 and 5 ----------
my @pg2 = map { pg_node_for("pgb$_", $all{$_}, "tsoracle.timeout = 3000\n$GUARD_OFF") } 4 .. 5;
my $c2 = checker_start('removals', 25, @pg2);

# Hand leadership to node 1, so that the follower and the leader removed
# below are among 1, 2, 3 (the checker's PostgreSQL nodes use 4 and 5).
(undef, $lid) = members();
if ($lid != 1)
{
	my ($tok) = ctl($sc[0], '--peers', seeds(), '--timeout', $TRANSFER_TIMEOUT_MS, 'transfer-leader', '1');
	ok($tok, 'leadership handed to node 1');
}
else
{
	pass('node 1 leads');
}

# Remove a follower: it is cut off.
($ok, $out) = member('remove', 2);
ok($ok, 'member remove 2 (a follower): exit 0');
is(voters(), '1,3,4,5', 'voters 1, 3, 4, 5');
ok(wait_until(15, sub {
	grep { slurp_file($all{$_}{log}) =~ /node 2 is (?:no longer )?(?:not )?a member of the Raft configuration/ } (1, 3, 4, 5)
}), 'the members refuse or close node 2\'s Raft connections');
sidecar_stop($all{2});
delete $all{2};

# Remove the leader: it hands over first.
(undef, $lid) = members();
($ok, $out) = member('remove', $lid);
ok($ok, "member remove $lid (the leader): exit 0");
like($out, qr/leads: handing leadership over first/, '... after handing leadership over');
my $removed_leader = $lid;
is(voters(), join(',', grep { $_ != $removed_leader } (1, 3, 4, 5)), "voters without node $removed_leader");
sidecar_stop($all{$removed_leader});
delete $all{$removed_leader};

# Replace a dead member: kill -9, remove it, wipe it, add a new id. The
# dead one is the last of 1, 2, 3, a follower once node 4 leads.
my ($dead) = grep { $_ <= 3 } keys %all;
my ($tok) = ctl($sc[0], '--peers', seeds(), '--timeout', $TRANSFER_TIMEOUT_MS, 'transfer-leader', '4');
ok($tok, 'leadership handed to node 4');
sidecar_kill($all{$dead});
($ok, $out, $err) = member('remove', $dead);
ok($ok, "member remove $dead (killed with -9): exit 0");
File::Path::rmtree($all{$dead}{data});
delete $all{$dead};
my $m6 = joiner(6);
sidecar_start($m6, no_wait => 1);
$all{6} = $m6;
($ok, $out) = member('add', $m6->{member});
ok($ok, 'member add 6 in its place: exit 0');
is(voters(), '4,5,6', 'voters 4, 5, 6');
sidecar_wait_ready($m6);

# A removal that would leave no quorum of members that are up: refused.
(undef, $lid) = members();
my ($down) = grep { $_ != $lid } (4, 5, 6);
my ($other) = grep { $_ != $lid && $_ != $down } (4, 5, 6);
sidecar_kill($all{$down});
# The leader notices: nothing heard from it for an election timeout.
ok(wait_until(10, sub {
	my ($lok, $lout) = member('list', '--json');
	$lok && $lout =~ /\{"id": $down, [^}]*"leader_hears": false/;
}), "the leader no longer hears node $down");
($ok, $out, $err) = member('remove', $other);
ok(!$ok, "member remove $other while node $down is down: refused");
like($err, qr/would leave 2 voters of which only 1 are up.*--force/, '... no quorum would remain, says --force');
is(voters(), '4,5,6', 'no change: voters 4, 5, 6');
sidecar_start($all{$down}, no_wait => 1);
sidecar_wait_ready($all{$down});
checker_end($c2);
no_backward_grants(@pg2);
$_->stop for @pg2;

# ---- the join node that was never added -----------------------------------
my $st = sidecar_status($never);
is($st->{joining}, 'true', 'node 7, never added, still says it is joining');
is($st->{serving}, 'false', '... serves nothing');
ok(!defined sidecar_get($never), '... and grants nothing');
($role) = members();
ok(!exists $role->{7}, '... and is in no configuration');

sidecar_stop($_) for grep { $_->{pid} } (values %all, $never);
done_testing();
