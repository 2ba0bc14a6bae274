# Shared by scripts/test.sh and scripts/demo.sh: where things are, and how to
# run a command as the unprivileged user that PostgreSQL requires.
#
# Nothing is installed system-wide: install_all puts a private copy of the
# PostgreSQL server (version $PG: 15, Debian's package, by default; 17 or 18
# built by scripts/deps.sh --pg N) with the extension in it, and the daemon,
# under $INSTALL_DIR, so that two checkouts testing at once each run their
# own build (docs/building.md).

PG=${PG:-15}
PG_USER=${PG_USER:-postgres}

# The private installation's directory: build/install in the checkout when
# $PG_USER can reach it, else one under /tmp named after the checkout.
install_dir() {
	if [ -n "${TSO_INSTALL_DIR:-}" ]; then
		echo "$TSO_INSTALL_DIR"
	elif [ "$(id -u)" -ne 0 ] || runuser -u "$PG_USER" -- test -x "$PWD" 2>/dev/null; then
		echo "$PWD/build/install"
	else
		echo "/tmp/tsoracle-install-$(printf '%s' "$PWD" | md5sum | cut -c1-12)"
	fi
}
INSTALL_DIR=$(install_dir)

# select_pg N: PostgreSQL N's installed (or built) server, PG_SERVER_BINDIR,
# and our private copy of it: $PG_ROOT mirrors the server's own paths
# (PostgreSQL finds its share and lib directories relative to its
# binaries, so the copy runs as itself), and PG_BINDIR/PG_CONFIG are the
# copy's. Refuses a version that is not there.
select_pg() {
	PG=$1
	PG_SERVER_BINDIR=$(scripts/deps.sh --pg-bindir "$PG") || {
		echo "PostgreSQL $PG is not installed or built (scripts/deps.sh --pg $PG builds it)" >&2
		return 1
	}
	PG_ROOT=$INSTALL_DIR/pg$PG
	PG_BINDIR=$PG_ROOT$PG_SERVER_BINDIR
	PG_CONFIG=$PG_BINDIR/pg_config
}
select_pg "${PG%% *}" || PG_BINDIR=/nonexistent # (PG="15 18": scripts/test.sh runs each)
SIDECAR_BINDIR=${SIDECAR_BINDIR:-$INSTALL_DIR/bin}
# The daemon that start_sidecar runs (a test may run a planted-bug build).
SIDECAR_BIN=${SIDECAR_BIN:-$SIDECAR_BINDIR/tsoracled}

# Runs "$@" as $PG_USER (PostgreSQL refuses to run as root). When we are
# already that user, runs it directly.
as_pg() {
	if [ "$(id -un)" = "$PG_USER" ]; then
		"$@"
	elif [ "$(id -u)" -eq 0 ]; then
		runuser -u "$PG_USER" -- "$@"
	else
		echo "run as root or as $PG_USER" >&2
		return 1
	fi
}

# The server files copied into $PG_ROOT: those of its bindir, pkglibdir
# (modules, pgxs with pg_regress and the TAP modules) and sharedir.
pg_copy_dirs() { "$PG_SERVER_BINDIR/pg_config" --bindir --pkglibdir --sharedir; }

# What the copy was made from: redone when the server's binary changes.
pg_copy_stamp() { echo "$PG_SERVER_BINDIR $(stat -c '%i %Y' "$PG_SERVER_BINDIR/postgres")"; }

# Installs, for $PG: the server copy (hard links where the file system
# allows, else copies; once), the extension built for that server in
# build/pgNN/ext (make with EXT_ONLY=1, out of tree) into the copy, and the
# daemon and ctl (of $BUILD_DIR: build-san for make test SANITIZE=1) into
# $SIDECAR_BINDIR. Root's files, readable by everyone.
install_all() {
	local d ext=build/pg$PG/ext
	[ -n "${PG_SERVER_BINDIR:-}" ] || select_pg "$PG" || return 1
	# (each step checks: install_all runs where set -e does not hold)
	(
		umask 022
		mkdir -p "$INSTALL_DIR" && chmod a+rx "$INSTALL_DIR" || exit 1
		if [ "$(cat "$PG_ROOT/.copy-of" 2>/dev/null)" != "$(pg_copy_stamp)" ]; then
			rm -rf "$PG_ROOT"
			for d in $(pg_copy_dirs); do
				mkdir -p "$PG_ROOT$(dirname "$d")" || exit 1
				cp -al "$d" "$PG_ROOT$d" 2>/dev/null || { rm -rf "$PG_ROOT$d" && cp -a "$d" "$PG_ROOT$d"; } || exit 1
			done
			# a system-wide tsoracle is not ours
			rm -f "$PG_ROOT$("$PG_SERVER_BINDIR/pg_config" --pkglibdir)"/tsoracle.* \
				"$PG_ROOT$("$PG_SERVER_BINDIR/pg_config" --sharedir)"/extension/tsoracle*
			pg_copy_stamp >"$PG_ROOT/.copy-of" || exit 1
		fi
		mkdir -p "$ext/src" "$ext/common" &&
			make -s --no-print-directory -C "$ext" -f "$PWD/Makefile" EXT_ONLY=1 with_llvm=no \
				PG_CONFIG="$PG_SERVER_BINDIR/pg_config" install DESTDIR="$PG_ROOT" >/dev/null &&
			mkdir -p "$SIDECAR_BINDIR" &&
			install -m 0755 "${BUILD_DIR:-build}"/tsoracled "${BUILD_DIR:-build}"/tsoracle-ctl "$SIDECAR_BINDIR"/
	)
}

# Waits until tsoracle-ctl status on $1 reports "serving", at most $2 seconds.
wait_serving() {
	local addr=$1 limit=${2:-20} i
	for ((i = 0; i < limit * 10; i++)); do
		if as_pg "$SIDECAR_BINDIR/tsoracle-ctl" --address "$addr" --timeout 500 status --json 2>/dev/null |
			grep -q '"serving": true'; then
			return 0
		fi
		sleep 0.1
	done
	echo "sidecar at $addr is not serving after ${limit}s" >&2
	return 1
}

# Waits until the sidecar at $1 grants a timestamp (as leader or through
# the leader), at most $2 seconds.
wait_ready() {
	local addr=$1 limit=${2:-20} i
	for ((i = 0; i < limit * 10; i++)); do
		if as_pg "$SIDECAR_BINDIR/tsoracle-ctl" --address "$addr" --timeout 3000 get 1 >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.1
	done
	echo "sidecar at $addr grants no timestamps after ${limit}s" >&2
	return 1
}

# ---- scratch sidecars and PostgreSQL servers (demo, nemesis runs) ----

# True while process $1 exists and is not a zombie: a detached daemon is
# reaped by PID 1, which in a container may be slow to do it (or never).
running() { [ -n "$1" ] && [ -e "/proc/$1" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }

pid_alive() { [ -f "$1" ] && running "$(head -n1 "$1")"; }

prepare_dir() { # DIR: created for $PG_USER, private
	mkdir -p "$1"
	chown "$PG_USER": "$1"
	chmod 0700 "$1"
}

# start_sidecar DIR CONFIG_FILE: runs tsoracled --config CONFIG_FILE in the
# background (detached), logging to DIR/tsoracled.log, unless it runs.
start_sidecar() {
	local dir=$1 conf=$2 netns=${3:-}
	local cmd="setsid '$SIDECAR_BIN' --config '$conf' >>'$dir/tsoracled.log' 2>&1 < /dev/null &"
	if pid_alive "$dir/data/tsoracled.pid"; then
		return 0
	fi
	if [ -n "$netns" ]; then # in network namespace $3 (root only)
		ip netns exec "$netns" runuser -u "$PG_USER" -- bash -c "$cmd"
	else
		as_pg bash -c "$cmd"
	fi
}

# start_pg DIR PORT SOCKET: a scratch PostgreSQL in DIR/pgdata using the
# sidecar at SOCKET, started unless it runs; then CREATE EXTENSION. Lines in
# PG_EXTRA_CONF are added to a new server's postgresql.conf (a test's own
# settings).
start_pg() {
	local dir=$1 port=$2 sock=$3
	if [ -f "$dir/pgdata/PG_VERSION" ] && [ "$(cat "$dir/pgdata/PG_VERSION")" != "$PG" ]; then
		echo "$dir/pgdata holds PostgreSQL $(cat "$dir/pgdata/PG_VERSION")'s data, not $PG's:" \
			"stop it (make demo-stop) and remove $dir, or choose another DEMO_DIR" >&2
		return 1
	fi
	if [ ! -f "$dir/pgdata/PG_VERSION" ]; then
		as_pg "$PG_BINDIR/initdb" -D "$dir/pgdata" -U postgres --auth=trust >/dev/null
		cat >>"$dir/pgdata/postgresql.conf" <<CONF
# tsoracle demo
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
shared_preload_libraries = 'tsoracle'
tsoracle.sidecar_address = '$sock'
${PG_EXTRA_CONF:-}
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

stop_dir() {
	local dir=$1 pid i
	if [ -f "$dir/pgdata/postmaster.pid" ]; then
		# stopped by its own version's pg_ctl
		select_pg "$(cat "$dir/pgdata/PG_VERSION")" || return 1
		as_pg "$PG_BINDIR/pg_ctl" -D "$dir/pgdata" -m fast -w stop >/dev/null &&
			echo "demo: PostgreSQL in $dir stopped"
	fi
	if pid_alive "$dir/data/tsoracled.pid"; then
		pid=$(head -n1 "$dir/data/tsoracled.pid")
		kill -TERM "$pid"
		for ((i = 0; i < 100; i++)); do
			running "$pid" || break
			sleep 0.1
		done
		if running "$pid"; then
			echo "demo: tsoracled (pid $pid) did not stop in 10 s; killing it" >&2
			kill -KILL "$pid"
		fi
		echo "demo: tsoracled in $dir stopped"
	fi
}


# cluster_up DIR PG_BASE RAFT_BASE CLIENT_BASE [CONFIG_LINE...]: a 3-member
# cluster in DIR/node{1,2,3}: member i has PostgreSQL on PG_BASE+i, Raft on
# RAFT_BASE+i, client TCP on CLIENT_BASE+i, a config file
# DIR/nodeI/tsoracled.conf (plus the extra lines given, NODE standing for
# DIR/nodeI, and member i's own lines in CLUSTER_CONF_i), and its logs.
# Members listen on 127.0.0.1, or, when CLUSTER_NETNS is set, on
# ${CLUSTER_IP_PREFIX}i inside network namespace ${CLUSTER_NETNS}i. Starts
# what is not running; returns once all three serve SQL (PostgreSQL always
# runs in this namespace, on 127.0.0.1).
member_ip() { # the address of member $1
	if [ -n "${CLUSTER_NETNS:-}" ]; then echo "$CLUSTER_IP_PREFIX$1"; else echo 127.0.0.1; fi
}

cluster_up() {
	local dir=$1 pg=$2 raft=$3 client=$4 i peers="" node ip
	shift 4
	for i in 1 2 3; do
		ip=$(member_ip "$i")
		peers+="${peers:+,}$i=$ip:$((raft + i))/$ip:$((client + i))"
	done
	# Members prove who they are with TLS certificates from the cluster's
	# CA (docs/cluster.md; required off loopback, e.g. in network
	# namespaces): made once, for 5 members so that members can be added.
	if [ ! -s "$dir/tls/ca.crt" ]; then
		as_pg mkdir -p "$dir"
		scripts/certs.sh "$dir/tls" 5 >/dev/null
		if [ "$(id -u)" -eq 0 ]; then chown -R "$PG_USER": "$dir/tls"; fi
	fi
	for i in 1 2 3; do
		node=$dir/node$i
		as_pg mkdir -p "$node"
		{
			echo "# tsoracled, member $i of a 3-node cluster on one machine"
			echo "node-id = $i"
			echo "data-dir = $node/data"
			echo "raft-address = $(member_ip "$i"):$((raft + i))"
			echo "client-socket = $node/tsoracled.sock"
			echo "client-tcp = $(member_ip "$i"):$((client + i))"
			echo "peers = $peers"
			echo "tls-ca = $dir/tls/ca.crt"
			echo "tls-cert = $dir/tls/node$i.crt"
			echo "tls-key = $dir/tls/node$i.key"
			echo "tls-crl = $dir/tls/ca.crl"
			# Prometheus metrics on 127.0.0.1:CLUSTER_METRICS_BASE+i, if set
			if [ -n "${CLUSTER_METRICS_BASE:-}" ]; then
				echo "metrics-address = 127.0.0.1:$((CLUSTER_METRICS_BASE + i))"
			fi
			local line own=CLUSTER_CONF_$i
			for line in "$@"; do echo "${line//NODE/$node}"; done
			# lines for this member only (CLUSTER_CONF_1 .. _3)
			[ -z "${!own:-}" ] || echo "${!own//NODE/$node}"
		} | as_pg tee "$node/tsoracled.conf" >/dev/null
		start_sidecar "$node" "$node/tsoracled.conf" "${CLUSTER_NETNS:+$CLUSTER_NETNS$i}"
	done
	for i in 1 2 3; do
		node=$dir/node$i
		wait_ready "$node/tsoracled.sock" 30
		start_pg "$node" $((pg + i)) "$node/tsoracled.sock"
	done
}
