// SPDX-License-Identifier: GPL-2.0

//! The GPU as a whole: identity, the register file, the top-level interrupt
//! and the MMU operations (TLB invalidate, fault replay) every unit uses.

use kernel::{
    device::Bound,
    io::{poll::read_poll_timeout, register::Array, Io},
    new_condvar, new_mutex, new_spinlock, new_spinlock_irq, pci,
    pci::DevresBar,
    prelude::*,
    sync::{
        atomic::{Acquire, Atomic, Relaxed, Release},
        Arc, CondVar, Mutex, SpinLock, SpinLockIrq,
    },
    time::Delta,
    uapi,
};

use crate::{
    fault::FaultBuffers,
    fifo::{self, Fifo},
    mmu::PtPool,
    regs::{self, BAR0_SIZE},
};

/// BAR0 of a bound device.
pub(crate) type Bar0<'a> = pci::Bar<'a, BAR0_SIZE>;

/// Architecture the model reports in `NV_PMC_BOOT_0`: a value no real NVIDIA
/// chip uses, so no real-chip code path can mistake the model for silicon.
const ARCH_RSVM_MODEL: u32 = 0x1f;

/// Virtual address bits of a GMMU v2 address space.
pub(crate) const VA_BITS: u32 = 49;

/// Page sizes the GMMU v2 maps: 4 KiB, 64 KiB and 2 MiB.
pub(crate) const PAGE_SIZES: u64 = (1 << 12) | (1 << 16) | (1 << 21);

/// Units of `NV_PMC_INTR(0)` this driver services.
const INTR_SOFTWARE: u32 = 1 << 31;
const INTR_HUB: u32 = 1 << 9;
const INTR_PFIFO: u32 = 1 << 8;
/// Bits of `NV_PMC_INTR(1)` (non-stall) this driver services.
const NONSTALL_HOST: u32 = 1;
/// `NV_PFB_NISO_INTR` bits of the two fault buffers.
const NISO_FAULTS: u32 = (1 << 27) | (1 << 29);

/// Static facts read from the chip at probe time.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Spec {
    /// Raw `NV_PMC_BOOT_0`.
    pub(crate) boot0: u32,
    /// Local memory (VRAM) size in bytes.
    pub(crate) vram_size: u64,
}

impl Spec {
    fn read(pdev: &pci::Device<Bound>, bar: &Bar0<'_>) -> Result<Self> {
        let boot0 = bar.read(regs::NV_PMC_BOOT_0);
        let arch = u32::from(boot0.architecture());
        if arch != ARCH_RSVM_MODEL {
            dev_err!(pdev, "unsupported architecture {:#x}\n", arch);
            return Err(ENODEV);
        }

        let range = bar.read(regs::NV_PFB_PRI_MMU_LOCAL_MEMORY_RANGE);
        let mag = u64::from(u32::from(range.lower_mag()));
        let shift = u32::from(range.lower_scale()) + 20;
        let vram_size = mag.checked_shl(shift).ok_or(EINVAL)?;
        if vram_size == 0 {
            dev_err!(pdev, "the GPU reports no local memory\n");
            return Err(ENODEV);
        }

        Ok(Self {
            boot0: boot0.into_raw(),
            vram_size,
        })
    }
}

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

/// Page-table pages the interrupt thread keeps ready for the fault workers,
/// which cannot allocate DMA memory themselves (they run without a bound
/// device).
const PT_POOL_TARGET: usize = 32;

/// Reads of `NV_PFB_PRI_MMU_INVALIDATE` before an invalidate that has not
/// completed is reported (the model completes it at once).
const INVALIDATE_POLLS: usize = 1000;

/// The part of the device that outlives a bound scope: what page-table
/// mirrors, channels and open files reach from any context.
///
/// Register access goes through a [`DevresBar`]: once the device is unbound
/// every access is skipped, so an MMU notifier or a file release that runs
/// after unbind touches no hardware.
///
/// Locks: `fifo` (a mutex) is never taken under `errors` or `fence_lock`
/// (spinlocks, also taken in the hard interrupt handler); `pt_pool` and
/// `mmu_lock` are leaves (`mmu_lock` is taken in MMU notifiers, which may
/// not block, and is held only for the register writes).
#[pin_data]
pub(crate) struct Hw {
    bar: DevresBar<BAR0_SIZE>,
    spec: Spec,
    /// `RSVM_FW_ENGINES` of the running firmware.
    engines: u32,
    /// Channel ids, the runlist and the instance-block registry.
    #[pin]
    pub(crate) fifo: Mutex<Fifo>,
    /// Per channel id: `(DRM_RSVM_ERROR_*, info)` of its first error; for
    /// `FAULT` and `MISALIGNED` the info is the whole address.
    #[pin]
    errors: SpinLockIrq<KVec<Option<(u32, u64)>>>,
    /// Taken around the fence check of a waiter and around the wake-up, so
    /// an interrupt between the check and the sleep is not lost.
    #[pin]
    fence_lock: SpinLockIrq<()>,
    #[pin]
    fence_wait: CondVar,
    /// Serializes the MMU invalidate registers: a targeted invalidate is
    /// five writes (PDB, VADDR, their upper halves, then the trigger), and
    /// two interleaved ones would flush each other's target instead of
    /// their own, leaving stale translations of an address space whose
    /// pages are about to be reused.
    #[pin]
    mmu_lock: SpinLock<()>,
    /// Page-table pages ready for fault service.
    #[pin]
    pub(crate) pt_pool: PtPool,
    /// Fault-service work items queued or running (teardown waits for 0).
    fault_work: Atomic<u32>,
}

impl Hw {
    /// Runs `f` on the registers; `None` if the device is gone. `f` runs in
    /// an RCU read-side section: it must not sleep.
    pub(crate) fn regs<R>(&self, f: impl FnOnce(&Bar0<'_>) -> R) -> Option<R> {
        self.bar.try_access().map(|bar| f(&bar))
    }

    pub(crate) fn spec(&self) -> &Spec {
        &self.spec
    }

    /// Whether the firmware enabled the compute engine.
    pub(crate) fn has_compute(&self) -> bool {
        regs::RSVM_FW_ENGINES::from(self.engines).compute()
    }

    /// Whether the firmware enabled the copy engine.
    pub(crate) fn has_copy(&self) -> bool {
        regs::RSVM_FW_ENGINES::from(self.engines).copy()
    }

    /// Waits, without sleeping, until the last `NV_PFB_PRI_MMU_INVALIDATE`
    /// completed (its `TRIGGER` reads back clear).
    fn invalidate_done(bar: &Bar0<'_>) {
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
    pub(crate) fn invalidate_tlb(&self, pdb: u64, va: u64, replay: Replay) {
        self.regs(|bar| {
            let _guard = self.mmu_lock.lock();
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
            Self::invalidate_done(bar);
        });
    }

    /// Invalidates every TLB entry and re-issues every stalled access, in
    /// one register write (nouveau's `0xb`: ALL_VA, ALL_PDB, REPLAY_START).
    /// The page-table writes before it are ordered before it (`writel`).
    /// With `wait`, returns once the invalidate completed (before freeing
    /// page tables or restarting an engine); a replay needs no wait.
    pub(crate) fn invalidate_all_and_replay(&self, wait: bool) {
        self.regs(|bar| {
            let _guard = self.mmu_lock.lock();
            let cmd = regs::NV_PFB_PRI_MMU_INVALIDATE::zeroed()
                .with_trigger(true)
                .with_all_va(true)
                .with_all_pdb(true);
            bar.write_reg(cmd.try_with_replay(Replay::Start as u32).unwrap_or(cmd));
            if wait {
                Self::invalidate_done(bar);
            }
        });
    }

    /// Stops every channel (device unbind).
    pub(crate) fn stop_all_channels(&self) {
        let mut fifo = self.fifo.lock();
        self.regs(|bar| fifo.stop_all(bar));
    }

    /// Disables channel `chid` and preempts it off the GPU: it runs nothing
    /// more (its error says why); it stays bound until it is destroyed.
    pub(crate) fn disable_channel(&self, chid: u32) {
        self.regs(|bar| fifo::disable_channel(bar, chid));
    }

    /// Clears the `ENG_FAULTED`/`PBDMA_FAULTED` of a channel whose
    /// non-replayable fault was served: the unit re-runs what faulted.
    pub(crate) fn restart_channel(&self, chid: u32) {
        self.regs(|bar| {
            if let Some(loc) = regs::NV_PCCSR_CHANNEL::try_at(chid as usize) {
                bar.write(
                    loc,
                    regs::NV_PCCSR_CHANNEL::zeroed()
                        .with_eng_faulted(true)
                        .with_pbdma_faulted(true),
                );
            }
        });
    }

    /// Records the first error of channel `chid` (`code` is a
    /// `DRM_RSVM_ERROR_*`, `info` its detail) and wakes its waiters. A
    /// later error of the same channel is dropped: the first says why it
    /// stopped.
    pub(crate) fn set_channel_error(&self, chid: u32, code: u32, info: u64) {
        {
            let mut errors = self.errors.lock();
            if let Some(slot) = errors.get_mut(chid as usize) {
                slot.get_or_insert((code, info));
            }
        }
        self.signal_fences();
    }

    /// The first error of channel `chid`: `(code, info)`.
    pub(crate) fn channel_error(&self, chid: u32) -> Option<(u32, u64)> {
        self.errors.lock().get(chid as usize).copied().flatten()
    }

    /// Forgets the error of `chid` (for a new channel with that id).
    pub(crate) fn clear_channel_error(&self, chid: u32) {
        if let Some(slot) = self.errors.lock().get_mut(chid as usize) {
            *slot = None;
        }
    }

    /// Wakes every fence waiter.
    pub(crate) fn signal_fences(&self) {
        drop(self.fence_lock.lock());
        self.fence_wait.notify_all();
    }

    /// Waits until `done()` holds, an error is reported (`failed()`), a
    /// signal arrives or `timeout` jiffies pass. Returns `Ok(true)` when
    /// done, `Ok(false)` when failed.
    pub(crate) fn wait_fence(
        &self,
        mut timeout: kernel::time::Jiffies,
        done: impl Fn() -> bool,
        failed: impl Fn() -> bool,
    ) -> Result<bool> {
        use kernel::sync::CondVarTimeoutResult::*;
        let mut guard = self.fence_lock.lock();
        loop {
            if done() {
                return Ok(true);
            }
            if failed() {
                return Ok(false);
            }
            if timeout == 0 {
                return Err(ETIME);
            }
            match self
                .fence_wait
                .wait_interruptible_timeout(&mut guard, timeout)
            {
                Timeout => timeout = 0,
                Woken { jiffies } => timeout = jiffies,
                Signal { .. } => return Err(ERESTARTSYS),
            }
        }
    }

    /// A fault-service work item is about to be queued.
    pub(crate) fn fault_work_begin(&self) {
        self.fault_work.fetch_add(1, Relaxed);
    }

    /// A fault-service work item finished (or was not queued after all).
    pub(crate) fn fault_work_end(&self) {
        self.fault_work.fetch_sub(1, Release);
    }

    /// Waits until no fault-service work is queued or running.
    fn wait_fault_work_idle(&self) {
        while self.fault_work.load(Acquire) != 0 {
            kernel::time::delay::fsleep(Delta::from_millis(1));
        }
    }
}

/// A bound GPU: the shared part, fault buffers and interrupt bookkeeping.
pub(crate) struct Gpu<'bound> {
    pub(crate) pdev: &'bound pci::Device<Bound>,
    pub(crate) hw: Arc<Hw>,
    pub(crate) faults: FaultBuffers,
    /// Running firmware, `major << 16 | minor`.
    firmware_version: u32,
    /// Software interrupts serviced since probe.
    swintr_count: Atomic<u32>,
    /// `NV_PMC_INTR_EN(0)` as this driver set it (read here, not from the
    /// device, on every interrupt).
    intr_en: Atomic<u32>,
}

impl<'bound> Gpu<'bound> {
    /// Maps BAR0, identifies the chip, boots its firmware, sets up the fault
    /// buffers and leaves all interrupts disabled.
    pub(crate) fn new(pdev: &'bound pci::Device<Bound>) -> Result<Self> {
        let bar = pdev
            .iomap_region_sized::<BAR0_SIZE>(0, c"rsvm/bar0")
            .inspect_err(|e| dev_err!(pdev, "cannot map BAR0: {:?}\n", e))?
            .into_devres()?;
        let (spec, firmware_version, engines) = {
            let b = bar.access(pdev.as_ref())?;
            let spec = Spec::read(pdev, b)?;
            let fw = crate::fw::boot(pdev, b, ARCH_RSVM_MODEL)?;
            b.write_reg(regs::NV_PMC_INTR_EN_CLEAR_0::from(u32::MAX));
            b.write_reg(regs::NV_PMC_INTR_EN_CLEAR_1::from(u32::MAX));
            (spec, fw, b.read(regs::RSVM_FW_ENGINES).into_raw())
        };

        let mut errors = KVec::with_capacity(fifo::NUM_CHANNELS, GFP_KERNEL)?;
        errors.extend_with(fifo::NUM_CHANNELS, None, GFP_KERNEL)?;
        let hw = Arc::pin_init(
            try_pin_init!(Hw {
                bar,
                spec,
                engines,
                fifo <- new_mutex!(Fifo::new(pdev.as_ref())?),
                errors <- new_spinlock_irq!(errors),
                fence_lock <- new_spinlock_irq!(()),
                fence_wait <- new_condvar!(),
                mmu_lock <- new_spinlock!(()),
                pt_pool <- PtPool::new(PT_POOL_TARGET)?,
                fault_work: Atomic::new(0),
            }),
            GFP_KERNEL,
        )?;
        hw.pt_pool.refill(pdev.as_ref(), PT_POOL_TARGET)?;
        let faults = FaultBuffers::new(pdev, &hw)?;

        dev_info!(
            pdev,
            "chip {:#010x}, {} MiB VRAM\n",
            spec.boot0,
            spec.vram_size >> 20
        );

        Ok(Self {
            pdev,
            hw,
            faults,
            firmware_version,
            swintr_count: Atomic::new(0),
            intr_en: Atomic::new(0),
        })
    }

    pub(crate) fn spec(&self) -> &Spec {
        self.hw.spec()
    }

    /// The running firmware's version, `major << 16 | minor`.
    pub(crate) fn firmware_version(&self) -> u32 {
        self.firmware_version
    }

    /// Enables the interrupt sources this driver services.
    pub(crate) fn enable_interrupts(&self) {
        let en = INTR_SOFTWARE | INTR_HUB | INTR_PFIFO;
        self.intr_en.store(en, Relaxed);
        self.hw.regs(|bar| {
            bar.write_reg(regs::NV_PFIFO_INTR_EN_0::zeroed().with_channel_error(true));
            bar.write_reg(regs::NV_PFB_NISO_INTR_EN_SET::from(NISO_FAULTS));
            bar.write_reg(regs::NV_PMC_INTR_EN_SET_1::from(NONSTALL_HOST));
            bar.write_reg(regs::NV_PMC_INTR_EN_SET_0::from(en));
        });
    }

    /// Disables every interrupt source (the fault work already queued is
    /// waited for when the GPU is dropped, after its interrupt is freed).
    pub(crate) fn disable_interrupts(&self) {
        self.intr_en.store(0, Relaxed);
        self.hw.regs(|bar| {
            bar.write_reg(regs::NV_PMC_INTR_EN_CLEAR_0::from(u32::MAX));
            bar.write_reg(regs::NV_PMC_INTR_EN_CLEAR_1::from(u32::MAX));
        });
    }

    /// Services the top-level interrupt in hard-IRQ context: fences,
    /// channel errors and the software interrupt here; faults are left to
    /// the thread. Returns `(ours, wake_thread)`.
    ///
    /// The MSI is edge-triggered (a message when an enabled bit becomes
    /// pending), so HUB is not masked while the thread works: it stays
    /// pending, sending nothing, until the thread has moved `GET` past every
    /// packet, and the thread looks at the buffers again after each `GET`
    /// write. Two reads per interrupt: `NV_PMC_INTR(0)` and `(1)`.
    pub(crate) fn handle_interrupt(&self) -> (bool, bool) {
        let enabled = self.intr_en.load(Relaxed);
        self.hw
            .regs(|bar| {
                let intr = bar.read(regs::NV_PMC_INTR_0);
                let nonstall = bar.read(regs::NV_PMC_INTR_1).into_raw();
                let raw = intr.into_raw() & enabled;
                if raw == 0 && nonstall == 0 {
                    return (false, false);
                }
                if nonstall != 0 {
                    // Clear first, then look at the fences: a fence written
                    // after the clear raises a new interrupt.
                    bar.write_reg(regs::NV_PMC_INTR_1::from(nonstall));
                    self.hw.signal_fences();
                }
                if raw & INTR_SOFTWARE != 0 {
                    bar.write_reg(regs::RSVM_SWINTR_STATUS::zeroed().with_pending(true));
                    self.swintr_count.fetch_add(1, Relaxed);
                }
                if raw & INTR_PFIFO != 0 {
                    self.handle_channel_errors(bar);
                }
                let unknown = raw & !(INTR_SOFTWARE | INTR_HUB | INTR_PFIFO);
                if unknown != 0 {
                    dev_warn!(self.pdev, "masking unexpected interrupts {:#x}\n", unknown);
                    self.intr_en.store(enabled & !unknown, Relaxed);
                    bar.write_reg(regs::NV_PMC_INTR_EN_CLEAR_0::from(unknown));
                }
                (true, raw & INTR_HUB != 0)
            })
            .unwrap_or((false, false))
    }

    /// Takes every pending channel error: the device queues one per
    /// stopped channel and shows the oldest until it is acknowledged.
    fn handle_channel_errors(&self, bar: &Bar0<'_>) {
        for _ in 0..fifo::NUM_CHANNELS {
            let chid = bar.read(regs::RSVM_CHANNEL_ERROR_CHID).into_raw();
            if chid == u32::MAX {
                break;
            }
            let code = bar.read(regs::RSVM_CHANNEL_ERROR_CODE).into_raw();
            let info = u64::from(bar.read(regs::RSVM_CHANNEL_ERROR_INFO).into_raw())
                | u64::from(bar.read(regs::RSVM_CHANNEL_ERROR_INFO_HI).into_raw()) << 32;
            bar.write_reg(regs::NV_PFIFO_INTR_0::zeroed().with_channel_error(true));
            // The device's codes are the uAPI's; a cancelled fault's detail
            // is its page number, reported as the page's address.
            let info = match code {
                uapi::DRM_RSVM_ERROR_FAULT => info << 12,
                _ => info,
            };
            self.hw.set_channel_error(chid, code, info);
        }
    }

    /// The threaded half: drains the fault buffers and hands each fault to
    /// its VM's worker, until a pass finds none. Keeps the page-table pool
    /// the workers draw from filled (this thread has a bound device).
    pub(crate) fn handle_threaded(&self) {
        loop {
            if self
                .hw
                .pt_pool
                .refill(self.pdev.as_ref(), PT_POOL_TARGET)
                .is_err()
            {
                dev_warn!(self.pdev, "cannot refill the page-table pool\n");
            }
            if !self.faults.service(&self.hw) {
                break;
            }
        }
    }

    /// Raises the software interrupt and waits for the handler to see it:
    /// proves that MSI-X delivery works end to end before userspace can
    /// depend on it.
    pub(crate) fn interrupt_self_test(&self) -> Result {
        let before = self.swintr_count.load(Relaxed);
        self.hw.regs(|bar| {
            bar.write_reg(regs::RSVM_SWINTR_TRIGGER::zeroed().with_raise(true));
        });
        read_poll_timeout(
            || Ok(self.swintr_count.load(Relaxed)),
            |&count| count != before,
            Delta::from_millis(1),
            Delta::from_secs(5),
        )
        .inspect_err(|_| dev_err!(self.pdev, "MSI-X self-test: no interrupt\n"))?;
        dev_info!(self.pdev, "MSI-X self-test passed\n");
        Ok(())
    }
}

impl Drop for Gpu<'_> {
    fn drop(&mut self) {
        // The interrupt is freed: no fault work is queued any more. What is
        // queued or running finishes before the device goes.
        self.hw.wait_fault_work_idle();
    }
}
