#!/usr/bin/env bash
# Install what building and booting rsvm needs on a fresh Debian 12 machine:
# host build packages, the kernel source, rust-src matching the host rustc,
# bindgen, libclang and a trixie chroot with QEMU >= 10.1.
# Idempotent: each step is skipped once done.
. "$(dirname "$0")/common.sh"

mkdir -p "$BUILD" "$DL" "$TOOLS"

HOST_PKGS="flex bison bc libelf-dev libssl-dev cpio busybox-static debootstrap rsync kmod xz-utils unzip python3 clang-14 lld-14"

host_packages() {
	local missing=()
	for p in $HOST_PKGS; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return
	msg "installing host packages: ${missing[*]}"
	[ "$(id -u)" -eq 0 ] || die "need root to apt-get install ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get -q update >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get -q install -y --no-install-recommends "${missing[@]}" >/dev/null
}

# Linux source from Debian's linux-source-$KSERIES (trixie-backports).
kernel_source() {
	if stamp_ok kernel-src "$KPKG_VERSION"; then return; fi
	apt_private_init
	local ver=$KPKG_VERSION
	if ! apt_private_versions "linux-source-$KSERIES" | grep -qxF "$ver"; then
		ver=$(apt_private_versions "linux-source-$KSERIES" | sort -V | tail -1)
		[ -n "$ver" ] || die "linux-source-$KSERIES is not served by the archive"
		msg "WARNING: linux-source-$KSERIES=$KPKG_VERSION is gone; using $ver"
	fi
	msg "downloading linux-source-$KSERIES=$ver"
	(cd "$DL" && apt_private download "linux-source-$KSERIES=$ver" >/dev/null)
	local deb
	deb=$(ls "$DL"/linux-source-"${KSERIES}"_*.deb | head -1)
	rm -rf "$DL/ksrc-unpack" && mkdir -p "$DL/ksrc-unpack"
	dpkg-deb -x "$deb" "$DL/ksrc-unpack"
	local tarball
	tarball=$(ls "$DL"/ksrc-unpack/usr/src/linux-source-"$KSERIES".tar.* | head -1)
	mv "$tarball" "$DL/"
	rm -rf "$DL/ksrc-unpack" "$deb"
	stamp_set kernel-src "$KPKG_VERSION"
}

# rust-src of exactly the host rustc's version, for RUST_LIB_SRC.
rust_src() {
	local rv
	rv=$(rustc --version | awk '{print $2}')
	if stamp_ok rust-src "$rv" && [ -d "$TOOLS/rust-src/library/core" ]; then return; fi
	apt_private_init
	local dver
	dver=$(apt_private_versions rust-src |
		while read -r v; do case "$v" in "$rv"+*|"$rv"-*) echo "$v";; esac; done | sort -V | tail -1)
	[ -n "$dver" ] || die "no Debian rust-src for rustc $rv"
	msg "downloading rust-src=$dver"
	rm -rf "$DL/rust-src" && mkdir -p "$DL/rust-src"
	(cd "$DL/rust-src" && apt_private download "rust-src=$dver" >/dev/null)
	dpkg-deb -x "$DL"/rust-src/rust-src_*.deb "$DL/rust-src/x"
	rm -rf "$TOOLS/rust-src"
	# rustlib/src/rust is a symlink to /usr/src/rustc-VERSION in the package.
	mv "$DL"/rust-src/x/usr/src/rustc-* "$TOOLS/rust-src"
	rm -rf "$DL/rust-src"
	stamp_set rust-src "$rv"
}

bindgen() {
	if [ -x "$TOOLS/bindgen/bin/bindgen" ] &&
		"$TOOLS/bindgen/bin/bindgen" --version | grep -q " $BINDGEN_VERSION"; then return; fi
	msg "building bindgen-cli $BINDGEN_VERSION"
	cargo install --quiet --locked --root "$TOOLS/bindgen" "bindgen-cli@$BINDGEN_VERSION"
}

libclang() {
	if stamp_ok libclang && [ -e "$TOOLS/libclang/native/libclang.so" ]; then return; fi
	msg "fetching the libclang wheel (>= $LIBCLANG_MIN)"
	rm -rf "$DL/libclang" "$TOOLS/libclang" && mkdir -p "$DL/libclang"
	python3 -m pip download -q --no-deps --only-binary=:all: -d "$DL/libclang" "libclang>=$LIBCLANG_MIN"
	unzip -q -o "$DL"/libclang/libclang-*.whl -d "$DL/libclang/x"
	local so
	so=$(find "$DL/libclang/x" -name libclang.so | head -1)
	[ -n "$so" ] || die "the libclang wheel has no libclang.so"
	mkdir -p "$TOOLS/libclang"
	mv "$(dirname "$so")" "$TOOLS/libclang/native"
	rm -rf "$DL/libclang"
	stamp_set libclang
}

# QEMU >= 10.1 (vfio-user-pci) lives in a trixie chroot: trixie binaries
# need a newer glibc than the host's and must not be installed on it.
qemu_chroot() {
	if stamp_ok chroot-qemu && [ -x "$CHROOT/usr/bin/qemu-system-x86_64" ]; then return; fi
	"$TOP/scripts/chroot.sh" umount
	local m
	m=$(debian_mirror)
	if [ ! -x "$CHROOT/usr/bin/apt-get" ]; then
		msg "debootstrap trixie into $CHROOT"
		# A half-made chroot from an interrupted run: only plain files, unmounted above.
		[ -d "$CHROOT" ] && rm -rf --one-file-system "$CHROOT"
		debootstrap --variant=minbase trixie "$CHROOT" "$m" >"$BUILD/debootstrap.log" 2>&1 ||
			die "debootstrap failed, see $BUILD/debootstrap.log"
	fi
	printf 'deb %s trixie main\ndeb %s trixie-backports main\n' "$m" "$m" >"$CHROOT/etc/apt/sources.list"
	"$TOP/scripts/chroot.sh" mount
	msg "installing qemu-system-x86 from trixie-backports in the chroot"
	chroot "$CHROOT" env DEBIAN_FRONTEND=noninteractive apt-get -q update >/dev/null
	chroot "$CHROOT" env DEBIAN_FRONTEND=noninteractive apt-get -q install -y \
		--no-install-recommends -t trixie-backports qemu-system-x86 >/dev/null
	chroot "$CHROOT" apt-get clean
	local qv
	qv=$(chroot "$CHROOT" qemu-system-x86_64 --version | awk 'NR==1 {print $4}')
	[ "$(printf '%s\n%s\n' "$QEMU_MIN" "$qv" | sort -V | head -1)" = "$QEMU_MIN" ] ||
		die "QEMU $qv in the chroot is older than $QEMU_MIN"
	msg "QEMU $qv ready"
	stamp_set chroot-qemu
}

case "${1:-all}" in
all)
	host_packages
	kernel_source
	rust_src
	libclang
	bindgen
	qemu_chroot
	;;
*) "$1" ;;
esac
