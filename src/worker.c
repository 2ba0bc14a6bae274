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
 *	   the pending waiters into TP_TS_REQs: ALL small ones (tso_now(), modest
 *	   ranges) into ONE request whose count is the sum of theirs, and bulk
 *	   ranges into requests of their own, one at a time (fair service,
 *	   below);
 *	3. read every response available, match it by id, split the grant
 *	   [first, first + total) into contiguous shares in waiter order, write
 *	   each share into its waiter's slot and set its latch.
 *
 * Fair service. The oracle grants at most 2^18 timestamps per ms to all its
 * clients; a few sessions looping tso_range(1048576) ask for more than that,
 * the sidecar's grants reach its --max-ahead and from then on each grant
 * waits for the clock, in proportion to its size. Coalescing everything
 * into one request would make a tso_now() wait for the sum of every range
 * queued with it (16 x 2^20 timestamps: 64 ms of clock), and up to
 * max_inflight such requests queued ahead of it. So a waiter asking for
 * more than WORKER_SMALL_MAX_COUNT is "bulk":
 *	- bulk waiters go in requests of their own (WORKER_BULK_BATCH_COUNT
 *	  timestamps at most, or one waiter if it is larger), and at most one
 *	  bulk request is in flight; small waiters keep being coalesced into
 *	  requests of their own, in the other in-flight slots. The sidecar
 *	  answers its queue in order, so a small call waits behind at most the
 *	  one bulk request in flight: one batch.
 *	- the next request is of the kind of the oldest pending waiter, so
 *	  neither kind starves the other: a bulk waiter at the head of the list
 *	  gets the next free slot once the bulk request before it is answered,
 *	  and small waiters never wait for a second bulk request.
 *	- among bulk waiters, service is round-robin over backends: the ring
 *	  queues each backend's slot at most once and a backend has one call at
 *	  a time, so the pending list holds at most one waiter per backend, in
 *	  the order they posted; a backend that is answered posts its next call
 *	  behind every other backend already waiting.
 * Splitting the waiters across requests changes nothing in the argument
 * for each grant (worker_handle_ts_resp): every waiter of a request posted
 * before that request was sent, whichever request it went into.
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
 * The connection lives in worker_conn.c and the parsing of
 * tsoracle.sidecar_address in worker_addr.c; worker_int.h holds the state
 * this file and worker_conn.c share.
 *
 * src/worker.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
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
#include "worker_int.h"

/*
 * The library the postmaster loads the worker's code from: this module's
 * file name in the server's library directory. A control build installed
 * under another name (scripts/test.sh) passes its own, or its worker would
 * load the real module.
 */
#ifndef TSORACLE_LIBRARY_NAME
#define TSORACLE_LIBRARY_NAME		"tsoracle"
#endif

/* Seconds the postmaster waits before restarting a worker that exited. */
#define WORKER_RESTART_SECONDS		1

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

/* Events in the wait set: latch, postmaster death, socket. */
#define WORKER_WAIT_EVENTS			3

/*
 * Largest timestamp a grant may reach: it must be a positive bigint. (This
 * is 2^63 - 1; tso.h's TSO_MAX is not used because 46 + 18 bits exceed it.)
 */
#define WORKER_TS_MAX				((uint64) PG_INT64_MAX)

/* Initial room of the pending list, waiters. */
#define WORKER_PENDING_INITIAL		64

WorkerState *ws = NULL;

static void worker_setup(void);
static void worker_reload(void);
static void worker_collect(void);
static void worker_check_timers(TimestampTz now);
static long worker_next_timeout(TimestampTz now);
static void worker_wait(TimestampTz now);
static void worker_send_batches(TimestampTz now);
static void worker_send_status(TimestampTz now);
static uint32 worker_socket_events(void);

/* ---------------------------------------------------------------------
 * Registration
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
	strlcpy(bgw.bgw_library_name, TSORACLE_LIBRARY_NAME, BGW_MAXLEN);
	strlcpy(bgw.bgw_function_name, "tsoracle_worker_main", BGW_MAXLEN);
	strlcpy(bgw.bgw_name, "tsoracle worker", BGW_MAXLEN);
	strlcpy(bgw.bgw_type, "tsoracle worker", BGW_MAXLEN);
	bgw.bgw_main_arg = (Datum) 0;
	bgw.bgw_notify_pid = 0;
	RegisterBackgroundWorker(&bgw);
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
	tp_backoff_init(&ws->backoff, WORKER_BACKOFF_MIN_MS, WORKER_BACKOFF_MAX_MS);
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
	strlcpy(ws->sidecar_user, tsoracle_sidecar_user, sizeof(ws->sidecar_user));

	ring_worker_attach(MyLatch);
	ring_status_connected(false, ws->address);
	(void) worker_tls_reload(true);

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

/*
 * SIGHUP: reread the configuration; reconnect if the address changed, or
 * the user the sidecar may run as (the connection in use was trusted under
 * the old setting).
 */
static void
worker_reload(void)
{
	bool		tls_changed;

	ConfigReloadPending = false;
	ProcessConfigFile(PGC_SIGHUP);
	/* rereads the tsoracle.tls_* files (worker_tls.c) */
	tls_changed = worker_tls_reload(false);

	if (strcmp(tsoracle_sidecar_address, ws->address) == 0 &&
		strcmp(tsoracle_sidecar_user, ws->sidecar_user) == 0 &&
		!tls_changed)
		return;

	if (strcmp(tsoracle_sidecar_address, ws->address) != 0)
		ereport(LOG,
				(errmsg("tsoracle worker switching sidecar address from \"%s\" to \"%s\"",
						ws->address, tsoracle_sidecar_address)));
	else if (strcmp(tsoracle_sidecar_user, ws->sidecar_user) != 0)
		ereport(LOG,
				(errmsg("tsoracle worker reconnecting to \"%s\": tsoracle.sidecar_user changed from \"%s\" to \"%s\"",
						ws->address, ws->sidecar_user, tsoracle_sidecar_user)));
	else
		ereport(LOG,
				(errmsg("tsoracle worker reconnecting to \"%s\": its tsoracle.tls_* settings changed",
						ws->address)));
	strlcpy(ws->sidecar_user, tsoracle_sidecar_user, sizeof(ws->sidecar_user));
	worker_close();
	strlcpy(ws->address, tsoracle_sidecar_address, sizeof(ws->address));
	ring_status_connected(false, ws->address);
	tp_backoff_reset(&ws->backoff);
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
void
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
	return WL_SOCKET_READABLE | (worker_want_write() ? WL_SOCKET_WRITEABLE : 0);
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
				ws->sock != PGINVALID_SOCKET && worker_want_write())
				worker_flush();
		}
	}
}

/* ---------------------------------------------------------------------
 * Requests and responses
 * ---------------------------------------------------------------------
 */

void
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
void
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

/* Whether a waiter is bulk: served in requests of its own (fair service). */
static inline bool
worker_is_bulk(const RingWaiter *w)
{
	return w->count > WORKER_SMALL_MAX_COUNT;
}

/* Whether a bulk request is in flight. */
static bool
worker_bulk_in_flight(void)
{
	int			i;

	for (i = 0; i < WORKER_MAX_INFLIGHT_LIMIT; i++)
	{
		if (ws->inflight[i].in_use && ws->inflight[i].bulk)
			return true;
	}
	return false;
}

/*
 * Whether waiter w joins req, a request of kind bulk whose waiters so far
 * add up to total: same kind, and within the request's budget (a bulk
 * request takes its first waiter whatever its size).
 */
static bool
worker_joins(const WorkerRequest *req, bool bulk, uint64 total,
			 const RingWaiter *w)
{
	if (worker_is_bulk(w) != bulk)
		return false;
	if (bulk)
		return req->nwaiters == 0 || total + w->count <= WORKER_BULK_BATCH_COUNT;
	return total + w->count <= TP_MAX_COUNT;
}

/*
 * Removes from the pending list the waiters that need no request (callers
 * that gave up; a count no backend could have posted), keeping the order of
 * the rest. Returns whether a small waiter is left, and in *head_bulk
 * whether the oldest one left is bulk.
 */
static bool
worker_prune_pending(bool *head_bulk)
{
	int			kept = 0;
	bool		small = false;
	int			i;

	for (i = 0; i < ws->npending; i++)
	{
		RingWaiter *w = &ws->pending[i];

		if (w->count < 1 || w->count > TP_MAX_COUNT)
		{
			/* backends validate counts; this is a corrupted slot */
			(void) ring_deliver(w, TP_ERR_BAD_REQUEST, 0);
			continue;
		}
		if (!ring_still_wanted(w))
			continue;			/* its caller gave up: ask for nothing */
		small |= !worker_is_bulk(w);
		ws->pending[kept++] = *w;
	}
	ws->npending = kept;
	*head_bulk = kept > 0 && worker_is_bulk(&ws->pending[0]);
	return small;
}

/*
 * Turns the pending list into TP_TS_REQs, while fewer than
 * tsoracle.max_inflight are in flight: each request takes the waiters of
 * one kind (see "Fair service" at the top of the file), in ring order. The
 * next request is bulk if the oldest waiter is bulk and no bulk request is
 * in flight; otherwise it is small, holding every small waiter (split only
 * if their counts add up to more than TP_MAX_COUNT); with no small waiter
 * and a bulk request in flight, the bulk waiters wait for its answer.
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
		int			kept = 0;
		bool		head_bulk;
		bool		any_small;
		bool		bulk;
		int			i;
		tp_msg		m;
		size_t		n;

		any_small = worker_prune_pending(&head_bulk);
		if (head_bulk && !worker_bulk_in_flight())
			bulk = true;
		else if (any_small)
			bulk = false;
		else
			break;				/* only bulk waiters, and one bulk request out */

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

		for (i = 0; i < ws->npending; i++)
		{
			RingWaiter *w = &ws->pending[i];

			if (!worker_joins(req, bulk, total, w))
			{
				ws->pending[kept++] = *w;
				continue;
			}
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
		ws->npending = kept;
		Assert(req->nwaiters > 0);

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
		req->bulk = bulk;
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
