/* proto.c: the wire protocol codec: a pure encoder and a byte-fed, sticky-error reader. */
#include "proto.h"

#include <string.h>

#include "bytes.h"

/*
 * Compiled into the sidecar and, through PGXS, into the extension: C99 with
 * declarations at the top of blocks, no allocation, no I/O, and every name
 * prefixed tp_ so nothing clashes with PostgreSQL's headers.
 */

/* Sizes of the wire's integers, in bytes. */
#define TP_U8  1
#define TP_U16 2
#define TP_U32 4
#define TP_U64 8

/* Payload sizes in bytes, i.e. body_len minus the type byte. */
#define TP_TYPE_SIZE              TP_U8
#define TP_HELLO_SIZE             (TP_U32 + TP_U16 + TP_U16)
#define TP_HELLO_OK_SIZE          (TP_U16 + TP_U32)
#define TP_TS_REQ_SIZE            (TP_U64 + TP_U32)
#define TP_TS_RESP_SIZE           (TP_U64 + TP_U16 + TP_U64 + TP_U32)
#define TP_STATUS_REQ_SIZE        TP_U64
#define TP_TRANSFER_REQ_SIZE      (TP_U64 + TP_U32)
#define TP_TRANSFER_RESP_SIZE     (TP_U64 + TP_U16 + TP_U32)
#define TP_CLOCK_REQ_SIZE         TP_U64
#define TP_CLOCK_RESP_SIZE        (TP_U64 + TP_U16 + TP_U64)
/* struct tp_status, packed: two u32, two u8, nine u64 (the offset as its
 * two's complement). */
#define TP_STATUS_FIELDS_SIZE     (2 * TP_U32 + 2 * TP_U8 + 9 * TP_U64)
#define TP_ADMIN_REQ_SIZE         (TP_U64 + TP_U8 + TP_U64 + TP_U64)
#define TP_ADMIN_RESP_SIZE        (TP_U64 + TP_U16 + TP_U32 + TP_U64 + TP_U64)
#define TP_STATUS_RESP_SIZE       (TP_U64 + TP_U16 + TP_STATUS_FIELDS_SIZE)
/* The status of a tsoracled from before the clock fields (seven u64): read
 * with those fields 0, so that a newer client (the extension's worker,
 * tsoracle-ctl) keeps talking to an older member during a rolling upgrade
 * (docs/cluster.md, "Upgrades"). */
#define TP_STATUS_V1_FIELDS_SIZE  (2 * TP_U32 + 2 * TP_U8 + 7 * TP_U64)
#define TP_STATUS_RESP_V1_SIZE    (TP_U64 + TP_U16 + TP_STATUS_V1_FIELDS_SIZE)
/* u16 status, u16 len; then len bytes of text. */
#define TP_ERROR_FIXED_SIZE       (TP_U16 + TP_U16)
#define TP_ERROR_MAX_BODY         (TP_TYPE_SIZE + TP_ERROR_FIXED_SIZE + TP_MAX_ERRMSG)
/* The fixed parts of the membership messages; then len bytes of text. */
#define TP_MEMBER_REQ_FIXED_SIZE  (TP_U64 + 2 * TP_U8 + TP_U32 + TP_U16)
#define TP_MEMBER_RESP_FIXED_SIZE (TP_U64 + TP_U16 + 3 * TP_U32 + 2 * TP_U8 + TP_U64 + TP_U16)

/* Offset of the payload from the frame's start. */
#define TP_PAYLOAD_OFF (TP_HEADER_SIZE + TP_TYPE_SIZE)

/*
 * tp_reader_space compacts (moves the unparsed tail to the front) only when
 * the room left at the end is below this, so that a read gets at least half
 * the buffer, and only when the tail is no longer than the parsed bytes it
 * reclaims, so the bytes moved never exceed the bytes consumed.
 */
#define TP_READER_COMPACT_BELOW (TP_READER_CAP / 2)

/*
 * Once every whole frame is taken the tail is a partial frame, shorter than
 * TP_MAX_FRAME; with a buffer of at least two frames, a full buffer then
 * always has tail <= start and gets compacted, so the room is never 0.
 */
typedef char
    tp_reader_cap_holds_two_frames[(TP_READER_CAP >= 2 * TP_MAX_FRAME && TP_ERROR_MAX_BODY <= TP_MAX_BODY &&
				    TP_TYPE_SIZE + TP_MEMBER_RESP_FIXED_SIZE + TP_MAX_ERRMSG <= TP_MAX_BODY)
				       ? 1
				       : -1];

/*
 * Big-endian accessors over a cursor that they advance. Static inline, so
 * the hot path has no per-byte (or per-field) calls at -O2; alignment-free.
 */
static inline uint8_t tp_get8(const uint8_t **p)
{
	return *(*p)++;
}

static inline uint16_t tp_get16(const uint8_t **p)
{
	const uint8_t *b = *p;

	*p += TP_U16;
	return bytes_get_u16(b);
}

static inline uint32_t tp_get32(const uint8_t **p)
{
	const uint8_t *b = *p;

	*p += TP_U32;
	return bytes_get_u32(b);
}

static inline uint64_t tp_get64(const uint8_t **p)
{
	uint64_t hi = tp_get32(p);

	return hi << 32 | tp_get32(p);
}

static inline uint8_t *tp_put8(uint8_t *p, uint8_t v)
{
	*p = v;
	return p + TP_U8;
}

static inline uint8_t *tp_put16(uint8_t *p, uint16_t v)
{
	bytes_put_u16(p, v);
	return p + TP_U16;
}

static inline uint8_t *tp_put32(uint8_t *p, uint32_t v)
{
	bytes_put_u32(p, v);
	return p + TP_U32;
}

static inline uint8_t *tp_put64(uint8_t *p, uint64_t v)
{
	p = tp_put32(p, (uint32_t)(v >> 32));
	return tp_put32(p, (uint32_t)v);
}

/*
 * The payload size of a fixed-size type, the fixed part for a type with
 * text (TP_ERROR, TP_MEMBER_*: its minimum), or 0 for an unknown type.
 */
static size_t tp_payload_size(uint8_t type)
{
	switch (type) {
	case TP_HELLO:
		return TP_HELLO_SIZE;
	case TP_HELLO_OK:
		return TP_HELLO_OK_SIZE;
	case TP_TS_REQ:
		return TP_TS_REQ_SIZE;
	case TP_TS_RESP:
		return TP_TS_RESP_SIZE;
	case TP_STATUS_REQ:
		return TP_STATUS_REQ_SIZE;
	case TP_STATUS_RESP:
		return TP_STATUS_RESP_SIZE;
	case TP_ERROR:
		return TP_ERROR_FIXED_SIZE;
	case TP_TRANSFER_REQ:
		return TP_TRANSFER_REQ_SIZE;
	case TP_TRANSFER_RESP:
		return TP_TRANSFER_RESP_SIZE;
	case TP_CLOCK_REQ:
		return TP_CLOCK_REQ_SIZE;
	case TP_CLOCK_RESP:
		return TP_CLOCK_RESP_SIZE;
	case TP_ADMIN_REQ:
		return TP_ADMIN_REQ_SIZE;
	case TP_ADMIN_RESP:
		return TP_ADMIN_RESP_SIZE;
	case TP_MEMBER_REQ:
		return TP_MEMBER_REQ_FIXED_SIZE;
	case TP_MEMBER_RESP:
		return TP_MEMBER_RESP_FIXED_SIZE;
	default:
		return 0;
	}
}

/* The types whose payload ends in u16 len and len bytes of text. */
static bool tp_has_text(uint8_t type)
{
	return type == TP_ERROR || type == TP_MEMBER_REQ || type == TP_MEMBER_RESP;
}

/* struct tp_status, field by field, in declaration order. */
static uint8_t *tp_put_status(uint8_t *p, const tp_status *st)
{
	p = tp_put32(p, st->node_id);
	p = tp_put32(p, st->leader_id);
	p = tp_put8(p, st->role);
	p = tp_put8(p, st->flags);
	p = tp_put64(p, st->term);
	p = tp_put64(p, st->high_water_ms);
	p = tp_put64(p, st->commit_index);
	p = tp_put64(p, st->applied_index);
	p = tp_put64(p, st->last_issued);
	p = tp_put64(p, st->grants);
	p = tp_put64(p, st->timestamps);
	p = tp_put64(p, (uint64_t)st->clock_offset_ms);
	return tp_put64(p, st->clock_ahead_ms);
}

static void tp_get_status(const uint8_t **p, tp_status *st, bool v1)
{
	st->node_id = tp_get32(p);
	st->leader_id = tp_get32(p);
	st->role = tp_get8(p);
	st->flags = tp_get8(p);
	st->term = tp_get64(p);
	st->high_water_ms = tp_get64(p);
	st->commit_index = tp_get64(p);
	st->applied_index = tp_get64(p);
	st->last_issued = tp_get64(p);
	st->grants = tp_get64(p);
	st->timestamps = tp_get64(p);
	if (v1) {
		st->clock_offset_ms = 0;
		st->clock_ahead_ms = 0;
		return;
	}
	st->clock_offset_ms = (int64_t)tp_get64(p);
	st->clock_ahead_ms = tp_get64(p);
}

/* An error text is encodable iff exactly len bytes long, with no NUL inside. */
static bool tp_errtext_ok(const char *text, uint16_t len)
{
	return len <= TP_MAX_ERRMSG && text[len] == '\0' && memchr(text, '\0', len) == NULL;
}

void tp_hello_init(tp_msg *m)
{
	memset(m, 0, sizeof *m);
	m->type = TP_HELLO;
	m->u.hello.magic = TP_MAGIC;
	m->u.hello.min_version = TP_VERSION;
	m->u.hello.max_version = TP_VERSION;
}

size_t tp_encode(const tp_msg *m, uint8_t *out, size_t cap)
{
	size_t payload = tp_payload_size(m->type);
	size_t frame;
	uint8_t *p;

	if (payload == 0)
		return 0;

	/*
	 * Refuse what the reader would refuse, so that no peer ever receives a
	 * frame it must treat as malformed.
	 */
	switch (m->type) {
	case TP_TS_RESP:
		if (m->u.ts_resp.status > TP_STATUS_LAST)
			return 0;
		break;
	case TP_STATUS_RESP:
		if (m->u.status_resp.status > TP_STATUS_LAST || m->u.status_resp.st.role > TP_ROLE_LAST)
			return 0;
		break;
	case TP_ERROR:
		if (m->u.error.status > TP_STATUS_LAST || !tp_errtext_ok(m->u.error.text, m->u.error.len))
			return 0;
		payload += m->u.error.len;
		break;
	case TP_TRANSFER_RESP:
		if (m->u.transfer_resp.status > TP_STATUS_LAST)
			return 0;
		break;
	case TP_CLOCK_RESP:
		if (m->u.clock_resp.status > TP_STATUS_LAST)
			return 0;
		break;
	case TP_ADMIN_RESP:
		if (m->u.admin_resp.status > TP_STATUS_LAST)
			return 0;
		break;
	case TP_MEMBER_REQ:
		if (!tp_errtext_ok(m->u.member_req.text, m->u.member_req.len))
			return 0;
		payload += m->u.member_req.len;
		break;
	case TP_MEMBER_RESP:
		if (m->u.member_resp.status > TP_STATUS_LAST || m->u.member_resp.role > TP_MEMBER_ROLE_LAST ||
		    !tp_errtext_ok(m->u.member_resp.text, m->u.member_resp.len))
			return 0;
		payload += m->u.member_resp.len;
		break;
	default:
		break;
	}

	frame = TP_PAYLOAD_OFF + payload;
	if (cap < frame)
		return 0;

	p = tp_put32(out, (uint32_t)(TP_TYPE_SIZE + payload));
	p = tp_put8(p, m->type);
	switch (m->type) {
	case TP_HELLO:
		p = tp_put32(p, m->u.hello.magic);
		p = tp_put16(p, m->u.hello.min_version);
		tp_put16(p, m->u.hello.max_version);
		break;
	case TP_HELLO_OK:
		p = tp_put16(p, m->u.hello_ok.version);
		tp_put32(p, m->u.hello_ok.node_id);
		break;
	case TP_TS_REQ:
		p = tp_put64(p, m->u.ts_req.id);
		tp_put32(p, m->u.ts_req.count);
		break;
	case TP_TS_RESP:
		p = tp_put64(p, m->u.ts_resp.id);
		p = tp_put16(p, m->u.ts_resp.status);
		p = tp_put64(p, m->u.ts_resp.first);
		tp_put32(p, m->u.ts_resp.count);
		break;
	case TP_STATUS_REQ:
		tp_put64(p, m->u.status_req.id);
		break;
	case TP_STATUS_RESP:
		p = tp_put64(p, m->u.status_resp.id);
		p = tp_put16(p, m->u.status_resp.status);
		tp_put_status(p, &m->u.status_resp.st);
		break;
	case TP_ERROR:
		p = tp_put16(p, m->u.error.status);
		p = tp_put16(p, m->u.error.len);
		memcpy(p, m->u.error.text, m->u.error.len);
		break;
	case TP_TRANSFER_REQ:
		p = tp_put64(p, m->u.transfer_req.id);
		tp_put32(p, m->u.transfer_req.target);
		break;
	case TP_TRANSFER_RESP:
		p = tp_put64(p, m->u.transfer_resp.id);
		p = tp_put16(p, m->u.transfer_resp.status);
		tp_put32(p, m->u.transfer_resp.leader_id);
		break;
	case TP_CLOCK_REQ:
		tp_put64(p, m->u.clock_req.id);
		break;
	case TP_CLOCK_RESP:
		p = tp_put64(p, m->u.clock_resp.id);
		p = tp_put16(p, m->u.clock_resp.status);
		tp_put64(p, m->u.clock_resp.wall_ms);
		break;
	case TP_ADMIN_REQ:
		p = tp_put64(p, m->u.admin_req.id);
		*p++ = m->u.admin_req.op;
		p = tp_put64(p, m->u.admin_req.arg);
		tp_put64(p, m->u.admin_req.arg2);
		break;
	case TP_ADMIN_RESP:
		p = tp_put64(p, m->u.admin_resp.id);
		p = tp_put16(p, m->u.admin_resp.status);
		p = tp_put32(p, m->u.admin_resp.leader_id);
		p = tp_put64(p, m->u.admin_resp.value);
		tp_put64(p, m->u.admin_resp.value2);
		break;
	case TP_MEMBER_REQ:
		p = tp_put64(p, m->u.member_req.id);
		p = tp_put8(p, m->u.member_req.op);
		p = tp_put8(p, m->u.member_req.flags);
		p = tp_put32(p, m->u.member_req.member);
		p = tp_put16(p, m->u.member_req.len);
		memcpy(p, m->u.member_req.text, m->u.member_req.len);
		break;
	case TP_MEMBER_RESP:
		p = tp_put64(p, m->u.member_resp.id);
		p = tp_put16(p, m->u.member_resp.status);
		p = tp_put32(p, m->u.member_resp.leader_id);
		p = tp_put32(p, m->u.member_resp.count);
		p = tp_put32(p, m->u.member_resp.member);
		p = tp_put8(p, m->u.member_resp.role);
		p = tp_put8(p, m->u.member_resp.flags);
		p = tp_put64(p, m->u.member_resp.match_index);
		p = tp_put16(p, m->u.member_resp.len);
		memcpy(p, m->u.member_resp.text, m->u.member_resp.len);
		break;
	default:
		break;
	}
	return frame;
}

void tp_reader_init(tp_reader *r)
{
	/* buf is left as is: 16 KB of zeroes per connection would buy nothing. */
	r->start = 0;
	r->end = 0;
	r->err = TP_RERR_NONE;
}

uint8_t *tp_reader_space(tp_reader *r, size_t *len)
{
	size_t tail;

	/*
	 * After an error the input means nothing: drop it, so that a caller
	 * that keeps reading until it notices never sees 0 room.
	 */
	if (r->err != TP_RERR_NONE) {
		r->start = 0;
		r->end = 0;
		*len = TP_READER_CAP;
		return r->buf;
	}

	tail = r->end - r->start;
	if (tail == 0) {
		/* Everything parsed: rewind for free. */
		r->start = 0;
		r->end = 0;
	} else if (r->start > 0 && TP_READER_CAP - r->end < TP_READER_COMPACT_BELOW && tail <= r->start) {
		/*
		 * Once every whole frame is taken the tail is under TP_MAX_FRAME
		 * bytes, so (see tp_reader_cap_holds_two_frames) this runs
		 * whenever the room is short, and leaves at least half the buffer.
		 */
		memmove(r->buf, r->buf + r->start, tail);
		r->start = 0;
		r->end = tail;
	}
	*len = TP_READER_CAP - r->end;
	return r->buf + r->end;
}

void tp_reader_commit(tp_reader *r, size_t n)
{
	if (r->err != TP_RERR_NONE)
		return;
	if (n > TP_READER_CAP - r->end) {
		r->err = TP_RERR_OVERFLOW;
		return;
	}
	r->end += n;
}

size_t tp_reader_feed(tp_reader *r, const void *data, size_t len)
{
	size_t room;
	uint8_t *dst;

	/* Swallowed whole after an error: see tp_reader_space. */
	if (r->err != TP_RERR_NONE)
		return len;

	dst = tp_reader_space(r, &room);
	if (len < room)
		room = len;
	if (room > 0) /* data may be NULL when len is 0 */
		memcpy(dst, data, room);
	r->end += room;
	return room;
}

static int tp_reader_fail(tp_reader *r, int err)
{
	r->err = err;
	return -1;
}

/*
 * Checks the type byte against the body length as soon as both are in,
 * before the rest of the body arrives.
 */
static int tp_check_type_len(uint8_t type, uint32_t body_len)
{
	size_t payload = tp_payload_size(type);

	if (payload == 0)
		return TP_RERR_BAD_TYPE;
	if (tp_has_text(type)) {
		/* The exact length needs the u16 len: checked when decoding. */
		if (body_len < TP_TYPE_SIZE + payload || body_len > TP_TYPE_SIZE + payload + TP_MAX_ERRMSG)
			return TP_RERR_BAD_LENGTH;
	} else if (body_len != TP_TYPE_SIZE + payload &&
		   !(type == TP_STATUS_RESP && body_len == TP_TYPE_SIZE + TP_STATUS_RESP_V1_SIZE)) {
		return TP_RERR_BAD_LENGTH;
	}
	return TP_RERR_NONE;
}

/* The text at p of a frame of body_len whose fixed part is fixed bytes,
 * len announced: the exact length and no NUL inside (the length is bounded
 * by TP_MAX_ERRMSG through tp_check_type_len). */
static int tp_get_text(uint32_t body_len, size_t fixed, const uint8_t *p, uint16_t len, char *text)
{
	if (body_len != TP_TYPE_SIZE + fixed + (size_t)len)
		return TP_RERR_BAD_LENGTH;
	if (memchr(p, '\0', len) != NULL)
		return TP_RERR_BAD_VALUE;
	memcpy(text, p, len);
	text[len] = '\0';
	return TP_RERR_NONE;
}

/*
 * Decodes the payload of a whole frame of a known type and a length that
 * fits it into m (m->type excepted); returns a reader error, or 0.
 */
static int tp_decode(uint8_t type, uint32_t body_len, const uint8_t *p, tp_msg *m)
{
	switch (type) {
	case TP_HELLO:
		/* Magic and versions are the server's to judge (TP_ERR_VERSION). */
		m->u.hello.magic = tp_get32(&p);
		m->u.hello.min_version = tp_get16(&p);
		m->u.hello.max_version = tp_get16(&p);
		return TP_RERR_NONE;
	case TP_HELLO_OK:
		m->u.hello_ok.version = tp_get16(&p);
		m->u.hello_ok.node_id = tp_get32(&p);
		return TP_RERR_NONE;
	case TP_TS_REQ:
		/* count is the server's to judge (TP_ERR_BAD_REQUEST). */
		m->u.ts_req.id = tp_get64(&p);
		m->u.ts_req.count = tp_get32(&p);
		return TP_RERR_NONE;
	case TP_TS_RESP:
		m->u.ts_resp.id = tp_get64(&p);
		m->u.ts_resp.status = tp_get16(&p);
		m->u.ts_resp.first = tp_get64(&p);
		m->u.ts_resp.count = tp_get32(&p);
		if (m->u.ts_resp.status > TP_STATUS_LAST)
			return TP_RERR_BAD_VALUE;
		return TP_RERR_NONE;
	case TP_STATUS_REQ:
		m->u.status_req.id = tp_get64(&p);
		return TP_RERR_NONE;
	case TP_STATUS_RESP:
		m->u.status_resp.id = tp_get64(&p);
		m->u.status_resp.status = tp_get16(&p);
		tp_get_status(&p, &m->u.status_resp.st, body_len == TP_TYPE_SIZE + TP_STATUS_RESP_V1_SIZE);
		/* Unknown flag bits pass: a newer server may set more. */
		if (m->u.status_resp.status > TP_STATUS_LAST || m->u.status_resp.st.role > TP_ROLE_LAST)
			return TP_RERR_BAD_VALUE;
		return TP_RERR_NONE;
	case TP_ERROR:
		m->u.error.status = tp_get16(&p);
		m->u.error.len = tp_get16(&p);
		/* Also bounds len by TP_MAX_ERRMSG, via tp_check_type_len. */
		if (body_len != TP_TYPE_SIZE + TP_ERROR_FIXED_SIZE + (uint32_t)m->u.error.len)
			return TP_RERR_BAD_LENGTH;
		if (m->u.error.status > TP_STATUS_LAST || memchr(p, '\0', m->u.error.len) != NULL)
			return TP_RERR_BAD_VALUE;
		memcpy(m->u.error.text, p, m->u.error.len);
		m->u.error.text[m->u.error.len] = '\0';
		return TP_RERR_NONE;
	case TP_TRANSFER_REQ:
		/* target is the server's to judge (TP_ERR_BAD_REQUEST). */
		m->u.transfer_req.id = tp_get64(&p);
		m->u.transfer_req.target = tp_get32(&p);
		return TP_RERR_NONE;
	case TP_TRANSFER_RESP:
		m->u.transfer_resp.id = tp_get64(&p);
		m->u.transfer_resp.status = tp_get16(&p);
		m->u.transfer_resp.leader_id = tp_get32(&p);
		if (m->u.transfer_resp.status > TP_STATUS_LAST)
			return TP_RERR_BAD_VALUE;
		return TP_RERR_NONE;
	case TP_CLOCK_REQ:
		m->u.clock_req.id = tp_get64(&p);
		return TP_RERR_NONE;
	case TP_CLOCK_RESP:
		m->u.clock_resp.id = tp_get64(&p);
		m->u.clock_resp.status = tp_get16(&p);
		m->u.clock_resp.wall_ms = tp_get64(&p);
		if (m->u.clock_resp.status > TP_STATUS_LAST)
			return TP_RERR_BAD_VALUE;
		return TP_RERR_NONE;
	case TP_ADMIN_REQ:
		/* op and its arguments are the server's to judge. */
		m->u.admin_req.id = tp_get64(&p);
		m->u.admin_req.op = *p++;
		m->u.admin_req.arg = tp_get64(&p);
		m->u.admin_req.arg2 = tp_get64(&p);
		return TP_RERR_NONE;
	case TP_ADMIN_RESP:
		m->u.admin_resp.id = tp_get64(&p);
		m->u.admin_resp.status = tp_get16(&p);
		m->u.admin_resp.leader_id = tp_get32(&p);
		m->u.admin_resp.value = tp_get64(&p);
		m->u.admin_resp.value2 = tp_get64(&p);
		if (m->u.admin_resp.status > TP_STATUS_LAST)
			return TP_RERR_BAD_VALUE;
		return TP_RERR_NONE;
	case TP_MEMBER_REQ:
		/* op, member and the text are the server's to judge. */
		m->u.member_req.id = tp_get64(&p);
		m->u.member_req.op = tp_get8(&p);
		m->u.member_req.flags = tp_get8(&p);
		m->u.member_req.member = tp_get32(&p);
		m->u.member_req.len = tp_get16(&p);
		return tp_get_text(body_len, TP_MEMBER_REQ_FIXED_SIZE, p, m->u.member_req.len,
				   m->u.member_req.text);
	case TP_MEMBER_RESP:
		m->u.member_resp.id = tp_get64(&p);
		m->u.member_resp.status = tp_get16(&p);
		m->u.member_resp.leader_id = tp_get32(&p);
		m->u.member_resp.count = tp_get32(&p);
		m->u.member_resp.member = tp_get32(&p);
		m->u.member_resp.role = tp_get8(&p);
		m->u.member_resp.flags = tp_get8(&p);
		m->u.member_resp.match_index = tp_get64(&p);
		m->u.member_resp.len = tp_get16(&p);
		if (m->u.member_resp.status > TP_STATUS_LAST || m->u.member_resp.role > TP_MEMBER_ROLE_LAST)
			return TP_RERR_BAD_VALUE;
		return tp_get_text(body_len, TP_MEMBER_RESP_FIXED_SIZE, p, m->u.member_resp.len,
				   m->u.member_resp.text);
	default:
		return TP_RERR_BAD_TYPE;
	}
}

int tp_reader_next(tp_reader *r, tp_msg *m)
{
	const uint8_t *f = r->buf + r->start;
	size_t avail = r->end - r->start;
	uint32_t body_len;
	uint8_t type;
	int err;

	if (r->err != TP_RERR_NONE)
		return -1;
	if (avail < TP_HEADER_SIZE)
		return 0;

	/* Limits first, so a hostile length is refused without waiting. */
	body_len = tp_get32(&f);
	if (body_len == 0 || body_len > TP_MAX_BODY)
		return tp_reader_fail(r, TP_RERR_BAD_LENGTH);
	if (avail == TP_HEADER_SIZE)
		return 0;

	type = tp_get8(&f);
	err = tp_check_type_len(type, body_len);
	if (err != TP_RERR_NONE)
		return tp_reader_fail(r, err);
	if (avail < TP_HEADER_SIZE + (size_t)body_len)
		return 0;

	err = tp_decode(type, body_len, f, m);
	if (err != TP_RERR_NONE)
		return tp_reader_fail(r, err);
	m->type = type;
	r->start += TP_HEADER_SIZE + (size_t)body_len;
	return 1;
}

const char *tp_reader_errstr(const tp_reader *r)
{
	switch (r->err) {
	case TP_RERR_NONE:
		return "no error";
	case TP_RERR_BAD_LENGTH:
		return "bad frame length";
	case TP_RERR_BAD_TYPE:
		return "unknown message type";
	case TP_RERR_BAD_VALUE:
		return "field value out of range";
	case TP_RERR_OVERFLOW:
		return "reader buffer overflow";
	default:
		return "unknown reader error";
	}
}

const char *tp_status_str(uint16_t status)
{
	switch (status) {
	case TP_OK:
		return "ok";
	case TP_ERR_UNAVAILABLE:
		return "no leader or no quorum";
	case TP_ERR_TIMEOUT:
		return "timed out waiting for a durable grant";
	case TP_ERR_BAD_REQUEST:
		return "bad request";
	case TP_ERR_EXHAUSTED:
		return "timestamp range exhausted";
	case TP_ERR_SHUTTING_DOWN:
		return "server shutting down";
	case TP_ERR_INTERNAL:
		return "internal error";
	case TP_ERR_VERSION:
		return "bad magic or no common protocol version";
	case TP_ERR_PROTOCOL:
		return "malformed frame";
	case TP_ERR_NOT_LEADER:
		return "not the leader";
	case TP_ERR_TRANSFER:
		return "leadership transfer did not complete";
	case TP_ERR_FORBIDDEN:
		return "not permitted for this client certificate's role";
	case TP_ERR_BACKWARDS:
		return "refused: it would not move forward";
	case TP_ERR_TOO_FAR:
		return "refused: beyond max-reset-gap ahead of the leader's clock";
	case TP_ERR_CLUSTER_VERSION:
		return "refused: the cluster version is too low";
	case TP_ERR_BUSY:
		return "another membership change is under way";
	case TP_ERR_REFUSED:
		return "refused: the change would break the cluster";
	default:
		return "unknown status";
	}
}

const char *tp_role_str(uint8_t role)
{
	switch (role) {
	case TP_ROLE_UNAVAILABLE:
		return "unavailable";
	case TP_ROLE_FOLLOWER:
		return "follower";
	case TP_ROLE_CANDIDATE:
		return "candidate";
	case TP_ROLE_LEADER:
		return "leader";
	default:
		return "unknown";
	}
}

const char *tp_member_role_str(uint8_t role)
{
	switch (role) {
	case TP_MEMBER_VOTER:
		return "voter";
	case TP_MEMBER_LEARNER:
		return "learner";
	case TP_MEMBER_SPARE:
		return "spare";
	default:
		return "unknown";
	}
}
