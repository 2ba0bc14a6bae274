/* tlsio.h: a TLS session feeding the frame reader (the client port, forwarding, the PostgreSQL worker). */
#ifndef TSORACLE_TLSIO_H
#define TSORACLE_TLSIO_H

#include <stddef.h>

#include "proto.h"
#include "tls.h"

/*
 * The client port (sidecar/server.c), the follower's forwarding connection
 * (sidecar/forward.c) and the PostgreSQL worker (src/worker_conn.c) run the
 * client protocol inside TLS (common/tls.h): the read callback hands the
 * ciphertext it got to tlsio_feed, which completes the handshake when it
 * can; then tlsio_pull moves the plaintext into the frame reader. The
 * outgoing side is the owner's (the sidecar's outbuf, ob_set_tls). Plain
 * C over tls.h and proto.h, so the extension links it too.
 *
 * Backpressure: tlsio_pull moves no more than the reader has room for;
 * what stays decrypted-but-unread in the session is pulled when the owner
 * parses again, and the owner stops reading the socket meanwhile, so the
 * session buffers at most one read of ciphertext beyond the reader.
 */

/* Feeds len bytes of ciphertext and advances the handshake. TLS_OK once it
 * is complete (*done_now: it completed in this call: check the peer's
 * identity now), TLS_AGAIN while it needs more, TLS_ERROR (t->err). */
int tlsio_feed(tls_conn *t, const void *data, size_t len, bool *done_now);

/* Moves decrypted bytes into r while it has room. Returns the bytes moved
 * (0: none buffered), or -1 if the session failed or the peer closed it
 * (t->err says why, "" for a clean close). */
long tlsio_pull(tls_conn *t, tp_reader *r);

/* Where the owner's next socket read goes, *len its size: under TLS
 * (t != NULL) the owner's ciphertext buffer cipher (tlsio_feed takes all
 * of it before the read callback returns, so one buffer per loop serves
 * every connection), else the reader's free space, so that plaintext is
 * parsed where it lands. For libuv's alloc callbacks. */
uint8_t *tlsio_read_space(const tls_conn *t, tp_reader *r, uint8_t *cipher, size_t cipher_len, size_t *len);

#endif /* TSORACLE_TLSIO_H */
