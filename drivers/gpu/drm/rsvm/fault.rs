// SPDX-License-Identifier: GPL-2.0

//! The MMU fault buffers (`dev_mmu_fault.ref`, `pri_mmu_hub.ref`) and their
//! service.
//!
//! Buffer 1 takes replayable faults: compute accesses stall, their faults
//! are drained in batches of up to [`BATCH`], sorted and deduplicated by
//! page, served through the faulting VM's mirror, and then replayed with one
//! `REPLAY_START`; the pages that cannot be served (no SVM range, no CPU
//! mapping, a write to read-only memory, the kernel's addresses) are
//! cancelled first, which fails the job on its channel. Buffer 0 takes the
//! non-replayable faults of the copy engine and of host semaphores ("fault
//! and switch"): the page is served and the unit restarted by clearing
//! `ENG_FAULTED`/`PBDMA_FAULTED`, or the channel is stopped with an error.
//!
//! Both run in the interrupt thread, in process context: a fault may sleep
//! in `hmm_range_fault`.

use kernel::{
    io::{register::Array, Io},
    pci,
    prelude::*,
    sync::Arc,
    uapi,
};

use crate::{
    gpu::{Bar0, Gpu, Hw, Replay},
    mem::DmaBuf,
    regs,
};

/// Entries per buffer.
const ENTRIES: u32 = 1024;
/// Bytes per fault packet.
const PACKET: usize = 32;
/// Faults one pass drains and serves before replaying.
const BATCH: usize = 256;
const NON_REPLAYABLE: usize = 0;
const REPLAYABLE: usize = 1;

/// Fault types (`NV_PFAULT_FAULT_TYPE_*`) a mirror can serve.
const FAULT_PDE: u32 = 0;
const FAULT_PTE: u32 = 2;
const FAULT_RO: u32 = 6;

/// One decoded fault packet, as the mirror needs it.
#[derive(Clone, Copy, Debug)]
struct Fault {
    inst: u64,
    va: u64,
    /// Needs a writable page: a write or atomic access, or any access to a
    /// read-only PTE.
    write: bool,
    /// Not a missing or read-only mapping (privilege, aperture, kind...):
    /// no mirror can serve it.
    fatal: bool,
}

impl Fault {
    fn decode(d: &[u32; 8]) -> Self {
        let access = (d[7] >> 16) & 0xf;
        let fault_type = d[7] & 0x1f;
        Self {
            inst: (u64::from(d[1]) << 32) | u64::from(d[0] & 0xffff_f000),
            va: (u64::from(d[3]) << 32) | u64::from(d[2] & 0xffff_f000),
            write: access == 1 || access == 2 || fault_type == FAULT_RO,
            fatal: !matches!(fault_type, FAULT_PDE | FAULT_PTE | FAULT_RO),
        }
    }
}

/// The two fault buffers, in coherent system memory.
pub(crate) struct FaultBuffers {
    hw: Arc<Hw>,
    bufs: [DmaBuf; 2],
}

impl FaultBuffers {
    /// Allocates both buffers and points the MMU at them.
    pub(crate) fn new(pdev: &pci::Device<kernel::device::Bound>, hw: &Arc<Hw>) -> Result<Self> {
        let size = ENTRIES as usize * PACKET;
        let bufs = [
            DmaBuf::new(pdev.as_ref(), size)?,
            DmaBuf::new(pdev.as_ref(), size)?,
        ];
        hw.regs(|bar| -> Result {
            for (i, b) in bufs.iter().enumerate() {
                let addr = b.addr();
                // 31:12 address, 2:1 aperture (2: coherent sysmem), 0 physical.
                let lo = (addr as u32 & 0xffff_f000) | (2 << 1) | 1;
                bar.write(
                    regs::NV_PFB_PRI_MMU_FAULT_BUFFER_LO::try_at(i).ok_or(EINVAL)?,
                    regs::NV_PFB_PRI_MMU_FAULT_BUFFER_LO::from(lo),
                );
                bar.write(
                    regs::NV_PFB_PRI_MMU_FAULT_BUFFER_HI::try_at(i).ok_or(EINVAL)?,
                    regs::NV_PFB_PRI_MMU_FAULT_BUFFER_HI::from((addr >> 32) as u32),
                );
                bar.write(
                    regs::NV_PFB_PRI_MMU_FAULT_BUFFER_GET::try_at(i).ok_or(EINVAL)?,
                    regs::NV_PFB_PRI_MMU_FAULT_BUFFER_GET::zeroed(),
                );
                bar.write(
                    regs::NV_PFB_PRI_MMU_FAULT_BUFFER_SIZE::try_at(i).ok_or(EINVAL)?,
                    regs::NV_PFB_PRI_MMU_FAULT_BUFFER_SIZE::zeroed()
                        .with_enable(true)
                        .try_with_entries(ENTRIES)?,
                );
            }
            Ok(())
        })
        .ok_or(ENODEV)??;
        Ok(Self {
            hw: hw.clone(),
            bufs,
        })
    }

    fn get_put(bar: &Bar0<'_>, i: usize) -> Option<(u32, u32)> {
        let get = bar.read(regs::NV_PFB_PRI_MMU_FAULT_BUFFER_GET::try_at(i)?);
        let put = bar.read(regs::NV_PFB_PRI_MMU_FAULT_BUFFER_PUT::try_at(i)?);
        Some((u32::from(get.ptr()), u32::from(put.ptr())))
    }

    /// Whether either buffer holds unserved faults.
    pub(crate) fn pending(&self, hw: &Hw) -> bool {
        hw.regs(|bar| {
            [NON_REPLAYABLE, REPLAYABLE]
                .iter()
                .any(|&i| Self::get_put(bar, i).is_some_and(|(g, p)| g != p))
        })
        .unwrap_or(false)
    }

    /// Takes up to `max` packets from buffer `i` and advances `GET`.
    fn drain(&self, i: usize, max: usize) -> Result<KVec<Fault>> {
        let mut out = KVec::new();
        let Some((mut get, put)) = self.hw.regs(|bar| Self::get_put(bar, i)).flatten() else {
            return Ok(out);
        };
        let buf = &self.bufs[i];
        while get != put && out.len() < max {
            let at = get as usize * PACKET;
            let mut d = [0u32; 8];
            d[7] = buf.read32(at + 28);
            if d[7] & (1 << 31) == 0 {
                break; // not yet published
            }
            for (k, w) in d.iter_mut().enumerate().take(7) {
                *w = buf.read32(at + 4 * k);
            }
            buf.write32(at + 28, 0);
            out.push(Fault::decode(&d), GFP_KERNEL)?;
            get = (get + 1) % ENTRIES;
        }
        self.hw.regs(|bar| {
            if let Some(loc) = regs::NV_PFB_PRI_MMU_FAULT_BUFFER_GET::try_at(i) {
                if let Ok(v) = regs::NV_PFB_PRI_MMU_FAULT_BUFFER_GET::zeroed().try_with_ptr(get) {
                    bar.write(loc, v);
                }
            }
        });
        Ok(out)
    }

    /// Serves one fault through the mirror of the VM whose channel took it
    /// (the mirror flushes the TLB). Returns the channel id and whether the
    /// fault was served; `None` if no channel has that instance block.
    fn serve(gpu: &Gpu<'_>, f: &Fault) -> Option<(u32, bool)> {
        let (chid, vm) = gpu.hw.fifo.lock().lookup(f.inst)?;
        let ok = !f.fatal && vm.handle_fault(gpu.pdev.as_ref(), f.va, f.write).is_ok();
        Some((chid, ok))
    }

    /// Drains and serves both buffers until they are empty.
    pub(crate) fn service(&self, gpu: &Gpu<'_>) {
        loop {
            let replayable = self.service_replayable(gpu);
            let non_replayable = self.service_non_replayable(gpu);
            if !replayable && !non_replayable {
                break;
            }
        }
    }

    /// One batch of replayable faults; returns whether there was any.
    fn service_replayable(&self, gpu: &Gpu<'_>) -> bool {
        let Ok(mut batch) = self.drain(REPLAYABLE, BATCH) else {
            return false;
        };
        if batch.is_empty() {
            return false;
        }
        // Sort by address space and page, then fold duplicates: a page that
        // is both read and written is served once, for writing.
        batch.sort_unstable_by_key(|f| (f.inst, f.va));
        let mut unique: KVec<Fault> = KVec::new();
        for f in batch.iter() {
            match unique.last_mut() {
                Some(u) if u.inst == f.inst && u.va == f.va => {
                    u.write |= f.write;
                    u.fatal |= f.fatal;
                }
                _ => {
                    if unique.push(*f, GFP_KERNEL).is_err() {
                        break;
                    }
                }
            }
        }
        for f in unique.iter() {
            if !matches!(Self::serve(gpu, f), Some((_, true))) {
                // Fails the job stalled there; its channel reports
                // DRM_RSVM_ERROR_FAULT.
                self.hw.invalidate_tlb(0, f.va, Replay::CancelVaGlobal);
            }
        }
        self.hw.invalidate_tlb(0, 0, Replay::Start);
        true
    }

    /// The copy engine's faults; returns whether there was any.
    fn service_non_replayable(&self, gpu: &Gpu<'_>) -> bool {
        let Ok(batch) = self.drain(NON_REPLAYABLE, BATCH) else {
            return false;
        };
        for f in batch.iter() {
            let Some((chid, ok)) = Self::serve(gpu, f) else {
                continue;
            };
            let Some(loc) = regs::NV_PCCSR_CHANNEL::try_at(chid as usize) else {
                continue;
            };
            if ok {
                // Restart: the same launch or semaphore runs again.
                self.hw.regs(|bar| {
                    // An engine fault stopped the engine, a host (semaphore)
                    // fault the PBDMA: writing 1 resets either.
                    let reset = regs::NV_PCCSR_CHANNEL::zeroed()
                        .with_eng_faulted(true)
                        .with_pbdma_faulted(true);
                    bar.write(loc, reset);
                });
            } else {
                self.hw.regs(|bar| {
                    bar.write(loc, regs::NV_PCCSR_CHANNEL::zeroed().with_enable_clr(true));
                });
                self.hw
                    .set_channel_error(chid, uapi::DRM_RSVM_ERROR_FAULT, f.va >> 12);
            }
        }
        !batch.is_empty()
    }
}

impl Drop for FaultBuffers {
    fn drop(&mut self) {
        // The MMU must stop writing before the memory goes.
        self.hw.regs(|bar| {
            for i in [NON_REPLAYABLE, REPLAYABLE] {
                if let Some(loc) = regs::NV_PFB_PRI_MMU_FAULT_BUFFER_SIZE::try_at(i) {
                    bar.write(loc, regs::NV_PFB_PRI_MMU_FAULT_BUFFER_SIZE::zeroed());
                }
            }
        });
    }
}
