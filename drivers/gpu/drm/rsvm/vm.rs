// SPDX-License-Identifier: GPL-2.0

//! The GPU VM of an open file: one address space, the SVM ranges it
//! mirrors, the channels that run in it, and the service of its GPU faults.
//! [`layout`] says what lives where in every GPU address space.
//!
//! GPU faults reach a VM through its queue ([`Vm::queue_fault`], filled by
//! the interrupt thread) and are served by the VM's own work item on the
//! unbound workqueue ([`Vm::serve_faults`]): one VM's slow fault (waiting in
//! a userfaultfd handler, say) never holds up another's. A batch is served
//! in one go: every PTE written, failures cancelled in this VM's address
//! space only, then one register write invalidates every TLB and replays
//! every stalled access. A replay re-issues other VMs' stalled accesses too;
//! those that still miss fault again and are queued to their VM, which
//! serves them when it gets to them, so replays need no coordination. A page
//! that keeps faulting after being served ([`MAX_REPEATS`] batches in a row,
//! its range unchanged meanwhile) fails its job instead of being served
//! forever.
//!
//! Locks: the worker state (`svc`) is taken only by the VM's work item,
//! before the FIFO lock; the queue is a leaf spinlock taken under the FIFO
//! lock by the interrupt thread.

use kernel::{
    device::{
        Bound,
        Device, //
    },
    impl_has_work,
    mm::{
        mmu_notifier::ReadSeq,
        MmWithUser, //
    },
    new_mutex,
    new_spinlock,
    new_work,
    prelude::*,
    sync::{
        atomic::{
            Acquire,
            Atomic,
            Relaxed,
            Release, //
        },
        Arc,
        Mutex,
        SpinLock, //
    },
    time::Delta,
    uapi,
    workqueue::{
        self,
        Work,
        WorkItem, //
    }, //
};

use crate::{
    fifo::{
        self,
        ChanRef,
        Fifo, //
    },
    hmm::{
        mirror::MirrorBuf,
        Svm, //
    },
    mmu::{
        tlb::{
            Replay,
            Tlb,
            CANCEL_VA_LIMIT, //
        },
        AddressSpace,
        PtCount,
        PtPool, //
    }, //
};

pub(crate) mod layout;

/// The host of a GPU, its channels owned by VMs.
pub(crate) type VmFifo = Fifo<Vm>;
/// A channel of a VM.
pub(crate) type Channel = fifo::channel::Channel<Vm>;

/// Batches in a row in which one page may fault again after being served,
/// with nothing invalidated in its range meanwhile, before its job fails: a
/// fault that cannot make progress must not be served forever.
const MAX_REPEATS: u32 = 32;

/// Replayable faults a VM's queue holds; a full queue drops more (they
/// fault again after the VM's next replay, which a non-empty queue
/// guarantees).
const QUEUE_REPLAYABLE: usize = 512;
/// Room kept for non-replayable faults, which no replay brings back: one
/// per channel.
const QUEUE_NON_REPLAYABLE: usize = fifo::MAX_CHANNELS_PER_VM;

/// What every VM of one GPU shares.
pub(crate) struct Shared {
    pub(crate) fifo: Arc<VmFifo>,
    pub(crate) tlb: Arc<Tlb>,
    /// Page-table pages ready for fault service.
    pub(crate) pool: Arc<PtPool>,
    /// Page-table pages linked into this GPU's address spaces.
    pub(crate) pt_count: Arc<PtCount>,
    /// Fault-service work items queued or running (teardown waits for 0).
    fault_work: Atomic<u32>,
}

impl Shared {
    pub(crate) fn new(
        fifo: Arc<VmFifo>,
        tlb: Arc<Tlb>,
        pool: Arc<PtPool>,
        pt_count: Arc<PtCount>,
    ) -> Self {
        Self {
            fifo,
            tlb,
            pool,
            pt_count,
            fault_work: Atomic::new(0),
        }
    }

    /// Waits until no fault-service work is queued or running.
    pub(crate) fn wait_fault_work_idle(&self) {
        while self.fault_work.load(Acquire) != 0 {
            kernel::time::delay::fsleep(Delta::from_millis(1));
        }
    }
}

/// One GPU fault, as a VM's worker serves it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GpuFault {
    /// The channel that took it.
    pub(crate) chan: ChanRef,
    /// The address, page-aligned.
    pub(crate) va: u64,
    /// Needs a writable mapping.
    pub(crate) write: bool,
    /// No mirror can serve it (not a missing or read-only mapping).
    pub(crate) fatal: bool,
    /// A stalled compute access (replayed), rather than a stopped copy
    /// engine or host semaphore (restarted).
    pub(crate) replayable: bool,
}

/// What serving one page gave.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Served,
    /// Not now (no page tables to hand): the access faults again.
    Retry,
    /// Cannot be served, as long as what the decision saw still holds: no
    /// range covered the page (`None`), or range `id` did, unchanged since
    /// notifier sequence `seq`.
    Failed(Option<(u64, ReadSeq)>),
}

/// A page a batch served.
#[derive(Clone, Copy)]
struct Served {
    va: u64,
    /// Batches in a row that served it with its range unchanged.
    repeats: u32,
    /// The range (`SvmRange::id`) and the notifier sequence it was mapped
    /// at: a later invalidation of the range makes its next fault a new one.
    range: u64,
    seq: ReadSeq,
}

/// The fault worker's state, kept between batches so that serving a fault
/// allocates nothing.
struct Service {
    batch: KVec<GpuFault>,
    /// Pages served in the last batch, sorted; `next` is built from the
    /// current batch.
    seen: KVec<Served>,
    next: KVec<Served>,
    /// Channels whose non-replayable fault was served, to restart.
    restart: KVec<ChanRef>,
    buf: MirrorBuf,
}

impl Service {
    fn new() -> Result<Self> {
        let cap = QUEUE_REPLAYABLE + QUEUE_NON_REPLAYABLE;
        Ok(Self {
            batch: KVec::with_capacity(cap, GFP_KERNEL)?,
            seen: KVec::with_capacity(cap, GFP_KERNEL)?,
            next: KVec::with_capacity(cap, GFP_KERNEL)?,
            restart: KVec::with_capacity(cap, GFP_KERNEL)?,
            buf: MirrorBuf::for_faults()?,
        })
    }
}

/// A GPU virtual address space that mirrors one process.
#[pin_data]
pub(crate) struct Vm {
    shared: Arc<Shared>,
    aspace: Arc<AddressSpace>,
    #[pin]
    svm: Svm,
    /// Faults waiting for the worker.
    #[pin]
    queue: SpinLock<KVec<GpuFault>>,
    /// The worker's state.
    #[pin]
    svc: Mutex<Service>,
    #[pin]
    work: Work<Vm>,
}

impl_has_work! {
    impl HasWork<Self> for Vm { self.work }
}

impl WorkItem for Vm {
    type Pointer = Arc<Vm>;

    fn run(vm: Arc<Vm>) {
        vm.serve_faults();
        let shared = vm.shared.clone();
        // The VM may go with this reference: before the device may.
        drop(vm);
        shared.fault_work.fetch_sub(1, Release);
    }
}

impl Vm {
    /// An empty VM mirroring nothing yet of `mm`.
    pub(crate) fn new(
        dev: &Device<Bound>,
        shared: &Arc<Shared>,
        mm: &MmWithUser,
    ) -> Result<Arc<Self>> {
        let aspace = AddressSpace::new(dev, &shared.tlb, &shared.pt_count)?;
        let queue = KVec::with_capacity(QUEUE_REPLAYABLE + QUEUE_NON_REPLAYABLE, GFP_KERNEL)?;
        Arc::pin_init(
            try_pin_init!(Self {
                shared: shared.clone(),
                aspace: aspace.clone(),
                svm <- Svm::new(mm, aspace, &shared.pool),
                queue <- new_spinlock!(queue),
                svc <- new_mutex!(Service::new()?),
                work <- new_work!("rsvm::Vm::work"),
            }),
            GFP_KERNEL,
        )
    }

    /// Whether `mm` is the address space this VM mirrors.
    pub(crate) fn is_owner(&self, mm: &MmWithUser) -> bool {
        self.svm.is_owner(mm)
    }

    /// A new channel in this VM.
    pub(crate) fn new_channel(self: &Arc<Self>, dev: &Device<Bound>) -> Result<Arc<Channel>> {
        Channel::new(
            dev,
            &self.shared.fifo,
            self.clone(),
            &self.aspace,
            layout::CHANNEL_WINDOW,
        )
    }

    /// Starts mirroring `[start, start + len)` of `mm` (the owner): a range
    /// of whole pages, below the SVM limit, clear of the kernel's window.
    pub(crate) fn bind(
        &self,
        dev: &Device<Bound>,
        mm: &MmWithUser,
        start: u64,
        len: u64,
        populate: bool,
    ) -> Result {
        let page = kernel::page::PAGE_SIZE as u64;
        let end = start.checked_add(len).ok_or(EINVAL)?;
        if start % page != 0 || len % page != 0 || len == 0 || end > layout::SVM_VA_LIMIT {
            return Err(EINVAL);
        }
        if layout::overlaps_kernel_window(start, end) {
            return Err(EINVAL);
        }
        self.svm.bind(dev, mm, start, len, populate)
    }

    /// Stops mirroring a range bound exactly as `[start, start + len)`.
    pub(crate) fn unbind(&self, start: u64, len: u64) -> Result {
        self.svm.unbind(start, len)
    }

    /// Queues a fault for this VM's worker (the interrupt thread; then
    /// [`Vm::schedule`]). A fault of a page already queued for the same
    /// channel is merged into it.
    pub(crate) fn queue_fault(&self, f: GpuFault) {
        let mut q = self.queue.lock();
        if let Some(e) = q.iter_mut().find(|e| e.chan == f.chan && e.va == f.va) {
            e.write |= f.write;
            e.fatal |= f.fatal;
            e.replayable &= f.replayable;
            return;
        }
        if f.replayable && q.len() >= QUEUE_REPLAYABLE {
            return;
        }
        // The capacity keeps room for every channel's non-replayable fault.
        let _ = q.push_within_capacity(f);
    }

    /// Has the worker serve what is queued.
    pub(crate) fn schedule(vm: Arc<Vm>) {
        let shared = vm.shared.clone();
        shared.fault_work.fetch_add(1, Relaxed);
        // Already queued: that run takes what was just added.
        if workqueue::system_unbound().enqueue(vm).is_err() {
            shared.fault_work.fetch_sub(1, Release);
        }
    }

    /// The worker: serves queued faults in batches until none is left.
    fn serve_faults(&self) {
        let mut svc = self.svc.lock();
        let svc = &mut *svc;
        loop {
            svc.batch.clear();
            {
                let mut q = self.queue.lock();
                if q.is_empty() {
                    return;
                }
                // Both have the same capacity: nothing is allocated.
                core::mem::swap(&mut *q, &mut svc.batch);
            }
            self.serve_batch(svc);
        }
    }

    /// Serves one page of a batch; a served page is recorded in `next`.
    fn serve_page(&self, svc: &mut Service, va: u64, write: bool, fatal: bool) -> Outcome {
        let Some(n) = self.svm.range_at(va) else {
            return Outcome::Failed(None);
        };
        // What a failure is decided on: this range, unchanged from here.
        let premise = Some((n.ops().id, n.read_begin()));
        // A repeat: served in the last batch, its range unchanged since.
        let repeats = match svc.seen.binary_search_by_key(&va, |p| p.va) {
            Ok(k) if svc.seen[k].range == n.ops().id && !n.check_retry(svc.seen[k].seq) => {
                svc.seen[k].repeats + 1
            }
            _ => 1,
        };
        if fatal || repeats > MAX_REPEATS {
            return Outcome::Failed(premise);
        }
        match self.svm.handle_fault(&n, va, write, &mut svc.buf) {
            Ok(seq) => {
                let _ = svc.next.push_within_capacity(Served {
                    va,
                    repeats,
                    range: n.ops().id,
                    seq,
                });
                Outcome::Served
            }
            Err(e) if e == EAGAIN => Outcome::Retry,
            // Unbound while served (`ENOENT`), or no CPU mapping: the
            // premise is checked before anything is failed.
            Err(_) => Outcome::Failed(premise),
        }
    }

    /// Serves one batch: each page once (read and write faults of a page
    /// fold into one write fault), failures cancelled or their channels
    /// stopped, then one invalidate + replay for the whole batch.
    fn serve_batch(&self, svc: &mut Service) {
        svc.batch.sort_unstable_by_key(|f| (f.va, f.chan));
        svc.next.clear();
        svc.restart.clear();
        let mut replay = false;
        let mut i = 0;
        while i < svc.batch.len() {
            let va = svc.batch[i].va;
            let group = svc.batch[i..].iter().take_while(|f| f.va == va).count();
            let (write, fatal) = svc.batch[i..i + group]
                .iter()
                .fold((false, false), |(w, x), f| (w | f.write, x | f.fatal));
            let outcome = match self.serve_page(svc, va, write, fatal) {
                // Failed only while what the decision saw still holds, and
                // with binds held off: these faults may be stale copies
                // (see `fail`) of an access served before the page was
                // unmapped or unbound, the page mapped and bound again
                // since, and a new access waiting at it. If anything
                // changed, the access (if it still waits) faults again
                // after the replay and is decided anew.
                Outcome::Failed(premise) => {
                    let batch = &svc.batch[i..i + group];
                    match self
                        .svm
                        .while_unchanged(va, premise, || batch.iter().for_each(|f| self.fail(f)))
                    {
                        Some(()) => Outcome::Failed(premise),
                        None => Outcome::Retry,
                    }
                }
                outcome => outcome,
            };
            for k in i..i + group {
                let f = svc.batch[k];
                match (outcome, f.replayable) {
                    // Failed above.
                    (Outcome::Failed(_), _) => {}
                    (_, true) => replay = true,
                    // Restarted, a non-replayable access runs (and, not
                    // served yet, faults) again.
                    (_, false) => {
                        let _ = svc.restart.push_within_capacity(f.chan);
                    }
                }
            }
            i += group;
        }
        core::mem::swap(&mut svc.seen, &mut svc.next);
        if replay || !svc.restart.is_empty() {
            // An engine restarts only once its stale translations are gone.
            self.shared
                .tlb
                .invalidate_all_and_replay(!svc.restart.is_empty());
        }
        if !svc.restart.is_empty() {
            let fifo = &self.shared.fifo;
            let st = fifo.lock();
            for &c in svc.restart.iter().filter(|&&c| st.is_current(c)) {
                fifo.restart_channel(c.chid);
            }
        }
    }

    /// Fails the job behind an unserviceable fault: a stalled compute
    /// access is cancelled in this VM's address space only, and the device
    /// reports `DRM_RSVM_ERROR_FAULT` for each channel whose access the
    /// cancel hit. A fault no access waits on any more (it was replayed
    /// and went on, or its job is gone) fails nothing. Anything else (a
    /// non-replayable fault, or an address a cancel cannot name) stops the
    /// channel, which reports the whole address.
    ///
    /// Under the FIFO lock, and only if the channel is still the one that
    /// faulted: its id cannot be handed to a new channel meanwhile (a
    /// killed process's faults fail after its channels are gone).
    fn fail(&self, f: &GpuFault) {
        let fifo = &self.shared.fifo;
        let st = fifo.lock();
        if !st.is_current(f.chan) {
            return;
        }
        let chid = f.chan.chid;
        if f.replayable && f.va < CANCEL_VA_LIMIT {
            self.shared
                .tlb
                .invalidate(self.aspace.pdb(), f.va, Replay::CancelVaGlobal);
        } else {
            fifo.fences
                .set_error(chid, uapi::DRM_RSVM_ERROR_FAULT, f.va);
            fifo.disable_channel(chid);
        }
    }
}
