/* ratelog.h: warnings about refused connections, rate-limited per kind and in all. */
#ifndef TSORACLE_RATELOG_H
#define TSORACLE_RATELOG_H

#include <stdbool.h>
#include <stdint.h>

/*
 * A misconfigured member or client retries several times a second,
 * forever, and a stranger may do the same on purpose: each kind of refusal
 * (the same message from the same source) is a warning at most once per
 * interval_ms, and all of them together at most RATELOG_BURST times per
 * interval; the rest go to the debug level and are counted in the next
 * warning of their kind. The Raft transport (peer.c) and the client port
 * (server.c) each keep one.
 */

#define RATELOG_SLOTS    16  /* distinct (source, reason) pairs whose warnings are rate-limited */
#define RATELOG_BURST    16  /* warnings at most per interval, all reasons together */
#define RATELOG_KEY_SIZE 192 /* bytes of "source|reason" that tell two kinds of refusal apart */

typedef struct ratelog_slot {
	char key[RATELOG_KEY_SIZE];
	uint64_t at;      /* time (ms) of its last warning */
	unsigned quieted; /* logged at debug level since */
	bool used;
} ratelog_slot;

typedef struct ratelog {
	const char *what;     /* "Raft connections": names them in the summary line */
	uint64_t interval_ms; /* one warning per kind per interval */
	ratelog_slot slot[RATELOG_SLOTS];
	uint64_t burst_at; /* start of the current interval */
	unsigned burst;    /* warnings in it */
	unsigned quieted;  /* warnings turned to debug by the burst limit since */
} ratelog;

void ratelog_init(ratelog *r, const char *what, uint64_t interval_ms);

/* The level (LOG_WARN or LOG_DEBUG) of a refusal of source for why at time
 * now_ms; *quieted: how many of its kind went to debug since its last
 * warning (say so in the warning). */
int ratelog_level(ratelog *r, uint64_t now_ms, const char *source, const char *why, unsigned *quieted);

#endif /* TSORACLE_RATELOG_H */
