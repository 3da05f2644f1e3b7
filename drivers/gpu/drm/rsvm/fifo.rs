// SPDX-License-Identifier: GPL-2.0

//! Host (PFIFO): channel ids, the runlist and the registry of instance
//! blocks (`dev_fifo.ref`, `dev_ram.ref`).
//!
//! [`Fifo`] is generic over the owner of a channel (the VM whose faults it
//! takes, [`crate::vm::Vm`]): the fault router finds a channel's owner by
//! its instance block here, and this module never needs to know what an
//! owner is. Channels ([`channel`]), their pushbuffers ([`pushbuf`]) and
//! their fences and errors ([`fence`]) are in the submodules.
//!
//! Locking: `state` (a mutex) is taken before the spinlocks of
//! [`fence::Fences`], never under them; under it, register writes run in
//! [`Hw::regs`] and do not sleep.

use kernel::{
    bitfield,
    device::{
        Bound,
        Device, //
    },
    io::{
        register::Array,
        Io, //
    },
    new_mutex,
    prelude::*,
    sync::{
        Arc,
        Mutex, //
    },
    uapi, //
};

use crate::{
    hw::{
        Bar0,
        Hw, //
    },
    mem::DevMem,
    regs::{
        self,
        Target, //
    }, //
};

pub(crate) mod channel;
pub(crate) mod fence;
pub(crate) mod pushbuf;

/// Channels the host has.
pub(crate) const NUM_CHANNELS: usize = 512;
/// Channels one VM (one open file) may have.
pub(crate) const MAX_CHANNELS_PER_VM: usize = uapi::DRM_RSVM_MAX_CHANNELS_PER_FILE as usize;
/// Reads of `NV_PFIFO_PREEMPT` before a preempt that has not completed is
/// reported (the model completes it at once).
const PREEMPT_POLLS: usize = 1000;

bitfield! {
    /// Word 0 of a channel's runlist entry (`NV_RAMRL_ENTRY_CHAN`).
    struct RunlistUserd(u32) {
        /// `USERD_PTR_LO`: USERD bits 31:8.
        31:8 addr;
        7:6 target ?=> Target;
    }
}

bitfield! {
    /// Word 2 of a channel's runlist entry.
    struct RunlistInst(u32) {
        /// `INST_PTR_LO`: instance block bits 31:12.
        31:12 addr;
        /// `CHID`.
        11:0 chid;
    }
}

/// The runlist: 16 bytes per channel.
type Runlist = DevMem<u32, { NUM_CHANNELS * 4 }>;

/// Bits of a DMA address the host's pointers hold (instance blocks and the
/// runlist: a 28-bit page number): the narrowest address field of the
/// device, and so its DMA mask.
pub(crate) const DMA_BITS: u32 = 12
    + (regs::NV_PCCSR_CHANNEL_INST::PTR_MASK >> regs::NV_PCCSR_CHANNEL_INST::PTR_SHIFT)
        .count_ones();

/// The page number of a DMA address, for a 28-bit pointer field.
fn page_number(addr: u64) -> Result<u32> {
    u32::try_from(addr >> 12).map_err(|_| EINVAL)
}

/// A registered channel, as the runlist and the fault router see it.
struct ChanEntry<O> {
    owner: Arc<O>,
    inst: u64,
    userd: u64,
    live: bool,
    /// Which channel had this id: a fault served after its channel was
    /// destroyed must not touch a new channel with the same id.
    gen: u64,
}

/// One channel, as a fault names it: its id and which channel had the id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ChanRef {
    pub(crate) chid: u32,
    pub(crate) gen: u64,
}

/// Channel ids and the runlist, under the FIFO lock.
pub(crate) struct FifoState<O> {
    runlist: Runlist,
    chans: KVec<Option<ChanEntry<O>>>,
    /// The last [`ChanEntry::gen`] handed out.
    next_gen: u64,
}

impl<O> FifoState<O> {
    /// Reserves a channel id for a channel of `owner` (not scheduled until
    /// marked live).
    fn alloc(&mut self, owner: Arc<O>, inst: u64, userd: u64) -> Result<ChanRef> {
        let chid = self.chans.iter().position(Option::is_none).ok_or(ENOSPC)?;
        self.next_gen += 1;
        self.chans[chid] = Some(ChanEntry {
            owner,
            inst,
            userd,
            live: false,
            gen: self.next_gen,
        });
        Ok(ChanRef {
            chid: chid as u32,
            gen: self.next_gen,
        })
    }

    /// Releases a channel id.
    fn free(&mut self, chid: u32) {
        if let Some(e) = self.chans.get_mut(chid as usize) {
            *e = None;
        }
    }

    /// Marks a channel live or not; returns whether it was.
    fn set_live(&mut self, chid: u32, live: bool) -> Result<bool> {
        let e = self
            .chans
            .get_mut(chid as usize)
            .and_then(Option::as_mut)
            .ok_or(EINVAL)?;
        Ok(core::mem::replace(&mut e.live, live))
    }

    /// Rewrites and submits the runlist: every live channel.
    fn submit_runlist(&self, bar: &Bar0<'_>) -> Result {
        let mut n = 0usize;
        for (chid, e) in self.chans.iter().enumerate() {
            let Some(e) = e.as_ref().filter(|e| e.live) else {
                continue;
            };
            let userd = RunlistUserd::zeroed()
                .with_target(Target::SysMemCoherent)
                .try_with_addr((e.userd as u32) >> 8)?;
            let inst = RunlistInst::zeroed()
                .try_with_addr((e.inst as u32) >> 12)?
                .try_with_chid(chid as u32)?;
            let at = 4 * n;
            self.runlist.set(at, userd.into_raw());
            self.runlist.set(at + 1, (e.userd >> 32) as u32);
            self.runlist.set(at + 2, inst.into_raw());
            self.runlist.set(at + 3, (e.inst >> 32) as u32);
            n += 1;
        }
        bar.write_reg(
            regs::NV_PFIFO_RUNLIST_BASE::zeroed()
                .with_target(regs::Target::SysMemCoherent)
                .try_with_ptr(page_number(self.runlist.addr())?)?,
        );
        bar.write_reg(regs::NV_PFIFO_RUNLIST::zeroed().try_with_length(n as u32)?);
        Ok(())
    }

    /// The channel and owner of the instance block at `inst` (from a fault).
    pub(crate) fn lookup(&self, inst: u64) -> Option<(ChanRef, Arc<O>)> {
        self.chans.iter().enumerate().find_map(|(chid, e)| {
            let e = e.as_ref()?;
            (e.live && e.inst == inst).then(|| {
                let chid = chid as u32;
                (ChanRef { chid, gen: e.gen }, e.owner.clone())
            })
        })
    }

    /// Channel ids taken (by live channels, and by channels still being
    /// created or destroyed).
    pub(crate) fn channels(&self) -> usize {
        self.chans.iter().flatten().count()
    }

    /// Whether `c` is still the live channel with its id.
    pub(crate) fn is_current(&self, c: ChanRef) -> bool {
        self.chans
            .get(c.chid as usize)
            .and_then(Option::as_ref)
            .is_some_and(|e| e.live && e.gen == c.gen)
    }
}

/// The host of one GPU: channel ids, the runlist, fences and errors.
#[pin_data]
pub(crate) struct Fifo<O> {
    hw: Arc<Hw>,
    #[pin]
    state: Mutex<FifoState<O>>,
    #[pin]
    pub(crate) fences: fence::Fences,
}

impl<O> Fifo<O> {
    pub(crate) fn new(dev: &Device<Bound>, hw: &Arc<Hw>) -> Result<Arc<Self>> {
        let mut chans = KVec::with_capacity(NUM_CHANNELS, GFP_KERNEL)?;
        for _ in 0..NUM_CHANNELS {
            chans.push(None, GFP_KERNEL)?;
        }
        let state = FifoState {
            runlist: Runlist::new(dev)?,
            chans,
            next_gen: 0,
        };
        Arc::pin_init(
            try_pin_init!(Self {
                hw: hw.clone(),
                state <- new_mutex!(state),
                fences <- fence::Fences::new()?,
            }),
            GFP_KERNEL,
        )
    }

    /// The register file.
    pub(crate) fn hw(&self) -> &Arc<Hw> {
        &self.hw
    }

    /// Takes the FIFO lock.
    pub(crate) fn lock(&self) -> kernel::sync::MutexGuard<'_, FifoState<O>> {
        self.state.lock()
    }

    /// Stops and unbinds every channel and submits an empty runlist
    /// (device unbind).
    pub(crate) fn stop_all(&self) {
        let mut st = self.state.lock();
        self.hw.regs(|bar| {
            for (chid, e) in st.chans.iter_mut().enumerate() {
                if let Some(e) = e.as_mut().filter(|e| e.live) {
                    stop_channel(bar, chid as u32);
                    e.live = false;
                }
            }
            if let Err(e) = st.submit_runlist(bar) {
                pr_warn!("rsvm: cannot submit the runlist: {:?}\n", e);
            }
        });
    }

    /// Disables channel `chid` and preempts it off the GPU: it runs nothing
    /// more (its error says why); it stays bound until it is destroyed.
    pub(crate) fn disable_channel(&self, chid: u32) {
        self.hw.regs(|bar| disable_channel(bar, chid));
    }

    /// Clears the `ENG_FAULTED`/`PBDMA_FAULTED` of a channel whose
    /// non-replayable fault was served: the unit re-runs what faulted.
    pub(crate) fn restart_channel(&self, chid: u32) {
        self.hw.regs(|bar| {
            if let Some(loc) = regs::NV_PCCSR_CHANNEL::try_at(chid as usize) {
                bar.write(
                    loc,
                    regs::NV_PCCSR_CHANNEL::zeroed()
                        .with_eng_faulted(true)
                        .with_pbdma_faulted(true),
                );
            }
        });
    }
}

/// Disables a channel and preempts it off the engines, without sleeping
/// (it runs under [`Hw::regs`]).
fn disable_channel(bar: &Bar0<'_>, chid: u32) {
    if let Some(loc) = regs::NV_PCCSR_CHANNEL::try_at(chid as usize) {
        bar.write(loc, regs::NV_PCCSR_CHANNEL::zeroed().with_enable_clr(true));
    }
    if let Ok(p) = regs::NV_PFIFO_PREEMPT::zeroed().try_with_id(chid) {
        bar.write_reg(p);
        if !(0..PREEMPT_POLLS).any(|_| !bar.read(regs::NV_PFIFO_PREEMPT).pending()) {
            pr_warn!("rsvm: preempt of channel {} did not complete\n", chid);
        }
    }
}

/// Stops a channel's engines (disable, then preempt) and unbinds its
/// instance block.
fn stop_channel(bar: &Bar0<'_>, chid: u32) {
    disable_channel(bar, chid);
    if let Some(loc) = regs::NV_PCCSR_CHANNEL_INST::try_at(chid as usize) {
        bar.write(loc, regs::NV_PCCSR_CHANNEL_INST::zeroed());
    }
}
