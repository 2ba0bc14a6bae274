/*-------------------------------------------------------------------------
 *
 * ring.h
 *		Shared memory between backends and the tsoracle worker: the request
 *		queue, one answer slot per backend, and the worker's status.
 *
 * See ring.c for the protocol: who writes which field, and why a backend
 * that gives up can never receive an answer meant for an earlier call.
 *
 * src/ring.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TSORACLE_RING_H
#define TSORACLE_RING_H

#include "storage/latch.h"
#include "utils/timestamp.h"

#include "compat.h"

#include "proto.h"

/*
 * Bytes kept of the sidecar address and of the worker's last error (which
 * may quote a path, a user and the setting to change: worker_trust.c).
 */
#define RING_ADDRESS_LEN	256
#define RING_ERROR_LEN		512

/* One backend's request, as the worker holds it between ring and sidecar. */
typedef struct RingWaiter
{
	int			slot;			/* proc number of the waiting backend */
	uint64		generation;		/* its slot's generation when it posted */
	uint32		count;			/* how many timestamps it asked for */
} RingWaiter;

/*
 * An answer status that is the worker's own, not the sidecar's: it refused
 * a grant that was not above one it had received before (worker.c,
 * tsoracle.refuse_backward_grants). Outside the range of TP_ERR_* codes.
 */
#define RING_REFUSED_BACKWARD	0xFF01

/* The answer to one request. */
typedef struct RingAnswer
{
	uint16		status;			/* TP_OK, a TP_ERR_* code (proto.h) or
								 * RING_REFUSED_BACKWARD */
	uint64		first;			/* TP_OK: the grant is [first, first + count) */
	uint32		count;
} RingAnswer;

/* The worker's status, for error messages and the status functions. */
typedef struct RingWorkerStatus
{
	int			pid;			/* 0: no worker is running */
	bool		connected;		/* handshake with the sidecar done */
	TimestampTz connected_since;	/* 0: never connected */
	char		address[RING_ADDRESS_LEN];	/* sidecar address in use */
	char		last_error[RING_ERROR_LEN]; /* "": none yet */
	TimestampTz last_error_at;	/* 0: none yet */
	uint64		requests;		/* backend requests taken from the queue */
	uint64		batches;		/* TP_TS_REQ frames sent */
	uint64		batched;		/* backend requests in those frames */
	uint64		timestamps;		/* timestamps granted by the sidecar */
	uint64		errors;			/* connection failures and error answers */
	int			in_flight;		/* TP_TS_REQ sent and not yet answered */

	/*
	 * The sidecar's last answer to TP_STATUS_REQ and when it arrived; kept
	 * across reconnections to the same address (its age tells how stale it
	 * is), forgotten when the address changes.
	 */
	bool		sidecar_valid;	/* false: no answer yet from this address */
	tp_status	sidecar;
	TimestampTz sidecar_at;
} RingWorkerStatus;

/* Module initialization, from _PG_init: installs the shared memory hooks. */
extern TSO_PRIVATE void ring_init(void);

/* Number of answer slots (and queue entries): MaxBackends. */
extern TSO_PRIVATE int	ring_capacity(void);

/* Backend side. */
extern TSO_PRIVATE uint64 ring_post(uint32 count);
extern TSO_PRIVATE bool ring_take_answer(uint64 generation, RingAnswer *answer);
extern TSO_PRIVATE void ring_abandon(void);

/* Worker side. */
extern TSO_PRIVATE void ring_worker_attach(Latch *latch);
extern TSO_PRIVATE int	ring_drain(RingWaiter *out);
extern TSO_PRIVATE int	ring_adopt_taken(RingWaiter *out);
extern TSO_PRIVATE bool ring_still_wanted(const RingWaiter *waiter);
extern TSO_PRIVATE bool ring_deliver(const RingWaiter *waiter, uint16 status,
						 uint64 first);

/* The worker's status. */
extern TSO_PRIVATE void ring_status_connected(bool connected, const char *address);
extern TSO_PRIVATE void ring_status_error(const char *message);
extern TSO_PRIVATE void ring_status_count(uint64 requests, uint64 timestamps,
							  uint64 errors);
extern TSO_PRIVATE void ring_status_sent(uint64 batches, uint64 batched);
extern TSO_PRIVATE void ring_status_sidecar(const tp_status *st);
extern TSO_PRIVATE void ring_status_in_flight(int in_flight);
extern TSO_PRIVATE void ring_status_snapshot(RingWorkerStatus *out);

#endif							/* TSORACLE_RING_H */
