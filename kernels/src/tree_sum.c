// SPDX-License-Identifier: MIT
/*
 * Sums a binary tree with a grid of 2^depth threads. Thread i follows the
 * bits of i from the root down `depth` levels and sums the subtree it lands
 * on; thread 0 also sums the nodes above that level. Partial sums go to
 * *sum atomically. Walks use an explicit stack (thread stacks are small).
 */
#include "rsvm_kernel.h"

struct tree {
	struct tree *left, *right;
	u64 value;
};

struct args {
	struct tree *root;
	u64 depth;
	u64 *sum;
};

#define STACK 48

/* Sums the nodes of t that are less than `levels` below it. */
static u64 tree_sum_levels(struct tree *t, u64 levels)
{
	struct tree *node[STACK];
	u64 depth[STACK], sp = 0, sum = 0;

	if (t && levels) {
		node[sp] = t;
		depth[sp++] = 0;
	}
	while (sp) {
		struct tree *x = node[--sp];
		u64 d = depth[sp];

		sum += x->value;
		if (d + 1 >= levels)
			continue;
		if (sp + 2 > STACK)
			rsvm_trap();
		if (x->left) {
			node[sp] = x->left;
			depth[sp++] = d + 1;
		}
		if (x->right) {
			node[sp] = x->right;
			depth[sp++] = d + 1;
		}
	}
	return sum;
}

RSVM_KERNEL(tree_sum, struct args *a, u64 tid, u64 n)
{
	struct tree *t = a->root;

	(void)n;
	for (u64 level = 0; level < a->depth && t; level++)
		t = (tid >> (a->depth - 1 - level)) & 1 ? t->right : t->left;
	rsvm_atomic_add(a->sum, tree_sum_levels(t, ~0ul));
	if (tid == 0)
		rsvm_atomic_add(a->sum, tree_sum_levels(a->root, a->depth));
}
