// SPDX-License-Identifier: GPL-2.0

//! The GMMU's TLB invalidate and the fault replay and cancel that share its
//! register (`NV_PFB_PRI_MMU_INVALIDATE*`, `pri_mmu_hub.ref`).
//!
//! Locking: `lock` serializes the invalidate registers. A targeted
//! invalidate is five writes (PDB, VADDR, their upper halves, then the
//! trigger); two interleaved ones would flush each other's target instead
//! of their own, leaving stale translations of an address space whose pages
//! are about to be reused. It is a leaf spinlock, taken in MMU notifiers
//! (which may not block) and held only for the register writes.

use kernel::{
    io::Io,
    new_spinlock,
    prelude::*,
    sync::{
        Arc,
        SpinLock, //
    }, //
};

pub(crate) use crate::regs::Replay;
use crate::{
    hw::{
        Bar0,
        Hw, //
    },
    regs::{
        self,
        PdbAperture, //
    }, //
};

/// Highest address a register-path cancel can name: `UPPER_VADDR` holds
/// bits 59:40.
pub(crate) const CANCEL_VA_LIMIT: u64 = 1 << 60;

/// Reads of `NV_PFB_PRI_MMU_INVALIDATE` before an invalidate that has not
/// completed is reported (the model completes it at once).
const INVALIDATE_POLLS: usize = 1000;

/// The TLB invalidate unit of one GPU.
#[pin_data]
pub(crate) struct Tlb {
    hw: Arc<Hw>,
    #[pin]
    lock: SpinLock<()>,
}

impl Tlb {
    pub(crate) fn new(hw: Arc<Hw>) -> impl PinInit<Self> {
        pin_init!(Self {
            hw,
            lock <- new_spinlock!(()),
        })
    }

    /// Waits, without sleeping, until the last `NV_PFB_PRI_MMU_INVALIDATE`
    /// completed (its `TRIGGER` reads back clear).
    fn wait_done(bar: &Bar0<'_>) {
        for _ in 0..INVALIDATE_POLLS {
            if !bar.read(regs::NV_PFB_PRI_MMU_INVALIDATE).trigger() {
                return;
            }
        }
        pr_warn!("rsvm: TLB invalidate did not complete\n");
    }

    /// Invalidates the TLB for the address space at `pdb` and applies
    /// `replay` to the stalled faults; with `Replay::CancelVaGlobal` it
    /// invalidates and cancels the page at `va` of that address space only
    /// (`va` below [`CANCEL_VA_LIMIT`]; bits above are dropped). Complete
    /// when this returns.
    pub(crate) fn invalidate(&self, pdb: u64, va: u64, replay: Replay) {
        // Bits 39:12 and 59:40 of each: the fields hold exactly these.
        let lo = |x: u64| ((x >> 12) & 0xfff_ffff) as u32;
        let hi = |x: u64| ((x >> 40) & 0xf_ffff) as u32;
        let pdb_lo = regs::NV_PFB_PRI_MMU_INVALIDATE_PDB::zeroed()
            .with_aperture(PdbAperture::SysMem)
            .try_with_addr(lo(pdb));
        let upper_pdb = regs::NV_PFB_PRI_MMU_INVALIDATE_UPPER_PDB::zeroed().try_with_addr(hi(pdb));
        let vaddr = regs::NV_PFB_PRI_MMU_INVALIDATE_VADDR::zeroed().try_with_addr(lo(va));
        let upper_vaddr =
            regs::NV_PFB_PRI_MMU_INVALIDATE_UPPER_VADDR::zeroed().try_with_addr(hi(va));
        let (Ok(pdb_lo), Ok(upper_pdb), Ok(vaddr), Ok(upper_vaddr)) =
            (pdb_lo, upper_pdb, vaddr, upper_vaddr)
        else {
            // Masked to the fields' widths above: cannot happen.
            pr_warn!(
                "rsvm: invalidate of {:#x} at {:#x} not encodable\n",
                pdb,
                va
            );
            return;
        };
        let targeted = replay == Replay::CancelVaGlobal;
        let cmd = regs::NV_PFB_PRI_MMU_INVALIDATE::zeroed()
            .with_trigger(true)
            .with_all_va(!targeted)
            .with_all_pdb(replay == Replay::Start)
            .with_replay(replay);
        self.hw.regs(|bar| {
            let _guard = self.lock.lock();
            bar.write_reg(pdb_lo);
            bar.write_reg(upper_pdb);
            bar.write_reg(vaddr);
            bar.write_reg(upper_vaddr);
            bar.write_reg(cmd);
            Self::wait_done(bar);
        });
    }

    /// Invalidates every TLB entry and re-issues every stalled access, in
    /// one register write (nouveau's `0xb`: ALL_VA, ALL_PDB, REPLAY_START).
    /// The page-table writes before it are ordered before it (`writel`).
    /// With `wait`, returns once the invalidate completed (before freeing
    /// page tables or restarting an engine); a replay needs no wait.
    pub(crate) fn invalidate_all_and_replay(&self, wait: bool) {
        self.hw.regs(|bar| {
            let _guard = self.lock.lock();
            bar.write_reg(
                regs::NV_PFB_PRI_MMU_INVALIDATE::zeroed()
                    .with_trigger(true)
                    .with_all_va(true)
                    .with_all_pdb(true)
                    .with_replay(Replay::Start),
            );
            if wait {
                Self::wait_done(bar);
            }
        });
    }
}
