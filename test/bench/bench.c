/* bench.c: tsoracle-bench: load and latency of a tsoracled, failover gaps, a ping-pong baseline. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hist.h"
#include "dial.h"
#include "monotime.h"
#include "proto.h"
#include "tls.h"
#include "tso.h"

/*
 * Modes:
 *
 *   load (default)  C connections, spread over T threads; each connection
 *                   keeps D requests of count K in flight for the duration.
 *                   A thread with one connection uses blocking I/O (one
 *                   write and one read per round trip, like the ping-pong);
 *                   a thread with several waits on epoll. Every response is
 *                   checked: status, count equal to the request's, and its
 *                   grant above the previous grant on that connection.
 *   --gap           the same on one connection of depth 1 (by default), for
 *                   failover: reports the longest interval between two
 *                   successive successful responses. After SIGUSR1 (sent by
 *                   the caller just before it kills the leader) it exits as
 *                   soon as a gap of at least --gap-min ms has closed.
 *                   With --gap-window W it watches W ms after SIGUSR1
 *                   instead, and reports the longest gap that ended in them
 *                   (for a planned handover, whose gap may be short).
 *                   Connection losses are retried, errors re-sent at once.
 *                   Grants are checked across reconnects (real-time order).
 *   --pingpong      no sidecar: a parent and a forked child bounce a message
 *                   over a unix socketpair with blocking read and write; the
 *                   round trip is the floor for a lone request's latency.
 *   --status        one status request; prints role, leader, serving.
 *
 * Output: a human summary, or with --kv one line of key=value pairs for
 * scripts. Exit status 1 if any grant violated the checks (each is
 * printed), 2 on usage or connection errors.
 */

#define NS_PER_US UINT64_C(1000)
#define US_PER_S  1000000

#define BENCH_MAX_DEPTH        4096 /* requests in flight per connection */
#define BENCH_SLOT_BITS        16   /* request id = sequence << 16 | slot */
#define BENCH_SLOT_MASK        ((UINT64_C(1) << BENCH_SLOT_BITS) - 1)
#define BENCH_MAX_THREADS      64
#define BENCH_MAX_EVENTS       256
#define BENCH_DRAIN_NS         (2 * NS_PER_S)  /* wait for in-flight responses after the end */
#define BENCH_POLL_MS          50              /* epoll and blocking-read timeout: clock checks */
#define BENCH_RECONNECT_NS     (5 * NS_PER_MS) /* gap mode: pause between connection attempts */
#define BENCH_VIOLATIONS_SHOWN 10
#define BENCH_HANDSHAKE_MS     2000 /* connected, TLS handshake and hello answered within this */
#define BENCH_STATUS_MS        2000 /* --status: the answer within this */
#define BENCH_REQ_FRAME        17   /* TP_TS_REQ: 4 length + 1 type + 8 id + 4 count */
#define BENCH_RESP_FRAME       27   /* TP_TS_RESP: 4 + 1 + 8 id + 2 status + 8 first + 4 count */
#define BENCH_PP_MAX_MSG       4096
#define BENCH_DEFAULT_ADDRESS  "/run/tsoracle/tsoracled.sock"

/* ---- options ----------------------------------------------------------- */

typedef struct opts {
	const char *address;
	unsigned connections;
	unsigned depth;
	uint32_t count;
	double duration_s;
	double warmup_s;
	unsigned threads;
	bool pingpong;
	size_t pp_out, pp_back; /* ping-pong message sizes, bytes */
	bool gap;
	double gap_min_ms;
	double gap_window_ms; /* > 0: after arming, watch this long, report the longest gap */
	unsigned interval_us; /* pacing per connection; 0: none */
	bool status;
	bool kv;
	const char *label;
	const char *tls_ca, *tls_cert, *tls_key; /* TLS to a TCP address (all three) */
	int cpus[BENCH_MAX_THREADS];             /* --cpus: where threads (ping-pong: parent, child) run */
	unsigned ncpus;
} opts;

/* From --ca, --cert, --key: TLS for TCP addresses; NULL: plaintext. */
static SSL_CTX *bench_tls;

static opts o = {
    .address = BENCH_DEFAULT_ADDRESS,
    .connections = 1,
    .depth = 1,
    .count = 1,
    .duration_s = 2.0,
    .warmup_s = 0.2,
    .pp_out = BENCH_REQ_FRAME,
    .pp_back = BENCH_RESP_FRAME,
    .gap_min_ms = 50.0,
    .label = "",
};

/* Pins the calling thread to CPU cpus[i % ncpus], if --cpus was given. */
static void pin_self(unsigned i)
{
	cpu_set_t set;

	if (o.ncpus == 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(o.cpus[i % o.ncpus], &set);
	if (sched_setaffinity(0, sizeof set, &set) != 0)
		fprintf(stderr, "tsoracle-bench: could not pin to CPU %d: %s\n", o.cpus[i % o.ncpus],
			strerror(errno));
}

/* ---- time -------------------------------------------------------------- */

/* CLOCK_REALTIME in ms: what a timestamp's physical part is compared to. */
static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / (long)NS_PER_MS;
}

/* The run's timeline, fixed by the main thread before the threads start. */
static uint64_t t_start, t_measure, t_end;
static volatile sig_atomic_t gap_armed;
static uint64_t gap_armed_at;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "tsoracle-bench: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

/* ---- connections ------------------------------------------------------- */

typedef struct conn {
	tp_client cl; /* socket, TLS (bench_tls, a TCP address), reader, node id */
	bool up;

	/* Slots of requests in flight: id, send time, free list. */
	uint64_t ids[BENCH_MAX_DEPTH];
	uint64_t sent_ns[BENCH_MAX_DEPTH];
	uint16_t free_slots[BENCH_MAX_DEPTH];
	unsigned nfree;
	uint16_t queued[BENCH_MAX_DEPTH]; /* slots encoded since the last write */
	unsigned nqueued;
	uint64_t seq;

	uint64_t last; /* last timestamp of the previous grant; 0: none yet */

	uint8_t wbuf[BENCH_MAX_DEPTH * BENCH_REQ_FRAME];
	size_t wlen;
	bool want_out;
	uint64_t next_send_ns; /* pacing */
} conn;

typedef struct worker {
	pthread_t tid;
	unsigned index;
	conn **conns;
	unsigned nconns;
	int ep;

	hist h;
	uint64_t reqs, stamps; /* successful, inside the measured window */
	uint64_t errors;       /* non-OK statuses, whole run */
	uint64_t violations;
	uint64_t err_status[TP_STATUS_LAST + 1];
	uint64_t conn_failures;
	/* Largest (physical part of a grant's last timestamp) - (the client's
	 * wall clock when the grant arrived), ms; INT64_MIN: no grant yet. */
	int64_t max_ahead_ms;

	/* gap mode */
	uint64_t last_ok_ns;
	uint64_t max_gap_ns, max_gap_end_ns;
	uint64_t armed_gap_ns, armed_recover_ns;
	bool gap_done;
	uint64_t ok_total;
} worker;

static pthread_mutex_t print_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t violations_shown;

static void violation(worker *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void violation(worker *w, const char *fmt, ...)
{
	va_list ap;

	w->violations++;
	pthread_mutex_lock(&print_mu);
	if (violations_shown++ < BENCH_VIOLATIONS_SHOWN) {
		fprintf(stderr, "VIOLATION (thread %u): ", w->index);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
	}
	pthread_mutex_unlock(&print_mu);
}

static void set_rcvtimeo(int fd, unsigned ms)
{
	struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

/* Dials and shakes hands (common/dial.h); 0 or -1 (with a message in err). */
static int conn_open(conn *c, char *err, size_t errlen)
{
	if (tp_client_open(&c->cl, o.address, bench_tls, BENCH_HANDSHAKE_MS, err, errlen) != 0)
		return -1;
	/* A blocking connection's reads wake up to check the clock. */
	set_rcvtimeo(c->cl.fd, BENCH_POLL_MS);
	c->nfree = 0;
	for (unsigned i = o.depth; i-- > 0;)
		c->free_slots[c->nfree++] = (uint16_t)i;
	c->nqueued = 0;
	c->wlen = 0;
	c->want_out = false;
	c->up = true;
	return 0;
}

static void conn_drop(worker *w, conn *c)
{
	if (c->cl.fd >= 0 && w->ep >= 0)
		epoll_ctl(w->ep, EPOLL_CTL_DEL, c->cl.fd, NULL);
	tp_client_close(&c->cl);
	c->up = false;
}

static unsigned conn_inflight(const conn *c)
{
	return o.depth - c->nfree;
}

/* Encodes one request into the write buffer. */
static void conn_queue_request(conn *c)
{
	uint16_t slot = c->free_slots[--c->nfree];
	tp_msg m;

	m.type = TP_TS_REQ;
	m.u.ts_req.id = (++c->seq << BENCH_SLOT_BITS) | slot;
	m.u.ts_req.count = o.count;
	c->ids[slot] = m.u.ts_req.id;
	c->wlen += tp_encode(&m, c->wbuf + c->wlen, sizeof c->wbuf - c->wlen);
	c->queued[c->nqueued++] = slot;
}

/* Writes what is queued; stamps the requests with the time of the write. */
static int conn_flush(worker *w, conn *c, bool blocking)
{
	uint64_t t;
	ssize_t n;

	if (c->nqueued > 0) {
		t = mono_ns();
		for (unsigned i = 0; i < c->nqueued; i++)
			c->sent_ns[c->queued[i]] = t;
		c->nqueued = 0;
	}
	if (c->wlen == 0)
		return 0;
	if (blocking)
		return tp_io_write_all(c->cl.fd, c->cl.ssl, c->wbuf, c->wlen) == 0 ? (c->wlen = 0, 0) : -1;
	n = tp_io_write(c->cl.fd, c->cl.ssl, c->wbuf, c->wlen);
	if (n < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return -1;
		n = 0;
	}
	if ((size_t)n < c->wlen) {
		memmove(c->wbuf, c->wbuf + n, c->wlen - (size_t)n);
		c->wlen -= (size_t)n;
		if (!c->want_out) {
			struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};

			epoll_ctl(w->ep, EPOLL_CTL_MOD, c->cl.fd, &ev);
			c->want_out = true;
		}
	} else {
		c->wlen = 0;
		if (c->want_out) {
			struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};

			epoll_ctl(w->ep, EPOLL_CTL_MOD, c->cl.fd, &ev);
			c->want_out = false;
		}
	}
	return 0;
}

/* Tops c up to depth requests (pacing permitting). */
static void conn_refill(conn *c, uint64_t now)
{
	if (!c->up || now >= t_end)
		return;
	if (o.interval_us > 0) {
		if (now < c->next_send_ns || c->nfree == 0)
			return;
		conn_queue_request(c);
		c->next_send_ns = now + (uint64_t)o.interval_us * NS_PER_US;
		return;
	}
	while (c->nfree > 0)
		conn_queue_request(c);
}

static void gap_note_ok(worker *w, uint64_t now)
{
	if (w->last_ok_ns != 0) {
		uint64_t gap = now - w->last_ok_ns;

		if (gap > w->max_gap_ns) {
			w->max_gap_ns = gap;
			w->max_gap_end_ns = now;
		}
		if (o.gap && o.gap_window_ms > 0 && gap_armed && now > gap_armed_at) {
			if (gap > w->armed_gap_ns) {
				w->armed_gap_ns = gap;
				w->armed_recover_ns = now - gap_armed_at;
			}
		} else if (o.gap && gap_armed && !w->gap_done &&
			   gap >= (uint64_t)(o.gap_min_ms * (double)NS_PER_MS) && now > gap_armed_at) {
			w->armed_gap_ns = gap;
			w->armed_recover_ns = now - gap_armed_at;
			w->gap_done = true;
		}
	}
	w->last_ok_ns = now;
	w->ok_total++;
}

/* One response. */
static void conn_handle(worker *w, conn *c, const tp_msg *m, uint64_t now)
{
	uint64_t slot, lat;

	if (m->type == TP_ERROR) {
		pthread_mutex_lock(&print_mu);
		fprintf(stderr, "tsoracle-bench: the server closed a connection: %s (%s)\n", m->u.error.text,
			tp_status_str(m->u.error.status));
		pthread_mutex_unlock(&print_mu);
		conn_drop(w, c);
		w->conn_failures++;
		return;
	}
	if (m->type != TP_TS_RESP) {
		violation(w, "unexpected message type %u", m->type);
		return;
	}
	slot = m->u.ts_resp.id & BENCH_SLOT_MASK;
	if (slot >= o.depth || c->ids[slot] != m->u.ts_resp.id || c->ids[slot] == 0) {
		violation(w, "response to unknown request id %" PRIu64, m->u.ts_resp.id);
		return;
	}
	c->ids[slot] = 0;
	c->free_slots[c->nfree++] = (uint16_t)slot;
	lat = now - c->sent_ns[slot];

	if (m->u.ts_resp.status != TP_OK) {
		w->errors++;
		w->err_status[m->u.ts_resp.status]++;
		return;
	}
	if (m->u.ts_resp.count != o.count)
		violation(w, "request %" PRIu64 " asked for %" PRIu32 " timestamps, got a grant of %" PRIu32,
			  m->u.ts_resp.id, o.count, m->u.ts_resp.count);
	if (m->u.ts_resp.first == 0 || m->u.ts_resp.first <= c->last)
		violation(w,
			  "grant [%" PRIu64 ", +%" PRIu32 ") is not above the previous grant's last %" PRIu64,
			  m->u.ts_resp.first, m->u.ts_resp.count, c->last);
	if (m->u.ts_resp.count > 0) {
		uint64_t last = m->u.ts_resp.first + m->u.ts_resp.count - 1;

		if (last < m->u.ts_resp.first || last > TSO_MAX)
			violation(w, "grant [%" PRIu64 ", +%" PRIu32 ") passes the end of the range",
				  m->u.ts_resp.first, m->u.ts_resp.count);
		c->last = last;
		if ((int64_t)tso_physical(last) - wall_ms() > w->max_ahead_ms)
			w->max_ahead_ms = (int64_t)tso_physical(last) - wall_ms();
	}
	gap_note_ok(w, now);
	if (now >= t_measure && now < t_end) {
		hist_add(&w->h, lat);
		w->reqs++;
		w->stamps += m->u.ts_resp.count;
	}
}

/* Reads once (under TLS: until the session holds no bytes, decrypted or
 * read ahead, which the socket's readiness would not show) and handles
 * every whole response; -1 if the connection broke. */
static int conn_read(worker *w, conn *c)
{
	do {
		size_t room;
		uint8_t *p = tp_reader_space(&c->cl.reader, &room);
		ssize_t n = tp_io_read(c->cl.fd, c->cl.ssl, p, room);
		uint64_t now;
		tp_msg m;
		int rc = 0; /* (set by the loop below whenever the connection is up) */

		if (n == 0)
			return -1;
		if (n < 0)
			return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : -1;
		tp_reader_commit(&c->cl.reader, (size_t)n);
		now = mono_ns();
		while (c->up && (rc = tp_reader_next(&c->cl.reader, &m)) == 1)
			conn_handle(w, c, &m, now);
		if (!c->up)
			return -1;
		if (rc < 0) {
			violation(w, "malformed response: %s", tp_reader_errstr(&c->cl.reader));
			return -1;
		}
		conn_refill(c, now);
	} while (c->cl.ssl != NULL && SSL_has_pending(c->cl.ssl));
	return 0;
}

static void worker_conn_lost(worker *w, conn *c, const char *why)
{
	if (c->up) {
		w->conn_failures++;
		if (!o.gap) {
			pthread_mutex_lock(&print_mu);
			fprintf(stderr, "tsoracle-bench: connection lost: %s\n", why);
			pthread_mutex_unlock(&print_mu);
		}
	}
	conn_drop(w, c);
}

static bool worker_done(worker *w, uint64_t now)
{
	unsigned inflight = 0;

	if (o.gap && w->gap_done)
		return true;
	if (o.gap && o.gap_window_ms > 0 && gap_armed &&
	    now >= gap_armed_at + (uint64_t)(o.gap_window_ms * (double)NS_PER_MS)) {
		/* A gap still open at the end of the window counts as it stands. */
		if (w->last_ok_ns < gap_armed_at || now - w->last_ok_ns > w->armed_gap_ns) {
			w->armed_gap_ns = now - w->last_ok_ns;
			w->armed_recover_ns = 0;
		} else {
			w->gap_done = true; /* service resumed within the window */
		}
		return true;
	}
	if (now < t_end)
		return false;
	for (unsigned i = 0; i < w->nconns; i++)
		if (w->conns[i]->up)
			inflight += conn_inflight(w->conns[i]);
	return inflight == 0 || now >= t_end + BENCH_DRAIN_NS || o.gap;
}

/* A thread with one connection: blocking write, blocking read (with a
 * timeout to watch the clock), no epoll; gap mode reconnects. */
static void worker_run_blocking(worker *w)
{
	conn *c = w->conns[0];
	char err[256];
	uint64_t now = mono_ns();

	conn_refill(c, now);
	conn_flush(w, c, true);
	for (;;) {
		now = mono_ns();
		if (worker_done(w, now))
			break;
		if (!c->up) {
			if (now >= t_end)
				break;
			if (conn_open(c, err, sizeof err) != 0) {
				mono_sleep_ns(BENCH_RECONNECT_NS);
				continue;
			}
			conn_refill(c, mono_ns());
			if (conn_flush(w, c, true) != 0)
				worker_conn_lost(w, c, strerror(errno));
			continue;
		}
		if (conn_inflight(c) == 0) {
			/* Paced or past the end: wait for the next send. */
			if (now >= t_end)
				break;
			if (c->next_send_ns > now)
				mono_sleep_ns(c->next_send_ns - now);
			conn_refill(c, mono_ns());
			if (conn_flush(w, c, true) != 0)
				worker_conn_lost(w, c, strerror(errno));
			continue;
		}
		if (conn_read(w, c) != 0) {
			worker_conn_lost(w, c, "read failed or closed");
			continue;
		}
		if (conn_flush(w, c, true) != 0)
			worker_conn_lost(w, c, strerror(errno));
	}
}

/* A thread with several connections, level-triggered epoll. */
static void worker_run_epoll(worker *w)
{
	struct epoll_event evs[BENCH_MAX_EVENTS];
	uint64_t now = mono_ns();

	w->ep = epoll_create1(EPOLL_CLOEXEC);
	if (w->ep < 0)
		die("epoll_create1: %s", strerror(errno));
	for (unsigned i = 0; i < w->nconns; i++) {
		conn *c = w->conns[i];
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};

		if (fcntl(c->cl.fd, F_SETFL, fcntl(c->cl.fd, F_GETFL) | O_NONBLOCK) != 0)
			die("fcntl: %s", strerror(errno));
		if (epoll_ctl(w->ep, EPOLL_CTL_ADD, c->cl.fd, &ev) != 0)
			die("epoll_ctl: %s", strerror(errno));
		conn_refill(c, now);
		if (conn_flush(w, c, false) != 0)
			worker_conn_lost(w, c, strerror(errno));
	}
	for (;;) {
		int n;

		now = mono_ns();
		if (worker_done(w, now))
			break;
		n = epoll_wait(w->ep, evs, BENCH_MAX_EVENTS, BENCH_POLL_MS);
		if (n < 0 && errno != EINTR)
			die("epoll_wait: %s", strerror(errno));
		for (int i = 0; i < n; i++) {
			conn *c = evs[i].data.ptr;

			if (!c->up)
				continue;
			if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
				if (conn_read(w, c) != 0) {
					worker_conn_lost(w, c, "read failed or closed");
					continue;
				}
			}
			if (conn_flush(w, c, false) != 0)
				worker_conn_lost(w, c, strerror(errno));
		}
		if (o.interval_us > 0) {
			now = mono_ns();
			for (unsigned i = 0; i < w->nconns; i++) {
				conn_refill(w->conns[i], now);
				if (w->conns[i]->up && conn_flush(w, w->conns[i], false) != 0)
					worker_conn_lost(w, w->conns[i], strerror(errno));
			}
		}
	}
	close(w->ep);
	w->ep = -1;
}

static pthread_barrier_t start_barrier;

static void *worker_main(void *arg)
{
	worker *w = arg;

	pin_self(w->index);
	pthread_barrier_wait(&start_barrier);
	if (w->nconns == 1)
		worker_run_blocking(w);
	else
		worker_run_epoll(w);
	for (unsigned i = 0; i < w->nconns; i++)
		conn_drop(w, w->conns[i]);
	return NULL;
}

static double cpu_seconds(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / US_PER_S +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / US_PER_S;
}

static void on_sigusr1(int sig)
{
	(void)sig;
	gap_armed_at = mono_ns();
	gap_armed = 1;
}

static double us(uint64_t ns)
{
	return (double)ns / (double)NS_PER_US;
}

static double ms(uint64_t ns)
{
	return (double)ns / (double)NS_PER_MS;
}

static int run_load(void)
{
	worker *ws;
	conn *cs;
	hist *all = malloc(sizeof *all);
	uint64_t reqs = 0, stamps = 0, errors = 0, violations = 0, failures = 0, ok_total = 0;
	uint64_t max_gap = 0, armed_gap = 0, armed_recover = 0;
	int64_t max_ahead = INT64_MIN;
	uint64_t err_status[TP_STATUS_LAST + 1] = {0};
	bool gap_done = false;
	double cpu0, cpu1, secs;
	char err[256];

	if (o.threads == 0) {
		long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

		o.threads = ncpu > 0 ? (unsigned)ncpu : 1;
	}
	if (o.threads > o.connections)
		o.threads = o.connections;
	if (o.threads > BENCH_MAX_THREADS)
		o.threads = BENCH_MAX_THREADS;
	ws = calloc(o.threads, sizeof *ws);
	cs = calloc(o.connections, sizeof *cs);
	if (ws == NULL || cs == NULL || all == NULL)
		die("out of memory");
	hist_init(all);
	for (unsigned t = 0; t < o.threads; t++) {
		ws[t].index = t;
		ws[t].ep = -1;
		ws[t].conns = calloc(o.connections / o.threads + 1, sizeof(conn *));
		if (ws[t].conns == NULL)
			die("out of memory");
		hist_init(&ws[t].h);
		ws[t].max_ahead_ms = INT64_MIN;
	}
	for (unsigned i = 0; i < o.connections; i++) {
		worker *w = &ws[i % o.threads];

		cs[i].cl.fd = -1;
		if (conn_open(&cs[i], err, sizeof err) != 0) {
			if (!o.gap)
				die("%s", err);
		}
		w->conns[w->nconns++] = &cs[i];
	}
	if (o.gap) {
		struct sigaction sa;

		memset(&sa, 0, sizeof sa);
		sa.sa_handler = on_sigusr1;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGUSR1, &sa, NULL); /* no SA_RESTART: reads return */
	}
	pthread_barrier_init(&start_barrier, NULL, o.threads + 1);
	for (unsigned t = 0; t < o.threads; t++)
		if (pthread_create(&ws[t].tid, NULL, worker_main, &ws[t]) != 0)
			die("pthread_create: %s", strerror(errno));
	t_start = mono_ns();
	t_measure = t_start + (uint64_t)(o.warmup_s * (double)NS_PER_S);
	t_end = t_measure + (uint64_t)(o.duration_s * (double)NS_PER_S);
	cpu0 = cpu_seconds();
	pthread_barrier_wait(&start_barrier);
	for (unsigned t = 0; t < o.threads; t++)
		pthread_join(ws[t].tid, NULL);
	cpu1 = cpu_seconds();

	for (unsigned t = 0; t < o.threads; t++) {
		worker *w = &ws[t];

		hist_merge(all, &w->h);
		reqs += w->reqs;
		stamps += w->stamps;
		errors += w->errors;
		violations += w->violations;
		failures += w->conn_failures;
		ok_total += w->ok_total;
		if (w->max_ahead_ms > max_ahead)
			max_ahead = w->max_ahead_ms;
		for (unsigned s = 0; s <= TP_STATUS_LAST; s++)
			err_status[s] += w->err_status[s];
		if (w->max_gap_ns > max_gap)
			max_gap = w->max_gap_ns;
		if ((w->gap_done || o.gap_window_ms > 0) && w->armed_gap_ns >= armed_gap) {
			armed_gap = w->armed_gap_ns;
			armed_recover = w->armed_recover_ns;
		}
		gap_done = gap_done || w->gap_done;
	}
	secs = o.duration_s;
	if (o.gap) {
		if (o.kv)
			printf("mode=gap label=%s node=%" PRIu32
			       " gap_ms=%.3f recover_ms=%.3f max_gap_ms=%.3f "
			       "closed=%d ok=%" PRIu64 " errors=%" PRIu64 " unavailable=%" PRIu64
			       " timeout=%" PRIu64 " conn_failures=%" PRIu64 " violations=%" PRIu64 "\n",
			       o.label, cs[0].cl.node_id, ms(armed_gap), ms(armed_recover), ms(max_gap),
			       gap_done, ok_total, errors, err_status[TP_ERR_UNAVAILABLE],
			       err_status[TP_ERR_TIMEOUT], failures, violations);
		else
			printf("gap after arming: %.1f ms (%s), recovered %.1f ms after arming; longest gap "
			       "of the run %.1f ms\n"
			       "successful responses %" PRIu64 ", error statuses %" PRIu64
			       ", connection losses %" PRIu64 ", violations %" PRIu64 "\n",
			       ms(armed_gap), gap_done ? "closed" : "not closed", ms(armed_recover),
			       ms(max_gap), ok_total, errors, failures, violations);
	} else if (o.kv) {
		printf("mode=load label=%s conns=%u depth=%u count=%" PRIu32
		       " threads=%u secs=%.3f reqs=%" PRIu64
		       " rps=%.0f tsps=%.0f p50_us=%.2f p99_us=%.2f p999_us=%.2f max_us=%.2f mean_us=%.2f "
		       "errors=%" PRIu64 " violations=%" PRIu64 " client_cpu=%.2f max_ahead_ms=%" PRId64 "\n",
		       o.label, o.connections, o.depth, o.count, o.threads, secs, reqs, (double)reqs / secs,
		       (double)stamps / secs, us(hist_quantile(all, 0.50)), us(hist_quantile(all, 0.99)),
		       us(hist_quantile(all, 0.999)), us(all->max),
		       all->total ? (double)(all->sum / (long double)all->total) / (double)NS_PER_US : 0.0,
		       errors, violations, (cpu1 - cpu0) / secs, max_ahead == INT64_MIN ? 0 : max_ahead);
	} else {
		printf("%s: %u connections x depth %u, count %" PRIu32
		       ", %u threads, %.2f s (+%.2f s warmup)\n",
		       o.address, o.connections, o.depth, o.count, o.threads, secs, o.warmup_s);
		printf("  requests/s   %12.0f\n  timestamps/s %12.0f\n", (double)reqs / secs,
		       (double)stamps / secs);
		printf("  latency us   p50 %.2f  p99 %.2f  p99.9 %.2f  max %.2f\n",
		       us(hist_quantile(all, 0.50)), us(hist_quantile(all, 0.99)),
		       us(hist_quantile(all, 0.999)), us(all->max));
		printf("  errors %" PRIu64 "  violations %" PRIu64 "  client cpu %.2f cores\n", errors,
		       violations, (cpu1 - cpu0) / secs);
		if (max_ahead != INT64_MIN)
			printf("  ahead of the clock: at most %" PRId64 " ms (a grant's physical part minus "
			       "this host's wall clock)\n",
			       max_ahead);
	}
	for (unsigned i = 0; i < o.connections; i++)
		tp_client_close(&cs[i].cl);
	for (unsigned t = 0; t < o.threads; t++)
		free(ws[t].conns);
	/* Everything freed before the exit: under LeakSanitizer (make test
	 * SANITIZE=1) a leak ends the process before stdio flushes, and the
	 * report above would never reach the tests that parse it. */
	free(ws);
	free(cs);
	free(all);
	if (violations > 0)
		return 1;
	if (!o.gap && (reqs == 0 || failures > 0))
		return 2;
	return 0;
}

/* ---- ping-pong ----------------------------------------------------------- */

static int read_full(int fd, uint8_t *p, size_t len)
{
	while (len > 0) {
		ssize_t n = read(fd, p, len);

		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int run_pingpong(void)
{
	static uint8_t buf[BENCH_PP_MAX_MSG];
	hist *h = malloc(sizeof *h);
	uint64_t rounds = 0;
	int sv[2], status;
	pid_t pid;

	if (h == NULL)
		die("out of memory");
	hist_init(h);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		die("socketpair: %s", strerror(errno));
	pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		pin_self(1);
		close(sv[0]);
		while (read_full(sv[1], buf, o.pp_out) == 0)
			if (tp_io_write_all(sv[1], NULL, buf, o.pp_back) != 0)
				break;
		_exit(0);
	}
	close(sv[1]);
	pin_self(0);
	t_start = mono_ns();
	t_measure = t_start + (uint64_t)(o.warmup_s * (double)NS_PER_S);
	t_end = t_measure + (uint64_t)(o.duration_s * (double)NS_PER_S);
	for (;;) {
		uint64_t t0 = mono_ns(), t1;

		if (t0 >= t_end)
			break;
		if (tp_io_write_all(sv[0], NULL, buf, o.pp_out) != 0 || read_full(sv[0], buf, o.pp_back) != 0)
			die("ping-pong: %s", strerror(errno));
		t1 = mono_ns();
		if (t0 >= t_measure) {
			hist_add(h, t1 - t0);
			rounds++;
		}
	}
	close(sv[0]);
	waitpid(pid, &status, 0);
	if (o.kv)
		printf("mode=pingpong label=%s cpus=%s out=%zu back=%zu secs=%.3f rounds=%" PRIu64
		       " rps=%.0f p50_us=%.2f "
		       "p99_us=%.2f p999_us=%.2f max_us=%.2f\n",
		       o.label, o.ncpus ? "pinned" : "any", o.pp_out, o.pp_back, o.duration_s, rounds,
		       (double)rounds / o.duration_s, us(hist_quantile(h, 0.50)), us(hist_quantile(h, 0.99)),
		       us(hist_quantile(h, 0.999)), us(h->max));
	else
		printf("unix socketpair ping-pong (%zu bytes out, %zu back), blocking read/write, two "
		       "processes:\n"
		       "  round trips/s %.0f\n  latency us   p50 %.2f  p99 %.2f  p99.9 %.2f  max %.2f\n",
		       o.pp_out, o.pp_back, (double)rounds / o.duration_s, us(hist_quantile(h, 0.50)),
		       us(hist_quantile(h, 0.99)), us(hist_quantile(h, 0.999)), us(h->max));
	return 0;
}

/* ---- status ---------------------------------------------------------------- */

static int run_status(void)
{
	static conn c;
	char err[256];
	tp_msg m;

	o.depth = 1;
	if (conn_open(&c, err, sizeof err) != 0) {
		fprintf(stderr, "tsoracle-bench: %s\n", err);
		return 2;
	}
	m.type = TP_STATUS_REQ;
	m.u.status_req.id = 1;
	if (tp_client_send(&c.cl, &m, err, sizeof err) != 0 ||
	    tp_client_recv(&c.cl, &m, mono_ms() + BENCH_STATUS_MS, err, sizeof err) != 0) {
		fprintf(stderr, "tsoracle-bench: no status: %s\n", err);
		return 2;
	}
	if (m.type != TP_STATUS_RESP) {
		fprintf(stderr, "tsoracle-bench: no status from %s: %s\n", o.address,
			m.type == TP_ERROR ? m.u.error.text : "unexpected answer");
		return 2;
	}
	printf("node=%" PRIu32 " role=%s leader=%" PRIu32 " serving=%d term=%" PRIu64 " commit=%" PRIu64
	       " applied=%" PRIu64 " grants=%" PRIu64 " timestamps=%" PRIu64 "\n",
	       m.u.status_resp.st.node_id, tp_role_str(m.u.status_resp.st.role), m.u.status_resp.st.leader_id,
	       (m.u.status_resp.st.flags & TP_FLAG_SERVING) ? 1 : 0, m.u.status_resp.st.term,
	       m.u.status_resp.st.commit_index, m.u.status_resp.st.applied_index, m.u.status_resp.st.grants,
	       m.u.status_resp.st.timestamps);
	tp_client_close(&c.cl);
	return 0;
}

/* ---- main ------------------------------------------------------------------ */

static void usage(FILE *out)
{
	fprintf(
	    out,
	    "Usage: tsoracle-bench [options]             load: requests/s, timestamps/s, latency\n"
	    "       tsoracle-bench --gap [options]       failover: longest gap between successes\n"
	    "       tsoracle-bench --pingpong [options]  baseline: unix socketpair round trip\n"
	    "       tsoracle-bench --status [--address ADDR]\n\n"
	    "Options:\n"
	    "  --address ADDR      unix socket path (/path, unix:/path) or [tcp:]IP:PORT (default %s)\n"
	    "  --connections N     connections (default 1)\n"
	    "  --depth D           requests in flight per connection, 1..%d (default 1)\n"
	    "  --count K           timestamps per request, 1..%" PRIu32 " (default 1)\n"
	    "  --duration S        measured seconds (default 2; gap mode: the longest it runs)\n"
	    "  --warmup S          seconds before measuring (default 0.2)\n"
	    "  --threads T         client threads (default: one per core, at most one per connection)\n"
	    "  --interval-us U     send at most one request per U us per connection (default: no pacing)\n"
	    "  --gap-min MS        gap mode: after SIGUSR1, exit once a gap of >= MS closed (default 50)\n"
	    "  --gap-window MS     gap mode: after SIGUSR1, watch MS ms; report the longest gap in them\n"
	    "  --msg-size N|frame  ping-pong: N bytes each way, or frame: %d out, %d back (default frame)\n"
	    "  --cpus A[,B...]     pin thread i to the i-th CPU listed (ping-pong: parent A, child B)\n"
	    "  --label TEXT        copied into the --kv line\n"
	    "  --ca FILE           TLS to a TCP address: the cluster's CA certificate (PEM)\n"
	    "  --cert FILE         this client's certificate (OU=client or admin; scripts/certs.sh)\n"
	    "  --key FILE          its private key (mode 600)\n"
	    "  --kv                one line of key=value pairs\n",
	    BENCH_DEFAULT_ADDRESS, BENCH_MAX_DEPTH, TP_MAX_COUNT, BENCH_REQ_FRAME, BENCH_RESP_FRAME);
}

static unsigned long parse_ulong(const char *name, const char *s, unsigned long lo, unsigned long hi)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
		die("%s: expected an integer in [%lu, %lu], got \"%s\"", name, lo, hi, s);
	return v;
}

static double parse_double(const char *name, const char *s)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || *end != '\0' || v < 0)
		die("%s: expected a non-negative number, got \"%s\"", name, s);
	return v;
}

int main(int argc, char **argv)
{
	enum {
		O_ADDR = 1000,
		O_CONNS,
		O_DEPTH,
		O_COUNT,
		O_DUR,
		O_WARM,
		O_THREADS,
		O_PP,
		O_MSG,
		O_GAP,
		O_GAPMIN,
		O_INTERVAL,
		O_STATUS,
		O_KV,
		O_LABEL,
		O_CPUS,
		O_GAPWIN,
		O_CA,
		O_CERT,
		O_KEY,
		O_HELP
	};
	static const struct option lo[] = {
	    {"address", required_argument, NULL, O_ADDR},
	    {"connections", required_argument, NULL, O_CONNS},
	    {"depth", required_argument, NULL, O_DEPTH},
	    {"count", required_argument, NULL, O_COUNT},
	    {"duration", required_argument, NULL, O_DUR},
	    {"warmup", required_argument, NULL, O_WARM},
	    {"threads", required_argument, NULL, O_THREADS},
	    {"pingpong", no_argument, NULL, O_PP},
	    {"msg-size", required_argument, NULL, O_MSG},
	    {"gap", no_argument, NULL, O_GAP},
	    {"gap-min", required_argument, NULL, O_GAPMIN},
	    {"interval-us", required_argument, NULL, O_INTERVAL},
	    {"status", no_argument, NULL, O_STATUS},
	    {"kv", no_argument, NULL, O_KV},
	    {"label", required_argument, NULL, O_LABEL},
	    {"help", no_argument, NULL, O_HELP},
	    {"cpus", required_argument, NULL, O_CPUS},
	    {"gap-window", required_argument, NULL, O_GAPWIN},
	    {"ca", required_argument, NULL, O_CA},
	    {"cert", required_argument, NULL, O_CERT},
	    {"key", required_argument, NULL, O_KEY},
	    {NULL, 0, NULL, 0},
	};
	int opt;

	signal(SIGPIPE, SIG_IGN);
	while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (opt) {
		case O_ADDR:
			o.address = optarg;
			break;
		case O_CONNS:
			o.connections = (unsigned)parse_ulong("--connections", optarg, 1, 4096);
			break;
		case O_DEPTH:
			o.depth = (unsigned)parse_ulong("--depth", optarg, 1, BENCH_MAX_DEPTH);
			break;
		case O_COUNT:
			o.count = (uint32_t)parse_ulong("--count", optarg, 1, TP_MAX_COUNT);
			break;
		case O_DUR:
			o.duration_s = parse_double("--duration", optarg);
			break;
		case O_WARM:
			o.warmup_s = parse_double("--warmup", optarg);
			break;
		case O_THREADS:
			o.threads = (unsigned)parse_ulong("--threads", optarg, 1, BENCH_MAX_THREADS);
			break;
		case O_PP:
			o.pingpong = true;
			break;
		case O_MSG:
			if (strcmp(optarg, "frame") == 0) {
				o.pp_out = BENCH_REQ_FRAME;
				o.pp_back = BENCH_RESP_FRAME;
			} else {
				o.pp_out = o.pp_back = parse_ulong("--msg-size", optarg, 1, BENCH_PP_MAX_MSG);
			}
			break;
		case O_GAP:
			o.gap = true;
			break;
		case O_GAPMIN:
			o.gap_min_ms = parse_double("--gap-min", optarg);
			break;
		case O_GAPWIN:
			o.gap_window_ms = parse_double("--gap-window", optarg);
			break;
		case O_INTERVAL:
			o.interval_us = (unsigned)parse_ulong("--interval-us", optarg, 0, US_PER_S);
			break;
		case O_STATUS:
			o.status = true;
			break;
		case O_KV:
			o.kv = true;
			break;
		case O_LABEL:
			o.label = optarg;
			break;
		case O_CA:
			o.tls_ca = optarg;
			break;
		case O_CERT:
			o.tls_cert = optarg;
			break;
		case O_KEY:
			o.tls_key = optarg;
			break;
		case O_CPUS: {
			char *save = NULL, *tok, *list = strdup(optarg);

			if (list == NULL)
				die("out of memory");
			o.ncpus = 0;
			for (tok = strtok_r(list, ",", &save); tok != NULL;
			     tok = strtok_r(NULL, ",", &save)) {
				if (o.ncpus == BENCH_MAX_THREADS)
					die("--cpus: at most %d CPUs", BENCH_MAX_THREADS);
				o.cpus[o.ncpus++] = (int)parse_ulong("--cpus", tok, 0, CPU_SETSIZE - 1);
			}
			free(list);
			break;
		}
		case O_HELP:
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (o.tls_ca != NULL || o.tls_cert != NULL || o.tls_key != NULL) {
		static const char *const names[TLS_N_SETTINGS] = {"--ca", "--cert", "--key", "--crl"};
		tls_files f = {o.tls_ca, o.tls_cert, o.tls_key, NULL, names};
		char err[TLS_ERR_SIZE];

		if (o.tls_ca == NULL || o.tls_cert == NULL || o.tls_key == NULL)
			die("TLS needs --ca, --cert and --key together");
		bench_tls = tls_ctx_new(&f, err, sizeof err);
		if (bench_tls == NULL)
			die("%s", err);
		/* One read takes whatever the socket holds, not a record's
		 * header and then its body (two system calls per response
		 * batch otherwise); conn_read drains what it buffered. */
		SSL_CTX_set_read_ahead(bench_tls, 1);
	}
	if (o.pingpong)
		return run_pingpong();
	if (o.status)
		return run_status();
	if (o.gap)
		o.warmup_s = 0;
	return run_load();
}
