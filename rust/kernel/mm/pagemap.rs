// SPDX-License-Identifier: GPL-2.0

//! Device-private memory: `ZONE_DEVICE` pages that stand for memory the CPU
//! cannot address.
//!
//! A [`Pagemap`] registers a free physical address range as
//! `MEMORY_DEVICE_PRIVATE` with `memremap_pages()`, so that every page of
//! device memory gets a `struct page`. The page at index `i` of the range
//! stands for the device memory at offset `i * PAGE_SIZE`: that offset is
//! the per-page driver data, computed rather than stored.
//!
//! The driver allocates device memory itself and turns an allocation into a
//! [`DeviceFolio`] with [`Pagemap::init_folio`]; a migration
//! ([`MigrateVma`](crate::mm::migrate::MigrateVma)) then maps it in place of
//! a system page. When a CPU touches such a page, the pagemap migrates it
//! back to system memory, asking [`PagemapOps::copy_to_ram`] for the data;
//! when the last reference goes, [`PagemapOps::folio_free`] gives the device
//! memory back to the driver. Dropping the pagemap evicts every page still
//! in use back to system memory first, so no data is lost.
//!
//! C header: [`include/linux/memremap.h`](srctree/include/linux/memremap.h)

use crate::{
    alloc::KVec,
    bindings,
    error::{
        from_err_ptr,
        Result, //
    },
    ffi::{
        c_ulong,
        c_void, //
    },
    mm::{
        migrate::{
            alloc_locked_folio,
            migrate_pfn_of,
            MigrateVma,
            Select, //
        },
        mmu_notifier::PgmapOwner,
        virt::VmaRef, //
    },
    page::{
        BorrowedPage,
        Page,
        PAGE_SHIFT,
        PAGE_SIZE, //
    },
    prelude::*,
    sync::{
        new_mutex,
        Arc,
        Mutex, //
    },
    types::Opaque, //
};
use core::ptr::NonNull;

/// Order of a PMD-sized (huge) folio.
pub const PMD_ORDER: u32 = bindings::PMD_ORDER;

/// One device folio to copy to system memory.
pub struct CopyToRam<'a> {
    /// Offset of the data in device memory.
    pub offset: u64,
    /// Order of the folio: `PAGE_SIZE << order` bytes.
    pub order: u32,
    /// First page of the destination, a system folio of the same order.
    pub page: BorrowedPage<'a>,
}

impl CopyToRam<'_> {
    /// Page `n` of the destination (`n < 1 << order`).
    pub fn page(&self, n: usize) -> Option<BorrowedPage<'_>> {
        if n >> self.order != 0 {
            return None;
        }
        // SAFETY: `n` is inside the folio.
        Some(unsafe { subpage(&self.page, n) })
    }
}

/// Page `n` of the folio headed by `head`.
///
/// # Safety
///
/// `head` heads a folio of more than `n` pages.
unsafe fn subpage(head: &Page, n: usize) -> BorrowedPage<'_> {
    // SAFETY: a folio's pages are contiguous page frames; page `n` lives as
    // long as the folio, which the borrow of `head` keeps.
    unsafe {
        let page = bindings::pfn_to_page(bindings::page_to_pfn(head.as_ptr()) + n);
        BorrowedPage::from_raw(NonNull::new_unchecked(page))
    }
}

/// What a driver does for the pages of its [`Pagemap`].
pub trait PagemapOps: Send + Sync + Sized + 'static {
    /// Copies device memory into system folios: for a CPU fault on a device
    /// page and for eviction. Returns once the data is in place.
    fn copy_to_ram(pagemap: &Pagemap<Self>, copies: &[CopyToRam<'_>]) -> Result;

    /// The folio of `order` at `offset` is no longer used: its device
    /// memory is free. Called when the last reference is dropped, possibly
    /// in atomic context: must not sleep.
    fn folio_free(pagemap: &Pagemap<Self>, offset: u64, order: u32);
}

/// A physical address range reserved in `iomem_resource`.
struct Region {
    start: u64,
    /// The size asked for.
    size: u64,
    /// The size reserved: rounded up to the memory-section size.
    reserved: u64,
}

impl Region {
    fn request(size: usize, name: &'static CStr) -> Result<Self> {
        // SAFETY: `iomem_resource` is the global resource tree; `name` is a
        // static string.
        let res = unsafe {
            bindings::request_free_mem_region(
                &raw mut bindings::iomem_resource,
                size as c_ulong,
                name.as_char_ptr(),
            )
        };
        let res = from_err_ptr(res)?;
        if res.is_null() {
            return Err(ENOMEM);
        }
        // SAFETY: a resource just inserted, owned by us until released.
        let (start, end) = unsafe { ((*res).start, (*res).end) };
        Ok(Self {
            start,
            size: size as u64,
            reserved: end - start + 1,
        })
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: the region was requested in `Region::request`.
        unsafe {
            bindings::__release_region(&raw mut bindings::iomem_resource, self.start, self.reserved)
        };
    }
}

/// Device-private memory registered with the kernel.
///
/// # Invariants
///
/// `pgmap` is registered with `memremap_pages()` over `region`, with the
/// operations of `Self`, from construction until `drop`.
///
/// # Examples
///
/// ```ignore
/// use kernel::mm::pagemap::{CopyToRam, Pagemap, PagemapOps};
///
/// struct Vram;
///
/// impl PagemapOps for Vram {
///     fn copy_to_ram(_pm: &Pagemap<Self>, copies: &[CopyToRam<'_>]) -> Result {
///         for c in copies {
///             // Copy `PAGE_SIZE << c.order` bytes at `c.offset` into `c.page`.
///         }
///         Ok(())
///     }
///
///     fn folio_free(_pm: &Pagemap<Self>, offset: u64, order: u32) {
///         // Give `PAGE_SIZE << order` bytes at `offset` back to the allocator.
///     }
/// }
///
/// let vram = Pagemap::new(c"vram", 64 << 20, owner, Vram)?;
/// ```
#[pin_data(PinnedDrop)]
pub struct Pagemap<T: PagemapOps> {
    #[pin]
    data: T,
    region: Region,
    owner: PgmapOwner,
    /// Held from the check that a range is free to the folio's
    /// initialisation: two callers cannot both make a folio of one range.
    #[pin]
    init_lock: Mutex<()>,
    #[pin]
    pgmap: Opaque<bindings::dev_pagemap>,
}

// SAFETY: the fields are owned data of `Send` types (`T`, the region, the
// owner token) and the kernel's pagemap, which is usable from any thread.
unsafe impl<T: PagemapOps> Send for Pagemap<T> {}
// SAFETY: as for `Send`; shared access only reads immutable fields or goes
// through `T: Sync`.
unsafe impl<T: PagemapOps> Sync for Pagemap<T> {}

impl<T: PagemapOps> Pagemap<T> {
    const OPS: bindings::dev_pagemap_ops = bindings::dev_pagemap_ops {
        folio_free: Some(Self::folio_free_callback),
        migrate_to_ram: Some(Self::migrate_to_ram_callback),
        memory_failure: None,
        folio_split: None,
    };

    /// Registers `size` bytes (a multiple of 2 MiB) of device-private
    /// memory owned by `owner`, the token that hmm and migrations use to
    /// recognise this device's pages.
    pub fn new(
        name: &'static CStr,
        size: usize,
        owner: PgmapOwner,
        data: impl PinInit<T, Error>,
    ) -> Result<Arc<Self>> {
        if size == 0 || size % (PAGE_SIZE << PMD_ORDER) != 0 {
            return Err(EINVAL);
        }
        let region = Region::request(size, name)?;
        let owner_token = owner.as_ptr();
        let range = bindings::range {
            start: region.start,
            end: region.start + region.size - 1,
        };
        Arc::pin_init(
            try_pin_init!(Self {
                data <- data,
                region,
                owner,
                init_lock <- new_mutex!(()),
                pgmap <- Opaque::try_ffi_init(move |slot: *mut bindings::dev_pagemap| {
                    // SAFETY: `slot` is valid for writes and pinned; a zeroed
                    // pagemap is what `memremap_pages` expects to fill in.
                    unsafe {
                        slot.write(core::mem::zeroed());
                        (*slot).type_ = bindings::memory_type_MEMORY_DEVICE_PRIVATE;
                        (*slot).nr_range = 1;
                        *(*slot).__bindgen_anon_1.range.as_mut() = range;
                        (*slot).ops = &Self::OPS;
                        (*slot).owner = owner_token;
                    }
                    // SAFETY: the pagemap describes a free, reserved range and
                    // stays pinned until `drop` unmaps it.
                    let ret = unsafe { bindings::memremap_pages(slot, bindings::NUMA_NO_NODE) };
                    match from_err_ptr(ret)?.is_null() {
                        true => Err(ENOMEM),
                        false => Ok(()),
                    }
                }),
            }),
            GFP_KERNEL,
        )
    }

    /// The driver's data.
    pub fn data(&self) -> &T {
        &self.data
    }

    /// The owner token given to [`Self::new`].
    pub fn owner(&self) -> PgmapOwner {
        self.owner
    }

    /// Size of the device memory, in bytes.
    pub fn size(&self) -> u64 {
        self.region.size
    }

    fn first_pfn(&self) -> usize {
        (self.region.start >> PAGE_SHIFT) as usize
    }

    fn npages(&self) -> usize {
        (self.region.size >> PAGE_SHIFT) as usize
    }

    /// The device-memory offset of page frame `pfn`, if it is one of ours.
    pub fn offset_of_pfn(&self, pfn: usize) -> Option<u64> {
        let i = pfn.checked_sub(self.first_pfn())?;
        (i < self.npages()).then_some((i as u64) << PAGE_SHIFT)
    }

    /// Whether `page` is one of ours, and its device-memory offset.
    pub(crate) fn offset_of_page(&self, page: *mut bindings::page) -> Option<u64> {
        // SAFETY: `page` is a valid page (callers hold a reference or the
        // page lock).
        let ours = unsafe {
            bindings::is_device_private_page(page) && bindings::page_pgmap(page) == self.pgmap.get()
        };
        // SAFETY: as above.
        ours.then(|| self.offset_of_pfn(unsafe { bindings::page_to_pfn(page) }))
            .flatten()
    }

    /// Turns the free device memory at `offset` (`PAGE_SIZE << order`
    /// bytes, aligned to its size) into a new folio, locked and with one
    /// reference. The driver's allocator decides what is free; this fails
    /// with `EBUSY` if a page of it is still in use, also when another
    /// thread made a folio of it first (the check and the initialisation
    /// are one step under the pagemap's lock).
    pub fn init_folio(&self, offset: u64, order: u32) -> Result<DeviceFolio<'_>> {
        if order != 0 && order != PMD_ORDER {
            return Err(EINVAL);
        }
        let bytes = (PAGE_SIZE as u64) << order;
        if offset % bytes != 0 || offset.checked_add(bytes).is_none_or(|e| e > self.size()) {
            return Err(EINVAL);
        }
        let pfn = self.first_pfn() + (offset >> PAGE_SHIFT) as usize;
        let _init = self.init_lock.lock();
        for i in 0..1usize << order {
            // SAFETY: `pfn + i` is in our range, which has `struct page`s. A
            // page of a folio in use has a referenced head; a page of a
            // freed folio may still point at the old head, which is free.
            let used = unsafe {
                let folio = bindings::page_folio(bindings::pfn_to_page(pfn + i));
                bindings::page_ref_count(folio.cast()) != 0
            };
            if used {
                return Err(EBUSY);
            }
        }
        // SAFETY: as above.
        let page = unsafe { bindings::pfn_to_page(pfn) };
        // SAFETY: the pages are free (no reference) and ours; the pagemap is
        // registered. This takes one reference and the lock.
        unsafe {
            bindings::zone_device_folio_init(bindings::page_folio(page), self.pgmap.get(), order)
        };
        // INVARIANT: we hold the reference and the lock just taken.
        Ok(DeviceFolio {
            page: NonNull::new(page).ok_or(EINVAL)?,
            order,
            offset,
            _pagemap: core::marker::PhantomData,
        })
    }

    /// Recovers the pagemap from one of its pages.
    ///
    /// # Safety
    ///
    /// `page` is a device-private page of a `Pagemap<T>`.
    unsafe fn from_page<'a>(page: *mut bindings::page) -> &'a Self {
        // SAFETY: per the safety requirement the page's pgmap is the `pgmap`
        // field of a live `Pagemap<T>` (it cannot go away while its pages
        // are referenced).
        unsafe {
            let pgmap = bindings::page_pgmap(page).cast::<Opaque<bindings::dev_pagemap>>();
            &*crate::container_of!(pgmap, Self, pgmap)
        }
    }

    /// `dev_pagemap_ops.folio_free`.
    ///
    /// # Safety
    ///
    /// `folio` is a folio of a `Pagemap<T>` whose last reference was just
    /// dropped.
    unsafe extern "C" fn folio_free_callback(folio: *mut bindings::folio) {
        // A folio's first member is its head page.
        let page = folio.cast::<bindings::page>();
        // SAFETY: the kernel calls this for our folios only.
        let this = unsafe { Self::from_page(page) };
        // SAFETY: the folio is valid for the duration of the callback.
        let order = unsafe { bindings::folio_order(folio) };
        // SAFETY: as above.
        let pfn = unsafe { bindings::page_to_pfn(page) };
        if let Some(offset) = this.offset_of_pfn(pfn) {
            T::folio_free(this, offset, order);
        }
    }

    /// `dev_pagemap_ops.migrate_to_ram`.
    ///
    /// # Safety
    ///
    /// `vmf` is a CPU fault on a device-private page of a `Pagemap<T>`, as
    /// `do_swap_page()` passes it.
    unsafe extern "C" fn migrate_to_ram_callback(
        vmf: *mut bindings::vm_fault,
    ) -> bindings::vm_fault_t {
        // SAFETY: the kernel passes a valid fault on one of our pages, with
        // the page locked and referenced and the mmap lock held for read.
        let (this, vma, page, address, pte) = unsafe {
            let vmf = &*vmf;
            (
                Self::from_page(vmf.page),
                VmaRef::from_raw(vmf.__bindgen_anon_1.vma),
                vmf.page,
                vmf.__bindgen_anon_1.address,
                !vmf.pte.is_null(),
            )
        };
        match this.migrate_to_ram(vma, page, address, pte) {
            Ok(()) => 0,
            Err(e) if e == ENOMEM => bindings::vm_fault_reason_VM_FAULT_OOM,
            Err(_) => bindings::vm_fault_reason_VM_FAULT_SIGBUS,
        }
    }

    /// Migrates the folio of `page` that the CPU faulted on at `address`
    /// back to system memory. A folio mapped by a PTE moves a page at a
    /// time; one mapped by a PMD moves whole.
    fn migrate_to_ram(
        &self,
        vma: &VmaRef,
        page: *mut bindings::page,
        address: usize,
        pte_mapped: bool,
    ) -> Result {
        let order = match pte_mapped {
            true => 0,
            // SAFETY: the page is referenced by the fault.
            false => unsafe { bindings::folio_order(bindings::page_folio(page)) },
        };
        let size = PAGE_SIZE << order;
        let start = address & !(size - 1);
        let select = match order {
            0 => Select::DEVICE_PRIVATE,
            _ => Select::DEVICE_PRIVATE | Select::COMPOUND,
        };
        // SAFETY: `page` is the locked page of the fault being handled.
        let mut m = unsafe {
            MigrateVma::setup_for_fault(vma, start, start + size, select, self.owner, page)?
        };
        let mut offsets = KVec::new();
        for i in 0..m.len() {
            if let Some((offset, order)) = m.device_source(i, self) {
                m.alloc_system_destination(i)?;
                offsets.push((i, offset, order), GFP_KERNEL)?;
            }
        }
        let mut copies = KVec::with_capacity(offsets.len(), GFP_KERNEL)?;
        for &(i, offset, order) in offsets.iter() {
            let page = m.destination(i).ok_or(EINVAL)?;
            copies.push(
                CopyToRam {
                    offset,
                    order,
                    page,
                },
                GFP_KERNEL,
            )?;
        }
        T::copy_to_ram(self, &copies)?;
        drop(copies);
        m.migrate().finalize();
        Ok(())
    }

    /// Migrates every page still in use back to system memory.
    /// Migrates every page in use in `[offset, offset + len)` of device
    /// memory back to system memory, wherever it is mapped: to make room
    /// under memory pressure, or before the memory goes away. Both must be
    /// multiples of 2 MiB. Pages that cannot move now (pinned, or being
    /// migrated already) stay.
    pub fn evict_range(&self, offset: u64, len: u64) -> Result {
        let huge = (PAGE_SIZE as u64) << PMD_ORDER;
        if offset % huge != 0 || len % huge != 0 {
            return Err(EINVAL);
        }
        if offset.checked_add(len).is_none_or(|e| e > self.size()) {
            return Err(ERANGE);
        }
        self.evict(
            (offset >> PAGE_SHIFT) as usize,
            (len >> PAGE_SHIFT) as usize,
        );
        Ok(())
    }

    /// Evicts `total` pages from page index `from` (both multiples of a
    /// huge folio).
    fn evict(&self, from: usize, total: usize) {
        let first = self.first_pfn() + from;
        // A batch holds whole huge folios.
        let batch = 1usize << PMD_ORDER;
        let (mut src, mut dst) = loop {
            let src = KVec::<c_ulong>::from_elem(0, batch, GFP_KERNEL);
            let dst = KVec::<c_ulong>::from_elem(0, batch, GFP_KERNEL);
            if let (Ok(s), Ok(d)) = (src, dst) {
                break (s, d);
            }
            crate::time::delay::fsleep(crate::time::Delta::from_millis(10));
        };
        for base in (0..total).step_by(batch) {
            src.fill(0);
            dst.fill(0);
            // SAFETY: `[first + base, +batch)` is inside our registered range
            // (the size is a multiple of `batch`); the arrays hold `batch`
            // entries.
            unsafe {
                bindings::migrate_device_range(
                    src.as_mut_ptr(),
                    (first + base) as c_ulong,
                    batch as c_ulong,
                )
            };
            let mut pages = KVec::new();
            for i in 0..batch {
                let s = src[i];
                if s & bindings::MIGRATE_PFN_MIGRATE as c_ulong == 0 {
                    continue;
                }
                // SAFETY: a collected entry holds a locked, referenced page.
                let spage = unsafe { bindings::migrate_pfn_to_page(s) };
                if spage.is_null() {
                    continue;
                }
                let compound = s & bindings::MIGRATE_PFN_COMPOUND as c_ulong != 0;
                let order = match compound {
                    // SAFETY: as above.
                    true => unsafe { bindings::folio_order(bindings::page_folio(spage)) },
                    false => 0,
                };
                let dpage = alloc_locked_folio_waiting(order);
                let mut d = migrate_pfn_of(dpage);
                if s & bindings::MIGRATE_PFN_WRITE as c_ulong != 0 {
                    d |= bindings::MIGRATE_PFN_WRITE as c_ulong;
                }
                if compound {
                    d |= bindings::MIGRATE_PFN_COMPOUND as c_ulong;
                }
                dst[i] = d;
                let offset = ((from + base + i) as u64) << PAGE_SHIFT;
                if pages.push((offset, order, dpage), GFP_KERNEL).is_err() {
                    // Without its copy the entry must not move: give the
                    // destination back and keep the device page.
                    // SAFETY: the page is ours, locked, never published.
                    unsafe {
                        bindings::unlock_page(dpage.as_ptr());
                        bindings::put_page(dpage.as_ptr());
                    }
                    dst[i] = 0;
                }
            }
            let copies: Result<KVec<CopyToRam<'_>>> = (|| {
                let mut v = KVec::with_capacity(pages.len(), GFP_KERNEL)?;
                for &(offset, order, p) in pages.iter() {
                    // SAFETY: the destination is alive until finalize below.
                    let page = unsafe { BorrowedPage::from_raw(p) };
                    v.push(
                        CopyToRam {
                            offset,
                            order,
                            page,
                        },
                        GFP_KERNEL,
                    )?;
                }
                Ok(v)
            })();
            if let Err(e) = copies.and_then(|c| T::copy_to_ram(self, &c)) {
                pr_err!(
                    "pagemap: eviction copy failed ({e:?}); data of {} folios lost\n",
                    pages.len()
                );
            }
            // SAFETY: `src`/`dst` come from `migrate_device_range` and hold
            // locked destination pages where we want a move.
            unsafe {
                bindings::migrate_device_pages(
                    src.as_mut_ptr(),
                    dst.as_mut_ptr(),
                    batch as c_ulong,
                );
                bindings::migrate_device_finalize(
                    src.as_mut_ptr(),
                    dst.as_mut_ptr(),
                    batch as c_ulong,
                );
            }
        }
    }
}

/// [`alloc_locked_folio`], waiting for memory if it must: eviction cannot
/// fail.
fn alloc_locked_folio_waiting(order: u32) -> NonNull<bindings::page> {
    loop {
        if let Some(page) = alloc_locked_folio(order) {
            return page;
        }
        crate::pr_warn_once!("pagemap: waiting for memory to evict device pages\n");
        crate::time::delay::fsleep(crate::time::Delta::from_millis(10));
    }
}

#[pinned_drop]
impl<T: PagemapOps> PinnedDrop for Pagemap<T> {
    fn drop(self: Pin<&mut Self>) {
        self.evict(0, self.npages());
        // SAFETY: registered at construction (type invariant); this waits
        // until the last page reference is gone.
        unsafe { bindings::memunmap_pages(self.pgmap.get()) };
    }
}

/// A new device folio, locked and referenced, not yet mapped anywhere.
///
/// Give it to a migration with
/// [`MigrateVma::set_device_destination`]; dropping it instead releases it
/// (and [`PagemapOps::folio_free`] frees its memory).
///
/// # Invariants
///
/// We hold one reference and the lock of the folio headed by `page`.
pub struct DeviceFolio<'a> {
    page: NonNull<bindings::page>,
    order: u32,
    offset: u64,
    _pagemap: core::marker::PhantomData<&'a ()>,
}

impl DeviceFolio<'_> {
    /// Offset of the folio's memory on the device.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Order of the folio.
    pub fn order(&self) -> u32 {
        self.order
    }

    /// Hands the folio over to a migration, which now owns its lock and
    /// reference. Returns the head page.
    pub(crate) fn into_raw(self) -> NonNull<bindings::page> {
        let page = self.page;
        core::mem::forget(self);
        page
    }
}

impl Drop for DeviceFolio<'_> {
    fn drop(&mut self) {
        // SAFETY: per the type invariant we hold the lock and a reference.
        unsafe {
            bindings::unlock_page(self.page.as_ptr());
            bindings::put_page(self.page.as_ptr());
        }
    }
}

#[macros::kunit_tests(rust_kernel_pagemap)]
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
    use crate::mm::migrate::copy_page;
    use crate::mm::mmu_notifier::{
        IntervalNotifierOps,
        NotifierRange, //
    };
    use crate::sync::{
        new_spinlock,
        SpinLock, //
    };
    use core::sync::atomic::{
        AtomicUsize,
        Ordering, //
    };

    /// Pages of the test's "device memory".
    const PAGES: usize = 1024;
    /// The test device's `pgmap_owner`: only compared, never dereferenced.
    const OWNER: usize = 0x7465_7374;

    /// What the test device did, kept beyond the pagemap's life.
    #[derive(Default)]
    struct Stats {
        /// Device pages in use.
        allocated: AtomicUsize,
        /// Pages copied back to system memory.
        copied_to_ram: AtomicUsize,
    }

    /// A device whose memory is system pages and whose copy engine is the
    /// CPU, like `lib/test_hmm.c`.
    #[pin_data]
    struct TestVram {
        backing: KVec<Page>,
        #[pin]
        used: SpinLock<KVec<bool>>,
        stats: Arc<Stats>,
    }

    impl TestVram {
        fn new(stats: Arc<Stats>) -> impl PinInit<Self, Error> {
            try_pin_init!(Self {
                backing: {
                    let mut v = KVec::with_capacity(PAGES, GFP_KERNEL)?;
                    for _ in 0..PAGES {
                        v.push(Page::alloc_page(GFP_KERNEL)?, GFP_KERNEL)?;
                    }
                    v
                },
                used <- new_spinlock!(KVec::from_elem(false, PAGES, GFP_KERNEL)?),
                stats,
            })
        }

        /// Allocates `1 << order` pages, aligned to their size.
        fn alloc(&self, order: u32) -> Result<u64> {
            let n = 1usize << order;
            let mut used = self.used.lock();
            let first = (0..PAGES)
                .step_by(n)
                .find(|&i| used[i..i + n].iter().all(|u| !u))
                .ok_or(ENOMEM)?;
            used[first..first + n].fill(true);
            self.stats.allocated.fetch_add(n, Ordering::Relaxed);
            Ok((first as u64) << PAGE_SHIFT)
        }

        fn backing(&self, offset: u64, n: usize) -> &Page {
            &self.backing[(offset >> PAGE_SHIFT) as usize + n]
        }
    }

    impl PagemapOps for TestVram {
        fn copy_to_ram(pm: &Pagemap<Self>, copies: &[CopyToRam<'_>]) -> Result {
            for c in copies {
                for n in 0..1usize << c.order {
                    let dst = c.page(n).ok_or(EINVAL)?;
                    copy_page(&dst, pm.data().backing(c.offset, n));
                }
                pm.data()
                    .stats
                    .copied_to_ram
                    .fetch_add(1 << c.order, Ordering::Relaxed);
            }
            Ok(())
        }

        fn folio_free(pm: &Pagemap<Self>, offset: u64, order: u32) {
            let first = (offset >> PAGE_SHIFT) as usize;
            let n = 1usize << order;
            pm.data().used.lock()[first..first + n].fill(false);
            pm.data().stats.allocated.fetch_sub(n, Ordering::Relaxed);
        }
    }

    /// A test pagemap, and its statistics (which outlive it).
    fn pagemap() -> Result<(Arc<Stats>, Arc<Pagemap<TestVram>>)> {
        let stats = Arc::new(Stats::default(), GFP_KERNEL)?;
        let pm = Pagemap::new(
            c"rust_kernel_pagemap",
            PAGES * PAGE_SIZE,
            PgmapOwner::new(OWNER as *const c_void),
            TestVram::new(stats.clone()),
        )?;
        Ok((stats, pm))
    }

    /// Migrates `[addr, addr + len)` of the test's mm to the device.
    fn to_device(pm: &Pagemap<TestVram>, addr: usize, len: usize, select: Select) -> Result<usize> {
        kunit_with_vma(addr, |vma| to_device_in(pm, vma, addr, len, select))
    }

    fn to_device_in(
        pm: &Pagemap<TestVram>,
        vma: &VmaRef,
        addr: usize,
        len: usize,
        select: Select,
    ) -> Result<usize> {
        let mut m = MigrateVma::setup(vma, addr, addr + len, select, pm.owner())?;
        let mut sources = KVec::new();
        for s in m.sources() {
            sources.push(s, GFP_KERNEL)?;
        }
        for (i, src) in sources.iter().enumerate() {
            if !src.can_migrate() {
                continue;
            }
            let vram = pm.data();
            let offset = vram.alloc(src.order())?;
            let folio = pm.init_folio(offset, src.order())?;
            for n in 0..1usize << src.order() {
                let dst = vram.backing(offset, n);
                match m.source_page(i) {
                    Some(p) => {
                        // SAFETY: the source folio has the entry's order.
                        let src = unsafe { subpage(&p, n) };
                        copy_page(dst, &src)
                    }
                    // SAFETY: the backing page is ours alone.
                    None => unsafe { dst.fill_zero_raw(0, PAGE_SIZE)? },
                }
            }
            m.set_device_destination(i, folio)?;
        }
        let m = m.migrate();
        let moved = m.migrated_count();
        m.finalize();
        Ok(moved)
    }

    struct Nop;

    impl IntervalNotifierOps for Nop {
        type State = ();

        fn invalidate(&self, _state: &mut (), _range: &NotifierRange<'_>) -> bool {
            true
        }
    }

    /// How many pages of `[addr, addr + pages)` the CPU maps to `pm`'s
    /// memory, as hmm reports them to the device that owns it.
    fn device_pages(pm: &Pagemap<TestVram>, addr: usize, pages: usize) -> Result<usize> {
        let n = kunit_notifier(addr, pages * PAGE_SIZE, Nop, ())?;
        let mut r = Range::new(&n, addr, addr + pages * PAGE_SIZE, Request::Snapshot)?;
        r.set_device_private_owner(pm.owner());
        r.fault(0)?;
        Ok(r.pages()
            .filter(|p| match p.page() {
                Some(HmmPage::DevicePrivate(d)) => pm.offset_of_pfn(d.pfn()).is_some(),
                _ => false,
            })
            .count())
    }

    fn pattern(page: usize) -> [u8; 64] {
        core::array::from_fn(|i| (page * 13 + i * 3 + 1) as u8)
    }

    fn read_user(addr: usize) -> Result<[u8; 64]> {
        let mut out = [0u8; 64];
        kunit_read_user(addr, &mut out)?;
        Ok(out)
    }

    /// Four pages, three written with a pattern, the last never touched.
    fn user_pages() -> Result<usize> {
        let addr = kunit_user_map(4)?;
        for p in 0..3 {
            kunit_write_user(addr + p * PAGE_SIZE, &pattern(p))?;
        }
        Ok(addr)
    }

    fn check_user_pages(addr: usize) -> Result {
        for p in 0..3 {
            assert_eq!(read_user(addr + p * PAGE_SIZE)?, pattern(p));
        }
        assert_eq!(read_user(addr + 3 * PAGE_SIZE)?, [0u8; 64]);
        Ok(())
    }

    #[test]
    fn pages_move_to_the_device_and_back_on_a_cpu_touch() -> Result {
        let (stats, pm) = pagemap()?;
        let addr = user_pages()?;
        assert_eq!(to_device(&pm, addr, 4 * PAGE_SIZE, Select::SYSTEM)?, 4);
        assert_eq!(stats.allocated.load(Ordering::Relaxed), 4);
        assert_eq!(device_pages(&pm, addr, 4)?, 4);

        // The CPU reads: every page comes back with its data.
        check_user_pages(addr)?;
        assert_eq!(device_pages(&pm, addr, 4)?, 0);
        assert_eq!(stats.copied_to_ram.load(Ordering::Relaxed), 4);
        assert_eq!(stats.allocated.load(Ordering::Relaxed), 0);
        Ok(())
    }

    #[test]
    fn dropping_the_pagemap_evicts_with_the_data() -> Result {
        let (stats, pm) = pagemap()?;
        let addr = user_pages()?;
        assert_eq!(to_device(&pm, addr, 4 * PAGE_SIZE, Select::SYSTEM)?, 4);
        assert_eq!(device_pages(&pm, addr, 4)?, 4);
        drop(pm);
        assert_eq!(stats.copied_to_ram.load(Ordering::Relaxed), 4);
        assert_eq!(stats.allocated.load(Ordering::Relaxed), 0);
        check_user_pages(addr)?;
        Ok(())
    }

    #[test]
    fn evicting_a_range_keeps_the_data() -> Result {
        let (stats, pm) = pagemap()?;
        let addr = user_pages()?;
        assert_eq!(to_device(&pm, addr, 4 * PAGE_SIZE, Select::SYSTEM)?, 4);
        let huge = (PAGE_SIZE as u64) << PMD_ORDER;
        assert_eq!(pm.evict_range(PAGE_SIZE as u64, huge).err(), Some(EINVAL));
        assert_eq!(pm.evict_range(huge, pm.size()).err(), Some(ERANGE));
        // The pages were given the lowest offsets: the second half has none.
        pm.evict_range(huge, huge)?;
        assert_eq!(stats.allocated.load(Ordering::Relaxed), 4);
        pm.evict_range(0, huge)?;
        assert_eq!(stats.allocated.load(Ordering::Relaxed), 0);
        assert_eq!(stats.copied_to_ram.load(Ordering::Relaxed), 4);
        assert_eq!(device_pages(&pm, addr, 4)?, 0);
        check_user_pages(addr)?;
        Ok(())
    }

    #[test]
    fn a_huge_folio_moves_whole() -> Result {
        let (stats, pm) = pagemap()?;
        let huge = PAGE_SIZE << PMD_ORDER;
        let map = kunit_user_map(2 * huge / PAGE_SIZE)?;
        let addr = (map + huge - 1) & !(huge - 1);
        let marked = [0, 1, 300, 511];
        for &p in &marked {
            kunit_write_user(addr + p * PAGE_SIZE, &pattern(p))?;
        }
        // The write fault gave the range a huge page (THP is always on in
        // the test kernel).
        let n = kunit_notifier(addr, huge, Nop, ())?;
        let mut r = Range::new(&n, addr, addr + PAGE_SIZE, Request::Read)?;
        r.fault(0)?;
        assert_eq!(r.page(0).map(|p| p.map_order()), Some(PMD_ORDER));

        let select = Select::SYSTEM | Select::COMPOUND;
        assert_eq!(to_device(&pm, addr, huge, select)?, 1);
        assert_eq!(stats.allocated.load(Ordering::Relaxed), 512);
        assert_eq!(device_pages(&pm, addr, 512)?, 512);

        // One CPU read brings the whole folio back.
        assert_eq!(read_user(addr + PAGE_SIZE)?, pattern(1));
        assert_eq!(stats.copied_to_ram.load(Ordering::Relaxed), 512);
        assert_eq!(stats.allocated.load(Ordering::Relaxed), 0);
        for &p in &marked {
            assert_eq!(read_user(addr + p * PAGE_SIZE)?, pattern(p));
        }
        assert_eq!(read_user(addr + 2 * PAGE_SIZE)?, [0u8; 64]);
        Ok(())
    }

    #[test]
    fn device_folios_are_checked_and_freed_on_drop() -> Result {
        let (stats, pm) = pagemap()?;
        let huge = (PAGE_SIZE << PMD_ORDER) as u64;
        assert_eq!(pm.init_folio(1, 0).err(), Some(EINVAL));
        assert_eq!(
            pm.init_folio(PAGE_SIZE as u64, PMD_ORDER).err(),
            Some(EINVAL)
        );
        assert_eq!(pm.init_folio(pm.size(), 0).err(), Some(EINVAL));
        assert_eq!(pm.init_folio(0, 3).err(), Some(EINVAL));

        let offset = pm.data().alloc(PMD_ORDER)?;
        assert_eq!(offset % huge, 0);
        let folio = pm.init_folio(offset, PMD_ORDER)?;
        assert_eq!((folio.offset(), folio.order()), (offset, PMD_ORDER));
        // In use: neither the folio nor a page of it can be set up again.
        assert_eq!(pm.init_folio(offset, PMD_ORDER).err(), Some(EBUSY));
        assert_eq!(
            pm.init_folio(offset + PAGE_SIZE as u64, 0).err(),
            Some(EBUSY)
        );
        assert_eq!(stats.allocated.load(Ordering::Relaxed), 512);
        drop(folio);
        assert_eq!(stats.allocated.load(Ordering::Relaxed), 0);
        Ok(())
    }
}
