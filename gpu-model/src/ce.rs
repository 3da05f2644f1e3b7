//! The copy engine, class `VOLTA_DMA_COPY_A` (0xC3B5).
//!
//! Methods and fields follow open-gpu-doc `classes/dma-copy/clc3b5.h`:
//! pitch-linear copies (one line or many), memset through the remap unit's
//! constants, semaphore release (one word, or four with a timestamp, with an
//! optional reduction), and interrupts. Source and destination are virtual
//! (through the channel's GMMU address space) or physical
//! (`SET_*_PHYS_MODE`).
//!
//! Copy-engine faults are not replayable: a launch that faults stops and
//! returns the fault; the channel reports it in the non-replayable buffer
//! and is switched out until the driver clears `ENG_FAULTED`, then the whole
//! `LAUNCH_DMA` runs again (its method state is kept).

use crate::mem::{Aperture, MemError, PhysAddr, PhysMem};
use crate::mmu::{Access, FaultType, Pdb, Tlb, WalkError};
use crate::timing::Traffic;

/// The class number.
pub const CLASS: u32 = 0xc3b5;

pub mod mthd {
    pub const NOP: u32 = 0x100;
    pub const SET_SEMAPHORE_A: u32 = 0x240;
    pub const SET_SEMAPHORE_B: u32 = 0x244;
    pub const SET_SEMAPHORE_PAYLOAD: u32 = 0x248;
    pub const SET_SRC_PHYS_MODE: u32 = 0x260;
    pub const SET_DST_PHYS_MODE: u32 = 0x264;
    pub const LAUNCH_DMA: u32 = 0x300;
    pub const OFFSET_IN_UPPER: u32 = 0x400;
    pub const OFFSET_IN_LOWER: u32 = 0x404;
    pub const OFFSET_OUT_UPPER: u32 = 0x408;
    pub const OFFSET_OUT_LOWER: u32 = 0x40c;
    pub const PITCH_IN: u32 = 0x410;
    pub const PITCH_OUT: u32 = 0x414;
    pub const LINE_LENGTH_IN: u32 = 0x418;
    pub const LINE_COUNT: u32 = 0x41c;
    pub const SET_REMAP_CONST_A: u32 = 0x700;
    pub const SET_REMAP_CONST_B: u32 = 0x704;
    pub const SET_REMAP_COMPONENTS: u32 = 0x708;
}

/// `LAUNCH_DMA` fields.
pub mod launch {
    pub const TRANSFER_NONE: u32 = 0;
    pub const TRANSFER_PIPELINED: u32 = 1;
    pub const TRANSFER_NON_PIPELINED: u32 = 2;
    pub const FLUSH_ENABLE: u32 = 1 << 2;
    pub const SEMAPHORE_ONE_WORD: u32 = 1 << 3;
    pub const SEMAPHORE_FOUR_WORD: u32 = 2 << 3;
    pub const INTERRUPT_BLOCKING: u32 = 1 << 5;
    pub const INTERRUPT_NON_BLOCKING: u32 = 2 << 5;
    pub const SRC_PITCH: u32 = 1 << 7;
    pub const DST_PITCH: u32 = 1 << 8;
    pub const MULTI_LINE: u32 = 1 << 9;
    pub const REMAP: u32 = 1 << 10;
    pub const SRC_PHYSICAL: u32 = 1 << 12;
    pub const DST_PHYSICAL: u32 = 1 << 13;
    pub const REDUCTION_SHIFT: u32 = 14;
    pub const REDUCTION_SIGNED: u32 = 1 << 18;
    pub const REDUCTION_ENABLE: u32 = 1 << 19;
}

/// Reductions of `SEMAPHORE_REDUCTION`.
pub mod reduction {
    pub const IMIN: u32 = 0;
    pub const IMAX: u32 = 1;
    pub const IXOR: u32 = 2;
    pub const IAND: u32 = 3;
    pub const IOR: u32 = 4;
    pub const IADD: u32 = 5;
    pub const INC: u32 = 6;
    pub const DEC: u32 = 7;
}

/// Why a method or a launch failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CeError {
    /// A translation fault: non-replayable, the channel is switched out.
    Fault {
        va: u64,
        access: Access,
        fault_type: FaultType,
    },
    /// An invalid method, field value or encoding: reported as an error
    /// interrupt, the channel is put in error.
    Invalid(&'static str),
    /// Physical memory that does not exist.
    Mem(MemError),
}

/// What a successful launch did (its memory traffic is in the
/// [`Context`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Launched {
    /// A non-stall ("non-blocking") interrupt was requested.
    pub nonstall_interrupt: bool,
    /// A stall ("blocking") interrupt was requested.
    pub stall_interrupt: bool,
}

/// What the engine reaches while it runs a launch.
pub struct Context<'a> {
    pub mem: &'a dyn PhysMem,
    pub tlb: &'a mut Tlb,
    /// The channel's address space; `None` if it has none (virtual accesses
    /// then fault `UNBOUND_INST_BLOCK`).
    pub pdb: Option<Pdb>,
    pub privileged: bool,
    /// Current time in ns, for four-word semaphores.
    pub now_ns: u64,
    /// Bytes read and written so far, by path (for the timing model).
    pub read: Traffic,
    pub write: Traffic,
}

/// Method state of one copy-engine context (one per channel).
#[derive(Clone, Copy, Debug, Default)]
pub struct CopyEngine {
    sem_upper: u32,
    sem_lower: u32,
    sem_payload: u32,
    src_phys: u32,
    dst_phys: u32,
    offset_in: u64,
    offset_out: u64,
    pitch_in: u32,
    pitch_out: u32,
    line_length: u32,
    line_count: u32,
    const_a: u32,
    const_b: u32,
    components: u32,
}

/// One side of a copy.
#[derive(Clone, Copy)]
enum Side {
    Virtual,
    Physical(Aperture),
}

fn phys_mode(v: u32) -> Result<Aperture, CeError> {
    match v & 3 {
        0 => Ok(Aperture::Video),
        1 => Ok(Aperture::SysCoherent),
        2 => Ok(Aperture::SysNonCoherent),
        _ => Err(CeError::Invalid(
            "SET_*_PHYS_MODE: peer memory is not supported",
        )),
    }
}

impl Context<'_> {
    /// Resolves `len` bytes at `addr` on `side` into physical runs.
    /// The physical address of `va` and how many of the next `left` bytes
    /// are contiguous there (`None` for a sparse page), checking `access`.
    fn run_at(
        &mut self,
        side: Side,
        va: u64,
        left: u64,
        access: Access,
    ) -> Result<(Option<PhysAddr>, u64), CeError> {
        match side {
            Side::Physical(aperture) => Ok((Some(PhysAddr { aperture, addr: va }), left)),
            Side::Virtual => {
                let fault = |fault_type| CeError::Fault {
                    va,
                    access,
                    fault_type,
                };
                let pdb = self.pdb.ok_or(fault(FaultType::UnboundInstBlock))?;
                let t = self.tlb.translate(self.mem, pdb, va).map_err(|e| match e {
                    WalkError::Fault(t) => fault(t),
                    WalkError::Mem(m) => CeError::Mem(m),
                    WalkError::Encoding(s) => CeError::Invalid(s),
                })?;
                t.check(access, self.privileged).map_err(fault)?;
                let in_page = t.page_size - (va & (t.page_size - 1));
                Ok((t.resolve(va), in_page.min(left)))
            }
        }
    }

    /// Calls `f(ctx, pa, offset, n)` for each physically contiguous run of
    /// `len` bytes at `addr` on `side`.
    fn runs(
        &mut self,
        side: Side,
        addr: u64,
        len: u64,
        access: Access,
        mut f: impl FnMut(&mut Self, Option<PhysAddr>, u64, u64) -> Result<(), CeError>,
    ) -> Result<(), CeError> {
        let mut done = 0;
        while done < len {
            let va = addr
                .checked_add(done)
                .ok_or(CeError::Invalid("address overflow"))?;
            let (pa, chunk) = self.run_at(side, va, len - done, access)?;
            f(self, pa, done, chunk)?;
            done += chunk;
        }
        Ok(())
    }

    fn read(&mut self, side: Side, addr: u64, buf: &mut [u8]) -> Result<(), CeError> {
        self.runs(
            side,
            addr,
            buf.len() as u64,
            Access::Read,
            |ctx, pa, off, n| {
                let dst = &mut buf[off as usize..(off + n) as usize];
                match pa {
                    Some(pa) => {
                        ctx.read.add(pa.aperture.is_sysmem(), n);
                        ctx.mem.read(pa, dst).map_err(CeError::Mem)
                    }
                    None => {
                        dst.fill(0); // sparse
                        Ok(())
                    }
                }
            },
        )
    }

    fn write(&mut self, side: Side, addr: u64, buf: &[u8]) -> Result<(), CeError> {
        self.runs(
            side,
            addr,
            buf.len() as u64,
            Access::Write,
            |ctx, pa, off, n| match pa {
                Some(pa) => {
                    ctx.write.add(pa.aperture.is_sysmem(), n);
                    ctx.mem
                        .write(pa, &buf[off as usize..(off + n) as usize])
                        .map_err(CeError::Mem)
                }
                None => Ok(()), // sparse: dropped
            },
        )
    }

    /// Checks that `access` to `[addr, addr + len)` would not fault.
    fn probe(&mut self, side: Side, addr: u64, len: u64, access: Access) -> Result<(), CeError> {
        self.runs(side, addr, len, access, |_, _, _, _| Ok(()))
    }

    /// The physical runs of `[addr, addr + len)`, merging runs that are
    /// physically contiguous.
    fn plan(
        &mut self,
        side: Side,
        addr: u64,
        len: u64,
        access: Access,
    ) -> Result<Vec<(Option<PhysAddr>, u64)>, CeError> {
        let mut v: Vec<(Option<PhysAddr>, u64)> = Vec::new();
        self.runs(side, addr, len, access, |_, pa, _, n| {
            match (v.last_mut(), pa) {
                (Some((Some(last), ln)), Some(p)) if last.offset(*ln) == p => *ln += n,
                _ => v.push((pa, n)),
            }
            Ok(())
        })?;
        Ok(v)
    }
}

/// Chunk size of the copy loop.
const CHUNK: usize = 1 << 16;

impl CopyEngine {
    /// Executes one method. `LAUNCH_DMA` runs the operation.
    pub fn method(&mut self, ctx: &mut Context<'_>, m: u32, v: u32) -> Result<Launched, CeError> {
        let upper = |v: u32| {
            if v >> 17 != 0 {
                Err(CeError::Invalid("address upper bits past 16:0"))
            } else {
                Ok(u64::from(v) << 32)
            }
        };
        match m {
            mthd::NOP => {}
            mthd::SET_SEMAPHORE_A => {
                upper(v)?;
                self.sem_upper = v;
            }
            mthd::SET_SEMAPHORE_B => self.sem_lower = v,
            mthd::SET_SEMAPHORE_PAYLOAD => self.sem_payload = v,
            mthd::SET_SRC_PHYS_MODE => self.src_phys = v,
            mthd::SET_DST_PHYS_MODE => self.dst_phys = v,
            mthd::OFFSET_IN_UPPER => self.offset_in = upper(v)? | (self.offset_in & 0xffff_ffff),
            mthd::OFFSET_IN_LOWER => {
                self.offset_in = (self.offset_in & !0xffff_ffff) | u64::from(v)
            }
            mthd::OFFSET_OUT_UPPER => self.offset_out = upper(v)? | (self.offset_out & 0xffff_ffff),
            mthd::OFFSET_OUT_LOWER => {
                self.offset_out = (self.offset_out & !0xffff_ffff) | u64::from(v)
            }
            mthd::PITCH_IN => self.pitch_in = v,
            mthd::PITCH_OUT => self.pitch_out = v,
            mthd::LINE_LENGTH_IN => self.line_length = v,
            mthd::LINE_COUNT => self.line_count = v,
            mthd::SET_REMAP_CONST_A => self.const_a = v,
            mthd::SET_REMAP_CONST_B => self.const_b = v,
            mthd::SET_REMAP_COMPONENTS => self.components = v,
            mthd::LAUNCH_DMA => return self.launch(ctx, v),
            _ => return Err(CeError::Invalid("unknown copy-engine method")),
        }
        Ok(Launched::default())
    }

    fn side(&self, physical: bool, mode: u32) -> Result<Side, CeError> {
        Ok(if physical {
            Side::Physical(phys_mode(mode)?)
        } else {
            Side::Virtual
        })
    }

    fn launch(&mut self, ctx: &mut Context<'_>, v: u32) -> Result<Launched, CeError> {
        use launch::*;
        let mut out = Launched::default();
        let transfer = v & 3;
        if transfer == 3 {
            return Err(CeError::Invalid("LAUNCH_DMA: DATA_TRANSFER_TYPE 3"));
        }
        if v & (0b11 << 22) != 0 {
            return Err(CeError::Invalid("LAUNCH_DMA: VPR is not supported"));
        }
        if transfer != TRANSFER_NONE {
            if v & SRC_PITCH == 0 || v & DST_PITCH == 0 {
                return Err(CeError::Invalid(
                    "LAUNCH_DMA: block-linear layout is not supported",
                ));
            }
            let src = self.side(v & SRC_PHYSICAL != 0, self.src_phys)?;
            let dst = self.side(v & DST_PHYSICAL != 0, self.dst_phys)?;
            let lines = if v & MULTI_LINE != 0 {
                self.line_count
            } else {
                1
            };
            if v & REMAP != 0 {
                self.remap(ctx, src, dst, lines)?;
            } else {
                self.copy(ctx, src, dst, lines)?;
            }
        }
        match (v >> 3) & 3 {
            0 => {}
            1 | 2 => self.release(ctx, v)?,
            _ => return Err(CeError::Invalid("LAUNCH_DMA: SEMAPHORE_TYPE 3 (C5B5+)")),
        }
        match (v >> 5) & 3 {
            0 => {}
            1 => out.stall_interrupt = true,
            2 => out.nonstall_interrupt = true,
            _ => return Err(CeError::Invalid("LAUNCH_DMA: INTERRUPT_TYPE 3")),
        }
        Ok(out)
    }

    fn line(&self, i: u32) -> Result<(u64, u64), CeError> {
        let s = self
            .offset_in
            .checked_add(u64::from(i) * u64::from(self.pitch_in))
            .ok_or(CeError::Invalid("source address overflow"))?;
        let d = self
            .offset_out
            .checked_add(u64::from(i) * u64::from(self.pitch_out))
            .ok_or(CeError::Invalid("destination address overflow"))?;
        Ok((s, d))
    }

    fn copy(&self, ctx: &mut Context<'_>, src: Side, dst: Side, lines: u32) -> Result<(), CeError> {
        let len = u64::from(self.line_length);
        // Translate everything first: a faulting launch must leave memory as
        // it was, so that running it again after CLEAR_FAULTED is exact. The
        // physical runs found are what the copy then uses.
        let mut plans = Vec::with_capacity(lines as usize);
        for i in 0..lines {
            let (s, d) = self.line(i)?;
            plans.push((
                ctx.plan(src, s, len, Access::Read)?,
                ctx.plan(dst, d, len, Access::Write)?,
            ));
        }
        for (splan, dplan) in plans {
            let (mut si, mut di) = (splan.into_iter(), dplan.into_iter());
            let (mut sr, mut dr) = (si.next(), di.next());
            // Walk both lists of runs, copying the overlap of the current two.
            while let (Some((spa, sn)), Some((dpa, dn))) = (sr, dr) {
                let n = sn.min(dn);
                match (spa, dpa) {
                    (Some(sp), Some(dp)) => {
                        ctx.mem.copy(sp, dp, n as usize).map_err(CeError::Mem)?;
                        ctx.read.add(sp.aperture.is_sysmem(), n);
                        ctx.write.add(dp.aperture.is_sysmem(), n);
                    }
                    (None, Some(dp)) => {
                        // A sparse source reads as zeros.
                        ctx.mem
                            .write(dp, &vec![0u8; n as usize])
                            .map_err(CeError::Mem)?;
                        ctx.write.add(dp.aperture.is_sysmem(), n);
                    }
                    (_, None) => {} // a sparse destination drops the data
                }
                sr = if n == sn {
                    si.next()
                } else {
                    Some((spa.map(|p| p.offset(n)), sn - n))
                };
                dr = if n == dn {
                    di.next()
                } else {
                    Some((dpa.map(|p| p.offset(n)), dn - n))
                };
            }
        }
        Ok(())
    }

    fn remap(
        &self,
        ctx: &mut Context<'_>,
        src: Side,
        dst: Side,
        lines: u32,
    ) -> Result<(), CeError> {
        let c = self.components;
        let csize = ((c >> 16) & 3) as usize + 1;
        let nsrc = ((c >> 20) & 3) as usize + 1;
        let ndst = ((c >> 24) & 3) as usize + 1;
        let sel: Vec<u32> = (0..ndst).map(|i| (c >> (4 * i)) & 7).collect();
        if sel.iter().any(|&s| s == 7 || (s < 4 && s as usize >= nsrc)) {
            return Err(CeError::Invalid(
                "SET_REMAP_COMPONENTS: invalid component selection",
            ));
        }
        let uses_src = sel.iter().any(|&s| s < 4);
        let selective = sel.contains(&6);
        let elems = u64::from(self.line_length);
        let (sbytes, dbytes) = ((csize * nsrc) as u64, (csize * ndst) as u64);
        for i in 0..lines {
            let (s, d) = self.line(i)?;
            if uses_src {
                ctx.probe(src, s, elems * sbytes, Access::Read)?;
            }
            ctx.probe(dst, d, elems * dbytes, Access::Write)?;
        }
        let konst = |v: u32| v.to_le_bytes();
        let mut sbuf = vec![0u8; sbytes as usize];
        let mut dbuf = vec![0u8; dbytes as usize];
        for i in 0..lines {
            let (s, d) = self.line(i)?;
            if !uses_src && !selective {
                // Memset: one pattern, written in large chunks.
                for (k, &sel) in sel.iter().enumerate() {
                    let v = konst(if sel == 4 { self.const_a } else { self.const_b });
                    dbuf[k * csize..(k + 1) * csize].copy_from_slice(&v[..csize]);
                }
                let per = (CHUNK / dbuf.len()).max(1);
                let pattern: Vec<u8> = dbuf
                    .iter()
                    .copied()
                    .cycle()
                    .take(per * dbuf.len())
                    .collect();
                let mut done = 0;
                while done < elems {
                    let n = (elems - done).min(per as u64);
                    ctx.write(dst, d + done * dbytes, &pattern[..(n * dbytes) as usize])?;
                    done += n;
                }
            } else {
                for e in 0..elems {
                    if uses_src {
                        ctx.read(src, s + e * sbytes, &mut sbuf)?;
                    }
                    for (k, &sel) in sel.iter().enumerate() {
                        let bytes = match sel {
                            0..=3 => {
                                let o = sel as usize * csize;
                                sbuf[o..o + csize].to_vec()
                            }
                            4 => konst(self.const_a)[..csize].to_vec(),
                            5 => konst(self.const_b)[..csize].to_vec(),
                            _ => continue, // NO_WRITE
                        };
                        let at = d + e * dbytes + (k * csize) as u64;
                        ctx.write(dst, at, &bytes)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn release(&self, ctx: &mut Context<'_>, v: u32) -> Result<(), CeError> {
        use launch::*;
        let va = (u64::from(self.sem_upper & 0x1_ffff) << 32) | u64::from(self.sem_lower);
        let four = (v >> 3) & 3 == 2;
        if va & if four { 15 } else { 3 } != 0 {
            return Err(CeError::Invalid("semaphore address misaligned"));
        }
        let mut payload = self.sem_payload;
        if v & REDUCTION_ENABLE != 0 {
            if four {
                return Err(CeError::Invalid("semaphore reduction with FOUR_WORD"));
            }
            ctx.probe(Side::Virtual, va, 4, Access::Atomic)?;
            let mut b = [0u8; 4];
            ctx.read(Side::Virtual, va, &mut b)?;
            let old = u32::from_le_bytes(b);
            let signed = v & REDUCTION_SIGNED != 0;
            payload = match (v >> REDUCTION_SHIFT) & 0xf {
                reduction::IMIN if signed => (old as i32).min(payload as i32) as u32,
                reduction::IMAX if signed => (old as i32).max(payload as i32) as u32,
                reduction::IMIN => old.min(payload),
                reduction::IMAX => old.max(payload),
                reduction::IXOR => old ^ payload,
                reduction::IAND => old & payload,
                reduction::IOR => old | payload,
                reduction::IADD => old.wrapping_add(payload),
                // INC/DEC wrap at the payload, as CUDA's atomicInc/atomicDec.
                reduction::INC => {
                    if old >= payload {
                        0
                    } else {
                        old + 1
                    }
                }
                reduction::DEC => {
                    if old == 0 || old > payload {
                        payload
                    } else {
                        old - 1
                    }
                }
                _ => return Err(CeError::Invalid("unsupported semaphore reduction")),
            };
        }
        if four {
            let mut b = [0u8; 16];
            b[0..4].copy_from_slice(&payload.to_le_bytes());
            b[8..16].copy_from_slice(&ctx.now_ns.to_le_bytes());
            ctx.probe(Side::Virtual, va, 16, Access::Write)?;
            ctx.write(Side::Virtual, va, &b)?;
        } else {
            ctx.probe(Side::Virtual, va, 4, Access::Write)?;
            ctx.write(Side::Virtual, va, &payload.to_le_bytes())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::launch::*;
    use super::*;
    use crate::mem::testing::TestMem;
    use crate::mmu::builder::PageTables;
    use crate::mmu::encode::{pte, Flags};
    use crate::mmu::{InvalidateScope, SZ_4K, SZ_64K};

    /// VA layout of the tests: 0x1000_0000 is 16 KiB of sysmem (4K pages)
    /// at PA 0x10_0000; 0x2000_0000 is 128 KiB of VRAM (64K pages) at
    /// 0x40_0000. Page tables are at VRAM 0x10_0000.
    struct Rig {
        m: TestMem,
        pt: PageTables,
        tlb: Tlb,
        ce: CopyEngine,
        /// Bytes the last `run` read, by path.
        read: Traffic,
    }

    const SYS_VA: u64 = 0x1000_0000;
    const VID_VA: u64 = 0x2000_0000;

    impl Rig {
        fn new() -> Self {
            let m = TestMem::new(8 << 20, 8 << 20);
            let pt = PageTables::new(0x10_0000);
            let mem = m.mem();
            pt.map(
                &mem,
                SYS_VA,
                PhysAddr::sys(0x10_0000),
                4 * SZ_4K,
                SZ_4K,
                Flags::default(),
            );
            pt.map(
                &mem,
                VID_VA,
                PhysAddr::vid(0x40_0000),
                2 * SZ_64K,
                SZ_64K,
                Flags::default(),
            );
            Self {
                m,
                pt,
                tlb: Tlb::default(),
                ce: CopyEngine::default(),
                read: Traffic::default(),
            }
        }

        fn run(&mut self, methods: &[(u32, u32)]) -> Result<Launched, CeError> {
            let mem = self.m.mem();
            let mut ctx = Context {
                mem: &mem,
                tlb: &mut self.tlb,
                pdb: Some(self.pt.pdb),
                privileged: false,
                now_ns: 42_000,
                read: Traffic::default(),
                write: Traffic::default(),
            };
            let mut last = Ok(Launched::default());
            for &(m, v) in methods {
                last = self.ce.method(&mut ctx, m, v);
                if last.is_err() {
                    break;
                }
            }
            self.read = ctx.read;
            last
        }

        fn put(&self, at: PhysAddr, b: &[u8]) {
            self.m.mem().write(at, b).unwrap();
        }

        fn get(&self, at: PhysAddr, n: usize) -> Vec<u8> {
            let mut b = vec![0; n];
            self.m.mem().read(at, &mut b).unwrap();
            b
        }
    }

    fn pattern(n: usize, seed: u8) -> Vec<u8> {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    fn copy(src: u64, dst: u64, len: u32, lines: u32, pitch: u32, flags: u32) -> Vec<(u32, u32)> {
        vec![
            (mthd::OFFSET_IN_UPPER, (src >> 32) as u32),
            (mthd::OFFSET_IN_LOWER, src as u32),
            (mthd::OFFSET_OUT_UPPER, (dst >> 32) as u32),
            (mthd::OFFSET_OUT_LOWER, dst as u32),
            (mthd::PITCH_IN, pitch),
            (mthd::PITCH_OUT, pitch),
            (mthd::LINE_LENGTH_IN, len),
            (mthd::LINE_COUNT, lines),
            (
                mthd::LAUNCH_DMA,
                TRANSFER_NON_PIPELINED | FLUSH_ENABLE | SRC_PITCH | DST_PITCH | flags,
            ),
        ]
    }

    #[test]
    fn physical_multi_line_copy_sysmem_to_vram_and_back() {
        let mut r = Rig::new();
        let data = pattern(3 * 4096, 7);
        r.put(PhysAddr::sys(0x20_0000), &data);
        // nouveau's migrate copy: PAGE_SIZE lines and pitches.
        let mut m = vec![(mthd::SET_SRC_PHYS_MODE, 1), (mthd::SET_DST_PHYS_MODE, 0)];
        m.extend(copy(
            0x20_0000,
            0x50_0000,
            4096,
            3,
            4096,
            MULTI_LINE | SRC_PHYSICAL | DST_PHYSICAL,
        ));
        r.run(&m).unwrap();
        assert_eq!(
            r.read,
            Traffic {
                vram: 0,
                sys: 3 * 4096
            }
        );
        assert_eq!(r.get(PhysAddr::vid(0x50_0000), data.len()), data);

        let mut m = vec![(mthd::SET_SRC_PHYS_MODE, 0), (mthd::SET_DST_PHYS_MODE, 2)];
        m.extend(copy(
            0x50_0000,
            0x30_0000,
            3 * 4096,
            1,
            0,
            SRC_PHYSICAL | DST_PHYSICAL,
        ));
        r.run(&m).unwrap();
        assert_eq!(r.get(PhysAddr::sys(0x30_0000), data.len()), data);
    }

    #[test]
    fn virtual_copy_crosses_pages_and_apertures() {
        let mut r = Rig::new();
        let data = pattern(10000, 3);
        r.put(PhysAddr::sys(0x10_0000 + 100), &data);
        r.run(&copy(SYS_VA + 100, VID_VA + SZ_64K - 5000, 10000, 1, 0, 0))
            .unwrap();
        assert_eq!(r.get(PhysAddr::vid(0x40_0000 + SZ_64K - 5000), 10000), data);
        assert!(
            r.tlb.len() >= 5,
            "4 sysmem pages + 2 video pages translated"
        );
    }

    #[test]
    fn memset_through_remap_constants() {
        let mut r = Rig::new();
        // 8-byte pattern: DST_X=CONST_A, DST_Y=CONST_B, 4-byte components, 2 dst.
        let comps = 4 | (5 << 4) | (3 << 16) | (1 << 24);
        r.run(&[
            (mthd::SET_REMAP_CONST_A, 0x1111_2222),
            (mthd::SET_REMAP_CONST_B, 0x3333_4444),
            (mthd::SET_REMAP_COMPONENTS, comps),
            (mthd::OFFSET_OUT_UPPER, 0),
            (mthd::OFFSET_OUT_LOWER, (VID_VA + 8) as u32),
            (mthd::LINE_LENGTH_IN, 3000),
            (
                mthd::LAUNCH_DMA,
                TRANSFER_NON_PIPELINED | SRC_PITCH | DST_PITCH | REMAP,
            ),
        ])
        .unwrap();
        let b = r.get(PhysAddr::vid(0x40_0000), 8 * 3002);
        assert_eq!(&b[..8], &[0; 8]);
        for e in 1..3001 {
            assert_eq!(
                &b[e * 8..e * 8 + 8],
                &[0x22, 0x22, 0x11, 0x11, 0x44, 0x44, 0x33, 0x33]
            );
        }
        assert_eq!(&b[3001 * 8..], &[0; 8], "nothing past the end");
    }

    #[test]
    fn remap_swaps_source_components() {
        let mut r = Rig::new();
        r.put(PhysAddr::sys(0x10_0000), &[1, 2, 3, 4, 5, 6, 7, 8]);
        // 2-byte components, 2 src, 2 dst: (Y, X), then NO_WRITE over a marker.
        let comps = 1 | (1 << 16) | (1 << 20) | (1 << 24);
        r.put(PhysAddr::sys(0x10_1000), &[0xee; 8]);
        let mut m = vec![(mthd::SET_REMAP_COMPONENTS, comps)];
        let mut c = copy(SYS_VA, SYS_VA + 0x1000, 2, 1, 0, REMAP);
        c.retain(|(m, _)| *m != mthd::LINE_LENGTH_IN);
        c.insert(0, (mthd::LINE_LENGTH_IN, 2));
        m.extend(c);
        r.run(&m).unwrap();
        assert_eq!(r.get(PhysAddr::sys(0x10_1000), 8), [3, 4, 1, 2, 7, 8, 5, 6]);
        // DST_X = SRC_X, DST_Y = NO_WRITE.
        r.put(PhysAddr::sys(0x10_1000), &[0xee; 8]);
        r.run(&[(
            mthd::SET_REMAP_COMPONENTS,
            (6 << 4) | (1 << 16) | (1 << 20) | (1 << 24),
        )])
        .unwrap();
        let mut c = copy(SYS_VA, SYS_VA + 0x1000, 2, 1, 0, REMAP);
        c.retain(|(m, _)| *m != mthd::LINE_LENGTH_IN);
        c.insert(0, (mthd::LINE_LENGTH_IN, 2));
        r.run(&c).unwrap();
        assert_eq!(
            r.get(PhysAddr::sys(0x10_1000), 8),
            [1, 2, 0xee, 0xee, 5, 6, 0xee, 0xee]
        );
    }

    #[test]
    fn semaphore_releases_and_reductions() {
        let mut r = Rig::new();
        let sem = |va: u64, payload: u32, launch: u32| {
            vec![
                (mthd::SET_SEMAPHORE_A, (va >> 32) as u32),
                (mthd::SET_SEMAPHORE_B, va as u32),
                (mthd::SET_SEMAPHORE_PAYLOAD, payload),
                (mthd::LAUNCH_DMA, launch),
            ]
        };
        let l = r
            .run(&sem(
                SYS_VA + 0x40,
                0xcafe,
                SEMAPHORE_ONE_WORD | INTERRUPT_NON_BLOCKING,
            ))
            .unwrap();
        assert!(l.nonstall_interrupt && !l.stall_interrupt);
        assert_eq!(r.get(PhysAddr::sys(0x10_0040), 4), 0xcafe_u32.to_le_bytes());

        r.run(&sem(SYS_VA + 0x80, 7, SEMAPHORE_FOUR_WORD)).unwrap();
        let b = r.get(PhysAddr::sys(0x10_0080), 16);
        assert_eq!(&b[..4], &7u32.to_le_bytes());
        assert_eq!(&b[8..], &42_000u64.to_le_bytes(), "timestamp");

        let add = SEMAPHORE_ONE_WORD | REDUCTION_ENABLE | (reduction::IADD << REDUCTION_SHIFT);
        for _ in 0..5 {
            r.run(&sem(SYS_VA + 0x40, 2, add)).unwrap();
        }
        assert_eq!(
            r.get(PhysAddr::sys(0x10_0040), 4),
            (0xcafe_u32 + 10).to_le_bytes()
        );
        let inc = SEMAPHORE_ONE_WORD | REDUCTION_ENABLE | (reduction::INC << REDUCTION_SHIFT);
        r.put(PhysAddr::sys(0x10_0044), &3u32.to_le_bytes());
        r.run(&sem(SYS_VA + 0x44, 4, inc)).unwrap();
        assert_eq!(r.get(PhysAddr::sys(0x10_0044), 4), 4u32.to_le_bytes());
        r.run(&sem(SYS_VA + 0x44, 4, inc)).unwrap();
        assert_eq!(
            r.get(PhysAddr::sys(0x10_0044), 4),
            0u32.to_le_bytes(),
            "wraps at payload"
        );
    }

    #[test]
    fn faulting_launch_leaves_memory_untouched_and_restarts() {
        let mut r = Rig::new();
        let data = pattern(8192, 9);
        r.put(PhysAddr::sys(0x10_0000), &data);
        // Destination: page 0 of a 2-page range is mapped, page 1 is not.
        r.pt.map(
            &r.m.mem(),
            0x3000_0000,
            PhysAddr::sys(0x60_0000),
            SZ_4K,
            SZ_4K,
            Flags::default(),
        );
        let m = copy(SYS_VA, 0x3000_0000, 8192, 1, 0, 0);
        assert_eq!(
            r.run(&m),
            Err(CeError::Fault {
                va: 0x3000_1000,
                access: Access::Write,
                fault_type: FaultType::Pte
            })
        );
        assert_eq!(
            r.get(PhysAddr::sys(0x60_0000), 4096),
            vec![0; 4096],
            "nothing copied"
        );
        // The driver services the fault; the same LAUNCH_DMA runs again.
        r.pt.map(
            &r.m.mem(),
            0x3000_1000,
            PhysAddr::sys(0x60_1000),
            SZ_4K,
            SZ_4K,
            Flags::default(),
        );
        r.run(&[(
            mthd::LAUNCH_DMA,
            TRANSFER_NON_PIPELINED | FLUSH_ENABLE | SRC_PITCH | DST_PITCH,
        )])
        .unwrap();
        assert_eq!(r.get(PhysAddr::sys(0x60_0000), 8192), data);
    }

    #[test]
    fn permission_faults() {
        let mut r = Rig::new();
        let ro = Flags {
            read_only: true,
            ..Default::default()
        };
        let noatomic = Flags {
            atomic_disable: true,
            ..Default::default()
        };
        r.pt.map(
            &r.m.mem(),
            0x4000_0000,
            PhysAddr::sys(0x70_0000),
            SZ_4K,
            SZ_4K,
            ro,
        );
        r.pt.map(
            &r.m.mem(),
            0x4000_1000,
            PhysAddr::sys(0x70_1000),
            SZ_4K,
            SZ_4K,
            noatomic,
        );
        assert!(matches!(
            r.run(&copy(SYS_VA, 0x4000_0000, 16, 1, 0, 0)),
            Err(CeError::Fault {
                fault_type: FaultType::RoViolation,
                ..
            })
        ));
        // Reading a read-only page is fine.
        r.run(&copy(0x4000_0000, SYS_VA, 16, 1, 0, 0)).unwrap();
        let inc = SEMAPHORE_ONE_WORD | REDUCTION_ENABLE | (reduction::INC << REDUCTION_SHIFT);
        assert!(matches!(
            r.run(&[
                (mthd::SET_SEMAPHORE_A, 0),
                (mthd::SET_SEMAPHORE_B, 0x4000_1000),
                (mthd::LAUNCH_DMA, inc)
            ]),
            Err(CeError::Fault {
                fault_type: FaultType::AtomicViolation,
                access: Access::Atomic,
                ..
            })
        ));
    }

    #[test]
    fn invalid_launches_are_refused() {
        let mut r = Rig::new();
        assert!(matches!(r.run(&[(0x1234, 0)]), Err(CeError::Invalid(_))));
        assert!(
            matches!(
                r.run(&[(mthd::LAUNCH_DMA, TRANSFER_PIPELINED)]),
                Err(CeError::Invalid(_))
            ),
            "block linear"
        );
        assert!(matches!(
            r.run(&[(mthd::OFFSET_IN_UPPER, 1 << 17)]),
            Err(CeError::Invalid(_))
        ));
        let mut m = vec![(mthd::SET_SRC_PHYS_MODE, 3)];
        m.extend(copy(0, 0, 16, 1, 0, SRC_PHYSICAL));
        assert!(matches!(r.run(&m), Err(CeError::Invalid(_))), "peer");
        assert!(matches!(
            r.run(&[
                (mthd::SET_SEMAPHORE_B, (SYS_VA + 2) as u32),
                (mthd::LAUNCH_DMA, SEMAPHORE_ONE_WORD)
            ]),
            Err(CeError::Invalid(_))
        ));
        // Physical access outside memory is a memory error, not a guess.
        let mut m = vec![(mthd::SET_SRC_PHYS_MODE, 0)];
        m.extend(copy(1 << 40, SYS_VA, 16, 1, 0, SRC_PHYSICAL));
        assert!(matches!(r.run(&m), Err(CeError::Mem(_))));
    }

    #[test]
    fn stale_tlb_until_invalidated() {
        let mut r = Rig::new();
        r.put(PhysAddr::sys(0x10_0000), b"old!");
        r.put(PhysAddr::sys(0x68_0000), b"new!");
        r.run(&copy(SYS_VA, VID_VA, 4, 1, 0, 0)).unwrap();
        // Remap the source page without invalidating: the CE still reads the old page.
        r.pt.set_pte_4k(
            &r.m.mem(),
            SYS_VA,
            pte(PhysAddr::sys(0x68_0000), Flags::default()),
        );
        r.run(&copy(SYS_VA, VID_VA + 16, 4, 1, 0, 0)).unwrap();
        assert_eq!(r.get(PhysAddr::vid(0x40_0010), 4), b"old!");
        r.tlb.invalidate(InvalidateScope::Range {
            pdb: Some(r.pt.pdb),
            va: SYS_VA,
            size: SZ_4K,
        });
        r.run(&copy(SYS_VA, VID_VA + 32, 4, 1, 0, 0)).unwrap();
        assert_eq!(r.get(PhysAddr::vid(0x40_0020), 4), b"new!");
    }
}
