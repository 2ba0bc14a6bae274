/*-------------------------------------------------------------------------
 *
 * worker.c
 *		The tsoracle background worker: the only client of the sidecar.
 *
 * One loop, one WaitEventSet (the process latch, postmaster death and the
 * sidecar socket), no blocking call on the socket:
 *
 *	1. drain every request waiting in the ring (ring.c) into a local
 *	   pending list, in ring order;
 *	2. while fewer than tsoracle.max_inflight requests are in flight, turn
 *	   ALL pending waiters into ONE TP_TS_REQ whose count is the sum of theirs
 *	   (several only if the sum would exceed TP_MAX_COUNT);
 *	3. read every response available, match it by id, split the grant
 *	   [first, first + total) into contiguous shares in waiter order, write
 *	   each share into its waiter's slot and set its latch.
 *
 * While connected it also asks the sidecar for its view of the cluster
 * (TP_STATUS_REQ: role, leader, term, high-water mark) every
 * WORKER_STATUS_INTERVAL_MS, for tso_status(). That request rides the same
 * pipeline behind the timestamp requests of the same turn of the loop, at
 * most one is in flight, and it never takes the output room a TP_TS_REQ
 * needs, so it cannot delay a batch; its answer is matched by id like any
 * other.
 *
 * The connection: non-blocking connect (unix socket or TCP with
 * TCP_NODELAY), TP_HELLO / TP_HELLO_OK, then pipelined requests. On any
 * failure the worker records the error in shared memory (backends quote it
 * in their error messages), puts the waiters of the requests in flight back
 * at the head of the pending list (a fresh grant is still correct for a call
 * that has not returned) and reconnects with exponential backoff.
 *
 * Correctness of every grant handed out rests on the sidecar's promise
 * (proto.h): the grant of a request is above every grant that completed
 * anywhere before the request was sent. Each place that hands timestamps to
 * a backend says why that promise covers the backend's call.
 *
 * src/worker.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "proto.h"
#include "ring.h"
#include "tso.h"
#include "tsoracle.h"
#include "worker.h"

/* Seconds the postmaster waits before restarting a worker that exited. */
#define WORKER_RESTART_SECONDS		1

/* Reconnection backoff: first delay, doubled per failure up to the cap, ms. */
#define WORKER_BACKOFF_MIN_MS		10
#define WORKER_BACKOFF_MAX_MS		1000

/*
 * A connection lost within this long of its handshake, before it served a
 * single response, is "flapping": the backoff keeps growing and repeated
 * identical messages go to DEBUG1, so a sidecar that accepts and then
 * breaks every connection costs neither a busy loop nor a flood of logs, ms.
 */
#define WORKER_FLAP_MS				1000

/* Connecting plus the handshake must finish within this, ms. */
#define WORKER_HANDSHAKE_TIMEOUT_MS 5000

/*
 * A request unanswered for this long means the connection is wedged: the
 * worker reconnects and sends its waiters again, ms. The sidecar answers
 * TP_ERR_TIMEOUT well before this when it cannot make a grant durable.
 */
#define WORKER_RESPONSE_TIMEOUT_MS	30000

/*
 * How often the worker asks its sidecar for its status while connected, ms.
 * The answer only feeds tso_status(); once a second keeps it fresh for
 * monitoring at a negligible cost to the sidecar.
 */
#define WORKER_STATUS_INTERVAL_MS	1000

/* Output buffer, bytes: a TP_HELLO or a few dozen TP_TS_REQ frames. */
#define WORKER_OUTBUF_SIZE			2048

/* Resolved TCP addresses tried in turn for one connection attempt. */
#define WORKER_MAX_TARGETS			8

/* Events in the wait set: latch, postmaster death, socket. */
#define WORKER_WAIT_EVENTS			3

/*
 * Largest timestamp a grant may reach: it must be a positive bigint. (This
 * is 2^63 - 1; tso.h's TSO_MAX is not used because 46 + 18 bits exceed it.)
 */
#define WORKER_TS_MAX				((uint64) PG_INT64_MAX)

/* Initial room of the pending list, waiters. */
#define WORKER_PENDING_INITIAL		64

typedef enum WorkerConnState
{
	WORKER_DISCONNECTED,		/* no socket; retry at retry_at */
	WORKER_CONNECTING,			/* non-blocking connect in progress */
	WORKER_HANDSHAKE,			/* TP_HELLO queued or sent */
	WORKER_READY				/* TP_HELLO_OK received */
} WorkerConnState;

/* One resolved address to connect to. */
typedef struct WorkerTarget
{
	int			family;
	socklen_t	len;
	struct sockaddr_storage sa;
	char		desc[NI_MAXHOST];	/* numeric form, for messages */
} WorkerTarget;

/* One TP_TS_REQ in flight, and the waiters it serves, in ring order. */
typedef struct WorkerRequest
{
	bool		in_use;
	uint64		id;
	uint32		total;			/* sum of the waiters' counts */
	uint64		floor;			/* last timestamp of the newest grant received
								 * before this request was sent */
	TimestampTz sent_at;
	RingWaiter *waiters;
	int			nwaiters;
	int			capacity;
} WorkerRequest;

typedef struct WorkerState
{
	MemoryContext mcxt;

	/* the connection */
	WorkerConnState conn;
	pgsocket	sock;
	bool		have_external_fd;
	char		address[RING_ADDRESS_LEN];	/* tsoracle.sidecar_address in use */
	WorkerAddress addr;
	WorkerTarget targets[WORKER_MAX_TARGETS];
	int			ntargets;
	int			target;			/* index being tried */
	TimestampTz deadline;		/* CONNECTING/HANDSHAKE: give up at */
	TimestampTz retry_at;		/* DISCONNECTED: next attempt at */
	int			backoff_ms;
	char		last_logged[RING_ERROR_LEN];	/* repeats are not logged */
	TimestampTz ready_at;		/* when the handshake completed */
	bool		served;			/* a valid response arrived since then */
	bool		flapping;		/* the last connection flapped */

	/* I/O buffers */
	tp_reader  *reader;
	uint8		outbuf[WORKER_OUTBUF_SIZE];
	size_t		outlen;

	/* requests */
	WorkerRequest inflight[WORKER_MAX_INFLIGHT_LIMIT];
	int			ninflight;
	uint64		next_id;
	uint64		last_granted;	/* highest timestamp received; 0: none */

	/* the sidecar's status, polled while READY */
	uint64		status_id;		/* TP_STATUS_REQ in flight; 0: none */
	TimestampTz status_sent_at; /* when it was queued */
	TimestampTz status_due_at;	/* none in flight: the next one is due at */
	RingWaiter *pending;		/* taken from the ring, not yet sent */
	int			npending;
	int			pending_cap;
	RingWaiter *drainbuf;		/* ring_capacity() entries */

	/* waiting */
	WaitEventSet *wes;
	bool		wes_stale;		/* the socket changed: rebuild before waiting */
	int			sock_pos;		/* position of the socket in wes, or -1 */
	uint32		sock_events;
} WorkerState;

static WorkerState *ws = NULL;

static void worker_setup(void);
static void worker_reload(void);
static void worker_collect(void);
static void worker_pending_append(const RingWaiter *w, int n, bool at_front);
static void worker_check_timers(TimestampTz now);
static long worker_next_timeout(TimestampTz now);
static void worker_wait(TimestampTz now);
static void worker_attempt(void);
static bool worker_resolve(char *err, size_t errlen);
static void worker_try_targets(void);
static void worker_finish_connect(void);
static void worker_start_handshake(void);
static void worker_fail(const char *fmt,...) pg_attribute_printf(1, 2);
static void worker_close(void);
static void worker_requeue_inflight(void);
static void worker_flush(void);
static void worker_read(void);
static void worker_handle(const tp_msg *m);
static void worker_handle_ts_resp(const tp_msg *m);
static void worker_handle_status_resp(const tp_msg *m);
static void worker_send_batches(TimestampTz now);
static void worker_send_status(TimestampTz now);
static uint32 worker_socket_events(void);

/* ---------------------------------------------------------------------
 * Registration and address parsing (also used by the GUC check hook)
 * ---------------------------------------------------------------------
 */

/*
 * Registers "tsoracle worker".
 *
 * It needs shared memory and a socket, but no database. It still asks for a
 * database connection (to none: shared catalogs only, as the logical
 * replication launcher does) because only a process that went through
 * InitPostgres has a pg_stat_activity entry, where its wait events show.
 * That rules out BgWorkerStart_PostmasterStart, so it starts at
 * BgWorkerStart_ConsistentState: the moment backends can first connect,
 * on a primary and on a hot standby alike (tso_now() is a read-only call
 * and works there too). BgWorkerStart_RecoveryFinished would never start it
 * on a standby.
 */
void
worker_init(void)
{
	BackgroundWorker bgw;

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_ConsistentState;
	bgw.bgw_restart_time = WORKER_RESTART_SECONDS;
	strlcpy(bgw.bgw_library_name, "tsoracle", BGW_MAXLEN);
	strlcpy(bgw.bgw_function_name, "tsoracle_worker_main", BGW_MAXLEN);
	strlcpy(bgw.bgw_name, "tsoracle worker", BGW_MAXLEN);
	strlcpy(bgw.bgw_type, "tsoracle worker", BGW_MAXLEN);
	bgw.bgw_main_arg = (Datum) 0;
	bgw.bgw_notify_pid = 0;
	RegisterBackgroundWorker(&bgw);
}

static bool
worker_parse_unix(const char *path, WorkerAddress *addr, char *err,
				  size_t errlen)
{
	size_t		len = strlen(path);

	if (path[0] != '/')
	{
		snprintf(err, errlen,
				 "A unix socket path must be absolute, for example \"unix:/tmp/tsoracled.sock\".");
		return false;
	}
	if (len >= sizeof(addr->path))
	{
		snprintf(err, errlen,
				 "The unix socket path is %zu bytes long; at most %zu bytes are allowed.",
				 len, sizeof(addr->path) - 1);
		return false;
	}
	addr->kind = WORKER_ADDR_UNIX;
	strlcpy(addr->path, path, sizeof(addr->path));
	return true;
}

static bool
worker_parse_tcp(const char *text, WorkerAddress *addr, char *err,
				 size_t errlen)
{
	const char *host;
	size_t		hostlen;
	const char *port;
	const char *p;
	long		portnum;

	if (text[0] == '[')
	{
		const char *close = strchr(text, ']');

		if (close == NULL || close[1] != ':')
		{
			snprintf(err, errlen,
					 "An IPv6 address must be written as \"[address]:port\".");
			return false;
		}
		host = text + 1;
		hostlen = (size_t) (close - host);
		port = close + 2;
	}
	else
	{
		const char *colon = strrchr(text, ':');

		if (colon == NULL)
		{
			snprintf(err, errlen,
					 "Expected an absolute unix socket path (\"/path\" or \"unix:/path\") or a TCP address (\"host:port\" or \"tcp:host:port\").");
			return false;
		}
		host = text;
		hostlen = (size_t) (colon - host);
		if (memchr(host, ':', hostlen) != NULL)
		{
			snprintf(err, errlen,
					 "An IPv6 address must be written in brackets, for example \"[::1]:5433\".");
			return false;
		}
		port = colon + 1;
	}

	if (hostlen == 0)
	{
		snprintf(err, errlen, "The host name is empty.");
		return false;
	}
	if (hostlen >= sizeof(addr->host))
	{
		snprintf(err, errlen, "The host name is longer than %zu bytes.",
				 sizeof(addr->host) - 1);
		return false;
	}
	for (p = host; p < host + hostlen; p++)
	{
		if (isspace((unsigned char) *p) || *p == '/' || *p == '[' || *p == ']')
		{
			snprintf(err, errlen, "The host name contains an invalid character.");
			return false;
		}
	}

	portnum = 0;
	for (p = port; *p != '\0'; p++)
	{
		if (!isdigit((unsigned char) *p) || portnum > 65535)
			break;
		portnum = portnum * 10 + (*p - '0');
	}
	if (port[0] == '\0' || *p != '\0' || portnum < 1 || portnum > 65535)
	{
		snprintf(err, errlen, "The port must be a number between 1 and 65535.");
		return false;
	}

	addr->kind = WORKER_ADDR_TCP;
	memcpy(addr->host, host, hostlen);
	addr->host[hostlen] = '\0';
	snprintf(addr->port, sizeof(addr->port), "%ld", portnum);
	return true;
}

bool
worker_parse_address(const char *text, WorkerAddress *addr, char *err,
					 size_t errlen)
{
	static const char unix_prefix[] = "unix:";
	static const char tcp_prefix[] = "tcp:";

	memset(addr, 0, sizeof(*addr));
	if (text == NULL || text[0] == '\0')
	{
		snprintf(err, errlen, "The address is empty.");
		return false;
	}
	if (strncmp(text, unix_prefix, strlen(unix_prefix)) == 0)
		return worker_parse_unix(text + strlen(unix_prefix), addr, err, errlen);
	if (text[0] == '/')
		return worker_parse_unix(text, addr, err, errlen);
	if (strncmp(text, tcp_prefix, strlen(tcp_prefix)) == 0)
		return worker_parse_tcp(text + strlen(tcp_prefix), addr, err, errlen);
	return worker_parse_tcp(text, addr, err, errlen);
}

/* ---------------------------------------------------------------------
 * Main loop
 * ---------------------------------------------------------------------
 */

void
tsoracle_worker_main(Datum main_arg)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	/* pg_cancel_backend() has nothing to cancel here; do not die of it */
	pqsignal(SIGINT, SIG_IGN);
	BackgroundWorkerUnblockSignals();

	/* No database: shared catalogs only; see worker_init(). */
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("tsoracle worker");

	worker_setup();

	for (;;)
	{
		TimestampTz now;

		/* procsignal barriers and the like; SIGTERM is handled below */
		CHECK_FOR_INTERRUPTS();
		if (ShutdownRequestPending)
			break;
		if (ConfigReloadPending)
			worker_reload();

		/* The latch was reset before this point, so no posting is missed. */
		worker_collect();

		now = GetCurrentTimestamp();
		worker_check_timers(now);
		if (ws->conn == WORKER_READY)
		{
			/* timestamps first: the status request only takes spare room */
			worker_send_batches(now);
			worker_send_status(now);
		}
		if (ws->outlen > 0 &&
			(ws->conn == WORKER_HANDSHAKE || ws->conn == WORKER_READY))
			worker_flush();

		worker_wait(GetCurrentTimestamp());
	}

	/*
	 * SIGTERM: close the connection and exit. The waiters in flight stay
	 * TAKEN in their slots; a restarted worker adopts them. Exit status 1,
	 * not 0: a worker that exits with 0 is unregistered for good, and a
	 * worker stopped by pg_terminate_backend() must come back after
	 * bgw_restart_time (at server shutdown the status does not matter).
	 */
	worker_close();
	ereport(LOG,
			(errmsg("tsoracle worker shutting down")));
	proc_exit(1);
}

static void
worker_setup(void)
{
	MemoryContext mcxt;
	int			nadopted;

	mcxt = AllocSetContextCreate(TopMemoryContext, "tsoracle worker",
								 ALLOCSET_DEFAULT_SIZES);
	ws = MemoryContextAllocZero(mcxt, sizeof(WorkerState));
	ws->mcxt = mcxt;
	ws->conn = WORKER_DISCONNECTED;
	ws->sock = PGINVALID_SOCKET;
	ws->backoff_ms = WORKER_BACKOFF_MIN_MS;
	ws->retry_at = 0;
	ws->next_id = 1;
	ws->reader = MemoryContextAlloc(mcxt, sizeof(tp_reader));
	tp_reader_init(ws->reader);
	ws->pending_cap = Max(WORKER_PENDING_INITIAL, ring_capacity());
	ws->pending = MemoryContextAlloc(mcxt, sizeof(RingWaiter) * ws->pending_cap);
	ws->drainbuf = MemoryContextAlloc(mcxt, sizeof(RingWaiter) * ring_capacity());
	ws->wes_stale = true;
	ws->sock_pos = -1;
	strlcpy(ws->address, tsoracle_sidecar_address, sizeof(ws->address));

	ring_worker_attach(MyLatch);
	ring_status_connected(false, ws->address);

	/*
	 * Requests a previous worker took but never answered go first in the
	 * pending list. Sending them again is correct: their callers are still
	 * waiting (a caller that gave up left its slot idle), so a grant made
	 * now is above every grant completed before their calls began.
	 */
	nadopted = ring_adopt_taken(ws->drainbuf);
	if (nadopted > 0)
	{
		worker_pending_append(ws->drainbuf, nadopted, false);
		ereport(LOG,
				(errmsg("tsoracle worker took over %d request(s) left by its previous incarnation",
						nadopted)));
	}

	ereport(LOG,
			(errmsg("tsoracle worker started, sidecar address \"%s\"",
					ws->address)));
}

/* SIGHUP: reread the configuration; reconnect if the address changed. */
static void
worker_reload(void)
{
	ConfigReloadPending = false;
	ProcessConfigFile(PGC_SIGHUP);

	if (strcmp(tsoracle_sidecar_address, ws->address) == 0)
		return;

	ereport(LOG,
			(errmsg("tsoracle worker switching sidecar address from \"%s\" to \"%s\"",
					ws->address, tsoracle_sidecar_address)));
	worker_close();
	strlcpy(ws->address, tsoracle_sidecar_address, sizeof(ws->address));
	ring_status_connected(false, ws->address);
	ws->backoff_ms = WORKER_BACKOFF_MIN_MS;
	ws->retry_at = 0;
	ws->last_logged[0] = '\0';
	ws->flapping = false;
}

/* Moves every request waiting in the ring to the pending list. */
static void
worker_collect(void)
{
	int			n = ring_drain(ws->drainbuf);

	if (n > 0)
	{
		worker_pending_append(ws->drainbuf, n, false);
		ring_status_count((uint64) n, 0, 0);
	}
}

/*
 * Adds n waiters to the pending list, at its end or (for waiters coming back
 * from a lost connection, which are older) at its front. When the list is
 * full it first drops the waiters whose callers gave up, so that a sidecar
 * down for long, with callers retrying, cannot grow it without bound: each
 * slot has at most one wanted waiter.
 */
static void
worker_pending_append(const RingWaiter *w, int n, bool at_front)
{
	if (ws->npending + n > ws->pending_cap)
	{
		int			kept = 0;
		int			i;

		for (i = 0; i < ws->npending; i++)
		{
			if (ring_still_wanted(&ws->pending[i]))
				ws->pending[kept++] = ws->pending[i];
		}
		ws->npending = kept;
	}
	if (ws->npending + n > ws->pending_cap)
	{
		int			newcap = Max(ws->pending_cap * 2, ws->npending + n);

		ws->pending = repalloc(ws->pending, sizeof(RingWaiter) * newcap);
		ws->pending_cap = newcap;
	}
	if (at_front)
	{
		memmove(ws->pending + n, ws->pending, sizeof(RingWaiter) * ws->npending);
		memcpy(ws->pending, w, sizeof(RingWaiter) * n);
	}
	else
		memcpy(ws->pending + ws->npending, w, sizeof(RingWaiter) * n);
	ws->npending += n;
}

static void
worker_check_timers(TimestampTz now)
{
	switch (ws->conn)
	{
		case WORKER_DISCONNECTED:
			if (now >= ws->retry_at)
				worker_attempt();
			break;
		case WORKER_CONNECTING:
		case WORKER_HANDSHAKE:
			if (now >= ws->deadline)
				worker_fail("%s \"%s\": timed out after %d ms",
							ws->conn == WORKER_CONNECTING ? "connect to" : "handshake with",
							ws->address, WORKER_HANDSHAKE_TIMEOUT_MS);
			break;
		case WORKER_READY:
			{
				int			i;

				for (i = 0; i < WORKER_MAX_INFLIGHT_LIMIT; i++)
				{
					WorkerRequest *req = &ws->inflight[i];

					if (req->in_use &&
						now >= TimestampTzPlusMilliseconds(req->sent_at,
														   WORKER_RESPONSE_TIMEOUT_MS))
					{
						worker_fail("no response from \"%s\" within %d ms",
									ws->address, WORKER_RESPONSE_TIMEOUT_MS);
						return;
					}
				}
				if (ws->status_id != 0 &&
					now >= TimestampTzPlusMilliseconds(ws->status_sent_at,
													   WORKER_RESPONSE_TIMEOUT_MS))
					worker_fail("no response from \"%s\" to a status request within %d ms",
								ws->address, WORKER_RESPONSE_TIMEOUT_MS);
			}
			break;
	}
}

/* Milliseconds until the next timer, or -1 for none. */
static long
worker_next_timeout(TimestampTz now)
{
	TimestampTz at = 0;

	switch (ws->conn)
	{
		case WORKER_DISCONNECTED:
			at = ws->retry_at;
			break;
		case WORKER_CONNECTING:
		case WORKER_HANDSHAKE:
			at = ws->deadline;
			break;
		case WORKER_READY:
			{
				int			i;

				/*
				 * The next status request, or the deadline of its answer. A
				 * status request already due is waiting for room in the
				 * output buffer: the socket turning writable wakes the loop
				 * for it, so it sets no timer (which would spin).
				 */
				if (ws->status_id != 0)
					at = TimestampTzPlusMilliseconds(ws->status_sent_at,
													 WORKER_RESPONSE_TIMEOUT_MS);
				else if (ws->status_due_at > now)
					at = ws->status_due_at;
				for (i = 0; i < WORKER_MAX_INFLIGHT_LIMIT; i++)
				{
					WorkerRequest *req = &ws->inflight[i];
					TimestampTz t;

					if (!req->in_use)
						continue;
					t = TimestampTzPlusMilliseconds(req->sent_at,
													WORKER_RESPONSE_TIMEOUT_MS);
					if (at == 0 || t < at)
						at = t;
				}
				if (at == 0)
					return -1;
			}
			break;
	}
	if (at <= now)
		return 0;
	return TimestampDifferenceMilliseconds(now, at);
}

static uint32
worker_socket_events(void)
{
	if (ws->conn == WORKER_CONNECTING)
		return WL_SOCKET_CONNECTED;
	return WL_SOCKET_READABLE | (ws->outlen > 0 ? WL_SOCKET_WRITEABLE : 0);
}

/*
 * Sleeps until the latch is set, the socket is ready or the next timer is
 * due, and handles what woke it.
 */
static void
worker_wait(TimestampTz now)
{
	WaitEvent	events[WORKER_WAIT_EVENTS];
	int			nevents;
	int			i;
	long		timeout = worker_next_timeout(now);
	uint32		wait_event;

	if (ws->wes_stale)
	{
		if (ws->wes != NULL)
			FreeWaitEventSet(ws->wes);
		ws->wes = tso_create_wait_event_set(WORKER_WAIT_EVENTS);
		AddWaitEventToSet(ws->wes, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch,
						  NULL);
		AddWaitEventToSet(ws->wes, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET,
						  NULL, NULL);
		ws->sock_pos = -1;
		if (ws->sock != PGINVALID_SOCKET)
		{
			ws->sock_events = worker_socket_events();
			ws->sock_pos = AddWaitEventToSet(ws->wes, ws->sock_events,
											 ws->sock, NULL, NULL);
		}
		ws->wes_stale = false;
	}
	else if (ws->sock_pos >= 0 && ws->sock_events != worker_socket_events())
	{
		ws->sock_events = worker_socket_events();
		ModifyWaitEvent(ws->wes, ws->sock_pos, ws->sock_events, NULL);
	}

	wait_event = tso_wait_event_info(ws->conn == WORKER_DISCONNECTED ?
									 TSO_WAIT_WORKER_RECONNECT :
									 TSO_WAIT_WORKER_MAIN);
	nevents = WaitEventSetWait(ws->wes, timeout, events, lengthof(events),
							   wait_event);

	for (i = 0; i < nevents; i++)
	{
		WaitEvent  *ev = &events[i];

		if (ev->events & WL_LATCH_SET)
			ResetLatch(MyLatch);
		else if (ev->pos == ws->sock_pos && !ws->wes_stale &&
				 ws->sock != PGINVALID_SOCKET)
		{
			if (ws->conn == WORKER_CONNECTING)
			{
				worker_finish_connect();
				continue;
			}
			if (ev->events & WL_SOCKET_READABLE)
				worker_read();
			if ((ev->events & WL_SOCKET_WRITEABLE) &&
				ws->sock != PGINVALID_SOCKET && ws->outlen > 0)
				worker_flush();
		}
	}
}

/* ---------------------------------------------------------------------
 * Connection
 * ---------------------------------------------------------------------
 */

/* Starts a connection attempt (the retry time has come). */
static void
worker_attempt(void)
{
	char		err[RING_ERROR_LEN];

	if (!worker_parse_address(ws->address, &ws->addr, err, sizeof(err)))
	{
		/* the GUC's check hook makes this unreachable; be safe anyway */
		worker_fail("invalid tsoracle.sidecar_address \"%s\": %s",
					ws->address, err);
		return;
	}
	if (!worker_resolve(err, sizeof(err)))
	{
		worker_fail("%s", err);
		return;
	}
	ws->target = 0;
	ws->deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
											   WORKER_HANDSHAKE_TIMEOUT_MS);
	worker_try_targets();
}

/*
 * Fills ws->targets from ws->addr. For a host name this calls getaddrinfo(),
 * which may block on DNS; it runs only when (re)connecting, and a numeric
 * address or a name in /etc/hosts resolves without network I/O.
 */
static bool
worker_resolve(char *err, size_t errlen)
{
	struct addrinfo hints;
	struct addrinfo *res;
	struct addrinfo *ai;
	int			rc;

	ws->ntargets = 0;
	if (ws->addr.kind == WORKER_ADDR_UNIX)
	{
		WorkerTarget *t = &ws->targets[0];
		struct sockaddr_un *sun = (struct sockaddr_un *) &t->sa;

		memset(t, 0, sizeof(*t));
		sun->sun_family = AF_UNIX;
		strlcpy(sun->sun_path, ws->addr.path, sizeof(sun->sun_path));
		t->family = AF_UNIX;
		t->len = (socklen_t) sizeof(struct sockaddr_un);
		strlcpy(t->desc, ws->addr.path, sizeof(t->desc));
		ws->ntargets = 1;
		return true;
	}

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	rc = getaddrinfo(ws->addr.host, ws->addr.port, &hints, &res);
	if (rc != 0)
	{
		snprintf(err, errlen, "could not resolve \"%s\": %s",
				 ws->addr.host, gai_strerror(rc));
		return false;
	}
	for (ai = res; ai != NULL && ws->ntargets < WORKER_MAX_TARGETS; ai = ai->ai_next)
	{
		WorkerTarget *t = &ws->targets[ws->ntargets];

		if (ai->ai_addrlen > sizeof(t->sa))
			continue;
		memset(t, 0, sizeof(*t));
		t->family = ai->ai_family;
		t->len = ai->ai_addrlen;
		memcpy(&t->sa, ai->ai_addr, ai->ai_addrlen);
		if (getnameinfo(ai->ai_addr, ai->ai_addrlen, t->desc, sizeof(t->desc),
						NULL, 0, NI_NUMERICHOST) != 0)
			strlcpy(t->desc, "?", sizeof(t->desc));
		ws->ntargets++;
	}
	freeaddrinfo(res);
	if (ws->ntargets == 0)
	{
		snprintf(err, errlen, "could not resolve \"%s\": no usable address",
				 ws->addr.host);
		return false;
	}
	return true;
}

/* Formats "connect to "address" (desc)" for the current target. */
static void
worker_target_name(char *buf, size_t len)
{
	const WorkerTarget *t = &ws->targets[ws->target];

	if (ws->addr.kind == WORKER_ADDR_TCP && strcmp(t->desc, ws->addr.host) != 0)
		snprintf(buf, len, "\"%s\" (%s)", ws->address, t->desc);
	else
		snprintf(buf, len, "\"%s\"", ws->address);
}

/*
 * Tries ws->targets from ws->target on: a connect that completes or is in
 * progress stops the loop; a failed one moves to the next target; when
 * none is left the attempt fails with the last error.
 */
static void
worker_try_targets(void)
{
	char		name[RING_ADDRESS_LEN + NI_MAXHOST + 8];
	char		err[RING_ERROR_LEN];

	err[0] = '\0';
	for (; ws->target < ws->ntargets; ws->target++)
	{
		const WorkerTarget *t = &ws->targets[ws->target];
		int			one = 1;
		int			save_errno;

		worker_target_name(name, sizeof(name));
		if (!AcquireExternalFD())
		{
			snprintf(err, sizeof(err), "connect to %s: %s", name,
					 "too many open files in the server process");
			break;
		}
		ws->have_external_fd = true;

		ws->sock = socket(t->family, SOCK_STREAM, 0);
		if (ws->sock == PGINVALID_SOCKET)
		{
			save_errno = errno;
			snprintf(err, sizeof(err), "could not create socket for %s: %s",
					 name, strerror(save_errno));
			worker_close();
			continue;
		}
		if (!pg_set_noblock(ws->sock) ||
			fcntl(ws->sock, F_SETFD, FD_CLOEXEC) < 0)
		{
			save_errno = errno;
			snprintf(err, sizeof(err), "could not set up socket for %s: %s",
					 name, strerror(save_errno));
			worker_close();
			continue;
		}
		if (t->family != AF_UNIX)
		{
			/* Requests are tiny and latency-bound: no Nagle delay. */
			(void) setsockopt(ws->sock, IPPROTO_TCP, TCP_NODELAY,
							  (char *) &one, sizeof(one));
			(void) setsockopt(ws->sock, SOL_SOCKET, SO_KEEPALIVE,
							  (char *) &one, sizeof(one));
		}

		if (connect(ws->sock, (const struct sockaddr *) &t->sa, t->len) == 0)
		{
			worker_start_handshake();
			return;
		}
		save_errno = errno;
		if (save_errno == EINPROGRESS || save_errno == EINTR)
		{
			ws->conn = WORKER_CONNECTING;
			ws->wes_stale = true;
			return;
		}
		/* unix sockets fail with EAGAIN when the listen backlog is full */
		snprintf(err, sizeof(err), "connect to %s: %s", name,
				 strerror(save_errno));
		worker_close();
	}
	worker_fail("%s", err);
}

/* The socket became writable while connecting: did the connect succeed? */
static void
worker_finish_connect(void)
{
	int			soerr = 0;
	socklen_t	len = sizeof(soerr);

	if (getsockopt(ws->sock, SOL_SOCKET, SO_ERROR, (char *) &soerr, &len) < 0)
		soerr = errno;
	if (soerr == 0)
	{
		worker_start_handshake();
		return;
	}
	if (ws->target + 1 < ws->ntargets)
	{
		/* Keep the error for the log only if this was the last target. */
		worker_close();
		ws->target++;
		worker_try_targets();
		return;
	}
	{
		char		name[RING_ADDRESS_LEN + NI_MAXHOST + 8];

		worker_target_name(name, sizeof(name));
		worker_fail("connect to %s: %s", name, strerror(soerr));
	}
}

/* Connected: queue TP_HELLO; TP_HELLO_OK moves to READY. */
static void
worker_start_handshake(void)
{
	tp_msg		m;
	size_t		n;

	memset(&m, 0, sizeof(m));
	m.type = TP_HELLO;
	m.u.hello.magic = TP_MAGIC;
	m.u.hello.min_version = TP_VERSION;
	m.u.hello.max_version = TP_VERSION;
	tp_reader_init(ws->reader);
	ws->outlen = 0;
	n = tp_encode(&m, ws->outbuf, sizeof(ws->outbuf));
	Assert(n > 0);
	ws->outlen = n;
	ws->conn = WORKER_HANDSHAKE;
	ws->wes_stale = true;
	worker_flush();
}

/* Closes the socket (if any) without touching requests or status. */
static void
worker_close(void)
{
	if (ws->sock != PGINVALID_SOCKET)
	{
		closesocket(ws->sock);
		ws->sock = PGINVALID_SOCKET;
	}
	if (ws->have_external_fd)
	{
		ReleaseExternalFD();
		ws->have_external_fd = false;
	}
	ws->outlen = 0;
	tp_reader_init(ws->reader);
	ws->status_id = 0;			/* its answer is lost with the connection */
	if (ws->conn != WORKER_DISCONNECTED)
		worker_requeue_inflight();
	ws->conn = WORKER_DISCONNECTED;
	ws->wes_stale = true;
}

/*
 * The connection is gone: the waiters of every request in flight go back to
 * the head of the pending list, oldest request first, to be sent again on
 * the next connection.
 */
static void
worker_requeue_inflight(void)
{
	uint64		order[WORKER_MAX_INFLIGHT_LIMIT];
	int			idx[WORKER_MAX_INFLIGHT_LIMIT];
	int			n = 0;
	int			i;

	for (i = 0; i < WORKER_MAX_INFLIGHT_LIMIT; i++)
	{
		if (ws->inflight[i].in_use)
		{
			int			j = n++;

			/* insertion sort by id, i.e. by send order */
			while (j > 0 && order[j - 1] > ws->inflight[i].id)
			{
				order[j] = order[j - 1];
				idx[j] = idx[j - 1];
				j--;
			}
			order[j] = ws->inflight[i].id;
			idx[j] = i;
		}
	}
	/* prepend newest first, so that the oldest ends up at the very front */
	for (i = n - 1; i >= 0; i--)
	{
		WorkerRequest *req = &ws->inflight[idx[i]];

		/*
		 * Sending these waiters again is correct: none of their calls has
		 * returned, so a grant made after the resend is still above every
		 * grant that completed before each of those calls began.
		 */
		worker_pending_append(req->waiters, req->nwaiters, true);
		req->in_use = false;
		req->nwaiters = 0;
	}
	ws->ninflight = 0;
}

/*
 * Records a connection failure: logs it (a connect error only when it
 * differs from the last one logged), stores it for backends' error
 * messages, closes the socket, puts the waiters in flight back in the
 * pending list and schedules the next attempt with backoff.
 */
static void
worker_fail(const char *fmt,...)
{
	char		msg[RING_ERROR_LEN];
	va_list		ap;
	TimestampTz now = GetCurrentTimestamp();
	bool		was_ready = ws->conn == WORKER_READY;
	bool		repeat;
	bool		flap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	repeat = strcmp(msg, ws->last_logged) == 0;
	flap = was_ready && !ws->served &&
		now < TimestampTzPlusMilliseconds(ws->ready_at, WORKER_FLAP_MS);

	if (was_ready)
		ereport((flap && repeat) ? DEBUG1 : LOG,
				(errmsg("tsoracle worker lost its connection to the sidecar: %s",
						msg),
				 errdetail("%d request(s) in flight will be sent again after reconnecting.",
						   ws->ninflight)));
	else
		ereport(repeat ? DEBUG1 : LOG,
				(errmsg("tsoracle worker could not connect to the sidecar: %s",
						msg),
				 errdetail("The worker retries every %d ms at most; this message is not repeated while the error stays the same.",
						   WORKER_BACKOFF_MAX_MS)));
	strlcpy(ws->last_logged, msg, sizeof(ws->last_logged));
	if (was_ready)
		ws->flapping = flap;

	ring_status_error(msg);
	ring_status_count(0, 0, 1);
	worker_close();
	ring_status_connected(false, ws->address);

	/* a connection that worked earns a quick retry; a flapping one not */
	if (was_ready && !flap)
		ws->backoff_ms = WORKER_BACKOFF_MIN_MS;
	ws->retry_at = TimestampTzPlusMilliseconds(now, ws->backoff_ms);
	ws->backoff_ms = Min(ws->backoff_ms * 2, WORKER_BACKOFF_MAX_MS);
}

/* ---------------------------------------------------------------------
 * I/O
 * ---------------------------------------------------------------------
 */

/* Writes as much of the output buffer as the socket takes. */
static void
worker_flush(void)
{
	while (ws->outlen > 0)
	{
		ssize_t		n;

#ifdef MSG_NOSIGNAL
		n = send(ws->sock, ws->outbuf, ws->outlen, MSG_NOSIGNAL);
#else
		n = send(ws->sock, ws->outbuf, ws->outlen, 0);
#endif
		if (n > 0)
		{
			ws->outlen -= (size_t) n;
			if (ws->outlen > 0)
				memmove(ws->outbuf, ws->outbuf + n, ws->outlen);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;				/* the wait set watches for writability */
		worker_fail("write to \"%s\": %s", ws->address,
					n < 0 ? strerror(errno) : "no progress");
		return;
	}
}

/* Reads and handles everything the socket has. */
static void
worker_read(void)
{
	for (;;)
	{
		size_t		room;
		uint8	   *space = tp_reader_space(ws->reader, &room);
		ssize_t		n;

		if (room == 0)
		{
			/* proto.h: impossible while every whole frame is taken */
			worker_fail("input buffer of the connection to \"%s\" is full",
						ws->address);
			return;
		}
		n = recv(ws->sock, space, room, 0);
		if (n < 0)
		{
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			worker_fail("read from \"%s\": %s", ws->address, strerror(errno));
			return;
		}
		if (n == 0)
		{
			worker_fail("the sidecar at \"%s\" closed the connection",
						ws->address);
			return;
		}
		tp_reader_commit(ws->reader, (size_t) n);

		for (;;)
		{
			tp_msg		m;
			int			rc = tp_reader_next(ws->reader, &m);

			if (rc == 0)
				break;
			if (rc < 0)
			{
				worker_fail("malformed message from \"%s\": %s", ws->address,
							tp_reader_errstr(ws->reader));
				return;
			}
			worker_handle(&m);
			if (ws->conn == WORKER_DISCONNECTED)
				return;
		}

		/* A short read drained the socket; level-triggered waits do the rest. */
		if ((size_t) n < room)
			return;
	}
}

static void
worker_handle(const tp_msg *m)
{
	if (m->type == TP_ERROR)
	{
		worker_fail("the sidecar at \"%s\" reported %s: %s", ws->address,
					tp_status_str(m->u.error.status), m->u.error.text);
		return;
	}

	if (ws->conn == WORKER_HANDSHAKE)
	{
		if (m->type != TP_HELLO_OK)
		{
			worker_fail("protocol violation by \"%s\": message type %u during the handshake",
						ws->address, (unsigned) m->type);
			return;
		}
		if (m->u.hello_ok.version != TP_VERSION)
		{
			worker_fail("the sidecar at \"%s\" chose protocol version %u; this extension speaks %u",
						ws->address, (unsigned) m->u.hello_ok.version,
						(unsigned) TP_VERSION);
			return;
		}
		ws->conn = WORKER_READY;
		ws->ready_at = GetCurrentTimestamp();
		ws->served = false;
		/* ask for the sidecar's status right away, then periodically */
		ws->status_id = 0;
		ws->status_due_at = ws->ready_at;
		if (!ws->flapping)
			ws->last_logged[0] = '\0';
		ring_status_connected(true, ws->address);
		ereport(ws->flapping ? DEBUG1 : LOG,
				(errmsg("tsoracle worker connected to the sidecar at \"%s\" (node %u, protocol version %u)",
						ws->address, (unsigned) m->u.hello_ok.node_id,
						(unsigned) m->u.hello_ok.version)));
		return;
	}

	Assert(ws->conn == WORKER_READY);
	if (m->type == TP_TS_RESP)
	{
		worker_handle_ts_resp(m);
		if (ws->conn == WORKER_READY)
		{
			/* a valid response: this connection works */
			ws->served = true;
			ws->flapping = false;
		}
	}
	else if (m->type == TP_STATUS_RESP)
	{
		/*
		 * Not counted as "served": a sidecar that answers the status request
		 * sent right after the handshake and then drops every connection
		 * must still be treated as flapping.
		 */
		worker_handle_status_resp(m);
	}
	else
		worker_fail("protocol violation by \"%s\": unexpected message type %u",
					ws->address, (unsigned) m->type);
}

static void
worker_handle_ts_resp(const tp_msg *m)
{
	WorkerRequest *req = NULL;
	uint16		status = m->u.ts_resp.status;
	uint64		first = m->u.ts_resp.first;
	int			i;

	for (i = 0; i < WORKER_MAX_INFLIGHT_LIMIT; i++)
	{
		if (ws->inflight[i].in_use && ws->inflight[i].id == m->u.ts_resp.id)
		{
			req = &ws->inflight[i];
			break;
		}
	}
	if (req == NULL)
	{
		worker_fail("protocol violation by \"%s\": response to unknown request id " UINT64_FORMAT,
					ws->address, (uint64) m->u.ts_resp.id);
		return;
	}

	elog(DEBUG2, "tsoracle worker: request " UINT64_FORMAT " of %u timestamp(s) for %d waiter(s): status %u, first " UINT64_FORMAT,
		 req->id, (unsigned) req->total, req->nwaiters, (unsigned) status,
		 (uint64) first);

	if (status == TP_ERR_SHUTTING_DOWN)
	{
		/*
		 * The sidecar is stopping (a restart, or a planned handover before
		 * one): the end of this connection, not of these calls. As for any
		 * lost connection, the requests in flight go back to the pending
		 * list and are sent again once the worker has reconnected, each
		 * caller waiting at most its tsoracle.timeout; no grant was made for
		 * them, so a later one is still correct for calls that have not
		 * returned (worker_requeue_inflight).
		 */
		worker_fail("the sidecar at \"%s\" is shutting down", ws->address);
		return;
	}

	if (status == TP_OK)
	{
		uint64		off = 0;
		bool		refuse = false;

		if (m->u.ts_resp.count != req->total || first == 0 ||
			first > WORKER_TS_MAX - req->total + 1)
		{
			worker_fail("protocol violation by \"%s\": grant of %u timestamp(s) from " UINT64_FORMAT " for a request of %u",
						ws->address, (unsigned) m->u.ts_resp.count,
						(uint64) first, (unsigned) req->total);
			return;
		}
		if (first <= req->floor)
		{
			/*
			 * The sidecar broke its promise: a grant that completed before
			 * this request was sent ended at floor. Handing this grant out
			 * could put a call before one that finished earlier, so it is
			 * refused, unless a test turned the refusal off to show that the
			 * checker catches such a sidecar (it always leaves a WARNING).
			 */
			refuse = tsoracle_refuse_backward_grants;
			ereport(WARNING,
					(errmsg("tsoracle sidecar at \"%s\" granted timestamps starting at " UINT64_FORMAT ", not above " UINT64_FORMAT " granted earlier",
							ws->address, (uint64) first, req->floor),
					 refuse ?
					 errdetail("The grant was refused and its callers received an error.") :
					 errdetail("The grant was handed out, because tsoracle.refuse_backward_grants is off.")));
		}
		if (refuse)
		{
			ring_status_error("the sidecar granted a timestamp not above an earlier grant");
			ring_status_count(0, 0, 1);
			for (i = 0; i < req->nwaiters; i++)
				(void) ring_deliver(&req->waiters[i], RING_REFUSED_BACKWARD, 0);
		}
		else
		{
			/*
			 * Every waiter of this request had posted before the worker took
			 * it from the ring, hence before the request was sent; the grant
			 * is above every grant completed before it was sent (checked
			 * above, unless a test turned the refusal off), so each share is
			 * later than any call that had completed before that waiter's
			 * call began. Shares are contiguous and disjoint, in ring order;
			 * a share whose caller gave up is dropped (a gap).
			 */
			for (i = 0; i < req->nwaiters; i++)
			{
				(void) ring_deliver(&req->waiters[i], TP_OK, first + off);
				off += req->waiters[i].count;
			}
			Assert(off == req->total);
			ws->last_granted = Max(ws->last_granted, first + req->total - 1);
			ring_status_count(0, req->total, 0);
		}
	}
	else if (status == TP_ERR_UNAVAILABLE || status == TP_ERR_TIMEOUT)
	{
		char		msg[RING_ERROR_LEN];

		/*
		 * The sidecar held this request for its --request-timeout without a
		 * leader, or without a quorum to make the grant durable. Each caller
		 * chose its own patience (tsoracle.timeout, 5 s by default against
		 * the sidecar's 2 s), so the calls go back to the front of the
		 * pending list and are sent again; a caller that has given up is
		 * dropped when the next request is built. Correct for the same
		 * reason as a resend after a lost connection: no grant was made for
		 * these calls and none has returned, so a later grant is still above
		 * every grant completed before each of them began. It cannot spin:
		 * the sidecar answers this way only once a request has waited its
		 * --request-timeout. The error is kept for the caller's timeout
		 * message.
		 */
		snprintf(msg, sizeof(msg), "the sidecar at \"%s\" answered: %s",
				 ws->address, tp_status_str(status));
		ring_status_error(msg);
		elog(DEBUG1, "tsoracle worker: %s; sending the %d call(s) again",
			 msg, req->nwaiters);
		worker_pending_append(req->waiters, req->nwaiters, true);
	}
	else
	{
		char		msg[RING_ERROR_LEN];

		snprintf(msg, sizeof(msg), "the sidecar at \"%s\" answered: %s",
				 ws->address, tp_status_str(status));
		ring_status_error(msg);
		ring_status_count(0, 0, 1);
		for (i = 0; i < req->nwaiters; i++)
			(void) ring_deliver(&req->waiters[i], status, 0);
	}

	req->in_use = false;
	req->nwaiters = 0;
	ws->ninflight--;
	ring_status_in_flight(ws->ninflight);
}

/*
 * Keeps the sidecar's answer to the status request in flight for
 * tso_status(), and schedules the next request.
 */
static void
worker_handle_status_resp(const tp_msg *m)
{
	if (ws->status_id == 0 || m->u.status_resp.id != ws->status_id)
	{
		worker_fail("protocol violation by \"%s\": status response to unknown request id " UINT64_FORMAT,
					ws->address, (uint64) m->u.status_resp.id);
		return;
	}
	ws->status_id = 0;
	ws->status_due_at = TimestampTzPlusMilliseconds(ws->status_sent_at,
													WORKER_STATUS_INTERVAL_MS);
	if (m->u.status_resp.status == TP_OK)
		ring_status_sidecar(&m->u.status_resp.st);
	else
		elog(DEBUG1, "tsoracle worker: the sidecar at \"%s\" answered a status request with %s",
			 ws->address, tp_status_str(m->u.status_resp.status));
}

/*
 * Turns the pending list into as few TP_TS_REQ as possible: all of it in one
 * request unless the counts add up to more than TP_MAX_COUNT, and no more
 * than tsoracle.max_inflight requests in flight.
 */
static void
worker_send_batches(TimestampTz now)
{
	uint64		batches = 0;
	uint64		batched = 0;

	while (ws->npending > 0 && ws->ninflight < tsoracle_max_inflight &&
		   sizeof(ws->outbuf) - ws->outlen >= TP_MAX_FRAME)
	{
		WorkerRequest *req = NULL;
		uint64		total = 0;
		int			used = 0;
		int			i;
		tp_msg		m;
		size_t		n;

		for (i = 0; i < WORKER_MAX_INFLIGHT_LIMIT; i++)
		{
			if (!ws->inflight[i].in_use)
			{
				req = &ws->inflight[i];
				break;
			}
		}
		Assert(req != NULL);
		req->nwaiters = 0;

		while (used < ws->npending)
		{
			RingWaiter *w = &ws->pending[used];

			if (w->count < 1 || w->count > TP_MAX_COUNT)
			{
				/* backends validate counts; this is a corrupted slot */
				(void) ring_deliver(w, TP_ERR_BAD_REQUEST, 0);
				used++;
				continue;
			}
			if (total + w->count > TP_MAX_COUNT)
				break;
			used++;
			if (!ring_still_wanted(w))
				continue;		/* its caller gave up: ask for nothing */
			if (req->nwaiters == req->capacity)
			{
				int			newcap = Max(16, req->capacity * 2);

				if (req->waiters == NULL)
					req->waiters = MemoryContextAlloc(ws->mcxt,
													  sizeof(RingWaiter) * newcap);
				else
					req->waiters = repalloc(req->waiters,
											sizeof(RingWaiter) * newcap);
				req->capacity = newcap;
			}
			req->waiters[req->nwaiters++] = *w;
			total += w->count;
		}
		ws->npending -= used;
		if (ws->npending > 0)
			memmove(ws->pending, ws->pending + used,
					sizeof(RingWaiter) * ws->npending);
		if (req->nwaiters == 0)
			continue;

		memset(&m, 0, sizeof(m));
		m.type = TP_TS_REQ;
		m.u.ts_req.id = ws->next_id;
		m.u.ts_req.count = (uint32) total;
		n = tp_encode(&m, ws->outbuf + ws->outlen,
					  sizeof(ws->outbuf) - ws->outlen);
		if (n == 0)
		{
			/* cannot happen: room for TP_MAX_FRAME was checked */
			worker_pending_append(req->waiters, req->nwaiters, true);
			req->nwaiters = 0;
			break;
		}
		ws->outlen += n;
		req->in_use = true;
		req->id = ws->next_id++;
		req->total = (uint32) total;
		req->floor = ws->last_granted;
		req->sent_at = now;
		ws->ninflight++;
		batches++;
		batched += (uint64) req->nwaiters;
	}

	if (batches > 0)
	{
		ring_status_sent(batches, batched);
		ring_status_in_flight(ws->ninflight);
	}
}

/*
 * Queues a TP_STATUS_REQ when one is due and none is in flight. It goes
 * behind the timestamp requests already queued, and only if a whole
 * TP_TS_REQ frame still fits after it, so that it never holds back a batch;
 * when there is no such room it waits for the next turn of the loop.
 */
static void
worker_send_status(TimestampTz now)
{
	tp_msg		m;
	uint8		frame[TP_MAX_FRAME];
	size_t		n;

	if (ws->status_id != 0 || now < ws->status_due_at)
		return;

	memset(&m, 0, sizeof(m));
	m.type = TP_STATUS_REQ;
	m.u.status_req.id = ws->next_id;
	n = tp_encode(&m, frame, sizeof(frame));
	Assert(n > 0);
	if (n == 0 || sizeof(ws->outbuf) - ws->outlen < n + TP_MAX_FRAME)
		return;

	memcpy(ws->outbuf + ws->outlen, frame, n);
	ws->outlen += n;
	ws->status_id = ws->next_id++;
	ws->status_sent_at = now;
}
