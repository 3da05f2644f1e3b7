//! Physical memory as the GPU addresses it: local video memory, or system
//! memory reached by DMA (coherent or not; the model treats both alike).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::dma::DmaMap;
use crate::vram::Vram;

/// Where a physical address points. The numbering differs between PDEs,
/// PTEs, instance-block pointers and copy-engine modes; each decoder maps its
/// own encoding onto this.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Aperture {
    /// Local video memory (VRAM).
    Video,
    /// System memory, coherent.
    SysCoherent,
    /// System memory, non-coherent.
    SysNonCoherent,
}

impl Aperture {
    /// Whether this is system memory.
    pub fn is_sysmem(self) -> bool {
        !matches!(self, Self::Video)
    }
}

/// A physical address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PhysAddr {
    pub aperture: Aperture,
    pub addr: u64,
}

impl PhysAddr {
    pub const fn vid(addr: u64) -> Self {
        Self {
            aperture: Aperture::Video,
            addr,
        }
    }

    pub const fn sys(addr: u64) -> Self {
        Self {
            aperture: Aperture::SysCoherent,
            addr,
        }
    }

    /// The address `off` bytes further on.
    pub fn offset(self, off: u64) -> Self {
        Self {
            addr: self.addr.wrapping_add(off),
            ..self
        }
    }
}

/// An access to memory that does not exist (outside VRAM, or guest memory
/// that QEMU has not mapped for DMA).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemError {
    pub at: PhysAddr,
    pub len: u64,
}

/// What the engines read and write.
pub trait PhysMem: Sync {
    fn read(&self, at: PhysAddr, buf: &mut [u8]) -> Result<(), MemError>;
    fn write(&self, at: PhysAddr, buf: &[u8]) -> Result<(), MemError>;

    fn read_u32(&self, at: PhysAddr) -> Result<u32, MemError> {
        let mut b = [0; 4];
        self.read(at, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn read_u64(&self, at: PhysAddr) -> Result<u64, MemError> {
        let mut b = [0; 8];
        self.read(at, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn write_u32(&self, at: PhysAddr, v: u32) -> Result<(), MemError> {
        self.write(at, &v.to_le_bytes())
    }

    fn write_u64(&self, at: PhysAddr, v: u64) -> Result<(), MemError> {
        self.write(at, &v.to_le_bytes())
    }

    /// Copies `len` bytes from `src` to `dst` (which must not overlap).
    fn copy(&self, src: PhysAddr, dst: PhysAddr, len: usize) -> Result<(), MemError> {
        bounce_copy(self, src, dst, len)
    }

    /// Atomically replaces the `size`-byte (4 or 8) value at `at` (aligned
    /// to `size`) with `f(old)`; returns the old value.
    fn atomic_update(
        &self,
        at: PhysAddr,
        size: u64,
        f: &mut dyn FnMut(u64) -> u64,
    ) -> Result<u64, MemError>;
}

/// A copy through a bounce buffer, for memories with no direct path.
fn bounce_copy<M: PhysMem + ?Sized>(
    mem: &M,
    src: PhysAddr,
    dst: PhysAddr,
    len: usize,
) -> Result<(), MemError> {
    let mut buf = vec![0u8; len.min(1 << 16)];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(buf.len());
        mem.read(src.offset(done as u64), &mut buf[..n])?;
        mem.write(dst.offset(done as u64), &buf[..n])?;
        done += n;
    }
    Ok(())
}

/// Applies `f` to the `size`-byte lane at `at` inside a 64-bit atomic word.
fn update_lane(word: &AtomicU64, at: u64, size: u64, f: &mut dyn FnMut(u64) -> u64) -> u64 {
    let shift = (at & 7) * 8;
    let mask = if size == 8 {
        u64::MAX
    } else {
        ((1u64 << (size * 8)) - 1) << shift
    };
    let mut cur = word.load(Ordering::SeqCst);
    loop {
        let old = (cur & mask) >> shift;
        let new = (cur & !mask) | ((f(old) << shift) & mask);
        match word.compare_exchange_weak(cur, new, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => return old,
            Err(x) => cur = x,
        }
    }
}

/// The GPU's memory: its VRAM plus the guest RAM QEMU shares.
pub struct GpuMem<'a> {
    pub vram: &'a Vram,
    pub dma: &'a DmaMap,
}

impl PhysMem for GpuMem<'_> {
    fn read(&self, at: PhysAddr, buf: &mut [u8]) -> Result<(), MemError> {
        let err = MemError {
            at,
            len: buf.len() as u64,
        };
        if at.aperture.is_sysmem() {
            self.dma.read(at.addr, buf).map_err(|_| err)
        } else {
            self.vram.read(at.addr, buf).map_err(|_| err)
        }
    }

    fn write(&self, at: PhysAddr, buf: &[u8]) -> Result<(), MemError> {
        let err = MemError {
            at,
            len: buf.len() as u64,
        };
        if at.aperture.is_sysmem() {
            self.dma.write(at.addr, buf).map_err(|_| err)
        } else {
            self.vram.write(at.addr, buf).map_err(|_| err)
        }
    }

    fn copy(&self, src: PhysAddr, dst: PhysAddr, len: usize) -> Result<(), MemError> {
        // One memcpy between the two mappings, whichever they are.
        let serr = MemError {
            at: src,
            len: len as u64,
        };
        let derr = MemError {
            at: dst,
            len: len as u64,
        };
        match (src.aperture.is_sysmem(), dst.aperture.is_sysmem()) {
            (true, false) => self
                .vram
                .with_slice(dst.addr, len, |d| {
                    self.dma.read(src.addr, d).map_err(|_| serr)
                })
                .map_err(|_| derr)?,
            (false, true) => self
                .vram
                .with_slice(src.addr, len, |s| {
                    self.dma.write(dst.addr, s).map_err(|_| derr)
                })
                .map_err(|_| serr)?,
            (false, false) => {
                let s = self
                    .vram
                    .with_slice(src.addr, len, |s| s.as_ptr())
                    .map_err(|_| serr)?;
                self.vram
                    .with_slice(dst.addr, len, |d| {
                        // SAFETY: both ranges are inside VRAM (checked);
                        // `ptr::copy` allows them to overlap.
                        unsafe { std::ptr::copy(s, d.as_mut_ptr(), len) }
                    })
                    .map_err(|_| derr)
            }
            (true, true) => bounce_copy(self, src, dst, len),
        }
    }

    fn atomic_update(
        &self,
        at: PhysAddr,
        size: u64,
        f: &mut dyn FnMut(u64) -> u64,
    ) -> Result<u64, MemError> {
        let err = MemError { at, len: size };
        if !(size == 4 || size == 8) || !at.addr.is_multiple_of(size) {
            return Err(err);
        }
        let word = at.addr & !7;
        if at.aperture.is_sysmem() {
            self.dma
                .atomic64(word, |w| update_lane(w, at.addr, size, f))
                .map_err(|_| err)
        } else {
            self.vram
                .atomic64(word, |w| update_lane(w, at.addr, size, f))
                .map_err(|_| err)
        }
    }
}

#[cfg(test)]
pub mod testing {
    //! Memory for host-side tests: VRAM plus a "guest RAM" memfd mapped for
    //! DMA at guest-physical 0.
    use super::*;

    pub struct TestMem {
        pub vram: Vram,
        pub dma: DmaMap,
        _ram: Vram,
    }

    impl TestMem {
        pub fn new(vram: u64, sys: u64) -> Self {
            let ram = Vram::new(sys).unwrap();
            let dma = DmaMap::default();
            dma.map(0, sys, ram.file(), 0).unwrap();
            Self {
                vram: Vram::new(vram).unwrap(),
                dma,
                _ram: ram,
            }
        }

        pub fn mem(&self) -> GpuMem<'_> {
            GpuMem {
                vram: &self.vram,
                dma: &self.dma,
            }
        }
    }
}
