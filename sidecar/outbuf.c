/* outbuf.c: a stream's outgoing frames: encoded into a kept buffer, written with one call per batch. */
#include "outbuf.h"

#include <stdlib.h>
#include <string.h>

#define OB_INITIAL_CAP 4096 /* bytes; grows by doubling */

void ob_init(outbuf *ob, ob_write_cb cb, void *data)
{
	memset(ob, 0, sizeof *ob);
	ob->cb = cb;
	ob->data = data;
	ob->wreq.data = ob;
}

void ob_set_tls(outbuf *ob, tls_conn *t)
{
	ob->tls = t;
}

/* Room for need more bytes after len in *buf (capacity *cap); -1 if out
 * of memory. */
static int ob_reserve(uint8_t **buf, size_t len, size_t *cap, size_t need)
{
	size_t c = *cap ? *cap * 2 : OB_INITIAL_CAP;
	uint8_t *p;

	if (*cap - len >= need)
		return 0;
	while (c - len < need)
		c *= 2;
	p = realloc(*buf, c);
	if (p == NULL)
		return -1;
	*buf = p;
	*cap = c;
	return 0;
}

int ob_append(outbuf *ob, const tp_msg *m)
{
	uint8_t **buf = ob->tls != NULL ? &ob->plain : &ob->out;
	size_t *len = ob->tls != NULL ? &ob->plain_len : &ob->out_len;
	size_t *cap = ob->tls != NULL ? &ob->plain_cap : &ob->out_cap;
	size_t n;

	if (ob_reserve(buf, *len, cap, TP_MAX_FRAME) != 0)
		return -1;
	n = tp_encode(m, *buf + *len, *cap - *len);
	if (n == 0)
		return -1;
	*len += n;
	return 0;
}

/* TLS: encrypts the frames waiting in plain and moves every byte of
 * ciphertext the session has for the peer into out. 0, UV_ENOMEM or
 * UV_EPROTO. */
static int ob_encrypt(outbuf *ob)
{
	size_t n;

	if (ob->plain_len > 0 && ob->tls->established) {
		if (tls_conn_write(ob->tls, ob->plain, ob->plain_len) != TLS_OK)
			return UV_EPROTO;
		ob->plain_len = 0;
	}
	while ((n = tls_conn_out_pending(ob->tls)) > 0) {
		if (ob_reserve(&ob->out, ob->out_len, &ob->out_cap, n) != 0)
			return UV_ENOMEM;
		ob->out_len += tls_conn_out_take(ob->tls, ob->out + ob->out_len, n);
	}
	return 0;
}

static void ob_write_done(uv_write_t *req, int status)
{
	outbuf *ob = req->data;

	ob->writing = false;
	ob->cb(ob, status);
}

int ob_flush(outbuf *ob, uv_stream_t *stream)
{
	uv_buf_t buf;
	uint8_t *tmp;
	size_t tmp_cap;
	int n;

	/* out is free for new bytes even while wbuf is being written. */
	if (ob->tls != NULL && (n = ob_encrypt(ob)) != 0)
		return n;
	if (ob->writing || ob->out_len == 0)
		return 0;
	buf = uv_buf_init((char *)ob->out, (unsigned)ob->out_len);
	n = uv_try_write(stream, &buf, 1);
	if (n == UV_EAGAIN || n == UV_ENOSYS)
		n = 0;
	if (n < 0)
		return n;
	if ((size_t)n == ob->out_len) {
		ob->out_len = 0;
		return 0;
	}
	/* Partial: the unsent tail goes out through uv_write from the other
	 * buffer, so that out can take new frames meanwhile. */
	memmove(ob->out, ob->out + n, ob->out_len - (size_t)n);
	tmp = ob->wbuf;
	tmp_cap = ob->wbuf_cap;
	ob->wbuf = ob->out;
	ob->wbuf_cap = ob->out_cap;
	buf = uv_buf_init((char *)ob->wbuf, (unsigned)(ob->out_len - (size_t)n));
	ob->out = tmp;
	ob->out_cap = tmp_cap;
	ob->out_len = 0;
	ob->wlen = buf.len;
	ob->writing = true;
	n = uv_write(&ob->wreq, stream, &buf, 1, ob_write_done);
	if (n != 0)
		ob->writing = false;
	return n;
}

void ob_free(outbuf *ob)
{
	free(ob->out);
	free(ob->wbuf);
	free(ob->plain);
	ob->out = ob->wbuf = ob->plain = NULL;
	ob->out_len = ob->out_cap = ob->wbuf_cap = ob->plain_len = ob->plain_cap = 0;
	ob->tls = NULL;
}
