# A sidecar that breaks its promise: tsoracled-broken-monotonic (a test
# build whose allocator starts every grant at the current millisecond,
# forgetting the last grant) hands out repeats within a millisecond. The
# worker refuses every grant that is not above one it has received: callers
# get SQLSTATE 08006 with a message that says what happened, the server log
# has the WARNING, and no caller receives a value out of order.
use strict;
use warnings;
use File::Basename qw(dirname);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use TsoracleTest;

my $broken = dirname($ENV{TSORACLE_CHECKER}) . '/tsoracled-broken-monotonic';
ok(-x $broken, "the planted-bug sidecar is at $broken");
my $sc = sidecar_start(sidecar_new(name => 'broken', bin => $broken));
my $node = pg_node_for('pg', $sc);

# Back-to-back calls land in the same millisecond within a few hundred
# calls; the first repeat is refused.
my ($rc, $out, $err) = $node->psql('postgres', qq{\\set VERBOSITY verbose
SELECT count(*) FROM (SELECT tso_now() FROM generate_series(1, 100000)) s});
isnt($rc, 0, 'calls to a sidecar that repeats itself fail');
like($err, qr/ERROR:\s+08006: tsoracle refused a timestamp that was not above an earlier one/,
	'with SQLSTATE 08006 and a message that says so');
like($err, qr/DETAIL:.*this server's tsoracle worker refused them/, 'the detail says who refused');
like(slurp_file($node->logfile), qr/WARNING:.*granted timestamps starting at \d+, not above \d+ granted earlier/,
	'the server log has the WARNING with both values');

# Every value a session did receive went up.
my @v = split /\n/, $node->safe_psql('postgres', q{
	CREATE TEMP TABLE got (n serial, ts bigint);
	DO $$ BEGIN
		FOR i IN 1 .. 2000 LOOP
			BEGIN
				INSERT INTO got (ts) VALUES (tso_now());
			EXCEPTION WHEN connection_failure THEN NULL;
			END;
		END LOOP;
	END $$;
	SELECT ts FROM got ORDER BY n});
cmp_ok(scalar(@v), '>', 0, scalar(@v) . ' of 2000 calls got a value');
check_increasing('the values a session received', @v);

$node->stop;
sidecar_stop($sc);
done_testing();
