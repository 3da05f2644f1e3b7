// SPDX-License-Identifier: MIT
/*
 * TEST: rsvm_hmm_bindings
 * Category: Core
 * Description: The kernel crate's Rust HMM bindings (mmu_interval_notifier,
 *   hmm_range_fault), driven from user space through the rsvm_hmm_test
 *   device: the invalidations that real munmap, mprotect, madvise, fork and
 *   soft-dirty tracking cause reach the notifier with the right event and
 *   range, a read started before them must retry, and a read request leaves
 *   a page clean while a write request dirties it.
 *
 * SUBTEST: read-fault-leaves-page-clean
 * Description: clear_refs (SOFT_DIRTY event), then a read request keeps the
 *   pages clean and read-only; a write request makes them writable and dirty.
 * SUBTEST: munmap-unmap-event
 * Description: munmap of one page gives UNMAP for exactly that page; the
 *   earlier read must retry; the page then faults with EFAULT.
 * SUBTEST: mprotect-protection-vma-event
 * Description: mprotect(PROT_READ) gives PROTECTION_VMA; pages come back
 *   read-only and a write request gets EPERM.
 * SUBTEST: madvise-dontneed-clear-event
 * Description: MADV_DONTNEED gives CLEAR; the pages come back as zeroes.
 * SUBTEST: fork-cow-protection-page-event
 * Description: fork() write-protects the parent's pages for COW
 *   (PROTECTION_PAGE); parent and child each keep their own data.
 * SUBTEST: bad-input
 * Description: every ioctl rejects bad arguments with a clear errno.
 */
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "igt.h"
#include "rsvm.h"
#include "rsvm_hmm_test.h"

#define PAGE 4096ul
#define NPAGES 4

static int open_dev(void)
{
	int fd = open("/dev/rsvm_hmm_test", O_RDWR);

	igt_assert_f(fd >= 0, "open /dev/rsvm_hmm_test: %s\n", strerror(errno));
	return fd;
}

/* NPAGES pages, written (so present and writable), mirrored by fd. */
static char *mirrored(int fd)
{
	struct rsvm_hmm_test_range r;
	char *p = mmap(NULL, NPAGES * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	igt_assert(p != MAP_FAILED);
	memset(p, 0xaa, NPAGES * PAGE);
	r.addr = (uintptr_t)p;
	r.len = NPAGES * PAGE;
	igt_assert_eq(ioctl(fd, RSVM_HMM_TEST_MIRROR, &r), 0);
	return p;
}

static struct rsvm_hmm_test_fault fault(int fd, char *p, unsigned long pages,
					unsigned int flags)
{
	struct rsvm_hmm_test_fault f = {
		.addr = (uintptr_t)p, .len = pages * PAGE, .flags = flags,
	};

	igt_assert_f(ioctl(fd, RSVM_HMM_TEST_FAULT, &f) == 0, "FAULT ioctl: %s\n",
		     strerror(errno));
	return f;
}

static unsigned int must_retry(int fd)
{
	__u32 retry = 2;

	igt_assert_eq(ioctl(fd, RSVM_HMM_TEST_RETRY, &retry), 0);
	igt_assert(retry <= 1);
	return retry;
}

/* Takes the event log; returns how many events of `code` overlap [a, b). */
static int events(int fd, unsigned int code, char *a, char *b, bool exact)
{
	struct rsvm_hmm_test_event ev[64];
	struct rsvm_hmm_test_events e = { .ptr = (uintptr_t)ev, .count = 64 };
	int n = 0;

	igt_assert_eq(ioctl(fd, RSVM_HMM_TEST_EVENTS, &e), 0);
	for (unsigned int i = 0; i < e.count; i++) {
		bool overlap = ev[i].start < (uintptr_t)b && ev[i].end > (uintptr_t)a;
		bool same = ev[i].start == (uintptr_t)a && ev[i].end == (uintptr_t)b;

		igt_info("event %u [%#llx, %#llx)\n", ev[i].event,
			 (unsigned long long)ev[i].start, (unsigned long long)ev[i].end);
		if (ev[i].event == code && (exact ? same : overlap))
			n++;
	}
	return n;
}

/*
 * mirrored(), faulted in writable (the device could write every page), with
 * the event log emptied.
 */
static char *mirrored_writable(int fd)
{
	char *p = mirrored(fd);

	igt_assert_eq(fault(fd, p, NPAGES, RSVM_HMM_TEST_FAULT_WRITE).writable, NPAGES);
	events(fd, 0, p, p, false);
	return p;
}

/* The /proc/self/pagemap entry of the page at p. */
static uint64_t pagemap_entry(void *p)
{
	uint64_t e = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY);

	igt_assert(fd >= 0);
	igt_assert_eq(pread(fd, &e, 8, (uintptr_t)p / PAGE * 8), 8);
	close(fd);
	return e;
}

static bool soft_dirty(void *p)
{
	return pagemap_entry(p) >> 55 & 1;
}

igt_main
{
	igt_fixture {
		igt_assert_eq(run("modprobe rsvm_hmm_test"), 0);
	}

	igt_subtest("read-fault-leaves-page-clean") {
		int fd = open_dev();
		char *p = mirrored(fd);
		struct rsvm_hmm_test_fault f;
		int cr;

		events(fd, 0, p, p, false);
		cr = open("/proc/self/clear_refs", O_WRONLY);
		igt_assert(cr >= 0);
		igt_assert_eq(write(cr, "4", 1), 1);
		close(cr);
		igt_assert_lte(1, events(fd, RSVM_HMM_EVENT_SOFT_DIRTY, p,
					 p + NPAGES * PAGE, false));
		for (int i = 0; i < NPAGES; i++)
			igt_assert(!soft_dirty(p + i * PAGE));

		f = fault(fd, p, 2, 0);
		igt_assert_eq(f.valid, 2);
		igt_assert_eq(f.writable, 0);
		igt_assert(!soft_dirty(p) && !soft_dirty(p + PAGE));

		f = fault(fd, p + 2 * PAGE, 2, RSVM_HMM_TEST_FAULT_WRITE);
		igt_assert_eq(f.valid, 2);
		igt_assert_eq(f.writable, 2);
		igt_assert(soft_dirty(p + 2 * PAGE) && soft_dirty(p + 3 * PAGE));
		igt_assert(!soft_dirty(p) && !soft_dirty(p + PAGE));
		igt_assert_eq(must_retry(fd), 0);
		close(fd);
		munmap(p, NPAGES * PAGE);
	}

	igt_subtest("munmap-unmap-event") {
		int fd = open_dev();
		char *p = mirrored_writable(fd);
		struct rsvm_hmm_test_fault f;

		igt_assert_eq(must_retry(fd), 0);

		igt_assert_eq(munmap(p + PAGE, PAGE), 0);
		igt_assert_eq(events(fd, RSVM_HMM_EVENT_UNMAP, p + PAGE, p + 2 * PAGE, true), 1);
		igt_assert_eq(must_retry(fd), 1);

		f = (struct rsvm_hmm_test_fault){ .addr = (uintptr_t)p, .len = 2 * PAGE };
		igt_assert_errno(ioctl(fd, RSVM_HMM_TEST_FAULT, &f), EFAULT);
		igt_assert_eq(fault(fd, p + 2 * PAGE, 2, 0).valid, 2);
		igt_assert_eq(must_retry(fd), 0);
		close(fd);
		munmap(p, NPAGES * PAGE);
	}

	igt_subtest("mprotect-protection-vma-event") {
		int fd = open_dev();
		char *p = mirrored_writable(fd);
		struct rsvm_hmm_test_fault f;

		igt_assert_eq(mprotect(p, NPAGES * PAGE, PROT_READ), 0);
		igt_assert_eq(events(fd, RSVM_HMM_EVENT_PROTECTION_VMA, p,
				     p + NPAGES * PAGE, true), 1);
		igt_assert_eq(must_retry(fd), 1);

		f = fault(fd, p, NPAGES, 0);
		igt_assert_eq(f.valid, NPAGES);
		igt_assert_eq(f.writable, 0);
		f = (struct rsvm_hmm_test_fault){
			.addr = (uintptr_t)p, .len = PAGE, .flags = RSVM_HMM_TEST_FAULT_WRITE,
		};
		igt_assert_errno(ioctl(fd, RSVM_HMM_TEST_FAULT, &f), EPERM);
		igt_assert_eq((unsigned char)p[0], 0xaa);
		close(fd);
		munmap(p, NPAGES * PAGE);
	}

	igt_subtest("madvise-dontneed-clear-event") {
		int fd = open_dev();
		char *p = mirrored_writable(fd);
		struct rsvm_hmm_test_fault f;

		igt_assert_eq(madvise(p, 2 * PAGE, MADV_DONTNEED), 0);
		igt_assert_eq(events(fd, RSVM_HMM_EVENT_CLEAR, p, p + 2 * PAGE, true), 1);
		igt_assert_eq(must_retry(fd), 1);

		/* A read request maps the zero page, read-only. */
		f = fault(fd, p, NPAGES, 0);
		igt_assert_eq(f.valid, NPAGES);
		igt_assert_eq(f.writable, 2);
		igt_assert_eq(p[0], 0);
		igt_assert_eq((unsigned char)p[2 * PAGE], 0xaa);
		close(fd);
		munmap(p, NPAGES * PAGE);
	}

	igt_subtest("fork-cow-protection-page-event") {
		int fd = open_dev();
		char *p = mirrored_writable(fd);
		int status;
		pid_t pid;

		pid = fork();
		igt_assert(pid >= 0);
		if (pid == 0) {
			/* The child's copy is its own. */
			memset(p, 0xbb, PAGE);
			_exit((unsigned char)p[0] == 0xbb &&
			      (unsigned char)p[PAGE] == 0xaa ? 0 : 1);
		}
		igt_assert_eq(waitpid(pid, &status, 0), pid);
		igt_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);

		igt_assert_lte(1, events(fd, RSVM_HMM_EVENT_PROTECTION_PAGE, p,
					 p + NPAGES * PAGE, false));
		igt_assert_eq(must_retry(fd), 1);
		/* COW write-protected the parent's pages... */
		igt_assert_eq(fault(fd, p, NPAGES, 0).writable, 0);
		igt_assert_eq((unsigned char)p[0], 0xaa);
		/* ...and a write request makes them the parent's own again. */
		igt_assert_eq(fault(fd, p, NPAGES, RSVM_HMM_TEST_FAULT_WRITE).writable, NPAGES);
		igt_assert_eq((unsigned char)p[0], 0xaa);
		close(fd);
		munmap(p, NPAGES * PAGE);
	}

	igt_subtest("bad-input") {
		int fd = open_dev();
		struct rsvm_hmm_test_range r = { .addr = 1, .len = PAGE };
		struct rsvm_hmm_test_fault f = { 0 };
		struct rsvm_hmm_test_events e = { 0 };
		__u32 retry;
		char *p;

		f.len = PAGE;
		igt_assert_errno(ioctl(fd, RSVM_HMM_TEST_FAULT, &f), ENOENT);
		igt_assert_errno(ioctl(fd, RSVM_HMM_TEST_RETRY, &retry), ENOENT);
		igt_assert_errno(ioctl(fd, RSVM_HMM_TEST_MIRROR, &r), EINVAL);
		r = (struct rsvm_hmm_test_range){ .addr = PAGE, .len = 0 };
		igt_assert_errno(ioctl(fd, RSVM_HMM_TEST_MIRROR, &r), EINVAL);
		igt_assert_errno(ioctl(fd, RSVM_HMM_TEST_MIRROR, (void *)8), EFAULT);
		igt_assert_errno(ioctl(fd, _IO('H', 0x7f)), ENOTTY);

		p = mirrored(fd);
		r = (struct rsvm_hmm_test_range){ .addr = (uintptr_t)p, .len = PAGE };
		igt_assert_errno(ioctl(fd, RSVM_HMM_TEST_MIRROR, &r), EEXIST);
		igt_assert_errno(ioctl(fd, RSVM_HMM_TEST_RETRY, &retry), ENOENT);

		f = (struct rsvm_hmm_test_fault){ .addr = (uintptr_t)p, .len = (NPAGES + 1) * PAGE };
		igt_assert_errno(ioctl(fd, RSVM_HMM_TEST_FAULT, &f), ERANGE);
		f = (struct rsvm_hmm_test_fault){ .addr = (uintptr_t)p + 1, .len = PAGE };
		igt_assert_errno(ioctl(fd, RSVM_HMM_TEST_FAULT, &f), EINVAL);
		f = (struct rsvm_hmm_test_fault){ .addr = (uintptr_t)p, .len = PAGE, .flags = 2 };
		igt_assert_errno(ioctl(fd, RSVM_HMM_TEST_FAULT, &f), EINVAL);
		f = (struct rsvm_hmm_test_fault){ .addr = (uintptr_t)p, .len = PAGE, .pad = 1 };
		igt_assert_errno(ioctl(fd, RSVM_HMM_TEST_FAULT, &f), EINVAL);
		f = (struct rsvm_hmm_test_fault){ .addr = (uintptr_t)p, .len = -PAGE };
		igt_assert_errno(ioctl(fd, RSVM_HMM_TEST_FAULT, &f), EINVAL);
		igt_assert_errno(ioctl(fd, RSVM_HMM_TEST_FAULT, (void *)8), EFAULT);

		e.pad = 1;
		igt_assert_errno(ioctl(fd, RSVM_HMM_TEST_EVENTS, &e), EINVAL);
		igt_assert_eq(munmap(p, PAGE), 0);
		e = (struct rsvm_hmm_test_events){ .ptr = 8, .count = 4 };
		igt_assert_errno(ioctl(fd, RSVM_HMM_TEST_EVENTS, &e), EFAULT);
		close(fd);
		munmap(p, NPAGES * PAGE);
	}
}
