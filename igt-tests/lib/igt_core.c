// SPDX-License-Identifier: MIT
/* Implementation of the IGT subset in igt.h. */
#include <stdarg.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include "igt.h"

struct igt_state igt;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Mark the kernel log too, so a guest oops is attributed to its subtest. */
static void mark_kernel_log(const char *fmt, const char *name)
{
	char buf[300];
	int fd = open("/dev/kmsg", O_WRONLY);

	if (fd < 0)
		return;
	snprintf(buf, sizeof(buf), fmt, name);
	/* Best effort: a test does not fail for want of a log line. */
	ssize_t ret = write(fd, buf, strlen(buf));

	(void)ret;
	close(fd);
}

void __igt_init(int argc, char **argv)
{
	memset(&igt, 0, sizeof(igt));
	igt.argc = argc;
	igt.argv = argv;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--list-subtests"))
			igt.listing = true;
		else if (!strcmp(argv[i], "--run-subtest") && i + 1 < argc)
			igt.only = argv[++i];
		else {
			fprintf(stderr, "usage: %s [--list-subtests] [--run-subtest NAME]\n", argv[0]);
			exit(IGT_EXIT_INVALID);
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
}

bool __igt_fixture_begin(void)
{
	if (igt.listing || igt.fixture_skipped)
		return false;
	igt.in_fixture = true;
	return true;
}

void __igt_fixture_end(void)
{
	igt.in_fixture = false;
}

bool __igt_run_subtest(const char *name)
{
	if (igt.listing) {
		printf("%s\n", name);
		return false;
	}
	if (igt.only && strcmp(igt.only, name))
		return false;
	igt.current = name;
	printf("Starting subtest: %s\n", name);
	mark_kernel_log("[IGT] starting subtest %s\n", name);
	igt.start = now();
	igt.result = IGT_RESULT_PASS;
	if (igt.fixture_skipped) {
		printf("%s", igt.fixture_skip_reason);
		igt.result = IGT_RESULT_SKIP;
		__igt_subtest_done();
		return false;
	}
	return true;
}

void __igt_subtest_done(void)
{
	static const char *const names[] = { "SUCCESS", "SKIP", "FAIL" };
	int result = igt.result;

	printf("Subtest %s: %s (%.3fs)\n", igt.current, names[result], now() - igt.start);
	mark_kernel_log("[IGT] finished subtest %s\n", igt.current);
	if (result == IGT_RESULT_PASS)
		igt.passed++;
	else if (result == IGT_RESULT_SKIP)
		igt.skipped++;
	else
		igt.failed++;
	igt.current = NULL;
}

void __igt_fail_assert(const char *file, int line, const char *func,
		       const char *expr, const char *fmt, ...)
{
	va_list ap;

	printf("(%s:%d) %s: Failed assertion: %s\n", file, line, func, expr);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fflush(stdout);
	if (igt.in_fixture) {
		printf("Fixture failed: aborting\n");
		exit(IGT_EXIT_FAILURE);
	}
	igt.result = IGT_RESULT_FAIL;
	longjmp(igt.jmp, 1);
}

void igt_skip(const char *fmt, ...)
{
	va_list ap;
	char buf[256];

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (igt.in_fixture) {
		/* Every later subtest skips with the same reason. */
		igt.fixture_skipped = true;
		snprintf(igt.fixture_skip_reason, sizeof(igt.fixture_skip_reason), "%s", buf);
	} else {
		printf("%s", buf);
		igt.result = IGT_RESULT_SKIP;
	}
	longjmp(igt.jmp, 1);
}

void igt_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
}

int __igt_finish(void)
{
	if (igt.listing)
		return IGT_EXIT_SUCCESS;
	if (igt.failed)
		return IGT_EXIT_FAILURE;
	if (igt.passed == 0 && igt.skipped)
		return IGT_EXIT_SKIP;
	if (igt.passed == 0 && igt.only)
		return IGT_EXIT_INVALID;
	return IGT_EXIT_SUCCESS;
}
