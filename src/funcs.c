/*-------------------------------------------------------------------------
 *
 * funcs.c
 *		The SQL functions of the tsoracle extension that take timestamps from
 *		the sidecar: tso_now(), tso_range(n) and tso_xact_ts().
 *
 * They post a request into the ring (ring.c), sleep on the backend's latch
 * until the worker has written the answer into this backend's slot, and
 * turn error answers into SQL errors. tso_xact_ts() does so once per
 * transaction and keeps the value. The decoding helpers live in decode.c,
 * the monitoring functions in status.c.
 *
 * SQLSTATEs. Class 08 (connection exception) is used for every failure to
 * obtain timestamps from the sidecar, so that clients can retry on one
 * class:
 *	08006 connection_failure	no answer within tsoracle.timeout (worker not
 *								running, not connected, or connected and the
 *								answer late), no leader or quorum
 *								(TP_ERR_UNAVAILABLE), the grant could not be
 *								made durable (TP_ERR_TIMEOUT), sidecar
 *								stopping, sidecar internal error. 08006 and
 *								not 08001 also when the worker cannot
 *								connect: the backend itself never connects,
 *								it finds the link to the oracle broken.
 *	08P01 protocol_violation	the sidecar rejected the request as malformed
 *								(TP_ERR_BAD_REQUEST, _VERSION, _PROTOCOL) or
 *								answered an unknown status.
 *	54000 program_limit_exceeded	TP_ERR_EXHAUSTED: the 46-bit physical part
 *								of the format has run out. The request is
 *								valid; a limit of the system is reached (as
 *								for transaction ID wraparound), which is
 *								what class 54 means, whereas 22003 would
 *								blame a value the caller supplied.
 *	22023 invalid_parameter_value	tso_range() count outside
 *								[1, tsoracle.max_range] (at most
 *								TP_MAX_COUNT).
 *
 * src/funcs.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "nodes/supportnodes.h"
#include "optimizer/optimizer.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "proto.h"
#include "ring.h"
#include "tsoracle.h"

/* What a tso_range() call keeps between rows. */
typedef struct FuncsRange
{
	uint64		first;
	uint32		count;
} FuncsRange;

/*
 * tso_xact_ts(): this backend's transaction timestamp. Valid while
 * funcs_xact_ts_valid, and only for the top-level transaction whose local id
 * is funcs_xact_ts_lxid.
 */
static bool funcs_xact_ts_valid = false;
static uint64 funcs_xact_ts;
static LocalTransactionId funcs_xact_ts_lxid = InvalidLocalTransactionId;
static bool funcs_xact_callback_registered = false;

PG_FUNCTION_INFO_V1(tso_now);
PG_FUNCTION_INFO_V1(tso_range);
PG_FUNCTION_INFO_V1(tso_range_support);
PG_FUNCTION_INFO_V1(tso_xact_ts);

static uint64 funcs_get_grant(uint32 count);
static void funcs_report_timeout(int timeout_ms, TimestampTz started) pg_attribute_noreturn();
static void funcs_report_status(uint16 status) pg_attribute_noreturn();
static void funcs_xact_callback(XactEvent event, void *arg);

/*
 * Asks the worker for count timestamps and waits for them; returns the
 * first of the grant [first, first + count). Errors out on timeout, on
 * interrupts, and on error answers.
 */
static uint64
funcs_get_grant(uint32 count)
{
	uint64		generation;
	RingAnswer	answer;
	TimestampTz started;
	TimestampTz deadline;
	int			timeout_ms = tsoracle_timeout;

	memset(&answer, 0, sizeof(answer));
	generation = ring_post(count);
	started = GetCurrentTimestamp();
	deadline = TimestampTzPlusMilliseconds(started, timeout_ms);

	/*
	 * Any error from here on (our timeout, statement_timeout, cancel) must
	 * move the slot to a new generation before it propagates, so that a
	 * late answer is dropped. FATAL (pg_terminate_backend) does not unwind
	 * through here; ring.c's before_shmem_exit callback covers it.
	 */
	PG_TRY();
	{
		for (;;)
		{
			long		remaining;

			/* The latch is reset before this check, so no wakeup is lost. */
			if (ring_take_answer(generation, &answer))
				break;

			remaining = TimestampDifferenceMilliseconds(GetCurrentTimestamp(),
														deadline);
			if (remaining <= 0)
				funcs_report_timeout(timeout_ms, started);

			(void) WaitLatch(MyLatch,
							 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 remaining,
							 tso_wait_event_info(TSO_WAIT_TIMESTAMP));
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		}
	}
	PG_CATCH();
	{
		ring_abandon();
		PG_RE_THROW();
	}
	PG_END_TRY();

	if (answer.status != TP_OK)
		funcs_report_status(answer.status);
	if (answer.count != count)
		elog(ERROR, "tsoracle answer holds %u timestamps instead of %u",
			 answer.count, count);
	return answer.first;
}

/*
 * No answer within tsoracle.timeout: say why, from the worker's status.
 * started is when the call posted its request.
 */
static void
funcs_report_timeout(int timeout_ms, TimestampTz started)
{
	RingWorkerStatus st;

	ring_status_snapshot(&st);

	if (st.pid == 0)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not get a timestamp from the tsoracle sidecar"),
				 errdetail("The tsoracle background worker is not running."),
				 errhint("Check the server log for why \"tsoracle worker\" exited; the postmaster restarts it after a second if a max_worker_processes slot is free.")));

	if (!st.connected)
	{
		if (st.last_error[0] == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("could not get a timestamp from the tsoracle sidecar"),
					 errdetail("The tsoracle worker has not connected to the sidecar at \"%s\" within tsoracle.timeout (%d ms).",
							   st.address, timeout_ms),
					 errhint("Check that tsoracled is running and that tsoracle.sidecar_address names its client socket.")));
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not get a timestamp from the tsoracle sidecar"),
				 errdetail("The tsoracle worker is not connected to the sidecar at \"%s\"; its last error, at %s, was: %s.",
						   st.address, timestamptz_to_str(st.last_error_at),
						   st.last_error),
				 errhint("Check that tsoracled is running and that tsoracle.sidecar_address names its client socket; the worker keeps reconnecting.")));
	}

	/*
	 * The worker sends a call again when the sidecar answers that it found
	 * no leader or quorum in time; the last such answer during this call
	 * says why it never got a timestamp.
	 */
	if (st.last_error[0] != '\0' && st.last_error_at >= started)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not get a timestamp from the tsoracle sidecar"),
				 errdetail("No answer arrived within tsoracle.timeout (%d ms); the last error, at %s, was: %s.",
						   timeout_ms, timestamptz_to_str(st.last_error_at), st.last_error),
				 errhint("A majority of the tsoracled nodes must be running and reachable from each other; check their logs, or raise tsoracle.timeout.")));
	ereport(ERROR,
			(errcode(ERRCODE_CONNECTION_FAILURE),
			 errmsg("could not get a timestamp from the tsoracle sidecar"),
			 errdetail("The tsoracle worker is connected to the sidecar at \"%s\", but no answer arrived within tsoracle.timeout (%d ms).",
					   st.address, timeout_ms),
			 errhint("The sidecar may be electing a leader or unable to reach a quorum of its peers; check its log, or raise tsoracle.timeout.")));
}

/* The sidecar answered with an error status. */
static void
funcs_report_status(uint16 status)
{
	RingWorkerStatus st;
	const char *what = tp_status_str(status);

	ring_status_snapshot(&st);

	switch (status)
	{
		case RING_REFUSED_BACKWARD:
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("tsoracle refused a timestamp that was not above an earlier one"),
					 errdetail("The sidecar at \"%s\" granted timestamps not above some granted before; this server's tsoracle worker refused them rather than risk handing out a value out of order (see the WARNING in the server log).",
							   st.address),
					 errhint("The sidecars broke their ordering guarantee: keep their logs and report it. A retry asks for a fresh grant.")));
			break;
		case TP_ERR_UNAVAILABLE:
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("tsoracle has no leader"),
					 errdetail("The sidecar at \"%s\" answered: %s.",
							   st.address, what),
					 errhint("A majority of the tsoracled nodes must be running and reachable from each other. Retry once a leader has been elected.")));
			break;
		case TP_ERR_TIMEOUT:
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("tsoracle leader could not make the timestamps durable in time"),
					 errdetail("The sidecar at \"%s\" answered: %s.",
							   st.address, what),
					 errhint("Check the disks and the network of the tsoracled nodes, then retry.")));
			break;
		case TP_ERR_SHUTTING_DOWN:
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("tsoracle sidecar is shutting down"),
					 errdetail("The sidecar at \"%s\" answered: %s.",
							   st.address, what),
					 errhint("Retry once the sidecar has been restarted.")));
			break;
		case TP_ERR_INTERNAL:
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("tsoracle sidecar failed to grant timestamps"),
					 errdetail("The sidecar at \"%s\" answered: %s.",
							   st.address, what),
					 errhint("Check the sidecar's log and the PostgreSQL server log.")));
			break;
		case TP_ERR_EXHAUSTED:
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("tsoracle timestamp range is exhausted"),
					 errdetail("The sidecar at \"%s\" answered: %s.",
							   st.address, what),
					 errhint("The 46-bit millisecond part of the timestamp format has run out; no further timestamps can be issued.")));
			break;
		default:
			ereport(ERROR,
					(errcode(ERRCODE_PROTOCOL_VIOLATION),
					 errmsg("tsoracle sidecar rejected the request"),
					 errdetail("The sidecar at \"%s\" answered with status %u: %s.",
							   st.address, (unsigned) status, what),
					 errhint("The extension and tsoracled may be of incompatible versions.")));
			break;
	}
	pg_unreachable();
}

/*
 * tso_now() RETURNS bigint: one fresh timestamp.
 */
Datum
tso_now(PG_FUNCTION_ARGS)
{
	/*
	 * The worker's grant for this call was made after the call began (see
	 * worker.c), so it is greater than every timestamp whose call had
	 * completed before; the format keeps it below 2^63.
	 */
	PG_RETURN_INT64((int64) funcs_get_grant(1));
}

/*
 * tso_range(n integer) RETURNS SETOF bigint: n fresh timestamps, ascending
 * and contiguous, from one request of count n.
 */
Datum
tso_range(PG_FUNCTION_ARGS)
{
	FuncCallContext *funcctx;
	FuncsRange *range;

	if (SRF_IS_FIRSTCALL())
	{
		int32		n = PG_GETARG_INT32(0);

		/*
		 * tsoracle.max_range <= TP_MAX_COUNT (its bounds), so every count
		 * accepted here is one the protocol allows. The message names the
		 * limit, the hint the setting that sets it.
		 */
		if (n < 1 || n > tsoracle_max_range)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("tso_range count must be between 1 and %d",
							tsoracle_max_range),
					 errdetail("The count requested was %d.", n),
					 n < 1 ? 0 :
					 (uint32) tsoracle_max_range < TP_MAX_COUNT ?
					 errhint("The upper limit is tsoracle.max_range; a superuser may raise it up to %u, or take the timestamps in several calls.",
							 (unsigned) TP_MAX_COUNT) :
					 errhint("tsoracle.max_range is at the protocol's maximum; take the timestamps in several calls.")));

		funcctx = SRF_FIRSTCALL_INIT();
		range = MemoryContextAlloc(funcctx->multi_call_memory_ctx,
								   sizeof(FuncsRange));
		range->count = (uint32) n;
		range->first = funcs_get_grant(range->count);
		funcctx->user_fctx = range;
		funcctx->max_calls = range->count;
	}

	funcctx = SRF_PERCALL_SETUP();
	range = (FuncsRange *) funcctx->user_fctx;
	if (funcctx->call_cntr < funcctx->max_calls)
	{
		/*
		 * Every value of the grant [first, first + count) is fresh for this
		 * call (the grant was made after the call began), and the worker
		 * checked first + count - 1 <= PG_INT64_MAX, so no value overflows.
		 * Computed before SRF_RETURN_NEXT, which increments call_cntr before
		 * it evaluates its result argument.
		 */
		int64		value = (int64) (range->first + funcctx->call_cntr);

		SRF_RETURN_NEXT(funcctx, Int64GetDatum(value));
	}
	SRF_RETURN_DONE(funcctx);
}

/*
 * Planner support for tso_range: with a constant count, the row estimate is
 * that count.
 */
Datum
tso_range_support(PG_FUNCTION_ARGS)
{
	Node	   *rawreq = (Node *) PG_GETARG_POINTER(0);
	Node	   *ret = NULL;

	if (IsA(rawreq, SupportRequestRows))
	{
		SupportRequestRows *req = (SupportRequestRows *) rawreq;

		if (is_funcclause(req->node))
		{
			List	   *args = ((FuncExpr *) req->node)->args;
			Node	   *arg = estimate_expression_value(req->root,
														linitial(args));

			if (IsA(arg, Const) && !((Const *) arg)->constisnull)
			{
				int32		n = DatumGetInt32(((Const *) arg)->constvalue);

				if (n >= 1 && (uint32) n <= TP_MAX_COUNT)
				{
					req->rows = (double) n;
					ret = (Node *) req;
				}
			}
		}
	}

	PG_RETURN_POINTER(ret);
}

/*
 * Forgets the transaction timestamp when the top-level transaction ends, in
 * whatever way: commit, abort, PREPARE TRANSACTION (after which the session
 * goes on with a new transaction), and their parallel-worker forms.
 * Subtransaction events are not seen here, on purpose: a subtransaction,
 * committed or rolled back, is part of the same transaction, like now().
 */
static void
funcs_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			funcs_xact_ts_valid = false;
			break;
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PARALLEL_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			/* not ended yet: it may still fail and abort */
			break;
	}
}

/*
 * tso_xact_ts() RETURNS bigint: one timestamp per transaction. The first
 * call in a top-level transaction takes a fresh timestamp (as tso_now());
 * every later call in that transaction, in subtransactions too and after a
 * rolled-back one, returns the same value; the next transaction takes a new
 * one.
 *
 * The value is kept per backend, keyed by the top-level transaction in two
 * independent ways, so that neither alone has to be perfect:
 *	- the transaction callback forgets it at every end of transaction; the
 *	  local transaction id alone could repeat after 2^32 transactions of
 *	  this backend;
 *	- it is kept with the local transaction id (MyProc's lxid), which every
 *	  top-level transaction gets, read-only ones included (they have no
 *	  TransactionId, so GetTopTransactionIdIfAny() could not tell two of
 *	  them apart), and which subtransactions do not change; a value from
 *	  another transaction is never returned even if an end of transaction
 *	  had escaped the callback.
 * A parallel worker would have its own cache (and transaction id): the
 * function is PARALLEL RESTRICTED, so it runs in the leader only.
 */
Datum
tso_xact_ts(PG_FUNCTION_ARGS)
{
	LocalTransactionId lxid = tso_my_local_xid();

	if (!funcs_xact_callback_registered)
	{
		RegisterXactCallback(funcs_xact_callback, NULL);
		funcs_xact_callback_registered = true;
	}

	if (!funcs_xact_ts_valid || funcs_xact_ts_lxid != lxid)
	{
		/*
		 * Fresh for this call, hence for the transaction's first use of it
		 * (see tso_now()). Set only once the grant has arrived: a call that
		 * fails leaves nothing behind, and the next call asks again.
		 */
		funcs_xact_ts = funcs_get_grant(1);
		funcs_xact_ts_lxid = lxid;
		funcs_xact_ts_valid = true;
	}
	PG_RETURN_INT64((int64) funcs_xact_ts);
}
