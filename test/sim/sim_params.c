/* sim_params.c: what a seed picks for a schedule's cluster: its size, timeouts, lease, window, latencies and
 * clocks. */
#include "sim_params.h"

#include <string.h>

#include "config.h"

/* Share of schedules with 5 nodes (else 3). */
#define P_FIVE_NODES          300
/* Share of schedules with the daemon's defaults (election timeout 300 ms,
 * heartbeat 30 ms, lease 200 ms, drift 10 %, window 3 s / 2 s / 60 s);
 * the others draw each from the ranges below. */
#define P_DEFAULT_RAFT        500
#define P_DEFAULT_LEASE       500
#define P_DEFAULT_DRIFT       600
#define P_DEFAULT_WINDOW      600
/* A commit takes at most about COMMIT_MAX_MS (the leader's disk, a
 * message, the follower's disk, its answer). */
#define COMMIT_MAX_MS         (2 * SIM_NET_LATENCY_MAX_MS + 2 * SIM_DISK_LATENCY_MAX_MS)
/* Liveness needs a lease and a window well above a commit's time: a lease
 * renewed every lease / 3 that takes longer than 2 lease / 3 to commit
 * never serves, nor does a window that is past before its extension
 * commits. The daemon cannot check this (it does not know the latency). */
#define LEASE_MIN_MS          (4 * COMMIT_MAX_MS)
#define WINDOW_MIN_MS         (4 * COMMIT_MAX_MS)
#define WINDOW_MAX_MS         3000
#define MAX_AHEAD_MAX_MS      60000
/* The daemon requires heartbeat <= election timeout / 2 and lease <
 * election timeout (sidecar/config.c); leases are drawn in
 * [max(LEASE_MIN_MS, election timeout / LEASE_MIN_DIVISOR), election
 * timeout - 1]. */
#define ELECTION_MIN_MS       (LEASE_MIN_MS + COMMIT_MAX_MS)
#define ELECTION_MAX_MS       1500
#define HEARTBEAT_MIN_MS      10
#define LEASE_MIN_DIVISOR     4
/* Share of schedules whose lease is longer than the election timeout, up to
 * LONG_LEASE_MAX_FACTOR times it, which the daemon refuses. With lease <
 * election timeout, libraft's leader stickiness (a voter that heard from a
 * leader within the election timeout refuses to vote) already delays any
 * new leader past the old one's lease, and the new-leader wait (I4) does
 * not matter (a control without it was never caught, docs/simulation.md);
 * these schedules make the lease alone keep order, as its argument in
 * tsoracle.h says it does, whatever the election timeout. */
#define P_LONG_LEASE          333
#define LONG_LEASE_MAX_FACTOR 4
#define DRIFT_MAX_PERMILLE    1000
/* Share of schedules with mixed leases (sim_params_pick_leases), of those
 * whose lease is below the election timeout; the long node's election
 * timeout is MIXED_ET_MIN_FACTOR to MIXED_ET_MAX_FACTOR times the
 * cluster's, and its lease at least half of it; each other node draws its
 * own lease with P_MIXED_OTHER. */
#define P_MIXED               600
#define MIXED_ET_MIN_FACTOR   3
#define MIXED_ET_MAX_FACTOR   10
#define MIXED_LEASE_DIVISOR   2
#define P_MIXED_OTHER         400
#define SNAPSHOT_MIN          8
#define SNAPSHOT_MAX          64

/* Clocks. 2023-11-14T22:13:20Z, plus up to ~3 years: realistic wall clocks. */
#define WALL_BASE_MS      UINT64_C(1700000000000)
#define WALL_SPREAD_MS    UINT64_C(100000000000)
#define MONO_SPREAD_MS    UINT64_C(1000000000)
#define P_MONO_AT_ZERO    200 /* a monotonic clock that starts at 0 (boot) */
#define PPM               1000000
#define PERMILLE          1000
/* Skews use this share of what the drift margin allows, so rounding can
 * never take two clocks' rate ratio past it. */
#define SKEW_USE_PERMILLE 990
#define P_INITIAL_OFFSET  300
/* Share of schedules with the clock check on (max-clock-offset at its
 * default); the others keep wall clocks that drift with the monotonic
 * clock, and leaders that follow any clock. */
#define P_CLOCK_CHECK     700
#define INITIAL_OFFSET_MS 2000

static void sim_params_pick_cluster(sim_rng *g, sim_params *p)
{

	memset(p, 0, sizeof *p);
	p->n = sim_rng_chance(g, P_FIVE_NODES) ? 5 : 3;
	ta_config_default(&p->alloc);
	if (sim_rng_chance(g, P_DEFAULT_RAFT)) {
		p->election_timeout_ms = CFG_DEFAULT_ELECTION_TIMEOUT_MS;
		p->heartbeat_ms = CFG_DEFAULT_HEARTBEAT_MS;
	} else {
		p->election_timeout_ms = sim_rng_range_u(g, ELECTION_MIN_MS, ELECTION_MAX_MS);
		p->heartbeat_ms = sim_rng_range_u(g, HEARTBEAT_MIN_MS, p->election_timeout_ms / 2);
	}
	if (sim_rng_chance(g, P_LONG_LEASE)) {
		p->alloc.lease_ms = sim_rng_range_u(g, p->election_timeout_ms,
						    LONG_LEASE_MAX_FACTOR * p->election_timeout_ms);
	} else if (!sim_rng_chance(g, P_DEFAULT_LEASE) || p->alloc.lease_ms >= p->election_timeout_ms) {
		unsigned quarter = p->election_timeout_ms / LEASE_MIN_DIVISOR;

		p->alloc.lease_ms = sim_rng_range_u(g, quarter > LEASE_MIN_MS ? quarter : LEASE_MIN_MS,
						    p->election_timeout_ms - 1);
	}
	if (!sim_rng_chance(g, P_DEFAULT_DRIFT))
		p->alloc.drift_permille = sim_rng_range_u(g, 1, DRIFT_MAX_PERMILLE);
	if (!sim_rng_chance(g, P_DEFAULT_WINDOW)) {
		p->alloc.window_ahead_ms = sim_rng_range_u(g, WINDOW_MIN_MS, WINDOW_MAX_MS);
		p->alloc.extend_margin_ms = sim_rng_range_u(g, 1, (unsigned)p->alloc.window_ahead_ms - 1);
		p->alloc.max_ahead_ms =
		    sim_rng_range_u(g, (unsigned)p->alloc.window_ahead_ms, MAX_AHEAD_MAX_MS);
	}
	for (unsigned i = 0; i < SIM_MAX_NODES; i++) {
		p->lease_ms[i] = p->alloc.lease_ms;
		p->election_ms[i] = p->election_timeout_ms;
	}
	p->snapshot_threshold = sim_rng_range_u(g, SNAPSHOT_MIN, SNAPSHOT_MAX);
	p->snapshot_trailing = sim_rng_range_u(g, 1, p->snapshot_threshold - 1);
	for (unsigned i = 0; i < p->n; i++) {
		p->net_latency_ms[i] = sim_rng_range_u(g, 1, SIM_NET_LATENCY_MAX_MS);
		p->disk_latency_ms[i] = sim_rng_range_u(g, 1, SIM_DISK_LATENCY_MAX_MS);
	}
	p->max_clock_offset_ms = sim_rng_chance(g, P_CLOCK_CHECK) ? LEAD_CLOCK_DEFAULT_MAX_OFFSET_MS : 0;
}

/* Skews within the drift margin: any two clocks' rates differ by a factor
 * of at most (1 + skew) / (1 - skew) <= 1 + drift, i.e. skew <= d / (2 + d). */
static void sim_params_pick_clock(sim_rng *g, const sim_params *p, uint64_t wall, sim_clock *k)
{
	uint64_t d = p->alloc.drift_permille;
	uint64_t max_skew_ppm = d * PPM / (2 * PERMILLE + d) * SKEW_USE_PERMILLE / PERMILLE;

	k->mono_base_ms = sim_rng_chance(g, P_MONO_AT_ZERO) ? 0 : sim_rng_below(g, MONO_SPREAD_MS);
	k->skew_ppm = (int64_t)sim_rng_below(g, 2 * max_skew_ppm + 1) - (int64_t)max_skew_ppm;
	k->wall_base_ms = wall;
	k->wall_true_rate = p->max_clock_offset_ms > 0;
	k->offset_ms = sim_rng_chance(g, P_INITIAL_OFFSET)
			   ? (int64_t)sim_rng_below(g, 2 * INITIAL_OFFSET_MS + 1) - INITIAL_OFFSET_MS
			   : 0;
}

static void sim_params_pick_clocks(sim_rng *g, const sim_params *p, sim_clock *clocks)
{
	uint64_t wall = WALL_BASE_MS + sim_rng_below(g, WALL_SPREAD_MS);

	for (unsigned i = 0; i < p->n; i++)
		sim_params_pick_clock(g, p, wall, &clocks[i]);
}

void sim_params_pick(sim_rng *g, sim_params *p, sim_clock *clocks)
{
	sim_params_pick_cluster(g, p);
	sim_params_pick_clocks(g, p, clocks);
}

void sim_params_pick_spares(sim_rng *g, sim_params *p, sim_clock *clocks)
{
	p->spares = SIM_SPARES;
	for (unsigned i = p->n; i < p->n + p->spares; i++) {
		p->net_latency_ms[i] = sim_rng_range_u(g, 1, SIM_NET_LATENCY_MAX_MS);
		p->disk_latency_ms[i] = sim_rng_range_u(g, 1, SIM_DISK_LATENCY_MAX_MS);
		sim_params_pick_clock(g, p, clocks[0].wall_base_ms, &clocks[i]);
	}
}

unsigned sim_params_election_timeout(sim_rng *g, const sim_params *p, unsigned i)
{
	return sim_rng_range_u(g, p->election_ms[i], 2 * p->election_ms[i]);
}

void sim_params_pick_leases(sim_rng *g, sim_params *p)
{
	unsigned et = p->election_timeout_ms;
	unsigned quarter = et / LEASE_MIN_DIVISOR;
	unsigned k;

	if (p->alloc.lease_ms >= et || !sim_rng_chance(g, P_MIXED))
		return;
	p->mixed = true;
	k = (unsigned)sim_rng_below(g, p->n);
	p->long_node = k;
	p->election_ms[k] = sim_rng_range_u(g, MIXED_ET_MIN_FACTOR * et, MIXED_ET_MAX_FACTOR * et);
	p->lease_ms[k] = sim_rng_range_u(g, p->election_ms[k] / MIXED_LEASE_DIVISOR, p->election_ms[k] - 1);
	for (unsigned i = 0; i < p->n; i++)
		if (i != k && sim_rng_chance(g, P_MIXED_OTHER))
			p->lease_ms[i] =
			    sim_rng_range_u(g, quarter > LEASE_MIN_MS ? quarter : LEASE_MIN_MS, et - 1);
}

void sim_params_node_alloc(const sim_params *p, unsigned i, ta_config *out)
{
	*out = p->alloc;
	out->lease_ms = p->lease_ms[i];
}

uint64_t sim_params_max_lease(const sim_params *p)
{
	uint64_t most = p->alloc.lease_ms;

	for (unsigned i = 0; i < SIM_MAX_NODES; i++)
		if (p->lease_ms[i] > most)
			most = p->lease_ms[i];
	return most;
}

unsigned sim_params_max_election(const sim_params *p)
{
	unsigned most = p->election_timeout_ms;

	for (unsigned i = 0; i < SIM_MAX_NODES; i++)
		if (p->election_ms[i] > most)
			most = p->election_ms[i];
	return most;
}
