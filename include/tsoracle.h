/* tsoracle.h: libtsoracle, a timestamp oracle on a libraft log: the allocator, its log commands, the
 * leadership driver. */
#ifndef TSORACLE_H
#define TSORACLE_H

#include <raft.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alloc.h"
#include "fsm.h"

/*
 * libtsoracle hands out timestamps from the leader of a libraft (0.22)
 * cluster: every timestamp is strictly greater than every timestamp whose
 * call had finished before its call began, on any member, and none is
 * handed out twice, across crashes, restarts, failovers, partitions and
 * clock jumps (docs/allocator.md argues each step). tsoracled is one user
 * of it; docs/architecture.md ("Where to change what") maps its files.
 *
 * The library reads no clock, starts no timer and does no I/O but through
 * libraft: the host passes clock readings (ta_clock: a wall clock for the
 * physical part, a monotonic one for the lease) and calls lead_sync on a
 * timer, so a daemon on libuv and a simulation on libraft's fixture with
 * virtual clocks run the very same code.
 *
 * Three parts, in the terms of a consensus driver:
 *
 *   persist_high_water(mark, epoch)  the driver appends HighWater(mark)
 *        (fsm.h's command encoding) to the log in the term it leads
 *        (epoch), and tells the allocator when it commits or fails;
 *   load_high_water()  after a barrier, the driver reads H, the highest
 *        mark committed, from the fsm_state the host's state machine
 *        applies the commands to;
 *   leadership events  libraft 0.22 has no state-change callback, so the
 *        driver watches raft_state() and raft_current_term() each time the
 *        host calls lead_sync: on winning it runs a barrier, then the
 *        fence; on losing it stops serving at once.
 *
 * The host's side of the contract:
 *
 *   - Its state machine applies every TSO command of the log, in log
 *     order, to one fsm_state (fsm_init's raft_fsm does exactly this for a
 *     log of TSO commands only), includes that state in its snapshots and
 *     replaces it on restore. The driver only reads it.
 *   - It calls lead_sync(d, clock reading) at least every LEAD_TICK_MS ms
 *     and soon after host.kick asks, from its own loop: never from inside
 *     a libraft callback (libraft 0.22's legacy layer does not expect new
 *     requests from there), and likewise lead_grant and lead_transfer.
 *     host.kick itself may be called from inside libraft callbacks, so it
 *     only schedules.
 *   - It keeps the driver's memory until raft_close's callback has run:
 *     every request the driver made completes into it. lead_stop first.
 *   - It serves a grant only from lead_grant's TA_OK, as given. Serving
 *     less (refusing, stopping early) is always safe.
 *
 * The invariants kept (alloc.h states each with its argument): I1 grants
 * of one leader are disjoint and increasing; I2 a grant never passes a
 * committed mark; I3 a new leader starts above every mark committed
 * before its barrier; I4 a leader serves only within its lease, and a new
 * leader not before the old lease has run out (or the old leader released
 * it); I5 the range ends in an error, never a wrap.
 */

/* This header's version, and the library's (tsoracle_version()): major,
 * minor and patch, as MAJOR * 10000 + MINOR * 100 + PATCH. A host built
 * against one major version links only with a library of the same major. */
#define TSORACLE_VERSION_MAJOR 1
#define TSORACLE_VERSION_MINOR 0
#define TSORACLE_VERSION_PATCH 0
#define TSORACLE_VERSION                                                                                     \
	(TSORACLE_VERSION_MAJOR * 10000 + TSORACLE_VERSION_MINOR * 100 + TSORACLE_VERSION_PATCH)
#define TSORACLE_VERSION_STRING "1.0.0"

/* The library's TSORACLE_VERSION, to compare with the header's at run time. */
int tsoracle_version(void);
/* The same as "major.minor.patch". */
const char *tsoracle_version_string(void);

/* ---- the leadership driver ------------------------------------------------ */

/* The longest the host may leave between two lead_sync calls, ms. Bounds
 * how late the driver notices a change of role and renews the lease; the
 * lease, not this watch, keeps order safe. */
#define LEAD_TICK_MS 10

/* lead_host.log levels (equal to the daemon's, sidecar/log.h). */
enum lead_log_level { LEAD_LOG_DEBUG = 0, LEAD_LOG_INFO, LEAD_LOG_WARN, LEAD_LOG_ERROR };

/* What the host provides. Only kick is required. */
typedef struct lead_host {
	void *arg; /* passed to every callback */
	/* Call lead_sync soon, from the host's loop. May be called from
	 * inside a libraft callback: it must only schedule (a zero timer). */
	void (*kick)(void *arg);
	/* persist_high_water: append the TSO command cmd[0..len) to the log as
	 * (part of) one entry, by raft_apply(raft, req, ..., cb) with the
	 * driver's req and cb, and return raft_apply's result. A host whose
	 * log carries its own commands too wraps cmd in its envelope here (and
	 * its state machine unwraps it: lead_host_propose_default's comment).
	 * cmd is the driver's: copy it. NULL: lead_host_propose_default. */
	int (*propose)(void *arg, struct raft *raft, struct raft_apply *req, const uint8_t *cmd, size_t len,
		       raft_apply_cb cb);
	/* Grants that had to wait may succeed now. Called from lead_sync. */
	void (*ready)(void *arg);
	/* One line of the driver's log (no newline), at one of
	 * enum lead_log_level. */
	void (*log)(void *arg, int level, const char *msg);
	/* Lines below this level are not even formatted. */
	int log_level;
} lead_host;

/* The TSO command as the whole entry: raft_apply of a copy of cmd. */
int lead_host_propose_default(void *arg, struct raft *raft, struct raft_apply *req, const uint8_t *cmd,
			      size_t len, raft_apply_cb cb);

/* Events, for the host's status and tests. */
typedef struct lead_counters {
	uint64_t fences;             /* terms begun: ta_lead_begin succeeded */
	uint64_t released_fences;    /* ... of which without the new-leader wait */
	uint64_t proposals;          /* HighWater proposals libraft accepted */
	uint64_t commits;            /* ... that committed */
	uint64_t refused_proposals;  /* raft_apply refused at once */
	uint64_t handovers;          /* handovers started */
	uint64_t released_handovers; /* ... with a release */
} lead_counters;

/* lead_transfer's results. */
enum lead_transfer_result {
	LEAD_TRANSFER_STARTED = 0, /* a new handover; *handover numbers it */
	LEAD_TRANSFER_JOINED,      /* one was under way: *handover is its number */
	LEAD_TRANSFER_NOT_LEADER,  /* raft says this member does not lead */
	LEAD_TRANSFER_BAD_TARGET,  /* target is this member or not a voter, or there is no other voter */
	LEAD_TRANSFER_REFUSED,     /* libraft refused (raft_transfer), logged */
	LEAD_TRANSFER_NOMEM,       /* out of memory */
};

/*
 * The driver's state: the host owns the memory and reads it freely
 * (alloc, counters), but changes it only through lead_* calls.
 */
typedef struct lead_driver {
	struct raft *raft;
	const fsm_state *state; /* applied by the host's state machine */
	lead_host host;
	ta_alloc alloc;

	bool leading;            /* raft says leader in lead_term, and no handover under way */
	uint64_t lead_term;      /* the term of the last leadership seen (kept after it ends) */
	bool barrier_inflight;   /* the fence's barrier, in lead_term */
	uint64_t barrier_seq;    /* the barrier that counts; completions of older ones are ignored */
	bool barrier_done;       /* it completed: the next sync reads H and fences */
	uint64_t exhausted_term; /* the range ended when fencing in this term: no retry */
	bool was_serving;        /* at the last sync, for the log */
	bool stopped;            /* lead_stop: callbacks only free their memory */

	/* The planned handover (lead_transfer). */
	struct raft_transfer *transfer; /* libraft's request, until its callback */
	uint64_t transfer_target;       /* 0: Raft's pick */
	bool releasing;                 /* Release(lead_term) proposed */
	bool release_committed;         /* ... and committed: the next sync asks libraft */
	uint64_t transfer_count;        /* handovers started, numbering them from 1 */
	uint64_t transfer_ended;        /* the number of one that ended, until lead_handover_ended */

	lead_counters counters;
} lead_driver;

/* Starts as a non-leader with a fresh allocator (cfg checked by
 * ta_config_check), over raft (initialized by the host) and the state its
 * state machine applies. host is copied. */
void lead_init(lead_driver *d, struct raft *raft, const fsm_state *state, const ta_config *cfg,
	       const lead_host *host);

/*
 * The leadership watch, at clock reading clk: reconciles the allocator
 * with raft's role (a loss ends serving at once; a win starts the barrier;
 * a completed barrier reads H and proposes the fence mark), proposes a
 * due extension or lease renewal, goes on with a handover, and calls
 * host.ready while serving. From the host's loop only.
 */
void lead_sync(lead_driver *d, ta_clock clk);

/* One allocator call (ta_grant): an enum ta_result; on TA_OK the grant is
 * [*first, *first + n). A grant that hit H proposes an extension at once.
 * From the host's loop only. */
int lead_grant(lead_driver *d, ta_clock clk, uint32_t n, uint64_t *first);

/* How many timestamps one lead_grant could take at clk without waiting
 * (ta_room): a host that batches requests sizes its batch by it. */
uint64_t lead_room(const lead_driver *d, ta_clock clk);

/* True if a grant could succeed at clk (ta_serving). */
bool lead_serving(const lead_driver *d, ta_clock clk);

/*
 * A planned handover to voter target (0: Raft's pick, a caught-up voter),
 * or joins the one under way. Stops serving at once. An established leader
 * (ta_established) first commits Release(term), so that its successor
 * skips the new-leader wait (alloc.h, I4); otherwise it asks libraft at
 * once. If libraft gives up (an election timeout) and this member still
 * leads, it fences again and waits again. On STARTED or JOINED, *handover
 * is the handover's number, which lead_handover_ended reports later.
 */
int lead_transfer(lead_driver *d, ta_clock clk, uint64_t target, uint64_t *handover);

/* The number of the latest handover that ended (libraft's callback ran, or
 * the release failed) since the last call, or 0; every earlier one has
 * ended too. Who leads now is raft_leader()'s answer. */
uint64_t lead_handover_ended(lead_driver *d);

/* The host is closing: stop serving for good; callbacks still to come only
 * free what the driver allocated. */
void lead_stop(lead_driver *d);

#endif /* TSORACLE_H */
