/*-------------------------------------------------------------------------
 *
 * worker_addr.c
 *		Parsing of tsoracle.sidecar_address; apart from the worker because
 *		the setting's check hook (tsoracle.c) also runs it, in any process:
 *		it does no I/O and uses none of the worker's state.
 *
 * src/worker_addr.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include "worker.h"

static bool
worker_parse_unix(const char *path, WorkerAddress *addr, char *err,
				  size_t errlen)
{
	size_t		len = strlen(path);

	if (path[0] != '/')
	{
		snprintf(err, errlen,
				 "A unix socket path must be absolute, for example \"unix:/run/tsoracle/tsoracled.sock\".");
		return false;
	}
	if (len >= sizeof(addr->path))
	{
		snprintf(err, errlen,
				 "The unix socket path is %zu bytes long; at most %zu bytes are allowed.",
				 len, sizeof(addr->path) - 1);
		return false;
	}
	addr->kind = WORKER_ADDR_UNIX;
	strlcpy(addr->path, path, sizeof(addr->path));
	return true;
}

static bool
worker_parse_tcp(const char *text, WorkerAddress *addr, char *err,
				 size_t errlen)
{
	const char *host;
	size_t		hostlen;
	const char *port;
	const char *p;
	long		portnum;

	if (text[0] == '[')
	{
		const char *close = strchr(text, ']');

		if (close == NULL || close[1] != ':')
		{
			snprintf(err, errlen,
					 "An IPv6 address must be written as \"[address]:port\".");
			return false;
		}
		host = text + 1;
		hostlen = (size_t) (close - host);
		port = close + 2;
	}
	else
	{
		const char *colon = strrchr(text, ':');

		if (colon == NULL)
		{
			snprintf(err, errlen,
					 "Expected an absolute unix socket path (\"/path\" or \"unix:/path\") or a TCP address (\"host:port\" or \"tcp:host:port\").");
			return false;
		}
		host = text;
		hostlen = (size_t) (colon - host);
		if (memchr(host, ':', hostlen) != NULL)
		{
			snprintf(err, errlen,
					 "An IPv6 address must be written in brackets, for example \"[::1]:5433\".");
			return false;
		}
		port = colon + 1;
	}

	if (hostlen == 0)
	{
		snprintf(err, errlen, "The host name is empty.");
		return false;
	}
	if (hostlen >= sizeof(addr->host))
	{
		snprintf(err, errlen, "The host name is longer than %zu bytes.",
				 sizeof(addr->host) - 1);
		return false;
	}
	for (p = host; p < host + hostlen; p++)
	{
		if (isspace((unsigned char) *p) || *p == '/' || *p == '[' || *p == ']')
		{
			snprintf(err, errlen, "The host name contains an invalid character.");
			return false;
		}
	}

	portnum = 0;
	for (p = port; *p != '\0'; p++)
	{
		if (!isdigit((unsigned char) *p) || portnum > 65535)
			break;
		portnum = portnum * 10 + (*p - '0');
	}
	if (port[0] == '\0' || *p != '\0' || portnum < 1 || portnum > 65535)
	{
		snprintf(err, errlen, "The port must be a number between 1 and 65535.");
		return false;
	}

	addr->kind = WORKER_ADDR_TCP;
	memcpy(addr->host, host, hostlen);
	addr->host[hostlen] = '\0';
	snprintf(addr->port, sizeof(addr->port), "%ld", portnum);
	return true;
}

bool
worker_parse_address(const char *text, WorkerAddress *addr, char *err,
					 size_t errlen)
{
	static const char unix_prefix[] = "unix:";
	static const char tcp_prefix[] = "tcp:";

	memset(addr, 0, sizeof(*addr));
	if (text == NULL || text[0] == '\0')
	{
		snprintf(err, errlen, "The address is empty.");
		return false;
	}
	if (strncmp(text, unix_prefix, strlen(unix_prefix)) == 0)
		return worker_parse_unix(text + strlen(unix_prefix), addr, err, errlen);
	if (text[0] == '/')
		return worker_parse_unix(text, addr, err, errlen);
	if (strncmp(text, tcp_prefix, strlen(tcp_prefix)) == 0)
		return worker_parse_tcp(text + strlen(tcp_prefix), addr, err, errlen);
	return worker_parse_tcp(text, addr, err, errlen);
}
