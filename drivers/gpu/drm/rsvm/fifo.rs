// SPDX-License-Identifier: GPL-2.0

//! Host (PFIFO): channel ids, the runlist, channels and job submission
//! (`dev_fifo.ref`, `dev_ram.ref`, `clc36f.h`).
//!
//! A channel's GPFIFO ring, pushbuffer slots and fence live in driver-owned
//! coherent memory, mapped privileged into the channel's VM at a window the
//! kernel keeps (`KERNEL_VA_START`): the PBDMA fetches through the VM and
//! its faults cannot be replayed, so the command stream is never pageable
//! user memory. A job's pushbuffer is copied from the user, checked, and
//! followed by a semaphore release of the job's sequence number and a
//! non-stall interrupt, which wakes the waiters.

use kernel::{
    device::{Bound, Device},
    io::{register::Array, Io},
    new_mutex,
    prelude::*,
    sync::{Arc, Mutex},
    time::msecs_to_jiffies,
    uapi,
};

use crate::{
    gpu::{Bar0, Hw},
    hmm::Vm,
    mem::DmaBuf,
    regs,
};

/// Channels the host has.
pub(crate) const NUM_CHANNELS: usize = 512;
/// Channels one VM (one open file) may have.
pub(crate) const MAX_CHANNELS_PER_VM: usize = uapi::DRM_RSVM_MAX_CHANNELS_PER_FILE as usize;
/// Reads of `NV_PFIFO_PREEMPT` before a preempt that has not completed is
/// reported (the model completes it at once).
const PREEMPT_POLLS: usize = 1000;

/// GPU virtual addresses the kernel keeps for channel rings and fences:
/// the top 4 GiB of the 40-bit range that GPFIFO and semaphore addresses
/// can reach.
pub(crate) const KERNEL_VA_START: u64 = 0xff_0000_0000;
/// Size of the kernel's window.
pub(crate) const KERNEL_VA_SIZE: u64 = 1 << 32;
/// Each channel id owns this much of the window.
const CHANNEL_VA_STRIDE: u64 = 2 << 20;

/// Offsets inside a channel's window.
const GPFIFO_OFFSET: u64 = 0;
const FENCE_OFFSET: u64 = 0x1000;
const SLOTS_OFFSET: u64 = 0x1_0000;

/// GPFIFO entries (a power of two; 8 bytes each, one page).
const GPFIFO_ENTRIES: u32 = 512;
const GPFIFO_LOG2: u32 = GPFIFO_ENTRIES.ilog2();
const _: () = assert!(GPFIFO_ENTRIES.is_power_of_two());
/// Jobs in flight per channel, one pushbuffer slot each.
const PB_SLOTS: u64 = 8;
/// Bytes per pushbuffer slot.
const PB_SLOT_SIZE: usize = 16 << 10;
/// Dwords the kernel appends to a job (fence release, interrupt).
const TRAILER_DWORDS: usize = 8;
// The largest job and the kernel's trailer fit one slot.
const _: () = assert!(uapi::DRM_RSVM_EXEC_MAX_DWORDS as usize + TRAILER_DWORDS <= PB_SLOT_SIZE / 4);
/// How long a submission waits for ring space.
const RING_WAIT_MS: u32 = 10_000;

/// Offset of the instance block's page directory (`NV_RAMIN_PAGE_DIR_BASE`).
const RAMIN_PDB: usize = 0x200;
/// RAMFC `GP_BASE` / `GP_BASE_HI`.
const RAMFC_GP_BASE: usize = 0x48;
const RAMFC_GP_BASE_HI: usize = 0x4c;
/// USERD `GP_PUT`.
const USERD_GP_PUT: usize = 0x8c;
/// Target "system memory, coherent" in instance, runlist and USERD fields.
const TARGET_SYS_COHERENT: u32 = 2;

/// Host methods (`clc36f.h`).
mod mthd {
    pub(super) const SET_OBJECT: u32 = 0x000;
    pub(super) const NOP: u32 = 0x008;
    pub(super) const NON_STALL_INTERRUPT: u32 = 0x020;
    pub(super) const SET_REFERENCE: u32 = 0x050;
    pub(super) const SEM_ADDR_LO: u32 = 0x05c;
    pub(super) const SEM_ADDR_HI: u32 = 0x060;
    pub(super) const SEM_PAYLOAD_LO: u32 = 0x064;
    pub(super) const SEM_PAYLOAD_HI: u32 = 0x068;
    pub(super) const SEM_EXECUTE: u32 = 0x06c;
    pub(super) const WFI: u32 = 0x078;
    /// First method of the engine's class (below: host methods).
    pub(super) const ENGINE_BASE: u32 = 0x100;
    /// Copy engine `LAUNCH_DMA` (`clc3b5.h`).
    pub(super) const CE_LAUNCH_DMA: u32 = 0x300;
}

/// `SEM_EXECUTE`: release, 64-bit payload.
const SEM_RELEASE_64: u32 = 1 | (1 << 24);
/// `LAUNCH_DMA` SRC/DST_TYPE physical.
const CE_LAUNCH_PHYSICAL: u32 = (1 << 12) | (1 << 13);
const CLASS_COMPUTE: u32 = 0x52c0;
const CLASS_COPY: u32 = 0xc3b5;

/// A method header (`NV_FIFO_DMA_*`): `kind` 1 INC, 3 NON_INC, 4 IMMD,
/// 5 ONE_INC.
const fn header(kind: u32, subch: u32, method: u32, count: u32) -> u32 {
    (kind << 29) | (count << 16) | (subch << 13) | (method >> 2)
}

/// A registered channel, as the runlist and the fault handler see it.
struct ChanEntry {
    vm: Arc<Vm>,
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

/// Channel ids and the runlist.
pub(crate) struct Fifo {
    runlist: DmaBuf,
    chans: KVec<Option<ChanEntry>>,
    /// The last [`ChanEntry::gen`] handed out.
    next_gen: u64,
}

impl Fifo {
    pub(crate) fn new(dev: &Device<Bound>) -> Result<Self> {
        let mut chans = KVec::with_capacity(NUM_CHANNELS, GFP_KERNEL)?;
        for _ in 0..NUM_CHANNELS {
            chans.push(None, GFP_KERNEL)?;
        }
        Ok(Self {
            runlist: DmaBuf::new(dev, NUM_CHANNELS * 16)?,
            chans,
            next_gen: 0,
        })
    }

    /// Reserves a channel id for a channel of `vm` (not scheduled until
    /// marked live).
    fn alloc(&mut self, vm: Arc<Vm>, inst: u64, userd: u64) -> Result<u32> {
        let chid = self.chans.iter().position(Option::is_none).ok_or(ENOSPC)?;
        self.next_gen += 1;
        self.chans[chid] = Some(ChanEntry {
            vm,
            inst,
            userd,
            live: false,
            gen: self.next_gen,
        });
        Ok(chid as u32)
    }

    /// Rewrites and submits the runlist: every live channel.
    fn submit_runlist(&self, bar: &Bar0<'_>) {
        let mut n = 0usize;
        for (chid, e) in self.chans.iter().enumerate() {
            let Some(e) = e.as_ref().filter(|e| e.live) else {
                continue;
            };
            let at = 16 * n;
            self.runlist.write32(
                at,
                (TARGET_SYS_COHERENT << 6) | (e.userd as u32 & 0xffff_ff00),
            );
            self.runlist.write32(at + 4, (e.userd >> 32) as u32);
            self.runlist
                .write32(at + 8, chid as u32 | (e.inst as u32 & 0xffff_f000));
            self.runlist.write32(at + 12, (e.inst >> 32) as u32);
            n += 1;
        }
        let base = self.runlist.addr();
        bar.write_reg(
            regs::NV_PFIFO_RUNLIST_BASE::zeroed()
                .with_target(kernel::num::Bounded::<u32, 2>::new::<TARGET_SYS_COHERENT>())
                .try_with_ptr((base >> 12) as u32)
                .unwrap_or_else(|_| regs::NV_PFIFO_RUNLIST_BASE::zeroed()),
        );
        bar.write_reg(regs::NV_PFIFO_RUNLIST::from(n as u32));
    }

    /// Stops and unbinds every channel and submits an empty runlist.
    pub(crate) fn stop_all(&mut self, bar: &Bar0<'_>) {
        for (chid, e) in self.chans.iter_mut().enumerate() {
            if let Some(e) = e.as_mut().filter(|e| e.live) {
                stop_channel(bar, chid as u32);
                e.live = false;
            }
        }
        self.submit_runlist(bar);
    }

    /// The channel and VM of the instance block at `inst` (from a fault).
    pub(crate) fn lookup(&self, inst: u64) -> Option<(ChanRef, Arc<Vm>)> {
        self.chans.iter().enumerate().find_map(|(chid, e)| {
            let e = e.as_ref()?;
            (e.live && e.inst == inst).then(|| {
                let chid = chid as u32;
                (ChanRef { chid, gen: e.gen }, e.vm.clone())
            })
        })
    }

    /// Whether `c` is still the live channel with its id.
    pub(crate) fn is_current(&self, c: ChanRef) -> bool {
        self.chans
            .get(c.chid as usize)
            .and_then(Option::as_ref)
            .is_some_and(|e| e.live && e.gen == c.gen)
    }
}

/// Submission state of a channel.
struct Submit {
    /// Next GPFIFO entry.
    put: u32,
    /// Sequence number of the next job.
    next_seq: u64,
}

/// A channel: instance block, USERD, GPFIFO ring, pushbuffer slots, fence.
#[pin_data(PinnedDrop)]
pub(crate) struct Channel {
    hw: Arc<Hw>,
    vm: Arc<Vm>,
    chid: u32,
    inst: DmaBuf,
    userd: DmaBuf,
    gpfifo: DmaBuf,
    fence: DmaBuf,
    slots: KVec<DmaBuf>,
    #[pin]
    submit: Mutex<Submit>,
}

impl Channel {
    /// Creates, binds and schedules a channel in `vm`.
    pub(crate) fn new(dev: &Device<Bound>, hw: &Arc<Hw>, vm: &Arc<Vm>) -> Result<Arc<Self>> {
        let mut slots = KVec::with_capacity(PB_SLOTS as usize, GFP_KERNEL)?;
        for _ in 0..PB_SLOTS {
            slots.push(DmaBuf::new(dev, PB_SLOT_SIZE)?, GFP_KERNEL)?;
        }
        let (inst, userd) = (DmaBuf::new(dev, 4096)?, DmaBuf::new(dev, 4096)?);
        let (gpfifo, fence) = (DmaBuf::new(dev, 4096)?, DmaBuf::new(dev, 4096)?);
        let chid = hw
            .fifo
            .lock()
            .alloc(vm.clone(), inst.addr(), userd.addr())?;
        // An error latched for an earlier channel with this id is not ours.
        hw.clear_channel_error(chid);
        // From here on, dropping the channel releases the id and unmaps.
        let ch = Arc::pin_init(
            try_pin_init!(Self {
                hw: hw.clone(),
                vm: vm.clone(),
                chid,
                inst,
                userd,
                gpfifo,
                fence,
                slots,
                submit <- new_mutex!(Submit { put: 0, next_seq: 1 }),
            }),
            GFP_KERNEL,
        )
        .inspect_err(|_| {
            if let Some(e) = hw.fifo.lock().chans.get_mut(chid as usize) {
                *e = None;
            }
        })?;
        ch.start(dev)?;
        Ok(ch)
    }

    /// Base of this channel's kernel window.
    fn kva(&self) -> u64 {
        KERNEL_VA_START + u64::from(self.chid) * CHANNEL_VA_STRIDE
    }

    fn start(&self, dev: &Device<Bound>) -> Result {
        let kva = self.kva();
        let mut bufs = KVec::with_capacity(2 + self.slots.len(), GFP_KERNEL)?;
        bufs.push((kva + GPFIFO_OFFSET, &self.gpfifo), GFP_KERNEL)?;
        bufs.push((kva + FENCE_OFFSET, &self.fence), GFP_KERNEL)?;
        for (i, s) in self.slots.iter().enumerate() {
            let va = kva + SLOTS_OFFSET + (i * PB_SLOT_SIZE) as u64;
            bufs.push((va, s), GFP_KERNEL)?;
        }
        self.vm.map_kernel(dev, &bufs)?;

        // Instance block: page directory and RAMFC.
        let pdb = self.vm.pdb();
        self.inst.write32(
            RAMIN_PDB,
            (pdb as u32 & 0xffff_f000)
                | TARGET_SYS_COHERENT
                | (3 << 4) // FAULT_REPLAY_TEX | FAULT_REPLAY_GCC
                | (1 << 10) // USE_VER2_PT_FORMAT
                | (1 << 11), // BIG_PAGE_SIZE 64 KiB
        );
        self.inst.write32(RAMIN_PDB + 4, (pdb >> 32) as u32);
        let gpva = kva + GPFIFO_OFFSET;
        self.inst.write32(RAMFC_GP_BASE, gpva as u32);
        self.inst.write32(
            RAMFC_GP_BASE_HI,
            ((gpva >> 32) as u32 & 0xff) | (GPFIFO_LOG2 << 16),
        );

        // The first segment binds the engines to their subchannels.
        let mut init = KVec::new();
        if self.hw.has_compute() {
            let sub = uapi::DRM_RSVM_SUBCHANNEL_COMPUTE;
            init.push(header(1, sub, mthd::SET_OBJECT, 1), GFP_KERNEL)?;
            init.push(CLASS_COMPUTE, GFP_KERNEL)?;
        }
        if self.hw.has_copy() {
            let sub = uapi::DRM_RSVM_SUBCHANNEL_COPY;
            init.push(header(1, sub, mthd::SET_OBJECT, 1), GFP_KERNEL)?;
            init.push(CLASS_COPY, GFP_KERNEL)?;
        }
        // The init methods live in the fence page, past the fence.
        let init_off = 0x100;
        for (i, w) in init.iter().enumerate() {
            self.fence.write32(init_off + 4 * i, *w);
        }

        let inst = self.inst.addr();
        let chid = self.chid as usize;
        self.hw
            .regs(|bar| -> Result {
                let loc = regs::NV_PCCSR_CHANNEL_INST::try_at(chid).ok_or(EINVAL)?;
                bar.write(
                    loc,
                    regs::NV_PCCSR_CHANNEL_INST::zeroed()
                        .with_bind(true)
                        .with_target(kernel::num::Bounded::<u32, 2>::new::<TARGET_SYS_COHERENT>())
                        .try_with_ptr((inst >> 12) as u32)?,
                );
                let loc = regs::NV_PCCSR_CHANNEL::try_at(chid).ok_or(EINVAL)?;
                bar.write(loc, regs::NV_PCCSR_CHANNEL::zeroed().with_enable_set(true));
                Ok(())
            })
            .ok_or(ENODEV)??;
        {
            let mut fifo = self.hw.fifo.lock();
            let e = fifo
                .chans
                .get_mut(chid)
                .and_then(Option::as_mut)
                .ok_or(EINVAL)?;
            e.live = true;
            self.hw.regs(|bar| fifo.submit_runlist(bar)).ok_or(ENODEV)?;
        }
        let mut s = self.submit.lock();
        if !init.is_empty() {
            self.push_entry(&mut s, kva + FENCE_OFFSET + init_off as u64, init.len());
        }
        Ok(())
    }

    /// Queues a GPFIFO entry for `dwords` at `va` and rings the doorbell.
    fn push_entry(&self, s: &mut Submit, va: u64, dwords: usize) {
        let e = 8 * s.put as usize;
        self.gpfifo.write32(e, va as u32 & !3);
        self.gpfifo
            .write32(e + 4, ((va >> 32) as u32 & 0xff) | ((dwords as u32) << 10));
        s.put = (s.put + 1) % GPFIFO_ENTRIES;
        self.userd.write32(USERD_GP_PUT, s.put);
        let chid = self.chid;
        self.hw.regs(|bar| {
            bar.write_reg(regs::NV_USERMODE_NOTIFY_CHANNEL_PENDING::from(chid));
        });
    }

    /// Sequence number of the last job that completed.
    pub(crate) fn completed(&self) -> u64 {
        self.fence.read64(0)
    }

    /// Sequence number of the last job submitted.
    pub(crate) fn submitted(&self) -> u64 {
        self.submit.lock().next_seq - 1
    }

    /// The channel's first error, `(DRM_RSVM_ERROR_*, info)`.
    pub(crate) fn error(&self) -> Option<(u32, u64)> {
        self.hw.channel_error(self.chid)
    }

    /// Waits until job `seq` completed (`Ok(true)`) or the channel stopped
    /// on an error (`Ok(false)`); `ETIME` after `timeout`.
    fn wait_done(&self, seq: u64, timeout: kernel::time::Jiffies) -> Result<bool> {
        self.hw.wait_fence(
            timeout,
            || self.completed() >= seq,
            || self.error().is_some(),
        )
    }

    /// Checks and queues a job of at most `DRM_RSVM_EXEC_MAX_DWORDS`
    /// dwords; returns its sequence number.
    pub(crate) fn exec(&self, push: &[u32]) -> Result<u64> {
        if push.len() > uapi::DRM_RSVM_EXEC_MAX_DWORDS as usize {
            return Err(EINVAL);
        }
        check_push(push)?;
        let mut s = self.submit.lock();
        if self.error().is_some() {
            return Err(EIO);
        }
        let seq = s.next_seq;
        if seq > PB_SLOTS {
            // The slot's previous job must be done.
            match self.wait_done(seq - PB_SLOTS, msecs_to_jiffies(RING_WAIT_MS)) {
                Ok(true) => {}
                Ok(false) => return Err(EIO),
                Err(e) if e == ETIME => return Err(EBUSY),
                Err(e) => return Err(e),
            }
        }
        let slot_index = (seq % PB_SLOTS) as usize;
        let slot = &self.slots[slot_index];
        for (i, w) in push.iter().enumerate() {
            slot.write32(4 * i, *w);
        }
        let fence_va = self.kva() + FENCE_OFFSET;
        let trailer: [u32; TRAILER_DWORDS] = [
            header(1, 0, mthd::SEM_ADDR_LO, 5),
            fence_va as u32,
            (fence_va >> 32) as u32,
            seq as u32,
            (seq >> 32) as u32,
            SEM_RELEASE_64,
            header(1, 0, mthd::NON_STALL_INTERRUPT, 1),
            0,
        ];
        for (i, w) in trailer.iter().enumerate() {
            slot.write32(4 * (push.len() + i), *w);
        }
        let va = self.kva() + SLOTS_OFFSET + (slot_index * PB_SLOT_SIZE) as u64;
        self.push_entry(&mut s, va, push.len() + TRAILER_DWORDS);
        s.next_seq += 1;
        Ok(seq)
    }

    /// Waits for job `seq`: `Ok(())` when it completed, `EIO` when the
    /// channel stopped first, `ETIME` on timeout.
    pub(crate) fn wait(&self, seq: u64, timeout: kernel::time::Jiffies) -> Result {
        if seq == 0 || seq > self.submitted() {
            return Err(EINVAL);
        }
        match self.wait_done(seq, timeout)? {
            true => Ok(()),
            false => Err(EIO),
        }
    }
}

#[pinned_drop]
impl PinnedDrop for Channel {
    fn drop(self: Pin<&mut Self>) {
        // Stopped and off the runlist, but the id stays taken: a channel
        // made with it now would map its ring where this one's still is.
        {
            let mut fifo = self.hw.fifo.lock();
            let was_live = fifo
                .chans
                .get_mut(self.chid as usize)
                .and_then(Option::as_mut)
                .is_some_and(|e| core::mem::replace(&mut e.live, false));
            self.hw.regs(|bar| {
                stop_channel(bar, self.chid);
                if was_live {
                    fifo.submit_runlist(bar);
                }
            });
        }
        // Unmapped and flushed from the TLB: only now may the id be reused.
        self.vm.unmap_kernel(self.kva(), CHANNEL_VA_STRIDE);
        if let Some(e) = self.hw.fifo.lock().chans.get_mut(self.chid as usize) {
            *e = None;
        }
    }
}

/// Disables a channel and preempts it off the engines, without sleeping
/// (it runs under [`Hw::regs`]).
pub(crate) fn disable_channel(bar: &Bar0<'_>, chid: u32) {
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

/// Method state a job's check tracks.
#[derive(Default)]
struct SemState {
    lo: Option<u32>,
    hi: Option<u32>,
}

/// Whether userspace may send `data` to `method` of `subch`.
fn check_method(subch: u32, method: u32, data: u32, sem: &mut SemState) -> Result {
    if method < mthd::ENGINE_BASE {
        return match method {
            mthd::NOP | mthd::NON_STALL_INTERRUPT | mthd::SET_REFERENCE | mthd::WFI => Ok(()),
            mthd::SEM_PAYLOAD_LO | mthd::SEM_PAYLOAD_HI => Ok(()),
            mthd::SEM_ADDR_LO => {
                sem.lo = Some(data);
                Ok(())
            }
            mthd::SEM_ADDR_HI => {
                sem.hi = Some(data);
                Ok(())
            }
            mthd::SEM_EXECUTE => {
                let (Some(lo), Some(hi)) = (sem.lo, sem.hi) else {
                    return Err(EINVAL);
                };
                // Semaphore addresses have 40 bits: refuse what the host
                // would silently truncate.
                if hi > 0xff {
                    return Err(EINVAL);
                }
                let addr = (u64::from(hi) << 32) | u64::from(lo & !3);
                // The payload and the timestamp after it: 16 bytes.
                if addr + 16 > KERNEL_VA_START {
                    return Err(EINVAL);
                }
                Ok(())
            }
            // SET_OBJECT, MEM_OP (TLB and fault control), CLEAR_FAULTED and
            // everything else is the kernel's.
            _ => Err(EINVAL),
        };
    }
    match subch {
        uapi::DRM_RSVM_SUBCHANNEL_COMPUTE => Ok(()),
        uapi::DRM_RSVM_SUBCHANNEL_COPY => {
            if method == mthd::CE_LAUNCH_DMA && data & CE_LAUNCH_PHYSICAL != 0 {
                return Err(EINVAL);
            }
            Ok(())
        }
        _ => Err(EINVAL),
    }
}

/// Checks a user pushbuffer: well-formed headers, and only methods a user
/// may send (see `check_method`).
fn check_push(words: &[u32]) -> Result {
    let mut sem = SemState::default();
    let mut i = 0;
    while i < words.len() {
        let w = words[i];
        i += 1;
        if w == 0 {
            continue;
        }
        let kind = w >> 29;
        let count = ((w >> 16) & 0x1fff) as usize;
        let subch = (w >> 13) & 7;
        let method = (w & 0xfff) << 2;
        match kind {
            // IMMD: the data is the count field.
            4 => check_method(subch, method, count as u32, &mut sem)?,
            1 | 3 | 5 => {
                let data = words.get(i..i + count).ok_or(EINVAL)?;
                if count == 0 {
                    return Err(EINVAL);
                }
                for (k, d) in data.iter().enumerate() {
                    let m = match (kind, k) {
                        (1, k) => method + 4 * k as u32,
                        (5, 0) | (3, _) => method,
                        _ => method + 4,
                    };
                    check_method(subch, m, *d, &mut sem)?;
                }
                i += count;
            }
            _ => return Err(EINVAL),
        }
    }
    Ok(())
}
