// SPDX-License-Identifier: GPL-2.0

//! One GPU address space: its page tables, its page directory base for
//! instance blocks, and the TLB flush that makes a change visible.
//!
//! Channels bind to an address space; the SVM mirror writes its PTEs
//! through it. Locking: `tables` is taken after a range's notifier lock
//! (never before it), and nothing is allocated under it (see
//! [`super::Reserve`]).

use kernel::{
    device::{
        Bound,
        Device, //
    },
    mm::mmu_notifier::annotate_reclaim,
    new_mutex,
    page::PAGE_SIZE,
    prelude::*,
    sync::{
        Arc,
        Mutex, //
    }, //
};

use super::{
    tlb::{
        Replay,
        Tlb, //
    },
    Garbage,
    PageSize,
    PageTables,
    PtCount,
    PteFlags,
    Reserve, //
};

/// The page tables of one address space and what flushes the GPU's view.
#[pin_data(PinnedDrop)]
pub(crate) struct AddressSpace {
    tlb: Arc<Tlb>,
    pdb: u64,
    #[pin]
    pub(crate) tables: Mutex<PageTables>,
}

impl AddressSpace {
    /// An empty address space, its tables counted in `count`.
    pub(crate) fn new(
        dev: &Device<Bound>,
        tlb: &Arc<Tlb>,
        count: &Arc<PtCount>,
    ) -> Result<Arc<Self>> {
        let tables = PageTables::new(dev, count)?;
        let pdb = tables.pdb();
        let aspace = Arc::pin_init(
            try_pin_init!(Self {
                tlb: tlb.clone(),
                pdb,
                tables <- new_mutex!(tables),
            }),
            GFP_KERNEL,
        )?;
        // MMU notifiers take the page-table lock in reclaim: lockdep is to
        // report any allocation under it, not trust that there is none.
        annotate_reclaim(|| drop(aspace.tables.lock()));
        Ok(aspace)
    }

    /// Page directory base, for instance blocks and targeted invalidates.
    pub(crate) fn pdb(&self) -> u64 {
        self.pdb
    }

    /// Flushes this address space's translations from every TLB.
    pub(crate) fn flush(&self) {
        self.tlb.invalidate(self.pdb, 0, Replay::None);
    }

    /// Clears `[start, end)`, frees emptied tables (`prune`) and flushes the
    /// TLB. With `prune` false it neither sleeps nor frees.
    pub(crate) fn unmap(
        &self,
        tables: &mut PageTables,
        start: u64,
        end: u64,
        prune: bool,
    ) -> Garbage {
        let mut garbage = Garbage::default();
        let cleared = tables.unmap(start, end, prune, &mut garbage);
        if cleared != 0 || !garbage.is_empty() {
            self.flush();
        }
        garbage
    }

    /// Maps driver buffers, `(va, (dma address, size))`, at kernel
    /// addresses, privileged (user work cannot touch them). All of them lie
    /// in one 2 MiB block.
    pub(crate) fn map_kernel(&self, dev: &Device<Bound>, bufs: &[(u64, (u64, usize))]) -> Result {
        let flags = PteFlags {
            read_only: false,
            privileged: true,
        };
        let mut reserve = Reserve::default();
        loop {
            reserve.fill(dev)?;
            let mut garbage = Garbage::default();
            let mut tables = self.tables.lock();
            let res = bufs.iter().try_for_each(|&(va, (addr, size))| {
                (0..size as u64).step_by(PAGE_SIZE).try_for_each(|off| {
                    tables.map(
                        va + off,
                        addr + off,
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
            let mut tables = self.tables.lock();
            self.unmap(&mut tables, va, va + len, true)
        };
        drop(garbage);
    }
}

#[pinned_drop]
impl PinnedDrop for AddressSpace {
    fn drop(self: Pin<&mut Self>) {
        // The GPU may still cache translations of this address space; its
        // page directory's page may become another address space's next:
        // forget them before the tables are freed.
        self.flush();
    }
}
