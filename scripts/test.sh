#!/usr/bin/env bash
# Runs every test suite (make test): the C unit tests, pg_regress against a
# scratch PostgreSQL with a real single-node sidecar, and the TAP tests on
# real processes. PostgreSQL runs as $PG_USER from a staged copy of the
# tests, since that user may not be able to read the checkout.
#
# Environment: TESTS="t/001_x.pl ..." runs only those TAP files (and
#              TESTS_ROOT="t/root/108_x.pl ..." only those run as root);
#              SKIP_TAP=1, SKIP_REGRESS=1, SKIP_UNIT=1, SKIP_FUZZ=1, SKIP_NEMESIS=1,
#              SKIP_EXAMPLES=1, SKIP_SANITIZE=1, SKIP_DEB=1
#              skip a suite; SKIP_CONTROLS=1 the TAP files' positive
#              controls (to split a run into holds of the suite lock).
#              SANITIZE=1 (make test SANITIZE=1): every suite runs the
#              daemon, the tools and the C tests of build-san/ (AddressSanitizer
#              with its leak checker, UndefinedBehaviorSanitizer; Makefile),
#              installed in their place; without it, the "sanitizers" suites
#              still run the unit tests, a shorter simulation and one
#              multi-node TAP file (t/103_catch_up.pl) that way.
#              PG=N runs pg_regress and the TAP files on PostgreSQL N (15,
#              17 or 18; scripts/deps.sh builds 17 and 18 first when
#              missing); PG="15 18" on each of those; by default on 15, 17
#              and 18 (with TESTS set, on 15 only). The unit,
#              simulation, fuzz and nemesis suites run once (nemesis on the
#              first version). A version that cannot be built is reported
#              and counted as skipped.
set -uo pipefail
cd "$(dirname "$0")/.."
# (a run of chosen TAP files, TESTS=..., stays on 15 unless PG says)
if [ -n "${PG:-}" ]; then pg_versions=$PG; elif [ -n "${TESTS:-}" ]; then pg_versions=15; else pg_versions="15 17 18"; fi
. scripts/common.sh

SANITIZE=${SANITIZE:-}
if [ "$SANITIZE" = 1 ]; then BUILD_DIR=build-san; else BUILD_DIR=build; fi
export BUILD_DIR
# What a sanitizer report does to an instrumented process: it ends it with
# a failure status (the build has -fno-sanitize-recover=all), after a stack
# trace; leaks are looked for at exit. Passed to every process the suites
# start; uninstrumented ones ignore them.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

passed=0
failed=0
skipped=0
suite() { # name, then the command; its result line says how long it took
	local name=$1${PG_LABEL:-} start=$SECONDS
	shift
	echo
	echo "=== $name"
	if "$@"; then
		passed=$((passed + 1))
		echo "=== $name: ok ($((SECONDS - start)) s)"
	else
		failed=$((failed + 1))
		echo "=== $name: FAILED ($((SECONDS - start)) s)"
	fi
}

unit() { # [BUILD DIRECTORY [NAMES TO SKIP (a pattern)]]
	local t rc=0 dir=${1:-$BUILD_DIR} skip=${2:-}
	# The simulation explores new schedules each run when run by hand; here
	# it replays a fixed set, so that CI is repeatable (TSO_SIM_SEED=x to
	# choose another).
	export TSO_SIM_SEED=${TSO_SIM_SEED:-1}
	# test_alloc's property test likewise (by hand it seeds from the clock;
	# it prints its seed either way).
	export TSO_SEED=${TSO_SEED:-1}
	for t in "$dir"/test/*; do
		[ -f "$t" ] && [ -x "$t" ] || continue
		if [ -n "$skip" ] && [[ $(basename "$t") == $skip ]]; then continue; fi
		echo "--- $t"
		"$t" || rc=1
	done
	return $rc
}

# Every libFuzzer target (test/fuzz/, Makefile) for a fixed number of runs
# from its seed corpus with a fixed seed, so that a failure replays:
# FUZZ_SEED=n picks another seed. `make fuzz` is the long run.
fuzz_brief() {
	local seed=${FUZZ_SEED:-1}
	echo "fuzz seed: $seed"
	make --no-print-directory fuzz-brief FUZZ_SEED="$seed"
}

# The example alert rules (docs/alerts.yml, docs/operations.md): promtool
# accepts them and their unit tests pass (docs/alerts_test.yml: each alert
# fires on its failure, none on a healthy cluster); the positive control, a
# copy whose no-leader rule can never fire, must fail those tests.
alert_rules() {
	local tmp rc=0
	promtool check rules docs/alerts.yml && promtool test rules docs/alerts_test.yml || return 1
	tmp=$(mktemp -d)
	cp docs/alerts_test.yml "$tmp/"
	sed 's/sum by (job) (tsoracle_serving) == 0/sum by (job) (tsoracle_serving) < 0/' docs/alerts.yml >"$tmp/alerts.yml"
	if cmp -s docs/alerts.yml "$tmp/alerts.yml"; then
		echo "control: the planted change did not apply to docs/alerts.yml"
		rc=1
	elif promtool test rules "$tmp/alerts_test.yml" >"$tmp/out" 2>&1; then
		echo "control: a no-leader rule that never fires passed docs/alerts_test.yml"
		rc=1
	else
		echo "control: a no-leader rule that never fires fails docs/alerts_test.yml, as it must"
	fi
	rm -rf "$tmp"
	return $rc
}

# Each version's tests are staged in $STAGE_BASE/pgN ($STAGE while it runs).
STAGE_BASE=$(mktemp -d /tmp/tsoracle-test.XXXXXX)
chmod 0711 "$STAGE_BASE"
STAGE=$STAGE_BASE
# Stops the pg_regress sidecar through its pid file (it runs detached).
stop_sidecar() {
	local pid i
	[ -n "${sidecar_pidfile:-}" ] && [ -f "$sidecar_pidfile" ] || return 0
	pid=$(head -n1 "$sidecar_pidfile")
	kill -TERM "$pid" 2>/dev/null
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null
	sidecar_pidfile=
}

cleanup() {
	stop_sidecar
	squatters_stop
	if [ "$failed" -eq 0 ] && [ -z "${KEEP_STAGE:-}" ]; then rm -rf "$STAGE_BASE"; else echo "test files kept in $STAGE_BASE"; fi
}
trap cleanup EXIT

# The daemon of an older commit (TSORACLE_OLD_REF, default 656b944: command
# set 1, before clock sanity) for t/133_rolling_upgrade.pl, built once from a
# git worktree in a temporary directory (bounded: OLD_BUILD_TIMEOUT s) and
# cached in build/old/. Without it (no git history, a failed build), the
# test skips.
OLD_REF=${TSORACLE_OLD_REF:-656b944}
OLD_BUILD_TIMEOUT=600
old_daemon() {
	local out="build/old/tsoracled-$OLD_REF" dir rc=0
	[ -x "$out" ] && return 0
	dir=$(mktemp -d /tmp/tsoracle-old.XXXXXX) || return 1
	if git worktree add -q --detach "$dir/src" "$OLD_REF" &&
		timeout "$OLD_BUILD_TIMEOUT" make -s -C "$dir/src" -j2 DEPS_PREFIX="$(scripts/deps.sh --raft-prefix)" \
			build/tsoracled >"$dir/build.log" 2>&1 &&
		mkdir -p build/old && cp "$dir/src/build/tsoracled" "$out"; then
		echo "built tsoracled of $OLD_REF for the rolling upgrade test: $out"
	else
		rc=1
		echo "could not build tsoracled of $OLD_REF (t/133 skips):"
		tail -n 20 "$dir/build.log" 2>/dev/null
	fi
	git worktree remove --force "$dir/src" >/dev/null 2>&1
	rm -rf "$dir"
	return $rc
}

# ext_control_tree DIR PATCH: a copy of the extension's sources in
# DIR/tree with the planted bug PATCH (test/broken/ext_*.patch) applied,
# so that the extension's own sources carry no control switch. A patch
# that no longer applies fails the control, never silently passes it.
ext_control_tree() {
	local dir=$1 patch=$2
	rm -rf "$dir/tree" && mkdir -p "$dir/tree" &&
		cp -r Makefile tsoracle.control src common sql scripts "$dir/tree/" &&
		patch -s -p1 -d "$dir/tree" <"$patch" ||
		{ echo "the control's patch $patch does not apply"; return 1; }
}

# The positive control of t/115_checker_statements.pl: the extension built
# with tso_now()'s leftovers outliving their statement
# (test/broken/ext_leaky_cache.patch on src/funcs.c), installed in the
# server copy beside the real module as tsoracle-leaky-cache, which only
# that test preloads.
control_ext() {
	local d=build/pg$PG/ext-leaky-cache
	ext_control_tree "$d" test/broken/ext_leaky_cache.patch || return 1
	mkdir -p "$d/src" "$d/common"
	make -s --no-print-directory -C "$d" -f "$PWD/$d/tree/Makefile" EXT_ONLY=1 with_llvm=no \
		PG_CONFIG="$PG_SERVER_BINDIR/pg_config" \
		EXT_CONTROL_CPPFLAGS='-DTSORACLE_LIBRARY_NAME=\"tsoracle-leaky-cache\"' \
		all >/dev/null &&
		install -m 0644 "$d/tsoracle.so" "$("$PG_CONFIG" --pkglibdir)/tsoracle-leaky-cache.so"
}

stage() {
	install_all || return 1
	control_ext || return 1
	echo "PostgreSQL $PG: $PG_BINDIR (a copy of $PG_SERVER_BINDIR), tsoracled in $SIDECAR_BINDIR"
	# the server copy loads the extension just built for it
	cmp "build/pg$PG/ext/tsoracle.so" "$("$PG_CONFIG" --pkglibdir)/tsoracle.so" || return 1
	mkdir -p "$STAGE/regress"
	cp -r sql expected "$STAGE/regress/"
	rm -f "$STAGE/regress/sql/tsoracle--"*.sql
	cp -r test/t test/perl "$STAGE/"
	mkdir -p "$STAGE/bin"
	local b=$BUILD_DIR
	cp $b/tsoracle-checker $b/tsoracle-bench $b/control/tsoracled-broken-monotonic \
		$b/control/tsoracled-broken-fence $b/control/tsoracled-broken-clock \
		$b/test-bin/tsoracle-raft-append "$STAGE/bin/"
	# The sanitizers' own suites (plain make test) run these.
	if [ -x build-san/tsoracled ]; then
		mkdir -p "$STAGE/bin/san"
		cp build-san/tsoracled build-san/tsoracle-ctl "$STAGE/bin/san/"
	fi
	cp $b/control/tsoracled-broken-startfloor $b/control/tsoracled-broken-floor "$STAGE/bin/"
	cp $b/control/tsoracled-broken-peergate "$STAGE/bin/"
	cp $b/control/tsoracled-broken-quorum "$STAGE/bin/"
	cp $b/control/tsoracled-long-lease $b/control/tsoracled-broken-lease "$STAGE/bin/"
	cp $b/control/tsoracled-broken-membercert "$STAGE/bin/"
	old_daemon && cp "build/old/tsoracled-$OLD_REF" "$STAGE/bin/tsoracled-old"
	cp scripts/certs.sh "$STAGE/bin/" # TAP clusters run under TLS (TsoracleTest::certs)
	cp docs/postgres_exporter.yml "$STAGE/bin/" # t/140_metrics.pl runs its query
	chown -R "$PG_USER": "$STAGE"
	chmod 0700 "$STAGE"
}

regress() {
	local dir=$STAGE/regress sock=$STAGE/regress/tsoracled.sock rc
	local pgxs tests
	pgxs=$(cd "$(dirname "$("$PG_CONFIG" --pgxs)")/../.." && pwd)
	tests=$(cd sql && ls -1 *.sql | grep -v '^tsoracle--' | sed 's/\.sql$//' | sort)
	as_pg bash -c "setsid '$SIDECAR_BINDIR/tsoracled' --data-dir '$dir/sidecar' \
		--raft-address 127.0.0.1:$((20000 + RANDOM % 12000)) --client-socket '$sock' \
		2>'$dir/tsoracled.log' </dev/null &"
	sidecar_pidfile=$dir/sidecar/tsoracled.pid
	wait_serving "$sock" 30 || return 1
	cat >"$dir/regress.conf" <<CONF
shared_preload_libraries = 'tsoracle'
tsoracle.sidecar_address = '$sock'
CONF
	chown "$PG_USER": "$dir/regress.conf"
	(cd "$dir" && as_pg "$pgxs/src/test/regress/pg_regress" \
		--bindir="$PG_BINDIR" --temp-instance="$dir/tmp_check" \
		--temp-config="$dir/regress.conf" --inputdir="$dir" --outputdir="$dir" \
		--port=$((20000 + RANDOM % 12000)) $tests)
	rc=$?
	[ $rc -ne 0 ] && [ -f "$dir/regression.diffs" ] && cat "$dir/regression.diffs"
	stop_sidecar
	return $rc
}

# Socket squatters for t/008_socket_owner.pl (root only: they run as
# another user): tsoracled processes run by nobody on sockets it makes
# connectable by anyone (and admitting $PG_USER: --client-socket-allow),
# in a root-owned sticky directory open to all, as
# any local user could do in /tmp. owner.sock stays nobody's; root hands
# the file peer.sock to $PG_USER, so only the listener's credentials give
# it away. The test reads the directory from TSORACLE_SQUAT.
SQUAT=
squatters_start() {
	local name i
	[ "$(id -u)" -eq 0 ] && id nobody >/dev/null 2>&1 || return 0
	SQUAT=$(mktemp -d /tmp/tsoracle-squat.XXXXXX) && chmod 1777 "$SQUAT" || return 1
	for name in owner peer; do
		runuser -u nobody -- bash -c "setsid '$SIDECAR_BINDIR/tsoracled' --data-dir '$SQUAT/$name' \
			--raft-address 127.0.0.1:$((20000 + RANDOM % 12000)) --client-socket '$SQUAT/$name.sock' \
			--client-socket-allow '$PG_USER' >'$SQUAT/$name.log' 2>&1 </dev/null &"
		for ((i = 0; i < 100; i++)); do [ -S "$SQUAT/$name.sock" ] && break; sleep 0.1; done
		runuser -u nobody -- chmod 0666 "$SQUAT/$name.sock" || return 1
	done
	chown "$PG_USER" "$SQUAT/peer.sock" || return 1
	wait_serving "$SQUAT/owner.sock" 30 && wait_serving "$SQUAT/peer.sock" 30
}
squatters_stop() {
	local f
	[ -n "$SQUAT" ] || return 0
	for f in "$SQUAT"/*/tsoracled.pid; do
		[ -f "$f" ] && kill -KILL "$(head -n1 "$f")" 2>/dev/null
	done
	rm -rf "$SQUAT"
	SQUAT=
}

# run_prove DAEMON PROVE_ARGS...: the TAP files given, their sidecars
# running DAEMON (TSORACLE_SQUAT: the squatters' directory, see tap;
# TAP_CTL: another tsoracle-ctl; TAP_TESTDIR: where tmp_check goes, for a
# second run of a file already run). (TESTDIR for PostgreSQL 15's test
# modules; 17 and later read TESTDATADIR and TESTLOGDIR.) --timer: each
# file's line in the log ends with its time (docs/building.md, How long CI
# takes).
run_prove() {
	local daemon=$1 pgxs
	shift
	pgxs=$(cd "$(dirname "$("$PG_CONFIG" --pgxs)")/../.." && pwd)
	(cd "$STAGE" && as_pg env PATH="$PG_BINDIR:$PATH" TESTDIR="${TAP_TESTDIR:-$STAGE}" TSORACLE_SQUAT="${squat:-}" \
		TESTDATADIR="${TAP_TESTDIR:-$STAGE}/tmp_check" TESTLOGDIR="${TAP_TESTDIR:-$STAGE}/tmp_check/log" \
		PG_REGRESS="$pgxs/src/test/regress/pg_regress" ASAN_OPTIONS="$ASAN_OPTIONS" UBSAN_OPTIONS="$UBSAN_OPTIONS" \
		TSORACLED="$daemon" TSORACLE_CTL="${TAP_CTL:-$SIDECAR_BINDIR/tsoracle-ctl}" \
		${TAP_CONTROL_STOP:+TSORACLE_CONTROL_STOP="$TAP_CONTROL_STOP"} \
		TSORACLE_CHECKER="$STAGE/bin/tsoracle-checker" TSORACLE_RAFT_APPEND="$STAGE/bin/tsoracle-raft-append" \
		TSORACLE_BENCH="$STAGE/bin/tsoracle-bench" \
		TSORACLED_OLD="$([ -x "$STAGE/bin/tsoracled-old" ] && echo "$STAGE/bin/tsoracled-old")" \
		prove --timer -I "$pgxs/src/test/perl" -I "$STAGE/perl" "$@")
}

# The TAP files of one version: all of t/, but on a version after the first
# not those that test tsoracled and its tools alone, which do not depend on
# the server's version, so that a second run proves nothing new. Such a
# file says so on a line of its own: "daemon only" (it starts no
# PostgreSQL server), or "daemon behaviour" (its PostgreSQL servers are
# only the daemon's clients, through tso_now() and tso_range(), which the
# files run on every version take too: what it checks is the daemon's
# fence, clock check, membership, start floor, floor or upgrade).
DAEMON_ONLY_MARK='# tsoracle-tap: daemon only'
DAEMON_BEHAVIOUR_MARK='# tsoracle-tap: daemon behaviour'
tap_files() {
	local f
	for f in t/*.pl; do
		if [ "$v" != "$first_pg" ] && grep -qxF -e "$DAEMON_ONLY_MARK" -e "$DAEMON_BEHAVIOUR_MARK" "$f"; then
			echo "($(grep -oxF -e "$DAEMON_ONLY_MARK" -e "$DAEMON_BEHAVIOUR_MARK" "$f" |
				sed 's/^# tsoracle-tap: //'), run on PostgreSQL $first_pg: $f)" >&2
			continue
		fi
		echo "$f"
	done
}

tap() {
	local tests squat rc=0
	tests=${TESTS:-$(cd "$STAGE" && tap_files)}
	# empty (not root): t/008 skips the squatter cases; "failed": it fails
	squatters_start && squat=$SQUAT || squat=failed
	# shellcheck disable=SC2086 # a list of files
	run_prove "$SIDECAR_BINDIR/tsoracled" $tests || rc=$?
	# Each version's run starts its own squatters: stopped here, or the
	# next version's would take SQUAT and leave these running for good.
	squatters_stop
	return $rc
}

# tap_control DIR DAEMON FILE PATTERN: a positive control. FILE runs
# against a planted-bug DAEMON, in a test directory of its own ($STAGE/DIR,
# short: unix socket paths live under it; the real run's logs stay), and
# the control passes only if FILE fails with a "not ok" line matching
# PATTERN (an extended regular expression). FILE ends at that line
# (TSORACLE_CONTROL_STOP, test/perl/TsoracleTest.pm): the rest could not
# change the verdict.
tap_control() {
	local out rc=0
	as_pg mkdir -p "$STAGE/$1"
	out=$(TAP_TESTDIR="$STAGE/$1" TAP_CONTROL_STOP="$4" run_prove "$2" -v "$3" 2>&1) || rc=$?
	grep -E '^not ok|Dubious|died' <<<"$out" | head -n 20
	[ $rc -ne 0 ] && grep -Eq "^not ok .*($4)" <<<"$out"
}

# t/110_fence_clock.pl against the fence-disabled build (a new leader's
# floor ignores H): a restart inside the window already handed out serves
# below it.
tap_fence_control() {
	tap_control fence "$STAGE/bin/tsoracled-broken-fence" t/110_fence_clock.pl \
		'above every earlier value'
}

# t/111_clock_sanity.pl against the build whose clock check is off (every
# clock taken as supported, jumps followed): the jumped leader keeps
# leading and its marks follow the jump.
tap_clock_control() {
	tap_control clock "$STAGE/bin/tsoracled-broken-clock" t/111_clock_sanity.pl \
		'another member leads|does not serve|never served|is refused'
}

# t/130_force_new_cluster.pl and t/131_restore_old_copy.pl
# (tap_startfloor_control FILE) against the build without a start floor
# (I7): the survivor that was behind, or the cluster restored from an old
# copy, serves below what was handed out before.
tap_startfloor_control() {
	tap_control "sf$(basename "$1" | cut -c1-3)" "$STAGE/bin/tsoracled-broken-startfloor" "$1" \
		'above every earlier value'
}

# t/132_advance_to.pl against the build whose allocator ignores the
# operator's floor (ta_raise_floor does nothing): a timestamp after
# advance-to is below its time.
tap_floor_control() {
	tap_control floor-control "$STAGE/bin/tsoracled-broken-floor" t/132_advance_to.pl \
		'at least the time advanced to'
}

# t/108_peer_flood.pl against the build whose Raft handshake gate is one
# global cap (test/broken/broken_peergate.c: no limit per source, no room
# kept for members): the stranger's flood keeps the restarted member out
# beyond 2 s.
tap_peergate_control() {
	tap_control peergate-control "$STAGE/bin/tsoracled-broken-peergate" t/108_peer_flood.pl \
		'rejoins within 2 s'
}

# t/112_membership.pl against the build whose member remove does not
# refuse a removal that would leave no quorum of the members that are up
# (test/test.mk, tsoracled-broken-quorum): the removal goes through.
tap_quorum_control() {
	tap_control quorum-control "$STAGE/bin/tsoracled-broken-quorum" t/112_membership.pl \
		'no quorum would remain|no change: voters 4, 5, 6'
}

# t/113_member_paths.pl against the build whose client port admits any
# member certificate (test/broken/broken_membercert.c): the removed member
# goes on taking timestamps.
tap_membercert_control() {
	tap_control membercert-control "$STAGE/bin/tsoracled-broken-membercert" t/113_member_paths.pl \
		'may no longer take timestamps from the leader'
}

# Positive control of t/002_sidecar_down.pl's late-answer check: the
# extension built with test/broken/ext_ignore_generation.patch (src/ring.c:
# an answer goes to whatever call its slot holds) is installed for this run
# only, and the test must fail on the session whose next call would get
# the abandoned call's answer; then the real extension is installed again.
tap_generation_control() {
	local ext=build/pg$PG/ext-control out rc=0
	ext_control_tree "$ext" test/broken/ext_ignore_generation.patch || return 1
	mkdir -p "$ext/src" "$ext/common"
	make -s --no-print-directory -C "$ext" -f "$PWD/$ext/tree/Makefile" EXT_ONLY=1 with_llvm=no \
		PG_CONFIG="$PG_SERVER_BINDIR/pg_config" \
		install DESTDIR="$PG_ROOT" >/dev/null || return 1
	as_pg mkdir -p "$STAGE/generation-control"
	out=$(TAP_TESTDIR="$STAGE/generation-control" run_prove "$SIDECAR_BINDIR/tsoracled" -v \
		t/002_sidecar_down.pl 2>&1) || rc=$?
	install_all || { echo "the real extension could not be installed again"; return 1; }
	cmp -s "build/pg$PG/ext/tsoracle.so" "$("$PG_CONFIG" --pkglibdir)/tsoracle.so" ||
		{ echo "the control's tsoracle.so is still installed"; return 1; }
	grep -E '^not ok|Bail ?out' <<<"$out" | head -n 5
	# Either the check fails, or the misdelivered answer crashes the
	# backend that receives it and the file bails out (prove says
	# "Bailout called"): in the runs so far, a backend aborting on "stack
	# smashing detected" (docs/reliability.md).
	[ $rc -ne 0 ] && grep -Eq '^not ok .*gets its own answer|Bail ?out' <<<"$out"
}

# TAP files that need other users than $PG_USER (t/root: the local
# socket's SO_PEERCRED check, paths planted by nobody) run as root. With
# TESTS set, only those named in TESTS_ROOT run.
tap_root() {
	local pgxs tests=${TESTS_ROOT:-}
	[ -n "$tests" ] || [ -n "${TESTS:-}" ] || tests="t/root/*.pl"
	[ -n "$tests" ] || { echo "no t/root files asked for (TESTS_ROOT)"; return 0; }
	[ "$(id -u)" -eq 0 ] || { echo "not root: t/root skipped"; return 0; }
	pgxs=$(cd "$(dirname "$("$PG_CONFIG" --pgxs)")/../.." && pwd)
	(cd "$STAGE" && env PATH="$PG_BINDIR:$PATH" TESTDIR="$STAGE" PG_USER="$PG_USER" \
		TESTDATADIR="$STAGE/tmp_check" TESTLOGDIR="$STAGE/tmp_check/log" \
		TSORACLED="$SIDECAR_BINDIR/tsoracled" TSORACLE_CTL="$SIDECAR_BINDIR/tsoracle-ctl" \
		prove --timer -I "$pgxs/src/test/perl" -I "$STAGE/perl" $tests)
}

# The checker against three real nodes while the leader is cut off by a
# network partition (namespaces; needs root), in short form.
nemesis_partition() {
	NEMESIS_DIR=$STAGE/nemesis scripts/nemesis.sh partition 20 2
}

# The same with multi-row statements (INSERTs of 2..40 rows keyed by
# DEFAULT tso_now(), each statement one operation; t/115 has the positive
# control of a cache that outlives its statement).
nemesis_partition_statements() {
	NEMESIS_DIR=$STAGE/nemesis-statements NEMESIS_CHECKER_ARGS="--rows-max 40 --rows-percent 60" \
		scripts/nemesis.sh partition 20 2
}

# The fence of the real daemon: the leader's clock jumps 4 s ahead, it is
# killed, and its successor (true clock) must serve above what it handed
# out. The workers' guard is off (nemesis.sh), so the checker sees the
# values; nemesis_fence_control below is the same run without the fence.
nemesis_clock_kill() {
	NEMESIS_DIR=$STAGE/nemesis-clock-kill scripts/nemesis.sh clock-kill 10 2
}

# Positive controls: a run of the checker against a tsoracled built with a
# planted allocator bug must report violations (exit status 1), or the
# checker's silence above proves nothing. Each nemesis run finds free ports
# and names its namespaces after its own pid (scripts/nemesis.sh), so a
# run by hand beside make test does not disturb it.
nemesis_expect_violations() { # the nemesis.sh command, with its environment
	local out rc=0
	out=$(env "$@") || rc=$?
	grep -E '^(operations ok|violations|first violation|faults injected|backward grants)' <<<"$out"
	[ $rc -eq 1 ] && grep -Eq '^violations: [1-9]' <<<"$out"
}

# The monotonic bug (grants ignore the last value handed out), with no
# fault injected at all.
nemesis_control() {
	nemesis_expect_violations NEMESIS_DIR="$STAGE/nemesis-control" \
		SIDECAR_BIN="$STAGE/bin/tsoracled-broken-monotonic" scripts/nemesis.sh none 8 2
}

# The fence bug (a new leader's floor ignores H, the highest mark committed
# before it won), under clock-kill: the leader's clock jumps 4 s ahead, it
# is killed, and its successor, with a true clock, serves below what it
# handed out. Each PostgreSQL worker would refuse those grants (they are not
# above one it has received); nemesis.sh turns that refusal off (the
# developer setting tsoracle.refuse_backward_grants; it exits 2 if the
# installed tsoracle.so does not know it), so the checker sees the values.
# The first kill comes about 4 s into the run and the successor serves 2-3 s
# later, so 10 s leave it a few seconds of calls; the whole run takes 22-25 s.
nemesis_fence_control() {
	nemesis_expect_violations NEMESIS_DIR="$STAGE/nemesis-fence-control" \
		SIDECAR_BIN="$STAGE/bin/tsoracled-broken-fence" scripts/nemesis.sh clock-kill 10 2
}

# The lease, at process level (scripts/nemesis.sh partition-lease: before
# each cut, leadership goes to member 1, whose election timeout is 10 times
# the others', so that the cut-off leader goes on believing it leads while
# the others elect a successor). The real daemon, whose lease is shorter
# than any election timeout, must keep the order (the argument is in
# nemesis.sh); so must tsoracled-long-lease, whose 2.5 s lease outlasts the
# election (test/broken/long_lease.c), where only the new leader's wait
# keeps the order; and tsoracled-broken-lease, the same without the wait
# (test/broken/broken_lease.c), must show violations: the old leader's
# PostgreSQL clients get values below those its successor already handed
# out. 15 s: one cut of the leader planned (one or two made), 30-50 s each
# with start and stop.
#
# The real daemon runs it with members of different leases (member 1 at
# lease 2900 ms beside its 3 s election timeout, the others at the
# defaults: every member's configuration valid): raised to cluster version
# 3 first, where member 1's fence leaves its wait in the log, its
# successor waits it out and the order holds (include/tsoracle.h, I4);
# this run also covers the defaults' case it replaces (members 2 and 3
# lead at 200 ms, and every cut is member 1's). Its control,
# nemesis_mixed_lease_control, is the same cluster left at version 1,
# where a successor waits only its own 220 ms: violations.
nemesis_partition_lease() {
	NEMESIS_DIR=$STAGE/nemesis-lease NEMESIS_LEASE_1=2900 NEMESIS_RAISE=1 \
		scripts/nemesis.sh partition-lease 15 2
}
nemesis_mixed_lease_control() {
	nemesis_expect_violations NEMESIS_DIR="$STAGE/nemesis-mixed-lease-control" NEMESIS_LEASE_1=2900 \
		scripts/nemesis.sh partition-lease 15 2
}
nemesis_long_lease() {
	NEMESIS_DIR=$STAGE/nemesis-long-lease SIDECAR_BIN="$STAGE/bin/tsoracled-long-lease" \
		scripts/nemesis.sh partition-lease 15 2
}
nemesis_lease_control() {
	nemesis_expect_violations NEMESIS_DIR="$STAGE/nemesis-lease-control" \
		SIDECAR_BIN="$STAGE/bin/tsoracled-broken-lease" scripts/nemesis.sh partition-lease 15 2
}

# A run too short for the fault it plans (partition: one, 7 s nominal, in
# a 3 s run) injects none, and nemesis.sh must fail it as a run that tested
# too little (exit 3), not pass it.
nemesis_too_little_control() {
	local out rc=0
	out=$(NEMESIS_DIR=$STAGE/nemesis-too-little scripts/nemesis.sh partition 3 1) || rc=$?
	grep -E '^(faults injected|nemesis: the run)' <<<"$out"
	[ $rc -eq 3 ] && grep -Eq '^faults injected: 0 \(planned at least 1\)' <<<"$out"
}

# Positive controls of three libraft patches (test/test.mk, raft-controls):
# the pre-vote test, the InstallSnapshot leak test and the change index
# test, linked with a libraft built without their patches, must each fail.
raft_patch_controls() {
	local t out rc=0
	make --no-print-directory raft-controls >/dev/null || return 1
	for t in build/control/test_raft_prevote build/control/test_raft_snapshot_leak build/control/test_raft_change_index; do
		if out=$("$t" 2>&1); then
			echo "$t passed against libraft without its patch: it cannot catch the bug"
			rc=1
		else
			echo "$t failed, as it must:"
			grep -E '^\[  (FAILED|ERROR) |ERROR:|error:' <<<"$out" | head -n 3
		fi
	done
	return $rc
}

# ---- the sanitizers' suites of a plain make test (SANITIZE=1 runs every
# suite that way instead) ----
san_build() {
	make --no-print-directory SANITIZE=1 build
}

# The unit tests and the simulation, under ASan and UBSan; the simulation
# replays fewer schedules than the plain suite's (it runs about 8 times
# slower instrumented) and its planted-bug builds, controls of the
# simulation itself, run in the plain suite only.
san_unit() {
	TSO_SIM_SCHEDULES=${SAN_SIM_SCHEDULES:-300} unit build-san 'sim_broken_*'
}

# One multi-node TAP file with the instrumented daemon and tools: t/103's
# member catching up by snapshot is where libraft leaked
# (scripts/patches/raft-0.22.1-snapshot-busy-leak.patch), and every
# daemon a TAP file stops must exit cleanly (TsoracleTest).
san_tap() {
	as_pg mkdir -p "$STAGE/san"
	TAP_TESTDIR="$STAGE/san" TAP_CTL="$STAGE/bin/san/tsoracle-ctl" \
		run_prove "$STAGE/bin/san/tsoracled" t/103_catch_up.pl
}

[ -n "${SKIP_UNIT:-}" ] || suite "unit tests (cmocka${SANITIZE:+, ASan+UBSan})" unit
[ -n "$SANITIZE" ] || [ -n "${SKIP_SANITIZE:-}" ] || {
	suite "sanitizers: build (ASan+UBSan, build-san/)" san_build
	[ -n "${SKIP_UNIT:-}" ] || suite "sanitizers: unit tests and the simulation (${SAN_SIM_SCHEDULES:-300} schedules)" san_unit
}
[ -n "${SKIP_UNIT:-}" ] || suite "positive controls: libraft patches (pre-vote term, InstallSnapshot leak, change index)" raft_patch_controls
[ -n "${SKIP_UNIT:-}" ] || suite "alert rules (promtool)" alert_rules
# (the fuzz targets are built with the sanitizers either way)
[ -n "${SKIP_FUZZ:-}" ] || [ -n "$SANITIZE" ] || suite "fuzz targets, briefly (libFuzzer)" fuzz_brief
[ -n "${SKIP_EXAMPLES:-}" ] || suite "examples: kvd, the piggyback pattern, 3 replicas and 2 controls (~40 s)" \
	make --no-print-directory check-examples
first_pg=
for v in $pg_versions; do
	echo
	if ! scripts/deps.sh --no-apt --pg "$v"; then
		skipped=$((skipped + 1))
		echo "=== PostgreSQL $v: SKIPPED (not built, see above; PG=15 make test tests one version)"
		continue
	fi
	select_pg "$v" || { failed=$((failed + 1)); continue; }
	export PG
	first_pg=${first_pg:-$v}
	STAGE=$STAGE_BASE/pg$v
	mkdir -p "$STAGE"
	PG_LABEL=" [PostgreSQL $v]"
	suite "install and stage" stage
	[ -n "${SKIP_REGRESS:-}" ] || suite "pg_regress" regress
	if [ -z "${SKIP_TAP:-}" ]; then
		suite "TAP tests (prove)" tap
		# The daemon's own suites and controls: on the first version only
		# (tap_files says why).
		if [ "$v" = "$first_pg" ]; then
			suite "TAP tests as root (prove t/root, the daemon's local socket)" tap_root
			if [ -z "$SANITIZE" ] && [ -z "${SKIP_SANITIZE:-}" ] && [ -x build-san/tsoracled ]; then
				suite "sanitizers: TAP t/103_catch_up.pl (ASan+UBSan daemon and tools)" san_tap
			fi
			[ -z "${SKIP_CONTROLS:-}" ] || echo "(the TAP positive controls skipped: SKIP_CONTROLS)"
			[ -n "${SKIP_CONTROLS:-}" ] || case " ${TESTS:-t/110_fence_clock.pl} " in
			*" t/110_fence_clock.pl "*)
				suite "TAP positive control: t/110 against the fence-disabled build must fail" tap_fence_control
				;;
			esac
			[ -n "${SKIP_CONTROLS:-}" ] || case " ${TESTS:-t/111_clock_sanity.pl} " in
			*" t/111_clock_sanity.pl "*)
				suite "TAP positive control: t/111 against the clock-check-disabled build must fail" \
					tap_clock_control
				;;
			esac
			[ -n "${SKIP_CONTROLS:-}" ] || case " ${TESTS:-t/130_force_new_cluster.pl} " in
			*" t/130_force_new_cluster.pl "*)
				suite "TAP positive control: t/130 without the start floor must fail" \
					tap_startfloor_control t/130_force_new_cluster.pl
				;;
			esac
			[ -n "${SKIP_CONTROLS:-}" ] || case " ${TESTS:-t/131_restore_old_copy.pl} " in
			*" t/131_restore_old_copy.pl "*)
				suite "TAP positive control: t/131 without the start floor must fail" \
					tap_startfloor_control t/131_restore_old_copy.pl
				;;
			esac
			[ -n "${SKIP_CONTROLS:-}" ] || case " ${TESTS:-t/132_advance_to.pl} " in
			*" t/132_advance_to.pl "*)
				suite "TAP positive control: t/132 ignoring the operator's floor must fail" \
					tap_floor_control
				;;
			esac
			[ -n "${SKIP_CONTROLS:-}" ] || case " ${TESTS:-t/108_peer_flood.pl} " in
			*" t/108_peer_flood.pl "*)
				suite "TAP positive control: t/108 against a Raft gate with no room for members must fail" \
					tap_peergate_control
				;;
			esac
			[ -n "${SKIP_CONTROLS:-}" ] || case " ${TESTS:-t/112_membership.pl} " in
			*" t/112_membership.pl "*)
				suite "TAP positive control: t/112 with a member remove that does not refuse quorum loss must fail" \
					tap_quorum_control
				;;
			esac
			[ -n "${SKIP_CONTROLS:-}" ] || case " ${TESTS:-t/113_member_paths.pl} " in
			*" t/113_member_paths.pl "*)
				suite "TAP positive control: t/113 with a client port that admits a removed member's certificate must fail" \
					tap_membercert_control
				;;
			esac
		fi
		[ -n "${SKIP_CONTROLS:-}" ] || case " ${TESTS:-t/002_sidecar_down.pl} " in
		*" t/002_sidecar_down.pl "*)
			suite "TAP positive control: t/002 against an extension that ignores the generation must fail" \
				tap_generation_control
			;;
		esac
	fi
	PG_LABEL=
done
# The packages (root only: dpkg), on Debian's PostgreSQL 15.
if [ -z "${SKIP_DEB:-}" ] && [ "$(id -u)" -eq 0 ] && [ -z "${TESTS:-}" ]; then
	suite "Debian packages: make deb, dpkg -i, the unit's ExecStart, a timestamp, dpkg -r keeps the data" \
		scripts/test-deb.sh
fi
# The nemesis runs (nemesis.sh installs for $PG) on the first version.
if [ -n "$first_pg" ]; then select_pg "$first_pg" && export PG && STAGE=$STAGE_BASE/pg$first_pg; fi
if [ -z "${SKIP_NEMESIS:-}" ]; then
	suite "nemesis: partition of the leader (checker, 20 s)" nemesis_partition
	suite "nemesis: partition of the leader, multi-row statements (checker, 20 s)" nemesis_partition_statements
	suite "nemesis: clock-kill of the real daemon (checker, 10 s)" nemesis_clock_kill
	suite "nemesis: positive control (planted bug, 8 s)" nemesis_control
	suite "nemesis: positive control (fence disabled, clock-kill, 10 s)" nemesis_fence_control
	suite "nemesis: positive control (a run that injected nothing fails, 3 s)" nemesis_too_little_control
	suite "nemesis: partition-lease of the real daemon, member 1's lease 2900 ms, cluster version 3 (15 s)" \
		nemesis_partition_lease
	suite "nemesis: partition-lease, a lease longer than the election timeout, the wait kept (15 s)" \
		nemesis_long_lease
	suite "nemesis: positive control (the new leader skips the lease wait, partition-lease, 15 s)" \
		nemesis_lease_control
	suite "nemesis: positive control (member 1's lease 2900 ms at cluster version 1, partition-lease, 15 s)" \
		nemesis_mixed_lease_control
fi

echo
echo "suites: $passed passed, $failed failed, $skipped skipped ($SECONDS s in all)"
[ "$failed" -eq 0 ]
