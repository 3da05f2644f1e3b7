// SPDX-License-Identifier: MIT
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rsvm.h"

static bool is_rsvm(const char *node)
{
	char path[300], link[300];
	ssize_t n;

	snprintf(path, sizeof(path), "/sys/class/drm/%s/device/driver", node);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return false;
	link[n] = 0;
	return !strcmp(strrchr(link, '/') + 1, "rsvm");
}

const char *rsvm_node_path(bool primary, char *buf, size_t len)
{
	const char *prefix = primary ? "card" : "renderD";
	struct dirent *d;
	DIR *dir = opendir("/sys/class/drm");
	const char *ret = NULL;

	if (!dir)
		return NULL;
	while ((d = readdir(dir))) {
		if (strncmp(d->d_name, prefix, strlen(prefix)) || strchr(d->d_name, '-'))
			continue;
		if (is_rsvm(d->d_name)) {
			snprintf(buf, len, "/dev/dri/%s", d->d_name);
			ret = buf;
			break;
		}
	}
	closedir(dir);
	return ret;
}

int rsvm_open(bool primary)
{
	char path[300];

	if (!rsvm_node_path(primary, path, sizeof(path)))
		return -1;
	return open(path, O_RDWR | O_CLOEXEC);
}

int rsvm_get_param(int fd, uint32_t param, uint64_t *value)
{
	struct drm_rsvm_get_param p = { .param = param };

	if (ioctl(fd, DRM_IOCTL_RSVM_GET_PARAM, &p))
		return -errno;
	*value = p.value;
	return 0;
}

int read_file(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	ssize_t n, total = 0;

	if (fd < 0)
		return -1;
	while ((n = read(fd, buf + total, len - 1 - total)) > 0)
		total += n;
	close(fd);
	buf[total] = 0;
	return n < 0 ? -1 : 0;
}

uint64_t cmdline_u64(const char *key, uint64_t def)
{
	char buf[4096], *p;
	size_t kl = strlen(key);

	if (read_file("/proc/cmdline", buf, sizeof(buf)))
		return def;
	for (p = strtok(buf, "\n "); p; p = strtok(NULL, "\n "))
		if (!strncmp(p, key, kl) && p[kl] == '=')
			return strtoull(p + kl + 1, NULL, 0);
	return def;
}

int count_lines(const char *path, const char *needle)
{
	char line[1024];
	int n = 0;
	FILE *f = fopen(path, "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		n += strstr(line, needle) != NULL;
	fclose(f);
	return n;
}

int run(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	fflush(stdout);
	st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

#define KMEMLEAK "/sys/kernel/debug/kmemleak"

int rsvm_kmemleak(const char *cmd)
{
	int fd = open(KMEMLEAK, O_WRONLY);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, cmd, strlen(cmd));
	close(fd);
	return n == (ssize_t)strlen(cmd) ? 0 : -1;
}

int rsvm_kmemleak_leaks(void)
{
	static char buf[1 << 16];
	int n;

	if (rsvm_kmemleak("scan") || read_file(KMEMLEAK, buf, sizeof(buf)))
		return -1;
	n = count_lines(KMEMLEAK, "unreferenced object");
	if (n)
		printf("kmemleak:\n%s", buf);
	return n;
}

const char *rsvm_pci_address(char *buf, size_t len)
{
	struct dirent *d;
	DIR *dir = opendir("/sys/bus/pci/devices");
	const char *ret = NULL;
	char path[600], v[32], dv[32];

	if (!dir)
		return NULL;
	while ((d = readdir(dir))) {
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/vendor", d->d_name);
		if (read_file(path, v, sizeof(v)))
			continue;
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/device", d->d_name);
		if (read_file(path, dv, sizeof(dv)))
			continue;
		if (strtoul(v, NULL, 0) == 0x5253 && strtoul(dv, NULL, 0) == 0x564d) {
			snprintf(buf, len, "%s", d->d_name);
			ret = buf;
			break;
		}
	}
	closedir(dir);
	return ret;
}

int rsvm_svm_bind(int fd, const void *start, size_t len, uint32_t flags)
{
	struct drm_rsvm_svm_bind b = {
		.start = (uintptr_t)start,
		.length = len,
		.op = DRM_RSVM_SVM_OP_BIND,
		.flags = flags,
	};

	return ioctl(fd, DRM_IOCTL_RSVM_SVM_BIND, &b) ? -errno : 0;
}

int rsvm_svm_unbind(int fd, const void *start, size_t len)
{
	struct drm_rsvm_svm_bind b = {
		.start = (uintptr_t)start,
		.length = len,
		.op = DRM_RSVM_SVM_OP_UNBIND,
	};

	return ioctl(fd, DRM_IOCTL_RSVM_SVM_BIND, &b) ? -errno : 0;
}

int rsvm_channel_create(int fd, uint32_t *handle)
{
	struct drm_rsvm_channel_create c = { 0 };

	if (ioctl(fd, DRM_IOCTL_RSVM_CHANNEL_CREATE, &c))
		return -errno;
	*handle = c.handle;
	return 0;
}

int rsvm_channel_destroy(int fd, uint32_t handle)
{
	struct drm_rsvm_channel_destroy d = { .handle = handle };

	return ioctl(fd, DRM_IOCTL_RSVM_CHANNEL_DESTROY, &d) ? -errno : 0;
}

int rsvm_exec(int fd, uint32_t channel, const uint32_t *push, uint32_t dwords,
	      uint64_t *seqno)
{
	struct drm_rsvm_exec e = {
		.push = (uintptr_t)push,
		.channel = channel,
		.dwords = dwords,
	};

	if (ioctl(fd, DRM_IOCTL_RSVM_EXEC, &e))
		return -errno;
	if (seqno)
		*seqno = e.seqno;
	return 0;
}

int rsvm_wait(int fd, uint32_t channel, uint64_t seqno, int64_t timeout_ns,
	      uint32_t *error, uint64_t *info)
{
	struct drm_rsvm_wait w = {
		.channel = channel,
		.seqno = seqno,
		.timeout_ns = timeout_ns,
	};
	int ret = ioctl(fd, DRM_IOCTL_RSVM_WAIT, &w) ? -errno : 0;

	if (error)
		*error = w.error;
	if (info)
		*info = w.result_flags & DRM_RSVM_WAIT_FAULT_ADDRESS_VALID ? w.fault_address :
								      w.error_info;
	return ret;
}

void rsvm_push_methods(struct rsvm_push *p, uint32_t subch, uint32_t method,
		       const uint32_t *data, uint32_t count)
{
	if (p->n + 1 + count > ARRAY_SIZE(p->dw))
		abort();
	p->dw[p->n++] = (1u << 29) | (count << 16) | (subch << 13) | (method >> 2);
	memcpy(&p->dw[p->n], data, count * 4);
	p->n += count;
}

void rsvm_push_method(struct rsvm_push *p, uint32_t subch, uint32_t method,
		      uint32_t data)
{
	rsvm_push_methods(p, subch, method, &data, 1);
}

#define HI(x) ((uint32_t)((uint64_t)(uintptr_t)(x) >> 32))
#define LO(x) ((uint32_t)(uintptr_t)(x))

void rsvm_push_launch(struct rsvm_push *p, const void *code, const void *args,
		      void *stack, uint32_t stack_size, uint32_t threads)
{
	const uint32_t d[] = {
		HI(code), LO(code), HI(args), LO(args), HI(stack), LO(stack), stack_size,
	};

	/* SET_CODE_ADDRESS_UPPER .. SET_STACK_SIZE, SET_GRID_SIZE, LAUNCH */
	rsvm_push_methods(p, DRM_RSVM_SUBCHANNEL_COMPUTE, 0x200, d, ARRAY_SIZE(d));
	rsvm_push_method(p, DRM_RSVM_SUBCHANNEL_COMPUTE, 0x220, threads);
	rsvm_push_method(p, DRM_RSVM_SUBCHANNEL_COMPUTE, 0x300, 0);
}

void rsvm_push_release(struct rsvm_push *p, void *addr, uint64_t value)
{
	const uint32_t d[] = { LO(addr), HI(addr), (uint32_t)value, (uint32_t)(value >> 32) };

	/* SEM_ADDR_LO/HI, SEM_PAYLOAD_LO/HI, then SEM_EXECUTE: release, 64-bit */
	rsvm_push_methods(p, 0, 0x05c, d, ARRAY_SIZE(d));
	rsvm_push_method(p, 0, 0x06c, 1 | (1u << 24));
}

void rsvm_push_acquire(struct rsvm_push *p, uint32_t *addr, uint32_t value)
{
	const uint32_t d[] = { LO(addr), HI(addr), value };

	/* SEM_ADDR_LO/HI, SEM_PAYLOAD_LO, then SEM_EXECUTE: ACQ_STRICT_GEQ */
	rsvm_push_methods(p, 0, 0x05c, d, ARRAY_SIZE(d));
	rsvm_push_method(p, 0, 0x06c, 2);
}

void rsvm_push_copy(struct rsvm_push *p, void *dst, const void *src, uint32_t len)
{
	const uint32_t off[] = { HI(src), LO(src), HI(dst), LO(dst) };

	/* OFFSET_IN/OUT_UPPER/LOWER, LINE_LENGTH_IN, then LAUNCH_DMA:
	 * non-pipelined, flush, pitch source and destination (virtual).
	 */
	rsvm_push_methods(p, DRM_RSVM_SUBCHANNEL_COPY, 0x400, off, ARRAY_SIZE(off));
	rsvm_push_method(p, DRM_RSVM_SUBCHANNEL_COPY, 0x418, len);
	rsvm_push_method(p, DRM_RSVM_SUBCHANNEL_COPY, 0x300, 2 | (1 << 2) | (1 << 7) | (1 << 8));
}

void *rsvm_load_kernel(const char *name, size_t *size)
{
	char path[256], *buf;
	FILE *f;
	long len;

	snprintf(path, sizeof(path), "/lib/rsvm/kernels/%s.bin", name);
	f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	rewind(f);
	buf = aligned_alloc(4096, (len + 4095) & ~4095L);
	if (buf && fread(buf, 1, len, f) != (size_t)len) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	if (size)
		*size = len;
	return buf;
}

int rsvm_run(int fd, const struct rsvm_push *p, uint32_t *error, uint64_t *info)
{
	uint32_t ch = 0;
	uint64_t seq = 0;
	int ret = rsvm_channel_create(fd, &ch);

	if (ret)
		return ret;
	ret = rsvm_exec(fd, ch, p->dw, p->n, &seq);
	if (!ret)
		ret = rsvm_wait(fd, ch, seq, 20000000000ll, error, info);
	rsvm_channel_destroy(fd, ch);
	return ret;
}

uintptr_t rsvm_heap_start(void)
{
	char line[256];
	uintptr_t lo = 0;
	FILE *f = fopen("/proc/self/maps", "r");

	while (f && fgets(line, sizeof(line), f))
		if (strstr(line, "[heap]"))
			lo = strtoul(line, NULL, 16);
	if (f)
		fclose(f);
	return lo;
}

struct rsvm_tree *rsvm_build_tree(int depth, uint64_t *next_id, uint64_t *sum)
{
	struct rsvm_tree *t;

	if (depth == 0)
		return NULL;
	t = malloc(sizeof(*t));
	if (!t)
		abort();
	t->value = (*next_id)++ * 3 + 1;
	*sum += t->value;
	t->left = rsvm_build_tree(depth - 1, next_id, sum);
	t->right = rsvm_build_tree(depth - 1, next_id, sum);
	return t;
}

void rsvm_free_tree(struct rsvm_tree *t)
{
	if (!t)
		return;
	rsvm_free_tree(t->left);
	rsvm_free_tree(t->right);
	free(t);
}

/* BAR0 of the rsvm device up to @offset + 4 KiB, from sysfs; NULL on error. */
static uint32_t *bar0_map(uint32_t offset, int *err)
{
	char addr[64], path[128];
	uint32_t *bar;
	int f;

	*err = -ENODEV;
	if (!rsvm_pci_address(addr, sizeof(addr)))
		return NULL;
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/resource0", addr);
	f = open(path, O_RDWR | O_SYNC);
	*err = -errno;
	if (f < 0)
		return NULL;
	bar = mmap(NULL, offset + 4096, PROT_READ | PROT_WRITE, MAP_SHARED, f, 0);
	*err = -errno;
	close(f);
	return bar == MAP_FAILED ? NULL : bar;
}

int rsvm_bar0_write(uint32_t offset, uint32_t value)
{
	int err;
	uint32_t *bar = bar0_map(offset, &err);

	if (!bar)
		return err;
	/* One 32-bit store, as MMIO needs it. */
	__atomic_store_n(&bar[offset / 4], value, __ATOMIC_SEQ_CST);
	munmap(bar, offset + 4096);
	return 0;
}

int rsvm_bar0_read(uint32_t offset, uint32_t *value)
{
	int err;
	uint32_t *bar = bar0_map(offset, &err);

	if (!bar)
		return err;
	*value = __atomic_load_n(&bar[offset / 4], __ATOMIC_SEQ_CST);
	munmap(bar, offset + 4096);
	return 0;
}
