/* dial.h: a blocking client connection to a tsoracle address, for the command-line tools. */
#ifndef TSORACLE_DIAL_H
#define TSORACLE_DIAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/ssl.h>

#include "proto.h"

/*
 * The client side of the client protocol's opening (docs/architecture.md),
 * blocking, for tsoracle-ctl and tsoracle-bench: connect, TLS on a TCP
 * address when the tool has a TLS context, TP_HELLO, TP_HELLO_OK checked.
 * The extension's worker (src/worker_conn.c) and the daemon's forwarding
 * (sidecar/forward.c) open the same way without blocking, inside their
 * event loops, and check the same answer; every client's hello is
 * tp_hello_init's (common/proto.h).
 *
 * Every error message names the address as given and the cause, and one
 * that a TLS server may be behind (a plaintext client on a TCP address)
 * says which options the tools take for it (--ca, --cert, --key).
 */
typedef struct tp_client {
	const char *address; /* as given, not copied: every message names it */
	int fd;              /* blocking, close-on-exec; -1: not open */
	SSL *ssl;            /* TLS: a TCP address and a context; NULL: plaintext */
	bool tcp;            /* a TCP address (else a unix socket) */
	uint32_t node_id;    /* the server's, from its TP_HELLO_OK */
	tp_reader reader;    /* bytes read past a message wait here for the next */
} tp_client;

/*
 * Opens c to address: the connection, the TLS handshake (ctx not NULL and
 * address TCP; the server must show a member's certificate, common/tls.h),
 * the hello and its answer, all within timeout_ms. The answer must be
 * TP_HELLO_OK with this build's protocol version and, under TLS, the node
 * id that the certificate's CN=member-<id> names. 0, or -1 with the reason
 * in err and nothing left open (c->fd is -1).
 */
int tp_client_open(tp_client *c, const char *address, SSL_CTX *ctx, unsigned timeout_ms, char *err,
		   size_t errlen);

/* Sends m whole. 0, or -1 with the reason in err. */
int tp_client_send(tp_client *c, const tp_msg *m, char *err, size_t errlen);

/* Reads the next message into m by deadline_ms (mono_ms, common/monotime.h).
 * 0, or -1 with the reason in err (no answer in time, a malformed one, the
 * connection closed). */
int tp_client_recv(tp_client *c, tp_msg *m, uint64_t deadline_ms, char *err, size_t errlen);

/* Ends the TLS session (close_notify) and closes the socket; c may be
 * opened again. A closed c (fd -1) is left as it is. */
void tp_client_close(tp_client *c);

/* read(2) and write(2) through ssl when it is not NULL: the same results,
 * -1 with errno EAGAIN when the session needs the socket to be readable or
 * writable first, EPROTO when it failed. */
ssize_t tp_io_read(int fd, SSL *ssl, void *buf, size_t len);
ssize_t tp_io_write(int fd, SSL *ssl, const void *buf, size_t len);

/* Writes len bytes whole on a blocking socket (tp_io_write, again after
 * EINTR and EAGAIN). 0, or -1 with errno. */
int tp_io_write_all(int fd, SSL *ssl, const void *buf, size_t len);

#endif /* TSORACLE_DIAL_H */
