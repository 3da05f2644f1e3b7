// SPDX-License-Identifier: GPL-2.0

//! HMM: mirror a range of a process's address space into a device.
//!
//! [`Range::fault`] resolves the pages of a range through
//! `hmm_range_fault_unlocked_timeout()`, faulting in what each page's
//! [`Request`] asks for, and returns the [`ReadSeq`] the result is valid at.
//! The driver then takes [`IntervalNotifier::lock_if_unchanged`] and writes
//! its device page tables from [`Range::pages`] while holding it.
//!
//! A [`Request::Read`] faults the page in for reading only: a device read
//! neither breaks COW nor dirties the page.
//!
//! C header: [`include/linux/hmm.h`](srctree/include/linux/hmm.h)

use crate::{
    alloc::KVVec,
    bindings,
    error::{
        to_result,
        Result, //
    },
    ffi::c_ulong,
    mm::{
        mmu_notifier::{
            IntervalNotifier,
            IntervalNotifierOps,
            PgmapOwner,
            ReadSeq, //
        },
        virt::VmaRef,
        MmWithUser, //
    },
    page::PAGE_SIZE,
    prelude::*,
    time::Jiffies, //
};

/// What a device needs of one page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// Nothing: report the page as the CPU has it, without faulting.
    Snapshot,
    /// Read access: fault the page in if it is not present.
    Read,
    /// Write access: fault the page in writable (breaking COW).
    Write,
}

impl Request {
    fn flags(self) -> c_ulong {
        match self {
            Self::Snapshot => 0,
            Self::Read => bindings::hmm_pfn_flags_HMM_PFN_REQ_FAULT as c_ulong,
            Self::Write => {
                (bindings::hmm_pfn_flags_HMM_PFN_REQ_FAULT
                    | bindings::hmm_pfn_flags_HMM_PFN_REQ_WRITE) as c_ulong
            }
        }
    }
}

/// The state of one page after a fault or snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageState(c_ulong);

impl PageState {
    /// The CPU maps the page and [`Self::pfn`] is meaningful.
    pub fn is_valid(self) -> bool {
        self.0 & bindings::hmm_pfn_flags_HMM_PFN_VALID as c_ulong != 0
    }

    /// The CPU maps the page writable.
    pub fn is_writable(self) -> bool {
        self.0 & bindings::hmm_pfn_flags_HMM_PFN_WRITE as c_ulong != 0
    }

    /// The page cannot be accessed (e.g. `PROT_NONE`).
    pub fn is_error(self) -> bool {
        self.0 & bindings::hmm_pfn_flags_HMM_PFN_ERROR as c_ulong != 0
    }

    /// The page, if the CPU maps it: system memory, or device-private
    /// memory of the owner the range named. The two are different types, so
    /// a device-private page cannot be mapped as if it were RAM.
    pub fn page(self) -> Option<HmmPage> {
        if !self.is_valid() {
            return None;
        }
        let pfn = self.0 & !(bindings::hmm_pfn_flags_HMM_PFN_FLAGS as c_ulong);
        Some(if is_device_private(pfn) {
            HmmPage::DevicePrivate(DevicePfn(pfn))
        } else {
            HmmPage::System(SystemPfn(pfn))
        })
    }

    /// Order of the CPU mapping that covers the page (0 for 4 KiB, 9 for a
    /// 2 MiB PMD).
    pub fn map_order(self) -> u32 {
        // SAFETY: a pure function of the value.
        unsafe { bindings::hmm_pfn_to_map_order(self.0) }
    }
}

/// Whether page frame `pfn` (a valid pfn HMM reported) is device-private
/// memory.
#[cfg(CONFIG_DEVICE_PRIVATE)]
fn is_device_private(pfn: usize) -> bool {
    // SAFETY: HMM reported `pfn` as valid, so it has a `struct page`; the
    // test only reads the page's zone, which does not change.
    unsafe { bindings::is_device_private_page(bindings::pfn_to_page(pfn as c_ulong)) }
}

#[cfg(not(CONFIG_DEVICE_PRIVATE))]
fn is_device_private(_pfn: usize) -> bool {
    false
}

/// A page the CPU maps, as [`PageState::page`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HmmPage {
    /// System memory (RAM, or the zero page).
    System(SystemPfn),
    /// Device-private memory (`MEMORY_DEVICE_PRIVATE`) of the owner named
    /// with [`Range::set_device_private_owner`].
    DevicePrivate(DevicePfn),
}

/// The page frame of a page of system memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SystemPfn(usize);

impl SystemPfn {
    /// The page frame number.
    pub fn pfn(self) -> usize {
        self.0
    }

    /// The page's physical address.
    pub fn phys_addr(self) -> u64 {
        (self.0 as u64) << crate::page::PAGE_SHIFT
    }
}

/// The page frame of a device-private page: it has a `struct page` but no
/// memory the CPU or another device can reach at its physical address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DevicePfn(usize);

impl DevicePfn {
    /// The page frame number (for the owner's pagemap to find the page's
    /// offset in device memory).
    pub fn pfn(self) -> usize {
        self.0
    }
}

/// A range of an [`IntervalNotifier`]'s address space to mirror.
///
/// # Examples
///
/// The mirroring loop of a device page-fault handler: fault the pages in,
/// then write device page-table entries only if no invalidation ran in
/// between, else start over.
///
/// ```ignore
/// use kernel::mm::hmm::{Range, Request};
///
/// let mut range = Range::new(&notifier, start, end, Request::Read)?;
/// range.set_device_private_owner(owner);
/// loop {
///     let seq = range.fault(timeout)?;
///     let Some(mut pt) = notifier.lock_if_unchanged(seq) else {
///         continue;
///     };
///     for (i, page) in range.pages().enumerate() {
///         if let Some(HmmPage::System(p)) = page.page() {
///             pt.map(start + i * PAGE_SIZE, p.phys_addr(), page.is_writable());
///         }
///     }
///     break;
/// }
/// ```
pub struct Range<'a, T: IntervalNotifierOps> {
    notifier: &'a IntervalNotifier<T>,
    start: usize,
    buf: Buf<'a>,
    owner: PgmapOwner,
}

/// Storage for the per-page requests and results of [`Range`]s, kept by a
/// caller that serves many ranges (a device's fault handler) so that a
/// range of up to its capacity allocates nothing: see [`Range::new_in`].
pub struct PfnBuf {
    requests: KVVec<Request>,
    pfns: KVVec<c_ulong>,
}

impl PfnBuf {
    /// Room for ranges of up to `pages` pages.
    pub fn new(pages: usize) -> Result<Self> {
        Ok(Self {
            requests: KVVec::with_capacity(pages, GFP_KERNEL)?,
            pfns: KVVec::with_capacity(pages, GFP_KERNEL)?,
        })
    }

    /// Sizes the buffer for `n` pages, each asking for `request`; allocates
    /// only past the capacity.
    fn reset(&mut self, n: usize, request: Request) -> Result {
        self.requests.clear();
        self.requests.extend_with(n, request, GFP_KERNEL)?;
        self.pfns.clear();
        self.pfns.extend_with(n, 0, GFP_KERNEL)?;
        Ok(())
    }
}

/// A [`Range`]'s storage: its own, or a caller's [`PfnBuf`].
enum Buf<'a> {
    Owned(PfnBuf),
    Borrowed(&'a mut PfnBuf),
}

impl core::ops::Deref for Buf<'_> {
    type Target = PfnBuf;

    fn deref(&self) -> &PfnBuf {
        match self {
            Self::Owned(b) => b,
            Self::Borrowed(b) => b,
        }
    }
}

impl core::ops::DerefMut for Buf<'_> {
    fn deref_mut(&mut self) -> &mut PfnBuf {
        match self {
            Self::Owned(b) => b,
            Self::Borrowed(b) => b,
        }
    }
}

impl<'a, T: IntervalNotifierOps> Range<'a, T> {
    /// A range of `[start, end)` (page-aligned, inside the notifier's
    /// range) where every page asks for `request`.
    pub fn new(
        notifier: &'a IntervalNotifier<T>,
        start: usize,
        end: usize,
        request: Request,
    ) -> Result<Self> {
        let n = Self::page_count(notifier, start, end)?;
        let mut buf = PfnBuf::new(n)?;
        buf.reset(n, request)?;
        Ok(Self {
            notifier,
            start,
            buf: Buf::Owned(buf),
            owner: PgmapOwner::NONE,
        })
    }

    /// The same as [`Self::new`], in `buf`: nothing is allocated if the
    /// range fits its capacity.
    pub fn new_in(
        notifier: &'a IntervalNotifier<T>,
        start: usize,
        end: usize,
        request: Request,
        buf: &'a mut PfnBuf,
    ) -> Result<Self> {
        let n = Self::page_count(notifier, start, end)?;
        buf.reset(n, request)?;
        Ok(Self {
            notifier,
            start,
            buf: Buf::Borrowed(buf),
            owner: PgmapOwner::NONE,
        })
    }

    /// Pages of `[start, end)`, checked against the notifier's range.
    fn page_count(notifier: &IntervalNotifier<T>, start: usize, end: usize) -> Result<usize> {
        if start % PAGE_SIZE != 0 || end % PAGE_SIZE != 0 || end <= start {
            return Err(EINVAL);
        }
        if !notifier.covers(start, end) {
            return Err(ERANGE);
        }
        Ok((end - start) / PAGE_SIZE)
    }

    /// Changes what page `index` asks for.
    pub fn set_request(&mut self, index: usize, request: Request) -> Result {
        *self.buf.requests.get_mut(index).ok_or(EINVAL)? = request;
        Ok(())
    }

    /// Device-private pages whose `pgmap_owner` is `owner` are reported as
    /// they are instead of being migrated back to system memory.
    pub fn set_device_private_owner(&mut self, owner: PgmapOwner) {
        self.owner = owner;
    }

    /// Number of pages.
    pub fn len(&self) -> usize {
        self.buf.pfns.len()
    }

    /// Whether the range has no page (never: `new` refuses that).
    pub fn is_empty(&self) -> bool {
        self.buf.pfns.is_empty()
    }

    /// Faults and snapshots the range as requested. Retries internally while
    /// invalidations race with it, for at most `timeout` (0: forever).
    ///
    /// Errors: `EFAULT` for pages with no usable VMA, `EPERM` for a write
    /// request to a read-only mapping, `EBUSY` on timeout, `EINTR` on a
    /// fatal signal.
    pub fn fault(&mut self, timeout: Jiffies) -> Result<ReadSeq> {
        let len = self.len();
        let buf = &mut *self.buf;
        for (pfn, req) in buf.pfns.iter_mut().zip(buf.requests.iter()) {
            *pfn = req.flags();
        }
        let mut range = bindings::hmm_range {
            notifier: self.notifier.raw(),
            notifier_seq: 0,
            start: self.start as c_ulong,
            end: (self.start + len * PAGE_SIZE) as c_ulong,
            hmm_pfns: buf.pfns.as_mut_ptr(),
            default_flags: 0,
            // Per-page requests: all of each input entry counts.
            pfn_flags_mask: c_ulong::MAX,
            dev_private_owner: self.owner.as_ptr(),
        };
        // SAFETY: `range` describes `self.len()` pages with as many entries
        // in `self.pfns`, inside the notifier's range; the notifier is
        // inserted; the mmap lock is not held (the function takes it).
        to_result(unsafe { bindings::hmm_range_fault_unlocked_timeout(&mut range, timeout) })?;
        Ok(ReadSeq::from_raw(range.notifier_seq))
    }

    /// The state of each page, in order, after the last [`Self::fault`].
    pub fn pages(&self) -> impl Iterator<Item = PageState> + '_ {
        self.buf.pfns.iter().map(|&p| PageState(p))
    }

    /// The state of page `index`.
    pub fn page(&self, index: usize) -> Option<PageState> {
        self.buf.pfns.get(index).map(|&p| PageState(p))
    }
}

/// The part of `[start, end)` that the first VMA at or after `start`
/// covers, or `None` if no VMA of `mm` intersects `[start, end)`: a walk
/// over a sparse address space visits only what is mapped.
pub fn next_mapped(mm: &MmWithUser, start: usize, end: usize) -> Option<(usize, usize)> {
    let _lock = mm.mmap_read_lock();
    // SAFETY: `mm` is a live address space with users and its mmap lock is
    // held, as `find_vma` requires.
    let vma = unsafe { bindings::find_vma(mm.as_raw(), start as c_ulong) };
    if vma.is_null() {
        return None;
    }
    // SAFETY: `find_vma` returned a VMA of `mm`, which stays valid while
    // the mmap read lock (`_lock`) is held; it is only read here.
    let vma = unsafe { VmaRef::from_raw(vma) };
    let (s, e) = (vma.start().max(start), vma.end().min(end));
    (s < e).then_some((s, e))
}

/// Whether the current task has a fatal signal pending: a long walk (a
/// device's populate of a huge range) stops when its process is killed.
pub fn fatal_signal_pending() -> bool {
    // SAFETY: `current` is always a valid task.
    unsafe { bindings::fatal_signal_pending(crate::task::Task::current_raw()) }
}

/// Maps `pages` anonymous read-write pages into a user address space
/// attached to the current KUnit test's thread; KUnit unmaps them when the
/// test ends.
#[cfg(CONFIG_KUNIT)]
pub(crate) fn kunit_user_map(pages: usize) -> Result<usize> {
    // SAFETY: called from a KUnit test; the mapping is tracked by KUnit and
    // removed when the test ends.
    let addr = unsafe {
        bindings::kunit_vm_mmap(
            bindings::kunit_get_current_test(),
            core::ptr::null_mut(),
            0,
            pages * PAGE_SIZE,
            (bindings::PROT_READ | bindings::PROT_WRITE) as c_ulong,
            (bindings::MAP_ANONYMOUS | bindings::MAP_PRIVATE) as c_ulong,
            0,
        )
    };
    if addr == 0 || addr >= (-4095isize) as c_ulong {
        return Err(ENOMEM);
    }
    Ok(addr as usize)
}

/// Runs `f` on the current KUnit test's VMA at `addr`, under the mmap lock.
#[cfg(CONFIG_KUNIT)]
pub(crate) fn kunit_with_vma<R>(
    addr: usize,
    f: impl FnOnce(&crate::mm::virt::VmaRef) -> Result<R>,
) -> Result<R> {
    let task = crate::current!();
    let mm = task.mm().ok_or(EINVAL)?;
    let guard = mm.mmap_read_lock();
    let vma = guard.vma_lookup(addr).ok_or(EFAULT)?;
    f(vma)
}

/// An interval notifier over `[addr, addr + len)` of the current KUnit
/// test's address space.
#[cfg(CONFIG_KUNIT)]
pub(crate) fn kunit_notifier<T: IntervalNotifierOps>(
    addr: usize,
    len: usize,
    ops: T,
    state: impl PinInit<T::State>,
) -> Result<crate::sync::Arc<IntervalNotifier<T>>> {
    let task = crate::current!();
    let mm = task.mm().ok_or(EINVAL)?;
    IntervalNotifier::new(mm, addr, len, ops, state)
}

/// Writes `data` to the current KUnit test's user memory at `addr`.
#[cfg(CONFIG_KUNIT)]
pub(crate) fn kunit_write_user(addr: usize, data: &[u8]) -> Result {
    use crate::uaccess::{
        UserPtr,
        UserSlice, //
    };
    UserSlice::new(UserPtr::from_addr(addr), data.len())
        .writer()
        .write_slice(data)
}

/// Reads the current KUnit test's user memory at `addr` into `out`.
#[cfg(CONFIG_KUNIT)]
pub(crate) fn kunit_read_user(addr: usize, out: &mut [u8]) -> Result {
    use crate::uaccess::{
        UserPtr,
        UserSlice, //
    };
    UserSlice::new(UserPtr::from_addr(addr), out.len())
        .reader()
        .read_slice(out)
}

#[macros::kunit_tests(rust_kernel_hmm)]
mod tests {
    use super::*;
    use crate::mm::mmu_notifier::{
        Event,
        NotifierRange, //
    };

    fn user_map(pages: usize) -> Result<usize> {
        kunit_user_map(pages)
    }

    /// Records the invalidations it sees.
    struct Recorder;

    #[derive(Default)]
    struct Seen {
        events: KVec<(Event, usize, usize)>,
    }

    impl IntervalNotifierOps for Recorder {
        type State = Seen;

        fn invalidate(&self, seen: &mut Seen, range: &NotifierRange<'_>) -> bool {
            let _ = seen
                .events
                .push((range.event(), range.start(), range.end()), GFP_ATOMIC);
            true
        }
    }

    fn notifier(addr: usize, pages: usize) -> Result<Arc<IntervalNotifier<Recorder>>> {
        kunit_notifier(addr, pages * PAGE_SIZE, Recorder, Seen::default())
    }

    use crate::sync::Arc;

    #[test]
    fn read_request_is_read_only_write_request_writable() -> Result {
        let addr = user_map(4)?;
        let n = notifier(addr, 4)?;

        // Untouched anonymous memory: a read fault maps the zero page, read-only.
        let mut r = Range::new(&n, addr, addr + 2 * PAGE_SIZE, Request::Read)?;
        let seq = r.fault(0)?;
        assert!(n.lock_if_unchanged(seq).is_some());
        assert!(r.pages().all(|p| p.is_valid() && !p.is_writable()));

        // A write request breaks that: a private, writable page.
        let mut w = Range::new(&n, addr, addr + 2 * PAGE_SIZE, Request::Write)?;
        w.fault(0)?;
        assert!(w.pages().all(|p| p.is_valid() && p.is_writable()));
        assert_ne!(
            w.page(0).and_then(|p| p.page()),
            r.page(0).and_then(|p| p.page())
        );
        assert!(matches!(
            w.page(0).and_then(|p| p.page()),
            Some(HmmPage::System(_))
        ));

        // Snapshot of pages never touched: nothing is faulted in.
        let mut s = Range::new(
            &n,
            addr + 2 * PAGE_SIZE,
            addr + 4 * PAGE_SIZE,
            Request::Snapshot,
        )?;
        s.fault(0)?;
        assert!(s.pages().all(|p| !p.is_valid()));
        Ok(())
    }

    #[test]
    fn unmap_invalidates_and_the_read_retries() -> Result {
        let addr = user_map(4)?;
        let n = notifier(addr, 4)?;
        let mut r = Range::new(&n, addr, addr + 4 * PAGE_SIZE, Request::Write)?;
        let seq = r.fault(0)?;

        // SAFETY: unmapping the test's own mapping, which nothing else uses.
        let ret = unsafe { bindings::vm_munmap(addr as c_ulong, PAGE_SIZE) };
        assert_eq!(ret, 0);

        assert!(n.check_retry(seq));
        // The read must retry.
        assert!(n.lock_if_unchanged(seq).is_none());
        let seen = n.lock();
        assert!(seen
            .events
            .iter()
            .any(|&(e, s, end)| e == Event::Unmap && s == addr && end == addr + PAGE_SIZE));
        drop(seen);

        // The unmapped page now faults with EFAULT; the rest still resolves.
        assert_eq!(r.fault(0).err(), Some(EFAULT));
        let mut rest = Range::new(&n, addr + PAGE_SIZE, addr + 4 * PAGE_SIZE, Request::Read)?;
        rest.fault(0)?;
        Ok(())
    }

    #[test]
    fn ranges_outside_the_notifier_are_refused() -> Result {
        let addr = user_map(2)?;
        let n = notifier(addr, 2)?;
        assert_eq!(
            Range::new(&n, addr, addr + 3 * PAGE_SIZE, Request::Read).err(),
            Some(ERANGE)
        );
        assert_eq!(
            Range::new(&n, addr + 1, addr + PAGE_SIZE, Request::Read).err(),
            Some(EINVAL)
        );
        Ok(())
    }
}
