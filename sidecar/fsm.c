/* fsm.c: the Raft state machine: HighWater(mark) applied as max, Release(term), Fence and Lease (the wait
 * owed, I4), and snapshots. */
#include "tsoracle.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "bytes.h"
#include "err.h"
#include "tso.h"

/* A log line: a reason (FSM_REASON_SIZE) and the sentence around it. */
#define FSM_LINE_SIZE (2 * FSM_REASON_SIZE)

/* What a command is, by its bytes alone (tsoracle.h): the rule every replica
 * applies the same way. */
enum fsm_verdict {
	FSM_OK,      /* a known command, well-formed and in range */
	FSM_REFUSED, /* malformed or out of range: changes nothing */
	FSM_UNKNOWN, /* well-formed, of a type this version does not know */
};

static const char *fsm_type_name(uint8_t type)
{
	switch (type) {
	case FSM_CMD_HIGH_WATER:
		return "HighWater";
	case FSM_CMD_RELEASE:
		return "Release";
	case FSM_CMD_ADVANCE:
		return "Advance";
	case FSM_CMD_CLUSTER_VERSION:
		return "ClusterVersion";
	case FSM_CMD_FENCE:
		return "Fence";
	case FSM_CMD_LEASE:
		return "Lease";
	default:
		return "unknown";
	}
}

/* A known command's length: its framing never changes (tsoracle.h). */
static size_t fsm_cmd_size(uint8_t type)
{
	return type == FSM_CMD_FENCE ? FSM_CMD_FENCE_SIZE : FSM_CMD_SIZE;
}

static bool fsm_reserved_zero(const uint8_t *p)
{
	for (size_t i = 1; i < FSM_CMD_HEADER_SIZE; i++)
		if (p[i] != 0)
			return false;
	return true;
}

/* Classifies the command in buf; why says what was wrong, for the log. */
static enum fsm_verdict fsm_check(const struct raft_buffer *buf, char *why, size_t whylen)
{
	const uint8_t *p = buf->base;
	uint64_t arg;

	if (buf->len < FSM_CMD_HEADER_SIZE || buf->len % FSM_CMD_ALIGN != 0) {
		snprintf(why, whylen, "a command of %zu bytes (a command is 8 or more, a multiple of 8)",
			 buf->len);
		return FSM_REFUSED;
	}
	if (p[0] == 0 || !fsm_reserved_zero(p)) {
		snprintf(why, whylen, "a command of %zu bytes with a bad header (type %u, reserved bytes %s)",
			 buf->len, p[0], fsm_reserved_zero(p) ? "zero" : "not zero");
		return FSM_REFUSED;
	}
	if (p[0] > FSM_CMD_LAST) {
		snprintf(why, whylen, "a command of type %u (%zu bytes)", p[0], buf->len);
		return FSM_UNKNOWN;
	}
	if (buf->len != fsm_cmd_size(p[0])) {
		snprintf(why, whylen, "a %s of %zu bytes (it has %zu)", fsm_type_name(p[0]), buf->len,
			 fsm_cmd_size(p[0]));
		return FSM_REFUSED;
	}
	arg = bytes_get_u64(p + FSM_CMD_ARG_OFFSET);
	if ((p[0] == FSM_CMD_HIGH_WATER || p[0] == FSM_CMD_ADVANCE || p[0] == FSM_CMD_FENCE) &&
	    arg > TSO_PHYSICAL_MAX) {
		snprintf(why, whylen,
			 "%s(%" PRIu64 "), above the largest physical time %" PRIu64
			 " ms of the timestamp format",
			 fsm_type_name(p[0]), arg, TSO_PHYSICAL_MAX);
		return FSM_REFUSED;
	}
	if (p[0] == FSM_CMD_CLUSTER_VERSION && arg == 0) {
		snprintf(why, whylen, "ClusterVersion(0) (versions start at %d)", FSM_COMMAND_SET_FIRST);
		return FSM_REFUSED;
	}
	if (p[0] == FSM_CMD_CLUSTER_VERSION && arg > FSM_COMMAND_SET) {
		/* A newer command set, which this version cannot apply. */
		snprintf(why, whylen,
			 "ClusterVersion(%" PRIu64 ") (this tsoracled knows command sets up to %d)", arg,
			 FSM_COMMAND_SET);
		return FSM_UNKNOWN;
	}
	return FSM_OK;
}

/* One line for people through the host's log, if it gave one. */
static void fsm_log(const fsm_state *s, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fsm_log(const fsm_state *s, int level, const char *fmt, ...)
{
	char line[FSM_LINE_SIZE];
	va_list ap;

	if (s->log == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	s->log(s->log_arg, level, line);
}

/* Halts the state machine (tsoracle.h): every later apply and restore fails. */
static void fsm_halt(fsm_state *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fsm_halt(fsm_state *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	err_vset(s->halt_reason, sizeof s->halt_reason, fmt, ap);
	va_end(ap);
	s->halted = true;
	fsm_log(s, TSORACLE_LOG_ERROR, "%s", s->halt_reason);
}

const uint8_t fsm_result_refused = 0;

int fsm_apply_cmd_result(fsm_state *s, const void *cmd, size_t len, void **result)
{
	const struct raft_buffer one = {.base = (void *)(uintptr_t)cmd, .len = len};
	const struct raft_buffer *buf = &one;
	const uint8_t *p = cmd;
	char why[FSM_REASON_SIZE];
	uint64_t arg;

	*result = NULL;
	/* Halted: nothing after the entry it could not apply may be applied
	 * (libraft offers that entry again; it stays unapplied). */
	if (s->halted)
		return RAFT_MALFORMED;
	switch (fsm_check(buf, why, sizeof why)) {
	case FSM_REFUSED:
		/* Success for libraft, so the log moves on; no change to the
		 * state, on every replica alike. */
		s->refused++;
		fsm_log(s, TSORACLE_LOG_WARN, "refused a Raft log entry: %s; it changes nothing", why);
		*result = FSM_RESULT_REFUSED; /* its proposer must not count it committed */
		return 0;
	case FSM_UNKNOWN:
		fsm_halt(s,
			 "the Raft log holds %s, which this tsoracled does not know: it was written by a "
			 "newer version; upgrade this member's tsoracled (stopping before applying it)",
			 why);
		return RAFT_MALFORMED;
	case FSM_OK:
		break;
	}
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
		/* Only an established leader releases: every earlier leader and
		 * this one have stopped for good, and this one serves again only
		 * after a Fence of its own (tsoracle.h, I4): no wait is owed. */
		s->lease_wait_ms = 0;
		break;
	case FSM_CMD_FENCE: {
		uint64_t wait_ms = bytes_get_u64(p + FSM_CMD_ARG2_OFFSET);

		/* HighWater(mark), and the proposer's wait joins what earlier
		 * leaders may still be owed: max, never the latest alone
		 * (tsoracle.h, I4). */
		if (arg > s->high_water_ms)
			s->high_water_ms = arg;
		if (wait_ms > s->lease_wait_ms)
			s->lease_wait_ms = wait_ms;
		s->released_term = 0;
		break;
	}
	case FSM_CMD_LEASE:
		/* Proposed by an established leader with its own wait: no
		 * earlier leader serves again, and any later one that serves
		 * has its Fence after this in the log (tsoracle.h, I4). */
		s->lease_wait_ms = arg;
		s->released_term = 0;
		break;
	case FSM_CMD_ADVANCE:
		/* The operator's floor F only rises (tsoracle.h, I6). Proposed
		 * by a serving leader: the release no longer ends the log. */
		if (arg > s->floor_ms)
			s->floor_ms = arg;
		s->released_term = 0;
		break;
	default: /* FSM_CMD_CLUSTER_VERSION: fsm_check knows no other */
		if (arg > s->cluster_version)
			s->cluster_version = arg;
		s->released_term = 0;
		break;
	}
	s->applied++;
	return 0;
}

int fsm_apply_cmd(fsm_state *s, const void *cmd, size_t len)
{
	void *result;

	return fsm_apply_cmd_result(s, cmd, len, &result);
}

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
	return fsm_apply_cmd_result(fsm->data, buf->base, buf->len, result);
}

/* Writes the snapshot of format version (2, 3 or 4) into out; its size. */
static size_t fsm_snapshot_write(const fsm_state *s, uint8_t version, uint8_t *out)
{
	bytes_put_u32(out, FSM_SNAPSHOT_MAGIC);
	out[4] = version;
	bytes_put_u64(out + FSM_SNAPSHOT_HEADER, s->high_water_ms);
	bytes_put_u64(out + FSM_SNAPSHOT_V1_SIZE, s->released_term);
	if (version < FSM_SNAPSHOT_V3)
		return FSM_SNAPSHOT_V2_SIZE;
	bytes_put_u64(out + FSM_SNAPSHOT_V2_SIZE, s->floor_ms);
	bytes_put_u64(out + FSM_SNAPSHOT_V2_SIZE + sizeof(uint64_t), fsm_cluster_version(s));
	if (version < FSM_SNAPSHOT_VERSION)
		return FSM_SNAPSHOT_V3_SIZE;
	bytes_put_u64(out + FSM_SNAPSHOT_V3_SIZE, s->lease_wait_ms);
	return FSM_SNAPSHOT_SIZE;
}

/*
 * The oldest format that holds the whole state, so that every member the
 * cluster version allows can read it: libraft sends snapshots to lagging
 * followers, and a member of command set v reads the formats up to v + 1.
 * Format 3 carries what command set 2 added (F, the cluster version), 4
 * what set 3 added (lease_wait_ms). Below cluster version 2, F is 0 (a
 * leader proposes Advance only at version 2), below 3 lease_wait_ms is 0
 * (Fence and Lease only at 3). A log that holds such a command before its
 * ClusterVersion (no leader writes one, but apply takes it) still gets the
 * format that holds it: a snapshot must hold all the state apply made, or
 * a member restoring it would diverge from the others.
 */
static uint8_t fsm_snapshot_format(const fsm_state *s)
{
	uint64_t version = fsm_cluster_version(s);

	if (version >= FSM_COMMAND_SET_LEASE || s->lease_wait_ms != 0)
		return FSM_SNAPSHOT_VERSION;
	if (version >= FSM_COMMAND_SET_ADVANCE || s->floor_ms != 0)
		return FSM_SNAPSHOT_V3;
	return FSM_SNAPSHOT_V2;
}

void fsm_snapshot_put(const fsm_state *s, uint8_t out[FSM_SNAPSHOT_SIZE])
{
	fsm_snapshot_write(s, FSM_SNAPSHOT_VERSION, out);
}

uint64_t fsm_cluster_version(const fsm_state *s)
{
	return s->cluster_version > FSM_COMMAND_SET_FIRST ? s->cluster_version : FSM_COMMAND_SET_FIRST;
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
	(*bufs)[0].base = p;
	(*bufs)[0].len = fsm_snapshot_write(s, fsm_snapshot_format(s), p);
	*n_bufs = 1;
	return 0;
}

/*
 * Replaces the state with a snapshot's. A snapshot that is not one this
 * version wrote or can read halts the state machine with a clear reason
 * (tsoracle.h): serving from a state it could not read would be guessing.
 */
int fsm_snapshot_get(fsm_state *s, const void *snapshot, size_t len)
{
	const struct raft_buffer one = {.base = (void *)(uintptr_t)snapshot, .len = len};
	const struct raft_buffer *buf = &one;
	const uint8_t *p = snapshot;
	size_t want;
	uint8_t version;
	uint64_t h;

	if (s->halted)
		return RAFT_MALFORMED;
	if (buf->len < FSM_SNAPSHOT_HEADER || bytes_get_u32(p) != FSM_SNAPSHOT_MAGIC) {
		fsm_halt(s,
			 "refused a Raft snapshot of %zu bytes: not a tsoracle state machine snapshot "
			 "(bad magic); the data directory is damaged or not tsoracled's",
			 buf->len);
		return RAFT_MALFORMED;
	}
	version = p[4];
	if (version > FSM_SNAPSHOT_VERSION) {
		fsm_halt(s,
			 "refused a Raft snapshot of format version %u: this tsoracled reads versions 1 "
			 "to %d; upgrade this member's tsoracled",
			 version, FSM_SNAPSHOT_VERSION);
		return RAFT_MALFORMED;
	}
	want = version == 1                 ? FSM_SNAPSHOT_V1_SIZE
	       : version == FSM_SNAPSHOT_V2 ? FSM_SNAPSHOT_V2_SIZE
	       : version == FSM_SNAPSHOT_V3 ? FSM_SNAPSHOT_V3_SIZE
					    : FSM_SNAPSHOT_SIZE;
	if (version == 0 || buf->len != want) {
		fsm_halt(s, "refused a malformed Raft snapshot: format version %u, %zu bytes", version,
			 buf->len);
		return RAFT_MALFORMED;
	}
	h = bytes_get_u64(p + FSM_SNAPSHOT_HEADER);
	if (h > TSO_PHYSICAL_MAX) {
		/* No sequence of applied commands reaches it (apply refuses such
		 * marks): the snapshot is damaged. */
		fsm_halt(s,
			 "refused a malformed Raft snapshot: high-water %" PRIu64
			 " ms is above the largest physical time %" PRIu64 " ms",
			 h, TSO_PHYSICAL_MAX);
		return RAFT_MALFORMED;
	}
	if (version >= FSM_SNAPSHOT_V3 &&
	    (bytes_get_u64(p + FSM_SNAPSHOT_V2_SIZE) > TSO_PHYSICAL_MAX ||
	     bytes_get_u64(p + FSM_SNAPSHOT_V2_SIZE + sizeof(uint64_t)) > FSM_COMMAND_SET)) {
		fsm_halt(s,
			 "refused a Raft snapshot: floor %" PRIu64 " ms or cluster version %" PRIu64
			 " out of range (this tsoracled knows command sets up to %d); upgrade this "
			 "member's tsoracled, or the snapshot is damaged",
			 bytes_get_u64(p + FSM_SNAPSHOT_V2_SIZE),
			 bytes_get_u64(p + FSM_SNAPSHOT_V2_SIZE + sizeof(uint64_t)), FSM_COMMAND_SET);
		return RAFT_MALFORMED;
	}
	/* A snapshot holds every command up to its index: it replaces the
	 * state (raft restores only snapshots newer than what was applied). */
	s->high_water_ms = h;
	s->released_term = version >= FSM_SNAPSHOT_V2 ? bytes_get_u64(p + FSM_SNAPSHOT_V1_SIZE) : 0;
	s->floor_ms = version >= FSM_SNAPSHOT_V3 ? bytes_get_u64(p + FSM_SNAPSHOT_V2_SIZE) : 0;
	s->cluster_version = version >= FSM_SNAPSHOT_V3
				 ? bytes_get_u64(p + FSM_SNAPSHOT_V2_SIZE + sizeof(uint64_t))
				 : FSM_COMMAND_SET_FIRST;
	/* Formats 1 to 3 predate Fence and Lease: no wait was in the log. */
	s->lease_wait_ms = version >= FSM_SNAPSHOT_VERSION ? bytes_get_u64(p + FSM_SNAPSHOT_V3_SIZE) : 0;
	return 0;
}

/* On failure buf stays the caller's (libraft frees it). */
static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
	int rv = fsm_snapshot_get(fsm->data, buf->base, buf->len);

	if (rv == 0)
		raft_free(buf->base);
	return rv;
}

void fsm_set_log(fsm_state *state, tsoracle_log_fn log, void *arg)
{
	state->log = log;
	state->log_arg = arg;
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

void fsm_cmd_put(uint8_t cmd[FSM_CMD_SIZE], uint8_t type, uint64_t arg)
{
	memset(cmd, 0, FSM_CMD_SIZE);
	cmd[0] = type;
	bytes_put_u64(cmd + FSM_CMD_ARG_OFFSET, arg);
}

void fsm_cmd_put_fence(uint8_t cmd[FSM_CMD_FENCE_SIZE], uint64_t mark, uint64_t wait_ms)
{
	memset(cmd, 0, FSM_CMD_FENCE_SIZE);
	cmd[0] = FSM_CMD_FENCE;
	bytes_put_u64(cmd + FSM_CMD_ARG_OFFSET, mark);
	bytes_put_u64(cmd + FSM_CMD_ARG2_OFFSET, wait_ms);
}

static int fsm_encode(uint8_t type, uint64_t arg, struct raft_buffer *buf)
{
	uint8_t *p = raft_malloc(FSM_CMD_SIZE);

	if (p == NULL)
		return RAFT_NOMEM;
	fsm_cmd_put(p, type, arg);
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

uint64_t fsm_cmd_command_set(uint8_t type)
{
	if (type == FSM_CMD_FENCE || type == FSM_CMD_LEASE)
		return FSM_COMMAND_SET_LEASE;
	return type == FSM_CMD_ADVANCE || type == FSM_CMD_CLUSTER_VERSION ? FSM_COMMAND_SET_ADVANCE
									  : FSM_COMMAND_SET_FIRST;
}

bool fsm_predecessor_released(const fsm_state *s, uint64_t term)
{
	return s->released_term != 0 && s->released_term + 1 == term;
}
