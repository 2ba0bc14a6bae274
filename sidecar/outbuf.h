/* outbuf.h: a stream's outgoing frames: encoded into a kept buffer, written with one call per batch. */
#ifndef TSORACLE_OUTBUF_H
#define TSORACLE_OUTBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "proto.h"
#include "tls.h"

/*
 * Frames are appended to `out`; ob_flush hands all of them to the kernel
 * with uv_try_write (one system call in the common case) and, if the socket
 * takes only part, writes the rest with uv_write from a second buffer while
 * `out` keeps taking new frames. Both buffers are kept for the stream's
 * life: no allocation per message in steady state.
 */

struct outbuf;
/* Called when a uv_write finishes (status 0) or fails; the owner then may
 * flush again, or close the stream. */
typedef void (*ob_write_cb)(struct outbuf *ob, int status);

typedef struct outbuf {
	uint8_t *out; /* frames not yet handed to a write */
	size_t out_len, out_cap;
	uint8_t *wbuf; /* bytes of the write in flight */
	size_t wbuf_cap;
	size_t wlen; /* how many (while writing) */
	bool writing;
	uv_write_t wreq;
	ob_write_cb cb;
	void *data;     /* the owner's */
	tls_conn *tls;  /* NULL: plaintext stream */
	uint8_t *plain; /* TLS: frames not yet encrypted */
	size_t plain_len, plain_cap;
} outbuf;

void ob_init(outbuf *ob, ob_write_cb cb, void *data);

/* From now on frames are encrypted by t (owned by the caller, alive until
 * ob_free) and ob_flush also sends t's handshake bytes. */
void ob_set_tls(outbuf *ob, tls_conn *t);

/* Appends one message; -1 if out of memory or not encodable. */
int ob_append(outbuf *ob, const tp_msg *m);

/* Writes what is buffered; returns 0, or a libuv error (the stream is then
 * broken: close it; UV_EPROTO: the TLS session failed, t->err says why).
 * Does nothing while a write is in flight (the callback flushes again). */
int ob_flush(outbuf *ob, uv_stream_t *stream);

/* Bytes not yet taken by the kernel: buffered (under TLS, plaintext not
 * yet encrypted too), and in a write in flight. */
static inline size_t ob_unsent(const outbuf *ob)
{
	return ob->out_len + ob->plain_len + (ob->writing ? ob->wlen : 0);
}

/* Frees the buffers; only once the stream is closed. */
void ob_free(outbuf *ob);

#endif /* TSORACLE_OUTBUF_H */
