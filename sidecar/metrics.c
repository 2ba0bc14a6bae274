/* metrics.c: the Prometheus endpoint (metrics-address): GET /metrics, served off the event loop. */
#include "metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "log.h"

#define METRICS_LISTEN_BACKLOG 16
#define METRICS_TEXT_SIZE      (16 * 1024) /* bytes: a scrape's text is about 6 KiB */
#define METRICS_LOG_LINE_SIZE  256
#define METRICS_NS_PER_S       1e9
#define METRICS_NS_PER_MS      1000000L
#define METRICS_MS_PER_S_INT   1000L
#define METRICS_CONTENT_TYPE   "text/plain; version=0.0.4; charset=utf-8"

/* Upper bounds of the buckets, ns. A request served from the window takes
 * tens of µs; one that waits for a durable extension or a new leader, ms
 * to the request-timeout (default 2 s). A fence is a few round trips, or
 * the new-leader wait (the lease, default 200 ms), or an election. */
#define METRICS_US 1000ull
#define METRICS_MS 1000000ull
#define METRICS_S  1000000000ull
static const uint64_t metrics_bounds_request[] = {
    10 * METRICS_US,  25 * METRICS_US,   50 * METRICS_US,   100 * METRICS_US, 250 * METRICS_US,
    500 * METRICS_US, 1 * METRICS_MS,    2500 * METRICS_US, 5 * METRICS_MS,   10 * METRICS_MS,
    25 * METRICS_MS,  50 * METRICS_MS,   100 * METRICS_MS,  250 * METRICS_MS, 500 * METRICS_MS,
    1 * METRICS_S,    2500 * METRICS_MS, 5 * METRICS_S};
static const uint64_t metrics_bounds_fence[] = {
    5 * METRICS_MS,   10 * METRICS_MS, 25 * METRICS_MS,   50 * METRICS_MS, 100 * METRICS_MS, 250 * METRICS_MS,
    500 * METRICS_MS, 1 * METRICS_S,   2500 * METRICS_MS, 5 * METRICS_S,   10 * METRICS_S,   30 * METRICS_S};

typedef struct metrics_bounds {
	const uint64_t *ns;
	size_t n;
} metrics_bounds;

static const metrics_bounds metrics_bounds_of[METRICS_HIST_KINDS] = {
    [METRICS_HIST_REQUEST] = {metrics_bounds_request,
			      sizeof metrics_bounds_request / sizeof metrics_bounds_request[0]},
    [METRICS_HIST_FENCE] = {metrics_bounds_fence,
			    sizeof metrics_bounds_fence / sizeof metrics_bounds_fence[0]},
};

_Static_assert(sizeof metrics_bounds_request / sizeof metrics_bounds_request[0] <= METRICS_HIST_MAX_BOUNDS,
	       "request bounds fit metrics_hist");
_Static_assert(sizeof metrics_bounds_fence / sizeof metrics_bounds_fence[0] <= METRICS_HIST_MAX_BOUNDS,
	       "fence bounds fit metrics_hist");

void metrics_hist_observe(metrics_hist *h, enum metrics_hist_kind kind, uint64_t ns, uint64_t n)
{
	const metrics_bounds *b = &metrics_bounds_of[kind];
	size_t i = 0;

	while (i < b->n && ns > b->ns[i])
		i++;
	h->bucket[i] += n;
	h->count += n;
	h->sum_ns += ns * n;
}

/* ---- the text format ---------------------------------------------------- */

/* The label values of tsoracle_request_errors_total: one per status. */
static const char *const metrics_reason[TP_STATUS_LAST + 1] = {
    [TP_ERR_UNAVAILABLE] = "unavailable",
    [TP_ERR_TIMEOUT] = "timeout",
    [TP_ERR_BAD_REQUEST] = "bad_request",
    [TP_ERR_EXHAUSTED] = "exhausted",
    [TP_ERR_SHUTTING_DOWN] = "shutting_down",
    [TP_ERR_INTERNAL] = "internal",
    [TP_ERR_VERSION] = "version",
    [TP_ERR_PROTOCOL] = "protocol",
    [TP_ERR_NOT_LEADER] = "not_leader",
    [TP_ERR_TRANSFER] = "transfer",
    [TP_ERR_FORBIDDEN] = "forbidden",
};

/* snprintf into buf at *pos, keeping *pos the length the text would have
 * (so an overflow is seen once at the end). */
__attribute__((format(printf, 4, 5))) static void metrics_put(char *buf, size_t len, size_t *pos,
							      const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf + (*pos < len ? *pos : len), *pos < len ? len - *pos : 0, fmt, ap);
	va_end(ap);
	if (n > 0)
		*pos += (size_t)n;
}

static void metrics_put_head(char *buf, size_t len, size_t *pos, const char *name, const char *type,
			     const char *help)
{
	metrics_put(buf, len, pos, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void metrics_put_u64(char *buf, size_t len, size_t *pos, const char *name, const char *type,
			    const char *help, uint64_t v)
{
	metrics_put_head(buf, len, pos, name, type, help);
	metrics_put(buf, len, pos, "%s %" PRIu64 "\n", name, v);
}

/* A gauge of ms, shown in seconds with three decimals. */
static void metrics_put_ms(char *buf, size_t len, size_t *pos, const char *name, const char *help,
			   uint64_t ms)
{
	metrics_put_head(buf, len, pos, name, "gauge", help);
	metrics_put(buf, len, pos, "%s %" PRIu64 ".%03" PRIu64 "\n", name, ms / METRICS_MS_PER_S_INT,
		    ms % METRICS_MS_PER_S_INT);
}

static void metrics_put_hist(char *buf, size_t len, size_t *pos, const char *name, const char *help,
			     const metrics_hist *h, enum metrics_hist_kind kind)
{
	const metrics_bounds *b = &metrics_bounds_of[kind];
	uint64_t cumulative = 0;

	metrics_put_head(buf, len, pos, name, "histogram", help);
	for (size_t i = 0; i < b->n; i++) {
		cumulative += h->bucket[i];
		metrics_put(buf, len, pos, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", name,
			    (double)b->ns[i] / METRICS_NS_PER_S, cumulative);
	}
	metrics_put(buf, len, pos, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, h->count);
	metrics_put(buf, len, pos, "%s_sum %.9f\n%s_count %" PRIu64 "\n", name,
		    (double)h->sum_ns / METRICS_NS_PER_S, name, h->count);
}

static uint64_t metrics_abs_ms(int64_t ms)
{
	return ms < 0 ? (uint64_t)0 - (uint64_t)ms : (uint64_t)ms;
}

size_t metrics_format(const metrics_sample *s, const char *version, char *buf, size_t len)
{
	size_t pos = 0;

	if (len > 0)
		buf[0] = '\0';
	metrics_put_head(buf, len, &pos, "tsoracle_build_info", "gauge",
			 "Always 1; the tsoracled version in its label.");
	metrics_put(buf, len, &pos, "tsoracle_build_info{version=\"%s\"} 1\n", version);
	metrics_put_u64(buf, len, &pos, "tsoracle_requests_total", "counter",
			"Timestamp requests answered, successes and errors (a leader counts each "
			"follower's forwarded batch as one).",
			s->req.requests);
	metrics_put_u64(buf, len, &pos, "tsoracle_timestamps_total", "counter",
			"Timestamps handed out in successful answers.", s->req.timestamps);
	metrics_put_head(buf, len, &pos, "tsoracle_request_errors_total", "counter",
			 "Errors sent to clients, by reason (a timestamp request's or a connection's).");
	for (unsigned st = 1; st <= TP_STATUS_LAST; st++)
		if (metrics_reason[st] != NULL)
			metrics_put(buf, len, &pos,
				    "tsoracle_request_errors_total{reason=\"%s\"} %" PRIu64 "\n",
				    metrics_reason[st], s->req.errors[st]);
	metrics_put_hist(buf, len, &pos, "tsoracle_request_duration_seconds",
			 "Timestamp requests from receipt to answer.", &s->req.duration,
			 METRICS_HIST_REQUEST);
	metrics_put_u64(buf, len, &pos, "tsoracle_forwarded_requests_total", "counter",
			"Batches of this follower's client requests sent to the leader.", s->req.forwarded);
	metrics_put_u64(buf, len, &pos, "tsoracle_is_leader", "gauge", "1 if Raft says this member leads.",
			s->is_leader);
	metrics_put_u64(buf, len, &pos, "tsoracle_serving", "gauge",
			"1 if this member hands out timestamps now (leader, fence committed, lease held).",
			s->serving);
	metrics_put_u64(buf, len, &pos, "tsoracle_raft_term", "gauge", "The Raft term this member is in.",
			s->term);
	metrics_put_u64(buf, len, &pos, "tsoracle_raft_commit_index", "gauge",
			"The highest Raft log index this member knows committed.", s->commit_index);
	metrics_put_u64(buf, len, &pos, "tsoracle_raft_applied_index", "gauge",
			"The highest Raft log index this member has applied.", s->applied_index);
	/* In seconds, Prometheus's base unit (promtool refuses "_ms" in a
	 * name), to the ms: a double holds a Unix time in ms exactly. */
	metrics_put_ms(
	    buf, len, &pos, "tsoracle_high_water_seconds",
	    "The high-water mark H known committed, Unix time: no timestamp is handed out past it.",
	    s->high_water_ms);
	metrics_put_ms(buf, len, &pos, "tsoracle_clock_seconds",
		       "This member's wall clock as the allocator reads it, Unix time.", s->clock_ms);
	metrics_put_head(buf, len, &pos, "tsoracle_clock_offset_seconds", "gauge",
			 "This member's wall clock minus the median of the voters' clocks, as measured "
			 "(docs/reliability.md, clocks).");
	metrics_put(buf, len, &pos, "tsoracle_clock_offset_seconds %s%" PRIu64 ".%03" PRIu64 "\n",
		    s->clock_offset_ms < 0 ? "-" : "",
		    metrics_abs_ms(s->clock_offset_ms) / METRICS_MS_PER_S_INT,
		    metrics_abs_ms(s->clock_offset_ms) % METRICS_MS_PER_S_INT);
	metrics_put_u64(buf, len, &pos, "tsoracle_clock_unsupported", "gauge",
			"1 if that offset is past max-clock-offset: this member does not lead.",
			s->clock_unsupported);
	metrics_put_u64(buf, len, &pos, "tsoracle_clock_held", "gauge",
			"1 while a jump of this member's clock that no majority supports is not followed.",
			s->clock_held);
	metrics_put_u64(
	    buf, len, &pos, "tsoracle_clock_start_gap", "gauge",
	    "1 if this sole member's clock is further past its stored mark than max-start-gap: it "
	    "does not serve.",
	    s->clock_start_gap);
	metrics_put_u64(buf, len, &pos, "tsoracle_leader_changes_total", "counter",
			"Times this member learnt of a leader other than the last one it knew.",
			s->lead.leader_changes);
	metrics_put_hist(buf, len, &pos, "tsoracle_fence_duration_seconds",
			 "This member's leaderships, from its election to serving (barrier, fence commit, "
			 "new-leader wait).",
			 &s->lead.fence, METRICS_HIST_FENCE);
	metrics_put_u64(buf, len, &pos, "tsoracle_client_connections", "gauge",
			"Open client connections (PostgreSQL workers, followers, tsoracle-ctl).",
			s->client_connections);
	metrics_put_u64(buf, len, &pos, "tsoracle_peer_connections", "gauge",
			"Admitted Raft connections with other members, both directions.",
			s->peer_connections);
	return pos;
}

/* ---- the loop's side ---------------------------------------------------- */

/* A scrape asked for a sample: read it here, on the loop, then publish it. */
static void metrics_async_cb(uv_async_t *a)
{
	metrics *m = a->data;
	metrics_sample s;

	memset(&s, 0, sizeof s);
	m->collect(m->arg, &s);
	pthread_mutex_lock(&m->mu);
	m->shared = s;
	m->generation++;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->mu);
}

/* ---- the HTTP thread ---------------------------------------------------- */

/* A fresh sample from the loop into *out; false if the loop did not answer
 * within METRICS_LOOP_WAIT_MS (or the daemon is stopping). */
static bool metrics_fresh_sample(metrics *m, metrics_sample *out)
{
	struct timespec deadline;
	uint64_t was;
	bool fresh = false;

	clock_gettime(CLOCK_MONOTONIC, &deadline); /* the condition's clock (metrics_start) */
	deadline.tv_sec += METRICS_LOOP_WAIT_MS / METRICS_MS_PER_S_INT;
	deadline.tv_nsec += (METRICS_LOOP_WAIT_MS % METRICS_MS_PER_S_INT) * METRICS_NS_PER_MS;
	if (deadline.tv_nsec >= METRICS_MS_PER_S_INT * METRICS_NS_PER_MS) {
		deadline.tv_sec++;
		deadline.tv_nsec -= METRICS_MS_PER_S_INT * METRICS_NS_PER_MS;
	}
	pthread_mutex_lock(&m->mu);
	was = m->generation;
	if (!m->stopping && uv_async_send(&m->async) == 0) {
		while (!m->stopping && m->generation == was)
			if (pthread_cond_timedwait(&m->cond, &m->mu, &deadline) == ETIMEDOUT)
				break;
		fresh = m->generation != was;
		if (fresh)
			*out = m->shared;
	}
	pthread_mutex_unlock(&m->mu);
	return fresh;
}

static enum MHD_Result metrics_reply(struct MHD_Connection *conn, unsigned code, const char *type,
				     const char *body, size_t len, bool allow_get)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	enum MHD_Result ret;

	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	if (allow_get)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, MHD_HTTP_METHOD_GET);
	ret = MHD_queue_response(conn, code, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result metrics_text(struct MHD_Connection *conn, unsigned code, bool allow_get,
				    const char *text)
{
	return metrics_reply(conn, code, "text/plain; charset=utf-8", text, strlen(text), allow_get);
}

/*
 * One request (MHD's access handler, on the HTTP thread). GET /metrics
 * only: another method is 405 (with Allow: GET), another path 404; a
 * request body is never read (MHD discards it and closes the connection).
 */
static enum MHD_Result metrics_handler(void *cls, struct MHD_Connection *conn, const char *url,
				       const char *method, const char *version, const char *upload_data,
				       size_t *upload_data_size, void **con_cls)
{
	metrics *m = cls;
	metrics_sample s;
	char *text;
	size_t len;
	enum MHD_Result ret;

	(void)version;
	(void)upload_data;
	(void)upload_data_size;
	(void)con_cls;
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0)
		return metrics_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, true,
				    "only GET is allowed here (GET " METRICS_PATH ")\n");
	if (strcmp(url, METRICS_PATH) != 0)
		return metrics_text(conn, MHD_HTTP_NOT_FOUND, false,
				    "not found: the metrics are at " METRICS_PATH "\n");
	if (!metrics_fresh_sample(m, &s))
		return metrics_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, false,
				    "the daemon's event loop did not answer in time (or it is stopping)\n");
	text = malloc(METRICS_TEXT_SIZE);
	if (text == NULL)
		return MHD_NO;
	len = metrics_format(&s, m->version, text, METRICS_TEXT_SIZE);
	if (len >= METRICS_TEXT_SIZE) {
		log_error("metrics: the text (%zu bytes) does not fit its buffer (%d bytes)", len,
			  METRICS_TEXT_SIZE);
		free(text);
		return metrics_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, false, "metrics text too large\n");
	}
	ret = metrics_reply(conn, MHD_HTTP_OK, METRICS_CONTENT_TYPE, text, len, false);
	free(text);
	return ret;
}

/* MHD's own messages (a malformed request, a refused connection): debug
 * level, since anyone who can reach the port can cause them at will. */
static void metrics_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[METRICS_LOG_LINE_SIZE];
	size_t n;

	(void)cls;
	vsnprintf(line, sizeof line, fmt, ap);
	n = strlen(line);
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	log_debug("metrics: %s", line);
}

/* The listening socket, bound here so that a failure names its cause
 * (MHD_start_daemon only says it failed). */
static int metrics_listen(const char *address, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	int one = 1;
	int fd;

	if (cfg_sockaddr(address, &ss) != 0)
		return err_set(err, errlen, "metrics-address \"%s\" is not IP:PORT", address);
	sslen = ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return err_set(err, errlen, "metrics-address %s: socket: %s", address, strerror(errno));
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
	    bind(fd, (struct sockaddr *)&ss, sslen) != 0 || listen(fd, METRICS_LISTEN_BACKLOG) != 0) {
		int e = errno;

		close(fd);
		return err_set(err, errlen, "could not listen on metrics-address %s: %s", address,
			       strerror(e));
	}
	return fd;
}

int metrics_start(metrics *m, uv_loop_t *loop, const cfg *c, const char *version, metrics_collect_fn collect,
		  void *arg, char *err, size_t errlen)
{
	pthread_condattr_t attr;
	int fd, rv;

	memset(m, 0, sizeof m[0]);
	m->loop = loop;
	m->collect = collect;
	m->arg = arg;
	m->version = version;
	/* The scrape's wait is timed on the monotonic clock: a step of the
	 * wall clock neither ends it early nor stretches it. */
	if (pthread_condattr_init(&attr) != 0)
		return err_set(err, errlen, "metrics: could not set up its condition variable");
	rv = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	if (rv == 0 && pthread_mutex_init(&m->mu, NULL) != 0)
		rv = -1;
	else if (rv == 0 && pthread_cond_init(&m->cond, &attr) != 0) {
		pthread_mutex_destroy(&m->mu);
		rv = -1;
	}
	pthread_condattr_destroy(&attr);
	if (rv != 0)
		return err_set(err, errlen, "metrics: could not set up its mutex and condition variable");
	m->sync_init = true;
	rv = uv_async_init(loop, &m->async, metrics_async_cb);
	if (rv != 0)
		return err_set(err, errlen, "metrics: uv_async_init: %s", uv_strerror(rv));
	m->async.data = m;
	m->async_open = true;
	fd = metrics_listen(c->metrics_address, err, errlen);
	if (fd < 0)
		return -1;
	/* MHD_USE_ITC: MHD_stop_daemon wakes the thread; the thread polls
	 * (MHD_USE_AUTO picks epoll here). MHD owns fd from here. */
	m->daemon = MHD_start_daemon(
	    MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG |
		(c->metrics_address[0] == '[' ? MHD_USE_IPv6 : 0),
	    0, NULL, NULL, metrics_handler, m, MHD_OPTION_EXTERNAL_LOGGER, metrics_mhd_log, NULL,
	    MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT, (unsigned)METRICS_MAX_CONNECTIONS,
	    MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)METRICS_PER_IP_MAX, MHD_OPTION_CONNECTION_TIMEOUT,
	    (unsigned)METRICS_TIMEOUT_S, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)METRICS_MEMORY_LIMIT,
	    MHD_OPTION_END);
	if (m->daemon == NULL) {
		close(fd);
		return err_set(err, errlen, "metrics: could not start the HTTP server on %s",
			       c->metrics_address);
	}
	log_info("metrics: serving GET %s on http://%s (plaintext HTTP)", METRICS_PATH, c->metrics_address);
	return 0;
}

void metrics_stop(metrics *m)
{
	if (m->sync_init) {
		/* A scrape waiting for the loop (which is here) stops waiting. */
		pthread_mutex_lock(&m->mu);
		m->stopping = true;
		pthread_cond_broadcast(&m->cond);
		pthread_mutex_unlock(&m->mu);
	}
	if (m->daemon != NULL) {
		MHD_stop_daemon(m->daemon); /* joins the thread: no scrape runs after */
		m->daemon = NULL;
	}
	if (m->async_open) {
		uv_close((uv_handle_t *)&m->async, NULL);
		m->async_open = false;
	}
	if (m->sync_init) {
		pthread_cond_destroy(&m->cond);
		pthread_mutex_destroy(&m->mu);
		m->sync_init = false;
	}
}
