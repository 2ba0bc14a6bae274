/*-------------------------------------------------------------------------
 *
 * compat.h
 *		Every PostgreSQL-version difference the tsoracle extension depends on.
 *
 * The rest of the extension is written against the names defined here, so
 * supporting a new major version means editing this file only. Written and
 * tested against PostgreSQL 15; the 16 and 17 branches follow the release
 * notes of those versions.
 *
 * src/compat.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TSORACLE_COMPAT_H
#define TSORACLE_COMPAT_H

#include "miscadmin.h"
#include "storage/proc.h"
#include "storage/latch.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/wait_event.h"

#if PG_VERSION_NUM < 150000
#error "tsoracle needs PostgreSQL 15 or later (shmem_request_hook, MarkGUCPrefixReserved)"
#endif

/*
 * This process's proc number: the index of its PGPROC, fixed for the life
 * of the process and reused by a later process once it exits. Regular
 * backends and background workers get numbers below MaxBackends.
 * PostgreSQL 17 names it MyProcNumber; 15 and 16 keep it in MyProc.
 */
#if PG_VERSION_NUM >= 170000
#define tso_my_proc_number()	((int) MyProcNumber)
#else
#define tso_my_proc_number()	(MyProc->pgprocno)
#endif

/*
 * The local id of this backend's current top-level transaction: assigned to
 * every transaction, read-only ones included, and unchanged by
 * subtransactions. 17 moved it into MyProc->vxid.
 */
#if PG_VERSION_NUM >= 170000
#define tso_my_local_xid()		(MyProc->vxid.lxid)
#else
#define tso_my_local_xid()		(MyProc->lxid)
#endif

/*
 * Reserve the "tsoracle." GUC prefix so that misspelt settings are reported.
 * 15 renamed EmitWarningsOnPlaceholders to MarkGUCPrefixReserved.
 */
#define tso_mark_guc_prefix_reserved(prefix)	MarkGUCPrefixReserved(prefix)

/*
 * Wait events, as pg_stat_activity shows them. Before 17 an extension can
 * only report the generic PG_WAIT_EXTENSION (wait_event_type "Extension",
 * wait_event "Extension"); 17 lets it register named events (wait_event
 * "TsoracleTimestamp" and so on, still of type "Extension"), which are
 * looked up once per process and cached.
 */
typedef enum TsoWaitEvent
{
	TSO_WAIT_WORKER_MAIN,		/* worker: idle or waiting on the sidecar */
	TSO_WAIT_WORKER_RECONNECT,	/* worker: backing off before reconnecting */
	TSO_WAIT_TIMESTAMP,			/* backend: waiting for its timestamps */
	TSO_WAIT_EVENT_COUNT
} TsoWaitEvent;

#if PG_VERSION_NUM >= 170000
static inline uint32
tso_wait_event_info(TsoWaitEvent ev)
{
	static const char *const names[TSO_WAIT_EVENT_COUNT] = {
		"TsoracleWorkerMain",
		"TsoracleWorkerReconnect",
		"TsoracleTimestamp",
	};
	static uint32 cached[TSO_WAIT_EVENT_COUNT];

	if (cached[ev] == 0)
		cached[ev] = WaitEventExtensionNew(names[ev]);
	return cached[ev];
}
#else
static inline uint32
tso_wait_event_info(TsoWaitEvent ev)
{
	(void) ev;
	return PG_WAIT_EXTENSION;
}
#endif

/*
 * A WaitEventSet that lives as long as the process. 17 takes a resource
 * owner (NULL: untracked, in TopMemoryContext); 15 and 16 a memory context.
 */
#if PG_VERSION_NUM >= 170000
#define tso_create_wait_event_set(nevents) \
	CreateWaitEventSet(NULL, (nevents))
#else
#define tso_create_wait_event_set(nevents) \
	CreateWaitEventSet(TopMemoryContext, (nevents))
#endif

/*
 * The executor's ExecutorRun hook: 18 dropped its execute_once argument.
 * TSO_EXECUTOR_RUN_PARAMS declares the hook's parameters and
 * TSO_EXECUTOR_RUN_ARGS passes them on, in either version.
 */
#if PG_VERSION_NUM >= 180000
#define TSO_EXECUTOR_RUN_PARAMS \
	QueryDesc *queryDesc, ScanDirection direction, uint64 count
#define TSO_EXECUTOR_RUN_ARGS	queryDesc, direction, count
#else
#define TSO_EXECUTOR_RUN_PARAMS \
	QueryDesc *queryDesc, ScanDirection direction, uint64 count, \
	bool execute_once
#define TSO_EXECUTOR_RUN_ARGS	queryDesc, direction, count, execute_once
#endif

/*
 * A function that never returns (it reports an ERROR). 18 replaced
 * pg_attribute_noreturn(), written after the declarator, by pg_noreturn
 * (C11 _Noreturn), written before it; tso_noreturn goes before it in every
 * version.
 */
#if PG_VERSION_NUM >= 180000
#define tso_noreturn pg_noreturn
#elif defined(__GNUC__) || defined(__clang__)
#define tso_noreturn __attribute__((noreturn))
#else
#define tso_noreturn
#endif

/*
 * For the extension's own cross-file functions and variables. PostgreSQL 15
 * builds a loadable module with every global symbol exported, so a
 * generically named one (ring_post, ws) could be bound to another preloaded
 * library's symbol of the same name, or capture it; 16 builds modules with
 * -fvisibility=hidden and exports only what PGDLLEXPORT marks. The entry
 * points the server looks up by name (_PG_init, the SQL functions,
 * tsoracle_worker_main) must not carry this.
 */
#if defined(__GNUC__) || defined(__clang__)
#define TSO_PRIVATE __attribute__((visibility("hidden")))
#else
#define TSO_PRIVATE
#endif

#endif							/* TSORACLE_COMPAT_H */
