// SPDX-License-Identifier: GPL-2.0

//! Driver-owned memory the GPU reads and writes.
//!
//! Page tables, instance blocks, USERD, GPFIFO rings, pushbuffers, fences and
//! fault buffers all live in DMA-coherent system memory (aperture "system
//! coherent"): the CPU writes them directly, and VRAM stays free for the
//! process's data. The GPU and the CPU share these buffers while both run, so
//! every access is a single volatile load or store of an aligned word.

use core::ptr;

use kernel::{
    device::{Bound, Device},
    dma::Coherent,
    prelude::*,
};

/// A zeroed, page-aligned, DMA-coherent buffer of 64-bit words.
pub(crate) struct DmaBuf {
    buf: Coherent<[u64]>,
}

impl DmaBuf {
    /// Allocates `size` bytes (rounded up to whole words), zeroed.
    pub(crate) fn new(dev: &Device<Bound>, size: usize) -> Result<Self> {
        let words = size.div_ceil(8);
        Ok(Self {
            buf: Coherent::zeroed_slice(dev, words, GFP_KERNEL)?,
        })
    }

    /// The device (bus) address of the first byte.
    pub(crate) fn addr(&self) -> u64 {
        self.buf.dma_address()
    }

    /// Size in bytes.
    pub(crate) fn size(&self) -> usize {
        self.buf.len() * 8
    }

    /// A pointer to the `T` at byte `off`, if it lies inside the buffer and
    /// is naturally aligned.
    fn slot<T>(&self, off: usize) -> Option<*mut T> {
        let size = core::mem::size_of::<T>();
        if off % size != 0 || off.checked_add(size)? > self.size() {
            return None;
        }
        // SAFETY: `off + size` is inside the allocation, checked above.
        Some(unsafe { self.buf.as_mut_ptr().cast::<u8>().add(off) }.cast::<T>())
    }

    /// Reads the 64-bit word at byte `off` (0 if out of range).
    pub(crate) fn read64(&self, off: usize) -> u64 {
        // SAFETY: `slot` returns an aligned pointer into the live allocation;
        // the device may write the word concurrently, hence volatile.
        self.slot::<u64>(off)
            .map_or(0, |p| unsafe { ptr::read_volatile(p) })
    }

    /// Writes the 64-bit word at byte `off` (ignored if out of range).
    pub(crate) fn write64(&self, off: usize, v: u64) {
        if let Some(p) = self.slot::<u64>(off) {
            // SAFETY: as in `read64`.
            unsafe { ptr::write_volatile(p, v) };
        }
    }

    /// Reads the 32-bit word at byte `off` (0 if out of range).
    pub(crate) fn read32(&self, off: usize) -> u32 {
        // SAFETY: as in `read64`.
        self.slot::<u32>(off)
            .map_or(0, |p| unsafe { ptr::read_volatile(p) })
    }

    /// Writes the 32-bit word at byte `off` (ignored if out of range).
    pub(crate) fn write32(&self, off: usize, v: u32) {
        if let Some(p) = self.slot::<u32>(off) {
            // SAFETY: as in `read64`.
            unsafe { ptr::write_volatile(p, v) };
        }
    }
}
