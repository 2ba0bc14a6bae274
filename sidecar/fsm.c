/* fsm.c: the Raft state machine: HighWater(mark) commands applied as max, and its snapshots. */
#include "fsm.h"

#include <string.h>

#include "bytes.h"

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
	fsm_state *s = fsm->data;
	const uint8_t *p = buf->base;
	uint64_t mark;

	if (buf->len != FSM_CMD_SIZE || p[0] != FSM_CMD_HIGH_WATER)
		return RAFT_MALFORMED;
	mark = bytes_get_u64(p + FSM_CMD_MARK_OFFSET);
	/* Apply is max: H never decreases, whatever order marks arrive in. */
	if (mark > s->high_water_ms)
		s->high_water_ms = mark;
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
	(*bufs)[0].base = p;
	(*bufs)[0].len = FSM_SNAPSHOT_SIZE;
	*n_bufs = 1;
	return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
	fsm_state *s = fsm->data;
	const uint8_t *p = buf->base;
	uint64_t h;

	if (buf->len != FSM_SNAPSHOT_SIZE || bytes_get_u32(p) != FSM_SNAPSHOT_MAGIC ||
	    p[4] != FSM_SNAPSHOT_VERSION)
		return RAFT_MALFORMED;
	h = bytes_get_u64(p + 5);
	/* A snapshot holds every mark up to its index: it replaces the state
	 * (raft restores only snapshots newer than what was applied). */
	s->high_water_ms = h;
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

int fsm_encode_high_water(uint64_t mark, struct raft_buffer *buf)
{
	uint8_t *p = raft_malloc(FSM_CMD_SIZE);

	if (p == NULL)
		return RAFT_NOMEM;
	memset(p, 0, FSM_CMD_SIZE);
	p[0] = FSM_CMD_HIGH_WATER;
	bytes_put_u64(p + FSM_CMD_MARK_OFFSET, mark);
	buf->base = p;
	buf->len = FSM_CMD_SIZE;
	return 0;
}
