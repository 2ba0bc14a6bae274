/*-------------------------------------------------------------------------
 *
 * ring.c
 *		Shared memory between backends and the tsoracle worker: the request
 *		queue, one answer slot per backend, and the worker's status.
 *
 * A backend that wants n timestamps posts a request and sleeps on its latch.
 * The worker, the only client of the sidecar, takes every posted request at
 * once, asks the sidecar for all of them in one call, writes each backend's
 * share of the grant into that backend's answer slot and sets its latch.
 *
 * Shared state, and who may write which field:
 *
 * slots[i], one per proc number i < MaxBackends, each guarded by its own
 * spinlock slots[i].mutex; every field is read and written with it held.
 *
 *	generation	written only by the backend that owns proc number i: it is
 *				incremented by every call (ring_post) and by every
 *				abandonment (ring_abandon). Never by the worker.
 *	state		IDLE -> POSTED		owner, ring_post (from any state, with a
 *									new generation)
 *				POSTED -> TAKEN		worker, ring_drain (it copies generation
 *									and count into a RingWaiter)
 *				TAKEN -> ANSWERED	worker, ring_deliver, only if the slot
 *									still holds the generation it took
 *				ANSWERED -> IDLE	owner, ring_take_answer
 *				any -> IDLE			owner, ring_abandon (new generation)
 *	count, latch	written by the owner in ring_post, read by the worker.
 *	status, first	written by the worker in ring_deliver, read by the owner.
 *
 * queue[], a FIFO of slot numbers of capacity MaxBackends, with head, tail
 * and queued[], guarded by queue_mutex: backends append (ring_post), the
 * worker empties it (ring_drain). queued[i] says that slot i is in the queue.
 * A backend whose slot is still queued (from a call it abandoned before the
 * worker drained it) does not append it again: the entry already there
 * serves the new generation, because the worker reads generation and count
 * from the slot, not from the queue. So each slot number is in the queue at
 * most once, and the queue cannot overflow (asserted).
 *
 * worker_latch, also guarded by queue_mutex: written by the worker when it
 * starts and when it exits; read by a backend right after it appends, so
 * that it can wake the worker.
 *
 * status, guarded by status_mutex: written only by the worker, read by
 * backends (for error messages) and by tso_status() and tso_worker_status().
 *
 * Why a late answer is never delivered to a later call. A request carries
 * (slot, generation). The worker writes an answer only inside the slot's
 * critical section and only if the slot still holds that generation in
 * state TAKEN. A backend that gives up (tsoracle.timeout, statement_timeout,
 * cancel, terminate, any error while waiting) first moves its slot to a new
 * generation, in the same critical section. The two are serialized by the
 * spinlock, so either the answer was written before the bump (and the bump
 * throws it away with the old generation) or the worker sees the new
 * generation and drops the answer. The next call, by this backend or by the
 * next process that gets the same proc number, starts with yet another
 * generation, so only an answer for that generation can ever reach it. The
 * timestamps dropped this way are a gap, which the format allows; they are
 * never handed out twice.
 *
 * Why a spinlock per slot rather than a compare-and-swap on a packed word:
 * the answer is three fields (status, first, count) that must become
 * visible together with the state change, and the check of the generation
 * must be atomic with writing them. A spinlock makes that a plain critical
 * section of a few stores, contended by at most two processes (the owner
 * and the worker); a CAS would need a packed (generation, state) word plus a
 * separate publication order for the answer fields, which is harder to
 * argue and buys nothing at this contention.
 *
 * Barriers. Every shared field is accessed under a spinlock, and spinlock
 * acquire and release are full memory barriers: the worker's writes of
 * first/status/state, released with the slot's lock in ring_deliver, pair
 * with the owner's acquire of the same lock in ring_take_answer; the owner's
 * writes of count/latch/state in ring_post pair with the worker's acquire in
 * ring_drain. Sleeping relies on latch.c: each writer (the worker answering,
 * a backend posting) releases the lock before SetLatch(), and each sleeper
 * calls ResetLatch() before it re-checks shared state, so SetLatch's barrier
 * pairs with ResetLatch's and a wakeup cannot fall between check and sleep.
 *
 * A process's proc number is stable for its lifetime; when it exits, a
 * before_shmem_exit callback (ring_backend_exit) moves its slot to a new
 * generation and leaves it idle, before ProcKill releases the proc number.
 * A backend crash makes the postmaster reinitialize shared memory, so no
 * slot survives a process that died without running its exit callbacks.
 *
 * src/ring.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "proto.h"
#include "ring.h"

/* Name of the shared memory segment part, as pg_shmem_allocations shows it. */
#define RING_SHMEM_NAME "tsoracle ring"

typedef enum RingSlotState
{
	RING_SLOT_IDLE = 0,			/* no call in progress */
	RING_SLOT_POSTED,			/* request posted, not taken by the worker */
	RING_SLOT_TAKEN,			/* the worker holds it and will answer */
	RING_SLOT_ANSWERED			/* answer written for the current generation */
} RingSlotState;

typedef struct RingSlot
{
	slock_t		mutex;
	RingSlotState state;
	uint64		generation;
	uint32		count;			/* request: timestamps asked for */
	Latch	   *latch;			/* request: the owner's latch */
	uint16		status;			/* answer: TP_OK or TP_ERR_* */
	uint64		first;			/* answer: first timestamp of the share */
} RingSlot;

/* One slot per cache line, so backends do not contend on each other's. */
typedef union RingSlotPadded
{
	RingSlot	slot;
	char		pad[PG_CACHE_LINE_SIZE];
} RingSlotPadded;

StaticAssertDecl(sizeof(RingSlot) <= PG_CACHE_LINE_SIZE,
				 "a ring slot must fit in a cache line");

/*
 * The fixed part, at the start of the segment; then, each cache-line
 * aligned, the slots, the queue and the queued flags.
 */
typedef struct RingShared
{
	int			nslots;			/* MaxBackends; capacity of the queue */

	slock_t		queue_mutex;
	uint64		head;			/* next entry the worker removes */
	uint64		tail;			/* next entry a backend fills */
	Latch	   *worker_latch;	/* NULL while no worker runs */

	slock_t		status_mutex;
	RingWorkerStatus status;
} RingShared;

/* Set in every process by ring_shmem_startup (inherited through fork). */
static RingShared *ring = NULL;
static RingSlotPadded *ring_slots = NULL;
static int *ring_queue = NULL;
static bool *ring_queued = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void ring_shmem_request(void);
static void ring_shmem_startup(void);
static Size ring_shmem_size(int nslots);
static void ring_backend_exit(int code, Datum arg);
static void ring_worker_exit(int code, Datum arg);

static inline RingSlot *
ring_slot(int i)
{
	Assert(i >= 0 && i < ring->nslots);
	return &ring_slots[i].slot;
}

/*
 * Installs the shared memory hooks; called from _PG_init while
 * shared_preload_libraries is being processed.
 */
void
ring_init(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = ring_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = ring_shmem_startup;
}

static Size
ring_shmem_size(int nslots)
{
	Size		size;

	size = CACHELINEALIGN(sizeof(RingShared));
	size = add_size(size, mul_size(nslots, sizeof(RingSlotPadded)));
	size = add_size(size, CACHELINEALIGN(mul_size(nslots, sizeof(int))));
	size = add_size(size, mul_size(nslots, sizeof(bool)));
	return size;
}

static void
ring_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();

	/* MaxBackends is final by the time this hook runs. */
	RequestAddinShmemSpace(ring_shmem_size(MaxBackends));
}

static void
ring_shmem_startup(void)
{
	bool		found;
	char	   *base;
	int			nslots = MaxBackends;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);

	ring = ShmemInitStruct(RING_SHMEM_NAME, ring_shmem_size(nslots), &found);
	base = (char *) ring;
	ring_slots = (RingSlotPadded *) (base + CACHELINEALIGN(sizeof(RingShared)));
	ring_queue = (int *) ((char *) ring_slots +
						  mul_size(nslots, sizeof(RingSlotPadded)));
	ring_queued = (bool *) ((char *) ring_queue +
							CACHELINEALIGN(mul_size(nslots, sizeof(int))));

	if (!found)
	{
		int			i;

		memset(ring, 0, ring_shmem_size(nslots));
		ring->nslots = nslots;
		SpinLockInit(&ring->queue_mutex);
		ring->head = 0;
		ring->tail = 0;
		ring->worker_latch = NULL;
		SpinLockInit(&ring->status_mutex);
		for (i = 0; i < nslots; i++)
		{
			RingSlot   *slot = &ring_slots[i].slot;

			SpinLockInit(&slot->mutex);
			slot->state = RING_SLOT_IDLE;
			slot->generation = 0;
			slot->latch = NULL;
			ring_queued[i] = false;
		}
	}

	LWLockRelease(AddinShmemInitLock);
}

int
ring_capacity(void)
{
	Assert(ring != NULL);
	return ring->nslots;
}

/* ---------------------------------------------------------------------
 * Backend side
 * ---------------------------------------------------------------------
 */

/*
 * Posts a request for count timestamps from this backend's slot and wakes
 * the worker; returns the generation the answer will carry.
 */
uint64
ring_post(uint32 count)
{
	static bool exit_callback_installed = false;
	int			procno = tso_my_proc_number();
	RingSlot   *slot;
	uint64		generation;
	Latch	   *worker_latch;
	bool		overflow = false;

	if (ring == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("tsoracle shared memory is not initialized"),
				 errhint("Add tsoracle to shared_preload_libraries and restart the server.")));
	if (procno < 0 || procno >= ring->nslots)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("tsoracle timestamps cannot be requested from this process"),
				 errdetail("Its proc number %d is not below MaxBackends (%d).",
						   procno, ring->nslots)));
	Assert(count >= 1 && count <= TP_MAX_COUNT);

	if (!exit_callback_installed)
	{
		before_shmem_exit(ring_backend_exit, (Datum) 0);
		exit_callback_installed = true;
	}

	slot = ring_slot(procno);
	SpinLockAcquire(&slot->mutex);
	generation = ++slot->generation;
	slot->state = RING_SLOT_POSTED;
	slot->count = count;
	slot->latch = MyLatch;
	slot->status = TP_OK;
	slot->first = 0;
	SpinLockRelease(&slot->mutex);

	SpinLockAcquire(&ring->queue_mutex);
	if (!ring_queued[procno])
	{
		if (ring->tail - ring->head < (uint64) ring->nslots)
		{
			ring_queue[ring->tail % (uint64) ring->nslots] = procno;
			ring->tail++;
			ring_queued[procno] = true;
		}
		else
			overflow = true;
	}
	worker_latch = ring->worker_latch;
	SpinLockRelease(&ring->queue_mutex);

	/* Each slot is queued at most once, so there is always room. */
	Assert(!overflow);
	if (overflow)
		elog(ERROR, "tsoracle request queue overflow");

	if (worker_latch != NULL)
		SetLatch(worker_latch);

	return generation;
}

/*
 * If the answer for generation has arrived, copies it into *answer, leaves
 * the slot idle and returns true.
 */
bool
ring_take_answer(uint64 generation, RingAnswer *answer)
{
	RingSlot   *slot = ring_slot(tso_my_proc_number());
	bool		done = false;

	SpinLockAcquire(&slot->mutex);
	Assert(slot->generation == generation);
	if (slot->generation == generation && slot->state == RING_SLOT_ANSWERED)
	{
		answer->status = slot->status;
		answer->first = slot->first;
		answer->count = slot->count;
		slot->state = RING_SLOT_IDLE;
		done = true;
	}
	SpinLockRelease(&slot->mutex);

	return done;
}

/*
 * Gives up this backend's current call, if any: moves the slot to a new
 * generation, so that an answer still on its way is dropped, and leaves it
 * idle. Safe to call at any time, including from error recovery and exit
 * callbacks (no allocation, no error).
 */
void
ring_abandon(void)
{
	int			procno;
	RingSlot   *slot;

	if (ring == NULL || MyProc == NULL)
		return;
	procno = tso_my_proc_number();
	if (procno < 0 || procno >= ring->nslots)
		return;

	slot = ring_slot(procno);
	SpinLockAcquire(&slot->mutex);
	if (slot->state != RING_SLOT_IDLE)
		slot->generation++;
	slot->state = RING_SLOT_IDLE;
	SpinLockRelease(&slot->mutex);
}

static void
ring_backend_exit(int code, Datum arg)
{
	ring_abandon();
}

/* ---------------------------------------------------------------------
 * Worker side
 * ---------------------------------------------------------------------
 */

/* Publishes the worker's latch and pid; undone at exit. */
void
ring_worker_attach(Latch *latch)
{
	SpinLockAcquire(&ring->queue_mutex);
	ring->worker_latch = latch;
	SpinLockRelease(&ring->queue_mutex);

	SpinLockAcquire(&ring->status_mutex);
	ring->status.pid = MyProcPid;
	ring->status.connected = false;
	ring->status.in_flight = 0;
	SpinLockRelease(&ring->status_mutex);

	before_shmem_exit(ring_worker_exit, (Datum) 0);
}

static void
ring_worker_exit(int code, Datum arg)
{
	SpinLockAcquire(&ring->queue_mutex);
	ring->worker_latch = NULL;
	SpinLockRelease(&ring->queue_mutex);

	SpinLockAcquire(&ring->status_mutex);
	ring->status.pid = 0;
	ring->status.connected = false;
	ring->status.in_flight = 0;
	SpinLockRelease(&ring->status_mutex);
}

/*
 * Empties the queue and takes every request posted in it, in queue order:
 * writes them to out (room for ring_capacity() entries), returns how many.
 * Slots abandoned since they were queued are skipped.
 */
int
ring_drain(RingWaiter *out)
{
	int			n;
	int			taken = 0;
	int			i;

	/*
	 * Copy the slot numbers out first, so the queue lock is held only for a
	 * loop of at most MaxBackends loads and stores, with no other lock.
	 */
	SpinLockAcquire(&ring->queue_mutex);
	n = (int) (ring->tail - ring->head);
	Assert(n >= 0 && n <= ring->nslots);
	for (i = 0; i < n; i++)
	{
		int			s = ring_queue[(ring->head + (uint64) i) % (uint64) ring->nslots];

		out[i].slot = s;
		ring_queued[s] = false;
	}
	ring->head = ring->tail;
	SpinLockRelease(&ring->queue_mutex);

	for (i = 0; i < n; i++)
	{
		RingSlot   *slot = ring_slot(out[i].slot);
		int			s = out[i].slot;

		SpinLockAcquire(&slot->mutex);
		if (slot->state == RING_SLOT_POSTED)
		{
			slot->state = RING_SLOT_TAKEN;
			out[taken].slot = s;
			out[taken].generation = slot->generation;
			out[taken].count = slot->count;
			taken++;
		}
		SpinLockRelease(&slot->mutex);
	}

	return taken;
}

/*
 * At worker start: takes over the requests a previous worker had taken but
 * not answered (it exited with them in flight). Their callers are still
 * waiting, so they are sent again; writes them to out (room for
 * ring_capacity() entries) and returns how many.
 */
int
ring_adopt_taken(RingWaiter *out)
{
	int			n = 0;
	int			i;

	for (i = 0; i < ring->nslots; i++)
	{
		RingSlot   *slot = ring_slot(i);

		SpinLockAcquire(&slot->mutex);
		if (slot->state == RING_SLOT_TAKEN)
		{
			out[n].slot = i;
			out[n].generation = slot->generation;
			out[n].count = slot->count;
			n++;
		}
		SpinLockRelease(&slot->mutex);
	}
	return n;
}

/*
 * Whether the caller of waiter still waits for it. Only an optimization (the
 * worker does not ask the sidecar for callers that left): the caller may
 * give up right after this returns, and ring_deliver then drops its share.
 */
bool
ring_still_wanted(const RingWaiter *waiter)
{
	RingSlot   *slot = ring_slot(waiter->slot);
	bool		wanted;

	SpinLockAcquire(&slot->mutex);
	wanted = slot->generation == waiter->generation &&
		slot->state == RING_SLOT_TAKEN;
	SpinLockRelease(&slot->mutex);
	return wanted;
}

/*
 * Answers waiter: [first, first + waiter->count) on TP_OK, or an error
 * status. Writes the answer only if the slot still holds the generation the
 * request was posted with (see the header comment); returns whether it did.
 * Sets the owner's latch after releasing the slot.
 */
bool
ring_deliver(const RingWaiter *waiter, uint16 status, uint64 first)
{
	RingSlot   *slot = ring_slot(waiter->slot);
	Latch	   *latch = NULL;
	bool		delivered = false;

	SpinLockAcquire(&slot->mutex);
	if (slot->generation == waiter->generation &&
		slot->state == RING_SLOT_TAKEN)
	{
		slot->status = status;
		slot->first = first;
		slot->count = waiter->count;
		slot->state = RING_SLOT_ANSWERED;
		latch = slot->latch;
		delivered = true;
	}
	SpinLockRelease(&slot->mutex);

	if (latch != NULL)
		SetLatch(latch);
	return delivered;
}

/* ---------------------------------------------------------------------
 * Worker status
 * ---------------------------------------------------------------------
 */

/*
 * Records whether the worker is connected, and to which address. A new
 * address forgets the sidecar status of the old one: it describes another
 * sidecar.
 */
void
ring_status_connected(bool connected, const char *address)
{
	TimestampTz now = GetCurrentTimestamp();

	SpinLockAcquire(&ring->status_mutex);
	if (connected && !ring->status.connected)
		ring->status.connected_since = now;
	ring->status.connected = connected;
	if (!connected)
		ring->status.in_flight = 0;
	if (strncmp(ring->status.address, address, RING_ADDRESS_LEN - 1) != 0)
		ring->status.sidecar_valid = false;
	strlcpy(ring->status.address, address, RING_ADDRESS_LEN);
	SpinLockRelease(&ring->status_mutex);
}

/* Records the worker's latest error, with the current time. */
void
ring_status_error(const char *message)
{
	TimestampTz now = GetCurrentTimestamp();

	SpinLockAcquire(&ring->status_mutex);
	strlcpy(ring->status.last_error, message, RING_ERROR_LEN);
	ring->status.last_error_at = now;
	SpinLockRelease(&ring->status_mutex);
}

/* Adds to the worker's counters. */
void
ring_status_count(uint64 requests, uint64 timestamps, uint64 errors)
{
	SpinLockAcquire(&ring->status_mutex);
	ring->status.requests += requests;
	ring->status.timestamps += timestamps;
	ring->status.errors += errors;
	SpinLockRelease(&ring->status_mutex);
}

/* Counts TP_TS_REQ frames sent, and the backend requests they carry. */
void
ring_status_sent(uint64 batches, uint64 batched)
{
	SpinLockAcquire(&ring->status_mutex);
	ring->status.batches += batches;
	ring->status.batched += batched;
	SpinLockRelease(&ring->status_mutex);
}

/* Keeps the sidecar's answer to a status request, with the current time. */
void
ring_status_sidecar(const tp_status *st)
{
	TimestampTz now = GetCurrentTimestamp();

	SpinLockAcquire(&ring->status_mutex);
	ring->status.sidecar = *st;
	ring->status.sidecar_at = now;
	ring->status.sidecar_valid = true;
	SpinLockRelease(&ring->status_mutex);
}

void
ring_status_in_flight(int in_flight)
{
	SpinLockAcquire(&ring->status_mutex);
	ring->status.in_flight = in_flight;
	SpinLockRelease(&ring->status_mutex);
}

/* Copies the worker's status. */
void
ring_status_snapshot(RingWorkerStatus *out)
{
	if (ring == NULL)
	{
		memset(out, 0, sizeof(*out));
		return;
	}
	SpinLockAcquire(&ring->status_mutex);
	memcpy(out, &ring->status, sizeof(*out));
	SpinLockRelease(&ring->status_mutex);
}
