// SPDX-License-Identifier: GPL-2.0

//! PCI probe and the DRM driver.
//!
//! Who owns what, from the outside in:
//!
//! * [`RsvmPci`] is the PCI driver data, alive while the device is bound:
//!   the DRM registration, the MSI-X vector and the [`Gpu`].
//! * [`RsvmRegData`] is what ioctls reach through the registration: the
//!   [`Gpu`] again (ioctls run only while the device is registered).
//! * [`Gpu`] is the bound GPU: the fault buffers, the interrupt state and
//!   the debugfs files, and the reference-counted parts below.
//! * [`crate::hw::Hw`] (the register file, revocable) and
//!   [`crate::vm::Shared`] (the host, the TLB unit, the page-table pool)
//!   outlive the bound scope: open files, their VMs and MMU notifiers hold
//!   them, and after unbind they touch no hardware.

use kernel::{
    device::{
        Core,
        DeviceContext, //
    },
    dma::{
        Device as _,
        DmaMask, //
    },
    drm::{
        self,
        gem,
        ioctl, //
    },
    pci,
    prelude::*,
    sync::Arc, //
};

use crate::{
    fifo,
    file::File,
    gem::RsvmObject,
    gpu::Gpu,
    irq::{
        self,
        Msix, //
    }, //
};

/// PCI device ID of the GV100-subset model (vendor `PCI_VENDOR_ID_RSVM`).
pub(crate) const PCI_DEVICE_ID_RSVM_GV100: u32 = 0x564d;

/// The PCI driver.
pub(crate) struct RsvmPciDriver;

/// The DRM driver.
pub(crate) struct RsvmDriver;

/// The DRM device of this driver.
pub(crate) type RsvmDevice<Ctx = drm::Normal> = drm::Device<RsvmDriver, Ctx>;

/// Data that ioctls reach while the device is registered.
pub(crate) struct RsvmRegData<'bound> {
    pub(crate) gpu: Arc<Gpu<'bound>>,
}

/// Everything a bound device owns.
///
/// Field order is drop order: the DRM device is unplugged first (waiting for
/// ioctls in flight), then the interrupt is freed, then the GPU is released.
#[pin_data]
pub(crate) struct RsvmPci<'bound> {
    _reg: drm::Registration<'bound, RsvmDriver>,
    #[pin]
    irq: Msix<'bound, irq::Handler<'bound>>,
    gpu: Arc<Gpu<'bound>>,
}

kernel::pci_device_table!(
    PCI_TABLE,
    <RsvmPciDriver as pci::Driver>::IdInfo,
    [(
        pci::DeviceId::from_id(pci::Vendor::RSVM, PCI_DEVICE_ID_RSVM_GV100),
        ()
    )]
);

const INFO: drm::DriverInfo = drm::DriverInfo {
    major: 0,
    minor: 1,
    patchlevel: 0,
    name: c"rsvm",
    desc: c"GPU shared virtual memory through HMM",
};

impl pci::Driver for RsvmPciDriver {
    type IdInfo = ();
    type Data<'bound> = RsvmPci<'bound>;

    const ID_TABLE: pci::IdTable<Self::IdInfo> = &PCI_TABLE;

    fn probe<'bound>(
        pdev: &'bound pci::Device<Core<'_>>,
        _info: Option<&'bound Self::IdInfo>,
    ) -> impl PinInit<Self::Data<'bound>, Error> + 'bound {
        pin_init::pin_init_scope(move || {
            pdev.enable_device_mem()?;
            pdev.set_master();
            // SAFETY: nothing of this device allocates or maps DMA memory
            // yet: probe has not created anything that could.
            unsafe { pdev.dma_set_mask_and_coherent(DmaMask::new::<{ fifo::DMA_BITS }>())? };

            let gpu = Arc::new(Gpu::new(pdev)?, GFP_KERNEL)?;
            let drm = drm::UnregisteredDevice::<RsvmDriver>::new(pdev, Ok(()))?;
            let handler = irq::Handler { gpu: gpu.clone() };

            Ok(try_pin_init!(RsvmPci {
                // SAFETY: `irq` is a pinned field of the driver data, dropped
                // when the device is unbound and never forgotten.
                irq <- unsafe { Msix::new(pdev, c"rsvm", Ok::<_, Error>(handler)) },
                _: {
                    irq.handler().gpu.enable_interrupts();
                    irq.handler().gpu.interrupt_self_test()?;
                },
                // SAFETY: `_reg` is stored in the driver data and dropped when
                // the device is unbound; it is never forgotten.
                _reg: unsafe {
                    drm::Registration::new(
                        pdev.as_ref(),
                        drm,
                        RsvmRegData { gpu: gpu.clone() },
                        0,
                    )?
                },
                gpu,
            }))
        })
    }

    fn unbind<'bound>(_pdev: &'bound pci::Device<Core<'_>>, this: Pin<&Self::Data<'bound>>) {
        // Open files may outlive the device: stop every channel now, so the
        // GPU touches none of their memory once it is freed.
        this.gpu.shared.fifo.stop_all();
        this.gpu.disable_interrupts();
    }
}

#[vtable]
impl drm::Driver for RsvmDriver {
    type Data = ();
    type RegistrationData<'a> = RsvmRegData<'a>;
    type File = File;
    type Object = gem::Object<RsvmObject>;
    type ParentDevice<Ctx: DeviceContext> = pci::Device<Ctx>;

    const INFO: drm::DriverInfo = INFO;
    const FEAT_RENDER: bool = true;

    kernel::declare_drm_ioctls! {
        (RSVM_GET_PARAM, drm_rsvm_get_param, ioctl::RENDER_ALLOW, File::get_param),
        (RSVM_SVM_BIND, drm_rsvm_svm_bind, ioctl::RENDER_ALLOW, File::svm_bind),
        (RSVM_CHANNEL_CREATE, drm_rsvm_channel_create, ioctl::RENDER_ALLOW,
            File::channel_create),
        (RSVM_CHANNEL_DESTROY, drm_rsvm_channel_destroy, ioctl::RENDER_ALLOW,
            File::channel_destroy),
        (RSVM_EXEC, drm_rsvm_exec, ioctl::RENDER_ALLOW, File::exec),
        (RSVM_WAIT, drm_rsvm_wait, ioctl::RENDER_ALLOW, File::wait),
    }
}
