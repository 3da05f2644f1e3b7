// SPDX-License-Identifier: GPL-2.0

//! MMU interval notifiers: learn of every change to a range of a process's
//! address space, and read the range without missing one.
//!
//! A device that mirrors CPU page tables (HMM) registers an
//! [`IntervalNotifier`] over the range it mirrors. Every invalidation of the
//! range (`munmap`, `mprotect`, migration, COW, reclaim, ...) calls the
//! driver's [`IntervalNotifierOps::invalidate`] before the CPU page tables
//! change, under the notifier's lock. The driver reads the range with the
//! sequence protocol: [`IntervalNotifier::read_begin`], fault or snapshot the
//! pages, then [`IntervalNotifier::lock_if_unchanged`], which gives the
//! locked state only if no invalidation ran in between. Holding that lock
//! while writing device page tables is what makes them never stale.
//!
//! C header: [`include/linux/mmu_notifier.h`](srctree/include/linux/mmu_notifier.h)

use crate::{
    bindings,
    error::{
        to_result,
        Result, //
    },
    ffi::{
        c_ulong,
        c_void, //
    },
    mm::MmWithUser,
    prelude::*,
    sync::{
        Arc,
        LockClassKey,
        Mutex,
        MutexGuard, //
    },
    types::Opaque, //
};
use core::ptr::addr_of;

/// A `pgmap_owner`: the token that names a device's private memory to HMM,
/// to migrations and in [`Event::Migrate`]. It is only ever compared, never
/// dereferenced, so any address may serve as one (a device's own address
/// is the custom choice); a [`Pagemap`](crate::mm::pagemap::Pagemap) hands
/// out the one it was registered with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PgmapOwner(*const c_void);

// SAFETY: the pointer is a token that is only compared, never dereferenced.
unsafe impl Send for PgmapOwner {}
// SAFETY: as for `Send`.
unsafe impl Sync for PgmapOwner {}

impl PgmapOwner {
    /// No owner: device-private memory of every device is foreign.
    pub const NONE: Self = Self(core::ptr::null());

    /// The owner named by `token` (compared, never dereferenced).
    pub const fn new(token: *const c_void) -> Self {
        Self(token)
    }

    /// The token, for the C side.
    pub(crate) fn as_ptr(self) -> *mut c_void {
        self.0.cast_mut()
    }
}

/// Why an invalidation happens (`enum mmu_notifier_event`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The range is unmapped (`munmap`, `mremap`).
    Unmap,
    /// Page table entries are cleared (reclaim, page migration, ...).
    Clear,
    /// The protection of the whole VMA changes (`mprotect`).
    ProtectionVma,
    /// The write permission of pages changes (e.g. COW after `fork`).
    ProtectionPage,
    /// Soft-dirty tracking write-protects the pages.
    SoftDirty,
    /// The address space goes away, or the notifier is being removed.
    Release,
    /// Pages migrate to or from device memory; `owner` is the migration's
    /// `pgmap_owner`, so a driver can ignore its own migrations.
    Migrate {
        /// The `pgmap_owner` of the migration.
        owner: PgmapOwner,
    },
    /// Pages become device-exclusive; `owner` as for [`Event::Migrate`].
    Exclusive {
        /// The owner of the exclusive access.
        owner: PgmapOwner,
    },
    /// An event this binding does not know.
    Unknown(u32),
}

/// The range of an invalidation.
pub struct NotifierRange<'a>(&'a bindings::mmu_notifier_range);

impl NotifierRange<'_> {
    /// First address of the invalidated range.
    pub fn start(&self) -> usize {
        self.0.start
    }

    /// End (exclusive) of the invalidated range.
    pub fn end(&self) -> usize {
        self.0.end
    }

    /// Whether the callback may sleep. When it may not, it must not wait
    /// for anything and returns `false` if it would have to.
    pub fn is_blockable(&self) -> bool {
        // SAFETY: `self.0` is a valid range for the duration of the callback.
        unsafe { bindings::mmu_notifier_range_blockable(self.0) }
    }

    /// Why the invalidation happens.
    pub fn event(&self) -> Event {
        let owner = PgmapOwner::new(self.0.owner.cast_const());
        match self.0.event {
            bindings::mmu_notifier_event_MMU_NOTIFY_UNMAP => Event::Unmap,
            bindings::mmu_notifier_event_MMU_NOTIFY_CLEAR => Event::Clear,
            bindings::mmu_notifier_event_MMU_NOTIFY_PROTECTION_VMA => Event::ProtectionVma,
            bindings::mmu_notifier_event_MMU_NOTIFY_PROTECTION_PAGE => Event::ProtectionPage,
            bindings::mmu_notifier_event_MMU_NOTIFY_SOFT_DIRTY => Event::SoftDirty,
            bindings::mmu_notifier_event_MMU_NOTIFY_RELEASE => Event::Release,
            bindings::mmu_notifier_event_MMU_NOTIFY_MIGRATE => Event::Migrate { owner },
            bindings::mmu_notifier_event_MMU_NOTIFY_EXCLUSIVE => Event::Exclusive { owner },
            other => Event::Unknown(other),
        }
    }
}

/// What a driver does when its range is invalidated.
///
/// # Examples
///
/// ```ignore
/// impl IntervalNotifierOps for Mirror {
///     type State = DevicePageTables;
///
///     fn invalidate(&self, pt: &mut DevicePageTables, range: &NotifierRange<'_>) -> bool {
///         if !range.is_blockable() && pt.busy() {
///             return false;
///         }
///         pt.unmap(range.start(), range.end());
///         pt.flush_tlb();
///         true
///     }
/// }
/// ```
pub trait IntervalNotifierOps: Send + Sync + Sized {
    /// Driver state protected by the notifier lock: typically the device
    /// page-table state of the range.
    type State: Send + Unpin;

    /// Called before the CPU page tables of `range` change, with the
    /// notifier lock held and the sequence number already advanced (so
    /// readers will retry). On return the device must no longer use any
    /// translation of `range`.
    ///
    /// When `range.is_blockable()` is false this must not sleep; return
    /// `false` if it would have to.
    fn invalidate(&self, state: &mut Self::State, range: &NotifierRange<'_>) -> bool;
}

/// Runs `f` as if in memory reclaim, for lockdep only: every lock `f` takes
/// is recorded as taken under reclaim, so that allocating memory (which may
/// reclaim) while holding it is reported at once, as a deadlock it could
/// be, rather than when reclaim first happens to call back into the lock's
/// owner. MMU notifiers run in reclaim; what their callbacks lock must be
/// primed with this (`drm_gpusvm` does the same).
pub fn annotate_reclaim(f: impl FnOnce()) {
    // SAFETY: no requirement; lockdep bookkeeping only (empty without it).
    unsafe { bindings::lockdep_reclaim_enter() };
    f();
    // SAFETY: as above, paired with the enter.
    unsafe { bindings::lockdep_reclaim_exit() };
}

/// Creates an [`IntervalNotifier`] whose state lock has a lock class of its
/// own, named after the call site (as [`new_mutex!`](crate::new_mutex)
/// does); arguments as [`IntervalNotifier::new`].
#[macro_export]
macro_rules! new_interval_notifier {
    ($mm:expr, $start:expr, $len:expr, $ops:expr, $state:expr $(,)?) => {
        $crate::mm::mmu_notifier::IntervalNotifier::new_with_class(
            $mm,
            $start,
            $len,
            $ops,
            $state,
            $crate::optional_name!(),
            $crate::static_lock_class!(),
        )
    };
}
pub use new_interval_notifier;

/// The lock class shared by notifiers made with [`IntervalNotifier::new`],
/// and its name.
///
/// Not inside the generic `IntervalNotifier::new`: there the class key would
/// exist once but the name literal once per crate that instantiates it, and
/// lockdep reports one key with two names as a conflict.
fn state_lock_class() -> Pin<&'static LockClassKey> {
    crate::static_lock_class!()
}

/// See [`state_lock_class`].
static STATE_LOCK_NAME: &CStr = c"IntervalNotifier::state";

/// The sequence number a read of the range started at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadSeq(c_ulong);

impl ReadSeq {
    pub(crate) fn from_raw(seq: c_ulong) -> Self {
        Self(seq)
    }
}

/// An MMU interval notifier over `[start, start + len)` of an address space.
///
/// It is pinned and reference-counted; dropping the last reference removes
/// it, waiting for callbacks in flight.
///
/// # Invariants
///
/// `notifier` is inserted into the address space for as long as `Self`
/// exists, with `OPS` as its operations.
#[pin_data(PinnedDrop)]
pub struct IntervalNotifier<T: IntervalNotifierOps> {
    #[pin]
    notifier: Opaque<bindings::mmu_interval_notifier>,
    #[pin]
    state: Mutex<T::State>,
    ops: T,
    start: usize,
    len: usize,
}

// SAFETY: the C notifier is only touched by the MM core and through `&self`
// methods that call thread-safe C functions; `T` and its state are
// `Send + Sync`/`Send` (the state behind a mutex).
unsafe impl<T: IntervalNotifierOps> Send for IntervalNotifier<T> {}
// SAFETY: see `Send`.
unsafe impl<T: IntervalNotifierOps> Sync for IntervalNotifier<T> {}

impl<T: IntervalNotifierOps> IntervalNotifier<T> {
    const OPS: bindings::mmu_interval_notifier_ops = bindings::mmu_interval_notifier_ops {
        invalidate: Some(Self::invalidate_callback),
        invalidate_start: None,
        invalidate_finish: None,
    };

    /// Registers a notifier over `[start, start + len)` of `mm`.
    ///
    /// # Examples
    ///
    /// ```ignore
    /// struct Mirror;
    /// impl IntervalNotifierOps for Mirror {
    ///     type State = DevicePageTables;
    ///     fn invalidate(&self, pt: &mut DevicePageTables, r: &NotifierRange<'_>) -> bool {
    ///         pt.unmap(r.start(), r.end());
    ///         true
    ///     }
    /// }
    /// let n = IntervalNotifier::new(mm, start, len, Mirror, DevicePageTables::new())?;
    /// ```
    ///
    /// The state locks of all notifiers made this way share one lock
    /// class; [`new_interval_notifier!`] gives a call site its own.
    pub fn new(
        mm: &MmWithUser,
        start: usize,
        len: usize,
        ops: T,
        state: impl PinInit<T::State>,
    ) -> Result<Arc<Self>> {
        Self::new_with_class(
            mm,
            start,
            len,
            ops,
            state,
            STATE_LOCK_NAME,
            state_lock_class(),
        )
    }

    /// [`Self::new`] with the state lock in class `key`, named `name` (see
    /// [`new_interval_notifier!`]). The state lock is primed for lockdep as
    /// taken in reclaim ([`annotate_reclaim`]), which it is: nothing may be
    /// allocated under it.
    pub fn new_with_class(
        mm: &MmWithUser,
        start: usize,
        len: usize,
        ops: T,
        state: impl PinInit<T::State>,
        name: &'static CStr,
        key: Pin<&'static LockClassKey>,
    ) -> Result<Arc<Self>> {
        if len == 0 || start.checked_add(len).is_none() {
            return Err(EINVAL);
        }
        let (c_start, c_len) = (start as c_ulong, len as c_ulong);
        let n = Arc::pin_init(
            try_pin_init!(&this in Self {
                notifier: Opaque::zeroed(),
                state <- Mutex::new(state, name, key),
                ops,
                start,
                len,
                _: {
                    // SAFETY: `this` is pinned and every other field is
                    // initialised, so the callback may run at once; `OPS` is
                    // `'static`; `mm` has users, as insertion requires. The
                    // C side keeps its own reference on `mm`.
                    to_result(unsafe {
                        bindings::mmu_interval_notifier_insert(
                            Opaque::cast_into(addr_of!((*this.as_ptr()).notifier)),
                            mm.as_raw(),
                            c_start,
                            c_len,
                            &Self::OPS,
                        )
                    })?;
                },
            }),
            GFP_KERNEL,
        )?;
        annotate_reclaim(|| drop(n.state.lock()));
        Ok(n)
    }

    pub(crate) fn raw(&self) -> *mut bindings::mmu_interval_notifier {
        self.notifier.get()
    }

    /// First address covered.
    pub fn start(&self) -> usize {
        self.start
    }

    /// Bytes covered.
    pub fn size(&self) -> usize {
        self.len
    }

    /// Whether `[start, end)` lies inside the covered range.
    pub fn covers(&self, start: usize, end: usize) -> bool {
        start >= self.start && start <= end && end - self.start <= self.len
    }

    /// The driver's operations.
    pub fn ops(&self) -> &T {
        &self.ops
    }

    /// Starts a read of the range: waits for invalidations in progress.
    pub fn read_begin(&self) -> ReadSeq {
        // SAFETY: the notifier is inserted (type invariant).
        ReadSeq(unsafe { bindings::mmu_interval_read_begin(self.raw()) })
    }

    /// Whether an invalidation has run since `seq` (a hint; only
    /// [`Self::lock_if_unchanged`] is authoritative).
    pub fn check_retry(&self, seq: ReadSeq) -> bool {
        // SAFETY: the notifier is inserted (type invariant).
        unsafe { bindings::mmu_interval_check_retry(self.raw(), seq.0) }
    }

    /// Ends a read: takes the notifier lock and returns the state only if
    /// no invalidation ran since `seq`. With `None` the caller starts over.
    pub fn lock_if_unchanged(&self, seq: ReadSeq) -> Option<MutexGuard<'_, T::State>> {
        let guard = self.state.lock();
        // SAFETY: the notifier is inserted, and the notifier lock, which the
        // callback holds around `mmu_interval_set_seq`, is held.
        let retry = unsafe { bindings::mmu_interval_read_retry(self.raw(), seq.0) };
        (!retry).then_some(guard)
    }

    /// Takes the notifier lock unconditionally (to tear down, or to read
    /// state without mirroring anything new).
    pub fn lock(&self) -> MutexGuard<'_, T::State> {
        self.state.lock()
    }

    /// The C callback.
    ///
    /// # Safety
    ///
    /// Called by the MM core only, with `sub` registered with `OPS`.
    unsafe extern "C" fn invalidate_callback(
        sub: *mut bindings::mmu_interval_notifier,
        range: *const bindings::mmu_notifier_range,
        cur_seq: c_ulong,
    ) -> bool {
        // SAFETY: only `Self::new` registers `OPS`, with the `notifier` field
        // of a `Self`, which stays alive until `PinnedDrop` has removed it
        // and waited for callbacks in flight.
        let this = unsafe { &*kernel::container_of!(Opaque::cast_from(sub), Self, notifier) };
        // SAFETY: the MM core passes a range valid for the whole call.
        let range = NotifierRange(unsafe { &*range });
        let mut state = if range.is_blockable() {
            this.state.lock()
        } else {
            match this.state.try_lock() {
                Some(g) => g,
                None => return false,
            }
        };
        // SAFETY: `sub` is valid (above); the notifier lock is held, which
        // `lock_if_unchanged` also holds around `mmu_interval_read_retry`.
        unsafe { bindings::mmu_interval_set_seq(sub, cur_seq) };
        this.ops.invalidate(&mut state, &range)
    }
}

#[pinned_drop]
impl<T: IntervalNotifierOps> PinnedDrop for IntervalNotifier<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: the notifier is inserted (type invariant); removal waits
        // for callbacks in flight, after which nothing refers to `self`.
        // Removal must not happen from inside the callback, which holds a
        // reference only through `&self`, never the last `Arc`.
        unsafe { bindings::mmu_interval_notifier_remove(self.raw()) };
    }
}
