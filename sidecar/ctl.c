/* ctl.c: tsoracle-ctl, the operator's command line: status, timestamps on demand, leadership transfer. */
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "dial.h"
#include "proto.h"
#include "tls.h"

#define CTL_DEFAULT_ADDRESS    "/run/tsoracle/tsoracled.sock"
#define CTL_DEFAULT_TIMEOUT_MS 5000
#define CTL_ERR_SIZE           256
#define CTL_EXIT_USAGE         2 /* bad usage (--help: "Exit status") */
#define MS_PER_S               1000
#define NS_PER_MS              1000000

/* One connection to one node, with a deadline for the whole exchange. */
typedef struct ctl_conn {
	const char *address;
	int fd;
	SSL *ssl; /* TLS on a TCP address (ctl_tls); NULL: plaintext */
	uint64_t deadline_ms;
	tp_reader reader;
	uint32_t node_id;
	char err[CTL_ERR_SIZE];
} ctl_conn;

/* The TLS context for TCP addresses, from --ca/--cert/--key or the
 * --config file's tls-*; NULL: plaintext (a loopback client-tcp without
 * TLS). */
static SSL_CTX *ctl_tls;

static void ctl_usage(FILE *out)
{
	fprintf(
	    out,
	    "Usage: tsoracle-ctl [--address ADDR] [--timeout MS] [TLS] COMMAND\n"
	    "       tsoracle-ctl (--peers SPEC | --config FILE) [--timeout MS] [TLS] status [--json]\n"
	    "       tsoracle-ctl (--peers SPEC | --config FILE) [--timeout MS] [TLS] transfer-leader [ID]\n"
	    "       tsoracle-ctl (--peers SPEC | --config FILE) [--timeout MS] [TLS] advance-to UNIX_MS\n"
	    "       tsoracle-ctl (--peers SPEC | --config FILE) [--timeout MS] [TLS] cluster-version "
	    "[raise]\n\n"
	    "Commands:\n"
	    "  status [--json]   a node's role, term, leader, high-water mark, commit and applied\n"
	    "                    index; with --peers or --config, every member's, over TCP, with\n"
	    "                    its reachability\n"
	    "  get [N]           take N (default 1) fresh timestamps; prints the first and N\n"
	    "  transfer-leader [ID]\n"
	    "                    ask the leader at ADDR (with --peers or --config: whichever\n"
	    "                    member leads) to hand leadership to member ID (default: any\n"
	    "                    caught-up voter) and wait for it; prints the new leader\n"
	    "  advance-to UNIX_MS\n"
	    "                    make every later timestamp's physical part at least UNIX_MS\n"
	    "                    (ms): the leader commits it; refused if not forward, or more\n"
	    "                    than max-reset-gap ahead of its clock (admin)\n"
	    "  cluster-version [raise]\n"
	    "                    (with --peers or --config) every member's command set and the\n"
	    "                    cluster version; raise: once all run a newer one, commit it\n"
	    "                    (admin; docs/cluster.md, \"Upgrades\")\n\n"
	    "ADDR is a unix socket path (/path or unix:/path) or IP:PORT (or tcp:IP:PORT);\n"
	    "default $TSORACLE_ADDRESS, else %s. SPEC is tsoracled's --peers value\n"
	    "(ID=RAFT_IP:PORT/CLIENT_IP:PORT,...); FILE a tsoracled config file with peers.\n\n"
	    "TLS (for TCP addresses of a cluster with tls-* set; docs/cluster.md):\n"
	    "  --ca FILE     the cluster's CA certificate (PEM)\n"
	    "  --cert FILE   this client's certificate: OU=client takes timestamps and reads\n"
	    "                status; transfer-leader, advance-to and cluster-version raise need\n"
	    "                OU=admin (scripts/certs.sh: admin.crt)\n"
	    "  --key FILE    its private key (mode 600)\n"
	    "  --crl FILE    revoked certificates (optional)\n"
	    "With --config, the file's tls-ca, tls-cert, tls-key and tls-crl are used unless\n"
	    "these are given (a member's certificate is not an admin's: give --cert/--key).\n\n"
	    "Exit status: 0 done, 1 the command failed (no answer, refused), 2 bad usage\n"
	    "(an unknown command or option, a missing or malformed argument).\n",
	    CTL_DEFAULT_ADDRESS);
}

static uint64_t ctl_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * MS_PER_S + (uint64_t)ts.tv_nsec / NS_PER_MS;
}

static int ctl_fail(ctl_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int ctl_fail(ctl_conn *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, sizeof c->err, fmt, ap);
	va_end(ap);
	return -1;
}

static int ctl_connect(ctl_conn *c)
{
	uint64_t now = ctl_now_ms();

	c->fd = tp_dial(c->address, c->err, sizeof c->err);
	if (c->fd < 0)
		return -1;
	if (ctl_tls == NULL || !tp_dial_is_tcp(c->address))
		return 0;
	c->ssl = tp_dial_tls(c->fd, ctl_tls, c->address,
			     now < c->deadline_ms ? (int)(c->deadline_ms - now) : 1, c->err, sizeof c->err);
	return c->ssl == NULL ? -1 : 0;
}

static int ctl_send(ctl_conn *c, const tp_msg *m)
{
	uint8_t buf[TP_MAX_FRAME];
	size_t n = tp_encode(m, buf, sizeof buf);
	size_t off = 0;

	if (n == 0)
		return ctl_fail(c, "could not encode a message of type %u", m->type);
	while (off < n) {
		ssize_t w = tp_io_write(c->fd, c->ssl, buf + off, n - off);

		if (w < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (w <= 0)
			return ctl_fail(c, "write to %s failed: %s", c->address, strerror(errno));
		off += (size_t)w;
	}
	return 0;
}

/* What to add to a failure on a plaintext TCP connection: the server may
 * want TLS, which speaks no plaintext. */
static const char *ctl_tls_hint(const ctl_conn *c)
{
	return c->ssl == NULL && tp_dial_is_tcp(c->address)
		   ? " (if its client-tcp runs TLS, give --ca, --cert and --key)"
		   : "";
}

/* Reads until one whole message arrives or the deadline passes. */
static int ctl_recv(ctl_conn *c, tp_msg *m)
{
	for (;;) {
		int rc = tp_reader_next(&c->reader, m);
		struct pollfd pfd;
		uint64_t now;
		size_t room;
		uint8_t *p;
		ssize_t n;

		if (rc > 0)
			return 0;
		if (rc < 0)
			return ctl_fail(c, "malformed answer from %s: %s%s", c->address,
					tp_reader_errstr(&c->reader), ctl_tls_hint(c));
		now = ctl_now_ms();
		if (now >= c->deadline_ms)
			return ctl_fail(c, "no answer from %s in time", c->address);
		pfd.fd = c->fd;
		pfd.events = POLLIN;
		/* A TLS session may hold decrypted bytes the socket no longer shows. */
		if ((c->ssl == NULL || SSL_pending(c->ssl) == 0) &&
		    poll(&pfd, 1, (int)(c->deadline_ms - now)) <= 0)
			continue;
		p = tp_reader_space(&c->reader, &room);
		n = tp_io_read(c->fd, c->ssl, p, room);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			return ctl_fail(c, "%s closed the connection%s", c->address, ctl_tls_hint(c));
		tp_reader_commit(&c->reader, (size_t)n);
	}
}

/* Connects and shakes hands; on failure c->err says why. */
static int ctl_open(ctl_conn *c, const char *address, int timeout_ms)
{
	tp_msg m;

	memset(c, 0, sizeof *c);
	c->fd = -1;
	c->ssl = NULL;
	c->address = address;
	c->deadline_ms = ctl_now_ms() + (uint64_t)timeout_ms;
	tp_reader_init(&c->reader);
	if (ctl_connect(c) != 0)
		return -1;
	m.type = TP_HELLO;
	m.u.hello.magic = TP_MAGIC;
	m.u.hello.min_version = TP_VERSION;
	m.u.hello.max_version = TP_VERSION;
	if (ctl_send(c, &m) != 0 || ctl_recv(c, &m) != 0)
		return -1;
	if (m.type == TP_ERROR)
		return ctl_fail(c, "%s refused the connection: %s", address, m.u.error.text);
	if (m.type != TP_HELLO_OK)
		return ctl_fail(c, "unexpected answer to hello from %s", address);
	c->node_id = m.u.hello_ok.node_id;
	return 0;
}

static void ctl_close(ctl_conn *c)
{
	if (c->ssl != NULL) {
		SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
	}
	c->ssl = NULL;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

static int ctl_query_status(ctl_conn *c, tp_status *st)
{
	tp_msg m;

	m.type = TP_STATUS_REQ;
	m.u.status_req.id = 1;
	if (ctl_send(c, &m) != 0 || ctl_recv(c, &m) != 0)
		return -1;
	if (m.type != TP_STATUS_RESP || m.u.status_resp.status != TP_OK)
		return ctl_fail(c, "status failed: %s",
				m.type == TP_ERROR ? m.u.error.text : "unexpected answer");
	*st = m.u.status_resp.st;
	return 0;
}

static void ctl_json_status(const char *address, const tp_status *st)
{
	printf("\"address\": \"%s\", \"node_id\": %" PRIu32 ", \"role\": \"%s\", \"serving\": %s, "
	       "\"term\": %" PRIu64 ", \"leader_id\": %" PRIu32 ", \"high_water_ms\": %" PRIu64
	       ", \"commit_index\": %" PRIu64 ", \"applied_index\": %" PRIu64 ", \"last_issued\": %" PRIu64
	       ", \"grants\": %" PRIu64 ", \"timestamps\": %" PRIu64,
	       address, st->node_id, tp_role_str(st->role), (st->flags & TP_FLAG_SERVING) ? "true" : "false",
	       st->term, st->leader_id, st->high_water_ms, st->commit_index, st->applied_index,
	       st->last_issued, st->grants, st->timestamps);
	printf(", \"clock_offset_ms\": %" PRId64 ", \"clock_unsupported\": %s, \"clock_held\": %s, "
	       "\"clock_start_gap\": %s, \"clock_ahead_ms\": %" PRIu64,
	       st->clock_offset_ms, (st->flags & TP_FLAG_CLOCK_UNSUPPORTED) ? "true" : "false",
	       (st->flags & TP_FLAG_CLOCK_HELD) ? "true" : "false",
	       (st->flags & TP_FLAG_CLOCK_START_GAP) ? "true" : "false", st->clock_ahead_ms);
}

/* The clock check's verdict, for people (include/tsoracle.h, "clock sanity"). */
static void ctl_print_clock(const tp_status *st)
{
	printf("  clock offset   %+" PRId64 " ms from the median of the members' clocks%s\n",
	       st->clock_offset_ms,
	       (st->flags & TP_FLAG_CLOCK_UNSUPPORTED)
		   ? " (NOT within max-clock-offset of a majority: this member does not lead)"
		   : "");
	if (st->flags & TP_FLAG_CLOCK_HELD)
		printf("  clock held     the wall clock jumped %" PRIu64
		       " ms ahead of the clock served; not followed (no majority supports it)\n",
		       st->clock_ahead_ms);
	if (st->flags & TP_FLAG_CLOCK_START_GAP)
		printf("  clock gap      the wall clock was %" PRIu64
		       " ms past the stored high-water mark at start, more than max-start-gap: not serving "
		       "until restarted with --trust-clock 1 (or a fixed clock)\n",
		       st->clock_ahead_ms);
}

static int ctl_status_one(const char *address, int timeout_ms, bool json)
{
	ctl_conn c;
	tp_status st;

	if (ctl_open(&c, address, timeout_ms) != 0 || ctl_query_status(&c, &st) != 0) {
		fprintf(stderr, "tsoracle-ctl: %s\n", c.err);
		ctl_close(&c);
		return 1;
	}
	ctl_close(&c);
	if (json) {
		printf("{");
		ctl_json_status(address, &st);
		printf("}\n");
		return 0;
	}
	printf("node %" PRIu32 " at %s\n", st.node_id, address);
	printf("  role           %s%s\n", tp_role_str(st.role),
	       (st.flags & TP_FLAG_SERVING) ? " (serving)" : "");
	printf("  term           %" PRIu64 "\n", st.term);
	printf("  leader         %" PRIu32 "%s\n", st.leader_id, st.leader_id == 0 ? " (unknown)" : "");
	printf("  high-water     %" PRIu64 " ms\n", st.high_water_ms);
	printf("  commit index   %" PRIu64 "\n", st.commit_index);
	printf("  applied index  %" PRIu64 "\n", st.applied_index);
	printf("  last issued    %" PRIu64 "\n", st.last_issued);
	printf("  grants         %" PRIu64 " (%" PRIu64 " timestamps)\n", st.grants, st.timestamps);
	ctl_print_clock(&st);
	return 0;
}

/* Every member's status, through its client address; an unreachable
 * member is a row that says so. Exit status 0 if a majority answered. */
static int ctl_status_cluster(const cfg *members, int timeout_ms, bool json)
{
	unsigned reachable = 0;

	if (json)
		printf("[");
	else
		printf("%-4s %-22s %-22s %-9s %-10s %-8s %-6s %-15s %-8s %-8s %s\n", "id", "raft", "client",
		       "reachable", "role", "serving", "term", "high-water ms", "commit", "applied",
		       "leader");
	for (unsigned i = 0; i < members->n_peers; i++) {
		const cfg_peer *p = &members->peers[i];
		ctl_conn c;
		tp_status st;
		bool ok = p->client[0] != '\0' && ctl_open(&c, p->client, timeout_ms) == 0 &&
			  ctl_query_status(&c, &st) == 0;

		if (p->client[0] == '\0')
			snprintf(c.err, sizeof c.err, "no client address in peers");
		else
			ctl_close(&c);
		reachable += ok;
		if (json) {
			printf("%s{\"id\": %" PRIu64 ", \"raft_address\": \"%s\", \"reachable\": %s, ",
			       i ? ", " : "", p->id, p->address, ok ? "true" : "false");
			if (ok)
				ctl_json_status(p->client, &st);
			else
				printf("\"address\": \"%s\", \"error\": \"%s\"", p->client, c.err);
			printf("}");
		} else if (ok) {
			printf("%-4" PRIu64 " %-22s %-22s %-9s %-10s %-8s %-6" PRIu64 " %-15" PRIu64
			       " %-8" PRIu64 " %-8" PRIu64 " %" PRIu32 "\n",
			       p->id, p->address, p->client, "yes", tp_role_str(st.role),
			       (st.flags & TP_FLAG_SERVING) ? "yes" : "no", st.term, st.high_water_ms,
			       st.commit_index, st.applied_index, st.leader_id);
		} else {
			printf("%-4" PRIu64 " %-22s %-22s %-9s (%s)\n", p->id, p->address, p->client, "no",
			       c.err);
		}
	}
	if (json)
		printf("]\n");
	return reachable * 2 > members->n_peers ? 0 : 1;
}

static int ctl_get(const char *address, int timeout_ms, uint32_t count)
{
	ctl_conn c;
	tp_msg m;
	int rc = 1;

	m.type = TP_TS_REQ;
	m.u.ts_req.id = 1;
	m.u.ts_req.count = count;
	if (ctl_open(&c, address, timeout_ms) != 0 || ctl_send(&c, &m) != 0 || ctl_recv(&c, &m) != 0)
		fprintf(stderr, "tsoracle-ctl: %s\n", c.err);
	else if (m.type != TP_TS_RESP)
		fprintf(stderr, "tsoracle-ctl: get failed: %s\n",
			m.type == TP_ERROR ? m.u.error.text : "unexpected answer");
	else if (m.u.ts_resp.status != TP_OK)
		fprintf(stderr, "tsoracle-ctl: %s\n", tp_status_str(m.u.ts_resp.status));
	else {
		printf("%" PRIu64 " %" PRIu32 "\n", m.u.ts_resp.first, m.u.ts_resp.count);
		rc = 0;
	}
	ctl_close(&c);
	return rc;
}

/*
 * Asks the node at address for a planned handover to member target (0: any
 * caught-up voter). The node answers once leadership has moved or the
 * handover has given up (within an election timeout); a member that is not
 * the leader answers at once, naming the leader to ask instead.
 */
static int ctl_transfer_leader(const char *address, int timeout_ms, uint32_t target)
{
	ctl_conn c;
	tp_msg m;
	uint64_t t0 = ctl_now_ms();
	int rc = 1;

	m.type = TP_TRANSFER_REQ;
	m.u.transfer_req.id = 1;
	m.u.transfer_req.target = target;
	if (ctl_open(&c, address, timeout_ms) != 0 || ctl_send(&c, &m) != 0 || ctl_recv(&c, &m) != 0) {
		fprintf(stderr, "tsoracle-ctl: %s\n", c.err);
	} else if (m.type != TP_TRANSFER_RESP) {
		fprintf(stderr, "tsoracle-ctl: transfer-leader failed: %s\n",
			m.type == TP_ERROR ? m.u.error.text : "unexpected answer");
	} else if (m.u.transfer_resp.status == TP_OK) {
		printf("leader is now node %" PRIu32 " (was node %" PRIu32 "; handover took %" PRIu64
		       " ms)\n",
		       m.u.transfer_resp.leader_id, c.node_id, ctl_now_ms() - t0);
		rc = 0;
	} else if (m.u.transfer_resp.status == TP_ERR_NOT_LEADER) {
		if (m.u.transfer_resp.leader_id != 0)
			fprintf(stderr,
				"tsoracle-ctl: node %" PRIu32 " at %s is not the leader; node %" PRIu32
				" is: ask it (its client address is in the peers list)\n",
				c.node_id, address, m.u.transfer_resp.leader_id);
		else
			fprintf(stderr,
				"tsoracle-ctl: node %" PRIu32
				" at %s is not the leader and knows of none yet\n",
				c.node_id, address);
	} else if (m.u.transfer_resp.status == TP_ERR_BAD_REQUEST) {
		fprintf(stderr,
			"tsoracle-ctl: transfer-leader: %s: the target must be a voting member other "
			"than the leader, node %" PRIu32 " (a single-member cluster has none)\n",
			tp_status_str(m.u.transfer_resp.status), c.node_id);
	} else if (m.u.transfer_resp.leader_id == 0) {
		fprintf(stderr, "tsoracle-ctl: transfer-leader: %s; no leader is known yet\n",
			tp_status_str(m.u.transfer_resp.status));
	} else {
		fprintf(stderr, "tsoracle-ctl: transfer-leader: %s; the leader is node %" PRIu32 "%s\n",
			tp_status_str(m.u.transfer_resp.status), m.u.transfer_resp.leader_id,
			m.u.transfer_resp.leader_id == c.node_id ? " still" : "");
	}
	ctl_close(&c);
	return rc;
}

static const char *ctl_find_leader(const cfg *members, int timeout_ms);

/* Sends one TP_ADMIN_REQ on an open connection and reads its answer into
 * *m; -1 (c->err) without one. */
static int ctl_admin(ctl_conn *c, uint8_t op, uint64_t arg, uint64_t arg2, tp_msg *m)
{
	m->type = TP_ADMIN_REQ;
	m->u.admin_req.id = 1;
	m->u.admin_req.op = op;
	m->u.admin_req.arg = arg;
	m->u.admin_req.arg2 = arg2;
	if (ctl_send(c, m) != 0 || ctl_recv(c, m) != 0)
		return -1;
	if (m->type == TP_ERROR)
		return ctl_fail(c, "%s: %s", c->address, m->u.error.text);
	if (m->type != TP_ADMIN_RESP)
		return ctl_fail(c, "unexpected answer from %s", c->address);
	return 0;
}

/* What to say when a member that is not the leader answered. */
static void ctl_not_leader(const ctl_conn *c, const char *command, uint32_t leader_id)
{
	if (leader_id != 0 && leader_id != c->node_id)
		fprintf(stderr,
			"tsoracle-ctl: %s: node %" PRIu32 " at %s is not the leader; node %" PRIu32
			" is: ask it (or give --config FILE to find it)\n",
			command, c->node_id, c->address, leader_id);
	else
		fprintf(stderr,
			"tsoracle-ctl: %s: node %" PRIu32 " at %s is not a serving leader (no leader yet, "
			"or it is still fencing): try again in a second\n",
			command, c->node_id, c->address);
}

/*
 * advance-to: asks the leader at address to commit Advance(unix_ms), after
 * which every timestamp's physical part is at least unix_ms. Exit 0 once
 * committed; 1 with the reason when refused (backwards, beyond
 * max-reset-gap, cluster version too low, not the leader).
 */
static int ctl_advance_to(const char *address, int timeout_ms, uint64_t unix_ms)
{
	ctl_conn c;
	tp_msg m;
	int rc = 1;

	if (ctl_open(&c, address, timeout_ms) != 0 || ctl_admin(&c, TP_ADMIN_ADVANCE, unix_ms, 0, &m) != 0) {
		fprintf(stderr, "tsoracle-ctl: advance-to: %s\n", c.err);
		ctl_close(&c);
		return 1;
	}
	switch (m.u.admin_resp.status) {
	case TP_OK:
		printf("advanced: every later timestamp's physical part is at least %" PRIu64
		       " ms (the oracle's floor is %" PRIu64 " ms)\n",
		       unix_ms, m.u.admin_resp.value);
		rc = 0;
		break;
	case TP_ERR_BACKWARDS:
		fprintf(stderr,
			"tsoracle-ctl: advance-to %" PRIu64
			": refused, never backwards: the next timestamp's "
			"physical part is already %" PRIu64 " ms (%" PRIu64
			" ms past the time asked for); nothing changed\n",
			unix_ms, m.u.admin_resp.value, m.u.admin_resp.value - unix_ms);
		break;
	case TP_ERR_TOO_FAR:
		fprintf(stderr,
			"tsoracle-ctl: advance-to %" PRIu64 ": refused: %" PRIu64
			" ms ahead of the leader's clock (%" PRIu64 " ms), more than max-reset-gap (%" PRIu64
			" ms); raise max-reset-gap in every member's config (and restart them) if you mean "
			"it, or advance in steps\n",
			unix_ms, unix_ms - m.u.admin_resp.value, m.u.admin_resp.value, m.u.admin_resp.value2);
		break;
	case TP_ERR_CLUSTER_VERSION:
		fprintf(stderr,
			"tsoracle-ctl: advance-to: refused: the cluster version is %" PRIu64
			", advance-to needs %" PRIu64
			": upgrade every member, then run tsoracle-ctl --config FILE cluster-version raise "
			"(docs/cluster.md, \"Upgrades\")\n",
			m.u.admin_resp.value, m.u.admin_resp.value2);
		break;
	case TP_ERR_BAD_REQUEST:
		fprintf(stderr,
			"tsoracle-ctl: advance-to %" PRIu64 ": refused: past the end of the timestamp range "
			"(%" PRIu64 " ms)\n",
			unix_ms, m.u.admin_resp.value);
		break;
	case TP_ERR_NOT_LEADER:
		ctl_not_leader(&c, "advance-to", m.u.admin_resp.leader_id);
		break;
	case TP_ERR_UNAVAILABLE:
		fprintf(stderr,
			"tsoracle-ctl: advance-to: the leader lost its leadership before the advance "
			"committed; it may still commit: run it again (it is refused as backwards if it "
			"did)\n");
		break;
	default:
		fprintf(stderr, "tsoracle-ctl: advance-to: %s\n", tp_status_str(m.u.admin_resp.status));
		break;
	}
	ctl_close(&c);
	return rc;
}

/* One member's versions: its build's command set (*known; 1 for a build
 * that does not know TP_ADMIN_REQ) and the cluster version it applied.
 * -1 (c->err) if it did not answer. */
static int ctl_member_versions(const char *address, int timeout_ms, uint64_t *known, uint64_t *cluster,
			       char *err, size_t errlen)
{
	ctl_conn c;
	tp_msg m;
	int rc = 0;

	if (ctl_open(&c, address, timeout_ms) != 0) {
		snprintf(err, errlen, "%s", c.err);
		ctl_close(&c);
		return -1;
	}
	m.type = TP_ADMIN_REQ;
	m.u.admin_req.id = 1;
	m.u.admin_req.op = TP_ADMIN_VERSIONS;
	m.u.admin_req.arg = 0;
	m.u.admin_req.arg2 = 0;
	if (ctl_send(&c, &m) != 0 || ctl_recv(&c, &m) != 0) {
		snprintf(err, errlen, "%s", c.err);
		rc = -1;
	} else if (m.type == TP_ERROR && m.u.error.status == TP_ERR_PROTOCOL) {
		/* A build of command set 1 refuses the message type. */
		*known = 1;
		*cluster = 1;
	} else if (m.type != TP_ADMIN_RESP || m.u.admin_resp.status != TP_OK) {
		snprintf(err, errlen, "unexpected answer to the versions request");
		rc = -1;
	} else {
		*known = m.u.admin_resp.value;
		*cluster = m.u.admin_resp.value2;
	}
	ctl_close(&c);
	return rc;
}

/*
 * cluster-version [raise]: every member's command set and cluster version;
 * with raise, once every member of the file answers and knows a set above
 * the cluster version, asks the leader to commit the highest one all know.
 */
static int ctl_cluster_version(const cfg *members, int timeout_ms, bool raise)
{
	uint64_t lowest = UINT64_MAX, current = 0;
	unsigned answered = 0;
	const char *leader;
	ctl_conn c;
	tp_msg m;
	int rc = 1;

	printf("%-4s %-22s %-12s %s\n", "id", "client", "command set", "cluster version");
	for (unsigned i = 0; i < members->n_peers; i++) {
		const cfg_peer *p = &members->peers[i];
		uint64_t known = 0, cluster = 0;
		char err[CTL_ERR_SIZE];

		if (ctl_member_versions(p->client, timeout_ms, &known, &cluster, err, sizeof err) != 0) {
			printf("%-4" PRIu64 " %-22s (no answer: %s)\n", p->id, p->client, err);
			continue;
		}
		answered++;
		if (known < lowest)
			lowest = known;
		if (cluster > current)
			current = cluster;
		printf("%-4" PRIu64 " %-22s %-12" PRIu64 " %" PRIu64 "\n", p->id, p->client, known, cluster);
	}
	if (!raise)
		return answered == members->n_peers ? 0 : 1;
	if (answered < members->n_peers) {
		fprintf(stderr,
			"tsoracle-ctl: cluster-version raise: refused: %u of %u members did not answer; "
			"every member must be up and known to run the new version\n",
			members->n_peers - answered, members->n_peers);
		return 1;
	}
	if (lowest <= current) {
		fprintf(stderr,
			"tsoracle-ctl: cluster-version raise: nothing to do: the cluster version is %" PRIu64
			" and the oldest member knows command set %" PRIu64 " (upgrade it first)\n",
			current, lowest);
		return 1;
	}
	if ((leader = ctl_find_leader(members, timeout_ms)) == NULL)
		return 1;
	if (ctl_open(&c, leader, timeout_ms) != 0 ||
	    ctl_admin(&c, TP_ADMIN_SET_CLUSTER_VERSION, lowest, members->n_peers, &m) != 0) {
		fprintf(stderr, "tsoracle-ctl: cluster-version raise: %s\n", c.err);
	} else if (m.u.admin_resp.status == TP_OK) {
		printf("cluster version raised to %" PRIu64 "\n", m.u.admin_resp.value2);
		rc = 0;
	} else if (m.u.admin_resp.status == TP_ERR_BAD_REQUEST) {
		fprintf(stderr,
			"tsoracle-ctl: cluster-version raise: refused: the leader's Raft configuration has "
			"%" PRIu64
			" members, the config file lists %u: give a file that lists every member\n",
			m.u.admin_resp.value, members->n_peers);
	} else if (m.u.admin_resp.status == TP_ERR_BACKWARDS) {
		fprintf(stderr,
			"tsoracle-ctl: cluster-version raise: the cluster version is already %" PRIu64 "\n",
			m.u.admin_resp.value);
		rc = 0;
	} else if (m.u.admin_resp.status == TP_ERR_NOT_LEADER) {
		ctl_not_leader(&c, "cluster-version raise", m.u.admin_resp.leader_id);
	} else {
		fprintf(stderr, "tsoracle-ctl: cluster-version raise: %s\n",
			tp_status_str(m.u.admin_resp.status));
	}
	ctl_close(&c);
	return rc;
}

/*
 * The client address of the leader, as the first member that answers knows
 * it; NULL (after saying why on stderr) if no member answers, none knows a
 * leader, or the leader has no client address in the peers list.
 */
static const char *ctl_find_leader(const cfg *members, int timeout_ms)
{
	const char *last_err = "no member has a client address in the peers list";
	ctl_conn c;
	tp_status st;

	for (unsigned i = 0; i < members->n_peers; i++) {
		const cfg_peer *p = &members->peers[i];

		if (p->client[0] == '\0')
			continue;
		if (ctl_open(&c, p->client, timeout_ms) != 0 || ctl_query_status(&c, &st) != 0) {
			fprintf(stderr, "tsoracle-ctl: member %" PRIu64 " at %s: %s\n", p->id, p->client,
				c.err);
			ctl_close(&c);
			last_err = "no member answered";
			continue;
		}
		ctl_close(&c);
		if (st.leader_id == 0) {
			fprintf(stderr, "tsoracle-ctl: member %" PRIu64 " knows of no leader yet\n", p->id);
			return NULL;
		}
		for (unsigned j = 0; j < members->n_peers; j++)
			if (members->peers[j].id == st.leader_id && members->peers[j].client[0] != '\0')
				return members->peers[j].client;
		fprintf(stderr,
			"tsoracle-ctl: the leader is node %" PRIu32
			", which has no client address in the peers list\n",
			st.leader_id);
		return NULL;
	}
	fprintf(stderr, "tsoracle-ctl: cannot find the leader: %s\n", last_err);
	return NULL;
}

/* The optional argument after command argv[i], a number from 1 to max
 * named name, into *out (left as is when there is none); -1 after a
 * message if it is not one. */
/* An option this program knows (one that takes a value, --help aside). */
static bool ctl_is_option(const char *arg)
{
	static const char *const opts[] = {"--address", "--timeout", "--peers", "--config",
					   "--ca",      "--cert",    "--key",   "--crl"};

	for (size_t k = 0; k < sizeof opts / sizeof opts[0]; k++)
		if (strcmp(arg, opts[k]) == 0)
			return true;
	return false;
}

/* The command at argv[i] takes at most max_args - 1 arguments after it:
 * anything more is a mistake (a misplaced option), refused rather than
 * ignored. 0, or -1 with a message. */
static int ctl_extra_args(int argc, char **argv, int i, int max_args)
{
	if (argc - i <= max_args)
		return 0;
	fprintf(stderr, "tsoracle-ctl: %s: unexpected argument \"%s\"\n", argv[i], argv[i + max_args]);
	return -1;
}

static int ctl_optional_number(int argc, char **argv, int i, const char *name, unsigned long max,
			       unsigned long *out)
{
	unsigned long v;
	char *end;

	if (i + 1 >= argc)
		return 0;
	errno = 0;
	v = strtoul(argv[i + 1], &end, 10);
	if (errno != 0 || *end != '\0' || v == 0 || v > max) {
		fprintf(stderr, "tsoracle-ctl: %s: %s must be from 1 to %lu, not \"%s\"\n", argv[i], name,
			max, argv[i + 1]);
		return -1;
	}
	*out = v;
	return 0;
}

/* ctl_tls from the flags (opt: --ca, --cert, --key, --crl), each falling
 * back to the --config file's tls-* (members, empty without one). Neither:
 * no TLS. 0, or -1 with a message in err. */
static int ctl_tls_setup(const cfg *members, const char *const opt[4], char *err, size_t errlen)
{
	/* A refusal names what the user wrote: the flag, or the --config
	 * file's key the value came from. */
	const char *names[TLS_N_SETTINGS] = {
	    opt[0] != NULL ? "--ca" : tls_daemon_names[TLS_SET_CA],
	    opt[1] != NULL ? "--cert" : tls_daemon_names[TLS_SET_CERT],
	    opt[2] != NULL ? "--key" : tls_daemon_names[TLS_SET_KEY],
	    opt[3] != NULL ? "--crl" : tls_daemon_names[TLS_SET_CRL],
	};
	tls_files f = {
	    opt[0] != NULL ? opt[0] : members->tls_ca,
	    opt[1] != NULL ? opt[1] : members->tls_cert,
	    opt[2] != NULL ? opt[2] : members->tls_key,
	    opt[3] != NULL ? opt[3] : members->tls_crl,
	    names,
	};

	if (f.ca[0] == '\0' && f.cert[0] == '\0' && f.key[0] == '\0')
		return 0;
	if (f.ca[0] == '\0' || f.cert[0] == '\0' || f.key[0] == '\0') {
		snprintf(err, errlen, "TLS needs --ca, --cert and --key together (missing %s)",
			 f.ca[0] == '\0'     ? "--ca"
			 : f.cert[0] == '\0' ? "--cert"
					     : "--key");
		return -1;
	}
	ctl_tls = tls_ctx_new(&f, err, errlen);
	return ctl_tls != NULL ? 0 : -1;
}

int main(int argc, char **argv)
{
	const char *address = getenv("TSORACLE_ADDRESS") ? getenv("TSORACLE_ADDRESS") : CTL_DEFAULT_ADDRESS;
	int timeout_ms = CTL_DEFAULT_TIMEOUT_MS;
	char err[CTL_ERR_SIZE];
	cfg members;
	bool cluster = false;
	int i = 1;
	/* --ca, --cert, --key, --crl; NULL: the --config file's, if any. */
	const char *tls_opt[4] = {NULL, NULL, NULL, NULL};
	static const char *const tls_flags[4] = {"--ca", "--cert", "--key", "--crl"};

	cfg_defaults(&members);
	for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		bool has_value = i + 1 < argc;

		if (strcmp(argv[i], "--help") == 0) {
			ctl_usage(stdout);
			return 0;
		} else if (strcmp(argv[i], "--address") == 0 && has_value) {
			address = argv[++i];
		} else if (has_value && (strcmp(argv[i], "--ca") == 0 || strcmp(argv[i], "--cert") == 0 ||
					 strcmp(argv[i], "--key") == 0 || strcmp(argv[i], "--crl") == 0)) {
			for (int k = 0; k < 4; k++)
				if (strcmp(argv[i], tls_flags[k]) == 0)
					tls_opt[k] = argv[i + 1];
			i++;
		} else if (strcmp(argv[i], "--timeout") == 0 && has_value) {
			timeout_ms = atoi(argv[++i]);
			if (timeout_ms <= 0) {
				fprintf(stderr,
					"tsoracle-ctl: --timeout \"%s\" must be a positive number of ms\n",
					argv[i]);
				return CTL_EXIT_USAGE;
			}
		} else if ((strcmp(argv[i], "--peers") == 0 || strcmp(argv[i], "--config") == 0) &&
			   has_value) {
			int rc = argv[i][2] == 'p' ? cfg_parse_peers(&members, argv[i + 1], err, sizeof err)
						   : cfg_load_file(&members, argv[i + 1], err, sizeof err);

			i++;
			if (rc != 0) {
				fprintf(stderr, "tsoracle-ctl: %s\n", err);
				return CTL_EXIT_USAGE;
			}
			if (members.n_peers == 0) {
				fprintf(stderr, "tsoracle-ctl: no peers in %s\n", argv[i]);
				return CTL_EXIT_USAGE;
			}
			cluster = true;
		} else {
			if (ctl_is_option(argv[i]) && !has_value)
				fprintf(stderr, "tsoracle-ctl: option \"%s\" needs a value\n", argv[i]);
			else
				fprintf(stderr, "tsoracle-ctl: unknown option \"%s\"\n", argv[i]);
			ctl_usage(stderr);
			return CTL_EXIT_USAGE;
		}
	}
	if (i >= argc) {
		fprintf(stderr, "tsoracle-ctl: no command given\n");
		ctl_usage(stderr);
		return CTL_EXIT_USAGE;
	}
	if (ctl_tls_setup(&members, tls_opt, err, sizeof err) != 0) {
		fprintf(stderr, "tsoracle-ctl: %s\n", err);
		return CTL_EXIT_USAGE;
	}
	if (strcmp(argv[i], "status") == 0) {
		bool json = i + 1 < argc && strcmp(argv[i + 1], "--json") == 0;

		if (ctl_extra_args(argc, argv, i, json ? 2 : 1) != 0)
			return CTL_EXIT_USAGE;

		return cluster ? ctl_status_cluster(&members, timeout_ms, json)
			       : ctl_status_one(address, timeout_ms, json);
	}
	if (strcmp(argv[i], "get") == 0) {
		unsigned long n = 1;

		if (ctl_optional_number(argc, argv, i, "N", TP_MAX_COUNT, &n) != 0 ||
		    ctl_extra_args(argc, argv, i, 2) != 0)
			return CTL_EXIT_USAGE;
		return ctl_get(address, timeout_ms, (uint32_t)n);
	}
	if (strcmp(argv[i], "transfer-leader") == 0) {
		unsigned long id = 0; /* any caught-up voter */

		if (ctl_optional_number(argc, argv, i, "ID", UINT32_MAX, &id) != 0 ||
		    ctl_extra_args(argc, argv, i, 2) != 0)
			return CTL_EXIT_USAGE;
		/* With the members' list, ask whichever of them leads. */
		if (cluster && (address = ctl_find_leader(&members, timeout_ms)) == NULL)
			return 1;
		return ctl_transfer_leader(address, timeout_ms, (uint32_t)id);
	}
	if (strcmp(argv[i], "advance-to") == 0) {
		unsigned long long ms;
		char *end;

		if (i + 1 >= argc) {
			fprintf(stderr, "tsoracle-ctl: advance-to: UNIX_MS is missing (a Unix time in ms)\n");
			return CTL_EXIT_USAGE;
		}
		errno = 0;
		ms = strtoull(argv[i + 1], &end, 10);
		if (errno != 0 || *end != '\0' || argv[i + 1][0] < '0' || argv[i + 1][0] > '9' || ms == 0) {
			fprintf(stderr,
				"tsoracle-ctl: advance-to: UNIX_MS must be a Unix time in ms, not \"%s\"\n",
				argv[i + 1]);
			return CTL_EXIT_USAGE;
		}
		if (ctl_extra_args(argc, argv, i, 2) != 0)
			return CTL_EXIT_USAGE;
		if (cluster && (address = ctl_find_leader(&members, timeout_ms)) == NULL)
			return 1;
		return ctl_advance_to(address, timeout_ms, (uint64_t)ms);
	}
	if (strcmp(argv[i], "cluster-version") == 0) {
		bool raise = i + 1 < argc && strcmp(argv[i + 1], "raise") == 0;

		if (i + 1 < argc && !raise) {
			fprintf(stderr, "tsoracle-ctl: cluster-version: unknown argument \"%s\" (raise?)\n",
				argv[i + 1]);
			return CTL_EXIT_USAGE;
		}
		if (ctl_extra_args(argc, argv, i, raise ? 2 : 1) != 0)
			return CTL_EXIT_USAGE;
		if (!cluster) {
			fprintf(stderr,
				"tsoracle-ctl: cluster-version needs --config FILE or --peers SPEC: it "
				"asks every member\n");
			return CTL_EXIT_USAGE;
		}
		return ctl_cluster_version(&members, timeout_ms, raise);
	}
	fprintf(stderr, "tsoracle-ctl: unknown command \"%s\"\n", argv[i]);
	ctl_usage(stderr);
	return CTL_EXIT_USAGE;
}
