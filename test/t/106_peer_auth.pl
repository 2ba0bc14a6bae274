# Raft peers speak only TLS 1.3, each with its own member certificate from
# the cluster's CA naming its node id (sidecar/peer.h, common/tls.h,
# docs/cluster.md). At startup: plaintext off loopback, half a TLS
# configuration, a key others can read and another member's certificate are
# refused with a message naming the setting; a lone member opens no Raft
# port. On a running 3-node cluster's Raft port, each of these is refused
# and logged as one warning however often it is tried, while the cluster
# serves throughout: a member certificate used by another id, a certificate
# of another CA, an expired one, a revoked one (CRL), a client certificate,
# no certificate, plaintext bytes, an id outside the configuration. Then,
# with SIGHUP and no restart: a member's certificate is replaced, the CA is
# replaced (trust both, move every member, drop the old), and a reload of
# an unusable file keeps what was read before.
# tsoracle-tap: daemon only
use strict;
use warnings;
use File::Copy qw(copy);
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use IO::Socket::SSL;
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

sub slurp { return PostgreSQL::Test::Utils::slurp_file($_[0]{log}) }

# The log of sc from byte offset pos on.
sub log_since { my ($sc, $pos) = @_; return substr(slurp($sc), $pos) }

sub log_has_since
{
	my ($sc, $pos, $re) = @_;
	return wait_until(10, sub { log_since($sc, $pos) =~ $re });
}

# ---- configurations that are refused ----

my $tls = certs_new('a', 3);
my @off = (
	'--node-id' => 1,
	'--raft-address' => '10.255.0.1:7000',
	'--client-socket' => "$scratch/a.sock",
	'--peers' => '1=10.255.0.1:7000/10.255.0.1:7001,2=10.255.0.2:7000/10.255.0.2:7001,'
	  . '3=10.255.0.3:7000/10.255.0.3:7001');
my ($code, $out) = run_refused(@off);
is($code, 2, 'members off loopback without TLS: exit 2');
like($out, qr/member 1's Raft address 10\.255\.0\.1:7000 is not loopback: set tls-ca, tls-cert and tls-key/,
	'... and the message names the settings');

($code, $out) = run_refused('--client-socket' => "$scratch/b.sock", '--client-tcp' => '0.0.0.0:7001');
is($code, 2, 'a client-tcp off loopback without TLS: exit 2');
like($out, qr/client-tcp 0\.0\.0\.0:7001 is not loopback: set tls-ca, tls-cert and tls-key/, '... and says so');

($code, $out) = run_refused(@off, '--tls-ca' => "$tls/ca.crt", '--tls-cert' => "$tls/node1.crt");
is($code, 2, 'tls-ca and tls-cert without tls-key: exit 2');
like($out, qr/tls-key is missing: tls-ca, tls-cert and tls-key go together/, '... and names the missing one');

my @tls1 = ('--tls-ca' => "$tls/ca.crt", '--tls-cert' => "$tls/node1.crt", '--tls-key' => "$tls/node1.key");
chmod(0644, "$tls/node1.key") or die "chmod: $!";
($code, $out) = run_refused(@off, @tls1);
is($code, 1, 'a key others can read: exit 1');
like($out, qr/tls-key \Q$tls\E\/node1\.key can be read by group or others \(mode 0644\): chmod 600/,
	'... and the message says how to fix it');
chmod(0600, "$tls/node1.key") or die "chmod: $!";

($code, $out) =
  run_refused(@off, '--tls-ca' => "$tls/ca.crt", '--tls-cert' => "$tls/node2.crt", '--tls-key' => "$tls/node2.key");
is($code, 1, "node 1 with member 2's certificate: exit 1");
like($out, qr/tls-cert \S+node2\.crt is not this member's certificate: its subject has CN=member-2.*needs OU=member, CN=member-1/,
	'... and the message names both ids');

# ---- a lone member opens no Raft port ----

my $single = sidecar_new(name => 'single');
sidecar_start($single);
ok(defined sidecar_get($single), 'a single node serves');
ok(!IO::Socket::INET->new(PeerAddr => $single->{raft_address}, Timeout => 2),
	"... and nothing listens on its raft-address $single->{raft_address}");
like(slurp($single), qr/only member of its Raft configuration: no Raft port is opened/, '... as its log says');
sidecar_stop($single);

# ---- a cluster under TLS ----

# More certificates of the cluster's CA, made before it starts (the CRL it
# reads then already revokes one), and of another CA.
certs($tls, 'issue', 'expired', 'member', 3, '--expired');
certs($tls, 'issue', 'revoked', 'member', 3);
certs($tls, 'revoke', 'revoked');
my $other = certs_new('other', 3);

my @sc = cluster_start(cluster_new(3, prefix => 'a'));
is($sc[0]{tls}, $tls, 'the cluster uses the certificates made above');
my $leader = cluster_leader(@sc);
my @pids = map { $_->{pid} } @sc;
ok(defined sidecar_get($_), "$_->{name} serves, its peers under TLS") for @sc;
like(slurp($leader), qr/Raft peers reach this node at \S+ \(TLS, member certificates\)/, 'the leader says so');

# A TLS connection to $to's Raft port with certificate $cert (a path
# without .crt/.key; undef: none) that speaks for node $id: 'admitted' if
# the acceptor's verdict comes, else 'refused'.
sub probe
{
	my ($to, $cert, $id) = @_;
	my $s = IO::Socket::SSL->new(
		PeerAddr => $to->{raft_address},
		Timeout => 5,
		SSL_version => 'TLSv1_3',
		SSL_verify_mode => SSL_VERIFY_NONE,
		($cert ? (SSL_cert_file => "$cert.crt", SSL_key_file => "$cert.key") : ()));
	return 'refused' unless $s;
	my $address = '127.0.0.1:9';
	syswrite($s, 'TSOPEER2' . pack('Q>', $id) . pack('n', length($address)) . $address);
	my $verdict = '';
	sysread($s, $verdict, 1) if IO::Select->new($s)->can_read(5);
	close($s);
	return $verdict eq 'A' ? 'admitted' : 'refused';
}

# The SHA-256 fingerprint of the certificate $to presents on its Raft port.
sub served_fingerprint
{
	my ($to) = @_;
	my $s = IO::Socket::SSL->new(
		PeerAddr => $to->{raft_address},
		Timeout => 5,
		SSL_version => 'TLSv1_3',
		SSL_verify_mode => SSL_VERIFY_NONE,
		SSL_cert_file => "$tls/client.crt",
		SSL_key_file => "$tls/client.key") or die "TLS to $to->{name}: $SSL_ERROR";
	my $fp = $s->get_fingerprint('sha256');
	close($s);
	return $fp;
}

# Raw bytes to $to's Raft port; true if it closes the connection.
sub plaintext_refused
{
	my ($to) = @_;
	my $s = IO::Socket::INET->new(PeerAddr => $to->{raft_address}, Timeout => 5) or die "connect: $!";
	syswrite($s, "\0\0\0\0\0\0\0\x01not TLS: a libraft handshake in the clear\n");
	my $sel = IO::Select->new($s);
	my $closed = 0;
	for (1 .. 50)
	{
		next unless $sel->can_read(0.2);
		my $n = sysread($s, my $buf, 512);
		if (!$n) { $closed = 1; last }
	}
	close($s);
	return $closed;
}

is(probe($leader, "$tls/node3", 3), 'admitted', "positive control: member 3's own certificate, speaking for 3, is admitted");

# Each refusal, tried $repeat times in a row: refused every time, one
# warning, the rest at debug level, and the cluster serves.
my $repeat = 4;
my @refusals = (
	[ "a member certificate used by another id (node 3's, speaking for 2)",
		sub { probe($leader, "$tls/node3", 2) },
		qr/says node 2 at 127\.0\.0\.1:9\): its certificate is member-3's, not member-2's/ ],
	[ 'a certificate from another CA',
		sub { probe($leader, "$other/node2", 2) },
		qr/its certificate failed verification: unable to get local issuer certificate/ ],
	[ 'an expired member certificate',
		sub { probe($leader, "$tls/expired", 3) },
		qr/its certificate failed verification: certificate has expired/ ],
	[ 'a revoked member certificate',
		sub { probe($leader, "$tls/revoked", 3) },
		qr/its certificate failed verification: certificate revoked/ ],
	[ 'a client certificate',
		sub { probe($leader, "$tls/client", 2) },
		qr/its certificate \(CN=client, role client\) is not a member certificate/ ],
	[ 'an admin certificate',
		sub { probe($leader, "$tls/admin", 2) },
		qr/its certificate \(CN=admin, role admin\) is not a member certificate/ ],
	[ 'no certificate at all',
		sub { probe($leader, undef, 2) },
		qr/TLS: peer did not return a certificate/ ],
	[ 'plaintext bytes',
		sub { plaintext_refused($leader) ? 'refused' : 'admitted' },
		qr/127\.0\.0\.1:\d+: TLS: (?:wrong version number|packet length too long|http request|unknown protocol)/ ]);

for my $r (@refusals)
{
	my ($what, $try, $re) = @$r;
	my $pos = length(slurp($leader));
	my @got = map { $try->() } 1 .. $repeat;
	is_deeply(\@got, [ ('refused') x $repeat ], "$what: refused $repeat times out of $repeat");
	ok(wait_until(10, sub { (() = log_since($leader, $pos) =~ /$re/g) >= $repeat }), '... each logged');
	my $since = log_since($leader, $pos);
	my $warnings = () = $since =~ /warn: refused a Raft connection[^\n]*$re/g;
	my $debug = () = $since =~ /debug: refused a Raft connection[^\n]*$re/g;
	is($warnings, 1, '... as one warning (rate-limited)');
	is($debug, $repeat - 1, '... and the rest at debug level');
	ok(defined sidecar_get($_), "... $_->{name} serves meanwhile") for @sc;
}

# An id outside the configuration, with a certificate of this CA for it.
certs($tls, 'issue', 'node9', 'member', 9);
my $pos = length(slurp($leader));
is(probe($leader, "$tls/node9", 9), 'refused', 'member 9, not in the configuration, is refused');
ok(log_has_since($leader, $pos, qr/node 9 is not a member of the Raft configuration/), '... and logged');

# ---- rotation with SIGHUP, no restart ----

# SIGHUP to one member; waits until it has logged one more reload or
# reload error, and returns that line.
sub reload
{
	my ($sc) = @_;
	my $re = qr/^.*(?:reloaded tls-ca|the certificates read before stay in use).*$/m;
	my $count = () = slurp($sc) =~ /$re/g;
	sidecar_signal($sc, 'HUP');
	my @lines;
	wait_until(10, sub { @lines = slurp($sc) =~ /$re/g; @lines > $count })
	  or die "$sc->{name} did not reload";
	return $lines[-1];
}

my ($follower) = grep { $_ != $leader } @sc;

# A member's certificate: a new key and certificate in place, SIGHUP.
my $fp = served_fingerprint($follower);
certs($tls, 'issue', "node$follower->{id}", 'member', $follower->{id});
like(reload($follower), qr/reloaded tls-ca/, "$follower->{name} reloads its new certificate");
isnt(served_fingerprint($follower), $fp, '... and presents it to new connections');
ok(defined sidecar_get($_), "$_->{name} serves after the member's rotation") for @sc;

# An unusable file: the old certificates stay.
$fp = served_fingerprint($follower);
chmod(0644, "$tls/node$follower->{id}.key") or die "chmod: $!";
like(reload($follower), qr/can be read by group or others.*; the certificates read before stay in use/,
	'a reload of a key others can read is refused, and says so');
is(served_fingerprint($follower), $fp, '... and the certificate read before stays in use');
chmod(0600, "$tls/node$follower->{id}.key") or die "chmod: $!";

# The CA: trust both, move every member to the new one, drop the old.
my $ca2 = certs_new('ca2', 3);
copy("$tls/node3.crt", "$scratch/old3.crt") or die;
copy("$tls/node3.key", "$scratch/old3.key") or die;
chmod(0600, "$scratch/old3.key");

write_file_from("$tls/ca.crt", "$tls/ca.crt", "$ca2/ca.crt");
write_file_from("$tls/ca.crl", "$tls/ca.crl", "$ca2/ca.crl");
like(reload($_), qr/reloaded tls-ca/, "CA step 1: $_->{name} trusts the old CA and the new") for @sc;
is(probe($leader, "$ca2/node3", 3), 'admitted', '... a member certificate of the new CA is admitted');
is(probe($leader, "$scratch/old3", 3), 'admitted', '... and one of the old CA still is');

for my $sc (@sc)
{
	copy("$ca2/node$sc->{id}.crt", "$tls/node$sc->{id}.crt") or die;
	copy("$ca2/node$sc->{id}.key", "$tls/node$sc->{id}.key") or die;
	chmod(0600, "$tls/node$sc->{id}.key");
}
like(reload($_), qr/reloaded tls-ca/, "CA step 2: $_->{name} presents a certificate of the new CA") for @sc;

write_file_from("$tls/ca.crt", "$ca2/ca.crt");
write_file_from("$tls/ca.crl", "$ca2/ca.crl");
my %pos = map { $_->{name} => length(slurp($_)) } @sc;
like(reload($_), qr/reloaded tls-ca/, "CA step 3: $_->{name} trusts the new CA alone") for @sc;
# Whichever member reloads first closes the connections made with the old
# CA's certificates (its peers' side of them closes too); they are made
# again with the new ones at once.
my $closed = qr/closing the Raft connection (?:from|to) node \d+: its certificate failed verification: (?:unable to get local issuer certificate|self-signed certificate in certificate chain) \(after the reload\)/;
my $again = qr/Raft connection (?:to node \d+ at \S+ admitted|from \S+ admitted as node \d+)/;
ok(wait_until(10, sub { grep { log_since($_, $pos{ $_->{name} }) =~ $closed } @sc }),
	'... the connections made with certificates of the old CA are closed at the reload');
ok( wait_until(
		10,
		sub {
			grep { log_since($_, $pos{ $_->{name} }) =~ /$closed.*\n(?:.*\n)*.*$again/ } @sc;
		}),
	'... and made again with the new ones');
ok(defined sidecar_get($_), "$_->{name} serves after the CA's rotation, never restarted") for @sc;

# ---- revoking a live member's certificate ----

# Revoked, with the new CRL read by the two others: they close their
# connections with it at the reload and refuse it from then on; it cannot
# take part any more (it is not restarted, so it still holds the revoked
# certificate), and the two serve.
$leader = cluster_leader(@sc);
my ($revoked) = grep { $_ != $leader } @sc;
my @kept = grep { $_ != $revoked } @sc;
certs($ca2, 'revoke', "node$revoked->{id}");
write_file_from("$tls/ca.crl", "$ca2/ca.crl");
%pos = map { $_->{name} => length(slurp($_)) } @sc;
like(reload($_), qr/reloaded tls-ca/, "$_->{name} reads the CRL revoking $revoked->{name}") for @kept;
ok( wait_until(
		10,
		sub {
			grep {
				log_since($_, $pos{ $_->{name} }) =~
				  /closing the Raft connection (?:from|to) node $revoked->{id}: its certificate failed verification: certificate revoked \(after the reload\)/
			} @kept;
		}),
	"... and close their connections with $revoked->{name} at once");
ok( wait_until(10, sub { grep { log_since($_, $pos{ $_->{name} }) =~ /refused a Raft connection.*certificate revoked/ } @kept }),
	"... and refuse its new ones");
ok(defined sidecar_get($_), "$_->{name} serves without it") for @kept;
# The leader commits a HighWater entry about once a second; the revoked
# member may still apply one it had received before the close, no more.
my $applied = sidecar_status($revoked)->{applied_index};
ok(wait_until(10, sub { (sidecar_status($kept[0])->{commit_index} || 0) > $applied + 2 }), 'the cluster commits on');
my $commit = sidecar_status($kept[0])->{commit_index};
ok(!wait_until(3, sub { (sidecar_status($revoked)->{applied_index} || 0) >= $commit }),
	"... while $revoked->{name} never catches up");

ok(!grep({ !kill(0, $_) } @pids), 'all three still run the processes they started as');
is_deeply([ map { $_->{pid} } @sc ], \@pids, '... never restarted');

sidecar_stop($_) for @sc;
done_testing();
