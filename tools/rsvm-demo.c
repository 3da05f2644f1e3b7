// SPDX-License-Identifier: MIT
/*
 * rsvm-demo: the mission in one program. The CPU builds a linked list and a
 * binary tree with plain malloc; the GPU walks both in place (no copies, no
 * special allocator) after one SVM bind of the heap, and the CPU reads the
 * GPU's results from its own memory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "rsvm.h"

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int run_job(int fd, struct rsvm_push *p, const char *what)
{
	uint32_t err = 0;
	uint64_t info = 0;
	double t0 = now_ms();
	int ret = rsvm_run(fd, p, &err, &info);

	if (ret)
		printf("rsvm-demo: %s failed: %s (error %u, info %#llx)\n", what,
		       strerror(-ret), err, (unsigned long long)info);
	else
		printf("rsvm-demo: %s: GPU job done in %.1f ms (guest wall time)\n", what,
		       now_ms() - t0);
	return ret;
}

int main(void)
{
	const size_t stack_size = 4096, threads = 8;
	uint64_t want = 0, id = 0, tree_want = 0, *res;
	struct rsvm_node *head = NULL;
	struct rsvm_tree *root;
	struct rsvm_push *p = calloc(1, sizeof(*p));
	void *k_list = rsvm_load_kernel("list_sum", NULL);
	void *k_tree = rsvm_load_kernel("tree_sum", NULL);
	void *stack = mmap(NULL, stack_size * threads, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct rsvm_list_sum_args *la = malloc(sizeof(*la));
	struct rsvm_tree_sum_args *ta = malloc(sizeof(*ta));
	uintptr_t heap = rsvm_heap_start();
	int fd = rsvm_open(false), bad = 0;

	if (fd < 0 || !p || !k_list || !k_tree || stack == MAP_FAILED || !heap) {
		printf("rsvm-demo: no rsvm device or kernel images\n");
		return 1;
	}
	for (int i = 0; i < 5000; i++) {
		struct rsvm_node *n = malloc(sizeof(*n) + (i % 5) * 16);

		n->value = i;
		n->next = head;
		head = n;
		want += i;
	}
	root = rsvm_build_tree(12, &id, &tree_want);
	res = calloc(3, sizeof(*res));
	printf("rsvm-demo: CPU built a %d-node list and a %lu-node tree with malloc\n", 5000,
	       (unsigned long)id);

	/* One bind: the whole heap (1 GiB, mapped or not) and the stack. */
	if (rsvm_svm_bind(fd, (void *)heap, 1ul << 30, 0) ||
	    rsvm_svm_bind(fd, stack, stack_size * threads, 0)) {
		printf("rsvm-demo: SVM bind failed\n");
		return 1;
	}

	*la = (typeof(*la)){ head, &res[0], &res[1] };
	rsvm_push_launch(p, k_list, la, stack, stack_size, 1);
	bad |= run_job(fd, p, "list walk");
	printf("rsvm-demo: list: GPU sum %lu, count %lu; CPU sum %lu: %s\n",
	       (unsigned long)res[0], (unsigned long)res[1], (unsigned long)want,
	       res[0] == want && res[1] == 5000 ? "match" : "MISMATCH");
	bad |= res[0] != want || res[1] != 5000;

	*ta = (typeof(*ta)){ root, 3, &res[2] };
	p->n = 0;
	rsvm_push_launch(p, k_tree, ta, stack, stack_size, threads);
	bad |= run_job(fd, p, "tree walk");
	printf("rsvm-demo: tree: GPU sum %lu (%zu threads); CPU sum %lu: %s\n",
	       (unsigned long)res[2], threads, (unsigned long)tree_want,
	       res[2] == tree_want ? "match" : "MISMATCH");
	bad |= res[2] != tree_want;
	close(fd);
	printf("rsvm-demo: %s\n", bad ? "FAILED" : "OK");
	return bad;
}
