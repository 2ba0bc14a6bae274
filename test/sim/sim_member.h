/* sim_member.h: membership changes in a schedule, one at a time, as tsoracled's member.c and tsoracle-ctl
 * make them. */
#ifndef TSORACLE_SIM_MEMBER_H
#define TSORACLE_SIM_MEMBER_H

#include <stdbool.h>
#include <stdint.h>

#include "sim_cluster.h"
#include "sim_rng.h"

/*
 * The changes (docs/simulation.md, "Membership"), each made by a leader
 * that may make one as sidecar/member.c's member_can_change says (it leads,
 * hands nothing over, has no configuration change uncommitted, and its fence
 * is committed), one at a time, with libraft's calls in member.c's order:
 *
 *   add          a spare starts empty (join) and is added: raft_add (spare),
 *                raft_assign (learner), its match index reaches the
 *                leader's last index (by log, or by snapshot once the
 *                leader has compacted), raft_assign (voter, with libraft's
 *                catch-up rounds); not caught up within the catch-up
 *                timeout, it is removed again;
 *   remove       a follower (a voter, or a learner left by an add that did
 *                not end), refused when the voters left that are up (as
 *                the leader sees them: up, and linked both ways) would be
 *                no majority; the removed node is then stopped, or left
 *                running, forgotten;
 *   remove the leader, as tsoracle-ctl does: it hands leadership over,
 *                and the new leader removes it;
 *   remove the leader by itself, as libraft allows (raft_remove of its own
 *                id): it leads until the removal commits, then libraft
 *                steps it down in the same term;
 *   replace      a follower is killed (-9), removed, its data directory
 *                wiped (it never restarts), and a spare added with a new
 *                id.
 *
 * A change whose leader loses leadership, crashes or pauses is abandoned as
 * tsoracle-ctl would report it; what it left (a learner, an uncommitted
 * configuration) is what the next change finds. sim_cluster.c tells when
 * a removal has committed; sim_check.h's SIM_P_ONE_SERVER and
 * SIM_P_REMOVED are the properties.
 */

enum sim_member_op {
	SIM_OP_NONE,
	SIM_OP_ADD,
	SIM_OP_REMOVE,
	SIM_OP_REMOVE_LEADER,
	SIM_OP_REMOVE_SELF,
	SIM_OP_REPLACE,
	SIM_N_OPS
};

enum sim_member_stage {
	SIM_ST_IDLE,
	SIM_ST_HANDING_OVER,
	SIM_ST_ADDING,
	SIM_ST_LEARNING,
	SIM_ST_CATCHING_UP,
	SIM_ST_PROMOTING,
	SIM_ST_REMOVING,
	SIM_ST_UNDOING
};

typedef struct sim_member_counters {
	uint64_t started[SIM_N_OPS];
	uint64_t added;             /* voters added */
	uint64_t added_by_snapshot; /* ... that installed a snapshot to catch up */
	uint64_t undone;            /* adds removed again (catch-up timeout) */
	uint64_t removed;           /* removals that committed (every kind) */
	uint64_t refused;           /* removals refused: no quorum would be left */
	uint64_t abandoned;         /* leadership moved, crashed or paused */
} sim_member_counters;

typedef struct sim_members {
	sim_cluster *c;
	sim_rng *rng;
	enum sim_member_op op;
	enum sim_member_stage stage;
	unsigned leader; /* the node making the change */
	unsigned target; /* the node added or removed */
	bool then_add;   /* a replacement: add a spare once the removal is done */
	uint64_t seq;    /* changes asked of libraft, so that a late answer is known */
	bool change_done;
	int change_status;
	uint64_t catch_up_index;
	uint64_t deadline_ms;
	unsigned long installs_before; /* the target's installed snapshots */
	sim_member_counters n;
} sim_members;

void sim_members_init(sim_members *m, sim_cluster *c, sim_rng *rng);

/* The nemesis asks for a change: one is started if none is under way and a
 * leader can make one. */
void sim_members_start(sim_members *m);

/* After every fixture step (sim_cluster's after_step): moves the change on. */
void sim_members_sync(void *arg);

#endif /* TSORACLE_SIM_MEMBER_H */
