/* main.c: tsoracled: configuration, pid file, signals, and the event loop. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <unistd.h>
#include <uv.h>

#include "clock.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "node.h"
#include "server.h"

#define TSORACLED_VERSION "0.1.0"
#define MAIN_ERR_SIZE     512
#define MAIN_PREFIX_SIZE  32
/* Open files besides client connections: Raft peers (two per member) and
 * their handshakes, the forwarder, Raft's segments and snapshots, the
 * listeners, the pid file, libuv's own, stdio. */
#define MAIN_FD_RESERVE   256

typedef struct daemon_state {
	uv_loop_t loop;
	cfg cfg;
	node node;
	srv srv;
	metrics metrics; /* metrics-address: started last, stopped first */
	uv_signal_t sigterm;
	uv_signal_t sigint;
	uv_signal_t sighup;
	int pid_fd;
	int dir_fd;        /* the data directory, locked */
	bool started;      /* node and server are running */
	bool srv_ready;    /* srv_init succeeded: srv_close is due */
	bool stopping;     /* a stop was asked for */
	bool closing;      /* srv_close, then node_close, are under way */
	bool handing_over; /* waiting for the handover before closing */
	uint64_t handover_started_ms;
	node_transfer_req handover;
	int exit_code;
} daemon_state;

/* Reads the pid in the pid file into buf; false (and "unknown") if none. */
static bool main_read_pid(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, len - 1) : -1;

	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n : 0] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	if (buf[0] != '\0')
		return true;
	snprintf(buf, len, "unknown");
	return false;
}

/*
 * The data directory's lock: an exclusive flock on the directory itself,
 * held for the daemon's life, taken before anything is written in it (the
 * pid file, libraft's probe files and segments), so a second tsoracled on
 * the same directory stops before it touches the first one's log, whatever
 * pid-file either was given. The directory is created if missing (mode
 * 0700); creating it writes nothing in it.
 */
static int main_lock_data_dir(daemon_state *d, char *err, size_t errlen)
{
	char pid[32];
	int fd;

	if (mkdir(d->cfg.data_dir, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "could not create data directory \"%s\": %s", d->cfg.data_dir,
			 strerror(errno));
		return -1;
	}
	fd = open(d->cfg.data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "could not open data directory \"%s\": %s", d->cfg.data_dir,
			 strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		int e = errno;

		close(fd);
		if (e != EWOULDBLOCK) {
			snprintf(err, errlen, "could not lock data directory \"%s\": %s", d->cfg.data_dir,
				 strerror(e));
			return -1;
		}
		/* Its pid: from the pid file this one was given, else from the
		 * default place in the directory (where the other's usually is). */
		if (!main_read_pid(d->cfg.pid_file, pid, sizeof pid)) {
			char path[CFG_PATH_SIZE + sizeof CFG_PID_FILE_NAME];

			snprintf(path, sizeof path, "%s/%s", d->cfg.data_dir, CFG_PID_FILE_NAME);
			main_read_pid(path, pid, sizeof pid);
		}
		snprintf(err, errlen,
			 "data directory \"%s\" is in use by another tsoracled (pid %s): stop it, or give "
			 "this one another data-dir",
			 d->cfg.data_dir, pid);
		return -1;
	}
	d->dir_fd = fd;
	return 0;
}

/*
 * Raises RLIMIT_NOFILE's soft limit to its hard limit (the default soft
 * limit, often 1024, would make accept fail long before max-connections),
 * and refuses to start if max-connections cannot fit in it.
 */
static int main_raise_nofile(const cfg *c, char *err, size_t errlen)
{
	struct rlimit rl;
	rlim_t need = (rlim_t)c->max_connections + MAIN_FD_RESERVE;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
		snprintf(err, errlen, "getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
		return -1;
	}
	if (rl.rlim_cur < rl.rlim_max) {
		rlim_t was = rl.rlim_cur;

		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
			snprintf(err, errlen, "setrlimit(RLIMIT_NOFILE, %llu): %s",
				 (unsigned long long)rl.rlim_max, strerror(errno));
			return -1;
		}
		log_debug("open files limit raised from %llu to %llu", (unsigned long long)was,
			  (unsigned long long)rl.rlim_cur);
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
		snprintf(
		    err, errlen,
		    "max-connections (%u) needs %llu open files (%d more for peers and files), but the "
		    "open files limit (RLIMIT_NOFILE, hard) is %llu: lower max-connections, or raise the "
		    "limit (ulimit -Hn, systemd LimitNOFILE=)",
		    c->max_connections, (unsigned long long)need, MAIN_FD_RESERVE,
		    (unsigned long long)rl.rlim_cur);
		return -1;
	}
	return 0;
}

/*
 * The pid file, also held (flock) for the daemon's life: two daemons given
 * one pid file cannot both run, even on different data directories.
 */
static int main_lock_pid_file(daemon_state *d, char *err, size_t errlen)
{
	char buf[32];
	int fd = open(d->cfg.pid_file, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	int len;

	if (fd < 0) {
		snprintf(err, errlen, "could not open pid file \"%s\": %s", d->cfg.pid_file, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		ssize_t n = read(fd, buf, sizeof buf - 1);

		buf[n > 0 ? n : 0] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		snprintf(err, errlen, "another tsoracled (pid %s) holds \"%s\"", buf[0] ? buf : "unknown",
			 d->cfg.pid_file);
		close(fd);
		return -1;
	}
	len = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)len, 0) != len) {
		snprintf(err, errlen, "could not write pid file \"%s\": %s", d->cfg.pid_file,
			 strerror(errno));
		close(fd);
		return -1;
	}
	d->pid_fd = fd;
	return 0;
}

static void main_close_walk_cb(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static void main_node_closed(node *n)
{
	daemon_state *d = (daemon_state *)((char *)n - offsetof(daemon_state, node));

	/* Signals are the last handles; the loop ends once they close. Closing
	 * them restores the default actions, which for all three is to die:
	 * a signal arriving now (a second SIGTERM, a SIGHUP) must not turn
	 * this clean exit into a death by signal. */
	uv_walk(&d->loop, main_close_walk_cb, NULL);
	signal(SIGTERM, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
}

static void main_srv_closed(srv *s)
{
	daemon_state *d = (daemon_state *)((char *)s - offsetof(daemon_state, srv));

	node_close(&d->node, main_node_closed);
}

/* Closes the server (answering what it holds), then the node. */
static void main_close(daemon_state *d)
{
	if (d->closing)
		return;
	d->closing = true;
	log_info("stopping");
	metrics_stop(&d->metrics);
	/* A start that failed before the server existed has only the node
	 * (and the loop's handles) to close. */
	if (d->srv_ready)
		srv_close(&d->srv, main_srv_closed);
	else
		node_close(&d->node, main_node_closed);
}

static void main_handover_cb(node_transfer_req *req, uint16_t status, uint64_t leader_id)
{
	daemon_state *d = req->data;

	d->handing_over = false;
	if (status == TP_OK)
		log_info("handed leadership over to node %" PRIu64 " in %" PRIu64 " ms", leader_id,
			 clock_mono_ms() - d->handover_started_ms);
	else
		log_warn("the handover did not complete (%s): the others elect a leader after an election "
			 "timeout",
			 tp_status_str(status));
	main_close(d);
}

/*
 * Stopping the leader of a cluster hands leadership over first, so that
 * the others need not wait an election timeout to notice it is gone. The
 * server keeps running meanwhile: its clients' requests are forwarded to
 * the new leader once it is known. The node answers within
 * NODE_TRANSFER_TIMEOUT_ELECTIONS election timeouts; a second signal stops
 * at once. A follower, or a single-member cluster (no one to hand over to),
 * stops at once.
 */
static void main_stop(daemon_state *d)
{
	uint16_t status;

	if (d->stopping) {
		if (d->handing_over) {
			log_info("stopping without waiting for the handover");
			node_transfer_cancel(&d->node, &d->handover);
			d->handing_over = false;
			main_close(d);
		}
		return;
	}
	d->stopping = true;
	if (d->started && node_is_leader(&d->node)) {
		d->handover.data = d;
		d->handover_started_ms = clock_mono_ms();
		status = node_transfer(&d->node, &d->handover, 0, main_handover_cb);
		if (status == TP_OK) {
			d->handing_over = true;
			log_info("handing leadership over before stopping");
			return;
		}
	}
	main_close(d);
}

/*
 * The state machine halted (tsoracle.h: a command of a type this version does
 * not know, or a snapshot it cannot read): the node has stopped serving;
 * the daemon stops at once, without a handover (the others elect a leader,
 * and an upgraded tsoracled here applies the log from where this stopped).
 */
static void main_halt_cb(void *arg)
{
	daemon_state *d = arg;

	log_error("stopping: %s", d->node.fsm_state.halt_reason);
	d->exit_code = 1;
	d->stopping = true;
	if (d->handing_over) {
		node_transfer_cancel(&d->node, &d->handover);
		d->handing_over = false;
	}
	main_close(d);
}

static void main_signal_cb(uv_signal_t *h, int signum)
{
	daemon_state *d = h->data;

	if (signum == SIGHUP) {
		/* The files that change without a restart: certificates, keys,
		 * the CA and the CRL are rotated member by member
		 * (docs/cluster.md). */
		if (!cfg_has_tls(&d->cfg)) {
			log_info("SIGHUP: nothing to reload (settings take effect on restart)");
			return;
		}
		log_info("SIGHUP: reloading the tls-* files (other settings take effect on restart)");
		node_reload_tls(&d->node);
		if (d->srv_ready)
			srv_reload_tls(&d->srv);
		return;
	}
	log_info("received %s", signum == SIGTERM ? "SIGTERM" : "SIGINT");
	main_stop(d);
}

static int main_srv_init(daemon_state *d, char *err, size_t errlen)
{
	if (srv_init(&d->srv, &d->loop, &d->cfg, &d->node, err, errlen) != 0)
		return -1;
	d->srv_ready = true;
	return 0;
}

/* A scrape's sample (metrics.h), on the loop. */
static void main_metrics_collect(void *arg, metrics_sample *out)
{
	daemon_state *d = arg;

	srv_metrics(&d->srv, out);
	node_metrics(&d->node, out);
}

static int main_metrics_start(daemon_state *d, char *err, size_t errlen)
{
	if (d->cfg.metrics_address[0] == '\0')
		return 0;
	return metrics_start(&d->metrics, &d->loop, &d->cfg, TSORACLED_VERSION, main_metrics_collect, d, err,
			     errlen);
}

static int main_signals(daemon_state *d)
{
	uv_signal_t *hs[] = {&d->sigterm, &d->sigint, &d->sighup};
	int sigs[] = {SIGTERM, SIGINT, SIGHUP};

	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
		int rv = uv_signal_init(&d->loop, hs[i]);

		if (rv == 0) {
			hs[i]->data = d;
			rv = uv_signal_start(hs[i], main_signal_cb, sigs[i]);
		}
		if (rv != 0) {
			log_error("signal setup: %s", uv_strerror(rv));
			return -1;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	static daemon_state d;
	char err[MAIN_ERR_SIZE];
	char prefix[MAIN_PREFIX_SIZE];
	int rc;

	cfg_defaults(&d.cfg);
	rc = cfg_parse_args(&d.cfg, argc, argv, err, sizeof err);
	if (rc == CFG_HELP) {
		cfg_usage(stdout);
		return 0;
	}
	if (rc == CFG_VERSION) {
		printf("tsoracled %s\n", TSORACLED_VERSION);
		return 0;
	}
	if (rc != CFG_OK) {
		fprintf(stderr, "tsoracled: %s\n", err);
		return 2;
	}
	log_set_level(d.cfg.log_level);
	snprintf(prefix, sizeof prefix, "node %" PRIu64, d.cfg.node_id);
	log_set_prefix(prefix);
	signal(SIGPIPE, SIG_IGN);
	if (d.cfg.clock_offset_file[0] != '\0')
		clock_set_offset_file(d.cfg.clock_offset_file);

	rc = uv_loop_init(&d.loop);
	if (rc != 0) {
		log_error("uv_loop_init: %s", uv_strerror(rc));
		return 1;
	}
	d.pid_fd = -1;
	d.dir_fd = -1;
	/* The locks first: node_init writes in the data directory. */
	if (main_raise_nofile(&d.cfg, err, sizeof err) != 0 || main_lock_data_dir(&d, err, sizeof err) != 0 ||
	    main_lock_pid_file(&d, err, sizeof err) != 0 ||
	    node_init(&d.node, &d.loop, &d.cfg, err, sizeof err) != 0 ||
	    main_srv_init(&d, err, sizeof err) != 0 || main_signals(&d) != 0 ||
	    node_start(&d.node, err, sizeof err) != 0 || srv_start(&d.srv, err, sizeof err) != 0 ||
	    main_metrics_start(&d, err, sizeof err) != 0) {
		log_error("%s", err);
		d.exit_code = 1;
		main_stop(&d);
	} else {
		d.started = true;
		node_set_halt_cb(&d.node, main_halt_cb, &d);
		log_info("tsoracled %s started (pid %ld, data %s)", TSORACLED_VERSION, (long)getpid(),
			 d.cfg.data_dir);
	}
	uv_run(&d.loop, UV_RUN_DEFAULT);
	uv_loop_close(&d.loop);
	if (d.pid_fd >= 0) {
		unlink(d.cfg.pid_file);
		close(d.pid_fd);
	}
	if (d.dir_fd >= 0)
		close(d.dir_fd); /* the lock goes last */
	if (d.exit_code == 0)
		log_info("stopped");
	return d.exit_code;
}
