# TsoracleTest: real tsoracled processes and PostgreSQL nodes for the TAP tests.
#
# A sidecar runs as a child process of the test, logs to a file in the
# test's tmp dir, and is found through its pid file; a PostgreSQL node is a
# PostgreSQL::Test::Cluster with the extension preloaded and pointed at a
# sidecar. Every wait here is bounded and polls a real condition.
package TsoracleTest;

use strict;
use warnings;
use Exporter 'import';
use File::Basename ();
use POSIX ();
use Time::HiRes qw(usleep time clock_gettime CLOCK_MONOTONIC);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

our @EXPORT = qw(sidecar_new sidecar_start sidecar_stop sidecar_kill sidecar_signal
  sidecar_wait_serving sidecar_status pg_node_for wait_until elapsed_ms
  check_increasing take_ts ctl bg_send bg_collect
  certs_new certs sidecar_tls_flags cluster_new cluster_start sidecar_wait_ready cluster_leader sidecar_get
  $GUARD_OFF no_backward_grants pgbench_start pgbench_finish write_clock_offset mono_ns
  checker_history_across calls_distinct_increasing write_file_from kill_leader_under_load);

my $tsoracled = $ENV{TSORACLED} || die "TSORACLED is not set";

# postgresql.conf lines for a test that must see what the sidecars hand out:
# the worker's guard (docs/sql.md, tsoracle.refuse_backward_grants) would
# turn a backward grant into an error, which a retry loop or an "above every
# earlier value" check would pass over.
our $GUARD_OFF = "tsoracle.refuse_backward_grants = off\n";

# Every sidecar this test started, so none outlives it, even on a bail out.
# At the end, each one still running is stopped as sidecar_stop does
# (SIGCONT first, for one left stopped): one that does not exit cleanly
# within 15 s fails the test file through its exit status (Test::More's
# own END, which runs after this one, keeps a non-zero $?), and is killed.
my %started;
END
{
	my $status = $?;
	my $unclean = 0;
	for my $sc (sort { $a->{name} cmp $b->{name} } grep { $_->{pid} } values %started)
	{
		kill 'CONT', $sc->{pid};
		kill 'TERM', $sc->{pid};
		my $why = wait_until(15, sub { _reaped($sc) })
		  ? _unclean($sc->{exit_status})
		  : 'no exit within 15 s of SIGTERM';
		next unless $why;
		diag("$sc->{name}, stopped at the end of the test: $why; end of $sc->{log}:\n" . _log_tail($sc, 40));
		$unclean = 1;
		if ($sc->{pid})
		{
			kill 'KILL', $sc->{pid};
			waitpid($sc->{pid}, 0);
		}
	}
	$? = $status || ($unclean ? 255 : 0);
}
my $ctl = $ENV{TSORACLE_CTL} || die "TSORACLE_CTL is not set";

# The file's other child processes (a history checker, pgbench, started
# through IPC::Run and still running), ended with SIGTERM when a control
# ends the file early: the sidecars are left to the END block above.
sub _stop_helpers
{
	my %sidecar = map { ($_->{pid} || 0) => 1 } values %started;
	for my $stat (glob('/proc/[0-9]*/stat'))
	{
		open(my $fh, '<', $stat) or next;
		my $line = <$fh> // '';
		close $fh;
		# pid (comm) state ppid ...: comm may hold spaces, so after its ')'
		my ($pid, $ppid) = $line =~ /^(\d+) \(.*\) \S+ (\d+) /s or next;
		kill 'TERM', $pid if $ppid == $$ && !$sidecar{$pid};
	}
}

# A positive control's run (scripts/test.sh, tap_control) passes once the
# file fails a check whose name matches the control's pattern; what the
# file does after that cannot change the verdict, and the later checks
# would mostly wait out their bounds against the planted bug. With
# TSORACLE_CONTROL_STOP set to that pattern, the first failed check that
# matches it ends the file there, with exit status 1 (the END blocks
# stop its sidecars and PostgreSQL nodes as at any end). Every check goes
# through Test::Builder::ok (is, like, cmp_ok too).
if (defined(my $stop = $ENV{TSORACLE_CONTROL_STOP}))
{
	my $builder_ok = \&Test::Builder::ok;
	no warnings 'redefine';
	*Test::Builder::ok = sub {
		my ($self, $test, $name) = @_;
		local $Test::Builder::Level = $Test::Builder::Level + 1;
		my $r = $builder_ok->(@_);
		if (!$test && defined $name && $name =~ /$stop/)
		{
			$self->diag("positive control: '$name' failed, as the control needs: the file ends here "
				  . '(TSORACLE_CONTROL_STOP)');
			$self->done_testing();
			_stop_helpers();
			exit 1;
		}
		return $r;
	};
}

# Polls $cond every 50 ms until it returns true or $secs pass; returns the
# last result.
sub wait_until
{
	my ($secs, $cond) = @_;
	my $deadline = time() + $secs;
	while (1)
	{
		my $r = $cond->();
		return $r if $r;
		return $r if time() >= $deadline;
		usleep(50_000);
	}
}

sub elapsed_ms
{
	my ($t0) = @_;
	return int((time() - $t0) * 1000);
}

# A sidecar description: nothing runs until sidecar_start.
#   name, id, peers ("1=ip:port,..."), raft_port, tls (a certs_new directory:
#   the member uses ca.crt, nodeID.crt/.key and ca.crl there; tls_cert and
#   tls_key name other files of it, without .crt/.key),
#   extra (array ref of flags), bin (another tsoracled binary)
sub sidecar_new
{
	my (%o) = @_;
	my $name = $o{name} || 'sc' . ($o{id} || 1);
	# Per test file, so two tests may use the same names in one prove run.
	my $test = File::Basename::basename($0, '.pl');
	mkdir "$PostgreSQL::Test::Utils::tmp_check/$test";
	my $dir = "$PostgreSQL::Test::Utils::tmp_check/$test/$name";
	mkdir $dir;
	my $sc = {
		name => $name,
		id => $o{id} || 1,
		dir => $dir,
		data => "$dir/data",
		socket => "$dir/tsoracled.sock",
		log => "$PostgreSQL::Test::Utils::log_path/${test}_$name.log",
		raft_port => $o{raft_port} || PostgreSQL::Test::Cluster::get_free_port(),
		peers => $o{peers},
		tls => $o{tls},
		tls_name => $o{tls_name},
		extra => $o{extra} || [],
		bin => $o{bin} || $tsoracled,
	};
	$sc->{raft_address} = "127.0.0.1:$sc->{raft_port}";
	return $sc;
}

sub _pid
{
	my ($sc) = @_;
	return $sc->{pid};
}

sub sidecar_start
{
	my ($sc, %o) = @_;
	my @cmd = (
		$sc->{bin},
		'--node-id' => $sc->{id},
		'--data-dir' => $sc->{data},
		'--raft-address' => $sc->{raft_address},
		'--client-socket' => $sc->{socket},
		'--log-level' => 'debug',
		($sc->{peers} ? ('--peers' => $sc->{peers}) : ()),
		sidecar_tls_flags($sc),
		@{ $sc->{extra} });
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		open(STDIN, '<', '/dev/null');
		open(STDOUT, '>>', $sc->{log}) or POSIX::_exit(127);
		open(STDERR, '>&', \*STDOUT);
		exec(@cmd) or POSIX::_exit(127);
	}
	$sc->{pid} = $pid;
	$started{ $sc->{name} } = $sc;
	note "started $sc->{name} (pid $pid)";
	sidecar_wait_serving($sc) unless $o{no_wait};
	return $sc;
}

# Reaps the sidecar's process if it has exited; true if it is gone.
sub _reaped
{
	my ($sc) = @_;
	return 1 unless $sc->{pid};
	my $r = waitpid($sc->{pid}, POSIX::WNOHANG());
	if ($r == $sc->{pid} || $r == -1)
	{
		$sc->{exit_status} = $?;
		delete $sc->{pid};
		return 1;
	}
	return 0;
}

sub sidecar_signal
{
	my ($sc, $sig) = @_;
	kill $sig, $sc->{pid} or die "kill $sig $sc->{name}: $!";
}

# The last lines of the sidecar's log (what a sanitizer or a crash left).
sub _log_tail
{
	my ($sc, $n) = @_;
	my @lines = split /\n/, (-f $sc->{log} ? PostgreSQL::Test::Utils::slurp_file($sc->{log}) : '');
	splice(@lines, 0, @lines - $n) if @lines > $n;
	return join("\n", @lines);
}

# Why an exit status is not a clean exit ('' if it is one: status 0).
# AddressSanitizer's leak checker and UndefinedBehaviorSanitizer end the
# process with a failure status (make test SANITIZE=1), a crash with a
# signal.
sub _unclean
{
	my ($status) = @_;
	return '' if $status == 0;
	return '' if $status == -1;    # reaped by someone else: nothing to tell
	return 'killed by signal ' . ($status & 127) if $status & 127;
	return 'exit status ' . ($status >> 8);
}

# SIGTERM and wait for the exit (dies if it takes over 15 s). The exit must
# be clean: a test that stops a daemon has an assertion that it exited 0,
# so a crash, a leak or undefined behaviour at any point of its life fails
# the test, with the end of its log. Returns the wait status.
sub sidecar_stop
{
	my ($sc) = @_;
	return unless $sc->{pid};
	kill 'TERM', $sc->{pid};
	wait_until(15, sub { _reaped($sc) }) or die "$sc->{name} did not stop on SIGTERM";
	note "stopped $sc->{name}: exit status $sc->{exit_status}";
	my $why = _unclean($sc->{exit_status});
	ok(!$why, "$sc->{name} exited cleanly on SIGTERM" . ($why ? " ($why)" : ''))
	  or diag("end of $sc->{log}:\n" . _log_tail($sc, 40));
	return $sc->{exit_status};
}


# SIGKILL and reap.
sub sidecar_kill
{
	my ($sc) = @_;
	return unless $sc->{pid};
	kill 'KILL', $sc->{pid};
	wait_until(15, sub { _reaped($sc) }) or die "$sc->{name} did not die on SIGKILL";
	note "killed $sc->{name}";
}

# Runs tsoracle-ctl against the sidecar's unix socket (args may name TCP
# addresses instead: --peers, --address). A member of a TLS cluster passes
# the cluster's admin certificate, which TCP addresses need (its client-tcp
# speaks TLS and transfer-leader needs OU=admin; the unix socket ignores
# it); later --ca/--cert/--key in args win.
sub ctl
{
	my ($sc, @args) = @_;
	my ($stdout, $stderr);
	my @tls = $sc->{tls}
	  ? ('--ca' => "$sc->{tls}/ca.crt", '--cert' => "$sc->{tls}/admin.crt", '--key' => "$sc->{tls}/admin.key")
	  : ();
	my $ok = IPC::Run::run([ $ctl, '--address', $sc->{socket}, '--timeout', '1000', @tls, @args ],
		'>', \$stdout, '2>', \$stderr);
	return ($ok, $stdout, $stderr);
}

# The sidecar's status as a hash (empty if it does not answer).
sub sidecar_status
{
	my ($sc) = @_;
	my ($ok, $out) = ctl($sc, 'status', '--json');
	return {} unless $ok;
	my %h;
	while ($out =~ /"(\w+)": ("[^"]*"|-?\w+)/g)
	{
		my ($k, $v) = ($1, $2);
		$v =~ s/^"|"$//g;
		$h{$k} = $v;
	}
	return \%h;
}

sub sidecar_wait_serving
{
	my ($sc, $secs) = @_;
	my $ok = wait_until($secs || 30, sub { (sidecar_status($sc)->{serving} || '') eq 'true' });
	die "$sc->{name} is not serving (see $sc->{log})" unless $ok;
	return 1;
}

# A PostgreSQL node with the extension preloaded, using sidecar $sc.
sub pg_node_for
{
	my ($name, $sc, $extra_conf) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'tsoracle'
tsoracle.sidecar_address = '$sc->{socket}'
max_connections = 40
} . ($extra_conf || ''));
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION tsoracle');
	return $node;
}

# One fresh timestamp from $node.
sub take_ts
{
	my ($node) = @_;
	return $node->safe_psql('postgres', 'SELECT tso_now()');
}

# True if the list is strictly increasing; else reports the first bad pair.
sub check_increasing
{
	my ($name, @v) = @_;
	for my $i (1 .. $#v)
	{
		if ($v[$i] <= $v[ $i - 1 ])
		{
			fail("$name: value $i ($v[$i]) is not above value " . ($i - 1) . " ($v[$i-1])");
			return 0;
		}
	}
	pass("$name: " . scalar(@v) . " values strictly increasing");
	return 1;
}


# Starts pgbench in the background against $node: $clients clients (2
# threads) run $sql for $secs seconds, while the test changes things
# under it; pgbench_finish waits for it and returns (exit status, stdout,
# stderr).
sub pgbench_start
{
	my ($node, $sql, $secs, $clients) = @_;
	my $test = File::Basename::basename($0, '.pl');
	my $script = "$PostgreSQL::Test::Utils::tmp_check/${test}_pgbench.sql";
	open(my $fh, '>', $script) or die "$script: $!";
	print $fh "$sql\n";
	close $fh;
	my $pb = { out => '', err => '' };
	$pb->{run} = IPC::Run::start(
		[ 'pgbench', '-n', '-c', $clients, '-j', '2', '-T', $secs, '-f', $script,
		  '-h', $node->host, '-p', $node->port, 'postgres' ],
		'>', \$pb->{out}, '2>', \$pb->{err});
	return $pb;
}

sub pgbench_finish
{
	my ($pb) = @_;
	$pb->{run}->finish;
	return ($? >> 8, $pb->{out}, $pb->{err});
}

# Sends $sql to a background psql session without waiting for its result;
# bg_collect waits for it. Lets one test keep calls in flight in several
# sessions at once.
sub bg_send
{
	my ($bg, $sql) = @_;
	my $n = $bg->{query_cnt}++;
	my $banner = "background_psql: QUERY_SEPARATOR $n:";
	$bg->{stdin} .= "$sql\n;\n\\echo '$banner'\n\\warn '$banner'\n";
	$bg->{pending_banner} = $banner;
	$bg->{run}->pump_nb;
}

# Waits (bounded by the session's timeout) for the result of bg_send;
# returns (stdout, stderr) of that statement.
sub bg_collect
{
	my ($bg) = @_;
	my $banner = $bg->{pending_banner};
	my $match = qr/$banner\r?\n/;
	$bg->{timeout}->start();
	$bg->{run}->pump()
	  until ($bg->{stdout} =~ /$match/ && $bg->{stderr} =~ /$match/)
	  || $bg->{timeout}->is_expired;
	die "background psql timed out waiting for a result" if $bg->{timeout}->is_expired;
	my $strip = qr/\r?\n?$banner\r?\n/;
	my ($out, $err) = ($bg->{stdout}, $bg->{stderr});
	$out =~ s/$strip//;
	$err =~ s/$strip//;
	$bg->{stdout} = '';
	$bg->{stderr} = '';
	return ($out, $err);
}

# Certificates for a new cluster (scripts/certs.sh, common/tls.h) in the
# test's directory: a CA, node1..nodeN, admin, client, an empty CRL;
# returns the directory.
sub certs_new
{
	my ($name, $n) = @_;
	my $test = File::Basename::basename($0, '.pl');
	mkdir "$PostgreSQL::Test::Utils::tmp_check/$test";
	my $dir = "$PostgreSQL::Test::Utils::tmp_check/$test/$name-tls";
	certs($dir, $n || 7);
	return $dir;
}

# Runs scripts/certs.sh DIR ARGS... (dies if it fails).
sub certs
{
	my ($dir, @args) = @_;
	# Staged next to the tests by scripts/test.sh; in the source tree,
	# scripts/certs.sh.
	my $here = File::Basename::dirname(__FILE__);
	my ($script) = grep { -x } ("$here/../bin/certs.sh", "$here/../../scripts/certs.sh");
	die "scripts/certs.sh not found from $here" unless $script;
	my $out = `$script '$dir' @args 2>&1`;
	die "scripts/certs.sh $dir @args failed: $out" if $?;
	return $out;
}

# The --tls-* flags of a sidecar with a tls directory (none without).
sub sidecar_tls_flags
{
	my ($sc) = @_;
	return () unless $sc->{tls};
	my $name = $sc->{tls_name} || "node$sc->{id}";
	return (
		'--tls-ca' => "$sc->{tls}/ca.crt",
		'--tls-cert' => "$sc->{tls}/$name.crt",
		'--tls-key' => "$sc->{tls}/$name.key",
		'--tls-crl' => "$sc->{tls}/ca.crl");
}

# n sidecars forming one Raft cluster on 127.0.0.1, under TLS with
# certificates from a new CA (certs_new); nothing runs yet.
#   prefix => name prefix, extra => [flags for every member]
sub cluster_new
{
	my ($n, %o) = @_;
	my $tls = certs_new($o{prefix} || 'node', $n);
	my @ports = map { [ PostgreSQL::Test::Cluster::get_free_port(), PostgreSQL::Test::Cluster::get_free_port() ] } 1 .. $n;
	my $peers = join(',', map { "$_=127.0.0.1:$ports[$_-1][0]/127.0.0.1:$ports[$_-1][1]" } 1 .. $n);
	return map {
		sidecar_new(
			name => ($o{prefix} || 'node') . $_,
			id => $_,
			raft_port => $ports[ $_ - 1 ][0],
			peers => $peers,
			tls => $tls,
			extra => $o{extra})
	} 1 .. $n;
}

# Starts every member, then waits until each one serves its clients.
sub cluster_start
{
	my (@scs) = @_;
	sidecar_start($_, no_wait => 1) for @scs;
	sidecar_wait_ready($_) for @scs;
	return @scs;
}

# Takes n timestamps through the sidecar's client socket; returns the first
# (undef on failure, with the error in $@).
sub sidecar_get
{
	my ($sc, $n) = @_;
	# Longer than the sidecar's request timeout, so its own error status
	# (not the client's impatience) is what a failure reports.
	my ($ok, $out, $err) = ctl($sc, '--timeout', '5000', 'get', $n || 1);
	$@ = $err;
	return $ok && $out =~ /^(\d+) / ? $1 : undef;
}

# Waits until the sidecar grants timestamps to its clients (as leader, or
# by forwarding to one).
sub sidecar_wait_ready
{
	my ($sc, $secs) = @_;
	wait_until($secs || 30, sub { defined sidecar_get($sc) })
	  or die "$sc->{name} does not serve its clients (see $sc->{log})";
	return 1;
}

# The member that is leader and serving, among those given (waits for one).
sub cluster_leader
{
	my (@scs) = @_;
	my $leader;
	wait_until(30, sub {
		for my $sc (grep { $_->{pid} } @scs)
		{
			if ((sidecar_status($sc)->{serving} || '') eq 'true')
			{
				$leader = $sc;
				return 1;
			}
		}
		return 0;
	}) or die "no serving leader among " . join(', ', map { $_->{name} } @scs);
	return $leader;
}

# Passes if no server log of these PostgreSQL nodes reports a backward
# grant: the worker logs a WARNING for each (src/worker.c), guard on or off,
# and with the guard on its callers got "tsoracle refused a timestamp that
# was not above an earlier one". Either means the sidecars broke the order,
# whatever the values the test looked at.
# Once more than $min_grants grants have reached the leader of @sc, kills
# it (kill -9), checks that a survivor serves under a new leader, and
# starts the killed node again without waiting for it. Returns the killed
# node and its successor.
sub kill_leader_under_load
{
	my ($min_grants, @sc) = @_;
	my $leader = cluster_leader(@sc);
	Test::More::ok(wait_until(20, sub { (sidecar_status($leader)->{grants} || 0) > $min_grants }),
		"the load reaches the leader ($min_grants grants)");
	Test::More::note("kill -9 of the leader $leader->{name}");
	sidecar_kill($leader);
	my ($survivor) = grep { $_->{pid} } @sc;
	sidecar_wait_ready($survivor);
	my $successor = cluster_leader(grep { $_->{pid} } @sc);
	Test::More::isnt($successor->{name}, $leader->{name},
		"a new leader while $leader->{name} is down: $successor->{name}");
	sidecar_start($leader, no_wait => 1);
	return ($leader, $successor);
}

sub no_backward_grants
{
	my (@nodes) = @_;
	my @found;
	for my $node (@nodes)
	{
		my $log = PostgreSQL::Test::Utils::slurp_file($node->logfile);
		push @found, map { $node->name . ": $_" }
		  grep { /granted timestamps starting at \d+, not above|tsoracle refused a timestamp/ }
		  split /\n/, $log;
	}
	is(scalar(@found), 0, 'no server log reports a backward grant ('
		  . join(', ', map { $_->name } @nodes) . ')')
	  or diag(join("\n", @found[ 0 .. ($#found < 4 ? $#found : 4) ]));
}

# Writes a sidecar's clock-offset-file (sidecar/clock.c): ms added to its
# wall clock, read every 50 ms.
sub write_clock_offset
{
	my ($path, $ms) = @_;
	open(my $f, '>', $path) or die "$path: $!";
	print $f "$ms\n";
	close($f) or die "$path: $!";
}

# This host's monotonic clock in ns: the clock of tsoracle-checker's
# history (invoke_ns, complete_ns).
sub mono_ns
{
	return int(clock_gettime(CLOCK_MONOTONIC) * 1e9);
}

# From a tsoracle-checker --history file: the largest value of a call that
# completed before $before_ns, and the smallest of a call invoked after
# $after_ns (undef if none), on mono_ns's clock.
sub checker_history_across
{
	my ($history, $before_ns, $after_ns) = @_;
	my ($last_before, $first_after) = (0, undef);
	open(my $h, '<', $history) or die "$history: $!";
	<$h>;    # the header line
	while (<$h>)
	{
		chomp;
		my ($session, $ok, $inv, $cmp, $lo, $hi) = split /\t/;
		next unless $ok;
		$last_before = $hi if $cmp < $before_ns && $hi > $last_before;
		$first_after = $lo if $inv > $after_ns && (!defined $first_after || $lo < $first_after);
	}
	close($h);
	return ($last_before, $first_after);
}

# Passes if 1000 tso_now() calls in one statement on $node are distinct and
# increasing, and tso_range(1000) is contiguous ($how: "over TCP", ...).
sub calls_distinct_increasing
{
	my ($node, $how) = @_;
	is( $node->safe_psql(
			'postgres', q{
		SELECT count(*) = 1000 AND count(DISTINCT ts) = 1000
		       AND count(*) FILTER (WHERE ts <= prev) = 0
		FROM (SELECT ts, lag(ts) OVER (ORDER BY i) AS prev
		      FROM (SELECT i, tso_now() AS ts FROM generate_series(1, 1000) AS i) s) t}),
		't', "1000 tso_now() calls $how are distinct and increasing");
	is( $node->safe_psql(
			'postgres', q{SELECT count(*) = 1000 AND max(t) - min(t) = 999 FROM tso_range(1000) AS t}),
		't', "tso_range(1000) $how is contiguous");
}

# Replaces $path at once (rename) with the concatenation of files @parts
# (which may include $path itself): a certificate, CA or CRL rotated in
# place, never seen half-written. A .key keeps mode 600.
sub write_file_from
{
	my ($path, @parts) = @_;
	my $text = join('', map { PostgreSQL::Test::Utils::slurp_file($_) } @parts);
	open(my $fh, '>', "$path.new") or die "$path: $!";
	print $fh $text;
	close($fh) or die "$path: $!";
	chmod(0600, "$path.new") if $path =~ /\.key$/;
	rename("$path.new", $path) or die "rename $path: $!";
}

1;
