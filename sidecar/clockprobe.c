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
	for (unsigned i = 0; i < c->n_peers; i++) {
		fwd *f;

		if (c->peers[i].id == c->node_id || c->peers[i].client[0] == '\0')
			continue;
		f = &p->conns[p->n_conns];
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

static void cprobe_tick_cb(uv_timer_t *t)
{
	cprobe *p = t->data;

	for (unsigned i = 0; i < p->n_conns; i++)
		fwd_send_clock(&p->conns[i], (uint64_t)LEAD_CLOCK_PROBE_MS * CPROBE_TIMEOUT_INTERVALS);
}

int cprobe_start(cprobe *p)
{
	unsigned k = 0;

	for (unsigned i = 0; i < p->cfg->n_peers; i++)
		if (p->cfg->peers[i].id != p->cfg->node_id && p->cfg->peers[i].client[0] != '\0')
			fwd_set_target(&p->conns[k++], p->cfg->peers[i].id);
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
