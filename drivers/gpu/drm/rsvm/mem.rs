// SPDX-License-Identifier: GPL-2.0

//! Driver-owned memory the GPU reads and writes.
//!
//! Page tables, instance blocks, USERD, GPFIFO rings, pushbuffers, fences,
//! the runlist and the fault buffers all live in DMA-coherent system memory
//! (aperture "system coherent"): the CPU writes them directly, and VRAM
//! stays free for the process's data. The GPU and the CPU share these
//! buffers while both run, so every access is one volatile load or store of
//! an aligned word (`io_read!`/`io_write!` on the [`Coherent`] array): a
//! 64-bit entry (a PTE, a GPFIFO entry, a fence) is never torn.
//!
//! What each word holds is defined once, by the unit that owns the format
//! (`mmu/pte.rs`, `fifo/channel.rs`, `fault.rs`), with `bitfield!` types.

use kernel::{
    device::{
        Bound,
        Device, //
    },
    dma::{
        Coherent,
        CoherentIoBackend, //
    },
    io::{
        io_read,
        io_write,
        IoCapable, //
    },
    prelude::*,
    transmute::{
        AsBytes,
        FromBytes, //
    }, //
};

/// `N` words of type `W` of zeroed, page-aligned, DMA-coherent memory.
pub(crate) struct DevMem<W, const N: usize> {
    mem: Coherent<[W; N]>,
}

impl<W, const N: usize> DevMem<W, N>
where
    W: AsBytes + FromBytes + Copy,
    CoherentIoBackend: IoCapable<W>,
{
    /// Size in bytes.
    pub(crate) const SIZE: usize = N * core::mem::size_of::<W>();

    /// Allocates the words, zeroed.
    pub(crate) fn new(dev: &Device<Bound>) -> Result<Self> {
        Ok(Self {
            mem: Coherent::zeroed(dev, GFP_KERNEL)?,
        })
    }

    /// The device (bus) address of the first byte.
    pub(crate) fn addr(&self) -> u64 {
        self.mem.dma_address()
    }

    /// Where the GPU sees these words: their address and size.
    pub(crate) fn span(&self) -> (u64, usize) {
        (self.addr(), Self::SIZE)
    }

    /// Word `i`. An index out of range is a driver bug, as with a slice.
    pub(crate) fn get(&self, i: usize) -> W {
        io_read!(&self.mem, [panic: i])
    }

    /// Writes word `i`. An index out of range is a driver bug.
    pub(crate) fn set(&self, i: usize, v: W) {
        io_write!(&self.mem, [panic: i], v)
    }
}

/// A page of 64-bit words.
pub(crate) type Qwords = DevMem<u64, 512>;
/// A page of 32-bit words.
pub(crate) type Dwords = DevMem<u32, 1024>;
