#!/usr/bin/env bash
# Installs what tsoracle needs to build and test on Debian 12, and builds
# libraft 0.22.1 from Debian 13's source package into a cache outside the
# clone (docs/building.md). Idempotent: a second run checks and returns
# quickly, and a clone made on a machine that built the cache once finds it.
#
# Usage: scripts/deps.sh [--no-apt] [--pg N]...
#   --no-apt        only build libraft (assume the Debian packages are present)
#   --pg N          also build PostgreSQL N (17 or 18) from Debian's source
#                   package into the cache, unless it is there (15 is
#                   Debian 12's own package: nothing to build)
#   --raft-prefix   print where libraft is (or will be) installed, build nothing
#   --pg-bindir N   print PostgreSQL N's bindir if it is installed or built
#                   (exit status 1 if not), build nothing
#   --pg-versions   print the major versions installed from Debian's packages
#                   or built into the cache, one a line, build nothing
#
# Environment:
#   TSO_DEPS_DIR     the cache (default /var/cache/tsoracle-deps)
#   TSO_RAFT_CFLAGS  libraft's compiler flags (default "-O2 -fPIC -g"); a
#                    sanitizer build passes its own and gets its own directory
#   TSO_RAFT_OMIT_PATCHES  names of scripts/patches/ files not to apply: the
#                    positive controls of the patches' tests (Makefile,
#                    raft-controls) build a libraft without them, in its
#                    own directory
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
deps_dir=${TSO_DEPS_DIR:-/var/cache/tsoracle-deps}
raft_version=0.22.1
raft_debian_version=$raft_version-1
raft_cflags=${TSO_RAFT_CFLAGS:--O2 -fPIC -g}
raft_omit=${TSO_RAFT_OMIT_PATCHES:-}

packages=(
	build-essential pkg-config autoconf automake libtool
	libuv1-dev liblz4-dev libcmocka-dev libssl-dev openssl
	postgresql-15 postgresql-server-dev-15 postgresql-client-15
	libpq-dev libipc-run-perl libio-socket-ssl-perl dpkg-dev iproute2 procps patch jq
	clang libclang-rt-14-dev
	libicu-dev libreadline-dev zlib1g-dev libzstd-dev libxml2-dev libxslt1-dev uuid-dev
	bison flex debhelper postgresql-server-dev-all help2man
	# the metrics endpoint (sidecar/metrics.h), and promtool, which checks its
	# text and docs/alerts.yml (Debian ships promtool only in prometheus,
	# which also installs and enables the Prometheus server's unit)
	libmicrohttpd-dev prometheus
	# scripts/test-deb.sh checks the packages with it
	lintian
)

log() { printf 'deps: %s\n' "$*" >&2; }

need_root() {
	if [ "$(id -u)" -ne 0 ]; then
		log "missing packages: $*"
		log "run as root (or: sudo apt-get install $*)"
		exit 1
	fi
}

install_packages() {
	local missing=()
	for p in "${packages[@]}"; do
		if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
			missing+=("$p")
		fi
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	need_root "${missing[@]}"
	log "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	# Debian's postgresql-common creates a "main" cluster on install; tests
	# and the demo use scratch clusters of their own, so it is not started.
}

# The directory of one libraft build, named after what makes it differ:
# the version, a digest of our patches (scripts/patches/raft-*.patch) and
# one of the compiler flags. Builds with other patches or flags (another
# clone, a sanitizer build) live beside it; a new patch builds anew.
# The patches applied: all of scripts/patches/raft-VERSION-*.patch but
# those named in TSO_RAFT_OMIT_PATCHES.
raft_patches() {
	local p
	for p in "$here"/scripts/patches/raft-"$raft_version"-*.patch; do
		[ -f "$p" ] || continue
		case " $raft_omit " in *" $(basename "$p") "*) continue ;; esac
		echo "$p"
	done
}

raft_prefix() {
	local patches flags
	patches=$(raft_patches | while read -r p; do cat "$p"; done | md5sum | cut -c1-12)
	flags=$(printf '%s' "$raft_cflags" | md5sum | cut -c1-8)
	echo "$deps_dir/raft-$raft_version-p$patches-f$flags"
}

# The cache must be writable to fill it; say so, and which setting moves it.
cache_dir_ready() {
	if ! mkdir -p "$deps_dir" 2>/dev/null || [ ! -w "$deps_dir" ]; then
		log "cannot write the dependency cache $deps_dir"
		log "run once as root, or set TSO_DEPS_DIR to a directory you can write"
		exit 1
	fi
}

# apt_source SUITE DIR PACKAGE[=VERSION]: downloads a Debian source package
# into DIR through a private sources list (deb-src for SUITE only) and
# package lists under the cache: the system's apt configuration and lists
# are left untouched.
apt_source() {
	local suite=$1 dest=$2 pkg=$3 apt_dir=$deps_dir/apt/$1 uri=http://deb.debian.org/debian
	case $suite in *-security) uri=http://deb.debian.org/debian-security ;; esac
	mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$dest"
	cat >"$apt_dir/src.sources" <<SRC
Types: deb-src
URIs: $uri
Suites: $suite
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
	local apt_opts=(-o "Dir::Etc::sourcelist=$apt_dir/src.sources"
		-o Dir::Etc::sourceparts=/dev/null
		-o "Dir::State::Lists=$apt_dir/lists"
		-o "Dir::Cache=$apt_dir/cache"
		-o APT::Sandbox::User=root)
	apt-get "${apt_opts[@]}" -qq update
	(cd "$dest" && apt-get "${apt_opts[@]}" -qq source --download-only "$pkg" >/dev/null)
}

# with_cache_lock CMD...: runs CMD holding the cache's lock, so that two
# clones (or two make runs) filling it at once build each thing once and
# never see a half-built directory.
with_cache_lock() {
	exec {lock_fd}>"$deps_dir/.lock"
	flock "$lock_fd"
	"$@"
	local rc=$?
	exec {lock_fd}>&-
	return $rc
}

build_raft_locked() {
	local prefix=$1
	[ -f "$prefix/lib/libraft.a" ] && return 0 # built while we waited
	log "building libraft $raft_version into $prefix"
	local start=$SECONDS
	local src=$deps_dir/src
	if [ ! -f "$src/raft_$raft_version.orig.tar.gz" ]; then
		apt_source trixie "$src" "raft=$raft_debian_version"
	fi
	# A clean tree in a scratch directory beside the result, then our
	# patches; installed there and renamed into place only when complete.
	local tmp
	tmp=$(mktemp -d "$deps_dir/.build.XXXXXX")
	# $tmp expanded now: the local is gone when a failure ends the script.
	# shellcheck disable=SC2064
	trap "rm -rf '$tmp'" EXIT
	(cd "$tmp" && tar xf "$src/raft_$raft_version.orig.tar.gz")
	for p in $(raft_patches); do
		log "applying $(basename "$p")"
		patch -s -d "$tmp/raft-$raft_version" -p1 <"$p"
	done
	(
		cd "$tmp/raft-$raft_version"
		[ -x configure ] || autoreconf -i >/dev/null 2>&1
		./configure --quiet --prefix="$prefix" --enable-static --disable-shared \
			--disable-example --disable-benchmark \
			CFLAGS="$raft_cflags" >/dev/null
		nice -n 10 make -s -j"$make_jobs" >/dev/null 2>&1
		make -s install DESTDIR="$tmp/dest" >/dev/null
	)
	# What flags and patches this is, for people reading the cache.
	{
		echo "libraft $raft_version (Debian source $raft_debian_version)"
		echo "CFLAGS: $raft_cflags"
		for p in $(raft_patches); do
			echo "patch: $(basename "$p") $(md5sum <"$p" | cut -c1-12)"
		done
		[ -z "$raft_omit" ] || echo "omitted (a positive control's build): $raft_omit"
	} >"$tmp/dest$prefix/BUILD-INFO"
	chmod -R a+rX "$tmp/dest$prefix"
	mv -T "$tmp/dest$prefix" "$prefix"
	rm -rf "$tmp"
	trap - EXIT
	log "libraft $raft_version ready ($((SECONDS - start)) s)"
}

build_raft() {
	local prefix
	prefix=$(raft_prefix)
	[ -f "$prefix/lib/libraft.a" ] && return 0
	cache_dir_ready
	with_cache_lock build_raft_locked "$prefix"
}

# ---- PostgreSQL 17 and 18 from Debian's source packages ------------------
# Debian 12 has only PostgreSQL 15. 17 is trixie's (Debian 13), 18 sid's.
# Built with Debian's patches but one (50-per-version-dirs: it fixes the
# library directory at /usr/lib/postgresql/N/lib; ours is the cache, so
# the installation stays relocatable) and the two that only touch
# configure.ac (filter-debug-prefix-map, autoconf2.69: configure is shipped
# generated, and rerunning autoconf is what they are for). Configured with
# only what the tests need of it: OpenSSL (Debian's server has it, and the
# extension's TLS runs in the same process), the TAP framework, Debian's
# port and time zones; none of the libraries only other features use (ICU,
# libxml, libxslt, lz4, zstd, uuid), no debugging symbols (-g costs a
# fifth of the compile time). Built and installed: pg_build_dirs, below.
pg_source_majors="17 18" # the versions pg_suites knows
pg_suites() { # where Debian has the source of major version $1
	case $1 in
	17) echo "trixie trixie-security" ;;
	18) echo "sid" ;;
	*) return 1 ;;
	esac
}
pg_skip_patches="50-per-version-dirs.patch filter-debug-prefix-map autoconf2.69"
pg_configure_flags=(
	--with-openssl --without-icu --with-pgport=5432
	--with-system-tzdata=/usr/share/zoneinfo --enable-tap-tests
)
pg_cflags="-O2"
# What is built and installed, in this order: src/Makefile's SUBDIRS but
# ECPG (src/interfaces/ecpg) and the isolation tester, the one procedural
# language configured (plpgsql, which initdb installs), and of contrib
# only dblink (the tests' one module). That is the server and what initdb
# loads (conversion procedures, snowball), libpq and every client program
# (the TAP framework runs initdb, pg_ctl, psql, pg_basebackup, pgbench,
# pg_config ...), the headers and makefiles PGXS builds the extension with
# (src/include, src/makefiles, config, and src/Makefile's install-local),
# pg_regress and the TAP framework's Perl modules. No documentation.
pg_build_dirs=(
	src/common src/port src/timezone src/backend src/backend/utils/mb/conversion_procs
	src/backend/snowball src/include src/interfaces/libpq
	src/backend/replication/libpqwalreceiver src/backend/replication/pgoutput
	src/fe_utils src/bin src/pl/plpgsql src/makefiles src/test/regress src/test/perl
	config contrib/dblink
)
# Both builds' parallelism: every core (CI's machine may have more than 2).
make_jobs=$(nproc 2>/dev/null || echo 2)

# The source package's directory of sources (downloaded once).
pg_src_dir() { echo "$deps_dir/src/postgresql-$1"; }

# The directory of one PostgreSQL build, named after the Debian version
# and a digest of the options and the patches left out.
pg_prefix() { # major version; prints nothing if the source is not here yet
	local dsc ver flags
	dsc=$(ls "$(pg_src_dir "$1")"/postgresql-"$1"_*.dsc 2>/dev/null | sort -V | tail -n1)
	[ -n "$dsc" ] || return 0
	ver=$(sed -n 's/^Version: //p' "$dsc")
	flags=$(printf '%s ' "${pg_configure_flags[@]}" "$pg_cflags" "$pg_skip_patches" "${pg_build_dirs[@]}" |
		md5sum | cut -c1-8)
	echo "$deps_dir/postgresql-$ver-f$flags"
}

pg_bindir() { # the bindir of major version $1, if it is installed or built
	local prefix
	if [ "$1" = 15 ]; then
		prefix=/usr/lib/postgresql/15
	else
		prefix=$(pg_prefix "$1")
	fi
	[ -n "$prefix" ] && [ -x "$prefix/bin/pg_config" ] && echo "$prefix/bin"
}

pg_versions() { # installed from Debian's packages, or built into the cache
	local c v
	{
		for c in /usr/lib/postgresql/*/bin/pg_config; do
			[ -x "$c" ] && basename "$(dirname "$(dirname "$c")")"
		done
		# (a version not built is no error: || :)
		for v in $pg_source_majors; do pg_bindir "$v" >/dev/null && echo "$v" || :; done
	} | sort -un
}

build_pg_locked() {
	local major=$1 src prefix suite dsc tmp p start=$SECONDS
	src=$(pg_src_dir "$major")
	if [ -z "$(pg_prefix "$major")" ]; then
		for suite in $(pg_suites "$major"); do
			log "fetching postgresql-$major's source package from $suite"
			apt_source "$suite" "$src" "postgresql-$major" && break
			rm -f "$src"/postgresql-"$major"_* # a partial download
		done
	fi
	prefix=$(pg_prefix "$major")
	if [ -z "$prefix" ]; then
		log "postgresql-$major: Debian's source package could not be fetched (suites: $(pg_suites "$major"))"
		return 1
	fi
	[ -x "$prefix/bin/pg_config" ] && return 0 # built while we waited
	dsc=$(ls "$src"/postgresql-"$major"_*.dsc | sort -V | tail -n1)
	log "building PostgreSQL from $(basename "$dsc") into $prefix (nice, -j$make_jobs; 3-5 min on 2 cores)"
	tmp=$(mktemp -d "$deps_dir/.build.XXXXXX")
	# $tmp expanded now: the local is gone when a failure ends the script.
	# shellcheck disable=SC2064
	trap "rm -rf '$tmp'" EXIT
	# (apt checked the files against the suite's signed index)
	dpkg-source --skip-patches -x "$dsc" "$tmp/src" >"$tmp/dpkg-source.log" 2>&1 ||
		{ cat "$tmp/dpkg-source.log"; return 1; }
	while read -r p; do
		case $p in '' | '#'*) continue ;; esac
		case " $pg_skip_patches " in *" $p "*) continue ;; esac
		patch -s -d "$tmp/src" -p1 <"$tmp/src/debian/patches/$p" || { log "patch $p failed"; return 1; }
	done <"$tmp/src/debian/patches/series"
	# (called where set -e does not hold: each step checks)
	(
		cd "$tmp/src"
		./configure --quiet --prefix="$prefix" "${pg_configure_flags[@]}" \
			--with-extra-version=" (tsoracle build of Debian $(sed -n 's/^Version: //p' "$dsc"))" \
			CFLAGS="$pg_cflags" >"$tmp/configure.log" 2>&1 || { tail -n 30 "$tmp/configure.log"; exit 1; }
		# The generated headers (errcodes.h, ...) first: a make in one of
		# the directories below makes them only when it is the top-level
		# make, and under `make deps` it is not (MAKELEVEL is inherited).
		nice -n 10 make -s -C src/backend generated-headers >>"$tmp/make.log" 2>&1 ||
			{ tail -n 40 "$tmp/make.log"; exit 1; }
		for d in "${pg_build_dirs[@]}"; do
			nice -n 10 make -s -j"$make_jobs" -C "$d" >>"$tmp/make.log" 2>&1 || { tail -n 40 "$tmp/make.log"; exit 1; }
		done
		for d in "${pg_build_dirs[@]}"; do
			make -s -C "$d" install DESTDIR="$tmp/dest" >>"$tmp/make.log" 2>&1 || { tail -n 40 "$tmp/make.log"; exit 1; }
		done
		make -s -C src install-local DESTDIR="$tmp/dest" >>"$tmp/make.log" 2>&1 || { tail -n 40 "$tmp/make.log"; exit 1; }
	) || { log "building PostgreSQL $major failed"; return 1; }
	{
		echo "PostgreSQL from Debian source $(basename "$dsc")"
		echo "configure: ${pg_configure_flags[*]} CFLAGS=$pg_cflags"
		echo "built and installed: ${pg_build_dirs[*]}"
		echo "Debian patches left out: $pg_skip_patches"
	} >"$tmp/dest$prefix/BUILD-INFO"
	chmod -R a+rX "$tmp/dest$prefix"
	mv -T "$tmp/dest$prefix" "$prefix"
	rm -rf "$tmp"
	trap - EXIT
	log "PostgreSQL $major ready in $prefix ($((SECONDS - start)) s)"
}

build_pg() {
	[ "$1" = 15 ] && return 0 # Debian 12's package (install_packages)
	pg_suites "$1" >/dev/null || { log "PostgreSQL $1: only 15, 17 and 18 are supported"; return 1; }
	pg_bindir "$1" >/dev/null && return 0
	cache_dir_ready
	with_cache_lock build_pg_locked "$1"
}

apt=1
pgs=()
while [ $# -gt 0 ]; do
	case $1 in
	--raft-prefix)
		raft_prefix
		exit 0
		;;
	--pg-bindir)
		pg_bindir "$2"
		exit
		;;
	--pg-versions)
		pg_versions
		exit 0
		;;
	--no-apt) apt= ;;
	--pg)
		pgs+=("$2")
		shift
		;;
	*)
		log "unknown argument: $1 (see the usage at the top of $0)"
		exit 2
		;;
	esac
	shift
done
[ -z "$apt" ] || install_packages
build_raft
rc=0
for v in "${pgs[@]}"; do build_pg "$v" || rc=1; done
exit $rc
