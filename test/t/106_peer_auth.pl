# Raft peers must prove they hold the cluster's secret (DESIGN.md section 2,
# sidecar/peer.h). A configuration that would expose Raft unauthenticated
# is refused at startup, and so is a secret file others can read or one too
# short to resist guessing. On a running cluster's Raft port: the right
# answer to the challenge is let through to libraft, a wrong one, a
# malformed one and silence are each refused with a log line naming the
# source. A member restarted with another secret cannot join, cannot
# disturb the others' term, and joins once it has the right secret again.
use strict;
use warnings;
use Digest::SHA qw(hmac_sha256);
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use TsoracleTest;

my $tsoracled = $ENV{TSORACLED};
my $scratch = tempdir(CLEANUP => 1);

# Runs tsoracled to its exit (it must not start); returns (exit code, output).
sub run_refused
{
	my (@args) = @_;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start([ $tsoracled, '--data-dir', "$scratch/data", @args ],
		'>', \$out, '2>', \$err, IPC::Run::timeout(20));
	$h->finish;
	return ($h->result, $out . $err);
}

# ---- configurations that are refused ----

my ($code, $out) = run_refused(
	'--node-id' => 1,
	'--raft-address' => '10.255.0.1:7000',
	'--client-socket' => "$scratch/a.sock",
	'--peers' => '1=10.255.0.1:7000/10.255.0.1:7001,2=10.255.0.2:7000/10.255.0.2:7001,'
	  . '3=10.255.0.3:7000/10.255.0.3:7001');
is($code, 2, 'members off loopback without a secret: exit 2');
like($out, qr/member 1's Raft address 10\.255\.0\.1:7000 is not loopback: set peer-secret-file/,
	'... and the message says what to set');

my $open = "$scratch/open.secret";
PostgreSQL::Test::Utils::append_to_file($open, "0123456789abcdef0123456789abcdef\n");
chmod(0644, $open) or die "chmod: $!";
($code, $out) = run_refused('--client-socket' => "$scratch/b.sock", '--peer-secret-file' => $open);
is($code, 1, 'a secret file others can read: exit 1');
like($out, qr/peer-secret-file \Q$open\E can be read by group or others \(mode 0644\): chmod 600/,
	'... and the message says how to fix it');

my $short = "$scratch/short.secret";
PostgreSQL::Test::Utils::append_to_file($short, "too short\n");
chmod(0600, $short) or die "chmod: $!";
($code, $out) = run_refused('--client-socket' => "$scratch/c.sock", '--peer-secret-file' => $short);
is($code, 1, 'a 9-byte secret: exit 1');
like($out, qr/line 1 holds 9 bytes; at least 16 are needed/, '... and the message says how long it must be');

# ---- a cluster with a secret ----

my @sc = cluster_start(cluster_new(3, prefix => 'a'));
my $leader = cluster_leader(@sc);
ok(defined sidecar_get($_), "$_->{name} serves with authenticated peers") for @sc;
my $secret = PostgreSQL::Test::Utils::slurp_file($sc[0]{secret});
$secret =~ s/\s+$//;

# Opens a TCP connection to $to's Raft port (default: the leader's) and
# reads the challenge.
sub probe
{
	my ($to) = @_;
	$to ||= $leader;
	my $s = IO::Socket::INET->new(PeerAddr => $to->{raft_address}, Timeout => 5)
	  or die "connect $to->{raft_address}: $!";
	return ($s, read_n($s, 24), $s->sockport);
}

# True once the server has closed s (reads EOF), within secs.
sub closed_within
{
	my ($s, $secs) = @_;
	my $sel = IO::Select->new($s);
	my $deadline = time() + $secs;
	while (time() < $deadline)
	{
		next unless $sel->can_read(0.2);
		my $n = sysread($s, my $buf, 64);
		return 1 if !$n;
	}
	return 0;
}

# The MAC of the answer ('C') or of the verdict ('A') (peer.h), on a
# connection to $to (default: the leader).
sub mac
{
	my ($from, $nonce, $id, $address, $key, $to) = @_;
	$to ||= $leader;
	return hmac_sha256(
		'tsoracle raft peer v1' . $from . $nonce . pack('Q>', $id) . pack('Q>', $to->{id}) . $address, $key);
}

# The connector's answer: id, address length, address, MAC.
sub answer
{
	my ($nonce, $id, $address, $key, $to) = @_;
	return pack('Q>', $id) . pack('n', length($address)) . $address
	  . mac('C', $nonce, $id, $address, $key, $to);
}

# True if $to admits a connection answered with $key: its verdict is the
# one that key makes.
sub admitted
{
	my ($to, $key) = @_;
	my ($s, $challenge) = probe($to);
	my $nonce = substr($challenge, 8, 16);
	syswrite($s, answer($nonce, 9, '127.0.0.1:9', $key, $to));
	my $verdict = read_n($s, 32);
	close($s);
	return $verdict eq mac('A', $nonce, 9, '127.0.0.1:9', $key, $to);
}

# Reads n bytes from s (less if it closes or is silent for 5 s).
sub read_n
{
	my ($s, $n) = @_;
	my $got = '';
	my $sel = IO::Select->new($s);
	while (length($got) < $n && $sel->can_read(5))
	{
		sysread($s, my $buf, $n - length($got)) or last;
		$got .= $buf;
	}
	return $got;
}

sub log_has
{
	my ($sc, $re) = @_;
	return wait_until(10, sub { PostgreSQL::Test::Utils::slurp_file($sc->{log}) =~ $re });
}

my ($s, $challenge, $port) = probe();
is(length($challenge), 24, 'a new Raft connection gets a 24-byte challenge');
is(substr($challenge, 0, 8), 'TSOPEER1', '... that names the protocol');
my $nonce = substr($challenge, 8, 16);

syswrite($s, answer($nonce, 9, '127.0.0.1:9', $secret));
is(unpack('H*', read_n($s, 32)), unpack('H*', mac('A', $nonce, 9, '127.0.0.1:9', $secret)),
	"the right answer gets the acceptor's verdict, proving it holds the secret too");
ok(log_has($leader, qr/Raft connection from 127\.0\.0\.1:$port authenticated as node 9/),
	'... and the connection goes on to libraft');
close($s);

my ($s2, $challenge2) = probe();
isnt(substr($challenge2, 8), $nonce, 'every connection gets a fresh nonce');
($s, $challenge, $port) = ($s2, $challenge2, $s2->sockport);
syswrite($s, answer($nonce, 9, '127.0.0.1:9', $secret));
ok(closed_within($s, 10), "an earlier connection's answer, replayed, is refused");
ok( log_has(
		$leader,
		qr/refused a Raft connection from 127\.0\.0\.1:$port \(says node 9 at 127\.0\.0\.1:9\): wrong answer/),
	'... with a log line naming the source and the claim');

($s, $challenge, $port) = probe();
syswrite($s, answer(substr($challenge, 8, 16), 2, $sc[1]{raft_address}, 'not the cluster secret at all'));
ok(closed_within($s, 10), 'an answer keyed with another secret is refused');
ok(log_has($leader, qr/refused a Raft connection from 127\.0\.0\.1:$port \(says node 2 at [^)]*\): wrong answer/),
	'... and logged');

($s, $challenge, $port) = probe();
syswrite($s, pack('Q>', 1) . pack('n', 0xffff));
ok(closed_within($s, 10), 'an answer with an impossible address length is refused');
ok(log_has($leader, qr/refused a Raft connection from 127\.0\.0\.1:$port: malformed answer/),
	'... and logged as malformed');

($s, $challenge, $port) = probe();
ok(closed_within($s, 10), 'a connection that never answers is closed');
ok(log_has($leader, qr/refused a Raft connection from 127\.0\.0\.1:$port: no answer to the challenge in time/),
	'... and logged');

# A flood of silent connections: at most 64 wait in the exchange at once
# (PEER_MAX_PENDING); the rest are closed at once, and the cluster serves
# on throughout.
my @flood = map { (probe())[0] } 1 .. 70;
my $sel = IO::Select->new(@flood);
my %closed;
my $deadline = time() + 2;
while (keys(%closed) < 6 && time() < $deadline)
{
	for my $f ($sel->can_read(0.2))
	{
		next if $closed{$f};
		$closed{$f} = 1 if !sysread($f, my $buf, 64);
	}
}
is(scalar(keys %closed), 6, 'of 70 silent connections, the 6 beyond 64 in the exchange are closed at once');
ok(log_has($leader, qr/refused a Raft connection: 64 others are still in the exchange/), '... and logged');
ok(defined sidecar_get($_), "$_->{name} serves during the flood") for @sc;
ok(!grep({ !closed_within($_, 10) } grep { !$closed{$_} } @flood), 'the other 64 are closed when their time is up');

ok(defined sidecar_get($_), "$_->{name} still serves after the probes") for @sc;

# ---- changing the secret, one member at a time (SIGHUP) ----

my $file = $sc[0]{secret};
my $old = $secret;
my $new = unpack('H*', join('', map { chr(int(rand(256))) } 1 .. 24));

sub write_secrets
{
	my (@lines) = @_;
	open(my $fh, '>', $file) or die "$file: $!";
	print $fh join("\n", @lines), "\n";
	close($fh) or die "$file: $!";
	chmod(0600, $file) or die "chmod $file: $!";
}

# SIGHUP to one member; waits until it has logged one more reload or
# reload error, and returns that line.
sub reload
{
	my ($sc) = @_;
	my $re = qr/^.*(?:reloaded \Q$file\E|the secrets read before stay in use).*$/m;
	my $count = () = PostgreSQL::Test::Utils::slurp_file($sc->{log}) =~ /$re/g;
	sidecar_signal($sc, 'HUP');
	my @lines;
	wait_until(10, sub { @lines = PostgreSQL::Test::Utils::slurp_file($sc->{log}) =~ /$re/g; @lines > $count })
	  or die "$sc->{name} did not reload";
	return $lines[-1];
}

ok(!admitted($leader, $new), 'the new secret is refused before the change');

write_secrets($old, $new);
like(reload($_), qr/2 secret\(s\)/, "step 1: $_->{name} accepts the old secret and the new") for @sc;
ok(admitted($_, $new) && admitted($_, $old), "$_->{name} admits either") for @sc;

write_secrets($new, $old);
reload($_) for @sc;
my ($restarted) = grep { $_ != $leader } @sc;
sidecar_stop($restarted);
sidecar_start($restarted, no_wait => 1);
sidecar_wait_ready($restarted);
ok(defined sidecar_get($restarted), "step 2: $restarted->{name}, restarted, joins answering with the new secret");

write_secrets($new);
reload($_) for @sc;
ok(!admitted($_, $old) && admitted($_, $new), "step 3: $_->{name} refuses the old secret") for @sc;
($restarted) = grep { $_ != $leader && $_ != $restarted } @sc;
sidecar_stop($restarted);
sidecar_start($restarted, no_wait => 1);
sidecar_wait_ready($restarted);
ok(defined sidecar_get($restarted), "$restarted->{name}, restarted, joins with the new secret alone");
ok(defined sidecar_get($_), "$_->{name} serves after the change") for @sc;

chmod(0644, $file) or die "chmod: $!";
like(reload($leader), qr/can be read by group or others .*; the secrets read before stay in use/,
	'a reload of an unsafe file is refused, and says so');
ok(admitted($leader, $new), '... and the secrets read before stay in use');
chmod(0600, $file) or die "chmod: $!";

# ---- a member with the wrong secret ----

my ($outsider) = grep { $_ != $leader } @sc;
my @others = grep { $_ != $outsider } @sc;
my $term = sidecar_status($leader)->{term};
sidecar_stop($outsider);
my $right = $outsider->{secret};
$outsider->{secret} = secret_new('other');
sidecar_start($outsider, no_wait => 1);
ok(log_has($outsider, qr/it refused our answer/), "$outsider->{name} with another secret is refused ...");
ok(log_has($outsider, qr/refused a Raft connection .*: wrong answer to the challenge/), '... and refuses the others');
ok(log_has($leader, qr/says node $outsider->{id} at [^)]*\): wrong answer/),
	"... the leader logs the refused connection from $outsider->{name}");
# Hearing from no leader, it campaigns; nobody lets its messages in.
ok(wait_until(10, sub { (sidecar_status($outsider)->{role} || '') eq 'candidate' }),
	"$outsider->{name} campaigns");
is(sidecar_status($outsider)->{leader_id}, 0, "$outsider->{name} never learns who leads");
ok(!defined sidecar_get($outsider), "$outsider->{name} cannot serve its clients");
is(sidecar_status($leader)->{term}, $term, "the others' term is undisturbed by its elections");
ok(defined sidecar_get($_), "$_->{name} serves meanwhile") for @others;

sidecar_stop($outsider);
$outsider->{secret} = $right;
sidecar_start($outsider, no_wait => 1);
sidecar_wait_ready($outsider);
ok(defined sidecar_get($outsider), "$outsider->{name} joins again with the cluster's secret");
is(sidecar_status($outsider)->{leader_id}, $leader->{id}, '... and follows the leader');

sidecar_stop($_) for @sc;
done_testing();
