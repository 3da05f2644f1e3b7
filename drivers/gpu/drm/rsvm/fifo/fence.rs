// SPDX-License-Identifier: GPL-2.0

//! Job completion and channel errors: what a waiter waits for.
//!
//! A job's completion is its channel's fence (a semaphore release of the
//! job's sequence number, followed by a non-stall interrupt); a channel
//! stopped by an error records the error here. Both wake every waiter.
//!
//! Locking: `errors` and `lock` are spinlocks also taken in the hard
//! interrupt handler; the FIFO mutex is never taken under them.

use kernel::{
    new_condvar,
    new_spinlock_irq,
    prelude::*,
    sync::{
        CondVar,
        CondVarTimeoutResult,
        SpinLockIrq, //
    },
    time::Jiffies, //
};

use super::NUM_CHANNELS;

/// Channel errors and the fence wait queue of one GPU.
#[pin_data]
pub(crate) struct Fences {
    /// Per channel id: `(DRM_RSVM_ERROR_*, info)` of its first error; for
    /// `FAULT` and `MISALIGNED` the info is the whole address.
    #[pin]
    errors: SpinLockIrq<KVec<Option<(u32, u64)>>>,
    /// Taken around the fence check of a waiter and around the wake-up, so
    /// an interrupt between the check and the sleep is not lost.
    #[pin]
    lock: SpinLockIrq<()>,
    #[pin]
    wait: CondVar,
}

impl Fences {
    pub(crate) fn new() -> Result<impl PinInit<Self>> {
        let mut errors = KVec::with_capacity(NUM_CHANNELS, GFP_KERNEL)?;
        errors.extend_with(NUM_CHANNELS, None, GFP_KERNEL)?;
        Ok(pin_init!(Self {
            errors <- new_spinlock_irq!(errors),
            lock <- new_spinlock_irq!(()),
            wait <- new_condvar!(),
        }))
    }

    /// Records the first error of channel `chid` (`code` is a
    /// `DRM_RSVM_ERROR_*`, `info` its detail) and wakes its waiters. A
    /// later error of the same channel is dropped: the first says why it
    /// stopped.
    pub(crate) fn set_error(&self, chid: u32, code: u32, info: u64) {
        {
            let mut errors = self.errors.lock();
            if let Some(slot) = errors.get_mut(chid as usize) {
                slot.get_or_insert((code, info));
            }
        }
        self.signal();
    }

    /// The first error of channel `chid`: `(code, info)`.
    pub(crate) fn error(&self, chid: u32) -> Option<(u32, u64)> {
        self.errors.lock().get(chid as usize).copied().flatten()
    }

    /// Forgets the error of `chid` (for a new channel with that id).
    pub(crate) fn clear_error(&self, chid: u32) {
        if let Some(slot) = self.errors.lock().get_mut(chid as usize) {
            *slot = None;
        }
    }

    /// Wakes every waiter.
    pub(crate) fn signal(&self) {
        drop(self.lock.lock());
        self.wait.notify_all();
    }

    /// Waits until `done()` holds, an error is reported (`failed()`), a
    /// signal arrives or `timeout` jiffies pass. Returns `Ok(true)` when
    /// done, `Ok(false)` when failed.
    pub(crate) fn wait(
        &self,
        mut timeout: Jiffies,
        done: impl Fn() -> bool,
        failed: impl Fn() -> bool,
    ) -> Result<bool> {
        let mut guard = self.lock.lock();
        loop {
            if done() {
                return Ok(true);
            }
            if failed() {
                return Ok(false);
            }
            if timeout == 0 {
                return Err(ETIME);
            }
            match self.wait.wait_interruptible_timeout(&mut guard, timeout) {
                CondVarTimeoutResult::Timeout => timeout = 0,
                CondVarTimeoutResult::Woken { jiffies } => timeout = jiffies,
                CondVarTimeoutResult::Signal { .. } => return Err(ERESTARTSYS),
            }
        }
    }
}
