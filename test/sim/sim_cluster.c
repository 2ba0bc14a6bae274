/* sim_cluster.c: N simulated tsoracled on libraft's fixture: links, pauses, crashes and restarts. */
#include "sim_cluster.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_io.h"
#include "sim_params.h"
#include "sim_trace.h"

#define SIM_PERMILLE          1000
/* Entries a bootstrapped server holds: its configuration. */
#define SIM_BOOTSTRAP_ENTRIES 1
/* The fixture names server i "i + 1" (its id, printed). */
#define SIM_ADDRESS_LEN       16

static void sim_cluster_die(const char *what, int rv)
{
	fprintf(stderr, "sim: %s: %s\n", what, raft_strerror(rv));
	exit(2);
}

/* The settings node.c gives raft (node_init), from the schedule's params:
 * node i's own election timeout. */
static void sim_cluster_configure(sim_cluster *c, struct raft *r, unsigned i)
{
	raft_set_election_timeout(r, c->p.election_ms[i]);
	raft_set_heartbeat_timeout(r, c->p.heartbeat_ms);
	raft_set_snapshot_threshold(r, c->p.snapshot_threshold);
	raft_set_snapshot_trailing(r, c->p.snapshot_trailing);
	raft_set_pre_vote(r, true);
	/* No tracer: libraft formats every trace message whenever one is set,
	 * and the fixture's prints its info messages to stderr. */
	r->tracer = NULL;
}

/* An election timeout of twice the tick: the smallest raft accepts. */
#define SIM_METRONOME_ELECTION_MS (2 * SIM_METRONOME_MS)

static void sim_cluster_add_metronome(sim_cluster *c)
{
	unsigned m = c->n;
	struct raft *r;
	int rv;

	fsm_init(&c->fsms[m], &c->fsm_states[m]);
	rv = raft_fixture_grow(&c->f, &c->fsms[m]);
	if (rv != 0)
		sim_cluster_die("raft_fixture_grow (metronome)", rv);
	r = raft_fixture_get(&c->f, m);
	raft_set_election_timeout(r, SIM_METRONOME_ELECTION_MS);
	raft_set_heartbeat_timeout(r, SIM_METRONOME_MS); /* its tick */
	r->tracer = NULL;
	raft_fixture_set_randomized_election_timeout(&c->f, m, SIM_METRONOME_ELECTION_MS);
}

static void sim_cluster_check_mark(void *arg, unsigned node, uint64_t mark, uint64_t high_water_ms);

void sim_cluster_init(sim_cluster *c, const sim_params *p, const unsigned *election_timeouts,
		      sim_check *check)
{
	struct raft_configuration conf;
	char address[SIM_ADDRESS_LEN];
	int rv;

	/* clocks are the caller's: keep them across the reset. */
	sim_clock clocks[SIM_MAX_NODES];

	memcpy(clocks, c->clocks, sizeof clocks);
	memset(c, 0, sizeof *c);
	memcpy(c->clocks, clocks, sizeof clocks);
	c->p = *p;
	c->n = p->n + p->spares;
	c->check = check;
	sim_io_reset();
	rv = raft_fixture_init(&c->f);
	if (rv != 0)
		sim_cluster_die("raft_fixture_init", rv);
	for (unsigned i = 0; i < c->n; i++) {
		fsm_init(&c->fsms[i], &c->fsm_states[i]);
		rv = raft_fixture_grow(&c->f, &c->fsms[i]);
		if (rv != 0)
			sim_cluster_die("raft_fixture_grow", rv);
		sim_cluster_configure(c, raft_fixture_get(&c->f, i), i);
		raft_fixture_set_randomized_election_timeout(&c->f, i, election_timeouts[i]);
		raft_fixture_set_network_latency(&c->f, i, p->net_latency_ms[i]);
		raft_fixture_set_disk_latency(&c->f, i, p->disk_latency_ms[i]);
	}
	sim_cluster_add_metronome(c);
	/* The n nodes, as voters; not the metronome. */
	raft_configuration_init(&conf);
	for (unsigned i = 0; i < p->n; i++) {
		struct raft *r = raft_fixture_get(&c->f, i);

		snprintf(address, sizeof address, "%llu", (unsigned long long)r->id);
		rv = raft_configuration_add(&conf, r->id, address, RAFT_VOTER);
		if (rv != 0)
			sim_cluster_die("raft_configuration_add", rv);
	}
	for (unsigned i = 0; i < p->n && rv == 0; i++)
		rv = raft_bootstrap(raft_fixture_get(&c->f, i), &conf);
	raft_configuration_close(&conf);
	if (rv != 0)
		sim_cluster_die("raft_bootstrap", rv);
	for (unsigned i = 0; i < c->n; i++)
		sim_io_wrap(raft_fixture_get(&c->f, i), i < p->n ? SIM_BOOTSTRAP_ENTRIES : 0);
	rv = raft_fixture_start(&c->f);
	if (rv != 0)
		sim_cluster_die("raft_fixture_start", rv);
	c->now_ms = c->f.time;
	/* The spares are not running until sim_cluster_join; the voters' first
	 * committed configuration is the bootstrap's, at index 1. */
	for (unsigned i = 0; i < c->n; i++) {
		c->member[i] = i < p->n ? SIM_M_MEMBER : SIM_M_SPARE;
		c->seen_index[i] = i < p->n ? SIM_BOOTSTRAP_ENTRIES : 0;
		if (i >= p->n) {
			raft_fixture_kill(&c->f, i);
			c->proc[i] = SIM_CRASHED;
		}
	}
	if (p->spares > 0)
		sim_cluster_apply_links(c);
	for (unsigned i = 0; i < c->n; i++) {
		ta_config cfg;

		sim_params_node_alloc(p, i, &cfg);
		sim_node_init(&c->nodes[i], i, raft_fixture_get(&c->f, i), &c->fsm_states[i], &c->clocks[i],
			      &c->now_ms, &cfg, p->max_clock_offset_ms);
		c->nodes[i].check_mark = sim_cluster_check_mark;
		c->nodes[i].check_arg = c;
	}
}

/* ---- the clock check: measurements and the property ------------------------ */

/*
 * clockprobe.c, simulated: every LEAD_CLOCK_PROBE_MS, each node that is up
 * reads the wall clock of each other node it can reach (both up, no cut
 * either way), at this moment, with a round trip of their two latencies.
 */
static void sim_cluster_probe(sim_cluster *c)
{
	if (c->p.max_clock_offset_ms == 0 || c->now_ms < c->next_probe_ms)
		return;
	c->next_probe_ms = c->now_ms + LEAD_CLOCK_PROBE_MS;
	for (unsigned i = 0; i < c->n; i++) {
		ta_clock own = sim_node_clock(&c->nodes[i]);

		if (c->proc[i] != SIM_UP)
			continue;
		for (unsigned j = 0; j < c->n; j++) {
			if (j == i || c->proc[j] != SIM_UP || c->cut[i][j] || c->cut[j][i])
				continue;
			lead_clock_sample_add(sim_node_driver(&c->nodes[i]), (uint64_t)j + 1,
					      sim_node_clock(&c->nodes[j]).wall_ms, own.mono_ms,
					      (uint64_t)c->p.net_latency_ms[i] + c->p.net_latency_ms[j]);
		}
	}
}

void sim_cluster_set_offset(sim_cluster *c, unsigned i, int64_t offset_ms)
{
	sim_offset_change *h = &c->offset_history[i][c->offset_changes[i] % SIM_OFFSET_HISTORY];

	h->at_ms = c->now_ms;
	h->before_ms = c->clocks[i].offset_ms;
	c->offset_changes[i]++;
	c->clocks[i].offset_ms = offset_ms;
}

/* The highest offset node i's wall clock had at any time in the last
 * window_ms (its readings within the window may stand for it now). */
int64_t sim_cluster_recent_offset(const sim_cluster *c, unsigned i, uint64_t window_ms)
{
	int64_t high = c->clocks[i].offset_ms;
	unsigned n = c->offset_changes[i] < SIM_OFFSET_HISTORY ? c->offset_changes[i] : SIM_OFFSET_HISTORY;

	for (unsigned k = 0; k < n; k++) {
		const sim_offset_change *h = &c->offset_history[i][k];

		if (h->at_ms + window_ms >= c->now_ms && h->before_ms > high)
			high = h->before_ms;
	}
	return high;
}

/*
 * The clock property (SIM_P_CLOCK): no HighWater is proposed more than
 * max_ahead + max_clock_offset past the clock of a majority, nor past the
 * proposer's own H + 1 (a fence must clear what is committed, wherever it
 * is). "The clock of a majority": the quorum-th highest of the nodes' wall
 * clocks, each at its highest within the age a measurement may have
 * (LEAD_CLOCK_SAMPLE_TTL_MS and a probe interval), plus what the
 * monotonic clock's skew may add to an estimate over that age. A leader
 * whose clock a majority supports is within max_clock_offset of that, and
 * a leader that follows a clock they do not support (the check off) is
 * caught here. Wall clocks run at the true rate in these schedules.
 */
static void sim_cluster_check_mark(void *arg, unsigned node, uint64_t mark, uint64_t high_water_ms)
{
	sim_cluster *c = arg;
	uint64_t window = LEAD_CLOCK_SAMPLE_TTL_MS + LEAD_CLOCK_PROBE_MS;
	int64_t recent[SIM_MAX_NODES];
	const struct raft_configuration *conf = &c->nodes[node].raft->configuration;
	unsigned voters = 0, quorum;
	uint64_t slack = window * c->p.alloc.drift_permille / 1000 + 1;
	int64_t majority;
	uint64_t bound;
	char msg[SIM_CHECK_MSG];

	if (c->p.max_clock_offset_ms == 0)
		return;
	/* The voters of the proposer's configuration (the ones its clock check
	 * counts: lead_clock.c). */
	for (unsigned i = 0; i < c->n; i++) {
		int64_t v = sim_cluster_recent_offset(c, i, window);
		unsigned k = voters;

		if (!sim_conf_voter(conf, sim_cluster_id(i)))
			continue;
		for (; k > 0 && recent[k - 1] < v; k--) /* descending */
			recent[k] = recent[k - 1];
		recent[k] = v;
		voters++;
	}
	if (voters == 0)
		return;
	quorum = voters / 2 + 1;
	majority = (int64_t)c->clocks[0].wall_base_ms + (int64_t)c->now_ms + recent[quorum - 1];
	/* The operator's floor (advance-to) moves the oracle ahead on
	 * purpose: the marks may follow it as they follow a clock. */
	if (c->check->floor_ms > (uint64_t)majority)
		majority = (int64_t)c->check->floor_ms;
	bound = (uint64_t)majority + c->p.alloc.max_ahead_ms + c->p.max_clock_offset_ms + slack;
	if (mark <= bound || mark <= high_water_ms + 1)
		return;
	snprintf(msg, sizeof msg,
		 "n%u at %" PRIu64 " proposed high-water %" PRIu64 " ms, %" PRIu64
		 " ms past the majority's clocks (%" PRId64 " ms) + max-ahead + max-clock-offset + slack",
		 node, c->now_ms, mark, mark - bound, majority);
	sim_check_fail(c->check, SIM_P_CLOCK, msg);
}

void sim_cluster_close(sim_cluster *c)
{
	/* Fires the callbacks still pending (their memory is freed there)
	 * into the drivers, stopped first: nothing runs after the schedule. */
	for (unsigned i = 0; i < c->n; i++)
		lead_stop(sim_node_driver(&c->nodes[i]));
	raft_fixture_close(&c->f);
	for (unsigned i = 0; i < c->n; i++)
		sim_node_free(&c->nodes[i]);
}

bool sim_conf_voter(const struct raft_configuration *conf, raft_id id)
{
	for (unsigned k = 0; k < conf->n; k++)
		if (conf->servers[k].id == id)
			return conf->servers[k].role == RAFT_VOTER;
	return false;
}

static bool sim_conf_has(const struct raft_configuration *conf, raft_id id)
{
	for (unsigned k = 0; k < conf->n; k++)
		if (conf->servers[k].id == id)
			return true;
	return false;
}

unsigned sim_cluster_node_of(const sim_cluster *c, raft_id id)
{
	return id >= 1 && id <= c->n ? (unsigned)(id - 1) : c->n;
}

/*
 * Removals, as they commit: a committed configuration (any node's, the
 * leader knows first) at a higher index than the last committed one that
 * held member x, without x, says x's removal has committed (ids are never
 * added back). Its lease from before lasts at most a lease of its
 * monotonic clock, at most lease * (1 + drift) of true time, from a
 * proposal made before the removal's leader was elected: before now.
 */
static void sim_cluster_track_removals(sim_cluster *c)
{
	uint64_t lease = sim_params_max_lease(&c->p);
	uint64_t lease_until = c->now_ms + lease + lease * c->p.alloc.drift_permille / SIM_PERMILLE + 1;

	for (unsigned j = 0; j < c->n; j++) {
		const struct raft *r = c->nodes[j].raft;
		uint64_t index = r->configuration_committed_index;

		if (index == 0 || c->member[j] == SIM_M_SPARE)
			continue;
		for (unsigned x = 0; x < c->n; x++) {
			if (c->member[x] != SIM_M_MEMBER)
				continue;
			if (sim_conf_has(&r->configuration_committed, sim_cluster_id(x))) {
				if (index > c->seen_index[x])
					c->seen_index[x] = index;
				continue;
			}
			if (c->seen_index[x] == 0 || index <= c->seen_index[x])
				continue;
			c->member[x] = SIM_M_REMOVED;
			sim_check_removed(c->check, x, c->now_ms, raft_current_term(r), lease_until);
			SIM_TRACE_KEY("%6" PRIu64
				      " n%u: its removal is committed (n%u's configuration at index "
				      "%" PRIu64 ", term %llu)",
				      c->now_ms, x, j, index, (unsigned long long)raft_current_term(r));
		}
	}
}

/* At most one node serves at any moment (SIM_P_ONE_SERVER). */
void sim_cluster_check_servers(sim_cluster *c)
{
	unsigned serving[SIM_MAX_NODES], k = 0;

	for (unsigned i = 0; i < c->n; i++)
		if (c->proc[i] == SIM_UP &&
		    lead_serving(sim_node_driver(&c->nodes[i]), sim_node_clock(&c->nodes[i])))
			serving[k++] = i;
	sim_check_servers(c->check, c->now_ms, serving, k);
}

void sim_cluster_step(sim_cluster *c)
{
	raft_fixture_step(&c->f);
	c->n_steps++;
	c->now_ms = c->f.time;
	/* Applied means committed: the highest mark any FSM holds is a lower
	 * bound of what Raft has committed (crashed nodes' FSMs included, until
	 * their restart replays them). */
	for (unsigned i = 0; i < c->n; i++)
		sim_check_committed(c->check, c->fsm_states[i].high_water_ms);
	sim_cluster_track_removals(c);
	if (c->after_step != NULL)
		c->after_step(c->after_step_arg);
	sim_cluster_probe(c);
	for (unsigned i = 0; i < c->n; i++)
		if (c->proc[i] == SIM_UP)
			sim_node_after_step(&c->nodes[i]);
	sim_cluster_check_servers(c);
}

void sim_cluster_set_election_timeout(sim_cluster *c, unsigned i, unsigned ms)
{
	raft_fixture_set_randomized_election_timeout(&c->f, i, ms);
}

void sim_cluster_apply_links(sim_cluster *c)
{
	for (unsigned i = 0; i < c->n; i++) {
		for (unsigned j = 0; j < c->n; j++) {
			bool drop = c->cut[i][j] || c->proc[i] != SIM_UP || c->proc[j] != SIM_UP;

			if (i == j)
				continue;
			/* Saturation, not disconnection: the fixture's kill and
			 * revive use it too, and it drops silently, like a
			 * partition does. */
			if (drop)
				raft_fixture_saturate(&c->f, i, j);
			else
				raft_fixture_desaturate(&c->f, i, j);
		}
	}
}

/* Stops node i's process (pause or crash): the fixture's kill freezes its
 * raft instance. */
static void sim_cluster_stop(sim_cluster *c, unsigned i, enum sim_proc proc)
{
	raft_fixture_kill(&c->f, i);
	c->proc[i] = proc;
	c->down_since_ms[i] = c->now_ms;
	sim_cluster_apply_links(c);
}

static void sim_cluster_start(sim_cluster *c, unsigned i)
{
	raft_fixture_revive(&c->f, i);
	c->proc[i] = SIM_UP;
	sim_cluster_apply_links(c);
}

void sim_cluster_pause(sim_cluster *c, unsigned i)
{
	sim_cluster_stop(c, i, SIM_PAUSED);
	SIM_TRACE_KEY("%6" PRIu64 " n%u paused (SIGSTOP)", c->now_ms, i);
}

void sim_cluster_resume(sim_cluster *c, unsigned i)
{
	sim_cluster_start(c, i);
	SIM_TRACE_KEY("%6" PRIu64 " n%u resumed (SIGCONT) after %" PRIu64 " ms", c->now_ms, i,
		      c->now_ms - c->down_since_ms[i]);
}

void sim_cluster_crash(sim_cluster *c, unsigned i)
{
	sim_cluster_stop(c, i, SIM_CRASHED);
	sim_node_crash(&c->nodes[i]);
	SIM_TRACE_KEY("%6" PRIu64 " n%u crashed (kill -9)", c->now_ms, i);
}

bool sim_cluster_can_restart(const sim_cluster *c, unsigned i)
{
	return c->proc[i] == SIM_CRASHED && c->member[i] == SIM_M_MEMBER &&
	       c->now_ms >= c->down_since_ms[i] + SIM_MIN_DOWN_MS;
}

void sim_cluster_restart(sim_cluster *c, unsigned i)
{
	struct raft *r = raft_fixture_get(&c->f, i);
	struct raft_io *io = r->io;
	raft_id id = r->id;
	char address[SIM_ADDRESS_LEN];
	ta_config cfg;
	int rv;

	/* A new process on the same disk: raft reloads term, vote, snapshot and
	 * entries from the fixture's raft_io; the FSM starts empty and is
	 * rebuilt by raft (snapshot restore, then committed entries). */
	raft_close(r, NULL); /* the fixture's close completes at once */
	fsm_init(&c->fsms[i], &c->fsm_states[i]);
	snprintf(address, sizeof address, "%llu", (unsigned long long)id);
	rv = raft_init(r, io, &c->fsms[i], id, address);
	if (rv != 0)
		sim_cluster_die("raft_init (restart)", rv);
	sim_cluster_configure(c, r, i);
	rv = raft_start(r);
	if (rv != 0)
		sim_cluster_die("raft_start (restart)", rv);
	sim_node_add_counters(&c->nodes[i], &c->retired);
	sim_params_node_alloc(&c->p, i, &cfg);
	sim_node_init(&c->nodes[i], i, r, &c->fsm_states[i], &c->clocks[i], &c->now_ms, &cfg,
		      c->p.max_clock_offset_ms);
	sim_cluster_start(c, i);
	c->n_restarts++;
	SIM_TRACE_KEY("%6" PRIu64 " n%u restarted after %" PRIu64 " ms down (term %llu, last index %llu)",
		      c->now_ms, i, c->now_ms - c->down_since_ms[i], (unsigned long long)raft_current_term(r),
		      (unsigned long long)raft_last_index(r));
}

void sim_cluster_join(sim_cluster *c, unsigned i)
{
	c->member[i] = SIM_M_MEMBER;
	sim_cluster_start(c, i);
	SIM_TRACE_KEY("%6" PRIu64 " n%u started with join (empty, outside the configuration)", c->now_ms, i);
}
