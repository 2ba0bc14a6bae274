# The PostgreSQL worker over TLS (docs/sql.md, "TLS to the sidecar";
# src/worker_tls.c): tsoracle.sidecar_address names a member's client-tcp
# port of a 3-node TLS cluster, with tsoracle.tls_ca, tls_cert, tls_key and
# tls_crl. Calls are served through a follower that forwards to the leader,
# also across a kill -9 of the leader. Refused, with 08006 and a DETAIL
# naming the setting to change, logged once however often the worker
# retries, while the cluster serves throughout: a CA that did not sign the
# sidecar's certificate, a client certificate of another CA, a certificate
# file that is missing or not set, plaintext to the TLS port, plaintext to
# an address that is not loopback, a sidecar whose certificate the CRL
# revokes. With SIGHUP and no restart: an unusable file keeps the files read
# before; the CA is rotated (trust both, move to the new, drop the old) on
# the members and the worker alike. Each refusal has its positive control:
# the same worker with the right setting is served.
use strict;
use warnings;
use File::Copy qw(copy);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use TsoracleTest;

my @sc = cluster_new(3, prefix => 'w');
my $tls = $sc[0]{tls};
cluster_start(@sc);
my $leader = cluster_leader(@sc);
my ($follower) = grep { $_ != $leader } @sc;
# Each member's client address, from the peers list.
my %client = map { /^(\d+)=[^\/]+\/(.+)$/ ? ($1 => $2) : () } split /,/, $sc[0]{peers};
my $addr = $client{ $follower->{id} };

# The worker's own copies of its files, replaced in place to rotate them.
my $pgtls = "$PostgreSQL::Test::Utils::tmp_check/012_worker_tls/pg-tls";
mkdir $pgtls or die "mkdir $pgtls: $!";
for my $f ('ca.crt', 'ca.crl', 'client.crt', 'client.key')
{
	copy("$tls/$f", "$pgtls/$f") or die "copy $f: $!";
}
chmod(0600, "$pgtls/client.key") or die;
my $other = certs_new('other', 1);    # another CA

sub tls_conf
{
	my (%o) = @_;
	my %v = (
		ca => "$pgtls/ca.crt",
		cert => "$pgtls/client.crt",
		key => "$pgtls/client.key",
		crl => "$pgtls/ca.crl",
		%o);
	return join('', map { "tsoracle.tls_$_ = '$v{$_}'\n" } sort keys %v);
}

my $node = pg_node_for('pg', { socket => $addr }, "tsoracle.timeout = 3000\n" . tls_conf());

sub connected
{
	my ($n) = @_;
	return wait_until(30, sub { $n->safe_psql('postgres', 'SELECT connected FROM tso_status') eq 't' });
}

# 08006 and its DETAIL from one tso_now() call.
sub call_error
{
	my ($n) = @_;
	my ($rc, $out, $err) = $n->psql('postgres', "SET tsoracle.timeout = 500;\n\\set VERBOSITY verbose\nSELECT tso_now()");
	return $rc == 0 ? "served: $out" : $err;
}

# Waits until the worker's last error matches $re; returns it.
sub last_error_like
{
	my ($n, $re) = @_;
	my $e = '';
	wait_until(30, sub { $e = $n->safe_psql('postgres', 'SELECT coalesce(last_error, \'\') FROM tso_status'); $e =~ $re });
	return $e;
}

sub pglog { return PostgreSQL::Test::Utils::slurp_file($_[0]->logfile) }

sub cluster_serves
{
	my ($what) = @_;
	ok(!grep({ !defined sidecar_get($_) } @sc), "the cluster serves on all three members $what");
}

# ---- served over TLS, through a follower, across a kill -9 of the leader ----

ok(connected($node), "the worker connects to $follower->{name}'s client-tcp $addr");
like(pglog($node), qr/connected to the sidecar at "\Q$addr\E" \(node $follower->{id}, protocol version \d+, TLS 1\.3\)/,
	'... over TLS 1.3, to the member its certificate names');
like(PostgreSQL::Test::Utils::slurp_file($follower->{log}), qr/client \S+ connected over TLS as CN=client \(role client\)/,
	"... presenting its client certificate (in $follower->{name}'s log)");
calls_distinct_increasing($node, 'over TLS');

my $before = take_ts($node);
sidecar_kill($leader);
my $v = wait_until(30, sub {
	my ($rc, $out) = $node->psql('postgres', 'SELECT tso_now()');
	return $rc == 0 ? $out : undef;
});
ok($v && $v > $before, "after a kill -9 of the leader $leader->{name}, calls are served again, above every earlier value");
sidecar_start($leader, no_wait => 1);
sidecar_wait_ready($leader);
cluster_serves('after the old leader is back');

my $wpid = $node->safe_psql('postgres', q{SELECT pid FROM pg_stat_activity WHERE application_name = 'tsoracle worker'});
ok($wpid, "the worker's pid is $wpid");

# ---- refusals, each logged once, with its positive control ----

# Sets these settings on $n and reloads.
sub set_reload
{
	my ($n, %set) = @_;
	$n->safe_psql('postgres', join(";\n", map { "ALTER SYSTEM SET $_ = '$set{$_}'" } sort keys %set));
	$n->reload;
}

# Checks one refusal: the worker's error matches $re, a call fails with
# 08006 and that DETAIL, the worker logs it once at LOG level however
# often it retries (its backoff reaches 1 s: 3 s are 3 or more attempts),
# and the cluster serves meanwhile.
sub refused
{
	my ($n, $what, $re, $logpos) = @_;
	like(last_error_like($n, $re), $re, "$what: the worker's last error says why");
	my $err = call_error($n);
	like($err, qr/ERROR:\s+08006:/, "$what: a call fails with 08006");
	like($err, qr/DETAIL:[^\n]*$re/, "$what: its DETAIL names the cause and the setting");
	my $attempts_at = time() + 3;
	wait_until(10, sub { time() > $attempts_at });
	my $logged = () = substr(pglog($n), $logpos) =~ /LOG:  tsoracle worker could not connect to the sidecar: [^\n]*$re/g;
	is($logged, 1, "$what: logged once while the worker retries");
	cluster_serves("while $what is refused");
}

# A CA that did not sign the sidecar's certificate (tsoracle.tls_ca).
my $pos = length(pglog($node));
set_reload($node, 'tsoracle.tls_ca' => "$other/ca.crt");
refused($node, 'a CA that did not sign the sidecar\'s certificate',
	qr/TLS with "\Q$addr\E": the sidecar's certificate is refused: certificate failed verification: (?:unable to get local issuer certificate|self-signed certificate in certificate chain) \(see tsoracle\.tls_ca and tsoracle\.tls_crl\)/,
	$pos);
set_reload($node, 'tsoracle.tls_ca' => "$pgtls/ca.crt");
ok(connected($node), '... positive control: the right tsoracle.tls_ca, reloaded, connects again');
cmp_ok(take_ts($node), '>', $v, '... and serves');

# A reload of a file that is missing keeps the files read before.
$pos = length(pglog($node));
set_reload($node, 'tsoracle.tls_cert' => "$pgtls/missing.crt");
ok(wait_until(10, sub { substr(pglog($node), $pos) =~ /could not reload its TLS files: tsoracle\.tls_cert \Q$pgtls\E\/missing\.crt: No such file or directory/ }),
	'a reload naming a missing tsoracle.tls_cert is refused, and logged');
like(substr(pglog($node), $pos), qr/The worker keeps using the certificates it read before/, '... the files read before stay in use');
ok(defined(take_ts($node)), '... and the worker serves');
set_reload($node, 'tsoracle.tls_cert' => "$pgtls/client.crt");

# A second server, started with settings the worker refuses.
my $pg2 = pg_node_for('pg2', { socket => $addr },
	"tsoracle.timeout = 3000\n" . tls_conf(cert => "$pgtls/missing.crt"));
refused($pg2, 'a missing certificate file',
	qr/TLS to "\Q$addr\E" is not possible: tsoracle\.tls_cert \Q$pgtls\E\/missing\.crt: No such file or directory/, 0);
$pos = length(pglog($pg2));
set_reload($pg2, 'tsoracle.tls_cert' => '');
refused($pg2, 'tsoracle.tls_cert not set',
	qr/tsoracle\.tls_cert is not set: tsoracle\.tls_ca, tsoracle\.tls_cert and tsoracle\.tls_key go together/, $pos);
set_reload($pg2, 'tsoracle.tls_cert' => "$pgtls/client.crt");
ok(connected($pg2), '... positive control: the certificate set and reloaded, the second server connects');

# A client certificate of another CA: the sidecar refuses it.
$pos = length(pglog($pg2));
copy("$other/client.key", "$pgtls/other-client.key") or die;
chmod(0600, "$pgtls/other-client.key") or die;
set_reload($pg2, 'tsoracle.tls_cert' => "$other/client.crt", 'tsoracle.tls_key' => "$pgtls/other-client.key");
refused($pg2, 'a client certificate of another CA',
	qr/TLS with "\Q$addr\E": the sidecar refused this server's certificate \(tsoracle\.tls_cert\): TLS: tlsv1 alert unknown ca/, $pos);

# Plaintext to the TLS port (loopback: the worker tries, the sidecar refuses).
$pos = length(pglog($pg2));
set_reload($pg2, map { ("tsoracle.tls_$_" => '') } qw(ca cert key crl));
refused($pg2, 'plaintext to the TLS port',
	qr/if its client-tcp runs TLS, set tsoracle\.tls_ca, tsoracle\.tls_cert and tsoracle\.tls_key/, $pos);

# Plaintext to an address that is not loopback: refused before connecting
# (192.0.2.1 is TEST-NET-1, RFC 5737: nothing answers there).
$pos = length(pglog($pg2));
set_reload($pg2, 'tsoracle.sidecar_address' => '192.0.2.1:5433');
refused($pg2, 'plaintext off loopback',
	qr/plaintext to "192\.0\.2\.1:5433" \(192\.0\.2\.1\) refused: it is not a loopback address, so set tsoracle\.tls_ca, tsoracle\.tls_cert and tsoracle\.tls_key/,
	$pos);
# Positive control: with TLS set, the worker goes on to connect there.
set_reload(
	$pg2,
	'tsoracle.tls_ca' => "$pgtls/ca.crt",
	'tsoracle.tls_cert' => "$pgtls/client.crt",
	'tsoracle.tls_key' => "$pgtls/client.key",
	'tsoracle.tls_crl' => "$pgtls/ca.crl");
ok(wait_until(30, sub { $pg2->safe_psql('postgres', 'SELECT coalesce(last_error, \'\') FROM tso_status') =~ /^connect to "192\.0\.2\.1:5433"/ }),
	'... positive control: with the tsoracle.tls_* settings the worker tries to connect there')
  or diag($pg2->safe_psql('postgres', 'SELECT last_error FROM tso_status'));
$pg2->stop;

# ---- the CA's rotation with SIGHUP, no restart ----

# SIGHUP to every member, and a reload of the server; waits until each
# member has logged one more reload.
sub reload_all
{
	my ($what) = @_;
	for my $sc (@sc)
	{
		my $re = qr/reloaded tls-ca/;
		my $count = () = PostgreSQL::Test::Utils::slurp_file($sc->{log}) =~ /$re/g;
		sidecar_signal($sc, 'HUP');
		wait_until(10, sub { (() = PostgreSQL::Test::Utils::slurp_file($sc->{log}) =~ /$re/g) > $count })
		  or die "$sc->{name} did not reload";
	}
	my $pos = length(pglog($node));
	$node->reload;
	ok(wait_until(10, sub { substr(pglog($node), $pos) =~ /tsoracle worker reloaded tsoracle\.tls_ca/ }),
		"$what: the worker rereads its files");
	my $t = wait_until(30, sub {
		my ($rc, $out) = $node->psql('postgres', 'SELECT tso_now()');
		return $rc == 0 ? $out : undef;
	});
	ok($t, "$what: the worker serves");
	cluster_serves("after $what");
}

my $ca2 = certs_new('ca2', 3);
# 1. Everyone trusts the old CA and the new.
write_file_from("$tls/ca.crt", "$tls/ca.crt", "$ca2/ca.crt");
write_file_from("$tls/ca.crl", "$tls/ca.crl", "$ca2/ca.crl");
write_file_from("$pgtls/ca.crt", "$pgtls/ca.crt", "$ca2/ca.crt");
write_file_from("$pgtls/ca.crl", "$pgtls/ca.crl", "$ca2/ca.crl");
reload_all('CA step 1, trust both');
# 2. Everyone presents a certificate of the new CA.
for my $sc (@sc)
{
	write_file_from("$tls/node$sc->{id}.crt", "$ca2/node$sc->{id}.crt");
	write_file_from("$tls/node$sc->{id}.key", "$ca2/node$sc->{id}.key");
}
write_file_from("$pgtls/client.crt", "$ca2/client.crt");
write_file_from("$pgtls/client.key", "$ca2/client.key");
reload_all('CA step 2, new certificates');
# 3. Everyone trusts the new CA alone: connections made with certificates
# of the old one are closed and made again with the new ones.
$pos = length(pglog($node));
write_file_from("$tls/ca.crt", "$ca2/ca.crt");
write_file_from("$tls/ca.crl", "$ca2/ca.crl");
write_file_from("$pgtls/ca.crt", "$ca2/ca.crt");
write_file_from("$pgtls/ca.crl", "$ca2/ca.crl");
reload_all('CA step 3, the new CA alone');
ok(wait_until(10, sub { substr(pglog($node), $pos) =~ /connected to the sidecar at "\Q$addr\E" .*TLS 1\.3/ }),
	'... the worker connected again, with the certificate of the new CA');
is($node->safe_psql('postgres', q{SELECT pid FROM pg_stat_activity WHERE application_name = 'tsoracle worker'}),
	$wpid, '... and was never restarted');

# ---- a CRL that revokes the sidecar's certificate (tsoracle.tls_crl) ----

certs($ca2, 'revoke', "node$follower->{id}");
copy("$ca2/ca.crl", "$pgtls/ca.crl") or die;    # the worker's alone: the members keep theirs
$pos = length(pglog($node));
$node->reload;
ok( wait_until(
		10,
		sub {
			substr(pglog($node), $pos) =~
			  /lost its connection to the sidecar: the sidecar at "\Q$addr\E" is no longer trusted after the reload of tsoracle\.tls_ca and tsoracle\.tls_crl: its certificate failed verification: certificate revoked/;
		}),
	"a reload of a CRL revoking $follower->{name}'s certificate drops the open connection at once");
refused($node, 'a revoked sidecar certificate',
	qr/TLS with "\Q$addr\E": the sidecar's certificate is refused: certificate failed verification: certificate revoked \(see tsoracle\.tls_ca and tsoracle\.tls_crl\)/,
	$pos);
my ($other_member) = grep { $_ != $follower } @sc;
my $other_addr = $client{ $other_member->{id} };
set_reload($node, 'tsoracle.sidecar_address' => $other_addr);
ok(connected($node), "... positive control: the same files, to $other_member->{name} ($other_addr), connect");
ok(defined(take_ts($node)), '... and serve');

no_backward_grants($node);
$node->stop;
sidecar_stop($_) for @sc;
done_testing();
