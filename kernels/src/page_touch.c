// SPDX-License-Identifier: MIT
/*
 * Touches one u64 every `stride` bytes of [base, base + count * stride):
 * thread tid takes touches tid, tid + nthreads, ... A write stores the
 * touch's index; a read adds what it found to *sum (if sum is not NULL).
 * With a stride of a page or more, every touch is the first access to its
 * page: the fault-cost benchmark's probe.
 */
#include "rsvm_kernel.h"

struct args {
	u8 *base;
	u64 count;
	u64 stride;
	u64 write;
	u64 *sum;
};

RSVM_KERNEL(page_touch, struct args *a, u64 tid, u64 n)
{
	u64 sum = 0;

	for (u64 i = tid; i < a->count; i += n) {
		u64 *p = (u64 *)(a->base + i * a->stride);

		if (a->write)
			*p = i;
		else
			sum += *p;
	}
	if (a->sum)
		rsvm_atomic_add(a->sum, sum);
}
