#!/usr/bin/env bash
# Installs what tsoracle needs to build and test on Debian 12, and builds
# libraft 0.22.1 from Debian 13's source package into a project-local prefix
# (docs/building.md). Idempotent: a second run checks and returns quickly.
#
# Usage: scripts/deps.sh [--no-apt]
#   --no-apt  only build libraft (assume the Debian packages are present)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
deps_dir=${TSO_DEPS_DIR:-$here/.deps}
prefix=$deps_dir/prefix
raft_version=0.22.1
raft_debian_version=$raft_version-1

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

build_raft() {
	# The build is marked with the version and a digest of our patches
	# (scripts/patches/raft-*.patch), so a new patch rebuilds it.
	local patches marker
	patches=$(cat "$here"/scripts/patches/raft-"$raft_version"-*.patch 2>/dev/null | md5sum | cut -c1-12)
	marker=$prefix/.raft-$raft_version-$patches
	if [ -f "$prefix/lib/libraft.a" ] && [ -f "$marker" ]; then
		return 0
	fi
	log "building libraft $raft_version into $prefix"
	local apt_dir=$deps_dir/apt
	mkdir -p "$apt_dir/lists/partial" "$deps_dir/src"
	# A private sources list for Debian 13 source packages only: the system's
	# apt configuration and package lists are left untouched.
	cat > "$apt_dir/trixie-src.sources" <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
	local apt_opts=(-o "Dir::Etc::sourcelist=$apt_dir/trixie-src.sources"
		-o Dir::Etc::sourceparts=/dev/null
		-o "Dir::State::Lists=$apt_dir/lists"
		-o "Dir::Cache=$apt_dir/cache"
		-o APT::Sandbox::User=root)
	mkdir -p "$apt_dir/cache/archives/partial"
	if [ ! -f "$deps_dir/src/raft_$raft_version.orig.tar.gz" ]; then
		apt-get "${apt_opts[@]}" -qq update
		(cd "$deps_dir/src" && apt-get "${apt_opts[@]}" -qq source --download-only "raft=$raft_debian_version" >/dev/null)
	fi
	# A clean tree each time, then our patches.
	rm -rf "$deps_dir/src/raft-$raft_version"
	(cd "$deps_dir/src" && tar xf raft_"$raft_version".orig.tar.gz)
	for p in "$here"/scripts/patches/raft-"$raft_version"-*.patch; do
		[ -f "$p" ] || continue
		log "applying $(basename "$p")"
		patch -s -d "$deps_dir/src/raft-$raft_version" -p1 <"$p"
	done
	(
		cd "$deps_dir/src/raft-$raft_version"
		[ -x configure ] || autoreconf -i >/dev/null 2>&1
		./configure --quiet --prefix="$prefix" --enable-static --disable-shared \
			--disable-example --disable-benchmark \
			CFLAGS="-O2 -fPIC -g" >/dev/null
		make -s -j"$(nproc)" >/dev/null 2>&1
		make -s install >/dev/null
	)
	rm -f "$prefix"/.raft-*
	touch "$marker"
	log "libraft $raft_version ready"
}

if [ "${1:-}" != "--no-apt" ]; then
	install_packages
fi
build_raft
