/* SPDX-License-Identifier: MIT */
/*
 * rsvm: a DRM driver that gives a GPU shared virtual memory with the process
 * that uses it, through Linux HMM.
 *
 * This is the userspace interface of the rsvm driver. Every structure has
 * explicit padding and a fixed size on all ABIs; every reserved field and
 * every flag bit not defined here must be zero, or the ioctl fails with
 * -EINVAL.
 */

#ifndef __RSVM_DRM_H__
#define __RSVM_DRM_H__

#include "drm.h"

#if defined(__cplusplus)
extern "C" {
#endif

/*
 * Parameters that DRM_IOCTL_RSVM_GET_PARAM reports. New parameters are only
 * ever appended; an unknown one gives -EINVAL, which is how userspace detects
 * an older kernel.
 *
 * DRM_RSVM_PARAM_CHIP_ID: the chip identification register (BOOT_0:
 *	architecture 28:24, implementation 23:20, revision 7:0).
 * DRM_RSVM_PARAM_VRAM_SIZE: device memory size in bytes.
 * DRM_RSVM_PARAM_VA_BITS: number of virtual address bits of a GPU VM.
 * DRM_RSVM_PARAM_PAGE_SIZES: bit mask of the page sizes the GMMU maps
 *	(bit N set: pages of 2^N bytes are supported).
 * DRM_RSVM_PARAM_UAPI_VERSION: version of this interface,
 *	DRM_RSVM_UAPI_VERSION of the kernel's header.
 * DRM_RSVM_PARAM_FIRMWARE_VERSION: version of the firmware the device runs,
 *	major << 16 | minor (since uAPI version 2).
 */
#define DRM_RSVM_PARAM_CHIP_ID		0
#define DRM_RSVM_PARAM_VRAM_SIZE	1
#define DRM_RSVM_PARAM_VA_BITS		2
#define DRM_RSVM_PARAM_PAGE_SIZES	3
#define DRM_RSVM_PARAM_UAPI_VERSION	4
#define DRM_RSVM_PARAM_FIRMWARE_VERSION	5

/* Bumped whenever an ioctl or parameter is added. */
#define DRM_RSVM_UAPI_VERSION 2

/**
 * struct drm_rsvm_get_param - argument of DRM_IOCTL_RSVM_GET_PARAM.
 *
 * @param: in, one of DRM_RSVM_PARAM_*.
 * @pad: must be zero.
 * @value: out, the parameter's value.
 */
struct drm_rsvm_get_param {
	__u32 param;
	__u32 pad;
	__u64 value;
};

#define DRM_RSVM_GET_PARAM		0x00

/* Note: an enum so that Rust bindgen resolves the ioctl numbers. */
enum {
	DRM_IOCTL_RSVM_GET_PARAM = DRM_IOWR(DRM_COMMAND_BASE + DRM_RSVM_GET_PARAM,
					    struct drm_rsvm_get_param),
};

#if defined(__cplusplus)
}
#endif

#endif /* __RSVM_DRM_H__ */
