// SPDX-License-Identifier: MIT
/* rsvm-info: prints what the rsvm driver reports about the GPU. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "rsvm.h"

int main(void)
{
	static const struct {
		uint32_t param;
		const char *name;
	} params[] = {
		{ DRM_RSVM_PARAM_CHIP_ID, "chip id" },
		{ DRM_RSVM_PARAM_VRAM_SIZE, "VRAM size" },
		{ DRM_RSVM_PARAM_VA_BITS, "VA bits" },
		{ DRM_RSVM_PARAM_PAGE_SIZES, "page sizes" },
		{ DRM_RSVM_PARAM_UAPI_VERSION, "uAPI version" },
		{ DRM_RSVM_PARAM_FIRMWARE_VERSION, "firmware" },
	};
	char path[300];
	int fd = rsvm_open(false);

	if (fd < 0 || !rsvm_node_path(false, path, sizeof(path))) {
		fprintf(stderr, "rsvm-info: no rsvm render node\n");
		return 1;
	}
	printf("rsvm device %s\n", path);
	for (size_t i = 0; i < ARRAY_SIZE(params); i++) {
		uint64_t v;
		int err = rsvm_get_param(fd, params[i].param, &v);

		if (err) {
			printf("  %-13s error %s\n", params[i].name, strerror(-err));
			continue;
		}
		switch (params[i].param) {
		case DRM_RSVM_PARAM_CHIP_ID:
			printf("  %-13s %#010llx (architecture %#llx, revision %#llx)\n", params[i].name,
			       (unsigned long long)v, (unsigned long long)(v >> 24) & 0x1f,
			       (unsigned long long)v & 0xff);
			break;
		case DRM_RSVM_PARAM_VRAM_SIZE:
			printf("  %-13s %llu MiB\n", params[i].name, (unsigned long long)v >> 20);
			break;
		case DRM_RSVM_PARAM_PAGE_SIZES:
			printf("  %-13s", params[i].name);
			for (int b = 0; b < 64; b++)
				if (v & (1ull << b))
					printf(" %llu%s", b >= 20 ? 1ull << (b - 20) : 1ull << (b - 10),
					       b >= 20 ? "M" : "K");
			printf("\n");
			break;
		case DRM_RSVM_PARAM_FIRMWARE_VERSION:
			printf("  %-13s %llu.%llu\n", params[i].name, (unsigned long long)v >> 16,
			       (unsigned long long)v & 0xffff);
			break;
		default:
			printf("  %-13s %llu\n", params[i].name, (unsigned long long)v);
		}
	}
	close(fd);
	return 0;
}
