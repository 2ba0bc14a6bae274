/*
 * raft_append.c: appends raw commands to a tsoracled data directory through
 * libraft's real uv I/O, as a writer tsoracled does not control would (a
 * newer version, a buggy or hostile leader). For the TAP test of what the
 * state machine refuses (t/120_fsm_refusals.pl, docs/architecture.md).
 *
 *   tsoracle-raft-append DATA_DIR RAFT_ADDRESS HEX...
 *
 * Bootstraps DATA_DIR as a single-member cluster of node 1 at RAFT_ADDRESS
 * if it is pristine, becomes leader, appends each HEX (the bytes of one
 * command) as one entry, waits until every one is committed and applied,
 * and exits 0 (1 on any failure, 2 on bad arguments). Its own state machine
 * accepts anything: it stands for the writer, never for tsoracled.
 */
#include <raft.h>
#include <raft/uv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define RA_NODE_ID      1
#define RA_ELECTION_MS  100
#define RA_HEARTBEAT_MS 20
#define RA_POLL_MS      10
#define RA_DEADLINE_MS  20000
/* Never snapshot: tsoracled would restore this program's (empty) one. */
#define RA_NO_SNAPSHOT  (1u << 30)
#define RA_MAX_ENTRIES  64

typedef struct ra_state {
	uv_loop_t loop;
	uv_timer_t poll;
	struct raft raft;
	struct raft_io io;
	struct raft_uv_transport transport;
	struct raft_fsm fsm;
	struct raft_apply reqs[RA_MAX_ENTRIES];
	struct raft_buffer bufs[RA_MAX_ENTRIES];
	unsigned n;
	unsigned applied;
	bool proposed;
	bool closing;
	uint64_t started_ms;
	int rc;
} ra_state;

static int ra_fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
	(void)fsm;
	(void)buf;
	*result = NULL;
	return 0;
}

static void ra_closed(struct raft *r)
{
	ra_state *s = r->data;

	uv_close((uv_handle_t *)&s->poll, NULL);
}

static void ra_finish(ra_state *s, int rc)
{
	if (s->closing)
		return;
	s->closing = true;
	s->rc = rc;
	uv_timer_stop(&s->poll);
	raft_close(&s->raft, ra_closed);
}

static void ra_apply_cb(struct raft_apply *req, int status, void *result)
{
	ra_state *s = req->data;

	(void)result;
	if (status != 0) {
		fprintf(stderr, "raft_append: entry failed: %s\n", raft_strerror(status));
		ra_finish(s, 1);
		return;
	}
	if (++s->applied == s->n)
		ra_finish(s, 0);
}

static void ra_poll_cb(uv_timer_t *t)
{
	ra_state *s = t->data;

	if (uv_now(&s->loop) - s->started_ms > RA_DEADLINE_MS) {
		fprintf(stderr, "raft_append: no leader or no commit within %d ms\n", RA_DEADLINE_MS);
		ra_finish(s, 1);
		return;
	}
	if (s->proposed || raft_state(&s->raft) != RAFT_LEADER)
		return;
	s->proposed = true;
	for (unsigned i = 0; i < s->n; i++) {
		int rv;

		s->reqs[i].data = s;
		rv = raft_apply(&s->raft, &s->reqs[i], &s->bufs[i], 1, ra_apply_cb);
		if (rv != 0) {
			fprintf(stderr, "raft_append: raft_apply: %s (%s)\n", raft_strerror(rv),
				raft_errmsg(&s->raft));
			ra_finish(s, 1);
			return;
		}
	}
}

/* Parses hex into a raft_malloc'ed buffer; -1 if it is not hex bytes. */
static int ra_parse_hex(const char *hex, struct raft_buffer *buf)
{
	size_t len = strlen(hex);
	uint8_t *p;

	if (len % 2 != 0)
		return -1;
	p = raft_malloc(len / 2 > 0 ? len / 2 : 1);
	if (p == NULL)
		return -1;
	for (size_t i = 0; i < len / 2; i++) {
		unsigned v;

		if (sscanf(hex + 2 * i, "%2x", &v) != 1) {
			raft_free(p);
			return -1;
		}
		p[i] = (uint8_t)v;
	}
	buf->base = p;
	buf->len = len / 2;
	return 0;
}

int main(int argc, char **argv)
{
	static ra_state s;
	struct raft_configuration conf;
	int rv;

	if (argc < 4 || argc - 3 > RA_MAX_ENTRIES) {
		fprintf(stderr, "usage: %s DATA_DIR RAFT_ADDRESS HEX... (1 to %d entries)\n", argv[0],
			RA_MAX_ENTRIES);
		return 2;
	}
	for (int i = 3; i < argc; i++) {
		if (ra_parse_hex(argv[i], &s.bufs[s.n]) != 0) {
			fprintf(stderr, "raft_append: \"%s\" is not hex bytes\n", argv[i]);
			return 2;
		}
		s.n++;
	}
	s.fsm.version = 1;
	s.fsm.apply = ra_fsm_apply;
	s.transport.version = 1; /* libraft's transport interface version */
	rv = uv_loop_init(&s.loop);
	if (rv == 0)
		rv = raft_uv_tcp_init(&s.transport, &s.loop);
	if (rv != 0) {
		fprintf(stderr, "raft_append: setting up the loop or transport failed (%d)\n", rv);
		return 1;
	}
	rv = raft_uv_init(&s.io, &s.loop, argv[1], &s.transport);
	if (rv != 0) {
		fprintf(stderr, "raft_append: raft_uv_init(\"%s\"): %s\n", argv[1], s.io.errmsg);
		return 1;
	}
	rv = raft_init(&s.raft, &s.io, &s.fsm, RA_NODE_ID, argv[2]);
	if (rv != 0) {
		fprintf(stderr, "raft_append: raft_init: %s\n", raft_errmsg(&s.raft));
		return 1;
	}
	s.raft.data = &s;
	raft_configuration_init(&conf);
	rv = raft_configuration_add(&conf, RA_NODE_ID, argv[2], RAFT_VOTER);
	if (rv == 0)
		rv = raft_bootstrap(&s.raft, &conf);
	raft_configuration_close(&conf);
	if (rv != 0 && rv != RAFT_CANTBOOTSTRAP) {
		fprintf(stderr, "raft_append: raft_bootstrap: %s\n", raft_strerror(rv));
		return 1;
	}
	raft_set_election_timeout(&s.raft, RA_ELECTION_MS);
	raft_set_heartbeat_timeout(&s.raft, RA_HEARTBEAT_MS);
	raft_set_snapshot_threshold(&s.raft, RA_NO_SNAPSHOT);
	rv = raft_start(&s.raft);
	if (rv != 0) {
		fprintf(stderr, "raft_append: raft_start: %s\n", raft_errmsg(&s.raft));
		return 1;
	}
	s.started_ms = uv_now(&s.loop);
	uv_timer_init(&s.loop, &s.poll);
	s.poll.data = &s;
	uv_timer_start(&s.poll, ra_poll_cb, RA_POLL_MS, RA_POLL_MS);
	uv_run(&s.loop, UV_RUN_DEFAULT);
	raft_uv_close(&s.io);
	raft_uv_tcp_close(&s.transport);
	uv_run(&s.loop, UV_RUN_DEFAULT);
	uv_loop_close(&s.loop);
	if (s.rc == 0)
		printf("appended %u entries to %s\n", s.n, argv[1]);
	return s.rc;
}
