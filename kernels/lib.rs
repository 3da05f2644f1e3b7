// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! Compute kernels for the rsvm GPU, written in C (`kernels/src/`, see
//! `kernels/rsvm_kernel.h` for the calling convention) and built for the
//! model-private RV64IMA engine by `scripts/kernel-cc.sh`. Each constant is
//! a flat image whose entry point is at offset 0; load it anywhere the GPU
//! can fetch from and launch it there.

include!(concat!(env!("OUT_DIR"), "/kernels.rs"));
