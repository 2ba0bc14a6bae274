/* node.h: one Raft member: libraft with the uv backend and the peer transport, hosting the leadership driver.
 */
#ifndef TSORACLE_NODE_H
#define TSORACLE_NODE_H

#include <openssl/ssl.h>
#include <raft.h>
#include <raft/uv.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <uv.h>

#include "config.h"
#include "metrics.h"
#include "member.h"
#include "proto.h"
#include "tsoracle.h"

/*
 * The node is tsoracled's host of libtsoracle's leadership driver
 * (include/tsoracle.h, sidecar/lead.c), which decides everything about
 * leadership and timestamps; the node only does the I/O: libraft on the
 * libuv backend with the peer transport, the driver's watch on a libuv
 * timer every LEAD_TICK_MS and at once when it asks (node_kick), clock
 * readings (clock.c), the log, and the waiters of a planned handover.
 *
 *   - A planned handover (node_transfer: tsoracle-ctl transfer-leader, or
 *     SIGTERM on the leader) goes through lead_transfer: the node stops
 *     serving at once; an established leader commits Release(term) first,
 *     so the next leader serves as soon as its fence commits, without
 *     waiting out the lease (tsoracle.h, I4); then libraft sends TimeoutNow to
 *     a caught-up voter, which starts an election at once. So the gap in
 *     service is the release's commit, the election and the fence's
 *     commit: a few round trips. If the target does not take over, libraft
 *     gives up after an election timeout and this node, still leader in
 *     the same term, fences again and waits again before it serves.
 */

struct node;
typedef void (*node_ready_cb)(void *arg);
/* The state machine halted (tsoracle.h): the daemon must stop; reason in
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
	uint64_t target;                     /* 0: any caught-up voter */
	uint64_t deadline_ms;                /* monotonic: answered with TP_ERR_TRANSFER then */
	uint64_t handover;                   /* the number of the handover it waits for */
	TAILQ_ENTRY(node_transfer_req) link; /* in node.transfer_waiters */
	bool waiting;                        /* while it is there */
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

	lead_driver lead; /* leadership, fence, lease, proposals, handovers */
	uv_timer_t tick;  /* the driver's watch, every LEAD_TICK_MS */
	uv_timer_t kick;  /* a sync as soon as possible, outside raft callbacks */

	int last_result;           /* last ta_grant result, for error statuses */
	uint64_t last_result_term; /* the Raft term it was had in (node_wait_status) */

	uint64_t transfer_started_ms; /* monotonic, for the log */
	/* Answered when their handover ends, in the order they came. */
	TAILQ_HEAD(, node_transfer_req) transfer_waiters;

	node_ready_cb ready_cb; /* grants may succeed now */
	void *ready_arg;
	node_halt_cb halt_cb; /* called once, from node_sync, when the FSM halts */
	void *halt_arg;
	bool halt_reported;

	/* The metrics' view of leadership (node_watch_leadership). */
	metrics_leadership stats;
	uint64_t seen_leader;    /* the last leader this member knew (0: none yet) */
	bool was_leading;        /* lead.leading at the last sync */
	uint64_t fence_start_ms; /* monotonic: when this leadership began; 0: not timing one */

	member_change members; /* the membership change under way (member.h) */

	bool closing;
	node_close_cb close_cb;
} node;

/* Opens the data directory, sets up libraft and bootstraps the initial
 * configuration from peers if the directory is pristine (never with join:
 * the leader that adds this member gives it the configuration). Each
 * member's address in the configuration is "RAFT_IP:PORT/CLIENT_IP:PORT"
 * (config.h, cfg_member_split). */
int node_init(node *n, uv_loop_t *loop, const cfg *c, char *err, size_t errlen);

/* A TLS context from the tls-* files whose certificate is this member's
 * (OU=member, CN=member-<node-id>): the Raft transport, the client port
 * and the forwarding connection all use it. NULL with a message in err. */
SSL_CTX *node_tls_ctx_new(const cfg *c, char *err, size_t errlen);

/* Reads the tls-* files again (SIGHUP): new Raft connections use them;
 * on error the old ones stay, and the error is logged. */
void node_reload_tls(node *n);

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
 * the reason the last grant failed, if this member still leads in the term
 * of that grant; else TP_ERR_UNAVAILABLE (no leader, or a new leadership
 * not serving yet): a reason from an earlier leadership is stale. */
uint16_t node_wait_status(node *n);

void node_status(node *n, tp_status *st);

/* Member id's wall clock read wall_ms in a round trip between this
 * member's monotonic readings sent_mono_ms and recv_mono_ms (clockprobe.h):
 * for the driver's clock check. */
void node_clock_sample(node *n, uint64_t id, uint64_t wall_ms, uint64_t sent_mono_ms, uint64_t recv_mono_ms);

/* Leadership counters and gauges (term, indexes, H, clock, Raft
 * connections), into a metrics sample. */
void node_metrics(node *n, metrics_sample *out);

/* Asks for the driver's watch (and the membership change's) at the start
 * of the next loop iteration; safe from inside libraft's callbacks. */
void node_request_sync(node *n);

/* Raft's view: this node is leader (serving or about to). */
bool node_is_leader(node *n);

/* The leader's id as Raft knows it; 0 if unknown (or during a handover). */
uint64_t node_leader_id(node *n);

/* Member id is in the Raft configuration this node holds (any role), or
 * this node waits to be added (join: no configuration yet, so any member
 * of the CA may be the leader that adds it). What the Raft port admits
 * (peer.h), and the client port of a member certificate (server.h). */
bool node_is_member(node *n, uint64_t id);

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

/*
 * The operator's commands (TP_ADMIN_REQ, common/proto.h). Each returns TP_OK
 * when cb will run (once: from inside libraft's callback, where it may only
 * answer its client), else the refusal with *value (and *value2) as
 * TP_ADMIN_RESP says, and cb never runs. cb's status is TP_OK (committed
 * and applied here: value is F, value2 the cluster version), or
 * TP_ERR_UNAVAILABLE (leadership lost or closing first: it may still
 * commit).
 */
typedef void (*node_admin_cb)(void *arg, uint16_t status, uint64_t value, uint64_t value2);
uint16_t node_advance(node *n, uint64_t floor_ms, uint64_t *value, uint64_t *value2, node_admin_cb cb,
		      void *arg);
/* checked: how many members the client found to know version. */
uint16_t node_set_cluster_version(node *n, uint64_t version, uint64_t checked, uint64_t *value,
				  node_admin_cb cb, void *arg);
/* The newest command set this build applies, and the cluster version this
 * member has applied. */
void node_versions(node *n, uint64_t *known, uint64_t *cluster);

/* Stops Raft and releases everything; cb runs when all is closed. Handover
 * waiters are answered TP_ERR_SHUTTING_DOWN first. */
void node_close(node *n, node_close_cb cb);

#endif /* TSORACLE_NODE_H */
