/* sim_node.c: one simulated tsoracled: the allocator driven from Raft events exactly as sidecar/node.c does.
 */
#include "sim_node.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_trace.h"

/* node_barrier: a barrier, remembering the term it was issued in. */
typedef struct sim_barrier {
	struct raft_barrier req;
	sim_node *n;
	uint32_t incarnation;
	uint64_t term;
} sim_barrier;

/* node_proposal: a HighWater proposal, remembering what the allocator must be told. */
typedef struct sim_proposal {
	struct raft_apply req;
	sim_node *n;
	uint32_t incarnation;
	uint64_t term;
	uint64_t mark;
	uint64_t proposed_mono_ms;
} sim_proposal;

/* node_release: a Release proposal and the handover it belongs to. */
typedef struct sim_release {
	struct raft_apply req;
	sim_node *n;
	uint32_t incarnation;
	uint64_t term;
	uint64_t handover;
} sim_release;

/* A raft_transfer request and the process that made it. */
typedef struct sim_transfer {
	struct raft_transfer req;
	sim_node *n;
	uint32_t incarnation;
} sim_transfer;

static void *sim_xmalloc(size_t size)
{
	void *p = malloc(size);

	if (p == NULL) {
		fprintf(stderr, "sim: out of memory\n");
		exit(2);
	}
	return p;
}

ta_clock sim_node_clock(const sim_node *n)
{
	return sim_clock_at(n->clock, *n->now_ms);
}

void sim_node_init(sim_node *n, unsigned index, struct raft *raft, const fsm_state *fsm,
		   const sim_clock *clock, const uint64_t *now_ms, const ta_config *cfg)
{
	uint32_t incarnation = n->incarnation;

	memset(n, 0, sizeof *n);
	n->index = index;
	n->raft = raft;
	n->fsm = fsm;
	n->clock = clock;
	n->now_ms = now_ms;
	n->incarnation = incarnation;
	n->next_watch_ms = *now_ms + SIM_NODE_WATCH_MS;
	ta_init(&n->alloc, cfg);
}

void sim_node_add_counters(const sim_node *n, sim_node_counters *sum)
{
	sum->n_leads += n->counters.n_leads;
	sum->n_proposals += n->counters.n_proposals;
	sum->n_commits += n->counters.n_commits;
	sum->n_apply_errors += n->counters.n_apply_errors;
	sum->n_transfers += n->counters.n_transfers;
	sum->n_releases += n->counters.n_releases;
	sum->n_released_leads += n->counters.n_released_leads;
}

void sim_node_crash(sim_node *n)
{
	n->incarnation++;
	n->n_events = 0;
}

/* Runs inside raft_fixture_step(): records only (see sim_node.h). */
static void sim_node_record(sim_node *n, uint32_t incarnation, sim_event ev)
{
	if (incarnation != n->incarnation)
		return; /* that process is dead */
	if (n->n_events == SIM_NODE_MAX_EVENTS) {
		fprintf(stderr, "sim: node %u: more than %d callbacks pending\n", n->index,
			SIM_NODE_MAX_EVENTS);
		abort();
	}
	n->events[n->n_events++] = ev;
}

static void sim_node_apply_cb(struct raft_apply *req, int status, void *result)
{
	sim_proposal *p = req->data;

	(void)result;
	sim_node_record(p->n, p->incarnation,
			(sim_event){.kind = status == 0 ? SIM_EV_COMMITTED : SIM_EV_FAILED,
				    .status = status,
				    .term = p->term,
				    .mark = p->mark,
				    .proposed_mono_ms = p->proposed_mono_ms});
	free(p);
}

static void sim_node_barrier_cb(struct raft_barrier *req, int status)
{
	sim_barrier *b = req->data;

	sim_node_record(b->n, b->incarnation,
			(sim_event){.kind = SIM_EV_BARRIER, .status = status, .term = b->term});
	free(b);
}

/* node_apply_cb, after the step. */
static void sim_node_on_apply(sim_node *n, const sim_event *ev)
{
	if (ev->kind == SIM_EV_COMMITTED) {
		ta_extension_commit(&n->alloc, ev->term, ev->mark, ev->proposed_mono_ms);
		n->counters.n_commits++;
		SIM_TRACE("%6" PRIu64 " n%u high-water %" PRIu64 " committed (term %" PRIu64
			  ", proposed at mono %" PRIu64 ")",
			  *n->now_ms, n->index, ev->mark, ev->term, ev->proposed_mono_ms);
	} else {
		ta_extension_failed(&n->alloc, ev->term);
		SIM_TRACE("%6" PRIu64 " n%u high-water %" PRIu64 " failed: %s (term %" PRIu64 ")", *n->now_ms,
			  n->index, ev->mark, raft_strerror(ev->status), ev->term);
	}
	n->kicked = true;
}

/* node_barrier_cb, after the step. */
static void sim_node_on_barrier(sim_node *n, const sim_event *ev)
{
	ta_clock clk;
	uint64_t mark;
	bool released;

	if (!n->leading || n->lead_term != ev->term)
		return;
	n->barrier_inflight = false;
	if (ev->status != 0) {
		SIM_TRACE_KEY("%6" PRIu64 " n%u barrier failed: %s", *n->now_ms, n->index,
			      raft_strerror(ev->status));
		n->leading = false;
		n->kicked = true;
		return;
	}
	/* I3: every committed entry is applied, so the FSM holds a linearized
	 * read of H. */
	clk = sim_node_clock(n);
	released = fsm_predecessor_released(n->fsm, ev->term);
	mark = ta_lead_begin(&n->alloc, ev->term, n->fsm->high_water_ms, released, clk);
	if (mark == 0) {
		SIM_TRACE_KEY("%6" PRIu64 " n%u timestamp range exhausted", *n->now_ms, n->index);
		return;
	}
	n->counters.n_leads++;
	if (released)
		n->counters.n_released_leads++;
	n->fence_pending = true;
	n->fence_mark = mark;
	n->fence_mono_ms = clk.mono_ms;
	SIM_TRACE_KEY("%6" PRIu64 " n%u leader in term %" PRIu64 ": fence %" PRIu64 " (FSM H %" PRIu64
		      "), serves from mono %" PRIu64 "%s",
		      *n->now_ms, n->index, ev->term, mark, n->fsm->high_water_ms, n->alloc.lease_not_before,
		      released ? " (predecessor released: no wait)" : "");
	n->kicked = true;
}

static void sim_node_release_cb(struct raft_apply *req, int status, void *result)
{
	sim_release *r = req->data;

	(void)result;
	sim_node_record(
	    r->n, r->incarnation,
	    (sim_event){.kind = SIM_EV_RELEASED, .status = status, .term = r->term, .handover = r->handover});
	free(r);
}

static void sim_node_transfer_cb(struct raft_transfer *req)
{
	sim_transfer *t = (sim_transfer *)req;

	sim_node_record(t->n, t->incarnation, (sim_event){.kind = SIM_EV_TRANSFER_ENDED});
	free(t);
}

/* node_release_cb, after the step. */
static void sim_node_on_released(sim_node *n, const sim_event *ev)
{
	if (n->releasing && n->transfer_count == ev->handover) {
		if (ev->status == 0 && ev->term == n->lead_term)
			n->release_committed = true;
		else
			n->releasing = false;
		SIM_TRACE_KEY("%6" PRIu64 " n%u release of term %" PRIu64 " %s", *n->now_ms, n->index,
			      n->lead_term, ev->status == 0 ? "committed" : raft_strerror(ev->status));
	}
	n->kicked = true;
}

/* node_transfer_raft_cb, after the step. */
static void sim_node_on_transfer_ended(sim_node *n)
{
	n->transfer_inflight = false;
	SIM_TRACE_KEY("%6" PRIu64 " n%u handover ended: %s in term %llu", *n->now_ms, n->index,
		      raft_state_name(raft_state(n->raft)), (unsigned long long)raft_current_term(n->raft));
	n->kicked = true;
}

/* node_lead_stop */
static void sim_node_lead_stop(sim_node *n)
{
	ta_lead_end(&n->alloc);
	n->leading = false;
	n->barrier_inflight = false;
	n->fence_pending = false;
}

/* node_transfer_begin: asks libraft, and stops serving. */
static bool sim_node_transfer_begin(sim_node *n)
{
	sim_transfer *t = sim_xmalloc(sizeof *t);
	int rv;

	t->n = n;
	t->incarnation = n->incarnation;
	rv = raft_transfer(n->raft, &t->req, n->transfer_target, sim_node_transfer_cb);
	if (rv != 0) {
		free(t);
		SIM_TRACE_KEY("%6" PRIu64 " n%u raft_transfer: %s", *n->now_ms, n->index, raft_strerror(rv));
		return false;
	}
	sim_node_lead_stop(n);
	n->transfer_inflight = true;
	SIM_TRACE_KEY("%6" PRIu64 " n%u handing over to %llu: stopped serving", *n->now_ms, n->index,
		      (unsigned long long)raft_transferee(n->raft));
	return true;
}

/* node_propose_release */
static bool sim_node_propose_release(sim_node *n)
{
	sim_release *r = sim_xmalloc(sizeof *r);
	struct raft_buffer buf;
	int rv;

	if (fsm_encode_release(n->lead_term, &buf) != 0) {
		fprintf(stderr, "sim: out of memory\n");
		exit(2);
	}
	r->req.data = r;
	r->n = n;
	r->incarnation = n->incarnation;
	r->term = n->lead_term;
	r->handover = n->transfer_count;
	rv = raft_apply(n->raft, &r->req, &buf, 1, sim_node_release_cb);
	if (rv != 0) {
		free(r);
		SIM_TRACE_KEY("%6" PRIu64 " n%u proposing the release failed: %s", *n->now_ms, n->index,
			      raft_strerror(rv));
		return false;
	}
	return true;
}

bool sim_node_transfer(sim_node *n, int target)
{
	ta_clock clk = sim_node_clock(n);

	if (raft_state(n->raft) != RAFT_LEADER || n->transfer_inflight || n->releasing)
		return false;
	n->transfer_target = target < 0 ? 0 : (uint64_t)target + 1;
	n->counters.n_transfers++;
	if (n->leading && ta_established(&n->alloc, clk)) {
		sim_node_lead_stop(n);
		n->transfer_count++;
		if (sim_node_propose_release(n)) {
			n->releasing = true;
			n->release_committed = false;
			n->counters.n_releases++;
			SIM_TRACE_KEY("%6" PRIu64
				      " n%u handing over: stopped serving, releasing term %" PRIu64,
				      *n->now_ms, n->index, n->lead_term);
			return true;
		}
		return sim_node_transfer_begin(n);
	}
	if (!sim_node_transfer_begin(n))
		return false;
	n->transfer_count++;
	return true;
}

/* node_propose: the allocator has marked the proposal in flight. */
static void sim_node_propose(sim_node *n, uint64_t mark, uint64_t proposed_mono_ms)
{
	sim_proposal *p = sim_xmalloc(sizeof *p);
	struct raft_buffer buf;
	int rv;

	if (fsm_encode_high_water(mark, &buf) != 0) {
		fprintf(stderr, "sim: out of memory\n");
		exit(2);
	}
	p->req.data = p;
	p->n = n;
	p->incarnation = n->incarnation;
	p->term = n->lead_term;
	p->mark = mark;
	p->proposed_mono_ms = proposed_mono_ms;
	rv = raft_apply(n->raft, &p->req, &buf, 1, sim_node_apply_cb);
	if (rv != 0) {
		/* As node.c: buf.base is not freed (libraft may have). */
		free(p);
		ta_extension_failed(&n->alloc, n->lead_term);
		n->counters.n_apply_errors++;
		SIM_TRACE("%6" PRIu64 " n%u proposing %" PRIu64 " failed: %s", *n->now_ms, n->index, mark,
			  raft_strerror(rv));
		return;
	}
	n->counters.n_proposals++;
	SIM_TRACE("%6" PRIu64 " n%u propose high-water %" PRIu64 " (term %" PRIu64 ", mono %" PRIu64 ")",
		  *n->now_ms, n->index, mark, n->lead_term, proposed_mono_ms);
}

/* node_start_barrier */
static void sim_node_start_barrier(sim_node *n)
{
	sim_barrier *b = sim_xmalloc(sizeof *b);
	int rv;

	b->req.data = b;
	b->n = n;
	b->incarnation = n->incarnation;
	b->term = n->lead_term;
	rv = raft_barrier(n->raft, &b->req, sim_node_barrier_cb);
	if (rv != 0) {
		free(b);
		SIM_TRACE_KEY("%6" PRIu64 " n%u raft_barrier: %s", *n->now_ms, n->index, raft_strerror(rv));
		return;
	}
	n->barrier_inflight = true;
}

/* node_sync: reconciles the allocator with Raft's role and starts due
 * extensions. */
static void sim_node_sync(sim_node *n)
{
	enum raft_state state;
	uint64_t term;
	ta_clock clk = sim_node_clock(n);
	bool handing_over;
	bool releasing;

	if (n->release_committed) {
		n->releasing = false;
		n->release_committed = false;
		(void)sim_node_transfer_begin(n);
	}
	state = raft_state(n->raft);
	term = raft_current_term(n->raft);
	handing_over = state == RAFT_LEADER && raft_transferee(n->raft) != 0;

	if (n->leading && (state != RAFT_LEADER || term != n->lead_term || handing_over)) {
		sim_node_lead_stop(n);
		SIM_TRACE_KEY("%6" PRIu64 " n%u no longer leader (term %" PRIu64 ", now %s in term %" PRIu64
			      ")",
			      *n->now_ms, n->index, n->lead_term, raft_state_name(state), term);
	}
	releasing = n->releasing && term == n->lead_term;
	if (!n->leading && state == RAFT_LEADER && !handing_over && !releasing) {
		n->leading = true;
		n->lead_term = term;
		SIM_TRACE_KEY("%6" PRIu64 " n%u won the election for term %" PRIu64, *n->now_ms, n->index,
			      term);
	}
	if (n->leading && !n->barrier_inflight && n->alloc.epoch != n->lead_term)
		sim_node_start_barrier(n);
	if (n->leading && n->fence_pending) {
		n->fence_pending = false;
		sim_node_propose(n, n->fence_mark, n->fence_mono_ms);
	}
	if (n->leading && ta_extension_due(&n->alloc, clk)) {
		uint64_t mark = ta_extension_prepare(&n->alloc, clk);

		if (mark != 0)
			sim_node_propose(n, mark, clk.mono_ms);
	}
}

void sim_node_after_step(sim_node *n)
{
	uint64_t now = *n->now_ms;

	for (unsigned i = 0; i < n->n_events; i++) {
		switch (n->events[i].kind) {
		case SIM_EV_BARRIER:
			sim_node_on_barrier(n, &n->events[i]);
			break;
		case SIM_EV_RELEASED:
			sim_node_on_released(n, &n->events[i]);
			break;
		case SIM_EV_TRANSFER_ENDED:
			sim_node_on_transfer_ended(n);
			break;
		default:
			sim_node_on_apply(n, &n->events[i]);
			break;
		}
	}
	n->n_events = 0;
	if (now >= n->next_watch_ms) {
		n->next_watch_ms = now + SIM_NODE_WATCH_MS; /* a libuv repeating timer */
		n->kicked = true;
	}
	if (n->kicked) {
		n->kicked = false;
		sim_node_sync(n);
	}
}

int sim_node_grant(sim_node *n, uint32_t count, uint64_t *first)
{
	ta_clock clk = sim_node_clock(n);
	int rc = ta_grant(&n->alloc, clk, count, first);

	if (rc == TA_WAIT && ta_extension_due(&n->alloc, clk)) {
		/* The grant hit H: extend now rather than at the next tick. */
		uint64_t mark = ta_extension_prepare(&n->alloc, clk);

		if (mark != 0)
			sim_node_propose(n, mark, clk.mono_ms);
	}
	return rc;
}
