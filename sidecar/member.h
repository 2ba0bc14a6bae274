/* member.h: membership changes, one at a time: a member is added as a learner, caught up, then promoted; or
 * removed.
 */
#ifndef TSORACLE_MEMBER_H
#define TSORACLE_MEMBER_H

#include <raft.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "proto.h"

/*
 * The leader's side of tsoracle-ctl member add and member remove
 * (docs/cluster.md, "Membership"), on libraft's single-server changes:
 *
 *   add ID=RAFT/CLIENT  raft_add (a spare: in the configuration, receives
 *        nothing), raft_assign(STANDBY) (a learner: receives the log, or a
 *        snapshot when the log it needs is compacted, and does not vote),
 *        then the leader watches its match index until it reaches the
 *        leader's last index as it was when the learner started, within
 *        catch-up-timeout; then raft_assign(VOTER), answered once that
 *        configuration is committed: the member votes. If it does not catch
 *        up in time, it is removed again (raft_remove): no change.
 *   remove ID  raft_remove, answered once committed. Refused if it would
 *        leave fewer voters that are up (heard from within an election
 *        timeout, peer.h) than a quorum of the voters that remain, unless
 *        forced; refused for the leader itself (tsoracle-ctl hands over
 *        first, then asks the new leader).
 *
 * Why one at a time, and only from an established leader: a single-server
 * change keeps every majority of the old voters intersecting every majority
 * of the new ones, which is what the lease (I4) and the fence (I3) rest on
 * (tsoracle.h): a new leader's voters include one that acknowledged the old
 * leader's last entry. That holds only when no other change is pending and
 * the leader has committed an entry of its own term (Ongaro, "bug in
 * single-server membership changes", 2015): libraft 0.22 checks the first
 * (RAFT_CANTCHANGE), this module the second (the driver's fence of this
 * term is committed) and the one-at-a-time rule across its own stages.
 *
 * Everything runs from the node's loop (member_sync, from node_sync): the
 * raft_change callbacks only record their status and ask for a sync.
 */

struct node;

enum member_stage {
	MEMBER_IDLE = 0,
	MEMBER_ADDING,      /* raft_add in flight: the new member is a spare */
	MEMBER_LEARNING,    /* raft_assign(STANDBY) in flight */
	MEMBER_CATCHING_UP, /* a learner: watching its match index */
	MEMBER_PROMOTING,   /* raft_assign(VOTER) in flight */
	MEMBER_REMOVING,    /* raft_remove in flight */
	MEMBER_UNDOING,     /* raft_remove of a member that failed to catch up */
};

#define MEMBER_TEXT_SIZE    (TP_MAX_ERRMSG + 1)
#define MEMBER_ADDRESS_SIZE (2 * CFG_ADDR_SIZE)

/*
 * A caller's wait for a change (caller-owned): cb runs exactly once, from
 * the node's loop, with the outcome (TP_OK, or a TP_ERR_* and text saying
 * why, for people), unless member_cancel forgets it first.
 */
struct member_req;
typedef void (*member_cb)(struct member_req *req, uint16_t status, const char *text);
typedef struct member_req {
	void *data; /* the caller's */
	member_cb cb;
} member_req;

typedef struct member_change {
	enum member_stage stage;
	uint64_t id;
	char address[MEMBER_ADDRESS_SIZE];
	struct raft_change *change; /* in flight; its callback clears it */
	bool change_done;           /* the callback ran: change_status holds its status */
	int change_status;
	uint64_t started_ms;  /* the loop's time (uv_now) */
	uint64_t deadline_ms; /* catching up: give up then */
	uint64_t target;      /* catching up: the match index that counts as caught up */
	member_req *waiter;
	uint16_t undo_status; /* after an undo: the answer */
	char undo_text[MEMBER_TEXT_SIZE];
} member_change;

/* One member of the configuration this node knows (member_get). */
typedef struct member_info {
	uint64_t id;
	uint8_t role; /* enum tp_member_role */
	bool leader;
	bool up;              /* the leader heard from it within an election timeout (or it is the leader) */
	uint64_t match_index; /* the leader's knowledge; 0 on a follower */
	char address[MEMBER_ADDRESS_SIZE];
} member_info;

/* Starts adding member id at address "RAFT_IP:PORT/CLIENT_IP:PORT".
 * Returns TP_OK when req waits (cb runs later), else the refusal, with
 * text saying why, and cb never runs. */
uint16_t member_add(struct node *n, member_req *req, uint64_t id, const char *address, member_cb cb,
		    char *text, size_t textlen);

/* Starts removing member id (force: even if no quorum of members that are
 * up would remain). Returns as member_add. */
uint16_t member_remove(struct node *n, member_req *req, uint64_t id, bool force, member_cb cb, char *text,
		       size_t textlen);

/* Forgets req: its cb will not run (the change itself goes on). */
void member_cancel(struct node *n, member_req *req);

/* Member number index of the configuration this node knows: 0 and *out,
 * or -1 past the end. *count gets how many there are. */
int member_get(struct node *n, unsigned index, member_info *out, unsigned *count);

/* The client address of member id from the replicated configuration (the
 * part after '/'), else from this node's peers line; "" if neither knows. */
void member_client_address(struct node *n, uint64_t id, char *out, size_t outlen);

/* The watch: runs the change under way one step further. */
void member_sync(struct node *n);

/* The node closes: the waiter, if any, is answered TP_ERR_SHUTTING_DOWN. */
void member_close(struct node *n);

#endif /* TSORACLE_MEMBER_H */
