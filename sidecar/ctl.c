/* ctl.c: tsoracle-ctl, the operator's command line: status of a node, and timestamps on demand. */
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "proto.h"
#include "tso.h"

#define CTL_DEFAULT_ADDRESS    "/tmp/tsoracled.sock"
#define CTL_DEFAULT_TIMEOUT_MS 5000
#define CTL_ADDR_SIZE          256
#define MS_PER_S               1000
#define NS_PER_MS              1000000

typedef struct ctl {
	const char *address;
	int timeout_ms;
	int fd;
	uint64_t deadline_ms;
	tp_reader reader;
	uint32_t node_id;
} ctl;

static void ctl_usage(FILE *out)
{
	fprintf(out,
		"Usage: tsoracle-ctl [--address ADDR] [--timeout MS] COMMAND\n\n"
		"Commands:\n"
		"  status [--json]   the node's role, term, leader, high-water mark, indexes\n"
		"  get [N]           take N (default 1) fresh timestamps; prints first and count\n\n"
		"ADDR is a unix socket path (/path or unix:/path) or IP:PORT (or tcp:IP:PORT);\n"
		"default %s.\n",
		CTL_DEFAULT_ADDRESS);
}

static uint64_t ctl_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * MS_PER_S + (uint64_t)ts.tv_nsec / NS_PER_MS;
}

static void ctl_die(const char *fmt, const char *arg)
{
	fprintf(stderr, "tsoracle-ctl: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n");
	exit(1);
}

static int ctl_connect(ctl *c)
{
	const char *a = c->address;

	if (strncmp(a, "unix:", 5) == 0)
		a += 5;
	else if (strncmp(a, "tcp:", 4) == 0)
		a += 4;
	if (a[0] == '/') {
		struct sockaddr_un sun;

		memset(&sun, 0, sizeof sun);
		sun.sun_family = AF_UNIX;
		if (strlen(a) >= sizeof sun.sun_path)
			ctl_die("socket path \"%s\" is too long", a);
		memcpy(sun.sun_path, a, strlen(a) + 1);
		c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sun, sizeof sun) != 0)
			return -1;
		return 0;
	} else {
		char host[CTL_ADDR_SIZE];
		const char *colon = strrchr(a, ':');
		struct addrinfo hints, *res;
		int one = 1;

		if (colon == NULL || colon == a)
			ctl_die("address \"%s\" is neither a socket path nor IP:PORT", c->address);
		snprintf(host, sizeof host, "%.*s", (int)(colon - a), a);
		if (host[0] == '[' && host[strlen(host) - 1] == ']') {
			memmove(host, host + 1, strlen(host));
			host[strlen(host) - 1] = '\0';
		}
		memset(&hints, 0, sizeof hints);
		hints.ai_socktype = SOCK_STREAM;
		if (getaddrinfo(host, colon + 1, &hints, &res) != 0)
			ctl_die("could not resolve \"%s\"", c->address);
		c->fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (c->fd < 0 || connect(c->fd, res->ai_addr, res->ai_addrlen) != 0) {
			freeaddrinfo(res);
			return -1;
		}
		freeaddrinfo(res);
		setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		return 0;
	}
}

static void ctl_send(ctl *c, const tp_msg *m)
{
	uint8_t buf[TP_MAX_FRAME];
	size_t n = tp_encode(m, buf, sizeof buf);
	size_t off = 0;

	if (n == 0)
		ctl_die("could not encode a message of type %s", m->type == TP_TS_REQ ? "request" : "other");

	while (off < n) {
		ssize_t w = write(c->fd, buf + off, n - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			ctl_die("write to %s failed", c->address);
		off += (size_t)w;
	}
}

/* Reads until one whole message arrives or the deadline passes. */
static void ctl_recv(ctl *c, tp_msg *m)
{
	for (;;) {
		int rc = tp_reader_next(&c->reader, m);
		struct pollfd pfd;
		uint64_t now;
		size_t room;
		uint8_t *p;
		ssize_t n;

		if (rc > 0)
			return;
		if (rc < 0)
			ctl_die("malformed answer: %s", tp_reader_errstr(&c->reader));
		now = ctl_now_ms();
		if (now >= c->deadline_ms)
			ctl_die("no answer from %s in time", c->address);
		pfd.fd = c->fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, (int)(c->deadline_ms - now)) <= 0)
			continue;
		p = tp_reader_space(&c->reader, &room);
		n = read(c->fd, p, room);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			ctl_die("%s closed the connection", c->address);
		tp_reader_commit(&c->reader, (size_t)n);
	}
}

static void ctl_open(ctl *c)
{
	tp_msg m;

	c->deadline_ms = ctl_now_ms() + (uint64_t)c->timeout_ms;
	tp_reader_init(&c->reader);
	if (ctl_connect(c) != 0) {
		fprintf(stderr, "tsoracle-ctl: could not connect to %s: %s\n", c->address, strerror(errno));
		exit(1);
	}
	m.type = TP_HELLO;
	m.u.hello.magic = TP_MAGIC;
	m.u.hello.min_version = TP_VERSION;
	m.u.hello.max_version = TP_VERSION;
	ctl_send(c, &m);
	ctl_recv(c, &m);
	if (m.type == TP_ERROR)
		ctl_die("refused: %s", m.u.error.text);
	if (m.type != TP_HELLO_OK)
		ctl_die("unexpected answer to hello from %s", c->address);
	c->node_id = m.u.hello_ok.node_id;
}

static int ctl_status(ctl *c, bool json)
{
	tp_msg m;
	const tp_status *st;

	m.type = TP_STATUS_REQ;
	m.u.status_req.id = 1;
	ctl_send(c, &m);
	ctl_recv(c, &m);
	if (m.type != TP_STATUS_RESP || m.u.status_resp.status != TP_OK)
		ctl_die("status failed: %s", m.type == TP_ERROR ? m.u.error.text : "unexpected answer");
	st = &m.u.status_resp.st;
	if (json) {
		printf("{\"address\": \"%s\", \"node_id\": %" PRIu32 ", \"role\": \"%s\", \"serving\": %s, "
		       "\"term\": %" PRIu64 ", \"leader_id\": %" PRIu32 ", \"high_water_ms\": %" PRIu64
		       ", \"commit_index\": %" PRIu64 ", \"applied_index\": %" PRIu64
		       ", \"last_issued\": %" PRIu64 ", \"grants\": %" PRIu64 ", \"timestamps\": %" PRIu64
		       "}\n",
		       c->address, st->node_id, tp_role_str(st->role),
		       (st->flags & TP_FLAG_SERVING) ? "true" : "false", st->term, st->leader_id,
		       st->high_water_ms, st->commit_index, st->applied_index, st->last_issued, st->grants,
		       st->timestamps);
	} else {
		printf("node %" PRIu32 " at %s\n", st->node_id, c->address);
		printf("  role           %s%s\n", tp_role_str(st->role),
		       (st->flags & TP_FLAG_SERVING) ? " (serving)" : "");
		printf("  term           %" PRIu64 "\n", st->term);
		printf("  leader         %" PRIu32 "%s\n", st->leader_id,
		       st->leader_id == 0 ? " (unknown)" : "");
		printf("  high-water     %" PRIu64 " ms\n", st->high_water_ms);
		printf("  commit index   %" PRIu64 "\n", st->commit_index);
		printf("  applied index  %" PRIu64 "\n", st->applied_index);
		printf("  last issued    %" PRIu64 "\n", st->last_issued);
		printf("  grants         %" PRIu64 " (%" PRIu64 " timestamps)\n", st->grants, st->timestamps);
	}
	return 0;
}

static int ctl_get(ctl *c, uint32_t count)
{
	tp_msg m;

	m.type = TP_TS_REQ;
	m.u.ts_req.id = 1;
	m.u.ts_req.count = count;
	ctl_send(c, &m);
	ctl_recv(c, &m);
	if (m.type != TP_TS_RESP)
		ctl_die("get failed: %s", m.type == TP_ERROR ? m.u.error.text : "unexpected answer");
	if (m.u.ts_resp.status != TP_OK) {
		fprintf(stderr, "tsoracle-ctl: %s\n", tp_status_str(m.u.ts_resp.status));
		return 1;
	}
	printf("%" PRIu64 " %" PRIu32 "\n", m.u.ts_resp.first, m.u.ts_resp.count);
	return 0;
}

int main(int argc, char **argv)
{
	ctl c;
	int i = 1;

	memset(&c, 0, sizeof c);
	c.address = getenv("TSORACLE_ADDRESS") ? getenv("TSORACLE_ADDRESS") : CTL_DEFAULT_ADDRESS;
	c.timeout_ms = CTL_DEFAULT_TIMEOUT_MS;
	for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		if (strcmp(argv[i], "--help") == 0) {
			ctl_usage(stdout);
			return 0;
		} else if (strcmp(argv[i], "--address") == 0 && i + 1 < argc) {
			c.address = argv[++i];
		} else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
			c.timeout_ms = atoi(argv[++i]);
			if (c.timeout_ms <= 0)
				ctl_die("--timeout \"%s\" must be a positive number of ms", argv[i]);
		} else {
			ctl_usage(stderr);
			return 2;
		}
	}
	if (i >= argc) {
		ctl_usage(stderr);
		return 2;
	}
	if (strcmp(argv[i], "status") == 0) {
		bool json = i + 1 < argc && strcmp(argv[i + 1], "--json") == 0;

		ctl_open(&c);
		return ctl_status(&c, json);
	}
	if (strcmp(argv[i], "get") == 0) {
		unsigned long n = 1;
		char *end;

		if (i + 1 < argc) {
			errno = 0;
			n = strtoul(argv[i + 1], &end, 10);
			if (errno != 0 || *end != '\0' || n == 0 || n > TP_MAX_COUNT)
				ctl_die("get: N must be from 1 to 16777216, not \"%s\"", argv[i + 1]);
		}
		ctl_open(&c);
		return ctl_get(&c, (uint32_t)n);
	}
	fprintf(stderr, "tsoracle-ctl: unknown command \"%s\"\n", argv[i]);
	ctl_usage(stderr);
	return 2;
}
