/* test_proto.c: unit tests of the wire protocol codec (common/proto.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "proto.h"

/*
 * Every buffer handed to the codec is heap-allocated at its exact size, so
 * that AddressSanitizer or valgrind catch any access one byte outside it.
 */

/* Frame sizes in bytes, from the layouts in proto.h (header + type + payload). */
#define HDR                 4
#define SZ_HELLO            (HDR + 1 + 8)
#define SZ_HELLO_OK         (HDR + 1 + 6)
#define SZ_TS_REQ           (HDR + 1 + 12)
#define SZ_TS_RESP          (HDR + 1 + 22)
#define SZ_STATUS_REQ       (HDR + 1 + 8)
#define SZ_STATUS_RESP      (HDR + 1 + 92)
/* An older member's status, before the clock fields (seven u64). */
#define SZ_STATUS_RESP_V1   (HDR + 1 + 76)
#define SZ_ERROR(len)       (HDR + 1 + 4 + (len))
#define SZ_TRANSFER_REQ     (HDR + 1 + 12)
#define SZ_TRANSFER_RESP    (HDR + 1 + 14)
#define SZ_CLOCK_REQ        (HDR + 1 + 8)
#define SZ_CLOCK_RESP       (HDR + 1 + 18)
#define SZ_ADMIN_REQ        (HDR + 1 + 8 + 1 + 8 + 8)
#define SZ_ADMIN_RESP       (HDR + 1 + 8 + 2 + 4 + 8 + 8)
#define SZ_MEMBER_REQ(len)  (HDR + 1 + 16 + (len))
#define SZ_MEMBER_RESP(len) (HDR + 1 + 34 + (len))

/* Byte offsets inside an encoded frame, for tests that corrupt one field. */
#define OFF_TYPE                 HDR
#define OFF_PAYLOAD              (HDR + 1)
#define OFF_TS_RESP_STATUS       (OFF_PAYLOAD + 8)
#define OFF_STATUS_RESP_STATUS   (OFF_PAYLOAD + 8)
#define OFF_STATUS_RESP_ROLE     (OFF_PAYLOAD + 8 + 2 + 4 + 4)
#define OFF_ERROR_STATUS         OFF_PAYLOAD
#define OFF_ERROR_LEN            (OFF_PAYLOAD + 2)
#define OFF_ERROR_TEXT           (OFF_PAYLOAD + 4)
#define OFF_TRANSFER_RESP_STATUS (OFF_PAYLOAD + 8)

/* Iterations of the garbage loop; TP_TEST_ITERS overrides (e.g. for valgrind). */
#define GARBAGE_ITERS_DEFAULT 1000000UL
#define RANDOM_ROUNDTRIPS     100000
/* Frames streamed through one reader in the pipelining tests: > 3 buffers. */
#define PIPELINE_FRAMES       2000
/* Longest random input of the garbage loop, in bytes. */
#define GARBAGE_MAX_LEN       (3 * TP_MAX_FRAME)
#define GARBAGE_SEED_DEFAULT  UINT64_C(0x54534F5231303031)

/* ---- a small deterministic PRNG (splitmix64) ---------------------------- */

#define SPLITMIX_GAMMA UINT64_C(0x9E3779B97F4A7C15)
#define SPLITMIX_MUL1  UINT64_C(0xBF58476D1CE4E5B9)
#define SPLITMIX_MUL2  UINT64_C(0x94D049BB133111EB)

static uint64_t rng_state;

static uint64_t rng_next(void)
{
	uint64_t z = (rng_state += SPLITMIX_GAMMA);

	z = (z ^ (z >> 30)) * SPLITMIX_MUL1;
	z = (z ^ (z >> 27)) * SPLITMIX_MUL2;
	return z ^ (z >> 31);
}

/* Uniform in [0, n), n > 0 (the modulo bias does not matter here). */
static size_t rng_below(size_t n)
{
	return (size_t)(rng_next() % n);
}

/* Edge values a quarter of the time, since that is where codecs break. */
static uint64_t rng_u64(void)
{
	static const uint64_t edges[] = {
	    0, 1, UINT64_MAX, UINT64_MAX - 1, UINT32_MAX, (uint64_t)UINT32_MAX + 1, INT64_MAX};

	if (rng_below(4) == 0)
		return edges[rng_below(sizeof edges / sizeof edges[0])];
	return rng_next();
}

static uint32_t rng_u32(void)
{
	return (uint32_t)rng_u64();
}

static uint16_t rng_u16(void)
{
	return (uint16_t)rng_u64();
}

static uint8_t rng_u8(void)
{
	return (uint8_t)rng_u64();
}

/* ---- helpers -------------------------------------------------------------- */

static tp_reader *reader_new(void)
{
	tp_reader *r = malloc(sizeof *r);

	assert_non_null(r);
	tp_reader_init(r);
	return r;
}

/* Encodes m into an exact-size heap buffer; *n gets its size. */
static uint8_t *encode_new(const tp_msg *m, size_t *n)
{
	uint8_t tmp[TP_MAX_FRAME];
	uint8_t *out;

	*n = tp_encode(m, tmp, sizeof tmp);
	assert_true(*n > 0);
	out = malloc(*n);
	assert_non_null(out);
	memcpy(out, tmp, *n);
	return out;
}

static void assert_status_equal(const tp_status *a, const tp_status *b)
{
	assert_int_equal(a->node_id, b->node_id);
	assert_int_equal(a->leader_id, b->leader_id);
	assert_int_equal(a->role, b->role);
	assert_int_equal(a->flags, b->flags);
	assert_int_equal(a->term, b->term);
	assert_int_equal(a->high_water_ms, b->high_water_ms);
	assert_int_equal(a->commit_index, b->commit_index);
	assert_int_equal(a->applied_index, b->applied_index);
	assert_int_equal(a->last_issued, b->last_issued);
	assert_int_equal(a->grants, b->grants);
	assert_int_equal(a->timestamps, b->timestamps);
	assert_int_equal(a->clock_offset_ms, b->clock_offset_ms);
	assert_int_equal(a->clock_ahead_ms, b->clock_ahead_ms);
}

/* Field by field: a union with padding and a text tail cannot be memcmp'd. */
static void assert_msg_equal(const tp_msg *a, const tp_msg *b)
{
	assert_int_equal(a->type, b->type);
	switch (a->type) {
	case TP_HELLO:
		assert_int_equal(a->u.hello.magic, b->u.hello.magic);
		assert_int_equal(a->u.hello.min_version, b->u.hello.min_version);
		assert_int_equal(a->u.hello.max_version, b->u.hello.max_version);
		break;
	case TP_HELLO_OK:
		assert_int_equal(a->u.hello_ok.version, b->u.hello_ok.version);
		assert_int_equal(a->u.hello_ok.node_id, b->u.hello_ok.node_id);
		break;
	case TP_TS_REQ:
		assert_int_equal(a->u.ts_req.id, b->u.ts_req.id);
		assert_int_equal(a->u.ts_req.count, b->u.ts_req.count);
		break;
	case TP_TS_RESP:
		assert_int_equal(a->u.ts_resp.id, b->u.ts_resp.id);
		assert_int_equal(a->u.ts_resp.status, b->u.ts_resp.status);
		assert_int_equal(a->u.ts_resp.first, b->u.ts_resp.first);
		assert_int_equal(a->u.ts_resp.count, b->u.ts_resp.count);
		break;
	case TP_STATUS_REQ:
		assert_int_equal(a->u.status_req.id, b->u.status_req.id);
		break;
	case TP_STATUS_RESP:
		assert_int_equal(a->u.status_resp.id, b->u.status_resp.id);
		assert_int_equal(a->u.status_resp.status, b->u.status_resp.status);
		assert_status_equal(&a->u.status_resp.st, &b->u.status_resp.st);
		break;
	case TP_ERROR:
		assert_int_equal(a->u.error.status, b->u.error.status);
		assert_int_equal(a->u.error.len, b->u.error.len);
		assert_memory_equal(a->u.error.text, b->u.error.text, a->u.error.len + 1u);
		break;
	case TP_TRANSFER_REQ:
		assert_int_equal(a->u.transfer_req.id, b->u.transfer_req.id);
		assert_int_equal(a->u.transfer_req.target, b->u.transfer_req.target);
		break;
	case TP_TRANSFER_RESP:
		assert_int_equal(a->u.transfer_resp.id, b->u.transfer_resp.id);
		assert_int_equal(a->u.transfer_resp.status, b->u.transfer_resp.status);
		assert_int_equal(a->u.transfer_resp.leader_id, b->u.transfer_resp.leader_id);
		break;
	case TP_CLOCK_REQ:
		assert_int_equal(a->u.clock_req.id, b->u.clock_req.id);
		break;
	case TP_CLOCK_RESP:
		assert_int_equal(a->u.clock_resp.id, b->u.clock_resp.id);
		assert_int_equal(a->u.clock_resp.status, b->u.clock_resp.status);
		assert_int_equal(a->u.clock_resp.wall_ms, b->u.clock_resp.wall_ms);
		break;
	case TP_ADMIN_REQ:
		assert_int_equal(a->u.admin_req.id, b->u.admin_req.id);
		assert_int_equal(a->u.admin_req.op, b->u.admin_req.op);
		assert_int_equal(a->u.admin_req.arg, b->u.admin_req.arg);
		assert_int_equal(a->u.admin_req.arg2, b->u.admin_req.arg2);
		break;
	case TP_ADMIN_RESP:
		assert_int_equal(a->u.admin_resp.id, b->u.admin_resp.id);
		assert_int_equal(a->u.admin_resp.status, b->u.admin_resp.status);
		assert_int_equal(a->u.admin_resp.leader_id, b->u.admin_resp.leader_id);
		assert_int_equal(a->u.admin_resp.value, b->u.admin_resp.value);
		assert_int_equal(a->u.admin_resp.value2, b->u.admin_resp.value2);
		break;
	case TP_MEMBER_REQ:
		assert_int_equal(a->u.member_req.id, b->u.member_req.id);
		assert_int_equal(a->u.member_req.op, b->u.member_req.op);
		assert_int_equal(a->u.member_req.flags, b->u.member_req.flags);
		assert_int_equal(a->u.member_req.member, b->u.member_req.member);
		assert_int_equal(a->u.member_req.len, b->u.member_req.len);
		assert_memory_equal(a->u.member_req.text, b->u.member_req.text, a->u.member_req.len + 1u);
		break;
	case TP_MEMBER_RESP:
		assert_int_equal(a->u.member_resp.id, b->u.member_resp.id);
		assert_int_equal(a->u.member_resp.status, b->u.member_resp.status);
		assert_int_equal(a->u.member_resp.leader_id, b->u.member_resp.leader_id);
		assert_int_equal(a->u.member_resp.count, b->u.member_resp.count);
		assert_int_equal(a->u.member_resp.member, b->u.member_resp.member);
		assert_int_equal(a->u.member_resp.role, b->u.member_resp.role);
		assert_int_equal(a->u.member_resp.flags, b->u.member_resp.flags);
		assert_int_equal(a->u.member_resp.match_index, b->u.member_resp.match_index);
		assert_int_equal(a->u.member_resp.len, b->u.member_resp.len);
		assert_memory_equal(a->u.member_resp.text, b->u.member_resp.text, a->u.member_resp.len + 1u);
		break;
	default:
		fail_msg("unexpected type %u", a->type);
	}
}

/* A printable error text of len bytes (plus the NUL). */
static void set_text(tp_msg *m, uint16_t status, size_t len)
{
	size_t i;

	m->type = TP_ERROR;
	m->u.error.status = status;
	m->u.error.len = (uint16_t)len;
	for (i = 0; i < len; i++)
		m->u.error.text[i] = (char)('a' + i % 26);
	m->u.error.text[len] = '\0';
}

/* The edge-value samples: 0, maxima, every boundary the header names. */
#define MAX_SAMPLES 32

static size_t make_samples(tp_msg *s)
{
	size_t n = 0;

	memset(s, 0, MAX_SAMPLES * sizeof *s);
	s[n].type = TP_HELLO;
	s[n].u.hello.magic = TP_MAGIC;
	s[n].u.hello.min_version = TP_VERSION;
	s[n++].u.hello.max_version = TP_VERSION;
	s[n++].type = TP_HELLO; /* all zero: magic is the server's to check */
	s[n].type = TP_HELLO;
	s[n].u.hello.magic = UINT32_MAX;
	s[n].u.hello.min_version = UINT16_MAX;
	s[n++].u.hello.max_version = UINT16_MAX;

	s[n++].type = TP_HELLO_OK;
	s[n].type = TP_HELLO_OK;
	s[n].u.hello_ok.version = UINT16_MAX;
	s[n++].u.hello_ok.node_id = UINT32_MAX;

	s[n++].type = TP_TS_REQ; /* count 0 passes: the server answers it */
	s[n].type = TP_TS_REQ;
	s[n].u.ts_req.id = UINT64_MAX;
	s[n++].u.ts_req.count = TP_MAX_COUNT;
	s[n].type = TP_TS_REQ;
	s[n].u.ts_req.id = 1;
	s[n++].u.ts_req.count = TP_MAX_COUNT + 1;
	s[n].type = TP_TS_REQ;
	s[n].u.ts_req.id = UINT64_MAX - 1;
	s[n++].u.ts_req.count = UINT32_MAX;

	s[n++].type = TP_TS_RESP;
	s[n].type = TP_TS_RESP;
	s[n].u.ts_resp.id = UINT64_MAX;
	s[n].u.ts_resp.status = TP_STATUS_LAST;
	s[n].u.ts_resp.first = UINT64_MAX;
	s[n++].u.ts_resp.count = UINT32_MAX;
	s[n].type = TP_TS_RESP;
	s[n].u.ts_resp.id = 42;
	s[n].u.ts_resp.status = TP_OK;
	s[n].u.ts_resp.first = INT64_MAX;
	s[n++].u.ts_resp.count = TP_MAX_COUNT;

	s[n++].type = TP_STATUS_REQ;
	s[n].type = TP_STATUS_REQ;
	s[n++].u.status_req.id = UINT64_MAX;

	s[n++].type = TP_STATUS_RESP;
	s[n].type = TP_STATUS_RESP;
	s[n].u.status_resp.id = UINT64_MAX;
	s[n].u.status_resp.status = TP_STATUS_LAST;
	s[n].u.status_resp.st.node_id = UINT32_MAX;
	s[n].u.status_resp.st.leader_id = UINT32_MAX;
	s[n].u.status_resp.st.role = TP_ROLE_LAST;
	s[n].u.status_resp.st.flags = UINT8_MAX; /* unknown flag bits pass */
	s[n].u.status_resp.st.term = UINT64_MAX;
	s[n].u.status_resp.st.high_water_ms = UINT64_MAX;
	s[n].u.status_resp.st.commit_index = UINT64_MAX;
	s[n].u.status_resp.st.applied_index = UINT64_MAX;
	s[n].u.status_resp.st.last_issued = UINT64_MAX;
	s[n].u.status_resp.st.grants = UINT64_MAX;
	s[n++].u.status_resp.st.timestamps = UINT64_MAX;
	s[n].type = TP_STATUS_RESP;
	s[n].u.status_resp.id = 7;
	s[n].u.status_resp.st.node_id = 1;
	s[n].u.status_resp.st.leader_id = 2;
	s[n].u.status_resp.st.role = TP_ROLE_FOLLOWER;
	s[n].u.status_resp.st.flags = TP_FLAG_SERVING;
	s[n].u.status_resp.st.term = 3;
	s[n].u.status_resp.st.high_water_ms = 4;
	s[n].u.status_resp.st.commit_index = 5;
	s[n].u.status_resp.st.applied_index = 6;
	s[n].u.status_resp.st.last_issued = 7;
	s[n].u.status_resp.st.grants = 8;
	s[n].u.status_resp.st.timestamps = 9;
	s[n].u.status_resp.st.clock_offset_ms = -31536000000; /* a year behind */
	s[n++].u.status_resp.st.clock_ahead_ms = UINT64_MAX;

	s[n].type = TP_CLOCK_REQ;
	s[n++].u.clock_req.id = UINT64_MAX;
	s[n].type = TP_CLOCK_RESP;
	s[n].u.clock_resp.id = 7;
	s[n].u.clock_resp.status = TP_OK;
	s[n++].u.clock_resp.wall_ms = UINT64_MAX;

	s[n++].type = TP_TRANSFER_REQ; /* target 0: any caught-up voter */
	s[n].type = TP_TRANSFER_REQ;
	s[n].u.transfer_req.id = UINT64_MAX;
	s[n++].u.transfer_req.target = UINT32_MAX; /* no member: the server answers it */

	s[n++].type = TP_TRANSFER_RESP;
	s[n].type = TP_TRANSFER_RESP;
	s[n].u.transfer_resp.id = UINT64_MAX;
	s[n].u.transfer_resp.status = TP_STATUS_LAST;
	s[n++].u.transfer_resp.leader_id = UINT32_MAX;
	s[n].type = TP_TRANSFER_RESP;
	s[n].u.transfer_resp.id = 5;
	s[n].u.transfer_resp.status = TP_ERR_NOT_LEADER;
	s[n++].u.transfer_resp.leader_id = 2;

	s[n].type = TP_ADMIN_REQ;
	s[n].u.admin_req.id = 7;
	s[n].u.admin_req.op = TP_ADMIN_ADVANCE;
	s[n].u.admin_req.arg = UINT64_MAX;
	s[n++].u.admin_req.arg2 = 1;
	s[n].type = TP_ADMIN_RESP;
	s[n].u.admin_resp.id = UINT64_MAX;
	s[n].u.admin_resp.status = TP_STATUS_LAST;
	s[n].u.admin_resp.leader_id = UINT32_MAX;
	s[n].u.admin_resp.value = UINT64_MAX;
	s[n++].u.admin_resp.value2 = 3;

	set_text(&s[n++], TP_ERR_PROTOCOL, 0);
	set_text(&s[n++], TP_OK, 1);
	set_text(&s[n++], TP_ERR_VERSION, TP_MAX_ERRMSG);
	/* Bytes above 0x7f pass: the codec carries text, it does not judge it. */
	set_text(&s[n], TP_ERR_UNAVAILABLE, 3);
	s[n++].u.error.text[1] = (char)0xff;

	assert_true(n <= MAX_SAMPLES);
	return n;
}

/* The expected frame size of a sample. */
static size_t frame_size(const tp_msg *m)
{
	switch (m->type) {
	case TP_HELLO:
		return SZ_HELLO;
	case TP_HELLO_OK:
		return SZ_HELLO_OK;
	case TP_TS_REQ:
		return SZ_TS_REQ;
	case TP_TS_RESP:
		return SZ_TS_RESP;
	case TP_STATUS_REQ:
		return SZ_STATUS_REQ;
	case TP_STATUS_RESP:
		return SZ_STATUS_RESP;
	case TP_ERROR:
		return SZ_ERROR(m->u.error.len);
	case TP_TRANSFER_REQ:
		return SZ_TRANSFER_REQ;
	case TP_TRANSFER_RESP:
		return SZ_TRANSFER_RESP;
	case TP_CLOCK_REQ:
		return SZ_CLOCK_REQ;
	case TP_CLOCK_RESP:
		return SZ_CLOCK_RESP;
	case TP_ADMIN_REQ:
		return SZ_ADMIN_REQ;
	case TP_ADMIN_RESP:
		return SZ_ADMIN_RESP;
	case TP_MEMBER_REQ:
		return SZ_MEMBER_REQ(m->u.member_req.len);
	case TP_MEMBER_RESP:
		return SZ_MEMBER_RESP(m->u.member_resp.len);
	default:
		return 0;
	}
}

/* A random valid message of a random type. */
static void random_msg(tp_msg *m)
{
	size_t i;

	memset(m, 0, sizeof *m);
	m->type = (uint8_t)(TP_HELLO + rng_below(TP_TYPE_LAST));
	switch (m->type) {
	case TP_HELLO:
		m->u.hello.magic = rng_u32();
		m->u.hello.min_version = rng_u16();
		m->u.hello.max_version = rng_u16();
		break;
	case TP_HELLO_OK:
		m->u.hello_ok.version = rng_u16();
		m->u.hello_ok.node_id = rng_u32();
		break;
	case TP_TS_REQ:
		m->u.ts_req.id = rng_u64();
		m->u.ts_req.count = rng_u32();
		break;
	case TP_TS_RESP:
		m->u.ts_resp.id = rng_u64();
		m->u.ts_resp.status = (uint16_t)rng_below(TP_STATUS_LAST + 1);
		m->u.ts_resp.first = rng_u64();
		m->u.ts_resp.count = rng_u32();
		break;
	case TP_STATUS_REQ:
		m->u.status_req.id = rng_u64();
		break;
	case TP_STATUS_RESP:
		m->u.status_resp.id = rng_u64();
		m->u.status_resp.status = (uint16_t)rng_below(TP_STATUS_LAST + 1);
		m->u.status_resp.st.node_id = rng_u32();
		m->u.status_resp.st.leader_id = rng_u32();
		m->u.status_resp.st.role = (uint8_t)rng_below(TP_ROLE_LAST + 1);
		m->u.status_resp.st.flags = rng_u8();
		m->u.status_resp.st.term = rng_u64();
		m->u.status_resp.st.high_water_ms = rng_u64();
		m->u.status_resp.st.commit_index = rng_u64();
		m->u.status_resp.st.applied_index = rng_u64();
		m->u.status_resp.st.last_issued = rng_u64();
		m->u.status_resp.st.grants = rng_u64();
		m->u.status_resp.st.timestamps = rng_u64();
		m->u.status_resp.st.clock_offset_ms = (int64_t)rng_u64();
		m->u.status_resp.st.clock_ahead_ms = rng_u64();
		break;
	case TP_ERROR:
		m->u.error.status = (uint16_t)rng_below(TP_STATUS_LAST + 1);
		m->u.error.len = (uint16_t)rng_below(TP_MAX_ERRMSG + 1);
		for (i = 0; i < m->u.error.len; i++)
			m->u.error.text[i] = (char)(1 + rng_below(UINT8_MAX));
		m->u.error.text[m->u.error.len] = '\0';
		break;
	case TP_TRANSFER_REQ:
		m->u.transfer_req.id = rng_u64();
		m->u.transfer_req.target = rng_u32();
		break;
	case TP_TRANSFER_RESP:
		m->u.transfer_resp.id = rng_u64();
		m->u.transfer_resp.status = (uint16_t)rng_below(TP_STATUS_LAST + 1);
		m->u.transfer_resp.leader_id = rng_u32();
		break;
	case TP_CLOCK_REQ:
		m->u.clock_req.id = rng_u64();
		break;
	case TP_CLOCK_RESP:
		m->u.clock_resp.id = rng_u64();
		m->u.clock_resp.status = (uint16_t)rng_below(TP_STATUS_LAST + 1);
		m->u.clock_resp.wall_ms = rng_u64();
		break;
	case TP_ADMIN_REQ:
		m->u.admin_req.id = rng_u64();
		m->u.admin_req.op = rng_u8();
		m->u.admin_req.arg = rng_u64();
		m->u.admin_req.arg2 = rng_u64();
		break;
	case TP_ADMIN_RESP:
		m->u.admin_resp.id = rng_u64();
		m->u.admin_resp.status = (uint16_t)rng_below(TP_STATUS_LAST + 1);
		m->u.admin_resp.leader_id = rng_u32();
		m->u.admin_resp.value = rng_u64();
		m->u.admin_resp.value2 = rng_u64();
		break;
	case TP_MEMBER_REQ:
		m->u.member_req.id = rng_u64();
		m->u.member_req.op = rng_u8();
		m->u.member_req.flags = rng_u8();
		m->u.member_req.member = rng_u32();
		m->u.member_req.len = (uint16_t)rng_below(TP_MAX_ERRMSG + 1);
		for (i = 0; i < m->u.member_req.len; i++)
			m->u.member_req.text[i] = (char)(1 + rng_below(UINT8_MAX));
		m->u.member_req.text[m->u.member_req.len] = '\0';
		break;
	case TP_MEMBER_RESP:
		m->u.member_resp.id = rng_u64();
		m->u.member_resp.status = (uint16_t)rng_below(TP_STATUS_LAST + 1);
		m->u.member_resp.leader_id = rng_u32();
		m->u.member_resp.count = rng_u32();
		m->u.member_resp.member = rng_u32();
		m->u.member_resp.role = (uint8_t)rng_below(TP_MEMBER_ROLE_LAST + 1);
		m->u.member_resp.flags = rng_u8();
		m->u.member_resp.match_index = rng_u64();
		m->u.member_resp.len = (uint16_t)rng_below(TP_MAX_ERRMSG + 1);
		for (i = 0; i < m->u.member_resp.len; i++)
			m->u.member_resp.text[i] = (char)(1 + rng_below(UINT8_MAX));
		m->u.member_resp.text[m->u.member_resp.len] = '\0';
		break;
	default:
		break;
	}
}

/* ---- encoding --------------------------------------------------------------- */

/* Pins the byte order and layout against hand-written frames. */
static void test_encode_golden(void **state)
{
	static const uint8_t ts_req[] = {0, 0, 0, 13, TP_TS_REQ, 1,    2,    3,   4,
					 5, 6, 7, 8,  0x0a,      0x0b, 0x0c, 0x0d};
	static const uint8_t hello[] = {0, 0, 0, 9, TP_HELLO, 'T', 'S', 'O', 'R', 0, 1, 0, 2};
	static const uint8_t error[] = {0, 0, 0, 7, TP_ERROR, 0, TP_ERR_TIMEOUT, 0, 2, 'h', 'i'};
	static const uint8_t transfer_req[] = {0, 0, 0, 13, TP_TRANSFER_REQ, 1, 2, 3, 4, 5, 6, 7, 8,
					       0, 0, 0, 3};
	static const uint8_t transfer_resp[] = {0, 0, 0, 15, TP_TRANSFER_RESP,  0,    0,    0,    0,   0,
						0, 0, 9, 0,  TP_ERR_NOT_LEADER, 0x0a, 0x0b, 0x0c, 0x0d};
	uint8_t out[TP_MAX_FRAME];
	tp_msg m;

	(void)state;
	memset(&m, 0, sizeof m);
	m.type = TP_TS_REQ;
	m.u.ts_req.id = UINT64_C(0x0102030405060708);
	m.u.ts_req.count = UINT32_C(0x0a0b0c0d);
	assert_int_equal(tp_encode(&m, out, sizeof out), sizeof ts_req);
	assert_memory_equal(out, ts_req, sizeof ts_req);

	m.type = TP_HELLO;
	m.u.hello.magic = TP_MAGIC;
	m.u.hello.min_version = 1;
	m.u.hello.max_version = 2;
	assert_int_equal(tp_encode(&m, out, sizeof out), sizeof hello);
	assert_memory_equal(out, hello, sizeof hello);

	set_text(&m, TP_ERR_TIMEOUT, 0);
	strcpy(m.u.error.text, "hi");
	m.u.error.len = 2;
	assert_int_equal(tp_encode(&m, out, sizeof out), sizeof error);
	assert_memory_equal(out, error, sizeof error);

	memset(&m, 0, sizeof m);
	m.type = TP_TRANSFER_REQ;
	m.u.transfer_req.id = UINT64_C(0x0102030405060708);
	m.u.transfer_req.target = 3;
	assert_int_equal(tp_encode(&m, out, sizeof out), sizeof transfer_req);
	assert_memory_equal(out, transfer_req, sizeof transfer_req);

	memset(&m, 0, sizeof m);
	m.type = TP_TRANSFER_RESP;
	m.u.transfer_resp.id = 9;
	m.u.transfer_resp.status = TP_ERR_NOT_LEADER;
	m.u.transfer_resp.leader_id = UINT32_C(0x0a0b0c0d);
	assert_int_equal(tp_encode(&m, out, sizeof out), sizeof transfer_resp);
	assert_memory_equal(out, transfer_resp, sizeof transfer_resp);
}

/* Every cap below the frame size is refused, and nothing is written past it. */
static void test_encode_small_caps(void **state)
{
	tp_msg s[MAX_SAMPLES];
	size_t ns = make_samples(s);
	size_t i, cap, n;
	uint8_t *buf;

	(void)state;
	for (i = 0; i < ns; i++) {
		n = frame_size(&s[i]);
		for (cap = 0; cap < n; cap++) {
			buf = malloc(cap + 1); /* +1: malloc(0) may be NULL */
			assert_non_null(buf);
			memset(buf, 0xa5, cap + 1);
			assert_int_equal(tp_encode(&s[i], buf, cap), 0);
			assert_int_equal(buf[cap], 0xa5);
			free(buf);
		}
		buf = malloc(n);
		assert_non_null(buf);
		assert_int_equal(tp_encode(&s[i], buf, n), n);
		free(buf);
	}
}

static void test_encode_bad(void **state)
{
	static const uint8_t bad_types[] = {0, TP_TYPE_LAST + 1, 0x7f, 0xff};
	uint8_t out[TP_MAX_FRAME];
	tp_msg m;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof bad_types; i++) {
		memset(&m, 0, sizeof m);
		m.type = bad_types[i];
		assert_int_equal(tp_encode(&m, out, sizeof out), 0);
	}

	/* Text longer than TP_MAX_ERRMSG. */
	memset(&m, 0, sizeof m);
	m.type = TP_ERROR;
	m.u.error.len = TP_MAX_ERRMSG + 1;
	memset(m.u.error.text, 'x', sizeof m.u.error.text);
	assert_int_equal(tp_encode(&m, out, sizeof out), 0);
	m.u.error.len = UINT16_MAX;
	assert_int_equal(tp_encode(&m, out, sizeof out), 0);

	/* len != strlen(text), both ways, and a NUL inside the text. */
	set_text(&m, TP_OK, 4);
	m.u.error.len = 5;
	assert_int_equal(tp_encode(&m, out, sizeof out), 0);
	m.u.error.len = 3;
	assert_int_equal(tp_encode(&m, out, sizeof out), 0);
	m.u.error.len = 4;
	m.u.error.text[1] = '\0';
	assert_int_equal(tp_encode(&m, out, sizeof out), 0);
	set_text(&m, TP_OK, TP_MAX_ERRMSG);
	m.u.error.text[TP_MAX_ERRMSG] = 'x'; /* not terminated at len */
	assert_int_equal(tp_encode(&m, out, sizeof out), 0);

	/* Values the reader would refuse are not sent either. */
	set_text(&m, TP_STATUS_LAST + 1, 2);
	assert_int_equal(tp_encode(&m, out, sizeof out), 0);
	memset(&m, 0, sizeof m);
	m.type = TP_TS_RESP;
	m.u.ts_resp.status = TP_STATUS_LAST + 1;
	assert_int_equal(tp_encode(&m, out, sizeof out), 0);
	m.u.ts_resp.status = UINT16_MAX;
	assert_int_equal(tp_encode(&m, out, sizeof out), 0);
	memset(&m, 0, sizeof m);
	m.type = TP_STATUS_RESP;
	m.u.status_resp.status = TP_STATUS_LAST + 1;
	assert_int_equal(tp_encode(&m, out, sizeof out), 0);
	m.u.status_resp.status = TP_OK;
	m.u.status_resp.st.role = TP_ROLE_LAST + 1;
	assert_int_equal(tp_encode(&m, out, sizeof out), 0);
	m.u.status_resp.st.role = TP_ROLE_LAST;
	assert_int_equal(tp_encode(&m, out, sizeof out), SZ_STATUS_RESP);
	memset(&m, 0, sizeof m);
	m.type = TP_TRANSFER_RESP;
	m.u.transfer_resp.status = TP_STATUS_LAST + 1;
	assert_int_equal(tp_encode(&m, out, sizeof out), 0);
	m.u.transfer_resp.status = UINT16_MAX;
	assert_int_equal(tp_encode(&m, out, sizeof out), 0);
	m.u.transfer_resp.status = TP_STATUS_LAST;
	assert_int_equal(tp_encode(&m, out, sizeof out), SZ_TRANSFER_RESP);
}

/* ---- reading whole and split messages --------------------------------------- */

static void test_roundtrip(void **state)
{
	tp_msg s[MAX_SAMPLES], got;
	size_t ns = make_samples(s);
	size_t i, n;
	uint8_t *frame;
	tp_reader *r = reader_new();

	(void)state;
	for (i = 0; i < ns; i++) {
		frame = encode_new(&s[i], &n);
		assert_int_equal(n, frame_size(&s[i]));
		assert_int_equal(bytes_get_u32(frame), n - HDR);
		assert_int_equal(tp_reader_feed(r, frame, n), n);
		assert_int_equal(tp_reader_next(r, &got), 1);
		assert_msg_equal(&s[i], &got);
		assert_int_equal(tp_reader_next(r, &got), 0);
		assert_int_equal(r->start, r->end);
		free(frame);
	}
	assert_int_equal(r->err, TP_RERR_NONE);
	free(r);
}

static void test_random_roundtrip(void **state)
{
	tp_msg m, got;
	uint8_t out[TP_MAX_FRAME];
	size_t i, n;
	tp_reader *r = reader_new();

	(void)state;
	rng_state = GARBAGE_SEED_DEFAULT;
	for (i = 0; i < RANDOM_ROUNDTRIPS; i++) {
		random_msg(&m);
		n = tp_encode(&m, out, sizeof out);
		assert_int_equal(n, frame_size(&m));
		assert_int_equal(tp_reader_feed(r, out, n), n);
		assert_int_equal(tp_reader_next(r, &got), 1);
		assert_msg_equal(&m, &got);
	}
	free(r);
}

static void test_byte_at_a_time(void **state)
{
	tp_msg s[MAX_SAMPLES], got;
	size_t ns = make_samples(s);
	size_t i, k, n;
	uint8_t *frame;
	tp_reader *r = reader_new();

	(void)state;
	for (i = 0; i < ns; i++) {
		frame = encode_new(&s[i], &n);
		tp_reader_init(r);
		for (k = 0; k < n; k++) {
			assert_int_equal(tp_reader_next(r, &got), 0);
			assert_int_equal(tp_reader_feed(r, frame + k, 1), 1);
		}
		assert_int_equal(tp_reader_next(r, &got), 1);
		assert_msg_equal(&s[i], &got);
		assert_int_equal(tp_reader_next(r, &got), 0);
		free(frame);
	}
	free(r);
}

static void test_every_split(void **state)
{
	tp_msg s[MAX_SAMPLES], got;
	size_t ns = make_samples(s);
	size_t i, k, n;
	uint8_t *frame;
	tp_reader *r = reader_new();

	(void)state;
	for (i = 0; i < ns; i++) {
		frame = encode_new(&s[i], &n);
		for (k = 0; k <= n; k++) {
			tp_reader_init(r);
			assert_int_equal(tp_reader_feed(r, frame, k), k);
			assert_int_equal(tp_reader_next(r, &got), k == n ? 1 : 0);
			assert_int_equal(tp_reader_feed(r, frame + k, n - k), n - k);
			if (k < n)
				assert_int_equal(tp_reader_next(r, &got), 1);
			assert_msg_equal(&s[i], &got);
			assert_int_equal(tp_reader_next(r, &got), 0);
		}
		free(frame);
	}
	free(r);
}

/* ---- pipelining: many frames, more than a buffer's worth ------------------ */

/* A stream of PIPELINE_FRAMES random frames; msgs[i] is the i-th. */
static uint8_t *make_stream(tp_msg *msgs, size_t *len)
{
	uint8_t *stream = malloc(PIPELINE_FRAMES * TP_MAX_FRAME);
	size_t i, n, off = 0;

	assert_non_null(stream);
	for (i = 0; i < PIPELINE_FRAMES; i++) {
		random_msg(&msgs[i]);
		n = tp_encode(&msgs[i], stream + off, TP_MAX_FRAME);
		assert_true(n > 0);
		off += n;
	}
	assert_true(off > 3 * TP_READER_CAP);
	*len = off;
	return stream;
}

/* tp_reader_feed with as much as fits, then every whole frame. */
static void test_pipeline_feed(void **state)
{
	tp_msg *msgs = malloc(PIPELINE_FRAMES * sizeof *msgs);
	tp_msg got;
	size_t len, off = 0, taken, done = 0, feeds = 0;
	uint8_t *stream;
	tp_reader *r = reader_new();
	int rc;

	(void)state;
	assert_non_null(msgs);
	rng_state = GARBAGE_SEED_DEFAULT + 1;
	stream = make_stream(msgs, &len);
	while (off < len) {
		taken = tp_reader_feed(r, stream + off, len - off);
		assert_true(taken > 0);
		off += taken;
		feeds++;
		while ((rc = tp_reader_next(r, &got)) == 1)
			assert_msg_equal(&msgs[done++], &got);
		assert_int_equal(rc, 0);
	}
	assert_int_equal(done, PIPELINE_FRAMES);
	assert_int_equal(r->start, r->end);
	/* One feed per (nearly) full buffer, not one per frame. */
	assert_true(feeds < 2 * (len / TP_READER_CAP + 1));
	free(stream);
	free(msgs);
	free(r);
}

/*
 * tp_reader_space/commit in chunks of random sizes, taking a random number
 * of frames between reads; whenever every whole frame has been taken, the
 * room must be there (and, by the compaction policy, at least half a buffer).
 */
static void test_pipeline_zero_copy(void **state)
{
	tp_msg *msgs = malloc(PIPELINE_FRAMES * sizeof *msgs);
	tp_msg got;
	size_t len, off = 0, room, chunk, done = 0, take, t;
	uint8_t *stream, *dst;
	tp_reader *r = reader_new();
	int round, rc;

	(void)state;
	assert_non_null(msgs);
	for (round = 0; round < 20; round++) {
		rng_state = GARBAGE_SEED_DEFAULT + 2 + (uint64_t)round;
		stream = make_stream(msgs, &len);
		tp_reader_init(r);
		off = 0;
		done = 0;
		while (off < len || done < PIPELINE_FRAMES) {
			dst = tp_reader_space(r, &room);
			assert_true(r->start <= r->end && r->end <= TP_READER_CAP);
			if (room == 0) {
				/* Only while whole frames are waiting. */
				assert_int_equal(tp_reader_next(r, &got), 1);
				assert_msg_equal(&msgs[done++], &got);
				continue;
			}
			chunk = 1 + rng_below(round % 2 ? TP_MAX_FRAME : room);
			if (chunk > room)
				chunk = room;
			if (chunk > len - off)
				chunk = len - off;
			memcpy(dst, stream + off, chunk);
			tp_reader_commit(r, chunk);
			off += chunk;
			/* Sometimes all, sometimes a few, sometimes none. */
			take = rng_below(3) == 0 ? SIZE_MAX : rng_below(4);
			for (t = 0; t < take; t++) {
				rc = tp_reader_next(r, &got);
				assert_true(rc >= 0);
				if (rc == 0) {
					dst = tp_reader_space(r, &room);
					assert_true(room >= TP_READER_CAP / 2);
					break;
				}
				assert_msg_equal(&msgs[done++], &got);
			}
		}
		assert_int_equal(done, PIPELINE_FRAMES);
		assert_int_equal(tp_reader_next(r, &got), 0);
		free(stream);
	}
	free(msgs);
	free(r);
}

/*
 * The worst place for a frame to end: whole frames fill the buffer up to a
 * partial frame that reaches its very end. Once those are taken, the room
 * must not be 0. Fillers of 11 and 13 bytes (HELLO_OK, STATUS_REQ) reach
 * any offset above 119 exactly.
 */
static void test_space_at_buffer_end(void **state)
{
	tp_msg big, small, mid, got;
	uint8_t frame[TP_MAX_FRAME], f11[SZ_HELLO_OK], f13[SZ_STATUS_REQ];
	size_t n, room, part, fill, a, b, k;
	tp_reader *r = reader_new();

	(void)state;
	set_text(&big, TP_ERR_INTERNAL, TP_MAX_ERRMSG);
	n = tp_encode(&big, frame, sizeof frame);
	memset(&small, 0, sizeof small);
	small.type = TP_HELLO_OK;
	assert_int_equal(tp_encode(&small, f11, sizeof f11), sizeof f11);
	memset(&mid, 0, sizeof mid);
	mid.type = TP_STATUS_REQ;
	assert_int_equal(tp_encode(&mid, f13, sizeof f13), sizeof f13);

	for (part = 1; part < n; part++) {
		fill = TP_READER_CAP - part;
		for (b = 0; (fill - b * sizeof f13) % sizeof f11 != 0; b++)
			;
		a = (fill - b * sizeof f13) / sizeof f11;
		tp_reader_init(r);
		for (k = 0; k < a; k++)
			assert_int_equal(tp_reader_feed(r, f11, sizeof f11), sizeof f11);
		for (k = 0; k < b; k++)
			assert_int_equal(tp_reader_feed(r, f13, sizeof f13), sizeof f13);
		assert_int_equal(tp_reader_feed(r, frame, n), part);
		assert_int_equal(r->end, TP_READER_CAP);
		(void)tp_reader_space(r, &room);
		assert_int_equal(room, 0); /* whole frames are waiting */
		for (k = 0; k < a + b; k++) {
			assert_int_equal(tp_reader_next(r, &got), 1);
			assert_msg_equal(k < a ? &small : &mid, &got);
		}
		assert_int_equal(tp_reader_next(r, &got), 0);
		(void)tp_reader_space(r, &room);
		assert_true(room > 0);
		assert_int_equal(tp_reader_feed(r, frame + part, n - part), n - part);
		assert_int_equal(tp_reader_next(r, &got), 1);
		assert_msg_equal(&big, &got);
		assert_int_equal(tp_reader_next(r, &got), 0);
	}
	free(r);
}

static void test_commit_overflow(void **state)
{
	tp_reader *r = reader_new();
	tp_msg got;
	size_t room;

	(void)state;
	(void)tp_reader_space(r, &room);
	assert_int_equal(room, TP_READER_CAP);
	tp_reader_commit(r, room + 1);
	assert_int_equal(tp_reader_next(r, &got), -1);
	assert_int_equal(r->err, TP_RERR_OVERFLOW);
	assert_int_equal(tp_reader_next(r, &got), -1);

	tp_reader_init(r);
	(void)tp_reader_space(r, &room);
	tp_reader_commit(r, 10);
	tp_reader_commit(r, room - 10); /* exactly full: fine */
	assert_int_equal(r->err, TP_RERR_NONE);
	tp_reader_commit(r, 1);
	assert_int_equal(r->err, TP_RERR_OVERFLOW);

	/* Empty input is no input. */
	tp_reader_init(r);
	assert_int_equal(tp_reader_feed(r, NULL, 0), 0);
	tp_reader_commit(r, 0);
	assert_int_equal(tp_reader_next(r, &got), 0);

	tp_reader_init(r);
	tp_reader_commit(r, SIZE_MAX);
	assert_int_equal(r->err, TP_RERR_OVERFLOW);
	assert_int_equal(tp_reader_next(r, &got), -1);
	assert_string_equal(tp_reader_errstr(r), "reader buffer overflow");
	free(r);
}

/* ---- malformed input --------------------------------------------------------- */

/* One malformed input: bytes, the error, and how many bytes reveal it. */
typedef struct bad_case {
	const char *what;
	uint8_t bytes[TP_MAX_FRAME + 8];
	size_t len;
	size_t detect; /* next() says -1 once this many bytes are in */
	int err;
} bad_case;

static void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* A header only, of body length body_len. */
static void bad_header(bad_case *c, const char *what, uint32_t body_len)
{
	memset(c, 0, sizeof *c);
	c->what = what;
	bytes_put_u32(c->bytes, body_len);
	c->len = HDR;
	c->detect = HDR;
	c->err = TP_RERR_BAD_LENGTH;
}

/* A frame of the given type and body length, payload zeroed. */
static void bad_frame(bad_case *c, const char *what, uint8_t type, uint32_t body_len, int err)
{
	memset(c, 0, sizeof *c);
	c->what = what;
	bytes_put_u32(c->bytes, body_len);
	c->bytes[OFF_TYPE] = type;
	c->len = HDR + body_len;
	c->detect = HDR + 1;
	c->err = err;
}

/* A valid frame of m, to be corrupted by the caller; detected when whole. */
static void bad_from(bad_case *c, const char *what, const tp_msg *m, int err)
{
	memset(c, 0, sizeof *c);
	c->what = what;
	c->len = tp_encode(m, c->bytes, sizeof c->bytes);
	assert_true(c->len > 0);
	c->detect = c->len;
	c->err = err;
}

#define MAX_BAD 64

static size_t make_bad_cases(bad_case *c)
{
	static const uint8_t types[] = {TP_HELLO,      TP_HELLO_OK,    TP_TS_REQ,       TP_TS_RESP,
					TP_STATUS_REQ, TP_STATUS_RESP, TP_TRANSFER_REQ, TP_TRANSFER_RESP};
	static const uint8_t unknown[] = {0, TP_TYPE_LAST + 1, 0x80, 0xff};
	tp_msg m;
	size_t n = 0, i, right;

	bad_header(&c[n++], "body length 0", 0);
	bad_header(&c[n++], "body length TP_MAX_BODY + 1", TP_MAX_BODY + 1);
	bad_header(&c[n++], "body length 2^31", UINT32_C(1) << 31);
	bad_header(&c[n++], "body length 2^32 - 1", UINT32_MAX);

	for (i = 0; i < sizeof types; i++) {
		memset(&m, 0, sizeof m);
		m.type = types[i];
		right = frame_size(&m) - HDR;
		bad_frame(&c[n++], "body one byte short", types[i], (uint32_t)right - 1, TP_RERR_BAD_LENGTH);
		bad_frame(&c[n++], "body one byte long", types[i], (uint32_t)right + 1, TP_RERR_BAD_LENGTH);
	}
	bad_frame(&c[n++], "error shorter than status and len", TP_ERROR, 4, TP_RERR_BAD_LENGTH);
	bad_frame(&c[n++], "error body above TP_MAX_ERRMSG", TP_ERROR, 1 + 4 + TP_MAX_ERRMSG + 1,
		  TP_RERR_BAD_LENGTH);
	bad_frame(&c[n++], "type alone", TP_HELLO, 1, TP_RERR_BAD_LENGTH);
	for (i = 0; i < sizeof unknown; i++)
		bad_frame(&c[n++], "unknown type", unknown[i], 9, TP_RERR_BAD_TYPE);
	bad_frame(&c[n++], "unknown type, length 1", 0, 1, TP_RERR_BAD_TYPE);

	memset(&m, 0, sizeof m);
	m.type = TP_TS_RESP;
	bad_from(&c[n], "ts_resp status LAST + 1", &m, TP_RERR_BAD_VALUE);
	put_be16(c[n++].bytes + OFF_TS_RESP_STATUS, TP_STATUS_LAST + 1);
	bad_from(&c[n], "ts_resp status 0xffff", &m, TP_RERR_BAD_VALUE);
	put_be16(c[n++].bytes + OFF_TS_RESP_STATUS, UINT16_MAX);

	memset(&m, 0, sizeof m);
	m.type = TP_STATUS_RESP;
	bad_from(&c[n], "status_resp status LAST + 1", &m, TP_RERR_BAD_VALUE);
	put_be16(c[n++].bytes + OFF_STATUS_RESP_STATUS, TP_STATUS_LAST + 1);
	bad_from(&c[n], "role LAST + 1", &m, TP_RERR_BAD_VALUE);
	c[n++].bytes[OFF_STATUS_RESP_ROLE] = TP_ROLE_LAST + 1;
	bad_from(&c[n], "role 0xff", &m, TP_RERR_BAD_VALUE);
	c[n++].bytes[OFF_STATUS_RESP_ROLE] = 0xff;

	memset(&m, 0, sizeof m);
	m.type = TP_TRANSFER_RESP;
	bad_from(&c[n], "transfer_resp status LAST + 1", &m, TP_RERR_BAD_VALUE);
	put_be16(c[n++].bytes + OFF_TRANSFER_RESP_STATUS, TP_STATUS_LAST + 1);
	bad_from(&c[n], "transfer_resp status 0xffff", &m, TP_RERR_BAD_VALUE);
	put_be16(c[n++].bytes + OFF_TRANSFER_RESP_STATUS, UINT16_MAX);

	set_text(&m, TP_ERR_PROTOCOL, 4);
	bad_from(&c[n], "error status LAST + 1", &m, TP_RERR_BAD_VALUE);
	put_be16(c[n++].bytes + OFF_ERROR_STATUS, TP_STATUS_LAST + 1);
	bad_from(&c[n], "error len short of the body", &m, TP_RERR_BAD_LENGTH);
	put_be16(c[n++].bytes + OFF_ERROR_LEN, 3);
	bad_from(&c[n], "error len past the body", &m, TP_RERR_BAD_LENGTH);
	put_be16(c[n++].bytes + OFF_ERROR_LEN, 5);
	bad_from(&c[n], "error len 0xffff", &m, TP_RERR_BAD_LENGTH);
	put_be16(c[n++].bytes + OFF_ERROR_LEN, UINT16_MAX);
	bad_from(&c[n], "error text with a NUL", &m, TP_RERR_BAD_VALUE);
	c[n++].bytes[OFF_ERROR_TEXT + 2] = 0;
	set_text(&m, TP_ERR_PROTOCOL, TP_MAX_ERRMSG);
	bad_from(&c[n], "error len TP_MAX_ERRMSG + 1", &m, TP_RERR_BAD_LENGTH);
	put_be16(c[n++].bytes + OFF_ERROR_LEN, TP_MAX_ERRMSG + 1);

	assert_true(n <= MAX_BAD);
	return n;
}

/* After an error: -1 again, input swallowed, and full room offered. */
static void assert_sticky(tp_reader *r, int err)
{
	static const uint8_t valid[] = {0, 0, 0, 9, TP_STATUS_REQ, 0, 0, 0, 0, 0, 0, 0, 1};
	tp_msg got;
	size_t room;

	assert_int_equal(tp_reader_next(r, &got), -1);
	assert_int_equal(tp_reader_feed(r, valid, sizeof valid), sizeof valid);
	assert_int_equal(tp_reader_next(r, &got), -1);
	(void)tp_reader_space(r, &room);
	assert_int_equal(room, TP_READER_CAP);
	tp_reader_commit(r, sizeof valid);
	assert_int_equal(tp_reader_next(r, &got), -1);
	assert_int_equal(r->err, err);
}

static void test_malformed(void **state)
{
	bad_case *c = malloc(MAX_BAD * sizeof *c);
	size_t nc, i, k;
	uint8_t *in;
	tp_msg got, ok;
	uint8_t okframe[TP_MAX_FRAME];
	size_t okn;
	tp_reader *r = reader_new();

	(void)state;
	assert_non_null(c);
	nc = make_bad_cases(c);
	memset(&ok, 0, sizeof ok);
	ok.type = TP_TS_REQ;
	ok.u.ts_req.id = 99;
	ok.u.ts_req.count = 1;
	okn = tp_encode(&ok, okframe, sizeof okframe);

	for (i = 0; i < nc; i++) {
		in = malloc(c[i].len);
		assert_non_null(in);
		memcpy(in, c[i].bytes, c[i].len);

		/* All at once. */
		tp_reader_init(r);
		assert_int_equal(tp_reader_feed(r, in, c[i].len), c[i].len);
		if (tp_reader_next(r, &got) != -1)
			fail_msg("case %zu (%s): not refused", i, c[i].what);
		if (r->err != c[i].err)
			fail_msg("case %zu (%s): err %d, want %d", i, c[i].what, r->err, c[i].err);
		assert_sticky(r, c[i].err);

		/* A byte at a time: refused exactly when the evidence is in. */
		tp_reader_init(r);
		for (k = 1; k <= c[i].len; k++) {
			assert_int_equal(tp_reader_feed(r, in + k - 1, 1), 1);
			if (k < c[i].detect)
				assert_int_equal(tp_reader_next(r, &got), 0);
			else if (k == c[i].detect)
				break;
		}
		if (tp_reader_next(r, &got) != -1)
			fail_msg("case %zu (%s): not refused after %zu bytes", i, c[i].what, c[i].detect);
		assert_int_equal(r->err, c[i].err);
		assert_sticky(r, c[i].err);

		/* After a good frame: the good one is delivered first. */
		tp_reader_init(r);
		assert_int_equal(tp_reader_feed(r, okframe, okn), okn);
		assert_int_equal(tp_reader_feed(r, in, c[i].len), c[i].len);
		assert_int_equal(tp_reader_next(r, &got), 1);
		assert_msg_equal(&ok, &got);
		assert_int_equal(tp_reader_next(r, &got), -1);
		assert_sticky(r, c[i].err);
		free(in);
	}
	free(c);
	free(r);
}

/* ---- garbage: random bytes and mutated frames never crash ------------------- */

/* Mutates buf (of *len bytes, room cap) in one random way. */
static void mutate(uint8_t *buf, size_t *len, size_t cap)
{
	static const uint8_t interesting[] = {0,
					      1,
					      TP_ERROR,
					      TP_TYPE_LAST,
					      TP_TYPE_LAST + 1,
					      TP_STATUS_LAST,
					      TP_STATUS_LAST + 1,
					      TP_ROLE_LAST + 1,
					      0x7f,
					      0x80,
					      0xff};
	size_t i, k;

	if (*len == 0)
		return;
	i = rng_below(*len);
	switch (rng_below(7)) {
	case 0: /* flip a bit */
		buf[i] ^= (uint8_t)(1u << rng_below(8));
		break;
	case 1: /* a random byte */
		buf[i] = (uint8_t)rng_next();
		break;
	case 2: /* a boundary byte */
		buf[i] = interesting[rng_below(sizeof interesting)];
		break;
	case 3: /* truncate */
		*len = i;
		break;
	case 4: /* append random bytes */
		k = rng_below(cap - *len + 1);
		while (k-- > 0)
			buf[(*len)++] = (uint8_t)rng_next();
		break;
	case 5: /* a random body length in the first header */
		if (*len >= HDR)
			bytes_put_u32(buf, (uint32_t)rng_below(TP_MAX_BODY + 2));
		break;
	default: /* a random u16 somewhere (status, len fields) */
		if (i + 1 < *len)
			put_be16(buf + i, (uint16_t)rng_below(TP_MAX_ERRMSG + 2));
		break;
	}
}

/*
 * Feeds in[0, len) in random chunks through both input paths and takes
 * every message; each must re-encode to exactly the bytes it came from.
 * Returns 1 on a reader error, else 0; counts the messages in *parsed.
 */
static int feed_and_check(tp_reader *r, const uint8_t *in, size_t len, unsigned long *parsed)
{
	uint8_t out[TP_MAX_FRAME];
	tp_msg got, again;
	size_t off = 0, chunk, room, before, n;
	uint8_t *dst;
	int rc;

	tp_reader_init(r);
	while (off < len) {
		chunk = 1 + rng_below(len - off);
		if (rng_below(2)) {
			dst = tp_reader_space(r, &room);
			if (chunk > room)
				chunk = room;
			memcpy(dst, in + off, chunk);
			tp_reader_commit(r, chunk);
		} else {
			chunk = tp_reader_feed(r, in + off, chunk);
		}
		off += chunk;
		for (;;) {
			before = r->start;
			rc = tp_reader_next(r, &got);
			assert_true(r->start <= r->end && r->end <= TP_READER_CAP);
			if (rc == 0)
				break;
			if (rc < 0) {
				assert_true(r->err > TP_RERR_NONE && r->err <= TP_RERR_OVERFLOW);
				assert_int_equal(tp_reader_next(r, &again), -1);
				return 1;
			}
			(*parsed)++;
			n = tp_encode(&got, out, sizeof out);
			if (got.type == TP_STATUS_RESP && r->start - before == SZ_STATUS_RESP_V1) {
				/* An older member's status: re-encoded in the current,
				 * longer form, the same up to its end. */
				assert_int_equal(n, SZ_STATUS_RESP);
				assert_memory_equal(out + HDR, r->buf + before + HDR,
						    SZ_STATUS_RESP_V1 - HDR);
				continue;
			}
			assert_int_equal(n, r->start - before);
			assert_memory_equal(out, r->buf + before, n);
		}
	}
	/* What is left is part of one frame, never a whole one. */
	assert_true(r->end - r->start < TP_MAX_FRAME);
	return 0;
}

static void test_garbage(void **state)
{
	const char *env_iters = getenv("TP_TEST_ITERS");
	const char *env_seed = getenv("TP_TEST_SEED");
	unsigned long iters = env_iters ? strtoul(env_iters, NULL, 10) : GARBAGE_ITERS_DEFAULT;
	uint64_t seed = env_seed ? strtoull(env_seed, NULL, 0) : GARBAGE_SEED_DEFAULT;
	uint8_t tmp[GARBAGE_MAX_LEN];
	uint8_t *in;
	size_t len, k, n;
	unsigned long it, errors = 0, frames = 0, parsed = 0;
	tp_msg m;
	tp_reader *r = reader_new();

	(void)state;
	print_message("garbage: seed 0x%016llx, %lu iterations "
		      "(TP_TEST_SEED, TP_TEST_ITERS)\n",
		      (unsigned long long)seed, iters);
	rng_state = seed;
	for (it = 0; it < iters; it++) {
		len = 0;
		if (rng_below(3) == 0) {
			/* Pure noise, mostly too short or too long to parse. */
			len = rng_below(GARBAGE_MAX_LEN + 1);
			for (k = 0; k < len; k++)
				tmp[k] = (uint8_t)rng_next();
		} else {
			/* One to three valid frames, then a few mutations. */
			for (k = 1 + rng_below(3); k > 0; k--) {
				random_msg(&m);
				n = tp_encode(&m, tmp + len, sizeof tmp - len);
				if (n == 0)
					break;
				len += n;
				frames++;
			}
			for (k = rng_below(4); k > 0; k--)
				mutate(tmp, &len, sizeof tmp);
		}
		in = malloc(len + 1);
		assert_non_null(in);
		memcpy(in, tmp, len);
		errors += (unsigned long)feed_and_check(r, in, len, &parsed);
		free(in);
	}
	print_message("garbage: %lu inputs, %lu refused; %lu frames made, "
		      "%lu messages parsed and re-encoded\n",
		      iters, errors, frames, parsed);
	free(r);
}

/* ---- texts ------------------------------------------------------------------ */

static void test_strings(void **state)
{
	tp_reader r;
	int e;
	unsigned s;

	(void)state;
	assert_string_equal(tp_status_str(TP_OK), "ok");
	assert_string_equal(tp_status_str(TP_ERR_UNAVAILABLE), "no leader or no quorum");
	assert_string_equal(tp_status_str(TP_ERR_TIMEOUT), "timed out waiting for a durable grant");
	assert_string_equal(tp_status_str(TP_ERR_NOT_LEADER), "not the leader");
	assert_string_equal(tp_status_str(TP_ERR_TRANSFER), "leadership transfer did not complete");
	for (s = 0; s <= TP_STATUS_LAST; s++)
		assert_string_not_equal(tp_status_str((uint16_t)s), "unknown status");
	assert_string_equal(tp_status_str(TP_STATUS_LAST + 1), "unknown status");
	assert_string_equal(tp_status_str(UINT16_MAX), "unknown status");

	assert_string_equal(tp_role_str(TP_ROLE_UNAVAILABLE), "unavailable");
	assert_string_equal(tp_role_str(TP_ROLE_FOLLOWER), "follower");
	assert_string_equal(tp_role_str(TP_ROLE_CANDIDATE), "candidate");
	assert_string_equal(tp_role_str(TP_ROLE_LEADER), "leader");
	assert_string_equal(tp_role_str(TP_ROLE_LAST + 1), "unknown");
	assert_string_equal(tp_role_str(UINT8_MAX), "unknown");

	tp_reader_init(&r);
	assert_string_equal(tp_reader_errstr(&r), "no error");
	for (e = TP_RERR_BAD_LENGTH; e <= TP_RERR_OVERFLOW; e++) {
		r.err = e;
		assert_string_not_equal(tp_reader_errstr(&r), "unknown reader error");
	}
	r.err = TP_RERR_OVERFLOW + 1;
	assert_string_equal(tp_reader_errstr(&r), "unknown reader error");
}

/* A status from a member of a build before the clock fields (seven u64)
 * is read, those fields 0: a newer client keeps working with it during a
 * rolling upgrade. A length between the two forms is still malformed. */
static void test_status_v1(void **state)
{
	tp_msg m, got;
	uint8_t frame[TP_MAX_FRAME];
	size_t n;
	tp_reader *r = reader_new();

	(void)state;
	memset(&m, 0, sizeof m);
	m.type = TP_STATUS_RESP;
	m.u.status_resp.id = 42;
	m.u.status_resp.st.node_id = 3;
	m.u.status_resp.st.role = TP_ROLE_LEADER;
	m.u.status_resp.st.timestamps = 99;
	m.u.status_resp.st.clock_offset_ms = -5;
	m.u.status_resp.st.clock_ahead_ms = 7;
	n = tp_encode(&m, frame, sizeof frame);
	assert_int_equal(n, SZ_STATUS_RESP);
	/* The older form: the same bytes without the last two u64. */
	bytes_put_u32(frame, (uint32_t)(SZ_STATUS_RESP_V1 - HDR));
	assert_int_equal(tp_reader_feed(r, frame, SZ_STATUS_RESP_V1), SZ_STATUS_RESP_V1);
	assert_int_equal(tp_reader_next(r, &got), 1);
	assert_int_equal(got.u.status_resp.id, 42);
	assert_int_equal(got.u.status_resp.st.node_id, 3);
	assert_int_equal(got.u.status_resp.st.timestamps, 99);
	assert_int_equal(got.u.status_resp.st.clock_offset_ms, 0);
	assert_int_equal(got.u.status_resp.st.clock_ahead_ms, 0);

	tp_reader_init(r);
	bytes_put_u32(frame, (uint32_t)(SZ_STATUS_RESP_V1 - HDR + 8));
	assert_int_equal(tp_reader_feed(r, frame, SZ_STATUS_RESP_V1 + 8), SZ_STATUS_RESP_V1 + 8);
	assert_int_equal(tp_reader_next(r, &got), -1);
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_encode_golden),
	    cmocka_unit_test(test_encode_small_caps),
	    cmocka_unit_test(test_encode_bad),
	    cmocka_unit_test(test_roundtrip),
	    cmocka_unit_test(test_random_roundtrip),
	    cmocka_unit_test(test_byte_at_a_time),
	    cmocka_unit_test(test_every_split),
	    cmocka_unit_test(test_pipeline_feed),
	    cmocka_unit_test(test_pipeline_zero_copy),
	    cmocka_unit_test(test_space_at_buffer_end),
	    cmocka_unit_test(test_commit_overflow),
	    cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_garbage),
	    cmocka_unit_test(test_status_v1),
	    cmocka_unit_test(test_strings),
	};

	return cmocka_run_group_tests_name("proto", tests, NULL, NULL);
}
