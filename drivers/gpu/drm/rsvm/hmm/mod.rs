// SPDX-License-Identifier: GPL-2.0

//! The SVM core: a GPU VM whose page tables mirror ranges of one process's
//! address space.
//!
//! Each SVM-bound range has an MMU interval notifier ([`Mirror`]). GPU
//! faults are served with `hmm_range_fault`: a read fault asks for read
//! access and maps the page read-only (so a GPU read never dirties a page),
//! a write or atomic fault asks for write access (breaking COW and dirtying
//! the page on the CPU side first) and maps it writable. Pages around the
//! faulting one that the CPU already maps are mirrored read-only in the same
//! pass. Every CPU page-table change of a range reaches [`Mirror::invalidate`]
//! first, which clears the PTEs and invalidates the GPU TLB before it returns.
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
//! that keeps faulting after being served ([`MAX_REPEATS`] batches in a row)
//! fails its job instead of being served forever.
//!
//! Lock order: the notifier lock of a range, then the page-table lock. Page
//! tables are never allocated under either (see [`Reserve`]); a fault worker
//! allocates none at all (it takes them from the device's pool). The worker
//! state (`svc`) is taken only by the VM's work item; the queue is a leaf
//! spinlock taken under the FIFO lock by the interrupt thread.

use kernel::{
    device::{Bound, Device},
    impl_has_work,
    mm::{
        hmm::{self as khmm, PfnBuf, Range, Request},
        mmu_notifier::{IntervalNotifier, IntervalNotifierOps, NotifierRange, ReadSeq},
        Mm, MmWithUser,
    },
    new_mutex, new_spinlock, new_work,
    page::PAGE_SIZE,
    prelude::*,
    sync::{
        aref::ARef,
        atomic::{Atomic, Relaxed},
        Arc, Mutex, SpinLock,
    },
    time::msecs_to_jiffies,
    uapi,
    workqueue::{self, Work, WorkItem},
};

use crate::{
    fifo::{ChanRef, KERNEL_VA_SIZE, KERNEL_VA_START},
    gpu::{Hw, Replay, CANCEL_VA_LIMIT},
    mem::DmaBuf,
    mmu::{Garbage, PageSize, PageTables, PteFlags, Reserve},
};

/// SVM ranges must end at or below this address (the x86-64 and arm64
/// 4-level user address space).
pub(crate) const SVM_VA_LIMIT: u64 = 1 << 47;

/// Bytes around a faulting page that are mirrored with it if the CPU maps
/// them (a naturally aligned window).
const FAULT_WINDOW: u64 = 64 << 10;

/// How long one fault may retry against concurrent invalidations.
const FAULT_TIMEOUT_MS: u32 = 2000;

/// Replayable faults a VM's queue holds; a full queue drops more (they
/// fault again after the VM's next replay, which a non-empty queue
/// guarantees).
const QUEUE_REPLAYABLE: usize = 512;
/// Room kept for non-replayable faults, which no replay brings back: one
/// per channel.
const QUEUE_NON_REPLAYABLE: usize = crate::fifo::MAX_CHANNELS_PER_VM;

/// Batches in a row in which one page may fault again after being served,
/// with nothing invalidated in its range meanwhile, before its job fails: a
/// fault that cannot make progress must not be served forever.
const MAX_REPEATS: u32 = 32;

/// Pages one mirror pass handles at most (a 2 MiB block).
const MIRROR_PAGES: usize = 512;

/// One GPU fault, as a VM's worker serves it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SvmFault {
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
    Failed,
}

/// A page a batch served.
#[derive(Clone, Copy)]
struct Served {
    va: u64,
    /// Batches in a row that served it with its range unchanged.
    repeats: u32,
    /// The range ([`Mirror::id`]) and the notifier sequence it was mapped
    /// at: a later invalidation of the range makes its next fault a new one.
    range: u64,
    seq: ReadSeq,
}

/// The fault worker's state, kept between batches so that serving a fault
/// allocates nothing.
struct Service {
    batch: KVec<SvmFault>,
    /// Pages served in the last batch, sorted; `next` is built from the
    /// current batch.
    seen: KVec<Served>,
    next: KVec<Served>,
    /// Channels whose non-replayable fault was served, to restart.
    restart: KVec<ChanRef>,
    pfns: PfnBuf,
    reserve: Reserve,
}

impl Service {
    fn new() -> Result<Self> {
        let cap = QUEUE_REPLAYABLE + QUEUE_NON_REPLAYABLE;
        Ok(Self {
            batch: KVec::with_capacity(cap, GFP_KERNEL)?,
            seen: KVec::with_capacity(cap, GFP_KERNEL)?,
            next: KVec::with_capacity(cap, GFP_KERNEL)?,
            restart: KVec::with_capacity(cap, GFP_KERNEL)?,
            pfns: PfnBuf::new((FAULT_WINDOW as usize) / PAGE_SIZE)?,
            reserve: Reserve::default(),
        })
    }
}

/// The page tables of a VM and what is needed to flush the GPU's view.
#[pin_data(PinnedDrop)]
struct VmPt {
    hw: Arc<Hw>,
    pdb: u64,
    #[pin]
    tables: Mutex<PageTables>,
}

impl VmPt {
    /// Clears `[start, end)`, frees emptied tables (`prune`) and flushes the
    /// TLB. With `prune` false it neither sleeps nor frees.
    fn unmap(&self, tables: &mut PageTables, start: u64, end: u64, prune: bool) -> Garbage {
        let mut garbage = Garbage::default();
        let cleared = tables.unmap(start, end, prune, &mut garbage);
        if cleared != 0 || !garbage.is_empty() {
            self.hw.invalidate_tlb(self.pdb, 0, Replay::None);
        }
        garbage
    }
}

#[pinned_drop]
impl PinnedDrop for VmPt {
    fn drop(self: Pin<&mut Self>) {
        // The GPU may still cache translations of this address space; its
        // page directory's page may become another VM's next: forget them
        // before the tables are freed.
        self.hw.invalidate_tlb(self.pdb, 0, Replay::None);
    }
}

/// State of a mirrored range under its notifier lock.
struct MirrorState {
    /// Cleared on unbind: nothing may be mapped for the range any more.
    live: bool,
}

/// The interval-notifier side of one SVM range.
struct Mirror {
    pt: Arc<VmPt>,
    /// Unique among the VM's ranges, ever (an address is not: a range
    /// bound again where one was unbound may get the freed notifier's).
    id: u64,
}

impl IntervalNotifierOps for Mirror {
    type State = MirrorState;

    fn invalidate(&self, _st: &mut MirrorState, range: &NotifierRange<'_>) -> bool {
        let blockable = range.is_blockable();
        let mut tables = if blockable {
            self.pt.tables.lock()
        } else {
            match self.pt.tables.try_lock() {
                Some(t) => t,
                None => return false,
            }
        };
        let garbage = self.pt.unmap(
            &mut tables,
            range.start() as u64,
            range.end() as u64,
            blockable,
        );
        drop(tables);
        drop(garbage);
        true
    }
}

/// A GPU virtual address space that mirrors one process.
#[pin_data]
pub(crate) struct Vm {
    hw: Arc<Hw>,
    /// The process whose address space is mirrored.
    mm: ARef<Mm>,
    pt: Arc<VmPt>,
    /// Bound ranges, by start address.
    #[pin]
    ranges: Mutex<KVec<Arc<IntervalNotifier<Mirror>>>>,
    /// The next range's [`Mirror::id`].
    next_range: Atomic<u64>,
    /// Faults waiting for the worker.
    #[pin]
    queue: SpinLock<KVec<SvmFault>>,
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
        let hw = vm.hw.clone();
        // The VM may go with this reference: before the device may.
        drop(vm);
        hw.fault_work_end();
    }
}

impl Vm {
    /// An empty VM mirroring nothing yet of `mm`.
    pub(crate) fn new(dev: &Device<Bound>, hw: &Arc<Hw>, mm: &MmWithUser) -> Result<Arc<Self>> {
        let tables = PageTables::new(dev)?;
        let pdb = tables.pdb();
        let pt = Arc::pin_init(
            try_pin_init!(VmPt {
                hw: hw.clone(),
                pdb,
                tables <- new_mutex!(tables),
            }),
            GFP_KERNEL,
        )?;
        let mm: &Mm = mm;
        let queue = KVec::with_capacity(QUEUE_REPLAYABLE + QUEUE_NON_REPLAYABLE, GFP_KERNEL)?;
        Arc::pin_init(
            try_pin_init!(Self {
                hw: hw.clone(),
                mm: ARef::from(mm),
                pt,
                ranges <- new_mutex!(KVec::new()),
                next_range: Atomic::new(0),
                queue <- new_spinlock!(queue),
                svc <- new_mutex!(Service::new()?),
                work <- new_work!("rsvm::Vm::work"),
            }),
            GFP_KERNEL,
        )
    }

    /// Queues a fault for this VM's worker (the interrupt thread; then
    /// [`Vm::schedule`]). A fault of a page already queued for the same
    /// channel is merged into it.
    pub(crate) fn queue_fault(&self, f: SvmFault) {
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
        let hw = vm.hw.clone();
        hw.fault_work_begin();
        // Already queued: that run takes what was just added.
        if workqueue::system_unbound().enqueue(vm).is_err() {
            hw.fault_work_end();
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
            let n = self.range_at(va);
            // A repeat: served in the last batch, its range unchanged since.
            let repeats = match (&n, svc.seen.binary_search_by_key(&va, |p| p.va)) {
                (Some(n), Ok(k))
                    if svc.seen[k].range == n.ops().id && !n.check_retry(svc.seen[k].seq) =>
                {
                    svc.seen[k].repeats + 1
                }
                _ => 1,
            };
            let outcome = match n {
                Some(n) if !fatal && repeats <= MAX_REPEATS => {
                    match self.handle_fault(&n, va, write, &mut svc.pfns, &mut svc.reserve) {
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
                        Err(_) => Outcome::Failed,
                    }
                }
                _ => Outcome::Failed,
            };
            for f in &svc.batch[i..i + group] {
                match (outcome, f.replayable) {
                    (Outcome::Failed, _) => self.fail(f),
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
            self.hw.invalidate_all_and_replay(!svc.restart.is_empty());
        }
        if !svc.restart.is_empty() {
            let fifo = self.hw.fifo.lock();
            for &c in svc.restart.iter().filter(|&&c| fifo.is_current(c)) {
                self.hw.restart_channel(c.chid);
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
    fn fail(&self, f: &SvmFault) {
        let fifo = self.hw.fifo.lock();
        if !fifo.is_current(f.chan) {
            return;
        }
        let chid = f.chan.chid;
        if f.replayable && f.va < CANCEL_VA_LIMIT {
            self.hw
                .invalidate_tlb(self.pt.pdb, f.va, Replay::CancelVaGlobal);
        } else {
            self.hw
                .set_channel_error(chid, uapi::DRM_RSVM_ERROR_FAULT, f.va);
            self.hw.disable_channel(chid);
        }
    }

    /// Whether `mm` is the address space this VM mirrors.
    pub(crate) fn is_owner(&self, mm: &MmWithUser) -> bool {
        core::ptr::eq(self.mm.as_raw(), mm.as_raw())
    }

    /// Page directory base, for instance blocks.
    pub(crate) fn pdb(&self) -> u64 {
        self.pt.pdb
    }

    /// Starts mirroring `[start, start + len)` of `mm` (the owner).
    pub(crate) fn bind(
        &self,
        dev: &Device<Bound>,
        mm: &MmWithUser,
        start: u64,
        len: u64,
        populate: bool,
    ) -> Result {
        let page = PAGE_SIZE as u64;
        let end = start.checked_add(len).ok_or(EINVAL)?;
        if start % page != 0 || len % page != 0 || len == 0 || end > SVM_VA_LIMIT {
            return Err(EINVAL);
        }
        if start < KERNEL_VA_START + KERNEL_VA_SIZE && end > KERNEL_VA_START {
            return Err(EINVAL);
        }
        let n = {
            let mut ranges = self.ranges.lock();
            if ranges.iter().any(|r| {
                let (s, e) = (r.start() as u64, (r.start() + r.size()) as u64);
                start < e && end > s
            }) {
                return Err(EEXIST);
            }
            let n = IntervalNotifier::new(
                mm,
                start as usize,
                len as usize,
                Mirror {
                    pt: self.pt.clone(),
                    id: self.next_range.fetch_add(1, Relaxed),
                },
                MirrorState { live: true },
            )?;
            let at = ranges
                .iter()
                .position(|r| r.start() as u64 > start)
                .unwrap_or(ranges.len());
            ranges.insert_within_capacity(at, n.clone()).or_else(|_| {
                ranges.reserve(1, GFP_KERNEL)?;
                ranges
                    .insert_within_capacity(at, n.clone())
                    .map_err(|_| ENOMEM)
            })?;
            n
        };
        if populate {
            self.populate(dev, &n)?;
        }
        Ok(())
    }

    /// Stops mirroring a range bound exactly as `[start, start + len)`.
    pub(crate) fn unbind(&self, start: u64, len: u64) -> Result {
        let n = {
            let mut ranges = self.ranges.lock();
            let i = ranges
                .iter()
                .position(|r| r.start() as u64 == start && r.size() as u64 == len)
                .ok_or(ENOENT)?;
            ranges.remove(i)?
        };
        let garbage = {
            let mut st = n.lock();
            st.live = false;
            let mut tables = self.pt.tables.lock();
            self.pt.unmap(&mut tables, start, start + len, true)
        };
        drop(garbage);
        Ok(())
    }

    /// Mirrors, read-only, every page of `n` that the CPU maps now. Only
    /// what VMAs cover is walked, so holes cost nothing; a fatal signal
    /// stops the walk (`EINTR`).
    fn populate(&self, dev: &Device<Bound>, n: &IntervalNotifier<Mirror>) -> Result {
        let huge = PageSize::Huge.bytes() as usize;
        let mm = self.mm.mmget_not_zero().ok_or(EFAULT)?;
        let (start, end) = (n.start(), n.start() + n.size());
        let mut pfns = PfnBuf::new(MIRROR_PAGES)?;
        let mut reserve = Reserve::default();
        let mut at = start;
        let res = loop {
            let Some((s, e)) = khmm::next_mapped(&mm, at, end) else {
                break Ok(());
            };
            let mut block = s & !(huge - 1);
            let res = loop {
                if block >= e {
                    break Ok(());
                }
                if khmm::fatal_signal_pending() {
                    break Err(EINTR);
                }
                let (bs, be) = (block.max(s), (block + huge).min(e));
                if let Err(err) = self.mirror(
                    Some(dev),
                    n,
                    bs as u64,
                    be as u64,
                    None,
                    &mut pfns,
                    &mut reserve,
                ) {
                    break Err(err);
                }
                block += huge;
            };
            if res.is_err() || e >= end {
                break res;
            }
            at = e;
        };
        // New PTEs only (a mirror pass never replaces one here), but a
        // cached directory entry must not outlive them.
        self.hw.invalidate_tlb(self.pt.pdb, 0, Replay::None);
        res
    }

    /// Serves a GPU fault at `va` (a write or atomic if `write`) with the
    /// worker's buffers; `EAGAIN` if page tables ran out (the access faults
    /// again). The TLB is not flushed: the batch's replay does it.
    fn handle_fault(
        &self,
        n: &IntervalNotifier<Mirror>,
        va: u64,
        write: bool,
        pfns: &mut PfnBuf,
        reserve: &mut Reserve,
    ) -> Result<ReadSeq> {
        let page = va & !(PAGE_SIZE as u64 - 1);
        let (rs, re) = (n.start() as u64, (n.start() + n.size()) as u64);
        let s = (page & !(FAULT_WINDOW - 1)).max(rs);
        let e = ((page & !(FAULT_WINDOW - 1)) + FAULT_WINDOW).min(re);
        self.mirror(None, n, s, e, Some((page, write)), pfns, reserve)
    }

    /// The bound range that covers `va`.
    fn range_at(&self, va: u64) -> Option<Arc<IntervalNotifier<Mirror>>> {
        self.ranges
            .lock()
            .iter()
            .find(|r| r.covers(va as usize, va as usize + 1))
            .cloned()
    }

    /// Snapshots `[s, e)` (inside one 2 MiB block and the range of `n`) and
    /// mirrors what the CPU maps; `fault` names a page to fault in first.
    /// Page tables come from `reserve`, topped up from the device's pool,
    /// or with `dev` allocated; without `dev`, `EAGAIN` when both ran out.
    /// Returns the notifier sequence the mapping is current at.
    #[allow(clippy::too_many_arguments)]
    fn mirror(
        &self,
        dev: Option<&Device<Bound>>,
        n: &IntervalNotifier<Mirror>,
        s: u64,
        e: u64,
        fault: Option<(u64, bool)>,
        pfns: &mut PfnBuf,
        reserve: &mut Reserve,
    ) -> Result<ReadSeq> {
        // The worker is not the process: keep its address space alive.
        let _users = self.mm.mmget_not_zero().ok_or(EFAULT)?;
        let mut range = Range::new_in(n, s as usize, e as usize, Request::Snapshot, pfns)?;
        if let Some((page, write)) = fault {
            let req = if write { Request::Write } else { Request::Read };
            range.set_request(((page - s) / PAGE_SIZE as u64) as usize, req)?;
        }
        loop {
            if !reserve.fill_from(&self.hw.pt_pool) {
                if let Some(dev) = dev {
                    reserve.fill(dev)?;
                }
            }
            let seq = range.fault(msecs_to_jiffies(FAULT_TIMEOUT_MS))?;
            let Some(st) = n.lock_if_unchanged(seq) else {
                continue;
            };
            if !st.live {
                return Err(EFAULT);
            }
            let mut garbage = Garbage::default();
            let res = {
                let mut tables = self.pt.tables.lock();
                self.map_range(&mut tables, n, &range, s, fault, reserve, &mut garbage)
            };
            drop(st);
            // Freed tables must be forgotten by the GPU before they go.
            if !garbage.is_empty() {
                self.hw.invalidate_tlb(self.pt.pdb, 0, Replay::None);
            }
            drop(garbage);
            match res {
                Err(err)
                    if err == EAGAIN && (dev.is_some() || reserve.fill_from(&self.hw.pt_pool)) =>
                {
                    continue
                }
                res => return res.map(|_| seq),
            }
        }
    }

    /// Writes the PTEs for the pages `range` found valid; returns whether it
    /// wrote any.
    #[allow(clippy::too_many_arguments)]
    fn map_range(
        &self,
        tables: &mut PageTables,
        n: &IntervalNotifier<Mirror>,
        range: &Range<'_, Mirror>,
        s: u64,
        fault: Option<(u64, bool)>,
        reserve: &mut Reserve,
        garbage: &mut Garbage,
    ) -> Result<bool> {
        let huge = PageSize::Huge.bytes();
        let mut wrote = false;
        for (i, p) in range.pages().enumerate() {
            let va = s + (i * PAGE_SIZE) as u64;
            if !p.is_valid() {
                continue;
            }
            let pa = (p.pfn() as u64) << 12;
            let faulting = fault.filter(|&(page, _)| page == va);
            let Some((_, write)) = faulting else {
                // A neighbour: mirror it read-only unless already mapped.
                if !tables.is_mapped(va) {
                    let ro = PteFlags {
                        read_only: true,
                        privileged: false,
                    };
                    tables.map(va, pa, PageSize::Small, ro, reserve, garbage)?;
                    wrote = true;
                }
                continue;
            };
            let flags = PteFlags {
                read_only: !write,
                privileged: false,
            };
            // A PMD-mapped THP wholly inside the range: one 2 MiB PTE.
            let block = va & !(huge - 1);
            let block_pa = pa - (va - block);
            if p.map_order() >= 9
                && block_pa % huge == 0
                && n.covers(block as usize, (block + huge) as usize)
            {
                tables.map(block, block_pa, PageSize::Huge, flags, reserve, garbage)?;
            } else {
                tables.map(va, pa, PageSize::Small, flags, reserve, garbage)?;
            }
            wrote = true;
        }
        Ok(wrote)
    }

    /// Maps driver buffers at kernel addresses, privileged (user work
    /// cannot touch them). All of them lie in one 2 MiB block.
    pub(crate) fn map_kernel(&self, dev: &Device<Bound>, bufs: &[(u64, &DmaBuf)]) -> Result {
        let flags = PteFlags {
            read_only: false,
            privileged: true,
        };
        let mut reserve = Reserve::default();
        loop {
            reserve.fill(dev)?;
            let mut garbage = Garbage::default();
            let mut tables = self.pt.tables.lock();
            let res = bufs.iter().try_for_each(|(va, buf)| {
                (0..buf.size() as u64)
                    .step_by(PAGE_SIZE)
                    .try_for_each(|off| {
                        tables.map(
                            va + off,
                            buf.addr() + off,
                            PageSize::Small,
                            flags,
                            &mut reserve,
                            &mut garbage,
                        )
                    })
            });
            drop(tables);
            match res {
                Err(err) if err == EAGAIN => continue,
                res => return res,
            }
        }
    }

    /// Unmaps kernel addresses `[va, va + len)`.
    pub(crate) fn unmap_kernel(&self, va: u64, len: u64) {
        let garbage = {
            let mut tables = self.pt.tables.lock();
            self.pt.unmap(&mut tables, va, va + len, true)
        };
        drop(garbage);
    }
}
