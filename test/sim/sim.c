/* sim.c: the deterministic simulation: thousands of seeded schedules of faults, every grant checked. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "monotime.h"
#include "sim_check.h"
#include "sim_io.h"
#include "sim_schedule.h"
#include "sim_trace.h"

/*
 * docs/simulation.md. Environment:
 *
 *   TSO_SIM_SEED       seed of the first schedule (default: the time); the
 *                      k-th schedule runs seed + k, so one failing schedule
 *                      reruns alone with TSO_SIM_SCHEDULES=1
 *   TSO_SIM_SCHEDULES  schedules to run (default SIM_DEFAULT_SCHEDULES)
 *   TSO_SIM_STEPS      nemesis steps per schedule (default SIM_DEFAULT_STEPS)
 *   TSO_SIM_TRACE=1    print every schedule's whole trace (with one schedule)
 *   TSO_SIM_ALL=1      positive controls: run every schedule rather than stop
 *                      at the first that catches the bug, and report how fast
 *                      they catch it
 *   TSO_SIM_LIBRAFT_AS_IS=1  leave libraft's InstallSnapshot term bug and
 *                      its configuration index bug in (sim_io.h): the run
 *                      then dies, or breaks SIM_P_REMOVED, where they strike
 *   TSO_SIM_HANDOVERS=0  no planned handovers: the same schedule otherwise
 *                      (handovers draw from a stream of their own), to see
 *                      whether a failure needs one
 *   TSO_SIM_MEMBERSHIP=0  no membership changes (nor spare nodes, nor the
 *                      operator's advance-to): likewise
 *
 * Built with -DTSO_SIM_EXPECT_VIOLATION=<an enum sim_property> and linked
 * with a deliberately broken allocator (the Makefile's sim_broken_*), the
 * binary is a positive control: it passes only if some schedule breaks that
 * property.
 */

#define SIM_DEFAULT_SCHEDULES 2000
#define SIM_DEFAULT_STEPS     200
/* Failing schedules described in full (the others are only counted). */
#define SIM_REPORTED_FAILURES 3

typedef struct sim_totals {
	unsigned schedules;
	unsigned failed;
	unsigned raft_stuck;
	uint64_t first_raft_stuck_seed;
	unsigned long term_fixes; /* libraft's InstallSnapshot term bug (sim_io.h) */
	uint64_t first_term_fix_seed;
	unsigned long change_fixes; /* libraft's configuration index bug (sim_io.h) */
	uint64_t first_change_fix_seed;
	uint64_t steps;
	uint64_t fixture_steps;
	uint64_t simulated_ms;
	uint64_t grants;
	uint64_t timestamps;
	uint64_t fences;
	uint64_t handovers;
	uint64_t releases;
	uint64_t released_leads;
	uint64_t restarts;
	uint64_t apply_errors;
	unsigned membership; /* schedules with membership changes */
	unsigned mixed;      /* ... with members of different leases */
	unsigned version3;   /* ... at cluster version 3 by their end */
	uint64_t advances;
	sim_member_counters members;
	uint64_t violations[SIM_N_PROPERTIES];
	unsigned schedules_broken[SIM_N_PROPERTIES];
	uint64_t steps_to_break[SIM_N_PROPERTIES]; /* sum of first steps, for the mean */
	unsigned max_steps_to_break[SIM_N_PROPERTIES];
} sim_totals;

static uint64_t env_u64(const char *name, uint64_t dflt)
{
	const char *v = getenv(name);
	char *end;
	unsigned long long x;

	if (v == NULL || *v == '\0')
		return dflt;
	x = strtoull(v, &end, 0);
	if (*end != '\0') {
		fprintf(stderr, "sim: %s=%s is not a number\n", name, v);
		exit(2);
	}
	return x;
}

static double now_s(void)
{
	return (double)mono_ns() / (double)NS_PER_S;
}

static void sim_add(sim_totals *t, const sim_result *r, uint64_t seed, unsigned steps)
{
	t->schedules++;
	t->failed += r->failed;
	if (r->raft_stuck && t->raft_stuck++ == 0)
		t->first_raft_stuck_seed = seed;
	if (sim_io_snapshot_term_fixes() > t->term_fixes && t->term_fixes == 0)
		t->first_term_fix_seed = seed;
	t->term_fixes = sim_io_snapshot_term_fixes();
	if (sim_io_change_index_fixes() > t->change_fixes && t->change_fixes == 0)
		t->first_change_fix_seed = seed;
	t->change_fixes = sim_io_change_index_fixes();
	t->steps += steps;
	t->fixture_steps += r->fixture_steps;
	t->simulated_ms += r->simulated_ms;
	t->grants += r->grants;
	t->timestamps += r->timestamps;
	t->fences += r->fences;
	t->handovers += r->handovers;
	t->releases += r->releases;
	t->released_leads += r->released_leads;
	t->restarts += r->restarts;
	t->apply_errors += r->apply_errors;
	t->membership += r->membership;
	t->mixed += r->mixed;
	t->version3 += r->version3;
	t->advances += r->advances;
	for (int k = 0; k < SIM_N_OPS; k++)
		t->members.started[k] += r->members.started[k];
	t->members.added += r->members.added;
	t->members.added_by_snapshot += r->members.added_by_snapshot;
	t->members.undone += r->members.undone;
	t->members.removed += r->members.removed;
	t->members.refused += r->members.refused;
	t->members.abandoned += r->members.abandoned;
	for (int p = 0; p < SIM_N_PROPERTIES; p++) {
		t->violations[p] += r->violations[p];
		if (!r->broke[p])
			continue;
		t->schedules_broken[p]++;
		t->steps_to_break[p] += r->broke_at_step[p] + 1;
		if (r->broke_at_step[p] + 1 > t->max_steps_to_break[p])
			t->max_steps_to_break[p] = r->broke_at_step[p] + 1;
	}
}

/* TSO_SIM_HANDOVERS, TSO_SIM_MEMBERSHIP: planned handovers and membership
 * changes in the schedules (sim_schedule.c). */
static bool sim_handovers = true;
static bool sim_membership = true;

/* Replays a failing schedule with tracing on: it must fail the same way. */
static void sim_replay(const char *argv0, uint64_t seed, unsigned steps, const sim_result *r)
{
	sim_result again;

	printf("  reproduce: TSO_SIM_SEED=%" PRIu64 " TSO_SIM_SCHEDULES=1 TSO_SIM_STEPS=%u%s%s %s"
	       "   (TSO_SIM_TRACE=1: the whole trace)\n",
	       seed, steps, sim_handovers ? "" : " TSO_SIM_HANDOVERS=0",
	       sim_membership ? "" : " TSO_SIM_MEMBERSHIP=0", argv0);
	sim_trace_start(false);
	sim_schedule_run(seed, steps, sim_handovers, sim_membership, true, &again);
	sim_trace_stop();
	fflush(stdout);
	sim_trace_dump(stdout);
	if (!again.failed || again.first != r->first || again.first_step != r->first_step ||
	    strcmp(again.first_msg, r->first_msg) != 0)
		printf("  NOT REPRODUCED: the replay %s (a nondeterminism in the simulation)\n",
		       again.failed ? again.first_msg : "passed");
}

static void sim_report_failure(const char *argv0, uint64_t seed, unsigned steps, const sim_result *r)
{
	printf("schedule seed %" PRIu64 " (%u nodes): %s broken at step %u:\n  %s\n", seed, r->nodes,
	       sim_property_name(r->first), r->first_step + 1, r->first_msg);
	printf("  violations:");
	for (int p = 0; p < SIM_N_PROPERTIES; p++)
		if (r->violations[p] > 0)
			printf(" %s %" PRIu64, sim_property_name((enum sim_property)p), r->violations[p]);
	printf("\n");
	sim_replay(argv0, seed, steps, r);
}

static void sim_print_totals(const sim_totals *t, double seconds)
{
	printf("sim: %u schedules, %" PRIu64 " steps, %" PRIu64 " fixture events, %.0f s simulated, %" PRIu64
	       " grants (%" PRIu64 " timestamps), %" PRIu64 " fences, %" PRIu64 " restarts, %" PRIu64
	       " refused proposals, in %.1f s\n",
	       t->schedules, t->steps, t->fixture_steps, (double)t->simulated_ms / (double)MS_PER_S,
	       t->grants, t->timestamps, t->fences, t->restarts, t->apply_errors, seconds);
	printf("sim: %" PRIu64 " planned handovers, %" PRIu64 " of them with a release; %" PRIu64
	       " leaders served without the new-leader wait\n",
	       t->handovers, t->releases, t->released_leads);
	printf("sim: %u schedules with members of different leases; %u at cluster version 3 by their end\n",
	       t->mixed, t->version3);
	printf("sim: %u schedules with membership changes: %" PRIu64 " adds asked, %" PRIu64
	       " voters added (%" PRIu64 " caught up by snapshot), %" PRIu64 " undone; %" PRIu64
	       " removals asked (%" PRIu64 " of a follower, %" PRIu64
	       " of the leader after a handover, %" PRIu64 " of the leader by itself, %" PRIu64
	       " replacements), %" PRIu64 " committed, %" PRIu64 " refused (quorum); %" PRIu64
	       " changes abandoned; %" PRIu64 " advance-to applied\n",
	       t->membership, t->members.started[SIM_OP_ADD], t->members.added, t->members.added_by_snapshot,
	       t->members.undone,
	       t->members.started[SIM_OP_REMOVE] + t->members.started[SIM_OP_REMOVE_LEADER] +
		   t->members.started[SIM_OP_REMOVE_SELF] + t->members.started[SIM_OP_REPLACE],
	       t->members.started[SIM_OP_REMOVE], t->members.started[SIM_OP_REMOVE_LEADER],
	       t->members.started[SIM_OP_REMOVE_SELF], t->members.started[SIM_OP_REPLACE], t->members.removed,
	       t->members.refused, t->members.abandoned, t->advances);
	if (t->raft_stuck > 0)
		printf(
		    "sim: libraft elected no leader after every fault was healed in %u schedules (the first: "
		    "TSO_SIM_SEED=%" PRIu64 "; liveness failures, see docs/simulation.md, Findings)\n",
		    t->raft_stuck, t->first_raft_stuck_seed);
	if (t->term_fixes > 0)
		printf("sim: libraft's InstallSnapshot term bug struck %lu times, corrected (sim_io.h;\n"
		       "     the first: TSO_SIM_SEED=%" PRIu64
		       ", add TSO_SIM_LIBRAFT_AS_IS=1 to leave it in)\n",
		       t->term_fixes, t->first_term_fix_seed);
	if (t->change_fixes > 0)
		printf("sim: libraft's configuration index bug struck %lu times, corrected (sim_io.h;\n"
		       "     the first: TSO_SIM_SEED=%" PRIu64
		       ", add TSO_SIM_LIBRAFT_AS_IS=1 to leave it in)\n",
		       t->change_fixes, t->first_change_fix_seed);
	for (int p = 0; p < SIM_N_PROPERTIES; p++) {
		if (t->schedules_broken[p] == 0)
			continue;
		printf("sim: %s broken in %u of %u schedules (%" PRIu64
		       " violations), first at step %.1f on average, %u at worst\n",
		       sim_property_name((enum sim_property)p), t->schedules_broken[p], t->schedules,
		       t->violations[p], (double)t->steps_to_break[p] / t->schedules_broken[p],
		       t->max_steps_to_break[p]);
	}
}

int main(int argc, char **argv)
{
	uint64_t seed = env_u64("TSO_SIM_SEED", (uint64_t)time(NULL));
	unsigned schedules = (unsigned)env_u64("TSO_SIM_SCHEDULES", SIM_DEFAULT_SCHEDULES);
	unsigned steps = (unsigned)env_u64("TSO_SIM_STEPS", SIM_DEFAULT_STEPS);
	bool trace_all = env_u64("TSO_SIM_TRACE", 0) != 0;
	bool run_all = env_u64("TSO_SIM_ALL", 0) != 0;
	const char *argv0 = argc > 0 ? argv[0] : "sim";
	sim_totals t = {0};
	double start = now_s();
	int ok;

	sim_io_fix_snapshot_terms(env_u64("TSO_SIM_LIBRAFT_AS_IS", 0) == 0);
	sim_handovers = env_u64("TSO_SIM_HANDOVERS", 1) != 0;
	sim_membership = env_u64("TSO_SIM_MEMBERSHIP", 1) != 0;
#ifdef TSO_SIM_EXPECT_VIOLATION
	const enum sim_property expect = TSO_SIM_EXPECT_VIOLATION;
	bool caught = false;

	printf("sim: positive control, the allocator is broken on purpose: expecting %s violations\n",
	       sim_property_name(expect));
#else
	unsigned reported = 0;

	(void)run_all;
#endif
	printf("sim: seed %" PRIu64 ", %u schedules x %u steps (TSO_SIM_SEED=%" PRIu64
	       " TSO_SIM_SCHEDULES=%u TSO_SIM_STEPS=%u %s)\n",
	       seed, schedules, steps, seed, schedules, steps, argv0);
	fflush(stdout);
	for (unsigned k = 0; k < schedules; k++) {
		sim_result r;

		if (trace_all)
			sim_trace_start(true);
		sim_schedule_run(seed + k, steps, sim_handovers, sim_membership, false, &r);
		sim_trace_stop();
		sim_add(&t, &r, seed + k, steps);
#ifdef TSO_SIM_EXPECT_VIOLATION
		if (r.broke[expect] && !caught) {
			caught = true;
			printf("caught after %u schedule(s), at step %u of seed %" PRIu64 "\n", k + 1,
			       r.broke_at_step[expect] + 1, seed + k);
			sim_report_failure(argv0, seed + k, steps, &r);
		}
		if (caught && !run_all)
			break;
#else
		if (r.failed && reported++ < SIM_REPORTED_FAILURES)
			sim_report_failure(argv0, seed + k, steps, &r);
#endif
	}
	sim_print_totals(&t, now_s() - start);
#ifdef TSO_SIM_EXPECT_VIOLATION
	ok = caught;
	printf("sim: %s: the broken allocator %s within %u schedules\n", ok ? "PASS" : "FAIL",
	       ok ? "was caught" : "was NOT caught", schedules);
#else
	ok = t.failed == 0;
	printf("sim: %s: %u of %u schedules broke a property\n", ok ? "PASS" : "FAIL", t.failed, t.schedules);
#endif
	return ok ? 0 : 1;
}
