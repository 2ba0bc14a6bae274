/* tlsio.c: a TLS session feeding the frame reader (see tlsio.h). */
#include "tlsio.h"

int tlsio_feed(tls_conn *t, const void *data, size_t len, bool *done_now)
{
	bool was = t->established;
	int rc = tls_conn_feed(t, data, len);

	*done_now = false;
	if (rc != TLS_OK)
		return rc;
	rc = tls_conn_handshake(t);
	*done_now = rc == TLS_OK && !was;
	return rc;
}

long tlsio_pull(tls_conn *t, tp_reader *r)
{
	long moved = 0;

	if (!t->established)
		return 0;
	for (;;) {
		size_t room, n = 0;
		uint8_t *p = tp_reader_space(r, &room);
		int rc;

		if (room == 0)
			return moved;
		rc = tls_conn_read(t, p, room, &n);
		if (rc == TLS_AGAIN)
			return moved;
		if (rc == TLS_CLOSED) {
			t->err[0] = '\0';
			return -1;
		}
		if (rc != TLS_OK)
			return -1;
		tp_reader_commit(r, n);
		moved += (long)n;
	}
}

uint8_t *tlsio_read_space(const tls_conn *t, tp_reader *r, uint8_t *cipher, size_t cipher_len, size_t *len)
{
	if (t != NULL) {
		*len = cipher_len;
		return cipher;
	}
	return tp_reader_space(r, len);
}
