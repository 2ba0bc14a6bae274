/* sim_params.h: what a seed picks for a schedule's cluster: its size, timeouts, lease, window, latencies and
 * clocks. */
#ifndef TSORACLE_SIM_PARAMS_H
#define TSORACLE_SIM_PARAMS_H

#include "sim_cluster.h"
#include "sim_rng.h"

/*
 * Half the schedules or so run the daemon's defaults, the others draw each
 * parameter within what sidecar/config.c accepts, with two exceptions,
 * both in sim_params.c: a third of the schedules have a lease longer than
 * the election timeout, and leases and windows stay well above a commit's
 * latency (below it the daemon never serves: a liveness matter, which the
 * simulation would otherwise report).
 */

/* Fixture latencies, ms: well under SIM_MIN_DOWN_MS. */
#define SIM_NET_LATENCY_MAX_MS  20
#define SIM_DISK_LATENCY_MAX_MS 10

/* Fills p and the n clocks from g. */
void sim_params_pick(sim_rng *g, sim_params *p, sim_clock *clocks);

/* The membership schedules' spare members (sim_member.h): SIM_SPARES more
 * nodes, drawn from g (the membership stream) as the first n were, so that
 * the main stream, and with it the schedule without membership, is not
 * changed. */
void sim_params_pick_spares(sim_rng *g, sim_params *p, sim_clock *clocks);

/* One election timeout of node i as libraft draws them: in [et, 2 et], et
 * its own election timeout. */
unsigned sim_params_election_timeout(sim_rng *g, const sim_params *p, unsigned i);

/*
 * Members with different leases (tsoracle.h, I4; docs/simulation.md): in
 * P_MIXED of the schedules whose lease is below the election timeout, one
 * node, drawn from g, gets an election timeout several times the others'
 * and a lease just below it, longer than the others' election timeout (as
 * in scripts/nemesis.sh partition-lease), and each other node keeps the
 * cluster's lease or draws its own below its election timeout. Every node's
 * lease stays below its own election timeout, as sidecar/config.c requires.
 */
void sim_params_pick_leases(sim_rng *g, sim_params *p);

/* Node i's allocator settings: the cluster's, with its own lease. */
void sim_params_node_alloc(const sim_params *p, unsigned i, ta_config *out);

/* The longest lease and election timeout of any node: bounds of the
 * schedule's waits (liveness, removals). */
uint64_t sim_params_max_lease(const sim_params *p);
unsigned sim_params_max_election(const sim_params *p);

#endif /* TSORACLE_SIM_PARAMS_H */
