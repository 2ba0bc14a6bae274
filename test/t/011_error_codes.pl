# The errors a user sees when the sidecar misbehaves or the timestamp range
# ends, through real processes (README.md, "Errors"):
#   - a fake sidecar (below) that answers the worker's hello correctly, then
#     answers a timestamp request with a status no timestamp request may get
#     (TP_ERR_VERSION, TP_ERR_PROTOCOL: common/proto.h): SQLSTATE 08P01;
#   - the same fake answering with a malformed frame, or choosing a protocol
#     version the extension does not speak: the worker drops the connection
#     (src/worker_conn.c), and the call fails with 08006 naming the cause;
#   - a real tsoracled whose clock (its clock-offset-file, sidecar/clock.c)
#     is just below the end of the 46-bit millisecond range: once the range
#     is used up, tso_now() fails with 54000;
#   - tsoracle-ctl's bad usage exits 2 with a message, a failed command 1.
use strict;
use warnings;
use IO::Socket::UNIX;
use POSIX ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use TsoracleTest;

# common/proto.h
my %TP = (HELLO => 1, HELLO_OK => 2, TS_REQ => 3, TS_RESP => 4, STATUS_REQ => 5,
	STATUS_RESP => 6);
my $TP_VERSION = 1;
my $TP_OK = 0;
my $TP_ERR_VERSION = 7;
my $TP_ERR_PROTOCOL = 8;
my $TP_STATUS_FIELDS = 2 * 4 + 2 * 1 + 7 * 8;    # struct tp_status, packed
# common/tso.h
my $TSO_LOGICAL_BITS = 18;
my $TSO_PHYSICAL_MAX = 2**45 - 1;                 # ms: 3084-12-12 12:41:28.831 UTC
my $TP_MAX_COUNT = 2**24;

my $ctl_bin = $ENV{TSORACLE_CTL} || die "TSORACLE_CTL is not set";

# psql with the SQLSTATE in error messages; returns (rc, stdout, stderr).
sub vpsql
{
	my ($node, $sql) = @_;
	return $node->psql('postgres', "\\set VERBOSITY verbose\n$sql");
}

# ---- a fake sidecar ----------------------------------------------------------
# Speaks the wire protocol just enough: one frame is u32 body_len | u8 type |
# payload, big-endian. What it does is read from $mode_file at each hello and
# each timestamp request, so one fake serves every case:
#   ts_status N   hello as tsoracled does, answer TS_REQ with status N
#   malformed     hello as tsoracled does, answer TS_REQ with a frame of an
#                 unknown type (99)
#   bad_version   answer the hello with protocol version 99
# Status requests get a well-formed TP_OK answer with zeroes.
my $fake_dir = "$PostgreSQL::Test::Utils::tmp_check/fake_sidecar";
mkdir $fake_dir;
my $fake_socket = "$fake_dir/fake.sock";
my $mode_file = "$fake_dir/mode";
my $fake_log = "$PostgreSQL::Test::Utils::log_path/011_fake_sidecar.log";

sub set_mode
{
	my ($mode) = @_;
	open(my $f, '>', "$mode_file.tmp") or die "$mode_file: $!";
	print $f "$mode\n";
	close($f) or die "$mode_file: $!";
	rename("$mode_file.tmp", $mode_file) or die "$mode_file: $!";
}

sub read_mode
{
	open(my $f, '<', $mode_file) or return 'ts_status 0';
	my $m = <$f>;
	chomp $m;
	return $m;
}

sub frame
{
	my ($type, $payload) = @_;
	return pack('N C', 1 + length($payload), $type) . $payload;
}

sub read_exact
{
	my ($c, $n) = @_;
	my $buf = '';
	while (length($buf) < $n)
	{
		my $r = sysread($c, $buf, $n - length($buf), length($buf));
		return undef unless $r;
	}
	return $buf;
}

sub fake_serve_conn
{
	my ($c, $log) = @_;
	while (1)
	{
		my $hdr = read_exact($c, 4) // return;
		my $len = unpack('N', $hdr);
		return if $len < 1 || $len > 256;
		my $body = read_exact($c, $len) // return;
		my ($type, $payload) = (ord(substr($body, 0, 1)), substr($body, 1));
		my $mode = read_mode();
		print $log "got type $type in mode $mode\n";
		if ($type == $TP{HELLO})
		{
			my $version = $mode eq 'bad_version' ? 99 : $TP_VERSION;
			syswrite($c, frame($TP{HELLO_OK}, pack('n N', $version, 1)));
		}
		elsif ($type == $TP{STATUS_REQ})
		{
			syswrite($c, frame($TP{STATUS_RESP},
					$payload . pack('n', $TP_OK) . ("\0" x $TP_STATUS_FIELDS)));
		}
		elsif ($type == $TP{TS_REQ})
		{
			my ($hi, $lo, $count) = unpack('N N N', $payload);
			my $id = substr($payload, 0, 8);
			if ($mode eq 'malformed')
			{
				syswrite($c, frame(99, $id));
			}
			elsif ($mode =~ /^ts_status (\d+)$/)
			{
				syswrite($c, frame($TP{TS_RESP}, $id . pack('n N N N', $1, 0, 0, $count)));
			}
			else
			{
				die "fake sidecar: unknown mode $mode";
			}
		}
		else
		{
			return;    # unexpected: close, as tsoracled would
		}
	}
}

sub fake_start
{
	unlink $fake_socket;
	my $listener = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Local => $fake_socket,
		Listen => 8) or die "fake sidecar: listen on $fake_socket: $!";
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		open(my $log, '>>', $fake_log) or POSIX::_exit(1);
		$log->autoflush(1);
		while (my $c = $listener->accept())
		{
			print $log "accepted\n";
			fake_serve_conn($c, $log);
			close($c);
		}
		POSIX::_exit(0);
	}
	close($listener);
	return $pid;
}

# The PostgreSQL server log since $offset.
sub log_since
{
	my ($node, $offset) = @_;
	return substr(slurp_file($node->logfile), $offset);
}

set_mode("ts_status $TP_ERR_VERSION");
my $fake_pid = fake_start();
END { if ($fake_pid) { kill 'KILL', $fake_pid; waitpid($fake_pid, 0); } }

my $pg = PostgreSQL::Test::Cluster->new('pg');
$pg->init;
$pg->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'tsoracle'
tsoracle.sidecar_address = '$fake_socket'
});
$pg->start;
$pg->safe_psql('postgres', 'CREATE EXTENSION tsoracle');

# ---- 08P01: an answer with a status a timestamp request may not get ---------
for my $status ($TP_ERR_VERSION, $TP_ERR_PROTOCOL)
{
	set_mode("ts_status $status");
	my ($rc, $out, $err) = vpsql($pg, 'SET tsoracle.timeout = 5000; SELECT tso_now();');
	isnt($rc, 0, "tso_now() fails when the sidecar answers with status $status");
	like($err, qr/ERROR:\s+08P01: tsoracle sidecar rejected the request/,
		"status $status: 08P01 protocol_violation, \"sidecar rejected the request\"");
	like($err, qr/DETAIL:\s+The sidecar at "\Q$fake_socket\E" answered with status $status: /,
		"status $status: the detail names the address and the status");
	note "error was: $err";
}
# ---- 08006: a malformed answer, a bad protocol version at hello -------------
my $offset = -s $pg->logfile;
set_mode('malformed');
my ($rc, $out, $err) = vpsql($pg, 'SET tsoracle.timeout = 1500; SELECT tso_now();');
like($err, qr/ERROR:\s+08006: could not get a timestamp from the tsoracle sidecar/,
	'a malformed answer: the worker drops the connection, the call fails with 08006');
ok(wait_until(10, sub { log_since($pg, $offset) =~ /malformed message from "\Q$fake_socket\E": unknown message type/ }),
	'the server log names the malformed message');
note "error was: $err";

# A new fake, so that the worker connects again and meets the bad hello.
kill 'TERM', $fake_pid;
waitpid($fake_pid, 0);
$offset = -s $pg->logfile;
set_mode('bad_version');
$fake_pid = fake_start();
ok(wait_until(30, sub { log_since($pg, $offset) =~ /the sidecar at "\Q$fake_socket\E" chose protocol version 99; this extension speaks $TP_VERSION/ }),
	'a hello with a protocol version the extension does not speak is refused, and logged');
($rc, $out, $err) = vpsql($pg, 'SET tsoracle.timeout = 1500; SELECT tso_now();');
like($err, qr/ERROR:\s+08006: could not get a timestamp from the tsoracle sidecar/,
	'a bad protocol version: 08006');
like($err, qr/DETAIL:.*protocol version 99/, 'whose detail names the version');
note "error was: $err";

$pg->stop;
kill 'TERM', $fake_pid;
waitpid($fake_pid, 0);
$fake_pid = 0;

# ---- 54000: the end of the timestamp range, with a real tsoracled -----------
# The sidecar's clock starts CLOCK_MARGIN_MS below the last millisecond of the
# range; its grants can reach no further than TSO_PHYSICAL_MAX (I5,
# sidecar/alloc.c), so taking timestamps in ever smaller batches until each
# size is refused uses up the range, whatever the clock has reached by then.
# The margin is wider than the start floor's reach (I7, docs/allocator.md:
# clock at start + max-ahead 5 s + start-floor-margin 0.5 s), or a member
# started there would find the range used up before its first grant.
my $CLOCK_MARGIN_MS = 8000;
my $sc = sidecar_new(name => 'end');
my $clock_file = "$sc->{dir}/clock-offset";
{
	my $offset_ms = $TSO_PHYSICAL_MAX - $CLOCK_MARGIN_MS - int(time() * 1000);
	open(my $f, '>', $clock_file) or die "$clock_file: $!";
	print $f "$offset_ms\n";
	close($f) or die "$clock_file: $!";
}
push @{ $sc->{extra} }, '--clock-offset-file', $clock_file;
sidecar_start($sc);
my $node = pg_node_for('pg_end', $sc);

my $first = $node->safe_psql('postgres', 'SELECT tso_now()');
cmp_ok($TSO_PHYSICAL_MAX - ($first >> $TSO_LOGICAL_BITS), '<=', $CLOCK_MARGIN_MS,
	"tso_now() works near the end of the range ($first, ms "
	  . ($first >> $TSO_LOGICAL_BITS) . " of $TSO_PHYSICAL_MAX)");

my $taken = 0;
for (my $n = $TP_MAX_COUNT; $n >= 1; $n >>= 6)
{
	# at most 2^6 batches of each size fit in the rest (below 64 of the
	# previous size's), plus those the moving clock skips
	for my $try (1 .. 2**6 + 64)
	{
		my ($ok) = ctl($sc, 'get', $n);
		last unless $ok;
		$taken += $n;
	}
}
note "took $taken timestamps with tsoracle-ctl get";
my ($ok, $ctl_out, $ctl_err) = ctl($sc, 'get', 1);
ok(!$ok, 'tsoracle-ctl get fails once the range is used up');
like($ctl_err, qr/end of the timestamp range|exhausted/i, 'and says the range has ended')
  or note "stderr: $ctl_err";

($rc, $out, $err) = vpsql($node, 'SELECT tso_now();');
isnt($rc, 0, 'tso_now() fails at the end of the range');
like($err, qr/ERROR:\s+54000: tsoracle timestamp range is exhausted/,
	'54000 program_limit_exceeded, "timestamp range is exhausted"');
like($err, qr/DETAIL:\s+The sidecar at "\Q$sc->{socket}\E" answered: /, 'the detail names the sidecar');
like($err, qr/HINT:\s+The 46-bit millisecond part/, 'the hint says why');
note "error was: $err";
($rc, $out, $err) = vpsql($node, 'SELECT * FROM tso_range(10);');
like($err, qr/ERROR:\s+54000:/, 'tso_range() too');

# ---- tsoracle-ctl: bad usage exits 2 with a message, a failure 1 ------------
sub run_ctl
{
	my (@args) = @_;
	my ($stdout, $stderr) = ('', '');
	IPC::Run::run([ $ctl_bin, @args ], '<', \undef, '>', \$stdout, '2>', \$stderr);
	return ($? >> 8, $stdout, $stderr);
}

my @bad = (
	[ [], qr/no command given/, 'no command' ],
	[ ['frobnicate'], qr/unknown command "frobnicate"/, 'an unknown command' ],
	[ [ '--frob', 'status' ], qr/unknown option "--frob"/, 'an unknown option' ],
	[ ['--address'], qr/option "--address" needs a value/, 'an option missing its value' ],
	[ [ '--timeout', 'soon', 'status' ], qr/--timeout "soon" must be a positive number/, 'a non-numeric --timeout' ],
	[ [ 'get', 'ten' ], qr/get: N must be from 1 to \d+, not "ten"/, 'a non-numeric count for get' ],
	[ [ 'get', '0' ], qr/get: N must be from 1/, 'a count of 0 for get' ],
	[ [ 'get', $TP_MAX_COUNT + 1 ], qr/get: N must be from 1 to $TP_MAX_COUNT/, 'a count above the limit' ],
	[ [ 'get', '5', '6' ], qr/get: unexpected argument "6"/, 'an extra argument to get' ],
	[ [ 'status', '--jsn' ], qr/status: unexpected argument "--jsn"/, 'a misspelt status flag' ],
	[ [ 'transfer-leader', 'two' ], qr/transfer-leader: ID must be from 1/, 'a non-numeric member id' ],
	[ [ '--peers', 'nonsense', 'status' ], qr/tsoracle-ctl: .*peer/i, 'a malformed --peers' ],
);
for my $case (@bad)
{
	my ($args, $re, $what) = @$case;
	my ($status, $stdout, $stderr) = run_ctl('--address', $sc->{socket}, @$args);
	is($status, 2, "tsoracle-ctl refuses $what with exit status 2");
	like($stderr, $re, "  and says why on stderr") or note "stderr: $stderr";
	is($stdout, '', '  and prints nothing on stdout');
}
my ($status, $stdout, $stderr) = run_ctl('--help');
is($status, 0, 'tsoracle-ctl --help exits 0');
like($stdout, qr/Exit status: 0 done, 1 the command failed .* 2 bad usage/s, '--help documents the exit statuses');
($status, $stdout, $stderr) = run_ctl('--address', $sc->{socket}, '--timeout', '1000', 'get', '1');
is($status, 1, 'a command that fails (the range is used up) exits 1, not 2');
($status, $stdout, $stderr) = run_ctl('--address', "$sc->{dir}/nobody.sock", '--timeout', '1000', 'status');
is($status, 1, 'so does one that reaches no sidecar');
like($stderr, qr/nobody\.sock/, '  naming the address');

$node->stop;
is(sidecar_stop($sc), 0, 'the sidecar at the end of the range exits cleanly');

done_testing();
