/* sim_io.h: makes libraft's in-memory fixture I/O survive a raft restart, so a node can crash and restart. */
#ifndef TSORACLE_SIM_IO_H
#define TSORACLE_SIM_IO_H

#include <raft.h>
#include <stdbool.h>

/*
 * raft_fixture_kill()/raft_fixture_revive() only freeze and thaw a server:
 * its raft instance keeps its memory (role, term, commit index, FSM). A
 * process restart is modelled instead by raft_close(), raft_init() and
 * raft_start() on the same fixture raft_io, which keeps what a disk would
 * (term, vote, entries, snapshot). libraft 0.22.1's fixture I/O was never
 * reloaded upstream and gets two things wrong, which this layer corrects by
 * wrapping three of its methods:
 *
 *   - load() reports the entries as starting right after the snapshot, but
 *     after a snapshot taken with trailing entries it keeps every entry from
 *     index 1: the leading ones are dropped here;
 *   - after an installed snapshot (snapshot_put with trailing 0) its entries
 *     start after that snapshot, but truncate() still counts from index 1
 *     and compares with the index of its last stored entry: the index is
 *     rebased here;
 *   - truncate() acts at once on the entries stored so far, while appends
 *     still in flight store their (now stale) entries afterwards: a restart
 *     would load a log with entries raft had discarded. Here a truncation
 *     waits for the appends in flight, as on a disk (libraft's uv backend
 *     queues it behind them).
 *
 * So the layer tracks, per raft_io, the index its first stored entry has
 * and how many entries it has stored (appends counted when they complete).
 * The fixture completes appends in submission order only if the disk
 * latency stays the same: the simulation never changes it.
 */

/*
 * And one bug of libraft 0.22.1 itself, which the simulation found: to send
 * a snapshot, the legacy layer (legacyLoadSnapshotCb in src/legacy.c) asks
 * the raft_io for it; if a newer snapshot was taken meanwhile, it gets that
 * one and moves the InstallSnapshot's last_index to it, but keeps last_term
 * of the older one. The follower installs a snapshot with the wrong term,
 * then finds the next AppendEntries conflicting with a committed entry
 * (RAFT_SHUTDOWN), and libraft's recvCb frees the entries' batch twice:
 * heap corruption, an abort. The uv backend loads the latest snapshot too,
 * so the daemon is exposed. Wrapping send() and snapshot_get(), this layer
 * sends the term of the snapshot actually loaded, as a fixed libraft would,
 * and counts how often it had to; sim_io_fix_snapshot_terms(false) leaves
 * the bug in, to reproduce it.
 */
void sim_io_fix_snapshot_terms(bool fix);
unsigned long sim_io_snapshot_term_fixes(void);

/*
 * A second bug of libraft 0.22.1, found by the membership schedules
 * (docs/simulation.md, Findings): a follower that receives a batch of
 * entries whose configuration change is not the first one records the
 * change at the batch's first index (replicationAppend in src/replication.c
 * passes index, not index + i, to membershipUncommittedChange; the leader's
 * path in client.c passes index + i). When the change commits, its index
 * does not match, so the follower never marks it committed; the snapshots
 * it takes then carry the configuration from before, and after a restart
 * it counts a removed member as a voter again: that member can be elected
 * and serve. Wrapping append(), this layer sets the uncommitted index to
 * the change's own index, as a fixed libraft would, and counts how often it
 * had to; sim_io_fix_snapshot_terms(false) leaves this bug in too.
 */
unsigned long sim_io_change_index_fixes(void);

/* Wraps the methods of r's io; call once per server, after
 * raft_fixture_bootstrap() (n_stored: the entries it holds then). r stays
 * the same struct raft across restarts (raft_close, raft_init). */
void sim_io_wrap(struct raft *r, unsigned n_stored);

/* Forgets every wrapped raft_io (a new fixture). */
void sim_io_reset(void);

/* Snapshots a wrapped io installed (sent by a leader), since sim_io_wrap. */
unsigned long sim_io_installs(struct raft_io *io);

#endif /* TSORACLE_SIM_IO_H */
