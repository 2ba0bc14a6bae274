/* peer.c: the Raft peer transport: TCP under mutual TLS, each member proving its own node id (see peer.h).
 *
 * Every connection, accepted or made, is a peer_conn from its first byte
 * until it closes: TCP connect (connector only), TLS handshake, the
 * exchange, and then, for the rest of its life, the relay between the TLS
 * connection and libraft's end of a socketpair.
 *
 * Memory: the TCP handle, the timer and our end of the socketpair live in
 * the peer_conn, which is freed when all of them are closed. libraft's end
 * is allocated with raft_malloc: libraft frees it with raft_free when it
 * closes the stream. Every write carries its own copy of its bytes
 * (peer_wreq), freed by its callback.
 */
#include "peer.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

#include "bytes.h"
#include "config.h"
#include "err.h"
#include "log.h"
#include "ratelog.h"
#include "tls.h"

const uint8_t peer_magic[PEER_MAGIC_LEN] = {'T', 'S', 'O', 'P', 'E', 'E', 'R', '2'};

#define PEER_BACKLOG    64
#define PEER_READ_SIZE  65536 /* bytes read from a socket at once */
#define PEER_PLAIN_SIZE 16384 /* bytes of plaintext taken from TLS at once: one record */
#define PEER_FROM_SIZE  64    /* "[IPv6]:port" of a source, for logs */

typedef struct peer_transport peer_transport;

enum peer_kind {
	PEER_ACCEPT, /* we accepted: we check the connector's claim */
	PEER_CONNECT /* we connected: we check we reached whom we meant */
};

enum peer_stage {
	PEER_TCP_CONNECT, /* connector: TCP connect under way */
	PEER_HANDSHAKE,   /* TLS handshake under way */
	PEER_EXCHANGE,    /* acceptor: reading the header; connector: reading the verdict */
	PEER_RELAY,       /* admitted: libraft has its end of the socketpair */
};

typedef struct peer_conn {
	peer_transport *t;
	LIST_ENTRY(peer_conn) link; /* in its transport's conns */
	enum peer_kind kind;
	enum peer_stage stage;
	uint64_t peer_id; /* connector: the id we dial; acceptor: the id claimed */
	uint64_t cert_id; /* acceptor: the member id in the connector's certificate */
	char address[PEER_ADDRESS_MAX + 1];
	char from[PEER_FROM_SIZE]; /* acceptor: the TCP source, for the log */
	char host[PEER_FROM_SIZE]; /* acceptor: its IP alone, to count by source */
	bool member_host;          /* acceptor: the source is a member's host */

	struct raft_uv_connect *req; /* connector: libraft's request */
	raft_uv_connect_cb cb;
	bool owe_cb; /* libraft's connect callback has not run yet */
	int status;  /* what it gets when the connection fails */

	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_pipe_t pipe; /* our end of the socketpair, in PEER_RELAY */
	uv_connect_t connect;
	bool has_tls;
	tls_conn tls;
	uint8_t hdr[PEER_HEADER_LEN + PEER_ADDRESS_MAX]; /* acceptor: the header as it arrives */
	size_t hdr_len;
	bool header_read;
	bool done;             /* failed or ending: later events are ignored */
	bool tcp_paused;       /* relay: not reading the peer while libraft's side is backed up */
	bool pipe_paused;      /* relay: not reading libraft while the peer's side is backed up */
	uint64_t heard_ms;     /* relay: the loop's time when the peer last sent bytes */
	unsigned open_handles; /* handles whose uv_close callback is still due */
} peer_conn;

struct peer_transport {
	struct raft_uv_transport *outer;
	uv_loop_t *loop;
	SSL_CTX *ctx; /* NULL: plaintext (loopback only, config.c) */
	peer_members members;
	raft_id id;
	char address[PEER_ADDRESS_MAX + 1];
	uv_tcp_t listener;
	bool listener_open; /* initialized: closed with the transport */
	bool listening;
	raft_uv_accept_cb accept_cb;
	raft_uv_transport_close_cb close_cb;
	LIST_HEAD(, peer_conn) conns; /* every peer_conn not yet freed */
	unsigned n_conns;
	bool closing;
	ratelog warn; /* refusals, rate-limited */
};

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
 * still owed an answer, and free c. */
static void peer_conn_free(peer_conn *c)
{
	peer_transport *t = c->t;

	LIST_REMOVE(c, link);
	t->n_conns--;
	if (c->owe_cb)
		c->cb(c->req, NULL, c->status);
	if (c->has_tls)
		tls_conn_free(&c->tls);
	free(c);
	peer_maybe_closed(t);
}

static void peer_handle_closed(uv_handle_t *h)
{
	peer_conn *c = h->data;

	if (--c->open_handles == 0)
		peer_conn_free(c);
}

/* Closes every handle of c; pending writes are cancelled first. */
static void peer_close_handles(peer_conn *c)
{
	uv_handle_t *hs[] = {(uv_handle_t *)&c->timer, (uv_handle_t *)&c->tcp, (uv_handle_t *)&c->pipe};

	for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++)
		if (hs[i]->data == c && !uv_is_closing(hs[i]))
			uv_close(hs[i], peer_handle_closed);
}

/* Ends the connection; libraft's connect callback, if still owed, gets
 * status. why (NULL: nothing to say) goes to the log at level, rate-limited
 * by source and reason if level is LOG_WARN. */
static void peer_fail(peer_conn *c, int status, int level, const char *why)
{
	char source[PEER_FROM_SIZE];
	char claim[PEER_ADDRESS_MAX + 64] = "";
	unsigned quieted = 0;

	if (c->done)
		return;
	c->done = true;
	c->status = status;
	if (why != NULL) {
		if (c->kind == PEER_ACCEPT)
			snprintf(source, sizeof source, "%s", c->host);
		else
			snprintf(source, sizeof source, "node %" PRIu64, c->peer_id);
		if (level == LOG_WARN)
			level = ratelog_level(&c->t->warn, uv_now(c->t->loop), source, why, &quieted);
		if (c->kind == PEER_ACCEPT && c->header_read)
			snprintf(claim, sizeof claim, " (says node %" PRIu64 " at %s)", c->peer_id,
				 c->address);
		if (c->kind == PEER_ACCEPT)
			log_printf(level, "refused a Raft connection from %s%s: %s%s", c->from, claim, why,
				   quieted > 0 ? "; more like it were logged at debug level" : "");
		else
			log_printf(level, "Raft connection to node %" PRIu64 " at %s failed: %s%s",
				   c->peer_id, c->address, why,
				   quieted > 0 ? "; more like it were logged at debug level" : "");
		if (quieted > 0)
			log_printf(level, "(%u refusals of that kind from %s since the last warning)",
				   quieted, source);
	}
	peer_close_handles(c);
}

/* An admitted connection ends (either side closed it, or the transport). */
static void peer_end(peer_conn *c, const char *why)
{
	if (c->done)
		return;
	c->done = true;
	c->status = RAFT_NOCONNECTION; /* if libraft is still owed its connect callback */
	log_debug("Raft connection %s node %" PRIu64 " closed: %s", c->kind == PEER_ACCEPT ? "from" : "to",
		  c->peer_id, why);
	peer_close_handles(c);
}

static void peer_timeout(uv_timer_t *timer)
{
	peer_conn *c = timer->data;

	if (c->stage == PEER_TCP_CONNECT)
		peer_fail(c, RAFT_NOCONNECTION, LOG_DEBUG, "TCP connect timed out");
	else if (c->kind == PEER_ACCEPT)
		peer_fail(c, RAFT_NOCONNECTION, LOG_WARN,
			  c->stage == PEER_HANDSHAKE ? "no TLS handshake in time" : "no header in time");
	else
		peer_fail(c, RAFT_NOCONNECTION, LOG_WARN,
			  c->stage == PEER_HANDSHAKE ? "no TLS handshake in time (is it a tsoracled of this "
						       "version, with TLS?)"
						     : "no verdict in time");
}

/* ---- writing ---- */

typedef struct peer_wreq {
	uv_write_t req;
	peer_conn *c;
	uint8_t data[];
} peer_wreq;

static void peer_relay_resume(peer_conn *c);
static void peer_broken(peer_conn *c, const char *why);

static void peer_write_cb(uv_write_t *w, int status)
{
	peer_wreq *r = (peer_wreq *)w;
	peer_conn *c = r->c;

	free(r);
	/* UV_ECANCELED: the connection is closing and said why. */
	if (c->done)
		return;
	if (status != 0) {
		peer_broken(c, uv_strerror(status));
		return;
	}
	peer_relay_resume(c);
}

/* A write error: an admitted connection just ends, one in the exchange
 * fails with a warning. */
static void peer_broken(peer_conn *c, const char *why)
{
	if (c->stage == PEER_RELAY)
		peer_end(c, why);
	else
		peer_fail(c, RAFT_NOCONNECTION, LOG_WARN, why);
}

/* A write request with room for len bytes; NULL after failing c. */
static peer_wreq *peer_wreq_new(peer_conn *c, size_t len)
{
	peer_wreq *r = malloc(sizeof *r + len);

	if (r == NULL)
		peer_fail(c, RAFT_NOMEM, LOG_ERROR, "out of memory");
	else
		r->c = c;
	return r;
}

/* Writes r's first len bytes to stream. 0, or -1 after failing c. */
static int peer_wreq_send(peer_conn *c, peer_wreq *r, uv_stream_t *stream, size_t len)
{
	uv_buf_t buf = uv_buf_init((char *)r->data, (unsigned)len);
	int rv = uv_write(&r->req, stream, &buf, 1, peer_write_cb);

	if (rv != 0) {
		free(r);
		peer_broken(c, uv_strerror(rv));
		return -1;
	}
	return 0;
}

/* Writes a copy of len bytes to stream. 0, or -1 after failing c. */
static int peer_write_copy(peer_conn *c, uv_stream_t *stream, const void *data, size_t len)
{
	peer_wreq *r;

	if (len == 0)
		return 0;
	if ((r = peer_wreq_new(c, len)) == NULL)
		return -1;
	memcpy(r->data, data, len);
	return peer_wreq_send(c, r, stream, len);
}

/* Sends what TLS has for the peer. 0, or -1 after failing c. */
static int peer_flush(peer_conn *c)
{
	size_t n;
	peer_wreq *r;

	if (!c->has_tls || c->done || (n = tls_conn_out_pending(&c->tls)) == 0)
		return 0;
	if ((r = peer_wreq_new(c, n)) == NULL)
		return -1;
	n = tls_conn_out_take(&c->tls, r->data, n);
	return peer_wreq_send(c, r, (uv_stream_t *)&c->tcp, n);
}

/* Sends plaintext to the peer: through TLS, or as it is. 0, or -1 after
 * failing c. */
static int peer_send(peer_conn *c, const void *data, size_t len)
{
	if (!c->has_tls)
		return peer_write_copy(c, (uv_stream_t *)&c->tcp, data, len);
	if (tls_conn_write(&c->tls, data, len) != TLS_OK) {
		peer_broken(c, c->tls.err);
		return -1;
	}
	return peer_flush(c);
}

/* ---- the relay ---- */

static void peer_raft_free_handle(uv_handle_t *h)
{
	raft_free(h);
}

static void peer_free_handle(uv_handle_t *h)
{
	free(h);
}

static uint8_t peer_read_buf[PEER_READ_SIZE]; /* consumed before each read callback returns */

static void peer_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)h;
	(void)suggested;
	buf->base = (char *)peer_read_buf;
	buf->len = sizeof peer_read_buf;
}

static void peer_tcp_read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);
static void peer_pipe_read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

/* Flow control: a side whose writes back up stops the other side's reads
 * until they drain below half the bound. */
static void peer_relay_resume(peer_conn *c)
{
	if (c->stage != PEER_RELAY || c->done)
		return;
	if (c->pipe_paused && c->tcp.write_queue_size <= PEER_RELAY_QUEUE_MAX / 2) {
		c->pipe_paused = false;
		uv_read_start((uv_stream_t *)&c->pipe, peer_alloc, peer_pipe_read_cb);
	}
	if (c->tcp_paused && c->pipe.write_queue_size <= PEER_RELAY_QUEUE_MAX / 2) {
		c->tcp_paused = false;
		uv_read_start((uv_stream_t *)&c->tcp, peer_alloc, peer_tcp_read_cb);
	}
}

/* Plaintext from the peer, for libraft. */
static void peer_to_libraft(peer_conn *c, const uint8_t *data, size_t len)
{
	if (peer_write_copy(c, (uv_stream_t *)&c->pipe, data, len) != 0)
		return;
	if (!c->tcp_paused && c->pipe.write_queue_size > PEER_RELAY_QUEUE_MAX) {
		c->tcp_paused = true;
		uv_read_stop((uv_stream_t *)&c->tcp);
	}
}

/* What libraft writes, for the peer. */
static void peer_pipe_read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	peer_conn *c = stream->data;

	if (c->done)
		return;
	if (nread < 0) {
		peer_end(c, nread == UV_EOF ? "libraft closed it" : uv_strerror((int)nread));
		return;
	}
	if (peer_send(c, buf->base, (size_t)nread) != 0)
		return;
	if (!c->pipe_paused && c->tcp.write_queue_size > PEER_RELAY_QUEUE_MAX) {
		c->pipe_paused = true;
		uv_read_stop((uv_stream_t *)&c->pipe);
	}
}

/* Admitted: libraft gets one end of a socketpair, we relay the other.
 * Returns libraft's end, or NULL after failing c. */
static uv_stream_t *peer_relay_start(peer_conn *c)
{
	uv_os_sock_t fds[2];
	uv_pipe_t *theirs;
	int rv;

	rv = uv_socketpair(SOCK_STREAM, 0, fds, UV_NONBLOCK_PIPE, UV_NONBLOCK_PIPE);
	if (rv != 0) {
		peer_fail(c, RAFT_NOCONNECTION, LOG_ERROR, uv_strerror(rv));
		return NULL;
	}
	theirs = raft_malloc(sizeof *theirs);
	if (theirs == NULL) {
		close(fds[0]);
		close(fds[1]);
		peer_fail(c, RAFT_NOMEM, LOG_ERROR, "out of memory");
		return NULL;
	}
	uv_pipe_init(c->t->loop, &c->pipe, 0);
	c->pipe.data = c;
	c->open_handles++;
	uv_pipe_init(c->t->loop, theirs, 0);
	if (uv_pipe_open(&c->pipe, fds[0]) != 0) {
		close(fds[0]);
		close(fds[1]);
		uv_close((uv_handle_t *)theirs, peer_raft_free_handle);
		peer_fail(c, RAFT_NOCONNECTION, LOG_ERROR, "uv_pipe_open failed");
		return NULL;
	}
	if (uv_pipe_open(theirs, fds[1]) != 0) {
		close(fds[1]);
		uv_close((uv_handle_t *)theirs, peer_raft_free_handle);
		peer_fail(c, RAFT_NOCONNECTION, LOG_ERROR, "uv_pipe_open failed");
		return NULL;
	}
	c->stage = PEER_RELAY;
	uv_timer_stop(&c->timer);
	rv = uv_read_start((uv_stream_t *)&c->pipe, peer_alloc, peer_pipe_read_cb);
	if (rv != 0) {
		uv_close((uv_handle_t *)theirs, peer_raft_free_handle);
		peer_end(c, uv_strerror(rv));
		return NULL;
	}
	return (uv_stream_t *)theirs;
}

/* ---- the exchange ---- */

static void peer_plain_in(peer_conn *c, const uint8_t *data, size_t len);

/* Acceptor, the whole header read: admit the connection or refuse it. */
static void peer_admit(peer_conn *c)
{
	peer_transport *t = c->t;
	uint8_t verdict = PEER_ADMITTED;
	uv_stream_t *stream;
	char why[PEER_ADDRESS_MAX + 128];

	if (c->has_tls && c->peer_id != c->cert_id) {
		snprintf(why, sizeof why, "its certificate is member-%" PRIu64 "'s, not member-%" PRIu64 "'s",
			 c->cert_id, c->peer_id);
		peer_fail(c, RAFT_NOCONNECTION, LOG_WARN, why);
		return;
	}
	if (!t->members.is_member(t->members.arg, c->peer_id)) {
		snprintf(why, sizeof why, "node %" PRIu64 " is not a member of the Raft configuration",
			 c->peer_id);
		peer_fail(c, RAFT_NOCONNECTION, LOG_WARN, why);
		return;
	}
	if (peer_send(c, &verdict, sizeof verdict) != 0)
		return;
	c->heard_ms = uv_now(t->loop);
	stream = peer_relay_start(c);
	if (stream == NULL)
		return;
	log_debug("Raft connection from %s admitted as node %" PRIu64 "%s", c->from, c->peer_id,
		  c->has_tls ? " (TLS, its member certificate)" : " (plaintext)");
	t->accept_cb(t->outer, c->peer_id, c->address, stream);
}

/* Acceptor: header bytes; returns how many of len it used. */
static size_t peer_header_in(peer_conn *c, const uint8_t *data, size_t len)
{
	size_t need = PEER_HEADER_LEN, used;

	if (c->hdr_len >= PEER_HEADER_LEN)
		need += bytes_get_u16(c->hdr + PEER_MAGIC_LEN + 8);
	used = need - c->hdr_len < len ? need - c->hdr_len : len;
	memcpy(c->hdr + c->hdr_len, data, used);
	c->hdr_len += used;
	if (c->hdr_len == PEER_HEADER_LEN && need == PEER_HEADER_LEN) {
		size_t alen = bytes_get_u16(c->hdr + PEER_MAGIC_LEN + 8);

		if (memcmp(c->hdr, peer_magic, PEER_MAGIC_LEN) != 0) {
			peer_fail(
			    c, RAFT_NOCONNECTION, LOG_WARN,
			    "it did not send a tsoracle peer header (is it a tsoracled of this version?)");
			return used;
		}
		c->peer_id = bytes_get_u64(c->hdr + PEER_MAGIC_LEN);
		if (alen == 0 || alen > PEER_ADDRESS_MAX) {
			peer_fail(c, RAFT_NOCONNECTION, LOG_WARN, "malformed header (address length)");
			return used;
		}
		return used + peer_header_in(c, data + used, len - used);
	}
	if (c->hdr_len == need && need > PEER_HEADER_LEN) {
		size_t alen = need - PEER_HEADER_LEN;

		/* A NUL inside would make libraft see another address than we logged. */
		if (memchr(c->hdr + PEER_HEADER_LEN, '\0', alen) != NULL) {
			peer_fail(c, RAFT_NOCONNECTION, LOG_WARN, "malformed address in the header");
			return used;
		}
		memcpy(c->address, c->hdr + PEER_HEADER_LEN, alen);
		c->address[alen] = '\0';
		c->header_read = true;
		peer_admit(c);
	}
	return used;
}

/* Connector: the verdict came; the stream goes to libraft. */
static void peer_connected(peer_conn *c, uint8_t verdict)
{
	uv_stream_t *stream;

	if (verdict != PEER_ADMITTED) {
		peer_fail(c, RAFT_NOCONNECTION, LOG_WARN, "unexpected verdict");
		return;
	}
	stream = peer_relay_start(c);
	if (stream == NULL)
		return;
	log_debug("Raft connection to node %" PRIu64 " at %s admitted%s", c->peer_id, c->address,
		  c->has_tls ? " (TLS, its member certificate checked)" : " (plaintext)");
	c->owe_cb = false;
	c->cb(c->req, stream, 0);
}

/* Plaintext from the peer, whatever the stage. */
static void peer_plain_in(peer_conn *c, const uint8_t *data, size_t len)
{
	while (len > 0 && !c->done) {
		size_t used;

		if (c->stage == PEER_RELAY) {
			peer_to_libraft(c, data, len);
			return;
		}
		if (c->kind == PEER_ACCEPT) {
			used = peer_header_in(c, data, len);
		} else {
			used = 1;
			peer_connected(c, data[0]);
		}
		data += used;
		len -= used;
	}
}

/* Connector: sends the header, then waits for the verdict. */
static void peer_send_header(peer_conn *c)
{
	peer_transport *t = c->t;
	uint8_t hdr[PEER_HEADER_LEN + PEER_ADDRESS_MAX];
	size_t alen = strlen(t->address);

	memcpy(hdr, peer_magic, PEER_MAGIC_LEN);
	bytes_put_u64(hdr + PEER_MAGIC_LEN, t->id);
	bytes_put_u16(hdr + PEER_MAGIC_LEN + 8, (uint16_t)alen);
	memcpy(hdr + PEER_HEADER_LEN, t->address, alen);
	c->stage = PEER_EXCHANGE;
	peer_send(c, hdr, PEER_HEADER_LEN + alen);
}

/* The handshake is done: is the other side who it must be? */
static void peer_handshake_done(peer_conn *c)
{
	tls_identity id;
	char why[TLS_ERR_SIZE + TLS_NAME_MAX];

	tls_conn_peer(&c->tls, &id);
	/* Started before a reload: it must pass what was read since, too. */
	if (SSL_get_SSL_CTX(c->tls.ssl) != c->t->ctx &&
	    tls_conn_reverify(&c->tls, c->t->ctx, why, sizeof why) != 0) {
		peer_fail(c, RAFT_NOCONNECTION, LOG_WARN, why);
		return;
	}
	if (id.role != TLS_ROLE_MEMBER) {
		snprintf(why, sizeof why,
			 "its certificate (CN=%s, role %s) is not a member certificate (OU=member, "
			 "CN=member-<id>)",
			 id.cn, tls_role_name(id.role));
		peer_fail(c, RAFT_NOCONNECTION, LOG_WARN, why);
		return;
	}
	if (c->kind == PEER_ACCEPT) {
		c->cert_id = id.member_id;
		c->stage = PEER_EXCHANGE;
		return;
	}
	if (id.member_id != c->peer_id) {
		snprintf(why, sizeof why,
			 "it answers with member-%" PRIu64 "'s certificate, not member-%" PRIu64 "'s",
			 id.member_id, c->peer_id);
		peer_fail(c, RAFT_NOCONNECTION, LOG_WARN, why);
		return;
	}
	peer_send_header(c);
}

static void peer_tcp_read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	static uint8_t plain[PEER_PLAIN_SIZE];
	peer_conn *c = stream->data;
	size_t n;
	int r = TLS_AGAIN; /* (read only after a TLS call set it; the compiler cannot tell) */

	if (c->done)
		return;
	if (nread < 0) {
		const char *why = nread == UV_EOF ? "it closed the connection" : uv_strerror((int)nread);

		if (c->stage == PEER_RELAY)
			peer_end(c, why);
		else
			peer_fail(c, RAFT_NOCONNECTION,
				  c->kind == PEER_ACCEPT || c->stage == PEER_EXCHANGE ? LOG_WARN : LOG_DEBUG,
				  c->kind == PEER_CONNECT && c->stage == PEER_EXCHANGE
				      ? "it closed the connection instead of admitting us (its log says why)"
				      : why);
		return;
	}
	if (c->stage == PEER_RELAY)
		c->heard_ms = uv_now(c->t->loop);
	if (!c->has_tls) {
		peer_plain_in(c, (const uint8_t *)buf->base, (size_t)nread);
		return;
	}
	if (tls_conn_feed(&c->tls, buf->base, (size_t)nread) != TLS_OK) {
		peer_fail(c, RAFT_NOMEM, LOG_ERROR, c->tls.err);
		return;
	}
	if (c->stage == PEER_HANDSHAKE) {
		r = tls_conn_handshake(&c->tls);
		/* Out first: our next flight, or the alert that tells the peer why. */
		if (peer_flush(c) != 0)
			return;
		if (r == TLS_AGAIN)
			return;
		if (r == TLS_ERROR) {
			peer_fail(c, RAFT_NOCONNECTION, LOG_WARN, c->tls.err);
			return;
		}
		peer_handshake_done(c);
	}
	while (!c->done && (r = tls_conn_read(&c->tls, plain, sizeof plain, &n)) == TLS_OK)
		peer_plain_in(c, plain, n);
	if (c->done)
		return;
	if (peer_flush(c) != 0)
		return;
	if (r == TLS_CLOSED && c->stage == PEER_RELAY)
		peer_end(c, "it closed the TLS session");
	else if (r == TLS_CLOSED)
		peer_fail(c, RAFT_NOCONNECTION, LOG_WARN, "it closed the TLS session during the exchange");
	else if (r == TLS_ERROR && c->stage == PEER_RELAY)
		peer_end(c, c->tls.err);
	else if (r == TLS_ERROR && c->kind == PEER_CONNECT) {
		/* TLS 1.3: a server refuses our certificate after our side of
		 * the handshake is done; its alert arrives here. */
		char why[TLS_ERR_SIZE + 32];

		snprintf(why, sizeof why, "it refused us (%s)", c->tls.err);
		peer_fail(c, RAFT_NOCONNECTION, LOG_WARN, why);
	} else if (r == TLS_ERROR)
		peer_fail(c, RAFT_NOCONNECTION, LOG_WARN, c->tls.err);
}

/* ---- connections ---- */

static peer_conn *peer_conn_new(peer_transport *t, enum peer_kind kind, char *err, size_t errlen)
{
	peer_conn *c = calloc(1, sizeof *c);

	if (c == NULL) {
		err_set(err, errlen, "out of memory");
		return NULL;
	}
	if (t->ctx != NULL) {
		if (tls_conn_init(&c->tls, t->ctx, kind == PEER_ACCEPT, err, errlen) != 0) {
			free(c);
			return NULL;
		}
		c->has_tls = true;
	}
	c->t = t;
	c->kind = kind;
	c->stage = kind == PEER_CONNECT ? PEER_TCP_CONNECT : c->has_tls ? PEER_HANDSHAKE : PEER_EXCHANGE;
	uv_tcp_init(t->loop, &c->tcp);
	c->tcp.data = c;
	uv_timer_init(t->loop, &c->timer);
	c->timer.data = c;
	c->open_handles = 2;
	c->connect.data = c;
	LIST_INSERT_HEAD(&t->conns, c, link);
	t->n_conns++;
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

	uv_tcp_nodelay(&c->tcp, 1);
	if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
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
	/* Connected: the handshake and exchange get their own, longer, bound. */
	uv_timer_start(&c->timer, peer_timeout, PEER_TIMEOUT_MS, 0);
	status = uv_read_start((uv_stream_t *)&c->tcp, peer_alloc, peer_tcp_read_cb);
	if (status != 0) {
		peer_fail(c, RAFT_NOCONNECTION, LOG_WARN, uv_strerror(status));
		return;
	}
	if (!c->has_tls) {
		peer_send_header(c);
		return;
	}
	c->stage = PEER_HANDSHAKE;
	if (tls_conn_handshake(&c->tls) == TLS_ERROR) {
		peer_fail(c, RAFT_NOCONNECTION, LOG_WARN, c->tls.err);
		return;
	}
	peer_flush(c); /* the ClientHello */
}

/* c's TCP source, for the log and the gate. */
static void peer_describe_source(peer_conn *c)
{
	peer_transport *t = c->t;
	struct sockaddr_storage ss;
	int len = sizeof ss;
	char host[INET6_ADDRSTRLEN];

	snprintf(c->from, sizeof c->from, "an unknown address");
	snprintf(c->host, sizeof c->host, "?");
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0)
		return;
	if (ss.ss_family == AF_INET && uv_ip4_name((struct sockaddr_in *)&ss, host, sizeof host) == 0) {
		snprintf(c->from, sizeof c->from, "%s:%u", host,
			 ntohs(((struct sockaddr_in *)&ss)->sin_port));
		snprintf(c->host, sizeof c->host, "%s", host);
	} else if (ss.ss_family == AF_INET6 &&
		   uv_ip6_name((struct sockaddr_in6 *)&ss, host, sizeof host) == 0) {
		snprintf(c->from, sizeof c->from, "[%s]:%u", host,
			 ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
		snprintf(c->host, sizeof c->host, "%s", host);
	}
	c->member_host = t->members.is_member_host(t->members.arg, (struct sockaddr *)&ss);
}

/* The gate (peer.h, peer_gate.c): NULL to let c into the handshake, else
 * why not. Counts the accepted connections still before the relay. */
static const char *peer_gate(peer_conn *c, char *why, size_t whylen)
{
	peer_pending p = {0, 0, 0};

	for (peer_conn *o = LIST_FIRST(&c->t->conns); o != NULL; o = LIST_NEXT(o, link)) {
		if (o == c || o->kind != PEER_ACCEPT || o->done || o->stage == PEER_RELAY)
			continue;
		p.all++;
		p.same_source += strcmp(o->host, c->host) == 0;
		p.strangers += !o->member_host;
	}
	return peer_gate_judge(&p, c->member_host, c->host, why, whylen);
}

static void peer_connection_cb(uv_stream_t *listener, int status)
{
	peer_transport *t = listener->data;
	char err[TLS_ERR_SIZE], why[160];
	peer_conn *c;
	int rv;

	if (status != 0) {
		log_warn("accepting a Raft connection: %s", uv_strerror(status));
		return;
	}
	if (t->closing)
		return;
	c = peer_conn_new(t, PEER_ACCEPT, err, sizeof err);
	if (c == NULL) {
		/* Left in the backlog, it would wake us again at once. */
		uv_tcp_t *drop = malloc(sizeof *drop);

		log_error("accepting a Raft connection: %s", err);
		if (drop == NULL)
			return;
		uv_tcp_init(t->loop, drop);
		(void)uv_accept(listener, (uv_stream_t *)drop);
		uv_close((uv_handle_t *)drop, peer_free_handle);
		return;
	}
	rv = uv_accept(listener, (uv_stream_t *)&c->tcp);
	if (rv != 0) {
		peer_fail(c, RAFT_NOCONNECTION, LOG_WARN, uv_strerror(rv));
		return;
	}
	peer_describe_source(c);
	if (peer_gate(c, why, sizeof why) != NULL) {
		peer_fail(c, RAFT_NOCONNECTION, LOG_WARN, why);
		return;
	}
	peer_tune(c);
	rv = uv_read_start((uv_stream_t *)&c->tcp, peer_alloc, peer_tcp_read_cb);
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

/* Binds and listens on this node's Raft address. */
static int peer_open_listener(peer_transport *t, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	int rv;

	if (t->listening)
		return 0;
	if (cfg_sockaddr(t->address, &ss) != 0)
		return err_set(err, errlen, "Raft address \"%.200s\" is not IP:PORT", t->address);
	if (!t->listener_open) {
		uv_tcp_init(t->loop, &t->listener);
		t->listener.data = t;
		t->listener_open = true;
	}
	rv = uv_tcp_bind(&t->listener, (struct sockaddr *)&ss, 0);
	if (rv == 0)
		rv = uv_listen((uv_stream_t *)&t->listener, PEER_BACKLOG, peer_connection_cb);
	if (rv != 0)
		return err_set(err, errlen, "listen on %.160s: %s", t->address, uv_strerror(rv));
	t->listening = true;
	log_info("Raft peers reach this node at %s (%s)", t->address,
		 t->ctx != NULL ? "TLS, member certificates" : "plaintext: loopback only");
	return 0;
}

static int peer_listen(struct raft_uv_transport *transport, raft_uv_accept_cb cb)
{
	peer_transport *t = transport->impl;

	t->accept_cb = cb;
	/* libraft restores the configuration before it starts its I/O, so
	 * this is the configuration the node starts with (peer.h: why a lone
	 * member needs no port). */
	if (!t->members.has_others(t->members.arg)) {
		log_info("this node is the only member of its Raft configuration: no Raft port is opened");
		return 0;
	}
	if (peer_open_listener(t, transport->errmsg, sizeof transport->errmsg) != 0)
		return RAFT_IOERR;
	return 0;
}

static int peer_connect(struct raft_uv_transport *transport, struct raft_uv_connect *req, raft_id id,
			const char *address, raft_uv_connect_cb cb)
{
	peer_transport *t = transport->impl;
	struct sockaddr_storage ss;
	char err[TLS_ERR_SIZE];
	peer_conn *c;
	int rv;

	/* The configuration's address is "RAFT_IP:PORT/CLIENT_IP:PORT"
	 * (cfg_member_raft_address): dial the Raft part. */
	if (strlen(address) > PEER_ADDRESS_MAX || cfg_member_raft_address(address, &ss) != 0) {
		snprintf(transport->errmsg, sizeof transport->errmsg,
			 "Raft address \"%.200s\" is not IP:PORT", address);
		return RAFT_NOCONNECTION;
	}
	/* A configuration that grew from this node alone: its new member
	 * answers on a connection of its own, to our listener. */
	if (!t->listening && t->accept_cb != NULL && peer_open_listener(t, err, sizeof err) != 0)
		log_error("%s", err);
	c = peer_conn_new(t, PEER_CONNECT, err, sizeof err);
	if (c == NULL) {
		snprintf(transport->errmsg, sizeof transport->errmsg, "%s", err);
		return RAFT_NOMEM;
	}
	c->peer_id = id;
	snprintf(c->address, sizeof c->address, "%s", address);
	c->req = req;
	c->cb = cb;
	c->owe_cb = true;
	/* From here on the callback fires exactly once, success or not. */
	rv = uv_tcp_connect(&c->connect, &c->tcp, (struct sockaddr *)&ss, peer_connect_cb);
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
	for (peer_conn *c = LIST_FIRST(&t->conns); c != NULL; c = LIST_NEXT(c, link)) {
		if (c->stage == PEER_RELAY)
			peer_end(c, "the transport closes");
		else
			peer_fail(c, RAFT_CANCELED, LOG_DEBUG, NULL);
	}
	if (t->listener_open)
		uv_close((uv_handle_t *)&t->listener, peer_listener_closed);
	else
		peer_maybe_closed(t);
}

int peer_transport_init(struct raft_uv_transport *transport, uv_loop_t *loop, SSL_CTX *ctx,
			const peer_members *members, char *err, size_t errlen)
{
	peer_transport *t = calloc(1, sizeof *t);

	if (t == NULL)
		return err_set(err, errlen, "out of memory");
	t->outer = transport;
	t->loop = loop;
	LIST_INIT(&t->conns);
	ratelog_init(&t->warn, "Raft connections", PEER_WARN_INTERVAL_MS);
	t->ctx = ctx;
	t->members = *members;

	memset(transport, 0, sizeof *transport);
	transport->version = 1; /* libraft 0.22.1 refuses an unversioned transport */
	transport->impl = t;
	transport->init = peer_init;
	transport->listen = peer_listen;
	transport->connect = peer_connect;
	transport->close = peer_close;
	return 0;
}

void peer_transport_set_ctx(struct raft_uv_transport *transport, SSL_CTX *ctx)
{
	peer_transport *t = transport->impl;
	char why[TLS_ERR_SIZE + 64];

	SSL_CTX_free(t->ctx); /* open connections hold their own references */
	t->ctx = ctx;
	/* A connection admitted before is checked again against what was just
	 * read: a revoked certificate, or one of a CA no longer trusted, is cut
	 * off now rather than whenever the connection happens to end. The rest
	 * stay up (Raft keeps going through a rotation). */
	for (peer_conn *c = LIST_FIRST(&t->conns); c != NULL; c = LIST_NEXT(c, link)) {
		char err[TLS_ERR_SIZE];

		if (c->done || c->stage != PEER_RELAY || !c->has_tls ||
		    tls_conn_reverify(&c->tls, ctx, err, sizeof err) == 0)
			continue;
		snprintf(why, sizeof why, "%s (after the reload)", err);
		log_warn("closing the Raft connection %s node %" PRIu64 ": %s",
			 c->kind == PEER_ACCEPT ? "from" : "to", c->peer_id, why);
		peer_end(c, why);
	}
}

unsigned peer_transport_connections(struct raft_uv_transport *transport)
{
	peer_transport *t = transport->impl;
	unsigned n = 0;

	if (t == NULL)
		return 0;
	for (peer_conn *c = LIST_FIRST(&t->conns); c != NULL; c = LIST_NEXT(c, link))
		if (c->stage == PEER_RELAY && !c->done)
			n++;
	return n;
}

void peer_transport_release(struct raft_uv_transport *transport)
{
	peer_transport *t = transport->impl;

	if (t == NULL)
		return;
	SSL_CTX_free(t->ctx);
	free(t);
	transport->impl = NULL;
}

uint64_t peer_transport_heard(struct raft_uv_transport *transport, uint64_t id)
{
	peer_transport *t = transport->impl;
	uint64_t heard = 0;

	for (peer_conn *c = LIST_FIRST(&t->conns); c != NULL; c = LIST_NEXT(c, link))
		if (!c->done && c->stage == PEER_RELAY && c->peer_id == id && c->heard_ms > heard)
			heard = c->heard_ms;
	return heard;
}

unsigned peer_transport_prune(struct raft_uv_transport *transport)
{
	peer_transport *t = transport->impl;
	unsigned closed = 0;
	char why[PEER_FROM_SIZE + 64];

	/* A member the configuration no longer holds is cut off in both
	 * directions: libraft would stop writing to it, but its own
	 * connections to us would stay up until they broke. */
	for (peer_conn *c = LIST_FIRST(&t->conns); c != NULL; c = LIST_NEXT(c, link)) {
		if (c->done || c->stage != PEER_RELAY || t->members.is_member(t->members.arg, c->peer_id))
			continue;
		snprintf(why, sizeof why, "node %" PRIu64 " is no longer a member of the Raft configuration",
			 c->peer_id);
		log_info("closing the Raft connection %s node %" PRIu64 ": %s",
			 c->kind == PEER_ACCEPT ? "from" : "to", c->peer_id, why);
		peer_end(c, why);
		closed++;
	}
	return closed;
}
