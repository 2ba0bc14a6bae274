/* sim_io.c: makes libraft's in-memory fixture I/O survive a raft restart, so a node can crash and restart. */
#include "sim_io.h"

#include <raft/fixture.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The requests this layer follows until they complete: appends (to count
 * what is stored), snapshot installs (trailing 0: the fixture then drops
 * every entry) and snapshot loads (to know which snapshot is being sent). */
enum sim_io_kind { SIM_IO_APPEND, SIM_IO_INSTALL, SIM_IO_LOAD, SIM_IO_N_KINDS };

/* Requests of one kind in flight on one raft_io: raft keeps a few dozen
 * appends at most, and one install. */
#define SIM_IO_QUEUE_LEN 256

/* A request in flight, and what its completion needs. */
typedef struct sim_io_req {
	void *req;
	void (*cb)(void); /* the caller's callback, cast back by kind */
	unsigned n;       /* append: its entries */
	raft_index index; /* append: a truncation to do after it (0: none);
			   * install: the snapshot's index */
} sim_io_req;

/* They complete in the order they were submitted (the fixture's latencies
 * are per server and do not change, see sim_io.h): a ring. */
typedef struct sim_io_queue {
	sim_io_req reqs[SIM_IO_QUEUE_LEN];
	unsigned head;
	unsigned len;
} sim_io_queue;

typedef struct sim_io {
	struct raft *raft;
	struct raft_io *io;
	raft_index base; /* the stored entries are base + 1 .. base + stored */
	raft_index stored;
	int (*load)(struct raft_io *, raft_term *, raft_id *, struct raft_snapshot **, raft_index *,
		    struct raft_entry **, size_t *);
	int (*truncate)(struct raft_io *, raft_index);
	int (*append)(struct raft_io *, struct raft_io_append *, const struct raft_entry[], unsigned,
		      raft_io_append_cb);
	int (*snapshot_put)(struct raft_io *, unsigned, struct raft_io_snapshot_put *,
			    const struct raft_snapshot *, raft_io_snapshot_put_cb);
	int (*snapshot_get)(struct raft_io *, struct raft_io_snapshot_get *, raft_io_snapshot_get_cb);
	int (*send)(struct raft_io *, struct raft_io_send *, const struct raft_message *, raft_io_send_cb);
	sim_io_queue queues[SIM_IO_N_KINDS];
	bool loaded; /* a snapshot was just loaded for sending: its index, term */
	raft_index loaded_index;
	raft_term loaded_term;
	unsigned long installs; /* snapshots installed */
} sim_io;

static sim_io sim_ios[RAFT_FIXTURE_MAX_SERVERS];
static unsigned sim_n_ios;
static bool sim_io_fix_terms = true;
static unsigned long sim_io_term_fixes;
static unsigned long sim_io_change_fixes;

static void sim_io_die(const char *what)
{
	fprintf(stderr, "sim: fixture I/O: %s\n", what);
	abort();
}

static sim_io *sim_io_of(struct raft_io *io)
{
	for (unsigned i = 0; i < sim_n_ios; i++)
		if (sim_ios[i].io == io)
			return &sim_ios[i];
	sim_io_die("a raft_io that was not wrapped");
	return NULL;
}

static void sim_io_push(sim_io_queue *q, sim_io_req r)
{
	if (q->len == SIM_IO_QUEUE_LEN)
		sim_io_die("too many requests in flight");
	q->reqs[(q->head + q->len) % SIM_IO_QUEUE_LEN] = r;
	q->len++;
}

/* The request of that kind submitted last, or NULL. */
static sim_io_req *sim_io_last(sim_io_queue *q)
{
	return q->len == 0 ? NULL : &q->reqs[(q->head + q->len - 1) % SIM_IO_QUEUE_LEN];
}

/* req has completed: it is the oldest of its kind on its raft_io. Pops it
 * into *r and returns that raft_io. */
static sim_io *sim_io_pop(enum sim_io_kind kind, const void *req, sim_io_req *r)
{
	for (unsigned i = 0; i < sim_n_ios; i++) {
		sim_io_queue *q = &sim_ios[i].queues[kind];

		if (q->len == 0 || q->reqs[q->head].req != req)
			continue;
		*r = q->reqs[q->head];
		q->head = (q->head + 1) % SIM_IO_QUEUE_LEN;
		q->len--;
		return &sim_ios[i];
	}
	sim_io_die("a request completed out of order");
	return NULL;
}

static int sim_io_load(struct raft_io *io, raft_term *term, raft_id *voted_for,
		       struct raft_snapshot **snapshot, raft_index *start_index, struct raft_entry **entries,
		       size_t *n_entries)
{
	sim_io *s = sim_io_of(io);
	raft_index drop;
	int rv = s->load(io, term, voted_for, snapshot, start_index, entries, n_entries);

	if (rv != 0 || *snapshot == NULL)
		return rv;
	if ((*snapshot)->index < s->base)
		sim_io_die("a snapshot older than the installed one");
	/* The fixture said start_index = snapshot index + 1; the entries it
	 * returned start at base + 1: drop those the snapshot covers. They
	 * share one batch, which the remaining ones keep alive. */
	drop = (*snapshot)->index - s->base;
	if (drop >= *n_entries) {
		if (*n_entries > 0) {
			raft_free((*entries)[0].batch);
			raft_free(*entries);
		}
		*entries = NULL;
		*n_entries = 0;
		return 0;
	}
	memmove(*entries, *entries + drop, (*n_entries - drop) * sizeof **entries);
	*n_entries -= (size_t)drop;
	return 0;
}

/* Truncates what is stored now from index on. */
static int sim_io_truncate_now(sim_io *s, raft_index index)
{
	int rv;

	if (index > s->base + s->stored)
		return 0; /* nothing stored from index on */
	/* The fixture keeps its first (index - 1) entries: count from base. */
	rv = s->truncate(s->io, index <= s->base ? 1 : index - s->base);
	if (rv == 0)
		s->stored = index <= s->base ? 0 : index - s->base - 1;
	return rv;
}

static int sim_io_truncate(struct raft_io *io, raft_index index)
{
	sim_io *s = sim_io_of(io);
	sim_io_req *last = sim_io_last(&s->queues[SIM_IO_APPEND]);

	if (last == NULL)
		return sim_io_truncate_now(s, index);
	/* Appends are in flight: a disk would truncate after them (libraft's
	 * uv backend queues it so), while the fixture would truncate at once
	 * what is stored and then store them, stale entries included. */
	if (last->index == 0 || index < last->index)
		last->index = index;
	return 0;
}

static void sim_io_append_cb(struct raft_io_append *req, int status)
{
	sim_io_req r;
	sim_io *s = sim_io_pop(SIM_IO_APPEND, req, &r);

	if (status == 0)
		s->stored += r.n;
	if (r.index != 0 && sim_io_truncate_now(s, r.index) != 0)
		sim_io_die("a deferred truncation failed");
	((raft_io_append_cb)r.cb)(req, status);
}

/*
 * libraft's follower recorded the batch's last configuration change at the
 * batch's first index (sim_io.h): the entries are persisted right after
 * they joined the in-memory log, so they end at raft_last_index.
 */
static void sim_io_fix_change_index(sim_io *s, const struct raft_entry entries[], unsigned n)
{
	struct raft *r = s->raft;
	raft_index first, change;
	unsigned last_change = n;

	for (unsigned i = 0; i < n; i++)
		if (entries[i].type == RAFT_CHANGE)
			last_change = i;
	if (last_change == n || last_change == 0 || raft_last_index(r) + 1 < n)
		return;
	first = raft_last_index(r) + 1 - n;
	change = first + last_change;
	if (r->configuration_uncommitted_index != first)
		return; /* a leader's own entries, or already right */
	r->configuration_uncommitted_index = change;
	sim_io_change_fixes++;
}

static int sim_io_append(struct raft_io *io, struct raft_io_append *req, const struct raft_entry entries[],
			 unsigned n, raft_io_append_cb cb)
{
	sim_io *s = sim_io_of(io);
	int rv;

	if (sim_io_fix_terms)
		sim_io_fix_change_index(s, entries, n);
	rv = s->append(io, req, entries, n, sim_io_append_cb);

	if (rv == 0)
		sim_io_push(&s->queues[SIM_IO_APPEND],
			    (sim_io_req){.req = req, .cb = (void (*)(void))cb, .n = n});
	return rv;
}

static void sim_io_put_cb(struct raft_io_snapshot_put *req, int status)
{
	sim_io_req r;
	sim_io *s = sim_io_pop(SIM_IO_INSTALL, req, &r);

	if (status == 0) {
		/* The fixture dropped every entry (truncate(1), through
		 * sim_io_truncate) and now counts from the snapshot. */
		s->base = r.index;
		s->stored = 0;
		s->installs++;
	}
	((raft_io_snapshot_put_cb)r.cb)(req, status);
}

static int sim_io_snapshot_put(struct raft_io *io, unsigned trailing, struct raft_io_snapshot_put *req,
			       const struct raft_snapshot *snapshot, raft_io_snapshot_put_cb cb)
{
	sim_io *s = sim_io_of(io);
	int rv;

	if (trailing != 0)
		return s->snapshot_put(io, trailing, req, snapshot, cb); /* keeps every entry */
	rv = s->snapshot_put(io, trailing, req, snapshot, sim_io_put_cb);
	if (rv == 0)
		sim_io_push(&s->queues[SIM_IO_INSTALL],
			    (sim_io_req){.req = req, .cb = (void (*)(void))cb, .index = snapshot->index});
	return rv;
}

static void sim_io_get_cb(struct raft_io_snapshot_get *req, struct raft_snapshot *snapshot, int status)
{
	sim_io_req r;
	sim_io *s = sim_io_pop(SIM_IO_LOAD, req, &r);

	s->loaded = status == 0 && snapshot != NULL;
	if (s->loaded) {
		s->loaded_index = snapshot->index;
		s->loaded_term = snapshot->term;
	}
	((raft_io_snapshot_get_cb)r.cb)(req, snapshot, status); /* sends the InstallSnapshot, at once */
	s->loaded = false;
}

static int sim_io_snapshot_get(struct raft_io *io, struct raft_io_snapshot_get *req,
			       raft_io_snapshot_get_cb cb)
{
	sim_io *s = sim_io_of(io);
	int rv = s->snapshot_get(io, req, sim_io_get_cb);

	if (rv == 0)
		sim_io_push(&s->queues[SIM_IO_LOAD], (sim_io_req){.req = req, .cb = (void (*)(void))cb});
	return rv;
}

static int sim_io_send(struct raft_io *io, struct raft_io_send *req, const struct raft_message *message,
		       raft_io_send_cb cb)
{
	sim_io *s = sim_io_of(io);
	struct raft_message fixed;

	if (!sim_io_fix_terms || !s->loaded || message->type != RAFT_INSTALL_SNAPSHOT ||
	    message->install_snapshot.last_index != s->loaded_index ||
	    message->install_snapshot.last_term == s->loaded_term)
		return s->send(io, req, message, cb);
	/* libraft's legacy layer moved last_index to the snapshot it loaded
	 * but kept the term of the one it had asked for: send what a fixed
	 * libraft would (the fixture copies the message). */
	fixed = *message;
	fixed.install_snapshot.last_term = s->loaded_term;
	sim_io_term_fixes++;
	return s->send(io, req, &fixed, cb);
}

void sim_io_fix_snapshot_terms(bool fix)
{
	sim_io_fix_terms = fix;
}

unsigned long sim_io_snapshot_term_fixes(void)
{
	return sim_io_term_fixes;
}

unsigned long sim_io_change_index_fixes(void)
{
	return sim_io_change_fixes;
}

void sim_io_wrap(struct raft *r, unsigned n_stored)
{
	struct raft_io *io = r->io;
	sim_io *s;

	if (sim_n_ios == RAFT_FIXTURE_MAX_SERVERS)
		sim_io_die("too many servers");
	s = &sim_ios[sim_n_ios++];
	memset(s, 0, sizeof *s);
	s->raft = r;
	s->io = io;
	s->stored = n_stored;
	s->load = io->load;
	s->truncate = io->truncate;
	s->append = io->append;
	s->snapshot_put = io->snapshot_put;
	s->snapshot_get = io->snapshot_get;
	s->send = io->send;
	io->load = sim_io_load;
	io->truncate = sim_io_truncate;
	io->append = sim_io_append;
	io->snapshot_put = sim_io_snapshot_put;
	io->snapshot_get = sim_io_snapshot_get;
	io->send = sim_io_send;
}

unsigned long sim_io_installs(struct raft_io *io)
{
	return sim_io_of(io)->installs;
}

void sim_io_reset(void)
{
	sim_n_ios = 0;
}
