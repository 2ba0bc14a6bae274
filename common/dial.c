/* dial.c: a blocking connection to a tsoracle address, for command-line clients. */
#include "dial.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define DIAL_HOST_SIZE 256

static int dial_fail(char *err, size_t errlen, const char *what, const char *address, const char *why)
{
	snprintf(err, errlen, "%s %s: %s", what, address, why);
	return -1;
}

static int dial_unix(const char *path, const char *address, char *err, size_t errlen)
{
	struct sockaddr_un sun;
	int fd;

	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sun.sun_path)
		return dial_fail(err, errlen, "socket path", address, "too long");
	memcpy(sun.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return dial_fail(err, errlen, "could not connect to", address, strerror(errno));
	if (connect(fd, (struct sockaddr *)&sun, sizeof sun) != 0) {
		int e = errno;

		close(fd);
		return dial_fail(err, errlen, "could not connect to", address, strerror(e));
	}
	return fd;
}

static int dial_tcp(const char *hostport, const char *address, char *err, size_t errlen)
{
	char host[DIAL_HOST_SIZE];
	const char *colon = strrchr(hostport, ':');
	size_t hlen = colon ? (size_t)(colon - hostport) : 0;
	struct addrinfo hints, *res;
	int one = 1, fd, rv;

	if (colon == NULL || hlen == 0 || hlen >= sizeof host)
		return dial_fail(err, errlen, "address", address, "neither a socket path nor host:port");
	memcpy(host, hostport, hlen);
	host[hlen] = '\0';
	if (host[0] == '[' && hlen > 2 && host[hlen - 1] == ']') {
		memmove(host, host + 1, hlen - 2);
		host[hlen - 2] = '\0';
	}
	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	rv = getaddrinfo(host, colon + 1, &hints, &res);
	if (rv != 0)
		return dial_fail(err, errlen, "could not resolve", address, gai_strerror(rv));
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
		int e = errno;

		if (fd >= 0)
			close(fd);
		freeaddrinfo(res);
		return dial_fail(err, errlen, "could not connect to", address, strerror(e));
	}
	freeaddrinfo(res);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return fd;
}

int tp_dial(const char *address, char *err, size_t errlen)
{
	const char *a = address;

	if (strncmp(a, "unix:", 5) == 0)
		a += 5;
	else if (strncmp(a, "tcp:", 4) == 0)
		a += 4;
	return a[0] == '/' ? dial_unix(a, address, err, errlen) : dial_tcp(a, address, err, errlen);
}
