/*-------------------------------------------------------------------------
 *
 * worker_int.h
 *		State of the tsoracle worker shared by worker.c and worker_conn.c;
 *		private to the worker's files, not for the rest of the extension.
 *
 * src/worker_int.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TSORACLE_WORKER_INT_H
#define TSORACLE_WORKER_INT_H

#include <netdb.h>
#include <sys/socket.h>

#include "storage/latch.h"
#include "utils/timestamp.h"

#include "compat.h"

#include "backoff.h"
#include "proto.h"
#include "ring.h"
#include "worker.h"

/* Reconnection backoff: first delay, doubled per failure up to the cap, ms. */
#define WORKER_BACKOFF_MIN_MS		10
#define WORKER_BACKOFF_MAX_MS		1000

/* Connecting plus the handshake must finish within this, ms. */
#define WORKER_HANDSHAKE_TIMEOUT_MS 5000

/* Output buffer, bytes: a TP_HELLO or a few dozen TP_TS_REQ frames. */
#define WORKER_OUTBUF_SIZE			2048

/*
 * TLS (worker_tls.c): ciphertext read from the socket at once, and the
 * ciphertext taken from the session for one send(); bytes. A TLS record
 * holds at most 16 KiB of plaintext; the worker's writes are far smaller.
 */
#define WORKER_TLS_READ_SIZE		16384
#define WORKER_TLS_OUT_SIZE			4096

/* Resolved TCP addresses tried in turn for one connection attempt. */
#define WORKER_MAX_TARGETS			8

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

/*
 * Fair service (worker.c, worker_send_batches). A waiter asking for more
 * than WORKER_SMALL_MAX_COUNT timestamps is "bulk": bulk waiters travel in
 * requests of their own, at most one such request in flight, each holding
 * at most WORKER_BULK_BATCH_COUNT timestamps (or one waiter, if larger).
 * The oracle grants 2^18 timestamps per ms: 2^16 is a quarter of a ms of
 * its capacity, 2^20 is 4 ms (tsoracle.max_range's default).
 */
#define WORKER_SMALL_MAX_COUNT		(UINT32_C(1) << 16)
#define WORKER_BULK_BATCH_COUNT		(UINT32_C(1) << 20)

/* One TP_TS_REQ in flight, and the waiters it serves, in ring order. */
typedef struct WorkerRequest
{
	bool		in_use;
	bool		bulk;			/* carries bulk waiters (and only those) */
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
	char		sidecar_user[NAMEDATALEN];	/* tsoracle.sidecar_user in use */
	WorkerAddress addr;
	WorkerTarget targets[WORKER_MAX_TARGETS];
	int			ntargets;
	int			target;			/* index being tried */
	TimestampTz deadline;		/* CONNECTING/HANDSHAKE: give up at */
	TimestampTz retry_at;		/* DISCONNECTED: next attempt at */
	tp_backoff	backoff;		/* common/backoff.h */
	char		last_logged[RING_ERROR_LEN];	/* repeats are not logged */
	TimestampTz ready_at;		/* when the handshake completed */
	bool		served;			/* a valid response arrived since then */
	bool		flapping;		/* the last connection flapped */

	/* I/O buffers */
	tp_reader  *reader;
	uint8		outbuf[WORKER_OUTBUF_SIZE];	/* plaintext frames */
	size_t		outlen;

	/*
	 * TLS to a TCP address (worker_tls.c). tls_ctx: built from the
	 * tsoracle.tls_* files at start and at every reload (NULL: none
	 * configured, or none could be loaded: tls_ctx_err says why). tls: this
	 * connection's session (NULL: plaintext); the plaintext in outbuf is
	 * encrypted only once the ciphertext before it has gone out (tls_out),
	 * so the worker's own backpressure on outbuf still holds.
	 */
	struct ssl_ctx_st *tls_ctx;
	bool		tls_wanted;		/* some tsoracle.tls_* setting is set */
	char		tls_ctx_err[RING_ERROR_LEN];
	char		tls_settings[4][MAXPGPATH];	/* the settings tls_ctx came from */
	struct tls_conn *tls;
	uint32		tls_member_id;	/* the sidecar's id in its certificate */
	uint8		tls_out[WORKER_TLS_OUT_SIZE];
	size_t		tls_outlen;

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

/* The worker's state, set up by worker_setup() (worker.c). */
extern TSO_PRIVATE WorkerState *ws;

/* worker.c */
extern TSO_PRIVATE void worker_pending_append(const RingWaiter *w, int n, bool at_front);
extern TSO_PRIVATE void worker_handle_ts_resp(const tp_msg *m);
extern TSO_PRIVATE void worker_handle_status_resp(const tp_msg *m);

/* worker_conn.c */
extern TSO_PRIVATE void worker_attempt(void);
extern TSO_PRIVATE void worker_finish_connect(void);
extern TSO_PRIVATE void worker_fail(const char *fmt,...) pg_attribute_printf(1, 2);
extern TSO_PRIVATE void worker_close(void);
extern TSO_PRIVATE void worker_flush(void);
extern TSO_PRIVATE void worker_read(void);
extern TSO_PRIVATE bool worker_want_write(void);

/* worker_tls.c */
extern TSO_PRIVATE bool worker_tls_reload(bool at_start);
extern TSO_PRIVATE bool worker_tls_check_plaintext(char *err, size_t errlen);
extern TSO_PRIVATE bool worker_tls_begin(char *err, size_t errlen);
extern TSO_PRIVATE void worker_tls_end(void);
extern TSO_PRIVATE bool worker_tls_established(char *err, size_t errlen);
extern TSO_PRIVATE void worker_tls_failed(char *err, size_t errlen);

#endif							/* TSORACLE_WORKER_INT_H */
