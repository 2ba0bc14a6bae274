/*-------------------------------------------------------------------------
 *
 * status.c
 *		The monitoring functions of the tsoracle extension: tso_status() and
 *		the 1.0 function tso_worker_status().
 *
 * Both read the worker's status from shared memory (ring.c) and never talk
 * to the sidecar themselves: the sidecar's role, leader, term and
 * high-water mark are the worker's last answer to TP_STATUS_REQ (it asks
 * about once a second while connected, worker.c), reported with the age of
 * that answer. Who may call them is decided in the extension script
 * (REVOKE from PUBLIC, GRANT to pg_monitor), not here, so that an
 * administrator can GRANT them further with ordinary SQL.
 *
 * src/status.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "decode.h"
#include "proto.h"
#include "ring.h"

/* Columns of tso_status() and of tso_worker_status(). */
#define STATUS_COLUMNS			20
#define STATUS_WORKER_COLUMNS	11
/* Columns of tso_status() that come from the sidecar's answer. */
#define STATUS_SIDECAR_COLUMNS	8

/* Builds one row: values and nulls of a tuple under construction. */
typedef struct StatusRow
{
	Datum	   *values;
	bool	   *nulls;
	int			ncolumns;
	int			next;
} StatusRow;

PG_FUNCTION_INFO_V1(tso_status);
PG_FUNCTION_INFO_V1(tso_worker_status);

static TupleDesc status_tupdesc(FunctionCallInfo fcinfo, int ncolumns);
static void status_put(StatusRow *row, Datum value);
static void status_put_null(StatusRow *row);
static void status_put_time(StatusRow *row, TimestampTz t);
static void status_put_text(StatusRow *row, const char *s);
static void status_put_worker(StatusRow *row, const RingWorkerStatus *st);
static void status_put_sidecar(StatusRow *row, const RingWorkerStatus *st);

/* The result row type of the function being called, checked for width. */
static TupleDesc
status_tupdesc(FunctionCallInfo fcinfo, int ncolumns)
{
	TupleDesc	tupdesc;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (tupdesc->natts != ncolumns)
		elog(ERROR, "function declares %d result columns instead of %d",
			 tupdesc->natts, ncolumns);
	return tupdesc;
}

static void
status_put(StatusRow *row, Datum value)
{
	Assert(row->next < row->ncolumns);
	row->values[row->next] = value;
	row->nulls[row->next] = false;
	row->next++;
}

static void
status_put_null(StatusRow *row)
{
	Assert(row->next < row->ncolumns);
	row->values[row->next] = (Datum) 0;
	row->nulls[row->next] = true;
	row->next++;
}

/* A time, or NULL for 0 ("never"). */
static void
status_put_time(StatusRow *row, TimestampTz t)
{
	if (t != 0)
		status_put(row, TimestampTzGetDatum(t));
	else
		status_put_null(row);
}

/* A text, or NULL for "" ("none"). */
static void
status_put_text(StatusRow *row, const char *s)
{
	if (s[0] != '\0')
		status_put(row, CStringGetTextDatum(s));
	else
		status_put_null(row);
}

/* pid, address, connected, connected_since: the worker and its link. */
static void
status_put_worker(StatusRow *row, const RingWorkerStatus *st)
{
	if (st->pid != 0)
		status_put(row, Int32GetDatum(st->pid));
	else
		status_put_null(row);
	status_put(row, CStringGetTextDatum(st->address));
	status_put(row, BoolGetDatum(st->connected));
	status_put_time(row, st->connected_since);
}

/*
 * The sidecar's last answer: node, role, serving, leader, term, high-water
 * mark, when it arrived and its age; all NULL before the first answer from
 * the current address.
 */
static void
status_put_sidecar(StatusRow *row, const RingWorkerStatus *st)
{
	const tp_status *sc = &st->sidecar;
	TimestampTz high_water;
	Interval   *age;
	int			first PG_USED_FOR_ASSERTS_ONLY = row->next;
	int			i;

	if (!st->sidecar_valid)
	{
		for (i = 0; i < STATUS_SIDECAR_COLUMNS; i++)
			status_put_null(row);
		return;
	}

	status_put(row, Int64GetDatum((int64) sc->node_id));
	status_put(row, CStringGetTextDatum(tp_role_str(sc->role)));
	status_put(row, BoolGetDatum((sc->flags & TP_FLAG_SERVING) != 0));
	if (sc->leader_id != 0)
		status_put(row, Int64GetDatum((int64) sc->leader_id));
	else
		status_put_null(row);
	/* the sidecar's counters are unsigned; a bigint holds any real value */
	status_put(row, Int64GetDatum((int64) Min(sc->term, (uint64) PG_INT64_MAX)));
	if (sc->high_water_ms != 0 && decode_unix_ms(sc->high_water_ms, &high_water))
		status_put(row, TimestampTzGetDatum(high_water));
	else
		status_put_null(row);
	status_put(row, TimestampTzGetDatum(st->sidecar_at));

	/* clock time, not the transaction's: the answer ages while it runs */
	age = palloc0(sizeof(Interval));
	age->time = Max(GetCurrentTimestamp() - st->sidecar_at, 0);
	status_put(row, IntervalPGetDatum(age));
	Assert(row->next - first == STATUS_SIDECAR_COLUMNS);
}

/*
 * tso_status() RETURNS SETOF record: one row, the worker's view of the
 * world. See the extension script for the columns.
 */
Datum
tso_status(PG_FUNCTION_ARGS)
{
	FuncCallContext *funcctx;

	if (SRF_IS_FIRSTCALL())
	{
		MemoryContext oldcxt;

		funcctx = SRF_FIRSTCALL_INIT();
		oldcxt = MemoryContextSwitchTo(funcctx->multi_call_memory_ctx);
		funcctx->tuple_desc = BlessTupleDesc(status_tupdesc(fcinfo,
															STATUS_COLUMNS));
		MemoryContextSwitchTo(oldcxt);
		funcctx->max_calls = 1;
	}

	funcctx = SRF_PERCALL_SETUP();
	if (funcctx->call_cntr < funcctx->max_calls)
	{
		RingWorkerStatus st;
		Datum		values[STATUS_COLUMNS];
		bool		nulls[STATUS_COLUMNS];
		StatusRow	row = {values, nulls, STATUS_COLUMNS, 0};
		HeapTuple	tuple;

		ring_status_snapshot(&st);

		status_put_worker(&row, &st);
		status_put_sidecar(&row, &st);
		status_put(&row, Int64GetDatum((int64) st.requests));
		status_put(&row, Int64GetDatum((int64) st.batches));
		/* backend calls coalesced into one request to the sidecar */
		if (st.batches > 0)
			status_put(&row, Float8GetDatum((double) st.batched /
											(double) st.batches));
		else
			status_put_null(&row);
		status_put(&row, Int64GetDatum((int64) st.timestamps));
		status_put(&row, Int64GetDatum((int64) st.errors));
		status_put_text(&row, st.last_error);
		status_put_time(&row, st.last_error_at);
		status_put(&row, Int32GetDatum(st.in_flight));
		Assert(row.next == STATUS_COLUMNS);

		tuple = heap_form_tuple(funcctx->tuple_desc, values, nulls);
		SRF_RETURN_NEXT(funcctx, HeapTupleGetDatum(tuple));
	}
	SRF_RETURN_DONE(funcctx);
}

/*
 * tso_worker_status() RETURNS record: the 1.0 function, kept with its
 * columns so that queries and views written against 1.0 keep working;
 * tso_status() supersedes it.
 */
Datum
tso_worker_status(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc = status_tupdesc(fcinfo, STATUS_WORKER_COLUMNS);
	Datum		values[STATUS_WORKER_COLUMNS];
	bool		nulls[STATUS_WORKER_COLUMNS];
	StatusRow	row = {values, nulls, STATUS_WORKER_COLUMNS, 0};
	RingWorkerStatus st;

	ring_status_snapshot(&st);

	/* 1.0's order: pid, connected, address, connected_since, ... */
	if (st.pid != 0)
		status_put(&row, Int32GetDatum(st.pid));
	else
		status_put_null(&row);
	status_put(&row, BoolGetDatum(st.connected));
	status_put(&row, CStringGetTextDatum(st.address));
	status_put_time(&row, st.connected_since);
	status_put_text(&row, st.last_error);
	status_put_time(&row, st.last_error_at);
	status_put(&row, Int64GetDatum((int64) st.requests));
	status_put(&row, Int64GetDatum((int64) st.batches));
	status_put(&row, Int64GetDatum((int64) st.timestamps));
	status_put(&row, Int64GetDatum((int64) st.errors));
	status_put(&row, Int32GetDatum(st.in_flight));
	Assert(row.next == STATUS_WORKER_COLUMNS);

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
