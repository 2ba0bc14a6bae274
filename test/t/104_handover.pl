# Planned handover in a 3-node cluster: tsoracle-ctl transfer-leader and
# SIGTERM on the leader move leadership to another member without waiting
# for an election timeout. Clients of the surviving members keep a
# persistent connection and issue requests back to back across the
# handover: the longest wait between two answers (the gap in service) is
# reported, and only a generous bound asserted (performance belongs to the
# benchmarks); no value repeats and each client's values keep increasing.
# tsoracle-tap: daemon only
use strict;
use warnings;
use IO::Handle;
use IO::Select;
use IO::Socket::UNIX;
use POSIX ();
use Time::HiRes qw(time);
use PostgreSQL::Test::Utils;
use Test::More;
use TsoracleTest;

# The sidecar's defaults (docs/cluster.md), and the bound asserted on the
# gap: an election timeout (what a handover saves), the new leader's wait
# (lease * (1 + drift), which a release spares: the gap is then tens of ms)
# and slack for a loaded machine.
my $ELECTION_TIMEOUT_MS = 300;
my $LEASE_MS = 200;
my $DRIFT = 0.1;
my $SLACK_MS = 500;
my $GAP_BOUND_MS = $ELECTION_TIMEOUT_MS + $LEASE_MS * (1 + $DRIFT) + $SLACK_MS;
# A client is served this many answers before a handover starts and after
# it is over, whatever the handover takes, so the gap check spans it.
my $ANSWERS_AROUND = 100;
# A client that is never told to stop gives up after this (s): the test
# failed before it stopped it.
my $HAMMER_MAX_S = 120;

# ---- the client protocol (common/proto.h), as in 004_protocol.pl --------------
my $MAGIC = 0x54534F52;
my $TS_RESP_SIZE = 4 + 1 + 22;
my $HELLO_OK_SIZE = 4 + 1 + 6;
sub frame { my ($type, $payload) = @_; return pack('NC', 1 + length($payload), $type) . $payload; }
sub hello { return frame(1, pack('Nnn', $MAGIC, 1, 1)); }
sub ts_req { my ($id, $n) = @_; return frame(3, pack('Q>N', $id, $n)); }

# Reads exactly $n bytes within $secs; undef on a close or a timeout.
sub read_exact
{
	my ($s, $n, $secs) = @_;
	my $sel = IO::Select->new($s);
	my $got = '';
	my $deadline = time() + $secs;
	while (length($got) < $n)
	{
		my $left = $deadline - time();
		return undef if $left <= 0 || !$sel->can_read($left);
		my $r = $s->sysread(my $buf, $n - length($got));
		return undef unless $r;
		$got .= $buf;
	}
	return $got;
}

# A client in a child process: one connection to $sc's socket, one request
# of one timestamp at a time, until hammer_stop creates $file.stop. Each
# answer is a line "time status first" in $file, written at once (the test
# counts them). Returns the child's pid.
sub hammer_start
{
	my ($sc, $file) = @_;
	unlink("$file.stop");
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	return $pid if $pid;
	# The child must not run the test's END blocks (they stop sidecars).
	my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $sc->{socket}) or POSIX::_exit(2);
	$s->syswrite(hello());
	read_exact($s, $HELLO_OK_SIZE, 5) or POSIX::_exit(3);
	open(my $out, '>', $file) or POSIX::_exit(4);
	$out->autoflush(1);
	my $end = time() + $HAMMER_MAX_S;
	for (my $id = 1; !-e "$file.stop"; $id++)
	{
		POSIX::_exit(8) if time() > $end;
		$s->syswrite(ts_req($id, 1)) or POSIX::_exit(5);
		# Longer than the sidecar's request timeout: it answers first.
		my $r = read_exact($s, $TS_RESP_SIZE, 10) or POSIX::_exit(6);
		my (undef, $rid, $status, $first) = unpack('x4C Q> n Q>', $r);
		POSIX::_exit(7) if $rid != $id;
		printf $out "%.6f %d %s\n", time(), $status, $first;
	}
	close($out);
	POSIX::_exit(0);
}

# The number of answers the client of $file has had so far.
sub hammer_count
{
	my ($file) = @_;
	open(my $in, '<', $file) or return 0;
	my $n = () = <$in>;
	close($in);
	return $n;
}

# Waits until the client of $file has had $n answers in all.
sub hammer_wait
{
	my ($file, $n) = @_;
	ok(wait_until(30, sub { hammer_count($file) >= $n }), "the client of $file had $n answers");
}

# Once the client has had $ANSWERS_AROUND more answers, tells it to stop.
sub hammer_stop
{
	my ($file) = @_;
	hammer_wait($file, hammer_count($file) + $ANSWERS_AROUND);
	open(my $f, '>', "$file.stop") or die "$file.stop: $!";
	close($f);
}

# Waits for the client; returns its answers as [time, status, first].
sub hammer_collect
{
	my ($pid, $file) = @_;
	waitpid($pid, 0);
	is($? >> 8, 0, "the client of $file ran to its end");
	open(my $in, '<', $file) or die "$file: $!";
	my @r = map { [split] } <$in>;
	close($in);
	return @r;
}

# Reports the longest interval between two successful answers (the gap in
# service) and checks the values: strictly increasing (each request was
# sent after the previous answer, so real-time order requires it). The
# client's answers must span the handover, from before $t0 to after $t1.
sub hammer_check
{
	my ($what, $t0, $t1, @r) = @_;
	my @ok = grep { $_->[1] == 0 } @r;
	ok(@ok && $ok[0][0] < $t0 && $ok[-1][0] > $t1,
		"$what: the client was served from before the handover began to after it ended");
	my $errors = @r - @ok;
	my ($gap, $at) = (0, 0);
	for my $i (1 .. $#ok)
	{
		my $d = $ok[$i][0] - $ok[ $i - 1 ][0];
		($gap, $at) = ($d, $i) if $d > $gap;
	}
	my $gap_ms = int($gap * 1000);
	note sprintf("%s: %d answers, %d errors; longest gap between successful answers %d ms "
		  . "(before answer %d)", $what, scalar(@r), $errors, $gap_ms, $at);
	ok(@ok > 100, "$what: the client was served before and after (" . scalar(@ok) . " grants)");
	cmp_ok($gap_ms, '<', $GAP_BOUND_MS, "$what: gap in service $gap_ms ms is below $GAP_BOUND_MS ms");
	check_increasing("$what: values", map { $_->[2] } @ok);
	return ($gap_ms, map { $_->[2] } @ok);
}

sub no_repeats
{
	my ($what, @v) = @_;
	my %seen;
	my @dups = grep { $seen{$_}++ } @v;
	is(scalar(@dups), 0, "$what: " . scalar(@v) . " values, none handed out twice");
}

sub role { return sidecar_status($_[0])->{role} || ''; }

my @sc = cluster_start(cluster_new(3, prefix => 'h'));
my $tmp = $PostgreSQL::Test::Utils::tmp_check;
my @all_values;

# ---- (a) tsoracle-ctl transfer-leader -----------------------------------------
my $old = cluster_leader(@sc);
my ($target, $other) = grep { $_ != $old } @sc;
note "leader is $old->{name}; transferring to $target->{name}, clients on $other->{name}";
my $before = sidecar_get($other);
ok(defined $before, "a timestamp before the transfer: $before");

# A member that is not the leader refuses, naming the leader.
my ($ok, $out, $err) = ctl($target, 'transfer-leader');
ok(!$ok, 'transfer-leader on a follower fails');
like($err, qr/is not the leader; node $old->{id} is/, 'and names the leader');
($ok, $out, $err) = ctl($old, 'transfer-leader', $old->{id});
ok(!$ok, 'transfer-leader to the leader itself fails');
like($err, qr/node $old->{id} is already the leader: there is nothing to hand over/,
	'and says the target already leads');

my $file = "$tmp/hammer_a";
my $pid = hammer_start($other, $file);
hammer_wait($file, $ANSWERS_AROUND);
my $t_begin = time();
($ok, $out, $err) = ctl($old, '--timeout', '5000', 'transfer-leader', $target->{id});
my $t_end = time();
ok($ok, "transfer-leader to node $target->{id}") or diag($err);
like($out, qr/^leader is now node $target->{id} /, "prints the new leader: $out");
hammer_stop($file);
my ($gap_a, @va) = hammer_check('transfer-leader', $t_begin, $t_end, hammer_collect($pid, $file));
push @all_values, @va;
is(role($target), 'leader', "$target->{name} is the leader");
is(role($old), 'follower', "$old->{name} is a follower");
is(cluster_leader(@sc), $target, "$target->{name} serves");
my $after = sidecar_get($old);
ok($after > $before, "a timestamp after the transfer is above every one before ($after > $before)");
ok($va[0] > $before, 'and so is every value the client took');
# The old leader was established, so it released its lease, and the new one
# served without waiting it out (the gap is then a few round trips).
like(slurp_file($old->{log}), qr/releasing the lease of term \d+/, "$old->{name} released its lease");
like(slurp_file($target->{log}), qr/the leader of the term before released its lease: no wait/,
	"$target->{name} served without the new-leader wait");

# ---- (b) SIGTERM on the leader --------------------------------------------------
my $leader = cluster_leader(@sc);
my @survivors = grep { $_ != $leader } @sc;
my $high = sidecar_get($survivors[0]);
my @clients = map { [ $_, "$tmp/hammer_b_$_->{name}" ] } @survivors;
my @pids = map { hammer_start($_->[0], $_->[1]) } @clients;
hammer_wait($_->[1], $ANSWERS_AROUND) for @clients;
my $t0 = time();
sidecar_signal($leader, 'TERM');
my $new;
wait_until(10, sub {
	($new) = grep { role($_) eq 'leader' } @survivors;
	return $new;
});
my $elected_ms = int((time() - $t0) * 1000);
ok($new, "a survivor became leader after SIGTERM on $leader->{name}");
note "$new->{name} was leader ${elected_ms} ms after SIGTERM";
is(sidecar_stop($leader), 0, "$leader->{name} exits 0");
my $t_stopped = time();
my ($handover_ms) = slurp_file($leader->{log}) =~ /handed leadership over to node $new->{id} in (\d+) ms/;
ok(defined $handover_ms, "$leader->{name} logged the handover");
# Measured by the old leader itself (a poll from here would add its own
# delays on a loaded machine): an election would take a timeout at least.
cmp_ok($handover_ms // 1e9, '<', $ELECTION_TIMEOUT_MS, 'sooner than an election timeout');
like(slurp_file($new->{log}), qr/the leader of the term before released its lease: no wait/,
	"$new->{name} served without the new-leader wait");
for my $c (0 .. $#clients)
{
	hammer_stop($clients[$c][1]);
	my ($gap, @v) = hammer_check("SIGTERM, client on $clients[$c][0]{name}",
		$t0, $t_stopped, hammer_collect($pids[$c], $clients[$c][1]));
	ok($v[0] > $high, "every value after the SIGTERM is above every one before");
	push @all_values, @v;
}
no_repeats('across both handovers and all clients', @all_values);
is(cluster_leader(@survivors), $new, "$new->{name} serves");

# ---- a handover that cannot complete: the target is down --------------------------
# Raft gives up after an election timeout; the leader fences again and
# serves again, above everything before.
my $max = 0;
$max = $_ > $max ? $_ : $max for @all_values;
($ok, $out, $err) = ctl($new, '--timeout', '5000', 'transfer-leader', $leader->{id});
ok(!$ok, "transfer-leader to $leader->{name}, which is down, fails");
like($err, qr/leadership transfer did not complete; (the leader is node $new->{id} still|no leader is known yet)/,
	'saying that the transfer did not complete');
my $again = sidecar_get($new);
ok(defined $again && $again > $max, "$new->{name} serves again, above every earlier value");
is(cluster_leader(@survivors), $new, "$new->{name} is still the leader");

# ---- with the members' list, tsoracle-ctl finds the leader itself ------------------
# Asked through a follower's address, with --peers the command goes to
# whichever member leads.
my ($follower) = grep { $_ != $new } @survivors;
($ok, $out, $err) = ctl($follower, '--peers', $follower->{peers}, '--timeout', '5000', 'transfer-leader',
	$follower->{id});
ok($ok, "transfer-leader with --peers, sent via $follower->{name}, a follower") or diag($err);
like($out, qr/^leader is now node $follower->{id} \(was node $new->{id};/, "moves leadership from $new->{name}: $out");
is(cluster_leader(@survivors), $follower, "$follower->{name} serves");

# ---- a single-member cluster: nothing to hand over to ---------------------------
my $single = sidecar_start(sidecar_new(name => 'hsingle'));
($ok, $out, $err) = ctl($single, 'transfer-leader');
ok(!$ok, 'transfer-leader on a single-member cluster fails');
like($err, qr/bad request/, 'as a bad request');
is(sidecar_stop($single), 0, 'SIGTERM stops a single member, exit 0');
unlike(slurp_file($single->{log}), qr/handing leadership over before stopping/, 'without trying a handover');

is(sidecar_stop($_), 0, "$_->{name} stops cleanly") for @survivors;
done_testing();
