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
/* PCI address of the rsvm device ("0000:00:03.0"), from sysfs. */
const char *rsvm_pci_address(char *buf, size_t len);

#endif
