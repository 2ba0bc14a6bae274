/* metrics.h: the Prometheus endpoint (metrics-address): GET /metrics, served off the event loop. */
#ifndef TSORACLE_METRICS_H
#define TSORACLE_METRICS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "proto.h"

/*
 * The counters live with what they count, as plain integers changed only on
 * the event loop's thread (server.c: metrics_requests; node.c:
 * metrics_leadership): counting costs an increment, no lock, no atomic.
 *
 * The HTTP side is libmicrohttpd (Debian's libmicrohttpd), which parses
 * HTTP: no parser of ours faces the network. It runs in a thread of its own
 * (MHD_USE_INTERNAL_POLLING_THREAD), never on the loop. Why not MHD's
 * external select mode driven by uv_poll on the loop: then every scrape's
 * parsing, formatting and writing, and a slow or hostile scraper's
 * timeouts, would be work on the loop that serves timestamps, and MHD's
 * timeouts would need a second timer kept in step with it; in its own
 * thread none of that touches the loop.
 *
 * A scrape asks the loop for a fresh sample (uv_async_send) and waits for
 * it at most METRICS_LOOP_WAIT_MS; the loop's async callback reads its
 * counters and gauges (metrics_collect_fn) into a private sample, then copies
 * it into the shared one under the mutex: the loop holds the mutex for one
 * struct copy, and the scrape thread holds it only for a struct copy too
 * (it formats the text after releasing it), so the loop never waits on a
 * scrape. A loop that does not answer in time (stuck: a bug) gets the
 * scrape a 503, so Prometheus sees the member down rather than old values.
 */

/* Bounds of the HTTP side (docs/operations.md). */
#define METRICS_MAX_CONNECTIONS 16          /* scrapers at once; more are refused */
#define METRICS_PER_IP_MAX      4           /* ... from one address */
#define METRICS_TIMEOUT_S       10          /* an idle or slow connection is closed after this, s */
#define METRICS_MEMORY_LIMIT    (32 * 1024) /* bytes of a connection's request buffer */
#define METRICS_LOOP_WAIT_MS    1000        /* a scrape waits this long for the loop's sample, ms */
#define METRICS_PATH            "/metrics"

/* A histogram of durations, in nanoseconds, over fixed bounds (metrics.c:
 * one table of bounds per kind). */
enum metrics_hist_kind {
	METRICS_HIST_REQUEST = 0, /* a timestamp request, received to answered */
	METRICS_HIST_FENCE,       /* a leadership, elected to serving */
	METRICS_HIST_KINDS
};
#define METRICS_HIST_MAX_BOUNDS 20
typedef struct metrics_hist {
	uint64_t bucket[METRICS_HIST_MAX_BOUNDS + 1]; /* per bound, not cumulative; last: above all */
	uint64_t count;
	uint64_t sum_ns;
} metrics_hist;

/* n observations of ns nanoseconds each (a batch's requests that arrived
 * in one read are answered at one moment: one call for all of them). */
void metrics_hist_observe(metrics_hist *h, enum metrics_hist_kind kind, uint64_t ns, uint64_t n);

/* The client port's counters (server.c). errors: per status sent (TP_ERR_*),
 * as a timestamp response or a TP_ERROR frame. */
typedef struct metrics_requests {
	uint64_t requests;   /* timestamp requests answered, successes and errors */
	uint64_t timestamps; /* timestamps handed out in successful answers */
	uint64_t errors[TP_STATUS_LAST + 1];
	uint64_t forwarded; /* a follower's batches sent to the leader (forward.h) */
	metrics_hist duration;
} metrics_requests;

/* Leadership as the node's watch sees it (node.c, every LEAD_TICK_MS). */
typedef struct metrics_leadership {
	uint64_t leader_changes; /* times this member learnt of a leader other than the last it knew */
	metrics_hist fence;      /* this member's leaderships: elected to serving */
} metrics_leadership;

/* One sample: everything a scrape shows. */
typedef struct metrics_sample {
	metrics_requests req;
	metrics_leadership lead;
	bool is_leader; /* Raft says this member leads */
	bool serving;   /* ... and hands out timestamps now */
	uint64_t term, commit_index, applied_index;
	uint64_t high_water_ms;  /* H, the highest mark known committed */
	uint64_t clock_ms;       /* this member's wall clock as the allocator reads it */
	int64_t clock_offset_ms; /* its wall clock minus the median of the voters' (measured) */
	bool clock_unsupported;  /* that offset is past max-clock-offset: it does not lead */
	bool clock_held;         /* a jump of its clock no majority supports is not followed */
	bool clock_start_gap;    /* a sole member's clock too far past its stored mark */
	unsigned client_connections, peer_connections;
} metrics_sample;

/* Fills a sample; runs on the loop's thread. */
typedef void (*metrics_collect_fn)(void *arg, metrics_sample *out);

typedef struct metrics {
	uv_loop_t *loop;
	uv_async_t async; /* a scrape's request for a sample */
	bool async_open;
	metrics_collect_fn collect;
	void *arg;
	const char *version; /* tsoracle_build_info */
	struct MHD_Daemon *daemon;

	pthread_mutex_t mu; /* guards what follows */
	pthread_cond_t cond;
	bool sync_init;
	metrics_sample shared;
	uint64_t generation; /* samples published so far */
	bool stopping;       /* metrics_stop: scrapes stop waiting for the loop */
} metrics;

/* Starts the endpoint on c->metrics_address (the caller checks it is set).
 * Returns 0, or -1 with a message in err. */
int metrics_start(metrics *m, uv_loop_t *loop, const cfg *c, const char *version, metrics_collect_fn collect,
		  void *arg, char *err, size_t errlen);

/* Stops the HTTP thread (waiting for it) and closes the loop's handle; safe
 * on a metrics never started. From the loop's thread. */
void metrics_stop(metrics *m);

/* The text a scrape gets for s (Prometheus text format 0.0.4), into buf;
 * returns its length, or the length it would need if that is >= len
 * (as snprintf). Exposed for tests. */
size_t metrics_format(const metrics_sample *s, const char *version, char *buf, size_t len);

#endif /* TSORACLE_METRICS_H */
