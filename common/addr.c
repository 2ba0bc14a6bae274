/* addr.c: the one parser of tsoracle addresses (unix socket paths, host:port, IP:PORT). */
#include "addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "err.h"

/* Plain C, no locale (isalnum would follow the server's): the extension
 * links this file too, and runs it in a check hook in any backend. */
#define ADDR_UNIX_PREFIX "unix:"
#define ADDR_TCP_PREFIX  "tcp:"

static bool addr_name_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '.' || ch == '-' || ch == '_';
}

static int addr_unix(const char *path, tp_addr *a, char *err, size_t errlen)
{
	size_t len = strlen(path);

	if (path[0] != '/')
		return err_set(err, errlen,
			       "a unix socket path must be absolute, for example "
			       "\"unix:/run/tsoracle/tsoracled.sock\"");
	if (len >= sizeof a->path)
		return err_set(err, errlen,
			       "the unix socket path is %zu bytes long; at most %zu bytes are allowed", len,
			       sizeof a->path - 1);
	a->kind = TP_ADDR_UNIX;
	memcpy(a->path, path, len + 1);
	return 0;
}

/* Digits only, 1 to TP_ADDR_PORT_MAX, without a leading zero (addresses
 * are compared as text: "peers" against "raft-address"). */
static int addr_port(const char *port, tp_addr *a, char *err, size_t errlen)
{
	unsigned long n = 0;
	const char *p;

	for (p = port; *p >= '0' && *p <= '9' && n <= TP_ADDR_PORT_MAX; p++)
		n = n * 10 + (unsigned long)(*p - '0');
	if (port[0] == '\0' || *p != '\0' || n < 1 || n > TP_ADDR_PORT_MAX)
		return err_set(err, errlen, "the port must be a number between 1 and %d", TP_ADDR_PORT_MAX);
	if (port[0] == '0')
		return err_set(err, errlen,
			       "the port must be a number between 1 and %d, without a leading zero",
			       TP_ADDR_PORT_MAX);
	a->port_number = (uint16_t)n;
	snprintf(a->port, sizeof a->port, "%lu", n);
	return 0;
}

/* An IPv6 address as written inside brackets: a literal, with a "%zone"
 * (an interface name) where names are allowed. */
static bool addr_is_v6(const char *host, tp_addr_mode mode)
{
	char bare[TP_ADDR_HOST_SIZE];
	unsigned char bin[sizeof(struct in6_addr)];
	const char *pct = strchr(host, '%');
	size_t len = pct != NULL ? (size_t)(pct - host) : strlen(host);
	const char *p;

	if (len >= sizeof bare)
		return false;
	memcpy(bare, host, len);
	bare[len] = '\0';
	if (inet_pton(AF_INET6, bare, bin) != 1)
		return false;
	if (pct == NULL)
		return true;
	if (mode != TP_ADDR_CLIENT || pct[1] == '\0')
		return false;
	for (p = pct + 1; *p != '\0'; p++)
		if (!addr_name_char(*p))
			return false;
	return true;
}

static int addr_tcp(const char *text, tp_addr_mode mode, tp_addr *a, char *err, size_t errlen)
{
	const char *host, *port, *p;
	size_t hostlen;
	bool bracketed = text[0] == '[';
	unsigned char bin[sizeof(struct in6_addr)];

	if (bracketed) {
		const char *close = strchr(text, ']');

		if (close == NULL || close[1] != ':')
			return err_set(err, errlen, "an IPv6 address must be written as \"[address]:port\"");
		host = text + 1;
		hostlen = (size_t)(close - host);
		port = close + 2;
	} else {
		const char *colon = strrchr(text, ':');

		if (colon == NULL)
			return mode == TP_ADDR_CLIENT
				   ? err_set(err, errlen,
					     "expected an absolute unix socket path (\"/path\" or "
					     "\"unix:/path\") or "
					     "a TCP address (\"host:port\" or \"tcp:host:port\")")
				   : err_set(err, errlen, "not of the form IP:PORT (or [IPv6]:PORT)");
		host = text;
		hostlen = (size_t)(colon - host);
		if (memchr(host, ':', hostlen) != NULL)
			return err_set(
			    err, errlen,
			    "an IPv6 address must be written in brackets, for example \"[::1]:%s\"",
			    colon + 1);
		port = colon + 1;
	}
	if (hostlen == 0)
		return err_set(err, errlen, "the host name is empty");
	if (hostlen >= sizeof a->host)
		return err_set(err, errlen, "the host name is longer than %zu bytes", sizeof a->host - 1);
	memcpy(a->host, host, hostlen);
	a->host[hostlen] = '\0';
	if (bracketed) {
		if (!addr_is_v6(a->host, mode))
			return err_set(err, errlen, "\"%s\" is not an IPv6 address", a->host);
	} else {
		for (p = a->host; *p != '\0'; p++)
			if (!addr_name_char(*p))
				return err_set(err, errlen, "the host name contains an invalid character");
		if (mode == TP_ADDR_IP_PORT && inet_pton(AF_INET, a->host, bin) != 1)
			return err_set(
			    err, errlen,
			    "\"%s\" is not an IP address (a literal IPv4 or [IPv6] address is required)",
			    a->host);
	}
	if (addr_port(port, a, err, errlen) != 0)
		return -1;
	a->kind = TP_ADDR_TCP;
	return 0;
}

static bool addr_hex_char(char ch)
{
	return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

/*
 * The length of a scheme prefix ("tcp:", "http://", "TCP:") that text
 * starts with, one this mode does not take, or 0. A prefix is letters,
 * digits, '+', '.' and '-' before the first ':', with a letter that is no
 * hex digit (so "fe80::1:7400", an IPv6 address without its brackets,
 * is not one), followed by a '/' ("unix:/path", "http://") or by another
 * ':' ("tcp:127.0.0.1:7400"), so that "localhost:5433", a host and port,
 * is not one either.
 */
static size_t addr_scheme_len(const char *text)
{
	const char *colon = strchr(text, ':');
	bool hex_only = true;

	if (colon == NULL || colon == text)
		return 0;
	for (const char *p = text; p < colon; p++) {
		if (!addr_name_char(*p) && *p != '+')
			return 0;
		hex_only = hex_only && addr_hex_char(*p);
	}
	if (hex_only || (colon[1] != '/' && strchr(colon + 1, ':') == NULL))
		return 0;
	return (size_t)(colon + 1 - text);
}

/* The refusal of an address with a scheme prefix the mode does not take:
 * it names the forms accepted, and the address without the prefix if
 * that one is good. */
static int addr_scheme_refused(const char *text, size_t len, tp_addr_mode mode, char *err, size_t errlen)
{
	const char *rest = text + len;
	tp_addr bare;
	char fix[TP_ADDR_HOST_SIZE + TP_ADDR_PORT_SIZE + sizeof "(for example \"[]:\")"] = "";

	if (strncmp(rest, "//", 2) == 0)
		rest += 2;
	if (tp_addr_parse(rest, mode, &bare, NULL, 0) == 0 && strlen(rest) < TP_ADDR_HOST_SIZE)
		snprintf(fix, sizeof fix, " (here \"%s\")", rest);
	if (mode == TP_ADDR_IP_PORT)
		return err_set(err, errlen,
			       "\"%.*s\" is not part of such an address: it is IP:PORT or [IPv6]:PORT, "
			       "for example \"127.0.0.1:7400\" or \"[::1]:7400\", with no prefix%s",
			       (int)len, text, fix);
	return err_set(err, errlen,
		       "\"%.*s\" is not a prefix tsoracle knows: an address is a unix socket "
		       "(\"/path\" or \"unix:/path\") or a TCP address (\"host:port\" or "
		       "\"tcp:host:port\")%s",
		       (int)len, text, fix);
}

int tp_addr_parse(const char *text, tp_addr_mode mode, tp_addr *a, char *err, size_t errlen)
{
	size_t scheme;

	memset(a, 0, sizeof *a);
	if (text == NULL || text[0] == '\0')
		return err_set(err, errlen, "the address is empty");
	scheme = addr_scheme_len(text);
	if (scheme != 0 &&
	    (mode == TP_ADDR_IP_PORT || (strncmp(text, ADDR_UNIX_PREFIX, strlen(ADDR_UNIX_PREFIX)) != 0 &&
					 strncmp(text, ADDR_TCP_PREFIX, strlen(ADDR_TCP_PREFIX)) != 0)))
		return addr_scheme_refused(text, scheme, mode, err, errlen);
	if (mode == TP_ADDR_IP_PORT)
		return addr_tcp(text, mode, a, err, errlen);
	if (strncmp(text, ADDR_UNIX_PREFIX, strlen(ADDR_UNIX_PREFIX)) == 0)
		return addr_unix(text + strlen(ADDR_UNIX_PREFIX), a, err, errlen);
	if (text[0] == '/')
		return addr_unix(text, a, err, errlen);
	if (strncmp(text, ADDR_TCP_PREFIX, strlen(ADDR_TCP_PREFIX)) == 0)
		return addr_tcp(text + strlen(ADDR_TCP_PREFIX), mode, a, err, errlen);
	return addr_tcp(text, mode, a, err, errlen);
}

socklen_t tp_addr_sockaddr(const tp_addr *a, struct sockaddr_storage *ss)
{
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof *ss);
	if (a->kind != TP_ADDR_TCP)
		return 0;
	if (inet_pton(AF_INET, a->host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons(a->port_number);
		return (socklen_t)sizeof *in4;
	}
	memset(ss, 0, sizeof *ss);
	if (inet_pton(AF_INET6, a->host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(a->port_number);
		return (socklen_t)sizeof *in6;
	}
	memset(ss, 0, sizeof *ss);
	return 0;
}
