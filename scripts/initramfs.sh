#!/usr/bin/env bash
# Build the guest's initramfs: busybox, our static test binaries, the
# kernel's hmm-tests, and the kernel modules. Output: build/initramfs.cpio
. "$(dirname "$0")/common.sh"

[ -f "$BUILD/bzImage" ] || die "no kernel (run scripts/kernel.sh)"
HDR=$BUILD/hdr/include
GUEST=$BUILD/guest
mkdir -p "$GUEST"

CFLAGS=(-O2 -g -Wall -Wextra -Werror -Wno-unused-parameter -static -D_GNU_SOURCE
	-I"$TOP/igt-tests/lib" -isystem "$HDR")

# Rebuild a binary only when a source is newer than it.
cc_static() {
	local out=$1
	shift
	local src newer=0
	for src in "$@" "$TOP"/igt-tests/lib/*.h "$HDR/drm/rsvm_drm.h"; do
		[ "$src" -nt "$out" ] && newer=1
	done
	[ -x "$out" ] && [ $newer -eq 0 ] && return
	msg "cc $(basename "$out")"
	gcc "${CFLAGS[@]}" -o "$out" "$@"
}

LIB=("$TOP/igt-tests/lib/igt_core.c" "$TOP/igt-tests/lib/rsvm.c")
for t in "$TOP"/igt-tests/rsvm_*.c; do
	cc_static "$GUEST/$(basename "$t" .c)" "$t" "${LIB[@]}"
done
cc_static "$GUEST/rsvm-info" "$TOP/tools/rsvm-info.c" "$TOP/igt-tests/lib/rsvm.c"
cc_static "$GUEST/rsvm-demo" "$TOP/tools/rsvm-demo.c" "$TOP/igt-tests/lib/rsvm.c"

# The Rust userspace library's programs, static like the C ones (the guest
# has no libc); the target triple keeps build scripts dynamic.
TRIPLE=x86_64-unknown-linux-gnu
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --quiet -p rsvm --bins \
	--target $TRIPLE --manifest-path "$TOP/Cargo.toml"
RSBIN=${CARGO_TARGET_DIR:-$BUILD/target}/$TRIPLE/release
cp "$RSBIN/rsvm_rust" "$GUEST/rsvm_rust"
cp "$RSBIN/rsvm-faultbench" "$GUEST/rsvm-faultbench"

# Compute kernels for the GPU's RV64IMA engine, loaded by the tests.
mkdir -p "$GUEST/kernels"
for k in "$TOP"/kernels/src/*.c; do
	out=$GUEST/kernels/$(basename "$k" .c).bin
	if [ ! -f "$out" ] || [ "$k" -nt "$out" ] || [ "$TOP/kernels/rsvm_kernel.h" -nt "$out" ]; then
		msg "kernel-cc $(basename "$k")"
		"$TOP/scripts/kernel-cc.sh" "$k" "$out"
	fi
done

# The kernel's own HMM selftest, unmodified, from the pinned tree.
MM=$KSRC/tools/testing/selftests/mm
if [ ! -x "$GUEST/hmm-tests" ] || [ "$MM/hmm-tests.c" -nt "$GUEST/hmm-tests" ]; then
	msg "cc hmm-tests"
	(cd "$MM" && gcc -Wall -O2 -static -D_GNU_SOURCE= -U_FORTIFY_SOURCE \
		-I "$KSRC" -I "$KSRC/tools/testing/selftests" \
		-isystem "$KSRC/tools/include/uapi" \
		hmm-tests.c vm_util.c hugepage_settings.c -lrt -lpthread -lm -o "$GUEST/hmm-tests")
fi

ROOT=$BUILD/initramfs
rm -rf "$ROOT"
mkdir -p "$ROOT"/{bin,sbin,etc,proc,sys,dev,tmp,tests,usr/bin,usr/sbin}
cp /bin/busybox "$ROOT/bin/busybox"
# Applet links, so /init's #!/bin/sh resolves before anything runs.
for a in $(/bin/busybox --list-full); do
	[ -e "$ROOT/$a" ] || ln -s /bin/busybox "$ROOT/$a"
done
cp "$TOP/guest/init" "$ROOT/init"
chmod +x "$ROOT/init"
cp "$GUEST"/rsvm_* "$GUEST/hmm-tests" "$ROOT/tests/"
cp "$GUEST/rsvm-info" "$GUEST/rsvm-demo" "$GUEST/rsvm-faultbench" "$ROOT/bin/"
cp -a "$BUILD/modroot/lib" "$ROOT/"
mkdir -p "$ROOT/lib/rsvm/kernels"
cp "$GUEST"/kernels/*.bin "$ROOT/lib/rsvm/kernels/"
# The firmware image the driver loads (request_firmware looks in /lib/firmware).
FWBUILD=${CARGO_TARGET_DIR:-$BUILD/target}/release/rsvm-fwbuild
[ -x "$FWBUILD" ] || die "no rsvm-fwbuild (build the crates first)"
mkdir -p "$ROOT/lib/firmware/rsvm"
"$FWBUILD" "$ROOT/lib/firmware/rsvm/gv100-model.bin"
(cd "$ROOT" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) >"$BUILD/initramfs.cpio.new"
mv "$BUILD/initramfs.cpio.new" "$BUILD/initramfs.cpio"
msg "initramfs: $(du -h "$BUILD/initramfs.cpio" | cut -f1)"
