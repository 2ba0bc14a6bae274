#!/usr/bin/env bash
# The demo: a single-node tsoracled and a scratch PostgreSQL 15 with the
# extension, on 127.0.0.1:5499 (database postgres, user postgres, trust).
#
#   scripts/demo.sh start   (make demo)      start, or show it is running
#   scripts/demo.sh stop    (make demo-stop) stop every process it started
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh

DEMO_DIR=${DEMO_DIR:-/tmp/tsoracle-demo}
DEMO_PORT=5499
SOCK=$DEMO_DIR/tsoracled.sock
SIDECAR_PID=$DEMO_DIR/sidecar/tsoracled.pid

pid_alive() { [ -f "$1" ] && kill -0 "$(head -n1 "$1")" 2>/dev/null; }

start() {
	install_all
	mkdir -p "$DEMO_DIR"
	chown "$PG_USER": "$DEMO_DIR"
	chmod 0700 "$DEMO_DIR"

	if ! pid_alive "$SIDECAR_PID"; then
		echo "demo: starting tsoracled (single node, data in $DEMO_DIR/sidecar)"
		as_pg bash -c "setsid '$SIDECAR_BINDIR/tsoracled' --node-id 1 --data-dir '$DEMO_DIR/sidecar' \
			--raft-address 127.0.0.1:7499 --client-socket '$SOCK' \
			>>'$DEMO_DIR/tsoracled.log' 2>&1 < /dev/null &"
	fi
	wait_serving "$SOCK" 30

	if [ ! -f "$DEMO_DIR/pgdata/PG_VERSION" ]; then
		echo "demo: creating a PostgreSQL cluster in $DEMO_DIR/pgdata"
		as_pg "$PG_BINDIR/initdb" -D "$DEMO_DIR/pgdata" -U postgres --auth=trust >/dev/null
		cat >>"$DEMO_DIR/pgdata/postgresql.conf" <<CONF
# tsoracle demo
listen_addresses = '127.0.0.1'
port = $DEMO_PORT
unix_socket_directories = '$DEMO_DIR'
shared_preload_libraries = 'tsoracle'
tsoracle.sidecar_address = '$SOCK'
CONF
	fi
	if ! as_pg "$PG_BINDIR/pg_ctl" -D "$DEMO_DIR/pgdata" status >/dev/null 2>&1; then
		echo "demo: starting PostgreSQL on 127.0.0.1:$DEMO_PORT"
		as_pg "$PG_BINDIR/pg_ctl" -D "$DEMO_DIR/pgdata" -l "$DEMO_DIR/postgresql.log" -w start >/dev/null
	fi
	psql_demo() { as_pg "$PG_BINDIR/psql" -X -h 127.0.0.1 -p "$DEMO_PORT" -U postgres -d postgres "$@"; }
	psql_demo -q -c "CREATE EXTENSION IF NOT EXISTS tsoracle"
	echo
	psql_demo -c "SELECT tso_now() AS ts, tso_now() >> 18 AS physical_ms, tso_now() & 262143 AS logical FROM generate_series(1, 5)"
	psql_demo -c "SELECT count(*) AS n, min(t), max(t), max(t) - min(t) + 1 AS span FROM tso_range(1000) AS t"
	cat <<MSG
tsoracle demo is running:
  connect:  psql -h 127.0.0.1 -p $DEMO_PORT -U postgres postgres
  try:      SELECT tso_now();  SELECT * FROM tso_range(10);
  sidecar:  $SIDECAR_BINDIR/tsoracle-ctl --address $SOCK status
  logs:     $DEMO_DIR/tsoracled.log, $DEMO_DIR/postgresql.log
  stop:     make demo-stop
MSG
}

stop() {
	if [ -f "$DEMO_DIR/pgdata/postmaster.pid" ]; then
		as_pg "$PG_BINDIR/pg_ctl" -D "$DEMO_DIR/pgdata" -m fast -w stop >/dev/null && echo "demo: PostgreSQL stopped"
	fi
	if pid_alive "$SIDECAR_PID"; then
		local pid i
		pid=$(head -n1 "$SIDECAR_PID")
		kill -TERM "$pid"
		for ((i = 0; i < 100; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			echo "demo: tsoracled (pid $pid) did not stop in 10 s; killing it" >&2
			kill -KILL "$pid"
		fi
		echo "demo: tsoracled stopped"
	fi
	echo "demo: stopped (data kept in $DEMO_DIR; remove it for a fresh start)"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
*) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
