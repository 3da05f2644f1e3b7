// SPDX-License-Identifier: MIT
/*
 * out[i] = in[i] * mul + i for every i < count; thread tid takes the
 * elements tid, tid + nthreads, ... With in == NULL only out is written
 * (out[i] = mul + i), with out == NULL only in is read (and the sum of the
 * elements it read stored in *sum, if sum is not NULL).
 */
#include "rsvm_kernel.h"

struct args {
	const u64 *in;
	u64 *out;
	u64 count;
	u64 mul;
	u64 *sum;
};

RSVM_KERNEL(array_scale, struct args *a, u64 tid, u64 n)
{
	u64 sum = 0;

	for (u64 i = tid; i < a->count; i += n) {
		u64 v = a->in ? a->in[i] : 1;

		sum += v;
		if (a->out)
			a->out[i] = v * a->mul + i;
	}
	if (a->sum)
		rsvm_atomic_add(a->sum, sum);
}
