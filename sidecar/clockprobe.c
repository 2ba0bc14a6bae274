/* clockprobe.c: this member's measurements of the other members' wall clocks (see clockprobe.h). */
#include "clockprobe.h"

#include <stddef.h>
#include <string.h>

/* An answer not back within this many probe intervals is given up, and
 * the next request goes out. */
#define CPROBE_TIMEOUT_INTERVALS 4

static void cprobe_clock_cb(void *arg, uint64_t id, uint64_t wall_ms, uint64_t sent_mono_ms,
			    uint64_t recv_mono_ms)
{
	cprobe *p = arg;

	node_clock_sample(p->node, id, wall_ms, sent_mono_ms, recv_mono_ms);
}

/* A probe carries no batches: nothing to give back or to send when ready. */
static void cprobe_noop_cb(void *arg)
{
	(void)arg;
}

static void cprobe_noop_grant_cb(void *arg, uint64_t batch, uint16_t status, uint64_t first, uint32_t count)
{
	(void)arg;
	(void)batch;
	(void)status;
	(void)first;
	(void)count;
}

int cprobe_init(cprobe *p, uv_loop_t *loop, const cfg *c, node *n)
{
	int rv;

	memset(p, 0, sizeof *p);
	p->cfg = c;
	p->node = n;
	rv = uv_timer_init(loop, &p->timer);
	if (rv != 0)
		return rv;
	p->timer.data = p;
	/* A slot for every member the configuration may hold: members come
	 * and go (member.h), and the slots follow the configuration. */
	for (unsigned i = 0; i < CFG_MAX_PEERS; i++) {
		fwd *f = &p->conns[p->n_conns];

		rv = fwd_init(f, loop, c, cprobe_noop_grant_cb, cprobe_noop_cb, cprobe_noop_cb, p);
		if (rv != 0)
			return rv;
		fwd_set_probe(f, cprobe_clock_cb);
		p->n_conns++;
	}
	return 0;
}

void cprobe_set_ctx(cprobe *p, SSL_CTX *ctx)
{
	for (unsigned i = 0; i < p->n_conns; i++)
		fwd_set_ctx(&p->conns[i], ctx);
}

/* The slot probing member id, or NULL. */
static fwd *cprobe_slot(cprobe *p, uint64_t id)
{
	for (unsigned i = 0; i < p->n_conns; i++)
		if (p->conns[i].target_id == id)
			return &p->conns[i];
	return NULL;
}

/*
 * Points the slots at the other members of the replicated configuration,
 * at their client addresses from it (member.h), not at the peers line: a
 * member added since the start is measured too, and a removed one no
 * longer (the driver counts the voters of the configuration).
 */
static void cprobe_follow_members(cprobe *p)
{
	member_info info;
	unsigned count = 0;

	for (unsigned i = 0; i < p->n_conns; i++) {
		fwd *f = &p->conns[i];
		bool member = false;

		for (unsigned k = 0; f->target_id != 0 && member_get(p->node, k, &info, &count) == 0; k++)
			member = member || info.id == f->target_id;
		if (f->target_id != 0 && !member)
			fwd_set_target(f, 0, NULL);
	}
	for (unsigned k = 0; member_get(p->node, k, &info, &count) == 0; k++) {
		char client[CFG_ADDR_SIZE];
		fwd *f;

		if (info.id == p->cfg->node_id || cprobe_slot(p, info.id) != NULL ||
		    (f = cprobe_slot(p, 0)) == NULL)
			continue;
		member_client_address(p->node, info.id, client, sizeof client);
		if (client[0] != '\0')
			fwd_set_target(f, info.id, client);
	}
}

static void cprobe_tick_cb(uv_timer_t *t)
{
	cprobe *p = t->data;

	cprobe_follow_members(p);
	for (unsigned i = 0; i < p->n_conns; i++)
		if (p->conns[i].target_id != 0)
			fwd_send_clock(&p->conns[i],
				       (uint64_t)LEAD_CLOCK_PROBE_MS * CPROBE_TIMEOUT_INTERVALS);
}

int cprobe_start(cprobe *p)
{
	cprobe_follow_members(p);
	p->started = true;
	return uv_timer_start(&p->timer, cprobe_tick_cb, LEAD_CLOCK_PROBE_MS, LEAD_CLOCK_PROBE_MS);
}

static void cprobe_one_closed(cprobe *p)
{
	if (--p->closing == 0 && p->close_cb != NULL)
		p->close_cb(p);
}

static void cprobe_timer_closed(uv_handle_t *h)
{
	cprobe_one_closed(h->data);
}

static void cprobe_fwd_closed(fwd *f)
{
	cprobe *p = f->arg;

	cprobe_one_closed(p);
}

void cprobe_close(cprobe *p, void (*cb)(cprobe *p))
{
	p->close_cb = cb;
	p->closing = 1 + (int)p->n_conns;
	uv_close((uv_handle_t *)&p->timer, cprobe_timer_closed);
	for (unsigned i = 0; i < p->n_conns; i++)
		fwd_close(&p->conns[i], cprobe_fwd_closed);
}
