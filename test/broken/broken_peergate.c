/* broken_peergate.c: positive control, linked with -Wl,--wrap=peer_gate_judge: one global cap, no room for
 * members. */
#include "wrap.h"

#include <stdio.h>

/*
 * The Raft port's handshake gate as it was before it kept room for members
 * (sidecar/peer.h): PEER_MAX_PENDING connections in the handshake at once
 * from anywhere, no limit per source address, no share reserved for the
 * members' hosts. A stranger that keeps that many silent connections open,
 * renewing each as it is dropped, keeps a restarted member out; t/108 must
 * catch it (scripts/test.sh, tap_peergate_control). Never installed.
 */
const char *__wrap_peer_gate_judge(const peer_pending *p, bool member_host, const char *host, char *why,
				   size_t whylen)
{
	(void)member_host;
	(void)host;
	if (p->all < PEER_MAX_PENDING)
		return NULL;
	snprintf(why, whylen, "%u other connections are still in the handshake", p->all);
	return why;
}
