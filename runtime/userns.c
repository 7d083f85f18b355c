/* slate: user namespace and idmapped store (see userns.h). */
#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "slate/util.h"
#include "userns.h"

int slate_subid_lookup(const char *file, const char *name, uint32_t *base, uint32_t *count, int *found,
		       slate_error_t *err)
{
	cleanup_fclose FILE *f = fopen(file, "re");
	char line[256];
	size_t n = strlen(name);

	*found = 0;
	if (f == NULL)
		return errno == ENOENT ? 0 : slate_error_sys(err, errno, "open `%s`", file);
	while (fgets(line, sizeof(line), f)) {
		unsigned long b, c;
		if (strncmp(line, name, n) != 0 || line[n] != ':')
			continue;
		if (sscanf(line + n + 1, "%lu:%lu", &b, &c) != 2 || b == 0 || b > 0xfffeffffUL || c > 0xffffffffUL - b)
			return slate_error_refuse(err, "`%s`: malformed entry for `%s`", file, name);
		*base = (uint32_t)b;
		*count = (uint32_t)c;
		*found = 1;
		return 0;
	}
	return 0;
}

int slate_idmap_default(struct slate_idmap *map, slate_error_t *err)
{
	uint32_t ub = 0, uc = 0, gb = 0, gc = 0;
	int uf = 0, gf = 0;

	map->uid_base = map->gid_base = SLATE_UID_BASE;
	map->count = SLATE_ID_COUNT;
	if (slate_subid_lookup("/etc/subuid", "slate", &ub, &uc, &uf, err) < 0 ||
	    slate_subid_lookup("/etc/subgid", "slate", &gb, &gc, &gf, err) < 0)
		return -1;
	if (uf && gf && uc >= SLATE_ID_COUNT && gc >= SLATE_ID_COUNT) {
		map->uid_base = ub;
		map->gid_base = gb;
	}
	return 0;
}

static int write_proc(pid_t pid, const char *file, const char *text, slate_error_t *err)
{
	cleanup_free char *path = xasprintf("/proc/%d/%s", (int)pid, file);
	cleanup_close int fd = open(path, O_WRONLY | O_CLOEXEC);

	if (fd < 0)
		return slate_error_sys(err, errno, "open `%s`", path);
	if (write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		return slate_error_sys(err, errno, "write `%s`", path);
	return 0;
}

/* The helper only unshares and waits; the parent (real root) writes the
 * maps and keeps a reference to the namespace by fd. setgroups stays
 * allowed: the image's masters call initgroups() when they switch to
 * www-data, and the mapping holds no group the instance could drop to
 * gain access (every mapped gid is an unprivileged host gid). */
static void userns_helper(int go, int ready)
{
	char c = 0;

	if (unshare(CLONE_NEWUSER) < 0)
		_exit(1);
	if (write(ready, "r", 1) != 1)
		_exit(1);
	(void)!read(go, &c, 1);
	_exit(0);
}

int slate_userns_create(const struct slate_idmap *map, slate_error_t *err)
{
	int go[2] = { -1, -1 }, ready[2] = { -1, -1 }, fd = -1;
	char c = 0, text[64];
	cleanup_free char *ns = NULL;
	pid_t pid = -1;

	if (pipe2(go, O_CLOEXEC) < 0 || pipe2(ready, O_CLOEXEC) < 0) {
		slate_error_sys(err, errno, "pipe");
		goto out;
	}
	pid = fork();
	if (pid < 0) {
		slate_error_sys(err, errno, "fork");
		goto out;
	}
	if (pid == 0) {
		close(go[1]);
		close(ready[0]);
		userns_helper(go[0], ready[1]);
	}
	close(ready[1]);
	ready[1] = -1;
	if (read(ready[0], &c, 1) != 1) {
		slate_error_fail(err, "cannot create a user namespace (user namespaces disabled?)");
		goto out;
	}
	snprintf(text, sizeof(text), "0 %u %u\n", map->uid_base, map->count);
	if (write_proc(pid, "uid_map", text, err) < 0)
		goto out;
	snprintf(text, sizeof(text), "0 %u %u\n", map->gid_base, map->count);
	if (write_proc(pid, "gid_map", text, err) < 0)
		goto out;
	ns = xasprintf("/proc/%d/ns/user", (int)pid);
	fd = open(ns, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		slate_error_sys(err, errno, "open `%s`", ns);
out:
	for (int i = 0; i < 2; i++) {
		if (go[i] >= 0)
			close(go[i]);
		if (ready[i] >= 0)
			close(ready[i]);
	}
	if (pid > 0)
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
	return fd;
}

int slate_idmapped_tree(const char *path, int userns_fd, slate_error_t *err)
{
	struct mount_attr attr = {
		.attr_set = MOUNT_ATTR_IDMAP | MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
		.userns_fd = (uint64_t)userns_fd,
	};
	int fd = (int)syscall(SYS_open_tree, AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_SYMLINK_NOFOLLOW);

	if (fd < 0)
		return slate_error_sys(err, errno, "open_tree `%s`", path);
	if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH, &attr, sizeof(attr)) < 0) {
		int e = errno;
		close(fd);
		return slate_error_sys(err, e,
				       "idmapped mount of `%s` (kernel 5.12+ and a filesystem that supports it)", path);
	}
	return fd;
}
