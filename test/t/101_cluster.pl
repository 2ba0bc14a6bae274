# Three sidecars in one Raft cluster, each with its PostgreSQL: every node
# serves, at once; values are unique across the cluster and increase per
# session; after kill -9 of the leader the survivors serve again above every
# earlier value; the killed node restarts and catches up; a kill -9 of the
# whole cluster and a restart never goes backwards.
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use TsoracleTest;

my @sc = cluster_start(cluster_new(3, prefix => 'c'));
# The workers' guard off: the checks look at what the sidecars hand out.
my @pg = map { pg_node_for("pg$_", $sc[ $_ - 1 ], $GUARD_OFF) } 1 .. 3;

# Every call's value lands in a table on its node, with the session and the
# order within the session.
$_->safe_psql('postgres', q{
	CREATE TABLE ev (ts bigint PRIMARY KEY, pid int NOT NULL DEFAULT pg_backend_pid(),
	                 seq bigserial NOT NULL)}) for @pg;

# Runs pgbench on all three nodes at once; returns when all are done.
sub load_all
{
	my ($transactions) = @_;
	my $script = "$PostgreSQL::Test::Utils::tmp_check/load.sql";
	PostgreSQL::Test::Utils::append_to_file($script,
		"INSERT INTO ev (ts) VALUES (tso_now());\nINSERT INTO ev (ts) SELECT t FROM tso_range(2) t;\n")
	  unless -f $script;
	my @runs;
	for my $node (@pg)
	{
		my ($out, $err) = ('', '');
		my $h = IPC::Run::start(
			[ 'pgbench', '--no-vacuum', '-c', '4', '-j', '2', '-t', $transactions, '-f', $script,
			  '-h', $node->host, '-p', $node->port, 'postgres' ],
			'>', \$out, '2>', \$err);
		push @runs, [ $node, $h, \$out, \$err ];
	}
	for my $r (@runs)
	{
		my ($node, $h, $out, $err) = @$r;
		$h->finish;
		my $expected = 4 * $transactions;
		like($$out, qr/processed: $expected\/$expected/, $node->name . ": all transactions done");
		is($$err, '', $node->name . ': no errors');
	}
}

# All values taken anywhere so far, and checks over them.
sub all_values
{
	return map { split /\n/, $_->safe_psql('postgres', 'SELECT ts FROM ev') } @pg;
}

sub check_cluster
{
	my ($what) = @_;
	my @v = all_values();
	my %seen;
	my @dups = grep { $seen{$_}++ } @v;
	is(scalar(@dups), 0, "$what: " . scalar(@v) . " values, none handed out twice across the cluster");
	for my $node (@pg)
	{
		is( $node->safe_psql(
				'postgres', q{
				SELECT count(*) FROM (SELECT ts < lag(ts) OVER (PARTITION BY pid ORDER BY seq) AS back
				                      FROM ev) s WHERE back}),
			'0',
			"$what: " . $node->name . ": every session's values increase");
	}
	my $max = 0;
	$max = $_ > $max ? $_ : $max for @v;
	return $max;
}

# Values from every node must all be above $floor once it serves again.
sub all_above
{
	my ($what, $floor) = @_;
	for my $i (0 .. $#pg)
	{
		next unless $sc[$i]{pid};
		my $v = wait_until(30, sub {
			my ($rc, $out) = $pg[$i]->psql('postgres', 'SELECT tso_now()');
			return $rc == 0 ? $out : undef;
		});
		ok($v && $v > $floor, "$what: " . $pg[$i]->name . " serves again, above every earlier value ($v > $floor)");
	}
}

# ---- all nodes at once ----------------------------------------------------
load_all(300);
my $high = check_cluster('three nodes under load');

# ---- kill -9 of the leader ------------------------------------------------
my $leader = cluster_leader(@sc);
note "leader is $leader->{name}";
sidecar_kill($leader);
all_above('after kill -9 of the leader', $high);
my @survivors = grep { $_->{pid} } @sc;
my $new_leader = cluster_leader(@survivors);
isnt($new_leader->{name}, $leader->{name}, "a new leader: $new_leader->{name}");

# ---- the killed node restarts and catches up --------------------------------
my $commit = sidecar_status($new_leader)->{commit_index};
sidecar_start($leader, no_wait => 1);
ok( wait_until(30, sub { (sidecar_status($leader)->{applied_index} || 0) >= $commit }),
	"$leader->{name} caught up to the leader's commit index $commit");
sidecar_wait_ready($leader);
load_all(100);
$high = check_cluster('after the restart');

# ---- kill -9 of the whole cluster -------------------------------------------
sidecar_kill($_) for @sc;
sidecar_start($_, no_wait => 1) for @sc;
all_above('after kill -9 of all three and a restart', $high);
load_all(50);
check_cluster('after the whole-cluster restart');

# ---- cluster status through tsoracle-ctl -------------------------------------
my ($ok, $out) = ctl($sc[0], '--peers', $sc[0]{peers}, 'status', '--json');
# ctl() puts --address first; --peers wins for status.
ok($ok, 'tsoracle-ctl status over the whole cluster');
is(() = $out =~ /"reachable": true/g, 3, 'all three members reachable');
is(() = $out =~ /"role": "leader"/g, 1, 'exactly one leader');

no_backward_grants(@pg);
$_->stop for @pg;
is(sidecar_stop($_), 0, "$_->{name} stops cleanly") for @sc;
done_testing();
