# Abuse resistance of the sidecar's client listener (docs/architecture.md,
# "Fair service" and "Bounded resources"), through real processes: a flood
# of the largest requests does not starve a small client, and no timestamp
# runs more than max-ahead past the clock.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use TsoracleTest;

my $bench = $ENV{TSORACLE_BENCH} || die "TSORACLE_BENCH is not set";

# Runs tsoracle-bench against $sc with @args; returns its --kv line as a hash.
sub bench_kv
{
	my ($sc, @args) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ $bench, '--address', $sc->{socket}, '--kv', @args ], '>', \$out, '2>', \$err);
	my %h = $out =~ /(\w+)=(\S*)/g;
	note "tsoracle-bench @args: $out";
	return \%h;
}

my $sc = sidecar_start(sidecar_new(name => 'abuse'));

# ---- 1. the flood: one connection, 1024 requests of 2^24 in flight -----

my $MAX_COUNT = 16_777_216;
my ($flood_out, $flood_err) = ('', '');
my $flood = IPC::Run::start(
	[
		$bench, '--address', $sc->{socket}, '--kv', '--connections', '1', '--depth', '1024',
		'--count', $MAX_COUNT, '--duration', '7', '--warmup', '0'
	],
	'>', \$flood_out, '2>', \$flood_err);
# The flood is on once the sidecar has handed out more than 64 of its
# requests' worth: more than the 5 s window ahead of the clock holds.
my $t0 = sidecar_status($sc)->{timestamps} || 0;
ok( wait_until(
		10,
		sub {
			(sidecar_status($sc)->{timestamps} || 0) > $t0 + 64 * $MAX_COUNT;
		}),
	'the flood is under way (more than 64 x 2^24 timestamps handed out)');

my $small = bench_kv($sc, '--connections', '1', '--depth', '1', '--count', '1', '--duration', '3',
	'--warmup', '0.3');
$flood->finish;
my %flood = $flood_out =~ /(\w+)=(\S*)/g;
note "flood: $flood_out";

cmp_ok($small->{rps} // 0, '>=', 1000, 'during the flood, a count-1 client gets at least 1,000 requests/s');
cmp_ok($small->{p99_us} // 1e9, '<=', 10_000, 'its p99 latency is at most 10 ms');
is($small->{errors}, 0, 'it sees no error');
cmp_ok($small->{max_ahead_ms} // 1e9, '<=', 5000, 'its timestamps are within 5 s of the clock');
cmp_ok($flood{reqs} // 0, '>', 0, 'the flood is served too');
cmp_ok($flood{max_ahead_ms} // 1e9, '<=', 5000, "the flood's timestamps are within 5 s of the clock");
is($flood{violations}, 0, 'no grant was out of order');

sidecar_stop($sc);
done_testing();
