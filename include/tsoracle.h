/* tsoracle.h: libtsoracle, a timestamp oracle on a libraft log: the allocator, its log commands, the
 * leadership driver. */
#ifndef TSORACLE_H
#define TSORACLE_H

#include <raft.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
 *        (the command encoding below) to the log in the term it leads
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
 *   - On apply: its state machine applies every TSO command of the log, in
 *     log order, to one fsm_state (fsm_apply_cmd_result; fsm_init's
 *     raft_fsm does exactly this for a log of TSO commands only) and
 *     returns to libraft what that returns, with its *result: a proposal
 *     the state machine refused is then a failure for the driver, not a
 *     commit. The driver only reads the state.
 *   - On snapshot and restore: its snapshot holds that state
 *     (fsm_snapshot_put) and its restore replaces it (fsm_snapshot_get).
 *   - On leadership change: nothing, but it calls lead_sync(d, clock
 *     reading) at least every LEAD_TICK_MS ms and soon after host.kick
 *     asks, which is where the driver notices the change (there is no
 *     callback to hook).
 *   - From libraft's callbacks it may call host.kick's scheduling and
 *     nothing of this library: lead_sync, lead_grant and lead_transfer run
 *     from its own loop only (libraft 0.22's legacy layer does not expect
 *     new requests from inside its callbacks; the driver's own callbacks
 *     only record and kick).
 *   - It keeps the driver's memory until raft_close's callback has run:
 *     every request the driver made completes into it. lead_stop first.
 *   - It serves a grant only from lead_grant's TA_OK, as given. Serving
 *     less (refusing, stopping early) is always safe.
 *   - If the state machine halts (fsm_state.halted: a command of a type
 *     this version does not know, or a snapshot it cannot read), the
 *     driver serves nothing more; the host should stop and say why.
 *
 * The invariants kept (the allocator's section below states each with its
 * argument): I1 grants of one leader are disjoint and increasing; I2 a
 * grant never passes a committed mark; I3 a new leader starts above every
 * mark committed before its barrier; I4 a leader serves only within its
 * lease, and a new leader not before the old lease has run out (or the
 * old leader released it); I5 the range ends in an error, never a wrap;
 * I6 a grant stays within max_ahead_ms of the clock it is granted at (or of
 * the operator's floor, after an advance-to); I7 a leader serves above
 * everything handed out before its process started.
 */

/* This header's version, and the library's (tsoracle_version()): major,
 * minor and patch, as MAJOR * 10000 + MINOR * 100 + PATCH. The host
 * allocates the library's structures (lead_driver, ta_alloc, fsm_state),
 * so it checks at start that tsoracle_version() / 10000 equals
 * TSORACLE_VERSION_MAJOR: another major version may lay them out
 * differently (2.0: lead_driver gained the clock check, lead_clock; 3.0:
 * fsm_state gained lease_wait_ms, lead_driver the Lease proposal's state,
 * and ta_lead_begin the predecessor's wait).
 */
#define TSORACLE_VERSION_MAJOR 3
#define TSORACLE_VERSION_MINOR 0
#define TSORACLE_VERSION_PATCH 0
#define TSORACLE_VERSION                                                                                     \
	(TSORACLE_VERSION_MAJOR * 10000 + TSORACLE_VERSION_MINOR * 100 + TSORACLE_VERSION_PATCH)
#define TSORACLE_VERSION_STRING "3.0.0"

/* The library's log lines go to the host through one of these (no newline
 * in msg), at one of enum tsoracle_log_level (equal to the daemon's levels,
 * sidecar/log.h). NULL: the lines are dropped. */
enum tsoracle_log_level { TSORACLE_LOG_DEBUG = 0, TSORACLE_LOG_INFO, TSORACLE_LOG_WARN, TSORACLE_LOG_ERROR };
typedef void (*tsoracle_log_fn)(void *arg, int level, const char *msg);

/* The library's TSORACLE_VERSION, to compare with the header's at run time. */
int tsoracle_version(void);
/* The same as "major.minor.patch". */
const char *tsoracle_version_string(void);

/* ---- the allocator (sidecar/alloc.c) ------------------------------------------ */

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
 *      ta_lead_begin(a, t, mark, released, wait, clk), released saying
 *      whether the log ends in the release of term t - 1 and wait being
 *      the state's lease_wait_ms (I4). That returns the fence mark, which
 *      the caller proposes as Fence(fence mark, ta_lease_wait_ms) from
 *      cluster version 3 on, as HighWater(fence mark) below it.
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
 *      leader serves no earlier than W after it won, W being the largest
 *      of its own wait lease * (1 + drift) (ta_lease_wait_ms) and the
 *      state's lease_wait_ms, the wait every earlier leader that may still
 *      serve left in the log (fsm.c); an old leader's last committed entry
 *      was appended by a majority before any voter of the new leader
 *      voted, so the old leader has stopped before the new one starts, and
 *      every grant of the new leader follows, in real time, every grant of
 *      the old. Why lease_wait_ms covers every earlier leader that may
 *      still serve, from cluster version 3 on: a leader serves only once
 *      its fence committed, and its fence is Fence(mark, its wait), which
 *      raises lease_wait_ms to at least its wait (max); only Lease(w),
 *      from a leader that is established (below: no earlier leader serves
 *      again) and w its own wait, and Release, after which every earlier
 *      leader has stopped for good, lower it; and the leader in office
 *      when the version reaches 3, whose fence was a HighWater, stops
 *      serving before it proposes ClusterVersion(3) and fences again with
 *      a Fence once it is applied (lead_set_cluster_version). Below
 *      cluster version 3 lease_wait_ms stays 0 and every member's lease
 *      must be the same (docs/cluster.md). The one exception is a planned
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
 *   I6 (near the clock) A grant's last value has physical part <=
 *      max(now, F) + max_ahead_ms, now being the clock reading it is
 *      granted at and F the operator's floor (below; 0 until an
 *      advance-to commits): a grant that would pass it waits (TA_WAIT) for
 *      the clock, so `tso >> 18` stays within max_ahead_ms of the time the
 *      timestamp was issued, or of the time an operator moved the oracle to.
 *      The allocator reads "now" as max(clock, F) everywhere, so an
 *      advance lifts the cap with the floor instead of stalling grants
 *      until the clock reaches F.
 *   I7 (above everything before this start) A fence's floor is at least
 *      the start floor S = wall clock at the process's start + max_ahead_ms
 *      + the members' largest clock offset + 1 (ta_set_start_floor). Every
 *      timestamp handed out before this process started was granted (I6)
 *      at most max_ahead_ms past its granting leader's clock, at a moment
 *      before this start, on a clock at most that offset ahead of this
 *      member's; so it is below S << 18 whatever the data directory holds:
 *      a survivor that was behind (--force-new-cluster) or a directory
 *      restored from an old copy starts above it all. While a floor above
 *      F stays > now + max_ahead_ms, grants wait for the clock (I6): at
 *      most the offset and 1 ms after the start.
 *
 * The operator's floor F: a committed Advance(F) (fsm.c, tsoracle-ctl
 * advance-to) raises it; it only rises. Every grant made after it is
 * applied here starts at F << 18 or later (now >= F), and every later
 * leader reads it after its barrier, so every timestamp handed out after
 * the advance-to was answered has physical part >= F.
 */

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

	uint64_t floor_ms;             /* F: the operator's committed floor, ms (I6, I7) */
	uint64_t start_floor_ms;       /* S: every fence's floor is at least this (I7) */
	uint64_t start_floor_slack_ms; /* ... but at most this past now + max_ahead */

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
 * after a barrier, predecessor_released whether the log then ended in
 * the release of term epoch - 1 (fsm_predecessor_released; I4), and
 * predecessor_wait_ms the state's lease_wait_ms then (the wait earlier
 * leaders left in the log; 0 below cluster version 3). Sets the
 * floor max(H + 1, now) and returns the fence mark to propose (>= the
 * floor); or 0 with no change when the floor would pass the end of the
 * timestamp range (the caller then reports TA_EXHAUSTED), or when epoch is
 * 0. Not serving until that mark commits in this epoch and, unless the
 * predecessor released, the new-leader wait is over: the larger of
 * ta_lease_wait_ms(cfg) and predecessor_wait_ms, from now (I4). May be
 * called while leading an older epoch: it starts over in the new one.
 *
 * The floor is also at least the start floor (I7).
 *
 * Here and below, "now" is max(clk.wall_ms, F) read as at most
 * TSO_PHYSICAL_MAX.
 */
uint64_t ta_lead_begin(ta_alloc *a, uint64_t epoch, uint64_t high_water_ms, bool predecessor_released,
		       uint64_t predecessor_wait_ms, ta_clock clk);

/* The new-leader wait of cfg, mono ms: lease_ms * (1000 + drift_permille)
 * / 1000, rounded up, saturating. What a Fence or Lease of this member
 * carries (I4). */
uint64_t ta_lease_wait_ms(const ta_config *cfg);

/* Leadership lost (or stopping): stop serving at once, forget the epoch. */
void ta_lead_end(ta_alloc *a);

/* Sets S, the start floor (I7): every later ta_lead_begin's floor is at
 * least floor_ms, but never more than slack_ms past now + max_ahead_ms (a
 * clock that stepped back below its reading at the start would otherwise
 * make grants wait as long). The host calls it once, before Raft starts,
 * with floor_ms = its clock + max_ahead_ms + slack_ms. */
void ta_set_start_floor(ta_alloc *a, uint64_t floor_ms, uint64_t slack_ms);

/* F is at least floor_ms from now on (a committed Advance, read from the
 * state machine); lower values change nothing. "now" is max(clock, F) in
 * every computation (I6). */
void ta_raise_floor(ta_alloc *a, uint64_t floor_ms);

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
 * release (Release(term), below) promises to the next leader. */
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

/* ---- the log commands and the state machine (sidecar/fsm.c) --------------------- */

/*
 * The replicated state is H, the highest high-water mark (Unix ms) ever
 * committed, whether the log ends in a leader's release, and from command
 * set 3 on the wait a new leader owes the leaders before it.
 *
 *   HighWater(mark) applies as H = max(H, mark), so stale or reordered
 *   proposals can never lower it (docs/allocator.md). It also clears
 *   released_term: whoever appended it was leading, and serving or about to.
 *   Release(term) is appended by the leader of that term during a planned
 *   handover (node.c), after it has stopped serving for good in that term;
 *   it sets released_term. So released_term != 0 says: the last command in
 *   the log is the release of the leader of released_term, and no later
 *   leader has proposed anything since. A leader of term released_term + 1
 *   may then serve without waiting out the old lease (I4 above).
 *
 * Command:  u8 type, 7 zero bytes, then a body (libraft's uv backend wants
 *           entry sizes that are multiples of 8). This envelope is the
 *           same in every version; HighWater and Release have a body of
 *           one u64 argument (big-endian): the mark (FSM_CMD_HIGH_WATER) or
 *           the term (FSM_CMD_RELEASE), and their framing never changes (a
 *           new meaning takes a new type).
 * Advance(floor) (command set 2, tsoracle-ctl advance-to) applies as
 *   F = max(F, floor): the operator's floor (I6, I7). ClusterVersion(v)
 *   (command set 2) applies as cluster_version = max(cluster_version, v):
 *   the command set every member runs (below). Both clear released_term,
 *   as HighWater does.
 * Fence(mark, wait_ms) (command set 3; a body of two u64, 24 bytes in
 *   all): a new leader's fence from cluster version 3 on, in place of its
 *   HighWater(fence mark); wait_ms is its own new-leader wait
 *   (ta_lease_wait_ms). Applies as HighWater(mark) does (H = max(H, mark),
 *   released_term cleared) and sets lease_wait_ms = max(lease_wait_ms,
 *   wait_ms): every leader that served since the last lowering below has
 *   its wait in there (I4). Max, not the latest fence's: the leader of t - 1
 *   may commit its fence and lose before its own wait, which covered t - 2's
 *   longer lease, is over; t - 2 may then still serve when t wins.
 * Lease(wait_ms) (command set 3): proposed by an established leader
 *   (ta_established) whose own wait differs from lease_wait_ms (after a
 *   member with a longer lease led); applies as lease_wait_ms = wait_ms
 *   and clears released_term. Safe in log order whoever commits it: its
 *   proposer was established, so every leader before it has stopped for
 *   good, and wait_ms covers the proposer itself; any later leader that
 *   serves has its Fence after it in the log (a later term's entries
 *   follow it), whose max then holds that leader's wait too.
 * Release(term) also sets lease_wait_ms to 0: only an established leader
 *   releases, and after it every earlier leader and the releasing one
 *   have stopped for good (the releasing leader serves again only after a
 *   Fence of its own, which records its wait again).
 *
 * Versions (a rolling upgrade, docs/cluster.md): the cluster version is
 * the command set every member is known to apply; a log without a
 * ClusterVersion is at FSM_COMMAND_SET_FIRST. A leader proposes a command
 * of set v (fsm_cmd_command_set) only once the cluster version is at least
 * v, so a member of an older build never meets one; ClusterVersion(v)
 * itself is proposed only once every member reported knowing v
 * (tsoracle-ctl cluster-version). A member that meets a type it does not
 * know, or a ClusterVersion above its own set, halts (below).
 *
 * Snapshot: u32 FSM_SNAPSHOT_MAGIC, u8 version, u64 H, then in version 2
 *           u64 released_term, then in version 3 u64 F and u64 cluster
 *           version, then in version 4 u64 lease_wait_ms (big-endian).
 *           Version 1 (H alone) is read as released_term 0, versions 1
 *           and 2 as F 0 and cluster version 1, versions 1 to 3 as
 *           lease_wait_ms 0. tsoracled's state machine writes version 2
 *           while the cluster version is 1 (a member of set 1 reads up to
 *           2; F is 0 then), version 3 while it is 2 (a member of set 2
 *           reads up to 3; lease_wait_ms is 0 then), version 4 after;
 *           fsm_snapshot_put always version 4.
 *
 * What apply refuses, by one rule on every replica (docs/architecture.md,
 * "What the state machine refuses"): the verdict depends only on the
 * entry's bytes, so every replica of this version reaches the same state
 * from the same log.
 *
 *   - A malformed command (shorter than the envelope, a length that is not
 *     a multiple of 8, type 0, reserved bytes not zero, a known type with
 *     the wrong length: FSM_CMD_FENCE_SIZE for a Fence, FSM_CMD_SIZE for
 *     every other) or a HighWater, Advance or Fence mark above
 *     TSO_PHYSICAL_MAX (tso.h; no
 *     leader proposes one: alloc.c caps every mark there): refused. It
 *     changes nothing, apply returns success so that libraft goes on with
 *     the log (an error would stall apply at that entry for good, on
 *     restart too), and a warning names what was refused. Its *result is
 *     FSM_RESULT_REFUSED, so that the proposer (the driver, lead.c) counts
 *     it as failed: it must not raise its allocator's H to a mark the
 *     state machine did not apply.
 *   - A well-formed command of a type this version does not know: written
 *     by a newer tsoracled, whose meaning this one cannot apply. The FSM
 *     halts: apply returns an error, so libraft does not count the entry
 *     as applied (no snapshot of this member can cover it), this and
 *     every later apply changes nothing, and the node stops serving and
 *     the daemon exits with halt_reason (node.c, main.c). Upgraded, the
 *     member applies it from the log like every other member.
 *   - A snapshot that is malformed or of a newer format: restore refuses it
 *     and halts the same way (at start, tsoracled does not start).
 */

#define FSM_CMD_HIGH_WATER      1
#define FSM_CMD_RELEASE         2
#define FSM_CMD_ADVANCE         3 /* command set 2: Advance(floor ms) */
#define FSM_CMD_CLUSTER_VERSION 4 /* command set 2: ClusterVersion(command set) */
#define FSM_CMD_FENCE           5 /* command set 3: Fence(mark ms, wait ms) */
#define FSM_CMD_LEASE           6 /* command set 3: Lease(wait ms) */
#define FSM_CMD_LAST            FSM_CMD_LEASE
#define FSM_CMD_HEADER_SIZE     8  /* the envelope: type and 7 reserved zero bytes */
#define FSM_CMD_ALIGN           8  /* every command's length is a multiple of this */
#define FSM_CMD_SIZE            16 /* a command of one argument: every type but Fence */
#define FSM_CMD_FENCE_SIZE      24 /* Fence: two arguments */
#define FSM_CMD_MAX_SIZE        FSM_CMD_FENCE_SIZE
#define FSM_CMD_ARG_OFFSET      8
#define FSM_CMD_ARG2_OFFSET     16 /* Fence's wait_ms */
/* Command sets (the log's versions): 1 is HighWater and Release (every
 * tsoracled up to 0.1.0 of libtsoracle 1.1); 2 adds Advance and
 * ClusterVersion; 3 adds Fence and Lease (libtsoracle 3.0), with which
 * members may have different leases. FSM_COMMAND_SET is the newest this
 * build applies. */
#define FSM_COMMAND_SET_FIRST   1
#define FSM_COMMAND_SET_ADVANCE 2
#define FSM_COMMAND_SET_LEASE   3
#define FSM_COMMAND_SET         FSM_COMMAND_SET_LEASE
#define FSM_SNAPSHOT_MAGIC      UINT32_C(0x54534F53) /* "TSOS" */
#define FSM_SNAPSHOT_V2         2
#define FSM_SNAPSHOT_V3         3
#define FSM_SNAPSHOT_VERSION    4
#define FSM_SNAPSHOT_HEADER     5 /* magic and version */
#define FSM_SNAPSHOT_V1_SIZE    13
#define FSM_SNAPSHOT_V2_SIZE    21
#define FSM_SNAPSHOT_V3_SIZE    37
#define FSM_SNAPSHOT_SIZE       45
#define FSM_REASON_SIZE         256

typedef struct fsm_state {
	uint64_t high_water_ms;            /* H */
	uint64_t released_term;            /* the log ends in Release(this term); 0: not */
	uint64_t floor_ms;                 /* F: the highest Advance applied (I6), 0: none */
	uint64_t cluster_version;          /* the highest ClusterVersion applied; 0: none (1) */
	uint64_t lease_wait_ms;            /* the wait a new leader owes earlier ones (I4); 0 below set 3 */
	uint64_t applied;                  /* commands applied since start (status) */
	uint64_t refused;                  /* commands refused since start (malformed, out of range) */
	bool halted;                       /* an unknown command or a refused snapshot: stop */
	char halt_reason[FSM_REASON_SIZE]; /* why, for people, when halted */
	tsoracle_log_fn log;               /* refusals and the halt, for people (fsm_set_log) */
	void *log_arg;
} fsm_state;

/*
 * For a host whose log carries its own commands too (the state lives
 * inside its own state machine): its apply passes every TSO command, in
 * log order, to fsm_apply_cmd_result, with libraft's result pointer; its
 * snapshot holds fsm_snapshot_put's FSM_SNAPSHOT_SIZE bytes, and its
 * restore passes them to fsm_snapshot_get. Each returns 0, or
 * RAFT_MALFORMED when the state machine halts (halted, halt_reason; every
 * later call then fails too), which the host's apply or restore returns to
 * libraft. A malformed command is refused with 0: it changes nothing, on
 * every replica alike, and *result is FSM_RESULT_REFUSED (NULL for a
 * command applied), which libraft hands to the proposer's raft_apply
 * callback: the driver treats that proposal as failed.
 */
int fsm_apply_cmd_result(fsm_state *s, const void *cmd, size_t len, void **result);
/* The same without the verdict (version 1.0's): a host that calls this
 * instead leaves the driver to count a refused proposal as committed. */
int fsm_apply_cmd(fsm_state *s, const void *cmd, size_t len);
/* The *result of an apply that refused its command: only its address
 * matters. */
extern const uint8_t fsm_result_refused;
#define FSM_RESULT_REFUSED ((void *)(uintptr_t)&fsm_result_refused)
void fsm_snapshot_put(const fsm_state *s, uint8_t out[FSM_SNAPSHOT_SIZE]);
int fsm_snapshot_get(fsm_state *s, const void *snapshot, size_t len);

/* Sets up fsm (version 2 API) over state, with no log: a state machine for
 * a log of TSO commands only, as tsoracled's. */
void fsm_init(struct raft_fsm *fsm, fsm_state *state);

/* The refusals (warnings) and the halt (an error) go to log(arg, ...). */
void fsm_set_log(fsm_state *state, tsoracle_log_fn log, void *arg);

/* Writes the command of type (FSM_CMD_*) with its argument into cmd. */
void fsm_cmd_put(uint8_t cmd[FSM_CMD_SIZE], uint8_t type, uint64_t arg);

/* Writes Fence(mark, wait_ms) into cmd. */
void fsm_cmd_put_fence(uint8_t cmd[FSM_CMD_FENCE_SIZE], uint64_t mark, uint64_t wait_ms);

/* Encodes HighWater(mark) into a raft_malloc'ed buffer; 0 or RAFT_NOMEM. */
int fsm_encode_high_water(uint64_t mark, struct raft_buffer *buf);

/* Encodes Release(term) into a raft_malloc'ed buffer; 0 or RAFT_NOMEM. */
int fsm_encode_release(uint64_t term, struct raft_buffer *buf);

/* The command set that introduced command type (FSM_CMD_*): a leader
 * proposes it only at that cluster version or above. */
uint64_t fsm_cmd_command_set(uint8_t type);

/* The cluster version of the state: its highest ClusterVersion, at least
 * FSM_COMMAND_SET_FIRST. */
uint64_t fsm_cluster_version(const fsm_state *s);

/* True if a leader of term may skip the new-leader wait: its log's last
 * command (applied after its barrier) is the release of term - 1. */
bool fsm_predecessor_released(const fsm_state *s, uint64_t term);

/* ---- the leadership driver ------------------------------------------------ */

/* The longest the host may leave between two lead_sync calls, ms. Bounds
 * how late the driver notices a change of role and renews the lease; the
 * lease, not this watch, keeps order safe. */
#define LEAD_TICK_MS 10

/* ---- clock sanity (sidecar/lead_clock.c) ------------------------------------- */

/*
 * A leader's wall clock sets the physical part of every timestamp and the
 * marks it commits: a wrong one (a bad NTP source, a VM restored with an
 * old clock, an operator's typo) would drag the whole cluster's time along
 * with it, and a jump of years would burn the range for good. So the driver
 * follows a wall clock only where other clocks support it:
 *
 *   - Offsets. The host measures the other members' wall clocks (tsoracled:
 *     sidecar/clockprobe.c, a round trip every LEAD_CLOCK_PROBE_MS) and
 *     passes each reading to lead_clock_sample with the monotonic time of
 *     the round trip's midpoint: the peer's clock then reads, now,
 *     peer_wall + (mono_now - mid), to within rtt / 2 plus the drift since.
 *     A member's clock is supported when, counting itself, a majority of
 *     the voters have fresh estimates (younger than LEAD_CLOCK_SAMPLE_TTL_MS)
 *     within max_offset_ms of it. A member whose clock is not supported does
 *     not serve as leader: it does not fence, it stops serving at once if it
 *     was, it hands leadership to the best supported voter (raft_transfer)
 *     and says why in the log every LEAD_CLOCK_LOG_MS; lead_transfer refuses
 *     a target whose clock is known not to be supported.
 *   - Jumps. The driver remembers wall - mono at its last trusted reading.
 *     A wall clock more than max_offset_ms ahead of that projection (it
 *     jumped forward: the monotonic clock never jumps) is followed only if
 *     supported by readings of the others taken since the jump; otherwise
 *     the allocator is given the projection instead
 *     (the clock as it was, advanced by the monotonic clock), so no mark
 *     follows the jump, and a multi-member leader hands over as above. A
 *     jump back is always followed (the allocator never goes back, I1).
 *   - A sole voter has nothing to compare with. It starts serving with a
 *     clock more than max_start_gap_ms past the mark stored in its log only
 *     with the operator's word (trust_clock: tsoracled's --trust-clock),
 *     and follows no forward jump while it runs: it keeps the projection
 *     and says so in its log and status (docs/reliability.md, "Clocks").
 *
 * max_offset_ms 0 turns all of this off (the library's default, for a host
 * that measures no offsets); tsoracled's max-clock-offset defaults to
 * LEAD_CLOCK_DEFAULT_MAX_OFFSET_MS.
 */
typedef struct lead_driver lead_driver;

#define LEAD_CLOCK_DEFAULT_MAX_OFFSET_MS    500
/* A sole voter's clock may be this far past its stored mark at start. */
#define LEAD_CLOCK_DEFAULT_MAX_START_GAP_MS (UINT64_C(7) * 24 * 3600 * 1000)
/* How often the host measures each other member's clock, ms. */
#define LEAD_CLOCK_PROBE_MS                 250
/* A measurement older than this (monotonic ms) no longer counts. */
#define LEAD_CLOCK_SAMPLE_TTL_MS            3000
/* A refusal to lead for the clock's sake is logged at most this often, ms. */
#define LEAD_CLOCK_LOG_MS                   5000
/* A handover for the clock's sake is asked again at most this often, ms. */
#define LEAD_CLOCK_RETRY_MS                 500
/* Members whose measurements are kept (libraft voters and spares). */
#define LEAD_CLOCK_MAX_MEMBERS              16

typedef struct lead_clock_sample {
	uint64_t id;           /* member; 0: free slot */
	uint64_t peer_wall_ms; /* its wall clock ... */
	uint64_t mid_mono_ms;  /* ... read at this member's monotonic time */
	uint64_t rtt_ms;       /* the round trip it was read in */
} lead_clock_sample;

/* lead_clock_judge's answer for one reading. */
typedef struct lead_clock_verdict {
	ta_clock clk;      /* what the allocator is given: the reading, or
			    * the projection while a jump is not followed */
	bool checked;      /* the check is on (max_offset_ms > 0) */
	bool supported;    /* a majority of voters' clocks agree with the reading */
	bool held;         /* the reading jumped ahead and is not followed */
	bool start_gap;    /* sole voter: far past its stored mark, not trusted */
	unsigned support;  /* voters (self included) whose clocks agree */
	unsigned voters;   /* voters in the configuration */
	int64_t offset_ms; /* the reading minus the median of the voters' clocks */
	uint64_t ahead_ms; /* held: how far the reading is past clk.wall_ms */
} lead_clock_verdict;

typedef struct lead_clock {
	uint64_t max_offset_ms;    /* 0: no check */
	uint64_t max_start_gap_ms; /* sole voter at start */
	bool trust_clock;          /* the operator's word: the start gap is fine */
	bool have_base;
	int64_t base_ms; /* wall - mono at the last trusted reading */
	bool jump_seen;  /* a jump is held, since jump_mono_ms: only readings
			  * of the others since may vouch for it */
	uint64_t jump_mono_ms;
	bool start_checked;    /* the start gap was judged (at the first fence) */
	bool start_refused;    /* ... and refused: no serving in this process */
	uint64_t start_gap_ms; /* what it was (status) */
	lead_clock_sample samples[LEAD_CLOCK_MAX_MEMBERS];
	lead_clock_verdict last; /* at the last sync, for status */
	uint64_t logged_at;      /* mono ms of the last refusal logged; 0: none */
	uint64_t retry_at;       /* mono ms before which no handover is asked again */
	uint64_t refusals;       /* syncs at which the clock kept this member from leading */
} lead_clock;

/* Turns the check on (max_offset_ms > 0) with these limits; the driver
 * starts with it off. */
void lead_clock_configure(lead_driver *d, uint64_t max_offset_ms, uint64_t max_start_gap_ms,
			  bool trust_clock);

/* Member id's wall clock read peer_wall_ms at this member's monotonic time
 * mid_mono_ms (the midpoint of a round trip of rtt_ms). Measurements with a
 * round trip longer than max_offset_ms are dropped (they say too little). */
void lead_clock_sample_add(lead_driver *d, uint64_t id, uint64_t peer_wall_ms, uint64_t mid_mono_ms,
			   uint64_t rtt_ms);

/* The verdict on raw, as the driver applies it (changes nothing). */
void lead_clock_judge(const lead_driver *d, ta_clock raw, lead_clock_verdict *v);

/* What the driver does with each reading (lead_sync): judges it, and
 * moves the trusted base to it unless it is held; returns verdict->clk. */
ta_clock lead_clock_observe(lead_driver *d, ta_clock raw, lead_clock_verdict *verdict);

/* The clock the allocator is given for raw (lead_grant, lead_room). */
ta_clock lead_clock_view(const lead_driver *d, ta_clock raw);

/* The verdict lets this member lead: the check is off, or its clock is
 * supported and it is not a sole voter refused for its start gap. */
bool lead_clock_ok(const lead_clock_verdict *verdict);

/* The voter (not this member) whose clock the most voters agree with,
 * among those a majority agree with; 0: none known. */
uint64_t lead_clock_pick_target(const lead_driver *d, ta_clock raw);

/* Before the first fence of a sole voter: false if its clock is more than
 * max_start_gap_ms past stored_mark_ms (H, read after the barrier) and the
 * operator has not said to trust it; *gap_ms is how far past it is. Judged
 * once per process; true whenever the check is off or there are other
 * voters (their clocks judge this one). */
bool lead_clock_start_allows(lead_driver *d, ta_clock raw, uint64_t stored_mark_ms, uint64_t *gap_ms);

/* Member id's clock against the voters' (self included): whether a
 * majority agree with it; false when it was not measured lately. */
bool lead_clock_member_supported(const lead_driver *d, uint64_t id, ta_clock raw);

/* What the host provides. Only kick is required. */
typedef struct lead_host {
	void *arg; /* passed to every callback */
	/* Call lead_sync soon, from the host's loop. May be called from
	 * inside a libraft callback: it must only schedule (a zero timer). */
	void (*kick)(void *arg);
	/* persist_high_water: append the TSO command cmd[0..len) to the log as
	 * (part of) one entry, by raft_apply(raft, req, ..., cb) with the
	 * driver's req and cb, and return raft_apply's result. A host whose
	 * log carries its own commands too wraps cmd in its envelope here, and
	 * its state machine passes the unwrapped bytes to fsm_apply_cmd. cmd
	 * is the driver's: copy it. NULL: lead_host_propose_default. */
	int (*propose)(void *arg, struct raft *raft, struct raft_apply *req, const uint8_t *cmd, size_t len,
		       raft_apply_cb cb);
	/* Grants that had to wait may succeed now. Called from lead_sync. */
	void (*ready)(void *arg);
	/* The driver's log lines. */
	tsoracle_log_fn log;
	/* Lines below this level are not even formatted. */
	int log_level;
} lead_host;

/*
 * Whether libraft 0.22.1 takes a proposal now: this member leads and is not
 * handing leadership over (raft_apply's first check). Otherwise raft_apply
 * refuses it with RAFT_NOTLEADER before it takes the entry's buffer, and a
 * refused buffer must not be freed (libraft may have released it already
 * on its other failure paths): a host asks this before it allocates an
 * entry, so that such a refusal leaks nothing.
 */
bool lead_raft_takes_proposals(const struct raft *raft);

/* The TSO command as the whole entry: raft_apply of a copy of cmd;
 * RAFT_NOTLEADER, allocating nothing, unless lead_raft_takes_proposals. */
int lead_host_propose_default(void *arg, struct raft *raft, struct raft_apply *req, const uint8_t *cmd,
			      size_t len, raft_apply_cb cb);

/* Events, for the host's status and tests. */
typedef struct lead_counters {
	uint64_t fences;             /* terms begun: ta_lead_begin succeeded */
	uint64_t released_fences;    /* ... of which without the new-leader wait */
	uint64_t proposals;          /* HighWater proposals libraft accepted */
	uint64_t commits;            /* ... that committed and were applied (not refused) */
	uint64_t refused_proposals;  /* raft_apply refused at once */
	uint64_t handovers;          /* handovers started */
	uint64_t released_handovers; /* ... with a release */
	uint64_t leases;             /* Lease proposals that committed and were applied */
} lead_counters;

/* lead_transfer's results. */
enum lead_transfer_result {
	LEAD_TRANSFER_STARTED = 0, /* a new handover; *handover numbers it */
	LEAD_TRANSFER_JOINED,      /* one was under way: *handover is its number */
	LEAD_TRANSFER_NOT_LEADER,  /* raft says this member does not lead */
	LEAD_TRANSFER_BAD_TARGET,  /* target is this member or not a voter, or there is no other voter */
	LEAD_TRANSFER_CLOCK,       /* target's wall clock is not within max-clock-offset of a majority
				    * of the voters' clocks, or was not measured lately */
	LEAD_TRANSFER_REFUSED,     /* libraft refused (raft_transfer), logged */
	LEAD_TRANSFER_NOMEM,       /* out of memory */
};

/*
 * The driver's state: the host owns the memory and reads it freely
 * (alloc, counters), but changes it only through lead_* calls.
 */
struct lead_driver {
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

	/* Cluster version 3 (I4): the wait in the log. */
	bool lease_inflight;  /* a Lease(own wait) proposed, not yet answered */
	uint64_t raised_term; /* the term whose leader stopped to raise the cluster version to
			       * 3 while established: its next fence skips the wait */

	lead_counters counters;
	lead_clock clock; /* clock sanity (lead_clock_*) */
};

/* Starts as a non-leader with a fresh allocator (cfg checked by
 * ta_config_check), over raft (initialized by the host) and the state its
 * state machine applies. host is copied. */
void lead_init(lead_driver *d, struct raft *raft, const fsm_state *state, const ta_config *cfg,
	       const lead_host *host);

/* Sets the allocator's start floor (ta_set_start_floor, I7): the host
 * calls it once, before raft_start, with its wall clock at start +
 * max_ahead_ms + slack_ms, slack_ms being the largest clock offset between
 * members + 1. */
void lead_set_start_floor(lead_driver *d, uint64_t floor_ms, uint64_t slack_ms);

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
 * TA_NOT_LEADER as soon as libraft no longer says this member leads (a
 * step-down in the same term, as a leader's own removal commits, included),
 * before the next sync. From the host's loop only. */
int lead_grant(lead_driver *d, ta_clock clk, uint32_t n, uint64_t *first);

/* How many timestamps one lead_grant could take at clk without waiting
 * (ta_room): a host that batches requests sizes its batch by it. */
uint64_t lead_room(const lead_driver *d, ta_clock clk);

/* True if a grant could succeed at clk (ta_serving, and libraft says this
 * member leads). */
bool lead_serving(const lead_driver *d, ta_clock clk);

/*
 * A planned handover to voter target (0: Raft's pick, a caught-up voter),
 * or joins the one under way. Stops serving at once. An established leader
 * (ta_established) first commits Release(term), so that its successor
 * skips the new-leader wait (I4 above); otherwise it asks libraft at
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

/* lead_advance's and lead_set_cluster_version's results. */
enum lead_admin_result {
	LEAD_ADMIN_STARTED = 0, /* proposed: cb runs once it is applied or failed */
	LEAD_ADMIN_NOT_LEADER,  /* not the leader, or not serving yet */
	LEAD_ADMIN_VERSION,     /* the cluster version (*value) is below the command's set */
	LEAD_ADMIN_BACKWARDS,   /* not forward: the next timestamp's ms, or the
				 * cluster version, is *value already */
	LEAD_ADMIN_TOO_FAR,     /* more than max_gap_ms past the leader's clock (*value) */
	LEAD_ADMIN_RANGE,       /* past the end of the range, or a cluster version
				 * above this build's set (*value: the most) */
	LEAD_ADMIN_REFUSED,     /* libraft refused the proposal (logged) */
	LEAD_ADMIN_NOMEM,
};

/* Called once when an operator's command committed and was applied here
 * (status 0), or failed (a RAFT_* code). Runs inside libraft's callback:
 * it may answer a client, but call nothing of libraft or this library. */
typedef void (*lead_admin_cb)(void *arg, int status);

/*
 * advance-to: proposes Advance(floor_ms) (tsoracle.h, the operator's floor
 * F), so that every timestamp handed out after it has applied has physical
 * part >= floor_ms. Only a serving leader, at cluster version 2 or above;
 * refused when floor_ms is not above the next timestamp's ms (never
 * backwards), or more than max_gap_ms past the leader's wall clock.
 */
int lead_advance(lead_driver *d, ta_clock clk, uint64_t floor_ms, uint64_t max_gap_ms, uint64_t *value,
		 lead_admin_cb cb, void *cb_arg);

/*
 * Proposes ClusterVersion(version): the caller has checked that every
 * member runs a build that knows command set version (tsoracle-ctl
 * cluster-version raise). Refused if not above the cluster version, or
 * above this build's FSM_COMMAND_SET. Raising to 3 or above from below
 * it, the leader stops serving before it proposes, and once the
 * ClusterVersion is applied it fences again with a Fence carrying its
 * wait, without the new-leader wait (it was established: no earlier
 * leader serves again): its fence was a HighWater, which left no wait in
 * the log, so until then a successor would not know its lease (I4).
 */
int lead_set_cluster_version(lead_driver *d, ta_clock clk, uint64_t version, uint64_t *value,
			     lead_admin_cb cb, void *cb_arg);

#endif /* TSORACLE_H */
