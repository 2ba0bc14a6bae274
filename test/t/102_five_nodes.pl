# Five sidecars: the cluster keeps serving with two members down (the
# leader among them), and with three down it stops: every survivor answers
# with a clear "no leader or no quorum" error, and PostgreSQL raises 08006,
# never a value. A call whose tsoracle.timeout outlasts the outage is sent
# again and returns once one member is back, which restores service above
# every earlier value.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use TsoracleTest;

my @sc = cluster_start(cluster_new(5, prefix => 'f'));
my $high = 0;
for my $sc (@sc)
{
	my $v = sidecar_get($sc, 10);
	ok($v && $v > $high, "$sc->{name} serves ($v)");
	$high = $v + 9;
}

# Two down, the leader first.
my $leader = cluster_leader(@sc);
sidecar_kill($leader);
my ($other) = grep { $_ != $leader } @sc;
sidecar_kill($other);
my @up = grep { $_->{pid} } @sc;
is(scalar(@up), 3, "three of five up ($leader->{name} and $other->{name} killed)");
for my $sc (@up)
{
	my $v = wait_until(30, sub { sidecar_get($sc, 1) });
	ok($v && $v > $high, "$sc->{name} serves with two members down, above earlier values");
	$high = $v if $v > $high;
}

# A PostgreSQL on a survivor, to see the SQL side of losing the quorum.
my $node = pg_node_for('pg', $up[0], "tsoracle.timeout = 3000\n$GUARD_OFF");
ok(take_ts($node) > $high, 'PostgreSQL on a survivor serves');

# Three down: no quorum.
sidecar_kill($up[2]);
my @minority = @up[ 0, 1 ];
# The last leader's lease runs out within a second; after that nobody grants.
ok( wait_until(15, sub { !defined sidecar_get($minority[0], 1) && !defined sidecar_get($minority[1], 1) }),
	'with three of five down, no survivor grants timestamps');
for my $sc (@minority)
{
	my $t0 = time();
	my $v = sidecar_get($sc, 1);
	my $ms = elapsed_ms($t0);
	ok(!defined $v, "$sc->{name}: no timestamp without a quorum");
	like($@, qr/no leader or no quorum/, "$sc->{name}: a clear error ($@)");
	cmp_ok($ms, '<', 5000, "$sc->{name}: within the request timeout ($ms ms)");
}
my ($rc, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\nSELECT tso_now()");
isnt($rc, 0, 'tso_now() fails without a quorum');
like($err, qr/ERROR:\s+08006:/, 'with SQLSTATE 08006');
like($err, qr/no leader|quorum|could not get/i, "and a message that says why: $err");

# A call that outlasts the outage: its tsoracle.timeout (20 s) is longer
# than the sidecar's --request-timeout (2 s), so when the sidecar answers
# "no leader" the worker sends the call again instead of failing it, and
# it returns once a quorum is back.
my $bg = $node->background_psql('postgres', on_error_stop => 0);
$bg->query_safe('SET tsoracle.timeout = 20000');
my $t0 = $node->safe_psql('postgres', 'SELECT clock_timestamp()');
bg_send($bg, 'SELECT tso_now()');
ok( wait_until(
		15,
		sub {
			$node->safe_psql('postgres',
				"SELECT last_error_at > '$t0' AND last_error LIKE '%no leader or no quorum%' FROM tso_status()") eq 't';
		}),
	'the sidecar answered a waiting call "no leader"');

# One back: three of five again.
sidecar_start($other, no_wait => 1);
my ($late, $late_err) = bg_collect($bg);
ok($late =~ /^\d+$/ && $late > $high, "... and the call, sent again, returned a timestamp once a quorum was back ($late)");
is($late_err, '', '... without an error');
$bg->quit;
for my $sc (@minority, $other)
{
	my $v = wait_until(30, sub { sidecar_get($sc, 1) });
	ok($v && $v > $high, "$sc->{name} serves again with three of five, above earlier values");
}
my $v = wait_until(30, sub {
	my ($r, $o) = $node->psql('postgres', 'SELECT tso_now()');
	return $r == 0 ? $o : undef;
});
ok($v && $v > $high, 'PostgreSQL serves again');

no_backward_grants($node);
$node->stop;
sidecar_stop($_) for grep { $_->{pid} } @sc;
done_testing();
