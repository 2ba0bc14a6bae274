/* sim_schedule.h: one seeded random schedule: its parameters, its nemesis and its clients, checked
 * throughout. */
#ifndef TSORACLE_SIM_SCHEDULE_H
#define TSORACLE_SIM_SCHEDULE_H

#include <stdbool.h>
#include <stdint.h>

#include "sim_check.h"
#include "sim_member.h"

/*
 * A schedule is a function of its seed alone: the seed picks the cluster's
 * parameters (3 or 5 nodes, timeouts, lease, window, latencies, clocks),
 * then each of its steps one nemesis action (partitions, pauses, crashes,
 * restarts, wall clock jumps, timeouts, latencies) or a client burst,
 * followed by some simulated time during which clients call random nodes.
 * After the last step every fault is healed and the cluster must serve
 * again (liveness). docs/simulation.md lists the actions and their weights.
 */

typedef struct sim_result {
	bool failed;
	enum sim_property first; /* the first property broken */
	unsigned first_step;     /* the step during which it broke */
	char first_msg[SIM_CHECK_MSG];
	/* After healing, libraft elected no leader at all (a liveness
	 * failure, also counted apart; docs/simulation.md, "Findings"). */
	bool raft_stuck;
	uint64_t violations[SIM_N_PROPERTIES];
	bool broke[SIM_N_PROPERTIES];
	unsigned broke_at_step[SIM_N_PROPERTIES]; /* the step each first broke in */
	/* What the schedule did, for the summary. */
	unsigned nodes;
	uint64_t fixture_steps;
	uint64_t simulated_ms;
	uint64_t grants;
	uint64_t timestamps;
	uint64_t fences;         /* leaderships that reached ta_lead_begin */
	uint64_t handovers;      /* planned handovers started */
	uint64_t releases;       /* ... of which with a release */
	uint64_t released_leads; /* fences started without the wait */
	uint64_t restarts;
	uint64_t apply_errors;
	bool membership;   /* a schedule with membership changes */
	uint64_t advances; /* operator's Advances applied */
	bool mixed;        /* members with different leases (sim_params_pick_leases) */
	bool raise;        /* the cluster version was to be raised to 3 from the start */
	bool version3;     /* ... and some member's state was at 3 at the end */
	sim_member_counters members;
} sim_result;

/* Runs the schedule of seed with steps nemesis steps, with planned
 * handovers or without, with membership changes (in the share of schedules
 * that have them) or without. With stop_at_failure, it ends at the first
 * violation (a traced replay ends there). */
void sim_schedule_run(uint64_t seed, unsigned steps, bool handovers, bool membership, bool stop_at_failure,
		      sim_result *res);

#endif /* TSORACLE_SIM_SCHEDULE_H */
