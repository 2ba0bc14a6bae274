/* fsm.h: the Raft state machine: HighWater(mark) commands applied as max, and its snapshots. */
#ifndef TSORACLE_FSM_H
#define TSORACLE_FSM_H

#include <raft.h>
#include <stdint.h>

/*
 * The replicated state is one number, H: the highest high-water mark (Unix
 * ms) ever committed. A command HighWater(mark) applies as H = max(H, mark),
 * so stale or reordered proposals can never lower it (DESIGN.md section 4).
 *
 * Command:  u8 FSM_CMD_HIGH_WATER, 7 zero bytes, u64 mark   (big-endian;
 *           libraft's uv backend wants entry sizes that are multiples of 8)
 * Snapshot: u32 FSM_SNAPSHOT_MAGIC, u8 version, u64 H   (big-endian)
 */

#define FSM_CMD_HIGH_WATER   1
#define FSM_CMD_SIZE         16
#define FSM_CMD_MARK_OFFSET  8
#define FSM_SNAPSHOT_MAGIC   UINT32_C(0x54534F53) /* "TSOS" */
#define FSM_SNAPSHOT_VERSION 1
#define FSM_SNAPSHOT_SIZE    13

typedef struct fsm_state {
	uint64_t high_water_ms; /* H */
	uint64_t applied;       /* commands applied since start (status) */
} fsm_state;

/* Sets up fsm (version 2 API) over state. */
void fsm_init(struct raft_fsm *fsm, fsm_state *state);

/* Encodes HighWater(mark) into a raft_malloc'ed buffer; 0 or RAFT_NOMEM. */
int fsm_encode_high_water(uint64_t mark, struct raft_buffer *buf);

#endif /* TSORACLE_FSM_H */
