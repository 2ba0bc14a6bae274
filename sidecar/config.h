/* config.h: tsoracled's configuration, from flags and an optional file, checked as a whole. */
#ifndef TSORACLE_CONFIG_H
#define TSORACLE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "tsoracle.h"
#include "tso.h"

#define CFG_MAX_PEERS   7          /* Raft voters: clusters of 1, 3, 5 or 7 */
#define CFG_ADDR_SIZE   128        /* "host:port" */
#define CFG_NODE_ID_MAX UINT32_MAX /* ids travel as u32 in the protocol */
#define CFG_PATH_SIZE   256
#define CFG_ERR_SIZE    256

typedef struct cfg_peer {
	uint64_t id;
	char address[CFG_ADDR_SIZE]; /* Raft address, "ip:port" */
	char client[CFG_ADDR_SIZE];  /* its client-tcp, "ip:port": where
				      * followers forward to it ("" if none) */
} cfg_peer;

typedef struct cfg {
	uint64_t node_id;
	char data_dir[CFG_PATH_SIZE];
	char raft_address[CFG_ADDR_SIZE];
	cfg_peer peers[CFG_MAX_PEERS]; /* the initial voters, this node included;
					* read once, to bootstrap (with join: seeds
					* for tsoracle-ctl only) */
	bool join;                     /* start empty, wait to be added */
	unsigned catch_up_timeout_ms;  /* a member being added must catch up by then */
	unsigned n_peers;
	char client_socket[CFG_PATH_SIZE]; /* "" : no unix listener */
	/* Who else may connect to it (peercred.h): "user,@group,..." */
	char client_socket_allow[CFG_PATH_SIZE];
	char client_tcp[CFG_ADDR_SIZE]; /* "" : no TCP listener */
	char pid_file[CFG_PATH_SIZE];
	/* TLS (common/tls.h): "" : none, allowed only when every TCP listener
	 * and every member's Raft address is loopback. */
	char tls_ca[CFG_PATH_SIZE];
	char tls_cert[CFG_PATH_SIZE];
	char tls_key[CFG_PATH_SIZE];
	char tls_crl[CFG_PATH_SIZE];           /* "" : no revocation list */
	char clock_offset_file[CFG_PATH_SIZE]; /* tests only: skews the wall clock */
	/* The Prometheus endpoint (metrics.h): "" : none. Plain HTTP, so off
	 * loopback only with metrics_allow_plaintext. */
	char metrics_address[CFG_ADDR_SIZE];
	bool metrics_allow_plaintext;
	int log_level;

	/* Raft timing, ms. */
	unsigned election_timeout_ms;
	unsigned heartbeat_ms;
	/* How long a client request may wait for a leader or a durable grant
	 * before it is answered with an error, ms. */
	unsigned request_timeout_ms;
	/* Client connections (docs/architecture.md, "Bounded resources"). */
	unsigned max_connections;    /* open at most; more are refused */
	unsigned hello_timeout_ms;   /* from accept to the hello */
	unsigned idle_timeout_ms;    /* nothing in flight this long: closed; 0: never */
	unsigned client_output_max;  /* bytes of unsent responses: past it, dropped */
	unsigned snapshot_threshold; /* log entries between snapshots */
	unsigned snapshot_trailing;  /* entries kept after a snapshot */

	/* --force-new-cluster: this start rewrites the Raft configuration to
	 * this member alone (node.c, docs/cluster.md). Command line only. */
	bool force_new_cluster;
	/* The start floor (I7, docs/allocator.md) covers a predecessor's clock
	 * this far ahead of this member's, ms. */
	uint64_t start_floor_margin_ms;
	/* advance-to: the most its time may be ahead of the leader's clock, ms. */
	uint64_t max_reset_gap_ms;

	ta_config alloc; /* window, cap, lease */

	/* Clock sanity (include/tsoracle.h, "clock sanity"), ms; 0: off. */
	uint64_t max_clock_offset_ms;
	uint64_t max_start_gap_ms; /* a sole voter's clock past its stored mark */
	unsigned trust_clock;      /* 1: the operator vouches for the clock at start */
} cfg;

#define CFG_DEFAULT_RAFT_ADDRESS          "127.0.0.1:7400"
/* In a directory only tsoracled's user may write (created 0750 if
 * missing), not /tmp, where any local user could bind or plant it first. */
#define CFG_DEFAULT_CLIENT_SOCKET         "/run/tsoracle/tsoracled.sock"
#define CFG_DEFAULT_ELECTION_TIMEOUT_MS   300
#define CFG_DEFAULT_HEARTBEAT_MS          30
#define CFG_DEFAULT_REQUEST_TIMEOUT_MS    2000
#define CFG_DEFAULT_MAX_CONNECTIONS       4096
#define CFG_DEFAULT_HELLO_TIMEOUT_MS      3000
#define CFG_DEFAULT_IDLE_TIMEOUT_MS       0
#define CFG_DEFAULT_CLIENT_OUTPUT_MAX     (256 * 1024)
#define CFG_DEFAULT_SNAPSHOT_THRESHOLD    1024
/* start-floor-margin, ms: NTP keeps clocks within a few ms; 500 as the
 * default max-clock-offset (a leader's clock is within it of the majority). */
#define CFG_DEFAULT_START_FLOOR_MARGIN_MS 500
/* max-reset-gap, ms: 24 h, as TiDB PD's max-reset-ts-gap; at most a year. */
#define CFG_DEFAULT_MAX_RESET_GAP_MS      (24ull * 3600 * 1000)
#define CFG_RESET_GAP_MAX_MS              (366ull * 24 * 3600 * 1000)
#define CFG_DEFAULT_CATCH_UP_TIMEOUT_MS   30000
/* max-ahead's least value, ms: the largest request (TA_MAX_GRANT, 2^24
 * timestamps) spans 64 ms of the clock, and no grant may reach past the
 * clock + max-ahead (I6, docs/allocator.md), so below this such a request
 * (or a follower's forwarded batch of that size) would wait forever. */
#define CFG_MAX_AHEAD_MIN_MS              (TA_MAX_GRANT >> TSO_LOGICAL_BITS)
#define CFG_DEFAULT_SNAPSHOT_TRAILING     128
/* The pid file in the data directory, unless pid-file says otherwise. */
#define CFG_PID_FILE_NAME                 "tsoracled.pid"

/* Outcome of cfg_parse_args. */
enum cfg_parse_result {
	CFG_OK = 0,
	CFG_ERROR = 1,   /* message in err */
	CFG_HELP = 2,    /* --help: print usage, exit 0 */
	CFG_VERSION = 3, /* --version */
};

void cfg_defaults(cfg *c);

/* Applies argv (and the file named by --config, flags winning over the
 * file), then checks the whole. */
int cfg_parse_args(cfg *c, int argc, char **argv, char *err, size_t errlen);

/* Checks consistency; fills derived defaults (pid file, peers). */
int cfg_check(cfg *c, char *err, size_t errlen);

/* Applies one "name = value" setting (a flag's long name without "--"). */
int cfg_set(cfg *c, const char *name, const char *value, char *err, size_t errlen);

/* Reads a file of "name = value" lines ('#' starts a comment). */
int cfg_load_file(cfg *c, const char *path, char *err, size_t errlen);

/* The same from len bytes of text already in memory (messages name path):
 * what cfg_load_file does with a file's contents. */
int cfg_load_text(cfg *c, const char *path, const char *text, size_t len, char *err, size_t errlen);

/* Parses "ID=RAFT_IP:PORT[/CLIENT_IP:PORT],...". */
int cfg_parse_peers(cfg *c, const char *text, char *err, size_t errlen);

/* "IP:PORT" or "[IPv6]:PORT" (as cfg_check accepts) to a socket address;
 * 0, or -1 if it is not one. */
int cfg_sockaddr(const char *addr, struct sockaddr_storage *ss);

/*
 * A member's address in the replicated Raft configuration: "RAFT_IP:PORT/
 * CLIENT_IP:PORT". Both parts ride in the configuration entry that adds the
 * member (and in every snapshot), so every member learns every other's
 * client address from the log, whatever its own peers line says: peers is
 * read once, to bootstrap (docs/cluster.md, "Membership"). A configuration
 * bootstrapped by an older tsoracled holds "RAFT_IP:PORT" alone (client
 * then ""). cfg_member_split copies the parts (0, or -1 if one does not
 * fit); cfg_member_raft_address is cfg_sockaddr of the Raft part.
 */
int cfg_member_split(const char *addr, char *raft, size_t raftlen, char *client, size_t clientlen);
int cfg_member_raft_address(const char *addr, struct sockaddr_storage *ss);

/* True for an "IP:PORT" whose IP is 127.0.0.0/8 or ::1. */
bool cfg_is_loopback(const char *addr);

/* True when tls-ca, tls-cert and tls-key are set (cfg_check allows them
 * only together). */
bool cfg_has_tls(const cfg *c);

void cfg_usage(FILE *out);

#endif /* TSORACLE_CONFIG_H */
