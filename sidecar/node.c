/* node.c: one Raft member: libraft with the uv backend and the peer transport, hosting the leadership driver.
 */
#include "node.h"

#include <netinet/in.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "err.h"
#include "log.h"
#include "peer.h"
#include "tls.h"

/* libraft's delay before another connection attempt to a member, ms. */
#define NODE_CONNECT_RETRY_MS 250
#define NODE_NS_PER_MS        1000000

/* The driver's host interface (include/tsoracle.h). */
static void node_kick(void *arg);
static void node_ready(void *arg);
static void node_log(void *arg, int level, const char *msg);

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
	node_transfer_req *w;

	TAILQ_FOREACH(w, &n->transfer_waiters, link)
	{
		if (w->handover <= ended || now_ms >= w->deadline_ms) {
			node_transfer_cancel(n, w);
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

/*
 * The metrics' view of leadership, after each lead_sync (so within
 * LEAD_TICK_MS of a change): a new leader known, and this member's
 * leaderships timed from the sync that saw it lead to the sync that saw
 * it serve (lead_sync is where serving starts). A leadership lost before
 * it served is not timed.
 */
static void node_watch_leadership(node *n, uint64_t mono_ms)
{
	uint64_t leader = node_leader_id(n);

	if (leader != 0 && leader != n->seen_leader) {
		n->stats.leader_changes++;
		n->seen_leader = leader;
	}
	if (n->lead.leading && !n->was_leading)
		n->fence_start_ms = mono_ms;
	else if (!n->lead.leading)
		n->fence_start_ms = 0;
	n->was_leading = n->lead.leading;
	if (n->fence_start_ms != 0 && n->lead.was_serving) {
		metrics_hist_observe(&n->stats.fence, METRICS_HIST_FENCE,
				     (mono_ms - n->fence_start_ms) * NODE_NS_PER_MS, 1);
		n->fence_start_ms = 0;
	}
}

/* The driver's watch at this moment, then the handover waiters that are
 * due. From the loop only (the timers), never inside a libraft callback. */
static void node_sync(node *n)
{
	ta_clock clk = clock_now();
	uint64_t ended;

	lead_sync(&n->lead, clk);
	node_watch_leadership(n, clk.mono_ms);
	if (n->fsm_state.halted) {
		/* The FSM cannot apply the log (tsoracle.h): the driver serves
		 * nothing more; the daemon stops, outside libraft's callbacks. */
		if (!n->halt_reported && n->halt_cb != NULL) {
			n->halt_reported = true;
			n->halt_cb(n->halt_arg);
		}
		return;
	}
	member_sync(n);
	/* A member just removed is cut off now (peer.h). */
	if (n->transport_initialized)
		peer_transport_prune(&n->transport);
	ended = lead_handover_ended(&n->lead);
	if (ended != 0) {
		log_info("handover ended after %" PRIu64 " ms: leader is node %" PRIu64 " (term %" PRIu64 ")",
			 clk.mono_ms - n->transfer_started_ms, node_leader_id(n),
			 (uint64_t)raft_current_term(&n->raft));
		node_transfer_answer(n, ended, clk.mono_ms);
	} else if (!TAILQ_EMPTY(&n->transfer_waiters)) {
		node_transfer_answer(n, 0, clk.mono_ms);
	}
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
 * Runs node_sync at the start of the next loop iteration: the driver asks
 * for this from inside libraft's callbacks, where it may not call libraft
 * (libraft 0.22.1's legacy layer does not expect new requests there; seen:
 * a failed append whose buffer it had already freed).
 */
static void node_kick(void *arg)
{
	node *n = arg;

	if (!n->closing && n->kick.data != NULL)
		uv_timer_start(&n->kick, node_kick_cb, 0, 0);
}

void node_request_sync(node *n)
{
	node_kick(n);
}

static void node_ready(void *arg)
{
	node *n = arg;

	if (n->ready_cb != NULL)
		n->ready_cb(n->ready_arg);
}

static void node_log(void *arg, int level, const char *msg)
{
	(void)arg;
	log_printf(level, "%s", msg);
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

/* ---- the Raft transport (peer.h): what it asks of the configuration ---- */

static bool node_peer_is_member(void *arg, uint64_t id)
{
	node *n = arg;

	/* Waiting to be added (join): any member certificate of the CA may
	 * be the leader that adds this node, and there is nothing here yet to
	 * protect (peer.h). */
	if (n->raft.configuration.n == 0)
		return true;
	for (unsigned i = 0; i < n->raft.configuration.n; i++)
		if (n->raft.configuration.servers[i].id == id)
			return true;
	/* A change not committed yet may still be rolled back: a member it
	 * removes stays one until it commits. A leader that removed a member
	 * with --force and lost its quorum must still hear that member if it
	 * wins an election with the old configuration, or it would
	 * refuse the only leader there is, for good. */
	if (n->raft.configuration_uncommitted_index != 0)
		for (unsigned i = 0; i < n->raft.configuration_committed.n; i++)
			if (n->raft.configuration_committed.servers[i].id == id)
				return true;
	return false;
}

static bool node_peer_has_others(void *arg)
{
	node *n = arg;

	/* Waiting to be added: the leader must be able to reach it. */
	if (n->raft.configuration.n == 0)
		return true;
	for (unsigned i = 0; i < n->raft.configuration.n; i++)
		if (n->raft.configuration.servers[i].id != n->cfg->node_id)
			return true;
	return false;
}

static bool node_peer_is_member_host(void *arg, const struct sockaddr *sa)
{
	node *n = arg;

	for (unsigned i = 0; i < n->raft.configuration.n; i++) {
		struct sockaddr_storage ss;

		if (cfg_member_raft_address(n->raft.configuration.servers[i].address, &ss) != 0 ||
		    ss.ss_family != sa->sa_family)
			continue;
		if (sa->sa_family == AF_INET && ((const struct sockaddr_in *)sa)->sin_addr.s_addr ==
						    ((struct sockaddr_in *)&ss)->sin_addr.s_addr)
			return true;
		if (sa->sa_family == AF_INET6 &&
		    memcmp(&((const struct sockaddr_in6 *)sa)->sin6_addr,
			   &((struct sockaddr_in6 *)&ss)->sin6_addr, sizeof(struct in6_addr)) == 0)
			return true;
	}
	return false;
}

SSL_CTX *node_tls_ctx_new(const cfg *c, char *err, size_t errlen)
{
	tls_files f = {c->tls_ca, c->tls_cert, c->tls_key, c->tls_crl, tls_daemon_names};
	tls_identity self;
	SSL_CTX *ctx = tls_ctx_new(&f, err, errlen);

	if (ctx == NULL)
		return NULL;
	tls_ctx_identity(ctx, &self);
	if (self.role != TLS_ROLE_MEMBER || self.member_id != c->node_id) {
		err_set(err, errlen,
			"tls-cert %s is not this member's certificate: its subject has CN=%s, role %s; "
			"node-id %" PRIu64 " needs OU=member, CN=member-%" PRIu64
			" (scripts/certs.sh DIR issue node%" PRIu64 " member %" PRIu64 ")",
			c->tls_cert, self.cn, tls_role_name(self.role), c->node_id, c->node_id, c->node_id,
			c->node_id);
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/* The Raft transport: TCP between members under TLS with member
 * certificates (peer.h), or plaintext when every member is on loopback and
 * no tls-* is set (config.c). */
static int node_init_transport(node *n, uv_loop_t *loop, char *err, size_t errlen)
{
	const cfg *c = n->cfg;
	peer_members members = {n, node_peer_is_member, node_peer_has_others, node_peer_is_member_host};
	SSL_CTX *ctx = NULL;

	if (cfg_has_tls(c) && (ctx = node_tls_ctx_new(c, err, errlen)) == NULL)
		return -1;
	if (peer_transport_init(&n->transport, loop, ctx, &members, err, errlen) != 0) {
		SSL_CTX_free(ctx);
		return -1;
	}
	n->transport_initialized = true;
	if (ctx == NULL && c->n_peers > 1)
		log_warn(
		    "Raft peer connections are not authenticated (no tls-ca, tls-cert, tls-key; every member "
		    "is on loopback, so only users of this host can reach them)");
	return 0;
}

void node_reload_tls(node *n)
{
	const cfg *c = n->cfg;
	char err[CFG_ERR_SIZE];
	SSL_CTX *ctx;

	if (!cfg_has_tls(c) || !n->transport_initialized)
		return;
	ctx = node_tls_ctx_new(c, err, sizeof err);
	if (ctx == NULL) {
		log_error("%s; the certificates read before stay in use", err);
		return;
	}
	peer_transport_set_ctx(&n->transport, ctx);
	log_info("reloaded tls-ca %s, tls-cert %s, tls-key %s%s%s: new Raft connections use them", c->tls_ca,
		 c->tls_cert, c->tls_key, c->tls_crl[0] != '\0' ? ", tls-crl " : "", c->tls_crl);
}

/* True if dir holds a Raft log to recover: a closed segment
 * ("FIRST-LAST", libraft's uv backend) or a snapshot. raft_bootstrap writes
 * a closed segment, so every directory a member has run in has one. */
static bool node_has_raft_log(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	bool found = false;

	if (d == NULL)
		return false;
	while (!found && (e = readdir(d)) != NULL) {
		unsigned long long first, last;
		char tail;

		found = strncmp(e->d_name, "snapshot-", strlen("snapshot-")) == 0 ||
			sscanf(e->d_name, "%llu-%llu%c", &first, &last, &tail) == 2;
	}
	closedir(d);
	return found;
}

/*
 * --force-new-cluster: the quorum is lost for good and this member is the
 * one the operator chose to go on from (docs/cluster.md, "Disaster
 * recovery"). libraft's raft_recover appends a configuration of this
 * member alone to its log, keeping every entry (and so H, the high-water
 * mark it has applied); at start it elects itself. Its first fence is
 * still above everything the lost members could have handed out, even
 * entries this member never received: its start floor (I7, set in
 * node_init) is above every timestamp granted before this process started,
 * by the bound I6 on how far ahead of its clock any leader grants, given
 * the operator made sure the others are stopped first (the runbook's
 * first step: a lost member still running with a majority of its own
 * would go on serving on its own).
 */
static int node_force_new_cluster(node *n, char *err, size_t errlen)
{
	const cfg *c = n->cfg;
	struct raft_configuration conf;
	char address[MEMBER_ADDRESS_SIZE];
	int rv;

	if (!node_has_raft_log(c->data_dir))
		return err_set(err, errlen,
			       "--force-new-cluster: data directory \"%s\" holds no Raft log to recover "
			       "(a new or wiped member); run it on the surviving member whose data "
			       "directory is intact, or start without --force-new-cluster",
			       c->data_dir);
	/* With its client address, as every configuration entry (member.h):
	 * the members added back forward to it, and tsoracle-ctl finds it. */
	snprintf(address, sizeof address, "%s%s%s", c->raft_address, c->client_tcp[0] != '\0' ? "/" : "",
		 c->client_tcp);
	raft_configuration_init(&conf);
	rv = raft_configuration_add(&conf, c->node_id, address, RAFT_VOTER);
	if (rv == 0)
		rv = raft_recover(&n->raft, &conf);
	raft_configuration_close(&conf);
	if (rv != 0)
		return err_set(err, errlen, "--force-new-cluster: raft_recover: %s (%s)", raft_strerror(rv),
			       raft_errmsg(&n->raft));
	log_warn("**************************************************************************");
	log_warn("FORCE-NEW-CLUSTER: rewrote the Raft configuration of %s to this member alone "
		 "(node %" PRIu64 " at %s), keeping its log; every other member is no longer part "
		 "of this cluster",
		 c->data_dir, c->node_id, c->raft_address);
	log_warn("FORCE-NEW-CLUSTER: this member serves only above its start floor %" PRIu64
		 " ms (above anything the lost members could have handed out, I7); wipe the other "
		 "members' data directories and add them back with tsoracle-ctl member add; do not "
		 "pass --force-new-cluster again",
		 n->lead.alloc.start_floor_ms);
	log_warn("**************************************************************************");
	return 0;
}

int node_init(node *n, uv_loop_t *loop, const cfg *c, char *err, size_t errlen)
{
	struct raft_configuration conf;
	int rv;

	lead_host host = {
	    .arg = n,
	    .kick = node_kick,
	    .ready = node_ready,
	    .log = node_log,
	    .log_level = log_get_level(),
	};

	memset(n, 0, sizeof *n);
	TAILQ_INIT(&n->transfer_waiters);
	n->loop = loop;
	n->cfg = c;
	n->last_result = TA_NOT_LEADER;
	fsm_init(&n->fsm, &n->fsm_state);
	fsm_set_log(&n->fsm_state, node_log, n);
	lead_init(&n->lead, &n->raft, &n->fsm_state, &c->alloc, &host);
	lead_clock_configure(&n->lead, c->max_clock_offset_ms, c->max_start_gap_ms, c->trust_clock != 0);

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
	/* I7 (docs/allocator.md): every timestamp handed out before this
	 * start, by any leader, has physical part <= its clock then +
	 * max-ahead (I6) <= this clock now + start-floor-margin + max-ahead. */
	lead_set_start_floor(&n->lead,
			     clock_now().wall_ms + c->alloc.max_ahead_ms + c->start_floor_margin_ms + 1,
			     c->start_floor_margin_ms + 1);

	if (c->force_new_cluster) {
		if (node_force_new_cluster(n, err, errlen) != 0)
			return -1;
		goto timing;
	}
	raft_configuration_init(&conf);
	for (unsigned i = 0; i < c->n_peers && !c->join; i++) {
		/* The client address rides in the configuration, so that every
		 * member learns it from the log (config.h). */
		char address[MEMBER_ADDRESS_SIZE];

		snprintf(address, sizeof address, "%s%s%s", c->peers[i].address,
			 c->peers[i].client[0] != '\0' ? "/" : "", c->peers[i].client);
		rv = raft_configuration_add(&conf, c->peers[i].id, address, RAFT_VOTER);
		if (rv != 0) {
			raft_configuration_close(&conf);
			return err_set(err, errlen, "raft_configuration_add: %s", raft_strerror(rv));
		}
	}
	/* Bootstraps only a pristine directory; a restart reuses its log. A
	 * joining member never does: it waits for the leader's log. */
	rv = c->join ? RAFT_CANTBOOTSTRAP : raft_bootstrap(&n->raft, &conf);
	raft_configuration_close(&conf);
	if (rv == 0)
		log_info("bootstrapped a new cluster of %u member(s) in %s", c->n_peers, c->data_dir);
	else if (rv != RAFT_CANTBOOTSTRAP)
		return err_set(err, errlen, "raft_bootstrap: %s", raft_errmsg(&n->raft));

timing:
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
		/* (libraft leaves its message empty for some failures, such as
		 * the transport's listen: the code's name says what failed) */
		return err_set(err, errlen, "raft_start: %s (%s)",
			       n->fsm_state.halted ? n->fsm_state.halt_reason : raft_errmsg(&n->raft),
			       raft_strerror(rv));
	rv = uv_timer_start(&n->tick, node_tick_cb, LEAD_TICK_MS, LEAD_TICK_MS);
	if (rv != 0)
		return err_set(err, errlen, "uv_timer_start: %s", uv_strerror(rv));
	log_info("raft started: node %" PRIu64 " at %s, high-water %" PRIu64 " ms, last index %" PRIu64,
		 n->cfg->node_id, n->cfg->raft_address, n->fsm_state.high_water_ms,
		 (uint64_t)raft_last_index(&n->raft));
	if (n->raft.configuration.n == 0)
		log_info("join: node %" PRIu64 " is in no configuration yet and waits to be added: on any "
			 "member, tsoracle-ctl --config FILE member add %" PRIu64 "=%s/%s",
			 n->cfg->node_id, n->cfg->node_id, n->cfg->raft_address, n->cfg->client_tcp);
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
	int rc = lead_grant(&n->lead, clock_now(), count, first);

	n->last_result = rc;
	n->last_result_term = raft_current_term(&n->raft);
	return rc;
}

uint64_t node_room(node *n)
{
	return lead_room(&n->lead, clock_now());
}

uint16_t node_wait_status(node *n)
{
	/* A follower's requests wait for the leader, not for this member's
	 * allocator: the reason of a grant made while it led (TA_EXHAUSTED,
	 * say) is not why they wait now. */
	if (raft_state(&n->raft) != RAFT_LEADER || raft_current_term(&n->raft) != n->last_result_term)
		return TP_ERR_UNAVAILABLE;
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
	const ta_alloc *a = &n->lead.alloc;

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
	if (lead_serving(&n->lead, clock_now()))
		st->flags |= TP_FLAG_SERVING;
	if (n->raft.configuration.n == 0)
		st->flags |= TP_FLAG_JOINING;
	else if (!node_peer_is_member(n, n->cfg->node_id))
		st->flags |= TP_FLAG_REMOVED;
	st->term = raft_current_term(&n->raft);
	st->high_water_ms =
	    n->fsm_state.high_water_ms > a->high_water_ms ? n->fsm_state.high_water_ms : a->high_water_ms;
	st->commit_index = raft_commit_index(&n->raft);
	st->applied_index = raft_last_applied(&n->raft);
	st->last_issued = a->last_issued;
	st->grants = a->grants;
	st->timestamps = a->timestamps;
	/* The clock check's verdict at the last sync (lead_clock.c). */
	st->clock_offset_ms = n->lead.clock.last.offset_ms;
	if (n->lead.clock.last.checked && !n->lead.clock.last.supported)
		st->flags |= TP_FLAG_CLOCK_UNSUPPORTED;
	if (n->lead.clock.last.held) {
		st->flags |= TP_FLAG_CLOCK_HELD;
		st->clock_ahead_ms = n->lead.clock.last.ahead_ms;
	}
	if (n->lead.clock.start_refused) {
		st->flags |= TP_FLAG_CLOCK_START_GAP;
		st->clock_ahead_ms = n->lead.clock.start_gap_ms;
	}
}

void node_clock_sample(node *n, uint64_t id, uint64_t wall_ms, uint64_t sent_mono_ms, uint64_t recv_mono_ms)
{
	if (n->closing || recv_mono_ms < sent_mono_ms)
		return;
	/* The reading was taken somewhere in the round trip: its midpoint is
	 * off by at most half of it either way. */
	lead_clock_sample_add(&n->lead, id, wall_ms, sent_mono_ms + (recv_mono_ms - sent_mono_ms) / 2,
			      recv_mono_ms - sent_mono_ms);
}

void node_metrics(node *n, metrics_sample *out)
{
	tp_status st;

	node_status(n, &st);
	out->lead = n->stats;
	out->is_leader = st.role == TP_ROLE_LEADER;
	out->serving = (st.flags & TP_FLAG_SERVING) != 0;
	out->term = st.term;
	out->commit_index = st.commit_index;
	out->applied_index = st.applied_index;
	out->high_water_ms = st.high_water_ms;
	out->clock_ms = clock_now().wall_ms;
	out->clock_offset_ms = st.clock_offset_ms;
	out->clock_unsupported = (st.flags & TP_FLAG_CLOCK_UNSUPPORTED) != 0;
	out->clock_held = (st.flags & TP_FLAG_CLOCK_HELD) != 0;
	out->clock_start_gap = (st.flags & TP_FLAG_CLOCK_START_GAP) != 0;
	out->peer_connections = n->transport_initialized ? peer_transport_connections(&n->transport) : 0;
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
	while (!TAILQ_EMPTY(&n->transfer_waiters)) {
		node_transfer_req *w = TAILQ_FIRST(&n->transfer_waiters);

		node_transfer_cancel(n, w);
		w->cb(w, TP_ERR_SHUTTING_DOWN, 0);
	}
	member_close(n);
	lead_stop(&n->lead);
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

bool node_is_member(node *n, uint64_t id)
{
	return node_peer_is_member(n, id);
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

/* ---- the operator's commands (advance-to, cluster version) ---- */

typedef struct node_admin {
	node *n;
	node_admin_cb cb;
	void *arg;
} node_admin;

/* The driver's answer (inside libraft's callback): the status for the
 * client, and what it now holds. */
static void node_admin_done(void *arg, int status)
{
	node_admin *x = arg;
	node *n = x->n;

	if (status == 0)
		x->cb(x->arg, TP_OK, n->fsm_state.floor_ms, fsm_cluster_version(&n->fsm_state));
	else
		/* Leadership lost, or closing: it may still have committed. */
		x->cb(x->arg, status == RAFT_MALFORMED ? TP_ERR_INTERNAL : TP_ERR_UNAVAILABLE,
		      n->fsm_state.floor_ms, fsm_cluster_version(&n->fsm_state));
	free(x);
}

/* The TP_ status for a driver's refusal. */
static uint16_t node_admin_status(int rc)
{
	switch (rc) {
	case LEAD_ADMIN_STARTED:
		return TP_OK;
	case LEAD_ADMIN_NOT_LEADER:
		return TP_ERR_NOT_LEADER;
	case LEAD_ADMIN_VERSION:
		return TP_ERR_CLUSTER_VERSION;
	case LEAD_ADMIN_BACKWARDS:
		return TP_ERR_BACKWARDS;
	case LEAD_ADMIN_TOO_FAR:
		return TP_ERR_TOO_FAR;
	case LEAD_ADMIN_RANGE:
		return TP_ERR_BAD_REQUEST;
	case LEAD_ADMIN_REFUSED:
		return TP_ERR_UNAVAILABLE;
	default:
		return TP_ERR_INTERNAL;
	}
}

uint16_t node_advance(node *n, uint64_t floor_ms, uint64_t *value, uint64_t *value2, node_admin_cb cb,
		      void *arg)
{
	node_admin *x = malloc(sizeof *x);
	ta_clock clk = clock_now();
	int rc;

	*value = 0;
	*value2 = n->cfg->max_reset_gap_ms;
	if (x == NULL)
		return TP_ERR_INTERNAL;
	if (n->closing) {
		free(x);
		return TP_ERR_SHUTTING_DOWN;
	}
	*x = (node_admin){n, cb, arg};
	rc = lead_advance(&n->lead, clk, floor_ms, n->cfg->max_reset_gap_ms, value, node_admin_done, x);
	if (rc != LEAD_ADMIN_STARTED) {
		free(x);
		if (rc == LEAD_ADMIN_VERSION)
			*value2 = fsm_cmd_command_set(FSM_CMD_ADVANCE);
		log_info("advance-to %" PRIu64 " ms refused: %s", floor_ms,
			 tp_status_str(node_admin_status(rc)));
	}
	return node_admin_status(rc);
}

uint16_t node_set_cluster_version(node *n, uint64_t version, uint64_t checked, uint64_t *value,
				  node_admin_cb cb, void *arg)
{
	node_admin *x;
	int rc;

	*value = fsm_cluster_version(&n->fsm_state);
	if (n->closing)
		return TP_ERR_SHUTTING_DOWN;
	if (raft_state(&n->raft) != RAFT_LEADER)
		return TP_ERR_NOT_LEADER;
	/* The client vouches for checked members; the configuration may hold
	 * more (a member added since its config file was written). */
	if (checked < n->raft.configuration.n) {
		*value = n->raft.configuration.n;
		log_info("cluster version %" PRIu64 " refused: %" PRIu64
			 " member(s) checked, the Raft configuration has %u",
			 version, checked, n->raft.configuration.n);
		return TP_ERR_BAD_REQUEST;
	}
	x = malloc(sizeof *x);
	if (x == NULL)
		return TP_ERR_INTERNAL;
	*x = (node_admin){n, cb, arg};
	rc = lead_set_cluster_version(&n->lead, clock_now(), version, value, node_admin_done, x);
	if (rc != LEAD_ADMIN_STARTED)
		free(x);
	return node_admin_status(rc);
}

void node_versions(node *n, uint64_t *known, uint64_t *cluster)
{
	*known = FSM_COMMAND_SET;
	*cluster = fsm_cluster_version(&n->fsm_state);
}

uint16_t node_transfer(node *n, node_transfer_req *req, uint64_t target, node_transfer_cb cb)
{
	ta_clock clk = clock_now();
	uint64_t handover = 0;

	if (n->closing)
		return TP_ERR_SHUTTING_DOWN;
	switch (lead_transfer(&n->lead, clk, target, &handover)) {
	case LEAD_TRANSFER_STARTED:
		n->transfer_started_ms = clk.mono_ms;
		break;
	case LEAD_TRANSFER_JOINED:
		break;
	case LEAD_TRANSFER_NOT_LEADER:
		return TP_ERR_NOT_LEADER;
	case LEAD_TRANSFER_BAD_TARGET:
		return TP_ERR_BAD_REQUEST;
	case LEAD_TRANSFER_CLOCK:
		/* (an existing status: a client of an older version decodes it) */
		return TP_ERR_REFUSED;
	case LEAD_TRANSFER_NOMEM:
		return TP_ERR_INTERNAL;
	default:
		return TP_ERR_TRANSFER;
	}
	req->cb = cb;
	req->target = target;
	req->deadline_ms =
	    clk.mono_ms + (uint64_t)n->cfg->election_timeout_ms * NODE_TRANSFER_TIMEOUT_ELECTIONS;
	/* Appended: waiters are answered in the order they came. */
	req->handover = handover;
	TAILQ_INSERT_TAIL(&n->transfer_waiters, req, link);
	req->waiting = true;
	return TP_OK;
}

void node_transfer_cancel(node *n, node_transfer_req *req)
{
	if (!req->waiting)
		return;
	TAILQ_REMOVE(&n->transfer_waiters, req, link);
	req->waiting = false;
}
