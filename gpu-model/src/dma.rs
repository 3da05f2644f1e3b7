//! Guest memory as the device sees it: the DMA windows QEMU maps.
//!
//! QEMU sends `DMA_MAP` with the memfd of each shared guest RAM block; the
//! model maps it and resolves guest-physical (bus) addresses through this
//! table. Any access outside a mapped window is refused, never guessed.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::AtomicU64;
use std::sync::RwLock;

struct Window {
    gpa: u64,
    size: u64,
    host: *mut u8,
}

// SAFETY: a window is a MAP_SHARED mapping of guest RAM, valid until unmapped
// under the table's write lock.
unsafe impl Send for Window {}
// SAFETY: see `Send`.
unsafe impl Sync for Window {}

impl Drop for Window {
    fn drop(&mut self) {
        // SAFETY: `host`/`size` describe the mapping made in `map`.
        unsafe { libc::munmap(self.host.cast(), self.size as usize) };
    }
}

/// The device's view of guest memory.
#[derive(Default)]
pub struct DmaMap {
    windows: RwLock<Vec<Window>>,
}

/// A DMA access that no window covers.
#[derive(Debug, PartialEq, Eq)]
pub struct DmaFault {
    pub addr: u64,
    pub len: u64,
}

impl DmaMap {
    /// Maps `size` bytes of `file` at `offset` as guest address `gpa`.
    pub fn map(&self, gpa: u64, size: u64, file: &File, offset: u64) -> io::Result<()> {
        // SAFETY: mapping a descriptor QEMU handed us; failure is checked.
        let host = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                offset as libc::off_t,
            )
        };
        if host == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let mut w = self.windows.write().expect("DMA table poisoned");
        w.retain(|x| x.gpa + x.size <= gpa || gpa + size <= x.gpa);
        w.push(Window {
            gpa,
            size,
            host: host.cast(),
        });
        Ok(())
    }

    /// Removes every window inside `[gpa, gpa + size)`.
    pub fn unmap(&self, gpa: u64, size: u64) {
        let end = gpa.saturating_add(size);
        let mut w = self.windows.write().expect("DMA table poisoned");
        w.retain(|x| !(x.gpa >= gpa && x.gpa + x.size <= end));
    }

    /// Removes every window.
    pub fn clear(&self) {
        self.windows.write().expect("DMA table poisoned").clear();
    }

    /// Number of mapped windows.
    pub fn len(&self) -> usize {
        self.windows.read().expect("DMA table poisoned").len()
    }

    /// Whether nothing is mapped.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn with<R>(&self, addr: u64, len: u64, f: impl FnOnce(*mut u8) -> R) -> Result<R, DmaFault> {
        let w = self.windows.read().expect("DMA table poisoned");
        let end = addr.checked_add(len).ok_or(DmaFault { addr, len })?;
        let win = w
            .iter()
            .find(|x| addr >= x.gpa && end <= x.gpa + x.size)
            .ok_or(DmaFault { addr, len })?;
        // SAFETY: the window covers `[addr, end)` and stays mapped while the
        // read lock is held.
        Ok(f(unsafe { win.host.add((addr - win.gpa) as usize) }))
    }

    /// Runs `op` on the 64-bit word at `addr` (8-byte aligned) as a host
    /// atomic, so it is atomic against the guest CPU too (TCG implements
    /// guest atomics with host atomics on the same shared memory).
    pub fn atomic64<R>(&self, addr: u64, op: impl FnOnce(&AtomicU64) -> R) -> Result<R, DmaFault> {
        if !addr.is_multiple_of(8) {
            return Err(DmaFault { addr, len: 8 });
        }
        self.with(addr, 8, |p| {
            // SAFETY: `with` resolved 8 mapped bytes; `addr` (and so `p`,
            // since windows are page-aligned) is 8-byte aligned.
            op(unsafe { AtomicU64::from_ptr(p.cast()) })
        })
    }

    /// Reads guest memory.
    pub fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), DmaFault> {
        self.with(addr, buf.len() as u64, |p| {
            // SAFETY: `with` resolved a host range of `buf.len()` bytes.
            unsafe { std::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), buf.len()) }
        })
    }

    /// Writes guest memory.
    pub fn write(&self, addr: u64, buf: &[u8]) -> Result<(), DmaFault> {
        self.with(addr, buf.len() as u64, |p| {
            // SAFETY: `with` resolved a host range of `buf.len()` bytes.
            unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr(), p, buf.len()) }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vram::Vram;

    #[test]
    fn resolves_only_mapped_windows() {
        // Any memfd will do as "guest RAM".
        let ram = Vram::new(2 << 20).unwrap();
        let dma = DmaMap::default();
        dma.map(0x10_0000, 1 << 20, ram.file(), 1 << 20).unwrap();
        dma.write(0x10_0010, b"dma!").unwrap();
        let mut b = [0u8; 4];
        ram.read((1 << 20) + 0x10, &mut b).unwrap();
        assert_eq!(&b, b"dma!");
        assert_eq!(
            dma.read(0xf_fffe, &mut b),
            Err(DmaFault {
                addr: 0xf_fffe,
                len: 4
            })
        );
        assert!(dma.read(0x1f_fffe, &mut b).is_err(), "straddles the end");
        dma.unmap(0x10_0000, 1 << 20);
        assert!(dma.read(0x10_0010, &mut b).is_err(), "unmapped");
        assert!(dma.is_empty());
    }
}
