/* sim_check.c: the properties every grant of a simulated schedule must keep, checked as grants happen. */
#include "sim_check.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tso.h"

/* Initial capacity of the value set, in intervals. */
#define SIM_CHECK_SET_CAP 1024

void sim_check_init(sim_check *k)
{
	memset(k, 0, sizeof *k);
}

void sim_check_reset(sim_check *k)
{
	sim_range *set = k->set;
	size_t cap = k->cap_set;

	memset(k, 0, sizeof *k);
	k->set = set;
	k->cap_set = cap;
}

void sim_check_free(sim_check *k)
{
	free(k->set);
	memset(k, 0, sizeof *k);
}

void sim_check_committed(sim_check *k, uint64_t mark_ms)
{
	if (mark_ms > k->committed_max_ms)
		k->committed_max_ms = mark_ms;
}

__attribute__((format(printf, 3, 4))) static void sim_check_note(sim_check *k, enum sim_property p,
								 const char *fmt, ...)
{
	va_list ap;

	k->violations[p]++;
	if (k->failed)
		return; /* keep the first: the later ones usually follow from it */
	k->failed = true;
	k->first = p;
	va_start(ap, fmt);
	vsnprintf(k->first_msg, sizeof k->first_msg, fmt, ap);
	va_end(ap);
}

void sim_check_fail(sim_check *k, enum sim_property p, const char *msg)
{
	sim_check_note(k, p, "%s", msg);
}

/* The first interval that ends at or after lo - 1 (so may touch [lo, ..]). */
static size_t sim_set_lower(const sim_check *k, uint64_t lo)
{
	size_t a = 0, b = k->n_set;

	while (a < b) {
		size_t m = a + (b - a) / 2;

		if (k->set[m].hi + 1 < lo)
			a = m + 1;
		else
			b = m;
	}
	return a;
}

static void sim_set_reserve(sim_check *k)
{
	if (k->n_set < k->cap_set)
		return;
	k->cap_set = k->cap_set == 0 ? SIM_CHECK_SET_CAP : k->cap_set * 2;
	k->set = realloc(k->set, k->cap_set * sizeof *k->set);
	if (k->set == NULL) {
		fprintf(stderr, "sim: out of memory\n");
		exit(2);
	}
}

/* Adds [lo, hi] to the set; true if it overlapped a value already there.
 * Grants mostly come in increasing order, so the usual case appends. */
static bool sim_set_add(sim_check *k, uint64_t lo, uint64_t hi)
{
	size_t i, j;
	bool overlap = false;

	if (k->n_set > 0 && k->set[k->n_set - 1].hi + 1 == lo) {
		k->set[k->n_set - 1].hi = hi;
		return false;
	}
	i = sim_set_lower(k, lo);
	/* Intervals i .. j-1 overlap [lo, hi] or touch it: merge them all. */
	for (j = i; j < k->n_set && k->set[j].lo <= hi + 1; j++)
		if (k->set[j].lo <= hi && k->set[j].hi >= lo)
			overlap = true;
	if (i == j) {
		sim_set_reserve(k);
		memmove(&k->set[i + 1], &k->set[i], (k->n_set - i) * sizeof *k->set);
		k->set[i] = (sim_range){lo, hi};
		k->n_set++;
		return false;
	}
	k->set[i].lo = k->set[i].lo < lo ? k->set[i].lo : lo;
	k->set[i].hi = k->set[j - 1].hi > hi ? k->set[j - 1].hi : hi;
	memmove(&k->set[i + 1], &k->set[j], (k->n_set - j) * sizeof *k->set);
	k->n_set -= j - i - 1;
	return overlap;
}

unsigned sim_check_grant(sim_check *k, unsigned node, uint64_t t_ms, uint64_t first, uint32_t n)
{
	uint64_t last = first + (n - 1);
	uint64_t before[SIM_N_PROPERTIES];
	unsigned broken = 0;

	memcpy(before, k->violations, sizeof before);
	k->grants++;
	k->timestamps += n;

	/* Real time: close the group of grants of the previous instant. */
	if (t_ms > k->now_ms && k->any_now) {
		if (!k->any_before || k->max_now > k->max_before) {
			k->max_before = k->max_now;
			k->max_before_node = k->max_now_node;
			k->max_before_ms = k->now_ms;
		}
		k->any_before = true;
		k->any_now = false;
	}
	k->now_ms = t_ms;
	if (k->any_before && first <= k->max_before)
		sim_check_note(k, SIM_P_REALTIME,
			       "real-time order: node %u at %" PRIu64 " ms got [%" PRIu64 ", %" PRIu64
			       "], not above %" PRIu64 " handed out by node %u at %" PRIu64 " ms",
			       node, t_ms, first, last, k->max_before, k->max_before_node, k->max_before_ms);
	if (!k->any_now || last > k->max_now) {
		k->max_now = last;
		k->max_now_node = node;
	}
	k->any_now = true;

	if (sim_set_add(k, first, last))
		sim_check_note(k, SIM_P_DUPLICATE,
			       "duplicate: node %u at %" PRIu64 " ms got [%" PRIu64 ", %" PRIu64
			       "], which overlaps values handed out before",
			       node, t_ms, first, last);

	if (k->node_any[node] && first <= k->node_last[node])
		sim_check_note(k, SIM_P_NODE_ORDER,
			       "node order: node %u at %" PRIu64 " ms got [%" PRIu64 ", %" PRIu64
			       "], not above its previous grant's end %" PRIu64,
			       node, t_ms, first, last, k->node_last[node]);
	if (!k->node_any[node] || last > k->node_last[node])
		k->node_last[node] = last;
	k->node_any[node] = true;

	if (k->floor_ms != 0 && t_ms > k->floor_at_ms && tso_physical(first) < k->floor_ms)
		sim_check_note(k, SIM_P_FLOOR,
			       "operator's floor: node %u at %" PRIu64 " ms got [%" PRIu64 ", %" PRIu64
			       "], physical %" PRIu64 " ms below the floor %" PRIu64 " ms applied at %" PRIu64
			       " ms",
			       node, t_ms, first, last, tso_physical(first), k->floor_ms, k->floor_at_ms);

	if (tso_physical(last) > k->committed_max_ms)
		sim_check_note(k, SIM_P_DURABLE,
			       "durability: node %u at %" PRIu64 " ms got [%" PRIu64 ", %" PRIu64
			       "], physical %" PRIu64 " ms above the highest committed mark %" PRIu64 " ms",
			       node, t_ms, first, last, tso_physical(last), k->committed_max_ms);

	for (int p = 0; p < SIM_N_PROPERTIES; p++)
		broken += k->violations[p] != before[p];
	return broken;
}

void sim_check_removed(sim_check *k, unsigned node, uint64_t t_ms, uint64_t term, uint64_t lease_until_ms)
{
	k->removed[node] = true;
	k->removed_at_ms[node] = t_ms;
	k->removed_term[node] = term;
	k->removed_lease_until_ms[node] = lease_until_ms;
}

void sim_check_floor(sim_check *k, uint64_t t_ms, uint64_t floor_ms)
{
	k->advances++;
	if (floor_ms <= k->floor_ms)
		return;
	k->floor_ms = floor_ms;
	k->floor_at_ms = t_ms;
}

unsigned sim_check_removed_grant(sim_check *k, unsigned node, uint64_t t_ms, uint64_t epoch)
{
	if (!k->removed[node])
		return 0;
	if (epoch >= k->removed_term[node]) {
		sim_check_note(k, SIM_P_REMOVED,
			       "removed member: node %u granted at %" PRIu64 " ms as leader of term %" PRIu64
			       ", but its removal committed at %" PRIu64 " ms in term %" PRIu64,
			       node, t_ms, epoch, k->removed_at_ms[node], k->removed_term[node]);
		return 1;
	}
	if (t_ms > k->removed_lease_until_ms[node]) {
		sim_check_note(k, SIM_P_REMOVED,
			       "removed member: node %u granted at %" PRIu64 " ms (term %" PRIu64
			       "), after any lease from before its removal (committed at %" PRIu64
			       " ms) could last (%" PRIu64 " ms)",
			       node, t_ms, epoch, k->removed_at_ms[node], k->removed_lease_until_ms[node]);
		return 1;
	}
	return 0;
}

unsigned sim_check_servers(sim_check *k, uint64_t t_ms, const unsigned *nodes, unsigned n)
{
	if (n < 2)
		return 0;
	sim_check_note(k, SIM_P_ONE_SERVER,
		       "one server: nodes %u and %u both serve at %" PRIu64 " ms (%u serving in all)",
		       nodes[0], nodes[1], t_ms, n);
	return 1;
}

const char *sim_property_name(enum sim_property p)
{
	switch (p) {
	case SIM_P_DUPLICATE:
		return "duplicate";
	case SIM_P_REALTIME:
		return "real-time order";
	case SIM_P_NODE_ORDER:
		return "node order";
	case SIM_P_DURABLE:
		return "durability";
	case SIM_P_LIVENESS:
		return "liveness";
	case SIM_P_CLOCK:
		return "clock";
	case SIM_P_ONE_SERVER:
		return "one server";
	case SIM_P_REMOVED:
		return "removed member";
	case SIM_P_FLOOR:
		return "operator's floor";
	default:
		return "unknown";
	}
}
