//! MMU fault reporting: the two fault buffers (0: non-replayable, 1:
//! replayable), their 32-byte packets, the "other fault" snapshot, and the
//! NISO interrupt bits that announce them.
//!
//! Registers follow open-gpu-doc `pri_mmu_hub.ref` (GV100)
//! `NV_PFB_PRI_MMU_FAULT_BUFFER_*(i)` at 0x100E24 + 20·i; the packet follows
//! `dev_mmu_fault.ref` (`MMU_FAULT_BUFFER`, class 0xC369). The NISO interrupt
//! register is not in open-gpu-doc; offsets and bits are derived from nvgpu
//! and nouveau (see `Documentation/gpu/rsvm/hardware.rst`).

use crate::mem::{Aperture, PhysAddr, PhysMem};
use crate::mmu::{Access, FaultType};

pub const FAULT_BUFFER_LO: u64 = 0x0010_0e24;
pub const FAULT_BUFFER_STRIDE: u64 = 20;
pub const FAULT_ADDR_LO: u64 = 0x0010_0e4c;
pub const FAULT_ADDR_HI: u64 = 0x0010_0e50;
pub const FAULT_INST_LO: u64 = 0x0010_0e54;
pub const FAULT_INST_HI: u64 = 0x0010_0e58;
pub const FAULT_INFO: u64 = 0x0010_0e5c;
pub const FAULT_STATUS: u64 = 0x0010_0e60;
pub const NISO_INTR: u64 = 0x0010_0a20;
/// Model: read-back of the NISO enable mask.
pub const NISO_INTR_EN: u64 = 0x0010_0a24;
pub const NISO_INTR_EN_SET: u64 = 0x0010_0a2c;
pub const NISO_INTR_EN_CLR: u64 = 0x0010_0a34;

/// Index of the non-replayable buffer.
pub const NON_REPLAYABLE: usize = 0;
/// Index of the replayable buffer.
pub const REPLAYABLE: usize = 1;

pub const NISO_REPLAYABLE_NOTIFY: u32 = 1 << 27;
pub const NISO_REPLAYABLE_OVERFLOW: u32 = 1 << 28;
pub const NISO_NON_REPLAYABLE_NOTIFY: u32 = 1 << 29;
pub const NISO_NON_REPLAYABLE_OVERFLOW: u32 = 1 << 30;
pub const NISO_OTHER_FAULT_NOTIFY: u32 = 1 << 31;

/// MMU engine IDs (`dev_fault.h`, GV100).
pub mod engine {
    pub const CE0: u16 = 15;
    pub const HOST0: u16 = 32;
    pub const GRAPHICS: u16 = 64;
}

/// Fault-buffer clients (`NV_PFAULT_CLIENT_*`).
pub mod client {
    pub const GPC_T1_0: u8 = 0;
    pub const HUB_CE0: u8 = 1;
    pub const HUB_HOST: u8 = 0x6;
}

/// One fault, as written into a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultEntry {
    /// Instance block of the faulting channel (4 KiB aligned).
    pub inst: PhysAddr,
    /// Faulting virtual address (reported 4 KiB aligned).
    pub addr: u64,
    pub timestamp: u64,
    pub engine_id: u16,
    pub fault_type: FaultType,
    pub replayable: bool,
    pub client: u8,
    pub access: Access,
    /// Client type: false GPC, true HUB.
    pub hub: bool,
    pub gpc_id: u8,
    /// The instance block has replayable faults enabled.
    pub replayable_en: bool,
}

fn inst_aperture(a: Aperture) -> u32 {
    match a {
        Aperture::Video => 0,
        Aperture::SysCoherent => 2,
        Aperture::SysNonCoherent => 3,
    }
}

impl FaultEntry {
    /// The 32-byte packet. `VALID` (bit 31 of the last dword) is the last
    /// byte, so writing the packet in order publishes it last.
    pub fn encode(&self) -> [u8; 32] {
        let mut d = [0u32; 8];
        d[0] = (inst_aperture(self.inst.aperture) << 8) | (self.inst.addr as u32 & 0xffff_f000);
        d[1] = (self.inst.addr >> 32) as u32;
        d[2] = self.addr as u32 & 0xffff_f000;
        d[3] = (self.addr >> 32) as u32;
        d[4] = self.timestamp as u32;
        d[5] = (self.timestamp >> 32) as u32;
        d[6] = u32::from(self.engine_id) & 0x1ff;
        d[7] = (self.fault_type as u32 & 0x1f)
            | (u32::from(self.replayable) << 7)
            | ((u32::from(self.client) & 0x7f) << 8)
            | ((self.access as u32 & 0xf) << 16)
            | (u32::from(self.hub) << 20)
            | ((u32::from(self.gpc_id) & 0x1f) << 24)
            | (u32::from(self.replayable_en) << 30)
            | (1 << 31);
        let mut out = [0u8; 32];
        for (i, w) in d.iter().enumerate() {
            out[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
        }
        out
    }
}

/// State of one fault buffer.
#[derive(Clone, Copy, Debug, Default)]
struct Buffer {
    lo: u32,
    hi: u32,
    get: u32,
    put: u32,
    size: u32,
    overflow: bool,
    get_corrupted: bool,
}

impl Buffer {
    fn entries(&self) -> u32 {
        self.size & 0xf_ffff
    }

    fn enabled(&self) -> bool {
        self.size & (1 << 31) != 0 && self.entries() != 0
    }

    fn base(&self) -> Option<PhysAddr> {
        if self.lo & 1 == 0 {
            // ADDR_MODE=VIRTUAL would go through BAR2's address space,
            // which the model does not implement.
            return None;
        }
        let aperture = match (self.lo >> 1) & 3 {
            0 => Aperture::Video,
            2 => Aperture::SysCoherent,
            3 => Aperture::SysNonCoherent,
            _ => return None,
        };
        Some(PhysAddr {
            aperture,
            addr: (u64::from(self.hi) << 32) | u64::from(self.lo & 0xffff_f000),
        })
    }

    fn pending(&self) -> bool {
        self.enabled() && self.get != self.put
    }
}

/// What happened to a reported fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reported {
    /// Written at this index of the buffer.
    Buffered(u32),
    /// The buffer is full: dropped, OVERFLOW set.
    Overflow,
    /// The buffer is disabled (or misconfigured): kept in the "other fault"
    /// snapshot registers.
    Snapshot,
    /// The buffer memory is not reachable.
    MemError,
}

/// The fault unit.
#[derive(Default)]
pub struct FaultUnit {
    bufs: [Buffer; 2],
    niso_en: u32,
    /// Snapshot of the last fault no buffer took.
    snapshot: Option<FaultEntry>,
    /// FAULT_STATUS bits the unit keeps.
    status: u32,
}

impl FaultUnit {
    /// Pending NISO interrupt bits (before the enable mask).
    pub fn niso_intr(&self) -> u32 {
        let mut v = 0;
        let [non, rep] = &self.bufs;
        if rep.pending() {
            v |= NISO_REPLAYABLE_NOTIFY;
        }
        if rep.overflow && rep.size & (1 << 29) != 0 {
            v |= NISO_REPLAYABLE_OVERFLOW;
        }
        if non.pending() {
            v |= NISO_NON_REPLAYABLE_NOTIFY;
        }
        if non.overflow && non.size & (1 << 29) != 0 {
            v |= NISO_NON_REPLAYABLE_OVERFLOW;
        }
        if self.snapshot.is_some() {
            v |= NISO_OTHER_FAULT_NOTIFY;
        }
        v
    }

    /// Whether the unit asserts the HUB interrupt.
    pub fn interrupt(&self) -> bool {
        self.niso_intr() & self.niso_en != 0
    }

    fn decode(off: u64) -> Option<(usize, u64)> {
        let rel = off.checked_sub(FAULT_BUFFER_LO)?;
        let i = (rel / FAULT_BUFFER_STRIDE) as usize;
        (i < 2).then_some((i, rel % FAULT_BUFFER_STRIDE))
    }

    /// A register read, if the offset is the unit's.
    pub fn read(&self, off: u64) -> Option<u32> {
        if let Some((i, reg)) = Self::decode(off) {
            let b = &self.bufs[i];
            let flags = (u32::from(b.get_corrupted) << 30) | (u32::from(b.overflow) << 31);
            return Some(match reg {
                0 => b.lo,
                4 => b.hi,
                8 => b.get | flags,
                12 => b.put | flags,
                _ => b.size,
            });
        }
        let snap = self.snapshot;
        Some(match off {
            NISO_INTR => self.niso_intr(),
            NISO_INTR_EN => self.niso_en,
            FAULT_STATUS => self.status | (u32::from(snap.is_some()) << 31),
            FAULT_ADDR_LO => snap.map_or(0, |s| s.addr as u32),
            FAULT_ADDR_HI => snap.map_or(0, |s| (s.addr >> 32) as u32),
            FAULT_INST_LO => snap.map_or(0, |s| {
                u32::from_le_bytes(s.encode()[0..4].try_into().unwrap())
            }),
            FAULT_INST_HI => snap.map_or(0, |s| (s.inst.addr >> 32) as u32),
            FAULT_INFO => snap.map_or(0, |s| {
                u32::from_le_bytes(s.encode()[28..32].try_into().unwrap())
            }),
            _ => return None,
        })
    }

    /// A register write; returns false if the offset is not the unit's.
    pub fn write(&mut self, off: u64, v: u32) -> bool {
        if let Some((i, reg)) = Self::decode(off) {
            let b = &mut self.bufs[i];
            match reg {
                0 => b.lo = v & 0xffff_f00f,
                4 => b.hi = v,
                8 => {
                    if v & (1 << 31) != 0 {
                        b.overflow = false;
                    }
                    if v & (1 << 30) != 0 {
                        b.get_corrupted = false;
                    }
                    let ptr = v & 0xf_ffff;
                    if ptr >= b.entries().max(1) {
                        log::warn!("fault buffer {i}: GET {ptr} past the end");
                        b.get_corrupted = true;
                    } else {
                        b.get = ptr;
                    }
                }
                12 => log::warn!("fault buffer {i}: PUT is read-only"),
                _ => {
                    if v & (1 << 30) != 0 {
                        // SET_DEFAULT: the model's default size.
                        b.size = (b.size & !0xf_ffff) | 1024;
                    } else {
                        b.size = v & 0xa00f_ffff;
                    }
                    if v & (1 << 31) != 0 {
                        b.size |= 1 << 31;
                    }
                    if !b.enabled() {
                        b.get = 0;
                        b.put = 0;
                    }
                }
            }
            return true;
        }
        match off {
            NISO_INTR_EN_SET => self.niso_en |= v,
            NISO_INTR_EN_CLR => self.niso_en &= !v,
            FAULT_STATUS => {
                // VALID is write-1-to-clear and releases the snapshot.
                if v & (1 << 31) != 0 {
                    self.snapshot = None;
                }
                self.status &= !(v & 0xff);
            }
            NISO_INTR => {} // level-sensitive: cleared by consuming entries
            _ => return false,
        }
        true
    }

    /// Reports a fault into buffer `index`.
    pub fn report(&mut self, mem: &dyn PhysMem, index: usize, e: FaultEntry) -> Reported {
        let b = &mut self.bufs[index];
        let Some(base) = b.base().filter(|_| b.enabled()) else {
            if self.snapshot.is_none() {
                self.snapshot = Some(e);
            } else {
                self.status |= 1 << index; // DROPPED_*
            }
            return Reported::Snapshot;
        };
        let next = (b.put + 1) % b.entries();
        if next == b.get {
            b.overflow = true;
            self.status |= 1 << (12 + index);
            return Reported::Overflow;
        }
        let at = base.offset(u64::from(b.put) * 32);
        if mem.write(at, &e.encode()).is_err() {
            log::error!("fault buffer {index}: entry at {at:?} is not reachable");
            self.status |= 1 << (10 + index);
            return Reported::MemError;
        }
        let slot = b.put;
        b.put = next;
        Reported::Buffered(slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::testing::TestMem;

    fn entry(addr: u64) -> FaultEntry {
        FaultEntry {
            inst: PhysAddr::vid(0x3000),
            addr,
            timestamp: 0x1_2345_6789,
            engine_id: engine::GRAPHICS,
            fault_type: FaultType::Pte,
            replayable: true,
            client: client::GPC_T1_0,
            access: Access::Write,
            hub: false,
            gpc_id: 0,
            replayable_en: true,
        }
    }

    fn setup(u: &mut FaultUnit, i: usize, entries: u32, intr: bool) {
        let base = FAULT_BUFFER_LO + FAULT_BUFFER_STRIDE * i as u64;
        // Physical, system memory coherent, at 0x10000.
        assert!(u.write(base, 0x10000 | (2 << 1) | 1));
        assert!(u.write(base + 4, 0));
        assert!(u.write(base + 16, (1 << 31) | (u32::from(intr) << 29) | entries));
    }

    #[test]
    fn packet_layout() {
        let p = entry(0x7fff_1234_5678).encode();
        let dw = |i: usize| u32::from_le_bytes(p[i * 4..i * 4 + 4].try_into().unwrap());
        assert_eq!(dw(0), 0x3000);
        assert_eq!((dw(2), dw(3)), (0x1234_5000, 0x7fff), "VA, 4 KiB aligned");
        assert_eq!((dw(4), dw(5)), (0x2345_6789, 1), "timestamp");
        assert_eq!(dw(6), 64);
        let info = dw(7);
        assert_eq!(info & 0x1f, FaultType::Pte as u32);
        assert_eq!((info >> 16) & 0xf, Access::Write as u32);
        assert!(info & (1 << 7) != 0 && info & (1 << 30) != 0 && info & (1 << 31) != 0);
    }

    #[test]
    fn buffered_faults_raise_notify_until_consumed() {
        let m = TestMem::new(1 << 20, 1 << 20);
        let mem = m.mem();
        let mut u = FaultUnit::default();
        setup(&mut u, REPLAYABLE, 4, true);
        u.write(NISO_INTR_EN_SET, NISO_REPLAYABLE_NOTIFY);
        assert!(!u.interrupt());
        assert_eq!(
            u.report(&mem, REPLAYABLE, entry(0x1000)),
            Reported::Buffered(0)
        );
        assert!(u.interrupt());
        let rep = FAULT_BUFFER_LO + FAULT_BUFFER_STRIDE;
        assert_eq!(u.read(rep + 12), Some(1), "PUT");
        let mut pkt = [0u8; 32];
        mem.read(PhysAddr::sys(0x10000), &mut pkt).unwrap();
        assert_eq!(pkt, entry(0x1000).encode());
        // Software consumes: GET = PUT, the level interrupt drops.
        u.write(rep + 8, 1);
        assert!(!u.interrupt());
    }

    #[test]
    fn overflow_drops_and_flags() {
        let m = TestMem::new(1 << 20, 1 << 20);
        let mem = m.mem();
        let mut u = FaultUnit::default();
        setup(&mut u, NON_REPLAYABLE, 3, true);
        u.write(NISO_INTR_EN_SET, u32::MAX);
        assert_eq!(
            u.report(&mem, NON_REPLAYABLE, entry(0x1000)),
            Reported::Buffered(0)
        );
        assert_eq!(
            u.report(&mem, NON_REPLAYABLE, entry(0x2000)),
            Reported::Buffered(1)
        );
        assert_eq!(
            u.report(&mem, NON_REPLAYABLE, entry(0x3000)),
            Reported::Overflow
        );
        assert!(u.niso_intr() & NISO_NON_REPLAYABLE_OVERFLOW != 0);
        assert!(u.read(FAULT_BUFFER_LO + 8).unwrap() & (1 << 31) != 0);
        // GET moves and OVERFLOW is cleared (UVM: two writes).
        u.write(FAULT_BUFFER_LO + 8, 2);
        u.write(FAULT_BUFFER_LO + 8, (1 << 31) | 2);
        assert_eq!(u.niso_intr() & NISO_NON_REPLAYABLE_OVERFLOW, 0);
        assert_eq!(
            u.report(&mem, NON_REPLAYABLE, entry(0x3000)),
            Reported::Buffered(2)
        );
    }

    #[test]
    fn disabled_buffer_uses_the_snapshot() {
        let m = TestMem::new(1 << 20, 1 << 20);
        let mem = m.mem();
        let mut u = FaultUnit::default();
        assert_eq!(
            u.report(&mem, REPLAYABLE, entry(0x5000)),
            Reported::Snapshot
        );
        assert!(u.niso_intr() & NISO_OTHER_FAULT_NOTIFY != 0);
        assert_eq!(u.read(FAULT_ADDR_LO), Some(0x5000));
        assert!(u.read(FAULT_STATUS).unwrap() & (1 << 31) != 0);
        u.write(FAULT_STATUS, 1 << 31);
        assert_eq!(u.niso_intr(), 0);
    }

    #[test]
    fn get_past_the_end_is_flagged() {
        let mut u = FaultUnit::default();
        setup(&mut u, REPLAYABLE, 4, false);
        let rep = FAULT_BUFFER_LO + FAULT_BUFFER_STRIDE;
        u.write(rep + 8, 9);
        assert!(u.read(rep + 8).unwrap() & (1 << 30) != 0);
    }
}
