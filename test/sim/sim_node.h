/* sim_node.h: one simulated tsoracled: libtsoracle's leadership driver hosted on libraft's fixture. */
#ifndef TSORACLE_SIM_NODE_H
#define TSORACLE_SIM_NODE_H

#include <raft.h>
#include <stdbool.h>
#include <stdint.h>

#include "sim_clock.h"
#include "tsoracle.h"

/*
 * The simulated process runs the daemon's leadership driver itself
 * (sidecar/lead.c, include/tsoracle.h), as tsoracled's sidecar/node.c
 * does; this file is only the host: node.c's libuv timers become "after a
 * fixture step" (the driver's kick) and "every LEAD_TICK_MS of simulated
 * time" (its watch), and its clock readings come from sim_clock.
 *
 * libraft's callbacks fire inside raft_fixture_step(), into the driver,
 * which there only records (as it does inside libuv's callbacks in the
 * daemon) and asks for a sync; the sync runs right after the step, at the
 * same simulated time, on a node that is up. A paused (SIGSTOPped) node's
 * callbacks are recorded the same way and it syncs when it resumes, as a
 * stopped process would; the driver reads no clock in a callback, so
 * nothing it records depends on when the process runs again.
 *
 * Each process (a start, a restart) has its own driver, allocated here: a
 * crash stops it (lead_stop), and the requests it had in libraft complete
 * into it, ignored, until the cluster is closed.
 */

/* A driver and the one it replaced (a crashed process's): kept until the
 * fixture is closed, since libraft may still complete its requests. */
typedef struct sim_process {
	lead_driver d;
	struct sim_process *prev;
} sim_process;

/* Judges a HighWater(mark) node is about to propose, its allocator's H
 * being high_water_ms (sim_cluster.c: the clock property). */
typedef void (*sim_mark_check_fn)(void *arg, unsigned node, uint64_t mark, uint64_t high_water_ms);

typedef struct sim_node {
	unsigned index;
	struct raft *raft;
	const fsm_state *fsm; /* this node's FSM, applied by its raft */
	const sim_clock *clock;
	const uint64_t *now_ms; /* the fixture's time */

	sim_process *proc; /* the running process's driver (proc->d) */
	bool kicked;       /* node.c's kick: sync after this step */
	uint64_t next_watch_ms;
	sim_mark_check_fn check_mark; /* every HighWater proposed, before raft_apply */
	void *check_arg;
} sim_node;

/* A fresh process: a new driver (no leadership, a new allocator). The
 * previous one, if any, is kept until sim_node_free. */
void sim_node_init(sim_node *n, unsigned index, struct raft *raft, const fsm_state *fsm,
		   const sim_clock *clock, const uint64_t *now_ms, const ta_config *cfg,
		   uint64_t max_clock_offset_ms);

/* The process died: its driver stops (lead_stop). */
void sim_node_crash(sim_node *n);

/* Frees every driver of n; after the fixture is closed. */
void sim_node_free(sim_node *n);

/* The running process's driver. */
static inline lead_driver *sim_node_driver(const sim_node *n)
{
	return &n->proc->d;
}

/* Adds the counters of n's running process to *sum. */
void sim_node_add_counters(const sim_node *n, lead_counters *sum);

/* After a fixture step, on a node that is up: syncs if a callback kicked
 * it or its watch is due. */
void sim_node_after_step(sim_node *n);

/* node_transfer: a planned handover to member index target (raft id
 * target + 1; -1: Raft's pick). An enum lead_transfer_result. */
int sim_node_transfer(sim_node *n, int target);

/* node_grant: one allocator call; an enum ta_result. */
int sim_node_grant(sim_node *n, uint32_t count, uint64_t *first);

/* The node's clocks now. */
ta_clock sim_node_clock(const sim_node *n);

#endif /* TSORACLE_SIM_NODE_H */
