// SPDX-License-Identifier: GPL-2.0

//! A channel: its instance block and RAMFC, USERD, GPFIFO ring, pushbuffer
//! slots and fence (`dev_ram.ref`, `clc36f.h`).
//!
//! A channel's GPFIFO ring, pushbuffer slots and fence live in driver-owned
//! coherent memory, mapped privileged into the channel's address space in
//! the kernel window ([`crate::vm::layout`]): the PBDMA fetches through the
//! address space and its faults cannot be replayed, so the command stream is
//! never pageable user memory. A job's pushbuffer is copied from the user,
//! checked, and followed by a semaphore release of the job's sequence number
//! and a non-stall interrupt, which wakes the waiters.
//!
//! Locking: `submit` is taken before the FIFO lock and the fence spinlocks.

use kernel::{
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
    uapi,
};

use super::{
    pushbuf::{
        self,
        mthd,
        Header, //
    },
    ChanRef, Fifo, TARGET_SYS_COHERENT,
};
use crate::{
    ce,
    mem::DmaBuf,
    mmu::AddressSpace,
    regs,
    vm::layout::{
        CHANNEL_VA_STRIDE,
        KERNEL_VA_SIZE,
        KERNEL_VA_START, //
    },
};

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
// Every channel's window holds its buffers, and every id has a window.
const _: () = assert!(CHANNEL_VA_STRIDE >= SLOTS_OFFSET + PB_SLOTS * PB_SLOT_SIZE as u64);
const _: () = assert!(super::NUM_CHANNELS as u64 * CHANNEL_VA_STRIDE <= KERNEL_VA_SIZE);
/// How long a submission waits for ring space.
const RING_WAIT_MS: u32 = 10_000;

/// Offset of the instance block's page directory (`NV_RAMIN_PAGE_DIR_BASE`).
const RAMIN_PDB: usize = 0x200;
/// RAMFC `GP_BASE` / `GP_BASE_HI`.
const RAMFC_GP_BASE: usize = 0x48;
const RAMFC_GP_BASE_HI: usize = 0x4c;
/// USERD `GP_PUT`.
const USERD_GP_PUT: usize = 0x8c;

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
    chan: ChanRef,
    inst: DmaBuf,
    userd: DmaBuf,
    gpfifo: DmaBuf,
    fence: DmaBuf,
    slots: KVec<DmaBuf>,
    #[pin]
    submit: Mutex<Submit>,
}

impl<O> Channel<O> {
    /// Creates, binds and schedules a channel of `owner` in `aspace`.
    pub(crate) fn new(
        dev: &Device<Bound>,
        fifo: &Arc<Fifo<O>>,
        owner: Arc<O>,
        aspace: &Arc<AddressSpace>,
    ) -> Result<Arc<Self>> {
        let mut slots = KVec::with_capacity(PB_SLOTS as usize, GFP_KERNEL)?;
        for _ in 0..PB_SLOTS {
            slots.push(DmaBuf::new(dev, PB_SLOT_SIZE)?, GFP_KERNEL)?;
        }
        let (inst, userd) = (DmaBuf::new(dev, 4096)?, DmaBuf::new(dev, 4096)?);
        let (gpfifo, fence) = (DmaBuf::new(dev, 4096)?, DmaBuf::new(dev, 4096)?);
        let chan = fifo.lock().alloc(owner, inst.addr(), userd.addr())?;
        // An error latched for an earlier channel with this id is not ours.
        fifo.fences.clear_error(chan.chid);
        // From here on, dropping the channel releases the id and unmaps.
        let ch = Arc::pin_init(
            try_pin_init!(Self {
                fifo: fifo.clone(),
                aspace: aspace.clone(),
                chan,
                inst,
                userd,
                gpfifo,
                fence,
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
        KERNEL_VA_START + u64::from(self.chan.chid) * CHANNEL_VA_STRIDE
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
        self.aspace.map_kernel(dev, &bufs)?;

        // Instance block: page directory and RAMFC.
        let pdb = self.aspace.pdb();
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
        // The init methods live in the fence page, past the fence.
        let init_off = 0x100;
        for (i, w) in init.iter().enumerate() {
            self.fence.write32(init_off + 4 * i, *w);
        }

        let inst = self.inst.addr();
        let chid = self.chan.chid as usize;
        hw.regs(|bar| -> Result {
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
            let mut st = self.fifo.lock();
            st.set_live(self.chan.chid, true)?;
            hw.regs(|bar| st.submit_runlist(bar)).ok_or(ENODEV)?;
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
        let chid = self.chan.chid;
        self.fifo.hw().regs(|bar| {
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
        pushbuf::check_push(push)?;
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
            slot.write32(4 * (push.len() + i), *w);
        }
        let va = self.kva() + SLOTS_OFFSET + (slot_index * PB_SLOT_SIZE) as u64;
        self.push_entry(&mut s, va, push.len() + TRAILER_DWORDS);
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
                    st.submit_runlist(bar);
                }
            });
        }
        // Unmapped and flushed from the TLB: only now may the id be reused.
        self.aspace.unmap_kernel(self.kva(), CHANNEL_VA_STRIDE);
        self.fifo.lock().free(self.chan.chid);
    }
}
