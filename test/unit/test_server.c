/* test_server.c: the server's deficit round-robin gives back the credit of a batch that was neither
 * granted nor sent (sidecar/server.c, srv_batch_unpick). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>

/*
 * server.c's dispatch is static: the test compiles it in (the Makefile
 * links this test without server.o) with the allocator and the forwarding
 * link replaced by these stand-ins, whose answers the test sets.
 */
#define node_room    t_node_room
#define node_grant   t_node_grant
#define fwd_can_send t_fwd_can_send
#define fwd_send     t_fwd_send
#include "../../sidecar/server.c"

static uint64_t t_room;       /* node_room's answer */
static int t_grant_rc;        /* node_grant's answer */
static unsigned t_sends;      /* fwd_send calls allowed before it refuses */
static uint64_t t_next_batch; /* fwd_send's next batch; 0: it fails */

uint64_t t_node_room(node *n)
{
	(void)n;
	return t_room;
}

int t_node_grant(node *n, uint32_t count, uint64_t *first)
{
	(void)n;
	(void)count;
	*first = 0;
	return t_grant_rc;
}

bool t_fwd_can_send(const fwd *f)
{
	(void)f;
	return t_sends > 0;
}

uint64_t t_fwd_send(fwd *f, uint32_t count)
{
	(void)f;
	(void)count;
	t_sends--;
	return t_next_batch == 0 ? 0 : t_next_batch++;
}

/* Half a quantum, then one more than half: the second does not fit the
 * first turn's credit, so the pick leaves a's turn with credit left. */
#define T_HALF ((uint32_t)(SRV_QUANTUM / 2))

typedef struct t_setup {
	srv s;
	srv_conn *a, *b;
} t_setup;

/* The pending list holds exactly want[0..n), in this order. */
static void t_assert_order(srv *s, srv_conn *const *want, unsigned n)
{
	srv_conn *c = TAILQ_FIRST(&s->pending);

	assert_int_equal(s->n_pending, n);
	for (unsigned i = 0; i < n; i++) {
		assert_ptr_equal(c, want[i]);
		assert_true(c->pending);
		c = TAILQ_NEXT(c, pending_link);
	}
	assert_null(c);
}

static void t_setup_init(t_setup *t)
{
	memset(&t->s, 0, sizeof t->s);
	TAILQ_INIT(&t->s.pending);
	t->a = calloc(1, sizeof *t->a);
	t->b = calloc(1, sizeof *t->b);
	assert_non_null(t->a);
	assert_non_null(t->b);
	t->a->srv = t->b->srv = &t->s;
	srv_q_push(t->a, 1, T_HALF, UINT64_MAX);
	srv_q_push(t->a, 2, T_HALF + 1, UINT64_MAX);
	srv_pending_add(&t->s, t->a);
	srv_q_push(t->b, 3, 1, UINT64_MAX);
	srv_pending_add(&t->s, t->b);
}

static void t_setup_free(t_setup *t)
{
	free(t->a);
	free(t->b);
}

/* No request is marked, and neither connection has had its turn. */
static void t_assert_untouched(t_setup *t)
{
	srv_conn *order[] = {t->a, t->b};

	for (unsigned i = 0; i < t->a->q_len; i++)
		assert_int_equal(srv_q_at(t->a, i)->batch, 0);
	assert_int_equal(srv_q_at(t->b, 0)->batch, 0);
	assert_int_equal(t->a->deficit, 0);
	assert_false(t->a->credited);
	assert_int_equal(t->b->deficit, 0);
	assert_false(t->b->credited);
	t_assert_order(&t->s, order, 2);
}

/* A leader's grant fails (TA_WAIT): the batch's credit comes back, and
 * its place in the round (the room fills with a's request, so the pick
 * ended a's turn and stopped at b, which would now go first). */
static void test_failed_grant_keeps_credit(void **state)
{
	t_setup t;

	(void)state;
	t_setup_init(&t);
	t_room = T_HALF;
	t_grant_rc = TA_WAIT;
	srv_dispatch_local(&t.s);
	t_assert_untouched(&t);
	t_setup_free(&t);
}

/* A follower's send fails: the same. */
static void test_failed_send_keeps_credit(void **state)
{
	t_setup t;

	(void)state;
	t_setup_init(&t);
	t_sends = 1;
	t_next_batch = 0;
	srv_dispatch_forward(&t.s);
	t_assert_untouched(&t);
	t_setup_free(&t);
}

/* Positive control: a send that succeeds takes the credit (a's first
 * request, its turn ended with the rest of its quantum kept; b's request,
 * its queue emptied) and marks the requests with their batch. */
static void test_sent_batch_takes_credit(void **state)
{
	t_setup t;

	(void)state;
	t_setup_init(&t);
	t_sends = 1;
	t_next_batch = 5;
	srv_dispatch_forward(&t.s);
	assert_int_equal(srv_q_at(t.a, 0)->batch, 5);
	assert_int_equal(srv_q_at(t.a, 1)->batch, 0);
	assert_int_equal(srv_q_at(t.b, 0)->batch, 5);
	assert_int_equal(t.a->deficit, SRV_QUANTUM - T_HALF);
	assert_false(t.a->credited);
	assert_int_equal(t.b->deficit, 0); /* emptied: keeps no credit */
	/* Both turns ended, each connection rotated to the tail once. */
	t_assert_order(&t.s, (srv_conn *[]){t.a, t.b}, 2);
	t_setup_free(&t);
}

/*
 * The round's order: a turn that ends sends its connection to the back
 * (a's second request does not fit its credit, so b goes next), and
 * answering a batch drops the connections it emptied (b) from the list
 * while the rest keep their order. A connection added later goes last.
 */
static void test_round_order(void **state)
{
	t_setup t;
	srv_conn *c = calloc(1, sizeof *c);

	(void)state;
	assert_non_null(c);
	t_setup_init(&t);
	c->srv = &t.s;
	srv_q_push(c, 4, 1, UINT64_MAX);
	srv_pending_add(&t.s, c);
	srv_pending_add(&t.s, t.a); /* already there: stays where it is */
	t_assert_order(&t.s, (srv_conn *[]){t.a, t.b, c}, 3);

	/* Room for a's first request and b's: a's turn ends with credit
	 * left, b's with its queue empty, and the batch is full at c. */
	assert_int_equal(srv_batch_pick(&t.s, T_HALF + 1, SRV_BATCH_LOCAL), T_HALF + 1);
	t_assert_order(&t.s, (srv_conn *[]){c, t.a, t.b}, 3);
	assert_ptr_equal(t.s.pick_head, t.a);

	srv_batch_unpick(&t.s); /* the pick's rotation is undone */
	t_assert_order(&t.s, (srv_conn *[]){t.a, t.b, c}, 3);

	t.a->q_len = 1; /* a's second request is answered elsewhere ... */
	t.b->q_len = 0; /* ... and b's */
	srv_pending_prune(&t.s);
	t_assert_order(&t.s, (srv_conn *[]){t.a, c}, 2);
	assert_false(t.b->pending);
	srv_q_push(t.b, 5, 1, UINT64_MAX);
	srv_pending_add(&t.s, t.b);
	t_assert_order(&t.s, (srv_conn *[]){t.a, c, t.b}, 3);
	t_setup_free(&t);
	free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_failed_grant_keeps_credit),
	    cmocka_unit_test(test_failed_send_keeps_credit),
	    cmocka_unit_test(test_sent_batch_takes_credit),
	    cmocka_unit_test(test_round_order),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
