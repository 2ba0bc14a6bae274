/* fuzz_tls_framing.c: libFuzzer target for the framing that follows the TLS layer (common/tlsio.c). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "proto.h"
#include "tls.h"
#include "tlsio.h"

/*
 * What sidecar/server.c runs on a client's decrypted bytes, and what the
 * forwarder (sidecar/forward.c) and the PostgreSQL worker
 * (src/worker_conn.c) run on the replies: ciphertext fed to a session
 * (tlsio_feed), plaintext moved into a frame reader no faster than it has
 * room (tlsio_pull), whole frames taken (tp_reader_next), repeated until
 * nothing is left. One property, on every input: the frames (and the
 * error, if any) that come out are exactly those a reader fed the same
 * plaintext directly gives, however the plaintext is cut into TLS records
 * and however the ciphertext is cut into reads, through a stream much
 * larger than the reader (so its backpressure runs).
 *
 * The input: [mode byte] then [control byte][chunk]... replayed as the mode
 * byte says. Each chunk is plaintext the sender writes; a control byte's
 * low bits give its length, one flag keeps it in the same TLS record as the
 * next chunk, another delivers the ciphertext so far to the receiver in
 * reads of the size the mode byte picks. The mode byte also picks the
 * direction: client to server (the server's decoder) or back (the
 * worker's and forwarder's).
 *
 * One pair of real TLS 1.3 sessions (common/tls.c, certificates from
 * scripts/certs.sh) carries every input; each input's bytes are all
 * delivered and drained before the next, so the sessions stay in step.
 */

#define FUZZ_REPLAY_LOG2_MASK 0x03 /* mode: log2 of the replays (1..8) */
#define FUZZ_SERVER_SENDS     0x04 /* mode: the server sends (replies) */
#define FUZZ_READ_SHIFT       4    /* mode: the read size's index, top bits */
#define FUZZ_CHUNK_MASK       0x3f /* control: chunk length - 1 (1..64 bytes) */
#define FUZZ_SAME_RECORD_BIT  0x40 /* control: keep in the record of the next chunk */
#define FUZZ_DELIVER_BIT      0x80 /* control: deliver the ciphertext so far */
#define FUZZ_MAX_STREAM       (2 * TP_READER_CAP + TP_MAX_FRAME) /* plaintext bytes per input at most */
#define FUZZ_RECORD_MAX       16384                              /* a TLS record's plaintext, at most */
#define FUZZ_CIPHER_MAX       (2 * FUZZ_MAX_STREAM + 65536)      /* ciphertext of one input, at most */
#define FUZZ_PATH_MAX         512
/* Reads per delivery at most (a larger read size past it): one-byte reads
 * of a whole stream would spend the run in the feeding loop. */
#define FUZZ_MAX_READS        64

/* Bytes of ciphertext per read the receiver gets (a socket's reads). */
static const size_t fuzz_read_sizes[16] = {1,    2,    3,    5,    13,   64,    100,   512,
					   1000, 1500, 4096, 5000, 8192, 16384, 16413, 65536};

typedef struct fuzz_stream {
	uint8_t *bytes;
	size_t len;
	int err; /* the reader's error at the end, TP_RERR_NONE if none */
	size_t frames;
} fuzz_stream;

static tls_conn fuzz_client, fuzz_server;
static tp_reader *fuzz_reader, *fuzz_ref;
static uint8_t *fuzz_plain, *fuzz_cipher, *fuzz_record;
static fuzz_stream fuzz_got, fuzz_want;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static SSL_CTX *fuzz_ctx(const char *dir, const char *name)
{
	char ca[FUZZ_PATH_MAX], cert[FUZZ_PATH_MAX], key[FUZZ_PATH_MAX], err[TLS_ERR_SIZE];
	tls_files f = {ca, cert, key, NULL, NULL};
	SSL_CTX *ctx;

	snprintf(ca, sizeof ca, "%s/ca.crt", dir);
	snprintf(cert, sizeof cert, "%s/%s.crt", dir, name);
	snprintf(key, sizeof key, "%s/%s.key", dir, name);
	ctx = tls_ctx_new(&f, err, sizeof err);
	if (ctx == NULL)
		fprintf(stderr, "fuzz_tls_framing: %s\n", err);
	FUZZ_CHECK(ctx != NULL);
	return ctx;
}

/* Moves what one side has to send to the other. */
static void fuzz_pump(tls_conn *from, tls_conn *to)
{
	uint8_t buf[4096];
	size_t n;

	while ((n = tls_conn_out_take(from, buf, sizeof buf)) > 0)
		FUZZ_CHECK(tls_conn_feed(to, buf, n) == TLS_OK);
}

/* Certificates (scripts/certs.sh, or $TSORACLE_CERTS_SH; run from the
 * repository root), and one established pair of sessions. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *script = getenv("TSORACLE_CERTS_SH");
	char dir[] = "/tmp/tsoracle-fuzz-tls-XXXXXX", cmd[2 * FUZZ_PATH_MAX];
	SSL_CTX *cctx, *sctx;
	int i;

	(void)argc;
	(void)argv;
	if (script == NULL)
		script = "scripts/certs.sh";
	FUZZ_CHECK(mkdtemp(dir) != NULL);
	snprintf(cmd, sizeof cmd, "%s %s 1 >/dev/null", script, dir);
	if (system(cmd) != 0) {
		fprintf(stderr, "fuzz_tls_framing: %s failed (run from the repository root)\n", cmd);
		abort();
	}
	cctx = fuzz_ctx(dir, "client");
	sctx = fuzz_ctx(dir, "node1");
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	FUZZ_CHECK(system(cmd) == 0);
	FUZZ_CHECK(tls_conn_init(&fuzz_client, cctx, false, cmd, sizeof cmd) == 0);
	FUZZ_CHECK(tls_conn_init(&fuzz_server, sctx, true, cmd, sizeof cmd) == 0);
	SSL_CTX_free(cctx); /* each session keeps its reference */
	SSL_CTX_free(sctx);
	for (i = 0; i < 10 && !(fuzz_client.established && fuzz_server.established); i++) {
		FUZZ_CHECK(tls_conn_handshake(&fuzz_client) != TLS_ERROR);
		fuzz_pump(&fuzz_client, &fuzz_server);
		FUZZ_CHECK(tls_conn_handshake(&fuzz_server) != TLS_ERROR);
		fuzz_pump(&fuzz_server, &fuzz_client);
	}
	FUZZ_CHECK(fuzz_client.established && fuzz_server.established);

	fuzz_reader = malloc(sizeof *fuzz_reader);
	fuzz_ref = malloc(sizeof *fuzz_ref);
	fuzz_plain = malloc(FUZZ_MAX_STREAM);
	fuzz_cipher = malloc(FUZZ_CIPHER_MAX);
	fuzz_record = malloc(FUZZ_RECORD_MAX);
	fuzz_got.bytes = malloc(FUZZ_MAX_STREAM);
	fuzz_want.bytes = malloc(FUZZ_MAX_STREAM);
	FUZZ_CHECK(fuzz_reader && fuzz_ref && fuzz_plain && fuzz_cipher && fuzz_record && fuzz_got.bytes &&
		   fuzz_want.bytes);
	return 0;
}

/* Takes every whole frame from r into s (each as re-encoded, which is the
 * frame itself: the encoding is canonical). false once r has failed. */
static bool fuzz_take(tp_reader *r, fuzz_stream *s)
{
	tp_msg m;
	int rc;

	if (s->err != TP_RERR_NONE)
		return false;
	while ((rc = tp_reader_next(r, &m)) == 1) {
		size_t n = tp_encode(&m, s->bytes + s->len, FUZZ_MAX_STREAM - s->len);

		FUZZ_CHECK(n > 0);
		s->len += n;
		s->frames++;
	}
	if (rc < 0) {
		s->err = r->err;
		FUZZ_CHECK(s->err != TP_RERR_NONE);
		return false;
	}
	return true;
}

/* The reference: the plaintext straight into a reader. */
static void fuzz_reference(const uint8_t *plain, size_t len)
{
	size_t at = 0;

	tp_reader_init(fuzz_ref);
	while (at < len) {
		at += tp_reader_feed(fuzz_ref, plain + at, len - at);
		if (!fuzz_take(fuzz_ref, &fuzz_want))
			return;
	}
}

/* The receiver's side: ciphertext in reads of read_size, each fed to the
 * session and pulled into the reader and parsed as the server does. */
static void fuzz_receive(tls_conn *to, const uint8_t *cipher, size_t len, size_t read_size)
{
	size_t at = 0;

	while (at < len) {
		size_t n = len - at < read_size ? len - at : read_size;
		bool done_now = false;
		long moved;

		FUZZ_CHECK(tlsio_feed(to, cipher + at, n, &done_now) == TLS_OK);
		FUZZ_CHECK(!done_now); /* established at start */
		at += n;
		if (fuzz_got.err != TP_RERR_NONE)
			continue; /* a failed connection is dropped: its bytes go nowhere */
		do {
			moved = tlsio_pull(to, fuzz_reader);
			FUZZ_CHECK(moved >= 0);
			if (!fuzz_take(fuzz_reader, &fuzz_got))
				break;
		} while (moved > 0);
	}
}

/* Delivers the sender's ciphertext so far. */
static void fuzz_deliver(tls_conn *from, tls_conn *to, size_t read_size)
{
	size_t len = 0, n;

	while ((n = tls_conn_out_take(from, fuzz_cipher + len, FUZZ_CIPHER_MAX - len)) > 0)
		len += n;
	FUZZ_CHECK(tls_conn_out_pending(from) == 0);
	if (len / FUZZ_MAX_READS + 1 > read_size)
		read_size = len / FUZZ_MAX_READS + 1;
	fuzz_receive(to, fuzz_cipher, len, read_size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	tls_conn *from, *to;
	size_t replays, read_size, plain_len = 0, record_len = 0, i;
	uint8_t drain[4096];

	if (size < 2)
		return 0;
	from = (data[0] & FUZZ_SERVER_SENDS) != 0 ? &fuzz_server : &fuzz_client;
	to = from == &fuzz_server ? &fuzz_client : &fuzz_server;
	read_size = fuzz_read_sizes[data[0] >> FUZZ_READ_SHIFT];
	replays = (size_t)1 << (data[0] & FUZZ_REPLAY_LOG2_MASK);
	tp_reader_init(fuzz_reader);
	fuzz_got.len = fuzz_want.len = 0;
	fuzz_got.err = fuzz_want.err = TP_RERR_NONE;
	fuzz_got.frames = fuzz_want.frames = 0;

	for (i = 0; i < replays && plain_len < FUZZ_MAX_STREAM; i++) {
		const uint8_t *p = data + 1;
		size_t left = size - 1;

		while (left > 0 && plain_len < FUZZ_MAX_STREAM) {
			uint8_t c = *p++;
			size_t chunk = (size_t)(c & FUZZ_CHUNK_MASK) + 1;

			left--;
			if (chunk > left)
				chunk = left;
			if (chunk > FUZZ_MAX_STREAM - plain_len)
				chunk = FUZZ_MAX_STREAM - plain_len;
			memcpy(fuzz_plain + plain_len, p, chunk);
			plain_len += chunk;
			/* One record per run of chunks, up to a record's limit. */
			if (record_len + chunk > FUZZ_RECORD_MAX) {
				FUZZ_CHECK(tls_conn_write(from, fuzz_record, record_len) == TLS_OK);
				record_len = 0;
			}
			memcpy(fuzz_record + record_len, p, chunk);
			record_len += chunk;
			p += chunk;
			left -= chunk;
			if ((c & FUZZ_SAME_RECORD_BIT) == 0 && record_len > 0) {
				FUZZ_CHECK(tls_conn_write(from, fuzz_record, record_len) == TLS_OK);
				record_len = 0;
			}
			if ((c & FUZZ_DELIVER_BIT) != 0)
				fuzz_deliver(from, to, read_size);
		}
	}
	if (record_len > 0)
		FUZZ_CHECK(tls_conn_write(from, fuzz_record, record_len) == TLS_OK);
	fuzz_deliver(from, to, read_size);

	/* Everything delivered: whatever the reader did not take (it failed)
	 * is drained, so the next input starts with both sessions empty. */
	for (;;) {
		size_t n = 0;
		int rc = tls_conn_read(to, drain, sizeof drain, &n);

		if (rc == TLS_AGAIN)
			break;
		FUZZ_CHECK(rc == TLS_OK && n > 0);
	}

	fuzz_reference(fuzz_plain, plain_len);
	FUZZ_CHECK(fuzz_got.err == fuzz_want.err);
	FUZZ_CHECK(fuzz_got.frames == fuzz_want.frames);
	FUZZ_CHECK(fuzz_got.len == fuzz_want.len);
	FUZZ_CHECK(memcmp(fuzz_got.bytes, fuzz_want.bytes, fuzz_got.len) == 0);
	/* Without an error, what is left is the same partial frame. */
	if (fuzz_got.err == TP_RERR_NONE)
		FUZZ_CHECK(fuzz_reader->end - fuzz_reader->start == fuzz_ref->end - fuzz_ref->start);
	return 0;
}
