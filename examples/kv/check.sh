#!/usr/bin/env bash
# make check-examples: three replicas of the kvd example as real processes,
# under kvload's writes and timestamps; kill -9 of the leader, a new leader,
# the old one restarted after the log moved past it (so it installs a
# snapshot holding both the key-value table and the TSO's state); then
# kvload's checks (0 timestamp violations, every acknowledged write on
# every member, the same state everywhere) and a clean stop of every member.
#
# Usage: examples/kv/check.sh [BUILD_DIR]   (default build)
# KV_SEED=n picks kvload's seed (printed); KEEP=1 keeps the directory.
# CONTROL=monotonic|write: a positive control instead: the members run
# build/examples/kvd-broken-CONTROL (a planted bug, examples/examples.mk),
# under load without faults, and kvload must FAIL (exit 1): the check
# passes only if kvload's checks catch the bug.
set -uo pipefail
build=${1:-build}
kvd=$build/examples/kvd
control=${CONTROL:-}
if [ -n "$control" ]; then
	kvd=$build/examples/kvd-broken-$control
	[ -x "$kvd" ] || { echo "check-examples: no control $kvd" >&2; exit 2; }
fi
kvload=$build/examples/kvload
seed=${KV_SEED:-1}
members=3
duration=16       # s of load
snapshot_every=64 # entries between snapshots: the restarted member is far behind
progress_keys=300 # writes the load must have made between the faults
limit_s=20        # the longest any awaited condition may take

dir=$(mktemp -d /tmp/tsoracle-kv.XXXXXX)
declare -a pid raft_port client_port
load_pid=

fail() {
	echo "check-examples: FAILED: $*" >&2
	for i in $(seq 1 $members); do
		[ -f "$dir/m$i.log" ] && { echo "--- member $i log (tail)"; tail -n 20 "$dir/m$i.log"; }
	done
	exit 1
}

cleanup() {
	[ -n "$load_pid" ] && kill "$load_pid" 2>/dev/null
	for i in "${!pid[@]}"; do kill -KILL "${pid[$i]}" 2>/dev/null; done
	wait 2>/dev/null
	if [ -z "${KEEP:-}" ]; then rm -rf "$dir"; else echo "kept $dir"; fi
}
trap cleanup EXIT

# A free TCP port on 127.0.0.1 (not listening now, not handed out before),
# below the kernel's ephemeral range (ip_local_port_range, 32768-60999 on
# Debian): a member killed and restarted on its Raft port must find it
# free, and an outgoing connection (kvload's, the members' own) may take an
# ephemeral port the moment it is released (a restart failed so in CI).
used_ports=" "
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 12000))
		[[ $used_ports == *" $p "* ]] && continue
		ss -Htln "sport = :$p" | grep -q . && continue
		used_ports+="$p "
		echo "$p"
		return
	done
}

for i in $(seq 1 $members); do
	raft_port[$i]=$(free_port)
	client_port[$i]=$(free_port)
done
peers=()
member_args=()
for i in $(seq 1 $members); do
	peers+=(--peer "$i=127.0.0.1:${raft_port[$i]}")
	member_args+=(--member "$i=127.0.0.1:${client_port[$i]}")
done

start_member() { # ID
	local i=$1
	"$kvd" --id "$i" --data-dir "$dir/m$i" --raft "127.0.0.1:${raft_port[$i]}" \
		--client "127.0.0.1:${client_port[$i]}" "${peers[@]}" \
		--snapshot-threshold $snapshot_every --snapshot-trailing 16 >>"$dir/m$i.log" 2>&1 &
	pid[$i]=$!
}

# One request to member ID over bash's /dev/tcp; prints the answer line.
ask() { # ID REQUEST
	local fd line
	exec {fd}<>"/dev/tcp/127.0.0.1/${client_port[$1]}" 2>/dev/null || return 1
	printf '%s\n' "$2" >&"$fd"
	IFS= read -r -t 2 line <&"$fd" || { exec {fd}>&-; return 1; }
	exec {fd}>&-
	printf '%s\n' "$line"
}

field() { # STATUS-LINE NAME
	sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"
}

# The member that leads and serves timestamps, among the running ones.
serving_leader() {
	local i st
	for i in "${!pid[@]}"; do
		st=$(ask "$i" STATUS) || continue
		if [ "$(field "$st" role)" = leader ] && [ "$(field "$st" serving)" = 1 ]; then
			echo "$i"
			return 0
		fi
	done
	return 1
}

keys_on() { field "$(ask "$1" STATUS)" keys; }

# Polls COMMAND every 0.1 s until it succeeds, at most $limit_s.
await() { # WHAT COMMAND...
	local what=$1 i
	shift
	for ((i = 0; i < limit_s * 10; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	fail "$what: not within ${limit_s}s"
}

keys_at_least() { # ID N
	local k
	k=$(keys_on "$1") && [ -n "$k" ] && [ "$k" -ge "$2" ]
}

installed_snapshot() { # ID
	local n
	n=$(field "$(ask "$1" STATUS)" installed) && [ -n "$n" ] && [ "$n" -ge 1 ]
}

# The serving leader, asked again until one answers: under load one status
# request may time out even while a leader serves.
leader_now() {
	local i l
	for ((i = 0; i < limit_s * 10; i++)); do
		l=$(serving_leader) && { echo "$l"; return 0; }
		sleep 0.1
	done
	return 1
}

new_leader_other_than() { # ID
	local l
	l=$(serving_leader) && [ "$l" != "$1" ]
}

for i in $(seq 1 $members); do start_member "$i"; done
leader=$(leader_now) || fail "a leader serving timestamps: not within ${limit_s}s"
echo "members up: leader $leader"

if [ -n "$control" ]; then
	"$kvload" "${member_args[@]}" --clients 4 --duration 5 --seed "$seed" --min-ok 200 \
		>"$dir/kvload.out" 2>&1
	rc=$?
	cat "$dir/kvload.out"
	[ $rc -eq 1 ] || fail "control $control: kvload exited $rc, expected 1 (the planted bug caught)"
	echo "check-examples: control $control caught, as it must be"
	exit 0
fi

"$kvload" "${member_args[@]}" --clients 4 --duration $duration --seed "$seed" --min-ok 200 \
	>"$dir/kvload.out" 2>&1 &
load_pid=$!

leader=$(leader_now) || fail "no leader serving timestamps within ${limit_s}s"
await "$progress_keys writes through leader $leader" keys_at_least "$leader" $progress_keys
before=$(keys_on "$leader")
echo "kill -9 of leader $leader at $before keys"
kill -KILL "${pid[$leader]}"
wait "${pid[$leader]}" 2>/dev/null
unset "pid[$leader]"
killed=$leader

await "a new leader after the kill" new_leader_other_than "$killed"
leader=$(leader_now) || fail "no leader serving timestamps within ${limit_s}s"
echo "new leader $leader"
await "$progress_keys more writes through leader $leader" keys_at_least "$leader" $((before + progress_keys))
echo "restart of member $killed at $(keys_on "$leader") keys"
start_member "$killed"
await "member $killed installing a snapshot from the leader" installed_snapshot "$killed"
echo "member $killed installed a snapshot"

wait "$load_pid"
rc=$?
load_pid=
cat "$dir/kvload.out"
[ $rc -eq 0 ] || fail "kvload exited with status $rc"

# Every member stops cleanly on SIGTERM.
for i in "${!pid[@]}"; do kill -TERM "${pid[$i]}"; done
for i in "${!pid[@]}"; do
	wait "${pid[$i]}"
	rc=$?
	[ $rc -eq 0 ] || fail "member $i exited with status $rc on SIGTERM"
	unset "pid[$i]"
done
echo "check-examples: ok"
