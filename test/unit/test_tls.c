/* test_tls.c: common/tls.c, two ends of a connection in memory, with certificates from scripts/certs.sh.
 *
 * The group setup runs scripts/certs.sh (TSORACLE_CERTS_SH overrides the
 * path; make check-unit runs from the repository root) into a fresh
 * directory: a cluster CA with node1..node3, admin, client, an expired
 * member certificate and a revoked one, and a second CA with its own node1.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <inttypes.h>
#include <openssl/x509.h>

#include "tls.h"

#define TT_PATH       512
#define TT_ROUNDS_MAX 64    /* pump rounds before a handshake counts as stuck */
#define TT_CHUNK      65536 /* bytes moved per take */

static char tt_dir[TT_PATH];
static char tt_other[TT_PATH];

static void tt_path(char *out, const char *dir, const char *name)
{
	if ((size_t)snprintf(out, TT_PATH, "%s/%s", dir, name) >= TT_PATH)
		fail_msg("path %s/%s is too long", dir, name);
}

static int tt_run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int tt_run(const char *fmt, ...)
{
	char cmd[4 * TT_PATH];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	return system(cmd);
}

static int tt_setup(void **state)
{
	const char *script = getenv("TSORACLE_CERTS_SH");
	char base[] = "/tmp/tsoracle-test-tls-XXXXXX";

	(void)state;
	if (script == NULL)
		script = "scripts/certs.sh";
	if (mkdtemp(base) == NULL)
		return -1;
	tt_path(tt_dir, base, "ca1");
	tt_path(tt_other, base, "ca2");
	if (tt_run("%s %s 3 >/dev/null", script, tt_dir) != 0 ||
	    tt_run("%s %s issue expired member 2 --expired >/dev/null", script, tt_dir) != 0 ||
	    tt_run("%s %s issue revoked member 3 >/dev/null", script, tt_dir) != 0 ||
	    tt_run("%s %s revoke revoked >/dev/null", script, tt_dir) != 0 ||
	    tt_run("%s %s 1 >/dev/null", script, tt_other) != 0) {
		fprintf(stderr, "test_tls: %s failed (run from the repository root)\n", script);
		return -1;
	}
	return 0;
}

static int tt_teardown(void **state)
{
	(void)state;
	return tt_run("rm -rf %.*s", (int)(strrchr(tt_dir, '/') - tt_dir), tt_dir);
}

/* A context for DIR/NAME.crt and .key, trusting DIR's CA (ca_dir: another
 * CA's), with the CRL when crl. */
static SSL_CTX *tt_ctx_from(const char *dir, const char *name, const char *ca_dir, bool crl, char *err)
{
	char ca[TT_PATH], cert[TT_PATH], key[TT_PATH], crlp[TT_PATH], file[TT_PATH];
	tls_files f = {0};

	tt_path(ca, ca_dir, "ca.crt");
	if ((size_t)snprintf(file, sizeof file, "%s.crt", name) >= sizeof file)
		fail_msg("name %s is too long", name);
	tt_path(cert, dir, file);
	if ((size_t)snprintf(file, sizeof file, "%s.key", name) >= sizeof file)
		fail_msg("name %s is too long", name);
	tt_path(key, dir, file);
	tt_path(crlp, ca_dir, "ca.crl");
	f.ca = ca;
	f.cert = cert;
	f.key = key;
	f.crl = crl ? crlp : NULL;
	return tls_ctx_new(&f, err, TLS_ERR_SIZE);
}

static SSL_CTX *tt_ctx(const char *name)
{
	char err[TLS_ERR_SIZE];
	SSL_CTX *ctx = tt_ctx_from(tt_dir, name, tt_dir, true, err);

	if (ctx == NULL)
		fail_msg("tls_ctx_new(%s): %s", name, err);
	return ctx;
}

/* Moves what from has for the peer into to, in pieces of at most piece
 * bytes (1: byte by byte); returns the bytes moved. */
static size_t tt_move(tls_conn *from, tls_conn *to, size_t piece)
{
	static uint8_t buf[TT_CHUNK];
	size_t n, moved = 0;

	while ((n = tls_conn_out_take(from, buf, sizeof buf)) > 0) {
		for (size_t at = 0; at < n; at += piece)
			assert_int_equal(tls_conn_feed(to, buf + at, n - at < piece ? n - at : piece),
					 TLS_OK);
		moved += n;
	}
	return moved;
}

/* Runs both handshakes until nothing moves; returns the server's and
 * client's last results. A side that already completed is driven by
 * reading, which is how a TLS 1.3 client learns that the server refused
 * its certificate (the server verifies it after the client is done). */
static void tt_handshake(tls_conn *s, tls_conn *c, size_t piece, int *rs, int *rc)
{
	uint8_t sink[16];
	size_t n;

	*rs = *rc = TLS_AGAIN;
	for (int round = 0; round < TT_ROUNDS_MAX; round++) {
		size_t moved = 0;

		if (*rc == TLS_AGAIN)
			*rc = tls_conn_handshake(c);
		else if (*rc == TLS_OK && tls_conn_read(c, sink, sizeof sink, &n) == TLS_ERROR)
			*rc = TLS_ERROR;
		moved += tt_move(c, s, piece);
		if (*rs == TLS_AGAIN)
			*rs = tls_conn_handshake(s);
		moved += tt_move(s, c, piece);
		if (moved == 0 && *rs != TLS_AGAIN && *rc != TLS_AGAIN)
			return;
	}
	fail_msg("handshake did not settle in %d rounds", TT_ROUNDS_MAX);
}

typedef struct tt_pair {
	SSL_CTX *sctx, *cctx;
	tls_conn s, c;
	int rs, rc;
} tt_pair;

static void tt_show(const char *what, const tt_pair *p)
{
	print_message("%s: server %d \"%s\", client %d \"%s\"\n", what, p->rs, p->s.err, p->rc, p->c.err);
}

static void tt_open(tt_pair *p, SSL_CTX *sctx, SSL_CTX *cctx, size_t piece)
{
	char err[TLS_ERR_SIZE];

	p->sctx = sctx;
	p->cctx = cctx;
	assert_int_equal(tls_conn_init(&p->s, sctx, true, err, sizeof err), 0);
	assert_int_equal(tls_conn_init(&p->c, cctx, false, err, sizeof err), 0);
	tt_handshake(&p->s, &p->c, piece, &p->rs, &p->rc);
	if (p->rs != TLS_OK || p->rc != TLS_OK)
		tt_show("refused", p);
}

static void tt_close(tt_pair *p)
{
	tls_conn_free(&p->s);
	tls_conn_free(&p->c);
	SSL_CTX_free(p->sctx);
	SSL_CTX_free(p->cctx);
}

/* Sends len bytes from a to b in pieces and checks they arrive intact. */
static void tt_transfer(tls_conn *a, tls_conn *b, size_t len, size_t piece)
{
	uint8_t *msg = malloc(len), *got = malloc(len);
	size_t have = 0, n;
	int r;

	assert_non_null(msg);
	assert_non_null(got);
	for (size_t i = 0; i < len; i++)
		msg[i] = (uint8_t)(i * 7 + 3);
	assert_int_equal(tls_conn_write(a, msg, len), TLS_OK);
	tt_move(a, b, piece);
	while ((r = tls_conn_read(b, got + have, len - have, &n)) == TLS_OK && (have += n) < len)
		;
	assert_int_equal(have, len);
	assert_memory_equal(msg, got, len);
	/* Nothing more buffered. */
	assert_int_equal(tls_conn_read(b, got, len, &n), TLS_AGAIN);
	free(msg);
	free(got);
}

static void test_members_both_ways(void **state)
{
	tt_pair p;
	tls_identity id;

	(void)state;
	tt_open(&p, tt_ctx("node1"), tt_ctx("node2"), TT_CHUNK);
	assert_int_equal(p.rs, TLS_OK);
	assert_int_equal(p.rc, TLS_OK);
	tls_conn_peer(&p.s, &id);
	assert_int_equal(id.role, TLS_ROLE_MEMBER);
	assert_int_equal(id.member_id, 2);
	tls_conn_peer(&p.c, &id);
	assert_int_equal(id.role, TLS_ROLE_MEMBER);
	assert_int_equal(id.member_id, 1);
	tt_transfer(&p.c, &p.s, 100000, TT_CHUNK); /* several records */
	tt_transfer(&p.s, &p.c, 5, TT_CHUNK);
	/* A clean close reads as TLS_CLOSED on the other side. */
	tls_conn_shutdown(&p.c);
	tt_move(&p.c, &p.s, TT_CHUNK);
	{
		uint8_t b[8];
		size_t n;

		assert_int_equal(tls_conn_read(&p.s, b, sizeof b, &n), TLS_CLOSED);
	}
	tt_close(&p);
}

static void test_one_byte_at_a_time(void **state)
{
	tt_pair p;
	tls_identity id;

	(void)state;
	tt_open(&p, tt_ctx("node3"), tt_ctx("admin"), 1);
	assert_int_equal(p.rs, TLS_OK);
	assert_int_equal(p.rc, TLS_OK);
	tls_conn_peer(&p.s, &id);
	assert_int_equal(id.role, TLS_ROLE_ADMIN);
	tt_transfer(&p.c, &p.s, 3000, 1);
	tt_transfer(&p.s, &p.c, 3000, 1);
	tt_close(&p);
}

static void test_client_role(void **state)
{
	tt_pair p;
	tls_identity id;

	(void)state;
	tt_open(&p, tt_ctx("node1"), tt_ctx("client"), TT_CHUNK);
	assert_int_equal(p.rs, TLS_OK);
	tls_conn_peer(&p.s, &id);
	assert_int_equal(id.role, TLS_ROLE_CLIENT);
	assert_string_equal(tls_role_name(id.role), "client");
	tt_close(&p);
}

static void test_wrong_ca(void **state)
{
	char err[TLS_ERR_SIZE];
	tt_pair p;

	(void)state;
	/* A client from another CA: the server refuses it ... */
	tt_open(&p, tt_ctx("node1"), tt_ctx_from(tt_other, "node1", tt_dir, false, err), TT_CHUNK);
	assert_int_equal(p.rs, TLS_ERROR);
	assert_non_null(strstr(p.s.err, "unable to get local issuer certificate"));
	assert_int_equal(p.rc, TLS_ERROR);
	tt_close(&p);
	/* ... and a client refuses a server from another CA. */
	tt_open(&p, tt_ctx_from(tt_other, "node1", tt_other, false, err), tt_ctx("node2"), TT_CHUNK);
	assert_int_equal(p.rc, TLS_ERROR);
	assert_non_null(strstr(p.c.err, "failed verification"));
	assert_int_equal(p.rs, TLS_ERROR);
	tt_close(&p);
}

static void test_expired(void **state)
{
	tt_pair p;

	(void)state;
	tt_open(&p, tt_ctx("node1"), tt_ctx("expired"), TT_CHUNK);
	assert_int_equal(p.rs, TLS_ERROR);
	assert_non_null(strstr(p.s.err, "certificate has expired"));
	assert_int_equal(p.rc, TLS_ERROR);
	tt_close(&p);
	/* An expired server is refused by the client. */
	tt_open(&p, tt_ctx("expired"), tt_ctx("node1"), TT_CHUNK);
	assert_int_equal(p.rc, TLS_ERROR);
	assert_non_null(strstr(p.c.err, "certificate has expired"));
	tt_close(&p);
}

static void test_revoked(void **state)
{
	char err[TLS_ERR_SIZE];
	tt_pair p;

	(void)state;
	tt_open(&p, tt_ctx("node1"), tt_ctx("revoked"), TT_CHUNK);
	assert_int_equal(p.rs, TLS_ERROR);
	assert_non_null(strstr(p.s.err, "certificate revoked"));
	tt_close(&p);
	/* Positive control: the same certificate passes a server without the CRL ... */
	tt_open(&p, tt_ctx_from(tt_dir, "node1", tt_dir, false, err), tt_ctx("revoked"), TT_CHUNK);
	assert_int_equal(p.rs, TLS_OK);
	assert_int_equal(p.rc, TLS_OK);
	/* ... which verifies it again when it reads the CRL (SIGHUP), and
	 * refuses it now, while the client's view of the server is still good. */
	{
		SSL_CTX *with_crl = tt_ctx("node1");

		assert_int_equal(tls_conn_reverify(&p.s, p.sctx, err, sizeof err), 0);
		assert_int_equal(tls_conn_reverify(&p.s, with_crl, err, sizeof err), -1);
		assert_non_null(strstr(err, "certificate revoked"));
		assert_int_equal(tls_conn_reverify(&p.c, with_crl, err, sizeof err), 0);
		/* And a context of another CA refuses both. */
		SSL_CTX_free(with_crl);
		with_crl = tt_ctx_from(tt_other, "node1", tt_other, false, err);
		assert_int_equal(tls_conn_reverify(&p.c, with_crl, err, sizeof err), -1);
		assert_non_null(strstr(err, "failed verification"));
		SSL_CTX_free(with_crl);
	}
	tt_close(&p);
}

static void test_no_client_cert(void **state)
{
	char ca[TT_PATH];
	SSL_CTX *bare = SSL_CTX_new(TLS_method());
	tt_pair p;

	(void)state;
	tt_path(ca, tt_dir, "ca.crt");
	assert_non_null(bare);
	assert_int_equal(SSL_CTX_load_verify_locations(bare, ca, NULL), 1);
	SSL_CTX_set_verify(bare, SSL_VERIFY_PEER, NULL);
	tt_open(&p, tt_ctx("node1"), bare, TT_CHUNK);
	assert_int_equal(p.rs, TLS_ERROR);
	assert_non_null(strstr(p.s.err, "certificate"));
	assert_int_equal(p.rc, TLS_ERROR);
	tt_close(&p);
}

static void test_plaintext_refused(void **state)
{
	static const char junk[] = "\x00\x00\x00\x00\x00\x00\x00\x01 not TLS at all, a Raft message";
	char err[TLS_ERR_SIZE];
	tls_conn s;
	SSL_CTX *ctx = tt_ctx("node1");

	(void)state;
	assert_int_equal(tls_conn_init(&s, ctx, true, err, sizeof err), 0);
	assert_int_equal(tls_conn_feed(&s, junk, sizeof junk - 1), TLS_OK);
	assert_int_equal(tls_conn_handshake(&s), TLS_ERROR);
	assert_true(s.err[0] != '\0');
	tls_conn_free(&s);
	SSL_CTX_free(ctx);
}

static void test_ctx_errors(void **state)
{
	char ca[TT_PATH], cert[TT_PATH], key[TT_PATH], other_key[TT_PATH], err[TLS_ERR_SIZE];
	tls_files f;

	(void)state;
	tt_path(ca, tt_dir, "ca.crt");
	tt_path(cert, tt_dir, "node1.crt");
	tt_path(key, tt_dir, "node1.key");
	tt_path(other_key, tt_dir, "node2.key");
	f = (tls_files){ca, cert, key, NULL, NULL};
	/* Missing settings name them. */
	f.ca = "";
	assert_null(tls_ctx_new(&f, err, sizeof err));
	assert_non_null(strstr(err, "tls-ca"));
	f.ca = "/nonexistent/ca.crt";
	assert_null(tls_ctx_new(&f, err, sizeof err));
	assert_non_null(strstr(err, "tls-ca /nonexistent/ca.crt"));
	f.ca = ca;
	/* A key that is not the certificate's. */
	f.key = other_key;
	assert_null(tls_ctx_new(&f, err, sizeof err));
	assert_non_null(strstr(err, "not the key of tls-cert"));
	f.key = key;
	/* A key others can read. */
	assert_int_equal(chmod(key, 0644), 0);
	assert_null(tls_ctx_new(&f, err, sizeof err));
	assert_non_null(strstr(err, "chmod 600"));
	assert_int_equal(chmod(key, 0600), 0);
	/* A CRL file that holds none. */
	f.crl = ca;
	assert_null(tls_ctx_new(&f, err, sizeof err));
	assert_non_null(strstr(err, "tls-crl"));
	f.crl = NULL;
	/* A caller's own names for the settings (tsoracle-ctl's flags,
	 * PostgreSQL's GUCs) are the ones a refusal names. */
	{
		static const char *const names[TLS_N_SETTINGS] = {"--ca", "--cert", "--key", "--crl"};

		f.names = names;
		f.key = other_key;
		assert_null(tls_ctx_new(&f, err, sizeof err));
		assert_non_null(strstr(err, "--key "));
		assert_non_null(strstr(err, "not the key of --cert"));
		assert_null(strstr(err, "tls-cert"));
		f.key = key;
		f.ca = "";
		assert_null(tls_ctx_new(&f, err, sizeof err));
		assert_non_null(strstr(err, "TLS needs --ca, --cert and --key"));
		f.ca = ca;
		f.names = NULL;
	}
	/* Positive control: the same files, put right, load. */
	{
		SSL_CTX *ctx = tls_ctx_new(&f, err, sizeof err);

		if (ctx == NULL)
			fail_msg("%s", err);
		SSL_CTX_free(ctx);
	}
}

/* An unsigned certificate with the given OU (NULL: none) and CN. */
static X509 *tt_subject(const char *ou, const char *ou2, const char *cn)
{
	X509 *x = X509_new();
	X509_NAME *name = X509_get_subject_name(x);

	assert_non_null(x);
	if (ou != NULL)
		X509_NAME_add_entry_by_txt(name, "OU", MBSTRING_ASC, (const unsigned char *)ou, -1, -1, 0);
	if (ou2 != NULL)
		X509_NAME_add_entry_by_txt(name, "OU", MBSTRING_ASC, (const unsigned char *)ou2, -1, -1, 0);
	if (cn != NULL)
		X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	return x;
}

static void tt_expect(const char *ou, const char *ou2, const char *cn, enum tls_role role, uint64_t id)
{
	X509 *x = tt_subject(ou, ou2, cn);
	tls_identity got;

	tls_cert_identity(x, &got);
	if (got.role != role || got.member_id != id)
		fail_msg("OU=%s,%s CN=%s: role %s id %" PRIu64 ", expected %s id %" PRIu64, ou ? ou : "-",
			 ou2 ? ou2 : "-", cn ? cn : "-", tls_role_name(got.role), got.member_id,
			 tls_role_name(role), id);
	X509_free(x);
}

static void test_identity_convention(void **state)
{
	(void)state;
	tt_expect("member", NULL, "member-1", TLS_ROLE_MEMBER, 1);
	tt_expect("member", NULL, "member-4294967295", TLS_ROLE_MEMBER, 4294967295u);
	tt_expect("member", NULL, "member-18446744073709551615", TLS_ROLE_MEMBER, UINT64_MAX);
	tt_expect("member", NULL, "member-18446744073709551616", TLS_ROLE_NONE, 0);
	tt_expect("member", NULL, "member-0", TLS_ROLE_NONE, 0);
	tt_expect("member", NULL, "member-01", TLS_ROLE_NONE, 0);
	tt_expect("member", NULL, "member-", TLS_ROLE_NONE, 0);
	tt_expect("member", NULL, "member-2x", TLS_ROLE_NONE, 0);
	tt_expect("member", NULL, "member-+2", TLS_ROLE_NONE, 0);
	tt_expect("member", NULL, "node-2", TLS_ROLE_NONE, 0);
	tt_expect("member", NULL, NULL, TLS_ROLE_NONE, 0);
	tt_expect("admin", NULL, "alice", TLS_ROLE_ADMIN, 0);
	tt_expect("client", NULL, "app", TLS_ROLE_CLIENT, 0);
	/* A client certificate's CN does not make it a member. */
	tt_expect("client", NULL, "member-2", TLS_ROLE_CLIENT, 0);
	/* Two OUs, or none, or an unknown one: no role. */
	tt_expect("admin", "member", "member-2", TLS_ROLE_NONE, 0);
	tt_expect(NULL, NULL, "member-2", TLS_ROLE_NONE, 0);
	tt_expect("Admin", NULL, "x", TLS_ROLE_NONE, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_members_both_ways), cmocka_unit_test(test_one_byte_at_a_time),
	    cmocka_unit_test(test_client_role),       cmocka_unit_test(test_wrong_ca),
	    cmocka_unit_test(test_expired),           cmocka_unit_test(test_revoked),
	    cmocka_unit_test(test_no_client_cert),    cmocka_unit_test(test_plaintext_refused),
	    cmocka_unit_test(test_ctx_errors),        cmocka_unit_test(test_identity_convention),
	};
	return cmocka_run_group_tests_name("tls", tests, tt_setup, tt_teardown);
}
