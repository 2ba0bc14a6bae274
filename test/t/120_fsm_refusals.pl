# What the state machine refuses (include/tsoracle.h, docs/architecture.md),
# through the real parts: commands tsoracled never proposes are appended to
# a real data directory by libraft's own uv I/O (tsoracle-raft-append, a
# writer tsoracled does not control), then tsoracled starts on it.
#
# A malformed command or a HighWater above the format's maximum is refused
# by the same rule on every replica and the log moves on: the node starts,
# applies the good command after them, and serves above it. A command of a
# type this version does not know stops the member with a message naming
# the type and saying to upgrade, before it serves anything, on every start.
# tsoracle-tap: daemon only
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes ();
use TsoracleTest;

my $append = $ENV{TSORACLE_RAFT_APPEND} || die "TSORACLE_RAFT_APPEND is not set";

# Largest physical time of the format, ms (common/tso.h: TSO_PHYSICAL_MAX).
my $physical_max = 2**45 - 1;
# The good mark written after the refused ones: a second behind the clock,
# so that the node serves at once (far ahead, the allocator would wait for
# the clock to come near it); the high-water the node reports once it has
# replayed its log must be exactly this mark.
my $behind_ms = 1_000;

# One command, hex: type, 7 reserved bytes, u64 argument (include/tsoracle.h).
sub command
{
	my ($type, $arg, %o) = @_;
	my $reserved = $o{reserved} // '00' x 7;
	return sprintf('%02x', $type) . $reserved . sprintf('%016x', $arg);
}

sub append_entries
{
	my ($sc, @entries) = @_;
	mkdir $sc->{data}, 0700 or die "mkdir $sc->{data}: $!";
	my ($out, $err) = ('', '');
	my $ok = IPC::Run::run([ $append, $sc->{data}, $sc->{raft_address}, @entries ],
		'>', \$out, '2>', \$err, IPC::Run::timeout(60));
	note "tsoracle-raft-append: $out$err";
	return $ok;
}

sub log_text
{
	my ($sc) = @_;
	return PostgreSQL::Test::Utils::slurp_file($sc->{log});
}

# ---- refused commands: the node starts and serves -----------------------

my $sc = sidecar_new(name => 'refused');
my $mark = int(Time::HiRes::time() * 1000) - $behind_ms;
my @refused = (
	'0100000000000000',                                      # the envelope alone
	command(1, $mark) . '00' x 8,                            # a HighWater of 24 bytes
	command(1, $physical_max + 1),                           # above the maximum
	command(1, 2**46 - 1),                                   # the 46-bit field's top
	'01' . '00' x 7 . 'ff' x 8,                              # 2^64 - 1, hex by hand
	command(0, $mark),                                       # type 0
	command(1, $mark, reserved => 'ff' . '00' x 6),          # a reserved byte set
	'0200000000000000',                                      # a Release of 8 bytes
);
ok(append_entries($sc, @refused, command(1, $mark)),
	'malformed and out-of-range commands, then a good HighWater, appended through libraft');

sidecar_start($sc);    # dies unless it serves within 30 s
my $ts = sidecar_get($sc);
ok(defined $ts, 'the node restarted over them serves timestamps');
cmp_ok(($ts // 0) >> 18, '>=', $mark, '... above the good HighWater');
my $log = log_text($sc);
like($log, qr/raft started: node 1 at \S+, high-water $mark ms/,
	'apply went on past every refusal: the log replayed to the good HighWater, and none raised it');
my $n = () = $log =~ /warn: refused a Raft log entry: .*; it changes nothing/g;
is($n, scalar @refused, 'each refused entry is logged once, saying what it was');
like($log, qr/refused a Raft log entry: HighWater\(35184372088832\), above the largest physical time/,
	'... e.g. the HighWater one above the maximum');
like($log, qr/refused a Raft log entry: a HighWater of 24 bytes \(it has 16\)/, '... and the long HighWater');
is(sidecar_stop($sc), 0, 'it stops cleanly');

# ---- a command of an unknown type: the member stops ---------------------

my $up = sidecar_new(name => 'unknown');
ok(append_entries($up, command(1, $mark), command(7, 42), command(1, $mark + 1000)),
	'a command of type 7 between two HighWaters, appended through libraft');
for my $start (1, 2)
{
	sidecar_start($up, no_wait => 1);
	ok(wait_until(30, sub { TsoracleTest::_reaped($up) }), "start $start: tsoracled exits by itself");
	is(($up->{exit_status} // -1) >> 8, 1, "start $start: with exit status 1");
	$log = log_text($up);
	my $halts = () = $log =~ /error: the Raft log holds a command of type 7 \(16 bytes\), which this tsoracled does not know: it was written by a newer version; upgrade this member's tsoracled/g;
	is($halts, $start, "start $start: the message names the type and says to upgrade");
	my $stops = () = $log =~ /error: (stopping|raft_start): the Raft log holds a command of type 7/g;
	is($stops, $start, "start $start: and the daemon stops for that reason");
	unlike($log, qr/serving timestamps/, "start $start: it never served");
}

done_testing();
