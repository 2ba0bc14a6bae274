/* kvd.c: a replicated key-value service on libraft whose own log also carries tsoracle's commands: the
 * piggyback pattern of docs/embedding.md, as a real process. */
#define _GNU_SOURCE /* vasprintf */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include "tsoracle.h"

/*
 * One member of a small replicated key-value store. Its Raft log carries
 * two kinds of entries, told apart by an 8-byte envelope (a kind byte and
 * 7 zero bytes: libraft's uv backend prefers entry sizes that are
 * multiples of 8):
 *
 *   KV_KIND_KV   the service's own command: PUT key value, or DEL key;
 *   KV_KIND_TSO  a command of libtsoracle's leadership driver (HighWater,
 *                Release), proposed through kv_propose and applied by
 *                fsm_apply_cmd_result.
 *
 * One snapshot covers both (the key-value table and fsm_snapshot_put's
 * bytes), so a member that installs a snapshot gets both, and the leader
 * of the store is the leader of the oracle: no second Raft cluster.
 *
 * Clients speak one line per request over TCP, answered in order:
 *
 *   PUT key value   OK index        (committed and applied)
 *   DEL key         OK index
 *   GET key         VALUE value | NOTFOUND   (leader; after a barrier)
 *   TSO n           TS first        (the range [first, first + n))
 *   DUMP            KV key value ... then END applied-index  (any member:
 *                   its own applied state, for checks)
 *   STATUS          STATUS id=.. role=.. leader=.. term=.. ...
 *
 * Errors: "ERR not-leader ID" (ID 0: none known), "ERR unavailable WHY",
 * "ERR failed WHY" (a write whose outcome is unknown: it may still
 * commit), "ERR bad-request WHY". Keys are 1-64 and values 0-256 bytes of
 * [A-Za-z0-9._-]. The example speaks plain TCP on loopback only; tsoracled
 * shows what a service on a network adds (TLS on every port, roles).
 */

#define KV_ENVELOPE        8
#define KV_KIND_TSO        1
#define KV_KIND_KV         2
#define KV_OP_PUT          1
#define KV_OP_DEL          2
#define KV_KEY_MAX         64
#define KV_VALUE_MAX       256
#define KV_LINE_MAX        512        /* bytes of one request line, newline included */
#define KV_PENDING_MAX     64         /* unanswered requests per connection: beyond, stop reading */
#define KV_OUTPUT_MAX      (8u << 20) /* bytes queued to a client that does not read: beyond, close */
#define KV_TSO_MAX         65536      /* largest n of one TSO request */
#define KV_TSO_WAIT_MS     2000       /* a TSO request waits at most this long for the leader to serve */
#define KV_BUCKETS         4096
#define KV_MEMBERS_MAX     9
#define KV_SNAPSHOT_MAGIC  UINT32_C(0x4b565331) /* "KVS1" */
#define KV_SNAPSHOT_HEADER (4 + 4 + FSM_SNAPSHOT_SIZE)
#define KV_READ_CHUNK      65536
#define KV_BACKLOG         128
#define KV_ELECTION_MS     300
#define KV_HEARTBEAT_MS    30

/* ---- small helpers ---------------------------------------------------------- */

static void put_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint16_t get_u16(const uint8_t *p)
{
	return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static void put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t now_ms(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The driver's clock: the wall clock for physical parts, a monotonic one for
 * the lease (include/tsoracle.h, ta_clock). */
static ta_clock kv_clock(void)
{
	return (ta_clock){.wall_ms = now_ms(CLOCK_REALTIME), .mono_ms = now_ms(CLOCK_MONOTONIC)};
}

static uint64_t g_id; /* for log lines */

static void logf_(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(const char *level, const char *fmt, ...)
{
	va_list ap;
	struct timespec ts;
	struct tm tm;
	char when[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof when, "%H:%M:%S", &tm);
	fprintf(stderr, "%s.%03ld kvd[%" PRIu64 "] %s: ", when, ts.tv_nsec / 1000000, g_id, level);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* A key or value of the protocol: printable, no spaces. */
static bool kv_word_ok(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* ---- the store ---------------------------------------------------------------- */

typedef struct kv_entry {
	struct kv_entry *next;
	char *key;
	char *value;
} kv_entry;

typedef struct kv_table {
	kv_entry *bucket[KV_BUCKETS];
	size_t count;
} kv_table;

static size_t kv_hash(const char *key)
{
	size_t h = 5381; /* djb2: plenty for an example's table */

	for (; *key != '\0'; key++)
		h = h * 33 + (unsigned char)*key;
	return h % KV_BUCKETS;
}

static kv_entry **kv_find(kv_table *t, const char *key)
{
	kv_entry **pp = &t->bucket[kv_hash(key)];

	while (*pp != NULL && strcmp((*pp)->key, key) != 0)
		pp = &(*pp)->next;
	return pp;
}

static int kv_put(kv_table *t, const char *key, size_t klen, const char *value, size_t vlen)
{
	char k[KV_KEY_MAX + 1];
	char *v = malloc(vlen + 1);
	kv_entry **pp;

	if (v == NULL)
		return -1;
	memcpy(k, key, klen);
	k[klen] = '\0';
	memcpy(v, value, vlen);
	v[vlen] = '\0';
	pp = kv_find(t, k);
	if (*pp != NULL) {
		free((*pp)->value);
		(*pp)->value = v;
		return 0;
	}
	*pp = calloc(1, sizeof **pp);
	if (*pp == NULL || ((*pp)->key = strdup(k)) == NULL) {
		free(*pp);
		*pp = NULL;
		free(v);
		return -1;
	}
	(*pp)->value = v;
	t->count++;
	return 0;
}

static void kv_del(kv_table *t, const char *key, size_t klen)
{
	char k[KV_KEY_MAX + 1];
	kv_entry **pp, *e;

	memcpy(k, key, klen);
	k[klen] = '\0';
	pp = kv_find(t, k);
	if ((e = *pp) == NULL)
		return;
	*pp = e->next;
	free(e->key);
	free(e->value);
	free(e);
	t->count--;
}

static void kv_clear(kv_table *t)
{
	for (size_t b = 0; b < KV_BUCKETS; b++) {
		while (t->bucket[b] != NULL) {
			kv_entry *e = t->bucket[b];

			t->bucket[b] = e->next;
			free(e->key);
			free(e->value);
			free(e);
		}
	}
	t->count = 0;
}

/* ---- the member ------------------------------------------------------------------- */

typedef struct kv_peer {
	uint64_t id;
	char address[64];
} kv_peer;

struct kv_conn;

enum kv_req_kind { REQ_PUT, REQ_DEL, REQ_GET, REQ_TSO, REQ_ANSWERED };

typedef struct kv_req {
	struct kv_req *next;      /* the connection's queue, in arrival order */
	struct kv_req *wait_next; /* the TSO waiters, in arrival order */
	struct kv_conn *conn;     /* NULL once the connection closed (libraft still owns the request) */
	enum kv_req_kind kind;
	bool in_raft; /* a raft_apply or raft_barrier of ours is in flight */
	bool done;
	char *resp;
	size_t resp_len;
	uint32_t n;           /* TSO */
	uint64_t deadline_ms; /* TSO, monotonic */
	char key[KV_KEY_MAX + 1];
	struct raft_apply apply;
	struct raft_barrier barrier;
} kv_req;

typedef struct kv_conn {
	uv_tcp_t tcp;
	struct kvd *s;
	struct kv_conn *next; /* every open connection */
	kv_req *head, *tail;
	unsigned pending;
	bool reading;
	bool closing;
	size_t queued_bytes;
	char in[KV_LINE_MAX];
	size_t in_len;
} kv_conn;

typedef struct kvd {
	uint64_t id;
	const char *data_dir;
	const char *raft_address;
	const char *client_address;
	kv_peer peers[KV_MEMBERS_MAX];
	unsigned n_peers;
	unsigned snapshot_threshold;
	unsigned snapshot_trailing;

	uv_loop_t *loop;
	struct raft raft;
	struct raft_io io;
	struct raft_uv_transport transport;
	struct raft_fsm fsm;
	fsm_state tso;
	lead_driver driver;
	kv_table table;
	bool started;       /* raft_start returned: a restore now is an install from the leader */
	unsigned installed; /* snapshots installed from the leader since start */

	uv_tcp_t listener;
	uv_timer_t tick;
	uv_timer_t kick;
	uv_signal_t sigterm, sigint;
	kv_conn *conns;
	kv_req *wait_head, *wait_tail; /* TSO requests waiting for the driver to serve */
	bool stopping;
	int exit_code;
} kvd;

static const uint8_t kv_refused_marker;
#define KV_REFUSED ((void *)(uintptr_t)&kv_refused_marker)

/* ---- the state machine: both kinds of entries, one snapshot ---------------------- */

/*
 * Applies one entry, in log order, on every member alike. The TSO's
 * commands go to libtsoracle's state machine with libraft's result
 * pointer, whose verdict the driver needs (a refused HighWater is a failed
 * proposal, not a commit). A malformed command of ours is refused by a rule
 * that depends only on its bytes (every member reaches the same state) and
 * apply goes on: an error would stall this member's log at that entry.
 */
static int kv_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
	kvd *s = fsm->data;
	const uint8_t *p = buf->base;
	size_t klen, vlen, need;

	*result = NULL;
	if (buf->len >= KV_ENVELOPE && p[0] == KV_KIND_TSO)
		return fsm_apply_cmd_result(&s->tso, p + KV_ENVELOPE, buf->len - KV_ENVELOPE, result);
	if (buf->len < KV_ENVELOPE || p[0] != KV_KIND_KV)
		goto refused;
	klen = get_u16(p + 2);
	vlen = get_u32(p + 4);
	need = KV_ENVELOPE + klen + vlen;
	if (klen == 0 || klen > KV_KEY_MAX || vlen > KV_VALUE_MAX || buf->len != (need + 7) / 8 * 8 ||
	    !kv_word_ok((const char *)p + KV_ENVELOPE, klen + vlen))
		goto refused;
	if (p[1] == KV_OP_PUT) {
		if (kv_put(&s->table, (const char *)p + KV_ENVELOPE, klen,
			   (const char *)p + KV_ENVELOPE + klen, vlen) != 0)
			return RAFT_NOMEM;
		return 0;
	}
	if (p[1] == KV_OP_DEL && vlen == 0) {
		kv_del(&s->table, (const char *)p + KV_ENVELOPE, klen);
		return 0;
	}
refused:
	logf_("warning", "refused a malformed entry of %zu bytes (kind %u)", buf->len,
	      buf->len > 0 ? p[0] : 0u);
	*result = KV_REFUSED;
	return 0;
}

/* The snapshot: magic, count, the TSO's state, then count (u16 klen, u32
 * vlen, key, value). libraft owns and frees the buffers (no finalize). */
static int kv_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
	kvd *s = fsm->data;
	size_t len = KV_SNAPSHOT_HEADER;
	uint8_t *p, *q;

	for (size_t b = 0; b < KV_BUCKETS; b++)
		for (kv_entry *e = s->table.bucket[b]; e != NULL; e = e->next)
			len += 6 + strlen(e->key) + strlen(e->value);
	*bufs = raft_malloc(sizeof **bufs);
	p = raft_malloc(len);
	if (*bufs == NULL || p == NULL) {
		raft_free(*bufs);
		raft_free(p);
		return RAFT_NOMEM;
	}
	put_u32(p, KV_SNAPSHOT_MAGIC);
	put_u32(p + 4, (uint32_t)s->table.count);
	fsm_snapshot_put(&s->tso, p + 8);
	q = p + KV_SNAPSHOT_HEADER;
	for (size_t b = 0; b < KV_BUCKETS; b++) {
		for (kv_entry *e = s->table.bucket[b]; e != NULL; e = e->next) {
			size_t kl = strlen(e->key), vl = strlen(e->value);

			put_u16(q, (uint16_t)kl);
			put_u32(q + 2, (uint32_t)vl);
			memcpy(q + 6, e->key, kl);
			memcpy(q + 6 + kl, e->value, vl);
			q += 6 + kl + vl;
		}
	}
	(*bufs)[0].base = p;
	(*bufs)[0].len = len;
	*n_bufs = 1;
	return 0;
}

/* Replaces both states with the snapshot's, or changes nothing and fails. */
static int kv_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
	kvd *s = fsm->data;
	const uint8_t *p = buf->base, *end = p + buf->len;
	kv_table *fresh;
	uint32_t count;
	int rv;

	if (buf->len < KV_SNAPSHOT_HEADER || get_u32(p) != KV_SNAPSHOT_MAGIC)
		return RAFT_MALFORMED;
	fresh = calloc(1, sizeof *fresh);
	if (fresh == NULL)
		return RAFT_NOMEM;
	count = get_u32(p + 4);
	p += KV_SNAPSHOT_HEADER;
	for (uint32_t i = 0; i < count; i++) {
		size_t kl, vl;

		if (end - p < 6)
			goto malformed;
		kl = get_u16(p);
		vl = get_u32(p + 2);
		if (kl == 0 || kl > KV_KEY_MAX || vl > KV_VALUE_MAX || (size_t)(end - p) < 6 + kl + vl)
			goto malformed;
		if (kv_put(fresh, (const char *)p + 6, kl, (const char *)p + 6 + kl, vl) != 0) {
			kv_clear(fresh);
			free(fresh);
			return RAFT_NOMEM;
		}
		p += 6 + kl + vl;
	}
	if (p != end)
		goto malformed;
	rv = fsm_snapshot_get(&s->tso, (const uint8_t *)buf->base + 8, FSM_SNAPSHOT_SIZE);
	if (rv != 0) {
		kv_clear(fresh);
		free(fresh);
		return rv;
	}
	kv_clear(&s->table);
	s->table = *fresh;
	free(fresh);
	if (s->started) {
		s->installed++;
		logf_("info", "installed a snapshot from the leader: %zu keys, high-water %" PRIu64 " ms",
		      s->table.count, s->tso.high_water_ms);
	}
	raft_free(buf->base);
	return 0;
malformed:
	kv_clear(fresh);
	free(fresh);
	return RAFT_MALFORMED;
}

/* ---- the driver's host side -------------------------------------------------------- */

static void kv_kick_cb(uv_timer_t *t);

/* From inside libraft's callbacks too: only schedules lead_sync. */
static void kv_kick(void *arg)
{
	kvd *s = arg;

	if (!s->stopping)
		uv_timer_start(&s->kick, kv_kick_cb, 0, 0);
}

/* persist_high_water: the TSO's command inside our envelope, as one entry. */
static int kv_propose(void *arg, struct raft *raft, struct raft_apply *req, const uint8_t *cmd, size_t len,
		      raft_apply_cb cb)
{
	struct raft_buffer buf = {.len = KV_ENVELOPE + len, .base = raft_malloc(KV_ENVELOPE + len)};

	(void)arg;
	if (buf.base == NULL)
		return RAFT_NOMEM;
	memset(buf.base, 0, KV_ENVELOPE);
	((uint8_t *)buf.base)[0] = KV_KIND_TSO;
	memcpy((uint8_t *)buf.base + KV_ENVELOPE, cmd, len);
	return raft_apply(raft, req, &buf, 1, cb);
}

static void kv_lib_log(void *arg, int level, const char *msg)
{
	static const char *const names[] = {"debug", "info", "warning", "error"};

	(void)arg;
	logf_(level >= 0 && level <= TSORACLE_LOG_ERROR ? names[level] : "info", "%s", msg);
}

/* ---- answers ---------------------------------------------------------------------- */

static void kv_conn_flush(kv_conn *c);
static void kv_conn_close(kv_conn *c);

static void kv_req_free(kv_req *r)
{
	free(r->resp);
	free(r);
}

/* Sets r's answer; an orphan (its connection closed) is freed unless
 * libraft still holds it. */
static void kv_answer(kv_req *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void kv_answer(kv_req *r, const char *fmt, ...)
{
	va_list ap;
	int len;

	if (r->done)
		return;
	r->done = true;
	if (r->conn == NULL) {
		if (!r->in_raft)
			kv_req_free(r);
		return;
	}
	va_start(ap, fmt);
	len = vasprintf(&r->resp, fmt, ap);
	va_end(ap);
	if (len < 0) {
		r->resp = NULL;
		len = 0;
	}
	r->resp_len = (size_t)len;
	kv_conn_flush(r->conn);
}

static uint64_t kv_leader(kvd *s)
{
	raft_id id = 0;
	const char *address = NULL;

	raft_leader(&s->raft, &id, &address);
	return id;
}

/* ---- TSO requests ----------------------------------------------------------------- */

static void kv_wait_remove(kvd *s, kv_req *r)
{
	kv_req **pp = &s->wait_head, *prev = NULL;

	for (; *pp != NULL; prev = *pp, pp = &(*pp)->wait_next) {
		if (*pp == r) {
			*pp = r->wait_next;
			if (s->wait_tail == r)
				s->wait_tail = prev;
			r->wait_next = NULL;
			return;
		}
	}
}

/*
 * One grant for r, answered unless it must wait (true: answered). Every
 * timestamp this service hands out is one lead_grant returned with TA_OK,
 * sent once and as given: the driver's invariants (include/tsoracle.h,
 * I1-I6) make it unique and above every timestamp handed out before the
 * request arrived, on any member, in any term.
 */
static bool kv_tso_try(kvd *s, kv_req *r, ta_clock clk)
{
	uint64_t first = 0;
	int rc = lead_grant(&s->driver, clk, r->n, &first);

	switch (rc) {
	case TA_OK:
		kv_answer(r, "TS %" PRIu64 "\n", first);
		return true;
	case TA_NOT_LEADER:
		kv_answer(r, "ERR not-leader %" PRIu64 "\n", kv_leader(s));
		return true;
	case TA_FENCING:
	case TA_LEASE:
	case TA_WAIT:
		if (clk.mono_ms < r->deadline_ms)
			return false;
		kv_answer(r, "ERR unavailable %s\n", ta_result_str(rc));
		return true;
	default:
		kv_answer(r, "ERR unavailable %s\n", ta_result_str(rc));
		return true;
	}
}

/* Serves the waiters in arrival order: a later request never overtakes an
 * earlier one that still waits. */
static void kv_tso_serve(kvd *s)
{
	ta_clock clk = kv_clock();

	while (s->wait_head != NULL) {
		kv_req *r = s->wait_head;

		/* Off the list first: answering may free r. */
		s->wait_head = r->wait_next;
		if (s->wait_head == NULL)
			s->wait_tail = NULL;
		r->wait_next = NULL;
		if (!kv_tso_try(s, r, clk)) { /* still waiting: back at the head */
			r->wait_next = s->wait_head;
			s->wait_head = r;
			if (s->wait_tail == NULL)
				s->wait_tail = r;
			break;
		}
	}
}

static void kv_ready(void *arg)
{
	kv_tso_serve(arg);
}

static void kv_tso_start(kvd *s, kv_req *r)
{
	ta_clock clk = kv_clock();

	r->deadline_ms = clk.mono_ms + KV_TSO_WAIT_MS;
	if (s->wait_head == NULL && kv_tso_try(s, r, clk))
		return;
	r->wait_next = NULL;
	if (s->wait_tail != NULL)
		s->wait_tail->wait_next = r;
	else
		s->wait_head = r;
	s->wait_tail = r;
}

/* ---- writes and reads through Raft ------------------------------------------------ */

static void kv_apply_cb(struct raft_apply *req, int status, void *result)
{
	kv_req *r = req->data;

	r->in_raft = false;
	if (r->conn == NULL) { /* its client left: nobody to answer */
		kv_req_free(r);
		return;
	}
	if (status != 0) /* not known to have committed; it may still */
		kv_answer(r, "ERR failed %s\n", raft_strerror(status));
	else if (result == KV_REFUSED)
		kv_answer(r, "ERR bad-request refused by the state machine\n");
	else
		kv_answer(r, "OK %" PRIu64 "\n", (uint64_t)req->index);
}

static void kv_write_start(kvd *s, kv_req *r, uint8_t op, const char *key, const char *value)
{
	size_t klen = strlen(key), vlen = value != NULL ? strlen(value) : 0;
	size_t len = (KV_ENVELOPE + klen + vlen + 7) / 8 * 8;
	struct raft_buffer buf = {.len = len, .base = NULL};
	uint8_t *p;
	int rv;

	if (!lead_raft_takes_proposals(&s->raft)) { /* refused before allocating: nothing leaks */
		kv_answer(r, "ERR not-leader %" PRIu64 "\n", kv_leader(s));
		return;
	}
	p = buf.base = raft_malloc(len);
	if (p == NULL) {
		kv_answer(r, "ERR unavailable out of memory\n");
		return;
	}
	memset(p, 0, len);
	p[0] = KV_KIND_KV;
	p[1] = op;
	put_u16(p + 2, (uint16_t)klen);
	put_u32(p + 4, (uint32_t)vlen);
	memcpy(p + KV_ENVELOPE, key, klen);
	if (vlen > 0)
		memcpy(p + KV_ENVELOPE + klen, value, vlen);
	r->apply.data = r;
	r->in_raft = true;
	rv = raft_apply(&s->raft, &r->apply, &buf, 1, kv_apply_cb);
	if (rv != 0) { /* buf is not freed: libraft 0.22.1 may have (sidecar/lead.c says when) */
		r->in_raft = false;
		if (rv == RAFT_NOTLEADER)
			kv_answer(r, "ERR not-leader %" PRIu64 "\n", kv_leader(s));
		else
			kv_answer(r, "ERR unavailable %s\n", raft_strerror(rv));
	}
}

/* A read after a barrier: every entry committed before the read began is
 * applied, and the barrier committed in this leader's term. */
static void kv_barrier_cb(struct raft_barrier *req, int status)
{
	kv_req *r = req->data;
	kvd *s = r->conn != NULL ? r->conn->s : NULL;
	kv_entry **pp;

	r->in_raft = false;
	if (r->conn == NULL) {
		kv_req_free(r);
		return;
	}
	if (status != 0) {
		kv_answer(r, "ERR unavailable %s\n", raft_strerror(status));
		return;
	}
	pp = kv_find(&s->table, r->key);
	if (*pp != NULL)
		kv_answer(r, "VALUE %s\n", (*pp)->value);
	else
		kv_answer(r, "NOTFOUND\n");
}

static void kv_read_start(kvd *s, kv_req *r)
{
	int rv;

	r->barrier.data = r;
	r->in_raft = true;
	rv = raft_barrier(&s->raft, &r->barrier, kv_barrier_cb);
	if (rv != 0) {
		r->in_raft = false;
		if (rv == RAFT_NOTLEADER)
			kv_answer(r, "ERR not-leader %" PRIu64 "\n", kv_leader(s));
		else
			kv_answer(r, "ERR unavailable %s\n", raft_strerror(rv));
	}
}

/* ---- the client protocol ---------------------------------------------------------- */

static const char *kv_role(kvd *s)
{
	switch (raft_state(&s->raft)) {
	case RAFT_LEADER:
		return "leader";
	case RAFT_CANDIDATE:
		return "candidate";
	case RAFT_FOLLOWER:
		return "follower";
	default:
		return "unavailable";
	}
}

/* DUMP: this member's applied state, whatever its role. */
static void kv_dump(kvd *s, kv_req *r)
{
	size_t cap = 64, len = 0;
	char *out;

	for (size_t b = 0; b < KV_BUCKETS; b++)
		for (kv_entry *e = s->table.bucket[b]; e != NULL; e = e->next)
			cap += 5 + strlen(e->key) + strlen(e->value);
	out = malloc(cap);
	if (out == NULL) {
		kv_answer(r, "ERR unavailable out of memory\n");
		return;
	}
	for (size_t b = 0; b < KV_BUCKETS; b++)
		for (kv_entry *e = s->table.bucket[b]; e != NULL; e = e->next)
			len += (size_t)snprintf(out + len, cap - len, "KV %s %s\n", e->key, e->value);
	len += (size_t)snprintf(out + len, cap - len, "END %" PRIu64 "\n",
				(uint64_t)raft_last_applied(&s->raft));
	r->done = true;
	r->resp = out;
	r->resp_len = len;
	kv_conn_flush(r->conn);
}

/* Splits line into at most 3 words; returns how many. */
static int kv_words(char *line, char *w[3])
{
	int n = 0;
	char *save = NULL;

	for (char *t = strtok_r(line, " ", &save); t != NULL; t = strtok_r(NULL, " ", &save)) {
		if (n == 3)
			return 4;
		w[n++] = t;
	}
	return n;
}

static void kv_handle(kv_conn *c, char *line)
{
	kvd *s = c->s;
	kv_req *r = calloc(1, sizeof *r);
	char *w[3] = {NULL, NULL, NULL};
	int n;

	if (r == NULL) { /* no memory to answer in order: drop the client */
		logf_("warning", "closing a client: out of memory");
		kv_conn_close(c);
		return;
	}
	r->conn = c;
	r->kind = REQ_ANSWERED;
	if (c->tail != NULL)
		c->tail->next = r;
	else
		c->head = r;
	c->tail = r;
	c->pending++;

	n = kv_words(line, w);
	if (n == 0) {
		kv_answer(r, "ERR bad-request empty line\n");
	} else if (strcmp(w[0], "PUT") == 0 || strcmp(w[0], "DEL") == 0) {
		bool put = w[0][0] == 'P';
		size_t klen = n > 1 ? strlen(w[1]) : 0, vlen = n > 2 ? strlen(w[2]) : 0;

		if (n != (put ? 3 : 2) || klen == 0 || klen > KV_KEY_MAX || vlen > KV_VALUE_MAX ||
		    !kv_word_ok(w[1], klen) || (put && !kv_word_ok(w[2], vlen)))
			kv_answer(r, "ERR bad-request usage: %s\n",
				  put ? "PUT key value (1-64 and 1-256 bytes of [A-Za-z0-9._-])" : "DEL key");
		else {
			r->kind = put ? REQ_PUT : REQ_DEL;
			kv_write_start(s, r, put ? KV_OP_PUT : KV_OP_DEL, w[1], put ? w[2] : NULL);
		}
	} else if (strcmp(w[0], "GET") == 0) {
		size_t klen = n > 1 ? strlen(w[1]) : 0;

		if (n != 2 || klen == 0 || klen > KV_KEY_MAX || !kv_word_ok(w[1], klen))
			kv_answer(r, "ERR bad-request usage: GET key\n");
		else {
			r->kind = REQ_GET;
			memcpy(r->key, w[1], klen + 1);
			kv_read_start(s, r);
		}
	} else if (strcmp(w[0], "TSO") == 0) {
		char *end = NULL;
		unsigned long v = n == 2 ? strtoul(w[1], &end, 10) : 0;

		if (n != 2 || end == w[1] || *end != '\0' || v == 0 || v > KV_TSO_MAX)
			kv_answer(r, "ERR bad-request usage: TSO n (1 <= n <= %d)\n", KV_TSO_MAX);
		else {
			r->kind = REQ_TSO;
			r->n = (uint32_t)v;
			kv_tso_start(s, r);
		}
	} else if (strcmp(w[0], "DUMP") == 0 && n == 1) {
		kv_dump(s, r);
	} else if (strcmp(w[0], "STATUS") == 0 && n == 1) {
		kv_answer(r,
			  "STATUS id=%" PRIu64 " role=%s leader=%" PRIu64 " term=%" PRIu64 " applied=%" PRIu64
			  " keys=%zu installed=%u high_water=%" PRIu64 " serving=%d\n",
			  s->id, kv_role(s), kv_leader(s), (uint64_t)raft_current_term(&s->raft),
			  (uint64_t)raft_last_applied(&s->raft), s->table.count, s->installed,
			  s->tso.high_water_ms, lead_serving(&s->driver, kv_clock()) ? 1 : 0);
	} else {
		kv_answer(r, "ERR bad-request unknown command (PUT, DEL, GET, TSO, DUMP, STATUS)\n");
	}
}

/* ---- connections -------------------------------------------------------------------- */

static void kv_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	static char chunk[KV_READ_CHUNK]; /* one loop thread: read callbacks never overlap */

	(void)h;
	(void)suggested;
	*buf = uv_buf_init(chunk, sizeof chunk);
}

static void kv_conn_closed_cb(uv_handle_t *h)
{
	free(h->data);
}

static void kv_conn_close(kv_conn *c)
{
	kvd *s = c->s;

	if (c->closing)
		return;
	c->closing = true;
	for (kv_conn **pp = &s->conns; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	while (c->head != NULL) {
		kv_req *r = c->head;

		c->head = r->next;
		if (r->kind == REQ_TSO && !r->done)
			kv_wait_remove(s, r);
		r->conn = NULL; /* libraft's callback frees a request it still holds */
		if (!r->in_raft)
			kv_req_free(r);
	}
	c->tail = NULL;
	uv_close((uv_handle_t *)&c->tcp, kv_conn_closed_cb);
}

static void kv_write_cb(uv_write_t *w, int status)
{
	kv_conn *c = w->data;
	size_t len = ((uv_buf_t *)(w + 1))->len;

	c->queued_bytes -= len;
	free(((uv_buf_t *)(w + 1))->base);
	free(w);
	if (status != 0 && !c->closing)
		kv_conn_close(c);
}

static void kv_read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

/* Sends the answers that are ready, in request order, and reads on while
 * fewer than KV_PENDING_MAX requests are unanswered. */
static void kv_conn_flush(kv_conn *c)
{
	while (!c->closing && c->head != NULL && c->head->done) {
		kv_req *r = c->head;
		uv_write_t *w = malloc(sizeof *w + sizeof(uv_buf_t));

		c->head = r->next;
		if (c->head == NULL)
			c->tail = NULL;
		c->pending--;
		if (w == NULL || r->resp == NULL) {
			free(w);
			kv_req_free(r);
			kv_conn_close(c);
			return;
		}
		*(uv_buf_t *)(w + 1) = uv_buf_init(r->resp, (unsigned)r->resp_len);
		r->resp = NULL;
		kv_req_free(r);
		w->data = c;
		c->queued_bytes += ((uv_buf_t *)(w + 1))->len;
		if (uv_write(w, (uv_stream_t *)&c->tcp, (uv_buf_t *)(w + 1), 1, kv_write_cb) != 0) {
			c->queued_bytes -= ((uv_buf_t *)(w + 1))->len;
			free(((uv_buf_t *)(w + 1))->base);
			free(w);
			kv_conn_close(c);
			return;
		}
		if (c->queued_bytes > KV_OUTPUT_MAX) {
			logf_("warning", "closing a client that does not read its answers (%zu bytes queued)",
			      c->queued_bytes);
			kv_conn_close(c);
			return;
		}
	}
	if (!c->closing && !c->reading && c->pending < KV_PENDING_MAX) {
		c->reading = uv_read_start((uv_stream_t *)&c->tcp, kv_alloc_cb, kv_read_cb) == 0;
	}
}

static void kv_read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	kv_conn *c = stream->data;

	if (nread < 0) {
		kv_conn_close(c);
		return;
	}
	for (ssize_t i = 0; i < nread && !c->closing; i++) {
		char ch = buf->base[i];

		if (ch == '\r')
			continue;
		if (ch != '\n') {
			if (c->in_len == KV_LINE_MAX - 1) {
				logf_("warning", "closing a client whose line exceeds %d bytes", KV_LINE_MAX);
				kv_conn_close(c);
				return;
			}
			c->in[c->in_len++] = ch;
			continue;
		}
		c->in[c->in_len] = '\0';
		c->in_len = 0;
		kv_handle(c, c->in);
	}
	if (!c->closing && c->pending >= KV_PENDING_MAX && c->reading) {
		uv_read_stop(stream);
		c->reading = false;
	}
}

static void kv_accept_cb(uv_stream_t *listener, int status)
{
	kvd *s = listener->data;
	kv_conn *c;

	if (status != 0)
		return;
	c = calloc(1, sizeof *c);
	if (c == NULL || uv_tcp_init(s->loop, &c->tcp) != 0) {
		free(c);
		return;
	}
	c->s = s;
	c->tcp.data = c;
	if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
		uv_close((uv_handle_t *)&c->tcp, kv_conn_closed_cb);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	c->next = s->conns;
	s->conns = c;
	kv_conn_flush(c); /* starts reading */
}

/* ---- the loop's timers, signals, shutdown ------------------------------------------ */

static void kv_sync(kvd *s)
{
	if (s->stopping)
		return;
	lead_sync(&s->driver, kv_clock());
	if (s->tso.halted) {
		logf_("error", "stopping: %s", s->tso.halt_reason);
		s->exit_code = 1;
		raise(SIGTERM);
		return;
	}
	kv_tso_serve(s); /* expires waiters past their deadline, also when not serving */
}

static void kv_tick_cb(uv_timer_t *t)
{
	kv_sync(t->data);
}

static void kv_kick_cb(uv_timer_t *t)
{
	kv_sync(t->data);
}

static void kv_raft_closed(struct raft *r)
{
	kvd *s = r->data;

	raft_uv_close(&s->io);
	raft_uv_tcp_close(&s->transport);
	uv_close((uv_handle_t *)&s->tick, NULL);
	uv_close((uv_handle_t *)&s->kick, NULL);
	uv_close((uv_handle_t *)&s->sigterm, NULL);
	uv_close((uv_handle_t *)&s->sigint, NULL);
}

static void kv_signal_cb(uv_signal_t *sig, int signum)
{
	kvd *s = sig->data;

	if (s->stopping)
		return;
	logf_("info", "stopping on signal %d", signum);
	s->stopping = true;
	while (s->wait_head != NULL) {
		kv_req *r = s->wait_head;

		kv_wait_remove(s, r);
		kv_answer(r, "ERR unavailable shutting down\n");
	}
	while (s->conns != NULL)
		kv_conn_close(s->conns);
	uv_close((uv_handle_t *)&s->listener, NULL);
	uv_timer_stop(&s->tick);
	uv_timer_stop(&s->kick);
	lead_stop(&s->driver);
	raft_close(&s->raft, kv_raft_closed);
}

/* ---- start ------------------------------------------------------------------------ */

static int kv_parse_ipv4(const char *address, struct sockaddr_in *sa)
{
	char host[64];
	const char *colon = strrchr(address, ':');
	char *end = NULL;
	unsigned long port;

	if (colon == NULL || (size_t)(colon - address) >= sizeof host)
		return -1;
	memcpy(host, address, (size_t)(colon - address));
	host[colon - address] = '\0';
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno != 0 || end == colon + 1 || *end != '\0' || port == 0 || port > 65535)
		return -1;
	return uv_ip4_addr(host, (int)port, sa) == 0 ? 0 : -1;
}

static void kv_usage(FILE *f)
{
	fprintf(f,
		"usage: kvd --id N --data-dir DIR --raft IP:PORT --client IP:PORT\n"
		"           --peer ID=IP:PORT [--peer ...] [--snapshot-threshold N] [--snapshot-trailing N]\n"
		"A replicated key-value service whose Raft log also carries tsoracle's timestamps\n"
		"(examples/kv/README.md). --peer lists every member's Raft address, this one's included;\n"
		"it is used once, to bootstrap an empty data directory.\n");
}

static int kv_parse_args(kvd *s, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"id", required_argument, NULL, 'i'},
	    {"data-dir", required_argument, NULL, 'd'},
	    {"raft", required_argument, NULL, 'r'},
	    {"client", required_argument, NULL, 'c'},
	    {"peer", required_argument, NULL, 'p'},
	    {"snapshot-threshold", required_argument, NULL, 'T'},
	    {"snapshot-trailing", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int o;

	s->snapshot_threshold = 1024;
	s->snapshot_trailing = 128;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		char *end = NULL;
		unsigned long v;

		switch (o) {
		case 'i':
			s->id = strtoull(optarg, &end, 10);
			if (end == optarg || *end != '\0' || s->id == 0)
				return fprintf(stderr, "kvd: --id must be a positive integer\n"), -1;
			break;
		case 'd':
			s->data_dir = optarg;
			break;
		case 'r':
			s->raft_address = optarg;
			break;
		case 'c':
			s->client_address = optarg;
			break;
		case 'p': {
			const char *eq = strchr(optarg, '=');
			kv_peer *p = &s->peers[s->n_peers];
			struct sockaddr_in sa;

			if (s->n_peers == KV_MEMBERS_MAX)
				return fprintf(stderr, "kvd: at most %d --peer\n", KV_MEMBERS_MAX), -1;
			p->id = eq != NULL ? strtoull(optarg, &end, 10) : 0;
			if (eq == NULL || end != eq || p->id == 0 || strlen(eq + 1) >= sizeof p->address ||
			    kv_parse_ipv4(eq + 1, &sa) != 0)
				return fprintf(stderr, "kvd: --peer %s: expected ID=IPv4:PORT\n", optarg), -1;
			strcpy(p->address, eq + 1);
			s->n_peers++;
			break;
		}
		case 'T':
		case 't':
			v = strtoul(optarg, &end, 10);
			if (end == optarg || *end != '\0' || v == 0 || v > UINT_MAX)
				return fprintf(stderr, "kvd: --%s must be a positive integer\n",
					       o == 'T' ? "snapshot-threshold" : "snapshot-trailing"),
				       -1;
			*(o == 'T' ? &s->snapshot_threshold : &s->snapshot_trailing) = (unsigned)v;
			break;
		case 'h':
			kv_usage(stdout);
			exit(0);
		default:
			kv_usage(stderr);
			return -1;
		}
	}
	if (optind != argc || s->id == 0 || s->data_dir == NULL || s->raft_address == NULL ||
	    s->client_address == NULL || s->n_peers == 0) {
		kv_usage(stderr);
		return -1;
	}
	return 0;
}

static int kv_start(kvd *s)
{
	struct raft_configuration conf;
	struct sockaddr_in sa;
	ta_config cfg;
	int rv;
	lead_host host = {
	    .arg = s,
	    .kick = kv_kick,
	    .propose = kv_propose,
	    .ready = kv_ready,
	    .log = kv_lib_log,
	    .log_level = TSORACLE_LOG_INFO,
	};

	if (tsoracle_version() / 10000 != TSORACLE_VERSION_MAJOR) {
		logf_("error", "libtsoracle %s is not of major version %d", tsoracle_version_string(),
		      TSORACLE_VERSION_MAJOR);
		return -1;
	}
	if (kv_parse_ipv4(s->client_address, &sa) != 0 || (ntohl(sa.sin_addr.s_addr) >> 24) != 127) {
		logf_("error", "--client %s: this example serves plain TCP on a loopback IPv4 address only",
		      s->client_address);
		return -1;
	}
	s->fsm = (struct raft_fsm){
	    .version = 2, .data = s, .apply = kv_apply, .snapshot = kv_snapshot, .restore = kv_restore};
	ta_config_default(&cfg);
	lead_init(&s->driver, &s->raft, &s->tso, &cfg, &host);
	fsm_set_log(&s->tso, kv_lib_log, s);

	if (mkdir(s->data_dir, 0700) != 0 && errno != EEXIST) {
		logf_("error", "mkdir %s: %s", s->data_dir, strerror(errno));
		return -1;
	}
	s->transport.version = 1; /* libraft 0.22.1 refuses an unversioned transport */
	if ((rv = raft_uv_tcp_init(&s->transport, s->loop)) != 0) {
		logf_("error", "raft_uv_tcp_init: %s", raft_strerror(rv));
		return -1;
	}
	if ((rv = raft_uv_init(&s->io, s->loop, s->data_dir, &s->transport)) != 0) {
		logf_("error", "raft_uv_init(%s): %s", s->data_dir, s->io.errmsg);
		return -1;
	}
	if ((rv = raft_init(&s->raft, &s->io, &s->fsm, s->id, s->raft_address)) != 0) {
		logf_("error", "raft_init: %s", raft_errmsg(&s->raft));
		return -1;
	}
	s->raft.data = s;
	raft_configuration_init(&conf);
	for (unsigned i = 0; i < s->n_peers; i++) {
		if (raft_configuration_add(&conf, s->peers[i].id, s->peers[i].address, RAFT_VOTER) != 0) {
			logf_("error", "--peer %" PRIu64 ": duplicate or out of memory", s->peers[i].id);
			return -1;
		}
	}
	rv = raft_bootstrap(&s->raft, &conf); /* only an empty directory; a restart keeps its log */
	raft_configuration_close(&conf);
	if (rv == 0)
		logf_("info", "bootstrapped a cluster of %u member(s) in %s", s->n_peers, s->data_dir);
	else if (rv != RAFT_CANTBOOTSTRAP) {
		logf_("error", "raft_bootstrap: %s", raft_errmsg(&s->raft));
		return -1;
	}
	raft_set_election_timeout(&s->raft, KV_ELECTION_MS);
	raft_set_heartbeat_timeout(&s->raft, KV_HEARTBEAT_MS);
	raft_set_snapshot_threshold(&s->raft, s->snapshot_threshold);
	raft_set_snapshot_trailing(&s->raft, s->snapshot_trailing);
	raft_set_pre_vote(&s->raft, true);
	raft_seed(&s->raft, (unsigned)(now_ms(CLOCK_MONOTONIC) ^ s->id));

	uv_timer_init(s->loop, &s->tick);
	uv_timer_init(s->loop, &s->kick);
	s->tick.data = s->kick.data = s;
	uv_signal_init(s->loop, &s->sigterm);
	uv_signal_init(s->loop, &s->sigint);
	s->sigterm.data = s->sigint.data = s;
	uv_signal_start(&s->sigterm, kv_signal_cb, SIGTERM);
	uv_signal_start(&s->sigint, kv_signal_cb, SIGINT);

	if ((rv = raft_start(&s->raft)) != 0) {
		/* (libraft leaves its message empty for some failures, such as
		 * the listen on the Raft port: the code's name says what failed) */
		logf_("error", "raft_start: %s (%s)",
		      s->tso.halted ? s->tso.halt_reason : raft_errmsg(&s->raft), raft_strerror(rv));
		return -1;
	}
	s->started = true;
	uv_timer_start(&s->tick, kv_tick_cb, LEAD_TICK_MS, LEAD_TICK_MS);

	uv_tcp_init(s->loop, &s->listener);
	s->listener.data = s;
	if ((rv = uv_tcp_bind(&s->listener, (const struct sockaddr *)&sa, 0)) != 0 ||
	    (rv = uv_listen((uv_stream_t *)&s->listener, KV_BACKLOG, kv_accept_cb)) != 0) {
		logf_("error", "listen on %s: %s", s->client_address, uv_strerror(rv));
		return -1;
	}
	logf_("info",
	      "serving clients on %s; raft at %s, last index %" PRIu64 ", %zu keys, high-water %" PRIu64
	      " ms",
	      s->client_address, s->raft_address, (uint64_t)raft_last_index(&s->raft), s->table.count,
	      s->tso.high_water_ms);
	return 0;
}

int main(int argc, char **argv)
{
	static kvd s; /* large (the table's buckets): not on the stack */

	if (kv_parse_args(&s, argc, argv) != 0)
		return 2;
	g_id = s.id;
	signal(SIGPIPE, SIG_IGN);
	s.loop = uv_default_loop();
	if (kv_start(&s) != 0)
		return 1;
	uv_run(s.loop, UV_RUN_DEFAULT);
	uv_loop_close(s.loop);
	kv_clear(&s.table);
	logf_("info", "stopped");
	return s.exit_code;
}
