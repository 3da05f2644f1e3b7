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
 * DRM_RSVM_PARAM_KERNEL_VA_START, DRM_RSVM_PARAM_KERNEL_VA_SIZE: GPU virtual
 *	addresses the kernel keeps for its own rings and fences; no SVM range
 *	may overlap them (since uAPI version 3).
 * DRM_RSVM_PARAM_SVM_VA_LIMIT: SVM ranges must end at or below this address
 *	(since uAPI version 3).
 * DRM_RSVM_PARAM_ENGINES: engines the device runs, DRM_RSVM_ENGINE_* bits
 *	(since uAPI version 3).
 * DRM_RSVM_PARAM_PT_PAGES: page-table pages the device's VMs hold now; a
 *	diagnostic for leak tests (since uAPI version 3).
 *
 * Version 4 added drm_rsvm_wait.fault_address.
 * Version 5 added drm_rsvm_wait.result_flags (DRM_RSVM_WAIT_*) and
 * DRM_RSVM_ERROR_MISALIGNED; faults outside the GPU's virtual address space
 * are reported as DRM_RSVM_ERROR_FAULT with their whole address.
 */
#define DRM_RSVM_PARAM_CHIP_ID		0
#define DRM_RSVM_PARAM_VRAM_SIZE	1
#define DRM_RSVM_PARAM_VA_BITS		2
#define DRM_RSVM_PARAM_PAGE_SIZES	3
#define DRM_RSVM_PARAM_UAPI_VERSION	4
#define DRM_RSVM_PARAM_FIRMWARE_VERSION	5
#define DRM_RSVM_PARAM_KERNEL_VA_START	6
#define DRM_RSVM_PARAM_KERNEL_VA_SIZE	7
#define DRM_RSVM_PARAM_SVM_VA_LIMIT	8
#define DRM_RSVM_PARAM_ENGINES		9
#define DRM_RSVM_PARAM_PT_PAGES		10

/* Bumped whenever an ioctl or parameter is added. */
#define DRM_RSVM_UAPI_VERSION 5

/* Engines (DRM_RSVM_PARAM_ENGINES). */
#define DRM_RSVM_ENGINE_COPY		(1 << 0)
#define DRM_RSVM_ENGINE_COMPUTE		(1 << 1)

/*
 * Every channel has its engines' objects bound to fixed subchannels when it
 * is created; a pushbuffer uses them and never binds objects itself.
 */
#define DRM_RSVM_SUBCHANNEL_COMPUTE	1	/* class 0x52c0 */
#define DRM_RSVM_SUBCHANNEL_COPY	4	/* class 0xc3b5 */

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

/*
 * Each open file of the device has one GPU virtual address space (VM), made
 * on first use for the process that uses it; only that process (the same
 * mm) may bind ranges or submit work with the file (-EACCES otherwise). A
 * GPU virtual address is the CPU virtual address of the same byte.
 */

/* drm_rsvm_svm_bind.op */
#define DRM_RSVM_SVM_OP_BIND	0
#define DRM_RSVM_SVM_OP_UNBIND	1

/* drm_rsvm_svm_bind.flags */
#define DRM_RSVM_SVM_BIND_POPULATE	(1 << 0)

/**
 * struct drm_rsvm_svm_bind - argument of DRM_IOCTL_RSVM_SVM_BIND.
 *
 * DRM_RSVM_SVM_OP_BIND mirrors [@start, @start + @length) of the caller's
 * address space into the file's VM: GPU accesses there fault and are served
 * from the CPU page tables on demand, and every later change of those CPU
 * page tables (munmap, mprotect, fork, reclaim, migration) reaches the GPU
 * before it takes effect. With DRM_RSVM_SVM_BIND_POPULATE the pages the CPU
 * maps now are mirrored at once (read-only, so nothing is dirtied). The
 * range need not be mapped by the CPU yet; what is not mapped when the GPU
 * touches it fails the job (DRM_RSVM_ERROR_FAULT).
 *
 * DRM_RSVM_SVM_OP_UNBIND removes a range exactly as it was bound.
 *
 * Errors: -EINVAL for an unknown @op or flag, a non-zero @pad, an unaligned
 * or empty range, a range past DRM_RSVM_PARAM_SVM_VA_LIMIT or over the
 * kernel's addresses; -EEXIST if it overlaps a bound range; -ENOENT to
 * unbind what is not bound; -EACCES from another process.
 *
 * @start: in, page-aligned CPU (and GPU) virtual address.
 * @length: in, bytes, a non-zero multiple of the page size.
 * @op: in, DRM_RSVM_SVM_OP_BIND or DRM_RSVM_SVM_OP_UNBIND.
 * @flags: in, DRM_RSVM_SVM_BIND_* (0 for an unbind).
 */
struct drm_rsvm_svm_bind {
	__u64 start;
	__u64 length;
	__u32 op;
	__u32 flags;
};

/* Most channels one open file may have. */
#define DRM_RSVM_MAX_CHANNELS_PER_FILE	64

/**
 * struct drm_rsvm_channel_create - argument of DRM_IOCTL_RSVM_CHANNEL_CREATE.
 *
 * Creates a channel (a GPFIFO ring and its engines' objects) in the file's
 * VM. -ENOSPC when the device has no free channel, or the file already has
 * DRM_RSVM_MAX_CHANNELS_PER_FILE.
 *
 * @flags: in, must be zero.
 * @handle: out, the channel's handle in this file (never 0).
 */
struct drm_rsvm_channel_create {
	__u32 flags;
	__u32 handle;
};

/**
 * struct drm_rsvm_channel_destroy - argument of
 * DRM_IOCTL_RSVM_CHANNEL_DESTROY.
 *
 * Stops the channel (work in flight is dropped) and frees it. -ENOENT for
 * an unknown handle.
 *
 * @handle: in.
 * @pad: must be zero.
 */
struct drm_rsvm_channel_destroy {
	__u32 handle;
	__u32 pad;
};

/* Most dwords one job's pushbuffer may have. */
#define DRM_RSVM_EXEC_MAX_DWORDS	4000

/**
 * struct drm_rsvm_exec - argument of DRM_IOCTL_RSVM_EXEC.
 *
 * Queues one job on a channel. The pushbuffer (NVIDIA method stream: INC,
 * NON_INC, ONE_INC and IMMD headers, zero dwords as NOPs) is copied and
 * checked: host methods are limited to NOP, SET_REFERENCE, the semaphore
 * methods (a SEM_EXECUTE needs SEM_ADDR_LO and _HI earlier in the same job;
 * host semaphores have 40-bit addresses, below the kernel's window), WFI and
 * NON_STALL_INTERRUPT; engine methods go to
 * DRM_RSVM_SUBCHANNEL_COMPUTE or _COPY only; the copy engine may not use
 * physical addressing. A job whose previous jobs have not freed ring space
 * waits for them (-EBUSY after 10 s).
 *
 * Errors: -EINVAL for a flag, a pad, an empty or too long pushbuffer or a
 * method the checker refuses; -EFAULT for an unreadable @push; -ENOENT for
 * an unknown channel; -EIO if the channel is in error (see
 * DRM_IOCTL_RSVM_WAIT).
 *
 * @push: in, user pointer to @dwords 32-bit pushbuffer dwords.
 * @channel: in, a channel handle.
 * @dwords: in, 1..DRM_RSVM_EXEC_MAX_DWORDS.
 * @flags: in, must be zero.
 * @pad: must be zero.
 * @seqno: out, the job's sequence number on its channel (1, 2, ...).
 */
struct drm_rsvm_exec {
	__u64 push;
	__u32 channel;
	__u32 dwords;
	__u32 flags;
	__u32 pad;
	__u64 seqno;
};

/* Why a channel stopped (drm_rsvm_wait.error); the device's own codes. */
#define DRM_RSVM_ERROR_NONE		0
#define DRM_RSVM_ERROR_INVALID_METHOD	1
#define DRM_RSVM_ERROR_INVALID_ENCODING	2
#define DRM_RSVM_ERROR_INVALID_CLASS	3
#define DRM_RSVM_ERROR_PHYSICAL_ACCESS	4
#define DRM_RSVM_ERROR_INVALID_PUSHBUFFER 5
#define DRM_RSVM_ERROR_INVALID_INSTANCE	6
#define DRM_RSVM_ERROR_JOB_FAILED	7	/* compute: trap, limit */
#define DRM_RSVM_ERROR_FAULT		8	/* unserviceable GPU fault */
#define DRM_RSVM_ERROR_MISALIGNED	9	/* compute access not aligned */

/* drm_rsvm_wait.result_flags */
#define DRM_RSVM_WAIT_FAULT_ADDRESS_VALID	(1 << 0)

/**
 * struct drm_rsvm_wait - argument of DRM_IOCTL_RSVM_WAIT.
 *
 * Waits until job @seqno of the channel completed. 0: it did. -ETIME: not
 * within @timeout_ns (0 only polls). -EIO: the channel stopped on an error
 * before it completed; @error and @error_info say why (for
 * DRM_RSVM_ERROR_FAULT, @error_info is the faulting page's address >> 12,
 * bits 43:12 only, and @fault_address the whole address of that page, since
 * uAPI version 4). A stopped channel runs no more jobs (EXEC on it fails
 * with -EIO); other channels and processes are unaffected. Every channel an
 * error stops reports its own error, however many stop at once. -EINVAL for
 * a flag, a pad, a negative timeout or a @seqno not yet submitted; -ENOENT
 * for an unknown channel.
 *
 * DRM_RSVM_ERROR_FAULT: a GPU access the kernel could not serve: no SVM
 * range, no CPU mapping, a write to read-only memory, the kernel's own
 * addresses, or an address outside the GPU's virtual address space (at or
 * above 2^DRM_RSVM_PARAM_VA_BITS, whatever its upper bits). Such an access
 * fails its job at once. DRM_RSVM_ERROR_MISALIGNED: a compute load, store
 * or atomic whose address is not a multiple of its size (@fault_address is
 * that address, not page-aligned). DRM_RSVM_ERROR_JOB_FAILED: any other
 * compute exception (illegal instruction, ebreak, the instruction limit).
 *
 *
 * @channel: in, a channel handle.
 * @flags: in, must be zero.
 * @seqno: in, from DRM_IOCTL_RSVM_EXEC.
 * @timeout_ns: in, relative timeout.
 * @error: out, a DRM_RSVM_ERROR_* (DRM_RSVM_ERROR_NONE unless -EIO).
 * @error_info: out, detail of @error.
 * @fault_address: out, for DRM_RSVM_ERROR_FAULT the page-aligned GPU virtual
 *	address that could not be served, for DRM_RSVM_ERROR_MISALIGNED the
 *	address of the access, else 0 (since uAPI version 4; a caller built
 *	against an older header passes the shorter structure and does not get
 *	it).
 * @result_flags: out, DRM_RSVM_WAIT_FAULT_ADDRESS_VALID when @fault_address
 *	holds an address (so a fault at page 0 is told apart from no fault),
 *	else 0 (since uAPI version 5).
 * @pad: must be zero.
 */
struct drm_rsvm_wait {
	__u32 channel;
	__u32 flags;
	__u64 seqno;
	__s64 timeout_ns;
	__u32 error;
	__u32 error_info;
	__u64 fault_address;
	__u32 result_flags;
	__u32 pad;
};

#define DRM_RSVM_GET_PARAM		0x00
#define DRM_RSVM_SVM_BIND		0x01
#define DRM_RSVM_CHANNEL_CREATE		0x02
#define DRM_RSVM_CHANNEL_DESTROY	0x03
#define DRM_RSVM_EXEC			0x04
#define DRM_RSVM_WAIT			0x05

/* Note: an enum so that Rust bindgen resolves the ioctl numbers. */
enum {
	DRM_IOCTL_RSVM_GET_PARAM = DRM_IOWR(DRM_COMMAND_BASE + DRM_RSVM_GET_PARAM,
					    struct drm_rsvm_get_param),
	DRM_IOCTL_RSVM_SVM_BIND = DRM_IOW(DRM_COMMAND_BASE + DRM_RSVM_SVM_BIND,
					  struct drm_rsvm_svm_bind),
	DRM_IOCTL_RSVM_CHANNEL_CREATE =
		DRM_IOWR(DRM_COMMAND_BASE + DRM_RSVM_CHANNEL_CREATE,
			 struct drm_rsvm_channel_create),
	DRM_IOCTL_RSVM_CHANNEL_DESTROY =
		DRM_IOW(DRM_COMMAND_BASE + DRM_RSVM_CHANNEL_DESTROY,
			struct drm_rsvm_channel_destroy),
	DRM_IOCTL_RSVM_EXEC = DRM_IOWR(DRM_COMMAND_BASE + DRM_RSVM_EXEC,
				       struct drm_rsvm_exec),
	DRM_IOCTL_RSVM_WAIT = DRM_IOWR(DRM_COMMAND_BASE + DRM_RSVM_WAIT,
				       struct drm_rsvm_wait),
};

#if defined(__cplusplus)
}
#endif

#endif /* __RSVM_DRM_H__ */
