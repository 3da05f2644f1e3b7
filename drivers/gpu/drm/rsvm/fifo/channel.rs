// SPDX-License-Identifier: GPL-2.0

//! A channel: its instance block and RAMFC, USERD, GPFIFO ring, pushbuffer
//! slots and fence (`dev_ram.ref`, `clc36f.h`).
//!
//! A channel's GPFIFO ring, pushbuffer slots and fence live in driver-owned
//! coherent memory, mapped privileged into the channel's address space in
//! the kernel window its creator names ([`KernelWindow`]; the VM's layout
//! places it, [`crate::vm::layout`]): the PBDMA fetches through the
//! address space and its faults cannot be replayed, so the command stream is
//! never pageable user memory. A job's pushbuffer is copied from the user,
//! checked, and followed by a semaphore release of the job's sequence number
//! and a non-stall interrupt, which wakes the waiters.
//!
//! Locking: `submit` is taken before the FIFO lock and the fence spinlocks.

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
    time::{
        msecs_to_jiffies,
        Jiffies, //
    },
    uapi, //
};

use super::{
    pushbuf::{
        self,
        mthd,
        Header, //
    },
    ChanRef,
    Fifo, //
};
use crate::{
    ce,
    mem::{
        DevMem,
        Dwords,
        Qwords, //
    },
    mmu::AddressSpace,
    regs::{
        self,
        Target, //
    }, //
};

/// Offsets inside a channel's window.
const GPFIFO_OFFSET: u64 = 0;
const FENCE_OFFSET: u64 = 0x1000;
const INIT_OFFSET: u64 = 0x2000;
const SLOTS_OFFSET: u64 = 0x1_0000;

/// GPFIFO entries (a power of two; 8 bytes each, one page).
const GPFIFO_ENTRIES: u32 = 512;
const GPFIFO_LOG2: u32 = GPFIFO_ENTRIES.ilog2();
const _: () = assert!(GPFIFO_ENTRIES.is_power_of_two());
/// Jobs in flight per channel, one pushbuffer slot each.
const PB_SLOTS: u64 = 8;
/// Bytes per pushbuffer slot.
const PB_SLOT_SIZE: usize = 16 << 10;
/// A pushbuffer slot.
type Slot = DevMem<u32, { PB_SLOT_SIZE / 4 }>;
/// Dwords the kernel appends to a job (fence release, interrupt).
const TRAILER_DWORDS: usize = 8;
// The largest job and the kernel's trailer fit one slot.
const _: () = assert!(uapi::DRM_RSVM_EXEC_MAX_DWORDS as usize + TRAILER_DWORDS <= PB_SLOT_SIZE / 4);
/// Bytes of a channel's window its buffers take.
pub(crate) const WINDOW_BYTES: u64 = SLOTS_OFFSET + PB_SLOTS * PB_SLOT_SIZE as u64;
/// How long a submission waits for ring space.
const RING_WAIT_MS: u32 = 10_000;

/// The instance block (`dev_ram.ref`), by 32-bit word: the RAMFC's
/// `GP_BASE` and `GP_BASE_HI`, then `NV_RAMIN_PAGE_DIR_BASE_LO`/`_HI`.
mod ramin {
    pub(super) const RAMFC_GP_BASE: usize = 0x48 / 4;
    pub(super) const RAMFC_GP_BASE_HI: usize = 0x4c / 4;
    pub(super) const PAGE_DIR_BASE_LO: usize = 0x200 / 4;
    pub(super) const PAGE_DIR_BASE_HI: usize = 0x204 / 4;
}
/// USERD `GP_PUT`, by 32-bit word.
const USERD_GP_PUT: usize = 0x8c / 4;

bitfield! {
    /// `NV_RAMIN_PAGE_DIR_BASE_LO`: the address space a channel runs in.
    struct PageDirBase(u32) {
        /// Page directory bits 31:12 (bits 63:32 are `_HI`).
        31:12 addr;
        /// `BIG_PAGE_SIZE`: 1 is 64 KiB (Volta takes no other).
        11:11 big_page_64k => bool;
        /// `USE_VER2_PT_FORMAT`.
        10:10 ver2 => bool;
        /// `FAULT_REPLAY_GCC`: faults of constant loads are replayable.
        5:5 fault_replay_gcc => bool;
        /// `FAULT_REPLAY_TEX`: faults of memory loads and stores are
        /// replayable.
        4:4 fault_replay_tex => bool;
        1:0 target ?=> Target;
    }
}

bitfield! {
    /// RAMFC `GP_BASE_HI`: where the GPFIFO ring is, and its size.
    struct GpBaseHi(u32) {
        /// `LIMIT2`: log2 of the ring's entries.
        20:16 limit2;
        /// Ring address bits 39:32.
        7:0 addr;
    }
}

bitfield! {
    /// A GPFIFO entry (`NV_PFIFO_DMA_GP_ENTRY`): one pushbuffer segment.
    struct GpEntry(u64) {
        /// `LENGTH`: dwords in the segment.
        62:42 length;
        /// `GET`: the segment's address bits 39:2.
        39:2 addr;
    }
}

/// Where the kernel maps channels' buffers in their address spaces: channel
/// id `i` owns `[start + i * stride, start + (i + 1) * stride)`, and no
/// user semaphore may be released at or above `start`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KernelWindow {
    pub(crate) start: u64,
    pub(crate) stride: u64,
}

/// Submission state of a channel.
struct Submit {
    /// Next GPFIFO entry.
    put: u32,
    /// Sequence number of the next job.
    next_seq: u64,
}

/// A channel of owner `O`, bound to an address space.
#[pin_data(PinnedDrop)]
pub(crate) struct Channel<O> {
    fifo: Arc<Fifo<O>>,
    aspace: Arc<AddressSpace>,
    window: KernelWindow,
    chan: ChanRef,
    inst: Dwords,
    userd: Dwords,
    /// The GPFIFO ring, one entry per qword.
    gpfifo: Qwords,
    /// The fence: the last completed job's sequence number in qword 0.
    fence: Qwords,
    /// The segment that binds the engines, run once.
    init: Dwords,
    slots: KVec<Slot>,
    #[pin]
    submit: Mutex<Submit>,
}

impl<O> Channel<O> {
    /// Creates, binds and schedules a channel of `owner` in `aspace`, its
    /// buffers mapped in `window`.
    pub(crate) fn new(
        dev: &Device<Bound>,
        fifo: &Arc<Fifo<O>>,
        owner: Arc<O>,
        aspace: &Arc<AddressSpace>,
        window: KernelWindow,
    ) -> Result<Arc<Self>> {
        if window.stride < WINDOW_BYTES {
            return Err(EINVAL);
        }
        let mut slots = KVec::with_capacity(PB_SLOTS as usize, GFP_KERNEL)?;
        for _ in 0..PB_SLOTS {
            slots.push(Slot::new(dev)?, GFP_KERNEL)?;
        }
        let (inst, userd, init) = (Dwords::new(dev)?, Dwords::new(dev)?, Dwords::new(dev)?);
        let (gpfifo, fence) = (Qwords::new(dev)?, Qwords::new(dev)?);
        let chan = fifo.lock().alloc(owner, inst.addr(), userd.addr())?;
        // An error latched for an earlier channel with this id is not ours.
        fifo.fences.clear_error(chan.chid);
        // From here on, dropping the channel releases the id and unmaps.
        let ch = Arc::pin_init(
            try_pin_init!(Self {
                fifo: fifo.clone(),
                aspace: aspace.clone(),
                window,
                chan,
                inst,
                userd,
                gpfifo,
                fence,
                init,
                slots,
                submit <- new_mutex!(Submit { put: 0, next_seq: 1 }),
            }),
            GFP_KERNEL,
        )
        .inspect_err(|_| fifo.lock().free(chan.chid))?;
        ch.start(dev)?;
        Ok(ch)
    }

    /// Base of this channel's kernel window.
    fn kva(&self) -> u64 {
        self.window.start + u64::from(self.chan.chid) * self.window.stride
    }

    fn start(&self, dev: &Device<Bound>) -> Result {
        let kva = self.kva();
        let mut bufs = KVec::with_capacity(3 + self.slots.len(), GFP_KERNEL)?;
        bufs.push((kva + GPFIFO_OFFSET, self.gpfifo.span()), GFP_KERNEL)?;
        bufs.push((kva + FENCE_OFFSET, self.fence.span()), GFP_KERNEL)?;
        bufs.push((kva + INIT_OFFSET, self.init.span()), GFP_KERNEL)?;
        for (i, s) in self.slots.iter().enumerate() {
            let va = kva + SLOTS_OFFSET + (i * PB_SLOT_SIZE) as u64;
            bufs.push((va, s.span()), GFP_KERNEL)?;
        }
        self.aspace.map_kernel(dev, &bufs)?;

        // Instance block: page directory and RAMFC.
        let pdb = self.aspace.pdb();
        let pdb_lo = PageDirBase::zeroed()
            .try_with_addr((pdb as u32) >> 12)?
            .with_target(Target::SysMemCoherent)
            .with_fault_replay_tex(true)
            .with_fault_replay_gcc(true)
            .with_ver2(true)
            .with_big_page_64k(true);
        self.inst.set(ramin::PAGE_DIR_BASE_LO, pdb_lo.into_raw());
        self.inst.set(ramin::PAGE_DIR_BASE_HI, (pdb >> 32) as u32);
        let gpva = kva + GPFIFO_OFFSET;
        let gp_hi = GpBaseHi::zeroed()
            .try_with_addr(((gpva >> 32) & 0xff) as u32)?
            .try_with_limit2(GPFIFO_LOG2)?;
        self.inst.set(ramin::RAMFC_GP_BASE, gpva as u32);
        self.inst.set(ramin::RAMFC_GP_BASE_HI, gp_hi.into_raw());

        // The first segment binds the engines to their subchannels.
        let hw = self.fifo.hw();
        let mut init = KVec::new();
        if hw.has_compute() {
            let sub = uapi::DRM_RSVM_SUBCHANNEL_COMPUTE;
            init.push(Header::inc(sub, mthd::SET_OBJECT, 1)?, GFP_KERNEL)?;
            init.push(pushbuf::CLASS_COMPUTE, GFP_KERNEL)?;
        }
        if hw.has_copy() {
            let sub = uapi::DRM_RSVM_SUBCHANNEL_COPY;
            init.push(Header::inc(sub, mthd::SET_OBJECT, 1)?, GFP_KERNEL)?;
            init.push(ce::CLASS, GFP_KERNEL)?;
        }
        for (i, w) in init.iter().enumerate() {
            self.init.set(i, *w);
        }

        let inst = self.inst.addr();
        let chid = self.chan.chid as usize;
        hw.regs(|bar| -> Result {
            let loc = regs::NV_PCCSR_CHANNEL_INST::try_at(chid).ok_or(EINVAL)?;
            bar.write(
                loc,
                regs::NV_PCCSR_CHANNEL_INST::zeroed()
                    .with_bind(true)
                    .with_target(regs::Target::SysMemCoherent)
                    .try_with_ptr(super::page_number(inst)?)?,
            );
            let loc = regs::NV_PCCSR_CHANNEL::try_at(chid).ok_or(EINVAL)?;
            bar.write(loc, regs::NV_PCCSR_CHANNEL::zeroed().with_enable_set(true));
            Ok(())
        })
        .ok_or(ENODEV)??;
        {
            let mut st = self.fifo.lock();
            st.set_live(self.chan.chid, true)?;
            hw.regs(|bar| st.submit_runlist(bar)).ok_or(ENODEV)??;
        }
        let mut s = self.submit.lock();
        if !init.is_empty() {
            self.push_entry(&mut s, kva + INIT_OFFSET, init.len())?;
        }
        Ok(())
    }

    /// Queues a GPFIFO entry for `dwords` at `va` and rings the doorbell.
    fn push_entry(&self, s: &mut Submit, va: u64, dwords: usize) -> Result {
        let entry = GpEntry::zeroed()
            .try_with_addr(va >> 2)?
            .try_with_length(dwords as u64)?;
        self.gpfifo.set(s.put as usize, entry.into_raw());
        s.put = (s.put + 1) % GPFIFO_ENTRIES;
        self.userd.set(USERD_GP_PUT, s.put);
        let chid = self.chan.chid;
        self.fifo.hw().regs(|bar| {
            bar.write_reg(regs::NV_USERMODE_NOTIFY_CHANNEL_PENDING::from(chid));
        });
        Ok(())
    }

    /// Sequence number of the last job that completed.
    pub(crate) fn completed(&self) -> u64 {
        self.fence.get(0)
    }

    /// Sequence number of the last job submitted.
    pub(crate) fn submitted(&self) -> u64 {
        self.submit.lock().next_seq - 1
    }

    /// The channel's first error, `(DRM_RSVM_ERROR_*, info)`.
    pub(crate) fn error(&self) -> Option<(u32, u64)> {
        self.fifo.fences.error(self.chan.chid)
    }

    /// Waits until job `seq` completed (`Ok(true)`) or the channel stopped
    /// on an error (`Ok(false)`); `ETIME` after `timeout`.
    fn wait_done(&self, seq: u64, timeout: Jiffies) -> Result<bool> {
        self.fifo.fences.wait(
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
        pushbuf::check_push(push, self.window.start)?;
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
            slot.set(i, *w);
        }
        let fence_va = self.kva() + FENCE_OFFSET;
        let trailer: [u32; TRAILER_DWORDS] = [
            Header::inc(0, mthd::SEM_ADDR_LO, 5)?,
            fence_va as u32,
            (fence_va >> 32) as u32,
            seq as u32,
            (seq >> 32) as u32,
            pushbuf::SEM_RELEASE_64,
            Header::inc(0, mthd::NON_STALL_INTERRUPT, 1)?,
            0,
        ];
        for (i, w) in trailer.iter().enumerate() {
            slot.set(push.len() + i, *w);
        }
        let va = self.kva() + SLOTS_OFFSET + (slot_index * PB_SLOT_SIZE) as u64;
        self.push_entry(&mut s, va, push.len() + TRAILER_DWORDS)?;
        s.next_seq += 1;
        Ok(seq)
    }

    /// Waits for job `seq`: `Ok(())` when it completed, `EIO` when the
    /// channel stopped first, `ETIME` on timeout.
    pub(crate) fn wait(&self, seq: u64, timeout: Jiffies) -> Result {
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
impl<O> PinnedDrop for Channel<O> {
    fn drop(self: Pin<&mut Self>) {
        // Stopped and off the runlist, but the id stays taken: a channel
        // made with it now would map its ring where this one's still is.
        {
            let mut st = self.fifo.lock();
            let was_live = st.set_live(self.chan.chid, false).unwrap_or(false);
            self.fifo.hw().regs(|bar| {
                super::stop_channel(bar, self.chan.chid);
                if was_live {
                    if let Err(e) = st.submit_runlist(bar) {
                        pr_warn!("rsvm: cannot submit the runlist: {:?}\n", e);
                    }
                }
            });
        }
        // Unmapped and flushed from the TLB: only now may the id be reused.
        self.aspace.unmap_kernel(self.kva(), self.window.stride);
        self.fifo.lock().free(self.chan.chid);
    }
}
