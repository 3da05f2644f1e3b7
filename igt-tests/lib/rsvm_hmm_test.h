/* SPDX-License-Identifier: MIT */
/*
 * ioctls of /dev/rsvm_hmm_test (drivers/gpu/drm/rsvm/rsvm_hmm_test.rs), the
 * test device for the kernel crate's HMM bindings. Not a stable ABI.
 */
#ifndef RSVM_HMM_TEST_H
#define RSVM_HMM_TEST_H

#include <linux/ioctl.h>
#include <linux/types.h>

/* Mirror [addr, addr + len) of the caller's address space (once per fd). */
struct rsvm_hmm_test_range {
	__u64 addr;
	__u64 len;
};

#define RSVM_HMM_TEST_FAULT_WRITE (1u << 0)

/* hmm_range_fault() over [addr, addr + len), inside the mirror. */
struct rsvm_hmm_test_fault {
	__u64 addr;
	__u64 len;
	__u32 flags;    /* RSVM_HMM_TEST_FAULT_WRITE: a write request */
	__u32 valid;    /* out: pages the CPU maps */
	__u32 writable; /* out: pages the CPU maps writable */
	__u32 pad;
};

enum rsvm_hmm_test_event_code {
	RSVM_HMM_EVENT_UNMAP = 1,
	RSVM_HMM_EVENT_CLEAR = 2,
	RSVM_HMM_EVENT_PROTECTION_VMA = 3,
	RSVM_HMM_EVENT_PROTECTION_PAGE = 4,
	RSVM_HMM_EVENT_SOFT_DIRTY = 5,
	RSVM_HMM_EVENT_RELEASE = 6,
	RSVM_HMM_EVENT_MIGRATE = 7,
	RSVM_HMM_EVENT_EXCLUSIVE = 8,
};

struct rsvm_hmm_test_event {
	__u32 event; /* enum rsvm_hmm_test_event_code */
	__u32 pad;
	__u64 start;
	__u64 end;
};

/* Takes the invalidations recorded so far; the log is emptied. */
struct rsvm_hmm_test_events {
	__u64 ptr;   /* struct rsvm_hmm_test_event[count] */
	__u32 count; /* in: room, out: returned */
	__u32 pad;
};

#define RSVM_HMM_TEST_MIRROR _IOW('H', 0x00, struct rsvm_hmm_test_range)
#define RSVM_HMM_TEST_FAULT _IOWR('H', 0x01, struct rsvm_hmm_test_fault)
/* Whether the last fault's result is stale (an invalidation ran since). */
#define RSVM_HMM_TEST_RETRY _IOR('H', 0x02, __u32)
#define RSVM_HMM_TEST_EVENTS _IOWR('H', 0x03, struct rsvm_hmm_test_events)

#endif
