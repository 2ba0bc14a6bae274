#!/usr/bin/env bash
# The demos, everything under $DEMO_DIR (default /tmp/tsoracle-demo), all
# processes as the postgres user, PostgreSQL on 127.0.0.1 with trust
# authentication for database and user postgres:
#
#   scripts/demo.sh start    (make demo)          one sidecar, PostgreSQL on 5499,
#                                                 metrics on 127.0.0.1:9499
#   scripts/demo.sh cluster  (make demo-cluster)  three sidecars in one Raft
#                                                 cluster, PostgreSQL on 5501-5503,
#                                                 metrics on 127.0.0.1:9501-9503;
#                                                 configs for spares 4 and 5
#                                                 (join = true, not started)
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
# Prometheus metrics (docs/operations.md): the single node's one TCP
# listener; the cluster's members on METRICS_BASE+1..3.
SINGLE_METRICS=9499
METRICS_BASE=9500

start_single() {
	local dir=$DEMO_DIR/single sock=$DEMO_DIR/single/tsoracled.sock
	install_all
	prepare_dir "$DEMO_DIR"
	as_pg mkdir -p "$dir"
	as_pg tee "$dir/tsoracled.conf" >/dev/null <<CONF
# tsoracled, a single node (a Raft cluster of one voter)
node-id = 1
data-dir = $dir/data
raft-address = 127.0.0.1:$SINGLE_RAFT
client-socket = $sock
metrics-address = 127.0.0.1:$SINGLE_METRICS
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
  metrics:  curl http://127.0.0.1:$SINGLE_METRICS/metrics
  logs:     $dir/tsoracled.log, $dir/postgresql.log
  stop:     make demo-stop
MSG
}

# The configs of spare members 4 and 5 (certificates node4, node5 are in
# $DEMO_DIR/tls already): join = true, so a started spare waits until
# tsoracle-ctl member add adds it. peers only tells tsoracle-ctl --config
# where to find the members.
write_spares() {
	local i node peers=""
	for i in 1 2 3; do
		peers+="${peers:+,}$i=$(member_ip "$i"):$((7500 + i))/$(member_ip "$i"):$((7600 + i))"
	done
	for i in 4 5; do
		node=$DEMO_DIR/node$i
		as_pg mkdir -p "$node"
		as_pg tee "$node/tsoracled.conf" >/dev/null <<CONF
# tsoracled, spare member $i: starts empty and waits to be added
# (tsoracle-ctl member add $i=127.0.0.1:$((7500 + i))/127.0.0.1:$((7600 + i)))
node-id = $i
join = true
data-dir = $node/data
raft-address = 127.0.0.1:$((7500 + i))
client-socket = $node/tsoracled.sock
client-tcp = 127.0.0.1:$((7600 + i))
peers = $peers
tls-ca = $DEMO_DIR/tls/ca.crt
tls-cert = $DEMO_DIR/tls/node$i.crt
tls-key = $DEMO_DIR/tls/node$i.key
tls-crl = $DEMO_DIR/tls/ca.crl
CONF
	done
}

start_cluster() {
	install_all
	prepare_dir "$DEMO_DIR"
	CLUSTER_METRICS_BASE=$METRICS_BASE cluster_up "$DEMO_DIR" 5500 7500 7600
	write_spares
	local as_user=""
	if [ "$(id -u)" -eq 0 ]; then as_user="runuser -u $PG_USER -- "; fi
	echo
	"$SIDECAR_BINDIR/tsoracle-ctl" --config "$DEMO_DIR/node1/tsoracled.conf" status
	echo
	for i in 1 2 3; do
		echo "PostgreSQL on 127.0.0.1:$((5500 + i)): $(psql_port $((5500 + i)) -Atc 'SELECT tso_now()')"
	done
	cat <<MSG

tsoracle cluster demo is running:
  connect:  psql -h 127.0.0.1 -p 5501 -U postgres postgres   (also 5502, 5503)
  status:   $SIDECAR_BINDIR/tsoracle-ctl --config $DEMO_DIR/node1/tsoracled.conf status
  metrics:  curl http://127.0.0.1:$((METRICS_BASE + 1))/metrics   (also $((METRICS_BASE + 2)), $((METRICS_BASE + 3)))
  handover: $SIDECAR_BINDIR/tsoracle-ctl --config $DEMO_DIR/node1/tsoracled.conf \\
              --cert $DEMO_DIR/tls/admin.crt --key $DEMO_DIR/tls/admin.key transfer-leader
  failover: kill -9 the leader (pid in $DEMO_DIR/nodeN/data/tsoracled.pid); the others go on
  TLS:      Raft and the client ports run over TLS 1.3 (transfer-leader needs the admin
            certificate, timestamps and status a client one); CA, member (node1-5), admin and
            client certificates in $DEMO_DIR/tls (scripts/certs.sh, docs/cluster.md)
  members:  $SIDECAR_BINDIR/tsoracle-ctl --config $DEMO_DIR/node1/tsoracled.conf member list
  add one:  spares 4 and 5 have configs (join = true) in $DEMO_DIR/node4, node5:
              ${as_user}$SIDECAR_BINDIR/tsoracled --config $DEMO_DIR/node4/tsoracled.conf >>$DEMO_DIR/node4/tsoracled.log 2>&1 &
              $SIDECAR_BINDIR/tsoracle-ctl --config $DEMO_DIR/node1/tsoracled.conf \\
                --cert $DEMO_DIR/tls/admin.crt --key $DEMO_DIR/tls/admin.key member add 4=127.0.0.1:7504/127.0.0.1:7604
            and member remove 4 takes it out again (docs/cluster.md, "Membership")
  logs:     $DEMO_DIR/node{1,2,3}/tsoracled.log, postgresql.log
  stop:     make demo-stop
MSG
}

stop_all() {
	local dir
	for dir in "$DEMO_DIR"/single "$DEMO_DIR"/node1 "$DEMO_DIR"/node2 "$DEMO_DIR"/node3 \
		"$DEMO_DIR"/node4 "$DEMO_DIR"/node5; do
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
