/* sim_schedule.c: one seeded random schedule: its parameters, its nemesis and its clients, checked
 * throughout. */
#include "sim_schedule.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_cluster.h"
#include "sim_member.h"
#include "sim_params.h"
#include "sim_rng.h"
#include "sim_trace.h"
#include "tso.h"

#define PERMILLE    1000
/* Wall clock jumps: at most this far, and resynchronised now and then. */
#define JUMP_MAX_MS 50000
/* Clock rates are in parts per million. */
#define SIM_PPM     UINT64_C(1000000)
#define P_RESYNC    300
/* The clock faults of the clock check's tests (t/111), among the jumps: a
 * year forward, and 10 s either way. */
#define P_JUMP_YEAR 100
#define P_JUMP_TEN  200
#define YEAR_MS     (INT64_C(365) * 24 * 3600 * 1000)
#define TEN_S_MS    10000

/* ---- the actions of a step, with their weights ------------------------------ */

enum action {
	A_NOTHING,
	A_CLIENTS,
	A_PARTITION,
	A_HEAL,
	A_PAUSE,
	A_RESUME,
	A_STALL,
	A_CRASH,
	A_RESTART,
	A_CLOCK_JUMP,
	A_ELECTION_TIMEOUTS,
	A_LATENCY,
	N_ACTIONS
};

static const unsigned action_weight[N_ACTIONS] = {
    [A_NOTHING] = 20,
    [A_CLIENTS] = 8,
    [A_PARTITION] = 9,
    [A_HEAL] = 6,
    [A_PAUSE] = 3,
    [A_RESUME] = 4,
    [A_STALL] = 4,
    [A_CRASH] = 3,
    [A_RESTART] = 4,
    [A_CLOCK_JUMP] = 7,
    [A_ELECTION_TIMEOUTS] = 2,
    [A_LATENCY] = 2,
};

/* Planned handovers come from a second stream (handover_rng), so that with
 * them turned off (TSO_SIM_HANDOVERS=0) every draw of the main stream is
 * what it was: the same schedule without its handovers. Before a
 * step's action, a handover is asked of a leader with probability
 * P_HANDOVER; during a stall, once another node leads, of that new leader
 * with probability P_STALL_HANDOVER: an operator moving leadership right
 * after a failover, while the new leader may still wait out the stalled
 * one's lease (the case where a release must not be made). */
#define P_HANDOVER       50
#define P_STALL_HANDOVER 500
/* Mixed leases: share of handovers asked to go to the long-lease node. */
#define P_HANDOVER_LONG  500

/* After its action, a step lets time pass with clients calling: a short
 * while (P_HOLD_SHORT), up to an election timeout (P_HOLD_MEDIUM), or up to
 * HOLD_LONG_ELECTIONS election timeouts, so that faults last long enough
 * for elections to happen behind a stale leader's back. */
#define P_HOLD_SHORT        550
#define P_HOLD_MEDIUM       300
#define HOLD_SHORT_MAX_MS   100
#define HOLD_LONG_ELECTIONS 4
/* After every fixture step, a client calls with this probability. */
#define P_CLIENT_PER_STEP   150
#define BURST_MAX           4
/* Clients prefer the nodes whose allocator believes it leads (a stale
 * leader among them), and so does the nemesis when it picks a target. */
#define P_PREFER_BELIEVER   600
/* Grant sizes: 1, small, up to a millisecond's worth, up to TA_MAX_GRANT. */
#define P_COUNT_ONE         500
#define P_COUNT_SMALL       300
#define P_COUNT_MS          150
#define COUNT_SMALL_MAX     1000

/* After the last step: everything healed, the cluster must serve within
 * LIVENESS_ELECTIONS election timeouts plus LIVENESS_LEASES leases. */
#define LIVENESS_ELECTIONS 20
#define LIVENESS_LEASES    4

/* Membership changes (sim_member.h) come from a third stream (member_rng),
 * for the same reason: with them off (TSO_SIM_MEMBERSHIP=0) a schedule is
 * what it was without them. P_MEMBERSHIP of the schedules have two spare
 * nodes and changes; before each of their steps a change is asked for with
 * probability P_MEMBER_CHANGE. */
#define P_MEMBERSHIP    500
#define P_MEMBER_CHANGE 150
/* The operator moves the oracle forward (tsoracle-ctl advance-to) in the
 * same schedules, from the same stream: before a step, with probability
 * P_ADVANCE, on a node that serves, to its wall clock plus 1 ms to half of
 * max-ahead (further would only make the end wait for the clocks). Where
 * the cluster version is below Advance's command set, it is raised first
 * (tsoracle-ctl cluster-version raise). */
#define P_ADVANCE       50
/* Command set 3 (tsoracle.h, I4: the wait owed in the log): in P_RAISE of
 * the schedules, drawn from their own stream (seeded "mixlease") as the
 * mixed leases are, and in every one with mixed leases, the cluster
 * version is raised to 3 as soon as a node serves (tsoracle-ctl
 * cluster-version raise), asked again until it is; with mixed leases
 * before any fault (unsafe below 3), in the others while they come. */
#define P_RAISE         800

typedef struct sim_schedule {
	sim_rng rng;
	sim_rng handover_rng;
	sim_rng member_rng;
	bool handovers;
	bool membership;
	sim_members members;
	bool advance_pending; /* the operator waits for a node that serves */
	bool raise_pending;   /* the cluster version is to be raised to 3 (P_RAISE) */
	sim_cluster c;
	sim_check check;
	unsigned step;
	bool stop_at_failure;
	sim_result *res;
} sim_schedule;

static bool sim_stop(const sim_schedule *s)
{
	return s->stop_at_failure && s->check.failed;
}

static unsigned sim_pick(sim_schedule *s, unsigned n)
{
	return (unsigned)sim_rng_below(&s->rng, n);
}

static unsigned sim_range_u(sim_schedule *s, unsigned lo, unsigned hi)
{
	return sim_rng_range_u(&s->rng, lo, hi);
}

static unsigned sim_random_election_timeout(sim_schedule *s, unsigned i)
{
	return sim_params_election_timeout(&s->rng, &s->c.p, i);
}

/* Records the step in which each property first broke. */
static void sim_note_failure(sim_schedule *s)
{
	sim_result *res = s->res;

	if (!res->failed) {
		res->failed = true;
		res->first_step = s->step;
	}
	for (int p = 0; p < SIM_N_PROPERTIES; p++) {
		if (s->check.violations[p] > 0 && !res->broke[p]) {
			res->broke[p] = true;
			res->broke_at_step[p] = s->step;
		}
	}
}

/* ---- clients ---------------------------------------------------------------- */

/* A node that is up and whose allocator believes it leads, or any node that
 * is up; n if none is up. */
static unsigned sim_pick_up_node(sim_schedule *s, bool prefer_believer)
{
	unsigned up[SIM_MAX_NODES], believers[SIM_MAX_NODES];
	unsigned n_up = 0, n_believers = 0;

	for (unsigned i = 0; i < s->c.n; i++) {
		if (s->c.proc[i] != SIM_UP)
			continue;
		up[n_up++] = i;
		if (sim_node_driver(&s->c.nodes[i])->alloc.epoch != 0)
			believers[n_believers++] = i;
	}
	if (prefer_believer && n_believers > 0 && sim_rng_chance(&s->rng, P_PREFER_BELIEVER))
		return believers[sim_pick(s, n_believers)];
	return n_up == 0 ? s->c.n : up[sim_pick(s, n_up)];
}

static uint32_t sim_pick_count(sim_schedule *s)
{
	unsigned r = sim_pick(s, PERMILLE);

	if (r < P_COUNT_ONE)
		return 1;
	if (r < P_COUNT_ONE + P_COUNT_SMALL)
		return sim_range_u(s, 2, COUNT_SMALL_MAX);
	if (r < P_COUNT_ONE + P_COUNT_SMALL + P_COUNT_MS)
		return sim_range_u(s, COUNT_SMALL_MAX + 1, (unsigned)TSO_LOGICAL_PER_MS);
	return sim_range_u(s, (unsigned)TSO_LOGICAL_PER_MS + 1, TA_MAX_GRANT);
}

/* One client call to node i; true if it was served. */
static bool sim_client_call(sim_schedule *s, unsigned i, uint32_t count)
{
	sim_node *n = &s->c.nodes[i];
	uint64_t first = 0;
	ta_clock clk = sim_node_clock(n);
	int rc = sim_node_grant(n, count, &first);

	if (rc != TA_OK) {
		if (rc != TA_NOT_LEADER)
			SIM_TRACE("%6" PRIu64 " n%u grant %u: %s (wall %" PRIu64 ", mono %" PRIu64 ")",
				  s->c.now_ms, i, count, ta_result_str(rc), clk.wall_ms, clk.mono_ms);
		return false;
	}
	SIM_TRACE("%6" PRIu64 " n%u grant %u -> [%" PRIu64 " = %" PRIu64 ".%" PRIu32 ", +%u) (wall %" PRIu64
		  ", mono %" PRIu64 ", H %" PRIu64 ")",
		  s->c.now_ms, i, count, first, tso_physical(first), tso_logical(first), count, clk.wall_ms,
		  clk.mono_ms, sim_node_driver(n)->alloc.high_water_ms);
	if (sim_check_grant(&s->check, i, s->c.now_ms, first, count) != 0)
		sim_note_failure(s);
	if (sim_check_removed_grant(&s->check, i, s->c.now_ms, sim_node_driver(n)->alloc.epoch) != 0)
		sim_note_failure(s);
	sim_cluster_check_servers(&s->c);
	if (s->check.failed)
		sim_note_failure(s);
	return true;
}

static void sim_client(sim_schedule *s)
{
	unsigned i = sim_pick_up_node(s, true);

	if (i < s->c.n)
		sim_client_call(s, i, sim_pick_count(s));
}

/* An operator's command in flight: what to record once it is applied. */
typedef struct sim_admin {
	sim_schedule *s;
	uint64_t floor_ms; /* 0: a cluster version raise */
} sim_admin;

/* lead_admin_cb: exactly once, applied (0) or not. */
static void sim_admin_cb(void *arg, int status)
{
	sim_admin *x = arg;

	if (status == 0 && x->floor_ms != 0)
		sim_check_floor(&x->s->check, x->s->c.f.time, x->floor_ms);
	free(x);
}

/* The first node that is up and serves, and a new operator's command
 * for it (floor 0); false if none serves now. */
static bool sim_operator_pick(sim_schedule *s, unsigned *node, sim_admin **cmd)
{
	unsigned i;
	sim_admin *x;

	for (i = 0; i < s->c.n; i++)
		if (s->c.proc[i] == SIM_UP &&
		    lead_serving(sim_node_driver(&s->c.nodes[i]), sim_node_clock(&s->c.nodes[i])))
			break;
	if (i == s->c.n)
		return false;
	x = malloc(sizeof *x);
	if (x == NULL) {
		fprintf(stderr, "sim: out of memory\n");
		exit(2);
	}
	x->s = s;
	x->floor_ms = 0;
	*node = i;
	*cmd = x;
	return true;
}

/* Asks the first node that serves for the operator's command; false if
 * none serves now. */
static bool sim_operator_advance(sim_schedule *s)
{
	unsigned i;
	sim_node *nd;
	ta_clock clk;
	sim_admin *x;
	uint64_t value;
	int rc;

	if (!sim_operator_pick(s, &i, &x))
		return false;
	nd = &s->c.nodes[i];
	clk = sim_node_clock(nd);
	x->floor_ms = clk.wall_ms + 1 + sim_rng_below(&s->member_rng, s->c.p.alloc.max_ahead_ms / 2);
	rc = lead_advance(sim_node_driver(nd), clk, x->floor_ms, s->c.p.alloc.max_ahead_ms, &value,
			  sim_admin_cb, x);
	if (rc == LEAD_ADMIN_VERSION) {
		x->floor_ms = 0;
		rc = lead_set_cluster_version(sim_node_driver(nd), clk, FSM_COMMAND_SET, &value, sim_admin_cb,
					      x);
	}
	SIM_TRACE_KEY("%6" PRIu64 " operator: n%u %s %" PRIu64 " (%d)", s->c.now_ms, i,
		      x->floor_ms != 0 ? "advance-to" : "cluster-version raise to",
		      x->floor_ms != 0 ? x->floor_ms : (uint64_t)FSM_COMMAND_SET, rc);
	if (rc != LEAD_ADMIN_STARTED)
		free(x);
	return true;
}

/* The operator raises the cluster version to 3 on the first node that
 * serves (P_RAISE), until a leader answers that it is there already. */
static void sim_raise_version(sim_schedule *s)
{
	unsigned i;
	sim_admin *x;
	uint64_t value;
	int rc;

	if (!sim_operator_pick(s, &i, &x))
		return;
	rc = lead_set_cluster_version(sim_node_driver(&s->c.nodes[i]), sim_node_clock(&s->c.nodes[i]),
				      FSM_COMMAND_SET_LEASE, &value, sim_admin_cb, x);
	if (rc != LEAD_ADMIN_STARTED)
		free(x);
	if (rc == LEAD_ADMIN_BACKWARDS)
		s->raise_pending = false;
	else
		SIM_TRACE_KEY("%6" PRIu64 " operator: n%u cluster-version raise to %d (%d)", s->c.now_ms, i,
			      FSM_COMMAND_SET_LEASE, rc);
}

/* Runs the cluster for ms of true time, with clients. */
static void sim_advance(sim_schedule *s, uint64_t ms)
{
	uint64_t until = s->c.now_ms + ms;

	while (s->c.now_ms < until && !sim_stop(s)) {
		sim_cluster_step(&s->c);
		if (sim_rng_chance(&s->rng, P_CLIENT_PER_STEP))
			sim_client(s);
		if (s->advance_pending && sim_operator_advance(s))
			s->advance_pending = false;
	}
}

/* ---- the nemesis ------------------------------------------------------------- */

static void sim_clear_cuts(sim_schedule *s)
{
	memset(s->c.cut, 0, sizeof s->c.cut);
}

/* Cuts every link of node x: in, out or both. */
static void sim_isolate(sim_schedule *s, unsigned x, bool in, bool out)
{
	for (unsigned j = 0; j < s->c.n; j++) {
		if (j == x)
			continue;
		s->c.cut[x][j] = out;
		s->c.cut[j][x] = in;
	}
}

enum partition_kind { PART_ISOLATE, PART_ISOLATE_IN, PART_ISOLATE_OUT, PART_SPLIT, PART_ONE_LINK, N_PARTS };

static void sim_partition(sim_schedule *s)
{
	unsigned n = s->c.n;
	unsigned x = sim_pick_up_node(s, true);
	enum partition_kind kind = (enum partition_kind)sim_pick(s, N_PARTS);

	if (x == n)
		x = sim_pick(s, n);
	if (kind != PART_ONE_LINK)
		sim_clear_cuts(s);
	switch (kind) {
	case PART_ISOLATE:
		sim_isolate(s, x, true, true);
		SIM_TRACE_KEY("%6" PRIu64 " nemesis: isolate n%u", s->c.now_ms, x);
		break;
	case PART_ISOLATE_IN:
		sim_isolate(s, x, true, false);
		SIM_TRACE_KEY("%6" PRIu64 " nemesis: n%u hears nobody (it still sends)", s->c.now_ms, x);
		break;
	case PART_ISOLATE_OUT:
		sim_isolate(s, x, false, true);
		SIM_TRACE_KEY("%6" PRIu64 " nemesis: nobody hears n%u (it still receives)", s->c.now_ms, x);
		break;
	case PART_SPLIT: {
		bool side[SIM_MAX_NODES];
		char desc[2 * SIM_MAX_NODES + 1] = {0};

		for (unsigned i = 0; i < n; i++) {
			side[i] = sim_rng_chance(&s->rng, PERMILLE / 2);
			desc[i] = side[i] ? 'A' : 'B';
		}
		for (unsigned i = 0; i < n; i++)
			for (unsigned j = 0; j < n; j++)
				s->c.cut[i][j] = side[i] != side[j];
		SIM_TRACE_KEY("%6" PRIu64 " nemesis: split, sides %s (n0 first)", s->c.now_ms, desc);
		break;
	}
	default: {
		unsigned y = (x + 1 + sim_pick(s, n - 1)) % n;
		bool both = sim_rng_chance(&s->rng, PERMILLE / 2);

		s->c.cut[x][y] = true;
		if (both)
			s->c.cut[y][x] = true;
		SIM_TRACE_KEY("%6" PRIu64 " nemesis: cut n%u -> n%u%s", s->c.now_ms, x, y,
			      both ? " both ways" : "");
		break;
	}
	}
	sim_cluster_apply_links(&s->c);
}

/* A node in process state proc, preferring believers when asked; n if none. */
static unsigned sim_pick_in(sim_schedule *s, enum sim_proc proc, bool prefer_believer)
{
	unsigned cand[SIM_MAX_NODES];
	unsigned k = 0;

	if (proc == SIM_UP)
		return sim_pick_up_node(s, prefer_believer);
	for (unsigned i = 0; i < s->c.n; i++)
		if (s->c.proc[i] == proc && (proc != SIM_CRASHED || sim_cluster_can_restart(&s->c, i)))
			cand[k++] = i;
	return k == 0 ? s->c.n : cand[sim_pick(s, k)];
}

/* A year forward only with the clock check on (followed, it would make the
 * end's catch-up take a simulated year), and only while no other node's
 * clock is a year off too: two nodes whose clocks agree on the year are a
 * majority of three, which the check follows (a shared bad NTP source
 * would do that; two independent jumps to the same ms would not). */
static bool sim_year_jump_allowed(const sim_schedule *s, unsigned i)
{
	if (s->c.p.max_clock_offset_ms == 0)
		return false;
	for (unsigned j = 0; j < s->c.n; j++)
		if (j != i && sim_cluster_recent_offset(
				  &s->c, j, LEAD_CLOCK_SAMPLE_TTL_MS + LEAD_CLOCK_PROBE_MS) > YEAR_MS / 2)
			return false;
	return true;
}

static void sim_clock_jump(sim_schedule *s)
{
	unsigned i = sim_pick(s, s->c.n);
	unsigned r = sim_pick(s, PERMILLE);
	int64_t offset;

	if (r < P_RESYNC)
		offset = 0;
	else if (r < P_RESYNC + P_JUMP_YEAR && sim_year_jump_allowed(s, i))
		offset = YEAR_MS;
	else if (r < P_RESYNC + P_JUMP_YEAR + P_JUMP_TEN)
		offset = sim_rng_chance(&s->rng, PERMILLE / 2) ? TEN_S_MS : -TEN_S_MS;
	else
		offset = (int64_t)sim_rng_below(&s->rng, 2 * JUMP_MAX_MS + 1) - (int64_t)JUMP_MAX_MS;
	sim_cluster_set_offset(&s->c, i, offset);
	SIM_TRACE_KEY("%6" PRIu64 " nemesis: n%u wall clock offset now %+" PRId64 " ms", s->c.now_ms, i,
		      offset);
}

/* Resumes node i, which first serves the client calls that queued up while
 * it was stopped (before any Raft message: libuv may run them first). */
static void sim_wake(sim_schedule *s, unsigned i)
{
	sim_cluster_resume(&s->c, i);
	for (unsigned k = sim_range_u(s, 1, BURST_MAX); k > 0 && !sim_stop(s); k--)
		sim_client_call(s, i, sim_pick_count(s));
}

/* A planned handover (tsoracle-ctl transfer-leader, or SIGTERM on the
 * leader) asked of node i, to another member or to Raft's pick. */
static void sim_transfer_from(sim_schedule *s, unsigned i)
{
	int target = (int)sim_rng_below(&s->handover_rng, s->c.n + 1) - 1;

	/* With mixed leases, often to the node with the long lease: with its
	 * long election timeout it seldom wins an election, and it is as
	 * leader, cut off or stalled, that it tests the wait in the log. */
	if (s->c.p.mixed && sim_rng_chance(&s->handover_rng, P_HANDOVER_LONG))
		target = (int)s->c.p.long_node;

	if (target == (int)i)
		target = -1;
	SIM_TRACE_KEY("%6" PRIu64 " nemesis: n%u asked to hand over to %s%d", s->c.now_ms, i,
		      target < 0 ? "any" : "n", target < 0 ? 0 : target);
	(void)sim_node_transfer(&s->c.nodes[i], target);
}

/* A node that is up and that raft says leads, other than except, and if
 * fencing, whose driver has begun its term (ta_lead_begin); n if none. */
static unsigned sim_pick_raft_leader(sim_schedule *s, unsigned except, bool fencing)
{
	unsigned leaders[SIM_MAX_NODES], k = 0;

	for (unsigned i = 0; i < s->c.n; i++)
		if (i != except && s->c.proc[i] == SIM_UP && raft_state(s->c.nodes[i].raft) == RAFT_LEADER &&
		    (!fencing || sim_node_driver(&s->c.nodes[i])->alloc.epoch != 0))
			leaders[k++] = i;
	return k == 0 ? s->c.n : leaders[sim_rng_below(&s->handover_rng, k)];
}

/* Lets ms pass with clients; if another node than i comes to lead
 * meanwhile, asks it to hand over as soon as it has begun its term (so,
 * often, during its new-leader wait), then lets the rest pass. */
static void sim_advance_handing_over(sim_schedule *s, unsigned i, uint64_t ms)
{
	uint64_t until = s->c.now_ms + ms;
	unsigned j;

	while (s->c.now_ms < until && !sim_stop(s)) {
		sim_advance(s, 1);
		if ((j = sim_pick_raft_leader(s, i, true)) < s->c.n) {
			sim_transfer_from(s, j);
			break;
		}
	}
	if (s->c.now_ms < until)
		sim_advance(s, until - s->c.now_ms);
}

/* A process stall (GC, a VM frozen, SIGSTOP then SIGCONT) of up to a few
 * leases: the others may elect a new leader meanwhile, and the stalled one
 * wakes up still believing it leads, its lease maybe not over. */
static void sim_stall(sim_schedule *s, unsigned i)
{
	uint64_t lease = s->c.p.lease_ms[i]; /* the stalled node's own */
	uint64_t et = s->c.p.election_timeout_ms;

	uint64_t hold;

	sim_cluster_pause(&s->c, i);
	/* Half of the stalls last long enough for an election (at least one
	 * election timeout) and often not longer than the stalled leader's
	 * lease: the case the new-leader wait is for. */
	if (sim_rng_chance(&s->rng, PERMILLE / 2))
		hold = sim_rng_range(&s->rng, 1, lease);
	else
		hold = sim_rng_range(&s->rng, et, et + lease);
	if (s->handovers && sim_rng_chance(&s->handover_rng, P_STALL_HANDOVER))
		sim_advance_handing_over(s, i, hold);
	else
		sim_advance(s, hold);
	if (s->c.proc[i] == SIM_PAUSED)
		sim_wake(s, i);
}

static unsigned sim_hold_ms(sim_schedule *s)
{
	unsigned et = s->c.p.election_timeout_ms;
	unsigned r = sim_pick(s, PERMILLE);

	if (r < P_HOLD_SHORT)
		return sim_range_u(s, 1, HOLD_SHORT_MAX_MS);
	if (r < P_HOLD_SHORT + P_HOLD_MEDIUM)
		return sim_range_u(s, HOLD_SHORT_MAX_MS, et);
	return sim_range_u(s, et, HOLD_LONG_ELECTIONS * et);
}

static void sim_step(sim_schedule *s)
{
	unsigned total = 0, r;
	enum action a = A_NOTHING;
	unsigned n = s->c.n;
	unsigned i;

	if (s->raise_pending) {
		sim_raise_version(s);
		/* Mixed leases are safe only from cluster version 3 on
		 * (docs/cluster.md): as an operator would, the schedule raises
		 * it before any fault. */
		if (s->c.p.mixed) {
			sim_advance(s, s->c.p.election_timeout_ms);
			return;
		}
	}
	if (s->handovers && sim_rng_chance(&s->handover_rng, P_HANDOVER) &&
	    (i = sim_pick_raft_leader(s, n, false)) < n)
		sim_transfer_from(s, i);
	if (s->membership && sim_rng_chance(&s->member_rng, P_MEMBER_CHANGE))
		sim_members_start(&s->members);
	if (s->membership && sim_rng_chance(&s->member_rng, P_ADVANCE))
		s->advance_pending = true;
	for (int k = 0; k < N_ACTIONS; k++)
		total += action_weight[k];
	r = sim_pick(s, total);
	for (int k = 0; k < N_ACTIONS; k++) {
		if (r < action_weight[k]) {
			a = (enum action)k;
			break;
		}
		r -= action_weight[k];
	}
	switch (a) {
	case A_CLIENTS:
		for (unsigned k = sim_range_u(s, 1, BURST_MAX); k > 0 && !sim_stop(s); k--)
			sim_client(s);
		break;
	case A_PARTITION:
		sim_partition(s);
		break;
	case A_HEAL:
		sim_clear_cuts(s);
		sim_cluster_apply_links(&s->c);
		SIM_TRACE_KEY("%6" PRIu64 " nemesis: heal every link", s->c.now_ms);
		break;
	case A_PAUSE:
		if ((i = sim_pick_in(s, SIM_UP, true)) < n)
			sim_cluster_pause(&s->c, i);
		break;
	case A_RESUME:
		if ((i = sim_pick_in(s, SIM_PAUSED, false)) < n)
			sim_wake(s, i);
		break;
	case A_STALL:
		if ((i = sim_pick_in(s, SIM_UP, true)) < n)
			sim_stall(s, i);
		break;
	case A_CRASH:
		if ((i = sim_pick_in(s, SIM_UP, true)) < n)
			sim_cluster_crash(&s->c, i);
		break;
	case A_RESTART:
		if ((i = sim_pick_in(s, SIM_CRASHED, false)) < n)
			sim_cluster_restart(&s->c, i);
		break;
	case A_CLOCK_JUMP:
		sim_clock_jump(s);
		break;
	case A_ELECTION_TIMEOUTS:
		for (i = 0; i < n; i++)
			sim_cluster_set_election_timeout(&s->c, i, sim_random_election_timeout(s, i));
		SIM_TRACE_KEY("%6" PRIu64 " nemesis: new election timeouts", s->c.now_ms);
		break;
	case A_LATENCY:
		i = sim_pick(s, n);
		/* Network only: a new disk latency would let the fixture
		 * complete appends out of order (see sim_io.h). */
		raft_fixture_set_network_latency(&s->c.f, i, sim_range_u(s, 1, SIM_NET_LATENCY_MAX_MS));
		SIM_TRACE_KEY("%6" PRIu64 " nemesis: n%u network latency changed", s->c.now_ms, i);
		break;
	default:
		break;
	}
	sim_advance(s, sim_hold_ms(s));
	/* The clock and one-server properties are checked at proposals and
	 * steps (sim_cluster.c), not only at grants: note their first
	 * violations in the step they happened in. */
	if (s->check.failed)
		sim_note_failure(s);
}

/* ---- the end: heal everything, then the cluster must serve ----------------- */

static void sim_heal_all(sim_schedule *s)
{
	unsigned n = s->c.n;

	sim_clear_cuts(s);
	sim_cluster_apply_links(&s->c);
	for (unsigned i = 0; i < n; i++) {
		if (s->c.proc[i] == SIM_PAUSED)
			sim_cluster_resume(&s->c, i);
		sim_cluster_set_offset(&s->c, i, 0);
	}
	for (unsigned i = 0; i < n; i++) {
		/* Members only: a removed node stays down (wiped), a spare was
		 * never started. */
		if (s->c.proc[i] != SIM_CRASHED || s->c.member[i] != SIM_M_MEMBER)
			continue;
		/* Its removal may commit meanwhile (a replacement under way):
		 * then it stays down, and waiting for it would never end. */
		while (s->c.member[i] == SIM_M_MEMBER && !sim_cluster_can_restart(&s->c, i))
			sim_cluster_step(&s->c);
		if (s->c.member[i] == SIM_M_MEMBER)
			sim_cluster_restart(&s->c, i);
	}
	SIM_TRACE_KEY("%6" PRIu64 " end: every fault healed, clocks resynchronised", s->c.now_ms);
}

/* How long, in true time, until every node's wall clock is within
 * margin_ms of the cluster's highest committed mark, in ms: a leader whose
 * clock is more than max_ahead behind H waits for it to catch up
 * (docs/allocator.md, "How far ahead"), and a clock that runs slow
 * (skew_ppm < 0) takes longer than the ms it is behind. */
static uint64_t sim_catch_up_ms(sim_schedule *s, uint64_t margin_ms)
{
	uint64_t longest = 0;

	for (unsigned i = 0; i < s->c.n; i++) {
		const sim_node *nd = &s->c.nodes[i];

		if (s->c.member[i] != SIM_M_MEMBER)
			continue;
		uint64_t wall = sim_node_clock(nd).wall_ms;
		uint64_t reach = wall + margin_ms;
		uint64_t behind = s->check.committed_max_ms > reach ? s->check.committed_max_ms - reach : 0;
		/* behind / rate, rate = 1 + skew_ppm / 10^6 (> 0), rounded up;
		 * a wall clock at the true rate: 1 */
		uint64_t rate_ppm =
		    nd->clock->wall_true_rate ? SIM_PPM : (uint64_t)((int64_t)SIM_PPM + nd->clock->skew_ppm);
		uint64_t t = (behind * SIM_PPM + rate_ppm - 1) / rate_ppm;

		if (t > longest)
			longest = t;
	}
	return longest;
}

/* Describes each node's Raft state: role, term, last log index. */
static void sim_describe_raft(sim_schedule *s, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (unsigned i = 0; i < s->c.n && used < len; i++) {
		struct raft *r = s->c.nodes[i].raft;
		raft_index last = raft_last_index(r);
		int k = snprintf(buf + used, len - used, "%sn%u %s term %llu last index %llu",
				 i == 0 ? "" : ", ", i, raft_state_name(raft_state(r)),
				 (unsigned long long)raft_current_term(r), (unsigned long long)last);

		if (k < 0)
			break;
		used += (size_t)k;
	}
}

/* After healing, something must be served within the bound: elections (the
 * fixture draws each node's election timeout once, so the timeouts are
 * drawn again every election timeout, as libraft would for each election),
 * a barrier and a fence, the new-leader wait, and the wall clock catching
 * up with H (with a mark learnt later, as a fence committed before the
 * healing but applied after it: up to within max_ahead of it). If Raft itself elects no leader, that is
 * libraft's liveness; it fails the schedule too (the daemon links the same, patched, library) and is also
 * counted apart (the result's raft_stuck). */
static void sim_check_liveness(sim_schedule *s)
{
	uint64_t et = sim_params_max_election(&s->c.p);
	uint64_t base = LIVENESS_ELECTIONS * et + LIVENESS_LEASES * sim_params_max_lease(&s->c.p) * 2;
	uint64_t start = s->c.now_ms;
	uint64_t until = start + base + sim_catch_up_ms(s, 0);
	uint64_t redraw = s->c.now_ms;
	bool raft_leader = false;
	char msg[SIM_CHECK_MSG];
	char state[SIM_CHECK_MSG];

	while (s->c.now_ms < until && !sim_stop(s)) {
		if (s->c.now_ms >= redraw) {
			for (unsigned i = 0; i < s->c.n; i++)
				sim_cluster_set_election_timeout(&s->c, i, sim_random_election_timeout(s, i));
			redraw = s->c.now_ms + et;
		}
		sim_cluster_step(&s->c);
		if (s->c.now_ms + base + sim_catch_up_ms(s, s->c.p.alloc.max_ahead_ms) > until)
			until = s->c.now_ms + base + sim_catch_up_ms(s, s->c.p.alloc.max_ahead_ms);
		for (unsigned i = 0; i < s->c.n; i++) {
			raft_leader = raft_leader || raft_state(s->c.nodes[i].raft) == RAFT_LEADER;
			if (sim_client_call(s, i, 1))
				return;
		}
	}
	if (sim_stop(s))
		return;
	sim_describe_raft(s, state, sizeof state);
	if (!raft_leader) {
		/* libraft's own liveness, but the daemon links it (patched:
		 * docs/simulation.md, Findings): a failure all the same. */
		s->res->raft_stuck = true;
		snprintf(msg, sizeof msg,
			 "liveness: libraft elected no leader within %" PRIu64
			 " ms of healing every fault (%s)",
			 until - start, state);
	} else {
		snprintf(msg, sizeof msg,
			 "liveness: nothing served within %" PRIu64 " ms of healing every fault (%s)",
			 until - start, state);
	}
	sim_check_fail(&s->check, SIM_P_LIVENESS, msg);
	sim_note_failure(s);
}

void sim_schedule_run(uint64_t seed, unsigned steps, bool handovers, bool membership, bool stop_at_failure,
		      sim_result *res)
{
	static sim_schedule s; /* large: not on the stack */
	sim_params p;
	sim_rng mix_rng;
	unsigned timeouts[SIM_MAX_NODES];

	memset(res, 0, sizeof *res);
	s.res = res;
	s.stop_at_failure = stop_at_failure;
	s.step = 0;
	sim_rng_seed(&s.rng, seed);
	sim_rng_seed(&s.handover_rng, seed ^ UINT64_C(0x68616e646f766572)); /* "handover" */
	sim_rng_seed(&s.member_rng, seed ^ UINT64_C(0x6d656d6265727321));   /* "members!" */
	s.handovers = handovers;
	sim_check_reset(&s.check); /* s is static: the value set's memory is reused */
	sim_params_pick(&s.rng, &p, s.c.clocks);
	sim_rng_seed(&mix_rng, seed ^ UINT64_C(0x6d69786c65617365)); /* "mixlease" */
	sim_params_pick_leases(&mix_rng, &p);
	s.raise_pending = sim_rng_chance(&mix_rng, P_RAISE) || p.mixed;
	for (unsigned i = 0; i < p.n; i++)
		timeouts[i] = sim_params_election_timeout(&s.rng, &p, i);
	s.membership = membership && sim_rng_chance(&s.member_rng, P_MEMBERSHIP);
	if (s.membership) {
		sim_params_pick_spares(&s.member_rng, &p, s.c.clocks);
		for (unsigned i = p.n; i < p.n + p.spares; i++)
			timeouts[i] = sim_params_election_timeout(&s.member_rng, &p, i);
	}
	sim_cluster_init(&s.c, &p, timeouts, &s.check);
	sim_members_init(&s.members, &s.c, &s.member_rng);
	s.advance_pending = false;
	SIM_TRACE_KEY("seed %" PRIu64 ": %u nodes, election timeout %u ms, heartbeat %u ms, lease %" PRIu64
		      " ms, drift %u permille, window %" PRIu64 "/%" PRIu64 "/%" PRIu64
		      " ms, snapshots %u/%u",
		      seed, p.n, p.election_timeout_ms, p.heartbeat_ms, p.alloc.lease_ms,
		      p.alloc.drift_permille, p.alloc.window_ahead_ms, p.alloc.extend_margin_ms,
		      p.alloc.max_ahead_ms, p.snapshot_threshold, p.snapshot_trailing);
	for (unsigned i = 0; p.mixed && i < p.n; i++)
		SIM_TRACE_KEY("  n%u: lease %" PRIu64 " ms, election timeout %u ms", i, p.lease_ms[i],
			      p.election_ms[i]);
	res->mixed = p.mixed;
	res->raise = s.raise_pending;

	for (s.step = 0; s.step < steps && !sim_stop(&s); s.step++)
		sim_step(&s);
	/* After a clock violation marks may be a year ahead: waiting for the
	 * clocks to catch up would take a simulated year, and says nothing. */
	if (!sim_stop(&s) && s.check.violations[SIM_P_CLOCK] == 0) {
		sim_heal_all(&s);
		sim_check_liveness(&s);
	}

	res->version3 = fsm_cluster_version(&s.c.fsm_states[0]) >= FSM_COMMAND_SET_LEASE;
	for (unsigned i = 1; i < p.n; i++)
		res->version3 =
		    res->version3 || fsm_cluster_version(&s.c.fsm_states[i]) >= FSM_COMMAND_SET_LEASE;
	res->first = s.check.first;
	memcpy(res->first_msg, s.check.first_msg, sizeof res->first_msg);
	memcpy(res->violations, s.check.violations, sizeof res->violations);
	res->nodes = p.n;
	res->membership = s.membership;
	res->advances = s.check.advances;
	res->members = s.members.n;
	res->fixture_steps = s.c.n_steps;
	res->simulated_ms = s.c.now_ms;
	res->grants = s.check.grants;
	res->timestamps = s.check.timestamps;
	res->restarts = s.c.n_restarts;
	for (unsigned i = 0; i < p.n; i++)
		sim_node_add_counters(&s.c.nodes[i], &s.c.retired);
	res->fences = s.c.retired.fences;
	res->apply_errors = s.c.retired.refused_proposals;
	res->handovers = s.c.retired.handovers;
	res->releases = s.c.retired.released_handovers;
	res->released_leads = s.c.retired.released_fences;
	sim_cluster_close(&s.c);
}
