// SPDX-License-Identifier: MIT
/*
 * TEST: rsvm_basic
 * Category: Core
 * Description: The rsvm driver binds the GPU model, registers a DRM device
 *   with a render node, reports the model's configuration through
 *   GET_PARAM, rejects bad input, and can be unbound, rebound, unloaded and
 *   reloaded without leaking.
 *
 * SUBTEST: render-node
 * Description: the driver bound the device and created card and render nodes.
 * SUBTEST: getparam-values
 * Description: GET_PARAM reports what the model was configured with.
 * SUBTEST: getparam-primary-node
 * Description: GET_PARAM works on the primary node too.
 * SUBTEST: getparam-invalid
 * Description: unknown parameters and non-zero padding give -EINVAL.
 * SUBTEST: getparam-bad-pointer
 * Description: a bad argument pointer gives -EFAULT.
 * SUBTEST: unknown-ioctl
 * Description: a driver ioctl number past the table gives -EINVAL.
 * SUBTEST: unbind-rebind
 * Description: 3x unbind and rebind through sysfs; an fd held across an
 *   unbind gets -ENODEV; nothing leaks.
 * SUBTEST: module-reload
 * Description: 3x rmmod and modprobe; nothing leaks.
 */
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "igt.h"
#include "rsvm.h"

/* The number in debugfs file @name of directory @dir. */
static uint64_t debugfs_u64(const char *dir, const char *name)
{
	char path[192], buf[32];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	igt_assert_f(read_file(path, buf, sizeof(buf)) == 0 && buf[0], "cannot read %s\n", path);
	return strtoull(buf, NULL, 10);
}

static void kmemleak_write(const char *cmd)
{
	igt_assert_f(rsvm_kmemleak(cmd) == 0, "kmemleak is not available\n");
}

static int kmemleak_leaks(void)
{
	int n = rsvm_kmemleak_leaks();

	igt_assert_f(n >= 0, "kmemleak is not available\n");
	return n;
}

/* What the driver holds while bound, to compare before and after. */
struct held {
	int iomem, irqs, nodes;
};

static struct held held_now(void)
{
	char p[300];
	struct held h = {
		.iomem = count_lines("/proc/iomem", "rsvm"),
		.irqs = count_lines("/proc/interrupts", "rsvm"),
		.nodes = !!rsvm_node_path(false, p, sizeof(p)) + !!rsvm_node_path(true, p, sizeof(p)),
	};
	return h;
}

/* Version record (type 2: u16 major, u16 minor) of the firmware file. */
static uint64_t firmware_file_version(void)
{
	static uint8_t img[4096];
	uint32_t count, at = 24;
	ssize_t n;
	int fd = open("/lib/firmware/rsvm/gv100-model.bin", O_RDONLY);

	igt_assert(fd >= 0);
	n = read(fd, img, sizeof(img));
	close(fd);
	igt_assert(n >= 24 && !memcmp(img, "RSVMFW\0\1", 8));
	memcpy(&count, img + 20, 4);
	for (uint32_t i = 0; i < count && at + 8 <= n; i++) {
		uint32_t tag, len;

		memcpy(&tag, img + at, 4);
		memcpy(&len, img + at + 4, 4);
		if (tag == 2 && len == 4) {
			uint16_t major, minor;

			memcpy(&major, img + at + 8, 2);
			memcpy(&minor, img + at + 10, 2);
			return (uint64_t)major << 16 | minor;
		}
		at += 8 + ((len + 3) & ~3u);
	}
	igt_assert_f(0, "no version record in the firmware file\n");
	return 0;
}

static void assert_bound(void)
{
	struct held h = held_now();
	uint64_t v;
	int fd;

	igt_assert_eq(h.iomem, 1);
	igt_assert_eq(h.irqs, 1);
	igt_assert_eq(h.nodes, 2);
	fd = rsvm_open(false);
	igt_assert_f(fd >= 0, "no render node after bind\n");
	igt_assert_eq(rsvm_get_param(fd, DRM_RSVM_PARAM_VA_BITS, &v), 0);
	igt_assert_eq(v, 49);
	close(fd);
}

static void assert_unbound(void)
{
	struct held h = held_now();

	igt_assert_eq(h.iomem, 0);
	igt_assert_eq(h.irqs, 0);
	igt_assert_eq(h.nodes, 0);
}

igt_main
{
	static int fd = -1; /* static: it changes across setjmp */

	igt_fixture {
		fd = rsvm_open(false);
		igt_require_f(fd >= 0, "no rsvm render node\n");
	}

	igt_subtest("render-node") {
		char path[300], buf[64];
		struct drm_version v = { .name = buf, .name_len = sizeof(buf) - 1 };

		igt_assert(rsvm_node_path(false, path, sizeof(path)));
		igt_assert(!strncmp(path, "/dev/dri/renderD", 16));
		igt_assert(rsvm_node_path(true, path, sizeof(path)));
		memset(buf, 0, sizeof(buf));
		igt_assert_eq(ioctl(fd, DRM_IOCTL_VERSION, &v), 0);
		igt_assert_f(!strcmp(buf, "rsvm"), "driver name %s\n", buf);
	}

	igt_subtest("getparam-values") {
		uint64_t v, want_vram = cmdline_u64("rsvm_test.vram_mib", 0) << 20;
		char addr[64], path[300], rev[16];

		igt_require_f(want_vram, "rsvm_test.vram_mib not on the command line\n");
		igt_assert_eq(rsvm_get_param(fd, DRM_RSVM_PARAM_VRAM_SIZE, &v), 0);
		igt_assert_eq_u64(v, want_vram);

		/* BOOT_0 carries the same revision as PCI config space. */
		igt_assert_eq(rsvm_get_param(fd, DRM_RSVM_PARAM_CHIP_ID, &v), 0);
		igt_assert_eq_u64(v >> 24, 0x1f);
		igt_assert(rsvm_pci_address(addr, sizeof(addr)));
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/revision", addr);
		igt_assert_eq(read_file(path, rev, sizeof(rev)), 0);
		igt_assert_eq_u64(v & 0xff, strtoull(rev, NULL, 0));

		igt_assert_eq(rsvm_get_param(fd, DRM_RSVM_PARAM_VA_BITS, &v), 0);
		igt_assert_eq_u64(v, 49);
		igt_assert_eq(rsvm_get_param(fd, DRM_RSVM_PARAM_PAGE_SIZES, &v), 0);
		igt_assert_eq_u64(v, (1ull << 12) | (1ull << 16) | (1ull << 21));
		igt_assert_eq(rsvm_get_param(fd, DRM_RSVM_PARAM_UAPI_VERSION, &v), 0);
		igt_assert_eq_u64(v, DRM_RSVM_UAPI_VERSION);

		/* The version the device runs is the one in the image on disk. */
		igt_assert_eq(rsvm_get_param(fd, DRM_RSVM_PARAM_FIRMWARE_VERSION, &v), 0);
		igt_assert_eq_u64(v, firmware_file_version());
	}

	igt_subtest("getparam-primary-node") {
		uint64_t a, b;
		int card = rsvm_open(true);

		igt_assert(card >= 0);
		igt_assert_eq(rsvm_get_param(card, DRM_RSVM_PARAM_VRAM_SIZE, &a), 0);
		igt_assert_eq(rsvm_get_param(fd, DRM_RSVM_PARAM_VRAM_SIZE, &b), 0);
		igt_assert_eq_u64(a, b);
		close(card);
	}

	igt_subtest("getparam-invalid") {
		struct drm_rsvm_get_param p = { .param = DRM_RSVM_PARAM_PT_PAGES + 1 };
		uint64_t v;

		igt_assert_eq(rsvm_get_param(fd, DRM_RSVM_PARAM_PT_PAGES + 1, &v), -EINVAL);
		igt_assert_eq(rsvm_get_param(fd, 0xffffffff, &v), -EINVAL);
		p.param = DRM_RSVM_PARAM_VRAM_SIZE;
		p.pad = 1;
		p.value = 0x1234;
		igt_assert_errno(ioctl(fd, DRM_IOCTL_RSVM_GET_PARAM, &p), EINVAL);
		igt_assert_eq_u64(p.value, 0x1234);
	}

	igt_subtest("getparam-bad-pointer") {
		void *unmapped = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		igt_assert(unmapped != MAP_FAILED);
		igt_assert_errno(ioctl(fd, DRM_IOCTL_RSVM_GET_PARAM, NULL), EFAULT);
		igt_assert_errno(ioctl(fd, DRM_IOCTL_RSVM_GET_PARAM, (void *)8), EFAULT);
		igt_assert_errno(ioctl(fd, DRM_IOCTL_RSVM_GET_PARAM, unmapped), EFAULT);
		munmap(unmapped, 4096);
	}

	igt_subtest("unknown-ioctl") {
		struct drm_rsvm_get_param p = { 0 };
		unsigned long nr = DRM_IOWR(DRM_COMMAND_BASE + 0x3f, struct drm_rsvm_get_param);

		igt_assert_errno(ioctl(fd, nr, &p), EINVAL);
	}

	/*
	 * The leak counters in debugfs follow what a file makes and frees:
	 * page-table pages (as DRM_RSVM_PARAM_PT_PAGES over every device) and
	 * channel ids; the directory goes with the device.
	 */
	igt_subtest("debugfs-leak-counters") {
		char addr[64], dir[128];
		uint64_t pt0, ch0, pt1, ch1, param;
		uint32_t ch;
		int f;

		igt_assert(rsvm_pci_address(addr, sizeof(addr)));
		snprintf(dir, sizeof(dir), "/sys/kernel/debug/rsvm-%s", addr);
		pt0 = debugfs_u64(dir, "page_tables");
		ch0 = debugfs_u64(dir, "channels");
		igt_assert_eq(rsvm_get_param(fd, DRM_RSVM_PARAM_PT_PAGES, &param), 0);
		igt_assert_eq_u64(pt0, param);

		f = rsvm_open(false);
		igt_assert(f >= 0);
		igt_assert_eq(rsvm_channel_create(f, &ch), 0);
		pt1 = debugfs_u64(dir, "page_tables");
		ch1 = debugfs_u64(dir, "channels");
		igt_assert_eq_u64(ch1, ch0 + 1);
		/* The VM's root and the tables of the channel's kernel window. */
		igt_assert_f(pt1 >= pt0 + 5, "%llu page tables after a channel, %llu before\n",
			     (unsigned long long)pt1, (unsigned long long)pt0);
		igt_assert_eq(rsvm_get_param(fd, DRM_RSVM_PARAM_PT_PAGES, &param), 0);
		igt_assert_eq_u64(pt1, param);
		igt_assert_eq(rsvm_channel_destroy(f, ch), 0);
		igt_assert_eq_u64(debugfs_u64(dir, "channels"), ch0);
		close(f);
		igt_assert_eq_u64(debugfs_u64(dir, "page_tables"), pt0);
	}

	igt_subtest("unbind-rebind") {
		char addr[64];
		uint64_t v;

		igt_assert(rsvm_pci_address(addr, sizeof(addr)));
		close(fd);
		fd = -1;
		assert_bound();
		kmemleak_write("clear");
		for (int i = 0; i < 3; i++) {
			int held = rsvm_open(false);

			igt_assert(held >= 0);
			igt_assert_eq(run("echo %s > /sys/bus/pci/drivers/rsvm/unbind", addr), 0);
			assert_unbound();
			/* Its debugfs directory went with it. */
			igt_assert_eq(run("test ! -e /sys/kernel/debug/rsvm-%s", addr), 0);
			/* The device is gone; the open file stays valid but inert. */
			igt_assert_eq(rsvm_get_param(held, DRM_RSVM_PARAM_VA_BITS, &v), -ENODEV);
			close(held);
			igt_assert_eq(run("echo %s > /sys/bus/pci/drivers/rsvm/bind", addr), 0);
			assert_bound();
			igt_assert_eq(run("test -e /sys/kernel/debug/rsvm-%s/channels", addr), 0);
		}
		igt_assert_eq(kmemleak_leaks(), 0);
		fd = rsvm_open(false);
	}

	igt_subtest("module-reload") {
		close(fd);
		fd = -1;
		assert_bound();
		kmemleak_write("clear");
		for (int i = 0; i < 3; i++) {
			igt_assert_eq(run("rmmod rsvm"), 0);
			assert_unbound();
			igt_assert_eq(run("modprobe rsvm"), 0);
			assert_bound();
		}
		igt_assert_eq(kmemleak_leaks(), 0);
		fd = rsvm_open(false);
	}

	igt_fixture {
		if (fd >= 0)
			close(fd);
	}
}
