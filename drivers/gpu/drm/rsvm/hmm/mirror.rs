// SPDX-License-Identifier: GPL-2.0

//! The mirror pass: `hmm_range_fault` over a window of a range, then its
//! valid pages written as PTEs, under the range's notifier lock only if no
//! invalidation ran since the snapshot (`mmu_interval_read_retry`).
//!
//! This is the only code that holds a notifier lock and the page-table lock
//! together (in that order), and the only code that turns what HMM found
//! into a PTE.

use kernel::{
    device::{
        Bound,
        Device, //
    },
    mm::{
        hmm::{
            HmmPage,
            PfnBuf,
            Range,
            Request, //
        },
        mmu_notifier::ReadSeq, //
    },
    page::PAGE_SIZE,
    prelude::*,
    time::msecs_to_jiffies, //
};

use super::{
    range::{
        SvmNotifier,
        SvmRange, //
    },
    Svm, //
};
use crate::mmu::{
    Garbage,
    PageSize,
    PageTables,
    PteFlags,
    Reserve, //
};

/// Bytes around a faulting page that are mirrored with it if the CPU maps
/// them (a naturally aligned window).
pub(crate) const FAULT_WINDOW: u64 = 64 << 10;

/// Pages one populate pass handles at most (a 2 MiB block).
pub(crate) const MIRROR_PAGES: usize = 512;

/// How long one fault may retry against concurrent invalidations.
const FAULT_TIMEOUT_MS: u32 = 2000;

/// What a mirror pass needs, allocated ahead: the `hmm_range_fault` pfn
/// array and the page tables a mapping may take.
pub(crate) struct MirrorBuf {
    pfns: PfnBuf,
    reserve: Reserve,
}

impl MirrorBuf {
    /// Room for passes of up to `pages` pages.
    pub(crate) fn new(pages: usize) -> Result<Self> {
        Ok(Self {
            pfns: PfnBuf::new(pages)?,
            reserve: Reserve::default(),
        })
    }

    /// Room for one fault window.
    pub(crate) fn for_faults() -> Result<Self> {
        Self::new(FAULT_WINDOW as usize / PAGE_SIZE)
    }
}

/// The page a fault asks for, and whether it needs write access.
#[derive(Clone, Copy)]
pub(crate) struct FaultPage {
    pub(crate) page: u64,
    pub(crate) write: bool,
}

/// One mirror pass's view: the window it snapshotted.
struct Pass<'a, 'b> {
    range: &'a Range<'b, SvmRange>,
    notifier: &'a SvmNotifier,
    /// First address of the window.
    start: u64,
    fault: Option<FaultPage>,
}

impl Svm {
    /// Snapshots `[s, e)` (inside one 2 MiB block and the range of `n`) and
    /// mirrors what the CPU maps; `fault` names a page to fault in first.
    /// Page tables come from the buffer's reserve, topped up from the
    /// device's pool, or with `dev` allocated; without `dev`, `EAGAIN` when
    /// both ran out; `ENOENT` if the range was unbound meanwhile. Returns
    /// the notifier sequence the mapping is current at.
    pub(super) fn mirror(
        &self,
        dev: Option<&Device<Bound>>,
        n: &SvmNotifier,
        s: u64,
        e: u64,
        fault: Option<FaultPage>,
        buf: &mut MirrorBuf,
    ) -> Result<ReadSeq> {
        let MirrorBuf { pfns, reserve } = buf;
        // The worker is not the process: keep its address space alive.
        let _users = self.mm.mmget_not_zero().ok_or(EFAULT)?;
        let mut range = Range::new_in(n, s as usize, e as usize, Request::Snapshot, pfns)?;
        if let Some(f) = fault {
            let req = if f.write {
                Request::Write
            } else {
                Request::Read
            };
            range.set_request(((f.page - s) / PAGE_SIZE as u64) as usize, req)?;
        }
        loop {
            if !reserve.fill_from(&self.pool) {
                if let Some(dev) = dev {
                    reserve.fill(dev)?;
                }
            }
            let seq = range.fault(msecs_to_jiffies(FAULT_TIMEOUT_MS))?;
            let Some(st) = n.lock_if_unchanged(seq) else {
                continue;
            };
            // Unbound meanwhile: nothing may be mapped for it.
            if !st.live {
                return Err(ENOENT);
            }
            let mut garbage = Garbage::default();
            let pass = Pass {
                range: &range,
                notifier: n,
                start: s,
                fault,
            };
            let res = {
                let mut tables = self.aspace.tables.lock();
                pass.map(&mut tables, reserve, &mut garbage)
            };
            drop(st);
            // Freed tables must be forgotten by the GPU before they go.
            if !garbage.is_empty() {
                self.aspace.flush();
            }
            drop(garbage);
            match res {
                Err(err) if err == EAGAIN && (dev.is_some() || reserve.fill_from(&self.pool)) => {
                    continue
                }
                res => return res.map(|_| seq),
            }
        }
    }
}

impl Pass<'_, '_> {
    /// Writes the PTEs for the pages the snapshot found valid; returns
    /// whether it wrote any.
    fn map(
        &self,
        tables: &mut PageTables,
        reserve: &mut Reserve,
        garbage: &mut Garbage,
    ) -> Result<bool> {
        let huge = PageSize::Huge.bytes();
        let mut wrote = false;
        for (i, p) in self.range.pages().enumerate() {
            let va = self.start + (i * PAGE_SIZE) as u64;
            // Only system memory is mirrored (rsvm registers no device
            // memory yet, and names no owner: HMM migrates other devices'
            // pages back to RAM first).
            let Some(HmmPage::System(page)) = p.page() else {
                continue;
            };
            let pa = page.phys_addr();
            let Some(f) = self.fault.filter(|f| f.page == va) else {
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
                read_only: !f.write,
                privileged: false,
            };
            // A PMD-mapped THP wholly inside the range: one 2 MiB PTE.
            let block = va & !(huge - 1);
            let block_pa = pa - (va - block);
            if p.map_order() >= 9
                && block_pa % huge == 0
                && self
                    .notifier
                    .covers(block as usize, (block + huge) as usize)
            {
                tables.map(block, block_pa, PageSize::Huge, flags, reserve, garbage)?;
            } else {
                tables.map(va, pa, PageSize::Small, flags, reserve, garbage)?;
            }
            wrote = true;
        }
        Ok(wrote)
    }
}
