#!/usr/bin/env bash
# A fault-injection run: a 3-member cluster with a PostgreSQL on each
# (under $NEMESIS_DIR, PostgreSQL on three free ports of 127.0.0.1), tsoracle-checker
# calling tso_now() and tso_range(n) on all three for SECONDS while the
# nemesis acts, then the checker's report (operations, errors, violations,
# availability, longest time without service). Run as root, after
# `make build`.
#
#   scripts/nemesis.sh NEMESIS SECONDS [CLIENTS_PER_NODE]
#
#   kill         kill -9 of the leader, then a restart, again and again
#   stop         SIGSTOP of the leader for longer than an election timeout
#   restart-all  kill -9 of every member at once, then a restart
#   clock        the leader's wall clock jumps 30 s forward, then 30 s back
#   clock-kill   the leader's wall clock jumps 4 s forward, then the
#                leader is killed (kill -9) and restarted with a true clock:
#                its successor must serve above what it handed out
#   handover     a planned handover, again and again: tsoracle-ctl
#                transfer-leader on the leader, then SIGTERM on the leader
#                (it hands over, then stops) and a restart, in turn
#   partition    the leader is cut from the other members (its PostgreSQL
#                still reaches it over the unix socket) for longer than an
#                election timeout, then the network heals
#   partition-lease
#                the partition, with the leader's election timeout 10 times
#                the others' (LEASE_LEADER_ELECTION_MS): before each cut,
#                leadership is handed to member 1 (transfer-leader), the
#                only member with that timeout, so that the cut-off leader
#                goes on believing it leads (libraft steps a leader down
#                one to two of its own election timeouts after it last
#                heard a majority) while the others elect a successor
#                within 0.3-0.6 s. The lease is then all that keeps the
#                old leader from serving beside its successor (below).
#   none         no faults (a baseline)
#
# For partition and partition-lease, each sidecar runs in a network
# namespace of its own (tsn<pid>-1..3, addresses 10.213.77.1-3 on a bridge
# in namespace tsh<pid>, <pid> this script's process id, all made here and
# removed at the end): cutting the leader's link in the hub is a real
# partition of the Raft and forwarding traffic, while PostgreSQL, in the
# root namespace, keeps talking to its sidecar through the file system. Only these
# namespaces' own addresses are used, so runs at once do not meet, and a
# run deletes no namespace but its own.
#
# Ports: each run reserves a block of free ports (PORT_BLOCK below) under a
# lock, so two runs at once (by hand and in make test) never share one.
#
# A run that tested nothing fails: every fault planned (at least
# (SECONDS - CALM_S) / (CALM_S + its nominal length) of them, below) must
# be injected, a fault the nemesis could not inject (no leader to act on)
# is a failure, every cut of the leader (kill, stop, clock-kill,
# partition, handover) must see another member lead and serve while it
# lasts, and the checker needs a floor of successful calls. Leaders are
# found by parsing `tsoracle-ctl status --json` with jq.
#
# The workers' guard (tsoracle.refuse_backward_grants, docs/sql.md) is off:
# a worker would turn a grant not above one it received into an error, and
# the checker would see errors where the sidecars broke the order. Whatever
# the guard, the run fails if any PostgreSQL log reports a backward grant
# (the worker's WARNING, or the refusal) or the checker saw a call refused.
#
# Environment: SIDECAR_BIN, the daemon to run (a planted-bug build for a
# positive control); NEMESIS_GUARD=on keeps the workers' guard on (then a
# refusal is still a failure); NEMESIS_PG_CONF, more lines for each
# PostgreSQL's postgresql.conf; NEMESIS_MIN_OK, the fewest successful calls
# a run must have (default: MIN_OK_PER_SESSION_S per session and second);
# NEMESIS_SEED, the checker's --seed (default 1, printed in its report);
# NEMESIS_CHECKER_ARGS, more options for the checker (e.g. "--rows-max 40
# --rows-percent 60": multi-row statements, each one operation);
# NEMESIS_DIR, where the run's files go (default: a new directory
# /tmp/tsoracle-nemesis.XXXXXX); NEMESIS_LEASE_1, member 1's lease in ms
# (partition-lease only, below its 3 s election timeout: members with
# different leases, docs/reliability.md); NEMESIS_RAISE=1 raises the cluster
# version (tsoracle-ctl cluster-version raise, as an admin) before the
# checker starts, and fails the run (exit 2) if it is not then this build's
# command set.
#
# Why the real daemon passes partition-lease: every member's lease (200 ms)
# is shorter than every member's election timeout (tsoracled refuses
# otherwise, sidecar/config.c). The cut-off leader serves only until its
# last committed proposal's time + lease (alloc.c, I4); at least one voter
# of its successor acknowledged that proposal, and libraft's voters refuse
# their vote for an election timeout after they last heard a leader, so no
# successor wins before that lease has ended; the successor then waits
# lease * (1 + drift) more before it serves (I4). The positive control
# (scripts/test.sh, nemesis_lease_control) needs a lease longer than the
# followers' election timeout, which the configuration refuses:
# build/control/tsoracled-broken-lease (test/broken/long_lease.c, a 2.5 s lease
# on every member, and broken_lease.c, a new leader that skips the wait)
# must show violations here: the old leader serves its PostgreSQL's clients
# from its window, below the fence its successor already serves above. The
# same lease with the wait (build/control/tsoracled-long-lease) must not:
# there the wait alone keeps the order. (The clock check stops a cut-off
# leader too, about 3 s after the cut, when the others' clock readings it
# holds have aged out, include/tsoracle.h "clock sanity": the test lease
# ends before that.)
#
# Members with different leases (NEMESIS_LEASE_1=2900: member 1's lease
# just below its own 3 s election timeout, the others at 200 ms, every
# member's configuration valid): the cut-off member 1 serves up to 2.9 s
# after its last renewal while a successor is elected within 0.3-0.6 s. At
# cluster version 3 (NEMESIS_RAISE=1) member 1's fence left its wait
# (3.19 s) in the log and the successor waits it out (include/tsoracle.h,
# I4): no violation. Below 3 the successor waits only its own 220 ms, and
# the checker must find violations (scripts/test.sh,
# nemesis_mixed_lease_control).
#
# Exit status: 0 no violation; 1 violations (the checker's, or a backward
# grant in a PostgreSQL log); 2 setup error; 3 the run tested too little
# (fewer successful calls than the floor, fewer faults than planned, a
# fault skipped, a cut of the leader without a new leader). Every process
# it started is stopped at the end; the data stays in $NEMESIS_DIR for
# inspection.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh

nemesis=${1:?usage: $0 kill|stop|restart-all|clock|clock-kill|handover|partition|partition-lease|none SECONDS [CLIENTS]}
seconds=${2:?usage: $0 NEMESIS SECONDS [CLIENTS]}
clients=${3:-4}
NEMESIS_DIR=${NEMESIS_DIR:-$(mktemp -d /tmp/tsoracle-nemesis.XXXXXX)}
STOP_HOLD_S=3        # > the 0.3-0.6 s election timeout and the lease: the others elect
CLOCK_JUMP_MS=30000  # "tens of seconds"
# Under max-ahead (5 s by default, sidecar/config.c): no grant reaches more
# than that past its leader's clock (sidecar/alloc.h, I6), so a true-clock
# successor serves within a second or two, yet below what was handed out.
CLOCK_KILL_JUMP_MS=4000
CLOCK_HOLD_S=5
CALM_S=2             # normal operation between two faults
PARTITION_HOLD_S=5   # > election timeout + lease wait: the majority serves
# partition-lease: member 1's election timeout, ms: 10 x the default 300, so
# the cut-off leader (member 1) steps down 3-6 s after the cut, while the
# others elect within 0.3-0.6 s; above any lease a test build gives
# (test/broken/long_lease.c, 2.5 s), so the lease, not the step-down, ends
# the old leader's service
LEASE_LEADER_ELECTION_MS=3000
# partition-lease's cut, s: > the election, plus the 2.75 s wait of a
# successor with the test builds' 2.5 s lease, with room for a slow election
PARTITION_LEASE_HOLD_S=7
# partition-lease: how long to keep asking for member 1 to lead, s. After a
# heal the leader refuses it as a target until it has measured member 1's
# clock again (max-clock-offset; up to 4 s seen), so it is asked again
# every TRANSFER_RETRY_S.
TRANSFER_LIMIT_S=20
TRANSFER_RETRY_S=0.2
NEW_LEADER_LIMIT_S=10 # a cut leader's successor serves within this (it takes about 1 s)
RAISE_TO=3            # NEMESIS_RAISE: this build's command set (FSM_COMMAND_SET, include/tsoracle.h)
# Nominal length of one fault, s (its holds, plus about 2 s of elections,
# restarts and waits): the plan is the number of faults that fit the run.
declare -A FAULT_S=([kill]=3 [stop]=$((STOP_HOLD_S + 1)) [restart-all]=4
	[clock]=$((2 * CLOCK_HOLD_S + 1)) [clock-kill]=$((CALM_S + 3)) [handover]=3
	[partition]=$((PARTITION_HOLD_S + 2)) [partition-lease]=$((PARTITION_LEASE_HOLD_S + 3)) [none]=0)
NETNS=tsn$$-  # member i runs in namespace ${NETNS}i
HUB=tsh$$
VETH=tsv$$-   # member i's link in the hub (<= 15 characters)
NET_PREFIX=10.213.77.
# Ports: a block of PORT_BLOCK consecutive ports, PostgreSQL on its first
# three (+1..+3), Raft on +4..+6, client TCP on +7..+9. Below the
# kernel's ephemeral range (ip_local_port_range, 32768-60999 on Debian),
# as PostgreSQL's own tests choose theirs: a member killed and restarted on
# its port must find it free, and any outgoing connection of the machine
# may take an ephemeral port the moment it is released.
PORT_BLOCK=10
PORT_MIN=10000
PORT_MAX=32760
PORT_LOCKS=/tmp/tsoracle-nemesis-ports  # a file per reserved block, named by its first port: the run's pid
MIN_OK_PER_SESSION_S=10 # successful calls per session and second, at least (runs see hundreds)
# The worker's WARNING for a backward grant (src/worker.c) and its callers'
# error (src/funcs.c): either in a log means the sidecars broke the order.
BACKWARD_RE='granted timestamps starting at [0-9]+, not above|tsoracle refused a timestamp that was not above'
pg_conf=${NEMESIS_PG_CONF:-}
if [ "${NEMESIS_GUARD:-off}" != on ]; then
	pg_conf="tsoracle.refuse_backward_grants = off${pg_conf:+
$pg_conf}"
fi

partitioned() { [ "$nemesis" = partition ] || [ "$nemesis" = partition-lease ]; }

log() { printf '%s nemesis: %s\n' "$(date +%T.%3N)" "$*" | tee -a "$NEMESIS_DIR/nemesis.log"; }
node_dir() { echo "$NEMESIS_DIR/node$1"; }
node_pid() { head -n1 "$(node_dir "$1")/data/tsoracled.pid" 2>/dev/null; }

# Reserves a block of free ports for this run (free: no socket of this
# machine's root namespace uses one, and no live run reserved it); sets
# PG_BASE, RAFT_BASE, CLIENT_BASE.
reserve_ports() {
	local base p i busy
	mkdir -p "$PORT_LOCKS"
	exec {port_lock}>"$PORT_LOCKS/lock"
	flock "$port_lock"
	for ((i = 0; i < 100; i++)); do
		base=$((PORT_MIN + PORT_BLOCK * (RANDOM % ((PORT_MAX - PORT_MIN) / PORT_BLOCK))))
		if [ -f "$PORT_LOCKS/$base" ] && running "$(cat "$PORT_LOCKS/$base")"; then continue; fi
		busy=0
		for ((p = base; p < base + PORT_BLOCK; p++)); do
			if [ -n "$(ss -Hatun "( sport = :$p )")" ]; then busy=1 && break; fi
		done
		[ $busy -eq 0 ] || continue
		echo $$ >"$PORT_LOCKS/$base"
		port_reserved=$PORT_LOCKS/$base
		flock -u "$port_lock"
		exec {port_lock}>&- # the daemons started later must not hold it
		PG_BASE=$base RAFT_BASE=$((base + 3)) CLIENT_BASE=$((base + 6))
		return 0
	done
	flock -u "$port_lock"
	exec {port_lock}>&-
	echo "nemesis: no block of $PORT_BLOCK free ports in $PORT_MIN-$PORT_MAX" >&2
	exit 2
}

# Prints the ids of members 1..3 but $1.
others() {
	local i
	for i in 1 2 3; do [ "$i" = "$1" ] || echo "$i"; done
}

# True if member $1 answers that it leads and serves (its status as JSON).
serving_leader() {
	"$SIDECAR_BINDIR/tsoracle-ctl" --address "$(node_dir "$1")/tsoracled.sock" --timeout 500 \
		status --json 2>/dev/null | jq -e '.role == "leader" and .serving == true' >/dev/null 2>&1
}

leader() { # prints the id of the serving leader among members $@ (default all), if any
	local i ids=("$@")
	[ $# -gt 0 ] || ids=(1 2 3)
	for i in "${ids[@]}"; do
		if serving_leader "$i"; then
			echo "$i"
			return 0
		fi
	done
	return 1
}

# wait_leader [LIMIT_S [MEMBER...]]: waits (at most LIMIT_S, default 30 s)
# for a serving leader among the members given (default all); prints it.
wait_leader() {
	local limit=${1:-30} i l
	shift || true
	for ((i = 0; i < limit * 10; i++)); do
		if l=$(leader "$@"); then
			echo "$l"
			return 0
		fi
		sleep 0.1
	done
	return 1
}

# The fault could not be injected (no leader to act on): a failure.
skip_fault() {
	skipped=$((skipped + 1))
	log "FAULT SKIPPED: $*"
}

# The leader $1 is cut off (killed, stopped, partitioned, handing over):
# another member must lead and serve within $2 s.
expect_new_leader() {
	local old=$1 limit=$2 l2
	cuts=$((cuts + 1))
	# shellcheck disable=SC2046 # others prints one id per line
	if l2=$(wait_leader "$limit" $(others "$old")); then
		new_leaders=$((new_leaders + 1))
		log "node $l2 leads and serves"
	else
		log "NO NEW LEADER within ${limit}s of cutting node $old"
	fi
}

# Sleeps until $1 (an $EPOCHREALTIME reading) plus $2 seconds: the rest of
# a fault's hold, after waiting for what happens during it.
sleep_rest() {
	local until_us=$((${1/./} + $2 * 1000000)) now_us=${EPOCHREALTIME/./}
	if [ "$now_us" -lt "$until_us" ]; then
		sleep "$(printf '%d.%06d' $(((until_us - now_us) / 1000000)) $(((until_us - now_us) % 1000000)))"
	fi
}

kill9() { # kill -9 of member $1, and wait until it is gone
	local pid i
	pid=$(node_pid "$1") || return 0
	kill -KILL "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 100; i++)); do
		running "$pid" || return 0
		sleep 0.05
	done
}

stop_node() { # SIGTERM to member $1 (a leader hands over first), and wait until it is gone
	local pid i
	pid=$(node_pid "$1") || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 200; i++)); do
		running "$pid" || return 0
		sleep 0.05
	done
	log "node $1 did not stop in 10 s after SIGTERM"
}

restart_node() {
	start_sidecar "$(node_dir "$1")" "$(node_dir "$1")/tsoracled.conf" "${CLUSTER_NETNS:+$CLUSTER_NETNS$1}"
}

# A bridge in its own namespace and one namespace per member, linked by
# veth pairs: member i is $NET_PREFIX$i, its link in the hub is $VETH$i.
net_up() {
	local i
	net_down
	ip netns add "$HUB"
	ip -n "$HUB" link add br0 type bridge
	ip -n "$HUB" link set br0 up
	for i in 1 2 3; do
		ip netns add "$NETNS$i"
		ip -n "$NETNS$i" link set lo up
		ip link add "$VETH$i" netns "$HUB" type veth peer name eth0 netns "$NETNS$i"
		ip -n "$HUB" link set "$VETH$i" master br0 up
		ip -n "$NETNS$i" addr add "$NET_PREFIX$i/24" dev eth0
		ip -n "$NETNS$i" link set eth0 up
	done
}

net_down() { # this run's namespaces only (their names hold its pid)
	local i
	for i in 1 2 3; do ip netns del "$NETNS$i" 2>/dev/null || true; done
	ip netns del "$HUB" 2>/dev/null || true
}

# partition-lease: makes member 1 (the one with the long election timeout)
# the serving leader, by transfer-leader on the leader when another leads.
lead_member1() {
	local l out refused=0 until=$((SECONDS + TRANSFER_LIMIT_S))
	while [ $SECONDS -lt $until ]; do
		l=$(wait_leader) || return 1
		[ "$l" != 1 ] || return 0
		if out=$("$SIDECAR_BINDIR/tsoracle-ctl" --address "$(node_dir "$l")/tsoracled.sock" --timeout 5000 \
			transfer-leader 1 2>&1); then
			log "transfer-leader from node $l to node 1: $out"
			wait_leader "$NEW_LEADER_LIMIT_S" 1 >/dev/null && return 0
		else
			# logged once: it is refused until member 1's clock is measured again
			[ $((refused++)) -gt 0 ] || log "transfer-leader from node $l to node 1 refused, asking again: $out"
			sleep "$TRANSFER_RETRY_S"
		fi
	done
	log "node 1 did not come to lead within ${TRANSFER_LIMIT_S}s"
	return 1
}

# One fault; returns when it is undone. Counts it in faults (injected),
# cuts and new_leaders (a cut of the leader, and whether another member led
# and served during it), skipped (no leader to act on).
act() {
	local l l2 i t0
	case "$nemesis" in
	kill)
		l=$(wait_leader) || { skip_fault "no serving leader to kill"; return 0; }
		log "kill -9 of the leader, node $l"
		kill9 "$l"
		faults=$((faults + 1))
		expect_new_leader "$l" "$NEW_LEADER_LIMIT_S"
		restart_node "$l"
		wait_ready "$(node_dir "$l")/tsoracled.sock" 30 && log "node $l back"
		;;
	stop)
		l=$(wait_leader) || { skip_fault "no serving leader to stop"; return 0; }
		log "SIGSTOP of the leader, node $l, for ${STOP_HOLD_S}s"
		t0=$EPOCHREALTIME
		kill -STOP "$(node_pid "$l")"
		faults=$((faults + 1))
		expect_new_leader "$l" "$STOP_HOLD_S"
		sleep_rest "$t0" "$STOP_HOLD_S"
		kill -CONT "$(node_pid "$l")"
		log "SIGCONT of node $l"
		;;
	restart-all)
		log "kill -9 of every member"
		for i in 1 2 3; do kill9 "$i"; done
		faults=$((faults + 1))
		for i in 1 2 3; do restart_node "$i"; done
		for i in 1 2 3; do wait_ready "$(node_dir "$i")/tsoracled.sock" 30; done
		log "all members back"
		;;
	clock)
		l=$(wait_leader) || { skip_fault "no serving leader to skew"; return 0; }
		log "node $l's wall clock jumps +${CLOCK_JUMP_MS} ms"
		echo "$CLOCK_JUMP_MS" | as_pg tee "$(node_dir "$l")/clock-offset" >/dev/null
		faults=$((faults + 1))
		sleep "$CLOCK_HOLD_S"
		if l=$(wait_leader); then
			log "node $l's wall clock jumps -${CLOCK_JUMP_MS} ms"
			echo "-$CLOCK_JUMP_MS" | as_pg tee "$(node_dir "$l")/clock-offset" >/dev/null
			faults=$((faults + 1))
			sleep "$CLOCK_HOLD_S"
		else
			skip_fault "no serving leader to skew back"
		fi
		rm -f "$NEMESIS_DIR"/node?/clock-offset
		log "clocks back to normal"
		;;
	clock-kill)
		l=$(wait_leader) || { skip_fault "no serving leader to skew"; return 0; }
		log "node $l's wall clock jumps +${CLOCK_KILL_JUMP_MS} ms"
		echo "$CLOCK_KILL_JUMP_MS" | as_pg tee "$(node_dir "$l")/clock-offset" >/dev/null
		sleep "$CALM_S"
		log "kill -9 of node $l"
		kill9 "$l"
		faults=$((faults + 1))
		rm -f "$(node_dir "$l")/clock-offset"
		expect_new_leader "$l" "$NEW_LEADER_LIMIT_S"
		restart_node "$l"
		wait_ready "$(node_dir "$l")/tsoracled.sock" 30 && log "node $l back, its clock true"
		;;
	partition)
		l=$(wait_leader) || { skip_fault "no serving leader to cut off"; return 0; }
		log "partition: the leader, node $l, is cut from the others for ${PARTITION_HOLD_S}s"
		t0=$EPOCHREALTIME
		ip -n "$HUB" link set "$VETH$l" down
		faults=$((faults + 1))
		expect_new_leader "$l" "$PARTITION_HOLD_S"
		sleep_rest "$t0" "$PARTITION_HOLD_S"
		ip -n "$HUB" link set "$VETH$l" up
		log "partition healed"
		wait_ready "$(node_dir "$l")/tsoracled.sock" 30 && log "node $l serves again"
		;;
	partition-lease)
		lead_member1 || { skip_fault "member 1 could not be made leader"; return 0; }
		log "partition: the leader, node 1, is cut from the others for ${PARTITION_LEASE_HOLD_S}s"
		t0=$EPOCHREALTIME
		ip -n "$HUB" link set "${VETH}1" down
		faults=$((faults + 1))
		expect_new_leader 1 "$PARTITION_LEASE_HOLD_S"
		sleep_rest "$t0" "$PARTITION_LEASE_HOLD_S"
		ip -n "$HUB" link set "${VETH}1" up
		log "partition healed"
		wait_ready "$(node_dir 1)/tsoracled.sock" 30 && log "node 1 serves again"
		;;
	handover)
		l=$(wait_leader) || { skip_fault "no serving leader to hand over"; return 0; }
		handovers=$((${handovers:-0} + 1))
		faults=$((faults + 1))
		if ((handovers % 2)); then
			log "transfer-leader on the leader, node $l"
			"$SIDECAR_BINDIR/tsoracle-ctl" --address "$(node_dir "$l")/tsoracled.sock" --timeout 5000 \
				transfer-leader 2>&1 | sed 's/^/    /' | tee -a "$NEMESIS_DIR/nemesis.log" || true
			expect_new_leader "$l" "$NEW_LEADER_LIMIT_S"
		else
			log "SIGTERM on the leader, node $l, then a restart"
			stop_node "$l"
			expect_new_leader "$l" "$NEW_LEADER_LIMIT_S"
			restart_node "$l"
			wait_ready "$(node_dir "$l")/tsoracled.sock" 30 && log "node $l back"
		fi
		;;
	none) ;;
	*)
		echo "unknown nemesis: $nemesis" >&2
		exit 2
		;;
	esac
}

# Each setting of $pg_conf must be in effect on every server: one
# that PostgreSQL does not know (say, a tsoracle.so without it, installed
# meanwhile from another checkout) is dropped with a mere WARNING in its
# log, and the run would test something other than intended.
check_pg_conf() {
	local line name i
	while IFS= read -r line; do
		name=$(sed -E 's/^[[:space:]]*([A-Za-z0-9_.]*).*/\1/' <<<"$line")
		[ -n "$name" ] || continue
		for i in 1 2 3; do
			if ! psql_port $((PG_BASE + i)) -Atqc "SHOW $name" >/dev/null 2>&1; then
				echo "nemesis: PostgreSQL on port $((PG_BASE + i)) does not know $name" \
					"(is the installed tsoracle.so this checkout's?)" >&2
				exit 2
			fi
		done
	done <<<"$pg_conf"
}

stop_everything() {
	local i
	for i in 1 2 3; do
		[ -n "$(node_pid "$i")" ] && kill -CONT "$(node_pid "$i")" 2>/dev/null || true
		stop_dir "$(node_dir "$i")" >/dev/null 2>&1 || true
	done
	! partitioned || net_down
	[ -z "${port_reserved:-}" ] || rm -f "$port_reserved"
}

[ -n "${FAULT_S[$nemesis]+set}" ] || {
	echo "unknown nemesis: $nemesis" >&2
	exit 2
}
command -v jq >/dev/null || {
	echo "nemesis: jq is missing (scripts/deps.sh installs it)" >&2
	exit 2
}
install_all
rm -rf "$NEMESIS_DIR"
prepare_dir "$NEMESIS_DIR"
trap stop_everything EXIT
reserve_ports
as_pg touch "$NEMESIS_DIR/nemesis.log"
if partitioned; then
	net_up
	export CLUSTER_NETNS=$NETNS CLUSTER_IP_PREFIX=$NET_PREFIX
fi
# clock-kill tests the fence: the leader must follow its jump (and hand
# out values from that future) for the fence to have anything to do, so
# the clock check (max-clock-offset, include/tsoracle.h "clock sanity"),
# which would refuse to follow it, is set wider than the jump there. The
# clock nemesis keeps the default: the check is what it meets.
extra_conf=("clock-offset-file = NODE/clock-offset")
[ "$nemesis" = clock-kill ] && extra_conf+=("max-clock-offset = $((CLOCK_KILL_JUMP_MS * 2))")
[ "$nemesis" != partition-lease ] || export CLUSTER_CONF_1="election-timeout = $LEASE_LEADER_ELECTION_MS"
if [ -n "${NEMESIS_LEASE_1:-}" ]; then
	[ "$nemesis" = partition-lease ] || { echo "nemesis: NEMESIS_LEASE_1 is for partition-lease only" >&2; exit 2; }
	CLUSTER_CONF_1="$CLUSTER_CONF_1
lease = $NEMESIS_LEASE_1"
fi
PG_EXTRA_CONF=$pg_conf cluster_up "$NEMESIS_DIR" "$PG_BASE" "$RAFT_BASE" "$CLIENT_BASE" "${extra_conf[@]}"
check_pg_conf
if [ "${NEMESIS_RAISE:-0}" = 1 ]; then
	# As an operator would (docs/cluster.md, "Upgrades"): every member is
	# asked over TCP, from member 1's namespace when there are namespaces.
	raise=("$SIDECAR_BINDIR/tsoracle-ctl" --config "$(node_dir 1)/tsoracled.conf" --timeout 5000
		--cert "$NEMESIS_DIR/tls/admin.crt" --key "$NEMESIS_DIR/tls/admin.key" cluster-version raise)
	if partitioned; then raise=(ip netns exec "${NETNS}1" "${raise[@]}"); fi
	if ! out=$("${raise[@]}" 2>&1) || ! grep -q "^cluster version raised to $RAISE_TO$" <<<"$out"; then
		echo "nemesis: cluster-version raise to $RAISE_TO failed: $out" >&2
		exit 2
	fi
	log "cluster-version raise: $out"
fi
min_ok=${NEMESIS_MIN_OK:-$((MIN_OK_PER_SESSION_S * 3 * clients * seconds))}
log "cluster up; checker: 3 nodes x $clients clients for ${seconds}s, at least $min_ok calls ok;" \
	"nemesis: $nemesis; guard ${NEMESIS_GUARD:-off}"

conns=()
for i in 1 2 3; do conns+=(--conn "host=127.0.0.1 port=$((PG_BASE + i)) user=postgres dbname=postgres"); done
# shellcheck disable=SC2086 # NEMESIS_CHECKER_ARGS: options, split on purpose
"${BUILD_DIR:-build}"/tsoracle-checker "${conns[@]}" --clients "$clients" --duration "$seconds" --min-ok "$min_ok" \
	--seed "${NEMESIS_SEED:-1}" --history "$NEMESIS_DIR/history.tsv" ${NEMESIS_CHECKER_ARGS:-} \
	>"$NEMESIS_DIR/checker.out" 2>&1 &
checker=$!

# The plan: as many faults as fit the run at their nominal length.
planned=0
if [ "${FAULT_S[$nemesis]}" -gt 0 ]; then
	planned=$(((seconds - CALM_S) / (CALM_S + FAULT_S[$nemesis])))
	[ "$planned" -ge 1 ] || planned=1
fi
end=$((SECONDS + seconds - CALM_S))
faults=0 cuts=0 new_leaders=0 skipped=0
while [ $SECONDS -lt $end ] && kill -0 $checker 2>/dev/null; do
	sleep "$CALM_S"
	[ $SECONDS -lt $end ] || break
	act
done
rc=0
wait $checker || rc=$?
log "done: $faults fault(s) injected"
cat "$NEMESIS_DIR/checker.out"
echo "faults injected: $faults (planned at least $planned), skipped $skipped;" \
	"cuts of the leader: $cuts, with a new leader during $new_leaders"
if [ "$faults" -lt "$planned" ] || [ "$skipped" -gt 0 ] || [ "$new_leaders" -lt "$cuts" ]; then
	echo "nemesis: the run did not inject what it planned: it tested too little"
	[ $rc -ne 0 ] || rc=3
fi
backward=$(cat "$NEMESIS_DIR"/node?/postgresql.log | grep -cE "$BACKWARD_RE" || true)
echo "backward grants in the PostgreSQL logs: $backward"
if [ "$backward" -gt 0 ]; then
	# awk reads to the end: head would leave grep a broken pipe (pipefail)
	grep -hE "$BACKWARD_RE" "$NEMESIS_DIR"/node?/postgresql.log | awk 'NR <= 3 { print "    " $0 }'
	[ $rc -eq 1 ] || [ $rc -eq 2 ] || rc=1
fi
exit $rc
