/* proto.h: the client wire protocol, shared by the extension, tsoracled and tsoracle-ctl. */
#ifndef TSORACLE_PROTO_H
#define TSORACLE_PROTO_H

/*
 * Transport: a byte stream (unix socket or TCP). Every message is a frame:
 *
 *     u32 body_len | u8 type | payload          (integers big-endian)
 *
 * body_len counts the type byte and the payload, 1 <= body_len <=
 * TP_MAX_BODY. Each type has an exact payload length (TP_ERROR: a length
 * prefixed text of at most TP_MAX_ERRMSG bytes); anything else is malformed.
 *
 * Conversation:
 *   1. The client sends TP_HELLO (magic, the range of versions it speaks).
 *      The server answers TP_HELLO_OK (the version chosen, its node id), or
 *      TP_ERROR with TP_ERR_VERSION and closes.
 *   2. The client then sends requests (TP_TS_REQ, TP_STATUS_REQ,
 *      TP_TRANSFER_REQ), each with a client-chosen 64-bit id, and may
 *      pipeline them: it need not wait for an answer before sending the next
 *      request. Every request gets exactly one response carrying the same id
 *      and a status (TP_OK or a TP_ERR_*). Clients match responses by id;
 *      they must not assume order (a transfer is answered only once it has
 *      ended, timestamp requests sent after it may be answered first).
 *   3. On a malformed frame the server sends TP_ERROR (TP_ERR_PROTOCOL)
 *      when it can, and closes the connection; it never crashes or stalls.
 *
 * A TP_TS_REQ of count n (1 <= n <= TP_MAX_COUNT) is answered, on success,
 * with first: the grant is the contiguous range [first, first + n) of
 * timestamps (see tso.h), each greater than every timestamp of every grant
 * that completed anywhere in the cluster before this request was sent.
 *
 * A TP_TRANSFER_REQ (an operator's planned handover, tsoracle-ctl
 * transfer-leader) asks the leader to hand leadership to member target, or
 * to any caught-up voter if target is 0. The leader stops serving at once
 * and answers when the handover has ended: TP_OK if leadership moved to the
 * target (or, for 0, to another member), else TP_ERR_TRANSFER; leader_id is
 * the leader known then (0: unknown). A member that is not the leader
 * answers TP_ERR_NOT_LEADER with the leader it knows, so the client can ask
 * that one; a target that is not another voting member gets
 * TP_ERR_BAD_REQUEST, and one whose wall clock the leader has not measured
 * lately or found outside max-clock-offset of a majority of the voters'
 * clocks (docs/cluster.md, clock sanity) TP_ERR_REFUSED.
 *
 * A TP_CLOCK_REQ asks for the server's wall clock: TP_CLOCK_RESP carries
 * its reading (Unix ms, CLOCK_REALTIME as the allocator sees it before any
 * check) taken when the request was handled. Members measure each other's
 * clocks with it (sidecar/clockprobe.c: the offset is the reading minus
 * the midpoint of the round trip, to within half the round trip).
 * A TP_MEMBER_REQ reads or changes the Raft configuration (tsoracle-ctl
 * member, docs/cluster.md "Membership"). op TP_MEMBER_LIST asks for member
 * number `member` (0, 1, ...) of the configuration this member knows: any
 * member answers, with count (the members in all), that member's id, role,
 * match index (the leader's knowledge; 0 elsewhere) and its address
 * "RAFT_IP:PORT/CLIENT_IP:PORT" as text; an index past the end gets
 * TP_ERR_BAD_REQUEST. TP_MEMBER_ADD (text: the new member's address, as
 * above) and TP_MEMBER_REMOVE go to the leader, and are answered when the
 * change has ended: TP_OK once it is committed (an added member then
 * votes), else a TP_ERR_* with a text that names the cause: TP_ERR_BUSY
 * when another change is under way, TP_ERR_REFUSED when the change would
 * break the cluster (a removal that leaves no quorum of members that are
 * up, unless TP_MEMBER_FORCE), TP_ERR_TIMEOUT when the new member did not
 * catch up in time (it is removed again: no change). A member that is not
 * the leader answers TP_ERR_NOT_LEADER with the leader it knows.
 *
 * The codec below is pure (no I/O, no allocation): an encoder that writes
 * into a caller's buffer, and a reader fed bytes (in any split) that yields
 * whole messages, with a sticky error and hard size limits, hiredis-style.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TP_MAGIC   UINT32_C(0x54534F52) /* "TSOR" */
#define TP_VERSION 1                    /* the only version spoken so far */

#define TP_HEADER_SIZE 4   /* the u32 body length */
#define TP_MAX_BODY    256 /* bytes: type byte + payload */
#define TP_MAX_FRAME   (TP_HEADER_SIZE + TP_MAX_BODY)
#define TP_MAX_ERRMSG  200 /* bytes of text in TP_ERROR */
/* Timestamps in one request: 2^24, i.e. 64 ms of logical space. */
#define TP_MAX_COUNT   (UINT32_C(1) << 24)

/* Message types. */
enum tp_type {
	TP_HELLO = 1,         /* c->s  u32 magic, u16 min_version, u16 max_version */
	TP_HELLO_OK = 2,      /* s->c  u16 version, u32 node_id */
	TP_TS_REQ = 3,        /* c->s  u64 id, u32 count */
	TP_TS_RESP = 4,       /* s->c  u64 id, u16 status, u64 first, u32 count */
	TP_STATUS_REQ = 5,    /* c->s  u64 id */
	TP_STATUS_RESP = 6,   /* s->c  u64 id, u16 status, then struct tp_status */
	TP_ERROR = 7,         /* s->c  u16 status, u16 len, len bytes of text */
	TP_TRANSFER_REQ = 8,  /* c->s  u64 id, u32 target (0: any caught-up voter) */
	TP_TRANSFER_RESP = 9, /* s->c  u64 id, u16 status, u32 leader_id (0: unknown) */
	TP_MEMBER_REQ = 10,   /* c->s  u64 id, u8 op, u8 flags, u32 member, u16 len, text */
	TP_MEMBER_RESP = 11,  /* s->c  u64 id, u16 status, u32 leader_id, u32 count,
			       *       u32 member, u8 role, u8 flags, u64 match_index,
			       *       u16 len, text */
	TP_CLOCK_REQ = 12,    /* c->s  u64 id */
	TP_CLOCK_RESP = 13,   /* s->c  u64 id, u16 status, u64 wall_ms */
	TP_ADMIN_REQ = 14,    /* c->s  u64 id, u8 op (enum tp_admin_op), u64 arg, u64 arg2 */
	TP_ADMIN_RESP = 15,   /* s->c  u64 id, u16 status, u32 leader_id, u64 value, u64 value2 */
	TP_TYPE_LAST = TP_ADMIN_RESP
};

/* TP_MEMBER_REQ ops, flags, and TP_MEMBER_RESP roles and flags. */
enum tp_member_op { TP_MEMBER_LIST = 1, TP_MEMBER_ADD = 2, TP_MEMBER_REMOVE = 3, TP_MEMBER_OP_LAST = 3 };
#define TP_MEMBER_FORCE 0x01 /* remove even if no quorum of members that are up remains */
enum tp_member_role {
	TP_MEMBER_VOTER = 1,   /* votes and counts for the quorum */
	TP_MEMBER_LEARNER = 2, /* receives the log, does not vote (being added) */
	TP_MEMBER_SPARE = 3,   /* in the configuration, receives nothing (being added) */
	TP_MEMBER_ROLE_LAST = 3
};
#define TP_MEMBER_IS_LEADER 0x01 /* TP_MEMBER_RESP flags: this member leads */
#define TP_MEMBER_IS_SELF   0x02 /* TP_MEMBER_RESP flags: the member that answered */
#define TP_MEMBER_IS_UP     0x04 /* TP_MEMBER_RESP flags: the leader heard from it within an election timeout */

/*
 * Response statuses. The extension (src/funcs.c) maps the codes a timestamp
 * request can get to SQLSTATEs and any other code to 08P01; TP_ERR_NOT_LEADER
 * and TP_ERR_TRANSFER answer only TP_TRANSFER_REQ, which it never sends.
 */
enum tp_status_code {
	TP_OK = 0,
	TP_ERR_UNAVAILABLE = 1,   /* no leader or no quorum reachable in time */
	TP_ERR_TIMEOUT = 2,       /* the leader could not make the grant durable in time */
	TP_ERR_BAD_REQUEST = 3,   /* e.g. count 0 or above TP_MAX_COUNT */
	TP_ERR_EXHAUSTED = 4,     /* the end of the timestamp range (tso.h) */
	TP_ERR_SHUTTING_DOWN = 5, /* the server is stopping */
	TP_ERR_INTERNAL = 6,
	TP_ERR_VERSION = 7,          /* bad magic or no common protocol version */
	TP_ERR_PROTOCOL = 8,         /* malformed frame; the server closes */
	TP_ERR_NOT_LEADER = 9,       /* this member does not lead: ask leader_id */
	TP_ERR_TRANSFER = 10,        /* the handover ended without moving leadership
				      * to the target (in time) */
	TP_ERR_FORBIDDEN = 11,       /* the client certificate's role may not do this
				      * (docs/cluster.md, "Roles"); the server closes */
	TP_ERR_BACKWARDS = 12,       /* an admin request that would not move forward */
	TP_ERR_TOO_FAR = 13,         /* advance-to beyond max-reset-gap past the clock */
	TP_ERR_CLUSTER_VERSION = 14, /* the cluster version is below what it needs */
	TP_ERR_BUSY = 15,            /* another membership change is under way */
	TP_ERR_REFUSED = 16,         /* the change would break the cluster (text says how) */
	TP_STATUS_LAST = TP_ERR_REFUSED
};

/*
 * TP_ADMIN_REQ operations (tsoracle-ctl; each answered with TP_ADMIN_RESP):
 *
 *   TP_ADMIN_ADVANCE (admin role): arg = UNIX_MS. The leader commits
 *     Advance(arg) (include/tsoracle.h, the operator's floor) and answers
 *     TP_OK with value = the floor now, value2 = its clock; or
 *     TP_ERR_BACKWARDS (value: the next timestamp's ms, already at or above
 *     arg), TP_ERR_TOO_FAR (value: the leader's clock, value2:
 *     max-reset-gap), TP_ERR_CLUSTER_VERSION (value: the cluster version,
 *     value2: the one needed), TP_ERR_BAD_REQUEST (past the end of the
 *     range; value: the largest ms), TP_ERR_NOT_LEADER (leader_id).
 *   TP_ADMIN_VERSIONS (any role): value = the newest command set this
 *     member's build applies (FSM_COMMAND_SET), value2 = the cluster version
 *     this member has applied. A member of command set 1 does not know
 *     TP_ADMIN_REQ: it answers TP_ERROR (TP_ERR_PROTOCOL) and closes.
 *   TP_ADMIN_SET_CLUSTER_VERSION (admin role): arg = the version, arg2 =
 *     how many members the client checked know it. The leader refuses
 *     (TP_ERR_BAD_REQUEST, value: the number of members in its Raft
 *     configuration) if that is fewer than its configuration has, else
 *     commits ClusterVersion(arg): TP_OK with value = the cluster version
 *     now; TP_ERR_BACKWARDS (value: the cluster version, not below arg).
 */
enum tp_admin_op {
	TP_ADMIN_ADVANCE = 1,
	TP_ADMIN_VERSIONS = 2,
	TP_ADMIN_SET_CLUSTER_VERSION = 3,
};

/* Raft role, as reported in tp_status. */
enum tp_role {
	TP_ROLE_UNAVAILABLE = 0, /* not started or stopping */
	TP_ROLE_FOLLOWER = 1,
	TP_ROLE_CANDIDATE = 2,
	TP_ROLE_LEADER = 3,
	TP_ROLE_LAST = TP_ROLE_LEADER
};

/* tp_status.flags */
#define TP_FLAG_SERVING           0x01 /* leader, fenced and within its lease */
/* The clock keeps this member from leading: its wall clock is not within
 * max-clock-offset of a majority of the voters' clocks. */
#define TP_FLAG_CLOCK_UNSUPPORTED 0x02
/* Its wall clock jumped forward and is not followed: clock_ahead_ms. */
#define TP_FLAG_CLOCK_HELD        0x04
/* A sole voter that started with its clock more than max-start-gap past
 * its stored mark, not serving until the operator says (--trust-clock):
 * clock_ahead_ms is that gap. */
#define TP_FLAG_CLOCK_START_GAP   0x08
#define TP_FLAG_JOINING           0x10 /* started with join: in no configuration yet, waits to be added */
#define TP_FLAG_REMOVED           0x20 /* not in the configuration it knows: removed */

/* A sidecar's view of the world (TP_STATUS_RESP after id and status). */
typedef struct tp_status {
	uint32_t node_id;
	uint32_t leader_id; /* 0: unknown */
	uint8_t role;       /* enum tp_role */
	uint8_t flags;      /* TP_FLAG_* */
	uint64_t term;
	uint64_t high_water_ms; /* committed high-water mark H, Unix ms */
	uint64_t commit_index;
	uint64_t applied_index;
	uint64_t last_issued;    /* last timestamp this node granted, 0: none */
	uint64_t grants;         /* allocator calls served as leader */
	uint64_t timestamps;     /* timestamps handed out as leader */
	int64_t clock_offset_ms; /* its wall clock minus the median of the voters' (measured) */
	uint64_t clock_ahead_ms; /* TP_FLAG_CLOCK_HELD or _START_GAP: by how much */
} tp_status;

typedef struct tp_msg {
	uint8_t type; /* enum tp_type */
	union {
		struct {
			uint32_t magic;
			uint16_t min_version;
			uint16_t max_version;
		} hello;
		struct {
			uint16_t version;
			uint32_t node_id;
		} hello_ok;
		struct {
			uint64_t id;
			uint32_t count;
		} ts_req;
		struct {
			uint64_t id;
			uint16_t status;
			uint64_t first;
			uint32_t count;
		} ts_resp;
		struct {
			uint64_t id;
		} status_req;
		struct {
			uint64_t id;
			uint16_t status;
			tp_status st;
		} status_resp;
		struct {
			uint64_t id;
			uint32_t target; /* member id; 0: any caught-up voter */
		} transfer_req;
		struct {
			uint64_t id;
			uint16_t status;
			uint32_t leader_id; /* after the transfer; 0: unknown */
		} transfer_resp;
		struct {
			uint64_t id;
			uint8_t op; /* enum tp_admin_op */
			uint64_t arg;
			uint64_t arg2;
		} admin_req;
		struct {
			uint64_t id;
			uint16_t status;
			uint32_t leader_id; /* 0: unknown */
			uint64_t value;
			uint64_t value2;
		} admin_resp;
		struct {
			uint16_t status;
			uint16_t len;
			char text[TP_MAX_ERRMSG + 1]; /* NUL-terminated copy */
		} error;
		struct {
			uint64_t id;
		} clock_req;
		struct {
			uint64_t id;
			uint16_t status;
			uint64_t wall_ms;
		} clock_resp;
		struct {
			uint64_t id;
			uint8_t op;      /* enum tp_member_op */
			uint8_t flags;   /* TP_MEMBER_FORCE */
			uint32_t member; /* LIST: the index; ADD, REMOVE: the member id */
			uint16_t len;
			char text[TP_MAX_ERRMSG + 1]; /* ADD: "RAFT_IP:PORT/CLIENT_IP:PORT" */
		} member_req;
		struct {
			uint64_t id;
			uint16_t status;
			uint32_t leader_id; /* 0: unknown */
			uint32_t count;     /* LIST: members in the configuration */
			uint32_t member;    /* LIST: its id; ADD, REMOVE: the member changed */
			uint8_t role;       /* LIST: enum tp_member_role */
			uint8_t flags;      /* LIST: TP_MEMBER_IS_* */
			uint64_t match_index;
			uint16_t len;
			char text[TP_MAX_ERRMSG + 1]; /* LIST: the address; an error: why */
		} member_resp;
	} u;
} tp_msg;

/*
 * A client's first message (every client: the worker, a forwarding
 * follower, tsoracle-ctl, tsoracle-bench): TP_HELLO with the magic and the
 * one version this build speaks. m is cleared first.
 */
void tp_hello_init(tp_msg *m);

/*
 * Encodes m into out; returns the frame's size, or 0 if cap is too small or
 * m is not encodable (unknown type, error text too long).
 *
 * Not encodable, either, is anything the reader would refuse: a status above
 * TP_STATUS_LAST, a role above TP_ROLE_LAST, or an error text whose len is
 * not strlen(text) (so it holds no NUL). Nothing is written when it returns 0.
 */
size_t tp_encode(const tp_msg *m, uint8_t *out, size_t cap);

/* Reader errors (sticky: once set, tp_reader_next keeps returning -1). */
enum tp_reader_error {
	TP_RERR_NONE = 0,
	TP_RERR_BAD_LENGTH, /* body_len 0, above TP_MAX_BODY, or wrong for the type */
	TP_RERR_BAD_TYPE,   /* unknown message type */
	TP_RERR_BAD_VALUE,  /* a field out of its domain (e.g. an unknown role) */
	TP_RERR_OVERFLOW,   /* more bytes committed than the buffer holds */
};

/* Bytes buffered per reader; holds many frames, so one read serves a batch. */
#define TP_READER_CAP 16384

typedef struct tp_reader {
	uint8_t buf[TP_READER_CAP];
	size_t start; /* first unparsed byte */
	size_t end;   /* one past the last buffered byte */
	int err;      /* enum tp_reader_error */
} tp_reader;

void tp_reader_init(tp_reader *r);

/*
 * Zero-copy input: returns where the next read may write and sets *len to
 * how much room there is (compacting first if needed). After a read of n
 * bytes into it, call tp_reader_commit(r, n). The room is never 0 while
 * every whole frame has been taken with tp_reader_next.
 *
 * After an error the reader discards its input: tp_reader_space offers the
 * whole buffer, tp_reader_commit and tp_reader_feed take and drop anything
 * (feed returns len), so a loop that reads until it sees -1 never stalls.
 * A commit of more than the room sets TP_RERR_OVERFLOW and adds nothing.
 */
uint8_t *tp_reader_space(tp_reader *r, size_t *len);
void tp_reader_commit(tp_reader *r, size_t n);

/* Copying input: takes as much of data as fits; returns how much it took. */
size_t tp_reader_feed(tp_reader *r, const void *data, size_t len);

/*
 * Parses the next whole message into m: returns 1 if one was parsed, 0 if
 * more bytes are needed, -1 on a malformed frame (sticky). m is meaningful
 * only after 1.
 *
 * A bad body length is refused as soon as the 4 header bytes are in, an
 * unknown type or a length wrong for the type as soon as the type byte is;
 * field values once the whole frame is. TP_ERROR text containing a NUL is
 * TP_RERR_BAD_VALUE; other bytes pass unchecked (not necessarily UTF-8 or
 * printable: sanitize before logging or ereport). Unknown tp_status.flags
 * bits pass. HELLO magic and versions, a TS_REQ count of 0 or above
 * TP_MAX_COUNT, a TRANSFER_REQ target that is no member, and a MEMBER_REQ's
 * op, member and text, are not framing errors: the server answers them. A
 * MEMBER_RESP's role and text are checked like TP_ERROR's.
 */
int tp_reader_next(tp_reader *r, tp_msg *m);

/* A message for the reader's error, for logs. */
const char *tp_reader_errstr(const tp_reader *r);

/* A short lowercase description of a status, e.g. "no leader or no quorum". */
const char *tp_status_str(uint16_t status);

/* "leader", "follower", ...; "unknown" outside the enum. */
const char *tp_role_str(uint8_t role);

/* "voter", "learner", "spare"; "unknown" outside enum tp_member_role. */
const char *tp_member_role_str(uint8_t role);

#endif /* TSORACLE_PROTO_H */
