// SPDX-License-Identifier: GPL-2.0

//! BAR0 register definitions.
//!
//! Offsets and fields follow NVIDIA's open-gpu-doc manuals for GV100
//! (`dev_master.ref`, `dev_bus.ref`, `pri_mmu_hub.ref`) unless a register is
//! marked model-private. The full map is in
//! `Documentation/gpu/rsvm/hardware.rst`.

use kernel::io::register;

/// `RSVM_FW_MAILBOX0` once the firmware runs.
pub(crate) const FW_STATUS_RUNNING: u32 = 1;

/// Size of the BAR0 register aperture (as on Volta).
pub(crate) const BAR0_SIZE: usize = kernel::sizes::SZ_16M;

register! {
    /// Chip identification (`NV_PMC_BOOT_0`).
    pub(crate) NV_PMC_BOOT_0(u32) @ 0x0000_0000 {
        /// Chip architecture (GV100 is 0x14; the model reports 0x1f).
        28:24 architecture;
        /// Implementation within the architecture.
        23:20 implementation;
        /// Major revision.
        7:4 major_revision;
        /// Minor revision.
        3:0 minor_revision;
    }

    /// Pending interrupts, one bit per unit (`NV_PMC_INTR(0)`).
    pub(crate) NV_PMC_INTR_0(u32) @ 0x0000_0100 {
        /// Model-private software interrupt unit (see `RSVM_SWINTR_*`).
        31:31 software => bool;
        /// HUB: MMU fault buffers and other MMU interrupts.
        9:9 hub => bool;
        /// PFIFO: channels, runlists, preemption.
        8:8 pfifo => bool;
    }

    /// Interrupt enable mask (`NV_PMC_INTR_EN(0)`), read-only view.
    pub(crate) NV_PMC_INTR_EN_0(u32) @ 0x0000_0140 {
        31:0 value;
    }

    /// Write 1 to enable interrupt bits (`NV_PMC_INTR_EN_SET(0)`).
    pub(crate) NV_PMC_INTR_EN_SET_0(u32) @ 0x0000_0160 {
        31:0 value;
    }

    /// Write 1 to disable interrupt bits (`NV_PMC_INTR_EN_CLEAR(0)`).
    pub(crate) NV_PMC_INTR_EN_CLEAR_0(u32) @ 0x0000_0180 {
        31:0 value;
    }

    /// Software scratch registers (`NV_PBUS_SW_SCRATCH(i)`), preserved by the
    /// device across driver loads.
    pub(crate) NV_PBUS_SW_SCRATCH(u32)[64] @ 0x0000_1400 {
        31:0 value;
    }

    /// Size of local memory (`NV_PFB_PRI_MMU_LOCAL_MEMORY_RANGE`): the size
    /// in bytes is `lower_mag << (lower_scale + 20)`.
    pub(crate) NV_PFB_PRI_MMU_LOCAL_MEMORY_RANGE(u32) @ 0x0010_0ce0 {
        /// Set when ECC is on (the model never sets it).
        30:30 ecc_mode => bool;
        9:4 lower_mag;
        3:0 lower_scale;
    }

    /// Model-private firmware boot block: status (0 not booted, 1 running,
    /// `0x8000_0000 | error` refused).
    pub(crate) RSVM_FW_MAILBOX0(u32) @ 0x0084_0040 {
        31:0 value;
    }

    /// Model-private: running firmware version, `major << 16 | minor`.
    pub(crate) RSVM_FW_MAILBOX1(u32) @ 0x0084_0044 {
        31:0 value;
    }

    /// Model-private: write STARTCPU to fetch, check and boot the image.
    pub(crate) RSVM_FW_CPUCTL(u32) @ 0x0084_0100 {
        1:1 startcpu => bool;
    }

    /// Model-private: DMA address of the image, bits 31:0.
    pub(crate) RSVM_FW_DMA_BASE_LO(u32) @ 0x0084_0110 {
        31:0 value;
    }

    /// Model-private: DMA address of the image, bits 63:32.
    pub(crate) RSVM_FW_DMA_BASE_HI(u32) @ 0x0084_0114 {
        31:0 value;
    }

    /// Model-private: size of the image in bytes.
    pub(crate) RSVM_FW_DMA_SIZE(u32) @ 0x0084_0118 {
        31:0 value;
    }

    /// Model-private: raise the software interrupt (PMC bit 31).
    pub(crate) RSVM_SWINTR_TRIGGER(u32) @ 0x00fe_0100 {
        0:0 raise => bool;
    }

    /// Model-private: software interrupt status, write 1 to clear.
    pub(crate) RSVM_SWINTR_STATUS(u32) @ 0x00fe_0104 {
        0:0 pending => bool;
    }
}
