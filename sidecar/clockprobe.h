/* clockprobe.h: this member's measurements of the other members' wall clocks, for the driver's clock check.
 */
#ifndef TSORACLE_CLOCKPROBE_H
#define TSORACLE_CLOCKPROBE_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <uv.h>

#include "config.h"
#include "forward.h"
#include "node.h"

/*
 * Every LEAD_CLOCK_PROBE_MS, this member asks each other member of the
 * replicated Raft configuration (member.h: members come and go, and the
 * probes follow) for its wall clock (TP_CLOCK_REQ, common/proto.h) and hands the answer,
 * with the midpoint and length of the round trip on its own monotonic
 * clock, to the leadership driver (node_clock_sample, lead_clock_sample_add),
 * which judges its own clock against the majority's (include/tsoracle.h,
 * "clock sanity").
 *
 * The transport: one connection per member to that member's client
 * address, the very connection a follower forwards on (forward.h), with
 * the member's own certificate under TLS. Why this one and not the Raft
 * port: the readings must be authenticated (a stranger who could answer
 * for a member could talk a leader out of leading, or vouch for a clock
 * that jumped), and the client port already proves both ends with member
 * certificates (the probe checks it reached member-<id>, and the member
 * sees a member certificate); the Raft port's connections belong to
 * libraft once admitted (peer.h): a second kind of message there would mean
 * a second framing inside libraft's stream, or a second kind of peer
 * connection with its own admission rules. A clock reading rides the
 * ordinary client protocol instead, costs one small frame each way four
 * times a second, and lands in the same event loop as the leader's grants,
 * so the answer is read when the request is handled, not queued behind a
 * Raft backlog. Its error bound is half the round trip (readings whose
 * round trip exceeds max-clock-offset are dropped by the driver).
 */

typedef struct cprobe {
	const cfg *cfg;
	node *node;
	fwd conns[CFG_MAX_PEERS]; /* slots: one per other member of the configuration */
	unsigned n_conns;
	uv_timer_t timer;
	bool started;
	int closing; /* handles whose close callback is due */
	void (*close_cb)(struct cprobe *p);
} cprobe;

/* Sets up CFG_MAX_PEERS probe slots, pointed at the other members of the
 * configuration at start and at every probe. */
int cprobe_init(cprobe *p, uv_loop_t *loop, const cfg *c, node *n);

/* Connections from now on use TLS with ctx (NULL: plaintext, loopback only). */
void cprobe_set_ctx(cprobe *p, SSL_CTX *ctx);

/* Connects to every other member and measures their clocks from now on. */
int cprobe_start(cprobe *p);

/* Closes every connection; cb runs when all are closed. */
void cprobe_close(cprobe *p, void (*cb)(cprobe *p));

#endif /* TSORACLE_CLOCKPROBE_H */
