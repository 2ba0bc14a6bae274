/* long_lease.c: test timing, linked with -Wl,--wrap=ta_init: every member's lease is LONG_LEASE_MS, longer
 * than the election timeout. */
#include "wrap.h"

/*
 * Not a planted bug on its own: the allocator's new-leader wait (I4,
 * tsoracle.h) is lease * (1 + drift) whatever the lease, so a deposed
 * leader still stops serving before its successor starts. What it changes
 * is which defence holds: tsoracled refuses a lease as long as the
 * election timeout (sidecar/config.c), and with a shorter lease libraft's
 * leader stickiness (a voter that acknowledged the old leader's last
 * entry refuses votes for an election timeout after) already ends the old
 * lease before anyone can win, so the wait is never what keeps the order.
 * With this lease it is: in the partition-lease nemesis
 * (scripts/nemesis.sh) the cut-off leader serves on for up to this long
 * while its successor is elected within 0.3-0.6 s. Linked alone
 * (tsoracled-long-lease) it must pass that nemesis; with broken_lease.c
 * (tsoracled-broken-lease, the wait skipped) it must fail it. Set here,
 * after the configuration was checked, so that every member of a cluster
 * of these builds has the same lease (the wait covers only a predecessor
 * with a lease no longer than its own). Never linked into what is
 * installed.
 */
#define LONG_LEASE_MS 2500 /* ms: > the 0.3-0.6 s the others take to elect, < the cut-off leader's 3 s */

void __wrap_ta_init(ta_alloc *a, const ta_config *cfg)
{
	ta_config longer = *cfg;

	longer.lease_ms = LONG_LEASE_MS;
	__real_ta_init(a, &longer);
}
