/* peer.h: the Raft peer transport: TCP under mutual TLS, each member proving its own node id.
 *
 * libraft talks to the other members through this transport (it replaces
 * libraft's own TCP transport). Every connection, in both directions, is
 * TLS 1.3 (common/tls.h) with certificates from the cluster's CA, and then
 * an exchange inside TLS:
 *
 *   connector -> acceptor   "TSOPEER2" | id | address length | address   18 + n bytes
 *   acceptor  -> connector  'A' (admitted)                               1 byte
 *
 * (ids u64 and the length u16, big-endian; the address is the connector's
 * Raft address, which libraft wants to know.) The acceptor admits the
 * connection only if the connector's certificate is a member certificate
 * ("member-<id>", common/tls.h) naming the very id the connector speaks
 * for, and that id is a member of the current Raft configuration (asked of
 * the node through peer_members); otherwise it closes it and logs why. (A
 * member started with join, whose configuration is still empty, admits any
 * member certificate of the CA: it holds nothing yet, and the leader that
 * adds it is the first to reach it. node.c.) When a member is removed, its
 * admitted connections are closed too (peer_transport_prune). The
 * connector goes on only if the acceptor's certificate is the member
 * certificate of the id it meant to reach. So no member can pose as
 * another, nothing without the CA's word can speak Raft, and the bytes
 * after the exchange are encrypted and authenticated by TLS.
 *
 * After the exchange the stream goes to libraft, which reads and writes
 * plain bytes on a uv stream: it gets one end of a socketpair, and this
 * transport relays between the other end and the TLS connection (encrypting
 * what libraft writes, decrypting what the peer sends). Raft traffic is
 * small (heartbeats and rare HighWater entries, docs/architecture.md), so
 * the relay's extra copy costs nothing on the timestamp path. Each
 * direction of the relay stops reading while more than PEER_RELAY_QUEUE_MAX
 * bytes wait to be written on the other side.
 *
 * Without TLS (no tls-* settings: allowed only when every member's Raft
 * address is loopback, config.c) the same exchange runs in plaintext and
 * proves nothing: any local user can then speak Raft to the members.
 *
 * A configuration of this node alone opens no port at all (listen does
 * nothing): its only voter is itself, so no election or commit needs a
 * message from anyone, and an open port would only let others in. If the
 * configuration ever gains a member, this node (its leader, the only
 * voter) dials that member first, and the listener opens at that moment.
 */
#ifndef TSORACLE_PEER_H
#define TSORACLE_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <raft.h>
#include <raft/uv.h>
#include <sys/socket.h>
#include <uv.h>

#define PEER_ADDRESS_MAX 255 /* bytes of a Raft address on the wire */

/* How long either side waits for the TLS handshake and the exchange, once
 * TCP is connected. libraft retries a failed connection by itself after its
 * retry delay (node.c). */
#define PEER_TIMEOUT_MS 3000

/* A TCP connect to a member answers within a round trip or not at all (a
 * partition drops the SYN): give up after this, and libraft tries again
 * after its retry delay (node.c). */
#define PEER_CONNECT_TIMEOUT_MS 1000

/* Unacknowledged data this old ends the connection (TCP_USER_TIMEOUT). */
#define PEER_USER_TIMEOUT_MS 1000

/* Failed exchanges are logged as warnings at most this often; the rest at
 * debug level, counted in the next warning. */
#define PEER_WARN_INTERVAL_MS 10000

/*
 * The gate for connections still in the handshake, which cost a descriptor
 * and a TLS state each until they finish or time out (PEER_TIMEOUT_MS):
 *
 *   - at most PEER_MAX_PENDING at once in all (descriptors stay bounded);
 *   - at most PEER_MAX_PENDING_PER_SOURCE from one source IP address: a
 *     member has one connection to us in the handshake at a time (libraft
 *     keeps one connection per peer and direction), so even 7 members on one
 *     host fit, while one stranger's flood holds only this many;
 *   - PEER_RESERVED_FOR_MEMBERS of the PEER_MAX_PENDING are kept for sources
 *     whose IP is the host of a member's Raft address (peer_members): a
 *     flood from many stranger addresses fills the rest and is refused, a
 *     member still gets in.
 *
 * Why both: the per-source limit alone lets a flood from many addresses
 * fill the global cap; the reserved share alone lets one stranger take all
 * the unreserved slots. What neither stops: a flood from a member's own
 * host (another user of that machine) competes with that member for the
 * reserved share; each slot it holds still times out after PEER_TIMEOUT_MS.
 */
#define PEER_MAX_PENDING            64
#define PEER_MAX_PENDING_PER_SOURCE 8
#define PEER_RESERVED_FOR_MEMBERS   16

/* The connections accepted and still before the relay (in the TLS
 * handshake or the exchange), other than the one at the gate. */
typedef struct peer_pending {
	unsigned all;
	unsigned same_source; /* from the same source IP address */
	unsigned strangers;   /* from addresses that are no member's host */
} peer_pending;

/* The gate's rule (peer_gate.c): NULL to let a connection from host (a
 * member's host or not) into the handshake while p are pending, else why
 * not, written into why. */
const char *peer_gate_judge(const peer_pending *p, bool member_host, const char *host, char *why,
			    size_t whylen);

/* Bytes queued for writing on one side of a relay before it stops reading
 * the other side (libuv's write queue would otherwise grow without bound
 * when a peer reads slower than libraft writes). */
#define PEER_RELAY_QUEUE_MAX (4u << 20)

/* Wire sizes of the exchange, exposed for tests. */
#define PEER_MAGIC_LEN  8
#define PEER_HEADER_LEN 18 /* magic, u64 id, u16 address length */
#define PEER_ADMITTED   'A'
extern const uint8_t peer_magic[PEER_MAGIC_LEN];

/* What the transport asks the node about the current Raft configuration
 * (node.c answers from libraft's). */
typedef struct peer_members {
	void *arg;
	/* id is in the configuration (any role). */
	bool (*is_member)(void *arg, uint64_t id);
	/* The configuration has a member other than this node. */
	bool (*has_others)(void *arg);
	/* sa's IP is the IP of a member's Raft address. */
	bool (*is_member_host)(void *arg, const struct sockaddr *sa);
} peer_members;

/* Makes transport (version 1, ready for raft_uv_init) the TLS transport:
 * ctx (a context from tls_ctx_new whose certificate is member-<self_id>'s;
 * the transport takes the caller's reference) or NULL for plaintext.
 * Returns 0, or -1 with a message in err. */
int peer_transport_init(struct raft_uv_transport *transport, uv_loop_t *loop, SSL_CTX *ctx,
			const peer_members *members, char *err, size_t errlen);

/* Replaces the TLS context (the transport takes the caller's reference):
 * connections start with it from now on, and every connection already
 * admitted is verified again against its CA and CRL and closed if it no
 * longer passes (a revoked member is cut off at the reload; libraft
 * reconnects the others when they close). */
void peer_transport_set_ctx(struct raft_uv_transport *transport, SSL_CTX *ctx);

/* Connections admitted and open (either direction), for the metrics. */
unsigned peer_transport_connections(struct raft_uv_transport *transport);

/* The loop's time (uv_now, ms) when member id last sent bytes on an
 * admitted connection, in either direction's connection; 0: never, or no
 * connection is up. The leader's heartbeats are answered every heartbeat,
 * so a member that is up was heard from within an election timeout. */
uint64_t peer_transport_heard(struct raft_uv_transport *transport, uint64_t id);

/* Closes every admitted connection, in either direction, of an id that is
 * no longer a member (peer_members.is_member): a removed member is cut off
 * at once, not when its connections happen to break. Returns how many. */
unsigned peer_transport_prune(struct raft_uv_transport *transport);

/* Releases the transport's memory, after libraft has closed it. */
void peer_transport_release(struct raft_uv_transport *transport);

#endif /* TSORACLE_PEER_H */
