//! GMMU version 2: the 5-level page-table walk for a 49-bit VA, access
//! checks, and a TLB that keeps translations until they are invalidated.
//!
//! Formats follow open-gpu-doc `dev_mmu.ref` (GV100) `NV_MMU_VER2_PDE`,
//! `NV_MMU_VER2_DUAL_PDE` and `NV_MMU_VER2_PTE`, and `gp100-mmu-format.pdf`:
//!
//! | level | VA bits | entries | entry |
//! |-------|---------|---------|-------|
//! | PDE3  | 48:47   | 4       | 8 B   |
//! | PDE2  | 46:38   | 512     | 8 B   |
//! | PDE1  | 37:29   | 512     | 8 B   |
//! | PDE0  | 28:21   | 256     | 16 B (dual: 64K and 4K tables), or a 2 MiB PTE |
//! | PT    | 20:16 (64K) / 20:12 (4K) | 32 / 512 | 8 B |

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::mem::{Aperture, MemError, PhysAddr, PhysMem};

/// Virtual address bits.
pub const VA_BITS: u32 = 49;

pub const SZ_4K: u64 = 1 << 12;
pub const SZ_64K: u64 = 1 << 16;
pub const SZ_2M: u64 = 1 << 21;

/// Fault types of the MMU fault packet (`dev_fault.ref` `NV_PFAULT_FAULT_TYPE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FaultType {
    Pde = 0,
    PdeSize = 1,
    Pte = 2,
    VaLimitViolation = 3,
    UnboundInstBlock = 4,
    PrivViolation = 5,
    RoViolation = 6,
    UnsupportedAperture = 0xa,
    UnsupportedKind = 0xc,
    AtomicViolation = 0xf,
}

/// Access types of the fault packet (`NV_PFAULT_ACCESS_TYPE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Access {
    Read = 0,
    Write = 1,
    Atomic = 2,
    Prefetch = 3,
}

/// A failed translation or access check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkError {
    /// A fault to report in a fault buffer.
    Fault(FaultType),
    /// A page-table read hit memory that does not exist; reported as a
    /// fault and as an error interrupt.
    Mem(MemError),
    /// An invalid encoding (a reserved bit, a misaligned table); reported as
    /// a fault and as an error interrupt.
    Encoding(&'static str),
}

impl WalkError {
    /// The fault type a fault packet reports for this error.
    pub fn fault_type(self) -> FaultType {
        match self {
            Self::Fault(t) => t,
            Self::Mem(_) | Self::Encoding(_) => FaultType::Pde,
        }
    }
}

/// The page directory base of an address space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Pdb(pub PhysAddr);

/// A translation: where a page is and what it allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// Physical address of the start of the page (`None` for a sparse page:
    /// reads return zero, writes are dropped).
    pub page: Option<PhysAddr>,
    pub page_size: u64,
    pub read_only: bool,
    pub atomic_disable: bool,
    pub privileged: bool,
    pub volatile: bool,
}

impl Translation {
    /// The physical address of `va` inside this page.
    pub fn resolve(&self, va: u64) -> Option<PhysAddr> {
        self.page.map(|p| p.offset(va & (self.page_size - 1)))
    }

    /// Checks `access` against the page's permissions.
    pub fn check(&self, access: Access, privileged: bool) -> Result<(), FaultType> {
        if self.privileged && !privileged {
            return Err(FaultType::PrivViolation);
        }
        match access {
            Access::Write if self.read_only => Err(FaultType::RoViolation),
            Access::Atomic if self.read_only => Err(FaultType::RoViolation),
            Access::Atomic if self.atomic_disable => Err(FaultType::AtomicViolation),
            _ => Ok(()),
        }
    }
}

fn pde_aperture(bits: u64) -> Option<Aperture> {
    match bits & 3 {
        1 => Some(Aperture::Video),
        2 => Some(Aperture::SysCoherent),
        3 => Some(Aperture::SysNonCoherent),
        _ => None,
    }
}

/// Address of a next-level table: `ADDRESS_VID` is 32:8 (37-bit VRAM),
/// `ADDRESS_SYS` 53:8, both in 4 KiB units.
fn pde_address(entry: u64, aperture: Aperture) -> u64 {
    let bits = if aperture.is_sysmem() { 46 } else { 25 };
    ((entry >> 8) & ((1 << bits) - 1)) << 12
}

/// A PTE (`NV_MMU_VER2_PTE`), or the low half of PDE0 used as a 2 MiB PTE.
fn decode_pte(pte: u64, size: u64) -> Result<Option<Translation>, WalkError> {
    let valid = pte & 1 != 0;
    let volatile = pte & (1 << 3) != 0;
    if !valid {
        return if volatile {
            // Sparse: VALID=0, VOL=1.
            Ok(Some(Translation {
                page: None,
                page_size: size,
                read_only: false,
                atomic_disable: false,
                privileged: false,
                volatile,
            }))
        } else {
            Ok(None)
        };
    }
    if pte & (1 << 4) != 0 {
        return Err(WalkError::Encoding("PTE ENCRYPTED is not supported"));
    }
    let aperture = match (pte >> 1) & 3 {
        0 => Aperture::Video,
        1 => return Err(WalkError::Fault(FaultType::UnsupportedAperture)), // peer
        2 => Aperture::SysCoherent,
        _ => Aperture::SysNonCoherent,
    };
    if pte >> 56 != 0 {
        // Only KIND_PITCH (0) exists in the model.
        return Err(WalkError::Fault(FaultType::UnsupportedKind));
    }
    let bits = if aperture.is_sysmem() { 46 } else { 25 };
    let addr = ((pte >> 8) & ((1 << bits) - 1)) << 12;
    if !aperture.is_sysmem() && (pte >> 33) & 0x7ff_ffff != 0 {
        return Err(WalkError::Encoding(
            "PTE: peer/comptag bits set in a video PTE",
        ));
    }
    if addr & (size - 1) != 0 {
        return Err(WalkError::Encoding(
            "PTE: address not aligned to the page size",
        ));
    }
    Ok(Some(Translation {
        page: Some(PhysAddr { aperture, addr }),
        page_size: size,
        read_only: pte & (1 << 6) != 0,
        atomic_disable: pte & (1 << 7) != 0,
        privileged: pte & (1 << 5) != 0,
        volatile,
    }))
}

/// Walks the page tables of `pdb` for `va`.
pub fn walk(mem: &dyn PhysMem, pdb: Pdb, va: u64) -> Result<Translation, WalkError> {
    if va >> VA_BITS != 0 {
        return Err(WalkError::Fault(FaultType::VaLimitViolation));
    }
    let mut table = pdb.0;
    // PDE3, PDE2, PDE1: single 8-byte PDEs.
    for (shift, bits) in [(47, 2), (38, 9), (29, 9)] {
        let index = (va >> shift) & ((1 << bits) - 1);
        let pde = mem
            .read_u64(table.offset(index * 8))
            .map_err(WalkError::Mem)?;
        if pde & 1 != 0 {
            return Err(WalkError::Fault(FaultType::PdeSize));
        }
        let Some(aperture) = pde_aperture(pde >> 1) else {
            return sparse_or(pde, SZ_2M << (shift - 21), FaultType::Pde);
        };
        table = PhysAddr {
            aperture,
            addr: pde_address(pde, aperture),
        };
    }
    // PDE0: a dual PDE, or a 2 MiB PTE.
    let slot = table.offset(((va >> 21) & 0xff) * 16);
    let lo = mem.read_u64(slot).map_err(WalkError::Mem)?;
    if lo & 1 != 0 {
        return decode_pte(lo, SZ_2M)?.ok_or(WalkError::Fault(FaultType::Pte));
    }
    let hi = mem.read_u64(slot.offset(8)).map_err(WalkError::Mem)?;

    // The 64 KiB table: pointer in 53:4 with a 256-byte shift.
    if let Some(aperture) = pde_aperture(lo >> 1) {
        let bits = if aperture.is_sysmem() { 50 } else { 29 };
        let base = ((lo >> 4) & ((1 << bits) - 1)) << 8;
        let at = PhysAddr {
            aperture,
            addr: base,
        }
        .offset(((va >> 16) & 0x1f) * 8);
        let pte = mem.read_u64(at).map_err(WalkError::Mem)?;
        if let Some(t) = decode_pte(pte, SZ_64K)? {
            return Ok(t);
        }
        if pte & (1 << 5) != 0 {
            // Invalid big PTE with PRIVILEGE: "no small PTEs are valid".
            return Err(WalkError::Fault(FaultType::Pte));
        }
    }
    // The 4 KiB table: in the upper qword, aperture 66:65, address 117:72.
    if let Some(aperture) = pde_aperture(hi >> 1) {
        let at = PhysAddr {
            aperture,
            addr: pde_address(hi, aperture),
        }
        .offset(((va >> 12) & 0x1ff) * 8);
        let pte = mem.read_u64(at).map_err(WalkError::Mem)?;
        return decode_pte(pte, SZ_4K)?.ok_or(WalkError::Fault(FaultType::Pte));
    }
    if pde_aperture(lo >> 1).is_some() {
        return Err(WalkError::Fault(FaultType::Pte));
    }
    sparse_or(lo, SZ_64K, FaultType::Pde)
}

/// An invalid PDE with VOL set makes its whole range sparse.
fn sparse_or(pde: u64, size: u64, fault: FaultType) -> Result<Translation, WalkError> {
    if pde & (1 << 3) != 0 {
        Ok(Translation {
            page: None,
            page_size: size,
            read_only: false,
            atomic_disable: false,
            privileged: false,
            volatile: true,
        })
    } else {
        Err(WalkError::Fault(fault))
    }
}

/// What an invalidate applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvalidateScope {
    /// Every address space, every address.
    All,
    /// Every address of one address space.
    Pdb(Pdb),
    /// `[va, va + size)` of one address space (or of all, with `None`).
    Range {
        pdb: Option<Pdb>,
        va: u64,
        size: u64,
    },
}

/// The register-path invalidate (`NV_PFB_PRI_MMU_INVALIDATE*`,
/// `pri_mmu_hub.ref`): four address registers, then a trigger.
#[derive(Clone, Copy, Debug, Default)]
pub struct InvalidateRegs {
    vaddr: u32,
    pdb: u32,
    upper_vaddr: u32,
    upper_pdb: u32,
}

/// What a triggered invalidate asks for: the TLB scope, and the `REPLAY`
/// field (5:3) with the address and address space a replay or cancel names
/// (`None`: every address space, `ALL_PDB`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Invalidate {
    pub scope: InvalidateScope,
    pub replay: u32,
    pub va: u64,
    pub replay_pdb: Option<Pdb>,
}

impl InvalidateRegs {
    /// A read of one of the registers.
    pub fn read(&self, off: u64) -> Option<u32> {
        use crate::regs::*;
        Some(match off {
            NV_PFB_PRI_MMU_INVALIDATE_VADDR => self.vaddr,
            NV_PFB_PRI_MMU_INVALIDATE_PDB => self.pdb,
            NV_PFB_PRI_MMU_INVALIDATE_UPPER_VADDR => self.upper_vaddr,
            NV_PFB_PRI_MMU_INVALIDATE_UPPER_PDB => self.upper_pdb,
            // TRIGGER reads back clear: the invalidate is done.
            NV_PFB_PRI_MMU_INVALIDATE => 0,
            _ => return None,
        })
    }

    /// A write: `None` if the offset is not one of the registers,
    /// `Some(None)` if it only stored a value, `Some(Some(_))` if it
    /// triggered an invalidate.
    pub fn write(&mut self, off: u64, value: u32) -> Option<Option<Invalidate>> {
        use crate::regs::*;
        match off {
            NV_PFB_PRI_MMU_INVALIDATE_VADDR => self.vaddr = value,
            NV_PFB_PRI_MMU_INVALIDATE_PDB => self.pdb = value,
            NV_PFB_PRI_MMU_INVALIDATE_UPPER_VADDR => self.upper_vaddr = value & 0xf_ffff,
            NV_PFB_PRI_MMU_INVALIDATE_UPPER_PDB => self.upper_pdb = value & 0xf_ffff,
            NV_PFB_PRI_MMU_INVALIDATE if value & (1 << 31) != 0 => {
                return Some(Some(self.trigger(value)));
            }
            NV_PFB_PRI_MMU_INVALIDATE => {}
            _ => return None,
        }
        Some(None)
    }

    /// Decodes a trigger write: `ALL_VA` 0, `ALL_PDB` 1, `REPLAY` 5:3.
    fn trigger(&self, value: u32) -> Invalidate {
        let pdb = Pdb(PhysAddr {
            aperture: if self.pdb & 2 != 0 {
                Aperture::SysCoherent
            } else {
                Aperture::Video
            },
            addr: ((u64::from(self.upper_pdb) << 28) | u64::from(self.pdb >> 4)) << 12,
        });
        let va = ((u64::from(self.upper_vaddr) << 28) | u64::from(self.vaddr >> 4)) << 12;
        let all_pdb = value & 2 != 0;
        let scope = match (value & 1 != 0, all_pdb) {
            (true, true) => InvalidateScope::All,
            (true, false) => InvalidateScope::Pdb(pdb),
            (false, all_pdb) => InvalidateScope::Range {
                pdb: (!all_pdb).then_some(pdb),
                va,
                size: SZ_4K,
            },
        };
        Invalidate {
            scope,
            replay: (value >> 3) & 7,
            va,
            replay_pdb: (!all_pdb).then_some(pdb),
        }
    }
}

/// A multiplicative hasher for the TLB's keys (a few integers): SipHash's
/// resistance to crafted keys buys nothing here and costs a third of a 4 KiB
/// copy's time.
#[derive(Default)]
struct TlbHasher(u64);

impl Hasher for TlbHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

type TlbMap = HashMap<(Pdb, u64, u64), Translation, BuildHasherDefault<TlbHasher>>;

/// Cached translations. With `strict` set (the default) a translation stays
/// until invalidated, as on hardware, so a driver that forgets a TLB
/// invalidate after changing a PTE sees the stale page.
pub struct Tlb {
    strict: bool,
    entries: TlbMap,
    /// Counters for tests and statistics.
    pub hits: u64,
    pub misses: u64,
}

impl Default for Tlb {
    fn default() -> Self {
        Self::new(true)
    }
}

impl Tlb {
    pub fn new(strict: bool) -> Self {
        Self {
            strict,
            entries: TlbMap::default(),
            hits: 0,
            misses: 0,
        }
    }

    /// Translates `va`, from the cache or by walking.
    pub fn translate(
        &mut self,
        mem: &dyn PhysMem,
        pdb: Pdb,
        va: u64,
    ) -> Result<Translation, WalkError> {
        if self.strict {
            for size in [SZ_4K, SZ_64K, SZ_2M] {
                if let Some(t) = self.entries.get(&(pdb, va & !(size - 1), size)) {
                    self.hits += 1;
                    return Ok(*t);
                }
            }
        }
        self.misses += 1;
        let t = walk(mem, pdb, va)?;
        if self.strict {
            self.entries
                .insert((pdb, va & !(t.page_size - 1), t.page_size), t);
        }
        Ok(t)
    }

    /// Drops cached translations.
    pub fn invalidate(&mut self, scope: InvalidateScope) {
        match scope {
            InvalidateScope::All => self.entries.clear(),
            InvalidateScope::Pdb(p) => self.entries.retain(|(pdb, _, _), _| *pdb != p),
            InvalidateScope::Range { pdb, va, size } => {
                let end = va.saturating_add(size);
                self.entries.retain(|(p, base, sz), _| {
                    pdb.is_some_and(|x| x != *p) || *base + *sz <= va || *base >= end
                })
            }
        }
    }

    /// The cached translation of `va`, if any (diagnostics).
    pub fn peek(&self, pdb: Pdb, va: u64) -> Option<Translation> {
        [SZ_4K, SZ_64K, SZ_2M]
            .iter()
            .find_map(|&size| self.entries.get(&(pdb, va & !(size - 1), size)).copied())
    }

    /// Number of cached translations.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Encoders of the VER2 formats, as a driver writes them. Used by tests and
/// by the documentation's examples.
pub mod encode {
    use super::*;

    fn pde_ap(a: Aperture) -> u64 {
        match a {
            Aperture::Video => 1,
            Aperture::SysCoherent => 2,
            Aperture::SysNonCoherent => 3,
        }
    }

    fn pte_ap(a: Aperture) -> u64 {
        match a {
            Aperture::Video => 0,
            Aperture::SysCoherent => 2,
            Aperture::SysNonCoherent => 3,
        }
    }

    /// A PDE3/2/1 pointing at `table`.
    pub fn pde(table: PhysAddr) -> u64 {
        (pde_ap(table.aperture) << 1) | ((table.addr >> 12) << 8)
    }

    /// A dual PDE0 (low, high qwords) pointing at a 64K table and/or a 4K table.
    pub fn dual_pde(big: Option<PhysAddr>, small: Option<PhysAddr>) -> (u64, u64) {
        let lo = big.map_or(0, |b| (pde_ap(b.aperture) << 1) | ((b.addr >> 8) << 4));
        let hi = small.map_or(0, |s| (pde_ap(s.aperture) << 1) | ((s.addr >> 12) << 8));
        (lo, hi)
    }

    /// Permission bits of a PTE.
    #[derive(Clone, Copy, Default)]
    pub struct Flags {
        pub read_only: bool,
        pub atomic_disable: bool,
        pub privileged: bool,
        pub volatile: bool,
    }

    /// A valid PTE for `page` (4K, 64K or 2M alike).
    pub fn pte(page: PhysAddr, f: Flags) -> u64 {
        1 | (pte_ap(page.aperture) << 1)
            | (u64::from(f.volatile) << 3)
            | (u64::from(f.privileged) << 5)
            | (u64::from(f.read_only) << 6)
            | (u64::from(f.atomic_disable) << 7)
            | ((page.addr >> 12) << 8)
    }

    /// A sparse PTE: reads return zero, writes are dropped.
    pub const SPARSE: u64 = 1 << 3;
    /// An invalid big PTE that hides the small PTEs beneath it.
    pub const BIG_INVALID_NO_SMALL: u64 = 1 << 5;
}

/// Page tables built the way a driver builds them, for host-side tests and
/// benchmarks. It panics if the tables it is given are not in memory: it is
/// a tool for setting up a device, not part of the device.
pub mod builder {
    use super::encode::{dual_pde, pde, pte, Flags};
    use super::*;
    use std::cell::Cell;

    /// An address space whose tables are bump-allocated in VRAM.
    pub struct PageTables {
        pub pdb: Pdb,
        next: Cell<u64>,
    }

    impl PageTables {
        /// Tables live in VRAM from `base` upwards (which must be zeroed).
        pub fn new(base: u64) -> Self {
            Self {
                pdb: Pdb(PhysAddr::vid(base)),
                next: Cell::new(base + SZ_4K),
            }
        }

        fn alloc(&self) -> PhysAddr {
            let a = self.next.get();
            self.next.set(a + SZ_4K);
            PhysAddr::vid(a)
        }

        fn level(&self, mem: &dyn PhysMem, table: PhysAddr, index: u64) -> PhysAddr {
            let at = table.offset(index * 8);
            let e = mem.read_u64(at).unwrap();
            if e & 6 != 0 {
                return PhysAddr::vid(((e >> 8) & ((1 << 25) - 1)) << 12);
            }
            let t = self.alloc();
            mem.write_u64(at, pde(t)).unwrap();
            t
        }

        /// Maps `[va, va + size)` to `pa` with pages of `page` bytes.
        pub fn map(
            &self,
            mem: &dyn PhysMem,
            va: u64,
            pa: PhysAddr,
            size: u64,
            page: u64,
            f: Flags,
        ) {
            for off in (0..size).step_by(page as usize) {
                let v = va + off;
                let mut t = self.pdb.0;
                for (shift, bits) in [(47, 2), (38, 9), (29, 9)] {
                    t = self.level(mem, t, (v >> shift) & ((1 << bits) - 1));
                }
                let slot = t.offset(((v >> 21) & 0xff) * 16);
                let e = pte(pa.offset(off), f);
                if page == SZ_2M {
                    mem.write_u64(slot, e).unwrap();
                    mem.write_u64(slot.offset(8), 0).unwrap();
                    continue;
                }
                let (mut lo, mut hi) = (
                    mem.read_u64(slot).unwrap(),
                    mem.read_u64(slot.offset(8)).unwrap(),
                );
                let (big, small) = (lo & 6 != 0, hi & 6 != 0);
                if page == SZ_64K && !big {
                    lo = dual_pde(Some(self.alloc()), None).0;
                } else if page == SZ_4K && !small {
                    hi = dual_pde(None, Some(self.alloc())).1;
                }
                mem.write_u64(slot, lo).unwrap();
                mem.write_u64(slot.offset(8), hi).unwrap();
                let at = if page == SZ_64K {
                    PhysAddr::vid(((lo >> 4) & ((1 << 29) - 1)) << 8).offset(((v >> 16) & 0x1f) * 8)
                } else {
                    PhysAddr::vid(((hi >> 8) & ((1 << 25) - 1)) << 12)
                        .offset(((v >> 12) & 0x1ff) * 8)
                };
                mem.write_u64(at, e).unwrap();
            }
        }

        /// Writes `pte` as the 4 KiB PTE of `va` (which must be mapped).
        pub fn set_pte_4k(&self, mem: &dyn PhysMem, va: u64, e: u64) {
            let mut t = self.pdb.0;
            for (shift, bits) in [(47, 2), (38, 9), (29, 9)] {
                t = self.level(mem, t, (va >> shift) & ((1 << bits) - 1));
            }
            let hi = mem
                .read_u64(t.offset(((va >> 21) & 0xff) * 16 + 8))
                .unwrap();
            let at =
                PhysAddr::vid(((hi >> 8) & ((1 << 25) - 1)) << 12).offset(((va >> 12) & 0x1ff) * 8);
            mem.write_u64(at, e).unwrap();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::encode::*;
    use super::*;

    #[test]
    fn register_invalidate_decodes_pdb_address_and_scope() {
        use crate::regs::*;
        let mut r = InvalidateRegs::default();
        let pdb = 0x12_3456_7000u64;
        let va = 0x7f_1234_5000u64;
        assert_eq!(
            r.write(
                NV_PFB_PRI_MMU_INVALIDATE_PDB,
                (((pdb >> 12) as u32) << 4) | 2
            ),
            Some(None)
        );
        assert_eq!(
            r.write(NV_PFB_PRI_MMU_INVALIDATE_UPPER_PDB, (pdb >> 40) as u32),
            Some(None)
        );
        assert_eq!(
            r.write(NV_PFB_PRI_MMU_INVALIDATE_VADDR, ((va >> 12) as u32) << 4),
            Some(None)
        );
        assert_eq!(
            r.write(NV_PFB_PRI_MMU_INVALIDATE_UPPER_VADDR, (va >> 40) as u32),
            Some(None)
        );
        assert_eq!(
            r.read(NV_PFB_PRI_MMU_INVALIDATE_UPPER_VADDR),
            Some((va >> 40) as u32)
        );
        let pdb = Pdb(PhysAddr::sys(pdb));
        // CANCEL_VA_GLOBAL of one page of one address space.
        let inv = r
            .write(NV_PFB_PRI_MMU_INVALIDATE, (1 << 31) | (5 << 3))
            .unwrap()
            .unwrap();
        assert_eq!(
            inv.scope,
            InvalidateScope::Range {
                pdb: Some(pdb),
                va,
                size: SZ_4K
            }
        );
        assert_eq!((inv.replay, inv.va, inv.replay_pdb), (5, va, Some(pdb)));
        // ALL_VA | ALL_PDB | REPLAY_START: everything, replayed everywhere.
        let inv = r
            .write(NV_PFB_PRI_MMU_INVALIDATE, (1 << 31) | (1 << 3) | 3)
            .unwrap()
            .unwrap();
        assert_eq!(
            (inv.scope, inv.replay, inv.replay_pdb),
            (InvalidateScope::All, 1, None)
        );
        // A write without TRIGGER does nothing; other offsets are not ours.
        assert_eq!(r.write(NV_PFB_PRI_MMU_INVALIDATE, 1), Some(None));
        assert_eq!(r.write(NV_PFB_PRI_MMU_INVALIDATE + 0x100, 1), None);
        assert_eq!(r.read(NV_PFB_PRI_MMU_INVALIDATE), Some(0));
    }
    use crate::mem::testing::TestMem;

    /// Builds page tables in VRAM: PDB at 0x1000, PDE2 0x2000, PDE1 0x3000,
    /// PDE0 0x4000, 4K table 0x5000, 64K table 0x6000.
    struct Tables<'a> {
        m: &'a TestMem,
    }

    const PDB: Pdb = Pdb(PhysAddr::vid(0x1000));

    impl<'a> Tables<'a> {
        fn new(m: &'a TestMem) -> Self {
            let mem = m.mem();
            mem.write_u64(PhysAddr::vid(0x1000), pde(PhysAddr::vid(0x2000)))
                .unwrap();
            mem.write_u64(PhysAddr::vid(0x2000), pde(PhysAddr::vid(0x3000)))
                .unwrap();
            mem.write_u64(PhysAddr::vid(0x3000), pde(PhysAddr::vid(0x4000)))
                .unwrap();
            Self { m }
        }

        /// Sets PDE0 slot `i` (VA i * 2 MiB).
        fn pde0(&self, i: u64, lo: u64, hi: u64) {
            let mem = self.m.mem();
            mem.write_u64(PhysAddr::vid(0x4000 + i * 16), lo).unwrap();
            mem.write_u64(PhysAddr::vid(0x4000 + i * 16 + 8), hi)
                .unwrap();
        }

        fn small(&self, i: u64, pte: u64) {
            self.m
                .mem()
                .write_u64(PhysAddr::vid(0x5000 + i * 8), pte)
                .unwrap();
        }

        fn big(&self, i: u64, pte: u64) {
            self.m
                .mem()
                .write_u64(PhysAddr::vid(0x6000 + i * 8), pte)
                .unwrap();
        }

        fn both(&self) {
            let (lo, hi) = dual_pde(Some(PhysAddr::vid(0x6000)), Some(PhysAddr::vid(0x5000)));
            self.pde0(0, lo, hi);
        }
    }

    #[test]
    fn walks_4k_64k_and_2m_pages() {
        let m = TestMem::new(8 << 20, 8 << 20);
        let t = Tables::new(&m);
        t.both();
        t.small(3, pte(PhysAddr::sys(0x7000), Flags::default()));
        t.big(1, pte(PhysAddr::vid(0x20_0000), Flags::default()));
        t.pde0(1, pte(PhysAddr::vid(0x40_0000), Flags::default()), 0);
        let mem = m.mem();

        let x = walk(&mem, PDB, 0x3123).unwrap();
        assert_eq!(
            (x.page_size, x.resolve(0x3123)),
            (SZ_4K, Some(PhysAddr::sys(0x7123)))
        );
        let x = walk(&mem, PDB, 0x1_2345).unwrap();
        assert_eq!(
            (x.page_size, x.resolve(0x1_2345)),
            (SZ_64K, Some(PhysAddr::vid(0x20_2345)))
        );
        let x = walk(&mem, PDB, 0x2a_bcde).unwrap();
        assert_eq!(
            (x.page_size, x.resolve(0x2a_bcde)),
            (SZ_2M, Some(PhysAddr::vid(0x4a_bcde)))
        );
    }

    #[test]
    fn faults_are_classified() {
        let m = TestMem::new(8 << 20, 8 << 20);
        let t = Tables::new(&m);
        t.both();
        let mem = m.mem();
        assert_eq!(
            walk(&mem, PDB, 0x3000),
            Err(WalkError::Fault(FaultType::Pte))
        );
        assert_eq!(
            walk(&mem, PDB, 1 << 40),
            Err(WalkError::Fault(FaultType::Pde))
        );
        assert_eq!(
            walk(&mem, PDB, 1 << 49),
            Err(WalkError::Fault(FaultType::VaLimitViolation))
        );
        assert_eq!(
            walk(&mem, PDB, 0x20_0000),
            Err(WalkError::Fault(FaultType::Pde))
        );
        // A big PTE that hides the small table.
        t.small(0, pte(PhysAddr::vid(0x9000), Flags::default()));
        assert!(walk(&mem, PDB, 0x0).is_ok());
        t.big(0, BIG_INVALID_NO_SMALL);
        assert_eq!(walk(&mem, PDB, 0x0), Err(WalkError::Fault(FaultType::Pte)));
        t.big(0, 0);
        // Peer aperture and non-pitch kinds are not modelled.
        t.small(1, 1 | (1 << 1));
        assert_eq!(
            walk(&mem, PDB, 0x1000),
            Err(WalkError::Fault(FaultType::UnsupportedAperture))
        );
        t.small(2, pte(PhysAddr::vid(0x9000), Flags::default()) | (6 << 56));
        assert_eq!(
            walk(&mem, PDB, 0x2000),
            Err(WalkError::Fault(FaultType::UnsupportedKind))
        );
        // Page tables outside VRAM are a memory error, not a silent zero.
        let far = Pdb(PhysAddr::vid(64 << 20));
        assert!(matches!(walk(&mem, far, 0), Err(WalkError::Mem(_))));
    }

    #[test]
    fn permissions() {
        let m = TestMem::new(8 << 20, 8 << 20);
        let t = Tables::new(&m);
        t.both();
        let ro = Flags {
            read_only: true,
            ..Default::default()
        };
        let noatomic = Flags {
            atomic_disable: true,
            ..Default::default()
        };
        let privileged = Flags {
            privileged: true,
            ..Default::default()
        };
        t.small(0, pte(PhysAddr::vid(0x9000), ro));
        t.small(1, pte(PhysAddr::vid(0xa000), noatomic));
        t.small(2, pte(PhysAddr::vid(0xb000), privileged));
        let mem = m.mem();
        let x = walk(&mem, PDB, 0).unwrap();
        assert_eq!(x.check(Access::Read, false), Ok(()));
        assert_eq!(x.check(Access::Write, false), Err(FaultType::RoViolation));
        let x = walk(&mem, PDB, 0x1000).unwrap();
        assert_eq!(x.check(Access::Write, false), Ok(()));
        assert_eq!(
            x.check(Access::Atomic, false),
            Err(FaultType::AtomicViolation)
        );
        let x = walk(&mem, PDB, 0x2000).unwrap();
        assert_eq!(x.check(Access::Read, false), Err(FaultType::PrivViolation));
        assert_eq!(x.check(Access::Read, true), Ok(()));
    }

    #[test]
    fn sparse_ranges() {
        let m = TestMem::new(8 << 20, 8 << 20);
        let t = Tables::new(&m);
        t.both();
        t.small(5, SPARSE);
        let mem = m.mem();
        let x = walk(&mem, PDB, 0x5000).unwrap();
        assert_eq!(x.page, None);
        // An invalid PDE with VOL: the whole 2 MiB is sparse.
        t.pde0(2, SPARSE, 0);
        assert_eq!(walk(&mem, PDB, 0x40_1000).unwrap().page, None);
    }

    #[test]
    fn strict_tlb_keeps_stale_translations_until_invalidated() {
        let m = TestMem::new(8 << 20, 8 << 20);
        let t = Tables::new(&m);
        t.both();
        t.small(0, pte(PhysAddr::vid(0x9000), Flags::default()));
        t.small(1, pte(PhysAddr::vid(0xa000), Flags::default()));
        let mem = m.mem();
        let mut tlb = Tlb::default();
        assert_eq!(
            tlb.translate(&mem, PDB, 0x10).unwrap().resolve(0x10),
            Some(PhysAddr::vid(0x9010))
        );
        tlb.translate(&mem, PDB, 0x1000).unwrap();

        // The driver unmaps page 0 but does not invalidate: stale.
        t.small(0, 0);
        assert_eq!(
            tlb.translate(&mem, PDB, 0x10).unwrap().resolve(0x10),
            Some(PhysAddr::vid(0x9010))
        );
        assert_eq!(tlb.hits, 1);

        // A targeted invalidate of page 0 leaves page 1 cached.
        tlb.invalidate(InvalidateScope::Range {
            pdb: Some(PDB),
            va: 0,
            size: SZ_4K,
        });
        assert_eq!(
            tlb.translate(&mem, PDB, 0x10),
            Err(WalkError::Fault(FaultType::Pte))
        );
        assert_eq!(tlb.len(), 1);
        tlb.invalidate(InvalidateScope::Pdb(Pdb(PhysAddr::vid(0x7000))));
        assert_eq!(tlb.len(), 1, "another address space's invalidate");
        tlb.invalidate(InvalidateScope::Pdb(PDB));
        assert!(tlb.is_empty());

        // Not strict: every access walks.
        let mut loose = Tlb::new(false);
        t.small(0, pte(PhysAddr::vid(0x9000), Flags::default()));
        loose.translate(&mem, PDB, 0).unwrap();
        t.small(0, 0);
        assert!(loose.translate(&mem, PDB, 0).is_err());
    }
}
