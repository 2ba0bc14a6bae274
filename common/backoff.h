/* backoff.h: the reconnection backoff of every long-lived client connection to a sidecar. */
#ifndef TSORACLE_BACKOFF_H
#define TSORACLE_BACKOFF_H

/*
 * Two connections reconnect for as long as they live: the PostgreSQL
 * worker's to its sidecar (src/worker_conn.c) and a follower's to the
 * leader (sidecar/forward.c). They share this policy: the first retry
 * after min_ms, each failure doubling the delay up to max_ms, and a
 * connection that worked starting again from min_ms.
 *
 * Only the policy is shared, not the state machine around it (connect,
 * handshake, ready, closed): the worker runs inside PostgreSQL, blocking
 * nowhere but in WaitEventSetWait on its latch, tries every address a host
 * name resolves to in turn, checks a unix socket's owner and counts a
 * connection lost before it served as flapping (no quick retry, quieter
 * logs); forwarding runs on the daemon's libuv loop, its timers and
 * stream callbacks, to one literal address taken from the Raft
 * configuration, and starts over whenever the leader changes. Their event
 * sources have nothing in common, so neither machine could run the other's.
 *
 * Static, in the header: C99 for the extension's PGXS build, no object to
 * link for the daemon.
 */
typedef struct tp_backoff {
	unsigned min_ms, max_ms; /* the first delay and the cap, ms */
	unsigned next_ms;        /* the delay the next failure waits, ms */
} tp_backoff;

static inline void tp_backoff_init(tp_backoff *b, unsigned min_ms, unsigned max_ms)
{
	b->min_ms = min_ms;
	b->max_ms = max_ms;
	b->next_ms = min_ms;
}

/* A connection worked: the next failure is retried quickly. */
static inline void tp_backoff_reset(tp_backoff *b)
{
	b->next_ms = b->min_ms;
}

/* A failure: the delay to wait before the next attempt, ms; the one after
 * it doubles, up to max_ms. */
static inline unsigned tp_backoff_next(tp_backoff *b)
{
	unsigned delay = b->next_ms;

	b->next_ms = delay > b->max_ms / 2 ? b->max_ms : delay * 2;
	return delay;
}

#endif /* TSORACLE_BACKOFF_H */
