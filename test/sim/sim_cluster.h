/* sim_cluster.h: N simulated tsoracled on libraft's fixture: links, pauses, crashes and restarts. */
#ifndef TSORACLE_SIM_CLUSTER_H
#define TSORACLE_SIM_CLUSTER_H

#include <raft.h>
#include <raft/fixture.h>
#include <stdbool.h>
#include <stdint.h>

#include "sim_check.h"
#include "sim_clock.h"
#include "sim_node.h"
#include "tsoracle.h"

/* The voters a schedule starts with, at most; the membership schedules
 * (sim_member.h) add SIM_SPARES nodes that start outside the configuration;
 * with the metronome (below) they fill the fixture's RAFT_FIXTURE_MAX_SERVERS. */
#define SIM_MAX_VOTERS 5
#define SIM_SPARES     2
#define SIM_MAX_NODES  (SIM_MAX_VOTERS + SIM_SPARES)

/*
 * What is real: libraft 0.22.1 (the fixture's raft instances) and
 * libtsoracle on every node as tsoracled runs it: the FSM (sidecar/fsm.c),
 * the allocator (sidecar/alloc.c) and the leadership driver
 * (sidecar/lead.c), hosted by sim_node. What is simulated: time,
 * the network and the disk (the fixture's in-memory raft_io), the clocks
 * (sim_clock) and the processes:
 *
 *   up       raft ticks and talks; the driver runs; clients are served;
 *   paused   SIGSTOP: no ticks, no messages, no driver; everything in memory
 *            is kept, and resuming continues where it stopped (a leader
 *            wakes up still believing it leads);
 *   crashed  kill -9: the same, and a restart builds a new process: raft
 *            reloaded from what the fixture persisted (sim_io), a fresh FSM
 *            replayed by raft, a fresh allocator and driver.
 */

typedef struct sim_params {
	unsigned n;      /* the voters bootstrapped */
	unsigned spares; /* nodes that start empty, outside the configuration */
	unsigned election_timeout_ms;
	unsigned heartbeat_ms;
	unsigned snapshot_threshold;
	unsigned snapshot_trailing;
	unsigned net_latency_ms[SIM_MAX_NODES];
	unsigned disk_latency_ms[SIM_MAX_NODES];
	/* The cluster's settings; alloc.lease_ms and election_timeout_ms are
	 * those of every node but where lease_ms[i] and election_ms[i] differ
	 * (sim_params_pick_leases: members with different leases). */
	ta_config alloc;
	uint64_t lease_ms[SIM_MAX_NODES];
	unsigned election_ms[SIM_MAX_NODES];
	bool mixed;         /* some node's lease or election timeout differs */
	unsigned long_node; /* mixed: the node with the long lease and election timeout */
	/* The driver's clock check (lead_clock_configure); 0: off. */
	uint64_t max_clock_offset_ms;
} sim_params;

enum sim_proc { SIM_UP, SIM_PAUSED, SIM_CRASHED };

/*
 * A node's place in the membership (sim_member.h): a spare that was never
 * started; a member (bootstrapped, or started with join and added: from its
 * start on, whatever the configuration says of it); removed, once a
 * committed configuration no longer holds it (it may still run, forgotten,
 * until the nemesis stops it; it never restarts: its data directory is
 * wiped, and a replacement gets a new id).
 */
enum sim_member { SIM_M_SPARE, SIM_M_MEMBER, SIM_M_REMOVED };

/* A crashed node stays down at least this long (true ms) before it can
 * restart: by then the fixture has finished the I/O it had started (its
 * latencies are far below this), so raft_close() leaves nothing behind. */
#define SIM_MIN_DOWN_MS 500

/*
 * The fixture only moves time from one event to the next, and with few
 * nodes and long heartbeats events can be hundreds of ms apart: no client
 * could call, and no driver sync (the LEAD_TICK_MS watch) run, in between.
 * So one more fixture server, the metronome, is started but never
 * bootstrapped nor put in the configuration: it stays a follower that
 * talks to no one, and its raft ticks every SIM_METRONOME_MS give the
 * simulation an event, a driver sync and a chance of a client call.
 */
#define SIM_METRONOME_MS LEAD_TICK_MS

/* Wall clock offsets each node had lately, for the clock property
 * (sim_cluster.c): a change, and the offset it replaced. */
#define SIM_OFFSET_HISTORY 16
typedef struct sim_offset_change {
	uint64_t at_ms;
	int64_t before_ms;
} sim_offset_change;

typedef struct sim_cluster {
	struct raft_fixture f;
	sim_params p;
	unsigned n;                              /* nodes: p.n + p.spares; the metronome is node n */
	uint64_t now_ms;                         /* f.time, as the nodes read it */
	struct raft_fsm fsms[SIM_MAX_NODES + 1]; /* the last: the metronome's */
	fsm_state fsm_states[SIM_MAX_NODES + 1];
	sim_clock clocks[SIM_MAX_NODES];
	sim_node nodes[SIM_MAX_NODES];
	enum sim_proc proc[SIM_MAX_NODES];
	uint64_t down_since_ms[SIM_MAX_NODES];
	bool cut[SIM_MAX_NODES][SIM_MAX_NODES]; /* messages from i to j are dropped */
	sim_check *check;
	uint64_t n_steps; /* fixture steps */
	uint64_t n_restarts;
	lead_counters retired; /* counters of the processes restarts replaced */
	/* The clock check's measurements (clockprobe.c's, simulated). */
	uint64_t next_probe_ms;
	sim_offset_change offset_history[SIM_MAX_NODES][SIM_OFFSET_HISTORY];
	unsigned offset_changes[SIM_MAX_NODES]; /* changes recorded, ever */
	/* Membership. seen_index: the highest index of a committed
	 * configuration that held the node, as any node knew it. */
	enum sim_member member[SIM_MAX_NODES];
	uint64_t seen_index[SIM_MAX_NODES];
	/* Runs after every fixture step, before the drivers sync (sim_member.c
	 * moves its change on). */
	void (*after_step)(void *arg);
	void *after_step_arg;
} sim_cluster;

/* Builds, bootstraps and starts the cluster; clocks must be set in c->clocks
 * before. election_timeouts: each node's randomized election timeout, in
 * [election_timeout_ms, 2 * election_timeout_ms]. */
void sim_cluster_init(sim_cluster *c, const sim_params *p, const unsigned *election_timeouts,
		      sim_check *check);
void sim_cluster_close(sim_cluster *c);

/* One fixture event, then the drivers of the nodes that are up. */
void sim_cluster_step(sim_cluster *c);

/* At most one node serves now (SIM_P_ONE_SERVER); after every step, and
 * the schedule calls it at its grants. */
void sim_cluster_check_servers(sim_cluster *c);

/* Sets the election timeout node i will draw next (fixture's knob). */
void sim_cluster_set_election_timeout(sim_cluster *c, unsigned i, unsigned ms);

/* Links: cut[i][j] drops messages from i to j. Apply after changing cut. */
void sim_cluster_apply_links(sim_cluster *c);

void sim_cluster_pause(sim_cluster *c, unsigned i);
void sim_cluster_resume(sim_cluster *c, unsigned i);
void sim_cluster_crash(sim_cluster *c, unsigned i);
/* Only a member, once it has been down SIM_MIN_DOWN_MS. */
bool sim_cluster_can_restart(const sim_cluster *c, unsigned i);
void sim_cluster_restart(sim_cluster *c, unsigned i);

/* Starts spare i, empty, outside the configuration (tsoracled --join). */
void sim_cluster_join(sim_cluster *c, unsigned i);

/* Node i's raft id, and the node of an id (c->n if none). */
static inline raft_id sim_cluster_id(unsigned i)
{
	return (raft_id)i + 1;
}
unsigned sim_cluster_node_of(const sim_cluster *c, raft_id id);

/* Whether id is a voter of conf. */
bool sim_conf_voter(const struct raft_configuration *conf, raft_id id);

/* Node i's wall clock jumps to offset_ms from the true time (a bad NTP, or
 * its repair). */
void sim_cluster_set_offset(sim_cluster *c, unsigned i, int64_t offset_ms);

/* The highest offset node i's wall clock had at any time in the last
 * window_ms. */
int64_t sim_cluster_recent_offset(const sim_cluster *c, unsigned i, uint64_t window_ms);

#endif /* TSORACLE_SIM_CLUSTER_H */
