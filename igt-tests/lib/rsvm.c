// SPDX-License-Identifier: MIT
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
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
	for (p = strtok(buf, " \n"); p; p = strtok(NULL, " \n"))
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
