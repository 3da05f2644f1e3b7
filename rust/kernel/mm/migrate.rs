// SPDX-License-Identifier: GPL-2.0

//! Migrating the pages of a VMA range: `migrate_vma_setup()`,
//! `migrate_vma_pages()`, `migrate_vma_finalize()`.
//!
//! A [`MigrateVma`] session goes through its steps in order, enforced by
//! its type: [`MigrateVma::setup`] collects and isolates the source pages
//! (`Collected`), the caller provides destination pages for the entries it
//! wants to move, [`MigrateVma::migrate`] switches the CPU page tables over
//! (`Migrated`), and [`MigrateVma::finalize`] releases everything. Dropping
//! a session at any step finalizes it, which puts back every page that did
//! not move; a session cannot leak isolated pages.
//!
//! The session borrows the VMA, so the mmap lock it was looked up under is
//! held from setup to finalize.
//!
//! C header: [`include/linux/migrate.h`](srctree/include/linux/migrate.h)

#[cfg(CONFIG_DEVICE_PRIVATE)]
use crate::mm::pagemap::{
    DeviceFolio,
    Pagemap,
    PagemapOps, //
};
use crate::{
    alloc::KVVec,
    bindings,
    error::{
        to_result,
        Result, //
    },
    ffi::{
        c_ulong,
        c_void, //
    },
    mm::{
        mmu_notifier::PgmapOwner,
        virt::VmaRef, //
    },
    page::{
        BorrowedPage,
        Page,
        PAGE_SIZE, //
    },
    prelude::*, //
};
use core::{
    marker::PhantomData,
    ptr::NonNull, //
};

/// Which pages a session collects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Select(c_ulong);

impl Select {
    /// Pages in system memory.
    pub const SYSTEM: Self =
        Self(bindings::migrate_vma_direction_MIGRATE_VMA_SELECT_SYSTEM as c_ulong);
    /// Device-private pages of the session's owner.
    pub const DEVICE_PRIVATE: Self =
        Self(bindings::migrate_vma_direction_MIGRATE_VMA_SELECT_DEVICE_PRIVATE as c_ulong);
    /// Huge (compound) pages are collected whole rather than split.
    pub const COMPOUND: Self =
        Self(bindings::migrate_vma_direction_MIGRATE_VMA_SELECT_COMPOUND as c_ulong);
}

impl core::ops::BitOr for Select {
    type Output = Self;

    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

/// The `migrate_pfn` entry of `page`.
pub(crate) fn migrate_pfn_of(page: NonNull<bindings::page>) -> c_ulong {
    // SAFETY: a pure function of a valid page.
    unsafe { bindings::migrate_pfn(bindings::page_to_pfn(page.as_ptr())) }
}

/// Allocates a zeroed system folio of `order`, locked, to be a migration
/// destination.
pub(crate) fn alloc_locked_folio(order: u32) -> Option<NonNull<bindings::page>> {
    // SAFETY: plain allocation; checked below.
    let folio = unsafe {
        bindings::folio_alloc(bindings::GFP_HIGHUSER_MOVABLE | bindings::__GFP_ZERO, order)
    };
    let page = NonNull::new(folio.cast::<bindings::page>())?;
    // SAFETY: a new folio we own.
    unsafe { bindings::lock_page(page.as_ptr()) };
    Some(page)
}

/// Copies a page's contents into another page.
pub fn copy_page(to: &Page, from: &Page) {
    // SAFETY: both are valid pages; `copy_highpage` maps them as needed.
    unsafe { bindings::copy_highpage(to.as_ptr(), from.as_ptr()) };
}

/// Source pages collected, destinations being provided.
pub struct Collected;
/// CPU page tables switched over.
pub struct Migrated;

/// One source entry of a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Source(c_ulong);

impl Source {
    /// The page can be migrated (it was collected and isolated).
    pub fn can_migrate(self) -> bool {
        self.0 & bindings::MIGRATE_PFN_MIGRATE as c_ulong != 0
    }

    /// The CPU mapped the page writable.
    pub fn is_writable(self) -> bool {
        self.0 & bindings::MIGRATE_PFN_WRITE as c_ulong != 0
    }

    /// A page exists (otherwise the entry is empty: never touched, or the
    /// zero page).
    pub fn has_page(self) -> bool {
        self.0 & bindings::MIGRATE_PFN_VALID as c_ulong != 0
    }

    /// The page frame number, if there is a page.
    pub fn pfn(self) -> Option<usize> {
        self.has_page()
            .then_some(self.0 >> bindings::MIGRATE_PFN_SHIFT)
    }

    /// The entry stands for a whole huge (PMD-sized) folio, collected with
    /// [`Select::COMPOUND`]; the entries of its other pages are empty.
    pub fn is_compound(self) -> bool {
        self.0 & bindings::MIGRATE_PFN_COMPOUND as c_ulong != 0
    }

    /// The folio order a destination for this entry must have.
    pub fn order(self) -> u32 {
        match self.is_compound() {
            true => bindings::PMD_ORDER,
            false => 0,
        }
    }

    fn page(self) -> Option<NonNull<bindings::page>> {
        // SAFETY: a pure function of the entry.
        self.has_page()
            .then(|| NonNull::new(unsafe { bindings::migrate_pfn_to_page(self.0) }))
            .flatten()
    }

    /// The source is a device page (device-private or other `ZONE_DEVICE`).
    fn is_device(self) -> bool {
        // SAFETY: a collected entry's page is locked by the session.
        self.page()
            .is_some_and(|p| unsafe { bindings::is_zone_device_page(p.as_ptr()) })
    }

    fn dst_flags(self) -> c_ulong {
        let mut f = 0;
        if self.is_writable() {
            f |= bindings::MIGRATE_PFN_WRITE as c_ulong;
        }
        if self.is_compound() {
            f |= bindings::MIGRATE_PFN_COMPOUND as c_ulong;
        }
        f
    }
}

/// A migration session over `[start, end)` of a VMA.
///
/// # Examples
///
/// Moving anonymous pages to device memory: collect them, give each a
/// device folio holding its data, switch the CPU page tables over.
///
/// ```ignore
/// use kernel::mm::migrate::{MigrateVma, Select};
///
/// let guard = mm.mmap_read_lock();
/// let vma = guard.vma_lookup(start).ok_or(EFAULT)?;
/// let mut m = MigrateVma::setup(vma, start, end, Select::SYSTEM, pagemap.owner())?;
/// for i in 0..m.len() {
///     let Some(src) = m.source(i).filter(|s| s.can_migrate()) else { continue };
///     let order = src.order();
///     let Ok(offset) = vram.alloc(order) else { continue };
///     let folio = pagemap.init_folio(offset, order)?;
///     match m.source_page(i) {
///         Some(page) => vram.copy_from(offset, &page)?,
///         None => vram.clear(offset, order)?,
///     }
///     m.set_device_destination(i, folio)?;
/// }
/// let m = m.migrate();
/// pr_info!("{} pages moved\n", m.migrated_count());
/// m.finalize();
/// ```
///
/// # Invariants
///
/// `args.src`/`args.dst` point at `src`/`dst`, which hold `npages` entries;
/// after `setup` succeeded the session is finalized exactly once (by
/// [`MigrateVma::finalize`] or by `Drop`).
pub struct MigrateVma<'a, S> {
    args: bindings::migrate_vma,
    src: KVVec<c_ulong>,
    dst: KVVec<c_ulong>,
    finalized: bool,
    /// `migrate_vma_pages` ran.
    migrated: bool,
    _vma: PhantomData<&'a VmaRef>,
    _state: PhantomData<S>,
}

impl<'a> MigrateVma<'a, Collected> {
    /// Collects the pages of `[start, end)` (page-aligned, inside `vma`)
    /// that `select` asks for. `owner` is the `pgmap_owner` reported to MMU
    /// notifiers in [`Event::Migrate`](crate::mm::mmu_notifier::Event::Migrate),
    /// and selects whose device-private pages are collected.
    pub fn setup(
        vma: &'a VmaRef,
        start: usize,
        end: usize,
        select: Select,
        owner: PgmapOwner,
    ) -> Result<Self> {
        // SAFETY: no fault page.
        unsafe { Self::setup_for_fault(vma, start, end, select, owner, core::ptr::null_mut()) }
    }

    /// [`Self::setup`] from a `migrate_to_ram` callback: `fault_page` is the
    /// page the CPU faulted on, which the fault path has locked.
    ///
    /// # Safety
    ///
    /// `fault_page` is null or the locked, referenced page of the fault
    /// being handled, inside `[start, end)`.
    pub(crate) unsafe fn setup_for_fault(
        vma: &'a VmaRef,
        start: usize,
        end: usize,
        select: Select,
        owner: PgmapOwner,
        fault_page: *mut bindings::page,
    ) -> Result<Self> {
        if start % PAGE_SIZE != 0 || end % PAGE_SIZE != 0 || end <= start {
            return Err(EINVAL);
        }
        if start < vma.start() || end > vma.end() {
            return Err(ERANGE);
        }
        let n = (end - start) / PAGE_SIZE;
        let mut src = KVVec::with_capacity(n, GFP_KERNEL)?;
        src.extend_with(n, 0, GFP_KERNEL)?;
        let mut dst = KVVec::with_capacity(n, GFP_KERNEL)?;
        dst.extend_with(n, 0, GFP_KERNEL)?;
        let mut s = Self {
            args: bindings::migrate_vma {
                vma: vma.as_ptr(),
                dst: core::ptr::null_mut(),
                src: core::ptr::null_mut(),
                cpages: 0,
                npages: 0,
                start,
                end,
                pgmap_owner: owner.as_ptr(),
                flags: select.0,
                fault_page,
            },
            src,
            dst,
            // Nothing to finalize until setup succeeds.
            finalized: true,
            migrated: false,
            _vma: PhantomData,
            _state: PhantomData,
        };
        s.args.src = s.src.as_mut_ptr();
        s.args.dst = s.dst.as_mut_ptr();
        // SAFETY: `args` describes `[start, end)` of `vma`, whose mmap lock
        // the `'a` borrow keeps held; `src`/`dst` hold one entry per page.
        to_result(unsafe { bindings::migrate_vma_setup(&mut s.args) })?;
        s.finalized = false;
        Ok(s)
    }

    /// Number of pages collected for migration.
    pub fn collected(&self) -> usize {
        self.args.cpages
    }

    /// Number of entries: one per page of the range.
    pub fn len(&self) -> usize {
        self.src.len()
    }

    /// Whether the session has no entry (never: `setup` refuses that).
    pub fn is_empty(&self) -> bool {
        self.src.is_empty()
    }

    fn migratable(&self, index: usize) -> Result<Source> {
        let src = Source(*self.src.get(index).ok_or(EINVAL)?);
        if !src.can_migrate() || self.dst[index] != 0 {
            return Err(EINVAL);
        }
        Ok(src)
    }

    /// The system page of entry `index`, to copy from (e.g. by DMA), if
    /// the entry is collected and has one.
    pub fn source_page(&self, index: usize) -> Option<BorrowedPage<'_>> {
        let src = Source(*self.src.get(index)?);
        if !src.can_migrate() || src.is_device() {
            return None;
        }
        // SAFETY: collected pages stay locked and referenced by the session
        // until finalize, which needs `self`.
        src.page().map(|p| unsafe { BorrowedPage::from_raw(p) })
    }

    #[cfg(CONFIG_DEVICE_PRIVATE)]
    /// If entry `index` is a collected page of `pagemap`: its device-memory
    /// offset and folio order.
    pub fn device_source<T: PagemapOps>(
        &self,
        index: usize,
        pagemap: &Pagemap<T>,
    ) -> Option<(u64, u32)> {
        let src = Source(*self.src.get(index)?);
        if !src.can_migrate() {
            return None;
        }
        let page = src.page()?;
        let offset = pagemap.offset_of_page(page.as_ptr())?;
        Some((offset, src.order()))
    }

    #[cfg(CONFIG_DEVICE_PRIVATE)]
    /// Gives entry `index` a device folio as destination. The caller has
    /// copied the source's data (zeroes for an empty entry) into it. The
    /// folio's order must be the entry's [`Source::order`].
    pub fn set_device_destination(&mut self, index: usize, folio: DeviceFolio<'_>) -> Result {
        let src = self.migratable(index)?;
        if src.is_device() || folio.order() != src.order() {
            return Err(EINVAL);
        }
        // INVARIANT: the locked, referenced folio now belongs to the
        // migration.
        self.dst[index] = migrate_pfn_of(folio.into_raw()) | src.dst_flags();
        Ok(())
    }

    /// Gives entry `index` a new, zeroed system folio of the entry's order
    /// as destination; fill it through [`Self::destination`].
    pub fn alloc_system_destination(&mut self, index: usize) -> Result {
        let src = self.migratable(index)?;
        let page = alloc_locked_folio(src.order()).ok_or(ENOMEM)?;
        // INVARIANT: the locked folio now belongs to the migration.
        self.dst[index] = migrate_pfn_of(page) | src.dst_flags();
        Ok(())
    }

    /// The destination of entry `index`, if it has a system one.
    pub fn destination(&self, index: usize) -> Option<BorrowedPage<'_>> {
        let d = Source(*self.dst.get(index)?);
        if d.is_device() {
            return None;
        }
        // SAFETY: destinations stay allocated until finalize, which needs
        // `self`.
        d.page().map(|p| unsafe { BorrowedPage::from_raw(p) })
    }

    /// Source entry `index`.
    pub fn source(&self, index: usize) -> Option<Source> {
        self.src.get(index).map(|&s| Source(s))
    }

    /// The source entries, in address order.
    pub fn sources(&self) -> impl Iterator<Item = Source> + '_ {
        self.src.iter().map(|&s| Source(s))
    }

    /// Gives entry `index` a new system-memory page holding the source's
    /// data (zeroes for an empty entry). The page belongs to the migration
    /// from now on.
    pub fn copy_to_system_page(&mut self, index: usize) -> Result {
        let src = self.migratable(index)?;
        if src.is_device() || src.is_compound() {
            return Err(EINVAL);
        }
        // Zeroed: an empty entry needs nothing more.
        self.alloc_system_destination(index)?;
        if let (Some(to), Some(from)) = (self.destination(index), self.source_page(index)) {
            copy_page(&to, &from);
        }
        Ok(())
    }

    /// Switches the CPU page tables of every entry with a destination.
    pub fn migrate(mut self) -> MigrateVma<'a, Migrated> {
        // SAFETY: setup succeeded (the session is not finalized) and
        // destinations are locked pages owned by the migration.
        unsafe { bindings::migrate_vma_pages(&mut self.args) };
        let args = self.args;
        let src = core::mem::take(&mut self.src);
        let dst = core::mem::take(&mut self.dst);
        self.finalized = true; // ownership moves to the new session
        MigrateVma {
            args,
            src,
            dst,
            finalized: false,
            migrated: true,
            _vma: PhantomData,
            _state: PhantomData,
        }
    }
}

impl<'a> MigrateVma<'a, Migrated> {
    /// Whether entry `index` moved.
    pub fn migrated(&self, index: usize) -> bool {
        self.src
            .get(index)
            .is_some_and(|&s| Source(s).can_migrate())
            && self.dst[index] != 0
    }

    /// Number of entries that moved.
    pub fn migrated_count(&self) -> usize {
        (0..self.src.len()).filter(|&i| self.migrated(i)).count()
    }

    /// Ends the session.
    pub fn finalize(self) {
        // `Drop` does it.
    }
}

impl<S> Drop for MigrateVma<'_, S> {
    fn drop(&mut self) {
        if self.finalized {
            return;
        }
        if !self.migrated {
            // Abandoned before the switch: the destinations never became
            // anyone's but ours, so release them and let finalize restore
            // every source.
            for d in self.dst.iter_mut().filter(|d| **d != 0) {
                // SAFETY: `copy_to_system_page` allocated and locked it, and
                // nothing else has seen it.
                unsafe {
                    let page = bindings::migrate_pfn_to_page(*d);
                    bindings::unlock_page(page);
                    bindings::put_page(page);
                }
                *d = 0;
            }
        }
        // The buffers may have moved: point `args` at the current ones.
        self.args.src = self.src.as_mut_ptr();
        self.args.dst = self.dst.as_mut_ptr();
        // SAFETY: setup succeeded and nothing finalized the session yet
        // (type invariant). `migrate_vma_finalize` restores every source
        // that did not move and releases the destinations, whether or not
        // `migrate_vma_pages` ran: entries without a destination, or whose
        // MIGRATE bit `migrate_vma_pages` cleared, are put back.
        unsafe { bindings::migrate_vma_finalize(&mut self.args) };
    }
}

#[macros::kunit_tests(rust_kernel_migrate)]
mod tests {
    use super::*;
    use crate::mm::hmm::{
        kunit_notifier,
        kunit_read_user,
        kunit_user_map,
        kunit_with_vma,
        kunit_write_user,
        HmmPage,
        Range,
        Request, //
    };
    use crate::mm::mmu_notifier::{
        Event,
        IntervalNotifier,
        IntervalNotifierOps,
        NotifierRange, //
    };

    /// Counts migrations whose owner is `OWNER`.
    struct MigrateCounter;

    /// A `pgmap_owner` token: only compared, never dereferenced.
    const OWNER: usize = 0x5253_564d;

    impl IntervalNotifierOps for MigrateCounter {
        type State = usize;

        fn invalidate(&self, n: &mut usize, range: &NotifierRange<'_>) -> bool {
            if range.event()
                == (Event::Migrate {
                    owner: PgmapOwner::new(OWNER as *const c_void),
                })
            {
                *n += 1;
            }
            true
        }
    }

    fn pattern(page: usize) -> [u8; 64] {
        core::array::from_fn(|i| (page * 31 + i * 7) as u8)
    }

    /// Writes pages 0..3 of a 4-page mapping; page 3 stays untouched.
    fn setup_pages() -> Result<(usize, Arc<IntervalNotifier<MigrateCounter>>)> {
        let addr = kunit_user_map(4)?;
        for p in 0..3 {
            kunit_write_user(addr + p * PAGE_SIZE, &pattern(p))?;
        }
        let n = kunit_notifier(addr, 4 * PAGE_SIZE, MigrateCounter, 0usize)?;
        Ok((addr, n))
    }

    fn pfns(n: &IntervalNotifier<MigrateCounter>, addr: usize) -> Result<[usize; 3]> {
        let mut r = Range::new(n, addr, addr + 3 * PAGE_SIZE, Request::Read)?;
        r.fault(0)?;
        let mut out = [0; 3];
        for (o, p) in out.iter_mut().zip(r.pages()) {
            *o = match p.page() {
                Some(HmmPage::System(s)) => s.pfn(),
                Some(HmmPage::DevicePrivate(d)) => d.pfn(),
                None => 0,
            };
        }
        Ok(out)
    }

    use crate::sync::Arc;

    #[test]
    fn system_pages_migrate_with_their_data() -> Result {
        let (addr, n) = setup_pages()?;
        let before = pfns(&n, addr)?;
        let moved = kunit_with_vma(addr, |vma| {
            let owner = PgmapOwner::new(OWNER as *const c_void);
            let mut m = MigrateVma::setup(vma, addr, addr + 4 * PAGE_SIZE, Select::SYSTEM, owner)?;
            assert_eq!(m.collected(), 4);
            let mut srcs = [Source(0); 4];
            for (s, v) in srcs.iter_mut().zip(m.sources()) {
                *s = v;
            }
            assert!(srcs[0].has_page() && srcs[0].is_writable());
            assert!(!srcs[3].has_page());
            for (i, s) in srcs.iter().enumerate() {
                if s.can_migrate() {
                    m.copy_to_system_page(i)?;
                }
            }
            let m = m.migrate();
            let moved = m.migrated_count();
            m.finalize();
            Ok(moved)
        })?;
        assert_eq!(moved, 4);
        assert!(*n.lock() >= 1);

        let after = pfns(&n, addr)?;
        for p in 0..3 {
            assert_ne!(before[p], after[p]);
            let mut buf = [0u8; 64];
            kunit_read_user(addr + p * PAGE_SIZE, &mut buf)?;
            assert_eq!(buf, pattern(p));
        }
        let mut zero = [0xffu8; 64];
        kunit_read_user(addr + 3 * PAGE_SIZE, &mut zero)?;
        assert_eq!(zero, [0u8; 64]);
        Ok(())
    }

    #[test]
    fn an_abandoned_session_puts_everything_back() -> Result {
        let (addr, n) = setup_pages()?;
        let before = pfns(&n, addr)?;
        kunit_with_vma(addr, |vma| {
            let owner = PgmapOwner::new(OWNER as *const c_void);
            let mut m = MigrateVma::setup(vma, addr, addr + 4 * PAGE_SIZE, Select::SYSTEM, owner)?;
            m.copy_to_system_page(0)?;
            m.copy_to_system_page(1)?;
            // Dropped before `migrate`.
            Ok(())
        })?;
        assert_eq!(pfns(&n, addr)?, before);
        for p in 0..3 {
            let mut buf = [0u8; 64];
            kunit_read_user(addr + p * PAGE_SIZE, &mut buf)?;
            assert_eq!(buf, pattern(p));
        }
        Ok(())
    }
}
