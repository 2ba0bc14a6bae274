# The worker trusts only the right unix socket (src/worker_trust.c, issue 16
# item 7): a socket in a directory every user may write, a socket owned by
# another user, and a socket whose file is ours but whose listener runs as
# another user are all refused; calls fail with 08006 and a DETAIL naming
# the path and its owner, and the worker keeps its refusal until the cause
# is gone or tsoracle.sidecar_user names that user.
#
# The squatters run as nobody and need root to start: scripts/test.sh does
# it (as root, which make test is) and passes their directory in
# TSORACLE_SQUAT; without it those cases are skipped, and with
# TSORACLE_SQUAT=failed (they could not be started) the test fails.
#
# Positive control (run by hand once, 2026-12-04): with the three checks of
# worker_trust.c removed, 10 of these 21 tests fail; the calls through
# nobody's sockets succeed, with timestamps from nobody's daemon.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use TsoracleTest;

# A call waits this long (tsoracle.timeout, ms) before it fails: short, so
# that each refusal shows quickly.
my $timeout_ms = 1000;

# ---- a directory every user may write, without the sticky bit ----------
my $open_dir = "$PostgreSQL::Test::Utils::tmp_check/008_open";
mkdir $open_dir or die "mkdir $open_dir: $!";
chmod(0777, $open_dir) or die "chmod $open_dir: $!";
my $sc = sidecar_new(name => 'genuine');
$sc->{socket} = "$open_dir/tsoracled.sock";
sidecar_start($sc);
my $node = pg_node_for('pg', $sc, "tsoracle.timeout = $timeout_ms\n");

# Calls tso_now(); returns (sqlstate or 'ok', stderr).
sub call
{
	my ($rc, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\nSELECT tso_now()");
	return ($rc == 0 ? 'ok' : ($err =~ /ERROR:\s+(\w{5}):/ ? $1 : "rc $rc"), $err);
}

# Polls until the worker's last error matches $re (it has tried the
# current address); returns the last error.
sub wait_refused
{
	my ($re) = @_;
	my $last;
	wait_until(30, sub {
		$last = $node->safe_psql('postgres', 'SELECT last_error FROM tso_status');
		return $last =~ $re;
	});
	return $last;
}

sub use_address
{
	my ($addr) = @_;
	$node->safe_psql('postgres', "ALTER SYSTEM SET tsoracle.sidecar_address = '$addr'");
	$node->reload;
	wait_until(30, sub {
		$node->safe_psql('postgres', 'SELECT address FROM tso_status') eq $addr;
	}) or die "the worker did not switch to $addr";
}

my $last = wait_refused(qr/refused/);
like($last, qr/refused "\Q$sc->{socket}\E": its directory "\Q$open_dir\E" \(mode 0777\) is writable by every user/,
	'a socket in a directory every user may write is refused');
my ($state, $err) = call();
is($state, '08006', 'and a call fails with 08006');
like($err, qr/DETAIL:.*refused "\Q$sc->{socket}\E": its directory "\Q$open_dir\E" \(mode 0777\)/,
	'its DETAIL names the path and the directory');
# (polled: on a loaded machine a lone member stops serving for a moment
# when its lease lapses before it is renewed: seen in its log as a second
# "serving timestamps from")
ok(wait_until(10, sub { (sidecar_status($sc)->{serving} || '') eq 'true' }), 'while the sidecar there serves');

# The same sidecar once the directory is closed: the refusal was the mode.
chmod(0755, $open_dir) or die "chmod $open_dir: $!";
ok(wait_until(30, sub { (call())[0] eq 'ok' }),
	'with the directory 0755 the worker uses the same socket (no reload)');
my $before = take_ts($node);

# ---- squatters: another user bound the path first -----------------------
my $squat = $ENV{TSORACLE_SQUAT} // '';
SKIP:
{
	skip 'the squatters need root (run by make test as root)', 11 if $squat eq '';
	isnt($squat, 'failed', 'scripts/test.sh started the squatters');
	my ($owner_sock, $peer_sock) = ("$squat/owner.sock", "$squat/peer.sock");
	my $nobody = getpwnam('nobody');

	# Each squatter is live: it hands out timestamps to anyone who asks.
	for my $s ($owner_sock, $peer_sock)
	{
		my ($ok, $out) = ctl({ socket => $s }, 'get', '1');
		ok($ok && $out =~ /^\d+/, "the squatter at $s answers tsoracle-ctl get");
	}

	# A socket owned by nobody, in a sticky directory open to all (like /tmp).
	use_address($owner_sock);
	$last = wait_refused(qr/refused "\Q$owner_sock\E"/);
	like($last, qr/the socket is owned by nobody \(uid $nobody\), not by this server's user \S+ \(uid $>\) or root; set tsoracle.sidecar_user/,
		'a socket owned by another user is refused');
	($state, $err) = call();
	is($state, '08006', 'a call fails with 08006');
	like($err, qr/DETAIL:.*refused "\Q$owner_sock\E": the socket is owned by nobody \(uid $nobody\)/,
		'its DETAIL names the path and its owner');

	# A socket file that is ours, with nobody listening on it.
	use_address($peer_sock);
	$last = wait_refused(qr/refused "\Q$peer_sock\E"/);
	like($last, qr/the process listening on it runs as nobody \(uid $nobody\)/,
		'a socket whose listener runs as another user is refused (SO_PEERCRED)');
	($state, $err) = call();
	is($state, '08006', 'a call fails with 08006');
	like($err, qr/DETAIL:.*refused "\Q$peer_sock\E": the process listening on it runs as nobody/,
		'its DETAIL names the path and the listener\'s user');

	# tsoracle.sidecar_user trusts that user: the worker connects (no call is
	# made, this sidecar is not ours); set back, it refuses again at once.
	$node->safe_psql('postgres', "ALTER SYSTEM SET tsoracle.sidecar_user = 'nobody'");
	$node->reload;
	ok( wait_until(30, sub {
				$node->safe_psql('postgres', 'SELECT connected FROM tso_status') eq 't';
			}),
		'with tsoracle.sidecar_user = nobody the worker connects to it');
	$node->safe_psql('postgres', 'ALTER SYSTEM RESET tsoracle.sidecar_user');
	$node->reload;
	ok( wait_until(30, sub {
				$node->safe_psql('postgres',
					q{SELECT NOT connected AND last_error LIKE '%the process listening on it runs as nobody%' FROM tso_status}) eq 't';
			}),
		'reset, the worker drops that connection and refuses it again');
}

# A user that does not exist is refused when set, with a DETAIL.
my ($rc, $out);
($rc, $out, $err) = $node->psql('postgres', "ALTER SYSTEM SET tsoracle.sidecar_user = 'no_such_user_008'");
like($err, qr/invalid value for parameter "tsoracle.sidecar_user".*\n.*DETAIL:\s+No user named "no_such_user_008" exists on this machine/,
	'tsoracle.sidecar_user naming no user is refused, with a DETAIL');

# ---- back to the genuine sidecar -----------------------------------------
use_address($sc->{socket});
ok(wait_until(30, sub { (call())[0] eq 'ok' }), 'the genuine sidecar serves again');
cmp_ok(take_ts($node), '>', $before, 'above every value taken before');
no_backward_grants($node);
$node->stop;
is(sidecar_stop($sc), 0, 'sidecar stops cleanly');
done_testing();
