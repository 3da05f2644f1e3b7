// SPDX-License-Identifier: GPL-2.0

//! The GPU as a whole: identity, memory size and the top-level interrupt.

use kernel::{
    device::Bound,
    io::{poll::read_poll_timeout, Io},
    pci,
    prelude::*,
    sync::atomic::{Atomic, Relaxed},
    time::Delta,
};

use crate::regs::{self, BAR0_SIZE};

/// BAR0 of a bound device.
pub(crate) type Bar0<'a> = pci::Bar<'a, BAR0_SIZE>;

/// Architecture the model reports in `NV_PMC_BOOT_0`: a value no real NVIDIA
/// chip uses, so no real-chip code path can mistake the model for silicon.
const ARCH_RSVM_MODEL: u32 = 0x1f;

/// Virtual address bits of a GMMU v2 address space.
pub(crate) const VA_BITS: u32 = 49;

/// Page sizes the GMMU v2 maps: 4 KiB, 64 KiB and 2 MiB.
pub(crate) const PAGE_SIZES: u64 = (1 << 12) | (1 << 16) | (1 << 21);

/// Bits of `NV_PMC_INTR_0` this driver services.
const INTR_HANDLED: u32 = 1 << 31;

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

/// A bound GPU: its BAR0, what it is, and interrupt bookkeeping.
///
/// Shared between the DRM registration data and the interrupt handler through
/// an `Arc`; everything in it is either immutable or atomic.
pub(crate) struct Gpu<'bound> {
    pdev: &'bound pci::Device<Bound>,
    bar: Bar0<'bound>,
    spec: Spec,
    /// Running firmware, `major << 16 | minor`.
    firmware_version: u32,
    /// Software interrupts serviced since probe.
    swintr_count: Atomic<u32>,
}

impl<'bound> Gpu<'bound> {
    /// Maps BAR0, identifies the chip, boots its firmware and leaves all
    /// interrupts disabled.
    pub(crate) fn new(pdev: &'bound pci::Device<Bound>) -> Result<Self> {
        let bar = pdev
            .iomap_region_sized::<BAR0_SIZE>(0, c"rsvm/bar0")
            .inspect_err(|e| dev_err!(pdev, "cannot map BAR0: {:?}\n", e))?;
        let spec = Spec::read(pdev, &bar)?;
        let firmware_version = crate::fw::boot(pdev, &bar, ARCH_RSVM_MODEL)?;
        bar.write_reg(regs::NV_PMC_INTR_EN_CLEAR_0::from(u32::MAX));

        dev_info!(
            pdev,
            "chip {:#010x}, {} MiB VRAM\n",
            spec.boot0,
            spec.vram_size >> 20
        );

        Ok(Self {
            pdev,
            bar,
            spec,
            firmware_version,
            swintr_count: Atomic::new(0),
        })
    }

    pub(crate) fn spec(&self) -> &Spec {
        &self.spec
    }

    /// The running firmware's version, `major << 16 | minor`.
    pub(crate) fn firmware_version(&self) -> u32 {
        self.firmware_version
    }

    /// Enables the interrupt sources this driver services.
    pub(crate) fn enable_interrupts(&self) {
        self.bar
            .write_reg(regs::NV_PMC_INTR_EN_SET_0::from(INTR_HANDLED));
    }

    /// Disables every interrupt source.
    pub(crate) fn disable_interrupts(&self) {
        self.bar
            .write_reg(regs::NV_PMC_INTR_EN_CLEAR_0::from(u32::MAX));
    }

    /// Services the top-level interrupt; returns whether it was ours.
    pub(crate) fn handle_interrupt(&self) -> bool {
        let intr = self.bar.read(regs::NV_PMC_INTR_0);
        let raw = intr.into_raw();
        if raw == 0 {
            return false;
        }

        if intr.software() {
            self.bar
                .write_reg(regs::RSVM_SWINTR_STATUS::zeroed().with_pending(true));
            self.swintr_count.fetch_add(1, Relaxed);
        }

        let unknown = raw & !INTR_HANDLED;
        if unknown != 0 {
            // Nothing services these yet: mask them so they cannot storm.
            dev_warn!(self.pdev, "masking unexpected interrupts {:#x}\n", unknown);
            self.bar
                .write_reg(regs::NV_PMC_INTR_EN_CLEAR_0::from(unknown));
        }
        true
    }

    /// Raises the software interrupt and waits for the handler to see it:
    /// proves that MSI-X delivery works end to end before userspace can
    /// depend on it.
    pub(crate) fn interrupt_self_test(&self) -> Result {
        let before = self.swintr_count.load(Relaxed);
        self.bar
            .write_reg(regs::RSVM_SWINTR_TRIGGER::zeroed().with_raise(true));
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
