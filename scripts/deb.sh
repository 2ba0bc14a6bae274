#!/usr/bin/env bash
# make deb: the Debian packages (debian/), built with dpkg-buildpackage
# from a copy of the checkout in build/deb/tsoracle-VERSION, so that the .debs land in
# build/deb/: postgresql-NN-tsoracle for each PostgreSQL version of
# debian/pgversions installed from Debian's packages or built into
# scripts/deps.sh's cache (PostgreSQL 17 and 18 on Debian 12), and
# tsoracled (daemon, ctl, man pages, systemd unit). libraft comes from
# that cache too (docs/building.md, "Packages").
set -euo pipefail
cd "$(dirname "$0")/.."

out=build/deb
ver=$(dpkg-parsechangelog -l debian/changelog -S Version)
src=$out/tsoracle-$ver
rm -rf "$out"
mkdir -p "$src"
# The checkout's files (tracked, and new ones not ignored), not its build.
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$src"
else
	tar --exclude=./build --exclude=./.git -cf - . | tar -C "$src" -xf -
fi
# pg_buildext builds for the versions postgresql-common supports: here,
# every one there is (debian/rules picks Debian's server or the cache's).
# debian/control gets a package for each, as `pg_buildext updatecontrol`
# makes it (the checked-in one is Debian 12's: 15 only).
PG_SUPPORTED_VERSIONS=$(scripts/deps.sh --pg-versions | xargs)
export PG_SUPPORTED_VERSIONS
echo "deb: PostgreSQL $PG_SUPPORTED_VERSIONS"
(cd "$src" && pg_buildext updatecontrol && dpkg-buildpackage -b -us -uc >../build.log 2>&1) || {
	tail -n 40 "$out/build.log"
	echo "deb: dpkg-buildpackage failed (log: $out/build.log)" >&2
	exit 1
}
rm -rf "$src"
ls -1 "$out"/*.deb
