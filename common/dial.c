/* dial.c: a blocking client connection to a tsoracle address, for the command-line tools. */
#include "dial.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>

#include "addr.h"
#include "err.h"
#include "monotime.h"
#include "tls.h"

#define DIAL_WHY_SIZE  256
#define DIAL_US_PER_MS 1000

static int dial_fail(char *err, size_t errlen, const char *what, const char *address, const char *why)
{
	return err_set(err, errlen, "%s %s: %s", what, address, why);
}

/* Milliseconds from now to deadline_ms, at least 1 and at most INT_MAX. */
static int dial_left_ms(uint64_t deadline_ms)
{
	uint64_t now = mono_ms();

	if (now >= deadline_ms)
		return 1;
	return deadline_ms - now > INT_MAX ? INT_MAX : (int)(deadline_ms - now);
}

/*
 * connect(2), blocking, by deadline_ms: Linux takes the socket's
 * SO_SNDTIMEO as the connect's timeout (socket(7)), so that an address
 * that drops the SYN, or a unix socket whose listener's backlog is full,
 * does not hold a tool past its deadline. The option is cleared again:
 * later writes block as before. -1 with errno EINPROGRESS (TCP) or EAGAIN
 * (unix) when the time ran out.
 */
static int dial_connect(int fd, const struct sockaddr *sa, socklen_t len, uint64_t deadline_ms)
{
	int left = dial_left_ms(deadline_ms);
	struct timeval tv = {.tv_sec = left / (int)MS_PER_S,
			     .tv_usec = (suseconds_t)(left % (int)MS_PER_S) * DIAL_US_PER_MS};
	struct timeval none = {0};
	int rv, e;

	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	rv = connect(fd, sa, len);
	e = errno;
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &none, sizeof none);
	errno = e;
	return rv;
}

/* A failed connect's reason: its timeout in words, else strerror. */
static const char *dial_connect_why(int e, unsigned timeout_ms, char *why, size_t whylen)
{
	if (e != EINPROGRESS && e != EAGAIN)
		return strerror(e);
	snprintf(why, whylen, "no connection within %u ms", timeout_ms);
	return why;
}

static int dial_unix(const char *path, const char *address, unsigned timeout_ms, uint64_t deadline_ms,
		     char *err, size_t errlen)
{
	struct sockaddr_un sun;
	char why[DIAL_WHY_SIZE];
	int fd;

	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sun.sun_path)
		return dial_fail(err, errlen, "socket path", address, "too long");
	memcpy(sun.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return dial_fail(err, errlen, "could not connect to", address, strerror(errno));
	if (dial_connect(fd, (struct sockaddr *)&sun, sizeof sun, deadline_ms) != 0) {
		int e = errno;

		close(fd);
		return dial_fail(err, errlen, "could not connect to", address,
				 dial_connect_why(e, timeout_ms, why, sizeof why));
	}
	return fd;
}

static int dial_tcp(const tp_addr *a, const char *address, unsigned timeout_ms, uint64_t deadline_ms,
		    char *err, size_t errlen)
{
	struct addrinfo hints, *res;
	char why[DIAL_WHY_SIZE];
	int one = 1, fd, rv;

	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	rv = getaddrinfo(a->host, a->port, &hints, &res);
	if (rv != 0)
		return dial_fail(err, errlen, "could not resolve", address, gai_strerror(rv));
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || dial_connect(fd, res->ai_addr, res->ai_addrlen, deadline_ms) != 0) {
		int e = errno;

		if (fd >= 0)
			close(fd);
		freeaddrinfo(res);
		return dial_fail(err, errlen, "could not connect to", address,
				 dial_connect_why(e, timeout_ms, why, sizeof why));
	}
	freeaddrinfo(res);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return fd;
}

/*
 * TLS on the socket fd: the TLS 1.3 handshake with ctx (tls_ctx_new: the
 * client's certificate and the cluster's CA) by deadline_ms, and a check
 * that the server is a member (OU=member, CN=member-<id>, common/tls.h),
 * whose id goes to *member_id. The session, or NULL with a message in err
 * (the caller closes fd).
 */
static SSL *dial_tls(int fd, SSL_CTX *ctx, const char *address, uint64_t deadline_ms, uint64_t *member_id,
		     char *err, size_t errlen)
{
	int timeout_ms = dial_left_ms(deadline_ms);
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
		int64_t left = (int64_t)(deadline_ms - mono_ms());

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
		if (poll(&pfd, 1, left > INT_MAX ? INT_MAX : (int)left) < 0 && errno != EINTR) {
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
	*member_id = id.member_id;
	return ssl;
}

/* What a failure on a plaintext TCP connection adds: the server may want
 * TLS, which reads no plaintext. */
static const char *dial_tls_hint(const tp_client *c)
{
	return c->ssl == NULL && c->tcp ? " (if its client-tcp runs TLS, give --ca, --cert and --key)" : "";
}

/* tp_client_recv; hello_ms > 0: the answer to the hello is awaited, which
 * may take that long (the message for a timeout says so). */
static int dial_recv(tp_client *c, tp_msg *m, uint64_t deadline_ms, uint64_t hello_ms, char *err,
		     size_t errlen)
{
	for (;;) {
		int rc = tp_reader_next(&c->reader, m);
		struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
		uint64_t now;
		size_t room;
		uint8_t *p;
		ssize_t n;

		if (rc > 0)
			return 0;
		if (rc < 0)
			return err_set(err, errlen, "malformed answer from %s: %s%s", c->address,
				       tp_reader_errstr(&c->reader), dial_tls_hint(c));
		now = mono_ms();
		if (now >= deadline_ms && hello_ms > 0)
			return err_set(err, errlen, "no answer to hello from %s within %" PRIu64 " ms",
				       c->address, hello_ms);
		if (now >= deadline_ms)
			return err_set(err, errlen, "no answer from %s in time", c->address);
		/* A TLS session may hold bytes (decrypted, or read ahead) that
		 * the socket no longer shows. */
		if ((c->ssl == NULL || !SSL_has_pending(c->ssl)) &&
		    poll(&pfd, 1, dial_left_ms(deadline_ms)) <= 0)
			continue;
		p = tp_reader_space(&c->reader, &room);
		n = tp_io_read(c->fd, c->ssl, p, room);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n == 0)
			return err_set(err, errlen, "%s closed the connection%s", c->address,
				       dial_tls_hint(c));
		if (n < 0)
			return err_set(err, errlen, "read from %s failed: %s%s", c->address,
				       c->ssl != NULL && errno == EPROTO ? "the TLS session failed"
									 : strerror(errno),
				       dial_tls_hint(c));
		tp_reader_commit(&c->reader, (size_t)n);
	}
}

int tp_client_recv(tp_client *c, tp_msg *m, uint64_t deadline_ms, char *err, size_t errlen)
{
	return dial_recv(c, m, deadline_ms, 0, err, errlen);
}

int tp_client_send(tp_client *c, const tp_msg *m, char *err, size_t errlen)
{
	uint8_t buf[TP_MAX_FRAME];
	size_t n = tp_encode(m, buf, sizeof buf);

	if (n == 0)
		return err_set(err, errlen, "could not encode a message of type %u", m->type);
	if (tp_io_write_all(c->fd, c->ssl, buf, n) != 0)
		return err_set(err, errlen, "write to %s failed: %s%s", c->address, strerror(errno),
			       dial_tls_hint(c));
	return 0;
}

/* The answer to the hello in m: TP_HELLO_OK of this protocol version, from
 * the member its certificate names. 0, or -1 with why in err. */
static int dial_check_hello(tp_client *c, const tp_msg *m, uint64_t member_id, char *err, size_t errlen)
{
	if (m->type == TP_ERROR)
		return err_set(err, errlen, "%s refused the connection: %s", c->address, m->u.error.text);
	if (m->type != TP_HELLO_OK)
		return err_set(err, errlen, "unexpected answer to hello from %s (message type %u)",
			       c->address, m->type);
	if (m->u.hello_ok.version != TP_VERSION)
		return err_set(err, errlen, "%s chose protocol version %u; this client speaks %d", c->address,
			       m->u.hello_ok.version, TP_VERSION);
	if (c->ssl != NULL && m->u.hello_ok.node_id != member_id)
		return err_set(err, errlen,
			       "%s says it is node %" PRIu32 ", but its certificate is member-%" PRIu64 "'s",
			       c->address, m->u.hello_ok.node_id, member_id);
	c->node_id = m->u.hello_ok.node_id;
	return 0;
}

int tp_client_open(tp_client *c, const char *address, SSL_CTX *ctx, unsigned timeout_ms, char *err,
		   size_t errlen)
{
	uint64_t deadline_ms = mono_ms() + timeout_ms;
	uint64_t member_id = 0;
	char why[DIAL_WHY_SIZE];
	tp_addr a;
	tp_msg m;

	c->address = address;
	c->fd = -1;
	c->ssl = NULL;
	c->tcp = false;
	c->node_id = 0;
	tp_reader_init(&c->reader);
	if (tp_addr_parse(address, TP_ADDR_CLIENT, &a, why, sizeof why) != 0)
		return dial_fail(err, errlen, "address", address, why);
	c->tcp = a.kind == TP_ADDR_TCP;
	c->fd = c->tcp ? dial_tcp(&a, address, timeout_ms, deadline_ms, err, errlen)
		       : dial_unix(a.path, address, timeout_ms, deadline_ms, err, errlen);
	if (c->fd < 0)
		return -1;
	if (ctx != NULL && c->tcp &&
	    (c->ssl = dial_tls(c->fd, ctx, address, deadline_ms, &member_id, err, errlen)) == NULL) {
		tp_client_close(c);
		return -1;
	}
	tp_hello_init(&m);
	if (tp_client_send(c, &m, err, errlen) != 0 ||
	    dial_recv(c, &m, deadline_ms, timeout_ms > 0 ? timeout_ms : 1, err, errlen) != 0 ||
	    dial_check_hello(c, &m, member_id, err, errlen) != 0) {
		tp_client_close(c);
		return -1;
	}
	return 0;
}

void tp_client_close(tp_client *c)
{
	if (c->ssl != NULL) {
		/* close_notify, a clean end for the server, is sent if the
		 * socket takes it now: a peer that reads nothing (stopped, its
		 * buffers full) must not hold the tool here. */
		(void)fcntl(c->fd, F_SETFL, O_NONBLOCK);
		ERR_clear_error();
		(void)SSL_shutdown(c->ssl);
		ERR_clear_error();
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
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

int tp_io_write_all(int fd, SSL *ssl, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = tp_io_write(fd, ssl, p, len);

		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EPIPE;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}
