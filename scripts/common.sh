# Shared by scripts/test.sh and scripts/demo.sh: where things are, and how to
# run a command as the unprivileged user that PostgreSQL requires.

PG_BINDIR=${PG_BINDIR:-/usr/lib/postgresql/15/bin}
PG_CONFIG=${PG_CONFIG:-$PG_BINDIR/pg_config}
PG_USER=${PG_USER:-postgres}
SIDECAR_BINDIR=${SIDECAR_BINDIR:-/usr/local/bin}

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

# Installs the extension into PostgreSQL and the sidecar binaries into
# $SIDECAR_BINDIR (root's job; both are then readable by everyone).
install_all() {
	make -s --no-print-directory install PG_CONFIG="$PG_CONFIG" >/dev/null
	install -m 0755 build/tsoracled build/tsoracle-ctl "$SIDECAR_BINDIR"/
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
