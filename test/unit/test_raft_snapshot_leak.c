/* test_raft_snapshot_leak.c: an InstallSnapshot during an install is freed
 * (scripts/patches/raft-0.22.1-snapshot-busy-leak.patch). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <raft.h>

/*
 * A follower driven through raft_step (libraft's own engine, no I/O) is
 * sent the leader's InstallSnapshot, starts installing it, and is sent the
 * same InstallSnapshot again before the install is persisted: the leader
 * retries while a slow install runs, as it does for a member catching up
 * (test/t/103_catch_up.pl). Every allocation libraft makes goes through a
 * counting allocator (raft_heap_set), so the test needs no sanitizer: once
 * the install is done and the member closed, nothing may be left allocated.
 * Unpatched libraft 0.22.1 keeps the second request's data and
 * configuration for ever: five allocations (the data, the server array and
 * its three addresses).
 */

#define FOLLOWER_ID    2
#define LEADER_ID      1
#define N_VOTERS       3
#define LEADER_TERM    2
#define SNAPSHOT_INDEX 10
#define SNAPSHOT_BYTES 64
#define CAPACITY_MB    1024 /* disk space libraft is told it has (MB) */
#define STEP_MS        10   /* time between the events (ms) */

/* ---- a counting allocator ---- */

static long outstanding; /* allocations not yet freed */

static void *count_malloc(void *data, size_t size)
{
	(void)data;
	void *p = malloc(size);
	if (p != NULL)
		outstanding++;
	return p;
}

static void count_free(void *data, void *ptr)
{
	(void)data;
	if (ptr != NULL)
		outstanding--;
	free(ptr);
}

static void *count_calloc(void *data, size_t nmemb, size_t size)
{
	(void)data;
	void *p = calloc(nmemb, size);
	if (p != NULL)
		outstanding++;
	return p;
}

static void *count_realloc(void *data, void *ptr, size_t size)
{
	(void)data;
	void *p = realloc(ptr, size);
	if (ptr == NULL && p != NULL)
		outstanding++;
	return p;
}

static void *count_aligned_alloc(void *data, size_t alignment, size_t size)
{
	(void)data;
	void *p = aligned_alloc(alignment, size);
	if (p != NULL)
		outstanding++;
	return p;
}

static void count_aligned_free(void *data, size_t alignment, void *ptr)
{
	(void)alignment;
	count_free(data, ptr);
}

static struct raft_heap counting_heap = {
    .data = NULL,
    .malloc = count_malloc,
    .free = count_free,
    .calloc = count_calloc,
    .realloc = count_realloc,
    .aligned_alloc = count_aligned_alloc,
    .aligned_free = count_aligned_free,
};

/* ---- driving the follower ---- */

static raft_time now_ms;

static int step(struct raft *r, struct raft_event *ev, struct raft_update *up)
{
	now_ms += STEP_MS;
	ev->time = now_ms;
	ev->capacity = CAPACITY_MB;
	return raft_step(r, ev, up);
}

/* The leader's InstallSnapshot, its buffers from libraft's heap, as
 * libraft's decoder hands them to raft_step: the receiver owns them. */
static void install_snapshot_message(struct raft_message *m)
{
	memset(m, 0, sizeof *m);
	m->type = RAFT_INSTALL_SNAPSHOT;
	m->server_id = LEADER_ID;
	m->server_address = "1";
	m->install_snapshot.term = LEADER_TERM;
	m->install_snapshot.last_index = SNAPSHOT_INDEX;
	m->install_snapshot.last_term = LEADER_TERM;
	m->install_snapshot.conf_index = 1;
	raft_configuration_init(&m->install_snapshot.conf);
	for (raft_id id = 1; id <= N_VOTERS; id++) {
		char address[8];
		snprintf(address, sizeof address, "%llu", (unsigned long long)id);
		assert_int_equal(raft_configuration_add(&m->install_snapshot.conf, id, address, RAFT_VOTER),
				 0);
	}
	m->install_snapshot.data.len = SNAPSHOT_BYTES;
	m->install_snapshot.data.base = raft_malloc(SNAPSHOT_BYTES);
	assert_non_null(m->install_snapshot.data.base);
	memset(m->install_snapshot.data.base, 0x5a, SNAPSHOT_BYTES);
}

static void test_install_snapshot_during_install_is_freed(void **state)
{
	(void)state;
	struct raft r;
	struct raft_event ev;
	struct raft_update up;
	struct raft_message m;

	raft_heap_set(&counting_heap);
	outstanding = 0;
	now_ms = 0;

	memset(&r, 0, sizeof r);
	assert_int_equal(raft_init(&r, NULL, NULL, FOLLOWER_ID, "2"), 0);
	memset(&ev, 0, sizeof ev);
	ev.type = RAFT_START; /* a new member: term 0, nothing persisted */
	ev.start.start_index = 1;
	assert_int_equal(step(&r, &ev, &up), 0);

	/* The first request starts the install: its buffers go to the caller. */
	install_snapshot_message(&m);
	memset(&ev, 0, sizeof ev);
	ev.type = RAFT_RECEIVE;
	ev.receive.message = &m;
	assert_int_equal(step(&r, &ev, &up), 0);
	assert_true(up.flags & RAFT_UPDATE_SNAPSHOT);
	struct raft_snapshot_metadata metadata = up.snapshot.metadata;
	struct raft_buffer chunk = up.snapshot.chunk;

	/* The leader's retry, while the install is under way: ignored, and its
	 * buffers freed. */
	install_snapshot_message(&m);
	memset(&ev, 0, sizeof ev);
	ev.type = RAFT_RECEIVE;
	ev.receive.message = &m;
	assert_int_equal(step(&r, &ev, &up), 0);
	assert_false(up.flags & RAFT_UPDATE_SNAPSHOT);

	/* The install is persisted: the configuration goes back to libraft,
	 * the data to the state machine (here: freed). */
	memset(&ev, 0, sizeof ev);
	ev.type = RAFT_PERSISTED_SNAPSHOT;
	ev.persisted_snapshot.metadata = metadata;
	ev.persisted_snapshot.offset = 0;
	ev.persisted_snapshot.last = true;
	assert_int_equal(step(&r, &ev, &up), 0);
	assert_int_equal(raft_current_term(&r), LEADER_TERM);
	raft_free(chunk.base);

	raft_close(&r, NULL);
	raft_heap_set_default();
	if (outstanding != 0)
		fail_msg(
		    "%ld allocation(s) of libraft still held after close: the retried InstallSnapshot leaked",
		    outstanding);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_install_snapshot_during_install_is_freed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
