# The data directory's lock (sidecar/main.c): a second tsoracled on a data
# directory in use is refused with a message naming the directory and the
# first one's pid, whatever pid-file it is given, and it writes nothing in
# the directory first (the lock comes before node_init, which writes). The
# first keeps serving, and once it stops the directory is free.
# tsoracle-tap: daemon only
use strict;
use warnings;
use File::stat ();
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use TsoracleTest;

my $tsoracled = $ENV{TSORACLED};

# Every entry of the directory (and the directory itself) with its inode
# change time, size and modification time, in ns where the system has them:
# any file created, removed, written or renamed changes this text.
sub dir_state
{
	my ($dir) = @_;
	opendir(my $dh, $dir) or die "opendir $dir: $!";
	my @names = sort grep { $_ ne '.' && $_ ne '..' } readdir($dh);
	closedir($dh);
	my $st = File::stat::stat($dir) or die "stat $dir: $!";
	my $text = sprintf("dir mtime %s ctime %s\n", $st->mtime, $st->ctime);
	for my $name (@names)
	{
		my $f = File::stat::lstat("$dir/$name") or next;
		$text .= sprintf("%s size %d mtime %s ctime %s\n", $name, $f->size, $f->mtime, $f->ctime);
	}
	# stat's seconds hide a write within the same second: ask for ns.
	my $ns = `stat -c '%n %s %.9Y %.9Z' $dir $dir/* 2>/dev/null`;
	return $text . $ns;
}

# Runs a second tsoracled to its exit (it must not start).
sub run_second
{
	my (@args) = @_;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start([ $tsoracled, @args ], '>', \$out, '2>', \$err, IPC::Run::timeout(20));
	$h->finish;
	return ($h->result, $out . $err);
}

my $first = sidecar_new(name => 'first');
sidecar_start($first);
ok(defined sidecar_get($first), 'the first tsoracled serves');
my $pid = $first->{pid};
# Paused, the first writes nothing (its lease renewals append to its log
# about once a second), while it holds its lock: any change to the
# directory from here on is the second one's.
sidecar_signal($first, 'STOP');
my $before = dir_state($first->{data});

my $sock2 = "$first->{dir}/second.sock";
my $port2 = PostgreSQL::Test::Cluster::get_free_port();
my @second = (
	'--data-dir' => $first->{data},
	'--raft-address' => "127.0.0.1:$port2",
	'--client-socket' => $sock2);

my ($code, $out) = run_second(@second);
is($code, 1, 'a second tsoracled on the same data directory: exit 1');
like($out, qr/data directory "\Q$first->{data}\E" is in use by another tsoracled \(pid $pid\): stop it, or give this one another data-dir/,
	'... with a message naming the directory and the first one\'s pid');
is(dir_state($first->{data}), $before, '... and nothing in the directory was written');
ok(!-e $sock2, '... nor did it open a client socket');

my $pidfile2 = "$first->{dir}/second.pid";
($code, $out) = run_second(@second, '--pid-file' => $pidfile2);
is($code, 1, 'the same with a pid file of its own: exit 1');
like($out, qr/is in use by another tsoracled \(pid $pid\)/, '... refused by the directory\'s lock');
is(dir_state($first->{data}), $before, '... and nothing in the directory was written');
ok(!-e $pidfile2, '... nor its pid file');

sidecar_signal($first, 'CONT');
ok(defined sidecar_get($first), 'the first one still serves');
is(sidecar_stop($first), 0, 'the first one stops cleanly');

# The control: with the directory free, the same command starts.
my $second = sidecar_new(name => 'first');    # the same directory
$second->{raft_address} = $first->{raft_address};
sidecar_start($second);
ok(defined sidecar_get($second), 'once the first has stopped, a tsoracled starts on the directory');
is(sidecar_stop($second), 0, 'and stops cleanly');

done_testing();
