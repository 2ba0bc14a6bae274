# Malformed bytes on the sidecar's socket: the connection is closed, the
# server stays up and keeps serving everyone else.
use strict;
use warnings;
use IO::Socket::UNIX;
use IO::Select;
use PostgreSQL::Test::Utils;
use Test::More;
use TsoracleTest;

my $sc = sidecar_start(sidecar_new(name => 'proto'));

my $MAGIC = 0x54534F52;
sub frame { my ($type, $payload) = @_; return pack('NC', 1 + length($payload), $type) . $payload; }
sub hello { return frame(1, pack('Nnn', $MAGIC, 1, 1)); }
sub ts_req { my ($id, $n) = @_; return frame(3, pack('Q>N', $id, $n)); }

# Sends $bytes on a new connection; returns what the server sent back
# before closing, or undef if it kept the connection open for 5 s.
sub exchange
{
	my ($bytes, $keep_open) = @_;
	my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $sc->{socket})
	  or die "connect: $!";
	$s->syswrite($bytes) if length $bytes;
	my $sel = IO::Select->new($s);
	my $got = '';
	while ($sel->can_read(5))
	{
		my $n = $s->sysread(my $buf, 65536);
		return $got if !$n;    # closed by the server
		$got .= $buf;
		return $got if $keep_open && length($got) >= $keep_open;
	}
	return $keep_open ? $got : undef;
}

# A well-formed exchange, for reference.
my $ok = exchange(hello() . ts_req(7, 3), 11 + 27);
is(length($ok), 11 + 27, "hello + one request: hello_ok (11 bytes) and a response (27 bytes)");
my ($type, $id, $status, $first, $count) = unpack('x4C Q> n Q> N', substr($ok, 11));
is_deeply([ $type, $id, $status, $count ], [ 4, 7, 0, 3 ], 'the response carries the id, OK and the count');

my %cases = (
	'random garbage' => join('', map { chr(int(rand(256))) } 1 .. 300),
	'huge length' => pack('N', 0xFFFFFFFF) . 'x' x 16,
	'zero length' => pack('N', 0) . 'x' x 8,
	'unknown type' => frame(99, 'abc'),
	'request before hello' => ts_req(1, 1),
	'bad magic' => frame(1, pack('Nnn', 0xDEADBEEF, 1, 1)),
	'no common version' => frame(1, pack('Nnn', $MAGIC, 7, 9)),
	'short hello' => frame(1, pack('N', $MAGIC)),
	'hello twice' => hello() . hello(),
	'server message from a client' => hello() . frame(4, 'x' x 22),
	'wrong length for a request' => hello() . frame(3, pack('Q>', 1)),
);
for my $name (sort keys %cases)
{
	my $reply = exchange($cases{$name});
	ok(defined $reply, "$name: the server closes the connection");
	# Where it could, it said why in a TP_ERROR frame (type 7).
	note "$name: reply of " . length($reply // '') . " bytes";
}

# A request for 0 timestamps is not malformed: it gets an error status.
my $bad = exchange(hello() . ts_req(9, 0), 11 + 27);
my (undef, $bid, $bstatus) = unpack('x4C Q> n', substr($bad, 11));
is_deeply([ $bid, $bstatus ], [ 9, 3 ], 'count 0: TP_ERR_BAD_REQUEST, connection kept');

# Truncated frames and abrupt closes.
for my $cut (1, 3, 4, 5, 10)
{
	my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $sc->{socket}) or die;
	$s->syswrite(substr(hello() . ts_req(1, 1), 0, $cut));
	close $s;
}
pass('truncated frames followed by a close');

# Many connections at once, then all dropped.
my @many = map { IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $sc->{socket}) or die "connect: $!" } 1 .. 200;
close $_ for @many;
pass('200 connections opened and dropped');

# The server is alive and serves.
my ($cok, $out) = ctl($sc, 'get', '5');
ok($cok, 'the sidecar still serves after all of that');
like($out, qr/^\d+ 5$/, 'and grants the 5 timestamps asked for');

is(sidecar_stop($sc), 0, 'and it stops cleanly');
done_testing();
