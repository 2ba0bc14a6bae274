/* forward.c: a follower's one connection to the leader, carrying its clients' coalesced requests. */
#include "forward.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "tlsio.h"

/* Reconnecting to the leader (common/backoff.h), ms. */
#define FWD_BACKOFF_MIN_MS 20
#define FWD_BACKOFF_MAX_MS 1000
#define FWD_TLS_READ_SIZE  16384 /* bytes of ciphertext read at once */

static void fwd_connect(fwd *f);
static void fwd_drop(fwd *f, const char *why);

static void fwd_retry_cb(uv_timer_t *t)
{
	fwd *f = t->data;

	if (f->state == FWD_IDLE && f->target_id != 0 && !f->closed)
		fwd_connect(f);
}

static void fwd_schedule_retry(fwd *f)
{
	if (f->closed || f->target_id == 0)
		return;
	uv_timer_start(&f->retry, fwd_retry_cb, tp_backoff_next(&f->backoff), 0);
}

static void fwd_tls_free(fwd *f)
{
	if (f->tls != NULL) {
		tls_conn_free(f->tls);
		free(f->tls);
		f->tls = NULL;
	}
}

static void fwd_tcp_closed(uv_handle_t *h)
{
	fwd *f = h->data;

	ob_free(&f->ob);
	fwd_tls_free(f);
	f->state = FWD_IDLE;
	if (f->closed) {
		if (--f->closing_handles == 0 && f->close_cb != NULL)
			f->close_cb(f);
		return;
	}
	if (f->target_id != 0)
		fwd_schedule_retry(f);
}

/* Drops the connection: batches in flight are void, the server re-sends. */
static void fwd_drop(fwd *f, const char *why)
{
	if (f->state == FWD_IDLE || f->state == FWD_CLOSING)
		return;
	/* A connection that never got ready is a retry: log it quietly. */
	if (why != NULL)
		log_printf(f->state == FWD_READY && !f->probe ? LOG_INFO : LOG_DEBUG,
			   "%s connection to node %" PRIu64 " (%s) dropped: %s",
			   f->probe ? "clock probe" : "forwarding", f->target_id, f->target_addr, why);
	f->state = FWD_CLOSING;
	f->inflight = 0;
	f->clock_sent_id = 0;
	memset(f->sent_id, 0, sizeof f->sent_id);
	uv_close((uv_handle_t *)&f->tcp, fwd_tcp_closed);
	if (!f->closed)
		f->reset_cb(f->arg);
}

static void fwd_flush(fwd *f)
{
	int rv = ob_flush(&f->ob, (uv_stream_t *)&f->tcp);

	if (rv != 0)
		fwd_drop(f, rv == UV_EPROTO && f->tls != NULL ? f->tls->err : uv_strerror(rv));
}

/* The slot of batch id in flight (id 0: a free slot), or -1. */
static int fwd_sent_slot(const fwd *f, uint64_t id)
{
	for (int i = 0; i < FWD_MAX_INFLIGHT; i++)
		if (f->sent_id[i] == id)
			return i;
	return -1;
}

/*
 * A timestamp answer from the leader: only for a batch in flight, and a
 * grant of exactly the count asked. Anything else is a broken or foreign
 * connection (a grant the server would split among requests it was not
 * made for): the connection is dropped and the batches are sent again.
 */
static void fwd_handle_ts(fwd *f, const tp_msg *m)
{
	char why[128];
	int slot = m->u.ts_resp.id != 0 ? fwd_sent_slot(f, m->u.ts_resp.id) : -1;
	uint32_t asked;

	if (f->state != FWD_READY || slot < 0) {
		snprintf(why, sizeof why, "an answer for batch %" PRIu64 ", which is not in flight",
			 m->u.ts_resp.id);
		fwd_drop(f, why);
		return;
	}
	asked = f->sent_count[slot];
	if (m->u.ts_resp.status == TP_OK && m->u.ts_resp.count != asked) {
		snprintf(why, sizeof why,
			 "a grant of %" PRIu32 " timestamps for batch %" PRIu64 " of %" PRIu32,
			 m->u.ts_resp.count, m->u.ts_resp.id, asked);
		fwd_drop(f, why);
		return;
	}
	f->sent_id[slot] = 0;
	f->inflight--;
	f->grant_cb(f->arg, m->u.ts_resp.id, m->u.ts_resp.status, m->u.ts_resp.first, m->u.ts_resp.count);
}

/* A clock answer: only for the request in flight on a probe. */
static void fwd_handle_clock(fwd *f, const tp_msg *m)
{
	uint64_t sent = f->clock_sent_mono;

	if (!f->probe || f->state != FWD_READY || m->u.clock_resp.id == 0 ||
	    m->u.clock_resp.id != f->clock_sent_id) {
		fwd_drop(f, "a clock answer that was not asked for");
		return;
	}
	f->clock_sent_id = 0;
	if (m->u.clock_resp.status == TP_OK)
		f->clock_cb(f->arg, f->target_id, m->u.clock_resp.wall_ms, sent, clock_mono_ms());
}

static void fwd_written(outbuf *ob, int status)
{
	fwd *f = ob->data;

	if (status != 0) {
		if (status != UV_ECANCELED)
			fwd_drop(f, uv_strerror(status));
		return;
	}
	if (f->state == FWD_READY || f->state == FWD_HANDSHAKE)
		fwd_flush(f);
}

static void fwd_handle(fwd *f, const tp_msg *m)
{
	switch (m->type) {
	case TP_HELLO_OK:
		if (f->state != FWD_HANDSHAKE) {
			fwd_drop(f, "unexpected hello answer");
			return;
		}
		if (m->u.hello_ok.node_id != f->target_id) {
			char why[CFG_ADDR_SIZE + 64];

			snprintf(why, sizeof why, "%s is node %" PRIu32 ", not node %" PRIu64, f->target_addr,
				 m->u.hello_ok.node_id, f->target_id);
			fwd_drop(f, why);
			return;
		}
		f->state = FWD_READY;
		tp_backoff_reset(&f->backoff);
		if (f->probe)
			log_debug("measuring node %" PRIu64 "'s clock at %s", f->target_id, f->target_addr);
		else
			log_info("forwarding to the leader, node %" PRIu64 " at %s", f->target_id,
				 f->target_addr);
		f->ready_cb(f->arg);
		return;
	case TP_TS_RESP:
		fwd_handle_ts(f, m);
		return;
	case TP_CLOCK_RESP:
		fwd_handle_clock(f, m);
		return;
	case TP_ERROR:
		fwd_drop(f, m->u.error.text);
		return;
	default:
		fwd_drop(f, "unexpected message type");
		return;
	}
}

static void fwd_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	static uint8_t cipher[FWD_TLS_READ_SIZE]; /* fed to the session at once: one loop, one read */
	fwd *f = h->data;
	size_t len;
	uint8_t *p = tlsio_read_space(f->tls, &f->reader, cipher, sizeof cipher, &len);

	(void)suggested;
	*buf = uv_buf_init((char *)p, (unsigned)len);
}

/* Starts the client protocol: the hello. */
static void fwd_send_hello(fwd *f)
{
	tp_msg m;

	tp_hello_init(&m);
	if (ob_append(&f->ob, &m) != 0) {
		fwd_drop(f, "out of memory");
		return;
	}
	fwd_flush(f);
}

/* Ciphertext from the leader: the handshake (then the leader's identity
 * and the hello), or plaintext into the reader. 0, or -1 if dropped. */
static int fwd_tls_input(fwd *f, const uv_buf_t *buf, size_t len)
{
	tls_identity id;
	bool done_now;
	int rc = tlsio_feed(f->tls, buf->base, len, &done_now);

	fwd_flush(f); /* the handshake's next message, or the alert that says why */
	if (rc == TLS_ERROR) {
		fwd_drop(f, f->tls->err);
		return -1;
	}
	if (f->state != FWD_HANDSHAKE && f->state != FWD_READY)
		return -1;
	if (done_now) {
		tls_conn_peer(f->tls, &id);
		if (id.role != TLS_ROLE_MEMBER || id.member_id != f->target_id) {
			char why[160];

			snprintf(why, sizeof why,
				 "its certificate is CN=%s (role %s), not member-%" PRIu64 "'s (OU=member)",
				 id.cn, tls_role_name(id.role), f->target_id);
			fwd_drop(f, why);
			return -1;
		}
		fwd_send_hello(f);
	}
	if (tlsio_pull(f->tls, &f->reader) < 0) {
		fwd_drop(f, f->tls->err[0] != '\0' ? f->tls->err : "closed by the leader");
		return -1;
	}
	return 0;
}

static void fwd_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	fwd *f = s->data;
	tp_msg m;
	int rc;

	if (nread == 0)
		return;
	if (nread < 0) {
		fwd_drop(f, nread == UV_EOF ? "closed by the leader" : uv_strerror((int)nread));
		return;
	}
	if (f->tls != NULL) {
		if (fwd_tls_input(f, buf, (size_t)nread) != 0)
			return;
	} else {
		tp_reader_commit(&f->reader, (size_t)nread);
	}
	while (f->state == FWD_READY || f->state == FWD_HANDSHAKE) {
		rc = tp_reader_next(&f->reader, &m);
		if (rc == 0 && f->tls != NULL && tlsio_pull(f->tls, &f->reader) > 0)
			continue; /* more plaintext than the reader held */
		if (rc == 0)
			break;
		if (rc < 0) {
			fwd_drop(f, tp_reader_errstr(&f->reader));
			return;
		}
		fwd_handle(f, &m);
	}
}

static void fwd_connect_cb(uv_connect_t *req, int status)
{
	fwd *f = req->data;
	int rv;

	if (f->state != FWD_CONNECTING)
		return;
	if (status != 0) {
		fwd_drop(f, uv_strerror(status));
		return;
	}
	uv_tcp_nodelay(&f->tcp, 1);
	f->state = FWD_HANDSHAKE;
	rv = uv_read_start((uv_stream_t *)&f->tcp, fwd_alloc_cb, fwd_read_cb);
	if (rv != 0) {
		fwd_drop(f, uv_strerror(rv));
		return;
	}
	if (f->tls == NULL) {
		fwd_send_hello(f);
		return;
	}
	/* TLS: the ClientHello; the hello follows the handshake. */
	if (tls_conn_handshake(f->tls) == TLS_ERROR) {
		fwd_drop(f, f->tls->err);
		return;
	}
	fwd_flush(f);
}

static void fwd_connect(fwd *f)
{
	struct sockaddr_storage ss;
	int rv;

	if (cfg_sockaddr(f->target_addr, &ss) != 0) {
		log_error("forwarding: bad leader address %s", f->target_addr);
		return;
	}
	tp_reader_init(&f->reader);
	ob_init(&f->ob, fwd_written, f);
	if (f->ctx != NULL) {
		char err[TLS_ERR_SIZE];

		f->tls = calloc(1, sizeof *f->tls);
		if (f->tls == NULL || tls_conn_init(f->tls, f->ctx, false, err, sizeof err) != 0) {
			log_error("forwarding: %s", f->tls == NULL ? "out of memory for TLS" : err);
			free(f->tls);
			f->tls = NULL;
			fwd_schedule_retry(f); /* out of memory or descriptors may pass */
			return;
		}
		ob_set_tls(&f->ob, f->tls);
	}
	rv = uv_tcp_init(f->loop, &f->tcp);
	if (rv != 0) {
		log_error("forwarding: uv_tcp_init: %s", uv_strerror(rv));
		fwd_tls_free(f);
		fwd_schedule_retry(f); /* e.g. EMFILE: try again after the backoff */
		return;
	}
	f->tcp.data = f;
	f->connect_req.data = f;
	f->state = FWD_CONNECTING;
	rv = uv_tcp_connect(&f->connect_req, &f->tcp, (struct sockaddr *)&ss, fwd_connect_cb);
	if (rv != 0)
		fwd_drop(f, uv_strerror(rv));
}

int fwd_init(fwd *f, uv_loop_t *loop, const cfg *c, fwd_grant_cb grant_cb, fwd_reset_cb reset_cb,
	     fwd_ready_cb ready_cb, void *arg)
{
	memset(f, 0, sizeof *f);
	f->loop = loop;
	f->cfg = c;
	f->grant_cb = grant_cb;
	f->reset_cb = reset_cb;
	f->ready_cb = ready_cb;
	f->arg = arg;
	tp_backoff_init(&f->backoff, FWD_BACKOFF_MIN_MS, FWD_BACKOFF_MAX_MS);
	f->next_batch = 1;
	f->retry.data = f;
	return uv_timer_init(loop, &f->retry);
}

void fwd_set_ctx(fwd *f, SSL_CTX *ctx)
{
	char err[TLS_ERR_SIZE], why[TLS_ERR_SIZE + 32];

	if (ctx != NULL)
		SSL_CTX_up_ref(ctx);
	SSL_CTX_free(f->ctx);
	f->ctx = ctx;
	/* A leader whose certificate the reloaded files no longer accept: the
	 * connection ends, and the next one is made with them. */
	if (ctx != NULL && f->tls != NULL && f->tls->established &&
	    (f->state == FWD_HANDSHAKE || f->state == FWD_READY) &&
	    tls_conn_reverify(f->tls, ctx, err, sizeof err) != 0) {
		snprintf(why, sizeof why, "%s (after the reload)", err);
		fwd_drop(f, why);
	}
}

void fwd_set_target(fwd *f, uint64_t leader_id, const char *addr)
{
	if (f->closed || leader_id == f->target_id)
		return;
	fwd_drop(f, "the leader changed");
	uv_timer_stop(&f->retry);
	f->target_id = 0;
	f->target_addr[0] = '\0';
	tp_backoff_reset(&f->backoff);
	if (leader_id == 0)
		return;
	if (addr == NULL || addr[0] == '\0') {
		log_warn("leader %" PRIu64 " has no client address in the Raft configuration nor in peers: "
			 "cannot forward",
			 leader_id);
		return;
	}
	f->target_id = leader_id;
	snprintf(f->target_addr, sizeof f->target_addr, "%s", addr);
	if (f->state == FWD_IDLE)
		fwd_connect(f);
	/* else: the close callback of the old connection schedules the retry */
}

bool fwd_can_send(const fwd *f)
{
	return f->state == FWD_READY && f->inflight < FWD_MAX_INFLIGHT;
}

uint64_t fwd_send(fwd *f, uint32_t count)
{
	tp_msg m;

	if (!fwd_can_send(f))
		return 0;
	int slot = fwd_sent_slot(f, 0); /* free: inflight < FWD_MAX_INFLIGHT */

	m.type = TP_TS_REQ;
	m.u.ts_req.id = f->next_batch++;
	m.u.ts_req.count = count;
	if (slot < 0 || ob_append(&f->ob, &m) != 0)
		return 0;
	f->inflight++;
	f->sent_id[slot] = m.u.ts_req.id;
	f->sent_count[slot] = count;
	fwd_flush(f);
	return f->state == FWD_READY ? m.u.ts_req.id : 0;
}

static void fwd_retry_closed(uv_handle_t *h)
{
	fwd *f = h->data;

	if (--f->closing_handles == 0 && f->close_cb != NULL)
		f->close_cb(f);
}

void fwd_close(fwd *f, void (*cb)(fwd *f))
{
	f->closed = true;
	f->close_cb = cb;
	fwd_set_ctx(f, NULL);
	f->closing_handles = 1;
	uv_close((uv_handle_t *)&f->retry, fwd_retry_closed);
	if (f->state != FWD_IDLE && f->state != FWD_CLOSING) {
		f->closing_handles++;
		fwd_drop(f, NULL);
	} else if (f->state == FWD_CLOSING) {
		f->closing_handles++;
	}
}

void fwd_set_probe(fwd *f, fwd_clock_cb cb)
{
	f->probe = true;
	f->clock_cb = cb;
	f->clock_next_id = 1;
}

bool fwd_send_clock(fwd *f, uint64_t timeout_ms)
{
	uint64_t now = clock_mono_ms();
	tp_msg m;

	if (!f->probe || f->state != FWD_READY)
		return false;
	if (f->clock_sent_id != 0 && now - f->clock_sent_mono < timeout_ms)
		return false;
	/* An answer older than timeout_ms is given up: if it comes after all,
	 * its id is no longer awaited and the connection is dropped. */
	m.type = TP_CLOCK_REQ;
	m.u.clock_req.id = f->clock_next_id++;
	if (ob_append(&f->ob, &m) != 0)
		return false;
	f->clock_sent_id = m.u.clock_req.id;
	f->clock_sent_mono = now;
	fwd_flush(f);
	return f->state == FWD_READY;
}
