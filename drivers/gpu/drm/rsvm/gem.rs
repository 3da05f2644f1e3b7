// SPDX-License-Identifier: GPL-2.0

//! GEM objects.
//!
//! rsvm's memory model is SVM: the GPU uses the process's own pages, so no
//! ioctl creates buffer objects yet. The DRM core still needs an object type.

use kernel::{
    drm::gem,
    prelude::*, //
};

use crate::driver::{
    RsvmDevice,
    RsvmDriver, //
};

/// Driver data of a GEM object.
#[pin_data]
pub(crate) struct RsvmObject {}

impl gem::DriverObject for RsvmObject {
    type Driver = RsvmDriver;
    type Args = ();

    fn new(_dev: &RsvmDevice, _size: usize, _args: Self::Args) -> impl PinInit<Self, Error> {
        try_pin_init!(RsvmObject {})
    }
}
