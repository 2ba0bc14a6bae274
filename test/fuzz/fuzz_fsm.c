/* fuzz_fsm.c: libFuzzer target for the state machine's command decoding and apply (sidecar/fsm.c). */
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
 * The input is a log: a sequence of [length byte][that many bytes] entries
 * (the last one cut short if the input ends). Each entry, in a buffer of
 * its exact size, is applied to two state machines, as two replicas would,
 * and every step must keep:
 *
 *   1. Determinism: both replicas return the same and hold the same state.
 *   2. H never decreases and never exceeds TSO_PHYSICAL_MAX.
 *   3. A refusal changes nothing but the refusal count; a halt changes
 *      nothing but the halt, and once halted every apply fails and
 *      changes nothing.
 *   4. An accepted command is a well-formed HighWater, Release, Advance,
 *      ClusterVersion, Fence or Lease (checked here against the format in tsoracle.h,
 *      independently of fsm.c) and has exactly its effect; a halt comes
 *      only from a well-formed command this build cannot apply.
 *
 * At the end, unless halted, a snapshot of the state restores to the same
 * state in a third machine.
 */

/* Entries up to this long: past the envelope and a few bodies. */
#define FUZZ_ENTRY_MAX 40

static bool same_state(const fsm_state *a, const fsm_state *b)
{
	return a->high_water_ms == b->high_water_ms && a->released_term == b->released_term &&
	       a->floor_ms == b->floor_ms && fsm_cluster_version(a) == fsm_cluster_version(b) &&
	       a->lease_wait_ms == b->lease_wait_ms && a->applied == b->applied && a->refused == b->refused &&
	       a->halted == b->halted && strcmp(a->halt_reason, b->halt_reason) == 0;
}

/* Applies a copy of the entry in a buffer of its exact size (as libraft
 * hands it over: no base for an empty entry); returns apply's return code.
 * The result libraft hands the proposer is the verdict: FSM_RESULT_REFUSED
 * for a refusal, NULL otherwise. */
static int apply_copy(replica *r, const uint8_t *p, size_t len)
{
	struct raft_buffer buf = {.base = NULL, .len = len};
	void *result = &result;
	uint64_t refused = r->st.refused;
	int rv;

	if (len > 0) {
		buf.base = raft_malloc(len);
		FUZZ_CHECK(buf.base != NULL);
		memcpy(buf.base, p, len);
	}
	rv = r->fsm.apply(&r->fsm, &buf, &result);
	FUZZ_CHECK(result == (r->st.refused > refused ? FSM_RESULT_REFUSED : NULL));
	raft_free(buf.base);
	return rv;
}

/* A type of the command sets this build applies (tsoracle.h). */
static bool known_type(uint8_t type)
{
	return type == FSM_CMD_HIGH_WATER || type == FSM_CMD_RELEASE || type == FSM_CMD_ADVANCE ||
	       type == FSM_CMD_CLUSTER_VERSION || type == FSM_CMD_FENCE || type == FSM_CMD_LEASE;
}

/* The format of tsoracle.h, read independently of fsm.c: a command this
 * build applies. */
static bool well_formed_known(const uint8_t *p, size_t len)
{
	uint64_t arg;

	if (len < FSM_CMD_SIZE || !known_type(p[0]) ||
	    len != (p[0] == FSM_CMD_FENCE ? FSM_CMD_FENCE_SIZE : FSM_CMD_SIZE))
		return false;
	for (size_t i = 1; i < FSM_CMD_HEADER_SIZE; i++)
		if (p[i] != 0)
			return false;
	arg = bytes_get_u64(p + FSM_CMD_ARG_OFFSET);
	if (p[0] == FSM_CMD_HIGH_WATER || p[0] == FSM_CMD_ADVANCE || p[0] == FSM_CMD_FENCE)
		return arg <= TSO_PHYSICAL_MAX;
	if (p[0] == FSM_CMD_CLUSTER_VERSION)
		return arg >= FSM_COMMAND_SET_FIRST && arg <= FSM_COMMAND_SET;
	return true;
}

/* A well-formed command this build cannot apply: an unknown type, or a
 * ClusterVersion of a newer command set. */
static bool well_formed_unknown(const uint8_t *p, size_t len)
{
	if (len < FSM_CMD_HEADER_SIZE || len % FSM_CMD_ALIGN != 0 || p[0] == 0)
		return false;
	for (size_t i = 1; i < FSM_CMD_HEADER_SIZE; i++)
		if (p[i] != 0)
			return false;
	if (!known_type(p[0]))
		return true;
	return p[0] == FSM_CMD_CLUSTER_VERSION && len == FSM_CMD_SIZE &&
	       bytes_get_u64(p + FSM_CMD_ARG_OFFSET) > FSM_COMMAND_SET;
}

static void check_step(const fsm_state *prev, const fsm_state *now, int rv, const uint8_t *p, size_t len)
{
	uint64_t arg;

	FUZZ_CHECK(now->high_water_ms >= prev->high_water_ms);
	FUZZ_CHECK(now->high_water_ms <= TSO_PHYSICAL_MAX);
	if (prev->halted) {
		FUZZ_CHECK(rv != 0 && same_state(prev, now));
		return;
	}
	if (rv != 0) {
		/* A halt: a well-formed envelope of an unknown type. */
		FUZZ_CHECK(now->halted && now->halt_reason[0] != '\0');
		FUZZ_CHECK(well_formed_unknown(p, len));
		FUZZ_CHECK(now->high_water_ms == prev->high_water_ms &&
			   now->released_term == prev->released_term && now->floor_ms == prev->floor_ms &&
			   now->cluster_version == prev->cluster_version && now->applied == prev->applied &&
			   now->refused == prev->refused && now->lease_wait_ms == prev->lease_wait_ms);
		return;
	}
	FUZZ_CHECK(!now->halted && !well_formed_unknown(p, len));
	if (now->refused != prev->refused) {
		FUZZ_CHECK(now->refused == prev->refused + 1 && !well_formed_known(p, len));
		FUZZ_CHECK(now->high_water_ms == prev->high_water_ms &&
			   now->released_term == prev->released_term && now->floor_ms == prev->floor_ms &&
			   now->cluster_version == prev->cluster_version && now->applied == prev->applied &&
			   now->lease_wait_ms == prev->lease_wait_ms);
		return;
	}
	FUZZ_CHECK(well_formed_known(p, len) && now->applied == prev->applied + 1);
	arg = bytes_get_u64(p + FSM_CMD_ARG_OFFSET);
	/* Each command changes its own part (as a max, but Release and
	 * Lease) and nothing else; every one but Release says the log no
	 * longer ends in a release. A Fence is a HighWater with a wait (max);
	 * a Lease sets the wait, a Release clears it. */
	FUZZ_CHECK(now->high_water_ms ==
		   ((p[0] == FSM_CMD_HIGH_WATER || p[0] == FSM_CMD_FENCE) && arg > prev->high_water_ms
			? arg
			: prev->high_water_ms));
	if (p[0] == FSM_CMD_FENCE) {
		uint64_t wait_ms = bytes_get_u64(p + FSM_CMD_ARG2_OFFSET);

		FUZZ_CHECK(now->lease_wait_ms ==
			   (wait_ms > prev->lease_wait_ms ? wait_ms : prev->lease_wait_ms));
	} else {
		FUZZ_CHECK(now->lease_wait_ms == (p[0] == FSM_CMD_LEASE     ? arg
						  : p[0] == FSM_CMD_RELEASE ? 0
									    : prev->lease_wait_ms));
	}
	FUZZ_CHECK(now->floor_ms == (p[0] == FSM_CMD_ADVANCE && arg > prev->floor_ms ? arg : prev->floor_ms));
	FUZZ_CHECK(
	    now->cluster_version ==
	    (p[0] == FSM_CMD_CLUSTER_VERSION && arg > prev->cluster_version ? arg : prev->cluster_version));
	FUZZ_CHECK(now->released_term == (p[0] == FSM_CMD_RELEASE ? arg : 0));
}

static void check_snapshot_round_trip(replica *a)
{
	replica c;
	struct raft_buffer *bufs = NULL;
	unsigned n = 0;

	FUZZ_CHECK(a->fsm.snapshot(&a->fsm, &bufs, &n) == 0 && n == 1);
	fsm_init(&c.fsm, &c.st);
	FUZZ_CHECK(c.fsm.restore(&c.fsm, &bufs[0]) == 0); /* frees bufs[0].base */
	raft_free(bufs);
	FUZZ_CHECK(c.st.high_water_ms == a->st.high_water_ms && c.st.released_term == a->st.released_term &&
		   c.st.floor_ms == a->st.floor_ms && c.st.lease_wait_ms == a->st.lease_wait_ms &&
		   fsm_cluster_version(&c.st) == fsm_cluster_version(&a->st));
	FUZZ_CHECK(!c.st.halted);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	replica a, b;
	size_t pos = 0;

	fsm_init(&a.fsm, &a.st);
	fsm_init(&b.fsm, &b.st);
	while (pos < size) {
		size_t len = data[pos++] % (FUZZ_ENTRY_MAX + 1);
		fsm_state prev = a.st;
		int rv, rvb;

		if (len > size - pos)
			len = size - pos;
		rv = apply_copy(&a, data + pos, len);
		rvb = apply_copy(&b, data + pos, len);
		FUZZ_CHECK(rv == rvb && same_state(&a.st, &b.st));
		check_step(&prev, &a.st, rv, data + pos, len);
		pos += len;
	}
	if (!a.st.halted)
		check_snapshot_round_trip(&a);
	return 0;
}
