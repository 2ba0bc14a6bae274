/* sim_node.h: one simulated tsoracled: the allocator driven from Raft events exactly as sidecar/node.c does.
 */
#ifndef TSORACLE_SIM_NODE_H
#define TSORACLE_SIM_NODE_H

#include <raft.h>
#include <stdbool.h>
#include <stdint.h>

#include "alloc.h"
#include "fsm.h"
#include "sim_clock.h"

/*
 * The driver mirrors sidecar/node.c function by function (sim_node_sync is
 * node_sync, sim_node_grant is node_grant, and so on), so that the fence and
 * the lease are exercised the way the daemon uses them. The one structural
 * difference: libraft's callbacks fire inside raft_fixture_step(), and there
 * they only record what happened (an event); the events are handled right
 * after the step returns, at the same simulated time, and then the node
 * syncs. node.c does the allocator calls inside the callbacks and defers only
 * the Raft calls (node_kick); since no grant can run between a callback and
 * the end of its step, the two orders are equivalent. Deferring everything
 * also lets a paused (SIGSTOPped) node handle its callbacks when it resumes,
 * as a stopped process would.
 */

/* How often node.c's leadership watch runs (NODE_TICK_MS there). */
#define SIM_NODE_WATCH_MS   10
/* Callback events a node can hold while paused. */
#define SIM_NODE_MAX_EVENTS 256

enum sim_event_kind {
	SIM_EV_COMMITTED,
	SIM_EV_FAILED,
	SIM_EV_BARRIER,
	SIM_EV_RELEASED,      /* node_release_cb: status 0 or the error */
	SIM_EV_TRANSFER_ENDED /* node_transfer_raft_cb */
};

typedef struct sim_event {
	enum sim_event_kind kind;
	int status; /* SIM_EV_BARRIER: 0 or the error */
	uint64_t term;
	uint64_t mark;
	uint64_t proposed_mono_ms;
	uint64_t handover; /* SIM_EV_RELEASED: the handover's number */
} sim_event;

/* Counters for the summary. */
typedef struct sim_node_counters {
	uint64_t n_leads; /* fences started (ta_lead_begin) */
	uint64_t n_proposals;
	uint64_t n_commits;
	uint64_t n_apply_errors;   /* raft_apply refused (node.c logs and retries) */
	uint64_t n_transfers;      /* handovers started */
	uint64_t n_releases;       /* ... of which with a release */
	uint64_t n_released_leads; /* fences started without the wait */
} sim_node_counters;

typedef struct sim_node {
	unsigned index;
	struct raft *raft;
	const fsm_state *fsm; /* this node's FSM, applied by its raft */
	const sim_clock *clock;
	const uint64_t *now_ms; /* the fixture's time */
	uint32_t incarnation;   /* bumped by a crash: older callbacks are dropped */

	/* The fields of node.c's struct node that drive the allocator. */
	ta_alloc alloc;
	bool leading;
	uint64_t lead_term;
	bool barrier_inflight;
	bool fence_pending;
	uint64_t fence_mark;
	uint64_t fence_mono_ms;
	bool kicked; /* node_kick: sync as soon as possible */
	/* node.c's planned handover (without its waiters). */
	bool transfer_inflight; /* raft_transfer accepted, its callback pending */
	uint64_t transfer_target;
	uint64_t transfer_count;
	bool releasing;
	bool release_committed;
	uint64_t next_watch_ms;

	sim_event events[SIM_NODE_MAX_EVENTS];
	unsigned n_events;

	sim_node_counters counters;
} sim_node;

/* Adds n's counters to *sum. */
void sim_node_add_counters(const sim_node *n, sim_node_counters *sum);

/* A fresh process: no leadership, a new allocator. */
void sim_node_init(sim_node *n, unsigned index, struct raft *raft, const fsm_state *fsm,
		   const sim_clock *clock, const uint64_t *now_ms, const ta_config *cfg);

/* The process died: callbacks still in libraft are dropped from now on. */
void sim_node_crash(sim_node *n);

/* After a fixture step: handles this node's recorded callbacks, then syncs if
 * a callback kicked it or its watch timer is due (node_tick_cb). */
void sim_node_after_step(sim_node *n);

/* node_transfer: a planned handover to member index target (raft id
 * target + 1; -1: Raft's pick). False if refused (not leader, one under
 * way, raft_transfer refused). */
bool sim_node_transfer(sim_node *n, int target);

/* node_grant: one allocator call; an enum ta_result. */
int sim_node_grant(sim_node *n, uint32_t count, uint64_t *first);

/* The node's clocks now. */
ta_clock sim_node_clock(const sim_node *n);

#endif /* TSORACLE_SIM_NODE_H */
