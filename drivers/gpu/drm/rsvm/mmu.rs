// SPDX-License-Identifier: GPL-2.0

//! GMMU version 2 page tables (`dev_mmu.ref`, `gp100-mmu-format.pdf`).
//!
//! A 49-bit address space of five levels: PDE3 (VA 48:47), PDE2 (46:38),
//! PDE1 (37:29), PDE0 (28:21, 16-byte dual entries that point at a 64 KiB
//! and a 4 KiB page table or hold a 2 MiB PTE) and the page tables. Every
//! table is one 4 KiB page of coherent system memory.
//!
//! Tables are never allocated under the locks the mirror takes (an
//! allocation may reclaim, and reclaim may call back into the mirror): the
//! caller fills a [`Reserve`] first and [`PageTables::map`] fails with
//! `EAGAIN` if it needs more. Tables that become empty are unlinked into a
//! [`Garbage`] list that the caller drops only after the TLB invalidate.
//!
//! [`AddressSpace`] is one GPU address space built on these tables;
//! [`tlb`] holds the invalidate and the fault replay and cancel.

use kernel::{
    device::{
        Bound,
        Device, //
    },
    new_mutex,
    prelude::*,
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        Arc,
        Mutex, //
    }, //
};

use crate::mem::Qwords;

mod address_space;
pub(crate) mod pte;
pub(crate) mod tlb;

pub(crate) use address_space::AddressSpace;
use pte::{
    Pde,
    PdeBig,
    Pte, //
};

/// Page-table pages in the page tables of all VMs of all devices (a
/// diagnostic for leak tests; spare tables in pools and reserves are not
/// counted). [`PtCount`] counts them per device.
pub(crate) static PT_PAGES: Atomic<u64> = Atomic::new(0);

/// Page-table pages linked into the address spaces of one device.
pub(crate) struct PtCount(Atomic<u64>);

impl PtCount {
    pub(crate) fn new() -> Self {
        Self(Atomic::new(0))
    }

    /// The pages counted now.
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// Entries of the largest table.
const MAX_ENTRIES: usize = 512;

/// Bytes mapped by one PTE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PageSize {
    /// 4 KiB, in a small page table.
    Small,
    /// 64 KiB, in a big page table.
    Big,
    /// 2 MiB, a PTE in the PDE0 entry itself.
    Huge,
}

impl PageSize {
    /// The page size in bytes.
    pub(crate) const fn bytes(self) -> u64 {
        match self {
            Self::Small => 1 << 12,
            Self::Big => 1 << 16,
            Self::Huge => 1 << 21,
        }
    }
}

/// Permissions of a PTE.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PteFlags {
    /// Writes and atomics fault with `RO`.
    pub(crate) read_only: bool,
    /// Only privileged (host/PBDMA) accesses may use the page.
    pub(crate) privileged: bool,
}

/// A valid PTE mapping system memory at `addr` with `flags`.
fn pte(addr: u64, flags: PteFlags) -> Result<u64> {
    Pte::system(addr, flags.read_only, flags.privileged)
}

/// One page-table page and the tables below it.
pub(crate) struct Table {
    mem: Qwords,
    /// Children by entry (a PDE0 has two per entry: `2 * i` the 64 KiB
    /// table, `2 * i + 1` the 4 KiB table); empty for page tables.
    children: KVec<Option<KBox<Table>>>,
    /// Entries in use: children, valid PTEs, 2 MiB PTEs.
    used: usize,
    /// Link of the [`Garbage`] list.
    next: Option<KBox<Table>>,
    /// Linked into an address space's tables: counted there and in
    /// [`PT_PAGES`].
    count: Option<Arc<PtCount>>,
}

impl Table {
    fn new(dev: &Device<Bound>) -> Result<KBox<Self>> {
        let mem = Qwords::new(dev)?;
        let mut children = KVec::with_capacity(MAX_ENTRIES, GFP_KERNEL)?;
        for _ in 0..MAX_ENTRIES {
            children.push(None, GFP_KERNEL)?;
        }
        let t = KBox::new(
            Self {
                mem,
                children,
                used: 0,
                next: None,
                count: None,
            },
            GFP_KERNEL,
        )?;
        Ok(t)
    }

    /// Marks a table as part of an address space's tables, counted in
    /// `count`.
    fn link(mut self: KBox<Self>, count: &Arc<PtCount>) -> KBox<Self> {
        PT_PAGES.add(1, Relaxed);
        count.0.add(1, Relaxed);
        self.count = Some(count.clone());
        self
    }

    fn addr(&self) -> u64 {
        self.mem.addr()
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        if let Some(count) = self.count.take() {
            PT_PAGES.fetch_sub(1, Relaxed);
            count.0.fetch_sub(1, Relaxed);
        }
    }
}

/// Tables a single mapping of any size may need (PDE2, PDE1, PDE0, PT).
const PER_MAPPING: usize = 4;

/// Tables allocated ahead of a mapping, outside the mirror's locks. A
/// reserve is kept across mappings (a fault worker keeps one per VM): it is
/// topped up only when a walk took tables from it, so a fault into tables
/// that exist allocates nothing.
#[derive(Default)]
pub(crate) struct Reserve([Option<KBox<Table>>; PER_MAPPING]);

impl Reserve {
    /// Whether the reserve holds what any one mapping needs.
    fn is_full(&self) -> bool {
        self.0.iter().all(Option::is_some)
    }

    /// Fills the reserve with new tables.
    pub(crate) fn fill(&mut self, dev: &Device<Bound>) -> Result {
        for slot in self.0.iter_mut().filter(|s| s.is_none()) {
            *slot = Some(Table::new(dev)?);
        }
        Ok(())
    }

    /// Fills the reserve from `pool`, without allocating; returns whether
    /// it is full.
    pub(crate) fn fill_from(&mut self, pool: &PtPool) -> bool {
        if self.is_full() {
            return true;
        }
        let mut tables = pool.tables.lock();
        for slot in self.0.iter_mut().filter(|s| s.is_none()) {
            *slot = tables.pop();
        }
        self.is_full()
    }

    /// A table to link into the tables counted in `count`.
    fn take(&mut self, count: &Arc<PtCount>) -> Result<KBox<Table>> {
        self.0
            .iter_mut()
            .find_map(Option::take)
            .map(|t| t.link(count))
            .ok_or(EAGAIN)
    }
}

/// Page-table pages allocated ahead for the whole device, for the contexts
/// that cannot allocate DMA memory (the fault workers run without a bound
/// device): refilled where a bound device is at hand.
#[pin_data]
pub(crate) struct PtPool {
    #[pin]
    tables: Mutex<KVec<KBox<Table>>>,
}

impl PtPool {
    /// An empty pool with room for `capacity` tables.
    pub(crate) fn new(capacity: usize) -> Result<impl PinInit<Self>> {
        let tables = KVec::with_capacity(capacity, GFP_KERNEL)?;
        Ok(pin_init!(Self {
            tables <- new_mutex!(tables),
        }))
    }

    /// Allocates tables until the pool holds `target` (at most its
    /// capacity); allocates nothing when it already does.
    pub(crate) fn refill(&self, dev: &Device<Bound>, target: usize) -> Result {
        loop {
            {
                let tables = self.tables.lock();
                if tables.len() >= target.min(tables.capacity()) {
                    return Ok(());
                }
            }
            // Allocated outside the lock, which fault workers take.
            let t = Table::new(dev)?;
            let mut tables = self.tables.lock();
            if tables.push_within_capacity(t).is_err() {
                return Ok(());
            }
        }
    }
}

/// Tables unlinked from the tree, freed when this is dropped: after the
/// TLB invalidate that makes the GPU forget them.
#[derive(Default)]
pub(crate) struct Garbage(Option<KBox<Table>>);

impl Garbage {
    fn push(&mut self, mut t: KBox<Table>) {
        t.next = self.0.take();
        self.0 = Some(t);
    }

    /// Whether any table waits to be freed.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_none()
    }
}

impl Drop for Garbage {
    fn drop(&mut self) {
        // Iteratively, so a long list cannot exhaust the stack.
        let mut next = self.0.take();
        while let Some(mut t) = next {
            next = t.next.take();
        }
    }
}

/// Shift of the first VA bit each directory level decodes, and its entries.
const DIR_LEVELS: [(u32, usize); 3] = [(47, 4), (38, 512), (29, 512)];
/// PDE0: VA 28:21, 256 entries of 16 bytes.
const PDE0_SHIFT: u32 = 21;
const PDE0_ENTRIES: usize = 256;
/// Virtual address bits of a GMMU v2 address space (five levels).
pub(crate) const VA_BITS: u32 = 49;
/// Addresses a GMMU v2 address space can hold.
pub(crate) const VA_LIMIT: u64 = 1 << VA_BITS;

/// The page tables of one GPU address space.
pub(crate) struct PageTables {
    root: KBox<Table>,
    /// Where its tables are counted.
    count: Arc<PtCount>,
}

impl PageTables {
    /// An empty address space, its tables counted in `count`.
    pub(crate) fn new(dev: &Device<Bound>, count: &Arc<PtCount>) -> Result<Self> {
        Ok(Self {
            root: Table::new(dev)?.link(count),
            count: count.clone(),
        })
    }

    /// The page directory base (PDE3 table) for the instance block.
    pub(crate) fn pdb(&self) -> u64 {
        self.root.addr()
    }

    /// Maps the page of `size` at `va` to system memory at `addr`.
    /// Whatever `va` mapped before is replaced; a 2 MiB mapping replaces the
    /// page tables under it (into `garbage`). `EAGAIN`: `reserve` ran out.
    pub(crate) fn map(
        &mut self,
        va: u64,
        addr: u64,
        size: PageSize,
        flags: PteFlags,
        reserve: &mut Reserve,
        garbage: &mut Garbage,
    ) -> Result {
        let bytes = size.bytes();
        if va % bytes != 0 || addr % bytes != 0 || va >= VA_LIMIT {
            return Err(EINVAL);
        }
        // Encoded first: nothing changes if the address does not fit.
        let entry = pte(addr, flags)?;
        let mut t: &mut Table = &mut self.root;
        for (shift, entries) in DIR_LEVELS {
            let i = ((va >> shift) as usize) & (entries - 1);
            if t.children[i].is_none() {
                let child = reserve.take(&self.count)?;
                t.mem.set(i, Pde::system(child.addr())?);
                t.children[i] = Some(child);
                t.used += 1;
            }
            t = t.children[i].as_deref_mut().ok_or(EINVAL)?;
        }
        let i = ((va >> PDE0_SHIFT) as usize) & (PDE0_ENTRIES - 1);
        let huge = Pte::is_valid(t.mem.get(2 * i));
        match size {
            PageSize::Huge => {
                for c in [2 * i, 2 * i + 1] {
                    if let Some(child) = t.children[c].take() {
                        garbage.push(child);
                        t.used -= 1;
                    }
                }
                if !huge {
                    t.used += 1;
                }
                t.mem.set(2 * i + 1, 0);
                t.mem.set(2 * i, entry);
            }
            PageSize::Small | PageSize::Big => {
                if huge {
                    t.mem.set(2 * i, 0);
                    t.used -= 1;
                }
                let (c, shift, entries) = match size {
                    PageSize::Big => (2 * i, 16, 32),
                    _ => (2 * i + 1, 12, 512),
                };
                if t.children[c].is_none() {
                    let child = reserve.take(&self.count)?;
                    if size == PageSize::Big {
                        t.mem.set(2 * i, PdeBig::system(child.addr())?);
                    } else {
                        t.mem.set(2 * i + 1, Pde::system(child.addr())?);
                    }
                    t.children[c] = Some(child);
                    t.used += 1;
                }
                let pt = t.children[c].as_deref_mut().ok_or(EINVAL)?;
                let j = ((va >> shift) as usize) & (entries - 1);
                if !Pte::is_valid(pt.mem.get(j)) {
                    pt.used += 1;
                }
                pt.mem.set(j, entry);
            }
        }
        Ok(())
    }

    /// Invalidates every PTE that maps any byte of `[start, end)` (a 2 MiB
    /// or 64 KiB page partly inside goes as a whole) and unlinks the tables
    /// this empties into `garbage` (with `prune`; otherwise they stay for
    /// later use). Allocates nothing and never sleeps. Returns the number of
    /// PTEs cleared.
    pub(crate) fn unmap(
        &mut self,
        start: u64,
        end: u64,
        prune: bool,
        garbage: &mut Garbage,
    ) -> usize {
        let end = end.min(VA_LIMIT);
        if start >= end {
            return 0;
        }
        let mut u = Unmap {
            start,
            end,
            prune,
            garbage,
        };
        u.dir(&mut self.root, 0, 0)
    }

    /// Whether a valid PTE maps `va`.
    pub(crate) fn is_mapped(&self, va: u64) -> bool {
        let mut t: &Table = &self.root;
        for (shift, entries) in DIR_LEVELS {
            let i = ((va >> shift) as usize) & (entries - 1);
            match t.children[i].as_deref() {
                Some(c) => t = c,
                None => return false,
            }
        }
        let i = ((va >> PDE0_SHIFT) as usize) & (PDE0_ENTRIES - 1);
        if Pte::is_valid(t.mem.get(2 * i)) {
            return true;
        }
        [(2 * i, 16, 32), (2 * i + 1, 12, 512)]
            .iter()
            .any(|&(c, shift, entries)| {
                t.children[c].as_deref().is_some_and(|pt| {
                    Pte::is_valid(pt.mem.get(((va >> shift) as usize) & (entries - 1)))
                })
            })
    }
}

/// One walk of [`PageTables::unmap`].
struct Unmap<'a> {
    start: u64,
    end: u64,
    prune: bool,
    garbage: &'a mut Garbage,
}

impl Unmap<'_> {
    fn overlaps(&self, lo: u64, span: u64) -> bool {
        lo < self.end && lo + span > self.start
    }

    fn dir(&mut self, t: &mut Table, level: usize, base: u64) -> usize {
        let (shift, entries) = DIR_LEVELS[level];
        let span = 1u64 << shift;
        let mut cleared = 0;
        for i in 0..entries {
            let lo = base + i as u64 * span;
            if !self.overlaps(lo, span) {
                continue;
            }
            let Some(child) = t.children[i].as_deref_mut() else {
                continue;
            };
            cleared += if level + 1 < DIR_LEVELS.len() {
                self.dir(child, level + 1, lo)
            } else {
                self.pde0(child, lo)
            };
            if child.used == 0 && self.prune {
                t.mem.set(i, 0);
                if let Some(c) = t.children[i].take() {
                    self.garbage.push(c);
                }
                t.used -= 1;
            }
        }
        cleared
    }

    fn pde0(&mut self, t: &mut Table, base: u64) -> usize {
        let span = PageSize::Huge.bytes();
        let mut cleared = 0;
        for i in 0..PDE0_ENTRIES {
            let lo = base + i as u64 * span;
            if !self.overlaps(lo, span) {
                continue;
            }
            if Pte::is_valid(t.mem.get(2 * i)) {
                t.mem.set(2 * i, 0);
                t.used -= 1;
                cleared += 1;
                continue;
            }
            for (c, size, entries) in [
                (2 * i, PageSize::Big, 32),
                (2 * i + 1, PageSize::Small, 512),
            ] {
                let Some(pt) = t.children[c].as_deref_mut() else {
                    continue;
                };
                let page = size.bytes();
                for j in 0..entries {
                    let va = lo + j as u64 * page;
                    if !self.overlaps(va, page) || !Pte::is_valid(pt.mem.get(j)) {
                        continue;
                    }
                    pt.mem.set(j, 0);
                    pt.used -= 1;
                    cleared += 1;
                }
                if pt.used == 0 && self.prune {
                    if size == PageSize::Big {
                        t.mem.set(2 * i, 0);
                    } else {
                        t.mem.set(2 * i + 1, 0);
                    }
                    if let Some(pt) = t.children[c].take() {
                        self.garbage.push(pt);
                    }
                    t.used -= 1;
                }
            }
        }
        cleared
    }
}
