/* tls.c: TLS 1.3 through OpenSSL over memory buffers (see tls.h). */
#include "tls.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "err.h"

#define TLS_DECIMAL_MAX 20 /* digits of the largest uint64_t */

const char *const tls_daemon_names[TLS_N_SETTINGS] = {"tls-ca", "tls-cert", "tls-key", "tls-crl"};

/* The reason OpenSSL gave for its last error ("" if none), and a clean
 * queue for the next call. */
static const char *tls_last_reason(void)
{
	unsigned long code = ERR_peek_last_error();
	const char *reason = code != 0 ? ERR_reason_error_string(code) : NULL;

	ERR_clear_error();
	return reason != NULL ? reason : "unknown OpenSSL error";
}

/* A file OpenSSL is about to read: a missing or unreadable one is named
 * with the system's reason (OpenSSL's own would be "system lib"). */
static int tls_check_readable(const char *name, const char *path, char *err, size_t errlen)
{
	FILE *fp = fopen(path, "r");

	if (fp == NULL)
		return err_set(err, errlen, "%s %s: %s", name, path, strerror(errno));
	fclose(fp);
	return 0;
}

/* A private key readable by anyone but its owner is a key others may hold:
 * refuse it, as PostgreSQL and ssh do. */
static int tls_check_key_mode(const char *name, const char *path, char *err, size_t errlen)
{
	struct stat st;

	if (stat(path, &st) != 0)
		return err_set(err, errlen, "%s %s: %s", name, path, strerror(errno));
	if ((st.st_mode & 077) != 0)
		return err_set(err, errlen, "%s %s can be read by group or others (mode %04o): chmod 600 %s",
			       name, path, (unsigned)(st.st_mode & 07777), path);
	return 0;
}

SSL_CTX *tls_ctx_new(const tls_files *f, char *err, size_t errlen)
{
	SSL_CTX *ctx;
	X509_STORE *store;
	tls_identity self;
	const char *const *name = f->names != NULL ? f->names : tls_daemon_names;

	ERR_clear_error();
	if (f->ca == NULL || f->ca[0] == '\0' || f->cert == NULL || f->cert[0] == '\0' || f->key == NULL ||
	    f->key[0] == '\0') {
		err_set(err, errlen, "TLS needs %s, %s and %s (scripts/certs.sh makes them)",
			name[TLS_SET_CA], name[TLS_SET_CERT], name[TLS_SET_KEY]);
		return NULL;
	}
	if (tls_check_readable(name[TLS_SET_CA], f->ca, err, errlen) != 0 ||
	    tls_check_readable(name[TLS_SET_CERT], f->cert, err, errlen) != 0 ||
	    tls_check_key_mode(name[TLS_SET_KEY], f->key, err, errlen) != 0 ||
	    tls_check_readable(name[TLS_SET_KEY], f->key, err, errlen) != 0 ||
	    (f->crl != NULL && f->crl[0] != '\0' &&
	     tls_check_readable(name[TLS_SET_CRL], f->crl, err, errlen) != 0))
		return NULL;
	ctx = SSL_CTX_new(TLS_method());
	if (ctx == NULL) {
		err_set(err, errlen, "SSL_CTX_new: %s", tls_last_reason());
		return NULL;
	}
	/* TLS 1.3 only: no negotiation down to older versions or ciphers. */
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1) {
		err_set(err, errlen, "TLS 1.3 is not available: %s", tls_last_reason());
		goto fail;
	}
	/* No resumption: every connection presents and verifies certificates
	 * against the files in force now (a revoked one cannot resume). */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	if (SSL_CTX_load_verify_locations(ctx, f->ca, NULL) != 1) {
		err_set(err, errlen, "%s %s: %s", name[TLS_SET_CA], f->ca, tls_last_reason());
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, f->cert) != 1) {
		err_set(err, errlen, "%s %s: %s", name[TLS_SET_CERT], f->cert, tls_last_reason());
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, f->key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		err_set(err, errlen, "%s %s: %s (or it is not the key of %s %s)", name[TLS_SET_KEY], f->key,
			tls_last_reason(), name[TLS_SET_CERT], f->cert);
		goto fail;
	}
	if (f->crl != NULL && f->crl[0] != '\0') {
		X509_LOOKUP *lookup;

		store = SSL_CTX_get_cert_store(ctx);
		lookup = X509_STORE_add_lookup(store, X509_LOOKUP_file());
		if (lookup == NULL || X509_load_crl_file(lookup, f->crl, X509_FILETYPE_PEM) < 1) {
			err_set(err, errlen, "%s %s: %s", name[TLS_SET_CRL], f->crl, tls_last_reason());
			goto fail;
		}
		X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
	}
	/* Both sides verify; a server refuses a client that shows nothing. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	if (tls_ctx_identity(ctx, &self) != 0 || self.role == TLS_ROLE_NONE) {
		err_set(err, errlen,
			"%s %s names no role (its subject needs OU=member with CN=member-<id>, "
			"OU=admin or OU=client; scripts/certs.sh makes such certificates)",
			name[TLS_SET_CERT], f->cert);
		goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

const char *tls_role_name(enum tls_role role)
{
	switch (role) {
	case TLS_ROLE_MEMBER:
		return "member";
	case TLS_ROLE_ADMIN:
		return "admin";
	case TLS_ROLE_CLIENT:
		return "client";
	case TLS_ROLE_NONE:
		break;
	}
	return "none";
}

/* The only entry for nid in name, as a NUL-free string; false if there is
 * not exactly one. */
static bool tls_name_entry(X509_NAME *name, int nid, char *out, size_t cap)
{
	int at = X509_NAME_get_index_by_NID(name, nid, -1);
	const ASN1_STRING *s;
	int len;

	out[0] = '\0';
	if (at < 0 || X509_NAME_get_index_by_NID(name, nid, at) >= 0)
		return false;
	s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, at));
	len = ASN1_STRING_length(s);
	if (len <= 0 || (size_t)len >= cap || memchr(ASN1_STRING_get0_data(s), '\0', (size_t)len) != NULL)
		return false;
	memcpy(out, ASN1_STRING_get0_data(s), (size_t)len);
	out[len] = '\0';
	return true;
}

/* "member-<id>": decimal, no sign, no leading zero, no overflow. */
static bool tls_parse_member_cn(const char *cn, uint64_t *id)
{
	const char *p = cn + strlen(TLS_MEMBER_CN_PREFIX);
	uint64_t v = 0;
	size_t n = 0;

	if (strncmp(cn, TLS_MEMBER_CN_PREFIX, strlen(TLS_MEMBER_CN_PREFIX)) != 0 || *p < '1' || *p > '9')
		return false;
	for (; *p != '\0'; p++, n++) {
		if (*p < '0' || *p > '9' || n >= TLS_DECIMAL_MAX ||
		    v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			return false;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	*id = v;
	return true;
}

void tls_cert_identity(X509 *cert, tls_identity *out)
{
	X509_NAME *name;
	char ou[TLS_NAME_MAX];

	memset(out, 0, sizeof *out);
	if (cert == NULL)
		return;
	name = X509_get_subject_name(cert);
	if (!tls_name_entry(name, NID_commonName, out->cn, sizeof out->cn))
		snprintf(out->cn, sizeof out->cn, "(no single CN)");
	if (!tls_name_entry(name, NID_organizationalUnitName, ou, sizeof ou))
		return;
	if (strcmp(ou, "member") == 0 && tls_parse_member_cn(out->cn, &out->member_id))
		out->role = TLS_ROLE_MEMBER;
	else if (strcmp(ou, "admin") == 0)
		out->role = TLS_ROLE_ADMIN;
	else if (strcmp(ou, "client") == 0)
		out->role = TLS_ROLE_CLIENT;
}

int tls_ctx_identity(SSL_CTX *ctx, tls_identity *out)
{
	X509 *cert = SSL_CTX_get0_certificate(ctx);

	tls_cert_identity(cert, out);
	return cert != NULL ? 0 : -1;
}

int tls_conn_init(tls_conn *c, SSL_CTX *ctx, bool server, char *err, size_t errlen)
{
	memset(c, 0, sizeof *c);
	ERR_clear_error();
	c->server = server;
	c->ssl = SSL_new(ctx);
	c->in = BIO_new(BIO_s_mem());
	c->out = BIO_new(BIO_s_mem());
	if (c->ssl == NULL || c->in == NULL || c->out == NULL) {
		BIO_free(c->in);
		BIO_free(c->out);
		SSL_free(c->ssl);
		memset(c, 0, sizeof *c);
		return err_set(err, errlen, "TLS: out of memory (%s)", tls_last_reason());
	}
	/* An empty input buffer means "wait for more", not end of stream. */
	BIO_set_mem_eof_return(c->in, -1);
	SSL_set_bio(c->ssl, c->in, c->out); /* the SSL owns both BIOs now */
	if (server)
		SSL_set_accept_state(c->ssl);
	else
		SSL_set_connect_state(c->ssl);
	return 0;
}

void tls_conn_free(tls_conn *c)
{
	if (c->ssl != NULL)
		SSL_free(c->ssl); /* and both BIOs */
	memset(c, 0, sizeof *c);
}

int tls_conn_feed(tls_conn *c, const void *data, size_t len)
{
	size_t written = 0;

	if (len == 0)
		return TLS_OK;
	if (BIO_write_ex(c->in, data, len, &written) != 1 || written != len) {
		err_set(c->err, sizeof c->err, "TLS: out of memory buffering %zu bytes", len);
		ERR_clear_error();
		return TLS_ERROR;
	}
	return TLS_OK;
}

/* Turns an OpenSSL failure of call's result r into a tls_result, with the
 * most useful reason in c->err: the verification error for the peer's
 * certificate, else the alert or error OpenSSL names. */
static int tls_result_of(tls_conn *c, int r)
{
	int e = SSL_get_error(c->ssl, r);
	long verify;

	if (e == SSL_ERROR_WANT_READ) {
		ERR_clear_error();
		return TLS_AGAIN;
	}
	if (e == SSL_ERROR_ZERO_RETURN) {
		ERR_clear_error();
		return TLS_CLOSED;
	}
	verify = SSL_get_verify_result(c->ssl);
	if (verify != X509_V_OK)
		err_set(c->err, sizeof c->err, "its certificate failed verification: %s",
			X509_verify_cert_error_string(verify));
	else
		err_set(c->err, sizeof c->err, "TLS: %s", tls_last_reason());
	ERR_clear_error();
	return TLS_ERROR;
}

int tls_conn_handshake(tls_conn *c)
{
	int r;

	if (c->established)
		return TLS_OK;
	ERR_clear_error();
	r = SSL_do_handshake(c->ssl);
	if (r == 1) {
		c->established = true;
		return TLS_OK;
	}
	return tls_result_of(c, r);
}

int tls_conn_read(tls_conn *c, void *buf, size_t cap, size_t *n)
{
	int r;

	*n = 0;
	/* Nothing fed and not yet read, nothing buffered or decrypted, no
	 * close_notify to report: SSL_read could only answer TLS_AGAIN, at the
	 * price of a pass through the record layer and two ERR_clear_error
	 * calls. Every reader drains until TLS_AGAIN, so this is the last call
	 * of each read callback (docs/performance.md, 1,000 TLS clients). */
	if (BIO_ctrl_pending(c->in) == 0 && !SSL_has_pending(c->ssl) &&
	    (SSL_get_shutdown(c->ssl) & SSL_RECEIVED_SHUTDOWN) == 0)
		return TLS_AGAIN;
	ERR_clear_error();
	r = SSL_read_ex(c->ssl, buf, cap, n);
	if (r == 1)
		return TLS_OK;
	return tls_result_of(c, r);
}

int tls_conn_write(tls_conn *c, const void *data, size_t len)
{
	size_t written = 0;
	int r;

	if (len == 0)
		return TLS_OK;
	ERR_clear_error();
	/* The output is a memory BIO: a write completes whole or fails. */
	r = SSL_write_ex(c->ssl, data, len, &written);
	if (r == 1 && written == len)
		return TLS_OK;
	if (r == 1)
		return err_set(c->err, sizeof c->err, "TLS: short write (%zu of %zu bytes)", written, len);
	return tls_result_of(c, r) == TLS_AGAIN
		   ? err_set(c->err, sizeof c->err, "TLS: write before handshake")
		   : TLS_ERROR;
}

void tls_conn_shutdown(tls_conn *c)
{
	ERR_clear_error();
	if (c->established)
		(void)SSL_shutdown(c->ssl);
	ERR_clear_error();
}

size_t tls_conn_out_pending(const tls_conn *c)
{
	return BIO_ctrl_pending(c->out);
}

size_t tls_conn_out_take(tls_conn *c, void *buf, size_t cap)
{
	size_t n = 0;

	if (cap == 0 || BIO_ctrl_pending(c->out) == 0)
		return 0;
	if (BIO_read_ex(c->out, buf, cap, &n) != 1)
		n = 0;
	ERR_clear_error();
	return n;
}

void tls_conn_peer(const tls_conn *c, tls_identity *out)
{
	tls_cert_identity(SSL_get0_peer_certificate(c->ssl), out);
}

int tls_conn_reverify(const tls_conn *c, SSL_CTX *ctx, char *err, size_t errlen)
{
	X509 *leaf = SSL_get0_peer_certificate(c->ssl);
	STACK_OF(X509) *chain = SSL_get_peer_cert_chain(c->ssl); /* a server's view lacks the leaf */
	X509_STORE_CTX *vctx;
	int ok;

	ERR_clear_error();
	if (leaf == NULL)
		return err_set(err, errlen, "it presented no certificate");
	vctx = X509_STORE_CTX_new();
	if (vctx == NULL || X509_STORE_CTX_init(vctx, SSL_CTX_get_cert_store(ctx), leaf, chain) != 1) {
		X509_STORE_CTX_free(vctx);
		return err_set(err, errlen, "TLS: out of memory (%s)", tls_last_reason());
	}
	/* The purpose the handshake checked: a client's certificate on the
	 * accepting side, a server's on the connecting side. */
	X509_STORE_CTX_set_default(vctx, c->server ? "ssl_client" : "ssl_server");
	ok = X509_verify_cert(vctx);
	if (ok != 1)
		err_set(err, errlen, "its certificate failed verification: %s",
			X509_verify_cert_error_string(X509_STORE_CTX_get_error(vctx)));
	X509_STORE_CTX_free(vctx);
	ERR_clear_error();
	return ok == 1 ? 0 : -1;
}
