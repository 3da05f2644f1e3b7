//! Device memory: a memfd, so QEMU can map it into the guest as BAR1.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::atomic::AtomicU64;

/// The GPU's local memory.
pub struct Vram {
    file: File,
    ptr: *mut u8,
    size: u64,
}

// SAFETY: the mapping is plain shared memory; concurrent access follows the
// device's own memory model (engines synchronise through the device state).
unsafe impl Send for Vram {}
// SAFETY: see `Send`.
unsafe impl Sync for Vram {}

impl Vram {
    /// Allocates `size` bytes of zeroed device memory.
    pub fn new(size: u64) -> io::Result<Self> {
        let name = CString::new("rsvm-vram").expect("no NUL in name");
        // SAFETY: `name` is a valid C string.
        let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor we own.
        let file = unsafe { File::from_raw_fd(fd) };
        file.set_len(size)?;
        // SAFETY: mapping a file we own, of the length we just set.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            file,
            ptr: ptr.cast(),
            size,
        })
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The memfd, for QEMU to map.
    pub fn file(&self) -> &File {
        &self.file
    }

    fn check(&self, offset: u64, len: usize) -> io::Result<usize> {
        offset
            .checked_add(len as u64)
            .filter(|&end| end <= self.size)
            .map(|_| offset as usize)
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))
    }

    /// Copies out of VRAM.
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let off = self.check(offset, buf.len())?;
        // SAFETY: `check` proved the range lies inside the mapping.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr.add(off), buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    /// Runs `op` on the 64-bit word at `offset` (8-byte aligned) atomically.
    pub fn atomic64<R>(&self, offset: u64, op: impl FnOnce(&AtomicU64) -> R) -> io::Result<R> {
        if !offset.is_multiple_of(8) {
            return Err(io::ErrorKind::InvalidInput.into());
        }
        let off = self.check(offset, 8)?;
        // SAFETY: `check` proved the 8 bytes lie inside the mapping, which is
        // page-aligned, so the word is 8-byte aligned.
        Ok(op(unsafe { AtomicU64::from_ptr(self.ptr.add(off).cast()) }))
    }

    /// Runs `f` on `len` bytes of VRAM at `offset` as a mutable slice.
    ///
    /// The device model is the only writer of VRAM besides the guest CPU
    /// through BAR1; like hardware, it does not order its accesses against
    /// the CPU's (the driver does, with fences).
    pub fn with_slice<R>(
        &self,
        offset: u64,
        len: usize,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> io::Result<R> {
        let off = self.check(offset, len)?;
        // SAFETY: `check` proved the range lies inside the mapping; the slice
        // does not outlive the call.
        Ok(f(unsafe {
            std::slice::from_raw_parts_mut(self.ptr.add(off), len)
        }))
    }

    /// Copies into VRAM.
    pub fn write(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        let off = self.check(offset, buf.len())?;
        // SAFETY: `check` proved the range lies inside the mapping.
        unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr(), self.ptr.add(off), buf.len()) };
        Ok(())
    }
}

impl Drop for Vram {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`size` describe the mapping made in `new`.
        unsafe { libc::munmap(self.ptr.cast(), self.size as usize) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_write_and_bounds() {
        let v = Vram::new(1 << 20).unwrap();
        v.write(4096, b"hello").unwrap();
        let mut b = [0u8; 5];
        v.read(4096, &mut b).unwrap();
        assert_eq!(&b, b"hello");
        assert!(v.write((1 << 20) - 2, b"abc").is_err());
        assert!(v.read(u64::MAX, &mut b).is_err());
    }
}
