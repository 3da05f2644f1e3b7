# shellcheck shell=bash
# Common settings for the rsvm build scripts. Sourced, not executed.
#
# Everything the project downloads or builds lives under $BUILD (ignored by
# git), so a second run is incremental and a fresh clone starts clean.

set -euo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$TOP/build}
DL=$BUILD/dl

# Pinned versions (see README "Pinned inputs").
# The kernel version is spelled here only; everything else derives it.
KVER=7.3.4
KSERIES=${KVER%.*}               # Debian's linux-source-$KSERIES package
KPKG_VERSION=${KPKG_VERSION:-$KVER-1~bpo13+1}
BINDGEN_VERSION=0.72.1
LIBCLANG_MIN=17
QEMU_MIN=10.1

KSRC=$BUILD/linux-$KVER          # pristine tree + overlay
KOUT=$BUILD/kbuild               # O= output directory
CHROOT=$BUILD/chroot             # trixie chroot that provides QEMU >= 10.1
TOOLS=$BUILD/tools               # bindgen, libclang, rust-src

msg() { printf '[rsvm] %s\n' "$*" >&2; }
die() { printf '[rsvm] error: %s\n' "$*" >&2; exit 1; }

# The Debian mirror the host already uses: we never name a mirror ourselves.
debian_mirror() {
	local m=""
	if [ -r /etc/apt/sources.list.d/debian.sources ]; then
		m=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources)
	fi
	if [ -z "$m" ] && [ -r /etc/apt/sources.list ]; then
		m=$(awk '$1 == "deb" && $2 !~ /security/ { print $2; exit }' /etc/apt/sources.list)
	fi
	[ -n "$m" ] || die "cannot find the host's Debian mirror in /etc/apt"
	printf '%s\n' "${m%/}"
}

# apt-get with a private configuration that knows trixie and trixie-backports.
# The host's own sources and state are never touched.
APTDIR=$BUILD/apt
apt_opts() {
	printf '%s\n' -o Dir::Etc::SourceList="$APTDIR/sources.list" \
		-o Dir::Etc::SourceParts=/dev/null \
		-o Dir::State::Lists="$APTDIR/lists" \
		-o Dir::Cache::Archives="$APTDIR/archives" \
		-o Dir::State::Status="$APTDIR/status" \
		-o APT::Architecture=amd64 \
		-o Debug::NoLocking=1 \
		-o APT::Sandbox::User=root
}
apt_private() {
	local opts
	mapfile -t opts < <(apt_opts)
	apt-get -q "${opts[@]}" "$@"
}
# Versions of PACKAGE the private sources offer, one a line, newest first.
apt_private_versions() {
	local opts
	mapfile -t opts < <(apt_opts)
	apt-cache "${opts[@]}" madison "$1" | awk -F'|' '{gsub(/ /, "", $2); print $2}'
}

apt_private_init() {
	mkdir -p "$APTDIR/lists/partial" "$APTDIR/archives/partial"
	[ -e "$APTDIR/status" ] || : >"$APTDIR/status"
	local m
	m=$(debian_mirror)
	cat >"$APTDIR/sources.list.new" <<EOS
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $m trixie main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $m trixie-backports main
EOS
	if ! cmp -s "$APTDIR/sources.list.new" "$APTDIR/sources.list" ||
		[ -z "$(find "$APTDIR/lists" -name '*Packages*' -mmin -1440 2>/dev/null | head -1)" ]; then
		mv "$APTDIR/sources.list.new" "$APTDIR/sources.list"
		apt_private update >/dev/null
	else
		rm -f "$APTDIR/sources.list.new"
	fi
}

# "stamp NAME" succeeds when the work named NAME is done for the given key.
stamp_ok() { [ -f "$BUILD/stamps/$1" ] && [ "$(cat "$BUILD/stamps/$1")" = "${2:-done}" ]; }
stamp_set() { mkdir -p "$BUILD/stamps"; printf '%s' "${2:-done}" >"$BUILD/stamps/$1"; }
