/* addr.h: the one parser of tsoracle addresses (unix socket paths, host:port, IP:PORT). */
#ifndef TSORACLE_ADDR_H
#define TSORACLE_ADDR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

/* Bytes kept, with the NUL: a unix socket path as sockaddr_un holds it; a
 * host name (DNS names are at most 253 bytes) or address; a port. */
#define TP_ADDR_PATH_SIZE sizeof(((struct sockaddr_un *)0)->sun_path)
#define TP_ADDR_HOST_SIZE 256
#define TP_ADDR_PORT_SIZE 8
#define TP_ADDR_PORT_MAX  65535

/* What an address may be (tp_addr_parse's mode). */
typedef enum tp_addr_mode {
	/* A client's address (tsoracle.sidecar_address, tsoracle-ctl
	 * --address, tsoracle-bench): "/path" or "unix:/path" (a unix
	 * socket), "host:port" or "tcp:host:port", the host a name, an IPv4
	 * address or a bracketed IPv6 address ("[::1]:5433"). */
	TP_ADDR_CLIENT,
	/* What tsoracled binds and dials (raft-address, client-tcp, peers,
	 * metrics-address): "IP:PORT" or "[IPv6]:PORT", a literal address,
	 * no prefix: the Raft transport resolves no names. */
	TP_ADDR_IP_PORT,
} tp_addr_mode;

typedef enum tp_addr_kind { TP_ADDR_UNIX, TP_ADDR_TCP } tp_addr_kind;

typedef struct tp_addr {
	tp_addr_kind kind;
	char path[TP_ADDR_PATH_SIZE]; /* unix: absolute */
	char host[TP_ADDR_HOST_SIZE]; /* tcp: without brackets */
	char port[TP_ADDR_PORT_SIZE]; /* tcp: decimal, 1 to 65535, no leading zero */
	uint16_t port_number;
} tp_addr;

/*
 * Parses text in mode into a. 0, or -1 with the reason in err: a phrase
 * in lower case without a final period that does not repeat text, for the
 * caller to put after the setting's name (sidecar/config.c) or to make a
 * sentence of (src/worker_addr.c). Pure: no I/O, no DNS, no locale.
 *
 * The strictest of the forms tsoracle ever accepted: the port is digits
 * only (no sign, no blank, nothing after it), 1 to 65535; a host name is
 * letters, digits, '.', '-' and '_'; an IPv6 address is in brackets and
 * must parse as one (with a "%zone" suffix, in TP_ADDR_CLIENT only).
 */
int tp_addr_parse(const char *text, tp_addr_mode mode, tp_addr *a, char *err, size_t errlen);

/*
 * A parsed TCP address whose host is a literal IP (every TP_ADDR_IP_PORT
 * address) as a socket address: its length, or 0 if the host is a name.
 */
socklen_t tp_addr_sockaddr(const tp_addr *a, struct sockaddr_storage *ss);

#endif /* TSORACLE_ADDR_H */
