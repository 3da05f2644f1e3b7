// SPDX-License-Identifier: GPL-2.0

//! The device's MSI-X vector and its handler.

use kernel::{
    device::Bound,
    irq::{
        self,
        IrqReturn,
        ThreadedIrqReturn, //
    },
    pci,
    prelude::*,
    sync::Arc, //
};

use crate::gpu::Gpu;

/// Interrupt handler: fences and channel errors in the hard handler, MMU
/// faults (which may sleep in `hmm_range_fault`) in the thread.
pub(crate) struct Handler<'bound> {
    pub(crate) gpu: Arc<Gpu<'bound>>,
}

impl irq::ThreadedHandler for Handler<'_> {
    fn handle(&self) -> ThreadedIrqReturn {
        self.gpu.handle_interrupt()
    }

    fn handle_threaded(&self) -> IrqReturn {
        self.gpu.handle_threaded();
        IrqReturn::Handled
    }
}

/// One MSI-X vector allocated for the device, with `T` installed on it.
///
/// The vector allocation and the handler registration are owned together
/// because the registration borrows the allocation: keeping both in one
/// pinned object makes the pair impossible to tear down in the wrong order.
#[pin_data]
pub(crate) struct Msix<'bound, T: irq::ThreadedHandler + 'bound> {
    // Declared first so it is dropped first: `free_irq` runs before
    // `pci_free_irq_vectors`.
    #[pin]
    registration: irq::ThreadedRegistration<'bound, T>,
    vectors: pci::IrqVectorRegistration<'bound>,
}

impl<'bound, T: irq::ThreadedHandler + 'bound> Msix<'bound, T> {
    /// Allocates one MSI-X vector of `pdev` and installs `handler` on it.
    ///
    /// # Safety
    ///
    /// The returned object must be dropped before `pdev` is unbound and must
    /// not be forgotten, as for [`irq::ThreadedRegistration::new`].
    pub(crate) unsafe fn new(
        pdev: &'bound pci::Device<Bound>,
        name: &'static CStr,
        handler: impl PinInit<T, Error> + 'bound,
    ) -> impl PinInit<Self, Error> + 'bound {
        let msix = pci::IrqTypes::default().with(pci::IrqType::MsiX);
        try_pin_init!(&this in Self {
            vectors: pdev.alloc_irq_vectors(1, 1, msix)?,
            registration <- {
                // SAFETY: `vectors` is initialised above and lives in `*this`,
                // which is pinned: it stays at this address until dropped, and
                // it is dropped only after `registration` (field order), so
                // the borrow outlives every use the registration makes of it.
                let vectors: &'bound pci::IrqVectorRegistration<'bound> =
                    unsafe { &*core::ptr::addr_of!((*this.as_ptr()).vectors) };
                let request = vectors.index(0)?.into();
                // SAFETY: the registration is a pinned field of `Self`, which
                // the caller promises not to forget (see `# Safety`).
                unsafe {
                    irq::ThreadedRegistration::new(
                        request,
                        irq::Flags::TRIGGER_NONE,
                        name,
                        handler,
                    )
                }
            },
        })
    }

    /// The installed handler.
    pub(crate) fn handler(&self) -> &T {
        self.registration.handler()
    }
}
