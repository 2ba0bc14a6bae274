/* broken_removed.c: positive control, substituted for libraft's raft_state in the leadership driver's object:
 * a leader removed from the configuration keeps serving from its lease. */
#include <raft.h>
#include <stddef.h>

/*
 * Breaks SIM_P_REMOVED (test/sim/sim_check.h) on purpose, for the
 * simulation that must catch it (the Makefile's sim_broken_removed; never
 * linked into what is installed). test/test.mk renames the leadership
 * driver's calls to raft_state (sidecar/lead.c, objcopy --redefine-sym) to
 * this function; the simulation's own calls, and libraft's, still reach the
 * real one.
 *
 * The mistake: telling the end of a leadership by a new term. libraft steps
 * a leader whose own removal has committed down in the same term (Raft's
 * section 4.2.2), so the driver, reading "leader" for it, keeps serving
 * from its lease after its removal, while the new configuration elects a
 * leader of its own. (That leader waits the lease out, so the real-time
 * order survives; the removed node serving at all is what must not be.)
 */

enum raft_state broken_removed_raft_state(struct raft *r);

/* The raft instances seen, with the last term each led in. */
#define BROKEN_MAX_RAFTS 64

static struct {
	const struct raft *r;
	raft_term led;
} broken_seen[BROKEN_MAX_RAFTS];

static raft_term *broken_led(const struct raft *r)
{
	unsigned free_slot = BROKEN_MAX_RAFTS;

	for (unsigned i = 0; i < BROKEN_MAX_RAFTS; i++) {
		if (broken_seen[i].r == r)
			return &broken_seen[i].led;
		if (broken_seen[i].r == NULL && free_slot == BROKEN_MAX_RAFTS)
			free_slot = i;
	}
	if (free_slot == BROKEN_MAX_RAFTS)
		free_slot = 0; /* forget one: only a lost chance to misbehave */
	broken_seen[free_slot].r = r;
	broken_seen[free_slot].led = 0;
	return &broken_seen[free_slot].led;
}

static int broken_in_committed(const struct raft *r)
{
	for (unsigned i = 0; i < r->configuration_committed.n; i++)
		if (r->configuration_committed.servers[i].id == r->id)
			return 1;
	return 0;
}

enum raft_state broken_removed_raft_state(struct raft *r)
{
	enum raft_state s = raft_state(r);
	raft_term *led = broken_led(r);

	if (s == RAFT_LEADER)
		*led = raft_current_term(r);
	else if (s == RAFT_FOLLOWER && *led != 0 && *led == raft_current_term(r) &&
		 r->configuration_committed_index != 0 && !broken_in_committed(r))
		return RAFT_LEADER; /* "no new term: still leading" */
	return s;
}
