#!/usr/bin/env bash
# Installs what tsoracle needs to build and test on Debian 12, and builds
# libraft 0.22.1 from Debian 13's source package into a cache outside the
# clone (docs/building.md). Idempotent: a second run checks and returns
# quickly, and a clone made on a machine that built the cache once finds it.
#
# Usage: scripts/deps.sh [--no-apt]
#   --no-apt        only build libraft (assume the Debian packages are present)
#   --raft-prefix   print where libraft is (or will be) installed, build nothing
#
# Environment:
#   TSO_DEPS_DIR     the cache (default /var/cache/tsoracle-deps)
#   TSO_RAFT_CFLAGS  libraft's compiler flags (default "-O2 -fPIC -g"); a
#                    sanitizer build passes its own and gets its own directory
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
deps_dir=${TSO_DEPS_DIR:-/var/cache/tsoracle-deps}
raft_version=0.22.1
raft_debian_version=$raft_version-1
raft_cflags=${TSO_RAFT_CFLAGS:--O2 -fPIC -g}

packages=(
	build-essential pkg-config autoconf automake libtool
	libuv1-dev liblz4-dev libcmocka-dev libssl-dev openssl
	postgresql-15 postgresql-server-dev-15 postgresql-client-15
	libpq-dev libipc-run-perl libio-socket-ssl-perl dpkg-dev iproute2 procps patch jq
	clang libclang-rt-14-dev
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
raft_prefix() {
	local patches flags
	patches=$(cat "$here"/scripts/patches/raft-"$raft_version"-*.patch 2>/dev/null | md5sum | cut -c1-12)
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
	local suite=$1 dest=$2 pkg=$3 apt_dir=$deps_dir/apt/$1
	mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$dest"
	cat >"$apt_dir/src.sources" <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
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
	local src=$deps_dir/src
	if [ ! -f "$src/raft_$raft_version.orig.tar.gz" ]; then
		apt_source trixie "$src" "raft=$raft_debian_version"
	fi
	# A clean tree in a scratch directory beside the result, then our
	# patches; installed there and renamed into place only when complete.
	local tmp
	tmp=$(mktemp -d "$deps_dir/.build.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	(cd "$tmp" && tar xf "$src/raft_$raft_version.orig.tar.gz")
	for p in "$here"/scripts/patches/raft-"$raft_version"-*.patch; do
		[ -f "$p" ] || continue
		log "applying $(basename "$p")"
		patch -s -d "$tmp/raft-$raft_version" -p1 <"$p"
	done
	(
		cd "$tmp/raft-$raft_version"
		[ -x configure ] || autoreconf -i >/dev/null 2>&1
		./configure --quiet --prefix="$prefix" --enable-static --disable-shared \
			--disable-example --disable-benchmark \
			CFLAGS="$raft_cflags" >/dev/null
		nice -n 10 make -s -j2 >/dev/null 2>&1
		make -s install DESTDIR="$tmp/dest" >/dev/null
	)
	# What flags and patches this is, for people reading the cache.
	{
		echo "libraft $raft_version (Debian source $raft_debian_version)"
		echo "CFLAGS: $raft_cflags"
		for p in "$here"/scripts/patches/raft-"$raft_version"-*.patch; do
			[ -f "$p" ] && echo "patch: $(basename "$p") $(md5sum <"$p" | cut -c1-12)"
		done
	} >"$tmp/dest$prefix/BUILD-INFO"
	chmod -R a+rX "$tmp/dest$prefix"
	mv -T "$tmp/dest$prefix" "$prefix"
	rm -rf "$tmp"
	trap - EXIT
	log "libraft $raft_version ready"
}

build_raft() {
	local prefix
	prefix=$(raft_prefix)
	[ -f "$prefix/lib/libraft.a" ] && return 0
	cache_dir_ready
	with_cache_lock build_raft_locked "$prefix"
}

case "${1:-}" in
--raft-prefix)
	raft_prefix
	exit 0
	;;
--no-apt) ;;
*) install_packages ;;
esac
build_raft
