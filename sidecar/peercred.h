/* peercred.h: who may use the local socket: its owner, root, and the users and groups client-socket-allow
 * names. */
#ifndef TSORACLE_PEERCRED_H
#define TSORACLE_PEERCRED_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/*
 * The unix socket is mode 0660, so the kernel already keeps out everyone
 * but its owner and group; the server then checks each connection's
 * credentials (SO_PEERCRED, taken by the kernel at connect) against this
 * list, so that a group shared with other software does not admit it too.
 * Names are resolved once, at start: a name that does not exist is an
 * error then, not a silent refusal later.
 */

#define PC_MAX_ENTRIES 32  /* users and groups in client-socket-allow */
#define PC_MAX_MEMBERS 256 /* members of the groups named, in all */

typedef struct pc_allow {
	uid_t uids[PC_MAX_ENTRIES];
	unsigned n_uids;
	gid_t gids[PC_MAX_ENTRIES];
	unsigned n_gids;
	uid_t members[PC_MAX_MEMBERS]; /* users listed as members of those groups */
	unsigned n_members;
} pc_allow;

/* Parses "user,@group,1234,@5678,..." (names or numeric ids; "" allows no
 * one beyond the owner and root); on error -1 with a message naming
 * client-socket-allow and the entry. */
int pc_allow_parse(pc_allow *a, const char *spec, char *err, size_t errlen);

/* True if a peer with these credentials may use the socket: this process's
 * effective uid, root, a listed uid, a listed group as its gid, or a
 * listed group's member. */
bool pc_allowed(const pc_allow *a, uid_t uid, gid_t gid);

/* The credentials of the process at the other end of unix socket fd, as
 * the kernel recorded them at connect: 0, or -1 with errno set. */
int pc_peer(int fd, uid_t *uid, gid_t *gid);

#endif /* TSORACLE_PEERCRED_H */
