/* test_raft_prevote.c: libraft's pre-vote deadlock (scripts/patches/raft-0.22.1-prevote-term.patch). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <string.h>

#include <raft.h>
#include <raft/fixture.h>

/*
 * The state the simulation's seed 105070 ended in (docs/simulation.md,
 * "Findings"), rebuilt on libraft's fixture: three voters, all up and
 * connected, pre-vote on as node.c sets it, and
 *
 *   n0: term 7,  last index 7;
 *   n1: term 14, last index 1;
 *   n2: term 4,  last index 8 (the most up-to-date log).
 *
 * n1's log is the shortest: n1 gets no vote. n2 needs n0's or n1's vote,
 * n0 needs n1's (n2's log is longer), and each of those voters has a term
 * above the one the pre-vote asks for. Unpatched libraft 0.22.1 answers
 * such a pre-vote with the request's term, so n0 and n2 never learn a
 * higher term and no one is ever elected. With the patch, the answer
 * carries the voter's term, the candidate steps up to it, and can win.
 */

#define N_NODES           3
#define ELECTION_MS       1000
#define HEARTBEAT_MS      100
/* Ample: an election takes one to a few timeouts once terms are learnt. */
#define WAIT_ELECTIONS    50
#define COMMON_LOG_TERM   2 /* the term of entries 2.. on n0 and n2 */
#define ENTRY_SIZE        8
#define BOOTSTRAP_ENTRIES 1

static const raft_term node_term[N_NODES] = {7, 14, 4};
static const raft_index node_last_index[N_NODES] = {7, 1, 8};

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
	(void)fsm;
	(void)buf;
	*result = NULL;
	return 0;
}

typedef struct prevote_fixture {
	struct raft_fixture f;
	struct raft_fsm fsms[N_NODES];
} prevote_fixture;

/* An entry as a leader of COMMON_LOG_TERM would have appended it: every
 * node's entry at an index is the same (Log Matching). */
static void add_command(struct raft_fixture *f, unsigned i, raft_index index)
{
	struct raft_entry entry;

	memset(&entry, 0, sizeof entry);
	entry.type = RAFT_COMMAND;
	entry.term = COMMON_LOG_TERM;
	entry.buf.len = ENTRY_SIZE;
	entry.buf.base = raft_malloc(ENTRY_SIZE); /* the fixture frees it */
	assert_non_null(entry.buf.base);
	memset(entry.buf.base, (int)index, ENTRY_SIZE);
	raft_fixture_add_entry(f, i, &entry);
}

static int setup(void **state)
{
	static prevote_fixture pf; /* the fixture is large */
	struct raft_fixture *f = &pf.f;
	struct raft_configuration conf;

	memset(&pf, 0, sizeof pf);
	assert_int_equal(raft_fixture_init(f), 0);
	for (unsigned i = 0; i < N_NODES; i++) {
		struct raft *r;

		pf.fsms[i].version = 1;
		pf.fsms[i].apply = fsm_apply;
		assert_int_equal(raft_fixture_grow(f, &pf.fsms[i]), 0);
		r = raft_fixture_get(f, i);
		raft_set_election_timeout(r, ELECTION_MS);
		raft_set_heartbeat_timeout(r, HEARTBEAT_MS);
		raft_set_pre_vote(r, true);
		r->tracer = NULL;
	}
	assert_int_equal(raft_fixture_configuration(f, N_NODES, &conf), 0);
	assert_int_equal(raft_fixture_bootstrap(f, &conf), 0);
	raft_configuration_close(&conf);
	for (unsigned i = 0; i < N_NODES; i++) {
		raft_fixture_set_term(f, i, node_term[i]);
		for (raft_index index = BOOTSTRAP_ENTRIES + 1; index <= node_last_index[i]; index++)
			add_command(f, i, index);
	}
	assert_int_equal(raft_fixture_start(f), 0);
	*state = &pf;
	return 0;
}

static int teardown(void **state)
{
	prevote_fixture *pf = *state;

	raft_fixture_close(&pf->f);
	return 0;
}

/* The rebuilt state is the stuck one: no leader, the terms and logs above. */
static void test_starts_as_seed_105070_ended(void **state)
{
	prevote_fixture *pf = *state;

	for (unsigned i = 0; i < N_NODES; i++) {
		struct raft *r = raft_fixture_get(&pf->f, i);

		assert_int_equal(r->current_term, node_term[i]);
		assert_int_equal(raft_last_index(r), node_last_index[i]);
		assert_int_not_equal(raft_state(r), RAFT_LEADER);
	}
}

/* n0 or n2 is elected, above every term the cluster held, and everyone
 * follows with the leader's log. */
static void test_a_leader_is_elected(void **state)
{
	prevote_fixture *pf = *state;
	struct raft_fixture *f = &pf->f;
	unsigned leader;
	struct raft *l;

	assert_true(raft_fixture_step_until_has_leader(f, WAIT_ELECTIONS * ELECTION_MS));
	/* Let n1's term 14 reach the leader, then the cluster settle. */
	raft_fixture_step_until_elapsed(f, WAIT_ELECTIONS * ELECTION_MS);
	leader = raft_fixture_leader_index(f);
	assert_true(leader == 0 || leader == 2);
	l = raft_fixture_get(f, leader);
	assert_true(l->current_term > node_term[1]);
	/* At least a barrier of the leader's term above its log. */
	assert_true(raft_last_index(l) > node_last_index[leader]);
	for (unsigned i = 0; i < N_NODES; i++) {
		struct raft *r = raft_fixture_get(f, i);

		assert_int_equal(r->current_term, l->current_term);
		assert_int_equal(raft_last_index(r), raft_last_index(l));
		assert_int_equal(raft_state(r), i == leader ? RAFT_LEADER : RAFT_FOLLOWER);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_starts_as_seed_105070_ended, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_a_leader_is_elected, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
