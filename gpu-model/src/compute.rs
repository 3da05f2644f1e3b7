//! The compute engine: a model-private class, `RSVM_COMPUTE_A` (0x52C0).
//!
//! Volta's shader cores are undocumented, so this engine is the model's own
//! and marked as such everywhere: it runs small kernels in RV64IMA (the base
//! integer ISA with multiply/divide and atomics, no compressed
//! instructions) over a one-dimensional grid of threads. Every instruction
//! fetch, load, store and atomic goes through the channel's GMMU address
//! space, so kernels walk the process's own memory.
//!
//! A thread starts at the code address with `a0` = the argument pointer,
//! `a1` = its index, `a2` = the grid size and `sp` = the top of its stack
//! slice; `ecall` ends it, `ebreak` fails the job.
//!
//! Faults stall the faulting thread (the others go on, so faults arrive in
//! batches). With replay enabled in the instance block the fault is
//! replayable: it is reported once in the replayable buffer and the thread
//! waits for a replay, which re-issues the access, or a cancel, which fails
//! the job.

use crate::mem::{PhysAddr, PhysMem};
use crate::mmu::{Access, FaultType, Pdb, Tlb, WalkError};
use crate::timing::Traffic;

/// The class number (model-private).
pub const CLASS: u32 = 0x52c0;

pub mod mthd {
    pub const NOP: u32 = 0x100;
    pub const SET_CODE_ADDRESS_UPPER: u32 = 0x200;
    pub const SET_CODE_ADDRESS_LOWER: u32 = 0x204;
    pub const SET_ARGS_ADDRESS_UPPER: u32 = 0x208;
    pub const SET_ARGS_ADDRESS_LOWER: u32 = 0x20c;
    pub const SET_STACK_ADDRESS_UPPER: u32 = 0x210;
    pub const SET_STACK_ADDRESS_LOWER: u32 = 0x214;
    /// Bytes of stack per thread (a multiple of 16; 0 for none).
    pub const SET_STACK_SIZE: u32 = 0x218;
    /// Threads in the grid (1..=65536).
    pub const SET_GRID_SIZE: u32 = 0x220;
    /// Instructions a thread may retire before the job fails (0: 2^32).
    pub const SET_INSTRUCTION_LIMIT: u32 = 0x224;
    /// Runs the grid. Bit 0: raise the non-stall interrupt when done.
    pub const LAUNCH: u32 = 0x300;
}

/// Largest grid.
pub const MAX_GRID: u32 = 65536;

/// A stalled access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stall {
    pub va: u64,
    pub access: Access,
    pub fault_type: FaultType,
    /// The fault was reported and the thread waits for a replay.
    pub reported: bool,
}

#[derive(Clone, Debug, Default)]
struct Thread {
    x: [u64; 32],
    pc: u64,
    done: bool,
    stall: Option<Stall>,
    /// LR reservation: address and the value read.
    reservation: Option<(u64, u64)>,
    retired: u64,
}

/// A running grid.
#[derive(Clone, Debug)]
struct Grid {
    threads: Vec<Thread>,
    interrupt: bool,
    limit: u64,
}

/// What a run of the engine ended with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Run {
    /// Every thread ended; `interrupt` was asked for at launch.
    Done { interrupt: bool },
    /// The budget ran out; there is more to do.
    Yield,
    /// Every thread left is stalled on a fault it reported.
    Stalled,
    /// The job failed.
    Error(&'static str),
    /// A thread's access at this address was not naturally aligned.
    Misaligned(u64),
}

/// Why an access did not complete.
enum AccessError {
    Fault(u64, Access, FaultType),
    Misaligned(u64),
    Error(&'static str),
}

/// What the engine reaches while it runs.
pub struct Context<'a> {
    pub mem: &'a dyn PhysMem,
    pub tlb: &'a mut Tlb,
    pub pdb: Option<Pdb>,
    /// Instructions this run may retire (all threads together).
    pub budget: u64,
    /// Instructions retired in this run.
    pub retired: u64,
    /// Memory traffic of this run, by path (for the timing model).
    pub traffic: Traffic,
}

impl Context<'_> {
    fn translate(
        &mut self,
        va: u64,
        size: u64,
        access: Access,
    ) -> Result<Option<PhysAddr>, AccessError> {
        if !va.is_multiple_of(size) {
            return Err(AccessError::Misaligned(va));
        }
        let pdb = self
            .pdb
            .ok_or(AccessError::Fault(va, access, FaultType::UnboundInstBlock))?;
        let t = self.tlb.translate(self.mem, pdb, va).map_err(|e| match e {
            WalkError::Fault(t) => AccessError::Fault(va, access, t),
            WalkError::Mem(_) => AccessError::Error("page table outside memory"),
            WalkError::Encoding(_) => AccessError::Error("invalid page-table encoding"),
        })?;
        t.check(access, false)
            .map_err(|t| AccessError::Fault(va, access, t))?;
        let pa = t.resolve(va);
        if let Some(p) = pa {
            self.traffic.add(p.aperture.is_sysmem(), size);
        }
        Ok(pa)
    }

    fn load(&mut self, va: u64, size: u64) -> Result<u64, AccessError> {
        let Some(pa) = self.translate(va, size, Access::Read)? else {
            return Ok(0); // sparse
        };
        let mut b = [0u8; 8];
        self.mem
            .read(pa, &mut b[..size as usize])
            .map_err(|_| AccessError::Error("load outside memory"))?;
        Ok(u64::from_le_bytes(b))
    }

    fn store(&mut self, va: u64, size: u64, v: u64) -> Result<(), AccessError> {
        let Some(pa) = self.translate(va, size, Access::Write)? else {
            return Ok(());
        };
        self.mem
            .write(pa, &v.to_le_bytes()[..size as usize])
            .map_err(|_| AccessError::Error("store outside memory"))
    }

    fn atomic(
        &mut self,
        va: u64,
        size: u64,
        f: &mut dyn FnMut(u64) -> u64,
    ) -> Result<u64, AccessError> {
        let Some(pa) = self.translate(va, size, Access::Atomic)? else {
            return Ok(0);
        };
        self.mem
            .atomic_update(pa, size, f)
            .map_err(|_| AccessError::Error("atomic outside memory"))
    }
}

/// Method state and the running grid of one channel's compute context.
#[derive(Clone, Debug, Default)]
pub struct ComputeEngine {
    code: u64,
    args: u64,
    stack: u64,
    stack_size: u32,
    grid_size: u32,
    limit: u32,
    grid: Option<Grid>,
}

fn sext(v: u64, bits: u32) -> u64 {
    let s = 64 - bits;
    (((v << s) as i64) >> s) as u64
}

impl ComputeEngine {
    /// Executes a method other than `LAUNCH`; `Err` for an invalid one.
    pub fn method(&mut self, m: u32, v: u32) -> Result<(), &'static str> {
        let lo = |x: u64| (x & !0xffff_ffff) | u64::from(v);
        let hi = |x: u64| {
            if v >> 17 != 0 {
                Err("address upper bits past 16:0")
            } else {
                Ok((x & 0xffff_ffff) | (u64::from(v) << 32))
            }
        };
        match m {
            mthd::NOP => {}
            mthd::SET_CODE_ADDRESS_UPPER => self.code = hi(self.code)?,
            mthd::SET_CODE_ADDRESS_LOWER => self.code = lo(self.code),
            mthd::SET_ARGS_ADDRESS_UPPER => self.args = hi(self.args)?,
            mthd::SET_ARGS_ADDRESS_LOWER => self.args = lo(self.args),
            mthd::SET_STACK_ADDRESS_UPPER => self.stack = hi(self.stack)?,
            mthd::SET_STACK_ADDRESS_LOWER => self.stack = lo(self.stack),
            mthd::SET_STACK_SIZE if v.is_multiple_of(16) => self.stack_size = v,
            mthd::SET_STACK_SIZE => return Err("stack size not a multiple of 16"),
            mthd::SET_GRID_SIZE if (1..=MAX_GRID).contains(&v) => self.grid_size = v,
            mthd::SET_GRID_SIZE => return Err("grid size out of range"),
            mthd::SET_INSTRUCTION_LIMIT => self.limit = v,
            _ => return Err("unknown compute method"),
        }
        Ok(())
    }

    /// Whether a grid is running (launched and not finished).
    pub fn busy(&self) -> bool {
        self.grid.is_some()
    }

    /// Starts a grid, unless one is already running (a `LAUNCH` that is run
    /// again after a yield, a stall or a fault continues the same grid).
    pub fn launch(&mut self, v: u32) -> Result<(), &'static str> {
        if self.grid.is_some() {
            return Ok(());
        }
        if v & !1 != 0 {
            return Err("LAUNCH: reserved bits set");
        }
        if !self.code.is_multiple_of(4) {
            return Err("code address not 4-byte aligned");
        }
        let n = self.grid_size.max(1);
        let threads = (0..n)
            .map(|i| {
                let mut t = Thread {
                    pc: self.code,
                    ..Default::default()
                };
                t.x[10] = self.args;
                t.x[11] = u64::from(i);
                t.x[12] = u64::from(n);
                t.x[2] = self.stack + u64::from(self.stack_size) * (u64::from(i) + 1);
                t
            })
            .collect();
        self.grid = Some(Grid {
            threads,
            interrupt: v & 1 != 0,
            limit: if self.limit == 0 {
                1 << 32
            } else {
                u64::from(self.limit)
            },
        });
        Ok(())
    }

    /// Stalled accesses waiting for a replay.
    pub fn stalls(&self) -> impl Iterator<Item = Stall> + '_ {
        self.grid
            .iter()
            .flat_map(|g| g.threads.iter().filter_map(|t| t.stall))
    }

    /// A replay: every stalled access is issued again.
    pub fn replay(&mut self) {
        if let Some(g) = &mut self.grid {
            for t in &mut g.threads {
                t.stall = None;
            }
        }
    }

    /// A cancel of the stalled accesses that `matches`: if any, the job
    /// fails (the grid is dropped). Returns whether it did.
    pub fn cancel(&mut self, matches: impl Fn(&Stall) -> bool) -> bool {
        let hit = self.stalls().any(|s| matches(&s));
        if hit {
            self.grid = None;
        }
        hit
    }

    /// Runs the grid until it ends, stalls or the budget runs out. `fault`
    /// reports a new fault (each stalled access once per replay).
    pub fn run(
        &mut self,
        ctx: &mut Context<'_>,
        fault: &mut dyn FnMut(u64, Access, FaultType),
    ) -> Run {
        let Some(g) = self.grid.as_mut() else {
            return Run::Done { interrupt: false };
        };
        let limit = g.limit;
        for t in g.threads.iter_mut() {
            if t.done || t.stall.is_some_and(|s| s.reported) {
                continue;
            }
            t.stall = None;
            loop {
                if ctx.retired >= ctx.budget {
                    return Run::Yield;
                }
                if t.retired >= limit {
                    self.grid = None;
                    return Run::Error("instruction limit reached");
                }
                match step(t, ctx) {
                    Ok(true) => {
                        t.retired += 1;
                        ctx.retired += 1;
                    }
                    Ok(false) => {
                        t.done = true;
                        break;
                    }
                    Err(AccessError::Fault(va, access, fault_type)) => {
                        t.stall = Some(Stall {
                            va,
                            access,
                            fault_type,
                            reported: true,
                        });
                        fault(va, access, fault_type);
                        break;
                    }
                    Err(AccessError::Error(why)) => {
                        self.grid = None;
                        return Run::Error(why);
                    }
                    Err(AccessError::Misaligned(va)) => {
                        self.grid = None;
                        return Run::Misaligned(va);
                    }
                }
            }
        }
        let g = self.grid.as_ref().expect("grid present");
        if g.threads.iter().all(|t| t.done) {
            let interrupt = g.interrupt;
            self.grid = None;
            Run::Done { interrupt }
        } else {
            Run::Stalled
        }
    }
}

/// Executes one instruction. `Ok(false)`: the thread ended (`ecall`).
fn step(t: &mut Thread, ctx: &mut Context<'_>) -> Result<bool, AccessError> {
    let i = ctx.load(t.pc, 4)? as u32;
    let rd = ((i >> 7) & 31) as usize;
    let rs1 = t.x[((i >> 15) & 31) as usize];
    let rs2 = t.x[((i >> 20) & 31) as usize];
    let f3 = (i >> 12) & 7;
    let f7 = i >> 25;
    let imm_i = sext(u64::from(i >> 20), 12);
    let imm_s = sext(u64::from(((i >> 25) << 5) | ((i >> 7) & 31)), 12);
    let imm_b = sext(
        u64::from(
            ((i >> 31) << 12)
                | (((i >> 7) & 1) << 11)
                | (((i >> 25) & 0x3f) << 5)
                | (((i >> 8) & 0xf) << 1),
        ),
        13,
    );
    let imm_u = sext(u64::from(i & 0xffff_f000), 32);
    let imm_j = sext(
        u64::from(
            ((i >> 31) << 20)
                | (((i >> 12) & 0xff) << 12)
                | (((i >> 20) & 1) << 11)
                | (((i >> 21) & 0x3ff) << 1),
        ),
        21,
    );
    let mut next = t.pc.wrapping_add(4);
    let mut val: Option<u64> = None;
    const ILLEGAL: AccessError = AccessError::Error("illegal instruction");
    match i & 0x7f {
        0x37 => val = Some(imm_u),                    // LUI
        0x17 => val = Some(t.pc.wrapping_add(imm_u)), // AUIPC
        0x6f => {
            val = Some(next);
            next = t.pc.wrapping_add(imm_j);
        }
        0x67 if f3 == 0 => {
            val = Some(next);
            next = rs1.wrapping_add(imm_i) & !1;
        }
        0x63 => {
            let taken = match f3 {
                0 => rs1 == rs2,
                1 => rs1 != rs2,
                4 => (rs1 as i64) < (rs2 as i64),
                5 => (rs1 as i64) >= (rs2 as i64),
                6 => rs1 < rs2,
                7 => rs1 >= rs2,
                _ => return Err(ILLEGAL),
            };
            if taken {
                next = t.pc.wrapping_add(imm_b);
            }
        }
        0x03 => {
            let va = rs1.wrapping_add(imm_i);
            let (size, signed) = match f3 {
                0 => (1, true),
                1 => (2, true),
                2 => (4, true),
                3 => (8, false),
                4 => (1, false),
                5 => (2, false),
                6 => (4, false),
                _ => return Err(ILLEGAL),
            };
            let v = ctx.load(va, size)?;
            val = Some(if signed { sext(v, size as u32 * 8) } else { v });
        }
        0x23 => {
            let size = match f3 {
                0 => 1,
                1 => 2,
                2 => 4,
                3 => 8,
                _ => return Err(ILLEGAL),
            };
            ctx.store(rs1.wrapping_add(imm_s), size, rs2)?;
        }
        0x13 => {
            let sh = (i >> 20) & 0x3f;
            val = Some(match f3 {
                0 => rs1.wrapping_add(imm_i),
                2 => u64::from((rs1 as i64) < (imm_i as i64)),
                3 => u64::from(rs1 < imm_i),
                4 => rs1 ^ imm_i,
                6 => rs1 | imm_i,
                7 => rs1 & imm_i,
                1 if i >> 26 == 0 => rs1 << sh,
                5 if i >> 26 == 0 => rs1 >> sh,
                5 if i >> 26 == 0x10 => ((rs1 as i64) >> sh) as u64,
                _ => return Err(ILLEGAL),
            });
        }
        0x1b => {
            let sh = (i >> 20) & 0x1f;
            let w = rs1 as u32;
            val = Some(sext(
                u64::from(match (f3, f7) {
                    (0, _) => w.wrapping_add(imm_i as u32),
                    (1, 0) => w << sh,
                    (5, 0) => w >> sh,
                    (5, 0x20) => ((w as i32) >> sh) as u32,
                    _ => return Err(ILLEGAL),
                }),
                32,
            ));
        }
        0x33 => {
            val = Some(match (f7, f3) {
                (0, 0) => rs1.wrapping_add(rs2),
                (0x20, 0) => rs1.wrapping_sub(rs2),
                (0, 1) => rs1 << (rs2 & 63),
                (0, 2) => u64::from((rs1 as i64) < (rs2 as i64)),
                (0, 3) => u64::from(rs1 < rs2),
                (0, 4) => rs1 ^ rs2,
                (0, 5) => rs1 >> (rs2 & 63),
                (0x20, 5) => ((rs1 as i64) >> (rs2 & 63)) as u64,
                (0, 6) => rs1 | rs2,
                (0, 7) => rs1 & rs2,
                (1, 0) => rs1.wrapping_mul(rs2),
                (1, 1) => ((i128::from(rs1 as i64) * i128::from(rs2 as i64)) >> 64) as u64,
                (1, 2) => ((i128::from(rs1 as i64) * (rs2 as i128)) >> 64) as u64,
                (1, 3) => ((u128::from(rs1) * u128::from(rs2)) >> 64) as u64,
                (1, 4) => match (rs1 as i64, rs2 as i64) {
                    (_, 0) => u64::MAX,
                    (a, b) => a.wrapping_div(b) as u64,
                },
                (1, 5) => rs1.checked_div(rs2).unwrap_or(u64::MAX),
                (1, 6) => match (rs1 as i64, rs2 as i64) {
                    (a, 0) => a as u64,
                    (a, b) => a.wrapping_rem(b) as u64,
                },
                (1, 7) => rs1.checked_rem(rs2).unwrap_or(rs1),
                _ => return Err(ILLEGAL),
            });
        }
        0x3b => {
            let (a, b) = (rs1 as u32, rs2 as u32);
            let r = match (f7, f3) {
                (0, 0) => a.wrapping_add(b),
                (0x20, 0) => a.wrapping_sub(b),
                (0, 1) => a << (b & 31),
                (0, 5) => a >> (b & 31),
                (0x20, 5) => ((a as i32) >> (b & 31)) as u32,
                (1, 0) => a.wrapping_mul(b),
                (1, 4) => match (a as i32, b as i32) {
                    (_, 0) => u32::MAX,
                    (x, y) => x.wrapping_div(y) as u32,
                },
                (1, 5) => a.checked_div(b).unwrap_or(u32::MAX),
                (1, 6) => match (a as i32, b as i32) {
                    (x, 0) => x as u32,
                    (x, y) => x.wrapping_rem(y) as u32,
                },
                (1, 7) => a.checked_rem(b).unwrap_or(a),
                _ => return Err(ILLEGAL),
            };
            val = Some(sext(u64::from(r), 32));
        }
        0x0f => {} // FENCE: the model is sequentially consistent
        0x73 => match i >> 7 {
            0 => return Ok(false),                              // ECALL: the thread ends
            0x2000 => return Err(AccessError::Error("ebreak")), // EBREAK
            _ => return Err(ILLEGAL),
        },
        0x2f => {
            let size = match f3 {
                2 => 4,
                3 => 8,
                _ => return Err(ILLEGAL),
            };
            let va = rs1;
            let op = i >> 27;
            let ext = |v: u64| if size == 4 { sext(v, 32) } else { v };
            val = Some(match op {
                0x02 => {
                    // LR: a load that sets a reservation.
                    let v = ctx.load(va, size)?;
                    t.reservation = Some((va, v));
                    ext(v)
                }
                0x03 => match t.reservation {
                    // SC: a compare-and-swap from the value LR read, so it
                    // fails if anyone (a thread, the CPU) changed it since.
                    Some((rva, old)) if rva == va => {
                        let new = if size == 4 { rs2 & 0xffff_ffff } else { rs2 };
                        let seen =
                            ctx.atomic(va, size, &mut |cur| if cur == old { new } else { cur })?;
                        t.reservation = None;
                        u64::from(seen != old)
                    }
                    _ => 1,
                },
                _ => {
                    let w = |x: u64| if size == 4 { x & 0xffff_ffff } else { x };
                    let (s1, s2) = (|x: u64| ext(x) as i64, ext(rs2) as i64);
                    let b = w(rs2);
                    let mut f = |old: u64| -> u64 {
                        w(match op {
                            0x01 => b,
                            0x00 => old.wrapping_add(b),
                            0x04 => old ^ b,
                            0x0c => old & b,
                            0x08 => old | b,
                            0x10 => s1(old).min(s2) as u64,
                            0x14 => s1(old).max(s2) as u64,
                            0x18 => old.min(b),
                            _ => old.max(b),
                        })
                    };
                    if ![0x00, 0x01, 0x04, 0x08, 0x0c, 0x10, 0x14, 0x18, 0x1c].contains(&op) {
                        return Err(ILLEGAL);
                    }
                    ext(ctx.atomic(va, size, &mut f)?)
                }
            });
        }
        _ => return Err(ILLEGAL),
    }
    if let Some(v) = val {
        if rd != 0 {
            t.x[rd] = v;
        }
    }
    t.pc = next;
    Ok(true)
}
