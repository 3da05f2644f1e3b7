// SPDX-License-Identifier: GPL-2.0

//! What every unit of the GPU needs: BAR0, the chip's identity and the
//! engines its firmware enabled.
//!
//! This is the bottom floor: it imports no other unit. [`Hw`] outlives a
//! bound scope (MMU notifiers and open files reach it after unbind), so its
//! register access goes through a [`DevresBar`]: once the device is unbound
//! every access is skipped and touches no hardware.
//!
//! Locking: none of its own. [`Hw::regs`] runs its closure in an RCU
//! read-side section (`Revocable::try_access`): the closure must not sleep,
//! which `CONFIG_DEBUG_ATOMIC_SLEEP` in the guest configuration checks.

use kernel::{
    device::Bound,
    io::Io,
    pci::{
        self,
        DevresBar, //
    },
    prelude::*, //
};

use crate::regs::{
    self,
    BAR0_SIZE, //
};

/// BAR0 of a bound device.
pub(crate) type Bar0<'a> = pci::Bar<'a, BAR0_SIZE>;

/// Architecture the model reports in `NV_PMC_BOOT_0`: a value no real NVIDIA
/// chip uses, so no real-chip code path can mistake the model for silicon.
pub(crate) const ARCH_RSVM_MODEL: u32 = 0x1f;

/// Static facts read from the chip at probe time.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Spec {
    /// Raw `NV_PMC_BOOT_0`.
    pub(crate) boot0: u32,
    /// Local memory (VRAM) size in bytes.
    pub(crate) vram_size: u64,
}

impl Spec {
    /// Identifies the chip; `ENODEV` for anything but the model.
    pub(crate) fn read(pdev: &pci::Device<Bound>, bar: &Bar0<'_>) -> Result<Self> {
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

/// The register file of a GPU and its static facts.
pub(crate) struct Hw {
    bar: DevresBar<BAR0_SIZE>,
    spec: Spec,
    /// `RSVM_FW_ENGINES` of the running firmware.
    engines: regs::RSVM_FW_ENGINES,
}

impl Hw {
    pub(crate) fn new(
        bar: DevresBar<BAR0_SIZE>,
        spec: Spec,
        engines: regs::RSVM_FW_ENGINES,
    ) -> Self {
        Self { bar, spec, engines }
    }

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
        self.engines.compute()
    }

    /// Whether the firmware enabled the copy engine.
    pub(crate) fn has_copy(&self) -> bool {
        self.engines.copy()
    }
}
