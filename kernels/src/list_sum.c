// SPDX-License-Identifier: MIT
/* Thread 0 walks a singly linked list and stores the sum of its values. */
#include "rsvm_kernel.h"

struct node {
	struct node *next;
	u64 value;
};

struct args {
	const struct node *head;
	u64 *sum;
	u64 *count;
};

RSVM_KERNEL(list_sum, struct args *a, u64 tid, u64 n)
{
	u64 sum = 0, count = 0;

	(void)n;
	if (tid != 0)
		return;
	for (const struct node *p = a->head; p; p = p->next) {
		sum += p->value;
		count++;
	}
	*a->sum = sum;
	*a->count = count;
}
