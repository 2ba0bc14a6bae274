/* node.h: one Raft member: libraft with the uv backend, the FSM, and the allocator driven by Raft events. */
#ifndef TSORACLE_NODE_H
#define TSORACLE_NODE_H

#include <raft.h>
#include <raft/uv.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "alloc.h"
#include "config.h"
#include "fsm.h"
#include "proto.h"

/*
 * The node turns Raft events into allocator calls (sidecar/alloc.h), which
 * decide everything about timestamps; the node only does the I/O:
 *
 *   - libraft 0.22.1 has no state-change callback, so the node watches
 *     raft_state() and raft_current_term() on a short timer (NODE_TICK_MS)
 *     and after each of its callbacks. On winning it runs a barrier, then
 *     proposes the fence mark that ta_lead_begin computes; on losing it calls
 *     ta_lead_end at once. Detection may lag; the lease, not the watch, is
 *     what keeps order safe (DESIGN.md section 5).
 *   - When ta_extension_due says so, it proposes HighWater(mark) and reports
 *     the commit (with the proposal's monotonic time, for the lease) or the
 *     failure back to the allocator. One proposal is in flight at a time.
 */

struct node;
typedef void (*node_ready_cb)(void *arg);
typedef void (*node_close_cb)(struct node *n);

typedef struct node {
	uv_loop_t *loop;
	const cfg *cfg;

	struct raft raft;
	struct raft_io io;
	struct raft_uv_transport transport;
	struct raft_fsm fsm;
	fsm_state fsm_state;
	bool raft_initialized;
	bool io_initialized;
	bool transport_initialized;

	ta_alloc alloc;
	uv_timer_t tick; /* the leadership watch, every NODE_TICK_MS */
	uv_timer_t kick; /* a sync as soon as possible, outside raft callbacks */

	bool leading; /* raft says leader in lead_term */
	uint64_t lead_term;
	bool barrier_inflight; /* the fence's barrier, in lead_term */
	bool fence_pending;    /* fence mark computed, not yet proposed */
	uint64_t fence_mark;
	uint64_t fence_mono_ms; /* when it was computed: its lease start */
	bool was_serving;       /* at the last sync, for the ready callback */
	int last_result;        /* last ta_grant result, for error statuses */

	node_ready_cb ready_cb; /* grants may succeed now */
	void *ready_arg;

	bool closing;
	node_close_cb close_cb;
} node;

/* Opens the data directory, sets up libraft and bootstraps the initial
 * configuration if the directory is pristine. */
int node_init(node *n, uv_loop_t *loop, const cfg *c, char *err, size_t errlen);

/* Starts Raft and the leadership watch. */
int node_start(node *n, char *err, size_t errlen);

/* Called whenever grants that had to wait may now succeed. */
void node_set_ready_cb(node *n, node_ready_cb cb, void *arg);

/* One allocator call: returns an enum ta_result; on TA_OK the grant is
 * [*first, *first + count). Starts an extension when one is due. */
int node_grant(node *n, uint32_t count, uint64_t *first);

/* The error status for a request that could not be served in time, given
 * the reason the last grant failed. */
uint16_t node_wait_status(const node *n);

void node_status(node *n, tp_status *st);

/* Raft's view: this node is leader (serving or about to). */
bool node_is_leader(node *n);

/* The leader's id as Raft knows it; 0 if unknown. */
uint64_t node_leader_id(node *n);

/* Stops Raft and releases everything; cb runs when all is closed. */
void node_close(node *n, node_close_cb cb);

#endif /* TSORACLE_NODE_H */
