#!/usr/bin/env bash
# make bench: measures tsoracle on this machine and rewrites the generated
# section of docs/performance.md (between the BENCH markers).
#
#   - sidecar direct (tsoracle-bench): a single node, the leader and a
#     follower of a 3-node cluster on 127.0.0.1, at 1, 16 and 64
#     connections, pipeline depth 1 and 16, on their unix sockets, and the
#     leader's client-tcp under TLS 1.3 with a client certificate; a unix
#     socketpair ping-pong alternated with lone requests as the latency
#     floor;
#   - syscalls per request (perf tracepoints, strace -c) and a CPU profile
#     (perf record) of the leader under load;
#   - PostgreSQL through pgbench -M prepared: SELECT tso_now() against
#     SELECT nextval('s') and SELECT 1 at 1, 4, 16 and 64 clients;
#   - bulk: tso_range(1000000) against generate_series(1, 1000000);
#   - inserts (section_inserts): tables keyed by DEFAULT tso_now() against
#     bigserial, in alternating rounds: INSERT ... SELECT and COPY of
#     200,000 rows, by one session and by four at once; single-row INSERT
#     at 1 and 16 clients; pgbench's built-in TPC-B-like script with the
#     history table keyed either way; SELECT tso_now() against nextval();
#   - failover: service gap on both survivors after kill -9 of the leader,
#     with the default timing and with tuned flags; SIGTERM of the leader;
#   - memory: the sidecar's VmRSS/VmHWM, the extension's shared memory.
#
# Root only: it installs the extension (make install) and runs PostgreSQL
# and the sidecars as $PG_USER from a scratch directory under /tmp; every
# process it starts is stopped on exit, by pid.
#
# Environment: BENCH_QUICK=1   short runs, under a minute (smoke test)
#              BENCH_DOC=FILE  where to write (default docs/performance.md)
#              BENCH_KEEP=1    keep the scratch directory
#              BENCH_ONLY=inserts  only the single node and section_inserts
#                              (a few minutes); prints the report and leaves
#                              the document alone unless BENCH_DOC is set
#              BENCH_ONLY=cluster  only the 3-node cluster's direct runs
#                              (unix sockets and TLS) and the failover and
#                              handover trials (a few minutes; the same)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
. scripts/common.sh

ROOT=$(pwd)
# scripts/bench.sh --render DIR: rewrite the document from a run kept with
# BENCH_KEEP=1 (for work on the report itself; measures nothing).
RENDER_ONLY=
if [ "${1:-}" = --render ]; then
	RENDER_ONLY=$2
fi
DOC=${BENCH_DOC:-$ROOT/docs/performance.md}
QUICK=${BENCH_QUICK:-}
ONLY=${BENCH_ONLY:-}
case "$ONLY" in
'' | inserts | cluster) ;;
*) echo "bench: BENCH_ONLY=$ONLY: only \"inserts\" and \"cluster\" are known" >&2; exit 2 ;;
esac
CLK_TCK=$(getconf CLK_TCK)

if [ -z "$RENDER_ONLY" ] && [ "$(id -u)" -ne 0 ]; then
	echo "bench: run as root (make install, and PostgreSQL as $PG_USER)" >&2
	exit 2
fi
for f in build/tsoracled build/tsoracle-bench; do
	[ -x "$f" ] || { echo "bench: $f is missing: run make first" >&2; exit 2; }
done

# ---- sizes of the run ------------------------------------------------------
if [ -n "$QUICK" ]; then
	MODE="quick (BENCH_QUICK=1: short runs, indicative only)"
	DIRECT_SECS=0.3 DIRECT_REPS=1 PAIRS=1 PAIR_SECS=0.3
	DIRECT_SINGLE="1:1 16:16" DIRECT_LEADER="1:1 64:16" DIRECT_FOLLOWER="64:16"
	DIRECT_LEADER_TLS="1:1 64:16"
	PG_CLIENTS="16" PG_REPS=1 PG_SECS=1 COST_SECS=1
	BULK_REPS=3
	INS_ROWS=20000 INS_REPS=3 INS_SECS=1 INS_SCALE=2
	FO_DEFAULT=1 FO_TUNED=1 FO_TERM=0 FO_TRANSFER=1
else
	MODE="full"
	DIRECT_SECS=1.5 DIRECT_REPS=2 PAIRS=5 PAIR_SECS=0.4
	DIRECT_SINGLE="1:1 1:16 16:1 16:16 64:1 64:16"
	DIRECT_LEADER=$DIRECT_SINGLE DIRECT_FOLLOWER=$DIRECT_SINGLE
	DIRECT_LEADER_TLS="1:1 16:16 64:1 64:16"
	PG_CLIENTS="1 4 16 64" PG_REPS=3 PG_SECS=3 COST_SECS=2
	BULK_REPS=7
	INS_ROWS=200000 INS_REPS=5 INS_SECS=3 INS_SCALE=16
	FO_DEFAULT=20 FO_TUNED=20 FO_TERM=5 FO_TRANSFER=5
fi
# Faster-than-default failover timing, for comparison (the defaults are 300 /
# 30 / 200): still lease < election timeout, heartbeat <= half.
TUNED_FLAGS="--election-timeout 150 --heartbeat 15 --lease 100"
GAP_INTERVAL_US=200     # failover clients: one request per 200 us per survivor
TRANSFER_WINDOW_MS=3000 # handover clients: how long they watch after the command
INS_SESSIONS=4          # concurrent loaders, each INS_ROWS / INS_SESSIONS rows

if [ -n "$RENDER_ONLY" ]; then
	W=$RENDER_ONLY
else
	W=$(mktemp -d /tmp/tsoracle-bench.XXXXXX)
	mkdir -p "$W/bin" "$W/log"
	cp build/tsoracled build/tsoracle-bench "$W/bin/"
	[ -x build/tsoracle-ctl ] && cp build/tsoracle-ctl "$W/bin/"
	chown -R "$PG_USER": "$W"
fi
R=$W/results.kv # one key=value line per measurement
BENCH=$W/bin/tsoracle-bench
PG_UID=$(id -u "$PG_USER")
PG_GID=$(id -g "$PG_USER")

declare -A NODE_PID NODE_ARGS NODE_SOCK NODE_TCP
GAP_PIDS=()
PGDATA=
# True if pid $1 is a live child of this script (never signal anything else).
mine() {
	local st
	st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	st=${st##*) }
	# shellcheck disable=SC2086 # split into fields on purpose
	set -- $st
	[ "$1" != Z ] && [ "$2" = "$$" ]
}
cleanup() {
	local p i
	if [ -n "$PGDATA" ] && [ -f "$PGDATA/postmaster.pid" ]; then
		as_pg "$PG_BINDIR/pg_ctl" -D "$PGDATA" -m immediate -w stop >/dev/null 2>&1
	fi
	for p in "${NODE_PID[@]}" ${GAP_PIDS[@]+"${GAP_PIDS[@]}"}; do
		mine "$p" && kill -TERM "$p" 2>/dev/null
	done
	for p in "${NODE_PID[@]}"; do
		for ((i = 0; i < 50; i++)); do mine "$p" || break; sleep 0.1; done
		mine "$p" && kill -KILL "$p" 2>/dev/null
	done
	wait 2>/dev/null
	if [ -n "${BENCH_KEEP:-}" ]; then echo "bench: scratch files kept in $W"; else rm -rf "$W"; fi
}
if [ -z "$RENDER_ONLY" ]; then
	trap cleanup EXIT
	trap 'exit 130' INT TERM
fi

say() { echo "bench: $*" >&2; }
record() { echo "$*" >>"$R"; }
now_s() { date +%s.%N; }

# ---- processes ---------------------------------------------------------------

# A base of 10 consecutive free TCP ports on 127.0.0.1.
free_ports() {
	local b try
	for ((try = 0; try < 100; try++)); do
		b=$((20000 + RANDOM % 12000)) # below the ephemeral range (nemesis.sh)
		if [ -z "$(ss -Htan "( sport >= :$b and sport <= :$((b + 9)) )" 2>/dev/null)" ]; then
			echo "$b"
			return 0
		fi
	done
	return 1
}

# Sidecars run as $PG_USER (PostgreSQL's worker must reach the socket),
# through setpriv so that $! is the daemon's own pid.
node_start() { # name, then tsoracled's flags
	local name=$1
	shift
	NODE_ARGS[$name]="$*"
	setpriv --reuid="$PG_UID" --regid="$PG_GID" --init-groups -- \
		"$W/bin/tsoracled" "$@" --log-level warn >>"$W/log/$name.log" 2>&1 </dev/null &
	NODE_PID[$name]=$!
}
node_restart() { # name
	local name=$1
	# shellcheck disable=SC2086
	node_start "$name" ${NODE_ARGS[$name]}
}
# "node=.. role=.. leader=.. serving=.. term=.. commit=.. ..." or nothing.
node_status() { "$BENCH" --status --address "${NODE_SOCK[$1]}" 2>/dev/null; }
kv() { # key, line: the value, or nothing
	local k=$1 l=" $2"
	[[ $l == *" $k="* ]] || return 0
	l=${l##* "$k"=}
	echo "${l%% *}"
}
proc_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
proc_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null; }
cores() { awk -v t="$1" -v s="$2" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz / s }'; }

wait_serving_node() { # name, seconds
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		[ "$(kv serving "$(node_status "$1")")" = 1 ] && return 0
		sleep 0.1
	done
	say "node $1 is not serving after $2 s (see $W/log/$1.log)"
	return 1
}

# Cluster $1 (3 nodes, names $1n1..$1n3); extra flags follow.
cluster_start() {
	local c=$1 base peers i
	shift
	base=$(free_ports) || { say "no free ports"; return 1; }
	peers="1=127.0.0.1:$base/127.0.0.1:$((base + 1))"
	peers+=",2=127.0.0.1:$((base + 2))/127.0.0.1:$((base + 3))"
	peers+=",3=127.0.0.1:$((base + 4))/127.0.0.1:$((base + 5))"
	# As deployed: Raft between members runs over TLS with member
	# certificates (scripts/certs.sh; docs/cluster.md).
	scripts/certs.sh "$W/$c-tls" 3 >/dev/null && chown -R "$PG_UID:$PG_GID" "$W/$c-tls"
	for i in 1 2 3; do
		NODE_SOCK[${c}n$i]=$W/$c-n$i.sock
		NODE_TCP[${c}n$i]=127.0.0.1:$((base + 2 * i - 1))
		node_start "${c}n$i" --node-id "$i" --data-dir "$W/$c-n$i" \
			--raft-address "127.0.0.1:$((base + 2 * i - 2))" --client-tcp "127.0.0.1:$((base + 2 * i - 1))" \
			--client-socket "$W/$c-n$i.sock" --peers "$peers" \
			--tls-ca "$W/$c-tls/ca.crt" --tls-cert "$W/$c-tls/node$i.crt" --tls-key "$W/$c-tls/node$i.key" \
			--tls-crl "$W/$c-tls/ca.crl" "$@"
	done
}

# Prints the index (1-3) of cluster $1's leader once it serves and every
# live member names it, and the node it is caught up; at most $2 seconds.
cluster_leader() {
	local c=$1 secs=$2 i j st lead ok commit
	for ((j = 0; j < secs * 20; j++)); do
		lead=
		for i in 1 2 3; do
			st=$(node_status "${c}n$i")
			if [ "$(kv role "$st")" = leader ] && [ "$(kv serving "$st")" = 1 ]; then
				lead=$i
				commit=$(kv commit "$st")
			fi
		done
		if [ -n "$lead" ]; then
			ok=1
			for i in 1 2 3; do
				st=$(node_status "${c}n$i")
				if [ "$(kv leader "$st")" != "$lead" ] || [ "$(kv applied "$st")" -lt $((commit - 2)) ] 2>/dev/null; then
					ok=
				fi
			done
			if [ -n "$ok" ]; then
				echo "$lead"
				return 0
			fi
		fi
		sleep 0.05
	done
	say "cluster $c has no leader that every member follows after $secs s"
	return 1
}

node_stop() { # name: SIGTERM and wait
	local p=${NODE_PID[$1]} i
	mine "$p" || return 0
	kill -TERM "$p"
	for ((i = 0; i < 100; i++)); do mine "$p" || break; sleep 0.1; done
	mine "$p" && kill -KILL "$p"
	wait "$p" 2>/dev/null
}

# ---- sidecar direct -------------------------------------------------------------

# One load run against node $2's unix socket (the leader being $3): label
# $1, connections:depth $4; further arguments go to tsoracle-bench (e.g.
# another --address, TLS). The best of DIRECT_REPS runs is kept.
direct_run() {
	local label=$1 node=$2 lnode=$3 cd=$4 c d rep best='' best_rps=-1 out secs
	shift 4
	c=${cd%%:*} d=${cd##*:}
	secs=$(awk -v d="$DIRECT_SECS" 'BEGIN { print d + 0.2 }')
	for ((rep = 1; rep <= DIRECT_REPS; rep++)); do
		local t0 t0l s0 s1 t1 t1l
		s0=$(node_status "$lnode")
		t0=$(proc_ticks "${NODE_PID[$node]}")
		t0l=$(proc_ticks "${NODE_PID[$lnode]}")
		out=$("$BENCH" --address "${NODE_SOCK[$node]}" --connections "$c" --depth "$d" --count 1 \
			--duration "$DIRECT_SECS" --warmup 0.2 --kv --label "$label" "$@")
		t1=$(proc_ticks "${NODE_PID[$node]}")
		t1l=$(proc_ticks "${NODE_PID[$lnode]}")
		s1=$(node_status "$lnode")
		out+=" sidecar_cores=$(cores $((t1 - t0)) "$secs") leader_cores=$(cores $((t1l - t0l)) "$secs")"
		out+=" grants=$(($(kv grants "$s1") - $(kv grants "$s0")))"
		out+=" stamps_total=$(($(kv timestamps "$s1") - $(kv timestamps "$s0")))"
		out+=" rss_kb=$(proc_kb "${NODE_PID[$node]}" VmRSS) hwm_kb=$(proc_kb "${NODE_PID[$node]}" VmHWM)"
		out+=" rep=$rep of=$DIRECT_REPS"
		record "${out/mode=load/mode=load_rep}"
		if [ "$(kv rps "$out")" -gt "$best_rps" ] 2>/dev/null; then
			best=$out
			best_rps=$(kv rps "$out")
		fi
	done
	record "$best"
	say "  $label ${c}x$d: $(kv rps "$best") req/s, p50 $(kv p50_us "$best") us, p99 $(kv p99_us "$best") us (best of $DIRECT_REPS)"
}

# Syscalls of node $2 during a run of connections:depth $4 (label $1),
# counted by perf tracepoints (no slowdown of the daemon to speak of);
# requests and grants are leader $3's counters.
syscall_run() {
	local label=$1 node=$2 lnode=$3 cd=$4 c d s0 s1 pf out perf_pid
	c=${cd%%:*} d=${cd##*:}
	pf=$W/perfstat.$label
	command -v perf >/dev/null || return 0
	perf stat -x, -o "$pf" -e raw_syscalls:sys_enter,syscalls:sys_enter_read,syscalls:sys_enter_write \
		-e syscalls:sys_enter_epoll_wait,syscalls:sys_enter_writev,context-switches \
		-p "${NODE_PID[$node]}" >/dev/null 2>&1 &
	perf_pid=$!
	sleep 0.5 # perf attaches
	s0=$(node_status "$lnode")
	out=$("$BENCH" --address "${NODE_SOCK[$node]}" --connections "$c" --depth "$d" --duration "$DIRECT_SECS" \
		--warmup 0.1 --kv --label "$label")
	s1=$(node_status "$lnode")
	kill -INT "$perf_pid"
	wait "$perf_pid"
	out+=" grants=$(($(kv grants "$s1") - $(kv grants "$s0")))"
	out+=" stamps_total=$(($(kv timestamps "$s1") - $(kv timestamps "$s0")))"
	if [ -s "$pf" ] && grep -q raw_syscalls "$pf"; then
		out+=" $(awk -F, '/sys_enter|context-switches/ {
			n = $3; sub(/.*:/, "", n); sub(/sys_enter_?/, "", n); if (n == "") n = "all";
			gsub(/-/, "_", n); printf "sc_%s=%s ", n, $1 }' "$pf")"
	else
		out+=" sc_all=na"
	fi
	record "mode=syscalls ${out#mode=load }"
}

# Ping-pong and lone requests, alternated: placement $1, ping-pong --cpus
# $2, client --cpus $3 (empty: not pinned).
floor_pairs() {
	local place=$1 i pp lone ppc=() lc=()
	[ -n "$2" ] && ppc=(--cpus "$2")
	[ -n "$3" ] && lc=(--cpus "$3")
	for ((i = 0; i < PAIRS; i++)); do
		pp=$("$BENCH" --pingpong "${ppc[@]}" --duration "$PAIR_SECS" --warmup 0.1 --kv --label "pingpong_$place")
		lone=$("$BENCH" --address "$W/sn.sock" "${lc[@]}" --duration "$PAIR_SECS" --warmup 0.1 --kv \
			--label "lone_$place")
		record "$pp"
		record "$lone"
	done
}

section_direct() {
	local cd i pp lone
	say "single node"
	NODE_SOCK[sn]=$W/sn.sock
	node_start sn --node-id 1 --data-dir "$W/sn" --raft-address "127.0.0.1:$(free_ports)" \
		--client-socket "$W/sn.sock"
	wait_serving_node sn 30 || return 1
	record "mode=mem label=idle rss_kb=$(proc_kb "${NODE_PID[sn]}" VmRSS) hwm_kb=$(proc_kb "${NODE_PID[sn]}" VmHWM)"

	say "latency floor: ping-pong alternated with lone requests ($PAIRS pairs per placement)"
	floor_pairs any "" ""
	if [ "$(nproc)" -ge 2 ]; then
		# The sidecar on the last CPU; the client on the same one, or on CPU 0.
		local last=$(($(nproc) - 1))
		taskset -a -p -c "$last" "${NODE_PID[sn]}" >/dev/null
		floor_pairs same "$last,$last" "$last"
		floor_pairs cross "0,$last" 0
		taskset -a -p -c "0-$last" "${NODE_PID[sn]}" >/dev/null
	fi
	pp=$("$BENCH" --pingpong --msg-size 1 --duration "$PAIR_SECS" --warmup 0.1 --kv --label pingpong1)
	record "$pp"

	say "sidecar direct, single node"
	for cd in $DIRECT_SINGLE; do direct_run single sn sn "$cd"; done
	syscall_run single_1x1 sn sn 1:1
	syscall_run single_64x16 sn sn 64:16
	record "mode=mem label=single_after_load rss_kb=$(proc_kb "${NODE_PID[sn]}" VmRSS) hwm_kb=$(proc_kb "${NODE_PID[sn]}" VmHWM)"

	section_direct_cluster
}

# The 3-node cluster: its leader and a follower on their unix sockets, and
# the leader's client-tcp under TLS 1.3 with a client certificate of the
# cluster's CA (as a PostgreSQL worker or tsoracle-ctl on another machine
# reaches it).
section_direct_cluster() {
	local cd i lead fol tls=$W/d-tls
	say "sidecar direct, 3-node cluster"
	cluster_start d || return 1
	lead=$(cluster_leader d 30) || return 1
	fol=$((lead % 3 + 1))
	for cd in $DIRECT_LEADER; do direct_run leader "dn$lead" "dn$lead" "$cd"; done
	for cd in $DIRECT_FOLLOWER; do direct_run follower "dn$fol" "dn$lead" "$cd"; done
	say "sidecar direct, the leader's client-tcp ${NODE_TCP[dn$lead]} over TLS 1.3 (client certificate)"
	for cd in $DIRECT_LEADER_TLS; do
		direct_run leader_tls "dn$lead" "dn$lead" "$cd" --address "${NODE_TCP[dn$lead]}" \
			--ca "$tls/ca.crt" --cert "$tls/client.crt" --key "$tls/client.key"
	done
	syscall_run leader_1x1 "dn$lead" "dn$lead" 1:1
	syscall_run leader_64x16 "dn$lead" "dn$lead" 64:16
	syscall_run follower_64x16 "dn$fol" "dn$lead" 64:16
	record "mode=mem label=leader_after_load rss_kb=$(proc_kb "${NODE_PID[dn$lead]}" VmRSS) hwm_kb=$(proc_kb "${NODE_PID[dn$lead]}" VmHWM)"
	record "mode=mem label=follower_after_load rss_kb=$(proc_kb "${NODE_PID[dn$fol]}" VmRSS) hwm_kb=$(proc_kb "${NODE_PID[dn$fol]}" VmHWM)"

	say "profile of the leader under load (perf record, strace -c)"
	profile_leader "dn$lead"
	for i in 1 2 3; do node_stop "dn$i"; done
}

profile_leader() {
	local node=$1 pid=${NODE_PID[$1]}
	if command -v perf >/dev/null; then
		perf record -e cpu-clock -F 2999 -p "$pid" -o "$W/leader.perf" >/dev/null 2>&1 &
		local perf_pid=$!
		sleep 0.5 # perf attaches
		"$BENCH" --address "${NODE_SOCK[$node]}" --connections 64 --depth 16 --duration 1 --warmup 0.1 \
			--kv --label profile >"$W/profile.bench"
		kill -INT "$perf_pid"
		wait "$perf_pid"
		perf report -i "$W/leader.perf" --no-children --stdio --sort dso 2>/dev/null |
			grep -v '^#' | grep -v '^$' | head -8 >"$W/profile.dso"
		perf report -i "$W/leader.perf" --no-children --stdio --sort dso,sym 2>/dev/null |
			grep -v '^#' | grep -v '^$' | head -25 >"$W/profile.sym"
	fi
	# strace -c of a lone-request run: every syscall the daemon makes.
	strace -c -f -p "$pid" -o "$W/strace.lone" >/dev/null 2>&1 &
	local st_pid=$!
	sleep 0.3
	local s0 s1
	s0=$(node_status "$node")
	"$BENCH" --address "${NODE_SOCK[$node]}" --connections 1 --depth 1 --duration 1 --warmup 0 --kv \
		--label strace_lone >"$W/strace.lone.bench"
	s1=$(node_status "$node")
	kill -INT "$st_pid" 2>/dev/null
	wait "$st_pid" 2>/dev/null
	record "mode=strace label=lone grants=$(($(kv grants "$s1") - $(kv grants "$s0"))) $(sed 's/^mode=load label=[^ ]* //' "$W/strace.lone.bench")"
}

# ---- PostgreSQL -------------------------------------------------------------------

psql_b() { "$PG_BINDIR/psql" -X -q -At -h "$W" -p "$PG_PORT" -U postgres -d postgres "$@"; }

pg_start() { # max_connections
	sed -i '/^max_connections/d' "$PGDATA/postgresql.conf"
	echo "max_connections = $1" >>"$PGDATA/postgresql.conf"
	as_pg "$PG_BINDIR/pg_ctl" -D "$PGDATA" -l "$W/log/postgresql.log" -w -t 60 start >/dev/null
}
pg_stop() { as_pg "$PG_BINDIR/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null; }

# p50 and p99 of per-transaction latencies (us, column 3) of pgbench logs.
pgb_lat() { # files...
	cat "$@" | awk '{ print $3 }' | sort -n | awk '{ v[NR] = $1 } END {
		if (NR == 0) { print "p50_us=0 p99_us=0 lat_n=0"; exit }
		i50 = int(NR * 0.50 + 0.5); if (i50 < 1) i50 = 1
		i99 = int(NR * 0.99 + 0.5); if (i99 < 1) i99 = 1; if (i99 > NR) i99 = NR
		printf "p50_us=%s p99_us=%s lat_n=%d", v[i50], v[i99], NR }'
}

pgbench_run() { # label, script, clients, extra args...
	local label=$1 script=$2 c=$3 j out tps pre
	shift 3
	j=$((c < 2 ? c : 2))
	pre=$W/pgb/$label.c$c.$RANDOM
	out=$("$PG_BINDIR/pgbench" -n -M prepared -h "$W" -p "$PG_PORT" -U postgres -c "$c" -j "$j" \
		-f "$W/$script" --log --log-prefix="$pre" "$@" postgres 2>&1)
	tps=$(echo "$out" | awk '/^tps = / { print $3; exit }')
	if [ -z "$tps" ]; then
		say "pgbench $label failed: $(echo "$out" | tail -3)"
		tps=0
	fi
	echo "tps=$tps $(pgb_lat "$pre".*) failed=$(echo "$out" | awk -F': ' '/number of failed transactions/ { print $2+0 }')"
	rm -f "$pre".*
}

# What one transaction costs the whole machine, at 16 clients: system
# calls and context switches (perf stat -a), and who spends the CPU
# (perf record -a, by process). The machine is shared: other processes
# show up as "other".
pg_costs() { # query
	local q=$1 c=16 pf tx wpid spid
	pf=$W/pgcost.$q
	command -v perf >/dev/null || return 0
	perf stat -a -x, -o "$pf" -e context-switches,raw_syscalls:sys_enter,syscalls:sys_enter_kill \
		-e syscalls:sys_enter_epoll_wait,syscalls:sys_enter_read,syscalls:sys_enter_write \
		-e syscalls:sys_enter_sendto,syscalls:sys_enter_recvfrom -- \
		"$PG_BINDIR/pgbench" -n -M prepared -h "$W" -p "$PG_PORT" -U postgres -c "$c" -j 2 -T "$COST_SECS" \
		-f "$W/$q.sql" postgres >"$pf.out" 2>&1
	tx=$(awk -F': ' '/number of transactions actually processed/ { print $2 + 0 }' "$pf.out")
	record "mode=pgcost query=$q clients=$c tx=$tx tps=$(awk '/^tps = / { print $3; exit }' "$pf.out") $(awk -F, '/sys_enter|context-switches/ {
		n = $3; sub(/.*:/, "", n); sub(/sys_enter_?/, "", n); if (n == "") n = "all";
		gsub(/-/, "_", n); printf "sc_%s=%s ", n, $1 }' "$pf")"
	wpid=$(psql_b -c "SELECT pid FROM tso_worker_status()")
	spid=${NODE_PID[sn]}
	perf record -a -e cpu-clock -F 999 -o "$pf.data" -- \
		"$PG_BINDIR/pgbench" -n -M prepared -h "$W" -p "$PG_PORT" -U postgres -c "$c" -j 2 -T "$COST_SECS" \
		-f "$W/$q.sql" postgres >"$pf.out2" 2>&1 &
	local rec=$! pm
	# Our postmaster's children while the clients are connected: the
	# backends (and the worker, counted apart), not other clusters'.
	sleep 0.5
	pm=$(head -n1 "$PGDATA/postmaster.pid")
	ps -o pid= --ppid "$pm" | tr -d ' ' >"$pf.pids"
	echo "$pm" >>"$pf.pids"
	wait "$rec"
	tx=$(awk -F': ' '/number of transactions actually processed/ { print $2 + 0 }' "$pf.out2")
	record "mode=pgcpu query=$q clients=$c tx=$tx secs=$COST_SECS ncpu=$(nproc) $(perf report -i "$pf.data" --stdio --sort pid 2>/dev/null |
		awk -v w="$wpid" -v s="$spid" -v pf="$pf.pids" 'BEGIN { while ((getline l < pf) > 0) ours[l] = 1 }
		/^ +[0-9.]+%/ {
			p = $2; sub(/:.*/, "", p); c = $2; sub(/^[0-9]+:/, "", c); v = $1; sub(/%/, "", v)
			if (p == w) k = "worker"; else if (p == s) k = "sidecar"; else if (p in ours) k = "backends"
			else if (c == "pgbench") k = "pgbench"; else if (p == "0" || c == "swapper") k = "idle"; else k = "other"
			sum[k] += v }
		END { for (k in sum) printf "cpu_%s=%.2f ", k, sum[k] }')"
}

# initdb and the configuration of the PostgreSQL server the bench uses.
pg_setup() {
	PG_PORT=$(free_ports)
	PGDATA=$W/pgdata
	mkdir -p "$W/pgb"
	say "PostgreSQL: initdb in $PGDATA, port $PG_PORT"
	as_pg "$PG_BINDIR/initdb" -D "$PGDATA" -U postgres --auth=trust >/dev/null || return 1
	cat >>"$PGDATA/postgresql.conf" <<CONF
# tsoracle bench
listen_addresses = ''
port = $PG_PORT
unix_socket_directories = '$W'
shared_preload_libraries = 'tsoracle'
tsoracle.sidecar_address = '$W/sn.sock'
CONF
}

section_pg() {
	local sh c rep q out
	pg_setup || return 1
	# The extension's shared memory at 1000 and at 100 connections.
	for c in 1000 100; do
		pg_start "$c" || return 1
		psql_b -c "CREATE EXTENSION IF NOT EXISTS tsoracle" || return 1
		sh=$(psql_b -F' ' -c "SELECT coalesce(sum(size), 0), coalesce(sum(allocated_size), 0), current_setting('max_connections'), (SELECT count(*) FROM pg_shmem_allocations WHERE name LIKE 'tsoracle%') FROM pg_shmem_allocations WHERE name LIKE 'tsoracle%'")
		record "mode=shmem max_connections=$c size=$(echo "$sh" | cut -d' ' -f1) allocated=$(echo "$sh" | cut -d' ' -f2) entries=$(echo "$sh" | cut -d' ' -f4)"
		[ "$c" = 100 ] || pg_stop
	done
	psql_b -c "CREATE SEQUENCE IF NOT EXISTS s" || return 1
	psql_b -c "SELECT tso_now()" >/dev/null || { say "tso_now() fails; see $W/log"; return 1; }
	echo "SELECT 1;" >"$W/select1.sql"
	echo "SELECT nextval('s');" >"$W/nextval.sql"
	echo "SELECT tso_now();" >"$W/tso_now.sql"
	echo "SELECT count(*) FROM tso_range(1000000);" >"$W/bulk_tso.sql"
	echo "SELECT count(*) FROM generate_series(1, 1000000);" >"$W/bulk_gs.sql"
	chmod 644 "$W"/*.sql

	say "pgbench -M prepared: $PG_CLIENTS clients x {SELECT 1, nextval, tso_now} x $PG_REPS, $PG_SECS s each"
	for c in $PG_CLIENTS; do
		for ((rep = 1; rep <= PG_REPS; rep++)); do
			for q in select1 nextval tso_now; do
				out=$(pgbench_run "$q" "$q.sql" "$c" -T "$PG_SECS")
				record "mode=pgbench query=$q clients=$c rep=$rep $out"
			done
		done
		say "  $c clients done"
	done

	if [ -z "$QUICK" ]; then
		say "costs per transaction at 16 clients (perf stat -a, perf record -a)"
		pg_costs nextval
		pg_costs tso_now
	fi

	say "bulk: tso_range(1000000) vs generate_series, $BULK_REPS each, alternated"
	for ((rep = 1; rep <= BULK_REPS; rep++)); do
		for q in bulk_gs bulk_tso; do
			"$PG_BINDIR/pgbench" -n -M prepared -h "$W" -p "$PG_PORT" -U postgres -c 1 -t 1 -f "$W/$q.sql" \
				--log --log-prefix="$W/pgb/$q.$rep" postgres >/dev/null 2>&1
		done
	done
	for q in bulk_gs bulk_tso; do
		record "mode=bulk query=$q reps=$BULK_REPS $(pgb_lat "$W/pgb/$q".*)"
	done
	record "mode=pgworker $(psql_b -F' ' -c "SELECT 'requests=' || requests, 'batches=' || batches, 'timestamps=' || timestamps FROM tso_worker_status()" 2>/dev/null)"
	section_inserts || return 1
	record "mode=mem label=single_after_pg rss_kb=$(proc_kb "${NODE_PID[sn]}" VmRSS) hwm_kb=$(proc_kb "${NODE_PID[sn]}" VmHWM)"
	pg_stop
	PGDATA=
}

# ---- inserts: DEFAULT tso_now() against bigserial ----------------------------------

# Wall time of "$@" in ms.
wall_ms() {
	local t0 t1
	t0=$(now_s)
	"$@" >/dev/null 2>"$W/wall.err" || { say "failed: $* ($(tail -1 "$W/wall.err"))"; return 1; }
	t1=$(now_s)
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) * 1000 }'
}

# One bulk load into table ins_$2 (tso or ser): kind $1 is insert or copy,
# by $3 sessions at once, INS_ROWS rows in all; prints its wall time in ms.
ins_load() {
	local kind=$1 key=$2 n=$3 per=$((INS_ROWS / $3)) s pids=() rc=0 t0 t1
	psql_b -c "TRUNCATE ins_$key" || return 1
	psql_b -c "CHECKPOINT" || return 1
	t0=$(now_s)
	for ((s = 0; s < n; s++)); do
		if [ "$kind" = insert ]; then
			psql_b -c "INSERT INTO ins_$key (s, n) SELECT $s, g FROM generate_series(1, $per) g" >/dev/null &
		else
			psql_b -c "COPY ins_$key (s, n) FROM '$W/ins.$n.$s'" >/dev/null &
		fi
		pids+=($!)
	done
	for s in "${pids[@]}"; do wait "$s" || rc=1; done
	t1=$(now_s)
	[ $rc -eq 0 ] || { say "ins_load $kind $key $n failed"; return 1; }
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) * 1000 }'
}

# Are the keys of ins_tso unique, and increasing in row order within each
# session's statement? Prints rows=, distinct=, increasing= (t/f).
ins_check() {
	psql_b -F' ' -c "SELECT 'rows=' || count(*), 'distinct=' || count(DISTINCT id),
		'increasing=' || coalesce(bool_and(id > prev), true)
		FROM (SELECT id, lag(id) OVER (PARTITION BY s ORDER BY n) AS prev FROM ins_tso) x"
}

# Where the time of one single-row INSERT transaction goes, for key $1 (tso
# or ser) at $2 clients (issue #15): the CPU of the tsoracle worker and of
# the sidecar per transaction (/proc ticks around the run), the worker's
# calls per sidecar request, the machine's context switches, wakeups and
# system calls per transaction (perf stat -a, so other work on this shared
# machine adds to them), and what the clients' backends wait on (20
# samples of pg_stat_activity).
ins_costs() { # key, clients
	local key=$1 c=$2 pf=$W/inscost.$1.$2 wpid spid w0 w1 s0 s1 st0 st1 tx sp i
	wpid=$(psql_b -c "SELECT pid FROM tso_worker_status()")
	spid=${NODE_PID[sn]}
	st0=$(psql_b -F' ' -c "SELECT requests, batches FROM tso_worker_status()")
	w0=$(proc_ticks "$wpid") s0=$(proc_ticks "$spid")
	(
		for ((i = 0; i < 20; i++)); do
			sleep "$(awk -v t="$INS_SECS" 'BEGIN { print t / 22 }')"
			psql_b -c "SELECT coalesce(wait_event_type, 'CPU') FROM pg_stat_activity WHERE application_name = 'pgbench' AND state = 'active'"
		done
	) >"$pf.waits" &
	sp=$!
	if command -v perf >/dev/null; then
		perf stat -a -x, -o "$pf.perf" -e context-switches,sched:sched_wakeup,raw_syscalls:sys_enter,syscalls:sys_enter_kill -- \
			"$PG_BINDIR/pgbench" -n -M prepared -h "$W" -p "$PG_PORT" -U postgres -c "$c" -j $((c < 2 ? c : 2)) \
			-T "$INS_SECS" -f "$W/ins_$key.sql" postgres >"$pf.out" 2>&1
	else
		"$PG_BINDIR/pgbench" -n -M prepared -h "$W" -p "$PG_PORT" -U postgres -c "$c" -j $((c < 2 ? c : 2)) \
			-T "$INS_SECS" -f "$W/ins_$key.sql" postgres >"$pf.out" 2>&1
		: >"$pf.perf"
	fi
	w1=$(proc_ticks "$wpid") s1=$(proc_ticks "$spid")
	wait "$sp"
	st1=$(psql_b -F' ' -c "SELECT requests, batches FROM tso_worker_status()")
	tx=$(awk -F': ' '/number of transactions actually processed/ { print $2 + 0 }' "$pf.out")
	record "mode=ins_cost key=$key clients=$c tx=${tx:-0} tps=$(awk '/^tps = / { print $3; exit }' "$pf.out")" \
		"worker_ticks=$((w1 - w0)) sidecar_ticks=$((s1 - s0)) hz=$CLK_TCK" \
		"calls=$(($(echo "$st1" | cut -d' ' -f1) - $(echo "$st0" | cut -d' ' -f1)))" \
		"batches=$(($(echo "$st1" | cut -d' ' -f2) - $(echo "$st0" | cut -d' ' -f2)))" \
		"waits=$(wc -l <"$pf.waits") waits_ext=$(grep -c '^Extension' "$pf.waits") waits_cpu=$(grep -c '^CPU' "$pf.waits")" \
		"$(awk -F, '$3 ~ /[a-z]/ { n = $3; sub(/.*:/, "", n); sub(/sys_enter_?/, "", n); if (n == "") n = "syscalls";
			gsub(/-/, "_", n); printf "ev_%s=%s ", n, $1 }' "$pf.perf")"
}

section_inserts() {
	local rep kind n key ms c q out first
	say "inserts: DEFAULT tso_now() against bigserial, $INS_REPS alternating rounds of each"
	# Commits do not wait for the WAL flush in this section: this shared
	# VM's fsync time varies twentyfold with the neighbours' I/O, which
	# would decide both keys' numbers alike; without it the comparison
	# measures the CPU and latency that tso_now() adds (the stricter test).
	export PGOPTIONS="-c synchronous_commit=off"
	psql_b -c "CREATE TABLE ins_tso (id bigint PRIMARY KEY DEFAULT tso_now(), s int NOT NULL, n int NOT NULL)" || return 1
	psql_b -c "CREATE TABLE ins_ser (id bigserial PRIMARY KEY, s int NOT NULL, n int NOT NULL)" || return 1
	psql_b -c "CREATE SEQUENCE IF NOT EXISTS s" || return 1
	for n in 1 "$INS_SESSIONS"; do
		for ((c = 0; c < n; c++)); do
			seq 1 $((INS_ROWS / n)) | awk -v s="$c" '{ print s "\t" $1 }' >"$W/ins.$n.$c"
		done
	done
	chmod 644 "$W"/ins.*
	# Bulk: the order of the two keys alternates from round to round.
	for kind in insert copy; do
		for n in 1 "$INS_SESSIONS"; do
			for ((rep = 1; rep <= INS_REPS; rep++)); do
				first=tso
				[ $((rep % 2)) -eq 0 ] && first=ser
				for key in $first $([ $first = tso ] && echo ser || echo tso); do
					ms=$(ins_load "$kind" "$key" "$n") || return 1
					if [ "$key" = tso ]; then
						record "mode=ins_bulk kind=$kind sessions=$n key=$key rep=$rep rows=$INS_ROWS ms=$ms $(ins_check)"
					else
						record "mode=ins_bulk kind=$kind sessions=$n key=$key rep=$rep rows=$INS_ROWS ms=$ms"
					fi
				done
			done
			say "  $kind, $n session(s): done"
		done
	done
	# Single-row INSERT transactions and SELECT tso_now() / nextval().
	echo "INSERT INTO ins_tso (s, n) VALUES (:client_id, 1);" >"$W/ins_tso.sql"
	echo "INSERT INTO ins_ser (s, n) VALUES (:client_id, 1);" >"$W/ins_ser.sql"
	echo "SELECT nextval('s');" >"$W/nextval.sql"
	echo "SELECT tso_now();" >"$W/tso_now.sql"
	chmod 644 "$W"/*.sql
	for c in 1 16; do
		for ((rep = 1; rep <= INS_REPS; rep++)); do
			for q in ins_tso ins_ser tso_now nextval; do
				[ $((rep % 2)) -eq 0 ] && case $q in ins_tso) q=ins_ser ;; ins_ser) q=ins_tso ;; tso_now) q=nextval ;; nextval) q=tso_now ;; esac
				out=$(pgbench_run "$q" "$q.sql" "$c" -T "$INS_SECS")
				record "mode=ins_tps kind=$q clients=$c rep=$rep $out"
			done
		done
		say "  single-row inserts and SELECT at $c client(s): done"
	done
	for c in 1 16; do
		ins_costs tso "$c" && ins_costs ser "$c" || return 1
	done
	say "  costs per single-row INSERT transaction: done"
	# pgbench's TPC-B-like script, its history table keyed either way.
	"$PG_BINDIR/pgbench" -i -q -s "$INS_SCALE" -h "$W" -p "$PG_PORT" -U postgres postgres >/dev/null 2>&1 || {
		say "pgbench -i failed"
		return 1
	}
	psql_b -c "CREATE SEQUENCE hist_id" -c "ALTER TABLE pgbench_history ADD COLUMN id bigint PRIMARY KEY DEFAULT tso_now()" || return 1
	for ((rep = 1; rep <= INS_REPS; rep++)); do
		for key in tso ser; do
			[ $((rep % 2)) -eq 0 ] && { [ $key = tso ] && key=ser || key=tso; }
			if [ $key = tso ]; then
				psql_b -c "ALTER TABLE pgbench_history ALTER COLUMN id SET DEFAULT tso_now()" || return 1
			else
				psql_b -c "ALTER TABLE pgbench_history ALTER COLUMN id SET DEFAULT nextval('hist_id')" || return 1
			fi
			out=$("$PG_BINDIR/pgbench" -n -M prepared -b tpcb-like -h "$W" -p "$PG_PORT" -U postgres -c 16 -j 2 \
				-T "$INS_SECS" postgres 2>&1 | awk '/^tps = / { print "tps=" $3; exit }')
			record "mode=ins_tps kind=tpcb_$key clients=16 rep=$rep ${out:-tps=0}"
		done
	done
	say "  pgbench tpcb-like at 16 clients: done"
	psql_b -c "DROP TABLE ins_tso, ins_ser" >/dev/null
	unset PGOPTIONS
}

# ---- failover ---------------------------------------------------------------------

# Trials of: gap clients on both survivors, then signal $3 to the leader;
# the killed node is restarted and caught up before the next trial.
failover_trials() { # cluster, trials, signal, label
	local c=$1 n=$2 sig=$3 label=$4 t lead a b ga gb la lb watch
	# A kill -9 leaves a gap of an election at least: the clients exit once
	# one of 50 ms or more has closed. A SIGTERM hands over first, and its
	# gap may be shorter than that: they watch a fixed window instead.
	watch=(--gap-min 50)
	[ "$sig" = TERM ] && watch=(--gap-window "$TRANSFER_WINDOW_MS")
	for ((t = 1; t <= n; t++)); do
		lead=$(cluster_leader "$c" 30) || return 1
		a=$((lead % 3 + 1))
		b=$((a % 3 + 1))
		"$BENCH" --gap --address "${NODE_SOCK[${c}n$a]}" --duration 20 --interval-us "$GAP_INTERVAL_US" \
			"${watch[@]}" --kv --label "$label" >"$W/gap.a" 2>/dev/null &
		ga=$!
		"$BENCH" --gap --address "${NODE_SOCK[${c}n$b]}" --duration 20 --interval-us "$GAP_INTERVAL_US" \
			"${watch[@]}" --kv --label "$label" >"$W/gap.b" 2>/dev/null &
		gb=$!
		GAP_PIDS=("$ga" "$gb")
		sleep 0.4
		{
			kill -USR1 "$ga" "$gb"
			mine "${NODE_PID[${c}n$lead]}" && kill "-$sig" "${NODE_PID[${c}n$lead]}"
			wait "$ga" "$gb"
			wait "${NODE_PID[${c}n$lead]}"
		} 2>/dev/null
		la=$(cat "$W/gap.a")
		lb=$(cat "$W/gap.b")
		la=${la#mode=gap label="$label" }
		lb=${lb#mode=gap label="$label" }
		record "mode=failover label=$label trial=$t killed=$lead sig=$sig side=a ${la:-closed=0}"
		record "mode=failover label=$label trial=$t killed=$lead sig=$sig side=b ${lb:-closed=0}"
		say "  $label trial $t: killed node $lead; gaps $(kv gap_ms "$la") ms (node $a), $(kv gap_ms "$lb") ms (node $b)"
		node_restart "${c}n$lead"
	done
	cluster_leader "$c" 30 >/dev/null
}

# Planned handovers: tsoracle-ctl transfer-leader to the leader, with gap
# clients on all three members watching TRANSFER_WINDOW_MS after it starts.
transfer_trials() { # cluster, trials, label
	local c=$1 n=$2 label=$3 t lead i rc t0 t1 l pids
	for ((t = 1; t <= n; t++)); do
		lead=$(cluster_leader "$c" 30) || return 1
		pids=()
		for i in 1 2 3; do
			"$BENCH" --gap --address "${NODE_SOCK[${c}n$i]}" --duration 20 --interval-us "$GAP_INTERVAL_US" \
				--gap-window "$TRANSFER_WINDOW_MS" --kv --label "$label" >"$W/gap.$i" 2>/dev/null &
			pids+=($!)
		done
		GAP_PIDS=("${pids[@]}")
		sleep 0.4
		kill -USR1 "${pids[@]}"
		t0=$(now_s)
		"$W/bin/tsoracle-ctl" --address "${NODE_SOCK[${c}n$lead]}" --timeout 10000 transfer-leader \
			>"$W/transfer.out" 2>&1
		rc=$?
		t1=$(now_s)
		wait "${pids[@]}"
		for i in 1 2 3; do
			l=$(cat "$W/gap.$i")
			l=${l#mode=gap label="$label" }
			record "mode=failover label=$label trial=$t killed=$lead sig=transfer side=$i ctl_rc=$rc" \
				"ctl_ms=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", (b - a) * 1000 }') ${l:-closed=0}"
		done
		say "  $label trial $t: node $lead handed over (ctl exit $rc, $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", (b - a) * 1000 }') ms):" \
			"gaps $(for i in 1 2 3; do printf '%s ' "$(kv gap_ms "$(cat "$W/gap.$i")")"; done)ms"
	done
}

section_failover() {
	local i transfer=
	if [ -x "$W/bin/tsoracle-ctl" ] && "$W/bin/tsoracle-ctl" --help 2>&1 | grep -q transfer-leader; then
		transfer=1
	fi
	record "mode=transfer available=${transfer:-0}"
	say "failover, default timing: $FO_DEFAULT trials of kill -9"
	cluster_start f || return 1
	failover_trials f "$FO_DEFAULT" KILL default || return 1
	if [ "$FO_TERM" -gt 0 ]; then
		say "planned stop, default timing: $FO_TERM trials of SIGTERM"
		failover_trials f "$FO_TERM" TERM sigterm || return 1
	fi
	if [ -n "$transfer" ] && [ "$FO_TRANSFER" -gt 0 ]; then
		say "planned handover, default timing: $FO_TRANSFER trials of tsoracle-ctl transfer-leader"
		transfer_trials f "$FO_TRANSFER" transfer || return 1
	fi
	for i in 1 2 3; do node_stop "fn$i"; done
	if [ "$FO_TUNED" -gt 0 ]; then
		say "failover, tuned ($TUNED_FLAGS): $FO_TUNED trials of kill -9"
		# shellcheck disable=SC2086
		cluster_start t $TUNED_FLAGS || return 1
		failover_trials t "$FO_TUNED" KILL tuned || return 1
		if [ -n "$transfer" ] && [ -z "$QUICK" ]; then
			say "planned handover, tuned timing: $FO_TRANSFER trials of tsoracle-ctl transfer-leader"
			transfer_trials t "$FO_TRANSFER" transfer_tuned || return 1
		fi
		for i in 1 2 3; do node_stop "tn$i"; done
	fi
}

# ---- the report ------------------------------------------------------------------

render() {
	perl - "$R" "$W" <<'PERL'
use strict;
use warnings;
my ($file, $dir) = @ARGV;
my @rows;
open(my $fh, '<', $file) or die "$file: $!";
while (<$fh>) {
	chomp;
	my %h;
	while (/(\w+)=(\S*)/g) { $h{$1} = $2; }
	push @rows, \%h;
}
close $fh;
sub sel { my ($mode, %m) = @_; return grep { my $r = $_; ($r->{mode} // '') eq $mode && !grep { ($r->{$_} // '') ne $m{$_} } keys %m } @rows; }
sub median { my @v = sort { $a <=> $b } grep { defined && $_ ne '' } @_; return undef unless @v; my $n = @v; return $n % 2 ? $v[($n - 1) / 2] : ($v[$n / 2 - 1] + $v[$n / 2]) / 2; }
sub max { my $m; for (@_) { $m = $_ if defined $_ && (!defined $m || $_ > $m) } return $m; }
sub num { my ($v, $d) = @_; return 'n/a' unless defined $v; $d //= 0; my $s = sprintf("%.${d}f", $v); 1 while $s =~ s/^(-?\d+)(\d{3})/$1,$2/; return $s; }
sub ratio { my ($a, $b) = @_; return undef unless defined $a && defined $b && $b != 0; return $a / $b; }
sub rat { my $r = shift; return defined $r ? sprintf("%.2f×", $r) : 'n/a'; }
sub mib { my $kb = shift; return defined $kb && $kb ne '' ? sprintf("%.1f MiB", $kb / 1024) : 'n/a'; }
my @out;
my @targets;
sub verdict { my ($ok) = @_; return !defined $ok ? 'n/a' : $ok ? '**met**' : '**missed**'; }

# Latency floor.
my %fl;
for my $pl (qw(same cross any)) {
	my @l = sel('load', label => "lone_$pl");
	my @p = sel('pingpong', label => "pingpong_$pl");
	next unless @l && @p;
	$fl{$pl} = { n => scalar(@l), pp => median(map { $_->{p50_us} } @p), lone => median(map { $_->{p50_us} } @l),
	  pp99 => median(map { $_->{p99_us} } @p), lone99 => median(map { $_->{p99_us} } @l) };
}
my ($pp1) = map { $_->{p50_us} } sel('pingpong', label => 'pingpong1');
if (%fl) {
	my %desc = (same => 'pinned, same CPU (client and sidecar share one core)', cross => 'pinned, different CPUs',
	  any => 'not pinned (the scheduler decides)');
	push @out, "### Latency floor: a lone request against a bare unix-socket ping-pong", "",
	  "Alternated in the same run (median of the runs' p50s). The ping-pong is two processes bouncing a",
	  "request-sized message (17 bytes out, 27 back) over a socketpair with blocking read/write; the lone",
	  "request is one connection, depth 1, count 1, to a single-node sidecar, whose threads are pinned",
	  "(taskset) to the last CPU for the pinned rows. In this VM a wakeup across cores costs far more",
	  "than one on the same core, so the placement decides the floor; compare like with like.", "",
	  "| placement | runs | ping-pong p50 | lone request p50 | ratio | ping-pong p99 | lone request p99 |",
	  "|---|---:|---:|---:|---:|---:|---:|";
	for my $pl (qw(same cross any)) {
		next unless $fl{$pl};
		my $f = $fl{$pl};
		push @out, sprintf("| %s | %d | %s µs | %s µs | %s | %s µs | %s µs |", $desc{$pl}, $f->{n}, num($f->{pp}, 1), num($f->{lone}, 1),
		  rat(ratio($f->{lone}, $f->{pp})), num($f->{pp99}, 1), num($f->{lone99}, 1));
	}
	push @out, "", "(A 1-byte ping-pong, not pinned: p50 " . num($pp1, 1) . " µs.)", "" if defined $pp1;
	my @pinned = grep { $fl{$_} } qw(same cross);
	@pinned = ('any') unless @pinned;
	my @r = map { ratio($fl{$_}{lone}, $fl{$_}{pp}) } @pinned;
	my $worst = max(@r);
	push @targets, ["lone request p50 ≤ 1.5× ping-pong (worst of: " . join(', ', @pinned) . ")", "≤ 1.50×",
	  join(', ', map { rat($_) } @r), verdict(defined $worst ? $worst <= 1.5 : undef)];
}

# Direct (absent from a BENCH_ONLY run).
if (sel('load')) {
	push @out, "### Sidecar direct (tsoracle-bench, count 1)", "",
	  "Best of " . ((sel('load_rep'))[0]{of} // 1) . " runs by requests/s. Requests/s are responses received in the measured window; latency is from the write of a",
	  "request to the read of its response. \"sidecar\" is the CPU of the node the client talks to",
	  "(cores, from /proc), \"req/grant\" the requests the leader answered per allocator call.", "",
	  "| target | conns × depth | requests/s | p50 | p99 | p99.9 | max | sidecar CPU | leader CPU | req/grant | errors | violations |",
	  "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|";
	my %best;
	for my $r (grep { ($_->{label} // '') =~ /^(single|leader|follower|leader_tls)$/ } sel('load')) {
		my $rpg = $r->{grants} ? $r->{stamps_total} / $r->{grants} : undef;
		push @out, sprintf("| %s | %s × %s | %s | %s µs | %s µs | %s µs | %s µs | %s | %s | %s | %s | %s |",
			$r->{label}, $r->{conns}, $r->{depth}, num($r->{rps}), num($r->{p50_us}, 1), num($r->{p99_us}, 1),
			num($r->{p999_us}, 1), num($r->{max_us}, 0), $r->{sidecar_cores} // 'n/a',
			$r->{label} eq 'follower' ? ($r->{leader_cores} // 'n/a') : '', num($rpg, 0), $r->{errors}, $r->{violations});
		$best{$r->{label}} = $r->{rps} if !defined $best{$r->{label}} || $r->{rps} > $best{$r->{label}};
		$best{"$r->{label}_d1"} = $r->{rps} if $r->{depth} == 1 && (!defined $best{"$r->{label}_d1"} || $r->{rps} > $best{"$r->{label}_d1"});
	}
	push @out, "\"leader_tls\": the leader's client-tcp over TLS 1.3, the client presenting a `client` certificate of the cluster's CA.", "";
	push @targets, ["leader of 3 nodes ≥ 1,000,000 requests/s (count 1), best configuration", "≥ 1,000,000/s",
	  num($best{leader}) . "/s (" . rat(ratio($best{leader}, 1e6)) . ")", verdict(defined $best{leader} ? $best{leader} >= 1e6 : undef)];
	push @targets, ["the same over TLS 1.3 (the leader's client-tcp, a client certificate)", "≥ 1,000,000/s",
	  num($best{leader_tls}) . "/s (" . rat(ratio($best{leader_tls}, 1e6)) . ")", verdict(defined $best{leader_tls} ? $best{leader_tls} >= 1e6 : undef)];
	push @targets, ["(for reference) the same without pipelining: depth 1, best of 1/16/64 connections", "",
	  num($best{leader_d1}) . "/s (" . rat(ratio($best{leader_d1}, 1e6)) . ")", "informative"];
}

# Syscalls.
my @sc = sel('syscalls');
if (@sc) {
	push @out, "### System calls of the sidecar per request", "",
	  "Counted with perf tracepoints (`raw_syscalls:sys_enter`, `syscalls:sys_enter_*`) on the daemon",
	  "during the run; \"requests\" and \"grants\" are the leader's counters (status), warmup included.", "",
	  "| run | requests | grants | read | write | epoll_wait | all syscalls | syscalls/request | requests/read | context switches |",
	  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|";
	for my $r (@sc) {
		my $req = $r->{stamps_total} || 0;
		my $a = $r->{sc_all};
		push @out, sprintf("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |", $r->{label}, num($req), num($r->{grants}),
		  num($r->{sc_read}), num($r->{sc_write}), num($r->{sc_epoll_wait}), num($a),
		  (defined $a && $a ne 'na' && $req) ? sprintf("%.3f", $a / $req) : 'n/a',
		  ($r->{sc_read} && $req) ? sprintf("%.1f", $req / $r->{sc_read}) : 'n/a', num($r->{sc_context_switches}));
	}
	push @out, "", "(For the follower row, requests and grants are the leader's counters: the requests that came through the follower, and the batches it forwarded.)", "";
}
my ($st) = sel('strace', label => 'lone');
if (-s "$dir/strace.lone") {
	push @out, "strace -c of the leader during 1 s of lone requests (" . num($st->{reqs}) . " requests in the measured second, " .
	  num($st->{grants}) . " grants in all; strace slows the daemon):", "", "```";
	open(my $s, '<', "$dir/strace.lone"); push @out, map { chomp; $_ } grep { /\S/ } <$s>; close $s;
	push @out, "```", "";
}
if (-s "$dir/profile.dso") {
	push @out, "perf record (cpu-clock) of the leader at 64 connections × depth 16, by object and top symbols:", "", "```";
	for my $f ("$dir/profile.dso", "$dir/profile.sym") { open(my $s, '<', $f); push @out, map { chomp; $_ } <$s>; close $s; push @out, ""; }
	pop @out;
	push @out, "```", "";
}

# PostgreSQL.
my @pg = sel('pgbench');
if (@pg) {
	push @out, "### Through PostgreSQL: pgbench -M prepared, one statement per transaction", "",
	  "Median over repetitions; p50/p99 from pgbench --log (per-transaction latency). Ratios are",
	  "tso_now() over nextval(): TPS (higher is better) and p99 (lower is better).", "",
	  "| clients | SELECT 1 TPS | nextval TPS | tso_now TPS | tso/nextval TPS | SELECT 1 p99 | nextval p50 / p99 | tso_now p50 / p99 | tso/nextval p99 |",
	  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|";
	my %cl; $cl{$_->{clients}} = 1 for @pg;
	for my $c (sort { $a <=> $b } keys %cl) {
		my %m;
		for my $q (qw(select1 nextval tso_now)) {
			my @x = sel('pgbench', query => $q, clients => $c);
			$m{$q} = { tps => median(map { $_->{tps} } @x), p50 => median(map { $_->{p50_us} } @x), p99 => median(map { $_->{p99_us} } @x) };
		}
		my ($rt, $rp) = (ratio($m{tso_now}{tps}, $m{nextval}{tps}), ratio($m{tso_now}{p99}, $m{nextval}{p99}));
		push @out, sprintf("| %d | %s | %s | %s | %s | %s µs | %s / %s µs | %s / %s µs | %s |", $c, num($m{select1}{tps}), num($m{nextval}{tps}),
		  num($m{tso_now}{tps}), rat($rt), num($m{select1}{p99}), num($m{nextval}{p50}), num($m{nextval}{p99}),
		  num($m{tso_now}{p50}), num($m{tso_now}{p99}), rat($rp));
		if ($c == 16) {
			push @targets, ["pgbench 16 clients: tso_now() TPS ≥ 0.9× nextval()", "≥ 0.90×", rat($rt), verdict(defined $rt ? $rt >= 0.9 : undef)];
			push @targets, ["pgbench 16 clients: tso_now() p99 ≤ 1.5× nextval()", "≤ 1.50×", rat($rp), verdict(defined $rp ? $rp <= 1.5 : undef)];
		}
	}
	push @out, "";
	my ($w) = sel('pgworker');
	push @out, "The worker coalesced " . num($w->{requests}) . " backend requests into " . num($w->{batches}) . " sidecar requests over the whole PostgreSQL run.", "" if $w && $w->{batches};
	my @pc = sel('pgcost');
	if (@pc) {
		push @out, "What one transaction costs the machine at 16 clients (perf stat -a over the pgbench run, divided by",
		  "its transactions; whole machine, so other engineers' processes add a little noise):", "",
		  "| statement | TPS | context switches/tx | syscalls/tx | kill/tx | epoll_wait/tx | read/tx | write/tx | sendto/tx | recvfrom/tx |",
		  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|";
		for my $r (@pc) {
			my $t = $r->{tx} || 1;
			push @out, sprintf("| %s | %s | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f |", $r->{query}, num($r->{tps}),
			  map { ($r->{$_} // 0) / $t } qw(sc_context_switches sc_all sc_kill sc_epoll_wait sc_read sc_write sc_sendto sc_recvfrom));
		}
		push @out, "";
	}
	my @pu = sel('pgcpu');
	if (@pu) {
		push @out, "Where the CPU goes at 16 clients (perf record -a, share of all " . ($pu[0]{ncpu} // '?') .
		  " CPUs' samples; µs of CPU per transaction in parentheses):", "",
		  "| statement | backends | tsoracle worker | sidecar | pgbench | other processes | idle |", "|---|---:|---:|---:|---:|---:|---:|";
		for my $r (@pu) {
			my $per = sub { my $v = $r->{"cpu_$_[0]"} // 0; my $us = $r->{tx} ? $v / 100 * ($r->{ncpu} || 1) * $r->{secs} * 1e6 / $r->{tx} : 0;
			  return sprintf("%.1f%% (%.1f µs)", $v, $us); };
			push @out, "| $r->{query} | " . join(' | ', map { $per->($_) } qw(backends worker sidecar pgbench other)) . " | " .
			  sprintf("%.1f%%", $r->{cpu_idle} // 0) . " |";
		}
		push @out, "";
	}
}
my @bk = sel('bulk');
if (@bk) {
	my ($gs) = sel('bulk', query => 'bulk_gs');
	my ($ts) = sel('bulk', query => 'bulk_tso');
	my $r = ratio($ts->{p50_us}, $gs->{p50_us});
	push @out, "### Bulk: one million values", "", "Median of $gs->{reps} executions each (pgbench -t, one client).", "",
	  "| statement | median |", "|---|---:|",
	  "| `SELECT count(*) FROM generate_series(1, 1000000)` | " . num($gs->{p50_us} / 1000, 1) . " ms |",
	  "| `SELECT count(*) FROM tso_range(1000000)` | " . num($ts->{p50_us} / 1000, 1) . " ms |",
	  "| ratio | " . rat($r) . " |", "";
	push @targets, ["tso_range(1000000) ≤ 1.5× generate_series", "≤ 1.50×", rat($r), verdict(defined $r ? $r <= 1.5 : undef)];
}

# Inserts: DEFAULT tso_now() against bigserial.
my @ib = sel('ins_bulk');
if (@ib) {
	push @out, "### Inserts: a table keyed by DEFAULT tso_now() against bigserial", "",
	  "Both tables `(id ... PRIMARY KEY, s int, n int)`; the rounds alternate which key goes first, and each",
	  "load starts on an empty table after a CHECKPOINT. Wall time of the load (psql, one statement per",
	  "session), median of the rounds; ratio = the median over the rounds of bigserial time / tso_now() time",
	  "in the same round (higher is better, 1 is parity; the load of this shared machine changes between",
	  "rounds, so only ratios within a round compare like with like). \"checked\" = every tso_now() round had unique ids, increasing in row order within each",
	  "session (lag over n). Every client of this section runs with `synchronous_commit = off`: commits",
	  "do not wait for the WAL flush, whose time on this shared VM varies with the neighbours' I/O.", "",
	  "| load | rows | sessions | bigserial | tso_now() | ratio | checked |", "|---|---:|---:|---:|---:|---:|---|";
	for my $k (qw(insert copy)) {
		my %ss; $ss{$_->{sessions}} = 1 for sel('ins_bulk', kind => $k);
		for my $n (sort { $a <=> $b } keys %ss) {
			my @t = sel('ins_bulk', kind => $k, sessions => $n, key => 'tso');
			my @s = sel('ins_bulk', kind => $k, sessions => $n, key => 'ser');
			my ($mt, $ms) = (median(map { $_->{ms} } @t), median(map { $_->{ms} } @s));
			my $ok = !grep { $_->{rows} != $_->{distinct} || $_->{rows} != $t[0]{rows} || $_->{increasing} !~ /^t(rue)?$/ } @t;
			my %sr = map { $_->{rep} => $_->{ms} } @s;
			my $r = median(map { ratio($sr{$_->{rep}}, $_->{ms}) } @t);
			my $what = $k eq 'insert' ? '`INSERT ... SELECT ... generate_series`' : '`COPY ... FROM` file';
			push @out, sprintf("| %s | %s | %d | %s ms | %s ms | %s | %s |", $what, num($t[0]{rows}), $n, num($ms, 1), num($mt, 1), rat($r),
			  $ok ? "yes, " . scalar(@t) . " rounds" : "**NO**");
			push @targets, ["$what of " . num($t[0]{rows}) . " rows, $n session(s): bigserial time / tso_now() time", "≥ 0.80×", rat($r) . ($ok ? '' : ', keys NOT unique/increasing'),
			  verdict(defined $r ? $r >= 0.8 && $ok : undef)];
		}
	}
	push @out, "";
	my @it = sel('ins_tps');
	push @out, "pgbench -M prepared, median TPS of the rounds, and the median over the rounds of the ratio within",
	  "each round (one statement per transaction, or the built-in",
	  "TPC-B-like script, scale " . "factor as in Commands, whose `pgbench_history` gets an `id bigint PRIMARY KEY` column with",
	  "`DEFAULT tso_now()` or `DEFAULT nextval(...)`):", "",
	  "| workload | clients | baseline TPS | tso_now() TPS | ratio |", "|---|---:|---:|---:|---:|";
	for my $w (['single-row `INSERT`', 'ins_ser', 'ins_tso', 'bigserial'], ['`SELECT tso_now()` vs `SELECT nextval()`', 'nextval', 'tso_now', 'nextval'],
	  ['TPC-B-like, history keyed', 'tpcb_ser', 'tpcb_tso', 'bigserial']) {
		my ($what, $base, $ours, $bn) = @$w;
		my %cl; $cl{$_->{clients}} = 1 for sel('ins_tps', kind => $ours);
		for my $c (sort { $a <=> $b } keys %cl) {
			my @bs = sel('ins_tps', kind => $base, clients => $c);
			my @os = sel('ins_tps', kind => $ours, clients => $c);
			my ($b, $o) = (median(map { $_->{tps} } @bs), median(map { $_->{tps} } @os));
			my %br = map { $_->{rep} => $_->{tps} } @bs;
			my $r = median(map { ratio($_->{tps}, $br{$_->{rep}}) } @os);
			push @out, sprintf("| %s (baseline: %s) | %d | %s | %s | %s |", $what, $bn, $c, num($b), num($o), rat($r));
			if ($ours eq 'ins_tso') {
				push @targets, ["single-row INSERT, $c client(s): tso_now() TPS / bigserial TPS", "≥ 0.85×", rat($r), verdict(defined $r ? $r >= 0.85 : undef)];
			} else {
				push @targets, ["$what, $c client(s): TPS ratio", "(no target)", rat($r), "informative"];
			}
		}
	}
	push @out, "";
	my @ic = sel('ins_cost');
	if (@ic) {
		push @out, "What one single-row `INSERT` transaction costs (one run of each key, " . "`ins_costs` in scripts/bench.sh):",
		  "CPU of the tsoracle worker and of the sidecar per transaction (from /proc), calls per sidecar",
		  "request, and the whole machine's context switches, wakeups, `kill()` calls and system calls per",
		  "transaction (perf stat -a: other work on this shared machine adds to them); \"waiting\" is the",
		  "share of the active pgbench backends sampled in `pg_stat_activity` that waited for a timestamp",
		  "(`Extension`), \"CPU\" the share with no wait event.", "",
		  "| key | clients | TPS | worker µs/tx | sidecar µs/tx | calls/request | context switches/tx | wakeups/tx | kill/tx | syscalls/tx | waiting | CPU |",
		  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|";
		for my $r (sort { $a->{clients} <=> $b->{clients} || $b->{key} cmp $a->{key} } @ic) {
			my $tx = $r->{tx} || 1;
			my $per = sub { my $v = $r->{$_[0]}; return defined $v && $v ne '' ? sprintf("%.2f", $v / $tx) : 'n/a'; };
			my $us = sub { return sprintf("%.1f", ($r->{$_[0]} // 0) / ($r->{hz} || 100) * 1e6 / $tx); };
			my $w = $r->{waits} || 1;
			push @out, sprintf("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %.0f%% | %.0f%% |",
			  $r->{key} eq 'tso' ? '`tso_now()`' : 'bigserial', $r->{clients}, num($r->{tps}),
			  $us->('worker_ticks'), $us->('sidecar_ticks'),
			  $r->{batches} ? sprintf("%.2f", $r->{calls} / $r->{batches}) : '—',
			  $per->('ev_context_switches'), $per->('ev_sched_wakeup'), $per->('ev_kill'), $per->('ev_syscalls'),
			  100 * ($r->{waits_ext} // 0) / $w, 100 * ($r->{waits_cpu} // 0) / $w);
		}
		push @out, "";
	}
}

# Failover.
my @fo = sel('failover');
if (@fo) {
	push @out, "### Failover: the service gap on the surviving nodes", "",
	  "Each trial: a `tsoracle-bench --gap` client on each surviving node (one request in flight,",
	  "one every 200 µs), then the signal to the leader; the gap is the longest time between two",
	  "successful responses on that client. The trial's gap is the larger of the two survivors'.",
	  "The killed node is restarted and caught up before the next trial.", "",
	  "For `tsoracle-ctl transfer-leader` (planned handover) the clients run on all three members and",
	  "watch " . "3 s" . " after the command starts; the gap is the longest on any member.", "",
	  "| timing | event | trials | median | p90 | max | min | not recovered | error statuses seen | violations |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|";
	my %lab; $lab{$_->{label}} = 1 for @fo;
	for my $l (qw(default tuned sigterm transfer transfer_tuned)) {
		next unless $lab{$l};
		my %tr;
		my ($errs, $viol, $unclosed) = (0, 0, 0);
		for my $r (sel('failover', label => $l)) {
			my $g = $r->{gap_ms} // 0;
			# Window mode (handover, SIGTERM) never "closes" a gap: only an
			# empty answer counts as not recovered there.
			if ($r->{sig} eq 'transfer' || $r->{sig} eq 'TERM') { if (!$g) { $g = 20000; $unclosed++; } }
			elsif (!($r->{closed} // 0)) { $g = 20000; $unclosed++; }
			$tr{$r->{trial}} = $g if !defined $tr{$r->{trial}} || $g > $tr{$r->{trial}};
			$errs += $r->{errors} // 0;
			$viol += $r->{violations} // 0;
		}
		my @g = sort { $a <=> $b } values %tr;
		my $sig = (sel('failover', label => $l))[0]{sig};
		my $desc = $l =~ /tuned/ ? 'tuned: `--election-timeout 150 --heartbeat 15 --lease 100`' : 'default: election 300 ms, heartbeat 30 ms, lease 200 ms';
		my $ev = $sig eq 'KILL' ? 'kill -9 of the leader' : $sig eq 'TERM' ? 'SIGTERM of the leader' : '`tsoracle-ctl transfer-leader`';
		push @out, sprintf("| %s | %s | %d | %s ms | %s ms | %s ms | %s ms | %d | %d | %d |", $desc, $ev, scalar(@g),
		  num(median(@g)), num($g[int(0.9 * (@g - 1) + 0.5)]), num($g[-1]), num($g[0]), $unclosed, $errs, $viol);
		if ($l =~ /transfer/) {
			my @cm = sort { $a <=> $b } map { $_->{ctl_ms} } grep { defined $_->{ctl_ms} } sel('failover', label => $l);
			$out[-1] =~ s/`tsoracle-ctl transfer-leader`/`tsoracle-ctl transfer-leader` (returned in $cm[0]–$cm[-1] ms)/ if @cm;
			my ($m, $x) = (median(@g), $g[-1]);
			if ($l =~ /tuned/) {
				push @targets, ["planned handover (tuned timing): service gap, median / max", "(no target)", num($m) . " / " . num($x) . " ms", "informative"];
			} else {
				push @targets, ["planned handover (default timing): max gap ≤ 300 ms", "≤ 300 ms", num($m) . " ms median, " . num($x) . " ms max (" . rat(ratio($x, 300)) . ")", verdict(defined $x ? $x <= 300 : undef)];
			}
		}
		if ($l eq 'default') {
			my ($m, $x) = (median(@g), $g[-1]);
			push @targets, ["failover after kill -9 (default timing): median ≤ 1 s", "≤ 1000 ms", num($m) . " ms (" . rat(ratio($m, 1000)) . ")", verdict(defined $m ? $m <= 1000 : undef)];
			push @targets, ["failover after kill -9 (default timing): max ≤ 2 s", "≤ 2000 ms", num($x) . " ms (" . rat(ratio($x, 2000)) . ")", verdict(defined $x ? $x <= 2000 : undef)];
		} elsif ($l eq 'tuned') {
			my ($m, $x) = (median(@g), $g[-1]);
			push @targets, ["failover after kill -9 (tuned timing): median / max", "(no target)", num($m) . " / " . num($x) . " ms", "informative"];
		}
	}
	push @out, "";
	my ($tr) = sel('transfer');
	push @out, "Planned handover (leadership transfer): not measured: this build's tsoracle-ctl has no transfer-leader.", "" unless $tr && $tr->{available};
}

# Memory.
my @mem = sel('mem');
my @sh = sel('shmem');
if (@mem || @sh) {
	push @out, "### Memory", "", "| what | VmRSS | VmHWM (peak) |", "|---|---:|---:|";
	my $peak;
	for my $r (@mem) {
		push @out, "| sidecar, $r->{label} | " . mib($r->{rss_kb}) . " | " . mib($r->{hwm_kb}) . " |";
		$peak = $r->{hwm_kb} if defined $r->{hwm_kb} && $r->{hwm_kb} ne '' && (!defined $peak || $r->{hwm_kb} > $peak);
	}
	push @targets, ["sidecar resident size ≤ 16 MiB (peak VmHWM)", "≤ 16 MiB", mib($peak) . " (" . rat(ratio($peak, 16384)) . ")", verdict(defined $peak ? $peak <= 16384 : undef)];
	push @out, "";
	if (@sh) {
		push @out, "Extension shared memory (pg_shmem_allocations, entries named tsoracle%):", "",
		  "| max_connections | size | allocated |", "|---:|---:|---:|";
		push @out, sprintf("| %d | %s bytes (%.1f KiB) | %s bytes |", $_->{max_connections}, num($_->{size}), ($_->{size} || 0) / 1024, num($_->{allocated})) for sort { $a->{max_connections} <=> $b->{max_connections} } @sh;
		push @out, "";
	}
}

print "### Targets\n\n| target | goal | achieved | verdict |\n|---|---|---|---|\n";
print "| $_->[0] | $_->[1] | $_->[2] | $_->[3] |\n" for @targets;
print "\n";
print "$_\n" for @out;
PERL
}

write_doc() {
	local gen=$W/generated.md begin='<!-- BEGIN BENCH RESULTS (generated by make bench; do not edit) -->'
	local end='<!-- END BENCH RESULTS -->'
	{
		echo "$begin"
		echo
		echo "## Results"
		echo
		echo "Generated by \`make bench\` (\`scripts/bench.sh\`, mode: $MODE) on ${RUN_DATE:-$(date -u '+%Y-%m-%d %H:%M UTC')};"
		echo "machine: $(nproc) cores ($(lscpu 2>/dev/null | awk -F': *' '/^Model name/ { print $2; exit }')), $(uname -sr),"
		echo "$(awk '/MemTotal/ { printf "%.0f GiB RAM", $2 / 1048576 }' /proc/meminfo), PostgreSQL $("$PG_BINDIR/postgres" --version | awk '{ print $3 }'),"
		echo "commit $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD -- sidecar common src 2>/dev/null || echo ' (with uncommitted changes in sidecar/, common/ or src/)')."
		echo "Load average at the start: $LOAD0 (the machine is shared; treat single numbers with care)."
		echo
		render
		echo "### Commands"
		echo
		echo '```sh'
		sed 's/^/# /' "$W/commands" | sed 's/^# \$ /$ /'
		echo '```'
		echo
		echo "$end"
	} >"$gen"
	if [ ! -f "$DOC" ] || ! grep -qF "$begin" "$DOC"; then
		{ [ -f "$DOC" ] && cat "$DOC"; echo; cat "$gen"; } >"$DOC.tmp"
	else
		awk -v b="$begin" -v e="$end" -v g="$gen" '
			$0 == b { while ((getline l < g) > 0) print l; skip = 1; next }
			$0 == e { skip = 0; next }
			!skip { print }' "$DOC" >"$DOC.tmp"
	fi
	mv "$DOC.tmp" "$DOC"
	say "wrote $DOC"
}

# The commands, as run (addresses are of this run's scratch directory).
commands() {
	cat <<CMDS
\$ make bench                # or: BENCH_QUICK=1 make bench; BENCH_ONLY=cluster make bench: the cluster's direct and failover runs alone
\$ scripts/bench.sh          # what make bench runs, after building and make install
sidecars:  tsoracled --node-id 1 --data-dir D --raft-address 127.0.0.1:P --client-socket S --log-level warn
cluster:   tsoracled --node-id I --data-dir D --raft-address 127.0.0.1:Ri --client-tcp 127.0.0.1:Ci --client-socket Si \\
             --peers 1=127.0.0.1:R1/127.0.0.1:C1,2=...,3=... --tls-ca ca.crt --tls-cert nodeI.crt --tls-key nodeI.key \\
             --tls-crl ca.crl [$TUNED_FLAGS]   (certificates from scripts/certs.sh)
direct:    tsoracle-bench --address S --connections C --depth D --count 1 --duration $DIRECT_SECS --warmup 0.2 --kv  (best of $DIRECT_REPS)
tls:       the same with --address 127.0.0.1:C_LEADER --ca ca.crt --cert client.crt --key client.key
floor:     tsoracle-bench --pingpong [--cpus A,B] --duration $PAIR_SECS --warmup 0.1 --kv, alternated $PAIRS times with
             tsoracle-bench --address S [--cpus A] --duration $PAIR_SECS --warmup 0.1 --kv; pinned rows: taskset -a -p -c LAST SIDECAR_PID
syscalls:  perf stat -e raw_syscalls:sys_enter,syscalls:sys_enter_{read,write,epoll_wait,writev},context-switches -p PID
profile:   perf record -e cpu-clock -F 2999 -p PID (64 x 16 for 1 s); strace -c -f -p PID (1 x 1 for 1 s)
pgbench:   pgbench -n -M prepared -c C -j min(C,2) -T $PG_SECS -f Q.sql --log   (Q: SELECT 1; SELECT nextval('s'); SELECT tso_now();)
pg costs:  perf stat -a -e context-switches,raw_syscalls:sys_enter,syscalls:sys_enter_{kill,epoll_wait,...} -- pgbench ... -c 16 -T $COST_SECS;
             perf record -a -e cpu-clock -F 999 -- pgbench ... (samples split by pid: our postmaster's children, worker, sidecar)
bulk:      pgbench -n -M prepared -c 1 -t 1 -f Q.sql --log, alternated $BULK_REPS times
             (Q: SELECT count(*) FROM generate_series(1, 1000000); SELECT count(*) FROM tso_range(1000000);)
inserts:   BENCH_ONLY=inserts make bench   (this section alone, a few minutes); per round, alternating the key first:
             TRUNCATE; CHECKPOINT; psql -c "INSERT INTO ins_K (s, n) SELECT S, g FROM generate_series(1, $INS_ROWS / N) g" (N sessions at once)
             TRUNCATE; CHECKPOINT; psql -c "COPY ins_K (s, n) FROM 'FILE'" (N sessions at once), N = 1 and $INS_SESSIONS, $INS_REPS rounds
             pgbench -n -M prepared -c C -j min(C,2) -T $INS_SECS -f Q.sql, C = 1 and 16, $INS_REPS alternating rounds
             (Q: INSERT INTO ins_K (s, n) VALUES (:client_id, 1); SELECT tso_now(); SELECT nextval('s');)
             pgbench -i -s $INS_SCALE; pgbench -n -M prepared -b tpcb-like -c 16 -j 2 -T $INS_SECS, history id DEFAULT tso_now() / nextval()
             every client of this section with PGOPTIONS="-c synchronous_commit=off"
ins costs: the single-row INSERT once per key at C = 1 and 16: /proc/PID/stat ticks of the worker and the sidecar around
             perf stat -a -x, -e context-switches,sched:sched_wakeup,raw_syscalls:sys_enter,syscalls:sys_enter_kill -- pgbench ...;
             tso_worker_status() requests and batches before and after; 20 samples of pg_stat_activity.wait_event_type
failover:  tsoracle-bench --gap --address SURVIVOR --interval-us $GAP_INTERVAL_US --gap-min 50 --kv  (x2), kill -USR1 them, kill -9 LEADER
handover:  tsoracle-bench --gap --address MEMBER --interval-us $GAP_INTERVAL_US --gap-window $TRANSFER_WINDOW_MS --kv  (x3), kill -USR1 them,
             tsoracle-ctl --address LEADER transfer-leader
memory:    VmRSS/VmHWM from /proc/PID/status; SELECT sum(size) FROM pg_shmem_allocations WHERE name LIKE 'tsoracle%'
postgresql.conf: shared_preload_libraries = 'tsoracle', max_connections = 1000 then 100, defaults otherwise
CMDS
}

# ---- main --------------------------------------------------------------------------

if [ -n "$RENDER_ONLY" ]; then
	# shellcheck disable=SC1091
	. "$W/meta"
	[ -f "$W/commands" ] || commands >"$W/commands"
	write_doc
	exit 0
fi

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
T0=$(now_s)
say "mode: $MODE; scratch dir $W"
say "installing the extension (make install)"
install_all || { say "make install failed"; exit 1; }
commands >"$W/commands"
printf 'MODE=%q\nLOAD0=%q\nRUN_DATE=%q\n' "$MODE" "$LOAD0" "$(date -u '+%Y-%m-%d %H:%M UTC')" >"$W/meta"

rc=0
if [ "$ONLY" = inserts ]; then
	NODE_SOCK[sn]=$W/sn.sock
	node_start sn --node-id 1 --data-dir "$W/sn" --raft-address "127.0.0.1:$(free_ports)" \
		--client-socket "$W/sn.sock"
	wait_serving_node sn 30 || exit 1
	mkdir -p "$W/pgb"
	pg_setup && pg_start 100 && psql_b -c "CREATE EXTENSION tsoracle" && section_inserts || rc=1
	pg_stop
	PGDATA=
	node_stop sn
	if [ -n "${BENCH_DOC:-}" ]; then write_doc; else render; fi
	exit $rc
fi
if [ "$ONLY" = cluster ]; then
	section_direct_cluster || rc=1
	section_failover || rc=1
	if [ -n "${BENCH_DOC:-}" ]; then write_doc; else render; fi
	grep -q 'violations=[1-9]' "$R" && rc=1
	exit $rc
fi
section_direct || rc=1
if [ $rc -eq 0 ]; then section_pg || rc=1; fi
node_stop sn
section_failover || rc=1
write_doc
say "done in $(awk -v a="$T0" -v b="$(now_s)" 'BEGIN { printf "%.0f", b - a }') s"
if grep -q 'violations=[1-9]' "$R"; then
	say "VIOLATIONS were reported: see $DOC"
	rc=1
fi
exit $rc
