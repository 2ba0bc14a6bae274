# Malformed bytes on the sidecar's socket: the server answers each with the
# error frame the protocol promises (common/proto.h: TP_ERROR with
# TP_ERR_VERSION or TP_ERR_PROTOCOL, and a text that says why) and closes
# the connection, or, for a frame not yet whole, sends nothing and waits;
# it stays up and keeps serving everyone else.
# tsoracle-tap: daemon only
use strict;
use warnings;
use IO::Socket::UNIX;
use IO::Select;
use PostgreSQL::Test::Utils;
use Test::More;
use TsoracleTest;

my $sc = sidecar_start(sidecar_new(name => 'proto'));

# The random garbage below comes from this seed (pinned; another with
# TSO_TAP_SEED=n).
my $seed = $ENV{TSO_TAP_SEED} // 4;
srand($seed);
note "seed $seed";

my $TP_ERROR = 7;
my $TP_ERR_VERSION = 7;
my $TP_ERR_PROTOCOL = 8;
my $HELLO_OK_SIZE = 4 + 1 + 6;
# How long a connection must stay silent to count as "nothing sent" (s).
my $SILENCE_S = 1;

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

# Each case: the bytes sent, whether a hello goes first (then a HELLO_OK
# comes first), and the TP_ERROR status and text expected before the close.
# The garbage's first four bytes, its length, are far above TP_MAX_BODY
# (256) for all but a 2^-24 share of seeds: a malformed frame at once.
my %cases = (
	'random garbage' => [ join('', map { chr(int(rand(256))) } 1 .. 300), 0, $TP_ERR_PROTOCOL, qr/^malformed frame: / ],
	'huge length' => [ pack('N', 0xFFFFFFFF) . 'x' x 16, 0, $TP_ERR_PROTOCOL, qr/^malformed frame: bad frame length$/ ],
	'zero length' => [ pack('N', 0) . 'x' x 8, 0, $TP_ERR_PROTOCOL, qr/^malformed frame: bad frame length$/ ],
	'unknown type' => [ frame(99, 'abc'), 0, $TP_ERR_PROTOCOL, qr/^malformed frame: unknown message type$/ ],
	'request before hello' => [ ts_req(1, 1), 0, $TP_ERR_PROTOCOL, qr/^expected a hello, got message type 3$/ ],
	'bad magic' => [ frame(1, pack('Nnn', 0xDEADBEEF, 1, 1)), 0, $TP_ERR_VERSION, qr/^bad magic 0xdeadbeef: not a tsoracle client$/ ],
	'no common version' => [ frame(1, pack('Nnn', $MAGIC, 7, 9)), 0, $TP_ERR_VERSION, qr/^no common protocol version: client speaks 7 to 9, server 1$/ ],
	'short hello' => [ frame(1, pack('N', $MAGIC)), 0, $TP_ERR_PROTOCOL, qr/^malformed frame: / ],
	'hello twice' => [ hello() . hello(), 1, $TP_ERR_PROTOCOL, qr/^unexpected message type 1 from a client$/ ],
	'server message from a client' => [ hello() . frame(4, 'x' x 22), 1, $TP_ERR_PROTOCOL, qr/^malformed frame: field value out of range$/ ],
	'wrong length for a request' => [ hello() . frame(3, pack('Q>', 1)), 1, $TP_ERR_PROTOCOL, qr/^malformed frame: / ],
);
for my $name (sort keys %cases)
{
	my ($bytes, $hello_first, $want_status, $want_text) = @{ $cases{$name} };
	my $reply = exchange($bytes);
	ok(defined $reply, "$name: the server closes the connection");
	$reply //= '';
	if ($hello_first)
	{
		is(unpack('x4C', $reply), 2, "$name: a HELLO_OK first");
		$reply = substr($reply, $HELLO_OK_SIZE);
	}
	my ($len, $type, $status, $tlen) = unpack('N C n n', $reply);
	my $text = length($reply) >= 9 ? substr($reply, 9, $tlen) : '';
	is_deeply([ $type, $status ], [ $TP_ERROR, $want_status ],
		"$name: then a TP_ERROR frame with status $want_status");
	like($text, $want_text, "$name: that says why ($text)");
	is(length($reply), 4 + ($len // 0), "$name: and nothing after it");
}

# A request for 0 timestamps is not malformed: it gets an error status.
my $bad = exchange(hello() . ts_req(9, 0), 11 + 27);
my (undef, $bid, $bstatus) = unpack('x4C Q> n', substr($bad, 11));
is_deeply([ $bid, $bstatus ], [ 9, 3 ], 'count 0: TP_ERR_BAD_REQUEST, connection kept');

# Truncated frames: a hello cut short is no frame yet, so the server sends
# nothing and keeps the connection open (waiting for the rest); a hello
# whole and a request cut short gets the HELLO_OK only. Then an abrupt
# close.
my $hello_len = length(hello());
for my $cut (1, 3, 4, 5, 10, $hello_len + 1, $hello_len + 10)
{
	my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $sc->{socket}) or die "connect: $!";
	$s->syswrite(substr(hello() . ts_req(1, 1), 0, $cut));
	my $want = $cut >= $hello_len ? $HELLO_OK_SIZE : 0;
	my $got = '';
	my $sel = IO::Select->new($s);
	my $closed = 0;
	while ($sel->can_read($SILENCE_S))
	{
		my $n = $s->sysread(my $buf, 65536);
		if (!$n) { $closed = 1; last; }
		$got .= $buf;
	}
	ok(!$closed && length($got) == $want,
		"$cut bytes of a hello and a request: the server waits for the rest, having sent $want bytes (got "
		  . length($got) . ($closed ? ', and a close' : '') . ')');
	close $s;
}

# Many connections at once, then all dropped.
my @many = map { IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $sc->{socket}) or die "connect: $!" } 1 .. 200;
is(scalar(@many), 200, '200 connections open at once');
close $_ for @many;
ok(defined sidecar_get($sc, 1), 'the sidecar serves once all 200 were dropped');

# The server is alive and serves.
my ($cok, $out) = ctl($sc, 'get', '5');
ok($cok, 'the sidecar still serves after all of that');
like($out, qr/^\d+ 5$/, 'and grants the 5 timestamps asked for');

is(sidecar_stop($sc), 0, 'and it stops cleanly');
done_testing();
