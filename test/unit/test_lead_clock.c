/* test_lead_clock.c: the clock-sanity rules of sidecar/lead_clock.c, one table row per rule.
 *
 * Each row sets up a configuration (this member is node 1; voters 1..N,
 * then standbys), feeds readings of the other members' clocks and this
 * member's own readings in order, and checks the verdict on a last reading
 * (include/tsoracle.h, "clock sanity"). Every rule has a row that fails if
 * the rule is taken out of lead_clock.c: the offset estimate (a peer's
 * reading advanced by our monotonic clock), the limit on its round trip,
 * its freshness, the majority of voters (standbys do not count), the limit
 * itself, refusing to lead and picking whom to hand over to, a forward jump
 * of the wall clock against the monotonic one (CLOCK_BOOTTIME in tsoracled,
 * sidecar/clock.c) held and projected, vouched for only by readings taken
 * since the jump, a jump back followed, and a sole voter's start gap.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <raft.h>

#include "tsoracle.h"

#define LC_SELF         1
#define LC_T0_MS        INT64_C(1700000000000) /* every wall reading is T0 + a row's offset, ms */
#define LC_LIMIT_MS     500                    /* max-clock-offset of most rows, ms */
#define LC_RTT_MS       2                      /* a loopback round trip, ms */
#define LC_DAY_MS       (INT64_C(24) * 3600 * 1000)
#define LC_GAP_MS       ((uint64_t)(7 * LC_DAY_MS)) /* max start gap of the rows that judge one */
#define LC_MAX_STEPS    8
#define LC_ADDRESS_SIZE 32   /* "127.0.0.1:port" */
#define LC_PORT_BASE    7000 /* member i's Raft port is this + i (never dialled) */

/* An expectation: 0 (a row's default) is not checked. */
enum lc_want { LC_ANY, LC_NO, LC_YES };
typedef struct lc_want64 {
	bool on;
	int64_t v;
} lc_want64;
#define W(v_)                                                                                                \
	{                                                                                                    \
		true, (v_)                                                                                   \
	}

enum lc_op {
	LC_END,
	LC_SAMPLE,  /* lead_clock_sample_add(id, T0 + wall, mono, rtt) */
	LC_OBSERVE, /* lead_clock_observe(T0 + wall, mono): the driver's reading at a sync */
};

typedef struct lc_step {
	enum lc_op op;
	uint64_t id;
	int64_t wall; /* ms from T0 */
	uint64_t mono;
	uint64_t rtt;
} lc_step;

typedef struct lc_case {
	const char *rule; /* what fails if lead_clock.c loses the rule */
	unsigned voters, standbys;
	uint64_t limit_ms; /* max_offset_ms; 0: check off */
	bool trust_clock;
	lc_step steps[LC_MAX_STEPS];
	int64_t now_wall; /* the reading judged last (observed), ms from T0 */
	uint64_t now_mono;
	/* the expected verdict on it */
	enum lc_want checked, supported, held, ok;
	lc_want64 support, voter_count;
	lc_want64 clk_wall;         /* what the allocator is given, ms from T0 */
	lc_want64 offset_ms;        /* the reading minus the voters' median */
	lc_want64 pick;             /* lead_clock_pick_target */
	lc_want64 start_mark;       /* lead_clock_start_allows with H = T0 + this ... */
	enum lc_want start_allowed; /* ... allows it */
} lc_case;

#define S(id_, wall_, mono_)                                                                                 \
	{                                                                                                    \
		LC_SAMPLE, (id_), (wall_), (mono_), LC_RTT_MS                                                \
	}
#define O(wall_, mono_)                                                                                      \
	{                                                                                                    \
		LC_OBSERVE, 0, (wall_), (mono_), 0                                                           \
	}

static const lc_case lc_cases[] = {
    {.rule = "max_offset_ms 0 turns the check off",
     .voters = 3,
     .limit_ms = 0,
     .now_mono = 1000,
     .checked = LC_NO,
     .supported = LC_YES,
     .ok = LC_YES},
    {.rule = "majority: this member alone is no majority of 3",
     .voters = 3,
     .limit_ms = LC_LIMIT_MS,
     .now_mono = 1000,
     .checked = LC_YES,
     .supported = LC_NO,
     .ok = LC_NO,
     .support = W(1),
     .voter_count = W(3)},
    {.rule = "majority: one agreeing peer makes a majority of 3",
     .voters = 3,
     .limit_ms = LC_LIMIT_MS,
     .steps = {S(2, 0, 1000)},
     .now_wall = 10,
     .now_mono = 1010,
     .supported = LC_YES,
     .ok = LC_YES,
     .support = W(2),
     .voter_count = W(3)},
    {.rule = "majority: of all voters, not of those measured (2 of 5 is none)",
     .voters = 5,
     .limit_ms = LC_LIMIT_MS,
     .steps = {S(2, 0, 1000)},
     .now_wall = 10,
     .now_mono = 1010,
     .supported = LC_NO,
     .ok = LC_NO,
     .support = W(2),
     .voter_count = W(5)},
    {.rule = "majority: standbys neither vote nor vouch",
     .voters = 3,
     .standbys = 2,
     .limit_ms = LC_LIMIT_MS,
     .steps = {S(4, 0, 1000), S(5, 0, 1000)},
     .now_wall = 10,
     .now_mono = 1010,
     .supported = LC_NO,
     .support = W(1),
     .voter_count = W(3)},
    {.rule = "estimate: a peer's reading advances with our monotonic clock",
     .voters = 3,
     .limit_ms = LC_LIMIT_MS,
     .steps = {S(2, 0, 1000)},
     .now_wall = 2000,
     .now_mono = 3000,
     .supported = LC_YES,
     .support = W(2)},
    {.rule = "estimate: a reading older than LEAD_CLOCK_SAMPLE_TTL_MS is still good at the TTL",
     .voters = 3,
     .limit_ms = LC_LIMIT_MS,
     .steps = {S(2, 0, 1000)},
     .now_wall = LEAD_CLOCK_SAMPLE_TTL_MS,
     .now_mono = 1000 + LEAD_CLOCK_SAMPLE_TTL_MS,
     .supported = LC_YES},
    {.rule = "estimate: a reading older than LEAD_CLOCK_SAMPLE_TTL_MS no longer counts",
     .voters = 3,
     .limit_ms = LC_LIMIT_MS,
     .steps = {S(2, 0, 1000)},
     .now_wall = LEAD_CLOCK_SAMPLE_TTL_MS + 1,
     .now_mono = 1000 + LEAD_CLOCK_SAMPLE_TTL_MS + 1,
     .supported = LC_NO,
     .support = W(1)},
    {.rule = "estimate: a round trip longer than the limit says nothing",
     .voters = 3,
     .limit_ms = LC_LIMIT_MS,
     .steps = {{LC_SAMPLE, 2, 0, 1000, LC_LIMIT_MS + 1}},
     .now_wall = 10,
     .now_mono = 1010,
     .supported = LC_NO,
     .support = W(1)},
    {.rule = "limit: a peer exactly max_offset_ms off agrees",
     .voters = 3,
     .limit_ms = LC_LIMIT_MS,
     .steps = {S(2, -LC_LIMIT_MS, 1000)},
     .now_wall = 0,
     .now_mono = 1000,
     .supported = LC_YES,
     .support = W(2)},
    {.rule = "limit: a clock 1 ms past max_offset_ms from the majority does not lead",
     .voters = 3,
     .limit_ms = LC_LIMIT_MS,
     .steps = {S(2, -LC_LIMIT_MS - 1, 1000), S(3, -LC_LIMIT_MS - 1, 1000)},
     .now_wall = 0,
     .now_mono = 1000,
     .supported = LC_NO,
     .ok = LC_NO,
     .support = W(1),
     .offset_ms = W(LC_LIMIT_MS + 1),
     .pick = W(2)},
    {.rule = "refusing to lead: hand over to a voter a majority agrees with, not the odd one",
     .voters = 3,
     .limit_ms = LC_LIMIT_MS,
     .steps = {S(2, 20000, 1000), S(3, 10000, 1000)},
     .now_wall = 10100,
     .now_mono = 1000,
     .supported = LC_YES,
     .support = W(2),
     .pick = W(3)},
    {.rule =
	 "refusing to lead: of two voters a majority agrees with, the one read last (the other may be down)",
     .voters = 3,
     .limit_ms = LC_LIMIT_MS,
     .steps = {S(2, 0, 1000), S(3, 1500, 2500)},
     .now_wall = 22000,
     .now_mono = 3000,
     .supported = LC_NO,
     .ok = LC_NO,
     .support = W(1),
     .pick = W(3)},
    {.rule = "refusing to lead: no voter a majority agrees with, no target",
     .voters = 3,
     .limit_ms = LC_LIMIT_MS,
     .steps = {S(2, 20000, 1000), S(3, 10000, 1000)},
     .now_wall = 0,
     .now_mono = 1000,
     .supported = LC_NO,
     .ok = LC_NO,
     .pick = W(0)},
    {.rule = "jump: a sole voter's wall clock 10 s ahead of wall - mono is held at the projection",
     .voters = 1,
     .limit_ms = LC_LIMIT_MS,
     .steps = {O(0, 1000)},
     .now_wall = 11000,
     .now_mono = 2000,
     .supported = LC_YES,
     .held = LC_YES,
     .clk_wall = W(1000)},
    {.rule = "jump: a step of max_offset_ms is no jump",
     .voters = 1,
     .limit_ms = LC_LIMIT_MS,
     .steps = {O(0, 1000)},
     .now_wall = 1000 + LC_LIMIT_MS,
     .now_mono = 2000,
     .held = LC_NO,
     .clk_wall = W(1000 + LC_LIMIT_MS)},
    {.rule = "jump: back is followed (the allocator never goes back itself)",
     .voters = 1,
     .limit_ms = LC_LIMIT_MS,
     .steps = {O(0, 1000)},
     .now_wall = -10000,
     .now_mono = 2000,
     .held = LC_NO,
     .clk_wall = W(-10000)},
    {.rule = "jump: a held reading does not move the base; the projection runs on",
     .voters = 1,
     .limit_ms = LC_LIMIT_MS,
     .steps = {O(0, 1000), O(10000, 2000)},
     .now_wall = 11000,
     .now_mono = 3000,
     .held = LC_YES,
     .clk_wall = W(2000)},
    {.rule = "jump: the base follows trusted readings (a slew within the limit)",
     .voters = 1,
     .limit_ms = LC_LIMIT_MS,
     .steps = {O(0, 1000), O(1400, 2000), O(2800, 3000)},
     .now_wall = 4200,
     .now_mono = 4000,
     .held = LC_NO,
     .clk_wall = W(4200)},
    {.rule = "jump: readings of the others older than the jump do not vouch for it",
     .voters = 3,
     .limit_ms = LC_LIMIT_MS,
     .steps = {S(2, 10000, 990), S(3, 10000, 990), O(0, 1000)},
     .now_wall = 11000,
     .now_mono = 1900,
     .held = LC_YES,
     .supported = LC_NO,
     .clk_wall = W(900)},
    {.rule = "jump: a majority's readings since the jump vouch for it",
     .voters = 3,
     .limit_ms = LC_LIMIT_MS,
     .steps = {S(2, 0, 990), S(3, 0, 990), O(0, 1000), O(11000, 2000), S(2, 11100, 2100), S(3, 11100, 2100)},
     .now_wall = 11200,
     .now_mono = 2200,
     .held = LC_NO,
     .supported = LC_YES,
     .clk_wall = W(11200)},
    {.rule = "jump: a minority's readings since the jump do not",
     .voters = 3,
     .limit_ms = LC_LIMIT_MS,
     .steps = {S(2, 0, 990), S(3, 0, 990), O(0, 1000), O(11000, 2000), S(2, 1100, 2100)},
     .now_wall = 11200,
     .now_mono = 2200,
     .held = LC_YES,
     .clk_wall = W(1200)},
    {.rule = "start gap: a sole voter 8 days past its stored mark does not serve",
     .voters = 1,
     .limit_ms = LC_LIMIT_MS,
     .now_wall = 8 * LC_DAY_MS,
     .now_mono = 1000,
     .start_mark = W(0),
     .start_allowed = LC_NO,
     .ok = LC_NO},
    {.rule = "start gap: ... unless the operator trusts its clock",
     .voters = 1,
     .limit_ms = LC_LIMIT_MS,
     .trust_clock = true,
     .now_wall = 8 * LC_DAY_MS,
     .now_mono = 1000,
     .start_mark = W(0),
     .start_allowed = LC_YES,
     .ok = LC_YES},
    {.rule = "start gap: 6 days is within max_start_gap_ms",
     .voters = 1,
     .limit_ms = LC_LIMIT_MS,
     .now_wall = 6 * LC_DAY_MS,
     .now_mono = 1000,
     .start_mark = W(0),
     .start_allowed = LC_YES,
     .ok = LC_YES},
    {.rule = "start gap: with other voters their clocks judge, not the gap",
     .voters = 3,
     .limit_ms = LC_LIMIT_MS,
     .steps = {S(2, 8 * LC_DAY_MS, 1000)},
     .now_wall = 8 * LC_DAY_MS,
     .now_mono = 1000,
     .start_mark = W(0),
     .start_allowed = LC_YES,
     .ok = LC_YES},
};

static uint64_t lc_wall(int64_t offset_ms)
{
	return (uint64_t)(LC_T0_MS + offset_ms);
}

static void lc_fail(const lc_case *c, const char *what, int64_t got, int64_t want, int *failures)
{
	print_error("  %s: %s is %" PRId64 ", want %" PRId64 "\n", c->rule, what, got, want);
	(*failures)++;
}

static void lc_check_bool(const lc_case *c, const char *what, enum lc_want want, bool got, int *failures)
{
	if (want != LC_ANY && (want == LC_YES) != got)
		lc_fail(c, what, got, want == LC_YES, failures);
}

static void lc_check(const lc_case *c, const char *what, lc_want64 want, int64_t got, int *failures)
{
	if (want.on && want.v != got)
		lc_fail(c, what, got, want.v, failures);
}

/* Runs one row on a fresh driver; returns how many expectations failed. */
static int lc_run(const lc_case *c)
{
	static struct raft raft;
	static lead_driver d;
	lead_clock_verdict v;
	ta_clock now = {lc_wall(c->now_wall), c->now_mono};
	int failures = 0;

	memset(&raft, 0, sizeof raft);
	memset(&d, 0, sizeof d);
	raft.id = LC_SELF;
	raft_configuration_init(&raft.configuration);
	for (unsigned i = 1; i <= c->voters + c->standbys; i++) {
		char address[LC_ADDRESS_SIZE];

		snprintf(address, sizeof address, "127.0.0.1:%u", LC_PORT_BASE + i);
		assert_int_equal(raft_configuration_add(&raft.configuration, i, address,
							i <= c->voters ? RAFT_VOTER : RAFT_STANDBY),
				 0);
	}
	d.raft = &raft;
	lead_clock_configure(&d, c->limit_ms, LC_GAP_MS, c->trust_clock);
	for (unsigned i = 0; i < LC_MAX_STEPS && c->steps[i].op != LC_END; i++) {
		const lc_step *s = &c->steps[i];
		ta_clock clk = {lc_wall(s->wall), s->mono};

		if (s->op == LC_SAMPLE)
			lead_clock_sample_add(&d, s->id, lc_wall(s->wall), s->mono, s->rtt);
		else
			(void)lead_clock_observe(&d, clk, &v);
	}
	if (c->start_mark.on) {
		uint64_t gap;

		lc_check_bool(c, "start allowed", c->start_allowed,
			      lead_clock_start_allows(&d, now, lc_wall(c->start_mark.v), &gap), &failures);
	}
	lc_check(c, "pick", c->pick, (int64_t)lead_clock_pick_target(&d, now), &failures);
	(void)lead_clock_observe(&d, now, &v);
	lc_check_bool(c, "checked", c->checked, v.checked, &failures);
	lc_check_bool(c, "supported", c->supported, v.supported, &failures);
	lc_check_bool(c, "held", c->held, v.held, &failures);
	lc_check_bool(c, "ok (may lead)", c->ok, lead_clock_ok(&v), &failures);
	lc_check(c, "support", c->support, v.support, &failures);
	lc_check(c, "voters", c->voter_count, v.voters, &failures);
	lc_check(c, "offset_ms", c->offset_ms, v.offset_ms, &failures);
	lc_check(c, "the allocator's wall clock (ms from T0)", c->clk_wall, (int64_t)v.clk.wall_ms - LC_T0_MS,
		 &failures);
	if (v.held) {
		lc_want64 ahead = W((int64_t)(lc_wall(c->now_wall) - v.clk.wall_ms));

		lc_check(c, "ahead_ms", ahead, (int64_t)v.ahead_ms, &failures);
	}
	/* Without a jump in the way, lead_clock_member_supported agrees with
	 * the verdict on this member. */
	if (v.checked && !v.held && !c->start_mark.on)
		lc_check(c, "member_supported(self)", (lc_want64)W(v.supported),
			 lead_clock_member_supported(&d, LC_SELF, now), &failures);
	/* The clock the allocator gets between syncs is the verdict's. */
	lc_check(c, "lead_clock_view", (lc_want64)W((int64_t)v.clk.wall_ms),
		 (int64_t)lead_clock_view(&d, now).wall_ms, &failures);
	raft_configuration_close(&raft.configuration);
	return failures;
}

static void test_rules(void **state)
{
	int failed_rows = 0;

	(void)state;
	for (size_t i = 0; i < sizeof lc_cases / sizeof lc_cases[0]; i++) {
		int f = lc_run(&lc_cases[i]);

		print_message("%s %s\n", f == 0 ? "ok    " : "FAILED", lc_cases[i].rule);
		failed_rows += f != 0;
	}
	assert_int_equal(failed_rows, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rules),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
