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
 *   - A planned handover (node_transfer: tsoracle-ctl transfer-leader, or
 *     SIGTERM on the leader) asks libraft to send TimeoutNow to a caught-up
 *     voter, which starts an election at once instead of after an election
 *     timeout. A leader that is established (its own new-leader wait is
 *     over) first stops serving and commits Release(term) (fsm.h): the
 *     next leader, finding it at the end of its log, knows every earlier
 *     leader has stopped for good and serves as soon as its fence commits,
 *     without waiting out the lease (alloc.h, I4). So the gap in service is
 *     the release's commit, the election and the fence's commit: a few
 *     round trips. A leader still in its own wait hands over without a
 *     release (a deposed leader before it may still be in its lease), and
 *     its successor waits. Either way the old leader stops serving before
 *     libraft is asked (serving less is always safe). If the target does
 *     not take over, libraft gives up after an election timeout and this
 *     node, still leader in the same term, fences again and waits again
 *     before it serves: its fence, a HighWater after the release, takes
 *     the release back, and while it is uncommitted this node does not
 *     serve, so a successor that saw only the release is still right.
 */

struct node;
typedef void (*node_ready_cb)(void *arg);
/* The state machine halted (fsm.h): the daemon must stop; reason in
 * n->fsm_state.halt_reason. */
typedef void (*node_halt_cb)(void *arg);
typedef void (*node_close_cb)(struct node *n);

/* A bound on one handover, in election timeouts: libraft gives up after
 * one; the node answers its waiters by then even if libraft has not called
 * back (this node lost leadership to a third member and has not yet heard
 * from it). */
#define NODE_TRANSFER_TIMEOUT_ELECTIONS 1

/*
 * A caller's wait for a handover (caller-owned, like a libuv request): cb
 * runs exactly once, from the node's timer (never inside a libraft
 * callback), unless the request is cancelled first. status is TP_OK if
 * leadership moved to target (0: to any other member), else TP_ERR_TRANSFER,
 * or TP_ERR_SHUTTING_DOWN when the node closes; leader_id is the leader this
 * node knows then (0: unknown).
 */
struct node_transfer_req;
typedef void (*node_transfer_cb)(struct node_transfer_req *req, uint16_t status, uint64_t leader_id);
typedef struct node_transfer_req {
	void *data; /* the caller's */
	node_transfer_cb cb;
	uint64_t target;      /* 0: any caught-up voter */
	uint64_t deadline_ms; /* monotonic: answered with TP_ERR_TRANSFER then */
	uint64_t handover;    /* the number of the handover it waits for */
	struct node_transfer_req *next;
} node_transfer_req;

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
	uint64_t barrier_seq;   /* the barrier that counts; older ones are ignored */

	struct raft_transfer *transfer;      /* libraft's handover request, until its callback */
	uint64_t transfer_target;            /* the handover's target (0: Raft's pick) */
	bool releasing;                      /* Release(lead_term) proposed for the handover */
	bool release_committed;              /* ... and committed: libraft is asked next */
	uint64_t transfer_count;             /* handovers started: numbers them from 1 */
	uint64_t transfer_ended;             /* the number of one that ended, to answer; 0: none */
	uint64_t transfer_started_ms;        /* monotonic, for the log */
	node_transfer_req *transfer_waiters; /* answered when the handover ends */

	node_ready_cb ready_cb; /* grants may succeed now */
	void *ready_arg;
	node_halt_cb halt_cb; /* called once, from node_sync, when the FSM halts */
	void *halt_arg;
	bool halt_reported;

	bool closing;
	node_close_cb close_cb;
} node;

/* Opens the data directory, sets up libraft and bootstraps the initial
 * configuration if the directory is pristine. */
int node_init(node *n, uv_loop_t *loop, const cfg *c, char *err, size_t errlen);

/* Reads peer-secret-file again (SIGHUP): new Raft connections use what it
 * holds now; on error the old secrets stay, and the error is logged. */
void node_reload_secrets(node *n);

/* Starts Raft and the leadership watch. */
int node_start(node *n, char *err, size_t errlen);

/* Called whenever grants that had to wait may now succeed. */
void node_set_ready_cb(node *n, node_ready_cb cb, void *arg);

/* cb runs once, outside libraft's callbacks, if the state machine halts:
 * the node has stopped serving, and the caller stops the daemon. */
void node_set_halt_cb(node *n, node_halt_cb cb, void *arg);

/* One allocator call: returns an enum ta_result; on TA_OK the grant is
 * [*first, *first + count). Starts an extension when one is due. */
int node_grant(node *n, uint32_t count, uint64_t *first);

/* How many timestamps one grant could take now without waiting (ta_room). */
uint64_t node_room(node *n);

/* The error status for a request that could not be served in time, given
 * the reason the last grant failed. */
uint16_t node_wait_status(const node *n);

void node_status(node *n, tp_status *st);

/* Raft's view: this node is leader (serving or about to). */
bool node_is_leader(node *n);

/* The leader's id as Raft knows it; 0 if unknown (or during a handover). */
uint64_t node_leader_id(node *n);

/*
 * Starts a planned handover to member target (0: any caught-up voter), or
 * joins the one under way, and stops serving at once. Returns TP_OK when
 * req waits (its cb runs later), else the answer, and cb never runs:
 * TP_ERR_NOT_LEADER (this node does not lead), TP_ERR_BAD_REQUEST (target
 * is this node, or not a voting member, or there is no other voter),
 * TP_ERR_INTERNAL (out of memory).
 */
uint16_t node_transfer(node *n, node_transfer_req *req, uint64_t target, node_transfer_cb cb);

/* Forgets req if it still waits: its cb will not run. */
void node_transfer_cancel(node *n, node_transfer_req *req);

/* Stops Raft and releases everything; cb runs when all is closed. Handover
 * waiters are answered TP_ERR_SHUTTING_DOWN first. */
void node_close(node *n, node_close_cb cb);

#endif /* TSORACLE_NODE_H */
