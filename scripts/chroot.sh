#!/usr/bin/env bash
# Mount or unmount what the QEMU chroot needs. Safe to call repeatedly.
. "$(dirname "$0")/common.sh"

is_mnt() { mountpoint -q "$1" 2>/dev/null; }

case "${1:-}" in
mount)
	[ -d "$CHROOT" ] || die "no chroot at $CHROOT (run scripts/setup-host.sh)"
	mkdir -p "$CHROOT/proc" "$CHROOT/dev" "$CHROOT/sys" "$CHROOT/run/rsvm"
	is_mnt "$CHROOT/proc" || mount -t proc proc "$CHROOT/proc"
	is_mnt "$CHROOT/sys" || mount -t sysfs sys "$CHROOT/sys"
	is_mnt "$CHROOT/dev" || mount --bind /dev "$CHROOT/dev"
	# Runtime files (sockets, images, logs) are shared through run/rsvm.
	mkdir -p "$BUILD/run"
	is_mnt "$CHROOT/run/rsvm" || mount --bind "$BUILD/run" "$CHROOT/run/rsvm"
	;;
umount)
	[ -d "$CHROOT" ] || exit 0
	for m in run/rsvm dev/pts dev sys proc; do
		if is_mnt "$CHROOT/$m"; then umount "$CHROOT/$m" || umount -l "$CHROOT/$m"; fi
	done
	;;
*)
	echo "usage: $0 mount|umount" >&2
	exit 2
	;;
esac
