// SPDX-License-Identifier: MIT
/*
 * Shared virtual memory through the real path: a process builds data with
 * malloc, binds the range, and GPU compute jobs walk it directly; every CPU
 * change of the address space reaches the GPU first.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/mempolicy.h>
#include <pthread.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "igt.h"
#include "rsvm.h"

#define PAGE 4096ul
#define SEC 1000000000ll

static int fd = -1;
static uint64_t pt_pages_before;
/* Compute kernel images and a stack area, in their own bound ranges. */
static void *k_list, *k_tree, *k_scale;
static void *stack;
#define STACK_SIZE 4096
#define MAX_THREADS 64

static uint64_t param(uint32_t p)
{
	uint64_t v = 0;

	igt_assert_eq(rsvm_get_param(fd, p, &v), 0);
	return v;
}

static void *load(const char *name)
{
	size_t size;
	void *k = rsvm_load_kernel(name, &size);

	igt_assert_f(k, "kernel image %s missing", name);
	return k;
}

/* Binds the page-rounded span of [p, p + len). */
static void bind(const void *p, size_t len)
{
	uintptr_t s = (uintptr_t)p & ~(PAGE - 1);
	uintptr_t e = ((uintptr_t)p + len + PAGE - 1) & ~(PAGE - 1);

	igt_assert_eq(rsvm_svm_bind(fd, (void *)s, e - s, 0), 0);
}

static void *page_alloc(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	igt_assert(p != MAP_FAILED);
	return p;
}

struct scale_args {
	const uint64_t *in;
	uint64_t *out;
	uint64_t count;
	uint64_t mul;
	uint64_t *sum;
};

/* Runs array_scale with @a over @threads threads; 0 or -errno. */
static int scale(struct scale_args *a, uint32_t threads, uint32_t *err, uint64_t *info)
{
	static struct rsvm_push p;

	p.n = 0;
	rsvm_push_launch(&p, k_scale, a, stack, STACK_SIZE, threads);
	return rsvm_run(fd, &p, err, info);
}

/* Soft-dirty bit of the page at p (bit 55 of /proc/self/pagemap). */
static int soft_dirty(const void *p)
{
	uint64_t e = 0;
	int f = open("/proc/self/pagemap", O_RDONLY);

	igt_assert(f >= 0);
	igt_assert_eq(pread(f, &e, 8, (uintptr_t)p / PAGE * 8), 8);
	close(f);
	return (e >> 55) & 1;
}

static void clear_soft_dirty(void)
{
	int f = open("/proc/self/clear_refs", O_WRONLY);

	igt_assert(f >= 0);
	igt_assert_eq(write(f, "4", 1), 1);
	close(f);
}

/*
 * The malloc heap: 1 GiB from the start of the [heap] mapping (all of it,
 * mapped or not: SVM ranges need not be mapped yet), which holds every
 * small malloc() and the kernel images.
 */
static uintptr_t heap_lo;
#define HEAP_SPAN (1ul << 30)

/* A fresh device file with the heap and the stack bound. */
static void setup(void)
{
	/* A failed subtest may have left its file open. */
	if (fd >= 0)
		close(fd);
	fd = rsvm_open(false);
	igt_assert(fd >= 0);
	igt_assert_eq(rsvm_svm_bind(fd, (void *)heap_lo, HEAP_SPAN, 0), 0);
	bind(stack, STACK_SIZE * MAX_THREADS);
}

/* Closes the file and checks the page tables it held are gone. */
static void teardown(void)
{
	int probe;
	uint64_t pages = 0;

	close(fd);
	fd = -1;
	probe = rsvm_open(false);
	igt_assert(probe >= 0);
	igt_assert_eq(rsvm_get_param(probe, DRM_RSVM_PARAM_PT_PAGES, &pages), 0);
	close(probe);
	igt_assert_eq_u64(pages, pt_pages_before);
}

/*
 * Racing a job: array_scale over the lower half of in/out (one thread), a
 * semaphore acquire on a gate only the CPU opens, then array_scale over the
 * upper half. The CPU changes the upper half while the lower half runs,
 * then opens the gate: every GPU access to the upper half comes after the
 * change, on a channel that was running all along. The GPU mirrored all of
 * in up front (POPULATE), so stale PTEs would be there to use.
 */
#define RACE_N (1ul << 20)
#define RACE_HALF (RACE_N / 2)
#define RACE_BYTES (RACE_N * 8)

struct race {
	uint64_t *in, *out;
	struct scale_args *a; /* [0]: lower half, [1]: upper half */
	uint32_t *gate;
	uint32_t ch;
	uint64_t seq;
};

static uint64_t peek(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

/* in[i] = i + 1; out[i] will be in[i] * mul + i % RACE_HALF. */
static void race_start(struct race *r, uint64_t mul)
{
	struct rsvm_push *p = calloc(1, sizeof(*p));

	r->in = page_alloc(RACE_BYTES);
	r->out = page_alloc(RACE_BYTES);
	r->a = page_alloc(PAGE);
	/* Host semaphores have 40-bit addresses: the gate is on the heap. */
	r->gate = malloc(sizeof(*r->gate));
	*r->gate = 0;
	for (size_t i = 0; i < RACE_N; i++) {
		r->in[i] = i + 1;
		r->out[i] = 0;
	}
	r->a[0] = (struct scale_args){ r->in, r->out, RACE_HALF, mul, NULL };
	r->a[1] = (struct scale_args){ r->in + RACE_HALF, r->out + RACE_HALF, RACE_HALF, mul, NULL };
	igt_assert_eq(rsvm_svm_bind(fd, r->in, RACE_BYTES, DRM_RSVM_SVM_BIND_POPULATE), 0);
	igt_assert_eq(rsvm_svm_bind(fd, r->out, RACE_BYTES, 0), 0);
	igt_assert_eq(rsvm_svm_bind(fd, r->a, PAGE, 0), 0);
	rsvm_push_launch(p, k_scale, &r->a[0], stack, STACK_SIZE, 1);
	rsvm_push_acquire(p, r->gate, 1);
	rsvm_push_launch(p, k_scale, &r->a[1], stack, STACK_SIZE, 1);
	igt_assert_eq(rsvm_channel_create(fd, &r->ch), 0);
	igt_assert_eq(rsvm_exec(fd, r->ch, p->dw, p->n, &r->seq), 0);
	free(p);
	/* Change the upper half while the GPU works on the lower one. */
	while (!peek(&r->out[RACE_HALF / 16]))
		igt_assert_eq(rsvm_wait(fd, r->ch, r->seq, 1000000, NULL, NULL), -ETIME);
}

/* After the CPU's change: opens the gate, waits for the job; 0 or -errno. */
static int race_finish(struct race *r, uint32_t *err, uint64_t *info)
{
	int ret;

	igt_assert_f(!peek(&r->out[RACE_HALF]), "the gate did not hold the job");
	__atomic_store_n(r->gate, 1, __ATOMIC_RELEASE);
	ret = rsvm_wait(fd, r->ch, r->seq, 120 * SEC, err, info);
	igt_assert_eq(rsvm_channel_destroy(fd, r->ch), 0);
	return ret;
}

static void race_end(struct race *r)
{
	munmap(r->in, RACE_BYTES);
	munmap(r->out, RACE_BYTES);
	munmap(r->a, PAGE);
	free(r->gate);
}

/* out[i] == in[i] * mul + i % RACE_HALF for i in [from, to), in[i] = i + 1. */
static void assert_scaled(const uint64_t *out, size_t from, size_t to, uint64_t mul)
{
	for (size_t i = from; i < to; i++)
		igt_assert_f(out[i] == (i + 1) * mul + i % RACE_HALF, "out[%zu] = %llu", i,
			     (unsigned long long)out[i]);
}

static void assert_zero(const uint64_t *out, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++)
		igt_assert_f(!out[i], "out[%zu] = %llu was written", i,
			     (unsigned long long)out[i]);
}

/*
 * The racing job must stop with a fault at @page, having done the lower
 * half (scaled by @mul) and written nothing of the upper half.
 */
static void race_expect_fault(struct race *r, const void *page, uint64_t mul)
{
	uint32_t err = 0;
	uint64_t info = 0;

	igt_assert_eq(race_finish(r, &err, &info), -EIO);
	igt_assert_eq_u32(err, DRM_RSVM_ERROR_FAULT);
	igt_assert_eq_u64(info, (uintptr_t)page);
	assert_scaled(r->out, 0, RACE_HALF, mul);
	assert_zero(r->out, RACE_HALF, RACE_N);
}

/* The NUMA node of each page of [p, p + n pages), into nodes[]. */
static void page_nodes(void *p, size_t n, int *nodes)
{
	void **pages = malloc(n * sizeof(*pages));

	for (size_t i = 0; i < n; i++)
		pages[i] = (char *)p + i * PAGE;
	igt_assert_eq(syscall(SYS_move_pages, 0, n, pages, NULL, nodes, 0), 0);
	free(pages);
}

/*
 * A child with a job in flight, stopped while it runs: by its own exit
 * (file closed with the job running), or by SIGKILL while it waits.
 */
static void child_with_job_in_flight(bool killed)
{
	int status, pfd[2];
	pid_t pid;
	char c;

	igt_assert_eq(pipe(pfd), 0);
	pid = fork();
	igt_assert(pid >= 0);
	if (pid == 0) {
		struct race r;

		setup();
		race_start(&r, 1);
		if (write(pfd[1], "x", 1) != 1)
			_exit(2);
		if (killed)
			rsvm_wait(fd, r.ch, r.seq, 120 * SEC, NULL, NULL);
		_exit(0);
	}
	igt_assert_eq(read(pfd[0], &c, 1), 1);
	if (killed) {
		usleep(10000);
		kill(pid, SIGKILL);
	}
	igt_assert_eq(waitpid(pid, &status, 0), pid);
	if (killed)
		igt_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	else
		igt_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(pfd[0]);
	close(pfd[1]);
}

/* A file of @pages pages at @path holding u64 i + 1 at index i; its fd. */
static int data_file(const char *path, size_t pages)
{
	uint64_t *buf = page_alloc(pages * PAGE);
	int f = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);

	igt_assert(f >= 0);
	for (size_t i = 0; i < pages * PAGE / 8; i++)
		buf[i] = i + 1;
	igt_assert_eq(write(f, buf, pages * PAGE), (ssize_t)(pages * PAGE));
	munmap(buf, pages * PAGE);
	return f;
}

/*
 * Runs out[i] = in[i] * mul + i over @n elements (4 threads) of page-aligned
 * buffers, binding them for the job.
 */
static int scale_between(const uint64_t *in, uint64_t *out, size_t n, uint64_t mul,
			 uint32_t *err, uint64_t *info)
{
	struct scale_args *a = page_alloc(PAGE);
	size_t len = (n * 8 + PAGE - 1) & ~(PAGE - 1);
	int ret;

	*a = (struct scale_args){ in, out, n, mul, NULL };
	igt_assert_eq(rsvm_svm_bind(fd, a, PAGE, 0), 0);
	if (in)
		bind(in, len);
	if (out && out != in)
		bind(out, len);
	ret = scale(a, 4, err, info);
	if (in)
		igt_assert_eq(rsvm_svm_unbind(fd, in, len), 0);
	if (out && out != in)
		igt_assert_eq(rsvm_svm_unbind(fd, out, len), 0);
	igt_assert_eq(rsvm_svm_unbind(fd, a, PAGE), 0);
	munmap(a, PAGE);
	return ret;
}

/* Concurrent channel creation: each thread tries CREATORS_TRIES creates. */
#define CREATORS 4
#define CREATORS_TRIES 32

struct creator {
	pthread_t thread;
	uint32_t handles[CREATORS_TRIES];
	int made, refused, other;
};

static void *creator_main(void *arg)
{
	struct creator *c = arg;

	for (int i = 0; i < CREATORS_TRIES; i++) {
		int ret = rsvm_channel_create(fd, &c->handles[c->made]);

		if (!ret)
			c->made++;
		else if (ret == -ENOSPC)
			c->refused++;
		else
			c->other++;
	}
	return NULL;
}

/* A short job on a fresh file works; the file's page tables go away. */
static void assert_device_works(void)
{
	uint64_t *in = page_alloc(PAGE), *out = page_alloc(PAGE);

	setup();
	in[0] = 6;
	igt_assert_eq(scale_between(in, out, 1, 7, NULL, NULL), 0);
	igt_assert_eq_u64(out[0], 42);
	teardown();
	munmap(in, PAGE);
	munmap(out, PAGE);
}

igt_main
{
	igt_fixture {
		fd = rsvm_open(false);
		igt_require(fd >= 0);
		igt_require(param(DRM_RSVM_PARAM_UAPI_VERSION) >= 3);
		igt_require(param(DRM_RSVM_PARAM_ENGINES) & DRM_RSVM_ENGINE_COMPUTE);
		pt_pages_before = param(DRM_RSVM_PARAM_PT_PAGES);
		close(fd);
		heap_lo = rsvm_heap_start();
		igt_assert_f(heap_lo, "no [heap] mapping");
		k_list = load("list_sum");
		k_tree = load("tree_sum");
		k_scale = load("array_scale");
		stack = page_alloc(STACK_SIZE * MAX_THREADS);
	}

	igt_subtest("malloc-array-read-write") {
		size_t n = 10000;
		uint64_t *in = malloc(n * 8), *out = malloc(n * 8), sum = 0, want = 0;
		struct scale_args *a = malloc(sizeof(*a));

		setup();
		for (size_t i = 0; i < n; i++) {
			in[i] = i * 7 + 1;
			out[i] = 0;
			want += in[i];
		}
		uint64_t *s = malloc(8);

		*s = 0;
		*a = (struct scale_args){ in, out, n, 5, s };
		igt_assert_eq(scale(a, 16, NULL, NULL), 0);
		for (size_t i = 0; i < n; i++)
			igt_assert_eq_u64(out[i], in[i] * 5 + i);
		sum = *s;
		igt_assert_eq_u64(sum, want);
		free(s);
		teardown();
		free(in);
		free(out);
		free(a);
	}

	igt_subtest("linked-list-walk") {
		struct rsvm_node *head = NULL;
		uint64_t want = 0, *res = malloc(16);
		struct rsvm_list_sum_args *a = malloc(sizeof(*a));
		struct rsvm_push p = { .n = 0 };
		int n = 2000;

		setup();
		/* Interleave with other allocations so the nodes scatter. */
		for (int i = 0; i < n; i++) {
			struct rsvm_node *x = malloc(sizeof(*x) + (i % 7) * 24);

			x->value = i * i + 1;
			x->next = head;
			head = x;
			want += x->value;
		}
		res[0] = res[1] = 0;
		a->head = head;
		a->sum = &res[0];
		a->count = &res[1];
		rsvm_push_launch(&p, k_list, a, stack, STACK_SIZE, 1);
		igt_assert_eq(rsvm_run(fd, &p, NULL, NULL), 0);
		igt_assert_eq_u64(res[0], want);
		igt_assert_eq_u64(res[1], n);
		teardown();
	}

	igt_subtest("binary-tree-walk") {
		uint64_t id = 0, want = 0, *sum = malloc(8);
		struct rsvm_tree *root;
		struct rsvm_tree_sum_args *a = malloc(sizeof(*a));
		struct rsvm_push p = { .n = 0 };

		setup();
		root = rsvm_build_tree(10, &id, &want);
		*sum = 0;
		a->root = root;
		a->depth = 3; /* 8 threads, each walks one subtree */
		a->sum = sum;
		rsvm_push_launch(&p, k_tree, a, stack, 2048, 8);
		igt_assert_eq(rsvm_run(fd, &p, NULL, NULL), 0);
		/* Thread 0 sums the top 3 levels; each thread one subtree. */
		igt_assert_eq_u64(*sum, want);
		teardown();
		rsvm_free_tree(root);
	}

	igt_subtest("read-fault-keeps-page-clean") {
		uint64_t *in = page_alloc(4 * PAGE), *out = page_alloc(PAGE);
		struct scale_args *a = page_alloc(PAGE);

		setup();
		in[0] = 41;
		out[0] = 0;
		*a = (struct scale_args){ in, out, 1, 1, NULL };
		clear_soft_dirty();
		igt_assert_eq(soft_dirty(in), 0);
		igt_assert_eq(rsvm_svm_bind(fd, in, 4 * PAGE, 0), 0);
		igt_assert_eq(rsvm_svm_bind(fd, out, PAGE, 0), 0);
		igt_assert_eq(rsvm_svm_bind(fd, a, PAGE, 0), 0);
		igt_assert_eq(scale(a, 1, NULL, NULL), 0);
		igt_assert_eq_u64(out[0], 41);
		igt_assert_f(!soft_dirty(in), "a GPU read dirtied the page");
		igt_assert_f(soft_dirty(out), "a GPU write left the page clean");
		teardown();
		munmap(in, 4 * PAGE);
		munmap(out, PAGE);
		munmap(a, PAGE);
	}

	igt_subtest("write-to-read-only-fails-the-job") {
		uint64_t *in = page_alloc(PAGE), *ro = page_alloc(PAGE);
		struct scale_args *a = page_alloc(PAGE);
		uint32_t err = 0;
		uint64_t info = 0;

		setup();
		in[0] = 3;
		ro[0] = 99;
		igt_assert_eq(mprotect(ro, PAGE, PROT_READ), 0);
		*a = (struct scale_args){ in, ro, 1, 1, NULL };
		igt_assert_eq(rsvm_svm_bind(fd, in, PAGE, 0), 0);
		igt_assert_eq(rsvm_svm_bind(fd, ro, PAGE, 0), 0);
		igt_assert_eq(rsvm_svm_bind(fd, a, PAGE, 0), 0);
		igt_assert_eq(scale(a, 1, &err, &info), -EIO);
		igt_assert_eq_u32(err, DRM_RSVM_ERROR_FAULT);
		igt_assert_eq_u64(info, (uintptr_t)ro);
		igt_assert_eq_u64(ro[0], 99);
		/* A read of the same page works, on a new channel. */
		*a = (struct scale_args){ ro, in, 1, 2, NULL };
		igt_assert_eq(scale(a, 1, NULL, NULL), 0);
		igt_assert_eq_u64(in[0], 198);
		teardown();
		munmap(in, PAGE);
		munmap(ro, PAGE);
		munmap(a, PAGE);
	}

	igt_subtest("unbound-or-unmapped-access-fails-the-job") {
		uint64_t *in = page_alloc(2 * PAGE), *out = page_alloc(PAGE);
		struct scale_args *a = page_alloc(PAGE);
		uint32_t err = 0;
		uint64_t info = 0;

		setup();
		*a = (struct scale_args){ in, out, 1, 1, NULL };
		igt_assert_eq(rsvm_svm_bind(fd, out, PAGE, 0), 0);
		igt_assert_eq(rsvm_svm_bind(fd, a, PAGE, 0), 0);
		/* in is not bound */
		igt_assert_eq(scale(a, 1, &err, &info), -EIO);
		igt_assert_eq_u32(err, DRM_RSVM_ERROR_FAULT);
		igt_assert_eq_u64(info, (uintptr_t)in);
		/* bound, but unmapped */
		igt_assert_eq(rsvm_svm_bind(fd, in, 2 * PAGE, 0), 0);
		igt_assert_eq(munmap(in, 2 * PAGE), 0);
		igt_assert_eq(scale(a, 1, &err, &info), -EIO);
		igt_assert_eq_u32(err, DRM_RSVM_ERROR_FAULT);
		teardown();
		munmap(out, PAGE);
		munmap(a, PAGE);
	}

	igt_subtest("munmap-and-remap-is-seen") {
		uint64_t *in = page_alloc(PAGE), *out = page_alloc(PAGE);
		struct scale_args *a = page_alloc(PAGE);
		void *again;

		setup();
		in[0] = 10;
		*a = (struct scale_args){ in, out, 1, 1, NULL };
		igt_assert_eq(rsvm_svm_bind(fd, in, PAGE, 0), 0);
		igt_assert_eq(rsvm_svm_bind(fd, out, PAGE, 0), 0);
		igt_assert_eq(rsvm_svm_bind(fd, a, PAGE, 0), 0);
		igt_assert_eq(scale(a, 1, NULL, NULL), 0);
		igt_assert_eq_u64(out[0], 10);
		/* New memory at the same address: the GPU must not use the
		 * old page (a stale PTE or TLB entry would read 10).
		 */
		igt_assert_eq(munmap(in, PAGE), 0);
		again = mmap(in, PAGE, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		igt_assert(again == in);
		in[0] = 20;
		igt_assert_eq(scale(a, 1, NULL, NULL), 0);
		igt_assert_eq_u64(out[0], 20);
		/* madvise(DONTNEED) drops the page: it reads back as zero. */
		igt_assert_eq(madvise(in, PAGE, MADV_DONTNEED), 0);
		igt_assert_eq(scale(a, 1, NULL, NULL), 0);
		igt_assert_eq_u64(out[0], 0);
		teardown();
		munmap(in, PAGE);
		munmap(out, PAGE);
		munmap(a, PAGE);
	}

	igt_subtest("fork-cow-keeps-parent-and-child-apart") {
		uint64_t *data = page_alloc(PAGE), *out = page_alloc(PAGE);
		struct scale_args *a = page_alloc(PAGE);
		int status, pfd[2];
		pid_t pid;

		setup();
		data[0] = 1;
		igt_assert_eq(rsvm_svm_bind(fd, data, PAGE, 0), 0);
		igt_assert_eq(rsvm_svm_bind(fd, out, PAGE, 0), 0);
		igt_assert_eq(rsvm_svm_bind(fd, a, PAGE, 0), 0);
		/* The GPU writes data[0] = 1 * 1 + 0 through a writable PTE. */
		*a = (struct scale_args){ NULL, data, 1, 7, NULL };
		igt_assert_eq(scale(a, 1, NULL, NULL), 0);
		igt_assert_eq_u64(data[0], 7);
		igt_assert_eq(pipe(pfd), 0);
		pid = fork();
		igt_assert(pid >= 0);
		if (pid == 0) {
			char c;

			/* Keeps the page shared until the parent is done, then
			 * checks its copy still holds the value at fork.
			 */
			if (read(pfd[0], &c, 1) != 1)
				_exit(2);
			_exit(data[0] == 7 ? 0 : 1);
		}
		/* The parent's CPU write breaks COW: the parent gets a copy.
		 * The fork write-protected the page, which must have removed
		 * the GPU's writable PTE to the shared page.
		 */
		data[0] = 8;
		*a = (struct scale_args){ NULL, data, 1, 9, NULL };
		igt_assert_eq(scale(a, 1, NULL, NULL), 0);
		igt_assert_eq_u64(data[0], 9);
		igt_assert_eq(write(pfd[1], "x", 1), 1);
		igt_assert_eq(waitpid(pid, &status, 0), pid);
		igt_assert_f(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			     "the GPU wrote the child's copy");
		/* The child cannot use the parent's GPU VM. */
		pid = fork();
		if (pid == 0)
			_exit(rsvm_svm_bind(fd, out, PAGE, 0) == -EACCES ? 0 : 1);
		igt_assert_eq(waitpid(pid, &status, 0), pid);
		igt_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		teardown();
		munmap(data, PAGE);
		munmap(out, PAGE);
		munmap(a, PAGE);
	}

	igt_subtest("populate-and-unbind") {
		uint64_t *in = page_alloc(16 * PAGE), *out = page_alloc(PAGE);
		struct scale_args *a = page_alloc(PAGE);
		uint32_t err = 0;

		setup();
		for (int i = 0; i < 16 * 512; i++)
			in[i] = i;
		out[0] = 0;
		igt_assert_eq(rsvm_svm_bind(fd, in, 16 * PAGE, DRM_RSVM_SVM_BIND_POPULATE), 0);
		igt_assert_eq(rsvm_svm_bind(fd, out, PAGE, 0), 0);
		igt_assert_eq(rsvm_svm_bind(fd, a, PAGE, 0), 0);
		*a = (struct scale_args){ in, NULL, 16 * 512, 0, out };
		igt_assert_eq(scale(a, 4, NULL, NULL), 0);
		igt_assert_eq_u64(out[0], (16 * 512 - 1) * 16 * 512 / 2);
		igt_assert_f(param(DRM_RSVM_PARAM_PT_PAGES) > pt_pages_before,
			     "a bound VM has page tables");
		igt_assert_eq(rsvm_svm_unbind(fd, in, 16 * PAGE), 0);
		igt_assert_eq(scale(a, 4, &err, NULL), -EIO);
		igt_assert_eq_u32(err, DRM_RSVM_ERROR_FAULT);
		teardown();
		munmap(in, 16 * PAGE);
		munmap(out, PAGE);
		munmap(a, PAGE);
	}

	igt_subtest("bad-input") {
		uint64_t *buf = page_alloc(4 * PAGE);
		struct drm_rsvm_svm_bind b;
		struct drm_rsvm_channel_create cc = { 0 };
		struct drm_rsvm_channel_destroy cd = { 0 };
		struct drm_rsvm_exec e = { 0 };
		struct drm_rsvm_wait w = { 0 };
		uint32_t ch, nop = 0;
		uint64_t seq;

		setup();
		/* SVM bind */
		igt_assert_eq(rsvm_svm_bind(fd, buf, 4 * PAGE, 1u << 7), -EINVAL);
		igt_assert_eq(rsvm_svm_bind(fd, (char *)buf + 1, PAGE, 0), -EINVAL);
		igt_assert_eq(rsvm_svm_bind(fd, buf, PAGE + 1, 0), -EINVAL);
		igt_assert_eq(rsvm_svm_bind(fd, buf, 0, 0), -EINVAL);
		igt_assert_eq(rsvm_svm_bind(fd, (void *)(1ul << 47), PAGE, 0), -EINVAL);
		igt_assert_eq(rsvm_svm_bind(fd, (void *)(~0ul << 12), 1ul << 20, 0), -EINVAL);
		igt_assert_eq(rsvm_svm_bind(fd, (void *)param(DRM_RSVM_PARAM_KERNEL_VA_START),
					    PAGE, 0), -EINVAL);
		igt_assert_eq(rsvm_svm_bind(fd, buf, 2 * PAGE, 0), 0);
		igt_assert_eq(rsvm_svm_bind(fd, buf + 512, 2 * PAGE, 0), -EEXIST);
		igt_assert_eq(rsvm_svm_bind(fd, buf, 2 * PAGE, 0), -EEXIST);
		igt_assert_eq(rsvm_svm_unbind(fd, buf, PAGE), -ENOENT);
		igt_assert_eq(rsvm_svm_unbind(fd, buf + 1024, PAGE), -ENOENT);
		b = (struct drm_rsvm_svm_bind){ .start = (uintptr_t)buf, .length = 2 * PAGE, .op = 2 };
		igt_assert_errno(ioctl(fd, DRM_IOCTL_RSVM_SVM_BIND, &b), EINVAL);
		b.op = DRM_RSVM_SVM_OP_UNBIND;
		b.flags = DRM_RSVM_SVM_BIND_POPULATE;
		igt_assert_errno(ioctl(fd, DRM_IOCTL_RSVM_SVM_BIND, &b), EINVAL);
		igt_assert_eq(rsvm_svm_unbind(fd, buf, 2 * PAGE), 0);
		igt_assert_eq(rsvm_svm_unbind(fd, buf, 2 * PAGE), -ENOENT);
		igt_assert_errno(ioctl(fd, DRM_IOCTL_RSVM_SVM_BIND, (void *)8), EFAULT);

		/* Channels */
		cc.flags = 1;
		igt_assert_errno(ioctl(fd, DRM_IOCTL_RSVM_CHANNEL_CREATE, &cc), EINVAL);
		cd.handle = 77;
		igt_assert_errno(ioctl(fd, DRM_IOCTL_RSVM_CHANNEL_DESTROY, &cd), ENOENT);
		cd.handle = 0;
		igt_assert_errno(ioctl(fd, DRM_IOCTL_RSVM_CHANNEL_DESTROY, &cd), ENOENT);
		igt_assert_eq(rsvm_channel_create(fd, &ch), 0);
		cd.handle = ch;
		cd.pad = 1;
		igt_assert_errno(ioctl(fd, DRM_IOCTL_RSVM_CHANNEL_DESTROY, &cd), EINVAL);

		/* Exec */
		e = (struct drm_rsvm_exec){ .push = (uintptr_t)&nop, .channel = ch, .dwords = 1 };
		e.flags = 1;
		igt_assert_errno(ioctl(fd, DRM_IOCTL_RSVM_EXEC, &e), EINVAL);
		e.flags = 0;
		e.pad = 1;
		igt_assert_errno(ioctl(fd, DRM_IOCTL_RSVM_EXEC, &e), EINVAL);
		e.pad = 0;
		e.dwords = 0;
		igt_assert_errno(ioctl(fd, DRM_IOCTL_RSVM_EXEC, &e), EINVAL);
		e.dwords = DRM_RSVM_EXEC_MAX_DWORDS + 1;
		igt_assert_errno(ioctl(fd, DRM_IOCTL_RSVM_EXEC, &e), EINVAL);
		e.dwords = 1;
		e.push = 8;
		igt_assert_errno(ioctl(fd, DRM_IOCTL_RSVM_EXEC, &e), EFAULT);
		e.push = (uintptr_t)&nop;
		e.channel = ch + 100;
		igt_assert_errno(ioctl(fd, DRM_IOCTL_RSVM_EXEC, &e), ENOENT);
		{
			/* Methods only the kernel may send. */
			const uint32_t bad[][3] = {
				/* SET_OBJECT on the compute subchannel */
				{ (1u << 29) | (1 << 16) | (1 << 13) | (0x000 >> 2), 0x52c0, 0 },
				/* MEM_OP_D (TLB invalidate, fault cancel) */
				{ (1u << 29) | (1 << 16) | (0x034 >> 2), 0x9, 0 },
				/* CLEAR_FAULTED */
				{ (1u << 29) | (1 << 16) | (0x084 >> 2), 0, 0 },
				/* a physical copy-engine launch */
				{ (1u << 29) | (1 << 16) | (4 << 13) | (0x300 >> 2), 2 | (1 << 12), 0 },
				/* an engine method on an unbound subchannel */
				{ (1u << 29) | (1 << 16) | (2 << 13) | (0x300 >> 2), 0, 0 },
				/* SEM_EXECUTE without an address in the job */
				{ (1u << 29) | (1 << 16) | (0x06c >> 2), 1, 0 },
				/* a count past the end */
				{ (1u << 29) | (5 << 16) | (0x008 >> 2), 0, 0 },
				/* END_SEGMENT and unknown header kinds */
				{ 7u << 29, 0, 0 },
				{ 2u << 29, 0, 0 },
			};

			for (unsigned int i = 0; i < ARRAY_SIZE(bad); i++)
				igt_assert_eq(rsvm_exec(fd, ch, bad[i], 3, &seq), -EINVAL);
		}
		{
			/* A semaphore release into the kernel's window. */
			struct rsvm_push p = { .n = 0 };

			rsvm_push_release(&p, (void *)param(DRM_RSVM_PARAM_KERNEL_VA_START), 1);
			igt_assert_eq(rsvm_exec(fd, ch, p.dw, p.n, &seq), -EINVAL);
			/* ... and one past the 40 bits host semaphores have. */
			p.n = 0;
			rsvm_push_release(&p, buf, 1);
			igt_assert_eq(rsvm_exec(fd, ch, p.dw, p.n, &seq), -EINVAL);
		}

		/* Wait */
		igt_assert_eq(rsvm_exec(fd, ch, &nop, 1, &seq), 0);
		igt_assert_eq_u64(seq, 1);
		w = (struct drm_rsvm_wait){ .channel = ch, .seqno = seq, .timeout_ns = SEC };
		w.flags = 1;
		igt_assert_errno(ioctl(fd, DRM_IOCTL_RSVM_WAIT, &w), EINVAL);
		w.flags = 0;
		w.timeout_ns = -1;
		igt_assert_errno(ioctl(fd, DRM_IOCTL_RSVM_WAIT, &w), EINVAL);
		w.timeout_ns = SEC;
		w.seqno = seq + 1;
		igt_assert_errno(ioctl(fd, DRM_IOCTL_RSVM_WAIT, &w), EINVAL);
		w.seqno = 0;
		igt_assert_errno(ioctl(fd, DRM_IOCTL_RSVM_WAIT, &w), EINVAL);
		w.seqno = seq;
		w.channel = 999;
		igt_assert_errno(ioctl(fd, DRM_IOCTL_RSVM_WAIT, &w), ENOENT);
		igt_assert_eq(rsvm_wait(fd, ch, seq, SEC, NULL, NULL), 0);
		/* Everything still works after all that. */
		igt_assert_eq(rsvm_channel_destroy(fd, ch), 0);
		igt_assert_eq(rsvm_channel_destroy(fd, ch), -ENOENT);
		teardown();
		munmap(buf, 4 * PAGE);
	}

	igt_subtest("channel-error-spares-other-channels") {
		/* Host semaphores have 40-bit addresses: one in the heap. */
		uint64_t *in = page_alloc(PAGE), *out = page_alloc(PAGE), *sem = malloc(8);
		struct scale_args *a = page_alloc(PAGE);
		struct rsvm_push bad = { .n = 0 }, good = { .n = 0 };
		uint32_t c1, c2, err = 0;
		uint64_t s1, s2;

		setup();
		igt_assert_eq(rsvm_svm_bind(fd, in, PAGE, 0), 0);
		igt_assert_eq(rsvm_svm_bind(fd, out, PAGE, 0), 0);
		igt_assert_eq(rsvm_svm_bind(fd, a, PAGE, 0), 0);
		in[0] = 5;
		*a = (struct scale_args){ in, out, 1, 3, NULL };
		/* A compute method the engine refuses: 0x2fc. */
		rsvm_push_method(&bad, DRM_RSVM_SUBCHANNEL_COMPUTE, 0x2fc, 1);
		rsvm_push_launch(&good, k_scale, a, stack, STACK_SIZE, 1);
		rsvm_push_release(&good, sem, 0x1234);
		igt_assert_eq(rsvm_channel_create(fd, &c1), 0);
		igt_assert_eq(rsvm_channel_create(fd, &c2), 0);
		igt_assert_eq(rsvm_exec(fd, c1, bad.dw, bad.n, &s1), 0);
		igt_assert_eq(rsvm_wait(fd, c1, s1, 10 * SEC, &err, NULL), -EIO);
		igt_assert_eq_u32(err, DRM_RSVM_ERROR_INVALID_ENCODING);
		igt_assert_eq(rsvm_exec(fd, c1, good.dw, good.n, &s1), -EIO);
		igt_assert_eq(rsvm_exec(fd, c2, good.dw, good.n, &s2), 0);
		igt_assert_eq(rsvm_wait(fd, c2, s2, 10 * SEC, NULL, NULL), 0);
		igt_assert_eq_u64(out[0], 15);
		igt_assert_eq_u64(sem[0], 0x1234);
		teardown();
		munmap(in, PAGE);
		munmap(out, PAGE);
		free(sem);
		munmap(a, PAGE);
	}

	igt_subtest("cpu-and-gpu-atomics-lose-no-increment") {
		struct { uint64_t *counter; uint64_t iterations; } *a = malloc(sizeof(*a));
		uint64_t *counter = malloc(8);
		void *k_inc = load("atomic_inc");
		struct rsvm_push p = { .n = 0 };
		uint32_t ch;
		uint64_t seq, cpu = 0;
		const uint64_t threads = 32, iters = 2000;

		setup();
		*counter = 0;
		*a = (typeof(*a)){ counter, iters };
		rsvm_push_launch(&p, k_inc, a, stack, 256, threads);
		igt_assert_eq(rsvm_channel_create(fd, &ch), 0);
		igt_assert_eq(rsvm_exec(fd, ch, p.dw, p.n, &seq), 0);
		/* The CPU increments the same counter while the job runs. */
		while (rsvm_wait(fd, ch, seq, 0, NULL, NULL) == -ETIME || cpu < 100000) {
			__atomic_fetch_add(counter, 1, __ATOMIC_SEQ_CST);
			cpu++;
		}
		igt_assert_eq(rsvm_wait(fd, ch, seq, 10 * SEC, NULL, NULL), 0);
		igt_assert_eq_u64(*counter, threads * iters + cpu);
		rsvm_channel_destroy(fd, ch);
		teardown();
		free(k_inc);
	}

	igt_subtest("copy-engine-copies-between-malloc-buffers") {
		size_t n = 3 * PAGE + 100;
		char *src = malloc(n), *dst = malloc(n);
		struct rsvm_push p = { .n = 0 };

		setup();
		igt_require(param(DRM_RSVM_PARAM_ENGINES) & DRM_RSVM_ENGINE_COPY);
		for (size_t i = 0; i < n; i++) {
			src[i] = (char)(i * 13 + 5);
			dst[i] = 0;
		}
		/* Neither buffer is mirrored yet: the copy engine's
		 * non-replayable faults are served and the launch restarted.
		 */
		rsvm_push_copy(&p, dst, src, n);
		igt_assert_eq(rsvm_run(fd, &p, NULL, NULL), 0);
		igt_assert(!memcmp(src, dst, n));
		teardown();
		free(src);
		free(dst);
	}

	igt_subtest("munmap-while-a-job-runs") {
		struct race r;

		setup();
		race_start(&r, 3);
		igt_assert_eq(munmap(r.in + RACE_HALF, RACE_BYTES / 2), 0);
		/* The job stopped exactly at the first unmapped page. */
		race_expect_fault(&r, r.in + RACE_HALF, 3);
		teardown();
		munmap(r.in, RACE_BYTES / 2);
		munmap(r.out, RACE_BYTES);
		munmap(r.a, PAGE);
		free(r.gate);
	}

	igt_subtest("mprotect-while-a-job-runs") {
		struct race r;

		setup();
		race_start(&r, 5);
		igt_assert_eq(mprotect(r.out + RACE_HALF, RACE_BYTES / 2, PROT_READ), 0);
		/* The first GPU write to a now read-only page failed the job;
		 * nothing past it was written.
		 */
		race_expect_fault(&r, r.out + RACE_HALF, 5);
		teardown();
		race_end(&r);
	}

	igt_subtest("madvise-dontneed-while-a-job-runs") {
		struct race r;

		setup();
		race_start(&r, 3);
		igt_assert_eq(madvise(r.in + RACE_HALF, RACE_BYTES / 2, MADV_DONTNEED), 0);
		igt_assert_eq(race_finish(&r, NULL, NULL), 0);
		/* The dropped pages read as zero: out[i] = 0 * 3 + i % RACE_HALF. */
		assert_scaled(r.out, 0, RACE_HALF, 3);
		for (size_t i = RACE_HALF; i < RACE_N; i++)
			igt_assert_eq_u64(r.out[i], i - RACE_HALF);
		teardown();
		race_end(&r);
	}

	igt_subtest("move-pages-while-a-job-runs") {
		size_t n = RACE_BYTES / 2 / PAGE, moved = RACE_HALF;
		void **pages = malloc(n * sizeof(*pages));
		int *nodes = malloc(n * sizeof(*nodes)), *status = malloc(n * sizeof(*status));
		struct race r;

		igt_require_f(count_lines("/proc/zoneinfo", "Node 1, zone") > 0,
			      "needs a second NUMA node\n");
		setup();
		race_start(&r, 3);
		/* Migrate the upper half to node 1, then change it: a GPU
		 * still using the old pages would read the old values.
		 */
		for (size_t i = 0; i < n; i++) {
			pages[i] = (char *)(r.in + RACE_HALF) + i * PAGE;
			nodes[i] = 1;
		}
		igt_assert_eq(syscall(SYS_move_pages, 0, n, pages, nodes, status, MPOL_MF_MOVE), 0);
		for (size_t i = RACE_HALF; i < RACE_HALF + moved; i++)
			r.in[i] = 2 * (i + 1);
		igt_assert_eq(race_finish(&r, NULL, NULL), 0);
		assert_scaled(r.out, 0, RACE_HALF, 3);
		assert_scaled(r.out, RACE_HALF, RACE_N, 6);
		page_nodes(r.in + RACE_HALF, n, status);
		for (size_t i = 0; i < n; i++)
			igt_assert_eq(status[i], 1);
		teardown();
		race_end(&r);
		free(pages);
		free(nodes);
		free(status);
	}

	igt_subtest("process-exit-with-a-job-in-flight") {
		/* A failed subtest may have left its file open. */
		if (fd >= 0)
			close(fd);
		fd = -1;
		igt_assert_eq(rsvm_kmemleak("clear"), 0);
		child_with_job_in_flight(false);
		child_with_job_in_flight(true);
		/* Nothing is left: the module unloads at once, and loads and
		 * runs again.
		 */
		igt_assert_eq(run("rmmod rsvm"), 0);
		igt_assert_eq(run("modprobe rsvm"), 0);
		assert_device_works();
		igt_assert_eq(rsvm_kmemleak_leaks(), 0);
	}

	igt_subtest("unbind-with-a-job-in-flight") {
		char addr[64];
		struct race r;
		uint64_t v;

		igt_assert(rsvm_pci_address(addr, sizeof(addr)));
		igt_assert_eq(rsvm_kmemleak("clear"), 0);
		setup();
		race_start(&r, 1);
		/* The file stays open with a job running; the device goes. */
		igt_assert_eq(run("echo %s > /sys/bus/pci/drivers/rsvm/unbind", addr), 0);
		igt_assert_eq(rsvm_wait(fd, r.ch, r.seq, SEC, NULL, NULL), -ENODEV);
		igt_assert_eq(rsvm_get_param(fd, DRM_RSVM_PARAM_VA_BITS, &v), -ENODEV);
		/* The CPU side keeps working: the mirror is gone with the
		 * device, and the process still owns its memory.
		 */
		r.in[0] = 77;
		igt_assert_eq(munmap(r.in + RACE_HALF, RACE_BYTES / 2), 0);
		close(fd);
		igt_assert_eq(run("echo %s > /sys/bus/pci/drivers/rsvm/bind", addr), 0);
		assert_device_works();
		munmap(r.in, RACE_BYTES / 2);
		munmap(r.out, RACE_BYTES);
		munmap(r.a, PAGE);
		free(r.gate);
		igt_assert_eq(rsvm_kmemleak_leaks(), 0);
	}

	igt_subtest("file-backed-shared-mappings") {
		/* tmpfs (shmem) and the initramfs root (ramfs). */
		static const char *const paths[] = { "/tmp/rsvm-shared", "/rsvm-shared" };
		const size_t pages = 16, n = pages * PAGE / 8;

		setup();
		for (size_t k = 0; k < ARRAY_SIZE(paths); k++) {
			int f = data_file(paths[k], 2 * pages);
			uint64_t *m = mmap(NULL, 2 * pages * PAGE, PROT_READ | PROT_WRITE,
					   MAP_SHARED, f, 0);
			uint64_t *ro = mmap(NULL, pages * PAGE, PROT_READ, MAP_SHARED, f, 0);
			uint64_t v = 0;
			uint32_t err = 0;
			uint64_t info = 0;

			igt_assert(m != MAP_FAILED && ro != MAP_FAILED);
			/* The GPU reads the file's first half and writes its
			 * second half through the mapping: the file has it.
			 */
			igt_assert_eq(scale_between(m, m + n, n, 3, NULL, NULL), 0);
			for (size_t i = 0; i < n; i += 97) {
				igt_assert_eq(pread(f, &v, 8, (n + i) * 8), 8);
				igt_assert_eq_u64(v, (i + 1) * 3 + i);
			}
			/* A read-only shared mapping: reads work, a write fails. */
			igt_assert_eq(scale_between(ro, m + n, n, 5, NULL, NULL), 0);
			igt_assert_eq_u64(m[n + 7], 8 * 5 + 7);
			igt_assert_eq(scale_between(m, ro, n, 1, &err, &info), -EIO);
			igt_assert_eq_u32(err, DRM_RSVM_ERROR_FAULT);
			igt_assert_eq_u64(info, (uintptr_t)ro);
			igt_assert_eq(pread(f, &v, 8, 0), 8);
			igt_assert_eq_u64(v, 1);
			munmap(m, 2 * pages * PAGE);
			munmap(ro, pages * PAGE);
			close(f);
			unlink(paths[k]);
		}
		teardown();
	}

	igt_subtest("file-backed-private-mapping") {
		const size_t pages = 16, n = pages * PAGE / 8;
		int f = data_file("/tmp/rsvm-private", pages);
		uint64_t *m = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, f, 0);
		uint64_t v = 0;

		igt_assert(m != MAP_FAILED);
		setup();
		/* GPU reads see the file; GPU writes (in place) go to the
		 * process's private copies, never to the file.
		 */
		igt_assert_eq(scale_between(m, m, n, 2, NULL, NULL), 0);
		for (size_t i = 0; i < n; i++)
			igt_assert_eq_u64(m[i], (i + 1) * 2 + i);
		for (size_t i = 0; i < n; i += 97) {
			igt_assert_eq(pread(f, &v, 8, i * 8), 8);
			igt_assert_eq_u64(v, i + 1);
		}
		teardown();
		munmap(m, pages * PAGE);
		close(f);
		unlink("/tmp/rsvm-private");
	}

	igt_subtest("shared-anonymous-mapping-seen-by-a-child") {
		const size_t pages = 16, n = pages * PAGE / 8;
		uint64_t *in = page_alloc(pages * PAGE);
		uint64_t *sh = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE,
				    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		int status, pfd[2];
		pid_t pid;

		igt_assert(sh != MAP_FAILED);
		for (size_t i = 0; i < n; i++) {
			in[i] = i + 1;
			sh[i] = 0;
		}
		igt_assert_eq(pipe(pfd), 0);
		/* The child shares the pages before the GPU writes them. */
		pid = fork();
		igt_assert(pid >= 0);
		if (pid == 0) {
			char c;
			size_t bad = 0;

			if (read(pfd[0], &c, 1) != 1)
				_exit(2);
			for (size_t i = 0; i < n; i++)
				bad += sh[i] != (i + 1) * 4 + i;
			_exit(bad ? 1 : 0);
		}
		setup();
		igt_assert_eq(scale_between(in, sh, n, 4, NULL, NULL), 0);
		igt_assert_eq(write(pfd[1], "x", 1), 1);
		igt_assert_eq(waitpid(pid, &status, 0), pid);
		igt_assert_f(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			     "the child does not see the GPU's writes");
		teardown();
		munmap(in, pages * PAGE);
		munmap(sh, pages * PAGE);
		close(pfd[0]);
		close(pfd[1]);
	}

	igt_subtest("channel-limit-holds-under-concurrent-creates") {
		struct creator c[CREATORS] = { 0 };
		int made = 0, refused = 0;
		uint32_t ch;

		setup();
		for (int i = 0; i < CREATORS; i++)
			igt_assert_eq(pthread_create(&c[i].thread, NULL, creator_main, &c[i]), 0);
		for (int i = 0; i < CREATORS; i++) {
			igt_assert_eq(pthread_join(c[i].thread, NULL), 0);
			igt_assert_eq(c[i].other, 0);
			made += c[i].made;
			refused += c[i].refused;
		}
		/* Exactly the limit, however the creates interleaved. */
		igt_assert_eq(made, DRM_RSVM_MAX_CHANNELS_PER_FILE);
		igt_assert_eq(refused, CREATORS * CREATORS_TRIES - DRM_RSVM_MAX_CHANNELS_PER_FILE);
		igt_assert_eq(rsvm_channel_destroy(fd, c[0].handles[0]), 0);
		igt_assert_eq(rsvm_channel_create(fd, &ch), 0);
		igt_assert_eq(rsvm_channel_create(fd, &ch), -ENOSPC);
		teardown();
	}
}
