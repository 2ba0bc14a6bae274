/* sim_check.h: the properties every grant of a simulated schedule must keep, checked as grants happen. */
#ifndef TSORACLE_SIM_CHECK_H
#define TSORACLE_SIM_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * A grant in the simulation is instantaneous: it is invoked and completes at
 * one fixture time. The properties (docs/simulation.md):
 *
 *   SIM_P_DUPLICATE  no value is handed out twice (the set of every value
 *                    handed out, kept as sorted disjoint intervals);
 *   SIM_P_REALTIME   a grant at time T is above every value of every grant
 *                    at a time < T (grants at the same time, on different
 *                    nodes, need only be disjoint);
 *   SIM_P_NODE_ORDER each node's grants increase, across its restarts;
 *   SIM_P_DURABLE    a grant's last physical part is <= the highest mark
 *                    committed in the cluster (read from the FSMs);
 *   SIM_P_LIVENESS   once every fault is healed, the cluster serves again
 *                    within a bound (checked by the schedule, reported here).
 *   SIM_P_CLOCK      with the clock check on, no high-water mark is proposed
 *                    more than max-ahead + max-clock-offset past the clock of
 *                    a majority of the nodes (checked by sim_cluster.c at each
 *                    proposal, reported here).
 *   SIM_P_ONE_SERVER at most one node serves (its driver's lead_serving) at
 *                    any moment of simulated time: the nodes that are up,
 *                    after every fixture step and at every grant (I4: a
 *                    new leader serves only once every earlier lease is
 *                    over, or released).
 *   SIM_P_REMOVED    a node whose removal from the configuration committed
 *                    grants nothing as leader of that term or a later one
 *                    (a leader removed by its own commit stops at once), and
 *                    nothing after the longest lease it could still hold
 *                    from before (sim_member.h).
 *   SIM_P_FLOOR      once an Advance(F) (tsoracle-ctl advance-to) is applied
 *                    on the leader that proposed it, every grant after that
 *                    moment, on any node, starts at F ms or later (I6).
 */
enum sim_property {
	SIM_P_DUPLICATE,
	SIM_P_REALTIME,
	SIM_P_NODE_ORDER,
	SIM_P_DURABLE,
	SIM_P_LIVENESS,
	SIM_P_CLOCK,
	SIM_P_ONE_SERVER,
	SIM_P_REMOVED,
	SIM_P_FLOOR,
	SIM_N_PROPERTIES
};

#define SIM_CHECK_MAX_NODES 8

/* A value range [lo, hi]. */
typedef struct sim_range {
	uint64_t lo;
	uint64_t hi;
} sim_range;

/* The first grant that broke a property, described. */
#define SIM_CHECK_MSG 256

typedef struct sim_check {
	sim_range *set; /* every value handed out: sorted, disjoint, merged */
	size_t n_set;
	size_t cap_set;

	uint64_t now_ms;     /* time of the latest grants */
	bool any_before;     /* some grant happened before now_ms */
	uint64_t max_before; /* highest value granted before now_ms */
	unsigned max_before_node;
	uint64_t max_before_ms;
	bool any_now;
	uint64_t max_now; /* highest value granted at now_ms */
	unsigned max_now_node;

	bool node_any[SIM_CHECK_MAX_NODES];
	uint64_t node_last[SIM_CHECK_MAX_NODES];

	uint64_t committed_max_ms; /* highest mark seen applied by any FSM */

	/* Removals committed: when, in which term, and until when a lease
	 * from before may last (true ms). */
	bool removed[SIM_CHECK_MAX_NODES];
	uint64_t removed_at_ms[SIM_CHECK_MAX_NODES];
	uint64_t removed_term[SIM_CHECK_MAX_NODES];
	uint64_t removed_lease_until_ms[SIM_CHECK_MAX_NODES];

	/* The highest operator's floor applied, and when (true ms). */
	uint64_t floor_ms;
	uint64_t floor_at_ms;
	uint64_t advances; /* Advances applied */

	/* Results. */
	uint64_t grants;
	uint64_t timestamps;
	uint64_t violations[SIM_N_PROPERTIES];
	bool failed;
	enum sim_property first;
	char first_msg[SIM_CHECK_MSG];
} sim_check;

void sim_check_init(sim_check *k);
void sim_check_reset(sim_check *k); /* a new schedule; keeps the memory */
void sim_check_free(sim_check *k);

/* The highest mark applied by some FSM is at least mark_ms. */
void sim_check_committed(sim_check *k, uint64_t mark_ms);

/* Node node handed out [first, first + n) at true time t_ms. Returns the
 * number of properties it broke (0 if none). */
unsigned sim_check_grant(sim_check *k, unsigned node, uint64_t t_ms, uint64_t first, uint32_t n);

/* Node node's removal committed at t_ms in term term; a lease it took
 * before may last until lease_until_ms. */
void sim_check_removed(sim_check *k, unsigned node, uint64_t t_ms, uint64_t term, uint64_t lease_until_ms);

/* An Advance to floor_ms was applied on its proposer at t_ms. */
void sim_check_floor(sim_check *k, uint64_t t_ms, uint64_t floor_ms);

/* Node node, leading in term epoch, grants at t_ms: SIM_P_REMOVED. Returns
 * the number of properties it broke (0 or 1). */
unsigned sim_check_removed_grant(sim_check *k, unsigned node, uint64_t t_ms, uint64_t epoch);

/* The n nodes serving at t_ms (SIM_P_ONE_SERVER); 1 if that broke it. */
unsigned sim_check_servers(sim_check *k, uint64_t t_ms, const unsigned *nodes, unsigned n);

/* Records a violation found outside a grant (liveness). */
void sim_check_fail(sim_check *k, enum sim_property p, const char *msg);

const char *sim_property_name(enum sim_property p);

#endif /* TSORACLE_SIM_CHECK_H */
