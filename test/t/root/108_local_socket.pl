# The local socket (docs/architecture.md, "The local socket"), with users
# other than tsoracled's: its directory and modes, the SO_PEERCRED check of
# every unix client, and the refusal to start over a path another user
# planted. Needs root to run processes as $PG_USER and as nobody:
# scripts/test.sh runs the t/root files as root.
use strict;
use warnings;
use File::Temp ();
use IPC::Run ();
use Time::HiRes qw(time);
use PostgreSQL::Test::Utils;
use PostgreSQL::Test::Cluster;
use Test::More;

plan skip_all => 'needs root (scripts/test.sh runs t/root as root)' if $> != 0;

my $tsoracled = $ENV{TSORACLED} || die "TSORACLED is not set";
my $ctl = $ENV{TSORACLE_CTL} || die "TSORACLE_CTL is not set";
my $pg = $ENV{PG_USER} || 'postgres';
my ($pg_uid, $pg_gid) = (getpwnam($pg))[ 2, 3 ];
my $pg_group = getgrgid($pg_gid);
my $nobody = getpwnam('nobody');
defined $nobody or plan skip_all => 'no user nobody';

# Runs @cmd as $user (and group $group, if given); returns (ok, stdout + stderr).
sub run_as
{
	my ($user, $group, @cmd) = @_;
	my $out = '';
	# Bounded: a daemon that should have refused to start but did not is
	# killed (IPC::Run's timeout), and the call fails.
	my $t = IPC::Run::timeout(20);
	# Without PERL5LIB: prove's -I directories may be closed to $user, and
	# perl gives up on a module path it may not read.
	my $ok = eval { IPC::Run::run([ 'runuser', '-u', $user, ($group ? ('-g', $group) : ()), '--', 'env', '-u', 'PERL5LIB', @cmd ],
		'>', \$out, '2>&1', $t) };
	$out .= "\n(timed out: $@)" if $@;
	return ($ok, $out);
}

# A directory $pg owns, that nobody with $pg's group may traverse.
my $base = File::Temp::tempdir('/tmp/tsoracle-108.XXXXXX', CLEANUP => 1);
chown $pg_uid, $pg_gid, $base;
chmod 0750, $base;

my @daemons;
END
{
	local $?;
	kill 'KILL', @daemons if @daemons;
}

# Starts tsoracled as $pg on $sock with @extra; waits until it answers (as
# root: always allowed). Returns the harness and the pid file.
sub start_daemon
{
	my ($name, $sock, @extra) = @_;
	my $data = "$base/$name";
	my $log = "$base/$name.log";
	my $port = PostgreSQL::Test::Cluster::get_free_port();
	my $h = IPC::Run::start(
		[
			'runuser', '-u', $pg, '--', $tsoracled, '--data-dir', $data, '--raft-address', "127.0.0.1:$port",
			'--client-socket', $sock, '--log-level', 'debug', @extra
		],
		'>', $log, '2>&1');
	my $up = 0;
	my $deadline = time() + 30;
	while (!$up && time() < $deadline && $h->pumpable)
	{
		my $out = '';
		IPC::Run::run([ $ctl, '--address', $sock, '--timeout', '1000', 'status', '--json' ], '>', \$out, '2>', \my $e);
		$up = $out =~ /"serving": true/;
		select(undef, undef, undef, 0.05) unless $up;
	}
	die "tsoracled $name is not serving (see $log)" unless $up;
	my $pid = slurp_file("$data/tsoracled.pid") =~ /(\d+)/ ? $1 : die "no pid file";
	push @daemons, $pid;
	return { h => $h, pid => $pid, log => $log };
}

sub stop_daemon
{
	my ($d) = @_;
	kill 'TERM', $d->{pid};
	$d->{h}->finish;
	@daemons = grep { $_ != $d->{pid} } @daemons;
}

# Runs tsoracled as $pg expecting it to refuse to start; returns its output.
sub start_refused
{
	my ($name, @args) = @_;
	my $port = PostgreSQL::Test::Cluster::get_free_port();
	my ($ok, $out) = run_as($pg, undef, $tsoracled, '--data-dir', "$base/$name", '--raft-address', "127.0.0.1:$port", @args);
	ok(!$ok, "$name: tsoracled refuses to start");
	return $out;
}

# ---- the directory, the modes, and SO_PEERCRED ---------------------------

my $sock = "$base/run/tsoracled.sock";
my $d = start_daemon('owner', $sock);
my @st = stat("$base/run");
is(sprintf('%o', $st[2] & 07777), '750', 'the missing socket directory is created 0750');
is($st[4], $pg_uid, '... owned by the daemon\'s user');
@st = stat($sock);
is(sprintf('%o', $st[2] & 07777), '660', 'the socket is 0660');

my ($ok, $out) = run_as($pg, undef, $ctl, '--address', $sock, '--timeout', '1000', 'status');
ok($ok, "its own user ($pg) may use it");
($ok, $out) = run_as('nobody', $pg_group, $ctl, '--address', $sock, '--timeout', '1000', 'status');
ok(!$ok, "another uid in its group (nobody, group $pg_group) is refused");
like($out, qr/uid $nobody \(gid $pg_gid\) may not use this socket: only its owner \(uid $pg_uid\), root and client-socket-allow may/,
	'... and reads why, naming client-socket-allow');
like(slurp_file($d->{log}), qr/refused a unix client: uid $nobody \(gid $pg_gid\) may not use this socket/, '... logged');
for (1 .. 20) { run_as('nobody', $pg_group, $ctl, '--address', $sock, '--timeout', '1000', 'status') }
my $lines = () = slurp_file($d->{log}) =~ /refused a unix client/g;
cmp_ok($lines, '<=', 3, "21 refusals within seconds make at most a few log lines ($lines)");
stop_daemon($d);

$d = start_daemon('allow-user', $sock, '--client-socket-allow', 'nobody');
($ok, $out) = run_as('nobody', $pg_group, $ctl, '--address', $sock, '--timeout', '1000', 'status');
ok($ok, 'client-socket-allow = nobody admits nobody') or diag($out);
stop_daemon($d);

$d = start_daemon('allow-group', $sock, '--client-socket-allow', "\@$pg_group");
($ok, $out) = run_as('nobody', $pg_group, $ctl, '--address', $sock, '--timeout', '1000', 'status');
ok($ok, "client-socket-allow = \@$pg_group admits a client of that group") or diag($out);
stop_daemon($d);

$out = start_refused('allow-unknown', '--client-socket', "$base/x.sock", '--client-socket-allow', 'no-such-user-108');
like($out, qr/client-socket-allow: no user named "no-such-user-108"/, '... an unknown name in client-socket-allow is named');

# ---- paths planted by another user --------------------------------------

# A directory open to all, like /tmp.
my $sq = File::Temp::tempdir('/tmp/tsoracle-108sq.XXXXXX', CLEANUP => 1);
chmod 01777, $sq;
run_as('nobody', undef, 'touch', "$sq/file.sock");
$out = start_refused('planted-file', '--client-socket', "$sq/file.sock");
like($out, qr/client-socket "\Q$sq\E\/file.sock" exists and is not a socket \(owned by nobody \(uid $nobody\)\)/,
	'a regular file planted by nobody: refused, naming the path and its owner');

my $bind = q{use IO::Socket::UNIX; IO::Socket::UNIX->new(Type => SOCK_STREAM, Local => $ARGV[0], Listen => 1) or die $!};
run_as('nobody', undef, $^X, '-e', $bind, "$sq/nobody.sock");
ok(-S "$sq/nobody.sock", 'nobody left a socket behind');
$out = start_refused('planted-socket', '--client-socket', "$sq/nobody.sock");
like($out, qr/client-socket "\Q$sq\E\/nobody.sock" exists and belongs to nobody \(uid $nobody\), not to this user \(uid $pg_uid\)/,
	'a socket planted by nobody: refused, naming the path and its owner');

# Positive control: a stale socket of its own user is replaced.
run_as($pg, undef, $^X, '-e', $bind, "$base/stale.sock");
$d = start_daemon('stale', "$base/stale.sock");
like(slurp_file($d->{log}), qr/removed stale socket \Q$base\E\/stale.sock/, 'a stale socket of its own user is replaced');
stop_daemon($d);

# ---- a directory it cannot create ---------------------------------------

my $nodir = "/run/tsoracle-108-$$";
$out = start_refused('no-dir', '--client-socket', "$nodir/tsoracled.sock");
like($out, qr/could not create the directory "\Q$nodir\E" of client-socket "\Q$nodir\E\/tsoracled.sock": Permission denied/,
	'a directory it may not create: refused, naming client-socket');
SKIP:
{
	skip '/run/tsoracle exists here', 2 if -e '/run/tsoracle';
	$out = start_refused('default-dir');
	like($out, qr/could not create the directory "\/run\/tsoracle" of client-socket "\/run\/tsoracle\/tsoracled.sock"/,
		'the default, /run/tsoracle/tsoracled.sock, as a user who may not create /run/tsoracle: the same');
}

done_testing();
