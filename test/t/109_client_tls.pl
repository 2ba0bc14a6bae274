# The client TCP port under TLS 1.3 with client certificates and roles
# (docs/cluster.md, "Roles"; sidecar/server.h): a 3-node TLS cluster whose
# followers forward to the leader over TLS with their member certificates;
# tsoracle-ctl and tsoracle-bench with --ca/--cert/--key; a `client`
# certificate may take timestamps and read status but its transfer-leader is
# refused with TP_ERR_FORBIDDEN and a clear message (logged as a warning,
# rate-limited), while `admin` may; plaintext bytes, a TLS client without a
# certificate and a certificate from another CA are refused and logged; the
# cluster serves throughout. A certificate revoked at SIGHUP loses its open
# connection. Each refusal has its positive control: the same client with
# the right certificate is served. A refusal at admission (max-connections)
# reaches a TLS client inside its session.
# tsoracle-tap: daemon only
use strict;
use warnings;
use File::Temp qw(tempdir);
use IO::Socket::INET;
use IO::Socket::SSL;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use TsoracleTest;

my $ctl_bin = $ENV{TSORACLE_CTL};
my $bench = $ENV{TSORACLE_BENCH};
my $scratch = tempdir(CLEANUP => 1);

sub slurp { return PostgreSQL::Test::Utils::slurp_file($_[0]{log}) }
sub log_since { my ($sc, $pos) = @_; return substr(slurp($sc), $pos) }

sub log_has_since
{
	my ($sc, $pos, $re) = @_;
	return wait_until(10, sub { log_since($sc, $pos) =~ $re });
}

# tsoracle-ctl with exactly these arguments: (ok, stdout, stderr).
sub ctl_raw
{
	my (@args) = @_;
	my ($out, $err) = ('', '');
	my $ok = IPC::Run::run([ $ctl_bin, '--timeout', '5000', @args ], '>', \$out, '2>', \$err,
		IPC::Run::timeout(30));
	return ($ok, $out, $err);
}

# The --ca/--cert/--key flags for certificate NAME of directory DIR.
sub tls_as
{
	my ($dir, $name, $ca_dir) = @_;
	return ('--ca' => ($ca_dir || $dir) . '/ca.crt', '--cert' => "$dir/$name.crt", '--key' => "$dir/$name.key");
}

# A hello frame (common/proto.h): u32 body length 9, type 1, magic "TSOR", versions 1..1.
my $hello = pack('N C N n n', 9, 1, 0x54534f52, 1, 1);

# Sends a hello over $sock and returns the first frame that comes back
# within 5 s ('' if the connection closed or failed first).
sub hello_answer
{
	my ($sock) = @_;
	return '' unless $sock;
	$sock->syswrite($hello) or return '';
	my $got = '';
	my $deadline = time() + 5;
	while (time() < $deadline && length($got) < 4 + (length($got) >= 4 ? unpack('N', $got) : 7))
	{
		my $buf;
		my $n = $sock->sysread($buf, 4096);
		if (!defined $n)
		{
			next if $!{EAGAIN} || $!{EWOULDBLOCK} || $!{EINTR};
			last;
		}
		last if $n == 0;
		$got .= $buf;
	}
	return $got;
}

# True if the answer is a HELLO_OK frame (type 2).
sub is_hello_ok { my ($b) = @_; return length($b) >= 5 && unpack('x4 C', $b) == 2 }

# ---- a 3-node TLS cluster: followers forward over TLS ----------------------

my @sc = cluster_new(3, prefix => 'c');
my $tls = $sc[0]{tls};
cluster_start(@sc);
my $leader = cluster_leader(@sc);
my @followers = grep { $_ != $leader } @sc;

# Each member's client address, from the peers list.
my %client = map { /^(\d+)=[^\/]+\/(.+)$/ ? ($1 => $2) : () } split /,/, $sc[0]{peers};
my $laddr = $client{ $leader->{id} };
ok($laddr, "the leader, $leader->{name}, has a client address ($laddr)");

for my $f (@followers)
{
	ok(defined sidecar_get($f, 3), "timestamps through follower $f->{name} (forwarded over TLS)")
	  or diag($@);
	like(slurp($f), qr/forwarding to the leader, node $leader->{id} at \Q$laddr\E/,
		"$f->{name} forwards to node $leader->{id}'s client-tcp");
}
like(slurp($leader), qr/listening for clients on tcp \Q$laddr\E \(TLS 1\.3, client certificates from tls-ca\)/,
	'the leader says its client-tcp runs TLS');

# ---- tsoracle-ctl and tsoracle-bench with a client certificate ------------

my ($ok, $out, $err) = ctl_raw('--address', $laddr, tls_as($tls, 'client'), 'get', 5);
ok($ok && $out =~ /^\d+ 5$/, 'a client certificate takes timestamps over TLS') or diag($err);
($ok, $out, $err) = ctl_raw('--address', $laddr, tls_as($tls, 'client'), 'status', '--json');
ok($ok && $out =~ /"node_id": $leader->{id}/, '... and reads status') or diag($err);
($ok, $out, $err) = ctl_raw('--address', $laddr, tls_as($tls, "node$followers[0]{id}"), 'status');
ok($ok, 'a member certificate reads status (what forwarding followers use)') or diag($err);

($ok, $out, $err) = ctl_raw('--address', $laddr, 'get', 1);
ok(!$ok, 'tsoracle-ctl without TLS options is refused by the TLS port');
like($err, qr/give --ca, --cert and --key/, '... and the message says which options it needs');

my ($bout, $berr) = ('', '');
IPC::Run::run([ $bench, '--address', $laddr, tls_as($tls, 'client'), '--connections', 4, '--depth', 4,
		'--duration', '0.5', '--warmup', '0.1', '--kv' ],
	'>', \$bout, '2>', \$berr, IPC::Run::timeout(60));
like($bout, qr/\bviolations=0\b/, 'tsoracle-bench over TLS: no violations') or diag("$bout $berr");
ok($bout =~ /\breqs=(\d+)/ && $1 > 0, "tsoracle-bench over TLS: requests served ($1)") or diag($bout);

# ---- roles: a client may not transfer leadership, an admin may -------------

my $pos = length(slurp($leader));
($ok, $out, $err) = ctl_raw('--address', $laddr, tls_as($tls, 'client'), 'transfer-leader');
ok(!$ok, 'transfer-leader with a client certificate fails');
like($err,
	qr/certificate CN=client \(role client\) may not transfer leadership: that needs an admin certificate \(OU=admin\)/,
	'... with the clear refusal from the server');
ok(log_has_since($leader, $pos,
		qr/warn.*refused a client request from 127\.0\.0\.1: certificate CN=client \(role client\) may not transfer leadership/),
	'... logged as a warning by the leader');
is((cluster_leader(@sc))->{id}, $leader->{id}, '... and leadership did not move');
ok(defined sidecar_get($_), "$_->{name} serves after the refusal") or diag($@) for @sc;

# Rate-limited: the same refusal again at once is not a second warning.
$pos = length(slurp($leader));
ctl_raw('--address', $laddr, tls_as($tls, 'client'), 'transfer-leader') for 1 .. 3;
ok(log_has_since($leader, $pos, qr/debug.*refused a client request from 127\.0\.0\.1: certificate CN=client/),
	'repeated refusals go to the debug level');
unlike(log_since($leader, $pos), qr/warn.*refused a client request/, '... not a warning each');

# An admin certificate may (the positive control).
($ok, $out, $err) = ctl_raw('--address', $laddr, tls_as($tls, 'admin'), 'transfer-leader');
ok($ok, 'transfer-leader with an admin certificate succeeds') or diag($err);
like($out, qr/leader is now node (\d+)/, '... and names the new leader');
$leader = cluster_leader(@sc);
$laddr = $client{ $leader->{id} };
ok(defined sidecar_get($_), "$_->{name} serves after the handover") or diag($@) for @sc;

# tsoracle-ctl --config uses the file's tls-* (a member's certificate: status)
# unless --cert/--key name others (the admin's: transfer-leader).
my $conf = "$scratch/member.conf";
open(my $fh, '>', $conf) or die "open: $!";
print $fh "node-id = 1\npeers = $sc[0]{peers}\ntls-ca = $tls/ca.crt\ntls-cert = $tls/node1.crt\n"
  . "tls-key = $tls/node1.key\ntls-crl = $tls/ca.crl\n";
close $fh;
($ok, $out, $err) = ctl_raw('--config', $conf, 'status');
ok($ok && $out =~ /\byes\b/, 'tsoracle-ctl --config FILE status uses the file\'s tls-*') or diag($err);
($ok, $out, $err) = ctl_raw('--config', $conf, 'transfer-leader');
ok(!$ok && $err =~ /role member\) may not transfer leadership/,
	'... whose member certificate may not transfer leadership') or diag($err);
($ok, $out, $err) = ctl_raw('--config', $conf, '--cert', "$tls/admin.crt", '--key', "$tls/admin.key",
	'transfer-leader');
ok($ok, '... but --cert/--key of the admin may') or diag($err);
$leader = cluster_leader(@sc);
$laddr = $client{ $leader->{id} };

# ---- refused at the TLS layer -------------------------------------------------

my ($host, $port) = $laddr =~ /^(.+):(\d+)$/;

# Plaintext: a client protocol hello without TLS.
$pos = length(slurp($leader));
my $plain = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port, Timeout => 5);
ok($plain, 'a plaintext connection to the client port') or diag("connect: $!");
my $ans = hello_answer($plain);
ok(!is_hello_ok($ans), 'plaintext bytes get no hello answer');
ok(log_has_since($leader, $pos, qr/refused a client TLS connection from 127\.0\.0\.1: TLS: .*client-tcp needs TLS 1\.3/),
	'... and the leader logs the refusal');
close $plain if $plain;

# A TLS client that shows no certificate, and its positive control.
my %ssl = (PeerHost => $host, PeerPort => $port, SSL_ca_file => "$tls/ca.crt", SSL_verifycn_scheme => 'none',
	SSL_version => 'TLSv1_3', Timeout => 5);
my $good = IO::Socket::SSL->new(%ssl, SSL_cert_file => "$tls/client.crt", SSL_key_file => "$tls/client.key");
ok($good && is_hello_ok(hello_answer($good)), 'a TLS client with a client certificate gets its hello answered')
  or diag("IO::Socket::SSL: $SSL_ERROR");
close $good if $good;

$pos = length(slurp($leader));
my $nocert = IO::Socket::SSL->new(%ssl);
ok(!is_hello_ok(hello_answer($nocert)), 'a TLS client without a certificate is refused');
ok(log_has_since($leader, $pos, qr/refused a client TLS connection from 127\.0\.0\.1: .*certificate/),
	'... and the leader logs why');
close $nocert if $nocert;

# A certificate from another CA (which the client trusts for the server).
my $other = certs_new('other', 1);
system("cat '$tls/ca.crt' '$other/ca.crt' > '$scratch/both.crt'") == 0 or die "cat: $?";
$pos = length(slurp($leader));
($ok, $out, $err) =
  ctl_raw('--address', $laddr, '--ca', "$scratch/both.crt", '--cert', "$other/client.crt", '--key',
	"$other/client.key", 'get', 1);
ok(!$ok, 'a client certificate from another CA is refused');
ok(log_has_since($leader, $pos, qr/refused a client TLS connection from 127\.0\.0\.1: its certificate failed verification/),
	'... and the leader logs the verification failure');
($ok, $out, $err) = ctl_raw('--address', $laddr, '--ca', "$scratch/both.crt", '--cert', "$tls/client.crt",
	'--key', "$tls/client.key", 'get', 1);
ok($ok, '... while this CA\'s client certificate with the same CA file is served') or diag($err);

ok(defined sidecar_get($_), "$_->{name} still serves") or diag($@) for @sc;

# ---- revocation at SIGHUP: an open client connection is cut off -------------

my $held = IO::Socket::SSL->new(%ssl, SSL_cert_file => "$tls/client.crt", SSL_key_file => "$tls/client.key");
ok($held && is_hello_ok(hello_answer($held)), 'a client connection is open before the revocation')
  or diag("IO::Socket::SSL: $SSL_ERROR");
certs($tls, 'revoke', 'client');
$pos = length(slurp($leader));
sidecar_signal($_, 'HUP') for @sc;
ok(log_has_since($leader, $pos,
		qr/closing the client connection from 127\.0\.0\.1 \(CN=client\): its certificate failed verification: certificate revoked \(after the reload\)/),
	'at the reload the leader closes the revoked client\'s connection');
ok(wait_until(10, sub { my $b; my $n = $held->sysread($b, 64); defined $n && $n == 0 || !defined $n && !$!{EAGAIN} }),
	'... and the client sees it closed');
($ok, $out, $err) = ctl_raw('--address', $laddr, tls_as($tls, 'client'), 'get', 1);
ok(!$ok, 'a new connection with the revoked certificate is refused');
($ok, $out, $err) = ctl_raw('--address', $laddr, tls_as($tls, 'admin'), 'get', 1);
ok($ok, '... while the admin certificate is still served') or diag($err);
ok(defined sidecar_get($_), "$_->{name} serves after the reload (followers forward with reloaded files)")
  or diag($@) for @sc;

sidecar_stop($_) for @sc;

# ---- max-connections on a TLS port: the refusal is read inside TLS ---------

my $lone_port = PostgreSQL::Test::Cluster::get_free_port();
my $lone = sidecar_start(sidecar_new(name => 'lone', tls => $tls, tls_name => 'node1',
		extra => [ '--client-tcp' => "127.0.0.1:$lone_port", '--max-connections' => 1 ]));
my %lone_ssl = (%ssl, PeerPort => $lone_port, SSL_cert_file => "$tls/admin.crt",
	SSL_key_file => "$tls/admin.key");
my $first = IO::Socket::SSL->new(%lone_ssl);
ok($first && is_hello_ok(hello_answer($first)), 'a lone TLS member serves its one allowed connection')
  or diag("IO::Socket::SSL: $SSL_ERROR");
my $second = IO::Socket::SSL->new(%lone_ssl);
my $refusal = hello_answer($second);
ok(length($refusal) > 9 && unpack('x4 C', $refusal) == 7,
	'a connection past max-connections gets an error frame through TLS');
like($refusal, qr/too many client connections: max-connections is 1/, '... which says why');
close $_ for grep { $_ } ($first, $second);
sidecar_stop($lone);
done_testing();
