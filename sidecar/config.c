/* config.c: tsoracled's configuration, from flags and an optional file, checked as a whole. */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "addr.h"
#include "err.h"
#include "log.h"

#define CFG_LINE_SIZE       1024
#define CFG_FILE_MAX        (1024 * 1024) /* bytes: a config file is a few lines */
#define CFG_MS_MAX          3600000u      /* any timing above an hour is a typo */
#define CFG_COUNT_MAX       100000000u
/* max-connections: a million open files is more than any host allows. */
#define CFG_CONNECTIONS_MAX 1000000u
/* client-output-max, bytes: at least a few of the largest frames; at most
 * 64 MiB, far beyond any pipeline's responses. */
#define CFG_OUTPUT_MIN      4096u
#define CFG_OUTPUT_MAX      (64u * 1024 * 1024)
/* max-start-gap, ms: a hundred years is more than any downtime. */
#define CFG_START_GAP_MAX   (UINT64_C(100) * 365 * 24 * 3600 * 1000)

enum cfg_kind { CFG_UINT, CFG_U64, CFG_STRING, CFG_LEVEL, CFG_PEERS, CFG_FILE, CFG_FLAG, CFG_BOOL };

typedef struct cfg_option {
	const char *name;
	enum cfg_kind kind;
	size_t offset; /* into struct cfg */
	size_t size;   /* strings: buffer size */
	uint64_t min, max;
	const char *arg;
	const char *help;
} cfg_option;

#define OPT_UINT(n, field, lo, hi, a, h)                                                                     \
	{                                                                                                    \
		n, CFG_UINT, offsetof(cfg, field), 0, lo, hi, a, h                                           \
	}
#define OPT_U64(n, field, lo, hi, a, h)                                                                      \
	{                                                                                                    \
		n, CFG_U64, offsetof(cfg, field), 0, lo, hi, a, h                                            \
	}
#define OPT_STR(n, field, a, h)                                                                              \
	{                                                                                                    \
		n, CFG_STRING, offsetof(cfg, field), sizeof(((cfg *)0)->field), 0, 0, a, h                   \
	}

static const cfg_option cfg_options[] = {
    {"config", CFG_FILE, 0, 0, 0, 0, "FILE", "read settings (name = value lines) from FILE; flags win"},
    OPT_U64("node-id", node_id, 1, CFG_NODE_ID_MAX, "N", "this node's id, >= 1 (default 1)"),
    OPT_STR("data-dir", data_dir, "DIR", "Raft log and snapshots (required)"),
    OPT_STR("raft-address", raft_address, "IP:PORT",
	    "Raft peer address of this node (default " CFG_DEFAULT_RAFT_ADDRESS ")"),
    {"peers", CFG_PEERS, 0, 0, 0, 0, "ID=IP:PORT[/IP:PORT],...",
     "initial voters, this node included (default: this node alone);\n"
     "                                     in a cluster, ID=RAFT_IP:PORT/CLIENT_IP:PORT, the client address\n"
     "                                     being that member's client-tcp, where followers forward"},
    {"join", CFG_BOOL, offsetof(cfg, join), 0, 0, 0, "",
     "start empty and wait to be added (tsoracle-ctl member add); never\n"
     "                                     bootstrap from peers (a file says join = true)"},
    OPT_UINT("catch-up-timeout", catch_up_timeout_ms, 1, CFG_MS_MAX, "MS",
	     "how long the leader waits for a member being added to catch up\n"
	     "                                     before it removes it again (default 30000)"),
    OPT_STR("client-socket", client_socket, "PATH",
	    "unix socket for clients (default " CFG_DEFAULT_CLIENT_SOCKET "; \"\" for none)"),
    OPT_STR("client-socket-allow", client_socket_allow, "USER,@GROUP,...",
	    "who else may use client-socket, besides its owner and root\n"
	    "                                     (users, @groups, or numeric ids; default: no one)"),
    OPT_STR("client-tcp", client_tcp, "IP:PORT",
	    "TCP address for clients (default: none); with tls-*, TLS 1.3 and a\n"
	    "                                     client certificate whose OU (client, member, admin) is its "
	    "role"),
    OPT_STR(
	"tls-ca", tls_ca, "FILE",
	"the cluster's CA certificate(s) (PEM): members and clients must\n"
	"                                     present a certificate it signed; TLS is required unless every\n"
	"                                     TCP listener and member is on loopback; reread on SIGHUP"),
    OPT_STR("tls-cert", tls_cert, "FILE",
	    "this member's certificate (PEM, OU=member, CN=member-<node-id>), for\n"
	    "                                     Raft, client-tcp and forwarding to the leader"),
    OPT_STR("tls-key", tls_key, "FILE", "its private key (PEM, mode 600)"),
    OPT_STR("tls-crl", tls_crl, "FILE", "revoked certificates (PEM CRL of the CA; default: none)"),
    OPT_STR("pid-file", pid_file, "PATH", "pid file, locked while running (default DATA-DIR/tsoracled.pid)"),
    {"log-level", CFG_LEVEL, offsetof(cfg, log_level), 0, 0, 0, "LEVEL",
     "debug, info, warn or error (default info)"},
    OPT_UINT("election-timeout", election_timeout_ms, 10, CFG_MS_MAX, "MS",
	     "Raft election timeout (default 300)"),
    OPT_UINT("heartbeat", heartbeat_ms, 1, CFG_MS_MAX, "MS", "Raft heartbeat interval (default 30)"),
    OPT_U64("lease", alloc.lease_ms, 3, CFG_MS_MAX, "MS",
	    "leader lease, < election timeout, equal on all members below cluster version 3 (default 200)"),
    OPT_UINT("drift-permille", alloc.drift_permille, 1, 1000, "N",
	     "clock rate margin of the lease, in 1/1000 (default 100)"),
    OPT_U64("window-ahead", alloc.window_ahead_ms, 1, CFG_MS_MAX, "MS",
	    "how far ahead of now an extension reaches (default 3000)"),
    OPT_U64("extend-margin", alloc.extend_margin_ms, 1, CFG_MS_MAX, "MS",
	    "extend when H is less than this ahead of now (default 2000)"),
    OPT_U64("max-ahead", alloc.max_ahead_ms, CFG_MAX_AHEAD_MIN_MS, CFG_MS_MAX, "MS",
	    "no grant or mark beyond the clock + this (default 5000)"),
    OPT_UINT("max-connections", max_connections, 1, CFG_CONNECTIONS_MAX, "N",
	     "client connections at most; more are refused with an error (default 4096)"),
    OPT_UINT("hello-timeout", hello_timeout_ms, 1, CFG_MS_MAX, "MS",
	     "a client that has not sent its hello by then is closed (default 3000)"),
    OPT_UINT("idle-timeout", idle_timeout_ms, 0, CFG_MS_MAX, "MS",
	     "a client with nothing in flight for this long is closed; 0: never (default 0)"),
    OPT_UINT("client-output-max", client_output_max, CFG_OUTPUT_MIN, CFG_OUTPUT_MAX, "BYTES",
	     "unsent responses a client may hold; a client that does not read\n"
	     "                                     them is dropped at this (default 262144)"),
    OPT_UINT("request-timeout", request_timeout_ms, 1, CFG_MS_MAX, "MS",
	     "how long a request waits for a leader (default 2000)"),
    OPT_UINT("snapshot-threshold", snapshot_threshold, 2, CFG_COUNT_MAX, "N",
	     "log entries between snapshots (default 1024)"),
    OPT_UINT("snapshot-trailing", snapshot_trailing, 1, CFG_COUNT_MAX, "N",
	     "log entries kept after a snapshot (default 128)"),
    OPT_STR("clock-offset-file", clock_offset_file, "PATH",
	    "tests only: a file holding ms added to the wall clock"),
    OPT_U64(
	"max-clock-offset", max_clock_offset_ms, 0, CFG_MS_MAX, "MS",
	"a member whose wall clock is further than this from a majority of\n"
	"                                     the members' clocks does not lead; 0: no check (default 500)"),
    OPT_U64(
	"max-start-gap", max_start_gap_ms, 0, CFG_START_GAP_MAX, "MS",
	"a sole member whose clock is further than this past its stored\n"
	"                                     high-water mark does not serve (default 604800000, 7 days)"),
    OPT_UINT("trust-clock", trust_clock, 0, 1, "0|1",
	     "1: serve although max-start-gap is passed (the operator's word)"),
    OPT_U64("start-floor-margin", start_floor_margin_ms, 0, CFG_MS_MAX, "MS",
	    "a leader serves only above its start + max-ahead + this: how far\n"
	    "                                     another member's clock may have been ahead of this one's\n"
	    "                                     (default 500; docs/allocator.md, I7)"),
    OPT_U64("max-reset-gap", max_reset_gap_ms, 1, CFG_RESET_GAP_MAX_MS, "MS",
	    "tsoracle-ctl advance-to refuses a time more than this ahead of\n"
	    "                                     the leader's clock (default 86400000, 24 h)"),
    {"force-new-cluster", CFG_FLAG, offsetof(cfg, force_new_cluster), 0, 0, 0, "",
     "command line only, once, on the one surviving member after a lost\n"
     "                                     quorum: rewrite the configuration to this member alone,\n"
     "                                     keeping its log (docs/cluster.md, \"Disaster recovery\")"},
    OPT_STR("metrics-address", metrics_address, "IP:PORT",
	    "serve Prometheus metrics (GET /metrics, plain HTTP) there (default:\n"
	    "                                     none); loopback only, unless metrics-allow-plaintext"),
    {"metrics-allow-plaintext", CFG_BOOL, offsetof(cfg, metrics_allow_plaintext), 0, 0, 0, "true|false",
     "true: allow a metrics-address off loopback, unencrypted and\n"
     "                                     unauthenticated (default false)"},
};
#define CFG_N_OPTIONS (sizeof cfg_options / sizeof cfg_options[0])

void cfg_defaults(cfg *c)
{
	memset(c, 0, sizeof *c);
	c->node_id = 1;
	snprintf(c->raft_address, sizeof c->raft_address, "%s", CFG_DEFAULT_RAFT_ADDRESS);
	c->catch_up_timeout_ms = CFG_DEFAULT_CATCH_UP_TIMEOUT_MS;
	snprintf(c->client_socket, sizeof c->client_socket, "%s", CFG_DEFAULT_CLIENT_SOCKET);
	c->log_level = LOG_INFO;
	c->election_timeout_ms = CFG_DEFAULT_ELECTION_TIMEOUT_MS;
	c->heartbeat_ms = CFG_DEFAULT_HEARTBEAT_MS;
	c->request_timeout_ms = CFG_DEFAULT_REQUEST_TIMEOUT_MS;
	c->max_connections = CFG_DEFAULT_MAX_CONNECTIONS;
	c->hello_timeout_ms = CFG_DEFAULT_HELLO_TIMEOUT_MS;
	c->idle_timeout_ms = CFG_DEFAULT_IDLE_TIMEOUT_MS;
	c->client_output_max = CFG_DEFAULT_CLIENT_OUTPUT_MAX;
	c->snapshot_threshold = CFG_DEFAULT_SNAPSHOT_THRESHOLD;
	c->snapshot_trailing = CFG_DEFAULT_SNAPSHOT_TRAILING;
	c->max_reset_gap_ms = CFG_DEFAULT_MAX_RESET_GAP_MS;
	c->start_floor_margin_ms = CFG_DEFAULT_START_FLOOR_MARGIN_MS;
	ta_config_default(&c->alloc);
	c->max_clock_offset_ms = LEAD_CLOCK_DEFAULT_MAX_OFFSET_MS;
	c->max_start_gap_ms = LEAD_CLOCK_DEFAULT_MAX_START_GAP_MS;
}

static const cfg_option *cfg_find(const char *name)
{
	for (size_t i = 0; i < CFG_N_OPTIONS; i++)
		if (strcmp(cfg_options[i].name, name) == 0)
			return &cfg_options[i];
	return NULL;
}

/* "IP:PORT" or "[IPv6]:PORT" (common/addr.h, TP_ADDR_IP_PORT): the Raft
 * transport needs a literal IP; what names the setting in the message. */
static int cfg_check_ip_port(const char *what, const char *text, char *err, size_t errlen)
{
	tp_addr a;
	char why[CFG_ERR_SIZE];

	if (tp_addr_parse(text, TP_ADDR_IP_PORT, &a, why, sizeof why) != 0)
		return err_set(err, errlen, "%s \"%s\": %s", what, text, why);
	return 0;
}

int cfg_parse_peers(cfg *c, const char *text, char *err, size_t errlen)
{
	const char *p = text;

	c->n_peers = 0;
	while (*p != '\0') {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		char item[CFG_ADDR_SIZE + 32];
		char *eq, *end, *slash;
		unsigned long long id;
		cfg_peer *peer;

		if (len == 0 || len >= sizeof item)
			return err_set(err, errlen, "peers: bad entry in \"%s\" (expected ID=IP:PORT,...)",
				       text);
		memcpy(item, p, len);
		item[len] = '\0';
		eq = strchr(item, '=');
		if (eq == NULL)
			return err_set(err, errlen, "peers: \"%s\" is not of the form ID=IP:PORT", item);
		*eq = '\0';
		errno = 0;
		id = strtoull(item, &end, 10);
		if (errno != 0 || *end != '\0' || item[0] == '\0' || id == 0 || id > CFG_NODE_ID_MAX)
			return err_set(err, errlen, "peers: id \"%s\" must be a number from 1 to %" PRIu64,
				       item, (uint64_t)CFG_NODE_ID_MAX);
		slash = strchr(eq + 1, '/');
		if (slash != NULL) {
			*slash = '\0';
			if (cfg_check_ip_port("peers: client address", slash + 1, err, errlen) != 0)
				return -1;
		}
		if (cfg_check_ip_port("peers: address", eq + 1, err, errlen) != 0)
			return -1;
		if (c->n_peers == CFG_MAX_PEERS)
			return err_set(err, errlen, "peers: at most %d members are supported", CFG_MAX_PEERS);
		for (unsigned i = 0; i < c->n_peers; i++) {
			if (c->peers[i].id == id)
				return err_set(err, errlen, "peers: id %llu appears twice", id);
			if (strcmp(c->peers[i].address, eq + 1) == 0)
				return err_set(err, errlen, "peers: address %s appears twice", eq + 1);
		}
		peer = &c->peers[c->n_peers++];
		peer->id = id;
		snprintf(peer->address, sizeof peer->address, "%s", eq + 1);
		snprintf(peer->client, sizeof peer->client, "%s", slash ? slash + 1 : "");
		p += len;
		if (*p == ',')
			p++;
	}
	return 0;
}

int cfg_set(cfg *c, const char *name, const char *value, char *err, size_t errlen)
{
	const cfg_option *o = cfg_find(name);
	char *field;
	unsigned long long v;
	char *end;
	int level;

	if (o == NULL)
		return err_set(err, errlen, "unknown setting \"%s\" (see --help)", name);
	field = (char *)c + o->offset;
	switch (o->kind) {
	case CFG_UINT:
	case CFG_U64:
		errno = 0;
		v = strtoull(value, &end, 10);
		/* Digits only: strtoull would also take leading blanks, a sign
		 * (even "-1", wrapped) and nothing at all. */
		if (errno != 0 || *end != '\0' || !isdigit((unsigned char)value[0]) || v < o->min ||
		    v > o->max)
			return err_set(err, errlen, "%s: \"%s\" is not a number from %" PRIu64 " to %" PRIu64,
				       name, value, o->min, o->max);
		if (o->kind == CFG_UINT)
			*(unsigned *)field = (unsigned)v;
		else
			*(uint64_t *)field = (uint64_t)v;
		return 0;
	case CFG_STRING:
		if (strlen(value) >= o->size)
			return err_set(err, errlen, "%s: value is longer than %zu bytes", name, o->size - 1);
		snprintf(field, o->size, "%s", value);
		return 0;
	case CFG_LEVEL:
		level = log_parse_level(value);
		if (level < 0)
			return err_set(err, errlen, "%s: \"%s\" is not one of debug, info, warn, error", name,
				       value);
		*(int *)field = level;
		return 0;
	case CFG_PEERS:
		return cfg_parse_peers(c, value, err, errlen);
	case CFG_FILE:
		return cfg_load_file(c, value, err, errlen);
	case CFG_FLAG:
		/* A one-time action, not a setting: left in a file it would
		 * act again at every restart (cfg_args_pass sets it from the
		 * command line). */
		return err_set(err, errlen,
			       "%s is a command-line flag for one start, not a setting for a file", name);
	case CFG_BOOL:
		if (strcmp(value, "true") == 0 || strcmp(value, "1") == 0)
			*(bool *)field = true;
		else if (strcmp(value, "false") == 0 || strcmp(value, "0") == 0)
			*(bool *)field = false;
		else
			return err_set(err, errlen, "%s: \"%s\" is not true or false (or 1 or 0)", name,
				       value);
		return 0;
	}
	return err_set(err, errlen, "%s: unhandled setting", name);
}

static char *cfg_trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

/* One line of a config file (comment, blank, or "name = value"), modified
 * in place; where names the file and line in messages. */
static int cfg_load_line(cfg *c, char *line, const char *where, char *err, size_t errlen)
{
	char msg[CFG_ERR_SIZE];
	char *hash, *eq, *name, *value;

	hash = strchr(line, '#');
	if (hash != NULL)
		*hash = '\0';
	name = cfg_trim(line);
	if (*name == '\0')
		return 0;
	eq = strchr(name, '=');
	if (eq == NULL)
		return err_set(err, errlen, "%s: expected \"name = value\"", where);
	*eq = '\0';
	name = cfg_trim(name);
	value = cfg_trim(eq + 1);
	/* Quotes are optional: client-socket = "" means none. */
	if (value[0] == '"' && strlen(value) >= 2 && value[strlen(value) - 1] == '"') {
		value[strlen(value) - 1] = '\0';
		value++;
	}
	if (strcmp(name, "config") == 0)
		return err_set(err, errlen, "%s: a config file cannot include another", where);
	if (cfg_set(c, name, value, msg, sizeof msg) != 0)
		return err_set(err, errlen, "%s: %s", where, msg);
	return 0;
}

int cfg_load_text(cfg *c, const char *path, const char *text, size_t len, char *err, size_t errlen)
{
	char line[CFG_LINE_SIZE];
	char where[CFG_PATH_SIZE + 16];
	unsigned lineno = 0;
	size_t pos = 0;

	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t n = nl != NULL ? (size_t)(nl - (text + pos)) : len - pos;

		lineno++;
		snprintf(where, sizeof where, "%s:%u", path, lineno);
		if (n >= sizeof line)
			return err_set(err, errlen, "%s: line too long (at most %d bytes)", where,
				       CFG_LINE_SIZE - 1);
		if (memchr(text + pos, '\0', n) != NULL)
			return err_set(err, errlen, "%s: a NUL byte (not a text file?)", where);
		memcpy(line, text + pos, n);
		line[n] = '\0';
		if (cfg_load_line(c, line, where, err, errlen) != 0)
			return -1;
		pos += n + (nl != NULL);
	}
	return 0;
}

int cfg_load_file(cfg *c, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	char *text;
	size_t len;
	int rc;

	if (f == NULL)
		return err_set(err, errlen, "could not open config file \"%s\": %s", path, strerror(errno));
	text = malloc(CFG_FILE_MAX + 1);
	if (text == NULL) {
		fclose(f);
		return err_set(err, errlen, "out of memory reading config file \"%s\"", path);
	}
	len = fread(text, 1, CFG_FILE_MAX + 1, f);
	if (ferror(f))
		rc = err_set(err, errlen, "could not read config file \"%s\": %s", path, strerror(errno));
	else if (len > CFG_FILE_MAX)
		rc = err_set(err, errlen, "config file \"%s\" is larger than %d bytes", path, CFG_FILE_MAX);
	else
		rc = cfg_load_text(c, path, text, len, err, errlen);
	free(text);
	fclose(f);
	return rc;
}

bool cfg_has_tls(const cfg *c)
{
	return c->tls_ca[0] != '\0' && c->tls_cert[0] != '\0' && c->tls_key[0] != '\0';
}

/* TLS settings come together, and are required as soon as anything this
 * node listens on or talks to over TCP is off loopback (docs/cluster.md):
 * plaintext there would let anyone on the network speak Raft. */
static int cfg_check_tls(const cfg *c, char *err, size_t errlen)
{
	const char *missing = c->tls_ca[0] == '\0'     ? "tls-ca"
			      : c->tls_cert[0] == '\0' ? "tls-cert"
						       : "tls-key";
	bool any =
	    c->tls_ca[0] != '\0' || c->tls_cert[0] != '\0' || c->tls_key[0] != '\0' || c->tls_crl[0] != '\0';

	if (any && !cfg_has_tls(c))
		return err_set(
		    err, errlen,
		    "%s is missing: tls-ca, tls-cert and tls-key go together (tls-crl is optional; "
		    "scripts/certs.sh makes them)",
		    missing);
	if (cfg_has_tls(c))
		return 0;
	for (unsigned i = 0; i < c->n_peers && c->n_peers > 1; i++)
		if (!cfg_is_loopback(c->peers[i].address))
			return err_set(
			    err, errlen,
			    "member %" PRIu64 "'s Raft address %s is not loopback: set tls-ca, tls-cert "
			    "and tls-key (Raft between machines runs only over TLS; scripts/certs.sh "
			    "makes a CA and member certificates)",
			    c->peers[i].id, c->peers[i].address);
	if (c->client_tcp[0] != '\0' && !cfg_is_loopback(c->client_tcp))
		return err_set(
		    err, errlen,
		    "client-tcp %s is not loopback: set tls-ca, tls-cert and tls-key (scripts/certs.sh "
		    "makes them)",
		    c->client_tcp);
	return 0;
}

/* The metrics endpoint is plain HTTP (libmicrohttpd's TLS is GnuTLS, not
 * the OpenSSL the rest uses): on loopback only, unless the operator says
 * in so many words that the network may read it (docs/operations.md). */
static int cfg_check_metrics(const cfg *c, char *err, size_t errlen)
{
	if (c->metrics_address[0] == '\0')
		return 0;
	if (cfg_check_ip_port("metrics-address", c->metrics_address, err, errlen) != 0)
		return -1;
	if (!cfg_is_loopback(c->metrics_address) && !c->metrics_allow_plaintext)
		return err_set(err, errlen,
			       "metrics-address %s is not loopback: the metrics endpoint is plain HTTP "
			       "without authentication; set metrics-allow-plaintext = true to serve it "
			       "there anyway, or use a loopback address (docs/operations.md)",
			       c->metrics_address);
	return 0;
}

/* The checks that do not depend on the membership settings: timings, the
 * allocator's rules, the pid file. */
static int cfg_check_rest(cfg *c, char *err, size_t errlen)
{
	char msg[CFG_ERR_SIZE];

	if (c->heartbeat_ms * 2 > c->election_timeout_ms)
		return err_set(err, errlen,
			       "heartbeat (%u ms) must be at most half the election timeout (%u ms)",
			       c->heartbeat_ms, c->election_timeout_ms);
	/* docs/allocator.md (the lease): the lease must run out before followers time out
	 * and elect a new leader, so a healthy handover is not delayed. */
	if (c->alloc.lease_ms >= c->election_timeout_ms)
		return err_set(err, errlen,
			       "lease (%" PRIu64 " ms) must be shorter than the election timeout (%u ms)",
			       c->alloc.lease_ms, c->election_timeout_ms);
	if (c->snapshot_trailing >= c->snapshot_threshold)
		return err_set(err, errlen, "snapshot-trailing (%u) must be below snapshot-threshold (%u)",
			       c->snapshot_trailing, c->snapshot_threshold);
	/* The allocator's own rules (alloc.c), said with the settings' names. */
	if (c->alloc.extend_margin_ms >= c->alloc.window_ahead_ms)
		return err_set(err, errlen,
			       "extend-margin (%" PRIu64 " ms) must be below window-ahead (%" PRIu64 " ms)",
			       c->alloc.extend_margin_ms, c->alloc.window_ahead_ms);
	if (c->alloc.window_ahead_ms > c->alloc.max_ahead_ms)
		return err_set(err, errlen,
			       "window-ahead (%" PRIu64 " ms) must be at most max-ahead (%" PRIu64 " ms)",
			       c->alloc.window_ahead_ms, c->alloc.max_ahead_ms);
	if (ta_config_check(&c->alloc, msg, sizeof msg) != 0)
		return err_set(err, errlen, "%s", msg);
	if (c->pid_file[0] == '\0') {
		if ((size_t)snprintf(c->pid_file, sizeof c->pid_file, "%s/%s", c->data_dir,
				     CFG_PID_FILE_NAME) >= sizeof c->pid_file)
			return err_set(
			    err, errlen,
			    "data-dir is too long (%zu bytes): DATA-DIR/tsoracled.pid must fit in %d; "
			    "use a shorter path or set pid-file",
			    strlen(c->data_dir), CFG_PATH_SIZE - 1);
	}
	return 0;
}

int cfg_check(cfg *c, char *err, size_t errlen)
{
	bool self_found = false;

	if (c->data_dir[0] == '\0')
		return err_set(err, errlen, "--data-dir is required");
	if (cfg_check_ip_port("raft-address", c->raft_address, err, errlen) != 0)
		return -1;
	if (c->client_socket[0] != '\0') {
		if (c->client_socket[0] != '/')
			return err_set(err, errlen, "client-socket \"%s\" must be an absolute path",
				       c->client_socket);
		if (strlen(c->client_socket) >= sizeof(((struct sockaddr_un *)0)->sun_path))
			return err_set(
			    err, errlen,
			    "client-socket \"%s\" is longer than a unix socket path may be (%zu bytes)",
			    c->client_socket, sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
	}
	if (c->join) {
		/* Nothing to bootstrap: the leader that adds this member gives
		 * it the configuration, with every member's addresses; peers,
		 * if set, only tells tsoracle-ctl where to look. */
		if (c->client_tcp[0] == '\0')
			return err_set(err, errlen,
				       "join: set client-tcp (the members forward to the leader at its "
				       "client address; give the same in tsoracle-ctl member add "
				       "ID=RAFT_IP:PORT/CLIENT_IP:PORT)");
		if (cfg_check_ip_port("client-tcp", c->client_tcp, err, errlen) != 0)
			return -1;
		if (!cfg_has_tls(c) && !cfg_is_loopback(c->raft_address))
			return err_set(err, errlen,
				       "raft-address %s is not loopback: set tls-ca, tls-cert and tls-key "
				       "(Raft between machines runs only over TLS)",
				       c->raft_address);
		if (cfg_check_tls(c, err, errlen) != 0 || cfg_check_metrics(c, err, errlen) != 0)
			return -1;
		return cfg_check_rest(c, err, errlen);
	}
	if (c->n_peers == 0) {
		c->n_peers = 1;
		c->peers[0].id = c->node_id;
		snprintf(c->peers[0].address, sizeof c->peers[0].address, "%s", c->raft_address);
	}
	for (unsigned i = 0; i < c->n_peers; i++) {
		cfg_peer *p = &c->peers[i];

		/* Followers forward their clients' requests to the leader's
		 * client address: in a cluster every member needs one. */
		if (c->n_peers > 1 && p->client[0] == '\0')
			return err_set(
			    err, errlen,
			    "peers: member %" PRIu64 " has no client address; in a cluster write "
			    "ID=RAFT_IP:PORT/CLIENT_IP:PORT (followers forward to the leader there)",
			    p->id);
		if (p->id != c->node_id)
			continue;
		self_found = true;
		if (strcmp(p->address, c->raft_address) != 0)
			return err_set(err, errlen,
				       "peers lists node %" PRIu64 " at %s, but raft-address is %s",
				       c->node_id, p->address, c->raft_address);
		if (p->client[0] != '\0' && c->client_tcp[0] == '\0')
			snprintf(c->client_tcp, sizeof c->client_tcp, "%s", p->client);
		else if (p->client[0] != '\0' && strcmp(p->client, c->client_tcp) != 0)
			return err_set(err, errlen,
				       "peers lists node %" PRIu64
				       "'s client address as %s, but client-tcp is %s",
				       c->node_id, p->client, c->client_tcp);
	}
	if (!self_found)
		return err_set(err, errlen, "peers does not include this node (node-id %" PRIu64 ")",
			       c->node_id);
	if (c->client_tcp[0] != '\0' && cfg_check_ip_port("client-tcp", c->client_tcp, err, errlen) != 0)
		return -1;
	if (cfg_check_tls(c, err, errlen) != 0)
		return -1;
	if (c->client_socket[0] == '\0' && c->client_tcp[0] == '\0')
		return err_set(err, errlen, "no client listener: set client-socket or client-tcp");
	if (cfg_check_metrics(c, err, errlen) != 0)
		return -1;

	return cfg_check_rest(c, err, errlen);
}

/* getopt_long's table, made from cfg_options once: each option's val is
 * its index there plus CFG_OPT_BASE (past any character); --help and
 * --version follow. */
#define CFG_OPT_BASE    256
#define CFG_OPT_HELP    (CFG_OPT_BASE + (int)CFG_N_OPTIONS)
#define CFG_OPT_VERSION (CFG_OPT_HELP + 1)
#define CFG_NAME_SIZE   64

static const struct option *cfg_long_options(void)
{
	static struct option opts[CFG_N_OPTIONS + 3];

	if (opts[0].name != NULL)
		return opts;
	for (size_t i = 0; i < CFG_N_OPTIONS; i++) {
		enum cfg_kind kind = cfg_options[i].kind;

		opts[i].name = cfg_options[i].name;
		/* A switch: --join alone means true; --join=false, and --join
		 * false (cfg_args_pass takes the word after it), too. */
		opts[i].has_arg = kind == CFG_FLAG   ? no_argument
				  : kind == CFG_BOOL ? optional_argument
						     : required_argument;
		opts[i].val = CFG_OPT_BASE + (int)i;
	}
	opts[CFG_N_OPTIONS] = (struct option){"help", no_argument, NULL, CFG_OPT_HELP};
	opts[CFG_N_OPTIONS + 1] = (struct option){"version", no_argument, NULL, CFG_OPT_VERSION};
	return opts;
}

/* The option name as written in arg ("--name" or "--name=value"). */
static void cfg_written_name(const char *arg, char *name, size_t len)
{
	const char *eq;

	if (strncmp(arg, "--", 2) != 0) {
		snprintf(name, len, "%s", arg);
		return;
	}
	arg += 2;
	eq = strchr(arg, '=');
	snprintf(name, len, "%.*s", eq != NULL ? (int)(eq - arg) : (int)strlen(arg), arg);
}

/*
 * One pass over argv with getopt_long: pass 0 applies only --config, pass
 * 1 everything else, so that flags win over the file wherever --config
 * stands. Names are taken whole: getopt_long's abbreviations ("--data"
 * for --data-dir) are refused as unknown, as they always were.
 */
static int cfg_args_pass(cfg *c, int pass, int argc, char **argv, char *err, size_t errlen)
{
	const struct option *opts = cfg_long_options();
	char msg[CFG_ERR_SIZE];
	char name[CFG_NAME_SIZE];
	int opt, at;

	optind = 0; /* glibc: start over (from argv[1]), argv as it is ('+') */
	opterr = 0; /* the messages below say it with the setting's name */
	for (at = 1; (opt = getopt_long(argc, argv, "+:h", opts, NULL)) != -1; at = optind) {
		const cfg_option *o;
		const char *value;

		cfg_written_name(argv[at], name, sizeof name);
		if (opt == 'h' || opt == CFG_OPT_HELP)
			return CFG_HELP;
		if (opt == CFG_OPT_VERSION)
			return CFG_VERSION;
		if (opt == ':') {
			err_set(err, errlen, "--%s needs a value (see --help)", name);
			return CFG_ERROR;
		}
		if (opt == '?') {
			o = cfg_find(name);
			if (strncmp(argv[at], "--", 2) != 0)
				err_set(err, errlen, "unexpected argument \"%s\" (see --help)", argv[at]);
			else if (o != NULL && o->kind == CFG_FLAG)
				err_set(err, errlen, "--%s takes no value (see --help)", name);
			else
				err_set(err, errlen, "unknown setting \"%s\" (see --help)", name);
			return CFG_ERROR;
		}
		o = &cfg_options[opt - CFG_OPT_BASE];
		if (strcmp(name, o->name) != 0) {
			err_set(err, errlen, "unknown setting \"%s\" (see --help)", name);
			return CFG_ERROR;
		}
		if (o->kind == CFG_FLAG) {
			/* A flag takes no value; set in pass 1 with the others. */
			if (pass == 1)
				*(bool *)((char *)c + o->offset) = true;
			continue;
		}
		value = optarg;
		if (o->kind == CFG_BOOL && value == NULL)
			value =
			    optind < argc && strncmp(argv[optind], "--", 2) != 0 ? argv[optind++] : "true";
		if ((o->kind == CFG_FILE) != (pass == 0))
			continue;
		if (cfg_set(c, o->name, value, msg, sizeof msg) != 0) {
			err_set(err, errlen, "%s", msg);
			return CFG_ERROR;
		}
	}
	if (optind < argc) {
		err_set(err, errlen, "unexpected argument \"%s\" (see --help)", argv[optind]);
		return CFG_ERROR;
	}
	return CFG_OK;
}

int cfg_parse_args(cfg *c, int argc, char **argv, char *err, size_t errlen)
{
	for (int pass = 0; pass < 2; pass++) {
		int rc = cfg_args_pass(c, pass, argc, argv, err, errlen);

		if (rc != CFG_OK)
			return rc;
	}
	if (cfg_check(c, err, errlen) != 0)
		return CFG_ERROR;
	return CFG_OK;
}

void cfg_usage(FILE *out)
{
	fprintf(out, "Usage: tsoracled --data-dir DIR [options]\n\n"
		     "The tsoracle sidecar: a timestamp oracle node, replicated with Raft.\n\n"
		     "Options (each may also be given in a --config file as \"name = value\"):\n");
	for (size_t i = 0; i < CFG_N_OPTIONS; i++) {
		char left[64];

		snprintf(left, sizeof left, "--%s %s", cfg_options[i].name, cfg_options[i].arg);
		fprintf(out, "  %-34s %s\n", left, cfg_options[i].help);
	}
	fprintf(out, "  %-34s %s\n  %-34s %s\n", "--help", "show this help", "--version", "show the version");
}

bool cfg_is_loopback(const char *addr)
{
	struct sockaddr_storage ss;

	if (cfg_sockaddr(addr, &ss) != 0)
		return false;
	if (ss.ss_family == AF_INET)
		return (ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >> 24) == 127;
	return IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)&ss)->sin6_addr);
}

int cfg_member_split(const char *addr, char *raft, size_t raftlen, char *client, size_t clientlen)
{
	const char *slash = strchr(addr, '/');
	size_t rlen = slash != NULL ? (size_t)(slash - addr) : strlen(addr);

	if (rlen >= raftlen || (slash != NULL && strlen(slash + 1) >= clientlen))
		return -1;
	memcpy(raft, addr, rlen);
	raft[rlen] = '\0';
	snprintf(client, clientlen, "%s", slash != NULL ? slash + 1 : "");
	return 0;
}

int cfg_member_raft_address(const char *addr, struct sockaddr_storage *ss)
{
	char raft[CFG_ADDR_SIZE], client[CFG_ADDR_SIZE];

	if (cfg_member_split(addr, raft, sizeof raft, client, sizeof client) != 0)
		return -1;
	return cfg_sockaddr(raft, ss);
}

int cfg_sockaddr(const char *addr, struct sockaddr_storage *ss)
{
	tp_addr a;

	if (tp_addr_parse(addr, TP_ADDR_IP_PORT, &a, NULL, 0) != 0)
		return -1;
	return tp_addr_sockaddr(&a, ss) > 0 ? 0 : -1;
}
