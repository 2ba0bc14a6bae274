# The worker over TCP (issue 17 item 5): tsoracle.sidecar_address names a
# sidecar's --client-tcp port (plaintext on loopback); calls are served,
# unique and increasing, under concurrency and across a restart of the
# sidecar; a host name that resolves to several addresses is tried in turn;
# a port nobody listens on fails calls with 08006 naming the address.
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use TsoracleTest;

my $port = PostgreSQL::Test::Cluster::get_free_port();
my $sc = sidecar_start(sidecar_new(name => 'tcp', extra => [ '--client-tcp', "127.0.0.1:$port" ]));
my $addr = "127.0.0.1:$port";
# The node's address is the TCP port, not the sidecar's unix socket.
my $node = pg_node_for('pg', { socket => $addr }, $GUARD_OFF . "tsoracle.timeout = 3000\n");

ok( wait_until(30, sub {
			$node->safe_psql('postgres', 'SELECT connected FROM tso_status') eq 't';
		}),
	"the worker connects to $addr");
is($node->safe_psql('postgres', 'SELECT address FROM tso_status'), $addr, 'tso_status shows the TCP address');
ok( wait_until(30, sub {
			$node->safe_psql('postgres', 'SELECT sidecar_serving FROM tso_status') eq 't';
		}),
	"and the sidecar's status, asked over TCP, says it serves");

# 1000 calls in one statement, and a range, over TCP.
calls_distinct_increasing($node, 'over TCP');

# Concurrency: 4 clients for 3 s, a unique key each call.
$node->safe_psql('postgres', 'CREATE TABLE ev (ts bigint PRIMARY KEY DEFAULT tso_now())');
$node->pgbench(
	'--no-vacuum --client=4 --jobs=2 --time=3',
	0, [qr/number of transactions actually processed: [1-9]/], [qr/^$/],
	'4 clients insert keys from tso_now() over TCP without an error',
	{ '009_ev' => 'INSERT INTO ev DEFAULT VALUES;' });
my $high = $node->safe_psql('postgres', 'SELECT max(ts) FROM ev');

# A restart of the sidecar: the worker reconnects over TCP by itself.
is(sidecar_stop($sc), 0, 'sidecar exits 0 on SIGTERM');
sidecar_start($sc);
my $v = wait_until(30, sub {
	my ($rc, $out) = $node->psql('postgres', 'SELECT tso_now()');
	return $rc == 0 ? $out : undef;
});
ok($v && $v > $high, 'after a sidecar restart the worker serves again over TCP, above every earlier value');

# A host name: "localhost" may resolve to ::1 first, where nothing
# listens; the worker tries the next address.
my $byname = "tcp:localhost:$port";
$node->safe_psql('postgres', "ALTER SYSTEM SET tsoracle.sidecar_address = '$byname'");
$node->reload;
ok( wait_until(30, sub {
			$node->safe_psql('postgres', "SELECT address = '$byname' AND connected FROM tso_status") eq 't';
		}),
	"the worker connects to $byname");
cmp_ok(take_ts($node), '>', $v, 'and serves calls there');

# A port nobody listens on: 08006, the DETAIL naming the address.
my $dead = '127.0.0.1:' . PostgreSQL::Test::Cluster::get_free_port();
$node->safe_psql('postgres', "ALTER SYSTEM SET tsoracle.sidecar_address = '$dead'");
$node->reload;
wait_until(30, sub {
	$node->safe_psql('postgres', "SELECT address = '$dead' AND last_error LIKE 'connect to%' FROM tso_status") eq 't';
});
my ($rc, $out, $err) = $node->psql('postgres', "SET tsoracle.timeout = 500;\n\\set VERBOSITY verbose\nSELECT tso_now()");
like($err, qr/ERROR:\s+08006:/, 'a call fails with 08006 when nothing listens on the port');
like($err, qr/DETAIL:.*connect to "\Q$dead\E": Connection refused/, 'its DETAIL names the address and the cause');

no_backward_grants($node);
$node->stop;
is(sidecar_stop($sc), 0, 'sidecar stops cleanly');
done_testing();
