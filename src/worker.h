/*-------------------------------------------------------------------------
 *
 * worker.h
 *		The tsoracle background worker: the only client of the sidecar.
 *
 * src/worker.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TSORACLE_WORKER_H
#define TSORACLE_WORKER_H

#include <sys/un.h>

#include "compat.h"
#include "addr.h"

/* Upper bound of tsoracle.max_inflight: requests pipelined at once. */
#define WORKER_MAX_INFLIGHT_LIMIT	64

/* A parsed tsoracle.sidecar_address (common/addr.h, TP_ADDR_CLIENT). */
typedef tp_addr WorkerAddress;

/*
 * Parses a sidecar address: "/abs/path" or "unix:/abs/path" (unix socket),
 * "host:port", "tcp:host:port", "[v6addr]:port" (TCP), with the parser
 * tsoracled and tsoracle-ctl use (common/addr.c). On failure writes a
 * full-sentence reason to err and returns false. Pure: no I/O, no DNS.
 */
extern TSO_PRIVATE bool worker_parse_address(const char *text, WorkerAddress *addr,
								 char *err, size_t errlen);

/*
 * Whom the worker trusts on a unix socket (worker_trust.c): checks that
 * write a full-sentence reason to err and return false on refusal.
 */
extern TSO_PRIVATE bool worker_resolve_user(const char *text, uid_t *uid, bool *set,
								char *err, size_t errlen);
extern TSO_PRIVATE bool worker_check_socket_path(const char *path,
									 const char *sidecar_user,
									 char *err, size_t errlen);
extern TSO_PRIVATE bool worker_check_socket_peer(pgsocket sock, const char *path,
									 const char *sidecar_user,
									 char *err, size_t errlen);

/* Module initialization, from _PG_init: registers the background worker. */
extern TSO_PRIVATE void worker_init(void);

/* The worker's entry point (bgw_function_name). */
extern PGDLLEXPORT void tsoracle_worker_main(Datum main_arg);

#endif							/* TSORACLE_WORKER_H */
