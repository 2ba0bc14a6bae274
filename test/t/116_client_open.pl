# How tsoracle-ctl and tsoracle-bench open a connection (common/dial.h,
# tp_client_open, which both use): against stand-in servers on this test's
# own sockets, each open ends within its deadline and says why, naming the
# address: a listener that never accepts (a full backlog), one that accepts
# and never answers the hello, one that closes, one that refuses with
# TP_ERROR, an answer that is not TP_HELLO_OK, a TP_HELLO_OK of another
# protocol version, and under TLS a member certificate whose id is not the
# node id the server says it has. Each refusal of the hello has its
# positive control: the same stand-in with the right answer gets past it.
# tsoracle-tap: daemon only
use strict;
use warnings;
use File::Temp qw(tempdir);
use IO::Socket::INET;
use IO::Socket::SSL;
use IO::Socket::UNIX;
use IPC::Run;
use POSIX ();
use Socket qw(AF_UNIX SOCK_STREAM pack_sockaddr_un);
use Time::HiRes qw(time);
use PostgreSQL::Test::Utils;
use Test::More;
use TsoracleTest;

my $ctl_bin = $ENV{TSORACLE_CTL};
my $bench = $ENV{TSORACLE_BENCH};
my $dir = tempdir(CLEANUP => 1);
my $TIMEOUT_MS = 1000;        # tsoracle-ctl --timeout here
my $BENCH_HANDSHAKE_MS = 2000; # test/bench/bench.c
my $SLACK_S = 2;              # how much later than its deadline a tool may give up

# Frames of the client protocol (common/proto.h).
sub frame { my ($type, $payload) = @_; return pack('NC', 1 + length($payload), $type) . $payload; }
sub hello_ok { my ($version, $node) = @_; return frame(2, pack('nN', $version, $node)); }
sub error_frame { my ($status, $text) = @_; return frame(7, pack('nn', $status, length $text) . $text); }
my $HELLO_SIZE = 4 + 1 + 8;
my $TP_ERR_UNAVAILABLE = 1;

# How long a tool may take before the test gives up on it (s): a tool that
# does not keep its deadline fails here instead of hanging the test.
my $TOOL_LIMIT_S = 20;

# A tool with exactly these arguments: (ok, its output, seconds taken).
sub run_tool
{
	my (@cmd) = @_;
	my ($out, $err) = ('', '');
	my $t0 = time();
	my $ok = eval { IPC::Run::run(\@cmd, '>', \$out, '2>', \$err, IPC::Run::timeout($TOOL_LIMIT_S)) };
	$err .= "(still running after $TOOL_LIMIT_S s: $@)" if !defined $ok;
	return ($ok, $out . $err, time() - $t0);
}
sub ctl_at { return run_tool($ctl_bin, '--timeout', $TIMEOUT_MS, '--address', @_) }
sub bench_status { return run_tool($bench, '--status', '--address', @_) }

# The stand-in servers, stopped however the test ends (they would
# otherwise hold its output open).
my @children;
my $parent = $$;
END
{
	local $?;    # the test's exit status stays its own
	if ($$ == $parent && @children) { kill 'KILL', @children; waitpid($_, 0) for @children; }
}

# A stand-in server in a child process: for each connection accepted on
# $listener, reads the hello, then &$act($conn) (which may keep it open).
sub serve
{
	my ($listener, $act) = @_;
	my $pid = fork() // die "fork: $!";
	if ($pid == 0)
	{
		open(STDOUT, '>', '/dev/null');
		open(STDERR, '>', '/dev/null');
		my @keep;
		while (my $c = $listener->accept)
		{
			my $got = '';
			while (length($got) < $HELLO_SIZE)
			{
				my $n = sysread($c, my $buf, $HELLO_SIZE - length $got);
				last if !$n;
				$got .= $buf;
			}
			push @keep, $c if $act->($c);
		}
		POSIX::_exit(0);
	}
	push @children, $pid;
	close $listener;
	return $pid;
}

sub unix_server
{
	my ($name, $act) = @_;
	my $path = "$dir/$name.sock";
	my $l = IO::Socket::UNIX->new(Type => SOCK_STREAM, Local => $path, Listen => 16) or die "listen $path: $!";
	serve($l, $act);
	return $path;
}

# Answers: each returns whether to keep the connection open.
my %answer = (
	silent => sub { 1 },
	close => sub { 0 },
	refuse => sub { syswrite($_[0], error_frame($TP_ERR_UNAVAILABLE, 'not today: a stand-in')); 0 },
	other => sub { syswrite($_[0], frame(4, pack('Q> n Q> N', 1, 0, 1, 1))); 0 },
	version2 => sub { syswrite($_[0], hello_ok(2, 1)); 0 },
	ok => sub { syswrite($_[0], hello_ok(1, 1)); 1 },
);
my %sock = map { $_ => unix_server($_, $answer{$_}) } keys %answer;

# ---- a listener that never accepts: the connect itself waits ---------------

{
	my $path = "$dir/full.sock";
	socket(my $l, AF_UNIX, SOCK_STREAM, 0) or die "socket: $!";
	bind($l, pack_sockaddr_un($path)) or die "bind: $!";
	listen($l, 0) or die "listen: $!";
	# Fill its backlog without blocking: later connects wait in connect(2).
	my @fill;
	for (1 .. 4)
	{
		my $c = IO::Socket::UNIX->new(Type => SOCK_STREAM) or die "socket: $!";
		$c->blocking(0);
		connect($c, pack_sockaddr_un($path));
		push @fill, $c;
	}
	my ($ok, $msg, $secs) = ctl_at($path, 'status');
	ok(!$ok, 'tsoracle-ctl to a listener that never accepts fails');
	like($msg, qr/could not connect to \Q$path\E: no connection within $TIMEOUT_MS ms/,
		'... saying it got no connection within --timeout') or diag($msg);
	cmp_ok($secs, '<', $TIMEOUT_MS / 1000 + $SLACK_S, sprintf('... in %.1f s, not later', $secs));
	($ok, $msg, $secs) = bench_status($path);
	like($msg, qr/could not connect to \Q$path\E: no connection within $BENCH_HANDSHAKE_MS ms/,
		'tsoracle-bench says the same') or diag($msg);
	cmp_ok($secs, '<', $BENCH_HANDSHAKE_MS / 1000 + $SLACK_S, sprintf('... in %.1f s', $secs));
}

# ---- the hello's answer ----------------------------------------------------

my @cases = (
	[ silent => qr/no answer to hello from \Q$sock{silent}\E within $TIMEOUT_MS ms/, 'never answers' ],
	[ close => qr/\Q$sock{close}\E closed the connection/, 'closes' ],
	[ refuse => qr/\Q$sock{refuse}\E refused the connection: not today: a stand-in/, 'refuses with TP_ERROR' ],
	[ other => qr/unexpected answer to hello from \Q$sock{other}\E \(message type 4\)/, 'answers with another message' ],
	[ version2 => qr/\Q$sock{version2}\E chose protocol version 2; this client speaks 1/, 'chooses another version' ],
);
for my $case (@cases)
{
	my ($name, $re, $what) = @$case;
	my ($ok, $msg, $secs) = ctl_at($sock{$name}, 'status');
	ok(!$ok, "tsoracle-ctl fails against a server that $what");
	like($msg, $re, '... and says so') or diag($msg);
	cmp_ok($secs, '<', $TIMEOUT_MS / 1000 + $SLACK_S, sprintf('... in %.1f s', $secs));
	($ok, $msg) = bench_status($sock{$name});
	ok(!$ok, "tsoracle-bench fails against it too");
	(my $bre = "$re") =~ s/within $TIMEOUT_MS ms/within $BENCH_HANDSHAKE_MS ms/;
	like($msg, qr/$bre/, '... with the same message') or diag($msg);
}

# Positive control: TP_HELLO_OK of version 1 gets past the hello (the
# stand-in then leaves the status request unanswered).
my ($ok, $msg) = ctl_at($sock{ok}, 'status');
ok(!$ok, 'the stand-in that answers the hello does not answer status');
like($msg, qr/no answer from \Q$sock{ok}\E in time/, '... and that, not the hello, is the failure') or diag($msg);
unlike($msg, qr/hello|version/, '... (the hello was accepted)');

# ---- under TLS: the node id must be the certificate's ------------------------

my $tls = certs_new('stand-in', 2);
sub tls_server
{
	my ($node_id) = @_;
	my $l = IO::Socket::SSL->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 16, ReuseAddr => 1,
		SSL_server => 1, SSL_version => 'TLSv1_3', SSL_cert_file => "$tls/node1.crt",
		SSL_key_file => "$tls/node1.key", SSL_verify_mode => SSL_VERIFY_NONE)
	  or die "TLS listen: $SSL_ERROR";
	my $port = $l->sockport;
	serve($l, sub { syswrite($_[0], hello_ok(1, $node_id)); 1 });
	return "127.0.0.1:$port";
}
my @tls_flags = ('--ca' => "$tls/ca.crt", '--cert' => "$tls/client.crt", '--key' => "$tls/client.key");

my $liar = tls_server(2);
($ok, $msg) = run_tool($ctl_bin, '--timeout', $TIMEOUT_MS, '--address', $liar, @tls_flags, 'status');
ok(!$ok, 'tsoracle-ctl refuses a TLS server that says it is node 2 with member-1\'s certificate');
like($msg, qr/\Q$liar\E says it is node 2, but its certificate is member-1's/, '... and says why') or diag($msg);
($ok, $msg) = run_tool($bench, '--status', '--address', $liar, @tls_flags);
like($msg, qr/\Q$liar\E says it is node 2, but its certificate is member-1's/, 'tsoracle-bench too')
  or diag($msg);

# Positive control: node 1 with member-1's certificate passes the hello.
my $honest = tls_server(1);
($ok, $msg) = run_tool($ctl_bin, '--timeout', $TIMEOUT_MS, '--address', $honest, @tls_flags, 'status');
like($msg, qr/no answer from \Q$honest\E in time/, 'node 1 with member-1\'s certificate gets past the hello')
  or diag($msg);
unlike($msg, qr/says it is node|certificate/, '... (the hello was accepted)');

done_testing();
