/* server.c: the client listener: framed requests in, one allocator call per batch, grants out. */
#include "server.h"

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "clock.h"
#include "err.h"
#include "log.h"
#include "tlsio.h"

#define SRV_BACKLOG         128
#define SRV_EXPIRE_TICK_MS  10   /* granularity of request deadlines */
#define SRV_SWEEP_MS        100  /* granularity of the hello and idle timeouts */
#define SRV_LOG_EVERY_MS    1000 /* a rate-limited log line: at most one per this */
#define SRV_LOG_LINE        256
#define SRV_LINGER_MS       500  /* a refused connection stays open this long ... */
#define SRV_LINGER_CAP      64   /* ... this many at a time */
#define SRV_SOCKET_MODE     0660 /* unix socket: owner and group may connect */
#define SRV_SOCKET_DIR_MODE 0750 /* its directory, if tsoracled creates it */
#define SRV_NS_PER_US       1000

static void srv_conn_close(srv_conn *c);
static void srv_conn_drop_unread(srv_conn *c);
static void srv_conn_parse(srv_conn *c);
static void srv_conn_flush(srv_conn *c);
static void srv_conn_start_reading(srv_conn *c);
static void srv_conn_tls_lost(srv_conn *c);

/* ---- rate-limited log lines --------------------------------------------- */

/*
 * Logs at most one line per SRV_LOG_EVERY_MS for r, saying how many like it
 * were left out since: a flood of refused connections or accept errors
 * (EMFILE) must not become a flood of log lines.
 */
static void srv_log_limited(srv *s, srv_ratelog *r, int level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void srv_log_limited(srv *s, srv_ratelog *r, int level, const char *fmt, ...)
{
	uint64_t now = uv_now(s->loop);
	char line[SRV_LOG_LINE];
	va_list ap;

	if (r->logged && now < r->last_ms + SRV_LOG_EVERY_MS) {
		r->suppressed++;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (r->suppressed > 0)
		log_printf(level, "%s (and %" PRIu64 " more like it in the last %" PRIu64 " ms)", line,
			   r->suppressed, now - r->last_ms);
	else
		log_printf(level, "%s", line);
	r->logged = true;
	r->last_ms = now;
	r->suppressed = 0;
}

/* ---- output ------------------------------------------------------------ */

static void srv_conn_send(srv_conn *c, const tp_msg *m)
{
	if (c->closing)
		return;
	if (ob_append(&c->ob, m) != 0) {
		log_error("out of memory for a connection's responses; closing it");
		srv_conn_close(c);
	}
}

/* Every timestamp answer goes through here, and is counted here. */
static void srv_send_ts(srv_conn *c, uint64_t id, uint16_t status, uint64_t first, uint32_t count)
{
	metrics_requests *st = &c->srv->stats;
	tp_msg m;

	st->requests++;
	if (status == TP_OK)
		st->timestamps += count;
	else if (status <= TP_STATUS_LAST)
		st->errors[status]++;

	m.type = TP_TS_RESP;
	m.u.ts_resp.id = id;
	m.u.ts_resp.status = status;
	m.u.ts_resp.first = status == TP_OK ? first : 0;
	m.u.ts_resp.count = status == TP_OK ? count : 0;
	srv_conn_send(c, &m);
}

static void srv_send_transfer(srv_conn *c, uint64_t id, uint16_t status, uint64_t leader_id)
{
	tp_msg m;

	m.type = TP_TRANSFER_RESP;
	m.u.transfer_resp.id = id;
	m.u.transfer_resp.status = status;
	/* Member ids are u32 on the wire (config.c keeps them in range). */
	m.u.transfer_resp.leader_id = (uint32_t)leader_id;
	srv_conn_send(c, &m);
}

static void srv_send_admin(srv_conn *c, uint64_t id, uint16_t status, uint64_t leader_id, uint64_t value,
			   uint64_t value2)
{
	tp_msg m;

	m.type = TP_ADMIN_RESP;
	m.u.admin_resp.id = id;
	m.u.admin_resp.status = status;
	m.u.admin_resp.leader_id = (uint32_t)leader_id;
	m.u.admin_resp.value = value;
	m.u.admin_resp.value2 = value2;
	srv_conn_send(c, &m);
}

static void srv_send_member(srv_conn *c, uint64_t id, uint16_t status, uint32_t member, const char *text)
{
	tp_msg m;

	memset(&m, 0, sizeof m);
	m.type = TP_MEMBER_RESP;
	m.u.member_resp.id = id;
	m.u.member_resp.status = status;
	m.u.member_resp.leader_id = (uint32_t)node_leader_id(c->srv->node);
	m.u.member_resp.member = member;
	m.u.member_resp.role = TP_MEMBER_VOTER;
	snprintf(m.u.member_resp.text, sizeof m.u.member_resp.text, "%s", text);
	m.u.member_resp.len = (uint16_t)strlen(m.u.member_resp.text);
	srv_conn_send(c, &m);
}

/* Queues TP_ERROR with text: the client can read why. */
static void srv_send_error(srv_conn *c, uint16_t status, const char *text)
{
	tp_msg m;
	size_t len = strlen(text);

	if (status <= TP_STATUS_LAST)
		c->srv->stats.errors[status]++;
	m.type = TP_ERROR;
	m.u.error.status = status;
	if (len > TP_MAX_ERRMSG)
		len = TP_MAX_ERRMSG;
	memcpy(m.u.error.text, text, len);
	m.u.error.text[len] = '\0';
	m.u.error.len = (uint16_t)len;
	srv_conn_send(c, &m);
}

/* Sends TP_ERROR with text and closes the connection once it is written. */
static void srv_conn_refuse(srv_conn *c, uint16_t status, const char *text)
{
	srv_send_error(c, status, text);
	srv_conn_flush(c);
	srv_conn_close(c);
}

/*
 * A refusal at admission (max-connections, SO_PEERCRED): the error is sent
 * at once, but the connection stays open a little (SRV_LINGER_MS), its
 * input discarded, so that a client that writes its hello before reading
 * still reads why instead of a broken pipe. At most SRV_LINGER_CAP linger
 * at a time: past that, the oldest (which has had the longest to read) is
 * closed, so that in a flood of refusals the newest are still readable.
 */
static void srv_conn_refuse_linger(srv_conn *c, uint16_t status, const char *text)
{
	srv *s = c->srv;

	if (s->n_lingering >= SRV_LINGER_CAP && !TAILQ_EMPTY(&s->lingering))
		srv_conn_close(TAILQ_FIRST(&s->lingering));
	c->refused = true;
	c->refused_ms = uv_now(s->loop);
	TAILQ_INSERT_TAIL(&s->lingering, c, linger);
	s->n_lingering++;
	srv_send_error(c, status, text);
	srv_conn_flush(c);
	if (!c->closing)
		srv_conn_start_reading(c);
}

/* srv_conn_refuse, with a log line. */
static void srv_conn_error(srv_conn *c, uint16_t status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void srv_conn_error(srv_conn *c, uint16_t status, const char *fmt, ...)
{
	char text[TP_MAX_ERRMSG + 1];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	log_info("closing a client connection: %s", text);
	srv_conn_refuse(c, status, text);
}

/* TP_ERR_FORBIDDEN with the text fmt makes: what the client's
 * certificate may not do (or why it is not accepted). The warning is
 * rate-limited per kind and source (ratelog.h), as the Raft port's. */
static void srv_conn_forbid(srv_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void srv_conn_forbid(srv_conn *c, const char *fmt, ...)
{
	char text[TP_MAX_ERRMSG + 1];
	unsigned quieted;
	va_list ap;
	int level;

	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	level = ratelog_level(&c->srv->refusals, uv_now(c->srv->loop), c->from, text, &quieted);
	log_printf(level, "refused a client request from %s: %s%s", c->from, text,
		   quieted > 0 ? "; more like it were logged at debug level" : "");
	srv_conn_refuse(c, TP_ERR_FORBIDDEN, text);
}

/* A client that does not read its responses: dropped, so that it holds no
 * more than client-output-max bytes of ours. */
static void srv_conn_drop_unread(srv_conn *c)
{
	srv *s = c->srv;

	srv_log_limited(s, &s->log_dropped, LOG_WARN,
			"dropping a client that does not read its responses: %zu bytes unsent, more "
			"than client-output-max (%u)",
			ob_unsent(&c->ob), s->cfg->client_output_max);
	srv_conn_close(c);
}

/* Hands c's responses to the kernel; a broken stream is closed, and so is
 * one whose client leaves more than client-output-max unread. */
static void srv_conn_flush(srv_conn *c)
{
	int rv;

	if (c->closing)
		return;
	rv = ob_flush(&c->ob, &c->h.stream);
	if (rv != 0) {
		log_debug("client write failed: %s",
			  rv == UV_EPROTO && c->tls != NULL ? c->tls->err : uv_strerror(rv));
		srv_conn_close(c);
	} else if (ob_unsent(&c->ob) > c->srv->cfg->client_output_max) {
		srv_conn_drop_unread(c);
	}
}

static void srv_conn_written(outbuf *ob, int status)
{
	srv_conn *c = ob->data;

	if (status != 0) {
		if (status != UV_ECANCELED)
			log_debug("client write failed: %s", uv_strerror(status));
		srv_conn_close(c);
		return;
	}
	if (c->closing)
		return;
	srv_conn_flush(c);
	/* Output drained below the limit: reading may resume. */
	srv_conn_parse(c);
}

/* ---- the queue of timestamp requests ----------------------------------- */

static void srv_pending_add(srv *s, srv_conn *c)
{
	if (c->pending)
		return;
	c->pending = true;
	c->deficit_before = c->deficit;
	c->credited_before = c->credited;
	s->n_pending++;
	TAILQ_INSERT_TAIL(&s->pending, c, pending_link);
}

/* Drops connections with empty queues from the pending list; the others
 * keep their order. */
static void srv_pending_prune(srv *s)
{
	srv_conn *c, *next;

	for (c = TAILQ_FIRST(&s->pending); c != NULL; c = next) {
		next = TAILQ_NEXT(c, pending_link);
		if (c->q_len == 0 || c->closing) {
			c->pending = false;
			c->deficit = 0;
			c->credited = false;
			s->n_pending--;
			TAILQ_REMOVE(&s->pending, c, pending_link);
		}
	}
}

static srv_req *srv_q_at(srv_conn *c, unsigned i)
{
	return &c->q[(c->q_head + i) % SRV_QUEUE_CAP];
}

static srv_req *srv_q_head(srv_conn *c)
{
	return srv_q_at(c, 0);
}

static void srv_q_pop(srv_conn *c)
{
	c->q_head = (c->q_head + 1) % SRV_QUEUE_CAP;
	c->q_len--;
}

static void srv_q_push(srv_conn *c, uint64_t id, uint32_t count, uint64_t deadline)
{
	srv_req *r = srv_q_at(c, c->q_len);

	r->id = id;
	r->count = count;
	r->deadline_ms = deadline;
	r->batch = 0;
	r->received_ns = c->read_ns;
	c->q_len++;
}

/* The first request of c not yet in a batch (c->q_len if none): forwarded
 * requests stay queued, in order, until the leader answers. */
static unsigned srv_q_unsent(srv_conn *c)
{
	unsigned i = 0;

	while (i < c->q_len && srv_q_at(c, i)->batch != 0)
		i++;
	return i;
}

/* The connection at the head of the pending list goes to its tail. */
static void srv_pending_rotate(srv *s)
{
	srv_conn *c = TAILQ_FIRST(&s->pending);

	if (c == NULL || TAILQ_NEXT(c, pending_link) == NULL)
		return;
	TAILQ_REMOVE(&s->pending, c, pending_link);
	TAILQ_INSERT_TAIL(&s->pending, c, pending_link);
}

/* c's turn ends: it goes to the back, and earns a new quantum next time
 * (or, with nothing left to send, keeps no credit: classic DRR). */
static void srv_turn_end(srv *s, srv_conn *c, bool emptied)
{
	c->credited = false;
	if (emptied)
		c->deficit = 0;
	srv_pending_rotate(s);
}

/*
 * The next batch, by deficit round-robin over the connections with unsent
 * requests (docs/architecture.md, "Fair service"): a connection's turn
 * adds SRV_QUANTUM timestamps to its deficit and takes its requests in
 * queue order while they fit the deficit and the batch's limit (the room
 * the allocator has now, or one grant). A connection whose next request
 * cannot fit even an empty batch is skipped, so that one huge request
 * waiting for the window or the clock does not hold up small ones behind
 * it; one whose request would only overflow this batch keeps its turn for
 * the next. Marks the requests taken with `batch` and returns their sum.
 *
 * When nothing fits, the first request skipped is marked alone (its sum
 * returned): the caller's grant then fails with the reason (TA_WAIT asks
 * the allocator for an extension) or, if the clock moved on, succeeds.
 *
 * The credit and turns the pick takes are saved first: if the batch is
 * neither granted nor sent, srv_batch_unpick gives them back.
 */
static uint64_t srv_batch_pick(srv *s, uint64_t limit, uint64_t batch)
{
	uint64_t total = 0;
	srv_req *skipped = NULL;
	srv_conn *c;

	s->pick_head = TAILQ_FIRST(&s->pending);
	TAILQ_FOREACH(c, &s->pending, pending_link)
	{
		c->deficit_before = c->deficit;
		c->credited_before = c->credited;
	}
	for (unsigned visits = s->n_pending; visits > 0 && !TAILQ_EMPTY(&s->pending); visits--) {
		c = TAILQ_FIRST(&s->pending);
		unsigned i = srv_q_unsent(c);
		srv_req *r;

		if (i == c->q_len) {
			srv_pending_rotate(s); /* all forwarded: nothing to send */
			continue;
		}
		r = srv_q_at(c, i);
		if (r->count > limit - total) {
			if (skipped == NULL)
				skipped = r;
			if (total > 0 && r->count <= limit)
				break;         /* the batch is full: c goes first in the next */
			srv_pending_rotate(s); /* cannot fit now: skipped, keeps its credit */
			continue;
		}
		if (!c->credited) {
			c->deficit += SRV_QUANTUM;
			c->credited = true;
		}
		for (; i < c->q_len; i++) {
			r = srv_q_at(c, i);
			if (r->batch != 0)
				continue;
			if (r->count > c->deficit || r->count > limit - total)
				break;
			r->batch = batch;
			total += r->count;
			c->deficit -= r->count;
		}
		if (i == c->q_len)
			srv_turn_end(s, c, true);
		else if (r->count > c->deficit)
			srv_turn_end(s, c, false);
		else
			break; /* the batch is full: c goes on in the next */
	}
	if (total == 0 && skipped != NULL) {
		skipped->batch = batch;
		total = skipped->count;
	}
	return total;
}

/* Requests marked `from` are marked `to` (0: unsent again). */
static void srv_batch_relabel(srv *s, uint64_t from, uint64_t to)
{
	srv_conn *c;

	TAILQ_FOREACH(c, &s->pending, pending_link)
	{
		for (unsigned i = 0; i < c->q_len; i++)
			if (srv_q_at(c, i)->batch == from)
				srv_q_at(c, i)->batch = to;
	}
}

/*
 * The batch just picked (SRV_BATCH_LOCAL) was neither granted nor sent:
 * its requests are unsent again, and every connection gets back the credit
 * and the place in the round that the pick took (saved by srv_batch_pick;
 * a pick only rotates the list), so a failed grant or send costs no
 * connection its share. Nothing was handed out for the batch: its requests
 * get their values from a later successful grant or send, as before.
 */
static void srv_batch_unpick(srv *s)
{
	srv_conn *c;

	srv_batch_relabel(s, SRV_BATCH_LOCAL, 0);
	TAILQ_FOREACH(c, &s->pending, pending_link)
	{
		c->deficit = c->deficit_before;
		c->credited = c->credited_before;
	}
	for (unsigned n = s->n_pending; n > 0 && TAILQ_FIRST(&s->pending) != s->pick_head; n--)
		srv_pending_rotate(s);
}

/* Requests of one connection answered at now_ns (uv_hrtime), timed: those
 * that arrived in one read share received_ns, so a run of them is one
 * observation (a pipelining client's batch costs one, not one each). */
typedef struct srv_timing {
	uint64_t now_ns;
	uint64_t received_ns; /* of the current run */
	uint64_t n;           /* requests in it */
} srv_timing;

static void srv_timing_flush(srv *s, srv_timing *t)
{
	if (t->n > 0)
		metrics_hist_observe(&s->stats.duration, METRICS_HIST_REQUEST,
				     t->now_ns > t->received_ns ? t->now_ns - t->received_ns : 0, t->n);
	t->n = 0;
}

/* Answers queued request r of c, timing it in t. */
static void srv_answer(srv_conn *c, const srv_req *r, uint16_t status, uint64_t first, srv_timing *t)
{
	if (t->n > 0 && r->received_ns != t->received_ns)
		srv_timing_flush(c->srv, t);
	t->received_ns = r->received_ns;
	t->n++;
	srv_send_ts(c, r->id, status, first, r->count);
}

/*
 * Removes from every queue the requests of `batch` (picked by
 * srv_batch_pick, then granted here or forwarded), answering each: with
 * the next sub-range of [first, ...) if status is TP_OK, else with status.
 * total bounds the requests taken (a batch's sum).
 */
static void srv_batch_answer(srv *s, uint64_t batch, uint64_t total, uint16_t status, uint64_t first)
{
	srv_timing t = {.now_ns = uv_hrtime()}; /* one reading per batch, for the metrics */
	srv_conn *c, *next;

	/* next is taken first: answering or flushing may close c, which
	 * leaves the list (srv_conn_close); it closes no other connection. */
	for (c = TAILQ_FIRST(&s->pending); c != NULL && total > 0; c = next) {
		unsigned kept = 0;
		bool answered = false;

		next = TAILQ_NEXT(c, pending_link);
		for (unsigned i = 0; i < c->q_len; i++) {
			srv_req r = *srv_q_at(c, i);

			if (r.batch == batch && r.count <= total) {
				srv_answer(c, &r, status, first, &t);
				if (status == TP_OK)
					first += r.count;
				total -= r.count;
				answered = true;
			} else {
				*srv_q_at(c, kept++) = r;
			}
		}
		c->q_len = kept;
		srv_timing_flush(s, &t);
		if (answered)
			srv_conn_flush(c);
	}
	srv_pending_prune(s);
}

/* Connections that stopped reading for a full queue resume. */
static void srv_resume_reading(srv *s)
{
	for (srv_conn *c = LIST_FIRST(&s->conns); c != NULL; c = LIST_NEXT(c, link))
		if (!c->reading && !c->closing)
			srv_conn_parse(c);
}

/*
 * Leader: answers queued requests with one allocator call per batch, each
 * batch as large as the allocator's room allows (srv_batch_pick).
 */
static void srv_dispatch_local(srv *s)
{
	uint64_t total;

	while ((total = srv_batch_pick(s, node_room(s->node), SRV_BATCH_LOCAL)) > 0) {
		uint64_t first = 0;
		int rc = node_grant(s->node, (uint32_t)total, &first);

		if (rc != TA_OK && rc != TA_EXHAUSTED) {
			/* Wait for the node's ready callback or the deadline. */
			srv_batch_unpick(s);
			return;
		}
		/*
		 * Split [first, first + total) among the batch's requests, into
		 * disjoint sub-ranges. Every request in the batch was received
		 * before the grant was made, so each sub-range is later than any
		 * grant that completed before its request was sent (the
		 * allocator's grant is fresh: I1-I4), and within max-ahead of the
		 * clock (I6).
		 */
		srv_batch_answer(s, SRV_BATCH_LOCAL, total, rc == TA_OK ? TP_OK : TP_ERR_EXHAUSTED, first);
		srv_resume_reading(s);
	}
}

/* Follower: sends each batch to the leader as one request. */
static void srv_dispatch_forward(srv *s)
{
	uint64_t total;

	while (fwd_can_send(&s->fwd) && (total = srv_batch_pick(s, TA_MAX_GRANT, SRV_BATCH_LOCAL)) > 0) {
		uint64_t batch = fwd_send(&s->fwd, (uint32_t)total);

		if (batch == 0) {
			srv_batch_unpick(s); /* not sent: unsent again, credit back */
			return;
		}
		/* The picked requests are this batch's. */
		srv_batch_relabel(s, SRV_BATCH_LOCAL, batch);
		s->stats.forwarded++;
	}
}

static void srv_dispatch(srv *s)
{
	uint64_t leader;

	if (s->stopping)
		return;
	if (node_is_leader(s->node)) {
		fwd_set_target(&s->fwd, 0, NULL);
		srv_dispatch_local(s);
		return;
	}
	leader = node_leader_id(s->node);
	if (leader != 0 && leader != s->cfg->node_id && leader != s->fwd.target_id) {
		/* From the replicated configuration: a member added since this
		 * one started is not in its peers line (member.h). */
		char addr[CFG_ADDR_SIZE];

		member_client_address(s->node, leader, addr, sizeof addr);
		fwd_set_target(&s->fwd, leader, addr);
	} else if (leader == 0 || leader == s->cfg->node_id) {
		fwd_set_target(&s->fwd, 0, NULL);
	}
	srv_dispatch_forward(s);
}

/*
 * The leader answered a forwarded batch. On success its grant was made
 * after the leader received the batch, which was after this node received
 * each of its requests: each sub-range is fresh for its request. Errors
 * that a new leader may cure send the requests again (until their deadline).
 */
static void srv_fwd_grant_cb(void *arg, uint64_t batch, uint16_t status, uint64_t first, uint32_t count)
{
	srv *s = arg;

	if (status == TP_OK || status == TP_ERR_EXHAUSTED || status == TP_ERR_BAD_REQUEST) {
		srv_batch_answer(s, batch, status == TP_OK ? count : UINT64_MAX, status, first);
		srv_resume_reading(s);
		return;
	}
	srv_batch_relabel(s, batch, 0);
}

/* The forwarding connection dropped: every forwarded request is unsent. */
static void srv_fwd_reset_cb(void *arg)
{
	srv *s = arg;
	srv_conn *c;

	TAILQ_FOREACH(c, &s->pending, pending_link)
	{
		for (unsigned i = 0; i < c->q_len; i++)
			srv_q_at(c, i)->batch = 0;
	}
}

static void srv_fwd_ready_cb(void *arg)
{
	srv_dispatch(arg);
}

static void srv_check_cb(uv_check_t *h)
{
	srv_dispatch(h->data);
}

static void srv_ready_cb(void *arg)
{
	srv_dispatch(arg);
}

/* Answers requests whose deadline has passed: the oldest are at the head. */
static void srv_expire_cb(uv_timer_t *t)
{
	srv *s = t->data;
	uint64_t now = uv_now(s->loop);
	uint16_t status = node_wait_status(s->node);
	srv_timing timing = {0};
	srv_conn *c, *next;

	/* next is taken first: flushing may close c (srv_batch_answer). */
	for (c = TAILQ_FIRST(&s->pending); c != NULL; c = next) {
		bool answered = false;

		next = TAILQ_NEXT(c, pending_link);
		while (c->q_len > 0 && srv_q_head(c)->deadline_ms <= now) {
			if (timing.now_ns == 0)
				timing.now_ns = uv_hrtime();
			srv_answer(c, srv_q_head(c), status, 0, &timing);
			srv_q_pop(c);
			answered = true;
		}
		srv_timing_flush(s, &timing);
		if (answered)
			srv_conn_flush(c);
	}
	srv_pending_prune(s);
}

/*
 * Hello and idle timeouts: a connection that has not said hello within
 * hello-timeout of its accept (a silent or one-byte-a-second client) is
 * closed, and so is one with nothing in flight (no request queued, no
 * handover awaited, no response unsent, no input) for idle-timeout.
 */
static void srv_sweep_cb(uv_timer_t *t)
{
	srv *s = t->data;
	uint64_t now = uv_now(s->loop);
	char text[TP_MAX_ERRMSG + 1];
	srv_conn *next;

	for (srv_conn *c = LIST_FIRST(&s->conns); c != NULL; c = next) {
		next = LIST_NEXT(c, link);
		if (c->refused) {
			if (now - c->refused_ms >= SRV_LINGER_MS)
				srv_conn_close(c);
		} else if (!c->handshaken && now - c->accepted_ms >= s->cfg->hello_timeout_ms) {
			snprintf(text, sizeof text, "no hello within hello-timeout (%u ms)",
				 s->cfg->hello_timeout_ms);
			srv_log_limited(s, &s->log_timeout, LOG_INFO, "closing a client connection: %s",
					text);
			srv_conn_refuse(c, TP_ERR_PROTOCOL, text);
		} else if (c->handshaken && s->cfg->idle_timeout_ms > 0 && c->q_len == 0 && c->n_xfers == 0 &&
			   ob_unsent(&c->ob) == 0 && now - c->active_ms >= s->cfg->idle_timeout_ms) {
			snprintf(text, sizeof text, "idle for idle-timeout (%u ms)", s->cfg->idle_timeout_ms);
			srv_log_limited(s, &s->log_timeout, LOG_INFO, "closing a client connection: %s",
					text);
			srv_conn_refuse(c, TP_ERR_UNAVAILABLE, text);
		}
	}
}

/* ---- planned handover ------------------------------------------------- */

/* The handover a client asked for has ended (node.h says what status and
 * leader_id mean). */
static void srv_transfer_cb(node_transfer_req *req, uint16_t status, uint64_t leader_id)
{
	srv_xfer *x = req->data;

	LIST_REMOVE(x, link);
	x->conn->n_xfers--;
	srv_send_transfer(x->conn, x->id, status, leader_id);
	srv_conn_flush(x->conn);
	free(x);
}

static void srv_handle_transfer(srv_conn *c, const tp_msg *m)
{
	srv *s = c->srv;
	uint64_t id = m->u.transfer_req.id;
	uint16_t status;
	srv_xfer *x;

	if (s->stopping) {
		srv_send_transfer(c, id, TP_ERR_SHUTTING_DOWN, node_leader_id(s->node));
		return;
	}
	if (c->n_xfers >= SRV_TRANSFER_CAP) {
		srv_send_transfer(c, id, TP_ERR_BAD_REQUEST, node_leader_id(s->node));
		return;
	}
	x = calloc(1, sizeof *x);
	if (x == NULL) {
		log_error("out of memory for a transfer request");
		srv_send_transfer(c, id, TP_ERR_INTERNAL, node_leader_id(s->node));
		return;
	}
	x->req.data = x;
	x->srv = s;
	x->conn = c;
	x->id = id;
	status = node_transfer(s->node, &x->req, m->u.transfer_req.target, srv_transfer_cb);
	if (status != TP_OK) {
		/* Not the leader (leader_id says who is), or a bad target. */
		free(x);
		srv_send_transfer(c, id, status, node_leader_id(s->node));
		return;
	}
	LIST_INSERT_HEAD(&s->xfers, x, link);
	c->n_xfers++;
}

/* ---- membership --------------------------------------------------------- */

/* The change a client asked for has ended (member.h). */
static void srv_member_cb(member_req *req, uint16_t status, const char *text)
{
	srv *s = req->data;
	srv_member *w = &s->member_wait;
	srv_conn *c = w->conn;

	w->conn = NULL;
	if (c == NULL)
		return;
	c->n_xfers--;
	srv_send_member(c, w->id, status, w->member, text);
	srv_conn_flush(c);
}

static void srv_member_list(srv_conn *c, const tp_msg *m)
{
	srv *s = c->srv;
	member_info info;
	unsigned count = 0;
	tp_msg r;

	if (member_get(s->node, m->u.member_req.member, &info, &count) != 0) {
		char text[TP_MAX_ERRMSG + 1];

		snprintf(text, sizeof text, "the configuration has %u members, no member number %" PRIu32,
			 count, m->u.member_req.member);
		srv_send_member(c, m->u.member_req.id, TP_ERR_BAD_REQUEST, 0, text);
		return;
	}
	memset(&r, 0, sizeof r);
	r.type = TP_MEMBER_RESP;
	r.u.member_resp.id = m->u.member_req.id;
	r.u.member_resp.status = TP_OK;
	r.u.member_resp.leader_id = (uint32_t)node_leader_id(s->node);
	r.u.member_resp.count = count;
	r.u.member_resp.member = (uint32_t)info.id;
	r.u.member_resp.role = info.role;
	r.u.member_resp.flags =
	    (uint8_t)((info.leader ? TP_MEMBER_IS_LEADER : 0) |
		      (info.id == s->cfg->node_id ? TP_MEMBER_IS_SELF : 0) | (info.up ? TP_MEMBER_IS_UP : 0));
	r.u.member_resp.match_index = info.match_index;
	snprintf(r.u.member_resp.text, sizeof r.u.member_resp.text, "%.200s", info.address);
	r.u.member_resp.len = (uint16_t)strlen(r.u.member_resp.text);
	srv_conn_send(c, &r);
}

static void srv_handle_member(srv_conn *c, const tp_msg *m)
{
	srv *s = c->srv;
	srv_member *w = &s->member_wait;
	char text[TP_MAX_ERRMSG + 1] = "";
	uint16_t status;

	if (m->u.member_req.op == TP_MEMBER_LIST) {
		srv_member_list(c, m);
		return;
	}
	if (s->stopping) {
		srv_send_member(c, m->u.member_req.id, TP_ERR_SHUTTING_DOWN, m->u.member_req.member,
				"the server is stopping");
		return;
	}
	if (w->conn != NULL) {
		snprintf(text, sizeof text,
			 "another membership change (of node %" PRIu32 ") is under way; one change at a time",
			 w->member);
		srv_send_member(c, m->u.member_req.id, TP_ERR_BUSY, m->u.member_req.member, text);
		return;
	}
	w->req.data = s;
	if (m->u.member_req.op == TP_MEMBER_ADD)
		status = member_add(s->node, &w->req, m->u.member_req.member, m->u.member_req.text,
				    srv_member_cb, text, sizeof text);
	else if (m->u.member_req.op == TP_MEMBER_REMOVE)
		status = member_remove(s->node, &w->req, m->u.member_req.member,
				       (m->u.member_req.flags & TP_MEMBER_FORCE) != 0, srv_member_cb, text,
				       sizeof text);
	else {
		status = TP_ERR_BAD_REQUEST;
		snprintf(text, sizeof text, "unknown membership operation %u", m->u.member_req.op);
	}
	if (status != TP_OK) {
		srv_send_member(c, m->u.member_req.id, status, m->u.member_req.member, text);
		return;
	}
	w->conn = c;
	w->id = m->u.member_req.id;
	w->member = m->u.member_req.member;
	c->n_xfers++;
}

/* Forgets the transfer requests of connection c, which is closing; or,
 * with c NULL, of every connection, answering them TP_ERR_SHUTTING_DOWN
 * (the server is stopping). The handover itself goes on. */
static void srv_xfer_drop(srv *s, srv_conn *c)
{
	srv_xfer *x, *next;
	srv_member *w = &s->member_wait;

	/* The membership change a client waits for goes on too. */
	if (w->conn != NULL && (c == NULL || w->conn == c)) {
		srv_conn *wc = w->conn;

		member_cancel(s->node, &w->req);
		w->conn = NULL;
		wc->n_xfers--;
		if (c == NULL) {
			srv_send_member(wc, w->id, TP_ERR_SHUTTING_DOWN, w->member, "the server is stopping");
			srv_conn_flush(wc);
		}
	}

	for (x = LIST_FIRST(&s->xfers); x != NULL; x = next) {
		next = LIST_NEXT(x, link);
		if (c != NULL && x->conn != c)
			continue;
		LIST_REMOVE(x, link);
		x->conn->n_xfers--;
		node_transfer_cancel(s->node, &x->req);
		if (c == NULL) {
			srv_send_transfer(x->conn, x->id, TP_ERR_SHUTTING_DOWN, node_leader_id(s->node));
			srv_conn_flush(x->conn);
		}
		free(x);
	}
}

/* ---- the operator's commands (TP_ADMIN_REQ) ----------------------------- */

/* The node's answer (node.h): from inside libraft's callback, so it only
 * queues the response. */
static void srv_admin_cb(void *arg, uint16_t status, uint64_t value, uint64_t value2)
{
	srv_admin *x = arg;
	srv *s = x->srv;

	LIST_REMOVE(x, link);
	if (x->conn != NULL) {
		srv_send_admin(x->conn, x->id, status, node_leader_id(s->node), value, value2);
		srv_conn_flush(x->conn);
	}
	free(x);
}

static void srv_handle_admin(srv_conn *c, const tp_msg *m)
{
	srv *s = c->srv;
	uint64_t id = m->u.admin_req.id;
	uint64_t value = 0, value2 = 0;
	uint16_t status;
	srv_admin *x;

	if (m->u.admin_req.op == TP_ADMIN_VERSIONS) {
		node_versions(s->node, &value, &value2);
		srv_send_admin(c, id, TP_OK, node_leader_id(s->node), value, value2);
		return;
	}
	if (m->u.admin_req.op != TP_ADMIN_ADVANCE && m->u.admin_req.op != TP_ADMIN_SET_CLUSTER_VERSION) {
		srv_send_admin(c, id, TP_ERR_BAD_REQUEST, node_leader_id(s->node), 0, 0);
		return;
	}
	if (s->stopping) {
		srv_send_admin(c, id, TP_ERR_SHUTTING_DOWN, node_leader_id(s->node), 0, 0);
		return;
	}
	x = calloc(1, sizeof *x);
	if (x == NULL) {
		srv_send_admin(c, id, TP_ERR_INTERNAL, node_leader_id(s->node), 0, 0);
		return;
	}
	x->srv = s;
	x->conn = c;
	x->id = id;
	if (m->u.admin_req.op == TP_ADMIN_ADVANCE)
		status = node_advance(s->node, m->u.admin_req.arg, &value, &value2, srv_admin_cb, x);
	else
		status = node_set_cluster_version(s->node, m->u.admin_req.arg, m->u.admin_req.arg2, &value,
						  srv_admin_cb, x);
	if (status != TP_OK) {
		free(x);
		srv_send_admin(c, id, status, node_leader_id(s->node), value, value2);
		return;
	}
	LIST_INSERT_HEAD(&s->admins, x, link);
}

/* Connection c is closing (NULL: every connection, the server is
 * stopping): its commands go on, their answers are dropped. */
static void srv_admin_drop(srv *s, srv_conn *c)
{
	for (srv_admin *x = LIST_FIRST(&s->admins); x != NULL; x = LIST_NEXT(x, link))
		if (c == NULL || x->conn == c)
			x->conn = NULL;
}

/* ---- input ------------------------------------------------------------- */

static void srv_handle_hello(srv_conn *c, const tp_msg *m)
{
	tp_msg r;

	if (m->u.hello.magic != TP_MAGIC) {
		srv_conn_error(c, TP_ERR_VERSION, "bad magic 0x%08" PRIx32 ": not a tsoracle client",
			       m->u.hello.magic);
		return;
	}
	if (m->u.hello.min_version > TP_VERSION || m->u.hello.max_version < TP_VERSION ||
	    m->u.hello.min_version > m->u.hello.max_version) {
		srv_conn_error(c, TP_ERR_VERSION,
			       "no common protocol version: client speaks %u to %u, server %d",
			       m->u.hello.min_version, m->u.hello.max_version, TP_VERSION);
		return;
	}
	c->handshaken = true;
	r.type = TP_HELLO_OK;
	r.u.hello_ok.version = TP_VERSION;
	r.u.hello_ok.node_id = (uint32_t)c->srv->cfg->node_id;
	srv_conn_send(c, &r);
}

/*
 * What a TLS client's role may not ask (docs/cluster.md, "Roles"): NULL if
 * it may, else what it would need. `client` and `member` (a forwarding
 * follower) take timestamps, read status and list the members; `admin`
 * may also transfer leadership and add or remove members. Without TLS (the unix socket, or plaintext
 * client-tcp on loopback) there are no roles: local users, as they always were.
 */
static const char *srv_forbidden(const srv_conn *c, const tp_msg *m)
{
	if (c->tls == NULL)
		return NULL;
	switch (m->type) {
	case TP_TRANSFER_REQ:
		return c->peer.role == TLS_ROLE_ADMIN
			   ? NULL
			   : "transfer leadership: that needs an admin certificate (OU=admin)";
	case TP_ADMIN_REQ:
		/* Reading the versions is status; changing anything is an
		 * admin's. */
		return c->peer.role == TLS_ROLE_ADMIN || m->u.admin_req.op == TP_ADMIN_VERSIONS
			   ? NULL
			   : "advance the oracle or raise the cluster version: that needs an admin "
			     "certificate (OU=admin)";
	case TP_MEMBER_REQ:
		return c->peer.role == TLS_ROLE_ADMIN || m->u.member_req.op == TP_MEMBER_LIST
			   ? NULL
			   : "add or remove members: that needs an admin certificate (OU=admin)";
	default:
		return NULL;
	}
}

/*
 * A member certificate speaks for a current member only: a member removed
 * from the configuration keeps its certificate, still valid until revoked,
 * and must not go on forwarding, measuring clocks or reading through this
 * port with it (the Raft port refuses it too, peer.h). True, and the
 * connection refused (a rate-limited warning), if c's no longer does.
 */
static bool srv_member_gone(srv_conn *c)
{
	if (c->tls == NULL || c->peer.role != TLS_ROLE_MEMBER ||
	    node_is_member(c->srv->node, c->peer.member_id))
		return false;
	srv_conn_forbid(
	    c,
	    "certificate CN=%s speaks for node %" PRIu64
	    ", which is not a member of the Raft configuration (removed; tsoracle-ctl member list "
	    "shows the members, and a member added back needs a new id and certificate)",
	    c->peer.cn, c->peer.member_id);
	return true;
}

static void srv_handle(srv_conn *c, const tp_msg *m)
{
	const char *forbidden;
	srv *s = c->srv;
	tp_msg r;

	if (!c->handshaken) {
		if (m->type == TP_HELLO)
			srv_handle_hello(c, m);
		else
			srv_conn_error(c, TP_ERR_PROTOCOL, "expected a hello, got message type %u", m->type);
		return;
	}
	if (srv_member_gone(c))
		return;
	if ((forbidden = srv_forbidden(c, m)) != NULL) {
		srv_conn_forbid(c, "certificate CN=%s (role %s) may not %s", c->peer.cn,
				tls_role_name(c->peer.role), forbidden);
		return;
	}
	switch (m->type) {
	case TP_TS_REQ:
		if (m->u.ts_req.count == 0 || m->u.ts_req.count > TP_MAX_COUNT) {
			srv_send_ts(c, m->u.ts_req.id, TP_ERR_BAD_REQUEST, 0, 0);
			return;
		}
		if (s->stopping) {
			srv_send_ts(c, m->u.ts_req.id, TP_ERR_SHUTTING_DOWN, 0, 0);
			return;
		}
		/* Deadlines use the loop's time (read once per iteration): a clock
		 * read per request cost a tenth of the leader's CPU under load. */
		srv_q_push(c, m->u.ts_req.id, m->u.ts_req.count,
			   uv_now(s->loop) + s->cfg->request_timeout_ms);
		srv_pending_add(s, c);
		return;
	case TP_STATUS_REQ:
		r.type = TP_STATUS_RESP;
		r.u.status_resp.id = m->u.status_req.id;
		r.u.status_resp.status = TP_OK;
		node_status(s->node, &r.u.status_resp.st);
		srv_conn_send(c, &r);
		return;
	case TP_TRANSFER_REQ:
		srv_handle_transfer(c, m);
		return;
	case TP_CLOCK_REQ:
		/* Another member measuring this one's clock (clockprobe.h): the
		 * raw reading, as the driver judges it. */
		r.type = TP_CLOCK_RESP;
		r.u.clock_resp.id = m->u.clock_req.id;
		r.u.clock_resp.status = TP_OK;
		r.u.clock_resp.wall_ms = clock_now().wall_ms;
		srv_conn_send(c, &r);
		return;
	case TP_ADMIN_REQ:
		srv_handle_admin(c, m);
		return;
	case TP_MEMBER_REQ:
		srv_handle_member(c, m);
		return;
	default:
		srv_conn_error(c, TP_ERR_PROTOCOL, "unexpected message type %u from a client", m->type);
		return;
	}
}

/* The TLS session ended (the client closed it, or it broke). */
static void srv_conn_tls_lost(srv_conn *c)
{
	if (c->tls->err[0] != '\0')
		log_debug("client %s: %s", c->from, c->tls->err);
	srv_conn_close(c);
}

/* Parses every buffered frame while the queue has room; reads resume or
 * stop accordingly. (Output is bounded by dropping, srv_conn_flush: a
 * client's responses only wait for that client to read them.) */
static void srv_conn_parse(srv_conn *c)
{
	tp_msg m;
	int rc;

	if (c->refused) {
		/* Lingering after a refusal: input is dropped as it comes, the
		 * session's decrypted plaintext too, so that neither the reader
		 * nor the TLS buffers grow while the client reads why. */
		long pulled = 0;

		do {
			tp_reader_init(&c->reader);
		} while (c->tls != NULL && (pulled = tlsio_pull(c->tls, &c->reader)) > 0);
		if (pulled < 0)
			srv_conn_tls_lost(c);
		return;
	}
	while (!c->closing && c->q_len < SRV_QUEUE_CAP) {
		rc = tp_reader_next(&c->reader, &m);
		if (rc == 0 && c->tls != NULL) {
			/* Plaintext the session decrypted beyond the reader's room. */
			long pulled = tlsio_pull(c->tls, &c->reader);

			if (pulled < 0) {
				srv_conn_tls_lost(c);
				return;
			}
			if (pulled > 0)
				continue;
		}
		if (rc == 0)
			break;
		if (rc < 0) {
			srv_conn_error(c, TP_ERR_PROTOCOL, "malformed frame: %s",
				       tp_reader_errstr(&c->reader));
			return;
		}
		srv_handle(c, &m);
	}
	if (c->closing)
		return;
	if (c->q_len < SRV_QUEUE_CAP) {
		srv_conn_start_reading(c);
	} else if (c->reading) {
		uv_read_stop(&c->h.stream);
		c->reading = false;
	}
}

static void srv_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	srv_conn *c = h->data;
	size_t len;
	uint8_t *p = tlsio_read_space(c->tls, &c->reader, c->srv->tls_rbuf, sizeof c->srv->tls_rbuf, &len);

	(void)suggested;
	*buf = uv_buf_init((char *)p, (unsigned)len);
}

/* Ciphertext from a TLS client: the handshake, the identity check, then
 * its plaintext into the reader (srv_conn_parse pulls the rest). */
static void srv_conn_tls_input(srv_conn *c, const uv_buf_t *buf, size_t len)
{
	bool done_now;
	int rc = tlsio_feed(c->tls, buf->base, len, &done_now);

	if (rc == TLS_ERROR) {
		unsigned quieted;
		int level;

		/* The alert that says why goes out before the close. */
		srv_conn_flush(c);
		level =
		    ratelog_level(&c->srv->refusals, uv_now(c->srv->loop), c->from, c->tls->err, &quieted);
		log_printf(level,
			   "refused a client TLS connection from %s: %s (client-tcp needs TLS 1.3 and a "
			   "certificate from tls-ca)%s",
			   c->from, c->tls->err,
			   quieted > 0 ? "; more like it were logged at debug level" : "");
		srv_conn_close(c);
		return;
	}
	srv_conn_flush(c); /* the handshake's answer */
	if (rc != TLS_OK || c->closing)
		return;
	if (done_now) {
		char why[TLS_ERR_SIZE];

		tls_conn_peer(c->tls, &c->peer);
		/* Begun before a reload: it must pass the files read since, too. */
		if (SSL_get_SSL_CTX(c->tls->ssl) != c->srv->tls_ctx && c->srv->tls_ctx != NULL &&
		    tls_conn_reverify(c->tls, c->srv->tls_ctx, why, sizeof why) != 0) {
			srv_conn_forbid(c, "%s", why);
			return;
		}
		if (c->peer.role == TLS_ROLE_NONE) {
			srv_conn_forbid(
			    c,
			    "certificate CN=%s names no role: a client certificate needs OU=client, "
			    "OU=admin or OU=member (scripts/certs.sh makes them)",
			    c->peer.cn);
			return;
		}
		if (srv_member_gone(c))
			return;
		log_debug("client %s connected over TLS as CN=%s (role %s)", c->from, c->peer.cn,
			  tls_role_name(c->peer.role));
	}
	srv_conn_parse(c);
}

static void srv_read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	srv_conn *c = stream->data;

	if (nread == 0)
		return;
	if (nread == UV_ENOBUFS) {
		/* The reader is full of frames we are not parsing yet. */
		uv_read_stop(stream);
		c->reading = false;
		return;
	}
	if (nread < 0) {
		if (nread != UV_EOF)
			log_debug("client read failed: %s", uv_strerror((int)nread));
		srv_conn_close(c);
		return;
	}
	c->active_ms = uv_now(c->srv->loop);
	/* The receipt of the requests in these bytes, for the duration
	 * histogram: one clock reading per read, not per request. */
	c->read_ns = uv_hrtime();
	if (c->tls != NULL) {
		srv_conn_tls_input(c, buf, (size_t)nread);
		srv_conn_flush(c);
		return;
	}
	tp_reader_commit(&c->reader, (size_t)nread);
	srv_conn_parse(c);
	srv_conn_flush(c);
}

static void srv_conn_start_reading(srv_conn *c)
{
	if (c->reading || c->closing)
		return;
	if (uv_read_start(&c->h.stream, srv_alloc_cb, srv_read_cb) == 0)
		c->reading = true;
}

/* ---- connections ------------------------------------------------------- */

static void srv_conn_free_cb(uv_handle_t *h)
{
	srv_conn *c = h->data;
	srv *s = c->srv;

	bool counted = c->counted;

	ob_free(&c->ob);
	if (c->tls != NULL) {
		tls_conn_free(c->tls);
		free(c->tls);
	}
	free(c);
	if (counted && --s->closing_handles == 0 && s->close_cb != NULL)
		s->close_cb(s);
}

/* c, closing, leaves the FIFO of lingering refusals (where every
 * refused connection is: srv_conn_refuse_linger). */
static void srv_linger_unlink(srv *s, srv_conn *c)
{
	TAILQ_REMOVE(&s->lingering, c, linger);
	s->n_lingering--;
}

static void srv_conn_close(srv_conn *c)
{
	srv *s = c->srv;

	if (c->closing)
		return;
	c->closing = true;
	if (c->refused)
		srv_linger_unlink(s, c);
	LIST_REMOVE(c, link);
	s->n_conns--;
	c->q_len = 0;
	srv_pending_prune(s);
	srv_xfer_drop(s, c);
	srv_admin_drop(s, c);
	if (s->stopping) {
		/* srv_close waits for this handle too. */
		c->counted = true;
		s->closing_handles++;
	}
	uv_close(&c->h.handle, srv_conn_free_cb);
}

/* 0 if the accepted connection c may stay; else it is refused (closed,
 * with an error frame that says why) and -1 is returned. */
static int srv_admit(srv *s, srv_conn *c)
{
	char text[TP_MAX_ERRMSG + 1];

	/* Refused connections that linger (at most SRV_LINGER_CAP, within the
	 * descriptor headroom main.c checks) do not count: they must not
	 * turn clients away below the cap. */
	if (s->n_conns - s->n_lingering > s->cfg->max_connections) {
		snprintf(text, sizeof text, "too many client connections: max-connections is %u",
			 s->cfg->max_connections);
		srv_log_limited(s, &s->log_refused, LOG_WARN, "refused a client: %s", text);
		srv_conn_refuse_linger(c, TP_ERR_UNAVAILABLE, text);
		return -1;
	}
	if (c->h.handle.type == UV_NAMED_PIPE) {
		uv_os_fd_t fd;
		uid_t uid = 0;
		gid_t gid = 0;

		if (uv_fileno(&c->h.handle, &fd) != 0 || pc_peer(fd, &uid, &gid) != 0) {
			srv_log_limited(s, &s->log_peer, LOG_WARN,
					"refused a unix client: no credentials: %s", strerror(errno));
			srv_conn_close(c);
			return -1;
		}
		if (!pc_allowed(&s->allow, uid, gid)) {
			snprintf(text, sizeof text,
				 "uid %u (gid %u) may not use this socket: only its owner (uid %u), root and "
				 "client-socket-allow may",
				 (unsigned)uid, (unsigned)gid, (unsigned)geteuid());
			srv_log_limited(s, &s->log_peer, LOG_WARN, "refused a unix client: %s", text);
			srv_conn_refuse_linger(c, TP_ERR_UNAVAILABLE, text);
			return -1;
		}
	}
	return 0;
}

/* The client's IP address, for logs. */
static void srv_conn_peer_name(srv_conn *c)
{
	struct sockaddr_storage ss;
	int len = sizeof ss;

	snprintf(c->from, sizeof c->from, "(unknown address)");
	if (uv_tcp_getpeername(&c->h.tcp, (struct sockaddr *)&ss, &len) != 0)
		return;
	if (ss.ss_family == AF_INET)
		uv_ip4_name((struct sockaddr_in *)&ss, c->from, sizeof c->from);
	else if (ss.ss_family == AF_INET6)
		uv_ip6_name((struct sockaddr_in6 *)&ss, c->from, sizeof c->from);
}

/* A TLS session for a new client-tcp connection; -1 (c closed) if none. */
static int srv_conn_tls_start(srv_conn *c)
{
	char err[TLS_ERR_SIZE];

	c->tls = calloc(1, sizeof *c->tls);
	if (c->tls == NULL || tls_conn_init(c->tls, c->srv->tls_ctx, true, err, sizeof err) != 0) {
		log_error("client %s: %s", c->from, c->tls == NULL ? "out of memory for TLS" : err);
		free(c->tls);
		c->tls = NULL;
		srv_conn_close(c);
		return -1;
	}
	ob_set_tls(&c->ob, c->tls);
	return 0;
}

static void srv_connection_cb(uv_stream_t *server, int status)
{
	srv_listener *l = server->data;
	srv *s = l->srv;
	srv_conn *c;
	int rv;

	if (status != 0) {
		/* EMFILE and the like: libuv has already accepted and closed the
		 * pending connection (its reserve descriptor), so the loop does
		 * not spin; the log line is rate-limited. */
		srv_log_limited(s, &s->log_accept, LOG_WARN, "accept: %s", uv_strerror(status));
		return;
	}
	c = calloc(1, sizeof *c);
	if (c == NULL) {
		log_error("out of memory accepting a client");
		return;
	}
	c->srv = s;
	tp_reader_init(&c->reader);
	ob_init(&c->ob, srv_conn_written, c);
	if (server->type == UV_NAMED_PIPE)
		rv = uv_pipe_init(s->loop, &c->h.pipe, 0);
	else
		rv = uv_tcp_init(s->loop, &c->h.tcp);
	if (rv != 0) {
		free(c);
		log_error("uv init client: %s", uv_strerror(rv));
		return;
	}
	c->h.handle.data = c;
	LIST_INSERT_HEAD(&s->conns, c, link);
	s->n_conns++;
	rv = uv_accept(server, &c->h.stream);
	if (rv != 0) {
		srv_log_limited(s, &s->log_accept, LOG_WARN, "accept: %s", uv_strerror(rv));
		srv_conn_close(c);
		return;
	}
	c->accepted_ms = c->active_ms = uv_now(s->loop);
	/* TLS first: a refusal at admission then reaches a TLS client inside
	 * its session, once the handshake completes while it lingers. */
	if (server->type == UV_TCP) {
		uv_tcp_nodelay(&c->h.tcp, 1);
		srv_conn_peer_name(c);
		if (s->tls_ctx != NULL && srv_conn_tls_start(c) != 0)
			return;
	}
	if (srv_admit(s, c) != 0)
		return;
	srv_conn_start_reading(c);
	log_debug("client connected (%u open)", s->n_conns);
}

/* ---- listeners --------------------------------------------------------- */

/* "name (uid N)" of uid, for messages. */
static void srv_user_name(uid_t uid, char *buf, size_t len)
{
	struct passwd *pw = getpwuid(uid);

	if (pw != NULL)
		snprintf(buf, len, "%s (uid %u)", pw->pw_name, (unsigned)uid);
	else
		snprintf(buf, len, "uid %u", (unsigned)uid);
}

/* The socket's directory: created SRV_SOCKET_DIR_MODE if it is missing
 * (the default, /run/tsoracle, is not there after a reboot). */
static int srv_socket_dir(const char *path, char *err, size_t errlen)
{
	char dir[CFG_PATH_SIZE];
	char *slash;
	struct stat st;

	snprintf(dir, sizeof dir, "%s", path);
	slash = strrchr(dir, '/');
	if (slash == NULL || slash == dir)
		return 0; /* relative to the working directory, or in / */
	*slash = '\0';
	if (stat(dir, &st) == 0)
		return 0;
	if (errno != ENOENT || mkdir(dir, SRV_SOCKET_DIR_MODE) != 0)
		return err_set(
		    err, errlen,
		    "could not create the directory \"%s\" of client-socket \"%s\": %s (create it, "
		    "owned by the user tsoracled runs as, or set client-socket)",
		    dir, path, strerror(errno));
	log_info("created directory %s (mode %o) for client-socket", dir, SRV_SOCKET_DIR_MODE);
	return 0;
}

/*
 * A socket of this user left by a dead daemon is removed; anything else at
 * the path is refused, naming its owner: a live listener, a file that is
 * not a socket, or a socket of another user (who may have planted it to
 * have clients talk to it, or who could not be replaced safely).
 */
static int srv_claim_socket_path(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sun;
	struct stat st;
	char owner[CFG_PATH_SIZE];
	int fd, rv;

	if (lstat(path, &st) != 0)
		return 0;
	srv_user_name(st.st_uid, owner, sizeof owner);
	if (!S_ISSOCK(st.st_mode))
		return err_set(err, errlen,
			       "client-socket \"%s\" exists and is not a socket (owned by %s): remove it or "
			       "set client-socket",
			       path, owner);
	if (st.st_uid != geteuid())
		return err_set(err, errlen,
			       "client-socket \"%s\" exists and belongs to %s, not to this user (uid %u): "
			       "another user may have planted it; remove it or set client-socket",
			       path, owner, (unsigned)geteuid());
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sun.sun_path)
		return err_set(err, errlen, "client-socket \"%s\" is too long", path);
	memcpy(sun.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0)
		return err_set(err, errlen, "socket: %s", strerror(errno));
	rv = connect(fd, (struct sockaddr *)&sun, sizeof sun);
	close(fd);
	if (rv == 0)
		return err_set(err, errlen, "another process is listening on client-socket \"%s\"", path);
	if (unlink(path) != 0)
		return err_set(err, errlen, "could not remove stale socket \"%s\": %s", path,
			       strerror(errno));
	log_info("removed stale socket %s", path);
	return 0;
}

static int srv_listen_unix(srv *s, char *err, size_t errlen)
{
	srv_listener *l = &s->unix_listener;
	const char *path = s->cfg->client_socket;
	int rv;

	if (pc_allow_parse(&s->allow, s->cfg->client_socket_allow, err, errlen) != 0 ||
	    srv_socket_dir(path, err, errlen) != 0 || srv_claim_socket_path(path, err, errlen) != 0)
		return -1;
	rv = uv_pipe_init(s->loop, &l->h.pipe, 0);
	if (rv != 0)
		return err_set(err, errlen, "uv_pipe_init: %s", uv_strerror(rv));
	l->active = true;
	l->srv = s;
	l->h.handle.data = l;
	rv = uv_pipe_bind(&l->h.pipe, path);
	if (rv != 0)
		return err_set(err, errlen, "could not bind client-socket \"%s\": %s", path, uv_strerror(rv));
	if (chmod(path, SRV_SOCKET_MODE) != 0)
		return err_set(err, errlen, "chmod \"%s\": %s", path, strerror(errno));
	rv = uv_listen(&l->h.stream, SRV_BACKLOG, srv_connection_cb);
	if (rv != 0)
		return err_set(err, errlen, "could not listen on \"%s\": %s", path, uv_strerror(rv));
	log_info("listening for clients on unix socket %s", path);
	return 0;
}

static int srv_listen_tcp(srv *s, char *err, size_t errlen)
{
	srv_listener *l = &s->tcp_listener;
	const char *addr = s->cfg->client_tcp;
	struct sockaddr_storage ss;
	int rv;

	if (cfg_sockaddr(addr, &ss) != 0)
		return err_set(err, errlen, "client-tcp \"%s\" is not IP:PORT", addr);
	rv = uv_tcp_init(s->loop, &l->h.tcp);
	if (rv != 0)
		return err_set(err, errlen, "uv_tcp_init: %s", uv_strerror(rv));
	l->active = true;
	l->srv = s;
	l->h.handle.data = l;
	rv = uv_tcp_bind(&l->h.tcp, (struct sockaddr *)&ss, 0);
	if (rv == 0)
		rv = uv_listen(&l->h.stream, SRV_BACKLOG, srv_connection_cb);
	if (rv != 0)
		return err_set(err, errlen, "could not listen on client-tcp %s: %s", addr, uv_strerror(rv));
	log_info("listening for clients on tcp %s%s", addr,
		 s->tls_ctx != NULL ? " (TLS 1.3, client certificates from tls-ca)" : "");
	return 0;
}

int srv_init(srv *s, uv_loop_t *loop, const cfg *c, node *n, char *err, size_t errlen)
{
	int rv;

	memset(s, 0, sizeof *s);
	LIST_INIT(&s->conns);
	LIST_INIT(&s->xfers);
	LIST_INIT(&s->admins);
	TAILQ_INIT(&s->lingering);
	TAILQ_INIT(&s->pending);
	s->loop = loop;
	s->cfg = c;
	s->node = n;
	rv = uv_check_init(loop, &s->check);
	if (rv == 0) {
		s->check.data = s;
		rv = uv_timer_init(loop, &s->expire);
	}
	if (rv == 0)
		rv = uv_timer_init(loop, &s->sweep);
	if (rv != 0)
		return err_set(err, errlen, "uv init: %s", uv_strerror(rv));
	s->expire.data = s;
	s->sweep.data = s;
	ratelog_init(&s->refusals, "client connections", SRV_REFUSAL_LOG_INTERVAL_MS);
	rv = fwd_init(&s->fwd, loop, c, srv_fwd_grant_cb, srv_fwd_reset_cb, srv_fwd_ready_cb, s);
	if (rv == 0)
		rv = cprobe_init(&s->probe, loop, c, n);
	if (rv != 0)
		return err_set(err, errlen, "uv init: %s", uv_strerror(rv));
	node_set_ready_cb(n, srv_ready_cb, s);
	return 0;
}

int srv_start(srv *s, char *err, size_t errlen)
{
	int rv;

	if (s->cfg->client_socket[0] != '\0' && srv_listen_unix(s, err, errlen) != 0)
		return -1;
	if (s->cfg->client_tcp[0] != '\0' && cfg_has_tls(s->cfg)) {
		/* The member's own certificate: it serves client-tcp and proves
		 * this member to the leader it forwards to. */
		s->tls_ctx = node_tls_ctx_new(s->cfg, err, errlen);
		if (s->tls_ctx == NULL)
			return -1;
		fwd_set_ctx(&s->fwd, s->tls_ctx);
		cprobe_set_ctx(&s->probe, s->tls_ctx);
	}
	if (s->cfg->client_tcp[0] != '\0' && srv_listen_tcp(s, err, errlen) != 0)
		return -1;
	rv = cprobe_start(&s->probe);
	if (rv != 0)
		return err_set(err, errlen, "uv start: %s", uv_strerror(rv));
	rv = uv_check_start(&s->check, srv_check_cb);
	if (rv == 0)
		rv = uv_timer_start(&s->expire, srv_expire_cb, SRV_EXPIRE_TICK_MS, SRV_EXPIRE_TICK_MS);
	if (rv == 0)
		rv = uv_timer_start(&s->sweep, srv_sweep_cb, SRV_SWEEP_MS, SRV_SWEEP_MS);
	if (rv != 0)
		return err_set(err, errlen, "uv start: %s", uv_strerror(rv));
	return 0;
}

void srv_reload_tls(srv *s)
{
	char err[CFG_ERR_SIZE];
	SSL_CTX *ctx;

	if (s->tls_ctx == NULL)
		return;
	ctx = node_tls_ctx_new(s->cfg, err, sizeof err);
	if (ctx == NULL) {
		log_error("%s; client-tcp keeps the certificates read before", err);
		return;
	}
	/* Connections hold their own reference to the context they began with. */
	SSL_CTX_free(s->tls_ctx);
	s->tls_ctx = ctx;
	fwd_set_ctx(&s->fwd, ctx);
	cprobe_set_ctx(&s->probe, ctx);
	/* A client whose certificate was revoked, or whose CA is no longer
	 * trusted, is cut off now, not at its next connection. */
	for (srv_conn *c = LIST_FIRST(&s->conns), *next; c != NULL; c = next) {
		char why[TLS_ERR_SIZE];

		next = LIST_NEXT(c, link);
		if (c->tls == NULL || !c->tls->established || c->closing ||
		    tls_conn_reverify(c->tls, ctx, why, sizeof why) == 0)
			continue;
		log_warn("closing the client connection from %s (CN=%s): %s (after the reload)", c->from,
			 c->peer.cn, why);
		srv_conn_close(c);
	}
	log_info("client-tcp: new connections and forwarding use the reloaded tls-* files");
}

static void srv_handle_closed_cb(uv_handle_t *h)
{
	srv *s = h->data;

	if (--s->closing_handles == 0 && s->close_cb != NULL)
		s->close_cb(s);
}

static void srv_probe_closed_cb(cprobe *p)
{
	srv *s = (srv *)((char *)p - offsetof(srv, probe));

	if (--s->closing_handles == 0 && s->close_cb != NULL)
		s->close_cb(s);
}

static void srv_fwd_closed_cb(fwd *f)
{
	srv *s = (srv *)((char *)f - offsetof(srv, fwd));

	if (--s->closing_handles == 0 && s->close_cb != NULL)
		s->close_cb(s);
}

void srv_metrics(const srv *s, metrics_sample *out)
{
	out->req = s->stats;
	/* Refused connections still lingering are not open for service. */
	out->client_connections = s->n_conns - s->n_lingering;
}

void srv_close(srv *s, void (*cb)(srv *s))
{
	srv_conn *c, *next;

	s->stopping = true;
	s->close_cb = cb;
	/* Hold one count until every close below is issued. */
	s->closing_handles = 1;
	/* next is taken first: flushing may close c (srv_batch_answer). */
	for (c = TAILQ_FIRST(&s->pending); c != NULL; c = next) {
		next = TAILQ_NEXT(c, pending_link);
		while (c->q_len > 0) {
			srv_send_ts(c, srv_q_head(c)->id, TP_ERR_SHUTTING_DOWN, 0, 0);
			srv_q_pop(c);
		}
		srv_conn_flush(c);
	}
	srv_pending_prune(s);
	srv_xfer_drop(s, NULL);
	srv_admin_drop(s, NULL);
	while (!LIST_EMPTY(&s->conns))
		srv_conn_close(LIST_FIRST(&s->conns));
	if (s->unix_listener.active) {
		s->closing_handles++;
		s->unix_listener.h.handle.data = s;
		uv_close(&s->unix_listener.h.handle, srv_handle_closed_cb);
		unlink(s->cfg->client_socket);
	}
	if (s->tcp_listener.active) {
		s->closing_handles++;
		s->tcp_listener.h.handle.data = s;
		uv_close(&s->tcp_listener.h.handle, srv_handle_closed_cb);
	}
	s->closing_handles += 5;
	fwd_close(&s->fwd, srv_fwd_closed_cb);
	cprobe_close(&s->probe, srv_probe_closed_cb);
	SSL_CTX_free(s->tls_ctx); /* the connections still closing keep theirs */
	s->tls_ctx = NULL;
	uv_close((uv_handle_t *)&s->check, srv_handle_closed_cb);
	uv_close((uv_handle_t *)&s->expire, srv_handle_closed_cb);
	uv_close((uv_handle_t *)&s->sweep, srv_handle_closed_cb);
	if (--s->closing_handles == 0 && cb != NULL)
		cb(s);
}
