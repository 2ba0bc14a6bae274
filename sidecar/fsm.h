/* fsm.h: the Raft state machine: HighWater(mark) applied as max, Release(term), and snapshots. */
#ifndef TSORACLE_FSM_H
#define TSORACLE_FSM_H

#include <raft.h>
#include <stdbool.h>
#include <stdint.h>

/*
 * The replicated state is H, the highest high-water mark (Unix ms) ever
 * committed, and whether the log ends in a leader's release.
 *
 *   HighWater(mark) applies as H = max(H, mark), so stale or reordered
 *   proposals can never lower it (DESIGN.md section 4). It also clears
 *   released_term: whoever appended it was leading, and serving or about to.
 *   Release(term) is appended by the leader of that term during a planned
 *   handover (node.c), after it has stopped serving for good in that term;
 *   it sets released_term. So released_term != 0 says: the last command in
 *   the log is the release of the leader of released_term, and no later
 *   leader has proposed anything since. A leader of term released_term + 1
 *   may then serve without waiting out the old lease (alloc.h, I4).
 *
 * Command:  u8 type, 7 zero bytes, u64 argument (big-endian; libraft's uv
 *           backend wants entry sizes that are multiples of 8); the
 *           argument is the mark (FSM_CMD_HIGH_WATER) or the term
 *           (FSM_CMD_RELEASE).
 * Snapshot: u32 FSM_SNAPSHOT_MAGIC, u8 version, u64 H, then in version 2
 *           u64 released_term (big-endian). Version 1 (H alone) is read as
 *           released_term 0.
 */

#define FSM_CMD_HIGH_WATER   1
#define FSM_CMD_RELEASE      2
#define FSM_CMD_SIZE         16
#define FSM_CMD_ARG_OFFSET   8
#define FSM_SNAPSHOT_MAGIC   UINT32_C(0x54534F53) /* "TSOS" */
#define FSM_SNAPSHOT_VERSION 2
#define FSM_SNAPSHOT_V1_SIZE 13
#define FSM_SNAPSHOT_SIZE    21

typedef struct fsm_state {
	uint64_t high_water_ms; /* H */
	uint64_t released_term; /* the log ends in Release(this term); 0: not */
	uint64_t applied;       /* commands applied since start (status) */
} fsm_state;

/* Sets up fsm (version 2 API) over state. */
void fsm_init(struct raft_fsm *fsm, fsm_state *state);

/* Encodes HighWater(mark) into a raft_malloc'ed buffer; 0 or RAFT_NOMEM. */
int fsm_encode_high_water(uint64_t mark, struct raft_buffer *buf);

/* Encodes Release(term) into a raft_malloc'ed buffer; 0 or RAFT_NOMEM. */
int fsm_encode_release(uint64_t term, struct raft_buffer *buf);

/* True if a leader of term may skip the new-leader wait: its log's last
 * command (applied after its barrier) is the release of term - 1. */
bool fsm_predecessor_released(const fsm_state *s, uint64_t term);

#endif /* TSORACLE_FSM_H */
