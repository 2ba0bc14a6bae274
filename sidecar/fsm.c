/* fsm.c: the Raft state machine: HighWater(mark) applied as max, Release(term), and snapshots. */
#include "fsm.h"

#include <string.h>

#include "bytes.h"

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
	fsm_state *s = fsm->data;
	const uint8_t *p = buf->base;
	uint64_t arg;

	if (buf->len != FSM_CMD_SIZE)
		return RAFT_MALFORMED;
	arg = bytes_get_u64(p + FSM_CMD_ARG_OFFSET);
	switch (p[0]) {
	case FSM_CMD_HIGH_WATER:
		/* Apply is max: H never decreases, whatever order marks arrive in. */
		if (arg > s->high_water_ms)
			s->high_water_ms = arg;
		/* A leader proposed after the release (a new leader's fence, or
		 * the releasing leader taking over again): the release no longer
		 * ends the log. */
		s->released_term = 0;
		break;
	case FSM_CMD_RELEASE:
		s->released_term = arg;
		break;
	default:
		return RAFT_MALFORMED;
	}
	s->applied++;
	*result = NULL;
	return 0;
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
	fsm_state *s = fsm->data;
	uint8_t *p;

	*bufs = raft_malloc(sizeof **bufs);
	if (*bufs == NULL)
		return RAFT_NOMEM;
	p = raft_malloc(FSM_SNAPSHOT_SIZE);
	if (p == NULL) {
		raft_free(*bufs);
		*bufs = NULL;
		return RAFT_NOMEM;
	}
	bytes_put_u32(p, FSM_SNAPSHOT_MAGIC);
	p[4] = FSM_SNAPSHOT_VERSION;
	bytes_put_u64(p + 5, s->high_water_ms);
	bytes_put_u64(p + 13, s->released_term);
	(*bufs)[0].base = p;
	(*bufs)[0].len = FSM_SNAPSHOT_SIZE;
	*n_bufs = 1;
	return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
	fsm_state *s = fsm->data;
	const uint8_t *p = buf->base;
	bool v1, v2;

	if (buf->len < FSM_SNAPSHOT_V1_SIZE || bytes_get_u32(p) != FSM_SNAPSHOT_MAGIC)
		return RAFT_MALFORMED;
	v1 = p[4] == 1 && buf->len == FSM_SNAPSHOT_V1_SIZE;
	v2 = p[4] == FSM_SNAPSHOT_VERSION && buf->len == FSM_SNAPSHOT_SIZE;
	if (!v1 && !v2)
		return RAFT_MALFORMED;
	/* A snapshot holds every command up to its index: it replaces the
	 * state (raft restores only snapshots newer than what was applied). */
	s->high_water_ms = bytes_get_u64(p + 5);
	s->released_term = v2 ? bytes_get_u64(p + 13) : 0;
	raft_free(buf->base);
	return 0;
}

void fsm_init(struct raft_fsm *fsm, fsm_state *state)
{
	memset(fsm, 0, sizeof *fsm);
	memset(state, 0, sizeof *state);
	fsm->version = 2;
	fsm->data = state;
	fsm->apply = fsm_apply;
	fsm->snapshot = fsm_snapshot;
	fsm->snapshot_finalize = NULL;
	fsm->restore = fsm_restore;
}

static int fsm_encode(uint8_t type, uint64_t arg, struct raft_buffer *buf)
{
	uint8_t *p = raft_malloc(FSM_CMD_SIZE);

	if (p == NULL)
		return RAFT_NOMEM;
	memset(p, 0, FSM_CMD_SIZE);
	p[0] = type;
	bytes_put_u64(p + FSM_CMD_ARG_OFFSET, arg);
	buf->base = p;
	buf->len = FSM_CMD_SIZE;
	return 0;
}

int fsm_encode_high_water(uint64_t mark, struct raft_buffer *buf)
{
	return fsm_encode(FSM_CMD_HIGH_WATER, mark, buf);
}

int fsm_encode_release(uint64_t term, struct raft_buffer *buf)
{
	return fsm_encode(FSM_CMD_RELEASE, term, buf);
}

bool fsm_predecessor_released(const fsm_state *s, uint64_t term)
{
	return s->released_term != 0 && s->released_term + 1 == term;
}
