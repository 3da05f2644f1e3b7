// SPDX-License-Identifier: GPL-2.0

//! The GPU as a whole: probe-time wiring of its units and the top-level
//! interrupt.
//!
//! A GPU fault enters here once (the interrupt) and then runs one way:
//! `irq -> gpu -> fault -> vm -> hmm -> mmu -> hw`.
//!
//! Ownership: [`Gpu`] lives for the bound scope of the PCI device and owns
//! the fault buffers; what must outlive it (open files and MMU notifiers
//! reach it after unbind) is reference-counted: [`Hw`] (the register file,
//! revocable), the host ([`vm::VmFifo`]), the TLB unit and the page-table
//! pool, gathered in [`vm::Shared`].

use kernel::{
    device::Bound,
    io::{
        poll::read_poll_timeout,
        Io, //
    },
    irq::ThreadedIrqReturn,
    pci,
    prelude::*,
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        Arc, //
    },
    time::Delta,
    uapi, //
};

use crate::{
    debugfs::Debugfs,
    fault::FaultBuffers,
    fifo,
    hw::{
        self,
        Bar0,
        Hw,
        Spec, //
    },
    mmu::{
        tlb::Tlb,
        PtCount,
        PtPool, //
    },
    regs::{
        self,
        BAR0_SIZE, //
    },
    vm::{
        self,
        VmFifo, //
    }, //
};

/// Units of `NV_PMC_INTR(0)` this driver services.
fn serviced_units() -> regs::NV_PMC_INTR_EN_SET_0 {
    regs::NV_PMC_INTR_EN_SET_0::zeroed()
        .with_software(true)
        .with_hub(true)
        .with_pfifo(true)
}

/// Page-table pages the interrupt thread keeps ready for the fault workers,
/// which cannot allocate DMA memory themselves (they run without a bound
/// device).
const PT_POOL_TARGET: usize = 32;

/// A bound GPU: the shared part, fault buffers and interrupt bookkeeping.
pub(crate) struct Gpu<'bound> {
    pub(crate) pdev: &'bound pci::Device<Bound>,
    pub(crate) hw: Arc<Hw>,
    /// What every VM of this GPU shares.
    pub(crate) shared: Arc<vm::Shared>,
    faults: FaultBuffers,
    _debugfs: Debugfs,
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
            let fw = crate::fw::boot(pdev, b, hw::ARCH_RSVM_MODEL)?;
            b.write_reg(regs::NV_PMC_INTR_EN_CLEAR_0::from(u32::MAX));
            b.write_reg(regs::NV_PMC_INTR_EN_CLEAR_1::from(u32::MAX));
            (spec, fw, b.read(regs::RSVM_FW_ENGINES))
        };

        let hw = Arc::new(Hw::new(bar, spec, engines), GFP_KERNEL)?;
        let fifo = VmFifo::new(pdev.as_ref(), &hw)?;
        let tlb = Arc::pin_init(Tlb::new(hw.clone()), GFP_KERNEL)?;
        let pool = Arc::pin_init(PtPool::new(PT_POOL_TARGET)?, GFP_KERNEL)?;
        pool.refill(pdev.as_ref(), PT_POOL_TARGET)?;
        let faults = FaultBuffers::new(pdev, &hw, &fifo)?;
        let pt_count = Arc::new(PtCount::new(), GFP_KERNEL)?;
        let debugfs = Debugfs::new(pdev, &pt_count, &fifo)?;
        let shared = Arc::new(vm::Shared::new(fifo, tlb, pool, pt_count), GFP_KERNEL)?;

        dev_info!(
            pdev,
            "chip {:#010x}, {} MiB VRAM\n",
            spec.boot0,
            spec.vram_size >> 20
        );

        Ok(Self {
            pdev,
            hw,
            shared,
            faults,
            _debugfs: debugfs,
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
        let en = serviced_units();
        self.intr_en.store(en.into_raw(), Relaxed);
        self.hw.regs(|bar| {
            bar.write_reg(regs::NV_PFIFO_INTR_EN_0::zeroed().with_channel_error(true));
            bar.write_reg(
                regs::NV_PFB_NISO_INTR_EN_SET::zeroed()
                    .with_replayable_notify(true)
                    .with_non_replayable_notify(true),
            );
            bar.write_reg(regs::NV_PMC_INTR_EN_SET_1::zeroed().with_host(true));
            bar.write_reg(en);
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
    /// the thread (woken if HUB is pending).
    ///
    /// The MSI is edge-triggered (a message when an enabled bit becomes
    /// pending), so HUB is not masked while the thread works: it stays
    /// pending, sending nothing, until the thread has moved `GET` past every
    /// packet, and the thread looks at the buffers again after each `GET`
    /// write. Two reads per interrupt: `NV_PMC_INTR(0)` and `(1)`.
    pub(crate) fn handle_interrupt(&self) -> ThreadedIrqReturn {
        let enabled = self.intr_en.load(Relaxed);
        self.hw
            .regs(|bar| {
                let raw = bar.read(regs::NV_PMC_INTR_0).into_raw() & enabled;
                let nonstall = bar.read(regs::NV_PMC_INTR_1).into_raw();
                if raw == 0 && nonstall == 0 {
                    return ThreadedIrqReturn::None;
                }
                let intr = regs::NV_PMC_INTR_0::from(raw);
                if nonstall != 0 {
                    // Clear first, then look at the fences: a fence written
                    // after the clear raises a new interrupt.
                    bar.write_reg(regs::NV_PMC_INTR_1::from(nonstall));
                    self.shared.fifo.fences.signal();
                }
                if intr.software() {
                    bar.write_reg(regs::RSVM_SWINTR_STATUS::zeroed().with_pending(true));
                    self.swintr_count.fetch_add(1, Relaxed);
                }
                if intr.pfifo() {
                    self.handle_channel_errors(bar);
                }
                let unknown = raw & !serviced_units().into_raw();
                if unknown != 0 {
                    dev_warn!(self.pdev, "masking unexpected interrupts {:#x}\n", unknown);
                    self.intr_en.store(enabled & !unknown, Relaxed);
                    bar.write_reg(regs::NV_PMC_INTR_EN_CLEAR_0::from(unknown));
                }
                if intr.hub() {
                    ThreadedIrqReturn::WakeThread
                } else {
                    ThreadedIrqReturn::Handled
                }
            })
            .unwrap_or(ThreadedIrqReturn::None)
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
            self.shared.fifo.fences.set_error(chid, code, info);
        }
    }

    /// The threaded half: drains the fault buffers and hands each fault to
    /// its VM's worker, until a pass finds none. Keeps the page-table pool
    /// the workers draw from filled (this thread has a bound device).
    pub(crate) fn handle_threaded(&self) {
        loop {
            if self
                .shared
                .pool
                .refill(self.pdev.as_ref(), PT_POOL_TARGET)
                .is_err()
            {
                dev_warn!(self.pdev, "cannot refill the page-table pool\n");
            }
            if !self.faults.service() {
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
        self.shared.wait_fault_work_idle();
    }
}
