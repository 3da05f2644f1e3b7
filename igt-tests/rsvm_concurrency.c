// SPDX-License-Identifier: MIT
/*
 * The fault path and channel lifecycle under concurrency, and isolation
 * between processes: many processes with many jobs and channel churn, a
 * killed process among them, channels created and destroyed by racing
 * threads of one file, a fault parked in one process's userfaultfd handler
 * while another process runs, two channels stopped by errors at once,
 * accesses outside the GPU's address space, POPULATE over holes, and the
 * error reports of a fault at page 0 and of a misaligned access.
 *
 * Each subtest is a regression test for a defect an acceptance run found;
 * the racy ones loop until the old code failed them reliably.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "igt.h"
#include "rsvm.h"

#define PAGE 4096ul
#define SEC 1000000000ll

static int fd = -1;
static uint64_t pt_pages_before;
static void *k_scale, *k_touch;
static uintptr_t heap_lo;
#define HEAP_SPAN (1ul << 30)

struct scale_args {
	const uint64_t *in;
	uint64_t *out;
	uint64_t count;
	uint64_t mul;
	uint64_t *sum;
};

struct touch_args {
	uint8_t *base;
	uint64_t count;
	uint64_t stride;
	uint64_t write;
	uint64_t *sum;
};

/*
 * The test's own process. Its children (workers, victims, the parked
 * process) exit with a message instead of failing an assertion, which
 * would run the rest of the test in the child.
 */
static pid_t main_pid;

static void must(bool ok, const char *what)
{
	if (ok)
		return;
	if (getpid() != main_pid) {
		fprintf(stderr, "pid %d: %s failed\n", getpid(), what);
		_exit(99);
	}
	igt_assert_f(ok, "%s failed\n", what);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static void *page_alloc(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	must(p != MAP_FAILED, "mmap");
	return p;
}

static void *load(const char *name)
{
	size_t size;
	void *k = rsvm_load_kernel(name, &size);

	igt_assert_f(k, "kernel image %s missing\n", name);
	return k;
}

/* A stack for @threads threads, bound in @f. */
#define STACK_SIZE 4096
static void *bound_stacks(int f, uint32_t threads)
{
	void *s = page_alloc(STACK_SIZE * threads);

	must(!rsvm_svm_bind(f, s, STACK_SIZE * threads, 0), "binding the stacks");
	return s;
}

/* A fresh file with the heap bound (the kernel images live there). */
static int open_bound(void)
{
	int f = rsvm_open(false);

	must(f >= 0, "opening the device");
	must(!rsvm_svm_bind(f, (void *)heap_lo, HEAP_SPAN, 0), "binding the heap");
	return f;
}

/* The subtest's own file; one a failed subtest left open goes first. */
static int fresh_file(void)
{
	if (fd >= 0)
		close(fd);
	return open_bound();
}

static uint64_t pt_pages(void)
{
	uint64_t v = 0;
	int probe = rsvm_open(false);

	igt_assert(probe >= 0);
	igt_assert_eq(rsvm_get_param(probe, DRM_RSVM_PARAM_PT_PAGES, &v), 0);
	close(probe);
	return v;
}

/* Every page table a subtest's files held is gone once they are closed. */
static void assert_no_page_tables_left(void)
{
	igt_assert_eq_u64(pt_pages(), pt_pages_before);
}

/* Queues array_scale(@a) on @threads threads of channel @ch; the seqno. */
static uint64_t queue_scale(int f, uint32_t ch, struct scale_args *a, void *stacks,
			    uint32_t threads)
{
	struct rsvm_push p = { .n = 0 };
	uint64_t seq = 0;

	rsvm_push_launch(&p, k_scale, a, stacks, STACK_SIZE, threads);
	must(!rsvm_exec(f, ch, p.dw, p.n, &seq), "EXEC");
	return seq;
}

/* Runs page_touch over @a on a fresh channel of @f; 0 or -errno. */
static int run_touch(int f, struct touch_args *a, void *stacks, uint32_t *err, uint64_t *info)
{
	struct rsvm_push p = { .n = 0 };

	rsvm_push_launch(&p, k_touch, a, stacks, STACK_SIZE, 1);
	return rsvm_run(f, &p, err, info);
}

/*
 * One worker process of the stress test: its own file, buffers and
 * channels; JOBS jobs, a fresh channel every CHURN jobs, each job checked.
 * Exits 0, or 1 + the failing step.
 */
#define WORKERS 8
#define JOBS 20
#define CHURN 3
#define ELEMS 1024

static void stress_worker(int id)
{
	int f = open_bound();
	uint64_t *in = malloc(ELEMS * 8), *out = malloc(ELEMS * 8);
	struct scale_args *a = malloc(sizeof(*a));
	void *stacks = bound_stacks(f, 4);
	uint32_t ch = 0;

	for (int j = 0; j < JOBS; j++) {
		uint64_t mul = id * 1000 + j + 1, seq;
		int ret;

		if (j % CHURN == 0) {
			if (ch && rsvm_channel_destroy(f, ch))
				_exit(2);
			if (rsvm_channel_create(f, &ch))
				_exit(3);
		}
		for (size_t i = 0; i < ELEMS; i++) {
			in[i] = i ^ id;
			out[i] = 0;
		}
		*a = (struct scale_args){ in, out, ELEMS, mul, NULL };
		seq = queue_scale(f, ch, a, stacks, 4);
		ret = rsvm_wait(f, ch, seq, 30 * SEC, NULL, NULL);
		if (ret) {
			size_t done = 0;

			for (size_t i = 0; i < ELEMS; i++)
				done += out[i] == (i ^ id) * mul + i;
			fprintf(stderr, "worker %d job %d (channel %u, seqno %llu): wait %d, %zu of %d elements written\n",
				id, j, ch, (unsigned long long)seq, ret, done, ELEMS);
			/* The device's view, in the model's log. */
			rsvm_bar0_write(RSVM_DEBUG_DUMP, 1);
			_exit(4);
		}
		for (size_t i = 0; i < ELEMS; i++) {
			if (out[i] != (i ^ id) * mul + i) {
				fprintf(stderr, "worker %d job %d: out[%zu] = %llu\n", id, j, i,
					(unsigned long long)out[i]);
				_exit(5);
			}
		}
	}
	/* Closed while the process lives: the VM goes before the mm. */
	close(f);
	_exit(0);
}

/* A process that is killed while its job runs (a gate only the CPU opens). */
static pid_t victim(void)
{
	int pfd[2];
	pid_t pid;
	char c;

	igt_assert_eq(pipe(pfd), 0);
	pid = fork();
	igt_assert(pid >= 0);
	if (pid == 0) {
		int f = open_bound();
		uint32_t *gate = malloc(4), ch;
		uint64_t *out = malloc(ELEMS * 8), seq;
		struct scale_args *a = malloc(sizeof(*a));
		void *stacks = bound_stacks(f, 1);
		struct rsvm_push p = { .n = 0 };

		*gate = 0;
		*a = (struct scale_args){ NULL, out, ELEMS, 1, NULL };
		rsvm_push_launch(&p, k_scale, a, stacks, STACK_SIZE, 1);
		rsvm_push_acquire(&p, gate, 1);
		if (rsvm_channel_create(f, &ch) || rsvm_exec(f, ch, p.dw, p.n, &seq))
			_exit(2);
		if (write(pfd[1], "x", 1) != 1)
			_exit(3);
		rsvm_wait(f, ch, seq, 60 * SEC, NULL, NULL);
		_exit(4);
	}
	igt_assert_eq(read(pfd[0], &c, 1), 1);
	close(pfd[0]);
	close(pfd[1]);
	return pid;
}

/* Channel churn on threads sharing one file. */
#define CHURNERS 6
#define CHURN_JOBS 30

struct churner {
	pthread_t thread;
	int id;
	int failures;
	/*
	 * From the main thread's heap, which is bound (a thread's malloc arena
	 * is not).
	 */
	uint64_t *in, *out;
	struct scale_args *a;
	void *stacks;
};

static void *churner_main(void *arg)
{
	struct churner *c = arg;
	uint64_t *in = c->in, *out = c->out;
	struct scale_args *a = c->a;
	void *stacks = c->stacks;

	for (int j = 0; j < CHURN_JOBS; j++) {
		struct rsvm_push p = { .n = 0 };
		uint32_t err = 0;
		uint64_t info = 0;
		int ret;

		for (int i = 0; i < 64; i++) {
			in[i] = i + c->id;
			out[i] = 0;
		}
		*a = (struct scale_args){ in, out, 64, j + 2, NULL };
		rsvm_push_launch(&p, k_scale, a, stacks, STACK_SIZE, 1);
		/* A fresh channel per job: ids are recycled all the time. */
		ret = rsvm_run(fd, &p, &err, &info);
		if (ret || out[63] != (uint64_t)(63 + c->id) * (j + 2) + 63) {
			c->failures++;
			fprintf(stderr, "churner %d job %d: %d (error %u, info %#llx)\n", c->id,
				j, ret, err, (unsigned long long)info);
		}
	}
	return NULL;
}

/*
 * Process A, whose GPU fault can be parked in its userfaultfd handler on
 * command: 'p' starts a job touching a fresh userfaultfd page and answers
 * 'h' once the fault waits in the handler; 'x' resolves it and answers 'd'
 * once the job finished with the page's value; 'q' exits.
 */
struct parker {
	pid_t pid;
	int cmd, ans;
};

static int uffd_open(void)
{
	struct uffdio_api api = { .api = UFFD_API };
	int u = syscall(SYS_userfaultfd, O_CLOEXEC);

	if (u < 0)
		return -errno;
	must(!ioctl(u, UFFDIO_API, &api), "UFFDIO_API");
	return u;
}

static void parker_main(int cmd, int ans)
{
	int f = open_bound(), u = uffd_open();
	uint8_t *src = page_alloc(PAGE);
	struct touch_args *a = malloc(sizeof(*a));
	uint64_t *sum = malloc(8);
	void *stacks = bound_stacks(f, 1);
	uint32_t ch;
	char c;

	must(u >= 0, "userfaultfd");
	must(!rsvm_channel_create(f, &ch), "creating A's channel");
	for (uint64_t round = 1; read(cmd, &c, 1) == 1 && c == 'p'; round++) {
		uint8_t *area = page_alloc(PAGE);
		struct uffdio_register reg = {
			.range = { (uintptr_t)area, PAGE },
			.mode = UFFDIO_REGISTER_MODE_MISSING,
		};
		struct rsvm_push p = { .n = 0 };
		struct uffdio_copy copy;
		struct uffd_msg msg;
		uint64_t seq, info = 0;
		uint32_t err = 0;
		int ret;

		must(!ioctl(u, UFFDIO_REGISTER, &reg), "UFFDIO_REGISTER");
		must(!rsvm_svm_bind(f, area, PAGE, 0), "binding the userfaultfd page");
		*sum = 0;
		*a = (struct touch_args){ area, 1, PAGE, 0, sum };
		rsvm_push_launch(&p, k_touch, a, stacks, STACK_SIZE, 1);
		ret = rsvm_exec(f, ch, p.dw, p.n, &seq);
		if (ret)
			fprintf(stderr, "A's EXEC: %d\n", ret);
		must(!ret, "A's EXEC");
		/* The GPU's fault reaches the handler through hmm_range_fault. */
		must(read(u, &msg, sizeof(msg)) == sizeof(msg) &&
			     msg.event == UFFD_EVENT_PAGEFAULT,
		     "the userfaultfd message");
		must(write(ans, "h", 1) == 1 && read(cmd, &c, 1) == 1 && c == 'x',
		     "holding the fault");
		memset(src, 0, PAGE);
		*(uint64_t *)src = 4242 + round;
		copy = (struct uffdio_copy){ (uintptr_t)area, (uintptr_t)src, PAGE, 0, 0 };
		must(!ioctl(u, UFFDIO_COPY, &copy), "UFFDIO_COPY");
		ret = rsvm_wait(f, ch, seq, 30 * SEC, &err, &info);
		if (ret || *sum != 4242 + round)
			fprintf(stderr, "A's job %llu at %p: %d (error %u, info %#llx), sum %llu\n",
				(unsigned long long)round, (void *)area, ret, err,
				(unsigned long long)info, (unsigned long long)*sum);
		must(!ret && *sum == 4242 + round, "A's job after the fault was resolved");
		must(!rsvm_svm_unbind(f, area, PAGE), "unbinding the userfaultfd page");
		munmap(area, PAGE);
		must(write(ans, "d", 1) == 1, "answering");
	}
	_exit(c == 'q' ? 0 : 5);
}

static struct parker parker_start(void)
{
	int c[2], a[2];
	struct parker p;

	igt_assert_eq(pipe(c), 0);
	igt_assert_eq(pipe(a), 0);
	p.pid = fork();
	igt_assert(p.pid >= 0);
	if (p.pid == 0) {
		close(c[1]);
		close(a[0]);
		parker_main(c[0], a[1]);
	}
	close(c[0]);
	close(a[1]);
	p.cmd = c[1];
	p.ans = a[0];
	return p;
}

/* Sends @cmd to A and checks its answer @expect. */
static void parker_say(struct parker *p, char cmd, char expect)
{
	char c = 0;

	igt_assert_eq(write(p->cmd, &cmd, 1), 1);
	igt_assert_f(read(p->ans, &c, 1) == 1 && c == expect,
		     "A answered %#x to '%c', not '%c'\n", c, cmd, expect);
}

static void parker_stop(struct parker *p)
{
	int status;

	igt_assert_eq(write(p->cmd, "q", 1), 1);
	igt_assert_eq(waitpid(p->pid, &status, 0), p->pid);
	igt_assert_f(WIFEXITED(status) && !WEXITSTATUS(status), "A: status %#x\n", status);
	close(p->cmd);
	close(p->ans);
}

/* Wall time of one one-page job (one GPU fault) in @f, in ns. */
static uint64_t one_page_job(int f, void *stacks)
{
	uint64_t *page = page_alloc(PAGE), *sum = malloc(8), t, info = 0;
	struct touch_args *a = malloc(sizeof(*a));
	uint32_t err = 0;
	int ret;

	page[0] = 17;
	*sum = 0;
	*a = (struct touch_args){ (uint8_t *)page, 1, PAGE, 0, sum };
	igt_assert_eq(rsvm_svm_bind(f, page, PAGE, 0), 0);
	t = now_ns();
	ret = run_touch(f, a, stacks, &err, &info);
	t = now_ns() - t;
	igt_assert_f(!ret, "B's job: %d (error %u, info %#llx; page %p)\n", ret, err,
		     (unsigned long long)info, (void *)page);
	igt_assert_eq_u64(*sum, 17);
	igt_assert_eq(rsvm_svm_unbind(f, page, PAGE), 0);
	munmap(page, PAGE);
	free(sum);
	free(a);
	return t;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The median of @n samples (sorts them). */
static uint64_t median(uint64_t *t, int n)
{
	qsort(t, n, sizeof(t[0]), cmp_u64);
	return t[n / 2];
}

/* The median wall time of @n one-fault jobs. */
static uint64_t median_job(int f, void *stacks, int n)
{
	uint64_t t[n];

	for (int i = 0; i < n; i++)
		t[i] = one_page_job(f, stacks);
	return median(t, n);
}

/* A job of one page_touch read at @va on a fresh channel; 0 or -errno. */
static int touch_at(uint64_t va, uint32_t *err, uint64_t *info)
{
	struct touch_args *a = malloc(sizeof(*a));
	void *stacks = malloc(STACK_SIZE);
	int ret;

	*a = (struct touch_args){ (uint8_t *)(uintptr_t)va, 1, PAGE, 0, NULL };
	ret = run_touch(fd, a, stacks, err, info);
	free(a);
	free(stacks);
	return ret;
}

/* A scale job on a fresh channel still works and gives the right result. */
static void assert_file_works(void)
{
	uint64_t *in = malloc(16 * 8), *out = malloc(16 * 8);
	struct scale_args *a = malloc(sizeof(*a));
	void *stacks = malloc(STACK_SIZE);
	struct rsvm_push p = { .n = 0 };

	for (int i = 0; i < 16; i++)
		in[i] = i;
	*a = (struct scale_args){ in, out, 16, 3, NULL };
	rsvm_push_launch(&p, k_scale, a, stacks, STACK_SIZE, 1);
	igt_assert_eq(rsvm_run(fd, &p, NULL, NULL), 0);
	for (int i = 0; i < 16; i++)
		igt_assert_eq_u64(out[i], i * 3 + i);
	free(in);
	free(out);
	free(a);
	free(stacks);
}

igt_main
{
	igt_fixture {
		uint64_t v = 0;

		main_pid = getpid();
		fd = rsvm_open(false);
		igt_require(fd >= 0);
		igt_assert_eq(rsvm_get_param(fd, DRM_RSVM_PARAM_UAPI_VERSION, &v), 0);
		igt_require(v >= 5);
		igt_assert_eq(rsvm_get_param(fd, DRM_RSVM_PARAM_ENGINES, &v), 0);
		igt_require(v & DRM_RSVM_ENGINE_COMPUTE);
		close(fd);
		fd = -1;
		pt_pages_before = pt_pages();
		heap_lo = rsvm_heap_start();
		igt_assert_f(heap_lo, "no [heap] mapping\n");
		k_scale = load("array_scale");
		k_touch = load("page_touch");
	}

	/*
	 * Defect 1: with several processes on the device, 1-2 of 80 jobs never
	 * completed. Every round forks WORKERS processes with JOBS jobs each,
	 * churning channels, and a victim killed mid-job; ten rounds in a row
	 * must all pass.
	 */
	igt_subtest("many-processes-many-jobs-channel-churn") {
		for (int round = 0; round < 10; round++) {
			pid_t pids[WORKERS], v = victim();
			int failed = 0;

			for (int w = 0; w < WORKERS; w++) {
				pids[w] = fork();
				igt_assert(pids[w] >= 0);
				if (pids[w] == 0)
					stress_worker(w);
				if (w == WORKERS / 2)
					kill(v, SIGKILL);
			}
			for (int w = 0; w < WORKERS; w++) {
				int status;

				igt_assert_eq(waitpid(pids[w], &status, 0), pids[w]);
				if (!WIFEXITED(status) || WEXITSTATUS(status)) {
					igt_info("round %d: worker %d status %#x\n", round, w, status);
					failed++;
				}
			}
			igt_assert_eq(waitpid(v, NULL, 0), v);
			igt_assert_f(!failed, "round %d: %d of %d workers failed\n", round, failed,
				     WORKERS);
		}
		assert_no_page_tables_left();
	}

	/*
	 * Defect 2: a channel id was reused before the kernel window of its
	 * previous channel was unmapped, so fresh channels faulted in the
	 * kernel's window or failed at once.
	 */
	igt_subtest("channel-churn-on-threads-of-one-file") {
		struct churner c[CHURNERS] = { 0 };
		int failures = 0;

		fd = fresh_file();
		for (int i = 0; i < CHURNERS; i++) {
			c[i].id = i;
			c[i].in = malloc(64 * 8);
			c[i].out = malloc(64 * 8);
			c[i].a = malloc(sizeof(*c[i].a));
			c[i].stacks = malloc(STACK_SIZE);
			igt_assert_eq(pthread_create(&c[i].thread, NULL, churner_main, &c[i]), 0);
		}
		for (int i = 0; i < CHURNERS; i++) {
			igt_assert_eq(pthread_join(c[i].thread, NULL), 0);
			failures += c[i].failures;
			free(c[i].in);
			free(c[i].out);
			free(c[i].a);
			free(c[i].stacks);
		}
		igt_assert_f(!failures, "%d of %d jobs failed\n", failures, CHURNERS * CHURN_JOBS);
		close(fd);
		fd = -1;
		assert_no_page_tables_left();
	}

	/*
	 * Defect 3: a fault waiting in one process's userfaultfd handler held
	 * up every other process's faults. B's one-fault job must complete
	 * while A's fault is parked, and take about as long as when the device
	 * is idle.
	 */
	igt_subtest("parked-fault-does-not-stall-other-processes") {
		enum { ROUNDS = 15, PER_SAMPLE = 3 };
		uint64_t idle[ROUNDS], parked[ROUNDS], ratio[ROUNDS], r;
		struct parker a;
		void *stacks;

		fd = fresh_file();
		stacks = bound_stacks(fd, 1);
		a = parker_start();
		/*
		 * The machine's speed drifts by more than the 10 % asked for
		 * between runs, and within one: idle and parked samples are
		 * taken in turn, and each round compares its own pair.
		 */
		for (int i = 0; i < ROUNDS; i++) {
			idle[i] = median_job(fd, stacks, PER_SAMPLE);
			parker_say(&a, 'p', 'h');
			parked[i] = median_job(fd, stacks, PER_SAMPLE);
			parker_say(&a, 'x', 'd');
			ratio[i] = parked[i] * 1000 / idle[i];
		}
		parker_stop(&a);
		close(fd);
		fd = -1;
		r = median(ratio, ROUNDS);
		igt_info("one-fault job: %.2f ms idle, %.2f ms while another process's fault is parked (medians of %d rounds); parked/idle per round: median %.3f, %.3f to %.3f\n",
			 median(idle, ROUNDS) / 1e6, median(parked, ROUNDS) / 1e6, ROUNDS, r / 1e3,
			 ratio[0] / 1e3, ratio[ROUNDS - 1] / 1e3);
		/*
		 * Before, B waited as long as A's fault was parked (here its jobs
		 * would time out: A is released only after them). Now B pays
		 * only for A's access faulting again after each of B's replays
		 * (REPLAY_START re-issues every stalled access): one more drain.
		 */
		igt_assert_f(r <= 1100, "B's job took %.3fx its idle time\n", r / 1e3);
		assert_no_page_tables_left();
	}

	/*
	 * Each of B's replays re-issues A's parked access, which faults again:
	 * A's queue fills with copies of a fault that its first service makes
	 * stale. One served after A's job finished and A unbound the page
	 * found no range and put A's channel in error (A's next EXEC: -EIO).
	 * A cancel that hits no stalled access must fail nothing.
	 */
	igt_subtest("stale-faults-of-a-finished-job-fail-nothing") {
		struct parker a;
		void *stacks;

		fd = fresh_file();
		stacks = bound_stacks(fd, 1);
		a = parker_start();
		for (int i = 0; i < 30; i++) {
			parker_say(&a, 'p', 'h');
			one_page_job(fd, stacks);
			one_page_job(fd, stacks);
			/* A's job ends, A unbinds its page, then runs the next. */
			parker_say(&a, 'x', 'd');
		}
		parker_stop(&a);
		close(fd);
		fd = -1;
		assert_no_page_tables_left();
	}

	/*
	 * The bound on a fault served again and again (defect 5's fix) counted
	 * every fault of a page in consecutive batches, even when the CPU had
	 * unmapped the page in between: one process's 33rd one-page job at a
	 * reused address failed with FAULT. Only a fault that returns with its
	 * range unchanged since it was served is a repeat.
	 */
	igt_subtest("a-page-faulted-again-after-each-invalidation-is-served") {
		enum { ROUNDS = 40 };
		uint64_t *page = page_alloc(PAGE), *sum = malloc(8), info = 0;
		struct touch_args *a = malloc(sizeof(*a));
		void *stacks;
		uint32_t err = 0;

		fd = fresh_file();
		stacks = bound_stacks(fd, 1);
		for (int bound_again = 0; bound_again < 2; bound_again++) {
			if (!bound_again)
				igt_assert_eq(rsvm_svm_bind(fd, page, PAGE, 0), 0);
			for (int i = 0; i < ROUNDS; i++) {
				/* A fresh page at the same address each job. */
				igt_assert(mmap(page, PAGE, PROT_READ | PROT_WRITE,
						MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1,
						0) == page);
				page[0] = 1000 + i;
				if (bound_again)
					igt_assert_eq(rsvm_svm_bind(fd, page, PAGE, 0), 0);
				*sum = 0;
				*a = (struct touch_args){ (uint8_t *)page, 1, PAGE, 0, sum };
				igt_assert_f(!run_touch(fd, a, stacks, &err, &info),
					     "job %d (%s): error %u at %#llx\n", i,
					     bound_again ? "bound again" : "one range", err,
					     (unsigned long long)info);
				igt_assert_eq_u64(*sum, 1000 + i);
				if (bound_again)
					igt_assert_eq(rsvm_svm_unbind(fd, page, PAGE), 0);
			}
			if (!bound_again)
				igt_assert_eq(rsvm_svm_unbind(fd, page, PAGE), 0);
		}
		close(fd);
		fd = -1;
		munmap(page, PAGE);
		free(sum);
		free(a);
		assert_no_page_tables_left();
	}

	/*
	 * Defect 4: of two channels stopped by errors at the same time, the
	 * second never reported its error and EXEC kept accepting jobs on it.
	 */
	igt_subtest("every-stopped-channel-reports-its-error") {
		for (int round = 0; round < 5; round++) {
			int f2 = open_bound(), fds[4];
			uint8_t *hole = page_alloc(PAGE);
			uint32_t ch[4];
			uint64_t seq[4];
			struct touch_args *a = malloc(sizeof(*a));
			void *stacks = malloc(STACK_SIZE);
			struct rsvm_push p = { .n = 0 };

			fd = fresh_file();
			/* Mapped but not bound: every channel faults there. */
			*a = (struct touch_args){ hole, 1, PAGE, 0, NULL };
			rsvm_push_launch(&p, k_touch, a, stacks, STACK_SIZE, 1);
			for (int i = 0; i < 4; i++) {
				fds[i] = i < 2 ? fd : f2;
				igt_assert_eq(rsvm_channel_create(fds[i], &ch[i]), 0);
			}
			for (int i = 0; i < 4; i++)
				igt_assert_eq(rsvm_exec(fds[i], ch[i], p.dw, p.n, &seq[i]), 0);
			for (int i = 0; i < 4; i++) {
				uint32_t err = 0;
				uint64_t info = 0, s;

				igt_assert_eq(rsvm_wait(fds[i], ch[i], seq[i], 20 * SEC, &err, &info),
					      -EIO);
				igt_assert_eq_u32(err, DRM_RSVM_ERROR_FAULT);
				igt_assert_eq_u64(info, (uintptr_t)hole);
				/* A stopped channel takes no more work. */
				igt_assert_eq(rsvm_exec(fds[i], ch[i], p.dw, p.n, &s), -EIO);
			}
			close(f2);
			close(fd);
			fd = -1;
			munmap(hole, PAGE);
			free(a);
			free(stacks);
		}
		assert_no_page_tables_left();
	}

	/*
	 * Defect 5: an access at a VA >= 2^60 livelocked the fault thread
	 * (its cancel could never match). Accesses outside the GPU's VA
	 * space fail the job at once, at any address; the file still works.
	 */
	igt_subtest("access-outside-the-va-space-fails-the-job") {
		static const uint64_t vas[] = {
			1ull << 49, 1ull << 59, 1ull << 60, 0xfff0000000000000ull,
			0xfffffffffffff000ull,
		};

		fd = fresh_file();
		for (size_t i = 0; i < ARRAY_SIZE(vas); i++) {
			uint32_t err = 0;
			uint64_t info = 0, t = now_ns();

			igt_assert_eq(touch_at(vas[i], &err, &info), -EIO);
			igt_assert_eq_u32(err, DRM_RSVM_ERROR_FAULT);
			igt_assert_eq_u64(info, vas[i]);
			igt_info("%#llx: failed in %.1f ms\n", (unsigned long long)vas[i],
				 (now_ns() - t) / 1e6);
			assert_file_works();
		}
		close(fd);
		fd = -1;
		assert_no_page_tables_left();
	}

	/*
	 * Defect 6: POPULATE walked every 2 MiB of the range whether the CPU
	 * mapped it or not, and could not be killed. Holes cost nothing now,
	 * and a POPULATE over a huge mapping dies with its process.
	 */
	igt_subtest("populate-skips-holes-and-is-killable") {
		uint64_t *data = page_alloc(16 * PAGE), t;
		int status;
		pid_t pid;

		fd = fresh_file();
		for (int i = 0; i < 16; i++)
			data[i * PAGE / 8] = i;
		/* Everything from 2^40 to the SVM limit: one small mapping. */
		t = now_ns();
		igt_assert_eq(rsvm_svm_bind(fd, (void *)(1ull << 40), (1ull << 47) - (1ull << 40),
					    DRM_RSVM_SVM_BIND_POPULATE),
			      0);
		igt_info("POPULATE of [2^40, 2^47): %.1f ms\n", (now_ns() - t) / 1e6);
		igt_assert_eq(rsvm_svm_unbind(fd, (void *)(1ull << 40),
					      (1ull << 47) - (1ull << 40)),
			      0);
		/* The heap's span holds the 16 pages below: they are mirrored. */
		t = now_ns();
		igt_assert_eq(rsvm_svm_bind(fd, data, 16 * PAGE, DRM_RSVM_SVM_BIND_POPULATE), 0);
		igt_assert(pt_pages() > pt_pages_before);
		igt_info("POPULATE of 16 pages: %.2f ms\n", (now_ns() - t) / 1e6);
		close(fd);
		fd = -1;

		pid = fork();
		igt_assert(pid >= 0);
		if (pid == 0) {
			/* 64 GiB mapped, nothing populated. */
			size_t len = 64ul << 30;
			void *big = mmap(NULL, len, PROT_READ | PROT_WRITE,
					 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
			int f = rsvm_open(false);

			if (big == MAP_FAILED || f < 0)
				_exit(2);
			rsvm_svm_bind(f, big, len, DRM_RSVM_SVM_BIND_POPULATE);
			_exit(3);
		}
		usleep(300000);
		t = now_ns();
		kill(pid, SIGKILL);
		igt_assert_eq(waitpid(pid, &status, 0), pid);
		igt_info("killed POPULATE: gone after %.1f ms\n", (now_ns() - t) / 1e6);
		/* Exited on its own (3) if it finished first: also fine. */
		igt_assert(WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) == 3));
		igt_assert_lt(now_ns() - t, 5 * SEC);
		munmap(data, 16 * PAGE);
		assert_no_page_tables_left();
	}

	/*
	 * Defect 7: a fault at page 0 reported fault_address 0, as "no
	 * fault" does; a misaligned access was a generic JOB_FAILED.
	 */
	igt_subtest("fault-at-page-zero-and-misaligned-access-are-reported") {
		struct drm_rsvm_wait w;
		struct touch_args *a = malloc(sizeof(*a));
		uint64_t *buf = malloc(2 * 8);
		void *stacks = malloc(STACK_SIZE);
		struct rsvm_push p = { .n = 0 };
		uint32_t ch, err = 0;
		uint64_t seq, info = 0;

		fd = fresh_file();
		*a = (struct touch_args){ NULL, 1, PAGE, 0, NULL };
		rsvm_push_launch(&p, k_touch, a, stacks, STACK_SIZE, 1);
		igt_assert_eq(rsvm_channel_create(fd, &ch), 0);
		igt_assert_eq(rsvm_exec(fd, ch, p.dw, p.n, &seq), 0);
		w = (struct drm_rsvm_wait){ .channel = ch, .seqno = seq, .timeout_ns = 20 * SEC };
		igt_assert_eq(ioctl(fd, DRM_IOCTL_RSVM_WAIT, &w), -1);
		igt_assert_eq(errno, EIO);
		igt_assert_eq_u32(w.error, DRM_RSVM_ERROR_FAULT);
		igt_assert(w.result_flags & DRM_RSVM_WAIT_FAULT_ADDRESS_VALID);
		igt_assert_eq_u64(w.fault_address, 0);
		igt_assert_eq(rsvm_channel_destroy(fd, ch), 0);

		/* A completed job: no error, no fault address. */
		*a = (struct touch_args){ (uint8_t *)buf, 1, PAGE, 0, NULL };
		p.n = 0;
		rsvm_push_launch(&p, k_touch, a, stacks, STACK_SIZE, 1);
		igt_assert_eq(rsvm_channel_create(fd, &ch), 0);
		igt_assert_eq(rsvm_exec(fd, ch, p.dw, p.n, &seq), 0);
		w = (struct drm_rsvm_wait){ .channel = ch, .seqno = seq, .timeout_ns = 20 * SEC };
		igt_assert_eq(ioctl(fd, DRM_IOCTL_RSVM_WAIT, &w), 0);
		igt_assert_eq_u32(w.error, DRM_RSVM_ERROR_NONE);
		igt_assert_eq_u32(w.result_flags, 0);
		igt_assert_eq(rsvm_channel_destroy(fd, ch), 0);

		/* A u64 load one byte past an aligned address. */
		*a = (struct touch_args){ (uint8_t *)buf + 1, 1, PAGE, 0, NULL };
		igt_assert_eq(run_touch(fd, a, stacks, &err, &info), -EIO);
		igt_assert_eq_u32(err, DRM_RSVM_ERROR_MISALIGNED);
		igt_assert_eq_u64(info, (uintptr_t)buf + 1);
		close(fd);
		fd = -1;
		free(a);
		free(buf);
		free(stacks);
		assert_no_page_tables_left();
	}
}
