/* member.c: membership changes, one at a time: a member is added as a learner, caught up, then promoted; or
 * removed.
 */
#include "member.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "node.h"
#include "peer.h"

/* libraft's own catch-up rounds when a learner is promoted (raft_assign
 * VOTER with a match index short of the last index): at most this many
 * rounds, each at most one election timeout long. */
#define MEMBER_PROMOTE_ROUNDS 10

static member_change *member_of(struct node *n)
{
	return &n->members;
}

static const char *member_stage_name(enum member_stage stage)
{
	switch (stage) {
	case MEMBER_ADDING:
		return "being added (spare)";
	case MEMBER_LEARNING:
		return "becoming a learner";
	case MEMBER_CATCHING_UP:
		return "catching up as a learner";
	case MEMBER_PROMOTING:
		return "being promoted to voter";
	case MEMBER_REMOVING:
		return "being removed";
	case MEMBER_UNDOING:
		return "being removed again (it did not catch up)";
	default:
		return "idle";
	}
}

static uint8_t member_role(int role)
{
	switch (role) {
	case RAFT_VOTER:
		return TP_MEMBER_VOTER;
	case RAFT_STANDBY:
		return TP_MEMBER_LEARNER;
	default:
		return TP_MEMBER_SPARE;
	}
}

/* Runs inside libraft: records only, and asks for a sync. */
static void member_change_cb(struct raft_change *req, int status)
{
	struct node *n = req->data;
	member_change *m = member_of(n);

	free(req);
	m->change = NULL;
	m->change_done = true;
	m->change_status = status;
	node_request_sync(n);
}

/* Answers the waiter (if any) and ends the change. */
static void member_finish(struct node *n, uint16_t status, const char *text)
{
	member_change *m = member_of(n);
	member_req *w = m->waiter;

	if (status == TP_OK)
		log_info("membership: %s", text);
	else
		log_warn("membership change of node %" PRIu64 " failed: %s", m->id, text);
	m->stage = MEMBER_IDLE;
	m->waiter = NULL;
	if (w != NULL)
		w->cb(w, status, text);
}

/* Starts one libraft change for the current stage: raft_add, raft_assign
 * or raft_remove. 0, or libraft's error code. */
static int member_start_change(struct node *n, enum member_stage stage)
{
	member_change *m = member_of(n);
	struct raft_change *req = calloc(1, sizeof *req);
	int rv;

	if (req == NULL)
		return RAFT_NOMEM;
	req->data = n;
	switch (stage) {
	case MEMBER_ADDING:
		rv = raft_add(&n->raft, req, m->id, m->address, member_change_cb);
		break;
	case MEMBER_LEARNING:
		rv = raft_assign(&n->raft, req, m->id, RAFT_STANDBY, member_change_cb);
		break;
	case MEMBER_PROMOTING:
		raft_set_max_catch_up_rounds(&n->raft, MEMBER_PROMOTE_ROUNDS);
		raft_set_max_catch_up_round_duration(&n->raft, n->cfg->election_timeout_ms);
		rv = raft_assign(&n->raft, req, m->id, RAFT_VOTER, member_change_cb);
		break;
	default:
		rv = raft_remove(&n->raft, req, m->id, member_change_cb);
		break;
	}
	if (rv != 0) {
		free(req);
		return rv;
	}
	m->change = req;
	m->change_done = false;
	m->stage = stage;
	return 0;
}

/* The position of id in the configuration, or -1. */
static int member_index(const struct node *n, uint64_t id)
{
	const struct raft_configuration *conf = &n->raft.configuration;

	for (unsigned i = 0; i < conf->n; i++)
		if (conf->servers[i].id == id)
			return (int)i;
	return -1;
}

/*
 * Why this node cannot start a change now, or NULL: it must lead, with the
 * fence of its term committed (an entry of its own term: member.h), with no
 * change under way, its own or libraft's.
 */
static uint16_t member_can_change(struct node *n, char *text, size_t textlen)
{
	member_change *m = member_of(n);
	uint64_t now = uv_now(n->loop);

	if (raft_state(&n->raft) != RAFT_LEADER || raft_transferee(&n->raft) != 0) {
		snprintf(text, textlen, "node %" PRIu64 " does not lead: ask the leader", n->cfg->node_id);
		return TP_ERR_NOT_LEADER;
	}
	if (m->stage != MEMBER_IDLE) {
		snprintf(text, textlen,
			 "another membership change is under way: node %" PRIu64 " is %s (for %" PRIu64
			 " ms); one change at a time, try again when it has ended",
			 m->id, member_stage_name(m->stage), now - m->started_ms);
		return TP_ERR_BUSY;
	}
	if (n->raft.configuration_uncommitted_index != 0) {
		snprintf(text, textlen,
			 "a configuration change (log index %" PRIu64
			 ") is not committed yet; try again in a moment",
			 (uint64_t)n->raft.configuration_uncommitted_index);
		return TP_ERR_BUSY;
	}
	if (!n->lead.alloc.fenced || n->lead.alloc.epoch != raft_current_term(&n->raft)) {
		snprintf(text, textlen,
			 "the leader has not committed an entry of its term yet (it is still fencing); "
			 "try again in a moment");
		return TP_ERR_UNAVAILABLE;
	}
	return TP_OK;
}

/* The configuration holds an address without a client part: written by a
 * tsoracled from before client addresses were replicated (command set 1),
 * which may still run on some member (a rolling upgrade). */
static bool member_config_predates(const struct node *n)
{
	/* A member alone is this one: it runs this build (and a lone member
	 * started without client-tcp has no client part either). */
	if (n->raft.configuration.n < 2)
		return false;
	for (unsigned i = 0; i < n->raft.configuration.n; i++)
		if (strchr(n->raft.configuration.servers[i].address, '/') == NULL)
			return true;
	return false;
}

uint16_t member_add(struct node *n, member_req *req, uint64_t id, const char *address, member_cb cb,
		    char *text, size_t textlen)
{
	member_change *m = member_of(n);
	char raft_addr[CFG_ADDR_SIZE], client[CFG_ADDR_SIZE];
	struct sockaddr_storage ss;
	uint16_t status = member_can_change(n, text, textlen);
	int i, rv;
	enum member_stage first = MEMBER_ADDING;

	if (status != TP_OK)
		return status;
	if (id == 0 || id > CFG_NODE_ID_MAX) {
		snprintf(text, textlen, "member id %" PRIu64 " is not from 1 to %" PRIu64, id,
			 (uint64_t)CFG_NODE_ID_MAX);
		return TP_ERR_BAD_REQUEST;
	}
	if (strlen(address) > TP_MAX_ERRMSG ||
	    cfg_member_split(address, raft_addr, sizeof raft_addr, client, sizeof client) != 0 ||
	    cfg_sockaddr(raft_addr, &ss) != 0 || cfg_sockaddr(client, &ss) != 0) {
		snprintf(text, textlen, "\"%.80s\" is not RAFT_IP:PORT/CLIENT_IP:PORT", address);
		return TP_ERR_BAD_REQUEST;
	}
	if (!cfg_has_tls(n->cfg) && (!cfg_is_loopback(raft_addr) || !cfg_is_loopback(client))) {
		snprintf(text, textlen,
			 "%.80s is not loopback, and this cluster runs without TLS: set tls-ca, tls-cert and "
			 "tls-key on every member first (docs/cluster.md)",
			 address);
		return TP_ERR_REFUSED;
	}
	for (unsigned k = 0; k < n->raft.configuration.n; k++) {
		const struct raft_server *s = &n->raft.configuration.servers[k];
		char other[CFG_ADDR_SIZE], other_client[CFG_ADDR_SIZE];

		if (s->id == id)
			continue;
		if (cfg_member_split(s->address, other, sizeof other, other_client, sizeof other_client) ==
			0 &&
		    (strcmp(other, raft_addr) == 0 || strcmp(other_client, client) == 0)) {
			snprintf(text, textlen,
				 "node %" PRIu64 " already uses %s: give the new member its own addresses",
				 (uint64_t)s->id, strcmp(other, raft_addr) == 0 ? raft_addr : client);
			return TP_ERR_REFUSED;
		}
	}
	if (member_config_predates(n) && fsm_cluster_version(&n->fsm_state) < FSM_COMMAND_SET_ADVANCE) {
		snprintf(
		    text, textlen,
		    "this cluster was bootstrapped by an older tsoracled and its cluster version is %" PRIu64
		    ": a member of that build cannot dial an address RAFT/CLIENT. Upgrade every member, "
		    "then run tsoracle-ctl --config FILE cluster-version raise",
		    fsm_cluster_version(&n->fsm_state));
		return TP_ERR_CLUSTER_VERSION;
	}
	i = member_index(n, id);
	if (i >= 0) {
		const struct raft_server *s = &n->raft.configuration.servers[i];

		/* A learner or spare left by a change that did not end (the
		 * leader changed meanwhile): adding it again at the same
		 * address goes on from where it stands. */
		if (s->role == RAFT_VOTER || strcmp(s->address, address) != 0) {
			snprintf(text, textlen,
				 "node %" PRIu64 " is already a member (%s at %s): remove it first, or "
				 "give the new member a new id",
				 id, tp_member_role_str(member_role(s->role)), s->address);
			return TP_ERR_REFUSED;
		}
		first = s->role == RAFT_STANDBY ? MEMBER_CATCHING_UP : MEMBER_LEARNING;
	} else if (n->raft.configuration.n >= CFG_MAX_PEERS) {
		snprintf(text, textlen,
			 "the configuration already has %u members, the most supported: remove one first",
			 n->raft.configuration.n);
		return TP_ERR_REFUSED;
	}

	memset(m, 0, sizeof *m);
	m->id = id;
	snprintf(m->address, sizeof m->address, "%s", address);
	m->started_ms = uv_now(n->loop);
	if (first == MEMBER_CATCHING_UP) {
		m->stage = MEMBER_CATCHING_UP;
		m->deadline_ms = m->started_ms + n->cfg->catch_up_timeout_ms;
		m->target = raft_last_index(&n->raft);
		rv = 0;
	} else {
		rv = member_start_change(n, first);
	}
	if (rv != 0) {
		m->stage = MEMBER_IDLE;
		snprintf(text, textlen, "libraft refused to add node %" PRIu64 ": %s", id, raft_strerror(rv));
		return rv == RAFT_CANTCHANGE ? TP_ERR_BUSY : TP_ERR_INTERNAL;
	}
	req->cb = cb;
	m->waiter = req;
	log_info("membership: adding node %" PRIu64 " at %s as a learner (catch-up-timeout %u ms)", id,
		 address, n->cfg->catch_up_timeout_ms);
	return TP_OK;
}

/* Member id is up, as the leader sees it: itself, or heard from within an
 * election timeout (peer.h). */
static bool member_is_up(struct node *n, uint64_t id)
{
	uint64_t now = uv_now(n->loop);
	uint64_t heard = id == n->cfg->node_id ? now : peer_transport_heard(&n->transport, id);

	return heard != 0 && now - heard <= n->cfg->election_timeout_ms;
}

/* Voters of the configuration without id, and how many of them are up. */
static void member_count_after(struct node *n, uint64_t id, unsigned *voters, unsigned *up)
{
	const struct raft_configuration *conf = &n->raft.configuration;

	*voters = 0;
	*up = 0;
	for (unsigned i = 0; i < conf->n; i++) {
		const struct raft_server *s = &conf->servers[i];

		if (s->role != RAFT_VOTER || s->id == id)
			continue;
		(*voters)++;
		*up += member_is_up(n, s->id);
	}
}

uint16_t member_remove(struct node *n, member_req *req, uint64_t id, bool force, member_cb cb, char *text,
		       size_t textlen)
{
	member_change *m = member_of(n);
	uint16_t status = member_can_change(n, text, textlen);
	unsigned voters, up;
	int i, rv;

	if (status != TP_OK)
		return status;
	i = member_index(n, id);
	if (i < 0) {
		snprintf(text, textlen,
			 "node %" PRIu64 " is not a member (tsoracle-ctl member list shows them)", id);
		return TP_ERR_REFUSED;
	}
	if (id == n->cfg->node_id) {
		snprintf(text, textlen,
			 "node %" PRIu64
			 " leads: hand leadership over first (tsoracle-ctl member remove does "
			 "that, then asks the new leader)",
			 id);
		return TP_ERR_REFUSED;
	}
	member_count_after(n, id, &voters, &up);
	if (n->raft.configuration.servers[i].role == RAFT_VOTER && voters == 0) {
		snprintf(text, textlen, "node %" PRIu64 " is the last voter", id);
		return TP_ERR_REFUSED;
	}
	if (n->raft.configuration.servers[i].role == RAFT_VOTER && up <= voters / 2) {
		if (!force) {
			snprintf(text, textlen,
				 "removing node %" PRIu64 " would leave %u voters of which only %u are up, "
				 "fewer than a quorum (%u): the cluster would stop serving. Bring members "
				 "back up first, or pass --force",
				 id, voters, up, voters / 2 + 1);
			return TP_ERR_REFUSED;
		}
		log_warn("membership: removing node %" PRIu64
			 " with --force: %u voters remain, %u of them up "
			 "(a quorum is %u)",
			 id, voters, up, voters / 2 + 1);
	}

	memset(m, 0, sizeof *m);
	m->id = id;
	snprintf(m->address, sizeof m->address, "%s", n->raft.configuration.servers[i].address);
	m->started_ms = uv_now(n->loop);
	rv = member_start_change(n, MEMBER_REMOVING);
	if (rv != 0) {
		m->stage = MEMBER_IDLE;
		snprintf(text, textlen, "libraft refused to remove node %" PRIu64 ": %s", id,
			 raft_strerror(rv));
		return rv == RAFT_CANTCHANGE ? TP_ERR_BUSY : TP_ERR_INTERNAL;
	}
	req->cb = cb;
	m->waiter = req;
	log_info("membership: removing node %" PRIu64 " (%s)", id, m->address);
	return TP_OK;
}

void member_cancel(struct node *n, member_req *req)
{
	member_change *m = member_of(n);

	if (m->waiter == req)
		m->waiter = NULL;
}

/* The learner has not caught up in time, or a step failed after it was
 * added: remove it again, then answer status and text. */
static void member_undo(struct node *n, uint16_t status, const char *text)
{
	member_change *m = member_of(n);
	char why[MEMBER_TEXT_SIZE];
	int rv;

	m->undo_status = status;
	snprintf(m->undo_text, sizeof m->undo_text, "%s", text);
	rv = member_start_change(n, MEMBER_UNDOING);
	if (rv != 0) {
		snprintf(why, sizeof why,
			 "%.120s; removing it again failed too (%s): run tsoracle-ctl member remove %" PRIu64,
			 text, raft_strerror(rv), m->id);
		member_finish(n, status, why);
	}
}

/* A raft_change callback has run: the next stage, or the answer. */
static void member_step(struct node *n)
{
	member_change *m = member_of(n);
	char text[MEMBER_TEXT_SIZE];
	int status = m->change_status;
	int rv;

	m->change_done = false;
	if (status != 0 && m->stage != MEMBER_UNDOING) {
		snprintf(
		    text, sizeof text, "libraft: %s while node %" PRIu64 " was %s%s", raft_strerror(status),
		    m->id, member_stage_name(m->stage),
		    status == RAFT_LEADERSHIPLOST || status == RAFT_NOTLEADER
			? " (leadership moved): check tsoracle-ctl member list, and run the command again"
			: "");
		if (m->stage == MEMBER_PROMOTING && status == RAFT_NOCONNECTION) {
			snprintf(text, sizeof text,
				 "node %" PRIu64 " did not keep up during its promotion (libraft's catch-up "
				 "rounds ran out): removed it again, nothing changed",
				 m->id);
			member_undo(n, TP_ERR_TIMEOUT, text);
			return;
		}
		member_finish(n,
			      status == RAFT_LEADERSHIPLOST || status == RAFT_NOTLEADER ? TP_ERR_NOT_LEADER
											: TP_ERR_INTERNAL,
			      text);
		return;
	}
	switch (m->stage) {
	case MEMBER_ADDING:
		rv = member_start_change(n, MEMBER_LEARNING);
		if (rv != 0) {
			snprintf(text, sizeof text, "libraft refused to make node %" PRIu64 " a learner: %s",
				 m->id, raft_strerror(rv));
			member_undo(n, TP_ERR_INTERNAL, text);
		}
		return;
	case MEMBER_LEARNING:
		m->stage = MEMBER_CATCHING_UP;
		m->deadline_ms = uv_now(n->loop) + n->cfg->catch_up_timeout_ms;
		m->target = raft_last_index(&n->raft);
		log_info("membership: node %" PRIu64
			 " is a learner; waiting for its log to reach index %" PRIu64,
			 m->id, m->target);
		return;
	case MEMBER_PROMOTING:
		snprintf(text, sizeof text, "node %" PRIu64 " at %.120s is a voter", m->id, m->address);
		member_finish(n, TP_OK, text);
		return;
	case MEMBER_REMOVING:
		snprintf(text, sizeof text, "node %" PRIu64 " (%.120s) is removed", m->id, m->address);
		member_finish(n, TP_OK, text);
		return;
	case MEMBER_UNDOING:
		if (status != 0) {
			snprintf(text, sizeof text,
				 "%.120s; removing it again failed too (%s): run tsoracle-ctl member remove "
				 "%" PRIu64,
				 m->undo_text, raft_strerror(status), m->id);
			member_finish(n, m->undo_status, text);
		} else {
			member_finish(n, m->undo_status, m->undo_text);
		}
		return;
	default:
		return;
	}
}

/* A learner: promote it once its match index reaches the target, or give
 * up at the deadline. */
static void member_watch_learner(struct node *n)
{
	member_change *m = member_of(n);
	char text[MEMBER_TEXT_SIZE];
	raft_index match = 0;
	int rv;

	if (raft_state(&n->raft) != RAFT_LEADER) {
		snprintf(text, sizeof text,
			 "leadership moved while node %" PRIu64
			 " was catching up: it stays a learner; run member add again (it goes on from "
			 "there) or member remove %" PRIu64,
			 m->id, m->id);
		member_finish(n, TP_ERR_NOT_LEADER, text);
		return;
	}
	if (raft_match_index(&n->raft, m->id, &match) != 0) {
		snprintf(text, sizeof text, "node %" PRIu64 " left the configuration while catching up",
			 m->id);
		member_finish(n, TP_ERR_INTERNAL, text);
		return;
	}
	if (match >= m->target) {
		log_info("membership: node %" PRIu64 " caught up (match index %" PRIu64 " after %" PRIu64
			 " ms); promoting it to voter",
			 m->id, (uint64_t)match, uv_now(n->loop) - m->started_ms);
		rv = member_start_change(n, MEMBER_PROMOTING);
		if (rv == RAFT_CANTCHANGE || rv == RAFT_NOTLEADER)
			return; /* a handover or another entry in the way: next sync */
		if (rv != 0) {
			snprintf(text, sizeof text, "libraft refused to promote node %" PRIu64 ": %s", m->id,
				 raft_strerror(rv));
			member_undo(n, TP_ERR_INTERNAL, text);
		}
		return;
	}
	if (uv_now(n->loop) >= m->deadline_ms) {
		snprintf(text, sizeof text,
			 "node %" PRIu64
			 " did not catch up within catch-up-timeout (%u ms; its log is at %" PRIu64
			 " of %" PRIu64 "): removed it again. Is tsoracled running there with join, and "
			 "can the leader reach %.40s?",
			 m->id, n->cfg->catch_up_timeout_ms, (uint64_t)match, m->target, m->address);
		member_undo(n, TP_ERR_TIMEOUT, text);
	}
}

void member_sync(struct node *n)
{
	member_change *m = member_of(n);

	if (m->stage == MEMBER_IDLE)
		return;
	if (m->change_done)
		member_step(n);
	else if (m->stage == MEMBER_CATCHING_UP)
		member_watch_learner(n);
}

void member_close(struct node *n)
{
	member_change *m = member_of(n);
	member_req *w = m->waiter;

	m->waiter = NULL;
	if (w != NULL)
		w->cb(w, TP_ERR_SHUTTING_DOWN, "the server is stopping");
}

int member_get(struct node *n, unsigned index, member_info *out, unsigned *count)
{
	const struct raft_configuration *conf = &n->raft.configuration;
	const struct raft_server *s;
	raft_index match = 0;

	*count = conf->n;
	if (index >= conf->n)
		return -1;
	s = &conf->servers[index];
	memset(out, 0, sizeof *out);
	out->id = s->id;
	out->role = member_role(s->role);
	out->leader = s->id == node_leader_id(n);
	out->up = raft_state(&n->raft) == RAFT_LEADER && member_is_up(n, s->id);
	if (raft_state(&n->raft) == RAFT_LEADER)
		out->match_index = s->id == n->cfg->node_id ? raft_last_index(&n->raft)
				   : raft_match_index(&n->raft, s->id, &match) == 0 ? match
										    : 0;
	snprintf(out->address, sizeof out->address, "%s", s->address);
	return 0;
}

void member_client_address(struct node *n, uint64_t id, char *out, size_t outlen)
{
	int i = member_index(n, id);
	char raft_addr[CFG_ADDR_SIZE];

	out[0] = '\0';
	if (i >= 0 &&
	    cfg_member_split(n->raft.configuration.servers[i].address, raft_addr, sizeof raft_addr, out,
			     outlen) == 0 &&
	    out[0] != '\0')
		return;
	out[0] = '\0';
	for (unsigned k = 0; k < n->cfg->n_peers; k++)
		if (n->cfg->peers[k].id == id)
			snprintf(out, outlen, "%s", n->cfg->peers[k].client);
}
