// SPDX-License-Identifier: GPL-2.0

//! The SVM core: ranges of one process's address space that a GPU address
//! space mirrors, through HMM.
//!
//! [`Svm`] keeps a VM's bound ranges ([`range::SvmRange`], one MMU interval
//! notifier each) in a maple tree, binds and unbinds them, and serves a GPU
//! fault at an address: [`mirror`] runs `hmm_range_fault` and writes what it
//! finds into the page tables. A read fault asks for read access and maps
//! the page read-only (so a GPU read never dirties a page); a write or
//! atomic fault asks for write access (breaking COW and dirtying the page on
//! the CPU side first) and maps it writable. Pages around the faulting one
//! that the CPU already maps are mirrored read-only in the same pass.
//!
//! This module knows address spaces only through [`AddressSpace`] and page
//! tables only through [`crate::mmu`]; it knows nothing of channels, fault
//! buffers or registers. Which faults to serve, and what to do with the
//! ones that fail, is the VM's business ([`crate::vm`]).
//!
//! Lock order: `binding`, then a range's notifier lock, then the page-table
//! lock. Page tables are never allocated under the last two (see
//! [`crate::mmu::Reserve`]); a fault allocates none at all (it takes them
//! from the device's pool).

use kernel::{
    device::{
        Bound,
        Device, //
    },
    maple_tree::MapleTree,
    mm::{
        hmm as khmm,
        mmu_notifier::ReadSeq,
        Mm,
        MmWithUser, //
    },
    new_interval_notifier,
    new_mutex,
    page::PAGE_SIZE,
    prelude::*,
    sync::{
        aref::ARef,
        atomic::{
            Atomic,
            Relaxed, //
        },
        Arc,
        Mutex, //
    }, //
};

use crate::mmu::{
    AddressSpace,
    PageSize,
    PtPool, //
};

pub(crate) mod mirror;
pub(crate) mod range;

use mirror::{
    FaultPage,
    MirrorBuf, //
};
use range::{
    SvmNotifier,
    SvmRange,
    SvmRangeState, //
};

/// The mirrored ranges of one VM.
#[pin_data]
pub(crate) struct Svm {
    /// The process whose address space is mirrored.
    mm: ARef<Mm>,
    aspace: Arc<AddressSpace>,
    /// Page tables for fault service, kept filled by the interrupt thread.
    pool: Arc<PtPool>,
    /// Bound ranges, by address.
    #[pin]
    ranges: MapleTree<Arc<SvmNotifier>>,
    /// Serializes bind and unbind (a lookup and an erase of the tree are
    /// two steps).
    #[pin]
    binding: Mutex<()>,
    /// The next range's [`SvmRange::id`].
    next_range: Atomic<u64>,
}

impl Svm {
    /// Nothing mirrored yet of `mm`, in `aspace`.
    pub(crate) fn new(
        mm: &MmWithUser,
        aspace: &Arc<AddressSpace>,
        pool: &Arc<PtPool>,
    ) -> impl PinInit<Self> {
        let mm: &Mm = mm;
        let (mm, aspace, pool) = (ARef::from(mm), aspace.clone(), pool.clone());
        pin_init!(Self {
            mm,
            aspace,
            pool,
            ranges <- MapleTree::new(),
            binding <- new_mutex!(()),
            next_range: Atomic::new(0),
        })
    }

    /// Whether `mm` is the address space mirrored.
    pub(crate) fn is_owner(&self, mm: &MmWithUser) -> bool {
        core::ptr::eq(self.mm.as_raw(), mm.as_raw())
    }

    /// Starts mirroring `[start, start + len)` of `mm` (the owner), a range
    /// of whole pages the caller checked against its address-space layout;
    /// with `populate`, mirrors read-only what the CPU maps there now.
    pub(crate) fn bind(
        &self,
        dev: &Device<Bound>,
        mm: &MmWithUser,
        start: u64,
        len: u64,
        populate: bool,
    ) -> Result {
        // The caller checked the range (`Vm::bind`).
        let end = start + len;
        let n = {
            let _binding = self.binding.lock();
            if self
                .ranges
                .lock()
                .ma_state(start as usize, end as usize - 1)
                .find(end as usize - 1)
                .is_some()
            {
                return Err(EEXIST);
            }
            let n = new_interval_notifier!(
                mm,
                start as usize,
                len as usize,
                SvmRange {
                    aspace: self.aspace.clone(),
                    id: self.next_range.fetch_add(1, Relaxed),
                },
                SvmRangeState { live: true },
            )?;
            self.ranges
                .insert_range(start as usize..end as usize, n.clone(), GFP_KERNEL)?;
            n
        };
        if populate {
            self.populate(dev, &n)?;
        }
        Ok(())
    }

    /// Stops mirroring a range bound exactly as `[start, start + len)`.
    pub(crate) fn unbind(&self, start: u64, len: u64) -> Result {
        let n = {
            let _binding = self.binding.lock();
            let found = self
                .ranges
                .lock()
                .load(start as usize)
                .is_some_and(|r| r.start() as u64 == start && r.size() as u64 == len);
            if !found {
                return Err(ENOENT);
            }
            self.ranges.erase(start as usize).ok_or(ENOENT)?
        };
        let garbage = {
            let mut st = n.lock();
            st.live = false;
            let mut tables = self.aspace.tables.lock();
            self.aspace.unmap(&mut tables, start, start + len, true)
        };
        drop(garbage);
        Ok(())
    }

    /// Runs `f` with binds and unbinds held off, if what covers `va` is
    /// still `seen`: no range (`None`), or the range with that id, no
    /// invalidation since that sequence. `None` (and `f` not run) if it is
    /// not. A fault is failed this way, so that a range bound or a page
    /// mapped since, and a new access at the address, is not failed with
    /// it.
    pub(crate) fn while_unchanged<R>(
        &self,
        va: u64,
        seen: Option<(u64, ReadSeq)>,
        f: impl FnOnce() -> R,
    ) -> Option<R> {
        let _binding = self.binding.lock();
        let same = match (seen, self.range_at(va)) {
            (None, None) => true,
            (Some((id, seq)), Some(n)) => n.ops().id == id && !n.check_retry(seq),
            _ => false,
        };
        same.then(f)
    }

    /// The bound range that covers `va`.
    pub(crate) fn range_at(&self, va: u64) -> Option<Arc<SvmNotifier>> {
        let va = usize::try_from(va).ok()?;
        self.ranges.lock().load(va).map(Arc::from)
    }

    /// Mirrors, read-only, every page of `n` that the CPU maps now. Only
    /// what VMAs cover is walked, so holes cost nothing; a fatal signal
    /// stops the walk (`EINTR`).
    fn populate(&self, dev: &Device<Bound>, n: &SvmNotifier) -> Result {
        let huge = PageSize::Huge.bytes() as usize;
        let mm = self.mm.mmget_not_zero().ok_or(EFAULT)?;
        let (start, end) = (n.start(), n.start() + n.size());
        let mut buf = MirrorBuf::new(mirror::MIRROR_PAGES)?;
        let mut at = start;
        let res = loop {
            let Some((s, e)) = khmm::next_mapped(&mm, at, end) else {
                break Ok(());
            };
            let mut block = s & !(huge - 1);
            let res = loop {
                if block >= e {
                    break Ok(());
                }
                if khmm::fatal_signal_pending() {
                    break Err(EINTR);
                }
                let (bs, be) = (block.max(s), (block + huge).min(e));
                if let Err(err) = self.mirror(Some(dev), n, bs as u64, be as u64, None, &mut buf) {
                    break Err(err);
                }
                block += huge;
            };
            if res.is_err() || e >= end {
                break res;
            }
            at = e;
        };
        // New PTEs only (a mirror pass never replaces one here), but a
        // cached directory entry must not outlive them.
        self.aspace.flush();
        res
    }

    /// Serves a GPU fault at `va` in range `n` (a write or atomic if
    /// `write`) with a worker's buffers; `EAGAIN` if page tables ran out
    /// (the access faults again), `ENOENT` if `n` was unbound meanwhile.
    /// The TLB is not flushed: the caller's
    /// replay does it. Returns the notifier sequence the mapping is
    /// current at.
    pub(crate) fn handle_fault(
        &self,
        n: &SvmNotifier,
        va: u64,
        write: bool,
        buf: &mut MirrorBuf,
    ) -> Result<ReadSeq> {
        let window = mirror::FAULT_WINDOW;
        let page = va & !(PAGE_SIZE as u64 - 1);
        let (rs, re) = (n.start() as u64, (n.start() + n.size()) as u64);
        let s = (page & !(window - 1)).max(rs);
        let e = ((page & !(window - 1)) + window).min(re);
        self.mirror(None, n, s, e, Some(FaultPage { page, write }), buf)
    }
}
