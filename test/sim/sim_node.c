/* sim_node.c: one simulated tsoracled: libtsoracle's leadership driver hosted on libraft's fixture. */
#include "sim_node.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_trace.h"

ta_clock sim_node_clock(const sim_node *n)
{
	return sim_clock_at(n->clock, *n->now_ms);
}

/* lead_host.kick: node.c's zero timer is the end of this fixture step. */
static void sim_node_kick(void *arg)
{
	sim_node *n = arg;

	n->kicked = true;
}

/* lead_host.log: the driver's lines go to the trace, with the time and the
 * node; debug lines (proposals, commits) as ordinary lines, the others as
 * key events. */
static void sim_node_log(void *arg, int level, const char *msg)
{
	sim_node *n = arg;

	if (level == TSORACLE_LOG_DEBUG)
		SIM_TRACE("%6" PRIu64 " n%u %s", *n->now_ms, n->index, msg);
	else
		SIM_TRACE_KEY("%6" PRIu64 " n%u %s", *n->now_ms, n->index, msg);
}

/* lead_host.propose: the daemon's default (the command as the whole
 * entry), after showing every HighWater to the clock property. */
static int sim_node_propose(void *arg, struct raft *raft, struct raft_apply *req, const uint8_t *cmd,
			    size_t len, raft_apply_cb cb)
{
	sim_node *n = arg;
	uint64_t mark = 0;

	if (len == FSM_CMD_SIZE && cmd[0] == FSM_CMD_HIGH_WATER && n->check_mark != NULL) {
		for (size_t i = FSM_CMD_ARG_OFFSET; i < FSM_CMD_SIZE; i++)
			mark = mark << 8 | cmd[i];
		n->check_mark(n->check_arg, n->index, mark, sim_node_driver(n)->alloc.high_water_ms);
	}
	return lead_host_propose_default(arg, raft, req, cmd, len, cb);
}

void sim_node_init(sim_node *n, unsigned index, struct raft *raft, const fsm_state *fsm,
		   const sim_clock *clock, const uint64_t *now_ms, const ta_config *cfg,
		   uint64_t max_clock_offset_ms)
{
	sim_process *p = malloc(sizeof *p);
	/* Lines are formatted only while a schedule is traced (sim_trace.h). */
	lead_host host = {
	    .arg = n,
	    .kick = sim_node_kick,
	    .propose = sim_node_propose,
	    .log = sim_node_log,
	    .log_level = sim_trace_on ? TSORACLE_LOG_DEBUG : TSORACLE_LOG_ERROR + 1,
	};

	if (p == NULL) {
		fprintf(stderr, "sim: out of memory\n");
		exit(2);
	}
	p->prev = n->proc;
	n->proc = p;
	n->index = index;
	n->raft = raft;
	n->fsm = fsm;
	n->clock = clock;
	n->now_ms = now_ms;
	n->kicked = false;
	n->next_watch_ms = *now_ms + LEAD_TICK_MS;
	lead_init(&p->d, raft, fsm, cfg, &host);
	if (max_clock_offset_ms > 0)
		lead_clock_configure(&p->d, max_clock_offset_ms, LEAD_CLOCK_DEFAULT_MAX_START_GAP_MS, false);
}

void sim_node_crash(sim_node *n)
{
	lead_stop(sim_node_driver(n));
	n->kicked = false;
}

void sim_node_free(sim_node *n)
{
	while (n->proc != NULL) {
		sim_process *p = n->proc;

		n->proc = p->prev;
		free(p);
	}
}

void sim_node_add_counters(const sim_node *n, lead_counters *sum)
{
	const lead_counters *c = &sim_node_driver(n)->counters;

	sum->fences += c->fences;
	sum->released_fences += c->released_fences;
	sum->proposals += c->proposals;
	sum->commits += c->commits;
	sum->refused_proposals += c->refused_proposals;
	sum->handovers += c->handovers;
	sum->released_handovers += c->released_handovers;
}

void sim_node_after_step(sim_node *n)
{
	uint64_t now = *n->now_ms;

	if (now >= n->next_watch_ms) {
		n->next_watch_ms = now + LEAD_TICK_MS; /* a libuv repeating timer */
		n->kicked = true;
	}
	if (n->kicked) {
		n->kicked = false;
		lead_sync(sim_node_driver(n), sim_node_clock(n));
	}
}

int sim_node_transfer(sim_node *n, int target)
{
	uint64_t handover;

	return lead_transfer(sim_node_driver(n), sim_node_clock(n), target < 0 ? 0 : (uint64_t)target + 1,
			     &handover);
}

int sim_node_grant(sim_node *n, uint32_t count, uint64_t *first)
{
	return lead_grant(sim_node_driver(n), sim_node_clock(n), count, first);
}
