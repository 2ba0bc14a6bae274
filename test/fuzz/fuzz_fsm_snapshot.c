/* fuzz_fsm_snapshot.c: libFuzzer target for the state machine's snapshot restore (sidecar/fsm.c). */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <raft.h>

#include "bytes.h"
#include "tsoracle.h"
#include "fuzz_check.h"
#include "fuzz_sidecar.h"
#include "log.h"
#include "tso.h"

/*
 * The input is a snapshot as libraft would hand it over (a buffer of its
 * exact size), restored into a state machine that already holds a state.
 * Either restore succeeds, and the snapshot was one of the formats of
 * tsoracle.h (checked here independently of fsm.c), the state is exactly what
 * it says, and a snapshot of that state restores to it again; or it fails,
 * the machine is halted with a reason, its state is unchanged, and nothing
 * applies after it.
 */

#define FUZZ_PRIOR_H_MS     UINT64_C(1700000000000) /* the state before restore */
#define FUZZ_PRIOR_RELEASED 7

static void apply_ok(replica *r, int (*encode)(uint64_t, struct raft_buffer *), uint64_t arg)
{
	struct raft_buffer buf;
	void *result;

	FUZZ_CHECK(encode(arg, &buf) == 0);
	FUZZ_CHECK(r->fsm.apply(&r->fsm, &buf, &result) == 0);
	raft_free(buf.base);
}

/* What a snapshot holds. */
typedef struct snap {
	uint64_t h, released, floor, cluster_version, lease_wait;
} snap;

/* Whether the bytes are a snapshot tsoracle.h describes (versions 1 to 4,
 * each of its exact size, with H and F within the format and a cluster
 * version this build knows), and what they hold. */
static bool valid_snapshot(const uint8_t *p, size_t len, snap *s)
{
	if (len < FSM_SNAPSHOT_HEADER || bytes_get_u32(p) != FSM_SNAPSHOT_MAGIC)
		return false;
	if (!(p[4] == 1 && len == FSM_SNAPSHOT_V1_SIZE) && !(p[4] == 2 && len == FSM_SNAPSHOT_V2_SIZE) &&
	    !(p[4] == 3 && len == FSM_SNAPSHOT_V3_SIZE) && !(p[4] == 4 && len == FSM_SNAPSHOT_SIZE))
		return false;
	s->h = bytes_get_u64(p + FSM_SNAPSHOT_HEADER);
	s->released = p[4] >= 2 ? bytes_get_u64(p + FSM_SNAPSHOT_V1_SIZE) : 0;
	s->floor = p[4] >= 3 ? bytes_get_u64(p + FSM_SNAPSHOT_V2_SIZE) : 0;
	s->cluster_version = p[4] >= 3 ? bytes_get_u64(p + FSM_SNAPSHOT_V2_SIZE + 8) : FSM_COMMAND_SET_FIRST;
	s->lease_wait = p[4] >= 4 ? bytes_get_u64(p + FSM_SNAPSHOT_V3_SIZE) : 0;
	return s->h <= TSO_PHYSICAL_MAX && s->floor <= TSO_PHYSICAL_MAX &&
	       s->cluster_version <= FSM_COMMAND_SET;
}

static bool holds(const fsm_state *st, const snap *s)
{
	return st->high_water_ms == s->h && st->released_term == s->released && st->floor_ms == s->floor &&
	       st->lease_wait_ms == s->lease_wait &&
	       fsm_cluster_version(st) ==
		   (s->cluster_version > FSM_COMMAND_SET_FIRST ? s->cluster_version : FSM_COMMAND_SET_FIRST);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	replica r, again;
	struct raft_buffer buf = {.base = NULL, .len = size};
	struct raft_buffer *bufs = NULL;
	unsigned n = 0;
	snap want = {0, 0, 0, 0, 0};
	bool valid = valid_snapshot(data, size, &want);
	void *result;
	int rv;

	fsm_init(&r.fsm, &r.st);
	apply_ok(&r, fsm_encode_high_water, FUZZ_PRIOR_H_MS);
	apply_ok(&r, fsm_encode_release, FUZZ_PRIOR_RELEASED);
	buf.base = raft_malloc(size > 0 ? size : 1);
	FUZZ_CHECK(buf.base != NULL);
	memcpy(buf.base, data, size);
	rv = r.fsm.restore(&r.fsm, &buf);
	if (rv != 0) {
		raft_free(buf.base); /* libraft's, on failure */
		FUZZ_CHECK(!valid);
		FUZZ_CHECK(r.st.halted && r.st.halt_reason[0] != '\0');
		FUZZ_CHECK(r.st.high_water_ms == FUZZ_PRIOR_H_MS &&
			   r.st.released_term == FUZZ_PRIOR_RELEASED);
		FUZZ_CHECK(fsm_encode_high_water(FUZZ_PRIOR_H_MS + 1, &buf) == 0);
		FUZZ_CHECK(r.fsm.apply(&r.fsm, &buf, &result) != 0);
		raft_free(buf.base);
		FUZZ_CHECK(r.st.high_water_ms == FUZZ_PRIOR_H_MS);
		return 0;
	}
	FUZZ_CHECK(valid && !r.st.halted);
	FUZZ_CHECK(holds(&r.st, &want));
	FUZZ_CHECK(r.fsm.snapshot(&r.fsm, &bufs, &n) == 0 && n == 1);
	fsm_init(&again.fsm, &again.st);
	FUZZ_CHECK(again.fsm.restore(&again.fsm, &bufs[0]) == 0);
	raft_free(bufs);
	FUZZ_CHECK(holds(&again.st, &want));
	return 0;
}
