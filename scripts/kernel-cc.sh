#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# kernel-cc.sh SRC.c OUT.bin: builds an rsvm compute kernel (kernels/) into
# a flat RV64IMA image whose entry point is at offset 0.
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
src=$1 out=$2
CC=${RSVM_KERNEL_CC:-clang-14}
LD=${RSVM_KERNEL_LD:-ld.lld-14}
command -v "$CC" >/dev/null || { echo "kernel-cc: $CC not found (scripts/setup-host.sh installs it)" >&2; exit 1; }
obj=$(mktemp --suffix=.o)
trap 'rm -f "$obj"' EXIT
# rv64ima: the engine has no compressed instructions. medany + no
# relaxation + no jump tables keep the image position independent.
"$CC" --target=riscv64-unknown-elf -march=rv64ima -mabi=lp64 -mcmodel=medany \
	-mno-relax -O2 -ffreestanding -fno-builtin -fno-jump-tables -fno-pic \
	-fno-stack-protector -fno-asynchronous-unwind-tables -nostdlib \
	-Wall -Wextra -Werror -I"$TOP/kernels" -c "$src" -o "$obj"
"$LD" -T "$TOP/kernels/kernel.ld" --oformat=binary -o "$out" "$obj"
