/* dial.h: a blocking connection to a tsoracle address, for command-line clients. */
#ifndef TSORACLE_DIAL_H
#define TSORACLE_DIAL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <openssl/ssl.h>

/*
 * Connects to address: a unix socket path ("/path" or "unix:/path") or
 * "host:port" ("tcp:host:port", "[v6]:port"; TCP_NODELAY set), as
 * common/addr.h parses it (TP_ADDR_CLIENT). Returns the
 * socket (blocking, close-on-exec), or -1 with a message in err.
 * tsoracle-ctl and the benchmark use it; the extension's worker connects
 * without blocking, inside PostgreSQL, and has its own.
 */
int tp_dial(const char *address, char *err, size_t errlen);

/* Whether address is a valid TCP address (else a unix socket path, or
 * not an address at all). */
bool tp_dial_is_tcp(const char *address);

/*
 * TLS for a blocking client (tsoracle-ctl, tsoracle-bench) on a socket from
 * tp_dial: the TLS 1.3 handshake with ctx (tls_ctx_new: the client's
 * certificate and the cluster's CA) within timeout_ms, and a check that
 * the server is a member (OU=member, CN=member-<id>, common/tls.h). The
 * session, or NULL with a message in err (the caller closes fd).
 */
SSL *tp_dial_tls(int fd, SSL_CTX *ctx, const char *address, int timeout_ms, char *err, size_t errlen);

/* read(2) and write(2) through ssl when it is not NULL: the same results,
 * -1 with errno EAGAIN when the session needs the socket to be readable or
 * writable first, EPROTO when it failed. */
ssize_t tp_io_read(int fd, SSL *ssl, void *buf, size_t len);
ssize_t tp_io_write(int fd, SSL *ssl, const void *buf, size_t len);

#endif /* TSORACLE_DIAL_H */
