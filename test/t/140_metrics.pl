# The Prometheus endpoint (metrics-address, docs/operations.md) of a 3-member
# cluster, scraped with a real HTTP client: promtool accepts every member's
# text; exactly one member says it leads; counters move with the timestamps
# taken, the errors sent and a handover; anything but GET /metrics is
# refused (405, 404), and junk, an oversized request, a silent connection
# and too many connections are refused or closed without harming the
# daemon. A metrics-address off loopback is refused unless
# metrics-allow-plaintext says otherwise, and one that is taken stops the
# start with its cause.
use strict;
use warnings;
use File::Basename;
use HTTP::Tiny;
use IO::Select;
use IO::Socket::INET;
use IO::Socket::UNIX;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use TsoracleTest;

# The bounds of sidecar/metrics.h.
my $PER_IP_MAX = 4;
my $TIMEOUT_S = 10;
my $SLACK_S = 5;

my @sc = cluster_new(3, prefix => 'm');
for my $s (@sc)
{
	$s->{metrics_port} = PostgreSQL::Test::Cluster::get_free_port();
	$s->{extra} = [ @{ $s->{extra} || [] }, '--metrics-address', "127.0.0.1:$s->{metrics_port}" ];
}
cluster_start(@sc);
my $leader = cluster_leader(@sc);
my @followers = grep { $_ != $leader } @sc;

# No keep-alive: each scrape its own connection, as the per-address
# limit below counts them.
my $http = HTTP::Tiny->new(timeout => 10, keep_alive => 0);

sub url { my ($s, $path) = @_; return "http://127.0.0.1:$s->{metrics_port}" . ($path // '/metrics'); }

# GET /metrics of member $s: the response (HTTP::Tiny's hash).
sub scrape { my ($s) = @_; return $http->get(url($s)); }

# The samples of a text: "name{labels}" => value.
sub parse
{
	my ($text) = @_;
	my %v;
	for (split /\n/, $text)
	{
		next if /^#/ || !/\S/;
		my ($k, $val) = /^(\S+(?:\{[^}]*\})?) (\S+)$/ or die "unparsable line: $_";
		$v{$k} = $val;
	}
	return \%v;
}

# The samples of member $s now (dies if the scrape fails).
sub metrics_of
{
	my ($s) = @_;
	my $r = scrape($s);
	die "$s->{name}: GET /metrics: $r->{status} $r->{reason}" unless $r->{success};
	return parse($r->{content});
}

sub promtool_ok
{
	my ($what, $text) = @_;
	my ($out, $err) = ('', '');
	my $ok = IPC::Run::run([ 'promtool', 'check', 'metrics' ], '<', \$text, '>', \$out, '2>', \$err);
	ok($ok && $out eq '' && $err eq '', "$what: promtool check metrics is clean") or diag("$out$err");
}

# ---- the format ---------------------------------------------------------------
for my $s (@sc)
{
	my $r = scrape($s);
	is($r->{status}, 200, "$s->{name}: GET /metrics answers 200");
	like($r->{headers}{'content-type'}, qr{^text/plain; version=0\.0\.4}, "$s->{name}: Prometheus text format 0.0.4");
	promtool_ok($s->{name}, $r->{content});
	my $v = parse($r->{content});
	for my $name (qw(tsoracle_requests_total tsoracle_timestamps_total tsoracle_forwarded_requests_total
		tsoracle_is_leader tsoracle_serving tsoracle_raft_term tsoracle_raft_commit_index
		tsoracle_raft_applied_index tsoracle_high_water_seconds tsoracle_clock_seconds
		tsoracle_leader_changes_total tsoracle_client_connections tsoracle_peer_connections
		tsoracle_request_duration_seconds_count tsoracle_fence_duration_seconds_count
		tsoracle_clock_offset_seconds tsoracle_clock_unsupported tsoracle_clock_held tsoracle_clock_start_gap))
	{
		ok(defined $v->{$name}, "$s->{name}: $name");
	}
	ok(defined $v->{'tsoracle_request_errors_total{reason="timeout"}'}, "$s->{name}: errors by reason");
	ok((grep { /^tsoracle_build_info\{version="[^"]+"\}$/ && $v->{$_} == 1 } keys %$v),
		"$s->{name}: tsoracle_build_info with its version");
}

# ---- leadership, Raft, the mark -----------------------------------------------
# Each member's view settles within a few heartbeats of the election: poll.
my %v;
ok( wait_until(
		10,
		sub {
			%v = map { $_->{name} => metrics_of($_) } @sc;
			my $lv = $v{ $leader->{name} };
			return (grep { $v{ $_->{name} }{tsoracle_peer_connections} >= 2 } @sc) == 3
			  && (grep { $v{ $_->{name} }{tsoracle_raft_term} == $lv->{tsoracle_raft_term} } @sc) == 3
			  && (grep { $v{ $_->{name} }{tsoracle_raft_applied_index} >= $lv->{tsoracle_raft_commit_index} }
				@followers) == 2;
		}),
	'every member has Raft connections to both others, the same term, and the followers applied what the leader committed'
) or diag(explain(\%v));
is((grep { $v{ $_->{name} }{tsoracle_is_leader} == 1 } @sc), 1, 'exactly one member has tsoracle_is_leader 1');
is($v{ $leader->{name} }{tsoracle_is_leader}, 1, "... $leader->{name}, the leader tsoracle-ctl names");
is($v{ $leader->{name} }{tsoracle_serving}, 1, 'the leader serves');
is($v{ $_->{name} }{tsoracle_serving}, 0, "$_->{name}, a follower, does not serve itself") for @followers;
cmp_ok($v{ $leader->{name} }{tsoracle_high_water_seconds}, '>', $v{ $leader->{name} }{tsoracle_clock_seconds},
	'the leader keeps the mark ahead of its clock');
cmp_ok(abs($v{ $leader->{name} }{tsoracle_clock_seconds} - time()), '<', 5, 'tsoracle_clock_seconds is Unix time');
cmp_ok($v{ $leader->{name} }{tsoracle_fence_duration_seconds_count}, '>=', 1, 'the leader timed its fence');
cmp_ok($v{ $_->{name} }{tsoracle_leader_changes_total}, '>=', 1, "$_->{name} learnt of a leader") for @sc;
# One machine, one clock: every member's measured offset is small, none held.
cmp_ok(abs($v{ $_->{name} }{tsoracle_clock_offset_seconds}), '<', 0.5, "$_->{name}: clock offset under 0.5 s")
  for @sc;
is($v{ $_->{name} }{tsoracle_clock_unsupported} + $v{ $_->{name} }{tsoracle_clock_held}, 0,
	"$_->{name}: its clock is supported") for @sc;

# ---- requests -------------------------------------------------------------------
my $f = $followers[0];
my %before = map { $_->{name} => metrics_of($_) } ($leader, $f);
my $N = 10;
my $CALLS = 5;
for (1 .. $CALLS)
{
	ok(defined sidecar_get($f, $N), "$f->{name}: $N timestamps") or diag($@);
}
# A count of 0 is refused (TP_ERR_BAD_REQUEST): a request error, by reason.
{
	my $sock = IO::Socket::UNIX->new(Peer => $f->{socket}, Type => SOCK_STREAM) or die "connect: $!";
	my $MAGIC = 0x54534F52;
	my $frame = sub { my ($type, $payload) = @_; pack('NC', 1 + length($payload), $type) . $payload };
	$sock->syswrite($frame->(1, pack('Nnn', $MAGIC, 1, 1)) . $frame->(3, pack('Q>N', 7, 0)));
	my $sel = IO::Select->new($sock);
	my $got = '';
	while (length($got) < 11 + 27 && $sel->can_read(5))
	{
		last unless $sock->sysread(my $buf, 4096);
		$got .= $buf;
	}
	is(unpack('n', substr($got, 11 + 5 + 8, 2)) // -1, 3, 'a request for 0 timestamps is answered bad request');
	close $sock;
}
my %after = map { $_->{name} => metrics_of($_) } ($leader, $f);
my ($was, $now) = ($before{ $f->{name} }, $after{ $f->{name} });
is($now->{tsoracle_requests_total} - $was->{tsoracle_requests_total}, $CALLS + 1,
	"$f->{name}: tsoracle_requests_total grew by the $CALLS requests and the refused one");
is($now->{tsoracle_timestamps_total} - $was->{tsoracle_timestamps_total}, $CALLS * $N,
	"$f->{name}: tsoracle_timestamps_total grew by the timestamps taken");
is($now->{tsoracle_forwarded_requests_total} - $was->{tsoracle_forwarded_requests_total}, $CALLS,
	"$f->{name}: each request was forwarded to the leader");
is($now->{'tsoracle_request_errors_total{reason="bad_request"}'} - $was->{'tsoracle_request_errors_total{reason="bad_request"}'},
	1, "$f->{name}: one bad_request error");
is($now->{tsoracle_request_duration_seconds_count} - $was->{tsoracle_request_duration_seconds_count}, $CALLS,
	"$f->{name}: the duration histogram counts the requests that waited (the refusal did not queue)");
cmp_ok($now->{tsoracle_request_duration_seconds_sum}, '>', $was->{tsoracle_request_duration_seconds_sum},
	"$f->{name}: and their time");
($was, $now) = ($before{ $leader->{name} }, $after{ $leader->{name} });
is($now->{tsoracle_timestamps_total} - $was->{tsoracle_timestamps_total}, $CALLS * $N,
	"$leader->{name}: the leader handed out the same timestamps");
is($now->{tsoracle_requests_total} - $was->{tsoracle_requests_total}, $CALLS,
	"$leader->{name}: one request per forwarded batch");
cmp_ok($now->{tsoracle_client_connections}, '>=', 1, "$leader->{name}: the forwarding connection is a client connection");

# ---- a handover ----------------------------------------------------------------
my $target = $followers[1];
my %pre = map { $_->{name} => metrics_of($_) } @sc;
my %lc = map { $_->{name} => $pre{ $_->{name} }{tsoracle_leader_changes_total} } @sc;
my ($ok, $out, $err) = ctl($leader, '--timeout', '5000', 'transfer-leader', $target->{id});
ok($ok, "transfer-leader to $target->{name}") or diag($err);
ok( wait_until(
		10,
		sub {
			%v = map { $_->{name} => metrics_of($_) } @sc;
			(grep { $v{ $_->{name} }{tsoracle_leader_changes_total} > $lc{ $_->{name} } } @sc) == 3
			  && $v{ $target->{name} }{tsoracle_serving} == 1;
		}),
	'after the handover every member counted a leader change, and the new leader serves') or diag(explain(\%v));
is((grep { $v{ $_->{name} }{tsoracle_is_leader} == 1 } @sc), 1, 'exactly one leader after the handover');
is($v{ $target->{name} }{tsoracle_is_leader}, 1, "... $target->{name}");
is( $v{ $target->{name} }{tsoracle_fence_duration_seconds_count} - $pre{ $target->{name} }{tsoracle_fence_duration_seconds_count},
	1, "$target->{name} timed its fence");
is($v{ $leader->{name} }{tsoracle_serving}, 0, "$leader->{name} no longer serves");
promtool_ok("$target->{name} after the handover", scrape($target)->{content});

# ---- what is refused -----------------------------------------------------------
my $s = $sc[0];
my $r = $http->request('POST', url($s), { content => 'x=1' });
is($r->{status}, 405, 'POST /metrics: 405');
is($r->{headers}{allow}, 'GET', '... with Allow: GET');
$r = $http->request('HEAD', url($s));
is($r->{status}, 405, 'HEAD /metrics: 405');
$r = $http->get(url($s, '/'));
is($r->{status}, 404, 'GET /: 404');
$r = $http->get(url($s, '/metrics/x'));
is($r->{status}, 404, 'GET /metrics/x: 404');

# A new connection to the metrics port of $s, $bytes sent on it.
sub raw_start
{
	my ($bytes) = @_;
	local $SIG{PIPE} = 'IGNORE'; # the server may close before it has read all
	my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $s->{metrics_port}, Proto => 'tcp')
	  or die "connect: $!";
	$sock->syswrite($bytes) if length $bytes;
	return $sock;
}

# What comes back on $sock before the server closes it (undef if it stays
# open $secs).
sub raw_wait
{
	my ($sock, $secs) = @_;
	my $sel = IO::Select->new($sock);
	my $got = '';
	my $deadline = time() + $secs;
	while (1)
	{
		my $left = $deadline - time();
		return undef if $left <= 0 || !$sel->can_read($left);
		my $n = $sock->sysread(my $buf, 65536);
		last unless $n;
		$got .= $buf;
	}
	close $sock;
	return $got;
}

sub raw { my ($bytes, $secs) = @_; return raw_wait(raw_start($bytes), $secs); }

# A connection that says nothing, and one whose junk MHD waits on (a NUL
# in the request line), are closed after the timeout; both run meanwhile.
my $t0 = time();
my $silent = raw_start('');
my $nul = raw_start("\x00\x01\xffGARBAGE \x7f\r\n\r\n");

my $got = raw("GARBAGE\r\n\r\n", 5);
ok(defined $got, 'junk: the server closes the connection at once');
like($got // '', qr{^(HTTP/1\.[01] 400 |$)}, 'junk: answered 400 or closed without an answer');
$got = raw("GET /metrics\r\n\r\n", 5);
like($got // '', qr{^HTTP/1\.[01] 400 }, 'a request line without a version: 400');
$got = raw("GET /metrics HTTP/7.0\r\n\r\n", 5);
like($got // '', qr{^HTTP/1\.[01] 505 }, 'HTTP/7.0: 505');
$got = raw("GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " . ('a' x 100000) . "\r\n\r\n", 5);
ok(defined $got, 'a 100 kB header: closed');
unlike($got // '', qr{^HTTP/1\.[01] 200 }, 'a 100 kB header: not served');

# At most PER_IP_MAX connections from one address (the two above count):
# one more is closed at once, unserved.
my @held = map { raw_start('') } 1 .. $PER_IP_MAX - 2;
$got = raw("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 5);
ok(defined $got && $got !~ /^HTTP/, "with $PER_IP_MAX connections open, another is closed unserved");
close $_ for @held;

ok(defined raw_wait($silent, $TIMEOUT_S + $SLACK_S), "a silent connection is closed within $TIMEOUT_S s (+$SLACK_S)");
ok(defined raw_wait($nul, $TIMEOUT_S + $SLACK_S), 'so is one that sent junk MHD waits on');
note sprintf('closed after %.1f s', time() - $t0);
ok(wait_until(10, sub { scrape($s)->{success} }), 'once they close, a scrape is served again');

for my $m (@sc)
{
	my $st = sidecar_status($m);
	ok(%$st, "$m->{name} still answers its clients");
	promtool_ok("$m->{name} at the end", scrape($m)->{content});
}

# ---- PostgreSQL's side: docs/postgres_exporter.yml's query ----------------------
# Staged next to the tests by scripts/test.sh; in the source tree, docs/.
my $here = File::Basename::dirname(__FILE__);
my ($yml) = grep { -f } ("$here/../bin/postgres_exporter.yml", "$here/../../docs/postgres_exporter.yml");
ok($yml, 'docs/postgres_exporter.yml found');
my $text = PostgreSQL::Test::Utils::slurp_file($yml);
my ($query) = $text =~ /^  query: \|\n((?:    .*\n)+)/m;
ok($query, 'it has a query');
my $pg = pg_node_for('pgm', $sc[0]);
take_ts($pg) for 1 .. 3;
my %row;
ok( wait_until(
		10,
		sub {
			my $out = $pg->safe_psql('postgres', "COPY ($query) TO STDOUT WITH (FORMAT csv, HEADER)");
			my ($head, $line) = split /\n/, $out;
			@row{ split /,/, $head } = split /,/, $line // '';
			return ($row{sidecar_status_age_seconds} // '') ne '';
		}),
	"the exporter's query reads tso_status") or diag(explain(\%row));
is($row{connected}, 1, 'connected');
cmp_ok($row{timestamps_total}, '>=', 3, 'timestamps_total counts the calls');
like($row{sidecar_high_water_seconds}, qr/^\d+(\.\d+)?$/, 'the mark in Unix seconds');
for my $col ($text =~ /^    - (\w+):$/mg)
{
	ok(exists $row{$col}, "the query has column $col, which the file describes");
}
$pg->stop;

# ---- settings -------------------------------------------------------------------
my $dir = "$PostgreSQL::Test::Utils::tmp_check/140_metrics";
my @base = ($ENV{TSORACLED}, '--data-dir', "$dir/x", '--client-socket', "$dir/x.sock", '--raft-address',
	'127.0.0.1:' . PostgreSQL::Test::Cluster::get_free_port());
($out, $err) = ('', '');
$ok = IPC::Run::run([ @base, '--metrics-address', '0.0.0.0:' . PostgreSQL::Test::Cluster::get_free_port() ],
	'>', \$out, '2>', \$err);
ok(!$ok, 'a metrics-address off loopback is refused');
like($err, qr/metrics-address 0\.0\.0\.0:\d+ is not loopback: .*set metrics-allow-plaintext = true/,
	'... naming the setting that allows it');
($out, $err) = ('', '');
$ok = IPC::Run::run([ @base, '--metrics-address', "127.0.0.1:$sc[0]{metrics_port}" ], '>', \$out, '2>', \$err,
	IPC::Run::timeout(30));
ok(!$ok, 'a metrics-address in use stops the start');
like($err, qr/could not listen on metrics-address 127\.0\.0\.1:\d+: Address already in use/, '... saying why');

sidecar_stop($_) for @sc;
done_testing();
