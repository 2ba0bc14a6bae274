/* broken_membercert.c: positive control, linked with -Wl,--wrap=node_is_member: the client port admits the
 * member certificate of a removed member. */
#include "wrap.h"

/*
 * Breaks the client port's check of member certificates (sidecar/server.c,
 * srv_member_gone) on purpose, for the test that must catch it
 * (t/113_member_paths.pl, scripts/test.sh; never linked into what is
 * installed): every id counts as a current member there, so a member
 * removed from the configuration goes on forwarding and reading with its
 * still valid certificate. The Raft port is not affected (peer.c asks
 * node.c through its own callback).
 */

bool __wrap_node_is_member(struct node *n, uint64_t id)
{
	(void)n;
	(void)id;
	return true;
}
