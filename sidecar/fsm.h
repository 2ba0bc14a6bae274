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
 * Command:  u8 type, 7 zero bytes, then a body (libraft's uv backend wants
 *           entry sizes that are multiples of 8). This envelope is the
 *           same in every version; HighWater and Release have a body of
 *           one u64 argument (big-endian): the mark (FSM_CMD_HIGH_WATER) or
 *           the term (FSM_CMD_RELEASE), and their framing never changes (a
 *           new meaning takes a new type).
 * Snapshot: u32 FSM_SNAPSHOT_MAGIC, u8 version, u64 H, then in version 2
 *           u64 released_term (big-endian). Version 1 (H alone) is read as
 *           released_term 0.
 *
 * What apply refuses, by one rule on every replica (docs/architecture.md,
 * "What the state machine refuses"): the verdict depends only on the
 * entry's bytes, so every replica of this version reaches the same state
 * from the same log.
 *
 *   - A malformed command (shorter than the envelope, a length that is not
 *     a multiple of 8, type 0, reserved bytes not zero, a known type with
 *     the wrong length) or a HighWater above TSO_PHYSICAL_MAX (tso.h; no
 *     leader proposes one: alloc.c caps every mark there): refused. It
 *     changes nothing, apply returns success so that libraft goes on with
 *     the log (an error would stall apply at that entry for good, on
 *     restart too), and a warning names what was refused.
 *   - A well-formed command of a type this version does not know: written
 *     by a newer tsoracled, whose meaning this one cannot apply. The FSM
 *     halts: apply returns an error, so libraft does not count the entry
 *     as applied (no snapshot of this member can cover it), this and
 *     every later apply changes nothing, and the node stops serving and
 *     the daemon exits with halt_reason (node.c, main.c). Upgraded, the
 *     member applies it from the log like every other member.
 *   - A snapshot that is malformed or of a newer format: restore refuses it
 *     and halts the same way (at start, tsoracled does not start).
 */

#define FSM_CMD_HIGH_WATER   1
#define FSM_CMD_RELEASE      2
#define FSM_CMD_HEADER_SIZE  8 /* the envelope: type and 7 reserved zero bytes */
#define FSM_CMD_ALIGN        8 /* every command's length is a multiple of this */
#define FSM_CMD_SIZE         16
#define FSM_CMD_ARG_OFFSET   8
#define FSM_SNAPSHOT_MAGIC   UINT32_C(0x54534F53) /* "TSOS" */
#define FSM_SNAPSHOT_VERSION 2
#define FSM_SNAPSHOT_HEADER  5 /* magic and version */
#define FSM_SNAPSHOT_V1_SIZE 13
#define FSM_SNAPSHOT_SIZE    21
#define FSM_REASON_SIZE      256

typedef struct fsm_state {
	uint64_t high_water_ms;            /* H */
	uint64_t released_term;            /* the log ends in Release(this term); 0: not */
	uint64_t applied;                  /* commands applied since start (status) */
	uint64_t refused;                  /* commands refused since start (malformed, out of range) */
	bool halted;                       /* an unknown command or a refused snapshot: stop */
	char halt_reason[FSM_REASON_SIZE]; /* why, for people, when halted */
} fsm_state;

/* Sets up fsm (version 2 API) over state. */
void fsm_init(struct raft_fsm *fsm, fsm_state *state);

/* Writes the command of type (FSM_CMD_*) with its argument into cmd. */
void fsm_cmd_put(uint8_t cmd[FSM_CMD_SIZE], uint8_t type, uint64_t arg);

/* Encodes HighWater(mark) into a raft_malloc'ed buffer; 0 or RAFT_NOMEM. */
int fsm_encode_high_water(uint64_t mark, struct raft_buffer *buf);

/* Encodes Release(term) into a raft_malloc'ed buffer; 0 or RAFT_NOMEM. */
int fsm_encode_release(uint64_t term, struct raft_buffer *buf);

/* True if a leader of term may skip the new-leader wait: its log's last
 * command (applied after its barrier) is the release of term - 1. */
bool fsm_predecessor_released(const fsm_state *s, uint64_t term);

#endif /* TSORACLE_FSM_H */
