/* forward.h: a follower's one connection to the leader, carrying its clients' coalesced requests. */
#ifndef TSORACLE_FORWARD_H
#define TSORACLE_FORWARD_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "backoff.h"
#include "config.h"
#include "outbuf.h"
#include "proto.h"
#include "tls.h"

/*
 * A follower serves its own PostgreSQL by forwarding: the server sums its
 * clients' waiting requests into one TP_TS_REQ ("a batch") on this single
 * connection to the leader's client address, and splits the grant when it
 * comes back. The connection speaks the ordinary client protocol, so the
 * leader batches forwarded requests with its local ones.
 *
 * The forwarder follows the leader Raft reports: when it changes, the old
 * connection is dropped and every batch in flight is given back to the
 * server (fwd_reset_cb), which sends those requests again. Sending again is
 * safe: a fresh grant is still correct for a call that has not returned,
 * and a grant that arrives for a dropped batch is never delivered.
 *
 * The leader's answers are checked (docs/architecture.md, "Forwarding"):
 * an answer for a batch not in flight on this connection, or a grant whose
 * count differs from the batch's, means the connection is broken (or not
 * the leader's): it is dropped and every batch in flight is sent again.
 *
 * Under TLS (fwd_set_ctx: the member's own certificate) the connection
 * proves this member to the leader, and the leader must prove it is
 * member-<leader id> (common/tls.h) before any batch goes out.
 */

#define FWD_MAX_INFLIGHT 8 /* batches in flight to the leader */

struct fwd;
/* A batch's answer: status TP_OK with [first, first + count), or an error. */
typedef void (*fwd_grant_cb)(void *arg, uint64_t batch, uint16_t status, uint64_t first, uint32_t count);
/* The connection was lost or retargeted: every batch in flight is void. */
typedef void (*fwd_reset_cb)(void *arg);
/* The connection is ready to carry batches. */
typedef void (*fwd_ready_cb)(void *arg);
/* A clock reading (fwd_send_clock): member id's wall clock read wall_ms
 * between this member's monotonic readings sent_mono_ms and recv_mono_ms. */
typedef void (*fwd_clock_cb)(void *arg, uint64_t id, uint64_t wall_ms, uint64_t sent_mono_ms,
			     uint64_t recv_mono_ms);

enum fwd_state {
	FWD_IDLE = 0, /* no target, or waiting to retry */
	FWD_CONNECTING,
	FWD_HANDSHAKE,
	FWD_READY,
	FWD_CLOSING, /* handle closing; then IDLE */
};

typedef struct fwd {
	uv_loop_t *loop;
	const cfg *cfg;
	uv_tcp_t tcp;
	uv_connect_t connect_req;
	uv_timer_t retry;
	int state;
	uint64_t target_id; /* leader we forward to; 0: none */
	char target_addr[CFG_ADDR_SIZE];
	tp_backoff backoff;
	uint64_t next_batch; /* batch ids, from 1 */
	unsigned inflight;
	/* The batches in flight: id and timestamps asked (id 0: free slot). */
	uint64_t sent_id[FWD_MAX_INFLIGHT];
	uint32_t sent_count[FWD_MAX_INFLIGHT];
	SSL_CTX *ctx;  /* TLS context for the next connection; NULL: plaintext */
	tls_conn *tls; /* the connection's session, if under TLS */
	tp_reader reader;
	outbuf ob;
	fwd_grant_cb grant_cb;
	fwd_reset_cb reset_cb;
	fwd_ready_cb ready_cb;
	void *arg;
	/* A clock probe (fwd_set_probe, clockprobe.h): a connection to one
	 * member that carries only TP_CLOCK_REQ, one at a time. */
	bool probe;
	fwd_clock_cb clock_cb;
	uint64_t clock_next_id;   /* request ids, from 1 */
	uint64_t clock_sent_id;   /* in flight; 0: none */
	uint64_t clock_sent_mono; /* when it was sent, monotonic ms */
	bool closed;              /* fwd_close called */
	void (*close_cb)(struct fwd *f);
	int closing_handles;
} fwd;

int fwd_init(fwd *f, uv_loop_t *loop, const cfg *c, fwd_grant_cb grant_cb, fwd_reset_cb reset_cb,
	     fwd_ready_cb ready_cb, void *arg);

/* Connections from now on use TLS with ctx (a reference is taken; NULL:
 * plaintext, loopback only). */
void fwd_set_ctx(fwd *f, SSL_CTX *ctx);

/* Forward to member leader_id (0: to nobody) at its client address addr
 * (the caller reads it from the replicated configuration, member.h; NULL or
 * "": unknown, nothing is forwarded). Reconnects if the leader changed. */
void fwd_set_target(fwd *f, uint64_t leader_id, const char *addr);

/* Ready, and room for another batch in flight. */
bool fwd_can_send(const fwd *f);

/* Sends a batch of count timestamps; returns its id (never 0), or 0 if it
 * could not be sent. */
uint64_t fwd_send(fwd *f, uint32_t count);

void fwd_close(fwd *f, void (*cb)(fwd *f));

/* Makes f a clock probe (before its target is set): its log lines say so,
 * and clock answers go to cb. */
void fwd_set_probe(fwd *f, fwd_clock_cb cb);

/* Asks the target for its wall clock, unless an answer is awaited (and was
 * asked less than timeout_ms ago) or the connection is not ready; true if
 * sent. */
bool fwd_send_clock(fwd *f, uint64_t timeout_ms);

#endif /* TSORACLE_FORWARD_H */
