/* peer.h: the Raft peer transport: TCP, open only to peers who know the cluster's secret.
 *
 * libraft talks to the other members through this transport (it replaces
 * libraft's own TCP transport). A connection starts with an exchange:
 *
 *   acceptor  -> connector   "TSOPEER1" | nonce                            24 bytes
 *   connector -> acceptor    id | address length | address | MAC('C')     10 + n + 32 bytes
 *   acceptor  -> connector   MAC('A')                                      32 bytes
 *
 *   MAC(x) = HMAC-SHA256(secret, label | x | nonce | connector id |
 *                        acceptor id | connector address)
 *
 * The acceptor closes the connection on a wrong answer, so the connector
 * learns of it (and libraft waits its retry delay before trying again), and
 * the verdict shows the connector that the acceptor holds the secret too.
 *
 * The nonce is fresh from getrandom(2) for every connection, so a recorded
 * answer is worth nothing later. Nothing the connector sends is parsed
 * beyond two bounded length fields before the MAC is checked, and only then
 * does the stream reach libraft. One round trip and a half per connection,
 * nothing per message.
 *
 * What this buys: a process that does not hold the secret cannot speak Raft
 * to a member (raise terms, depose a leader, append HighWater entries), by
 * accident (a node of another cluster, a port scanner) or on purpose. What
 * it does not buy: secrecy or integrity of the bytes after the exchange.
 * Someone who can rewrite packets in flight can still tamper with an
 * established connection; against that, run the peer network over WireGuard
 * or IPsec (docs/cluster.md).
 *
 * A member may hold several secrets (peer_secrets): it answers with the
 * first and admits an answer made with any, and makes its verdict with the
 * one that matched, so a cluster changes its secret one member at a time.
 *
 * Without a secret (a cluster whose members all listen on loopback, see
 * config.c) the exchange still runs, keyed with the empty string: the same
 * code path, proving only that the other side speaks this protocol.
 */
#ifndef TSORACLE_PEER_H
#define TSORACLE_PEER_H

#include <stddef.h>
#include <stdint.h>

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#define PEER_SECRET_MIN  16   /* bytes: below this a secret is guessable */
#define PEER_SECRET_MAX  1024 /* bytes: a key file, not a document */
#define PEER_ADDRESS_MAX 255  /* bytes of a Raft address on the wire */

/* How long either side waits for the other's half of the exchange, once
 * TCP is connected. It is one round trip and a half; libraft retries a
 * failed connection by itself after its retry delay (node.c). */
#define PEER_TIMEOUT_MS 3000

/* A TCP connect to a member answers within a round trip or not at all (a
 * partition drops the SYN): give up after this, and libraft tries again
 * after its retry delay (node.c). */
#define PEER_CONNECT_TIMEOUT_MS 1000

/* Unacknowledged data this old ends the connection (TCP_USER_TIMEOUT). */
#define PEER_USER_TIMEOUT_MS 1000

/* Failed exchanges are logged as warnings at most this often; the rest at
 * debug level, counted. */
#define PEER_WARN_INTERVAL_MS 10000

/* Accepted connections still in the exchange, at most: beyond this a new
 * connection is closed at once, so a flood cannot exhaust descriptors. */
#define PEER_MAX_PENDING 64

/* Wire sizes, exposed so that tests can speak the protocol. */
#define PEER_MAGIC_LEN     8
#define PEER_NONCE_LEN     16
#define PEER_CHALLENGE_LEN (PEER_MAGIC_LEN + PEER_NONCE_LEN)
#define PEER_HEADER_LEN    10 /* u64 id, u16 address length */
#define PEER_MAC_LEN       32
extern const uint8_t peer_magic[PEER_MAGIC_LEN];

/* The secrets of a peer-secret-file, one per line: a member answers
 * challenges with the first and accepts answers made with any of them, so
 * that a cluster can change its secret one member at a time (docs/cluster.md).
 * n 1 with len[0] 0: no secret. */
#define PEER_SECRETS_MAX 4
typedef struct peer_secrets {
	uint8_t key[PEER_SECRETS_MAX][PEER_SECRET_MAX];
	size_t len[PEER_SECRETS_MAX];
	int n;
} peer_secrets;

/* Makes transport (version 1, ready for raft_uv_init) the authenticated TCP
 * transport, keyed with s. Returns 0, or -1 with a message in err. */
int peer_transport_init(struct raft_uv_transport *transport, uv_loop_t *loop, const peer_secrets *s,
			char *err, size_t errlen);

/* Replaces the secrets for exchanges that start from now on; connections
 * already admitted stay. */
void peer_transport_set_secrets(struct raft_uv_transport *transport, const peer_secrets *s);

/* Releases the transport's memory, after libraft has closed it. */
void peer_transport_release(struct raft_uv_transport *transport);

/* The MAC of the answer (from PEER_FROM_CONNECTOR) or of the verdict
 * (PEER_FROM_ACCEPTOR); address is the connector's. */
#define PEER_FROM_CONNECTOR 'C'
#define PEER_FROM_ACCEPTOR  'A'
void peer_mac(const uint8_t *secret, size_t len, char from, const uint8_t nonce[PEER_NONCE_LEN],
	      uint64_t connector, uint64_t acceptor, const char *address, size_t address_len,
	      uint8_t out[PEER_MAC_LEN]);

/* Reads a secret file: one to PEER_SECRETS_MAX secrets, one per line
 * (blank lines and trailing white space ignored), each at least
 * PEER_SECRET_MIN bytes; no access for group or others (like an ssh key).
 * Returns 0, or -1 with a message in err (out is then wiped). */
int peer_load_secrets(const char *path, peer_secrets *out, char *err, size_t errlen);

/* Wipes s. */
void peer_secrets_wipe(peer_secrets *s);

#endif /* TSORACLE_PEER_H */
