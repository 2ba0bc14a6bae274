/* ctl.c: tsoracle-ctl, the operator's command line: status, timestamps on demand, leadership transfer,
 * members. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "dial.h"
#include "err.h"
#include "monotime.h"
#include "proto.h"
#include "tls.h"

#define CTL_DEFAULT_ADDRESS    "/run/tsoracle/tsoracled.sock"
#define CTL_DEFAULT_TIMEOUT_MS 5000
#define CTL_ERR_SIZE           256
#define CTL_EXIT_USAGE         2 /* bad usage (--help: "Exit status") */
/* How long member add and member remove wait for the leader's answer, ms:
 * beyond the default catch-up-timeout (30 s) and libraft's promotion
 * rounds, unless --timeout asks for longer. */
#define CTL_MEMBER_WAIT_MS     120000

/* One connection to one node, with a deadline for the whole exchange. */
typedef struct ctl_conn {
	tp_client cl; /* its address, socket, TLS session, reader, node id */
	uint64_t deadline_ms;
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
	    "[raise]\n"
	    "       tsoracle-ctl (--peers SPEC | --config FILE) [TLS] member list [--json]\n"
	    "       tsoracle-ctl (--peers SPEC | --config FILE) [TLS] member add "
	    "ID=RAFT_IP:PORT/CLIENT_IP:PORT\n"
	    "       tsoracle-ctl (--peers SPEC | --config FILE) [TLS] member remove ID [--force]\n\n"
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
	    "                    (admin; docs/cluster.md, \"Upgrades\")\n"
	    "  member list [--json]\n"
	    "                    the members of the replicated configuration: id, Raft and client\n"
	    "                    address, role (voter, learner, spare), whether it answers from\n"
	    "                    here, its match index (the leader's view)\n"
	    "  member add ID=RAFT_IP:PORT/CLIENT_IP:PORT\n"
	    "                    add a member started with join = true: it joins as a learner,\n"
	    "                    catches up, then votes; exit 0 once it votes. If it does not\n"
	    "                    catch up within the leader's catch-up-timeout it is removed\n"
	    "                    again (nothing changed, exit 1)\n"
	    "  member remove ID [--force]\n"
	    "                    remove a member (the leader hands over first); refused if the\n"
	    "                    voters left that are up would be no quorum, unless --force.\n"
	    "                    One membership change at a time (docs/cluster.md)\n\n"
	    "With --peers or --config, the members are read from the replicated configuration\n"
	    "of the first member that answers: the list only needs one member that is up.\n\n"
	    "ADDR is a unix socket path (/path or unix:/path) or IP:PORT (or tcp:IP:PORT);\n"
	    "default $TSORACLE_ADDRESS, else %s. SPEC is tsoracled's --peers value\n"
	    "(ID=RAFT_IP:PORT/CLIENT_IP:PORT,...); FILE a tsoracled config file with peers.\n"
	    "MS bounds each exchange with a member, from the connect to its last answer\n"
	    "(default %d; member add and remove wait at least %d for the leader).\n\n"
	    "TLS (for TCP addresses of a cluster with tls-* set; docs/cluster.md):\n"
	    "  --ca FILE     the cluster's CA certificate (PEM)\n"
	    "  --cert FILE   this client's certificate: OU=client takes timestamps and reads\n"
	    "                status; transfer-leader, advance-to, cluster-version raise and\n"
	    "                member add/remove need OU=admin (scripts/certs.sh: admin.crt)\n"
	    "  --key FILE    its private key (mode 600)\n"
	    "  --crl FILE    revoked certificates (optional)\n"
	    "With --config, the file's tls-ca, tls-cert, tls-key and tls-crl are used unless\n"
	    "these are given (a member's certificate is not an admin's: give --cert/--key).\n\n"
	    "Exit status: 0 done, 1 the command failed (no answer, refused), 2 bad usage\n"
	    "(an unknown command or option, a missing or malformed argument).\n",
	    CTL_DEFAULT_ADDRESS, CTL_DEFAULT_TIMEOUT_MS, CTL_MEMBER_WAIT_MS);
}

static int ctl_fail(ctl_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int ctl_fail(ctl_conn *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	err_vset(c->err, sizeof c->err, fmt, ap);
	va_end(ap);
	return -1;
}

static int ctl_send(ctl_conn *c, const tp_msg *m)
{
	return tp_client_send(&c->cl, m, c->err, sizeof c->err);
}

/* Reads one whole message, by the exchange's deadline. */
static int ctl_recv(ctl_conn *c, tp_msg *m)
{
	return tp_client_recv(&c->cl, m, c->deadline_ms, c->err, sizeof c->err);
}

/* Connects and shakes hands (TLS on a TCP address with ctl_tls), within
 * timeout_ms, which is then the whole exchange's; on failure c->err says
 * why. */
static int ctl_open(ctl_conn *c, const char *address, int timeout_ms)
{
	c->deadline_ms = mono_ms() + (uint64_t)timeout_ms;
	c->err[0] = '\0';
	return tp_client_open(&c->cl, address, ctl_tls, (unsigned)timeout_ms, c->err, sizeof c->err);
}

static void ctl_close(ctl_conn *c)
{
	tp_client_close(&c->cl);
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
	       ", \"grants\": %" PRIu64 ", \"timestamps\": %" PRIu64 ", \"joining\": %s, \"removed\": %s",
	       address, st->node_id, tp_role_str(st->role), (st->flags & TP_FLAG_SERVING) ? "true" : "false",
	       st->term, st->leader_id, st->high_water_ms, st->commit_index, st->applied_index,
	       st->last_issued, st->grants, st->timestamps, (st->flags & TP_FLAG_JOINING) ? "true" : "false",
	       (st->flags & TP_FLAG_REMOVED) ? "true" : "false");
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
	if (st.flags & TP_FLAG_JOINING)
		printf("  membership     joining: in no configuration yet, waits to be added "
		       "(tsoracle-ctl member add on any member)\n");
	else if (st.flags & TP_FLAG_REMOVED)
		printf("  membership     not in the configuration it knows (removed)\n");
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
	uint64_t t0 = mono_ms();
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
		       m.u.transfer_resp.leader_id, c.cl.node_id, mono_ms() - t0);
		rc = 0;
	} else if (m.u.transfer_resp.status == TP_ERR_NOT_LEADER) {
		if (m.u.transfer_resp.leader_id != 0)
			fprintf(stderr,
				"tsoracle-ctl: node %" PRIu32 " at %s is not the leader; node %" PRIu32
				" is: ask it (its client address is in the peers list)\n",
				c.cl.node_id, address, m.u.transfer_resp.leader_id);
		else
			fprintf(stderr,
				"tsoracle-ctl: node %" PRIu32
				" at %s is not the leader and knows of none yet\n",
				c.cl.node_id, address);
	} else if (m.u.transfer_resp.status == TP_ERR_BAD_REQUEST && target != 0 && target == c.cl.node_id) {
		/* lead_transfer_refusal: "the target is this node". */
		fprintf(stderr,
			"tsoracle-ctl: transfer-leader: node %" PRIu32
			" is already the leader: there is nothing to hand over\n",
			target);
	} else if (m.u.transfer_resp.status == TP_ERR_BAD_REQUEST) {
		fprintf(stderr,
			"tsoracle-ctl: transfer-leader: %s: the target must be a voting member other "
			"than the leader, node %" PRIu32 "%s\n",
			tp_status_str(m.u.transfer_resp.status), c.cl.node_id,
			target == 0 ? " (a single-member cluster has none)" : "");
	} else if (m.u.transfer_resp.status == TP_ERR_REFUSED) {
		/* The leader's clock check (lead_transfer): it does not know the
		 * target's clock to be good, which is either not measured yet
		 * (a member that just started or rejoined) or too far off. */
		fprintf(stderr,
			"tsoracle-ctl: transfer-leader: refused: node %" PRIu32
			", the leader, hands over only to a member whose wall clock it measured, within "
			"the last %u ms, to be within max-clock-offset of a majority of the voters' "
			"clocks, and node %" PRIu32
			"'s was not (not measured yet, as just after it started or rejoined, or too far "
			"off): ask again in a second; if it is still refused, `tsoracle-ctl status` at "
			"node %" PRIu32 " shows its clock offset: fix that host's clock (NTP), or raise "
			"max-clock-offset\n",
			c.cl.node_id, (unsigned)LEAD_CLOCK_SAMPLE_TTL_MS, target, target);
	} else if (m.u.transfer_resp.leader_id == 0) {
		fprintf(stderr, "tsoracle-ctl: transfer-leader: %s; no leader is known yet\n",
			tp_status_str(m.u.transfer_resp.status));
	} else {
		fprintf(stderr, "tsoracle-ctl: transfer-leader: %s; the leader is node %" PRIu32 "%s\n",
			tp_status_str(m.u.transfer_resp.status), m.u.transfer_resp.leader_id,
			m.u.transfer_resp.leader_id == c.cl.node_id ? " still" : "");
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
		return ctl_fail(c, "%s: %s", c->cl.address, m->u.error.text);
	if (m->type != TP_ADMIN_RESP)
		return ctl_fail(c, "unexpected answer from %s", c->cl.address);
	return 0;
}

/* What to say when a member that is not the leader answered. */
static void ctl_not_leader(const ctl_conn *c, const char *command, uint32_t leader_id)
{
	if (leader_id != 0 && leader_id != c->cl.node_id)
		fprintf(stderr,
			"tsoracle-ctl: %s: node %" PRIu32 " at %s is not the leader; node %" PRIu32
			" is: ask it (or give --config FILE to find it)\n",
			command, c->cl.node_id, c->cl.address, leader_id);
	else
		fprintf(stderr,
			"tsoracle-ctl: %s: node %" PRIu32 " at %s is not a serving leader (no leader yet, "
			"or it is still fencing): try again in a second\n",
			command, c->cl.node_id, c->cl.address);
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

/* ---- membership (docs/cluster.md, "Membership") ------------------------- */

/* The replicated configuration as one member sees it. */
typedef struct ctl_member {
	uint32_t id;
	uint8_t role;
	bool leader;
	bool up; /* the leader's view */
	uint64_t match_index;
	char raft[CFG_ADDR_SIZE];
	char client[CFG_ADDR_SIZE];
} ctl_member;

typedef struct ctl_members {
	ctl_member m[CFG_MAX_PEERS];
	unsigned n;
	uint32_t leader_id;   /* as the member that answered knows it */
	uint32_t answered_by; /* that member */
} ctl_members;

/* Member after member of c's node's configuration. 0, or -1 with c->err. */
static int ctl_query_members(ctl_conn *c, ctl_members *out)
{
	unsigned count = 1;

	memset(out, 0, sizeof *out);
	for (unsigned i = 0; i < count; i++) {
		tp_msg m;
		ctl_member *x;

		memset(&m, 0, sizeof m);
		m.type = TP_MEMBER_REQ;
		m.u.member_req.id = i + 1;
		m.u.member_req.op = TP_MEMBER_LIST;
		m.u.member_req.member = i;
		if (ctl_send(c, &m) != 0 || ctl_recv(c, &m) != 0)
			return -1;
		if (m.type == TP_ERROR)
			return ctl_fail(c, "member list: %s", m.u.error.text);
		if (m.type != TP_MEMBER_RESP || m.u.member_resp.status != TP_OK)
			return ctl_fail(c, "member list: %s",
					m.type == TP_MEMBER_RESP ? m.u.member_resp.text
								 : "unexpected answer");
		count = m.u.member_resp.count;
		if (count > CFG_MAX_PEERS)
			return ctl_fail(c, "member list: %u members, more than the %d supported", count,
					CFG_MAX_PEERS);
		out->leader_id = m.u.member_resp.leader_id;
		x = &out->m[out->n++];
		x->id = m.u.member_resp.member;
		x->role = m.u.member_resp.role;
		x->leader = (m.u.member_resp.flags & TP_MEMBER_IS_LEADER) != 0;
		x->up = (m.u.member_resp.flags & TP_MEMBER_IS_UP) != 0;
		x->match_index = m.u.member_resp.match_index;
		if (cfg_member_split(m.u.member_resp.text, x->raft, sizeof x->raft, x->client,
				     sizeof x->client) != 0)
			return ctl_fail(c, "member list: malformed address \"%s\"", m.u.member_resp.text);
		if (count == 0)
			break;
	}
	out->answered_by = c->cl.node_id;
	return 0;
}

/* A configuration entry without a client address (written by an older
 * tsoracled) takes the seeds' for that id. */
static void ctl_fill_clients(ctl_members *ms, const cfg *seeds)
{
	for (unsigned i = 0; i < ms->n; i++)
		for (unsigned k = 0; ms->m[i].client[0] == '\0' && k < seeds->n_peers; k++)
			if (seeds->peers[k].id == ms->m[i].id)
				snprintf(ms->m[i].client, sizeof ms->m[i].client, "%s",
					 seeds->peers[k].client);
}

/* The configuration from the first seed that answers, then, if that one
 * is not the leader, from the leader (whose match indexes mean something).
 * The seeds are the peers of --peers or --config: only one needs to be a
 * member still. 0, or -1 after saying why on stderr. */
static int ctl_discover(const cfg *seeds, int timeout_ms, bool quiet, ctl_members *out)
{
	ctl_conn c;

	for (unsigned i = 0; i < seeds->n_peers; i++) {
		const cfg_peer *p = &seeds->peers[i];

		if (p->client[0] == '\0')
			continue;
		if (ctl_open(&c, p->client, timeout_ms) != 0 || ctl_query_members(&c, out) != 0) {
			if (!quiet)
				fprintf(stderr, "tsoracle-ctl: member %" PRIu64 " at %s: %s\n", p->id,
					p->client, c.err);
			ctl_close(&c);
			continue;
		}
		ctl_close(&c);
		if (out->n == 0)
			continue; /* a member waiting to join knows nothing yet */
		ctl_fill_clients(out, seeds);
		for (unsigned k = 0; k < out->n; k++) {
			ctl_members from_leader;

			if (!out->m[k].leader || out->m[k].id == out->answered_by ||
			    out->m[k].client[0] == '\0')
				continue;
			if (ctl_open(&c, out->m[k].client, timeout_ms) == 0 &&
			    ctl_query_members(&c, &from_leader) == 0 && from_leader.n > 0) {
				*out = from_leader;
				ctl_fill_clients(out, seeds);
			}
			ctl_close(&c);
			break;
		}
		return 0;
	}
	if (!quiet)
		fprintf(stderr,
			"tsoracle-ctl: no member in the peers list answered with the configuration\n");
	return -1;
}

/* The members as a peers list, for the commands that walk it. */
static void ctl_members_to_cfg(const ctl_members *ms, cfg *c)
{
	c->n_peers = 0;
	for (unsigned i = 0; i < ms->n; i++) {
		cfg_peer *p = &c->peers[c->n_peers++];

		p->id = ms->m[i].id;
		snprintf(p->address, sizeof p->address, "%s", ms->m[i].raft);
		snprintf(p->client, sizeof p->client, "%s", ms->m[i].client);
	}
}

/* Whether a member answers a status request at its client address. */
static bool ctl_reachable(const char *client, int timeout_ms)
{
	ctl_conn c;
	tp_status st;
	bool ok =
	    client[0] != '\0' && ctl_open(&c, client, timeout_ms) == 0 && ctl_query_status(&c, &st) == 0;

	if (client[0] != '\0')
		ctl_close(&c);
	return ok;
}

static int ctl_member_list(const cfg *seeds, int timeout_ms, bool json)
{
	ctl_members ms;

	if (ctl_discover(seeds, timeout_ms, false, &ms) != 0)
		return 1;
	if (json)
		printf("{\"leader_id\": %" PRIu32 ", \"members\": [", ms.leader_id);
	else
		printf("%-4s %-22s %-22s %-8s %-9s %-7s %-11s %s\n", "id", "raft", "client", "role",
		       "reachable", "leader", "match index", "leader hears it");
	for (unsigned i = 0; i < ms.n; i++) {
		const ctl_member *x = &ms.m[i];
		bool up = ctl_reachable(x->client, timeout_ms);

		if (json)
			printf("%s{\"id\": %" PRIu32 ", \"role\": \"%s\", \"raft_address\": \"%s\", "
			       "\"client_address\": \"%s\", \"reachable\": %s, \"leader\": %s, "
			       "\"match_index\": %" PRIu64 ", \"leader_hears\": %s}",
			       i ? ", " : "", x->id, tp_member_role_str(x->role), x->raft, x->client,
			       up ? "true" : "false", x->leader ? "true" : "false", x->match_index,
			       x->up ? "true" : "false");
		else
			printf("%-4" PRIu32 " %-22s %-22s %-8s %-9s %-7s %-11" PRIu64 " %s\n", x->id, x->raft,
			       x->client, tp_member_role_str(x->role), up ? "yes" : "no",
			       x->leader ? "yes" : "", x->match_index, x->up ? "yes" : "no");
	}
	if (json)
		printf("]}\n");
	return 0;
}

/* The client address of the leader in ms, or NULL with why. */
static const char *ctl_members_leader(const ctl_members *ms, char *why, size_t whylen)
{
	for (unsigned i = 0; i < ms->n; i++)
		if (ms->m[i].leader && ms->m[i].client[0] != '\0')
			return ms->m[i].client;
	snprintf(why, whylen, "the leader, node %" PRIu32 ", has no client address in the configuration",
		 ms->leader_id);
	return NULL;
}

/* Sends one add or remove to the leader at address and waits for the
 * answer: 0 done, 1 refused or failed (said on stderr), 2 worth another try
 * (that member does not lead, or still fences after an election; why in
 * retry_why). */
static int ctl_member_send(const char *address, int timeout_ms, uint8_t op, uint32_t id, const char *text,
			   bool force, char *retry_why, size_t whylen)
{
	ctl_conn c;
	tp_msg m;
	uint64_t t0 = mono_ms();
	int rc = 1;

	memset(&m, 0, sizeof m);
	m.type = TP_MEMBER_REQ;
	m.u.member_req.id = 1;
	m.u.member_req.op = op;
	m.u.member_req.flags = force ? TP_MEMBER_FORCE : 0;
	m.u.member_req.member = id;
	snprintf(m.u.member_req.text, sizeof m.u.member_req.text, "%s", text);
	m.u.member_req.len = (uint16_t)strlen(m.u.member_req.text);
	if (ctl_open(&c, address, timeout_ms) != 0) {
		snprintf(retry_why, whylen, "%s", c.err);
		ctl_close(&c);
		return 2;
	}
	/* The answer comes when the change has ended: catching up may take
	 * up to the leader's catch-up-timeout. */
	c.deadline_ms = t0 + (uint64_t)(timeout_ms > CTL_MEMBER_WAIT_MS ? timeout_ms : CTL_MEMBER_WAIT_MS);
	if (ctl_send(&c, &m) != 0 || ctl_recv(&c, &m) != 0) {
		fprintf(stderr, "tsoracle-ctl: %s (the change may still be under way: see member list)\n",
			c.err);
	} else if (m.type == TP_ERROR) {
		fprintf(stderr, "tsoracle-ctl: %s\n", m.u.error.text);
	} else if (m.type != TP_MEMBER_RESP) {
		fprintf(stderr, "tsoracle-ctl: unexpected answer from %s\n", address);
	} else if (m.u.member_resp.status == TP_OK) {
		printf("%s (%" PRIu64 " ms)\n", m.u.member_resp.text, mono_ms() - t0);
		rc = 0;
	} else if (m.u.member_resp.status == TP_ERR_NOT_LEADER ||
		   m.u.member_resp.status == TP_ERR_UNAVAILABLE) {
		rc = 2;
		snprintf(retry_why, whylen, "%s", m.u.member_resp.text);
	} else {
		fprintf(stderr, "tsoracle-ctl: member %s %" PRIu32 ": %s: %s\n",
			op == TP_MEMBER_ADD ? "add" : "remove", id, tp_status_str(m.u.member_resp.status),
			m.u.member_resp.text);
	}
	ctl_close(&c);
	return rc;
}

/* How long a change is tried again while no member leads, or the one that
 * leads still fences (after an election, or after the handover of a
 * leader being removed), ms; and the pause between tries. */
#define CTL_MEMBER_RETRY_MS 10000
#define CTL_MEMBER_PAUSE_MS 100

static int ctl_member_change(const cfg *seeds, int timeout_ms, uint8_t op, uint32_t id, const char *text,
			     bool force)
{
	uint64_t deadline = mono_ms() + CTL_MEMBER_RETRY_MS;
	char why[CTL_ERR_SIZE] = "no member answered";

	for (;;) {
		ctl_members ms;
		const char *leader = NULL;
		int rc = 2;

		if (ctl_discover(seeds, timeout_ms, true, &ms) != 0) {
			snprintf(why, sizeof why, "no member in the peers list answered");
		} else if (ms.leader_id == 0) {
			snprintf(why, sizeof why, "no leader is known (is a quorum of voters up?)");
		} else if ((leader = ctl_members_leader(&ms, why, sizeof why)) == NULL) {
			/* why says it */
		} else if (op == TP_MEMBER_REMOVE && ms.leader_id == id) {
			/* The leader cannot remove itself and go on leading:
			 * it hands over first, then the new leader removes it. */
			printf("node %" PRIu32 " leads: handing leadership over first\n", id);
			if (ctl_transfer_leader(leader, timeout_ms, 0) != 0)
				snprintf(why, sizeof why, "node %" PRIu32 " did not hand leadership over",
					 id);
		} else {
			rc = ctl_member_send(leader, timeout_ms, op, id, text, force, why, sizeof why);
		}
		if (rc != 2)
			return rc;
		if (mono_ms() >= deadline)
			break;
		poll(NULL, 0, CTL_MEMBER_PAUSE_MS);
	}
	fprintf(stderr, "tsoracle-ctl: member %s %" PRIu32 ": gave up after %d ms: %s\n",
		op == TP_MEMBER_ADD ? "add" : "remove", id, CTL_MEMBER_RETRY_MS, why);
	return 1;
}

/* "ID=RAFT_IP:PORT/CLIENT_IP:PORT" into *id and the address; -1 with a
 * message on stderr if it is not one. */
static int ctl_parse_member(const char *arg, uint32_t *id, char *address, size_t len)
{
	cfg one;
	char err[CTL_ERR_SIZE];

	cfg_defaults(&one);
	if (cfg_parse_peers(&one, arg, err, sizeof err) != 0 || one.n_peers != 1 ||
	    one.peers[0].client[0] == '\0') {
		fprintf(stderr,
			"tsoracle-ctl: member add: \"%s\" is not ID=RAFT_IP:PORT/CLIENT_IP:PORT%s%s\n", arg,
			one.n_peers == 1 ? "" : ": ", one.n_peers == 1 ? "" : err);
		return -1;
	}
	*id = (uint32_t)one.peers[0].id;
	snprintf(address, len, "%s/%s", one.peers[0].address, one.peers[0].client);
	return 0;
}

static int ctl_member_cmd(const cfg *seeds, bool cluster, int timeout_ms, int argc, char **argv, int i)
{
	const char *sub = i + 1 < argc ? argv[i + 1] : "";

	if (!cluster) {
		fprintf(stderr, "tsoracle-ctl: member needs --config FILE or --peers SPEC (where to find "
				"the members)\n");
		return CTL_EXIT_USAGE;
	}
	if (strcmp(sub, "list") == 0) {
		bool json = i + 2 < argc && strcmp(argv[i + 2], "--json") == 0;

		if (ctl_extra_args(argc, argv, i, json ? 3 : 2) != 0)
			return CTL_EXIT_USAGE;
		return ctl_member_list(seeds, timeout_ms, json);
	}
	if (strcmp(sub, "add") == 0) {
		char address[2 * CFG_ADDR_SIZE];
		uint32_t id;

		if (i + 2 >= argc) {
			fprintf(stderr, "tsoracle-ctl: member add needs ID=RAFT_IP:PORT/CLIENT_IP:PORT\n");
			return CTL_EXIT_USAGE;
		}
		if (ctl_extra_args(argc, argv, i, 3) != 0 ||
		    ctl_parse_member(argv[i + 2], &id, address, sizeof address) != 0)
			return CTL_EXIT_USAGE;
		return ctl_member_change(seeds, timeout_ms, TP_MEMBER_ADD, id, address, false);
	}
	if (strcmp(sub, "remove") == 0) {
		unsigned long id = 0;
		bool force = i + 3 < argc && strcmp(argv[i + 3], "--force") == 0;

		if (i + 2 >= argc) {
			fprintf(stderr, "tsoracle-ctl: member remove needs ID\n");
			return CTL_EXIT_USAGE;
		}
		if (ctl_optional_number(argc, argv, i + 1, "ID", UINT32_MAX, &id) != 0 ||
		    ctl_extra_args(argc, argv, i, force ? 4 : 3) != 0)
			return CTL_EXIT_USAGE;
		return ctl_member_change(seeds, timeout_ms, TP_MEMBER_REMOVE, (uint32_t)id, "", force);
	}
	fprintf(stderr, "tsoracle-ctl: member: expected list, add or remove, not \"%s\"\n", sub);
	return CTL_EXIT_USAGE;
}

/* The peers of --peers or --config are seeds: the members are those of
 * the replicated configuration, as the members say (a member added since
 * the file was written is there too). If none answers, the seeds stay. */
static void ctl_refresh_members(cfg *members, int timeout_ms)
{
	ctl_members ms;

	/* Quiet: the command itself says what it finds unreachable. */
	if (ctl_discover(members, timeout_ms, true, &ms) == 0 && ms.n > 0)
		ctl_members_to_cfg(&ms, members);
}

/* The options before the command (getopt_long, stopping at the command);
 * values past any character. --ca, --cert, --key and --crl in the order
 * of main's tls_opt. */
enum ctl_opt {
	CTL_OPT_HELP = 256,
	CTL_OPT_ADDRESS,
	CTL_OPT_TIMEOUT,
	CTL_OPT_PEERS,
	CTL_OPT_CONFIG,
	CTL_OPT_CA,
	CTL_OPT_CERT,
	CTL_OPT_KEY,
	CTL_OPT_CRL,
};

static const struct option ctl_options[] = {
    {"help", no_argument, NULL, CTL_OPT_HELP},
    {"address", required_argument, NULL, CTL_OPT_ADDRESS},
    {"timeout", required_argument, NULL, CTL_OPT_TIMEOUT},
    {"peers", required_argument, NULL, CTL_OPT_PEERS},
    {"config", required_argument, NULL, CTL_OPT_CONFIG},
    {"ca", required_argument, NULL, CTL_OPT_CA},
    {"cert", required_argument, NULL, CTL_OPT_CERT},
    {"key", required_argument, NULL, CTL_OPT_KEY},
    {"crl", required_argument, NULL, CTL_OPT_CRL},
    {NULL, 0, NULL, 0},
};

int main(int argc, char **argv)
{
	const char *address = getenv("TSORACLE_ADDRESS") ? getenv("TSORACLE_ADDRESS") : CTL_DEFAULT_ADDRESS;
	int timeout_ms = CTL_DEFAULT_TIMEOUT_MS;
	char err[CTL_ERR_SIZE];
	cfg members;
	bool cluster = false;
	int i;
	/* --ca, --cert, --key, --crl; NULL: the --config file's, if any. */
	const char *tls_opt[4] = {NULL, NULL, NULL, NULL};
	int opt;

	/* A server that closes first makes a write fail with EPIPE, said in
	 * words (common/dial.c), instead of a silent death by the signal. */
	signal(SIGPIPE, SIG_IGN);
	cfg_defaults(&members);
	opterr = 0; /* the messages below name the option as it was written */
	while ((opt = getopt_long(argc, argv, "+:", ctl_options, NULL)) != -1) {
		int rc;

		switch (opt) {
		case CTL_OPT_HELP:
			ctl_usage(stdout);
			return 0;
		case CTL_OPT_ADDRESS:
			address = optarg;
			break;
		case CTL_OPT_CA:
		case CTL_OPT_CERT:
		case CTL_OPT_KEY:
		case CTL_OPT_CRL:
			tls_opt[opt - CTL_OPT_CA] = optarg;
			break;
		case CTL_OPT_TIMEOUT:
			timeout_ms = atoi(optarg);
			if (timeout_ms <= 0) {
				fprintf(stderr,
					"tsoracle-ctl: --timeout \"%s\" must be a positive number of ms\n",
					optarg);
				return CTL_EXIT_USAGE;
			}
			break;
		case CTL_OPT_PEERS:
		case CTL_OPT_CONFIG:
			rc = opt == CTL_OPT_PEERS ? cfg_parse_peers(&members, optarg, err, sizeof err)
						  : cfg_load_file(&members, optarg, err, sizeof err);
			if (rc != 0) {
				fprintf(stderr, "tsoracle-ctl: %s\n", err);
				return CTL_EXIT_USAGE;
			}
			if (members.n_peers == 0) {
				fprintf(stderr, "tsoracle-ctl: no peers in %s\n", optarg);
				return CTL_EXIT_USAGE;
			}
			cluster = true;
			break;
		case ':':
			fprintf(stderr, "tsoracle-ctl: option \"%s\" needs a value\n", argv[optind - 1]);
			ctl_usage(stderr);
			return CTL_EXIT_USAGE;
		default:
			fprintf(stderr, "tsoracle-ctl: unknown option \"%s\"\n", argv[optind - 1]);
			ctl_usage(stderr);
			return CTL_EXIT_USAGE;
		}
	}
	i = optind;
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

		if (cluster)
			ctl_refresh_members(&members, timeout_ms);
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
		if (cluster)
			ctl_refresh_members(&members, timeout_ms);
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
	if (strcmp(argv[i], "member") == 0)
		return ctl_member_cmd(&members, cluster, timeout_ms, argc, argv, i);
	fprintf(stderr, "tsoracle-ctl: unknown command \"%s\"\n", argv[i]);
	ctl_usage(stderr);
	return CTL_EXIT_USAGE;
}
