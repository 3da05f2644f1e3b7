// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! Userspace library for the rsvm DRM driver.
//!
//! This is the layer a GPU runtime (an OpenCL or Mesa driver) builds on:
//!
//! - [`Device`]: opens the rsvm render node and reads its parameters;
//! - [`Binding`]: one mirrored CPU address range (SVM bind), unbound when
//!   dropped; [`Device::bind_process`] mirrors everything the GPU can reach;
//! - [`Channel`]: a GPFIFO channel; [`Push`] builds its jobs (compute
//!   launches, copy-engine copies, semaphore releases);
//! - [`Kernel`]: a compute kernel image placed where the GPU can fetch it.
//!
//! GPU virtual addresses are CPU virtual addresses: a job gets plain
//! pointers to data the program built with its usual allocator.
//!
//! The ioctl structures come from `uapi/rsvm_drm.h` through bindgen
//! ([`uapi`]), so this crate and the C tests share one definition.

use std::{
    alloc::{self, Layout},
    fmt,
    fs::{self, File, OpenOptions},
    io,
    ops::{Deref, DerefMut},
    os::{fd::AsRawFd, unix::fs::OpenOptionsExt},
    path::{Path, PathBuf},
    ptr::NonNull,
    time::Duration,
};

pub mod igt;
mod push;

pub use push::Push;

/// The uAPI header, as bindgen reads it.
#[allow(non_camel_case_types, non_upper_case_globals, dead_code, clippy::all)]
pub mod uapi {
    include!(concat!(env!("OUT_DIR"), "/uapi.rs"));
}

/// Bytes of a CPU page (the granule of every binding).
pub const PAGE_SIZE: usize = 4096;

/// Parameters [`Device::param`] reads (`DRM_RSVM_PARAM_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Param {
    ChipId = uapi::DRM_RSVM_PARAM_CHIP_ID,
    VramSize = uapi::DRM_RSVM_PARAM_VRAM_SIZE,
    VaBits = uapi::DRM_RSVM_PARAM_VA_BITS,
    PageSizes = uapi::DRM_RSVM_PARAM_PAGE_SIZES,
    UapiVersion = uapi::DRM_RSVM_PARAM_UAPI_VERSION,
    FirmwareVersion = uapi::DRM_RSVM_PARAM_FIRMWARE_VERSION,
    KernelVaStart = uapi::DRM_RSVM_PARAM_KERNEL_VA_START,
    KernelVaSize = uapi::DRM_RSVM_PARAM_KERNEL_VA_SIZE,
    SvmVaLimit = uapi::DRM_RSVM_PARAM_SVM_VA_LIMIT,
    Engines = uapi::DRM_RSVM_PARAM_ENGINES,
    PtPages = uapi::DRM_RSVM_PARAM_PT_PAGES,
}

/// Why a channel stopped (`DRM_RSVM_ERROR_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidMethod,
    InvalidEncoding,
    InvalidClass,
    PhysicalAccess,
    InvalidPushbuffer,
    InvalidInstance,
    /// A compute kernel trapped or ran past a limit.
    JobFailed,
    /// An unserviceable GPU fault; the info is the page's address >> 12.
    Fault,
    /// A compute access whose address is not a multiple of its size.
    Misaligned,
    /// A code newer than this library.
    Other(u32),
}

impl ErrorCode {
    fn from_raw(v: u32) -> Self {
        match v {
            uapi::DRM_RSVM_ERROR_INVALID_METHOD => Self::InvalidMethod,
            uapi::DRM_RSVM_ERROR_INVALID_ENCODING => Self::InvalidEncoding,
            uapi::DRM_RSVM_ERROR_INVALID_CLASS => Self::InvalidClass,
            uapi::DRM_RSVM_ERROR_PHYSICAL_ACCESS => Self::PhysicalAccess,
            uapi::DRM_RSVM_ERROR_INVALID_PUSHBUFFER => Self::InvalidPushbuffer,
            uapi::DRM_RSVM_ERROR_INVALID_INSTANCE => Self::InvalidInstance,
            uapi::DRM_RSVM_ERROR_JOB_FAILED => Self::JobFailed,
            uapi::DRM_RSVM_ERROR_FAULT => Self::Fault,
            uapi::DRM_RSVM_ERROR_MISALIGNED => Self::Misaligned,
            v => Self::Other(v),
        }
    }
}

/// How waiting for a job ended when it did not complete.
#[derive(Debug)]
pub enum JobError {
    /// Not done within the timeout; the job may still complete.
    Timeout,
    /// The channel stopped on an error before the job completed; it runs
    /// no more jobs. `fault_address` is the page the GPU could not access
    /// ([`ErrorCode::Fault`]) or the misaligned address
    /// ([`ErrorCode::Misaligned`]), `None` for other errors.
    Stopped {
        code: ErrorCode,
        info: u32,
        fault_address: Option<u64>,
    },
    /// The ioctl itself failed.
    Os(io::Error),
}

impl JobError {
    /// The faulting page ([`ErrorCode::Fault`]) or misaligned address
    /// ([`ErrorCode::Misaligned`]).
    pub fn fault_address(&self) -> Option<u64> {
        match self {
            Self::Stopped { fault_address, .. } => *fault_address,
            _ => None,
        }
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout => write!(f, "timed out"),
            Self::Stopped {
                code,
                info,
                fault_address,
            } => match fault_address {
                Some(a) => write!(
                    f,
                    "channel stopped: {code:?} (info {info:#x}, address {a:#x})"
                ),
                None => write!(f, "channel stopped: {code:?} (info {info:#x})"),
            },
            Self::Os(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for JobError {}

impl From<io::Error> for JobError {
    fn from(e: io::Error) -> Self {
        Self::Os(e)
    }
}

/// `ioctl(fd, req, arg)`, with errno as an [`io::Error`].
fn ioctl<T>(file: &File, req: u32, arg: &mut T) -> io::Result<()> {
    // SAFETY: `req` is one of the driver's ioctl numbers, whose argument
    // size is encoded in it and is `size_of::<T>()` (bindgen's layout of the
    // same header); `arg` is a valid, exclusive reference for the call.
    let r = unsafe { libc::ioctl(file.as_raw_fd(), req as _, arg as *mut T) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// An open rsvm device. Each one has its own GPU address space, made for the
/// process that first uses it.
pub struct Device {
    file: File,
    path: PathBuf,
}

impl Device {
    /// Opens the render node of the first GPU that rsvm drives.
    pub fn open() -> io::Result<Self> {
        let path = Self::find_node("renderD")?;
        Self::open_path(&path)
    }

    /// Opens a given DRM node.
    pub fn open_path(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)?;
        Ok(Self {
            file,
            path: path.to_owned(),
        })
    }

    /// `/dev/dri/PREFIX*` of the first DRM node whose driver is rsvm.
    pub fn find_node(prefix: &str) -> io::Result<PathBuf> {
        let mut names: Vec<String> = fs::read_dir("/sys/class/drm")?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with(prefix) && !n.contains('-'))
            .collect();
        names.sort();
        names
            .into_iter()
            .find(|n| {
                fs::read_link(format!("/sys/class/drm/{n}/device/driver"))
                    .is_ok_and(|l| l.file_name().is_some_and(|d| d == "rsvm"))
            })
            .map(|n| PathBuf::from("/dev/dri").join(n))
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no rsvm device"))
    }

    /// The node this device was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads one parameter.
    pub fn param(&self, p: Param) -> io::Result<u64> {
        self.param_raw(p as u32)
    }

    /// Reads a parameter by number (for ones newer than this library).
    pub fn param_raw(&self, param: u32) -> io::Result<u64> {
        let mut a = uapi::drm_rsvm_get_param {
            param,
            ..Default::default()
        };
        ioctl(&self.file, uapi::DRM_IOCTL_RSVM_GET_PARAM, &mut a)?;
        Ok(a.value)
    }

    fn svm_bind(&self, start: usize, len: usize, op: u32, flags: u32) -> io::Result<()> {
        let mut a = uapi::drm_rsvm_svm_bind {
            start: start as u64,
            length: len as u64,
            op,
            flags,
        };
        ioctl(&self.file, uapi::DRM_IOCTL_RSVM_SVM_BIND, &mut a)
    }

    /// Mirrors `[start, start + len)` of this process into the GPU address
    /// space until the [`Binding`] is dropped. With `populate`, what the CPU
    /// maps now is mirrored at once (read-only); otherwise on first use.
    pub fn bind(&self, start: usize, len: usize, populate: bool) -> io::Result<Binding<'_>> {
        let flags = if populate {
            uapi::DRM_RSVM_SVM_BIND_POPULATE
        } else {
            0
        };
        self.svm_bind(start, len, uapi::DRM_RSVM_SVM_OP_BIND, flags)?;
        Ok(Binding {
            dev: self,
            start,
            len,
        })
    }

    /// Mirrors every address the GPU may use: everything below the SVM
    /// limit except the kernel's own window. After this, any pointer of the
    /// process (heap, stack, mmap, globals) works in a job.
    pub fn bind_process(&self) -> io::Result<Vec<Binding<'_>>> {
        let kstart = self.param(Param::KernelVaStart)? as usize;
        let kend = kstart + self.param(Param::KernelVaSize)? as usize;
        let limit = self.param(Param::SvmVaLimit)? as usize;
        let below = kstart
            .checked_sub(PAGE_SIZE)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
        let mut v = vec![self.bind(PAGE_SIZE, below, false)?];
        if kend < limit {
            v.push(self.bind(kend, limit - kend, false)?);
        }
        Ok(v)
    }

    /// Creates a channel in this device's address space.
    pub fn channel(&self) -> io::Result<Channel<'_>> {
        let mut a = uapi::drm_rsvm_channel_create::default();
        ioctl(&self.file, uapi::DRM_IOCTL_RSVM_CHANNEL_CREATE, &mut a)?;
        Ok(Channel {
            dev: self,
            handle: a.handle,
        })
    }

    /// Runs one job on a fresh channel and waits for it.
    pub fn run(&self, push: &Push, timeout: Duration) -> Result<(), JobError> {
        let ch = self.channel()?;
        let seq = ch.submit(push)?;
        ch.wait(seq, timeout)
    }
}

/// A mirrored address range; dropping it unbinds the range.
pub struct Binding<'d> {
    dev: &'d Device,
    start: usize,
    len: usize,
}

impl Binding<'_> {
    /// The range's first address.
    pub fn start(&self) -> usize {
        self.start
    }

    /// The range's size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the range is empty (never: the driver refuses empty ranges).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Unbinds now, reporting the driver's answer.
    pub fn unbind(self) -> io::Result<()> {
        let r = self
            .dev
            .svm_bind(self.start, self.len, uapi::DRM_RSVM_SVM_OP_UNBIND, 0);
        std::mem::forget(self);
        r
    }
}

impl Drop for Binding<'_> {
    fn drop(&mut self) {
        // Nothing to report to: the driver unbinds an exactly bound range.
        let _ = self
            .dev
            .svm_bind(self.start, self.len, uapi::DRM_RSVM_SVM_OP_UNBIND, 0);
    }
}

/// A job's sequence number on its channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Seqno(pub u64);

/// A GPFIFO channel; dropping it stops and frees it.
pub struct Channel<'d> {
    dev: &'d Device,
    handle: u32,
}

impl Channel<'_> {
    /// The channel's handle in its file.
    pub fn handle(&self) -> u32 {
        self.handle
    }

    /// Queues a job. The driver copies and checks the pushbuffer.
    pub fn submit(&self, push: &Push) -> io::Result<Seqno> {
        let dw = push.dwords();
        let mut a = uapi::drm_rsvm_exec {
            push: dw.as_ptr() as u64,
            channel: self.handle,
            dwords: u32::try_from(dw.len())
                .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?,
            ..Default::default()
        };
        ioctl(&self.dev.file, uapi::DRM_IOCTL_RSVM_EXEC, &mut a)?;
        Ok(Seqno(a.seqno))
    }

    /// Waits until job `seq` completed, at most `timeout` (zero polls).
    pub fn wait(&self, seq: Seqno, timeout: Duration) -> Result<(), JobError> {
        let mut a = uapi::drm_rsvm_wait {
            channel: self.handle,
            seqno: seq.0,
            timeout_ns: i64::try_from(timeout.as_nanos()).unwrap_or(i64::MAX),
            ..Default::default()
        };
        match ioctl(&self.dev.file, uapi::DRM_IOCTL_RSVM_WAIT, &mut a) {
            Ok(()) => Ok(()),
            Err(e) => Err(match e.raw_os_error() {
                Some(libc::ETIME) => JobError::Timeout,
                Some(libc::EIO) => JobError::Stopped {
                    code: ErrorCode::from_raw(a.error),
                    info: a.error_info,
                    fault_address: (a.result_flags & uapi::DRM_RSVM_WAIT_FAULT_ADDRESS_VALID != 0)
                        .then_some(a.fault_address),
                },
                _ => JobError::Os(e),
            }),
        }
    }
}

impl Drop for Channel<'_> {
    fn drop(&mut self) {
        let mut a = uapi::drm_rsvm_channel_destroy {
            handle: self.handle,
            pad: 0,
        };
        // The handle is ours and valid: destroy cannot fail but for EINTR
        // of a dying process, whose file close frees the channel anyway.
        let _ = ioctl(&self.dev.file, uapi::DRM_IOCTL_RSVM_CHANNEL_DESTROY, &mut a);
    }
}

/// Page-aligned, zeroed memory from the process's allocator: kernel images,
/// stacks, or any buffer a test wants on its own pages.
pub struct PageBuf {
    ptr: NonNull<u8>,
    layout: Layout,
}

impl PageBuf {
    /// `len` zeroed bytes (rounded up to whole pages, at least one).
    pub fn new(len: usize) -> Self {
        let size = len.max(1).next_multiple_of(PAGE_SIZE);
        let layout = Layout::from_size_align(size, PAGE_SIZE).expect("buffer size overflows");
        // SAFETY: `layout` has a non-zero size.
        let p = unsafe { alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(p).unwrap_or_else(|| alloc::handle_alloc_error(layout));
        Self { ptr, layout }
    }

    /// The buffer's GPU (and CPU) address.
    pub fn addr(&self) -> u64 {
        self.ptr.as_ptr() as u64
    }
}

impl Deref for PageBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr` points to `layout.size()` initialised bytes we own.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.layout.size()) }
    }
}

impl DerefMut for PageBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as for `deref`, and `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.layout.size()) }
    }
}

impl Drop for PageBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

/// A compute kernel image in page-aligned process memory, so the GPU
/// fetches it through the same mirror as the data.
pub struct Kernel(PageBuf);

impl Kernel {
    /// Places a flat kernel image (see `kernels/rsvm_kernel.h`).
    pub fn new(image: &[u8]) -> Self {
        let mut b = PageBuf::new(image.len());
        b[..image.len()].copy_from_slice(image);
        Self(b)
    }

    /// One of the kernels built from `kernels/src/*.c`, by file name.
    pub fn builtin(name: &str) -> Option<Self> {
        rsvm_kernels::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, image)| Self::new(image))
    }

    /// The entry point's GPU address.
    pub fn addr(&self) -> u64 {
        self.0.addr()
    }
}

/// Per-thread stacks for a compute launch.
pub struct Stacks {
    buf: PageBuf,
    threads: u32,
    per_thread: u32,
}

impl Stacks {
    /// `threads` stacks of `per_thread` bytes each (a multiple of 16, the
    /// RISC-V stack alignment).
    pub fn new(threads: u32, per_thread: u32) -> Self {
        assert!(threads > 0 && per_thread > 0 && per_thread.is_multiple_of(16));
        Self {
            buf: PageBuf::new(threads as usize * per_thread as usize),
            threads,
            per_thread,
        }
    }

    /// Threads these stacks serve.
    pub fn threads(&self) -> u32 {
        self.threads
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_kernels_are_found_by_name() {
        let k = Kernel::builtin("list_sum").expect("list_sum");
        assert_eq!(&k.0[..rsvm_kernels::LIST_SUM.len()], rsvm_kernels::LIST_SUM);
        assert!(Kernel::builtin("page_touch").is_some());
        assert!(Kernel::builtin("no_such_kernel").is_none());
    }
}
