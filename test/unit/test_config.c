/* test_config.c: every refusal of tsoracled's settings, and the forms it accepts (sidecar/config.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

#define TC_MAX_ARGS 24
/* The data directory every case names unless it tests data-dir itself. */
#define DD          "--data-dir", "/var/lib/tso"

/*
 * One case: a config file's text (loaded first, as --config would, unless
 * NULL), then flags (after argv[0]); what cfg_parse_args (or the file)
 * answers, and a part of the message it must give.
 */
typedef struct cfg_case {
	const char *what;
	const char *text;
	const char *args[TC_MAX_ARGS];
	int want;
	const char *msg;
} cfg_case;

/* Runs a case into c; returns the result, the message in err. */
static int run_case(const cfg_case *k, cfg *c, char *err, size_t errlen)
{
	char *argv[TC_MAX_ARGS + 1];
	int argc = 0;

	cfg_defaults(c);
	err[0] = '\0';
	if (k->text != NULL && cfg_load_text(c, "test.conf", k->text, strlen(k->text), err, errlen) != 0)
		return CFG_ERROR;
	argv[argc++] = (char *)"tsoracled";
	for (int i = 0; k->args[i] != NULL; i++)
		argv[argc++] = (char *)k->args[i];
	return cfg_parse_args(c, argc, argv, err, errlen);
}

static void run_table(const cfg_case *cases, size_t n)
{
	static cfg c;
	char err[CFG_ERR_SIZE];

	for (size_t i = 0; i < n; i++) {
		int rc = run_case(&cases[i], &c, err, sizeof err);

		if (rc != cases[i].want)
			fail_msg("%s: result %d, want %d (message: %s)", cases[i].what, rc, cases[i].want,
				 err);
		if (cases[i].msg != NULL && strstr(err, cases[i].msg) == NULL)
			fail_msg("%s: message \"%s\" does not say \"%s\"", cases[i].what, err, cases[i].msg);
		if (cases[i].want == CFG_ERROR && err[0] == '\0')
			fail_msg("%s: refused without a message", cases[i].what);
	}
}

/* ---- every numeric key's range, through cfg_set ------------------------ */

typedef struct num_key {
	const char *name;
	uint64_t min, max;
} num_key;

static const num_key num_keys[] = {
    {"node-id", 1, UINT32_MAX},          {"election-timeout", 10, 3600000},
    {"heartbeat", 1, 3600000},           {"lease", 3, 3600000},
    {"drift-permille", 1, 1000},         {"window-ahead", 1, 3600000},
    {"extend-margin", 1, 3600000},       {"max-ahead", 64, 3600000},
    {"request-timeout", 1, 3600000},     {"snapshot-threshold", 2, 100000000},
    {"snapshot-trailing", 1, 100000000},
};

static void expect_set(const char *name, const char *value, bool ok, const char *msg)
{
	static cfg c;
	char err[CFG_ERR_SIZE] = "";
	int rc;

	cfg_defaults(&c);
	rc = cfg_set(&c, name, value, err, sizeof err);
	if ((rc == 0) != ok)
		fail_msg("%s = \"%s\": %s, want %s (%s)", name, value, rc == 0 ? "accepted" : "refused",
			 ok ? "accepted" : "refused", err);
	if (msg != NULL && strstr(err, msg) == NULL)
		fail_msg("%s = \"%s\": message \"%s\" does not say \"%s\"", name, value, err, msg);
}

/* Each key takes its minimum and maximum, and refuses one past either,
 * an empty value, a sign, blanks, junk after the number, another base, and
 * a number too large for 64 bits, each with a message naming the key and
 * its range. */
static void test_numeric_ranges(void **state)
{
	static const char *const junk[] = {
	    "", "-1", "+5", " 5", "5 ", "5ms", "5.0", "0x10", "1e3", "five", "18446744073709551616"};

	(void)state;
	for (size_t i = 0; i < sizeof num_keys / sizeof num_keys[0]; i++) {
		const num_key *k = &num_keys[i];
		char v[32], range[64];

		snprintf(range, sizeof range, "is not a number from %" PRIu64 " to %" PRIu64, k->min, k->max);
		snprintf(v, sizeof v, "%" PRIu64, k->min);
		expect_set(k->name, v, true, NULL);
		snprintf(v, sizeof v, "%" PRIu64, k->max);
		expect_set(k->name, v, true, NULL);
		snprintf(v, sizeof v, "%" PRIu64, k->max + 1);
		expect_set(k->name, v, false, range);
		snprintf(v, sizeof v, "%" PRIu64, k->min - 1);
		expect_set(k->name, v, false, range);
		for (size_t j = 0; j < sizeof junk / sizeof junk[0]; j++)
			expect_set(k->name, junk[j], false, range);
	}
}

/* Strings up to their buffer less one byte; log levels by name only. */
static void test_strings_and_levels(void **state)
{
	static const char *const keys[] = {"data-dir", "raft-address",     "client-socket", "client-tcp",
					   "tls-ca",   "tls-cert",         "tls-key",       "tls-crl",
					   "pid-file", "clock-offset-file"};
	char long_value[CFG_PATH_SIZE + 1];

	(void)state;
	memset(long_value, 'a', sizeof long_value - 1);
	long_value[sizeof long_value - 1] = '\0';
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		expect_set(keys[i], long_value, false, "value is longer than");
	long_value[CFG_ADDR_SIZE - 1] = '\0';
	expect_set("raft-address", long_value, true, NULL); /* checked as an address later */
	long_value[CFG_ADDR_SIZE - 1] = 'a';
	long_value[CFG_ADDR_SIZE] = '\0';
	expect_set("raft-address", long_value, false, "raft-address: value is longer than 127 bytes");

	expect_set("log-level", "debug", true, NULL);
	expect_set("log-level", "info", true, NULL);
	expect_set("log-level", "warn", true, NULL);
	expect_set("log-level", "error", true, NULL);
	expect_set("log-level", "verbose", false,
		   "log-level: \"verbose\" is not one of debug, info, warn, error");
	expect_set("log-level", "", false, "is not one of");
	expect_set("log-level", "INFO ", false, "is not one of");
	expect_set("no-such-key", "1", false, "unknown setting \"no-such-key\" (see --help)");
	expect_set("config", "/nonexistent/tsoracled.conf", false, "could not open config file");
}

/* ---- flags, files and the whole ----------------------------------------- */

#define LONG_DIR                                                                                             \
	"/ddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd" \
	"d"                                                                                                  \
	"dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd" \
	"dddddddddddddddddddddddddddddddddddddddddddddddddd"
#define LONG_SOCKET                                                                                          \
	"/sssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssss" \
	"sss"                                                                                                \
	"sssssss"
#define CLUSTER3                                                                                             \
	"1=127.0.0.1:7401/127.0.0.1:7501,2=127.0.0.1:7402/127.0.0.1:7502,3=127.0.0.1:7403/127.0.0.1:7503"
#define REMOTE3 "1=10.0.0.1:7400/10.0.0.1:7401,2=10.0.0.2:7400/10.0.0.2:7401,3=10.0.0.3:7400/10.0.0.3:7401"

/* One case a line. */
/* clang-format off */
static const cfg_case refusals[] = {
    /* the command line */
    {"a bare word", NULL, {DD, "extra"}, CFG_ERROR, "unexpected argument \"extra\" (see --help)"},
    {"a single dash", NULL, {DD, "-v"}, CFG_ERROR, "unexpected argument \"-v\""},
    {"a flag without its value", NULL, {DD, "--lease"}, CFG_ERROR, "--lease needs a value (see --help)"},
    {"an abbreviated name", NULL, {DD, "--leas", "100"}, CFG_ERROR, "unknown setting \"leas\" (see --help)"},
    {"an ambiguous abbreviation", NULL, {DD, "--tls", "x"}, CFG_ERROR, "unknown setting \"tls\" (see --help)"},
    {"a value given to a flag", NULL, {DD, "--force-new-cluster=1"}, CFG_ERROR, "--force-new-cluster takes no value (see --help)"},
    {"a single-dash argument", NULL, {DD, "-x"}, CFG_ERROR, "unexpected argument \"-x\" (see --help)"},
    {"an unknown flag", NULL, {DD, "--leese", "100"}, CFG_ERROR, "unknown setting \"leese\""},
    {"an unknown flag, = form", NULL, {DD, "--leese=100"}, CFG_ERROR, "unknown setting \"leese\""},
    {"a bad number, = form", NULL, {DD, "--lease=100ms"}, CFG_ERROR, "lease: \"100ms\" is not a number"},
    {"a missing config file", NULL, {DD, "--config", "/nonexistent/x.conf"}, CFG_ERROR, "could not open config file \"/nonexistent/x.conf\""},
    /* required and derived settings */
    {"no data-dir", NULL, {NULL}, CFG_ERROR, "--data-dir is required"},
    {"an empty data-dir", NULL, {"--data-dir", ""}, CFG_ERROR, "--data-dir is required"},
    {"a data-dir too long for its pid file", NULL, {"--data-dir", LONG_DIR}, CFG_ERROR, "data-dir is too long (247 bytes): DATA-DIR/tsoracled.pid must fit in 255"},
    /* addresses */
    {"raft-address without a port", NULL, {DD, "--raft-address", "127.0.0.1"}, CFG_ERROR, "raft-address \"127.0.0.1\": not of the form IP:PORT"},
    {"raft-address without a host", NULL, {DD, "--raft-address", ":7400"}, CFG_ERROR, "raft-address \":7400\": the host name is empty"},
    {"raft-address with port 0", NULL, {DD, "--raft-address", "127.0.0.1:0"}, CFG_ERROR, "raft-address \"127.0.0.1:0\": the port must be a number between 1 and 65535"},
    {"raft-address with port 65536", NULL, {DD, "--raft-address", "127.0.0.1:65536"}, CFG_ERROR, "port must be a number between 1 and 65535"},
    {"raft-address with an empty port", NULL, {DD, "--raft-address", "127.0.0.1:"}, CFG_ERROR, "port must be a number"},
    {"raft-address with junk after the port", NULL, {DD, "--raft-address", "127.0.0.1:74x"}, CFG_ERROR, "port must be a number"},
    {"raft-address, a host name", NULL, {DD, "--raft-address", "localhost:7400"}, CFG_ERROR, "\"localhost\" is not an IP address (a literal IPv4 or [IPv6] address is required)"},
    {"raft-address, IPv6 without brackets", NULL, {DD, "--raft-address", "::1:7400"}, CFG_ERROR, "an IPv6 address must be written in brackets, for example \"[::1]:7400\""},
    {"raft-address, a bad IPv4", NULL, {DD, "--raft-address", "127.0.0.256:7400"}, CFG_ERROR, "is not an IP address"},
    {"raft-address, a port with a leading zero", NULL, {DD, "--raft-address", "127.0.0.1:07400"}, CFG_ERROR, "raft-address \"127.0.0.1:07400\": the port must be a number between 1 and 65535, without a leading zero"},
    {"raft-address, a signed port", NULL, {DD, "--raft-address", "127.0.0.1:+7400"}, CFG_ERROR, "raft-address \"127.0.0.1:+7400\": the port must be a number"},
    {"peers, junk after a client port", NULL, {DD, "--peers", "1=127.0.0.1:7400/127.0.0.1:7401x"}, CFG_ERROR, "peers: client address \"127.0.0.1:7401x\": the port must be a number"},
    {"raft-address, empty brackets", NULL, {DD, "--raft-address", "[]:7400"}, CFG_ERROR, "the host name is empty"},
    {"client-tcp, a host name", NULL, {DD, "--client-tcp", "db1:7401"}, CFG_ERROR, "client-tcp \"db1:7401\": \"db1\" is not an IP address"},
    {"client-socket, a relative path", NULL, {DD, "--client-socket", "tso.sock"}, CFG_ERROR, "client-socket \"tso.sock\" must be an absolute path"},
    {"client-socket, longer than sun_path", NULL, {DD, "--client-socket", LONG_SOCKET}, CFG_ERROR, "is longer than a unix socket path may be (107 bytes)"},
    {"no client listener", NULL, {DD, "--client-socket", ""}, CFG_ERROR, "no client listener: set client-socket or client-tcp"},
    /* peers */
    {"peers, an empty entry", NULL, {DD, "--raft-address", "127.0.0.1:7401", "--peers", "1=127.0.0.1:7401,,2=127.0.0.1:7402"}, CFG_ERROR, "peers: bad entry"},
    {"peers, a trailing comma then nothing is fine, but a lone comma is not", NULL, {DD, "--peers", ","}, CFG_ERROR, "peers: bad entry"},
    {"peers, no =", NULL, {DD, "--peers", "127.0.0.1:7400"}, CFG_ERROR, "peers: \"127.0.0.1:7400\" is not of the form ID=IP:PORT"},
    {"peers, id 0", NULL, {DD, "--peers", "0=127.0.0.1:7400"}, CFG_ERROR, "peers: id \"0\" must be a number from 1 to 4294967295"},
    {"peers, id too large", NULL, {DD, "--peers", "4294967296=127.0.0.1:7400"}, CFG_ERROR, "must be a number from 1 to 4294967295"},
    {"peers, id not a number", NULL, {DD, "--peers", "one=127.0.0.1:7400"}, CFG_ERROR, "peers: id \"one\""},
    {"peers, an empty id", NULL, {DD, "--peers", "=127.0.0.1:7400"}, CFG_ERROR, "peers: id \"\""},
    {"peers, a bad address", NULL, {DD, "--peers", "1=localhost:7400"}, CFG_ERROR, "peers: address \"localhost:7400\""},
    {"peers, a bad client address", NULL, {DD, "--peers", "1=127.0.0.1:7400/127.0.0.1:0"}, CFG_ERROR, "peers: client address \"127.0.0.1:0\": the port must be"},
    {"peers, an entry too long", NULL, {DD, "--peers", "1=127.0.0.1:7400/" LONG_SOCKET LONG_SOCKET}, CFG_ERROR, "peers: bad entry"},
    {"peers, eight members", NULL, {DD, "--peers", "1=127.0.0.1:7401/127.0.0.1:7501,2=127.0.0.1:7402/127.0.0.1:7502,3=127.0.0.1:7403/127.0.0.1:7503," "4=127.0.0.1:7404/127.0.0.1:7504,5=127.0.0.1:7405/127.0.0.1:7505,6=127.0.0.1:7406/127.0.0.1:7506," "7=127.0.0.1:7407/127.0.0.1:7507,8=127.0.0.1:7408/127.0.0.1:7508"}, CFG_ERROR, "peers: at most 7 members are supported"},
    {"peers, an id twice", NULL, {DD, "--peers", "1=127.0.0.1:7401/127.0.0.1:7501,1=127.0.0.1:7402/127.0.0.1:7502"}, CFG_ERROR, "peers: id 1 appears twice"},
    {"peers, an address twice", NULL, {DD, "--peers", "1=127.0.0.1:7401/127.0.0.1:7501,2=127.0.0.1:7401/127.0.0.1:7502"}, CFG_ERROR, "peers: address 127.0.0.1:7401 appears twice"},
    {"a cluster member without a client address", NULL, {DD, "--raft-address", "127.0.0.1:7401", "--peers", "1=127.0.0.1:7401/127.0.0.1:7501,2=127.0.0.1:7402"}, CFG_ERROR, "peers: member 2 has no client address"},
    {"peers without this node", NULL, {DD, "--node-id", "4", "--peers", CLUSTER3}, CFG_ERROR, "peers does not include this node (node-id 4)"},
    {"peers put this node elsewhere", NULL, {DD, "--raft-address", "127.0.0.1:7409", "--peers", CLUSTER3}, CFG_ERROR, "peers lists node 1 at 127.0.0.1:7401, but raft-address is 127.0.0.1:7409"},
    {"peers and client-tcp disagree", NULL, {DD, "--raft-address", "127.0.0.1:7401", "--client-tcp", "127.0.0.1:7600", "--peers", CLUSTER3}, CFG_ERROR, "peers lists node 1's client address as 127.0.0.1:7501, but client-tcp is 127.0.0.1:7600"},
    {"members off loopback without TLS", NULL, {DD, "--raft-address", "10.0.0.1:7400", "--peers", REMOTE3}, CFG_ERROR, "member 1's Raft address 10.0.0.1:7400 is not loopback: set tls-ca, tls-cert and tls-key"},
    {"client-tcp off loopback without TLS", NULL, {DD, "--client-tcp", "10.0.0.1:7401"}, CFG_ERROR, "client-tcp 10.0.0.1:7401 is not loopback: set tls-ca, tls-cert and tls-key"},
    {"TLS without its certificate", NULL, {DD, "--tls-ca", "/etc/tso/ca.crt", "--tls-key", "/etc/tso/node1.key"}, CFG_ERROR, "tls-cert is missing: tls-ca, tls-cert and tls-key go together"},
    {"TLS without its key", NULL, {DD, "--tls-ca", "/etc/tso/ca.crt", "--tls-cert", "/etc/tso/node1.crt"}, CFG_ERROR, "tls-key is missing"},
    {"a CRL alone", NULL, {DD, "--tls-crl", "/etc/tso/ca.crl"}, CFG_ERROR, "tls-ca is missing"},
    /* timing */
    {"heartbeat above half the election timeout", NULL, {DD, "--heartbeat", "151"}, CFG_ERROR, "heartbeat (151 ms) must be at most half the election timeout (300 ms)"},
    {"lease equal to the election timeout", NULL, {DD, "--lease", "300"}, CFG_ERROR, "lease (300 ms) must be shorter than the election timeout (300 ms)"},
    {"lease above the election timeout", NULL, {DD, "--election-timeout", "100", "--lease", "200"}, CFG_ERROR, "lease (200 ms) must be shorter than the election timeout (100 ms)"},
    {"snapshot-trailing equal to the threshold", NULL, {DD, "--snapshot-threshold", "100", "--snapshot-trailing", "100"}, CFG_ERROR, "snapshot-trailing (100) must be below snapshot-threshold (100)"},
    {"extend-margin equal to window-ahead", NULL, {DD, "--extend-margin", "3000"}, CFG_ERROR, "extend-margin (3000 ms) must be below window-ahead (3000 ms)"},
    {"window-ahead above max-ahead", NULL, {DD, "--window-ahead", "5000", "--max-ahead", "4000"}, CFG_ERROR, "window-ahead (5000 ms) must be at most max-ahead (4000 ms)"},
    {"drift-permille 0", NULL, {DD, "--drift-permille", "0"}, CFG_ERROR, "drift-permille: \"0\" is not a number from 1 to 1000"},
    /* config files */
    {"a line without =", "data-dir /d\n", {NULL}, CFG_ERROR, "test.conf:1: expected \"name = value\""},
    {"an unknown key in a file", "# settings\n\nleese = 100\n", {DD}, CFG_ERROR, "test.conf:3: unknown setting \"leese\""},
    {"junk after a value in a file", "lease = 100 ms\n", {DD}, CFG_ERROR, "test.conf:1: lease: \"100 ms\""},
    {"a file including another", "config = /etc/other.conf\n", {DD}, CFG_ERROR, "test.conf:1: a config file cannot include another"},
    {"an empty name in a file", " = 5\n", {DD}, CFG_ERROR, "test.conf:1: unknown setting \"\""},
    /* metrics (docs/operations.md): plain HTTP, so loopback unless said otherwise */
    {"metrics-address, a host name", NULL, {DD, "--metrics-address", "localhost:9499"}, CFG_ERROR, "metrics-address \"localhost:9499\": \"localhost\" is not an IP address"},
    {"metrics-address without a port", NULL, {DD, "--metrics-address", "127.0.0.1"}, CFG_ERROR, "metrics-address \"127.0.0.1\": not of the form IP:PORT"},
    {"metrics-address off loopback", NULL, {DD, "--metrics-address", "10.0.0.1:9499"}, CFG_ERROR, "metrics-address 10.0.0.1:9499 is not loopback: the metrics endpoint is plain HTTP without authentication; set metrics-allow-plaintext = true"},
    {"metrics-address on all addresses", NULL, {DD, "--metrics-address", "0.0.0.0:9499", "--metrics-allow-plaintext", "false"}, CFG_ERROR, "is not loopback"},
    {"metrics-allow-plaintext, not a boolean", NULL, {DD, "--metrics-allow-plaintext", "yes"}, CFG_ERROR, "metrics-allow-plaintext: \"yes\" is not true or false (or 1 or 0)"},
    {"a NUL byte in a file", "lease = 100\n\0\n", {DD}, CFG_ERROR, NULL}, /* strlen stops: accepted below */
};
/* clang-format on */

/* The text of a file may hold what a C string cannot: tested with lengths. */
static void test_file_bytes(void **state)
{
	static cfg c;
	char err[CFG_ERR_SIZE];
	static const char nul[] = "lease = 100\nheart\0beat = 5\n";
	char *longline = malloc(CFG_PATH_SIZE * 8);

	(void)state;
	cfg_defaults(&c);
	assert_int_not_equal(cfg_load_text(&c, "t.conf", nul, sizeof nul - 1, err, sizeof err), 0);
	assert_non_null(strstr(err, "t.conf:2: a NUL byte"));

	assert_non_null(longline);
	memset(longline, ' ', CFG_PATH_SIZE * 8);
	memcpy(longline, "lease = 100", 11);
	cfg_defaults(&c);
	assert_int_not_equal(cfg_load_text(&c, "t.conf", longline, CFG_PATH_SIZE * 8, err, sizeof err), 0);
	assert_non_null(strstr(err, "t.conf:1: line too long (at most 1023 bytes)"));
	free(longline);

	/* No newline at the end, CRLF line ends and blank lines are fine. */
	cfg_defaults(&c);
	assert_int_equal(
	    cfg_load_text(&c, "t.conf", "lease = 150\r\n\r\n\nheartbeat = 20", 30, err, sizeof err), 0);
	assert_int_equal(c.alloc.lease_ms, 150);
	assert_int_equal(c.heartbeat_ms, 20);
}

static void test_refusals(void **state)
{
	(void)state;
	/* The last case only proves a C string cannot carry a NUL: skip it. */
	run_table(refusals, sizeof refusals / sizeof refusals[0] - 1);
}

/* ---- accepted forms ----------------------------------------------------- */

/* One case a line. */
/* clang-format off */
static const cfg_case accepted[] = {
    {"the defaults and a data-dir", NULL, {DD}, CFG_OK, NULL},
    {"--help", NULL, {"--help"}, CFG_HELP, NULL},
    {"-h anywhere wins over a bad flag", NULL, {DD, "--lease", "bad", "-h"}, CFG_HELP, NULL},
    {"--help before a bad flag", NULL, {"--help", "--lease", "bad"}, CFG_HELP, NULL},
    {"--version", NULL, {"--version"}, CFG_VERSION, NULL},
    {"name=value flags", NULL, {"--data-dir=/d", "--lease=100", "--log-level=debug"}, CFG_OK, NULL},
    {"a three-member loopback cluster", NULL, {DD, "--raft-address", "127.0.0.1:7401", "--peers", CLUSTER3}, CFG_OK, NULL},
    {"a remote cluster with TLS", NULL, {DD, "--raft-address", "10.0.0.2:7400", "--node-id", "2", "--peers", REMOTE3, "--tls-ca", "/etc/tso/ca.crt", "--tls-cert", "/etc/tso/node2.crt", "--tls-key", "/etc/tso/node2.key", "--tls-crl", "/etc/tso/ca.crl"}, CFG_OK, NULL},
    {"IPv6 addresses", NULL, {DD, "--raft-address", "[::1]:7400", "--client-tcp", "[::1]:7401"}, CFG_OK, NULL},
    {"client-tcp only", NULL, {DD, "--client-socket", "", "--client-tcp", "127.0.0.1:7401"}, CFG_OK, NULL},
    {"the largest lease below the election timeout", NULL, {DD, "--lease", "299"}, CFG_OK, NULL},
    {"heartbeat at half the election timeout", NULL, {DD, "--heartbeat", "150"}, CFG_OK, NULL},
    {"a file with comments, blanks, quotes and spaces", "# tsoracled\n\n  data-dir   =   /srv/tso   # where\nclient-socket = \"\"\nclient-tcp=127.0.0.1:7401\n" "\tlog-level = warn\n", {NULL}, CFG_OK, NULL},
    {"a key twice in a file: the last wins", "data-dir = /a\nlease = 100\nlease = 150\n", {NULL}, CFG_OK, NULL},
    {"metrics on loopback", NULL, {DD, "--metrics-address", "127.0.0.1:9499"}, CFG_OK, NULL},
    {"metrics on IPv6 loopback", NULL, {DD, "--metrics-address", "[::1]:9499"}, CFG_OK, NULL},
    {"metrics off loopback, plaintext allowed", "metrics-address = 0.0.0.0:9499\nmetrics-allow-plaintext = true\n", {DD}, CFG_OK, NULL},
};
/* clang-format on */

static void test_accepted(void **state)
{
	static cfg c;
	char err[CFG_ERR_SIZE];

	(void)state;
	run_table(accepted, sizeof accepted / sizeof accepted[0]);

	/* What the accepted forms mean. */
	assert_int_equal(run_case(&accepted[0], &c, err, sizeof err), CFG_OK);
	assert_string_equal(c.pid_file, "/var/lib/tso/tsoracled.pid");
	assert_int_equal(c.n_peers, 1);
	assert_int_equal(c.peers[0].id, 1);
	assert_string_equal(c.peers[0].address, CFG_DEFAULT_RAFT_ADDRESS);
	assert_string_equal(c.client_socket, CFG_DEFAULT_CLIENT_SOCKET);
	assert_string_equal(c.client_tcp, "");

	assert_int_equal(run_case(&accepted[5], &c, err, sizeof err), CFG_OK);
	assert_string_equal(c.data_dir, "/d");
	assert_int_equal(c.alloc.lease_ms, 100);
	assert_int_equal(c.log_level, LOG_DEBUG);

	/* A member's client-tcp comes from its entry in peers. */
	assert_int_equal(run_case(&accepted[6], &c, err, sizeof err), CFG_OK);
	assert_int_equal(c.n_peers, 3);
	assert_string_equal(c.client_tcp, "127.0.0.1:7501");
	assert_string_equal(c.peers[2].client, "127.0.0.1:7503");

	assert_int_equal(run_case(&accepted[12], &c, err, sizeof err), CFG_OK);
	assert_string_equal(c.data_dir, "/srv/tso");
	assert_string_equal(c.client_socket, "");
	assert_string_equal(c.client_tcp, "127.0.0.1:7401");
	assert_int_equal(c.log_level, LOG_WARN);

	assert_int_equal(run_case(&accepted[13], &c, err, sizeof err), CFG_OK);
	assert_int_equal(c.alloc.lease_ms, 150);
}

/* ---- join (docs/cluster.md, "Membership") ------------------------------- */

/* clang-format off */
static const cfg_case joins[] = {
    {"--join alone is a switch", NULL, {DD, "--join", "--client-tcp", "127.0.0.1:7404"}, CFG_OK, NULL},
    {"join = true in a file", "data-dir = /d\njoin = true\nclient-tcp = 127.0.0.1:7404\n", {NULL}, CFG_OK, NULL},
    {"join = false in a file", "data-dir = /d\njoin = false\n", {NULL}, CFG_OK, NULL},
    {"--join=false", NULL, {DD, "--join=false"}, CFG_OK, NULL},
    {"join needs client-tcp", NULL, {DD, "--join"}, CFG_ERROR, "join: set client-tcp"},
    {"join = maybe", "data-dir = /d\njoin = maybe\n", {NULL}, CFG_ERROR, "join: \"maybe\" is not true or false"},
    {"join off loopback without TLS", NULL, {DD, "--join", "--raft-address", "10.0.0.4:7400", "--client-tcp", "127.0.0.1:7404"}, CFG_ERROR, "not loopback: set tls-ca"},
    {"join: peers need not name this node (seeds for tsoracle-ctl)", NULL, {DD, "--join", "--node-id", "4", "--client-tcp", "127.0.0.1:7404", "--peers", CLUSTER3}, CFG_OK, NULL},
    {"catch-up-timeout", NULL, {DD, "--catch-up-timeout", "5000"}, CFG_OK, NULL},
    {"catch-up-timeout 0", NULL, {DD, "--catch-up-timeout", "0"}, CFG_ERROR, "catch-up-timeout"},
};
/* clang-format on */

static void test_join(void **state)
{
	static cfg c;
	char err[CFG_ERR_SIZE];

	(void)state;
	run_table(joins, sizeof joins / sizeof joins[0]);
	assert_int_equal(run_case(&joins[0], &c, err, sizeof err), CFG_OK);
	assert_true(c.join);
	assert_int_equal(c.catch_up_timeout_ms, CFG_DEFAULT_CATCH_UP_TIMEOUT_MS);
	assert_int_equal(run_case(&joins[1], &c, err, sizeof err), CFG_OK);
	assert_true(c.join);
	assert_int_equal(run_case(&joins[3], &c, err, sizeof err), CFG_OK);
	assert_false(c.join);
	assert_int_equal(run_case(&joins[8], &c, err, sizeof err), CFG_OK);
	assert_int_equal(c.catch_up_timeout_ms, 5000);
}

/* --config reads a real file, and flags win over it wherever --config
 * stands on the command line. */
static void test_config_file_and_flags(void **state)
{
	static cfg c;
	char path[] = "/tmp/test_config.XXXXXX";
	char err[CFG_ERR_SIZE];
	const char *text = "data-dir = /from/file\nlease = 120\nheartbeat = 40\n";
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	{
		char *argv[] = {"tsoracled", "--lease", "150", "--config", path, NULL};

		cfg_defaults(&c);
		assert_int_equal(cfg_parse_args(&c, 5, argv, err, sizeof err), CFG_OK);
		assert_string_equal(c.data_dir, "/from/file");
		assert_int_equal(c.alloc.lease_ms, 150); /* the flag, though it came first */
		assert_int_equal(c.heartbeat_ms, 40);
	}
	{
		/* A bad line names the file and the line. */
		const char *bad = "data-dir = /d\nheartbeat = 0\n";

		fd = open(path, O_WRONLY | O_TRUNC);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, bad, strlen(bad)), (ssize_t)strlen(bad));
		close(fd);
		char *argv[] = {"tsoracled", "--config", path, NULL};

		cfg_defaults(&c);
		assert_int_equal(cfg_parse_args(&c, 3, argv, err, sizeof err), CFG_ERROR);
		assert_non_null(strstr(err, ":2: heartbeat: \"0\" is not a number from 1 to 3600000"));
		assert_non_null(strstr(err, path));
	}
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_numeric_ranges), cmocka_unit_test(test_strings_and_levels),
	    cmocka_unit_test(test_refusals),       cmocka_unit_test(test_file_bytes),
	    cmocka_unit_test(test_accepted),       cmocka_unit_test(test_config_file_and_flags),
	    cmocka_unit_test(test_join),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
