// SPDX-License-Identifier: GPL-2.0

//! The SVM core: a GPU VM whose page tables mirror ranges of one process's
//! address space.
//!
//! Each SVM-bound range has an MMU interval notifier ([`Mirror`]). GPU
//! faults are served with `hmm_range_fault`: a read fault asks for read
//! access and maps the page read-only (so a GPU read never dirties a page),
//! a write or atomic fault asks for write access (breaking COW and dirtying
//! the page on the CPU side first) and maps it writable. Pages around the
//! faulting one that the CPU already maps are mirrored read-only in the same
//! pass. Every CPU page-table change of a range reaches [`Mirror::invalidate`]
//! first, which clears the PTEs and invalidates the GPU TLB before it returns.
//!
//! Lock order: the notifier lock of a range, then the page-table lock. Page
//! tables are never allocated under either (see [`Reserve`]).

use kernel::{
    device::{Bound, Device},
    mm::{
        hmm::{Range, Request},
        mmu_notifier::{IntervalNotifier, IntervalNotifierOps, NotifierRange},
        Mm, MmWithUser,
    },
    new_mutex,
    page::PAGE_SIZE,
    prelude::*,
    sync::{aref::ARef, Arc, Mutex},
    time::msecs_to_jiffies,
};

use crate::{
    fifo::{KERNEL_VA_SIZE, KERNEL_VA_START},
    gpu::{Hw, Replay},
    mem::DmaBuf,
    mmu::{Garbage, PageSize, PageTables, PteFlags, Reserve},
};

/// SVM ranges must end at or below this address (the x86-64 and arm64
/// 4-level user address space).
pub(crate) const SVM_VA_LIMIT: u64 = 1 << 47;

/// Bytes around a faulting page that are mirrored with it if the CPU maps
/// them (a naturally aligned window).
const FAULT_WINDOW: u64 = 64 << 10;

/// How long one fault may retry against concurrent invalidations.
const FAULT_TIMEOUT_MS: u32 = 2000;

/// The page tables of a VM and what is needed to flush the GPU's view.
#[pin_data]
struct VmPt {
    hw: Arc<Hw>,
    pdb: u64,
    #[pin]
    tables: Mutex<PageTables>,
}

impl VmPt {
    /// Clears `[start, end)`, frees emptied tables (`prune`) and flushes the
    /// TLB. With `prune` false it neither sleeps nor frees.
    fn unmap(&self, tables: &mut PageTables, start: u64, end: u64, prune: bool) -> Garbage {
        let mut garbage = Garbage::default();
        let cleared = tables.unmap(start, end, prune, &mut garbage);
        if cleared != 0 || !garbage.is_empty() {
            self.hw.invalidate_tlb(self.pdb, 0, Replay::None);
        }
        garbage
    }
}

/// State of a mirrored range under its notifier lock.
struct MirrorState {
    /// Cleared on unbind: nothing may be mapped for the range any more.
    live: bool,
}

/// The interval-notifier side of one SVM range.
struct Mirror {
    pt: Arc<VmPt>,
}

impl IntervalNotifierOps for Mirror {
    type State = MirrorState;

    fn invalidate(&self, _st: &mut MirrorState, range: &NotifierRange<'_>) -> bool {
        let blockable = range.is_blockable();
        let mut tables = if blockable {
            self.pt.tables.lock()
        } else {
            match self.pt.tables.try_lock() {
                Some(t) => t,
                None => return false,
            }
        };
        let garbage = self.pt.unmap(
            &mut tables,
            range.start() as u64,
            range.end() as u64,
            blockable,
        );
        drop(tables);
        drop(garbage);
        true
    }
}

/// A GPU virtual address space that mirrors one process.
#[pin_data]
pub(crate) struct Vm {
    hw: Arc<Hw>,
    /// The process whose address space is mirrored.
    mm: ARef<Mm>,
    pt: Arc<VmPt>,
    /// Bound ranges, by start address.
    #[pin]
    ranges: Mutex<KVec<Arc<IntervalNotifier<Mirror>>>>,
}

impl Vm {
    /// An empty VM mirroring nothing yet of `mm`.
    pub(crate) fn new(dev: &Device<Bound>, hw: &Arc<Hw>, mm: &MmWithUser) -> Result<Arc<Self>> {
        let tables = PageTables::new(dev)?;
        let pdb = tables.pdb();
        let pt = Arc::pin_init(
            try_pin_init!(VmPt {
                hw: hw.clone(),
                pdb,
                tables <- new_mutex!(tables),
            }),
            GFP_KERNEL,
        )?;
        let mm: &Mm = mm;
        Arc::pin_init(
            try_pin_init!(Self {
                hw: hw.clone(),
                mm: ARef::from(mm),
                pt,
                ranges <- new_mutex!(KVec::new()),
            }),
            GFP_KERNEL,
        )
    }

    /// Whether `mm` is the address space this VM mirrors.
    pub(crate) fn is_owner(&self, mm: &MmWithUser) -> bool {
        core::ptr::eq(self.mm.as_raw(), mm.as_raw())
    }

    /// Page directory base, for instance blocks.
    pub(crate) fn pdb(&self) -> u64 {
        self.pt.pdb
    }

    /// Starts mirroring `[start, start + len)` of `mm` (the owner).
    pub(crate) fn bind(
        &self,
        dev: &Device<Bound>,
        mm: &MmWithUser,
        start: u64,
        len: u64,
        populate: bool,
    ) -> Result {
        let page = PAGE_SIZE as u64;
        let end = start.checked_add(len).ok_or(EINVAL)?;
        if start % page != 0 || len % page != 0 || len == 0 || end > SVM_VA_LIMIT {
            return Err(EINVAL);
        }
        if start < KERNEL_VA_START + KERNEL_VA_SIZE && end > KERNEL_VA_START {
            return Err(EINVAL);
        }
        let n = {
            let mut ranges = self.ranges.lock();
            if ranges.iter().any(|r| {
                let (s, e) = (r.start() as u64, (r.start() + r.size()) as u64);
                start < e && end > s
            }) {
                return Err(EEXIST);
            }
            let n = IntervalNotifier::new(
                mm,
                start as usize,
                len as usize,
                Mirror {
                    pt: self.pt.clone(),
                },
                MirrorState { live: true },
            )?;
            let at = ranges
                .iter()
                .position(|r| r.start() as u64 > start)
                .unwrap_or(ranges.len());
            ranges.insert_within_capacity(at, n.clone()).or_else(|_| {
                ranges.reserve(1, GFP_KERNEL)?;
                ranges
                    .insert_within_capacity(at, n.clone())
                    .map_err(|_| ENOMEM)
            })?;
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
            let mut ranges = self.ranges.lock();
            let i = ranges
                .iter()
                .position(|r| r.start() as u64 == start && r.size() as u64 == len)
                .ok_or(ENOENT)?;
            ranges.remove(i)?
        };
        let garbage = {
            let mut st = n.lock();
            st.live = false;
            let mut tables = self.pt.tables.lock();
            self.pt.unmap(&mut tables, start, start + len, true)
        };
        drop(garbage);
        Ok(())
    }

    /// Mirrors, read-only, every page of `n` that the CPU maps now.
    fn populate(&self, dev: &Device<Bound>, n: &IntervalNotifier<Mirror>) -> Result {
        let huge = PageSize::Huge.bytes();
        let (start, end) = (n.start() as u64, (n.start() + n.size()) as u64);
        let mut block = start & !(huge - 1);
        while block < end {
            let (s, e) = (block.max(start), (block + huge).min(end));
            self.mirror(dev, n, s, e, None)?;
            block += huge;
        }
        Ok(())
    }

    /// Serves a GPU fault at `va` (a write or atomic if `write`).
    pub(crate) fn handle_fault(&self, dev: &Device<Bound>, va: u64, write: bool) -> Result {
        let n = {
            let ranges = self.ranges.lock();
            ranges
                .iter()
                .find(|r| r.covers(va as usize, va as usize + 1))
                .cloned()
                .ok_or(EFAULT)?
        };
        let page = va & !(PAGE_SIZE as u64 - 1);
        let (rs, re) = (n.start() as u64, (n.start() + n.size()) as u64);
        let s = (page & !(FAULT_WINDOW - 1)).max(rs);
        let e = ((page & !(FAULT_WINDOW - 1)) + FAULT_WINDOW).min(re);
        self.mirror(dev, &n, s, e, Some((page, write)))
    }

    /// Snapshots `[s, e)` (inside one 2 MiB block and the range of `n`) and
    /// mirrors what the CPU maps; `fault` names a page to fault in first.
    fn mirror(
        &self,
        dev: &Device<Bound>,
        n: &IntervalNotifier<Mirror>,
        s: u64,
        e: u64,
        fault: Option<(u64, bool)>,
    ) -> Result {
        // The worker is not the process: keep its address space alive.
        let _users = self.mm.mmget_not_zero().ok_or(EFAULT)?;
        let mut range = Range::new(n, s as usize, e as usize, Request::Snapshot)?;
        if let Some((page, write)) = fault {
            let req = if write { Request::Write } else { Request::Read };
            range.set_request(((page - s) / PAGE_SIZE as u64) as usize, req)?;
        }
        let mut reserve = Reserve::default();
        loop {
            reserve.fill(dev, Reserve::PER_MAPPING)?;
            let seq = range.fault(msecs_to_jiffies(FAULT_TIMEOUT_MS))?;
            let Some(st) = n.lock_if_unchanged(seq) else {
                continue;
            };
            if !st.live {
                return Err(EFAULT);
            }
            let mut garbage = Garbage::default();
            let res = {
                let mut tables = self.pt.tables.lock();
                self.map_range(&mut tables, n, &range, s, fault, &mut reserve, &mut garbage)
            };
            drop(st);
            // The GPU may have cached the missing translation (and freed
            // tables must be forgotten): flush after every PTE change.
            if matches!(res, Ok(true)) || !garbage.is_empty() {
                self.hw.invalidate_tlb(self.pt.pdb, 0, Replay::None);
            }
            drop(garbage);
            match res {
                Err(err) if err == EAGAIN => continue,
                res => return res.map(|_| ()),
            }
        }
    }

    /// Writes the PTEs for the pages `range` found valid; returns whether it
    /// wrote any.
    #[allow(clippy::too_many_arguments)]
    fn map_range(
        &self,
        tables: &mut PageTables,
        n: &IntervalNotifier<Mirror>,
        range: &Range<'_, Mirror>,
        s: u64,
        fault: Option<(u64, bool)>,
        reserve: &mut Reserve,
        garbage: &mut Garbage,
    ) -> Result<bool> {
        let huge = PageSize::Huge.bytes();
        let mut wrote = false;
        for (i, p) in range.pages().enumerate() {
            let va = s + (i * PAGE_SIZE) as u64;
            if !p.is_valid() {
                continue;
            }
            let pa = (p.pfn() as u64) << 12;
            let faulting = fault.filter(|&(page, _)| page == va);
            let Some((_, write)) = faulting else {
                // A neighbour: mirror it read-only unless already mapped.
                if !tables.is_mapped(va) {
                    let ro = PteFlags {
                        read_only: true,
                        privileged: false,
                    };
                    tables.map(va, pa, PageSize::Small, ro, reserve, garbage)?;
                    wrote = true;
                }
                continue;
            };
            let flags = PteFlags {
                read_only: !write,
                privileged: false,
            };
            // A PMD-mapped THP wholly inside the range: one 2 MiB PTE.
            let block = va & !(huge - 1);
            let block_pa = pa - (va - block);
            if p.map_order() >= 9
                && block_pa % huge == 0
                && n.covers(block as usize, (block + huge) as usize)
            {
                tables.map(block, block_pa, PageSize::Huge, flags, reserve, garbage)?;
            } else {
                tables.map(va, pa, PageSize::Small, flags, reserve, garbage)?;
            }
            wrote = true;
        }
        Ok(wrote)
    }

    /// Maps driver buffers at kernel addresses, privileged (user work
    /// cannot touch them). All of them lie in one 2 MiB block.
    pub(crate) fn map_kernel(&self, dev: &Device<Bound>, bufs: &[(u64, &DmaBuf)]) -> Result {
        let flags = PteFlags {
            read_only: false,
            privileged: true,
        };
        let mut reserve = Reserve::default();
        loop {
            reserve.fill(dev, Reserve::PER_MAPPING)?;
            let mut garbage = Garbage::default();
            let mut tables = self.pt.tables.lock();
            let res = bufs.iter().try_for_each(|(va, buf)| {
                (0..buf.size() as u64)
                    .step_by(PAGE_SIZE)
                    .try_for_each(|off| {
                        tables.map(
                            va + off,
                            buf.addr() + off,
                            PageSize::Small,
                            flags,
                            &mut reserve,
                            &mut garbage,
                        )
                    })
            });
            drop(tables);
            match res {
                Err(err) if err == EAGAIN => continue,
                res => return res,
            }
        }
    }

    /// Unmaps kernel addresses `[va, va + len)`.
    pub(crate) fn unmap_kernel(&self, va: u64, len: u64) {
        let garbage = {
            let mut tables = self.pt.tables.lock();
            self.pt.unmap(&mut tables, va, va + len, true)
        };
        drop(garbage);
    }
}
