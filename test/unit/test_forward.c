/* test_forward.c: a follower's forwarding connection (sidecar/forward.c) against a fake leader over loopback
 * TCP.
 *
 * The fake leader is a plain socket in this process, answering the
 * forwarder's frames by hand: a grant whose count differs from the batch's,
 * and an answer for a batch that was never sent, each make the forwarder
 * drop the connection (every batch in flight given back, nothing
 * delivered) and connect again; a correct grant (the positive control) is
 * delivered as it came.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "forward.h"
#include "log.h"

#define TF_WAIT_MS 5000 /* any expected event comes well within this */
#define TF_POLL_MS 2
#define TF_LEADER  2 /* the fake leader's node id */
#define TF_COUNT   5 /* timestamps per batch sent */
#define TF_N_BAD   3

/* Wrong answers to a batch of TF_COUNT: its id and count, shifted. */
static const struct {
	uint64_t id_plus;
	int count_plus;
} tf_bad[TF_N_BAD] = {
    {0, 1},   /* more timestamps than asked */
    {0, -1},  /* fewer */
    {100, 0}, /* for a batch never sent (one is in flight) */
};

static uv_loop_t tf_loop;

/* What the forwarder reported through its callbacks. */
typedef struct tf_seen {
	unsigned grants, resets, readies, closed;
	uint64_t batch, first;
	uint16_t status;
	uint32_t count;
} tf_seen;

static void tf_grant(void *arg, uint64_t batch, uint16_t status, uint64_t first, uint32_t count)
{
	tf_seen *s = arg;

	s->grants++;
	s->batch = batch;
	s->status = status;
	s->first = first;
	s->count = count;
}

static void tf_reset(void *arg)
{
	((tf_seen *)arg)->resets++;
}

static void tf_ready(void *arg)
{
	((tf_seen *)arg)->readies++;
}

static tf_seen *tf_closed_seen;

static void tf_closed(fwd *f)
{
	(void)f;
	tf_closed_seen->closed++;
}

/* Runs the loop until *counter reaches want (false after TF_WAIT_MS). */
static bool tf_run_until(const unsigned *counter, unsigned want)
{
	for (int waited = 0; waited < TF_WAIT_MS; waited += TF_POLL_MS) {
		uv_run(&tf_loop, UV_RUN_NOWAIT);
		if (*counter >= want)
			return true;
		poll(NULL, 0, TF_POLL_MS);
	}
	return false;
}

/* The next connection to the fake leader (running the loop meanwhile). */
static int tf_accept(int lfd)
{
	for (int waited = 0; waited < TF_WAIT_MS; waited += TF_POLL_MS) {
		int fd;

		uv_run(&tf_loop, UV_RUN_NOWAIT);
		fd = accept(lfd, NULL, NULL);
		if (fd >= 0) {
			fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
			return fd;
		}
		assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
		poll(NULL, 0, TF_POLL_MS);
	}
	fail_msg("the forwarder did not connect");
	return -1;
}

/* The next frame the forwarder sent on fd. */
static void tf_recv(int fd, tp_reader *r, tp_msg *m)
{
	for (int waited = 0; waited < TF_WAIT_MS; waited += TF_POLL_MS) {
		size_t room;
		uint8_t *p;
		ssize_t n;
		int rc = tp_reader_next(r, m);

		assert_true(rc >= 0);
		if (rc > 0)
			return;
		uv_run(&tf_loop, UV_RUN_NOWAIT);
		p = tp_reader_space(r, &room);
		n = read(fd, p, room);
		if (n > 0)
			tp_reader_commit(r, (size_t)n);
		else
			poll(NULL, 0, TF_POLL_MS);
	}
	fail_msg("no frame from the forwarder");
}

static void tf_send(int fd, const tp_msg *m)
{
	uint8_t buf[TP_MAX_FRAME];
	size_t n = tp_encode(m, buf, sizeof buf);

	assert_true(n > 0);
	assert_int_equal(write(fd, buf, n), (ssize_t)n);
}

/* True once the forwarder has closed fd (EOF or reset), within TF_WAIT_MS. */
static bool tf_peer_closed(int fd)
{
	for (int waited = 0; waited < TF_WAIT_MS; waited += TF_POLL_MS) {
		uint8_t b[256];
		ssize_t n;

		uv_run(&tf_loop, UV_RUN_NOWAIT);
		n = read(fd, b, sizeof b);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
			return true;
		poll(NULL, 0, TF_POLL_MS);
	}
	return false;
}

/* Accepts the forwarder's next connection, answers its hello as node
 * TF_LEADER and waits until it is ready; returns the fake leader's end. */
static int tf_handshake(int lfd, tf_seen *seen, tp_reader *r)
{
	unsigned readies = seen->readies;
	int fd = tf_accept(lfd);
	tp_msg m;

	tp_reader_init(r);
	tf_recv(fd, r, &m);
	assert_int_equal(m.type, TP_HELLO);
	m.type = TP_HELLO_OK;
	m.u.hello_ok.version = TP_VERSION;
	m.u.hello_ok.node_id = TF_LEADER;
	tf_send(fd, &m);
	assert_true(tf_run_until(&seen->readies, readies + 1));
	return fd;
}

/* Sends a batch of count through the forwarder; returns the request the
 * fake leader got. */
static tp_msg tf_batch(fwd *f, int fd, tp_reader *r, uint32_t count)
{
	uint64_t id = fwd_send(f, count);
	tp_msg m;

	assert_true(id != 0);
	tf_recv(fd, r, &m);
	assert_int_equal(m.type, TP_TS_REQ);
	assert_int_equal(m.u.ts_req.id, id);
	assert_int_equal(m.u.ts_req.count, count);
	return m;
}

static void tf_answer(int fd, uint64_t id, uint64_t first, int count)
{
	tp_msg m;

	m.type = TP_TS_RESP;
	m.u.ts_resp.id = id;
	m.u.ts_resp.status = TP_OK;
	m.u.ts_resp.first = first;
	m.u.ts_resp.count = (uint32_t)count;
	tf_send(fd, &m);
}

static void test_answers_checked(void **state)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof sin;
	tf_seen seen = {0};
	tp_reader r;
	cfg c;
	fwd f;
	tp_msg req;
	int lfd, fd;

	(void)state;
	assert_int_equal(uv_loop_init(&tf_loop), 0);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sin, sizeof sin), 0);
	assert_int_equal(listen(lfd, 8), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin, &len), 0);

	cfg_defaults(&c);
	c.node_id = 1;
	c.n_peers = 2;
	c.peers[0].id = 1;
	c.peers[1].id = TF_LEADER;
	snprintf(c.peers[1].client, sizeof c.peers[1].client, "127.0.0.1:%u", ntohs(sin.sin_port));
	assert_int_equal(fwd_init(&f, &tf_loop, &c, tf_grant, tf_reset, tf_ready, &seen), 0);
	fwd_set_target(&f, TF_LEADER, c.peers[1].client);

	/* Answers the forwarder must not take: each drops the connection,
	 * gives the batch back and delivers nothing. */
	for (unsigned i = 0; i < sizeof tf_bad / sizeof tf_bad[0]; i++) {
		fd = tf_handshake(lfd, &seen, &r);
		req = tf_batch(&f, fd, &r, TF_COUNT);
		tf_answer(fd, req.u.ts_req.id + tf_bad[i].id_plus, 1000, TF_COUNT + tf_bad[i].count_plus);
		assert_true(tf_run_until(&seen.resets, i + 1));
		assert_int_equal(seen.grants, 0);
		assert_true(tf_peer_closed(fd));
		close(fd);
	}

	/* The same batch answered twice: the second is for nothing in flight. */
	fd = tf_handshake(lfd, &seen, &r);
	req = tf_batch(&f, fd, &r, TF_COUNT);
	tf_answer(fd, req.u.ts_req.id, 1000, TF_COUNT);
	assert_true(tf_run_until(&seen.grants, 1));
	tf_answer(fd, req.u.ts_req.id, 2000, TF_COUNT);
	assert_true(tf_run_until(&seen.resets, TF_N_BAD + 1));
	assert_int_equal(seen.grants, 1);
	assert_true(tf_peer_closed(fd));
	close(fd);

	/* The positive control: a correct grant is delivered as it came, and
	 * the connection stays. */
	fd = tf_handshake(lfd, &seen, &r);
	req = tf_batch(&f, fd, &r, 7);
	tf_answer(fd, req.u.ts_req.id, 5000, 7);
	assert_true(tf_run_until(&seen.grants, 2));
	assert_int_equal(seen.batch, req.u.ts_req.id);
	assert_int_equal(seen.status, TP_OK);
	assert_int_equal(seen.first, 5000);
	assert_int_equal(seen.count, 7);
	assert_int_equal(seen.resets, TF_N_BAD + 1);
	assert_true(fwd_can_send(&f));

	tf_closed_seen = &seen;
	fwd_close(&f, tf_closed);
	assert_true(tf_run_until(&seen.closed, 1));
	close(fd);
	close(lfd);
	assert_int_equal(uv_loop_close(&tf_loop), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_answers_checked),
	};

	log_set_level(LOG_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
