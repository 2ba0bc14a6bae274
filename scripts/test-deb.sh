#!/usr/bin/env bash
# The Debian packages on this machine (make test, as root; docs/building.md,
# "Packages"): builds them (make deb), checks them with lintian (any error
# fails), installs them with dpkg, checks the unit with systemd-analyze,
# starts tsoracled the way tsoracled.service would (systemd need not be PID
# 1: the unit's ExecStart, as its User, with its RuntimeDirectory,
# StateDirectory and LimitNOFILE), and takes timestamps through a scratch
# cluster of each PostgreSQL version there is (scripts/deps.sh
# --pg-versions) loading that version's packaged extension: Debian's
# PostgreSQL 15 with the installed package; PostgreSQL 18 built into the
# dependency cache, which Debian 12 cannot install, with the package's
# files extracted (dpkg-deb -x) and found through extension_control_path
# and dynamic_library_path (17, which has no extension_control_path, only
# has its package's contents checked: docs/building.md, "PostgreSQL
# versions"). On each,
# CREATE EXTENSION at the oldest version and ALTER EXTENSION UPDATE through
# every update script to the newest. Then it reloads with the unit's
# ExecReload, stops, removes the packages and checks that the data and the
# configuration are left. Purges them at the end.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh

unit=/lib/systemd/system/tsoracled.service
conf=/etc/tsoracle/tsoracled.conf
# The PostgreSQL versions, as make deb saw them: each has its package.
# Those whose server Debian's packages installed get it installed; the
# others (built into the cache) extracted into $work/extracted/N.
pg_versions=$(scripts/deps.sh --pg-versions)
pkgs=(tsoracled)
debian_pgs=()
cache_pgs=()
for v in $pg_versions; do
	if [ -x "/usr/lib/postgresql/$v/bin/postgres" ]; then
		pkgs+=("postgresql-$v-tsoracle")
		debian_pgs+=("$v")
	else
		cache_pgs+=("$v")
	fi
done
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
cleanup() {
	local d
	for d in "$work"/pg*; do # (each holds the bindir of its server)
		[ -f "$d/pgdata/postmaster.pid" ] &&
			as_pg "$(cat "$d/bindir")/pg_ctl" -D "$d/pgdata" -m immediate -w stop >/dev/null 2>&1
	done
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
		p=$((20000 + RANDOM % 12000)) # below the ephemeral range (nemesis.sh)
		ss -Htln "sport = :$p" 2>/dev/null | grep -q . || {
			echo "$p"
			return 0
		}
	done
	return 1
}

echo "--- make deb (PostgreSQL ${pg_versions//$'\n'/ })"
scripts/deb.sh || fail "make deb failed"
deb_of() { find build/deb -maxdepth 1 -name "$1_*_amd64.deb" | head -n1; }
for v in $pg_versions; do
	deb=$(deb_of "postgresql-$v-tsoracle")
	[ -n "$deb" ] || fail "make deb built no postgresql-$v-tsoracle, though PostgreSQL $v is here"
	# pg_buildext's convention: the package depends on its server
	dep=$(dpkg-deb -f "$deb" Depends)
	grep -Eq "(^|, )postgresql-$v(\$| |,)" <<<"$dep" || fail "postgresql-$v-tsoracle does not depend on postgresql-$v: $dep"
	contents=$(dpkg-deb -c "$deb") || fail "dpkg-deb -c $deb failed"
	for f in "usr/lib/postgresql/$v/lib/tsoracle.so" "usr/share/postgresql/$v/extension/tsoracle.control"; do
		grep -q " \./$f\$" <<<"$contents" || fail "postgresql-$v-tsoracle has no /$f"
	done
done

# lintian (scripts/deps.sh installs it): any error fails. Its absence
# fails too, so that the check cannot go missing unnoticed.
echo "--- lintian"
command -v lintian >/dev/null || fail "lintian is not installed: scripts/deps.sh installs it (apt-get install lintian)"
debs=()
for f in build/deb/*.deb; do [[ $f == *-dbgsym_* ]] || debs+=("$f"); done
lintian "${debs[@]}" >"$work/lintian.log" 2>&1
grep -v '^running with root privileges' "$work/lintian.log"
! grep -q '^E: ' "$work/lintian.log" || fail "lintian reports errors"

echo "--- dpkg -i"
debs=("$(deb_of tsoracled)")
for v in "${debian_pgs[@]}"; do debs+=("$(deb_of "postgresql-$v-tsoracle")"); done
dpkg -i "${debs[@]}" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; fail "dpkg -i failed"; }
[ -x /usr/bin/tsoracled ] && [ -x /usr/bin/tsoracle-ctl ] && [ -f "$unit" ] && [ -f "$conf" ] ||
	fail "the packages did not install tsoracled, tsoracle-ctl, $unit and $conf"
for v in "${debian_pgs[@]}"; do
	[ -f "/usr/lib/postgresql/$v/lib/tsoracle.so" ] || fail "postgresql-$v-tsoracle did not install tsoracle.so"
done
# The others: their files where Debian would put them, below $work/extracted/N.
for v in "${cache_pgs[@]}"; do
	echo "--- dpkg-deb -x postgresql-$v-tsoracle (PostgreSQL $v is not installable here)"
	mkdir -p "$work/extracted/$v"
	dpkg-deb -x "$(deb_of "postgresql-$v-tsoracle")" "$work/extracted/$v" || fail "dpkg-deb -x failed"
done
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

# walk_updates PORT EXTENSION_DIR: CREATE EXTENSION at the oldest version
# that has an install script there, then ALTER EXTENSION UPDATE TO the next
# version, one update script at a time, to the control file's
# default_version; every script is used, and a timestamp after each step
# is above every one before it (last_ts, over all the servers).
last_ts=0
take_ts() {
	local ts
	ts=$(psql_deb "$1" -c "SELECT tso_now()") || fail "SELECT tso_now() failed on port $1"
	[[ $ts =~ ^[0-9]+$ ]] && [ "$ts" -gt "$last_ts" ] || fail "timestamp $ts is not above the last one, $last_ts"
	last_ts=$ts
}
walk_updates() {
	local port=$1 dir=$2 cur next default got steps=0 scripts files
	default=$(sed -n "s/^default_version *= *'\(.*\)'/\1/p" "$dir/tsoracle.control")
	files=$(find "$dir" -maxdepth 1 -name 'tsoracle--*.sql' -printf '%f\n')
	cur=$(sed -n 's/^tsoracle--\([^-]*\)\.sql$/\1/p' <<<"$files" | sort -V | head -n1)
	scripts=$(grep -c '^tsoracle--.*--.*\.sql$' <<<"$files")
	[ -n "$default" ] && [ -n "$cur" ] || fail "no default_version or install script in $dir"
	psql_deb "$port" -c "DROP EXTENSION IF EXISTS tsoracle" -c "CREATE EXTENSION tsoracle VERSION '$cur'" >/dev/null ||
		fail "CREATE EXTENSION tsoracle VERSION '$cur' failed"
	take_ts "$port"
	echo "CREATE EXTENSION tsoracle VERSION '$cur': tso_now() $last_ts"
	while next=$(grep -F "tsoracle--$cur--" <<<"$files" | sed -n 's/^tsoracle--[^-]*--\(.*\)\.sql$/\1/p' | sort -V | head -n1) &&
		[ -n "$next" ]; do
		psql_deb "$port" -c "ALTER EXTENSION tsoracle UPDATE TO '$next'" >/dev/null ||
			fail "ALTER EXTENSION tsoracle UPDATE TO '$next' (from $cur) failed"
		got=$(psql_deb "$port" -c "SELECT extversion FROM pg_extension WHERE extname = 'tsoracle'")
		[ "$got" = "$next" ] || fail "after the update to $next, the extension is at $got"
		take_ts "$port"
		echo "ALTER EXTENSION tsoracle UPDATE TO '$next': tso_now() $last_ts"
		cur=$next
		steps=$((steps + 1))
	done
	[ "$cur" = "$default" ] || fail "the updates end at $cur, not at the default version $default"
	[ "$steps" -eq "$scripts" ] || fail "$steps of the $scripts update scripts in $dir were used"
}
psql_deb() { # PORT ARGS...
	local port=$1
	shift
	psql_port "$port" -At -v ON_ERROR_STOP=1 "$@"
}

# pg_session VERSION BINDIR EXTENSION_DIR [CONFIG LINES]: a scratch
# cluster of that server in $work/pgVERSION using tsoracled's socket, the
# updates walked, timestamps; leaves it running (port in $work/pgVERSION/port).
pg_session() {
	local v=$1 bindir=$2 extdir=$3 port
	shift 3
	port=$(free_port) || fail "no free port"
	prepare_dir "$work/pg$v"
	echo "$bindir" >"$work/pg$v/bindir"
	echo "$port" >"$work/pg$v/port"
	PG=$v PG_BINDIR=$bindir PG_EXTRA_CONF=$(printf '%s\n' "$@") start_pg "$work/pg$v" "$port" "$sock" >/dev/null ||
		{ cat "$work/pg$v/postgresql.log"; fail "PostgreSQL $v did not start"; }
	PG_BINDIR=$bindir walk_updates "$port" "$extdir"
	PG_BINDIR=$bindir take_ts "$port"
}

for v in "${debian_pgs[@]}"; do
	echo "--- PostgreSQL $v (Debian's) with the installed postgresql-$v-tsoracle"
	pg_session "$v" "/usr/lib/postgresql/$v/bin" "/usr/share/postgresql/$v/extension"
done
for v in "${cache_pgs[@]}"; do
	bindir=$(scripts/deps.sh --pg-bindir "$v") || fail "PostgreSQL $v is not built"
	if [ "$v" -lt 18 ]; then # (docs/building.md, "PostgreSQL versions")
		echo "--- PostgreSQL $v: postgresql-$v-tsoracle NOT LOADED (only its contents checked):" \
			"extension_control_path is PostgreSQL 18's, and $v looks \$libdir/tsoracle up in its own pkglibdir only"
		continue
	fi
	root=$work/extracted/$v
	echo "--- PostgreSQL $v ($bindir) with postgresql-$v-tsoracle's files from $root"
	# Nothing of tsoracle in the server's own directories: what it loads
	# can only be the package's.
	for f in "$("$bindir/pg_config" --pkglibdir)/tsoracle.so" "$("$bindir/pg_config" --sharedir)/extension/tsoracle.control"; do
		[ ! -e "$f" ] || fail "$f exists: the server would not need the package's files (remove it)"
	done
	pg_session "$v" "$bindir" "$root/usr/share/postgresql/$v/extension" \
		"extension_control_path = '$root/usr/share/postgresql/$v:\$system'" \
		"dynamic_library_path = '$root/usr/lib/postgresql/$v/lib:\$libdir'"
	# the module the postmaster preloaded is the package's
	pm=$(head -n1 "$work/pg$v/pgdata/postmaster.pid")
	grep -q " $root/usr/lib/postgresql/$v/lib/tsoracle.so\$" "/proc/$pm/maps" ||
		fail "PostgreSQL $v's postmaster has not mapped $root/usr/lib/postgresql/$v/lib/tsoracle.so"
done

echo "--- reload: $exec_reload"
kill -HUP "$dpid"
for ((i = 0; i < 100; i++)); do grep -q SIGHUP "$work/tsoracled.log" && break; sleep 0.1; done
grep -q SIGHUP "$work/tsoracled.log" || fail "tsoracled logged no SIGHUP after ExecReload"
for d in "$work"/pg*; do PG_BINDIR=$(cat "$d/bindir") take_ts "$(cat "$d/port")"; done
echo "after the reload: tso_now() $last_ts"

echo "--- stop, remove the packages"
for d in "$work"/pg*; do as_pg "$(cat "$d/bindir")/pg_ctl" -D "$d/pgdata" -m fast -w stop >/dev/null; done
kill -TERM "$dpid"
for ((i = 0; i < 150; i++)); do running "$dpid" || break; sleep 0.1; done
running "$dpid" && fail "tsoracled did not stop on SIGTERM within 15 s"
wait "$daemon_pid"
daemon_pid=
dpkg -r "${pkgs[@]}" >"$work/dpkg-r.log" 2>&1 || { cat "$work/dpkg-r.log"; fail "dpkg -r failed"; }
[ ! -e /usr/bin/tsoracled ] && ! ls /usr/lib/postgresql/*/lib/tsoracle.so >/dev/null 2>&1 || fail "dpkg -r left the programs"
[ -f "$conf" ] || fail "dpkg -r removed $conf (a conffile: only purge removes it)"
data=$(find /var/lib/tsoracle -type f | wc -l)
[ "$data" -gt 0 ] || fail "dpkg -r left no data in /var/lib/tsoracle"
echo "after dpkg -r: $conf kept, /var/lib/tsoracle holds $data files ($(du -sh /var/lib/tsoracle | cut -f1))"
echo "deb test: ok"
