// SPDX-License-Identifier: MIT
/* Every thread adds 1 to *counter `iterations` times, atomically. */
#include "rsvm_kernel.h"

struct args {
	u64 *counter;
	u64 iterations;
};

RSVM_KERNEL(atomic_inc, struct args *a, u64 tid, u64 n)
{
	(void)tid;
	(void)n;
	for (u64 i = 0; i < a->iterations; i++)
		rsvm_atomic_add(a->counter, 1);
}
