/* SPDX-License-Identifier: MIT */
/*
 * A small, self-contained subset of IGT GPU Tools' test API (lib/igt_core.h):
 * igt_main, igt_fixture, igt_subtest, igt_assert*, igt_require, igt_skip.
 *
 * Output and exit codes follow IGT, so igt_runner's out.txt parser reads it:
 *   Starting subtest: NAME
 *   Subtest NAME: SUCCESS (0.012s)      (or SKIP / FAIL)
 * --list-subtests and --run-subtest NAME work as in IGT.
 */
#ifndef RSVM_IGT_H
#define RSVM_IGT_H

#include <errno.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IGT_EXIT_SUCCESS 0
#define IGT_EXIT_SKIP 77
#define IGT_EXIT_FAILURE 98
#define IGT_EXIT_INVALID 79

struct igt_state {
	int argc;
	char **argv;
	bool listing;
	const char *only;
	const char *current;
	bool in_fixture;
	bool fixture_skipped;
	char fixture_skip_reason[256];
	int passed, failed, skipped;
	int result;
	jmp_buf jmp;
	double start;
};

extern struct igt_state igt;

bool __igt_run_subtest(const char *name);
void __igt_subtest_done(void);
void __igt_fail_assert(const char *file, int line, const char *func,
		       const char *expr, const char *fmt, ...)
	__attribute__((noreturn, format(printf, 5, 6)));
void igt_skip(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
void igt_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int __igt_finish(void);
void __igt_init(int argc, char **argv);
bool __igt_fixture_begin(void);
void __igt_fixture_end(void);

enum { IGT_RESULT_PASS, IGT_RESULT_SKIP, IGT_RESULT_FAIL };

/*
 * igt_main { igt_fixture { ... } igt_subtest("name") { ... } }
 */
#define igt_main                                              \
	static void __igt_main_body(void);                    \
	int main(int argc, char **argv)                       \
	{                                                     \
		__igt_init(argc, argv);                       \
		__igt_main_body();                            \
		return __igt_finish();                        \
	}                                                     \
	static void __igt_main_body(void)

/* A failed assertion or a skip longjmps back to the setjmp of the block. */
#define igt_fixture                                                       \
	for (bool __f = __igt_fixture_begin(); __f; __f = false, __igt_fixture_end()) \
		if (setjmp(igt.jmp) == 0)

#define igt_subtest(name)                                                  \
	for (bool __go = __igt_run_subtest(name); __go; __go = false, __igt_subtest_done()) \
		if (setjmp(igt.jmp) == 0)

#define igt_assert_f(expr, ...)                                                \
	do {                                                                   \
		if (!(expr))                                                   \
			__igt_fail_assert(__FILE__, __LINE__, __func__, #expr, \
					  __VA_ARGS__);                        \
	} while (0)

#define igt_assert(expr) igt_assert_f(expr, "%s", "")

#define __igt_cmp(a, op, b, fmtt, type)                                         \
	do {                                                                    \
		type __a = (a), __b = (b);                                      \
		if (!(__a op __b))                                              \
			__igt_fail_assert(__FILE__, __LINE__, __func__,         \
					  #a " " #op " " #b,                    \
					  "error: " fmtt " " #op " " fmtt " is false\n", \
					  __a, __b);                            \
	} while (0)

#define igt_assert_eq(a, b) __igt_cmp(a, ==, b, "%lld", long long)
#define igt_assert_neq(a, b) __igt_cmp(a, !=, b, "%lld", long long)
#define igt_assert_lt(a, b) __igt_cmp(a, <, b, "%lld", long long)
#define igt_assert_lte(a, b) __igt_cmp(a, <=, b, "%lld", long long)
#define igt_assert_eq_u64(a, b) __igt_cmp(a, ==, b, "%#llx", unsigned long long)
#define igt_assert_eq_u32(a, b) __igt_cmp(a, ==, b, "%#x", unsigned int)

/* errno of a failed call: igt_assert_errno(ioctl(...), EINVAL) */
#define igt_assert_errno(call, err)                                             \
	do {                                                                    \
		errno = 0;                                                      \
		long __ret = (long)(call);                                      \
		int __e = errno;                                                \
		igt_assert_f(__ret == -1 && __e == (err),                       \
			     "%s: expected -1/%s, got %ld/%s\n", #call,         \
			     strerror(err), __ret, strerror(__e));              \
	} while (0)

#define igt_require_f(expr, ...)             \
	do {                                 \
		if (!(expr))                 \
			igt_skip(__VA_ARGS__); \
	} while (0)
#define igt_require(expr) igt_require_f(expr, "Test requirement not met: %s\n", #expr)

#endif
