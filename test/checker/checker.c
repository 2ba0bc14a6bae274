/* checker.c: tsoracle-checker: concurrent clients on every PostgreSQL node, a recorded history, and its
 * check. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "history.h"
#include "monotime.h"

/*
 * Usage: tsoracle-checker --conn CONNINFO [--conn CONNINFO ...] [options]
 *
 * Starts --clients sessions on every node (each a thread with its own
 * connection); each session, until --duration passes, calls tso_now() or
 * (with probability --range-percent) tso_range(n), n uniform in
 * [1, --range-max], or (with probability --rows-percent, with
 * --rows-max > 1) a multi-row statement: an INSERT of m rows, m uniform in
 * [2, --rows-max], into a temporary table keyed by DEFAULT tso_now(),
 * returning the keys in row order; the statement is one operation spanning
 * its start and end, its values checked one by one (history.h). Each
 * session records the invoke and completion times on this
 * process's monotonic clock (one clock for all nodes) and the values. Then
 * it checks the history (history.h) and prints operations, errors,
 * violations, availability and the longest time without service.
 *
 * A call that fails because its PostgreSQL worker refused a backward grant
 * (CHK_REFUSED_MSG) is a violation, not an error: the sidecars broke the
 * order and only the worker's guard kept the value from the caller. A run
 * with fewer than --min-ok successful calls tested too little to mean
 * anything and fails too. The sessions' random choices come from --seed
 * (printed), so a run's mix of calls can be repeated.
 *
 * Exit status: 0 no violation and at least --min-ok successful calls,
 * 1 violations, 2 usage or setup error, 3 no violation but fewer than
 * --min-ok successful calls.
 */

#define CHK_MAX_NODES             16
#define CHK_DEFAULT_CLIENTS       4
#define CHK_DEFAULT_DURATION_S    10
#define CHK_DEFAULT_RANGE_MAX     100
#define CHK_DEFAULT_RANGE_PERCENT 20
#define CHK_DEFAULT_ROWS_MAX      0 /* rows of a multi-row statement; <= 1: none */
#define CHK_DEFAULT_ROWS_PERCENT  0
#define CHK_ROWS_LIMIT            100000
#define CHK_SQL_LEN               512
#define CHK_RECONNECT_PAUSE_MS    50 /* between failed connection attempts */
#define CHK_OPS_INITIAL           4096
#define CHK_ERRCODE_SLOTS         16
#define CHK_DEFAULT_MIN_OK        1 /* successful calls; below: exit CHK_EXIT_TOO_FEW */
#define CHK_DEFAULT_SEED          1
#define CHK_SEED_STRIDE           7919 /* a prime: session i draws from seed + i * stride */
#define CHK_EXIT_VIOLATIONS       1
#define CHK_EXIT_USAGE            2
#define CHK_EXIT_TOO_FEW          3
/* The error of a call whose worker refused a grant not above an earlier
 * one (src/funcs.c, tsoracle.refuse_backward_grants in docs/sql.md). */
#define CHK_REFUSED_MSG           "tsoracle refused a timestamp that was not above an earlier one"

typedef struct chk_config {
	const char *conns[CHK_MAX_NODES];
	int n_conns;
	int clients;
	int duration_s;
	int range_max;
	int range_percent;
	int rows_max;
	int rows_percent;
	long min_ok;
	unsigned seed;
	const char *history_path;
} chk_config;

typedef struct chk_session {
	pthread_t thread;
	const chk_config *cfg;
	const char *conninfo;
	uint32_t id;
	unsigned seed;
	hist_op *ops;
	size_t n_ops, cap_ops;
	char errcodes[CHK_ERRCODE_SLOTS][6];
	size_t errcode_counts[CHK_ERRCODE_SLOTS];
	char last_error[256];
} chk_session;

static atomic_bool chk_stop;

static void chk_record(chk_session *s, const hist_op *op)
{
	if (s->n_ops == s->cap_ops) {
		size_t cap = s->cap_ops ? s->cap_ops * 2 : CHK_OPS_INITIAL;
		hist_op *p = realloc(s->ops, cap * sizeof *p);

		if (p == NULL) {
			fprintf(stderr, "tsoracle-checker: out of memory\n");
			exit(CHK_EXIT_USAGE);
		}
		s->ops = p;
		s->cap_ops = cap;
	}
	s->ops[s->n_ops++] = *op;
}

static void chk_count_error(chk_session *s, const char *sqlstate, const char *msg)
{
	const char *code = sqlstate ? sqlstate : "conn";

	snprintf(s->last_error, sizeof s->last_error, "%s", msg ? msg : "");
	for (char *p = s->last_error; *p; p++)
		if (*p == '\n')
			*p = ' ';
	for (int i = 0; i < CHK_ERRCODE_SLOTS; i++) {
		if (s->errcodes[i][0] == '\0')
			snprintf(s->errcodes[i], sizeof s->errcodes[i], "%.5s", code);
		if (strncmp(s->errcodes[i], code, 5) == 0) {
			s->errcode_counts[i]++;
			return;
		}
	}
}

/*
 * A call or statement that failed: refused by its worker as a backward
 * grant (a violation, counted by hist_check), or an error by SQLSTATE.
 */
static void chk_failed(chk_session *s, PGconn *conn, const PGresult *res, hist_op *op)
{
	if (strstr(PQerrorMessage(conn), CHK_REFUSED_MSG) != NULL)
		op->refused = true;
	else
		chk_count_error(s, PQresultErrorField(res, PG_DIAG_SQLSTATE), PQerrorMessage(conn));
}

/*
 * The session's table for multi-row statements: temporary (no other
 * session sees it), its rows gone at each commit, keyed by tso_now().
 */
static bool chk_rows_table(chk_session *s, PGconn *conn)
{
	PGresult *res = PQexec(conn, "CREATE TEMP TABLE IF NOT EXISTS tsoracle_checker_rows "
				     "(id bigint PRIMARY KEY DEFAULT tso_now(), n int NOT NULL) "
				     "ON COMMIT DELETE ROWS");
	bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;

	if (!ok)
		chk_count_error(s, PQresultErrorField(res, PG_DIAG_SQLSTATE), PQerrorMessage(conn));
	PQclear(res);
	return ok;
}

/*
 * One multi-row statement of n rows: an INSERT whose keys come from
 * DEFAULT tso_now(), returned in row order as one comma-separated list.
 * Records it as one operation from before the statement was sent to after
 * its result arrived, with every value; a result that is not n increasing
 * values is recorded as malformed.
 */
static void chk_rows_statement(chk_session *s, PGconn *conn, int n)
{
	char sql[CHK_SQL_LEN];
	hist_op op = {.session = s->id};
	PGresult *res;

	snprintf(sql, sizeof sql,
		 "WITH r AS (INSERT INTO tsoracle_checker_rows (n) SELECT g FROM generate_series(1, %d) g "
		 "RETURNING id, n) SELECT array_to_string(array_agg(id ORDER BY n), ','), count(*) FROM r",
		 n);
	op.invoke_ns = mono_ns();
	res = PQexec(conn, sql);
	op.complete_ns = mono_ns();
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0)) {
		int64_t *values = malloc((size_t)n * sizeof *values);
		const char *p = PQgetvalue(res, 0, 0);
		uint32_t k = 0;

		if (values == NULL) {
			fprintf(stderr, "tsoracle-checker: out of memory\n");
			exit(CHK_EXIT_USAGE);
		}
		while (*p != '\0' && k < (uint32_t)n) {
			char *end;

			values[k++] = strtoll(p, &end, 10);
			p = *end == ',' ? end + 1 : end;
			if (end == p && *p != '\0')
				break;
		}
		op.ok = true;
		op.values = values;
		op.n_values = k;
		op.lo = values[0];
		op.hi = values[k ? k - 1 : 0];
		/* n values, increasing, or it is malformed (hist_check) */
		if (k != (uint32_t)n || *p != '\0' || strtoll(PQgetvalue(res, 0, 1), NULL, 10) != n)
			op.lo = op.hi + 1;
	} else {
		chk_failed(s, conn, res, &op);
	}
	PQclear(res);
	chk_record(s, &op);
}

static void *chk_session_main(void *arg)
{
	chk_session *s = arg;
	PGconn *conn = NULL;
	char sql[CHK_SQL_LEN];

	while (!atomic_load(&chk_stop)) {
		hist_op op = {.session = s->id};
		PGresult *res;
		int n = 1;
		int dice = (int)(rand_r(&s->seed) % 100);
		bool rows = s->cfg->rows_max > 1 && dice < s->cfg->rows_percent;
		bool range = !rows && (int)(rand_r(&s->seed) % 100) < s->cfg->range_percent;

		if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
			if (conn != NULL)
				PQfinish(conn);
			conn = PQconnectdb(s->conninfo);
			if (PQstatus(conn) != CONNECTION_OK) {
				chk_count_error(s, NULL, PQerrorMessage(conn));
				mono_sleep_ns(CHK_RECONNECT_PAUSE_MS * NS_PER_MS);
				continue;
			}
			if (s->cfg->rows_max > 1 && !chk_rows_table(s, conn)) {
				PQfinish(conn);
				conn = NULL;
				mono_sleep_ns(CHK_RECONNECT_PAUSE_MS * NS_PER_MS);
				continue;
			}
		}
		if (rows) {
			n = 2 + (int)(rand_r(&s->seed) % (unsigned)(s->cfg->rows_max - 1));
			chk_rows_statement(s, conn, n);
			continue;
		}
		if (range) {
			n = 1 + (int)(rand_r(&s->seed) % (unsigned)s->cfg->range_max);
			snprintf(sql, sizeof sql, "SELECT min(t), max(t), count(*) FROM tso_range(%d) t", n);
		} else {
			snprintf(sql, sizeof sql, "SELECT v, v, 1 FROM tso_now() v");
		}
		op.invoke_ns = mono_ns();
		res = PQexec(conn, sql);
		op.complete_ns = mono_ns();
		if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
			op.ok = true;
			op.lo = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
			op.hi = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
			/* A range must be n contiguous values: else record it as
			 * malformed (hi < lo) so the check reports it. */
			if (strtoll(PQgetvalue(res, 0, 2), NULL, 10) != n || op.hi - op.lo + 1 != n)
				op.hi = op.lo - 1;
		} else {
			chk_failed(s, conn, res, &op);
		}
		PQclear(res);
		chk_record(s, &op);
	}
	if (conn != NULL)
		PQfinish(conn);
	return NULL;
}

static void chk_usage(FILE *out)
{
	fprintf(out,
		"Usage: tsoracle-checker --conn CONNINFO [--conn CONNINFO ...] [--clients N]\n"
		"         [--duration S] [--range-max N] [--range-percent P] [--history FILE]\n"
		"         [--rows-max M] [--rows-percent P] [--min-ok N] [--seed S]\n"
		"Runs N sessions per node calling tso_now() and tso_range(n) for S seconds,\n"
		"and, with --rows-max M > 1, multi-row INSERTs of 2..M rows keyed by\n"
		"DEFAULT tso_now() (each statement one operation),\n"
		"then checks: no value twice, per-session increase, real-time order, no\n"
		"call refused by its worker as a backward grant.\n"
		"Exit status: 0 none broken and at least --min-ok (default %d) successful\n"
		"calls; 1 violations; 2 usage or setup error; 3 too few successful calls.\n",
		CHK_DEFAULT_MIN_OK);
}

static int chk_int_arg(const char *name, const char *v, int lo, int hi)
{
	char *end;
	long x;

	errno = 0;
	x = strtol(v, &end, 10);
	if (errno != 0 || *end != '\0' || x < lo || x > hi) {
		fprintf(stderr, "tsoracle-checker: %s must be a number from %d to %d, not \"%s\"\n", name, lo,
			hi, v);
		exit(CHK_EXIT_USAGE);
	}
	return (int)x;
}

/* The long options (getopt_long); values past any character, so that
 * getopt_long never takes one for a short option. */
enum chk_opt {
	CHK_OPT_HELP = 256,
	CHK_OPT_CONN,
	CHK_OPT_CLIENTS,
	CHK_OPT_DURATION,
	CHK_OPT_RANGE_MAX,
	CHK_OPT_RANGE_PERCENT,
	CHK_OPT_ROWS_MAX,
	CHK_OPT_ROWS_PERCENT,
	CHK_OPT_HISTORY,
	CHK_OPT_MIN_OK,
	CHK_OPT_SEED,
};

static const struct option chk_options[] = {
    {"help", no_argument, NULL, CHK_OPT_HELP},
    {"conn", required_argument, NULL, CHK_OPT_CONN},
    {"clients", required_argument, NULL, CHK_OPT_CLIENTS},
    {"duration", required_argument, NULL, CHK_OPT_DURATION},
    {"range-max", required_argument, NULL, CHK_OPT_RANGE_MAX},
    {"range-percent", required_argument, NULL, CHK_OPT_RANGE_PERCENT},
    {"rows-max", required_argument, NULL, CHK_OPT_ROWS_MAX},
    {"rows-percent", required_argument, NULL, CHK_OPT_ROWS_PERCENT},
    {"history", required_argument, NULL, CHK_OPT_HISTORY},
    {"min-ok", required_argument, NULL, CHK_OPT_MIN_OK},
    {"seed", required_argument, NULL, CHK_OPT_SEED},
    {NULL, 0, NULL, 0},
};

int main(int argc, char **argv)
{
	chk_config cfg = {.clients = CHK_DEFAULT_CLIENTS,
			  .duration_s = CHK_DEFAULT_DURATION_S,
			  .range_max = CHK_DEFAULT_RANGE_MAX,
			  .range_percent = CHK_DEFAULT_RANGE_PERCENT,
			  .rows_max = CHK_DEFAULT_ROWS_MAX,
			  .rows_percent = CHK_DEFAULT_ROWS_PERCENT,
			  .min_ok = CHK_DEFAULT_MIN_OK,
			  .seed = CHK_DEFAULT_SEED};
	chk_session *sessions;
	int n_sessions;
	hist_op *all;
	size_t n_all = 0, violations;
	hist_report r;
	int opt;

	while ((opt = getopt_long(argc, argv, "", chk_options, NULL)) != -1) {
		switch (opt) {
		case CHK_OPT_HELP:
			chk_usage(stdout);
			return 0;
		case CHK_OPT_CONN:
			if (cfg.n_conns == CHK_MAX_NODES) {
				fprintf(stderr, "tsoracle-checker: at most %d --conn\n", CHK_MAX_NODES);
				return CHK_EXIT_USAGE;
			}
			cfg.conns[cfg.n_conns++] = optarg;
			break;
		case CHK_OPT_CLIENTS:
			cfg.clients = chk_int_arg("--clients", optarg, 1, 256);
			break;
		case CHK_OPT_DURATION:
			cfg.duration_s = chk_int_arg("--duration", optarg, 1, 86400);
			break;
		case CHK_OPT_RANGE_MAX:
			cfg.range_max = chk_int_arg("--range-max", optarg, 1, 16777216);
			break;
		case CHK_OPT_RANGE_PERCENT:
			cfg.range_percent = chk_int_arg("--range-percent", optarg, 0, 100);
			break;
		case CHK_OPT_ROWS_MAX:
			cfg.rows_max = chk_int_arg("--rows-max", optarg, 0, CHK_ROWS_LIMIT);
			break;
		case CHK_OPT_ROWS_PERCENT:
			cfg.rows_percent = chk_int_arg("--rows-percent", optarg, 0, 100);
			break;
		case CHK_OPT_HISTORY:
			cfg.history_path = optarg;
			break;
		case CHK_OPT_MIN_OK:
			cfg.min_ok = chk_int_arg("--min-ok", optarg, 0, INT_MAX);
			break;
		case CHK_OPT_SEED:
			cfg.seed = (unsigned)chk_int_arg("--seed", optarg, 0, INT_MAX);
			break;
		default: /* getopt_long has said what is wrong */
			chk_usage(stderr);
			return CHK_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "tsoracle-checker: unexpected argument \"%s\"\n", argv[optind]);
		chk_usage(stderr);
		return CHK_EXIT_USAGE;
	}
	if (cfg.n_conns == 0) {
		chk_usage(stderr);
		return CHK_EXIT_USAGE;
	}
	n_sessions = cfg.n_conns * cfg.clients;
	sessions = calloc((size_t)n_sessions, sizeof *sessions);
	if (sessions == NULL)
		return CHK_EXIT_USAGE;
	for (int i = 0; i < n_sessions; i++) {
		sessions[i].cfg = &cfg;
		sessions[i].conninfo = cfg.conns[i % cfg.n_conns];
		sessions[i].id = (uint32_t)i;
		sessions[i].seed = cfg.seed + (unsigned)i * CHK_SEED_STRIDE;
		if (pthread_create(&sessions[i].thread, NULL, chk_session_main, &sessions[i]) != 0) {
			fprintf(stderr, "tsoracle-checker: could not start a thread\n");
			return CHK_EXIT_USAGE;
		}
	}
	mono_sleep_ns((uint64_t)cfg.duration_s * NS_PER_S);
	atomic_store(&chk_stop, true);
	for (int i = 0; i < n_sessions; i++) {
		pthread_join(sessions[i].thread, NULL);
		n_all += sessions[i].n_ops;
	}

	all = malloc((n_all ? n_all : 1) * sizeof *all);
	if (all == NULL)
		return CHK_EXIT_USAGE;
	n_all = 0;
	for (int i = 0; i < n_sessions; i++) {
		memcpy(all + n_all, sessions[i].ops, sessions[i].n_ops * sizeof *all);
		n_all += sessions[i].n_ops;
	}
	if (cfg.history_path != NULL) {
		FILE *f = fopen(cfg.history_path, "w");

		if (f == NULL) {
			fprintf(stderr, "tsoracle-checker: could not write %s: %s\n", cfg.history_path,
				strerror(errno));
			return CHK_EXIT_USAGE;
		}
		fprintf(f, "session\tok\tinvoke_ns\tcomplete_ns\tlo\thi\trefused\n");
		for (size_t i = 0; i < n_all; i++)
			fprintf(f, "%u\t%d\t%" PRIu64 "\t%" PRIu64 "\t%" PRId64 "\t%" PRId64 "\t%d\n",
				all[i].session, all[i].ok, all[i].invoke_ns, all[i].complete_ns, all[i].lo,
				all[i].hi, all[i].refused);
		fclose(f);
	}
	violations = hist_check(all, n_all, &r);

	printf("nodes %d, sessions %d, %d s, seed %u\n", cfg.n_conns, n_sessions, cfg.duration_s, cfg.seed);
	printf("operations ok %zu (%zu timestamps), errors %zu, availability %.4f\n", r.ops, r.timestamps,
	       r.errors,
	       r.ops + r.errors + r.refused ? (double)r.ops / (double)(r.ops + r.errors + r.refused) : 0.0);
	printf("longest time without a successful call: %.1f ms\n",
	       (double)r.longest_gap_ns / (double)NS_PER_MS);
	/* Errors by SQLSTATE over all sessions ("conn": could not connect). */
	for (int i = 0; i < n_sessions; i++) {
		for (int k = 0; k < CHK_ERRCODE_SLOTS && sessions[i].errcodes[k][0]; k++) {
			size_t total = 0;
			bool seen = false;

			for (int j = 0; j < i && !seen; j++)
				for (int m = 0; m < CHK_ERRCODE_SLOTS; m++)
					seen |= strcmp(sessions[j].errcodes[m], sessions[i].errcodes[k]) == 0;
			if (seen)
				continue;
			for (int j = i; j < n_sessions; j++)
				for (int m = 0; m < CHK_ERRCODE_SLOTS; m++)
					if (strcmp(sessions[j].errcodes[m], sessions[i].errcodes[k]) == 0)
						total += sessions[j].errcode_counts[m];
			printf("  errors %s: %zu (e.g. %.120s)\n", sessions[i].errcodes[k], total,
			       sessions[i].last_error);
		}
	}
	printf("violations: %zu (duplicates %zu, session order %zu, real-time order %zu, malformed %zu, "
	       "refused backward grants %zu)\n",
	       violations, r.duplicates, r.session_backwards, r.realtime, r.malformed, r.refused);
	if (violations > 0)
		printf("first violation: %s\n", r.first_violation);
	if ((long)r.ops < cfg.min_ok)
		printf("too few successful calls: %zu, below the floor of %ld (--min-ok): the run tested too "
		       "little\n",
		       r.ops, cfg.min_ok);
	for (size_t i = 0; i < n_all; i++)
		free((void *)all[i].values);
	for (int i = 0; i < n_sessions; i++)
		free(sessions[i].ops);
	free(sessions);
	free(all);
	if (violations > 0)
		return CHK_EXIT_VIOLATIONS;
	return (long)r.ops < cfg.min_ok ? CHK_EXIT_TOO_FEW : 0;
}
