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
//!
//! This file holds the registers, channels, the runlist, scheduling and
//! fault replay; [`pbdma`] fetches GPFIFO entries and pushbuffers, [`host`]
//! executes host methods and hands engine methods to the engines.

use crate::ce::{self, CeError, CopyEngine};
use crate::compute::{self, ComputeEngine, Run};
use crate::fault::{client, engine, FaultEntry, FaultUnit, NON_REPLAYABLE};
use crate::mem::{Aperture, MemError, PhysAddr, PhysMem};
use crate::mmu::{Access, FaultType, InvalidateScope, Pdb, Tlb, WalkError, SZ_4K};
use crate::timing::{Timing, Traffic};

mod host;
mod pbdma;

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
}
