/* server.h: the client listener: framed requests in, one allocator call per batch, grants out. */
#ifndef TSORACLE_SERVER_H
#define TSORACLE_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <uv.h>

#include "config.h"
#include "clockprobe.h"
#include "forward.h"
#include "metrics.h"
#include "node.h"
#include "outbuf.h"
#include "peercred.h"
#include "proto.h"
#include "ratelog.h"
#include "tls.h"

/*
 * Batching: every read callback parses all the frames it got and queues
 * their timestamp requests on their connection. Once per loop iteration,
 * after all reads (a uv_check handle), the server answers the queued
 * requests with one allocator call per batch, splits each grant among the
 * batch's requests, and writes each connection's responses with one write.
 *
 * Fair service: batches are filled by deficit round-robin by timestamps
 * (srv_batch_pick): each connection with requests gets SRV_QUANTUM
 * timestamps per turn, and a batch takes no more than the allocator's room
 * (ta_room), so a request waits at most about one batch behind other
 * connections' backlogs, however much one connection has queued; a
 * request too large for the room now (it waits for an extension or for
 * the clock, tsoracle.h I6) does not hold up smaller ones. Requests that
 * cannot be served yet (no leader, fence or lease pending, window
 * exhausted) stay queued until the node says grants may succeed, or until
 * request_timeout_ms passes, when they are answered with an error status.
 *
 * On a follower the same batch goes to the leader as one request over the
 * forwarding connection (forward.h), and the leader's grant is split the
 * same way.
 *
 * A TP_TRANSFER_REQ is handed to the node (node_transfer) and answered
 * when the handover ends; a member that does not lead answers a transfer
 * request at once with TP_ERR_NOT_LEADER and the leader it knows
 * (timestamp requests it forwards to the leader, as above).
 *
 * TLS (docs/cluster.md, "TLS"): with tls-* set, client-tcp speaks TLS 1.3
 * (common/tls.h) through the connection's outbuf and tlsio.h, and every
 * client shows a certificate from tls-ca; its OU is its role, checked per
 * message (srv_forbidden): `client` and `member` (forwarding followers)
 * may take timestamps and read status, `admin` may also transfer
 * leadership. A refused connection gets TP_ERROR with TP_ERR_FORBIDDEN and
 * a rate-limited warning (ratelog.h). The unix socket and plaintext
 * client-tcp (allowed on loopback only, config.c) serve local users as
 * before, without roles.
 *
 * Limits (docs/architecture.md, "Bounded resources"): SRV_QUEUE_CAP queued
 * requests per connection, past which the server stops reading it until
 * the queue drains (backpressure); client-output-max bytes of unsent
 * responses, past which a client that does not read them is dropped;
 * max-connections connections, past which a new one is refused with an
 * error frame; hello-timeout from accept to the hello, and idle-timeout
 * with nothing in flight, past which a connection is closed. Refusals are
 * logged at most once a second (srv_ratelog).
 */

#define SRV_QUEUE_CAP               1024 /* queued timestamp requests per connection */
/* Timestamps a connection may take per turn: one largest request, so that
 * every connection's next request fits its first turn. */
#define SRV_QUANTUM                 TA_MAX_GRANT
/* Marks the requests of the batch being granted or sent (forwarded
 * batches are numbered from 1 by forward.c, never this high). */
#define SRV_BATCH_LOCAL             UINT64_MAX
/* Transfer requests waiting per connection (tsoracle-ctl sends one); more
 * are answered TP_ERR_BAD_REQUEST, so a client cannot pile up memory. */
#define SRV_TRANSFER_CAP            4
#define SRV_TLS_READ_SIZE           65536 /* bytes of ciphertext read from a client at once */
#define SRV_FROM_SIZE               64    /* a client's IP address, for logs */
/* Refused client connections of one kind are a warning at most this often
 * (ms); the rest are logged at debug level and counted. */
#define SRV_REFUSAL_LOG_INTERVAL_MS 10000

typedef struct srv_req {
	uint64_t id;
	uint32_t count;
	uint64_t deadline_ms; /* monotonic */
	uint64_t batch;       /* forwarded in this batch; 0: not sent */
	uint64_t received_ns; /* uv_hrtime of the read that brought it (metrics) */
} srv_req;

struct srv;

/* A stream handle of either kind, clients' and listeners' alike. */
typedef union srv_handle {
	uv_handle_t handle;
	uv_stream_t stream;
	uv_tcp_t tcp;
	uv_pipe_t pipe;
} srv_uv_handle;

typedef struct srv_conn {
	srv_uv_handle h;
	struct srv *srv;
	LIST_ENTRY(srv_conn) link;          /* in srv.conns: all connections */
	TAILQ_ENTRY(srv_conn) pending_link; /* in srv.pending, while pending */
	bool pending;                       /* it has queued requests */
	uint64_t deficit;                   /* DRR: timestamps it may still take this turn */
	bool credited;                      /* its current turn's quantum is in deficit */
	/* Both as they were before the last pick (srv_batch_unpick). */
	uint64_t deficit_before;
	bool credited_before;
	bool handshaken;
	bool reading;
	bool closing;
	bool counted;         /* srv_close waits for its close */
	uint64_t accepted_ms; /* loop time of the accept: the hello timeout */
	uint64_t active_ms;   /* loop time of its last input: the idle timeout */
	uint64_t read_ns;     /* uv_hrtime of its last read: its requests' receipt */
	bool refused;         /* told why it may not stay; closed SRV_LINGER_MS later */
	uint64_t refused_ms;
	TAILQ_ENTRY(srv_conn) linger; /* in srv.lingering, while refused */

	srv_req q[SRV_QUEUE_CAP]; /* FIFO ring */
	unsigned q_head, q_len;
	unsigned n_xfers; /* its transfer and membership requests waiting */

	outbuf ob; /* responses */

	tp_reader reader;

	tls_conn *tls;            /* client-tcp under TLS; NULL: plaintext */
	tls_identity peer;        /* TLS: the client certificate's, once verified */
	char from[SRV_FROM_SIZE]; /* TCP: the client's address, for logs */
} srv_conn;

/* A client's TP_TRANSFER_REQ, waiting for the handover to end. */
/* An operator's command (advance-to, cluster version) waiting for its
 * commit; conn is NULL once its connection has closed (the answer is then
 * dropped: node.h's callback owns this until it runs). */
typedef struct srv_admin {
	struct srv *srv;
	struct srv_conn *conn;
	uint64_t id;
	LIST_ENTRY(srv_admin) link; /* in srv.admins */
} srv_admin;

typedef struct srv_xfer {
	node_transfer_req req; /* req.data points back here */
	struct srv *srv;
	srv_conn *conn;
	uint64_t id;
	LIST_ENTRY(srv_xfer) link; /* in srv.xfers */
} srv_xfer;

/* A client's TP_MEMBER_REQ add or remove, waiting for the change to end
 * (the node runs one change at a time, so the server waits for one). */
typedef struct srv_member {
	member_req req; /* req.data points to the srv */
	srv_conn *conn; /* NULL: none waits */
	uint64_t id;
	uint32_t member;
} srv_member;

/* One kind of rate-limited log line (srv_log_limited). */
typedef struct srv_ratelog {
	bool logged;
	uint64_t last_ms;    /* loop time of the last line */
	uint64_t suppressed; /* left out since */
} srv_ratelog;

typedef struct srv_listener {
	srv_uv_handle h;
	struct srv *srv;
	bool active;
} srv_listener;

typedef struct srv {
	uv_loop_t *loop;
	const cfg *cfg;
	node *node;
	fwd fwd;      /* a follower's link to the leader */
	cprobe probe; /* the other members' clocks (clockprobe.h) */
	srv_listener unix_listener;
	srv_listener tcp_listener;
	uv_check_t check;  /* dispatch once per loop iteration */
	uv_timer_t expire; /* answers requests past their deadline */
	uv_timer_t sweep;  /* hello and idle timeouts */
	LIST_HEAD(, srv_conn) conns;
	/* Connections with queued requests, in the DRR round's order: a turn
	 * moves its connection from the head to the tail (srv_pending_rotate). */
	TAILQ_HEAD(, srv_conn) pending;
	srv_conn *pick_head; /* pending's head before the last pick */
	unsigned n_pending;
	LIST_HEAD(, srv_xfer) xfers;   /* transfer requests waiting for the node */
	LIST_HEAD(, srv_admin) admins; /* operator's commands waiting for their commit */
	srv_member member_wait;
	unsigned n_conns;
	unsigned n_lingering;             /* refused, not closed yet (srv_conn_refuse_linger) */
	TAILQ_HEAD(, srv_conn) lingering; /* oldest first */
	srv_ratelog log_accept, log_refused, log_timeout, log_dropped, log_peer;
	pc_allow allow;         /* who may use the unix socket (client-socket-allow) */
	SSL_CTX *tls_ctx;       /* client-tcp's TLS context (node_tls_ctx_new); NULL: plaintext */
	ratelog refusals;       /* refused client connections, for the log */
	metrics_requests stats; /* counted on the loop; read by metrics.c's sample */
	uint8_t tls_rbuf[SRV_TLS_READ_SIZE]; /* ciphertext of the read in progress */
	bool stopping;
	int closing_handles;
	void (*close_cb)(struct srv *s);
} srv;

int srv_init(srv *s, uv_loop_t *loop, const cfg *c, node *n, char *err, size_t errlen);

/* Binds and listens on the configured client addresses. */
int srv_start(srv *s, char *err, size_t errlen);

/* Reads the tls-* files again (SIGHUP): new client connections and the
 * next forwarding connection use them; a failure keeps the old ones. */
void srv_reload_tls(srv *s);

/* The client port's counters and open connections, into a metrics sample. */
void srv_metrics(const srv *s, metrics_sample *out);

/* Answers queued requests (and waiting transfer requests) with
 * TP_ERR_SHUTTING_DOWN, closes every connection and listener; cb runs when
 * all handles are closed. */
void srv_close(srv *s, void (*cb)(srv *s));

#endif /* TSORACLE_SERVER_H */
