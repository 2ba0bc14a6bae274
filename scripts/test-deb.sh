#!/usr/bin/env bash
# The Debian packages on this machine (make test, as root; docs/building.md,
# "Packages"): builds them (make deb), installs them with dpkg, checks the
# unit with systemd-analyze, starts tsoracled the way tsoracled.service
# would (systemd need not be PID 1: the unit's ExecStart, as its User, with
# its RuntimeDirectory, StateDirectory and LimitNOFILE), takes timestamps
# through a scratch PostgreSQL 15 cluster that loads the packaged extension
# (CREATE EXTENSION 1.0, ALTER EXTENSION UPDATE to 1.1), reloads with the
# unit's ExecReload, stops, removes the packages and checks that the data
# and the configuration are left. Purges them at the end.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh

unit=/lib/systemd/system/tsoracled.service
conf=/etc/tsoracle/tsoracled.conf
pkgs=(tsoracled postgresql-15-tsoracle)
fail() {
	echo "deb test: $*" >&2
	exit 1
}

[ "$(id -u)" -eq 0 ] || {
	echo "deb test: not root: skipped"
	exit 0
}
for p in "${pkgs[@]}"; do
	if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q installed; then
		fail "$p is installed on this machine already: this test would replace it (dpkg --purge $p first)"
	fi
done
[ ! -e /etc/tsoracle ] && [ ! -e /var/lib/tsoracle ] ||
	fail "/etc/tsoracle or /var/lib/tsoracle exists: this test would use it (move it away first)"

work=$(mktemp -d /tmp/tsoracle-deb.XXXXXX)
chmod 0755 "$work"
daemon_pid=
pgdata=$work/pg/pgdata
cleanup() {
	[ -f "$pgdata/postmaster.pid" ] && as_pg /usr/lib/postgresql/15/bin/pg_ctl -D "$pgdata" -m immediate -w stop >/dev/null 2>&1
	if [ -n "$daemon_pid" ]; then # the daemon (runuser's child), then runuser
		[ -f /var/lib/tsoracle/tsoracled.pid ] && kill -KILL "$(head -n1 /var/lib/tsoracle/tsoracled.pid)" 2>/dev/null
		kill -KILL "$daemon_pid" 2>/dev/null
	fi
	dpkg --purge "${pkgs[@]}" >/dev/null 2>&1
	rm -rf /var/lib/tsoracle /run/tsoracle /etc/tsoracle "$work"
}
trap cleanup EXIT

free_port() {
	local p i
	for ((i = 0; i < 100; i++)); do
		p=$((20000 + RANDOM % 20000))
		ss -Htln "sport = :$p" 2>/dev/null | grep -q . || {
			echo "$p"
			return 0
		}
	done
	return 1
}

echo "--- make deb"
scripts/deb.sh || fail "make deb failed"
echo "--- dpkg -i"
dpkg -i build/deb/tsoracled_*_amd64.deb build/deb/postgresql-15-tsoracle_*_amd64.deb >"$work/dpkg.log" 2>&1 ||
	{ cat "$work/dpkg.log"; fail "dpkg -i failed"; }
[ -x /usr/bin/tsoracled ] && [ -x /usr/bin/tsoracle-ctl ] && [ -f "$unit" ] && [ -f "$conf" ] ||
	fail "the packages did not install tsoracled, tsoracle-ctl, $unit and $conf"
[ -f /usr/lib/postgresql/15/lib/tsoracle.so ] || fail "postgresql-15-tsoracle did not install tsoracle.so"
man -w tsoracled >/dev/null 2>&1 && man -w tsoracle-ctl >/dev/null 2>&1 || echo "(man not installed: manual pages not looked up)"

if command -v systemd-analyze >/dev/null; then
	echo "--- systemd-analyze verify $unit"
	out=$(systemd-analyze verify "$unit" 2>&1) || fail "systemd-analyze verify: $out"
	# (a manual page it cannot look up for want of man is not the unit's fault)
	out=$(grep -v "Command 'man " <<<"$out")
	[ -z "$out" ] || fail "systemd-analyze verify: $out"
fi

# The unit's settings, read from the installed file.
key() { sed -n "s/^$1=//p" "$unit" | tail -n1; }
user=$(key User)
exec_start=$(key ExecStart)
exec_reload=$(key ExecReload)
nofile=$(key LimitNOFILE)
[ "$user" = postgres ] || fail "User= is \"$user\", not postgres"
[ "$(key Restart)" = on-failure ] || fail "Restart= is not on-failure"
for k in NoNewPrivileges ProtectSystem PrivateTmp; do
	[ -n "$(key "$k")" ] || fail "the unit has no $k="
done
grep -q -- "--config $conf" <<<"$exec_start" || fail "ExecStart does not read $conf"

# What systemd would make before ExecStart: the runtime and state
# directories, owned by User, with their modes.
install -d -o "$user" -g "$user" -m "$(key RuntimeDirectoryMode)" "/run/$(key RuntimeDirectory)"
install -d -o "$user" -g "$user" -m "$(key StateDirectoryMode)" "/var/lib/$(key StateDirectory)"
# The operator's edit: a free Raft port (the packaged one, 7400, may be taken here).
raft_port=$(free_port) || fail "no free port"
sed -i "s/^raft-address = .*/raft-address = 127.0.0.1:$raft_port/" "$conf"
sock=$(sed -n 's/^client-socket = //p' "$conf")

# LimitNOFILE, as far as this machine lets root raise it (systemd, as PID
# 1, could; a container's root may not be allowed past its hard limit).
if ! prlimit --nofile="$nofile:$nofile" true 2>/dev/null; then
	echo "(LimitNOFILE=$nofile: not permitted here, the hard limit is $(ulimit -Hn); running with that)"
	nofile=$(ulimit -Hn)
fi
echo "--- start: $exec_start (as $user, open files $nofile)"
# shellcheck disable=SC2086 # ExecStart is a command line
setsid prlimit --nofile="$nofile:$nofile" runuser -u "$user" -- $exec_start >"$work/tsoracled.log" 2>&1 </dev/null &
daemon_pid=$!
ok=
for ((i = 0; i < 300; i++)); do
	if /usr/bin/tsoracle-ctl --address "$sock" --timeout 500 status --json 2>/dev/null | grep -q '"serving": true'; then
		ok=1
		break
	fi
	running "$daemon_pid" || break
	sleep 0.1
done
[ -n "$ok" ] || { cat "$work/tsoracled.log"; fail "tsoracled did not serve on $sock within 30 s"; }
# runuser's child is the daemon: its limit and user are the unit's
dpid=$(head -n1 /var/lib/tsoracle/tsoracled.pid)
[ "$(stat -c %U "/proc/$dpid")" = "$user" ] || fail "tsoracled does not run as $user"
grep -q "^Max open files *$nofile *$nofile" "/proc/$dpid/limits" || fail "tsoracled's open-file limit is not $nofile"

echo "--- PostgreSQL 15 with the packaged extension"
pg_port=$(free_port) || fail "no free port"
PG_BINDIR=/usr/lib/postgresql/15/bin # the system's server, where dpkg put the extension
prepare_dir "$work/pg"
start_pg "$work/pg" "$pg_port" "$sock" >/dev/null || { cat "$work/pg/postgresql.log"; fail "PostgreSQL did not start"; }
psql_deb() { psql_port "$pg_port" -At -v ON_ERROR_STOP=1 "$@"; }
# the packaged upgrade script: 1.0, then ALTER EXTENSION ... UPDATE
psql_deb -c "DROP EXTENSION tsoracle" -c "CREATE EXTENSION tsoracle VERSION '1.0'" \
	-c "ALTER EXTENSION tsoracle UPDATE" >/dev/null || fail "CREATE EXTENSION tsoracle 1.0 and its update failed"
[ "$(psql_deb -c "SELECT extversion FROM pg_extension WHERE extname = 'tsoracle'")" = 1.1 ] ||
	fail "the extension was not updated to 1.1"
ts=$(psql_deb -c "SELECT tso_now()") || fail "SELECT tso_now() failed"
ts2=$(psql_deb -c "SELECT tso_now()") || fail "SELECT tso_now() failed"
echo "tso_now(): $ts, then $ts2"
[[ $ts =~ ^[0-9]+$ ]] && [ "$ts2" -gt "$ts" ] || fail "timestamps not increasing: $ts, $ts2"

echo "--- reload: $exec_reload"
kill -HUP "$dpid"
for ((i = 0; i < 100; i++)); do grep -q SIGHUP "$work/tsoracled.log" && break; sleep 0.1; done
grep -q SIGHUP "$work/tsoracled.log" || fail "tsoracled logged no SIGHUP after ExecReload"
ts3=$(psql_deb -c "SELECT tso_now()") && [ "$ts3" -gt "$ts2" ] || fail "no timestamp after the reload"

echo "--- stop, remove the packages"
as_pg /usr/lib/postgresql/15/bin/pg_ctl -D "$pgdata" -m fast -w stop >/dev/null
kill -TERM "$dpid"
for ((i = 0; i < 150; i++)); do running "$dpid" || break; sleep 0.1; done
running "$dpid" && fail "tsoracled did not stop on SIGTERM within 15 s"
wait "$daemon_pid"
daemon_pid=
dpkg -r "${pkgs[@]}" >"$work/dpkg-r.log" 2>&1 || { cat "$work/dpkg-r.log"; fail "dpkg -r failed"; }
[ ! -e /usr/bin/tsoracled ] && [ ! -e /usr/lib/postgresql/15/lib/tsoracle.so ] || fail "dpkg -r left the programs"
[ -f "$conf" ] || fail "dpkg -r removed $conf (a conffile: only purge removes it)"
data=$(find /var/lib/tsoracle -type f | wc -l)
[ "$data" -gt 0 ] || fail "dpkg -r left no data in /var/lib/tsoracle"
echo "after dpkg -r: $conf kept, /var/lib/tsoracle holds $data files ($(du -sh /var/lib/tsoracle | cut -f1))"
echo "deb test: ok"
