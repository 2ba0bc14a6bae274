/* sim_member.c: membership changes in a schedule, one at a time, as tsoracled's member.c and tsoracle-ctl
 * make them. */
#include "sim_member.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_io.h"
#include "sim_trace.h"

#define PERMILLE               1000
/* member.c's MEMBER_PROMOTE_ROUNDS: libraft's catch-up rounds at promotion,
 * each at most one election timeout long. */
#define SIM_PROMOTE_ROUNDS     10
/* The catch-up timeout, in election timeouts (the daemon's default is 30 s:
 * 100 of its default election timeouts; shorter here, to see undos). */
#define SIM_CATCH_UP_ELECTIONS 20
/* How long a handover before a leader's removal may take, in election
 * timeouts (tsoracle-ctl's wait for the new leader). */
#define SIM_HANDOVER_ELECTIONS 4
/* The weights of the changes the nemesis asks for. */
#define W_ADD                  30
#define W_REMOVE               20
#define W_REMOVE_LEADER        10
#define W_REMOVE_SELF          10
#define W_REPLACE              15
/* A removed node is stopped by its operator (else left running, forgotten). */
#define P_STOP_REMOVED         500
/* Removals keep at least this many voters: the schedule then still has
 * failovers to make. */
#define SIM_MIN_VOTERS_LEFT    2
#define SIM_ADDRESS_LEN        16

static const unsigned op_weight[SIM_N_OPS] = {
    [SIM_OP_ADD] = W_ADD,
    [SIM_OP_REMOVE] = W_REMOVE,
    [SIM_OP_REMOVE_LEADER] = W_REMOVE_LEADER,
    [SIM_OP_REMOVE_SELF] = W_REMOVE_SELF,
    [SIM_OP_REPLACE] = W_REPLACE,
};

/* A change asked of libraft, and which one it was. */
typedef struct sim_change {
	struct raft_change req;
	sim_members *m;
	uint64_t seq;
} sim_change;

void sim_members_init(sim_members *m, sim_cluster *c, sim_rng *rng)
{
	memset(m, 0, sizeof *m);
	m->c = c;
	m->rng = rng;
	c->after_step = sim_members_sync;
	c->after_step_arg = m;
}

static struct raft *sim_raft(const sim_members *m, unsigned i)
{
	return m->c->nodes[i].raft;
}

/* member_can_change (sidecar/member.c): node i leads, hands nothing over,
 * has no configuration change uncommitted, and its fence is committed. */
static bool sim_can_change(const sim_members *m, unsigned i)
{
	const sim_cluster *c = m->c;
	struct raft *r = sim_raft(m, i);
	const ta_alloc *a = &sim_node_driver(&c->nodes[i])->alloc;

	return c->proc[i] == SIM_UP && c->member[i] == SIM_M_MEMBER && raft_state(r) == RAFT_LEADER &&
	       raft_transferee(r) == 0 && r->configuration_uncommitted_index == 0 && a->fenced &&
	       a->epoch == raft_current_term(r);
}

static unsigned sim_changer(const sim_members *m)
{
	for (unsigned i = 0; i < m->c->n; i++)
		if (sim_can_change(m, i))
			return i;
	return m->c->n;
}

/* Runs inside libraft: records only. */
static void sim_change_cb(struct raft_change *req, int status)
{
	sim_change *x = req->data;

	if (x->seq == x->m->seq) {
		x->m->change_done = true;
		x->m->change_status = status;
	}
	free(x);
}

static const char *sim_stage_name(enum sim_member_stage st)
{
	switch (st) {
	case SIM_ST_ADDING:
		return "raft_add";
	case SIM_ST_LEARNING:
		return "raft_assign learner";
	case SIM_ST_PROMOTING:
		return "raft_assign voter";
	case SIM_ST_UNDOING:
		return "raft_remove (undo)";
	default:
		return "raft_remove";
	}
}

/* Asks libraft, on the changing leader, for the change of stage st. */
static int sim_start_change(sim_members *m, enum sim_member_stage st)
{
	struct raft *r = sim_raft(m, m->leader);
	raft_id id = sim_cluster_id(m->target);
	sim_change *x = malloc(sizeof *x);
	char address[SIM_ADDRESS_LEN];
	int rv;

	if (x == NULL) {
		fprintf(stderr, "sim: out of memory\n");
		exit(2);
	}
	memset(x, 0, sizeof *x);
	x->req.data = x;
	x->m = m;
	x->seq = ++m->seq;
	switch (st) {
	case SIM_ST_ADDING:
		snprintf(address, sizeof address, "%llu", (unsigned long long)id);
		rv = raft_add(r, &x->req, id, address, sim_change_cb);
		break;
	case SIM_ST_LEARNING:
		rv = raft_assign(r, &x->req, id, RAFT_STANDBY, sim_change_cb);
		break;
	case SIM_ST_PROMOTING:
		raft_set_max_catch_up_rounds(r, SIM_PROMOTE_ROUNDS);
		raft_set_max_catch_up_round_duration(r, m->c->p.election_timeout_ms);
		rv = raft_assign(r, &x->req, id, RAFT_VOTER, sim_change_cb);
		break;
	default:
		rv = raft_remove(r, &x->req, id, sim_change_cb);
		break;
	}
	SIM_TRACE_KEY("%6" PRIu64 " membership: n%u asks %s of n%u%s%s", m->c->now_ms, m->leader,
		      sim_stage_name(st), m->target, rv == 0 ? "" : ": ", rv == 0 ? "" : raft_strerror(rv));
	if (rv != 0) {
		free(x);
		return rv;
	}
	m->stage = st;
	m->change_done = false;
	return 0;
}

static void sim_end(sim_members *m, const char *how)
{
	SIM_TRACE_KEY("%6" PRIu64 " membership: change of n%u ended: %s", m->c->now_ms, m->target, how);
	m->op = SIM_OP_NONE;
	m->stage = SIM_ST_IDLE;
	m->then_add = false;
	m->seq++; /* a late answer is not this change's */
}

static void sim_abandon(sim_members *m, const char *why)
{
	m->n.abandoned++;
	sim_end(m, why);
}

/* The role of node i in the leader's configuration; -1 if it has none. */
static int sim_role_in(const sim_members *m, unsigned leader, unsigned i)
{
	const struct raft_configuration *conf = &sim_raft(m, leader)->configuration;

	for (unsigned k = 0; k < conf->n; k++)
		if (conf->servers[k].id == sim_cluster_id(i))
			return conf->servers[k].role;
	return -1;
}

static unsigned sim_voters(const sim_members *m, unsigned leader)
{
	const struct raft_configuration *conf = &sim_raft(m, leader)->configuration;
	unsigned v = 0;

	for (unsigned k = 0; k < conf->n; k++)
		v += conf->servers[k].role == RAFT_VOTER;
	return v;
}

/* A node to add: a member the configuration holds as spare or learner (an
 * add that did not end), one that joined but is in no configuration, or
 * else a spare not yet started; c->n if none. */
static unsigned sim_pick_addable(sim_members *m, unsigned leader)
{
	const sim_cluster *c = m->c;

	for (unsigned i = 0; i < c->n; i++) {
		int role = sim_role_in(m, leader, i);

		if (c->member[i] != SIM_M_MEMBER || role == RAFT_VOTER)
			continue;
		if (role >= 0 || (i >= c->p.n && c->seen_index[i] == 0))
			return i;
	}
	for (unsigned i = 0; i < c->n; i++)
		if (c->member[i] == SIM_M_SPARE)
			return i;
	return c->n;
}

static bool sim_spare_left(const sim_members *m)
{
	for (unsigned i = 0; i < m->c->n; i++)
		if (m->c->member[i] == SIM_M_SPARE)
			return true;
	return false;
}

/* member_remove's refusal: the voters left without target, and how many of
 * them are up as the leader sees them (up, and linked both ways). */
static bool sim_quorum_left(const sim_members *m, unsigned leader, unsigned target)
{
	const sim_cluster *c = m->c;
	const struct raft_configuration *conf = &sim_raft(m, leader)->configuration;
	unsigned voters = 0, up = 0;

	if (sim_role_in(m, leader, target) != RAFT_VOTER)
		return true;
	for (unsigned k = 0; k < conf->n; k++) {
		unsigned j = sim_cluster_node_of(c, conf->servers[k].id);

		if (conf->servers[k].role != RAFT_VOTER || j == target || j >= c->n)
			continue;
		voters++;
		up += j == leader || (c->proc[j] == SIM_UP && !c->cut[leader][j] && !c->cut[j][leader]);
	}
	return voters >= SIM_MIN_VOTERS_LEFT && up > voters / 2;
}

/* A node of the leader's configuration other than the leader, voters
 * first asked for when voter; c->n if none. */
static unsigned sim_pick_follower(sim_members *m, unsigned leader, bool voter)
{
	unsigned cand[SIM_MAX_NODES], k = 0;

	for (unsigned i = 0; i < m->c->n; i++) {
		int role = sim_role_in(m, leader, i);

		if (i != leader && role >= 0 && (!voter || role == RAFT_VOTER))
			cand[k++] = i;
	}
	return k == 0 ? m->c->n : cand[sim_rng_below(m->rng, k)];
}

static void sim_begin_add(sim_members *m, unsigned leader)
{
	sim_cluster *c = m->c;
	unsigned t = sim_pick_addable(m, leader);
	int role;

	if (t == c->n || sim_voters(m, leader) >= SIM_MAX_VOTERS) {
		sim_end(m, "nothing to add");
		return;
	}
	m->op = SIM_OP_ADD;
	m->leader = leader;
	m->target = t;
	if (c->member[t] == SIM_M_SPARE)
		sim_cluster_join(c, t);
	m->installs_before = sim_io_installs(sim_raft(m, t)->io);
	role = sim_role_in(m, leader, t);
	if (role == RAFT_STANDBY) {
		/* member_add of a learner left behind: it goes on from there. */
		m->stage = SIM_ST_CATCHING_UP;
		m->catch_up_index = raft_last_index(sim_raft(m, leader));
		m->deadline_ms = c->now_ms + SIM_CATCH_UP_ELECTIONS * (uint64_t)c->p.election_timeout_ms;
		return;
	}
	if (sim_start_change(m, role == RAFT_SPARE ? SIM_ST_LEARNING : SIM_ST_ADDING) != 0)
		sim_abandon(m, "libraft refused the add");
}

/* The removal of target by leader, if a quorum is left. */
static void sim_begin_remove(sim_members *m, unsigned leader, unsigned target)
{
	m->leader = leader;
	m->target = target;
	if (!sim_quorum_left(m, leader, target)) {
		m->n.refused++;
		sim_end(m, "refused: no quorum of voters that are up would be left");
		return;
	}
	if (sim_start_change(m, SIM_ST_REMOVING) != 0)
		sim_abandon(m, "libraft refused the removal");
}

void sim_members_start(sim_members *m)
{
	sim_cluster *c = m->c;
	unsigned total = 0, r, leader = sim_changer(m), t;
	enum sim_member_op op = SIM_OP_NONE;
	uint64_t handover;

	if (m->op != SIM_OP_NONE || leader == c->n)
		return;
	for (int k = 0; k < SIM_N_OPS; k++)
		total += op_weight[k];
	r = (unsigned)sim_rng_below(m->rng, total);
	for (int k = 0; k < SIM_N_OPS; k++) {
		if (r < op_weight[k]) {
			op = (enum sim_member_op)k;
			break;
		}
		r -= op_weight[k];
	}
	m->n.started[op]++;
	m->op = op;
	m->then_add = false;
	switch (op) {
	case SIM_OP_ADD:
		sim_begin_add(m, leader);
		return;
	case SIM_OP_REMOVE:
		t = sim_pick_follower(m, leader, false);
		if (t == c->n) {
			sim_end(m, "nothing to remove");
			return;
		}
		sim_begin_remove(m, leader, t);
		return;
	case SIM_OP_REMOVE_SELF:
		sim_begin_remove(m, leader, leader);
		return;
	case SIM_OP_REMOVE_LEADER:
		/* tsoracle-ctl member remove of the leader: transfer-leader
		 * first (to Raft's pick), then the removal by the new leader. */
		m->leader = leader;
		m->target = leader;
		if (!sim_quorum_left(m, leader, leader)) {
			m->n.refused++;
			sim_end(m, "refused: no quorum of voters that are up would be left");
			return;
		}
		m->stage = SIM_ST_HANDING_OVER;
		m->deadline_ms = c->now_ms + SIM_HANDOVER_ELECTIONS * (uint64_t)c->p.election_timeout_ms;
		SIM_TRACE_KEY("%6" PRIu64 " membership: removing the leader n%u: it hands over first",
			      c->now_ms, leader);
		(void)lead_transfer(sim_node_driver(&c->nodes[leader]), sim_node_clock(&c->nodes[leader]), 0,
				    &handover);
		return;
	case SIM_OP_REPLACE:
		t = sim_pick_follower(m, leader, true);
		if (t == c->n || !sim_spare_left(m)) {
			sim_end(m, "nothing to replace");
			return;
		}
		if (c->proc[t] != SIM_CRASHED)
			sim_cluster_crash(c, t);
		SIM_TRACE_KEY("%6" PRIu64 " membership: replacing n%u (killed, to be wiped) by a new id",
			      c->now_ms, t);
		m->then_add = true;
		sim_begin_remove(m, leader, t);
		return;
	default:
		sim_end(m, "no change");
		return;
	}
}

/* A removal has committed as the changing leader saw it. */
static void sim_removal_done(sim_members *m)
{
	sim_cluster *c = m->c;
	unsigned t = m->target;
	bool then_add = m->then_add;
	unsigned leader = m->leader;

	m->n.removed++;
	if (c->proc[t] != SIM_CRASHED && t != leader && sim_rng_chance(m->rng, P_STOP_REMOVED))
		sim_cluster_crash(c, t);
	sim_end(m, "removed");
	if (then_add && sim_can_change(m, leader)) {
		m->op = SIM_OP_ADD;
		sim_begin_add(m, leader);
	}
}

/* libraft answered the change: the next stage, or the end. */
static void sim_change_answered(sim_members *m)
{
	int status = m->change_status;

	m->change_done = false;
	if (status != 0) {
		if (m->stage == SIM_ST_PROMOTING && status == RAFT_NOCONNECTION) {
			/* libraft's catch-up rounds ran out: removed again. */
			if (sim_start_change(m, SIM_ST_UNDOING) != 0)
				sim_abandon(m, "the undo was refused");
			return;
		}
		sim_abandon(m, raft_strerror(status));
		return;
	}
	switch (m->stage) {
	case SIM_ST_ADDING:
		if (sim_start_change(m, SIM_ST_LEARNING) != 0)
			sim_abandon(m, "libraft refused to make it a learner");
		return;
	case SIM_ST_LEARNING:
		m->stage = SIM_ST_CATCHING_UP;
		m->catch_up_index = raft_last_index(sim_raft(m, m->leader));
		m->deadline_ms =
		    m->c->now_ms + SIM_CATCH_UP_ELECTIONS * (uint64_t)m->c->p.election_timeout_ms;
		return;
	case SIM_ST_PROMOTING:
		m->n.added++;
		if (sim_io_installs(sim_raft(m, m->target)->io) > m->installs_before)
			m->n.added_by_snapshot++;
		sim_end(m, "a voter");
		return;
	case SIM_ST_REMOVING:
		sim_removal_done(m);
		return;
	case SIM_ST_UNDOING:
		m->n.undone++;
		sim_end(m, "did not catch up: removed again");
		return;
	default:
		return;
	}
}

/* member_watch_learner: promote once caught up, or undo at the deadline. */
static void sim_watch_learner(sim_members *m)
{
	raft_index match = 0;
	int rv;

	if (raft_match_index(sim_raft(m, m->leader), sim_cluster_id(m->target), &match) != 0) {
		sim_abandon(m, "it left the configuration while catching up");
		return;
	}
	if (match >= m->catch_up_index) {
		rv = sim_start_change(m, SIM_ST_PROMOTING);
		if (rv == RAFT_CANTCHANGE || rv == RAFT_NOTLEADER) {
			m->stage = SIM_ST_CATCHING_UP; /* member.c: at the next sync */
			return;
		}
		if (rv != 0 && sim_start_change(m, SIM_ST_UNDOING) != 0)
			sim_abandon(m, "the undo was refused");
		return;
	}
	if (m->c->now_ms >= m->deadline_ms && sim_start_change(m, SIM_ST_UNDOING) != 0)
		sim_abandon(m, "the undo was refused");
}

void sim_members_sync(void *arg)
{
	sim_members *m = arg;
	sim_cluster *c = m->c;
	unsigned next;

	if (m->op == SIM_OP_NONE)
		return;
	/* A leader removing itself hears no success from libraft: it steps
	 * down as the removal commits (sim_cluster.c saw it commit). */
	if (m->stage == SIM_ST_REMOVING && c->member[m->target] == SIM_M_REMOVED) {
		sim_removal_done(m);
		return;
	}
	if (m->stage == SIM_ST_HANDING_OVER) {
		next = sim_changer(m);
		if (next < c->n && next != m->target)
			sim_begin_remove(m, next, m->target);
		else if (c->now_ms >= m->deadline_ms)
			sim_abandon(m, "the handover did not complete");
		return;
	}
	if (m->change_done) {
		sim_change_answered(m);
		return;
	}
	/* The changing leader stopped, or lost leadership: the change is
	 * abandoned (its answer, if libraft gives one, is ignored). */
	if (c->proc[m->leader] != SIM_UP || raft_state(sim_raft(m, m->leader)) != RAFT_LEADER) {
		sim_abandon(m, "the leader making it stopped leading");
		return;
	}
	if (m->stage == SIM_ST_CATCHING_UP)
		sim_watch_learner(m);
}
