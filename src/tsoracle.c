/*-------------------------------------------------------------------------
 *
 * tsoracle.c
 *		Module entry point and settings of the tsoracle extension.
 *
 * _PG_init checks that the library is preloaded, defines the GUCs and hands
 * over to the modules: ring.c (shared memory) and worker.c (the background
 * worker). The SQL functions live in funcs.c.
 *
 * src/tsoracle.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

#include "compat.h"
#include "funcs.h"
#include "proto.h"
#include "ring.h"
#include "tsoracle.h"
#include "worker.h"

PG_MODULE_MAGIC;

/* Defaults and bounds of the settings (units in the names). */
/*
 * In a directory only the sidecar's user may write (tsoracled creates it),
 * not in /tmp, where any local user could bind the path first.
 */
#define TSORACLE_DEFAULT_ADDRESS		"/run/tsoracle/tsoracled.sock"
#define TSORACLE_DEFAULT_TIMEOUT_MS		5000
#define TSORACLE_MAX_TIMEOUT_MS			600000
#define TSORACLE_DEFAULT_MAX_INFLIGHT	4

/*
 * tsoracle.max_range, timestamps: 2^20 is 4 ms of the oracle's capacity
 * (2^18 timestamps per millisecond), so no role a superuser has not trusted
 * can take more than that in one call; the protocol's TP_MAX_COUNT (2^24,
 * 64 ms) is the ceiling a superuser may raise it to.
 */
#define TSORACLE_DEFAULT_MAX_RANGE		(1 << 20)

char	   *tsoracle_sidecar_address = NULL;
char	   *tsoracle_sidecar_user = NULL;
char	   *tsoracle_tls_ca = NULL;
char	   *tsoracle_tls_cert = NULL;
char	   *tsoracle_tls_key = NULL;
char	   *tsoracle_tls_crl = NULL;
int			tsoracle_timeout = TSORACLE_DEFAULT_TIMEOUT_MS;
int			tsoracle_max_inflight = TSORACLE_DEFAULT_MAX_INFLIGHT;
int			tsoracle_max_range = TSORACLE_DEFAULT_MAX_RANGE;
int			tsoracle_batching = TSORACLE_BATCHING_STATEMENT;
bool		tsoracle_refuse_backward_grants = true;

void		_PG_init(void);

static const struct config_enum_entry tsoracle_batching_options[] = {
	{"statement", TSORACLE_BATCHING_STATEMENT, false},
	{"off", TSORACLE_BATCHING_OFF, false},
	{NULL, 0, false}
};

static bool tsoracle_check_sidecar_address(char **newval, void **extra,
										   GucSource source);
static bool tsoracle_check_sidecar_user(char **newval, void **extra,
										GucSource source);
static void tsoracle_define_gucs(void);
static void tsoracle_define_tls_gucs(void);

void
_PG_init(void)
{
	/*
	 * The shared memory and the background worker can only be set up while
	 * the postmaster loads shared_preload_libraries; loaded any other way
	 * (CREATE EXTENSION, LOAD) the functions would have nothing to talk to.
	 */
	if (!process_shared_preload_libraries_in_progress)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("tsoracle must be loaded via shared_preload_libraries"),
				 errdetail("The extension needs shared memory and a background worker, which can only be set up at server start."),
				 errhint("Add \"tsoracle\" to shared_preload_libraries in postgresql.conf and restart the server.")));

	tsoracle_define_gucs();
	ring_init();
	worker_init();
	funcs_init();
}

static void
tsoracle_define_gucs(void)
{
	DefineCustomStringVariable("tsoracle.sidecar_address",
							   "Address of the tsoracled sidecar that the tsoracle worker connects to.",
							   "An absolute path (\"/path\" or \"unix:/path\") names a unix socket; "
							   "\"host:port\" or \"tcp:host:port\" (IPv6: \"[address]:port\") a TCP address. "
							   "The sidecar's --client-socket must match. Changed on reload: the worker "
							   "reconnects and sends its waiting requests to the new address.",
							   &tsoracle_sidecar_address,
							   TSORACLE_DEFAULT_ADDRESS,
							   PGC_SIGHUP,
							   0,
							   tsoracle_check_sidecar_address,
							   NULL,
							   NULL);

	DefineCustomStringVariable("tsoracle.sidecar_user",
							   "User besides this server's own and root that the sidecar's unix socket may belong to.",
							   "Before using a unix socket the tsoracle worker checks that the socket and every "
							   "directory above it belong to this server's user, root or this user, and that the "
							   "process listening on it runs as one of them; set it when tsoracled runs as a user "
							   "of its own. A user name or a numeric uid; empty: none. Changed on reload.",
							   &tsoracle_sidecar_user,
							   "",
							   PGC_SIGHUP,
							   0,
							   tsoracle_check_sidecar_user,
							   NULL,
							   NULL);

	tsoracle_define_tls_gucs();

	DefineCustomIntVariable("tsoracle.timeout",
							"How long a tsoracle call waits for its timestamps.",
							"tso_now() and tso_range() raise an error (SQLSTATE 08006) when no answer "
							"has arrived within this time, for example because the sidecar is down or "
							"has no leader. statement_timeout and cancellation also end the wait.",
							&tsoracle_timeout,
							TSORACLE_DEFAULT_TIMEOUT_MS,
							1,
							TSORACLE_MAX_TIMEOUT_MS,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL,
							NULL,
							NULL);

	DefineCustomIntVariable("tsoracle.max_inflight",
							"Maximum number of requests the tsoracle worker keeps in flight to the sidecar.",
							"The worker coalesces every waiting call into one request and pipelines up "
							"to this many requests; while all are in flight, new calls wait and are "
							"coalesced into the next request. Changed on reload.",
							&tsoracle_max_inflight,
							TSORACLE_DEFAULT_MAX_INFLIGHT,
							1,
							WORKER_MAX_INFLIGHT_LIMIT,
							PGC_SIGHUP,
							0,
							NULL,
							NULL,
							NULL);

	/*
	 * Superuser-set: a role that could raise it could take a large share of
	 * the cluster's timestamp capacity (docs/sql.md), which is what the
	 * limit is for; a superuser can still raise it for one session or grant
	 * SET on it.
	 */
	DefineCustomIntVariable("tsoracle.max_range",
							"Largest number of timestamps one tso_range() call may take.",
							"tso_range(n) with n above this fails with SQLSTATE 22023. The cluster "
							"grants at most 262144 timestamps per millisecond to all its clients "
							"together, so the limit keeps one call from taking a large share of it.",
							&tsoracle_max_range,
							TSORACLE_DEFAULT_MAX_RANGE,
							1,
							(int) TP_MAX_COUNT,
							PGC_SUSET,
							0,
							NULL,
							NULL,
							NULL);

	/*
	 * Any role may choose: "off" only costs its own sessions speed, and
	 * "statement" keeps the guarantee every client can observe (docs/sql.md,
	 * "What is guaranteed").
	 */
	DefineCustomEnumVariable("tsoracle.batching",
							 "Whether the tso_now() calls of one statement share the timestamps of a grant.",
							 "statement (the default): the first tso_now() of a statement asks the sidecar "
							 "for timestamps; later calls of the same statement take the values left over "
							 "from that grant and ask for twice as many when they run out; what is left at "
							 "the end of the statement is dropped. Every value of a statement is above "
							 "every value of calls that finished before the statement began, and below "
							 "those of calls that begin after it ends. off: every call asks the sidecar, "
							 "so the same holds for each call, at one round trip per call.",
							 &tsoracle_batching,
							 TSORACLE_BATCHING_STATEMENT,
							 tsoracle_batching_options,
							 PGC_USERSET,
							 0,
							 NULL,
							 NULL,
							 NULL);

	/*
	 * A developer option, like PostgreSQL's own ignore_checksum_failure: the
	 * worker's refusal of a grant below an earlier one is a safety net that
	 * also hides a broken sidecar from any test looking at the values, so a
	 * test that must show the checker catching such a sidecar turns it off.
	 * Custom settings cannot choose their group (pg_settings lists them under
	 * "Customized Options"); GUC_NOT_IN_SAMPLE keeps it out of the sample
	 * file, as for PostgreSQL's developer options.
	 */
	DefineCustomBoolVariable("tsoracle.refuse_backward_grants",
							 "Refuses a grant from the sidecar that is not above one already received (developer option).",
							 "On by default. A sidecar that keeps its promise never sends such a grant; "
							 "when one arrives, the worker logs a WARNING and its callers get an error "
							 "instead of a timestamp that could be below one already handed out. Off, "
							 "the worker still logs the WARNING but hands the grant out. This exists only "
							 "so that tests can show that tsoracle-checker catches a sidecar that breaks "
							 "the order; turning it off in production removes a safety net. Changed on reload.",
							 &tsoracle_refuse_backward_grants,
							 true,
							 PGC_SIGHUP,
							 GUC_NOT_IN_SAMPLE,
							 NULL,
							 NULL,
							 NULL);

	tso_mark_guc_prefix_reserved("tsoracle");
}

/*
 * The worker's TLS to a TCP sidecar address (worker_tls.c). Reloadable
 * only from the configuration file (PGC_SIGHUP: superusers, through
 * ALTER SYSTEM), and shown to superusers only, like PostgreSQL's own
 * ssl_cert_file and ssl_key_file. The files are reread at every reload, so
 * replacing them in place and reloading rotates them.
 */
static void
tsoracle_define_tls_gucs(void)
{
	static const struct
	{
		const char *name;
		char	  **var;
		const char *short_desc;
		const char *long_desc;
	}			tls[] = {
		{"tsoracle.tls_ca", &tsoracle_tls_ca,
			"CA certificate (PEM) the tsoracle worker trusts for a TCP sidecar address.",
			"The cluster's CA (tls-ca of tsoracled). With tsoracle.tls_cert and "
			"tsoracle.tls_key set, the worker speaks TLS 1.3 to a host:port "
			"tsoracle.sidecar_address and accepts only a sidecar whose certificate this "
			"CA signed for a member (OU=member, CN=member-<id>). Without TLS the worker "
			"refuses any address that is not loopback. Reread on reload."},
		{"tsoracle.tls_cert", &tsoracle_tls_cert,
			"Certificate (PEM) the tsoracle worker presents to a TCP sidecar address.",
			"A client certificate from the cluster's CA (OU=client; scripts/certs.sh "
			"makes one). Reread on reload."},
		{"tsoracle.tls_key", &tsoracle_tls_key,
			"Private key (PEM) of tsoracle.tls_cert.",
			"Readable by this server's user only (mode 600), or it is refused. Reread "
			"on reload."},
		{"tsoracle.tls_crl", &tsoracle_tls_crl,
			"Certificate revocation list (PEM) of the cluster's CA; empty: none.",
			"A sidecar whose certificate it lists is refused. Reread on reload."},
	};
	int			i;

	for (i = 0; i < lengthof(tls); i++)
		DefineCustomStringVariable(tls[i].name, tls[i].short_desc, tls[i].long_desc,
								   tls[i].var, "", PGC_SIGHUP, GUC_SUPERUSER_ONLY,
								   NULL, NULL, NULL);
}

/* Accepts only addresses the worker can parse; says why otherwise. */
static bool
tsoracle_check_sidecar_address(char **newval, void **extra, GucSource source)
{
	WorkerAddress addr;
	char		err[256];

	if (*newval == NULL)
		return true;			/* only while setting the boot value */
	if (!worker_parse_address(*newval, &addr, err, sizeof(err)))
	{
		GUC_check_errdetail("%s", err);
		GUC_check_errhint("Use an absolute unix socket path such as \"/run/tsoracle/tsoracled.sock\" or a TCP address such as \"127.0.0.1:5433\".");
		return false;
	}
	return true;
}

/* Accepts "", a numeric uid or the name of an existing user. */
static bool
tsoracle_check_sidecar_user(char **newval, void **extra, GucSource source)
{
	uid_t		uid;
	bool		set;
	char		err[256];

	if (*newval == NULL)
		return true;			/* only while setting the boot value */
	if (!worker_resolve_user(*newval, &uid, &set, err, sizeof(err)))
	{
		GUC_check_errdetail("%s", err);
		GUC_check_errhint("Name the user tsoracled runs as, give its numeric uid, or leave the setting empty.");
		return false;
	}
	return true;
}
