/* peer_gate.c: the Raft port's handshake gate: who may start a TLS handshake while others are in theirs
 * (peer.h). */
#include "peer.h"

#include <stdio.h>

const char *peer_gate_judge(const peer_pending *p, bool member_host, const char *host, char *why,
			    size_t whylen)
{
	if (p->same_source >= PEER_MAX_PENDING_PER_SOURCE)
		snprintf(why, whylen, "%u other connections from %s are still in the handshake",
			 p->same_source, host);
	else if (p->all >= PEER_MAX_PENDING)
		snprintf(why, whylen, "%u other connections are still in the handshake", p->all);
	else if (!member_host && p->strangers >= PEER_MAX_PENDING - PEER_RESERVED_FOR_MEMBERS)
		snprintf(why, whylen,
			 "%u connections from addresses that are no member's host are still in the handshake "
			 "(the rest is kept for members)",
			 p->strangers);
	else
		return NULL;
	return why;
}
