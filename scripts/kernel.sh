#!/usr/bin/env bash
# Build the guest kernel with the rsvm overlay.
#
#   kernel.sh prepare   unpack the pinned tree, apply kernel/patches, sync the overlay
#   kernel.sh config    (re)make .config from tinyconfig + kernel/guest.config
#   kernel.sh build     bzImage + modules, installed under build/modroot
#   kernel.sh clippy    lint the driver with clippy (also: CLIPPY=1 kernel.sh)
#   kernel.sh all       all three (the default)
#
# Incremental: the tree is unpacked once, patches are re-applied only when they
# change, and overlay files are copied only when their content differs, so
# editing the driver rebuilds rsvm.ko and not the kernel.
. "$(dirname "$0")/common.sh"

export RUST_LIB_SRC=$TOOLS/rust-src/library
export BINDGEN=$TOOLS/bindgen/bin/bindgen
export LIBCLANG_PATH=$TOOLS/libclang/native
KMAKE=(make -s -C "$KSRC" O="$KOUT" ARCH=x86_64 BINDGEN="$BINDGEN" -j"$(nproc)")

tree() {
	local tarball=$DL/linux-source-$KSERIES.tar.xz
	[ -f "$tarball" ] || die "no kernel source (run scripts/setup-host.sh)"
	if stamp_ok kernel-tree "$KPKG_VERSION" && [ -f "$KSRC/Makefile" ]; then return; fi
	msg "unpacking Linux $KVER"
	rm -rf "$KSRC" "$BUILD/kpatch" "$BUILD/stamps/kernel-patches" "$BUILD/linux-x"
	mkdir -p "$BUILD/linux-x"
	tar -C "$BUILD/linux-x" -xf "$tarball"
	mv "$BUILD"/linux-x/linux-source-"$KSERIES" "$KSRC"
	rmdir "$BUILD/linux-x"
	local v
	v=$(make -s -C "$KSRC" kernelversion)
	[ "$v" = "$KVER" ] || msg "WARNING: the tree is Linux $v, not the pinned $KVER"
	stamp_set kernel-tree "$KPKG_VERSION"
}

# Files a patch touches, one a line.
patch_files() { sed -n 's|^+++ b/||p' "$@" | sort -u; }

patches() {
	local sum
	sum=$(cat "$TOP"/kernel/patches/*.patch | sha256sum | cut -d' ' -f1)
	stamp_ok kernel-patches "$sum" && return
	local orig=$BUILD/kpatch/orig f
	# Put back the pristine copies of whatever the previous series touched.
	if [ -d "$orig" ]; then
		while read -r f; do
			if [ -f "$orig/$f" ]; then cp -p "$orig/$f" "$KSRC/$f"; else rm -f "$KSRC/$f"; fi
		done < <(cd "$orig" && cat .files)
	fi
	rm -rf "$orig" && mkdir -p "$orig"
	patch_files "$TOP"/kernel/patches/*.patch >"$orig/.files"
	while read -r f; do
		[ -f "$KSRC/$f" ] || continue
		mkdir -p "$orig/$(dirname "$f")"
		cp -p "$KSRC/$f" "$orig/$f"
	done <"$orig/.files"
	for p in "$TOP"/kernel/patches/*.patch; do
		msg "applying $(basename "$p")"
		patch -s -p1 -d "$KSRC" --no-backup-if-mismatch <"$p" || die "$(basename "$p") does not apply"
	done
	stamp_set kernel-patches "$sum"
}

# Copy SRC to DST only when the content differs: kbuild then sees a new mtime
# exactly for the files that changed.
sync_file() {
	cmp -s "$1" "$2" && return
	mkdir -p "$(dirname "$2")"
	cp "$1" "$2"
}

sync_dir() {
	local src=$1 dst=$2 f
	[ -d "$src" ] || return 0
	(cd "$src" && find . -type f ! -name '*.patch' ! -name '.*') | while read -r f; do
		sync_file "$src/$f" "$dst/$f"
	done
	# Files removed from the overlay disappear from the tree too.
	[ -d "$dst" ] && [ "$3" = delete ] && (cd "$dst" && find . -type f) | while read -r f; do
		[ -e "$src/$f" ] || rm -f "$dst/$f"
	done
	return 0
}

overlay() {
	sync_dir "$TOP/drivers/gpu/drm/rsvm" "$KSRC/drivers/gpu/drm/rsvm" delete
	sync_file "$TOP/Kconfig" "$KSRC/drivers/gpu/drm/rsvm/Kconfig"
	sync_file "$TOP/uapi/rsvm_drm.h" "$KSRC/include/uapi/drm/rsvm_drm.h"
	sync_dir "$TOP/rust" "$KSRC/rust" keep
}

prepare() {
	tree
	patches
	overlay
}

config() {
	local sum
	sum=$(cat "$TOP/kernel/guest.config" "$TOP/Kconfig" "$TOP"/kernel/patches/*.patch | sha256sum | cut -d' ' -f1)
	if stamp_ok kernel-config "$sum" && [ -f "$KOUT/.config" ]; then return; fi
	msg "configuring (tinyconfig + kernel/guest.config)"
	mkdir -p "$KOUT"
	"${KMAKE[@]}" rustavailable >/dev/null || die "the Rust toolchain is not usable for the kernel"
	"${KMAKE[@]}" tinyconfig >/dev/null
	(cd "$KOUT" && "$KSRC/scripts/kconfig/merge_config.sh" -m -O "$KOUT" .config "$TOP/kernel/guest.config" >/dev/null)
	"${KMAKE[@]}" olddefconfig >/dev/null
	# Every symbol of the fragment must have kept its value.
	local bad=0 line sym val
	while read -r line; do
		case "$line" in CONFIG_*=*) ;; *) continue ;; esac
		sym=${line%%=*} val=${line#*=}
		if [ "$val" = n ]; then
			grep -q "^$sym=" "$KOUT/.config" && { msg "config: $sym should be unset"; bad=1; }
		else
			grep -qx "$sym=$val" "$KOUT/.config" || { msg "config: $sym=$val did not stick"; bad=1; }
		fi
	done <"$TOP/kernel/guest.config"
	[ $bad -eq 0 ] || die "kernel configuration is incomplete"
	stamp_set kernel-config "$sum"
}

build() {
	msg "building the kernel and modules"
	"${KMAKE[@]}" bzImage modules
	rm -rf "$BUILD/modroot.new"
	"${KMAKE[@]}" INSTALL_MOD_PATH="$BUILD/modroot.new" INSTALL_MOD_STRIP=1 modules_install
	rm -rf "$BUILD/modroot" && mv "$BUILD/modroot.new" "$BUILD/modroot"
	"${KMAKE[@]}" INSTALL_HDR_PATH="$BUILD/hdr" headers_install
	cp "$KOUT/arch/x86/boot/bzImage" "$BUILD/bzImage"
}

# Lint the driver with clippy; fails on any warning. Kbuild only honours
# CLIPPY from its command line, and only the driver's directory is rebuilt.
clippy() {
	local out
	# Recompile what this project wrote, so its warnings always show.
	touch "$KSRC"/drivers/gpu/drm/rsvm/rsvm_drv.rs
	(cd "$TOP" && find rust -name '*.rs') | while read -r f; do touch "$KSRC/$f"; done
	out=$("${KMAKE[@]}" CLIPPY=1 drivers/gpu/drm/rsvm/ 2>&1) || { echo "$out"; die "clippy build failed"; }
	if grep -q 'warning' <<<"$out"; then
		echo "$out"
		die "clippy: warnings in the driver or the kernel-crate additions"
	fi
	msg "clippy: the driver and the kernel-crate additions are clean"
}

case "${1:-all}" in
all)
	prepare
	config
	build
	if [ -n "${CLIPPY:-}" ]; then clippy; fi
	;;
prepare | config | build | clippy) "$1" ;;
*) die "usage: $0 [prepare|config|build|clippy|all]" ;;
esac
