/* tls.h: TLS 1.3 through OpenSSL over memory buffers, for an event loop that owns the sockets.
 *
 * A tls_conn never touches a socket. The caller feeds it the ciphertext it
 * read (tls_conn_feed), drives it (tls_conn_handshake, then tls_conn_read
 * for plaintext), gives it plaintext to send (tls_conn_write) and takes the
 * ciphertext to write out (tls_conn_out_take) whenever tls_conn_out_pending
 * says there is some. Nothing blocks: OpenSSL reads from and writes to two
 * memory BIOs, so a libuv read callback can feed it any number of bytes,
 * one at a time if the network delivers them so.
 *
 * Policy, the same for every use in tsoracle: TLS 1.3 only; both sides
 * present a certificate from the cluster's CA and both verify the other's
 * (a server refuses a client without one); an optional CRL file revokes
 * certificates (checked for the peer's certificate, X509_V_FLAG_CRL_CHECK).
 * Host names are not checked: identity is the certificate's subject below,
 * which each use checks against what it expects (sidecar/peer.h).
 *
 * Identity (docs/cluster.md, "TLS"): the subject's organizationalUnitName
 * (OU) is the role, exactly one of
 *   member   a cluster member; its commonName (CN) is "member-<id>", <id>
 *            its node id in decimal, without leading zeros
 *   admin    an operator: may also change leadership
 *   client   may take timestamps and read status
 * scripts/certs.sh makes such certificates. A certificate without exactly
 * one OU naming a role, or a member certificate whose CN is not
 * "member-<id>", has no role and is refused wherever a role is needed.
 *
 * Contexts: tls_ctx_new builds an SSL_CTX from the files; a connection keeps
 * a reference to the context it started with, so a caller may replace its
 * context at any time (SIGHUP) with SSL_CTX_free on the old one.
 */
#ifndef TSORACLE_TLS_H
#define TSORACLE_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#define TLS_MEMBER_CN_PREFIX "member-"
#define TLS_NAME_MAX         64  /* bytes of a subject's CN kept for logs */
#define TLS_ERR_SIZE         256 /* bytes of a tls_conn's error message */

/* The settings that name the files, in a tls_files' names (for messages). */
enum tls_setting { TLS_SET_CA, TLS_SET_CERT, TLS_SET_KEY, TLS_SET_CRL, TLS_N_SETTINGS };

/* The files a context is built from; crl may be NULL or "" (none). names:
 * what the user calls each setting, so that a refusal names the one to
 * change ("--ca" for tsoracle-ctl, "tsoracle.tls_ca" for PostgreSQL);
 * NULL: tsoracled's (tls_daemon_names). */
typedef struct tls_files {
	const char *ca;
	const char *cert;
	const char *key;
	const char *crl;
	const char *const *names; /* TLS_N_SETTINGS entries, or NULL */
} tls_files;

/* tsoracled's setting names: tls-ca, tls-cert, tls-key, tls-crl. */
extern const char *const tls_daemon_names[TLS_N_SETTINGS];

enum tls_role {
	TLS_ROLE_NONE = 0, /* no role: refused where one is needed */
	TLS_ROLE_MEMBER,
	TLS_ROLE_ADMIN,
	TLS_ROLE_CLIENT,
};

typedef struct tls_identity {
	enum tls_role role;
	uint64_t member_id;    /* TLS_ROLE_MEMBER: the id in its CN */
	char cn[TLS_NAME_MAX]; /* for logs */
} tls_identity;

/* Results of the tls_conn calls. */
enum tls_result {
	TLS_OK = 0,     /* done (read: bytes returned) */
	TLS_AGAIN = 1,  /* needs more ciphertext from the peer */
	TLS_CLOSED = 2, /* the peer ended the session cleanly (close_notify) */
	TLS_ERROR = -1, /* fatal: the message is in the tls_conn's err */
};

/* A context from the files (PEM): TLS 1.3 only, peer verification on both
 * sides, the CRL if given; checks that the key matches the certificate and
 * that the key file is not readable by group or others. NULL with a
 * message naming the file and the setting (f->names) in err. */
SSL_CTX *tls_ctx_new(const tls_files *f, char *err, size_t errlen);

/* The identity in this context's own certificate. */
int tls_ctx_identity(SSL_CTX *ctx, tls_identity *out);

/* The identity a certificate names (see above). Never fails: a certificate
 * that follows no convention gets TLS_ROLE_NONE. */
void tls_cert_identity(X509 *cert, tls_identity *out);

const char *tls_role_name(enum tls_role role);

typedef struct tls_conn {
	SSL *ssl;
	BIO *in;  /* ciphertext from the peer, read by OpenSSL */
	BIO *out; /* ciphertext for the peer, written by OpenSSL */
	bool server;
	bool established;
	char err[TLS_ERR_SIZE];
} tls_conn;

/* A connection on ctx (which it references); server: the accepting side.
 * 0, or -1 with a message in err. */
int tls_conn_init(tls_conn *c, SSL_CTX *ctx, bool server, char *err, size_t errlen);
void tls_conn_free(tls_conn *c);

/* Ciphertext read from the peer. TLS_OK or TLS_ERROR (out of memory). */
int tls_conn_feed(tls_conn *c, const void *data, size_t len);

/* Advances the handshake with what was fed: TLS_OK once it is complete and
 * the peer's certificate verified (tls_conn_peer then tells who it is),
 * TLS_AGAIN while more is needed, TLS_ERROR if it failed (c->err says why:
 * the verification error, or the alert the peer sent). Send what
 * tls_conn_out_pending says after every call, whatever it returned: a
 * failing side's alert tells the peer why. */
int tls_conn_handshake(tls_conn *c);

/* Plaintext, after the handshake: TLS_OK with *n > 0 bytes in buf,
 * TLS_AGAIN when nothing complete is buffered, TLS_CLOSED, TLS_ERROR. */
int tls_conn_read(tls_conn *c, void *buf, size_t cap, size_t *n);

/* Encrypts len bytes of plaintext (after the handshake) into the outgoing
 * buffer. TLS_OK or TLS_ERROR. */
int tls_conn_write(tls_conn *c, const void *data, size_t len);

/* Starts a clean close (close_notify) into the outgoing buffer. */
void tls_conn_shutdown(tls_conn *c);

/* Ciphertext waiting to be sent, and taking up to cap bytes of it. */
size_t tls_conn_out_pending(const tls_conn *c);
size_t tls_conn_out_take(tls_conn *c, void *buf, size_t cap);

/* After the handshake: the peer's identity. */
void tls_conn_peer(const tls_conn *c, tls_identity *out);

/* After the handshake: verifies the peer's certificate again, against
 * ctx's CA and CRL (a context loaded since, SIGHUP), so that a connection
 * made before a certificate was revoked or its CA dropped can be ended.
 * 0, or -1 with the verification error in err. */
int tls_conn_reverify(const tls_conn *c, SSL_CTX *ctx, char *err, size_t errlen);

#endif /* TSORACLE_TLS_H */
