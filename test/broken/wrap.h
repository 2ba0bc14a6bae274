/* wrap.h: the library functions a planted bug may replace (-Wl,--wrap), as the linker names them. */
#ifndef TSORACLE_BROKEN_WRAP_H
#define TSORACLE_BROKEN_WRAP_H

#include "peer.h"
#include "tsoracle.h"

/*
 * Linked with -Wl,--wrap=f (the Makefile's BROKEN_WRAP_<kind>), every call
 * to f from another object goes to __wrap_f, which a file of test/broken/
 * defines; __real_f is the library's f. A file defines the __wrap_ of the
 * functions its kind wraps and nothing else.
 */
uint64_t __real_ta_lead_begin(ta_alloc *a, uint64_t epoch, uint64_t high_water_ms, bool predecessor_released,
			      uint64_t predecessor_wait_ms, ta_clock clk);
uint64_t __wrap_ta_lead_begin(ta_alloc *a, uint64_t epoch, uint64_t high_water_ms, bool predecessor_released,
			      uint64_t predecessor_wait_ms, ta_clock clk);
int __real_ta_grant(ta_alloc *a, ta_clock clk, uint32_t n, uint64_t *first);
int __wrap_ta_grant(ta_alloc *a, ta_clock clk, uint32_t n, uint64_t *first);
uint64_t __real_ta_room(const ta_alloc *a, ta_clock clk);
uint64_t __wrap_ta_room(const ta_alloc *a, ta_clock clk);
bool __wrap_ta_established(const ta_alloc *a, ta_clock clk);
ta_clock __real_lead_clock_observe(lead_driver *d, ta_clock raw, lead_clock_verdict *verdict);
ta_clock __wrap_lead_clock_observe(lead_driver *d, ta_clock raw, lead_clock_verdict *verdict);
ta_clock __wrap_lead_clock_view(const lead_driver *d, ta_clock raw);
bool __wrap_lead_clock_member_supported(const lead_driver *d, uint64_t id, ta_clock raw);
void __wrap_ta_set_start_floor(ta_alloc *a, uint64_t floor_ms, uint64_t slack_ms);
void __wrap_ta_raise_floor(ta_alloc *a, uint64_t floor_ms);
const char *__wrap_peer_gate_judge(const peer_pending *p, bool member_host, const char *host, char *why,
				   size_t whylen);
void __real_ta_init(ta_alloc *a, const ta_config *cfg);
void __wrap_ta_init(ta_alloc *a, const ta_config *cfg);
struct node;
bool __wrap_node_is_member(struct node *n, uint64_t id);

#endif /* TSORACLE_BROKEN_WRAP_H */
