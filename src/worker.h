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

/* Upper bound of tsoracle.max_inflight: requests pipelined at once. */
#define WORKER_MAX_INFLIGHT_LIMIT	64

/* Longest TCP host name or address, and port, kept (bytes, with NUL). */
#define WORKER_HOST_LEN		256
#define WORKER_PORT_LEN		8

typedef enum WorkerAddressKind
{
	WORKER_ADDR_UNIX,
	WORKER_ADDR_TCP
} WorkerAddressKind;

/* A parsed tsoracle.sidecar_address. */
typedef struct WorkerAddress
{
	WorkerAddressKind kind;
	char		path[sizeof(((struct sockaddr_un *) 0)->sun_path)];	/* unix */
	char		host[WORKER_HOST_LEN];	/* tcp, without brackets */
	char		port[WORKER_PORT_LEN];	/* tcp, decimal */
} WorkerAddress;

/*
 * Parses a sidecar address: "/abs/path" or "unix:/abs/path" (unix socket),
 * "host:port", "tcp:host:port", "[v6addr]:port" (TCP). On failure writes a
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
