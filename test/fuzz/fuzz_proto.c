/* fuzz_proto.c: libFuzzer target for the wire protocol codec (common/proto.c). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "proto.h"

/*
 * Two properties, checked on every input:
 *
 *   1. Reader: the input is [repeat byte] then a sequence of [control byte]
 *      [chunk], replayed into one reader as many times as the repeat byte
 *      says, so that a small input pushes many buffers' worth through it
 *      (and so compaction runs). A control byte gives the chunk's length,
 *      the input path (tp_reader_feed or tp_reader_space/commit), and
 *      whether to take every whole message after it or at most one. Every
 *      message parsed must re-encode to exactly the bytes it was parsed from
 *      (the encoding is canonical, so this is the round trip); the room may
 *      be 0 only while whole frames wait; errors must stay sticky.
 *   2. Encoder: the input's first bytes, taken as a raw tp_msg (any garbage
 *      in any field), either fail to encode or encode to a frame the reader
 *      parses back into the same bytes, and no smaller cap is accepted.
 *
 * Buffers are heap-allocated at their exact size so AddressSanitizer sees
 * any access outside them.
 */

/*
 * Repeat byte: log2 of the replays in its low bits (1..32768 replays), so a
 * frame or two of input fill the reader's buffer many times over; capped
 * at FUZZ_MAX_STREAM bytes in all to keep each run fast.
 */
#define FUZZ_REPLAY_LOG2_MASK 0x0f
#define FUZZ_MAX_STREAM       (4 * TP_READER_CAP)
/* Control byte: chunk length - 1 in the low bits (1..64), two flags on top. */
#define FUZZ_CHUNK_MASK       0x3f
#define FUZZ_LAZY_BIT         0x40 /* take at most one message after the chunk */
#define FUZZ_ZERO_COPY_BIT    0x80 /* tp_reader_space/commit, not tp_reader_feed */

static tp_reader *fuzz_reader;
static tp_reader *fuzz_reader2;
static tp_msg *fuzz_raw;

static void fuzz_setup(void)
{
	if (fuzz_reader != NULL)
		return;
	fuzz_reader = malloc(sizeof *fuzz_reader);
	fuzz_reader2 = malloc(sizeof *fuzz_reader2);
	fuzz_raw = malloc(sizeof *fuzz_raw);
	FUZZ_CHECK(fuzz_reader && fuzz_reader2 && fuzz_raw);
}

/* The fields today's status adds to an older member's (common/proto.c,
 * TP_STATUS_RESP_V1_SIZE): clock_offset_ms and clock_ahead_ms, u64 each. */
#define FUZZ_STATUS_V2_EXTRA (2 * sizeof(uint64_t))

/* The message m was parsed from frame[0, len): it must re-encode to it. */
static void fuzz_check_reencode(const tp_msg *m, const uint8_t *frame, size_t len)
{
	uint8_t out[TP_MAX_FRAME];
	size_t n = tp_encode(m, out, sizeof out);

	if (m->type == TP_STATUS_RESP && n == len + FUZZ_STATUS_V2_EXTRA) {
		/* An older member's status, read with the newer fields 0: it
		 * re-encodes in today's form, the same bytes after the length
		 * up to the old end, then those fields, zero. */
		FUZZ_CHECK(memcmp(out + TP_HEADER_SIZE, frame + TP_HEADER_SIZE, len - TP_HEADER_SIZE) == 0);
		for (size_t i = len; i < n; i++)
			FUZZ_CHECK(out[i] == 0);
		FUZZ_CHECK(m->u.status_resp.st.clock_offset_ms == 0 &&
			   m->u.status_resp.st.clock_ahead_ms == 0);
		return;
	}
	FUZZ_CHECK(n == len);
	FUZZ_CHECK(memcmp(out, frame, n) == 0);
	FUZZ_CHECK(tp_encode(m, out, n - 1) == 0);
}

/*
 * Takes every whole message, or at most one if lazy; returns 0, or -1 once
 * the reader has failed.
 */
static int fuzz_take(tp_reader *r, int lazy)
{
	tp_msg m;
	size_t before, room;
	int rc;

	for (;;) {
		before = r->start;
		rc = tp_reader_next(r, &m);
		FUZZ_CHECK(r->start <= r->end && r->end <= TP_READER_CAP);
		if (rc == 0)
			break;
		if (rc < 0) {
			FUZZ_CHECK(r->err > TP_RERR_NONE && r->err <= TP_RERR_OVERFLOW);
			FUZZ_CHECK(tp_reader_next(r, &m) == -1);
			FUZZ_CHECK(r->start == before);
			return -1;
		}
		FUZZ_CHECK(m.type >= TP_HELLO && m.type <= TP_TYPE_LAST);
		fuzz_check_reencode(&m, r->buf + before, r->start - before);
		if (lazy)
			return 0;
	}
	/* Only a partial frame is left, and there is room for the rest. */
	FUZZ_CHECK(r->end - r->start < TP_MAX_FRAME);
	(void)tp_reader_space(r, &room);
	FUZZ_CHECK(room > 0);
	return 0;
}

/* A failed reader swallows input, offers the whole buffer, and stays failed. */
static void fuzz_check_sticky(tp_reader *r, const uint8_t *data, size_t size)
{
	tp_msg m;
	size_t room;
	int err = r->err;

	FUZZ_CHECK(tp_reader_feed(r, data, size) == size);
	FUZZ_CHECK(tp_reader_next(r, &m) == -1);
	(void)tp_reader_space(r, &room);
	FUZZ_CHECK(room == TP_READER_CAP);
	tp_reader_commit(r, size < room ? size : room);
	FUZZ_CHECK(tp_reader_next(r, &m) == -1);
	FUZZ_CHECK(r->err == err);
}

/* One replay of the chunks; returns -1 once the reader has failed. */
static int fuzz_replay(tp_reader *r, const uint8_t *data, size_t size)
{
	size_t chunk, room;
	uint8_t *dst;
	uint8_t c;

	while (size > 0) {
		c = *data++;
		size--;
		chunk = (size_t)(c & FUZZ_CHUNK_MASK) + 1;
		if (chunk > size)
			chunk = size;
		if (c & FUZZ_ZERO_COPY_BIT) {
			dst = tp_reader_space(r, &room);
			if (room == 0) {
				/*
				 * Allowed only while whole frames wait: take them all,
				 * after which fuzz_take insists on room.
				 */
				if (fuzz_take(r, 0) < 0)
					break;
				dst = tp_reader_space(r, &room);
				FUZZ_CHECK(room > 0);
			}
			if (chunk > room)
				chunk = room;
			memcpy(dst, data, chunk);
			tp_reader_commit(r, chunk);
		} else {
			chunk = tp_reader_feed(r, data, chunk);
		}
		data += chunk;
		size -= chunk;
		if (fuzz_take(r, (c & FUZZ_LAZY_BIT) != 0) < 0)
			break;
	}
	if (r->err != TP_RERR_NONE) {
		fuzz_check_sticky(r, data, size);
		return -1;
	}
	return 0;
}

static void fuzz_reader_path(const uint8_t *data, size_t size)
{
	tp_reader *r = fuzz_reader;
	size_t replays, i;

	if (size == 0)
		return;
	replays = (size_t)1 << (data[0] & FUZZ_REPLAY_LOG2_MASK);
	if (replays > 1 && replays * (size - 1) > FUZZ_MAX_STREAM)
		replays = FUZZ_MAX_STREAM / (size - 1) + 1;
	tp_reader_init(r);
	for (i = 0; i < replays; i++)
		if (fuzz_replay(r, data + 1, size - 1) < 0)
			return;
	(void)fuzz_take(r, 0);
}

static void fuzz_encoder_path(const uint8_t *data, size_t size)
{
	uint8_t out[TP_MAX_FRAME];
	tp_msg *m = fuzz_raw;
	tp_msg got;
	size_t n;

	if (size < sizeof *m)
		return;
	memcpy(m, data, sizeof *m);
	n = tp_encode(m, out, sizeof out);
	if (n == 0)
		return;
	FUZZ_CHECK(n <= TP_MAX_FRAME && tp_encode(m, out, n - 1) == 0);
	tp_reader_init(fuzz_reader2);
	FUZZ_CHECK(tp_reader_feed(fuzz_reader2, out, n) == n);
	FUZZ_CHECK(tp_reader_next(fuzz_reader2, &got) == 1);
	FUZZ_CHECK(got.type == m->type);
	fuzz_check_reencode(&got, out, n);
	FUZZ_CHECK(tp_reader_next(fuzz_reader2, &got) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_setup();
	fuzz_reader_path(data, size);
	fuzz_encoder_path(data, size);
	return 0;
}
