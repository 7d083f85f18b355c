/* slate: user namespace and idmapped store (see userns.h). */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/mount.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
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

/* Tight per-namespace quotas, set inside the new namespace. The kernel
 * charges each count to the user in the namespace and then, one level up,
 * to the namespace's creator: these caps bound what one instance's users
 * may take before the host-wide per-user limits of its host root even
 * come into play. Instances never create namespaces (seccomp refuses
 * unshare, setns and namespace flags to clone), so those caps are 0 too:
 * a second wall. fanotify needs CAP_SYS_ADMIN in the host: 0. */
static const struct {
	const char *name;
	int value;
} ns_limits[] = {
	{ "max_inotify_instances", SLATE_NS_INOTIFY_INSTANCES },
	{ "max_inotify_watches", SLATE_NS_INOTIFY_WATCHES },
	{ "max_fanotify_groups", 0 },
	{ "max_fanotify_marks", 0 },
	{ "max_user_namespaces", 0 },
	{ "max_mnt_namespaces", 0 },
	{ "max_pid_namespaces", 0 },
	{ "max_net_namespaces", 0 },
	{ "max_ipc_namespaces", 0 },
	{ "max_uts_namespaces", 0 },
	{ "max_cgroup_namespaces", 0 },
	{ "max_time_namespaces", 0 },
};

/* In the helper, inside the new namespace (as its owner it holds
 * CAP_SYS_RESOURCE there, which /proc/sys/user asks for; /proc/sys/user
 * shows the writer's own namespace's values, looked up when a file is
 * opened, so from dir, /proc/sys/user opened while the helper was still
 * root: the helper's uid need not be able to search the host's path to it,
 * "/" being 0700 on some hosts). A file the kernel lacks (no fanotify in
 * this build) is skipped; any other failure stops. */
static int set_ns_limits(int dir)
{
	for (size_t i = 0; i < sizeof(ns_limits) / sizeof(ns_limits[0]); i++) {
		char path[64], text[16];
		int fd, n;

		snprintf(path, sizeof(path), "%s", ns_limits[i].name);
		fd = openat(dir, path, O_WRONLY | O_CLOEXEC);
		if (fd < 0 && errno == ENOENT)
			continue;
		if (fd < 0)
			return -1;
		n = snprintf(text, sizeof(text), "%d\n", ns_limits[i].value);
		if (write(fd, text, (size_t)n) != n) {
			close(fd);
			return -1;
		}
		close(fd);
	}
	return 0;
}

/* Only CAP_SYS_ADMIN, effective, as the uid set by setresuid (keepcaps):
 * so that the unshare is a privileged one where a host restricts user
 * namespaces to privileged creators (Debian's
 * kernel.unprivileged_userns_clone=0), while the namespace's owner is
 * still the helper's euid. */
static int keep_sys_admin(void)
{
	static const cap_value_t admin[] = { CAP_SYS_ADMIN };
	cap_t caps = cap_init();
	int r = -1;

	if (caps && cap_set_flag(caps, CAP_PERMITTED, 1, admin, CAP_SET) == 0 &&
	    cap_set_flag(caps, CAP_EFFECTIVE, 1, admin, CAP_SET) == 0)
		r = cap_set_proc(caps);
	cap_free(caps);
	return r;
}

/* The helper becomes the instance's host root (the map's base uid and
 * gid, no supplementary group) before it unshares, so that the kernel's
 * per-user counts of everything in the namespace (inotify, fanotify,
 * namespaces, and the rlimit counts of processes, message queues, pending
 * signals and locked memory) are charged to those host ids, never to host
 * root: an instance that exhausts a quota exhausts only its own ids'.
 * (The namespace also takes the helper's rlimits as the ceilings of those
 * counts: slate's own, RLIMIT_NPROC included, which the kernel did not
 * enforce for host root; the pids cgroup is the limit that counts.) It
 * keeps only CAP_SYS_ADMIN for the unshare (see keep_sys_admin); the
 * helper is slate's, outside every instance, and only unshares, sets the
 * limits and waits. The parent (real root) writes the maps and keeps a
 * reference to the namespace by fd. setgroups stays allowed: the image's
 * masters call initgroups() when they switch to www-data, and the mapping
 * holds no group the instance could drop to gain access (every mapped gid
 * is an unprivileged host gid). The ready byte is 'r', or an errno on
 * failure. */
static void userns_helper(const struct slate_idmap *map, int go, int ready)
{
	char c = 0;
	int e = 0, dir = open("/proc/sys/user", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (dir < 0 || prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0 || setgroups(0, NULL) < 0 ||
	    setresgid(map->gid_base, map->gid_base, map->gid_base) < 0 ||
	    setresuid(map->uid_base, map->uid_base, map->uid_base) < 0 || keep_sys_admin() < 0 ||
	    geteuid() != map->uid_base || unshare(CLONE_NEWUSER) < 0 || set_ns_limits(dir) < 0)
		e = errno ? errno : EPERM;
	c = e ? (char)(e > 0 && e < 127 ? e : EPERM) : 'r';
	if (write(ready, &c, 1) != 1 || e)
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
		userns_helper(map, go[0], ready[1]);
	}
	close(ready[1]);
	ready[1] = -1;
	if (read(ready[0], &c, 1) != 1 || c != 'r') {
		slate_error_sys(err, c != 'r' && c > 0 ? c : EPERM,
				"create a user namespace owned by host uid %u (user namespaces disabled?)",
				map->uid_base);
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
