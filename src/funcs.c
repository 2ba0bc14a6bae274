/*-------------------------------------------------------------------------
 *
 * funcs.c
 *		The SQL functions of the tsoracle extension that take timestamps from
 *		the sidecar: tso_now(), tso_range(n) and tso_xact_ts().
 *
 * They post a request into the ring (ring.c), sleep on the backend's latch
 * until the worker has written the answer into this backend's slot, and
 * turn error answers into SQL errors. tso_xact_ts() does so once per
 * transaction and keeps the value. tso_now() does so once per call with
 * tsoracle.batching = off; with "statement" (the default), the calls of one
 * statement share grants of growing size (below, "Statement-scoped
 * batching"). The decoding helpers live in decode.c, the monitoring
 * functions in status.c.
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
#include "executor/executor.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "nodes/supportnodes.h"
#include "optimizer/optimizer.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/utility.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "funcs.h"
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

/*
 * Statement-scoped batching (tsoracle.batching = statement).
 *
 * The guarantee a client can observe is per statement: it sees none of a
 * statement's values before the statement ends. So the first tso_now() of
 * a statement asks the sidecar for one timestamp, and when a later call of
 * the same statement finds none left it asks for twice as many as the last
 * request (1, 2, 4, ... up to FUNCS_BATCH_MAX_COUNT, and never more than
 * tsoracle.max_range); the values left when the statement ends are dropped.
 * A loop of n calls in one statement thus costs about log2(n) + n / 65536
 * round trips instead of n, and drops fewer values than it uses.
 *
 * Where a statement begins and ends. A statement is one top-level call
 * into the executor or into utility processing: ExecutorStart, ExecutorRun
 * (one per Execute message of the extended protocol, one per simple query),
 * ExecutorFinish (AFTER triggers), ExecutorEnd, or ProcessUtility (COPY,
 * FETCH, CALL, DO, EXPLAIN ANALYZE ...). funcs_nesting counts the hooks
 * active in this backend; every transition 0 -> 1 and 1 -> 0 is a
 * statement boundary (funcs_statement_boundary), which drops the leftovers
 * and moves funcs_stmt on. Everything a statement runs (functions of any
 * volatility, SPI, PL/pgSQL, triggers, cursors it opens and fetches from,
 * COPY's defaults) runs inside that top-level call, at nesting >= 1. A
 * cursor fetched by a later FETCH or Execute is that later statement's:
 * its ExecutorRun is nested in the FETCH's ProcessUtility or is itself
 * top-level. Each hook decrements in PG_FINALLY, so an error unwinds the
 * count exactly and the boundary at 1 -> 0 still runs. A call at nesting 0
 * (outside any statement: fast-path function calls) is served per call.
 *
 * A transaction that ends inside a statement (COMMIT or ROLLBACK in a
 * procedure or DO block) also drops the leftovers (funcs_xact_callback):
 * another session can see the committed rows while the statement goes on,
 * so later values must be fresh for it. A rolled-back subtransaction does
 * not: its values were handed out and are gone (a gap), and the leftovers
 * are still from a grant made inside the running statement.
 *
 * Each of funcs_stmt and the local transaction id is kept with the
 * leftovers, and a value is handed out only while both still match, so a
 * boundary missed by one mechanism is still caught by the other.
 */
#define FUNCS_BATCH_MAX_COUNT	(UINT32_C(1) << 16)

typedef struct FuncsCache
{
	uint64		next;			/* next value to hand out */
	uint32		left;			/* values left: [next, next + left) */
	uint32		grow;			/* count of the statement's next request */
	uint64		stmt;			/* funcs_stmt when they were granted */
	LocalTransactionId lxid;	/* the transaction they were granted in */
} FuncsCache;

static int	funcs_nesting = 0;
static uint64 funcs_stmt = 0;
static FuncsCache funcs_cache = {0, 0, 1, 0, InvalidLocalTransactionId};

static ExecutorStart_hook_type prev_executor_start = NULL;
static ExecutorRun_hook_type prev_executor_run = NULL;
static ExecutorFinish_hook_type prev_executor_finish = NULL;
static ExecutorEnd_hook_type prev_executor_end = NULL;
static ProcessUtility_hook_type prev_process_utility = NULL;

PG_FUNCTION_INFO_V1(tso_now);
PG_FUNCTION_INFO_V1(tso_range);
PG_FUNCTION_INFO_V1(tso_range_support);
PG_FUNCTION_INFO_V1(tso_xact_ts);

static uint64 funcs_get_grant(uint32 count);
static uint64 funcs_wait_grant(uint64 generation, uint32 count);
static tso_noreturn void funcs_report_timeout(int timeout_ms, TimestampTz started);
static tso_noreturn void funcs_report_status(uint16 status);
static void funcs_xact_callback(XactEvent event, void *arg);
static void funcs_register_xact_callback(void);
static void funcs_statement_boundary(void);
static inline void funcs_enter(void);
static inline void funcs_leave(void);
static void funcs_executor_start(QueryDesc *queryDesc, int eflags);
static void funcs_executor_run(TSO_EXECUTOR_RUN_PARAMS);
static void funcs_executor_finish(QueryDesc *queryDesc);
static void funcs_executor_end(QueryDesc *queryDesc);
static void funcs_process_utility(PlannedStmt *pstmt, const char *queryString,
								  bool readOnlyTree,
								  ProcessUtilityContext context,
								  ParamListInfo params,
								  QueryEnvironment *queryEnv,
								  DestReceiver *dest, QueryCompletion *qc);

/*
 * Installs the hooks that mark statement boundaries; from _PG_init, so in
 * every backend (the library is preloaded).
 */
void
funcs_init(void)
{
	prev_executor_start = ExecutorStart_hook;
	ExecutorStart_hook = funcs_executor_start;
	prev_executor_run = ExecutorRun_hook;
	ExecutorRun_hook = funcs_executor_run;
	prev_executor_finish = ExecutorFinish_hook;
	ExecutorFinish_hook = funcs_executor_finish;
	prev_executor_end = ExecutorEnd_hook;
	ExecutorEnd_hook = funcs_executor_end;
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = funcs_process_utility;
}

/*
 * A statement begins or ends: its leftovers are dropped (a gap), and the
 * next statement starts again with a request of one.
 */
static void
funcs_statement_boundary(void)
{
	funcs_stmt++;
	funcs_cache.left = 0;
	funcs_cache.grow = 1;
}

static inline void
funcs_enter(void)
{
	if (funcs_nesting++ == 0)
		funcs_statement_boundary();
}

static inline void
funcs_leave(void)
{
	Assert(funcs_nesting > 0);
	if (--funcs_nesting == 0)
		funcs_statement_boundary();
}

/*
 * The hooks: each counts itself in funcs_nesting around the next hook (or
 * the standard function), and counts itself out even when it errors out.
 */
static void
funcs_executor_start(QueryDesc *queryDesc, int eflags)
{
	funcs_enter();
	PG_TRY();
	{
		if (prev_executor_start)
			prev_executor_start(queryDesc, eflags);
		else
			standard_ExecutorStart(queryDesc, eflags);
	}
	PG_FINALLY();
	{
		funcs_leave();
	}
	PG_END_TRY();
}

static void
funcs_executor_run(TSO_EXECUTOR_RUN_PARAMS)
{
	funcs_enter();
	PG_TRY();
	{
		if (prev_executor_run)
			prev_executor_run(TSO_EXECUTOR_RUN_ARGS);
		else
			standard_ExecutorRun(TSO_EXECUTOR_RUN_ARGS);
	}
	PG_FINALLY();
	{
		funcs_leave();
	}
	PG_END_TRY();
}

static void
funcs_executor_finish(QueryDesc *queryDesc)
{
	funcs_enter();
	PG_TRY();
	{
		if (prev_executor_finish)
			prev_executor_finish(queryDesc);
		else
			standard_ExecutorFinish(queryDesc);
	}
	PG_FINALLY();
	{
		funcs_leave();
	}
	PG_END_TRY();
}

static void
funcs_executor_end(QueryDesc *queryDesc)
{
	funcs_enter();
	PG_TRY();
	{
		if (prev_executor_end)
			prev_executor_end(queryDesc);
		else
			standard_ExecutorEnd(queryDesc);
	}
	PG_FINALLY();
	{
		funcs_leave();
	}
	PG_END_TRY();
}

static void
funcs_process_utility(PlannedStmt *pstmt, const char *queryString,
					  bool readOnlyTree, ProcessUtilityContext context,
					  ParamListInfo params, QueryEnvironment *queryEnv,
					  DestReceiver *dest, QueryCompletion *qc)
{
	funcs_enter();
	PG_TRY();
	{
		if (prev_process_utility)
			prev_process_utility(pstmt, queryString, readOnlyTree, context,
								 params, queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
									params, queryEnv, dest, qc);
	}
	PG_FINALLY();
	{
		funcs_leave();
	}
	PG_END_TRY();
}

/*
 * Asks the worker for count timestamps and waits for them; returns the
 * first of the grant [first, first + count). Errors out on timeout, on
 * interrupts, and on error answers.
 */
static uint64
funcs_get_grant(uint32 count)
{
	return funcs_wait_grant(ring_post(count), count);
}

/*
 * Waits for the answer to the request of this backend's slot that carries
 * generation, of count timestamps; returns the first of the grant.
 */
static uint64
funcs_wait_grant(uint64 generation, uint32 count)
{
	RingAnswer	answer;
	TimestampTz started;
	TimestampTz deadline;
	int			timeout_ms = tsoracle_timeout;

	memset(&answer, 0, sizeof(answer));
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
 * tso_now() RETURNS bigint: one fresh timestamp; with tsoracle.batching =
 * statement, one that is fresh for the running statement.
 */
Datum
tso_now(PG_FUNCTION_ARGS)
{
	LocalTransactionId lxid;
	uint32		count;
	uint64		first;

	if (tsoracle_batching != TSORACLE_BATCHING_STATEMENT || funcs_nesting == 0)
	{
		/*
		 * The worker's grant for this call was made after the call began
		 * (see worker.c), so it is greater than every timestamp whose call
		 * had completed before; the format keeps it below 2^63.
		 */
		PG_RETURN_INT64((int64) funcs_get_grant(1));
	}

	funcs_register_xact_callback();
	lxid = tso_my_local_xid();
	if (funcs_cache.left > 0 &&
		funcs_cache.stmt == funcs_stmt && funcs_cache.lxid == lxid)
	{
		/*
		 * A leftover of a grant that this same statement asked for (the
		 * boundary at its start emptied the cache, and funcs_stmt has not
		 * moved since), in this same transaction. That grant was made after
		 * the statement began, so the value is above every value of any call
		 * that finished before the statement began; it is handed out before
		 * the statement ends, and every call that begins after that gets a
		 * grant made after this one completed, which is above it (proto.h);
		 * it is above the values this statement handed out before, which
		 * came earlier in the same grant or from earlier grants; and no
		 * other call receives it, as the grant was this backend's alone.
		 */
		uint64		value = funcs_cache.next++;

		funcs_cache.left--;
		PG_RETURN_INT64((int64) value);
	}

	/*
	 * A fresh grant, as for a call without batching, so every argument
	 * above holds for its first value; the rest is kept for the statement.
	 * The cache is empty while the call waits: an error leaves nothing.
	 */
	count = Min(funcs_cache.grow,
				Min(FUNCS_BATCH_MAX_COUNT, (uint32) tsoracle_max_range));
	funcs_cache.left = 0;
	first = funcs_get_grant(count);
	funcs_cache.next = first + 1;
	funcs_cache.left = count - 1;
	funcs_cache.stmt = funcs_stmt;
	funcs_cache.lxid = lxid;
	funcs_cache.grow = Min(count * 2,
						   Min(FUNCS_BATCH_MAX_COUNT, (uint32) tsoracle_max_range));
	PG_RETURN_INT64((int64) first);
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

		/*
		 * Later tso_now() calls of the statement must stay above this
		 * range's values, so they take a fresh grant, not the leftovers of
		 * an earlier one.
		 */
		funcs_cache.left = 0;

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
 * It also drops tso_now()'s leftovers of the running statement, which must
 * not serve a statement's calls after its transaction ended.
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
			/* tso_now()'s leftovers: see "Statement-scoped batching" */
			funcs_cache.left = 0;
			break;
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PARALLEL_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			/* not ended yet: it may still fail and abort */
			break;
	}
}

static void
funcs_register_xact_callback(void)
{
	if (!funcs_xact_callback_registered)
	{
		RegisterXactCallback(funcs_xact_callback, NULL);
		funcs_xact_callback_registered = true;
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

	funcs_register_xact_callback();

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
