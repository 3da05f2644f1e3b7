// SPDX-License-Identifier: GPL-2.0

//! The GPU as a whole: identity, the register file, the top-level interrupt
//! and the MMU operations (TLB invalidate, fault replay) every unit uses.

use kernel::{
    device::Bound,
    io::{poll::read_poll_timeout, Io},
    new_condvar, new_mutex, new_spinlock_irq, pci,
    pci::DevresBar,
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        Arc, CondVar, Mutex, SpinLockIrq,
    },
    time::Delta,
};

use crate::{
    fault::FaultBuffers,
    fifo::{self, Fifo},
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
    /// Fail the jobs stalled at the invalidate address.
    CancelVaGlobal = 5,
}

/// Bits of a channel error's detail kept with its code in one word.
const ERROR_INFO_BITS: u32 = 48;
const ERROR_INFO_MASK: u64 = (1 << ERROR_INFO_BITS) - 1;

/// The part of the device that outlives a bound scope: what page-table
/// mirrors, channels and open files reach from any context.
///
/// Register access goes through a [`DevresBar`]: once the device is unbound
/// every access is skipped, so an MMU notifier or a file release that runs
/// after unbind touches no hardware.
#[pin_data]
pub(crate) struct Hw {
    bar: DevresBar<BAR0_SIZE>,
    spec: Spec,
    /// `RSVM_FW_ENGINES` of the running firmware.
    engines: u32,
    /// Channel ids, the runlist and the instance-block registry.
    #[pin]
    pub(crate) fifo: Mutex<Fifo>,
    /// Per channel id: `code << ERROR_INFO_BITS | info` of its first error,
    /// 0 if none.
    chan_errors: KVec<Atomic<u64>>,
    /// Taken around the fence check of a waiter and around the wake-up, so
    /// an interrupt between the check and the sleep is not lost.
    #[pin]
    fence_lock: SpinLockIrq<()>,
    #[pin]
    fence_wait: CondVar,
    /// Page-table pages alive (a diagnostic for leak tests).
    pub(crate) pt_pages: Atomic<u64>,
}

impl Hw {
    /// Runs `f` on the registers; `None` if the device is gone.
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

    /// Invalidates the TLB for the address space at `pdb` (or, with
    /// `Replay::CancelVaGlobal`, the page at `va`) and applies `replay` to
    /// the stalled faults. The invalidate is complete when this returns.
    pub(crate) fn invalidate_tlb(&self, pdb: u64, va: u64, replay: Replay) {
        self.regs(|bar| {
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
                (va >> 40) as u32,
            ));
            let targeted = replay == Replay::CancelVaGlobal;
            let cmd = regs::NV_PFB_PRI_MMU_INVALIDATE::zeroed()
                .with_trigger(true)
                .with_all_va(!targeted)
                .with_all_pdb(targeted || replay == Replay::Start);
            // `Replay` values fit the 3-bit field.
            bar.write_reg(cmd.try_with_replay(replay as u32).unwrap_or(cmd));
            // The invalidate is done once the PRI FIFO drained; the model
            // retires it synchronously, a real GPU needs the poll.
            let _ = read_poll_timeout(
                || Ok(bar.read(regs::NV_PFB_PRI_MMU_INVALIDATE)),
                |r| !r.trigger(),
                Delta::ZERO,
                Delta::from_millis(100),
            );
        });
    }

    /// Stops every channel (device unbind).
    pub(crate) fn stop_all_channels(&self) {
        let mut fifo = self.fifo.lock();
        self.regs(|bar| fifo.stop_all(bar));
    }

    /// Records the first error of channel `chid` (`code` is a
    /// `DRM_RSVM_ERROR_*`, `info` its detail: at most 48 bits, enough for a
    /// fault's page number) and wakes its waiters.
    pub(crate) fn set_channel_error(&self, chid: u32, code: u32, info: u64) {
        if let Some(slot) = self.chan_errors.get(chid as usize) {
            let v = (u64::from(code) << ERROR_INFO_BITS) | (info & ERROR_INFO_MASK);
            let _ = slot.cmpxchg(0, v, Relaxed);
        }
        self.signal_fences();
    }

    /// The first error of channel `chid`: `(code, info)`.
    pub(crate) fn channel_error(&self, chid: u32) -> Option<(u32, u64)> {
        let v = self.chan_errors.get(chid as usize)?.load(Relaxed);
        (v != 0).then_some(((v >> ERROR_INFO_BITS) as u32, v & ERROR_INFO_MASK))
    }

    /// Forgets the error of `chid` (for a new channel with that id).
    pub(crate) fn clear_channel_error(&self, chid: u32) {
        if let Some(slot) = self.chan_errors.get(chid as usize) {
            slot.store(0, Relaxed);
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

        let mut chan_errors = KVec::with_capacity(fifo::NUM_CHANNELS, GFP_KERNEL)?;
        for _ in 0..fifo::NUM_CHANNELS {
            chan_errors.push(Atomic::new(0), GFP_KERNEL)?;
        }
        let hw = Arc::pin_init(
            try_pin_init!(Hw {
                bar,
                spec,
                engines,
                fifo <- new_mutex!(Fifo::new(pdev.as_ref())?),
                chan_errors,
                fence_lock <- new_spinlock_irq!(()),
                fence_wait <- new_condvar!(),
                pt_pages: Atomic::new(0),
            }),
            GFP_KERNEL,
        )?;
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
        self.hw.regs(|bar| {
            bar.write_reg(regs::NV_PFIFO_INTR_EN_0::zeroed().with_channel_error(true));
            bar.write_reg(regs::NV_PFB_NISO_INTR_EN_SET::from(NISO_FAULTS));
            bar.write_reg(regs::NV_PMC_INTR_EN_SET_1::from(NONSTALL_HOST));
            bar.write_reg(regs::NV_PMC_INTR_EN_SET_0::from(
                INTR_SOFTWARE | INTR_HUB | INTR_PFIFO,
            ));
        });
    }

    /// Disables every interrupt source.
    pub(crate) fn disable_interrupts(&self) {
        self.hw.regs(|bar| {
            bar.write_reg(regs::NV_PMC_INTR_EN_CLEAR_0::from(u32::MAX));
            bar.write_reg(regs::NV_PMC_INTR_EN_CLEAR_1::from(u32::MAX));
        });
    }

    /// Services the top-level interrupt in hard-IRQ context: fences,
    /// channel errors and the software interrupt here; faults are masked
    /// and left to the thread. Returns `(ours, wake_thread)`.
    pub(crate) fn handle_interrupt(&self) -> (bool, bool) {
        self.hw
            .regs(|bar| {
                let intr = bar.read(regs::NV_PMC_INTR_0);
                let nonstall = bar.read(regs::NV_PMC_INTR_1).into_raw();
                let raw = intr.into_raw() & bar.read(regs::NV_PMC_INTR_EN_0).into_raw();
                if raw == 0 && nonstall == 0 {
                    return (false, false);
                }
                if nonstall != 0 {
                    // Clear first, then look at the fences: a fence written
                    // after the clear raises a new interrupt.
                    bar.write_reg(regs::NV_PMC_INTR_1::from(nonstall));
                    self.hw.signal_fences();
                }
                if intr.software() {
                    bar.write_reg(regs::RSVM_SWINTR_STATUS::zeroed().with_pending(true));
                    self.swintr_count.fetch_add(1, Relaxed);
                }
                if intr.pfifo() {
                    self.handle_channel_error(bar);
                }
                let wake = intr.hub() && raw & INTR_HUB != 0;
                if wake {
                    // Level-triggered while faults wait: masked until the
                    // thread drained the buffers.
                    bar.write_reg(regs::NV_PMC_INTR_EN_CLEAR_0::from(INTR_HUB));
                }
                let unknown = raw & !(INTR_SOFTWARE | INTR_HUB | INTR_PFIFO);
                if unknown != 0 {
                    dev_warn!(self.pdev, "masking unexpected interrupts {:#x}\n", unknown);
                    bar.write_reg(regs::NV_PMC_INTR_EN_CLEAR_0::from(unknown));
                }
                (true, wake)
            })
            .unwrap_or((false, false))
    }

    fn handle_channel_error(&self, bar: &Bar0<'_>) {
        let pfifo = bar.read(regs::NV_PFIFO_INTR_0);
        if pfifo.channel_error() {
            let chid = bar.read(regs::RSVM_CHANNEL_ERROR_CHID).into_raw();
            let code = bar.read(regs::RSVM_CHANNEL_ERROR_CODE).into_raw();
            let info = u64::from(bar.read(regs::RSVM_CHANNEL_ERROR_INFO).into_raw())
                | u64::from(bar.read(regs::RSVM_CHANNEL_ERROR_INFO_HI).into_raw()) << 32;
            bar.write_reg(regs::NV_PFIFO_INTR_0::zeroed().with_channel_error(true));
            self.hw.set_channel_error(chid, code, info);
        }
    }

    /// The threaded half: services the fault buffers, then unmasks them.
    pub(crate) fn handle_threaded(&self) {
        loop {
            self.faults.service(self);
            self.hw.regs(|bar| {
                bar.write_reg(regs::NV_PMC_INTR_EN_SET_0::from(INTR_HUB));
            });
            // Faults that arrived after the drain keep HUB pending; it was
            // masked, so no new message came for them: look again.
            if !self.faults.pending(&self.hw) {
                break;
            }
            self.hw.regs(|bar| {
                bar.write_reg(regs::NV_PMC_INTR_EN_CLEAR_0::from(INTR_HUB));
            });
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
