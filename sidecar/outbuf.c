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

int ob_append(outbuf *ob, const tp_msg *m)
{
	size_t n;

	if (ob->out_cap - ob->out_len < TP_MAX_FRAME) {
		size_t cap = ob->out_cap ? ob->out_cap * 2 : OB_INITIAL_CAP;
		uint8_t *p;

		while (cap - ob->out_len < TP_MAX_FRAME)
			cap *= 2;
		p = realloc(ob->out, cap);
		if (p == NULL)
			return -1;
		ob->out = p;
		ob->out_cap = cap;
	}
	n = tp_encode(m, ob->out + ob->out_len, ob->out_cap - ob->out_len);
	if (n == 0)
		return -1;
	ob->out_len += n;
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
	ob->out = ob->wbuf = NULL;
	ob->out_len = ob->out_cap = ob->wbuf_cap = 0;
}
