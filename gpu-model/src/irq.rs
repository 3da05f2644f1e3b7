//! MSI-X delivery: QEMU hands one eventfd per vector; writing it raises the
//! interrupt in the guest.

use std::fs::File;
use std::io::Write;
use std::sync::Mutex;

/// Number of MSI-X vectors the device implements.
pub const MSIX_VECTORS: u32 = 1;

/// The eventfds QEMU installed, per vector.
#[derive(Default)]
pub struct Msix {
    vectors: Mutex<Vec<Option<File>>>,
}

impl Msix {
    /// Installs (or with `None`, removes) the eventfds of `start..`.
    pub fn set(&self, start: u32, fds: impl IntoIterator<Item = Option<File>>) {
        let mut v = self.vectors.lock().expect("MSI-X table poisoned");
        for (i, fd) in fds.into_iter().enumerate() {
            let i = start as usize + i;
            if i >= MSIX_VECTORS as usize {
                log::warn!("MSI-X vector {i} does not exist");
                continue;
            }
            if v.len() <= i {
                v.resize_with(i + 1, || None);
            }
            v[i] = fd;
        }
    }

    /// Removes every eventfd.
    pub fn clear(&self) {
        self.vectors.lock().expect("MSI-X table poisoned").clear();
    }

    /// Signals `vector`; returns whether an eventfd was there to signal.
    pub fn signal(&self, vector: u32) -> bool {
        let mut v = self.vectors.lock().expect("MSI-X table poisoned");
        match v.get_mut(vector as usize) {
            Some(Some(f)) => {
                if let Err(e) = f.write_all(&1u64.to_le_bytes()) {
                    log::error!("MSI-X vector {vector}: {e}");
                    return false;
                }
                true
            }
            _ => false,
        }
    }
}
