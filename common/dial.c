/* dial.c: a blocking connection to a tsoracle address, for command-line clients. */
#include "dial.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>

#include "addr.h"
#include "monotime.h"
#include "tls.h"

#define DIAL_WHY_SIZE 256

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

static int dial_tcp(const tp_addr *a, const char *address, char *err, size_t errlen)
{
	struct addrinfo hints, *res;
	int one = 1, fd, rv;

	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	rv = getaddrinfo(a->host, a->port, &hints, &res);
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
	tp_addr a;
	char why[DIAL_WHY_SIZE];

	if (tp_addr_parse(address, TP_ADDR_CLIENT, &a, why, sizeof why) != 0)
		return dial_fail(err, errlen, "address", address, why);
	return a.kind == TP_ADDR_UNIX ? dial_unix(a.path, address, err, errlen)
				      : dial_tcp(&a, address, err, errlen);
}

bool tp_dial_is_tcp(const char *address)
{
	tp_addr a;

	return tp_addr_parse(address, TP_ADDR_CLIENT, &a, NULL, 0) == 0 && a.kind == TP_ADDR_TCP;
}

SSL *tp_dial_tls(int fd, SSL_CTX *ctx, const char *address, int timeout_ms, char *err, size_t errlen)
{
	uint64_t deadline = mono_ms() + (uint64_t)timeout_ms;
	tls_identity id;
	SSL *ssl;
	int r;

	ERR_clear_error();
	ssl = SSL_new(ctx);
	if (ssl == NULL || SSL_set_fd(ssl, fd) != 1) {
		SSL_free(ssl);
		dial_fail(err, errlen, "TLS to", address, "out of memory");
		return NULL;
	}
	/* A non-blocking socket may take part of a write; the caller retries
	 * with the rest, wherever its buffer then is. */
	SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	while ((r = SSL_connect(ssl)) != 1) {
		int e = SSL_get_error(ssl, r);
		struct pollfd pfd = {.fd = fd, .events = e == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN};
		int64_t left = (int64_t)(deadline - mono_ms());

		if ((e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) || left <= 0) {
			long verify = SSL_get_verify_result(ssl);
			unsigned long code = ERR_peek_last_error();
			char why[TLS_ERR_SIZE];

			if (left <= 0)
				snprintf(why, sizeof why, "no TLS handshake within %d ms", timeout_ms);
			else if (verify != X509_V_OK)
				snprintf(why, sizeof why, "its certificate failed verification: %s",
					 X509_verify_cert_error_string(verify));
			else
				snprintf(why, sizeof why, "TLS handshake failed: %s",
					 code != 0 && ERR_reason_error_string(code) != NULL
					     ? ERR_reason_error_string(code)
					     : "the server closed the connection (is it TLS? does it trust "
					       "this CA?)");
			ERR_clear_error();
			SSL_free(ssl);
			dial_fail(err, errlen, "TLS to", address, why);
			return NULL;
		}
		ERR_clear_error();
		if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR) {
			SSL_free(ssl);
			dial_fail(err, errlen, "TLS to", address, strerror(errno));
			return NULL;
		}
	}
	tls_cert_identity(SSL_get0_peer_certificate(ssl), &id);
	if (id.role != TLS_ROLE_MEMBER) {
		char why[TLS_ERR_SIZE];

		snprintf(why, sizeof why, "its certificate CN=%s (role %s) is not a member's (OU=member)",
			 id.cn, tls_role_name(id.role));
		SSL_free(ssl);
		dial_fail(err, errlen, "TLS to", address, why);
		return NULL;
	}
	return ssl;
}

/* errno for an SSL_read/SSL_write failure r. */
static ssize_t dial_ssl_failed(SSL *ssl, int r)
{
	int e = SSL_get_error(ssl, r);

	ERR_clear_error();
	if (e == SSL_ERROR_ZERO_RETURN)
		return 0;
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		errno = EAGAIN;
	else if (e != SSL_ERROR_SYSCALL || errno == 0)
		errno = EPROTO;
	return -1;
}

ssize_t tp_io_read(int fd, SSL *ssl, void *buf, size_t len)
{
	size_t n = 0;
	int r;

	if (ssl == NULL)
		return read(fd, buf, len);
	r = SSL_read_ex(ssl, buf, len, &n);
	return r == 1 ? (ssize_t)n : dial_ssl_failed(ssl, r);
}

ssize_t tp_io_write(int fd, SSL *ssl, const void *buf, size_t len)
{
	size_t n = 0;
	int r;

	if (ssl == NULL)
		return write(fd, buf, len);
	r = SSL_write_ex(ssl, buf, len, &n);
	if (r == 1)
		return (ssize_t)n;
	r = (int)dial_ssl_failed(ssl, r);
	return r == 0 ? (errno = EPIPE, -1) : r;
}
