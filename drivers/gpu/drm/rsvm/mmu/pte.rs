// SPDX-License-Identifier: GPL-2.0

//! The GMMU version 2 entry formats (`dev_mmu.ref`: `NV_MMU_VER2_PDE`,
//! `NV_MMU_VER2_DUAL_PDE`, `NV_MMU_VER2_PTE`), each defined once.
//!
//! A PDE3/2/1 entry is a [`Pde`]; a PDE0 slot is 16 bytes, its low qword a
//! [`PdeBig`] (the 64 KiB table) or a 2 MiB [`Pte`], its high qword a
//! [`Pde`] (the 4 KiB table). PDEs and PTEs encode their aperture
//! differently.

use kernel::{
    bitfield,
    prelude::*, //
};

use crate::regs::hw_enum;

hw_enum! {
    /// `NV_MMU_VER2_PDE_APERTURE` (and `_BIG`, `_SMALL`).
    pub(crate) enum PdeAperture: u64, 2 {
        Invalid = 0,
        VidMem = 1,
        SysMemCoherent = 2,
        SysMemNoncoherent = 3,
    }
}

hw_enum! {
    /// `NV_MMU_VER2_PTE_APERTURE`.
    pub(crate) enum PteAperture: u64, 2 {
        VidMem = 0,
        Peer = 1,
        SysMemCoherent = 2,
        SysMemNoncoherent = 3,
    }
}

bitfield! {
    /// A page directory entry, or the 4 KiB half of a dual PDE0.
    pub(crate) struct Pde(u64) {
        /// `ADDRESS_SYS`: the table's address >> 12.
        53:8 addr;
        /// `VOL`: uncached.
        3:3 vol => bool;
        2:1 aperture ?=> PdeAperture;
    }
}

bitfield! {
    /// The 64 KiB half of a dual PDE0.
    pub(crate) struct PdeBig(u64) {
        /// `ADDRESS_BIG_SYS`: the table's address >> 8 (it is 256-byte
        /// aligned).
        53:4 addr;
        3:3 vol => bool;
        2:1 aperture ?=> PdeAperture;
        /// `IS_PTE`: 0 here; 1 makes the slot a 2 MiB [`Pte`].
        0:0 is_pte => bool;
    }
}

bitfield! {
    /// A page table entry (also a 2 MiB page in a PDE0 slot).
    pub(crate) struct Pte(u64) {
        /// `KIND`: 0, pitch (the only kind system memory takes).
        63:56 kind;
        /// `ADDRESS_SYS`: the page's address >> 12.
        53:8 addr;
        7:7 atomic_disable => bool;
        6:6 read_only => bool;
        /// `PRIVILEGE`: only privileged (host) accesses may use the page.
        5:5 privilege => bool;
        3:3 vol => bool;
        2:1 aperture ?=> PteAperture;
        0:0 valid => bool;
    }
}

impl Pde {
    /// An entry pointing at a table in coherent system memory at `table`.
    pub(crate) fn system(table: u64) -> Result<u64> {
        Ok(Self::zeroed()
            .with_aperture(PdeAperture::SysMemCoherent)
            .try_with_addr(table >> 12)?
            .into_raw())
    }
}

impl PdeBig {
    /// An entry pointing at a 64 KiB-page table in coherent system memory.
    pub(crate) fn system(table: u64) -> Result<u64> {
        Ok(Self::zeroed()
            .with_aperture(PdeAperture::SysMemCoherent)
            .try_with_addr(table >> 8)?
            .into_raw())
    }
}

impl Pte {
    /// A valid entry mapping coherent system memory at `addr`.
    pub(crate) fn system(addr: u64, read_only: bool, privileged: bool) -> Result<u64> {
        Ok(Self::zeroed()
            .with_valid(true)
            .with_aperture(PteAperture::SysMemCoherent)
            .with_privilege(privileged)
            .with_read_only(read_only)
            .try_with_addr(addr >> 12)?
            .into_raw())
    }

    /// Whether a raw entry is a valid PTE (or, in a PDE0 slot, a 2 MiB one:
    /// bit 0 is `VALID` and `IS_PTE` alike).
    pub(crate) fn is_valid(raw: u64) -> bool {
        Self::from(raw).valid()
    }
}
