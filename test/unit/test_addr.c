/* test_addr.c: the one address parser (common/addr.c), as every user of it sees it: the forms it
 * accepts and what it keeps of them, and every refusal with its reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "addr.h"
#include "config.h"

#define TA_ERR_SIZE 256

/* One case: text parsed in mode; on success the kind, path or host and
 * port kept, on failure a part of the reason. */
typedef struct addr_case {
	const char *text;
	tp_addr_mode mode;
	int want; /* 0 or -1 */
	tp_addr_kind kind;
	const char *host_or_path;
	const char *port;
	const char *msg;
} addr_case;

#define OK_TCP(t, m, h, p)                                                                                   \
	{                                                                                                    \
		t, m, 0, TP_ADDR_TCP, h, p, NULL                                                             \
	}
#define OK_UNIX(t, path)                                                                                     \
	{                                                                                                    \
		t, TP_ADDR_CLIENT, 0, TP_ADDR_UNIX, path, NULL, NULL                                         \
	}
#define REFUSED(t, m, why)                                                                                   \
	{                                                                                                    \
		t, m, -1, TP_ADDR_TCP, NULL, NULL, why                                                       \
	}

static const addr_case cases[] = {
    /* IPv4 */
    OK_TCP("127.0.0.1:7400", TP_ADDR_IP_PORT, "127.0.0.1", "7400"),
    OK_TCP("127.0.0.1:7400", TP_ADDR_CLIENT, "127.0.0.1", "7400"),
    OK_TCP("tcp:10.1.2.3:1", TP_ADDR_CLIENT, "10.1.2.3", "1"),
    OK_TCP("0.0.0.0:65535", TP_ADDR_IP_PORT, "0.0.0.0", "65535"),
    REFUSED("127.0.0.256:7400", TP_ADDR_IP_PORT, "\"127.0.0.256\" is not an IP address"),
    /* [IPv6]:port */
    OK_TCP("[::1]:7400", TP_ADDR_IP_PORT, "::1", "7400"),
    OK_TCP("[fe80::1%eth0]:5433", TP_ADDR_CLIENT, "fe80::1%eth0", "5433"),
    OK_TCP("tcp:[2001:db8::7]:5433", TP_ADDR_CLIENT, "2001:db8::7", "5433"),
    REFUSED("[fe80::1%eth0]:7400", TP_ADDR_IP_PORT, "\"fe80::1%eth0\" is not an IPv6 address"),
    REFUSED("[fe80::1%]:5433", TP_ADDR_CLIENT, "is not an IPv6 address"),
    REFUSED("[fe80::1%e/0]:5433", TP_ADDR_CLIENT, "is not an IPv6 address"),
    REFUSED("[localhost]:5433", TP_ADDR_CLIENT, "\"localhost\" is not an IPv6 address"),
    REFUSED("[127.0.0.1]:7400", TP_ADDR_IP_PORT, "is not an IPv6 address"),
    REFUSED("::1:7400", TP_ADDR_IP_PORT,
	    "an IPv6 address must be written in brackets, for example \"[::1]:7400\""),
    REFUSED("::1:5433", TP_ADDR_CLIENT, "must be written in brackets"),
    REFUSED("[::1]5433", TP_ADDR_CLIENT, "an IPv6 address must be written as \"[address]:port\""),
    REFUSED("[::1:5433", TP_ADDR_IP_PORT, "must be written as \"[address]:port\""),
    REFUSED("[]:7400", TP_ADDR_IP_PORT, "the host name is empty"),
    /* host names: clients only */
    OK_TCP("localhost:5433", TP_ADDR_CLIENT, "localhost", "5433"),
    OK_TCP("db-1.example_net.org:5433", TP_ADDR_CLIENT, "db-1.example_net.org", "5433"),
    REFUSED("localhost:7400", TP_ADDR_IP_PORT,
	    "\"localhost\" is not an IP address (a literal IPv4 or [IPv6] address is required)"),
    REFUSED("side car:5433", TP_ADDR_CLIENT, "the host name contains an invalid character"),
    REFUSED("a/b:5433", TP_ADDR_CLIENT, "invalid character"),
    REFUSED("caf\xc3\xa9:5433", TP_ADDR_CLIENT, "invalid character"),
    REFUSED(":5433", TP_ADDR_CLIENT, "the host name is empty"),
    REFUSED(":7400", TP_ADDR_IP_PORT, "the host name is empty"),
    /* ports: 0, 65536, junk, missing, trailing junk, sign, blank, leading zero */
    REFUSED("127.0.0.1:0", TP_ADDR_IP_PORT, "the port must be a number between 1 and 65535"),
    REFUSED("127.0.0.1:65536", TP_ADDR_IP_PORT, "the port must be a number between 1 and 65535"),
    REFUSED("127.0.0.1:99999999999999999999", TP_ADDR_IP_PORT, "the port must be a number"),
    REFUSED("localhost:http", TP_ADDR_CLIENT, "the port must be a number"),
    REFUSED("127.0.0.1:", TP_ADDR_IP_PORT, "the port must be a number"),
    REFUSED("127.0.0.1:7400abc", TP_ADDR_IP_PORT, "the port must be a number"),
    REFUSED("127.0.0.1:7400 ", TP_ADDR_IP_PORT, "the port must be a number"),
    REFUSED("[::1]:7400/x", TP_ADDR_IP_PORT, "the port must be a number"),
    REFUSED("127.0.0.1:+7400", TP_ADDR_IP_PORT, "the port must be a number"),
    REFUSED("127.0.0.1: 7400", TP_ADDR_IP_PORT, "the port must be a number"),
    REFUSED("127.0.0.1:-1", TP_ADDR_IP_PORT, "the port must be a number"),
    REFUSED("127.0.0.1:07400", TP_ADDR_IP_PORT, "without a leading zero"),
    /* no port at all */
    REFUSED("127.0.0.1", TP_ADDR_IP_PORT, "not of the form IP:PORT"),
    REFUSED("localhost", TP_ADDR_CLIENT,
	    "expected an absolute unix socket path (\"/path\" or \"unix:/path\") or a TCP address"),
    /* unix socket paths: clients only */
    OK_UNIX("/run/tsoracle/tsoracled.sock", "/run/tsoracle/tsoracled.sock"),
    OK_UNIX("unix:/tmp/t.sock", "/tmp/t.sock"),
    REFUSED("unix:run/t.sock", TP_ADDR_CLIENT, "a unix socket path must be absolute"),
    REFUSED("/run/t.sock", TP_ADDR_IP_PORT, "not of the form IP:PORT"),
    /* a scheme prefix where none is taken, or one tsoracle does not know:
     * the refusal names the forms accepted, and the address without it */
    REFUSED("unix:/tmp/t.sock", TP_ADDR_IP_PORT,
	    "\"unix:\" is not part of such an address: it is IP:PORT or [IPv6]:PORT, for example "
	    "\"127.0.0.1:7400\" or \"[::1]:7400\", with no prefix"),
    REFUSED("tcp:127.0.0.1:7400", TP_ADDR_IP_PORT,
	    "\"tcp:\" is not part of such an address: it is IP:PORT or [IPv6]:PORT, for example "
	    "\"127.0.0.1:7400\" or \"[::1]:7400\", with no prefix (here \"127.0.0.1:7400\")"),
    REFUSED("tcp://[::1]:7400", TP_ADDR_IP_PORT, "with no prefix (here \"[::1]:7400\")"),
    REFUSED("TCP:127.0.0.1:5433", TP_ADDR_CLIENT,
	    "\"TCP:\" is not a prefix tsoracle knows: an address is a unix socket (\"/path\" or "
	    "\"unix:/path\") or a TCP address (\"host:port\" or \"tcp:host:port\") (here "
	    "\"127.0.0.1:5433\")"),
    REFUSED("http://localhost:5433", TP_ADDR_CLIENT, "\"http:\" is not a prefix tsoracle knows"),
    REFUSED("udp:/tmp/t.sock", TP_ADDR_CLIENT, "\"udp:\" is not a prefix tsoracle knows"),
    REFUSED("fe80::1:7400", TP_ADDR_IP_PORT, "must be written in brackets"),
    REFUSED("abc:1:7400", TP_ADDR_IP_PORT, "must be written in brackets"),
    REFUSED("", TP_ADDR_CLIENT, "the address is empty"),
    REFUSED("", TP_ADDR_IP_PORT, "the address is empty"),
};

static void test_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const addr_case *k = &cases[i];
		tp_addr a;
		char err[TA_ERR_SIZE] = "";
		int rc = tp_addr_parse(k->text, k->mode, &a, err, sizeof err);

		if (rc != k->want)
			fail_msg("\"%s\" (mode %d): result %d, want %d (%s)", k->text, k->mode, rc, k->want,
				 err);
		if (rc != 0) {
			if (strstr(err, k->msg) == NULL)
				fail_msg("\"%s\": reason \"%s\" does not say \"%s\"", k->text, err, k->msg);
			continue;
		}
		if (a.kind != k->kind)
			fail_msg("\"%s\": kind %d, want %d", k->text, a.kind, k->kind);
		if (strcmp(k->kind == TP_ADDR_UNIX ? a.path : a.host, k->host_or_path) != 0)
			fail_msg("\"%s\": kept \"%s\", want \"%s\"", k->text,
				 k->kind == TP_ADDR_UNIX ? a.path : a.host, k->host_or_path);
		if (k->port != NULL && strcmp(a.port, k->port) != 0)
			fail_msg("\"%s\": port \"%s\", want \"%s\"", k->text, a.port, k->port);
	}
}

/* Lengths at the limits: the longest unix path and host kept, one more refused. */
static void test_lengths(void **state)
{
	char text[TP_ADDR_HOST_SIZE + 32];
	char err[TA_ERR_SIZE];
	tp_addr a;
	size_t max_path = TP_ADDR_PATH_SIZE - 1;

	(void)state;
	memset(text, 'x', sizeof text);
	text[0] = '/';
	text[max_path] = '\0';
	assert_int_equal(tp_addr_parse(text, TP_ADDR_CLIENT, &a, err, sizeof err), 0);
	text[max_path] = 'x';
	text[max_path + 1] = '\0';
	assert_int_equal(tp_addr_parse(text, TP_ADDR_CLIENT, &a, err, sizeof err), -1);
	assert_non_null(strstr(err, "at most 107 bytes are allowed"));

	memset(text, 'h', sizeof text);
	snprintf(text + TP_ADDR_HOST_SIZE - 1, 32, ":5433");
	assert_int_equal(tp_addr_parse(text, TP_ADDR_CLIENT, &a, err, sizeof err), 0);
	assert_int_equal(strlen(a.host), TP_ADDR_HOST_SIZE - 1);
	memset(text, 'h', sizeof text);
	snprintf(text + TP_ADDR_HOST_SIZE, 32, ":5433");
	assert_int_equal(tp_addr_parse(text, TP_ADDR_CLIENT, &a, err, sizeof err), -1);
	assert_non_null(strstr(err, "the host name is longer than 255 bytes"));
}

/* The socket address of a literal, and none for a name; cfg_sockaddr (what
 * tsoracled binds and dials) is the same parser: no junk after the port. */
static void test_sockaddr(void **state)
{
	struct sockaddr_storage ss;
	tp_addr a;
	char ip[INET6_ADDRSTRLEN];

	(void)state;
	assert_int_equal(tp_addr_parse("127.0.0.2:7400", TP_ADDR_IP_PORT, &a, NULL, 0), 0);
	assert_int_equal(tp_addr_sockaddr(&a, &ss), sizeof(struct sockaddr_in));
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 7400);
	assert_string_equal(inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip, sizeof ip),
			    "127.0.0.2");

	assert_int_equal(tp_addr_parse("[::1]:7401", TP_ADDR_IP_PORT, &a, NULL, 0), 0);
	assert_int_equal(tp_addr_sockaddr(&a, &ss), sizeof(struct sockaddr_in6));
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_int_equal(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), 7401);

	assert_int_equal(tp_addr_parse("localhost:5433", TP_ADDR_CLIENT, &a, NULL, 0), 0);
	assert_int_equal(tp_addr_sockaddr(&a, &ss), 0);
	assert_int_equal(tp_addr_parse("/tmp/s", TP_ADDR_CLIENT, &a, NULL, 0), 0);
	assert_int_equal(tp_addr_sockaddr(&a, &ss), 0);

	assert_int_equal(cfg_sockaddr("127.0.0.1:7400", &ss), 0);
	assert_int_equal(cfg_sockaddr("127.0.0.1:7400junk", &ss), -1);
	assert_int_equal(cfg_sockaddr("127.0.0.1:0", &ss), -1);
	assert_int_equal(cfg_sockaddr("localhost:7400", &ss), -1);
	assert_true(cfg_is_loopback("127.0.0.9:1"));
	assert_true(cfg_is_loopback("[::1]:1"));
	assert_false(cfg_is_loopback("10.0.0.1:1"));
	assert_false(cfg_is_loopback("127.0.0.1:1x"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_table),
	    cmocka_unit_test(test_lengths),
	    cmocka_unit_test(test_sockaddr),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
