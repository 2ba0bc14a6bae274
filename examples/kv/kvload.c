/* kvload.c: concurrent clients of the kvd example, a recorded history, and its checks: the timestamps
 * by the history checker, the key-value state on every member. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "history.h"
#include "monotime.h"

/*
 * Usage: kvload --member ID=IP:PORT [--member ...] [--clients N]
 *               [--duration S] [--tso-percent P] [--range-max N] [--seed N]
 *               [--min-ok N] [--settle S]
 *
 * Each client (a thread with its own connection) writes keys of its own
 * (PUT sC-kI vI-R, never twice the same key) and takes timestamps
 * (TSO n), in a random mix, against whichever member leads, following
 * "ERR not-leader ID" and moving on when a member does not answer. Every
 * TSO call is recorded with its invoke and completion times on one
 * monotonic clock; every PUT is acknowledged (OK), refused before it was
 * appended (not-leader, bad-request) or of unknown outcome (a failed apply,
 * a lost connection).
 *
 * When the clients stop, it checks:
 *   - the timestamps: test/checker/history.h (no value twice, each above
 *     every value of a call that completed before it began);
 *   - the key-value state: within --settle seconds every member's DUMP
 *     holds every acknowledged key with its value, no key that was never
 *     appended and no value that was never written, and all members hold
 *     the same state;
 *   - a GET through the leader of acknowledged keys returns their values.
 *
 * Exit status: 0 all checks pass with at least --min-ok timestamp calls
 * and --min-ok acknowledged writes; 1 a check failed; 2 usage or setup;
 * 3 the checks pass but too few calls succeeded to mean anything.
 */

#define KL_MAX_MEMBERS       9
#define KL_LINE_MAX          1024
#define KL_IO_TIMEOUT_MS     3000
#define KL_RETRY_PAUSE_MS    20
#define KL_SETTLE_POLL_MS    100
#define KL_GET_CHECKS        50
#define KL_DEFAULT_CLIENTS   4
#define KL_DEFAULT_DURATION  10
#define KL_DEFAULT_TSO_PCT   50
#define KL_DEFAULT_RANGE_MAX 16
#define KL_DEFAULT_SETTLE_S  20
#define KL_EXIT_FAIL         1
#define KL_EXIT_USAGE        2
#define KL_EXIT_TOO_FEW      3

enum kl_put_state { PUT_NOT_APPENDED = 0, PUT_ACKED, PUT_UNKNOWN };

typedef struct kl_member {
	uint64_t id;
	struct sockaddr_in addr;
	char text[64];
} kl_member;

typedef struct kl_conn {
	int fd;
	char buf[KL_LINE_MAX * 4];
	size_t len;
} kl_conn;

typedef struct kl_put {
	char value[48];
	enum kl_put_state state;
} kl_put;

typedef struct kl_client {
	pthread_t thread;
	unsigned session;
	uint64_t rng;
	unsigned current; /* index of the member it talks to */
	kl_conn conn;
	hist_op *ops;
	size_t n_ops, cap_ops;
	kl_put *puts;
	size_t n_puts, cap_puts;
} kl_client;

static kl_member g_members[KL_MAX_MEMBERS];
static unsigned g_n_members;
static unsigned g_clients = KL_DEFAULT_CLIENTS;
static unsigned g_duration_s = KL_DEFAULT_DURATION;
static unsigned g_tso_pct = KL_DEFAULT_TSO_PCT;
static unsigned g_range_max = KL_DEFAULT_RANGE_MAX;
static unsigned g_settle_s = KL_DEFAULT_SETTLE_S;
static uint64_t g_seed = 1;
static size_t g_min_ok = 1;
static uint64_t g_deadline_ns;

/* xorshift64*: the clients' choices, repeatable from --seed. */
static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * UINT64_C(2685821657736338717);
}

/* ---- one connection, one line at a time ----------------------------------------- */

static void kl_close(kl_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->len = 0;
}

static int kl_connect(kl_conn *c, const kl_member *m)
{
	struct timeval tv = {.tv_sec = KL_IO_TIMEOUT_MS / 1000, .tv_usec = (KL_IO_TIMEOUT_MS % 1000) * 1000};
	int one = 1;

	kl_close(c);
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -1;
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(c->fd, (const struct sockaddr *)&m->addr, sizeof m->addr) != 0) {
		kl_close(c);
		return -1;
	}
	return 0;
}

static int kl_send(kl_conn *c, const char *line)
{
	size_t len = strlen(line), off = 0;

	while (off < len) {
		ssize_t n = send(c->fd, line + off, len - off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		off += (size_t)n;
	}
	return 0;
}

/* Reads one line (without its newline) into out; -1 on error, timeout or close. */
static int kl_recv_line(kl_conn *c, char *out, size_t outlen)
{
	for (;;) {
		char *nl = memchr(c->buf, '\n', c->len);
		ssize_t n;

		if (nl != NULL) {
			size_t l = (size_t)(nl - c->buf);

			if (l >= outlen)
				return -1;
			memcpy(out, c->buf, l);
			out[l] = '\0';
			memmove(c->buf, nl + 1, c->len - l - 1);
			c->len -= l + 1;
			return 0;
		}
		if (c->len == sizeof c->buf)
			return -1;
		n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		c->len += (size_t)n;
	}
}

static int kl_member_index(uint64_t id)
{
	for (unsigned i = 0; i < g_n_members; i++)
		if (g_members[i].id == id)
			return (int)i;
	return -1;
}

/* One request to the member cl talks to; the answer in out. -1: no answer
 * (the connection is closed, the client moves to the next member). */
static int kl_call(kl_client *cl, const char *req, char *out, size_t outlen)
{
	if (cl->conn.fd < 0 && kl_connect(&cl->conn, &g_members[cl->current]) != 0)
		goto failed;
	if (kl_send(&cl->conn, req) != 0 || kl_recv_line(&cl->conn, out, outlen) != 0)
		goto failed;
	return 0;
failed:
	kl_close(&cl->conn);
	cl->current = (cl->current + 1) % g_n_members;
	mono_sleep_ns(KL_RETRY_PAUSE_MS * NS_PER_MS);
	return -1;
}

/* Follows "ERR not-leader ID"; true if the answer was one. */
static bool kl_redirect(kl_client *cl, const char *answer)
{
	unsigned long long id;
	int i;

	if (sscanf(answer, "ERR not-leader %llu", &id) != 1)
		return false;
	i = id != 0 ? kl_member_index(id) : -1;
	kl_close(&cl->conn);
	cl->current = i >= 0 ? (unsigned)i : (cl->current + 1) % g_n_members;
	mono_sleep_ns(KL_RETRY_PAUSE_MS * NS_PER_MS);
	return true;
}

/* ---- the clients -------------------------------------------------------------------- */

static int kl_record(kl_client *cl, hist_op op)
{
	if (cl->n_ops == cl->cap_ops) {
		size_t cap = cl->cap_ops != 0 ? cl->cap_ops * 2 : 4096;
		hist_op *p = realloc(cl->ops, cap * sizeof *p);

		if (p == NULL)
			return -1;
		cl->ops = p;
		cl->cap_ops = cap;
	}
	cl->ops[cl->n_ops++] = op;
	return 0;
}

static void kl_tso(kl_client *cl)
{
	char req[64], ans[KL_LINE_MAX] = "";
	unsigned n = 1 + (unsigned)(rng_next(&cl->rng) % g_range_max);
	hist_op op = {.session = cl->session};
	unsigned long long first;

	snprintf(req, sizeof req, "TSO %u\n", n);
	op.invoke_ns = mono_ns();
	if (kl_call(cl, req, ans, sizeof ans) == 0 && sscanf(ans, "TS %llu", &first) == 1) {
		op.ok = true;
		op.lo = (int64_t)first;
		op.hi = (int64_t)(first + n - 1);
	} else {
		kl_redirect(cl, ans);
	}
	op.complete_ns = mono_ns();
	if (kl_record(cl, op) != 0) {
		fprintf(stderr, "kvload: out of memory\n");
		exit(KL_EXIT_USAGE);
	}
}

static void kl_write(kl_client *cl)
{
	char req[128], ans[KL_LINE_MAX];
	kl_put *p;

	if (cl->n_puts == cl->cap_puts) {
		size_t cap = cl->cap_puts != 0 ? cl->cap_puts * 2 : 4096;
		kl_put *q = realloc(cl->puts, cap * sizeof *q);

		if (q == NULL) {
			fprintf(stderr, "kvload: out of memory\n");
			exit(KL_EXIT_USAGE);
		}
		cl->puts = q;
		cl->cap_puts = cap;
	}
	p = &cl->puts[cl->n_puts];
	snprintf(p->value, sizeof p->value, "v%zu-%" PRIu64, cl->n_puts, rng_next(&cl->rng) % 1000000);
	snprintf(req, sizeof req, "PUT s%u-k%zu %s\n", cl->session, cl->n_puts, p->value);
	if (kl_call(cl, req, ans, sizeof ans) != 0)
		p->state = PUT_UNKNOWN; /* sent, perhaps appended: no answer */
	else if (strncmp(ans, "OK ", 3) == 0)
		p->state = PUT_ACKED;
	else if (kl_redirect(cl, ans) || strncmp(ans, "ERR bad-request", 15) == 0)
		p->state = PUT_NOT_APPENDED;
	else
		p->state = PUT_UNKNOWN; /* ERR failed / unavailable: may still commit */
	cl->n_puts++;
}

static void *kl_client_main(void *arg)
{
	kl_client *cl = arg;

	while (mono_ns() < g_deadline_ns) {
		if (rng_next(&cl->rng) % 100 < g_tso_pct)
			kl_tso(cl);
		else
			kl_write(cl);
	}
	kl_close(&cl->conn);
	return NULL;
}

/* ---- the checks ----------------------------------------------------------------------- */

/* Parses "sC-kI" into its client and index; -1 if it is no key of ours. */
static int kl_parse_key(const char *key, unsigned *session, size_t *index)
{
	unsigned s;
	size_t i;
	int used = 0;

	if (sscanf(key, "s%u-k%zu%n", &s, &i, &used) != 2 || key[used] != '\0')
		return -1;
	*session = s;
	*index = i;
	return 0;
}

/* FNV-1a of "key=value". */
static uint64_t kl_entry_hash(const char *key, const char *value)
{
	uint64_t h = UINT64_C(14695981039346656037);

	for (const char *p = key; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * UINT64_C(1099511628211);
	h = (h ^ '=') * UINT64_C(1099511628211);
	for (const char *p = value; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * UINT64_C(1099511628211);
	return h;
}

/*
 * DUMPs member m and compares with what the clients wrote: *missing counts
 * acknowledged keys absent or with another value, *wrong keys that were
 * never appended or values never written; *digest sums the state so that
 * members can be compared. -1: no answer.
 */
static int kl_check_member(const kl_member *m, kl_client *cls, size_t *keys, size_t *missing, size_t *wrong,
			   uint64_t *digest, uint64_t *applied, char *first_problem, size_t plen)
{
	kl_conn c = {.fd = -1};
	char line[KL_LINE_MAX];
	size_t acked = 0, seen_acked = 0;
	unsigned long long idx;

	*keys = *missing = *wrong = 0;
	*digest = 0;
	for (unsigned s = 0; s < g_clients; s++)
		for (size_t i = 0; i < cls[s].n_puts; i++)
			acked += cls[s].puts[i].state == PUT_ACKED;
	if (kl_connect(&c, m) != 0 || kl_send(&c, "DUMP\n") != 0)
		goto failed;
	for (;;) {
		char key[128], value[512];
		unsigned s;
		size_t i;

		if (kl_recv_line(&c, line, sizeof line) != 0)
			goto failed;
		if (sscanf(line, "END %llu", &idx) == 1)
			break;
		if (sscanf(line, "KV %127s %511s", key, value) != 2)
			goto failed;
		(*keys)++;
		*digest += kl_entry_hash(key, value); /* a sum: members list their keys in any order */
		if (kl_parse_key(key, &s, &i) != 0 || s >= g_clients || i >= cls[s].n_puts ||
		    cls[s].puts[i].state == PUT_NOT_APPENDED || strcmp(cls[s].puts[i].value, value) != 0) {
			if (*wrong == 0 && first_problem[0] == '\0')
				snprintf(first_problem, plen,
					 "member %" PRIu64 " holds %.64s = %.64s, never written so", m->id,
					 key, value);
			(*wrong)++;
			continue;
		}
		seen_acked += cls[s].puts[i].state == PUT_ACKED;
	}
	kl_close(&c);
	*missing = acked - seen_acked;
	*applied = idx;
	return 0;
failed:
	kl_close(&c);
	return -1;
}

/* GETs through the leader of up to KL_GET_CHECKS acknowledged keys. */
static size_t kl_check_gets(kl_client *cls, char *first_problem, size_t plen)
{
	kl_client probe = {.conn = {.fd = -1}, .current = 0};
	size_t bad = 0, checked = 0;

	for (unsigned s = 0; s < g_clients && checked < KL_GET_CHECKS; s++) {
		for (size_t i = 0; i < cls[s].n_puts && checked < KL_GET_CHECKS;
		     i += 1 + cls[s].n_puts / 16) {
			char req[64], ans[KL_LINE_MAX] = "", want[128];
			int tries = 0;

			if (cls[s].puts[i].state != PUT_ACKED)
				continue;
			snprintf(req, sizeof req, "GET s%u-k%zu\n", s, i);
			snprintf(want, sizeof want, "VALUE %s", cls[s].puts[i].value);
			while (tries++ < 50 &&
			       (kl_call(&probe, req, ans, sizeof ans) != 0 || kl_redirect(&probe, ans)))
				;
			checked++;
			if (strcmp(ans, want) != 0) {
				if (bad == 0 && first_problem[0] == '\0')
					snprintf(first_problem, plen,
						 "GET s%u-k%zu answered \"%.80s\", expected \"%.80s\"", s, i,
						 ans, want);
				bad++;
			}
		}
	}
	kl_close(&probe.conn);
	printf("get: %zu acknowledged keys read through the leader, %zu wrong\n", checked, bad);
	return bad;
}

static void kl_usage(FILE *f)
{
	fprintf(f, "usage: kvload --member ID=IP:PORT [--member ...] [--clients N] [--duration S]\n"
		   "              [--tso-percent P] [--range-max N] [--seed N] [--min-ok N] [--settle S]\n");
}

static int kl_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end = NULL;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static int kl_parse_args(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"member", required_argument, NULL, 'm'},
	    {"clients", required_argument, NULL, 'c'},
	    {"duration", required_argument, NULL, 'd'},
	    {"tso-percent", required_argument, NULL, 'p'},
	    {"range-max", required_argument, NULL, 'r'},
	    {"seed", required_argument, NULL, 's'},
	    {"min-ok", required_argument, NULL, 'o'},
	    {"settle", required_argument, NULL, 'S'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int o;
	uint64_t v;

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'm': {
			kl_member *m = &g_members[g_n_members];
			const char *eq = strchr(optarg, '=');
			struct sockaddr_storage ss;
			char *end = NULL;
			tp_addr a;

			if (g_n_members == KL_MAX_MEMBERS || eq == NULL)
				goto bad_member;
			m->id = strtoull(optarg, &end, 10);
			/* The address as tsoracled's own are parsed (common/addr.h);
			 * kvd listens on IPv4 only. */
			if (end != eq || m->id == 0 ||
			    tp_addr_parse(eq + 1, TP_ADDR_IP_PORT, &a, NULL, 0) != 0 ||
			    tp_addr_sockaddr(&a, &ss) != sizeof m->addr)
				goto bad_member;
			memcpy(&m->addr, &ss, sizeof m->addr);
			snprintf(m->text, sizeof m->text, "%s", eq + 1);
			g_n_members++;
			break;
		bad_member:
			fprintf(stderr, "kvload: --member %s: expected ID=IPv4:PORT (at most %d)\n", optarg,
				KL_MAX_MEMBERS);
			return -1;
		}
		case 'c':
			if (kl_parse_u64(optarg, 1, 64, &v) != 0)
				return fprintf(stderr, "kvload: --clients must be 1-64\n"), -1;
			g_clients = (unsigned)v;
			break;
		case 'd':
			if (kl_parse_u64(optarg, 1, 3600, &v) != 0)
				return fprintf(stderr, "kvload: --duration must be 1-3600 s\n"), -1;
			g_duration_s = (unsigned)v;
			break;
		case 'p':
			if (kl_parse_u64(optarg, 0, 100, &v) != 0)
				return fprintf(stderr, "kvload: --tso-percent must be 0-100\n"), -1;
			g_tso_pct = (unsigned)v;
			break;
		case 'r':
			if (kl_parse_u64(optarg, 1, 65536, &v) != 0)
				return fprintf(stderr, "kvload: --range-max must be 1-65536\n"), -1;
			g_range_max = (unsigned)v;
			break;
		case 's':
			if (kl_parse_u64(optarg, 0, UINT64_MAX, &v) != 0)
				return fprintf(stderr, "kvload: --seed must be an integer\n"), -1;
			g_seed = v;
			break;
		case 'o':
			if (kl_parse_u64(optarg, 0, UINT32_MAX, &v) != 0)
				return fprintf(stderr, "kvload: --min-ok must be an integer\n"), -1;
			g_min_ok = (size_t)v;
			break;
		case 'S':
			if (kl_parse_u64(optarg, 1, 600, &v) != 0)
				return fprintf(stderr, "kvload: --settle must be 1-600 s\n"), -1;
			g_settle_s = (unsigned)v;
			break;
		case 'h':
			kl_usage(stdout);
			exit(0);
		default:
			kl_usage(stderr);
			return -1;
		}
	}
	if (optind != argc || g_n_members == 0) {
		kl_usage(stderr);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	kl_client *cls;
	hist_op *all;
	size_t n_all = 0, acked = 0, unknown = 0, violations, kv_problems = 0;
	hist_report rep;
	char problem[256] = "";
	uint64_t settle_end;
	bool consistent = false;
	int rc = 0;

	if (kl_parse_args(argc, argv) != 0)
		return KL_EXIT_USAGE;
	printf("seed: %" PRIu64 ", %u clients, %u s, %u%% TSO\n", g_seed, g_clients, g_duration_s, g_tso_pct);
	cls = calloc(g_clients, sizeof *cls);
	if (cls == NULL)
		return KL_EXIT_USAGE;
	g_deadline_ns = mono_ns() + (uint64_t)g_duration_s * NS_PER_S;
	for (unsigned i = 0; i < g_clients; i++) {
		cls[i].session = i;
		cls[i].rng = g_seed * 0x9E3779B97F4A7C15ULL + i + 1;
		cls[i].current = i % g_n_members;
		cls[i].conn.fd = -1;
		if (pthread_create(&cls[i].thread, NULL, kl_client_main, &cls[i]) != 0) {
			fprintf(stderr, "kvload: pthread_create failed\n");
			return KL_EXIT_USAGE;
		}
	}
	for (unsigned i = 0; i < g_clients; i++)
		pthread_join(cls[i].thread, NULL);

	/* The timestamps. */
	for (unsigned i = 0; i < g_clients; i++)
		n_all += cls[i].n_ops;
	all = malloc((n_all + 1) * sizeof *all);
	if (all == NULL)
		return KL_EXIT_USAGE;
	n_all = 0;
	for (unsigned i = 0; i < g_clients; i++) {
		memcpy(all + n_all, cls[i].ops, cls[i].n_ops * sizeof *all);
		n_all += cls[i].n_ops;
		for (size_t k = 0; k < cls[i].n_puts; k++) {
			acked += cls[i].puts[k].state == PUT_ACKED;
			unknown += cls[i].puts[k].state == PUT_UNKNOWN;
		}
	}
	violations = hist_check(all, n_all, &rep);
	printf("tso: %zu calls ok, %zu failed, %zu timestamps, violations %zu (duplicates %zu, session %zu, "
	       "real-time %zu), longest gap %.1f ms\n",
	       rep.ops, rep.errors, rep.timestamps, violations, rep.duplicates, rep.session_backwards,
	       rep.realtime, (double)rep.longest_gap_ns / NS_PER_MS);
	if (violations > 0)
		printf("first violation: %s\n", rep.first_violation);

	/* The key-value state, once every member has caught up (bounded). */
	printf("kv: %zu writes acknowledged, %zu of unknown outcome\n", acked, unknown);
	settle_end = mono_ns() + (uint64_t)g_settle_s * NS_PER_S;
	do {
		uint64_t digest0 = 0, applied[KL_MAX_MEMBERS] = {0};
		bool same = true;
		size_t worst_missing = 0, worst_wrong = 0;

		problem[0] = '\0';
		for (unsigned m = 0; m < g_n_members && same; m++) {
			size_t keys, missing, wrong;
			uint64_t digest;

			if (kl_check_member(&g_members[m], cls, &keys, &missing, &wrong, &digest, &applied[m],
					    problem, sizeof problem) != 0) {
				snprintf(problem, sizeof problem,
					 "member %" PRIu64 " (%s) does not answer DUMP", g_members[m].id,
					 g_members[m].text);
				same = false;
				break;
			}
			worst_missing = missing > worst_missing ? missing : worst_missing;
			worst_wrong = wrong > worst_wrong ? wrong : worst_wrong;
			if (m == 0)
				digest0 = digest;
			else if (digest != digest0)
				same = false;
			if (missing > 0 && problem[0] == '\0')
				snprintf(problem, sizeof problem,
					 "member %" PRIu64
					 " lacks %zu acknowledged write(s) (applied index %" PRIu64 ")",
					 g_members[m].id, missing, applied[m]);
		}
		if (same && worst_missing == 0 && worst_wrong == 0) {
			consistent = true;
			printf(
			    "kv: every member holds every acknowledged write, and all hold the same state\n");
			break;
		}
		if (worst_wrong > 0) /* never fixes itself */
			break;
		mono_sleep_ns(KL_SETTLE_POLL_MS * NS_PER_MS);
	} while (mono_ns() < settle_end);
	if (!consistent) {
		printf("kv: FAILED: %s\n", problem[0] != '\0' ? problem : "members hold different states");
		kv_problems++;
	}
	problem[0] = '\0';
	if (kl_check_gets(cls, problem, sizeof problem) > 0) {
		printf("kv: FAILED: %s\n", problem);
		kv_problems++;
	}

	if (violations > 0 || kv_problems > 0) {
		rc = KL_EXIT_FAIL;
	} else if (rep.ops < g_min_ok || acked < g_min_ok) {
		printf("too few successful calls (%zu timestamp calls, %zu writes; --min-ok %zu)\n", rep.ops,
		       acked, g_min_ok);
		rc = KL_EXIT_TOO_FEW;
	} else {
		printf("ok\n");
	}
	/* Everything freed: under LeakSanitizer (make check-examples
	 * SANITIZE=1) a leak would end this run as failed whatever it found. */
	for (unsigned i = 0; i < g_clients; i++) {
		free(cls[i].ops);
		free(cls[i].puts);
	}
	free(cls);
	free(all);
	return rc;
}
