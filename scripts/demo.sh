#!/usr/bin/env bash
# The demos, everything under $DEMO_DIR (default /tmp/tsoracle-demo), all
# processes as the postgres user, PostgreSQL on 127.0.0.1 with trust
# authentication for database and user postgres:
#
#   scripts/demo.sh start    (make demo)          one sidecar, PostgreSQL on 5499
#   scripts/demo.sh cluster  (make demo-cluster)  three sidecars in one Raft
#                                                 cluster, PostgreSQL on 5501-5503
#   scripts/demo.sh stop     (make demo-stop)     stop every process of both
#
# Starting again is quick and safe: what runs is left alone, what is down
# starts, data is kept (remove $DEMO_DIR for a fresh start).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh

DEMO_DIR=${DEMO_DIR:-/tmp/tsoracle-demo}
SINGLE_PORT=5499
SINGLE_RAFT=7499
CLUSTER_PG_PORTS=(5501 5502 5503)
CLUSTER_RAFT_PORTS=(7501 7502 7503)
CLUSTER_CLIENT_PORTS=(7601 7602 7603)

pid_alive() { [ -f "$1" ] && kill -0 "$(head -n1 "$1")" 2>/dev/null; }

prepare_dir() {
	mkdir -p "$DEMO_DIR"
	chown "$PG_USER": "$DEMO_DIR"
	chmod 0700 "$DEMO_DIR"
}

# start_sidecar DIR CONFIG_FILE: runs tsoracled --config CONFIG_FILE in the
# background (detached), logging to DIR/tsoracled.log, unless it runs.
start_sidecar() {
	local dir=$1 conf=$2
	if pid_alive "$dir/data/tsoracled.pid"; then
		return 0
	fi
	as_pg bash -c "setsid '$SIDECAR_BINDIR/tsoracled' --config '$conf' \
		>>'$dir/tsoracled.log' 2>&1 < /dev/null &"
}

# start_pg DIR PORT SOCKET: a scratch PostgreSQL in DIR/pgdata using the
# sidecar at SOCKET, started unless it runs; then CREATE EXTENSION.
start_pg() {
	local dir=$1 port=$2 sock=$3
	if [ ! -f "$dir/pgdata/PG_VERSION" ]; then
		as_pg "$PG_BINDIR/initdb" -D "$dir/pgdata" -U postgres --auth=trust >/dev/null
		cat >>"$dir/pgdata/postgresql.conf" <<CONF
# tsoracle demo
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
shared_preload_libraries = 'tsoracle'
tsoracle.sidecar_address = '$sock'
CONF
	fi
	if ! as_pg "$PG_BINDIR/pg_ctl" -D "$dir/pgdata" status >/dev/null 2>&1; then
		as_pg "$PG_BINDIR/pg_ctl" -D "$dir/pgdata" -l "$dir/postgresql.log" -w start >/dev/null
	fi
	psql_port "$port" -q -c "CREATE EXTENSION IF NOT EXISTS tsoracle"
}

psql_port() {
	local port=$1
	shift
	as_pg "$PG_BINDIR/psql" -X -h 127.0.0.1 -p "$port" -U postgres -d postgres "$@"
}

start_single() {
	local dir=$DEMO_DIR/single sock=$DEMO_DIR/single/tsoracled.sock
	install_all
	prepare_dir
	as_pg mkdir -p "$dir"
	as_pg tee "$dir/tsoracled.conf" >/dev/null <<CONF
# tsoracled, a single node (a Raft cluster of one voter)
node-id = 1
data-dir = $dir/data
raft-address = 127.0.0.1:$SINGLE_RAFT
client-socket = $sock
CONF
	echo "demo: tsoracled (single node) in $dir"
	start_sidecar "$dir" "$dir/tsoracled.conf"
	wait_serving "$sock" 30
	echo "demo: PostgreSQL on 127.0.0.1:$SINGLE_PORT"
	start_pg "$dir" "$SINGLE_PORT" "$sock"
	echo
	psql_port "$SINGLE_PORT" -c "SELECT tso_now() AS ts, tso_to_timestamptz(tso_now()) AS at FROM generate_series(1, 5)"
	psql_port "$SINGLE_PORT" -c "SELECT count(*) AS n, max(t) - min(t) + 1 AS span FROM tso_range(1000) AS t"
	cat <<MSG
tsoracle demo is running:
  connect:  psql -h 127.0.0.1 -p $SINGLE_PORT -U postgres postgres
  try:      SELECT tso_now();  SELECT * FROM tso_range(10);
  sidecar:  $SIDECAR_BINDIR/tsoracle-ctl --address $sock status
  logs:     $dir/tsoracled.log, $dir/postgresql.log
  stop:     make demo-stop
MSG
}

start_cluster() {
	local i peers="" dir sock
	install_all
	prepare_dir
	for i in 1 2 3; do
		peers+="${peers:+,}$i=127.0.0.1:${CLUSTER_RAFT_PORTS[i - 1]}/127.0.0.1:${CLUSTER_CLIENT_PORTS[i - 1]}"
	done
	for i in 1 2 3; do
		dir=$DEMO_DIR/node$i
		as_pg mkdir -p "$dir"
		as_pg tee "$dir/tsoracled.conf" >/dev/null <<CONF
# tsoracled, member $i of a 3-node cluster on one machine
node-id = $i
data-dir = $dir/data
raft-address = 127.0.0.1:${CLUSTER_RAFT_PORTS[i - 1]}
client-socket = $dir/tsoracled.sock
client-tcp = 127.0.0.1:${CLUSTER_CLIENT_PORTS[i - 1]}
peers = $peers
CONF
		start_sidecar "$dir" "$dir/tsoracled.conf"
	done
	echo "demo: three tsoracled in $DEMO_DIR/node{1,2,3} (peers $peers)"
	for i in 1 2 3; do
		dir=$DEMO_DIR/node$i
		wait_ready "$dir/tsoracled.sock" 30
		start_pg "$dir" "${CLUSTER_PG_PORTS[i - 1]}" "$dir/tsoracled.sock"
	done
	echo
	"$SIDECAR_BINDIR/tsoracle-ctl" --peers "$peers" status
	echo
	for i in 1 2 3; do
		echo "PostgreSQL on 127.0.0.1:${CLUSTER_PG_PORTS[i - 1]}: $(psql_port "${CLUSTER_PG_PORTS[i - 1]}" -Atc 'SELECT tso_now()')"
	done
	cat <<MSG

tsoracle cluster demo is running:
  connect:  psql -h 127.0.0.1 -p 5501 -U postgres postgres   (also 5502, 5503)
  status:   $SIDECAR_BINDIR/tsoracle-ctl --config $DEMO_DIR/node1/tsoracled.conf status
  failover: kill -9 the leader (pid in $DEMO_DIR/nodeN/data/tsoracled.pid); the others go on
  logs:     $DEMO_DIR/node{1,2,3}/tsoracled.log, postgresql.log
  stop:     make demo-stop
MSG
}

stop_dir() {
	local dir=$1 pid i
	if [ -f "$dir/pgdata/postmaster.pid" ]; then
		as_pg "$PG_BINDIR/pg_ctl" -D "$dir/pgdata" -m fast -w stop >/dev/null &&
			echo "demo: PostgreSQL in $dir stopped"
	fi
	if pid_alive "$dir/data/tsoracled.pid"; then
		pid=$(head -n1 "$dir/data/tsoracled.pid")
		kill -TERM "$pid"
		for ((i = 0; i < 100; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			echo "demo: tsoracled (pid $pid) did not stop in 10 s; killing it" >&2
			kill -KILL "$pid"
		fi
		echo "demo: tsoracled in $dir stopped"
	fi
}

stop_all() {
	local dir
	for dir in "$DEMO_DIR"/single "$DEMO_DIR"/node1 "$DEMO_DIR"/node2 "$DEMO_DIR"/node3; do
		[ -d "$dir" ] && stop_dir "$dir"
	done
	echo "demo: stopped (data kept in $DEMO_DIR; remove it for a fresh start)"
}

case "${1:-}" in
start) start_single ;;
cluster) start_cluster ;;
stop) stop_all ;;
*)
	echo "usage: $0 start|cluster|stop" >&2
	exit 2
	;;
esac
