/* lead_clock.c: clock sanity for the leadership driver: the members' clock offsets, jumps, the start gap
 * (contract in include/tsoracle.h, "clock sanity"). */
#include "tsoracle.h"

#include <string.h>

void lead_clock_configure(lead_driver *d, uint64_t max_offset_ms, uint64_t max_start_gap_ms, bool trust_clock)
{
	d->clock.max_offset_ms = max_offset_ms;
	d->clock.max_start_gap_ms = max_start_gap_ms;
	d->clock.trust_clock = trust_clock;
}

void lead_clock_sample_add(lead_driver *d, uint64_t id, uint64_t peer_wall_ms, uint64_t mid_mono_ms,
			   uint64_t rtt_ms)
{
	lead_clock *k = &d->clock;
	lead_clock_sample *slot = NULL;

	/* A round trip longer than the limit bounds the offset by more than
	 * the limit itself: the reading says nothing either way. */
	if (id == 0 || (k->max_offset_ms > 0 && rtt_ms > k->max_offset_ms))
		return;
	for (unsigned i = 0; i < LEAD_CLOCK_MAX_MEMBERS; i++) {
		lead_clock_sample *s = &k->samples[i];

		if (s->id == id) {
			slot = s;
			break;
		}
		/* Else the free slot, or failing one the oldest reading. */
		if (slot == NULL || (slot->id != 0 && (s->id == 0 || s->mid_mono_ms < slot->mid_mono_ms)))
			slot = s;
	}
	slot->id = id;
	slot->peer_wall_ms = peer_wall_ms;
	slot->mid_mono_ms = mid_mono_ms;
	slot->rtt_ms = rtt_ms;
}

static uint64_t lc_absdiff(uint64_t a, uint64_t b)
{
	return a > b ? a - b : b - a;
}

/* Member id's wall clock now (at mono), from its latest fresh reading;
 * false if there is none. A peer's clock advances with ours between
 * readings (both run at the true rate within the drift margin), so the
 * estimate is its reading plus the monotonic time since. */
static bool lc_estimate(const lead_driver *d, uint64_t id, uint64_t mono, uint64_t min_mid, uint64_t *wall)
{
	for (unsigned i = 0; i < LEAD_CLOCK_MAX_MEMBERS; i++) {
		const lead_clock_sample *s = &d->clock.samples[i];

		if (s->id != id)
			continue;
		if (s->mid_mono_ms < min_mid)
			return false;
		if (mono >= s->mid_mono_ms) {
			if (mono - s->mid_mono_ms > LEAD_CLOCK_SAMPLE_TTL_MS)
				return false;
			*wall = s->peer_wall_ms + (mono - s->mid_mono_ms);
		} else {
			*wall = s->peer_wall_ms > s->mid_mono_ms - mono
				    ? s->peer_wall_ms - (s->mid_mono_ms - mono)
				    : 0;
		}
		return true;
	}
	return false;
}

/* Each voter's clock now as this member knows it (its own reading for
 * itself; a fresh estimate, read at min_mid or later, for the others).
 * Returns how many are known; *voters counts them all. */
static unsigned lc_voter_clocks(const lead_driver *d, ta_clock raw, uint64_t min_mid, uint64_t ids[],
				uint64_t walls[], unsigned *voters)
{
	const struct raft_configuration *conf = &d->raft->configuration;
	unsigned known = 0;

	*voters = 0;
	for (unsigned i = 0; i < conf->n; i++) {
		uint64_t id = conf->servers[i].id;
		uint64_t wall;

		if (conf->servers[i].role != RAFT_VOTER)
			continue;
		(*voters)++;
		if (id == d->raft->id)
			wall = raw.wall_ms;
		else if (!lc_estimate(d, id, raw.mono_ms, min_mid, &wall))
			continue;
		if (known < LEAD_CLOCK_MAX_MEMBERS) {
			ids[known] = id;
			walls[known] = wall;
			known++;
		}
	}
	return known;
}

/* How many of the known voters' clocks are within max_offset_ms of wall. */
static unsigned lc_support(const lead_driver *d, uint64_t wall, const uint64_t walls[], unsigned known)
{
	unsigned n = 0;

	for (unsigned i = 0; i < known; i++)
		if (lc_absdiff(walls[i], wall) <= d->clock.max_offset_ms)
			n++;
	return n;
}

static unsigned lc_quorum(unsigned voters)
{
	return voters / 2 + 1;
}

void lead_clock_judge(const lead_driver *d, ta_clock raw, lead_clock_verdict *v)
{
	const lead_clock *k = &d->clock;
	uint64_t ids[LEAD_CLOCK_MAX_MEMBERS], walls[LEAD_CLOCK_MAX_MEMBERS], sorted[LEAD_CLOCK_MAX_MEMBERS];
	unsigned known;
	int64_t proj = 0;
	bool jumped = false;

	memset(v, 0, sizeof *v);
	v->clk = raw;
	v->supported = true;
	if (k->max_offset_ms == 0)
		return;
	v->checked = true;
	/*
	 * A jump forward: the reading is past the last trusted one advanced by
	 * the monotonic clock (which never jumps) by more than the limit. Only
	 * readings of the others taken since the jump may vouch for it (an
	 * older one describes a clock that may have jumped back since); the
	 * first reading of a jump has none, so it is held at least until the
	 * next measurement.
	 */
	if (k->have_base) {
		proj = k->base_ms + (int64_t)raw.mono_ms;
		jumped = proj > 0 && raw.wall_ms > (uint64_t)proj + k->max_offset_ms;
	}
	known = lc_voter_clocks(d, raw, jumped ? (k->jump_seen ? k->jump_mono_ms : raw.mono_ms) : 0, ids,
				walls, &v->voters);
	v->support = lc_support(d, raw.wall_ms, walls, known);
	v->supported = v->voters > 0 && v->support >= lc_quorum(v->voters);
	/* The median of the known clocks, for people: how far this one is off. */
	memcpy(sorted, walls, known * sizeof walls[0]);
	for (unsigned i = 1; i < known; i++)
		for (unsigned j = i; j > 0 && sorted[j - 1] > sorted[j]; j--) {
			uint64_t t = sorted[j];

			sorted[j] = sorted[j - 1];
			sorted[j - 1] = t;
		}
	if (known > 0)
		v->offset_ms = (int64_t)raw.wall_ms - (int64_t)sorted[known / 2];
	/* The jump is followed only if a majority of the voters' clocks
	 * support it (so never by a sole voter, which nothing else supports);
	 * otherwise the allocator gets the projection, and no mark follows the
	 * jump. */
	if (jumped && (v->voters <= 1 || !v->supported)) {
		v->held = true;
		v->ahead_ms = raw.wall_ms - (uint64_t)proj;
		v->clk.wall_ms = (uint64_t)proj;
	}
	v->start_gap = k->start_refused;
}

ta_clock lead_clock_observe(lead_driver *d, ta_clock raw, lead_clock_verdict *v)
{
	lead_clock *k = &d->clock;

	lead_clock_judge(d, raw, v);
	if (v->checked && !v->held) {
		/* Trusted: the base follows slews and jumps back. */
		k->base_ms = (int64_t)raw.wall_ms - (int64_t)raw.mono_ms;
		k->have_base = true;
		k->jump_seen = false;
	} else if (v->held && !k->jump_seen) {
		k->jump_seen = true; /* readings from now on may vouch for it */
		k->jump_mono_ms = raw.mono_ms;
	}
	k->last = *v;
	return v->clk;
}

ta_clock lead_clock_view(const lead_driver *d, ta_clock raw)
{
	lead_clock_verdict v;

	lead_clock_judge(d, raw, &v);
	return v.clk;
}

bool lead_clock_ok(const lead_clock_verdict *v)
{
	return !v->checked || (v->supported && !v->start_gap);
}

bool lead_clock_member_supported(const lead_driver *d, uint64_t id, ta_clock raw)
{
	uint64_t ids[LEAD_CLOCK_MAX_MEMBERS], walls[LEAD_CLOCK_MAX_MEMBERS];
	unsigned voters;
	unsigned known = lc_voter_clocks(d, raw, 0, ids, walls, &voters);

	for (unsigned i = 0; i < known; i++)
		if (ids[i] == id)
			return lc_support(d, walls[i], walls, known) >= lc_quorum(voters);
	return false;
}

/* When member id's latest reading was taken (mono ms), 0 if none. */
static uint64_t lc_sample_mono(const lead_driver *d, uint64_t id)
{
	for (unsigned i = 0; i < LEAD_CLOCK_MAX_MEMBERS; i++)
		if (d->clock.samples[i].id == id)
			return d->clock.samples[i].mid_mono_ms;
	return 0;
}

/*
 * The voter with the most support, and among those the one read last: a
 * member that was just killed keeps a fresh-enough reading for up to
 * LEAD_CLOCK_SAMPLE_TTL_MS, and handing leadership to it fails and is
 * tried again (t/111: the old leader, killed, was picked by its lower id
 * while a live member's clock was as good). Liveness only: any pick is a
 * voter a majority's clocks support.
 */
uint64_t lead_clock_pick_target(const lead_driver *d, ta_clock raw)
{
	uint64_t ids[LEAD_CLOCK_MAX_MEMBERS], walls[LEAD_CLOCK_MAX_MEMBERS];
	unsigned voters;
	unsigned known = lc_voter_clocks(d, raw, 0, ids, walls, &voters);
	uint64_t best = 0, best_mono = 0;
	unsigned best_support = 0;

	for (unsigned i = 0; i < known; i++) {
		unsigned s;
		uint64_t mono;

		if (ids[i] == d->raft->id)
			continue;
		s = lc_support(d, walls[i], walls, known);
		mono = lc_sample_mono(d, ids[i]);
		if (s >= lc_quorum(voters) && (s > best_support || (s == best_support && mono > best_mono))) {
			best = ids[i];
			best_support = s;
			best_mono = mono;
		}
	}
	return best;
}

bool lead_clock_start_allows(lead_driver *d, ta_clock raw, uint64_t stored_mark_ms, uint64_t *gap_ms)
{
	lead_clock *k = &d->clock;
	lead_clock_verdict v;

	lead_clock_judge(d, raw, &v);
	if (!k->start_checked && v.checked && v.voters <= 1) {
		k->start_checked = true;
		k->start_gap_ms =
		    stored_mark_ms > 0 && raw.wall_ms > stored_mark_ms ? raw.wall_ms - stored_mark_ms : 0;
		k->start_refused = k->start_gap_ms > k->max_start_gap_ms && !k->trust_clock;
	}
	*gap_ms = k->start_gap_ms;
	return !k->start_refused;
}
