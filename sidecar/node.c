/* node.c: one Raft member: libraft with the uv backend, the FSM, and the allocator driven by Raft events. */
#include "node.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "err.h"
#include "log.h"
#include "peer.h"

/* libraft's delay before another connection attempt to a member, ms. */
#define NODE_CONNECT_RETRY_MS 250

/* How often the leadership watch runs, ms. Bounds how late the node notices
 * a change of role; safety does not depend on it (the lease does that). */
#define NODE_TICK_MS 10

/* A barrier, remembering the term it was issued in, and which one it was:
 * after a handover that did not complete, a barrier issued before it may
 * still complete, and only the newest one may start the fence. */
typedef struct node_barrier {
	struct raft_barrier req;
	node *n;
	uint64_t term;
	uint64_t seq;
} node_barrier;

/* A HighWater proposal, remembering what the allocator must be told. */
typedef struct node_proposal {
	struct raft_apply req;
	node *n;
	uint64_t term;
	uint64_t mark;
	uint64_t proposed_mono_ms;
} node_proposal;

/* A Release proposal: the handover it belongs to. */
typedef struct node_release {
	struct raft_apply req;
	node *n;
	uint64_t term;
	uint64_t handover;
} node_release;

static void node_sync(node *n);
static void node_kick(node *n);
static uint16_t node_transfer_begin(node *n);

static void node_apply_cb(struct raft_apply *req, int status, void *result)
{
	node_proposal *p = req->data;
	node *n = p->n;

	(void)result;
	if (status == 0) {
		/* Committed and applied: the mark is durable on a majority. */
		ta_extension_commit(&n->alloc, p->term, p->mark, p->proposed_mono_ms);
		log_debug("high-water %" PRIu64 " committed (term %" PRIu64 ")", p->mark, p->term);
	} else {
		ta_extension_failed(&n->alloc, p->term);
		if (!n->closing && status != RAFT_LEADERSHIPLOST && status != RAFT_NOTLEADER)
			log_warn("high-water proposal %" PRIu64 " failed: %s", p->mark,
				 raft_strerror(status));
	}
	free(p);
	node_kick(n);
}

/* Proposes HighWater(mark); the allocator has marked it in flight. */
static void node_propose(node *n, uint64_t mark, uint64_t proposed_mono_ms)
{
	node_proposal *p = malloc(sizeof *p);
	struct raft_buffer buf;
	int rv;

	if (p == NULL || fsm_encode_high_water(mark, &buf) != 0) {
		free(p);
		log_error("out of memory proposing a high-water mark");
		ta_extension_failed(&n->alloc, n->lead_term);
		return;
	}
	p->req.data = p;
	p->n = n;
	p->term = n->lead_term;
	p->mark = mark;
	p->proposed_mono_ms = proposed_mono_ms;
	rv = raft_apply(&n->raft, &p->req, &buf, 1, node_apply_cb);
	if (rv != 0) {
		/* Not freeing buf.base: libraft 0.22.1 may already have released
		 * it on some failure paths, and a 9-byte leak on a rare error is
		 * better than a double free. */
		free(p);
		ta_extension_failed(&n->alloc, n->lead_term);
		log_warn("proposing high-water %" PRIu64 " failed: %s (%s)", mark, raft_strerror(rv),
			 raft_errmsg(&n->raft));
	}
}

/*
 * libraft's answer to a Release: committed, the handover goes on (the next
 * sync asks libraft for it); failed, the handover has failed (its waiters
 * are answered, and if this node still leads it fences again, see
 * node_sync). Runs inside libraft: records only.
 */
static void node_release_cb(struct raft_apply *req, int status, void *result)
{
	node_release *r = req->data;
	node *n = r->n;

	(void)result;
	if (n->releasing && n->transfer_count == r->handover) {
		/* (libraft fails a leader's pending entries when it steps down,
		 * so a success is always of the term we still lead in.) */
		if (status == 0 && r->term == n->lead_term) {
			n->release_committed = true;
		} else {
			n->releasing = false;
			n->transfer_ended = r->handover;
			if (!n->closing)
				log_warn("releasing the lease for the handover failed: %s",
					 raft_strerror(status));
		}
	}
	free(r);
	node_kick(n);
}

/* Proposes Release(lead_term) for the handover under way; 0, or -1 if it
 * could not be proposed (the caller hands over without it). */
static int node_propose_release(node *n)
{
	node_release *r = malloc(sizeof *r);
	struct raft_buffer buf;
	int rv;

	if (r == NULL || fsm_encode_release(n->lead_term, &buf) != 0) {
		free(r);
		return -1;
	}
	r->req.data = r;
	r->n = n;
	r->term = n->lead_term;
	r->handover = n->transfer_count;
	rv = raft_apply(&n->raft, &r->req, &buf, 1, node_release_cb);
	if (rv != 0) {
		free(r);
		log_warn("proposing the release of term %" PRIu64 " failed: %s (%s)", n->lead_term,
			 raft_strerror(rv), raft_errmsg(&n->raft));
		return -1;
	}
	return 0;
}

static void node_barrier_cb(struct raft_barrier *req, int status)
{
	node_barrier *b = req->data;
	node *n = b->n;
	uint64_t term = b->term;
	ta_clock clk;
	uint64_t mark;
	bool released;

	if (n->closing || !n->leading || n->lead_term != term || n->barrier_seq != b->seq) {
		free(b);
		return;
	}
	free(b);
	n->barrier_inflight = false;
	if (status != 0) {
		/* The next sync notices whether we still lead, and retries. */
		log_warn("barrier after election failed: %s", raft_strerror(status));
		n->leading = false;
		node_kick(n);
		return;
	}
	/* Every committed entry is applied now, so fsm_state holds a linearized
	 * read of H: the fence floor is computed from it (invariant I3). The
	 * fence mark is proposed by the next sync, outside raft's callback. */
	clk = clock_now();
	released = fsm_predecessor_released(&n->fsm_state, term);
	mark = ta_lead_begin(&n->alloc, term, n->fsm_state.high_water_ms, released, clk);
	if (mark == 0) {
		log_error("the timestamp range is exhausted (high-water %" PRIu64 " ms): refusing to serve",
			  n->fsm_state.high_water_ms);
		return;
	}
	n->fence_pending = true;
	n->fence_mark = mark;
	n->fence_mono_ms = clk.mono_ms;
	log_info("leader in term %" PRIu64 ": fencing at %" PRIu64 " ms (high-water was %" PRIu64 " ms)%s",
		 term, mark, n->fsm_state.high_water_ms,
		 released ? "; the leader of the term before released its lease: no wait" : "");
	node_kick(n);
}

static void node_start_barrier(node *n)
{
	node_barrier *b = malloc(sizeof *b);
	int rv;

	if (b == NULL) {
		log_error("out of memory starting a barrier");
		return;
	}
	b->req.data = b;
	b->n = n;
	b->term = n->lead_term;
	b->seq = ++n->barrier_seq;
	rv = raft_barrier(&n->raft, &b->req, node_barrier_cb);
	if (rv != 0) {
		free(b);
		log_warn("raft_barrier: %s", raft_strerror(rv));
		return;
	}
	n->barrier_inflight = true;
}

/* Stops serving at once; anything in flight is ignored by epoch (and the
 * barrier by its sequence number). */
static void node_lead_stop(node *n)
{
	ta_lead_end(&n->alloc);
	n->leading = false;
	n->barrier_inflight = false;
	n->fence_pending = false;
}

/* The outcome of a handover for one waiter, judged by the leader this node
 * knows now. */
static uint16_t node_transfer_outcome(node *n, const node_transfer_req *w, uint64_t *leader_id)
{
	*leader_id = node_leader_id(n);
	if (*leader_id != 0 && *leader_id != n->cfg->node_id && (w->target == 0 || w->target == *leader_id))
		return TP_OK;
	return TP_ERR_TRANSFER;
}

/* Unlinks and returns a waiter whose handover has ended (it waited for
 * handover number ended or an earlier one) or whose deadline has passed. */
static node_transfer_req *node_transfer_next_due(node *n, uint64_t ended, uint64_t now_ms)
{
	for (node_transfer_req **pp = &n->transfer_waiters; *pp != NULL; pp = &(*pp)->next) {
		node_transfer_req *w = *pp;

		if (w->handover <= ended || now_ms >= w->deadline_ms) {
			*pp = w->next;
			w->next = NULL;
			return w;
		}
	}
	return NULL;
}

/*
 * Answers the waiters that are due, one at a time from the live list: a
 * callback may cancel other waiters (the server closing on SIGTERM), or
 * start or join another handover, which is not answered here.
 */
static void node_transfer_answer(node *n, uint64_t ended, uint64_t now_ms)
{
	node_transfer_req *w;

	while ((w = node_transfer_next_due(n, ended, now_ms)) != NULL) {
		uint64_t leader = 0;
		uint16_t status = node_transfer_outcome(n, w, &leader);

		w->cb(w, status, leader);
	}
}

/* The leadership watch: reconciles the allocator with Raft's role, starts
 * due extensions, and tells the server when grants may succeed. */
static void node_sync(node *n)
{
	enum raft_state state;
	uint64_t term;
	ta_clock clk;
	bool handing_over;
	bool releasing;
	bool serving;

	if (n->fsm_state.halted) {
		/* The FSM cannot apply the log (fsm.h): serve nothing more and
		 * have the daemon stop, outside libraft's callbacks. */
		if (n->leading)
			node_lead_stop(n);
		if (!n->halt_reported && n->halt_cb != NULL) {
			n->halt_reported = true;
			n->halt_cb(n->halt_arg);
		}
		return;
	}
	if (n->release_committed) {
		/* Release(lead_term) is committed: every later leader's log holds
		 * it. Now ask libraft to hand over (before reading its state). */
		n->releasing = false;
		n->release_committed = false;
		if (node_transfer_begin(n) != TP_OK)
			n->transfer_ended = n->transfer_count;
	}
	state = raft_state(&n->raft);
	term = raft_current_term(&n->raft);
	clk = clock_now();
	/* libraft refuses new entries while it hands leadership over. */
	handing_over = state == RAFT_LEADER && raft_transferee(&n->raft) != 0;

	if (n->leading && (state != RAFT_LEADER || term != n->lead_term || handing_over)) {
		node_lead_stop(n);
		if (handing_over)
			log_info("handing leadership over to node %" PRIu64 ": stopped serving",
				 (uint64_t)raft_transferee(&n->raft));
		else
			log_info("no longer leader (term %" PRIu64 ", now %s in term %" PRIu64 ")",
				 n->lead_term, raft_state_name(state), term);
	}
	/* Releasing: this node promised not to serve again in this term; a
	 * HighWater of its own (the fence below) would take that back, so it
	 * waits until the handover has ended one way or the other. */
	releasing = n->releasing && term == n->lead_term;
	if (!n->leading && state == RAFT_LEADER && !handing_over && !releasing) {
		/* Leader in the term it led before: a handover that did not
		 * complete. The fence and the new-leader wait run again, as if
		 * it had just won (safe, and simple: see node.h). */
		if (term == n->lead_term)
			log_info("still leader in term %" PRIu64
				 " (the handover did not complete); fencing again",
				 term);
		else
			log_info("won the election for term %" PRIu64 "; running the fence", term);
		n->leading = true;
		n->lead_term = term;
	}
	if (n->transfer_ended != 0) {
		uint64_t ended = n->transfer_ended;

		n->transfer_ended = 0;
		log_info("handover ended after %" PRIu64 " ms: leader is node %" PRIu64 " (term %" PRIu64 ")",
			 clk.mono_ms - n->transfer_started_ms, node_leader_id(n), term);
		node_transfer_answer(n, ended, clk.mono_ms);
	} else if (n->transfer_waiters != NULL) {
		node_transfer_answer(n, 0, clk.mono_ms);
	}
	if (n->leading && !n->barrier_inflight && n->alloc.epoch != n->lead_term)
		node_start_barrier(n);
	if (n->leading && n->fence_pending) {
		n->fence_pending = false;
		node_propose(n, n->fence_mark, n->fence_mono_ms);
	}
	if (n->leading && ta_extension_due(&n->alloc, clk)) {
		uint64_t mark = ta_extension_prepare(&n->alloc, clk);

		if (mark != 0)
			node_propose(n, mark, clk.mono_ms);
	}
	serving = ta_serving(&n->alloc, clk);
	if (serving && !n->was_serving)
		log_info("serving timestamps from %" PRIu64 " (high-water %" PRIu64 " ms)", n->alloc.last + 1,
			 n->alloc.high_water_ms);
	n->was_serving = serving;
	if (serving && n->ready_cb != NULL)
		n->ready_cb(n->ready_arg);
}

static void node_tick_cb(uv_timer_t *t)
{
	node *n = t->data;

	clock_poll_offset_file();
	node_sync(n);
}

static void node_kick_cb(uv_timer_t *t)
{
	node_sync(t->data);
}

/*
 * Runs node_sync at the start of the next loop iteration. Raft callbacks
 * use this rather than calling raft_apply themselves: libraft 0.22.1's
 * legacy layer does not expect new requests from inside its completion
 * callbacks (seen: a failed append whose buffer it had already freed).
 */
static void node_kick(node *n)
{
	if (!n->closing && n->kick.data != NULL)
		uv_timer_start(&n->kick, node_kick_cb, 0, 0);
}

static int node_mkdir(const char *dir, char *err, size_t errlen)
{
	struct stat st;

	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return err_set(err, errlen, "could not create data directory \"%s\": %s", dir,
			       strerror(errno));
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
		return err_set(err, errlen, "data directory \"%s\" is not a directory", dir);
	if (access(dir, R_OK | W_OK | X_OK) != 0)
		return err_set(err, errlen, "data directory \"%s\" is not writable: %s", dir,
			       strerror(errno));
	return 0;
}

/* The Raft transport: TCP between members, keyed with the cluster's secrets
 * (peer.h). They live only in the transport; this copy is wiped. */
static int node_init_transport(node *n, uv_loop_t *loop, char *err, size_t errlen)
{
	const cfg *c = n->cfg;
	peer_secrets secrets;
	int rv;

	memset(&secrets, 0, sizeof secrets);
	secrets.n = 1; /* no file: one empty secret */
	if (c->peer_secret_file[0] != '\0' &&
	    peer_load_secrets(c->peer_secret_file, &secrets, err, errlen) != 0)
		return -1;
	rv = peer_transport_init(&n->transport, loop, &secrets, err, errlen);
	peer_secrets_wipe(&secrets);
	if (rv != 0)
		return -1;
	n->transport_initialized = true;
	if (c->peer_secret_file[0] != '\0')
		log_info("Raft peers must prove they hold a secret of %s", c->peer_secret_file);
	else if (c->n_peers > 1)
		log_warn("Raft peer connections are not authenticated (no peer-secret-file; every member is "
			 "on loopback, so only this host can reach them)");
	return 0;
}

void node_reload_secrets(node *n)
{
	const cfg *c = n->cfg;
	peer_secrets secrets;
	char err[256];

	if (c->peer_secret_file[0] == '\0' || !n->transport_initialized)
		return;
	if (peer_load_secrets(c->peer_secret_file, &secrets, err, sizeof err) != 0) {
		log_error("%s; the secrets read before stay in use", err);
		return;
	}
	peer_transport_set_secrets(&n->transport, &secrets);
	log_info("reloaded %s: %d secret(s); new connections answer with the first and accept any",
		 c->peer_secret_file, secrets.n);
	peer_secrets_wipe(&secrets);
}

int node_init(node *n, uv_loop_t *loop, const cfg *c, char *err, size_t errlen)
{
	struct raft_configuration conf;
	int rv;

	memset(n, 0, sizeof *n);
	n->loop = loop;
	n->cfg = c;
	n->last_result = TA_NOT_LEADER;
	ta_init(&n->alloc, &c->alloc);
	fsm_init(&n->fsm, &n->fsm_state);

	if (node_mkdir(c->data_dir, err, errlen) != 0)
		return -1;

	if (node_init_transport(n, loop, err, errlen) != 0)
		return -1;

	rv = raft_uv_init(&n->io, loop, c->data_dir, &n->transport);
	if (rv != 0)
		return err_set(err, errlen, "raft_uv_init(\"%s\"): %s", c->data_dir, n->io.errmsg);
	n->io_initialized = true;
	/* libraft waits this long before it connects again to a member it
	 * could not reach (default 1 s): with peer.c's bounded connects, a
	 * member is reached again within about a second of a partition
	 * healing. */
	raft_uv_set_connect_retry_delay(&n->io, NODE_CONNECT_RETRY_MS);

	rv = raft_init(&n->raft, &n->io, &n->fsm, c->node_id, c->raft_address);
	if (rv != 0)
		return err_set(err, errlen, "raft_init: %s", raft_errmsg(&n->raft));
	n->raft.data = n;
	n->raft_initialized = true;

	raft_configuration_init(&conf);
	for (unsigned i = 0; i < c->n_peers; i++) {
		rv = raft_configuration_add(&conf, c->peers[i].id, c->peers[i].address, RAFT_VOTER);
		if (rv != 0) {
			raft_configuration_close(&conf);
			return err_set(err, errlen, "raft_configuration_add: %s", raft_strerror(rv));
		}
	}
	/* Bootstraps only a pristine directory; a restart reuses its log. */
	rv = raft_bootstrap(&n->raft, &conf);
	raft_configuration_close(&conf);
	if (rv == 0)
		log_info("bootstrapped a new cluster of %u member(s) in %s", c->n_peers, c->data_dir);
	else if (rv != RAFT_CANTBOOTSTRAP)
		return err_set(err, errlen, "raft_bootstrap: %s", raft_errmsg(&n->raft));

	raft_set_election_timeout(&n->raft, c->election_timeout_ms);
	raft_set_heartbeat_timeout(&n->raft, c->heartbeat_ms);
	raft_set_snapshot_threshold(&n->raft, c->snapshot_threshold);
	raft_set_snapshot_trailing(&n->raft, c->snapshot_trailing);
	raft_set_pre_vote(&n->raft, true);
	raft_seed(&n->raft, (unsigned)(clock_mono_ms() ^ (uint64_t)getpid() ^ c->node_id));

	rv = uv_timer_init(loop, &n->tick);
	if (rv != 0)
		return err_set(err, errlen, "uv_timer_init: %s", uv_strerror(rv));
	n->tick.data = n;
	rv = uv_timer_init(loop, &n->kick);
	if (rv != 0)
		return err_set(err, errlen, "uv_timer_init: %s", uv_strerror(rv));
	n->kick.data = n;
	return 0;
}

int node_start(node *n, char *err, size_t errlen)
{
	int rv = raft_start(&n->raft);

	if (rv != 0)
		return err_set(err, errlen, "raft_start: %s",
			       n->fsm_state.halted ? n->fsm_state.halt_reason : raft_errmsg(&n->raft));
	rv = uv_timer_start(&n->tick, node_tick_cb, NODE_TICK_MS, NODE_TICK_MS);
	if (rv != 0)
		return err_set(err, errlen, "uv_timer_start: %s", uv_strerror(rv));
	log_info("raft started: node %" PRIu64 " at %s, high-water %" PRIu64 " ms, last index %" PRIu64,
		 n->cfg->node_id, n->cfg->raft_address, n->fsm_state.high_water_ms,
		 (uint64_t)raft_last_index(&n->raft));
	return 0;
}

void node_set_ready_cb(node *n, node_ready_cb cb, void *arg)
{
	n->ready_cb = cb;
	n->ready_arg = arg;
}

void node_set_halt_cb(node *n, node_halt_cb cb, void *arg)
{
	n->halt_cb = cb;
	n->halt_arg = arg;
}

int node_grant(node *n, uint32_t count, uint64_t *first)
{
	ta_clock clk = clock_now();
	int rc;

	/* Halted between two syncs (an apply just now): not one more grant. */
	if (n->fsm_state.halted)
		ta_lead_end(&n->alloc);
	rc = ta_grant(&n->alloc, clk, count, first);

	n->last_result = rc;
	if (rc == TA_WAIT && ta_extension_due(&n->alloc, clk)) {
		/* The grant hit H: extend now rather than at the next tick. */
		uint64_t mark = ta_extension_prepare(&n->alloc, clk);

		if (mark != 0)
			node_propose(n, mark, clk.mono_ms);
	}
	return rc;
}

uint64_t node_room(node *n)
{
	return ta_room(&n->alloc, clock_now());
}

uint16_t node_wait_status(const node *n)
{
	switch (n->last_result) {
	case TA_WAIT:
		return TP_ERR_TIMEOUT;
	case TA_EXHAUSTED:
		return TP_ERR_EXHAUSTED;
	default:
		return TP_ERR_UNAVAILABLE;
	}
}

void node_status(node *n, tp_status *st)
{
	raft_id leader_id = 0;
	const char *leader_address = NULL;
	enum raft_state state = raft_state(&n->raft);

	memset(st, 0, sizeof *st);
	raft_leader(&n->raft, &leader_id, &leader_address);
	st->node_id = (uint32_t)n->cfg->node_id;
	st->leader_id = (uint32_t)leader_id;
	switch (state) {
	case RAFT_FOLLOWER:
		st->role = TP_ROLE_FOLLOWER;
		break;
	case RAFT_CANDIDATE:
		st->role = TP_ROLE_CANDIDATE;
		break;
	case RAFT_LEADER:
		st->role = TP_ROLE_LEADER;
		break;
	default:
		st->role = TP_ROLE_UNAVAILABLE;
		break;
	}
	if (ta_serving(&n->alloc, clock_now()))
		st->flags |= TP_FLAG_SERVING;
	st->term = raft_current_term(&n->raft);
	st->high_water_ms = n->fsm_state.high_water_ms > n->alloc.high_water_ms ? n->fsm_state.high_water_ms
										: n->alloc.high_water_ms;
	st->commit_index = raft_commit_index(&n->raft);
	st->applied_index = raft_last_applied(&n->raft);
	st->last_issued = n->alloc.last_issued;
	st->grants = n->alloc.grants;
	st->timestamps = n->alloc.timestamps;
}

static void node_tick_close_cb(uv_handle_t *h)
{
	node *n = h->data;

	if (n->close_cb != NULL)
		n->close_cb(n);
}

static void node_release_io(node *n)
{
	if (n->io_initialized)
		raft_uv_close(&n->io);
	if (n->transport_initialized)
		peer_transport_release(&n->transport);
	n->io_initialized = false;
	n->transport_initialized = false;
	if (n->kick.data != NULL)
		uv_close((uv_handle_t *)&n->kick, NULL);
	if (n->tick.data != NULL)
		uv_close((uv_handle_t *)&n->tick, node_tick_close_cb);
	else if (n->close_cb != NULL)
		n->close_cb(n);
}

static void node_raft_close_cb(struct raft *r)
{
	node_release_io(r->data);
}

void node_close(node *n, node_close_cb cb)
{
	n->closing = true;
	n->close_cb = cb;
	while (n->transfer_waiters != NULL) {
		node_transfer_req *w = n->transfer_waiters;

		n->transfer_waiters = w->next;
		w->next = NULL;
		w->cb(w, TP_ERR_SHUTTING_DOWN, 0);
	}
	ta_lead_end(&n->alloc);
	if (n->tick.data != NULL)
		uv_timer_stop(&n->tick);
	if (n->kick.data != NULL)
		uv_timer_stop(&n->kick);
	if (n->raft_initialized) {
		n->raft_initialized = false;
		raft_close(&n->raft, node_raft_close_cb);
	} else {
		node_release_io(n);
	}
}

bool node_is_leader(node *n)
{
	return raft_state(&n->raft) == RAFT_LEADER;
}

uint64_t node_leader_id(node *n)
{
	raft_id id = 0;
	const char *address = NULL;

	raft_leader(&n->raft, &id, &address);
	return id;
}

/*
 * libraft's handover ended: this node learned of a leader as a follower, or
 * it is still leader and libraft gave up (an election timeout passed), or
 * Raft is closing. Runs inside libraft: only records it, and the next sync
 * answers the waiters (see node_kick).
 */
static void node_transfer_raft_cb(struct raft_transfer *req)
{
	node *n = req->data;

	free(req);
	n->transfer = NULL;
	n->transfer_ended = n->transfer_count;
	node_kick(n);
}

/* Why target cannot take over from this node, or NULL if it can: it must
 * be another voter (members are the configured peers, all voters). */
static const char *node_transfer_refusal(const node *n, uint64_t target)
{
	if (target == n->cfg->node_id)
		return "the target is this node";
	if (n->cfg->n_peers < 2)
		return "there is no other member";
	if (target == 0)
		return NULL;
	for (unsigned i = 0; i < n->cfg->n_peers; i++)
		if (n->cfg->peers[i].id == target)
			return NULL;
	return "the target is not a member";
}

/*
 * Asks libraft for the handover under way (to transfer_target) and stops
 * serving. Returns TP_OK, or the answer for the waiters if libraft refuses.
 */
static uint16_t node_transfer_begin(node *n)
{
	struct raft_transfer *t = calloc(1, sizeof *t);
	int rv;

	if (t == NULL) {
		log_error("out of memory starting a handover");
		return TP_ERR_INTERNAL;
	}
	t->data = n;
	rv = raft_transfer(&n->raft, t, n->transfer_target, node_transfer_raft_cb);
	if (rv != 0) {
		free(t);
		log_info("not handing leadership over: %s", raft_errmsg(&n->raft));
		return rv == RAFT_NOMEM ? TP_ERR_INTERNAL : TP_ERR_TRANSFER;
	}
	/*
	 * Stop serving now, before control returns to the loop (grants are
	 * made only from it): our last grant was made before raft_transfer
	 * sent TimeoutNow, so before the target's election. (libraft refuses
	 * new entries meanwhile, so the lease could not be renewed anyway.)
	 * Without a release, safety does not rest on this: the new leader
	 * waits out our lease (node.h). After a release, this node stopped
	 * earlier still.
	 */
	node_lead_stop(n);
	n->transfer = t;
	log_info("handing leadership over to node %" PRIu64 "%s: stopped serving",
		 (uint64_t)raft_transferee(&n->raft),
		 n->transfer_target == 0 ? " (Raft's pick: a caught-up voter if there is one)" : "");
	return TP_OK;
}

uint16_t node_transfer(node *n, node_transfer_req *req, uint64_t target, node_transfer_cb cb)
{
	ta_clock clk = clock_now();
	node_transfer_req **pp;
	const char *refusal;
	uint16_t status;

	if (n->closing)
		return TP_ERR_SHUTTING_DOWN;
	if (raft_state(&n->raft) != RAFT_LEADER)
		return TP_ERR_NOT_LEADER;
	req->cb = cb;
	req->target = target;
	req->deadline_ms =
	    clk.mono_ms + (uint64_t)n->cfg->election_timeout_ms * NODE_TRANSFER_TIMEOUT_ELECTIONS;
	if (n->transfer == NULL && !n->releasing) {
		/* libraft takes one handover at a time; later requests join it. */
		refusal = node_transfer_refusal(n, target);
		if (refusal != NULL) {
			if (target != 0)
				log_info("not handing leadership over to node %" PRIu64 ": %s", target,
					 refusal);
			else
				log_info("not handing leadership over: %s", refusal);
			return TP_ERR_BAD_REQUEST;
		}
		n->transfer_target = target;
		if (n->leading && ta_established(&n->alloc, clk)) {
			/*
			 * Stop serving for good in this term, then say so in the
			 * log: the next leader, finding Release(term) at the end
			 * of its log, may serve without waiting out our lease
			 * (alloc.h, I4). Established: no leader before us serves
			 * again, which the release also promises.
			 */
			node_lead_stop(n);
			n->transfer_count++;
			if (node_propose_release(n) == 0) {
				n->releasing = true;
				n->release_committed = false;
				if (target != 0)
					log_info("handing leadership over to node %" PRIu64
						 ": stopped serving, releasing the lease of term %" PRIu64,
						 target, n->lead_term);
				else
					log_info("handing leadership over: stopped serving, releasing the "
						 "lease of term %" PRIu64,
						 n->lead_term);
			} else if (node_transfer_begin(n) != TP_OK) {
				n->transfer_ended = n->transfer_count;
				node_kick(n);
			}
		} else {
			status = node_transfer_begin(n);
			if (status != TP_OK)
				return status;
			n->transfer_count++;
		}
		n->transfer_started_ms = clk.mono_ms;
	}
	/* Appended: waiters are answered in the order they came. */
	req->handover = n->transfer_count;
	req->next = NULL;
	pp = &n->transfer_waiters;
	while (*pp != NULL)
		pp = &(*pp)->next;
	*pp = req;
	return TP_OK;
}

void node_transfer_cancel(node *n, node_transfer_req *req)
{
	for (node_transfer_req **pp = &n->transfer_waiters; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == req) {
			*pp = req->next;
			req->next = NULL;
			return;
		}
	}
}
