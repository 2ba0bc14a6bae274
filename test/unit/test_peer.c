/* test_peer.c: the Raft peer transport (sidecar/peer.c) over real loopback TCP, in one process.
 *
 * Transports are driven as libraft drives them (init, listen, connect,
 * close) with certificates from scripts/certs.sh (as in test_tls.c): an
 * admitted connection carries bytes both ways through the relay; a member
 * certificate used for another id, a dial that reaches another member than
 * meant, an id outside the configuration, a certificate of another CA, a
 * client certificate and plaintext are refused; a lone member opens no
 * port until it dials; the handshake gate keeps room for members while
 * strangers flood it.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"
#include "peer.h"
#include "tls.h"

#define TP_PATH      512
#define TP_WAIT_MS   5000 /* any expected event comes well within this */
#define TP_POLL_MS   5
#define TP_MAX_FLOOD 64
#define TP_ADDR_SIZE 64

static char tp_dir[TP_PATH];
static char tp_other[TP_PATH];
static uv_loop_t tp_loop;

static int tp_run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int tp_run(const char *fmt, ...)
{
	char cmd[4 * TP_PATH];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	return system(cmd);
}

static int tp_setup(void **state)
{
	const char *script = getenv("TSORACLE_CERTS_SH");
	char base[] = "/tmp/tsoracle-test-peer-XXXXXX";

	(void)state;
	if (script == NULL)
		script = "scripts/certs.sh";
	if (mkdtemp(base) == NULL)
		return -1;
	snprintf(tp_dir, sizeof tp_dir, "%s/ca1", base);
	snprintf(tp_other, sizeof tp_other, "%s/ca2", base);
	if (tp_run("%s %s 3 >/dev/null", script, tp_dir) != 0 ||
	    tp_run("%s %s 2 >/dev/null", script, tp_other) != 0 ||
	    tp_run("%s %s issue revoked member 2 >/dev/null", script, tp_dir) != 0 ||
	    tp_run("%s %s revoke revoked >/dev/null", script, tp_dir) != 0) {
		fprintf(stderr, "test_peer: %s failed (run from the repository root)\n", script);
		return -1;
	}
	log_set_level(getenv("TP_VERBOSE") != NULL ? LOG_DEBUG : LOG_ERROR + 1);
	return uv_loop_init(&tp_loop);
}

static int tp_teardown(void **state)
{
	(void)state;
	uv_loop_close(&tp_loop);
	return tp_run("rm -rf %.*s", (int)(strrchr(tp_dir, '/') - tp_dir), tp_dir);
}

/* ---- one transport, as libraft sees it ---- */

typedef struct tp_node {
	struct raft_uv_transport tr;
	uint64_t id;
	char address[TP_ADDR_SIZE];
	uint64_t members[4];     /* the configuration: 0-terminated */
	const char *member_host; /* a source IP counted as a member's host */
	bool closed;
	bool in_eof;   /* the accepted stream ended */
	bool admitted; /* a connection was accepted */
	size_t want;   /* got_full once got_len reaches it */
	bool got_full;
	/* the last accepted connection */
	int accepted;
	uint64_t accepted_id;
	char accepted_address[TP_ADDR_SIZE];
	uv_stream_t *in;
	char got[64];
	size_t got_len;
} tp_node;

static bool tp_is_member(void *arg, uint64_t id)
{
	tp_node *n = arg;

	for (int i = 0; n->members[i] != 0; i++)
		if (n->members[i] == id)
			return true;
	return false;
}

static bool tp_has_others(void *arg)
{
	tp_node *n = arg;

	for (int i = 0; n->members[i] != 0; i++)
		if (n->members[i] != n->id)
			return true;
	return false;
}

static bool tp_is_member_host(void *arg, const struct sockaddr *sa)
{
	tp_node *n = arg;
	char ip[INET_ADDRSTRLEN];

	return sa->sa_family == AF_INET &&
	       inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, ip, sizeof ip) &&
	       strcmp(ip, n->member_host) == 0;
}

static unsigned short tp_free_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	close(fd);
	return ntohs(sa.sin_port);
}

/* A context for DIR/NAME, trusting DIR's CA, with its CRL if crl; NULL
 * name: plaintext. */
static SSL_CTX *tp_ctx_crl(const char *dir, const char *name, bool crl_too)
{
	char ca[TP_PATH], cert[TP_PATH], key[TP_PATH], crl[TP_PATH], err[TLS_ERR_SIZE];
	tls_files f = {ca, cert, key, crl_too ? crl : NULL, NULL};
	SSL_CTX *ctx;

	if (name == NULL)
		return NULL;
	snprintf(ca, sizeof ca, "%s/ca.crt", dir);
	snprintf(crl, sizeof crl, "%s/ca.crl", dir);
	snprintf(cert, sizeof cert, "%s/%s.crt", dir, name);
	snprintf(key, sizeof key, "%s/%s.key", dir, name);
	ctx = tls_ctx_new(&f, err, sizeof err);
	if (ctx == NULL)
		fail_msg("%s", err);
	return ctx;
}

static SSL_CTX *tp_ctx(const char *dir, const char *name)
{
	return tp_ctx_crl(dir, name, true);
}

static void tp_node_init(tp_node *n, uint64_t id, SSL_CTX *ctx, const uint64_t *members)
{
	char err[256];
	peer_members m = {n, tp_is_member, tp_has_others, tp_is_member_host};

	memset(n, 0, sizeof *n);
	n->id = id;
	n->member_host = "127.0.0.1";
	for (int i = 0; members[i] != 0; i++)
		n->members[i] = members[i];
	snprintf(n->address, sizeof n->address, "127.0.0.1:%u", tp_free_port());
	if (peer_transport_init(&n->tr, &tp_loop, ctx, &m, err, sizeof err) != 0)
		fail_msg("%s", err);
	assert_int_equal(n->tr.init(&n->tr, id, n->address), 0);
}

static void tp_read_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	tp_node *n = h->data;

	(void)suggested;
	buf->base = n->got + n->got_len;
	buf->len = sizeof n->got - n->got_len - 1;
}

static void tp_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	tp_node *n = s->data;

	(void)buf;
	if (nread > 0)
		n->got_len += (size_t)nread;
	if (n->want > 0 && n->got_len >= n->want)
		n->got_full = true;
	else if (nread < 0)
		n->in_eof = true;
}

static void tp_accept_cb(struct raft_uv_transport *tr, raft_id id, const char *address, uv_stream_t *stream)
{
	tp_node *n = (tp_node *)tr; /* tr is n's first member */

	n->accepted++;
	n->admitted = true;
	n->accepted_id = id;
	snprintf(n->accepted_address, sizeof n->accepted_address, "%s", address);
	n->in = stream;
	stream->data = n;
	uv_read_start(stream, tp_read_alloc, tp_read_cb);
}

static void tp_listen(tp_node *n)
{
	assert_int_equal(n->tr.listen(&n->tr, tp_accept_cb), 0);
}

static void tp_closed_cb(struct raft_uv_transport *tr)
{
	((tp_node *)tr)->closed = true;
}

static void tp_free_handle(uv_handle_t *h)
{
	raft_free(h);
}

/* Runs the loop until *flag (or ms pass). */
static bool tp_wait(const bool *flag, unsigned ms)
{
	uint64_t deadline;

	uv_update_time(&tp_loop);
	deadline = uv_now(&tp_loop) + ms;
	while (!*flag && uv_now(&tp_loop) < deadline) {
		uv_run(&tp_loop, UV_RUN_NOWAIT);
		if (!*flag)
			usleep(TP_POLL_MS * 1000);
		uv_update_time(&tp_loop);
	}
	return *flag;
}

static void tp_node_close(tp_node *n)
{
	if (n->in != NULL)
		uv_close((uv_handle_t *)n->in, tp_free_handle);
	n->in = NULL;
	n->tr.close(&n->tr, tp_closed_cb);
	assert_true(tp_wait(&n->closed, TP_WAIT_MS));
	peer_transport_release(&n->tr);
}

/* ---- one dial ---- */

typedef struct tp_dial {
	struct raft_uv_connect req;
	bool done;
	int status;
	uv_stream_t *stream;
} tp_dial;

static void tp_connect_cb(struct raft_uv_connect *req, uv_stream_t *stream, int status)
{
	tp_dial *d = (tp_dial *)req;

	d->done = true;
	d->status = status;
	d->stream = stream;
}

/* from dials to (as id, at to's address); returns the connect status once
 * it is known, with the stream in d. */
static int tp_dial_to(tp_node *from, tp_dial *d, uint64_t id, const tp_node *to)
{
	memset(d, 0, sizeof *d);
	assert_int_equal(from->tr.connect(&from->tr, &d->req, id, to->address, tp_connect_cb), 0);
	assert_true(tp_wait(&d->done, TP_WAIT_MS));
	return d->status;
}

static void tp_write_done(uv_write_t *w, int status)
{
	assert_int_equal(status, 0);
	free(w);
}

static const uint64_t tp_three[] = {1, 2, 3, 0};

static void test_admitted_and_relayed(void **state)
{
	tp_node a, b;
	tp_dial d;
	uv_write_t *w = malloc(sizeof *w);
	uv_buf_t buf = uv_buf_init("raft bytes", 10);
	bool got;

	(void)state;
	tp_node_init(&a, 1, tp_ctx(tp_dir, "node1"), tp_three);
	tp_node_init(&b, 2, tp_ctx(tp_dir, "node2"), tp_three);
	tp_listen(&a);
	assert_int_equal(tp_dial_to(&b, &d, 1, &a), 0);
	assert_non_null(d.stream);
	assert_true(tp_wait(&a.admitted, TP_WAIT_MS));
	assert_int_equal(a.accepted, 1);
	assert_int_equal(a.accepted_id, 2);
	assert_string_equal(a.accepted_address, b.address);
	/* libraft's bytes cross the TLS relay intact. */
	a.want = 10;
	assert_int_equal(uv_write(w, d.stream, &buf, 1, tp_write_done), 0);
	assert_true(tp_wait(&a.got_full, TP_WAIT_MS));
	got = a.got_len == 10 && memcmp(a.got, "raft bytes", 10) == 0;
	assert_true(got);
	uv_close((uv_handle_t *)d.stream, tp_free_handle);
	tp_node_close(&a);
	tp_node_close(&b);
}

/* from (with ctx) dials to as id; expects a refusal and no accept. */
static void tp_expect_refused(SSL_CTX *to_ctx, SSL_CTX *from_ctx, uint64_t from_id, uint64_t dial_id,
			      const uint64_t *to_members)
{
	tp_node a, b;
	tp_dial d;

	tp_node_init(&a, 1, to_ctx, to_members);
	tp_node_init(&b, from_id, from_ctx, tp_three);
	tp_listen(&a);
	assert_int_not_equal(tp_dial_to(&b, &d, dial_id, &a), 0);
	assert_null(d.stream);
	/* Let the acceptor finish its side too. */
	uv_run(&tp_loop, UV_RUN_NOWAIT);
	assert_int_equal(a.accepted, 0);
	tp_node_close(&a);
	tp_node_close(&b);
}

static void test_member_posing_as_another(void **state)
{
	(void)state;
	/* node2's certificate, speaking for node 3. */
	tp_expect_refused(tp_ctx(tp_dir, "node1"), tp_ctx(tp_dir, "node2"), 3, 1, tp_three);
}

static void test_dial_reaches_another_member(void **state)
{
	(void)state;
	/* We mean node 3, but the one answering is member-1. */
	tp_expect_refused(tp_ctx(tp_dir, "node1"), tp_ctx(tp_dir, "node2"), 2, 3, tp_three);
}

static void test_not_in_configuration(void **state)
{
	static const uint64_t one_three[] = {1, 3, 0};

	(void)state;
	tp_expect_refused(tp_ctx(tp_dir, "node1"), tp_ctx(tp_dir, "node2"), 2, 1, one_three);
}

static void test_other_ca(void **state)
{
	(void)state;
	tp_expect_refused(tp_ctx(tp_dir, "node1"), tp_ctx(tp_other, "node2"), 2, 1, tp_three);
}

static void test_client_certificate(void **state)
{
	(void)state;
	tp_expect_refused(tp_ctx(tp_dir, "node1"), tp_ctx(tp_dir, "admin"), 2, 1, tp_three);
}

static void test_plaintext_against_tls(void **state)
{
	(void)state;
	tp_expect_refused(tp_ctx(tp_dir, "node1"), NULL, 2, 1, tp_three);
	tp_expect_refused(NULL, tp_ctx(tp_dir, "node2"), 2, 1, tp_three);
}

static void test_plaintext_loopback_admits(void **state)
{
	tp_node a, b;
	tp_dial d;

	(void)state;
	tp_node_init(&a, 1, NULL, tp_three);
	tp_node_init(&b, 2, NULL, tp_three);
	tp_listen(&a);
	assert_int_equal(tp_dial_to(&b, &d, 1, &a), 0);
	uv_close((uv_handle_t *)d.stream, tp_free_handle);
	tp_node_close(&a);
	tp_node_close(&b);
}

/* A blocking TCP connect from source IP src to addr ("127.0.0.1:port");
 * the fd, or -1 if refused. */
static int tp_raw_connect(const char *src, const char *addr)
{
	struct sockaddr_in sa = {.sin_family = AF_INET}, from = {.sin_family = AF_INET};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_port = htons((unsigned short)atoi(strrchr(addr, ':') + 1));
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	inet_pton(AF_INET, src, &from.sin_addr);
	assert_int_equal(bind(fd, (struct sockaddr *)&from, sizeof from), 0);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* True if the server closed fd. */
static bool tp_raw_closed(int fd)
{
	char c;

	return recv(fd, &c, 1, MSG_DONTWAIT) == 0;
}

static void tp_spin(unsigned ms)
{
	bool never = false;

	tp_wait(&never, ms);
}

static void test_lone_member_opens_no_port(void **state)
{
	static const uint64_t alone[] = {1, 0};
	tp_node a, b;
	tp_dial d;
	int fd;

	(void)state;
	tp_node_init(&a, 1, tp_ctx(tp_dir, "node1"), alone);
	tp_listen(&a);
	fd = tp_raw_connect("127.0.0.1", a.address);
	assert_int_equal(fd, -1); /* nothing listens */
	/* Its configuration grew and it dials the new member: now it listens. */
	tp_node_init(&b, 2, tp_ctx(tp_dir, "node2"), tp_three);
	tp_listen(&b);
	a.members[1] = 2;
	assert_int_equal(tp_dial_to(&a, &d, 2, &b), 0);
	uv_close((uv_handle_t *)d.stream, tp_free_handle);
	fd = tp_raw_connect("127.0.0.1", a.address);
	assert_int_not_equal(fd, -1);
	close(fd);
	tp_node_close(&a);
	tp_node_close(&b);
}

static void test_gate_keeps_room_for_members(void **state)
{
	int flood[TP_MAX_FLOOD];
	int n = 0, closed = 0;
	tp_node a, b;
	tp_dial d;
	char src[INET_ADDRSTRLEN];

	(void)state;
	tp_node_init(&a, 1, tp_ctx(tp_dir, "node1"), tp_three);
	tp_node_init(&b, 2, tp_ctx(tp_dir, "node2"), tp_three);
	tp_listen(&a);
	/* One stranger: only PEER_MAX_PENDING_PER_SOURCE of its silent
	 * connections wait in the handshake; the rest are closed at once. */
	for (int i = 0; i < PEER_MAX_PENDING_PER_SOURCE + 3; i++)
		flood[n++] = tp_raw_connect("127.0.0.2", a.address);
	tp_spin(200);
	for (int i = 0; i < n; i++)
		closed += tp_raw_closed(flood[i]);
	assert_int_equal(closed, 3);
	/* Strangers from many addresses: they fill the unreserved slots ... */
	for (int s = 3; n < TP_MAX_FLOOD; s++) {
		snprintf(src, sizeof src, "127.0.0.%d", s & 0xff);
		for (int i = 0; i < PEER_MAX_PENDING_PER_SOURCE && n < TP_MAX_FLOOD; i++)
			flood[n++] = tp_raw_connect(src, a.address);
	}
	tp_spin(200);
	closed = 0;
	for (int i = 0; i < n; i++)
		closed += tp_raw_closed(flood[i]);
	assert_int_equal(n - closed, PEER_MAX_PENDING - PEER_RESERVED_FOR_MEMBERS);
	/* ... and a member still gets in. */
	assert_int_equal(tp_dial_to(&b, &d, 1, &a), 0);
	uv_close((uv_handle_t *)d.stream, tp_free_handle);
	for (int i = 0; i < n; i++)
		close(flood[i]);
	tp_node_close(&a);
	tp_node_close(&b);
}

static void test_reload_cuts_off_revoked(void **state)
{
	tp_node a, b;
	tp_dial d;
	bool admitted;

	(void)state;
	/* Admitted while the acceptor has not read the CRL yet ... */
	tp_node_init(&a, 1, tp_ctx_crl(tp_dir, "node1", false), tp_three);
	tp_node_init(&b, 2, tp_ctx(tp_dir, "revoked"), tp_three);
	tp_listen(&a);
	assert_int_equal(tp_dial_to(&b, &d, 1, &a), 0);
	assert_true(tp_wait(&a.admitted, TP_WAIT_MS));
	admitted = a.accepted == 1;
	assert_true(admitted);
	/* ... a reload without the CRL keeps it (positive control) ... */
	peer_transport_set_ctx(&a.tr, tp_ctx_crl(tp_dir, "node1", false));
	tp_spin(100);
	assert_false(a.in_eof);
	/* ... and the reload of the CRL cuts it off: libraft's stream ends. */
	peer_transport_set_ctx(&a.tr, tp_ctx(tp_dir, "node1"));
	assert_true(tp_wait(&a.in_eof, TP_WAIT_MS));
	uv_close((uv_handle_t *)d.stream, tp_free_handle);
	tp_node_close(&a);
	tp_node_close(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_admitted_and_relayed),
	    cmocka_unit_test(test_member_posing_as_another),
	    cmocka_unit_test(test_dial_reaches_another_member),
	    cmocka_unit_test(test_not_in_configuration),
	    cmocka_unit_test(test_other_ca),
	    cmocka_unit_test(test_client_certificate),
	    cmocka_unit_test(test_plaintext_against_tls),
	    cmocka_unit_test(test_plaintext_loopback_admits),
	    cmocka_unit_test(test_lone_member_opens_no_port),
	    cmocka_unit_test(test_gate_keeps_room_for_members),
	    cmocka_unit_test(test_reload_cuts_off_revoked),
	};
	return cmocka_run_group_tests_name("peer", tests, tp_setup, tp_teardown);
}
