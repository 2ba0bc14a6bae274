/*-------------------------------------------------------------------------
 *
 * worker_tls.c
 *		The tsoracle worker's TLS to a sidecar's TCP address: the context
 *		built from the tsoracle.tls_* settings, the rule that plaintext
 *		leaves this host only over loopback, and who the sidecar must be.
 *
 * The session itself is common/tls.c (TLS 1.3 over memory buffers, the
 * same code tsoracled runs on its client port and for forwarding): the
 * worker reads and writes its non-blocking socket as before and hands the
 * ciphertext to the session (worker_conn.c), so nothing here blocks the
 * worker's loop.
 *
 * Policy (the daemon's, docs/cluster.md "TLS"): tsoracled refuses to start
 * with a client-tcp off loopback and no TLS, so a worker speaking plaintext
 * to such an address could only be speaking to something else; the worker
 * refuses it before connecting. On loopback it speaks plaintext unless the
 * tsoracle.tls_* settings are set (a sidecar whose loopback port runs TLS
 * then refuses the plaintext, and the worker's error says which settings
 * to set). With TLS, the sidecar must present a certificate of the
 * configured CA naming a member (OU=member, CN=member-<id>), and the node
 * id it announces in TP_HELLO_OK must be that <id>.
 *
 * src/worker_tls.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include "tls.h"
#include "tsoracle.h"
#include "worker_int.h"

/* What the user calls each file (tls_files.names): the settings to change. */
static const char *const worker_tls_names[TLS_N_SETTINGS] = {
	"tsoracle.tls_ca", "tsoracle.tls_cert", "tsoracle.tls_key", "tsoracle.tls_crl"
};

/* The settings' values now, in tls_setting order. */
static void
worker_tls_values(const char *val[TLS_N_SETTINGS])
{
	val[TLS_SET_CA] = tsoracle_tls_ca != NULL ? tsoracle_tls_ca : "";
	val[TLS_SET_CERT] = tsoracle_tls_cert != NULL ? tsoracle_tls_cert : "";
	val[TLS_SET_KEY] = tsoracle_tls_key != NULL ? tsoracle_tls_key : "";
	val[TLS_SET_CRL] = tsoracle_tls_crl != NULL ? tsoracle_tls_crl : "";
}

static void
worker_tls_remember(const char *val[TLS_N_SETTINGS])
{
	int			i;

	for (i = 0; i < TLS_N_SETTINGS; i++)
		strlcpy(ws->tls_settings[i], val[i], sizeof(ws->tls_settings[i]));
}

/*
 * Builds the context from the settings (at start and at every reload: the
 * files are reread, so files replaced in place are rotated). A reload that
 * cannot load them keeps the context read before, as PostgreSQL does with
 * its own ssl_* files and tsoracled with its tls-*: a typo must not cut
 * the server off its timestamps. Returns true when the connection must be
 * made again: TLS was turned on or off or its settings name other files.
 * With the same settings, an open connection is checked against the
 * reloaded CA and CRL and dropped if its sidecar no longer passes.
 */
bool
worker_tls_reload(bool at_start)
{
	const char *val[TLS_N_SETTINGS];
	bool		changed = false;
	bool		wanted = false;
	char		err[RING_ERROR_LEN];
	SSL_CTX    *ctx = NULL;
	int			i;

	worker_tls_values(val);
	for (i = 0; i < TLS_N_SETTINGS; i++)
	{
		if (strcmp(val[i], ws->tls_settings[i]) != 0)
			changed = true;
		if (val[i][0] != '\0')
			wanted = true;
	}

	if (!wanted)
	{
		if (ws->tls_ctx != NULL)
			SSL_CTX_free(ws->tls_ctx);
		ws->tls_ctx = NULL;
		ws->tls_wanted = false;
		ws->tls_ctx_err[0] = '\0';
		worker_tls_remember(val);
		return changed;
	}

	for (i = TLS_SET_CA; i <= TLS_SET_KEY; i++)
	{
		if (val[i][0] == '\0')
		{
			snprintf(err, sizeof(err),
					 "%s is not set: tsoracle.tls_ca, tsoracle.tls_cert and tsoracle.tls_key go together (tsoracle.tls_crl is optional)",
					 worker_tls_names[i]);
			break;
		}
	}
	if (i > TLS_SET_KEY)
	{
		tls_files	f = {val[TLS_SET_CA], val[TLS_SET_CERT], val[TLS_SET_KEY],
		val[TLS_SET_CRL], worker_tls_names};

		ctx = tls_ctx_new(&f, err, sizeof(err));
	}

	if (ctx == NULL)
	{
		if (ws->tls_ctx != NULL)
		{
			ereport(LOG,
					(errmsg("tsoracle worker could not reload its TLS files: %s", err),
					 errdetail("The worker keeps using the certificates it read before.")));
			return false;
		}
		ereport(LOG,
				(errmsg("tsoracle worker cannot use TLS: %s", err),
				 errdetail("Connections to a TCP sidecar address fail until the settings are corrected and reloaded.")));
		ws->tls_wanted = true;
		strlcpy(ws->tls_ctx_err, err, sizeof(ws->tls_ctx_err));
		worker_tls_remember(val);
		return changed;
	}

	if (ws->tls_ctx != NULL)
		SSL_CTX_free(ws->tls_ctx);	/* a live session keeps its own reference */
	ws->tls_ctx = ctx;
	ws->tls_wanted = true;
	ws->tls_ctx_err[0] = '\0';
	worker_tls_remember(val);
	if (!at_start)
		ereport(LOG,
				(errmsg("tsoracle worker reloaded tsoracle.tls_ca \"%s\", tsoracle.tls_cert \"%s\", tsoracle.tls_key \"%s\"%s%s%s",
						val[TLS_SET_CA], val[TLS_SET_CERT], val[TLS_SET_KEY],
						val[TLS_SET_CRL][0] != '\0' ? ", tsoracle.tls_crl \"" : "",
						val[TLS_SET_CRL], val[TLS_SET_CRL][0] != '\0' ? "\"" : "")));
	if (changed)
		return true;

	/* the same files, perhaps rotated: does the open connection still pass? */
	if (ws->tls != NULL && ws->tls->established &&
		tls_conn_reverify(ws->tls, ctx, err, sizeof(err)) != 0)
		worker_fail("the sidecar at \"%s\" is no longer trusted after the reload of tsoracle.tls_ca and tsoracle.tls_crl: %s",
					ws->address, err);
	return false;
}

/* Whether a resolved address is on this host's loopback interface. */
static bool
worker_is_loopback(const WorkerTarget *t)
{
	if (t->family == AF_INET)
	{
		const struct sockaddr_in *sin = (const struct sockaddr_in *) &t->sa;

		/* 127.0.0.0/8 */
		return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
	}
	if (t->family == AF_INET6)
	{
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *) &t->sa;

		if (IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr))
			return true;
		/* ::ffff:127.x.y.z */
		return IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr) &&
			sin6->sin6_addr.s6_addr[12] == 127;
	}
	return false;
}

/*
 * Before connecting to ws->targets without TLS: true if that may be done
 * (every address is loopback and no tsoracle.tls_* is set); otherwise false
 * with the reason, naming the settings, in err.
 */
bool
worker_tls_check_plaintext(char *err, size_t errlen)
{
	int			i;

	if (ws->tls_wanted)
	{
		/* TLS is asked for but its files could not be loaded */
		snprintf(err, errlen, "TLS to \"%s\" is not possible: %s",
				 ws->address, ws->tls_ctx_err);
		return false;
	}
	for (i = 0; i < ws->ntargets; i++)
	{
		if (!worker_is_loopback(&ws->targets[i]))
		{
			snprintf(err, errlen,
					 "plaintext to \"%s\" (%s) refused: it is not a loopback address, so set tsoracle.tls_ca, tsoracle.tls_cert and tsoracle.tls_key (the sidecar's client-tcp off loopback speaks only TLS)",
					 ws->address, ws->targets[i].desc);
			return false;
		}
	}
	return true;
}

/*
 * A TLS session for the connection just made: the ClientHello goes into
 * the session's output, sent by the next worker_flush. false with err if
 * it cannot be set up (out of memory).
 */
bool
worker_tls_begin(char *err, size_t errlen)
{
	tls_conn   *c;

	Assert(ws->tls == NULL && ws->tls_ctx != NULL);
	c = MemoryContextAllocZero(ws->mcxt, sizeof(tls_conn));
	if (tls_conn_init(c, ws->tls_ctx, false, err, errlen) != 0)
	{
		pfree(c);
		return false;
	}
	ws->tls = c;
	ws->tls_outlen = 0;
	ws->tls_member_id = 0;
	if (tls_conn_handshake(c) == TLS_ERROR)
	{
		snprintf(err, errlen, "TLS with \"%s\": %s", ws->address, c->err);
		return false;
	}
	return true;
}

/* Drops the session, if any (the socket is the caller's). */
void
worker_tls_end(void)
{
	if (ws->tls == NULL)
		return;
	tls_conn_free(ws->tls);
	pfree(ws->tls);
	ws->tls = NULL;
	ws->tls_outlen = 0;
}

/*
 * The handshake has just completed: the sidecar's certificate is the CA's
 * (OpenSSL verified it); it must also name a member. false with err if not.
 */
bool
worker_tls_established(char *err, size_t errlen)
{
	tls_identity id;

	tls_conn_peer(ws->tls, &id);
	if (id.role != TLS_ROLE_MEMBER || id.member_id > PG_UINT32_MAX)
	{
		snprintf(err, errlen,
				 "the sidecar at \"%s\" presented a certificate with CN=%s (role %s), not a member's (OU=member, CN=member-<id>): only a tsoracled member may serve timestamps",
				 ws->address, id.cn, tls_role_name(id.role));
		return false;
	}
	ws->tls_member_id = (uint32) id.member_id;
	return true;
}

/*
 * The session failed before the sidecar's TP_HELLO_OK: which side refused,
 * and the setting to look at, in err.
 */
void
worker_tls_failed(char *err, size_t errlen)
{
	const char *why = ws->tls->err[0] != '\0' ? ws->tls->err : "closed";

	if (SSL_get_verify_result(ws->tls->ssl) != X509_V_OK)
		snprintf(err, errlen,
				 "TLS with \"%s\": the sidecar's certificate is refused: %s (see tsoracle.tls_ca and tsoracle.tls_crl)",
				 ws->address, why + (strncmp(why, "its ", 4) == 0 ? 4 : 0));
	else if (strstr(why, "alert") != NULL)
		snprintf(err, errlen,
				 "TLS with \"%s\": the sidecar refused this server's certificate (tsoracle.tls_cert): %s",
				 ws->address, why);
	else
		snprintf(err, errlen,
				 "TLS with \"%s\" failed: %s (is it the client-tcp port of a tsoracled with tls-* set?)",
				 ws->address, why);
}
