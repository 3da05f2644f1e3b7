//! BAR0 register offsets, as in `Documentation/gpu/rsvm/hardware.rst`.
//!
//! Offsets follow NVIDIA open-gpu-doc's GV100 manuals unless marked
//! model-private.

/// Size of the BAR0 register aperture.
pub const BAR0_SIZE: u64 = 16 << 20;

/// `NV_PMC_BOOT_0`: chip identification (`dev_master.ref`).
pub const NV_PMC_BOOT_0: u64 = 0x0000_0000;
/// `NV_PMC_INTR(0)`: pending interrupts, one bit per unit.
pub const NV_PMC_INTR_0: u64 = 0x0000_0100;
/// `NV_PMC_INTR_EN(0)`: interrupt enable mask.
pub const NV_PMC_INTR_EN_0: u64 = 0x0000_0140;
/// `NV_PMC_INTR_EN_SET(0)`: write 1 to enable.
pub const NV_PMC_INTR_EN_SET_0: u64 = 0x0000_0160;
/// `NV_PMC_INTR_EN_CLEAR(0)`: write 1 to disable.
pub const NV_PMC_INTR_EN_CLEAR_0: u64 = 0x0000_0180;
/// `NV_PMC_INTR(1)`: the non-stall tree (model: write 1 to clear).
pub const NV_PMC_INTR_1: u64 = 0x0000_0104;
pub const NV_PMC_INTR_EN_1: u64 = 0x0000_0144;
pub const NV_PMC_INTR_EN_SET_1: u64 = 0x0000_0164;
pub const NV_PMC_INTR_EN_CLEAR_1: u64 = 0x0000_0184;
/// `NV_PFB_PRI_MMU_CTRL`.
pub const NV_PFB_PRI_MMU_CTRL: u64 = 0x0010_0c80;
pub const MMU_CTRL_PRI_FIFO_EMPTY: u32 = 1 << 15;
pub const NV_PFB_PRI_MMU_INVALIDATE_VADDR: u64 = 0x0010_0cb4;
pub const NV_PFB_PRI_MMU_INVALIDATE_PDB: u64 = 0x0010_0cb8;
pub const NV_PFB_PRI_MMU_INVALIDATE: u64 = 0x0010_0cbc;
pub const NV_PFB_PRI_MMU_INVALIDATE_UPPER_VADDR: u64 = 0x0010_0ce8;
pub const NV_PFB_PRI_MMU_INVALIDATE_UPPER_PDB: u64 = 0x0010_0cec;
/// `NV_PTIMER_TIME_0/1`: the device clock in ns (`TIME_0` bits 4:0 read 0).
/// In the model the clock is modelled engine time (see `timing`).
pub const NV_PTIMER_TIME_0: u64 = 0x0000_9400;
pub const NV_PTIMER_TIME_1: u64 = 0x0000_9410;
/// Model-private: the first unclaimed PRI access since the last clear
/// (offset; bit 31 set for a write).
pub const RSVM_PRI_ERROR_ADDR: u64 = 0x00fe_0210;
/// Model-private: bit 0 set while a PRI error is latched; write 1 to clear.
pub const RSVM_PRI_ERROR_STATUS: u64 = 0x00fe_0214;
/// `NV_PBUS_SW_SCRATCH(i)`: 64 software scratch registers (`dev_bus.ref`).
pub const NV_PBUS_SW_SCRATCH: u64 = 0x0000_1400;
/// Number of scratch registers.
pub const NV_PBUS_SW_SCRATCH_COUNT: u64 = 64;
/// `NV_PFB_PRI_MMU_LOCAL_MEMORY_RANGE`: local memory size.
pub const NV_PFB_PRI_MMU_LOCAL_MEMORY_RANGE: u64 = 0x0010_0ce0;

/// Model-private debug counters: BAR0 reads and writes since reset (or
/// since the last write of any value to either), accesses to these four
/// registers not counted. LO is bits 31:0, HI bits 63:32.
pub const RSVM_DEBUG_BAR0_READS_LO: u64 = 0x00fe_0300;
pub const RSVM_DEBUG_BAR0_READS_HI: u64 = 0x00fe_0304;
pub const RSVM_DEBUG_BAR0_WRITES_LO: u64 = 0x00fe_0308;
pub const RSVM_DEBUG_BAR0_WRITES_HI: u64 = 0x00fe_030c;
/// Model-private debug counter: host time the engines ran (ns), reset with
/// the others.
pub const RSVM_DEBUG_ENGINE_NS_LO: u64 = 0x00fe_0318;
pub const RSVM_DEBUG_ENGINE_NS_HI: u64 = 0x00fe_031c;

/// Model-private debug aid: any write logs the state of every bound
/// channel (at warn level, in the model's log).
pub const RSVM_DEBUG_DUMP: u64 = 0x00fe_0310;

/// Model-private: write bit 0 to raise the software interrupt.
pub const RSVM_SWINTR_TRIGGER: u64 = 0x00fe_0100;
/// Model-private: software interrupt pending (bit 0), write 1 to clear.
pub const RSVM_SWINTR_STATUS: u64 = 0x00fe_0104;

/// `NV_PMC_INTR(0)` bit of the model-private software interrupt unit.
pub const PMC_INTR_SOFTWARE: u32 = 1 << 31;
/// `NV_PMC_INTR(0)` PFIFO bit.
pub const PMC_INTR_PFIFO: u32 = 1 << 8;
/// `NV_PMC_INTR(0)` PBUS bit: a PRI access no unit claimed.
pub const PMC_INTR_PBUS: u32 = 1 << 28;
/// `NV_PMC_INTR(0)` HUB bit (MMU faults).
pub const PMC_INTR_HUB: u32 = 1 << 9;
/// `NV_PMC_INTR(1)` bit: a host `NON_STALL_INTERRUPT` method ran.
pub const NONSTALL_HOST: u32 = 1 << 0;
/// `NV_PMC_INTR(1)` bit (model-private engine): a compute grid finished and
/// asked for an interrupt.
pub const NONSTALL_COMPUTE: u32 = 1 << 12;
/// `NV_PMC_INTR(1)` bit: a copy-engine launch asked for an interrupt.
pub const NONSTALL_CE0: u32 = 1 << 15;

/// What reads of unimplemented registers return: the pattern NVIDIA GPUs
/// give for a PRI access that no unit claimed.
pub const PRI_ERROR: u32 = 0xbadf_5040;

/// `NV_PMC_BOOT_0` of the model: architecture 0x1f (model-private, no real
/// chip uses it), implementation 0, revision A1.
pub const BOOT_0_VALUE: u32 = (0x1f << 24) | 0xa1;
