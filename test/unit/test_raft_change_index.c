/* test_raft_change_index.c: a follower records a configuration change that
 * arrives inside a batch at the change's own index
 * (scripts/patches/raft-0.22.1-change-index.patch). */
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
 * A follower driven through raft_step (libraft's own engine, no I/O),
 * started from the bootstrap configuration {1, 2, 3} at index 1, is sent
 * the leader's AppendEntries carrying, in one batch, two commands and then
 * the change that removes member 3 (indexes 2, 3 and 4): a follower that
 * was behind receives exactly this when it catches up across a removal
 * (the simulation's seed 1638, docs/simulation.md, Findings 5). Once the
 * batch is persisted and the leader says index 4 is committed, the host
 * applies the change (RAFT_CONFIGURATION, as the legacy layer does on
 * apply), and the follower must take it as its committed configuration:
 * that is what its snapshots carry and what a restart counts voters by.
 * Unpatched libraft 0.22.1 records the change at index 2, the batch's
 * first, and so ignores its commit: the committed configuration stays
 * {1, 2, 3}.
 */

#define FOLLOWER_ID   2
#define LEADER_ID     1
#define REMOVED_ID    3
#define N_VOTERS      3
#define BOOT_TERM     1
#define LEADER_TERM   2
#define FIRST_NEW     2 /* index of the batch's first entry */
#define N_COMMANDS    2 /* commands before the change in the batch */
#define CHANGE_INDEX  (FIRST_NEW + N_COMMANDS)
#define COMMAND_BYTES 8
#define CAPACITY_MB   1024 /* disk space libraft is told it has (MB) */
#define STEP_MS       10   /* time between the events (ms) */

static raft_time now_ms;

static int step(struct raft *r, struct raft_event *ev, struct raft_update *up)
{
	now_ms += STEP_MS;
	ev->time = now_ms;
	ev->capacity = CAPACITY_MB;
	return raft_step(r, ev, up);
}

/* Members 1..n as voters (addresses are their ids). */
static void configuration(struct raft_configuration *c, raft_id n)
{
	raft_configuration_init(c);
	for (raft_id id = 1; id <= n; id++) {
		char address[8];
		snprintf(address, sizeof address, "%llu", (unsigned long long)id);
		assert_int_equal(raft_configuration_add(c, id, address, RAFT_VOTER), 0);
	}
}

static void change_entry(struct raft_entry *e, raft_term term, raft_id n_voters)
{
	struct raft_configuration c;
	configuration(&c, n_voters);
	memset(e, 0, sizeof *e);
	e->type = RAFT_CHANGE;
	e->term = term;
	assert_int_equal(raft_configuration_encode(&c, &e->buf), 0);
	raft_configuration_close(&c);
}

static void test_change_in_batch_commits_at_its_index(void **state)
{
	(void)state;
	struct raft r;
	struct raft_event ev;
	struct raft_update up;
	struct raft_message m;
	struct raft_entry boot;
	raft_index persisted;

	now_ms = 0;
	memset(&r, 0, sizeof r);
	assert_int_equal(raft_init(&r, NULL, NULL, FOLLOWER_ID, "2"), 0);

	/* Started from the bootstrap entry: committed by definition. */
	change_entry(&boot, BOOT_TERM, N_VOTERS);
	boot.batch = boot.buf.base;
	memset(&ev, 0, sizeof ev);
	ev.type = RAFT_START;
	ev.start.term = BOOT_TERM;
	ev.start.start_index = 1;
	ev.start.entries = &boot;
	ev.start.n_entries = 1;
	assert_int_equal(step(&r, &ev, &up), 0);
	assert_int_equal(r.configuration_committed_index, 1);

	/* The batch: commands at 2 and 3, the change to {1, 2} at 4, in one
	 * buffer owned by the receiver (libraft frees it by entries[0].batch,
	 * as for a decoded message). */
	struct raft_entry change;
	change_entry(&change, LEADER_TERM, N_VOTERS - 1);
	size_t size = N_COMMANDS * COMMAND_BYTES + change.buf.len;
	uint8_t *batch = raft_malloc(size);
	assert_non_null(batch);
	struct raft_entry entries[N_COMMANDS + 1];
	memset(entries, 0, sizeof entries);
	for (unsigned i = 0; i < N_COMMANDS; i++) {
		entries[i].type = RAFT_COMMAND;
		entries[i].term = LEADER_TERM;
		entries[i].buf.base = batch + i * COMMAND_BYTES;
		entries[i].buf.len = COMMAND_BYTES;
		memset(entries[i].buf.base, (int)i, COMMAND_BYTES);
	}
	entries[N_COMMANDS] = change;
	entries[N_COMMANDS].buf.base = batch + N_COMMANDS * COMMAND_BYTES;
	memcpy(entries[N_COMMANDS].buf.base, change.buf.base, change.buf.len);
	raft_free(change.buf.base);
	for (unsigned i = 0; i <= N_COMMANDS; i++)
		entries[i].batch = batch;

	memset(&m, 0, sizeof m);
	m.type = RAFT_APPEND_ENTRIES;
	m.server_id = LEADER_ID;
	m.server_address = "1";
	m.append_entries.term = LEADER_TERM;
	m.append_entries.prev_log_index = FIRST_NEW - 1;
	m.append_entries.prev_log_term = BOOT_TERM;
	m.append_entries.leader_commit = 1;
	m.append_entries.entries = entries;
	m.append_entries.n_entries = N_COMMANDS + 1;
	memset(&ev, 0, sizeof ev);
	ev.type = RAFT_RECEIVE;
	ev.receive.message = &m;
	assert_int_equal(step(&r, &ev, &up), 0);
	assert_true(up.flags & RAFT_UPDATE_ENTRIES);
	assert_int_equal(up.entries.index, FIRST_NEW);
	assert_int_equal(up.entries.n, N_COMMANDS + 1);
	if (r.configuration_uncommitted_index != CHANGE_INDEX)
		fail_msg("the change at index %d was recorded at index %llu (the batch starts at %d)",
			 CHANGE_INDEX, (unsigned long long)r.configuration_uncommitted_index, FIRST_NEW);

	/* The host persisted the batch. */
	persisted = CHANGE_INDEX;
	memset(&ev, 0, sizeof ev);
	ev.type = RAFT_PERSISTED_ENTRIES;
	ev.persisted_entries.index = persisted;
	assert_int_equal(step(&r, &ev, &up), 0);

	/* The leader's next heartbeat says the change is committed... */
	memset(&m, 0, sizeof m);
	m.type = RAFT_APPEND_ENTRIES;
	m.server_id = LEADER_ID;
	m.server_address = "1";
	m.append_entries.term = LEADER_TERM;
	m.append_entries.prev_log_index = CHANGE_INDEX;
	m.append_entries.prev_log_term = LEADER_TERM;
	m.append_entries.leader_commit = CHANGE_INDEX;
	memset(&ev, 0, sizeof ev);
	ev.type = RAFT_RECEIVE;
	ev.receive.message = &m;
	assert_int_equal(step(&r, &ev, &up), 0);
	assert_int_equal(raft_commit_index(&r), CHANGE_INDEX);

	/* ...and the host applies it, as libraft's legacy layer does. */
	memset(&ev, 0, sizeof ev);
	ev.type = RAFT_CONFIGURATION;
	ev.configuration.index = CHANGE_INDEX;
	configuration(&ev.configuration.conf, N_VOTERS - 1);
	assert_int_equal(step(&r, &ev, &up), 0);

	if (r.configuration_committed_index != CHANGE_INDEX)
		fail_msg("the change committed at index %d is not the committed configuration (that is "
			 "still index %llu's): a snapshot and a restart would count member %d as a voter",
			 CHANGE_INDEX, (unsigned long long)r.configuration_committed_index, REMOVED_ID);
	assert_int_equal(r.configuration_uncommitted_index, 0);
	assert_int_equal(r.configuration_committed.n, N_VOTERS - 1);
	for (unsigned i = 0; i < r.configuration_committed.n; i++)
		assert_int_not_equal(r.configuration_committed.servers[i].id, REMOVED_ID);

	raft_close(&r, NULL);
	raft_free(boot.buf.base);
	/* The host's, as the legacy layer frees a batch once it is persisted:
	 * libraft's core keeps only the entries' terms (LeakSanitizer found
	 * it, make test SANITIZE=1). */
	raft_free(batch);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_change_in_batch_commits_at_its_index),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
