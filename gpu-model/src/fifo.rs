//! Host (PFIFO/PBDMA): channels, the runlist, GPFIFO and pushbuffer
//! fetching, the host class `VOLTA_CHANNEL_GPFIFO_A` (0xC36F) methods, the
//! doorbell and preemption.
//!
//! Formats follow open-gpu-doc (GV100): `dev_fifo.ref` (PCCSR, runlist and
//! preempt registers), `dev_ram.ref` (instance block, RAMFC, USERD, runlist
//! entries, pushbuffer headers), `dev_pbdma.ref` (GPFIFO entries),
//! `dev_usermode.ref` (doorbell) and `classes/host/clc36f.h` (methods).
//!
//! GPFIFO entries and pushbuffers are read through the channel's GMMU
//! address space; USERD and the instance block are physical. Faults while
//! fetching or in host semaphores are PBDMA faults; faults in the copy
//! engine are engine faults. Both are non-replayable: the channel stops with
//! `PBDMA_FAULTED`/`ENG_FAULTED` set until the driver clears it, and then
//! re-runs the method that faulted.

use crate::ce::{self, CeError, CopyEngine};
use crate::compute::{self, ComputeEngine, Run};
use crate::fault::{client, engine, FaultEntry, FaultUnit, NON_REPLAYABLE};
use crate::mem::{Aperture, MemError, PhysAddr, PhysMem};
use crate::mmu::{Access, FaultType, InvalidateScope, Pdb, Tlb, WalkError, SZ_4K};
use crate::timing::{Timing, Traffic};

pub const NUM_CHANNELS: usize = 512;

pub const PFIFO_INTR_0: u64 = 0x2100;
pub const PFIFO_INTR_EN_0: u64 = 0x2140;
pub const RUNLIST_BASE: u64 = 0x2270;
pub const RUNLIST: u64 = 0x2274;
pub const SCHED_DISABLE: u64 = 0x2630;
pub const PREEMPT: u64 = 0x2634;
pub const RUNLIST_PREEMPT: u64 = 0x2638;
pub const PCCSR_CHANNEL_INST: u64 = 0x80_0000;
pub const PCCSR_CHANNEL: u64 = 0x80_0004;
pub const USERMODE_CFG0: u64 = 0x81_0000;
pub const USERMODE_TIME_0: u64 = 0x81_0080;
pub const USERMODE_TIME_1: u64 = 0x81_0084;
pub const NOTIFY_CHANNEL_PENDING: u64 = 0x81_0090;
/// Model-private: the oldest channel error not yet acknowledged (see
/// `Fifo::errors`); `CHID` reads `u32::MAX` when none is pending.
pub const RSVM_CHANNEL_ERROR_CHID: u64 = 0xfe_0200;
pub const RSVM_CHANNEL_ERROR_CODE: u64 = 0xfe_0204;
pub const RSVM_CHANNEL_ERROR_INFO: u64 = 0xfe_0208;
/// Bits 63:32 of the detail (a cancelled fault's page number has 37 bits).
pub const RSVM_CHANNEL_ERROR_INFO_HI: u64 = 0xfe_020c;

/// `NV_PFIFO_INTR_0` bit the model raises for channel errors.
pub const PFIFO_INTR_CHANNEL: u32 = 1 << 31;

/// The class `NV_USERMODE_CFG0` reports.
pub const USERMODE_CLASS: u32 = 0xc361;
/// The host class.
pub const HOST_CLASS: u32 = 0xc36f;

/// Host methods (`clc36f.h`).
pub mod mthd {
    pub const SET_OBJECT: u32 = 0x000;
    pub const NOP: u32 = 0x008;
    pub const NON_STALL_INTERRUPT: u32 = 0x020;
    pub const MEM_OP_A: u32 = 0x028;
    pub const MEM_OP_B: u32 = 0x02c;
    pub const MEM_OP_C: u32 = 0x030;
    pub const MEM_OP_D: u32 = 0x034;
    pub const SET_REFERENCE: u32 = 0x050;
    pub const SEM_ADDR_LO: u32 = 0x05c;
    pub const SEM_ADDR_HI: u32 = 0x060;
    pub const SEM_PAYLOAD_LO: u32 = 0x064;
    pub const SEM_PAYLOAD_HI: u32 = 0x068;
    pub const SEM_EXECUTE: u32 = 0x06c;
    pub const WFI: u32 = 0x078;
    pub const CLEAR_FAULTED: u32 = 0x084;
}

/// Why a channel was put in error (reported in `RSVM_CHANNEL_ERROR_CODE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ErrorCode {
    /// A method the class does not have, or no object on the subchannel.
    InvalidMethod = 1,
    /// A field value or encoding the model refuses.
    InvalidEncoding = 2,
    /// `SET_OBJECT` of a class the engine does not implement.
    InvalidClass = 3,
    /// Physical memory that does not exist (DMA outside guest RAM).
    BadPhysicalAccess = 4,
    /// A GPFIFO entry or pushbuffer header the model refuses.
    InvalidPushbuffer = 5,
    /// The instance block is missing or invalid.
    InvalidInstance = 6,
    /// A compute job failed (illegal instruction, `ebreak`, misaligned
    /// access, instruction limit).
    JobFailed = 7,
    /// A replayable fault of the channel was cancelled.
    FaultCancelled = 8,
    /// A compute access was not naturally aligned (info: its address).
    Misaligned = 9,
}

/// Instructions a compute grid retires per scheduling turn.
const COMPUTE_BUDGET: u64 = 200_000;

/// Things that happened while a channel ran.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Events {
    pub nonstall: bool,
    pub ce_nonstall: bool,
    pub compute_nonstall: bool,
    pub instructions: u64,
    pub stall: bool,
    pub faulted: bool,
    pub error: bool,
    pub methods: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HeaderKind {
    Inc,
    NonInc,
    OneInc,
}

#[derive(Clone, Copy, Debug)]
struct Header {
    kind: HeaderKind,
    subch: u8,
    addr: u32,
    left: u32,
    first: bool,
}

/// One channel.
#[derive(Default)]
pub struct Channel {
    inst_reg: u32,
    enabled: bool,
    in_runlist: bool,
    userd: Option<PhysAddr>,
    pub eng_faulted: bool,
    pub pbdma_faulted: bool,
    pub error: Option<ErrorCode>,
    /// Runnable work may be there (doorbell rung, or work left over).
    pub kicked: bool,
    /// Waiting on a semaphore acquire.
    pub blocked: bool,
    /// A compute grid is stalled on replayable faults it reported.
    pub replay_wait: bool,
    gp_get: u32,
    /// Current pushbuffer segment: VA of the next dword, dwords left.
    seg: Option<(u64, u32)>,
    hdr: Option<Header>,
    /// A method to run again (after a fault or a blocked acquire).
    retry: Option<Call>,
    subch: [u32; 8],
    sem_addr: u64,
    sem_payload: u64,
    mem_op: [u32; 3],
    ce: CopyEngine,
    compute: ComputeEngine,
}

/// What a channel's run needs from the rest of the device.
pub struct Env<'a> {
    pub mem: &'a dyn PhysMem,
    pub tlb: &'a mut Tlb,
    pub faults: &'a mut FaultUnit,
    pub timing: &'a Timing,
    /// The device clock (modelled time, ns); engines advance it.
    pub now_ns: u64,
}

/// A method as a channel executes it.
#[derive(Clone, Copy, Debug)]
struct Call {
    subch: u8,
    /// Method offset in bytes.
    m: u32,
    data: u32,
}

impl Call {
    const fn new(subch: u8, m: u32, data: u32) -> Self {
        Self { subch, m, data }
    }
}

/// A translation fault: where, how, and what kind.
#[derive(Clone, Copy, Debug)]
struct FaultInfo {
    va: u64,
    access: Access,
    fault_type: FaultType,
}

impl FaultInfo {
    const fn new(va: u64, access: Access, fault_type: FaultType) -> Self {
        Self {
            va,
            access,
            fault_type,
        }
    }
}

/// Which unit made an access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    Host,
    Copy,
    Compute,
}

enum Stop {
    Idle,
    /// Out of budget with work left.
    Yield,
    /// Waiting for a replay.
    Waiting,
    Blocked,
    Faulted,
    Error(ErrorCode, u32),
    /// An error whose detail is a 64-bit address.
    ErrorAt(ErrorCode, u64),
}

impl From<MemError> for Stop {
    fn from(_: MemError) -> Self {
        Stop::Error(ErrorCode::BadPhysicalAccess, 0)
    }
}

fn target(bits: u32) -> Option<Aperture> {
    match bits & 3 {
        0 => Some(Aperture::Video),
        2 => Some(Aperture::SysCoherent),
        3 => Some(Aperture::SysNonCoherent),
        _ => None,
    }
}

/// The host's registers and channels.
pub struct Fifo {
    pub channels: Vec<Channel>,
    /// Engines the firmware enabled (`rsvm_firmware::ENGINE_*`); nothing
    /// runs before the firmware boots.
    pub engines: u32,
    intr: u32,
    intr_en: u32,
    runlist_base: u32,
    preempt: u32,
    /// `NV_PFIFO_SCHED_DISABLE`: bit 0 stops the (one) runlist.
    sched_disable: u32,
    /// Channel errors not yet acknowledged, oldest first: a channel is in
    /// it at most once (it runs nothing more until it is unbound).
    errors: std::collections::VecDeque<(u32, ErrorCode, u64)>,
}

impl Default for Fifo {
    fn default() -> Self {
        Self {
            channels: (0..NUM_CHANNELS).map(|_| Channel::default()).collect(),
            engines: 0,
            intr: 0,
            intr_en: 0,
            runlist_base: 0,
            preempt: 0,
            sched_disable: 0,
            errors: std::collections::VecDeque::new(),
        }
    }
}

impl Fifo {
    /// Whether PFIFO asserts its PMC interrupt.
    pub fn interrupt(&self) -> bool {
        self.intr & self.intr_en != 0
    }

    fn pccsr(off: u64) -> Option<(usize, bool)> {
        let rel = off.checked_sub(PCCSR_CHANNEL_INST)?;
        let chid = (rel / 8) as usize;
        (chid < NUM_CHANNELS).then_some((chid, rel % 8 == 4))
    }

    /// A register read, if the offset is the host's.
    pub fn read(&self, off: u64, now_ns: u64) -> Option<u32> {
        if let Some((chid, is_ctl)) = Self::pccsr(off) {
            let c = &self.channels[chid];
            return Some(if is_ctl {
                let busy = c.kicked || c.seg.is_some() || c.retry.is_some();
                u32::from(c.enabled)
                    | (u32::from(c.pbdma_faulted) << 22)
                    | (u32::from(c.eng_faulted) << 23)
                    | (u32::from(busy) << 28)
            } else {
                c.inst_reg
            });
        }
        Some(match off {
            PFIFO_INTR_0 => self.intr,
            PFIFO_INTR_EN_0 => self.intr_en,
            RUNLIST_BASE => self.runlist_base,
            // Preemption completes at a method boundary, which every
            // register access is: never pending when read.
            PREEMPT => self.preempt & !(1 << 20),
            SCHED_DISABLE => self.sched_disable,
            // Like a channel preempt, a runlist preempt is complete at the
            // next boundary, which every register access is.
            RUNLIST_PREEMPT => 0,
            USERMODE_CFG0 => USERMODE_CLASS,
            USERMODE_TIME_0 => (now_ns as u32) & !0x1f,
            USERMODE_TIME_1 => (now_ns >> 32) as u32,
            RSVM_CHANNEL_ERROR_CHID => self.errors.front().map_or(u32::MAX, |e| e.0),
            RSVM_CHANNEL_ERROR_CODE => self.errors.front().map_or(0, |e| e.1 as u32),
            RSVM_CHANNEL_ERROR_INFO => self.errors.front().map_or(0, |e| e.2 as u32),
            RSVM_CHANNEL_ERROR_INFO_HI => self.errors.front().map_or(0, |e| (e.2 >> 32) as u32),
            _ => return None,
        })
    }

    /// A register write; returns `None` if the offset is not the host's,
    /// `Some(true)` if a channel may have work.
    pub fn write(&mut self, off: u64, v: u32, mem: &dyn PhysMem) -> Option<bool> {
        if let Some((chid, is_ctl)) = Self::pccsr(off) {
            let c = &mut self.channels[chid];
            if !is_ctl {
                c.inst_reg = v & 0xbfff_ffff;
                if v & (1 << 31) == 0 {
                    // Unbound: the channel's state, its pending error
                    // included, is gone.
                    *c = Channel::default();
                    self.errors.retain(|e| e.0 as usize != chid);
                    if self.errors.is_empty() {
                        self.intr &= !PFIFO_INTR_CHANNEL;
                    }
                }
                return Some(false);
            }
            if v & (1 << 10) != 0 {
                c.enabled = true;
            }
            if v & (1 << 11) != 0 {
                c.enabled = false;
            }
            if v & (1 << 22) != 0 {
                c.pbdma_faulted = false;
            }
            if v & (1 << 23) != 0 {
                c.eng_faulted = false;
            }
            c.kicked |= c.enabled;
            return Some(c.enabled);
        }
        match off {
            PFIFO_INTR_0 => {
                self.intr &= !v;
                // Acknowledges the oldest error; the next one keeps the
                // interrupt pending.
                if v & PFIFO_INTR_CHANNEL != 0 {
                    self.errors.pop_front();
                    if !self.errors.is_empty() {
                        self.intr |= PFIFO_INTR_CHANNEL;
                    }
                }
            }
            PFIFO_INTR_EN_0 => self.intr_en = v,
            RUNLIST_BASE => self.runlist_base = v,
            RUNLIST => return Some(self.submit_runlist(v, mem)),
            PREEMPT => self.preempt = v & 0x0300_0fff,
            SCHED_DISABLE => {
                self.sched_disable = v & 1;
                return Some(v & 1 == 0);
            }
            RUNLIST_PREEMPT => {}
            NOTIFY_CHANNEL_PENDING => {
                let chid = (v & 0xfff) as usize;
                if let Some(c) = self.channels.get_mut(chid) {
                    c.kicked = true;
                    return Some(true);
                }
                log::warn!("doorbell for channel {chid}, which does not exist");
            }
            _ => return None,
        }
        Some(false)
    }

    /// Logs the state of every bound channel (`RSVM_DEBUG_DUMP`).
    pub fn dump(&self, mem: &dyn PhysMem, tlb: &Tlb) {
        log::warn!(
            "dump: intr {:#x} errors {:?} tlb entries {}",
            self.intr,
            self.errors,
            tlb.len()
        );
        for (chid, c) in self.channels.iter().enumerate() {
            if c.inst_reg & (1 << 31) == 0 {
                continue;
            }
            let put = c.userd.map(|u| mem.read_u32(u.offset(0x8c)));
            log::warn!(
                "dump: ch {chid}: inst {:#x} en {} rl {} kicked {} blocked {} replay_wait {} \
                 eng_f {} pb_f {} error {:?} gp_get {} gp_put {:?} seg {:?} hdr {} retry {:?} \
                 stalls {} pdb {:?}",
                c.inst_reg,
                c.enabled,
                c.in_runlist,
                c.kicked,
                c.blocked,
                c.replay_wait,
                c.eng_faulted,
                c.pbdma_faulted,
                c.error,
                c.gp_get,
                put,
                c.seg,
                c.hdr.is_some(),
                c.retry,
                c.compute.stalls().count(),
                self.pdb(chid, mem),
            );
            // The kernel window: what the TLB has against a fresh walk.
            if let (Some(inst), Ok(Some(pdb))) = (self.inst(chid), self.pdb(chid, mem)) {
                let lo = mem.read_u32(inst.offset(0x48)).unwrap_or(0);
                let hi = mem.read_u32(inst.offset(0x4c)).unwrap_or(0);
                let gp = (u64::from(hi & 0xff) << 32) | u64::from(lo & !7);
                for off in [0u64, 0x1000, 0x1_0000, 0x1_4000] {
                    let va = gp + off;
                    let cached = tlb.peek(pdb, va).map(|t| t.resolve(va));
                    let walked = crate::mmu::walk(mem, pdb, va).ok().map(|t| t.resolve(va));
                    log::warn!("dump: ch {chid}: va {va:#x}: tlb {cached:?} walk {walked:?}");
                }
            }
        }
    }

    fn raise_error(&mut self, chid: usize, code: ErrorCode, info: u64) {
        log::warn!("channel {chid}: error {code:?} (info {info:#x})");
        let c = &mut self.channels[chid];
        c.error = Some(code);
        c.seg = None;
        c.hdr = None;
        c.retry = None;
        let chid = chid as u32;
        if !self.errors.iter().any(|e| e.0 == chid) {
            self.errors.push_back((chid, code, info));
        }
        self.intr |= PFIFO_INTR_CHANNEL;
    }

    /// Reads the runlist: which channels are scheduled, and their USERD.
    fn submit_runlist(&mut self, v: u32, mem: &dyn PhysMem) -> bool {
        let len = v & 0xffff;
        let Some(ap) = target(self.runlist_base >> 28) else {
            log::warn!("runlist: invalid target");
            return false;
        };
        let base = PhysAddr {
            aperture: ap,
            addr: u64::from(self.runlist_base & 0x0fff_ffff) << 12,
        };
        for c in &mut self.channels {
            c.in_runlist = false;
        }
        for i in 0..u64::from(len) {
            let mut d = [0u32; 4];
            for (k, w) in d.iter_mut().enumerate() {
                match mem.read_u32(base.offset(i * 16 + k as u64 * 4)) {
                    Ok(x) => *w = x,
                    Err(_) => {
                        log::warn!("runlist entry {i} is not reachable");
                        return false;
                    }
                }
            }
            if d[0] & 1 != 0 {
                continue; // TSG header
            }
            let chid = (d[2] & 0xfff) as usize;
            let Some(uap) = target(d[0] >> 6) else {
                log::warn!("runlist: channel {chid} has an invalid USERD target");
                continue;
            };
            if let Some(c) = self.channels.get_mut(chid) {
                c.in_runlist = true;
                c.userd = Some(PhysAddr {
                    aperture: uap,
                    addr: (u64::from(d[1]) << 32) | u64::from(d[0] & 0xffff_ff00),
                });
                c.kicked = true;
            }
        }
        true
    }

    /// Whether `chid` can run now.
    pub fn runnable(&self, chid: usize) -> bool {
        let c = &self.channels[chid];
        self.engines != 0
            && self.sched_disable & 1 == 0
            && c.inst_reg & (1 << 31) != 0
            && c.enabled
            && c.in_runlist
            && !c.eng_faulted
            && !c.pbdma_faulted
            && c.error.is_none()
            && !c.replay_wait
            && (c.kicked || c.blocked)
    }

    /// Channels that may have work, for the scheduler.
    pub fn pending(&self) -> impl Iterator<Item = usize> + '_ {
        (0..NUM_CHANNELS).filter(|&c| self.runnable(c))
    }

    fn inst(&self, chid: usize) -> Option<PhysAddr> {
        let r = self.channels[chid].inst_reg;
        Some(PhysAddr {
            aperture: target(r >> 28)?,
            addr: u64::from(r & 0x0fff_ffff) << 12,
        })
    }

    /// Whether the instance block enables replayable faults
    /// (`FAULT_REPLAY_TEX` or `FAULT_REPLAY_GCC`).
    fn replayable(&self, chid: usize, mem: &dyn PhysMem) -> bool {
        self.inst(chid)
            .and_then(|i| mem.read_u32(i.offset(0x200)).ok())
            .is_some_and(|v| v & (3 << 4) != 0)
    }

    /// The address space of the channel's instance block.
    pub fn pdb(&self, chid: usize, mem: &dyn PhysMem) -> Result<Option<Pdb>, ErrorCode> {
        let inst = self.inst(chid).ok_or(ErrorCode::InvalidInstance)?;
        let lo = mem
            .read_u32(inst.offset(0x200))
            .map_err(|_| ErrorCode::InvalidInstance)?;
        let hi = mem
            .read_u32(inst.offset(0x204))
            .map_err(|_| ErrorCode::InvalidInstance)?;
        let Some(aperture) = target(lo) else {
            return Ok(None); // TARGET=INVALID: unbound
        };
        if lo & (1 << 10) == 0 || lo & (1 << 11) == 0 {
            // Volta supports only VER2 tables with 64 KiB big pages.
            return Ok(None);
        }
        Ok(Some(Pdb(PhysAddr {
            aperture,
            addr: (u64::from(hi) << 32) | u64::from(lo & 0xffff_f000),
        })))
    }

    /// Runs channel `chid` for at most `budget` methods.
    pub fn run(&mut self, chid: usize, env: &mut Env<'_>, budget: u64) -> Events {
        let mut ev = Events::default();
        if !self.runnable(chid) {
            return ev;
        }
        let pdb = match self.pdb(chid, env.mem) {
            Ok(p) => p,
            Err(code) => {
                self.raise_error(chid, code, 0);
                ev.error = true;
                return ev;
            }
        };
        match self.run_inner(chid, pdb, env, budget, &mut ev) {
            Stop::Idle => {
                let c = &mut self.channels[chid];
                c.kicked = c.seg.is_some() || c.hdr.is_some() || c.retry.is_some();
                c.blocked = false;
            }
            Stop::Blocked => {
                let c = &mut self.channels[chid];
                c.blocked = true;
                c.kicked = false;
            }
            Stop::Yield => self.channels[chid].kicked = true,
            Stop::Waiting => {
                let c = &mut self.channels[chid];
                c.replay_wait = true;
                c.kicked = false;
            }
            Stop::Faulted => ev.faulted = true,
            Stop::Error(code, info) => {
                self.raise_error(chid, code, info.into());
                ev.error = true;
            }
            Stop::ErrorAt(code, info) => {
                self.raise_error(chid, code, info);
                ev.error = true;
            }
        }
        ev
    }

    /// Reports a non-replayable fault and switches the channel out: an
    /// engine fault (copy or compute engine) sets `ENG_FAULTED`, a host
    /// fault `PBDMA_FAULTED`.
    fn fault(&mut self, chid: usize, env: &mut Env<'_>, fault: FaultInfo, source: Source) -> Stop {
        self.report(chid, env, fault, source, false);
        let c = &mut self.channels[chid];
        if source == Source::Host {
            c.pbdma_faulted = true;
        } else {
            c.eng_faulted = true;
        }
        Stop::Faulted
    }

    fn report(
        &mut self,
        chid: usize,
        env: &mut Env<'_>,
        fault: FaultInfo,
        source: Source,
        replayable: bool,
    ) {
        let FaultInfo {
            va,
            access,
            fault_type,
        } = fault;
        let inst = self.inst(chid).unwrap_or(PhysAddr::vid(0));
        let (engine_id, client, hub) = match source {
            Source::Host => (engine::HOST0, client::HUB_HOST, true),
            Source::Copy => (engine::CE0, client::HUB_CE0, true),
            Source::Compute => (engine::GRAPHICS, client::GPC_T1_0, false),
        };
        let e = FaultEntry {
            inst,
            addr: va,
            timestamp: env.now_ns,
            engine_id,
            fault_type,
            replayable,
            client,
            access,
            hub,
            gpc_id: 0,
            replayable_en: replayable,
        };
        log::debug!("channel {chid}: {fault_type:?} fault at {va:#x} ({access:?}, {source:?})");
        env.now_ns += env.timing.faults_ns(1);
        let buffer = if replayable {
            crate::fault::REPLAYABLE
        } else {
            NON_REPLAYABLE
        };
        env.faults.report(env.mem, buffer, e);
    }

    /// A replay or cancel (`MEM_OP_C.REPLAY` or
    /// `NV_PFB_PRI_MMU_INVALIDATE.REPLAY`): 1 START and 2 START_ACK_ALL
    /// re-issue every stalled access; 3 CANCEL_TARGETED and 4 CANCEL_GLOBAL
    /// fail them all (the model has one GPC client); 5 CANCEL_VA_GLOBAL fails
    /// those at `va`'s page whose access matches `access_type`
    /// (`MEM_OP_C.ACCESS_TYPE`), in the address space `pdb` only unless it
    /// is `None` (`ALL_PDB`), as UVM's `cancel_faults_va` targets the
    /// faulting instance's PDB. A cancelled job puts its channel in error.
    pub fn replay(
        &mut self,
        kind: u32,
        va: u64,
        access_type: u32,
        pdb: Option<Pdb>,
        mem: &dyn PhysMem,
    ) -> Result<(), ErrorCode> {
        let matches_access = |a: Access| match access_type {
            0 => a == Access::Read,
            1 => a == Access::Write,
            2 | 4 | 5 => a == Access::Atomic,
            6 => matches!(a, Access::Write | Access::Atomic),
            _ => true,
        };
        if kind > 5 {
            return Err(ErrorCode::InvalidEncoding);
        }
        for chid in 0..NUM_CHANNELS {
            if self.channels[chid].compute.stalls().next().is_none() {
                continue;
            }
            let in_scope = kind != 5 || pdb.is_none() || self.pdb(chid, mem).ok().flatten() == pdb;
            let c = &mut self.channels[chid];
            if !in_scope {
                continue;
            }
            let cancelled = match kind {
                1 | 2 => {
                    c.compute.replay();
                    c.replay_wait = false;
                    c.kicked = true;
                    false
                }
                3 | 4 => c.compute.cancel(|_| true),
                5 => c
                    .compute
                    .cancel(|s| s.va >> 12 == va >> 12 && matches_access(s.access)),
                _ => false,
            };
            if cancelled {
                c.replay_wait = false;
                self.raise_error(chid, ErrorCode::FaultCancelled, va >> 12);
            }
        }
        Ok(())
    }

    /// Reads a dword at a channel virtual address (a PBDMA access).
    fn read_va(env: &mut Env<'_>, pdb: Option<Pdb>, va: u64) -> Result<u32, (u64, WalkError)> {
        let pdb = pdb.ok_or((va, WalkError::Fault(FaultType::UnboundInstBlock)))?;
        let t = env.tlb.translate(env.mem, pdb, va).map_err(|e| (va, e))?;
        t.check(Access::Read, true)
            .map_err(|f| (va, WalkError::Fault(f)))?;
        match t.resolve(va) {
            Some(pa) => env.mem.read_u32(pa).map_err(|m| (va, WalkError::Mem(m))),
            None => Ok(0),
        }
    }

    fn pbdma_error(&mut self, chid: usize, env: &mut Env<'_>, e: (u64, WalkError)) -> Stop {
        match e.1 {
            WalkError::Fault(t) => self.fault(
                chid,
                env,
                FaultInfo::new(e.0, Access::Read, t),
                Source::Host,
            ),
            WalkError::Mem(_) => Stop::Error(ErrorCode::BadPhysicalAccess, e.0 as u32),
            WalkError::Encoding(_) => Stop::Error(ErrorCode::InvalidEncoding, e.0 as u32),
        }
    }

    fn run_inner(
        &mut self,
        chid: usize,
        pdb: Option<Pdb>,
        env: &mut Env<'_>,
        budget: u64,
        ev: &mut Events,
    ) -> Stop {
        let inst = match self.inst(chid) {
            Some(i) => i,
            None => return Stop::Error(ErrorCode::InvalidInstance, 0),
        };
        let Some(userd) = self.channels[chid].userd else {
            return Stop::Error(ErrorCode::InvalidInstance, 1);
        };
        while ev.methods < budget {
            // A method that faulted or blocked runs again first.
            if let Some(call) = self.channels[chid].retry.take() {
                if let Err(stop) = self.exec(chid, pdb, env, ev, call) {
                    return stop;
                }
                ev.methods += 1;
                continue;
            }
            // Data of the current method header.
            if let (Some(h), Some((va, left))) = (self.channels[chid].hdr, self.channels[chid].seg)
            {
                if h.left > 0 && left > 0 {
                    let data = match Self::read_va(env, pdb, va) {
                        Ok(d) => d,
                        Err(e) => return self.pbdma_error(chid, env, e),
                    };
                    let c = &mut self.channels[chid];
                    c.seg = Some((va + 4, left - 1));
                    let addr = h.addr;
                    let mut next = h;
                    next.left -= 1;
                    match h.kind {
                        HeaderKind::Inc => next.addr += 1,
                        HeaderKind::OneInc if h.first => next.addr += 1,
                        _ => {}
                    }
                    next.first = false;
                    c.hdr = (next.left > 0).then_some(next);
                    if let Err(stop) =
                        self.exec(chid, pdb, env, ev, Call::new(h.subch, addr * 4, data))
                    {
                        return stop;
                    }
                    ev.methods += 1;
                    continue;
                }
                if h.left > 0 {
                    return Stop::Error(ErrorCode::InvalidPushbuffer, 1); // method data past the segment
                }
            }
            // The next header of the segment.
            if let Some((va, left)) = self.channels[chid].seg {
                if left == 0 {
                    self.channels[chid].seg = None;
                    continue;
                }
                let w = match Self::read_va(env, pdb, va) {
                    Ok(d) => d,
                    Err(e) => return self.pbdma_error(chid, env, e),
                };
                let c = &mut self.channels[chid];
                c.seg = Some((va + 4, left - 1));
                let count = (w >> 16) & 0x1fff;
                let subch = ((w >> 13) & 7) as u8;
                let addr = w & 0xfff;
                let kind = match w >> 29 {
                    1 => HeaderKind::Inc,
                    3 => HeaderKind::NonInc,
                    5 => HeaderKind::OneInc,
                    4 => {
                        // Immediate data: the method's data is in 28:16.
                        if let Err(stop) =
                            self.exec(chid, pdb, env, ev, Call::new(subch, addr * 4, count))
                        {
                            return stop;
                        }
                        ev.methods += 1;
                        continue;
                    }
                    7 => {
                        c.seg = None;
                        continue;
                    }
                    0 if count == 0 && w & 0x3_0000 == 0 => continue, // NOP
                    _ => return Stop::Error(ErrorCode::InvalidPushbuffer, w),
                };
                if count > 0 {
                    c.hdr = Some(Header {
                        kind,
                        subch,
                        addr,
                        left: count,
                        first: true,
                    });
                }
                continue;
            }
            // The next GPFIFO entry.
            let gp_put = env.mem.read_u32(userd.offset(0x8c));
            let base_lo = env.mem.read_u32(inst.offset(0x48));
            let base_hi = env.mem.read_u32(inst.offset(0x4c));
            let (Ok(gp_put), Ok(base_lo), Ok(base_hi)) = (gp_put, base_lo, base_hi) else {
                return Stop::Error(ErrorCode::BadPhysicalAccess, 2);
            };
            let entries = 1u32 << ((base_hi >> 16) & 0x1f);
            let gp_base = (u64::from(base_hi & 0xff) << 32) | u64::from(base_lo & !7);
            let c = &self.channels[chid];
            if gp_put >= entries {
                return Stop::Error(ErrorCode::InvalidPushbuffer, gp_put);
            }
            if c.gp_get == gp_put {
                return Stop::Idle;
            }
            let at = gp_base + u64::from(c.gp_get) * 8;
            let (e0, e1) = match (Self::read_va(env, pdb, at), Self::read_va(env, pdb, at + 4)) {
                (Ok(a), Ok(b)) => (a, b),
                (Err(e), _) | (_, Err(e)) => return self.pbdma_error(chid, env, e),
            };
            let c = &mut self.channels[chid];
            c.gp_get = (c.gp_get + 1) % entries;
            if env.mem.write_u32(userd.offset(0x88), c.gp_get).is_err() {
                return Stop::Error(ErrorCode::BadPhysicalAccess, 3);
            }
            let len = (e1 >> 10) & 0x1f_ffff;
            if len == 0 {
                if e1 & 0xff != 0 {
                    return Stop::Error(ErrorCode::InvalidPushbuffer, e1); // only NOP control entries
                }
                continue;
            }
            if e0 & 1 != 0 {
                return Stop::Error(ErrorCode::InvalidPushbuffer, e0); // conditional fetch
            }
            let va = (u64::from(e1 & 0xff) << 32) | u64::from(e0 & !3);
            c.seg = Some((va, len));
        }
        Stop::Idle
    }

    fn exec(
        &mut self,
        chid: usize,
        pdb: Option<Pdb>,
        env: &mut Env<'_>,
        ev: &mut Events,
        call: Call,
    ) -> Result<(), Stop> {
        let Call { subch, m, data } = call;
        if m < 0x100 {
            return self.host_method(chid, pdb, env, ev, call);
        }
        let class = self.channels[chid].subch[subch as usize];
        if class == compute::CLASS {
            return self.compute_method(chid, pdb, env, ev, call);
        }
        if class != ce::CLASS {
            return Err(Stop::Error(ErrorCode::InvalidMethod, m));
        }
        let c = &mut self.channels[chid];
        let mut ctx = ce::Context {
            mem: env.mem,
            tlb: env.tlb,
            pdb,
            privileged: false,
            now_ns: env.now_ns,
            read: Traffic::default(),
            write: Traffic::default(),
        };
        let result = c.ce.method(&mut ctx, m, data);
        env.now_ns += env.timing.copy_ns(ctx.read, ctx.write);
        match result {
            Ok(l) => {
                ev.ce_nonstall |= l.nonstall_interrupt;
                ev.stall |= l.stall_interrupt;
                Ok(())
            }
            Err(CeError::Fault {
                va,
                access,
                fault_type,
            }) => {
                c.retry = Some(call);
                Err(self.fault(
                    chid,
                    env,
                    FaultInfo::new(va, access, fault_type),
                    Source::Copy,
                ))
            }
            Err(CeError::Invalid(why)) => {
                log::warn!("channel {chid}: copy engine: {why}");
                Err(Stop::Error(ErrorCode::InvalidEncoding, m))
            }
            Err(CeError::Mem(e)) => {
                Err(Stop::Error(ErrorCode::BadPhysicalAccess, e.at.addr as u32))
            }
        }
    }

    fn compute_method(
        &mut self,
        chid: usize,
        pdb: Option<Pdb>,
        env: &mut Env<'_>,
        ev: &mut Events,
        call: Call,
    ) -> Result<(), Stop> {
        let Call { m, data, .. } = call;
        let invalid = |why: &str| {
            log::warn!("channel {chid}: compute: {why}");
            Stop::Error(ErrorCode::InvalidEncoding, m)
        };
        if m != compute::mthd::LAUNCH {
            return self.channels[chid].compute.method(m, data).map_err(invalid);
        }
        self.channels[chid].compute.launch(data).map_err(invalid)?;
        let replayable = self.replayable(chid, env.mem);
        let mut faults = Vec::new();
        let mut ctx = compute::Context {
            mem: env.mem,
            tlb: env.tlb,
            pdb,
            budget: COMPUTE_BUDGET,
            retired: 0,
            traffic: Traffic::default(),
        };
        let run = self.channels[chid].compute.run(&mut ctx, &mut |va, a, t| {
            faults.push(FaultInfo::new(va, a, t))
        });
        ev.instructions += ctx.retired;
        env.now_ns += env.timing.compute_ns(ctx.retired, ctx.traffic);
        for f in faults {
            self.report(chid, env, f, Source::Compute, replayable);
        }
        let c = &mut self.channels[chid];
        match run {
            Run::Done { interrupt } => {
                ev.compute_nonstall |= interrupt;
                Ok(())
            }
            Run::Yield => {
                c.retry = Some(call);
                Err(Stop::Yield)
            }
            Run::Stalled if replayable => {
                c.retry = Some(call);
                Err(Stop::Waiting)
            }
            Run::Stalled => {
                // Not replayable: fault and switch, like the copy engine;
                // once ENG_FAULTED is cleared the stalled accesses retry.
                c.retry = Some(call);
                c.compute.replay();
                c.eng_faulted = true;
                Err(Stop::Faulted)
            }
            Run::Error(why) => {
                log::warn!("channel {chid}: compute job failed: {why}");
                Err(Stop::Error(ErrorCode::JobFailed, m))
            }
            Run::Misaligned(va) => {
                log::warn!("channel {chid}: compute: misaligned access at {va:#x}");
                Err(Stop::ErrorAt(ErrorCode::Misaligned, va))
            }
        }
    }

    /// A semaphore access by the host (a PBDMA access: privileged).
    fn sem_access(
        env: &mut Env<'_>,
        pdb: Option<Pdb>,
        va: u64,
        access: Access,
    ) -> Result<Option<PhysAddr>, (u64, WalkError)> {
        let pdb = pdb.ok_or((va, WalkError::Fault(FaultType::UnboundInstBlock)))?;
        let t = env.tlb.translate(env.mem, pdb, va).map_err(|e| (va, e))?;
        t.check(access, true)
            .map_err(|f| (va, WalkError::Fault(f)))?;
        Ok(t.resolve(va))
    }

    fn host_method(
        &mut self,
        chid: usize,
        pdb: Option<Pdb>,
        env: &mut Env<'_>,
        ev: &mut Events,
        call: Call,
    ) -> Result<(), Stop> {
        let Call { subch, m, data: v } = call;
        let c = &mut self.channels[chid];
        match m {
            mthd::SET_OBJECT => {
                let class = v & 0xffff;
                let enabled = match class {
                    ce::CLASS => self.engines & rsvm_firmware::ENGINE_COPY != 0,
                    compute::CLASS => self.engines & rsvm_firmware::ENGINE_COMPUTE != 0,
                    _ => false,
                };
                let c = &mut self.channels[chid];
                if !enabled {
                    return Err(Stop::Error(ErrorCode::InvalidClass, class));
                }
                c.subch[subch as usize] = class;
            }
            mthd::NOP | mthd::WFI => {}
            mthd::NON_STALL_INTERRUPT => ev.nonstall = true,
            mthd::SET_REFERENCE => {
                let userd = c.userd.ok_or(Stop::Error(ErrorCode::InvalidInstance, 1))?;
                env.mem.write_u32(userd.offset(0x48), v)?;
            }
            mthd::SEM_ADDR_LO => c.sem_addr = (c.sem_addr & !0xffff_ffff) | u64::from(v & !3),
            mthd::SEM_ADDR_HI => {
                c.sem_addr = (c.sem_addr & 0xffff_ffff) | (u64::from(v & 0xff) << 32)
            }
            mthd::SEM_PAYLOAD_LO => c.sem_payload = (c.sem_payload & !0xffff_ffff) | u64::from(v),
            mthd::SEM_PAYLOAD_HI => {
                c.sem_payload = (c.sem_payload & 0xffff_ffff) | (u64::from(v) << 32)
            }
            mthd::SEM_EXECUTE => return self.sem_execute(chid, pdb, env, subch, v),
            mthd::MEM_OP_A | mthd::MEM_OP_B | mthd::MEM_OP_C => {
                c.mem_op[((m - mthd::MEM_OP_A) / 4) as usize] = v;
            }
            mthd::MEM_OP_D => {
                let [a, b, cc] = c.mem_op;
                self.mem_op(env, a, b, cc, v)?;
            }
            mthd::CLEAR_FAULTED => {
                let target = (v & 0xfff) as usize;
                let Some(t) = self.channels.get_mut(target) else {
                    return Err(Stop::Error(ErrorCode::InvalidEncoding, v));
                };
                if v & (1 << 31) != 0 {
                    t.eng_faulted = false;
                } else {
                    t.pbdma_faulted = false;
                }
                t.kicked = true;
            }
            _ => return Err(Stop::Error(ErrorCode::InvalidMethod, m)),
        }
        Ok(())
    }

    fn mem_op(&mut self, env: &mut Env<'_>, a: u32, b: u32, c: u32, d: u32) -> Result<(), Stop> {
        let pdb = || {
            let aperture = target(c >> 10).ok_or(Stop::Error(ErrorCode::InvalidEncoding, c))?;
            Ok::<_, Stop>(Pdb(PhysAddr {
                aperture,
                addr: (u64::from(d & 0x7ff_ffff) << 32) | u64::from(c & 0xffff_f000),
            }))
        };
        let all_pdb = c & 1 != 0;
        match d >> 27 {
            5 => {} // MEMBAR: the model is sequentially consistent
            9 => env.tlb.invalidate(if all_pdb {
                InvalidateScope::All
            } else {
                InvalidateScope::Pdb(pdb()?)
            }),
            0xa => {
                let va = (u64::from(b) << 32) | u64::from(a & 0xffff_f000);
                let size = SZ_4K << (a & 0x3f);
                let va = va & !(size - 1);
                let pdb = if all_pdb { None } else { Some(pdb()?) };
                env.tlb.invalidate(InvalidateScope::Range { pdb, va, size });
            }
            _ => return Err(Stop::Error(ErrorCode::InvalidEncoding, d)),
        }
        let va = (u64::from(b) << 32) | u64::from(a & 0xffff_f000);
        let scope = if all_pdb { None } else { Some(pdb()?) };
        self.replay((c >> 2) & 7, va, (c >> 7) & 7, scope, env.mem)
            .map_err(|code| Stop::Error(code, c))
    }

    fn sem_execute(
        &mut self,
        chid: usize,
        pdb: Option<Pdb>,
        env: &mut Env<'_>,
        subch: u8,
        v: u32,
    ) -> Result<(), Stop> {
        let (va, payload) = (
            self.channels[chid].sem_addr,
            self.channels[chid].sem_payload,
        );
        let wide = v & (1 << 24) != 0;
        let size = if wide { 8 } else { 4 };
        let op = v & 7;
        let access = match op {
            1 => Access::Write,
            6 => Access::Atomic,
            0..=5 => Access::Read,
            _ => return Err(Stop::Error(ErrorCode::InvalidEncoding, v)),
        };
        if va % size != 0 {
            return Err(Stop::Error(ErrorCode::InvalidEncoding, va as u32));
        }
        let pa = match Self::sem_access(env, pdb, va, access) {
            Ok(p) => p,
            Err((va, WalkError::Fault(t))) => {
                self.channels[chid].retry = Some(Call::new(subch, mthd::SEM_EXECUTE, v));
                return Err(self.fault(chid, env, FaultInfo::new(va, access, t), Source::Host));
            }
            Err((_, WalkError::Mem(_))) => {
                return Err(Stop::Error(ErrorCode::BadPhysicalAccess, 4))
            }
            Err((_, WalkError::Encoding(_))) => {
                return Err(Stop::Error(ErrorCode::InvalidEncoding, 5))
            }
        };
        let read = |env: &Env<'_>| -> Result<u64, Stop> {
            match pa {
                None => Ok(0),
                Some(p) if wide => Ok(env.mem.read_u64(p)?),
                Some(p) => Ok(u64::from(env.mem.read_u32(p)?)),
            }
        };
        let write = |env: &Env<'_>, x: u64| -> Result<(), Stop> {
            match pa {
                None => Ok(()),
                Some(p) if wide => Ok(env.mem.write_u64(p, x)?),
                Some(p) => Ok(env.mem.write_u32(p, x as u32)?),
            }
        };
        let mask = if wide { u64::MAX } else { 0xffff_ffff };
        let payload = payload & mask;
        match op {
            1 => {
                write(env, payload)?;
                if v & (1 << 25) != 0 {
                    // Timestamp: the 8 bytes after a 64-bit slot.
                    if let Some(p) = pa {
                        env.mem.write_u64(p.offset(8), env.now_ns)?;
                    }
                }
            }
            6 => {
                let old = read(env)?;
                let signed = v & (1 << 31) == 0;
                let sx = |x: u64| {
                    if wide {
                        x as i64
                    } else {
                        x as u32 as i32 as i64
                    }
                };
                let new = match (v >> 27) & 0xf {
                    0 if signed => sx(old).min(sx(payload)) as u64,
                    1 if signed => sx(old).max(sx(payload)) as u64,
                    0 => old.min(payload),
                    1 => old.max(payload),
                    2 => old ^ payload,
                    3 => old & payload,
                    4 => old | payload,
                    5 => old.wrapping_add(payload),
                    6 => {
                        if old >= payload {
                            0
                        } else {
                            old + 1
                        }
                    }
                    7 => {
                        if old == 0 || old > payload {
                            payload
                        } else {
                            old - 1
                        }
                    }
                    _ => return Err(Stop::Error(ErrorCode::InvalidEncoding, v)),
                };
                write(env, new & mask)?;
            }
            _ => {
                let cur = read(env)?;
                let ok = match op {
                    0 => cur == payload,
                    2 => cur >= payload,
                    3 => {
                        let d = cur.wrapping_sub(payload) & mask;
                        d & (mask ^ (mask >> 1)) == 0 // top bit clear: cur is "at or after" payload
                    }
                    4 => cur & payload != 0,
                    _ => (cur | payload) & mask != mask,
                };
                if !ok {
                    self.channels[chid].retry = Some(Call::new(subch, mthd::SEM_EXECUTE, v));
                    return Err(Stop::Blocked);
                }
            }
        }
        Ok(())
    }
}
