/* SPDX-License-Identifier: MIT */
/* Helpers shared by the rsvm tests. */
#ifndef RSVM_TEST_H
#define RSVM_TEST_H

#include <stdbool.h>
#include <stdint.h>
#include <drm/rsvm_drm.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Opens the rsvm render node (or, with primary, the card node); -1 if none. */
int rsvm_open(bool primary);
/* Path of the node rsvm_open() would open, or NULL. */
const char *rsvm_node_path(bool primary, char *buf, size_t len);
/* DRM_IOCTL_RSVM_GET_PARAM; returns 0 or -errno. */
int rsvm_get_param(int fd, uint32_t param, uint64_t *value);
/* An unsigned value from the kernel command line ("key=value"), or def. */
uint64_t cmdline_u64(const char *key, uint64_t def);
/* Reads a whole small file into buf (NUL-terminated); -1 on error. */
int read_file(const char *path, char *buf, size_t len);
/* Number of lines of path that contain needle. */
int count_lines(const char *path, const char *needle);
/* Runs a shell command; returns its exit status. */
int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/*
 * kmemleak (debugfs): rsvm_kmemleak() writes a command ("clear", "scan"): 0
 * or -1; rsvm_kmemleak_leaks() scans and returns how many objects leaked
 * since the last clear, printing the report (-1 without kmemleak).
 */
int rsvm_kmemleak(const char *cmd);
int rsvm_kmemleak_leaks(void);
/*
 * A 32-bit access to BAR0 of the rsvm device through sysfs (resource0), for
 * the model's debug registers; 0 or -errno.
 */
#define RSVM_DEBUG_BAR0_READS_LO	0xfe0300
#define RSVM_DEBUG_BAR0_WRITES_LO	0xfe0308
#define RSVM_DEBUG_DUMP			0xfe0310
int rsvm_bar0_write(uint32_t offset, uint32_t value);
int rsvm_bar0_read(uint32_t offset, uint32_t *value);
/* PCI address of the rsvm device ("0000:00:03.0"), from sysfs. */
const char *rsvm_pci_address(char *buf, size_t len);

/*
 * The SVM interface: each returns 0 or -errno.
 */
int rsvm_svm_bind(int fd, const void *start, size_t len, uint32_t flags);
int rsvm_svm_unbind(int fd, const void *start, size_t len);
int rsvm_channel_create(int fd, uint32_t *handle);
int rsvm_channel_destroy(int fd, uint32_t handle);
int rsvm_exec(int fd, uint32_t channel, const uint32_t *push, uint32_t dwords,
	      uint64_t *seqno);
/*
 * On -EIO, *error and *info (if not NULL) say why the channel stopped: for
 * DRM_RSVM_ERROR_FAULT *info is the faulting page's address, for
 * DRM_RSVM_ERROR_MISALIGNED the access's address, else the error's detail.
 */
int rsvm_wait(int fd, uint32_t channel, uint64_t seqno, int64_t timeout_ns,
	      uint32_t *error, uint64_t *info);

/* A pushbuffer being built. */
struct rsvm_push {
	uint32_t dw[DRM_RSVM_EXEC_MAX_DWORDS];
	uint32_t n;
};

/* Appends an incrementing method header and its data. */
void rsvm_push_methods(struct rsvm_push *p, uint32_t subch, uint32_t method,
		       const uint32_t *data, uint32_t count);
/* Appends one method. */
void rsvm_push_method(struct rsvm_push *p, uint32_t subch, uint32_t method,
		      uint32_t data);
/*
 * Appends a compute launch of code at @code over @threads threads with
 * argument pointer @args, each thread getting @stack_size bytes of @stack.
 */
void rsvm_push_launch(struct rsvm_push *p, const void *code, const void *args,
		      void *stack, uint32_t stack_size, uint32_t threads);
/* Appends a semaphore release of the 64-bit @value at @addr. */
void rsvm_push_release(struct rsvm_push *p, void *addr, uint64_t value);
/*
 * Appends a semaphore acquire: the channel waits until the 32-bit value at
 * @addr (below 2^40) is >= @value.
 */
void rsvm_push_acquire(struct rsvm_push *p, uint32_t *addr, uint32_t value);
/* Appends a copy-engine copy of @len bytes (one line) from @src to @dst. */
void rsvm_push_copy(struct rsvm_push *p, void *dst, const void *src, uint32_t len);

/* The data of kernels/src/list_sum.c and tree_sum.c, and their arguments. */
struct rsvm_node {
	struct rsvm_node *next;
	uint64_t value;
};

struct rsvm_tree {
	struct rsvm_tree *left, *right;
	uint64_t value;
};

struct rsvm_list_sum_args {
	struct rsvm_node *head;
	uint64_t *sum, *count;
};

struct rsvm_tree_sum_args {
	struct rsvm_tree *root;
	uint64_t depth;
	uint64_t *sum;
};

/*
 * A full binary tree of @depth levels from malloc (aborts if it fails): node
 * k, pre-order from *next_id, holds 3k + 1, which is added to *sum.
 */
struct rsvm_tree *rsvm_build_tree(int depth, uint64_t *next_id, uint64_t *sum);
void rsvm_free_tree(struct rsvm_tree *t);

/* Start of the process's [heap] mapping (from /proc/self/maps), or 0. */
uintptr_t rsvm_heap_start(void);

/*
 * A compute kernel image (kernels/src/NAME.c) from /lib/rsvm/kernels, in
 * page-aligned malloc memory; NULL if missing. *size gets its size.
 */
void *rsvm_load_kernel(const char *name, size_t *size);

/*
 * Runs one pushbuffer on a fresh channel and waits up to 20 s: 0 or -errno
 * (error and info as for rsvm_wait).
 */
int rsvm_run(int fd, const struct rsvm_push *p, uint32_t *error, uint64_t *info);

#endif
