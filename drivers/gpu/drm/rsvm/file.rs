// SPDX-License-Identifier: GPL-2.0

//! Per-open-file state and the ioctl handlers.

use kernel::{
    drm::{self, Registered},
    prelude::*,
    uapi,
};

use crate::{
    driver::{RsvmDevice, RsvmDriver, RsvmRegData},
    gpu,
};

/// State of one open DRM file.
pub(crate) struct File;

impl drm::file::DriverFile for File {
    type Driver = RsvmDriver;

    fn open(_dev: &RsvmDevice) -> Result<Pin<KBox<Self>>> {
        Ok(KBox::new(Self, GFP_KERNEL)?.into())
    }
}

impl File {
    /// `DRM_IOCTL_RSVM_GET_PARAM`: reports one device parameter.
    pub(crate) fn get_param(
        _dev: &RsvmDevice<Registered>,
        reg: &RsvmRegData<'_>,
        args: &mut uapi::drm_rsvm_get_param,
        _file: &drm::File<File>,
    ) -> Result<u32> {
        if args.pad != 0 {
            return Err(EINVAL);
        }
        let spec = reg.gpu.spec();
        args.value = match args.param {
            uapi::DRM_RSVM_PARAM_CHIP_ID => spec.boot0.into(),
            uapi::DRM_RSVM_PARAM_VRAM_SIZE => spec.vram_size,
            uapi::DRM_RSVM_PARAM_VA_BITS => gpu::VA_BITS.into(),
            uapi::DRM_RSVM_PARAM_PAGE_SIZES => gpu::PAGE_SIZES,
            uapi::DRM_RSVM_PARAM_UAPI_VERSION => uapi::DRM_RSVM_UAPI_VERSION.into(),
            uapi::DRM_RSVM_PARAM_FIRMWARE_VERSION => reg.gpu.firmware_version().into(),
            _ => return Err(EINVAL),
        };
        Ok(0)
    }
}
