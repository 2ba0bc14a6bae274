/*-------------------------------------------------------------------------
 *
 * tsoracle.h
 *		The extension's settings (GUCs), defined in tsoracle.c.
 *
 * src/tsoracle.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TSORACLE_TSORACLE_H
#define TSORACLE_TSORACLE_H

/* tsoracle.sidecar_address: where the worker finds its sidecar. */
extern char *tsoracle_sidecar_address;

/*
 * tsoracle.sidecar_user: a user, besides this server's own and root, that
 * may own the sidecar's unix socket and listen on it ("": none).
 */
extern char *tsoracle_sidecar_user;

/*
 * tsoracle.tls_ca, tls_cert, tls_key, tls_crl: the files of the worker's
 * TLS to a sidecar's TCP address (worker_tls.c); all empty: none.
 */
extern char *tsoracle_tls_ca;
extern char *tsoracle_tls_cert;
extern char *tsoracle_tls_key;
extern char *tsoracle_tls_crl;

/* tsoracle.timeout: ms a call waits for its timestamps before an error. */
extern int tsoracle_timeout;

/* tsoracle.max_inflight: coalesced requests the worker keeps in flight. */
extern int tsoracle_max_inflight;

/* tsoracle.max_range: the largest count tso_range(n) accepts. */
extern int tsoracle_max_range;

/*
 * tsoracle.batching: whether calls of tso_now() in one statement may share
 * a grant (funcs.c). "statement" (the default): every value of a statement
 * is above every value handed out by calls that finished before the
 * statement began and below those of calls that begin after it ends; "off":
 * the same holds for each call.
 */
typedef enum TsoracleBatching
{
	TSORACLE_BATCHING_OFF,
	TSORACLE_BATCHING_STATEMENT
} TsoracleBatching;

extern int	tsoracle_batching;

/*
 * tsoracle.refuse_backward_grants: whether the worker refuses a grant not
 * above one it has already received. A developer option, for the checker's
 * positive control only.
 */
extern bool tsoracle_refuse_backward_grants;

#endif							/* TSORACLE_TSORACLE_H */
