// SPDX-License-Identifier: GPL-2.0

//! BAR0 register definitions, by unit and in address order.
//!
//! Offsets and fields follow NVIDIA's open-gpu-doc manuals for GV100
//! (`dev_master.ref`, `dev_bus.ref`, `dev_fifo.ref`, `dev_ram.ref`,
//! `pri_mmu_hub.ref`, `dev_usermode.ref`) unless a register is marked
//! model-private. A register with no documented fields has an empty body
//! and is read and written whole. The full map is in
//! `Documentation/gpu/rsvm/hardware.rst`.

use kernel::io::register;

/// `RSVM_FW_MAILBOX0` once the firmware runs.
pub(crate) const FW_STATUS_RUNNING: u32 = 1;

/// Size of the BAR0 register aperture (as on Volta).
pub(crate) const BAR0_SIZE: usize = kernel::sizes::SZ_16M;

/// Defines a hardware enum and its conversions to and from the field of
/// `$bits` bits (of a `$st` register or word) that holds it: `From` one way, `TryFrom` (`EINVAL` for a
/// value the manual does not define) the other.
macro_rules! hw_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident: $st:ident, $bits:literal {
            $($(#[$vmeta:meta])* $variant:ident = $value:literal,)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        $vis enum $name {
            $($(#[$vmeta])* $variant = $value,)*
        }

        impl From<$name> for kernel::num::Bounded<$st, $bits> {
            fn from(v: $name) -> Self {
                match v {
                    $($name::$variant => kernel::num::Bounded::<$st, $bits>::new::<$value>(),)*
                }
            }
        }

        impl TryFrom<kernel::num::Bounded<$st, $bits>> for $name {
            type Error = kernel::error::Error;

            fn try_from(v: kernel::num::Bounded<$st, $bits>) -> kernel::error::Result<Self> {
                match v.get() {
                    $($value => Ok(Self::$variant),)*
                    _ => Err(kernel::error::code::EINVAL),
                }
            }
        }
    };
}
pub(crate) use hw_enum;

hw_enum! {
    /// Where a pointer points (`*_TARGET` of runlist, instance and USERD
    /// pointers; a fault buffer's `APERTURE` has the same encoding).
    pub(crate) enum Target: u32, 2 {
        /// Video memory.
        VidMem = 0,
        /// System memory, snooped.
        SysMemCoherent = 2,
        /// System memory, not snooped.
        SysMemNoncoherent = 3,
    }
}

hw_enum! {
    /// The aperture of an invalidate's page directory.
    pub(crate) enum PdbAperture: u32, 1 {
        VidMem = 0,
        SysMem = 1,
    }
}

hw_enum! {
    /// What an `NV_PFB_PRI_MMU_INVALIDATE` does to stalled faults.
    pub(crate) enum Replay: u32, 3 {
        /// Nothing: a plain TLB invalidate.
        None = 0,
        /// Re-issue every stalled access.
        Start = 1,
        /// Re-issue every stalled access and acknowledge every fault.
        StartAckAll = 2,
        /// Fail the stalled accesses of one GPC client.
        CancelTargeted = 3,
        /// Fail every stalled access.
        CancelGlobal = 4,
        /// Fail the accesses stalled at the invalidate address, in the
        /// invalidate's address space only (without `ALL_PDB`).
        CancelVaGlobal = 5,
    }
}

register! {
    // PMC: identity and the top-level interrupt.

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

    /// Pending non-stall interrupts (`NV_PMC_INTR(1)`); write 1 to clear.
    pub(crate) NV_PMC_INTR_1(u32) @ 0x0000_0104 {
        /// A copy-engine launch asked for an interrupt.
        15:15 ce0 => bool;
        /// A compute grid asked for an interrupt.
        12:12 compute => bool;
        /// A host `NON_STALL_INTERRUPT` method ran.
        0:0 host => bool;
    }

    /// Interrupt enable mask (`NV_PMC_INTR_EN(0)`), read-only view; the
    /// units of `NV_PMC_INTR(0)`.
    pub(crate) NV_PMC_INTR_EN_0(u32) @ 0x0000_0140 {
        31:31 software => bool;
        9:9 hub => bool;
        8:8 pfifo => bool;
    }

    /// Write 1 to enable interrupt units (`NV_PMC_INTR_EN_SET(0)`).
    pub(crate) NV_PMC_INTR_EN_SET_0(u32) @ 0x0000_0160 {
        31:31 software => bool;
        9:9 hub => bool;
        8:8 pfifo => bool;
    }

    /// Write 1 to enable non-stall interrupt bits (`NV_PMC_INTR_EN_SET(1)`).
    pub(crate) NV_PMC_INTR_EN_SET_1(u32) @ 0x0000_0164 {
        15:15 ce0 => bool;
        12:12 compute => bool;
        0:0 host => bool;
    }

    /// Write 1 to disable interrupt units (`NV_PMC_INTR_EN_CLEAR(0)`); all
    /// ones disables every unit.
    pub(crate) NV_PMC_INTR_EN_CLEAR_0(u32) @ 0x0000_0180 {}

    /// Write 1 to disable non-stall bits (`NV_PMC_INTR_EN_CLEAR(1)`).
    pub(crate) NV_PMC_INTR_EN_CLEAR_1(u32) @ 0x0000_0184 {}

    // PBUS.

    /// Software scratch registers (`NV_PBUS_SW_SCRATCH(i)`), preserved by the
    /// device across driver loads.
    pub(crate) NV_PBUS_SW_SCRATCH(u32)[64] @ 0x0000_1400 {}

    // PFIFO: interrupts, the runlist, preemption.

    /// PFIFO interrupts (`NV_PFIFO_INTR_0`); write 1 to clear.
    pub(crate) NV_PFIFO_INTR_0(u32) @ 0x0000_2100 {
        /// A channel error was latched in `RSVM_CHANNEL_ERROR_*`.
        31:31 channel_error => bool;
    }

    /// PFIFO interrupt enables (`NV_PFIFO_INTR_EN_0`).
    pub(crate) NV_PFIFO_INTR_EN_0(u32) @ 0x0000_2140 {
        31:31 channel_error => bool;
    }

    /// Where the runlist is (`NV_PFIFO_RUNLIST_BASE`).
    pub(crate) NV_PFIFO_RUNLIST_BASE(u32) @ 0x0000_2270 {
        29:28 target ?=> Target;
        /// Address >> 12.
        27:0 ptr;
    }

    /// Submits the runlist (`NV_PFIFO_RUNLIST`).
    pub(crate) NV_PFIFO_RUNLIST(u32) @ 0x0000_2274 {
        15:0 length;
    }

    /// Preempts a channel (`NV_PFIFO_PREEMPT`).
    pub(crate) NV_PFIFO_PREEMPT(u32) @ 0x0000_2634 {
        /// 0: channel, 1: TSG.
        25:24 kind;
        20:20 pending => bool;
        11:0 id;
    }

    // PFB / MMU hub: fault interrupts, the TLB invalidate, fault buffers.

    /// Fault interrupts (`NV_PFB_NISO_INTR`, derived).
    pub(crate) NV_PFB_NISO_INTR(u32) @ 0x0010_0a20 {
        31:31 other_fault => bool;
        30:30 non_replayable_overflow => bool;
        29:29 non_replayable_notify => bool;
        28:28 replayable_overflow => bool;
        27:27 replayable_notify => bool;
    }

    /// Write 1 to enable fault interrupt bits (as in `NV_PFB_NISO_INTR`).
    pub(crate) NV_PFB_NISO_INTR_EN_SET(u32) @ 0x0010_0a2c {
        31:31 other_fault => bool;
        30:30 non_replayable_overflow => bool;
        29:29 non_replayable_notify => bool;
        28:28 replayable_overflow => bool;
        27:27 replayable_notify => bool;
    }

    /// Write 1 to disable fault interrupt bits (as in `NV_PFB_NISO_INTR`).
    pub(crate) NV_PFB_NISO_INTR_EN_CLR(u32) @ 0x0010_0a34 {
        31:31 other_fault => bool;
        30:30 non_replayable_overflow => bool;
        29:29 non_replayable_notify => bool;
        28:28 replayable_overflow => bool;
        27:27 replayable_notify => bool;
    }

    /// Virtual address of a targeted invalidate.
    pub(crate) NV_PFB_PRI_MMU_INVALIDATE_VADDR(u32) @ 0x0010_0cb4 {
        /// Address bits 39:12.
        31:4 addr;
    }

    /// Page directory of an invalidate.
    pub(crate) NV_PFB_PRI_MMU_INVALIDATE_PDB(u32) @ 0x0010_0cb8 {
        /// PDB bits 39:12.
        31:4 addr;
        1:1 aperture ?=> PdbAperture;
    }

    /// Triggers a TLB invalidate, and optionally a fault replay or cancel.
    pub(crate) NV_PFB_PRI_MMU_INVALIDATE(u32) @ 0x0010_0cbc {
        31:31 trigger => bool;
        5:3 replay ?=> Replay;
        1:1 all_pdb => bool;
        0:0 all_va => bool;
    }

    /// Size of local memory (`NV_PFB_PRI_MMU_LOCAL_MEMORY_RANGE`): the size
    /// in bytes is `lower_mag << (lower_scale + 20)`.
    pub(crate) NV_PFB_PRI_MMU_LOCAL_MEMORY_RANGE(u32) @ 0x0010_0ce0 {
        /// Set when ECC is on (the model never sets it).
        30:30 ecc_mode => bool;
        9:4 lower_mag;
        3:0 lower_scale;
    }

    /// Bits 63:40 of the invalidate address.
    pub(crate) NV_PFB_PRI_MMU_INVALIDATE_UPPER_VADDR(u32) @ 0x0010_0ce8 {
        /// Address bits 59:40 (a register-path cancel names no more).
        19:0 addr;
    }

    /// Bits 63:40 of the invalidate PDB.
    pub(crate) NV_PFB_PRI_MMU_INVALIDATE_UPPER_PDB(u32) @ 0x0010_0cec {
        /// PDB bits 59:40.
        19:0 addr;
    }

    /// Fault buffer address, low bits.
    pub(crate) NV_PFB_PRI_MMU_FAULT_BUFFER_LO(u32)[2, stride = 20] @ 0x0010_0e24 {
        /// Address bits 31:12.
        31:12 addr;
        2:1 aperture ?=> Target;
        /// `ADDR_MODE`: 1 physical, 0 virtual (BAR2).
        0:0 physical => bool;
    }

    /// Fault buffer address, bits 63:32.
    pub(crate) NV_PFB_PRI_MMU_FAULT_BUFFER_HI(u32)[2, stride = 20] @ 0x0010_0e28 {}

    /// Fault buffer read pointer (software owned).
    pub(crate) NV_PFB_PRI_MMU_FAULT_BUFFER_GET(u32)[2, stride = 20] @ 0x0010_0e2c {
        31:31 overflow => bool;
        30:30 getptr_corrupted => bool;
        19:0 ptr;
    }

    /// Fault buffer write pointer (the GPU's).
    pub(crate) NV_PFB_PRI_MMU_FAULT_BUFFER_PUT(u32)[2, stride = 20] @ 0x0010_0e30 {
        19:0 ptr;
    }

    /// Fault buffer size and enable.
    pub(crate) NV_PFB_PRI_MMU_FAULT_BUFFER_SIZE(u32)[2, stride = 20] @ 0x0010_0e34 {
        31:31 enable => bool;
        29:29 overflow_intr => bool;
        19:0 entries;
    }

    // PCCSR: channel instance blocks and control.

    /// Channel instance block (`NV_PCCSR_CHANNEL_INST(i)`).
    pub(crate) NV_PCCSR_CHANNEL_INST(u32)[512, stride = 8] @ 0x0080_0000 {
        31:31 bind => bool;
        29:28 target ?=> Target;
        /// Instance block address >> 12.
        27:0 ptr;
    }

    /// Channel control (`NV_PCCSR_CHANNEL(i)`).
    pub(crate) NV_PCCSR_CHANNEL(u32)[512, stride = 8] @ 0x0080_0004 {
        28:28 busy => bool;
        23:23 eng_faulted => bool;
        22:22 pbdma_faulted => bool;
        11:11 enable_clr => bool;
        10:10 enable_set => bool;
        0:0 enable => bool;
    }

    // USERMODE.

    /// The doorbell: write a channel id to have it fetch new work.
    pub(crate) NV_USERMODE_NOTIFY_CHANNEL_PENDING(u32) @ 0x0081_0090 {}

    // Model-private: firmware boot.

    /// Firmware status: 0 not booted, 1 running, `0x8000_0000 | error`
    /// refused.
    pub(crate) RSVM_FW_MAILBOX0(u32) @ 0x0084_0040 {}

    /// Running firmware version, `major << 16 | minor`.
    pub(crate) RSVM_FW_MAILBOX1(u32) @ 0x0084_0044 {
        31:16 major;
        15:0 minor;
    }

    /// Write STARTCPU to fetch, check and boot the image.
    pub(crate) RSVM_FW_CPUCTL(u32) @ 0x0084_0100 {
        1:1 startcpu => bool;
    }

    /// DMA address of the image, bits 31:0.
    pub(crate) RSVM_FW_DMA_BASE_LO(u32) @ 0x0084_0110 {}

    /// DMA address of the image, bits 63:32.
    pub(crate) RSVM_FW_DMA_BASE_HI(u32) @ 0x0084_0114 {}

    /// Size of the image in bytes.
    pub(crate) RSVM_FW_DMA_SIZE(u32) @ 0x0084_0118 {}

    /// Engines the running firmware enabled.
    pub(crate) RSVM_FW_ENGINES(u32) @ 0x0084_011c {
        1:1 compute => bool;
        0:0 copy => bool;
    }

    // Model-private: the software interrupt and channel errors.

    /// Raise the software interrupt (PMC bit 31).
    pub(crate) RSVM_SWINTR_TRIGGER(u32) @ 0x00fe_0100 {
        0:0 raise => bool;
    }

    /// Software interrupt status, write 1 to clear.
    pub(crate) RSVM_SWINTR_STATUS(u32) @ 0x00fe_0104 {
        0:0 pending => bool;
    }

    /// The channel of the oldest queued channel error (all ones: none).
    pub(crate) RSVM_CHANNEL_ERROR_CHID(u32) @ 0x00fe_0200 {}

    /// The error code (`DRM_RSVM_ERROR_*` uses the same numbers).
    pub(crate) RSVM_CHANNEL_ERROR_CODE(u32) @ 0x00fe_0204 {}

    /// Detail of the error, bits 31:0.
    pub(crate) RSVM_CHANNEL_ERROR_INFO(u32) @ 0x00fe_0208 {}

    /// Detail of the error, bits 63:32.
    pub(crate) RSVM_CHANNEL_ERROR_INFO_HI(u32) @ 0x00fe_020c {}
}
