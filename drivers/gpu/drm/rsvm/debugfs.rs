// SPDX-License-Identifier: GPL-2.0

//! debugfs: per device, `/sys/kernel/debug/rsvm-<PCI name>/`, the counters
//! leak tests read after every test.
//!
//! * `page_tables`: page-table pages linked into the device's GPU address
//!   spaces (`DRM_RSVM_PARAM_PT_PAGES` counts them over every device);
//! * `channels`: channel ids taken.
//!
//! The files only read counters; no lock is held but the FIFO lock, for a
//! moment, to count channels.

use kernel::{
    debugfs,
    pci,
    prelude::*,
    str::CString,
    sync::Arc, //
};

use crate::{
    mmu::PtCount,
    vm::VmFifo, //
};

/// The device's debugfs directory and files, removed when dropped.
pub(crate) struct Debugfs {
    // Files go before their directory (field order is drop order).
    _page_tables: Pin<KBox<debugfs::File<Arc<PtCount>>>>,
    _channels: Pin<KBox<debugfs::File<Arc<VmFifo>>>>,
    _dir: debugfs::Dir,
}

impl Debugfs {
    pub(crate) fn new(
        pdev: &pci::Device,
        pt_count: &Arc<PtCount>,
        fifo: &Arc<VmFifo>,
    ) -> Result<Self> {
        let name = CString::try_from_fmt(fmt!("rsvm-{}", pdev.as_ref().name()))?;
        let dir = debugfs::Dir::new(&name);
        let page_tables = KBox::pin_init(
            dir.read_callback_file(c"page_tables", pt_count.clone(), &|c: &Arc<PtCount>, f| {
                writeln!(f, "{}", c.get())
            }),
            GFP_KERNEL,
        )?;
        let channels = KBox::pin_init(
            dir.read_callback_file(c"channels", fifo.clone(), &|fifo: &Arc<VmFifo>, f| {
                writeln!(f, "{}", fifo.lock().channels())
            }),
            GFP_KERNEL,
        )?;
        Ok(Self {
            _page_tables: page_tables,
            _channels: channels,
            _dir: dir,
        })
    }
}
