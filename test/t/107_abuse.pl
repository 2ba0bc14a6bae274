# Abuse resistance of the sidecar's client listener (docs/architecture.md,
# "Fair service" and "Bounded resources"), through real processes: a flood
# of the largest requests does not starve a small client, and no timestamp
# runs more than max-ahead past the clock.
# tsoracle-tap: daemon only
use strict;
use warnings;
use IO::Select;
use IO::Socket::UNIX;
use Socket qw(SOL_SOCKET SO_SNDTIMEO);
use Time::HiRes qw(time);
use PostgreSQL::Test::Utils;
use Test::More;
use TsoracleTest;

my $bench = $ENV{TSORACLE_BENCH} || die "TSORACLE_BENCH is not set";

# Runs tsoracle-bench against $sc with @args; returns its --kv line as a hash.
sub bench_kv
{
	my ($sc, @args) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ $bench, '--address', $sc->{socket}, '--kv', @args ], '>', \$out, '2>', \$err);
	my %h = $out =~ /(\w+)=(\S*)/g;
	note "tsoracle-bench @args: $out";
	return \%h;
}

my $sc = sidecar_start(sidecar_new(name => 'abuse'));

# ---- 1. the flood: one connection, 1024 requests of 2^24 in flight -----

my $MAX_COUNT = 16_777_216;
my ($flood_out, $flood_err) = ('', '');
my $flood = IPC::Run::start(
	[
		$bench, '--address', $sc->{socket}, '--kv', '--connections', '1', '--depth', '1024',
		'--count', $MAX_COUNT, '--duration', '7', '--warmup', '0'
	],
	'>', \$flood_out, '2>', \$flood_err);
# The flood is on once the sidecar has handed out more than 64 of its
# requests' worth: more than the 5 s window ahead of the clock holds.
my $t0 = sidecar_status($sc)->{timestamps} || 0;
ok( wait_until(
		10,
		sub {
			(sidecar_status($sc)->{timestamps} || 0) > $t0 + 64 * $MAX_COUNT;
		}),
	'the flood is under way (more than 64 x 2^24 timestamps handed out)');

my $small = bench_kv($sc, '--connections', '1', '--depth', '1', '--count', '1', '--duration', '3',
	'--warmup', '0.3');
$flood->finish;
my %flood = $flood_out =~ /(\w+)=(\S*)/g;
note "flood: $flood_out";

cmp_ok($small->{rps} // 0, '>=', 1000, 'during the flood, a count-1 client gets at least 1,000 requests/s');
cmp_ok($small->{p99_us} // 1e9, '<=', 10_000, 'its p99 latency is at most 10 ms');
is($small->{errors}, 0, 'it sees no error');
cmp_ok($small->{max_ahead_ms} // 1e9, '<=', 5000, 'its timestamps are within 5 s of the clock');
cmp_ok($flood{reqs} // 0, '>', 0, 'the flood is served too');
cmp_ok($flood{max_ahead_ms} // 1e9, '<=', 5000, "the flood's timestamps are within 5 s of the clock");
is($flood{violations}, 0, 'no grant was out of order');

sidecar_stop($sc);

# ---- 2. bounded resources ------------------------------------------------

my $MAGIC = 0x54534F52;
sub frame { my ($type, $payload) = @_; return pack('NC', 1 + length($payload), $type) . $payload; }
sub hello { return frame(1, pack('Nnn', $MAGIC, 1, 1)); }
sub ts_req { my ($id, $n) = @_; return frame(3, pack('Q>N', $id, $n)); }

# The text of the first TP_ERROR frame in $bytes, or undef.
sub error_text
{
	my ($bytes) = @_;
	while (length($bytes) >= 5)
	{
		my ($len, $type) = unpack('NC', $bytes);
		last if length($bytes) < 4 + $len;
		if ($type == 7)
		{
			my ($status, $tlen) = unpack('x5nn', $bytes);
			return substr($bytes, 9, $tlen);
		}
		$bytes = substr($bytes, 4 + $len);
	}
	return undef;
}

# Reads from $s until the server closes it or $secs pass; returns
# (everything read, seconds until the close or undef if still open).
sub read_until_closed
{
	my ($s, $secs) = @_;
	my $t0 = time();
	my $sel = IO::Select->new($s);
	my $got = '';
	while (time() - $t0 < $secs)
	{
		next unless $sel->can_read($secs - (time() - $t0));
		my $n = $s->sysread(my $buf, 65536);
		return ($got, time() - $t0) if !$n;
		$got .= $buf;
	}
	return ($got, undef);
}

sub rss_kb
{
	my ($sc) = @_;
	open(my $f, '<', "/proc/$sc->{pid}/status") or die "status of $sc->{name}: $!";
	my ($kb) = join('', <$f>) =~ /^VmRSS:\s+(\d+)/m;
	return $kb;
}

sub log_has
{
	my ($sc, $re) = @_;
	return slurp_file($sc->{log}) =~ $re;
}

my $HELLO_MS = 2000;
my $IDLE_MS = 1500;
my $MAX_CONNS = 1000;
my $lim = sidecar_start(
	sidecar_new(
		name => 'limits',
		extra => [
			'--max-connections' => $MAX_CONNS,
			'--hello-timeout' => $HELLO_MS,
			'--idle-timeout' => $IDLE_MS,
			'--client-output-max' => 262144
		]));
my $rss0 = rss_kb($lim);

# 2,000 connections that never say hello, held open by a child process
# (its own open files limit: the test's may be 1,024).
my $holder_script = q{
	use IO::Socket::UNIX;
	my ($path, $n) = @ARGV;
	my @held;
	for (1 .. $n) {
		my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $path) or last;
		push @held, $s;
	}
	$| = 1;
	print "opened " . scalar(@held) . "\n";
	my $x = <STDIN>;    # hold them until the test closes our stdin
};
my ($h_in, $h_out, $h_err) = ('', '', '');
my $holder = IPC::Run::start(
	[ 'bash', '-c', 'ulimit -n 4096 && exec "$0" "$@"', $^X, '-e', $holder_script, $lim->{socket}, 2000 ],
	'<', \$h_in, '>', \$h_out, '2>', \$h_err);
my $opened_at;
ok( wait_until(
		30,
		sub {
			$holder->pump_nb;
			$opened_at = time() if !$opened_at && $h_out =~ /opened (\d+)/;
			return $opened_at;
		}),
	'2,000 silent connections opened');
like($h_out, qr/opened 2000/, 'all 2,000 connected (those past max-connections are closed by the server)');

# Past max-connections, a client reads why it is refused.
my ($ok, $out, $err) = ctl($lim, 'status');
ok(!$ok, 'a client past max-connections is refused');
like($out . $err, qr/too many client connections: max-connections is $MAX_CONNS/,
	'the refusal the client reads names max-connections');
ok(log_has($lim, qr/refused a client: too many client connections: max-connections is $MAX_CONNS/),
	'the refusal is logged');

# A new client gets in once the silent ones time out.
ok(wait_until(10, sub { (ctl($lim, 'status'))[0] }), 'a new client gets in');
my $in_ms = int((time() - $opened_at) * 1000);
cmp_ok($in_ms, '<=', $HELLO_MS + 1000, "... within the hello timeout ($in_ms ms after the flood, hello-timeout $HELLO_MS ms)");
ok(log_has($lim, qr/closing a client connection: no hello within hello-timeout \($HELLO_MS ms\)/),
	'the silent connections were closed at the hello timeout, logged');
my $rss_flood = rss_kb($lim);
note "RSS: $rss0 kB idle, $rss_flood kB after the 2,000 silent connections";
$h_in = "done\n";
$holder->finish;

# A client that never reads its responses is dropped at client-output-max.
{
	local $SIG{PIPE} = 'IGNORE';
	my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $lim->{socket}) or die "connect: $!";
	setsockopt($s, SOL_SOCKET, SO_SNDTIMEO, pack('l!l!', 10, 0));
	my $chunk = join('', map { ts_req($_, 1) } 1 .. 4096);
	my ($sent, $closed, $why) = (0, 0, '');
	$s->syswrite(hello());
	# At most 256 MB: far past the cap; the server drops us long before.
	for (1 .. 4096)
	{
		my $n = $s->syswrite($chunk);
		if (!defined $n || $n <= 0) { $why = "$!"; $closed = $!{EPIPE} || $!{ECONNRESET}; last; }
		$sent += $n;
	}
	ok($closed, "a client that never reads is dropped (after sending $sent bytes of requests: $why)");
	ok(wait_until(10, sub { log_has($lim, qr/dropping a client that does not read its responses: \d+ bytes unsent, more than client-output-max \(262144\)/) }),
		'the drop is logged, naming client-output-max');
	my $rss_reader = rss_kb($lim);
	note "RSS: $rss_reader kB after the client that never reads";
	cmp_ok($rss_reader - $rss_flood, '<', 16 * 1024, 'it cost the daemon less than 16 MB of memory');
}

# One byte a second (slowloris): closed at the hello timeout.
{
	my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $lim->{socket}) or die "connect: $!";
	my $t0 = time();
	my $hello = hello();
	my ($got, $closed_after) = ('', undef);
	for my $i (0 .. 9)
	{
		$s->syswrite(substr($hello, $i % length($hello), 1)) if $i < length($hello) - 1;
		my ($g, $c) = read_until_closed($s, 1);
		$got .= $g;
		if (defined $c) { $closed_after = time() - $t0; last; }
	}
	ok(defined $closed_after, 'a client sending one byte a second is closed');
	cmp_ok(int(($closed_after // 99) * 1000), '<=', $HELLO_MS + 500, '... at the hello timeout');
	cmp_ok(int(($closed_after // 0) * 1000), '>=', $HELLO_MS - 100, '... not before');
	like(error_text($got) // '', qr/no hello within hello-timeout \($HELLO_MS ms\)/, '... and reads why');
}

# Nothing in flight for idle-timeout: closed, with a reason.
{
	my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $lim->{socket}) or die "connect: $!";
	$s->syswrite(hello() . ts_req(1, 1));
	my ($got, $closed_after) = read_until_closed($s, 10);
	ok(defined $closed_after, 'an idle client is closed');
	cmp_ok(int(($closed_after // 99) * 1000), '>=', $IDLE_MS - 100, "... after idle-timeout ($IDLE_MS ms)");
	like(error_text($got) // '', qr/idle for idle-timeout \($IDLE_MS ms\)/, '... and reads why');
}
sidecar_stop($lim);

# Start-up: max-connections that cannot fit the open files limit.
{
	my $sc2 = sidecar_new(name => 'nofile', extra => [ '--max-connections' => 1000 ]);
	my ($o, $e) = ('', '');
	my $rc = IPC::Run::run(
		[
			'bash', '-c', 'ulimit -n 512 && exec "$0" "$@"', $ENV{TSORACLED},
			'--data-dir', $sc2->{data}, '--client-socket', $sc2->{socket},
			'--raft-address', $sc2->{raft_address}, '--max-connections', 1000
		],
		'>', \$o, '2>', \$e);
	ok(!$rc, 'tsoracled refuses to start when max-connections cannot fit the open files limit');
	like($e, qr/max-connections \(1000\) needs 1256 open files .* is 512: lower max-connections/,
		'... naming max-connections and the limit');
}

done_testing();
