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
 *   4. An accepted command is a well-formed HighWater or Release (checked
 *      here against the format in fsm.h, independently of fsm.c) and has
 *      exactly its effect.
 *
 * At the end, unless halted, a snapshot of the state restores to the same
 * state in a third machine.
 */

/* Entries up to this long: past the envelope and a few bodies. */
#define FUZZ_ENTRY_MAX 40

static bool same_state(const fsm_state *a, const fsm_state *b)
{
	return a->high_water_ms == b->high_water_ms && a->released_term == b->released_term &&
	       a->applied == b->applied && a->refused == b->refused && a->halted == b->halted &&
	       strcmp(a->halt_reason, b->halt_reason) == 0;
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

/* The format of fsm.h, read independently of fsm.c. */
static bool well_formed_known(const uint8_t *p, size_t len)
{
	if (len != FSM_CMD_SIZE || (p[0] != FSM_CMD_HIGH_WATER && p[0] != FSM_CMD_RELEASE))
		return false;
	for (size_t i = 1; i < FSM_CMD_HEADER_SIZE; i++)
		if (p[i] != 0)
			return false;
	return p[0] != FSM_CMD_HIGH_WATER || bytes_get_u64(p + FSM_CMD_ARG_OFFSET) <= TSO_PHYSICAL_MAX;
}

static void check_step(const fsm_state *prev, const fsm_state *now, int rv, const uint8_t *p, size_t len)
{
	FUZZ_CHECK(now->high_water_ms >= prev->high_water_ms);
	FUZZ_CHECK(now->high_water_ms <= TSO_PHYSICAL_MAX);
	if (prev->halted) {
		FUZZ_CHECK(rv != 0 && same_state(prev, now));
		return;
	}
	if (rv != 0) {
		/* A halt: a well-formed envelope of an unknown type. */
		FUZZ_CHECK(now->halted && now->halt_reason[0] != '\0');
		FUZZ_CHECK(len >= FSM_CMD_HEADER_SIZE && len % FSM_CMD_ALIGN == 0);
		FUZZ_CHECK(p[0] != 0 && p[0] != FSM_CMD_HIGH_WATER && p[0] != FSM_CMD_RELEASE);
		FUZZ_CHECK(now->high_water_ms == prev->high_water_ms &&
			   now->released_term == prev->released_term && now->applied == prev->applied &&
			   now->refused == prev->refused);
		return;
	}
	FUZZ_CHECK(!now->halted);
	if (now->refused != prev->refused) {
		FUZZ_CHECK(now->refused == prev->refused + 1 && !well_formed_known(p, len));
		FUZZ_CHECK(now->high_water_ms == prev->high_water_ms &&
			   now->released_term == prev->released_term && now->applied == prev->applied);
		return;
	}
	FUZZ_CHECK(well_formed_known(p, len) && now->applied == prev->applied + 1);
	if (p[0] == FSM_CMD_HIGH_WATER) {
		uint64_t mark = bytes_get_u64(p + FSM_CMD_ARG_OFFSET);

		FUZZ_CHECK(now->high_water_ms == (mark > prev->high_water_ms ? mark : prev->high_water_ms));
		FUZZ_CHECK(now->released_term == 0);
	} else {
		FUZZ_CHECK(now->high_water_ms == prev->high_water_ms);
		FUZZ_CHECK(now->released_term == bytes_get_u64(p + FSM_CMD_ARG_OFFSET));
	}
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
	FUZZ_CHECK(c.st.high_water_ms == a->st.high_water_ms && c.st.released_term == a->st.released_term);
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
