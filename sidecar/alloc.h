/* alloc.h: the window allocator with its fence and lease: pure C, no I/O, no clock calls. */
#ifndef TSORACLE_ALLOC_H
#define TSORACLE_ALLOC_H

/*
 * The allocator decides every timestamp tsoracle hands out. It reads no clock
 * and does no I/O: the caller passes clock readings (ta_clock) and reports
 * Raft events (won leadership, an entry committed, lost leadership), so the
 * daemon and the simulation tests drive the very same code.
 *
 * Durable state lives in Raft as HighWater(mark) entries, applied as max.
 * The allocator keeps H, the highest mark it knows to be committed, and
 * hands out only timestamps whose physical part is <= H. The protocol with
 * the caller:
 *
 *   1. Leadership won (term t): the caller runs a Raft barrier, so every
 *      committed entry is applied, reads the applied mark and calls
 *      ta_lead_begin(a, t, mark, released, clk), released saying whether
 *      the log ends in the release of term t - 1 (I4). That returns the
 *      fence mark, which the caller proposes as HighWater(fence mark).
 *   2. Whenever ta_extension_due() says so (and nothing is in flight), the
 *      caller calls ta_extension_prepare() and proposes HighWater(mark).
 *   3. When a proposal of term t commits, the caller calls
 *      ta_extension_commit(a, t, mark, proposed_mono_ms); when it fails,
 *      ta_extension_failed(a, t).
 *   4. Leadership lost: ta_lead_end(a), at once.
 *   5. Grants: ta_grant(a, clk, n, &first).
 *
 * The invariants, with the sentence that argues each (full argument in
 * docs/allocator.md):
 *
 *   I1 (no repeat, no reorder within a leader) Every grant starts at
 *      max(now << 18, last + 1) and sets last to its end, so grants of one
 *      epoch are disjoint and increasing whatever the wall clock does.
 *   I2 (durability) A grant's last value has physical part <= H, and H only
 *      ever holds marks that are committed in Raft, so a restarted or new
 *      leader, whose floor is above every committed mark, starts above it.
 *   I3 (no repeat across leaders) A new leader serves only from
 *      floor = max(H + 1, now) ms, where H was read after a barrier (every
 *      mark committed by any earlier leader is <= H), and only once its
 *      fence mark (>= floor) is committed; so every timestamp it hands out
 *      is above every timestamp any earlier leader could have handed out.
 *   I4 (real-time order) A leader serves only while mono < s + lease, s
 *      being the proposal time of its latest committed entry, and a new
 *      leader serves no earlier than lease * (1 + drift) after it won; an
 *      old leader's last committed entry was appended by a majority before
 *      any voter of the new leader voted, so the old leader has stopped
 *      before the new one starts, and every grant of the new leader follows,
 *      in real time, every grant of the old. The one exception is a planned
 *      handover: a leader of term t that is established (ta_established:
 *      its own wait is over, so no leader before it serves again) stops
 *      serving, then appends Release(t) and never serves in term t again
 *      unless a later HighWater of its own, committed, takes the release
 *      back. A leader of term t + 1 whose log, after its barrier, ends in
 *      Release(t) knows that every earlier leader has stopped for good,
 *      and skips the wait (a HighWater of term t committed after the
 *      release would be in its log: a voter that acked it before voting
 *      made the candidate's log at least as long in term t).
 *   I5 (no wrap) A grant or mark past the end of the timestamp range (tso.h) is an error
 *      (TA_EXHAUSTED), never a wrap.
 *   I6 (near the clock) A grant's last value has physical part <= now +
 *      max_ahead_ms, now being the clock reading it is granted at: a grant
 *      that would pass it waits (TA_WAIT) for the clock, so `tso >> 18`
 *      stays within max_ahead_ms of the time the timestamp was issued.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Clock readings, taken by the caller at one moment. */
typedef struct ta_clock {
	uint64_t wall_ms; /* Unix time in ms (CLOCK_REALTIME): physical parts */
	uint64_t mono_ms; /* a monotonic clock in ms: lease arithmetic only */
} ta_clock;

typedef struct ta_config {
	/* An extension reaches max(H + 1, now) + window_ahead_ms. */
	uint64_t window_ahead_ms;
	/* Extend once H < now + extend_margin_ms (< window_ahead_ms), so that
	 * in steady state no grant waits for disk. */
	uint64_t extend_margin_ms;
	/* Cap: an extension never proposes a mark above now + max_ahead_ms
	 * (except the fence's floor itself, max(H + 1, now)), and no grant
	 * reaches past now + max_ahead_ms (I6). Bounds how far timestamps run
	 * ahead of the clock, and how much space a wrong clock can burn. */
	uint64_t max_ahead_ms;
	/* The lease: serve only while mono < s + lease_ms. */
	uint64_t lease_ms;
	/* A new leader waits lease_ms * (1000 + drift_permille) / 1000 ms,
	 * rounded up. */
	uint32_t drift_permille;
} ta_config;

#define TA_DEFAULT_WINDOW_AHEAD_MS  3000
#define TA_DEFAULT_EXTEND_MARGIN_MS 2000
/* Must hold window_ahead_ms (docs/allocator.md, "How far ahead"). */
#define TA_DEFAULT_MAX_AHEAD_MS     5000
#define TA_DEFAULT_LEASE_MS         200
#define TA_DEFAULT_DRIFT_PERMILLE   100

/* Largest grant, in timestamps (equals the wire protocol's TP_MAX_COUNT). */
#define TA_MAX_GRANT (UINT32_C(1) << 24)

/* ta_grant results. */
enum ta_result {
	TA_OK = 0,
	TA_NOT_LEADER, /* no epoch: not leader, or leadership lost */
	TA_FENCING,    /* leader, but the fence mark is not committed yet */
	TA_LEASE,      /* leader, but outside its lease (waiting it out, or
			* renewals are not committing) */
	TA_WAIT,       /* the grant would pass H (wait for an extension) or now +
			* max_ahead_ms (wait for the clock, I6) */
	TA_INVALID,    /* n == 0 or n > TA_MAX_GRANT */
	TA_EXHAUSTED,  /* the grant would pass the end of the timestamp range (tso.h) */
};

typedef struct ta_alloc {
	ta_config cfg;

	uint64_t epoch;         /* term we lead in; 0: not leader */
	bool fenced;            /* the fence mark of this epoch is committed */
	uint64_t fence_mark;    /* ms; committed => serve */
	uint64_t high_water_ms; /* H: highest mark known committed */
	uint64_t last;          /* last timestamp handed out (floor - 1 at start) */
	bool starved;           /* a grant hit H since H last rose */

	bool ext_inflight; /* one extension (or the fence) in flight */
	uint64_t ext_mark;

	uint64_t lease_not_before; /* mono ms: a new leader waits until then */
	uint64_t lease_renewed_at; /* mono ms: proposal time of latest commit */

	/* Counters for status. */
	uint64_t grants;
	uint64_t timestamps;
	uint64_t last_issued; /* survives ta_lead_end, for status */
} ta_alloc;

/* Fills cfg with the defaults above. */
void ta_config_default(ta_config *cfg);

/* 0 if cfg is consistent, else -1 with a message naming the field and its
 * value in err (if err is not NULL). Consistent: every field > 0,
 * extend_margin_ms < window_ahead_ms <= max_ahead_ms, lease_ms >= 3 (so
 * lease_ms / 3 > 0), drift_permille <= 1000. */
int ta_config_check(const ta_config *cfg, char *err, size_t errlen);

/* Starts as a non-leader, knowing no high-water mark. */
void ta_init(ta_alloc *a, const ta_config *cfg);

/*
 * Leadership won in term epoch (> 0); high_water_ms is the mark applied
 * after a barrier, and predecessor_released whether the log then ended in
 * the release of term epoch - 1 (fsm_predecessor_released; I4). Sets the
 * floor max(H + 1, now) and returns the fence mark to propose (>= the
 * floor); or 0 with no change when the floor would pass the end of the
 * timestamp range (the caller then reports TA_EXHAUSTED), or when epoch is
 * 0. Not serving until that mark commits in this epoch and, unless the
 * predecessor released, the new-leader wait of the lease is over. May be
 * called while leading an older epoch: it starts over in the new one.
 *
 * Here and below, "now" is clk.wall_ms read as at most TSO_PHYSICAL_MAX.
 */
uint64_t ta_lead_begin(ta_alloc *a, uint64_t epoch, uint64_t high_water_ms, bool predecessor_released,
		       ta_clock clk);

/* Leadership lost (or stopping): stop serving at once, forget the epoch. */
void ta_lead_end(ta_alloc *a);

/* True if a proposal should be made now: leader, nothing in flight, and
 * the fence is not committed (its proposal failed), or the lease is due for
 * renewal (every lease_ms / 3), or the window should grow (it is short or a
 * grant starved) and a proposal can grow it (not at the max_ahead cap nor
 * at the end of the range: proposing H again would only spin). */
bool ta_extension_due(const ta_alloc *a, ta_clock clk);

/*
 * Computes the mark to propose and marks it in flight: max(H + 1, now) +
 * window_ahead (capped by max_ahead and the end of the range) when the
 * window is short or a grant starved, else H (a pure lease renewal); never
 * below H, and while the fence is not committed never below the fence mark
 * (a failed fence is proposed again). Returns 0 if not leader or something
 * is already in flight; a leader's mark is never 0.
 */
uint64_t ta_extension_prepare(ta_alloc *a, ta_clock clk);

/* A HighWater(mark) proposed in epoch at mono time proposed_mono_ms has
 * committed. Raises H (and clears starved if H rose), renews the lease (to
 * the latest proposal time seen), ends the fence if mark >= the fence mark,
 * and ends the in-flight proposal if mark is its mark. Ignored when epoch is
 * 0 or not the current one; reordered commits are harmless. */
void ta_extension_commit(ta_alloc *a, uint64_t epoch, uint64_t mark, uint64_t proposed_mono_ms);

/* The proposal of epoch failed (not committed): allows a new one. */
void ta_extension_failed(ta_alloc *a, uint64_t epoch);

/* Fence committed and within the lease at clk. */
bool ta_serving(const ta_alloc *a, ta_clock clk);

/* Fence committed and the new-leader wait over (the lease itself may have
 * lapsed): by I4 no earlier leader serves now or ever will, which is what a
 * release (Release(term), fsm.h) promises to the next leader. */
bool ta_established(const ta_alloc *a, ta_clock clk);

/* Grants n timestamps: on TA_OK, [*first, *first + n). Nothing is consumed
 * on any other result (TA_WAIT only sets starved). Checked in this order:
 * TA_INVALID, TA_NOT_LEADER, TA_FENCING, TA_LEASE, TA_EXHAUSTED (this n can
 * never fit: waiting would not help), TA_WAIT. */
int ta_grant(ta_alloc *a, ta_clock clk, uint32_t n, uint64_t *first);

/* How many timestamps one grant could take at clk without waiting (I2,
 * I5, I6), at most TA_MAX_GRANT; 0 when not serving or nothing fits. A
 * grant of n <= the result at the same clk succeeds. Changes nothing (the
 * caller that cannot fit a request calls ta_grant, whose TA_WAIT marks the
 * window starved). */
uint64_t ta_room(const ta_alloc *a, ta_clock clk);

/* A short lowercase description of a ta_result. */
const char *ta_result_str(int result);

#endif /* TSORACLE_ALLOC_H */
