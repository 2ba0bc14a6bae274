/*-------------------------------------------------------------------------
 *
 * worker_conn.c
 *		The tsoracle worker's connection to the sidecar: resolving, connecting
 *		with backoff, the handshake, reading and writing the socket; apart
 *		from worker.c, which builds the requests and hands out the grants.
 *
 * src/worker_conn.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "storage/fd.h"
#include "utils/timestamp.h"

#include "proto.h"
#include "ring.h"
#include "tls.h"
#include "tlsio.h"
#include "tsoracle.h"
#include "worker.h"
#include "worker_int.h"

/*
 * A connection lost within this long of its handshake, before it served a
 * single response, is "flapping": the backoff keeps growing and repeated
 * identical messages go to DEBUG1, so a sidecar that accepts and then
 * breaks every connection costs neither a busy loop nor a flood of logs, ms.
 */
#define WORKER_FLAP_MS				1000

static bool worker_resolve(char *err, size_t errlen);
static void worker_try_targets(void);
static void worker_start_handshake(void);
static void worker_requeue_inflight(void);
static void worker_handle(const tp_msg *m);
static bool worker_parse_frames(void);
static void worker_read_tls(void);

/* ---------------------------------------------------------------------
 * Connection
 * ---------------------------------------------------------------------
 */

/* Starts a connection attempt (the retry time has come). */
void
worker_attempt(void)
{
	char		err[RING_ERROR_LEN];

	if (!worker_parse_address(ws->address, &ws->addr, err, sizeof(err)))
	{
		/* the GUC's check hook makes this unreachable; be safe anyway */
		worker_fail("invalid tsoracle.sidecar_address \"%s\": %s",
					ws->address, err);
		return;
	}
	if (!worker_resolve(err, sizeof(err)))
	{
		worker_fail("%s", err);
		return;
	}
	/* plaintext leaves this host only over loopback (worker_tls.c) */
	if (ws->addr.kind == TP_ADDR_TCP && ws->tls_ctx == NULL &&
		!worker_tls_check_plaintext(err, sizeof(err)))
	{
		worker_fail("%s", err);
		return;
	}
	/* who could have put the socket there (worker_trust.c) */
	if (ws->addr.kind == TP_ADDR_UNIX &&
		!worker_check_socket_path(ws->addr.path, ws->sidecar_user, err,
								  sizeof(err)))
	{
		worker_fail("%s", err);
		return;
	}
	ws->target = 0;
	ws->deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
											   WORKER_HANDSHAKE_TIMEOUT_MS);
	worker_try_targets();
}

/*
 * Fills ws->targets from ws->addr. For a host name this calls getaddrinfo(),
 * which may block on DNS; it runs only when (re)connecting, and a numeric
 * address or a name in /etc/hosts resolves without network I/O.
 */
static bool
worker_resolve(char *err, size_t errlen)
{
	struct addrinfo hints;
	struct addrinfo *res;
	struct addrinfo *ai;
	int			rc;

	ws->ntargets = 0;
	if (ws->addr.kind == TP_ADDR_UNIX)
	{
		WorkerTarget *t = &ws->targets[0];
		struct sockaddr_un *sun = (struct sockaddr_un *) &t->sa;

		memset(t, 0, sizeof(*t));
		sun->sun_family = AF_UNIX;
		strlcpy(sun->sun_path, ws->addr.path, sizeof(sun->sun_path));
		t->family = AF_UNIX;
		t->len = (socklen_t) sizeof(struct sockaddr_un);
		strlcpy(t->desc, ws->addr.path, sizeof(t->desc));
		ws->ntargets = 1;
		return true;
	}

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	rc = getaddrinfo(ws->addr.host, ws->addr.port, &hints, &res);
	if (rc != 0)
	{
		snprintf(err, errlen, "could not resolve \"%s\": %s",
				 ws->addr.host, gai_strerror(rc));
		return false;
	}
	for (ai = res; ai != NULL && ws->ntargets < WORKER_MAX_TARGETS; ai = ai->ai_next)
	{
		WorkerTarget *t = &ws->targets[ws->ntargets];

		if (ai->ai_addrlen > sizeof(t->sa))
			continue;
		memset(t, 0, sizeof(*t));
		t->family = ai->ai_family;
		t->len = ai->ai_addrlen;
		memcpy(&t->sa, ai->ai_addr, ai->ai_addrlen);
		if (getnameinfo(ai->ai_addr, ai->ai_addrlen, t->desc, sizeof(t->desc),
						NULL, 0, NI_NUMERICHOST) != 0)
			strlcpy(t->desc, "?", sizeof(t->desc));
		ws->ntargets++;
	}
	freeaddrinfo(res);
	if (ws->ntargets == 0)
	{
		snprintf(err, errlen, "could not resolve \"%s\": no usable address",
				 ws->addr.host);
		return false;
	}
	return true;
}

/* Formats "connect to "address" (desc)" for the current target. */
static void
worker_target_name(char *buf, size_t len)
{
	const WorkerTarget *t = &ws->targets[ws->target];

	if (ws->addr.kind == TP_ADDR_TCP && strcmp(t->desc, ws->addr.host) != 0)
		snprintf(buf, len, "\"%s\" (%s)", ws->address, t->desc);
	else
		snprintf(buf, len, "\"%s\"", ws->address);
}

/*
 * Tries ws->targets from ws->target on: a connect that completes or is in
 * progress stops the loop; a failed one moves to the next target; when
 * none is left the attempt fails with the last error.
 */
static void
worker_try_targets(void)
{
	char		name[RING_ADDRESS_LEN + NI_MAXHOST + 8];
	char		err[RING_ERROR_LEN];

	err[0] = '\0';
	for (; ws->target < ws->ntargets; ws->target++)
	{
		const WorkerTarget *t = &ws->targets[ws->target];
		int			one = 1;
		int			save_errno;

		worker_target_name(name, sizeof(name));
		if (!AcquireExternalFD())
		{
			snprintf(err, sizeof(err), "connect to %s: %s", name,
					 "too many open files in the server process");
			break;
		}
		ws->have_external_fd = true;

		ws->sock = socket(t->family, SOCK_STREAM, 0);
		if (ws->sock == PGINVALID_SOCKET)
		{
			save_errno = errno;
			snprintf(err, sizeof(err), "could not create socket for %s: %s",
					 name, strerror(save_errno));
			worker_close();
			continue;
		}
		if (!pg_set_noblock(ws->sock) ||
			fcntl(ws->sock, F_SETFD, FD_CLOEXEC) < 0)
		{
			save_errno = errno;
			snprintf(err, sizeof(err), "could not set up socket for %s: %s",
					 name, strerror(save_errno));
			worker_close();
			continue;
		}
		if (t->family != AF_UNIX)
		{
			/* Requests are tiny and latency-bound: no Nagle delay. */
			(void) setsockopt(ws->sock, IPPROTO_TCP, TCP_NODELAY,
							  (char *) &one, sizeof(one));
			(void) setsockopt(ws->sock, SOL_SOCKET, SO_KEEPALIVE,
							  (char *) &one, sizeof(one));
		}

		if (connect(ws->sock, (const struct sockaddr *) &t->sa, t->len) == 0)
		{
			worker_start_handshake();
			return;
		}
		save_errno = errno;
		if (save_errno == EINPROGRESS || save_errno == EINTR)
		{
			ws->conn = WORKER_CONNECTING;
			ws->wes_stale = true;
			return;
		}
		/* unix sockets fail with EAGAIN when the listen backlog is full */
		snprintf(err, sizeof(err), "connect to %s: %s", name,
				 strerror(save_errno));
		worker_close();
	}
	worker_fail("%s", err);
}

/* The socket became writable while connecting: did the connect succeed? */
void
worker_finish_connect(void)
{
	int			soerr = 0;
	socklen_t	len = sizeof(soerr);

	if (getsockopt(ws->sock, SOL_SOCKET, SO_ERROR, (char *) &soerr, &len) < 0)
		soerr = errno;
	if (soerr == 0)
	{
		worker_start_handshake();
		return;
	}
	if (ws->target + 1 < ws->ntargets)
	{
		/* Keep the error for the log only if this was the last target. */
		worker_close();
		ws->target++;
		worker_try_targets();
		return;
	}
	{
		char		name[RING_ADDRESS_LEN + NI_MAXHOST + 8];

		worker_target_name(name, sizeof(name));
		worker_fail("connect to %s: %s", name, strerror(soerr));
	}
}

/*
 * Connected: queue TP_HELLO; TP_HELLO_OK moves to READY. Over TLS the hello
 * waits in outbuf until the session is up (worker_flush).
 */
static void
worker_start_handshake(void)
{
	tp_msg		m;
	size_t		n;
	char		err[RING_ERROR_LEN];

	/*
	 * Who listens on a unix socket (worker_trust.c): checked before a byte
	 * is sent or read, so nothing an untrusted process says is believed.
	 */
	if (ws->addr.kind == TP_ADDR_UNIX &&
		!worker_check_socket_peer(ws->sock, ws->addr.path, ws->sidecar_user,
								  err, sizeof(err)))
	{
		worker_fail("%s", err);
		return;
	}
	if (ws->addr.kind == TP_ADDR_TCP && ws->tls_ctx != NULL &&
		!worker_tls_begin(err, sizeof(err)))
	{
		worker_fail("%s", err);
		return;
	}

	tp_hello_init(&m);
	tp_reader_init(ws->reader);
	ws->outlen = 0;
	n = tp_encode(&m, ws->outbuf, sizeof(ws->outbuf));
	Assert(n > 0);
	ws->outlen = n;
	ws->conn = WORKER_HANDSHAKE;
	ws->wes_stale = true;
	worker_flush();
}

/* Closes the socket (if any) without touching requests or status. */
void
worker_close(void)
{
	worker_tls_end();
	if (ws->sock != PGINVALID_SOCKET)
	{
		closesocket(ws->sock);
		ws->sock = PGINVALID_SOCKET;
	}
	if (ws->have_external_fd)
	{
		ReleaseExternalFD();
		ws->have_external_fd = false;
	}
	ws->outlen = 0;
	tp_reader_init(ws->reader);
	ws->status_id = 0;			/* its answer is lost with the connection */
	if (ws->conn != WORKER_DISCONNECTED)
		worker_requeue_inflight();
	ws->conn = WORKER_DISCONNECTED;
	ws->wes_stale = true;
}

/*
 * The connection is gone: the waiters of every request in flight go back to
 * the head of the pending list, oldest request first, to be sent again on
 * the next connection.
 */
static void
worker_requeue_inflight(void)
{
	uint64		order[WORKER_MAX_INFLIGHT_LIMIT];
	int			idx[WORKER_MAX_INFLIGHT_LIMIT];
	int			n = 0;
	int			i;

	for (i = 0; i < WORKER_MAX_INFLIGHT_LIMIT; i++)
	{
		if (ws->inflight[i].in_use)
		{
			int			j = n++;

			/* insertion sort by id, i.e. by send order */
			while (j > 0 && order[j - 1] > ws->inflight[i].id)
			{
				order[j] = order[j - 1];
				idx[j] = idx[j - 1];
				j--;
			}
			order[j] = ws->inflight[i].id;
			idx[j] = i;
		}
	}
	/* prepend newest first, so that the oldest ends up at the very front */
	for (i = n - 1; i >= 0; i--)
	{
		WorkerRequest *req = &ws->inflight[idx[i]];

		/*
		 * Sending these waiters again is correct: none of their calls has
		 * returned, so a grant made after the resend is still above every
		 * grant that completed before each of those calls began.
		 */
		worker_pending_append(req->waiters, req->nwaiters, true);
		req->in_use = false;
		req->nwaiters = 0;
	}
	ws->ninflight = 0;
}

/*
 * Records a connection failure: logs it (a connect error only when it
 * differs from the last one logged), stores it for backends' error
 * messages, closes the socket, puts the waiters in flight back in the
 * pending list and schedules the next attempt with backoff.
 */
void
worker_fail(const char *fmt,...)
{
	char		msg[RING_ERROR_LEN];
	va_list		ap;
	TimestampTz now = GetCurrentTimestamp();
	bool		was_ready = ws->conn == WORKER_READY;
	bool		repeat;
	bool		flap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	repeat = strcmp(msg, ws->last_logged) == 0;
	flap = was_ready && !ws->served &&
		now < TimestampTzPlusMilliseconds(ws->ready_at, WORKER_FLAP_MS);

	if (was_ready)
		ereport((flap && repeat) ? DEBUG1 : LOG,
				(errmsg("tsoracle worker lost its connection to the sidecar: %s",
						msg),
				 errdetail("%d request(s) in flight will be sent again after reconnecting.",
						   ws->ninflight)));
	else
		ereport(repeat ? DEBUG1 : LOG,
				(errmsg("tsoracle worker could not connect to the sidecar: %s",
						msg),
				 errdetail("The worker retries every %d ms at most; this message is not repeated while the error stays the same.",
						   WORKER_BACKOFF_MAX_MS)));
	strlcpy(ws->last_logged, msg, sizeof(ws->last_logged));
	if (was_ready)
		ws->flapping = flap;

	ring_status_error(msg);
	ring_status_count(0, 0, 1);
	worker_close();
	ring_status_connected(false, ws->address);

	/* a connection that worked earns a quick retry; a flapping one not */
	if (was_ready && !flap)
		tp_backoff_reset(&ws->backoff);
	ws->retry_at = TimestampTzPlusMilliseconds(now,
											   tp_backoff_next(&ws->backoff));
}

/* ---------------------------------------------------------------------
 * I/O
 * ---------------------------------------------------------------------
 */

/*
 * Sends as much of buf[0, *len) as the socket takes, keeping the rest at
 * the front. false if the connection failed (worker_fail has run).
 */
static bool
worker_send_buffer(uint8 *buf, size_t *len)
{
	while (*len > 0)
	{
		ssize_t		n;

#ifdef MSG_NOSIGNAL
		n = send(ws->sock, buf, *len, MSG_NOSIGNAL);
#else
		n = send(ws->sock, buf, *len, 0);
#endif
		if (n > 0)
		{
			*len -= (size_t) n;
			if (*len > 0)
				memmove(buf, buf + n, *len);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return true;		/* the wait set watches for writability */
		worker_fail("write to \"%s\": %s", ws->address,
					n < 0 ? strerror(errno) : "no progress");
		return false;
	}
	return true;
}

/*
 * TLS: sends the session's ciphertext; once all of it is out (and the
 * handshake done), encrypts what waits in outbuf and sends that. Plaintext
 * is encrypted only behind an empty ciphertext backlog, so a sidecar that
 * stops reading fills outbuf, which stops worker.c from queueing more.
 */
static void
worker_flush_tls(void)
{
	for (;;)
	{
		if (ws->tls_outlen == 0)
			ws->tls_outlen = tls_conn_out_take(ws->tls, ws->tls_out,
											   sizeof(ws->tls_out));
		if (ws->tls_outlen == 0)
		{
			if (!ws->tls->established || ws->outlen == 0)
				return;
			if (tls_conn_write(ws->tls, ws->outbuf, ws->outlen) != TLS_OK)
			{
				worker_fail("TLS with \"%s\" failed: %s", ws->address,
							ws->tls->err);
				return;
			}
			ws->outlen = 0;
			continue;
		}
		if (!worker_send_buffer(ws->tls_out, &ws->tls_outlen) ||
			ws->tls_outlen > 0)
			return;
	}
}

/* Writes as much of the output as the socket takes. */
void
worker_flush(void)
{
	if (ws->tls != NULL)
		worker_flush_tls();
	else
		(void) worker_send_buffer(ws->outbuf, &ws->outlen);
}

/* Whether the output waits for the socket to become writable. */
bool
worker_want_write(void)
{
	if (ws->tls == NULL)
		return ws->outlen > 0;
	return ws->tls_outlen > 0 || tls_conn_out_pending(ws->tls) > 0 ||
		(ws->tls->established && ws->outlen > 0);
}

/*
 * A plaintext TCP connection that ends during the handshake: perhaps the
 * port speaks TLS. The hint to append to the error ("" if none).
 */
static const char *
worker_plaintext_hint(void)
{
	if (ws->addr.kind == TP_ADDR_TCP && ws->tls == NULL &&
		ws->conn == WORKER_HANDSHAKE)
		return " (if its client-tcp runs TLS, set tsoracle.tls_ca, tsoracle.tls_cert and tsoracle.tls_key)";
	return "";
}

/*
 * One recv(): the bytes read, 0 at the end of the stream, or -1 when there
 * is nothing to read now or the read failed (worker_fail has run).
 */
static ssize_t
worker_recv(void *buf, size_t cap)
{
	for (;;)
	{
		ssize_t		n = recv(ws->sock, buf, cap, 0);

		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			worker_fail("read from \"%s\": %s", ws->address, strerror(errno));
		return -1;
	}
}

/* Reads and handles everything the socket has. */
void
worker_read(void)
{
	if (ws->tls != NULL)
	{
		worker_read_tls();
		return;
	}
	for (;;)
	{
		size_t		room;
		uint8	   *space = tp_reader_space(ws->reader, &room);
		ssize_t		n;

		if (room == 0)
		{
			/* proto.h: impossible while every whole frame is taken */
			worker_fail("input buffer of the connection to \"%s\" is full",
						ws->address);
			return;
		}
		n = worker_recv(space, room);
		if (n < 0)
			return;
		if (n == 0)
		{
			worker_fail("the sidecar at \"%s\" closed the connection%s",
						ws->address, worker_plaintext_hint());
			return;
		}
		tp_reader_commit(ws->reader, (size_t) n);
		if (!worker_parse_frames())
			return;

		/* A short read drained the socket; level-triggered waits do the rest. */
		if ((size_t) n < room)
			return;
	}
}

/* Handles every whole frame in the reader. false if the connection failed. */
static bool
worker_parse_frames(void)
{
	for (;;)
	{
		tp_msg		m;
		int			rc = tp_reader_next(ws->reader, &m);

		if (rc == 0)
			return true;
		if (rc < 0)
		{
			worker_fail("malformed message from \"%s\": %s%s", ws->address,
						tp_reader_errstr(ws->reader), worker_plaintext_hint());
			return false;
		}
		worker_handle(&m);
		if (ws->conn == WORKER_DISCONNECTED)
			return false;
	}
}

/* The session failed: before TP_HELLO_OK, say which side refused whom. */
static void
worker_fail_tls(void)
{
	char		err[RING_ERROR_LEN];

	if (ws->conn == WORKER_HANDSHAKE)
	{
		worker_tls_failed(err, sizeof(err));
		worker_fail("%s", err);
	}
	else if (ws->tls->err[0] == '\0')
		worker_fail("the sidecar at \"%s\" closed the connection", ws->address);
	else
		worker_fail("TLS with \"%s\" failed: %s", ws->address, ws->tls->err);
}

/*
 * TLS: reads the ciphertext the socket has, feeds it to the session
 * (completing the handshake when it can), and handles every frame of the
 * plaintext. Each read is decrypted and parsed whole before the next, so
 * the session never holds more than one read's worth.
 */
static void
worker_read_tls(void)
{
	static uint8 cipher[WORKER_TLS_READ_SIZE];

	for (;;)
	{
		ssize_t		n = worker_recv(cipher, sizeof(cipher));
		bool		done_now;
		char		err[RING_ERROR_LEN];

		if (n < 0)
			return;
		if (n == 0)
		{
			if (ws->conn == WORKER_HANDSHAKE)
				worker_fail_tls();
			else
				worker_fail("the sidecar at \"%s\" closed the connection",
							ws->address);
			return;
		}
		if (tlsio_feed(ws->tls, cipher, (size_t) n, &done_now) == TLS_ERROR)
		{
			worker_fail_tls();
			return;
		}
		if (done_now && !worker_tls_established(err, sizeof(err)))
		{
			worker_fail("%s", err);
			return;
		}
		/* the handshake's next message, or the hello once it is done */
		worker_flush();
		if (ws->conn == WORKER_DISCONNECTED)
			return;
		for (;;)
		{
			long		moved = tlsio_pull(ws->tls, ws->reader);

			if (moved < 0)
			{
				worker_fail_tls();
				return;
			}
			if (!worker_parse_frames())
				return;
			if (moved == 0)
				break;
		}
		if ((size_t) n < sizeof(cipher))
			return;
	}
}

static void
worker_handle(const tp_msg *m)
{
	if (m->type == TP_ERROR)
	{
		worker_fail("the sidecar at \"%s\" reported %s: %s", ws->address,
					tp_status_str(m->u.error.status), m->u.error.text);
		return;
	}

	if (ws->conn == WORKER_HANDSHAKE)
	{
		if (m->type != TP_HELLO_OK)
		{
			worker_fail("protocol violation by \"%s\": message type %u during the handshake",
						ws->address, (unsigned) m->type);
			return;
		}
		if (m->u.hello_ok.version != TP_VERSION)
		{
			worker_fail("the sidecar at \"%s\" chose protocol version %u; this extension speaks %u",
						ws->address, (unsigned) m->u.hello_ok.version,
						(unsigned) TP_VERSION);
			return;
		}
		/* over TLS, the node must be the member its certificate names */
		if (ws->tls != NULL && m->u.hello_ok.node_id != ws->tls_member_id)
		{
			worker_fail("the sidecar at \"%s\" says it is node %u, but its certificate is member-%u's",
						ws->address, (unsigned) m->u.hello_ok.node_id,
						(unsigned) ws->tls_member_id);
			return;
		}
		ws->conn = WORKER_READY;
		ws->ready_at = GetCurrentTimestamp();
		ws->served = false;
		/* ask for the sidecar's status right away, then periodically */
		ws->status_id = 0;
		ws->status_due_at = ws->ready_at;
		if (!ws->flapping)
			ws->last_logged[0] = '\0';
		ring_status_connected(true, ws->address);
		ereport(ws->flapping ? DEBUG1 : LOG,
				(errmsg("tsoracle worker connected to the sidecar at \"%s\" (node %u, protocol version %u%s)",
						ws->address, (unsigned) m->u.hello_ok.node_id,
						(unsigned) m->u.hello_ok.version,
						ws->tls != NULL ? ", TLS 1.3" : "")));
		return;
	}

	Assert(ws->conn == WORKER_READY);
	if (m->type == TP_TS_RESP)
	{
		worker_handle_ts_resp(m);
		if (ws->conn == WORKER_READY)
		{
			/* a valid response: this connection works */
			ws->served = true;
			ws->flapping = false;
		}
	}
	else if (m->type == TP_STATUS_RESP)
	{
		/*
		 * Not counted as "served": a sidecar that answers the status request
		 * sent right after the handshake and then drops every connection
		 * must still be treated as flapping.
		 */
		worker_handle_status_resp(m);
	}
	else
		worker_fail("protocol violation by \"%s\": unexpected message type %u",
					ws->address, (unsigned) m->type);
}
