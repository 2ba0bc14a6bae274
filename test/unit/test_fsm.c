/* test_fsm.c: unit tests of the Raft state machine (sidecar/fsm.c): HighWater, Release, snapshots. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <raft.h>
#include <string.h>

#include "bytes.h"
#include "fsm.h"

typedef struct fixture {
	struct raft_fsm fsm;
	fsm_state st;
} fixture;

/* Applies buf (freed here, as libraft would) and returns fsm_apply's result. */
static int apply(fixture *f, struct raft_buffer buf)
{
	void *result = &result;
	int rv = f->fsm.apply(&f->fsm, &buf, &result);

	if (rv == 0)
		assert_null(result);
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

/* Wrong sizes and unknown types are refused and change nothing. */
static void test_malformed(void **state)
{
	fixture f;
	struct raft_buffer buf;

	(void)state;
	fsm_init(&f.fsm, &f.st);
	assert_int_equal(apply_high_water(&f, 500), 0);

	assert_int_equal(fsm_encode_high_water(900, &buf), 0);
	buf.len = FSM_CMD_SIZE - 8;
	assert_int_equal(apply(&f, buf), RAFT_MALFORMED);

	assert_int_equal(fsm_encode_high_water(900, &buf), 0);
	((uint8_t *)buf.base)[0] = 3;
	assert_int_equal(apply(&f, buf), RAFT_MALFORMED);

	assert_int_equal(f.st.high_water_ms, 500);
	assert_int_equal(f.st.applied, 1);
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
	snap = take_snapshot(&a);
	assert_int_equal(snap.len, FSM_SNAPSHOT_SIZE);

	fsm_init(&b.fsm, &b.st);
	assert_int_equal(apply_high_water(&b, 1000), 0);   /* replaced, not maxed */
	assert_int_equal(b.fsm.restore(&b.fsm, &snap), 0); /* frees snap */
	assert_int_equal(b.st.high_water_ms, 777);
	assert_true(fsm_predecessor_released(&b.st, 10));
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

/* Bad magic, unknown version, or a size that does not match the version. */
static void test_snapshot_malformed(void **state)
{
	fixture f;
	struct raft_buffer snap;
	uint8_t *p;

	(void)state;
	fsm_init(&f.fsm, &f.st);
	assert_int_equal(apply_high_water(&f, 777), 0);

	snap = take_snapshot(&f);
	p = snap.base;
	p[0] ^= 0xff;
	assert_int_equal(f.fsm.restore(&f.fsm, &snap), RAFT_MALFORMED);
	raft_free(snap.base);

	snap = take_snapshot(&f);
	p = snap.base;
	p[4] = 3;
	assert_int_equal(f.fsm.restore(&f.fsm, &snap), RAFT_MALFORMED);
	raft_free(snap.base);

	snap = take_snapshot(&f);
	p = snap.base;
	p[4] = 1; /* a version 1 header on a version 2 body */
	assert_int_equal(f.fsm.restore(&f.fsm, &snap), RAFT_MALFORMED);
	raft_free(snap.base);

	assert_int_equal(f.st.high_water_ms, 777);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_high_water_is_max), cmocka_unit_test(test_release),
	    cmocka_unit_test(test_malformed),         cmocka_unit_test(test_snapshot_round_trip),
	    cmocka_unit_test(test_snapshot_v1),       cmocka_unit_test(test_snapshot_malformed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
