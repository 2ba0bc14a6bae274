/* lead.c: the leadership driver: the allocator driven from Raft events (contract in include/tsoracle.h). */
#include "tsoracle.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tso.h"

/* One line of the driver's log, formatted. */
#define LEAD_LINE_SIZE 512

/* A barrier, remembering the term it was issued in and which one it was:
 * after a handover that did not complete, a barrier issued before it may
 * still complete, and only the newest one may start the fence. */
typedef struct lead_barrier {
	struct raft_barrier req;
	lead_driver *d;
	uint64_t term;
	uint64_t seq;
} lead_barrier;

/* A HighWater (or Fence) proposal, remembering what the allocator must be told. */
typedef struct lead_proposal {
	struct raft_apply req;
	lead_driver *d;
	uint64_t term;
	uint64_t mark;
	uint64_t proposed_mono_ms;
} lead_proposal;

/* An operator's command (Advance, ClusterVersion): whom to tell. */
typedef struct lead_admin {
	struct raft_apply req;
	lead_driver *d;
	lead_admin_cb cb;
	void *arg;
} lead_admin;

/* A Lease proposal (cluster version 3, I4): its driver. */
typedef struct lead_lease {
	struct raft_apply req;
	lead_driver *d;
	uint64_t wait_ms;
} lead_lease;

/* A Release proposal: the handover it belongs to. */
typedef struct lead_release {
	struct raft_apply req;
	lead_driver *d;
	uint64_t term;
	uint64_t handover;
} lead_release;

int tsoracle_version(void)
{
	return TSORACLE_VERSION;
}

const char *tsoracle_version_string(void)
{
	return TSORACLE_VERSION_STRING;
}

__attribute__((format(printf, 3, 4))) static void lead_log(const lead_driver *d, int level, const char *fmt,
							   ...)
{
	char line[LEAD_LINE_SIZE];
	va_list ap;

	/* A stopped driver's host is closing: what fails then is expected. */
	if (d->stopped || d->host.log == NULL || level < d->host.log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	d->host.log(d->host.arg, level, line);
}

/* Asks the host for a sync outside libraft's callback. */
static void lead_kick(lead_driver *d)
{
	if (!d->stopped)
		d->host.kick(d->host.arg);
}

bool lead_raft_takes_proposals(const struct raft *raft)
{
	/* The fields libraft's ClientSubmit reads for its RAFT_NOTLEADER. */
	return raft->state == RAFT_LEADER && raft->leader_state.transferee == 0;
}

int lead_host_propose_default(void *arg, struct raft *raft, struct raft_apply *req, const uint8_t *cmd,
			      size_t len, raft_apply_cb cb)
{
	struct raft_buffer buf;

	(void)arg;
	/* (LeakSanitizer found 172 refused buffers in sim_broken_removed, a
	 * driver proposing after its leadership ended, before this check.) */
	if (!lead_raft_takes_proposals(raft))
		return RAFT_NOTLEADER;
	buf.base = raft_malloc(len);
	if (buf.base == NULL)
		return RAFT_NOMEM;
	memcpy(buf.base, cmd, len);
	buf.len = len;
	/* On failure buf.base is not freed: libraft 0.22.1 may already have
	 * released it on some failure paths, and a 16-byte leak on a rare
	 * error is better than a double free. */
	return raft_apply(raft, req, &buf, 1, cb);
}

/* Hands the command cmd[0..len) to the host's propose hook (or the default). */
static int lead_propose_bytes(lead_driver *d, struct raft_apply *req, const uint8_t *cmd, size_t len,
			      raft_apply_cb cb)
{
	if (d->host.propose != NULL)
		return d->host.propose(d->host.arg, d->raft, req, cmd, len, cb);
	return lead_host_propose_default(d->host.arg, d->raft, req, cmd, len, cb);
}

static int lead_propose_cmd(lead_driver *d, struct raft_apply *req, uint8_t type, uint64_t arg,
			    raft_apply_cb cb)
{
	uint8_t cmd[FSM_CMD_SIZE];

	fsm_cmd_put(cmd, type, arg);
	return lead_propose_bytes(d, req, cmd, sizeof cmd, cb);
}

/* From cluster version 3 on, the wait owed lives in the log (I4). */
static bool lead_wait_in_log(const lead_driver *d)
{
	return fsm_cluster_version(d->state) >= fsm_cmd_command_set(FSM_CMD_FENCE);
}

void lead_init(lead_driver *d, struct raft *raft, const fsm_state *state, const ta_config *cfg,
	       const lead_host *host)
{
	memset(d, 0, sizeof *d);
	d->raft = raft;
	d->state = state;
	d->host = *host;
	ta_init(&d->alloc, cfg);
}

void lead_set_start_floor(lead_driver *d, uint64_t floor_ms, uint64_t slack_ms)
{
	ta_set_start_floor(&d->alloc, floor_ms, slack_ms);
	lead_log(d, TSORACLE_LOG_INFO,
		 "start floor %" PRIu64 " ms: as leader, this member serves only above it, above every "
		 "timestamp handed out before it started (I7, docs/allocator.md)",
		 floor_ms);
}

/* ---- persist_high_water ---------------------------------------------------- */

static void lead_apply_cb(struct raft_apply *req, int status, void *result)
{
	lead_proposal *p = req->data;
	lead_driver *d = p->d;

	if (status == 0 && result == FSM_RESULT_REFUSED) {
		/* Committed, but the state machine refused the mark (malformed
		 * or above TSO_PHYSICAL_MAX): H is not the mark, so the
		 * allocator must not take it (I2): a failed extension. */
		ta_extension_failed(&d->alloc, p->term);
		lead_log(d, TSORACLE_LOG_ERROR,
			 "high-water proposal %" PRIu64 " (term %" PRIu64 ") was committed but refused by "
			 "the state machine (its warning says why): not serving from it; a bug in the "
			 "host's propose hook or in this build",
			 p->mark, p->term);
	} else if (status == 0) {
		/* Committed and applied: the mark is durable on a majority. A
		 * stale term renews nothing (ta_extension_commit ignores it). */
		ta_extension_commit(&d->alloc, p->term, p->mark, p->proposed_mono_ms);
		d->counters.commits++;
		lead_log(d, TSORACLE_LOG_DEBUG,
			 "high-water %" PRIu64 " committed (term %" PRIu64 ", proposed at mono %" PRIu64 ")",
			 p->mark, p->term, p->proposed_mono_ms);
	} else {
		ta_extension_failed(&d->alloc, p->term);
		if (!d->stopped && status != RAFT_LEADERSHIPLOST && status != RAFT_NOTLEADER)
			lead_log(d, TSORACLE_LOG_WARN, "high-water proposal %" PRIu64 " failed: %s", p->mark,
				 raft_strerror(status));
		else
			lead_log(d, TSORACLE_LOG_DEBUG,
				 "high-water proposal %" PRIu64 " failed: %s (term %" PRIu64 ")", p->mark,
				 raft_strerror(status), p->term);
	}
	free(p);
	lead_kick(d);
}

/* Proposes HighWater(mark) in lead_term, proposed_mono_ms being a reading
 * taken before this call (the lease's start, I4); the allocator has marked
 * it in flight. While the fence is not committed (its first proposal, or
 * one after a failure), from cluster version 3 on it is Fence(mark, this
 * member's wait) instead: the allocator serves only once a mark >= the
 * fence mark commits, so a leader that serves has its wait in the log
 * (I4); at the versions below, the command every member knows. */
static void lead_propose(lead_driver *d, uint64_t mark, uint64_t proposed_mono_ms)
{
	lead_proposal *p = malloc(sizeof *p);
	uint8_t fence[FSM_CMD_FENCE_SIZE];
	int rv;

	if (p == NULL) {
		lead_log(d, TSORACLE_LOG_ERROR, "out of memory proposing a high-water mark");
		ta_extension_failed(&d->alloc, d->lead_term);
		return;
	}
	p->req.data = p;
	p->d = d;
	p->term = d->lead_term;
	p->mark = mark;
	p->proposed_mono_ms = proposed_mono_ms;
	if (!d->alloc.fenced && lead_wait_in_log(d)) {
		fsm_cmd_put_fence(fence, mark, ta_lease_wait_ms(&d->alloc.cfg));
		rv = lead_propose_bytes(d, &p->req, fence, sizeof fence, lead_apply_cb);
	} else {
		rv = lead_propose_cmd(d, &p->req, FSM_CMD_HIGH_WATER, mark, lead_apply_cb);
	}
	if (rv != 0) {
		free(p);
		ta_extension_failed(&d->alloc, d->lead_term);
		d->counters.refused_proposals++;
		lead_log(d, TSORACLE_LOG_WARN, "proposing high-water %" PRIu64 " failed: %s (%s)", mark,
			 raft_strerror(rv), raft_errmsg(d->raft));
		return;
	}
	d->counters.proposals++;
	lead_log(d, TSORACLE_LOG_DEBUG,
		 "proposed high-water %" PRIu64 " (term %" PRIu64 ", mono %" PRIu64 ")", mark, d->lead_term,
		 proposed_mono_ms);
}

/* Proposes the extension or lease renewal the allocator says is due. */
static void lead_extend_if_due(lead_driver *d, ta_clock clk)
{
	uint64_t mark;

	if (!ta_extension_due(&d->alloc, clk))
		return;
	mark = ta_extension_prepare(&d->alloc, clk);
	if (mark != 0)
		lead_propose(d, mark, clk.mono_ms);
}

/* ---- the wait in the log (cluster version 3) ------------------------------ */

static void lead_lease_cb(struct raft_apply *req, int status, void *result)
{
	lead_lease *l = req->data;
	lead_driver *d = l->d;

	d->lease_inflight = false;
	if (status == 0 && result != FSM_RESULT_REFUSED) {
		d->counters.leases++;
		lead_log(d, TSORACLE_LOG_INFO, "lease wait %" PRIu64 " ms committed", l->wait_ms);
	} else {
		lead_log(d, TSORACLE_LOG_DEBUG, "Lease(%" PRIu64 ") failed: %s", l->wait_ms,
			 status == 0 ? "refused by the state machine" : raft_strerror(status));
	}
	free(l);
	lead_kick(d);
}

/*
 * An established leader whose own wait is not the log's (an earlier leader
 * had a longer lease, or a release left 0) proposes Lease(own wait), so
 * that its successors wait what this member's lease needs rather than
 * what a leader that has stopped for good did. Established: by I4 no
 * earlier leader serves again; applied in log order even if a later
 * leader commits it, since that leader's Fence follows it in the log and
 * the max there takes its wait (fsm.c).
 */
static void lead_lease_if_due(lead_driver *d, ta_clock clk)
{
	uint64_t wait_ms = ta_lease_wait_ms(&d->alloc.cfg);
	lead_lease *l;
	uint8_t cmd[FSM_CMD_SIZE];
	int rv;

	if (d->lease_inflight || d->releasing || !lead_wait_in_log(d) || d->state->lease_wait_ms == wait_ms ||
	    !ta_established(&d->alloc, clk))
		return;
	l = malloc(sizeof *l);
	if (l == NULL)
		return; /* only the next successor's wait is longer than needed */
	l->req.data = l;
	l->d = d;
	l->wait_ms = wait_ms;
	fsm_cmd_put(cmd, FSM_CMD_LEASE, wait_ms);
	rv = lead_propose_bytes(d, &l->req, cmd, sizeof cmd, lead_lease_cb);
	if (rv != 0) {
		free(l);
		lead_log(d, TSORACLE_LOG_DEBUG, "proposing Lease(%" PRIu64 ") failed: %s", wait_ms,
			 raft_strerror(rv));
		return;
	}
	d->lease_inflight = true;
	lead_log(d, TSORACLE_LOG_INFO,
		 "proposing Lease(%" PRIu64 " ms): the log says a new leader waits %" PRIu64
		 " ms, and every leader before this one has stopped for good",
		 wait_ms, d->state->lease_wait_ms);
}

/* ---- leadership: barrier and fence ---------------------------------------- */

static void lead_barrier_cb(struct raft_barrier *req, int status)
{
	lead_barrier *b = req->data;
	lead_driver *d = b->d;
	uint64_t term = b->term;
	uint64_t seq = b->seq;

	free(b);
	if (d->stopped || !d->leading || d->lead_term != term || d->barrier_seq != seq)
		return; /* a barrier of an earlier leadership */
	d->barrier_inflight = false;
	if (status != 0) {
		/* The next sync notices whether this member still leads, and
		 * starts over. */
		lead_log(d, TSORACLE_LOG_WARN, "barrier after election failed: %s", raft_strerror(status));
		d->leading = false;
	} else {
		/* Every entry committed before it is applied now: the next
		 * sync reads H (load_high_water) and fences. */
		d->barrier_done = true;
	}
	lead_kick(d);
}

static void lead_start_barrier(lead_driver *d)
{
	lead_barrier *b = malloc(sizeof *b);
	int rv;

	if (b == NULL) {
		lead_log(d, TSORACLE_LOG_ERROR, "out of memory starting a barrier");
		return;
	}
	b->req.data = b;
	b->d = d;
	b->term = d->lead_term;
	b->seq = ++d->barrier_seq;
	rv = raft_barrier(d->raft, &b->req, lead_barrier_cb);
	if (rv != 0) {
		free(b);
		lead_log(d, TSORACLE_LOG_WARN, "raft_barrier: %s", raft_strerror(rv));
		return;
	}
	d->barrier_inflight = true;
	d->barrier_done = false;
}

/*
 * The barrier of lead_term has completed: every mark committed by any
 * earlier leader is applied to the state, so H read now is a linearized
 * read (I3; reading it later than the barrier's completion only reads more).
 * Computes the floor and proposes the fence mark with this reading as its
 * proposal time.
 */
static void lead_fence(lead_driver *d, ta_clock clk)
{
	uint64_t high = d->state->high_water_ms;
	/* The predecessor released, or this member stopped, established, to
	 * raise the cluster version to 3 (lead_set_cluster_version): either
	 * way every earlier leader has stopped for good (I4). */
	bool predecessor = fsm_predecessor_released(d->state, d->lead_term);
	bool raised = d->raised_term == d->lead_term;
	bool released = predecessor || raised;
	uint64_t mark;

	d->barrier_done = false;
	d->raised_term = 0;
	/* F as applied after the barrier: the floor starts there or above. */
	ta_raise_floor(&d->alloc, d->state->floor_ms);
	/* I4: the wait is also at least what the log says earlier leaders are
	 * owed (0 below cluster version 3: equal leases are then required). */
	mark = ta_lead_begin(&d->alloc, d->lead_term, high, released, d->state->lease_wait_ms, clk);
	if (mark == 0) {
		d->exhausted_term = d->lead_term;
		lead_log(d, TSORACLE_LOG_ERROR,
			 "the timestamp range is exhausted (high-water %" PRIu64 " ms): refusing to serve",
			 high);
		return;
	}
	d->counters.fences++;
	if (released)
		d->counters.released_fences++;
	lead_log(d, TSORACLE_LOG_INFO,
		 "leader in term %" PRIu64 ": fencing at %" PRIu64 " ms (high-water was %" PRIu64
		 " ms), serving from mono %" PRIu64 "%s (own wait %" PRIu64 " ms, the log's %" PRIu64 " ms)",
		 d->lead_term, mark, high, d->alloc.lease_not_before,
		 predecessor ? "; the leader of the term before released its lease: no wait"
		 : raised    ? "; this member stopped serving to raise the cluster version: no wait"
			     : "",
		 ta_lease_wait_ms(&d->alloc.cfg), d->state->lease_wait_ms);
	lead_propose(d, mark, clk.mono_ms);
}

/* Stops serving at once; anything in flight is ignored by epoch (and the
 * barrier by its sequence number). */
static void lead_lose(lead_driver *d)
{
	ta_lead_end(&d->alloc);
	d->leading = false;
	d->barrier_inflight = false;
	d->barrier_done = false;
}

/* ---- the planned handover ------------------------------------------------- */

/*
 * libraft's handover ended: this member learned of a leader as a follower,
 * or it is still leader and libraft gave up (an election timeout passed),
 * or Raft is closing. Runs inside libraft: records only.
 */
static void lead_transfer_cb(struct raft_transfer *req)
{
	lead_driver *d = req->data;

	free(req);
	d->transfer = NULL;
	d->transfer_ended = d->transfer_count;
	lead_kick(d);
}

/*
 * libraft's answer to a Release: committed, the handover goes on (the next
 * sync asks libraft for it); failed, the handover has ended (and if this
 * member still leads it fences again). Runs inside libraft: records only.
 */
static void lead_release_cb(struct raft_apply *req, int status, void *result)
{
	lead_release *r = req->data;
	lead_driver *d = r->d;

	if (!d->stopped && d->releasing && d->transfer_count == r->handover) {
		/* (libraft fails a leader's pending entries when it steps
		 * down, so a success is always of the term it still leads in.)
		 * A release the state machine refused released nothing. */
		if (status == 0 && result != FSM_RESULT_REFUSED && r->term == d->lead_term) {
			d->release_committed = true;
			lead_log(d, TSORACLE_LOG_INFO, "release of term %" PRIu64 " committed", r->term);
		} else {
			d->releasing = false;
			d->transfer_ended = r->handover;
			lead_log(d, TSORACLE_LOG_WARN, "releasing the lease for the handover failed: %s",
				 status == 0 && result == FSM_RESULT_REFUSED ? "refused by the state machine"
									     : raft_strerror(status));
		}
	}
	free(r);
	lead_kick(d);
}

/* Proposes Release(lead_term) for the handover under way; false if it could
 * not be proposed (the caller hands over without it). */
static bool lead_propose_release(lead_driver *d)
{
	lead_release *r = malloc(sizeof *r);
	int rv;

	if (r == NULL)
		return false;
	r->req.data = r;
	r->d = d;
	r->term = d->lead_term;
	r->handover = d->transfer_count;
	rv = lead_propose_cmd(d, &r->req, FSM_CMD_RELEASE, d->lead_term, lead_release_cb);
	if (rv != 0) {
		free(r);
		lead_log(d, TSORACLE_LOG_WARN, "proposing the release of term %" PRIu64 " failed: %s (%s)",
			 d->lead_term, raft_strerror(rv), raft_errmsg(d->raft));
		return false;
	}
	return true;
}

/* Asks libraft for the handover under way and stops serving. */
static int lead_transfer_begin(lead_driver *d)
{
	struct raft_transfer *t = calloc(1, sizeof *t);
	int rv;

	if (t == NULL) {
		lead_log(d, TSORACLE_LOG_ERROR, "out of memory starting a handover");
		return LEAD_TRANSFER_NOMEM;
	}
	t->data = d;
	rv = raft_transfer(d->raft, t, d->transfer_target, lead_transfer_cb);
	if (rv != 0) {
		free(t);
		lead_log(d, TSORACLE_LOG_INFO, "not handing leadership over: %s", raft_errmsg(d->raft));
		return rv == RAFT_NOMEM ? LEAD_TRANSFER_NOMEM : LEAD_TRANSFER_REFUSED;
	}
	/*
	 * Stop serving now, before control returns to the host's loop (grants
	 * are made only from it): the last grant was made before raft_transfer
	 * sent TimeoutNow, so before the target's election. (libraft refuses
	 * new entries meanwhile, so the lease could not be renewed anyway.)
	 * Without a release, safety does not rest on this: the new leader
	 * waits out this lease (I4). After a release, this member stopped
	 * earlier still.
	 */
	lead_lose(d);
	d->transfer = t;
	lead_log(d, TSORACLE_LOG_INFO, "handing leadership over to node %" PRIu64 "%s: stopped serving",
		 (uint64_t)raft_transferee(d->raft),
		 d->transfer_target == 0 ? " (Raft's pick: a caught-up voter if there is one)" : "");
	return LEAD_TRANSFER_STARTED;
}

/* Why target cannot take over from this member, or NULL if it can: another
 * voter of the current configuration (0: any, if there is one). */
static const char *lead_transfer_refusal(const lead_driver *d, uint64_t target)
{
	const struct raft_configuration *conf = &d->raft->configuration;
	bool other_voter = false;

	if (target == d->raft->id)
		return "the target is this node";
	for (unsigned i = 0; i < conf->n; i++) {
		if (conf->servers[i].role != RAFT_VOTER || conf->servers[i].id == d->raft->id)
			continue;
		if (target == 0 || conf->servers[i].id == target)
			return NULL;
		other_voter = true;
	}
	return other_voter ? "the target is not a voting member" : "there is no other voting member";
}

int lead_transfer(lead_driver *d, ta_clock clk, uint64_t target, uint64_t *handover)
{
	const char *refusal;
	int refused = LEAD_TRANSFER_BAD_TARGET;
	int rc;

	if (d->stopped || raft_state(d->raft) != RAFT_LEADER)
		return LEAD_TRANSFER_NOT_LEADER;
	if (d->transfer != NULL || d->releasing) {
		/* libraft takes one handover at a time; later requests join it. */
		*handover = d->transfer_count;
		return LEAD_TRANSFER_JOINED;
	}
	refusal = lead_transfer_refusal(d, target);
	if (refusal == NULL && d->clock.max_offset_ms > 0) {
		/* Never hand leadership to a clock the majority does not
		 * support (it would refuse to serve and hand over again); for
		 * Raft's pick, name a voter whose clock they do support. */
		if (target != 0 && !lead_clock_member_supported(d, target, clk)) {
			refusal =
			    "its wall clock is not within max-clock-offset of a majority of the voters' "
			    "clocks (or was not measured lately)";
			refused = LEAD_TRANSFER_CLOCK;
		} else if (target == 0)
			target = lead_clock_pick_target(d, clk);
	}
	if (refusal != NULL) {
		if (target != 0)
			lead_log(d, TSORACLE_LOG_INFO, "not handing leadership over to node %" PRIu64 ": %s",
				 target, refusal);
		else
			lead_log(d, TSORACLE_LOG_INFO, "not handing leadership over: %s", refusal);
		return refused;
	}
	d->transfer_target = target;
	if (d->leading && ta_established(&d->alloc, clk)) {
		/*
		 * Stop serving for good in this term, then say so in the log:
		 * the next leader, finding Release(term) at the end of its log,
		 * may serve without waiting out this lease (tsoracle.h, I4).
		 * Established: no leader before this one serves again, which
		 * the release also promises.
		 */
		lead_lose(d);
		d->transfer_count++;
		d->counters.handovers++;
		if (lead_propose_release(d)) {
			d->releasing = true;
			d->release_committed = false;
			d->counters.released_handovers++;
			if (target != 0)
				lead_log(d, TSORACLE_LOG_INFO,
					 "handing leadership over to node %" PRIu64
					 ": stopped serving, releasing the lease of term %" PRIu64,
					 target, d->lead_term);
			else
				lead_log(d, TSORACLE_LOG_INFO,
					 "handing leadership over: stopped serving, releasing the lease of "
					 "term %" PRIu64,
					 d->lead_term);
		} else if (lead_transfer_begin(d) != LEAD_TRANSFER_STARTED) {
			/* Ended before it began: the waiters learn it at the
			 * next sync. */
			d->transfer_ended = d->transfer_count;
			lead_kick(d);
		}
	} else {
		rc = lead_transfer_begin(d);
		if (rc != LEAD_TRANSFER_STARTED)
			return rc;
		d->transfer_count++;
		d->counters.handovers++;
	}
	*handover = d->transfer_count;
	return LEAD_TRANSFER_STARTED;
}

uint64_t lead_handover_ended(lead_driver *d)
{
	uint64_t ended = d->transfer_ended;

	d->transfer_ended = 0;
	return ended;
}

/* ---- clock sanity (the measurements and verdicts: lead_clock.c) ----------- */

/* Whether now is a moment to say again why the clock keeps this member
 * from leading (at most every LEAD_CLOCK_LOG_MS). */
static bool lead_clock_log_due(lead_driver *d, ta_clock clk)
{
	if (d->clock.logged_at != 0 && clk.mono_ms - d->clock.logged_at < LEAD_CLOCK_LOG_MS)
		return false;
	d->clock.logged_at = clk.mono_ms;
	return true;
}

/* Why a sole voter does not serve: its start gap (lead_fence_allowed). */
static void lead_clock_log_start_gap(lead_driver *d, ta_clock clk)
{
	if (lead_clock_log_due(d, clk))
		lead_log(d, TSORACLE_LOG_ERROR,
			 "not serving: this sole voter's wall clock (%" PRIu64 " ms) was %" PRIu64
			 " ms past the high-water mark stored in its log (%" PRIu64 " ms) when it started, "
			 "more than max-start-gap %" PRIu64 " ms, and no other member's clock can confirm "
			 "it. If the clock is right (the node was down that long), restart with "
			 "--trust-clock; if not, fix the clock and restart",
			 clk.wall_ms, d->clock.start_gap_ms, d->state->high_water_ms,
			 d->clock.max_start_gap_ms);
}

/*
 * Raft made this member leader, but its wall clock is not one a majority
 * of the voters' clocks support (lead_clock_ok): it stops serving at once,
 * fences nothing (a fence would commit a mark from that clock), and hands
 * leadership to a voter whose clock they do support, asking again every
 * LEAD_CLOCK_RETRY_MS while it still leads.
 */
static void lead_clock_refuse(lead_driver *d, ta_clock clk, uint64_t term, const lead_clock_verdict *v)
{
	uint64_t target;
	uint64_t handover;
	char what[LEAD_LINE_SIZE / 2];

	d->clock.refusals++;
	if (d->leading)
		lead_lose(d);
	if (v->start_gap) {
		lead_clock_log_start_gap(d, clk); /* a sole voter: no one to hand over to */
		return;
	}
	/* Only to a voter whose clock the majority supports: Raft's own pick
	 * might be a member whose clock is off too, which would refuse in
	 * turn. With none known (its clock not measured yet, or no majority
	 * agrees on any clock) this member stays leader without serving, so
	 * that no election churns, until one is. */
	target = lead_clock_pick_target(d, clk);
	if (target != 0 && clk.mono_ms >= d->clock.retry_at && d->transfer == NULL && !d->releasing) {
		d->clock.retry_at = clk.mono_ms + LEAD_CLOCK_RETRY_MS;
		(void)lead_transfer(d, clk, target, &handover);
	}
	if (target == 0)
		snprintf(what, sizeof what,
			 "no voter whose clock a majority supports is known to hand "
			 "over to: staying leader without serving until one is");
	else
		snprintf(what, sizeof what, "handing leadership over to node %" PRIu64, target);
	if (lead_clock_log_due(d, clk))
		lead_log(d, TSORACLE_LOG_WARN,
			 "not serving as leader in term %" PRIu64 ": this member's wall clock is %" PRId64
			 " ms off the median of the voters' clocks, and %u of %u voters' clocks (this one "
			 "included, measured within %u ms) are within max-clock-offset %" PRIu64
			 " ms of it, short of a majority%s; %s. Fix this host's clock (NTP), or raise "
			 "max-clock-offset",
			 term, v->offset_ms, v->support, v->voters, (unsigned)LEAD_CLOCK_SAMPLE_TTL_MS,
			 d->clock.max_offset_ms,
			 v->held ? " (it jumped forward; the allocator keeps the clock from before the jump)"
				 : "",
			 what);
}

/* The start gap of a sole voter (lead_clock_start_allows), said in the log
 * while it keeps the member from fencing. */
static bool lead_fence_allowed(lead_driver *d, ta_clock clk)
{
	uint64_t gap = 0;
	bool first = !d->clock.start_checked;

	if (lead_clock_start_allows(d, clk, d->state->high_water_ms, &gap)) {
		if (first && d->clock.start_checked && gap > d->clock.max_start_gap_ms)
			lead_log(d, TSORACLE_LOG_WARN,
				 "the wall clock is %" PRIu64
				 " ms past the high-water mark stored in the log "
				 "(%" PRIu64 " ms), more than max-start-gap %" PRIu64
				 " ms; serving anyway, as --trust-clock says",
				 gap, d->state->high_water_ms, d->clock.max_start_gap_ms);
		return true;
	}
	d->clock.refusals++;
	lead_clock_log_start_gap(d, clk);
	return false;
}

/* ---- the operator's commands ------------------------------------------------ */

static void lead_admin_cb_raft(struct raft_apply *req, int status, void *result)
{
	lead_admin *x = req->data;
	lead_driver *d = x->d;

	if (status == 0 && result == FSM_RESULT_REFUSED)
		status = RAFT_MALFORMED; /* the state machine applied nothing */
	if (status == 0)
		/* Applied here: every grant from now on starts at F or later
		 * (lead_grant reads it too; this is for the answer's sake). */
		ta_raise_floor(&d->alloc, d->state->floor_ms);
	if (d->stopped && status == 0)
		status = RAFT_CANCELED; /* the host is closing: no answer is true */
	if (x->cb != NULL)
		x->cb(x->arg, status); /* exactly once, stopped or not: it owns arg */
	free(x);
	lead_kick(d);
}

/* Proposes the operator's command type(arg); cb(arg, status) once libraft
 * has committed and applied it (status 0) or given up. */
static int lead_admin_propose(lead_driver *d, uint8_t type, uint64_t arg, lead_admin_cb cb, void *cb_arg)
{
	lead_admin *x = malloc(sizeof *x);
	int rv;

	if (x == NULL)
		return LEAD_ADMIN_NOMEM;
	x->req.data = x;
	x->d = d;
	x->cb = cb;
	x->arg = cb_arg;
	rv = lead_propose_cmd(d, &x->req, type, arg, lead_admin_cb_raft);
	if (rv != 0) {
		free(x);
		lead_log(d, TSORACLE_LOG_WARN, "proposing %s(%" PRIu64 ") failed: %s (%s)",
			 type == FSM_CMD_ADVANCE ? "Advance" : "ClusterVersion", arg, raft_strerror(rv),
			 raft_errmsg(d->raft));
		return rv == RAFT_NOMEM ? LEAD_ADMIN_NOMEM : LEAD_ADMIN_REFUSED;
	}
	return LEAD_ADMIN_STARTED;
}

int lead_advance(lead_driver *d, ta_clock clk, uint64_t floor_ms, uint64_t max_gap_ms, uint64_t *value,
		 lead_admin_cb cb, void *cb_arg)
{
	uint64_t next_ms;
	int rc;

	*value = 0;
	if (d->stopped || !d->leading || !ta_serving(&d->alloc, clk))
		return LEAD_ADMIN_NOT_LEADER;
	ta_raise_floor(&d->alloc, d->state->floor_ms);
	if (fsm_cluster_version(d->state) < fsm_cmd_command_set(FSM_CMD_ADVANCE)) {
		/* An older member would halt on it (tsoracle.h, versions). */
		*value = fsm_cluster_version(d->state);
		return LEAD_ADMIN_VERSION;
	}
	if (floor_ms > TSO_PHYSICAL_MAX) {
		*value = TSO_PHYSICAL_MAX;
		return LEAD_ADMIN_RANGE;
	}
	/* Never backwards: the next grant starts at max(now << 18, last + 1)
	 * already; an advance to or below its ms would change nothing. */
	next_ms = tso_physical(d->alloc.last < TSO_MAX ? d->alloc.last + 1 : TSO_MAX);
	if (next_ms < d->alloc.floor_ms)
		next_ms = d->alloc.floor_ms;
	if (clk.wall_ms > next_ms)
		next_ms = clk.wall_ms;
	if (floor_ms <= next_ms) {
		*value = next_ms;
		return LEAD_ADMIN_BACKWARDS;
	}
	/* max-reset-gap: the leader's own clock, not the lifted one, bounds
	 * how far an operator may move the oracle in one step. */
	if (floor_ms - clk.wall_ms > max_gap_ms) {
		*value = clk.wall_ms;
		return LEAD_ADMIN_TOO_FAR;
	}
	rc = lead_admin_propose(d, FSM_CMD_ADVANCE, floor_ms, cb, cb_arg);
	if (rc == LEAD_ADMIN_STARTED)
		lead_log(d, TSORACLE_LOG_WARN,
			 "advance-to: proposing Advance(%" PRIu64 " ms), %" PRIu64
			 " ms ahead of this leader's clock: every later timestamp's physical part will be "
			 "at least that",
			 floor_ms, floor_ms - clk.wall_ms);
	return rc;
}

int lead_set_cluster_version(lead_driver *d, ta_clock clk, uint64_t version, uint64_t *value,
			     lead_admin_cb cb, void *cb_arg)
{
	int rc;

	*value = fsm_cluster_version(d->state);
	if (d->stopped || !d->leading || !ta_serving(&d->alloc, clk))
		return LEAD_ADMIN_NOT_LEADER;
	if (version > FSM_COMMAND_SET) {
		*value = FSM_COMMAND_SET;
		return LEAD_ADMIN_RANGE; /* this very leader could not apply it */
	}
	if (version <= fsm_cluster_version(d->state))
		return LEAD_ADMIN_BACKWARDS;
	/*
	 * To 3 (the wait in the log, I4): this leader's fence was a HighWater,
	 * which left no wait in the log, so a successor that applies
	 * ClusterVersion(3) would wait only its own and not this member's
	 * lease. So it stops serving before ClusterVersion(3) is even
	 * proposed: every grant it made precedes any voter's append of it,
	 * hence any successor that reads version 3. Then, once the barrier
	 * after it is done, it fences again with a Fence(mark, its wait) and
	 * serves only when that commits; a successor that can see version 3
	 * but not that Fence was elected before the Fence committed (Raft:
	 * a committed entry of an earlier term is in every later leader's
	 * log), so this member never served again in its term. No new-leader
	 * wait: it was established (ta_serving), so no earlier leader serves
	 * again (raised_term).
	 */
	if (fsm_cluster_version(d->state) < FSM_COMMAND_SET_LEASE && version >= FSM_COMMAND_SET_LEASE)
		lead_lose(d);
	rc = lead_admin_propose(d, FSM_CMD_CLUSTER_VERSION, version, cb, cb_arg);
	if (rc == LEAD_ADMIN_STARTED)
		lead_log(d, TSORACLE_LOG_WARN,
			 "raising the cluster version from %" PRIu64 " to %" PRIu64 "%s",
			 fsm_cluster_version(d->state), version,
			 d->leading ? "" : "; stopped serving until its fence records this member's wait");
	if (!d->leading)
		d->raised_term = d->lead_term; /* the next sync fences again, without the wait */
	return rc;
}

/* ---- the watch ------------------------------------------------------------- */

void lead_sync(lead_driver *d, ta_clock clk)
{
	enum raft_state state;
	uint64_t term;
	bool handing_over;
	bool releasing;
	bool serving;
	lead_clock_verdict verdict;

	if (d->stopped)
		return;
	/* The operator's floor, as applied (I6): it only rises. */
	ta_raise_floor(&d->alloc, d->state->floor_ms);
	if (d->state->halted) {
		/* The state machine cannot apply the log (tsoracle.h): H may be
		 * behind what is committed, so serve nothing more. */
		if (d->leading)
			lead_lose(d);
		return;
	}
	/* From here on the allocator sees the clock the sanity check allows:
	 * the reading, or while a forward jump no majority supports is not
	 * followed, the trusted projection (tsoracle.h, "clock sanity"). */
	clk = lead_clock_observe(d, clk, &verdict);
	if (d->release_committed) {
		/* Release(lead_term) is committed: every later leader's log
		 * holds it. Now ask libraft to hand over (before reading its
		 * state). */
		d->releasing = false;
		d->release_committed = false;
		if (lead_transfer_begin(d) != LEAD_TRANSFER_STARTED)
			d->transfer_ended = d->transfer_count;
	}
	state = raft_state(d->raft);
	term = raft_current_term(d->raft);
	/* libraft refuses new entries while it hands leadership over. */
	handing_over = state == RAFT_LEADER && raft_transferee(d->raft) != 0;

	if (d->leading && (state != RAFT_LEADER || term != d->lead_term || handing_over)) {
		lead_lose(d);
		if (handing_over)
			lead_log(d, TSORACLE_LOG_INFO,
				 "handing leadership over to node %" PRIu64 ": stopped serving",
				 (uint64_t)raft_transferee(d->raft));
		else
			lead_log(d, TSORACLE_LOG_INFO,
				 "no longer leader (term %" PRIu64 ", now %s in term %" PRIu64 ")",
				 d->lead_term, raft_state_name(state), term);
	}
	/* Releasing: this member promised not to serve again in this term; a
	 * HighWater of its own (the fence) would take that back, so it waits
	 * until the handover has ended one way or the other. */
	releasing = d->releasing && term == d->lead_term;
	if (state == RAFT_LEADER && !handing_over && !releasing && !lead_clock_ok(&verdict))
		lead_clock_refuse(d, clk, term, &verdict);
	if (!d->leading && state == RAFT_LEADER && !handing_over && !releasing && lead_clock_ok(&verdict)) {
		/* Leader in the term it led before: a handover that did not
		 * complete. The fence and the new-leader wait run again, as if
		 * it had just won (safe, and simple). */
		if (term == d->lead_term && d->raised_term == term)
			lead_log(d, TSORACLE_LOG_INFO,
				 "fencing again in term %" PRIu64 " to record this member's wait in the log",
				 term);
		else if (term == d->lead_term)
			lead_log(d, TSORACLE_LOG_INFO,
				 "still leader in term %" PRIu64
				 " (the handover did not complete); fencing again",
				 term);
		else
			lead_log(d, TSORACLE_LOG_INFO,
				 "won the election for term %" PRIu64 "; running the fence", term);
		d->leading = true;
		d->lead_term = term;
	}
	if (d->leading && d->barrier_done && lead_fence_allowed(d, clk))
		lead_fence(d, clk);
	if (d->leading && !d->barrier_inflight && !d->barrier_done && d->alloc.epoch != d->lead_term &&
	    d->exhausted_term != d->lead_term)
		lead_start_barrier(d);
	if (d->leading) {
		lead_extend_if_due(d, clk);
		lead_lease_if_due(d, clk);
	}
	serving = ta_serving(&d->alloc, clk);
	if (serving && !d->was_serving)
		lead_log(d, TSORACLE_LOG_INFO,
			 "serving timestamps from %" PRIu64 " (high-water %" PRIu64 " ms)", d->alloc.last + 1,
			 d->alloc.high_water_ms);
	d->was_serving = serving;
	if (serving && d->host.ready != NULL)
		d->host.ready(d->host.arg);
}

int lead_grant(lead_driver *d, ta_clock clk, uint32_t n, uint64_t *first)
{
	int rc;

	/* Halted between two syncs (an apply just now): not one more grant. */
	if (d->state->halted && d->alloc.epoch != 0)
		lead_lose(d);
	/* Stepped down by libraft since the last sync (a higher term seen, its
	 * own removal committed, no quorum heard from): not one more grant,
	 * though the lease may not be over; the next sync ends the leadership
	 * and says why. Without this, a removed leader served until that sync
	 * (up to LEAD_TICK_MS: the simulation's SIM_P_REMOVED found it). */
	if (d->alloc.epoch != 0 && raft_state(d->raft) != RAFT_LEADER)
		return TA_NOT_LEADER;
	/* An Advance applied since the last sync counts from this grant on
	 * (tsoracle.h: every grant after its apply is at F or above). */
	ta_raise_floor(&d->alloc, d->state->floor_ms);
	/* The timestamps are ta_grant's, correct by I1-I7 because this driver
	 * feeds the allocator only what those invariants assume: H read after
	 * its own barrier (lead_fence), commits of its own term with their
	 * proposal times, the end of its leadership as soon as it sees it, F as
	 * applied, and the host's start floor. */
	clk = lead_clock_view(d, clk);
	rc = ta_grant(&d->alloc, clk, n, first);

	/* The grant hit H: extend now rather than at the next sync. */
	if (rc == TA_WAIT)
		lead_extend_if_due(d, clk);
	return rc;
}

uint64_t lead_room(const lead_driver *d, ta_clock clk)
{
	return d->state->halted ? 0 : ta_room(&d->alloc, lead_clock_view(d, clk));
}

bool lead_serving(const lead_driver *d, ta_clock clk)
{
	/* As lead_grant: a member libraft stepped down serves nothing more. */
	if (raft_state(d->raft) != RAFT_LEADER)
		return false;
	return ta_serving(&d->alloc, lead_clock_view(d, clk));
}

void lead_stop(lead_driver *d)
{
	ta_lead_end(&d->alloc);
	d->stopped = true;
	d->leading = false;
}
