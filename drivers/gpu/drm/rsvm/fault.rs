// SPDX-License-Identifier: GPL-2.0

//! The MMU fault buffers (`dev_mmu_fault.ref`, `pri_mmu_hub.ref`): drained
//! by the interrupt thread, each fault handed to the worker of the VM whose
//! channel took it.
//!
//! The thread never serves a fault itself, so a fault that waits (in a
//! userfaultfd handler, on I/O, behind another process's mmap lock) holds up
//! only its own VM: every VM has its own queue and work item (see
//! `vm::Vm::serve_faults`), and VMs are served in parallel on the unbound
//! workqueue. Buffer 1 takes replayable faults (compute: the access stalls
//! until a replay), buffer 0 non-replayable ones (the copy engine and host
//! semaphores: "fault and switch", the channel waits for `*_FAULTED` to be
//! cleared).
//!
//! `GET` is kept in software: a pass reads packets from memory while their
//! `VALID` bit is set (the device writes it last), clears it, and writes
//! `GET` once. Nothing is read over BAR0 here. After each `GET` write the
//! thread looks again, because faults that arrived before it do not send a
//! new interrupt (see `Gpu::handle_interrupt`).
//!
//! Locks: the FIFO lock (instance block -> channel, VM) is taken once per
//! pass, then each VM's queue lock; the drain state is the thread's own.

use kernel::{
    bitfield,
    device::Bound,
    io::{
        register::Array,
        Io, //
    },
    new_mutex,
    pci,
    prelude::*,
    sync::{
        Arc,
        Mutex, //
    }, //
};

use crate::{
    hw::Hw,
    mem::DevMem,
    regs::{
        self,
        hw_enum, //
    },
    vm::{
        GpuFault,
        Vm,
        VmFifo, //
    }, //
};

/// Entries per buffer.
const ENTRIES: u32 = 1024;
/// Dwords per fault packet.
const PACKET: usize = 8;
/// A fault buffer.
type Buffer = DevMem<u32, { ENTRIES as usize * PACKET }>;
/// Faults one pass drains and serves before replaying.
const BATCH: usize = 256;
const NON_REPLAYABLE: usize = 0;
const REPLAYABLE: usize = 1;

hw_enum! {
    /// `NV_PFAULT_FAULT_TYPE` (`dev_fault.ref`).
    enum FaultType: u32, 5 {
        Pde = 0,
        PdeSize = 1,
        Pte = 2,
        VaLimit = 3,
        UnboundInstBlock = 4,
        Priv = 5,
        Ro = 6,
        Wo = 7,
        PitchMask = 8,
        WorkCreation = 9,
        UnsupportedAperture = 10,
        CompressionFailure = 11,
        UnsupportedKind = 12,
        Region = 13,
        Poisoned = 14,
        Atomic = 15,
    }
}

hw_enum! {
    /// `NV_PFAULT_ACCESS_TYPE` (virtual accesses; 8 to 11 are physical).
    enum AccessType: u32, 4 {
        Read = 0,
        Write = 1,
        AtomicStrong = 2,
        Prefetch = 3,
        AtomicWeak = 4,
    }
}

bitfield! {
    /// Dword 0 of a fault packet (`NV_MMU_FAULT_BUF_ENTRY_INST_LO`).
    struct PacketInst(u32) {
        /// Instance block bits 31:12.
        31:12 addr;
        9:8 aperture;
    }
}

bitfield! {
    /// Dword 2 of a fault packet (`NV_MMU_FAULT_BUF_ENTRY_ADDR_LO`).
    struct PacketAddr(u32) {
        /// The faulting page's address bits 31:12.
        31:12 addr;
    }
}

bitfield! {
    /// Dword 7 of a fault packet: what faulted, and `VALID` (written last).
    struct PacketInfo(u32) {
        31:31 valid => bool;
        20:20 hub_client => bool;
        19:16 access_type ?=> AccessType;
        14:8 client;
        7:7 replayable => bool;
        4:0 fault_type ?=> FaultType;
    }
}

/// One decoded fault packet.
#[derive(Clone, Copy, Debug)]
struct Fault {
    inst: u64,
    va: u64,
    /// Needs a writable page: a write or atomic access, or any access to a
    /// read-only PTE.
    write: bool,
    /// Not a missing or read-only mapping (privilege, aperture, an address
    /// outside the VA space...): no mirror can serve it.
    fatal: bool,
}

impl Fault {
    fn decode(d: &[u32; PACKET]) -> Self {
        let info = PacketInfo::from(d[7]);
        let access = info.access_type();
        let fault_type = info.fault_type();
        let inst = u64::from(PacketInst::from(d[0]).addr().get()) << 12;
        let va = u64::from(PacketAddr::from(d[2]).addr().get()) << 12;
        Self {
            inst: (u64::from(d[1]) << 32) | inst,
            va: (u64::from(d[3]) << 32) | va,
            write: matches!(
                access,
                Ok(AccessType::Write | AccessType::AtomicStrong | AccessType::AtomicWeak)
            ) || fault_type == Ok(FaultType::Ro),
            // An encoding the manual does not define is no mapping to make.
            fatal: !matches!(
                fault_type,
                Ok(FaultType::Pde | FaultType::Pte | FaultType::Ro)
            ),
        }
    }
}

/// What the interrupt thread keeps between passes.
struct Drain {
    /// Software `GET` of each buffer.
    get: [u32; 2],
    /// Packets of the current pass, and the VMs they go to: allocated once.
    packets: KVec<(Fault, bool)>,
    vms: KVec<Arc<Vm>>,
}

/// The two fault buffers, in coherent system memory.
pub(crate) struct FaultBuffers {
    hw: Arc<Hw>,
    fifo: Arc<VmFifo>,
    bufs: [Buffer; 2],
    drain: Pin<KBox<Mutex<Drain>>>,
}

impl FaultBuffers {
    /// Allocates both buffers and points the MMU at them.
    pub(crate) fn new(pdev: &pci::Device<Bound>, hw: &Arc<Hw>, fifo: &Arc<VmFifo>) -> Result<Self> {
        let bufs = [Buffer::new(pdev.as_ref())?, Buffer::new(pdev.as_ref())?];
        hw.regs(|bar| -> Result {
            for (i, b) in bufs.iter().enumerate() {
                let addr = b.addr();
                bar.write(
                    regs::NV_PFB_PRI_MMU_FAULT_BUFFER_LO::try_at(i).ok_or(EINVAL)?,
                    regs::NV_PFB_PRI_MMU_FAULT_BUFFER_LO::zeroed()
                        .try_with_addr((addr as u32) >> 12)?
                        .with_aperture(regs::Target::SysMemCoherent)
                        .with_physical(true),
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
        let drain = Drain {
            get: [0; 2],
            packets: KVec::with_capacity(2 * BATCH, GFP_KERNEL)?,
            vms: KVec::with_capacity(2 * BATCH, GFP_KERNEL)?,
        };
        Ok(Self {
            hw: hw.clone(),
            fifo: fifo.clone(),
            bufs,
            drain: KBox::pin_init(new_mutex!(drain), GFP_KERNEL)?,
        })
    }

    /// Takes up to [`BATCH`] published packets of buffer `i` into `out`;
    /// returns the new `GET` if it moved.
    fn take(&self, i: usize, get: u32, out: &mut KVec<(Fault, bool)>) -> Option<u32> {
        let buf = &self.bufs[i];
        let mut at = get;
        for _ in 0..BATCH {
            let off = at as usize * PACKET;
            let last = buf.get(off + 7);
            if !PacketInfo::from(last).valid() {
                break; // not yet published
            }
            let mut d = [0u32; PACKET];
            d[7] = last;
            for (k, w) in d.iter_mut().enumerate().take(7) {
                *w = buf.get(off + k);
            }
            buf.set(off + 7, 0);
            if out
                .push_within_capacity((Fault::decode(&d), i == REPLAYABLE))
                .is_err()
            {
                break;
            }
            at = (at + 1) % ENTRIES;
        }
        (at != get).then_some(at)
    }

    /// One pass over both buffers: takes what is published, moves `GET`,
    /// and queues each fault on its VM's worker. Returns whether there was
    /// any fault.
    pub(crate) fn service(&self) -> bool {
        let mut guard = self.drain.lock();
        let d = &mut *guard;
        d.packets.clear();
        for i in [REPLAYABLE, NON_REPLAYABLE] {
            let Some(get) = self.take(i, d.get[i], &mut d.packets) else {
                continue;
            };
            d.get[i] = get;
            self.hw.regs(|bar| {
                if let (Some(loc), Ok(v)) = (
                    regs::NV_PFB_PRI_MMU_FAULT_BUFFER_GET::try_at(i),
                    regs::NV_PFB_PRI_MMU_FAULT_BUFFER_GET::zeroed().try_with_ptr(get),
                ) {
                    bar.write(loc, v);
                }
            });
        }
        if d.packets.is_empty() {
            return false;
        }
        {
            let fifo = self.fifo.lock();
            for &(f, replayable) in d.packets.iter() {
                // A channel destroyed since: nothing waits for this fault.
                let Some((chan, vm)) = fifo.lookup(f.inst) else {
                    continue;
                };
                vm.queue_fault(GpuFault {
                    chan,
                    va: f.va,
                    write: f.write,
                    fatal: f.fatal,
                    replayable,
                });
                if !d.vms.iter().any(|v| Arc::ptr_eq(v, &vm)) {
                    // Room for one VM per packet was reserved.
                    let _ = d.vms.push_within_capacity(vm);
                }
            }
        }
        for vm in d.vms.drain_all() {
            Vm::schedule(vm);
        }
        true
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
