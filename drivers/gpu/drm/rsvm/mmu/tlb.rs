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
    },
};

use crate::{
    hw::{
        Bar0,
        Hw, //
    },
    regs,
};

/// What a fault replay register write does to the stalled accesses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Replay {
    /// Nothing: a plain TLB invalidate.
    None = 0,
    /// Re-issue every stalled access.
    Start = 1,
    /// Fail the jobs stalled at the invalidate address, in the invalidate's
    /// address space only.
    CancelVaGlobal = 5,
}

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
    /// (`va` below [`CANCEL_VA_LIMIT`]). Complete when this returns.
    pub(crate) fn invalidate(&self, pdb: u64, va: u64, replay: Replay) {
        self.hw.regs(|bar| {
            let _guard = self.lock.lock();
            bar.write_reg(regs::NV_PFB_PRI_MMU_INVALIDATE_PDB::from(
                (((pdb >> 12) as u32) << 4) | (1 << 1),
            ));
            bar.write_reg(regs::NV_PFB_PRI_MMU_INVALIDATE_UPPER_PDB::from(
                (pdb >> 40) as u32,
            ));
            bar.write_reg(regs::NV_PFB_PRI_MMU_INVALIDATE_VADDR::from(
                ((va >> 12) as u32) << 4,
            ));
            bar.write_reg(regs::NV_PFB_PRI_MMU_INVALIDATE_UPPER_VADDR::from(
                ((va >> 40) & 0xf_ffff) as u32,
            ));
            let targeted = replay == Replay::CancelVaGlobal;
            let cmd = regs::NV_PFB_PRI_MMU_INVALIDATE::zeroed()
                .with_trigger(true)
                .with_all_va(!targeted)
                .with_all_pdb(replay == Replay::Start);
            // `Replay` values fit the 3-bit field.
            bar.write_reg(cmd.try_with_replay(replay as u32).unwrap_or(cmd));
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
            let cmd = regs::NV_PFB_PRI_MMU_INVALIDATE::zeroed()
                .with_trigger(true)
                .with_all_va(true)
                .with_all_pdb(true);
            bar.write_reg(cmd.try_with_replay(Replay::Start as u32).unwrap_or(cmd));
            if wait {
                Self::wait_done(bar);
            }
        });
    }
}
