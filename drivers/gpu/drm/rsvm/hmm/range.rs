// SPDX-License-Identifier: GPL-2.0

//! One SVM-bound range: its MMU interval notifier and what its notifier
//! lock guards.
//!
//! Every CPU page-table change inside the range reaches
//! [`SvmRange::invalidate`] first, which clears the range's GPU PTEs and
//! flushes the TLB before it returns. Locking: the notifier lock
//! ([`SvmRangeState`]) is taken before the page-table lock; a non-blockable
//! invalidation only tries the page-table lock and asks the core to retry.

use kernel::{
    mm::mmu_notifier::{
        IntervalNotifier,
        IntervalNotifierOps,
        NotifierRange, //
    },
    sync::Arc, //
};

use crate::mmu::AddressSpace;

/// The notifier of one bound range.
pub(crate) type SvmNotifier = IntervalNotifier<SvmRange>;

/// State of a range under its notifier lock.
pub(crate) struct SvmRangeState {
    /// Cleared on unbind: nothing may be mapped for the range any more.
    pub(crate) live: bool,
}

/// The interval-notifier side of one bound range.
pub(crate) struct SvmRange {
    pub(crate) aspace: Arc<AddressSpace>,
    /// Unique among the VM's ranges, ever (an address is not: a range
    /// bound again where one was unbound may get the freed notifier's).
    pub(crate) id: u64,
}

impl IntervalNotifierOps for SvmRange {
    type State = SvmRangeState;

    fn invalidate(&self, _st: &mut SvmRangeState, range: &NotifierRange<'_>) -> bool {
        let blockable = range.is_blockable();
        let mut tables = if blockable {
            self.aspace.tables.lock()
        } else {
            match self.aspace.tables.try_lock() {
                Some(t) => t,
                None => return false,
            }
        };
        let garbage = self.aspace.unmap(
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
