/* test_fsm.c: unit tests of the Raft state machine (sidecar/fsm.c): HighWater, Release, Fence, Lease,
 * snapshots. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include <raft.h>
#include <string.h>

#include "bytes.h"
#include "tsoracle.h"
#include "tso.h"

typedef struct fixture {
	struct raft_fsm fsm;
	fsm_state st;
} fixture;

/* Applies buf (freed here, as libraft would) and returns fsm_apply's
 * return code; checks the verdict libraft hands the proposer: NULL for a
 * command applied, FSM_RESULT_REFUSED for one refused. */
static int apply(fixture *f, struct raft_buffer buf)
{
	void *result = &result;
	uint64_t refused = f->st.refused;
	int rv = f->fsm.apply(&f->fsm, &buf, &result);

	if (rv == 0)
		assert_ptr_equal(result, f->st.refused > refused ? FSM_RESULT_REFUSED : NULL);
	raft_free(buf.base);
	return rv;
}

static int apply_high_water(fixture *f, uint64_t mark)
{
	struct raft_buffer buf;

	assert_int_equal(fsm_encode_high_water(mark, &buf), 0);
	assert_int_equal(buf.len, FSM_CMD_SIZE);
	return apply(f, buf);
}

/* Applies Fence(mark, wait_ms) as a leader would propose it. */
static int apply_fence(fixture *f, uint64_t mark, uint64_t wait_ms)
{
	struct raft_buffer buf = {.base = raft_malloc(FSM_CMD_FENCE_SIZE), .len = FSM_CMD_FENCE_SIZE};

	assert_non_null(buf.base);
	fsm_cmd_put_fence(buf.base, mark, wait_ms);
	return apply(f, buf);
}

static int apply_release(fixture *f, uint64_t term)
{
	struct raft_buffer buf;

	assert_int_equal(fsm_encode_release(term, &buf), 0);
	assert_int_equal(buf.len, FSM_CMD_SIZE);
	return apply(f, buf);
}

/* HighWater applies as max: stale marks never lower H. */
static void test_high_water_is_max(void **state)
{
	fixture f;

	(void)state;
	fsm_init(&f.fsm, &f.st);
	assert_int_equal(apply_high_water(&f, 500), 0);
	assert_int_equal(apply_high_water(&f, 300), 0);
	assert_int_equal(f.st.high_water_ms, 500);
	assert_int_equal(apply_high_water(&f, 900), 0);
	assert_int_equal(f.st.high_water_ms, 900);
	assert_int_equal(f.st.applied, 3);
}

/*
 * Release(t) lets only the leader of term t + 1 skip the wait, and only
 * while it ends the log: any HighWater after it (a new leader's fence, or
 * the releasing leader taking over again) takes it back.
 */
static void test_release(void **state)
{
	fixture f;

	(void)state;
	fsm_init(&f.fsm, &f.st);
	assert_false(fsm_predecessor_released(&f.st, 1));
	assert_int_equal(apply_high_water(&f, 500), 0);
	assert_int_equal(apply_release(&f, 4), 0);
	assert_int_equal(f.st.high_water_ms, 500);
	assert_true(fsm_predecessor_released(&f.st, 5));
	assert_false(fsm_predecessor_released(&f.st, 4));
	assert_false(fsm_predecessor_released(&f.st, 6));
	assert_int_equal(apply_high_water(&f, 400), 0); /* even a stale mark */
	assert_false(fsm_predecessor_released(&f.st, 5));
	assert_int_equal(f.st.high_water_ms, 500);
	assert_int_equal(f.st.applied, 3);
}

/* A raft_malloc'ed command of len bytes: type, then arg at the argument's
 * offset if it fits; the rest zero. */
static struct raft_buffer raw_command(size_t len, uint8_t type, uint64_t arg)
{
	struct raft_buffer buf = {.base = raft_malloc(len > 0 ? len : 1), .len = len};
	uint8_t *p = buf.base;

	assert_non_null(p);
	memset(p, 0, len > 0 ? len : 1);
	if (len > 0)
		p[0] = type;
	if (len >= FSM_CMD_ARG_OFFSET + sizeof(uint64_t))
		bytes_put_u64(p + FSM_CMD_ARG_OFFSET, arg);
	return buf;
}

typedef struct bad_command {
	const char *what;
	size_t len;
	uint8_t type;
	uint64_t arg;
	size_t poke; /* a byte set to 0xff after encoding; 0: none */
} bad_command;

/*
 * Malformed commands, and a HighWater above the format's maximum, are
 * refused: apply succeeds (the log moves on), nothing changes (not even
 * the release at the end of the log), they are counted, and a later good
 * command applies as usual.
 */
static void test_refused(void **state)
{
	static const bad_command bad[] = {
	    {"empty", 0, 0, 0, 0},
	    {"shorter than the envelope", 4, FSM_CMD_HIGH_WATER, 0, 0},
	    {"not a multiple of 8", 17, FSM_CMD_HIGH_WATER, 900, 0},
	    {"envelope only", 8, FSM_CMD_HIGH_WATER, 0, 0},
	    {"HighWater too long", 24, FSM_CMD_HIGH_WATER, 900, 0},
	    {"Release too short", 8, FSM_CMD_RELEASE, 0, 0},
	    {"Release too long", 32, FSM_CMD_RELEASE, 7, 0},
	    {"type 0", 16, 0, 900, 0},
	    {"HighWater, reserved byte set", 16, FSM_CMD_HIGH_WATER, 900, 7},
	    {"Release, reserved byte set", 16, FSM_CMD_RELEASE, 7, 1},
	    {"unknown type, reserved byte set", 16, 9, 900, 3},
	    {"unknown type, odd length", 13, 9, 0, 0},
	    {"HighWater one above the maximum", 16, FSM_CMD_HIGH_WATER, TSO_PHYSICAL_MAX + 1, 0},
	    {"HighWater 2^46 - 1", 16, FSM_CMD_HIGH_WATER, (UINT64_C(1) << TSO_PHYSICAL_BITS) - 1, 0},
	    {"HighWater 2^64 - 1", 16, FSM_CMD_HIGH_WATER, UINT64_MAX, 0},
	    {"Fence of one argument", 16, FSM_CMD_FENCE, 900, 0},
	    {"Fence too long", 32, FSM_CMD_FENCE, 900, 0},
	    {"Fence, reserved byte set", 24, FSM_CMD_FENCE, 900, 5},
	    {"Fence mark above the maximum", 24, FSM_CMD_FENCE, TSO_PHYSICAL_MAX + 1, 0},
	    {"Lease too short", 8, FSM_CMD_LEASE, 0, 0},
	    {"Lease of two arguments", 24, FSM_CMD_LEASE, 220, 0},
	};
	fixture f;

	(void)state;
	fsm_init(&f.fsm, &f.st);
	assert_int_equal(apply_high_water(&f, 500), 0);
	assert_int_equal(apply_release(&f, 4), 0);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct raft_buffer buf = raw_command(bad[i].len, bad[i].type, bad[i].arg);

		if (bad[i].poke != 0)
			((uint8_t *)buf.base)[bad[i].poke] = 0xff;
		if (apply(&f, buf) != 0)
			fail_msg("%s: not accepted as a refusal", bad[i].what);
		if (f.st.high_water_ms != 500 || !fsm_predecessor_released(&f.st, 5) || f.st.halted ||
		    f.st.refused != i + 1 || f.st.lease_wait_ms != 0)
			fail_msg("%s: changed the state", bad[i].what);
	}
	assert_int_equal(f.st.applied, 2);
	/* The largest mark the format has is accepted, and apply goes on. */
	assert_int_equal(apply_high_water(&f, TSO_PHYSICAL_MAX), 0);
	assert_int_equal(f.st.high_water_ms, TSO_PHYSICAL_MAX);
	assert_false(fsm_predecessor_released(&f.st, 5));
	assert_int_equal(f.st.applied, 3);
}

/*
 * A well-formed command of a type this version does not know halts the
 * FSM: apply fails (libraft does not count it applied), the reason names
 * the type and says to upgrade, and nothing applies after it, not even a
 * good command.
 */
static void test_unknown_type_halts(void **state)
{
	static const size_t lens[] = {FSM_CMD_HEADER_SIZE, FSM_CMD_SIZE, 64};
	char type[32];

	(void)state;
	snprintf(type, sizeof type, "type %d", FSM_CMD_LAST + 1);
	for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
		fixture f;

		fsm_init(&f.fsm, &f.st);
		assert_int_equal(apply_high_water(&f, 500), 0);
		assert_int_not_equal(apply(&f, raw_command(lens[i], FSM_CMD_LAST + 1, 900)), 0);
		assert_true(f.st.halted);
		assert_non_null(strstr(f.st.halt_reason, type));
		assert_non_null(strstr(f.st.halt_reason, "upgrade"));
		assert_int_equal(f.st.high_water_ms, 500);
		/* libraft offers the same entry again, then nothing else. */
		assert_int_not_equal(apply(&f, raw_command(lens[i], FSM_CMD_LAST + 1, 900)), 0);
		assert_int_not_equal(apply_high_water(&f, 900), 0);
		assert_int_equal(f.st.high_water_ms, 500);
		assert_int_equal(f.st.applied, 1);
		assert_int_equal(f.st.refused, 0);
	}
}

static struct raft_buffer take_snapshot(fixture *f)
{
	struct raft_buffer *bufs = NULL, buf;
	unsigned n = 0;

	assert_int_equal(f->fsm.snapshot(&f->fsm, &bufs, &n), 0);
	assert_int_equal(n, 1);
	buf = bufs[0];
	raft_free(bufs);
	return buf;
}

/* A snapshot carries H and the release; restoring replaces the state. */
static void test_snapshot_round_trip(void **state)
{
	fixture a, b;
	struct raft_buffer snap;

	(void)state;
	fsm_init(&a.fsm, &a.st);
	assert_int_equal(apply_high_water(&a, 777), 0);
	assert_int_equal(apply_release(&a, 9), 0);
	/* Cluster version 1: format 2, which members of command set 1 read. */
	snap = take_snapshot(&a);
	assert_int_equal(snap.len, FSM_SNAPSHOT_V2_SIZE);
	assert_int_equal(((uint8_t *)snap.base)[4], FSM_SNAPSHOT_V2);

	fsm_init(&b.fsm, &b.st);
	assert_int_equal(apply_high_water(&b, 1000), 0);   /* replaced, not maxed */
	assert_int_equal(b.fsm.restore(&b.fsm, &snap), 0); /* frees snap */
	assert_int_equal(b.st.high_water_ms, 777);
	assert_true(fsm_predecessor_released(&b.st, 10));
	assert_int_equal(fsm_cluster_version(&b.st), FSM_COMMAND_SET_FIRST);

	/* Cluster version 2, an advance: format 3 carries both, and members
	 * of command set 2 read it (they read up to 3). */
	assert_int_equal(apply(&a, raw_command(FSM_CMD_SIZE, FSM_CMD_CLUSTER_VERSION, 2)), 0);
	assert_int_equal(apply(&a, raw_command(FSM_CMD_SIZE, FSM_CMD_ADVANCE, 5000)), 0);
	assert_int_equal(apply_release(&a, 11), 0);
	snap = take_snapshot(&a);
	assert_int_equal(snap.len, FSM_SNAPSHOT_V3_SIZE);
	assert_int_equal(((uint8_t *)snap.base)[4], FSM_SNAPSHOT_V3);
	fsm_init(&b.fsm, &b.st);
	b.st.lease_wait_ms = 3190; /* replaced: format 3 reads as no wait owed */
	assert_int_equal(b.fsm.restore(&b.fsm, &snap), 0);
	assert_int_equal(b.st.high_water_ms, 777);
	assert_int_equal(b.st.floor_ms, 5000);
	assert_int_equal(fsm_cluster_version(&b.st), 2);
	assert_int_equal(b.st.lease_wait_ms, 0);
	assert_true(fsm_predecessor_released(&b.st, 12));

	/* Cluster version 3, a fence with its wait: format 4 carries it. */
	assert_int_equal(apply(&a, raw_command(FSM_CMD_SIZE, FSM_CMD_CLUSTER_VERSION, 3)), 0);
	assert_int_equal(apply_fence(&a, 800, 3190), 0);
	snap = take_snapshot(&a);
	assert_int_equal(snap.len, FSM_SNAPSHOT_SIZE);
	assert_int_equal(((uint8_t *)snap.base)[4], FSM_SNAPSHOT_VERSION);
	fsm_init(&b.fsm, &b.st);
	assert_int_equal(b.fsm.restore(&b.fsm, &snap), 0);
	assert_int_equal(b.st.high_water_ms, 800);
	assert_int_equal(b.st.floor_ms, 5000);
	assert_int_equal(fsm_cluster_version(&b.st), 3);
	assert_int_equal(b.st.lease_wait_ms, 3190);
	assert_false(fsm_predecessor_released(&b.st, 12));
}

/*
 * Command set 2: Advance applies as max (the operator's floor only rises)
 * and ClusterVersion as max; both end a release at the end of the log; an
 * Advance past the format's end and a ClusterVersion(0) are refused; a
 * ClusterVersion above this build's set halts, asking for an upgrade.
 */
static void test_command_set_2(void **state)
{
	fixture f;

	(void)state;
	fsm_init(&f.fsm, &f.st);
	assert_int_equal(fsm_cluster_version(&f.st), FSM_COMMAND_SET_FIRST);
	assert_int_equal(fsm_cmd_command_set(FSM_CMD_HIGH_WATER), 1);
	assert_int_equal(fsm_cmd_command_set(FSM_CMD_RELEASE), 1);
	assert_int_equal(fsm_cmd_command_set(FSM_CMD_ADVANCE), 2);
	assert_int_equal(fsm_cmd_command_set(FSM_CMD_CLUSTER_VERSION), 2);
	assert_int_equal(apply(&f, raw_command(FSM_CMD_SIZE, FSM_CMD_CLUSTER_VERSION, 2)), 0);
	assert_int_equal(apply(&f, raw_command(FSM_CMD_SIZE, FSM_CMD_CLUSTER_VERSION, 1)), 0);
	assert_int_equal(fsm_cluster_version(&f.st), 2);
	assert_int_equal(apply_release(&f, 3), 0);
	assert_int_equal(apply(&f, raw_command(FSM_CMD_SIZE, FSM_CMD_ADVANCE, 9000)), 0);
	assert_false(fsm_predecessor_released(&f.st, 4));
	assert_int_equal(apply(&f, raw_command(FSM_CMD_SIZE, FSM_CMD_ADVANCE, 8000)), 0);
	assert_int_equal(f.st.floor_ms, 9000);
	assert_int_equal(apply(&f, raw_command(FSM_CMD_SIZE, FSM_CMD_ADVANCE, TSO_PHYSICAL_MAX + 1)), 0);
	assert_int_equal(apply(&f, raw_command(FSM_CMD_SIZE, FSM_CMD_CLUSTER_VERSION, 0)), 0);
	assert_int_equal(f.st.refused, 2);
	assert_int_equal(f.st.floor_ms, 9000);
	assert_int_not_equal(
	    apply(&f, raw_command(FSM_CMD_SIZE, FSM_CMD_CLUSTER_VERSION, FSM_COMMAND_SET + 1)), 0);
	assert_true(f.st.halted);
	assert_non_null(strstr(f.st.halt_reason, "ClusterVersion(4)"));
	assert_non_null(strstr(f.st.halt_reason, "upgrade"));
}

/*
 * Command set 3 (tsoracle.h, I4): Fence applies as HighWater (H = max,
 * the release at the end of the log taken back) and keeps the longest
 * wait (max); Lease sets it, even lower; Release clears it. A leader
 * proposes both only at cluster version 3, but apply judges the bytes
 * alone, at any version, as every replica must: a Fence in a log at
 * version 1 applies, and the snapshot then holds its wait (format 4).
 */
static void test_command_set_3(void **state)
{
	fixture f, g;
	struct raft_buffer snap;

	(void)state;
	assert_int_equal(fsm_cmd_command_set(FSM_CMD_FENCE), 3);
	assert_int_equal(fsm_cmd_command_set(FSM_CMD_LEASE), 3);
	fsm_init(&f.fsm, &f.st);
	assert_int_equal(apply_high_water(&f, 500), 0);
	assert_int_equal(apply_release(&f, 4), 0);
	assert_int_equal(apply_fence(&f, 400, 220), 0); /* a stale mark: H stays */
	assert_int_equal(f.st.high_water_ms, 500);
	assert_int_equal(f.st.lease_wait_ms, 220);
	assert_false(fsm_predecessor_released(&f.st, 5));
	/* The leader of t - 1 had a longer lease, the leader of t fences with
	 * a shorter one: t + 1 still owes t - 1's wait. */
	assert_int_equal(apply_fence(&f, 900, 3190), 0);
	assert_int_equal(apply_fence(&f, 950, 220), 0);
	assert_int_equal(f.st.high_water_ms, 950);
	assert_int_equal(f.st.lease_wait_ms, 3190);
	/* Not yet raised: still version 1, and the snapshot holds the wait. */
	assert_int_equal(fsm_cluster_version(&f.st), FSM_COMMAND_SET_FIRST);
	snap = take_snapshot(&f);
	assert_int_equal(((uint8_t *)snap.base)[4], FSM_SNAPSHOT_VERSION);
	fsm_init(&g.fsm, &g.st);
	assert_int_equal(g.fsm.restore(&g.fsm, &snap), 0);
	assert_int_equal(g.st.lease_wait_ms, 3190);
	/* An established leader's Lease lowers it, and ends a release too. */
	assert_int_equal(apply_release(&f, 6), 0);
	assert_int_equal(f.st.lease_wait_ms, 0);
	assert_true(fsm_predecessor_released(&f.st, 7));
	assert_int_equal(apply_fence(&f, 960, 3190), 0);
	assert_int_equal(apply(&f, raw_command(FSM_CMD_SIZE, FSM_CMD_LEASE, 220)), 0);
	assert_int_equal(f.st.lease_wait_ms, 220);
	assert_int_equal(apply_release(&f, 8), 0);
	assert_int_equal(apply(&f, raw_command(FSM_CMD_SIZE, FSM_CMD_LEASE, 330)), 0);
	assert_false(fsm_predecessor_released(&f.st, 9));
	assert_int_equal(f.st.lease_wait_ms, 330);
	assert_int_equal(f.st.high_water_ms, 960);
	assert_int_equal(f.st.refused, 0);
	assert_int_equal(f.st.applied, 10);
	assert_false(f.st.halted);
}

/* A version 1 snapshot (H alone, before releases existed) still restores. */
static void test_snapshot_v1(void **state)
{
	fixture f;
	struct raft_buffer buf = {.base = raft_malloc(FSM_SNAPSHOT_V1_SIZE), .len = FSM_SNAPSHOT_V1_SIZE};
	uint8_t *p = buf.base;

	(void)state;
	fsm_init(&f.fsm, &f.st);
	assert_int_equal(apply_release(&f, 2), 0);
	bytes_put_u32(p, FSM_SNAPSHOT_MAGIC);
	p[4] = 1;
	bytes_put_u64(p + 5, 4242);
	assert_int_equal(f.fsm.restore(&f.fsm, &buf), 0);
	assert_int_equal(f.st.high_water_ms, 4242);
	assert_false(fsm_predecessor_released(&f.st, 3));
}

/* Restores snap (with one byte changed at off to val, unless off < 0) into
 * a fresh FSM holding H = 777; returns restore's result. On success
 * restore has freed snap; on failure it is freed here, as libraft would. */
static int restore_poked(fixture *f, struct raft_buffer snap, long off, uint8_t val)
{
	int rv;

	fsm_init(&f->fsm, &f->st);
	assert_int_equal(apply_high_water(f, 777), 0);
	if (off >= 0)
		((uint8_t *)snap.base)[off] = val;
	rv = f->fsm.restore(&f->fsm, &snap);
	if (rv != 0)
		raft_free(snap.base);
	return rv;
}

/*
 * Bad magic, a newer or unknown version, a size that does not match the
 * version, a high-water above the format's maximum: refused with a reason
 * (a newer version says to upgrade), the FSM halts, and nothing applies
 * after it.
 */
static void test_snapshot_malformed(void **state)
{
	fixture src, f;
	struct raft_buffer snap;

	(void)state;
	fsm_init(&src.fsm, &src.st);
	assert_int_equal(apply_high_water(&src, 1234), 0);

	snap = take_snapshot(&src);
	assert_int_not_equal(restore_poked(&f, snap, 0, 0xAB), 0);
	assert_true(f.st.halted);
	assert_non_null(strstr(f.st.halt_reason, "magic"));
	assert_int_equal(f.st.high_water_ms, 777);
	assert_int_not_equal(apply_high_water(&f, 900), 0);
	assert_int_equal(f.st.high_water_ms, 777);

	snap = take_snapshot(&src);
	assert_int_not_equal(restore_poked(&f, snap, 4, FSM_SNAPSHOT_VERSION + 1), 0);
	assert_true(f.st.halted);
	assert_non_null(strstr(f.st.halt_reason, "version 5"));
	assert_non_null(strstr(f.st.halt_reason, "upgrade"));
	assert_int_equal(f.st.high_water_ms, 777);

	snap = take_snapshot(&src);
	assert_int_not_equal(restore_poked(&f, snap, 4, 0), 0);
	assert_true(f.st.halted);

	snap = take_snapshot(&src);
	assert_int_not_equal(restore_poked(&f, snap, 4, 1), 0); /* v1 header, v2 body */
	assert_true(f.st.halted);
	assert_non_null(strstr(f.st.halt_reason, "malformed"));

	snap = take_snapshot(&src);
	bytes_put_u64((uint8_t *)snap.base + FSM_SNAPSHOT_HEADER, TSO_PHYSICAL_MAX + 1);
	assert_int_not_equal(restore_poked(&f, snap, -1, 0), 0);
	assert_true(f.st.halted);
	assert_int_equal(f.st.high_water_ms, 777);

	snap = take_snapshot(&src);
	snap.len = 3; /* shorter than the header */
	assert_int_not_equal(restore_poked(&f, snap, -1, 0), 0);
	assert_true(f.st.halted);

	/* The control: the same snapshot, untouched, restores. */
	snap = take_snapshot(&src);
	assert_int_equal(restore_poked(&f, snap, -1, 0), 0);
	assert_false(f.st.halted);
	assert_int_equal(f.st.high_water_ms, 1234);
}

/* The embedding API a host with its own log envelope uses (tsoracle.h):
 * fsm_cmd_put's bytes through fsm_apply_cmd reach the same state as the
 * raft_fsm's apply, a malformed one is refused, an unknown type halts, and
 * fsm_snapshot_put / fsm_snapshot_get round-trip the state. */
static void test_embedding_api(void **state)
{
	fixture f;
	fsm_state host, copy;
	uint8_t cmd[FSM_CMD_SIZE];
	uint8_t snap[FSM_SNAPSHOT_SIZE];
	uint8_t fence[FSM_CMD_FENCE_SIZE];
	void *result;

	(void)state;
	fsm_init(&f.fsm, &f.st);
	memset(&host, 0, sizeof host);
	memset(&copy, 0, sizeof copy);
	assert_int_equal(apply_high_water(&f, 700), 0);
	assert_int_equal(apply_release(&f, 4), 0);
	fsm_cmd_put(cmd, FSM_CMD_HIGH_WATER, 700);
	assert_int_equal(fsm_apply_cmd(&host, cmd, sizeof cmd), 0);
	fsm_cmd_put(cmd, FSM_CMD_RELEASE, 4);
	assert_int_equal(fsm_apply_cmd(&host, cmd, sizeof cmd), 0);
	assert_int_equal(host.high_water_ms, f.st.high_water_ms);
	assert_int_equal(host.released_term, f.st.released_term);
	assert_true(fsm_predecessor_released(&host, 5));

	/* Half a command: refused, nothing changes. */
	assert_int_equal(fsm_apply_cmd(&host, cmd, FSM_CMD_HEADER_SIZE), 0);
	assert_int_equal(host.refused, 1);
	assert_int_equal(host.high_water_ms, 700);

	/* The verdict for the proposer: a mark above the format's maximum is
	 * refused (FSM_RESULT_REFUSED), one at it applied (NULL). */
	fsm_cmd_put(cmd, FSM_CMD_HIGH_WATER, TSO_PHYSICAL_MAX + 1);
	assert_int_equal(fsm_apply_cmd_result(&host, cmd, sizeof cmd, &result), 0);
	assert_ptr_equal(result, FSM_RESULT_REFUSED);
	assert_int_equal(host.refused, 2);
	assert_int_equal(host.high_water_ms, 700);
	fsm_cmd_put(cmd, FSM_CMD_HIGH_WATER, 800);
	assert_int_equal(fsm_apply_cmd_result(&host, cmd, sizeof cmd, &result), 0);
	assert_null(result);
	assert_int_equal(host.high_water_ms, 800);

	/* A Fence, as the driver proposes it, through the same call. */
	fsm_cmd_put_fence(fence, 800, 220);
	assert_int_equal(fsm_apply_cmd_result(&host, fence, sizeof fence, &result), 0);
	assert_null(result);
	assert_int_equal(host.lease_wait_ms, 220);

	fsm_snapshot_put(&host, snap);
	assert_int_equal(fsm_snapshot_get(&copy, snap, sizeof snap), 0);
	assert_int_equal(copy.lease_wait_ms, 220);
	assert_int_equal(copy.high_water_ms, 800);
	assert_int_equal(copy.released_term, 0); /* a HighWater after the release */

	/* A type this version does not know: halted, and stays so. */
	fsm_cmd_put(cmd, FSM_CMD_LAST + 1, 1);
	assert_int_equal(fsm_apply_cmd(&host, cmd, sizeof cmd), RAFT_MALFORMED);
	assert_true(host.halted);
	fsm_cmd_put(cmd, FSM_CMD_HIGH_WATER, 900);
	assert_int_equal(fsm_apply_cmd(&host, cmd, sizeof cmd), RAFT_MALFORMED);
	assert_int_equal(host.high_water_ms, 800);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_high_water_is_max),
	    cmocka_unit_test(test_release),
	    cmocka_unit_test(test_refused),
	    cmocka_unit_test(test_unknown_type_halts),
	    cmocka_unit_test(test_snapshot_round_trip),
	    cmocka_unit_test(test_command_set_2),
	    cmocka_unit_test(test_command_set_3),
	    cmocka_unit_test(test_snapshot_v1),
	    cmocka_unit_test(test_snapshot_malformed),
	    cmocka_unit_test(test_embedding_api),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
