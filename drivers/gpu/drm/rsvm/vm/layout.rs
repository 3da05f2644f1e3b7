// SPDX-License-Identifier: GPL-2.0

//! The layout of every GPU virtual address space, in one place.
//!
//! ```text
//!  2^49 +-----------------------------+  VA_BITS: GMMU v2, five levels
//!       |  (nothing: above the CPU's  |
//!       |   user address space)       |
//!  2^47 +-----------------------------+  SVM_VA_LIMIT
//!       |                             |
//!       |  SVM: GPU VA == CPU VA of   |  bound ranges mirror the process
//!       |  the owning process         |  (hmm), faulted in on demand
//!       |                             |
//! 0xff_ffff_ffff +--------------------+  top of 40 bits: GPFIFO and
//!       |  kernel window, 4 GiB:      |  semaphore addresses reach it
//!       |  2 MiB per channel id       |
//!       |  (ring, fence, pushbuffers),|  privileged PTEs: user work
//!       |  never bindable             |  cannot touch it
//! 0xff_0000_0000 +--------------------+  KERNEL_VA_START
//!       |  SVM                        |
//!     0 +-----------------------------+
//! ```
//!
//! The kernel window sits inside the CPU's user range, so binding a range
//! that overlaps it is refused (`EINVAL`); the process may still map CPU
//! memory there, the GPU just cannot see it.

use crate::{
    fifo::{
        self,
        channel::KernelWindow, //
    },
    mmu::{
        self,
        PageSize, //
    }, //
};

/// Virtual address bits of a GPU address space.
pub(crate) const VA_BITS: u32 = mmu::VA_BITS;

/// Page sizes the GMMU maps, as a mask of sizes.
pub(crate) const PAGE_SIZES: u64 =
    PageSize::Small.bytes() | PageSize::Big.bytes() | PageSize::Huge.bytes();

/// SVM ranges must end at or below this address (the x86-64 and arm64
/// 4-level user address space).
pub(crate) const SVM_VA_LIMIT: u64 = 1 << 47;

/// GPU virtual addresses the kernel keeps for channel rings and fences:
/// the top 4 GiB of the 40-bit range that GPFIFO and semaphore addresses
/// can reach.
pub(crate) const KERNEL_VA_START: u64 = 0xff_0000_0000;
/// Size of the kernel's window.
pub(crate) const KERNEL_VA_SIZE: u64 = 1 << 32;
/// Each channel id owns this much of the window.
pub(crate) const CHANNEL_VA_STRIDE: u64 = 2 << 20;

/// The kernel window as channels see it.
pub(crate) const CHANNEL_WINDOW: KernelWindow = KernelWindow {
    start: KERNEL_VA_START,
    stride: CHANNEL_VA_STRIDE,
};

const _: () = assert!(KERNEL_VA_START + KERNEL_VA_SIZE <= 1 << 40);
// Every channel id has a window, and it holds the channel's buffers.
const _: () = assert!(fifo::NUM_CHANNELS as u64 * CHANNEL_VA_STRIDE <= KERNEL_VA_SIZE);
const _: () = assert!(CHANNEL_VA_STRIDE >= fifo::channel::WINDOW_BYTES);
const _: () = assert!(SVM_VA_LIMIT <= 1 << VA_BITS);

/// Whether `[start, end)` overlaps the kernel window.
pub(crate) const fn overlaps_kernel_window(start: u64, end: u64) -> bool {
    start < KERNEL_VA_START + KERNEL_VA_SIZE && end > KERNEL_VA_START
}
