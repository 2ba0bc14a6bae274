/* test_config_tls.c: the tls-* settings in sidecar/config.c: together or not at all, and required off
 * loopback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"

#define TC_OFF_PEERS                                                                                         \
	"1=10.0.0.1:7400/10.0.0.1:7401,2=10.0.0.2:7400/10.0.0.2:7401,3=10.0.0.3:7400/10.0.0.3:7401"
#define TC_LOCAL_PEERS "1=127.0.0.1:7400/127.0.0.1:7401,2=127.0.0.1:7402/127.0.0.1:7403"

/* argv for tsoracled, then cfg_parse_args; returns its result, message in err. */
static int tc_parse(cfg *c, char *err, size_t errlen, const char *const *args)
{
	char *argv[32];
	int argc = 0;

	argv[argc++] = (char *)"tsoracled";
	argv[argc++] = (char *)"--data-dir";
	argv[argc++] = (char *)"/tmp/tc";
	for (; *args != NULL; args++)
		argv[argc++] = (char *)*args;
	cfg_defaults(c);
	err[0] = '\0';
	return cfg_parse_args(c, argc, argv, err, errlen);
}

#define TC_EXPECT(result, needle, ...)                                                                       \
	do {                                                                                                 \
		const char *const args_[] = {__VA_ARGS__, NULL};                                             \
		cfg c_;                                                                                      \
		char err_[CFG_ERR_SIZE];                                                                     \
		int rc_ = tc_parse(&c_, err_, sizeof err_, args_);                                           \
		if (rc_ != (result) || ((needle) != NULL && strstr(err_, (needle) ? (needle) : "") == NULL)) \
			fail_msg("expected %d with \"%s\", got %d: %s", (result), (needle) ? (needle) : "",  \
				 rc_, err_);                                                                 \
	} while (0)

static void test_off_loopback_needs_tls(void **state)
{
	(void)state;
	TC_EXPECT(CFG_ERROR,
		  "member 1's Raft address 10.0.0.1:7400 is not loopback: set tls-ca, tls-cert and tls-key",
		  "--raft-address", "10.0.0.1:7400", "--peers", TC_OFF_PEERS);
	/* A member elsewhere is enough, even with this one on loopback. */
	TC_EXPECT(CFG_ERROR, "member 2's Raft address 10.0.0.2:7400 is not loopback", "--raft-address",
		  "127.0.0.1:7400", "--peers",
		  "1=127.0.0.1:7400/127.0.0.1:7401,2=10.0.0.2:7400/10.0.0.2:7401");
	TC_EXPECT(CFG_ERROR, "client-tcp 0.0.0.0:7401 is not loopback: set tls-ca, tls-cert and tls-key",
		  "--client-tcp", "0.0.0.0:7401");
	/* Positive controls: with TLS set, the same pass ... */
	TC_EXPECT(CFG_OK, NULL, "--raft-address", "10.0.0.1:7400", "--peers", TC_OFF_PEERS, "--tls-ca",
		  "ca.crt", "--tls-cert", "node1.crt", "--tls-key", "node1.key");
	TC_EXPECT(CFG_OK, NULL, "--client-tcp", "0.0.0.0:7401", "--tls-ca", "ca.crt", "--tls-cert", "n.crt",
		  "--tls-key", "n.key", "--tls-crl", "ca.crl");
	/* ... and so do loopback clusters and a lone member, which opens no
	 * Raft port wherever its raft-address points. */
	TC_EXPECT(CFG_OK, NULL, "--raft-address", "127.0.0.1:7400", "--peers", TC_LOCAL_PEERS);
	TC_EXPECT(CFG_OK, NULL, "--raft-address", "10.0.0.1:7400");
}

static void test_tls_settings_go_together(void **state)
{
	(void)state;
	TC_EXPECT(CFG_ERROR, "tls-key is missing: tls-ca, tls-cert and tls-key go together", "--tls-ca",
		  "ca.crt", "--tls-cert", "n.crt");
	TC_EXPECT(CFG_ERROR, "tls-ca is missing", "--tls-cert", "n.crt", "--tls-key", "n.key");
	TC_EXPECT(CFG_ERROR, "tls-cert is missing", "--tls-ca", "ca.crt", "--tls-key", "n.key");
	TC_EXPECT(CFG_ERROR, "tls-ca is missing", "--tls-crl", "ca.crl");
	/* The old setting is gone, and says so. */
	TC_EXPECT(CFG_ERROR, "unknown setting \"peer-secret-file\"", "--peer-secret-file", "/etc/x");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_off_loopback_needs_tls),
	    cmocka_unit_test(test_tls_settings_go_together),
	};
	return cmocka_run_group_tests_name("config_tls", tests, NULL, NULL);
}
