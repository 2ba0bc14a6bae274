/* dial.h: a blocking connection to a tsoracle address, for command-line clients. */
#ifndef TSORACLE_DIAL_H
#define TSORACLE_DIAL_H

#include <stddef.h>

/*
 * Connects to address: a unix socket path ("/path" or "unix:/path") or
 * "host:port" ("tcp:host:port", "[v6]:port"; TCP_NODELAY set). Returns the
 * socket (blocking, close-on-exec), or -1 with a message in err.
 * tsoracle-ctl and the benchmark use it; the extension's worker connects
 * without blocking, inside PostgreSQL, and has its own.
 */
int tp_dial(const char *address, char *err, size_t errlen);

#endif /* TSORACLE_DIAL_H */
