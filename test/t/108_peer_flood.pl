# A stranger floods the Raft ports of a 3-node cluster under TLS while a
# member restarts, and the member rejoins within 2 s (docs/cluster.md,
# "Abuse"; sidecar/peer.h, the handshake gate).
#
# Twice: the stranger on one address (127.0.0.9), which the limit per
# source holds, then behind 10 (127.0.0.10-19), which only the share kept
# for members' hosts holds (no member's host; the members are on
# 127.0.0.1). It keeps PEER_MAX_PENDING + PEER_FLOOD_EXTRA TCP connections open to every
# member's Raft port, sends nothing on them (they never finish the TLS
# handshake), and opens a new one the moment one is dropped: one that timed
# out after PEER_TIMEOUT_MS at once, one refused at once (or a port that is
# closed, the restarting member's) after FLOOD_RETRY_MS. It floods before the
# member stops and keeps flooding from before it starts again until it has
# rejoined: both directions of Raft traffic need a gate (the leader dials
# the member's port, the member dials the leader's).
#
# Rejoined: the member knows the leader, has applied what the leader had
# committed when it started, and the leader hears it (member list's
# leader_hears: a connection from it admitted within an election timeout),
# timed from the moment its process starts.
#
# Positive control (scripts/test.sh, tap_peergate_control): the same file
# against tsoracled-broken-peergate, whose gate is one global cap of
# PEER_MAX_PENDING with no limit per source and no room kept for members
# (test/broken/broken_peergate.c), must keep the member out beyond 2 s.
# tsoracle-tap: daemon only
use strict;
use warnings;
use Errno qw(EINPROGRESS EAGAIN);
use Fcntl qw(F_GETFL F_SETFL O_NONBLOCK);
use IO::Select;
use POSIX ();
use PostgreSQL::Test::Utils;
use Socket qw(:all);
use Test::More;
use Time::HiRes qw(time usleep);
use TsoracleTest;

# sidecar/peer.h
use constant PEER_MAX_PENDING => 64;
use constant PEER_MAX_PENDING_PER_SOURCE => 8;
use constant PEER_TIMEOUT_MS => 3000;
use constant PEER_RESERVED_FOR_MEMBERS => 16;

use constant STRANGER => '127.0.0.9';
use constant STRANGERS => map { "127.0.0.$_" } 10 .. 19;    # one stranger behind 10 addresses
use constant PEER_FLOOD_EXTRA => 8;      # connections per port beyond the gate's cap
use constant FLOOD_RETRY_MS => 100;      # after a refusal or a closed port
use constant FLOOD_REPORT_MS => 100;     # how often the flood writes what it holds
use constant HELD_MS => 500;             # a connection open this long got past the gate
use constant REJOIN_MS => 2000;          # the bound under test
use constant PATIENCE_S => 10;           # how long the test waits to report a failure's size

# ---- the stranger ----

# Runs the flood from the addresses @$sources (in turn) against @ports
# until killed; every FLOOD_REPORT_MS writes
# one line to $report: "port held=N refused=N opened=N" per port, where
# held counts connections open longer than HELD_MS (past the gate, in the
# handshake) and refused those closed by the daemon within HELD_MS.
sub flood
{
	my ($report, $sources, @ports) = @_;
	my (%conn, %stats, @retry);
	my $next_source = 0;
	my $sel_r = IO::Select->new;
	my $sel_w = IO::Select->new;
	my $open = sub {
		my ($port) = @_;
		socket(my $s, PF_INET, SOCK_STREAM, 0) or die "socket: $!";
		setsockopt($s, SOL_SOCKET, SO_REUSEADDR, 1);
		my $from = $sources->[ $next_source++ % @$sources ];
		bind($s, pack_sockaddr_in(0, inet_aton($from))) or die "bind $from: $!";
		fcntl($s, F_SETFL, fcntl($s, F_GETFL, 0) | O_NONBLOCK) or die "fcntl: $!";
		my $ok = connect($s, pack_sockaddr_in($port, inet_aton('127.0.0.1')));
		die "connect: $!" unless $ok || $! == EINPROGRESS || $! == EAGAIN;
		$conn{ fileno($s) } = { s => $s, port => $port, t0 => time(), up => 0 };
		$stats{$port}{opened}++;
		$sel_w->add($s);
	};
	my $drop = sub {
		my ($c, $again_at) = @_;
		$sel_r->remove($c->{s});
		$sel_w->remove($c->{s});
		delete $conn{ fileno($c->{s}) };
		close($c->{s});
		push @retry, [ $again_at, $c->{port} ];
	};
	for my $port (@ports)
	{
		$open->($port) for 1 .. PEER_MAX_PENDING + PEER_FLOOD_EXTRA;
	}
	my $next_report = time();
	while (1)
	{
		my $now = time();
		my @due = grep { $_->[0] <= $now } @retry;
		@retry = grep { $_->[0] > $now } @retry;
		$open->($_->[1]) for @due;
		my ($r, $w) = IO::Select->select($sel_r, $sel_w, undef, 0.01);
		for my $s (@{ $w || [] })
		{
			my $c = $conn{ fileno($s) } or next;
			my $err = unpack('i', getsockopt($s, SOL_SOCKET, SO_ERROR));
			$sel_w->remove($s);
			if ($err)
			{    # the port is closed (the member is down): try again soon
				$drop->($c, time() + FLOOD_RETRY_MS / 1000);
				next;
			}
			$c->{up} = 1;
			$c->{t_up} = time();
			$sel_r->add($s);
		}
		for my $s (@{ $r || [] })
		{
			my $c = $conn{ fileno($s) } or next;
			my $n = sysread($s, my $buf, 4096);
			next if defined $n && $n > 0;    # the daemon never sends before a ClientHello
			my $lived_ms = (time() - $c->{t_up}) * 1000;
			if ($lived_ms < HELD_MS)
			{    # refused at the gate
				$stats{ $c->{port} }{refused}++;
				$drop->($c, time() + FLOOD_RETRY_MS / 1000);
			}
			else
			{    # timed out in the handshake: take its place again at once
				$stats{ $c->{port} }{timedout}++;
				$drop->($c, 0);
			}
		}
		if (time() >= $next_report)
		{
			my %held;
			$now = time();
			for my $c (values %conn)
			{
				$held{ $c->{port} }++ if $c->{up} && ($now - $c->{t_up}) * 1000 >= HELD_MS;
			}
			my $line = join(' ',
				map { "$_:held=" . ($held{$_} || 0) . ",refused=" . ($stats{$_}{refused} || 0)
					  . ",timedout=" . ($stats{$_}{timedout} || 0) . ",opened=" . ($stats{$_}{opened} || 0) }
				  @ports);
			open(my $fh, '>', "$report.tmp") or die "$report: $!";
			print $fh "$line\n";
			close($fh);
			rename("$report.tmp", $report) or die "rename: $!";
			$next_report = $now + FLOOD_REPORT_MS / 1000;
		}
	}
}

my $flood_pid;
my $report = "$PostgreSQL::Test::Utils::tmp_check/108_flood.report";

sub flood_start
{
	my ($sources, @ports) = @_;
	unlink $report;
	$flood_pid = fork();
	die "fork: $!" unless defined $flood_pid;
	if ($flood_pid == 0)
	{
		eval { flood($report, $sources, @ports) };
		print STDERR "flood: $@" if $@;
		POSIX::_exit(1);
	}
	note "the stranger floods ports @ports from @$sources (pid $flood_pid)";
}

sub flood_stop
{
	return unless $flood_pid;
	kill 'KILL', $flood_pid;
	waitpid($flood_pid, 0);
	undef $flood_pid;
}
END { flood_stop() }

# port => { held, refused, timedout, opened }, from the flood's last report.
sub flood_state
{
	open(my $fh, '<', $report) or return {};
	my $line = <$fh> // '';
	close($fh);
	my %st;
	while ($line =~ /(\d+):held=(\d+),refused=(\d+),timedout=(\d+),opened=(\d+)/g)
	{
		$st{$1} = { held => $2, refused => $3, timedout => $4, opened => $5 };
	}
	return \%st;
}

# ---- the cluster ----

# A stranger needs its own source addresses on loopback.
for my $a (STRANGER, STRANGERS)
{
	socket(my $probe, PF_INET, SOCK_STREAM, 0) or die "socket: $!";
	plan skip_all => "cannot bind $a on loopback: $!" unless bind($probe, pack_sockaddr_in(0, inet_aton($a)));
	close($probe);
}

my @sc = cluster_start(cluster_new(3, prefix => 'f'));
my $leader = cluster_leader(@sc);
my ($member) = grep { $_ != $leader } @sc;
my @ports = map { $_->{raft_port} } @sc;
my $peers = $sc[0]{peers};

# The leader's view of member id: does it hear it?
sub leader_hears
{
	my ($id) = @_;
	my ($ok, $out) = ctl($leader, '--timeout', '1000', '--peers', $peers, 'member', 'list', '--json');
	return $ok && $out =~ /\{"id": $id, [^}]*"leader_hears": true/;
}

ok(wait_until(10, sub { leader_hears($member->{id}) }), "before the flood, the leader hears $member->{name}");

# The wall-clock time (epoch s) of the first line of $sc's log written by
# its current process at $t0 or later that matches $re; undef if none.
sub logged_at
{
	my ($sc, $t0, $re) = @_;
	for my $line (split /\n/, slurp_file($sc->{log}))
	{
		next unless $line =~ /^(\d+)-(\d+)-(\d+) (\d+):(\d+):(\d+)(\.\d+) tsoracled\[$sc->{pid}\] (.*)/;
		my $t = POSIX::mktime($6, $5, $4, $3, $2 - 1, $1 - 1900) + $7;    # sidecar/log.c: local time
		return $t if $t >= $t0 - 0.001 && $8 =~ $re;
	}
	return undef;
}

# The member's way back from its start at $t0: (ms until it rejoined, or
# undef and why not). Rejoined: it follows the leader and has applied
# $commit, and the leader hears it (polled for at most PATIENCE_S); timed
# by the daemons' own logs, when both directions were admitted (the leader
# dialled the member, the member dialled the leader), since polling through
# tsoracle-ctl takes its own time.
sub rejoin_ms
{
	my ($t0, $commit) = @_;
	my ($ok, $why) = rejoined($commit);
	return (undef, $why) unless $ok;
	my $in = logged_at($member, $t0, qr/Raft connection from \S+ admitted as node $leader->{id} /);
	my $out = logged_at($leader, $t0, qr/Raft connection from \S+ admitted as node $member->{id} /);
	return (undef, 'its admissions are not in the logs') unless defined $in && defined $out;
	return (int((($in > $out ? $in : $out) - $t0) * 1000), '');
}

# Polls (at most PATIENCE_S) until the member follows the leader, has
# applied $commit, and the leader hears it: (true, '') or (false, why not).
sub rejoined
{
	my ($commit) = @_;
	my $why = '';
	my $ok = wait_until(PATIENCE_S, sub {
		my $st = sidecar_status($member);
		if (($st->{leader_id} // '') ne $leader->{id})
		{
			$why = "it does not know the leader (leader_id " . ($st->{leader_id} // 'none') . ')';
			return 0;
		}
		if (($st->{applied_index} // 0) < $commit)
		{
			$why = "it applied $st->{applied_index} of $commit";
			return 0;
		}
		if (!leader_hears($member->{id}))
		{
			$why = 'the leader does not hear it';
			return 0;
		}
		return 1;
	});
	return ($ok, $why);
}

# A follower restarts while the stranger floods every Raft port from
# @$sources; the gate of peer.h holds $held of its connections on each
# port that is up (the rest refused at once): PEER_MAX_PENDING_PER_SOURCE
# from one address, PEER_MAX_PENDING - PEER_RESERVED_FOR_MEMBERS from many.
sub restart_under_flood
{
	my ($what, $sources, $held) = @_;
	$leader = cluster_leader(@sc);
	($member) = grep { $_ != $leader } @sc;
	note "$what: leader $leader->{name}; $member->{name} restarts under the flood";
	my $logpos = length(slurp_file($leader->{log}));
	sidecar_stop($member);
	flood_start($sources, @ports);
	my @live = grep { $_ != $member->{raft_port} } @ports;
	ok(wait_until(10, sub {
		my $st = flood_state();
		return !grep { ($st->{$_}{held} || 0) < $held || !$st->{$_}{refused} } @live;
	}), "$what: the flood holds the gate of the leader and of the other member ($held or more each)");
	my $st = flood_state();
	note "flood on port $_: held $st->{$_}{held}, refused $st->{$_}{refused}" for @live;
	ok(defined sidecar_get($leader), "$what: the leader serves during the flood");

	my $commit = sidecar_status($leader)->{commit_index} || 0;
	my $t0 = time();
	sidecar_start($member, no_wait => 1);
	my ($ms, $why) = rejoin_ms($t0, $commit);
	$st = flood_state();
	note 'flood while the member restarted: '
	  . join('; ', map { "port $_: held $st->{$_}{held}, refused $st->{$_}{refused}, timed out $st->{$_}{timedout}" } @ports);
	ok(defined $ms && $ms <= REJOIN_MS,
		"$what: under the flood, $member->{name} rejoins within 2 s of its start ("
		  . (defined $ms ? "$ms ms" : "not within " . PATIENCE_S . " s: $why") . ')');
	ok(($st->{ $member->{raft_port} }{opened} || 0) > PEER_MAX_PENDING, "$what: ... while the flood hit its port too");
	ok(kill(0, $flood_pid), "$what: ... and the flood ran throughout");
	like(substr(slurp_file($leader->{log}), $logpos),
		qr/refused a Raft connection from 127\.0\.0\.\d+:\d+: \d+ (other )?connections/,
		"$what: the leader logged the refusals of the stranger");

	# Without the flood it comes back (what kept it out was the flood).
	flood_stop();
	my ($back, $why_not) = rejoined(0);
	ok($back, "$what: once the flood stops, $member->{name} follows the leader and the leader hears it"
		  . ($back ? '' : ": $why_not"));
	ok(defined sidecar_get($_), "$what: $_->{name} serves after the flood") for @sc;
}

restart_under_flood('one address', [STRANGER], PEER_MAX_PENDING_PER_SOURCE);
restart_under_flood('10 addresses', [STRANGERS], PEER_MAX_PENDING - PEER_RESERVED_FOR_MEMBERS);

sidecar_stop($_) for @sc;
done_testing();
