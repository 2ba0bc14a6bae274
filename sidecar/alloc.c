/* alloc.c: the window allocator with its fence and lease (contract in include/tsoracle.h). */
#include "tsoracle.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

#include "err.h"
#include "tso.h"

/*
 * Everything here is arithmetic on the caller's clock readings and Raft
 * events; docs/allocator.md walks through it. Sums that could pass 2^64 on a
 * hostile input (a clock reading far in the future, a huge config value, a
 * corrupt mark) saturate instead of wrapping: a saturated bound only ever
 * makes the allocator refuse more, never hand out more.
 */

/* drift_permille is in thousandths. */
#define TA_PERMILLE           1000
/* Largest drift margin: 1000 permille, a new leader waits twice the lease. */
#define TA_MAX_DRIFT_PERMILLE 1000
/* The lease is renewed every lease_ms / TA_RENEWALS_PER_LEASE ms, so one
 * lost or slow renewal does not let it lapse. */
#define TA_RENEWALS_PER_LEASE 3

static uint64_t ta_min(uint64_t x, uint64_t y)
{
	return x < y ? x : y;
}

static uint64_t ta_max(uint64_t x, uint64_t y)
{
	return x > y ? x : y;
}

/* x + y, or UINT64_MAX if that does not fit. */
static uint64_t ta_add_sat(uint64_t x, uint64_t y)
{
	uint64_t sum = x + y;
	return sum < x ? UINT64_MAX : sum;
}

/*
 * The allocator's "now", ms: the wall clock, lifted to the operator's
 * committed floor F (ta_raise_floor: an advance-to), and read as at most the
 * last millisecond of the range: a clock past the end can only lead to
 * TA_EXHAUSTED, never to a wrap (I5). Every use of "now" (grant starts, the
 * fence floor, extension marks, the I6 cap) reads this, so after an advance
 * the allocator behaves exactly as if its clock read F: grants start at F or
 * later, and the cap now + max_ahead is lifted with it instead of stalling
 * the oracle until the clock reaches F (I6 as amended in tsoracle.h).
 */
static uint64_t ta_now_ms(const ta_alloc *a, ta_clock clk)
{
	return ta_min(ta_max(clk.wall_ms, a->floor_ms), TSO_PHYSICAL_MAX);
}

/* Mono ms a new leader waits before serving: the lease stretched by the
 * drift margin, rounded up (the safe direction), saturating. */
uint64_t ta_lease_wait_ms(const ta_config *cfg)
{
	uint64_t scaled;

	if (__builtin_mul_overflow(cfg->lease_ms, (uint64_t)TA_PERMILLE + cfg->drift_permille, &scaled))
		return UINT64_MAX;
	return scaled / TA_PERMILLE + (scaled % TA_PERMILLE != 0 ? 1 : 0);
}

/* Mono ms at which the current lease ends (exclusive). */
static uint64_t ta_lease_end(const ta_alloc *a)
{
	return ta_add_sat(a->lease_renewed_at, a->cfg.lease_ms);
}

/* Within [lease_not_before, lease end) at mono time mono_ms. */
static bool ta_in_lease(const ta_alloc *a, uint64_t mono_ms)
{
	return mono_ms >= a->lease_not_before && mono_ms < ta_lease_end(a);
}

/*
 * The mark window_ahead past from_ms, capped at now + max_ahead and at the
 * end of the range. May be below from_ms (cap hit): callers take a max.
 */
static uint64_t ta_ahead_mark(const ta_config *cfg, uint64_t from_ms, uint64_t now_ms)
{
	uint64_t mark =
	    ta_min(ta_add_sat(from_ms, cfg->window_ahead_ms), ta_add_sat(now_ms, cfg->max_ahead_ms));
	return ta_min(mark, TSO_PHYSICAL_MAX);
}

/* The mark an extension would propose to grow the window:
 * min(max(H + 1, now) + window_ahead, now + max_ahead, end of range).
 * It raises H only if it is > H (not at the cap, not at the end). */
static uint64_t ta_growth_mark(const ta_alloc *a, uint64_t now_ms)
{
	return ta_ahead_mark(&a->cfg, ta_max(ta_add_sat(a->high_water_ms, 1), now_ms), now_ms);
}

/* The window should grow: it is short, or a grant found it too small. */
static bool ta_wants_growth(const ta_alloc *a, uint64_t now_ms)
{
	return a->starved || a->high_water_ms < ta_add_sat(now_ms, a->cfg.extend_margin_ms);
}

/*
 * I2 and I6: the last ms a grant may reach now: H (committed) and now +
 * max_ahead (near the clock; an extension never proposes past it, but H
 * may be there already after the clock stepped back, or from a leader
 * whose clock was ahead), and the end of the range.
 */
static uint64_t ta_grant_limit_ms(const ta_alloc *a, ta_clock clk)
{
	uint64_t limit = ta_min(a->high_water_ms, ta_add_sat(ta_now_ms(a, clk), a->cfg.max_ahead_ms));
	return ta_min(limit, TSO_PHYSICAL_MAX);
}

void ta_config_default(ta_config *cfg)
{
	cfg->window_ahead_ms = TA_DEFAULT_WINDOW_AHEAD_MS;
	cfg->extend_margin_ms = TA_DEFAULT_EXTEND_MARGIN_MS;
	cfg->max_ahead_ms = TA_DEFAULT_MAX_AHEAD_MS;
	cfg->lease_ms = TA_DEFAULT_LEASE_MS;
	cfg->drift_permille = TA_DEFAULT_DRIFT_PERMILLE;
}

int ta_config_check(const ta_config *cfg, char *err, size_t errlen)
{
	if (cfg->window_ahead_ms == 0)
		return err_set(err, errlen, "window_ahead_ms must be > 0 (is 0)");
	if (cfg->extend_margin_ms == 0)
		return err_set(err, errlen, "extend_margin_ms must be > 0 (is 0)");
	if (cfg->max_ahead_ms == 0)
		return err_set(err, errlen, "max_ahead_ms must be > 0 (is 0)");
	if (cfg->lease_ms == 0)
		return err_set(err, errlen, "lease_ms must be > 0 (is 0)");
	if (cfg->drift_permille == 0)
		return err_set(err, errlen, "drift_permille must be > 0 (is 0)");
	if (cfg->extend_margin_ms >= cfg->window_ahead_ms)
		return err_set(err, errlen,
			       "extend_margin_ms (%" PRIu64 ") must be < window_ahead_ms (%" PRIu64 ")",
			       cfg->extend_margin_ms, cfg->window_ahead_ms);
	if (cfg->window_ahead_ms > cfg->max_ahead_ms)
		return err_set(err, errlen,
			       "window_ahead_ms (%" PRIu64 ") must be <= max_ahead_ms (%" PRIu64 ")",
			       cfg->window_ahead_ms, cfg->max_ahead_ms);
	if (cfg->lease_ms < TA_RENEWALS_PER_LEASE)
		return err_set(err, errlen, "lease_ms must be >= %d (is %" PRIu64 ")", TA_RENEWALS_PER_LEASE,
			       cfg->lease_ms);
	if (cfg->drift_permille > TA_MAX_DRIFT_PERMILLE)
		return err_set(err, errlen, "drift_permille must be <= %d (is %" PRIu32 ")",
			       TA_MAX_DRIFT_PERMILLE, cfg->drift_permille);
	return 0;
}

void ta_init(ta_alloc *a, const ta_config *cfg)
{
	*a = (ta_alloc){.cfg = *cfg};
}

/*
 * The start floor S as it applies at now: S, but at most slack_ms past
 * now + max_ahead. While the clock reads at least what it read at the
 * start, S is within that (S = start + max_ahead + slack), so this is S;
 * only a clock that has since stepped back below its reading at the start
 * (it was wrong then, or is now) is capped, so that grants never wait more
 * than slack_ms for the clock (I6) however wrong it was.
 */
static uint64_t ta_start_floor_now(const ta_alloc *a, uint64_t now_ms)
{
	uint64_t cap = ta_add_sat(ta_add_sat(now_ms, a->cfg.max_ahead_ms), a->start_floor_slack_ms);

	return ta_min(a->start_floor_ms, cap);
}

uint64_t ta_lead_begin(ta_alloc *a, uint64_t epoch, uint64_t high_water_ms, bool predecessor_released,
		       uint64_t predecessor_wait_ms, ta_clock clk)
{
	uint64_t now = ta_now_ms(a, clk);
	uint64_t high = ta_max(a->high_water_ms, high_water_ms);
	uint64_t floor_ms;
	uint64_t fence;

	if (epoch == 0)
		return 0;
	/* I3: high holds every mark committed before the barrier, so every
	 * timestamp any earlier leader could hand out is below floor << 18.
	 * I7: and start_floor_ms is above every timestamp handed out before
	 * this process started, whatever this data directory holds. */
	floor_ms = ta_max(ta_max(ta_add_sat(high, 1), now), ta_start_floor_now(a, now));
	if (floor_ms > TSO_PHYSICAL_MAX)
		return 0; /* I5: no room left for even one millisecond */
	fence = ta_max(floor_ms, ta_ahead_mark(&a->cfg, floor_ms, now));

	a->epoch = epoch;
	a->fenced = false;
	a->fence_mark = fence;
	a->high_water_ms = high;
	/* I1, I3: the first grant starts at floor << 18 or later. */
	a->last = tso_first_of_ms(floor_ms) - 1;
	a->starved = false;
	a->ext_inflight = true;
	a->ext_mark = fence;
	/* I4: serve no earlier than the longest wait owed after winning: this
	 * member's lease * (1 + drift), or the wait the log says an earlier
	 * leader that may still serve is owed (a member with a longer lease),
	 * unless the leader of the term before released (every earlier leader
	 * has stopped for good: tsoracle.h, I4). */
	a->lease_not_before =
	    predecessor_released
		? clk.mono_ms
		: ta_add_sat(clk.mono_ms, ta_max(ta_lease_wait_ms(&a->cfg), predecessor_wait_ms));
	a->lease_renewed_at = 0; /* no entry of this epoch committed yet */
	return fence;
}

void ta_set_start_floor(ta_alloc *a, uint64_t floor_ms, uint64_t slack_ms)
{
	a->start_floor_ms = floor_ms;
	a->start_floor_slack_ms = slack_ms;
}

void ta_raise_floor(ta_alloc *a, uint64_t floor_ms)
{
	/* A committed floor only rises (fsm.c applies Advance as max); a stale
	 * reading never lowers it. */
	if (floor_ms > a->floor_ms)
		a->floor_ms = ta_min(floor_ms, TSO_PHYSICAL_MAX);
}

void ta_lead_end(ta_alloc *a)
{
	/* H stays: it is still a committed lower bound. last_issued and the
	 * counters stay for status. */
	a->epoch = 0;
	a->fenced = false;
	a->fence_mark = 0;
	a->starved = false;
	a->ext_inflight = false;
	a->ext_mark = 0;
	a->lease_not_before = 0;
	a->lease_renewed_at = 0;
}

bool ta_extension_due(const ta_alloc *a, ta_clock clk)
{
	uint64_t now = ta_now_ms(a, clk);

	if (a->epoch == 0 || a->ext_inflight)
		return false;
	if (!a->fenced)
		return true; /* the fence proposal failed: propose it again */
	if (clk.mono_ms >= ta_add_sat(a->lease_renewed_at, a->cfg.lease_ms / TA_RENEWALS_PER_LEASE))
		return true;
	/* Growth is due only if a proposal can actually raise H: at the cap or
	 * at the end of the range it could not, and proposing would spin. */
	return ta_wants_growth(a, now) && ta_growth_mark(a, now) > a->high_water_ms;
}

uint64_t ta_extension_prepare(ta_alloc *a, ta_clock clk)
{
	uint64_t now = ta_now_ms(a, clk);
	uint64_t mark = a->high_water_ms; /* pure lease renewal by default */

	if (a->epoch == 0 || a->ext_inflight)
		return 0;
	if (ta_wants_growth(a, now))
		mark = ta_max(mark, ta_growth_mark(a, now)); /* == H at the cap */
	if (!a->fenced)
		mark = ta_max(mark, a->fence_mark); /* re-propose a failed fence */
	a->ext_inflight = true;
	a->ext_mark = mark;
	return mark;
}

void ta_extension_commit(ta_alloc *a, uint64_t epoch, uint64_t mark, uint64_t proposed_mono_ms)
{
	if (epoch == 0 || epoch != a->epoch)
		return; /* a stale epoch renews nothing: its lease is not ours */
	if (mark > a->high_water_ms) {
		/* I2: mark is committed. The window grew, so whatever starved
		 * may fit now; a grant that still does not fit starves again. */
		a->high_water_ms = mark;
		a->starved = false;
	}
	/* I4: proposed_mono_ms precedes the append by a majority. */
	a->lease_renewed_at = ta_max(a->lease_renewed_at, proposed_mono_ms);
	if (a->ext_inflight && mark == a->ext_mark)
		a->ext_inflight = false;
	if (!a->fenced && mark >= a->fence_mark)
		a->fenced = true;
}

void ta_extension_failed(ta_alloc *a, uint64_t epoch)
{
	if (epoch != 0 && epoch == a->epoch)
		a->ext_inflight = false;
}

bool ta_serving(const ta_alloc *a, ta_clock clk)
{
	return a->epoch != 0 && a->fenced && ta_in_lease(a, clk.mono_ms);
}

bool ta_established(const ta_alloc *a, ta_clock clk)
{
	return a->epoch != 0 && a->fenced && clk.mono_ms >= a->lease_not_before;
}

int ta_grant(ta_alloc *a, ta_clock clk, uint32_t n, uint64_t *first)
{
	uint64_t start;
	uint64_t end;

	if (n == 0 || n > TA_MAX_GRANT)
		return TA_INVALID;
	if (a->epoch == 0)
		return TA_NOT_LEADER;
	if (!a->fenced)
		return TA_FENCING;
	if (!ta_in_lease(a, clk.mono_ms))
		return TA_LEASE;
	if (a->last >= TSO_MAX)
		return TA_EXHAUSTED; /* I5: last + 1 would not be a timestamp */
	start = ta_max(tso_first_of_ms(ta_now_ms(a, clk)), a->last + 1);
	if (start > TSO_MAX - (n - 1))
		return TA_EXHAUSTED; /* I5: the range ends before start + n - 1 */
	end = start + (n - 1);
	if (tso_physical(end) > ta_grant_limit_ms(a, clk)) {
		a->starved = true; /* not consumed: the caller retries */
		return TA_WAIT;
	}
	/* Correct by I1, start > last: above every earlier grant of this epoch,
	 * and by I3 (last >= (floor << 18) - 1) above every earlier leader's;
	 * by I2, end's ms <= H, a committed mark; by I4, fenced and leased;
	 * by I6, end's ms <= max(now, F) + max_ahead (ta_now_ms); by I7 and the
	 * fence, above every timestamp handed out before this process started. */
	a->last = end;
	a->last_issued = end;
	a->grants++;
	a->timestamps += n;
	*first = start;
	return TA_OK;
}

uint64_t ta_room(const ta_alloc *a, ta_clock clk)
{
	uint64_t start;
	uint64_t limit;

	if (!ta_serving(a, clk) || a->last >= TSO_MAX)
		return 0;
	start = ta_max(tso_first_of_ms(ta_now_ms(a, clk)), a->last + 1);
	/* ta_grant_limit_ms is at most TSO_PHYSICAL_MAX: its last timestamp
	 * is at most TSO_MAX (I5). */
	limit = tso_last_of_ms(ta_grant_limit_ms(a, clk));
	if (start > limit)
		return 0;
	return ta_min(limit - start + 1, TA_MAX_GRANT);
}

const char *ta_result_str(int result)
{
	switch (result) {
	case TA_OK:
		return "ok";
	case TA_NOT_LEADER:
		return "not leader";
	case TA_FENCING:
		return "fence not committed yet";
	case TA_LEASE:
		return "outside the leader lease";
	case TA_WAIT:
		return "waiting for a window extension";
	case TA_INVALID:
		return "invalid count";
	case TA_EXHAUSTED:
		return "timestamp range exhausted";
	default:
		return "unknown result";
	}
}
