/* peer.c: the Raft peer transport: TCP, open only to peers who know the cluster's secret (see peer.h).
 *
 * Every connection, accepted or made, is a peer_conn from its first byte
 * until libraft has the stream or the connection is closed. Both sides read
 * exactly the bytes of the exchange (the read buffer is sized to what is
 * missing), so whatever the connector's libraft sends next stays in the
 * socket for the acceptor's libraft.
 *
 * Memory: the TCP handle is allocated with raft_malloc because on success
 * libraft owns it and frees it with raft_free when it closes the stream; on
 * failure this file closes it and frees it the same way.
 */
#include "peer.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bytes.h"
#include "config.h"
#include "err.h"
#include "log.h"
#include "sha256.h"

const uint8_t peer_magic[PEER_MAGIC_LEN] = {'T', 'S', 'O', 'P', 'E', 'E', 'R', '1'};

/* Names what the MAC is for, so it cannot be confused with another use of
 * the same secret. */
static const char peer_label[] = "tsoracle raft peer v1";

#define PEER_BACKLOG 64
#define PEER_IN_MAX  (PEER_HEADER_LEN + PEER_ADDRESS_MAX + PEER_MAC_LEN)

typedef struct peer_transport peer_transport;

enum peer_kind {
	PEER_ACCEPT, /* we accepted: we challenge, they answer */
	PEER_CONNECT /* we connected: they challenge, we answer */
};

/* Where a connection is in the exchange (peer.h). */
enum peer_stage {
	PEER_TCP_CONNECT,    /* connector: TCP connect under way */
	PEER_READ_CHALLENGE, /* connector: reading the acceptor's challenge */
	PEER_READ_VERDICT,   /* connector: answer sent, reading the verdict */
	PEER_READ_HEADER,    /* acceptor: challenge sent, reading id and length */
	PEER_READ_REST,      /* acceptor: reading address and MAC */
	PEER_DONE_READING,   /* either: all read and checked, a write pending */
	PEER_WRITE_VERDICT,  /* acceptor: answer right, sending the verdict */
};

typedef struct peer_conn {
	peer_transport *t;
	struct peer_conn *prev, *next;
	enum peer_kind kind;
	uint64_t peer_id; /* accepted: valid once the header is read */
	char address[PEER_ADDRESS_MAX + 1];
	char from[64]; /* accepted: the TCP source, for the log */

	struct raft_uv_connect *req; /* PEER_CONNECT: libraft's request */
	raft_uv_connect_cb cb;

	uv_tcp_t *tcp; /* NULL once closed or handed to libraft */
	uv_connect_t connect;
	uv_timer_t timer;
	uv_write_t write;
	uint8_t out[PEER_IN_MAX];
	uint8_t in[PEER_IN_MAX];
	size_t in_len, in_need;
	uint8_t nonce[PEER_NONCE_LEN];
	uint8_t expect[PEER_MAC_LEN]; /* connector: the verdict to expect */
	enum peer_stage stage;
	bool header_read; /* accepted: id and address known (for the log) */
	bool wrote;       /* the last write issued has completed */
	bool done;        /* handed to libraft, or failing: later events are ignored */
	int open_handles; /* handles whose uv_close callback is still due */
	int status;       /* what libraft's connect callback gets when it is owed one */
	bool owe_cb;
} peer_conn;

struct peer_transport {
	struct raft_uv_transport *outer;
	uv_loop_t *loop;
	peer_secrets secrets; /* answer with the first, accept any */
	raft_id id;
	char address[PEER_ADDRESS_MAX + 1];
	uv_tcp_t listener;
	bool listener_open;
	raft_uv_accept_cb accept_cb;
	raft_uv_transport_close_cb close_cb;
	peer_conn *conns; /* every peer_conn not yet freed */
	unsigned n_conns;
	unsigned n_accepting;
	bool closing;
	bool warned;        /* peer_warn_level: a warning was logged ... */
	uint64_t warned_at; /* ... at this uv_now() */
	unsigned quieted;   /* failures since, logged at debug level */
};

void peer_mac(const uint8_t *secret, size_t len, char from, const uint8_t nonce[PEER_NONCE_LEN],
	      uint64_t connector, uint64_t acceptor, const char *address, size_t address_len,
	      uint8_t out[PEER_MAC_LEN])
{
	hmac_sha256_ctx h;
	uint8_t ids[16];

	bytes_put_u64(ids, connector);
	bytes_put_u64(ids + 8, acceptor);
	hmac_sha256_init(&h, secret, len);
	hmac_sha256_update(&h, peer_label, sizeof peer_label - 1);
	hmac_sha256_update(&h, &from, 1);
	hmac_sha256_update(&h, nonce, PEER_NONCE_LEN);
	hmac_sha256_update(&h, ids, sizeof ids);
	hmac_sha256_update(&h, address, address_len);
	hmac_sha256_final(&h, out);
	explicit_bzero(&h, sizeof h);
}

void peer_secrets_wipe(peer_secrets *s)
{
	explicit_bzero(s, sizeof *s);
}

/* Splits the file's bytes into lines, each one secret. */
static int peer_split_secrets(const char *path, const uint8_t *buf, size_t size, peer_secrets *out, char *err,
			      size_t errlen)
{
	size_t at = 0;
	int line = 0;

	out->n = 0;
	while (at < size) {
		const uint8_t *nl = memchr(buf + at, '\n', size - at);
		size_t end = nl != NULL ? (size_t)(nl - buf) : size;
		size_t len = end - at;

		line++;
		/* An editor's trailing blanks must not make two copies differ. */
		while (len > 0 &&
		       (buf[at + len - 1] == '\r' || buf[at + len - 1] == ' ' || buf[at + len - 1] == '\t'))
			len--;
		if (len > 0) {
			if (out->n == PEER_SECRETS_MAX)
				return err_set(err, errlen, "peer-secret-file %s holds more than %d secrets",
					       path, PEER_SECRETS_MAX);
			if (len < PEER_SECRET_MIN)
				return err_set(
				    err, errlen,
				    "peer-secret-file %s: line %d holds %zu bytes; at least %d are needed "
				    "(for example: (umask 077; head -c 32 /dev/urandom | base64 > %s))",
				    path, line, len, PEER_SECRET_MIN, path);
			memcpy(out->key[out->n], buf + at, len);
			out->len[out->n] = len;
			out->n++;
		}
		at = end + 1;
	}
	if (out->n == 0)
		return err_set(err, errlen,
			       "peer-secret-file %s holds no secret (for example: (umask 077; head -c 32 "
			       "/dev/urandom | base64 > %s))",
			       path, path);
	return 0;
}

int peer_load_secrets(const char *path, peer_secrets *out, char *err, size_t errlen)
{
	uint8_t buf[PEER_SECRETS_MAX * (PEER_SECRET_MAX + 2)];
	struct stat st;
	size_t size = 0;
	int rc = -1;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	memset(out, 0, sizeof *out);
	if (fd < 0)
		return err_set(err, errlen, "peer-secret-file %s: %s", path, strerror(errno));
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return err_set(err, errlen, "peer-secret-file %s is not a regular file", path);
	}
	if ((st.st_mode & 077) != 0) {
		close(fd);
		return err_set(err, errlen,
			       "peer-secret-file %s can be read by group or others (mode %04o): chmod 600 %s",
			       path, (unsigned)(st.st_mode & 07777), path);
	}
	for (;;) {
		ssize_t n = read(fd, buf + size, sizeof buf - size);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err_set(err, errlen, "peer-secret-file %s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		size += (size_t)n;
		if (size == sizeof buf) {
			err_set(err, errlen, "peer-secret-file %s is longer than %zu bytes", path,
				sizeof buf - 1);
			goto out;
		}
	}
	rc = peer_split_secrets(path, buf, size, out, err, errlen);
out:
	close(fd);
	explicit_bzero(buf, sizeof buf);
	if (rc != 0)
		peer_secrets_wipe(out);
	return rc;
}

/* ---- a connection's life ---- */

static void peer_maybe_closed(peer_transport *t)
{
	if (t->closing && !t->listener_open && t->n_conns == 0 && t->close_cb != NULL) {
		raft_uv_transport_close_cb cb = t->close_cb;

		t->close_cb = NULL;
		cb(t->outer);
	}
}

/* Every handle of c is closed: answer libraft's connect request if it is
 * owed an answer, and free c. */
static void peer_conn_free(peer_conn *c)
{
	peer_transport *t = c->t;

	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		t->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	t->n_conns--;
	if (c->kind == PEER_ACCEPT)
		t->n_accepting--;
	if (c->owe_cb)
		c->cb(c->req, NULL, c->status);
	free(c);
	peer_maybe_closed(t);
}

static void peer_handle_closed(uv_handle_t *h)
{
	peer_conn *c = h->data;

	if (h == (uv_handle_t *)c->tcp) {
		raft_free(c->tcp);
		c->tcp = NULL;
	}
	if (--c->open_handles == 0)
		peer_conn_free(c);
}

/* Warnings about failed exchanges, at most one per PEER_WARN_INTERVAL_MS:
 * a misconfigured member retries several times a second, forever. The rest go to
 * the debug level and are counted in the next warning. */
static int peer_warn_level(peer_transport *t, int level)
{
	uint64_t now = uv_now(t->loop);

	if (level != LOG_WARN)
		return level;
	if (t->warned && now - t->warned_at < PEER_WARN_INTERVAL_MS) {
		t->quieted++;
		return LOG_DEBUG;
	}
	if (t->quieted > 0)
		log_warn("%u more failed Raft connection exchanges in the last %d s (logged at debug level)",
			 t->quieted, PEER_WARN_INTERVAL_MS / 1000);
	t->warned = true;
	t->warned_at = now;
	t->quieted = 0;
	return level;
}

/* Ends the exchange without handing the stream over: libraft's connect
 * callback, if owed, gets status. why goes to the log at level. */
static void peer_fail(peer_conn *c, int status, int level, const char *why)
{
	if (c->done)
		return;
	c->done = true;
	c->status = status;
	if (why != NULL)
		level = peer_warn_level(c->t, level);
	if (why != NULL && c->kind == PEER_ACCEPT && c->header_read)
		log_printf(level, "refused a Raft connection from %s (says node %" PRIu64 " at %s): %s",
			   c->from, c->peer_id, c->address, why);
	else if (why != NULL && c->kind == PEER_ACCEPT)
		log_printf(level, "refused a Raft connection from %s: %s", c->from, why);
	else if (why != NULL)
		log_printf(level, "Raft connection to node %" PRIu64 " at %s failed: %s", c->peer_id,
			   c->address, why);
	uv_timer_stop(&c->timer);
	uv_close((uv_handle_t *)&c->timer, peer_handle_closed);
	uv_read_stop((uv_stream_t *)c->tcp);
	uv_close((uv_handle_t *)c->tcp, peer_handle_closed);
}

/* Both sides proved they hold the secret: the stream goes to libraft. */
static void peer_succeed(peer_conn *c)
{
	peer_transport *t = c->t;
	uv_stream_t *stream = (uv_stream_t *)c->tcp;

	c->done = true;
	c->owe_cb = false;
	c->tcp = NULL;
	c->open_handles--; /* the stream is libraft's now */
	stream->data = NULL;
	uv_timer_stop(&c->timer);
	uv_close((uv_handle_t *)&c->timer, peer_handle_closed);
	if (c->kind == PEER_ACCEPT) {
		log_debug("Raft connection from %s authenticated as node %" PRIu64, c->from, c->peer_id);
		t->accept_cb(t->outer, c->peer_id, c->address, stream);
	} else {
		c->cb(c->req, stream, 0);
	}
}

static void peer_timeout(uv_timer_t *timer)
{
	peer_conn *c = timer->data;

	if (c->kind == PEER_ACCEPT)
		peer_fail(c, RAFT_NOCONNECTION, LOG_WARN, "no answer to the challenge in time");
	else if (c->stage == PEER_TCP_CONNECT)
		peer_fail(c, RAFT_NOCONNECTION, LOG_DEBUG, "TCP connect timed out");
	else if (c->stage == PEER_READ_CHALLENGE)
		peer_fail(c, RAFT_NOCONNECTION, LOG_WARN,
			  "no challenge in time (is it a tsoracled of this version?)");
	else
		peer_fail(c, RAFT_NOCONNECTION, LOG_WARN, "no verdict on our answer in time");
}

static void peer_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	peer_conn *c = h->data;

	(void)suggested;
	/* Exactly what is missing: never a byte of libraft's traffic. */
	buf->base = (char *)c->in + c->in_len;
	buf->len = c->in_need - c->in_len;
}

static void peer_write_cb(uv_write_t *w, int status);

static int peer_write(peer_conn *c, size_t len)
{
	uv_buf_t buf = uv_buf_init((char *)c->out, (unsigned)len);

	return uv_write(&c->write, (uv_stream_t *)c->tcp, &buf, 1, peer_write_cb);
}

/* Reads the next n bytes of the exchange into c->in. */
static void peer_expect(peer_conn *c, enum peer_stage stage, size_t n)
{
	c->stage = stage;
	c->in_len = 0;
	c->in_need = n;
}

/* Connector, challenge read: answer it and wait for the verdict. */
static void peer_answer(peer_conn *c)
{
	peer_transport *t = c->t;
	size_t alen = strlen(t->address);
	int rv;

	if (memcmp(c->in, peer_magic, PEER_MAGIC_LEN) != 0) {
		peer_fail(c, RAFT_NOCONNECTION, LOG_WARN, "it did not send a tsoracle peer challenge");
		return;
	}
	memcpy(c->nonce, c->in + PEER_MAGIC_LEN, PEER_NONCE_LEN);
	bytes_put_u64(c->out, t->id);
	bytes_put_u16(c->out + 8, (uint16_t)alen);
	memcpy(c->out + PEER_HEADER_LEN, t->address, alen);
	/* Both MACs now, with the secret we answer with: a reload before the
	 * verdict arrives must not change which one we expect. */
	peer_mac(t->secrets.key[0], t->secrets.len[0], PEER_FROM_CONNECTOR, c->nonce, t->id, c->peer_id,
		 t->address, alen, c->out + PEER_HEADER_LEN + alen);
	peer_mac(t->secrets.key[0], t->secrets.len[0], PEER_FROM_ACCEPTOR, c->nonce, t->id, c->peer_id,
		 t->address, alen, c->expect);
	rv = peer_write(c, PEER_HEADER_LEN + alen + PEER_MAC_LEN);
	if (rv != 0) {
		peer_fail(c, RAFT_NOCONNECTION, LOG_WARN, uv_strerror(rv));
		return;
	}
	peer_expect(c, PEER_READ_VERDICT, PEER_MAC_LEN);
}

/* Connector, verdict read: the acceptor holds the secret too? */
static void peer_verdict(peer_conn *c)
{
	if (!sha256_equal(c->expect, c->in, PEER_MAC_LEN)) {
		peer_fail(c, RAFT_NOCONNECTION, LOG_WARN,
			  "wrong verdict (its peer-secret-file differs from ours, or one of us has none)");
		return;
	}
	c->stage = PEER_DONE_READING;
	if (c->wrote)
		peer_succeed(c);
}

/* Acceptor, answer read and challenge sent: check it; if right, send our
 * verdict (proving we hold the secret too) and hand over once it is out. */
static void peer_check(peer_conn *c)
{
	peer_transport *t = c->t;
	size_t alen = c->in_need - PEER_HEADER_LEN - PEER_MAC_LEN;
	uint8_t expected[PEER_MAC_LEN];
	int rv;

	int k;

	/* Any of our secrets will do (a change of secret under way); the
	 * verdict is made with the one that matched. */
	for (k = 0; k < t->secrets.n; k++) {
		peer_mac(t->secrets.key[k], t->secrets.len[k], PEER_FROM_CONNECTOR, c->nonce, c->peer_id,
			 t->id, c->address, alen, expected);
		if (sha256_equal(expected, c->in + PEER_HEADER_LEN + alen, PEER_MAC_LEN))
			break;
	}
	if (k == t->secrets.n) {
		peer_fail(c, RAFT_NOCONNECTION, LOG_WARN,
			  "wrong answer to the challenge (its peer-secret-file differs from ours, or one of "
			  "us has none)");
		return;
	}
	peer_mac(t->secrets.key[k], t->secrets.len[k], PEER_FROM_ACCEPTOR, c->nonce, c->peer_id, t->id,
		 c->address, alen, c->out);
	c->wrote = false;
	c->stage = PEER_WRITE_VERDICT;
	rv = peer_write(c, PEER_MAC_LEN);
	if (rv != 0)
		peer_fail(c, RAFT_NOCONNECTION, LOG_WARN, uv_strerror(rv));
}

/* Acceptor, id and address length read: read the rest, or refuse. */
static void peer_header(peer_conn *c)
{
	size_t alen = bytes_get_u16(c->in + 8);

	c->peer_id = bytes_get_u64(c->in);
	if (alen == 0 || alen > PEER_ADDRESS_MAX) {
		peer_fail(c, RAFT_NOCONNECTION, LOG_WARN,
			  "malformed answer (is it a tsoracled of this version?)");
		return;
	}
	/* Keep the header: the MAC check reads the whole answer from c->in. */
	c->stage = PEER_READ_REST;
	c->in_need = PEER_HEADER_LEN + alen + PEER_MAC_LEN;
}

/* Acceptor, whole answer read. */
static void peer_rest(peer_conn *c)
{
	size_t alen = c->in_need - PEER_HEADER_LEN - PEER_MAC_LEN;

	/* A NUL inside would make libraft see another address than we checked. */
	if (memchr(c->in + PEER_HEADER_LEN, '\0', alen) != NULL) {
		peer_fail(c, RAFT_NOCONNECTION, LOG_WARN, "malformed address in the answer");
		return;
	}
	memcpy(c->address, c->in + PEER_HEADER_LEN, alen);
	c->address[alen] = '\0';
	c->header_read = true;
	c->stage = PEER_DONE_READING;
	if (c->wrote)
		peer_check(c);
}

static void peer_read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	peer_conn *c = stream->data;

	(void)buf;
	if (c->done)
		return;
	if (nread < 0) {
		const char *why = uv_strerror((int)nread);

		if (nread == UV_EOF)
			why = c->stage == PEER_READ_VERDICT ? "it refused our answer (its peer-secret-file "
							      "differs from ours, or one of us has none)"
							    : "it closed the connection during the exchange";
		peer_fail(c, RAFT_NOCONNECTION,
			  c->kind == PEER_ACCEPT || c->stage == PEER_READ_VERDICT ? LOG_WARN : LOG_DEBUG,
			  why);
		return;
	}
	c->in_len += (size_t)nread;
	if (c->in_len < c->in_need)
		return; /* libuv asks peer_alloc for the rest */
	switch (c->stage) {
	case PEER_READ_CHALLENGE:
		peer_answer(c);
		return;
	case PEER_READ_VERDICT:
		uv_read_stop(stream);
		peer_verdict(c);
		return;
	case PEER_READ_HEADER:
		peer_header(c);
		return;
	case PEER_READ_REST:
		uv_read_stop(stream);
		peer_rest(c);
		return;
	default:
		return;
	}
}

static void peer_write_cb(uv_write_t *w, int status)
{
	peer_conn *c = w->data;

	/* UV_ECANCELED: peer_fail closed the stream and said why. */
	if (c->done)
		return;
	if (status != 0) {
		peer_fail(c, RAFT_NOCONNECTION, LOG_WARN, uv_strerror(status));
		return;
	}
	c->wrote = true;
	if (c->kind == PEER_CONNECT && c->stage == PEER_DONE_READING)
		peer_succeed(c); /* answer out, verdict checked */
	else if (c->kind == PEER_ACCEPT && c->stage == PEER_WRITE_VERDICT)
		peer_succeed(c); /* verdict out */
	else if (c->kind == PEER_ACCEPT && c->stage == PEER_DONE_READING)
		peer_check(c); /* challenge out after the answer came in */
}

static peer_conn *peer_conn_new(peer_transport *t, enum peer_kind kind)
{
	peer_conn *c = calloc(1, sizeof *c);

	if (c == NULL)
		return NULL;
	c->tcp = raft_malloc(sizeof *c->tcp);
	if (c->tcp == NULL) {
		free(c);
		return NULL;
	}
	c->t = t;
	c->kind = kind;
	uv_tcp_init(t->loop, c->tcp);
	c->tcp->data = c;
	uv_timer_init(t->loop, &c->timer);
	c->timer.data = c;
	c->open_handles = 2;
	c->write.data = c;
	c->connect.data = c;
	c->next = t->conns;
	if (t->conns != NULL)
		t->conns->prev = c;
	t->conns = c;
	t->n_conns++;
	if (kind == PEER_ACCEPT)
		t->n_accepting++;
	/* Bounds the TCP connect too: a peer cut off by a partition would
	 * otherwise hold libraft's connection attempt for minutes of SYN
	 * retries. */
	uv_timer_start(&c->timer, peer_timeout,
		       kind == PEER_CONNECT ? PEER_CONNECT_TIMEOUT_MS : PEER_TIMEOUT_MS, 0);
	return c;
}

/* Raft messages are small and every one is waited for: no Nagle delay.
 * And a connection whose data goes unacknowledged for PEER_USER_TIMEOUT_MS
 * is dropped rather than left to TCP's retransmission backoff: after a
 * partition heals, the backoff would keep a member deaf to the leader for
 * seconds; a new connection reaches it at libraft's next attempt. */
static void peer_tune(peer_conn *c)
{
	uv_os_fd_t fd;
	unsigned ms = PEER_USER_TIMEOUT_MS;

	uv_tcp_nodelay(c->tcp, 1);
	if (uv_fileno((uv_handle_t *)c->tcp, &fd) == 0)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof ms);
}

static void peer_connect_cb(uv_connect_t *req, int status)
{
	peer_conn *c = req->data;

	if (c->done)
		return;
	if (status != 0) {
		/* Routine while that peer is down: libraft retries. */
		peer_fail(c, RAFT_NOCONNECTION, LOG_DEBUG, uv_strerror(status));
		return;
	}
	peer_tune(c);
	/* Connected: the exchange gets its own, longer, bound. */
	uv_timer_start(&c->timer, peer_timeout, PEER_TIMEOUT_MS, 0);
	peer_expect(c, PEER_READ_CHALLENGE, PEER_CHALLENGE_LEN);
	status = uv_read_start((uv_stream_t *)c->tcp, peer_alloc, peer_read_cb);
	if (status != 0)
		peer_fail(c, RAFT_NOCONNECTION, LOG_WARN, uv_strerror(status));
}

static void peer_describe_source(peer_conn *c)
{
	struct sockaddr_storage ss;
	int len = sizeof ss;
	char host[INET6_ADDRSTRLEN];

	snprintf(c->from, sizeof c->from, "an unknown address");
	if (uv_tcp_getpeername(c->tcp, (struct sockaddr *)&ss, &len) != 0)
		return;
	if (ss.ss_family == AF_INET && uv_ip4_name((struct sockaddr_in *)&ss, host, sizeof host) == 0)
		snprintf(c->from, sizeof c->from, "%s:%u", host,
			 ntohs(((struct sockaddr_in *)&ss)->sin_port));
	else if (ss.ss_family == AF_INET6 && uv_ip6_name((struct sockaddr_in6 *)&ss, host, sizeof host) == 0)
		snprintf(c->from, sizeof c->from, "[%s]:%u", host,
			 ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
}

static void peer_close_and_free(uv_handle_t *h)
{
	raft_free(h);
}

static void peer_connection_cb(uv_stream_t *listener, int status)
{
	peer_transport *t = listener->data;
	peer_conn *c;
	int rv;

	if (status != 0) {
		log_warn("accepting a Raft connection: %s", uv_strerror(status));
		return;
	}
	if (t->closing)
		return;
	if (t->n_accepting >= PEER_MAX_PENDING) {
		uv_tcp_t *tcp = raft_malloc(sizeof *tcp);

		/* Accept and close it: left in the backlog it would wake us again. */
		if (tcp == NULL)
			return;
		uv_tcp_init(t->loop, tcp);
		if (uv_accept(listener, (uv_stream_t *)tcp) == 0)
			log_printf(peer_warn_level(t, LOG_WARN),
				   "refused a Raft connection: %u others are still in the exchange",
				   t->n_accepting);
		uv_close((uv_handle_t *)tcp, peer_close_and_free);
		return;
	}
	c = peer_conn_new(t, PEER_ACCEPT);
	if (c == NULL) {
		log_error("accepting a Raft connection: out of memory");
		return;
	}
	rv = uv_accept(listener, (uv_stream_t *)c->tcp);
	if (rv != 0) {
		peer_fail(c, RAFT_NOCONNECTION, LOG_WARN, uv_strerror(rv));
		return;
	}
	peer_describe_source(c);
	peer_tune(c);
	/* A nonce that could repeat would let a recorded answer in. */
	if (getrandom(c->nonce, sizeof c->nonce, 0) != (ssize_t)sizeof c->nonce) {
		peer_fail(c, RAFT_NOCONNECTION, LOG_ERROR, "getrandom failed");
		return;
	}
	memcpy(c->out, peer_magic, PEER_MAGIC_LEN);
	memcpy(c->out + PEER_MAGIC_LEN, c->nonce, PEER_NONCE_LEN);
	rv = peer_write(c, PEER_CHALLENGE_LEN);
	if (rv == 0) {
		peer_expect(c, PEER_READ_HEADER, PEER_HEADER_LEN);
		rv = uv_read_start((uv_stream_t *)c->tcp, peer_alloc, peer_read_cb);
	}
	if (rv != 0)
		peer_fail(c, RAFT_NOCONNECTION, LOG_WARN, uv_strerror(rv));
}

/* ---- the transport libraft sees ---- */

static int peer_init(struct raft_uv_transport *transport, raft_id id, const char *address)
{
	peer_transport *t = transport->impl;

	if (strlen(address) > PEER_ADDRESS_MAX) {
		snprintf(transport->errmsg, sizeof transport->errmsg, "Raft address \"%.64s...\" is too long",
			 address);
		return RAFT_INVALID;
	}
	t->id = id;
	snprintf(t->address, sizeof t->address, "%s", address);
	return 0;
}

static int peer_listen(struct raft_uv_transport *transport, raft_uv_accept_cb cb)
{
	peer_transport *t = transport->impl;
	struct sockaddr_storage ss;
	int rv;

	t->accept_cb = cb;
	if (cfg_sockaddr(t->address, &ss) != 0) {
		snprintf(transport->errmsg, sizeof transport->errmsg,
			 "Raft address \"%.200s\" is not IP:PORT", t->address);
		return RAFT_INVALID;
	}
	uv_tcp_init(t->loop, &t->listener);
	t->listener.data = t;
	t->listener_open = true;
	rv = uv_tcp_bind(&t->listener, (struct sockaddr *)&ss, 0);
	if (rv == 0)
		rv = uv_listen((uv_stream_t *)&t->listener, PEER_BACKLOG, peer_connection_cb);
	if (rv != 0) {
		/* The listener is closed with the transport. */
		snprintf(transport->errmsg, sizeof transport->errmsg, "listen on %.160s: %s", t->address,
			 uv_strerror(rv));
		return RAFT_IOERR;
	}
	return 0;
}

static int peer_connect(struct raft_uv_transport *transport, struct raft_uv_connect *req, raft_id id,
			const char *address, raft_uv_connect_cb cb)
{
	peer_transport *t = transport->impl;
	struct sockaddr_storage ss;
	peer_conn *c;
	int rv;

	if (strlen(address) > PEER_ADDRESS_MAX || cfg_sockaddr(address, &ss) != 0) {
		snprintf(transport->errmsg, sizeof transport->errmsg,
			 "Raft address \"%.200s\" is not IP:PORT", address);
		return RAFT_NOCONNECTION;
	}
	c = peer_conn_new(t, PEER_CONNECT);
	if (c == NULL)
		return RAFT_NOMEM;
	c->peer_id = id;
	snprintf(c->address, sizeof c->address, "%s", address);
	c->req = req;
	c->cb = cb;
	c->owe_cb = true;
	/* From here on the callback fires exactly once, success or not. */
	rv = uv_tcp_connect(&c->connect, c->tcp, (struct sockaddr *)&ss, peer_connect_cb);
	if (rv != 0)
		peer_fail(c, RAFT_NOCONNECTION, LOG_DEBUG, uv_strerror(rv));
	return 0;
}

static void peer_listener_closed(uv_handle_t *h)
{
	peer_transport *t = h->data;

	t->listener_open = false;
	peer_maybe_closed(t);
}

static void peer_close(struct raft_uv_transport *transport, raft_uv_transport_close_cb cb)
{
	peer_transport *t = transport->impl;

	t->closing = true;
	t->close_cb = cb;
	/* libraft's contract: no accept callback from here on, and every
	 * pending connect request is answered RAFT_CANCELED. */
	for (peer_conn *c = t->conns; c != NULL; c = c->next)
		peer_fail(c, RAFT_CANCELED, LOG_DEBUG, NULL);
	if (t->listener_open)
		uv_close((uv_handle_t *)&t->listener, peer_listener_closed);
	else
		peer_maybe_closed(t);
}

int peer_transport_init(struct raft_uv_transport *transport, uv_loop_t *loop, const peer_secrets *s,
			char *err, size_t errlen)
{
	peer_transport *t;

	if (s->n < 1 || s->n > PEER_SECRETS_MAX)
		return err_set(err, errlen, "%d peer secrets (want 1 to %d)", s->n, PEER_SECRETS_MAX);
	t = calloc(1, sizeof *t);
	if (t == NULL)
		return err_set(err, errlen, "out of memory");
	t->outer = transport;
	t->loop = loop;
	t->secrets = *s;

	memset(transport, 0, sizeof *transport);
	transport->version = 1; /* libraft 0.22.1 refuses an unversioned transport */
	transport->impl = t;
	transport->init = peer_init;
	transport->listen = peer_listen;
	transport->connect = peer_connect;
	transport->close = peer_close;
	return 0;
}

void peer_transport_set_secrets(struct raft_uv_transport *transport, const peer_secrets *s)
{
	peer_transport *t = transport->impl;

	peer_secrets_wipe(&t->secrets);
	t->secrets = *s;
}

void peer_transport_release(struct raft_uv_transport *transport)
{
	peer_transport *t = transport->impl;

	if (t == NULL)
		return;
	peer_secrets_wipe(&t->secrets);
	free(t);
	transport->impl = NULL;
}
